//! Test support shared by the integration tests of this crate: the store adapters under test.
//!
//! The in-memory adapter always runs. The DynamoDB adapter runs when the emulator is configured
//! (`AWS_ENDPOINT_URL` and `PORTCULLIS_TABLE`, as `scripts/test.sh` sets them); with
//! `PORTCULLIS_REQUIRE_EMULATOR=1` (set by `scripts/test.sh` and CI) a missing emulator is a
//! failure, not a silent skip.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod passkeys;

use std::sync::Arc;

use portcullis::RequestMeta;
use portcullis::config::{Argon2Settings, Settings};
use portcullis::identity::UserId;
use portcullis::storage::{AsRead, Stores, UserRecord, UserStatus, UserStore};
use portcullis::{Clock, Deps, ManualClock, UnixTime};

/// Implements the store trait `$store` for `$wrapper` (a tuple struct over `Arc<dyn $store>`):
/// the methods in braces as written; those in `[hook] { … }` handed on after `self.hook(first
/// argument)` has run; each one listed after them handed on unchanged (the impl is whole, so
/// `async_trait` sees every method). For tests that change one call of a store.
#[macro_export]
macro_rules! wrap_store {
    ($store:ident for $wrapper:ty { $($own:tt)* }
     $([$hook:ident] { $($hooked:ident($first:ident: $first_ty:ty $(, $harg:ident: $hty:ty)*) -> $hout:ty;)* })?
     $($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        #[async_trait::async_trait]
        impl $store for $wrapper {
            $($own)*
            $($(async fn $hooked(&self, $first: $first_ty $(, $harg: $hty)*) -> Result<$hout, portcullis::error::StoreError> {
                self.$hook($first).await;
                self.0.$hooked($first $(, $harg)*).await
            })*)?
            $(async fn $name(&self, $($arg: $ty),*) -> Result<$out, portcullis::error::StoreError> {
                self.0.$name($($arg),*).await
            })*
        }
    };
}

/// What [`Meddled`] does to the user just before a write: a concurrent writer, on the inner
/// store.
pub type Meddle = fn(
    Arc<dyn portcullis::storage::UserStore>,
    portcullis::identity::UserId,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The user store, with its `Meddle` run just before each `set_password` and `set_roles`:
/// another writer landing between a service's read of the user and its write.
pub struct Meddled(pub Arc<dyn portcullis::storage::UserStore>, pub Meddle);

impl Meddled {
    async fn meddle(&self, user: &UserId) {
        (self.1)(self.0.clone(), user.clone()).await;
    }
}

crate::wrap_store! {
    UserStore for Meddled {}
    [meddle] {
        set_password(u: &UserId, expected: AsRead<'_>, hash: &str, history: &[String], at: UnixTime) -> ();
        set_roles(u: &UserId, expected: &[String], roles: &[String]) -> ();
    }
    create_user(r: &UserRecord) -> ();
    get_user(u: &UserId) -> Option<UserRecord>;
    record_sign_in(u: &UserId, at: UnixTime) -> ();
    set_must_change_password(u: &UserId) -> ();
    raise_security_stamp(u: &UserId) -> ();
    set_status(u: &UserId, s: UserStatus) -> ();
    deactivate_if_idle(u: &UserId, cutoff: UnixTime) -> bool;
    search_users(p: &str, limit: usize) -> Vec<UserRecord>;
    list_users(c: Option<String>) -> (Vec<UserRecord>, Option<String>);
    replace_password_hash(u: &UserId, expected: &str, new_hash: &str) -> ();
}

pub fn emulator_table() -> Option<String> {
    let configured = std::env::var("AWS_ENDPOINT_URL").is_ok();
    let table = std::env::var("PORTCULLIS_TABLE").ok();
    match (configured, table) {
        (true, Some(table)) => Some(table),
        _ => {
            assert!(
                std::env::var("PORTCULLIS_REQUIRE_EMULATOR").as_deref() != Ok("1"),
                "PORTCULLIS_REQUIRE_EMULATOR=1 but AWS_ENDPOINT_URL/PORTCULLIS_TABLE are not set"
            );
            eprintln!("note: no emulator configured; DynamoDB adapter not exercised in this run");
            None
        }
    }
}

pub async fn dynamo_client() -> aws_sdk_dynamodb::Client {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    aws_sdk_dynamodb::Client::new(&sdk)
}

/// `("memory", …)` always, `("dynamodb", …)` when the emulator is configured.
pub async fn all_stores() -> Vec<(&'static str, Stores)> {
    let mut stores = vec![("memory", Stores::memory())];
    if let Some(table) = emulator_table() {
        let audit = std::env::var("PORTCULLIS_AUDIT_TABLE").unwrap_or_else(|_| table.clone());
        stores.push((
            "dynamodb",
            Stores::dynamo_with_audit(dynamo_client().await, &table, &audit),
        ));
    }
    stores
}

/// A user ID no other test (or earlier run against the same table) uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        portcullis::crypto::random_id("t").to_lowercase()
    )
}

pub const T0: UnixTime = UnixTime(1_800_000_000);

/// Deps over each adapter, with a manual clock and cheap argon2 parameters.
pub async fn all_deps() -> Vec<(&'static str, Deps, Arc<ManualClock>)> {
    let mut out = Vec::new();
    for (name, stores) in all_stores().await {
        let clock = Arc::new(ManualClock::new(T0));
        let mut settings = Settings::defaults("unused");
        settings.argon2 = Argon2Settings::danger_cheap();
        let mut deps = Deps::in_memory(settings, clock.clone() as Arc<dyn Clock>).unwrap();
        // Codes are MACed as production's default mode does: under a key sealed in a record of
        // this adapter (`portcullis::code_keys`), opened in process.
        let record = unique("code-mac");
        portcullis::code_keys::rotate(
            stores.keys.as_ref(),
            &record,
            deps.sealer.as_ref(),
            T0,
            false,
        )
        .await
        .unwrap();
        deps.code_keys = Arc::new(portcullis::code_keys::CodeKeys::envelope(
            stores.keys.clone(),
            &record,
            deps.sealer.clone(),
            deps.mac.clone(),
        ));
        deps.stores = stores;
        out.push((name, deps, clock));
    }
    out
}

/// Deps over each adapter with a recording notifier on every channel.
pub async fn all_deps_with_notifier() -> Vec<(
    &'static str,
    Deps,
    Arc<ManualClock>,
    portcullis::notifier::RecordingNotifier,
)> {
    let mut out = Vec::new();
    for (name, mut deps, clock) in all_deps().await {
        let (registry, outbox) = portcullis::notifier::RecordingNotifier::registry();
        deps.notifiers = registry;
        out.push((name, deps, clock, outbox));
    }
    out
}

/// What [`all_deps_with_notifier`] gives, with a new user on each adapter.
pub type WithUser = (
    &'static str,
    Deps,
    Arc<ManualClock>,
    portcullis::notifier::RecordingNotifier,
    portcullis::identity::UserId,
);

/// [`all_deps_with_notifier`] with a new active user (ID made from `prefix`) on each adapter.
pub async fn all_deps_with_user(prefix: &str) -> Vec<WithUser> {
    let mut out = Vec::new();
    for (name, deps, clock, outbox) in all_deps_with_notifier().await {
        let user = create_user(&deps, &unique(prefix)).await;
        out.push((name, deps, clock, outbox, user));
    }
    out
}

/// [`all_deps_with_user`] where the user also has the standard phone ([`user_with_phone`]).
pub async fn all_deps_with_phoned_user(prefix: &str) -> Vec<WithUser> {
    let mut out = Vec::new();
    for (name, deps, clock, outbox, user) in all_deps_with_user(prefix).await {
        add_phone(&deps, &user, "+12025550143").await;
        out.push((name, deps, clock, outbox, user));
    }
    out
}

pub const PASSWORD: &str = "correct horse battery staple";

/// The record of an active user with the standard test password's `hash`, made at [`T0`].
pub fn user_record(
    user_id: &portcullis::identity::UserId,
    hash: String,
) -> portcullis::storage::UserRecord {
    use portcullis::storage::{UserRecord, UserStatus};
    UserRecord {
        user_id: user_id.clone(),
        email: Some("user@example.com".into()),
        phone: None,
        password_hash: Some(hash),
        status: UserStatus::Active,
        roles: vec![],
        created_at: T0,
        password_changed_at: Some(T0),
        last_sign_in_at: None,
        must_change_password: false,
        password_history: vec![],
        security_stamp: 0,
    }
}

/// Stores `record` as a new user.
pub async fn insert_user(deps: &Deps, record: &portcullis::storage::UserRecord) {
    deps.stores.users.create_user(record).await.unwrap();
}

/// Creates an active user with the standard test password.
pub async fn create_user(deps: &Deps, raw_id: &str) -> portcullis::identity::UserId {
    let id = portcullis::identity::UserId::parse(raw_id).unwrap();
    let hash = deps.hasher.hash(PASSWORD.as_bytes()).unwrap();
    insert_user(deps, &user_record(&id, hash)).await;
    id
}

/// Adds an active phone factor.
/// Sets the user's roles in the store, over the roles stored now (an admin's change, without
/// the admin).
pub async fn set_roles(deps: &Deps, user: &portcullis::identity::UserId, roles: &[&str]) {
    let now = stored_user(deps, user).await.roles;
    let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
    deps.stores
        .users
        .set_roles(user, &now, &roles)
        .await
        .unwrap();
}

pub async fn add_phone(deps: &Deps, user: &portcullis::identity::UserId, e164: &str) -> String {
    use portcullis::storage::{Delivery, FactorKind};
    let kind = FactorKind::Phone {
        e164: e164.into(),
        delivery: Delivery::Sms,
    };
    add_factor(deps, user, kind).await
}

/// An active factor of `kind`, written straight to the store; its ID.
pub async fn add_factor(
    deps: &Deps,
    user: &portcullis::identity::UserId,
    kind: portcullis::storage::FactorKind,
) -> String {
    use portcullis::storage::{FactorRecord, FactorStatus};
    let factor_id = portcullis::crypto::random_id("f");
    deps.stores
        .factors
        .create_factor(&FactorRecord {
            user_id: user.clone(),
            factor_id: factor_id.clone(),
            kind,
            status: FactorStatus::Active,
            created_at: T0,
            replaces: None,
        })
        .await
        .unwrap();
    factor_id
}

/// The password step with `password` for the user ID as typed, from a caller with `meta`.
pub async fn sign_in_from(
    deps: &Deps,
    user_id: &str,
    password: &str,
    meta: &RequestMeta,
) -> Result<portcullis::service::sign_in::SignInAnswer, portcullis::ApiError> {
    use portcullis::service::sign_in::{SignInRequest, sign_in};
    let request = SignInRequest {
        user_id: user_id.into(),
        password: portcullis::crypto::SecretString::new(password.into()),
    };
    sign_in(deps, request, meta).await
}

/// The password step with `password` for the user ID as typed (no caller details).
pub async fn sign_in_as(
    deps: &Deps,
    user_id: &str,
    password: &str,
) -> Result<portcullis::service::sign_in::SignInAnswer, portcullis::ApiError> {
    sign_in_from(deps, user_id, password, &RequestMeta::default()).await
}

/// The password step with the standard test password, which must succeed.
pub async fn password_answer(
    deps: &Deps,
    user: &portcullis::identity::UserId,
) -> portcullis::service::sign_in::SignInAnswer {
    sign_in_as(deps, user.as_str(), PASSWORD).await.unwrap()
}

/// A new active user (ID made from `prefix`) with an active phone, +1 202-555-0143.
pub async fn user_with_phone(deps: &Deps, prefix: &str) -> portcullis::identity::UserId {
    let user = create_user(deps, &unique(prefix)).await;
    add_phone(deps, &user, "+12025550143").await;
    user
}

/// Signs in with the password; returns the challenge id.
pub async fn password_step(deps: &Deps, user: &portcullis::identity::UserId) -> String {
    password_answer(deps, user)
        .await
        .challenge_id()
        .unwrap()
        .to_owned()
}

/// The challenge the password step opened, as the next step (a route under
/// `/v1/sign-in/{id}/…`) opens it.
pub async fn password_challenge(
    deps: &Deps,
    user: &portcullis::identity::UserId,
) -> portcullis::service::codes::SignInChallenge {
    portcullis::service::codes::open_sign_in(deps, &password_step(deps, user).await)
        .await
        .unwrap()
}

/// `codes::send_code` by `method` to the default factor, with no caller details.
pub async fn send_by(
    deps: &Deps,
    challenge: &portcullis::storage::ChallengeRecord,
    method: &str,
) -> Result<portcullis::service::codes::SendCodeAnswer, portcullis::ApiError> {
    let request = portcullis::service::codes::SendCodeRequest {
        method: method.into(),
        factor_id: None,
    };
    portcullis::service::codes::send_code(deps, challenge, &request, &RequestMeta::default()).await
}

/// The challenge stored under `id_digest`, which must be there.
pub async fn stored_challenge(
    deps: &Deps,
    id_digest: &str,
) -> portcullis::storage::ChallengeRecord {
    let now = deps.clock.now();
    let found = deps.stores.challenges.get_challenge(id_digest, now).await;
    found.unwrap().expect("the challenge is stored")
}

/// The token of the link in a message's text (`…token=<token> …`).
pub fn link_token(text: &str) -> String {
    let after = text
        .split("token=")
        .nth(1)
        .expect("the message carries a link");
    after.split_whitespace().next().unwrap().to_owned()
}

/// The 6-digit code in the last message sent.
pub fn last_code(outbox: &portcullis::notifier::RecordingNotifier) -> String {
    let message = outbox.sent().last().cloned().expect("a message was sent");
    message.code.expect("the message carries a code")
}

/// The password step and a right code by text: the proof `complete_sign_in` takes.
pub async fn sms_verified(
    deps: &Deps,
    user: &portcullis::identity::UserId,
    outbox: &portcullis::notifier::RecordingNotifier,
) -> portcullis::service::codes::Verified {
    let c = password_challenge(deps, user).await;
    send_by(deps, &c, "sms").await.unwrap();
    let code = portcullis::crypto::SecretString::new(last_code(outbox));
    answer_code(deps, &c, "sms", &code).await.unwrap()
}

/// A completed password + SMS sign-in: the caller (as every protected route sees it) and the
/// session's tokens.
pub async fn sms_sign_in(
    deps: &Deps,
    user: &portcullis::identity::UserId,
    outbox: &portcullis::notifier::RecordingNotifier,
) -> (
    portcullis::service::tokens::Caller,
    portcullis::service::tokens::Tokens,
) {
    let verified = sms_verified(deps, user, outbox).await;
    let tokens = portcullis::service::complete::complete_sign_in(
        deps,
        verified,
        None,
        &portcullis::RequestMeta::default(),
    )
    .await
    .unwrap()
    .into_tokens()
    .unwrap();
    (bearer(deps, &tokens.access_token).await.unwrap(), tokens)
}

/// `complete_sign_in` of a verified sign-in with no device trusted and no caller details.
pub async fn finish_sign_in(
    deps: &Deps,
    verified: portcullis::service::codes::Verified,
) -> portcullis::service::complete::SignedIn {
    let meta = RequestMeta::default();
    portcullis::service::complete::complete_sign_in(deps, verified, None, &meta)
        .await
        .unwrap()
}

/// The user's stored record, which must exist.
pub async fn stored_user(
    deps: &Deps,
    user: &portcullis::identity::UserId,
) -> portcullis::storage::UserRecord {
    let found = deps.stores.users.get_user(user).await.unwrap();
    found.expect("the user is stored")
}

/// What every protected route does with an access token.
pub async fn bearer(
    deps: &Deps,
    access_token: &str,
) -> Result<portcullis::service::tokens::Caller, portcullis::ApiError> {
    portcullis::service::tokens::authenticate(
        deps,
        Some(&format!("Bearer {access_token}")),
        &Default::default(),
    )
    .await
}

/// An admin with a phone, signed in with MFA just now (so elevated).
pub async fn signed_in_admin(
    deps: &Deps,
    outbox: &portcullis::notifier::RecordingNotifier,
    phone: &str,
) -> (
    portcullis::identity::UserId,
    portcullis::service::tokens::Caller,
) {
    let id = create_user(deps, &unique("adm")).await;
    set_roles(deps, &id, &["admin"]).await;
    add_phone(deps, &id, phone).await;
    let (caller, _) = sms_sign_in(deps, &id, outbox).await;
    (id, caller)
}

/// The user's newest `limit` audit events, newest first.
pub async fn audit_events(
    deps: &Deps,
    user: &portcullis::identity::UserId,
    limit: usize,
) -> Vec<portcullis::storage::AuditEvent> {
    let now = deps.clock.now();
    deps.stores
        .audit
        .list_events(user, now, limit)
        .await
        .unwrap()
}

/// The session as stored now (which must exist).
pub async fn stored_session(
    deps: &Deps,
    user: &UserId,
    session_id: &str,
) -> portcullis::storage::SessionRecord {
    deps.stores
        .sessions
        .get_session(user, session_id)
        .await
        .unwrap()
        .unwrap()
}

/// Starts a step-up of `caller`'s session by `method` to the default factor.
pub async fn start_step_up(
    deps: &Deps,
    caller: &portcullis::service::tokens::Caller,
    method: &str,
) -> portcullis::service::step_up::StepUpStarted {
    let request = portcullis::service::step_up::StepUpRequest {
        method: method.into(),
        factor_id: None,
    };
    portcullis::service::step_up::start(deps, caller, request)
        .await
        .unwrap()
}

/// Asks for a password reset link for the user, as the forgot-password route does.
pub async fn forgot(
    deps: &Deps,
    user: &portcullis::identity::UserId,
) -> portcullis::service::password::ForgotAnswer {
    let request = portcullis::service::password::ForgotRequest {
        user_id: user.to_string(),
    };
    portcullis::service::password::forgot(deps, request)
        .await
        .unwrap()
}

/// Whether the user has no factor at all (of any kind or status).
pub async fn no_factors(deps: &Deps, user: &portcullis::identity::UserId) -> bool {
    let factors = deps.stores.factors.list_factors(user).await.unwrap();
    factors.is_empty()
}

/// Whether an audit event of `kind` was recorded for the user.
pub async fn recorded(deps: &Deps, user: &portcullis::identity::UserId, kind: &str) -> bool {
    event_kinds(deps, user).await.iter().any(|k| k == kind)
}

/// Whether a message for `purpose` was sent.
pub fn alerted(outbox: &portcullis::notifier::RecordingNotifier, purpose: &str) -> bool {
    outbox.sent().iter().any(|m| m.purpose == purpose)
}

/// The kinds of the user's audit events, newest first.
pub async fn event_kinds(deps: &Deps, user: &portcullis::identity::UserId) -> Vec<String> {
    deps.stores
        .audit
        .list_events(user, deps.clock.now(), 500)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// Calls an admin service as its route does: `admin::require_admin` first (the edge's check
/// before an admin route's handler), then the service with the [`Admin`] it made; the check's
/// refusal is the call's answer. `as_admin!(admin::act, &deps, &caller, user, action)`.
///
/// [`Admin`]: portcullis::service::admin::Admin
#[allow(unused_macros)]
macro_rules! as_admin {
    ($service:path, $deps:expr, $caller:expr $(, $arg:expr)* $(,)?) => {
        match portcullis::service::admin::require_admin($deps, $caller).await {
            Ok(admin) => $service($deps, &admin $(, $arg)*).await,
            Err(refused) => Err(refused),
        }
    };
}
#[allow(unused_imports)]
pub(crate) use as_admin;

/// `recovery::redeem` of `code` on the challenge (no caller details).
pub async fn redeem_code(
    deps: &Deps,
    challenge: &portcullis::storage::ChallengeRecord,
    code: &str,
) -> Result<(portcullis::service::codes::Verified, u32), portcullis::ApiError> {
    let code = portcullis::crypto::SecretString::new(code.into());
    portcullis::service::recovery::redeem(deps, challenge, &code, &RequestMeta::default()).await
}

/// `codes::check_code` as a verify request that names no factor sends it (no caller details).
pub async fn answer_code(
    deps: &Deps,
    challenge: &portcullis::storage::ChallengeRecord,
    method: &str,
    code: &portcullis::crypto::SecretString,
) -> Result<portcullis::service::codes::Verified, portcullis::error::ApiError> {
    portcullis::service::codes::check_code(
        deps,
        challenge,
        method,
        code,
        None,
        &RequestMeta::default(),
    )
    .await
}

/// Whether the user has no session stored at all (none was ever written).
pub async fn no_sessions(deps: &Deps, user: &UserId) -> bool {
    let sessions = deps.stores.sessions.list_sessions(user).await.unwrap();
    sessions.is_empty()
}
