//! One-time codes (SPEC §3): sending and checking, for every kind of challenge.
//!
//! - A code is 6 digits from the CSPRNG, valid 5 minutes, bound to its challenge: only
//!   `HMAC(code key, "portcullis-code-v1" ‖ challenge digest ‖ factor ‖ code)` is stored, the
//!   key named beside it ([`crate::code_keys`]: sealed by KMS and opened in process, or KMS's).
//! - Sending reserves the send and stores the code in one conditional write (never past 5
//!   sends, even under concurrency); if the provider fails, the reservation is undone, so a
//!   failed SMS neither consumes a send nor leaves a usable code. The request after the 5th
//!   send bars the *user* from sends for 30 minutes (a TTL item): a new sign-in does not help.
//! - Every code (text, call, email) also counts against the user's rolling caps (10 per hour,
//!   20 per day, across every challenge: SPEC §12, §13); texts and calls go only to the
//!   deployment's allowed countries.
//! - Checking counts the answer against the user ([`second_factor::guard`]) and the attempt
//!   against the challenge *before* comparing (so at most 5 codes are ever compared per
//!   challenge and 10 per user run, whatever the concurrency), compares MACs in constant time,
//!   and consumes the challenge with a conditional write: a right code succeeds exactly once.

use rand::Rng as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::clock::UnixTime;
use crate::code_keys::Tagged;
use crate::crypto::{SecretString, constant_time_eq, token_digest};
use crate::deps::Deps;
use crate::error::{ApiError, StoreError};
use crate::method::Method;
use crate::notifier::{Channel, Message};
use crate::phone::Phone;
use crate::request::RequestMeta;
use crate::service::audit::{self, Event};
use crate::service::limits;
use crate::service::second_factor::{self, Answer};
use crate::storage::{
    AttemptSlot, ChallengeRecord, CounterKey, Delivery, FactorKind, FactorRecord, FactorStatus,
    FailureOutcome, LockoutPolicy, PendingCode, SendSlot, Stage, UserRecord,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendCodeRequest {
    pub method: String,
    #[serde(default)]
    pub factor_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SendCodeAnswer {
    /// Where the code went, masked.
    pub sent_to: String,
    pub sends_remaining: u32,
    /// Seconds the code is valid.
    pub expires_in: i64,
}

/// Finds a live, open challenge by the id the client holds. A sign-in challenge also ends when
/// the user's security stamp has moved since it opened (a password change or reset, an MFA
/// reset: SPEC §12); step-up and enrolment challenges are bound to a session, which those
/// revoke.
pub async fn open_challenge(deps: &Deps, challenge_id: &str) -> Result<ChallengeRecord, ApiError> {
    open_challenge_and_user(deps, challenge_id)
        .await
        .map(|(challenge, _)| challenge)
}

/// A live, open *sign-in* challenge at any step (the routes under `/v1/sign-in/{id}/…`): a
/// step-up or enrolment challenge's ID is `challenge_expired` there, as an unknown one is.
pub async fn open_sign_in(deps: &Deps, challenge_id: &str) -> Result<SignInChallenge, ApiError> {
    let challenge = open_challenge(deps, challenge_id).await?;
    if !challenge.stage.is_sign_in() {
        return Err(ApiError::ChallengeExpired);
    }
    Ok(SignInChallenge(challenge))
}

opened_challenge!(
    /// A challenge as [`open_sign_in`] returned it: live, open, a sign-in at some step, its user's
    /// stamp unchanged. Only this module makes one, so what takes it (a first factor's enrolment,
    /// [`crate::service::factors::Enroller::SignIn`]) cannot be handed a challenge that skipped
    /// those checks. It reads as the record it wraps.
    SignInChallenge
);

/// [`open_challenge`], with the user as its stamp check read them (sign-in challenges only;
/// `None` for the others): completing the sign-in uses this read instead of making another.
pub async fn open_challenge_and_user(
    deps: &Deps,
    challenge_id: &str,
) -> Result<(ChallengeRecord, Option<UserRecord>), ApiError> {
    let opening = Opening::read(deps, challenge_id).await?;
    let (user, ()) = opening.check_beside(deps, async { Ok(()) }).await?;
    Ok((opening.challenge, user))
}

/// A live, open challenge whose stamp check is still to come: [`Opening::check_beside`] makes
/// it at the same time as a route's own reads, so the check costs no round trip of its own.
/// A route writes only after that check has passed, so nothing is written for a stale one.
pub struct Opening {
    challenge: ChallengeRecord,
    /// Already checked (a challenge a route opened before): the check is not made again.
    checked: bool,
}

impl Opening {
    /// The challenge the client names, if it is live and open (not completed, tries left), of
    /// any kind. Crate-private: outside the services an opening is a sign-in's
    /// ([`Opening::read_sign_in`]), so a route under `/v1/sign-in/{id}/…` cannot be handed a
    /// step-up's or enrolment's by a wrong opener; those open through their own types.
    pub(crate) async fn read(deps: &Deps, challenge_id: &str) -> Result<Opening, ApiError> {
        if challenge_id.is_empty() || challenge_id.len() > 128 {
            return Err(ApiError::ChallengeExpired);
        }
        let now = deps.clock.now();
        match deps
            .stores
            .challenges
            .get_challenge(&token_digest(challenge_id), now)
            .await?
        {
            // Completed, or out of tries (the 5th wrong code ended it).
            Some(c) if c.completed_at.is_none() && c.attempts < deps.settings.max_code_tries => {
                Ok(Opening {
                    challenge: c,
                    checked: false,
                })
            }
            _ => Err(ApiError::ChallengeExpired),
        }
    }

    /// [`Opening::read`] for a route under `/v1/sign-in/{id}/…`: a step-up or enrolment
    /// challenge's ID is `challenge_expired` there, as an unknown one is.
    pub async fn read_sign_in(deps: &Deps, challenge_id: &str) -> Result<Opening, ApiError> {
        let opening = Opening::read(deps, challenge_id).await?;
        if !opening.challenge.stage.is_sign_in() {
            return Err(ApiError::ChallengeExpired);
        }
        Ok(opening)
    }

    /// A challenge already opened and checked, or just made by this request (crate-private: a
    /// caller outside the services cannot skip the check by wrapping a record it read).
    pub(crate) fn checked(challenge: &ChallengeRecord) -> Opening {
        Opening {
            challenge: challenge.clone(),
            checked: true,
        }
    }

    /// A record read earlier, whose stamp check is still to come (made by
    /// [`Opening::check_beside`], for sign-in challenges only).
    pub(crate) fn unchecked(challenge: &ChallengeRecord) -> Opening {
        Opening {
            challenge: challenge.clone(),
            checked: false,
        }
    }

    /// The record: for reads beside the check, and for everything after it has passed.
    pub fn record(&self) -> &ChallengeRecord {
        &self.challenge
    }

    /// Checks a sign-in challenge against its user's stamp while `reads` run: the user as the
    /// check read them (`None` for other challenges, whose session binds them, and for a
    /// challenge checked before) and what `reads` found. `reads` must only read: the check's
    /// refusal (`challenge_expired`) wins over anything they return. Once it has passed,
    /// [`Opening::record`] is the checked challenge.
    pub async fn check_beside<T>(
        &self,
        deps: &Deps,
        reads: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<(Option<UserRecord>, T), ApiError> {
        let challenge = &self.challenge;
        let user = async {
            if self.checked || !challenge.stage.bound_to_stamp() {
                return Ok(None);
            }
            Ok::<_, ApiError>(Some(deps.stores.users.get_user(&challenge.user_id).await?))
        };
        let (user, found) = tokio::join!(user, reads);
        let user = match user? {
            None => None,
            Some(Some(user)) if user.security_stamp == challenge.user_stamp => Some(user),
            Some(_) => {
                tracing::info!(
                    event = "challenge_stale",
                    "sign-in challenge ended by a credential change"
                );
                return Err(ApiError::ChallengeExpired);
            }
        };
        Ok((user, found?))
    }
}

/// A sign-in challenge waiting for its second factor (enrolment challenges complete at
/// `…/factors/{factor_id}/verify`, password changes at `…/password`), and its user as read
/// to check the challenge is current: `challenge_expired` for another kind of challenge,
/// `forbidden` for a sign-in challenge at another step.
pub async fn open_mfa_sign_in(deps: &Deps, challenge_id: &str) -> Result<MfaSignIn, ApiError> {
    let (challenge, user) = open_challenge_and_user(deps, challenge_id).await?;
    let Some(user) = user.filter(|_| challenge.stage.is_sign_in()) else {
        return Err(ApiError::ChallengeExpired);
    };
    expect_mfa_sign_in(&challenge)?;
    Ok(MfaSignIn { challenge, user })
}

/// A sign-in challenge waiting for its second factor, as [`open_mfa_sign_in`] found it, and
/// its user as that check read them. Only this module makes one, and
/// [`crate::service::complete::complete_mfa_sign_in`] takes one: a route completes a sign-in
/// only with a challenge opened for that, and only with a proof of that same challenge.
#[derive(Debug, Clone)]
pub struct MfaSignIn {
    challenge: ChallengeRecord,
    user: UserRecord,
}

impl MfaSignIn {
    /// The challenge, for the checks of an answer.
    pub fn record(&self) -> &ChallengeRecord {
        &self.challenge
    }

    /// The user as the stamp check read them.
    pub fn user(&self) -> &UserRecord {
        &self.user
    }
}

/// A sign-in challenge waiting for its second factor: `challenge_expired` for another kind of
/// challenge, `forbidden` for a sign-in challenge at another step.
pub fn expect_mfa_sign_in(challenge: &ChallengeRecord) -> Result<(), ApiError> {
    match challenge.stage {
        Stage::SignInFactor { .. } => Ok(()),
        Stage::SignInEnrolment { .. } | Stage::SignInNewPassword => Err(ApiError::Forbidden),
        Stage::StepUp { .. } | Stage::Enrolment { .. } | Stage::Passwordless { .. } => {
            Err(ApiError::ChallengeExpired)
        }
    }
}

fn parse_send_channel(method: &str) -> Result<Channel, ApiError> {
    match Method::parse_one_of(method, &Method::SENT).map_err(ApiError::validation)? {
        Method::Sms => Ok(Channel::Sms),
        Method::Voice => Ok(Channel::Voice),
        Method::Email => Ok(Channel::Email),
        other => Err(ApiError::validation(format!("{other} is not sent."))),
    }
}

/// The factors a challenge may send codes to: the active ones to complete a sign-in or step-up;
/// the pending factor being enrolled otherwise.
fn eligible(challenge: &ChallengeRecord, factor: &FactorRecord) -> bool {
    match challenge.stage.enrols() {
        Some(which) => {
            factor.status == FactorStatus::Pending && which.is_none_or(|id| id == factor.factor_id)
        }
        None => factor.status == FactorStatus::Active,
    }
}

/// A sign-in challenge of a user with no factor: it may enrol one, and only while the user
/// still has no active factor (SPEC §12: an old enrolment challenge cannot add a second one).
pub fn enrols_first_factor(challenge: &ChallengeRecord) -> bool {
    matches!(challenge.stage, Stage::SignInEnrolment { .. })
}

fn address(factor: &FactorRecord, channel: Channel) -> Option<String> {
    match (&factor.kind, channel) {
        (FactorKind::Phone { e164, .. }, Channel::Sms | Channel::Voice) => Some(e164.clone()),
        (FactorKind::Email { address }, Channel::Email) => Some(address.clone()),
        _ => None,
    }
}

use crate::service::sender::mask;

/// What a code's MAC is bound to: the challenge and the factor it was sent to.
fn code_message(challenge_digest: &str, factor_id: &str, code: &str) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "portcullis-code-v1\u{0}{challenge_digest}\u{0}{factor_id}\u{0}{code}"
    ))
}

