//! Passkeys as a factor (SPEC §13): registration, the second step after a password, step-up
//! and passwordless sign-in. The WebAuthn checks themselves are [`crate::passkey`]'s; this
//! module binds them to challenges and storage.
//!
//! - **Ceremonies live in challenges.** The server side of each WebAuthn ceremony (it holds
//!   the random challenge the authenticator signs) is stored in the challenge record it was
//!   made for — the sign-in or enrolment challenge, the step-up challenge, or a passwordless
//!   challenge — tagged with what it is for, and is *taken* (removed by a conditional write)
//!   before a response is checked: every response is checked against a ceremony at most once,
//!   and an old or replayed response finds nothing. The ceremony expires after 5 minutes
//!   itself, whatever the challenge's lifetime.
//! - **Credential IDs are unique across users**: activation claims the ID with a conditional
//!   write in the same transaction, so the same authenticator credential can never be two
//!   users' factor. A passwordless assertion is looked up by that ID; the user handle it
//!   returns must be the one stored with the credential.
//! - **User handles are random** (64 bytes, never the user ID or any personal data: an
//!   authenticator shows and returns them). A user's passkeys share one handle, taken from the
//!   first; once they are all removed the next passkey gets a new one.
//! - **Counters.** A counter that does not increase (when it is not 0) refuses the assertion,
//!   is audited (`passkey_counter_regression`) and alerts the user: the credential may have
//!   been cloned. The new counter is written conditionally on the old, so two concurrent
//!   assertions with the same counter cannot both count.
//! - **Failures.** After a password (and in a step-up) a refused assertion is a wrong answer
//!   under [`second_factor::guard`] — counted against the user's second-factor lock and the
//!   challenge's tries, `code_invalid` (401). A refused passwordless assertion is
//!   `invalid_credentials` (401) whatever the reason, counted against the caller's IP like a
//!   wrong password. The reasons go to the log (never to the caller).
//! - **Passwordless sign-in** is both factors (a passkey with user verification): it is not
//!   stopped by a password lock or a second-factor lock that other people's guesses caused —
//!   those locks answer guessing, and a passkey cannot be guessed. An inactive account, or a
//!   password change that is due, are handled as after any sign-in.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::UnixTime;
use crate::crypto::{SecretString, random_id, random_token, token_digest};
use crate::deps::Deps;
use crate::error::{ApiError, StoreError};
use crate::identity::UserId;
use crate::method::Method;
use crate::passkey::{
    self, AssertionResponse, AuthenticationState, CredentialId, PasskeyCredential, PasskeyError,
    PasskeyUser, RegistrationResponse, RegistrationState, UserHandle,
};
use crate::request::RequestMeta;
use crate::service::alerts::{self, Alert};
use crate::service::audit::{self, Event};
use crate::service::codes::{self, Verified};
use crate::service::complete::{self, SignedIn};
use crate::service::factors::{self, Enroller};
use crate::service::limits;
use crate::service::second_factor::{self, Answer};
use crate::storage::{
    ChallengeRecord, CounterKey, FactorKind, FactorRecord, FactorStatus, FailureOutcome,
    PasskeyUse, RegisteredPasskey, Stage,
};

/// The name of a passkey its owner did not name.
pub const DEFAULT_NAME: &str = "Passkey";

/// The longest passkey name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// What a challenge's ceremony is for. Serialised into the challenge record.
#[derive(Serialize, Deserialize)]
#[serde(tag = "ceremony", rename_all = "snake_case")]
enum Ceremony {
    /// Registering this pending passkey factor.
    Registration {
        factor_id: String,
        state: RegistrationState,
    },
    /// An assertion by one of the user's passkeys, or any (passwordless).
    Authentication { state: AuthenticationState },
}

impl Ceremony {
    fn seal(&self) -> Result<SecretString, ApiError> {
        serde_json::to_string(self)
            .map(SecretString::new)
            .map_err(|_| internal("a ceremony did not serialise"))
    }

