//! DynamoDB adapter: one table, keys from [`super::keys`], conditional writes for every create
//! and counter, expiry checked on every read.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;

use super::keys::{self, PK, SK, TTL};
use super::{
    AdminRequest, AdminStore, AttemptSlot, AuditEvent, AuditStore, ChallengePurpose,
    ChallengeRecord, ChallengeStatus, ChallengeStore, Counter, CounterKey, CounterStore, Delivery,
    DeliveryRecord, DeliveryStore, DeviceRecord, DeviceStore, FactorKind, FactorRecord,
    FactorStatus, FactorStore, InvitationRecord, KeyStore, MacKeys, PasskeyOwner, PasskeyUse,
    PendingCode, RecoveryCodeRecord, RecoveryStore, RegisteredPasskey, RequestKind, ResetRecord,
    ResetStore, SendSlot, SessionRecord, SessionStore, SigningKeys, Swapped, UserRecord,
    UserStatus, UserStore, Versioned,
};
use crate::clock::UnixTime;
use crate::error::StoreError;
use crate::identity::UserId;

type Item = HashMap<String, AttributeValue>;

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    audit_table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: &str) -> Self {
        DynamoStore {
            client,
            table: table.to_owned(),
            audit_table: table.to_owned(),
        }
    }

    /// Audit events (and device sightings) go to their own append-only table.
    pub fn with_audit_table(mut self, audit_table: &str) -> Self {
        self.audit_table = audit_table.to_owned();
        self
    }

    fn for_audit(&self) -> DynamoStore {
        DynamoStore {
            client: self.client.clone(),
            table: self.audit_table.clone(),
            audit_table: self.audit_table.clone(),
        }
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

    fn update(
        &self,
        (pk, sk): (String, String),
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(&sk))
    }

    fn delete_item(
        &self,
        (pk, sk): (String, String),
    ) -> aws_sdk_dynamodb::operation::delete_item::builders::DeleteItemFluentBuilder {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(&sk))
    }

    /// Runs a conditional update: `Ok(true)` if it applied, `Ok(false)` if the condition lost.
    async fn conditional(
        &self,
        update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    ) -> Result<bool, StoreError> {
        match update.send().await.map_err(condition_or_unavailable) {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Every item of a partition whose sort key starts with `prefix` (all pages).
    async fn query_prefix(
        &self,
        pk: &str,
        prefix: &str,
        newest_first: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .scan_index_forward(!newest_first)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    async fn delete(&self, key: (String, String)) -> Result<bool, StoreError> {
        Ok(self.delete_returning(key).await?.is_some())
    }

    /// Deletes an item; the item it was, if there was one.
    async fn delete_returning(&self, key: (String, String)) -> Result<Option<Item>, StoreError> {
        let out = self
            .delete_item(key)
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.attributes.filter(|a| !a.is_empty()))
    }

    /// Deletes a live item and returns it, once: a conditional delete, so exactly one caller
    /// of many gets it (single-use links and invitations).
    async fn take_live(
        &self,
        key: (String, String),
        now: UnixTime,
    ) -> Result<Option<Item>, StoreError> {
        let result = self
            .delete_item(key)
            .condition_expression("attribute_exists(#pk) AND #ttl > :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now", n(now.secs()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(condition_or_unavailable);
        match result {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(StoreError::ConditionFailed) => Ok(None),
            Err(other) => Err(other),
        }
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
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(pk)),
        (SK.to_owned(), AttributeValue::S(sk)),
    ])
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
        Some(_) => Err(StoreError::Corrupt(format!(
            "attribute {name} is not a string"
        ))),
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
        Some(_) => Err(StoreError::Corrupt(format!(
            "attribute {name} is not a number"
        ))),
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
        Some(_) => Err(StoreError::Corrupt(format!(
            "attribute {name} is not a boolean"
        ))),
    }
}

