//! `POST /v1/sign-in` end to end: the local endpoint, the function, DynamoDB on the emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_e2e::{PASSWORD, UA, api, create_user, unique};
use serde_json::json;

#[test]
fn a_user_created_with_the_cli_must_enrol_mfa() {
    let Some(api) = api() else { return };
    let user = unique("newcomer");
    create_user(&user, PASSWORD, &["admin"]);
    let answer = api.sign_in(&format!("  {}  ", user.to_uppercase()), PASSWORD);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.content_type, "application/json");
    let body = answer.json();
    assert_eq!(body["status"], "mfa_enrolment_required");
    assert!(body["challenge_id"].as_str().unwrap().len() >= 43);
    assert_eq!(body["expires_in"], 600);
    assert!(body.get("tokens").is_none() && body.get("access_token").is_none());
}

#[test]
fn unknown_user_and_wrong_password_get_the_same_answer() {
    let Some(api) = api() else { return };
    let user = unique("known");
    create_user(&user, PASSWORD, &[]);
    let wrong = api.sign_in(&user, "not the right passphrase");
    let unknown = api.sign_in(&unique("unknown"), "not the right passphrase");
    wrong.assert_problem(401, "invalid_credentials");
    assert_eq!(wrong.status, unknown.status);
    assert_eq!(wrong.text, unknown.text, "byte-identical bodies");
    assert_eq!(wrong.content_type, unknown.content_type);
}

#[test]
fn five_wrong_passwords_lock_the_user_id_with_retry_after() {
    let Some(api) = api() else { return };
    let user = unique("locked");
    create_user(&user, PASSWORD, &[]);
    for _ in 0..4 {
        api.sign_in(&user, "not the right passphrase")
            .assert_problem(401, "invalid_credentials");
    }
    let fifth = api.sign_in(&user, "not the right passphrase");
    fifth.assert_problem(423, "locked");
    let retry: i64 = fifth.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1790..=1800).contains(&retry), "Retry-After {retry}");
    let during = api.sign_in(&user, PASSWORD);
    during.assert_problem(423, "locked");
    // An unknown ID locks the same way, so a lock says nothing about existence.
    let ghost = unique("ghost");
    for _ in 0..4 {
        api.sign_in(&ghost, "not the right passphrase")
            .assert_problem(401, "invalid_credentials");
    }
    api.sign_in(&ghost, "not the right passphrase")
        .assert_problem(423, "locked");
}

#[test]
fn bad_input_gets_a_clear_4xx_and_counts_nothing() {
    let Some(api) = api() else { return };
    let user = unique("fuzzed");
    create_user(&user, PASSWORD, &[]);
    let json_ct = [("content-type", "application/json"), ("user-agent", UA)];
    type Case<'a> = (Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (json_ct.to_vec(), b"{".to_vec(), 400, "validation_failed"),
        (json_ct.to_vec(), b"".to_vec(), 400, "validation_failed"),
        (json_ct.to_vec(), b"[]".to_vec(), 400, "validation_failed"),
        (
            json_ct.to_vec(),
            json!({"user_id": user}).to_string().into_bytes(),
            400,
            "validation_failed",
        ),
        (
            json_ct.to_vec(),
            json!({"user_id": 42, "password": PASSWORD})
                .to_string()
                .into_bytes(),
            400,
            "validation_failed",
        ),
        (
            json_ct.to_vec(),
            json!({"user_id": user, "password": PASSWORD, "admin": true})
                .to_string()
                .into_bytes(),
            400,
            "validation_failed",
        ),
        (
            json_ct.to_vec(),
            json!({"user_id": user, "password": "x".repeat(5000)})
                .to_string()
                .into_bytes(),
            400,
            "validation_failed",
        ),
        (
            json_ct.to_vec(),
            b"{\"user_id\":\"a\",\"password\":\"\xff\xfe\"}".to_vec(),
            400,
            "validation_failed",
        ),
        (
            json_ct.to_vec(),
            vec![b' '; 64 * 1024],
            413,
            "payload_too_large",
        ),
        (
            vec![("content-type", "text/plain")],
            json!({"user_id": user, "password": "wrong one"})
                .to_string()
                .into_bytes(),
            415,
            "unsupported_media_type",
        ),
        (
            vec![],
            json!({"user_id": user, "password": "wrong one"})
                .to_string()
                .into_bytes(),
            415,
            "unsupported_media_type",
        ),
    ];
    for (headers, body, status, code) in cases {
        let answer = api.send("POST", "/v1/sign-in", &headers, &body);
        answer.assert_problem(status, code);
        assert!(
            !answer.text.contains(PASSWORD),
            "no secret echoed: {}",
            answer.text
        );
    }
    // None of the above counted as a failed password: four wrong ones leave the account open.
    for _ in 0..4 {
        api.sign_in(&user, "not the right passphrase")
            .assert_problem(401, "invalid_credentials");
    }
    assert_eq!(api.sign_in(&user, PASSWORD).status, 200);
}

#[test]
fn unknown_routes_are_404_and_wrong_methods_405_problem_json() {
    let Some(api) = api() else { return };
    let wrong_method = api.send("GET", "/v1/sign-in", &[], b"");
    wrong_method.assert_problem(405, "method_not_allowed");
    api.send(
        "POST",
        "/v1/nowhere",
        &[("content-type", "application/json")],
        b"{}",
    )
    .assert_problem(404, "not_found");
}