    /// Takes the challenge's ceremony (single use); `None` if it has none (never asked for,
    /// used, replaced by newer options) or it does not read back.
    async fn take(
        deps: &Deps,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<Option<Ceremony>, ApiError> {
        Ok(deps
            .stores
            .challenges
            .take_ceremony(id_digest, now)
            .await?
            .and_then(|sealed| serde_json::from_str(sealed.expose()).ok()))
    }
}

fn internal(what: &'static str) -> ApiError {
    tracing::error!(event = "passkey_internal", "{what}");
    ApiError::ServiceUnavailable
}

/// A misconfigured relying party is a deployment fault (checked at start-up too).
fn ceremony_error(err: PasskeyError) -> ApiError {
    tracing::error!(event = "passkey_ceremony_failed", error = %err, "passkey ceremony could not start");
    ApiError::ServiceUnavailable
}

/// The registered credential of an active passkey factor.
pub fn credential_of(factor: &FactorRecord) -> Option<PasskeyCredential> {
    match &factor.kind {
        FactorKind::Passkey {
            credential: Some(json),
            ..
        } if factor.status == FactorStatus::Active => serde_json::from_str(json).ok(),
        _ => None,
    }
}

fn active_passkeys(factors: &[FactorRecord]) -> Vec<(&FactorRecord, PasskeyCredential)> {
    factors
        .iter()
        .filter_map(|f| credential_of(f).map(|c| (f, c)))
        .collect()
}

/// A passkey's name as given: trimmed, 1–64 characters, no control, invisible or
/// text-direction characters.
pub fn passkey_name(raw: Option<&str>) -> Result<String, ApiError> {
    let name = raw.map(str::trim).unwrap_or(DEFAULT_NAME);
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::validation(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters."
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "name must not contain control characters.",
        ));
    }
    // Names are shown to their owner and in the support console (and a stolen access token
    // may rename, no step-up): nothing invisible, nothing that reorders the text around it.
    if name.chars().any(invisible_or_bidirectional) {
        return Err(ApiError::validation(
            "name must not contain invisible or text-direction characters.",
        ));
    }
    Ok(name.to_owned())
}

/// Bidirectional controls, zero-width and other invisible format characters, line and
/// paragraph separators, and tag characters. The zero-width (non-)joiner stays allowed:
/// some scripts and emoji sequences need it.
fn invisible_or_bidirectional(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{180E}'
            | '\u{200B}'
            | '\u{200E}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolPasskeyRequest {
    #[serde(default)]
    pub name: Option<String>,
    /// From a session: the current password. A passkey signs in with no password at all, so
    /// a stolen access token (even one fresh enough to count as a step-up) must not be enough
    /// to add one that would outlive a password change (found in review). Not asked inside a
    /// sign-in, where the password has just been given.
    #[serde(default)]
    pub current_password: Option<SecretString>,
}

/// A pending passkey and the options for `navigator.credentials.create()`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename = "pending")]
pub struct EnrolPasskeyAnswer {
    pub factor_id: String,
    /// `PublicKeyCredentialCreationOptionsJSON`.
    pub options: Value,
}

/// Starts registering a passkey: a pending factor, and its ceremony in the enrolment's
/// challenge (single use, 5 minutes).
pub async fn enrol(
    deps: &Deps,
    enroller: Enroller<'_>,
    request: EnrolPasskeyRequest,
) -> Result<EnrolPasskeyAnswer, ApiError> {
    let name = passkey_name(request.name.as_deref())?;
    let existing = factors::may_enrol(deps, enroller, "passkey").await?;
    let user_id = enroller.user_id().clone();
    match (enroller, &request.current_password) {
        (Enroller::Session(caller), Some(password)) => {
            crate::service::password::confirm_password(
                deps,
                caller,
                password,
                Event::PasskeyAddFailed,
            )
            .await?;
        }
        (Enroller::Session(_), None) => {
            return Err(ApiError::validation(
                "current_password is required to add a passkey from a session.",
            ));
        }
        (Enroller::SignIn(..), Some(_)) => {
            return Err(ApiError::validation(
                "current_password is not asked inside a sign-in.",
            ));
        }
        (Enroller::SignIn(..), None) => {}
    }
    let passkeys = active_passkeys(&existing);
    let handle = passkeys
        .first()
        .map(|(_, c)| c.user_handle.clone())
        .unwrap_or_else(UserHandle::random);
    let excluded: Vec<CredentialId> = passkeys.iter().map(|(_, c)| c.id.clone()).collect();
    let now = deps.clock.now();
    let (options, state) = passkey::start_registration(
        &deps.settings.passkey_config(),
        &PasskeyUser {
            handle: &handle,
            name: user_id.as_str(),
            display_name: user_id.as_str(),
        },
        &excluded,
        now,
    )
    .map_err(ceremony_error)?;
    let factor_id = random_id("f");
    factors::create_pending(
        deps,
        &user_id,
        &factor_id,
        FactorKind::Passkey {
            name,
            credential: None,
            sign_count: 0,
            last_used_at: None,
        },
    )
    .await?;
    let ceremony = Ceremony::Registration {
        factor_id: factor_id.clone(),
        state,
    }
    .seal()?;
    factors::enrolment_challenge(deps, enroller, &factor_id, Some(ceremony)).await?;
    tracing::info!(
        event = "factor_enrolment_started",
        kind = "passkey",
        "passkey registration started"
    );
    Ok(EnrolPasskeyAnswer { factor_id, options })
}

