//! The code-sending function: `POST /v1/sign-in/{challenge_id}/codes` → 202 with where the
//! code went (masked) and how many sends remain.

use lambda_http::Request;
use portcullis::Deps;
use portcullis::edge::{self, HandlerFuture};
use portcullis::error::ApiError;
use portcullis::service::codes::{self, SendCodeRequest};

pub const ROUTES: &[&str] = &["POST /v1/sign-in/{challenge_id}/codes"];

pub fn handle(deps: &Deps, req: Request) -> HandlerFuture<'_> {
    Box::pin(async move {
        let route = edge::route_key(&req);
        edge::answer("send-code", async {
            match route.as_str() {
                "POST /v1/sign-in/{challenge_id}/codes" => {
                    let body: SendCodeRequest =
                        edge::parse_json(&req, deps.settings.max_body_bytes)?;
                    let challenge_id = edge::require_path_param(&req, "challenge_id")?;
                    let challenge = codes::open_challenge(deps, &challenge_id).await?;
                    if challenge.purpose != portcullis::storage::ChallengePurpose::SignIn {
                        return Err(ApiError::ChallengeExpired);
                    }
                    let answer = codes::send_code(deps, &challenge, &body).await?;
                    Ok(edge::json_response(202, &answer))
                }
                _ => Err(ApiError::NotFound),
            }
        })
        .await
    })
}