/// The MAC to store for a new code, under the current code key.
async fn code_mac(
    deps: &Deps,
    challenge_digest: &str,
    factor_id: &str,
    code: &str,
) -> Result<String, ApiError> {
    let message = code_message(challenge_digest, factor_id, code);
    Ok(deps.code_keys.mac(message.as_bytes()).await?)
}

/// The MAC an answer has under the key the pending code's MAC names, to compare with it;
/// `None` if that key is gone (nothing can match).
async fn answer_mac(
    deps: &Deps,
    challenge_digest: &str,
    pending: &PendingCode,
    code: &str,
) -> Result<Option<String>, ApiError> {
    let message = code_message(challenge_digest, &pending.factor_id, code);
    Ok(
        match deps
            .code_keys
            .mac_as(&pending.mac, message.as_bytes())
            .await?
        {
            Tagged::Mac(mac) => Some(mac),
            Tagged::UnknownKey => None,
        },
    )
}

fn purpose_text(challenge: &ChallengeRecord) -> (&'static str, &'static str) {
    match challenge.stage {
        Stage::SignInEnrolment { .. } | Stage::Enrolment { .. } => {
            ("enrol", "confirm your new sign-in method")
        }
        Stage::StepUp { .. } => ("step_up", "confirm a sensitive change to your account"),
        Stage::SignInFactor { .. } | Stage::SignInNewPassword | Stage::Passwordless { .. } => {
            ("sign_in", "sign in")
        }
    }
}