fn registration_refused() -> ApiError {
    ApiError::validation("The passkey could not be registered. Start again to get new options.")
}

/// Finishes a registration inside its challenge: the ceremony is taken (single use), the
/// response verified, and the factor activated with its credential ID claimed. Completes the
/// challenge, so a sign-in enrolment goes on to a session.
pub(crate) async fn register(
    deps: &Deps,
    challenge: &ChallengeRecord,
    factor: &FactorRecord,
    credential: &Value,
) -> Result<Verified, ApiError> {
    let response = RegistrationResponse::from_json_value(credential).map_err(|err| {
        tracing::info!(event = "passkey_registration_refused", reason = %err, "malformed registration response");
        registration_refused()
    })?;
    let now = deps.clock.now();
    let state = match Ceremony::take(deps, &challenge.id_digest, now).await? {
        Some(Ceremony::Registration { factor_id, state }) if factor_id == factor.factor_id => state,
        _ => return Err(ApiError::ChallengeExpired),
    };
    let registered =
        passkey::finish_registration(&deps.settings.passkey_config(), state, &response, now)
            .map_err(|err| {
                tracing::info!(event = "passkey_registration_refused", reason = %err, "passkey registration refused");
                match err {
                    PasskeyError::StateExpired => ApiError::ChallengeExpired,
                    _ => registration_refused(),
                }
            })?;
    let json = serde_json::to_string(&registered)
        .map_err(|_| internal("a credential did not serialise"))?;
    // At sign-in the challenge is completed first, as a code's check completes it before its
    // factor is activated: of two factors proven in one password-only challenge (a phone's
    // code and a passkey sent together), only the one that completed it is activated.
    let completed_first = challenge.stage.is_sign_in();
    if completed_first && !codes::finish_challenge(deps, &challenge.id_digest, now).await? {
        return Err(ApiError::ChallengeExpired);
    }
    match deps
        .stores
        .factors
        .activate_passkey(
            &challenge.user_id,
            &factor.factor_id,
            &RegisteredPasskey {
                credential_digest: &token_digest(&registered.id.to_base64url()),
                credential: &json,
                sign_count: registered.sign_count,
            },
        )
        .await
    {
        Ok(()) => {}
        Err(StoreError::ConditionFailed) => {
            return Err(ApiError::Conflict(
                "This passkey is registered already.".into(),
            ));
        }
        Err(err) => return Err(err.into()),
    }
    // One user handle per user (SPEC §13). Registrations started side by side (a double
    // submit) each carry a handle of their own when the user had no passkey yet; were two of
    // them kept, the user's passkeys could never be offered together (the second step and
    // step-up would fail). So a passkey that finds another one active with another handle is
    // undone, after its activation (consistent reads: of two racing ones at most one stays).
    let diverges = active_passkeys(&deps.stores.factors.list_factors(&challenge.user_id).await?)
        .iter()
        .any(|(f, c)| f.factor_id != factor.factor_id && c.user_handle != registered.user_handle);
    if diverges {
        deps.stores
            .factors
            .delete_factor(&challenge.user_id, &factor.factor_id)
            .await?;
        tracing::info!(
            event = "passkey_registration_refused",
            reason =
                "another passkey of the user was registered meanwhile with another user handle",
            "passkey registration refused"
        );
        return Err(ApiError::ChallengeExpired);
    }
    if !completed_first {
        // An enrolment from a session: the session, not the challenge, is what it is bound to.
        codes::finish_challenge(deps, &challenge.id_digest, now).await?;
    }
    Ok(Verified {
        factor_id: factor.factor_id.clone(),
        method: Method::Passkey,
        challenge: challenge.clone(),
        passkey_key: Some(registered.amr_key_method()),
    })
}

/// Options for an assertion by one of `user_id`'s passkeys, and the ceremony to keep.
pub(crate) async fn assertion_options(
    deps: &Deps,
    user_id: &UserId,
) -> Result<(Value, SecretString), ApiError> {
    let factors = deps.stores.factors.list_factors(user_id).await?;
    assertion_options_of(deps, &factors)
}

