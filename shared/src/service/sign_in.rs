//! `POST /v1/sign-in` (SPEC §2 items 1–4): the password step.
//!
//! The order of work is the same for every failure, so status, body and timing do not tell
//! an unknown user ID from a wrong password or a deactivated account:
//!
//! 1. normalise the user ID; refuse bad input (400) before touching any state;
//! 2. read, all at once (one round trip, [`Reads`]): the source IP's throttle, the ID's
//!    password counter (kept whether or not the user exists), the user, their factors, the
//!    trusted device the request names and (without one) the count of recovery codes — the
//!    same reads for an unknown ID. While the IP is throttled, `rate_limited` before anything
//!    is written or evaluated;
//! 3. reserve the attempt (one conditional write on the counter just read); during a lock,
//!    `locked` without evaluating the password;
//! 4. verify the password with argon2id — against a dummy hash when there is no user or no
//!    password, so the cost is the same;
//! 5. on failure count it on the IP and the ID and audit it, all at once (starting a lock at
//!    the threshold);
//! 6. on success: `account_inactive` for a deactivated account (whoever knows the password
//!    learns nothing new), otherwise rehash if the parameters changed, and either sign in on
//!    the trusted device or open a challenge, each in one round of writes.
//!
//! So no answer waits for more than three round trips one after another (a first sighting of
//! a kind of device adds its audit event and alert, a rehash its write).

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::crypto::{PasswordCheck, SecretString, random_token, token_digest};
use crate::deps::Deps;
use crate::error::{ApiError, StoreError};
use crate::identity::UserId;
use crate::method::Method;
use crate::request::RequestMeta;
use crate::service::audit::{self, Event};
use crate::service::limits;
use crate::storage::{
    ChallengeRecord, CounterKey, Delivery, FactorKind, FactorRecord, FactorStatus, FailureOutcome,
    Stage, UserRecord, UserStatus,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    pub user_id: String,
    pub password: SecretString,
}

/// One way to complete the challenge, as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MfaMethod {
    pub method: Method,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// The answer to a password step: one variant per `status`, each with exactly its fields (no
/// bag of `Option`s a handler could fill wrongly). `Debug` leaves out the challenge ID (a
/// bearer secret; [`Tokens`](crate::service::tokens::Tokens) hides its own).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignInAnswer {
    /// The password is right; a second factor is next (`methods`: the ways offered).
    MfaRequired {
        challenge_id: String,
        /// Seconds until the challenge expires.
        expires_in: i64,
        methods: Vec<MfaMethod>,
    },
    /// The password is right; the user has no factor and must enrol one in this challenge.
    MfaEnrolmentRequired {
        challenge_id: String,
        /// Seconds until the challenge expires.
        expires_in: i64,
    },
    /// A trusted device skipped MFA: the session's tokens, under `tokens` (not beside the
    /// status, as a completed second step puts them: the contract's two shapes differ).
    SignedIn {
        tokens: crate::service::tokens::Tokens,
    },
}

impl SignInAnswer {
    /// The answer's `status`, as the client reads it.
    pub fn status(&self) -> &'static str {
        match self {
            SignInAnswer::MfaRequired { .. } => "mfa_required",
            SignInAnswer::MfaEnrolmentRequired { .. } => "mfa_enrolment_required",
            SignInAnswer::SignedIn { .. } => "signed_in",
        }
    }

    /// The challenge the next step names, unless the sign-in is complete.
    pub fn challenge_id(&self) -> Option<&str> {
        match self {
            SignInAnswer::MfaRequired { challenge_id, .. }
            | SignInAnswer::MfaEnrolmentRequired { challenge_id, .. } => Some(challenge_id),
            SignInAnswer::SignedIn { .. } => None,
        }
    }

    /// Seconds until the challenge expires, unless the sign-in is complete.
    pub fn expires_in(&self) -> Option<i64> {
        match self {
            SignInAnswer::MfaRequired { expires_in, .. }
            | SignInAnswer::MfaEnrolmentRequired { expires_in, .. } => Some(*expires_in),
            SignInAnswer::SignedIn { .. } => None,
        }
    }

    /// The second factors offered (`mfa_required` only).
    pub fn methods(&self) -> Option<&[MfaMethod]> {
        match self {
            SignInAnswer::MfaRequired { methods, .. } => Some(methods),
            _ => None,
        }
    }

    /// [`SignInAnswer::tokens`], owned.
    pub fn into_tokens(self) -> Option<crate::service::tokens::Tokens> {
        match self {
            SignInAnswer::SignedIn { tokens } => Some(tokens),
            _ => None,
        }
    }

    /// The tokens of a sign-in a trusted device completed.
    pub fn tokens(&self) -> Option<&crate::service::tokens::Tokens> {
        match self {
            SignInAnswer::SignedIn { tokens } => Some(tokens),
            _ => None,
        }
    }
}

