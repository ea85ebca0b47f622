//! The DynamoDB adapter: password resets.

use super::*;

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