fn get_string_list(item: &Item, name: &str) -> Result<Vec<String>, StoreError> {
    match item.get(name) {
        None => Ok(Vec::new()),
        Some(AttributeValue::L(values)) => values
            .iter()
            .map(|v| match v {
                AttributeValue::S(s) => Ok(s.clone()),
                _ => Err(StoreError::Corrupt(format!(
                    "attribute {name} holds a non-string"
                ))),
            })
            .collect(),
        Some(_) => Err(StoreError::Corrupt(format!(
            "attribute {name} is not a list"
        ))),
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

/// A cancelled transaction whose cancellation names a failed condition is a lost conditional
/// write; anything else is unavailability.
fn transaction_error<R>(
    err: SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> StoreError
where
    R: std::fmt::Debug,
{
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    if let SdkError::ServiceError(service) = &err
        && let TransactWriteItemsError::TransactionCanceledException(cancelled) = service.err()
        && cancelled
            .cancellation_reasons()
            .iter()
            .any(|r| r.code() == Some("ConditionalCheckFailed"))
    {
        return StoreError::ConditionFailed;
    }
    unavailable(err)
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

// ---- signing keys ---------------------------------------------------------------------------

#[async_trait]
impl KeyStore for DynamoStore {
    async fn get_signing_keys(&self, name: &str) -> Result<Option<SigningKeys>, StoreError> {
        let Some(item) = self.get(keys::signing_keys(name)).await? else {
            return Ok(None);
        };
        Ok(Some(SigningKeys {
            version: get_stamp(&item, "version")?,
            current_kid: get_s(&item, "current_kid")?,
            current_public: get_s(&item, "current_public")?,
            current_sealed: get_s(&item, "current_sealed")?,
            created_at: UnixTime(get_n(&item, "created_at")?),
            previous_kid: opt_s(&item, "previous_kid")?,
            previous_public: opt_s(&item, "previous_public")?,
        }))
    }

    async fn put_signing_keys(
        &self,
        name: &str,
        k: &SigningKeys,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut item = key_item(keys::signing_keys(name));
        item.insert("entity".into(), s("signing_keys"));
        item.insert("version".into(), n(stamp(k.version)));
        item.insert("current_kid".into(), s(&k.current_kid));
        item.insert("current_public".into(), s(&k.current_public));
        item.insert("current_sealed".into(), s(&k.current_sealed));
        item.insert("created_at".into(), n(k.created_at.secs()));
        put_opt_s(&mut item, "previous_kid", k.previous_kid.as_deref());
        put_opt_s(&mut item, "previous_public", k.previous_public.as_deref());
        self.put_key_record(item, expected_version).await
    }

    async fn get_mac_keys(&self, name: &str) -> Result<Option<MacKeys>, StoreError> {
        let Some(item) = self.get(keys::mac_keys(name)).await? else {
            return Ok(None);
        };
        Ok(Some(MacKeys {
            version: get_stamp(&item, "version")?,
            current_kid: get_s(&item, "current_kid")?,
            current_sealed: get_s(&item, "current_sealed")?,
            created_at: UnixTime(get_n(&item, "created_at")?),
            previous_kid: opt_s(&item, "previous_kid")?,
            previous_sealed: opt_s(&item, "previous_sealed")?,
        }))
    }

    async fn put_mac_keys(
        &self,
        name: &str,
        k: &MacKeys,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut item = key_item(keys::mac_keys(name));
        item.insert("entity".into(), s("mac_keys"));
        item.insert("version".into(), n(stamp(k.version)));
        item.insert("current_kid".into(), s(&k.current_kid));
        item.insert("current_sealed".into(), s(&k.current_sealed));
        item.insert("created_at".into(), n(k.created_at.secs()));
        put_opt_s(&mut item, "previous_kid", k.previous_kid.as_deref());
        put_opt_s(&mut item, "previous_sealed", k.previous_sealed.as_deref());
        self.put_key_record(item, expected_version).await
    }
}

impl DynamoStore {
    /// Writes a key record whole, if the stored one is still at `expected_version` (`None`: no
    /// record yet).
    async fn put_key_record(
        &self,
        item: Item,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let put = match expected_version {
            None => put
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK),
            Some(version) => put
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", n(stamp(version))),
        };
        put.send().await.map_err(condition_or_unavailable)?;
        Ok(())
    }
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
    item.insert(
        "roles".into(),
        AttributeValue::L(user.roles.iter().map(|r| s(r)).collect()),
    );
    item.insert("created_at".into(), n(user.created_at.secs()));
    put_opt_n(
        &mut item,
        "password_changed_at",
        user.password_changed_at.map(UnixTime::secs),
    );
    put_opt_n(
        &mut item,
        "last_sign_in_at",
        user.last_sign_in_at.map(UnixTime::secs),
    );
    item.insert(
        "must_change_password".into(),
        AttributeValue::Bool(user.must_change_password),
    );
    item.insert("security_stamp".into(), n(stamp(user.security_stamp)));
    item
}

fn stamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn get_stamp(item: &Item, name: &str) -> Result<u64, StoreError> {
    u64::try_from(opt_n(item, name)?.unwrap_or(0))
        .map_err(|_| StoreError::Corrupt(format!("attribute {name} is negative")))
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
        password_history: get_string_list(item, "password_history")?,
        security_stamp: get_stamp(item, "security_stamp")?,
    })
}

#[async_trait]
impl UserStore for DynamoStore {
    /// The user and its search-index entries, in one transaction: all or nothing, and only if
    /// the user ID is free.
    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
        let index_item = |key: (String, String)| {
            let mut item = key_item(key);
            item.insert("entity".into(), s("user_index"));
            item.insert("user_id".into(), s(user.user_id.as_str()));
            item
        };
        let mut items = vec![
            user_to_item(user),
            index_item(keys::user_index_by_id(&user.user_id)),
        ];
        if let Some(email) = &user.email {
            items.push(index_item(keys::user_index_by_email(email, &user.user_id)));
        }
        let mut writes = Vec::new();
        for item in items {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
            .map_err(transaction_error)?;
        Ok(())
    }

    async fn search_users(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let limit = limit.clamp(1, 100);
        let mut ids = std::collections::BTreeSet::new();
        for kind in [keys::USER_INDEX_ID, keys::USER_INDEX_EMAIL] {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(keys::USER_INDEX))
                .expression_attribute_values(":prefix", s(&format!("{kind}{prefix}")))
                .limit(i32::try_from(limit).unwrap_or(100))
                .send()
                .await
                .map_err(unavailable)?;
            for item in out.items() {
                ids.insert(get_s(item, "user_id")?);
            }
        }
        let mut users = Vec::new();
        for id in ids.into_iter().take(limit) {
            if let Some(user) = self.get_user(&UserId::from_stored(id)).await? {
                users.push(user);
            }
        }
        Ok(users)
    }

    async fn get_user(&self, user_id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        self.get(keys::user(user_id))
            .await?
            .as_ref()
            .map(user_from_item)
            .transpose()
    }

    async fn set_password(
        &self,
        user_id: &UserId,
        expected: Option<&str>,
        new_hash: &str,
        history: &[String],
        at: UnixTime,
    ) -> Result<(), StoreError> {
        let update = self
            .update(keys::user(user_id))
            .update_expression(
                "SET password_hash = :new, password_history = :history, password_changed_at = :at, must_change_password = :false ADD security_stamp :one",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":new", s(new_hash))
            .expression_attribute_values(":history", string_list(history))
            .expression_attribute_values(":at", n(at.secs()))
            .expression_attribute_values(":false", AttributeValue::Bool(false));
        let update = match expected {
            Some(old) => update
                .condition_expression("password_hash = :old")
                .expression_attribute_values(":old", s(old)),
            None => update
                .condition_expression(
                    "attribute_exists(#pk) AND attribute_not_exists(password_hash)",
                )
                .expression_attribute_names("#pk", PK),
        };
        if self.conditional(update).await? {
            Ok(())
        } else {
            Err(StoreError::ConditionFailed)
        }
    }

    async fn raise_security_stamp(&self, user_id: &UserId) -> Result<(), StoreError> {
        let update = self
            .update(keys::user(user_id))
            .update_expression("ADD security_stamp :one")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":one", n(1));
        if self.conditional(update).await? {
            Ok(())
        } else {
            Err(StoreError::ConditionFailed)
        }
    }

    async fn set_must_change_password(&self, user_id: &UserId) -> Result<(), StoreError> {
        let update = self
            .update(keys::user(user_id))
            .update_expression("SET must_change_password = :true")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":true", AttributeValue::Bool(true));
        if self.conditional(update).await? {
            Ok(())
        } else {
            Err(StoreError::ConditionFailed)
        }
    }

    async fn set_status(&self, user_id: &UserId, status: UserStatus) -> Result<(), StoreError> {
        let update = self
            .update(keys::user(user_id))
            .update_expression("SET #status = :status")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.as_str()));
        if self.conditional(update).await? {
            Ok(())
        } else {
            Err(StoreError::ConditionFailed)
        }
    }

    async fn set_roles(&self, user_id: &UserId, roles: &[String]) -> Result<(), StoreError> {
        let update = self
            .update(keys::user(user_id))
            .update_expression("SET #roles = :roles")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#roles", "roles")
            .expression_attribute_values(":roles", string_list(roles));
        if self.conditional(update).await? {
            Ok(())
        } else {
            Err(StoreError::ConditionFailed)
        }
    }

    async fn deactivate_if_idle(
        &self,
        user_id: &UserId,
        cutoff: UnixTime,
    ) -> Result<bool, StoreError> {
        let update = self
            .update(keys::user(user_id))
            .update_expression("SET #status = :inactive ADD security_stamp :one")
            .condition_expression(
                "#status = :active AND created_at <= :cutoff AND (attribute_not_exists(last_sign_in_at) OR last_sign_in_at <= :cutoff)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":inactive", s(UserStatus::Inactive.as_str()))
            .expression_attribute_values(":active", s(UserStatus::Active.as_str()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":cutoff", n(cutoff.secs()));
        self.conditional(update).await
    }

    /// A filtered Scan: fine for a daily sweep of a bank's user base; a sparse index on
    /// `last_sign_in_at` would be the next step at larger scale.
    async fn list_users(
        &self,
        cursor: Option<String>,
    ) -> Result<(Vec<UserRecord>, Option<String>), StoreError> {
        let start = match cursor {
            Some(c) => {
                let (pk, sk) = c
                    .split_once('\u{1f}')
                    .ok_or_else(|| StoreError::Corrupt("bad cursor".into()))?;
                Some(key_item((pk.to_owned(), sk.to_owned())))
            }
            None => None,
        };
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("entity = :user")
            .expression_attribute_values(":user", s("user"))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(unavailable)?;
        let users = out
            .items()
            .iter()
            .map(user_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next = match out.last_evaluated_key {
            Some(key) if !key.is_empty() => {
                Some(format!("{}\u{1f}{}", get_s(&key, PK)?, get_s(&key, SK)?))
            }
            _ => None,
        };
        Ok((users, next))
    }

    async fn record_sign_in(&self, user_id: &UserId, at: UnixTime) -> Result<(), StoreError> {
        let update = self
            .update(keys::user(user_id))
            .update_expression("SET last_sign_in_at = :at")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":at", n(at.secs()));
        self.conditional(update).await.map(|_| ())
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

fn counter_to_item(key: CounterKey<'_>, counter: &Counter, version: u64) -> Item {
    let mut item = key_item(keys::counter(key));
    item.insert("entity".into(), s("counter"));
    item.insert("failures".into(), n(i64::from(counter.count)));
    item.insert("last_at".into(), n(counter.last_at.secs()));
    put_opt_n(
        &mut item,
        "locked_until",
        counter.locked_until.map(UnixTime::secs),
    );
    if !counter.recent.is_empty() {
        item.insert(
            "recent".into(),
            AttributeValue::L(counter.recent.iter().map(|t| n(t.secs())).collect()),
        );
    }
    item.insert(TTL.into(), n(counter.expires_at.secs()));
    item.insert(
        "version".into(),
        n(i64::try_from(version).unwrap_or(i64::MAX)),
    );
    item
}

fn counter_from_item(item: &Item) -> Result<Versioned, StoreError> {
    let recent = match item.get("recent") {
        None => Vec::new(),
        Some(AttributeValue::L(values)) => values
            .iter()
            .map(|v| match v {
                AttributeValue::N(t) => t
                    .parse()
                    .map(UnixTime)
                    .map_err(|_| StoreError::Corrupt("recent holds a non-integer".into())),
                _ => Err(StoreError::Corrupt("recent holds a non-number".into())),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(StoreError::Corrupt("recent is not a list".into())),
    };
    Ok(Versioned {
        counter: Counter {
            count: get_u32(item, "failures")?,
            last_at: UnixTime(opt_n(item, "last_at")?.unwrap_or(0)),
            locked_until: opt_n(item, "locked_until")?.map(UnixTime),
            recent,
            expires_at: UnixTime(get_n(item, TTL)?),
        },
        version: u64::try_from(opt_n(item, "version")?.unwrap_or(0))
            .map_err(|_| StoreError::Corrupt("negative counter version".into()))?,
    })
}

#[async_trait]
impl CounterStore for DynamoStore {
    async fn read_counter(
        &self,
        key: CounterKey<'_>,
        now: UnixTime,
    ) -> Result<Option<Versioned>, StoreError> {
        match self.get(keys::counter(key)).await? {
            Some(item) if live(&item, now)? => Ok(Some(counter_from_item(&item)?)),
            _ => Ok(None),
        }
    }

    /// One conditional write: the condition restates what the rule saw (the version, or
    /// "absent or expired"), so of two concurrent updates from the same state only one lands.
    async fn swap_counter(
        &self,
        key: CounterKey<'_>,
        now: UnixTime,
        seen: Option<u64>,
        next: Option<&Counter>,
    ) -> Result<Swapped, StoreError> {
        let seen_condition =
            |names: &mut Vec<(&'static str, &'static str)>,
             values: &mut Vec<(&'static str, AttributeValue)>| {
                match seen {
                    Some(version) => {
                        values.push((":seen", n(i64::try_from(version).unwrap_or(i64::MAX))));
                        "version = :seen"
                    }
                    None => {
                        names.push(("#pk", PK));
                        names.push(("#ttl", TTL));
                        values.push((":now", n(now.secs())));
                        "attribute_not_exists(#pk) OR #ttl <= :now"
                    }
                }
            };
        let mut names = Vec::new();
        let mut values = Vec::new();
        let condition = seen_condition(&mut names, &mut values);
        let result = match next {
            Some(counter) => {
                // A new version number, whatever was there before (an expired record included).
                let version = super::next_counter_version(seen);
                let mut put = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(counter_to_item(key, counter, version)))
                    .condition_expression(condition);
                for (k, v) in names {
                    put = put.expression_attribute_names(k, v);
                }
                for (k, v) in values {
                    put = put.expression_attribute_values(k, v);
                }
                put.send()
                    .await
                    .map(|_| {
                        Some(Versioned {
                            counter: counter.clone(),
                            version,
                        })
                    })
                    .map_err(condition_or_unavailable)
            }
            None => {
                let (pk, sk) = keys::counter(key);
                let mut delete = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .key(PK, s(&pk))
                    .key(SK, s(&sk))
                    .condition_expression(condition);
                for (k, v) in names {
                    delete = delete.expression_attribute_names(k, v);
                }
                for (k, v) in values {
                    delete = delete.expression_attribute_values(k, v);
                }
                delete
                    .send()
                    .await
                    .map(|_| None)
                    .map_err(condition_or_unavailable)
            }
        };
        match result {
            Ok(stored) => Ok(Swapped::Won(stored)),
            Err(StoreError::ConditionFailed) => Ok(Swapped::Lost),
            Err(other) => Err(other),
        }
    }

    async fn clear_counter(&self, key: CounterKey<'_>) -> Result<(), StoreError> {
        self.delete(keys::counter(key)).await.map(|_| ())
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
    put_opt_s(&mut item, "replaces", factor.replaces.as_deref());
    match &factor.kind {
        FactorKind::Phone { e164, delivery } => {
            item.insert("phone".into(), s(e164));
            item.insert("delivery".into(), s(delivery.as_str()));
        }
        FactorKind::Totp {
            secret_ciphertext,
            last_used_step,
        } => {
            item.insert("secret_ciphertext".into(), s(secret_ciphertext));
            put_opt_n(&mut item, "last_used_step", *last_used_step);
        }
        FactorKind::Email { address } => {
            item.insert("email".into(), s(address));
        }
        FactorKind::Passkey {
            name,
            credential,
            sign_count,
            last_used_at,
        } => {
            item.insert("name".into(), s(name));
            put_opt_s(&mut item, "passkey", credential.as_deref());
            item.insert("sign_count".into(), n(i64::from(*sign_count)));
            put_opt_n(&mut item, "last_used_at", last_used_at.map(UnixTime::secs));
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
        "email" => FactorKind::Email {
            address: get_s(item, "email")?,
        },
        "passkey" => FactorKind::Passkey {
            name: get_s(item, "name")?,
            credential: opt_s(item, "passkey")?,
            sign_count: get_u32(item, "sign_count")?,
            last_used_at: opt_n(item, "last_used_at")?.map(UnixTime),
        },
        other => {
            return Err(StoreError::Corrupt(format!(
                "unknown factor kind {other:?}"
            )));
        }
    };
    Ok(FactorRecord {
        user_id: UserId::from_stored(get_s(item, "user_id")?),
        factor_id: get_s(item, "factor_id")?,
        kind,
        status: FactorStatus::parse(&get_s(item, "status")?)?,
        created_at: UnixTime(get_n(item, "created_at")?),
        replaces: opt_s(item, "replaces")?,
    })
}

#[async_trait]
impl FactorStore for DynamoStore {
    async fn create_factor(&self, factor: &FactorRecord) -> Result<(), StoreError> {
        self.put_new(factor_to_item(factor)).await
    }

    async fn list_factors(&self, user_id: &UserId) -> Result<Vec<FactorRecord>, StoreError> {
        let (pk, _) = keys::user(user_id);
        let mut factors = self
            .query_prefix(&pk, keys::factor_prefix(), false)
            .await?
            .iter()
            .map(factor_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        factors.sort_by(|a, b| (a.created_at, &a.factor_id).cmp(&(b.created_at, &b.factor_id)));
        Ok(factors)
    }

    async fn get_factor(
        &self,
        user_id: &UserId,
        factor_id: &str,
    ) -> Result<Option<FactorRecord>, StoreError> {
        self.get(keys::factor(user_id, factor_id))
            .await?
            .as_ref()
            .map(factor_from_item)
            .transpose()
    }

    async fn activate_factor(&self, user_id: &UserId, factor_id: &str) -> Result<(), StoreError> {
        let update = self
            .update(keys::factor(user_id, factor_id))
            .update_expression("SET #status = :active")
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":active", s(FactorStatus::Active.as_str()))
            .expression_attribute_values(":pending", s(FactorStatus::Pending.as_str()));
        if self.conditional(update).await? {
            Ok(())
        } else {
            Err(StoreError::ConditionFailed)
        }
    }

    async fn use_totp_step(
        &self,
        user_id: &UserId,
        factor_id: &str,
        step: i64,
    ) -> Result<bool, StoreError> {
        let update = self
            .update(keys::factor(user_id, factor_id))
            .update_expression("SET last_used_step = :step")
            .condition_expression(
                "kind = :totp AND (attribute_not_exists(last_used_step) OR last_used_step < :step)",
            )
            .expression_attribute_values(":step", n(step))
            .expression_attribute_values(":totp", s("totp"));
        self.conditional(update).await
    }

    /// A passkey's credential-ID record goes after the factor, only while it still points at
    /// that factor. Were the second delete lost, the record would name a factor that no longer
    /// exists: a passwordless sign-in with it fails as an unknown credential.
    async fn delete_factor(&self, user_id: &UserId, factor_id: &str) -> Result<bool, StoreError> {
        let Some(old) = self
            .delete_returning(keys::factor(user_id, factor_id))
            .await?
        else {
            return Ok(false);
        };
        if let Some(digest) = opt_s(&old, "credential_digest")? {
            let result = self
                .delete_item(keys::passkey(&digest))
                .condition_expression("user_id = :user AND factor_id = :factor")
                .expression_attribute_values(":user", s(user_id.as_str()))
                .expression_attribute_values(":factor", s(factor_id))
                .send()
                .await
                .map_err(condition_or_unavailable);
            match result {
                Ok(_) | Err(StoreError::ConditionFailed) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(true)
    }

    /// One transaction: the factor (pending passkey → active, with its credential and digest)
    /// and the credential-ID record (only if no one has it).
    async fn activate_passkey(
        &self,
        user_id: &UserId,
        factor_id: &str,
        registered: &RegisteredPasskey<'_>,
    ) -> Result<(), StoreError> {
        let credential_digest = registered.credential_digest;
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
        let built = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Unavailable(e.to_string());
        let (pk, sk) = keys::factor(user_id, factor_id);
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(&sk))
            .update_expression(
                "SET #status = :active, passkey = :credential, credential_digest = :digest, sign_count = :count",
            )
            .condition_expression("#status = :pending AND kind = :passkey")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":active", s(FactorStatus::Active.as_str()))
            .expression_attribute_values(":pending", s(FactorStatus::Pending.as_str()))
            .expression_attribute_values(":passkey", s("passkey"))
            .expression_attribute_values(":credential", s(registered.credential))
            .expression_attribute_values(":count", n(i64::from(registered.sign_count)))
            .expression_attribute_values(":digest", s(credential_digest))
            .build()
            .map_err(built)?;
        let mut owner = key_item(keys::passkey(credential_digest));
        owner.insert("entity".into(), s("passkey"));
        owner.insert("user_id".into(), s(user_id.as_str()));
        owner.insert("factor_id".into(), s(factor_id));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(owner))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(built)?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await
            .map_err(transaction_error)?;
        Ok(())
    }

    async fn find_passkey(
        &self,
        credential_digest: &str,
    ) -> Result<Option<PasskeyOwner>, StoreError> {
        match self.get(keys::passkey(credential_digest)).await? {
            Some(item) => Ok(Some(PasskeyOwner {
                user_id: UserId::from_stored(get_s(&item, "user_id")?),
                factor_id: get_s(&item, "factor_id")?,
            })),
            None => Ok(None),
        }
    }

    async fn record_passkey_use(
        &self,
        user_id: &UserId,
        factor_id: &str,
        used: &PasskeyUse<'_>,
    ) -> Result<bool, StoreError> {
        let update = self
            .update(keys::factor(user_id, factor_id))
            .update_expression("SET passkey = :credential, sign_count = :new, last_used_at = :at")
            .condition_expression("kind = :passkey AND #status = :active AND sign_count = :old")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":passkey", s("passkey"))
            .expression_attribute_values(":active", s(FactorStatus::Active.as_str()))
            .expression_attribute_values(":old", n(i64::from(used.expected_count)))
            .expression_attribute_values(":new", n(i64::from(used.new_count)))
            .expression_attribute_values(":credential", s(used.credential))
            .expression_attribute_values(":at", n(used.at.secs()));
        self.conditional(update).await
    }

    async fn rename_passkey(
        &self,
        user_id: &UserId,
        factor_id: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        let update = self
            .update(keys::factor(user_id, factor_id))
            .update_expression("SET #name = :name")
            .condition_expression("kind = :passkey")
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":passkey", s("passkey"))
            .expression_attribute_values(":name", s(name));
        self.conditional(update).await
    }
}

// ---- challenges -----------------------------------------------------------------------------

fn challenge_to_item(c: &ChallengeRecord) -> Item {
    let mut item = key_item(keys::challenge(&c.id_digest));
    item.insert("entity".into(), s("challenge"));
    item.insert("id_digest".into(), s(&c.id_digest));
    item.insert("user_id".into(), s(c.user_id.as_str()));
    item.insert("purpose".into(), s(c.purpose.as_str()));
    item.insert("status".into(), s(c.status.as_str()));
    item.insert("created_at".into(), n(c.created_at.secs()));
    item.insert(TTL.into(), n(c.expires_at.secs()));
    item.insert("sends".into(), n(i64::from(c.sends)));
    item.insert("attempts".into(), n(i64::from(c.attempts)));
    item.insert("user_stamp".into(), n(stamp(c.user_stamp)));
    item.insert(
        "password_change_required".into(),
        AttributeValue::Bool(c.password_change_required),
    );
    if let Some(code) = &c.code {
        item.insert("code_mac".into(), s(&code.mac));
        item.insert("code_expires_at".into(), n(code.expires_at.secs()));
        item.insert("code_factor_id".into(), s(&code.factor_id));
        item.insert("code_channel".into(), s(&code.channel));
    }
    put_opt_n(
        &mut item,
        "completed_at",
        c.completed_at.map(UnixTime::secs),
    );
    put_opt_s(&mut item, "factor_id", c.factor_id.as_deref());
    put_opt_s(&mut item, "session_id", c.session_id.as_deref());
    put_opt_s(
        &mut item,
        "ceremony",
        c.ceremony.as_ref().map(crate::crypto::SecretString::expose),
    );
    item
}

fn challenge_from_item(item: &Item) -> Result<ChallengeRecord, StoreError> {
    let code = match opt_s(item, "code_mac")? {
        Some(mac) => Some(PendingCode {
            mac,
            expires_at: UnixTime(get_n(item, "code_expires_at")?),
            factor_id: get_s(item, "code_factor_id")?,
            channel: get_s(item, "code_channel")?,
        }),
        None => None,
    };
    Ok(ChallengeRecord {
        id_digest: get_s(item, "id_digest")?,
        user_id: UserId::from_stored(get_s(item, "user_id")?),
        purpose: ChallengePurpose::parse(&get_s(item, "purpose")?)?,
        status: ChallengeStatus::parse(&get_s(item, "status")?)?,
        created_at: UnixTime(get_n(item, "created_at")?),
        expires_at: UnixTime(get_n(item, TTL)?),
        sends: get_u32(item, "sends")?,
        attempts: get_u32(item, "attempts")?,
        user_stamp: get_stamp(item, "user_stamp")?,
        password_change_required: get_bool(item, "password_change_required")?,
        code,
        completed_at: opt_n(item, "completed_at")?.map(UnixTime),
        factor_id: opt_s(item, "factor_id")?,
        session_id: opt_s(item, "session_id")?,
        ceremony: opt_s(item, "ceremony")?.map(crate::crypto::SecretString::new),
    })
}

const LIVE_AND_OPEN: &str = "#ttl > :now AND attribute_not_exists(completed_at)";

impl DynamoStore {
    /// After a lost condition on a challenge: was it gone (expired/completed/unknown)?
    async fn challenge_gone(&self, id_digest: &str, now: UnixTime) -> Result<bool, StoreError> {
        Ok(match self.get(keys::challenge(id_digest)).await? {
            Some(item) => !live(&item, now)? || opt_n(&item, "completed_at")?.is_some(),
            None => true,
        })
    }
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

    async fn store_code(
        &self,
        id_digest: &str,
        now: UnixTime,
        max_sends: u32,
        code: &PendingCode,
    ) -> Result<SendSlot, StoreError> {
        let result = self
            .update(keys::challenge(id_digest))
            .update_expression(
                "SET code_mac = :mac, code_expires_at = :exp, code_factor_id = :fid, code_channel = :ch ADD sends :one",
            )
            .condition_expression(format!("{LIVE_AND_OPEN} AND sends < :max"))
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now", n(now.secs()))
            .expression_attribute_values(":max", n(i64::from(max_sends)))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":mac", s(&code.mac))
            .expression_attribute_values(":exp", n(code.expires_at.secs()))
            .expression_attribute_values(":fid", s(&code.factor_id))
            .expression_attribute_values(":ch", s(&code.channel))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(condition_or_unavailable);
        match result {
            Ok(out) => {
                let attrs = out.attributes.unwrap_or_default();
                Ok(SendSlot::Reserved {
                    sends: get_u32(&attrs, "sends")?,
                })
            }
            Err(StoreError::ConditionFailed) => Ok(if self.challenge_gone(id_digest, now).await? {
                SendSlot::Gone
            } else {
                SendSlot::LimitReached
            }),
            Err(other) => Err(other),
        }
    }

    async fn release_code(&self, id_digest: &str, mac: &str) -> Result<(), StoreError> {
        let update = self
            .update(keys::challenge(id_digest))
            .update_expression(
                "SET sends = sends - :one REMOVE code_mac, code_expires_at, code_factor_id, code_channel",
            )
            .condition_expression("code_mac = :mac AND sends >= :one")
            .expression_attribute_values(":mac", s(mac))
            .expression_attribute_values(":one", n(1));
        self.conditional(update).await.map(|_| ())
    }

    async fn reserve_attempt(
        &self,
        id_digest: &str,
        now: UnixTime,
        max_attempts: u32,
    ) -> Result<AttemptSlot, StoreError> {
        let result = self
            .update(keys::challenge(id_digest))
            .update_expression("ADD attempts :one")
            .condition_expression(format!("{LIVE_AND_OPEN} AND attempts < :max"))
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now", n(now.secs()))
            .expression_attribute_values(":max", n(i64::from(max_attempts)))
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(condition_or_unavailable);
        match result {
            Ok(out) => Ok(AttemptSlot::Reserved(Box::new(challenge_from_item(
                &out.attributes.unwrap_or_default(),
            )?))),
            Err(StoreError::ConditionFailed) => Ok(if self.challenge_gone(id_digest, now).await? {
                AttemptSlot::Gone
            } else {
                AttemptSlot::Exhausted
            }),
            Err(other) => Err(other),
        }
    }

    async fn complete_challenge(
        &self,
        id_digest: &str,
        now: UnixTime,
        expected_mac: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .update(keys::challenge(id_digest))
            .update_expression(
                "SET completed_at = :now REMOVE code_mac, code_expires_at, code_factor_id, code_channel",
            )
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now", n(now.secs()));
        update = match expected_mac {
            Some(mac) => update
                .condition_expression(format!("{LIVE_AND_OPEN} AND code_mac = :mac"))
                .expression_attribute_values(":mac", s(mac)),
            None => update.condition_expression(LIVE_AND_OPEN),
        };
        self.conditional(update).await
    }

    async fn delete_challenge(&self, id_digest: &str) -> Result<(), StoreError> {
        self.delete(keys::challenge(id_digest)).await.map(|_| ())
    }

    async fn put_ceremony(
        &self,
        id_digest: &str,
        now: UnixTime,
        ceremony: &crate::crypto::SecretString,
    ) -> Result<bool, StoreError> {
        let update = self
            .update(keys::challenge(id_digest))
            .update_expression("SET ceremony = :ceremony")
            .condition_expression(LIVE_AND_OPEN)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now", n(now.secs()))
            .expression_attribute_values(":ceremony", s(ceremony.expose()));
        self.conditional(update).await
    }

    async fn take_ceremony(
        &self,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<Option<crate::crypto::SecretString>, StoreError> {
        let result = self
            .update(keys::challenge(id_digest))
            .update_expression("REMOVE ceremony")
            .condition_expression(format!("{LIVE_AND_OPEN} AND attribute_exists(ceremony)"))
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now", n(now.secs()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedOld)
            .send()
            .await
            .map_err(condition_or_unavailable);
        match result {
            Ok(out) => Ok(opt_s(&out.attributes.unwrap_or_default(), "ceremony")?
                .map(crate::crypto::SecretString::new)),
            Err(StoreError::ConditionFailed) => Ok(None),
            Err(other) => Err(other),
        }
    }
}

// ---- sessions -------------------------------------------------------------------------------

fn string_list(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().map(|v| s(v)).collect())
}

fn session_to_item(x: &SessionRecord) -> Item {
    let mut item = key_item(keys::session(&x.user_id, &x.session_id));
    item.insert("entity".into(), s("session"));
    item.insert("user_id".into(), s(x.user_id.as_str()));
    item.insert("session_id".into(), s(&x.session_id));
    item.insert("created_at".into(), n(x.created_at.secs()));
    item.insert("auth_time".into(), n(x.auth_time.secs()));
    item.insert("amr".into(), string_list(&x.amr));
    item.insert("acr".into(), s(&x.acr));
    item.insert("refresh_digest".into(), s(&x.refresh_digest));
    item.insert("rotated".into(), string_list(&x.rotated));
    item.insert("last_refresh_at".into(), n(x.last_refresh_at.secs()));
    item.insert("expires_at".into(), n(x.expires_at.secs()));
    item.insert("idle_expires_at".into(), n(x.idle_expires_at.secs()));
    item.insert("revoked".into(), AttributeValue::Bool(x.revoked));
    // Deleted by TTL after its absolute end (reads check the limits themselves).
    item.insert(TTL.into(), n(x.expires_at.secs()));
    item
}

fn session_from_item(item: &Item) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        user_id: UserId::from_stored(get_s(item, "user_id")?),
        session_id: get_s(item, "session_id")?,
        created_at: UnixTime(get_n(item, "created_at")?),
        auth_time: UnixTime(get_n(item, "auth_time")?),
        amr: get_string_list(item, "amr")?,
        acr: get_s(item, "acr")?,
        refresh_digest: get_s(item, "refresh_digest")?,
        rotated: get_string_list(item, "rotated")?,
        last_refresh_at: UnixTime(get_n(item, "last_refresh_at")?),
        expires_at: UnixTime(get_n(item, "expires_at")?),
        idle_expires_at: UnixTime(get_n(item, "idle_expires_at")?),
        revoked: get_bool(item, "revoked")?,
    })
}

