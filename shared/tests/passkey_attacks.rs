//! Passkeys under attack (SPEC §12, §13) on both adapters: what a stolen password, a stolen
//! access token, a stolen assertion or a cloned authenticator can and cannot do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::passkeys::*;
use common::*;
use portcullis::Deps;
use portcullis::RequestMeta;
use portcullis::crypto::token_digest;
use portcullis::error::ApiError;
use portcullis::service::admin::{self, MfaResetFiling};
use portcullis::service::complete;
use portcullis::service::factors::{self, Enroller};
use portcullis::service::passkeys::{self, EnrolPasskeyRequest, PasswordlessRequest};
use portcullis::service::step_up;
use portcullis::service::{codes, tokens};
use portcullis_soft_authenticator::{SoftAuthenticator, UserHandleReply};
use serde_json::Value;

fn digest_of(authenticator: &SoftAuthenticator) -> String {
    use base64::Engine as _;
    token_digest(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(authenticator.credential_id()),
    )
}

#[tokio::test]
async fn an_mfa_reset_removes_passkeys_and_their_credential_ids_on_both_adapters() {
    for (name, deps, _clock, outbox) in all_deps_with_notifier().await {
        let (_, alice) = signed_in_admin(&deps, &outbox, "+14155550181").await;
        let (_, bob) = signed_in_admin(&deps, &outbox, "+14155550182").await;
        let user = create_user(&deps, &unique("pkreset")).await;
        let mut authenticator = SoftAuthenticator::new(ORIGIN);
        register_at_first_sign_in(&deps, &user, &mut authenticator).await;
        assert!(
            deps.stores
                .factors
                .find_passkey(&digest_of(&authenticator))
                .await
                .unwrap()
                .is_some()
        );
        let request = as_admin!(
            admin::request_mfa_reset,
            &deps,
            &alice,
            MfaResetFiling {
                user_id: user.to_string(),
                reason: "Lost the laptop, verified at the branch".into(),
            }
        )
        .unwrap();
        as_admin!(admin::approve_mfa_reset, &deps, &bob, &request.request_id).unwrap();
        assert!(
            deps.stores
                .factors
                .find_passkey(&digest_of(&authenticator))
                .await
                .unwrap()
                .is_none(),
            "{name}: the credential-ID record goes with the factor"
        );
        assert_eq!(
            passwordless(&deps, &mut authenticator, "192.0.2.31")
                .await
                .unwrap_err(),
            ApiError::InvalidCredentials,
            "{name}: a reset passkey signs nobody in"
        );
        // The same authenticator can be registered again at the enrolment the reset requires.
        let again = register_at_first_sign_in(&deps, &user, &mut authenticator).await;
        assert_eq!(again.status(), "signed_in", "{name}");
    }
}

#[tokio::test]
async fn a_password_alone_never_adds_a_passkey_once_a_factor_is_active() {
    for (name, deps, _clock, _outbox) in all_deps_with_notifier().await {
        // A user with a phone: the password step is mfa_required, which enrols nothing.
        let user = create_user(&deps, &unique("pkpwd")).await;
        add_phone(&deps, &user, "+14155550183").await;
        let challenge = password_challenge(&deps, &user).await;
        assert_eq!(
            passkeys::enrol(
                &deps,
                Enroller::SignIn(&challenge, &RequestMeta::default()),
                EnrolPasskeyRequest::default()
            )
            .await
            .unwrap_err(),
            ApiError::Forbidden,
            "{name}"
        );

        // A user with no factor: an enrolment challenge, its passkey options taken, then a
        // factor added elsewhere. The old challenge can neither finish nor start a passkey.
        let user = create_user(&deps, &unique("pkstale")).await;
        let stale = password_challenge(&deps, &user).await;
        let pending = passkeys::enrol(
            &deps,
            Enroller::SignIn(&stale, &RequestMeta::default()),
            EnrolPasskeyRequest::default(),
        )
        .await
        .unwrap();
        add_phone(&deps, &user, "+14155550184").await;
        let mut attacker = SoftAuthenticator::new(ORIGIN);
        let response = attacker.register(&pending.options).unwrap();
        assert_eq!(
            finish(
                &deps,
                Enroller::SignIn(&stale, &RequestMeta::default()),
                &pending.factor_id,
                response
            )
            .await
            .unwrap_err(),
            ApiError::ChallengeExpired,
            "{name}"
        );
        assert_eq!(
            passkeys::enrol(
                &deps,
                Enroller::SignIn(&stale, &RequestMeta::default()),
                EnrolPasskeyRequest::default()
            )
            .await
            .unwrap_err(),
            ApiError::ChallengeExpired,
            "{name}"
        );
    }
}

