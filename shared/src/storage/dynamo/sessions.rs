//! The DynamoDB adapter: sessions.

use super::*;

pub(super) fn session_to_item(x: &SessionRecord) -> Item {
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
    if let Some(user_stamp) = x.user_stamp {
        item.insert("user_stamp".into(), n(stamp(user_stamp)));
    }
    // Deleted by TTL after its absolute end (reads check the limits themselves).
    item.insert(TTL.into(), n(x.expires_at.secs()));
    item
}

pub(super) fn session_from_item(item: &Item) -> Result<SessionRecord, StoreError> {
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
        user_stamp: opt_stamp(item, "user_stamp")?,
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
        rotation: Rotation<'_>,
    ) -> Result<bool, StoreError> {
        let Rotation {
            old_digest,
            new_digest,
            now,
            idle_expires_at,
        } = rotation;
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

    async fn restamp_session(
        &self,
        user_id: &UserId,
        session_id: &str,
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError> {
        let update = self
            .update(keys::session(user_id, session_id))
            .update_expression("SET user_stamp = :to")
            .condition_expression("revoked = :false AND user_stamp = :from")
            .expression_attribute_values(":from", n(stamp(from)))
            .expression_attribute_values(":to", n(stamp(to)))
            .expression_attribute_values(":false", AttributeValue::Bool(false));
        self.conditional(update).await
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
