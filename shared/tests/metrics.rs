//! The SDK interceptor counts every AWS call by service and operation (used by the benchmark).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use portcullis::Deps;
use portcullis::config::Settings;
use portcullis::identity::UserId;

#[tokio::test]
async fn aws_calls_are_counted_by_service_and_operation() {
    if common::emulator_table().is_none() {
        return;
    }
    let deps = Deps::with_aws(Settings::from_env().unwrap()).await.unwrap();
    deps.calls.reset();
    let id = UserId::parse("nobody-metrics@example.com").unwrap();
    deps.stores.users.get_user(&id).await.unwrap();
    deps.stores.factors.list_factors(&id).await.unwrap();
    let calls = deps.calls.snapshot();
    assert_eq!(
        calls.get(&("DynamoDB".to_owned(), "GetItem".to_owned())),
        Some(&1),
        "{calls:?}"
    );
    assert_eq!(
        calls.get(&("DynamoDB".to_owned(), "Query".to_owned())),
        Some(&1),
        "{calls:?}"
    );
    assert_eq!(deps.calls.total(), 2);
}
