//! Passkeys as a factor (SPEC §13) on both adapters, with the independent software
//! authenticator: registration inside the first sign-in and from a session, the second step
//! after a password, passwordless sign-in, step-up, counters, and every refusal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::passkeys::*;
use common::*;
use portcullis::Deps;
use portcullis::RequestMeta;
use portcullis::crypto::SecretString;
use portcullis::error::ApiError;
use portcullis::service::complete::SignedIn;
use portcullis::service::factors::{self, Enroller};
use portcullis::service::passkeys::{self, EnrolPasskeyRequest, PasswordlessRequest};
use portcullis::service::sign_in::{SignInRequest, sign_in};
use portcullis::service::step_up;
use portcullis::service::{codes, tokens};
use portcullis::storage::{CounterKey, FactorKind, FactorStatus};
use portcullis_soft_authenticator::SoftAuthenticator;
use serde_json::Value;

async fn claims_of(deps: &Deps, signed_in: &SignedIn) -> tokens::Caller {
    bearer(deps, &signed_in.tokens().as_ref().unwrap().access_token)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_passkey_registered_at_first_sign_in_is_both_phishing_resistant_and_reusable() {
    for (name, deps, clock, _outbox, user) in all_deps_with_user("pk").await {
        let mut authenticator = SoftAuthenticator::new(ORIGIN);
        let first = register_at_first_sign_in(&deps, &user, &mut authenticator).await;
        assert_eq!(first.status(), "signed_in", "{name}");
        assert_eq!(
            first.recovery_codes.as_ref().map(Vec::len),
            Some(10),
            "{name}: a passkey as the first factor comes with recovery codes"
        );
        let caller = claims_of(&deps, &first).await;
        assert_eq!(caller.claims.acr, "urn:portcullis:acr:phishing-resistant");
        assert_eq!(caller.claims.amr, ["pwd", "hwk", "user", "mfa"], "{name}");
        assert!(caller.is_elevated(&deps), "{name}: counts as a step-up");

        // Listed with its name and flags; the counter it signed with is stored.
        let listed = factors::list(&deps, &caller).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].kind, "passkey");
        assert_eq!(listed[0].name.as_deref(), Some("Laptop"));
        assert_eq!(listed[0].backup_eligible, Some(false));
        assert_eq!(listed[0].last_used_at, None);

        // The next sign-in offers it, once, and a fresh assertion completes it.
        clock.advance_secs(60);
        let answer = sign_in(
            &deps,
            SignInRequest {
                user_id: user.to_string(),
                password: SecretString::new(PASSWORD.into()),
            },
            &RequestMeta::default(),
        )
        .await
        .unwrap();
        let methods: Vec<&str> = answer
            .methods()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.method.as_str())
            .collect();
        assert_eq!(methods, ["passkey", "recovery_code"], "{name}");
        let challenge = codes::open_challenge(&deps, answer.challenge_id().unwrap())
            .await
            .unwrap();
        let options = passkeys::sign_in_options(&deps, &challenge).await.unwrap();
        let allowed = options.options["allowCredentials"].as_array().unwrap();
        assert_eq!(allowed.len(), 1, "{name}: the user's passkeys only");
        let assertion = authenticator.authenticate(&options.options).unwrap();
        let verified =
            passkeys::check_assertion(&deps, &challenge, &assertion, &RequestMeta::default())
                .await
                .unwrap();
        let second = finish_sign_in(&deps, verified).await;
        let caller = claims_of(&deps, &second).await;
        assert_eq!(caller.claims.acr, "urn:portcullis:acr:phishing-resistant");

        // The same assertion again: the ceremony was used (and the challenge completed).
        assert!(
            passkeys::check_assertion(&deps, &challenge, &assertion, &RequestMeta::default())
                .await
                .is_err(),
            "{name}: single use"
        );
        let factor = &deps.stores.factors.list_factors(&user).await.unwrap()[0];
        assert!(
            matches!(&factor.kind, FactorKind::Passkey { sign_count, last_used_at: Some(_), .. } if *sign_count == authenticator.counter()),
            "{name}: {factor:?}"
        );
    }
}

