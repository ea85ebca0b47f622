//! Lambda entry point for the scheduled sweep.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use portcullis::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let deps = Deps::for_function("inactive-sweep", portcullis_inactive_sweep::GRANTS).await?;
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |_event: LambdaEvent<serde_json::Value>| async move {
            portcullis_inactive_sweep::run(deps)
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
