//! Completing a sign-in once a code (or a new factor, or a recovery code) has been verified:
//! the failure counter is reset (SPEC §2: "a completed sign-in resets the counter"), the
//! sign-in is recorded for the inactive-ID sweep, a session is opened and, if asked, the device
//! is trusted for 180 days.

use serde::Serialize;

use crate::deps::Deps;
use crate::error::ApiError;
use crate::request::RequestMeta;
use crate::service::alerts::{self, Alert};
use crate::service::audit::{self, Event};
use crate::service::codes::{MfaSignIn, Verified};
use crate::service::devices;
use crate::service::limits;
use crate::service::tokens::{self, Proof, Tokens};
use crate::storage::{CounterKey, Stage};
use crate::storage::{UserRecord, UserStatus};

/// The answer of a completed second step: what it led to ([`Outcome`], tagged by `status`), and
/// what the route adds whichever it was (the recovery codes of an authenticator just enrolled,
/// how many remain after one was used). `Debug` leaves out the trusted-device token, the
/// challenge ID and the recovery codes (and [`Tokens`] its tokens): each is a secret.
#[derive(Clone, Serialize, PartialEq, Eq)]
pub struct SignedIn {
    #[serde(flatten)]
    pub outcome: Outcome,
    /// After a recovery code: how many remain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes_remaining: Option<u32>,
    /// After enrolling an authenticator: the new recovery codes, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
}

/// Where a completed second step leads: one variant per `status`, each with exactly its fields.
#[derive(Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// A session: its tokens, and the trusted-device token when the client asked to trust
    /// this device.
    SignedIn {
        #[serde(flatten)]
        tokens: Tokens,
        #[serde(skip_serializing_if = "Option::is_none")]
        device_token: Option<String>,
    },
    /// MFA is done but the password must change first: the challenge that accepts the new one.
    PasswordChangeRequired {
        challenge_id: String,
        expires_in: i64,
    },
}

impl SignedIn {
    fn of(outcome: Outcome) -> SignedIn {
        SignedIn {
            outcome,
            recovery_codes_remaining: None,
            recovery_codes: None,
        }
    }

    /// The answer's `status`, as the client reads it.
    pub fn status(&self) -> &'static str {
        match self.outcome {
            Outcome::SignedIn { .. } => "signed_in",
            Outcome::PasswordChangeRequired { .. } => "password_change_required",
        }
    }

    /// The session's tokens, if the step opened one.
    pub fn tokens(&self) -> Option<&Tokens> {
        match &self.outcome {
            Outcome::SignedIn { tokens, .. } => Some(tokens),
            Outcome::PasswordChangeRequired { .. } => None,
        }
    }

    /// [`SignedIn::tokens`], owned.
    pub fn into_tokens(self) -> Option<Tokens> {
        match self.outcome {
            Outcome::SignedIn { tokens, .. } => Some(tokens),
            Outcome::PasswordChangeRequired { .. } => None,
        }
    }

    /// The trusted-device token, if the client asked to trust this device.
    pub fn device_token(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::SignedIn { device_token, .. } => device_token.as_deref(),
            Outcome::PasswordChangeRequired { .. } => None,
        }
    }

    /// The challenge of the required password change.
    pub fn challenge_id(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::PasswordChangeRequired { challenge_id, .. } => Some(challenge_id),
            Outcome::SignedIn { .. } => None,
        }
    }

    /// Seconds until the password-change challenge expires.
    pub fn expires_in(&self) -> Option<i64> {
        match &self.outcome {
            Outcome::PasswordChangeRequired { expires_in, .. } => Some(*expires_in),
            Outcome::SignedIn { .. } => None,
        }
    }
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |present: bool| present.then_some("<redacted>");
        f.debug_struct("SignedIn")
            .field("status", &self.status())
            .field("tokens", &self.tokens())
            .field("expires_in", &self.expires_in())
            .field("recovery_codes_remaining", &self.recovery_codes_remaining)
            .field("challenge_id", &redacted(self.challenge_id().is_some()))
            .field("device_token", &redacted(self.device_token().is_some()))
            .field("recovery_codes", &redacted(self.recovery_codes.is_some()))
            .finish()
    }
}

