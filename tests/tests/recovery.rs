//! Recovery codes, trusted devices and step-up end to end on the local stack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_e2e::*;
use serde_json::{Value, json};

/// Creates a user who enrols an authenticator in the first sign-in; returns (tokens, secret).
fn with_authenticator(api: &Api, user: &str) -> (Value, Vec<u8>) {
    signed_in_with_authenticator(api, user, PASSWORD, now())
}

/// As [`with_authenticator`], returning the recovery codes handed out with the authenticator
/// instead of the tokens.
fn with_recovery_codes(api: &Api, user: &str) -> (Vec<String>, Vec<u8>) {
    let (first, secret) = with_authenticator(api, user);
    let codes = first["recovery_codes"]
        .as_array()
        .expect("recovery codes with the authenticator")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (codes, secret)
}

#[test]
fn a_user_who_lost_their_phone_signs_in_with_a_recovery_code_and_re_enrols() {
    let Some(api) = api() else { return };
    let user = unique("lostphone");
    let (codes, _) = with_recovery_codes(&api, &user);
    assert_eq!(codes.len(), 10);

    let answer = api.sign_in(&user, PASSWORD).json();
    assert!(
        answer["methods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["method"] == "recovery_code"),
        "{answer}"
    );
    let challenge = answer["challenge_id"].as_str().unwrap();
    let done = api.post_json(
        &format!("/v1/sign-in/{challenge}/recovery-code"),
        &json!({"code": codes[0]}),
    );
    assert_eq!(done.status, 200, "{done:?}");
    let done = done.json();
    assert_eq!(done["recovery_codes_remaining"], 9);
    let access = done["access_token"].as_str().unwrap();
    assert_eq!(
        verify_with_jwks(&api, access)["amr"],
        json!(["pwd", "recovery", "mfa"])
    );
    assert_eq!(
        api.get("/v1/me/recovery-codes", Some(access)).json()["remaining"],
        9
    );

    // the same code again: refused
    let again = api.challenge(&user, PASSWORD);
    api.post_json(
        &format!("/v1/sign-in/{again}/recovery-code"),
        &json!({"code": codes[0]}),
    )
    .assert_problem(401, "code_invalid");

    // re-enrol a new authenticator right away (the recovery sign-in is fresh MFA: elevated)
    let enrol = api.post_auth("/v1/me/factors/totp", access, &json!({}));
    assert_eq!(enrol.status, 201, "{enrol:?}");
    let body = enrol.json();
    let secret = base32_decode(body["secret"].as_str().unwrap());
    let verified = api.post_auth(
        &format!(
            "/v1/me/factors/{}/verify",
            body["factor_id"].as_str().unwrap()
        ),
        access,
        &json!({"code": independent_totp(&secret, now())}),
    );
    assert_eq!(verified.status, 200, "{verified:?}");
    assert_eq!(
        verified.json()["recovery_codes"].as_array().unwrap().len(),
        10,
        "a new set comes with the new authenticator"
    );
    assert_eq!(
        api.get("/v1/me/recovery-codes", Some(access)).json()["remaining"],
        10
    );
}

#[test]
fn a_trusted_device_skips_mfa_until_removed_and_sensitive_actions_still_need_a_code() {
    let Some(api) = api() else { return };
    let user = unique("trusted");
    let (recovery_codes, secret) = with_recovery_codes(&api, &user);
    // sign in with the app and trust the device (next step's code: the enrolment used this one)
    let challenge = api.challenge(&user, PASSWORD);
    let done = api.post_json(&format!("/v1/sign-in/{challenge}/verify"), &json!({"method": "totp", "code": independent_totp(&secret, now() + 30), "trust_device": true, "device_name": "Work laptop"}));
    assert_eq!(done.status, 200, "{done:?}");
    let device_token = done.json()["device_token"]
        .as_str()
        .expect("a device token")
        .to_owned();

    let with_device = |token: &str| {
        api.send(
            "POST",
            "/v1/sign-in",
            &[
                ("content-type", "application/json"),
                ("user-agent", UA),
                ("x-device-token", token),
            ],
            json!({"user_id": user, "password": PASSWORD})
                .to_string()
                .as_bytes(),
        )
    };
    let skipped = with_device(&device_token);
    assert_eq!(skipped.status, 200, "{skipped:?}");
    let skipped = skipped.json();
    assert_eq!(skipped["status"], "signed_in");
    let access = skipped["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        verify_with_jwks(&api, &access)["acr"],
        "urn:portcullis:acr:trusted-device"
    );

    let devices = api.get("/v1/me/devices", Some(&access)).json();
    let device = &devices["devices"][0];
    assert_eq!(device["name"], "Work laptop");
    assert_eq!(
        device["expires_at"].as_i64().unwrap() - device["created_at"].as_i64().unwrap(),
        180 * 86_400
    );

    // sensitive actions are refused on this session until a step-up
    api.post_auth("/v1/me/recovery-codes", &access, &json!({}))
        .assert_problem(403, "step_up_required");
    api.post_auth("/v1/me/factors/totp", &access, &json!({}))
        .assert_problem(403, "step_up_required");
    api.add_phone(&access, "+12025550100", "sms")
        .assert_problem(403, "step_up_required");
    let factors = api.get("/v1/me/factors", Some(&access)).json();
    let factor = factors["factors"][0]["factor_id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.delete_auth(&format!("/v1/me/factors/{factor}"), &access)
        .assert_problem(403, "step_up_required");

    // step up with a recovery code (the authenticator's current codes are used up)
    let step = api.post_auth(
        "/v1/me/step-up",
        &access,
        &json!({"method": "recovery_code"}),
    );
    assert_eq!(step.status, 201, "{step:?}");
    let step_id = step.json()["challenge_id"].as_str().unwrap().to_owned();
    let elevated = api.post_auth(
        &format!("/v1/me/step-up/{step_id}/recovery-code"),
        &access,
        &json!({"code": recovery_codes[1]}),
    );
    assert_eq!(elevated.status, 200, "{elevated:?}");
    assert_eq!(elevated.json()["recovery_codes_remaining"], 9);
    let elevated = elevated.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        verify_with_jwks(&api, &elevated)["acr"],
        "urn:portcullis:acr:mfa"
    );
    let regenerated = api.post_auth("/v1/me/recovery-codes", &elevated, &json!({}));
    assert_eq!(regenerated.status, 201, "{regenerated:?}");
    assert_eq!(
        regenerated.json()["recovery_codes"]
            .as_array()
            .unwrap()
            .len(),
        10
    );

    // remove the device: the next sign-in needs MFA again
    let device_id = device["device_id"].as_str().unwrap();
    let remove = || api.delete_auth(&format!("/v1/me/devices/{device_id}"), &access);
    assert_eq!(remove().status, 204);
    assert_eq!(with_device(&device_token).json()["status"], "mfa_required");
    remove().assert_problem(404, "not_found");
}

#[test]
fn bad_input_on_recovery_and_step_up_routes_is_a_clear_4xx() {
    let Some(api) = api() else { return };
    let user = unique("badrec");
    let access = &access_token(&with_authenticator(&api, &user).0);
    let challenge = api.challenge(&user, PASSWORD);
    api.post_json(
        &format!("/v1/sign-in/{challenge}/recovery-code"),
        &json!({"code": "short"}),
    )
    .assert_problem(400, "validation_failed");
    api.post_json(
        &format!("/v1/sign-in/{challenge}/recovery-code"),
        &json!({"code": 12}),
    )
    .assert_problem(400, "validation_failed");
    api.post_json(
        &format!("/v1/sign-in/{challenge}/recovery-code"),
        &json!({"code": "AAAA-AAAA-AAAA-AAAA", "extra": 1}),
    )
    .assert_problem(400, "validation_failed");
    api.post_json(
        "/v1/sign-in/nope/recovery-code",
        &json!({"code": "AAAA-AAAA-AAAA-AAAA"}),
    )
    .assert_problem(410, "challenge_expired");
    api.post_auth(
        "/v1/me/step-up",
        access,
        &json!({"method": "carrier-pigeon"}),
    )
    .assert_problem(400, "validation_failed");
    api.post_auth(
        "/v1/me/step-up/nope/verify",
        access,
        &json!({"method": "totp", "code": "123456"}),
    )
    .assert_problem(410, "challenge_expired");
    api.post_auth("/v1/me/recovery-codes", access, &json!({"count": 50}))
        .assert_problem(400, "validation_failed");
    let bare = api.send("DELETE", "/v1/me/devices", &[], b"");
    assert_eq!(bare.status, 401);
}
