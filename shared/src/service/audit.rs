//! The audit log (SPEC §8): every security event appended with time, actor, subject, source
//! IP, User-Agent and outcome. A write that fails does not undo the action it describes: the
//! event is logged as an error (alarmed on) and queued in the outbox, whose sender writes it
//! again (SPEC §15), so an event is lost only if both DynamoDB and SQS refuse it.

use crate::crypto::random_id;
use crate::deps::Deps;
use crate::identity::UserId;
use crate::request::RequestMeta;
use crate::storage::AuditEvent;

/// Who did it.
#[derive(Debug, Clone)]
pub enum Actor<'a> {
    /// The user themselves.
    User,
    Admin(&'a UserId),
    /// The operator CLI (`portcullis-admin`), outside the API.
    Operator,
    System,
}

/// Every event the audit log records (SPEC §8). The variant decides the stored kind, the
/// outcome and the actor, so a call site cannot pair them wrongly; its fields are the detail.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A sign-in completed; `method`: how the last factor was proved.
    SignInSucceeded {
        method: &'a str,
    },
    SignInFailed,
    /// Nothing was issued after all: the user changed under the sign-in, or a write failed.
    SignInAborted {
        reason: &'a str,
    },
    /// The failure that started the password lock.
    LockStarted,
    /// A sign-in from a device not seen before (flagged; the user is alerted).
    NewDevice {
        name: &'a str,
    },
    CodeSent {
        channel: &'a str,
        purpose: &'a str,
    },
    SecondFactorFailed {
        method: &'a str,
        attempt: u32,
    },
    SecondFactorLocked {
        attempts: u32,
    },
    PasskeyCounterRegression {
        factor_id: &'a str,
        error: String,
    },
    DeviceTrusted {
        name: &'a str,
    },
    DeviceRemoved,
    DevicesRemoved {
        count: u32,
    },
    /// Removing the last factor also removed the trusted devices.
    DevicesRemovedWithLastFactor {
        count: u32,
    },
    /// `kind`: the factor's kind name. A verified replacement number is [`Event::PhoneChanged`].
    FactorAdded {
        kind: &'a str,
    },
    PhoneChanged {
        kind: &'a str,
    },
    FactorRemoved,
    PasswordChanged,
    /// The change required after a reset or an admin's order, made once MFA passed.
    PasswordChangedAsRequired,
    PasswordReset,
    /// A wrong current password when changing the password.
    PasswordChangeFailed,
    /// A wrong current password when adding a passkey in a session.
    PasskeyAddFailed,
    RecoveryCodesIssued {
        count: usize,
    },
    RecoveryCodeUsed {
        remaining: u32,
    },
    /// Deactivated by the inactivity sweep.
    InactiveDeactivated,
    UserInvited {
        by: &'a UserId,
    },
    InvitationAccepted,
    /// `kind`: the action's own kind (`admin_unlock`, `admin_deactivate`, …).
    AdminAction {
        kind: &'static str,
        by: &'a UserId,
    },
    RoleGranted {
        role: &'a str,
        by: &'a UserId,
    },
    RoleRevoked {
        role: &'a str,
        by: &'a UserId,
    },
    /// A two-admin request filed, refused or approved; `action`: its kind.
    TwoAdminRequested {
        action: &'a str,
        reason: &'a str,
        by: &'a UserId,
    },
    TwoAdminRefused {
        action: &'a str,
        reason: &'static str,
        by: &'a UserId,
    },
    TwoAdminApproved {
        action: &'a str,
        requested_by: &'a str,
        by: &'a UserId,
    },
    /// Made with a password by the operator CLI; `operator`: the name it reported.
    OperatorCreatedUser {
        operator: &'a str,
        roles: &'a str,
    },
    /// Both locks ended by the operator CLI.
    OperatorUnlocked {
        operator: &'a str,
    },
}

