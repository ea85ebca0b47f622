//! Factor enrolment and management (SPEC §4, §13): phones (text or voice), email addresses
//! and authenticator apps, pending until proven with a code, and passkeys, pending until the
//! authenticator's registration response is verified ([`crate::service::passkeys`]); list,
//! rename (passkeys) and remove.
//!
//! Enrolment happens in two places with the same rules:
//! - inside a sign-in challenge whose status is `mfa_enrolment_required` (never one that is
//!   `mfa_required`: that would let a password alone add a factor); proving the new factor
//!   completes the sign-in;
//! - from a signed-in session, with a step-up if the user already has an active factor.

use serde::{Deserialize, Serialize};

use crate::crypto::totp::{self, TotpSecret};
use crate::crypto::{SecretString, random_id, token_digest};
use crate::deps::Deps;
use crate::error::{ApiError, StoreError};
use crate::identity::UserId;
use crate::method::Method;
use crate::phone::Phone;
use crate::request::RequestMeta;
use crate::service::alerts::{self, Alert};
use crate::service::audit::{self, Event};
use crate::service::codes::{self, SendCodeRequest, Verified, totp_context};
use crate::service::sign_in::{mask_email, mask_phone};
use crate::service::tokens::Caller;
use crate::storage::{ChallengeRecord, Delivery, FactorKind, FactorRecord, FactorStatus, Stage};

/// Most factors (pending included) one user may have: bounds what one account can store.
pub const MAX_FACTORS: usize = 10;

/// Who is enrolling.
#[derive(Debug, Clone, Copy)]
pub enum Enroller<'a> {
    /// Inside a sign-in challenge that requires enrolment, from the request that answers it.
    SignIn(&'a codes::SignInChallenge, &'a RequestMeta),
    /// A signed-in user.
    Session(&'a Caller),
}

impl Enroller<'_> {
    pub(crate) fn user_id(&self) -> &UserId {
        match self {
            Enroller::SignIn(c, _) => &c.user_id,
            Enroller::Session(caller) => &caller.user_id,
        }
    }

    /// Where the request came from (for the audit trail).
    pub(crate) fn from(&self) -> &RequestMeta {
        match self {
            Enroller::SignIn(_, from) => from,
            Enroller::Session(caller) => &caller.from,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolPhoneRequest {
    pub phone: String,
    pub delivery: String,
}

debug_redacting!(EnrolPhoneRequest { delivery; phone });

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolEmailRequest {
    pub email: String,
}

/// A pending phone or email factor, with the code just sent to it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename = "pending")]
pub struct EnrolPhoneAnswer {
    pub factor_id: String,
    pub sent_to: String,
    pub sends_remaining: u32,
    pub expires_in: i64,
}

#[derive(Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename = "pending")]
pub struct EnrolTotpAnswer {
    pub factor_id: String,
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_png_base64: String,
    pub qr_svg: String,
}

impl std::fmt::Debug for EnrolTotpAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EnrolTotpAnswer(factor_id={}, <secret redacted>)",
            self.factor_id
        )
    }
}

/// `{code}` proves a phone, an address or an app; `{credential}` (the browser's
/// `RegistrationResponseJSON`) a passkey.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyFactorRequest {
    #[serde(default)]
    pub code: Option<SecretString>,
    #[serde(default)]
    pub credential: Option<serde_json::Value>,
}

