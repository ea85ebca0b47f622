//! The sign-in function: `POST /v1/sign-in`. Parses, calls [`portcullis::service::sign_in`],
//! answers. Every outcome is an HTTP answer; nothing here fails the invocation.

use lambda_http::Request;
use portcullis::Deps;
use portcullis::edge::{self, HandlerFuture, RequestMeta};
use portcullis::service::sign_in::{SignInRequest, sign_in};

/// The routes this function serves, as written in `infra/template.yaml`.
pub const ROUTES: &[&str] = &["POST /v1/sign-in"];

pub fn handle(deps: &Deps, req: Request) -> HandlerFuture<'_> {
    Box::pin(edge::answer(
        RequestMeta::from_request(&req),
        "POST /v1/sign-in",
        async move {
            if req.method() != lambda_http::http::Method::POST {
                return Err(portcullis::ApiError::MethodNotAllowed);
            }
            let body: SignInRequest = edge::parse_json(&req, deps.settings.max_body_bytes)?;
            let meta = RequestMeta::from_request(&req);
            let answer = sign_in(deps, body, &meta).await?;
            Ok(edge::json_response(200, &answer))
        },
    ))
}