/// Sends a new code for a challenge record. A sign-in challenge's stamp is checked again
/// beside the send's reads (a record read before a password or MFA reset sends nothing); a
/// step-up or enrolment is bound to its session instead, so this costs those no read.
pub async fn send_code(
    deps: &Deps,
    challenge: &ChallengeRecord,
    request: &SendCodeRequest,
    from: &RequestMeta,
) -> Result<SendCodeAnswer, ApiError> {
    send_code_for(deps, &Opening::unchecked(challenge), request, from).await
}

/// [`send_code`] for a challenge this request has just made or checked (crate-private: the
/// check is not made again).
pub(crate) async fn send_code_opened(
    deps: &Deps,
    challenge: &ChallengeRecord,
    request: &SendCodeRequest,
    from: &RequestMeta,
) -> Result<SendCodeAnswer, ApiError> {
    send_code_for(deps, &Opening::checked(challenge), request, from).await
}

/// Sends a new code for a challenge (sign-in, step-up or enrolment); a sign-in challenge's
/// stamp is checked beside the send's reads.
pub async fn send_code_for(
    deps: &Deps,
    opening: &Opening,
    request: &SendCodeRequest,
    from: &RequestMeta,
) -> Result<SendCodeAnswer, ApiError> {
    let channel = parse_send_channel(&request.method)?;
    let now = deps.clock.now();
    let user = &opening.record().user_id;
    // Everything the decision needs, read at once (one round trip) with the challenge's stamp
    // check: the send bar, the second-factor lock, the factors, and the caps counter (kept for
    // the take below).
    let reads = async {
        Ok(tokio::try_join!(
            limits::read(deps, CounterKey::SendBar(user)),
            limits::read(deps, CounterKey::SecondFactor(user)),
            deps.stores.factors.list_factors(user),
            limits::read(deps, CounterKey::Sends(user)),
        )?)
    };
    let (checked_user, (bar, second_factor, factors, sends)) =
        opening.check_beside(deps, reads).await?;
    let challenge = opening.record();
    // A sign-in past its second factor waits only for the new password: a code sent for it
    // could answer nothing, and would only cost money.
    if challenge.stage == Stage::SignInNewPassword {
        return Err(ApiError::Forbidden);
    }
    if let Some(until) = limits::lock_in(deps, &bar) {
        return Err(ApiError::SendLimitReached {
            retry_after_secs: until.secs() - now.secs(),
        });
    }
    // A code the user could not use while their second factor is locked is not sent: it would
    // only cost money (and help a pumping script).
    if let Some(until) = limits::second_factor_lock_in(deps, &second_factor) {
        return Err(ApiError::SecondFactorLocked {
            retry_after_secs: until.secs() - now.secs(),
        });
    }

    if enrols_first_factor(challenge) && factors.iter().any(|f| f.status == FactorStatus::Active) {
        return Err(ApiError::ChallengeExpired);
    }
    // Staff may not use email codes (`Method::open_to`): to them an email factor is not there.
    // Only an email send needs the roles; a sign-in's check read them already.
    let staff = match (channel, checked_user) {
        (Channel::Email, Some(user)) => !user.roles.is_empty(),
        (Channel::Email, None) => deps
            .stores
            .users
            .get_user(user)
            .await?
            .is_none_or(|user| !user.roles.is_empty()),
        _ => false,
    };
    let usable = |f: &&FactorRecord| {
        eligible(challenge, f) && !(staff && matches!(f.kind, FactorKind::Email { .. }))
    };
    let factor = match &request.factor_id {
        Some(id) => factors
            .iter()
            .filter(usable)
            .find(|f| &f.factor_id == id)
            .ok_or(ApiError::NotFound)?,
        None => factors
            .iter()
            .filter(usable)
            .find(|f| address(f, channel).is_some())
            .ok_or_else(|| {
                ApiError::validation(format!(
                    "No enrolled factor can receive a code by {}.",
                    channel.as_str()
                ))
            })?,
    };
    let to = address(factor, channel).ok_or_else(|| {
        ApiError::validation(format!(
            "This factor cannot receive a code by {}.",
            channel.as_str()
        ))
    })?;
    let by_phone = match channel {
        Channel::Sms => Some(Delivery::Sms),
        Channel::Voice => Some(Delivery::Voice),
        Channel::Email => None,
    };
    if let Some(delivery) = by_phone {
        Phone::from_stored(&to).check_delivery(
            delivery,
            &deps.settings.sms_countries,
            &deps.settings.voice_countries,
        )?;
    }
    if deps.notifiers.get(channel).is_none() {
        return Err(ApiError::validation(format!(
            "Codes by {} are not available.",
            channel.as_str()
        )));
    }

    limits::check_send_caps(deps, &sends)?;
    let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
    // Every code comes out of the user's rolling caps, whichever challenge asks (SPEC §12):
    // texts and calls cost money per message, and email codes follow the rules of texts
    // (SPEC §13) — else enrolment after enrolment would mail codes to any address. Taken
    // before the code is stored (while its MAC is computed), given back if nothing is sent.
    let (mac, taken) = tokio::join!(
        code_mac(deps, &challenge.id_digest, &factor.factor_id, &code),
        limits::take_send(deps, user, sends)
    );
    let taken_at = taken?;
    let give_back = || async {
        if let Err(err) = limits::give_back_send(deps, user, taken_at).await {
            tracing::error!(error = %err, "a send that did not happen was not given back");
        }
    };
    let mac = match mac {
        Ok(mac) => mac,
        Err(err) => {
            give_back().await;
            return Err(err);
        }
    };
    let expires_at = now
        .plus_secs(deps.settings.code_ttl_secs)
        .min(challenge.expires_at);
    let pending = PendingCode {
        mac: mac.clone(),
        expires_at,
        factor_id: factor.factor_id.clone(),
        channel: channel.as_str().to_owned(),
    };
    let max = deps.settings.max_sends_per_challenge;
    let slot = deps
        .stores
        .challenges
        .store_code(&challenge.id_digest, now, max, &pending)
        .await;
    let sends = match slot {
        Ok(SendSlot::Reserved { sends }) => sends,
        Ok(SendSlot::Gone) => {
            give_back().await;
            return Err(ApiError::ChallengeExpired);
        }
        Ok(SendSlot::LimitReached) => {
            give_back().await;
            return Err(bar_sends(deps, challenge, now).await);
        }
        Err(err) => {
            give_back().await;
            return Err(err.into());
        }
    };

    let (purpose, doing) = purpose_text(challenge);
    let minutes = (deps.settings.code_ttl_secs + 59) / 60;
    let text = format!(
        "Portcullis: {code} is your code to {doing}. It expires in {minutes} minutes. We will never ask you for this code: do not share it with anyone."
    );
    let message = Message {
        channel,
        to: to.clone(),
        subject: format!("Your code to {doing}"),
        text,
        code: Some(code),
        purpose: purpose.to_owned(),
    };
    // Sent in the request (the user is waiting; a failed send gives the send back and releases
    // the code), through the same pipeline as every other message: a delivery is recorded
    // either way, at the same time as the audit event or the give-back.
    let mac = &mac;
    let (sent, released) =
        crate::service::sender::send_then(deps, user, &message, |sent| async move {
            if sent {
                audit::record(
                    deps,
                    user,
                    Event::CodeSent {
                        channel: channel.as_str(),
                        purpose,
                    },
                    from,
                )
                .await;
                Ok(())
            } else {
                let ((), released) = tokio::join!(
                    give_back(),
                    deps.stores
                        .challenges
                        .release_code(&challenge.id_digest, mac)
                );
                released
            }
        })
        .await;
    if let Err(err) = sent {
        tracing::error!(error = %err, channel = channel.as_str(), event = "code_send_failed", "code delivery failed");
        released?;
        return Err(ApiError::ServiceUnavailable);
    }
    tracing::info!(
        event = "code_sent",
        channel = channel.as_str(),
        purpose,
        "code sent"
    );
    Ok(SendCodeAnswer {
        sent_to: mask(channel, &to),
        sends_remaining: max.saturating_sub(sends),
        expires_in: expires_at.secs() - now.secs(),
    })
}

