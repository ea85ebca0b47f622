//! The HTTP server: match the route, build the API Gateway event, run the handler, answer.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming as HyperBody;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::Body;
use portcullis::Deps;
use portcullis::error::ApiError;
use tokio::net::TcpListener;

use crate::event::{self, Incoming};
use crate::registry::Function;
use crate::routes::Route;

/// API Gateway's own payload limit (10 MB); functions apply their much smaller limits.
pub const GATEWAY_MAX_BODY: usize = 10 * 1024 * 1024;

pub struct Gateway {
    pub routes: Vec<Route>,
    pub handlers: BTreeMap<&'static str, &'static Function>,
    /// The authorizer's, and any function's without its own below.
    pub deps: Deps,
    /// Each function's own wiring, keyed by its name, with SDK clients guarded by its grants
    /// (`Deps::for_function`), as Lambda gives each function its own role: a call one of them
    /// makes outside its grants fails here as it would in AWS. Empty: every function uses
    /// `deps` (the in-memory benchmark).
    pub function_deps: BTreeMap<&'static str, Deps>,
    /// Where the reference web client's files are (`None`: the API only).
    pub web_root: Option<PathBuf>,
    /// At most this many handler invocations at once (`PORTCULLIS_LOCAL_CONCURRENCY`), the
    /// others wait here, as requests beyond a function's reserved concurrency would. In AWS
    /// each Lambda environment serves one request; here one process serves them all, and a
    /// sign-in makes up to six AWS calls at once, so hundreds of simultaneous requests would
    /// put more calls in flight at the emulator than it answers within a call's timeout.
    /// `None`: no limit.
    pub concurrency: Option<Arc<tokio::sync::Semaphore>>,
    requests: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("function {0} is in the template but no handler is registered for it")]
    MissingHandler(String),
}

impl Gateway {
    pub fn new(
        routes: Vec<Route>,
        handlers: BTreeMap<&'static str, &'static Function>,
        deps: Deps,
    ) -> Result<Self, GatewayError> {
        if let Some(route) = routes
            .iter()
            .find(|r| !handlers.contains_key(r.function.as_str()))
        {
            return Err(GatewayError::MissingHandler(route.function.clone()));
        }
        Ok(Gateway {
            routes,
            handlers,
            deps,
            function_deps: BTreeMap::new(),
            web_root: None,
            concurrency: None,
            requests: AtomicU64::new(0),
        })
    }
}

/// Accepts connections until the process ends.
pub async fn serve(listener: TcpListener, gateway: Arc<Gateway>) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(dispatch(gateway, req, peer).await) }
            });
            if let Err(err) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %err, "connection closed with an error");
            }
        });
    }
}

type Answer = hyper::Response<Full<Bytes>>;

async fn dispatch(
    gateway: Arc<Gateway>,
    req: hyper::Request<HyperBody>,
    peer: SocketAddr,
) -> Answer {
    let started = std::time::Instant::now();
    let method = req.method().as_str().to_owned();
    // Log the matched route, never the raw path: path parameters (challenge ids) are secrets.
    let route = gateway
        .routes
        .iter()
        .find(|r| r.matches(&method, req.uri().path()).is_some())
        .map(|r| r.key())
        .unwrap_or_else(|| format!("{method} (no API route)"));
    let answer = route_request(&gateway, req, peer).await;
    tracing::info!(
        route,
        status = answer.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    answer
}

async fn route_request(
    gateway: &Arc<Gateway>,
    req: hyper::Request<HyperBody>,
    peer: SocketAddr,
) -> Answer {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let Some((route, params)) = gateway
        .routes
        .iter()
        .find_map(|r| r.matches(&method, &path).map(|p| (r.clone(), p)))
    else {
        // A known path with another method: 405 with the methods it has.
        let allowed: Vec<&str> = gateway
            .routes
            .iter()
            .filter(|r| r.matches(&r.method, &path).is_some())
            .map(|r| r.method.as_str())
            .collect();
        if allowed.is_empty() {
            if let Some(root) = gateway.web_root.as_deref()
                && crate::web::is_web_request(&method, &path)
                && let Some(page) = crate::web::serve(root, &method, &path).await
            {
                return page;
            }
            return problem(&ApiError::NotFound);
        }
        let mut answer = problem(&ApiError::MethodNotAllowed);
        if let Ok(value) = hyper::header::HeaderValue::from_str(&allowed.join(", ")) {
            answer.headers_mut().insert(hyper::header::ALLOW, value);
        }
        return answer;
    };
    let headers = req.headers().clone();
    let claims = if route.public {
        None
    } else {
        // The JWT authorizer: verify before the function runs; refuse with API Gateway's body.
        let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
        match portcullis::service::tokens::authenticate(
            &gateway.deps,
            authorization,
            &Default::default(),
        )
        .await
        {
            Ok(caller) => Some(event::authorizer_claims(&caller.claims)),
            Err(ApiError::ServiceUnavailable) => return problem(&ApiError::ServiceUnavailable),
            Err(_) => {
                return hyper::Response::builder()
                    .status(401)
                    .header("content-type", "application/json")
                    .header("www-authenticate", "Bearer")
                    .body(Full::new(Bytes::from_static(
                        br#"{"message":"Unauthorized"}"#,
                    )))
                    .unwrap_or_else(|_| problem(&ApiError::Unauthorized));
            }
        }
    };
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let body = match Limited::new(req.into_body(), GATEWAY_MAX_BODY)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return problem(&ApiError::PayloadTooLarge(GATEWAY_MAX_BODY)),
    };
    let n = gateway.requests.fetch_add(1, Ordering::Relaxed);
    let incoming = Incoming {
        method: &method,
        path: &path,
        query: query.as_deref(),
        headers: &headers,
        body: &body,
        source_ip: peer.ip().to_string(),
        host: &host,
        request_id: format!("local-{n}"),
        time_epoch_ms: gateway.deps.clock.now().secs() * 1000,
    };
    let event = event::build(&incoming, &route, &params, claims.as_ref());
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(request) => request,
        Err(err) => {
            tracing::error!(error = %err, "event did not parse");
            return problem(&ApiError::ServiceUnavailable);
        }
    };
    let Some(function) = gateway.handlers.get(route.function.as_str()).copied() else {
        return problem(&ApiError::NotFound);
    };
    let _permit = match &gateway.concurrency {
        Some(limit) => match limit.clone().acquire_owned().await {
            Ok(permit) => Some(permit),
            Err(_) => return problem(&ApiError::ServiceUnavailable),
        },
        None => None,
    };
    // Run in its own task so that a panic becomes a 503 here (Lambda would report an error).
    let task_gateway = gateway.clone();
    let response = tokio::spawn(async move {
        let deps = task_gateway
            .function_deps
            .get(function.name)
            .unwrap_or(&task_gateway.deps);
        portcullis_edge::dispatch(deps, request, function).await
    })
    .await;
    match response {
        Ok(response) => to_hyper(response),
        Err(err) => {
            tracing::error!(error = %err, function = route.function, "handler panicked");
            problem(&ApiError::ServiceUnavailable)
        }
    }
}

fn to_hyper(response: lambda_http::Response<Body>) -> Answer {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bin) => Bytes::from(bin),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}

fn problem(err: &ApiError) -> Answer {
    to_hyper(portcullis_edge::problem_response(err))
}
