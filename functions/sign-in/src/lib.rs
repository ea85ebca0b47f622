//! The sign-in function: `POST /v1/sign-in` (user ID and password), and the passwordless
//! passkey sign-in (`POST /v1/passkey/options`, `POST /v1/passkey/sign-in`). Parses, calls the
//! services, answers. Every outcome is an HTTP answer; nothing here fails the invocation.

use lambda_http::Request;
use portcullis::Deps;
use portcullis::edge::{self, HandlerFuture, RequestMeta};
use portcullis::error::ApiError;
use portcullis::service::passkeys::{self, PasswordlessRequest};
use portcullis::service::sign_in::{SignInRequest, check_client, sign_in};

/// The routes this function serves, as written in `infra/template.yaml`.
pub const ROUTES: &[&str] = &[
    "POST /v1/sign-in",
    "POST /v1/passkey/options",
    "POST /v1/passkey/sign-in",
];

/// The sign-in and passwordless futures are boxed: each joins several stores' calls at once,
/// and their nested future types are deep enough to overflow the compiler's layout query when
/// inlined into this one.
pub fn handle(deps: &Deps, req: Request) -> HandlerFuture<'_> {
    Box::pin(async move {
        let route = edge::route_key(&req);
        let meta = RequestMeta::from_request(&req);
        edge::answer(meta.clone(), "sign-in", async {
            let max = deps.settings.max_body_bytes;
            match route.as_str() {
                "POST /v1/sign-in" => {
                    let body: SignInRequest = edge::parse_json(&req, max)?;
                    Ok(edge::json_response(
                        200,
                        &Box::pin(sign_in(deps, body, &meta)).await?,
                    ))
                }
                "POST /v1/passkey/options" => {
                    check_client(deps, &meta)?;
                    edge::no_body(&req, max)?;
                    Ok(edge::json_response(
                        200,
                        &passkeys::passwordless_options(deps, &meta).await?,
                    ))
                }
                "POST /v1/passkey/sign-in" => {
                    check_client(deps, &meta)?;
                    let body: PasswordlessRequest = edge::parse_json(&req, max)?;
                    Ok(edge::json_response(
                        200,
                        &Box::pin(passkeys::passwordless_sign_in(deps, body, &meta)).await?,
                    ))
                }
                _ => Err(ApiError::NotFound),
            }
        })
        .await
    })
}
