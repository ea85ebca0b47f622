//! The Lambda Runtime API, reduced to what measuring needs (what `cargo lambda watch` serves):
//! one endpoint on a free loopback port per process of a function, speaking HTTP/1.1 (hyper)
//! to the `lambda_runtime` crate inside the binary.
//!
//! ```text
//! GET  /2018-06-01/runtime/invocation/next            long poll; answers one queued event
//! POST /2018-06-01/runtime/invocation/{id}/response   the function's answer
//! POST /2018-06-01/runtime/invocation/{id}/error      an invocation error
//! POST /2018-06-01/runtime/init/error                 an init error
//! ```
//!
//! The harness queues events ([`RuntimeApi::enqueue`]) and awaits each one's [`Answer`], which
//! carries the two instants the measurements are made of: when the event was handed out and
//! when its answer had been read.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use portcullis::crypto::random_bytes;
use portcullis::{Clock as _, SystemClock};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

const PREFIX: &str = "/2018-06-01/runtime";

/// How the function answered an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Response,
    Error,
}

/// One invocation's answer, with the instants it was handed out and answered.
#[derive(Debug)]
pub struct Answer {
    pub outcome: Outcome,
    pub payload: Bytes,
    pub handed_out: Instant,
    pub answered: Instant,
}

/// A queued invocation: its answer arrives on `answer`.
#[derive(Debug)]
pub struct Pending {
    pub answer: oneshot::Receiver<Answer>,
}

/// What a request to the endpoint asks for.
#[derive(Debug, PartialEq, Eq)]
enum Call<'a> {
    Next,
    Answer(&'a str, Outcome),
    InitError,
    NotFound,
}

fn call<'a>(method: &Method, path: &'a str) -> Call<'a> {
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Call::NotFound;
    };
    match (method, rest) {
        (&Method::GET, "/invocation/next") => Call::Next,
        (&Method::POST, "/init/error") => Call::InitError,
        (&Method::POST, rest) => {
            let answer = rest
                .strip_prefix("/invocation/")
                .and_then(|r| r.split_once('/'))
                .and_then(|(id, kind)| match kind {
                    "response" => Some((id, Outcome::Response)),
                    "error" => Some((id, Outcome::Error)),
                    _ => None,
                });
            match answer {
                Some((id, outcome)) if !id.is_empty() => Call::Answer(id, outcome),
                _ => Call::NotFound,
            }
        }
        _ => Call::NotFound,
    }
}

/// An invocation handed out or waiting to be: its answer goes to `reply` (taken once).
struct Slot {
    handed_out: Option<Instant>,
    reply: Option<oneshot::Sender<Answer>>,
}

struct State {
    function_arn: String,
    timeout: Duration,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, Bytes)>>,
    slots: Mutex<HashMap<String, Slot>>,
    init_error: watch::Sender<Option<String>>,
}

/// One Runtime API endpoint for one process of one function; closed when dropped.
pub struct RuntimeApi {
    state: Arc<State>,
    queue: mpsc::UnboundedSender<(String, Bytes)>,
    /// `127.0.0.1:port`, for `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    /// Listens on a free loopback port. `timeout` gives each invocation's deadline header.
    pub async fn start(function_arn: &str, timeout: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let (queue, receiver) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            function_arn: function_arn.to_owned(),
            timeout,
            queue: tokio::sync::Mutex::new(receiver),
            slots: Mutex::new(HashMap::new()),
            init_error: watch::Sender::new(None),
        });
        let server = tokio::spawn(serve(listener, state.clone()));
        Ok(RuntimeApi {
            state,
            queue,
            address,
            server,
        })
    }

    /// Queues `event` for the next `GET …/invocation/next`.
    pub fn enqueue(&self, event: &serde_json::Value) -> Pending {
        let request_id = request_id();
        let (reply, answer) = oneshot::channel();
        let slot = Slot {
            handed_out: None,
            reply: Some(reply),
        };
        if let Ok(mut slots) = self.state.slots.lock() {
            slots.insert(request_id.clone(), slot);
        }
        let _ = self
            .queue
            .send((request_id, Bytes::from(event.to_string())));
        Pending { answer }
    }

    /// The init error the function reported, when it does (watch it with `changed`).
    pub fn init_error(&self) -> watch::Receiver<Option<String>> {
        self.state.init_error.subscribe()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        // Ends the accept loop, and with its JoinSet every connection (a long poll included).
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        // Small writes go out at once (no Nagle wait on the client's delayed ACK).
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, request).await) }
            });
            // A killed function drops its connection: not an error of the measurement.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

fn reply(status: StatusCode, body: &'static [u8]) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

async fn handle(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    match call(request.method(), &path) {
        Call::NotFound => reply(StatusCode::NOT_FOUND, br#"{"errorMessage":"not found"}"#),
        Call::Next => next(state).await,
        Call::InitError => {
            let body = request.into_body().collect().await.map(|b| b.to_bytes());
            let text = String::from_utf8_lossy(&body.unwrap_or_default()).into_owned();
            state.init_error.send_replace(Some(text));
            reply(StatusCode::ACCEPTED, br#"{"status":"OK"}"#)
        }
        Call::Answer(id, outcome) => {
            let Ok(body) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    br#"{"errorMessage":"unreadable body"}"#,
                );
            };
            let answered = Instant::now();
            let taken = state.slots.lock().ok().and_then(|mut slots| {
                let slot = slots.get_mut(id)?;
                Some((slot.handed_out?, slot.reply.take()?))
            });
            let Some((handed_out, sender)) = taken else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    br#"{"errorMessage":"unknown or answered invocation"}"#,
                );
            };
            let _ = sender.send(Answer {
                outcome,
                payload: body,
                handed_out,
                answered,
            });
            reply(StatusCode::ACCEPTED, br#"{"status":"OK"}"#)
        }
    }
}

