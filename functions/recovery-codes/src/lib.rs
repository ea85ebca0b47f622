//! The recovery-code function: redeem a code to complete a sign-in or a step-up (the answer
//! says how many remain; the user is alerted), regenerate the set (step-up; the old set stops
//! working), and count what remains.

use lambda_http::Request;
use portcullis::Deps;
use portcullis::edge::{self, HandlerFuture, RequestMeta};
use portcullis::error::ApiError;
use portcullis::service::complete::{self, TrustRequest};
use portcullis::service::recovery::{self, RecoveryCodes, RedeemRequest};
use portcullis::service::{codes, step_up, tokens};

pub const ROUTES: &[&str] = &[
    "POST /v1/sign-in/{challenge_id}/recovery-code",
    "POST /v1/me/step-up/{challenge_id}/recovery-code",
    "POST /v1/me/recovery-codes",
    "GET /v1/me/recovery-codes",
];

pub fn handle(deps: &Deps, req: Request) -> HandlerFuture<'_> {
    Box::pin(async move {
        let route = edge::route_key(&req);
        edge::answer(RequestMeta::from_request(&req), "recovery-codes", async {
            let max = deps.settings.max_body_bytes;
            match route.as_str() {
                "POST /v1/sign-in/{challenge_id}/recovery-code" => {
                    let body: RedeemRequest = edge::parse_json(&req, max)?;
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
                    let (challenge, user) = codes::open_mfa_sign_in(deps, &challenge_id).await?;
                    let (verified, remaining) =
                        recovery::redeem(deps, &challenge, &body.code).await?;
                    let trust = body.trust_device.unwrap_or(false).then(|| TrustRequest {
                        device_name: body.device_name.clone(),
                        user_agent: RequestMeta::from_request(&req).user_agent,
                    });
                    let mut signed_in = complete::complete_sign_in_as(
                        deps,
                        &verified,
                        &user,
                        trust,
                        &portcullis::edge::RequestMeta::from_request(&req),
                    )
                    .await?;
                    signed_in.recovery_codes_remaining = Some(remaining);
                    Ok(edge::json_response(200, &signed_in))
                }
                "POST /v1/me/step-up/{challenge_id}/recovery-code" => {
                    let caller = tokens::authenticate(deps, edge::authorization(&req)).await?;
                    let body: RedeemRequest = edge::parse_json(&req, max)?;
                    if body.trust_device.is_some() || body.device_name.is_some() {
                        return Err(ApiError::validation("A step-up does not trust devices."));
                    }
                    let challenge_id = edge::require_path_param(&req, "challenge_id")?;
                    let challenge = step_up::challenge_of(deps, &caller, &challenge_id).await?;
                    let (verified, remaining) =
                        recovery::redeem(deps, &challenge, &body.code).await?;
                    let mut elevated = step_up::elevate(deps, &caller, &verified).await?;
                    elevated.recovery_codes_remaining = Some(remaining);
                    Ok(edge::json_response(200, &elevated))
                }
                "POST /v1/me/recovery-codes" => {
                    let caller = tokens::authenticate(deps, edge::authorization(&req)).await?;
                    edge::no_body(&req, max)?;
                    caller.require_step_up(deps)?;
                    let codes = recovery::issue(deps, &caller.user_id).await?;
                    Ok(edge::json_response(
                        201,
                        &RecoveryCodes {
                            recovery_codes: codes,
                        },
                    ))
                }
                "GET /v1/me/recovery-codes" => {
                    let caller = tokens::authenticate(deps, edge::authorization(&req)).await?;
                    let remaining = deps
                        .stores
                        .recovery
                        .remaining_recovery_codes(&caller.user_id)
                        .await?;
                    Ok(edge::json_response(
                        200,
                        &serde_json::json!({ "remaining": remaining }),
                    ))
                }
                _ => Err(ApiError::NotFound),
            }
        })
        .await
    })
}