#[tokio::test]
async fn a_passkey_signs_in_with_no_user_id_and_no_password() {
    for (name, deps, _clock, _outbox, user) in all_deps_with_user("pwless").await {
        let mut authenticator = SoftAuthenticator::synced(ORIGIN);
        register_at_first_sign_in(&deps, &user, &mut authenticator).await;

        let started = passkeys::passwordless_options(&deps, &meta("198.51.100.1"))
            .await
            .unwrap();
        assert_eq!(
            started.options["allowCredentials"]
                .as_array()
                .map_or(0, Vec::len),
            0,
            "{name}: discoverable: the browser offers any passkey of this site"
        );
        assert_eq!(started.options["userVerification"], "required");
        let response = authenticator.authenticate(&started.options).unwrap();
        let request = || PasswordlessRequest {
            challenge_id: started.challenge_id.clone(),
            credential: response.clone(),
        };
        let signed_in = passkeys::passwordless_sign_in(&deps, request(), &meta("198.51.100.1"))
            .await
            .unwrap();
        assert_eq!(signed_in.status(), "signed_in", "{name}");
        let caller = claims_of(&deps, &signed_in).await;
        assert_eq!(caller.user_id, user, "{name}");
        assert_eq!(
            caller.claims.amr,
            ["swk", "user", "mfa"],
            "{name}: a synced passkey, no password"
        );
        assert_eq!(caller.claims.acr, "urn:portcullis:acr:phishing-resistant");

        // Replayed: the challenge is used.
        assert_eq!(
            passkeys::passwordless_sign_in(&deps, request(), &meta("198.51.100.1"))
                .await
                .unwrap_err(),
            ApiError::InvalidCredentials,
            "{name}"
        );
    }
}

#[tokio::test]
async fn every_failed_passwordless_assertion_is_invalid_credentials_and_counts_against_the_ip() {
    for (name, mut deps, _clock, _outbox) in all_deps_with_notifier().await {
        let mut settings = (*deps.settings).clone();
        settings.ip_failure_threshold = 6;
        deps.settings = std::sync::Arc::new(settings);
        let user = create_user(&deps, &unique("pwfail")).await;
        let mut registered = SoftAuthenticator::new(ORIGIN);
        register_at_first_sign_in(&deps, &user, &mut registered).await;
        let ip = format!("203.0.113.{}", rand_octet());

        let mut unknown = SoftAuthenticator::new(ORIGIN);
        unknown.register(&registration_options()).unwrap();
        let spoilers: Vec<(&str, Spoiler)> = vec![
            (
                "wrong origin",
                Box::new(|a| a.origin = "http://evil.example:3000".into()),
            ),
            (
                "wrong RP ID",
                Box::new(|a| a.rp_id = Some("evil.example".into())),
            ),
            (
                "no user verification",
                Box::new(|a| a.user_verified = false),
            ),
            ("bad signature", Box::new(|a| a.tamper_signature = true)),
        ];
        for (what, spoil) in spoilers {
            let mut spoilt = registered.clone();
            spoil(&mut spoilt);
            assert_eq!(
                passwordless(&deps, &mut spoilt, &ip).await.unwrap_err(),
                ApiError::InvalidCredentials,
                "{name}: {what}"
            );
        }
        assert_eq!(
            passwordless(&deps, &mut unknown, &ip).await.unwrap_err(),
            ApiError::InvalidCredentials,
            "{name}: unknown credential"
        );
        // An unknown challenge, with an honest assertion.
        let started = passkeys::passwordless_options(&deps, &meta(&ip))
            .await
            .unwrap();
        let response = registered.authenticate(&started.options).unwrap();
        assert_eq!(
            passkeys::passwordless_sign_in(
                &deps,
                PasswordlessRequest {
                    challenge_id: "made-up".into(),
                    credential: response,
                },
                &meta(&ip),
            )
            .await
            .unwrap_err(),
            ApiError::InvalidCredentials,
            "{name}: unknown challenge"
        );
        // Six failures from this IP: throttled now, even with the right passkey.
        assert!(
            matches!(
                passwordless(&deps, &mut registered, &ip).await,
                Err(ApiError::RateLimited { .. })
            ),
            "{name}"
        );
        assert!(
            portcullis::service::limits::locked_until(&deps, CounterKey::SourceIp(&ip))
                .await
                .unwrap()
                .is_some()
        );
        // Another IP is not.
        passwordless(&deps, &mut registered, "192.0.2.77")
            .await
            .unwrap();
    }
}

type Spoiler = Box<dyn Fn(&mut SoftAuthenticator)>;

fn rand_octet() -> u8 {
    portcullis::crypto::random_bytes::<1>()[0]
}

