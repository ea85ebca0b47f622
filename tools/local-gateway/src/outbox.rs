//! The outbox locally (SPEC §15): what Lambda's SQS event source mapping does in AWS, done by
//! the local endpoint. It long-polls the outbox queue (`PORTCULLIS_OUTBOX_QUEUE_URL`, on the
//! emulator), hands each batch to the sender function's handler as the `SqsEvent` Lambda would,
//! deletes the messages it delivered and makes the failed ones visible again after a second
//! (AWS waits the queue's visibility timeout; locally a retry should not take a minute). The
//! queue's own redrive policy moves a message that keeps failing to the dead-letter queue, on
//! the emulator as in AWS.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use portcullis::Deps;

/// Seconds a failed message stays invisible before it is received again.
pub const RETRY_AFTER_SECS: i32 = 1;

/// Drains the queue until the process ends. Errors of the emulator are logged and retried.
pub async fn drain(deps: Deps, client: aws_sdk_sqs::Client, queue_url: String) {
    loop {
        match drain_once(&deps, &client, &queue_url).await {
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err, "outbox: receiving from the queue failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// An SDK error with its causes, for the log.
fn describe(error: impl std::error::Error) -> String {
    aws_sdk_sqs::error::DisplayErrorContext(error).to_string()
}

/// One receive (long poll, up to a second) and the delivery of what it got. Returns how many
/// messages were delivered.
pub async fn drain_once(
    deps: &Deps,
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Result<usize, String> {
    let received = client
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(describe)?;
    let messages = received.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(0);
    }
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id.clone();
            record.receipt_handle = m.receipt_handle.clone();
            record.body = m.body.clone();
            record.attributes = m
                .attributes
                .as_ref()
                .map(|attributes| {
                    attributes
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect()
                })
                .unwrap_or_else(HashMap::new);
            record.event_source = Some("aws:sqs".into());
            record
        })
        .collect();
    let answer = portcullis_sender::handle(deps, event, None).await;
    let failed: HashSet<String> = answer
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect();
    let mut delivered = 0;
    for message in &messages {
        let (Some(id), Some(receipt)) = (message.message_id(), message.receipt_handle()) else {
            continue;
        };
        let result = if failed.contains(id) {
            let retry = client
                .change_message_visibility()
                .queue_url(queue_url)
                .receipt_handle(receipt)
                .visibility_timeout(RETRY_AFTER_SECS);
            retry.send().await.map(drop).map_err(describe)
        } else {
            delivered += 1;
            let delete = client
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(receipt);
            delete.send().await.map(drop).map_err(describe)
        };
        if let Err(err) = result {
            tracing::warn!(error = %err, message_id = id, "outbox: acknowledging a message failed");
        }
    }
    Ok(delivered)
}
