//! The code-verification function: `POST /v1/sign-in/{challenge_id}/verify` completes a
//! sign-in challenge with a code sent by text, voice or email, or an authenticator code.

use lambda_http::Request;
use portcullis::Deps;
use portcullis::crypto::SecretString;
use portcullis::edge::{self, HandlerFuture};
use portcullis::error::ApiError;
use portcullis::service::{codes, complete};
use portcullis::storage::{ChallengePurpose, ChallengeStatus};
use serde::Deserialize;

pub const ROUTES: &[&str] = &["POST /v1/sign-in/{challenge_id}/verify"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub method: String,
    pub code: SecretString,
    #[serde(default)]
    pub factor_id: Option<String>,
    #[serde(default)]
    pub trust_device: Option<bool>,
    #[serde(default)]
    pub device_name: Option<String>,
}

pub fn handle(deps: &Deps, req: Request) -> HandlerFuture<'_> {
    Box::pin(async move {
        let route = edge::route_key(&req);
        edge::answer("verify", async {
            match route.as_str() {
                "POST /v1/sign-in/{challenge_id}/verify" => {
                    let body: VerifyRequest = edge::parse_json(&req, deps.settings.max_body_bytes)?;
                    if body
                        .device_name
                        .as_ref()
                        .is_some_and(|n| n.chars().count() > 100)
                    {
                        return Err(ApiError::validation(
                            "device_name must be at most 100 characters.",
                        ));
                    }
                    let challenge_id = edge::require_path_param(&req, "challenge_id")?;
                    let challenge = codes::open_challenge(deps, &challenge_id).await?;
                    if challenge.purpose != ChallengePurpose::SignIn {
                        return Err(ApiError::ChallengeExpired);
                    }
                    if challenge.status != ChallengeStatus::MfaRequired {
                        // Enrolment challenges complete at …/factors/{factor_id}/verify.
                        return Err(ApiError::Forbidden);
                    }
                    let verified = codes::check_code(
                        deps,
                        &challenge,
                        &body.method,
                        &body.code,
                        body.factor_id.as_deref(),
                    )
                    .await?;
                    let signed_in = complete::complete_sign_in(deps, &verified).await?;
                    Ok(edge::json_response(200, &signed_in))
                }
                _ => Err(ApiError::NotFound),
            }
        })
        .await
    })
}