impl std::fmt::Debug for SignInAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("SignInAnswer");
        out.field("status", &self.status());
        if self.challenge_id().is_some() {
            out.field("challenge_id", &"<redacted>");
        }
        if let Some(expires_in) = self.expires_in() {
            out.field("expires_in", &expires_in);
        }
        if let Some(methods) = self.methods() {
            out.field("methods", &methods);
        }
        if let Some(tokens) = self.tokens() {
            out.field("tokens", tokens);
        }
        out.finish()
    }
}

/// Refuses browsers and systems below the configured minimums (SPEC §2 item 5).
pub fn check_client(deps: &Deps, meta: &RequestMeta) -> Result<(), ApiError> {
    let minimums = crate::client::Minimums::parse(&deps.settings.min_clients)
        .map_err(|_| ApiError::ServiceUnavailable)?;
    crate::client::check(&minimums, meta.user_agent.as_deref())
}

/// Whether the user must change their password after MFA: an admin's flag, or a password
/// older than the maximum age (off by default).
pub fn password_change_due(deps: &Deps, user: &UserRecord, now: UnixTime) -> bool {
    user.must_change_password
        || deps.settings.password_max_age_secs.is_some_and(|max| {
            user.password_changed_at
                .unwrap_or(user.created_at)
                .plus_secs(max)
                <= now
        })
}

pub async fn sign_in(
    deps: &Deps,
    request: SignInRequest,
    meta: &RequestMeta,
) -> Result<SignInAnswer, ApiError> {
    let user_id = UserId::parse(&request.user_id)?;
    check_client(deps, meta)?;
    let password = request.password;
    if password.is_empty() {
        return Err(ApiError::validation("password must not be empty."));
    }
    if password.len() > deps.settings.max_password_bytes {
        return Err(ApiError::validation(format!(
            "password must be at most {} bytes.",
            deps.settings.max_password_bytes
        )));
    }

    let now = deps.clock.now();
    // Boxed here and below: the joined futures nest deeply enough to exceed the compiler's
    // type-layout depth in the function crate otherwise.
    let reads = Box::pin(Reads::of(deps, &user_id, meta)).await?;
    // Per-source-IP throttle against credential stuffing (SPEC §8): refused before anything
    // is counted or evaluated, so it never locks (or reveals) the targeted users.
    if let Some(until) = reads
        .ip
        .as_ref()
        .and_then(|seen| limits::lock_in(deps, seen))
    {
        return Err(ApiError::RateLimited {
            retry_after_secs: until.secs() - now.secs(),
        });
    }
    // Counted before argon2 runs (a lock, or a run's attempts all in flight, refuse here), so
    // a burst of parallel guesses gets the same five evaluations as one guess after another.
    let (attempt, reserved) = limits::reserve_password(deps, &user_id, reads.attempts).await?;

    let user = reads.user;
    let stored_hash = user.as_ref().and_then(|u| u.password_hash.clone());
    // From here until the attempt is judged, an error gives the attempt back: a store hiccup
    // must never leave it reserved (five of those would refuse every attempt).
    let check = verify_off_thread(deps, stored_hash.clone(), password.clone()).await;
    let check = match check {
        Ok(check) => check,
        Err(err) => return Err(give_back_then(deps, &user_id, reserved, err).await),
    };

    let (user, stored_hash, needs_rehash) = match (user, stored_hash, check) {
        (Some(user), Some(hash), PasswordCheck::Match { needs_rehash }) => {
            (user, hash, needs_rehash)
        }
        (user, _, _) => {
            let failure = Failure {
                user_id: &user_id,
                known_user: user.is_some(),
                attempt,
                reserved,
                ip: reads.ip,
            };
            return Err(Box::pin(count_failure(deps, failure, meta)).await);
        }
    };

    if user.status == UserStatus::Inactive {
        limits::give_back_password(deps, &user_id, reserved).await?;
        tracing::info!(
            event = "sign_in_inactive",
            "right password for a deactivated account"
        );
        return Err(ApiError::AccountInactive);
    }
    if needs_rehash {
        rehash(deps, &user.user_id, &stored_hash, password).await;
    }
    if let Some(device) = trusted_device(deps, &user, &reads.factors, reads.device, now) {
        let signed_in = Box::pin(trusted_device_sign_in(deps, &user, &device, meta, now)).await;
        match signed_in {
            // The device was removed while this request was in flight: MFA, as for any
            // device not trusted.
            Ok(None) => {}
            Ok(Some(answer)) => return Ok(answer),
            Err(err) => return Err(give_back_then(deps, &user_id, reserved, err).await),
        }
    }
    let recovery_codes = match reads.recovery_codes {
        Some(count) => count,
        // A device token that did not skip MFA: the one read the round above left out (a
        // trusted device does not need it).
        None => match deps
            .stores
            .recovery
            .remaining_recovery_codes(&user_id)
            .await
        {
            Ok(count) => count,
            Err(err) => return Err(give_back_then(deps, &user_id, reserved, err.into()).await),
        },
    };
    Box::pin(open_challenge(
        deps,
        &user,
        &reads.factors,
        recovery_codes,
        reserved,
        now,
    ))
    .await
}

