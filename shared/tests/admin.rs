//! Administration, audit and anomaly signals (SPEC §8) on both storage adapters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use portcullis::Deps;
use portcullis::RequestMeta;
use portcullis::crypto::SecretString;
use portcullis::error::ApiError;
use portcullis::identity::UserId;
use portcullis::notifier::RecordingNotifier;
use portcullis::service::admin::{self, AcceptRequest, Action, InviteRequest, MfaResetFiling};
use portcullis::service::codes::Verified;
use portcullis::service::complete::complete_sign_in;
use portcullis::service::sign_in::{SignInRequest, sign_in};
use portcullis::service::tokens::Caller;

fn meta(ip: &str) -> RequestMeta {
    RequestMeta {
        source_ip: Some(ip.into()),
        user_agent: Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36".into()),
        ..RequestMeta::default()
    }
}

async fn make_admin(deps: &Deps, outbox: &RecordingNotifier, phone: &str) -> (UserId, Caller) {
    let id = create_user(deps, &unique("admin")).await;
    let mut record = stored_user(deps, &id).await;
    let admin_id = UserId::parse(&unique("adm")).unwrap();
    record.user_id = admin_id.clone();
    record.roles = vec!["admin".into()];
    insert_user(deps, &record).await;
    add_phone(deps, &admin_id, phone).await;
    let v = sms_verified(deps, &admin_id, outbox).await;
    (admin_id, complete_from(deps, v, "10.0.0.1").await)
}

/// Completes a verified sign-in from `ip` (no device trusted): the caller its token makes.
async fn complete_from(deps: &Deps, verified: Verified, ip: &str) -> Caller {
    let signed = complete_sign_in(deps, verified, None, &meta(ip)).await;
    let tokens = signed.unwrap().into_tokens().unwrap();
    // The caller of every later request: from the same address, as the edge would make it.
    let authorization = format!("Bearer {}", tokens.access_token);
    portcullis::service::tokens::authenticate(deps, Some(&authorization), &meta(ip))
        .await
        .unwrap()
}

#[tokio::test]
async fn an_invited_user_sets_a_password_once_and_must_enrol_mfa() {
    for (name, deps, clock, outbox) in all_deps_with_notifier().await {
        let (_, admin_caller) = make_admin(&deps, &outbox, "+12025550143").await;
        let new_user = unique("invitee");
        let invited = as_admin!(
            admin::invite,
            &deps,
            &admin_caller,
            InviteRequest {
                user_id: new_user.clone(),
                email: "new.hire@example.com".into(),
                phone: None,
                roles: None,
            }
        )
        .unwrap();
        let admin::InviteOutcome::Invited(invited) = invited else {
            panic!("{name}: a user without roles is invited at once");
        };
        assert_eq!(invited.invitation.sent_to, "n***@e***.com");
        let email = outbox.sent().last().cloned().unwrap();
        assert_eq!(email.purpose, "invitation");
        let token = link_token(&email.text);
        assert_eq!(
            as_admin!(
                admin::invite,
                &deps,
                &admin_caller,
                InviteRequest {
                    user_id: new_user.clone(),
                    email: "x@example.com".into(),
                    phone: None,
                    roles: None
                }
            )
            .unwrap_err()
            .status(),
            409,
            "{name}"
        );
        assert!(
            admin::accept(
                &deps,
                &token,
                AcceptRequest {
                    password: SecretString::new("qwerty123456".into())
                },
                &RequestMeta::default()
            )
            .await
            .unwrap_err()
            .problem()
            .detail
            .contains("too common")
        );
        admin::accept(
            &deps,
            &token,
            AcceptRequest {
                password: SecretString::new("my first passphrase".into()),
            },
            &RequestMeta::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            admin::accept(
                &deps,
                &token,
                AcceptRequest {
                    password: SecretString::new("my second passphrase".into())
                },
                &RequestMeta::default()
            )
            .await
            .unwrap_err()
            .status(),
            400,
            "{name}: single use"
        );
        let uid = UserId::parse(&new_user).unwrap();
        let answer = sign_in_as(&deps, &new_user, "my first passphrase")
            .await
            .unwrap();
        assert_eq!(answer.status(), "mfa_enrolment_required", "{name}");
        let k = event_kinds(&deps, &uid).await;
        assert!(
            k.contains(&"user_invited".into()) && k.contains(&"invitation_accepted".into()),
            "{name}: {k:?}"
        );
        // invitations expire after 72 hours
        let late = unique("late");
        as_admin!(
            admin::invite,
            &deps,
            &admin_caller,
            InviteRequest {
                user_id: late,
                email: "late@example.com".into(),
                phone: None,
                roles: None,
            }
        )
        .unwrap();
        let email = outbox.sent().last().cloned().unwrap();
        let token = link_token(&email.text);
        clock.advance_secs(72 * 3600);
        assert_eq!(
            admin::accept(
                &deps,
                &token,
                AcceptRequest {
                    password: SecretString::new("my first passphrase".into())
                },
                &RequestMeta::default()
            )
            .await
            .unwrap_err()
            .status(),
            400,
            "{name}"
        );
    }
}

