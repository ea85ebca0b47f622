//! Alerts to the user (SPEC §8): by email where the user has one, otherwise by text to their
//! first active phone. The action that causes an alert only queues it ([`alert`], through the
//! outbox): it never waits for, nor fails because of, the provider; the sender function renders
//! and sends it ([`send`]), and the queue retries it if the provider fails.

use crate::deps::Deps;
use crate::error::ApiError;
use crate::identity::UserId;
use crate::notifier::{Channel, Message};
use crate::outbox::Outgoing;
use crate::service::sender;
use crate::storage::{FactorKind, FactorStatus};

pub use crate::outbox::Alert;

impl Alert {
    pub fn purpose(&self) -> &'static str {
        match self {
            Alert::LockStarted => "alert_lock",
            Alert::NewTrustedDevice { .. } => "alert_new_device",
            Alert::FactorAdded { .. } => "alert_factor_added",
            Alert::FactorRemoved => "alert_factor_removed",
            Alert::PhoneChanged => "alert_phone_changed",
            Alert::PasswordChanged => "alert_password_changed",
            Alert::RecoveryCodeUsed { .. } => "alert_recovery_code_used",
            Alert::AccountDeactivated => "alert_deactivated",
            Alert::DeactivatedByAdmin => "alert_deactivated_by_admin",
            Alert::SecondFactorLocked => "alert_second_factor_locked",
            Alert::NewDeviceSignIn { .. } => "alert_new_device_sign_in",
        }
    }

    /// Subject and text, with the durations of this deployment's settings.
    fn text(&self, settings: &crate::config::Settings) -> (String, String) {
        let tail = "If this was not you, contact the bank at once. We will never ask you for a code or password.";
        let span = |secs: i64| {
            if secs % 86_400 == 0 {
                format!("{} days", secs / 86_400)
            } else if secs % 3600 == 0 && secs > 3600 {
                format!("{} hours", secs / 3600)
            } else {
                format!("{} minutes", (secs + 59) / 60)
            }
        };
        match self {
            Alert::LockStarted => (
                "Your sign-in is locked".into(),
                format!(
                    "Portcullis: after several failed password attempts your user ID is locked for {}. {tail}",
                    span(settings.lockout_secs)
                ),
            ),
            Alert::SecondFactorLocked => (
                "Your second factor is locked".into(),
                format!(
                    "Portcullis: after several wrong verification codes, codes for your account are refused for {}. Someone may know your password: change it once you can sign in again. {tail}",
                    span(settings.mfa_lockout_secs)
                ),
            ),
            Alert::NewTrustedDevice { name } => (
                "A new trusted device".into(),
                format!(
                    "Portcullis: {name} is now trusted to sign in without a code for {}. {tail}",
                    span(settings.device_trust_secs)
                ),
            ),
            Alert::FactorAdded { kind } => (
                "A sign-in method was added".into(),
                format!("Portcullis: a {kind} sign-in method was added to your account. {tail}"),
            ),
            Alert::FactorRemoved => (
                "A sign-in method was removed".into(),
                format!("Portcullis: a sign-in method was removed from your account. {tail}"),
            ),
            Alert::PhoneChanged => (
                "Your phone number changed".into(),
                format!("Portcullis: the phone number used for your codes was changed. {tail}"),
            ),
            Alert::PasswordChanged => (
                "Your password changed".into(),
                format!("Portcullis: your password was changed. {tail}"),
            ),
            Alert::RecoveryCodeUsed { remaining } => (
                "A recovery code was used".into(),
                format!(
                    "Portcullis: a recovery code was used to sign in; {remaining} remain. {tail}"
                ),
            ),
            Alert::NewDeviceSignIn { name } => (
                "A sign-in from a new device".into(),
                format!(
                    "Portcullis: someone signed in to your account from {name}, a device not seen before. {tail}"
                ),
            ),
            Alert::AccountDeactivated => (
                "Your user ID was deactivated".into(),
                format!(
                    "Portcullis: your user ID was deactivated because it was not used for {}. Contact the bank to reactivate it. {tail}",
                    span(settings.inactive_after_secs)
                ),
            ),
            Alert::DeactivatedByAdmin => (
                "Your user ID was deactivated".into(),
                format!(
                    "Portcullis: the bank deactivated your user ID and signed you out everywhere. Contact the bank to reactivate it. {tail}"
                ),
            ),
        }
    }
}

/// Queues an alert for the user; never fails the caller.
pub async fn alert(deps: &Deps, user_id: &UserId, alert: Alert) {
    sender::enqueue(
        deps,
        Outgoing::Alert {
            user_id: user_id.to_string(),
            alert,
        },
    )
    .await;
}

/// Renders and sends an alert (the sender function). A user who does not exist, or has no
/// address to alert, is done (`Ok`); a provider failure is an error, so the queue retries.
pub async fn send(deps: &Deps, user_id: &UserId, alert: &Alert) -> Result<(), ApiError> {
    let Some(user) = deps.stores.users.get_user(user_id).await? else {
        return Ok(());
    };
    let email = user
        .email
        .clone()
        .filter(|e| e.contains('@') && deps.notifiers.get(Channel::Email).is_some());
    let (channel, to) = match email {
        Some(email) => (Channel::Email, email),
        None => {
            let factors = deps.stores.factors.list_factors(user_id).await?;
            let phone = factors.iter().find_map(|f| match &f.kind {
                FactorKind::Phone { e164, .. } if f.status == FactorStatus::Active => {
                    Some(e164.clone())
                }
                _ => None,
            });
            match phone.or(user.phone.clone()) {
                Some(phone) => (Channel::Sms, phone),
                None => {
                    tracing::warn!(purpose = alert.purpose(), "no email or phone to alert");
                    return Ok(());
                }
            }
        }
    };
    let (subject, text) = alert.text(&deps.settings);
    let message = Message {
        channel,
        to,
        subject,
        text,
        code: None,
        purpose: alert.purpose().into(),
    };
    sender::send(deps, user_id, &message).await.map_err(|err| {
        tracing::warn!(error = %err, purpose = alert.purpose(), "alert not sent");
        ApiError::ServiceUnavailable
    })?;
    Ok(())
}
