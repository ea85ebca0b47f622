//! Password lifecycle, required changes, the inactive-ID sweep and unsupported clients
//! (SPEC §2 item 5, §7) on both storage adapters, clock-driven.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use portcullis::RequestMeta;
use portcullis::crypto::SecretString;
use portcullis::error::ApiError;
use portcullis::identity::UserId;
use portcullis::notifier::RecordingNotifier;
use portcullis::service::codes::{self, SendCodeRequest};
use portcullis::service::complete::complete_sign_in;
use portcullis::service::password::{
    self, ChangePasswordRequest, ForgotRequest, NewPasswordRequest, ResetRequest,
};
use portcullis::service::sign_in::{SignInRequest, sign_in};
use portcullis::service::sweep;
use portcullis::service::tokens::{self, Caller, RefreshRequest};
use portcullis::storage::UserStatus;
use portcullis::{Clock, Deps};

fn secret(s: &str) -> SecretString {
    SecretString::new(s.into())
}

/// Passwords must be changed once 90 days old.
fn ninety_day_passwords(deps: &mut Deps) {
    let mut settings = (*deps.settings).clone();
    settings.password_max_age_secs = Some(90 * 86_400);
    deps.settings = std::sync::Arc::new(settings);
}

/// The challenge of a `password_change_required` answer, opened as the password route opens it.
async fn change_of(
    deps: &Deps,
    step: &portcullis::service::complete::SignedIn,
) -> codes::SignInChallenge {
    codes::open_sign_in(deps, step.challenge_id().as_ref().unwrap())
        .await
        .unwrap()
}

/// On each adapter, a user whose password is 90 days old, signed in with the password and a
/// code: the required change's challenge, opened.
async fn aged_sign_ins(
    prefix: &str,
) -> Vec<(
    &'static str,
    Deps,
    RecordingNotifier,
    UserId,
    codes::SignInChallenge,
)> {
    let mut out = Vec::new();
    for (name, mut deps, clock, outbox) in all_deps_with_notifier().await {
        let user = user_with_phone(&deps, prefix).await;
        ninety_day_passwords(&mut deps);
        clock.advance_secs(90 * 86_400);
        let v = sms_verified(&deps, &user, &outbox).await;
        let step = finish_sign_in(&deps, v).await;
        assert_eq!(step.status(), "password_change_required", "{name}");
        let change = change_of(&deps, &step).await;
        out.push((name, deps, outbox, user, change));
    }
    out
}

/// The required change answered with `new_password`, as the password route does.
async fn required_change(
    deps: &Deps,
    change: &codes::SignInChallenge,
    new_password: &str,
) -> Result<tokens::Tokens, ApiError> {
    let request = NewPasswordRequest {
        new_password: secret(new_password),
    };
    password::complete_required_change(deps, change, request, &RequestMeta::default()).await
}

async fn mfa_sign_in(deps: &Deps, user: &UserId, outbox: &RecordingNotifier) -> (Caller, String) {
    let c = codes::open_challenge(deps, &password_step(deps, user).await)
        .await
        .unwrap();
    codes::send_code(
        deps,
        &c,
        &SendCodeRequest {
            method: "sms".into(),
            factor_id: None,
        },
        &RequestMeta::default(),
    )
    .await
    .unwrap();
    let v = answer_code(deps, &c, "sms", &secret(&last_code(outbox)))
        .await
        .unwrap();
    let t = complete_sign_in(deps, v, None, &portcullis::RequestMeta::default())
        .await
        .unwrap()
        .into_tokens()
        .unwrap();
    (
        tokens::authenticate(
            deps,
            Some(&format!("Bearer {}", t.access_token)),
            &Default::default(),
        )
        .await
        .unwrap(),
        t.refresh_token,
    )
}

async fn try_password(
    deps: &Deps,
    user: &UserId,
    password: &str,
) -> Result<portcullis::service::sign_in::SignInAnswer, ApiError> {
    sign_in(
        deps,
        SignInRequest {
            user_id: user.to_string(),
            password: secret(password),
        },
        &RequestMeta::default(),
    )
    .await
}

/// `password::reset` with a link's token and a new password (no caller details).
async fn reset_with(deps: &Deps, token: &str, new_password: &str) -> Result<(), ApiError> {
    let request = ResetRequest {
        token: secret(token),
        new_password: secret(new_password),
    };
    password::reset(deps, request, &RequestMeta::default()).await
}

