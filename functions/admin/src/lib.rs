//! The admin function: on-boarding, unlock / deactivate / reactivate / force a password change,
//! the two-person MFA reset, and a user's audit trail and code deliveries. Every route needs an
//! admin with an elevated session acting on someone else.

use lambda_http::Request;
use portcullis::Deps;
use portcullis::edge::{self, HandlerFuture, RequestMeta};
use portcullis::error::ApiError;
use portcullis::service::admin::{self, Action, InviteRequest, MfaResetFiling};
use portcullis::service::tokens;

pub const ROUTES: &[&str] = &[
    "POST /v1/admin/users",
    "POST /v1/admin/users/{user_id}/unlock",
    "POST /v1/admin/users/{user_id}/deactivate",
    "POST /v1/admin/users/{user_id}/reactivate",
    "POST /v1/admin/users/{user_id}/force-password-change",
    "POST /v1/admin/mfa-resets",
    "POST /v1/admin/mfa-resets/{request_id}/approve",
    "GET /v1/admin/users/{user_id}/events",
    "GET /v1/admin/users/{user_id}/deliveries",
];

pub fn handle(deps: &Deps, req: Request) -> HandlerFuture<'_> {
    Box::pin(async move {
        let route = edge::route_key(&req);
        edge::answer(RequestMeta::from_request(&req), "admin", async {
            let caller = tokens::authenticate(deps, edge::authorization(&req)).await?;
            let meta = RequestMeta::from_request(&req);
            let max = deps.settings.max_body_bytes;
            match route.as_str() {
                "POST /v1/admin/users" => {
                    let body: InviteRequest = edge::parse_json(&req, max)?;
                    Ok(edge::json_response(
                        201,
                        &admin::invite(deps, &caller, body, &meta).await?,
                    ))
                }
                "POST /v1/admin/mfa-resets" => {
                    let body: MfaResetFiling = edge::parse_json(&req, max)?;
                    let request = admin::request_mfa_reset(deps, &caller, body, &meta).await?;
                    Ok(edge::json_response(
                        201,
                        &serde_json::json!({
                            "request_id": request.request_id,
                            "expires_at": request.expires_at,
                        }),
                    ))
                }
                "POST /v1/admin/mfa-resets/{request_id}/approve" => {
                    edge::no_body(&req, max)?;
                    let id = edge::require_path_param(&req, "request_id")?;
                    admin::approve_mfa_reset(deps, &caller, &id, &meta).await?;
                    Ok(edge::empty_response(204))
                }
                "GET /v1/admin/users/{user_id}/events" => {
                    let user = edge::require_path_param(&req, "user_id")?;
                    Ok(edge::json_response(
                        200,
                        &admin::user_events(deps, &caller, &user).await?,
                    ))
                }
                "GET /v1/admin/users/{user_id}/deliveries" => {
                    let user = edge::require_path_param(&req, "user_id")?;
                    Ok(edge::json_response(
                        200,
                        &admin::deliveries(deps, &caller, &user).await?,
                    ))
                }
                other => {
                    let action = other
                        .strip_prefix("POST /v1/admin/users/{user_id}/")
                        .and_then(Action::parse)
                        .ok_or(ApiError::NotFound)?;
                    edge::no_body(&req, max)?;
                    let user = edge::require_path_param(&req, "user_id")?;
                    admin::act(deps, &caller, &user, action, &meta).await?;
                    Ok(edge::empty_response(204))
                }
            }
        })
        .await
    })
}
