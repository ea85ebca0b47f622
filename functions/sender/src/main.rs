//! Lambda entry point of the sender: an SQS event source mapping on the outbox queue, with
//! `ReportBatchItemFailures` (see the template).

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use portcullis::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let deps = Deps::from_env().await?;
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(portcullis_sender::handle(deps, event.payload).await)
    }))
    .await
}
