//! One-time codes, verification, enrolment and sessions (SPEC §3, §4, §6) on both storage
//! adapters, with a manual clock and a recording notifier.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use portcullis::RequestMeta;
use portcullis::crypto::SecretString;
use portcullis::crypto::jwt::{self, Expectations};
use portcullis::error::{ApiError, SEND_LIMIT_MESSAGE};
use portcullis::service::codes::{self, SendCodeRequest};
use portcullis::service::complete::complete_sign_in;
use portcullis::service::factors::{self, EnrolPhoneRequest, Enroller, VerifyFactorRequest};
use portcullis::service::tokens::{self, RefreshRequest};
use portcullis::{Clock, Deps};

fn code(c: &str) -> SecretString {
    SecretString::new(c.into())
}

async fn challenge(deps: &Deps, id: &str) -> portcullis::storage::ChallengeRecord {
    codes::open_challenge(deps, id).await.unwrap()
}

fn wrong(right: &str) -> String {
    let n: u32 = right.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

#[tokio::test]
async fn an_sms_code_completes_the_sign_in_with_tokens_that_verify() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("sms").await {
        let cid = password_step(&deps, &user).await;
        let c = challenge(&deps, &cid).await;
        let sent = send_by(&deps, &c, "sms").await.unwrap();
        assert_eq!(sent.sent_to, "***-***-0143", "{name}");
        assert_eq!(sent.sends_remaining, 4);
        assert_eq!(sent.expires_in, 300);
        let message = outbox.sent().last().cloned().unwrap();
        assert_eq!(message.to, "+12025550143");
        assert!(
            message.text.contains("to sign in"),
            "purpose named: {}",
            message.text
        );
        assert!(
            message.text.contains("never ask you for this code"),
            "{}",
            message.text
        );
        let verified = answer_code(&deps, &c, "sms", &code(&last_code(&outbox)))
            .await
            .unwrap();
        let signed_in = finish_sign_in(&deps, verified).await;
        assert_eq!(signed_in.status(), "signed_in");
        let signer = deps.signer.get().await.unwrap();
        let claims = jwt::verify(
            &signed_in.tokens().as_ref().unwrap().access_token,
            &Expectations {
                key: signer.verifying_key(),
                kid: signer.key_id(),
                issuer: &deps.settings.token_issuer,
                audience: &deps.settings.token_audience,
                now: T0.secs(),
            },
        )
        .unwrap();
        assert_eq!(claims.sub, user.as_str());
        assert_eq!(claims.amr, vec!["pwd", "sms", "mfa"]);
        assert_eq!(claims.acr, jwt::ACR_MFA);
        assert_eq!(
            claims.exp - claims.iat,
            300,
            "{name}: 5-minute access token"
        );
        assert_eq!(claims.auth_time, T0.secs());
        // the code is single use: the challenge is completed
        assert_eq!(
            codes::open_challenge(&deps, &cid).await.unwrap_err(),
            ApiError::ChallengeExpired
        );
        // a completed sign-in resets the failure counter and records the sign-in
        let stored = stored_user(&deps, &user).await;
        assert_eq!(stored.last_sign_in_at, Some(T0), "{name}");
    }
}

#[tokio::test]
async fn sixth_send_in_a_session_is_refused_and_the_user_is_barred_for_30_minutes() {
    for (name, deps, clock, _outbox, user) in all_deps_with_phoned_user("sender").await {
        let cid = password_step(&deps, &user).await;
        let c = challenge(&deps, &cid).await;
        for remaining in (0..5).rev() {
            assert_eq!(
                send_by(&deps, &c, "sms").await.unwrap().sends_remaining,
                remaining,
                "{name}"
            );
        }
        let sixth = send_by(&deps, &c, "sms").await.unwrap_err();
        assert_eq!(
            sixth,
            ApiError::SendLimitReached {
                retry_after_secs: 1800
            },
            "{name}"
        );
        assert_eq!(sixth.problem().detail, SEND_LIMIT_MESSAGE);
        assert_eq!(sixth.status(), 429);
        // A new sign-in does not reset the bar: it is on the user.
        clock.advance_secs(60);
        let c2 = password_challenge(&deps, &user).await;
        assert_eq!(
            send_by(&deps, &c2, "sms").await.unwrap_err(),
            ApiError::SendLimitReached {
                retry_after_secs: 1740
            },
            "{name}"
        );
        clock.advance_secs(1740);
        let c3 = password_challenge(&deps, &user).await;
        assert!(
            send_by(&deps, &c3, "sms").await.is_ok(),
            "{name}: the bar ends after 30 minutes"
        );
    }
}

