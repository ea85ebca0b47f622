//! The notifier: how codes and alerts leave the system (SPEC §3).
//!
//! One small object-safe trait, [`Notifier`], with one plugin per provider; a serde-tagged
//! configuration ([`PluginConfig`], from `PORTCULLIS_NOTIFIERS`) selects the plugins; the
//! [`Registry`] is built once at cold start and refuses bad or duplicate configuration with a
//! clear message. A deployment adds a provider by adding a plugin and a config variant — the
//! functions only ever ask the registry for "the notifier of channel X".
//!
//! Shipped plugins: `sns-sms` (SNS Publish to a phone number, transactional), `sns-voice` (SNS
//! Publish to a topic whose subscriber places the call; see [`sns::VoiceMessage`] for the
//! contract), `email` (SES `SendEmail`, the v1 API that every emulator serves), `log` (local development: prints the message) and, for tests,
//! [`RecordingNotifier`].

pub mod email;
pub mod log;
pub mod sns;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde::Deserialize;

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Voice,
    Email,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Voice => "voice",
            Channel::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "sms" => Some(Channel::Sms),
            "voice" => Some(Channel::Voice),
            "email" => Some(Channel::Email),
            _ => None,
        }
    }
}

/// One message to one recipient. `text` may contain a one-time code: plugins never log it.
#[derive(Clone)]
pub struct Message {
    pub channel: Channel,
    /// E.164 number or email address.
    pub to: String,
    pub subject: String,
    pub text: String,
    /// For voice: the code alone, so the subscriber can read it digit by digit.
    pub code: Option<String>,
    /// What the message is for, e.g. `sign_in`, `enrol_phone`, `alert_lock` (never secret).
    pub purpose: String,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("channel", &self.channel)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The provider refused or could not be reached; nothing was sent.
    #[error("{provider} failed: {reason}")]
    Failed {
        provider: &'static str,
        reason: String,
    },
}

/// A provider. Object safe: the registry holds `Arc<dyn Notifier>`.
#[async_trait]
pub trait Notifier: Send + Sync + std::fmt::Debug {
    /// The plugin's name, as in the configuration (`sns-sms`, …).
    fn id(&self) -> &'static str;
    fn channel(&self) -> Channel;
    /// Sends the message; returns the provider's message id.
    async fn dispatch(&self, message: &Message) -> Result<String, NotifyError>;
}

/// One plugin's configuration: `{"type": "sns-sms"}`, `{"type": "sns-voice", "topic_arn": …}`,
/// `{"type": "email", "sender": …}`, `{"type": "log", "channel": "sms"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PluginConfig {
    SnsSms {
        #[serde(default)]
        sender_id: Option<String>,
    },
    SnsVoice {
        topic_arn: String,
    },
    Email {
        sender: String,
    },
    Log {
        channel: Channel,
    },
}