/// "Trust this device": the name the user gave, else one derived from the User-Agent of the
/// request that completes the sign-in.
#[derive(Debug, Clone, Default)]
pub struct TrustRequest {
    pub device_name: Option<String>,
}

/// The device-trust part of a verify or recovery-code request: `None` unless the user asked
/// to trust this device; a name over 100 characters is refused (before anything is checked).
pub fn trust_request(
    trust: Option<bool>,
    device_name: Option<String>,
) -> Result<Option<TrustRequest>, ApiError> {
    if device_name
        .as_ref()
        .is_some_and(|n| n.chars().count() > 100)
    {
        return Err(ApiError::validation(
            "device_name must be at most 100 characters.",
        ));
    }
    Ok(trust
        .unwrap_or(false)
        .then_some(TrustRequest { device_name }))
}

/// A step-up proves the user again; it does not trust the device (either field present: 400).
pub fn no_trust_in_step_up(trust: Option<bool>, device_name: Option<&str>) -> Result<(), ApiError> {
    if trust.is_some() || device_name.is_some() {
        return Err(ApiError::validation("A step-up does not trust devices."));
    }
    Ok(())
}

pub async fn complete_sign_in(
    deps: &Deps,
    verified: Verified,
    trust: Option<TrustRequest>,
    meta: &RequestMeta,
) -> Result<SignedIn, ApiError> {
    let user = deps
        .stores
        .users
        .get_user(&verified.challenge.user_id)
        .await?
        .ok_or(ApiError::ChallengeExpired)?;
    complete_sign_in_as(deps, verified, &user, trust, meta).await
}

/// [`complete_sign_in`] of the challenge [`crate::service::codes::open_mfa_sign_in`] opened,
/// with its user as that opening read them (no second read). `verified` must answer that very
/// challenge (`challenge_expired` otherwise).
pub async fn complete_mfa_sign_in(
    deps: &Deps,
    verified: Verified,
    sign_in: &MfaSignIn,
    trust: Option<TrustRequest>,
    meta: &RequestMeta,
) -> Result<SignedIn, ApiError> {
    if verified.challenge.id_digest != sign_in.record().id_digest {
        return Err(ApiError::ChallengeExpired);
    }
    complete_sign_in_as(deps, verified, sign_in.user(), trust, meta).await
}