/// Everything the password step reads, fetched at once before the password is checked (the
/// same reads for every user ID, known or not).
struct Reads {
    /// The source IP's throttle counter, when the request has a source IP.
    ip: Option<limits::Seen>,
    /// The ID's password counter.
    attempts: limits::Seen,
    user: Option<UserRecord>,
    factors: Vec<FactorRecord>,
    /// Read when no device token came (a trusted device does not need it).
    recovery_codes: Option<u32>,
    /// The trusted device the request's token names, if it is valid for this ID.
    device: Option<crate::storage::DeviceRecord>,
}

impl Reads {
    async fn of(deps: &Deps, user_id: &UserId, meta: &RequestMeta) -> Result<Reads, ApiError> {
        let (ip, attempts, user, factors, recovery_codes, device) = tokio::try_join!(
            async {
                match meta.source_ip.as_deref() {
                    Some(ip) => Ok(Some(limits::read(deps, CounterKey::SourceIp(ip)).await?)),
                    None => Ok::<_, ApiError>(None),
                }
            },
            async { Ok::<_, ApiError>(limits::read(deps, CounterKey::Password(user_id)).await?) },
            async { Ok::<_, ApiError>(deps.stores.users.get_user(user_id).await?) },
            async { Ok::<_, ApiError>(deps.stores.factors.list_factors(user_id).await?) },
            async {
                match meta.device_token {
                    Some(_) => Ok::<_, ApiError>(None),
                    None => Ok(Some(
                        deps.stores
                            .recovery
                            .remaining_recovery_codes(user_id)
                            .await?,
                    )),
                }
            },
            async {
                match &meta.device_token {
                    Some(token) => crate::service::devices::recognise(deps, user_id, token).await,
                    None => Ok(None),
                }
            },
        )?;
        Ok(Reads {
            ip,
            attempts,
            user,
            factors,
            recovery_codes,
            device,
        })
    }
}

/// A valid trusted-device token skips MFA (SPEC §2 item 4, §12) — only for a user who has at
/// least one active factor (a device never stands in for a missing second factor) and no
/// password change due (admin flag or maximum age), and never for staff (admins approve MFA
/// resets, support sees users' data: their every sign-in needs a code). The session is marked
/// as not MFA (`acr` trusted-device), so it does not count as a step-up.
fn trusted_device(
    deps: &Deps,
    user: &UserRecord,
    factors: &[FactorRecord],
    device: Option<crate::storage::DeviceRecord>,
    now: UnixTime,
) -> Option<crate::storage::DeviceRecord> {
    let device = device?;
    if !user.roles.is_empty() || password_change_due(deps, user, now) {
        return None;
    }
    if !factors.iter().any(|f| f.status == FactorStatus::Active) {
        tracing::info!(
            event = "device_token_ignored",
            "trusted device ignored: the user has no active factor"
        );
        return None;
    }
    Some(device)
}

