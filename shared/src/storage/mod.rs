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

pub use crate::challenge::Stage;
use crate::clock::UnixTime;
use crate::error::StoreError;
use crate::identity::UserId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
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
            other => Err(StoreError::Corrupt(format!(
                "unknown user status {other:?}"
            ))),
        }
    }
}

/// A user account. `Debug` never shows the hashes (offline guessing needs only those) nor
/// the address and number.
#[derive(Clone, PartialEq, Eq)]
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
    /// PHC hashes of the previous passwords, newest first (SPEC §7: not one of the last 5).
    pub password_history: Vec<String>,
    /// Raised by every password change or reset and every MFA reset. Sign-in challenges and
    /// reset links remember the value they were made under and are ended when it has moved
    /// (SPEC §12: stale challenges).
    pub security_stamp: u64,
}

debug_redacting!(UserRecord {
    user_id, status, roles, created_at, password_changed_at, last_sign_in_at,
    must_change_password, security_stamp;
    email, phone, password_hash, password_history
});

impl UserRecord {
    /// A new active user, created at `now`: no sign-in yet, no history, stamp 0. With a
    /// `password_hash` (the operator CLI) the password dates from `now`; without one (an
    /// invitation) the first is set by accepting it.
    pub fn new_active(
        user_id: UserId,
        email: Option<String>,
        phone: Option<String>,
        roles: Vec<String>,
        password_hash: Option<String>,
        now: UnixTime,
    ) -> Self {
        Self {
            user_id,
            email,
            phone,
            password_changed_at: password_hash.as_ref().map(|_| now),
            password_hash,
            status: UserStatus::Active,
            roles,
            created_at: now,
            last_sign_in_at: None,
            must_change_password: false,
            password_history: vec![],
            security_stamp: 0,
        }
    }
}

/// A user's credentials as a caller read them: what [`UserStore::set_password`] writes over
/// only if it finds them unchanged.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AsRead<'a> {
    /// The current hash, `None` for a user who has none yet (invitation pending).
    pub password_hash: Option<&'a str>,
    pub security_stamp: u64,
}

impl<'a> AsRead<'a> {
    /// `user`'s hash and stamp, as read.
    pub fn of(user: &'a UserRecord) -> Self {
        Self {
            password_hash: user.password_hash.as_deref(),
            security_stamp: user.security_stamp,
        }
    }
}

impl std::fmt::Debug for AsRead<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsRead")
            .field("password_hash", &self.password_hash.map(|_| "<redacted>"))
            .field("security_stamp", &self.security_stamp)
            .finish()
    }
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user; `ConditionFailed` if the user ID is taken.
    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    async fn get_user(&self, user_id: &UserId) -> Result<Option<UserRecord>, StoreError>;
    /// Records a completed sign-in (for the inactive-ID sweep).
    async fn record_sign_in(&self, user_id: &UserId, at: UnixTime) -> Result<(), StoreError>;
    /// Sets a new password: `new_hash` becomes current, `history` the previous ones, the
    /// forced-change flag is cleared and the security stamp raised (ending open sign-in
    /// challenges and reset links). Only if the stored hash and stamp are still as `expected`
    /// (a concurrent change wins once, and an MFA reset or another credential change between
    /// the caller's read and this write stops it): `ConditionFailed` otherwise.
    async fn set_password(
        &self,
        user_id: &UserId,
        expected: AsRead<'_>,
        new_hash: &str,
        history: &[String],
        at: UnixTime,
    ) -> Result<(), StoreError>;
    /// An admin's flag: the next sign-in must change the password after MFA.
    async fn set_must_change_password(&self, user_id: &UserId) -> Result<(), StoreError>;
    /// Raises the security stamp: every open sign-in challenge and reset link ends.
    async fn raise_security_stamp(&self, user_id: &UserId) -> Result<(), StoreError>;
    /// Active ↔ inactive; `ConditionFailed` if the user does not exist.
    async fn set_status(&self, user_id: &UserId, status: UserStatus) -> Result<(), StoreError>;
    /// Replaces the user's roles, only if they are still `expected` (as read): a grant and a
    /// removal at once cannot undo each other. `ConditionFailed` if the roles have changed or
    /// the user does not exist. A first role (`expected` empty, `roles` not) raises the
    /// security stamp in the same write: the user becomes staff and every sign-in, session and
    /// reset link made under a non-staff's rules ends at once, with no window and no second
    /// write that could fail after the first.
    async fn set_roles(
        &self,
        user_id: &UserId,
        expected: &[String],
        roles: &[String],
    ) -> Result<(), StoreError>;
    /// Deactivates the user only if they have not signed in since `cutoff` (nor been created
    /// since), raising the security stamp with it (open challenges and reset links end):
    /// `true` if this call deactivated them.
    async fn deactivate_if_idle(
        &self,
        user_id: &UserId,
        cutoff: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Users whose ID or email starts with `prefix` (already lower-case), at most `limit`,
    /// ordered by user ID (the admins' search).
    async fn search_users(&self, prefix: &str, limit: usize)
    -> Result<Vec<UserRecord>, StoreError>;
    /// Every user, in pages (the inactive-ID sweep). `cursor` is opaque.
    async fn list_users(
        &self,
        cursor: Option<String>,
    ) -> Result<(Vec<UserRecord>, Option<String>), StoreError>;
    /// Replaces the password hash only if it is still `expected` (rehash on parameter upgrade
    /// must not overwrite a password changed in between): `ConditionFailed` otherwise.
    async fn replace_password_hash(
        &self,
        user_id: &UserId,
        expected: &str,
        new_hash: &str,
    ) -> Result<(), StoreError>;
}

