//! The ways round the guarantees that an outside review found (SPEC §12), each closed — on both
//! storage adapters, with a manual clock and a recording notifier. Every test here failed on
//! the first round's code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use portcullis::Deps;
use portcullis::RequestMeta;
use portcullis::config::Countries;
use portcullis::crypto::SecretString;
use portcullis::error::ApiError;
use portcullis::identity::UserId;
use portcullis::notifier::RecordingNotifier;
use portcullis::service::admin::{self, ActOutcome, Action, InviteOutcome, InviteRequest};
use portcullis::service::codes::{self, SendCodeRequest};
use portcullis::service::complete::{self, TrustRequest, complete_sign_in};
use portcullis::service::factors::{self, EnrolPhoneRequest, Enroller, VerifyFactorRequest};
use portcullis::service::password::{self, ChangePasswordRequest, ResetRequest};
use portcullis::service::sign_in::{SignInRequest, sign_in};
use portcullis::service::step_up;
use portcullis::service::{devices, passkeys, recovery, tokens};
use portcullis::storage::{ChallengeRecord, RequestKind, UserStatus};

fn secret(s: &str) -> SecretString {
    SecretString::new(s.into())
}

fn sms() -> SendCodeRequest {
    SendCodeRequest {
        method: "sms".into(),
        factor_id: None,
    }
}