/// Signs in on a recognised trusted device: every write at once (the counter's run ends, the
/// sign-in is recorded for the inactive-ID sweep, the session opens, the device is marked
/// used, the event audited, the kind of device checked against the ones seen).
///
/// `Ok(None)` when the device is gone by the time it is marked used (removed, or every device
/// dropped by a password reset, since the first read): nothing is issued, the session just
/// written is revoked, and the caller asks for MFA; the audit log says the sign-in was
/// aborted, as it does when a write fails. Then, as every sign-in,
/// [`crate::service::complete::confirm_current`] re-reads the user before anything is handed
/// out.
async fn trusted_device_sign_in(
    deps: &Deps,
    user: &UserRecord,
    device: &crate::storage::DeviceRecord,
    meta: &RequestMeta,
    now: UnixTime,
) -> Result<Option<SignInAnswer>, ApiError> {
    let proof = crate::service::tokens::Proof {
        amr: vec!["pwd".into()],
        acr: crate::crypto::jwt::ACR_TRUSTED_DEVICE.into(),
    };
    let (cleared, recorded, tokens, touched, (), ()) = tokio::join!(
        limits::clear(deps, CounterKey::Password(&user.user_id)),
        deps.stores.users.record_sign_in(&user.user_id, now),
        crate::service::tokens::open_session(deps, user, proof),
        crate::service::devices::touch(deps, device),
        audit::record(
            deps,
            &user.user_id,
            Event::SignInSucceeded {
                method: "trusted device",
            },
            meta,
        ),
        crate::service::complete::flag_new_device(deps, &user.user_id, meta, now),
    );
    let outcome = (|| {
        cleared?;
        recorded?;
        let still_trusted = touched?;
        Ok::<_, ApiError>((still_trusted, tokens?))
    })();
    let tokens = match outcome {
        Ok((true, tokens)) => tokens,
        Ok((false, tokens)) => {
            tracing::warn!(
                event = "trusted_device_gone",
                "trusted device removed during the sign-in: MFA required"
            );
            if let Err(err) = deps
                .stores
                .sessions
                .revoke_session(&user.user_id, &tokens.session_id)
                .await
            {
                tracing::error!(error = %err, "the session of an aborted sign-in was not revoked");
            }
            crate::service::complete::abort_sign_in(
                deps,
                &user.user_id,
                meta,
                "the trusted device was removed meanwhile: MFA asked",
            )
            .await;
            return Ok(None);
        }
        Err(err) => {
            crate::service::complete::abort_sign_in(
                deps,
                &user.user_id,
                meta,
                "a write failed: no tokens issued",
            )
            .await;
            return Err(err);
        }
    };
    crate::service::complete::confirm_current(deps, user, &tokens.session_id, None, meta).await?;
    tracing::info!(
        event = "sign_in_completed",
        method = "trusted_device",
        "signed in on a trusted device"
    );
    Ok(Some(SignInAnswer::SignedIn { tokens }))
}

/// An error after the password attempt was reserved and before it was judged: the attempt is
/// given back (it was right, or never evaluated), then the error answers.
async fn give_back_then(
    deps: &Deps,
    user_id: &UserId,
    reserved: limits::Seen,
    err: ApiError,
) -> ApiError {
    if let Err(store) = limits::give_back_password(deps, user_id, reserved).await {
        tracing::error!(error = %store, "a reserved password attempt was not given back");
    }
    err
}

async fn verify_off_thread(
    deps: &Deps,
    stored_hash: Option<String>,
    password: SecretString,
) -> Result<PasswordCheck, ApiError> {
    let hasher = deps.hasher.clone();
    tokio::task::spawn_blocking(move || match stored_hash {
        Some(hash) => hasher.verify(&hash, password.expose().as_bytes()),
        None => hasher.verify_dummy(password.expose().as_bytes()),
    })
    .await
    .map_err(|err| {
        tracing::error!(error = %err, "password verification task failed");
        ApiError::ServiceUnavailable
    })
}

