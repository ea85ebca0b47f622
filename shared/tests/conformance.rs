//! One storage conformance suite, run against the in-memory adapter and the DynamoDB adapter
//! (on the emulator): the two cannot drift.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{T0, all_stores, unique};
use portcullis::error::StoreError;
use portcullis::identity::UserId;
use portcullis::storage::{
    ChallengeRecord, ChallengeStatus, Delivery, FactorKind, FactorRecord, FactorStatus,
    FailureOutcome, LockoutPolicy, UserRecord, UserStatus,
};

fn user(id: &UserId) -> UserRecord {
    UserRecord {
        user_id: id.clone(),
        email: Some("someone@example.com".into()),
        phone: None,
        password_hash: Some("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into()),
        status: UserStatus::Active,
        roles: vec!["admin".into(), "support".into()],
        created_at: T0,
        password_changed_at: Some(T0),
        last_sign_in_at: None,
        must_change_password: true,
    }
}

const POLICY: LockoutPolicy = LockoutPolicy { threshold: 5, lock_secs: 1800, window_secs: 86_400 };

#[tokio::test]
async fn users_are_created_once_and_read_back_unchanged() {
    for (name, stores) in all_stores().await {
        let id = UserId::parse(&unique("user")).unwrap();
        let record = user(&id);
        stores.users.create_user(&record).await.unwrap();
        assert_eq!(stores.users.get_user(&id).await.unwrap(), Some(record.clone()), "{name}");
        let mut other = record.clone();
        other.email = None;
        assert!(
            matches!(stores.users.create_user(&other).await, Err(StoreError::ConditionFailed)),
            "{name}: a second create must not overwrite"
        );
        assert_eq!(stores.users.get_user(&id).await.unwrap(), Some(record), "{name}");
        let missing = UserId::parse(&unique("nobody")).unwrap();
        assert_eq!(stores.users.get_user(&missing).await.unwrap(), None, "{name}");
    }
}

#[tokio::test]
async fn password_hash_is_replaced_only_if_unchanged() {
    for (name, stores) in all_stores().await {
        let id = UserId::parse(&unique("rehash")).unwrap();
        let record = user(&id);
        let old = record.password_hash.clone().unwrap();
        stores.users.create_user(&record).await.unwrap();
        assert!(matches!(
            stores.users.replace_password_hash(&id, "not-the-hash", "new").await,
            Err(StoreError::ConditionFailed)
        ));
        stores.users.replace_password_hash(&id, &old, "new").await.unwrap();
        let read = stores.users.get_user(&id).await.unwrap().unwrap();
        assert_eq!(read.password_hash.as_deref(), Some("new"), "{name}");
        let missing = UserId::parse(&unique("nobody")).unwrap();
        assert!(
            matches!(
                stores.users.replace_password_hash(&missing, &old, "new").await,
                Err(StoreError::ConditionFailed)
            ),
            "{name}: no user is created by a replace"
        );
    }
}

#[tokio::test]
async fn five_failures_lock_for_thirty_minutes_then_the_count_starts_over() {
    for (name, stores) in all_stores().await {
        let key = unique("lock");
        let l = &stores.lockouts;
        for expected in 1..=4 {
            assert_eq!(
                l.record_failure(&key, T0, POLICY).await.unwrap(),
                FailureOutcome::Counted { failures: expected },
                "{name}"
            );
            assert_eq!(l.locked_until(&key, T0).await.unwrap(), None, "{name}");
        }
        let until = T0.plus_secs(1800);
        assert_eq!(
            l.record_failure(&key, T0.plus_secs(10), POLICY).await.unwrap(),
            FailureOutcome::LockStarted { until: T0.plus_secs(1810) },
            "{name}"
        );
        let until = until.plus_secs(10);
        assert_eq!(l.locked_until(&key, T0.plus_secs(11)).await.unwrap(), Some(until), "{name}");
        assert_eq!(
            l.record_failure(&key, T0.plus_secs(12), POLICY).await.unwrap(),
            FailureOutcome::AlreadyLocked { until },
            "{name}: a failure during the lock neither extends nor restarts it"
        );
        assert_eq!(l.locked_until(&key, until.plus_secs(-1)).await.unwrap(), Some(until));
        assert_eq!(l.locked_until(&key, until).await.unwrap(), None, "{name}: lock over");
        assert_eq!(
            l.record_failure(&key, until, POLICY).await.unwrap(),
            FailureOutcome::Counted { failures: 1 },
            "{name}: after a lock the count starts over"
        );
    }
}

#[tokio::test]
async fn a_run_of_failures_is_forgotten_after_the_window_and_on_clear() {
    for (name, stores) in all_stores().await {
        let key = unique("window");
        let l = &stores.lockouts;
        for _ in 0..4 {
            l.record_failure(&key, T0, POLICY).await.unwrap();
        }
        assert_eq!(
            l.record_failure(&key, T0.plus_secs(POLICY.window_secs), POLICY).await.unwrap(),
            FailureOutcome::Counted { failures: 1 },
            "{name}"
        );
        for _ in 0..3 {
            l.record_failure(&key, T0.plus_secs(POLICY.window_secs), POLICY).await.unwrap();
        }
        l.clear(&key).await.unwrap();
        assert_eq!(
            l.record_failure(&key, T0.plus_secs(POLICY.window_secs), POLICY).await.unwrap(),
            FailureOutcome::Counted { failures: 1 },
            "{name}: clear forgets the run"
        );
    }
}

#[tokio::test]
async fn concurrent_failures_start_exactly_one_lock_and_never_skip_a_count() {
    for (name, stores) in all_stores().await {
        let key = unique("race");
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let l = stores.lockouts.clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move { l.record_failure(&key, T0, POLICY).await }));
        }
        let mut counted = Vec::new();
        let mut started = 0;
        let mut already = 0;
        for task in tasks {
            match task.await.unwrap().unwrap() {
                FailureOutcome::Counted { failures } => counted.push(failures),
                FailureOutcome::LockStarted { .. } => started += 1,
                FailureOutcome::AlreadyLocked { .. } => already += 1,
            }
        }
        counted.sort_unstable();
        assert_eq!(counted, vec![1, 2, 3, 4], "{name}");
        assert_eq!(started, 1, "{name}: exactly one caller starts the lock (and alerts)");
        assert_eq!(already, 7, "{name}");
    }
}

