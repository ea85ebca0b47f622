//! Sessions and tokens (SPEC §6): a short-lived JWT access token signed by KMS and a rotating
//! opaque refresh token (256 random bits, stored as SHA-256). Reusing a rotated refresh token
//! revokes the whole session: either the legitimate client or a thief is holding a copy.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::crypto::jwt::{self, AccessClaims, Expectations};
use crate::crypto::{SecretString, constant_time_eq, random_id, random_token, token_digest};
use crate::deps::Deps;
use crate::error::ApiError;
use crate::identity::UserId;
use crate::request::RequestMeta;
use crate::storage::{Rotation, SessionRecord, UserRecord};

/// The token pair of a sign-in or refresh. `Debug` shows neither token (both are bearer
/// credentials): a `{:?}` of an answer that holds them cannot leak them to a log.
#[derive(Clone, Serialize, PartialEq, Eq)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    /// Seconds the access token is valid.
    pub expires_in: i64,
    /// The session the tokens belong to (not part of the answer: for revoking a session
    /// just opened whose sign-in is then refused).
    #[serde(skip)]
    pub session_id: String,
}

debug_redacting!(Tokens { token_type, expires_in, session_id; access_token, refresh_token });

/// How the user proved themselves in this sign-in.
#[derive(Debug, Clone)]
pub struct Proof {
    pub amr: Vec<String>,
    pub acr: String,
}

/// Opens a session after a completed sign-in and returns its first tokens.
pub async fn open_session(
    deps: &Deps,
    user: &UserRecord,
    proof: Proof,
) -> Result<Tokens, ApiError> {
    let now = deps.clock.now();
    let session_id = random_id("s");
    let secret = random_token();
    let session = SessionRecord {
        user_id: user.user_id.clone(),
        session_id: session_id.clone(),
        created_at: now,
        auth_time: now,
        amr: proof.amr,
        acr: proof.acr,
        refresh_digest: token_digest(&secret),
        rotated: Vec::new(),
        last_refresh_at: now,
        expires_at: now.plus_secs(deps.settings.session_max_secs),
        idle_expires_at: now.plus_secs(deps.settings.session_idle_secs),
        revoked: false,
        user_stamp: Some(user.security_stamp),
    };
    // The token does not depend on the write (only on the record), so the two go at once;
    // should the write fail, the token is dropped unseen.
    let (created, access_token) = tokio::join!(
        deps.stores.sessions.create_session(&session),
        access_token(deps, &session, &user.roles, now),
    );
    created?;
    let access_token = access_token?;
    Ok(Tokens {
        access_token,
        refresh_token: refresh_token(&user.user_id, &session_id, &secret),
        token_type: "Bearer",
        expires_in: access_token_expiry(deps, &session, now).secs() - now.secs(),
        session_id,
    })
}

/// Signs an access token for a session as it is now.
pub async fn access_token(
    deps: &Deps,
    session: &SessionRecord,
    roles: &[String],
    now: UnixTime,
) -> Result<String, ApiError> {
    let signer = deps.signer.get().await?;
    let claims = AccessClaims {
        iss: deps.settings.token_issuer.clone(),
        sub: session.user_id.to_string(),
        aud: deps.settings.token_audience.clone(),
        iat: now.secs(),
        // Never past the session's absolute limit (SPEC §12): a token issued late in a session
        // (a refresh, a step-up) is shortened, so the session cannot be outlived.
        exp: access_token_expiry(deps, session, now).secs(),
        auth_time: session.auth_time.secs(),
        amr: session.amr.clone(),
        acr: session.acr.clone(),
        sid: session.session_id.clone(),
        jti: random_id("j"),
        roles: roles.to_vec(),
        token_use: "access".into(),
    };
    Ok(jwt::issue(signer.as_ref(), &claims).await?)
}

/// When an access token issued `now` for `session` expires: its lifetime, cut at the session's
/// absolute expiry.
pub fn access_token_expiry(deps: &Deps, session: &SessionRecord, now: UnixTime) -> UnixTime {
    now.plus_secs(deps.settings.access_token_secs)
        .min(session.expires_at)
}

/// `<base64url(user id)>.<session id>.<secret>`: the session is found without an index; only
/// the secret is secret.
fn refresh_token(user_id: &UserId, session_id: &str, secret: &str) -> String {
    format!(
        "{}.{session_id}.{secret}",
        URL_SAFE_NO_PAD.encode(user_id.as_str())
    )
}