/// A wrong password (or an unknown ID) to count.
struct Failure<'a> {
    user_id: &'a UserId,
    known_user: bool,
    attempt: u32,
    /// The password counter as the reservation left it.
    reserved: limits::Seen,
    /// The source IP's counter as read at the start.
    ip: Option<limits::Seen>,
}

/// Counts a failed password and returns the answer: the generic `invalid_credentials`, or
/// `locked` when this failure started (or met) a lock — the same for unknown user IDs. The
/// IP's count, the ID's count and the audit event are written at once.
async fn count_failure(deps: &Deps, failure: Failure<'_>, meta: &RequestMeta) -> ApiError {
    let user_id = failure.user_id;
    let count_ip = async {
        if let (Some(ip), Some(seen)) = (meta.source_ip.as_deref(), failure.ip)
            && let Ok(FailureOutcome::LockStarted { .. }) = limits::count_failure_after(
                deps,
                CounterKey::SourceIp(ip),
                limits::ip_policy(deps),
                seen,
            )
            .await
        {
            tracing::warn!(
                event = "ip_throttled",
                "source IP throttled after repeated failed sign-ins"
            );
        }
    };
    // Recorded for unknown IDs too (under the normalised ID that was tried): the same writes
    // either way, so a failure costs the same whether or not the user exists.
    let ((), (), concluded) = tokio::join!(
        count_ip,
        audit::record(deps, user_id, Event::SignInFailed, meta),
        limits::conclude_wrong_password(deps, user_id, failure.attempt, failure.reserved),
    );
    match concluded {
        Ok(FailureOutcome::Counted { .. }) => ApiError::InvalidCredentials,
        Ok(FailureOutcome::LockStarted { until }) => {
            // The same writes for an unknown ID (audited under the ID tried; the alert is
            // queued and the sender drops it), so the fifth failure does not tell either.
            tokio::join!(
                audit::record(deps, user_id, Event::LockStarted, meta),
                crate::service::alerts::alert(
                    deps,
                    user_id,
                    crate::service::alerts::Alert::LockStarted,
                ),
            );
            tracing::warn!(
                event = "lock_started",
                known_user = failure.known_user,
                source_ip = meta.source_ip.as_deref().unwrap_or("-"),
                "user ID locked after repeated failed passwords"
            );
            // From the time the lock was counted, not the request's start (argon2 and the
            // writes lie between): Retry-After never exceeds the lock.
            ApiError::Locked {
                retry_after_secs: until.secs() - deps.clock.now().secs(),
            }
        }
        Ok(FailureOutcome::AlreadyLocked { until }) => ApiError::Locked {
            retry_after_secs: until.secs() - deps.clock.now().secs(),
        },
        Err(err) => ApiError::from(err),
    }
}

/// Re-hashes with the current parameters after a successful check. Best effort: a failure is
/// logged and the sign-in goes on (the next successful sign-in tries again).
async fn rehash(deps: &Deps, user_id: &UserId, old_hash: &str, password: SecretString) {
    let hasher = deps.hasher.clone();
    let new_hash =
        tokio::task::spawn_blocking(move || hasher.hash(password.expose().as_bytes())).await;
    let new_hash = match new_hash {
        Ok(Ok(hash)) => hash,
        Ok(Err(err)) => return tracing::error!(error = %err, "rehash failed"),
        Err(err) => return tracing::error!(error = %err, "rehash task failed"),
    };
    match deps
        .stores
        .users
        .replace_password_hash(user_id, old_hash, &new_hash)
        .await
    {
        Ok(()) => tracing::info!(event = "password_rehashed", "password hash upgraded"),
        Err(StoreError::ConditionFailed) => {
            tracing::info!("password changed during rehash; keeping the newer one")
        }
        Err(err) => tracing::error!(error = %err, "storing the rehashed password failed"),
    }
}