/// [`assertion_options`] for the factors already read.
fn assertion_options_of(
    deps: &Deps,
    factors: &[FactorRecord],
) -> Result<(Value, SecretString), ApiError> {
    let passkeys: Vec<PasskeyCredential> = active_passkeys(factors)
        .into_iter()
        .map(|(_, c)| c)
        .collect();
    if passkeys.is_empty() {
        return Err(ApiError::validation("This account has no passkey."));
    }
    let (options, state) = passkey::start_authentication(
        &deps.settings.passkey_config(),
        Some(&passkeys),
        deps.clock.now(),
    )
    .map_err(ceremony_error)?;
    Ok((options, Ceremony::Authentication { state }.seal()?))
}

#[derive(Debug, Clone, Serialize)]
pub struct AssertionOptions {
    /// `PublicKeyCredentialRequestOptionsJSON`.
    pub options: Value,
}

/// `POST /v1/sign-in/{id}/passkey/options`: a new assertion ceremony for an `mfa_required`
/// sign-in challenge record (it replaces an earlier one); its stamp is checked again beside
/// the factors' read.
pub async fn sign_in_options(
    deps: &Deps,
    challenge: &ChallengeRecord,
) -> Result<AssertionOptions, ApiError> {
    sign_in_options_for(deps, &codes::Opening::unchecked(challenge)).await
}

/// [`sign_in_options`] for a challenge being opened: the user's factors are read beside its
/// stamp check.
pub async fn sign_in_options_for(
    deps: &Deps,
    opening: &codes::Opening,
) -> Result<AssertionOptions, ApiError> {
    let factors = async {
        Ok(deps
            .stores
            .factors
            .list_factors(&opening.record().user_id)
            .await?)
    };
    let (_, factors) = opening.check_beside(deps, factors).await?;
    let challenge = opening.record();
    codes::expect_mfa_sign_in(challenge)?;
    let (options, ceremony) = assertion_options_of(deps, &factors)?;
    if !deps
        .stores
        .challenges
        .put_ceremony(&challenge.id_digest, deps.clock.now(), &ceremony)
        .await?
    {
        return Err(ApiError::ChallengeExpired);
    }
    Ok(AssertionOptions { options })
}

/// Checks a passkey assertion as the answer to a sign-in or step-up challenge, under the
/// per-user second-factor lock: the proof, or `code_invalid` / `challenge_expired` / `locked`
/// as for a wrong code.
pub async fn check_assertion(
    deps: &Deps,
    challenge: &ChallengeRecord,
    credential: &Value,
    from: &RequestMeta,
) -> Result<Verified, ApiError> {
    let response = AssertionResponse::from_json_value(credential).map_err(|err| {
        tracing::info!(event = "passkey_assertion_refused", reason = %err, "malformed assertion");
        ApiError::validation("credential is not a WebAuthn assertion response.")
    })?;
    let prepare = async {
        tokio::try_join!(codes::reserve_try(deps, challenge), async {
            Ok::<_, ApiError>(deps.stores.factors.list_factors(&challenge.user_id).await?)
        },)
    };
    second_factor::guard(
        deps,
        &challenge.user_id,
        Method::Passkey,
        from,
        prepare,
        |prepared| async {
            let (Some(current), factors) = prepared else {
                return Err(ApiError::ChallengeExpired);
            };
            Ok(
                match assert_for_user(deps, &current, &factors, &response, from).await? {
                    Some(verified) => Answer::Right(verified),
                    None => Answer::Wrong {
                        challenge_ended: codes::was_last_try(deps, &current),
                    },
                },
            )
        },
    )
    .await
}

async fn assert_for_user(
    deps: &Deps,
    challenge: &ChallengeRecord,
    factors: &[FactorRecord],
    response: &AssertionResponse,
    from: &RequestMeta,
) -> Result<Option<Verified>, ApiError> {
    let now = deps.clock.now();
    let Some(Ceremony::Authentication { state }) =
        Ceremony::take(deps, &challenge.id_digest, now).await?
    else {
        tracing::info!(
            event = "passkey_assertion_refused",
            reason = "no assertion ceremony (options not asked for, used or replaced)",
            "passkey assertion refused"
        );
        return Ok(None);
    };
    let found = active_passkeys(factors)
        .into_iter()
        .find(|(_, c)| c.id == *response.credential_id());
    let Some((factor, stored)) = found else {
        tracing::info!(
            event = "passkey_assertion_refused",
            reason = "not one of the user's passkeys",
            "passkey assertion refused"
        );
        return Ok(None);
    };
    if !verify_and_record(deps, state, response, factor, &stored, now, from).await? {
        return Ok(None);
    }
    if !codes::finish_challenge(deps, &challenge.id_digest, now).await? {
        return Ok(None);
    }
    Ok(Some(Verified {
        factor_id: factor.factor_id.clone(),
        method: Method::Passkey,
        challenge: challenge.clone(),
        passkey_key: Some(stored.amr_key_method()),
    }))
}

