//! The tokens function: refresh, sign-out, and the public verification keys (JWKS and OpenID
//! discovery) that API Gateway JWT authorizers of this and other apps use.

use lambda_http::Request;
use portcullis::Deps;
use portcullis::edge::{self, HandlerFuture, RequestMeta};
use portcullis::error::ApiError;
use portcullis::service::tokens::{self, RefreshRequest};

pub const ROUTES: &[&str] = &[
    "POST /v1/tokens/refresh",
    "POST /v1/sign-out",
    "GET /.well-known/jwks.json",
    "GET /.well-known/openid-configuration",
];

pub fn handle(deps: &Deps, req: Request) -> HandlerFuture<'_> {
    Box::pin(async move {
        let route = edge::route_key(&req);
        edge::answer(RequestMeta::from_request(&req), "tokens", async {
            match route.as_str() {
                "POST /v1/tokens/refresh" => {
                    let body: RefreshRequest =
                        edge::parse_json(&req, deps.settings.max_body_bytes)?;
                    let tokens = tokens::refresh(deps, body).await?;
                    Ok(edge::json_response(200, &tokens))
                }
                "POST /v1/sign-out" => {
                    let caller = tokens::authenticate(deps, edge::authorization(&req)).await?;
                    tokens::sign_out(deps, &caller).await?;
                    Ok(edge::empty_response(204))
                }
                "GET /.well-known/jwks.json" => {
                    Ok(edge::json_response(200, &tokens::jwks(deps).await?))
                }
                "GET /.well-known/openid-configuration" => Ok(edge::json_response(
                    200,
                    &tokens::openid_configuration(deps),
                )),
                _ => Err(ApiError::NotFound),
            }
        })
        .await
    })
}
