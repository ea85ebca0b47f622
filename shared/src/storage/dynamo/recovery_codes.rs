//! The DynamoDB adapter: recovery codes.

use super::*;

pub(super) fn recovery_to_item(r: &RecoveryCodeRecord) -> Item {
    let mut item = key_item(keys::recovery(&r.user_id, &r.tag));
    item.insert("entity".into(), s("recovery_code"));
    item.insert("user_id".into(), s(r.user_id.as_str()));
    item.insert("tag".into(), s(&r.tag));
    item.insert("hash".into(), s(&r.hash));
    item.insert("created_at".into(), n(r.created_at.secs()));
    put_opt_n(&mut item, "used_at", r.used_at.map(UnixTime::secs));
    item
}

pub(super) fn recovery_from_item(item: &Item) -> Result<RecoveryCodeRecord, StoreError> {
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