/// [`complete_sign_in`] with the user as this request read them when it opened the challenge
/// ([`crate::service::codes::open_challenge_and_user`], a few round trips earlier): saves a
/// read. Whichever read it judged, the sign-in hands out nothing until [`confirm_current`]
/// has read the user again after its writes.
pub(crate) async fn complete_sign_in_as(
    deps: &Deps,
    verified: Verified,
    user: &UserRecord,
    trust: Option<TrustRequest>,
    meta: &RequestMeta,
) -> Result<SignedIn, ApiError> {
    // Only a sign-in's proof completes a sign-in: a step-up's or an enrolment's (of a session
    // already open) is refused, and so is the new-password step (it completes at `…/password`).
    if !matches!(
        verified.challenge.stage,
        Stage::SignInFactor { .. } | Stage::SignInEnrolment { .. } | Stage::Passwordless { .. }
    ) {
        return Err(ApiError::ChallengeExpired);
    }
    let user_id = &verified.challenge.user_id;
    // The user as judged must be the one the challenge was opened for: the same ID, and the
    // same security stamp (a password or MFA reset since, even one a fresh read would see,
    // ends the sign-in; `confirm_current` then holds the stamp to this value).
    if user.user_id != *user_id || user.security_stamp != verified.challenge.user_stamp {
        return Err(ApiError::ChallengeExpired);
    }
    if user.status != UserStatus::Active {
        return Err(ApiError::AccountInactive);
    }
    // Staff never complete a sign-in with an email code (one mailed before a role was given).
    if !verified.method().open_to(&user.roles) {
        return Err(ApiError::Forbidden);
    }
    let now = deps.clock.now();
    if verified.challenge.stage.then_new_password() {
        limits::clear(deps, CounterKey::Password(user_id)).await?;
        // MFA is done; no session before the new password (SPEC §2 item 4).
        let (challenge_id, expires_in) =
            crate::service::password::require_change(deps, &verified.challenge).await?;
        tracing::info!(
            event = "password_change_required",
            "MFA done; password change required"
        );
        return Ok(SignedIn::of(Outcome::PasswordChangeRequired {
            challenge_id,
            expires_in,
        }));
    }
    // Trusted devices never skip MFA for staff (sign_in.rs), so none is made for them: no
    // token that would never work, and no "new trusted device" alert.
    let trust = trust.filter(|_| user.roles.is_empty());
    let proof = Proof {
        amr: verified.amr(),
        acr: verified.acr().into(),
    };
    // Every write of a completed sign-in at once: none depends on another.
    // Boxed: six joined futures nest deeply enough to overflow the compiler's type-layout
    // depth in the function crates that await this.
    let (cleared, recorded, tokens, (), (), device_token) = Box::pin(async {
        tokio::join!(
            limits::clear(deps, CounterKey::Password(user_id)),
            deps.stores.users.record_sign_in(user_id, now),
            tokens::open_session(deps, user, proof),
            audit::record(
                deps,
                user_id,
                Event::SignInSucceeded {
                    method: verified.method.as_str(),
                },
                meta,
            ),
            flag_new_device(deps, user_id, meta, now),
            async {
                match &trust {
                    Some(t) => devices::trust(deps, user_id, t.device_name.as_deref(), meta)
                        .await
                        .map(Some),
                    None => Ok(None),
                }
            },
        )
    })
    .await;
    let outcome = (|| {
        cleared?;
        recorded?;
        Ok::<_, ApiError>((tokens?, device_token?))
    })();
    let (tokens, device_token) = match outcome {
        Ok(issued) => issued,
        Err(err) => {
            abort_sign_in(deps, user_id, meta, "a write failed: no tokens issued").await;
            return Err(err);
        }
    };
    confirm_current(
        deps,
        user,
        &tokens.session_id,
        device_token.as_deref(),
        meta,
    )
    .await?;
    tracing::info!(
        event = "sign_in_completed",
        method = verified.method.as_str(),
        "signed in"
    );
    Ok(SignedIn::of(Outcome::SignedIn {
        tokens,
        device_token,
    }))
}

/// The last step of every sign-in that issues tokens, after its writes (session, device): the
/// user as stored *now* must still be the one the sign-in judged — active, with the same
/// security stamp and roles. Else nothing is handed out (`account_inactive`, or
/// `challenge_expired` for a password or MFA reset or a role change),
/// the session and device just written are removed, and the abort is audited.
///
/// This closes the race with a revocation (deactivation, password reset, MFA reset): those
/// change the user first and then list the sessions and devices to revoke. A sign-in whose
/// re-read comes before that change wrote its session and device before it too, so the
/// revocation finds and revokes them; one whose re-read comes after sees the change here. One
/// consistent read (one round trip) is the price; a transaction conditioning the session on the
/// user would cost no round trip but four write units instead of one.
pub async fn confirm_current(
    deps: &Deps,
    judged: &UserRecord,
    session_id: &str,
    device_token: Option<&str>,
    meta: &RequestMeta,
) -> Result<(), ApiError> {
    let user_id = &judged.user_id;
    let refusal = match deps.stores.users.get_user(user_id).await {
        // Nor a role lost since the read: it would be in the tokens. A first role moves the
        // stamp (`set_roles`), so it is refused above; another role gained is not in these
        // tokens and comes with the next refresh. (Refusing any change would let one admin
        // keep a colleague from signing in by granting and removing `support` in a loop.)
        Ok(Some(now))
            if now.status == UserStatus::Active
                && now.security_stamp == judged.security_stamp
                && judged.roles.iter().all(|role| now.roles.contains(role)) =>
        {
            return Ok(());
        }
        Ok(Some(now)) if now.status != UserStatus::Active => ApiError::AccountInactive,
        Ok(_) => ApiError::ChallengeExpired,
        Err(err) => ApiError::from(err),
    };
    tracing::warn!(
        event = "sign_in_overtaken",
        "the account changed during the sign-in: nothing issued"
    );
    let device_id = device_token
        .and_then(|t| t.split_once('.'))
        .map(|(id, _)| id);
    let (revoked, removed) = tokio::join!(
        deps.stores.sessions.revoke_session(user_id, session_id),
        async {
            match device_id {
                Some(id) => deps
                    .stores
                    .devices
                    .delete_device(user_id, id)
                    .await
                    .map(|_| ()),
                None => Ok(()),
            }
        },
    );
    // Tidiness only: the tokens and the device token are never handed out.
    if revoked.is_err() || removed.is_err() {
        tracing::error!("a session or device of a refused sign-in was not removed");
    }
    abort_sign_in(
        deps,
        user_id,
        meta,
        "the account changed during the sign-in (deactivated, its password or MFA reset, or its roles changed)",
    )
    .await;
    Err(refusal)
}