pub use crate::limits::{Counter, FailureOutcome, LockoutPolicy};

/// What a counted limit is about (every counter key is built from one of these, in
/// [`keys::counter`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterKey<'a> {
    /// Failed passwords of a (normalised) user ID, whether or not the user exists (SPEC §2).
    Password(&'a UserId),
    /// Failed sign-ins from one source IP (SPEC §8).
    SourceIp(&'a str),
    /// Second-factor answers of a user not followed by a success (SPEC §12).
    SecondFactor(&'a UserId),
    /// The 30-minute bar after a challenge's last send (SPEC §3).
    SendBar(&'a UserId),
    /// Texts and calls of a user in the rolling hour and day (SPEC §12).
    Sends(&'a UserId),
    /// Reset emails of a user in the last hour.
    ResetEmails(&'a UserId),
}

/// A counter with the version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub counter: Counter,
    pub version: u64,
}

/// Counted limits: small records that change only by compare-and-swap. The rules that decide
/// each next value are pure functions ([`crate::limits`]); `service::limits` reads, applies a
/// rule and writes conditionally, retrying when another request wrote first.
#[async_trait]
pub trait CounterStore: Send + Sync {
    /// The counter unless it is absent or expired at `now`.
    async fn read_counter(
        &self,
        key: CounterKey<'_>,
        now: UnixTime,
    ) -> Result<Option<Versioned>, StoreError>;
    /// Writes `next` (or deletes the counter, for `None`) only if the stored counter is still
    /// the one read: version `seen`, or absent/expired for `None`. [`Swapped::Lost`] if another
    /// write won; else the counter as now stored, with its new version (so a request that goes
    /// on to change the same counter again need not read it back).
    async fn swap_counter(
        &self,
        key: CounterKey<'_>,
        now: UnixTime,
        seen: Option<u64>,
        next: Option<&Counter>,
    ) -> Result<Swapped, StoreError>;
    /// Forgets the counter (a completed sign-in or second factor, an admin unlock).
    async fn clear_counter(&self, key: CounterKey<'_>) -> Result<(), StoreError>;
}

/// What a [`CounterStore::swap_counter`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swapped {
    /// Another write came first: nothing was written.
    Lost,
    /// Written: the counter as stored now (`None`: deleted).
    Won(Option<Versioned>),
}

impl Swapped {
    pub fn won(&self) -> bool {
        matches!(self, Swapped::Won(_))
    }
}

/// The version a swap gives the counter it writes: one more than the version it replaced, or,
/// where there was none (absent, or expired and not yet deleted by the TTL sweep), a random one
/// — never a number a deleted record had, so a request holding a stale read of a counter that
/// was deleted and created again cannot win a swap (no ABA).
pub fn next_counter_version(seen: Option<u64>) -> u64 {
    seen.map_or_else(|| rand::random::<u64>() >> 2, |v| v.wrapping_add(1))
}

/// Rounds of read-then-conditional-write before a contended counter gives up (each lost
/// round waits a random few milliseconds, growing with the round, so that contenders spread
/// out). Every round has a winner, so N concurrent updates of one counter need at most N
/// rounds: 20 covers 10 concurrent sends (measured on DynamoDB Local, where 8 rounds without
/// a pause failed) with room. Beyond it the caller gets a 503, never a skipped count.
pub const MAX_COUNTER_ROUNDS: usize = 20;

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

/// `Debug` leaves out the number, the address and the sealed seed.
#[derive(Clone, PartialEq, Eq)]
pub enum FactorKind {
    /// A phone number in E.164, with the delivery the user chose at enrolment.
    Phone {
        e164: String,
        delivery: Delivery,
    },
    /// An authenticator app; the secret is stored encrypted with KMS.
    Totp {
        secret_ciphertext: String,
        last_used_step: Option<i64>,
    },
    Email {
        address: String,
    },
    /// A WebAuthn passkey (SPEC §13). While pending, the registration ceremony lives in the
    /// enrolment's challenge ([`ChallengeRecord::ceremony`]) and `credential` is `None`.
    Passkey {
        /// The name its owner gave it.
        name: String,
        /// The serialised [`crate::passkey::PasskeyCredential`] once registered (public key,
        /// counter, flags: nothing secret).
        credential: Option<String>,
        /// The credential's signature counter, kept beside it so a write can be conditional
        /// on it (0 for authenticators that do not count).
        sign_count: u32,
        /// The last successful assertion.
        last_used_at: Option<UnixTime>,
    },
}

impl std::fmt::Debug for FactorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FactorKind::Phone { delivery, .. } => f
                .debug_struct("Phone")
                .field("e164", &"<redacted>")
                .field("delivery", delivery)
                .finish(),
            FactorKind::Totp { last_used_step, .. } => f
                .debug_struct("Totp")
                .field("secret_ciphertext", &"<redacted>")
                .field("last_used_step", last_used_step)
                .finish(),
            FactorKind::Email { .. } => f
                .debug_struct("Email")
                .field("address", &"<redacted>")
                .finish(),
            FactorKind::Passkey {
                name,
                credential,
                sign_count,
                last_used_at,
            } => f
                .debug_struct("Passkey")
                .field("name", name)
                .field("credential", &credential.as_ref().map(|_| "<registered>"))
                .field("sign_count", sign_count)
                .field("last_used_at", last_used_at)
                .finish(),
        }
    }
}

impl FactorKind {
    pub fn name(&self) -> &'static str {
        match self {
            FactorKind::Phone { .. } => "phone",
            FactorKind::Totp { .. } => "totp",
            FactorKind::Email { .. } => "email",
            FactorKind::Passkey { .. } => "passkey",
        }
    }
}

