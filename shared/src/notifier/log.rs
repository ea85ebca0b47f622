//! `log`: local development. Prints the message to standard error instead of sending it, so a
//! developer without an SMS provider can read the code. Never configure it in production.

use async_trait::async_trait;

use super::{Channel, Message, Notifier, NotifyError};

#[derive(Debug, Clone)]
pub struct LogNotifier {
    channel: Channel,
}

impl LogNotifier {
    pub fn new(channel: Channel) -> Self {
        LogNotifier { channel }
    }
}

#[async_trait]
impl Notifier for LogNotifier {
    fn id(&self) -> &'static str {
        "log"
    }

    fn channel(&self) -> Channel {
        self.channel
    }

    async fn dispatch(&self, message: &Message) -> Result<String, NotifyError> {
        // Deliberately stderr, not the tracing pipeline: log shipping must never carry codes.
        eprintln!(
            "[portcullis log notifier] {} to {}: {}",
            message.channel.as_str(),
            message.to,
            message.text
        );
        Ok(crate::crypto::random_id("log"))
    }
}
