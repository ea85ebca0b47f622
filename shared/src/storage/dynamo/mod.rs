//! DynamoDB adapter: one table, keys from [`super::keys`], conditional writes for every create
//! and counter, expiry checked on every read. This file holds the store, its shared item
//! helpers and transaction error mapping; each aggregate's item mapping and store trait are in
//! a file of their own (`users.rs`: `UserStore`, `counters.rs`: `CounterStore`, and so on).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;

use super::keys::{self, PK, SK, TTL};
use super::{
    AdminRequest, AdminStore, AsRead, AttemptSlot, AuditEvent, AuditStore, ChallengeRecord,
    ChallengeStore, Counter, CounterKey, CounterStore, Delivery, DeliveryRecord, DeliveryStore,
    DeviceRecord, DeviceStore, FactorKind, FactorRecord, FactorStatus, FactorStore,
    InvitationRecord, KeyStore, MacKeys, PasskeyOwner, PasskeyUse, PendingCode, RecoveryCodeRecord,
    RecoveryStore, RegisteredPasskey, RequestKind, ResetRecord, ResetStore, Rotation, SendSlot,
    SessionRecord, SessionStore, SigningKeys, Swapped, UserRecord, UserStatus, UserStore,
    Versioned,
};
use crate::challenge::{Stage, StoredStage};
use crate::clock::UnixTime;
use crate::error::StoreError;
use crate::identity::UserId;

mod admin;
mod audit;
mod challenges;
mod counters;
mod deliveries;
mod devices;
mod factors;
mod recovery_codes;
mod resets;
mod sessions;
mod signing_keys;
mod users;

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

fn stamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn get_stamp(item: &Item, name: &str) -> Result<u64, StoreError> {
    Ok(opt_stamp(item, name)?.unwrap_or(0))
}

fn opt_stamp(item: &Item, name: &str) -> Result<Option<u64>, StoreError> {
    opt_n(item, name)?
        .map(|v| {
            u64::try_from(v)
                .map_err(|_| StoreError::Corrupt(format!("attribute {name} is negative")))
        })
        .transpose()
}

fn string_list(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().map(|v| s(v)).collect())
}