/// Where a registered passkey's credential ID points: its owner and factor. Credential IDs are
/// unique across users (the record is created with a conditional write, with the activation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyOwner {
    pub user_id: UserId,
    pub factor_id: String,
}

/// A passkey as registered: its credential ID (digest), the serialised credential and its
/// counter at registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredPasskey<'a> {
    pub credential_digest: &'a str,
    pub credential: &'a str,
    pub sign_count: u32,
}

/// A passkey's state after an accepted assertion, written only if the counter has not moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyUse<'a> {
    /// The counter the assertion was checked against.
    pub expected_count: u32,
    pub new_count: u32,
    /// The serialised credential with its new counter and backup state.
    pub credential: &'a str,
    pub at: UnixTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
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
            other => Err(StoreError::Corrupt(format!(
                "unknown factor status {other:?}"
            ))),
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
    /// A pending phone that will replace this factor once its number is verified (SPEC §4:
    /// changing the number; the old one keeps working until then).
    pub replaces: Option<String>,
}

#[async_trait]
pub trait FactorStore: Send + Sync {
    /// Creates a factor; `ConditionFailed` if the id is taken.
    async fn create_factor(&self, factor: &FactorRecord) -> Result<(), StoreError>;
    /// All factors of a user (pending and active), oldest first.
    async fn list_factors(&self, user_id: &UserId) -> Result<Vec<FactorRecord>, StoreError>;
    async fn get_factor(
        &self,
        user_id: &UserId,
        factor_id: &str,
    ) -> Result<Option<FactorRecord>, StoreError>;
    /// Pending → active, once: `ConditionFailed` if it is not pending (or does not exist).
    async fn activate_factor(&self, user_id: &UserId, factor_id: &str) -> Result<(), StoreError>;
    /// Records the TOTP time step just accepted, only if it is later than the last one:
    /// `false` means the code was already used (SPEC §4: never accepted twice).
    async fn use_totp_step(
        &self,
        user_id: &UserId,
        factor_id: &str,
        step: i64,
    ) -> Result<bool, StoreError>;
    /// Removes a factor (a passkey with its credential-ID record); `false` if there was none.
    async fn delete_factor(&self, user_id: &UserId, factor_id: &str) -> Result<bool, StoreError>;
    /// A pending passkey becomes active with its credential, and its credential ID (digest)
    /// is claimed for it, in one transaction: `ConditionFailed` if the factor is not a pending
    /// passkey or the credential ID is registered already (to anyone).
    async fn activate_passkey(
        &self,
        user_id: &UserId,
        factor_id: &str,
        registered: &RegisteredPasskey<'_>,
    ) -> Result<(), StoreError>;
    /// The owner of a registered credential ID (by its digest).
    async fn find_passkey(
        &self,
        credential_digest: &str,
    ) -> Result<Option<PasskeyOwner>, StoreError>;
    /// Writes a passkey's new counter, flags and last use, only while its stored counter is
    /// still `expected_count`: `false` if a concurrent assertion counted first.
    async fn record_passkey_use(
        &self,
        user_id: &UserId,
        factor_id: &str,
        used: &PasskeyUse<'_>,
    ) -> Result<bool, StoreError>;
    /// Renames a passkey; `false` if there is no passkey with this id.
    async fn rename_passkey(
        &self,
        user_id: &UserId,
        factor_id: &str,
        name: &str,
    ) -> Result<bool, StoreError>;
}

