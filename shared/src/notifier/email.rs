//! `email`: SES v2 `SendEmail` (simple content) from a verified sender identity.

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message as SesMessage};

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

fn content(text: &str) -> Result<Content, NotifyError> {
    Content::builder()
        .data(text)
        .charset("UTF-8")
        .build()
        .map_err(|e| NotifyError::Failed {
            provider: "email",
            reason: e.to_string(),
        })
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
            .from_email_address(&self.sender)
            .destination(Destination::builder().to_addresses(&message.to).build())
            .content(EmailContent::builder().simple(email).build())
            .send()
            .await
            .map_err(|e| NotifyError::Failed {
                provider: "email",
                reason: aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
            })?;
        Ok(out.message_id.unwrap_or_default())
    }
}
