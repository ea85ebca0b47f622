//! The DynamoDB adapter: signing keys.

use super::*;

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
