//! Email one-time codes (SPEC §13) on both adapters: enrolment inside a sign-in challenge and
//! from a session, signing in with them, and the rules they share with text messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use portcullis::RequestMeta;
use portcullis::UnixTime;
use portcullis::crypto::SecretString;
use portcullis::error::ApiError;
use portcullis::error::StoreError;
use portcullis::identity::UserId;
use portcullis::notifier::Channel;
use portcullis::service::factors::{self, EnrolEmailRequest, Enroller, VerifyFactorRequest};
use portcullis::service::sign_in::{SignInRequest, sign_in};
use portcullis::service::{admin, codes, complete, password, step_up};
use portcullis::storage::{AsRead, FactorKind, FactorStatus, UserRecord, UserStatus, UserStore};
use std::sync::Arc;

fn email(address: &str) -> EnrolEmailRequest {
    EnrolEmailRequest {
        email: address.into(),
    }
}

fn code(outbox: &portcullis::notifier::RecordingNotifier) -> VerifyFactorRequest {
    VerifyFactorRequest::with_code(SecretString::new(last_code(outbox)))
}

#[tokio::test]
async fn an_email_enrolled_at_first_sign_in_completes_it_and_signs_in_later() {
    for (name, deps, _clock, outbox, user) in all_deps_with_user("mailer").await {
        let challenge = password_challenge(&deps, &user).await;
        let pending = factors::enrol_email(
            &deps,
            Enroller::SignIn(&challenge, &RequestMeta::default()),
            email(" Jo.Doe@Example.COM "),
        )
        .await
        .unwrap();
        assert_eq!(serde_json::to_value(&pending).unwrap()["status"], "pending");
        assert_eq!(pending.sent_to, "J***@e***.com", "{name}: masked");
        let sent = outbox.sent().last().cloned().unwrap();
        assert_eq!(sent.channel, Channel::Email);
        assert_eq!(
            sent.to, "Jo.Doe@example.com",
            "{name}: the domain lower-cased"
        );
        // A wrong code does not activate it.
        let right = last_code(&outbox);
        let wrong: String = right
            .chars()
            .map(|c| char::from(b'0' + (c as u8 - b'0' + 1) % 10))
            .collect();
        let wrong = VerifyFactorRequest::with_code(SecretString::new(wrong));
        let refused = factors::verify_factor(
            &deps,
            Enroller::SignIn(&challenge, &RequestMeta::default()),
            &pending.factor_id,
            &wrong,
        )
        .await;
        assert_eq!(refused.unwrap_err(), ApiError::CodeInvalid, "{name}");
        let proven = factors::verify_factor(
            &deps,
            Enroller::SignIn(&challenge, &RequestMeta::default()),
            &pending.factor_id,
            &code(&outbox),
        )
        .await
        .unwrap();
        assert_eq!(proven.factor.status, FactorStatus::Active);
        assert_eq!(proven.verified.method(), portcullis::method::Method::Email);

        // The next sign-in offers it (masked) and completes with it.
        let answer = sign_in(
            &deps,
            SignInRequest {
                user_id: user.to_string(),
                password: SecretString::new(PASSWORD.into()),
            },
            &portcullis::RequestMeta::default(),
        )
        .await
        .unwrap();
        assert_eq!(answer.status(), "mfa_required", "{name}");
        let offered = serde_json::to_value(answer.methods()).unwrap();
        assert_eq!(offered[0]["method"], "email", "{name}: {offered}");
        assert_eq!(offered[0]["email"], "J***@e***.com", "{name}");
        let next = codes::open_challenge(&deps, answer.challenge_id().unwrap())
            .await
            .unwrap();
        send_by(&deps, &next, "email").await.unwrap();
        let typed = SecretString::new(last_code(&outbox));
        // An emailed code is not a text-message code.
        assert!(
            answer_code(&deps, &next, "sms", &typed).await.is_err(),
            "{name}"
        );
        let verified = answer_code(&deps, &next, "email", &typed).await.unwrap();
        assert_eq!(
            verified.method(),
            portcullis::method::Method::Email,
            "{name}"
        );
    }
}

