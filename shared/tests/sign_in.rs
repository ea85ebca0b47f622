//! The sign-in service (SPEC §2) on both storage adapters, with a manual clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{
    PASSWORD, T0, all_deps, insert_user, sign_in_as, stored_challenge, unique, user_record,
};
use portcullis::config::Argon2Settings;
use portcullis::crypto::{PasswordHasher, token_digest};
use portcullis::error::ApiError;
use portcullis::identity::UserId;
use portcullis::storage::{
    Delivery, FactorKind, FactorRecord, FactorStatus, Stage, UserRecord, UserStatus,
};
use portcullis::{Clock, Deps};

async fn create_user(deps: &Deps, raw_id: &str, status: UserStatus) -> UserId {
    let id = UserId::parse(raw_id).unwrap();
    let hash = deps.hasher.hash(PASSWORD.as_bytes()).unwrap();
    let record = UserRecord {
        email: None,
        status,
        ..user_record(&id, hash)
    };
    insert_user(deps, &record).await;
    id
}

/// A user with a fresh ID made from `prefix`; the ID as typed at sign-in.
async fn new_user(deps: &Deps, prefix: &str, status: UserStatus) -> String {
    let raw = unique(prefix);
    create_user(deps, &raw, status).await;
    raw
}

/// Four wrong passwords for `user_id`, each refused as invalid credentials: no lock yet.
async fn fail_four_times(deps: &Deps, user_id: &str, password: &str) {
    for _ in 0..4 {
        assert_eq!(
            sign_in_as(deps, user_id, password).await.unwrap_err(),
            ApiError::InvalidCredentials
        );
    }
}

#[tokio::test]
async fn unknown_user_wrong_password_and_inactive_account_get_the_same_answer() {
    for (name, deps, _clock) in all_deps().await {
        let active = new_user(&deps, "active", UserStatus::Active).await;
        let inactive = new_user(&deps, "inactive", UserStatus::Inactive).await;
        let before = deps.hasher.computations();
        let unknown = sign_in_as(&deps, &unique("nobody"), "wrong password 123")
            .await
            .unwrap_err();
        let after_unknown = deps.hasher.computations();
        let wrong = sign_in_as(&deps, &active, "wrong password 123")
            .await
            .unwrap_err();
        let after_wrong = deps.hasher.computations();
        let inactive_wrong = sign_in_as(&deps, &inactive, "wrong password 123")
            .await
            .unwrap_err();
        assert_eq!(unknown, ApiError::InvalidCredentials, "{name}");
        assert_eq!(unknown.problem(), wrong.problem(), "{name}");
        assert_eq!(unknown.problem(), inactive_wrong.problem(), "{name}");
        assert_eq!(
            after_unknown - before,
            1,
            "{name}: an unknown user costs one argon2 verification"
        );
        assert_eq!(after_wrong - after_unknown, 1, "{name}");
    }
}

#[tokio::test]
async fn right_password_for_a_deactivated_account_answers_account_inactive() {
    for (name, deps, _clock) in all_deps().await {
        let id = new_user(&deps, "sleeper", UserStatus::Inactive).await;
        assert_eq!(
            sign_in_as(&deps, &id, PASSWORD).await.unwrap_err(),
            ApiError::AccountInactive,
            "{name}"
        );
    }
}

#[tokio::test]
async fn fifth_failure_locks_for_30_minutes_and_the_password_is_not_evaluated_meanwhile() {
    for (name, deps, clock) in all_deps().await {
        let id = new_user(&deps, "victim", UserStatus::Active).await;
        fail_four_times(&deps, &id, "wrong password 123").await;
        assert_eq!(
            sign_in_as(&deps, &id, "wrong password 123")
                .await
                .unwrap_err(),
            ApiError::Locked {
                retry_after_secs: 1800
            },
            "{name}: the 5th failure starts the lock"
        );
        clock.advance_secs(60);
        let hashes = deps.hasher.computations();
        assert_eq!(
            sign_in_as(&deps, &id, PASSWORD).await.unwrap_err(),
            ApiError::Locked {
                retry_after_secs: 1740
            },
            "{name}: even the right password is refused during the lock"
        );
        assert_eq!(
            deps.hasher.computations(),
            hashes,
            "{name}: no argon2 work during a lock"
        );
        clock.advance_secs(1740);
        let answer = sign_in_as(&deps, &id, PASSWORD).await.unwrap();
        assert_eq!(
            answer.status(),
            "mfa_enrolment_required",
            "{name}: the lock ends after 30 minutes"
        );
    }
}

#[tokio::test]
async fn unknown_user_ids_lock_exactly_like_real_ones() {
    for (name, deps, _clock) in all_deps().await {
        let ghost = unique("ghost");
        fail_four_times(&deps, &ghost, "whatever password").await;
        let fifth = sign_in_as(&deps, &ghost, "whatever password")
            .await
            .unwrap_err();
        assert_eq!(
            fifth,
            ApiError::Locked {
                retry_after_secs: 1800
            },
            "{name}"
        );
        assert_eq!(fifth.problem().status, 423);
    }
}