fn wrong(right: &str) -> String {
    let n: u32 = right.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

fn is_locked(result: &Result<impl std::fmt::Debug, ApiError>) -> bool {
    matches!(result, Err(ApiError::SecondFactorLocked { .. }))
}

async fn open(deps: &Deps, user: &UserId) -> codes::SignInChallenge {
    codes::open_sign_in(deps, &password_step(deps, user).await)
        .await
        .unwrap()
}

/// Opens a sign-in challenge, sends a text and returns it with the right code.
async fn challenge_with_code(
    deps: &Deps,
    user: &UserId,
    outbox: &RecordingNotifier,
) -> (ChallengeRecord, String) {
    let c: ChallengeRecord = (*open(deps, user).await).clone();
    send_by(deps, &c, "sms").await.unwrap();
    (c, last_code(outbox))
}

fn with_settings(deps: &mut Deps, change: impl FnOnce(&mut portcullis::Settings)) {
    let mut settings = (*deps.settings).clone();
    change(&mut settings);
    deps.settings = Arc::new(settings);
}

/// A step-up of `caller`'s session with a code by text.
async fn sms_step_up(
    deps: &Deps,
    caller: &tokens::Caller,
    outbox: &RecordingNotifier,
) -> step_up::Elevated {
    let started = start_step_up(deps, caller, "sms").await;
    let su = step_up::challenge_of(deps, caller, &started.challenge_id)
        .await
        .unwrap();
    let v = answer_code(deps, &su, "sms", &secret(&last_code(outbox)))
        .await
        .unwrap();
    step_up::elevate(deps, caller, &su, v).await.unwrap()
}

fn purposes(outbox: &RecordingNotifier) -> Vec<String> {
    outbox.sent().into_iter().map(|m| m.purpose).collect()
}

// ---- 1. second-factor guessing is limited per user ------------------------------------------

#[tokio::test]
async fn ten_wrong_codes_across_three_challenges_lock_the_second_factor_even_for_the_right_code() {
    for (name, deps, clock, outbox, user) in all_deps_with_phoned_user("guess").await {
        let mut last = None;
        let mut answers = 0;
        for wrongs in [4, 4, 2] {
            let (c, right) = challenge_with_code(&deps, &user, &outbox).await;
            for _ in 0..wrongs {
                answers += 1;
                let result = answer_code(&deps, &c, "sms", &secret(&wrong(&right))).await;
                if answers < 10 {
                    assert_eq!(
                        result.unwrap_err(),
                        ApiError::CodeInvalid,
                        "{name}: answer {answers}"
                    );
                } else {
                    // The answer that reaches the threshold starts the lock and says so.
                    assert!(is_locked(&result), "{name}: {result:?}");
                }
            }
            last = Some((c, right));
        }
        let (c, right) = last.unwrap();
        let refused = answer_code(&deps, &c, "sms", &secret(&right)).await;
        match refused {
            Err(ApiError::SecondFactorLocked { retry_after_secs }) => {
                assert_eq!(retry_after_secs, 1800, "{name}");
                let problem = ApiError::SecondFactorLocked { retry_after_secs }.problem();
                assert_eq!((problem.status, problem.code.as_str()), (423, "locked"));
            }
            other => panic!("{name}: the right code must be refused while locked: {other:?}"),
        }
        // A new challenge does not help, and no code is even sent while locked.
        let fresh = open(&deps, &user).await;
        assert!(is_locked(&send_by(&deps, &fresh, "sms").await), "{name}");
        // Audited and alerted.
        let kinds = event_kinds(&deps, &user).await;
        assert_eq!(
            kinds
                .iter()
                .filter(|k| *k == "second_factor_failed")
                .count(),
            10,
            "{name}"
        );
        assert_eq!(
            kinds
                .iter()
                .filter(|k| *k == "second_factor_locked")
                .count(),
            1,
            "{name}"
        );
        assert!(purposes(&outbox).contains(&"alert_second_factor_locked".to_owned()));
        // 30 minutes later a new challenge works.
        clock.advance_secs(1800);
        let (c, right) = challenge_with_code(&deps, &user, &outbox).await;
        assert!(
            answer_code(&deps, &c, "sms", &secret(&right)).await.is_ok(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn nine_wrong_codes_then_the_right_one_is_accepted_and_ends_the_run() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("nine").await {
        for _round in 0..2 {
            for wrongs in [4, 4, 1] {
                let (c, right) = challenge_with_code(&deps, &user, &outbox).await;
                for _ in 0..wrongs {
                    let result = answer_code(&deps, &c, "sms", &secret(&wrong(&right))).await;
                    assert_eq!(result.unwrap_err(), ApiError::CodeInvalid, "{name}");
                }
                if wrongs == 1 {
                    // The 10th answer of the run, and right: compared and accepted.
                    assert!(
                        answer_code(&deps, &c, "sms", &secret(&right)).await.is_ok(),
                        "{name}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn recovery_codes_and_step_up_answers_count_in_the_same_run() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("mixed").await {
        recovery::issue(&deps, &user, &RequestMeta::default())
            .await
            .unwrap();
        let (caller, _) = sms_sign_in(&deps, &user, &outbox).await;
        // 4 wrong recovery codes in a sign-in challenge.
        let c = open(&deps, &user).await;
        for _ in 0..4 {
            let result = recovery::redeem(
                &deps,
                &c,
                &secret("AAAA-BBBB-CCCC-DDDD"),
                &RequestMeta::default(),
            )
            .await;
            assert_eq!(result.unwrap_err(), ApiError::CodeInvalid, "{name}");
        }
        // 4 wrong texts in another.
        let (c, right) = challenge_with_code(&deps, &user, &outbox).await;
        for _ in 0..4 {
            let _ = answer_code(&deps, &c, "sms", &secret(&wrong(&right))).await;
        }
        // 2 wrong in a step-up: the second is the 10th answer.
        let started = start_step_up(&deps, &caller, "sms").await;
        let su = step_up::challenge_of(&deps, &caller, &started.challenge_id)
            .await
            .unwrap();
        let right = last_code(&outbox);
        let first = answer_code(&deps, &su, "sms", &secret(&wrong(&right))).await;
        assert_eq!(first.unwrap_err(), ApiError::CodeInvalid, "{name}");
        let tenth = answer_code(&deps, &su, "sms", &secret(&wrong(&right))).await;
        assert!(is_locked(&tenth), "{name}: {tenth:?}");
        assert!(is_locked(
            &answer_code(&deps, &su, "sms", &secret(&right)).await
        ));
    }
}

#[tokio::test]
async fn an_admin_unlock_ends_a_second_factor_lock() {
    for (name, deps, _clock, outbox) in all_deps_with_notifier().await {
        let (_, admin_a) = signed_in_admin(&deps, &outbox, "+12025550101").await;
        let user = user_with_phone(&deps, "unlockme").await;
        for _ in 0..2 {
            let (c, right) = challenge_with_code(&deps, &user, &outbox).await;
            for _ in 0..5 {
                let _ = answer_code(&deps, &c, "sms", &secret(&wrong(&right))).await;
            }
        }
        let c = open(&deps, &user).await;
        assert!(is_locked(&send_by(&deps, &c, "sms").await), "{name}");
        as_admin!(admin::act, &deps, &admin_a, user.as_str(), Action::Unlock).unwrap();
        let (c, right) = challenge_with_code(&deps, &user, &outbox).await;
        assert!(
            answer_code(&deps, &c, "sms", &secret(&right)).await.is_ok(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn parallel_guesses_in_many_challenges_compare_at_most_ten_answers() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("parallel").await {
        let mut challenges = Vec::new();
        for _ in 0..4 {
            challenges.push(challenge_with_code(&deps, &user, &outbox).await);
        }
        let mut tasks = Vec::new();
        for (c, right) in &challenges {
            for _ in 0..5 {
                let (deps, c, guess) = (deps.clone(), c.clone(), wrong(right));
                tasks.push(tokio::spawn(async move {
                    answer_code(&deps, &c, "sms", &SecretString::new(guess)).await
                }));
            }
        }
        let mut compared_and_wrong = 0;
        let mut locked = 0;
        for task in tasks {
            match task.await.unwrap() {
                Err(ApiError::CodeInvalid | ApiError::ChallengeExpired) => compared_and_wrong += 1,
                Err(ApiError::SecondFactorLocked { .. }) => locked += 1,
                other => panic!("{name}: {other:?}"),
            }
        }
        // 10 were compared (the 10th answered "locked" as it started the lock), 10 were not.
        assert_eq!((compared_and_wrong, locked), (9, 11), "{name}");
        let kinds = event_kinds(&deps, &user).await;
        assert_eq!(
            kinds
                .iter()
                .filter(|k| *k == "second_factor_failed")
                .count(),
            10,
            "{name}"
        );
    }
}

/// The code key, counting its uses (in production each is a KMS call, billed and rate-limited
/// for the whole account).
#[derive(Debug)]
struct CountingMac {
    inner: Arc<dyn portcullis::crypto::keyed::CodeMac>,
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl portcullis::crypto::keyed::CodeMac for CountingMac {
    async fn mac(&self, message: &[u8]) -> Result<Vec<u8>, portcullis::error::StoreError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.mac(message).await
    }
}

#[tokio::test]
async fn a_burst_of_answers_costs_at_most_one_key_call_per_try_even_when_locked() {
    for (name, mut deps, _clock, outbox) in all_deps_with_notifier().await {
        let user = user_with_phone(&deps, "kmsburst").await;
        // `kms` mode, where every MAC is a KMS call (the envelope mode makes none per code).
        let counting = Arc::new(CountingMac {
            inner: deps.mac.clone(),
            calls: std::sync::atomic::AtomicUsize::new(0),
        });
        deps.code_keys = Arc::new(portcullis::code_keys::CodeKeys::kms(counting.clone()));
        let (c, right) = challenge_with_code(&deps, &user, &outbox).await;
        assert_eq!(
            counting.calls.swap(0, std::sync::atomic::Ordering::SeqCst),
            1,
            "{name}: the send made one MAC"
        );
        // As each request of a burst reads it: with the code pending, before any try.
        let c = deps
            .stores
            .challenges
            .get_challenge(&c.id_digest, deps.clock.now())
            .await
            .unwrap()
            .unwrap();
        assert!(c.code.is_some());
        let answer = |deps: &Deps| {
            let (deps, c, guess) = (deps.clone(), c.clone(), wrong(&right));
            tokio::spawn(
                async move { answer_code(&deps, &c, "sms", &SecretString::new(guess)).await },
            )
        };
        let burst: Vec<_> = (0..40).map(|_| answer(&deps)).collect();
        for task in burst {
            assert!(task.await.unwrap().is_err(), "{name}");
        }
        let tries = deps.settings.max_code_tries as usize;
        let used = counting.calls.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            used <= tries,
            "{name}: 40 answers at once made {used} key calls; at most {tries} (one per try)"
        );
        // And a locked user's answers cost none once the challenge's tries are spent.
        counting.calls.store(0, std::sync::atomic::Ordering::SeqCst);
        for _ in 0..10 {
            assert!(answer(&deps).await.unwrap().is_err(), "{name}");
        }
        assert_eq!(
            counting.calls.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "{name}"
        );
    }
}

// ---- 4. SMS and voice pumping ----------------------------------------------------------------

#[tokio::test]
async fn the_eleventh_text_in_an_hour_is_refused_across_challenges_and_enrolments() {
    for (name, deps, clock, outbox, user) in all_deps_with_phoned_user("pump").await {
        let (caller, _) = sms_sign_in(&deps, &user, &outbox).await; // 1
        for _ in 0..2 {
            let c = open(&deps, &user).await;
            for _ in 0..4 {
                send_by(&deps, &c, "sms").await.unwrap(); // 2..9
            }
        }
        // An enrolment counts too: the 10th.
        factors::enrol_phone(
            &deps,
            Enroller::Session(&caller),
            EnrolPhoneRequest {
                phone: "+12025550144".into(),
                delivery: "sms".into(),
            },
        )
        .await
        .unwrap();
        let c = open(&deps, &user).await;
        match send_by(&deps, &c, "sms").await {
            Err(ApiError::SendCapReached { retry_after_secs }) => {
                assert!(
                    retry_after_secs > 0 && retry_after_secs <= 3600,
                    "{name}: {retry_after_secs}"
                );
                assert_eq!(
                    ApiError::SendCapReached { retry_after_secs }.problem().code,
                    "send_limit_reached"
                );
            }
            other => panic!("{name}: the 11th text in an hour must be refused: {other:?}"),
        }
        clock.advance_secs(3600);
        let c = open(&deps, &user).await;
        assert!(
            send_by(&deps, &c, "sms").await.is_ok(),
            "{name}: rolling hour"
        );
    }
}

#[tokio::test]
async fn twenty_texts_a_day_and_a_failed_send_is_given_back() {
    for (name, deps, clock, outbox, user) in all_deps_with_phoned_user("daily").await {
        // A failed send uses nothing.
        let c = open(&deps, &user).await;
        outbox.set_failing(true);
        assert_eq!(
            send_by(&deps, &c, "sms").await.unwrap_err(),
            ApiError::ServiceUnavailable
        );
        outbox.set_failing(false);
        for hour in 0..4 {
            let c = open(&deps, &user).await;
            for _ in 0..5 {
                send_by(&deps, &c, "sms")
                    .await
                    .unwrap_or_else(|e| panic!("{name} hour {hour}: {e:?}"));
            }
            clock.advance_secs(3600);
        }
        let c = open(&deps, &user).await;
        match send_by(&deps, &c, "sms").await {
            Err(ApiError::SendCapReached { retry_after_secs }) => {
                assert_eq!(retry_after_secs, 86_400 - 4 * 3600, "{name}");
            }
            other => panic!("{name}: the 21st text of the day must be refused: {other:?}"),
        }
    }
}

#[tokio::test]
async fn voice_goes_to_us_and_canada_by_region_and_text_only_to_allowed_countries() {
    for (name, mut deps, _clock, outbox) in all_deps_with_notifier().await {
        let user = user_with_phone(&deps, "country").await;
        let (caller, _) = sms_sign_in(&deps, &user, &outbox).await;
        let enrol = |phone: &str, delivery: &str| EnrolPhoneRequest {
            phone: phone.into(),
            delivery: delivery.into(),
        };
        // +1 876 is Jamaica: a +1 number, but not US or Canada.
        assert_eq!(
            factors::enrol_phone(
                &deps,
                Enroller::Session(&caller),
                enrol("+18765550123", "voice")
            )
            .await
            .unwrap_err(),
            ApiError::VoiceNotSupported,
            "{name}"
        );
        // Vanity letters are refused.
        assert_eq!(
            factors::enrol_phone(
                &deps,
                Enroller::Session(&caller),
                enrol("+1202555CALL", "sms")
            )
            .await
            .unwrap_err()
            .status(),
            400
        );
        // A voice code to a stored Jamaican number is refused at send too.
        let jm = add_phone(&deps, &user, "+18765550123").await;
        let c = open(&deps, &user).await;
        let voice = SendCodeRequest {
            method: "voice".into(),
            factor_id: Some(jm.clone()),
        };
        assert_eq!(
            codes::send_code(&deps, &c, &voice, &RequestMeta::default())
                .await
                .unwrap_err(),
            ApiError::VoiceNotSupported
        );
        // A deployment that texts only the US refuses a UK number, at enrolment and at send.
        with_settings(&mut deps, |s| {
            s.sms_countries = Countries::parse("US").unwrap()
        });
        assert_eq!(
            factors::enrol_phone(
                &deps,
                Enroller::Session(&caller),
                enrol("+447400123456", "sms")
            )
            .await
            .unwrap_err(),
            ApiError::CountryNotSupported,
            "{name}"
        );
        let text_jm = SendCodeRequest {
            method: "sms".into(),
            factor_id: Some(jm),
        };
        assert_eq!(
            codes::send_code(&deps, &c, &text_jm, &RequestMeta::default())
                .await
                .unwrap_err(),
            ApiError::CountryNotSupported
        );
    }
}

// ---- 3. revocation is immediate --------------------------------------------------------------

#[tokio::test]
async fn old_access_tokens_are_refused_at_once_after_sign_out_change_reset_mfa_reset_and_deactivation()
 {
    for (name, deps, _clock, outbox) in all_deps_with_notifier().await {
        let (_, admin_a) = signed_in_admin(&deps, &outbox, "+12025550101").await;
        let (_, admin_b) = signed_in_admin(&deps, &outbox, "+12025550102").await;
        let user = user_with_phone(&deps, "revoked").await;
        let refused =
            |r: Result<tokens::Caller, ApiError>| matches!(r, Err(ApiError::Unauthorized));

        // Sign-out.
        let (a, ta) = sms_sign_in(&deps, &user, &outbox).await;
        let (_, tb) = sms_sign_in(&deps, &user, &outbox).await;
        tokens::sign_out(&deps, &a).await.unwrap();
        assert!(
            refused(bearer(&deps, &ta.access_token).await),
            "{name}: signed out"
        );
        assert!(
            bearer(&deps, &tb.access_token).await.is_ok(),
            "{name}: other session lives"
        );

        // A password change ends the other sessions, keeps the current one.
        let (current, tc) = sms_sign_in(&deps, &user, &outbox).await;
        password::change(
            &deps,
            &current,
            ChangePasswordRequest {
                current_password: secret(PASSWORD),
                new_password: secret("a brand new passphrase 2026"),
            },
        )
        .await
        .unwrap();
        assert!(
            refused(bearer(&deps, &tb.access_token).await),
            "{name}: changed elsewhere"
        );
        assert!(bearer(&deps, &tc.access_token).await.is_ok(), "{name}");

        // Deactivation (by an admin) ends every session.
        as_admin!(
            admin::act,
            &deps,
            &admin_a,
            user.as_str(),
            Action::Deactivate
        )
        .unwrap();
        assert!(
            refused(bearer(&deps, &tc.access_token).await),
            "{name}: deactivated"
        );
        assert!(
            purposes(&outbox).contains(&"alert_deactivated_by_admin".to_owned()),
            "{name}"
        );
        as_admin!(
            admin::act,
            &deps,
            &admin_a,
            user.as_str(),
            Action::Reactivate
        )
        .unwrap();

        // An MFA reset ends every session: a stolen token cannot enrol the thief's factor.
        let other = create_user(&deps, &unique("reset-victim")).await;
        add_phone(&deps, &other, "+12025550145").await;
        let (_, stolen) = sms_sign_in(&deps, &other, &outbox).await;
        let filed = as_admin!(
            admin::request_mfa_reset,
            &deps,
            &admin_a,
            admin::MfaResetFiling {
                user_id: other.to_string(),
                reason: "lost phone, verified by branch".into(),
            }
        )
        .unwrap();
        as_admin!(admin::approve, &deps, &admin_b, &filed.request_id).unwrap();
        assert!(
            refused(bearer(&deps, &stolen.access_token).await),
            "{name}: MFA reset"
        );
    }
}

#[tokio::test]
async fn a_reset_ends_every_session_and_tokens_never_outlive_the_session() {
    for (name, mut deps, clock, outbox) in all_deps_with_notifier().await {
        with_settings(&mut deps, |s| s.session_max_secs = 600);
        let user = user_with_phone(&deps, "absolute").await;
        let (_, t) = sms_sign_in(&deps, &user, &outbox).await;
        // 8 minutes in, a refresh issues a token that ends with the session (10 minutes), not
        // 5 minutes later.
        clock.advance_secs(480);
        let refreshed = tokens::refresh(
            &deps,
            tokens::RefreshRequest {
                refresh_token: secret(&t.refresh_token),
            },
        )
        .await
        .unwrap();
        assert_eq!(refreshed.expires_in, 120, "{name}");
        let caller = bearer(&deps, &refreshed.access_token).await.unwrap();
        assert_eq!(caller.claims.exp, T0.plus_secs(600).secs(), "{name}");
        // A step-up elevates, never extends.
        let elevated = sms_step_up(&deps, &caller, &outbox).await;
        assert!(
            elevated.expires_in <= 120,
            "{name}: {}",
            elevated.expires_in
        );
        let session = stored_session(&deps, &user, &caller.claims.sid).await;
        assert_eq!(session.expires_at, T0.plus_secs(600), "{name}");
        clock.advance_secs(120);
        assert!(matches!(
            bearer(&deps, &elevated.access_token).await,
            Err(ApiError::Unauthorized)
        ));

        // A reset ends every session at once.
        let (_, live) = sms_sign_in(&deps, &user, &outbox).await;
        forgot(&deps, &user).await;
        let link = outbox
            .sent()
            .into_iter()
            .rev()
            .find(|m| m.purpose == "password_reset")
            .unwrap();
        let token = link_token(&link.text);
        password::reset(
            &deps,
            ResetRequest {
                token: secret(&token),
                new_password: secret("reset passphrase for 2026"),
            },
            &RequestMeta::default(),
        )
        .await
        .unwrap();
        assert!(
            matches!(
                bearer(&deps, &live.access_token).await,
                Err(ApiError::Unauthorized)
            ),
            "{name}"
        );
    }
}

// ---- 5. password change honours the lock -----------------------------------------------------

#[tokio::test]
async fn a_password_change_checks_the_lock_first_and_counts_a_wrong_current_password() {
    for (name, deps, clock, outbox, user) in all_deps_with_phoned_user("changer").await {
        let (caller, _) = sms_sign_in(&deps, &user, &outbox).await;
        let change = |current: &str| ChangePasswordRequest {
            current_password: secret(current),
            new_password: secret("another long passphrase 77"),
        };
        for i in 1..=5 {
            let result = password::change(&deps, &caller, change("not the password at all")).await;
            if i < 5 {
                assert_eq!(result.unwrap_err(), ApiError::InvalidCredentials, "{name}");
            } else {
                assert!(
                    matches!(result, Err(ApiError::Locked { .. })),
                    "{name}: {result:?}"
                );
            }
        }
        // The lock holds for the sign-in too, and for the right password here.
        assert!(matches!(
            sign_in(
                &deps,
                SignInRequest {
                    user_id: user.to_string(),
                    password: secret(PASSWORD)
                },
                &RequestMeta::default()
            )
            .await,
            Err(ApiError::Locked { .. })
        ));
        clock.advance_secs(60);
        assert!(
            matches!(
                password::change(&deps, &caller, change(PASSWORD)).await,
                Err(ApiError::Locked { .. })
            ),
            "{name}"
        );
        assert!(recorded(&deps, &user, "password_change_failed").await);
    }
}

// ---- 6. stale challenges and trusted devices -------------------------------------------------

#[tokio::test]
async fn an_old_enrolment_challenge_cannot_add_a_factor_once_one_is_active() {
    for (name, deps, _clock, outbox, user) in all_deps_with_user("enrolstale").await {
        let first = open(&deps, &user).await;
        let second = open(&deps, &user).await;
        let phone = |p: &str| EnrolPhoneRequest {
            phone: p.into(),
            delivery: "sms".into(),
        };
        // The second challenge starts an authenticator while the user has no factor yet ...
        let totp = factors::enrol_totp(&deps, Enroller::SignIn(&second, &RequestMeta::default()))
            .await
            .unwrap();
        // ... and the first enrols and proves a phone.
        let pending = factors::enrol_phone(
            &deps,
            Enroller::SignIn(&first, &RequestMeta::default()),
            phone("+12025550143"),
        )
        .await
        .unwrap();
        let code = VerifyFactorRequest::with_code(secret(&last_code(&outbox)));
        factors::verify_factor(
            &deps,
            Enroller::SignIn(&first, &RequestMeta::default()),
            &pending.factor_id,
            &code,
        )
        .await
        .unwrap();
        // Now the user has an active factor: the old challenge can neither add nor prove one.
        assert_eq!(
            factors::enrol_phone(
                &deps,
                Enroller::SignIn(&second, &RequestMeta::default()),
                phone("+12025550145")
            )
            .await
            .unwrap_err(),
            ApiError::ChallengeExpired,
            "{name}"
        );
        let any = VerifyFactorRequest::with_code(secret("123456"));
        assert_eq!(
            factors::verify_factor(
                &deps,
                Enroller::SignIn(&second, &RequestMeta::default()),
                &totp.factor_id,
                &any
            )
            .await
            .unwrap_err(),
            ApiError::ChallengeExpired,
            "{name}"
        );
        assert_eq!(
            send_by(&deps, &second, "sms").await.unwrap_err(),
            ApiError::ChallengeExpired
        );
    }
}

#[tokio::test]
async fn a_password_change_reset_or_mfa_reset_ends_open_challenges_and_reset_links() {
    for (name, deps, _clock, outbox) in all_deps_with_notifier().await {
        let (_, admin_a) = signed_in_admin(&deps, &outbox, "+12025550101").await;
        let (_, admin_b) = signed_in_admin(&deps, &outbox, "+12025550102").await;
        let user = user_with_phone(&deps, "stale").await;
        let reset_link = |outbox: &RecordingNotifier| {
            let m = outbox
                .sent()
                .into_iter()
                .rev()
                .find(|m| m.purpose == "password_reset")
                .unwrap();
            link_token(&m.text)
        };
        // A change.
        let open_id = password_step(&deps, &user).await;
        forgot(&deps, &user).await;
        let link = reset_link(&outbox);
        let (caller, _) = sms_sign_in(&deps, &user, &outbox).await;
        password::change(
            &deps,
            &caller,
            ChangePasswordRequest {
                current_password: secret(PASSWORD),
                new_password: secret("changed passphrase 2026"),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            codes::open_challenge(&deps, &open_id).await.unwrap_err(),
            ApiError::ChallengeExpired,
            "{name}"
        );
        assert_eq!(
            password::reset(
                &deps,
                ResetRequest {
                    token: secret(&link),
                    new_password: secret("hijacked passphrase 99")
                },
                &RequestMeta::default()
            )
            .await
            .unwrap_err()
            .status(),
            400,
            "{name}: the reset link sent before the change is dead"
        );
        // An MFA reset.
        let signin = SignInRequest {
            user_id: user.to_string(),
            password: secret("changed passphrase 2026"),
        };
        let answer = sign_in(&deps, signin, &RequestMeta::default())
            .await
            .unwrap();
        let open_id = answer.challenge_id().unwrap();
        let filed = as_admin!(
            admin::request_mfa_reset,
            &deps,
            &admin_a,
            admin::MfaResetFiling {
                user_id: user.to_string(),
                reason: "phone stolen, identity checked".into(),
            }
        )
        .unwrap();
        as_admin!(admin::approve, &deps, &admin_b, &filed.request_id).unwrap();
        assert_eq!(
            codes::open_challenge(&deps, open_id).await.unwrap_err(),
            ApiError::ChallengeExpired,
            "{name}"
        );
    }
}

/// The send route makes the stamp check beside its own reads (no round trip of its own): a
/// challenge whose stamp moved after it was read must still send nothing, take nothing from the
/// caps and store no code.
#[tokio::test]
async fn a_sign_in_challenge_whose_stamp_moved_sends_no_code_and_takes_no_send() {
    use portcullis::storage::CounterKey;
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("stalesend").await {
        let id = password_step(&deps, &user).await;
        // Read while the stamp was right; the password changes before the send is made.
        let opening = codes::Opening::read_sign_in(&deps, &id).await.unwrap();
        deps.stores.users.raise_security_stamp(&user).await.unwrap();
        let sent_before = outbox.sent().len();
        assert_eq!(
            codes::send_code_for(&deps, &opening, &sms(), &RequestMeta::default())
                .await
                .unwrap_err(),
            ApiError::ChallengeExpired,
            "{name}"
        );
        assert_eq!(outbox.sent().len(), sent_before, "{name}: no SMS went out");
        let now = deps.clock.now();
        assert!(
            deps.stores
                .counters
                .read_counter(CounterKey::Sends(&user), now)
                .await
                .unwrap()
                .is_none(),
            "{name}: the caps counter is untouched"
        );
        let stored = deps
            .stores
            .challenges
            .get_challenge(&opening.record().id_digest, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((stored.sends, stored.code.is_none()), (0, true), "{name}");
        // The same steps with the stamp left alone send the code (the refusal above is the
        // stamp's, not the harness's).
        let id = password_step(&deps, &user).await;
        let opening = codes::Opening::read_sign_in(&deps, &id).await.unwrap();
        codes::send_code_for(&deps, &opening, &sms(), &RequestMeta::default())
            .await
            .unwrap();
        assert_eq!(outbox.sent().len(), sent_before + 1, "{name}");
    }
}

#[tokio::test]
async fn a_trusted_device_needs_an_active_factor_and_no_password_change_due() {
    for (name, mut deps, clock, outbox) in all_deps_with_notifier().await {
        with_settings(&mut deps, |s| s.password_max_age_secs = Some(30 * 86_400));
        let user = create_user(&deps, &unique("trusted")).await;
        let factor = add_phone(&deps, &user, "+12025550143").await;
        let trust_sign_in = |deps: Deps, user: UserId, outbox: RecordingNotifier| async move {
            let v = sms_verified(&deps, &user, &outbox).await;
            let trust = TrustRequest {
                device_name: Some("Laptop".into()),
            };
            complete_sign_in(&deps, v, Some(trust), &RequestMeta::default())
                .await
                .unwrap()
        };
        let with_device = |token: &str| RequestMeta {
            device_token: Some(secret(token)),
            ..RequestMeta::default()
        };
        let signin = || SignInRequest {
            user_id: user.to_string(),
            password: secret(PASSWORD),
        };

        let device = trust_sign_in(deps.clone(), user.clone(), outbox.clone())
            .await
            .device_token()
            .map(str::to_owned)
            .unwrap();
        assert_eq!(
            sign_in(&deps, signin(), &with_device(&device))
                .await
                .unwrap()
                .status(),
            "signed_in",
            "{name}"
        );
        // The only factor disappears (here straight from storage): the device stops counting.
        deps.stores
            .factors
            .delete_factor(&user, &factor)
            .await
            .unwrap();
        assert_eq!(
            sign_in(&deps, signin(), &with_device(&device))
                .await
                .unwrap()
                .status(),
            "mfa_enrolment_required",
            "{name}: a device never stands in for a missing factor"
        );
        // A password past its maximum age: MFA and a change, not a skip.
        add_phone(&deps, &user, "+12025550144").await;
        let device = trust_sign_in(deps.clone(), user.clone(), outbox.clone())
            .await
            .device_token()
            .map(str::to_owned)
            .unwrap();
        clock.advance_secs(31 * 86_400);
        let answer = sign_in(&deps, signin(), &with_device(&device))
            .await
            .unwrap();
        assert_eq!(
            answer.status(),
            "mfa_required",
            "{name}: the maximum age applies on a trusted device"
        );
    }
}

#[tokio::test]
async fn removing_the_last_factor_removes_the_trusted_devices() {
    for (name, deps, _clock, outbox, user) in all_deps_with_user("lastfactor").await {
        let factor = add_phone(&deps, &user, "+12025550143").await;
        let (caller, _) = sms_sign_in(&deps, &user, &outbox).await;
        devices::trust(&deps, &user, Some("Phone"), &RequestMeta::default())
            .await
            .unwrap();
        assert_eq!(devices::list(&deps, &user, None).await.unwrap().len(), 1);
        factors::remove(&deps, &caller, &factor).await.unwrap();
        assert!(
            devices::list(&deps, &user, None).await.unwrap().is_empty(),
            "{name}"
        );
        assert!(recorded(&deps, &user, "devices_removed").await, "{name}");
    }
}

/// A session enrolment's challenge has no ID a client holds (it derives from the factor): no
/// challenge ID a client can send, NUL bytes and all, names it.
#[tokio::test]
async fn no_client_challenge_id_names_an_enrolment_challenge() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("enrolns").await {
        let (caller, _) = sms_sign_in(&deps, &user, &outbox).await;
        let request = EnrolPhoneRequest {
            phone: "+12025550145".into(),
            delivery: "sms".into(),
        };
        let pending = factors::enrol_phone(&deps, Enroller::Session(&caller), request)
            .await
            .unwrap();
        let factor = &pending.factor_id;
        for id in [
            format!("enrol\u{0}{user}\u{0}{factor}"),
            format!("{user}\u{0}{factor}"),
        ] {
            assert_eq!(
                codes::open_challenge(&deps, &id).await.map(|_| ()),
                Err(ApiError::ChallengeExpired),
                "{name}: {id:?}"
            );
        }
    }
}

/// A sign-in challenge's record read before an MFA reset sends no code and opens no passkey
/// ceremony when handed to the services later: they check its stamp again.
#[tokio::test]
async fn a_sign_in_record_read_before_a_reset_sends_nothing() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("stalerec").await {
        let c: ChallengeRecord = (*open(&deps, &user).await).clone();
        deps.stores.users.raise_security_stamp(&user).await.unwrap();
        let sent = outbox.sent().len();
        assert_eq!(
            codes::send_code(&deps, &c, &sms(), &RequestMeta::default())
                .await
                .map(|_| ()),
            Err(ApiError::ChallengeExpired),
            "{name}"
        );
        assert_eq!(outbox.sent().len(), sent, "{name}: nothing sent");
        assert_eq!(
            passkeys::sign_in_options(&deps, &c).await.map(|_| ()),
            Err(ApiError::ChallengeExpired),
            "{name}"
        );
    }
}

/// A proof answers only the challenge it was made for: a sign-in's proof elevates no session,
/// another step-up's proof elevates nothing, and a step-up's proof opens no new session (a
/// step-up challenge has no stamp of its own, so without the stage check it matched a new
/// user's stamp and signed in).
#[tokio::test]
async fn a_proof_answers_only_its_own_kind_of_challenge() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("proofkind").await {
        let (caller, _) = sms_sign_in(&deps, &user, &outbox).await;
        let step_up_of = async |deps: &Deps| {
            let started = start_step_up(deps, &caller, "sms").await;
            let challenge = step_up::challenge_of(deps, &caller, &started.challenge_id)
                .await
                .unwrap();
            (challenge, last_code(&outbox))
        };
        let (su, su_code) = step_up_of(&deps).await;
        // Each refusal spends the proof it is handed (taken by value), so each gets its own.
        assert_eq!(
            step_up::elevate(
                &deps,
                &caller,
                &su,
                sms_verified(&deps, &user, &outbox).await
            )
            .await,
            Err(ApiError::ChallengeExpired),
            "{name}: a sign-in's proof elevates a session"
        );
        let (other, code) = step_up_of(&deps).await;
        let other_proof = answer_code(&deps, &other, "sms", &secret(&code))
            .await
            .unwrap();
        assert_eq!(
            step_up::elevate(&deps, &caller, &su, other_proof).await,
            Err(ApiError::ChallengeExpired),
            "{name}: another step-up's proof answers this one"
        );
        let (third, code) = step_up_of(&deps).await;
        let third_proof = answer_code(&deps, &third, "sms", &secret(&code))
            .await
            .unwrap();
        assert_eq!(
            complete_sign_in(&deps, third_proof, None, &RequestMeta::default())
                .await
                .map(|_| ()),
            Err(ApiError::ChallengeExpired),
            "{name}: a step-up's proof opens a session"
        );
        // A sign-in completes only with a proof of the challenge the route opened.
        let opened = codes::open_mfa_sign_in(&deps, &password_step(&deps, &user).await)
            .await
            .unwrap();
        let complete_opened = async |proof| {
            let meta = RequestMeta::default();
            complete::complete_mfa_sign_in(&deps, proof, &opened, None, &meta)
                .await
                .map(|_| ())
        };
        assert_eq!(
            complete_opened(sms_verified(&deps, &user, &outbox).await).await,
            Err(ApiError::ChallengeExpired),
            "{name}: another sign-in's proof completes this one"
        );
        // Each proof still does what it was made for.
        let su_proof = answer_code(&deps, &su, "sms", &secret(&su_code))
            .await
            .unwrap();
        assert!(
            step_up::elevate(&deps, &caller, &su, su_proof)
                .await
                .is_ok(),
            "{name}"
        );
        send_by(&deps, opened.record(), "sms").await.unwrap();
        let proof = answer_code(&deps, opened.record(), "sms", &secret(&last_code(&outbox)))
            .await
            .unwrap();
        assert_eq!(complete_opened(proof).await, Ok(()), "{name}");
    }
}

// ---- 2. two admins for privileged roles ------------------------------------------------------

#[tokio::test]
async fn inviting_an_admin_waits_for_a_different_admin_and_only_then_sends_the_invitation() {
    for (name, deps, _clock, outbox) in all_deps_with_notifier().await {
        let (a_id, admin_a) = signed_in_admin(&deps, &outbox, "+12025550101").await;
        let (_, admin_b) = signed_in_admin(&deps, &outbox, "+12025550102").await;
        let new_admin = UserId::parse(&unique("newadmin")).unwrap();
        let sent_before = outbox.sent().len();
        let outcome = as_admin!(
            admin::invite,
            &deps,
            &admin_a,
            InviteRequest {
                user_id: new_admin.to_string(),
                email: "new.admin@example.com".into(),
                phone: None,
                roles: Some(vec!["admin".into()]),
            }
        )
        .unwrap();
        let InviteOutcome::PendingApproval(pending) = outcome else {
            panic!("{name}: an admin invitation must wait for a second admin");
        };
        assert_eq!(pending.kind, RequestKind::AdminInvitation);
        assert_eq!(
            serde_json::to_value(&pending).unwrap()["status"],
            "pending_approval"
        );
        assert!(
            deps.stores
                .users
                .get_user(&new_admin)
                .await
                .unwrap()
                .is_none(),
            "{name}: nothing created"
        );
        assert_eq!(outbox.sent().len(), sent_before, "{name}: nothing sent");
        // The queue shows it; the requester may not approve it.
        let queue = as_admin!(admin::list_requests, &deps, &admin_a, Some("pending")).unwrap();
        let mine = queue
            .iter()
            .find(|r| r.request_id == pending.request_id)
            .unwrap();
        assert!(!mine.can_approve, "{name}");
        assert_eq!(mine.requested_by, a_id.as_str());
        assert_eq!(
            as_admin!(admin::approve, &deps, &admin_a, &pending.request_id).unwrap_err(),
            ApiError::Forbidden,
            "{name}"
        );
        let approved = as_admin!(admin::approve, &deps, &admin_b, &pending.request_id).unwrap();
        assert!(approved.invitation.is_some(), "{name}");
        let created = deps
            .stores
            .users
            .get_user(&new_admin)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(created.roles, vec!["admin"]);
        let email = outbox.sent().last().cloned().unwrap();
        assert_eq!(
            (email.purpose.as_str(), email.to.as_str()),
            ("invitation", "new.admin@example.com")
        );
        // Once.
        assert!(matches!(
            as_admin!(admin::approve, &deps, &admin_b, &pending.request_id),
            Err(ApiError::Conflict(_))
        ));
        assert!(
            as_admin!(admin::list_requests, &deps, &admin_b, None)
                .unwrap()
                .iter()
                .all(|r| r.request_id != pending.request_id)
        );
    }
}

#[tokio::test]
async fn granting_admin_and_deactivating_an_admin_need_a_second_admin_who_is_not_the_subject() {
    for (name, deps, _clock, outbox) in all_deps_with_notifier().await {
        let (_, admin_a) = signed_in_admin(&deps, &outbox, "+12025550101").await;
        let (b_id, admin_b) = signed_in_admin(&deps, &outbox, "+12025550102").await;
        let (c_id, admin_c) = signed_in_admin(&deps, &outbox, "+12025550103").await;
        let (_, c_tokens) = sms_sign_in(&deps, &c_id, &outbox).await;
        let plain = create_user(&deps, &unique("plain")).await;
        // Granting admin is a request; support is granted at once.
        let grant = |role: &str| admin::RoleGrant {
            role: role.into(),
            reason: None,
        };
        let ActOutcome::PendingApproval(grant_req) = as_admin!(
            admin::grant_role,
            &deps,
            &admin_a,
            plain.as_str(),
            grant("admin")
        )
        .unwrap() else {
            panic!("{name}: granting admin must wait");
        };
        assert!(
            !deps
                .stores
                .users
                .get_user(&plain)
                .await
                .unwrap()
                .unwrap()
                .roles
                .contains(&"admin".to_owned())
        );
        assert_eq!(
            as_admin!(
                admin::grant_role,
                &deps,
                &admin_a,
                plain.as_str(),
                grant("support")
            )
            .unwrap(),
            ActOutcome::Done
        );
        as_admin!(admin::approve, &deps, &admin_b, &grant_req.request_id).unwrap();
        let roles = deps
            .stores
            .users
            .get_user(&plain)
            .await
            .unwrap()
            .unwrap()
            .roles;
        assert_eq!(roles, vec!["admin", "support"], "{name}");

        // Deactivating an admin is a request; the subject cannot approve it.
        let ActOutcome::PendingApproval(deact) = as_admin!(
            admin::act,
            &deps,
            &admin_a,
            c_id.as_str(),
            Action::Deactivate
        )
        .unwrap() else {
            panic!("{name}: deactivating an admin must wait");
        };
        assert_eq!(stored_user(&deps, &c_id).await.status, UserStatus::Active);
        assert_eq!(
            as_admin!(admin::approve, &deps, &admin_c, &deact.request_id).unwrap_err(),
            ApiError::Forbidden,
            "{name}: nobody approves a request about themselves"
        );
        let kinds = event_kinds(&deps, &c_id).await;
        assert!(
            kinds.contains(&"admin_deactivation_refused".to_owned()),
            "{name}: {kinds:?}"
        );
        as_admin!(admin::approve, &deps, &admin_b, &deact.request_id).unwrap();
        assert_eq!(stored_user(&deps, &c_id).await.status, UserStatus::Inactive);
        assert!(
            matches!(
                bearer(&deps, &c_tokens.access_token).await,
                Err(ApiError::Unauthorized)
            ),
            "{name}: the deactivated admin's sessions end at once"
        );
        // Nobody acts on themselves, not even by request.
        assert_eq!(
            as_admin!(
                admin::act,
                &deps,
                &admin_b,
                b_id.as_str(),
                Action::Deactivate
            )
            .unwrap_err(),
            ApiError::Forbidden
        );
    }
}

// ---- 7. audit ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_audit_subject_is_the_parsed_user_id_and_every_event_kind_is_recorded() {
    for (name, deps, _clock, outbox) in all_deps_with_notifier().await {
        let alice = create_user(&deps, &unique("alice")).await;
        let impostor = UserId::parse(&format!("user#{alice}")).unwrap();
        let _ = sign_in(
            &deps,
            SignInRequest {
                user_id: impostor.to_string(),
                password: secret("wrong password here"),
            },
            &RequestMeta::default(),
        )
        .await;
        assert!(
            !recorded(&deps, &alice, "sign_in_failed").await,
            "{name}: not in alice's trail"
        );
        assert!(recorded(&deps, &impostor, "sign_in_failed").await, "{name}");
        // Removing every device is recorded.
        devices::trust(&deps, &alice, Some("Tablet"), &RequestMeta::default())
            .await
            .unwrap();
        devices::remove_all(&deps, &alice, &RequestMeta::default())
            .await
            .unwrap();
        assert!(recorded(&deps, &alice, "devices_removed").await, "{name}");
        // The required password change is recorded.
        add_phone(&deps, &alice, "+12025550143").await;
        deps.stores
            .users
            .set_must_change_password(&alice)
            .await
            .unwrap();
        let (c, right) = challenge_with_code(&deps, &alice, &outbox).await;
        let v = answer_code(&deps, &c, "sms", &secret(&right))
            .await
            .unwrap();
        let signed = finish_sign_in(&deps, v).await;
        assert_eq!(signed.status(), "password_change_required");
        let change = codes::open_sign_in(&deps, signed.challenge_id().unwrap())
            .await
            .unwrap();
        password::complete_required_change(
            &deps,
            &change,
            password::NewPasswordRequest {
                new_password: secret("required new passphrase 1"),
            },
            &RequestMeta::default(),
        )
        .await
        .unwrap();
        let kinds = event_kinds(&deps, &alice).await;
        assert!(
            kinds.contains(&"password_changed".to_owned()),
            "{name}: {kinds:?}"
        );
    }
}

/// A burst of parallel password guesses must not be worth more than guesses one after
/// another: every attempt is counted before argon2 runs, so at most five of a run are ever
/// evaluated. Here 19 wrong guesses go out at once and the right password once they have
/// reserved the run, while they are still hashing (production argon2 parameters: each takes tens of
/// milliseconds): it is refused, where before it would have signed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_parallel_guesses_gets_five_evaluations_not_one_per_guess() {
    for (name, mut deps, _clock) in all_deps().await {
        deps.hasher = portcullis::crypto::PasswordHasher::new(
            portcullis::config::Settings::defaults("x").argon2,
        )
        .unwrap();
        let user = create_user(&deps, &unique("burst")).await;
        let attempt = |password: String| {
            let (deps, user) = (deps.clone(), user.clone());
            tokio::spawn(async move {
                sign_in(
                    &deps,
                    SignInRequest {
                        user_id: user.to_string(),
                        password: secret(&password),
                    },
                    &RequestMeta::default(),
                )
                .await
            })
        };
        let guesses: Vec<_> = (0..19)
            .map(|i| attempt(format!("guess number {i}")))
            .collect();
        // The right password as soon as the burst has reserved its run, while no guess has
        // been judged yet (all five are hashing: count 5, no lock). Waiting for the counter,
        // not a fixed pause, since each attempt's reads go out before its reservation and the
        // emulator may queue them. Code that counted only after argon2 never shows that state
        // (its count reaches 5 with the lock), and fails here.
        let started = std::time::Instant::now();
        loop {
            let counter = deps
                .stores
                .counters
                .read_counter(
                    portcullis::storage::CounterKey::Password(&user),
                    deps.clock.now(),
                )
                .await
                .unwrap()
                .map(|v| v.counter);
            if let Some(c) = counter {
                assert!(
                    c.locked_until.is_none(),
                    "{name}: the lock started before the run was seen reserved: {c:?}"
                );
                if c.count >= deps.settings.lockout_threshold {
                    break;
                }
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "{name}: the burst never reserved its run"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let right = attempt(PASSWORD.to_owned()).await.unwrap();
        for guess in guesses {
            match guess.await.unwrap() {
                // Evaluated (four plain failures, and the fifth starts the lock), or refused
                // before argon2: locked already, or the run's five attempts all in flight.
                Err(
                    ApiError::InvalidCredentials
                    | ApiError::Locked { .. }
                    | ApiError::RateLimited {
                        retry_after_secs: 1,
                    },
                ) => {}
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(
            matches!(
                right,
                Err(ApiError::Locked { .. } | ApiError::RateLimited { .. })
            ),
            "{name}: the right password after the burst: {right:?}"
        );
        // Every evaluated wrong password is audited; those refused before argon2 are not.
        let evaluated = event_kinds(&deps, &user)
            .await
            .iter()
            .filter(|k| *k == "sign_in_failed")
            .count();
        assert_eq!(
            evaluated, deps.settings.lockout_threshold as usize,
            "{name}: exactly five of the twenty evaluated"
        );
    }
}

#[tokio::test]
async fn a_role_taken_away_is_never_minted_again_by_a_step_up() {
    for (name, deps, _clock, outbox) in all_deps_with_notifier().await {
        let (admin, caller) = signed_in_admin(&deps, &outbox, "+12025550150").await;
        assert_eq!(caller.claims.roles, vec!["admin".to_owned()], "{name}");
        set_roles(&deps, &admin, &[]).await;
        let elevated = sms_step_up(&deps, &caller, &outbox).await;
        let after = bearer(&deps, &elevated.access_token).await.unwrap();
        assert!(
            after.claims.roles.is_empty(),
            "{name}: the token from the step-up has the roles as they are now: {:?}",
            after.claims.roles
        );
    }
}

/// Every audit event a request causes carries that request's caller, passed down to the
/// service that records it (there is no task-local to fall back on): a code sent, a wrong
/// answer, the lock it starts, a device trusted and removed.
#[tokio::test]
async fn audit_events_carry_the_ip_of_the_request_that_caused_them() {
    for (name, mut deps, _clock, outbox) in all_deps_with_notifier().await {
        with_settings(&mut deps, |s| s.mfa_failure_threshold = 2);
        let user = user_with_phone(&deps, "who").await;
        let from = |ip: &str| RequestMeta {
            source_ip: Some(ip.into()),
            ..RequestMeta::default()
        };
        let c = open(&deps, &user).await;
        codes::send_code(&deps, &c, &sms(), &from("198.51.100.1"))
            .await
            .unwrap();
        let right = last_code(&outbox);
        for _ in 0..2 {
            let _ = codes::check_code(
                &deps,
                &c,
                "sms",
                &secret(&wrong(&right)),
                None,
                &from("198.51.100.2"),
            )
            .await;
        }
        let token = devices::trust(&deps, &user, Some("Phone"), &from("198.51.100.3"))
            .await
            .unwrap();
        let device = token.split_once('.').unwrap().0;
        devices::remove(&deps, &user, device, &from("198.51.100.4"))
            .await
            .unwrap();
        let events = deps
            .stores
            .audit
            .list_events(&user, deps.clock.now(), 50)
            .await
            .unwrap();
        let ip_of = |kind: &str| {
            let found: Vec<_> = events.iter().filter(|e| e.kind == kind).collect();
            assert!(!found.is_empty(), "{name}: {kind} recorded");
            found
                .iter()
                .map(|e| e.source_ip.clone().unwrap_or_default())
                .collect::<Vec<_>>()
        };
        assert_eq!(ip_of("code_sent"), ["198.51.100.1"], "{name}");
        assert_eq!(
            ip_of("second_factor_failed"),
            ["198.51.100.2", "198.51.100.2"],
            "{name}"
        );
        assert_eq!(ip_of("second_factor_locked"), ["198.51.100.2"], "{name}");
        assert_eq!(ip_of("device_trusted"), ["198.51.100.3"], "{name}");
        assert_eq!(ip_of("device_removed"), ["198.51.100.4"], "{name}");
    }
}

/// A step-up of a session older than the user's last credential change ends the session, as a
/// refresh does (found in review: it minted a new access token for it).
#[tokio::test]
async fn a_stale_session_cannot_step_up() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("stalestep").await {
        let (caller, _) = sms_sign_in(&deps, &user, &outbox).await;
        let started = start_step_up(&deps, &caller, "sms").await;
        let su = step_up::challenge_of(&deps, &caller, &started.challenge_id)
            .await
            .unwrap();
        let v = answer_code(&deps, &su, "sms", &secret(&last_code(&outbox)))
            .await
            .unwrap();
        // A session that escaped a revocation: the stamp moved, nothing was revoked.
        deps.stores.users.raise_security_stamp(&user).await.unwrap();
        assert_eq!(
            step_up::elevate(&deps, &caller, &su, v).await.map(|_| ()),
            Err(ApiError::Unauthorized),
            "{name}"
        );
        let session = stored_session(&deps, &user, &caller.claims.sid).await;
        assert!(session.revoked, "{name}");
    }
}

/// `support` granted to `user` by the admin `caller`.
async fn grant_support(
    deps: &Deps,
    caller: &tokens::Caller,
    user: &UserId,
) -> Result<ActOutcome, ApiError> {
    let grant = admin::RoleGrant {
        role: "support".into(),
        reason: None,
    };
    as_admin!(admin::grant_role, deps, caller, user.as_str(), grant)
}

/// `support` taken from `user` by the admin `caller`.
async fn take_support(
    deps: &Deps,
    caller: &tokens::Caller,
    user: &UserId,
) -> Result<ActOutcome, ApiError> {
    as_admin!(admin::revoke_role, deps, caller, user.as_str(), "support")
}

/// Taking a role away ends none of the user's sessions (found in review: when it moved the
/// stamp, one admin could sign another out at will by granting and removing `support`): the
/// next refresh carries the roles as they are. When the roles change at every try, the change
/// answers 503 (transient: an approved request is given back, not spent).
#[tokio::test]
async fn a_role_change_ends_no_session_and_a_contended_one_is_transient() {
    for (name, mut deps, _clock, outbox) in all_deps_with_notifier().await {
        let (_, admin_caller) = signed_in_admin(&deps, &outbox, "+12025550171").await;
        let user = user_with_phone(&deps, "rolesess").await;
        set_roles(&deps, &user, &["support"]).await;
        let (caller, tokens) = sms_sign_in(&deps, &user, &outbox).await;
        assert_eq!(caller.claims.roles, vec!["support"], "{name}");
        let done = take_support(&deps, &admin_caller, &user).await;
        assert_eq!(done, Ok(ActOutcome::Done), "{name}");
        let request = tokens::RefreshRequest {
            refresh_token: secret(&tokens.refresh_token),
        };
        let refreshed = tokens::refresh(&deps, request).await.unwrap();
        let after = bearer(&deps, &refreshed.access_token).await.unwrap();
        assert!(
            after.claims.roles.is_empty(),
            "{name}: {:?}",
            after.claims.roles
        );
        // Becoming staff (a first role) signs the user out: the session was made under the
        // rules for users, and its next refresh would mint the role.
        let done = grant_support(&deps, &admin_caller, &user).await;
        assert_eq!(done, Ok(ActOutcome::Done), "{name}");
        let request = tokens::RefreshRequest {
            refresh_token: secret(&refreshed.refresh_token),
        };
        assert_eq!(
            tokens::refresh(&deps, request).await.map(|_| ()),
            Err(ApiError::Unauthorized),
            "{name}: signed out on becoming staff"
        );
        // A change among staff signs no one out: support taken away and given back.
        let (_, tokens) = sms_sign_in(&deps, &user, &outbox).await;
        set_roles(&deps, &user, &["admin", "support"]).await;
        for _ in 0..2 {
            let done = take_support(&deps, &admin_caller, &user).await;
            assert_eq!(done, Ok(ActOutcome::Done), "{name}");
            let done = grant_support(&deps, &admin_caller, &user).await;
            assert_eq!(done, Ok(ActOutcome::Done), "{name}");
        }
        let request = tokens::RefreshRequest {
            refresh_token: secret(&tokens.refresh_token),
        };
        assert!(
            tokens::refresh(&deps, request).await.is_ok(),
            "{name}: not signed out"
        );

        set_roles(&deps, &user, &[]).await;
        let toggle: Meddle = |store, user| {
            Box::pin(async move {
                let roles = store.get_user(&user).await.unwrap().unwrap().roles;
                let next = if roles.is_empty() {
                    vec!["support".to_owned()]
                } else {
                    vec![]
                };
                store.set_roles(&user, &roles, &next).await.unwrap();
            })
        };
        deps.stores.users = Arc::new(Meddled(deps.stores.users.clone(), toggle));
        let grant = admin::RoleGrant {
            role: "support".into(),
            reason: None,
        };
        assert_eq!(
            as_admin!(
                admin::grant_role,
                &deps,
                &admin_caller,
                user.as_str(),
                grant
            ),
            Err(ApiError::ServiceUnavailable),
            "{name}"
        );
    }
}