#[tokio::test]
async fn concurrent_send_requests_cannot_pass_five() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("burst").await {
        let c = password_challenge(&deps, &user).await;
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (deps, c) = (deps.clone(), c.clone());
            tasks.push(tokio::spawn(async move { send_by(&deps, &c, "sms").await }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(e) => assert!(
                    matches!(e, ApiError::SendLimitReached { .. }),
                    "{name}: {e:?}"
                ),
            }
        }
        assert_eq!(ok, 5, "{name}");
        assert_eq!(outbox.sent().len(), 5, "{name}: only five messages left");
    }
}

#[tokio::test]
async fn the_fifth_wrong_code_ends_the_challenge_and_a_resend_does_not_reset_the_count() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("guesser").await {
        let cid = password_step(&deps, &user).await;
        let c = challenge(&deps, &cid).await;
        send_by(&deps, &c, "sms").await.unwrap();
        for _ in 0..2 {
            let bad = wrong(&last_code(&outbox));
            assert_eq!(
                answer_code(&deps, &c, "sms", &code(&bad))
                    .await
                    .unwrap_err(),
                ApiError::CodeInvalid
            );
        }
        send_by(&deps, &c, "sms").await.unwrap();
        for _ in 0..2 {
            let bad = wrong(&last_code(&outbox));
            assert_eq!(
                answer_code(&deps, &c, "sms", &code(&bad))
                    .await
                    .unwrap_err(),
                ApiError::CodeInvalid
            );
        }
        let bad = wrong(&last_code(&outbox));
        assert_eq!(
            answer_code(&deps, &c, "sms", &code(&bad))
                .await
                .unwrap_err(),
            ApiError::ChallengeExpired,
            "{name}: the 5th wrong try ends the challenge"
        );
        let right = last_code(&outbox);
        assert_eq!(
            answer_code(&deps, &c, "sms", &code(&right))
                .await
                .unwrap_err(),
            ApiError::ChallengeExpired
        );
        assert_eq!(
            codes::open_challenge(&deps, &cid).await.unwrap_err(),
            ApiError::ChallengeExpired
        );
    }
}

#[tokio::test]
async fn the_same_right_code_submitted_concurrently_succeeds_exactly_once() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("race").await {
        let c = password_challenge(&deps, &user).await;
        send_by(&deps, &c, "sms").await.unwrap();
        let right = last_code(&outbox);
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let (deps, c, right) = (deps.clone(), c.clone(), right.clone());
            tasks.push(tokio::spawn(async move {
                answer_code(&deps, &c, "sms", &SecretString::new(right)).await
            }));
        }
        let mut wins = 0;
        for t in tasks {
            if t.await.unwrap().is_ok() {
                wins += 1;
            }
        }
        assert_eq!(wins, 1, "{name}");
    }
}

#[tokio::test]
async fn codes_expire_after_five_minutes_and_are_bound_to_their_challenge() {
    for (name, deps, clock, outbox, user) in all_deps_with_phoned_user("slow").await {
        let c1 = password_challenge(&deps, &user).await;
        let c2 = password_challenge(&deps, &user).await;
        send_by(&deps, &c1, "sms").await.unwrap();
        let code1 = last_code(&outbox);
        assert_eq!(
            answer_code(&deps, &c2, "sms", &code(&code1))
                .await
                .unwrap_err(),
            ApiError::CodeInvalid,
            "{name}: a code works only for the challenge it was sent for"
        );
        clock.advance_secs(300);
        assert_eq!(
            answer_code(&deps, &c1, "sms", &code(&code1))
                .await
                .unwrap_err(),
            ApiError::CodeInvalid,
            "{name}: expired"
        );
    }
}