/// Verifies an assertion against the stored credential and writes its new counter: `true`
/// when it is accepted. A counter regression is audited and alerted here.
async fn verify_and_record(
    deps: &Deps,
    state: AuthenticationState,
    response: &AssertionResponse,
    factor: &FactorRecord,
    stored: &PasskeyCredential,
    now: UnixTime,
    from: &RequestMeta,
) -> Result<bool, ApiError> {
    let outcome = match passkey::finish_authentication(
        &deps.settings.passkey_config(),
        state,
        response,
        Some(stored),
        now,
    ) {
        Ok(outcome) => outcome,
        Err(err @ PasskeyError::CounterRegression { .. }) => {
            tracing::warn!(event = "passkey_counter_regression", error = %err, "passkey counter went back: possibly a cloned authenticator");
            audit::record(
                deps,
                &factor.user_id,
                Event::PasskeyCounterRegression {
                    factor_id: &factor.factor_id,
                    error: err.to_string(),
                },
                from,
            )
            .await;
            alerts::alert(deps, &factor.user_id, Alert::PasskeyCounterRegression).await;
            return Ok(false);
        }
        Err(err) => {
            tracing::info!(event = "passkey_assertion_refused", reason = %err, "passkey assertion refused");
            return Ok(false);
        }
    };
    let updated = stored.updated(&outcome);
    let json =
        serde_json::to_string(&updated).map_err(|_| internal("a credential did not serialise"))?;
    let recorded = deps
        .stores
        .factors
        .record_passkey_use(
            &factor.user_id,
            &factor.factor_id,
            &PasskeyUse {
                expected_count: stored.sign_count,
                new_count: updated.sign_count,
                credential: &json,
                at: now,
            },
        )
        .await?;
    if !recorded {
        tracing::info!(
            event = "passkey_assertion_refused",
            reason = "a concurrent assertion counted first",
            "passkey assertion refused"
        );
    }
    Ok(recorded)
}

/// `POST /v1/passkey/options`: a passwordless challenge with a discoverable ceremony.
/// `Debug` leaves out the challenge ID (a bearer secret).
#[derive(Clone, Serialize)]
pub struct PasswordlessOptions {
    pub challenge_id: String,
    pub expires_in: i64,
    /// `PublicKeyCredentialRequestOptionsJSON` with an empty `allowCredentials`.
    pub options: Value,
}

debug_redacting!(PasswordlessOptions { expires_in, options; challenge_id });

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordlessRequest {
    pub challenge_id: String,
    pub credential: Value,
}

debug_redacting!(PasswordlessRequest { credential; challenge_id });

/// Refused while the caller's IP is throttled (as a password sign-in is).
async fn check_ip(deps: &Deps, meta: &RequestMeta) -> Result<(), ApiError> {
    if let Some(ip) = &meta.source_ip
        && let Some(until) = limits::locked_until(deps, CounterKey::SourceIp(ip)).await?
    {
        return Err(ApiError::RateLimited {
            retry_after_secs: (until.secs() - deps.clock.now().secs()).max(1),
        });
    }
    Ok(())
}

pub async fn passwordless_options(
    deps: &Deps,
    meta: &RequestMeta,
) -> Result<PasswordlessOptions, ApiError> {
    check_ip(deps, meta).await?;
    let now = deps.clock.now();
    let (options, state) =
        passkey::start_authentication(&deps.settings.passkey_config(), None, now)
            .map_err(ceremony_error)?;
    let challenge_id = random_token();
    let record = ChallengeRecord {
        ceremony: Some(Ceremony::Authentication { state }.seal()?),
        ..ChallengeRecord::opened(
            token_digest(&challenge_id),
            UserId::nobody(),
            Stage::Passwordless {
                then_new_password: false,
            },
            now,
            passkey::CEREMONY_TIMEOUT_SECS,
        )
    };
    deps.stores.challenges.create_challenge(&record).await?;
    Ok(PasswordlessOptions {
        challenge_id,
        expires_in: passkey::CEREMONY_TIMEOUT_SECS,
        options,
    })
}

