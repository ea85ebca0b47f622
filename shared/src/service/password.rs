//! Password lifecycle (SPEC §7): change (step-up), forgot/reset by email link, and the change
//! required after MFA (maximum age, or an admin's flag). Every path applies [`crate::policy`].
//!
//! - A change revokes the user's *other* sessions and all trusted devices; a reset revokes all
//!   sessions and devices and does not sign the user in (MFA still stands between a reset and
//!   a session).
//! - Forgot always answers the same, whether the user exists or not; at most
//!   `max_resets_per_hour` emails per user per hour (further requests send nothing, silently).

use serde::{Deserialize, Serialize};

use crate::crypto::jwt::ACR_MFA;
use crate::crypto::{PasswordCheck, SecretString, random_token, token_digest};
use crate::deps::Deps;
use crate::error::{ApiError, StoreError};
use crate::identity::UserId;
use crate::policy;
use crate::request::RequestMeta;
use crate::service::alerts::{self, Alert};
use crate::service::audit::{self, Event};
use crate::service::codes;
use crate::service::limits;
use crate::service::tokens::{self, Caller, Proof};
use crate::storage::{
    AsRead, ChallengeRecord, CounterKey, FailureOutcome, LockoutPolicy, UserRecord, UserStatus,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: SecretString,
    pub new_password: SecretString,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgotRequest {
    pub user_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub token: SecretString,
    pub new_password: SecretString,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPasswordRequest {
    pub new_password: SecretString,
}

/// The one answer to every forgot-password request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename = "accepted")]
pub struct ForgotAnswer {
    pub detail: &'static str,
}

pub const FORGOT_ANSWER: ForgotAnswer = ForgotAnswer {
    detail: "If this user ID exists and has an email address, a reset link is on its way. It works once, for 30 minutes.",
};

/// Refuses a new password longer than the configured bound, before any hashing.
pub(crate) fn too_long(password: &SecretString, deps: &Deps) -> Result<(), ApiError> {
    if password.len() > deps.settings.max_password_bytes {
        return Err(ApiError::validation(format!(
            "The password must be at most {} characters.",
            policy::MAX_CHARS
        )));
    }
    Ok(())
}

/// Checks a new password of `user` against the password policy ([`policy::check`]): its shape,
/// and that it is neither the current password nor one of the history.
async fn check_new_password(
    deps: &Deps,
    user: &UserRecord,
    password: &SecretString,
) -> Result<(), ApiError> {
    policy::check(
        &deps.hasher,
        password.expose(),
        &user.user_id,
        user.password_hash.as_deref(),
        &user.password_history,
    )
    .await
}

/// Hashes and stores a new password (policy already checked), keeping the history, then revokes
/// the user's trusted devices and every session except `keep` ([`revoke_access`]).
///
/// Only over the password and stamp read in `user`: if either has moved since (a concurrent
/// change or reset, an MFA reset), nothing is written and the answer is `moved()`.
async fn replace_password(
    deps: &Deps,
    user: &UserRecord,
    password: &SecretString,
    keep: Option<&str>,
    moved: fn() -> ApiError,
) -> Result<(), ApiError> {
    store_new_password(deps, user, password, moved).await?;
    revoke_access(deps, &user.user_id, keep).await
}

/// Records a password change or reset (`event`) in the audit log, then alerts the user to it.
async fn record_new_password(deps: &Deps, user_id: &UserId, event: Event<'_>, from: &RequestMeta) {
    audit::record(deps, user_id, event, from).await;
    alerts::alert(deps, user_id, Alert::PasswordChanged).await;
}

/// Hashes and stores a new password (policy already checked), keeping the history: only over
/// `user` as read, else `moved()`.
async fn store_new_password(
    deps: &Deps,
    user: &UserRecord,
    password: &SecretString,
    moved: fn() -> ApiError,
) -> Result<(), ApiError> {
    let hash = hash_new(deps, password).await?;
    match write_over(deps, user, &hash).await {
        Err(StoreError::ConditionFailed) => {}
        done => return done.map_err(ApiError::from),
    }
    // A sign-in's rehash (the same password under new parameters) changes the hash and nothing
    // else; every other credential change moves the stamp. So when the stamp has not moved, the
    // write is made once more over the hash now stored, rather than spending a reset link or
    // asking the user to try again for a change that is not one.
    let now = deps.stores.users.get_user(&user.user_id).await?;
    match now {
        Some(now) if now.security_stamp == user.security_stamp => {
            match write_over(deps, &now, &hash).await {
                Err(StoreError::ConditionFailed) => Err(moved()),
                done => done.map_err(ApiError::from),
            }
        }
        _ => Err(moved()),
    }
}

/// `set_password` over `read` (its hash and stamp), the history following from it.
async fn write_over(deps: &Deps, read: &UserRecord, hash: &str) -> Result<(), StoreError> {
    let history = policy::next_history(read.password_hash.as_deref(), &read.password_history);
    let at = deps.clock.now();
    deps.stores
        .users
        .set_password(&read.user_id, AsRead::of(read), hash, &history, at)
        .await
}

/// The argon2id hash of a new password (its policy already checked), off the async threads.
pub(crate) async fn hash_new(deps: &Deps, password: &SecretString) -> Result<String, ApiError> {
    let hasher = deps.hasher.clone();
    let secret = password.clone();
    tokio::task::spawn_blocking(move || hasher.hash(secret.expose().as_bytes()))
        .await
        .map_err(|_| ApiError::ServiceUnavailable)?
        .map_err(|_| ApiError::ServiceUnavailable)
}

/// A signed-in user's change that lost to another credential change: the caller may try again.
fn changed_meanwhile() -> ApiError {
    ApiError::Conflict("The password was changed at the same time: try again.".into())
}

/// Removes every trusted device of the user, then revokes every session except `keep`.
///
/// Devices first: a trusted-device sign-in in flight marks its device used at the same time as
/// it writes its session, and issues nothing if the device is gone, so one that loses to the
/// deletion gets nothing, and one that won its device before it has sent its session write
/// too, which the listing after the deletion then finds. (A session write still in flight
/// after both the deletion and the listing finished escapes, exactly as any sign-in completing
/// in the same instant as a revocation does.)
pub async fn revoke_access(
    deps: &Deps,
    user_id: &UserId,
    keep: Option<&str>,
) -> Result<(), ApiError> {
    deps.stores.devices.delete_all_devices(user_id).await?;
    for session in deps.stores.sessions.list_sessions(user_id).await? {
        if !session.revoked && Some(session.session_id.as_str()) != keep {
            deps.stores
                .sessions
                .revoke_session(user_id, &session.session_id)
                .await?;
        }
    }
    Ok(())
}

/// `POST /v1/me/password` (step-up).
pub async fn change(
    deps: &Deps,
    caller: &Caller,
    request: ChangePasswordRequest,
) -> Result<(), ApiError> {
    too_long(&request.new_password, deps)?;
    caller.require_step_up(deps)?;
    let user = confirm_password(
        deps,
        caller,
        &request.current_password,
        Event::PasswordChangeFailed,
    )
    .await?;
    check_new_password(deps, &user, &request.new_password).await?;
    replace_password(
        deps,
        &user,
        &request.new_password,
        Some(&caller.claims.sid),
        changed_meanwhile,
    )
    .await?;
    // The kept session follows the stamp the change raised by one (else its next refresh
    // would refuse it as older than the change). A session revoked meanwhile stays revoked.
    let stamp = user.security_stamp;
    let sessions = &deps.stores.sessions;
    if !sessions
        .restamp_session(&user.user_id, &caller.claims.sid, stamp, stamp + 1)
        .await?
    {
        tracing::info!(
            event = "session_not_restamped",
            "the session that changed the password was ended meanwhile, or records no stamp"
        );
    }
    tracing::info!(
        event = "password_changed",
        "password changed; other sessions and devices revoked"
    );
    record_new_password(deps, &user.user_id, Event::PasswordChanged, &caller.from).await;
    Ok(())
}

/// The signed-in user's current password, asked again before an action that a stolen access
/// token alone must not take (a password change; adding a passkey from a session, which signs
/// in with no password at all). Under the password lock (SPEC §12): during a lock it is not
/// evaluated (`locked`), and a wrong one counts as a failed password (`invalid_credentials`,
/// audited as `refused`).
pub async fn confirm_password(
    deps: &Deps,
    caller: &Caller,
    password: &SecretString,
    refused: Event<'static>,
) -> Result<UserRecord, ApiError> {
    too_long(password, deps)?;
    let user_id = &caller.user_id;
    if let Some(until) = limits::locked_until(deps, CounterKey::Password(user_id)).await? {
        return Err(ApiError::Locked {
            retry_after_secs: until.secs() - deps.clock.now().secs(),
        });
    }
    let (user, session) = tokio::try_join!(
        deps.stores.users.get_user(user_id),
        deps.stores
            .sessions
            .get_session(user_id, &caller.claims.sid),
    )?;
    let user = user.ok_or(ApiError::Unauthorized)?;
    // A session that a revocation missed (its user's stamp moved since it was opened, by a
    // reset or a first role) acts no more: as at its refresh, it is over.
    if session.is_none_or(|s| s.revoked || s.is_older_than(&user)) {
        return Err(ApiError::Unauthorized);
    }
    let hasher = deps.hasher.clone();
    let stored = user.password_hash.clone();
    let current = password.clone();
    let check = tokio::task::spawn_blocking(move || match stored {
        Some(h) => hasher.verify(&h, current.expose().as_bytes()),
        None => hasher.verify_dummy(current.expose().as_bytes()),
    })
    .await
    .map_err(|_| ApiError::ServiceUnavailable)?;
    if !matches!(check, PasswordCheck::Match { .. }) {
        audit::record(deps, &user.user_id, refused, &caller.from).await;
        let policy = limits::password_policy(deps);
        if let FailureOutcome::LockStarted { until } | FailureOutcome::AlreadyLocked { until } =
            limits::count_failure(deps, CounterKey::Password(&user.user_id), policy).await?
        {
            return Err(ApiError::Locked {
                retry_after_secs: until.secs() - deps.clock.now().secs(),
            });
        }
        return Err(ApiError::InvalidCredentials);
    }
    Ok(user)
}

/// `POST /v1/password/forgot`: always the same answer, and the same work, whether or not the
/// user exists (SPEC §12): the request is counted per user ID and queued; the sender decides
/// whether there is anyone to send a link to, makes it and emails it. No user is read here.
pub async fn forgot(deps: &Deps, request: ForgotRequest) -> Result<ForgotAnswer, ApiError> {
    let user_id = UserId::parse(&request.user_id)?;
    let now = deps.clock.now();
    let limit = LockoutPolicy {
        threshold: deps.settings.max_resets_per_hour + 1,
        lock_secs: 3600,
        window_secs: 3600,
    };
    match limits::count_failure(deps, CounterKey::ResetEmails(&user_id), limit).await? {
        FailureOutcome::Counted { .. } => {
            crate::service::sender::enqueue(
                deps,
                crate::outbox::Outgoing::PasswordReset {
                    user_id: user_id.to_string(),
                    requested_at: now.secs(),
                },
            )
            .await;
        }
        _ => tracing::info!(
            event = "reset_not_sent",
            "reset requests over the hourly limit"
        ),
    }
    Ok(FORGOT_ANSWER)
}

fn invalid_link() -> ApiError {
    ApiError::validation("This reset link is not valid or has expired: ask for a new one.")
}

/// `POST /v1/password/reset`: sets the password, revokes every session and trusted device,
/// and does not sign the user in.
pub async fn reset(deps: &Deps, request: ResetRequest, from: &RequestMeta) -> Result<(), ApiError> {
    too_long(&request.new_password, deps)?;
    let token = request.token.expose();
    if token.is_empty() || token.len() > 128 {
        return Err(invalid_link());
    }
    let now = deps.clock.now();
    let Some(reset) = deps
        .stores
        .resets
        .take_reset(&token_digest(token), now)
        .await?
    else {
        return Err(invalid_link());
    };
    let user = deps
        .stores
        .users
        .get_user(&reset.user_id)
        .await?
        .ok_or_else(invalid_link)?;
    if user.security_stamp != reset.user_stamp {
        // A password change or reset, or an MFA reset, since the link was sent (SPEC §12).
        tracing::info!(
            event = "reset_link_stale",
            "reset link ended by a credential change"
        );
        return Err(invalid_link());
    }
    if let Err(refusal) = check_new_password(deps, &user, &request.new_password).await {
        // The link was consumed to make the check single-flight; give it back for a retry.
        deps.stores.resets.create_reset(&reset).await?;
        return Err(refusal);
    }
    // A credential change between the stamp check above and this write ends the link too.
    replace_password(deps, &user, &request.new_password, None, invalid_link).await?;
    limits::clear(deps, CounterKey::Password(&user.user_id)).await?;
    tracing::info!(
        event = "password_reset",
        "password reset; all sessions and devices revoked"
    );
    record_new_password(deps, &user.user_id, Event::PasswordReset, from).await;
    Ok(())
}

/// After MFA, when a change is required: a challenge that only accepts a new password.
pub async fn require_change(
    deps: &Deps,
    challenge: &ChallengeRecord,
) -> Result<(String, i64), ApiError> {
    let now = deps.clock.now();
    let id = random_token();
    let record = ChallengeRecord {
        id_digest: token_digest(&id),
        // After a passwordless sign-in too, the change is a step of a sign-in.
        stage: crate::storage::Stage::SignInNewPassword,
        created_at: now,
        expires_at: now.plus_secs(deps.settings.challenge_ttl_secs),
        sends: 0,
        attempts: 0,
        code: None,
        completed_at: None,
        ceremony: None,
        ..challenge.clone()
    };
    deps.stores.challenges.create_challenge(&record).await?;
    Ok((id, deps.settings.challenge_ttl_secs))
}

/// The user of `challenge`, as stored now: `challenge_expired` when there is none.
async fn challenge_user(deps: &Deps, challenge: &ChallengeRecord) -> Result<UserRecord, ApiError> {
    deps.stores
        .users
        .get_user(&challenge.user_id)
        .await?
        .ok_or(ApiError::ChallengeExpired)
}

/// `POST /v1/sign-in/{challenge_id}/password`: the required change, then the session. It takes
/// the challenge as [`codes::open_sign_in`] opened it (live, a sign-in, its stamp checked);
/// a sign-in at another step is `forbidden`.
pub async fn complete_required_change(
    deps: &Deps,
    challenge: &codes::SignInChallenge,
    request: NewPasswordRequest,
    from: &RequestMeta,
) -> Result<tokens::Tokens, ApiError> {
    too_long(&request.new_password, deps)?;
    if challenge.stage != crate::storage::Stage::SignInNewPassword {
        return Err(ApiError::Forbidden);
    }
    // Each try counts against the challenge's tries (as a code's does) before any hash is
    // computed: the policy check runs argon2 against the current and past passwords, and
    // would otherwise let one challenge ask, without limit, whether a guess is an old password.
    let (slot, user) = tokio::try_join!(
        codes::reserve_try(deps, challenge),
        challenge_user(deps, challenge)
    )?;
    // The stamp again, as read now: an MFA reset (or another change) since the challenge was
    // opened ends it, however long the user took to type.
    if slot.is_none() || user.security_stamp != challenge.user_stamp {
        return Err(ApiError::ChallengeExpired);
    }
    check_new_password(deps, &user, &request.new_password).await?;
    if !codes::finish_challenge(deps, &challenge.id_digest, deps.clock.now()).await? {
        return Err(ApiError::ChallengeExpired);
    }
    // Only over the stamp read above: an MFA reset between that read and this write changes
    // nothing (the challenge, finished, is spent).
    replace_password(deps, &user, &request.new_password, None, || {
        ApiError::ChallengeExpired
    })
    .await?;
    tracing::info!(event = "password_changed", "required password change done");
    record_new_password(deps, &user.user_id, Event::PasswordChangedAsRequired, from).await;
    let user = challenge_user(deps, challenge).await?;
    if user.status != UserStatus::Active {
        return Err(ApiError::AccountInactive);
    }
    // This change raised the stamp by one; anything more landed between the write and this
    // read (an MFA reset): the password is changed, but no session is issued.
    if user.security_stamp != challenge.user_stamp + 1 {
        return Err(ApiError::ChallengeExpired);
    }
    let tokens = tokens::open_session(
        deps,
        &user,
        Proof {
            amr: vec!["pwd".into(), "mfa".into()],
            acr: ACR_MFA.into(),
        },
    )
    .await?;
    // As every sign-in: nothing handed out unless the user is still the one judged.
    crate::service::complete::confirm_current(deps, &user, &tokens.session_id, None, from).await?;
    Ok(tokens)
}
