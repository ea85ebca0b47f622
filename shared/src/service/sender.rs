//! The one outbound pipeline (SPEC §15). Every message — a one-time code sent in the request,
//! or an alert, reset link, invitation taken from the outbox by the sender function — leaves
//! through [`send`], which dispatches it through the notifier registry and records a delivery
//! (channel, purpose, provider, provider message id, outcome, masked destination; never the
//! content). [`enqueue`] queues an [`Outgoing`]; [`deliver`] is what the sender does with one.

use crate::clock::UnixTime;
use crate::crypto::{random_id, random_token, token_digest};
use crate::deps::Deps;
use crate::error::{ApiError, StoreError};
use crate::identity::UserId;
use crate::notifier::{Channel, Message};
use crate::outbox::Outgoing;
use crate::service::alerts;
use crate::service::sign_in::{mask_email, mask_phone};
use crate::storage::{DeliveryRecord, InvitationRecord, ResetRecord, UserStatus};

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No notifier is configured for the channel.
    #[error("no notifier for {0}")]
    NoChannel(&'static str),
    /// The provider refused or could not be reached (a failed delivery is recorded).
    #[error("{0}")]
    Provider(String),
}

/// Dispatches one message to `user_id` and records the delivery, whatever the outcome. Returns
/// the provider's message id.
pub async fn send(deps: &Deps, user_id: &UserId, message: &Message) -> Result<String, SendError> {
    send_then(deps, user_id, message, |_| async {}).await.0
}

/// [`send`], and `then(sent)` once the provider has answered, at the same time as the delivery
/// is recorded (a caller's own bookkeeping of the outcome costs no extra round trip).
pub async fn send_then<F, Fut>(
    deps: &Deps,
    user_id: &UserId,
    message: &Message,
    then: F,
) -> (Result<String, SendError>, Fut::Output)
where
    F: FnOnce(bool) -> Fut,
    Fut: std::future::Future,
{
    let Some(notifier) = deps.notifiers.get(message.channel).cloned() else {
        let after = then(false).await;
        return (Err(SendError::NoChannel(message.channel.as_str())), after);
    };
    let result = notifier.dispatch(message).await;
    let now = deps.clock.now();
    let record = DeliveryRecord {
        user_id: user_id.clone(),
        delivery_id: random_id("dl"),
        at: now,
        channel: message.channel.as_str().to_owned(),
        provider: notifier.id().to_owned(),
        provider_message_id: result.as_ref().ok().cloned(),
        outcome: if result.is_ok() { "sent" } else { "failed" }.to_owned(),
        purpose: message.purpose.clone(),
        to_masked: mask(message.channel, &message.to),
        expires_at: now.plus_secs(deps.settings.retention_secs),
    };
    let (recorded, after) = tokio::join!(
        deps.stores.deliveries.record_delivery(&record),
        then(result.is_ok())
    );
    if let Err(err) = recorded {
        tracing::error!(error = %err, purpose = message.purpose.as_str(), "recording a delivery failed");
    }
    (
        result.map_err(|e| SendError::Provider(e.to_string())),
        after,
    )
}

/// Where a message went, masked (`***-***-0143`, `j***@e***.com`).
pub fn mask(channel: Channel, to: &str) -> String {
    match channel {
        Channel::Email => mask_email(to),
        Channel::Sms | Channel::Voice => mask_phone(to),
    }
}

/// Queues a message for the sender. Never fails the caller: when the queue cannot take it (or
/// none is configured), it is delivered here and now instead, so nothing is lost.
///
/// Except a reset request while a queue is configured: delivering it here would read the user
/// and email only real ones, so the answer's timing would tell who exists (SPEC §12). It is
/// dropped instead (logged as an error); the user asks again.
pub async fn enqueue(deps: &Deps, item: Outgoing) {
    match deps.outbox.enqueue(&item).await {
        Ok(()) => tracing::info!(event = "outbox_queued", kind = item.kind(), "queued"),
        Err(err) => {
            let no_queue = matches!(&err, StoreError::Unavailable(reason) if reason.starts_with("no outbox queue"));
            if !no_queue && matches!(item, Outgoing::PasswordReset { .. }) {
                tracing::error!(error = %err, event = "outbox_unavailable", kind = item.kind(), "outbox unavailable: reset request dropped");
                return;
            }
            if !no_queue {
                tracing::warn!(error = %err, event = "outbox_unavailable", kind = item.kind(), "outbox unavailable: delivering in the request");
            }
            if let Err(err) = deliver(deps, &item).await {
                tracing::error!(error = %err, kind = item.kind(), event = "outbox_delivery_failed", "message not delivered");
            }
        }
    }
}

