//! Step-up (SPEC §5): a fresh code inside a signed-in session. The session's `auth_time`,
//! `amr` and `acr` are updated and a new access token is issued; for 5 minutes it counts as
//! elevated. Required, even on a trusted device, to change the password or phone number, add
//! or remove a factor, and regenerate recovery codes. Other services demand it the same way
//! ([`crate::service::tokens::Caller::is_elevated`]): `acr` is `urn:portcullis:acr:mfa` or
//! `urn:portcullis:acr:phishing-resistant` (a passkey), and `now - auth_time < 300`, on the
//! verified access token.

use serde::{Deserialize, Serialize};

use crate::crypto::random_token;
use crate::deps::Deps;
use crate::error::{ApiError, StoreError};
use crate::method::Method;
use crate::service::codes::{self, SendCodeRequest, Verified};
use crate::service::tokens::{self, Caller};
use crate::storage::{ChallengeRecord, SessionRecord, Stage};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepUpRequest {
    pub method: String,
    #[serde(default)]
    pub factor_id: Option<String>,
}

/// `Debug` leaves out the challenge ID (a bearer secret).
#[derive(Clone, Serialize, PartialEq, Eq)]
pub struct StepUpStarted {
    pub challenge_id: String,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sends_remaining: Option<u32>,
    /// `passkey`: the `PublicKeyCredentialRequestOptionsJSON` for the user's passkeys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<serde_json::Value>,
}

debug_redacting!(StepUpStarted { expires_in, sent_to, sends_remaining, options; challenge_id });

/// `{"status": "elevated", ...}`: the tag is the type's, so no answer can carry another.
/// `Debug` leaves out the access token.
#[derive(Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename = "elevated")]
pub struct Elevated {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes_remaining: Option<u32>,
}

debug_redacting!(Elevated { token_type, expires_in, recovery_codes_remaining; access_token });

/// Opens a step-up challenge for the caller's session; sends the code for text, voice, email;
/// for a passkey, answers the assertion options (the ceremony is kept in the challenge).
pub async fn start(
    deps: &Deps,
    caller: &Caller,
    request: StepUpRequest,
) -> Result<StepUpStarted, ApiError> {
    let method =
        Method::parse_one_of(&request.method, &Method::ALL).map_err(ApiError::validation)?;
    let (options, ceremony) = if method == Method::Passkey {
        let (options, ceremony) =
            crate::service::passkeys::assertion_options(deps, &caller.user_id).await?;
        (Some(options), Some(ceremony))
    } else {
        (None, None)
    };
    let now = deps.clock.now();
    let challenge_id = random_token();
    // Bound to a session, which a password change or MFA reset revokes: no stamp.
    let record = ChallengeRecord {
        ceremony,
        ..ChallengeRecord::opened(
            crate::crypto::token_digest(&challenge_id),
            caller.user_id.clone(),
            Stage::StepUp {
                session_id: caller.claims.sid.clone(),
            },
            now,
            deps.settings.challenge_ttl_secs,
        )
    };
    deps.stores.challenges.create_challenge(&record).await?;
    // A passkey's options live 5 minutes, whatever the challenge's lifetime.
    let expires_in = if options.is_some() {
        deps.settings
            .challenge_ttl_secs
            .min(crate::passkey::CEREMONY_TIMEOUT_SECS)
    } else {
        deps.settings.challenge_ttl_secs
    };
    let mut started = StepUpStarted {
        challenge_id,
        expires_in,
        sent_to: None,
        sends_remaining: None,
        options,
    };
    if method.is_sent() {
        let sent = codes::send_code_opened(
            deps,
            &record,
            &SendCodeRequest {
                method: request.method,
                factor_id: request.factor_id,
            },
            &caller.from,
        )
        .await?;
        started.sent_to = Some(sent.sent_to);
        started.sends_remaining = Some(sent.sends_remaining);
    }
    Ok(started)
}

opened_challenge!(
    /// A live, open step-up challenge of the caller's own session, as [`challenge_of`] found it.
    /// Only this module makes one, and [`elevate`] takes one: a route cannot elevate a session
    /// with a challenge it opened some other way (a sign-in's, another session's). It reads as
    /// the record it wraps.
    StepUpChallenge
);

/// The caller's own open step-up challenge (another user's, or another session's, is expired
/// as far as this caller can tell).
pub async fn challenge_of(
    deps: &Deps,
    caller: &Caller,
    challenge_id: &str,
) -> Result<StepUpChallenge, ApiError> {
    let challenge = codes::open_challenge(deps, challenge_id).await?;
    if !is_of(&challenge, caller) {
        return Err(ApiError::ChallengeExpired);
    }
    Ok(StepUpChallenge(challenge))
}

/// A step-up of the caller's session (its `sid`), for the caller.
fn is_of(challenge: &ChallengeRecord, caller: &Caller) -> bool {
    challenge.stage.is_step_up_of(&caller.claims.sid) && challenge.user_id == caller.user_id
}

/// Records the fresh proof on the session and issues an elevated access token. `verified`
/// must answer `step_up` itself (`challenge_expired` otherwise): a proof of a sign-in, an
/// enrolment or another step-up elevates nothing.
pub async fn elevate(
    deps: &Deps,
    caller: &Caller,
    step_up: &StepUpChallenge,
    verified: Verified,
) -> Result<Elevated, ApiError> {
    if verified.challenge.id_digest != step_up.id_digest
        || !is_of(&verified.challenge, caller)
        || !is_of(step_up, caller)
    {
        return Err(ApiError::ChallengeExpired);
    }
    // The session and the roles as they are now, not as the caller's token has them: a role
    // taken away is never minted again by stepping up. Everything is checked before the
    // elevation is written, so a refused step-up records no fresh proof.
    let (session, user) = tokio::try_join!(
        deps.stores
            .sessions
            .get_session(&caller.user_id, &caller.claims.sid),
        deps.stores.users.get_user(&caller.user_id),
    )?;
    let session = session
        .filter(|s| !s.revoked)
        .ok_or(ApiError::Unauthorized)?;
    let user = user
        .filter(|u| u.status == crate::storage::UserStatus::Active)
        .ok_or(ApiError::Unauthorized)?;
    // As at a refresh: a session older than the user's last credential change ends here.
    if session.is_older_than(&user) {
        deps.stores
            .sessions
            .revoke_session(&caller.user_id, &caller.claims.sid)
            .await?;
        return Err(ApiError::Unauthorized);
    }
    // Staff never step up with an email code (one mailed before a role was given).
    if !verified.method.open_to(&user.roles) {
        return Err(ApiError::Forbidden);
    }
    let now = deps.clock.now();
    let mut amr = verified.amr();
    amr.retain(|m| m != "pwd");
    let acr = verified.acr();
    // Conditional on the session still live: a revocation since the read wins.
    deps.stores
        .sessions
        .elevate_session(&caller.user_id, &caller.claims.sid, now, &amr, acr)
        .await
        .map_err(|err| match err {
            StoreError::ConditionFailed => ApiError::Unauthorized,
            other => other.into(),
        })?;
    let session = SessionRecord {
        auth_time: now,
        amr,
        acr: acr.to_owned(),
        ..session
    };
    let access_token = tokens::access_token(deps, &session, &user.roles, now).await?;
    tracing::info!(
        event = "step_up_completed",
        method = verified.method.as_str(),
        "session elevated"
    );
    Ok(Elevated {
        access_token,
        token_type: "Bearer",
        // The session's absolute limit still holds: a step-up elevates, never extends.
        expires_in: tokens::access_token_expiry(deps, &session, now).secs() - now.secs(),
        recovery_codes_remaining: None,
    })
}
