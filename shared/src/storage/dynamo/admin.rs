//! The DynamoDB adapter: administration.

use super::*;

pub(super) fn request_to_item(r: &AdminRequest) -> Item {
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

pub(super) fn request_from_item(item: &Item) -> Result<AdminRequest, StoreError> {
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