/// `POST /v1/passkey/sign-in`: a discoverable passkey assertion signs the user in — no user
/// ID, no password, no code. Every refusal is `invalid_credentials`, counted against the IP.
pub async fn passwordless_sign_in(
    deps: &Deps,
    request: PasswordlessRequest,
    meta: &RequestMeta,
) -> Result<SignedIn, ApiError> {
    match passwordless_proof(deps, &request, meta).await? {
        Some((verified, user)) => {
            complete::complete_sign_in_as(deps, verified, &user, None, meta).await
        }
        None => {
            if let Some(ip) = &meta.source_ip
                && let Ok(FailureOutcome::LockStarted { .. }) =
                    limits::count_failure(deps, CounterKey::SourceIp(ip), limits::ip_policy(deps))
                        .await
            {
                tracing::warn!(
                    event = "ip_throttled",
                    "source IP throttled after repeated failed sign-ins"
                );
            }
            Err(ApiError::InvalidCredentials)
        }
    }
}

/// The proof of a passwordless assertion, and its user as read beside the factor; `None` for
/// every refusal. The IP throttle is read beside the challenge (a throttled caller is refused
/// before anything is taken or compared).
async fn passwordless_proof(
    deps: &Deps,
    request: &PasswordlessRequest,
    meta: &RequestMeta,
) -> Result<Option<(Verified, crate::storage::UserRecord)>, ApiError> {
    let refused = |reason: &str| {
        tracing::info!(
            event = "passkey_sign_in_refused",
            reason,
            "passwordless sign-in refused"
        );
        Ok(None)
    };
    let now = deps.clock.now();
    let digest = token_digest(&request.challenge_id);
    let well_formed = !request.challenge_id.is_empty() && request.challenge_id.len() <= 128;
    let ((), challenge) = tokio::try_join!(check_ip(deps, meta), async {
        match well_formed {
            true => Ok::<_, ApiError>(deps.stores.challenges.get_challenge(&digest, now).await?),
            false => Ok(None),
        }
    })?;
    let Ok(response) = AssertionResponse::from_json_value(&request.credential) else {
        return refused("malformed assertion");
    };
    if !well_formed {
        return refused("malformed challenge id");
    }
    match challenge {
        Some(c) if matches!(c.stage, Stage::Passwordless { .. }) && c.completed_at.is_none() => {}
        _ => return refused("unknown, expired or used challenge"),
    }
    let state = match Ceremony::take(deps, &digest, now).await? {
        Some(Ceremony::Authentication { state }) if state.is_discoverable() => state,
        _ => return refused("ceremony used already"),
    };
    let Some(owner) = deps
        .stores
        .factors
        .find_passkey(&token_digest(&response.credential_id().to_base64url()))
        .await?
    else {
        return refused("unknown credential");
    };
    let (factor, user) = tokio::try_join!(
        deps.stores
            .factors
            .get_factor(&owner.user_id, &owner.factor_id),
        deps.stores.users.get_user(&owner.user_id),
    )?;
    let Some(factor) = factor else {
        return refused("credential of a removed factor");
    };
    let Some(stored) = credential_of(&factor) else {
        return refused("credential of a removed factor");
    };
    if !verify_and_record(deps, state, &response, &factor, &stored, now, meta).await? {
        return Ok(None);
    }
    if !codes::finish_challenge(deps, &digest, now).await? {
        return refused("challenge completed by a concurrent request");
    }
    let Some(user) = user else {
        return refused("no such user");
    };
    // The challenge the sign-in completes, now that the user is known.
    let challenge = ChallengeRecord {
        completed_at: Some(now),
        user_stamp: user.security_stamp,
        ..ChallengeRecord::opened(
            digest,
            user.user_id.clone(),
            Stage::Passwordless {
                then_new_password: crate::service::sign_in::password_change_due(deps, &user, now),
            },
            now,
            deps.settings.challenge_ttl_secs,
        )
    };
    tracing::info!(event = "passkey_sign_in", "passwordless passkey accepted");
    Ok(Some((
        Verified {
            factor_id: factor.factor_id.clone(),
            method: Method::Passkey,
            challenge,
            passkey_key: Some(stored.amr_key_method()),
        },
        user,
    )))
}