/// Options of another relying-party session, for authenticators that must know a credential
/// the server never saw.
fn registration_options() -> Value {
    let handle = portcullis::passkey::UserHandle::random();
    portcullis::passkey::start_registration(
        &portcullis::config::Settings::defaults("x").passkey_config(),
        &portcullis::passkey::PasskeyUser {
            handle: &handle,
            name: "stranger",
            display_name: "stranger",
        },
        &[],
        portcullis::UnixTime(1_800_000_000),
    )
    .unwrap()
    .0
}

#[tokio::test]
async fn a_counter_that_goes_back_is_refused_audited_and_alerted() {
    for (name, deps, _clock, outbox, user) in all_deps_with_user("clone").await {
        let mut authenticator = SoftAuthenticator::new(ORIGIN);
        register_at_first_sign_in(&deps, &user, &mut authenticator).await;
        passwordless(&deps, &mut authenticator, "192.0.2.1")
            .await
            .unwrap();
        passwordless(&deps, &mut authenticator, "192.0.2.1")
            .await
            .unwrap();
        let mut clone = authenticator.clone();
        clone.set_counter(0);
        assert_eq!(
            passwordless(&deps, &mut clone, "192.0.2.1")
                .await
                .unwrap_err(),
            ApiError::InvalidCredentials,
            "{name}"
        );
        assert!(
            recorded(&deps, &user, "passkey_counter_regression").await,
            "{name}"
        );
        assert!(
            alerted(&outbox, "alert_passkey_counter_regression"),
            "{name}: the user is alerted"
        );
    }
}

#[tokio::test]
async fn wrong_assertions_after_the_password_count_against_the_users_second_factor_lock() {
    for (name, deps, _clock, _outbox, user) in all_deps_with_user("pklock").await {
        let mut authenticator = SoftAuthenticator::new(ORIGIN);
        register_at_first_sign_in(&deps, &user, &mut authenticator).await;
        let mut spoilt = authenticator.clone();
        spoilt.tamper_signature = true;
        let threshold = deps.settings.mfa_failure_threshold;
        let mut last = None;
        for _ in 0..threshold {
            let challenge = password_challenge(&deps, &user).await;
            let options = passkeys::sign_in_options(&deps, &challenge).await.unwrap();
            let assertion = spoilt.authenticate(&options.options).unwrap();
            last = Some(
                passkeys::check_assertion(&deps, &challenge, &assertion, &RequestMeta::default())
                    .await
                    .unwrap_err(),
            );
            assert!(
                matches!(
                    last,
                    Some(ApiError::CodeInvalid | ApiError::SecondFactorLocked { .. })
                ),
                "{name}: {last:?}"
            );
        }
        assert!(
            matches!(last, Some(ApiError::SecondFactorLocked { .. })),
            "{name}: the {threshold}th starts the lock"
        );
        // Locked: even the right passkey is refused after the password.
        let challenge = password_challenge(&deps, &user).await;
        let options = passkeys::sign_in_options(&deps, &challenge).await.unwrap();
        let assertion = authenticator.authenticate(&options.options).unwrap();
        assert!(matches!(
            passkeys::check_assertion(&deps, &challenge, &assertion, &RequestMeta::default()).await,
            Err(ApiError::SecondFactorLocked { .. })
        ));
    }
}

