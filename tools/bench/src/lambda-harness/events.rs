//! Each function's representative event, and the answer it must give.
//!
//! HTTP events are built by the local endpoint's own event builder
//! (`portcullis_local_gateway::event`, API Gateway HTTP API payload 2.0) for the route of the
//! template, so the harness hands the functions what `portcullis-local` does. Access tokens
//! for the protected routes are issued by the project's token code (`portcullis::crypto::jwt`)
//! with the signer the deps build from the env file, and the JWT authorizer's claims are
//! passed as `portcullis_local_gateway::event::authorizer_claims` shapes them.
//!
//! Every invocation gets its own user ID and source IP (from 198.18.0.0/15, the benchmarking
//! range), so lockouts and IP throttles never change the path being measured (the 5th failure
//! on one ID would answer `locked` without checking a password).

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use lambda_http::http::{HeaderMap, HeaderName, HeaderValue};
use portcullis::crypto::jwt::{self, ACR_MFA, AccessClaims, TokenSigner};
use portcullis::crypto::{random_bytes, random_id, random_token};
use portcullis::{Clock as _, SystemClock};
use portcullis_local_gateway::event::{Incoming, authorizer_claims, build};
use portcullis_local_gateway::routes::Route;
use serde_json::{Map, Value, json};

use crate::runtime_api::{hex, request_id};

pub const ACCOUNT_ID: &str = "123456789012";
/// Not a browser: never refused as outdated.
const USER_AGENT: &str = "portcullis-lambda-harness/1.0";
const HOST: &str = "auth.portcullis.example";

/// What a function is sent, and which answers pass.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// The request, as the report describes it.
    pub describe: &'static str,
    /// The accepted `statusCode` values; `None` for an answer that is not an HTTP response.
    pub expect: &'static [Option<u64>],
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    SignIn,
    SendCode,
    Verify,
    Refresh,
    Forgot,
    /// A protected `GET`: route, path parameters, roles of the token.
    Authed(
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
    ),
    Sender,
    Sweep,
}

/// The representative request of the function whose binary is `binary`.
pub fn scenario(binary: &str) -> Option<Scenario> {
    let (describe, expect, kind): (_, &'static [Option<u64>], _) = match binary {
        "sign-in" => (
            "`POST /v1/sign-in`, unknown user with a password (argon2id on the dummy hash, \
             failure counted)",
            &[Some(401)],
            Kind::SignIn,
        ),
        "send-code" => (
            "`POST /v1/sign-in/{id}/codes` {method: sms}, unknown challenge",
            &[Some(410), Some(404)],
            Kind::SendCode,
        ),
        "verify" => (
            "`POST /v1/sign-in/{id}/verify` {method: totp}, unknown challenge",
            &[Some(410), Some(404)],
            Kind::Verify,
        ),
        "tokens" => (
            "`POST /v1/tokens/refresh`, well-formed refresh token of an unknown session",
            &[Some(401)],
            Kind::Refresh,
        ),
        "recovery-codes" => (
            "`GET /v1/me/recovery-codes`, valid access token (KMS-signed) of no live session \
             (401 after the session read: revocation is immediate)",
            &[Some(401)],
            Kind::Authed("/v1/me/recovery-codes", &[], &[]),
        ),
        "factors" => (
            "`GET /v1/me/factors`, valid access token of no live session (401 after the \
             session read)",
            &[Some(401)],
            Kind::Authed("/v1/me/factors", &[], &[]),
        ),
        "devices" => (
            "`GET /v1/me/devices`, valid access token of no live session (401 after the \
             session read)",
            &[Some(401)],
            Kind::Authed("/v1/me/devices", &[], &[]),
        ),
        "password" => (
            "`POST /v1/password/forgot` for an unknown user ID (counted, nothing sent)",
            &[Some(202)],
            Kind::Forgot,
        ),
        "admin" => (
            "`GET /v1/admin/users/nobody/events`, valid token with role admin of no live \
             session (401 after the session read)",
            &[Some(401)],
            Kind::Authed(
                "/v1/admin/users/{user_id}/events",
                &[("user_id", "nobody")],
                &["admin"],
            ),
        ),
        "sender" => (
            "SQS batch of one outbox alert for an unknown user ID (read, dropped, no send)",
            &[None],
            Kind::Sender,
        ),
        "inactive-sweep" => (
            "EventBridge scheduled event (scans the whole table on the emulator)",
            &[None],
            Kind::Sweep,
        ),
        _ => return None,
    };
    Some(Scenario {
        describe,
        expect,
        kind,
    })
}

