//! The DynamoDB adapter: audit log.

use super::*;

pub(super) fn event_from_item(item: &Item) -> Result<AuditEvent, StoreError> {
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