impl Event<'_> {
    /// The kind stored and shown in `GET /v1/me/events` and the admin's event list.
    pub fn kind(&self) -> String {
        let fixed = match self {
            Event::SignInSucceeded { .. } => "sign_in_succeeded",
            Event::SignInFailed => "sign_in_failed",
            Event::SignInAborted { .. } => "sign_in_aborted",
            Event::LockStarted => "lock_started",
            Event::NewDevice { .. } => "new_device",
            Event::CodeSent { .. } => "code_sent",
            Event::SecondFactorFailed { .. } => "second_factor_failed",
            Event::SecondFactorLocked { .. } => "second_factor_locked",
            Event::PasskeyCounterRegression { .. } => "passkey_counter_regression",
            Event::DeviceTrusted { .. } => "device_trusted",
            Event::DeviceRemoved => "device_removed",
            Event::DevicesRemoved { .. } | Event::DevicesRemovedWithLastFactor { .. } => {
                "devices_removed"
            }
            Event::FactorAdded { .. } => "factor_added",
            Event::PhoneChanged { .. } => "phone_changed",
            Event::FactorRemoved => "factor_removed",
            Event::PasswordChanged | Event::PasswordChangedAsRequired => "password_changed",
            Event::PasswordReset => "password_reset",
            Event::PasswordChangeFailed => "password_change_failed",
            Event::PasskeyAddFailed => "passkey_add_failed",
            Event::RecoveryCodesIssued { .. } => "recovery_codes_issued",
            Event::RecoveryCodeUsed { .. } => "recovery_code_used",
            Event::InactiveDeactivated => "account_deactivated",
            Event::UserInvited { .. } => "user_invited",
            Event::InvitationAccepted => "invitation_accepted",
            Event::AdminAction { kind, .. } => kind,
            Event::RoleGranted { .. } => "role_granted",
            Event::RoleRevoked { .. } => "role_revoked",
            Event::TwoAdminRequested { action, .. } => return format!("{action}_requested"),
            Event::TwoAdminRefused { action, .. } => return format!("{action}_refused"),
            Event::TwoAdminApproved { action, .. } => return format!("{action}_approved"),
            Event::OperatorCreatedUser { .. } => "operator_create_user",
            Event::OperatorUnlocked { .. } => "operator_unlock",
        };
        fixed.to_owned()
    }

    pub fn outcome(&self) -> &'static str {
        match self {
            Event::SignInFailed
            | Event::SignInAborted { .. }
            | Event::SecondFactorFailed { .. }
            | Event::PasswordChangeFailed
            | Event::PasskeyAddFailed
            | Event::TwoAdminRefused { .. } => "failure",
            Event::LockStarted
            | Event::NewDevice { .. }
            | Event::SecondFactorLocked { .. }
            | Event::PasskeyCounterRegression { .. } => "flagged",
            _ => "success",
        }
    }

    pub fn actor(&self) -> Actor<'_> {
        match self {
            Event::SignInAborted { .. }
            | Event::LockStarted
            | Event::NewDevice { .. }
            | Event::SecondFactorLocked { .. }
            | Event::PasskeyCounterRegression { .. }
            | Event::DevicesRemovedWithLastFactor { .. }
            | Event::InactiveDeactivated => Actor::System,
            Event::UserInvited { by }
            | Event::AdminAction { by, .. }
            | Event::RoleGranted { by, .. }
            | Event::RoleRevoked { by, .. }
            | Event::TwoAdminRequested { by, .. }
            | Event::TwoAdminRefused { by, .. }
            | Event::TwoAdminApproved { by, .. } => Actor::Admin(by),
            Event::OperatorCreatedUser { .. } | Event::OperatorUnlocked { .. } => Actor::Operator,
            _ => Actor::User,
        }
    }

    pub fn detail(&self) -> Option<String> {
        match self {
            Event::SignInSucceeded { method } => Some((*method).to_owned()),
            Event::SignInAborted { reason } => Some((*reason).to_owned()),
            Event::NewDevice { name } | Event::DeviceTrusted { name } => Some((*name).to_owned()),
            Event::CodeSent { channel, purpose } => Some(format!("{channel} ({purpose})")),
            Event::SecondFactorFailed { method, attempt } => {
                Some(format!("{method} (answer {attempt} of the run)"))
            }
            Event::SecondFactorLocked { attempts } => Some(format!("{attempts} wrong answers")),
            Event::PasskeyCounterRegression { factor_id, error } => {
                Some(format!("{factor_id} ({error})"))
            }
            Event::DevicesRemoved { count } => Some(format!("{count} trusted devices")),
            Event::DevicesRemovedWithLastFactor { count } => Some(format!(
                "{count} trusted devices: the last factor was removed"
            )),
            Event::FactorAdded { kind } | Event::PhoneChanged { kind } => Some((*kind).to_owned()),
            Event::PasswordChangedAsRequired => Some("required change after MFA".into()),
            Event::PasswordChangeFailed | Event::PasskeyAddFailed => {
                Some("wrong current password".into())
            }
            Event::RecoveryCodesIssued { count } => {
                Some(format!("{count} codes; the earlier set revoked"))
            }
            Event::RecoveryCodeUsed { remaining } => Some(format!("{remaining} remain")),
            Event::InactiveDeactivated => Some("no sign-in for the inactivity period".into()),
            Event::RoleGranted { role, .. } | Event::RoleRevoked { role, .. } => {
                Some((*role).to_owned())
            }
            Event::TwoAdminRequested { reason, .. } => Some((*reason).to_owned()),
            Event::TwoAdminRefused { reason, .. } => Some((*reason).to_owned()),
            Event::TwoAdminApproved { requested_by, .. } => {
                Some(format!("requested by {requested_by}"))
            }
            Event::OperatorCreatedUser {
                operator,
                roles: "",
            } => Some(format!("by {operator}; no roles")),
            Event::OperatorCreatedUser { operator, roles } => {
                Some(format!("by {operator}; roles {roles}"))
            }
            Event::OperatorUnlocked { operator } => Some(format!("by {operator}")),
            _ => None,
        }
    }
}

