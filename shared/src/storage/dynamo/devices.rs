//! The DynamoDB adapter: trusted devices.

use super::*;

pub(super) fn device_to_item(d: &DeviceRecord) -> Item {
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

pub(super) fn device_from_item(item: &Item) -> Result<DeviceRecord, StoreError> {
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