/// Passkey sign-in options make the stamp check beside the factor read: a challenge whose stamp
/// moved after it was read starts no ceremony.
#[tokio::test]
async fn a_sign_in_challenge_whose_stamp_moved_starts_no_passkey_ceremony() {
    async fn ceremony_stored(deps: &Deps, opening: &codes::Opening) -> bool {
        let digest = &opening.record().id_digest;
        let stored = deps
            .stores
            .challenges
            .get_challenge(digest, deps.clock.now());
        stored.await.unwrap().unwrap().ceremony.is_some()
    }
    for (name, deps, _clock, _outbox, user) in all_deps_with_user("pkstale").await {
        let mut authenticator = SoftAuthenticator::new(ORIGIN);
        register_at_first_sign_in(&deps, &user, &mut authenticator).await;
        let id = password_step(&deps, &user).await;
        let opening = codes::Opening::read_sign_in(&deps, &id).await.unwrap();
        deps.stores.users.raise_security_stamp(&user).await.unwrap();
        assert_eq!(
            passkeys::sign_in_options_for(&deps, &opening)
                .await
                .unwrap_err(),
            ApiError::ChallengeExpired,
            "{name}"
        );
        assert!(
            !ceremony_stored(&deps, &opening).await,
            "{name}: no ceremony"
        );
        // With the stamp left alone the same steps start one.
        let id = password_step(&deps, &user).await;
        let opening = codes::Opening::read_sign_in(&deps, &id).await.unwrap();
        passkeys::sign_in_options_for(&deps, &opening)
            .await
            .unwrap();
        assert!(ceremony_stored(&deps, &opening).await, "{name}");
    }
}