/// The request after the last allowed send: bar the user from sends (TTL item) and refuse.
async fn bar_sends(deps: &Deps, challenge: &ChallengeRecord, now: UnixTime) -> ApiError {
    let policy = LockoutPolicy {
        threshold: 1,
        lock_secs: deps.settings.send_lockout_secs,
        window_secs: deps.settings.send_lockout_secs,
    };
    match limits::count_failure(deps, CounterKey::SendBar(&challenge.user_id), policy).await {
        Ok(FailureOutcome::LockStarted { until } | FailureOutcome::AlreadyLocked { until }) => {
            tracing::warn!(event = "send_limit_reached", "user barred from code sends");
            ApiError::SendLimitReached {
                retry_after_secs: until.secs() - now.secs(),
            }
        }
        Ok(FailureOutcome::Counted { .. }) => ApiError::SendLimitReached {
            retry_after_secs: deps.settings.send_lockout_secs,
        },
        Err(err) => ApiError::from(err),
    }
}

/// A code as typed: 6 ASCII digits once spaces are removed.
pub fn normalise_code(code: &SecretString) -> Result<SecretString, ApiError> {
    let digits: String = code
        .expose()
        .chars()
        .filter(|c| *c != ' ' && *c != '-')
        .collect();
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::validation("code must be 6 digits."));
    }
    Ok(SecretString::new(digits))
}