#[tokio::test]
async fn voice_goes_only_to_plus_one_numbers() {
    for (name, deps, _clock, outbox, user) in all_deps_with_user("voice").await {
        let uk = add_phone(&deps, &user, "+447911123456").await;
        let us = add_phone(&deps, &user, "+12025550143").await;
        let c = password_challenge(&deps, &user).await;
        let refused = codes::send_code(
            &deps,
            &c,
            &SendCodeRequest {
                method: "voice".into(),
                factor_id: Some(uk),
            },
            &RequestMeta::default(),
        )
        .await;
        assert_eq!(refused.unwrap_err(), ApiError::VoiceNotSupported, "{name}");
        codes::send_code(
            &deps,
            &c,
            &SendCodeRequest {
                method: "voice".into(),
                factor_id: Some(us),
            },
            &RequestMeta::default(),
        )
        .await
        .unwrap();
        let m = outbox.sent().last().cloned().unwrap();
        assert_eq!(m.channel, portcullis::notifier::Channel::Voice);
        let verified = answer_code(&deps, &c, "voice", &code(&m.code.unwrap()))
            .await
            .unwrap();
        assert_eq!(verified.amr(), vec!["pwd", "tel", "mfa"]);
    }
}

#[tokio::test]
async fn a_failed_send_gives_the_send_back_and_leaves_no_usable_code() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("outage").await {
        let c = password_challenge(&deps, &user).await;
        outbox.set_failing(true);
        assert_eq!(
            send_by(&deps, &c, "sms").await.unwrap_err(),
            ApiError::ServiceUnavailable,
            "{name}"
        );
        outbox.set_failing(false);
        let stored = deps
            .stores
            .challenges
            .get_challenge(&c.id_digest, T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((stored.sends, stored.code.is_none()), (0, true), "{name}");
        assert_eq!(
            send_by(&deps, &c, "sms").await.unwrap().sends_remaining,
            4,
            "{name}"
        );
        let deliveries = deps
            .stores
            .deliveries
            .list_deliveries(&user, T0)
            .await
            .unwrap();
        let outcomes: Vec<&str> = deliveries.iter().map(|d| d.outcome.as_str()).collect();
        assert!(
            outcomes.contains(&"failed") && outcomes.contains(&"sent"),
            "{name}: every send is recorded: {outcomes:?}"
        );
        assert!(deliveries.iter().all(|d| d.to_masked == "***-***-0143"));
    }
}

#[tokio::test]
async fn malformed_codes_and_methods_are_refused_without_using_a_try() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("typo").await {
        let c = password_challenge(&deps, &user).await;
        send_by(&deps, &c, "sms").await.unwrap();
        for bad in ["12345", "1234567", "abcdef", "", "١٢٣٤٥٦"] {
            assert_eq!(
                answer_code(&deps, &c, "sms", &code(bad))
                    .await
                    .unwrap_err()
                    .status(),
                400,
                "{name}: {bad}"
            );
        }
        assert_eq!(
            answer_code(&deps, &c, "pigeon", &code("123456"))
                .await
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(send_by(&deps, &c, "fax").await.unwrap_err().status(), 400);
        assert_eq!(
            codes::send_code(
                &deps,
                &c,
                &SendCodeRequest {
                    method: "sms".into(),
                    factor_id: Some("f_nope".into())
                },
                &RequestMeta::default()
            )
            .await
            .unwrap_err(),
            ApiError::NotFound
        );
        let stored = deps
            .stores
            .challenges
            .get_challenge(&c.id_digest, T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.attempts, 0, "{name}: no try used");
        let right = last_code(&outbox);
        assert!(
            answer_code(
                &deps,
                &c,
                "sms",
                &code(&format!("{} {}", &right[..3], &right[3..]))
            )
            .await
            .is_ok(),
            "{name}: spaces are fine"
        );
    }
}