/// A session that a revocation missed (its user's stamp moved since it opened: here the
/// stamp is raised and no session revoked) cannot change the password, even with it: the
/// change is refused before anything is hashed or written.
#[tokio::test]
async fn a_stale_session_cannot_change_the_password() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("stalechg").await {
        let (me, _) = mfa_sign_in(&deps, &user, &outbox).await;
        deps.stores.users.raise_security_stamp(&user).await.unwrap();
        let before = stored_user(&deps, &user).await;
        let request = ChangePasswordRequest {
            current_password: secret(PASSWORD),
            new_password: secret("a brand new passphrase"),
        };
        assert_eq!(
            password::change(&deps, &me, request).await.unwrap_err(),
            ApiError::Unauthorized,
            "{name}"
        );
        assert_eq!(stored_user(&deps, &user).await, before, "{name}: unchanged");
    }
}

#[tokio::test]
async fn changing_the_password_needs_step_up_the_policy_and_revokes_other_sessions() {
    for (name, deps, clock, outbox, user) in all_deps_with_phoned_user("changer").await {
        let (other, other_refresh) = mfa_sign_in(&deps, &user, &outbox).await;
        let _ = other;
        let (me, my_refresh) = mfa_sign_in(&deps, &user, &outbox).await;
        let req = |cur: &str, new: &str| ChangePasswordRequest {
            current_password: secret(cur),
            new_password: secret(new),
        };
        assert_eq!(
            password::change(
                &deps,
                &me,
                req("wrong wrong wrong", "a brand new passphrase")
            )
            .await
            .unwrap_err(),
            ApiError::InvalidCredentials,
            "{name}"
        );
        for (bad, rule) in [
            ("short", "at least 12"),
            ("qwerty123456", "too common"),
            (&format!("x{}x", user.as_str()), "user ID"),
            (PASSWORD, "last 5"),
        ] {
            let err = password::change(&deps, &me, req(PASSWORD, bad))
                .await
                .unwrap_err();
            assert!(
                err.problem().detail.contains(rule),
                "{name}: {bad} → {}",
                err.problem().detail
            );
        }
        password::change(&deps, &me, req(PASSWORD, "a brand new passphrase"))
            .await
            .unwrap();
        assert!(
            try_password(&deps, &user, "a brand new passphrase")
                .await
                .is_ok(),
            "{name}"
        );
        assert_eq!(
            tokens::refresh(
                &deps,
                RefreshRequest {
                    refresh_token: secret(&other_refresh)
                }
            )
            .await
            .unwrap_err(),
            ApiError::Unauthorized,
            "{name}: other sessions revoked"
        );
        assert!(
            tokens::refresh(
                &deps,
                RefreshRequest {
                    refresh_token: secret(&my_refresh)
                }
            )
            .await
            .is_ok(),
            "{name}: this session kept"
        );
        assert!(alerted(&outbox, "alert_password_changed"));
        clock.advance_secs(301);
        assert_eq!(
            password::change(
                &deps,
                &me,
                req("a brand new passphrase", "another fresh passphrase")
            )
            .await
            .unwrap_err(),
            ApiError::StepUpRequired,
            "{name}"
        );
    }
}

#[tokio::test]
async fn forgot_answers_the_same_and_the_reset_link_works_once_for_30_minutes() {
    for (name, deps, clock, outbox, user) in all_deps_with_phoned_user("forgetful").await {
        let (_, refresh) = mfa_sign_in(&deps, &user, &outbox).await;
        let known = forgot(&deps, &user).await;
        let unknown = password::forgot(
            &deps,
            ForgotRequest {
                user_id: unique("nobody"),
            },
        )
        .await
        .unwrap();
        assert_eq!(known, unknown, "{name}");
        let email = outbox.sent().last().cloned().unwrap();
        assert_eq!(email.purpose, "password_reset");
        let token = link_token(&email.text);
        assert!(!email.text.contains(PASSWORD));
        // a policy refusal does not burn the link
        assert!(
            reset_with(&deps, &token, "qwerty123456")
                .await
                .unwrap_err()
                .problem()
                .detail
                .contains("too common")
        );
        reset_with(&deps, &token, "my reset passphrase")
            .await
            .unwrap();
        assert_eq!(
            reset_with(&deps, &token, "another passphrase!")
                .await
                .unwrap_err()
                .status(),
            400,
            "{name}: single use"
        );
        assert_eq!(
            tokens::refresh(
                &deps,
                RefreshRequest {
                    refresh_token: secret(&refresh)
                }
            )
            .await
            .unwrap_err(),
            ApiError::Unauthorized,
            "{name}: sessions revoked"
        );
        // a reset does not skip MFA
        let answer = try_password(&deps, &user, "my reset passphrase")
            .await
            .unwrap();
        assert_eq!(answer.status(), "mfa_required", "{name}");
        // expiry
        forgot(&deps, &user).await;
        let email = outbox.sent().last().cloned().unwrap();
        let token = link_token(&email.text);
        clock.advance_secs(30 * 60);
        assert_eq!(
            reset_with(&deps, &token, "too late passphrase")
                .await
                .unwrap_err()
                .status(),
            400,
            "{name}: 30 minutes"
        );
    }
}