/// Appends `event` about `subject`, caused by a request from `from` (its source IP and
/// User-Agent are recorded): the service passes down the caller it was given. What no request
/// causes (the inactivity sweep) is [`record_by_system`], so a request's event cannot be
/// recorded without its caller by mistake.
pub async fn record(deps: &Deps, subject: &UserId, event: Event<'_>, from: &RequestMeta) {
    append(deps, subject, event, Some(from)).await;
}

/// Appends `event` about `subject` that no request caused (no source IP or User-Agent).
pub async fn record_by_system(deps: &Deps, subject: &UserId, event: Event<'_>) {
    append(deps, subject, event, None).await;
}

async fn append(deps: &Deps, subject: &UserId, event: Event<'_>, meta: Option<&RequestMeta>) {
    let kind = event.kind();
    let outcome = event.outcome();
    let detail = event.detail();
    let actor = event.actor();
    let now = deps.clock.now();
    let clip = |s: &String| s.chars().take(512).collect::<String>();
    let event = AuditEvent {
        subject: subject.clone(),
        event_id: random_id("ev"),
        at: now,
        kind: kind.clone(),
        actor: match actor {
            Actor::User => "self".to_owned(),
            Actor::Admin(id) => id.to_string(),
            Actor::Operator => "operator".to_owned(),
            Actor::System => "system".to_owned(),
        },
        source_ip: meta.and_then(|m| m.source_ip.clone()),
        user_agent: meta.and_then(|m| m.user_agent.as_ref()).map(clip),
        outcome: outcome.to_owned(),
        detail,
        expires_at: now.plus_secs(deps.settings.retention_secs),
    };
    match deps.stores.audit.append_event(&event).await {
        Ok(()) => {}
        // The event id is new, so a refused "only if absent" put means an earlier attempt of
        // this same write (retried by the SDK after a timeout) already stored it.
        Err(crate::error::StoreError::ConditionFailed) => {}
        // Not lost: queued for the sender, which writes it again (same event id, so a write
        // that did land is not doubled); alarmed on by its log line.
        Err(err) => {
            tracing::error!(error = %err, event = "audit_write_failed", kind = %kind, "audit event queued for a second write");
            crate::service::sender::enqueue(deps, crate::outbox::Outgoing::Audit { event }).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor_name(actor: &Actor<'_>) -> String {
        match actor {
            Actor::User => "self".into(),
            Actor::Admin(id) => id.to_string(),
            Actor::Operator => "operator".into(),
            Actor::System => "system".into(),
        }
    }

    /// The kinds are part of the API (`GET /v1/me/events`, the admin's event list, alarms on
    /// them): each variant keeps its kind, outcome and actor.
    #[test]
    fn every_event_keeps_its_kind_outcome_and_actor() {
        let admin = UserId::parse("admin@example.com").unwrap();
        let by = &admin;
        let cases: Vec<(Event<'_>, &str, &str, &str, Option<&str>)> = vec![
            (
                Event::SignInSucceeded { method: "totp" },
                "sign_in_succeeded",
                "success",
                "self",
                Some("totp"),
            ),
            (
                Event::SignInFailed,
                "sign_in_failed",
                "failure",
                "self",
                None,
            ),
            (
                Event::SignInAborted { reason: "r" },
                "sign_in_aborted",
                "failure",
                "system",
                Some("r"),
            ),
            (
                Event::LockStarted,
                "lock_started",
                "flagged",
                "system",
                None,
            ),
            (
                Event::NewDevice { name: "n" },
                "new_device",
                "flagged",
                "system",
                Some("n"),
            ),
            (
                Event::CodeSent {
                    channel: "sms",
                    purpose: "sign_in",
                },
                "code_sent",
                "success",
                "self",
                Some("sms (sign_in)"),
            ),
            (
                Event::SecondFactorFailed {
                    method: "totp",
                    attempt: 2,
                },
                "second_factor_failed",
                "failure",
                "self",
                Some("totp (answer 2 of the run)"),
            ),
            (
                Event::SecondFactorLocked { attempts: 10 },
                "second_factor_locked",
                "flagged",
                "system",
                Some("10 wrong answers"),
            ),
            (
                Event::PasskeyCounterRegression {
                    factor_id: "f",
                    error: "e".into(),
                },
                "passkey_counter_regression",
                "flagged",
                "system",
                Some("f (e)"),
            ),
            (
                Event::DeviceTrusted { name: "n" },
                "device_trusted",
                "success",
                "self",
                Some("n"),
            ),
            (
                Event::DeviceRemoved,
                "device_removed",
                "success",
                "self",
                None,
            ),
            (
                Event::DevicesRemoved { count: 2 },
                "devices_removed",
                "success",
                "self",
                Some("2 trusted devices"),
            ),
            (
                Event::DevicesRemovedWithLastFactor { count: 2 },
                "devices_removed",
                "success",
                "system",
                Some("2 trusted devices: the last factor was removed"),
            ),
            (
                Event::FactorAdded { kind: "totp" },
                "factor_added",
                "success",
                "self",
                Some("totp"),
            ),
            (
                Event::PhoneChanged { kind: "phone" },
                "phone_changed",
                "success",
                "self",
                Some("phone"),
            ),
            (
                Event::FactorRemoved,
                "factor_removed",
                "success",
                "self",
                None,
            ),
            (
                Event::PasswordChanged,
                "password_changed",
                "success",
                "self",
                None,
            ),
            (
                Event::PasswordChangedAsRequired,
                "password_changed",
                "success",
                "self",
                Some("required change after MFA"),
            ),
            (
                Event::PasswordReset,
                "password_reset",
                "success",
                "self",
                None,
            ),
            (
                Event::PasswordChangeFailed,
                "password_change_failed",
                "failure",
                "self",
                Some("wrong current password"),
            ),
            (
                Event::PasskeyAddFailed,
                "passkey_add_failed",
                "failure",
                "self",
                Some("wrong current password"),
            ),
            (
                Event::RecoveryCodesIssued { count: 10 },
                "recovery_codes_issued",
                "success",
                "self",
                Some("10 codes; the earlier set revoked"),
            ),
            (
                Event::RecoveryCodeUsed { remaining: 9 },
                "recovery_code_used",
                "success",
                "self",
                Some("9 remain"),
            ),
            (
                Event::InactiveDeactivated,
                "account_deactivated",
                "success",
                "system",
                Some("no sign-in for the inactivity period"),
            ),
            (
                Event::UserInvited { by },
                "user_invited",
                "success",
                "admin@example.com",
                None,
            ),
            (
                Event::InvitationAccepted,
                "invitation_accepted",
                "success",
                "self",
                None,
            ),
            (
                Event::AdminAction {
                    kind: "admin_unlock",
                    by,
                },
                "admin_unlock",
                "success",
                "admin@example.com",
                None,
            ),
            (
                Event::RoleGranted { role: "admin", by },
                "role_granted",
                "success",
                "admin@example.com",
                Some("admin"),
            ),
            (
                Event::RoleRevoked { role: "admin", by },
                "role_revoked",
                "success",
                "admin@example.com",
                Some("admin"),
            ),
            (
                Event::TwoAdminRequested {
                    action: "deactivate_admin",
                    reason: "why",
                    by,
                },
                "deactivate_admin_requested",
                "success",
                "admin@example.com",
                Some("why"),
            ),
            (
                Event::TwoAdminRefused {
                    action: "deactivate_admin",
                    reason: "no",
                    by,
                },
                "deactivate_admin_refused",
                "failure",
                "admin@example.com",
                Some("no"),
            ),
            (
                Event::TwoAdminApproved {
                    action: "deactivate_admin",
                    requested_by: "a@example.com",
                    by,
                },
                "deactivate_admin_approved",
                "success",
                "admin@example.com",
                Some("requested by a@example.com"),
            ),
            (
                Event::OperatorCreatedUser {
                    operator: "ops",
                    roles: "admin",
                },
                "operator_create_user",
                "success",
                "operator",
                Some("by ops; roles admin"),
            ),
            (
                Event::OperatorCreatedUser {
                    operator: "ops",
                    roles: "",
                },
                "operator_create_user",
                "success",
                "operator",
                Some("by ops; no roles"),
            ),
            (
                Event::OperatorUnlocked { operator: "ops" },
                "operator_unlock",
                "success",
                "operator",
                Some("by ops"),
            ),
        ];
        for (event, kind, outcome, actor, detail) in cases {
            assert_eq!(event.kind(), kind, "{event:?}");
            assert_eq!(event.outcome(), outcome, "{event:?}");
            assert_eq!(actor_name(&event.actor()), actor, "{event:?}");
            assert_eq!(event.detail().as_deref(), detail, "{event:?}");
        }
    }
}