impl Scenario {
    /// Whether the function needs an access token (the harness then needs a signer).
    pub fn needs_token(&self) -> bool {
        matches!(self.kind, Kind::Authed(..))
    }
}

/// Builds the events of one run.
pub struct Events {
    run: String,
    counter: u32,
    ip_base: u32,
    routes: Vec<Route>,
    signer: Option<Arc<dyn TokenSigner>>,
    issuer: String,
    audience: String,
    /// One token per set of roles, for the whole run (verification only checks `exp`).
    tokens: HashMap<&'static [&'static str], (String, Map<String, Value>)>,
}

impl Events {
    /// `routes` from the template; `signer` (with the settings' issuer and audience) when a
    /// protected route is measured.
    pub fn new(
        routes: Vec<Route>,
        signer: Option<Arc<dyn TokenSigner>>,
        issuer: String,
        audience: String,
    ) -> Self {
        let ip = random_bytes::<2>();
        Events {
            run: hex(&random_bytes::<4>()),
            counter: 0,
            ip_base: u32::from(u16::from_be_bytes(ip)),
            routes,
            signer,
            issuer,
            audience,
            tokens: HashMap::new(),
        }
    }

    /// The next invocation's number and source IP, from 198.18.0.0/15.
    fn next(&mut self) -> (u32, String) {
        self.counter += 1;
        (self.counter, source_ip(self.ip_base + self.counter))
    }

    /// The event of invocation `n` (counted by the harness) of `scenario`.
    pub async fn make(&mut self, scenario: &Scenario, n: u32) -> Result<Value, String> {
        let unknown = |run: &str, n: u32| format!("nobody-{run}-{n}@example.com");
        match scenario.kind {
            Kind::SignIn => {
                let (n, ip) = self.next();
                let body = json!({
                    "user_id": unknown(&self.run, n),
                    "password": "correct horse battery staple",
                });
                self.http("POST", "/v1/sign-in", &[], Some(body), ip, None)
            }
            Kind::SendCode => {
                let (_, ip) = self.next();
                let challenge = random_token();
                let params = [("challenge_id", challenge.as_str())];
                let body = json!({"method": "sms"});
                self.http(
                    "POST",
                    "/v1/sign-in/{challenge_id}/codes",
                    &params,
                    Some(body),
                    ip,
                    None,
                )
            }
            Kind::Verify => {
                let (_, ip) = self.next();
                let challenge = random_token();
                let params = [("challenge_id", challenge.as_str())];
                let body = json!({"method": "totp", "code": "123456"});
                self.http(
                    "POST",
                    "/v1/sign-in/{challenge_id}/verify",
                    &params,
                    Some(body),
                    ip,
                    None,
                )
            }
            Kind::Refresh => {
                let (n, ip) = self.next();
                let user = URL_SAFE_NO_PAD.encode(unknown(&self.run, n));
                let token = format!("{user}.{}.{}", random_id("s"), random_token());
                let body = json!({"refresh_token": token});
                self.http("POST", "/v1/tokens/refresh", &[], Some(body), ip, None)
            }
            Kind::Forgot => {
                let (n, ip) = self.next();
                let body = json!({"user_id": unknown(&self.run, n)});
                self.http("POST", "/v1/password/forgot", &[], Some(body), ip, None)
            }
            Kind::Authed(path, params, roles) => {
                let (_, ip) = self.next();
                let (token, claims) = self.token(roles).await?;
                self.http("GET", path, params, None, ip, Some((&token, &claims)))
            }
            Kind::Sender => {
                let body = json!({
                    "kind": "alert",
                    "user_id": format!("harness-nobody-{n}@example.com"),
                    "alert": {"type": "lock_started"},
                });
                serde_json::to_value(sqs_event(&body.to_string())).map_err(|e| e.to_string())
            }
            Kind::Sweep => Ok(scheduled_event()),
        }
    }