#[tokio::test]
async fn reset_emails_are_rate_limited_per_user() {
    for (name, deps, _clock, outbox, user) in all_deps_with_user("spammed").await {
        for _ in 0..6 {
            forgot(&deps, &user).await;
        }
        assert_eq!(
            outbox
                .sent()
                .iter()
                .filter(|m| m.purpose == "password_reset")
                .count(),
            3,
            "{name}"
        );
    }
}

#[tokio::test]
async fn an_admin_flag_or_an_old_password_requires_a_change_after_mfa() {
    for (name, mut deps, clock, outbox) in all_deps_with_notifier().await {
        let user = user_with_phone(&deps, "aged").await;
        ninety_day_passwords(&mut deps);
        let (_, _) = mfa_sign_in(&deps, &user, &outbox).await;
        clock.advance_secs(90 * 86_400);
        let v = sms_verified(&deps, &user, &outbox).await;
        let step = finish_sign_in(&deps, v).await;
        assert_eq!(step.status(), "password_change_required", "{name}");
        assert!(
            step.tokens().is_none(),
            "{name}: no session before the change"
        );
        let change = change_of(&deps, &step).await;
        let refused = required_change(&deps, &change, PASSWORD).await;
        assert!(refused.unwrap_err().problem().detail.contains("last 5"));
        let tokens = required_change(&deps, &change, "the new required passphrase")
            .await
            .unwrap();
        assert!(!tokens.access_token.is_empty());
        let stored = stored_user(&deps, &user).await;
        assert_eq!(stored.password_changed_at, Some(clock.now()));
        assert_eq!(stored.password_history.len(), 1);
    }
}

/// The required change is a step of a sign-in with the tries of one: each answer, refused by
/// the policy or not, counts before any hash is computed, so one challenge cannot test old
/// passwords without limit; and it sends no code (one could answer nothing there).
#[tokio::test]
async fn a_required_change_takes_five_tries_and_sends_no_code() {
    for (name, deps, outbox, user, change) in aged_sign_ins("agedtries").await {
        let sent = outbox.sent().len();
        assert_eq!(
            send_by(&deps, &change, "sms").await.map(|_| ()),
            Err(ApiError::Forbidden),
            "{name}: a code for a sign-in that waits for its new password"
        );
        assert_eq!(outbox.sent().len(), sent, "{name}: nothing sent");
        let before = stored_user(&deps, &user).await;
        for _ in 0..5 {
            let refused = required_change(&deps, &change, PASSWORD).await;
            assert!(refused.unwrap_err().problem().detail.contains("last 5"));
        }
        let sixth = required_change(&deps, &change, "the new required passphrase").await;
        assert_eq!(sixth.map(|_| ()), Err(ApiError::ChallengeExpired), "{name}");
        assert_eq!(
            stored_user(&deps, &user).await.password_hash,
            before.password_hash,
            "{name}: the password is unchanged"
        );
    }
}

/// The required change answered, and refused as ended (`challenge_expired`).
async fn assert_change_ended(deps: &Deps, change: &codes::SignInChallenge, name: &str) {
    assert_eq!(
        required_change(deps, change, "the new required passphrase")
            .await
            .map(|_| ()),
        Err(ApiError::ChallengeExpired),
        "{name}"
    );
}

/// An MFA reset while the user types the required new password ends the change: the challenge
/// was opened (its stamp checked) before the reset, so only a check at the answer catches it.
#[tokio::test]
async fn an_mfa_reset_during_a_required_change_ends_it() {
    for (name, deps, _outbox, user, change) in aged_sign_ins("agedreset").await {
        deps.stores.users.raise_security_stamp(&user).await.unwrap();
        let before = stored_user(&deps, &user).await;
        assert_change_ended(&deps, &change, name).await;
        assert_eq!(
            stored_user(&deps, &user).await.password_hash,
            before.password_hash,
            "{name}: the password is unchanged"
        );
    }
}