/// What the sender does with one queued message. `Err` means "try again later": the queue
/// redelivers it (and after its last attempt moves it to the dead-letter queue). A message
/// that can never be delivered (an unknown user, an expired reset request) is done: `Ok`.
pub async fn deliver(deps: &Deps, item: &Outgoing) -> Result<(), ApiError> {
    match item {
        Outgoing::Alert { user_id, alert } => {
            let Ok(user_id) = UserId::parse(user_id) else {
                return Ok(());
            };
            alerts::send(deps, &user_id, alert).await
        }
        Outgoing::PasswordReset {
            user_id,
            requested_at,
        } => send_reset(deps, user_id, UnixTime(*requested_at)).await,
        Outgoing::Invitation {
            user_id,
            invited_by,
        } => send_invitation(deps, user_id, invited_by).await,
        Outgoing::Audit { event } => {
            let mut event = event.clone();
            event.expires_at = event.at.plus_secs(deps.settings.retention_secs);
            match deps.stores.audit.append_event(&event).await {
                Ok(()) | Err(StoreError::ConditionFailed) => Ok(()),
                Err(err) => Err(err.into()),
            }
        }
    }
}

/// A forgot-password request: the link is made and sent only for an active user with an email
/// address, and only while the request is younger than the link's lifetime.
async fn send_reset(deps: &Deps, user_id: &str, requested_at: UnixTime) -> Result<(), ApiError> {
    let Ok(user_id) = UserId::parse(user_id) else {
        return Ok(());
    };
    let now = deps.clock.now();
    // Never later than now: a message cannot buy a link a longer life.
    let expires_at = requested_at
        .min(now)
        .plus_secs(deps.settings.reset_ttl_secs);
    let user = deps.stores.users.get_user(&user_id).await?;
    let (Some(user), true) = (user, expires_at > now) else {
        tracing::info!(
            event = "reset_not_sent",
            "reset not sent (no such user, or too late)"
        );
        return Ok(());
    };
    let (Some(email), UserStatus::Active) = (user.email.clone(), user.status) else {
        tracing::info!(
            event = "reset_not_sent",
            "reset not sent (no email or inactive)"
        );
        return Ok(());
    };
    // A password set after the request (a change, or another reset) ends reset links (SPEC
    // §8): a request still queued then is one of them.
    if user
        .password_changed_at
        .is_some_and(|changed| changed > requested_at)
    {
        tracing::info!(
            event = "reset_not_sent",
            "reset not sent (password changed since)"
        );
        return Ok(());
    }
    let token = random_token();
    deps.stores
        .resets
        .create_reset(&ResetRecord {
            token_digest: token_digest(&token),
            user_id: user.user_id.clone(),
            created_at: now,
            expires_at,
            user_stamp: user.security_stamp,
        })
        .await?;
    let minutes = (expires_at.secs() - now.secs() + 59) / 60;
    let message = Message {
        channel: Channel::Email,
        to: email,
        subject: "Reset your Portcullis password".into(),
        text: format!(
            "Someone asked to reset the password of your user ID. To choose a new password, open this link within {minutes} minutes (it works once):\n\n{}?token={token}\n\nIf it was not you, ignore this email: your password has not changed. We will never ask you for your password or a code.",
            deps.settings.reset_url
        ),
        code: None,
        purpose: "password_reset".into(),
    };
    send(deps, &user.user_id, &message).await.map_err(|err| {
        tracing::error!(error = %err, event = "reset_email_failed", "reset email failed");
        ApiError::ServiceUnavailable
    })?;
    tracing::info!(event = "reset_link_sent", "reset link sent");
    Ok(())
}

async fn send_invitation(deps: &Deps, user_id: &str, invited_by: &str) -> Result<(), ApiError> {
    let Ok(user_id) = UserId::parse(user_id) else {
        return Ok(());
    };
    let now = deps.clock.now();
    let Some(invited) = deps.stores.users.get_user(&user_id).await? else {
        return Ok(());
    };
    let expires_at = invited
        .created_at
        .plus_secs(deps.settings.invitation_ttl_secs);
    let email = match (&invited.email, &invited.password_hash, invited.status) {
        (Some(email), None, UserStatus::Active) if expires_at > now => email.clone(),
        // Too late, the password is already set, deactivated, or no address: nothing to send.
        _ => {
            tracing::info!(
                event = "invitation_not_sent",
                "invitation not sent (too late, set up, inactive or no address)"
            );
            return Ok(());
        }
    };
    let token = random_token();
    deps.stores
        .admin
        .create_invitation(&InvitationRecord {
            token_digest: token_digest(&token),
            user_id: user_id.clone(),
            invited_by: invited_by.to_owned(),
            created_at: now,
            expires_at,
        })
        .await?;
    let hours = ((expires_at.secs() - now.secs()) + 3599) / 3600;
    let message = Message {
        channel: Channel::Email,
        to: email,
        subject: "Welcome to Portcullis: set your password".into(),
        text: format!(
            "You have been invited to Portcullis with the user ID {user_id}. Open this link within {hours} hours to choose your password (it works once):\n\n{}?token={token}\n\nAt your first sign-in you will set up a second factor. We will never ask you for your password or a code.",
            deps.settings.invitation_url
        ),
        code: None,
        purpose: "invitation".into(),
    };
    send(deps, &user_id, &message).await.map_err(|err| {
        tracing::error!(error = %err, "invitation email failed");
        ApiError::ServiceUnavailable
    })?;
    Ok(())
}
