//! The outbox (SPEC §15): alerts, reset links, invitations and audit events that could not be
//! written leave the request through a queue, drained by the sender function
//! (`functions/sender`, an SQS event source mapping with a dead-letter queue), so that no request
//! waits for — or is timed by — an email provider, and a provider outage loses nothing.
//! One-time codes do not: the user is waiting, and a failed send must give the send back.
//!
//! What is queued is a typed [`Outgoing`] that names *what* to tell whom, never a secret: the
//! sender makes reset and invitation tokens itself when it sends them, so no link ever sits in
//! the queue. Adapters: [`SqsOutbox`] (production and the emulators), [`MemoryOutbox`] (tests
//! that deliver by hand), [`InlineOutbox`] (no queue configured: deliver within the request, as
//! before the outbox; in-process tests and tools).

use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::storage::AuditEvent;

/// What an alert says (SPEC §8). The sender renders it with the deployment's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Alert {
    LockStarted,
    NewTrustedDevice {
        name: String,
    },
    FactorAdded {
        kind: String,
    },
    FactorRemoved,
    PhoneChanged,
    PasswordChanged,
    RecoveryCodeUsed {
        remaining: u32,
    },
    /// The inactive-ID sweep deactivated the account.
    AccountDeactivated,
    /// An admin deactivated the account.
    DeactivatedByAdmin,
    NewDeviceSignIn {
        name: String,
    },
    /// Too many wrong second-factor answers (SPEC §12).
    SecondFactorLocked,
    /// A passkey's signature counter went back (SPEC §13): possibly a cloned authenticator.
    PasskeyCounterRegression,
}

/// One queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Outgoing {
    /// An alert for a user ID that may not exist (the 5th failed password of an unknown ID is
    /// queued too, so the request costs the same): the sender drops it then.
    Alert { user_id: String, alert: Alert },
    /// A forgot-password request within the rate limit, for an ID that may not exist: the
    /// sender makes the single-use link only for an active user with an email address, valid
    /// until `requested_at` + the reset lifetime (a `requested_at` in the future counts as now).
    PasswordReset { user_id: String, requested_at: i64 },
    /// An invitation: the sender makes the single-use link and emails it to the address *stored*
    /// with the invited user, valid until the user's creation + the invitation lifetime. The
    /// message names only whom to invite and who invited them: a message written by anyone else
    /// who can reach the queue cannot choose the address or stretch the lifetime.
    Invitation { user_id: String, invited_by: String },
    /// An audit event whose write failed in the request: written again by the sender.
    Audit { event: AuditEvent },
}

impl Outgoing {
    /// What the message is for, for logs and delivery records (never secret).
    pub fn kind(&self) -> &'static str {
        match self {
            Outgoing::Alert { .. } => "alert",
            Outgoing::PasswordReset { .. } => "password_reset",
            Outgoing::Invitation { .. } => "invitation",
            Outgoing::Audit { .. } => "audit",
        }
    }

    pub fn to_json(&self) -> Result<String, StoreError> {
        serde_json::to_string(self).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Parses a queued body; bounded, so a poisoned message cannot cost much.
    pub fn from_json(body: &str) -> Result<Outgoing, StoreError> {
        if body.len() > 64 * 1024 {
            return Err(StoreError::Corrupt("queued message too large".into()));
        }
        serde_json::from_str(body).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

/// Where queued messages go.
#[async_trait]
pub trait Outbox: Send + Sync + std::fmt::Debug {
    /// Queues one message. `Unavailable` when the queue cannot take it: the caller then
    /// delivers it itself, so nothing is lost.
    async fn enqueue(&self, item: &Outgoing) -> Result<(), StoreError>;
    /// The queue in memory, when this is one (tests deliver what it holds).
    fn memory(&self) -> Option<&MemoryOutbox> {
        None
    }
}

/// No queue: every message is delivered within the request that makes it.
#[derive(Debug, Default)]
pub struct InlineOutbox;

#[async_trait]
impl Outbox for InlineOutbox {
    async fn enqueue(&self, _item: &Outgoing) -> Result<(), StoreError> {
        Err(StoreError::Unavailable(
            "no outbox queue: delivered inline".into(),
        ))
    }
}

/// A queue in memory, for tests that check what is queued and deliver it by hand.
#[derive(Debug, Default)]
pub struct MemoryOutbox {
    items: Mutex<Vec<Outgoing>>,
}

impl MemoryOutbox {
    /// Everything queued so far, oldest first; the queue is emptied.
    pub fn take(&self) -> Vec<Outgoing> {
        self.items
            .lock()
            .map(|mut items| std::mem::take(&mut *items))
            .unwrap_or_default()
    }
}

#[async_trait]
impl Outbox for MemoryOutbox {
    async fn enqueue(&self, item: &Outgoing) -> Result<(), StoreError> {
        // Through JSON, as the real queue does: what cannot survive it fails here too.
        let item = Outgoing::from_json(&item.to_json()?)?;
        self.items
            .lock()
            .map_err(|_| StoreError::Unavailable("memory outbox poisoned".into()))?
            .push(item);
        Ok(())
    }

    fn memory(&self) -> Option<&MemoryOutbox> {
        Some(self)
    }
}

/// The SQS queue of the template (`OutboxQueue`, `PORTCULLIS_OUTBOX_QUEUE_URL`).
#[derive(Debug, Clone)]
pub struct SqsOutbox {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsOutbox {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: &str) -> Self {
        SqsOutbox {
            client,
            queue_url: queue_url.to_owned(),
        }
    }
}

#[async_trait]
impl Outbox for SqsOutbox {
    async fn enqueue(&self, item: &Outgoing) -> Result<(), StoreError> {
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(item.to_json()?)
            .send()
            .await
            .map_err(|e| {
                StoreError::Unavailable(
                    aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
                )
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_messages_round_trip_and_refuse_unknown_shapes() {
        let items = [
            Outgoing::Alert {
                user_id: "alice@example.com".into(),
                alert: Alert::RecoveryCodeUsed { remaining: 3 },
            },
            Outgoing::PasswordReset {
                user_id: "bob@example.com".into(),
                requested_at: 1_800_000_000,
            },
        ];
        for item in items {
            assert_eq!(Outgoing::from_json(&item.to_json().unwrap()).unwrap(), item);
        }
        for bad in [
            "",
            "{}",
            r#"{"kind":"alert"}"#,
            r#"{"kind":"telegram","to":"x"}"#,
            r#"{"kind":"password_reset","user_id":"a","requested_at":1,"token":"t"}"#,
        ] {
            assert!(Outgoing::from_json(bad).is_err(), "{bad}");
        }
        assert!(Outgoing::from_json(&"x".repeat(70_000)).is_err());
    }

    #[tokio::test]
    async fn the_memory_queue_keeps_order_and_empties_on_take() {
        let queue = MemoryOutbox::default();
        for n in 0..3 {
            queue
                .enqueue(&Outgoing::Alert {
                    user_id: format!("u{n}"),
                    alert: Alert::PasswordChanged,
                })
                .await
                .unwrap();
        }
        let taken = queue.take();
        assert_eq!(taken.len(), 3);
        assert!(matches!(&taken[0], Outgoing::Alert { user_id, .. } if user_id == "u0"));
        assert!(queue.take().is_empty());
    }
}