/// The user store, with an MFA reset (a raised stamp) landing just before each write: between
/// the service's read of the user and its write.
fn reset_before_write(deps: &mut Deps) {
    let meddle: Meddle =
        |store, user| Box::pin(async move { store.raise_security_stamp(&user).await.unwrap() });
    deps.stores.users = std::sync::Arc::new(Meddled(deps.stores.users.clone(), meddle));
}

/// An MFA reset between the required change's read of the user and its write: the write is
/// refused (its condition holds the stamp as read), so the password is not changed and no
/// session is issued. Before, the new password was stored and only the session withheld.
#[tokio::test]
async fn an_mfa_reset_between_a_required_changes_read_and_write_changes_nothing() {
    for (name, mut deps, _outbox, user, change) in aged_sign_ins("agedrace").await {
        let before = stored_user(&deps, &user).await;
        let sessions = deps
            .stores
            .sessions
            .list_sessions(&user)
            .await
            .unwrap()
            .len();
        reset_before_write(&mut deps);
        assert_change_ended(&deps, &change, name).await;
        let after = stored_user(&deps, &user).await;
        assert_eq!(
            after.password_hash, before.password_hash,
            "{name}: the password is unchanged"
        );
        assert_eq!(after.security_stamp, before.security_stamp + 1, "{name}");
        assert_eq!(
            deps.stores
                .sessions
                .list_sessions(&user)
                .await
                .unwrap()
                .len(),
            sessions,
            "{name}: no session"
        );
    }
}

/// The same race in a reset: the link ends (as a credential change since it was sent ends it),
/// and the password is not changed.
#[tokio::test]
async fn an_mfa_reset_between_a_resets_read_and_write_changes_nothing() {
    for (name, mut deps, _clock, outbox, user) in all_deps_with_user("resetrace").await {
        forgot(&deps, &user).await;
        let token = link_token(&outbox.sent().last().cloned().unwrap().text);
        let before = stored_user(&deps, &user).await;
        reset_before_write(&mut deps);
        let refused = reset_with(&deps, &token, "a reset that loses the race").await;
        assert!(
            matches!(refused, Err(ApiError::ValidationFailed(_))),
            "{name}: {refused:?}"
        );
        assert_eq!(
            stored_user(&deps, &user).await.password_hash,
            before.password_hash,
            "{name}: the password is unchanged"
        );
    }
}

/// A sign-in's rehash (the same password under new parameters) between a reset's read and its
/// write: the hash moved, the stamp did not. The reset is written over the new hash rather than
/// spending the link for nothing. The rehash here marks the hash, once.
#[tokio::test]
async fn a_rehash_between_a_resets_read_and_write_does_not_spend_the_link() {
    for (name, mut deps, _clock, outbox, user) in all_deps_with_user("rehashrace").await {
        forgot(&deps, &user).await;
        let token = link_token(&outbox.sent().last().cloned().unwrap().text);
        let before = stored_user(&deps, &user).await;
        let rehash: Meddle = |store, user| {
            Box::pin(async move {
                let read = store.get_user(&user).await.unwrap().unwrap();
                let old = read.password_hash.unwrap();
                if !old.ends_with("#rehashed") {
                    let new = format!("{old}#rehashed");
                    store
                        .replace_password_hash(&user, &old, &new)
                        .await
                        .unwrap();
                }
            })
        };
        deps.stores.users = std::sync::Arc::new(Meddled(deps.stores.users.clone(), rehash));
        reset_with(&deps, &token, "a reset beside a rehash")
            .await
            .unwrap();
        let after = stored_user(&deps, &user).await;
        assert_ne!(after.password_hash, before.password_hash, "{name}: reset");
        assert_eq!(after.security_stamp, before.security_stamp + 1, "{name}");
        assert_eq!(
            after.password_history.first().map(String::as_str),
            Some(format!("{}#rehashed", before.password_hash.unwrap()).as_str()),
            "{name}: the history keeps the hash the reset replaced"
        );
    }
}

