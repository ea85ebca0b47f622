//! The outbox end to end (SPEC §15), on the emulator's SQS: the local endpoint drains the queue
//! through the sender function as Lambda's event source mapping would, and the queue's redrive
//! policy (from infra/template.yaml, provisioned on the emulator) moves a message that can
//! never be delivered to the dead-letter queue instead of retrying it forever.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use portcullis_e2e::*;
use serde_json::json;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn sqs() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(
        &aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await,
    )
}

/// The outbox queue's URL and its dead-letter queue's URL (read from the redrive policy).
async fn queues(sqs: &aws_sdk_sqs::Client) -> (String, String) {
    let outbox = std::env::var("PORTCULLIS_OUTBOX_QUEUE_URL")
        .expect("PORTCULLIS_OUTBOX_QUEUE_URL (the stack's env file) is set");
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&outbox)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    let policy: serde_json::Value = serde_json::from_str(
        attributes
            .get(&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
            .expect("the outbox queue has a redrive policy"),
    )
    .unwrap();
    assert_eq!(policy["maxReceiveCount"].to_string().trim_matches('"'), "5");
    let dlq_name = policy["deadLetterTargetArn"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let dlq = sqs
        .get_queue_url()
        .queue_name(dlq_name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (outbox, dlq)
}

#[test]
fn a_message_the_sender_cannot_read_ends_in_the_dead_letter_queue_after_five_tries() {
    if api().is_none() {
        return;
    }
    runtime().block_on(async {
        let sqs = sqs().await;
        let (outbox, dlq) = queues(&sqs).await;
        let marker = unique("poisoned");
        sqs.send_message()
            .queue_url(&outbox)
            .message_body(json!({"kind": "telegram", "marker": marker}).to_string())
            .send()
            .await
            .unwrap();
        // Five receives, each failed and made visible again a second later by the local
        // endpoint, then the queue moves it: well under a minute.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let got = sqs
                .receive_message()
                .queue_url(&dlq)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            let mut found = false;
            for message in got.messages.unwrap_or_default() {
                if message.body().is_some_and(|b| b.contains(&marker)) {
                    found = true;
                    sqs.delete_message()
                        .queue_url(&dlq)
                        .receipt_handle(message.receipt_handle().unwrap())
                        .send()
                        .await
                        .unwrap();
                } else {
                    // Another test's message: leave it for its owner.
                    let _ = sqs
                        .change_message_visibility()
                        .queue_url(&dlq)
                        .receipt_handle(message.receipt_handle().unwrap())
                        .visibility_timeout(0)
                        .send()
                        .await;
                }
            }
            if found {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the unreadable message did not reach the dead-letter queue within 90 s"
            );
        }
    });
}

#[test]
fn an_alert_leaves_through_the_queue_and_the_delivery_is_recorded() {
    let Some(api) = api() else { return };
    let user = unique("outboxed");
    create_user(&user, "an outbox passphrase", &[]);
    // The fifth failed password locks the ID and queues the lock alert (to the user's email).
    for _ in 0..5 {
        api.sign_in(&user, "a wrong passphrase");
    }
    let mails = wait_for_emails(&user, 1);
    assert!(
        mails
            .iter()
            .any(|(subject, _)| subject.to_lowercase().contains("lock")),
        "{mails:?}"
    );
}
