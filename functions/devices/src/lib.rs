//! The device-trust function (and the caller's own security events): the caller's trusted
//! devices (name from the User-Agent, created, last used, expiry); remove one or all. Removal
//! takes effect on the next sign-in.

use portcullis::Deps;
use portcullis::grants::{Grant, OUTBOX, Resource, TABLE_KEY, VERIFY_TOKENS};
use portcullis::service::tokens::Caller;
use portcullis::service::{admin, devices};
use portcullis_edge::{self as edge, Answer, Call, Function, Route};

pub static FUNCTION: Function = Function {
    name: "devices",
    grants: &[&[
        OUTBOX,
        Grant::on(
            Resource::MainTable,
            &["dynamodb:GetItem", "dynamodb:Query", "dynamodb:DeleteItem"],
        ),
        // The device history is read from the audit trail.
        Grant::on(
            Resource::AuditTable,
            &["dynamodb:PutItem", "dynamodb:Query"],
        ),
        TABLE_KEY,
        VERIFY_TOKENS,
    ]],
    routes: &[
        Route::session("GET /v1/me/devices", list),
        Route::session("DELETE /v1/me/devices", remove_all),
        Route::session("DELETE /v1/me/devices/{device_id}", remove),
        Route::session("GET /v1/me/events", events),
    ],
};

fn list(deps: &Deps, call: Call, caller: Caller) -> Answer<'_> {
    Box::pin(async move {
        let presented = call.meta.device_token.as_ref();
        let list = devices::list(deps, &caller.user_id, presented).await?;
        Ok(edge::json_response(
            200,
            &serde_json::json!({ "devices": list }),
        ))
    })
}

fn remove_all(deps: &Deps, _call: Call, caller: Caller) -> Answer<'_> {
    Box::pin(async move {
        let removed = devices::remove_all(deps, &caller.user_id, &caller.from).await?;
        Ok(edge::json_response(
            200,
            &serde_json::json!({ "removed": removed }),
        ))
    })
}

fn remove(deps: &Deps, call: Call, caller: Caller) -> Answer<'_> {
    Box::pin(async move {
        devices::remove(
            deps,
            &caller.user_id,
            &call.path("device_id")?,
            &caller.from,
        )
        .await?;
        Ok(edge::empty_response(204))
    })
}

fn events(deps: &Deps, _call: Call, caller: Caller) -> Answer<'_> {
    Box::pin(async move {
        Ok(edge::json_response(
            200,
            &admin::events(deps, &caller.user_id).await?,
        ))
    })
}
