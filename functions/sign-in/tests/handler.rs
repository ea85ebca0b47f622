//! The sign-in handler with real API Gateway HTTP API (v2) events and the in-memory adapter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use lambda_http::{Body, Request};
use portcullis::config::{Argon2Settings, Settings};
use portcullis::identity::UserId;
use portcullis::storage::{UserRecord, UserStatus};
use portcullis::{Clock, Deps, ManualClock, UnixTime};
use serde_json::Value;

const FIXTURE: &str = include_str!("data/sign-in-v2.json");
const PASSWORD: &str = "correct horse battery staple";

fn deps() -> Deps {
    let mut settings = Settings::defaults("t");
    settings.argon2 = Argon2Settings::danger_cheap();
    Deps::in_memory(
        settings,
        Arc::new(ManualClock::new(UnixTime(1_800_000_000))) as Arc<dyn Clock>,
    )
    .unwrap()
}

async fn with_user(deps: &Deps) {
    deps.stores
        .users
        .create_user(&UserRecord {
            user_id: UserId::parse("alice@example.com").unwrap(),
            email: None,
            phone: None,
            password_hash: Some(deps.hasher.hash(PASSWORD.as_bytes()).unwrap()),
            status: UserStatus::Active,
            roles: vec![],
            created_at: UnixTime(0),
            password_changed_at: None,
            last_sign_in_at: None,
            must_change_password: false,
            password_history: vec![],
            security_stamp: 0,
        })
        .await
        .unwrap();
}

/// The fixture event with another body (and optionally another content type / encoding).
fn event(body: Option<&str>, content_type: Option<&str>, base64: bool) -> Request {
    let mut event: Value = serde_json::from_str(FIXTURE).unwrap();
    match body {
        Some(b) => event["body"] = Value::String(b.into()),
        None => {
            event.as_object_mut().unwrap().remove("body");
        }
    }
    event["isBase64Encoded"] = Value::Bool(base64);
    match content_type {
        Some(ct) => event["headers"]["content-type"] = Value::String(ct.into()),
        None => {
            event["headers"]
                .as_object_mut()
                .unwrap()
                .remove("content-type");
        }
    }
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

fn body_json(resp: &lambda_http::Response<Body>) -> Value {
    match resp.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("unexpected body {other:?}"),
    }
}

fn sign_in_body(password: &str) -> String {
    serde_json::json!({"user_id": "alice@example.com", "password": password}).to_string()
}

/// The handler's answer to the fixture's JSON sign-in for alice with `password`.
async fn sign_in_with(deps: &Deps, password: &str) -> lambda_http::Response<Body> {
    let body = sign_in_body(password);
    let request = event(Some(&body), Some("application/json"), false);
    portcullis_sign_in::FUNCTION.handle(deps, request).await
}

#[tokio::test]
async fn the_right_password_opens_an_enrolment_challenge() {
    let deps = deps();
    with_user(&deps).await;
    let resp = sign_in_with(&deps, PASSWORD).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body = body_json(&resp);
    assert_eq!(body["status"], "mfa_enrolment_required");
    assert!(body["challenge_id"].is_string());
}

#[tokio::test]
async fn every_kind_of_bad_input_is_a_4xx_problem_and_counts_nothing() {
    let deps = deps();
    with_user(&deps).await;
    let bad: Vec<(Request, u16)> = vec![
        (
            event(Some("{\"user_id\":"), Some("application/json"), false),
            400,
        ),
        (event(None, Some("application/json"), false), 400),
        (event(Some("null"), Some("application/json"), false), 400),
        (
            event(
                Some("{\"user_id\":[],\"password\":\"x\"}"),
                Some("application/json"),
                false,
            ),
            400,
        ),
        (
            event(
                Some(&sign_in_body("wrong password 1")),
                Some("text/plain"),
                false,
            ),
            415,
        ),
        (
            event(Some(&sign_in_body("wrong password 1")), None, false),
            415,
        ),
        // base64 of the bytes 7b ff fe 7d: not UTF-8
        (event(Some("e//+fQ=="), Some("application/json"), true), 400),
        (
            event(Some(&" ".repeat(20_000)), Some("application/json"), false),
            413,
        ),
        (
            event(
                Some(&sign_in_body(&"p".repeat(2000))),
                Some("application/json"),
                false,
            ),
            400,
        ),
    ];
    for (request, status) in bad {
        let resp = portcullis_sign_in::FUNCTION.handle(&deps, request).await;
        assert_eq!(resp.status(), status);
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let body = body_json(&resp);
        assert_eq!(body["status"], status);
        assert!(body["code"].is_string() && body["detail"].is_string());
    }
    for _ in 0..4 {
        let resp = sign_in_with(&deps, "wrong password 1").await;
        assert_eq!(resp.status(), 401);
    }
    let resp = sign_in_with(&deps, PASSWORD).await;
    assert_eq!(
        resp.status(),
        200,
        "bad input must not have counted as failures"
    );
}

#[tokio::test]
async fn a_lock_answers_423_with_retry_after() {
    let deps = deps();
    with_user(&deps).await;
    let mut last = None;
    for _ in 0..5 {
        last = Some(sign_in_with(&deps, "wrong password 1").await);
    }
    let resp = last.unwrap();
    assert_eq!(resp.status(), 423);
    assert_eq!(resp.headers()["retry-after"], "1800");
    assert_eq!(body_json(&resp)["code"], "locked");
}
