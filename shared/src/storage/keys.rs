//! Every DynamoDB key, built in one place (single-table design: `PK`, `SK`, `ttl`).

use crate::identity::UserId;

pub const PK: &str = "PK";
pub const SK: &str = "SK";
/// The table's TTL attribute (epoch seconds). Reads check it too: TTL deletion is lazy.
pub const TTL: &str = "ttl";

pub fn user(user_id: &UserId) -> (String, String) {
    (format!("USER#{user_id}"), "PROFILE".to_owned())
}

/// The partition that indexes users by ID and by email for the admins' search (`begins_with` on
/// the sort key). Written with the user in one transaction; only user creation writes it, so
/// one partition is far from DynamoDB's per-partition write limit.
pub const USER_INDEX: &str = "USERIDX";

pub fn user_index_by_id(user_id: &UserId) -> (String, String) {
    (USER_INDEX.to_owned(), format!("{}{user_id}", USER_INDEX_ID))
}

pub fn user_index_by_email(email: &str, user_id: &UserId) -> (String, String) {
    (
        USER_INDEX.to_owned(),
        format!("{}{}#{user_id}", USER_INDEX_EMAIL, email.to_lowercase()),
    )
}

pub const USER_INDEX_ID: &str = "ID#";
pub const USER_INDEX_EMAIL: &str = "EMAIL#";

pub fn factor(user_id: &UserId, factor_id: &str) -> (String, String) {
    (format!("USER#{user_id}"), format!("FACTOR#{factor_id}"))
}

pub fn factor_prefix() -> &'static str {
    "FACTOR#"
}

/// A signing-key record of the envelope mode (`token-signing`: the access tokens').
pub fn signing_keys(name: &str) -> (String, String) {
    (format!("KEYS#{name}"), "KEYS".to_owned())
}

/// A one-time-code MAC key record of the envelope mode (`code-mac`). Its own sort key, so a
/// MAC record can never be read as a signing record of the same name.
pub fn mac_keys(name: &str) -> (String, String) {
    (format!("KEYS#{name}"), "MAC".to_owned())
}

/// A registered passkey's credential ID (by its SHA-256: IDs run to 1,023 bytes) → its owner.
pub fn passkey(credential_digest: &str) -> (String, String) {
    (format!("PASSKEY#{credential_digest}"), "PASSKEY".to_owned())
}

/// A counted limit. The prefixes inside the partition key keep each kind of counter apart, so a
/// user ID can never name another kind's counter (`user#x` and `ip#x` differ).
pub fn counter(key: super::CounterKey<'_>) -> (String, String) {
    use super::CounterKey;
    let name = match key {
        CounterKey::Password(user) => format!("user#{user}"),
        CounterKey::SourceIp(ip) => format!("ip#{ip}"),
        CounterKey::SecondFactor(user) => format!("mfa#{user}"),
        CounterKey::SendBar(user) => format!("send#{user}"),
        CounterKey::Sends(user) => format!("sends#{user}"),
        CounterKey::ResetEmails(user) => format!("reset#{user}"),
    };
    (format!("LOCKOUT#{name}"), "LOCKOUT".to_owned())
}

pub fn challenge(id_digest: &str) -> (String, String) {
    (format!("CHALLENGE#{id_digest}"), "CHALLENGE".to_owned())
}

pub fn session(user_id: &UserId, session_id: &str) -> (String, String) {
    (format!("USER#{user_id}"), format!("SESSION#{session_id}"))
}

pub fn session_prefix() -> &'static str {
    "SESSION#"
}

/// Deliveries sort by time within a user: `DELIVERY#<zero-padded epoch>#<id>`.
pub fn delivery(user_id: &UserId, at: i64, delivery_id: &str) -> (String, String) {
    (
        format!("USER#{user_id}"),
        format!("DELIVERY#{at:012}#{delivery_id}"),
    )
}

pub fn delivery_prefix() -> &'static str {
    "DELIVERY#"
}

pub fn recovery(user_id: &UserId, tag: &str) -> (String, String) {
    (format!("USER#{user_id}"), format!("RECOVERY#{tag}"))
}

pub fn recovery_prefix() -> &'static str {
    "RECOVERY#"
}

pub fn device(user_id: &UserId, device_id: &str) -> (String, String) {
    (format!("USER#{user_id}"), format!("DEVICE#{device_id}"))
}

pub fn device_prefix() -> &'static str {
    "DEVICE#"
}

pub fn reset(token_digest: &str) -> (String, String) {
    (format!("RESET#{token_digest}"), "RESET".to_owned())
}

pub fn event(user_id: &UserId, at: i64, event_id: &str) -> (String, String) {
    (
        format!("USER#{user_id}"),
        format!("EVENT#{at:012}#{event_id}"),
    )
}

pub fn event_prefix() -> &'static str {
    "EVENT#"
}

pub fn seen_device(user_id: &UserId, fingerprint: &str) -> (String, String) {
    (format!("USER#{user_id}"), format!("SEEN#{fingerprint}"))
}

pub fn invitation(token_digest: &str) -> (String, String) {
    (format!("INVITE#{token_digest}"), "INVITE".to_owned())
}

/// Two-admin requests share one partition, so the pending queue is one query (a bank has a
/// handful a day; each expires by TTL).
pub fn admin_request(request_id: &str) -> (String, String) {
    (
        ADMIN_REQUESTS.to_owned(),
        format!("{}{request_id}", admin_request_prefix()),
    )
}

pub const ADMIN_REQUESTS: &str = "ADMINREQ";

pub fn admin_request_prefix() -> &'static str {
    "REQ#"
}

/// An item no entity uses: read once at cold start to open the connection to DynamoDB.
pub fn warmup() -> (String, String) {
    ("WARMUP".to_owned(), "WARMUP".to_owned())
}
