//! The code-sending function: codes for a sign-in challenge (202 with where the code went,
//! masked, and how many sends remain), and the step-up challenge of a signed-in session.

use lambda_http::Request;
use portcullis::Deps;
use portcullis::edge::{self, HandlerFuture, RequestMeta};
use portcullis::error::ApiError;
use portcullis::service::codes::{self, SendCodeRequest};
use portcullis::service::step_up::{self, StepUpRequest};
use portcullis::service::tokens;
use portcullis::storage::ChallengePurpose;

pub const ROUTES: &[&str] = &[
    "POST /v1/sign-in/{challenge_id}/codes",
    "POST /v1/me/step-up",
    "POST /v1/me/step-up/{challenge_id}/codes",
];

pub fn handle(deps: &Deps, req: Request) -> HandlerFuture<'_> {
    Box::pin(async move {
        let route = edge::route_key(&req);
        edge::answer(RequestMeta::from_request(&req), "send-code", async {
            let max = deps.settings.max_body_bytes;
            match route.as_str() {
                "POST /v1/sign-in/{challenge_id}/codes" => {
                    let body: SendCodeRequest = edge::parse_json(&req, max)?;
                    let challenge_id = edge::require_path_param(&req, "challenge_id")?;
                    // The stamp check goes beside the send's reads (no round trip of its own).
                    let opening = codes::Opening::read(deps, &challenge_id).await?;
                    if opening.record().purpose != ChallengePurpose::SignIn {
                        return Err(ApiError::ChallengeExpired);
                    }
                    Ok(edge::json_response(
                        202,
                        &codes::send_code_for(deps, &opening, &body).await?,
                    ))
                }
                "POST /v1/me/step-up" => {
                    let caller = tokens::authenticate(deps, edge::authorization(&req)).await?;
                    let body: StepUpRequest = edge::parse_json(&req, max)?;
                    Ok(edge::json_response(
                        201,
                        &step_up::start(deps, &caller, body).await?,
                    ))
                }
                "POST /v1/me/step-up/{challenge_id}/codes" => {
                    let caller = tokens::authenticate(deps, edge::authorization(&req)).await?;
                    let body: SendCodeRequest = edge::parse_json(&req, max)?;
                    let challenge_id = edge::require_path_param(&req, "challenge_id")?;
                    let challenge = step_up::challenge_of(deps, &caller, &challenge_id).await?;
                    Ok(edge::json_response(
                        202,
                        &codes::send_code(deps, &challenge, &body).await?,
                    ))
                }
                _ => Err(ApiError::NotFound),
            }
        })
        .await
    })
}
