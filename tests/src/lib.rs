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