#[tokio::test]
async fn bad_addresses_are_refused_and_store_nothing() {
    for (name, deps, _clock, outbox, user) in all_deps_with_user("badmail").await {
        let challenge = password_challenge(&deps, &user).await;
        for bad in ["", "jo", "jo@example", "jo@@example.com", "a b@example.com"] {
            let err = factors::enrol_email(
                &deps,
                Enroller::SignIn(&challenge, &RequestMeta::default()),
                email(bad),
            )
            .await
            .unwrap_err();
            assert_eq!(err.status(), 400, "{name}: {bad:?}");
        }
        assert!(no_factors(&deps, &user).await, "{name}");
        assert!(outbox.sent().is_empty(), "{name}");
    }
}

#[tokio::test]
async fn from_a_session_an_email_needs_step_up_and_is_not_enrolled_twice() {
    for (name, deps, clock, outbox, user) in all_deps_with_phoned_user("twice").await {
        let (caller, _) = sms_sign_in(&deps, &user, &outbox).await;
        let pending =
            factors::enrol_email(&deps, Enroller::Session(&caller), email("me@example.com"))
                .await
                .unwrap();
        factors::verify_factor(
            &deps,
            Enroller::Session(&caller),
            &pending.factor_id,
            &code(&outbox),
        )
        .await
        .unwrap();
        assert_eq!(
            factors::enrol_email(&deps, Enroller::Session(&caller), email("ME@EXAMPLE.com"))
                .await
                .unwrap_err()
                .status(),
            409,
            "{name}: the same address again"
        );
        clock.advance_secs(deps.settings.step_up_secs + 1);
        assert_eq!(
            factors::enrol_email(
                &deps,
                Enroller::Session(&caller),
                email("other@example.com")
            )
            .await
            .unwrap_err(),
            ApiError::StepUpRequired,
            "{name}: an active factor exists, the step-up is over"
        );
    }
}

#[tokio::test]
async fn email_codes_come_out_of_the_rolling_send_caps_like_texts() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("pumped").await {
        let (caller, _) = sms_sign_in(&deps, &user, &outbox).await;
        // One text went out to sign in; enrolment after enrolment mails a code to any
        // address, so the hourly cap stops it.
        let mut sent = 1;
        let refused = loop {
            match factors::enrol_email(
                &deps,
                Enroller::Session(&caller),
                email(&format!("victim{sent}@example.com")),
            )
            .await
            {
                Ok(_) => sent += 1,
                Err(err) => break err,
            }
            assert!(sent <= deps.settings.max_sends_per_hour, "{name}: no cap");
        };
        assert_eq!(sent, deps.settings.max_sends_per_hour, "{name}");
        assert!(
            matches!(refused, ApiError::SendCapReached { .. }),
            "{name}: {refused:?}"
        );
        let codes_sent = outbox.sent().iter().filter(|m| m.code.is_some()).count();
        assert_eq!(
            codes_sent as u32, sent,
            "{name}: codes only (alerts carry none)"
        );
    }
}

#[tokio::test]
async fn a_password_alone_cannot_add_an_email_and_neither_can_the_reset_mailbox_or_staff() {
    for (name, deps, _clock, outbox) in all_deps_with_notifier().await {
        // A user with a factor: the password step opens an mfa_required challenge, which must
        // never enrol anything.
        let user = user_with_phone(&deps, "guarded").await;
        let challenge = password_challenge(&deps, &user).await;
        assert_eq!(
            factors::enrol_email(
                &deps,
                Enroller::SignIn(&challenge, &RequestMeta::default()),
                email("mine@example.com")
            )
            .await
            .unwrap_err(),
            ApiError::Forbidden,
            "{name}"
        );
        // The address reset links go to (create_user: user@example.com), in any case.
        let (caller, _) = sms_sign_in(&deps, &user, &outbox).await;
        let err =
            factors::enrol_email(&deps, Enroller::Session(&caller), email("USER@Example.com"))
                .await
                .unwrap_err();
        assert_eq!(err.status(), 400, "{name}: {err:?}");
        assert!(err.problem().detail.contains("password-reset"), "{name}");
        // Staff approve other people's MFA resets: no email codes for them.
        let (_, admin) = signed_in_admin(&deps, &outbox, "+12025550144").await;
        let err = factors::enrol_email(&deps, Enroller::Session(&admin), email("ops@example.com"))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 400, "{name}: {err:?}");
        let emails = outbox
            .sent()
            .iter()
            .filter(|m| m.channel == Channel::Email && m.code.is_some())
            .count();
        assert_eq!(emails, 0, "{name}: no code mailed");
    }
}

/// The user store, every user read with the role `support` (as though one had been given
/// without moving the stamp).
struct Promoted(Arc<dyn UserStore>);

