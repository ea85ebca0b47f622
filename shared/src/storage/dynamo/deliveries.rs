//! The DynamoDB adapter: deliveries.

use super::*;

pub(super) fn delivery_to_item(d: &DeliveryRecord) -> Item {
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

pub(super) fn delivery_from_item(item: &Item) -> Result<DeliveryRecord, StoreError> {
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
