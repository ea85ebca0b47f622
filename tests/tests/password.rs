//! Password lifecycle end to end: forgot/reset with the email read back from the emulator,
//! change with step-up, unsupported clients, enumeration, bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_e2e::*;
use serde_json::json;

/// A user with an authenticator; returns the tokens and the TOTP secret.
fn with_authenticator(api: &Api, user: &str) -> (serde_json::Value, Vec<u8>) {
    signed_in_with_authenticator(api, user, PASSWORD, now())
}

#[test]
fn forgot_answers_the_same_and_the_emailed_link_resets_without_signing_in() {
    let Some(api) = api() else { return };
    let user = unique("forgot");
    let (tokens, _) = with_authenticator(&api, &user);
    let known = api.post_json("/v1/password/forgot", &json!({"user_id": user}));
    let unknown = api.post_json("/v1/password/forgot", &json!({"user_id": unique("ghost")}));
    assert_eq!(known.status, 202, "{known:?}");
    assert_eq!(
        (known.status, known.text.clone()),
        (unknown.status, unknown.text.clone()),
        "no enumeration"
    );
    let (subject, body) = wait_for_email_about(&user, "Reset");
    assert!(subject.contains("Reset"), "{subject}");
    let token = link_token(&body);
    api.post_json(
        "/v1/password/reset",
        &json!({"token": token, "new_password": "qwerty123456"}),
    )
    .assert_problem(400, "validation_failed");
    let reset = api.post_json(
        "/v1/password/reset",
        &json!({"token": token, "new_password": "my brand new passphrase"}),
    );
    assert_eq!(reset.status, 204, "{reset:?}");
    api.post_json(
        "/v1/password/reset",
        &json!({"token": token, "new_password": "yet another passphrase"}),
    )
    .assert_problem(400, "validation_failed");
    api.sign_in(&user, PASSWORD)
        .assert_problem(401, "invalid_credentials");
    assert_eq!(
        api.sign_in(&user, "my brand new passphrase").json()["status"],
        "mfa_required",
        "a reset does not skip MFA"
    );
    api.post_json(
        "/v1/tokens/refresh",
        &json!({"refresh_token": tokens["refresh_token"]}),
    )
    .assert_problem(401, "unauthorized");
}

#[test]
fn changing_the_password_needs_the_current_one_and_a_recent_mfa() {
    let Some(api) = api() else { return };
    let user = unique("change");
    let (tokens, _) = with_authenticator(&api, &user);
    let change = |current: &str, new: &str| {
        api.post_auth(
            "/v1/me/password",
            &access_token(&tokens),
            &json!({"current_password": current, "new_password": new}),
        )
    };
    change("not it at all", "my changed passphrase").assert_problem(401, "invalid_credentials");
    change(PASSWORD, "short").assert_problem(400, "validation_failed");
    let changed = change(PASSWORD, "my changed passphrase");
    assert_eq!(changed.status, 204, "{changed:?}");
    assert_eq!(
        api.sign_in(&user, "my changed passphrase").json()["status"],
        "mfa_required"
    );
    // this session survives the change; its refresh token still works
    assert_eq!(
        api.post_json(
            "/v1/tokens/refresh",
            &json!({"refresh_token": tokens["refresh_token"]})
        )
        .status,
        200
    );
}

#[test]
fn outdated_browsers_are_refused_with_what_is_supported() {
    let Some(api) = api() else { return };
    let user = unique("ie");
    create_user(&user, PASSWORD, &[]);
    let body = json!({"user_id": user, "password": PASSWORD}).to_string();
    let ie = api.send(
        "POST",
        "/v1/sign-in",
        &[
            ("content-type", "application/json"),
            (
                "user-agent",
                "Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0) like Gecko",
            ),
        ],
        body.as_bytes(),
    );
    ie.assert_problem(403, "unsupported_client");
    assert!(ie.detail().contains("Firefox 115 or later"));
    let old_chrome = api.send("POST", "/v1/sign-in", &[("content-type", "application/json"), ("user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/90.0.4430.212 Safari/537.36")], body.as_bytes());
    old_chrome.assert_problem(403, "unsupported_client");
}

#[test]
fn bad_input_on_the_password_routes_is_a_clear_4xx() {
    let Some(api) = api() else { return };
    api.post_json("/v1/password/forgot", &json!({}))
        .assert_problem(400, "validation_failed");
    api.post_json("/v1/password/forgot", &json!({"user_id": ""}))
        .assert_problem(400, "validation_failed");
    api.post_json(
        "/v1/password/reset",
        &json!({"token": "nope", "new_password": "whatever passphrase"}),
    )
    .assert_problem(400, "validation_failed");
    api.post_json("/v1/password/reset", &json!({"token": "nope"}))
        .assert_problem(400, "validation_failed");
    api.post_json(
        "/v1/sign-in/nope/password",
        &json!({"new_password": "whatever passphrase"}),
    )
    .assert_problem(410, "challenge_expired");
    assert_eq!(
        api.send(
            "POST",
            "/v1/me/password",
            &[("content-type", "application/json")],
            b"{}"
        )
        .status,
        401
    );
}