/// The one live code of a challenge: only its MAC is stored. A resend replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCode {
    /// Hex HMAC-SHA-256 (KMS key) of the code bound to the challenge.
    pub mac: String,
    pub expires_at: UnixTime,
    /// The factor the code was sent to.
    pub factor_id: String,
    /// `sms`, `voice` or `email`.
    pub channel: String,
}

/// A sign-in, step-up or enrolment challenge. Stored under the SHA-256 of its id: the id is a
/// bearer secret for the next steps, so a table read does not hand it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRecord {
    pub id_digest: String,
    pub user_id: UserId,
    /// What the challenge is for and what it waits for.
    pub stage: Stage,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    /// Codes sent for this challenge (SPEC §3: at most 5).
    pub sends: u32,
    /// Codes tried (counted before each comparison; SPEC §3: at most 5 wrong).
    pub attempts: u32,
    pub code: Option<PendingCode>,
    /// Set once, by the one request that completed the challenge.
    pub completed_at: Option<UnixTime>,
    /// Sign-in: the user's security stamp when the challenge opened; a different stamp now
    /// means a password change, reset or MFA reset happened since, and the challenge is over.
    pub user_stamp: u64,
    /// The server side of this challenge's passkey ceremony (serialised; **secret**: it holds
    /// the WebAuthn challenge). Taken once by [`ChallengeStore::take_ceremony`].
    pub ceremony: Option<crate::crypto::SecretString>,
}

impl ChallengeRecord {
    /// A challenge at `stage` opened at `now` for `ttl_secs`: no send, try, code or ceremony
    /// yet, not completed, stamp 0 (set what differs with `..`).
    pub fn opened(
        id_digest: String,
        user_id: UserId,
        stage: Stage,
        now: UnixTime,
        ttl_secs: i64,
    ) -> ChallengeRecord {
        ChallengeRecord {
            id_digest,
            user_id,
            stage,
            created_at: now,
            expires_at: now.plus_secs(ttl_secs),
            sends: 0,
            attempts: 0,
            code: None,
            completed_at: None,
            user_stamp: 0,
            ceremony: None,
        }
    }
}

/// The outcome of asking for a send slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendSlot {
    /// The code is stored; `sends` now counts this send.
    Reserved { sends: u32 },
    /// The challenge already had its maximum of sends.
    LimitReached,
    /// Expired, completed or unknown.
    Gone,
}

/// The outcome of asking to try a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptSlot {
    /// The attempt is counted; the challenge as it is now.
    Reserved(Box<ChallengeRecord>),
    /// No tries left.
    Exhausted,
    /// Expired, completed or unknown.
    Gone,
}

