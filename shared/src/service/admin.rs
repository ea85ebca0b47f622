//! Administration (SPEC §8): on-boarding by invitation, unlock, deactivate, reactivate, force a
//! password change, and the two-person MFA reset — all audited.
//!
//! Every admin action needs an admin whose current user record (not only the token) has the
//! `admin` role, an elevated session (MFA within 5 minutes: admins never skip MFA), and a
//! subject other than themselves. An MFA reset needs a second, different admin to approve.

use serde::{Deserialize, Serialize};

use crate::crypto::{SecretString, random_id, random_token, token_digest};
use crate::deps::Deps;
use crate::edge::RequestMeta;
use crate::error::{ApiError, StoreError};
use crate::identity::UserId;
use crate::notifier::{Channel, Message};
use crate::policy;
use crate::service::alerts::{self, Alert};
use crate::service::audit::{self, Actor};
use crate::service::password::revoke_access;
use crate::service::sign_in::{lockout_key, mask_email};
use crate::service::tokens::Caller;
use crate::storage::{InvitationRecord, MfaResetRequest, UserRecord, UserStatus};

pub const ADMIN_ROLE: &str = "admin";
/// Roles an admin may grant.
pub const ROLES: &[&str] = &["admin", "support"];

/// The caller as an admin, checked against their current record.
pub async fn require_admin(deps: &Deps, caller: &Caller) -> Result<UserRecord, ApiError> {
    if !caller.claims.roles.iter().any(|r| r == ADMIN_ROLE) {
        return Err(ApiError::Forbidden);
    }
    let admin = deps
        .stores
        .users
        .get_user(&caller.user_id)
        .await?
        .ok_or(ApiError::Forbidden)?;
    if admin.status != UserStatus::Active || !admin.roles.iter().any(|r| r == ADMIN_ROLE) {
        return Err(ApiError::Forbidden);
    }
    caller.require_step_up(deps)?;
    Ok(admin)
}

fn not_self(admin: &UserRecord, subject: &UserId) -> Result<(), ApiError> {
    if &admin.user_id == subject {
        return Err(ApiError::Forbidden);
    }
    Ok(())
}