#[tokio::test]
async fn an_mfa_reset_needs_two_different_admins_and_wipes_the_factors() {
    for (name, deps, clock, outbox, user) in all_deps_with_user("victim").await {
        let (alice_id, alice) = make_admin(&deps, &outbox, "+12025550143").await;
        let (bob_id, bob) = make_admin(&deps, &outbox, "+12025550144").await;
        add_phone(&deps, &user, "+12025550145").await;
        // a non-admin cannot file
        let plain = {
            let v = sms_verified(&deps, &user, &outbox).await;
            complete_from(&deps, v, "10.0.0.2").await
        };
        let filing = |u: &UserId| MfaResetFiling {
            user_id: u.to_string(),
            reason: "User lost their phone, verified by branch".into(),
        };
        assert_eq!(
            as_admin!(admin::request_mfa_reset, &deps, &plain, filing(&user)).unwrap_err(),
            ApiError::Forbidden,
            "{name}"
        );
        assert_eq!(
            as_admin!(admin::request_mfa_reset, &deps, &alice, filing(&alice_id)).unwrap_err(),
            ApiError::Forbidden,
            "{name}: not on oneself"
        );
        assert_eq!(
            as_admin!(
                admin::request_mfa_reset,
                &deps,
                &alice,
                MfaResetFiling {
                    user_id: user.to_string(),
                    reason: "short".into()
                }
            )
            .unwrap_err()
            .status(),
            400
        );
        let request = as_admin!(admin::request_mfa_reset, &deps, &alice, filing(&user)).unwrap();
        assert_eq!(
            as_admin!(admin::approve_mfa_reset, &deps, &alice, &request.request_id).unwrap_err(),
            ApiError::Forbidden,
            "{name}: the requester cannot approve"
        );
        assert_eq!(
            as_admin!(admin::approve_mfa_reset, &deps, &plain, &request.request_id).unwrap_err(),
            ApiError::Forbidden
        );
        // a request about Bob cannot be approved by Bob
        let about_bob =
            as_admin!(admin::request_mfa_reset, &deps, &alice, filing(&bob_id)).unwrap();
        assert_eq!(
            as_admin!(admin::approve_mfa_reset, &deps, &bob, &about_bob.request_id).unwrap_err(),
            ApiError::Forbidden,
            "{name}: not on oneself"
        );
        as_admin!(admin::approve_mfa_reset, &deps, &bob, &request.request_id).unwrap();
        assert!(no_factors(&deps, &user).await, "{name}");
        let answer = sign_in_as(&deps, user.as_str(), PASSWORD).await.unwrap();
        assert_eq!(answer.status(), "mfa_enrolment_required", "{name}");
        assert_eq!(
            as_admin!(admin::approve_mfa_reset, &deps, &bob, &request.request_id)
                .unwrap_err()
                .status(),
            409,
            "{name}: once"
        );
        let k = event_kinds(&deps, &user).await;
        for kind in [
            "mfa_reset_requested",
            "mfa_reset_approved",
            "sign_in_succeeded",
            "code_sent",
        ] {
            assert!(k.contains(&kind.to_owned()), "{name}: {kind} in {k:?}");
        }
        let events = audit_events(&deps, &user, 50).await;
        let approved = events
            .iter()
            .find(|e| e.kind == "mfa_reset_approved")
            .unwrap();
        assert_eq!(approved.actor, bob_id.to_string());
        assert_eq!(approved.source_ip.as_deref(), Some("10.0.0.1"));
        // requests expire
        let late = as_admin!(admin::request_mfa_reset, &deps, &alice, filing(&user)).unwrap();
        clock.advance_secs(24 * 3600);
        let bob_again = make_admin(&deps, &outbox, "+12025550146").await.1;
        assert_eq!(
            as_admin!(
                admin::approve_mfa_reset,
                &deps,
                &bob_again,
                &late.request_id
            )
            .unwrap_err(),
            ApiError::NotFound,
            "{name}: expired"
        );
        // elevation: an admin action needs a fresh MFA
        assert_eq!(
            as_admin!(admin::act, &deps, &alice, user.as_str(), Action::Unlock).unwrap_err(),
            ApiError::StepUpRequired,
            "{name}"
        );
    }
}

