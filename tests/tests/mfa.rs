//! MFA end to end (issue: notifier, codes, enrolment, tokens): the local endpoint, the functions,
//! DynamoDB, SNS and KMS on the emulator. Codes are read back from the emulator, as a phone
//! would receive them; tokens are checked against the published JWKS with an independent
//! verifier; TOTP codes come from an independent RFC 6238 implementation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_e2e::*;
use serde_json::{Value, json};

#[test]
fn independent_totp_matches_the_rfc_6238_vectors() {
    let secret = b"12345678901234567890";
    for (t, code) in [
        (59, "287082"),
        (1111111109, "081804"),
        (1234567890, "005924"),
        (2000000000, "279037"),
    ] {
        assert_eq!(independent_totp(secret, t), code);
    }
}

#[test]
fn enrol_a_phone_then_sign_in_by_sms_and_get_tokens_that_verify_with_the_jwks() {
    let Some(api) = api() else { return };
    let (user, phone, first) = user_with_phone(&api, "sms", "sms");
    assert_eq!(first["status"], "signed_in");
    let claims = verify_with_jwks(&api, first["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], user.to_lowercase());
    assert_eq!(claims["amr"], json!(["pwd", "sms", "mfa"]));
    assert_eq!(claims["acr"], "urn:portcullis:acr:mfa");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );

    // Second sign-in: mfa_required, masked phone, code by SMS.
    let answer = api.sign_in(&user, PASSWORD).json();
    assert_eq!(answer["status"], "mfa_required");
    let last4 = &phone[phone.len() - 4..];
    assert!(
        answer["methods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["method"] == "sms" && m["phone"] == format!("***-***-{last4}")),
        "{answer}"
    );
    assert!(
        !answer.to_string().contains(&phone[2..]),
        "the number is masked"
    );
    let challenge = answer["challenge_id"].as_str().unwrap();
    let seen = sms_to(&phone).len();
    let sent = api.send_code(challenge, "sms");
    assert_eq!(sent.status, 202, "{sent:?}");
    assert_eq!(sent.json()["sends_remaining"], 4);
    let code = next_sms_code(&phone, seen);
    let text = sms_to(&phone).last().unwrap().clone();
    assert!(
        text.contains("to sign in") && text.contains("never ask you for this code"),
        "{text}"
    );
    api.verify_code(challenge, "sms", &wrong_code(&code))
        .assert_problem(401, "code_invalid");
    let done = api.verify_code(challenge, "sms", &code);
    assert_eq!(done.status, 200, "{done:?}");
    verify_with_jwks(&api, done.json()["access_token"].as_str().unwrap());
    // single use
    api.verify_code(challenge, "sms", &code)
        .assert_problem(410, "challenge_expired");
}

#[test]
fn voice_codes_go_to_the_voice_topic_and_complete_a_sign_in() {
    let Some(api) = api() else { return };
    let (user, phone, _) = user_with_phone(&api, "voice", "voice");
    let challenge = api.challenge(&user, PASSWORD);
    let seen = voice_to(&phone).len();
    assert_eq!(api.send_code(&challenge, "voice").status, 202);
    let calls = next_voice_call(&phone, seen);
    assert_eq!(calls.len(), seen + 1);
    let call = calls.last().unwrap();
    assert_eq!(call["version"], 1);
    assert_eq!(call["kind"], "one_time_code");
    let code = call["code"].as_str().unwrap();
    assert_eq!(
        call["spoken_code"].as_str().unwrap().replace(", ", ""),
        code
    );
    let done = api.verify_code(&challenge, "voice", code);
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(
        verify_with_jwks(&api, done.json()["access_token"].as_str().unwrap())["amr"],
        json!(["pwd", "tel", "mfa"])
    );
}

#[test]
fn an_authenticator_app_enrolled_from_the_session_signs_in_with_an_independent_code() {
    let Some(api) = api() else { return };
    let (user, _, tokens) = user_with_phone(&api, "totp", "sms");
    let access = tokens["access_token"].as_str().unwrap();
    let enrol = api.post_auth("/v1/me/factors/totp", access, &json!({}));
    assert_eq!(enrol.status, 201, "{enrol:?}");
    let body = enrol.json();
    let secret = base32_decode(body["secret"].as_str().unwrap());
    assert_eq!(secret.len(), 20, "160-bit secret");
    assert!(
        body["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    assert!(body["qr_svg"].as_str().unwrap().contains("<svg"));
    let png = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        body["qr_png_base64"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let factor = body["factor_id"].as_str().unwrap();
    let t = now();
    let activated = api.post_auth(
        &format!("/v1/me/factors/{factor}/verify"),
        access,
        &json!({"code": independent_totp(&secret, t)}),
    );
    assert_eq!(activated.status, 200, "{activated:?}");
    assert_eq!(activated.json()["status"], "active");

    // Sign in with the app. The code of the next step is accepted (±1 step of drift), and the
    // one just used at enrolment would be refused as a replay.
    let answer = api.sign_in(&user, PASSWORD).json();
    assert!(strings_of(&answer["methods"], "method").contains(&"totp"));
    let challenge = answer["challenge_id"].as_str().unwrap();
    let replay = api.verify_code(challenge, "totp", &independent_totp(&secret, t));
    replay.assert_problem(401, "code_invalid");
    let done = api.verify_code(challenge, "totp", &independent_totp(&secret, t + 30));
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(
        verify_with_jwks(&api, done.json()["access_token"].as_str().unwrap())["amr"],
        json!(["pwd", "otp", "mfa"])
    );

    // Both listed. The list is ordered by creation second, then by factor ID (random): the
    // phone and the app are often made within one second here, so their order is not fixed.
    let listed = api.get("/v1/me/factors", Some(access)).json();
    let mut kinds = strings_of(&listed["factors"], "type");
    kinds.sort_unstable();
    assert_eq!(kinds, vec!["phone", "totp"]);
}

#[test]
fn refresh_rotates_reuse_revokes_and_sign_out_ends_the_session() {
    let Some(api) = api() else { return };
    let (user, phone, tokens) = user_with_phone(&api, "refresh", "sms");
    let first = tokens["refresh_token"].as_str().unwrap();
    let second = api.post_json("/v1/tokens/refresh", &json!({"refresh_token": first}));
    assert_eq!(second.status, 200, "{second:?}");
    let second = second.json();
    verify_with_jwks(&api, second["access_token"].as_str().unwrap());
    api.post_json("/v1/tokens/refresh", &json!({"refresh_token": first}))
        .assert_problem(401, "unauthorized");
    api.post_json(
        "/v1/tokens/refresh",
        &json!({"refresh_token": second["refresh_token"]}),
    )
    .assert_problem(401, "unauthorized");

    let again = enrolled_session(&api, &user, &phone);
    let access = again["access_token"].as_str().unwrap();
    let out = api.post_auth("/v1/sign-out", access, &json!({}));
    assert_eq!(out.status, 204, "{out:?}");
    api.post_json(
        "/v1/tokens/refresh",
        &json!({"refresh_token": again["refresh_token"]}),
    )
    .assert_problem(401, "unauthorized");
}

/// Signs in again by SMS to `phone`, the user's one phone.
fn enrolled_session(api: &Api, user: &str, phone: &str) -> Value {
    let answer = api.sign_in(user, PASSWORD).json();
    let challenge = answer["challenge_id"].as_str().unwrap();
    let last4 = &phone[phone.len() - 4..];
    assert_eq!(
        answer["methods"][0]["phone"],
        format!("***-***-{last4}"),
        "masked everywhere"
    );
    let state_phone = phone.to_owned();
    let seen = sms_to(&state_phone).len();
    let sent = api.send_code(challenge, "sms");
    assert_eq!(sent.status, 202);
    assert_eq!(
        sent.json()["sent_to"],
        format!("***-***-{last4}"),
        "the code goes to the enrolled number"
    );
    let code = next_sms_code(&state_phone, seen);
    let done = api.verify_code(challenge, "sms", &code);
    assert_eq!(done.status, 200, "{done:?}");
    done.json()
}

#[test]
fn the_same_right_code_sent_concurrently_signs_in_once_and_sends_stop_at_five() {
    let Some(api) = api() else { return };
    let (user, phone, _) = user_with_phone(&api, "race", "sms");
    // One code, submitted 8 times at once: exactly one sign-in.
    let (challenge, code) = challenge_with_code(&api, &user, &phone);
    let results: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| api.verify_code(&challenge, "sms", &code).status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|s| **s == 200).count(),
        1,
        "{results:?}"
    );
    // 8 send requests at once on a new challenge: exactly 5 go out.
    let challenge = api.challenge(&user, PASSWORD);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| api.send_code(&challenge, "sms").status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        5,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 202 || *s == 429),
        "{statuses:?}"
    );
    // the send bar is on the user: a new sign-in cannot send either
    let fresh = api.challenge(&user, PASSWORD);
    let barred = api.send_code(&fresh, "sms");
    barred.assert_problem(429, "send_limit_reached");
    assert!(barred.detail().contains("wait 30 minutes"));
    assert!(barred.retry_after.is_some());
}

#[test]
fn bad_input_on_the_mfa_routes_is_a_clear_4xx() {
    let Some(api) = api() else { return };
    let user = unique("badmfa");
    create_user(&user, PASSWORD, &[]);
    let challenge = api.challenge(&user, PASSWORD);
    let phone = |p: &str, d: &str| api.enrol_phone(&challenge, p, d);
    phone("+12025550143 ext. 12", "sms").assert_problem(400, "validation_failed");
    assert!(
        phone("+12025550143 x12", "sms")
            .detail()
            .contains("extension")
    );
    phone("2025550143", "sms").assert_problem(400, "validation_failed");
    phone("+447911123456", "voice").assert_problem(422, "voice_not_supported");
    phone("+12025550143", "pigeon").assert_problem(400, "validation_failed");
    api.post_json(
        &format!("/v1/sign-in/{challenge}/factors/phone"),
        &json!({"phone": "+12025550143"}),
    )
    .assert_problem(400, "validation_failed");
    api.verify_code(&challenge, "sms", "123456")
        .assert_problem(403, "forbidden");
    api.send_code("not-a-challenge", "sms")
        .assert_problem(410, "challenge_expired");
    api.verify_code("not-a-challenge", "sms", "123456")
        .assert_problem(410, "challenge_expired");
    api.send_code(&challenge, "fax")
        .assert_problem(400, "validation_failed");
    api.post_json("/v1/tokens/refresh", &json!({"refresh_token": 7}))
        .assert_problem(400, "validation_failed");
    api.post_json("/v1/tokens/refresh", &json!({"refresh_token": "garbage"}))
        .assert_problem(401, "unauthorized");
    // protected routes: the authorizer's own 401 without a valid token
    for token in [None, Some("garbage"), Some("a.b.c")] {
        let answer = api.get("/v1/me/factors", token);
        assert_eq!(answer.status, 401, "{answer:?}");
        assert_eq!(answer.json()["message"], "Unauthorized");
    }
}

#[test]
fn jwks_and_discovery_are_public_and_consistent() {
    let Some(api) = api() else { return };
    let config = api.get("/.well-known/openid-configuration", None);
    assert_eq!(config.status, 200);
    let config = config.json();
    assert!(
        config["jwks_uri"]
            .as_str()
            .unwrap()
            .ends_with("/.well-known/jwks.json")
    );
    assert_eq!(
        config["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    let jwks = api.get("/.well-known/jwks.json", None).json();
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    assert_eq!(jwks["keys"][0]["crv"], "P-256");
}