#[async_trait]
pub trait ChallengeStore: Send + Sync {
    /// Creates a challenge; `ConditionFailed` if the digest is taken.
    async fn create_challenge(&self, challenge: &ChallengeRecord) -> Result<(), StoreError>;
    /// The challenge, unless it is missing or expired at `now` (completed ones are returned).
    async fn get_challenge(
        &self,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<Option<ChallengeRecord>, StoreError>;
    /// Stores a new code and counts a send, in one conditional write: never past `max_sends`.
    async fn store_code(
        &self,
        id_digest: &str,
        now: UnixTime,
        max_sends: u32,
        code: &PendingCode,
    ) -> Result<SendSlot, StoreError>;
    /// Undoes [`ChallengeStore::store_code`] after the provider failed: the send is not counted
    /// and the code is gone (only if it is still the code with this MAC).
    async fn release_code(&self, id_digest: &str, mac: &str) -> Result<(), StoreError>;
    /// Counts one attempt before a code is compared; never past `max_attempts`.
    async fn reserve_attempt(
        &self,
        id_digest: &str,
        now: UnixTime,
        max_attempts: u32,
    ) -> Result<AttemptSlot, StoreError>;
    /// Marks the challenge completed, once: `true` for the one caller that won. With
    /// `expected_mac`, only while that code is still the live one.
    async fn complete_challenge(
        &self,
        id_digest: &str,
        now: UnixTime,
        expected_mac: Option<&str>,
    ) -> Result<bool, StoreError>;
    async fn delete_challenge(&self, id_digest: &str) -> Result<(), StoreError>;
    /// Sets (or replaces) the passkey ceremony of a live, open challenge; `false` if it is gone.
    async fn put_ceremony(
        &self,
        id_digest: &str,
        now: UnixTime,
        ceremony: &crate::crypto::SecretString,
    ) -> Result<bool, StoreError>;
    /// Removes and returns the passkey ceremony of a live, open challenge: of concurrent
    /// callers exactly one gets it (single use); `None` if there is none.
    async fn take_ceremony(
        &self,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<Option<crate::crypto::SecretString>, StoreError>;
}

/// The name of the access-token signing keys' record.
pub const TOKEN_SIGNING_KEYS: &str = "token-signing";

/// The access-token signing keys of the envelope mode (SPEC §6): the current key, whose private
/// part is stored only sealed under the KMS data key, and the previous one's public part, still
/// published and accepted while tokens it signed may live. One record, replaced whole by a
/// rotation, conditionally on the version it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeys {
    /// 1 for the first key, one more at each rotation.
    pub version: u64,
    pub current_kid: String,
    /// The public key: base64url of the uncompressed SEC1 point.
    pub current_public: String,
    /// The private scalar, sealed by KMS (encryption context: purpose and kid).
    pub current_sealed: String,
    pub created_at: UnixTime,
    pub previous_kid: Option<String>,
    pub previous_public: Option<String>,
}

/// The name of the one-time-code MAC keys' record.
pub const CODE_MAC_KEYS: &str = "code-mac";

/// The one-time-code MAC keys of the envelope mode ([`crate::code_keys`]): the current HMAC key
/// and the previous one, each stored only sealed under the KMS data key (encryption context
/// `purpose=code-mac, kid`). The previous key stays until the next rotation so codes sent
/// before a rotation still verify. One record, replaced whole by a rotation, conditionally on
/// the version it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacKeys {
    /// 1 for the first key, one more at each rotation.
    pub version: u64,
    pub current_kid: String,
    pub current_sealed: String,
    pub created_at: UnixTime,
    pub previous_kid: Option<String>,
    pub previous_sealed: Option<String>,
}

/// Key records are named: production uses [`TOKEN_SIGNING_KEYS`] and [`CODE_MAC_KEYS`]; tests
/// use names of their own.
#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn get_signing_keys(&self, name: &str) -> Result<Option<SigningKeys>, StoreError>;
    /// Writes `keys` if the stored record is still at `expected_version` (`None`: no record
    /// yet); `ConditionFailed` if another rotation came first.
    async fn put_signing_keys(
        &self,
        name: &str,
        keys: &SigningKeys,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError>;
    async fn get_mac_keys(&self, name: &str) -> Result<Option<MacKeys>, StoreError>;
    /// As [`KeyStore::put_signing_keys`], for a MAC key record.
    async fn put_mac_keys(
        &self,
        name: &str,
        keys: &MacKeys,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError>;
}

/// A signed-in session. The refresh token is `<user>.<session>.<secret>`; only the SHA-256 of
/// the current secret is kept, with the digests of rotated ones to detect reuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub user_id: UserId,
    pub session_id: String,
    pub created_at: UnixTime,
    /// When the user last proved themselves (sign-in with MFA or step-up).
    pub auth_time: UnixTime,
    pub amr: Vec<String>,
    pub acr: String,
    pub refresh_digest: String,
    pub rotated: Vec<String>,
    pub last_refresh_at: UnixTime,
    /// Absolute limit (SPEC §6: 12 hours after sign-in).
    pub expires_at: UnixTime,
    /// Inactivity limit (SPEC §6: 15 minutes after the last refresh).
    pub idle_expires_at: UnixTime,
    pub revoked: bool,
    /// The user's security stamp when the session was opened (or, for the session that made a
    /// password change, after it): a refresh refuses the session once the user's stamp has
    /// moved, so a session that escaped a revocation (a write still in flight after the
    /// listing) ends at its next refresh rather than at its 12-hour limit. `None` for a session
    /// written before sessions recorded it (an upgrade does not sign everyone out: such a
    /// session is not compared, and is gone within its 12 hours).
    pub user_stamp: Option<u64>,
}