/// The long poll: waits for the next queued event and hands it out with the invocation
/// headers `lambda_runtime` reads.
async fn next(state: &State) -> Response<Full<Bytes>> {
    let queued = state.queue.lock().await.recv().await;
    let Some((request_id, event)) = queued else {
        return reply(StatusCode::GONE, br#"{"errorMessage":"closed"}"#);
    };
    let now = SystemClock.now().secs();
    let deadline_ms = now
        .saturating_add(i64::try_from(state.timeout.as_secs()).unwrap_or(i64::MAX))
        .saturating_mul(1000);
    let trace = format!(
        "Root=1-{now:08x}-{};Parent={};Sampled=0",
        hex(&random_bytes::<12>()),
        hex(&random_bytes::<8>())
    );
    let mut response = Response::new(Full::new(event));
    let headers = [
        ("lambda-runtime-aws-request-id", request_id.clone()),
        ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            state.function_arn.clone(),
        ),
        ("lambda-runtime-trace-id", trace),
        ("content-type", "application/json".to_owned()),
    ];
    for (name, value) in headers {
        if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(hyper::header::HeaderName::from_static(name), value);
        }
    }
    if let Ok(mut slots) = state.slots.lock()
        && let Some(slot) = slots.get_mut(&request_id)
    {
        slot.handed_out = Some(Instant::now());
    }
    response
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random (version 4) UUID, as Lambda's request IDs are.
pub fn request_id() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[test]
    fn the_paths_of_the_runtime_api() {
        let p = |m: Method, path: &str| format!("{:?}", call(&m, path));
        for (m, path, want) in [
            (Method::GET, "/2018-06-01/runtime/invocation/next", "Next"),
            (
                Method::POST,
                "/2018-06-01/runtime/invocation/abc/response",
                "Answer(\"abc\", Response)",
            ),
            (
                Method::POST,
                "/2018-06-01/runtime/invocation/abc/error",
                "Answer(\"abc\", Error)",
            ),
            (Method::POST, "/2018-06-01/runtime/init/error", "InitError"),
        ] {
            assert_eq!(p(m, path), want, "{path}");
        }
        for (m, path) in [
            (Method::POST, "/2018-06-01/runtime/invocation/next"),
            (Method::GET, "/2018-06-01/runtime/invocation/abc/response"),
            (Method::POST, "/2018-06-01/runtime/invocation//response"),
            (Method::POST, "/2018-06-01/runtime/invocation/abc/other"),
            (Method::GET, "/elsewhere"),
        ] {
            assert_eq!(p(m, path), "NotFound");
        }
    }

    #[test]
    fn request_ids_are_uuids() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.as_bytes()[14], b'4');
        assert_ne!(id, request_id());
    }

    /// One HTTP/1.1 exchange on a new connection; returns the whole answer as text.
    async fn exchange(address: &str, request: String) -> String {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    fn post(path: &str, body: &str) -> String {
        format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn an_event_is_handed_out_and_its_answer_comes_back_once() {
        let api = RuntimeApi::start(
            "arn:aws:lambda:us-east-1:1:function:F",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let pending = api.enqueue(&serde_json::json!({"hello": "world"}));
        let next = exchange(
            &api.address,
            "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
                .into(),
        )
        .await;
        assert!(next.starts_with("HTTP/1.1 200"), "{next}");
        assert!(next.ends_with(r#"{"hello":"world"}"#), "{next}");
        assert!(next.contains(
            "lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:1:function:F"
        ));
        assert!(next.contains("lambda-runtime-trace-id: Root=1-"));
        let id = next
            .lines()
            .find_map(|l| l.strip_prefix("lambda-runtime-aws-request-id: "))
            .unwrap()
            .trim()
            .to_owned();
        let path = format!("/2018-06-01/runtime/invocation/{id}/response");
        let first = exchange(&api.address, post(&path, r#"{"statusCode":401}"#)).await;
        assert!(first.starts_with("HTTP/1.1 202"), "{first}");
        let again = exchange(&api.address, post(&path, "{}")).await;
        assert!(again.starts_with("HTTP/1.1 400"), "{again}");
        let answer = pending.answer.await.unwrap();
        assert_eq!(answer.outcome, Outcome::Response);
        assert_eq!(&answer.payload[..], br#"{"statusCode":401}"#);
        assert!(answer.answered >= answer.handed_out);
    }

    #[tokio::test]
    async fn an_init_error_is_reported() {
        let api = RuntimeApi::start("arn", Duration::from_secs(10))
            .await
            .unwrap();
        let mut errors = api.init_error();
        let out = exchange(
            &api.address,
            post(
                "/2018-06-01/runtime/init/error",
                r#"{"errorMessage":"no table"}"#,
            ),
        )
        .await;
        assert!(out.starts_with("HTTP/1.1 202"), "{out}");
        errors.changed().await.unwrap();
        assert_eq!(
            errors.borrow().as_deref(),
            Some(r#"{"errorMessage":"no table"}"#)
        );
    }
}
