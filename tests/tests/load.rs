//! A bounded load test on loopback: many users at once doing complete sign-ins (password, an
//! authenticator enrolled in the first sign-in, then a second sign-in with a code, then a
//! refresh). No answer may be a 5xx, and afterwards the state reconciles exactly: each user
//! has one active factor, the sign-ins recorded in their events, and working sessions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_e2e::*;
use serde_json::json;

const PASSWORD: &str = "a perfectly good passphrase";
/// Bounded: users in parallel (each does 7 requests after being created).
const USERS: usize = 12;

fn now() -> u64 {
    #[allow(clippy::disallowed_methods)]
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn concurrent_complete_sign_ins_have_no_5xx_and_the_state_reconciles() {
    let Some(api) = api() else { return };
    let started = std::time::Instant::now();
    let users: Vec<String> = (0..USERS).map(|i| unique(&format!("load{i}"))).collect();
    let statuses: Vec<Vec<u16>> = std::thread::scope(|s| {
        let handles: Vec<_> = users
            .iter()
            .map(|user| {
                let api = &api;
                s.spawn(move || {
                    let mut seen = Vec::new();
                    create_user(user, PASSWORD, &[]);
                    let first = api.sign_in(user, PASSWORD);
                    seen.push(first.status);
                    let challenge = first.json()["challenge_id"].as_str().unwrap().to_owned();
                    let enrol =
                        api.post_json(&format!("/v1/sign-in/{challenge}/factors/totp"), &json!({}));
                    seen.push(enrol.status);
                    let body = enrol.json();
                    let secret = base32_decode(body["secret"].as_str().unwrap());
                    let t = now();
                    let done = api.post_json(
                        &format!(
                            "/v1/sign-in/{challenge}/factors/{}/verify",
                            body["factor_id"].as_str().unwrap()
                        ),
                        &json!({"code": independent_totp(&secret, t)}),
                    );
                    seen.push(done.status);
                    let second = api.sign_in(user, PASSWORD);
                    seen.push(second.status);
                    let challenge = second.json()["challenge_id"].as_str().unwrap().to_owned();
                    let verified = api.post_json(
                        &format!("/v1/sign-in/{challenge}/verify"),
                        &json!({"method": "totp", "code": independent_totp(&secret, t + 30)}),
                    );
                    seen.push(verified.status);
                    let refresh = api.post_json(
                        "/v1/tokens/refresh",
                        &json!({"refresh_token": verified.json()["refresh_token"]}),
                    );
                    seen.push(refresh.status);
                    let access = refresh.json()["access_token"].as_str().unwrap().to_owned();
                    let factors = api.get("/v1/me/factors", Some(&access));
                    seen.push(factors.status);
                    let factors = factors.json();
                    let list = factors["factors"].as_array().unwrap();
                    assert_eq!(list.len(), 1, "{user}: exactly one factor");
                    assert_eq!(list[0]["status"], "active");
                    let events = api.get("/v1/me/events", Some(&access)).json();
                    let sign_ins = events["events"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|e| e["kind"] == "sign_in_succeeded")
                        .count();
                    assert_eq!(sign_ins, 2, "{user}: both sign-ins recorded, once each");
                    seen
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: Vec<u16> = statuses.into_iter().flatten().collect();
    assert!(all.iter().all(|s| *s < 500), "no 5xx: {all:?}");
    let expected = [200, 201, 200, 200, 200, 200, 200];
    assert_eq!(all.len(), USERS * expected.len());
    for chunk in all.chunks(expected.len()) {
        assert_eq!(chunk, expected, "every step of every user succeeded");
    }
    eprintln!(
        "load: {USERS} users, {} requests in {:?}",
        all.len(),
        started.elapsed()
    );
}