impl SessionRecord {
    /// Opened under an earlier security stamp than `user`'s now (a credential change since):
    /// never for a session that recorded none.
    pub fn is_older_than(&self, user: &UserRecord) -> bool {
        self.user_stamp
            .is_some_and(|stamp| stamp != user.security_stamp)
    }
}

/// One refresh of a session: the presented refresh digest is replaced by the new one, at
/// `now`, with the idle expiry pushed to `idle_expires_at`.
#[derive(Debug, Clone, Copy)]
pub struct Rotation<'a> {
    pub old_digest: &'a str,
    pub new_digest: &'a str,
    pub now: UnixTime,
    pub idle_expires_at: UnixTime,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    async fn get_session(
        &self,
        user_id: &UserId,
        session_id: &str,
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// Replaces the refresh digest, once: `true` for the caller that won; `false` if the
    /// presented digest is no longer current or the session is revoked.
    async fn rotate_refresh(
        &self,
        user_id: &UserId,
        session_id: &str,
        rotation: Rotation<'_>,
    ) -> Result<bool, StoreError>;
    async fn revoke_session(&self, user_id: &UserId, session_id: &str) -> Result<(), StoreError>;
    /// Moves a live session's `user_stamp` from `from` to `to` (the session that changed the
    /// password keeps working): `false` if it is revoked, missing, not at `from`, or has no
    /// stamp (it is not compared at refresh anyway).
    async fn restamp_session(
        &self,
        user_id: &UserId,
        session_id: &str,
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError>;
    async fn list_sessions(&self, user_id: &UserId) -> Result<Vec<SessionRecord>, StoreError>;
    /// Records a fresh proof (step-up): new `auth_time`, `amr` and `acr`.
    async fn elevate_session(
        &self,
        user_id: &UserId,
        session_id: &str,
        auth_time: UnixTime,
        amr: &[String],
        acr: &str,
    ) -> Result<(), StoreError>;
}

/// One attempt to deliver a message (never its content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub user_id: UserId,
    pub delivery_id: String,
    pub at: UnixTime,
    pub channel: String,
    pub provider: String,
    pub provider_message_id: Option<String>,
    /// `sent` or `failed`.
    pub outcome: String,
    pub purpose: String,
    /// Where it went, masked (`***-***-0143`).
    pub to_masked: String,
    pub expires_at: UnixTime,
}

#[async_trait]
pub trait DeliveryStore: Send + Sync {
    async fn record_delivery(&self, delivery: &DeliveryRecord) -> Result<(), StoreError>;
    /// Newest first.
    async fn list_deliveries(
        &self,
        user_id: &UserId,
        now: UnixTime,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
}

/// A password-reset link: only the token's SHA-256 is stored; single use; 30 minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetRecord {
    pub token_digest: String,
    pub user_id: UserId,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    /// The user's security stamp when the link was made (see [`UserRecord::security_stamp`]).
    pub user_stamp: u64,
}

#[async_trait]
pub trait ResetStore: Send + Sync {
    async fn create_reset(&self, reset: &ResetRecord) -> Result<(), StoreError>;
    /// Consumes the reset (deletes it) and returns it, once, if it has not expired.
    async fn take_reset(
        &self,
        token_digest: &str,
        now: UnixTime,
    ) -> Result<Option<ResetRecord>, StoreError>;
}

