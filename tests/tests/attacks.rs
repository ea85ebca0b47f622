//! The second round's guarantees through the HTTP surface (SPEC §12): what a script with a
//! stolen password, a stolen token or one admin account gets — against the local endpoint and
//! the AWS emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_e2e::*;
use serde_json::json;

#[test]
fn ten_wrong_codes_across_challenges_lock_the_second_factor_with_423_and_retry_after() {
    let Some(api) = api() else { return };
    let (user, phone, _) = user_with_phone(&api, "guesser", "sms");
    let mut answered = 0;
    let mut last = None;
    for wrongs in [4, 4, 2] {
        let (challenge, code) = challenge_with_code(&api, &user, &phone);
        for _ in 0..wrongs {
            answered += 1;
            let answer = api.verify_code(&challenge, "sms", &wrong_code(&code));
            if answered < 10 {
                answer.assert_problem(401, "code_invalid");
            } else {
                answer.assert_problem(423, "locked");
            }
        }
        last = Some((challenge, code));
    }
    let (challenge, code) = last.unwrap();
    let refused = api.verify_code(&challenge, "sms", &code);
    refused.assert_problem(423, "locked");
    let retry: i64 = refused.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1700..=1800).contains(&retry), "{refused:?}");
    assert!(!refused.text.contains(&code), "no secret in an error");
    // No more texts while locked, whatever the challenge.
    let fresh = api.challenge(&user, PASSWORD);
    api.send_code(&fresh, "sms").assert_problem(423, "locked");
}

#[test]
fn an_access_token_is_refused_the_moment_its_session_ends() {
    let Some(api) = api() else { return };
    let signed = signed_in_with_phone(&api, &unique("signout"), PASSWORD, &[]);
    let access = access_token(&signed);
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
    // The enrolment sent the first text.
    let (user, phone, _) = user_with_phone(&api, "pumper", "sms");
    let mut sent = 1;
    while sent < 10 {
        let challenge = api.challenge(&user, PASSWORD);
        for _ in 0..3 {
            if sent == 10 {
                break;
            }
            let answer = api.send_code(&challenge, "sms");
            assert_eq!(answer.status, 202, "text {}: {answer:?}", sent + 1);
            sent += 1;
        }
    }
    let challenge = api.challenge(&user, PASSWORD);
    let eleventh = api.send_code(&challenge, "sms");
    eleventh.assert_problem(429, "send_limit_reached");
    assert!(eleventh.retry_after.is_some(), "{eleventh:?}");
    assert_eq!(sms_to(&phone).len(), 10, "exactly ten texts left");
}

#[test]
fn letters_in_a_number_and_voice_to_a_caribbean_plus_one_number_are_refused() {
    let Some(api) = api() else { return };
    let signed = signed_in_with_phone(&api, &unique("vanity"), PASSWORD, &[]);
    let access = access_token(&signed);
    api.add_phone(&access, "+1202555CALL", "sms")
        .assert_problem(400, "validation_failed");
    api.add_phone(&access, "+18765550123", "voice")
        .assert_problem(422, "voice_not_supported");
    // Jamaica takes texts.
    let text = api.add_phone(&access, "+18765550123", "sms");
    assert_eq!(text.status, 201, "{text:?}");
}

#[test]
fn one_admin_alone_cannot_make_an_admin_nor_deactivate_one() {
    let Some(api) = api() else { return };
    let alice = signed_in_with_phone(&api, &unique("alice-adm"), PASSWORD, &["admin"]);
    let bob_id = unique("bob-adm");
    let bob = signed_in_with_phone(&api, &bob_id, PASSWORD, &["admin"]);
    let (alice, bob) = (access_token(&alice), access_token(&bob));

    let newcomer = unique("new-admin");
    let filed = api.invite(
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

    let approve = |token: &str| {
        api.post_auth(
            &format!("/v1/admin/requests/{request_id}/approve"),
            token,
            &json!({}),
        )
    };
    approve(&alice).assert_problem(403, "forbidden");
    let approved = approve(&bob);
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
