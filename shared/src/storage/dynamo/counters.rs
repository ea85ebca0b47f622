//! The DynamoDB adapter: lockouts.

use super::*;

pub(super) fn counter_to_item(key: CounterKey<'_>, counter: &Counter, version: u64) -> Item {
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

pub(super) fn counter_from_item(item: &Item) -> Result<Versioned, StoreError> {
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
                let version = crate::storage::next_counter_version(seen);
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