crate::wrap_store! {
    UserStore for Promoted
    {
        async fn get_user(&self, u: &UserId) -> Result<Option<UserRecord>, StoreError> {
            let read = self.0.get_user(u).await?;
            Ok(read.map(|user| UserRecord {
                roles: vec!["support".into()],
                ..user
            }))
        }
    }
    create_user(r: &UserRecord) -> ();
    record_sign_in(u: &UserId, at: UnixTime) -> ();
    set_password(u: &UserId, expected: AsRead<'_>, hash: &str, history: &[String], at: UnixTime) -> ();
    set_must_change_password(u: &UserId) -> ();
    raise_security_stamp(u: &UserId) -> ();
    set_status(u: &UserId, s: UserStatus) -> ();
    set_roles(u: &UserId, expected: &[String], roles: &[String]) -> ();
    deactivate_if_idle(u: &UserId, cutoff: UnixTime) -> bool;
    search_users(p: &str, limit: usize) -> Vec<UserRecord>;
    list_users(c: Option<String>) -> (Vec<UserRecord>, Option<String>);
    replace_password_hash(u: &UserId, expected: &str, new_hash: &str) -> ();
}

fn mailed_codes(outbox: &portcullis::notifier::RecordingNotifier) -> usize {
    outbox
        .sent()
        .iter()
        .filter(|m| m.channel == Channel::Email && m.code.is_some())
        .count()
}

#[tokio::test]
async fn staff_never_use_an_email_factor_enrolled_before_they_became_staff() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("promoted").await {
        // An email factor enrolled before the user was given a role.
        let address = "me@example.org".to_owned();
        let email_id = add_factor(&deps, &user, FactorKind::Email { address }).await;
        // Codes mailed while the user had no role yet, for a step-up and for a sign-in...
        let (caller, _) = sms_sign_in(&deps, &user, &outbox).await;
        let started = start_step_up(&deps, &caller, "email").await;
        let step_up_code = SecretString::new(last_code(&outbox));
        let challenge_id = password_step(&deps, &user).await;
        let challenge = codes::open_challenge(&deps, &challenge_id).await.unwrap();
        send_by(&deps, &challenge, "email").await.unwrap();
        let sign_in_code = SecretString::new(last_code(&outbox));
        // ...then a role. Granting one moves the stamp, which ends both the challenge and the
        // session before these checks; here the store shows the role with the stamp where it
        // was, so the checks behind that one are seen to hold on their own.
        let mut deps = deps;
        deps.stores.users = Arc::new(Promoted(deps.stores.users.clone()));
        let mailed = mailed_codes(&outbox);

        // The step-up's code is right, but elevates nothing, and records no fresh proof.
        let before = stored_session(&deps, &user, &caller.claims.sid).await;
        let su = step_up::challenge_of(&deps, &caller, &started.challenge_id)
            .await
            .unwrap();
        let proof = answer_code(&deps, &su, "email", &step_up_code)
            .await
            .unwrap();
        assert_eq!(
            step_up::elevate(&deps, &caller, &su, proof)
                .await
                .unwrap_err(),
            ApiError::Forbidden,
            "{name}: a step-up by email"
        );
        let after = stored_session(&deps, &user, &caller.claims.sid).await;
        assert_eq!(
            (after.auth_time, &after.amr),
            (before.auth_time, &before.amr),
            "{name}: no elevation written"
        );

        // The sign-in's code is right, but completes nothing.
        let opened = codes::open_mfa_sign_in(&deps, &challenge_id).await.unwrap();
        let proof = answer_code(&deps, opened.record(), "email", &sign_in_code)
            .await
            .unwrap();
        assert_eq!(
            complete::complete_mfa_sign_in(&deps, proof, &opened, None, &RequestMeta::default())
                .await
                .unwrap_err(),
            ApiError::Forbidden,
            "{name}: a sign-in by email"
        );

        // A new sign-in offers the phone only, and mails nothing, named or not.
        let answer = password_answer(&deps, &user).await;
        let offered: Vec<String> = answer
            .methods()
            .unwrap()
            .iter()
            .map(|m| m.method.as_str().to_owned())
            .collect();
        assert_eq!(offered, ["sms", "voice"], "{name}");
        let next = codes::open_challenge(&deps, answer.challenge_id().unwrap())
            .await
            .unwrap();
        assert_eq!(
            send_by(&deps, &next, "email").await.unwrap_err().status(),
            400,
            "{name}: no email factor to send to"
        );
        let named = codes::SendCodeRequest {
            method: "email".into(),
            factor_id: Some(email_id.clone()),
        };
        assert_eq!(
            codes::send_code(&deps, &next, &named, &RequestMeta::default())
                .await
                .unwrap_err(),
            ApiError::NotFound,
            "{name}: the email factor named"
        );
        // Nor does a step-up.
        let refused = step_up::start(
            &deps,
            &caller,
            step_up::StepUpRequest {
                method: "email".into(),
                factor_id: None,
            },
        )
        .await
        .unwrap_err();
        assert_eq!(refused.status(), 400, "{name}: {refused:?}");
        assert_eq!(mailed_codes(&outbox), mailed, "{name}: nothing mailed");
    }
}