/// One security event (SPEC §8), append-only: written with a create-only condition, never
/// updated or deleted by the functions (their IAM policies grant no such action on it); kept
/// for the retention setting by TTL.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEvent {
    #[serde(rename = "user_id")]
    pub subject: UserId,
    pub event_id: String,
    pub at: UnixTime,
    /// `sign_in_succeeded`, `sign_in_failed`, `lock_started`, `code_sent`, `factor_added`, …
    pub kind: String,
    /// Who acted: `self`, an admin's user ID, `operator` (the operator CLI) or `system`.
    pub actor: String,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// `success`, `failure` or `flagged`.
    pub outcome: String,
    pub detail: Option<String>,
    #[serde(skip)]
    pub expires_at: UnixTime,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an event (create-only).
    async fn append_event(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// The user's events, newest first (at most `limit`).
    async fn list_events(
        &self,
        user_id: &UserId,
        now: UnixTime,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError>;
    /// Records that the user signed in from `fingerprint`; `true` the first time (a new device).
    async fn first_sighting(
        &self,
        user_id: &UserId,
        fingerprint: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
}

/// An on-boarding invitation: only the token's SHA-256 is stored; single use; 72 hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRecord {
    pub token_digest: String,
    pub user_id: UserId,
    pub invited_by: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// What a two-admin request asks for (SPEC §8, §12, §14): filed by one admin, carried out only
/// when a different admin approves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    /// Remove the user's factors, recovery codes, devices and sessions.
    MfaReset,
    /// Invite a user who will have the `admin` role.
    AdminInvitation,
    /// Grant a privileged role to an existing user.
    RoleGrant,
    /// Take a privileged role away from another admin.
    RoleRevocation,
    /// Deactivate another admin.
    AdminDeactivation,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::MfaReset => "mfa_reset",
            RequestKind::AdminInvitation => "admin_invitation",
            RequestKind::RoleGrant => "role_grant",
            RequestKind::RoleRevocation => "role_revocation",
            RequestKind::AdminDeactivation => "admin_deactivation",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "mfa_reset" => Ok(RequestKind::MfaReset),
            "admin_invitation" => Ok(RequestKind::AdminInvitation),
            "role_grant" => Ok(RequestKind::RoleGrant),
            "role_revocation" => Ok(RequestKind::RoleRevocation),
            "admin_deactivation" => Ok(RequestKind::AdminDeactivation),
            other => Err(StoreError::Corrupt(format!(
                "unknown request kind {other:?}"
            ))),
        }
    }
}

/// A two-admin request. Single use: approving is one conditional write that only an admin
/// other than the requester and the subject can win, before expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRequest {
    pub request_id: String,
    pub kind: RequestKind,
    /// Whom it is about.
    pub user_id: UserId,
    pub requested_by: String,
    pub reason: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub approved_by: Option<String>,
    pub approved_at: Option<UnixTime>,
    /// An admin invitation: where it goes and what the new user gets.
    pub email: Option<String>,
    pub phone: Option<String>,
    /// An invitation's roles, or the one role granted or revoked.
    pub roles: Vec<String>,
}

