//! Concurrency end to end: guarantees that rest on DynamoDB's conditional writes hold when many
//! requests arrive at once. They hold on AWS and on LocalStack (DynamoDB Local isolates each
//! conditional write). moto's threaded server does not isolate them (check-then-write), which
//! is why `scripts/moto_server.py` serves DynamoDB one request at a time; against a plain
//! `moto_server` this test passed in 5 runs (the window between moto's check and its write is
//! narrow; a variant that also enrolled the users in parallel got 503s there, from moto's
//! TransactWriteItems racing concurrent writes). It does not yet catch plain moto reliably.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_e2e::*;

const PARALLEL: usize = 20;
const USERS: usize = 4;

/// An enrolled authenticator: its secret and the time step of the code that activated it.
type Enrolled = (Vec<u8>, u64);

/// Sends each (challenge, code) to the challenge's verify route, all requests released at
/// once; returns (status, problem code) per request, in order.
fn verify_at_once(api: &Api, requests: &[(String, String)]) -> Vec<(u16, String)> {
    let barrier = std::sync::Barrier::new(requests.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = requests
            .iter()
            .map(|(challenge, code)| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let answer = api.verify_code(challenge, "totp", code);
                    let problem = answer.json()["code"].as_str().unwrap_or("").to_owned();
                    (answer.status, problem)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// A user who enrolled an authenticator at the first sign-in with the current step's code;
/// returns the secret and that step.
fn enrolled(api: &Api, user: &str) -> Enrolled {
    let step = now() / 30;
    let (_, secret) = signed_in_with_authenticator(api, user, PASSWORD, step * 30);
    (secret, step)
}

/// A code the API has not seen for this secret: the current step's, or the next one's (±1 step
/// is accepted) while the enrolment's step is still current. Taken just before it is used, as
/// setting up takes a while.
fn fresh_code((secret, enrolled_at): &Enrolled) -> String {
    let step = (now() / 30).max(enrolled_at + 1);
    independent_totp(secret, step * 30)
}

#[test]
fn one_totp_code_sent_in_20_parallel_verifies_signs_in_exactly_once() {
    let Some(api) = api() else { return };
    // USERS users at once, each with its own code sent to 20 of its challenges at once: the
    // code's time step is recorded with one conditional write, so exactly one of each user's
    // 20 requests may use it. (Several users make the race dense enough to catch an emulator
    // whose conditional writes are check-then-write.)
    // Set up one user after another: enrolments in parallel were refused now and then on
    // LocalStack (401 at the first code), which is not what this test is about.
    let users: Vec<(String, Enrolled, Vec<String>)> = (0..USERS)
        .map(|i| {
            let user = unique(&format!("totp-race{i}"));
            let secret = enrolled(&api, &user);
            let challenges = (0..PARALLEL)
                .map(|_| api.challenge(&user, PASSWORD))
                .collect();
            (user, secret, challenges)
        })
        .collect();
    let users: Vec<(String, String, Vec<String>)> = users
        .into_iter()
        .map(|(user, secret, challenges)| (user, fresh_code(&secret), challenges))
        .collect();
    let all: Vec<(String, String)> = users
        .iter()
        .flat_map(|(_, code, challenges)| challenges.iter().map(|c| (c.clone(), code.clone())))
        .collect();
    let answers = verify_at_once(&api, &all);
    for (i, (user, code, _)) in users.iter().enumerate() {
        let mine = &answers[i * PARALLEL..(i + 1) * PARALLEL];
        let signed_in = mine.iter().filter(|(status, _)| *status == 200).count();
        assert_eq!(signed_in, 1, "exactly one sign-in for {user}: {mine:?}");
        // Every refused replay is a wrong second-factor answer for the user (SPEC §12): once
        // ten have been counted, the rest are refused by the second-factor lock instead.
        assert!(
            mine.iter().all(|answer| answer.0 == 200
                || *answer == (401, "code_invalid".to_owned())
                || *answer == (423, "locked".to_owned())),
            "the others are refused as a used code, or by the lock: {mine:?}"
        );
        // And the code stays used: a new challenge refuses it (or the lock still does).
        let again = api.challenge(user, PASSWORD);
        let replay = api.verify_code(&again, "totp", code);
        let locked = mine.iter().any(|a| a.0 == 423);
        if locked {
            replay.assert_problem(423, "locked");
        } else {
            replay.assert_problem(401, "code_invalid");
        }
    }
}

/// Found by this test on LocalStack: of 20 verifies of one challenge, 5 reserved a try and the
/// other 15 found the tries used up and deleted the challenge; a delete that landed between
/// the winner's TOTP-step write and its `complete_challenge` made the right code fail too (0
/// sign-ins, the code's step spent). Now a challenge out of tries is never deleted under a
/// request that may still win (`codes::reserve_try`).
#[test]
fn one_totp_code_sent_20_times_at_once_to_one_challenge_signs_in_exactly_once() {
    let Some(api) = api() else { return };
    let user = unique("totp-race-one");
    let secret = enrolled(&api, &user);
    let challenge = api.challenge(&user, PASSWORD);
    let code = fresh_code(&secret);
    let answers = verify_at_once(&api, &vec![(challenge, code); PARALLEL]);
    let signed_in = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(signed_in, 1, "exactly one sign-in: {answers:?}");
    assert!(
        answers
            .iter()
            .all(|(status, _)| *status == 200 || (400..500).contains(status)),
        "{answers:?}"
    );
}
