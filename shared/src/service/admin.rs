//! Administration (SPEC §8, §12, §14): on-boarding by invitation, unlock, deactivate,
//! reactivate, force a password change, roles, and the two-admin requests — all audited.
//!
//! Every admin action needs an admin whose current user record (not only the token) has the
//! `admin` role, an elevated session (MFA within 5 minutes: admins never skip MFA), and a
//! subject other than themselves.
//!
//! What would let one admin gain or keep power alone is a *request* that a different admin
//! approves ([`RequestKind`]): an MFA reset, inviting an admin, granting a privileged role,
//! taking it away from another admin, deactivating another admin. Nobody approves their own
//! request nor one about themselves; a request is approved once, before it expires. The first
//! admins come from the operator CLI (break-glass, controlled by IAM), never from one admin.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization as _;

use crate::clock::UnixTime;
use crate::crypto::{SecretString, random_id, token_digest};
use crate::deps::Deps;
use crate::error::{ApiError, StoreError};
use crate::identity::UserId;
use crate::policy;
use crate::request::RequestMeta;
use crate::service::alerts::{self, Alert};
use crate::service::audit::{self, Event};
use crate::service::limits;
use crate::service::password::{revoke_access, too_long};
use crate::service::sign_in::mask_email;
use crate::service::tokens::Caller;
use crate::storage::{
    AdminRequest, AsRead, CounterKey, FactorKind, FactorStatus, RequestKind, UserRecord, UserStatus,
};

pub const ADMIN_ROLE: &str = "admin";
/// Roles an admin may grant.
pub const ROLES: &[&str] = &["admin", "support"];
/// Roles that only two admins together may grant (or take from another admin).
pub const PRIVILEGED_ROLES: &[&str] = &["admin"];

fn is_privileged(role: &str) -> bool {
    PRIVILEGED_ROLES.contains(&role)
}

fn is_admin(user: &UserRecord) -> bool {
    user.roles.iter().any(|r| r == ADMIN_ROLE)
}

/// An admin acting now, checked: the `admin` role in the token *and* in their current stored
/// record, the account active, the session elevated (MFA within the step-up window; admins
/// never skip MFA). Only [`require_admin`] makes one, and every admin service takes one, so no
/// admin service can run unchecked: the edge makes it before an admin route's handler runs
/// (`portcullis_edge::Route::admin`). It derefs to the admin's record as read by that check
/// (one read, which the service then uses).
#[derive(Debug, Clone)]
pub struct Admin {
    record: UserRecord,
    /// The request that the admin acts in (source IP, User-Agent): what the audit records.
    from: RequestMeta,
}

impl Admin {
    /// The request the admin acts in, as the session's [`Caller`] carried it.
    pub fn from(&self) -> &RequestMeta {
        &self.from
    }
}

impl std::ops::Deref for Admin {
    type Target = UserRecord;

    fn deref(&self) -> &UserRecord {
        &self.record
    }
}

/// The caller as an [`Admin`], checked against their current record; `forbidden` otherwise
/// (`step_up_required` for an admin whose session is not elevated).
pub async fn require_admin(deps: &Deps, caller: &Caller) -> Result<Admin, ApiError> {
    if !caller.claims.roles.iter().any(|r| r == ADMIN_ROLE) {
        return Err(ApiError::Forbidden);
    }
    let record = deps
        .stores
        .users
        .get_user(&caller.user_id)
        .await?
        .ok_or(ApiError::Forbidden)?;
    if record.status != UserStatus::Active || !record.roles.iter().any(|r| r == ADMIN_ROLE) {
        return Err(ApiError::Forbidden);
    }
    caller.require_step_up(deps)?;
    Ok(Admin {
        record,
        from: caller.from.clone(),
    })
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    pub user_id: String,
    pub email: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

debug_redacting!(InviteRequest { user_id, roles; email, phone });

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

/// The answer to an action that waits for a second admin (202).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename = "pending_approval")]
pub struct PendingApproval {
    pub request_id: String,
    pub kind: RequestKind,
    pub expires_at: i64,
}

/// What an invitation did: sent at once, or filed for a second admin (an admin invitation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteOutcome {
    Invited(Invited),
    PendingApproval(PendingApproval),
}