#[async_trait]
impl SessionStore for DynamoStore {
    async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        self.put_new(session_to_item(session)).await
    }

    async fn get_session(
        &self,
        user_id: &UserId,
        session_id: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.get(keys::session(user_id, session_id))
            .await?
            .as_ref()
            .map(session_from_item)
            .transpose()
    }

    async fn rotate_refresh(
        &self,
        user_id: &UserId,
        session_id: &str,
        old_digest: &str,
        new_digest: &str,
        now: UnixTime,
        idle_expires_at: UnixTime,
    ) -> Result<bool, StoreError> {
        let update = self
            .update(keys::session(user_id, session_id))
            .update_expression(
                "SET refresh_digest = :new, rotated = list_append(rotated, :old_list), last_refresh_at = :now, idle_expires_at = :idle",
            )
            .condition_expression("refresh_digest = :old AND revoked = :false")
            .expression_attribute_values(":new", s(new_digest))
            .expression_attribute_values(":old", s(old_digest))
            .expression_attribute_values(":old_list", string_list(&[old_digest.to_owned()]))
            .expression_attribute_values(":now", n(now.secs()))
            .expression_attribute_values(":idle", n(idle_expires_at.secs()))
            .expression_attribute_values(":false", AttributeValue::Bool(false));
        self.conditional(update).await
    }

    async fn revoke_session(&self, user_id: &UserId, session_id: &str) -> Result<(), StoreError> {
        let update = self
            .update(keys::session(user_id, session_id))
            .update_expression("SET revoked = :true")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":true", AttributeValue::Bool(true));
        self.conditional(update).await.map(|_| ())
    }

    async fn list_sessions(&self, user_id: &UserId) -> Result<Vec<SessionRecord>, StoreError> {
        let (pk, _) = keys::user(user_id);
        self.query_prefix(&pk, keys::session_prefix(), false)
            .await?
            .iter()
            .map(session_from_item)
            .collect()
    }

    async fn elevate_session(
        &self,
        user_id: &UserId,
        session_id: &str,
        auth_time: UnixTime,
        amr: &[String],
        acr: &str,
    ) -> Result<(), StoreError> {
        let update = self
            .update(keys::session(user_id, session_id))
            .update_expression("SET auth_time = :at, amr = :amr, acr = :acr")
            .condition_expression("revoked = :false")
            .expression_attribute_values(":at", n(auth_time.secs()))
            .expression_attribute_values(":amr", string_list(amr))
            .expression_attribute_values(":acr", s(acr))
            .expression_attribute_values(":false", AttributeValue::Bool(false));
        if self.conditional(update).await? {
            Ok(())
        } else {
            Err(StoreError::ConditionFailed)
        }
    }
}