/// What a successful check proved. Only the services make one (its fields are crate-private):
/// a function crate holds a `Verified` only because a check passed, so it cannot hand
/// [`crate::service::complete::complete_sign_in`] or [`crate::service::step_up::elevate`] a
/// proof it put together itself. Those two also refuse a proof of the other kind of challenge.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub(crate) factor_id: String,
    /// How it was proven.
    pub(crate) method: Method,
    /// The challenge after the attempt (completed by this call).
    pub(crate) challenge: ChallengeRecord,
    /// A passkey's key method for `amr`: `hwk` (bound to its device) or `swk` (synced).
    pub(crate) passkey_key: Option<&'static str>,
}

impl Verified {
    /// The factor that answered.
    pub fn factor_id(&self) -> &str {
        &self.factor_id
    }

    /// How it was proven.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The challenge it answered, as the check left it (completed).
    pub fn challenge(&self) -> &ChallengeRecord {
        &self.challenge
    }

    /// A proof by code: no passkey involved.
    pub(crate) fn by_code(
        factor_id: String,
        method: Method,
        challenge: ChallengeRecord,
    ) -> Verified {
        Verified {
            factor_id,
            method,
            challenge,
            passkey_key: None,
        }
    }

    /// RFC 8176 authentication method references for this proof: `pwd` when the password came
    /// first (every challenge but a passwordless one), then the factor's, then `mfa`.
    pub fn amr(&self) -> Vec<String> {
        let mut amr: Vec<String> = Vec::new();
        if self.challenge.stage.after_password() {
            amr.push("pwd".into());
        }
        // A passkey with user verification: the key, and the user's PIN or biometric.
        if let (Method::Passkey, Some(key)) = (self.method, self.passkey_key) {
            amr.push(key.into());
        }
        amr.push(self.method.amr().into());
        amr.push("mfa".into());
        amr
    }