/// Opens the sign-in challenge (from the factors and recovery codes read at the start) and
/// gives back the password attempt, both at once.
async fn open_challenge(
    deps: &Deps,
    user: &UserRecord,
    factors: &[FactorRecord],
    recovery_codes: u32,
    reserved: limits::Seen,
    now: UnixTime,
) -> Result<SignInAnswer, ApiError> {
    let mut methods = methods_of(
        factors,
        &deps.settings.sms_countries,
        &deps.settings.voice_countries,
    );
    // Staff never see an email factor (enrolled before they became staff): not offered, not
    // sent to (`codes::send_code_for`), not accepted (`complete`, `step_up`).
    methods.retain(|m| m.method.open_to(&user.roles));
    if !methods.is_empty() && recovery_codes > 0 {
        methods.push(MfaMethod {
            method: Method::RecoveryCode,
            factor_id: None,
            phone: None,
            email: None,
        });
    }
    let then_new_password = password_change_due(deps, user, now);
    let stage = if methods.is_empty() {
        Stage::SignInEnrolment { then_new_password }
    } else {
        Stage::SignInFactor { then_new_password }
    };
    let status = stage.status();
    let challenge_id = random_token();
    let ttl = deps.settings.challenge_ttl_secs;
    let record = ChallengeRecord {
        user_stamp: user.security_stamp,
        ..ChallengeRecord::opened(
            token_digest(&challenge_id),
            user.user_id.clone(),
            stage,
            now,
            ttl,
        )
    };
    let (given_back, created) = tokio::join!(
        limits::give_back_password(deps, &user.user_id, reserved),
        deps.stores.challenges.create_challenge(&record),
    );
    given_back?;
    created?;
    tracing::info!(event = "challenge_opened", status, "password accepted");
    Ok(match record.stage {
        Stage::SignInEnrolment { .. } => SignInAnswer::MfaEnrolmentRequired {
            challenge_id,
            expires_in: ttl,
        },
        _ => SignInAnswer::MfaRequired {
            challenge_id,
            expires_in: ttl,
            methods,
        },
    })
}

/// The ways an active factor can complete a challenge: text and voice for a phone as the
/// deployment's country lists allow (by default voice only for US and Canada numbers).
pub fn methods_of(
    factors: &[FactorRecord],
    sms: &crate::config::Countries,
    voice: &crate::config::Countries,
) -> Vec<MfaMethod> {
    let mut methods = Vec::new();
    let mut passkey_offered = false;
    for factor in factors.iter().filter(|f| f.status == FactorStatus::Active) {
        let id = Some(factor.factor_id.clone());
        match &factor.kind {
            FactorKind::Phone { e164, delivery } => {
                let phone = Some(mask_phone(e164));
                let number = crate::phone::Phone::from_stored(e164);
                let voice_ok = number.allows(Delivery::Voice, sms, voice);
                let mut channels = Vec::new();
                if number.allows(Delivery::Sms, sms, voice) {
                    channels.push(Method::Sms);
                }
                if voice_ok {
                    channels.push(Method::Voice);
                }
                if *delivery == Delivery::Voice && voice_ok {
                    channels.reverse();
                }
                for channel in channels {
                    methods.push(MfaMethod {
                        method: channel,
                        factor_id: id.clone(),
                        phone: phone.clone(),
                        email: None,
                    });
                }
            }
            FactorKind::Totp { .. } => methods.push(MfaMethod {
                method: Method::Totp,
                factor_id: id,
                phone: None,
                email: None,
            }),
            FactorKind::Email { address } => methods.push(MfaMethod {
                method: Method::Email,
                factor_id: id,
                phone: None,
                email: Some(mask_email(address)),
            }),
            // One entry for all of them: the browser offers the user's passkeys itself.
            FactorKind::Passkey { .. } if !passkey_offered => {
                passkey_offered = true;
                methods.push(MfaMethod {
                    method: Method::Passkey,
                    factor_id: None,
                    phone: None,
                    email: None,
                });
            }
            FactorKind::Passkey { .. } => {}
        }
    }
    methods
}

/// `***-***-1234`: only the last four digits are shown (SPEC §2).
pub fn mask_phone(e164: &str) -> String {
    let digits: Vec<char> = e164.chars().filter(char::is_ascii_digit).collect();
    let last4: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    format!("***-***-{last4}")
}

