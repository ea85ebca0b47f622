//! Faults (issue: fault tolerance): a dependency that is down, throttling, or refusing gives a
//! prompt `503 service_unavailable` with `Retry-After`, after a bounded number of SDK retries,
//! and leaves no partial state. These go through the real AWS adapters (not the in-memory
//! ones): a closed port, and a tiny fake endpoint that answers every call with throttling.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use portcullis::Deps;
use portcullis::config::{Argon2Settings, Settings};
use portcullis::error::ApiError;
use portcullis_edge::problem_response;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn settings() -> Settings {
    let mut s = Settings::defaults("portcullis-faults");
    s.argon2 = Argon2Settings::danger_cheap();
    s.signing_key_id = Some("alias/none".into());
    s.code_key_id = Some("alias/none".into());
    s
}

/// The production SDK configuration (retries, timeouts), pointed at `endpoint`.
async fn sdk_at(endpoint: &str) -> aws_config::SdkConfig {
    Deps::sdk_loader()
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "faults",
        ))
        .load()
        .await
}

async fn deps_at(endpoint: &str) -> Deps {
    Deps::with_sdk_config(settings(), sdk_at(endpoint).await)
        .await
        .unwrap()
}

/// The emulator's table and keys from the environment (`None` without an emulator).
fn emulator_settings() -> Option<Settings> {
    let table = common::emulator_table()?;
    let mut s = Settings::from_env().unwrap();
    s.table_name = table;
    s.argon2 = Argon2Settings::danger_cheap();
    Some(s)
}

/// Sends an SMS code that must fail: returns the error after checking that the failure used no
/// send and left no code in the challenge.
async fn failing_send(deps: &Deps, prefix: &str) -> ApiError {
    let user = common::create_user(deps, &common::unique(prefix)).await;
    common::add_phone(deps, &user, "+12025550143").await;
    let challenge = common::password_challenge(deps, &user).await;
    let err = common::send_by(deps, &challenge, "sms").await.unwrap_err();
    let stored = common::stored_challenge(deps, &challenge.id_digest).await;
    assert_eq!(
        (stored.sends, stored.code.is_none()),
        (0, true),
        "no send used, no code stored"
    );
    err
}

async fn attempt(deps: &Deps) -> Result<portcullis::service::sign_in::SignInAnswer, ApiError> {
    common::sign_in_as(deps, "someone@example.com", "a password of sorts").await
}

/// The answer to a dependency that is down: `503 service_unavailable` with `Retry-After`,
/// within the bounded retries (less than 8 s after `started`).
fn assert_prompt_503(err: &ApiError, started: Instant) {
    assert_eq!(*err, ApiError::ServiceUnavailable);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "bounded retries: {:?}",
        started.elapsed()
    );
    let response = problem_response(err);
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn a_dynamodb_that_is_down_gives_a_prompt_503_with_retry_after() {
    // Port 9 (discard) on loopback: nothing listens, connections are refused at once.
    let deps = deps_at("http://127.0.0.1:9").await;
    let started = Instant::now();
    let err = attempt(&deps).await.unwrap_err();
    assert_prompt_503(&err, started);
}

/// Answers every request with DynamoDB's throttling error and counts them.
async fn throttling_endpoint() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut read = 0;
                // Read the head and the body (Content-Length), then answer.
                loop {
                    let Ok(n) = stream.read(&mut buf[read..]).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    read += n;
                    let text = String::from_utf8_lossy(&buf[..read]).to_lowercase();
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if read >= head_end + 4 + length {
                            break;
                        }
                    }
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"Rate of requests exceeds the allowed throughput."}"#;
                let response = format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-requestid: fake\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}"), count)
}

#[tokio::test]
async fn dynamodb_throttling_is_retried_a_bounded_number_of_times_then_503() {
    let (endpoint, count) = throttling_endpoint().await;
    let deps = deps_at(&endpoint).await;
    count.store(0, Ordering::SeqCst); // the cold-start warm-up also met the throttle
    let started = Instant::now();
    // One operation (a sign-in makes several at once, each retried the same way): the user read.
    let user = portcullis::identity::UserId::parse("someone@example.com").unwrap();
    let err = ApiError::from(deps.stores.users.get_user(&user).await.unwrap_err());
    assert_eq!(err, ApiError::ServiceUnavailable);
    let calls = count.load(Ordering::SeqCst);
    assert_eq!(
        calls, 3,
        "one operation, three attempts (standard retries, bounded)"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_kms_failure_while_sending_a_code_is_a_503_that_uses_no_send_and_leaves_no_code() {
    use portcullis::code_keys::{CodeMacMode, rotate};
    let Some(base) = emulator_settings() else {
        return;
    };
    // Both code-MAC modes, each with the one KMS key it uses on a send missing: KMS refuses.
    // `kms`: the MAC key itself (GenerateMac on every send).
    let mut kms_mode = base.clone();
    kms_mode.code_mac = CodeMacMode::Kms;
    kms_mode.code_key_id = Some("alias/portcullis-no-such-key".into());
    // `envelope`: the data key that opens the code-MAC key sealed in the real table. The key is
    // made (if missing) with the real data key first, so only the opening can fail.
    let sealing = Deps::with_sdk_config(base.clone(), Deps::sdk_config().await)
        .await
        .unwrap();
    rotate(
        sealing.stores.keys.as_ref(),
        portcullis::storage::CODE_MAC_KEYS,
        sealing.sealer.as_ref(),
        sealing.clock.now(),
        true,
    )
    .await
    .unwrap();
    let mut envelope_mode = base.clone();
    envelope_mode.code_mac = CodeMacMode::Envelope;
    envelope_mode.data_key_id = Some("alias/portcullis-no-such-key".into());
    for (mode, s) in [("kms", kms_mode), ("envelope", envelope_mode)] {
        let mut deps = Deps::with_sdk_config(s, Deps::sdk_config().await)
            .await
            .unwrap();
        let (registry, outbox) = portcullis::notifier::RecordingNotifier::registry();
        deps.notifiers = registry;
        assert_eq!(
            failing_send(&deps, "kmsfault").await,
            ApiError::ServiceUnavailable,
            "{mode}"
        );
        assert!(outbox.sent().is_empty(), "{mode}: nothing was sent");
    }
}

#[tokio::test]
async fn an_sns_that_is_down_while_sending_a_code_is_a_503_that_uses_no_send_and_leaves_no_code() {
    use portcullis::notifier::Registry;
    use portcullis::notifier::sns::SnsSms;
    let Some(s) = emulator_settings() else {
        return;
    };
    // DynamoDB and KMS on the emulator; SMS through the real SNS adapter, whose endpoint is down.
    let mut deps = Deps::with_sdk_config(s, Deps::sdk_config().await)
        .await
        .unwrap();
    let down = sdk_at("http://127.0.0.1:9").await;
    let mut registry = Registry::default();
    registry
        .add(Arc::new(SnsSms::new(aws_sdk_sns::Client::new(&down), None)))
        .unwrap();
    deps.notifiers = registry;
    let started = Instant::now();
    let err = failing_send(&deps, "snsfault").await;
    assert_prompt_503(&err, started);
}
