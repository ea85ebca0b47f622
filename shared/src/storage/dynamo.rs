//! DynamoDB adapter: one table, keys from [`super::keys`], conditional writes for every create
//! and counter, expiry checked on every read.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;

use super::keys::{self, PK, SK, TTL};
use super::{
    ChallengeRecord, ChallengeStatus, ChallengeStore, Delivery, FactorKind, FactorRecord,
    FactorStatus, FactorStore, FailureOutcome, LockoutPolicy, LockoutStore, UserRecord,
    UserStatus, UserStore,
};
use crate::clock::UnixTime;
use crate::error::StoreError;
use crate::identity::UserId;

type Item = HashMap<String, AttributeValue>;

/// Rounds of read-then-conditional-write before a contended counter update gives up.
const MAX_COUNTER_ROUNDS: usize = 8;

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoStore { client, table: table.to_owned() }
    }

    /// One cheap read, at cold start, so the first request does not pay for the connection.
    pub async fn warm_up(&self) -> Result<(), StoreError> {
        self.get(keys::warmup()).await.map(|_| ())
    }

    async fn get(&self, (pk, sk): (String, String)) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(pk))
            .key(SK, AttributeValue::S(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item)
    }

    async fn put_new(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await
            .map_err(condition_or_unavailable)?;
        Ok(())
    }
}

// ---- item helpers -------------------------------------------------------------------------

fn key_item((pk, sk): (String, String)) -> Item {
    HashMap::from([(PK.to_owned(), AttributeValue::S(pk)), (SK.to_owned(), AttributeValue::S(sk))])
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn put_opt_s(item: &mut Item, name: &str, v: Option<&str>) {
    if let Some(v) = v {
        item.insert(name.to_owned(), s(v));
    }
}

fn put_opt_n(item: &mut Item, name: &str, v: Option<i64>) {
    if let Some(v) = v {
        item.insert(name.to_owned(), n(v));
    }
}

fn get_s(item: &Item, name: &str) -> Result<String, StoreError> {
    opt_s(item, name)?.ok_or_else(|| StoreError::Corrupt(format!("missing attribute {name}")))
}

fn opt_s(item: &Item, name: &str) -> Result<Option<String>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        Some(_) => Err(StoreError::Corrupt(format!("attribute {name} is not a string"))),
    }
}

fn get_n(item: &Item, name: &str) -> Result<i64, StoreError> {
    opt_n(item, name)?.ok_or_else(|| StoreError::Corrupt(format!("missing attribute {name}")))
}

fn opt_n(item: &Item, name: &str) -> Result<Option<i64>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("attribute {name} is not an integer"))),
        Some(_) => Err(StoreError::Corrupt(format!("attribute {name} is not a number"))),
    }
}

fn get_u32(item: &Item, name: &str) -> Result<u32, StoreError> {
    u32::try_from(get_n(item, name)?)
        .map_err(|_| StoreError::Corrupt(format!("attribute {name} out of range")))
}

fn get_bool(item: &Item, name: &str) -> Result<bool, StoreError> {
    match item.get(name) {
        None => Ok(false),
        Some(AttributeValue::Bool(b)) => Ok(*b),
        Some(_) => Err(StoreError::Corrupt(format!("attribute {name} is not a boolean"))),
    }
}

fn get_string_list(item: &Item, name: &str) -> Result<Vec<String>, StoreError> {
    match item.get(name) {
        None => Ok(Vec::new()),
        Some(AttributeValue::L(values)) => values
            .iter()
            .map(|v| match v {
                AttributeValue::S(s) => Ok(s.clone()),
                _ => Err(StoreError::Corrupt(format!("attribute {name} holds a non-string"))),
            })
            .collect(),
        Some(_) => Err(StoreError::Corrupt(format!("attribute {name} is not a list"))),
    }
}

/// True while the item's `ttl` lies in the future (items without `ttl` never expire).
fn live(item: &Item, now: UnixTime) -> Result<bool, StoreError> {
    Ok(opt_n(item, TTL)?.is_none_or(|ttl| ttl > now.secs()))
}

fn unavailable<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(aws_smithy_types::error::display::DisplayErrorContext(&err).to_string())
}

fn condition_or_unavailable<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    if let SdkError::ServiceError(service) = &err
        && service.err().code() == Some("ConditionalCheckFailedException")
    {
        return StoreError::ConditionFailed;
    }
    unavailable(err)
}

// ---- users ----------------------------------------------------------------------------------

