//! A bounded load test on loopback: many users at once doing complete sign-ins, half with an
//! authenticator app and half with text messages, each enrolled in a first sign-in and used in
//! a second, then a refresh. `PORTCULLIS_LOAD_USERS` users (default 200 on LocalStack, whose
//! DynamoDB Local isolates concurrent requests; 24 on the moto server, which handles one
//! request at a time).
//!
//! Nothing may answer a 5xx; a code is never accepted twice (the TOTP code of a sign-in is
//! replayed on a third sign-in, the texted one on its own challenge); a user who asks for a
//! sixth text in one challenge is refused; and afterwards the state reconciles exactly: one
//! active factor per user and exactly the two sign-ins recorded. The run prints throughput
//! and p50/p99 latency (`load:` lines) for BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use portcullis_e2e::*;
use serde_json::{Value, json};

fn users() -> usize {
    std::env::var("PORTCULLIS_LOAD_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(match emulator_kind() {
            Emulator::LocalStack => 200,
            Emulator::Moto => 24,
        })
}

/// LocalStack answers a read-back of one number's texts; moto's read-back dumps its whole
/// state (data.json) and stalls every other request meanwhile, so on moto every user takes the
/// authenticator path (measured: with texts, 24 users on moto drew 503s from 30-second
/// timeouts).
fn texts_read_back_cheaply() -> bool {
    matches!(emulator_kind(), Emulator::LocalStack)
}

