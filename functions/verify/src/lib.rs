//! The verification function: completes a sign-in challenge (`…/sign-in/{id}/verify`) or a
//! step-up (`…/me/step-up/{id}/verify`) with a code sent by text, voice or email, an
//! authenticator code, or a passkey assertion (whose options `…/sign-in/{id}/passkey/options`
//! gives). "Trust this device" issues a device token with the sign-in.

use portcullis::Deps;
use portcullis::crypto::SecretString;
use portcullis::error::ApiError;
use portcullis::grants::{CODE_MAC, Grant, Resource, SIGN_TOKENS, STATEFUL};
use portcullis::method::Method;
use portcullis::service::codes::{self, Verified};
use portcullis::service::tokens::Caller;
use portcullis::service::{complete, passkeys, step_up};
use portcullis::storage::ChallengeRecord;
use portcullis_edge::{self as edge, Answer, Call, Function, RequestMeta, Route};
use serde::Deserialize;

pub static FUNCTION: Function = Function {
    name: "verify",
    grants: &[
        STATEFUL,
        // The TOTP seed, and both sealed keys (a step-up checks a code and issues a token).
        &[
            CODE_MAC,
            Grant::on(Resource::DataKey, &["kms:Decrypt"]),
            SIGN_TOKENS,
        ],
    ],
    routes: &[
        Route::public("POST /v1/sign-in/{challenge_id}/verify", verify_sign_in),
        Route::public(
            "POST /v1/sign-in/{challenge_id}/passkey/options",
            passkey_options,
        ),
        Route::session("POST /v1/me/step-up/{challenge_id}/verify", verify_step_up),
    ],
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub method: String,
    /// Every method but `passkey`.
    #[serde(default)]
    pub code: Option<SecretString>,
    /// `passkey`: the browser's `AuthenticationResponseJSON`.
    #[serde(default)]
    pub credential: Option<serde_json::Value>,
    #[serde(default)]
    pub factor_id: Option<String>,
    #[serde(default)]
    pub trust_device: Option<bool>,
    #[serde(default)]
    pub device_name: Option<String>,
}

/// Checks the answer of a verify request: a passkey assertion or a code.
async fn check_answer(
    deps: &Deps,
    challenge: &ChallengeRecord,
    body: &VerifyRequest,
    from: &RequestMeta,
) -> Result<Verified, ApiError> {
    let passkey = body.method == Method::Passkey.as_str();
    match (passkey, &body.code, &body.credential) {
        (true, None, Some(credential)) => {
            if body.factor_id.is_some() {
                return Err(ApiError::validation(
                    "A passkey answer names no factor_id: the assertion names its passkey.",
                ));
            }
            passkeys::check_assertion(deps, challenge, credential, from).await
        }
        (true, _, _) => Err(ApiError::validation(
            "method passkey takes credential (the authenticator's assertion), not code.",
        )),
        (false, Some(code), None) => {
            let factor_id = body.factor_id.as_deref();
            codes::check_code(deps, challenge, &body.method, code, factor_id, from).await
        }
        _ => Err(ApiError::validation("code is required.")),
    }
}

/// The `mfa_required` sign-in challenge named in the path is answered; the sign-in completes.
fn verify_sign_in(deps: &Deps, call: Call) -> Answer<'_> {
    Box::pin(async move {
        let body: VerifyRequest = call.body()?;
        let trust = complete::trust_request(body.trust_device, body.device_name.clone())?;
        let challenge = codes::open_mfa_sign_in(deps, &call.path("challenge_id")?).await?;
        let verified = check_answer(deps, challenge.record(), &body, &call.meta).await?;
        let signed_in =
            complete::complete_mfa_sign_in(deps, verified, &challenge, trust, &call.meta).await?;
        Ok(edge::json_response(200, &signed_in))
    })
}

fn passkey_options(deps: &Deps, call: Call) -> Answer<'_> {
    Box::pin(async move {
        call.no_body()?;
        // A step-up's or enrolment's ID is refused before anything of the user is read.
        let opening = codes::Opening::read_sign_in(deps, &call.path("challenge_id")?).await?;
        Ok(edge::json_response(
            200,
            &passkeys::sign_in_options_for(deps, &opening).await?,
        ))
    })
}

fn verify_step_up(deps: &Deps, call: Call, caller: Caller) -> Answer<'_> {
    Box::pin(async move {
        let body: VerifyRequest = call.body()?;
        complete::no_trust_in_step_up(body.trust_device, body.device_name.as_deref())?;
        let challenge = step_up::challenge_of(deps, &caller, &call.path("challenge_id")?).await?;
        let verified = check_answer(deps, &challenge, &body, &caller.from).await?;
        Ok(edge::json_response(
            200,
            &step_up::elevate(deps, &caller, &challenge, verified).await?,
        ))
    })
}