fn user_to_item(user: &UserRecord) -> Item {
    let mut item = key_item(keys::user(&user.user_id));
    item.insert("entity".into(), s("user"));
    item.insert("user_id".into(), s(user.user_id.as_str()));
    put_opt_s(&mut item, "email", user.email.as_deref());
    put_opt_s(&mut item, "phone", user.phone.as_deref());
    put_opt_s(&mut item, "password_hash", user.password_hash.as_deref());
    item.insert("status".into(), s(user.status.as_str()));
    item.insert("roles".into(), AttributeValue::L(user.roles.iter().map(|r| s(r)).collect()));
    item.insert("created_at".into(), n(user.created_at.secs()));
    put_opt_n(&mut item, "password_changed_at", user.password_changed_at.map(UnixTime::secs));
    put_opt_n(&mut item, "last_sign_in_at", user.last_sign_in_at.map(UnixTime::secs));
    item.insert("must_change_password".into(), AttributeValue::Bool(user.must_change_password));
    item
}

fn user_from_item(item: &Item) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        user_id: UserId::from_stored(get_s(item, "user_id")?),
        email: opt_s(item, "email")?,
        phone: opt_s(item, "phone")?,
        password_hash: opt_s(item, "password_hash")?,
        status: UserStatus::parse(&get_s(item, "status")?)?,
        roles: get_string_list(item, "roles")?,
        created_at: UnixTime(get_n(item, "created_at")?),
        password_changed_at: opt_n(item, "password_changed_at")?.map(UnixTime),
        last_sign_in_at: opt_n(item, "last_sign_in_at")?.map(UnixTime),
        must_change_password: get_bool(item, "must_change_password")?,
    })
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.put_new(user_to_item(user)).await
    }

    async fn get_user(&self, user_id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        self.get(keys::user(user_id)).await?.as_ref().map(user_from_item).transpose()
    }

    async fn replace_password_hash(
        &self,
        user_id: &UserId,
        expected: &str,
        new_hash: &str,
    ) -> Result<(), StoreError> {
        let (pk, sk) = keys::user(user_id);
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(&sk))
            .update_expression("SET password_hash = :new")
            .condition_expression("password_hash = :expected")
            .expression_attribute_values(":new", s(new_hash))
            .expression_attribute_values(":expected", s(expected))
            .send()
            .await
            .map_err(condition_or_unavailable)?;
        Ok(())
    }
}

// ---- lockouts -------------------------------------------------------------------------------

#[async_trait]
impl LockoutStore for DynamoStore {
    async fn locked_until(&self, key: &str, now: UnixTime) -> Result<Option<UnixTime>, StoreError> {
        let Some(item) = self.get(keys::lockout(key)).await? else {
            return Ok(None);
        };
        if !live(&item, now)? {
            return Ok(None);
        }
        Ok(opt_n(&item, "locked_until")?.map(UnixTime).filter(|until| *until > now))
    }