/// Another password change between a reset's read and its write (the hash and the stamp both
/// moved): the reset is not written over it, and the link ends.
#[tokio::test]
async fn a_password_change_between_a_resets_read_and_write_wins() {
    for (name, mut deps, _clock, outbox, user) in all_deps_with_user("changerace").await {
        forgot(&deps, &user).await;
        let token = link_token(&outbox.sent().last().cloned().unwrap().text);
        let changed: Meddle = |store, user| {
            Box::pin(async move {
                let read = store.get_user(&user).await.unwrap().unwrap();
                if read.password_hash.as_deref() != Some("the other change") {
                    let expected = portcullis::storage::AsRead::of(&read);
                    let at = portcullis::UnixTime(0);
                    store
                        .set_password(&user, expected, "the other change", &[], at)
                        .await
                        .unwrap();
                }
            })
        };
        deps.stores.users = std::sync::Arc::new(Meddled(deps.stores.users.clone(), changed));
        let refused = reset_with(&deps, &token, "a reset that loses the race").await;
        assert!(
            matches!(refused, Err(ApiError::ValidationFailed(_))),
            "{name}: {refused:?}"
        );
        let after = stored_user(&deps, &user).await;
        assert_eq!(
            after.password_hash.as_deref(),
            Some("the other change"),
            "{name}: the other change stands"
        );
    }
}

#[tokio::test]
async fn ids_unused_for_90_days_are_deactivated_and_alerted() {
    // Users of this test are created 100 days before T0 and the sweep runs at T0, so users of
    // other tests (created at T0, sharing the emulator's table) are never in its reach.
    for (name, deps, clock, outbox) in all_deps_with_notifier().await {
        let old = T0.plus_secs(-100 * 86_400);
        let make = |prefix: &str| {
            let id = UserId::parse(&unique(prefix)).unwrap();
            portcullis::storage::UserRecord {
                user_id: id,
                email: Some("user@example.com".into()),
                phone: None,
                password_hash: Some(deps.hasher.hash(PASSWORD.as_bytes()).unwrap()),
                status: UserStatus::Active,
                roles: vec![],
                created_at: old,
                password_changed_at: Some(old),
                last_sign_in_at: None,
                must_change_password: false,
                password_history: vec![],
                security_stamp: 0,
            }
        };
        let idle = make("idle");
        let mut busy = make("busy");
        busy.last_sign_in_at = Some(T0.plus_secs(-89 * 86_400));
        deps.stores.users.create_user(&idle).await.unwrap();
        deps.stores.users.create_user(&busy).await.unwrap();
        // The idle user still has a trusted device (180-day trust outlives 90 idle days) and a
        // session record: neither may survive the deactivation.
        deps.stores
            .devices
            .create_device(&portcullis::storage::DeviceRecord {
                user_id: idle.user_id.clone(),
                device_id: "d_old".into(),
                token_digest: unique("device-digest"),
                name: "Firefox on Linux".into(),
                created_at: old,
                last_used_at: old,
                expires_at: T0.plus_secs(80 * 86_400),
            })
            .await
            .unwrap();
        deps.stores
            .sessions
            .create_session(&portcullis::storage::SessionRecord {
                user_id: idle.user_id.clone(),
                session_id: unique("s"),
                created_at: old,
                auth_time: old,
                amr: vec!["pwd".into(), "otp".into()],
                acr: "urn:portcullis:acr:mfa".into(),
                refresh_digest: "d0".into(),
                rotated: vec![],
                last_refresh_at: old,
                expires_at: T0.plus_secs(43_200),
                idle_expires_at: T0.plus_secs(900),
                revoked: false,
                user_stamp: Some(idle.security_stamp),
            })
            .await
            .unwrap();
        clock.set(T0);
        let report = sweep::sweep(&deps).await.unwrap();
        assert!(report.deactivated >= 1, "{name}: {report:?}");
        let swept = deps
            .stores
            .users
            .get_user(&idle.user_id)
            .await
            .unwrap()
            .unwrap();
        assert!(
            swept.security_stamp != idle.security_stamp,
            "{name}: the deactivation moves the stamp"
        );
        assert!(
            deps.stores
                .devices
                .list_devices(&idle.user_id, T0)
                .await
                .unwrap()
                .is_empty(),
            "{name}: trusted devices removed with the deactivation"
        );
        assert!(
            deps.stores
                .sessions
                .list_sessions(&idle.user_id)
                .await
                .unwrap()
                .iter()
                .all(|s| s.revoked),
            "{name}: sessions revoked with the deactivation"
        );
        assert_eq!(
            stored_user(&deps, &idle.user_id).await.status,
            UserStatus::Inactive,
            "{name}"
        );
        assert_eq!(
            stored_user(&deps, &busy.user_id).await.status,
            UserStatus::Active,
            "{name}: signed in 89 days ago"
        );
        assert!(alerted(&outbox, "alert_deactivated"));
        assert_eq!(
            try_password(&deps, &idle.user_id, PASSWORD)
                .await
                .unwrap_err(),
            ApiError::AccountInactive
        );
        assert_eq!(
            try_password(&deps, &idle.user_id, "wrong password here")
                .await
                .unwrap_err(),
            ApiError::InvalidCredentials,
            "{name}: generic answer for wrong passwords"
        );
        clock.advance_secs(86_400);
        sweep::sweep(&deps).await.unwrap();
        assert_eq!(
            stored_user(&deps, &busy.user_id).await.status,
            UserStatus::Inactive,
            "{name}: 90 days now"
        );
    }
}