#[tokio::test]
async fn a_passkey_steps_up_a_session_and_is_renamed_and_removed() {
    for (name, deps, clock, outbox, user) in all_deps_with_user("pkstep").await {
        add_phone(&deps, &user, "+14155550100").await;
        let (caller, session) = sms_sign_in(&deps, &user, &outbox).await;
        // From a session, with the step-up of the SMS sign-in.
        let mut authenticator = SoftAuthenticator::new(ORIGIN);
        let pending = passkeys::enrol(&deps, Enroller::Session(&caller), session_request())
            .await
            .unwrap();
        let response = authenticator.register(&pending.options).unwrap();
        let proven = finish(
            &deps,
            Enroller::Session(&caller),
            &pending.factor_id,
            response.clone(),
        )
        .await
        .unwrap();
        assert_eq!(proven.factor.status, FactorStatus::Active);
        // The registration options were single use.
        assert!(
            finish(
                &deps,
                Enroller::Session(&caller),
                &pending.factor_id,
                response
            )
            .await
            .is_err(),
            "{name}"
        );
        // The same authenticator credential cannot be registered to another user.
        let other = create_user(&deps, &unique("pkother")).await;
        let challenge = password_challenge(&deps, &other).await;
        let theirs = passkeys::enrol(
            &deps,
            Enroller::SignIn(&challenge, &RequestMeta::default()),
            EnrolPasskeyRequest::default(),
        )
        .await
        .unwrap();
        let mut copy = authenticator.clone();
        let response = copy.register(&theirs.options).unwrap();
        assert!(
            matches!(
                finish(
                    &deps,
                    Enroller::SignIn(&challenge, &RequestMeta::default()),
                    &theirs.factor_id,
                    response
                )
                .await,
                Err(ApiError::Conflict(_))
            ),
            "{name}: credential IDs are unique across users"
        );

        // Later (no longer elevated), a passkey step-up.
        clock.advance_secs(deps.settings.step_up_secs + 1);
        let refreshed = tokens::refresh(
            &deps,
            tokens::RefreshRequest {
                refresh_token: SecretString::new(session.refresh_token.clone()),
            },
        )
        .await
        .unwrap();
        let caller = bearer(&deps, &refreshed.access_token).await.unwrap();
        assert!(!caller.is_elevated(&deps));
        let started = passkey_step_up(&deps, &caller).await;
        let options = started.options.clone().unwrap();
        let assertion = authenticator.authenticate(&options).unwrap();
        let challenge = step_up::challenge_of(&deps, &caller, &started.challenge_id)
            .await
            .unwrap();
        let verified =
            passkeys::check_assertion(&deps, &challenge, &assertion, &RequestMeta::default())
                .await
                .unwrap();
        let elevated = step_up::elevate(&deps, &caller, &challenge, verified)
            .await
            .unwrap();
        let caller = bearer(&deps, &elevated.access_token).await.unwrap();
        assert!(caller.is_elevated(&deps), "{name}");
        assert_eq!(caller.claims.acr, "urn:portcullis:acr:phishing-resistant");

        let renamed = factors::rename(
            &deps,
            &caller,
            &pending.factor_id,
            factors::RenameRequest {
                name: " Work laptop ".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(renamed.name.as_deref(), Some("Work laptop"));
        assert!(matches!(
            factors::rename(
                &deps,
                &caller,
                &pending.factor_id,
                factors::RenameRequest {
                    name: "x\u{7}".into()
                }
            )
            .await,
            Err(ApiError::ValidationFailed(_))
        ));
        factors::remove(&deps, &caller, &pending.factor_id)
            .await
            .unwrap();
        // Removed: it signs nobody in any more.
        assert_eq!(
            passwordless(&deps, &mut authenticator, "192.0.2.9")
                .await
                .unwrap_err(),
            ApiError::InvalidCredentials,
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_fresh_access_token_alone_does_not_add_a_passkey_the_password_is_asked_again() {
    for (name, deps, _clock, outbox, user) in all_deps_with_user("pkstolen").await {
        add_phone(&deps, &user, "+14155550101").await;
        // The token of a sign-in a minute old: elevated (it counts as a step-up).
        let (caller, _) = sms_sign_in(&deps, &user, &outbox).await;
        assert!(caller.is_elevated(&deps));
        let without = passkeys::enrol(
            &deps,
            Enroller::Session(&caller),
            EnrolPasskeyRequest::default(),
        )
        .await;
        assert!(
            matches!(without, Err(ApiError::ValidationFailed(_))),
            "{name}: {without:?}"
        );
        let wrong = || EnrolPasskeyRequest {
            name: None,
            current_password: Some(SecretString::new("not the password at all".into())),
        };
        assert_eq!(
            passkeys::enrol(&deps, Enroller::Session(&caller), wrong())
                .await
                .unwrap_err(),
            ApiError::InvalidCredentials,
            "{name}"
        );
        // Wrong ones count against the password lock: guessing here locks like sign-in does.
        let mut last = None;
        for _ in 0..deps.settings.lockout_threshold {
            last = Some(
                passkeys::enrol(&deps, Enroller::Session(&caller), wrong())
                    .await
                    .unwrap_err(),
            );
        }
        assert!(
            matches!(last, Some(ApiError::Locked { .. })),
            "{name}: {last:?}"
        );
        // Nothing was added.
        assert!(
            !deps
                .stores
                .factors
                .list_factors(&user)
                .await
                .unwrap()
                .iter()
                .any(|f| matches!(f.kind, FactorKind::Passkey { .. })),
            "{name}"
        );
    }
}