// ---- deliveries -----------------------------------------------------------------------------

fn delivery_to_item(d: &DeliveryRecord) -> Item {
    let mut item = key_item(keys::delivery(&d.user_id, d.at.secs(), &d.delivery_id));
    item.insert("entity".into(), s("delivery"));
    item.insert("user_id".into(), s(d.user_id.as_str()));
    item.insert("delivery_id".into(), s(&d.delivery_id));
    item.insert("at".into(), n(d.at.secs()));
    item.insert("channel".into(), s(&d.channel));
    item.insert("provider".into(), s(&d.provider));
    put_opt_s(
        &mut item,
        "provider_message_id",
        d.provider_message_id.as_deref(),
    );
    item.insert("outcome".into(), s(&d.outcome));
    item.insert("purpose".into(), s(&d.purpose));
    item.insert("to_masked".into(), s(&d.to_masked));
    item.insert(TTL.into(), n(d.expires_at.secs()));
    item
}

fn delivery_from_item(item: &Item) -> Result<DeliveryRecord, StoreError> {
    Ok(DeliveryRecord {
        user_id: UserId::from_stored(get_s(item, "user_id")?),
        delivery_id: get_s(item, "delivery_id")?,
        at: UnixTime(get_n(item, "at")?),
        channel: get_s(item, "channel")?,
        provider: get_s(item, "provider")?,
        provider_message_id: opt_s(item, "provider_message_id")?,
        outcome: get_s(item, "outcome")?,
        purpose: get_s(item, "purpose")?,
        to_masked: get_s(item, "to_masked")?,
        expires_at: UnixTime(get_n(item, TTL)?),
    })
}

