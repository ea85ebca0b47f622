//! Passkey helpers for the service tests: the software authenticator's origin (the one the
//! default settings allow), request bodies, and the first-sign-in registration.

use portcullis::Deps;
use portcullis::RequestMeta;
use portcullis::error::ApiError;
use portcullis::identity::UserId;
use portcullis::service::codes;
use portcullis::service::complete::{self, SignedIn};
use portcullis::service::factors::{self, Enroller, VerifyFactorRequest};
use portcullis::service::passkeys::{self, EnrolPasskeyRequest, PasswordlessRequest};
use portcullis_soft_authenticator::SoftAuthenticator;
use serde_json::Value;

/// The origin the default settings allow.
pub const ORIGIN: &str = "http://localhost:3000";

/// `{credential}`: a registration response for a factor's verify route.
pub fn credential(value: Value) -> VerifyFactorRequest {
    VerifyFactorRequest {
        code: None,
        credential: Some(value),
    }
}

/// A request from this source IP.
pub fn meta(ip: &str) -> RequestMeta {
    RequestMeta {
        source_ip: Some(ip.to_owned()),
        ..RequestMeta::default()
    }
}

/// A passkey registration from a session: the current password is asked again.
pub fn session_request() -> EnrolPasskeyRequest {
    EnrolPasskeyRequest {
        name: None,
        current_password: Some(portcullis::crypto::SecretString::new(
            super::PASSWORD.into(),
        )),
    }
}

/// The user's first factor: a passkey named "Laptop", registered inside the first sign-in.
/// Returns the completed sign-in, with the recovery codes the activation issued.
pub async fn register_at_first_sign_in(
    deps: &Deps,
    user: &UserId,
    authenticator: &mut SoftAuthenticator,
) -> SignedIn {
    let challenge = codes::open_sign_in(deps, &super::password_step(deps, user).await)
        .await
        .unwrap();
    let pending = passkeys::enrol(
        deps,
        Enroller::SignIn(&challenge, &RequestMeta::default()),
        EnrolPasskeyRequest {
            name: Some("Laptop".into()),
            current_password: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(serde_json::to_value(&pending).unwrap()["status"], "pending");
    let response = authenticator.register(&pending.options).unwrap();
    let proven = finish(
        deps,
        Enroller::SignIn(&challenge, &RequestMeta::default()),
        &pending.factor_id,
        response,
    )
    .await
    .unwrap();
    let mut signed_in =
        complete::complete_sign_in(deps, proven.verified, None, &RequestMeta::default())
            .await
            .unwrap();
    signed_in.recovery_codes = proven.recovery_codes;
    signed_in
}

/// A passwordless sign-in from `ip`: options, the authenticator's assertion, the sign-in.
pub async fn passwordless(
    deps: &Deps,
    authenticator: &mut SoftAuthenticator,
    ip: &str,
) -> Result<SignedIn, ApiError> {
    let started = passkeys::passwordless_options(deps, &meta(ip)).await?;
    let response = authenticator.authenticate(&started.options).unwrap();
    passkeys::passwordless_sign_in(
        deps,
        PasswordlessRequest {
            challenge_id: started.challenge_id,
            credential: response,
        },
        &meta(ip),
    )
    .await
}

/// The caller of a completed sign-in's access token.
pub async fn caller_of(deps: &Deps, signed_in: &SignedIn) -> portcullis::service::tokens::Caller {
    super::bearer(deps, &signed_in.tokens().as_ref().unwrap().access_token)
        .await
        .unwrap()
}

/// A passkey step-up started for `caller`: its challenge and options.
pub async fn passkey_step_up(
    deps: &Deps,
    caller: &portcullis::service::tokens::Caller,
) -> portcullis::service::step_up::StepUpStarted {
    portcullis::service::step_up::start(
        deps,
        caller,
        portcullis::service::step_up::StepUpRequest {
            method: "passkey".into(),
            factor_id: None,
        },
    )
    .await
    .unwrap()
}

/// Finishes a passkey registration with the authenticator's response.
pub async fn finish(
    deps: &Deps,
    enroller: Enroller<'_>,
    factor_id: &str,
    response: Value,
) -> Result<factors::FactorVerified, ApiError> {
    factors::verify_factor(deps, enroller, factor_id, &credential(response)).await
}
