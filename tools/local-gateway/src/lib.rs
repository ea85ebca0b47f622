//! The local API Gateway: one HTTP endpoint (`http://127.0.0.1:3000` by default) that serves
//! every function under its route, as API Gateway HTTP API would.
//!
//! - The route table is read from `infra/template.yaml` (embedded at build time): the `HttpApi`
//!   events of each `AWS::Serverless::Function`. It is not written anywhere else; a test checks
//!   it against `infra/openapi.yaml` and against the handlers registered in [`registry`].
//! - Each request becomes the JSON event API Gateway would send (payload format 2.0: route key,
//!   path parameters, source IP, User-Agent, and for protected routes the JWT authorizer's
//!   claims), which is parsed by `lambda_http` exactly as in Lambda and handed to the function's
//!   handler in process.
//! - `GET /` and the other paths outside the API serve the reference web client from `web/`
//!   ([`web`]), as a CDN or S3 bucket in front of the same origin would in production.
//! - With `PORTCULLIS_OUTBOX_QUEUE_URL` set, it drains the outbox queue through the sender
//!   function, as Lambda's SQS event source mapping would ([`outbox`]).

pub mod event;
pub mod outbox;
pub mod registry;
pub mod routes;
pub mod server;
pub mod web;

/// The SAM template, embedded so the binary serves exactly the routes it was built with.
pub const TEMPLATE: &str = include_str!("../../../infra/template.yaml");
/// The OpenAPI document, for the consistency test and `GET /openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../../infra/openapi.yaml");

/// The request API Gateway would hand to the function serving `method path` (a public route),
/// for in-process callers such as the benchmark: the same event and parsing as
/// [`server`] uses. Returns the function's name with it, or `None` when no route matches.
pub fn lambda_request(
    routes: &[routes::Route],
    method: &str,
    path: &str,
    headers: &lambda_http::http::HeaderMap,
    body: &[u8],
) -> Option<(String, lambda_http::Request)> {
    let (route, params) = routes
        .iter()
        .find_map(|r| r.matches(method, path).map(|p| (r, p)))?;
    let incoming = event::Incoming {
        method,
        path,
        query: None,
        headers,
        body,
        source_ip: "192.0.2.10".into(),
        host: "127.0.0.1",
        request_id: "in-process".into(),
        time_epoch_ms: 0,
    };
    let event = event::build(&incoming, route, &params, None);
    let request = lambda_http::request::from_str(&event.to_string()).ok()?;
    Some((route.function.clone(), request))
}
