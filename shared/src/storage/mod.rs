//! Storage: one trait per aggregate, each with a DynamoDB adapter ([`dynamo`]) and an in-memory
//! adapter ([`memory`]). The same conformance suite (`shared/tests/conformance.rs`) runs against
//! both, so they cannot drift.
//!
//! Rules every adapter keeps:
//! - every create is conditional (an existing item is never overwritten: `ConditionFailed`);
//! - every read of an item with a lifetime checks its expiry against the caller's clock, since
//!   DynamoDB deletes expired TTL items lazily (up to days later; moto never does);
//! - counters change only by conditional updates, so concurrent requests cannot push them past
//!   their limit.

pub mod dynamo;
pub mod keys;
pub mod memory;

use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::UnixTime;
use crate::error::StoreError;
use crate::identity::UserId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    Inactive,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Inactive => "inactive",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "active" => Ok(UserStatus::Active),
            "inactive" => Ok(UserStatus::Inactive),
            other => Err(StoreError::Corrupt(format!("unknown user status {other:?}"))),
        }
    }
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user_id: UserId,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Argon2id PHC string; `None` until the user has set a password (invitation pending).
    pub password_hash: Option<String>,
    pub status: UserStatus,
    pub roles: Vec<String>,
    pub created_at: UnixTime,
    pub password_changed_at: Option<UnixTime>,
    pub last_sign_in_at: Option<UnixTime>,
    /// Set by an admin: the next sign-in must change the password after MFA.
    pub must_change_password: bool,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user; `ConditionFailed` if the user ID is taken.
    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    async fn get_user(&self, user_id: &UserId) -> Result<Option<UserRecord>, StoreError>;
    /// Replaces the password hash only if it is still `expected` (rehash on parameter upgrade
    /// must not overwrite a password changed in between): `ConditionFailed` otherwise.
    async fn replace_password_hash(
        &self,
        user_id: &UserId,
        expected: &str,
        new_hash: &str,
    ) -> Result<(), StoreError>;
}

/// Parameters of a failure counter with a lock (SPEC §2 lockout; per-IP throttling later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures that start a lock.
    pub threshold: u32,
    /// Length of a lock.
    pub lock_secs: i64,
    /// A run of failures is forgotten this long after its last failure.
    pub window_secs: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// The failure was counted; no lock yet.
    Counted { failures: u32 },
    /// This failure reached the threshold: a lock started now (exactly one caller sees this).
    LockStarted { until: UnixTime },
    /// A lock was already running.
    AlreadyLocked { until: UnixTime },
}

#[async_trait]
pub trait LockoutStore: Send + Sync {
    /// `Some(until)` while a lock runs for `key`.
    async fn locked_until(&self, key: &str, now: UnixTime) -> Result<Option<UnixTime>, StoreError>;
    /// Counts one failure for `key`, starting a lock when the threshold is reached.
    async fn record_failure(
        &self,
        key: &str,
        now: UnixTime,
        policy: LockoutPolicy,
    ) -> Result<FailureOutcome, StoreError>;
    /// Forgets the failures and any lock (completed sign-in, admin unlock).
    async fn clear(&self, key: &str) -> Result<(), StoreError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sms,
    Voice,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Sms => "sms",
            Delivery::Voice => "voice",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "sms" => Ok(Delivery::Sms),
            "voice" => Ok(Delivery::Voice),
            other => Err(StoreError::Corrupt(format!("unknown delivery {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactorKind {
    /// A phone number in E.164, with the delivery the user chose at enrolment.
    Phone { e164: String, delivery: Delivery },
    /// An authenticator app; the secret is stored encrypted with KMS.
    Totp { secret_ciphertext: String, last_used_step: Option<i64> },
    Email { address: String },
}

impl FactorKind {
    pub fn name(&self) -> &'static str {
        match self {
            FactorKind::Phone { .. } => "phone",
            FactorKind::Totp { .. } => "totp",
            FactorKind::Email { .. } => "email",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorStatus {
    /// Enrolled but not yet proven with a code.
    Pending,
    Active,
}

impl FactorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FactorStatus::Pending => "pending",
            FactorStatus::Active => "active",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(FactorStatus::Pending),
            "active" => Ok(FactorStatus::Active),
            other => Err(StoreError::Corrupt(format!("unknown factor status {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorRecord {
    pub user_id: UserId,
    pub factor_id: String,
    pub kind: FactorKind,
    pub status: FactorStatus,
    pub created_at: UnixTime,
}

#[async_trait]
pub trait FactorStore: Send + Sync {
    /// Creates a factor; `ConditionFailed` if the id is taken.
    async fn create_factor(&self, factor: &FactorRecord) -> Result<(), StoreError>;
    /// All factors of a user (pending and active), oldest first.
    async fn list_factors(&self, user_id: &UserId) -> Result<Vec<FactorRecord>, StoreError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeStatus {
    MfaRequired,
    MfaEnrolmentRequired,
    PasswordChangeRequired,
}

impl ChallengeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeStatus::MfaRequired => "mfa_required",
            ChallengeStatus::MfaEnrolmentRequired => "mfa_enrolment_required",
            ChallengeStatus::PasswordChangeRequired => "password_change_required",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "mfa_required" => Ok(ChallengeStatus::MfaRequired),
            "mfa_enrolment_required" => Ok(ChallengeStatus::MfaEnrolmentRequired),
            "password_change_required" => Ok(ChallengeStatus::PasswordChangeRequired),
            other => Err(StoreError::Corrupt(format!("unknown challenge status {other:?}"))),
        }
    }
}

/// A sign-in (or step-up) challenge. Stored under the SHA-256 of its id: the id is a bearer
/// secret for the next steps, so a table read does not hand it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRecord {
    pub id_digest: String,
    pub user_id: UserId,
    pub status: ChallengeStatus,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    /// Codes sent for this challenge (SPEC §3: at most 5).
    pub sends: u32,
    /// Wrong codes tried (SPEC §3: the 5th ends the challenge).
    pub wrong_tries: u32,
    /// Whether the user must change the password after MFA.
    pub password_change_required: bool,
}

#[async_trait]
pub trait ChallengeStore: Send + Sync {
    /// Creates a challenge; `ConditionFailed` if the digest is taken.
    async fn create_challenge(&self, challenge: &ChallengeRecord) -> Result<(), StoreError>;
    /// The challenge, unless it is missing or expired at `now`.
    async fn get_challenge(
        &self,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<Option<ChallengeRecord>, StoreError>;
}

/// The stores a function is given. Each function uses only the ones its IAM policy allows.
#[derive(Clone)]
pub struct Stores {
    pub users: Arc<dyn UserStore>,
    pub lockouts: Arc<dyn LockoutStore>,
    pub factors: Arc<dyn FactorStore>,
    pub challenges: Arc<dyn ChallengeStore>,
}

impl Stores {
    /// All stores on one DynamoDB table.
    pub fn dynamo(client: aws_sdk_dynamodb::Client, table: &str) -> Self {
        let store = Arc::new(dynamo::DynamoStore::new(client, table));
        Stores {
            users: store.clone(),
            lockouts: store.clone(),
            factors: store.clone(),
            challenges: store,
        }
    }

    /// All stores in memory (unit and handler tests, benchmarks of in-process cost).
    pub fn memory() -> Self {
        let store = Arc::new(memory::MemoryStore::default());
        Stores {
            users: store.clone(),
            lockouts: store.clone(),
            factors: store.clone(),
            challenges: store,
        }
    }
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stores")
    }
}
