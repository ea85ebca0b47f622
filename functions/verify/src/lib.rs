//! The verification function: completes a sign-in challenge (`…/sign-in/{id}/verify`) or a
//! step-up (`…/me/step-up/{id}/verify`) with a code sent by text, voice or email, an
//! authenticator code, or a passkey assertion (whose options `…/sign-in/{id}/passkey/options`
//! gives). "Trust this device" issues a device token with the sign-in.

use lambda_http::Request;
use portcullis::Deps;
use portcullis::crypto::SecretString;
use portcullis::edge::{self, HandlerFuture, RequestMeta};
use portcullis::error::ApiError;
use portcullis::service::codes::Verified;
use portcullis::service::complete::{self, TrustRequest};
use portcullis::service::{codes, passkeys, step_up, tokens};
use portcullis::storage::ChallengeRecord;
use portcullis::storage::UserRecord;
use serde::Deserialize;

pub const ROUTES: &[&str] = &[
    "POST /v1/sign-in/{challenge_id}/verify",
    "POST /v1/sign-in/{challenge_id}/passkey/options",
    "POST /v1/me/step-up/{challenge_id}/verify",
];

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

/// The device-trust part of a verify or recovery-code request.
pub fn trust_request(
    trust: Option<bool>,
    device_name: Option<String>,
    req: &Request,
) -> Result<Option<TrustRequest>, ApiError> {
    if device_name
        .as_ref()
        .is_some_and(|n| n.chars().count() > 100)
    {
        return Err(ApiError::validation(
            "device_name must be at most 100 characters.",
        ));
    }
    Ok(trust.unwrap_or(false).then(|| TrustRequest {
        device_name,
        user_agent: RequestMeta::from_request(req).user_agent,
    }))
}

/// The `mfa_required` sign-in challenge named in the path, and its user.
async fn sign_in_challenge(
    deps: &Deps,
    req: &Request,
) -> Result<(ChallengeRecord, UserRecord), ApiError> {
    let challenge_id = edge::require_path_param(req, "challenge_id")?;
    codes::open_mfa_sign_in(deps, &challenge_id).await
}

/// Checks the answer of a verify request: a passkey assertion or a code.
async fn check_answer(
    deps: &Deps,
    challenge: &ChallengeRecord,
    body: &VerifyRequest,
) -> Result<Verified, ApiError> {
    match (body.method.as_str(), &body.code, &body.credential) {
        ("passkey", None, Some(credential)) => {
            if body.factor_id.is_some() {
                return Err(ApiError::validation(
                    "A passkey answer names no factor_id: the assertion names its passkey.",
                ));
            }
            passkeys::check_assertion(deps, challenge, credential).await
        }
        ("passkey", _, _) => Err(ApiError::validation(
            "method passkey takes credential (the authenticator's assertion), not code.",
        )),
        (method, Some(code), None) => {
            codes::check_code(deps, challenge, method, code, body.factor_id.as_deref()).await
        }
        _ => Err(ApiError::validation("code is required.")),
    }
}

pub fn handle(deps: &Deps, req: Request) -> HandlerFuture<'_> {
    Box::pin(async move {
        let route = edge::route_key(&req);
        edge::answer(RequestMeta::from_request(&req), "verify", async {
            match route.as_str() {
                "POST /v1/sign-in/{challenge_id}/verify" => {
                    let body: VerifyRequest = edge::parse_json(&req, deps.settings.max_body_bytes)?;
                    let trust = trust_request(body.trust_device, body.device_name.clone(), &req)?;
                    let (challenge, user) = sign_in_challenge(deps, &req).await?;
                    let verified = check_answer(deps, &challenge, &body).await?;
                    let signed_in = complete::complete_sign_in_as(
                        deps,
                        &verified,
                        &user,
                        trust,
                        &portcullis::edge::RequestMeta::from_request(&req),
                    )
                    .await?;
                    Ok(edge::json_response(200, &signed_in))
                }
                "POST /v1/sign-in/{challenge_id}/passkey/options" => {
                    edge::no_body(&req, deps.settings.max_body_bytes)?;
                    let challenge_id = edge::require_path_param(&req, "challenge_id")?;
                    let opening = codes::Opening::read(deps, &challenge_id).await?;
                    Ok(edge::json_response(
                        200,
                        &passkeys::sign_in_options_for(deps, &opening).await?,
                    ))
                }
                "POST /v1/me/step-up/{challenge_id}/verify" => {
                    let caller = tokens::authenticate(deps, edge::authorization(&req)).await?;
                    let body: VerifyRequest = edge::parse_json(&req, deps.settings.max_body_bytes)?;
                    if body.trust_device.is_some() || body.device_name.is_some() {
                        return Err(ApiError::validation("A step-up does not trust devices."));
                    }
                    let challenge_id = edge::require_path_param(&req, "challenge_id")?;
                    let challenge = step_up::challenge_of(deps, &caller, &challenge_id).await?;
                    let verified = check_answer(deps, &challenge, &body).await?;
                    Ok(edge::json_response(
                        200,
                        &step_up::elevate(deps, &caller, &verified).await?,
                    ))
                }
                _ => Err(ApiError::NotFound),
            }
        })
        .await
    })
}
