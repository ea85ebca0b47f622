//! The password function: change (step-up), forgot (always 202), reset by link (204, no
//! sign-in), and the change required after MFA inside a sign-in challenge.

use lambda_http::Request;
use portcullis::Deps;
use portcullis::edge::{self, HandlerFuture, RequestMeta};
use portcullis::error::ApiError;
use portcullis::service::password::{
    self, ChangePasswordRequest, ForgotRequest, NewPasswordRequest, ResetRequest,
};
use portcullis::service::{codes, tokens};
use portcullis::storage::ChallengePurpose;

pub const ROUTES: &[&str] = &[
    "POST /v1/me/password",
    "POST /v1/password/forgot",
    "POST /v1/password/reset",
    "POST /v1/sign-in/{challenge_id}/password",
    "POST /v1/invitations/{token}/accept",
];

pub fn handle(deps: &Deps, req: Request) -> HandlerFuture<'_> {
    Box::pin(async move {
        let route = edge::route_key(&req);
        edge::answer(RequestMeta::from_request(&req), "password", async {
            let max = deps.settings.max_body_bytes;
            match route.as_str() {
                "POST /v1/me/password" => {
                    let caller = tokens::authenticate(deps, edge::authorization(&req)).await?;
                    let body: ChangePasswordRequest = edge::parse_json(&req, max)?;
                    password::change(deps, &caller, body).await?;
                    Ok(edge::empty_response(204))
                }
                "POST /v1/password/forgot" => {
                    let body: ForgotRequest = edge::parse_json(&req, max)?;
                    Ok(edge::json_response(
                        202,
                        &password::forgot(deps, body).await?,
                    ))
                }
                "POST /v1/password/reset" => {
                    let body: ResetRequest = edge::parse_json(&req, max)?;
                    password::reset(deps, body).await?;
                    Ok(edge::empty_response(204))
                }
                "POST /v1/sign-in/{challenge_id}/password" => {
                    portcullis::service::sign_in::check_client(
                        deps,
                        &RequestMeta::from_request(&req),
                    )?;
                    let body: NewPasswordRequest = edge::parse_json(&req, max)?;
                    let challenge_id = edge::require_path_param(&req, "challenge_id")?;
                    let challenge = codes::open_challenge(deps, &challenge_id).await?;
                    if challenge.purpose != ChallengePurpose::SignIn {
                        return Err(ApiError::ChallengeExpired);
                    }
                    let tokens = password::complete_required_change(deps, &challenge, body).await?;
                    Ok(edge::json_response(
                        200,
                        &serde_json::json!({
                            "status": "signed_in",
                            "access_token": tokens.access_token,
                            "refresh_token": tokens.refresh_token,
                            "token_type": tokens.token_type,
                            "expires_in": tokens.expires_in,
                        }),
                    ))
                }
                "POST /v1/invitations/{token}/accept" => {
                    let body: portcullis::service::admin::AcceptRequest =
                        edge::parse_json(&req, max)?;
                    let token = edge::require_path_param(&req, "token")?;
                    portcullis::service::admin::accept(
                        deps,
                        &token,
                        body,
                        &RequestMeta::from_request(&req),
                    )
                    .await?;
                    Ok(edge::empty_response(204))
                }
                _ => Err(ApiError::NotFound),
            }
        })
        .await
    })
}