pub(crate) fn parse_roles(roles: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
    let mut roles = roles.unwrap_or_default();
    if let Some(bad) = roles.iter().find(|r| !ROLES.contains(&r.as_str())) {
        return Err(ApiError::validation(format!(
            "Unknown role {:?}: roles are {}.",
            bad.chars().take(32).collect::<String>(),
            ROLES.join(", ")
        )));
    }
    roles.sort();
    roles.dedup();
    Ok(roles)
}

/// `POST /v1/admin/users`: creates the user without a password and emails a single-use
/// invitation (72 hours) to set one; the first sign-in then requires MFA enrolment. An
/// invitation with the `admin` role is a request instead: nothing is created and nothing sent
/// until a different admin approves it (SPEC §12).
pub async fn invite(
    deps: &Deps,
    admin: &Admin,
    request: InviteRequest,
) -> Result<InviteOutcome, ApiError> {
    let meta = admin.from();
    let user_id = UserId::parse(&request.user_id)?;
    let email = policy::email_address(&request.email)?;
    let phone = match &request.phone {
        Some(p) => Some(crate::phone::Phone::parse(p)?.e164().to_owned()),
        None => None,
    };
    let roles = parse_roles(request.roles)?;
    not_self(admin, &user_id)?;
    if deps.stores.users.get_user(&user_id).await?.is_some() {
        return Err(ApiError::Conflict("This user ID already exists.".into()));
    }
    if roles.iter().any(|r| is_privileged(r)) {
        let filed = file_request(
            deps,
            admin,
            RequestKind::AdminInvitation,
            &user_id,
            format!("invite {user_id} with roles {}", roles.join(", ")),
            meta,
            |r| {
                r.email = Some(email.clone());
                r.phone = phone.clone();
                r.roles = roles.clone();
            },
        )
        .await?;
        return Ok(InviteOutcome::PendingApproval(filed));
    }
    let invited =
        create_invited(deps, &admin.user_id, &user_id, &email, phone, roles, meta).await?;
    Ok(InviteOutcome::Invited(invited))
}