fn parse_refresh_token(token: &str) -> Option<(UserId, String, String)> {
    if token.len() > 512 {
        return None;
    }
    let mut parts = token.split('.');
    let (Some(user), Some(session), Some(secret), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let user = String::from_utf8(URL_SAFE_NO_PAD.decode(user).ok()?).ok()?;
    let user = UserId::parse(&user).ok()?;
    if session.is_empty() || secret.len() < 40 {
        return None;
    }
    Some((user, session.to_owned(), secret.to_owned()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: SecretString,
}

/// The answer to a refresh token that cannot be used (unknown, rotated, expired, revoked): one
/// answer for all, so a client learns only "sign in again".
fn refused() -> ApiError {
    ApiError::Unauthorized
}

/// Ends the session at a refresh: a refresh token presented again after its rotation, or
/// twice at once, may be a copy's (the whole session is revoked, so that neither holder keeps
/// it); a session older than the user's stamp is stale.
async fn end_session(deps: &Deps, user_id: &UserId, session_id: &str) -> Result<(), ApiError> {
    deps.stores
        .sessions
        .revoke_session(user_id, session_id)
        .await?;
    Ok(())
}

/// `POST /v1/tokens/refresh`: rotates the refresh token and issues a new access token. Enforces
/// the inactivity (15 minutes) and absolute (12 hours) limits.
pub async fn refresh(deps: &Deps, request: RefreshRequest) -> Result<Tokens, ApiError> {
    let Some((user_id, session_id, secret)) = parse_refresh_token(request.refresh_token.expose())
    else {
        return Err(refused());
    };
    let now = deps.clock.now();
    let Some(session) = deps
        .stores
        .sessions
        .get_session(&user_id, &session_id)
        .await?
    else {
        return Err(refused());
    };
    let digest = token_digest(&secret);
    if session.revoked {
        return Err(refused());
    }
    if !constant_time_eq(digest.as_bytes(), session.refresh_digest.as_bytes()) {
        if session
            .rotated
            .iter()
            .any(|old| constant_time_eq(old.as_bytes(), digest.as_bytes()))
        {
            tracing::warn!(
                event = "refresh_token_reused",
                "rotated refresh token reused: session revoked"
            );
            end_session(deps, &user_id, &session_id).await?;
        }
        return Err(refused());
    }
    if session.expires_at <= now || session.idle_expires_at <= now {
        return Err(refused());
    }
    let Some(user) = deps.stores.users.get_user(&user_id).await? else {
        return Err(refused());
    };
    if user.status != crate::storage::UserStatus::Active {
        return Err(refused());
    }
    // A password change or reset, an MFA reset or a deactivation since the session was opened:
    // every revocation revokes the sessions it lists, and this ends one it missed.
    if session.is_older_than(&user) {
        tracing::warn!(
            event = "session_stale",
            "refresh of a session older than the user's last credential change: session revoked"
        );
        end_session(deps, &user_id, &session_id).await?;
        return Err(refused());
    }
    let new_secret = random_token();
    let idle = now
        .plus_secs(deps.settings.session_idle_secs)
        .min(session.expires_at);
    let won = deps
        .stores
        .sessions
        .rotate_refresh(
            &user_id,
            &session_id,
            Rotation {
                old_digest: &digest,
                new_digest: &token_digest(&new_secret),
                now,
                idle_expires_at: idle,
            },
        )
        .await?;
    if !won {
        // Two refreshes with the same token at once: one of them is a copy.
        tracing::warn!(
            event = "refresh_token_reused",
            "concurrent reuse of a refresh token: session revoked"
        );
        end_session(deps, &user_id, &session_id).await?;
        return Err(refused());
    }
    let access_token = access_token(deps, &session, &user.roles, now).await?;
    Ok(Tokens {
        access_token,
        refresh_token: refresh_token(&user_id, &session_id, &new_secret),
        token_type: "Bearer",
        expires_in: access_token_expiry(deps, &session, now).secs() - now.secs(),
        session_id: session_id.to_string(),
    })
}

/// The caller, from a verified access token, and where the request came from (the audit
/// records of what the caller does carry it).
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: UserId,
    pub claims: AccessClaims,
    pub from: RequestMeta,
}

/// A [`Caller`] whose session is elevated (an MFA-backed proof within `step_up_secs`, SPEC §5).
/// Only [`Caller::elevated`] makes one, so a handler that takes it cannot skip the check.
#[derive(Debug, Clone)]
pub struct Elevated(Caller);

impl std::ops::Deref for Elevated {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl Caller {
    /// SPEC §5: an MFA-backed proof (sign-in or step-up) within the last `step_up_secs`; a
    /// sign-in that skipped MFA on a trusted device does not count.
    pub fn is_elevated(&self, deps: &Deps) -> bool {
        let now = deps.clock.now().secs();
        (self.claims.acr == jwt::ACR_MFA || self.claims.acr == jwt::ACR_PHISHING_RESISTANT)
            && now - self.claims.auth_time < deps.settings.step_up_secs
    }

    pub fn require_step_up(&self, deps: &Deps) -> Result<(), ApiError> {
        if self.is_elevated(deps) {
            Ok(())
        } else {
            Err(ApiError::StepUpRequired)
        }
    }

    /// The caller as an [`Elevated`] one, or `StepUpRequired`.
    pub fn elevated(self, deps: &Deps) -> Result<Elevated, ApiError> {
        self.require_step_up(deps)?;
        Ok(Elevated(self))
    }
}

/// Verifies a bearer access token (signature, expiry, issuer, audience) and that its session
/// is still live (SPEC §12: revocation is immediate): after a sign-out, a password change or
/// reset, an MFA reset or a deactivation, the session's tokens get 401 at once, not when they
/// expire. One consistent read of the session; API Gateway's JWT authorizer checks only the
/// signature, so every protected Portcullis route comes through here. Other services that
/// verify the JWT alone accept it until its `exp` (at most 5 minutes: `docs/step-up.md`).
/// `from`: where the request came from, as the edge read it.
pub async fn authenticate(
    deps: &Deps,
    authorization: Option<&str>,
    from: &RequestMeta,
) -> Result<Caller, ApiError> {
    let token = authorization
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    // The key the token names, among the published ones (a key rotated in since this
    // environment read them is looked up again, at most every 30 s).
    let kid = jwt::kid_of(token).ok_or(ApiError::Unauthorized)?;
    let ring = deps.signer.ring_knowing(&kid).await?;
    let key = ring.key(&kid).ok_or(ApiError::Unauthorized)?;
    let expect = Expectations {
        key,
        kid: &kid,
        issuer: &deps.settings.token_issuer,
        audience: &deps.settings.token_audience,
        now: deps.clock.now().secs(),
    };
    let claims = jwt::verify(token, &expect).map_err(|_| ApiError::Unauthorized)?;
    let user_id = UserId::parse(&claims.sub).map_err(|_| ApiError::Unauthorized)?;
    if claims.sid.is_empty() || claims.sid.len() > 128 {
        return Err(ApiError::Unauthorized);
    }
    let now = deps.clock.now();
    let live = deps
        .stores
        .sessions
        .get_session(&user_id, &claims.sid)
        .await?
        .is_some_and(|s| !s.revoked && s.expires_at > now && s.idle_expires_at > now);
    if !live {
        tracing::info!(
            event = "access_token_refused",
            "access token of an ended session"
        );
        return Err(ApiError::Unauthorized);
    }
    Ok(Caller {
        user_id,
        claims,
        from: from.clone(),
    })
}

/// `POST /v1/sign-out`: revokes the caller's session: its refresh token and, at once, its
/// access tokens stop working here (other services see them expire within minutes).
pub async fn sign_out(deps: &Deps, caller: &Caller) -> Result<(), ApiError> {
    deps.stores
        .sessions
        .revoke_session(&caller.user_id, &caller.claims.sid)
        .await?;
    tracing::info!(event = "signed_out", "session revoked");
    Ok(())
}

/// `GET /.well-known/jwks.json`.
pub async fn jwks(deps: &Deps) -> Result<serde_json::Value, ApiError> {
    // The current key and, during a rotation, the previous one (tokens it signed still live).
    let ring = deps.signer.ring().await?;
    let keys: Vec<serde_json::Value> = ring
        .published()
        .map(|(kid, key)| jwt::jwk(key, kid))
        .collect();
    Ok(serde_json::json!({ "keys": keys }))
}

/// `GET /.well-known/openid-configuration`: enough for JWT authorizers (issuer + JWKS).
pub fn openid_configuration(deps: &Deps) -> serde_json::Value {
    let issuer = deps.settings.token_issuer.trim_end_matches('/');
    serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "token_endpoint": format!("{issuer}/v1/tokens/refresh"),
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "claims_supported": ["iss", "sub", "aud", "iat", "exp", "auth_time", "amr", "acr", "sid", "roles"],
        "acr_values_supported": [jwt::ACR_MFA, jwt::ACR_PHISHING_RESISTANT, jwt::ACR_TRUSTED_DEVICE],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_round_trip_and_garbage_is_refused() {
        let user = UserId::parse("alice@example.com").unwrap();
        let token = refresh_token(&user, "s_abc", &random_token());
        let (u, s, _) = parse_refresh_token(&token).unwrap();
        assert_eq!((u, s.as_str()), (user, "s_abc"));
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!!.s.secretsecretsecretsecretsecretsecretsecret",
            &"x".repeat(600),
        ] {
            assert!(parse_refresh_token(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn debug_shows_neither_token() {
        let tokens = Tokens {
            access_token: "eyJhbGciOiJFUzI1NiJ9.access.secret-signature".into(),
            refresh_token: "alice.s_abc.refresh-secret-part".into(),
            token_type: "Bearer",
            expires_in: 300,
            session_id: "s_abc".into(),
        };
        let shown = format!("{tokens:?} {tokens:#?}");
        assert!(!shown.contains("secret-signature"), "{shown}");
        assert!(!shown.contains("refresh-secret-part"), "{shown}");
        assert!(shown.contains("s_abc") && shown.contains("300"), "{shown}");
    }

    /// Every answer or record that carries a secret prints without it.
    #[test]
    fn no_debug_of_an_answer_or_record_shows_its_secret() {
        let tokens = Tokens {
            access_token: "SECRET-access".into(),
            refresh_token: "SECRET-refresh".into(),
            token_type: "Bearer",
            expires_in: 300,
            session_id: "s_abc".into(),
        };
        let signed_in = crate::service::complete::SignedIn {
            outcome: crate::service::complete::Outcome::SignedIn {
                tokens,
                device_token: Some("SECRET-device".into()),
            },
            recovery_codes_remaining: None,
            recovery_codes: Some(vec!["SECRET-code-0".into()]),
        };
        let must_change = crate::service::complete::SignedIn {
            outcome: crate::service::complete::Outcome::PasswordChangeRequired {
                challenge_id: "SECRET-challenge".into(),
                expires_in: 300,
            },
            recovery_codes_remaining: None,
            recovery_codes: None,
        };
        let elevated = crate::service::step_up::Elevated {
            access_token: "SECRET-elevated".into(),
            token_type: "Bearer",
            expires_in: 300,
            recovery_codes_remaining: None,
        };
        let codes = crate::service::recovery::RecoveryCodes {
            recovery_codes: vec!["SECRET-code-1".into(), "SECRET-code-2".into()],
        };
        let user = UserRecord {
            user_id: UserId::parse("alice@example.com").unwrap(),
            email: Some("SECRET-mail@example.org".into()),
            phone: Some("+12025550143".into()),
            password_hash: Some("$argon2id$SECRET-hash".into()),
            status: crate::storage::UserStatus::Active,
            roles: vec![],
            created_at: UnixTime(0),
            password_changed_at: None,
            last_sign_in_at: None,
            must_change_password: false,
            password_history: vec!["$argon2id$SECRET-old".into()],
            security_stamp: 0,
        };
        let voice = crate::notifier::sns::VoiceMessage {
            version: 1,
            kind: "one_time_code",
            to: "+12025550143",
            language: "en",
            text: "Your code is SECRET-123456",
            code: Some("SECRET-123456"),
            spoken_code: Some("SECRET 1 2 3".into()),
            repeat: 2,
            purpose: "sign_in",
        };
        let factor = crate::storage::FactorKind::Phone {
            e164: "+12025550143".into(),
            delivery: crate::storage::Delivery::Sms,
        };
        let email = crate::storage::FactorKind::Email {
            address: "SECRET-mail@example.org".into(),
        };
        let seed = crate::storage::FactorKind::Totp {
            secret_ciphertext: "SECRET-sealed".into(),
            last_used_step: None,
        };
        let recovery = crate::storage::RecoveryCodeRecord {
            user_id: UserId::parse("alice@example.com").unwrap(),
            tag: "SECRET-tag".into(),
            hash: "$argon2id$SECRET-code-hash".into(),
            created_at: UnixTime(0),
            used_at: None,
        };
        let answer = crate::service::sign_in::SignInAnswer::MfaRequired {
            challenge_id: "SECRET-challenge".into(),
            expires_in: 300,
            methods: Vec::new(),
        };
        let phone = crate::phone::Phone::parse("+12025550143").unwrap();
        for shown in [
            format!("{factor:?}"),
            format!("{email:?}"),
            format!("{seed:?}"),
            format!("{recovery:?}"),
            format!("{answer:?}"),
            format!("{phone:?}"),
            format!("{signed_in:?}"),
            format!("{must_change:?}"),
            format!("{elevated:#?}"),
            format!("{codes:?}"),
            format!("{user:?}"),
            format!("{voice:?}"),
        ] {
            assert!(!shown.contains("SECRET"), "{shown}");
            assert!(!shown.contains("+12025550143"), "{shown}");
        }
        assert!(format!("{user:?}").contains("alice@example.com"));
    }
}