#[async_trait]
impl DeliveryStore for DynamoStore {
    async fn record_delivery(&self, delivery: &DeliveryRecord) -> Result<(), StoreError> {
        self.put_new(delivery_to_item(delivery)).await
    }

    async fn list_deliveries(
        &self,
        user_id: &UserId,
        now: UnixTime,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let (pk, _) = keys::user(user_id);
        let mut out = Vec::new();
        for item in self
            .query_prefix(&pk, keys::delivery_prefix(), true)
            .await?
        {
            if live(&item, now)? {
                out.push(delivery_from_item(&item)?);
            }
        }
        Ok(out)
    }
}

// ---- recovery codes -------------------------------------------------------------------------

fn recovery_to_item(r: &RecoveryCodeRecord) -> Item {
    let mut item = key_item(keys::recovery(&r.user_id, &r.tag));
    item.insert("entity".into(), s("recovery_code"));
    item.insert("user_id".into(), s(r.user_id.as_str()));
    item.insert("tag".into(), s(&r.tag));
    item.insert("hash".into(), s(&r.hash));
    item.insert("created_at".into(), n(r.created_at.secs()));
    put_opt_n(&mut item, "used_at", r.used_at.map(UnixTime::secs));
    item
}

fn recovery_from_item(item: &Item) -> Result<RecoveryCodeRecord, StoreError> {
    Ok(RecoveryCodeRecord {
        user_id: UserId::from_stored(get_s(item, "user_id")?),
        tag: get_s(item, "tag")?,
        hash: get_s(item, "hash")?,
        created_at: UnixTime(get_n(item, "created_at")?),
        used_at: opt_n(item, "used_at")?.map(UnixTime),
    })
}