    /// The session's `acr`: phishing-resistant after a passkey, MFA otherwise.
    pub fn acr(&self) -> &'static str {
        if self.passkey_key.is_some() {
            crate::crypto::jwt::ACR_PHISHING_RESISTANT
        } else {
            crate::crypto::jwt::ACR_MFA
        }
    }
}

/// Checks a code against a challenge and completes the challenge if it is right.
///
/// `method` is `sms`/`voice`/`email` (the code last sent for this challenge) or `totp` (the
/// user's authenticator, or the pending one being enrolled). `factor_id` narrows the factor.
pub async fn check_code(
    deps: &Deps,
    challenge: &ChallengeRecord,
    method: &str,
    code: &SecretString,
    factor_id: Option<&str>,
    from: &RequestMeta,
) -> Result<Verified, ApiError> {
    let method = Method::parse_one_of(method, &Method::CODES).map_err(ApiError::validation)?;
    check_code_by(deps, challenge, method, code, factor_id, from).await
}

/// [`check_code`] for a method already parsed; one that is not answered with a code
/// ([`Method::CODES`]) is refused before anything is counted.
pub async fn check_code_by(
    deps: &Deps,
    challenge: &ChallengeRecord,
    method: Method,
    code: &SecretString,
    factor_id: Option<&str>,
    from: &RequestMeta,
) -> Result<Verified, ApiError> {
    let method =
        Method::parse_one_of(method.as_str(), &Method::CODES).map_err(ApiError::validation)?;
    let code = normalise_code(code)?;
    // What the answer is compared with, made ready while the answer is counted: the MAC of
    // the code pending in the challenge, or the authenticator's seed. The key work (a KMS call
    // for a seed, or for a MAC in `kms` mode) comes only after the challenge's try is won, so a
    // burst of answers costs at most one per try (five per challenge), whatever the concurrency
    // and whether or not the user is locked.
    let prepare = async {
        if method == Method::Totp {
            let (current, factor) = tokio::try_join!(
                reserve_try(deps, challenge),
                totp_factor(deps, challenge, factor_id)
            )?;
            let candidate = match (&current, factor) {
                (Some(_), Some(factor)) => open_totp(deps, challenge, factor).await?,
                _ => None,
            };
            return Ok((current, Prepared::Totp(candidate)));
        }
        let current = reserve_try(deps, challenge).await?;
        let prepared = match current.as_ref().and_then(|c| c.code.as_ref()) {
            Some(pending) => Prepared::Mac {
                factor_id: pending.factor_id.clone(),
                mac: answer_mac(deps, &challenge.id_digest, pending, code.expose()).await?,
            },
            None => Prepared::Nothing,
        };
        Ok((current, prepared))
    };
    second_factor::guard(
        deps,
        &challenge.user_id,
        method,
        from,
        prepare,
        |prepared| async {
            let now = deps.clock.now();
            let (Some(current), prepared) = prepared else {
                return Err(ApiError::ChallengeExpired);
            };
            let outcome = match prepared {
                Prepared::Totp(candidate) => {
                    check_totp(deps, &current, candidate, code.expose(), now).await?
                }
                prepared => {
                    check_sent_code(
                        deps,
                        &current,
                        method,
                        code.expose(),
                        factor_id,
                        prepared,
                        now,
                    )
                    .await?
                }
            };
            Ok(match outcome {
                Some(verified) => Answer::Right(verified),
                None => Answer::Wrong {
                    challenge_ended: was_last_try(deps, &current),
                },
            })
        },
    )
    .await
}

