//! Passkeys end to end (SPEC §13): the local endpoint, the functions and DynamoDB on the
//! emulator, with the software authenticator playing the browser and the device. The client's
//! origin is the endpoint's at `localhost` (browsers refuse WebAuthn on IP addresses; the test
//! command sets `PORTCULLIS_PASSKEY_ORIGINS` to it). Tokens are checked against the JWKS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_e2e::*;
use portcullis_soft_authenticator::SoftAuthenticator;
use serde_json::{Value, json};

/// The web client's origin: the endpoint at `localhost`.
fn origin(api: &Api) -> String {
    api.base.replace("://127.0.0.1", "://localhost")
}

/// A new user (ID from `prefix`) whose first factor is a passkey registered inside the first
/// sign-in: the user ID and the sign-in answer.
fn registered(api: &Api, prefix: &str, authenticator: &mut SoftAuthenticator) -> (String, Value) {
    let user = unique(prefix);
    create_user(&user, PASSWORD, &[]);
    let first = api.sign_in(&user, PASSWORD).json();
    assert_eq!(first["status"], "mfa_enrolment_required", "{first}");
    let challenge = first["challenge_id"].as_str().unwrap();
    let enrol = api.post_json(
        &format!("/v1/sign-in/{challenge}/factors/passkey"),
        &json!({"name": "Test key"}),
    );
    assert_eq!(enrol.status, 201, "{enrol:?}");
    let body = enrol.json();
    assert_eq!(body["status"], "pending");
    let options = &body["options"];
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(
        options["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert_eq!(options["attestation"], "none");
    let factor = body["factor_id"].as_str().unwrap();
    let response = authenticator.register(options).unwrap();
    let done = api.post_json(
        &format!("/v1/sign-in/{challenge}/factors/{factor}/verify"),
        &json!({"credential": response}),
    );
    assert_eq!(done.status, 200, "{done:?}");
    // Single use: the same registration again is over.
    let again = api.post_json(
        &format!("/v1/sign-in/{challenge}/factors/{factor}/verify"),
        &json!({"credential": response}),
    );
    assert!(again.status == 410 || again.status == 409, "{again:?}");
    (user, done.json())
}

fn passwordless(api: &Api, authenticator: &mut SoftAuthenticator) -> Answer {
    let started = api.post_json("/v1/passkey/options", &json!({}));
    assert_eq!(started.status, 200, "{started:?}");
    let started = started.json();
    let response = authenticator.authenticate(&started["options"]).unwrap();
    api.post_json(
        "/v1/passkey/sign-in",
        &json!({"challenge_id": started["challenge_id"], "credential": response}),
    )
}

#[test]
fn a_passkey_registers_at_first_sign_in_and_then_signs_in_without_a_password() {
    let Some(api) = api() else { return };
    let mut authenticator = SoftAuthenticator::new(&origin(&api));
    let (user, first) = registered(&api, "e2e-pk", &mut authenticator);
    assert_eq!(first["status"], "signed_in");
    assert_eq!(first["recovery_codes"].as_array().map(Vec::len), Some(10));
    let claims = verify_with_jwks(&api, first["access_token"].as_str().unwrap());
    assert_eq!(claims["acr"], "urn:portcullis:acr:phishing-resistant");
    assert_eq!(claims["amr"], json!(["pwd", "hwk", "user", "mfa"]));

    // No user ID, no password: the passkey is both factors.
    let signed_in = passwordless(&api, &mut authenticator);
    assert_eq!(signed_in.status, 200, "{signed_in:?}");
    let body = signed_in.json();
    assert_eq!(body["status"], "signed_in");
    let claims = verify_with_jwks(&api, body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], user.to_lowercase());
    assert_eq!(claims["amr"], json!(["hwk", "user", "mfa"]));

    // Listed with its name; the last use is recorded.
    let token = body["access_token"].as_str().unwrap();
    let factors = api.get("/v1/me/factors", Some(token)).json();
    let passkey = &factors["factors"][0];
    assert_eq!(passkey["type"], "passkey", "{factors}");
    assert_eq!(passkey["name"], "Test key");
    assert_eq!(passkey["backup_eligible"], false);
    assert!(passkey["last_used_at"].is_i64(), "{factors}");
}

#[test]
fn every_failed_passwordless_sign_in_is_the_same_invalid_credentials() {
    let Some(api) = api() else { return };
    let mut authenticator = SoftAuthenticator::new(&origin(&api));
    registered(&api, "e2e-pkfail", &mut authenticator);

    let mut spoilt: Vec<(&str, SoftAuthenticator)> = Vec::new();
    let mut wrong_origin = authenticator.clone();
    wrong_origin.origin = "http://localhost:1".into();
    spoilt.push(("wrong origin", wrong_origin));
    let mut wrong_rp = authenticator.clone();
    wrong_rp.rp_id = Some("example.com".into());
    spoilt.push(("wrong RP ID", wrong_rp));
    let mut no_uv = authenticator.clone();
    no_uv.user_verified = false;
    spoilt.push(("no user verification", no_uv));
    let mut bad_signature = authenticator.clone();
    bad_signature.tamper_signature = true;
    spoilt.push(("bad signature", bad_signature));
    spoilt.push(("unknown credential", SoftAuthenticator::new(&origin(&api))));
    for (what, mut a) in spoilt {
        let answer = passwordless(&api, &mut a);
        assert_eq!(answer.status, 401, "{what}: {answer:?}");
        answer.assert_problem(401, "invalid_credentials");
    }
    // A replayed assertion, a made-up challenge and a malformed credential: the same.
    let started = api.post_json("/v1/passkey/options", &json!({})).json();
    let response = authenticator.authenticate(&started["options"]).unwrap();
    let body = json!({"challenge_id": started["challenge_id"], "credential": response});
    assert_eq!(api.post_json("/v1/passkey/sign-in", &body).status, 200);
    api.post_json("/v1/passkey/sign-in", &body)
        .assert_problem(401, "invalid_credentials");
    api.post_json(
        "/v1/passkey/sign-in",
        &json!({"challenge_id": "made-up", "credential": response}),
    )
    .assert_problem(401, "invalid_credentials");
    api.post_json(
        "/v1/passkey/sign-in",
        &json!({"challenge_id": started["challenge_id"], "credential": {"id": 5}}),
    )
    .assert_problem(401, "invalid_credentials");
    // Bad input is still a 400: a body that is not the request.
    api.post_json("/v1/passkey/sign-in", &json!({"credential": {}}))
        .assert_problem(400, "validation_failed");
}

#[test]
fn a_passkey_is_the_second_step_after_a_password_and_steps_up_a_session() {
    let Some(api) = api() else { return };
    let mut authenticator = SoftAuthenticator::synced(&origin(&api));
    let (user, _) = registered(&api, "e2e-pk2", &mut authenticator);

    let answer = api.sign_in(&user, PASSWORD).json();
    assert_eq!(answer["status"], "mfa_required");
    let methods = strings_of(&answer["methods"], "method");
    assert!(methods.contains(&"passkey"), "{answer}");
    let challenge = answer["challenge_id"].as_str().unwrap();
    let options = api.post_json(
        &format!("/v1/sign-in/{challenge}/passkey/options"),
        &json!({}),
    );
    assert_eq!(options.status, 200, "{options:?}");
    let options = options.json()["options"].clone();
    assert_eq!(
        options["allowCredentials"].as_array().map(Vec::len),
        Some(1)
    );
    // A wrong assertion is a wrong answer, like a wrong code.
    let mut spoilt = authenticator.clone();
    spoilt.tamper_signature = true;
    let wrong = spoilt.authenticate(&options).unwrap();
    api.post_json(
        &format!("/v1/sign-in/{challenge}/verify"),
        &json!({"method": "passkey", "credential": wrong}),
    )
    .assert_problem(401, "code_invalid");
    // The options were used up by that answer: new ones, and the right passkey.
    let options = api
        .post_json(
            &format!("/v1/sign-in/{challenge}/passkey/options"),
            &json!({}),
        )
        .json()["options"]
        .clone();
    let right = authenticator.authenticate(&options).unwrap();
    let done = api.post_json(
        &format!("/v1/sign-in/{challenge}/verify"),
        &json!({"method": "passkey", "credential": right}),
    );
    assert_eq!(done.status, 200, "{done:?}");
    let token = done.json()["access_token"].as_str().unwrap().to_owned();
    let claims = verify_with_jwks(&api, &token);
    assert_eq!(claims["amr"], json!(["pwd", "swk", "user", "mfa"]));

    // Step-up with the passkey, then rename it (no step-up needed) and remove it (step-up).
    let started = api.post_auth("/v1/me/step-up", &token, &json!({"method": "passkey"}));
    assert_eq!(started.status, 201, "{started:?}");
    let started = started.json();
    let assertion = authenticator.authenticate(&started["options"]).unwrap();
    let elevated = api.post_auth(
        &format!(
            "/v1/me/step-up/{}/verify",
            started["challenge_id"].as_str().unwrap()
        ),
        &token,
        &json!({"method": "passkey", "credential": assertion}),
    );
    assert_eq!(elevated.status, 200, "{elevated:?}");
    let token = elevated.json()["access_token"].as_str().unwrap().to_owned();
    let factors = api.get("/v1/me/factors", Some(&token)).json();
    let factor = factors["factors"][0]["factor_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(factors["factors"][0]["backup_state"], true, "{factors}");
    let renamed = api.send(
        "PATCH",
        &format!("/v1/me/factors/{factor}"),
        &[
            ("content-type", "application/json"),
            ("user-agent", UA),
            ("authorization", &format!("Bearer {token}")),
        ],
        json!({"name": "Phone"}).to_string().as_bytes(),
    );
    assert_eq!(renamed.status, 200, "{renamed:?}");
    assert_eq!(renamed.json()["name"], "Phone");
    let removed = api.delete_auth(&format!("/v1/me/factors/{factor}"), &token);
    assert_eq!(removed.status, 204, "{removed:?}");
    passwordless(&api, &mut authenticator).assert_problem(401, "invalid_credentials");
}
