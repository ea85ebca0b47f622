//! The sender (SPEC §15): what Lambda's SQS event source mapping hands it, one batch of queued
//! [`Outgoing`] messages at a time, each delivered through the one outbound pipeline
//! ([`sender::deliver`]: the notifier registry and a delivery record per message).
//!
//! The answer names the messages that failed (`batchItemFailures`): only those return to the
//! queue, to be tried again after its visibility timeout; after `maxReceiveCount` receives the
//! queue moves a message to its dead-letter queue, which is alarmed on. A body that is not an
//! [`Outgoing`] can never succeed, so it is reported failed too and reaches the dead-letter
//! queue, where an operator can read it (it holds no secret: see [`portcullis::outbox`]).
//! Messages are delivered one after another: a batch is at most 10 (the template), and the
//! providers' rate limits are per account, not per function.

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use portcullis::Deps;
use portcullis::grants::{AUDIT_APPEND, Grant, Grants, Resource, SES_SEND, SNS_PUBLISH, TABLE_KEY};
use portcullis::outbox::Outgoing;
use portcullis::service::sender;

/// The AWS calls the sender makes ([`portcullis::grants`]): the user's record and delivery
/// records, the audit events it writes for others, the providers. Its queue's receive and
/// delete are Lambda's event source mapping's, not the code's (SAM's managed policy).
pub static GRANTS: Grants = &[&[
    Grant::on(
        Resource::MainTable,
        &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"],
    ),
    AUDIT_APPEND,
    TABLE_KEY,
    SNS_PUBLISH,
    SES_SEND,
]];

/// Time one message may take at worst (a few AWS calls of at most 5 s each): the batch stops
/// this long before the invocation's deadline and hands the rest back, so a timeout never
/// returns (and so never repeats) messages already delivered.
pub const RESERVE: Duration = Duration::from_secs(20);