#[tokio::test]
async fn failures_count_per_normalised_user_id() {
    for (name, deps, _clock) in all_deps().await {
        let id = new_user(&deps, "norm", UserStatus::Active).await;
        let variants = [
            format!("  {} ", id.to_uppercase()),
            id.to_uppercase(),
            format!("{id}\t"),
            id.chars()
                .map(|c| {
                    if c.is_ascii_lowercase() {
                        char::from_u32(c as u32 - 0x61 + 0xFF41).unwrap()
                    } else {
                        c
                    }
                })
                .collect(),
            id.clone(),
        ];
        let mut last = None;
        for v in &variants {
            last = Some(
                sign_in_as(&deps, v, "wrong password 123")
                    .await
                    .unwrap_err(),
            );
        }
        assert_eq!(
            last,
            Some(ApiError::Locked {
                retry_after_secs: 1800
            }),
            "{name}"
        );
        // and the right password under any spelling is refused while locked
        assert!(matches!(
            sign_in_as(&deps, &variants[1], PASSWORD).await,
            Err(ApiError::Locked { .. })
        ));
    }
}

#[tokio::test]
async fn a_user_without_factors_must_enrol_and_gets_a_stored_challenge() {
    for (name, deps, clock) in all_deps().await {
        let id = create_user(&deps, &unique("newbie"), UserStatus::Active).await;
        let answer = sign_in_as(
            &deps,
            &format!(" {} ", id.as_str().to_uppercase()),
            PASSWORD,
        )
        .await
        .unwrap();
        assert_eq!(answer.status(), "mfa_enrolment_required", "{name}");
        assert_eq!(answer.expires_in(), Some(600));
        assert!(answer.methods().is_none());
        let challenge_id = answer.challenge_id().unwrap();
        assert!(challenge_id.len() >= 43, "256-bit challenge id");
        let stored = stored_challenge(&deps, &token_digest(challenge_id)).await;
        assert_eq!(stored.user_id, id);
        assert_eq!(
            stored.stage,
            Stage::SignInEnrolment {
                then_new_password: false
            }
        );
        assert_eq!(stored.expires_at, clock.now().plus_secs(600));
        assert!(
            deps.stores
                .challenges
                .get_challenge(challenge_id, clock.now())
                .await
                .unwrap()
                .is_none(),
            "{name}: the challenge id itself is not a key: only its digest is stored"
        );
        clock.advance_secs(600);
        assert!(
            deps.stores
                .challenges
                .get_challenge(&token_digest(challenge_id), clock.now())
                .await
                .unwrap()
                .is_none()
        );
    }
}

#[tokio::test]
async fn a_user_with_an_active_phone_gets_mfa_required_with_the_masked_number() {
    for (name, deps, _clock) in all_deps().await {
        let id = create_user(&deps, &unique("phoned"), UserStatus::Active).await;
        for (factor_id, status, e164) in [
            ("f_1", FactorStatus::Active, "+12025551234"),
            ("f_2", FactorStatus::Pending, "+12025559999"),
        ] {
            deps.stores
                .factors
                .create_factor(&FactorRecord {
                    user_id: id.clone(),
                    factor_id: factor_id.into(),
                    kind: FactorKind::Phone {
                        e164: e164.into(),
                        delivery: Delivery::Sms,
                    },
                    status,
                    created_at: T0,
                    replaces: None,
                })
                .await
                .unwrap();
        }
        let answer = sign_in_as(&deps, id.as_str(), PASSWORD).await.unwrap();
        assert_eq!(answer.status(), "mfa_required", "{name}");
        let json = serde_json::to_value(&answer).unwrap();
        assert_eq!(
            json["methods"],
            serde_json::json!([
                {"method": "sms", "factor_id": "f_1", "phone": "***-***-1234"},
                {"method": "voice", "factor_id": "f_1", "phone": "***-***-1234"}
            ]),
            "{name}: only active factors, phone masked"
        );
        assert!(!json.to_string().contains("5551234"));
    }
}

#[tokio::test]
async fn a_hash_made_with_old_parameters_is_upgraded_on_the_next_sign_in() {
    for (name, deps, _clock) in all_deps().await {
        let id = UserId::parse(&unique("legacy")).unwrap();
        let old = PasswordHasher::new(Argon2Settings {
            memory_kib: 32,
            iterations: 3,
            parallelism: 1,
        })
        .unwrap();
        let old_hash = old.hash(PASSWORD.as_bytes()).unwrap();
        let record = UserRecord {
            email: None,
            password_changed_at: None,
            ..user_record(&id, old_hash.clone())
        };
        insert_user(&deps, &record).await;
        sign_in_as(&deps, id.as_str(), PASSWORD).await.unwrap();
        let stored = deps
            .stores
            .users
            .get_user(&id)
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .unwrap();
        assert_ne!(stored, old_hash, "{name}");
        assert!(
            stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{name}: {stored}"
        );
        assert!(
            sign_in_as(&deps, id.as_str(), PASSWORD).await.is_ok(),
            "{name}: the new hash verifies"
        );
    }
}

#[tokio::test]
async fn bad_input_is_refused_before_any_state_changes() {
    for (name, deps, _clock) in all_deps().await {
        let id = new_user(&deps, "careful", UserStatus::Active).await;
        let huge = "x".repeat(deps.settings.max_password_bytes + 1);
        let hashes = deps.hasher.computations();
        for (user_id, password) in [
            ("", PASSWORD),
            ("   ", PASSWORD),
            (id.as_str(), ""),
            (id.as_str(), huge.as_str()),
            ("a\u{0}b", PASSWORD),
        ] {
            let err = sign_in_as(&deps, user_id, password).await.unwrap_err();
            assert_eq!(err.status(), 400, "{name}: {err:?}");
        }
        assert_eq!(
            deps.hasher.computations(),
            hashes,
            "{name}: nothing hashed for bad input"
        );
        // None of these counted as failures: four wrong passwords still leave the account open.
        fail_four_times(&deps, &id, "wrong password 123").await;
        assert!(sign_in_as(&deps, &id, PASSWORD).await.is_ok(), "{name}");
    }
}
