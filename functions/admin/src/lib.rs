//! The admin function: on-boarding, user search and detail, unlock / deactivate / reactivate /
//! force a password change, roles, the two-admin requests (queue and approval), and a user's
//! audit trail and code deliveries. Every route needs an admin with an elevated session acting
//! on someone else; what one admin must not do alone answers 202 with a request for a second.

use lambda_http::Request;
use portcullis::Deps;
use portcullis::edge::{self, HandlerFuture, RequestMeta};
use portcullis::error::ApiError;
use portcullis::service::admin::{
    self, ActOutcome, Action, InviteOutcome, InviteRequest, MfaResetFiling, RoleGrant,
};
use portcullis::service::tokens;

pub const ROUTES: &[&str] = &[
    "POST /v1/admin/users",
    "GET /v1/admin/users",
    "GET /v1/admin/users/{user_id}",
    "POST /v1/admin/users/{user_id}/unlock",
    "POST /v1/admin/users/{user_id}/deactivate",
    "POST /v1/admin/users/{user_id}/reactivate",
    "POST /v1/admin/users/{user_id}/force-password-change",
    "POST /v1/admin/users/{user_id}/roles",
    "DELETE /v1/admin/users/{user_id}/roles/{role}",
    "POST /v1/admin/mfa-resets",
    "POST /v1/admin/mfa-resets/{request_id}/approve",
    "GET /v1/admin/requests",
    "POST /v1/admin/requests/{request_id}/approve",
    "GET /v1/admin/users/{user_id}/events",
    "GET /v1/admin/users/{user_id}/deliveries",
];

/// 204 when done, 202 with the request when it waits for a second admin.
fn acted(outcome: ActOutcome) -> lambda_http::Response<lambda_http::Body> {
    match outcome {
        ActOutcome::Done => edge::empty_response(204),
        ActOutcome::PendingApproval(pending) => edge::json_response(202, &pending),
    }
}

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
                    Ok(match admin::invite(deps, &caller, body, &meta).await? {
                        InviteOutcome::Invited(invited) => edge::json_response(201, &invited),
                        InviteOutcome::PendingApproval(p) => edge::json_response(202, &p),
                    })
                }
                "GET /v1/admin/users" => {
                    let query = edge::query_param(&req, "query")?;
                    let users = admin::search(deps, &caller, query.as_deref()).await?;
                    Ok(edge::json_response(
                        200,
                        &serde_json::json!({ "users": users }),
                    ))
                }
                "GET /v1/admin/users/{user_id}" => {
                    let user = edge::require_path_param(&req, "user_id")?;
                    Ok(edge::json_response(
                        200,
                        &admin::detail(deps, &caller, &user).await?,
                    ))
                }
                "POST /v1/admin/users/{user_id}/roles" => {
                    let body: RoleGrant = edge::parse_json(&req, max)?;
                    let user = edge::require_path_param(&req, "user_id")?;
                    Ok(acted(
                        admin::grant_role(deps, &caller, &user, body, &meta).await?,
                    ))
                }
                "DELETE /v1/admin/users/{user_id}/roles/{role}" => {
                    let user = edge::require_path_param(&req, "user_id")?;
                    let role = edge::require_path_param(&req, "role")?;
                    Ok(acted(
                        admin::revoke_role(deps, &caller, &user, &role, &meta).await?,
                    ))
                }
                "POST /v1/admin/mfa-resets" => {
                    let body: MfaResetFiling = edge::parse_json(&req, max)?;
                    let pending = admin::request_mfa_reset(deps, &caller, body, &meta).await?;
                    Ok(edge::json_response(201, &pending))
                }
                "POST /v1/admin/mfa-resets/{request_id}/approve" => {
                    edge::no_body(&req, max)?;
                    let id = edge::require_path_param(&req, "request_id")?;
                    admin::approve_mfa_reset(deps, &caller, &id, &meta).await?;
                    Ok(edge::empty_response(204))
                }
                "GET /v1/admin/requests" => {
                    let status = edge::query_param(&req, "status")?;
                    let requests = admin::list_requests(deps, &caller, status.as_deref()).await?;
                    Ok(edge::json_response(
                        200,
                        &serde_json::json!({ "requests": requests }),
                    ))
                }
                "POST /v1/admin/requests/{request_id}/approve" => {
                    edge::no_body(&req, max)?;
                    let id = edge::require_path_param(&req, "request_id")?;
                    Ok(edge::json_response(
                        200,
                        &admin::approve(deps, &caller, &id, &meta).await?,
                    ))
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
                    Ok(acted(
                        admin::act(deps, &caller, &user, action, &meta).await?,
                    ))
                }
            }
        })
        .await
    })
}