/// Counts one try against the challenge before anything is compared (SPEC §3: at most 5);
/// `None` when the challenge is gone or out of tries.
///
/// A challenge out of tries is never deleted here: requests already holding a try may still be
/// comparing a right answer, and deleting the record under them would let none of them win
/// (found with 20 concurrent right TOTP codes). Its tries are spent, so nothing more is ever
/// compared, and [`open_challenge`] treats it as over; its TTL removes it.
pub async fn reserve_try(
    deps: &Deps,
    challenge: &ChallengeRecord,
) -> Result<Option<ChallengeRecord>, ApiError> {
    let now = deps.clock.now();
    match deps
        .stores
        .challenges
        .reserve_attempt(&challenge.id_digest, now, deps.settings.max_code_tries)
        .await?
    {
        AttemptSlot::Reserved(current) => Ok(Some(*current)),
        AttemptSlot::Gone | AttemptSlot::Exhausted => Ok(None),
    }
}

/// After a wrong answer: whether it was the challenge's last allowed try (SPEC §3: the 5th
/// wrong code ends the challenge).
pub fn was_last_try(deps: &Deps, current: &ChallengeRecord) -> bool {
    current.attempts >= deps.settings.max_code_tries
}

/// What a code is compared with, computed while the answer is counted.
enum Prepared {
    /// A sent code's MAC as the answer would have it, for the factor the code went to (`None`:
    /// the key it was MACed under is gone).
    Mac {
        factor_id: String,
        mac: Option<String>,
    },
    /// The authenticator a TOTP code is checked against.
    Totp(Option<TotpCandidate>),
    /// The challenge had no code pending.
    Nothing,
}

