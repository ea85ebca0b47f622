//! Helpers for the end-to-end tests: they drive the local HTTP endpoint (`PORTCULLIS_API_URL`)
//! that serves the functions against the AWS emulator, and create users with the operator CLI
//! (`PORTCULLIS_ADMIN_BIN`). `scripts/test.sh` starts both and sets these variables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::Value;

/// The endpoint under test, or `None` (with a note) when the stack is not running. With
/// `PORTCULLIS_REQUIRE_EMULATOR=1` a missing endpoint fails the test instead.
pub fn api() -> Option<Api> {
    match std::env::var("PORTCULLIS_API_URL") {
        Ok(base) => Some(Api {
            base: base.trim_end_matches('/').to_owned(),
            agent: agent(),
        }),
        Err(_) => {
            assert!(
                std::env::var("PORTCULLIS_REQUIRE_EMULATOR").as_deref() != Ok("1"),
                "PORTCULLIS_REQUIRE_EMULATOR=1 but PORTCULLIS_API_URL is not set"
            );
            eprintln!(
                "note: PORTCULLIS_API_URL not set; end-to-end test skipped (run scripts/test.sh)"
            );
            None
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

pub struct Api {
    pub base: String,
    agent: ureq::Agent,
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// The `detail` of a problem+json answer (the test fails without one).
    pub fn detail(&self) -> String {
        let body = self.json();
        body["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("a problem detail: {self:?}"))
            .to_owned()
    }

    /// Asserts a problem+json answer with this status and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        let body = self.json();
        assert_eq!(body["code"], code, "{self:?}");
        assert_eq!(body["status"], status);
        for member in ["type", "title", "detail"] {
            assert!(
                body[member].is_string(),
                "problem member {member} missing: {self:?}"
            );
        }
    }
}

impl Api {
    /// Sends raw bytes with the given headers.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let url = format!("{}{}", self.base, path);
        let mut builder = ureq::http::Request::builder().method(method).uri(&url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(body.to_vec()).unwrap();
        let mut response = self.agent.run(request).unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header("content-type").unwrap_or_default();
        let retry_after = header("retry-after");
        Answer {
            status: response.status().as_u16(),
            content_type,
            retry_after,
            text: response.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Answer {
        self.send(
            "POST",
            path,
            &[("content-type", "application/json"), ("user-agent", UA)],
            body.to_string().as_bytes(),
        )
    }

    pub fn sign_in(&self, user_id: &str, password: &str) -> Answer {
        self.post_json(
            "/v1/sign-in",
            &serde_json::json!({"user_id": user_id, "password": password}),
        )
    }
}

/// A current desktop browser.
pub const UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// A user ID no other test uses.
pub fn unique(prefix: &str) -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    format!(
        "{prefix}-{:x}-{n}-{}@e2e.example",
        h.finish(),
        std::process::id()
    )
}

/// Creates a user with the operator CLI (the same binary an operator runs).
pub fn create_user(user_id: &str, password: &str, roles: &[&str]) {
    let bin = std::env::var("PORTCULLIS_ADMIN_BIN").expect("PORTCULLIS_ADMIN_BIN");
    let mut cmd = Command::new(bin);
    cmd.args([
        "create-user",
        "--user-id",
        user_id,
        "--email",
        user_id,
        "--password-stdin",
    ]);
    for role in roles {
        cmd.args(["--role", role]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "create-user failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        !printed.contains(password),
        "the CLI must not echo a password it was given"
    );
}

/// The password the tests create their users with.
pub const PASSWORD: &str = "a perfectly good passphrase";

/// Wall-clock time in Unix seconds: what an authenticator app uses (the stack runs on the real
/// clock).
pub fn now() -> u64 {
    #[allow(clippy::disallowed_methods)]
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Api {
    /// Signs in with a password and returns the challenge ID of the answer (the test fails
    /// without one).
    pub fn challenge(&self, user_id: &str, password: &str) -> String {
        let answer = self.sign_in(user_id, password).json();
        answer["challenge_id"]
            .as_str()
            .unwrap_or_else(|| panic!("a challenge: {answer}"))
            .to_owned()
    }

    /// Asks for a one-time code by `method` (`sms`, `voice`, `email`) in a sign-in challenge.
    pub fn send_code(&self, challenge: &str, method: &str) -> Answer {
        self.post_json(
            &format!("/v1/sign-in/{challenge}/codes"),
            &serde_json::json!({"method": method}),
        )
    }

    /// Answers the second step of a sign-in challenge with a code by `method`.
    pub fn verify_code(&self, challenge: &str, method: &str, code: &str) -> Answer {
        self.post_json(
            &format!("/v1/sign-in/{challenge}/verify"),
            &serde_json::json!({"method": method, "code": code}),
        )
    }

    /// Enrols `phone` for codes by `delivery` inside a first sign-in.
    pub fn enrol_phone(&self, challenge: &str, phone: &str, delivery: &str) -> Answer {
        self.post_json(
            &format!("/v1/sign-in/{challenge}/factors/phone"),
            &serde_json::json!({"phone": phone, "delivery": delivery}),
        )
    }

    /// Adds a phone (codes by `delivery`) from a session.
    pub fn add_phone(&self, token: &str, phone: &str, delivery: &str) -> Answer {
        self.post_auth(
            "/v1/me/factors/phone",
            token,
            &serde_json::json!({"phone": phone, "delivery": delivery}),
        )
    }

    /// An admin's invitation of a user (`POST /v1/admin/users`).
    pub fn invite(&self, token: &str, body: &Value) -> Answer {
        self.post_auth("/v1/admin/users", token, body)
    }

    /// Activates the factor enrolled inside a first sign-in with its first code.
    pub fn verify_enrolment(&self, challenge: &str, factor: &str, code: &str) -> Answer {
        self.post_json(
            &format!("/v1/sign-in/{challenge}/factors/{factor}/verify"),
            &serde_json::json!({"code": code}),
        )
    }
}

/// A user (created with the CLI, with `roles`) who enrols a fresh phone in the first sign-in
/// and so is signed in with MFA just now: the sign-in answer (tokens), and the phone.
pub fn signed_in_with_phone(api: &Api, user: &str, password: &str, roles: &[&str]) -> Value {
    signed_in_with_phone_number(api, user, password, roles).0
}

/// As [`signed_in_with_phone`], also returning the enrolled number.
pub fn signed_in_with_phone_number(
    api: &Api,
    user: &str,
    password: &str,
    roles: &[&str],
) -> (Value, String) {
    let phone = fresh_phone();
    let done = signed_in_by_phone(api, user, password, roles, &phone, "sms");
    (done, phone)
}

/// A user (created with the CLI, with `roles`) who enrols `phone` for codes by `delivery`
/// (`sms` or `voice`) in the first sign-in, with the code read back from the emulator: the
/// sign-in answer (tokens).
pub fn signed_in_by_phone(
    api: &Api,
    user: &str,
    password: &str,
    roles: &[&str],
    phone: &str,
    delivery: &str,
) -> Value {
    create_user(user, password, roles);
    let challenge = api.challenge(user, password);
    let seen = delivered_to(phone, delivery);
    let enrol = api.enrol_phone(&challenge, phone, delivery);
    assert_eq!(enrol.status, 201, "{enrol:?}");
    let factor = enrol.json()["factor_id"].as_str().unwrap().to_owned();
    let code = next_code(phone, delivery, seen);
    let done = api.verify_enrolment(&challenge, &factor, &code);
    assert_eq!(done.status, 200, "{done:?}");
    done.json()
}

/// A new user (ID from `prefix`, [`PASSWORD`], no roles) who enrolled a fresh phone for codes
/// by `delivery` in the first sign-in: the user ID, the phone and the sign-in answer (tokens).
pub fn user_with_phone(api: &Api, prefix: &str, delivery: &str) -> (String, String, Value) {
    let user = unique(prefix);
    let phone = fresh_phone();
    let tokens = signed_in_by_phone(api, &user, PASSWORD, &[], &phone, delivery);
    (user, phone, tokens)
}

/// Opens a sign-in challenge (with [`PASSWORD`]) and has a text sent to `phone`: the challenge
/// and the code.
pub fn challenge_with_code(api: &Api, user: &str, phone: &str) -> (String, String) {
    let challenge = api.challenge(user, PASSWORD);
    let seen = sms_to(phone).len();
    let sent = api.send_code(&challenge, "sms");
    assert_eq!(sent.status, 202, "{sent:?}");
    (challenge, next_sms_code(phone, seen))
}

/// A user (created with the CLI, no roles) who enrols an authenticator app in the first
/// sign-in with the code of the time `at` (Unix seconds): the sign-in answer (tokens and
/// recovery codes) and the app's secret.
pub fn signed_in_with_authenticator(
    api: &Api,
    user: &str,
    password: &str,
    at: u64,
) -> (Value, Vec<u8>) {
    create_user(user, password, &[]);
    let challenge = api.challenge(user, password);
    let enrol = api.post_json(
        &format!("/v1/sign-in/{challenge}/factors/totp"),
        &serde_json::json!({}),
    );
    assert_eq!(enrol.status, 201, "{enrol:?}");
    let body = enrol.json();
    let secret = base32_decode(body["secret"].as_str().unwrap());
    let factor = body["factor_id"].as_str().unwrap();
    let done = api.verify_enrolment(&challenge, factor, &independent_totp(&secret, at));
    assert_eq!(done.status, 200, "{done:?}");
    (done.json(), secret)
}

/// How many messages by `delivery` (`voice`: calls; anything else: texts) `phone` has had.
fn delivered_to(phone: &str, delivery: &str) -> usize {
    if delivery == "voice" {
        voice_to(phone).len()
    } else {
        sms_to(phone).len()
    }
}

/// Waits for the code of the next message by `delivery` to `phone` after the `seen` first
/// ones: a text, or exactly one new voice call.
pub fn next_code(phone: &str, delivery: &str, seen: usize) -> String {
    if delivery != "voice" {
        return next_sms_code(phone, seen);
    }
    let calls = next_voice_call(phone, seen);
    assert_eq!(calls.len(), seen + 1);
    calls.last().unwrap()["code"].as_str().unwrap().to_owned()
}

/// The access token of a sign-in answer (the test fails without one).
pub fn access_token(answer: &Value) -> String {
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("an access token: {answer}"))
        .to_owned()
}

/// A wrong code of the same shape as `code` (six digits): the next number.
pub fn wrong_code(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

/// The token of the link (`…token=<token>`) in an email's body.
pub fn link_token(body: &str) -> String {
    body.split("token=")
        .nth(1)
        .unwrap()
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\\')
        .next()
        .unwrap()
        .to_owned()
}

/// The string member `key` of every item of the array `list` (the test fails on anything else).
pub fn strings_of<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item[key].as_str().unwrap())
        .collect()
}

impl Api {
    pub fn delete_auth(&self, path: &str, token: &str) -> Answer {
        let auth = format!("Bearer {token}");
        self.send(
            "DELETE",
            path,
            &[("user-agent", UA), ("authorization", &auth)],
            b"",
        )
    }

    pub fn post_auth(&self, path: &str, token: &str, body: &Value) -> Answer {
        let auth = format!("Bearer {token}");
        self.send(
            "POST",
            path,
            &[
                ("content-type", "application/json"),
                ("user-agent", UA),
                ("authorization", &auth),
            ],
            body.to_string().as_bytes(),
        )
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("user-agent", UA)];
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        self.send("GET", path, &headers, b"")
    }
}

/// The emulator's base URL (`AWS_ENDPOINT_URL`).
pub fn emulator() -> String {
    std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL")
        .trim_end_matches('/')
        .to_owned()
}

/// The emulator the stack runs on, as provisioning wrote it to the env file
/// (`PORTCULLIS_EMULATOR`: `localstack` or `moto`; moto when unset).
pub fn emulator_kind() -> Emulator {
    match std::env::var("PORTCULLIS_EMULATOR").as_deref() {
        Ok("localstack") => Emulator::LocalStack,
        _ => Emulator::Moto,
    }
}

/// Where each emulator lets tests read back what was sent:
/// - moto: everything in `GET /moto-api/data.json` (`sns.SMS`, `sns.Topic[].sent_notifications`,
///   `ses.Message`), which dumps all of moto's state, so it slows as the emulator fills;
/// - LocalStack: `GET /_aws/sns/sms-messages?phoneNumber=…` for texts, `GET /_aws/ses` for
///   emails, and for topic publishes (which LocalStack does not record) the SQS "tap" queue that
///   provisioning subscribes to each topic, read without consuming it through
///   `GET /_aws/sqs/messages/<region>/<account>/<topic>-tap`. LocalStack delivers texts and
///   topic messages on a worker thread, a moment after `Publish` returns: wait for them with
///   [`next_sms_code`] and [`next_voice_call`] rather than reading once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emulator {
    LocalStack,
    Moto,
}

/// A read-back from the emulator's own endpoints. A 5xx is asked again, up to 10 times:
/// LocalStack's `GET /_aws/ses` iterates its dict of sent emails unlocked, so an email sent
/// meanwhile (the outbox's drain sends them on its own task) fails it with "dictionary changed
/// size during iteration", a 500 (seen in CI). What the test then reads is still what the
/// emulator holds; anything but a 200 after the retries fails the test.
fn emulator_get(path: &str, headers: &[(&str, &str)]) -> Value {
    let url = format!("{}{}", emulator(), path);
    let mut tries = 0;
    loop {
        let mut request = agent().get(&url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.call().unwrap();
        tries += 1;
        if response.status().is_server_error() && tries < 10 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            continue;
        }
        assert_eq!(response.status(), 200, "GET {url} ({tries} tries)");
        return serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    }
}

fn emulator_state() -> Value {
    emulator_get("/moto-api/data.json", &[])
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every SMS the emulator has sent to `phone` (E.164), oldest first.
pub fn sms_to(phone: &str) -> Vec<String> {
    match emulator_kind() {
        Emulator::Moto => emulator_state()["sns"]["SMS"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|m| m["phone_number"] == phone)
                    .filter_map(|m| m["message"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        Emulator::LocalStack => {
            let encoded = phone.replace('+', "%2B");
            let state = emulator_get(
                &format!("/_aws/sns/sms-messages?phoneNumber={encoded}"),
                &[],
            );
            state["sms_messages"][phone]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["Message"].as_str().map(str::to_owned))
                .collect()
        }
    }
}

/// Every message published to the topic `topic_arn`, oldest first.
pub fn published_to(topic_arn: &str) -> Vec<String> {
    match emulator_kind() {
        Emulator::Moto => {
            let state = emulator_state();
            let mut out = Vec::new();
            for t in state["sns"]["Topic"].as_array().into_iter().flatten() {
                if t["arn"] != topic_arn {
                    continue;
                }
                for n in t["sent_notifications"].as_array().into_iter().flatten() {
                    if let Some(message) = n[1].as_str() {
                        out.push(message.to_owned());
                    }
                }
            }
            out
        }
        Emulator::LocalStack => {
            // arn:aws:sns:<region>:<account>:<name> → the tap queue <name>-tap (see provision.py)
            let parts: Vec<&str> = topic_arn.split(':').collect();
            assert_eq!(parts.len(), 6, "a topic ARN: {topic_arn}");
            let (region, account, name) = (parts[3], parts[4], parts[5]);
            let state = emulator_get(
                &format!("/_aws/sqs/messages/{region}/{account}/{name}-tap"),
                &[("content-type", "application/x-amz-json-1.0")],
            );
            let mut messages: Vec<(u64, String)> = state["Messages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| {
                    let sent = m["Attributes"]["SentTimestamp"].as_str()?.parse().ok()?;
                    Some((sent, m["Body"].as_str()?.to_owned()))
                })
                .collect();
            messages.sort_by_key(|(sent, _)| *sent); // the developer endpoint keeps no order
            messages.into_iter().map(|(_, body)| body).collect()
        }
    }
}

/// Every voice message (the JSON contract of the `sns-voice` plugin) published for `phone`.
pub fn voice_to(phone: &str) -> Vec<Value> {
    let topic = std::env::var("PORTCULLIS_VOICE_TOPIC_ARN").expect("PORTCULLIS_VOICE_TOPIC_ARN");
    published_to(&topic)
        .iter()
        .filter_map(|m| serde_json::from_str::<Value>(m).ok())
        .filter(|message| message["to"] == phone)
        .collect()
}

/// Waits (briefly) for a new voice message to `phone` beyond the `seen` first ones; returns them all.
pub fn next_voice_call(phone: &str, seen: usize) -> Vec<Value> {
    for _ in 0..50 {
        let all = voice_to(phone);
        if all.len() > seen {
            return all;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no new voice message to {phone}");
}

/// The first run of 6 digits in a message.
pub fn six_digits(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.windows(6).enumerate().find_map(|(i, w)| {
        let before_ok = i == 0 || !chars[i - 1].is_ascii_digit();
        let after_ok = chars.get(i + 6).is_none_or(|c| !c.is_ascii_digit());
        (w.iter().all(char::is_ascii_digit) && before_ok && after_ok).then(|| w.iter().collect())
    })
}

/// Waits (briefly) for a new SMS to `phone` beyond the `seen` first ones and returns its code.
pub fn next_sms_code(phone: &str, seen: usize) -> String {
    for _ in 0..50 {
        let all = sms_to(phone);
        if all.len() > seen {
            return six_digits(all.last().unwrap()).expect("a 6-digit code in the SMS");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no new SMS to {phone}");
}

/// A distinct valid US number per call: +1 <area> 555 01xx, the block reserved for fiction and
/// valid for libphonenumber, across several area codes (tests run in parallel and read codes
/// back per number, so numbers should not repeat within a run).
pub fn fresh_phone() -> String {
    const AREAS: [u32; 32] = [
        202, 212, 305, 415, 617, 713, 312, 206, 303, 404, 503, 602, 702, 808, 901, 214, 210, 215,
        720, 313, 314, 412, 414, 512, 513, 614, 615, 704, 718, 801, 816, 919,
    ];
    use std::hash::{BuildHasher as _, Hasher as _};
    static START: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    // A random start per process (test binaries run one after another against one emulator,
    // and the load test alone takes 100 numbers), then one number after another.
    let start = *START.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        (h.finish() % 3200) as u32
    });
    let n = (start + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) % 3200;
    let area = AREAS[(n / 100) as usize];
    format!("+1{area}55501{:02}", n % 100)
}

/// The newest email to `address` whose subject contains `subject`, once it has arrived (the
/// outbox delivers alerts and links a second or two after the request, in no fixed order).
pub fn wait_for_email_about(address: &str, subject: &str) -> (String, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(found) = emails_to(address)
            .into_iter()
            .rev()
            .find(|(s, _)| s.contains(subject))
        {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no email about {subject:?} to {address} within 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// RFC 6238 TOTP (SHA-1, 6 digits, 30 s), written here from the RFC with the `hmac` and `sha1`
/// crates, independently of the project's own generator.
pub fn independent_totp(secret: &[u8], unix_secs: u64) -> String {
    use hmac::{Hmac, Mac as _};
    let counter = (unix_secs / 30).to_be_bytes();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).unwrap();
    mac.update(&counter);
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let value = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", value % 1_000_000)
}

/// RFC 4648 base32 (no padding) decoding, by the `data-encoding` crate (the service encodes
/// with `totp-rs`).
pub fn base32_decode(s: &str) -> Vec<u8> {
    data_encoding::BASE32_NOPAD
        .decode(s.as_bytes())
        .unwrap_or_else(|e| panic!("base32 {s:?}: {e}"))
}

/// Verifies an ES256 JWT with the JWKS published by the API (independently of the project's
/// verifier) and returns its claims.
pub fn verify_with_jwks(api: &Api, token: &str) -> Value {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use p256::ecdsa::signature::Verifier as _;
    let jwks = api.get("/.well-known/jwks.json", None).json();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("kid in JWKS");
    let mut sec1 = vec![4u8];
    sec1.extend(B64.decode(jwk["x"].as_str().unwrap()).unwrap());
    sec1.extend(B64.decode(jwk["y"].as_str().unwrap()).unwrap());
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
    let signature = p256::ecdsa::Signature::from_slice(&B64.decode(parts[2]).unwrap()).unwrap();
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("signature verifies with the JWKS");
    serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap()
}

/// Every email the emulator has sent to `address`, as (subject, body), oldest first (moto:
/// `ses.Message` in data.json; LocalStack: `GET /_aws/ses`, SES v1 `SendEmail`, recorded before
/// the call returns).
pub fn emails_to(address: &str) -> Vec<(String, String)> {
    match emulator_kind() {
        Emulator::Moto => emulator_state()["ses"]["Message"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|m| m["destinations"].to_string().contains(address))
                    .map(|m| (text_of(&m["subject"]), text_of(&m["body"])))
                    .collect()
            })
            .unwrap_or_default(),
        Emulator::LocalStack => emulator_get("/_aws/ses", &[])["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| {
                ["ToAddresses", "CcAddresses", "BccAddresses"]
                    .iter()
                    .any(|field| {
                        m["Destination"][field]
                            .as_array()
                            .is_some_and(|all| all.iter().any(|a| a == address))
                    })
            })
            .map(|m| (text_of(&m["Subject"]), text_of(&m["Body"]["text_part"])))
            .collect(),
    }
}

/// The emails to `address` once there are at least `count` of them: alerts, reset links and
/// invitations leave through the outbox, which the local endpoint drains within a second or
/// two when idle (SPEC §15), so an end-to-end test waits for them. Panics after 90 s: right
/// after the load test, hundreds of its users' alerts are still queued ahead (one drain, one
/// message at a time; in AWS the sender scales out), and a 30-second wait was seen to expire.
pub fn wait_for_emails(address: &str, count: usize) -> Vec<(String, String)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let mails = emails_to(address);
        if mails.len() >= count {
            return mails;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{count} email(s) to {address} expected from the outbox within 90 s, {} arrived",
            mails.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The emails to `address` after the outbox has had time to deliver anything queued (5 s: the
/// local endpoint polls every second and retries a failure after one), for tests that an email
/// was *not* sent.
pub fn settled_emails_to(address: &str) -> Vec<(String, String)> {
    std::thread::sleep(std::time::Duration::from_secs(5));
    emails_to(address)
}
