//! The HTTP edge shared by every function (crate `portcullis-edge`): request parsing with clear
//! 4xx answers, the one place that turns an [`ApiError`] into `application/problem+json`, the
//! request metadata (source IP, User-Agent, device token, route) API Gateway hands each
//! invocation, and the route tables ([`route`]).
//!
//! The only crate of the workspace's core that names `lambda_http`: the services (crate
//! `portcullis`) do not depend on it, so the compiler keeps them free of the HTTP edge. What
//! they learn of a request is a [`RequestMeta`], plain data, passed as an argument.
//!
//! Handlers built on this never fail the invocation: every outcome is an HTTP answer (an `Err`
//! from a Lambda handler would become a bare 502 at API Gateway).

use std::future::Future;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt as _, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use portcullis::crypto::SecretString;
use portcullis::error::ApiError;
pub use portcullis::request::RequestMeta;

pub mod route;
pub use route::{Access, Answer, Call, Function, Route, dispatch};

/// Header carrying the trusted-device token (SPEC §11).
pub const DEVICE_TOKEN_HEADER: &str = "x-device-token";

/// What API Gateway tells a function about the caller.
pub fn request_meta(req: &Request) -> RequestMeta {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (source_ip, route_key, ctx_user_agent) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => (
            ctx.http.source_ip.clone(),
            ctx.route_key.clone(),
            ctx.http.user_agent.clone(),
        ),
        _ => (None, None, None),
    };
    RequestMeta {
        source_ip,
        user_agent: header("user-agent").or(ctx_user_agent),
        device_token: header(DEVICE_TOKEN_HEADER)
            .filter(|t| !t.is_empty())
            .map(SecretString::new),
        route_key,
    }
}

/// A path parameter (`{challenge_id}` …) as API Gateway extracted it.
pub fn path_param(req: &Request, name: &str) -> Option<String> {
    req.path_parameters_ref()
        .and_then(|p| p.first(name))
        .map(str::to_owned)
}

/// Parses a JSON body: `415` unless it is declared as JSON, `413` over `max_bytes`, `400` for
/// anything else that is wrong (non-UTF-8, malformed JSON, missing or mistyped fields, unknown
/// fields where the type refuses them). Error messages never echo a submitted value.
pub fn parse_json<T: DeserializeOwned>(req: &Request, max_bytes: usize) -> Result<T, ApiError> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => b"",
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => b"",
    };
    if bytes.len() > max_bytes {
        return Err(ApiError::PayloadTooLarge(max_bytes));
    }
    let declared_json = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let essence = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            essence == "application/json" || essence.ends_with("+json")
        })
        .unwrap_or(false);
    if !declared_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    if bytes.is_empty() {
        return Err(ApiError::validation("A JSON request body is required."));
    }
    if std::str::from_utf8(bytes).is_err() {
        return Err(ApiError::validation("The request body is not valid UTF-8."));
    }
    serde_json::from_slice(bytes).map_err(|err| ApiError::validation(describe_json_error(&err)))
}

/// A JSON error message safe to show: values the client sent (which may be a password) are
/// replaced by their kind; field names and positions are kept.
fn describe_json_error(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let raw = err.to_string();
    let message = if raw.starts_with("invalid type")
        || raw.starts_with("invalid value")
        || raw.starts_with("invalid length")
    {
        strip_values(&raw)
    } else {
        raw
    };
    match err.classify() {
        Category::Syntax | Category::Eof => format!("Malformed JSON: {message}."),
        Category::Data | Category::Io => format!("Invalid request: {message}."),
    }
}