#[tokio::test]
async fn options_made_for_one_ceremony_never_verify_in_another() {
    for (name, deps, _clock, _outbox, user) in all_deps_with_user("pkcross").await {
        let mut authenticator = SoftAuthenticator::new(ORIGIN);
        let first = register_at_first_sign_in(&deps, &user, &mut authenticator).await;

        // Sign-in options of challenge A, answered to challenge B (with its own options).
        let a = password_challenge(&deps, &user).await;
        let b = password_challenge(&deps, &user).await;
        let options_a = passkeys::sign_in_options(&deps, &a).await.unwrap();
        passkeys::sign_in_options(&deps, &b).await.unwrap();
        let for_a = authenticator.authenticate(&options_a.options).unwrap();
        assert_eq!(
            passkeys::check_assertion(&deps, &b, &for_a, &RequestMeta::default())
                .await
                .unwrap_err(),
            ApiError::CodeInvalid,
            "{name}: A's assertion in B"
        );

        // The same assertion as a passwordless sign-in: refused.
        let pwless = passkeys::passwordless_options(&deps, &meta("192.0.2.40"))
            .await
            .unwrap();
        assert_eq!(
            passkeys::passwordless_sign_in(
                &deps,
                PasswordlessRequest {
                    challenge_id: pwless.challenge_id.clone(),
                    credential: for_a.clone(),
                },
                &meta("192.0.2.40"),
            )
            .await
            .unwrap_err(),
            ApiError::InvalidCredentials,
            "{name}: a sign-in assertion as a passwordless one"
        );

        // A passwordless assertion as the second factor of a sign-in challenge.
        let pwless = passkeys::passwordless_options(&deps, &meta("192.0.2.40"))
            .await
            .unwrap();
        let discoverable = authenticator.authenticate(&pwless.options).unwrap();
        let c = password_challenge(&deps, &user).await;
        passkeys::sign_in_options(&deps, &c).await.unwrap();
        assert_eq!(
            passkeys::check_assertion(&deps, &c, &discoverable, &RequestMeta::default())
                .await
                .unwrap_err(),
            ApiError::CodeInvalid,
            "{name}: a passwordless assertion after a password"
        );

        // Step-up options answered to a sign-in challenge, and sign-in options to a step-up.
        let caller = caller_of(&deps, &first).await;
        let started = passkey_step_up(&deps, &caller).await;
        let for_step_up = authenticator
            .authenticate(started.options.as_ref().unwrap())
            .unwrap();
        let d = password_challenge(&deps, &user).await;
        let options_d = passkeys::sign_in_options(&deps, &d).await.unwrap();
        assert_eq!(
            passkeys::check_assertion(&deps, &d, &for_step_up, &RequestMeta::default())
                .await
                .unwrap_err(),
            ApiError::CodeInvalid,
            "{name}: a step-up assertion in a sign-in"
        );
        let for_d = authenticator.authenticate(&options_d.options).unwrap();
        let step = step_up::challenge_of(&deps, &caller, &started.challenge_id)
            .await
            .unwrap();
        assert_eq!(
            passkeys::check_assertion(&deps, &step, &for_d, &RequestMeta::default())
                .await
                .unwrap_err(),
            ApiError::CodeInvalid,
            "{name}: a sign-in assertion in a step-up"
        );

        // Registration options answered with an assertion (and the other way round).
        let pending = passkeys::enrol(&deps, Enroller::Session(&caller), session_request())
            .await
            .unwrap();
        let mut other = SoftAuthenticator::new(ORIGIN);
        let as_assertion = other.authenticate(&pending.options).unwrap_or(Value::Null);
        assert!(
            finish(
                &deps,
                Enroller::Session(&caller),
                &pending.factor_id,
                as_assertion
            )
            .await
            .is_err(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn one_users_passkey_never_signs_in_as_another() {
    for (name, deps, _clock, _outbox) in all_deps_with_notifier().await {
        let alice = create_user(&deps, &unique("pka")).await;
        let bob = create_user(&deps, &unique("pkb")).await;
        let mut alices = SoftAuthenticator::new(ORIGIN);
        let mut bobs = SoftAuthenticator::new(ORIGIN);
        register_at_first_sign_in(&deps, &alice, &mut alices).await;
        register_at_first_sign_in(&deps, &bob, &mut bobs).await;

        // Bob's password, Alice's passkey: not one of Bob's.
        let challenge = password_challenge(&deps, &bob).await;
        let options = passkeys::sign_in_options(&deps, &challenge).await.unwrap();
        let mut forced = alices.clone();
        // An authenticator that ignores allowCredentials.
        let mut unlisted = options.options.clone();
        unlisted["allowCredentials"] = Value::Array(vec![]);
        let assertion = forced.authenticate(&unlisted).unwrap();
        assert_eq!(
            passkeys::check_assertion(&deps, &challenge, &assertion, &RequestMeta::default())
                .await
                .unwrap_err(),
            ApiError::CodeInvalid,
            "{name}"
        );

        // Passwordless: Alice's credential returning Bob's user handle.
        let mut lying = alices.clone();
        lying.user_handle_reply = UserHandleReply::Other(bobs.user_handle().unwrap().to_vec());
        assert_eq!(
            passwordless(&deps, &mut lying, "192.0.2.50")
                .await
                .unwrap_err(),
            ApiError::InvalidCredentials,
            "{name}"
        );
        // …and Alice's passkey signs in Alice only.
        let signed_in = passwordless(&deps, &mut alices, "192.0.2.50")
            .await
            .unwrap();
        let caller = bearer(&deps, &signed_in.tokens().unwrap().access_token)
            .await
            .unwrap();
        assert_eq!(caller.user_id, alice, "{name}");
    }
}

#[tokio::test]
async fn a_counter_regression_as_a_second_factor_or_step_up_is_refused_and_alerted() {
    for (name, deps, _clock, outbox, user) in all_deps_with_user("pkclone2").await {
        let mut authenticator = SoftAuthenticator::new(ORIGIN);
        let first = register_at_first_sign_in(&deps, &user, &mut authenticator).await;
        // Two uses: the stored counter is 3.
        passwordless(&deps, &mut authenticator, "192.0.2.60")
            .await
            .unwrap();
        passwordless(&deps, &mut authenticator, "192.0.2.60")
            .await
            .unwrap();
        // A clone at the same counter (not behind: equal is a regression too).
        let mut clone = authenticator.clone();
        clone.counter_step = 0;
        let challenge = password_challenge(&deps, &user).await;
        let options = passkeys::sign_in_options(&deps, &challenge).await.unwrap();
        let assertion = clone.authenticate(&options.options).unwrap();
        assert_eq!(
            passkeys::check_assertion(&deps, &challenge, &assertion, &RequestMeta::default())
                .await
                .unwrap_err(),
            ApiError::CodeInvalid,
            "{name}"
        );
        assert!(
            alerted(&outbox, "alert_passkey_counter_regression"),
            "{name}"
        );
        // In a step-up too.
        let caller = caller_of(&deps, &first).await;
        let started = passkey_step_up(&deps, &caller).await;
        clone.set_counter(1);
        clone.counter_step = 1;
        let assertion = clone
            .authenticate(started.options.as_ref().unwrap())
            .unwrap();
        let step = step_up::challenge_of(&deps, &caller, &started.challenge_id)
            .await
            .unwrap();
        assert_eq!(
            passkeys::check_assertion(&deps, &step, &assertion, &RequestMeta::default())
                .await
                .unwrap_err(),
            ApiError::CodeInvalid,
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_removed_passkey_answers_nothing_even_with_options_taken_before() {
    for (name, deps, _clock, _outbox, user) in all_deps_with_user("pkrm").await {
        let mut authenticator = SoftAuthenticator::new(ORIGIN);
        let first = register_at_first_sign_in(&deps, &user, &mut authenticator).await;
        let mut second = SoftAuthenticator::new(ORIGIN);
        let caller = caller_of(&deps, &first).await;
        let pending = passkeys::enrol(&deps, Enroller::Session(&caller), session_request())
            .await
            .unwrap();
        let response = second.register(&pending.options).unwrap();
        finish(
            &deps,
            Enroller::Session(&caller),
            &pending.factor_id,
            response,
        )
        .await
        .unwrap();

        // Options and a passwordless ceremony before the removal…
        let challenge = password_challenge(&deps, &user).await;
        let options = passkeys::sign_in_options(&deps, &challenge).await.unwrap();
        let pwless = passkeys::passwordless_options(&deps, &meta("192.0.2.70"))
            .await
            .unwrap();
        factors::remove(&deps, &caller, &pending.factor_id)
            .await
            .unwrap();
        // …answered after it.
        let assertion = second.authenticate(&options.options).unwrap();
        assert_eq!(
            passkeys::check_assertion(&deps, &challenge, &assertion, &RequestMeta::default())
                .await
                .unwrap_err(),
            ApiError::CodeInvalid,
            "{name}"
        );
        let assertion = second.authenticate(&pwless.options).unwrap();
        assert_eq!(
            passkeys::passwordless_sign_in(
                &deps,
                PasswordlessRequest {
                    challenge_id: pwless.challenge_id,
                    credential: assertion,
                },
                &meta("192.0.2.70"),
            )
            .await
            .unwrap_err(),
            ApiError::InvalidCredentials,
            "{name}"
        );
        assert!(
            deps.stores
                .factors
                .find_passkey(&digest_of(&second))
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn passkey_names_refuse_invisible_and_bidirectional_characters() {
    for name in [
        "\u{200B}",
        "Laptop\u{202E}pot",
        "\u{2066}x\u{2069}",
        "a\u{2028}b",
        "\u{FEFF}",
    ] {
        assert!(
            matches!(
                passkeys::passkey_name(Some(name)),
                Err(ApiError::ValidationFailed(_))
            ),
            "{name:?}"
        );
    }
    // Ordinary Unicode is fine, up to 64 characters (not bytes).
    assert!(passkeys::passkey_name(Some(&"🔑".repeat(64))).is_ok());
    assert!(passkeys::passkey_name(Some(&"🔑".repeat(65))).is_err());
    assert!(passkeys::passkey_name(Some("Clé de Zoë")).is_ok());
}

/// Finishes a pending passkey registration with a new authenticator.
async fn finish_registration(
    deps: &Deps,
    caller: &tokens::Caller,
    pending: Option<passkeys::EnrolPasskeyAnswer>,
) -> Result<SoftAuthenticator, ApiError> {
    let pending = pending.ok_or(ApiError::NotFound)?;
    let mut authenticator = SoftAuthenticator::new(ORIGIN);
    let response = authenticator.register(&pending.options).unwrap();
    factors::verify_factor(
        deps,
        Enroller::Session(caller),
        &pending.factor_id,
        &credential(response),
    )
    .await
    .map(|_| authenticator)
}

#[tokio::test]
async fn passkeys_registered_at_once_share_one_user_handle_and_keep_working() {
    for (name, deps, _clock, outbox) in all_deps_with_notifier().await {
        for finish_at_once in [false, true] {
            let user = create_user(&deps, &unique("pkrace")).await;
            add_phone(
                &deps,
                &user,
                &format!("+1415555019{}", u8::from(finish_at_once)),
            )
            .await;
            let (caller, _) = sms_sign_in(&deps, &user, &outbox).await;
            let enrol = || passkeys::enrol(&deps, Enroller::Session(&caller), session_request());
            // A double submit: four registrations started at once, while the user has no
            // passkey (so no handle to reuse); finished one after another, or all at once.
            let (a, b, c, d) = tokio::join!(enrol(), enrol(), enrol(), enrol());
            let [a, b, c, d] = [a, b, c, d].map(Result::ok);
            let finished: Vec<_> = if finish_at_once {
                let (a, b, c, d) = tokio::join!(
                    finish_registration(&deps, &caller, a),
                    finish_registration(&deps, &caller, b),
                    finish_registration(&deps, &caller, c),
                    finish_registration(&deps, &caller, d),
                );
                vec![a, b, c, d]
            } else {
                let mut out = Vec::new();
                for pending in [a, b, c, d] {
                    out.push(finish_registration(&deps, &caller, pending).await);
                }
                out
            };
            let mut kept: Vec<SoftAuthenticator> = finished.into_iter().flatten().collect();
            let handles: std::collections::HashSet<Vec<u8>> = kept
                .iter()
                .map(|a| a.user_handle().unwrap().to_vec())
                .collect();
            assert!(
                handles.len() <= 1,
                "{name} (at once: {finish_at_once}): {} passkeys kept with {} user handles",
                kept.len(),
                handles.len()
            );
            if kept.is_empty() {
                // Every racing registration undid itself: the next one is kept.
                let pending = enrol().await.ok();
                kept.push(finish_registration(&deps, &caller, pending).await.unwrap());
            }
            // The second step offers every kept passkey, and each one answers.
            for authenticator in &mut kept {
                let challenge = password_challenge(&deps, &user).await;
                let options = passkeys::sign_in_options(&deps, &challenge).await;
                assert!(options.is_ok(), "{name}: {options:?}");
                let assertion = authenticator
                    .authenticate(&options.unwrap().options)
                    .unwrap();
                passkeys::check_assertion(&deps, &challenge, &assertion, &RequestMeta::default())
                    .await
                    .unwrap();
            }
        }
    }
}

#[tokio::test]
async fn a_registration_started_in_one_session_does_not_finish_in_another() {
    for (name, deps, _clock, outbox, user) in all_deps_with_user("pksid").await {
        add_phone(&deps, &user, "+14155550186").await;
        let (first, _) = sms_sign_in(&deps, &user, &outbox).await;
        let (second, _) = sms_sign_in(&deps, &user, &outbox).await;
        assert_ne!(first.claims.sid, second.claims.sid);
        let pending = passkeys::enrol(&deps, Enroller::Session(&first), session_request())
            .await
            .unwrap();
        let mut authenticator = SoftAuthenticator::new(ORIGIN);
        let response = authenticator.register(&pending.options).unwrap();
        assert_eq!(
            finish(
                &deps,
                Enroller::Session(&second),
                &pending.factor_id,
                response
            )
            .await
            .unwrap_err(),
            ApiError::ChallengeExpired,
            "{name}: SPEC §12: enrolment challenges are bound to their session"
        );
    }
}

#[tokio::test]
async fn a_passkey_second_step_trusts_devices_for_users_only_and_a_device_never_elevates() {
    use portcullis::crypto::SecretString;
    use portcullis::service::sign_in::{SignInRequest, sign_in};
    for (name, deps, clock, _outbox) in all_deps_with_notifier().await {
        for staff in [false, true] {
            let user = create_user(&deps, &unique("pktrust")).await;
            let mut authenticator = SoftAuthenticator::new(ORIGIN);
            register_at_first_sign_in(&deps, &user, &mut authenticator).await;
            if staff {
                set_roles(&deps, &user, &["support"]).await;
            }
            let challenge = password_challenge(&deps, &user).await;
            let options = passkeys::sign_in_options(&deps, &challenge).await.unwrap();
            let assertion = authenticator.authenticate(&options.options).unwrap();
            let verified =
                passkeys::check_assertion(&deps, &challenge, &assertion, &RequestMeta::default())
                    .await
                    .unwrap();
            let signed_in = complete::complete_sign_in(
                &deps,
                verified,
                Some(complete::TrustRequest::default()),
                &RequestMeta::default(),
            )
            .await
            .unwrap();
            assert_eq!(
                signed_in.device_token().is_some(),
                !staff,
                "{name}: staff get no trusted device"
            );
            let Some(device) = signed_in.device_token() else {
                continue;
            };
            clock.advance_secs(deps.settings.step_up_secs + 1);
            let answer = sign_in(
                &deps,
                SignInRequest {
                    user_id: user.to_string(),
                    password: SecretString::new(PASSWORD.into()),
                },
                &RequestMeta {
                    device_token: Some(SecretString::new(device.to_owned())),
                    ..RequestMeta::default()
                },
            )
            .await
            .unwrap();
            let caller = bearer(&deps, &answer.tokens().unwrap().access_token)
                .await
                .unwrap();
            assert_eq!(caller.claims.acr, "urn:portcullis:acr:trusted-device");
            assert!(!caller.is_elevated(&deps), "{name}");
            assert_eq!(
                passkeys::enrol(&deps, Enroller::Session(&caller), session_request())
                    .await
                    .unwrap_err(),
                ApiError::StepUpRequired,
                "{name}: a device session adds no passkey"
            );
        }
    }
}

/// Garbage where a WebAuthn response goes: a 4xx (or the one passwordless refusal), never a
/// 5xx, and nothing echoed.
#[tokio::test]
async fn malformed_credentials_are_refused_as_the_clients_fault() {
    let huge = "A".repeat(70 * 1024);
    let garbage: Vec<Value> = vec![
        Value::Null,
        serde_json::json!(42),
        serde_json::json!("just a string"),
        serde_json::json!([]),
        serde_json::json!({}),
        serde_json::json!({"id": "", "rawId": "", "type": "public-key", "response": {}}),
        serde_json::json!({"id": "AAAA", "rawId": "AAAA", "type": "public-key",
            "response": {"clientDataJSON": "e30", "authenticatorData": "", "signature": "",
                         "attestationObject": "oA", "userHandle": ""}}),
        serde_json::json!({"id": "AAAA", "rawId": "AAAA", "type": "public-key",
            "response": {"clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": "AAAA",
                         "userHandle": "A".repeat(200)}}),
        serde_json::json!({"id": huge, "rawId": huge, "type": "public-key", "response": {}}),
        serde_json::json!({"id": "😀", "rawId": "😀", "type": "public-key", "response": {}}),
    ];
    for (name, deps, _clock, _outbox, user) in all_deps_with_user("pkjunk").await {
        let mut authenticator = SoftAuthenticator::new(ORIGIN);
        let first = register_at_first_sign_in(&deps, &user, &mut authenticator).await;
        let caller = caller_of(&deps, &first).await;
        for junk in &garbage {
            let challenge = password_challenge(&deps, &user).await;
            passkeys::sign_in_options(&deps, &challenge).await.unwrap();
            let err = passkeys::check_assertion(&deps, &challenge, junk, &RequestMeta::default())
                .await
                .unwrap_err();
            assert!(
                (400..500).contains(&err.status()),
                "{name}: {junk}: {err:?}"
            );

            let pending = passkeys::enrol(&deps, Enroller::Session(&caller), session_request())
                .await
                .unwrap();
            let err = finish(
                &deps,
                Enroller::Session(&caller),
                &pending.factor_id,
                junk.clone(),
            )
            .await
            .unwrap_err();
            assert!(
                (400..500).contains(&err.status()),
                "{name}: {junk}: {err:?}"
            );

            let started = passkeys::passwordless_options(&deps, &meta("192.0.2.90"))
                .await
                .unwrap();
            assert_eq!(
                passkeys::passwordless_sign_in(
                    &deps,
                    PasswordlessRequest {
                        challenge_id: started.challenge_id,
                        credential: junk.clone(),
                    },
                    &meta("192.0.2.110"),
                )
                .await
                .unwrap_err(),
                ApiError::InvalidCredentials,
                "{name}: {junk}"
            );
        }
        // Challenge ids of any shape.
        for id in ["", &"x".repeat(10_000), "\u{0}", "../../etc", "ünïcödé"] {
            let response = authenticator
                .authenticate(
                    &passkeys::passwordless_options(&deps, &meta("192.0.2.91"))
                        .await
                        .unwrap()
                        .options,
                )
                .unwrap();
            assert_eq!(
                passkeys::passwordless_sign_in(
                    &deps,
                    PasswordlessRequest {
                        challenge_id: id.to_owned(),
                        credential: response,
                    },
                    &meta("192.0.2.92"),
                )
                .await
                .unwrap_err(),
                ApiError::InvalidCredentials,
                "{name}"
            );
        }
    }
}
