//! `email`: SES `SendEmail` (the v1 API: plain-text body and subject) from a verified sender
//! identity.
//!
//! Why SES v1 and not v2: both APIs send the same message through the same service, under the
//! same IAM action (`ses:SendEmail`) and the same identity ARN, and AWS supports both. But the
//! developers' emulator, LocalStack's community edition, serves only v1 (v2 answers "not
//! included in your current license plan"), while moto serves both. One API that every
//! environment serves keeps a single tested path — a v2 call with a v1 fallback would leave
//! one branch untested wherever the other works. Nothing used here (simple text content to a
//! list of recipients) needs v2.

use async_trait::async_trait;
use aws_sdk_ses::Client;
use aws_sdk_ses::types::{Body, Content, Destination, Message as SesMessage};

use super::{Channel, Message, Notifier, NotifyError};

#[derive(Debug, Clone)]
pub struct SesEmail {
    client: Client,
    sender: String,
}

impl SesEmail {
    pub fn new(client: Client, sender: &str) -> Self {
        SesEmail {
            client,
            sender: sender.to_owned(),
        }
    }
}

fn failed(reason: String) -> NotifyError {
    NotifyError::Failed {
        provider: "email",
        reason,
    }
}

fn content(text: &str) -> Result<Content, NotifyError> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|e| failed(e.to_string()))
}

#[async_trait]
impl Notifier for SesEmail {
    fn id(&self) -> &'static str {
        "email"
    }

    fn channel(&self) -> Channel {
        Channel::Email
    }

    async fn dispatch(&self, message: &Message) -> Result<String, NotifyError> {
        let email = SesMessage::builder()
            .subject(content(&message.subject)?)
            .body(Body::builder().text(content(&message.text)?).build())
            .build();
        let out = self
            .client
            .send_email()
            .source(&self.sender)
            .destination(Destination::builder().to_addresses(&message.to).build())
            .message(email)
            .send()
            .await
            .map_err(|e| {
                failed(aws_smithy_types::error::display::DisplayErrorContext(&e).to_string())
            })?;
        Ok(out.message_id)
    }
}