/// What one user's flow saw: every answer's status and time, in order.
#[derive(Default)]
struct Seen {
    steps: Vec<(&'static str, u16, Duration)>,
}

impl Seen {
    fn call(&mut self, step: &'static str, request: impl FnOnce() -> Answer) -> Answer {
        let started = Instant::now();
        let answer = request();
        self.steps.push((step, answer.status, started.elapsed()));
        answer
    }
}

fn field(answer: &Answer, name: &str) -> String {
    answer.json()[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {answer:?}"))
        .to_owned()
}

/// Password, an authenticator enrolled in the first sign-in, a second sign-in with the next
/// code, the same code refused on a third.
fn totp_flow(api: &Api, user: &str, seen: &mut Seen) -> String {
    let first = seen.call("sign-in", || api.sign_in(user, PASSWORD));
    let challenge = field(&first, "challenge_id");
    let enrol = seen.call("enrol totp", || {
        api.post_json(&format!("/v1/sign-in/{challenge}/factors/totp"), &json!({}))
    });
    let body = enrol.json();
    let secret = base32_decode(body["secret"].as_str().unwrap());
    let factor = body["factor_id"].as_str().unwrap().to_owned();
    let (_, enrol_step, _) = send_totp(seen, "verify enrolment", &secret, 0, |code| {
        api.verify_enrolment(&challenge, &factor, code)
    });
    let second = seen.call("sign-in", || api.sign_in(user, PASSWORD));
    let challenge = field(&second, "challenge_id");
    // A step after the enrolment's: a used step is refused.
    let (verified, _, code) = send_totp(seen, "verify totp", &secret, enrol_step, |code| {
        api.verify_code(&challenge, "totp", code)
    });
    let third = seen.call("sign-in", || api.sign_in(user, PASSWORD));
    let challenge = field(&third, "challenge_id");
    let replayed = seen.call("replay totp", || api.verify_code(&challenge, "totp", &code));
    assert_eq!(
        replayed.status, 401,
        "{user}: a TOTP code works once (the answer: {replayed:?}; the user's steps: {:?})",
        seen.steps
    );
    field(&verified, "refresh_token")
}

/// Sends a TOTP code with `send` and records it as `step`: the code for the step after the
/// server's current one (the server accepts a step either side of its own, so it stays good
/// for 60 to 90 s, the longest any code can), and a step after `after` (waiting until there
/// is one). Returns the answer, the code's step and the code.
///
/// At the local endpoint's cap (32 requests handled at once) a request can wait in its queue
/// for longer than that. A refusal (401) of a request that took over 30 s is therefore sent
/// again with a fresh code, twice at most, the refused try recorded as `stale totp`: that is
/// the load, not a bug. The caller's test bounds how many there may be.
fn send_totp(
    seen: &mut Seen,
    step: &'static str,
    secret: &[u8],
    after: u64,
    send: impl Fn(&str) -> Answer,
) -> (Answer, u64, String) {
    let mut stale = 0;
    loop {
        while now() / 30 < after {
            std::thread::sleep(Duration::from_millis(500));
        }
        let code_step = now() / 30 + 1;
        let code = independent_totp(secret, code_step * 30);
        let started = Instant::now();
        let answer = send(&code);
        let took = started.elapsed();
        if answer.status == 401 && took > Duration::from_secs(30) && stale < 2 {
            stale += 1;
            seen.steps.push(("stale totp", answer.status, took));
            continue;
        }
        seen.steps.push((step, answer.status, took));
        return (answer, code_step, code);
    }
}

/// Password, a phone enrolled in the first sign-in, a second sign-in with a texted code, the
/// same code refused again; every fifth user then asks for six texts in one challenge.
fn sms_flow(api: &Api, user: &str, n: usize, seen: &mut Seen) -> String {
    let phone = fresh_phone();
    let first = seen.call("sign-in", || api.sign_in(user, PASSWORD));
    let challenge = field(&first, "challenge_id");
    let texts = sms_to(&phone).len();
    let enrol = seen.call("enrol phone", || api.enrol_phone(&challenge, &phone, "sms"));
    let factor = field(&enrol, "factor_id");
    let code = next_sms_code(&phone, texts);
    seen.call("verify enrolment", || {
        api.verify_enrolment(&challenge, &factor, &code)
    });
    let second = seen.call("sign-in", || api.sign_in(user, PASSWORD));
    let challenge = field(&second, "challenge_id");
    let texts = sms_to(&phone).len();
    seen.call("send sms", || api.send_code(&challenge, "sms"));
    let code = next_sms_code(&phone, texts);
    let verified = seen.call("verify sms", || api.verify_code(&challenge, "sms", &code));
    let replayed = seen.call("replay sms", || api.verify_code(&challenge, "sms", &code));
    assert_eq!(
        replayed.status, 410,
        "{user}: a texted code works once (the answer: {replayed:?}; the user's steps: {:?})",
        seen.steps
    );
    if n % 5 == 1 {
        let third = seen.call("sign-in", || api.sign_in(user, PASSWORD));
        let challenge = field(&third, "challenge_id");
        let statuses: Vec<u16> = (0..6)
            .map(|_| {
                seen.call("send sms", || api.send_code(&challenge, "sms"))
                    .status
            })
            .collect();
        assert_eq!(
            statuses,
            [202, 202, 202, 202, 202, 429],
            "{user}: five sends"
        );
    }
    field(&verified, "refresh_token")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[test]
fn concurrent_complete_sign_ins_have_no_5xx_no_double_use_and_the_state_reconciles() {
    let Some(api) = api() else { return };
    let count = users();
    let users: Vec<String> = (0..count).map(|i| unique(&format!("load{i}"))).collect();
    // Created first (the operator CLI, untimed): the timed part is the API alone.
    std::thread::scope(|s| {
        for chunk in users.chunks(16) {
            s.spawn(move || chunk.iter().for_each(|u| create_user(u, PASSWORD, &[])));
        }
    });
    let barrier = std::sync::Barrier::new(count);
    let started = Instant::now();
    let seen: Vec<Seen> = std::thread::scope(|s| {
        let handles: Vec<_> = users
            .iter()
            .enumerate()
            .map(|(n, user)| {
                let (api, barrier) = (&api, &barrier);
                s.spawn(move || {
                    let mut seen = Seen::default();
                    barrier.wait();
                    let refresh = if n % 2 == 0 || !texts_read_back_cheaply() {
                        totp_flow(api, user, &mut seen)
                    } else {
                        sms_flow(api, user, n, &mut seen)
                    };
                    let renewed = seen.call("refresh", || {
                        api.post_json("/v1/tokens/refresh", &json!({"refresh_token": refresh}))
                    });
                    let access = field(&renewed, "access_token");
                    let factors = seen.call("factors", || api.get("/v1/me/factors", Some(&access)));
                    let factors: Value = factors.json();
                    let list = factors["factors"].as_array().unwrap();
                    assert_eq!(list.len(), 1, "{user}: exactly one factor");
                    assert_eq!(list[0]["status"], "active");
                    let events = seen.call("events", || api.get("/v1/me/events", Some(&access)));
                    let sign_ins = events.json()["events"]
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
    let elapsed = started.elapsed();
    let sms_users = if texts_read_back_cheaply() {
        count / 2
    } else {
        0
    };
    let steps: Vec<&(&str, u16, Duration)> = seen.iter().flat_map(|s| s.steps.iter()).collect();
    let errors: Vec<_> = steps
        .iter()
        .filter(|(_, status, _)| *status >= 500)
        .collect();
    assert!(errors.is_empty(), "no 5xx: {errors:?}");
    let stale = steps
        .iter()
        .filter(|(step, _, _)| *step == "stale totp")
        .count();
    assert!(
        stale <= count / 5,
        "{stale} TOTP codes went stale in the endpoint's queue: more than one in five users"
    );
    for (step, status, _) in &steps {
        let expected: &[u16] = match *step {
            "enrol totp" | "enrol phone" => &[201],
            "replay totp" | "stale totp" => &[401],
            "replay sms" => &[410],
            "send sms" => &[202, 429],
            _ => &[200],
        };
        assert!(expected.contains(status), "{step}: {status}");
    }
    let mut all: Vec<Duration> = steps.iter().map(|(_, _, d)| *d).collect();
    all.sort();
    let mut sign_ins: Vec<Duration> = steps
        .iter()
        .filter(|(step, _, _)| *step == "sign-in")
        .map(|(_, _, d)| *d)
        .collect();
    sign_ins.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "load: {:?}, {count} concurrent users ({} TOTP, {} SMS), {} requests in {:.1} s: {:.1} requests/s, {:.2} complete users/s",
        emulator_kind(),
        count - sms_users,
        sms_users,
        all.len(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
    );
    eprintln!(
        "load: latency of every request p50 {:.0} ms, p99 {:.0} ms; of the password step p50 {:.0} ms, p99 {:.0} ms",
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        ms(percentile(&sign_ins, 0.5)),
        ms(percentile(&sign_ins, 0.99)),
    );
}