    /// Each round reads the counter, then makes the one conditional update that fits what it
    /// read. Every condition restates the state it assumes, so concurrent failures never skip
    /// the threshold and exactly one caller starts the lock.
    async fn record_failure(
        &self,
        key: &str,
        now: UnixTime,
        policy: LockoutPolicy,
    ) -> Result<FailureOutcome, StoreError> {
        let (pk, sk) = keys::lockout(key);
        for _ in 0..MAX_COUNTER_ROUNDS {
            let current = match self.get((pk.clone(), sk.clone())).await? {
                Some(item) if live(&item, now)? => Some(item),
                _ => None,
            };
            let update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(PK, s(&pk))
                .key(SK, s(&sk))
                .expression_attribute_names("#ttl", TTL)
                .expression_attribute_values(":now", n(now.secs()));
            let (failures, update) = match &current {
                Some(item) => {
                    if let Some(until) = opt_n(item, "locked_until")? {
                        return Ok(FailureOutcome::AlreadyLocked { until: UnixTime(until) });
                    }
                    let seen = get_u32(item, "failures")?;
                    let next = seen.saturating_add(1);
                    let update = update
                        .condition_expression(
                            "#ttl > :now AND failures = :seen AND attribute_not_exists(locked_until)",
                        )
                        .expression_attribute_values(":seen", n(i64::from(seen)));
                    (next, update)
                }
                None => {
                    let update = update
                        .condition_expression("attribute_not_exists(#pk) OR #ttl <= :now")
                        .expression_attribute_names("#pk", PK);
                    (1, update)
                }
            };
            let (outcome, update) = if failures >= policy.threshold {
                let until = now.plus_secs(policy.lock_secs);
                let update = update
                    .update_expression(
                        "SET failures = :failures, locked_until = :until, #ttl = :until, entity = :entity",
                    )
                    .expression_attribute_values(":until", n(until.secs()));
                (FailureOutcome::LockStarted { until }, update)
            } else {
                let update = update
                    .update_expression(
                        "SET failures = :failures, #ttl = :expires, entity = :entity REMOVE locked_until",
                    )
                    .expression_attribute_values(
                        ":expires",
                        n(now.plus_secs(policy.window_secs).secs()),
                    );
                (FailureOutcome::Counted { failures }, update)
            };
            let result = update
                .expression_attribute_values(":failures", n(i64::from(failures)))
                .expression_attribute_values(":entity", s("lockout"))
                .send()
                .await
                .map_err(condition_or_unavailable);
            match result {
                Ok(_) => return Ok(outcome),
                Err(StoreError::ConditionFailed) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(StoreError::Unavailable("failure counter too contended".into()))
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        let (pk, sk) = keys::lockout(key);
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(&sk))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

// ---- factors --------------------------------------------------------------------------------

fn factor_to_item(factor: &FactorRecord) -> Item {
    let mut item = key_item(keys::factor(&factor.user_id, &factor.factor_id));
    item.insert("entity".into(), s("factor"));
    item.insert("user_id".into(), s(factor.user_id.as_str()));
    item.insert("factor_id".into(), s(&factor.factor_id));
    item.insert("kind".into(), s(factor.kind.name()));
    item.insert("status".into(), s(factor.status.as_str()));
    item.insert("created_at".into(), n(factor.created_at.secs()));
    match &factor.kind {
        FactorKind::Phone { e164, delivery } => {
            item.insert("phone".into(), s(e164));
            item.insert("delivery".into(), s(delivery.as_str()));
        }
        FactorKind::Totp { secret_ciphertext, last_used_step } => {
            item.insert("secret_ciphertext".into(), s(secret_ciphertext));
            put_opt_n(&mut item, "last_used_step", *last_used_step);
        }
        FactorKind::Email { address } => {
            item.insert("email".into(), s(address));
        }
    }
    item
}

fn factor_from_item(item: &Item) -> Result<FactorRecord, StoreError> {
    let kind = match get_s(item, "kind")?.as_str() {
        "phone" => FactorKind::Phone {
            e164: get_s(item, "phone")?,
            delivery: Delivery::parse(&get_s(item, "delivery")?)?,
        },
        "totp" => FactorKind::Totp {
            secret_ciphertext: get_s(item, "secret_ciphertext")?,
            last_used_step: opt_n(item, "last_used_step")?,
        },
        "email" => FactorKind::Email { address: get_s(item, "email")? },
        other => return Err(StoreError::Corrupt(format!("unknown factor kind {other:?}"))),
    };
    Ok(FactorRecord {
        user_id: UserId::from_stored(get_s(item, "user_id")?),
        factor_id: get_s(item, "factor_id")?,
        kind,
        status: FactorStatus::parse(&get_s(item, "status")?)?,
        created_at: UnixTime(get_n(item, "created_at")?),
    })
}

#[async_trait]
impl FactorStore for DynamoStore {
    async fn create_factor(&self, factor: &FactorRecord) -> Result<(), StoreError> {
        self.put_new(factor_to_item(factor)).await
    }

    async fn list_factors(&self, user_id: &UserId) -> Result<Vec<FactorRecord>, StoreError> {
        let (pk, _) = keys::user(user_id);
        let mut factors = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":prefix", s(keys::factor_prefix()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in out.items() {
                factors.push(factor_from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        factors.sort_by(|a, b| (a.created_at, &a.factor_id).cmp(&(b.created_at, &b.factor_id)));
        Ok(factors)
    }
}

// ---- challenges -----------------------------------------------------------------------------

fn challenge_to_item(c: &ChallengeRecord) -> Item {
    let mut item = key_item(keys::challenge(&c.id_digest));
    item.insert("entity".into(), s("challenge"));
    item.insert("id_digest".into(), s(&c.id_digest));
    item.insert("user_id".into(), s(c.user_id.as_str()));
    item.insert("status".into(), s(c.status.as_str()));
    item.insert("created_at".into(), n(c.created_at.secs()));
    item.insert(TTL.into(), n(c.expires_at.secs()));
    item.insert("sends".into(), n(i64::from(c.sends)));
    item.insert("wrong_tries".into(), n(i64::from(c.wrong_tries)));
    item.insert(
        "password_change_required".into(),
        AttributeValue::Bool(c.password_change_required),
    );
    item
}

fn challenge_from_item(item: &Item) -> Result<ChallengeRecord, StoreError> {
    Ok(ChallengeRecord {
        id_digest: get_s(item, "id_digest")?,
        user_id: UserId::from_stored(get_s(item, "user_id")?),
        status: ChallengeStatus::parse(&get_s(item, "status")?)?,
        created_at: UnixTime(get_n(item, "created_at")?),
        expires_at: UnixTime(get_n(item, TTL)?),
        sends: get_u32(item, "sends")?,
        wrong_tries: get_u32(item, "wrong_tries")?,
        password_change_required: get_bool(item, "password_change_required")?,
    })
}

#[async_trait]
impl ChallengeStore for DynamoStore {
    async fn create_challenge(&self, challenge: &ChallengeRecord) -> Result<(), StoreError> {
        self.put_new(challenge_to_item(challenge)).await
    }

    async fn get_challenge(
        &self,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        match self.get(keys::challenge(id_digest)).await? {
            Some(item) if live(&item, now)? => challenge_from_item(&item).map(Some),
            _ => Ok(None),
        }
    }
}