/// A sign-in whose writes went out at once (the success audited among them) but which then
/// issued nothing: the audit log says so, since `sign_in_succeeded` is already in it. The
/// session or device record written meanwhile is never handed out (its secret is dropped; it
/// expires unused).
pub async fn abort_sign_in(
    deps: &Deps,
    user_id: &crate::identity::UserId,
    meta: &RequestMeta,
    reason: &str,
) {
    tracing::warn!(
        event = "sign_in_aborted",
        reason,
        "sign-in aborted after its writes"
    );
    audit::record(deps, user_id, Event::SignInAborted { reason }, meta).await;
}

/// Anomaly signal (SPEC §8): a sign-in from a kind of device this user never used (browser and
/// system, from the User-Agent) is flagged in the audit log and alerted.
pub async fn flag_new_device(
    deps: &Deps,
    user_id: &crate::identity::UserId,
    meta: &RequestMeta,
    now: crate::clock::UnixTime,
) {
    let name =
        crate::service::devices::describe_user_agent(meta.user_agent.as_deref().unwrap_or(""));
    let fingerprint = crate::crypto::token_digest(&name);
    match deps
        .stores
        .audit
        .first_sighting(user_id, &fingerprint[..32], now)
        .await
    {
        Ok(true) => {
            tracing::warn!(
                event = "new_device_sign_in",
                "sign-in from a device never seen for this user"
            );
            tokio::join!(
                audit::record(deps, user_id, Event::NewDevice { name: &name }, meta),
                alerts::alert(deps, user_id, Alert::NewDeviceSignIn { name: name.clone() }),
            );
        }
        Ok(false) => {}
        Err(err) => tracing::error!(error = %err, "device sighting not recorded"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Each outcome is the JSON the contract documents for its status; what a route adds
    /// (recovery codes) sits beside either.
    #[test]
    fn each_outcome_is_its_status_and_exactly_its_fields() {
        let signed = SignedIn {
            outcome: Outcome::SignedIn {
                tokens: Tokens {
                    access_token: "a".into(),
                    refresh_token: "r".into(),
                    token_type: "Bearer",
                    expires_in: 300,
                    session_id: "s_1".into(),
                },
                device_token: Some("d".into()),
            },
            recovery_codes_remaining: Some(9),
            recovery_codes: None,
        };
        assert_eq!(
            serde_json::to_value(&signed).unwrap(),
            serde_json::json!({"status": "signed_in", "access_token": "a", "refresh_token": "r",
                "token_type": "Bearer", "expires_in": 300, "device_token": "d",
                "recovery_codes_remaining": 9})
        );
        let must_change = SignedIn {
            outcome: Outcome::PasswordChangeRequired {
                challenge_id: "c".into(),
                expires_in: 600,
            },
            recovery_codes_remaining: None,
            recovery_codes: Some(vec!["k".into()]),
        };
        assert_eq!(
            serde_json::to_value(&must_change).unwrap(),
            serde_json::json!({"status": "password_change_required", "challenge_id": "c",
                "expires_in": 600, "recovery_codes": ["k"]})
        );
        assert_eq!(signed.status(), "signed_in");
        assert_eq!(signed.device_token(), Some("d"));
        assert_eq!(signed.challenge_id(), None);
        assert_eq!(must_change.status(), "password_change_required");
        assert_eq!(must_change.challenge_id(), Some("c"));
        assert!(must_change.tokens().is_none());
    }
}