#[async_trait]
impl RecoveryStore for DynamoStore {
    async fn replace_recovery_codes(
        &self,
        user_id: &UserId,
        codes: &[RecoveryCodeRecord],
    ) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
        let (pk, _) = keys::user(user_id);
        let existing = self
            .query_prefix(&pk, keys::recovery_prefix(), false)
            .await?;
        let mut writes = Vec::new();
        for item in existing {
            let sk = get_s(&item, SK)?;
            let delete = Delete::builder()
                .table_name(&self.table)
                .key(PK, s(&pk))
                .key(SK, s(&sk))
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            writes.push(TransactWriteItem::builder().delete(delete).build());
        }
        for code in codes {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(recovery_to_item(code)))
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        if writes.is_empty() {
            return Ok(());
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get_recovery_code(
        &self,
        user_id: &UserId,
        tag: &str,
    ) -> Result<Option<RecoveryCodeRecord>, StoreError> {
        self.get(keys::recovery(user_id, tag))
            .await?
            .as_ref()
            .map(recovery_from_item)
            .transpose()
    }

    async fn use_recovery_code(
        &self,
        user_id: &UserId,
        tag: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let update = self
            .update(keys::recovery(user_id, tag))
            .update_expression("SET used_at = :now")
            .condition_expression("attribute_exists(#pk) AND attribute_not_exists(used_at)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":now", n(now.secs()));
        self.conditional(update).await
    }

    async fn remaining_recovery_codes(&self, user_id: &UserId) -> Result<u32, StoreError> {
        let (pk, _) = keys::user(user_id);
        let items = self
            .query_prefix(&pk, keys::recovery_prefix(), false)
            .await?;
        let unused = items.iter().filter(|i| !i.contains_key("used_at")).count();
        Ok(u32::try_from(unused).unwrap_or(u32::MAX))
    }
}

// ---- trusted devices ------------------------------------------------------------------------

fn device_to_item(d: &DeviceRecord) -> Item {
    let mut item = key_item(keys::device(&d.user_id, &d.device_id));
    item.insert("entity".into(), s("device"));
    item.insert("user_id".into(), s(d.user_id.as_str()));
    item.insert("device_id".into(), s(&d.device_id));
    item.insert("token_digest".into(), s(&d.token_digest));
    item.insert("name".into(), s(&d.name));
    item.insert("created_at".into(), n(d.created_at.secs()));
    item.insert("last_used_at".into(), n(d.last_used_at.secs()));
    item.insert(TTL.into(), n(d.expires_at.secs()));
    item
}

fn device_from_item(item: &Item) -> Result<DeviceRecord, StoreError> {
    Ok(DeviceRecord {
        user_id: UserId::from_stored(get_s(item, "user_id")?),
        device_id: get_s(item, "device_id")?,
        token_digest: get_s(item, "token_digest")?,
        name: get_s(item, "name")?,
        created_at: UnixTime(get_n(item, "created_at")?),
        last_used_at: UnixTime(get_n(item, "last_used_at")?),
        expires_at: UnixTime(get_n(item, TTL)?),
    })
}

#[async_trait]
impl DeviceStore for DynamoStore {
    async fn create_device(&self, device: &DeviceRecord) -> Result<(), StoreError> {
        self.put_new(device_to_item(device)).await
    }

    async fn get_device(
        &self,
        user_id: &UserId,
        device_id: &str,
        now: UnixTime,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        match self.get(keys::device(user_id, device_id)).await? {
            Some(item) if live(&item, now)? => device_from_item(&item).map(Some),
            _ => Ok(None),
        }
    }

    async fn list_devices(
        &self,
        user_id: &UserId,
        now: UnixTime,
    ) -> Result<Vec<DeviceRecord>, StoreError> {
        let (pk, _) = keys::user(user_id);
        let mut out = Vec::new();
        for item in self.query_prefix(&pk, keys::device_prefix(), false).await? {
            if live(&item, now)? {
                out.push(device_from_item(&item)?);
            }
        }
        out.sort_by(|a, b| (a.created_at, &a.device_id).cmp(&(b.created_at, &b.device_id)));
        Ok(out)
    }

    async fn touch_device(
        &self,
        user_id: &UserId,
        device_id: &str,
        token_digest: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let update = self
            .update(keys::device(user_id, device_id))
            .update_expression("SET last_used_at = :now")
            .condition_expression(
                "attribute_exists(#pk) AND token_digest = :digest AND #ttl > :now",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now", n(now.secs()))
            .expression_attribute_values(":digest", s(token_digest));
        self.conditional(update).await
    }

    async fn delete_device(&self, user_id: &UserId, device_id: &str) -> Result<bool, StoreError> {
        self.delete(keys::device(user_id, device_id)).await
    }

    async fn delete_all_devices(&self, user_id: &UserId) -> Result<u32, StoreError> {
        let (pk, _) = keys::user(user_id);
        let mut removed = 0;
        for item in self.query_prefix(&pk, keys::device_prefix(), false).await? {
            let sk = get_s(&item, SK)?;
            if self.delete((pk.clone(), sk)).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

// ---- password resets ------------------------------------------------------------------------

#[async_trait]
impl ResetStore for DynamoStore {
    async fn create_reset(&self, reset: &ResetRecord) -> Result<(), StoreError> {
        let mut item = key_item(keys::reset(&reset.token_digest));
        item.insert("entity".into(), s("reset"));
        item.insert("token_digest".into(), s(&reset.token_digest));
        item.insert("user_id".into(), s(reset.user_id.as_str()));
        item.insert("created_at".into(), n(reset.created_at.secs()));
        item.insert("user_stamp".into(), n(stamp(reset.user_stamp)));
        item.insert(TTL.into(), n(reset.expires_at.secs()));
        self.put_new(item).await
    }

    async fn take_reset(
        &self,
        token_digest: &str,
        now: UnixTime,
    ) -> Result<Option<ResetRecord>, StoreError> {
        let Some(item) = self.take_live(keys::reset(token_digest), now).await? else {
            return Ok(None);
        };
        Ok(Some(ResetRecord {
            token_digest: get_s(&item, "token_digest")?,
            user_id: UserId::from_stored(get_s(&item, "user_id")?),
            created_at: UnixTime(get_n(&item, "created_at")?),
            expires_at: UnixTime(get_n(&item, TTL)?),
            user_stamp: get_stamp(&item, "user_stamp")?,
        }))
    }
}

// ---- audit log ------------------------------------------------------------------------------

fn event_from_item(item: &Item) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        subject: UserId::from_stored(get_s(item, "user_id")?),
        event_id: get_s(item, "event_id")?,
        at: UnixTime(get_n(item, "at")?),
        kind: get_s(item, "kind")?,
        actor: get_s(item, "actor")?,
        source_ip: opt_s(item, "source_ip")?,
        user_agent: opt_s(item, "user_agent")?,
        outcome: get_s(item, "outcome")?,
        detail: opt_s(item, "detail")?,
        expires_at: UnixTime(get_n(item, TTL)?),
    })
}

#[async_trait]
impl AuditStore for DynamoStore {
    async fn append_event(&self, e: &AuditEvent) -> Result<(), StoreError> {
        let audit = self.for_audit();
        let mut item = key_item(keys::event(&e.subject, e.at.secs(), &e.event_id));
        item.insert("entity".into(), s("event"));
        item.insert("user_id".into(), s(e.subject.as_str()));
        item.insert("event_id".into(), s(&e.event_id));
        item.insert("at".into(), n(e.at.secs()));
        item.insert("kind".into(), s(&e.kind));
        item.insert("actor".into(), s(&e.actor));
        put_opt_s(&mut item, "source_ip", e.source_ip.as_deref());
        put_opt_s(&mut item, "user_agent", e.user_agent.as_deref());
        item.insert("outcome".into(), s(&e.outcome));
        put_opt_s(&mut item, "detail", e.detail.as_deref());
        item.insert(TTL.into(), n(e.expires_at.secs()));
        audit.put_new(item).await
    }

    async fn list_events(
        &self,
        user_id: &UserId,
        now: UnixTime,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let (pk, _) = keys::user(user_id);
        let mut out = Vec::new();
        for item in self
            .for_audit()
            .query_prefix(&pk, keys::event_prefix(), true)
            .await?
        {
            if out.len() >= limit {
                break;
            }
            if live(&item, now)? {
                out.push(event_from_item(&item)?);
            }
        }
        Ok(out)
    }

    async fn first_sighting(
        &self,
        user_id: &UserId,
        fingerprint: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut item = key_item(keys::seen_device(user_id, fingerprint));
        item.insert("entity".into(), s("seen_device"));
        item.insert("first_seen_at".into(), n(now.secs()));
        match self.for_audit().put_new(item).await {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(other) => Err(other),
        }
    }
}

// ---- administration -------------------------------------------------------------------------

fn request_to_item(r: &AdminRequest) -> Item {
    let mut item = key_item(keys::admin_request(&r.request_id));
    item.insert("entity".into(), s("admin_request"));
    item.insert("request_id".into(), s(&r.request_id));
    item.insert("kind".into(), s(r.kind.as_str()));
    item.insert("user_id".into(), s(r.user_id.as_str()));
    item.insert("requested_by".into(), s(&r.requested_by));
    item.insert("reason".into(), s(&r.reason));
    item.insert("created_at".into(), n(r.created_at.secs()));
    item.insert(TTL.into(), n(r.expires_at.secs()));
    put_opt_s(&mut item, "approved_by", r.approved_by.as_deref());
    put_opt_n(&mut item, "approved_at", r.approved_at.map(UnixTime::secs));
    put_opt_s(&mut item, "email", r.email.as_deref());
    put_opt_s(&mut item, "phone", r.phone.as_deref());
    item.insert("roles".into(), string_list(&r.roles));
    item
}

fn request_from_item(item: &Item) -> Result<AdminRequest, StoreError> {
    Ok(AdminRequest {
        request_id: get_s(item, "request_id")?,
        kind: RequestKind::parse(&get_s(item, "kind")?)?,
        user_id: UserId::from_stored(get_s(item, "user_id")?),
        requested_by: get_s(item, "requested_by")?,
        reason: get_s(item, "reason")?,
        created_at: UnixTime(get_n(item, "created_at")?),
        expires_at: UnixTime(get_n(item, TTL)?),
        approved_by: opt_s(item, "approved_by")?,
        approved_at: opt_n(item, "approved_at")?.map(UnixTime),
        email: opt_s(item, "email")?,
        phone: opt_s(item, "phone")?,
        roles: get_string_list(item, "roles")?,
    })
}

#[async_trait]
impl AdminStore for DynamoStore {
    async fn create_invitation(&self, i: &InvitationRecord) -> Result<(), StoreError> {
        let mut item = key_item(keys::invitation(&i.token_digest));
        item.insert("entity".into(), s("invitation"));
        item.insert("token_digest".into(), s(&i.token_digest));
        item.insert("user_id".into(), s(i.user_id.as_str()));
        item.insert("invited_by".into(), s(&i.invited_by));
        item.insert("created_at".into(), n(i.created_at.secs()));
        item.insert(TTL.into(), n(i.expires_at.secs()));
        self.put_new(item).await
    }

    async fn take_invitation(
        &self,
        token_digest: &str,
        now: UnixTime,
    ) -> Result<Option<InvitationRecord>, StoreError> {
        let Some(item) = self.take_live(keys::invitation(token_digest), now).await? else {
            return Ok(None);
        };
        Ok(Some(InvitationRecord {
            token_digest: get_s(&item, "token_digest")?,
            user_id: UserId::from_stored(get_s(&item, "user_id")?),
            invited_by: get_s(&item, "invited_by")?,
            created_at: UnixTime(get_n(&item, "created_at")?),
            expires_at: UnixTime(get_n(&item, TTL)?),
        }))
    }

    async fn create_request(&self, r: &AdminRequest) -> Result<(), StoreError> {
        self.put_new(request_to_item(r)).await
    }

    async fn get_request(
        &self,
        request_id: &str,
        now: UnixTime,
    ) -> Result<Option<AdminRequest>, StoreError> {
        match self.get(keys::admin_request(request_id)).await? {
            Some(item) if live(&item, now)? => request_from_item(&item).map(Some),
            _ => Ok(None),
        }
    }

    async fn list_requests(&self, now: UnixTime) -> Result<Vec<AdminRequest>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .query_prefix(keys::ADMIN_REQUESTS, keys::admin_request_prefix(), false)
            .await?
        {
            if live(&item, now)? {
                out.push(request_from_item(&item)?);
            }
        }
        out.sort_by_key(|r| r.created_at);
        Ok(out)
    }

    async fn approve_request(
        &self,
        request_id: &str,
        approver: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let update = self
            .update(keys::admin_request(request_id))
            .update_expression("SET approved_by = :approver, approved_at = :now")
            .condition_expression(
                "#ttl > :now AND attribute_not_exists(approved_by) AND requested_by <> :approver AND user_id <> :approver",
            )
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":approver", s(approver))
            .expression_attribute_values(":now", n(now.secs()));
        self.conditional(update).await
    }

    async fn withdraw_approval(&self, request_id: &str, approver: &str) -> Result<(), StoreError> {
        let update = self
            .update(keys::admin_request(request_id))
            .update_expression("REMOVE approved_by, approved_at")
            .condition_expression("approved_by = :approver")
            .expression_attribute_values(":approver", s(approver));
        self.conditional(update).await.map(|_| ())
    }
}