/// `j***@e***.com`: enough for the user to recognise the address, not to learn it.
pub fn mask_email(address: &str) -> String {
    let (local, domain) = address.split_once('@').unwrap_or((address, ""));
    let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    let (host, tld) = domain.rsplit_once('.').unwrap_or((domain, ""));
    let tld = if tld.is_empty() {
        String::new()
    } else {
        format!(".{tld}")
    };
    format!("{}***@{}***{}", first(local), first(host), tld)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each variant is the JSON the contract documents for its status: the tag, exactly its own
    /// fields, the tokens of a trusted-device sign-in under `tokens` (the end-to-end test
    /// `a_trusted_device_skips_mfa_until_removed…` reads them there).
    #[test]
    fn each_answer_is_its_status_and_exactly_its_fields() {
        let mfa = SignInAnswer::MfaRequired {
            challenge_id: "c".into(),
            expires_in: 600,
            methods: vec![MfaMethod {
                method: Method::Totp,
                factor_id: Some("f_1".into()),
                phone: None,
                email: None,
            }],
        };
        assert_eq!(
            serde_json::to_value(&mfa).unwrap(),
            serde_json::json!({"status": "mfa_required", "challenge_id": "c", "expires_in": 600,
                "methods": [{"method": "totp", "factor_id": "f_1"}]})
        );
        let enrol = SignInAnswer::MfaEnrolmentRequired {
            challenge_id: "c".into(),
            expires_in: 600,
        };
        assert_eq!(
            serde_json::to_value(&enrol).unwrap(),
            serde_json::json!({"status": "mfa_enrolment_required", "challenge_id": "c", "expires_in": 600})
        );
        let signed = SignInAnswer::SignedIn {
            tokens: crate::service::tokens::Tokens {
                access_token: "a".into(),
                refresh_token: "r".into(),
                token_type: "Bearer",
                expires_in: 300,
                session_id: "s_1".into(),
            },
        };
        assert_eq!(
            serde_json::to_value(&signed).unwrap(),
            serde_json::json!({"status": "signed_in", "tokens": {"access_token": "a",
                "refresh_token": "r", "token_type": "Bearer", "expires_in": 300}})
        );
        for answer in [&mfa, &enrol, &signed] {
            let json = serde_json::to_value(answer).unwrap();
            assert_eq!(json["status"], answer.status());
            assert!(!format!("{answer:?}").contains("\"c\""), "{answer:?}");
        }
    }

    #[test]
    fn phones_are_masked_to_the_last_four_digits() {
        assert_eq!(mask_phone("+15551234567"), "***-***-4567");
        assert_eq!(mask_phone("+447700900123"), "***-***-0123");
    }

    #[test]
    fn emails_are_masked() {
        assert_eq!(mask_email("jane.doe@example.com"), "j***@e***.com");
    }

    fn phone(e164: &str, delivery: Delivery, status: FactorStatus) -> FactorRecord {
        FactorRecord {
            user_id: UserId::from_stored("u".into()),
            factor_id: format!("f_{e164}"),
            kind: FactorKind::Phone {
                e164: e164.into(),
                delivery,
            },
            status,
            created_at: UnixTime(0),
            replaces: None,
        }
    }

    #[test]
    fn voice_is_offered_only_for_us_and_canada_and_pending_factors_are_hidden() {
        let all = crate::config::Countries::All;
        let us_ca = crate::config::Countries::parse("US,CA").unwrap();
        let methods = methods_of(
            &[
                phone("+12025550143", Delivery::Voice, FactorStatus::Active),
                phone("+447700900123", Delivery::Voice, FactorStatus::Active),
                phone("+18765550123", Delivery::Sms, FactorStatus::Active),
                phone("+12025550199", Delivery::Sms, FactorStatus::Pending),
            ],
            &all,
            &us_ca,
        );
        let names: Vec<&str> = methods.iter().map(|m| m.method.as_str()).collect();
        // US: voice first (its chosen delivery); UK and Jamaica (+1 876): text only.
        assert_eq!(names, vec!["voice", "sms", "sms", "sms"]);
        assert_eq!(methods[2].phone.as_deref(), Some("***-***-0123"));
    }
}
