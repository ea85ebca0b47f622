//! The admin function: on-boarding, user search and detail, unlock / deactivate / reactivate /
//! force a password change, roles, the two-admin requests (queue and approval), and a user's
//! audit trail and code deliveries. Every route needs an admin with an elevated session acting
//! on someone else; what one admin must not do alone answers 202 with a request for a second.
//!
//! The routes are admin routes ([`Route::admin`]): before a handler runs, the edge checks the
//! caller as an admin (role in the token and in the stored record, active, elevated) and hands
//! the handler the [`Admin`] that check made; every admin service takes it, and the one read of
//! the admin's record that check made serves the action too.

use lambda_http::{Body, Response};
use portcullis::Deps;
use portcullis::grants::{Grant, Resource, STATEFUL, VERIFY_TOKENS};
use portcullis::service::admin::{
    self, ActOutcome, Action, Admin, InviteOutcome, InviteRequest, MfaResetFiling, RoleGrant,
};
use portcullis_edge::{self as edge, Answer, Call, Function, Route};

pub static FUNCTION: Function = Function {
    name: "admin",
    grants: &[
        STATEFUL,
        // The audit trail is read by the admins' event view.
        &[
            Grant::on(Resource::AuditTable, &["dynamodb:Query"]),
            VERIFY_TOKENS,
        ],
    ],
    routes: &[
        Route::admin("POST /v1/admin/users", invite),
        Route::admin("GET /v1/admin/users", search),
        Route::admin("GET /v1/admin/users/{user_id}", detail),
        Route::admin("POST /v1/admin/users/{user_id}/unlock", |d, c, admin| {
            Box::pin(act(d, c, admin, Action::Unlock))
        }),
        Route::admin(
            "POST /v1/admin/users/{user_id}/deactivate",
            |d, c, admin| Box::pin(act(d, c, admin, Action::Deactivate)),
        ),
        Route::admin(
            "POST /v1/admin/users/{user_id}/reactivate",
            |d, c, admin| Box::pin(act(d, c, admin, Action::Reactivate)),
        ),
        Route::admin(
            "POST /v1/admin/users/{user_id}/force-password-change",
            |d, c, admin| Box::pin(act(d, c, admin, Action::ForcePasswordChange)),
        ),
        Route::admin("POST /v1/admin/users/{user_id}/roles", grant_role),
        Route::admin("DELETE /v1/admin/users/{user_id}/roles/{role}", revoke_role),
        Route::admin("POST /v1/admin/mfa-resets", request_mfa_reset),
        Route::admin(
            "POST /v1/admin/mfa-resets/{request_id}/approve",
            approve_mfa_reset,
        ),
        Route::admin("GET /v1/admin/requests", list_requests),
        Route::admin("POST /v1/admin/requests/{request_id}/approve", approve),
        Route::admin("GET /v1/admin/users/{user_id}/events", user_events),
        Route::admin("GET /v1/admin/users/{user_id}/deliveries", deliveries),
    ],
};

/// 204 when done, 202 with the request when it waits for a second admin.
fn acted(outcome: ActOutcome) -> Response<Body> {
    match outcome {
        ActOutcome::Done => edge::empty_response(204),
        ActOutcome::PendingApproval(pending) => edge::json_response(202, &pending),
    }
}

async fn act(
    deps: &Deps,
    call: Call,
    admin: Admin,
    action: Action,
) -> Result<Response<Body>, portcullis::error::ApiError> {
    call.no_body()?;
    let user = call.path("user_id")?;
    Ok(acted(admin::act(deps, &admin, &user, action).await?))
}

fn invite(deps: &Deps, call: Call, admin: Admin) -> Answer<'_> {
    Box::pin(async move {
        let body: InviteRequest = call.body()?;
        Ok(match admin::invite(deps, &admin, body).await? {
            InviteOutcome::Invited(invited) => edge::json_response(201, &invited),
            InviteOutcome::PendingApproval(p) => edge::json_response(202, &p),
        })
    })
}

fn search(deps: &Deps, call: Call, admin: Admin) -> Answer<'_> {
    Box::pin(async move {
        let query = call.query("query")?;
        let users = admin::search(deps, &admin, query.as_deref()).await?;
        Ok(edge::json_response(
            200,
            &serde_json::json!({ "users": users }),
        ))
    })
}

fn detail(deps: &Deps, call: Call, admin: Admin) -> Answer<'_> {
    Box::pin(async move {
        let user = call.path("user_id")?;
        Ok(edge::json_response(
            200,
            &admin::detail(deps, &admin, &user).await?,
        ))
    })
}

fn grant_role(deps: &Deps, call: Call, admin: Admin) -> Answer<'_> {
    Box::pin(async move {
        let body: RoleGrant = call.body()?;
        let user = call.path("user_id")?;
        Ok(acted(admin::grant_role(deps, &admin, &user, body).await?))
    })
}

fn revoke_role(deps: &Deps, call: Call, admin: Admin) -> Answer<'_> {
    Box::pin(async move {
        let user = call.path("user_id")?;
        let role = call.path("role")?;
        Ok(acted(admin::revoke_role(deps, &admin, &user, &role).await?))
    })
}

fn request_mfa_reset(deps: &Deps, call: Call, admin: Admin) -> Answer<'_> {
    Box::pin(async move {
        let body: MfaResetFiling = call.body()?;
        let pending = admin::request_mfa_reset(deps, &admin, body).await?;
        Ok(edge::json_response(201, &pending))
    })
}

fn approve_mfa_reset(deps: &Deps, call: Call, admin: Admin) -> Answer<'_> {
    Box::pin(async move {
        call.no_body()?;
        let id = call.path("request_id")?;
        admin::approve_mfa_reset(deps, &admin, &id).await?;
        Ok(edge::empty_response(204))
    })
}

fn list_requests(deps: &Deps, call: Call, admin: Admin) -> Answer<'_> {
    Box::pin(async move {
        let status = call.query("status")?;
        let requests = admin::list_requests(deps, &admin, status.as_deref()).await?;
        Ok(edge::json_response(
            200,
            &serde_json::json!({ "requests": requests }),
        ))
    })
}

fn approve(deps: &Deps, call: Call, admin: Admin) -> Answer<'_> {
    Box::pin(async move {
        call.no_body()?;
        let id = call.path("request_id")?;
        Ok(edge::json_response(
            200,
            &admin::approve(deps, &admin, &id).await?,
        ))
    })
}

fn user_events(deps: &Deps, call: Call, admin: Admin) -> Answer<'_> {
    Box::pin(async move {
        let user = call.path("user_id")?;
        Ok(edge::json_response(
            200,
            &admin::user_events(deps, &admin, &user).await?,
        ))
    })
}

fn deliveries(deps: &Deps, call: Call, admin: Admin) -> Answer<'_> {
    Box::pin(async move {
        let user = call.path("user_id")?;
        Ok(edge::json_response(
            200,
            &admin::deliveries(deps, &admin, &user).await?,
        ))
    })
}