#[tokio::test]
async fn many_failures_from_one_ip_are_throttled_without_locking_the_targets() {
    for (name, deps, _clock, _outbox) in all_deps_with_notifier().await {
        let ip = format!("203.0.113.{}", rand_octet());
        let known = create_user(&deps, &unique("target")).await;
        let attempt = |user: String| {
            let deps = deps.clone();
            let m = meta(&ip);
            async move { sign_in_from(&deps, &user, "wrong password here", &m).await }
        };
        for i in 0..30 {
            let user = if i == 0 {
                known.to_string()
            } else {
                unique("spray")
            };
            assert_eq!(
                attempt(user).await.unwrap_err(),
                ApiError::InvalidCredentials,
                "{name}"
            );
        }
        let throttled = attempt(unique("spray")).await.unwrap_err();
        assert_eq!(
            throttled,
            ApiError::RateLimited {
                retry_after_secs: 600
            },
            "{name}"
        );
        assert_eq!(throttled.status(), 429);
        assert_eq!(
            attempt(known.to_string()).await.unwrap_err(),
            throttled,
            "{name}: same answer for known and unknown IDs"
        );
        // the targeted user is not locked: from another address the right password works
        let ok = sign_in_from(&deps, known.as_str(), PASSWORD, &meta("198.51.100.7")).await;
        assert!(ok.is_ok(), "{name}: {ok:?}");
    }
}

fn rand_octet() -> u8 {
    portcullis::crypto::random_bytes::<1>()[0]
}

#[tokio::test]
async fn a_sign_in_from_a_new_kind_of_device_is_flagged_and_alerted_once() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("traveller").await {
        for _ in 0..2 {
            let v = sms_verified(&deps, &user, &outbox).await;
            complete_sign_in(&deps, v, None, &meta("10.1.1.1"))
                .await
                .unwrap();
        }
        let flagged = outbox
            .sent()
            .iter()
            .filter(|m| m.purpose == "alert_new_device_sign_in")
            .count();
        assert_eq!(flagged, 1, "{name}: once per kind of device");
        let events = audit_events(&deps, &user, 50).await;
        let flag = events.iter().find(|e| e.kind == "new_device").unwrap();
        assert_eq!(flag.outcome, "flagged");
        assert_eq!(flag.detail.as_deref(), Some("Chrome on Windows"));
        assert_eq!(
            events
                .iter()
                .filter(|e| e.kind == "sign_in_succeeded")
                .count(),
            2
        );
    }
}

#[tokio::test]
async fn admin_actions_work_are_audited_and_every_security_event_kind_is_recorded() {
    use portcullis::service::{devices, password, recovery};
    for (name, deps, _clock, outbox) in all_deps_with_notifier().await {
        let (admin_id, admin_caller) = make_admin(&deps, &outbox, "+12025550143").await;
        let user = create_user(&deps, &unique("subject")).await;
        add_phone(&deps, &user, "+12025550147").await;
        // A fresh address per run: the per-IP failure count lives in the emulator's table, and
        // every run's clock starts at the same instant.
        let ip = format!("10.{}.{}.{}", rand_octet(), rand_octet(), rand_octet());
        let m = meta(&ip);
        // failures and a lock
        for _ in 0..5 {
            let _ = sign_in_from(&deps, user.as_str(), "wrong password here", &m).await;
        }
        as_admin!(
            admin::act,
            &deps,
            &admin_caller,
            user.as_str(),
            Action::Unlock
        )
        .unwrap();
        // a full sign-in with a trusted device, a recovery code, a password change
        let v = sms_verified(&deps, &user, &outbox).await;
        let trust = Some(portcullis::service::complete::TrustRequest {
            device_name: Some("Laptop".into()),
        });
        let signed = complete_sign_in(&deps, v, trust, &m).await.unwrap();
        let caller = bearer(&deps, &signed.tokens().unwrap().access_token)
            .await
            .unwrap();
        let set = recovery::issue(&deps, &user, &RequestMeta::default())
            .await
            .unwrap();
        let c = password_challenge(&deps, &user).await;
        redeem_code(&deps, &c, &set[0]).await.unwrap();
        password::change(
            &deps,
            &caller,
            password::ChangePasswordRequest {
                current_password: SecretString::new(PASSWORD.into()),
                new_password: SecretString::new("an entirely new passphrase".into()),
            },
        )
        .await
        .unwrap();
        let listed = devices::list(&deps, &user, None).await.unwrap();
        assert!(
            listed.is_empty(),
            "{name}: a password change removes trusted devices"
        );
        // admin actions
        as_admin!(
            admin::act,
            &deps,
            &admin_caller,
            user.as_str(),
            Action::ForcePasswordChange
        )
        .unwrap();
        assert!(
            stored_user(&deps, &user).await.must_change_password,
            "{name}"
        );
        as_admin!(
            admin::act,
            &deps,
            &admin_caller,
            user.as_str(),
            Action::Deactivate
        )
        .unwrap();
        assert_eq!(
            sign_in(
                &deps,
                SignInRequest {
                    user_id: user.to_string(),
                    password: SecretString::new("an entirely new passphrase".into())
                },
                &m
            )
            .await
            .unwrap_err(),
            ApiError::AccountInactive
        );
        // A device trusted while inactive (an earlier sweep that could not finish, a record
        // restored from a backup) does not survive the reactivation.
        trust_a_device(&deps, &user, "d_left").await;
        as_admin!(
            admin::act,
            &deps,
            &admin_caller,
            user.as_str(),
            Action::Reactivate
        )
        .unwrap();
        assert!(
            devices::list(&deps, &user, None).await.unwrap().is_empty(),
            "{name}: a reactivated user starts with no trusted device"
        );
        assert!(
            sign_in(
                &deps,
                SignInRequest {
                    user_id: user.to_string(),
                    password: SecretString::new("an entirely new passphrase".into())
                },
                &m
            )
            .await
            .is_ok(),
            "{name}"
        );
        // Reactivating a user who is active changes nothing: their devices stay.
        trust_a_device(&deps, &user, "d_kept").await;
        as_admin!(
            admin::act,
            &deps,
            &admin_caller,
            user.as_str(),
            Action::Reactivate
        )
        .unwrap();
        assert_eq!(
            devices::list(&deps, &user, None).await.unwrap().len(),
            1,
            "{name}: reactivating an active user keeps their devices"
        );
        let recorded = event_kinds(&deps, &user).await;
        for kind in [
            "sign_in_failed",
            "lock_started",
            "admin_unlock",
            "code_sent",
            "sign_in_succeeded",
            "device_trusted",
            "new_device",
            "recovery_code_used",
            "recovery_codes_issued",
            "password_changed",
            "admin_force_password_change",
            "admin_deactivate",
            "admin_reactivate",
        ] {
            assert!(
                recorded.contains(&kind.to_owned()),
                "{name}: {kind} missing from {recorded:?}"
            );
        }
        let events = audit_events(&deps, &user, 200).await;
        let unlock = events.iter().find(|e| e.kind == "admin_unlock").unwrap();
        assert_eq!(
            (unlock.actor.as_str(), unlock.source_ip.as_deref()),
            // The admin's own request (make_admin signs in from 10.0.0.1), not the user's.
            (admin_id.as_str(), Some("10.0.0.1"))
        );
        assert!(
            unlock
                .user_agent
                .as_deref()
                .unwrap_or("")
                .contains("Chrome")
        );
        // no secret in any event
        let dump = format!("{events:?}");
        assert!(
            !dump.contains(PASSWORD) && !dump.contains("entirely new") && !dump.contains(&set[0]),
            "{name}"
        );
    }
}