/// Delivers the messages of the batch until `stop_at` (the invocation's deadline less
/// [`RESERVE`]); the answer lists those to try again, the ones not started included.
pub async fn handle(deps: &Deps, event: SqsEvent, stop_at: Option<Instant>) -> SqsBatchResponse {
    let mut answer = SqsBatchResponse::default();
    for record in event.records {
        let Some(message_id) = record.message_id else {
            // Lambda always sets it; without one the message cannot even be named as failed.
            tracing::error!(
                event = "outbox_message_unnamed",
                "an SQS record without a message id"
            );
            continue;
        };
        if stop_at.is_some_and(|at| Instant::now() >= at) {
            tracing::warn!(
                message_id,
                event = "outbox_batch_cut",
                "out of time: handed back"
            );
            answer.add_failure(message_id);
            continue;
        }
        let receives = record
            .attributes
            .get("ApproximateReceiveCount")
            .map_or("?", String::as_str);
        let item = match Outgoing::from_json(record.body.as_deref().unwrap_or_default()) {
            Ok(item) => item,
            Err(err) => {
                tracing::error!(error = %err, message_id, receives, event = "outbox_message_unreadable", "not an outbox message: left for the dead-letter queue");
                answer.add_failure(message_id);
                continue;
            }
        };
        match sender::deliver(deps, &item).await {
            Ok(()) => {
                tracing::info!(
                    message_id,
                    kind = item.kind(),
                    event = "outbox_delivered",
                    "delivered"
                );
            }
            Err(err) => {
                tracing::warn!(
                    message_id,
                    kind = item.kind(),
                    receives,
                    code = err.code(),
                    event = "outbox_delivery_failed",
                    "delivery failed: the queue tries again"
                );
                answer.add_failure(message_id);
            }
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use aws_lambda_events::event::sqs::SqsMessage;
    use portcullis::config::{Argon2Settings, Settings};
    use portcullis::identity::UserId;
    use portcullis::notifier::RecordingNotifier;
    use portcullis::outbox::Alert;
    use portcullis::storage::{UserRecord, UserStatus};
    use portcullis::{Clock, ManualClock, UnixTime};

    use super::*;

    async fn deps() -> (Deps, RecordingNotifier) {
        let mut settings = Settings::defaults("unused");
        settings.argon2 = Argon2Settings::danger_cheap();
        let clock = Arc::new(ManualClock::new(UnixTime(1_800_000_000)));
        let mut deps = Deps::in_memory(settings, clock as Arc<dyn Clock>).unwrap();
        let (registry, sent) = RecordingNotifier::registry();
        deps.notifiers = registry;
        let user = UserRecord {
            user_id: UserId::parse("alice@example.com").unwrap(),
            email: Some("alice@example.com".into()),
            phone: None,
            password_hash: None,
            status: UserStatus::Active,
            roles: vec![],
            created_at: UnixTime(1_700_000_000),
            password_changed_at: None,
            last_sign_in_at: None,
            must_change_password: false,
            password_history: vec![],
            security_stamp: 0,
        };
        deps.stores.users.create_user(&user).await.unwrap();
        (deps, sent)
    }

    fn record(id: &str, body: &str) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.message_id = Some(id.into());
        record.body = Some(body.into());
        record
    }

    fn batch(records: Vec<SqsMessage>) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = records;
        event
    }

    fn alert_for(user: &str) -> String {
        Outgoing::Alert {
            user_id: user.into(),
            alert: Alert::PasswordChanged,
        }
        .to_json()
        .unwrap()
    }

    fn failed(answer: &SqsBatchResponse) -> Vec<&str> {
        answer
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect()
    }

    #[tokio::test]
    async fn only_the_messages_that_failed_go_back_to_the_queue() {
        let (deps, sent) = deps().await;
        let answer = handle(
            &deps,
            batch(vec![
                record("good", &alert_for("alice@example.com")),
                record("poisoned", "{\"kind\":\"telegram\"}"),
                record("empty", ""),
                // Nobody to tell: done, not retried forever.
                record("unknown", &alert_for("nobody@example.com")),
            ]),
            None,
        )
        .await;
        assert_eq!(failed(&answer), ["poisoned", "empty"]);
        let mails = sent.sent();
        assert_eq!(mails.len(), 1, "{mails:?}");
        assert_eq!(mails[0].to, "alice@example.com");
        assert_eq!(mails[0].purpose, "alert_password_changed");
    }

    #[tokio::test]
    async fn a_provider_outage_is_retried_not_lost() {
        let (deps, sent) = deps().await;
        sent.set_failing(true);
        let first = handle(
            &deps,
            batch(vec![record("m1", &alert_for("alice@example.com"))]),
            None,
        )
        .await;
        assert_eq!(failed(&first), ["m1"], "the queue keeps it for another try");
        sent.set_failing(false);
        let retry = handle(
            &deps,
            batch(vec![record("m1", &alert_for("alice@example.com"))]),
            None,
        )
        .await;
        assert!(failed(&retry).is_empty());
        assert_eq!(sent.sent().len(), 1);
        let user = UserId::parse("alice@example.com").unwrap();
        let outcomes: Vec<String> = deps
            .stores
            .deliveries
            .list_deliveries(&user, UnixTime(1_800_000_000))
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.outcome)
            .collect();
        assert_eq!(
            outcomes.len(),
            2,
            "a delivery record for every attempt: {outcomes:?}"
        );
        assert!(outcomes.contains(&"failed".to_owned()) && outcomes.contains(&"sent".to_owned()));
    }
}

#[cfg(test)]
mod deadline_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use aws_lambda_events::event::sqs::SqsMessage;
    use portcullis::config::{Argon2Settings, Settings};
    use portcullis::outbox::Alert;
    use portcullis::{Clock, ManualClock, UnixTime};

    use super::*;

    #[tokio::test]
    async fn out_of_time_the_rest_of_the_batch_is_handed_back_untouched() {
        let mut settings = Settings::defaults("unused");
        settings.argon2 = Argon2Settings::danger_cheap();
        let clock = Arc::new(ManualClock::new(UnixTime(1_800_000_000)));
        let mut deps = Deps::in_memory(settings, clock as Arc<dyn Clock>).unwrap();
        let (registry, sent) = portcullis::notifier::RecordingNotifier::registry();
        deps.notifiers = registry;
        let mut event = SqsEvent::default();
        event.records = (0..3)
            .map(|n| {
                let mut record = SqsMessage::default();
                record.message_id = Some(format!("m{n}"));
                record.body = Some(
                    Outgoing::Alert {
                        user_id: "alice@example.com".into(),
                        alert: Alert::PasswordChanged,
                    }
                    .to_json()
                    .unwrap(),
                );
                record
            })
            .collect();
        let answer = handle(&deps, event, Some(Instant::now())).await;
        let failed: Vec<&str> = answer
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["m0", "m1", "m2"]);
        assert!(sent.sent().is_empty());
    }
}