#[tokio::test]
async fn a_new_enrolment_supersedes_unfinished_ones_of_its_kind_so_they_never_fill_the_limit() {
    for (name, deps, _clock, _outbox, user) in all_deps_with_user("abandon").await {
        let c = password_challenge(&deps, &user).await;
        // More abandoned authenticator set-ups than the per-user limit of factors.
        let mut last = String::new();
        for _ in 0..=factors::MAX_FACTORS {
            last = factors::enrol_totp(&deps, Enroller::SignIn(&c, &RequestMeta::default()))
                .await
                .unwrap()
                .factor_id;
        }
        for number in ["+12025550143", "+12025550144"] {
            let phone = EnrolPhoneRequest {
                phone: number.into(),
                delivery: "sms".into(),
            };
            factors::enrol_phone(&deps, Enroller::SignIn(&c, &RequestMeta::default()), phone)
                .await
                .unwrap();
        }
        let stored = deps.stores.factors.list_factors(&user).await.unwrap();
        let pending = |kind: &str| stored.iter().filter(|f| f.kind.name() == kind).count();
        assert_eq!(
            (pending("totp"), pending("phone")),
            (1, 1),
            "{name}: one unfinished enrolment per kind"
        );
        assert!(
            stored.iter().any(|f| f.factor_id == last),
            "{name}: the newest one is kept"
        );
    }
}

#[tokio::test]
async fn enrolment_inside_a_sign_in_needs_an_enrolment_challenge_and_totp_codes_work_once() {
    for (name, deps, clock, _outbox, user) in all_deps_with_user("enrol").await {
        let cid = password_step(&deps, &user).await;
        let c = codes::open_sign_in(&deps, &cid).await.unwrap();
        let enrolment = factors::enrol_totp(&deps, Enroller::SignIn(&c, &RequestMeta::default()))
            .await
            .unwrap();
        assert!(
            enrolment
                .otpauth_uri
                .starts_with("otpauth://totp/Portcullis:"),
            "{name}"
        );
        assert_eq!(enrolment.secret.len(), 32, "160-bit secret in base32");
        let secret =
            portcullis::crypto::totp::TotpSecret::from_bytes(base32_decode(&enrolment.secret))
                .unwrap();
        let now = clock.now().secs();
        let totp_code = portcullis::crypto::totp::code_at(&secret, now);
        let proven = factors::verify_factor(
            &deps,
            Enroller::SignIn(&c, &RequestMeta::default()),
            &enrolment.factor_id,
            &VerifyFactorRequest::with_code(code(&totp_code)),
        )
        .await
        .unwrap();
        assert_eq!(
            proven.factor.status,
            portcullis::storage::FactorStatus::Active
        );
        let codes_issued = proven.recovery_codes.clone().unwrap();
        assert_eq!(
            codes_issued.len(),
            10,
            "{name}: an authenticator comes with 10 recovery codes"
        );
        complete_sign_in(
            &deps,
            proven.verified,
            None,
            &portcullis::RequestMeta::default(),
        )
        .await
        .unwrap();

        // Now the user has a factor: a password alone must not add another.
        let c2 = password_challenge(&deps, &user).await;
        assert_eq!(
            c2.stage,
            portcullis::storage::Stage::SignInFactor {
                then_new_password: false
            }
        );
        assert_eq!(
            factors::enrol_totp(&deps, Enroller::SignIn(&c2, &RequestMeta::default()))
                .await
                .unwrap_err(),
            ApiError::Forbidden,
            "{name}"
        );
        let phone = EnrolPhoneRequest {
            phone: "+12025550143".into(),
            delivery: "sms".into(),
        };
        assert_eq!(
            factors::enrol_phone(&deps, Enroller::SignIn(&c2, &RequestMeta::default()), phone)
                .await
                .unwrap_err(),
            ApiError::Forbidden
        );
        // The same TOTP code is never accepted twice.
        assert_eq!(
            answer_code(&deps, &c2, "totp", &code(&totp_code))
                .await
                .unwrap_err(),
            ApiError::CodeInvalid,
            "{name}: replay"
        );
        clock.advance_secs(30);
        let next = portcullis::crypto::totp::code_at(&secret, clock.now().secs());
        let v = answer_code(&deps, &c2, "totp", &code(&next)).await.unwrap();
        assert_eq!(v.amr(), vec!["pwd", "otp", "mfa"]);
    }
}

