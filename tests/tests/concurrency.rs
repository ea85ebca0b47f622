//! Concurrency end to end: guarantees that rest on DynamoDB's conditional writes hold when many
//! requests arrive at once. They hold on AWS and on LocalStack (DynamoDB Local isolates each
//! conditional write); an emulator whose conditional writes are check-then-write (moto's
//! threaded server without `scripts/moto_server.py`'s serialisation) fails them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_e2e::*;
use serde_json::{Value, json};

const PASSWORD: &str = "a perfectly good passphrase";
const PARALLEL: usize = 20;

fn now() -> u64 {
    // Wall-clock time is what an authenticator app uses; the stack runs on the real clock.
    #[allow(clippy::disallowed_methods)]
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn challenge_of(answer: &Value) -> String {
    answer["challenge_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a challenge: {answer}"))
        .to_owned()
}

/// A user who enrolled an authenticator app at the first sign-in with the code of time step
/// `step`; returns the secret.
fn with_authenticator(api: &Api, user: &str, step: u64) -> Vec<u8> {
    create_user(user, PASSWORD, &[]);
    let challenge = challenge_of(&api.sign_in(user, PASSWORD).json());
    let enrol = api.post_json(&format!("/v1/sign-in/{challenge}/factors/totp"), &json!({}));
    assert_eq!(enrol.status, 201, "{enrol:?}");
    let body = enrol.json();
    let secret = base32_decode(body["secret"].as_str().unwrap());
    let factor = body["factor_id"].as_str().unwrap();
    let done = api.post_json(
        &format!("/v1/sign-in/{challenge}/factors/{factor}/verify"),
        &json!({"code": independent_totp(&secret, step * 30)}),
    );
    assert_eq!(done.status, 200, "{done:?}");
    secret
}

#[test]
fn one_totp_code_sent_in_20_parallel_verifies_signs_in_exactly_once() {
    let Some(api) = api() else { return };
    let user = unique("totp-race");
    // Enrol with the previous step's code, race with the current one (±1 step is accepted), so
    // the raced code is fresh and the enrolment's code is not a replay of it.
    let step = now() / 30;
    let secret = with_authenticator(&api, &user, step - 1);
    let code = independent_totp(&secret, step * 30);
    let challenge = challenge_of(&api.sign_in(&user, PASSWORD).json());
    let barrier = std::sync::Barrier::new(PARALLEL);
    let answers: Vec<(u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..PARALLEL)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let answer = api.post_json(
                        &format!("/v1/sign-in/{challenge}/verify"),
                        &json!({"method": "totp", "code": code}),
                    );
                    (
                        answer.status,
                        answer.json()["code"].as_str().unwrap_or("").to_owned(),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let signed_in = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(signed_in, 1, "exactly one sign-in: {answers:?}");
    // The others are refused as a client error (a used code, a used-up challenge), never a 5xx.
    assert!(
        answers
            .iter()
            .all(|(status, _)| *status == 200 || (400..500).contains(status)),
        "{answers:?}"
    );
    // And the code stays used: a new challenge refuses it.
    let again = challenge_of(&api.sign_in(&user, PASSWORD).json());
    api.post_json(
        &format!("/v1/sign-in/{again}/verify"),
        &json!({"method": "totp", "code": code}),
    )
    .assert_problem(401, "code_invalid");
}
