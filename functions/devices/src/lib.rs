//! The device-trust function (and the caller's own security events): the caller's trusted devices (name from the User-Agent, created,
//! last used, expiry); remove one or all. Removal takes effect on the next sign-in.

use lambda_http::Request;
use portcullis::Deps;
use portcullis::edge::{self, HandlerFuture, RequestMeta};
use portcullis::error::ApiError;
use portcullis::service::{devices, tokens};

pub const ROUTES: &[&str] = &[
    "GET /v1/me/devices",
    "DELETE /v1/me/devices",
    "DELETE /v1/me/devices/{device_id}",
    "GET /v1/me/events",
];

pub fn handle(deps: &Deps, req: Request) -> HandlerFuture<'_> {
    Box::pin(async move {
        let route = edge::route_key(&req);
        edge::answer(RequestMeta::from_request(&req), "devices", async {
            let caller = tokens::authenticate(deps, edge::authorization(&req)).await?;
            match route.as_str() {
                "GET /v1/me/devices" => {
                    let presented = RequestMeta::from_request(&req).device_token;
                    let list = devices::list(deps, &caller.user_id, presented.as_ref()).await?;
                    Ok(edge::json_response(
                        200,
                        &serde_json::json!({ "devices": list }),
                    ))
                }
                "DELETE /v1/me/devices" => {
                    let removed = devices::remove_all(deps, &caller.user_id).await?;
                    Ok(edge::json_response(
                        200,
                        &serde_json::json!({ "removed": removed }),
                    ))
                }
                "DELETE /v1/me/devices/{device_id}" => {
                    let device_id = edge::require_path_param(&req, "device_id")?;
                    devices::remove(deps, &caller.user_id, &device_id).await?;
                    Ok(edge::empty_response(204))
                }
                "GET /v1/me/events" => Ok(edge::json_response(
                    200,
                    &portcullis::service::admin::events(deps, &caller.user_id).await?,
                )),
                _ => Err(ApiError::NotFound),
            }
        })
        .await
    })
}