    /// The access token for `roles` (issued once) and its claims as the authorizer passes them.
    async fn token(
        &mut self,
        roles: &'static [&'static str],
    ) -> Result<(String, Map<String, Value>), String> {
        if let Some(found) = self.tokens.get(roles) {
            return Ok(found.clone());
        }
        let Some(signer) = &self.signer else {
            return Err("no token signer (a protected route needs one)".into());
        };
        let now = now_ms() / 1000;
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: format!("nobody-{}@example.com", self.run),
            aud: self.audience.clone(),
            iat: now,
            // Long enough for the whole run (verification only checks exp > now).
            exp: now + 3600,
            auth_time: now,
            amr: vec!["pwd".into(), "otp".into(), "mfa".into()],
            acr: ACR_MFA.into(),
            sid: random_id("s"),
            jti: URL_SAFE_NO_PAD.encode(random_bytes::<16>()),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            token_use: "access".into(),
        };
        let token = jwt::issue(signer.as_ref(), &claims)
            .await
            .map_err(|e| format!("issuing an access token: {e}"))?;
        let found = (token, authorizer_claims(&claims));
        self.tokens.insert(roles, found.clone());
        Ok(found)
    }

    /// An API Gateway HTTP API (payload 2.0) event for `method route_path` of the template.
    fn http(
        &self,
        method: &str,
        route_path: &str,
        params: &[(&str, &str)],
        body: Option<Value>,
        source_ip: String,
        bearer: Option<(&str, &Map<String, Value>)>,
    ) -> Result<Value, String> {
        let route = self
            .routes
            .iter()
            .find(|r| r.method == method && r.path == route_path)
            .ok_or_else(|| format!("the template has no route {method} {route_path}"))?;
        let raw_path = params.iter().fold(route_path.to_owned(), |path, (k, v)| {
            path.replace(&format!("{{{k}}}"), v)
        });
        let now = now_ms();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut headers = HeaderMap::new();
        let trace = format!("Root=1-{:08x}-{}", now / 1000, hex(&random_bytes::<12>()));
        let mut fields = vec![
            ("accept", "application/json".to_owned()),
            ("host", HOST.to_owned()),
            ("user-agent", USER_AGENT.to_owned()),
            ("x-forwarded-for", source_ip.clone()),
            ("x-forwarded-port", "443".to_owned()),
            ("x-forwarded-proto", "https".to_owned()),
            ("x-amzn-trace-id", trace),
        ];
        if !body.is_empty() {
            fields.push(("content-type", "application/json".to_owned()));
            fields.push(("content-length", body.len().to_string()));
        }
        if let Some((token, _)) = bearer {
            fields.push(("authorization", format!("Bearer {token}")));
        }
        for (name, value) in fields {
            let value = HeaderValue::from_str(&value).map_err(|e| format!("{name}: {e}"))?;
            headers.insert(HeaderName::from_static(name), value);
        }
        let incoming = Incoming {
            method,
            path: &raw_path,
            query: None,
            headers: &headers,
            body: body.as_bytes(),
            source_ip,
            host: HOST,
            request_id: request_id(),
            time_epoch_ms: now,
        };
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Ok(build(&incoming, route, &params, bearer.map(|(_, c)| c)))
    }
}

/// The `n`th address of 198.18.0.0/15 (wrapping).
fn source_ip(n: u32) -> String {
    let n = n % (1 << 17);
    format!("198.{}.{}.{}", 18 + (n >> 16), (n >> 8) & 0xFF, n & 0xFF)
}

/// The wall clock in milliseconds, at the project clock's resolution (whole seconds, as
/// `portcullis-local` stamps its events).
fn now_ms() -> i64 {
    SystemClock.now().secs().saturating_mul(1000)
}