/// A trusted device for `user`, written directly (its token is never used).
async fn trust_a_device(deps: &Deps, user: &UserId, device_id: &str) {
    deps.stores
        .devices
        .create_device(&portcullis::storage::DeviceRecord {
            user_id: user.clone(),
            device_id: device_id.into(),
            token_digest: unique("device-digest"),
            name: "Firefox on Linux".into(),
            created_at: deps.clock.now(),
            last_used_at: deps.clock.now(),
            expires_at: deps.clock.now().plus_secs(86_400),
        })
        .await
        .unwrap();
}

/// A grant and a removal landing at once cannot undo each other (found in review): an admin
/// grants `support` while a removal of `admin` (approved by a second admin) lands between the
/// grant's read of the roles and its write. Before, the grant wrote back the roles it had read,
/// `admin` included; now its write is conditional on them, so it reads again.
#[tokio::test]
async fn a_grant_racing_a_removal_does_not_restore_the_removed_role() {
    for (name, mut deps, _clock, outbox) in all_deps_with_notifier().await {
        let (_, admin) = signed_in_admin(&deps, &outbox, "+12025550161").await;
        let subject = create_user(&deps, &unique("raced")).await;
        set_roles(&deps, &subject, &["admin"]).await;
        let meddle: Meddle = |store, user| {
            Box::pin(async move {
                let roles = store.get_user(&user).await.unwrap().unwrap().roles;
                if roles.iter().any(|r| r == "admin") {
                    let kept: Vec<String> =
                        roles.iter().filter(|r| *r != "admin").cloned().collect();
                    store.set_roles(&user, &roles, &kept).await.unwrap();
                }
            })
        };
        deps.stores.users = std::sync::Arc::new(Meddled(deps.stores.users.clone(), meddle));
        let grant = admin::RoleGrant {
            role: "support".into(),
            reason: None,
        };
        let done = as_admin!(admin::grant_role, &deps, &admin, subject.as_str(), grant);
        assert_eq!(done, Ok(admin::ActOutcome::Done), "{name}");
        assert_eq!(
            stored_user(&deps, &subject).await.roles,
            vec!["support"],
            "{name}: the removal stands and the grant lands"
        );
    }
}