fn base32_decode(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u64;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = alphabet.iter().position(|a| *a == c).unwrap() as u64;
        bits = (bits << 5) | v;
        nbits += 5;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    out
}

#[tokio::test]
async fn refresh_rotates_reuse_revokes_and_idle_and_absolute_limits_hold() {
    for (name, deps, clock, outbox, user) in all_deps_with_phoned_user("session").await {
        let sign_in = |deps: Deps, outbox: portcullis::notifier::RecordingNotifier| {
            let user = user.clone();
            async move {
                let c = password_challenge(&deps, &user).await;
                send_by(&deps, &c, "sms").await.unwrap();
                let v = answer_code(&deps, &c, "sms", &SecretString::new(last_code(&outbox)))
                    .await
                    .unwrap();
                finish_sign_in(&deps, v).await.into_tokens().unwrap()
            }
        };
        let first = sign_in(deps.clone(), outbox.clone()).await;
        clock.advance_secs(600);
        let refresh = |t: &str| RefreshRequest {
            refresh_token: SecretString::new(t.into()),
        };
        let second = tokens::refresh(&deps, refresh(&first.refresh_token))
            .await
            .unwrap();
        assert_ne!(second.refresh_token, first.refresh_token, "{name}: rotated");
        // reuse of the rotated token revokes the whole session
        assert_eq!(
            tokens::refresh(&deps, refresh(&first.refresh_token))
                .await
                .unwrap_err(),
            ApiError::Unauthorized
        );
        assert_eq!(
            tokens::refresh(&deps, refresh(&second.refresh_token))
                .await
                .unwrap_err(),
            ApiError::Unauthorized,
            "{name}: session revoked"
        );

        // inactivity: 15 minutes without a refresh ends the session
        let s = sign_in(deps.clone(), outbox.clone()).await;
        clock.advance_secs(14 * 60);
        let s = tokens::refresh(&deps, refresh(&s.refresh_token))
            .await
            .unwrap();
        clock.advance_secs(15 * 60);
        assert_eq!(
            tokens::refresh(&deps, refresh(&s.refresh_token))
                .await
                .unwrap_err(),
            ApiError::Unauthorized,
            "{name}: idle"
        );

        // absolute: 12 hours however active
        let mut s = sign_in(deps.clone(), outbox.clone()).await;
        for _ in 0..(12 * 60 / 14) {
            clock.advance_secs(14 * 60);
            s = tokens::refresh(&deps, refresh(&s.refresh_token))
                .await
                .unwrap();
        }
        clock.advance_secs(14 * 60);
        assert_eq!(
            tokens::refresh(&deps, refresh(&s.refresh_token))
                .await
                .unwrap_err(),
            ApiError::Unauthorized,
            "{name}: absolute"
        );

        // sign-out revokes
        let s = sign_in(deps.clone(), outbox.clone()).await;
        let caller = bearer(&deps, &s.access_token).await.unwrap();
        tokens::sign_out(&deps, &caller).await.unwrap();
        assert_eq!(
            tokens::refresh(&deps, refresh(&s.refresh_token))
                .await
                .unwrap_err(),
            ApiError::Unauthorized,
            "{name}: signed out"
        );
        for garbage in ["", "x", "a.b.c", &first.access_token] {
            assert_eq!(
                tokens::refresh(&deps, refresh(garbage)).await.unwrap_err(),
                ApiError::Unauthorized
            );
        }
    }
}