async fn existing(deps: &Deps, user_id: &str) -> Result<UserRecord, ApiError> {
    let id = UserId::parse(user_id)?;
    deps.stores
        .users
        .get_user(&id)
        .await?
        .ok_or(ApiError::NotFound)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    pub user_id: String,
    pub email: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Invited {
    pub user_id: UserId,
    pub invitation: InvitationView,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InvitationView {
    pub sent_to: String,
    pub expires_at: i64,
}

/// `POST /v1/admin/users`: creates the user without a password and emails a single-use
/// invitation (72 hours) to set one; the first sign-in then requires MFA enrolment.
pub async fn invite(
    deps: &Deps,
    caller: &Caller,
    request: InviteRequest,
    meta: &RequestMeta,
) -> Result<Invited, ApiError> {
    let admin = require_admin(deps, caller).await?;
    let user_id = UserId::parse(&request.user_id)?;
    let email = request.email.trim().to_owned();
    if email.len() > 254
        || !email.contains('@')
        || email.starts_with('@')
        || email.ends_with('@')
        || email.chars().any(char::is_whitespace)
    {
        return Err(ApiError::validation("email must be an email address."));
    }
    let phone = match &request.phone {
        Some(p) => Some(crate::phone::Phone::parse(p)?.e164().to_owned()),
        None => None,
    };
    let roles = request.roles.unwrap_or_default();
    if let Some(bad) = roles.iter().find(|r| !ROLES.contains(&r.as_str())) {
        return Err(ApiError::validation(format!(
            "Unknown role {bad:?}: roles are {}.",
            ROLES.join(", ")
        )));
    }
    let now = deps.clock.now();
    let user = UserRecord {
        user_id: user_id.clone(),
        email: Some(email.clone()),
        phone,
        password_hash: None,
        status: UserStatus::Active,
        roles,
        created_at: now,
        password_changed_at: None,
        last_sign_in_at: None,
        must_change_password: false,
        password_history: vec![],
    };
    match deps.stores.users.create_user(&user).await {
        Ok(()) => {}
        Err(StoreError::ConditionFailed) => {
            return Err(ApiError::Conflict("This user ID already exists.".into()));
        }
        Err(err) => return Err(err.into()),
    }
    let token = random_token();
    let expires_at = now.plus_secs(deps.settings.invitation_ttl_secs);
    deps.stores
        .admin
        .create_invitation(&InvitationRecord {
            token_digest: token_digest(&token),
            user_id: user_id.clone(),
            invited_by: admin.user_id.to_string(),
            created_at: now,
            expires_at,
        })
        .await?;
    let hours = deps.settings.invitation_ttl_secs / 3600;
    let message = Message {
        channel: Channel::Email,
        to: email.clone(),
        subject: "Welcome to Portcullis: set your password".into(),
        text: format!(
            "You have been invited to Portcullis with the user ID {user_id}. Open this link within {hours} hours to choose your password (it works once):\n\n{}?token={token}\n\nAt your first sign-in you will set up a second factor. We will never ask you for your password or a code.",
            deps.settings.invitation_url
        ),
        code: None,
        purpose: "invitation".into(),
    };
    match deps.notifiers.get(Channel::Email) {
        Some(n) => {
            if let Err(err) = n.dispatch(&message).await {
                tracing::error!(error = %err, "invitation email failed");
                return Err(ApiError::ServiceUnavailable);
            }
        }
        None => return Err(ApiError::ServiceUnavailable),
    }
    audit::record(
        deps,
        &user_id,
        "user_invited",
        Actor::Admin(&admin.user_id),
        Some(meta),
        "success",
        None,
    )
    .await;
    Ok(Invited {
        user_id,
        invitation: InvitationView {
            sent_to: mask_email(&email),
            expires_at: expires_at.secs(),
        },
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    pub password: SecretString,
}

/// `POST /v1/invitations/{token}/accept`: sets the first password (policy applies), once.
pub async fn accept(
    deps: &Deps,
    token: &str,
    request: AcceptRequest,
    meta: &RequestMeta,
) -> Result<(), ApiError> {
    if request.password.len() > deps.settings.max_password_bytes {
        return Err(ApiError::validation(format!(
            "The password must be at most {} characters.",
            policy::MAX_CHARS
        )));
    }
    let invalid =
        || ApiError::validation("This invitation is not valid or has expired: ask for a new one.");
    if token.is_empty() || token.len() > 128 {
        return Err(invalid());
    }
    let now = deps.clock.now();
    let Some(invitation) = deps
        .stores
        .admin
        .take_invitation(&token_digest(token), now)
        .await?
    else {
        return Err(invalid());
    };
    let user = deps
        .stores
        .users
        .get_user(&invitation.user_id)
        .await?
        .ok_or_else(invalid)?;
    if let Err(refusal) = policy::check(
        &deps.hasher,
        request.password.expose(),
        &user.user_id,
        None,
        &[],
    )
    .await
    {
        deps.stores.admin.create_invitation(&invitation).await?;
        return Err(refusal);
    }
    let hasher = deps.hasher.clone();
    let secret = request.password.clone();
    let hash = tokio::task::spawn_blocking(move || hasher.hash(secret.expose().as_bytes()))
        .await
        .map_err(|_| ApiError::ServiceUnavailable)?
        .map_err(|_| ApiError::ServiceUnavailable)?;
    match deps
        .stores
        .users
        .set_password(&user.user_id, None, &hash, &[], now)
        .await
    {
        Ok(()) => {}
        Err(StoreError::ConditionFailed) => return Err(invalid()),
        Err(err) => return Err(err.into()),
    }
    audit::record(
        deps,
        &user.user_id,
        "invitation_accepted",
        Actor::User,
        Some(meta),
        "success",
        None,
    )
    .await;
    Ok(())
}

/// The simple admin actions on one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Unlock,
    Deactivate,
    Reactivate,
    ForcePasswordChange,
}

impl Action {
    pub fn parse(segment: &str) -> Option<Action> {
        match segment {
            "unlock" => Some(Action::Unlock),
            "deactivate" => Some(Action::Deactivate),
            "reactivate" => Some(Action::Reactivate),
            "force-password-change" => Some(Action::ForcePasswordChange),
            _ => None,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Action::Unlock => "admin_unlock",
            Action::Deactivate => "admin_deactivate",
            Action::Reactivate => "admin_reactivate",
            Action::ForcePasswordChange => "admin_force_password_change",
        }
    }
}

pub async fn act(
    deps: &Deps,
    caller: &Caller,
    user_id: &str,
    action: Action,
    meta: &RequestMeta,
) -> Result<(), ApiError> {
    let admin = require_admin(deps, caller).await?;
    let user = existing(deps, user_id).await?;
    not_self(&admin, &user.user_id)?;
    match action {
        Action::Unlock => {
            deps.stores
                .lockouts
                .clear(&lockout_key(&user.user_id))
                .await?
        }
        Action::Deactivate => {
            deps.stores
                .users
                .set_status(&user.user_id, UserStatus::Inactive)
                .await?;
            revoke_access(deps, &user.user_id, None).await?;
        }
        Action::Reactivate => {
            deps.stores
                .users
                .set_status(&user.user_id, UserStatus::Active)
                .await?
        }
        Action::ForcePasswordChange => {
            deps.stores
                .users
                .set_must_change_password(&user.user_id)
                .await?
        }
    }
    audit::record(
        deps,
        &user.user_id,
        action.kind(),
        Actor::Admin(&admin.user_id),
        Some(meta),
        "success",
        None,
    )
    .await;
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaResetFiling {
    pub user_id: String,
    pub reason: String,
}

/// `POST /v1/admin/mfa-resets`: the first admin files the request.
pub async fn request_mfa_reset(
    deps: &Deps,
    caller: &Caller,
    filing: MfaResetFiling,
    meta: &RequestMeta,
) -> Result<MfaResetRequest, ApiError> {
    let admin = require_admin(deps, caller).await?;
    let reason = filing.reason.trim();
    if reason.chars().count() < 10 || reason.chars().count() > 500 {
        return Err(ApiError::validation("reason must be 10 to 500 characters."));
    }
    let user = existing(deps, &filing.user_id).await?;
    not_self(&admin, &user.user_id)?;
    let now = deps.clock.now();
    let request = MfaResetRequest {
        request_id: random_id("mr"),
        user_id: user.user_id.clone(),
        requested_by: admin.user_id.to_string(),
        reason: reason.to_owned(),
        created_at: now,
        expires_at: now.plus_secs(deps.settings.mfa_reset_ttl_secs),
        approved_by: None,
    };
    deps.stores.admin.create_mfa_reset(&request).await?;
    audit::record(
        deps,
        &user.user_id,
        "mfa_reset_requested",
        Actor::Admin(&admin.user_id),
        Some(meta),
        "success",
        Some(reason.to_owned()),
    )
    .await;
    Ok(request)
}

/// `POST /v1/admin/mfa-resets/{id}/approve`: a different admin approves; the user's factors,
/// recovery codes and trusted devices are removed and every session revoked, so the next
/// sign-in requires enrolment.
pub async fn approve_mfa_reset(
    deps: &Deps,
    caller: &Caller,
    request_id: &str,
    meta: &RequestMeta,
) -> Result<(), ApiError> {
    let admin = require_admin(deps, caller).await?;
    let now = deps.clock.now();
    let request = deps
        .stores
        .admin
        .get_mfa_reset(request_id, now)
        .await?
        .ok_or(ApiError::NotFound)?;
    if request.requested_by == admin.user_id.as_str() {
        audit::record(
            deps,
            &request.user_id,
            "mfa_reset_refused",
            Actor::Admin(&admin.user_id),
            Some(meta),
            "failure",
            Some("same admin".into()),
        )
        .await;
        return Err(ApiError::Forbidden);
    }
    not_self(&admin, &request.user_id)?;
    if request.approved_by.is_some()
        || !deps
            .stores
            .admin
            .approve_mfa_reset(request_id, admin.user_id.as_str(), now)
            .await?
    {
        return Err(ApiError::Conflict(
            "This request was already approved or has expired.".into(),
        ));
    }
    let user_id = &request.user_id;
    for factor in deps.stores.factors.list_factors(user_id).await? {
        deps.stores
            .factors
            .delete_factor(user_id, &factor.factor_id)
            .await?;
    }
    deps.stores
        .recovery
        .replace_recovery_codes(user_id, &[])
        .await?;
    revoke_access(deps, user_id, None).await?;
    audit::record(
        deps,
        user_id,
        "mfa_reset_approved",
        Actor::Admin(&admin.user_id),
        Some(meta),
        "success",
        Some(format!("requested by {}", request.requested_by)),
    )
    .await;
    alerts::alert(deps, user_id, Alert::FactorRemoved).await;
    Ok(())
}

/// A user's audit trail (their own, or any user's for an admin).
pub async fn events(deps: &Deps, user_id: &UserId) -> Result<serde_json::Value, ApiError> {
    let events = deps
        .stores
        .audit
        .list_events(user_id, deps.clock.now(), 200)
        .await?;
    Ok(serde_json::json!({ "events": events }))
}

/// A user's code and alert deliveries, never their content.
pub async fn deliveries(
    deps: &Deps,
    caller: &Caller,
    user_id: &str,
) -> Result<serde_json::Value, ApiError> {
    require_admin(deps, caller).await?;
    let user = existing(deps, user_id).await?;
    let list = deps
        .stores
        .deliveries
        .list_deliveries(&user.user_id, deps.clock.now())
        .await?;
    let view: Vec<serde_json::Value> = list
        .iter()
        .map(|d| serde_json::json!({
            "delivery_id": d.delivery_id, "at": d.at, "channel": d.channel, "provider": d.provider,
            "provider_message_id": d.provider_message_id, "outcome": d.outcome, "purpose": d.purpose,
            "to": d.to_masked,
        }))
        .collect();
    Ok(serde_json::json!({ "deliveries": view }))
}

/// `GET /v1/admin/users/{id}/events`.
pub async fn user_events(
    deps: &Deps,
    caller: &Caller,
    user_id: &str,
) -> Result<serde_json::Value, ApiError> {
    require_admin(deps, caller).await?;
    let user = existing(deps, user_id).await?;
    events(deps, &user.user_id).await
}