async fn check_sent_code(
    deps: &Deps,
    challenge: &ChallengeRecord,
    method: Method,
    code: &str,
    factor_id: Option<&str>,
    prepared: Prepared,
    now: UnixTime,
) -> Result<Option<Verified>, ApiError> {
    let Some(pending) = &challenge.code else {
        return Ok(None);
    };
    // The method the proof names is the channel the code went by (a texted code answered as
    // `voice` proves `sms`).
    let Some(sent_by) = Method::parse(&pending.channel).filter(|m| m.is_sent()) else {
        return Err(
            StoreError::Corrupt(format!("unknown code channel {:?}", pending.channel)).into(),
        );
    };
    if !method.answers_sent_by(&pending.channel)
        || factor_id.is_some_and(|id| id != pending.factor_id)
        || pending.expires_at <= now
    {
        return Ok(None);
    }
    // Computed for the code pending in this very record (the one the try was reserved on);
    // recomputed should it ever be for another factor.
    let mac = match prepared {
        Prepared::Mac { factor_id, mac } if factor_id == pending.factor_id => mac,
        _ => answer_mac(deps, &challenge.id_digest, pending, code).await?,
    };
    let Some(mac) = mac else {
        return Ok(None);
    };
    if !constant_time_eq(mac.as_bytes(), pending.mac.as_bytes()) {
        return Ok(None);
    }
    if !deps
        .stores
        .challenges
        .complete_challenge(&challenge.id_digest, now, Some(&pending.mac))
        .await?
    {
        // Someone else completed it with the same code first: single use.
        return Ok(None);
    }
    Ok(Some(Verified::by_code(
        pending.factor_id.clone(),
        sent_by,
        challenge.clone(),
    )))
}

/// The authenticator a TOTP answer is checked against: its factor and decrypted seed.
struct TotpCandidate {
    factor: FactorRecord,
    last_used_step: Option<i64>,
    secret: crate::crypto::totp::TotpSecret,
}

/// The authenticator a TOTP answer is for: the eligible TOTP factor (`factor_id` narrows it).
async fn totp_factor(
    deps: &Deps,
    challenge: &ChallengeRecord,
    factor_id: Option<&str>,
) -> Result<Option<FactorRecord>, ApiError> {
    let factors = deps.stores.factors.list_factors(&challenge.user_id).await?;
    Ok(factors.into_iter().find(|f| {
        matches!(f.kind, FactorKind::Totp { .. })
            && eligible(challenge, f)
            && factor_id.is_none_or(|id| id == f.factor_id)
    }))
}

/// The factor's seed, decrypted (one KMS call).
async fn open_totp(
    deps: &Deps,
    challenge: &ChallengeRecord,
    factor: FactorRecord,
) -> Result<Option<TotpCandidate>, ApiError> {
    let FactorKind::Totp {
        secret_ciphertext,
        last_used_step,
    } = &factor.kind
    else {
        return Ok(None);
    };
    let seed = deps
        .sealer
        .open(
            secret_ciphertext,
            &totp_context(challenge.user_id.as_str(), &factor.factor_id),
        )
        .await?;
    let secret = crate::crypto::totp::TotpSecret::from_bytes(seed.to_vec())
        .map_err(|_| ApiError::ServiceUnavailable)?;
    let last_used_step = *last_used_step;
    Ok(Some(TotpCandidate {
        factor,
        last_used_step,
        secret,
    }))
}

async fn check_totp(
    deps: &Deps,
    challenge: &ChallengeRecord,
    candidate: Option<TotpCandidate>,
    code: &str,
    now: UnixTime,
) -> Result<Option<Verified>, ApiError> {
    let Some(TotpCandidate {
        factor,
        last_used_step,
        secret,
    }) = candidate
    else {
        return Ok(None);
    };
    let Some(step) = crate::crypto::totp::verify(&secret, code, now.secs(), last_used_step) else {
        return Ok(None);
    };
    if !deps
        .stores
        .factors
        .use_totp_step(&challenge.user_id, &factor.factor_id, step)
        .await?
    {
        return Ok(None);
    }
    if !finish_challenge(deps, &challenge.id_digest, now).await? {
        return Ok(None);
    }
    Ok(Some(Verified::by_code(
        factor.factor_id,
        Method::Totp,
        challenge.clone(),
    )))
}

/// Marks the challenge `id_digest` completed with no code bound to the answer (the store's
/// `complete_challenge` without an expected MAC): `true` for the one caller that won.
pub(crate) async fn finish_challenge(
    deps: &Deps,
    id_digest: &str,
    now: UnixTime,
) -> Result<bool, StoreError> {
    deps.stores
        .challenges
        .complete_challenge(id_digest, now, None)
        .await
}

/// The KMS encryption context of a TOTP seed: it decrypts only for its user and factor.
pub fn totp_context<'a>(user_id: &'a str, factor_id: &'a str) -> [(&'static str, &'a str); 2] {
    [("user_id", user_id), ("factor_id", factor_id)]
}
