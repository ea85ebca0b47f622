//! The operator CLI's actions (`service::operator`) on both adapters: a user made outside the
//! API still meets the password policy and the admin API's checks, and both actions leave an
//! audit event with the operator as actor. Before, the CLI wrote the user record itself (any
//! 12 characters, any role string, an unchecked email) and cleared counters unaudited.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use portcullis::Deps;
use portcullis::crypto::{PasswordCheck, SecretString};
use portcullis::error::ApiError;
use portcullis::identity::UserId;
use portcullis::service::limits;
use portcullis::service::operator::{self, NewUser};
use portcullis::storage::CounterKey;

fn new_user<'a>(user_id: &'a str, password: &str, roles: &[&str]) -> NewUser<'a> {
    NewUser {
        user_id,
        email: Some("ops@example.com"),
        phone: None,
        roles: roles.iter().map(|r| r.to_string()).collect(),
        password: SecretString::new(password.into()),
    }
}

async fn stored(deps: &Deps, raw: &str) -> Option<portcullis::storage::UserRecord> {
    let id = UserId::parse(raw).unwrap();
    deps.stores.users.get_user(&id).await.unwrap()
}

#[tokio::test]
async fn a_user_made_by_the_operator_meets_the_policy_and_the_admin_checks() {
    for (name, deps, _clock) in all_deps().await {
        let raw = unique("ops");
        let local = raw.split('@').next().unwrap().to_owned();
        let refused: Vec<(NewUser<'_>, &str)> = vec![
            (new_user(&raw, "short", &[]), "at least 12"),
            (new_user(&raw, "qwerty123456", &[]), "too common"),
            (
                new_user(&raw, &format!("my {local} passphrase"), &[]),
                "user ID",
            ),
            (new_user(&raw, PASSWORD, &["root"]), "Unknown role"),
            (
                NewUser {
                    email: Some("not an address"),
                    ..new_user(&raw, PASSWORD, &[])
                },
                "email",
            ),
            (
                NewUser {
                    phone: Some("12345"),
                    ..new_user(&raw, PASSWORD, &[])
                },
                "phone",
            ),
        ];
        for (new, why) in refused {
            let err = operator::create_user(&deps, new, "ops").await.unwrap_err();
            assert_eq!(err.status(), 400, "{name}: {why}: {err:?}");
            assert!(
                err.problem().detail.contains(why),
                "{name}: {why}: {}",
                err.problem().detail
            );
            assert_eq!(
                stored(&deps, &raw).await,
                None,
                "{name}: {why} stores nothing"
            );
        }
        let made = operator::create_user(
            &deps,
            new_user(&raw, PASSWORD, &["support", "admin", "admin"]),
            "ops",
        )
        .await
        .unwrap();
        let user = stored(&deps, &raw).await.unwrap();
        assert_eq!(user.email.as_deref(), Some("ops@example.com"), "{name}");
        assert_eq!(user.roles, vec!["admin", "support"], "{name}");
        assert!(
            matches!(
                deps.hasher
                    .verify(user.password_hash.as_deref().unwrap(), PASSWORD.as_bytes()),
                PasswordCheck::Match { .. }
            ),
            "{name}"
        );
        let again =
            operator::create_user(&deps, new_user(&raw, "another good passphrase", &[]), "ops")
                .await
                .unwrap_err();
        assert!(matches!(again, ApiError::Conflict(_)), "{name}: {again:?}");
        assert_eq!(
            stored(&deps, &raw).await.as_ref(),
            Some(&user),
            "{name}: unchanged"
        );
        assert_eq!(made, user, "{name}: the answer is what was stored");
        let events = audit_events(&deps, &made.user_id, 10).await;
        assert_eq!(events.len(), 1, "{name}: {events:?}");
        let event = &events[0];
        assert_eq!(
            (
                event.kind.as_str(),
                event.actor.as_str(),
                event.outcome.as_str()
            ),
            ("operator_create_user", "operator", "success"),
            "{name}"
        );
        assert_eq!(
            event.detail.as_deref(),
            Some("by ops; roles admin, support"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn an_operator_unlock_ends_both_locks_and_is_audited() {
    for (name, deps, _clock) in all_deps().await {
        let user = create_user(&deps, &unique("opslock")).await;
        for _ in 0..5 {
            let _ = sign_in_as(&deps, user.as_str(), "wrong wrong wrong").await;
        }
        assert!(
            matches!(
                sign_in_as(&deps, user.as_str(), PASSWORD).await,
                Err(ApiError::Locked { .. })
            ),
            "{name}: locked"
        );
        // The second factor's lock too: 10 answers without a success.
        let second = CounterKey::SecondFactor(&user);
        for _ in 0..10 {
            limits::count_failure(&deps, second, limits::second_factor_policy(&deps))
                .await
                .unwrap();
        }
        assert!(
            limits::locked_until(&deps, second).await.unwrap().is_some(),
            "{name}"
        );
        operator::unlock(&deps, user.as_str(), "ops").await.unwrap();
        assert_eq!(
            limits::locked_until(&deps, second).await.unwrap(),
            None,
            "{name}"
        );
        assert!(
            sign_in_as(&deps, user.as_str(), PASSWORD).await.is_ok(),
            "{name}: unlocked"
        );
        let events = audit_events(&deps, &user, 50).await;
        let unlock = events.iter().find(|e| e.kind == "operator_unlock");
        assert_eq!(
            unlock.map(|e| (e.actor.as_str(), e.detail.as_deref())),
            Some(("operator", Some("by ops"))),
            "{name}: {events:?}"
        );
        let nobody = unique("nobody");
        assert_eq!(
            operator::unlock(&deps, &nobody, "ops").await.map(|_| ()),
            Err(ApiError::NotFound),
            "{name}"
        );
        assert_eq!(
            operator::unlock(&deps, "", "ops")
                .await
                .map(|_| ())
                .unwrap_err()
                .status(),
            400,
            "{name}"
        );
    }
}
