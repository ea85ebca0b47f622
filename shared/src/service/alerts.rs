//! Alerts to the user (SPEC §8): by email where the user has one, otherwise by text to their
//! first active phone. Best effort: an alert that cannot be sent is logged (and recorded as a
//! failed delivery), never turned into a failure of the action that caused it.

use crate::crypto::random_id;
use crate::deps::Deps;
use crate::identity::UserId;
use crate::notifier::{Channel, Message};
use crate::service::sign_in::{mask_email, mask_phone};
use crate::storage::{DeliveryRecord, FactorKind, FactorStatus};

#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl Alert {
    fn purpose(&self) -> &'static str {
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

/// Sends an alert to the user; never fails the caller.
pub async fn alert(deps: &Deps, user_id: &UserId, alert: Alert) {
    if let Err(err) = try_alert(deps, user_id, &alert).await {
        tracing::warn!(error = %err, purpose = alert.purpose(), "alert not sent");
    }
}

async fn try_alert(deps: &Deps, user_id: &UserId, alert: &Alert) -> Result<(), String> {
    let user = deps
        .stores
        .users
        .get_user(user_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no such user")?;
    let (channel, to) = match user.email.clone().filter(|e| e.contains('@')) {
        Some(email) if deps.notifiers.get(Channel::Email).is_some() => (Channel::Email, email),
        _ => {
            let factors = deps
                .stores
                .factors
                .list_factors(user_id)
                .await
                .map_err(|e| e.to_string())?;
            let phone = factors.iter().find_map(|f| match &f.kind {
                FactorKind::Phone { e164, .. } if f.status == FactorStatus::Active => {
                    Some(e164.clone())
                }
                _ => None,
            });
            match (phone, user.phone.clone()) {
                (Some(p), _) | (None, Some(p)) => (Channel::Sms, p),
                (None, None) => return Err("no email or phone to alert".into()),
            }
        }
    };
    let notifier = deps
        .notifiers
        .get(channel)
        .ok_or("no notifier for the alert channel")?
        .clone();
    let (subject, text) = alert.text(&deps.settings);
    let message = Message {
        channel,
        to: to.clone(),
        subject,
        text,
        code: None,
        purpose: alert.purpose().into(),
    };
    let result = notifier.dispatch(&message).await;
    let now = deps.clock.now();
    let record = DeliveryRecord {
        user_id: user_id.clone(),
        delivery_id: random_id("dl"),
        at: now,
        channel: channel.as_str().into(),
        provider: notifier.id().into(),
        provider_message_id: result.as_ref().ok().cloned(),
        outcome: if result.is_ok() {
            "sent".into()
        } else {
            "failed".into()
        },
        purpose: alert.purpose().into(),
        to_masked: if channel == Channel::Email {
            mask_email(&to)
        } else {
            mask_phone(&to)
        },
        expires_at: now.plus_secs(deps.settings.retention_secs),
    };
    if let Err(err) = deps.stores.deliveries.record_delivery(&record).await {
        tracing::error!(error = %err, "recording an alert delivery failed");
    }
    result.map(|_| ()).map_err(|e| e.to_string())
}
