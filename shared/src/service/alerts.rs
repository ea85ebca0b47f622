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
            Alert::PasskeyCounterRegression => "alert_passkey_counter_regression",
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
        // What the alert names comes from a queued message: rendered only as a known kind or a
        // short, plain device name, so no message can put a link or a story in the bank's mail.
        // A dot survives only between digits ("Mac OS X 10.15"), so no domain can be spelt.
        let device = |name: &str| -> String {
            let chars: Vec<char> = name.chars().take(200).collect();
            let plain: String = chars
                .iter()
                .enumerate()
                .filter(|&(i, &c)| {
                    c.is_alphanumeric()
                        || matches!(c, ' ' | '-' | '(' | ')')
                        || (c == '.'
                            && i > 0
                            && chars[i - 1].is_ascii_digit()
                            && chars.get(i + 1).is_some_and(char::is_ascii_digit))
                })
                .map(|(_, &c)| c)
                .take(60)
                .collect();
            match plain.trim() {
                "" => "a device".into(),
                plain => plain.to_owned(),
            }
        };
        let kind = |kind: &str| -> &'static str {
            match kind {
                "phone" => "a phone",
                "email" => "an email address",
                "totp" => "an authenticator app",
                "passkey" => "a passkey",
                _ => "a new method",
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
            Alert::PasskeyCounterRegression => (
                "A passkey may have been copied".into(),
                format!(
                    "Portcullis: a sign-in with one of your passkeys was refused because its security counter went back, which can mean the passkey was copied. Remove that passkey and add a new one. {tail}"
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
                    "Portcullis: {} is now trusted to sign in without a code for {}. {tail}",
                    device(name),
                    span(settings.device_trust_secs)
                ),
            ),
            Alert::FactorAdded { kind: kind_name } => (
                "A sign-in method was added".into(),
                format!(
                    "Portcullis: {} was added to your account as a sign-in method. {tail}",
                    kind(kind_name)
                ),
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
                    "Portcullis: someone signed in to your account from {}, a device not seen before. {tail}",
                    device(name)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_names_are_rendered_plain_and_short() {
        let settings = crate::config::Settings::defaults("unused");
        let (_, text) = Alert::NewDeviceSignIn {
            name: "Firefox on Linux <a href=\"https://evil.example/login\">verify now</a>"
                .repeat(5),
        }
        .text(&settings);
        assert!(
            !text.contains('<') && !text.contains('/') && !text.contains("evil.example"),
            "{text}"
        );
        let (_, text) = Alert::NewDeviceSignIn {
            name: "Safari 17.1 on Mac OS X 10.15".into(),
        }
        .text(&settings);
        assert!(
            text.contains("from Safari 17.1 on Mac OS X 10.15, a device"),
            "{text}"
        );
        assert!(text.len() < 300, "{text}");
        let (_, text) = Alert::FactorAdded {
            kind: "totp; call +1 555 0100 to cancel".into(),
        }
        .text(&settings);
        assert!(text.contains("a new method was added"), "{text}");
        let (_, text) = Alert::FactorAdded {
            kind: "totp".into(),
        }
        .text(&settings);
        assert!(text.contains("an authenticator app was added"), "{text}");
    }
}
