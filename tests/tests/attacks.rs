//! The second round's guarantees through the HTTP surface (SPEC §12): what a script with a
//! stolen password, a stolen token or one admin account gets — against the local endpoint and
//! the AWS emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_e2e::*;
use serde_json::{Value, json};

const PASSWORD: &str = "a perfectly good passphrase";

fn token(answer: &Value) -> String {
    answer["access_token"].as_str().unwrap().to_owned()
}

/// Opens a sign-in challenge and has a text sent to `phone`; returns the challenge and code.
fn challenge_with_code(api: &Api, user: &str, phone: &str) -> (String, String) {
    let challenge = api.sign_in(user, PASSWORD).json()["challenge_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen = sms_to(phone).len();
    let sent = api.post_json(
        &format!("/v1/sign-in/{challenge}/codes"),
        &json!({"method": "sms"}),
    );
    assert_eq!(sent.status, 202, "{sent:?}");
    (challenge, next_sms_code(phone, seen))
}

fn wrong(code: &str) -> String {
    format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000)
}

#[test]
fn ten_wrong_codes_across_challenges_lock_the_second_factor_with_423_and_retry_after() {
    let Some(api) = api() else { return };
    let user = unique("guesser");
    let (_, phone) = signed_in_with_phone_number(&api, &user, PASSWORD, &[]);
    let mut answered = 0;
    let mut last = None;
    for wrongs in [4, 4, 2] {
        let (challenge, code) = challenge_with_code(&api, &user, &phone);
        for _ in 0..wrongs {
            answered += 1;
            let answer = api.post_json(
                &format!("/v1/sign-in/{challenge}/verify"),
                &json!({"method": "sms", "code": wrong(&code)}),
            );
            if answered < 10 {
                answer.assert_problem(401, "code_invalid");
            } else {
                answer.assert_problem(423, "locked");
            }
        }
        last = Some((challenge, code));
    }
    let (challenge, code) = last.unwrap();
    let refused = api.post_json(
        &format!("/v1/sign-in/{challenge}/verify"),
        &json!({"method": "sms", "code": code}),
    );
    refused.assert_problem(423, "locked");
    let retry: i64 = refused.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1700..=1800).contains(&retry), "{refused:?}");
    assert!(!refused.text.contains(&code), "no secret in an error");
    // No more texts while locked, whatever the challenge.
    let fresh = api.sign_in(&user, PASSWORD).json()["challenge_id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.post_json(
        &format!("/v1/sign-in/{fresh}/codes"),
        &json!({"method": "sms"}),
    )
    .assert_problem(423, "locked");
}

#[test]
fn an_access_token_is_refused_the_moment_its_session_ends() {
    let Some(api) = api() else { return };
    let signed = signed_in_with_phone(&api, &unique("signout"), PASSWORD, &[]);
    let access = token(&signed);
    assert_eq!(api.get("/v1/me/factors", Some(&access)).status, 200);
    let out = api.post_auth("/v1/sign-out", &access, &json!({}));
    assert_eq!(out.status, 204, "{out:?}");
    let after = api.get("/v1/me/factors", Some(&access));
    assert_eq!(
        after.status, 401,
        "not 5 minutes later: at once ({after:?})"
    );
    assert_eq!(api.get("/v1/me/devices", Some(&access)).status, 401);
}

#[test]
fn the_eleventh_text_in_an_hour_is_refused_across_challenges() {
    let Some(api) = api() else { return };
    let user = unique("pumper");
    // The enrolment sent the first text.
    let (_, phone) = signed_in_with_phone_number(&api, &user, PASSWORD, &[]);
    let mut sent = 1;
    while sent < 10 {
        let challenge = api.sign_in(&user, PASSWORD).json()["challenge_id"]
            .as_str()
            .unwrap()
            .to_owned();
        for _ in 0..3 {
            if sent == 10 {
                break;
            }
            let answer = api.post_json(
                &format!("/v1/sign-in/{challenge}/codes"),
                &json!({"method": "sms"}),
            );
            assert_eq!(answer.status, 202, "text {}: {answer:?}", sent + 1);
            sent += 1;
        }
    }
    let challenge = api.sign_in(&user, PASSWORD).json()["challenge_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let eleventh = api.post_json(
        &format!("/v1/sign-in/{challenge}/codes"),
        &json!({"method": "sms"}),
    );
    eleventh.assert_problem(429, "send_limit_reached");
    assert!(eleventh.retry_after.is_some(), "{eleventh:?}");
    assert_eq!(sms_to(&phone).len(), 10, "exactly ten texts left");
}