/// An EventBridge Scheduler event, as the inactive sweep's schedule sends it.
fn scheduled_event() -> Value {
    let time = aws_sdk_kms::primitives::DateTime::from_secs(now_ms() / 1000)
        .fmt(aws_sdk_kms::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default();
    json!({
        "version": "0",
        "id": request_id(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": time,
        "region": "us-east-1",
        "resources": [format!("arn:aws:scheduler:us-east-1:{ACCOUNT_ID}:schedule/default/inactive-sweep")],
        "detail": {},
    })
}

/// One SQS message, as the Lambda event source mapping delivers it.
fn sqs_event(body: &str) -> SqsEvent {
    let mut message = SqsMessage::default();
    let id = request_id();
    message.receipt_handle = Some(format!("harness-{id}"));
    message.message_id = Some(id);
    message.body = Some(body.to_owned());
    message.attributes = HashMap::from([("ApproximateReceiveCount".into(), "1".into())]);
    message.event_source = Some("aws:sqs".into());
    message.event_source_arn = Some(format!(
        "arn:aws:sqs:us-east-1:{ACCOUNT_ID}:portcullis-outbox"
    ));
    message.aws_region = Some("us-east-1".into());
    let mut event = SqsEvent::default();
    event.records = vec![message];
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis::crypto::jwt::LocalSigner;
    use portcullis_local_gateway::{TEMPLATE, routes};

    fn events() -> Events {
        Events::new(
            routes::from_template(TEMPLATE).unwrap(),
            Some(Arc::new(LocalSigner::random())),
            "https://issuer.example".into(),
            "portcullis".into(),
        )
    }

    #[test]
    fn source_ips_stay_in_the_benchmarking_range() {
        assert_eq!(source_ip(0), "198.18.0.0");
        assert_eq!(source_ip(258), "198.18.1.2");
        assert_eq!(source_ip((1 << 16) + 1), "198.19.0.1");
        assert_eq!(source_ip(1 << 17), "198.18.0.0");
    }

    #[test]
    fn every_function_of_the_template_has_a_scenario() {
        let specs = crate::setup::template_functions(TEMPLATE).unwrap();
        for spec in specs {
            assert!(scenario(&spec.binary).is_some(), "{}", spec.binary);
        }
        assert!(scenario("nope").is_none());
    }

    #[tokio::test]
    async fn sign_in_events_are_api_gateway_events_with_their_own_user_and_ip() {
        let mut events = events();
        let s = scenario("sign-in").unwrap();
        let a = events.make(&s, 1).await.unwrap();
        let b = events.make(&s, 2).await.unwrap();
        assert_eq!(a["version"], "2.0");
        assert_eq!(a["routeKey"], "POST /v1/sign-in");
        assert_eq!(a["requestContext"]["http"]["userAgent"], USER_AGENT);
        assert_eq!(a["headers"]["content-type"], "application/json");
        let ip = |e: &Value| {
            e["requestContext"]["http"]["sourceIp"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert!(ip(&a).starts_with("198.1"));
        assert_ne!(ip(&a), ip(&b));
        assert_eq!(a["headers"]["x-forwarded-for"], ip(&a).as_str());
        let user = |e: &Value| {
            let body: Value = serde_json::from_str(e["body"].as_str().unwrap()).unwrap();
            body["user_id"].as_str().unwrap().to_owned()
        };
        assert_ne!(user(&a), user(&b));
        // lambda_http reads it as Lambda would.
        lambda_http::request::from_str(&a.to_string()).unwrap();
    }

    #[tokio::test]
    async fn protected_events_carry_a_verifiable_token_and_the_authorizer_claims() {
        let signer = Arc::new(LocalSigner::random());
        let mut events = Events::new(
            routes::from_template(TEMPLATE).unwrap(),
            Some(signer.clone()),
            "https://issuer.example".into(),
            "portcullis".into(),
        );
        let s = scenario("admin").unwrap();
        assert!(s.needs_token());
        let event = events.make(&s, 1).await.unwrap();
        assert_eq!(event["routeKey"], "GET /v1/admin/users/{user_id}/events");
        assert_eq!(event["rawPath"], "/v1/admin/users/nobody/events");
        assert_eq!(event["pathParameters"]["user_id"], "nobody");
        let claims = &event["requestContext"]["authorizer"]["jwt"]["claims"];
        assert_eq!(claims["roles"], "[admin]");
        assert_eq!(claims["amr"], "[pwd otp mfa]");
        let bearer = event["headers"]["authorization"].as_str().unwrap();
        let token = bearer.strip_prefix("Bearer ").unwrap();
        assert_eq!(jwt::kid_of(token).as_deref(), Some(signer.key_id()));
        // One token per role set for the run.
        let again = events.make(&s, 2).await.unwrap();
        assert_eq!(again["headers"]["authorization"], bearer);
        lambda_http::request::from_str(&event.to_string()).unwrap();
    }

    #[tokio::test]
    async fn the_other_events_are_sqs_and_scheduled_events() {
        let mut events = events();
        let sqs = events.make(&scenario("sender").unwrap(), 7).await.unwrap();
        let record = &sqs["Records"][0];
        assert_eq!(record["eventSource"], "aws:sqs");
        let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["user_id"], "harness-nobody-7@example.com");
        serde_json::from_value::<SqsEvent>(sqs.clone()).unwrap();
        let sweep = events
            .make(&scenario("inactive-sweep").unwrap(), 1)
            .await
            .unwrap();
        assert_eq!(sweep["detail-type"], "Scheduled Event");
        assert!(sweep["time"].as_str().unwrap().ends_with('Z'));
    }
}