impl PluginConfig {
    pub fn channel(&self) -> Channel {
        match self {
            PluginConfig::SnsSms { .. } => Channel::Sms,
            PluginConfig::SnsVoice { .. } => Channel::Voice,
            PluginConfig::Email { .. } => Channel::Email,
            PluginConfig::Log { channel } => *channel,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    #[error("PORTCULLIS_NOTIFIERS is not valid: {0}")]
    Invalid(String),
    #[error("PORTCULLIS_NOTIFIERS configures two notifiers for channel {0}")]
    Duplicate(&'static str),
    #[error("PORTCULLIS_NOTIFIERS: {0}")]
    Missing(String),
}

/// The AWS clients plugins may need (built once at cold start).
#[derive(Debug, Clone)]
pub struct Clients {
    pub sns: aws_sdk_sns::Client,
    pub ses: aws_sdk_ses::Client,
}

/// Channel → notifier, built once.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    by_channel: BTreeMap<Channel, Arc<dyn Notifier>>,
}

impl Registry {
    /// Parses `PORTCULLIS_NOTIFIERS` (a JSON array of plugin configs).
    pub fn parse_config(json: &str) -> Result<Vec<PluginConfig>, RegistryError> {
        let configs: Vec<PluginConfig> =
            serde_json::from_str(json).map_err(|e| RegistryError::Invalid(e.to_string()))?;
        for config in &configs {
            let empty = match config {
                PluginConfig::SnsVoice { topic_arn } => topic_arn.trim().is_empty(),
                PluginConfig::Email { sender } => !sender.contains('@'),
                _ => false,
            };
            if empty {
                return Err(RegistryError::Invalid(format!("{config:?} is incomplete")));
            }
        }
        Ok(configs)
    }

    /// Builds the plugins; refuses two plugins for one channel.
    pub fn build(configs: &[PluginConfig], clients: &Clients) -> Result<Self, RegistryError> {
        let mut registry = Registry::default();
        for config in configs {
            let plugin: Arc<dyn Notifier> = match config {
                PluginConfig::SnsSms { sender_id } => {
                    Arc::new(sns::SnsSms::new(clients.sns.clone(), sender_id.clone()))
                }
                PluginConfig::SnsVoice { topic_arn } => {
                    Arc::new(sns::SnsVoice::new(clients.sns.clone(), topic_arn))
                }
                PluginConfig::Email { sender } => {
                    Arc::new(email::SesEmail::new(clients.ses.clone(), sender))
                }
                PluginConfig::Log { channel } => Arc::new(log::LogNotifier::new(*channel)),
            };
            registry.add(plugin)?;
        }
        Ok(registry)
    }

    /// Adds a plugin (also how tests install a [`RecordingNotifier`]).
    pub fn add(&mut self, plugin: Arc<dyn Notifier>) -> Result<(), RegistryError> {
        let channel = plugin.channel();
        if self.by_channel.contains_key(&channel) {
            return Err(RegistryError::Duplicate(channel.as_str()));
        }
        self.by_channel.insert(channel, plugin);
        Ok(())
    }

    pub fn get(&self, channel: Channel) -> Option<&Arc<dyn Notifier>> {
        self.by_channel.get(&channel)
    }

    pub fn channels(&self) -> Vec<Channel> {
        self.by_channel.keys().copied().collect()
    }
}

/// The default plugins when `PORTCULLIS_NOTIFIERS` is not set: SNS text, SNS voice to the
/// template's topic, SES email from the template's sender.
pub fn default_configs(
    voice_topic_arn: Option<&str>,
    email_sender: Option<&str>,
) -> Vec<PluginConfig> {
    let mut configs = vec![PluginConfig::SnsSms { sender_id: None }];
    if let Some(topic_arn) = voice_topic_arn.filter(|t| !t.is_empty()) {
        configs.push(PluginConfig::SnsVoice {
            topic_arn: topic_arn.to_owned(),
        });
    }
    if let Some(sender) = email_sender.filter(|s| s.contains('@')) {
        configs.push(PluginConfig::Email {
            sender: sender.to_owned(),
        });
    }
    configs
}

/// Keeps every message in memory (tests read codes back from it), for all channels.
#[derive(Debug, Default, Clone)]
pub struct RecordingNotifier {
    channel: Option<Channel>,
    sent: Arc<Mutex<Vec<Message>>>,
    fail: Arc<Mutex<bool>>,
}

impl RecordingNotifier {
    pub fn for_channel(channel: Channel, shared: &RecordingNotifier) -> Self {
        RecordingNotifier {
            channel: Some(channel),
            sent: shared.sent.clone(),
            fail: shared.fail.clone(),
        }
    }

    /// A registry with a recording notifier on every channel, all sharing one outbox.
    pub fn registry() -> (Registry, RecordingNotifier) {
        let shared = RecordingNotifier::default();
        let mut registry = Registry::default();
        for channel in [Channel::Sms, Channel::Voice, Channel::Email] {
            let _ = registry.add(Arc::new(RecordingNotifier::for_channel(channel, &shared)));
        }
        (registry, shared)
    }

    pub fn sent(&self) -> Vec<Message> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Makes every later dispatch fail (provider outage).
    pub fn set_failing(&self, failing: bool) {
        if let Ok(mut f) = self.fail.lock() {
            *f = failing;
        }
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    fn id(&self) -> &'static str {
        "recording"
    }

    fn channel(&self) -> Channel {
        self.channel.unwrap_or(Channel::Sms)
    }

    async fn dispatch(&self, message: &Message) -> Result<String, NotifyError> {
        if self.fail.lock().map(|f| *f).unwrap_or(false) {
            return Err(NotifyError::Failed {
                provider: "recording",
                reason: "set to fail".into(),
            });
        }
        let mut sent = self.sent.lock().map_err(|_| NotifyError::Failed {
            provider: "recording",
            reason: "poisoned".into(),
        })?;
        sent.push(message.clone());
        Ok(format!("rec-{}", sent.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_type_tagged_and_strict() {
        let configs = Registry::parse_config(
            r#"[{"type":"sns-sms"},{"type":"sns-voice","topic_arn":"arn:aws:sns:us-east-1:1:t"},{"type":"log","channel":"email"}]"#,
        )
        .unwrap();
        assert_eq!(configs.len(), 3);
        assert!(Registry::parse_config(r#"[{"type":"carrier-pigeon"}]"#).is_err());
        assert!(Registry::parse_config(r#"[{"type":"sns-sms","colour":"red"}]"#).is_err());
        assert!(Registry::parse_config(r#"[{"type":"sns-voice","topic_arn":" "}]"#).is_err());
        assert!(Registry::parse_config(r#"[{"type":"email","sender":"nobody"}]"#).is_err());
        assert!(Registry::parse_config("{").is_err());
    }

    #[test]
    fn two_plugins_for_one_channel_are_refused() {
        let mut registry = Registry::default();
        registry
            .add(Arc::new(log::LogNotifier::new(Channel::Sms)))
            .unwrap();
        assert_eq!(
            registry
                .add(Arc::new(log::LogNotifier::new(Channel::Sms)))
                .unwrap_err(),
            RegistryError::Duplicate("sms")
        );
    }

    #[test]
    fn message_debug_never_shows_the_text_or_code() {
        let m = Message {
            channel: Channel::Sms,
            to: "+12025550143".into(),
            subject: "s".into(),
            text: "123456 is your code".into(),
            code: Some("123456".into()),
            purpose: "sign_in".into(),
        };
        assert!(!format!("{m:?}").contains("123456"));
    }
}