#[test]
fn letters_in_a_number_and_voice_to_a_caribbean_plus_one_number_are_refused() {
    let Some(api) = api() else { return };
    let signed = signed_in_with_phone(&api, &unique("vanity"), PASSWORD, &[]);
    let access = token(&signed);
    api.post_auth(
        "/v1/me/factors/phone",
        &access,
        &json!({"phone": "+1202555CALL", "delivery": "sms"}),
    )
    .assert_problem(400, "validation_failed");
    api.post_auth(
        "/v1/me/factors/phone",
        &access,
        &json!({"phone": "+18765550123", "delivery": "voice"}),
    )
    .assert_problem(422, "voice_not_supported");
    // Jamaica takes texts.
    let text = api.post_auth(
        "/v1/me/factors/phone",
        &access,
        &json!({"phone": "+18765550123", "delivery": "sms"}),
    );
    assert_eq!(text.status, 201, "{text:?}");
}

#[test]
fn one_admin_alone_cannot_make_an_admin_nor_deactivate_one() {
    let Some(api) = api() else { return };
    let alice = signed_in_with_phone(&api, &unique("alice-adm"), PASSWORD, &["admin"]);
    let bob_id = unique("bob-adm");
    let bob = signed_in_with_phone(&api, &bob_id, PASSWORD, &["admin"]);
    let (alice, bob) = (token(&alice), token(&bob));

    let newcomer = unique("new-admin");
    let filed = api.post_auth(
        "/v1/admin/users",
        &alice,
        &json!({"user_id": newcomer, "email": newcomer, "roles": ["admin"]}),
    );
    assert_eq!(filed.status, 202, "{filed:?}");
    assert_eq!(filed.json()["status"], "pending_approval");
    let request_id = filed.json()["request_id"].as_str().unwrap().to_owned();
    assert!(
        settled_emails_to(&newcomer).is_empty(),
        "no invitation before approval"
    );
    let searched = api.get(&format!("/v1/admin/users?query={newcomer}"), Some(&alice));
    assert_eq!(
        searched.json()["users"],
        json!([]),
        "no user before approval"
    );

    let queue = api.get("/v1/admin/requests?status=pending", Some(&bob));
    assert_eq!(queue.status, 200, "{queue:?}");
    let listed = queue.json()["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["request_id"] == request_id.as_str())
        .cloned()
        .expect("the request is in the queue");
    assert_eq!(listed["kind"], "admin_invitation");
    assert_eq!(listed["can_approve"], true);

    api.post_auth(
        &format!("/v1/admin/requests/{request_id}/approve"),
        &alice,
        &json!({}),
    )
    .assert_problem(403, "forbidden");
    let approved = api.post_auth(
        &format!("/v1/admin/requests/{request_id}/approve"),
        &bob,
        &json!({}),
    );
    assert_eq!(approved.status, 200, "{approved:?}");
    assert_eq!(approved.json()["status"], "approved");
    assert_eq!(
        wait_for_emails(&newcomer, 1).len(),
        1,
        "the invitation goes out now"
    );
    let found = api.get(&format!("/v1/admin/users?query={newcomer}"), Some(&alice));
    assert_eq!(found.json()["users"][0]["roles"], json!(["admin"]));

    // Deactivating an admin waits for another admin too.
    let deactivate = api.post_auth(
        &format!("/v1/admin/users/{bob_id}/deactivate"),
        &alice,
        &json!({}),
    );
    assert_eq!(deactivate.status, 202, "{deactivate:?}");
    assert_eq!(
        api.get("/v1/me/factors", Some(&bob)).status,
        200,
        "bob is still active"
    );
    let detail = api.get(&format!("/v1/admin/users/{bob_id}"), Some(&alice));
    assert_eq!(detail.status, 200, "{detail:?}");
    assert_eq!(detail.json()["status"], "active");
    assert!(!detail.text.contains("password_hash"));
}