#[async_trait]
pub trait AdminStore: Send + Sync {
    async fn create_invitation(&self, invitation: &InvitationRecord) -> Result<(), StoreError>;
    /// Consumes the invitation, once, if it has not expired.
    async fn take_invitation(
        &self,
        token_digest: &str,
        now: UnixTime,
    ) -> Result<Option<InvitationRecord>, StoreError>;
    /// Files a request (create-only).
    async fn create_request(&self, request: &AdminRequest) -> Result<(), StoreError>;
    async fn get_request(
        &self,
        request_id: &str,
        now: UnixTime,
    ) -> Result<Option<AdminRequest>, StoreError>;
    /// Every unexpired request, pending or approved, oldest first.
    async fn list_requests(&self, now: UnixTime) -> Result<Vec<AdminRequest>, StoreError>;
    /// Approves, once, by someone who is neither the requester nor the subject, before expiry:
    /// `true` for the one caller that won.
    async fn approve_request(
        &self,
        request_id: &str,
        approver: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Takes an approval back when the approved action could not be carried out (a transient
    /// failure), so the request can be approved again.
    async fn withdraw_approval(&self, request_id: &str, approver: &str) -> Result<(), StoreError>;
}

/// One recovery code: found by a keyed tag (HMAC under the KMS code key, so a table dump does
/// not give an offline oracle), verified against a salted argon2id hash (ASVS 6.5.2: codes
/// under 112 bits of entropy get a slow salted hash), used once.
/// `Debug` leaves out the tag and the hash (an offline-guessing target, as a password's).
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCodeRecord {
    pub user_id: UserId,
    pub tag: String,
    pub hash: String,
    pub created_at: UnixTime,
    pub used_at: Option<UnixTime>,
}

debug_redacting!(RecoveryCodeRecord { user_id, created_at, used_at; tag, hash });

#[async_trait]
pub trait RecoveryStore: Send + Sync {
    /// Replaces the user's whole set in one transaction: the old codes stop working at once.
    async fn replace_recovery_codes(
        &self,
        user_id: &UserId,
        codes: &[RecoveryCodeRecord],
    ) -> Result<(), StoreError>;
    async fn get_recovery_code(
        &self,
        user_id: &UserId,
        tag: &str,
    ) -> Result<Option<RecoveryCodeRecord>, StoreError>;
    /// Marks a code used, once: `true` for the one caller that won.
    async fn use_recovery_code(
        &self,
        user_id: &UserId,
        tag: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Unused codes left.
    async fn remaining_recovery_codes(&self, user_id: &UserId) -> Result<u32, StoreError>;
}

/// A trusted device: the token's SHA-256, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub user_id: UserId,
    pub device_id: String,
    pub token_digest: String,
    pub name: String,
    pub created_at: UnixTime,
    pub last_used_at: UnixTime,
    pub expires_at: UnixTime,
}

#[async_trait]
pub trait DeviceStore: Send + Sync {
    async fn create_device(&self, device: &DeviceRecord) -> Result<(), StoreError>;
    /// The device unless missing or expired at `now` (expiry is enforced here, not by TTL).
    async fn get_device(
        &self,
        user_id: &UserId,
        device_id: &str,
        now: UnixTime,
    ) -> Result<Option<DeviceRecord>, StoreError>;
    /// Unexpired devices, oldest first.
    async fn list_devices(
        &self,
        user_id: &UserId,
        now: UnixTime,
    ) -> Result<Vec<DeviceRecord>, StoreError>;
    /// Marks the device used now, if it still exists, unexpired, with this token digest:
    /// `false` otherwise (removed or replaced since it was read). A trusted-device sign-in
    /// issues nothing unless this wins.
    async fn touch_device(
        &self,
        user_id: &UserId,
        device_id: &str,
        token_digest: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError>;
    /// `false` if there was none.
    async fn delete_device(&self, user_id: &UserId, device_id: &str) -> Result<bool, StoreError>;
    /// Removes every trusted device of the user; returns how many there were.
    async fn delete_all_devices(&self, user_id: &UserId) -> Result<u32, StoreError>;
}

/// The stores a function is given. Each function uses only the ones its IAM policy allows.
#[derive(Clone)]
pub struct Stores {
    pub keys: Arc<dyn KeyStore>,
    pub users: Arc<dyn UserStore>,
    pub counters: Arc<dyn CounterStore>,
    pub factors: Arc<dyn FactorStore>,
    pub challenges: Arc<dyn ChallengeStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub deliveries: Arc<dyn DeliveryStore>,
    pub recovery: Arc<dyn RecoveryStore>,
    pub devices: Arc<dyn DeviceStore>,
    pub resets: Arc<dyn ResetStore>,
    pub audit: Arc<dyn AuditStore>,
    pub admin: Arc<dyn AdminStore>,
}

impl Stores {
    /// All stores on one DynamoDB table (audit events included).
    pub fn dynamo(client: aws_sdk_dynamodb::Client, table: &str) -> Self {
        Self::dynamo_with_audit(client, table, table)
    }

    /// All stores on the main table, audit events on their append-only table.
    pub fn dynamo_with_audit(
        client: aws_sdk_dynamodb::Client,
        table: &str,
        audit_table: &str,
    ) -> Self {
        let store = Arc::new(dynamo::DynamoStore::new(client, table).with_audit_table(audit_table));
        Stores {
            keys: store.clone(),
            users: store.clone(),
            counters: store.clone(),
            factors: store.clone(),
            challenges: store.clone(),
            sessions: store.clone(),
            deliveries: store.clone(),
            recovery: store.clone(),
            devices: store.clone(),
            resets: store.clone(),
            audit: store.clone(),
            admin: store,
        }
    }

    /// All stores in memory (unit and handler tests, benchmarks of in-process cost).
    pub fn memory() -> Self {
        let store = Arc::new(memory::MemoryStore::default());
        Stores {
            keys: store.clone(),
            users: store.clone(),
            counters: store.clone(),
            factors: store.clone(),
            challenges: store.clone(),
            sessions: store.clone(),
            deliveries: store.clone(),
            recovery: store.clone(),
            devices: store.clone(),
            resets: store.clone(),
            audit: store.clone(),
            admin: store,
        }
    }
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stores")
    }
}
