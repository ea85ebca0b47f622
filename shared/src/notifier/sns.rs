//! SNS plugins: `sns-sms` publishes a transactional text to a phone number; `sns-voice` publishes
//! a [`VoiceMessage`] to a topic whose subscriber (e.g. a Lambda calling Amazon Connect or
//! Pinpoint voice) places the call.

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use serde::Serialize;

use super::{Channel, Message, Notifier, NotifyError};

fn failed(provider: &'static str, err: impl std::error::Error + 'static) -> NotifyError {
    NotifyError::Failed {
        provider,
        reason: aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, NotifyError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| failed("sns", e))
}

#[derive(Debug, Clone)]
pub struct SnsSms {
    client: Client,
    sender_id: Option<String>,
}

impl SnsSms {
    pub fn new(client: Client, sender_id: Option<String>) -> Self {
        SnsSms { client, sender_id }
    }
}

#[async_trait]
impl Notifier for SnsSms {
    fn id(&self) -> &'static str {
        "sns-sms"
    }

    fn channel(&self) -> Channel {
        Channel::Sms
    }

    async fn dispatch(&self, message: &Message) -> Result<String, NotifyError> {
        let mut publish = self
            .client
            .publish()
            .phone_number(&message.to)
            .message(&message.text)
            // Transactional: highest delivery reliability, as one-time codes need.
            .message_attributes("AWS.SNS.SMS.SMSType", string_attribute("Transactional")?);
        if let Some(sender) = &self.sender_id {
            publish = publish.message_attributes("AWS.SNS.SMS.SenderID", string_attribute(sender)?);
        }
        let out = publish.send().await.map_err(|e| failed("sns-sms", e))?;
        Ok(out.message_id.unwrap_or_default())
    }
}

/// The JSON published to the voice topic: the contract a call-placing subscriber relies on.
///
/// ```json
/// {"version": 1, "kind": "one_time_code", "to": "+12025550143", "language": "en-US",
///  "text": "Your Portcullis code to sign in is …", "code": "123456",
///  "spoken_code": "1, 2, 3, 4, 5, 6", "repeat": 2, "purpose": "sign_in"}
/// ```
///
/// - `to` is always an E.164 +1 number (voice is refused elsewhere before publishing);
/// - `text` is the full sentence to speak; `spoken_code` is the code with pauses, to be spoken
///   `repeat` times; `code` is there for providers that build their own prompt;
/// - `kind` is `one_time_code` or `alert` (then `code`/`spoken_code` are absent);
/// - the message is published with the attribute `kind` so subscriptions can filter;
/// - subscribers must not log the message body: it carries a live code.
///
/// `Debug` shows the kind, language, purpose and repeat count only: the number, the text
/// and the code are the secret and the personal data.
#[derive(Serialize)]
pub struct VoiceMessage<'a> {
    pub version: u32,
    pub kind: &'static str,
    pub to: &'a str,
    pub language: &'static str,
    pub text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spoken_code: Option<String>,
    pub repeat: u32,
    pub purpose: &'a str,
}

impl std::fmt::Debug for VoiceMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoiceMessage")
            .field("version", &self.version)
            .field("kind", &self.kind)
            .field("language", &self.language)
            .field("purpose", &self.purpose)
            .field("repeat", &self.repeat)
            .finish_non_exhaustive()
    }
}

impl<'a> VoiceMessage<'a> {
    pub fn from_message(message: &'a Message) -> Self {
        VoiceMessage {
            version: 1,
            kind: if message.code.is_some() {
                "one_time_code"
            } else {
                "alert"
            },
            to: &message.to,
            language: "en-US",
            text: &message.text,
            code: message.code.as_deref(),
            spoken_code: message
                .code
                .as_deref()
                .map(|c| c.chars().map(String::from).collect::<Vec<_>>().join(", ")),
            repeat: 2,
            purpose: &message.purpose,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SnsVoice {
    client: Client,
    topic_arn: String,
}

impl SnsVoice {
    pub fn new(client: Client, topic_arn: &str) -> Self {
        SnsVoice {
            client,
            topic_arn: topic_arn.to_owned(),
        }
    }
}

#[async_trait]
impl Notifier for SnsVoice {
    fn id(&self) -> &'static str {
        "sns-voice"
    }

    fn channel(&self) -> Channel {
        Channel::Voice
    }

    async fn dispatch(&self, message: &Message) -> Result<String, NotifyError> {
        let body = VoiceMessage::from_message(message);
        let json = serde_json::to_string(&body).map_err(|e| NotifyError::Failed {
            provider: "sns-voice",
            reason: e.to_string(),
        })?;
        let out = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(json)
            .message_attributes("kind", string_attribute(body.kind)?)
            .send()
            .await
            .map_err(|e| failed("sns-voice", e))?;
        Ok(out.message_id.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_message_spells_the_code_out() {
        let m = Message {
            channel: Channel::Voice,
            to: "+12025550143".into(),
            subject: String::new(),
            text: "Your code is 123456".into(),
            code: Some("123456".into()),
            purpose: "sign_in".into(),
        };
        let json = serde_json::to_value(VoiceMessage::from_message(&m)).unwrap();
        assert_eq!(json["spoken_code"], "1, 2, 3, 4, 5, 6");
        assert_eq!(json["kind"], "one_time_code");
        assert_eq!(json["version"], 1);
    }
}