#[tokio::test]
async fn a_first_role_ends_a_sign_in_that_an_email_code_took_to_its_required_password_change() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("forced").await {
        let address = "me@example.org".to_owned();
        add_factor(&deps, &user, FactorKind::Email { address }).await;
        deps.stores
            .users
            .set_must_change_password(&user)
            .await
            .unwrap();
        // Password and an email code: only the new password is left to give.
        let challenge_id = password_step(&deps, &user).await;
        let challenge = codes::open_challenge(&deps, &challenge_id).await.unwrap();
        send_by(&deps, &challenge, "email").await.unwrap();
        let typed = SecretString::new(last_code(&outbox));
        let opened = codes::open_mfa_sign_in(&deps, &challenge_id).await.unwrap();
        let proof = answer_code(&deps, opened.record(), "email", &typed)
            .await
            .unwrap();
        let step = complete::complete_mfa_sign_in(&deps, proof, &opened, None, &Default::default())
            .await
            .unwrap();
        assert_eq!(step.status(), "password_change_required", "{name}");
        let change = codes::open_sign_in(&deps, step.challenge_id().unwrap())
            .await
            .unwrap();
        // One admin gives the user a role that needs no second admin.
        let (_, admin_caller) = signed_in_admin(&deps, &outbox, "+12025550144").await;
        let grant = admin::RoleGrant {
            role: "support".into(),
            reason: None,
        };
        let done = as_admin!(
            admin::grant_role,
            &deps,
            &admin_caller,
            user.as_str(),
            grant
        );
        assert_eq!(done.unwrap(), admin::ActOutcome::Done, "{name}");
        // The new password opens no session: the sign-in was made under a non-staff's rules.
        let refused = password::complete_required_change(
            &deps,
            &change,
            password::NewPasswordRequest {
                new_password: SecretString::new("required new passphrase 1".into()),
            },
            &RequestMeta::default(),
        )
        .await;
        assert_eq!(refused.unwrap_err(), ApiError::ChallengeExpired, "{name}");
        assert!(no_sessions(&deps, &user).await, "{name}: no session");
    }
}

#[tokio::test]
async fn a_user_whose_only_factor_is_email_is_given_no_first_role_asked_or_approved() {
    for (name, deps, _clock, outbox, user) in all_deps_with_user("mailonly").await {
        let address = "me@example.org".to_owned();
        add_factor(&deps, &user, FactorKind::Email { address }).await;
        let (_, first) = signed_in_admin(&deps, &outbox, "+12025550145").await;
        let (_, second) = signed_in_admin(&deps, &outbox, "+12025550146").await;
        let grant = |role: &str| admin::RoleGrant {
            role: role.into(),
            reason: None,
        };
        for role in ["support", "admin"] {
            let refused = as_admin!(admin::grant_role, &deps, &first, user.as_str(), grant(role));
            assert_eq!(refused.unwrap_err().status(), 409, "{name}: {role}");
        }
        // With a phone as well, an admin grant is filed; by its approval the phone is gone.
        let phone = add_phone(&deps, &user, "+12025550147").await;
        let admin::ActOutcome::PendingApproval(filed) = as_admin!(
            admin::grant_role,
            &deps,
            &first,
            user.as_str(),
            grant("admin")
        )
        .unwrap() else {
            panic!("{name}: an admin grant waits for a second admin");
        };
        deps.stores
            .factors
            .delete_factor(&user, &phone)
            .await
            .unwrap();
        let refused = as_admin!(admin::approve, &deps, &second, &filed.request_id);
        assert_eq!(refused.unwrap_err().status(), 409, "{name}: at approval");
        assert!(stored_user(&deps, &user).await.roles.is_empty(), "{name}");
    }
}