/// Creates the invited user and emails the invitation.
async fn create_invited(
    deps: &Deps,
    invited_by: &UserId,
    user_id: &UserId,
    email: &str,
    phone: Option<String>,
    roles: Vec<String>,
    meta: &RequestMeta,
) -> Result<Invited, ApiError> {
    let now = deps.clock.now();
    let user = UserRecord::new_active(
        user_id.clone(),
        Some(email.to_owned()),
        phone,
        roles,
        None,
        now,
    );
    match deps.stores.users.create_user(&user).await {
        Ok(()) => {}
        Err(StoreError::ConditionFailed) => {
            return Err(ApiError::Conflict("This user ID already exists.".into()));
        }
        Err(err) => return Err(err.into()),
    }
    // The link is made and emailed by the sender (through the outbox): no token in the queue.
    let expires_at = now.plus_secs(deps.settings.invitation_ttl_secs);
    crate::service::sender::enqueue(
        deps,
        crate::outbox::Outgoing::Invitation {
            user_id: user_id.to_string(),
            invited_by: invited_by.to_string(),
        },
    )
    .await;
    audit::record(deps, user_id, Event::UserInvited { by: invited_by }, meta).await;
    Ok(Invited {
        user_id: user_id.clone(),
        invitation: InvitationView {
            sent_to: mask_email(email),
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
    too_long(&request.password, deps)?;
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
    let hash = crate::service::password::hash_new(deps, &request.password).await?;
    // Only for a user who has no password yet (an invitation sets the first one), and whose
    // stamp has not moved since the read above.
    let first = AsRead {
        password_hash: None,
        security_stamp: user.security_stamp,
    };
    match deps
        .stores
        .users
        .set_password(&user.user_id, first, &hash, &[], now)
        .await
    {
        Ok(()) => {}
        Err(StoreError::ConditionFailed) => return Err(invalid()),
        Err(err) => return Err(err.into()),
    }
    audit::record(deps, &user.user_id, Event::InvitationAccepted, meta).await;
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
    fn kind(self) -> &'static str {
        match self {
            Action::Unlock => "admin_unlock",
            Action::Deactivate => "admin_deactivate",
            Action::Reactivate => "admin_reactivate",
            Action::ForcePasswordChange => "admin_force_password_change",
        }
    }
}

/// What an admin action did: done, or filed for a second admin (deactivating an admin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActOutcome {
    Done,
    PendingApproval(PendingApproval),
}

pub async fn act(
    deps: &Deps,
    admin: &Admin,
    user_id: &str,
    action: Action,
) -> Result<ActOutcome, ApiError> {
    let meta = admin.from();
    let user = existing(deps, user_id).await?;
    not_self(admin, &user.user_id)?;
    match action {
        // Both locks: the password's and the second factor's (SPEC §12: an admin unlock
        // ends a run of wrong answers).
        Action::Unlock => {
            limits::clear(deps, CounterKey::Password(&user.user_id)).await?;
            limits::clear(deps, CounterKey::SecondFactor(&user.user_id)).await?;
        }
        // One admin could otherwise lock every other admin out (SPEC §12).
        Action::Deactivate if is_admin(&user) => {
            let filed = file_request(
                deps,
                admin,
                RequestKind::AdminDeactivation,
                &user.user_id,
                format!("deactivate the admin {}", user.user_id),
                meta,
                |_| {},
            )
            .await?;
            return Ok(ActOutcome::PendingApproval(filed));
        }
        Action::Deactivate => deactivate(deps, &user.user_id).await?,
        // Whatever deactivated the user, nothing of before survives: no trusted device or
        // session (the inactivity sweep removes them too; this covers one it could not). An
        // active user is left as they are: reactivating them changes nothing.
        Action::Reactivate if user.status == UserStatus::Active => {}
        Action::Reactivate => {
            revoke_access(deps, &user.user_id, None).await?;
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
        Event::AdminAction {
            kind: action.kind(),
            by: &admin.user_id,
        },
        meta,
    )
    .await;
    Ok(ActOutcome::Done)
}

/// Deactivates the user, ends every session and trusted device at once, and alerts them.
///
/// The security stamp moves too (before anything is revoked), so open challenges and reset
/// links end, and a sign-in in flight is refused by its last check even if the user is
/// reactivated at once.
async fn deactivate(deps: &Deps, user_id: &UserId) -> Result<(), ApiError> {
    deps.stores.users.raise_security_stamp(user_id).await?;
    deps.stores
        .users
        .set_status(user_id, UserStatus::Inactive)
        .await?;
    revoke_access(deps, user_id, None).await?;
    alerts::alert(deps, user_id, Alert::DeactivatedByAdmin).await;
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleGrant {
    pub role: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /v1/admin/users/{user_id}/roles`: a privileged role is a request for a second admin;
/// another role is granted at once.
pub async fn grant_role(
    deps: &Deps,
    admin: &Admin,
    user_id: &str,
    grant: RoleGrant,
) -> Result<ActOutcome, ApiError> {
    let meta = admin.from();
    let role = parse_roles(Some(vec![grant.role]))?
        .pop()
        .ok_or_else(|| ApiError::validation("role is required."))?;
    let reason = optional_reason(grant.reason)?;
    let user = existing(deps, user_id).await?;
    not_self(admin, &user.user_id)?;
    if user.roles.contains(&role) {
        return Err(ApiError::Conflict("The user already has this role.".into()));
    }
    // A request waits for a second admin: refused now rather than only at its approval (a
    // role granted at once is checked where it is written, `change_roles`).
    if is_privileged(&role) {
        may_become_staff(deps, &user).await?;
    }
    let reason = reason.unwrap_or_else(|| format!("grant {role} to {}", user.user_id));
    act_on_role(deps, admin, &user.user_id, &role, true, reason, meta).await
}

/// `DELETE /v1/admin/users/{user_id}/roles/{role}`: taking a privileged role from an admin is a
/// request for a second admin; another role is removed at once.
pub async fn revoke_role(
    deps: &Deps,
    admin: &Admin,
    user_id: &str,
    role: &str,
) -> Result<ActOutcome, ApiError> {
    let meta = admin.from();
    let role = parse_roles(Some(vec![role.to_owned()]))?
        .pop()
        .ok_or(ApiError::NotFound)?;
    let user = existing(deps, user_id).await?;
    not_self(admin, &user.user_id)?;
    if !user.roles.contains(&role) {
        return Err(ApiError::NotFound);
    }
    let reason = format!("take {role} from {}", user.user_id);
    act_on_role(deps, admin, &user.user_id, &role, false, reason, meta).await
}

/// Grants `role` to `user_id` (`grant`) or takes it away: a privileged role through a request
/// for a second admin, with `reason`; another at once, audited.
async fn act_on_role(
    deps: &Deps,
    admin: &Admin,
    user_id: &UserId,
    role: &str,
    grant: bool,
    reason: String,
    meta: &RequestMeta,
) -> Result<ActOutcome, ApiError> {
    if is_privileged(role) {
        let kind = if grant {
            RequestKind::RoleGrant
        } else {
            RequestKind::RoleRevocation
        };
        let filed = file_request(deps, admin, kind, user_id, reason, meta, |r| {
            r.roles = vec![role.to_owned()]
        })
        .await?;
        return Ok(ActOutcome::PendingApproval(filed));
    }
    change_roles(deps, user_id, role, grant).await?;
    let by = &admin.user_id;
    let event = if grant {
        Event::RoleGranted { role, by }
    } else {
        Event::RoleRevoked { role, by }
    };
    audit::record(deps, user_id, event, meta).await;
    Ok(ActOutcome::Done)
}

/// A first role is refused (409) while every active second factor of the user is an email
/// address: staff may not use email codes (`Method::open_to`), so they could not sign in again
/// without an MFA reset. Checked when a grant is asked for and again when it is carried out
/// (a request waits for a second admin).
async fn may_become_staff(deps: &Deps, user: &UserRecord) -> Result<(), ApiError> {
    if !user.roles.is_empty() {
        return Ok(());
    }
    let factors = deps.stores.factors.list_factors(&user.user_id).await?;
    let active: Vec<_> = factors
        .iter()
        .filter(|f| f.status == FactorStatus::Active)
        .collect();
    if !active.is_empty()
        && active
            .iter()
            .all(|f| matches!(f.kind, FactorKind::Email { .. }))
    {
        return Err(ApiError::Conflict(
            "Staff cannot use email codes, and this user's only second factor is email: they must add an authenticator app, a phone or a passkey first.".into(),
        ));
    }
    Ok(())
}

/// Adds or removes `role`: read, change, and write only over the roles read, again on a
/// concurrent change (so a grant and a removal at once both land, neither undoing the other).
async fn change_roles(
    deps: &Deps,
    user_id: &UserId,
    role: &str,
    add: bool,
) -> Result<(), ApiError> {
    const TRIES: usize = 5;
    for _ in 0..TRIES {
        let user = existing(deps, user_id.as_str()).await?;
        let mut roles: Vec<String> = user.roles.iter().filter(|r| *r != role).cloned().collect();
        if add {
            may_become_staff(deps, &user).await?;
            roles.push(role.to_owned());
            roles.sort();
        }
        match deps
            .stores
            .users
            .set_roles(user_id, &user.roles, &roles)
            .await
        {
            // The stamp does not move: a role change among staff ends no session (else one
            // admin could sign another out at will by granting and taking away `support`). A
            // sign-in in flight that read a role taken away issues nothing
            // (`complete::confirm_current` compares the roles); sessions get the new roles at
            // their next refresh or step-up, and Portcullis's routes check a role against the
            // user record.
            //
            // A user who *becomes* staff is signed out everywhere: their sessions may rest on
            // what staff may not use (a trusted device, an email code), and a refresh would
            // mint the new role into them. The write itself moved their stamp (`set_roles`),
            // which ends every open sign-in challenge and reset link (a sign-in past its email
            // code, waiting for a required new password, would otherwise still open a session,
            // now with the role) and makes every session stale, refused at its next refresh or
            // step-up even should the revocation below fail. The next sign-in is made under
            // staff rules. (Its trusted devices go too: staff never use one.)
            Ok(()) if add && user.roles.is_empty() => {
                return revoke_access(deps, user_id, None).await;
            }
            Ok(()) => return Ok(()),
            // Changed (or deleted) since the read: read again.
            Err(StoreError::ConditionFailed) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    // Lost every race (roles changed as fast as they are read): a transient failure, so an
    // approved request that gets here is given back rather than spent (`approve`).
    tracing::warn!(event = "roles_contended", "the roles changed at every try");
    Err(ApiError::ServiceUnavailable)
}

fn optional_reason(reason: Option<String>) -> Result<Option<String>, ApiError> {
    match reason.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(r) if r.chars().count() > 500 || r.chars().any(char::is_control) => {
            Err(ApiError::validation(
                "reason must be at most 500 characters, without control characters.",
            ))
        }
        Some(r) => Ok(Some(r.to_owned())),
    }
}

/// Files a two-admin request about `subject` and audits it.
async fn file_request(
    deps: &Deps,
    admin: &UserRecord,
    kind: RequestKind,
    subject: &UserId,
    reason: String,
    meta: &RequestMeta,
    fill: impl FnOnce(&mut AdminRequest),
) -> Result<PendingApproval, ApiError> {
    let now = deps.clock.now();
    let mut request = AdminRequest {
        request_id: random_id("rq"),
        kind,
        user_id: subject.clone(),
        requested_by: admin.user_id.to_string(),
        reason,
        created_at: now,
        expires_at: now.plus_secs(deps.settings.mfa_reset_ttl_secs),
        approved_by: None,
        approved_at: None,
        email: None,
        phone: None,
        roles: Vec::new(),
    };
    fill(&mut request);
    deps.stores.admin.create_request(&request).await?;
    tracing::info!(
        event = "admin_request_filed",
        kind = kind.as_str(),
        "two-admin request filed"
    );
    audit::record(
        deps,
        subject,
        Event::TwoAdminRequested {
            action: kind.as_str(),
            reason: &request.reason,
            by: &admin.user_id,
        },
        meta,
    )
    .await;
    Ok(PendingApproval {
        request_id: request.request_id,
        kind,
        expires_at: request.expires_at.secs(),
    })
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
    admin: &Admin,
    filing: MfaResetFiling,
) -> Result<PendingApproval, ApiError> {
    let meta = admin.from();
    let reason = filing.reason.trim();
    if reason.chars().count() < 10
        || reason.chars().count() > 500
        || reason.chars().any(char::is_control)
    {
        return Err(ApiError::validation(
            "reason must be 10 to 500 characters, without control characters.",
        ));
    }
    let user = existing(deps, &filing.user_id).await?;
    not_self(admin, &user.user_id)?;
    file_request(
        deps,
        admin,
        RequestKind::MfaReset,
        &user.user_id,
        reason.to_owned(),
        meta,
        |_| {},
    )
    .await
}

/// Where a two-admin request stands: waiting for a second admin, or carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Pending,
    Approved,
}

/// A request as admins see it in the queue.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RequestView {
    pub request_id: String,
    pub kind: RequestKind,
    pub user_id: UserId,
    pub requested_by: String,
    pub reason: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub status: RequestStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// An invitation's address, masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the caller may approve it (neither its requester nor its subject).
    pub can_approve: bool,
}

/// `GET /v1/admin/requests?status=pending|all`.
pub async fn list_requests(
    deps: &Deps,
    admin: &Admin,
    status: Option<&str>,
) -> Result<Vec<RequestView>, ApiError> {
    let pending_only = match status {
        None | Some("pending") => true,
        Some("all") => false,
        Some(_) => return Err(ApiError::validation("status must be pending or all.")),
    };
    let me = admin.user_id.as_str();
    Ok(deps
        .stores
        .admin
        .list_requests(deps.clock.now())
        .await?
        .into_iter()
        .filter(|r| !pending_only || r.approved_by.is_none())
        .map(|r| RequestView {
            can_approve: r.approved_by.is_none()
                && r.requested_by != me
                && r.user_id.as_str() != me,
            status: if r.approved_by.is_some() {
                RequestStatus::Approved
            } else {
                RequestStatus::Pending
            },
            request_id: r.request_id,
            kind: r.kind,
            user_id: r.user_id,
            requested_by: r.requested_by,
            reason: r.reason,
            created_at: r.created_at.secs(),
            expires_at: r.expires_at.secs(),
            approved_by: r.approved_by,
            approved_at: r.approved_at.map(UnixTime::secs),
            roles: r.roles,
            email: r.email.as_deref().map(mask_email),
        })
        .collect())
}

/// What an approval carried out.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename = "approved")]
pub struct Approved {
    pub request_id: String,
    pub kind: RequestKind,
    pub user_id: UserId,
    /// An approved admin invitation: where it was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitation: Option<InvitationView>,
}

/// `POST /v1/admin/requests/{request_id}/approve`: a second admin approves and the request is
/// carried out. Refused (403) for the requester and for the subject; 409 once approved.
pub async fn approve(deps: &Deps, admin: &Admin, request_id: &str) -> Result<Approved, ApiError> {
    let meta = admin.from();
    approve_kind(deps, admin, request_id, None, meta).await
}

async fn approve_kind(
    deps: &Deps,
    admin: &Admin,
    request_id: &str,
    only: Option<RequestKind>,
    meta: &RequestMeta,
) -> Result<Approved, ApiError> {
    let now = deps.clock.now();
    let request = deps
        .stores
        .admin
        .get_request(request_id, now)
        .await?
        .filter(|r| only.is_none_or(|k| k == r.kind))
        .ok_or(ApiError::NotFound)?;
    let me = admin.user_id.as_str();
    if request.requested_by == me || request.user_id.as_str() == me {
        audit::record(
            deps,
            &request.user_id,
            Event::TwoAdminRefused {
                action: request.kind.as_str(),
                reason: if request.requested_by == me {
                    "the requester cannot approve"
                } else {
                    "the subject cannot approve"
                },
                by: &admin.user_id,
            },
            meta,
        )
        .await;
        return Err(ApiError::Forbidden);
    }
    if request.approved_by.is_some()
        || !deps
            .stores
            .admin
            .approve_request(request_id, me, now)
            .await?
    {
        return Err(ApiError::Conflict(
            "This request was already approved or has expired.".into(),
        ));
    }
    let carried = carry_out(deps, admin, &request, meta).await;
    let invitation = match carried {
        Ok(invitation) => invitation,
        Err(err) => {
            // A transient failure must not burn the request; a refusal (e.g. the user ID was
            // taken meanwhile) leaves it approved: it cannot be carried out any more.
            if err.status() >= 500 {
                deps.stores.admin.withdraw_approval(request_id, me).await?;
            }
            return Err(err);
        }
    };
    audit::record(
        deps,
        &request.user_id,
        Event::TwoAdminApproved {
            action: request.kind.as_str(),
            requested_by: &request.requested_by,
            by: &admin.user_id,
        },
        meta,
    )
    .await;
    Ok(Approved {
        request_id: request.request_id,
        kind: request.kind,
        user_id: request.user_id,
        invitation,
    })
}

async fn carry_out(
    deps: &Deps,
    admin: &UserRecord,
    request: &AdminRequest,
    meta: &RequestMeta,
) -> Result<Option<InvitationView>, ApiError> {
    let user_id = &request.user_id;
    match request.kind {
        RequestKind::MfaReset => {
            reset_mfa(deps, user_id).await?;
            Ok(None)
        }
        RequestKind::AdminInvitation => {
            let email = request
                .email
                .as_deref()
                .ok_or(ApiError::ServiceUnavailable)?;
            let invited = create_invited(
                deps,
                &admin.user_id,
                user_id,
                email,
                request.phone.clone(),
                request.roles.clone(),
                meta,
            )
            .await?;
            Ok(Some(invited.invitation))
        }
        RequestKind::RoleGrant | RequestKind::RoleRevocation => {
            let role = request.roles.first().ok_or(ApiError::ServiceUnavailable)?;
            change_roles(deps, user_id, role, request.kind == RequestKind::RoleGrant).await?;
            Ok(None)
        }
        RequestKind::AdminDeactivation => {
            existing(deps, user_id.as_str()).await?;
            deactivate(deps, user_id).await?;
            Ok(None)
        }
    }
}

/// `POST /v1/admin/mfa-resets/{id}/approve`: kept from the first round; the same as approving
/// the request in the queue.
pub async fn approve_mfa_reset(
    deps: &Deps,
    admin: &Admin,
    request_id: &str,
) -> Result<(), ApiError> {
    let meta = admin.from();
    approve_kind(deps, admin, request_id, Some(RequestKind::MfaReset), meta)
        .await
        .map(|_| ())
}

/// The user's factors, recovery codes and trusted devices are removed and every session
/// revoked, so the next sign-in requires enrolment; open sign-in challenges and reset links end.
///
/// The stamp moves first: a sign-in or enrolment in flight is refused from then on, so no
/// factor it activates or session it opens outlives the reset.
async fn reset_mfa(deps: &Deps, user_id: &UserId) -> Result<(), ApiError> {
    deps.stores.users.raise_security_stamp(user_id).await?;
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
    limits::clear(deps, CounterKey::SecondFactor(user_id)).await?;
    alerts::alert(deps, user_id, Alert::FactorRemoved).await;
    Ok(())
}

/// Most users one search returns (SPEC §14).
pub const SEARCH_LIMIT: usize = 50;

/// A user in the admins' search results: contacts masked.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UserSummary {
    pub user_id: UserId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub status: UserStatus,
    pub roles: Vec<String>,
    /// The password lock or the second-factor lock is running.
    pub locked: bool,
    /// The kinds of the user's active factors.
    pub factors: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sign_in_at: Option<i64>,
}

/// `GET /v1/admin/users?query=`: users whose ID or email starts with the query (at most 50).
pub async fn search(
    deps: &Deps,
    _admin: &Admin,
    query: Option<&str>,
) -> Result<Vec<UserSummary>, ApiError> {
    let prefix: String = query
        .unwrap_or("")
        .trim()
        .nfkc()
        .collect::<String>()
        .to_lowercase();
    if prefix.is_empty() || prefix.chars().count() > 128 || prefix.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "query must be 1 to 128 characters: the start of a user ID or an email address.",
        ));
    }
    let users = deps
        .stores
        .users
        .search_users(&prefix, SEARCH_LIMIT)
        .await?;
    let mut out = Vec::with_capacity(users.len());
    for user in users {
        let locked = limits::locked_until(deps, CounterKey::Password(&user.user_id))
            .await?
            .is_some()
            || limits::second_factor_locked_until(deps, &user.user_id)
                .await?
                .is_some();
        let factors = deps
            .stores
            .factors
            .list_factors(&user.user_id)
            .await?
            .iter()
            .filter(|f| f.status == crate::storage::FactorStatus::Active)
            .map(|f| f.kind.name())
            .collect();
        out.push(UserSummary {
            email: user.email.as_deref().map(mask_email),
            status: user.status,
            roles: user.roles,
            locked,
            factors,
            last_sign_in_at: user.last_sign_in_at.map(UnixTime::secs),
            user_id: user.user_id,
        });
    }
    Ok(out)
}

/// One user as support sees them (SPEC §14): status, both locks with their end, factors
/// (masked), trusted devices, recovery codes left, last sign-in. Never a secret.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UserDetail {
    pub user_id: UserId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub status: UserStatus,
    pub roles: Vec<String>,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_sign_in_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_changed_at: Option<i64>,
    /// No password yet: the invitation has not been accepted.
    pub invitation_pending: bool,
    pub password_change_required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_factor_locked_until: Option<i64>,
    pub factors: Vec<crate::service::factors::FactorView>,
    pub trusted_devices: usize,
    pub recovery_codes_remaining: u32,
}

/// `GET /v1/admin/users/{user_id}`.
pub async fn detail(deps: &Deps, _admin: &Admin, user_id: &str) -> Result<UserDetail, ApiError> {
    let user = existing(deps, user_id).await?;
    let id = &user.user_id;
    let now = deps.clock.now();
    Ok(UserDetail {
        locked_until: limits::locked_until(deps, CounterKey::Password(id))
            .await?
            .map(UnixTime::secs),
        second_factor_locked_until: limits::second_factor_locked_until(deps, id)
            .await?
            .map(UnixTime::secs),
        factors: deps
            .stores
            .factors
            .list_factors(id)
            .await?
            .iter()
            .map(crate::service::factors::view)
            .collect(),
        trusted_devices: deps.stores.devices.list_devices(id, now).await?.len(),
        recovery_codes_remaining: deps.stores.recovery.remaining_recovery_codes(id).await?,
        password_change_required: crate::service::sign_in::password_change_due(deps, &user, now),
        invitation_pending: user.password_hash.is_none(),
        email: user.email.as_deref().map(mask_email),
        status: user.status,
        created_at: user.created_at.secs(),
        last_sign_in_at: user.last_sign_in_at.map(UnixTime::secs),
        password_changed_at: user.password_changed_at.map(UnixTime::secs),
        roles: user.roles,
        user_id: user.user_id,
    })
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
    _admin: &Admin,
    user_id: &str,
) -> Result<serde_json::Value, ApiError> {
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
    _admin: &Admin,
    user_id: &str,
) -> Result<serde_json::Value, ApiError> {
    let user = existing(deps, user_id).await?;
    events(deps, &user.user_id).await
}