fn factor(user_id: &UserId, id: &str, created: i64) -> FactorRecord {
    FactorRecord {
        user_id: user_id.clone(),
        factor_id: id.into(),
        kind: FactorKind::Phone { e164: "+15551234567".into(), delivery: Delivery::Sms },
        status: FactorStatus::Active,
        created_at: T0.plus_secs(created),
    }
}

#[tokio::test]
async fn factors_are_listed_per_user_oldest_first_and_created_once() {
    for (name, stores) in all_stores().await {
        let alice = UserId::parse(&unique("alice")).unwrap();
        let bob = UserId::parse(&unique("bob")).unwrap();
        let totp = FactorRecord {
            user_id: alice.clone(),
            factor_id: "f_a".into(),
            kind: FactorKind::Totp { secret_ciphertext: "c2VjcmV0".into(), last_used_step: Some(7) },
            status: FactorStatus::Pending,
            created_at: T0.plus_secs(5),
        };
        let email = FactorRecord {
            user_id: alice.clone(),
            factor_id: "f_c".into(),
            kind: FactorKind::Email { address: "a@example.com".into() },
            status: FactorStatus::Active,
            created_at: T0.plus_secs(1),
        };
        stores.factors.create_factor(&factor(&alice, "f_b", 0)).await.unwrap();
        stores.factors.create_factor(&totp).await.unwrap();
        stores.factors.create_factor(&email).await.unwrap();
        stores.factors.create_factor(&factor(&bob, "f_b", 0)).await.unwrap();
        assert!(matches!(
            stores.factors.create_factor(&factor(&alice, "f_b", 9)).await,
            Err(StoreError::ConditionFailed)
        ));
        let listed = stores.factors.list_factors(&alice).await.unwrap();
        assert_eq!(listed, vec![factor(&alice, "f_b", 0), email, totp], "{name}");
        let none = UserId::parse(&unique("carol")).unwrap();
        assert!(stores.factors.list_factors(&none).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn challenges_expire_on_read_and_are_created_once() {
    for (name, stores) in all_stores().await {
        let record = ChallengeRecord {
            id_digest: unique("digest"),
            user_id: UserId::parse(&unique("u")).unwrap(),
            status: ChallengeStatus::MfaRequired,
            created_at: T0,
            expires_at: T0.plus_secs(600),
            sends: 2,
            wrong_tries: 1,
            password_change_required: true,
        };
        stores.challenges.create_challenge(&record).await.unwrap();
        assert!(matches!(
            stores.challenges.create_challenge(&record).await,
            Err(StoreError::ConditionFailed)
        ));
        let c = &stores.challenges;
        assert_eq!(c.get_challenge(&record.id_digest, T0.plus_secs(599)).await.unwrap(), Some(record.clone()), "{name}");
        assert_eq!(c.get_challenge(&record.id_digest, T0.plus_secs(600)).await.unwrap(), None, "{name}: expired at its TTL even if the item is still there");
        assert_eq!(c.get_challenge("no-such-digest", T0).await.unwrap(), None);
    }
}