#[tokio::test]
async fn removing_factors_needs_step_up_and_the_last_one_means_enrolment_again() {
    for (name, deps, clock, outbox, user) in all_deps_with_user("remover").await {
        let factor = add_phone(&deps, &user, "+12025550143").await;
        let v = sms_verified(&deps, &user, &outbox).await;
        let t = finish_sign_in(&deps, v).await.into_tokens().unwrap();
        let caller = bearer(&deps, &t.access_token).await.unwrap();
        let listed = factors::list(&deps, &caller).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].phone.as_deref(), Some("***-***-0143"));
        // adding a factor when one exists needs a step-up; within 5 minutes of MFA it counts
        let phone = || EnrolPhoneRequest {
            phone: "+12125551234".into(),
            delivery: "voice".into(),
        };
        assert!(
            factors::enrol_phone(&deps, Enroller::Session(&caller), phone())
                .await
                .is_ok(),
            "{name}"
        );
        clock.advance_secs(299);
        assert!(caller.is_elevated(&deps));
        clock.advance_secs(1);
        assert_eq!(
            factors::remove(&deps, &caller, &factor).await.unwrap_err(),
            ApiError::StepUpRequired,
            "{name}"
        );
        assert_eq!(
            factors::enrol_phone(&deps, Enroller::Session(&caller), phone())
                .await
                .unwrap_err(),
            ApiError::StepUpRequired
        );
        clock.set(T0);
        factors::remove(&deps, &caller, &factor).await.unwrap();
        assert_eq!(
            factors::remove(&deps, &caller, &factor).await.unwrap_err(),
            ApiError::NotFound
        );
        // only a pending phone remains: the next sign-in must enrol
        let c = password_challenge(&deps, &user).await;
        assert_eq!(
            c.stage,
            portcullis::storage::Stage::SignInEnrolment {
                then_new_password: false
            },
            "{name}"
        );
    }
}

/// The events of an enrolment carry the request that verified it (the caller is passed down,
/// not looked up): the factor added and the recovery codes issued with it.
#[tokio::test]
async fn an_enrolment_records_the_ip_of_the_request_that_verified_it() {
    for (name, deps, clock, _outbox, user) in all_deps_with_user("enrol-ip").await {
        let c = password_challenge(&deps, &user).await;
        let from = |ip: &str| RequestMeta {
            source_ip: Some(ip.into()),
            ..RequestMeta::default()
        };
        let started = from("198.51.100.10");
        let enrolment = factors::enrol_totp(&deps, Enroller::SignIn(&c, &started))
            .await
            .unwrap();
        let secret =
            portcullis::crypto::totp::TotpSecret::from_bytes(base32_decode(&enrolment.secret))
                .unwrap();
        let totp_code = portcullis::crypto::totp::code_at(&secret, clock.now().secs());
        let verifying = from("198.51.100.11");
        factors::verify_factor(
            &deps,
            Enroller::SignIn(&c, &verifying),
            &enrolment.factor_id,
            &VerifyFactorRequest::with_code(code(&totp_code)),
        )
        .await
        .unwrap();
        let events = deps
            .stores
            .audit
            .list_events(&user, clock.now(), 50)
            .await
            .unwrap();
        for kind in ["factor_added", "recovery_codes_issued"] {
            let found: Vec<_> = events.iter().filter(|e| e.kind == kind).collect();
            assert_eq!(found.len(), 1, "{name}: {kind}");
            assert_eq!(
                found[0].source_ip.as_deref(),
                Some("198.51.100.11"),
                "{name}: {kind}"
            );
        }
    }
}

/// A method that is not answered with a code is refused before anything is counted, even
/// through `check_code_by`, which takes the method already parsed.
#[tokio::test]
async fn a_method_without_a_code_is_refused_before_any_try_is_counted() {
    use portcullis::method::Method;
    for (name, deps, _clock, _outbox, user) in all_deps_with_user("nocode").await {
        add_phone(&deps, &user, "+12025550143").await;
        let c = password_challenge(&deps, &user).await;
        for method in [Method::RecoveryCode, Method::Passkey] {
            let refused = codes::check_code_by(
                &deps,
                &c,
                method,
                &code("123456"),
                None,
                &RequestMeta::default(),
            )
            .await
            .unwrap_err();
            assert_eq!(
                refused,
                ApiError::validation("method must be one of sms, voice, email, totp."),
                "{name}: {method}"
            );
        }
        assert_eq!(
            stored_challenge(&deps, &c.id_digest).await.attempts,
            0,
            "{name}: no try counted"
        );
    }
}