impl VerifyFactorRequest {
    /// `{code}`.
    pub fn with_code(code: SecretString) -> Self {
        VerifyFactorRequest {
            code: Some(code),
            credential: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    pub name: String,
}

/// A factor as its owner sees it (phones and addresses masked).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FactorView {
    pub factor_id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub status: FactorStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Passkeys: the name their owner gave them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
    /// Passkeys: may be synced to the owner's other devices (WebAuthn BE flag).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_eligible: Option<bool>,
    /// Passkeys: backed up now (BS flag, as of the last use).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_state: Option<bool>,
}

pub fn view(factor: &FactorRecord) -> FactorView {
    let mut view = FactorView {
        factor_id: factor.factor_id.clone(),
        kind: factor.kind.name(),
        status: factor.status,
        phone: None,
        delivery: None,
        email: None,
        name: None,
        created_at: factor.created_at.secs(),
        last_used_at: None,
        backup_eligible: None,
        backup_state: None,
    };
    match &factor.kind {
        FactorKind::Phone { e164, delivery } => {
            view.phone = Some(mask_phone(e164));
            view.delivery = Some(delivery.as_str());
        }
        FactorKind::Email { address } => view.email = Some(mask_email(address)),
        FactorKind::Totp { .. } => {}
        FactorKind::Passkey {
            name, last_used_at, ..
        } => {
            view.name = Some(name.clone());
            view.last_used_at = last_used_at.map(crate::clock::UnixTime::secs);
            if let Some(credential) = crate::service::passkeys::credential_of(factor) {
                view.backup_eligible = Some(credential.backup_eligible);
                view.backup_state = Some(credential.backup_state);
            }
        }
    }
    view
}

/// Checks the enroller may add a factor of `kind` (`phone`, `totp`) now. A new enrolment
/// supersedes the user's unfinished ones of the same kind (pending, not a phone change): they
/// are deleted, so abandoned attempts neither pile up nor fill the per-user limit.
pub(crate) async fn may_enrol(
    deps: &Deps,
    enroller: Enroller<'_>,
    kind: &str,
) -> Result<Vec<FactorRecord>, ApiError> {
    let mut factors = deps.stores.factors.list_factors(enroller.user_id()).await?;
    match enroller {
        Enroller::SignIn(challenge, _) => {
            if !codes::enrols_first_factor(challenge) {
                return Err(ApiError::Forbidden);
            }
            // The challenge was opened for a user with no factor; once one is active, a
            // password alone must never add another (SPEC §12).
            if factors.iter().any(|f| f.status == FactorStatus::Active) {
                return Err(ApiError::ChallengeExpired);
            }
        }
        Enroller::Session(caller) => {
            if factors.iter().any(|f| f.status == FactorStatus::Active) {
                caller.require_step_up(deps)?;
            }
        }
    }
    let (abandoned, kept): (Vec<_>, Vec<_>) = factors.into_iter().partition(|f| {
        f.status == FactorStatus::Pending && f.replaces.is_none() && f.kind.name() == kind
    });
    for f in &abandoned {
        deps.stores
            .factors
            .delete_factor(enroller.user_id(), &f.factor_id)
            .await?;
    }
    factors = kept;
    if factors.len() >= MAX_FACTORS {
        return Err(ApiError::Conflict(format!(
            "At most {MAX_FACTORS} factors per user: remove one first."
        )));
    }
    Ok(factors)
}

/// The challenge that carries the codes of a session enrolment. Its digest derives from the
/// factor (the client never holds its id: the factor id and the access token identify it).
/// The `enrol:` label keeps it out of the digests of the IDs clients hold (plain hex): no
/// challenge ID a client sends, whatever its bytes, names an enrolment's challenge.
fn enrolment_digest(user_id: &UserId, factor_id: &str) -> String {
    format!(
        "enrol:{}",
        token_digest(&format!("{user_id}\u{0}{factor_id}"))
    )
}

/// The challenge an enrolment is proven in: the sign-in challenge itself, or a new one for a
/// session. `ceremony`: a passkey registration's state, kept in that challenge.
pub(crate) async fn enrolment_challenge(
    deps: &Deps,
    enroller: Enroller<'_>,
    factor_id: &str,
    ceremony: Option<SecretString>,
) -> Result<ChallengeRecord, ApiError> {
    match enroller {
        Enroller::SignIn(challenge, _) => {
            if let Some(ceremony) = &ceremony
                && !deps
                    .stores
                    .challenges
                    .put_ceremony(&challenge.id_digest, deps.clock.now(), ceremony)
                    .await?
            {
                return Err(ApiError::ChallengeExpired);
            }
            Ok((**challenge).clone())
        }
        Enroller::Session(caller) => {
            let now = deps.clock.now();
            // Bound to a session, which a password change or MFA reset revokes: no stamp.
            let record = ChallengeRecord {
                ceremony,
                ..ChallengeRecord::opened(
                    enrolment_digest(&caller.user_id, factor_id),
                    caller.user_id.clone(),
                    Stage::Enrolment {
                        factor_id: factor_id.to_owned(),
                        session_id: caller.claims.sid.clone(),
                    },
                    now,
                    deps.settings.challenge_ttl_secs,
                )
            };
            deps.stores.challenges.create_challenge(&record).await?;
            Ok(record)
        }
    }
}

pub(crate) async fn create_pending(
    deps: &Deps,
    user_id: &UserId,
    factor_id: &str,
    kind: FactorKind,
) -> Result<FactorRecord, ApiError> {
    let factor = FactorRecord {
        user_id: user_id.clone(),
        factor_id: factor_id.to_owned(),
        kind,
        status: FactorStatus::Pending,
        created_at: deps.clock.now(),
        replaces: None,
    };
    match deps.stores.factors.create_factor(&factor).await {
        Ok(()) => Ok(factor),
        Err(StoreError::ConditionFailed) => {
            Err(ApiError::Conflict("Factor id collision: retry.".into()))
        }
        Err(err) => Err(err.into()),
    }
}

pub async fn enrol_phone(
    deps: &Deps,
    enroller: Enroller<'_>,
    request: EnrolPhoneRequest,
) -> Result<EnrolPhoneAnswer, ApiError> {
    let delivery = match request.delivery.as_str() {
        "sms" => Delivery::Sms,
        "voice" => Delivery::Voice,
        _ => return Err(ApiError::validation("delivery must be sms or voice.")),
    };
    let phone = Phone::parse(&request.phone)?;
    phone.check_delivery(
        delivery,
        &deps.settings.sms_countries,
        &deps.settings.voice_countries,
    )?;
    let existing = may_enrol(deps, enroller, "phone").await?;
    if existing.iter().any(|f| {
        matches!(&f.kind, FactorKind::Phone { e164, .. } if e164 == phone.e164())
            && f.status == FactorStatus::Active
    }) {
        return Err(ApiError::Conflict(
            "This phone number is already enrolled.".into(),
        ));
    }
    let factor_id = random_id("f");
    let kind = FactorKind::Phone {
        e164: phone.e164().to_owned(),
        delivery,
    };
    create_pending(deps, enroller.user_id(), &factor_id, kind).await?;
    send_first_code(deps, enroller, factor_id, delivery.as_str(), "phone").await
}

/// Enrols an email address (SPEC §13): pending until the code sent to it is verified, with the
/// rules of text-message codes (5 sends per challenge, the user's rolling caps, the send bar).
pub async fn enrol_email(
    deps: &Deps,
    enroller: Enroller<'_>,
    request: EnrolEmailRequest,
) -> Result<EnrolPhoneAnswer, ApiError> {
    let email = crate::policy::email_address(&request.email)?;
    if deps
        .notifiers
        .get(crate::notifier::Channel::Email)
        .is_none()
    {
        return Err(ApiError::validation("Codes by email are not available."));
    }
    // The address password-reset links go to cannot also be the second factor: whoever reads
    // that mailbox could reset the password and then receive the code, one factor in all.
    // Nor can staff use email codes: their accounts approve other people's MFA resets.
    let user = deps
        .stores
        .users
        .get_user(enroller.user_id())
        .await?
        .ok_or(ApiError::ChallengeExpired)?;
    if user
        .email
        .as_deref()
        .and_then(|reset| crate::policy::email_address(reset).ok())
        .is_some_and(|reset| reset.eq_ignore_ascii_case(&email))
    {
        return Err(ApiError::validation(
            "Use an address other than the one password-reset emails go to: a second factor must not be reachable through the same mailbox.",
        ));
    }
    if !user.roles.is_empty() {
        return Err(ApiError::validation(
            "Staff accounts cannot use email codes: use an authenticator app or a phone.",
        ));
    }
    let existing = may_enrol(deps, enroller, "email").await?;
    if existing.iter().any(|f| {
        matches!(&f.kind, FactorKind::Email { address } if address.eq_ignore_ascii_case(&email))
            && f.status == FactorStatus::Active
    }) {
        return Err(ApiError::Conflict(
            "This email address is already enrolled.".into(),
        ));
    }
    let factor_id = random_id("f");
    create_pending(
        deps,
        enroller.user_id(),
        &factor_id,
        FactorKind::Email { address: email },
    )
    .await?;
    send_first_code(deps, enroller, factor_id, "email", "email").await
}

/// The first code of a phone or email enrolment, sent through the enrolment's challenge.
async fn send_first_code(
    deps: &Deps,
    enroller: Enroller<'_>,
    factor_id: String,
    method: &str,
    kind: &'static str,
) -> Result<EnrolPhoneAnswer, ApiError> {
    let challenge = enrolment_challenge(deps, enroller, &factor_id, None).await?;
    let sent = codes::send_code_opened(
        deps,
        &challenge,
        &SendCodeRequest {
            method: method.to_owned(),
            factor_id: Some(factor_id.clone()),
        },
        enroller.from(),
    )
    .await?;
    tracing::info!(
        event = "factor_enrolment_started",
        kind,
        "enrolment started"
    );
    Ok(EnrolPhoneAnswer {
        factor_id,
        sent_to: sent.sent_to,
        sends_remaining: sent.sends_remaining,
        expires_in: sent.expires_in,
    })
}

pub async fn enrol_totp(deps: &Deps, enroller: Enroller<'_>) -> Result<EnrolTotpAnswer, ApiError> {
    may_enrol(deps, enroller, "totp").await?;
    let user_id = enroller.user_id().clone();
    let factor_id = random_id("f");
    let secret = TotpSecret::generate();
    let sealed = deps
        .sealer
        .seal(
            secret.as_bytes(),
            &totp_context(user_id.as_str(), &factor_id),
        )
        .await?;
    let enrolment = totp::enrolment(&secret, &deps.settings.totp_issuer, user_id.as_str())
        .map_err(|err| {
            tracing::error!(error = %err, "TOTP enrolment rendering failed");
            ApiError::ServiceUnavailable
        })?;
    create_pending(
        deps,
        &user_id,
        &factor_id,
        FactorKind::Totp {
            secret_ciphertext: sealed,
            last_used_step: None,
        },
    )
    .await?;
    enrolment_challenge(deps, enroller, &factor_id, None).await?;
    tracing::info!(
        event = "factor_enrolment_started",
        kind = "totp",
        "authenticator enrolment started"
    );
    Ok(EnrolTotpAnswer {
        factor_id,
        secret: enrolment.secret_base32,
        otpauth_uri: enrolment.otpauth_uri,
        qr_png_base64: enrolment.qr_png_base64,
        qr_svg: enrolment.qr_svg,
    })
}

/// What proving a factor produced. `Debug` shows how many recovery codes, never the codes.
pub struct FactorVerified {
    pub factor: FactorRecord,
    pub verified: Verified,
    /// A new authenticator comes with a new set of recovery codes, shown once.
    pub recovery_codes: Option<Vec<String>>,
}

debug_redacting!(FactorVerified { factor, verified; recovery_codes });

/// Proves a pending factor with a code and activates it. Returns the verification, so a
/// sign-in enrolment can complete the sign-in. A pending phone that replaces another (a phone
/// number change) takes its place now, not before.
pub async fn verify_factor(
    deps: &Deps,
    enroller: Enroller<'_>,
    factor_id: &str,
    request: &VerifyFactorRequest,
) -> Result<FactorVerified, ApiError> {
    let user_id = enroller.user_id();
    let factor = deps
        .stores
        .factors
        .get_factor(user_id, factor_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if factor.status == FactorStatus::Active {
        return Err(ApiError::Conflict("This factor is already active.".into()));
    }
    let challenge = match enroller {
        Enroller::SignIn(challenge, _) => {
            if !codes::enrols_first_factor(challenge) {
                return Err(ApiError::Forbidden);
            }
            if another_active(deps, user_id, factor_id).await? {
                return Err(ApiError::ChallengeExpired);
            }
            (**challenge).clone()
        }
        Enroller::Session(caller) => {
            let now = deps.clock.now();
            match deps
                .stores
                .challenges
                .get_challenge(&enrolment_digest(user_id, factor_id), now)
                .await?
            {
                // Bound to the session that started it (SPEC §12), as a step-up is.
                Some(c)
                    if c.completed_at.is_none()
                        && c.stage.is_enrolment_of(factor_id, &caller.claims.sid) =>
                {
                    c
                }
                _ => return Err(ApiError::ChallengeExpired),
            }
        }
    };
    let verified = match (&factor.kind, &request.code, &request.credential) {
        // The registration activates the passkey itself, with its credential-ID record.
        (FactorKind::Passkey { .. }, None, Some(credential)) => {
            crate::service::passkeys::register(deps, &challenge, &factor, credential).await?
        }
        (FactorKind::Passkey { .. }, _, _) => {
            return Err(ApiError::validation(
                "A passkey is verified with credential (the authenticator's registration response).",
            ));
        }
        (kind, Some(code), None) => {
            let method = match kind {
                FactorKind::Totp { .. } => Method::Totp,
                FactorKind::Email { .. } => Method::Email,
                // A phone's code answers by text or call alike (a passkey was answered above).
                FactorKind::Phone { .. } | FactorKind::Passkey { .. } => Method::Sms,
            };
            let verified = codes::check_code_by(
                deps,
                &challenge,
                method,
                code,
                Some(factor_id),
                enroller.from(),
            )
            .await?;
            match deps
                .stores
                .factors
                .activate_factor(user_id, factor_id)
                .await
            {
                Ok(()) => {}
                Err(StoreError::ConditionFailed) => {
                    return Err(ApiError::Conflict("This factor is already active.".into()));
                }
                Err(err) => return Err(err.into()),
            }
            verified
        }
        _ => return Err(ApiError::validation("code is required.")),
    };
    if let Enroller::SignIn(..) = enroller {
        keep_only_first(deps, user_id, factor_id).await?;
    }
    tracing::info!(
        event = "factor_added",
        kind = factor.kind.name(),
        "factor activated"
    );
    // A verified replacement number is a phone change (SPEC §8), not one more factor.
    audit::record(
        deps,
        user_id,
        if factor.replaces.is_some() {
            Event::PhoneChanged {
                kind: factor.kind.name(),
            }
        } else {
            Event::FactorAdded {
                kind: factor.kind.name(),
            }
        },
        enroller.from(),
    )
    .await;
    // Re-read: a passkey's record now holds its credential.
    let factor = deps
        .stores
        .factors
        .get_factor(user_id, factor_id)
        .await?
        .unwrap_or(FactorRecord {
            status: FactorStatus::Active,
            ..factor
        });
    // An authenticator app or a passkey lives on one device: losing it must not lock the user
    // out, so it comes with a new set of recovery codes.
    let recovery_codes = match factor.kind {
        FactorKind::Totp { .. } | FactorKind::Passkey { .. } => {
            Some(crate::service::recovery::issue(deps, user_id, enroller.from()).await?)
        }
        _ => None,
    };
    match &factor.replaces {
        Some(old) => {
            deps.stores.factors.delete_factor(user_id, old).await?;
            tracing::info!(event = "phone_changed", "phone number changed");
            alerts::alert(deps, user_id, Alert::PhoneChanged).await;
        }
        None => {
            let kind = factor.kind.name().to_owned();
            alerts::alert(deps, user_id, Alert::FactorAdded { kind }).await
        }
    }
    Ok(FactorVerified {
        factor,
        verified,
        recovery_codes,
    })
}

/// Whether the user has an active factor other than `factor_id`.
async fn another_active(deps: &Deps, user_id: &UserId, factor_id: &str) -> Result<bool, ApiError> {
    Ok(deps
        .stores
        .factors
        .list_factors(user_id)
        .await?
        .iter()
        .any(|f| f.status == FactorStatus::Active && f.factor_id != factor_id))
}

/// A factor enrolled at sign-in is the user's first (SPEC §12: never a second one on the
/// password alone). The check before the proof is a read, so two sign-ins proving a first
/// factor each at the same time would both pass it: after the activation the factors are read
/// again (consistently), and one that finds another active is undone. Of two racing ones at
/// most one stays (both may go; the user signs in again), and nothing is audited, alerted or
/// issued for one undone.
async fn keep_only_first(deps: &Deps, user_id: &UserId, factor_id: &str) -> Result<(), ApiError> {
    if another_active(deps, user_id, factor_id).await? {
        deps.stores
            .factors
            .delete_factor(user_id, factor_id)
            .await?;
        tracing::info!(
            event = "factor_refused",
            reason = "another first factor was activated meanwhile",
            "factor enrolled at sign-in undone"
        );
        return Err(ApiError::ChallengeExpired);
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePhoneRequest {
    pub phone: String,
}

debug_redacting!(ChangePhoneRequest { ; phone });

/// `PUT /v1/me/factors/{id}/phone` (step-up): a pending phone that replaces the factor once
/// its code is verified; the old number keeps working until then.
pub async fn change_phone(
    deps: &Deps,
    caller: &Caller,
    factor_id: &str,
    request: ChangePhoneRequest,
) -> Result<EnrolPhoneAnswer, ApiError> {
    caller.require_step_up(deps)?;
    let phone = Phone::parse(&request.phone)?;
    let current = own_factor(deps, caller, factor_id).await?;
    let delivery = match (&current.kind, current.status) {
        (FactorKind::Phone { delivery, .. }, FactorStatus::Active) => *delivery,
        _ => {
            return Err(ApiError::Conflict(
                "Only an active phone factor can change its number.".into(),
            ));
        }
    };
    phone.check_delivery(
        delivery,
        &deps.settings.sms_countries,
        &deps.settings.voice_countries,
    )?;
    let enroller = Enroller::Session(caller);
    // A number change supersedes nothing: "" matches no kind.
    may_enrol(deps, enroller, "").await?;
    let new_id = random_id("f");
    let factor = FactorRecord {
        user_id: caller.user_id.clone(),
        factor_id: new_id.clone(),
        kind: FactorKind::Phone {
            e164: phone.e164().to_owned(),
            delivery,
        },
        status: FactorStatus::Pending,
        created_at: deps.clock.now(),
        replaces: Some(factor_id.to_owned()),
    };
    match deps.stores.factors.create_factor(&factor).await {
        Ok(()) => {}
        Err(StoreError::ConditionFailed) => {
            return Err(ApiError::Conflict("Factor id collision: retry.".into()));
        }
        Err(err) => return Err(err.into()),
    }
    let challenge = enrolment_challenge(deps, enroller, &new_id, None).await?;
    let request = SendCodeRequest {
        method: delivery.as_str().to_owned(),
        factor_id: Some(new_id.clone()),
    };
    let sent = codes::send_code_opened(deps, &challenge, &request, &caller.from).await?;
    Ok(EnrolPhoneAnswer {
        factor_id: new_id,
        sent_to: sent.sent_to,
        sends_remaining: sent.sends_remaining,
        expires_in: sent.expires_in,
    })
}

/// `PATCH /v1/me/factors/{id}`: renames a passkey (no step-up: a name protects nothing).
pub async fn rename(
    deps: &Deps,
    caller: &Caller,
    factor_id: &str,
    request: RenameRequest,
) -> Result<FactorView, ApiError> {
    let name = crate::service::passkeys::passkey_name(Some(&request.name))?;
    let factor = own_factor(deps, caller, factor_id).await?;
    if !matches!(factor.kind, FactorKind::Passkey { .. }) {
        return Err(ApiError::Conflict("Only passkeys have names.".into()));
    }
    if !deps
        .stores
        .factors
        .rename_passkey(&caller.user_id, factor_id, &name)
        .await?
    {
        return Err(ApiError::NotFound);
    }
    Ok(view(&own_factor(deps, caller, factor_id).await?))
}

/// One of the caller's factors; `not_found` for anyone else's.
async fn own_factor(
    deps: &Deps,
    caller: &Caller,
    factor_id: &str,
) -> Result<FactorRecord, ApiError> {
    deps.stores
        .factors
        .get_factor(&caller.user_id, factor_id)
        .await?
        .ok_or(ApiError::NotFound)
}

pub async fn list(deps: &Deps, caller: &Caller) -> Result<Vec<FactorView>, ApiError> {
    Ok(deps
        .stores
        .factors
        .list_factors(&caller.user_id)
        .await?
        .iter()
        .map(view)
        .collect())
}

/// Removes a factor (step-up). Removing the last one means the next sign-in must enrol, and
/// removes the user's trusted devices (SPEC §12): a device never stands in for a missing factor.
pub async fn remove(deps: &Deps, caller: &Caller, factor_id: &str) -> Result<(), ApiError> {
    caller.require_step_up(deps)?;
    if !deps
        .stores
        .factors
        .delete_factor(&caller.user_id, factor_id)
        .await?
    {
        return Err(ApiError::NotFound);
    }
    tracing::info!(event = "factor_removed", "factor removed");
    audit::record(deps, &caller.user_id, Event::FactorRemoved, &caller.from).await;
    let any_active = deps
        .stores
        .factors
        .list_factors(&caller.user_id)
        .await?
        .iter()
        .any(|f| f.status == FactorStatus::Active);
    if !any_active {
        let removed = deps
            .stores
            .devices
            .delete_all_devices(&caller.user_id)
            .await?;
        if removed > 0 {
            audit::record(
                deps,
                &caller.user_id,
                Event::DevicesRemovedWithLastFactor { count: removed },
                &caller.from,
            )
            .await;
        }
    }
    alerts::alert(deps, &caller.user_id, Alert::FactorRemoved).await;
    Ok(())
}