#[tokio::test]
async fn outdated_browsers_are_refused_at_sign_in_naming_what_is_supported() {
    for (name, deps, _clock, _outbox, user) in all_deps_with_user("retro").await {
        let meta = RequestMeta {
            user_agent: Some(
                "Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0) like Gecko".into(),
            ),
            ..RequestMeta::default()
        };
        let err = sign_in(
            &deps,
            SignInRequest {
                user_id: user.to_string(),
                password: secret(PASSWORD),
            },
            &meta,
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), "unsupported_client", "{name}");
        assert_eq!(err.status(), 403);
        assert!(err.problem().detail.contains("Chrome 109 or later"));
    }
}

#[tokio::test]
async fn a_user_deactivated_before_the_required_change_gets_no_session() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("deact-change").await {
        deps.stores
            .users
            .set_must_change_password(&user)
            .await
            .unwrap();
        let v = sms_verified(&deps, &user, &outbox).await;
        let step = finish_sign_in(&deps, v).await;
        assert_eq!(step.status(), "password_change_required", "{name}");
        let change = change_of(&deps, &step).await;
        // Deactivated (the status alone: the stamp is left as it was) while the user types.
        deps.stores
            .users
            .set_status(&user, UserStatus::Inactive)
            .await
            .unwrap();
        let refused = required_change(&deps, &change, "the new required passphrase").await;
        assert_eq!(refused.unwrap_err(), ApiError::AccountInactive, "{name}");
        let sessions = deps.stores.sessions.list_sessions(&user).await.unwrap();
        assert!(sessions.iter().all(|s| s.revoked), "{name}: {sessions:?}");
    }
}

/// A session that a revocation missed (a write still in flight after the listing) ends at its
/// next refresh once the user's stamp has moved: the stamp is raised here without revoking
/// anything, as the escaped session would see it. Before, it refreshed until its 12-hour limit.
#[tokio::test]
async fn a_session_older_than_the_users_stamp_does_not_refresh() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("stale").await {
        let (caller, refresh) = mfa_sign_in(&deps, &user, &outbox).await;
        deps.stores.users.raise_security_stamp(&user).await.unwrap();
        let request = RefreshRequest {
            refresh_token: secret(&refresh),
        };
        assert_eq!(
            tokens::refresh(&deps, request).await.map(|_| ()),
            Err(ApiError::Unauthorized),
            "{name}"
        );
        let session = stored_session(&deps, &user, &caller.claims.sid).await;
        assert!(session.revoked, "{name}: and it is revoked");
        // A session opened after the change refreshes as usual.
        let (_, fresh) = mfa_sign_in(&deps, &user, &outbox).await;
        let request = RefreshRequest {
            refresh_token: secret(&fresh),
        };
        assert!(tokens::refresh(&deps, request).await.is_ok(), "{name}");
    }
}

/// A session written before sessions recorded a stamp is not compared: an upgrade signs no one
/// out, whatever the user's stamp is by then.
#[tokio::test]
async fn a_session_that_records_no_stamp_still_refreshes() {
    use base64::Engine as _;
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("legacy").await {
        let (caller, _) = mfa_sign_in(&deps, &user, &outbox).await;
        deps.stores.users.raise_security_stamp(&user).await.unwrap();
        let secret_part = "a".repeat(43);
        let mut legacy = stored_session(&deps, &user, &caller.claims.sid).await;
        legacy.session_id = unique("s");
        legacy.refresh_digest = portcullis::crypto::token_digest(&secret_part);
        legacy.user_stamp = None;
        deps.stores.sessions.create_session(&legacy).await.unwrap();
        let token = format!(
            "{}.{}.{secret_part}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(user.as_str()),
            legacy.session_id
        );
        let request = RefreshRequest {
            refresh_token: secret(&token),
        };
        assert!(tokens::refresh(&deps, request).await.is_ok(), "{name}");
    }
}
