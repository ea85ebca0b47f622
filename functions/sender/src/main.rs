//! Lambda entry point of the sender: an SQS event source mapping on the outbox queue, with
//! `ReportBatchItemFailures` (see the template).

use aws_lambda_events::event::sqs::SqsEvent;
use std::time::{Duration, Instant, SystemTime};

use lambda_runtime::{Context, Error, LambdaEvent, service_fn};
use portcullis::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let deps = Deps::for_function("sender", portcullis_sender::GRANTS).await?;
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let stop_at = time_left(&event.context)
            .map(|left| Instant::now() + left.saturating_sub(portcullis_sender::RESERVE));
        Ok::<_, Error>(portcullis_sender::handle(deps, event.payload, stop_at).await)
    }))
    .await
}

/// The time left before Lambda ends this invocation (its deadline is wall-clock time).
#[allow(clippy::disallowed_methods)]
fn time_left(context: &Context) -> Option<Duration> {
    context.deadline().duration_since(SystemTime::now()).ok()
}