/// Replaces what serde quotes from the input: `` `…` `` (numbers, characters, fields) and
/// `"…"` (a string value, Debug-escaped: `\"` inside does not end it; found by the fuzzer,
/// `invalid type: string "…", expected a sequence` repeated the string).
fn strip_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                out.push_str("(value hidden)");
                for inner in chars.by_ref() {
                    if inner == '`' {
                        break;
                    }
                }
            }
            '"' => {
                out.push_str("(value hidden)");
                while let Some(inner) = chars.next() {
                    match inner {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// For routes that take no fields: an empty body, or `{}` (a JSON client may always send one).
fn is_empty_body(req: &Request) -> bool {
    match req.body() {
        Body::Empty => true,
        Body::Text(t) => t.trim().is_empty(),
        Body::Binary(b) => b.is_empty(),
        _ => true,
    }
}

pub fn no_body(req: &Request, max_bytes: usize) -> Result<(), ApiError> {
    if is_empty_body(req) {
        return Ok(());
    }
    let fields: serde_json::Map<String, serde_json::Value> = parse_json(req, max_bytes)?;
    if fields.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation("This request takes no fields."))
    }
}

/// A body whose fields are all optional: none at all (or `{}`) is the default.
pub fn optional_json<T: DeserializeOwned + Default>(
    req: &Request,
    max_bytes: usize,
) -> Result<T, ApiError> {
    if is_empty_body(req) {
        Ok(T::default())
    } else {
        parse_json(req, max_bytes)
    }
}

/// A JSON answer. `no-store`: answers may carry tokens.
pub fn json_response<T: Serialize>(status: u16, body: &T) -> Response<Body> {
    match serde_json::to_string(body) {
        Ok(text) => build(status, "application/json", Body::Text(text), None),
        Err(err) => {
            tracing::error!(error = %err, "response serialisation failed");
            problem_response(&ApiError::ServiceUnavailable)
        }
    }
}

/// An answer without a body (`204`).
pub fn empty_response(status: u16) -> Response<Body> {
    build(status, "application/json", Body::Empty, None)
}

/// The one mapping from [`ApiError`] to an HTTP answer.
pub fn problem_response(err: &ApiError) -> Response<Body> {
    let problem = err.problem();
    let text = serde_json::to_string(&problem).unwrap_or_else(|_| {
        r#"{"type":"urn:portcullis:problem:service_unavailable","title":"Service unavailable","status":503,"detail":"The service is temporarily unavailable.","code":"service_unavailable"}"#.to_owned()
    });
    build(
        problem.status,
        "application/problem+json",
        Body::Text(text),
        err.retry_after_secs(),
    )
}

fn build(status: u16, content_type: &str, body: Body, retry_after: Option<i64>) -> Response<Body> {
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .header("x-content-type-options", "nosniff");
    if let Some(secs) = retry_after {
        builder = builder.header("retry-after", secs.to_string());
    }
    builder.body(body).unwrap_or_else(|_| {
        let mut fallback = Response::new(Body::Empty);
        *fallback.status_mut() = lambda_http::http::StatusCode::SERVICE_UNAVAILABLE;
        fallback
    })
}

/// Runs a handler body and answers every outcome over HTTP; errors are logged by code only.
/// (The caller's IP and User-Agent reach the services as an argument: [`Call::meta`] for a
/// public route, [`Caller::from`](portcullis::service::tokens::Caller) for a session route.)
pub async fn answer<F>(route: &str, work: F) -> Response<Body>
where
    F: Future<Output = Result<Response<Body>, ApiError>>,
{
    match work.await {
        Ok(response) => response,
        Err(err) => {
            if err.status() >= 500 {
                tracing::error!(route, code = err.code(), "request failed");
            } else {
                tracing::info!(route, code = err.code(), "request refused");
            }
            problem_response(&err)
        }
    }
}

/// `METHOD /route/{param}` as API Gateway matched it (the function dispatches on it).
pub fn route_key(req: &Request) -> String {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.route_key.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

/// A query-string parameter (API Gateway decodes it; repeated names arrive joined by commas).
/// Over 256 bytes is refused as bad input.
pub fn query_param(req: &Request, name: &str) -> Result<Option<String>, ApiError> {
    match req
        .query_string_parameters_ref()
        .and_then(|q| q.first(name))
    {
        None => Ok(None),
        Some(v) if v.len() > 256 => Err(ApiError::validation(format!(
            "{name} must be at most 256 bytes."
        ))),
        Some(v) => Ok(Some(v.to_owned())),
    }
}

/// A required path parameter; API Gateway always provides the ones of the route.
pub fn require_path_param(req: &Request, name: &str) -> Result<String, ApiError> {
    path_param(req, name)
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .ok_or(ApiError::NotFound)
}

/// The `Authorization` header.
pub fn authorization(req: &Request) -> Option<&str> {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
}

/// Runs a function in Lambda: tracing, dependencies built once, then every request answered
/// by [`dispatch`] over the function's route table.
pub async fn serve(function: &'static Function) -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let deps = portcullis::Deps::for_function(function.name, function.grants).await?;
    let deps = &deps;
    lambda_http::run(lambda_http::service_fn(move |req| async move {
        Ok::<_, std::convert::Infallible>(dispatch(deps, req, function).await)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::http;

    fn request(content_type: Option<&str>, body: Body) -> Request {
        let mut builder = http::Request::builder().method("POST").uri("/v1/sign-in");
        if let Some(ct) = content_type {
            builder = builder.header("content-type", ct);
        }
        builder.body(body).unwrap()
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Input {
        user_id: String,
        password: String,
    }

    #[test]
    fn wrong_types_never_echo_the_value() {
        let req = request(
            Some("application/json"),
            Body::Text(r#"{"user_id":"a","password":123456789}"#.into()),
        );
        let err = parse_json::<Input>(&req, 1024).unwrap_err();
        let detail = err.problem().detail;
        assert!(!detail.contains("123456789"), "{detail}");
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn a_string_where_a_list_is_expected_is_not_echoed_either() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Roles {
            roles: Vec<String>,
        }
        for body in [
            r#"{"roles":"secret-value-42"}"#,
            r#"{"roles":"with \"quotes\" secret-value-42"}"#,
        ] {
            let req = request(Some("application/json"), Body::Text(body.into()));
            let detail = parse_json::<Roles>(&req, 1024)
                .unwrap_err()
                .problem()
                .detail;
            assert!(!detail.contains("secret-value-42"), "{detail}");
            assert!(detail.contains("expected a sequence"), "{detail}");
        }
    }

    #[test]
    fn content_type_size_utf8_and_syntax_are_checked() {
        let ok = r#"{"user_id":"a","password":"b"}"#;
        assert!(
            parse_json::<Input>(
                &request(
                    Some("application/json; charset=utf-8"),
                    Body::Text(ok.into())
                ),
                1024
            )
            .is_ok()
        );
        assert_eq!(
            parse_json::<Input>(&request(None, Body::Text(ok.into())), 1024).unwrap_err(),
            ApiError::UnsupportedMediaType
        );
        assert_eq!(
            parse_json::<Input>(&request(Some("text/plain"), Body::Text(ok.into())), 1024)
                .unwrap_err(),
            ApiError::UnsupportedMediaType
        );
        assert_eq!(
            parse_json::<Input>(
                &request(Some("application/json"), Body::Text(ok.into())),
                10
            )
            .unwrap_err(),
            ApiError::PayloadTooLarge(10)
        );
        let bad_utf8 = request(
            Some("application/json"),
            Body::Binary(vec![b'{', 0xff, b'}']),
        );
        assert_eq!(
            parse_json::<Input>(&bad_utf8, 1024).unwrap_err().status(),
            400
        );
        let malformed = request(Some("application/json"), Body::Text("{\"user_id\":".into()));
        assert!(
            parse_json::<Input>(&malformed, 1024)
                .unwrap_err()
                .problem()
                .detail
                .starts_with("Malformed JSON")
        );
        let unknown = request(
            Some("application/json"),
            Body::Text(r#"{"user_id":"a","password":"b","x":1}"#.into()),
        );
        assert!(
            parse_json::<Input>(&unknown, 1024)
                .unwrap_err()
                .problem()
                .detail
                .contains("unknown field")
        );
        let empty = request(Some("application/json"), Body::Empty);
        assert_eq!(parse_json::<Input>(&empty, 1024).unwrap_err().status(), 400);
    }

    #[test]
    fn problems_are_problem_json_with_retry_after() {
        let resp = problem_response(&ApiError::Locked {
            retry_after_secs: 1800,
        });
        assert_eq!(resp.status(), 423);
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        assert_eq!(resp.headers()["retry-after"], "1800");
        assert_eq!(resp.headers()["cache-control"], "no-store");
    }
}
