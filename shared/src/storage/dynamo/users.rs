//! The DynamoDB adapter: users.

use super::*;

pub(super) fn user_to_item(user: &UserRecord) -> Item {
    let mut item = key_item(keys::user(&user.user_id));
    item.insert("entity".into(), s("user"));
    item.insert("user_id".into(), s(user.user_id.as_str()));
    put_opt_s(&mut item, "email", user.email.as_deref());
    put_opt_s(&mut item, "phone", user.phone.as_deref());
    put_opt_s(&mut item, "password_hash", user.password_hash.as_deref());
    item.insert("status".into(), s(user.status.as_str()));
    item.insert(
        "roles".into(),
        AttributeValue::L(user.roles.iter().map(|r| s(r)).collect()),
    );
    item.insert("created_at".into(), n(user.created_at.secs()));
    put_opt_n(
        &mut item,
        "password_changed_at",
        user.password_changed_at.map(UnixTime::secs),
    );
    put_opt_n(
        &mut item,
        "last_sign_in_at",
        user.last_sign_in_at.map(UnixTime::secs),
    );
    item.insert(
        "must_change_password".into(),
        AttributeValue::Bool(user.must_change_password),
    );
    item.insert("security_stamp".into(), n(stamp(user.security_stamp)));
    item
}

pub(super) fn user_from_item(item: &Item) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        user_id: UserId::from_stored(get_s(item, "user_id")?),
        email: opt_s(item, "email")?,
        phone: opt_s(item, "phone")?,
        password_hash: opt_s(item, "password_hash")?,
        status: UserStatus::parse(&get_s(item, "status")?)?,
        roles: get_string_list(item, "roles")?,
        created_at: UnixTime(get_n(item, "created_at")?),
        password_changed_at: opt_n(item, "password_changed_at")?.map(UnixTime),
        last_sign_in_at: opt_n(item, "last_sign_in_at")?.map(UnixTime),
        must_change_password: get_bool(item, "must_change_password")?,
        password_history: get_string_list(item, "password_history")?,
        security_stamp: get_stamp(item, "security_stamp")?,
    })
}

#[async_trait]
impl UserStore for DynamoStore {
    /// The user and its search-index entries, in one transaction: all or nothing, and only if
    /// the user ID is free.
    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
        let index_item = |key: (String, String)| {
            let mut item = key_item(key);
            item.insert("entity".into(), s("user_index"));
            item.insert("user_id".into(), s(user.user_id.as_str()));
            item
        };
        let mut items = vec![
            user_to_item(user),
            index_item(keys::user_index_by_id(&user.user_id)),
        ];
        if let Some(email) = &user.email {
            items.push(index_item(keys::user_index_by_email(email, &user.user_id)));
        }
        let mut writes = Vec::new();
        for item in items {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
            .map_err(transaction_error)?;
        Ok(())
    }

    async fn search_users(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let limit = limit.clamp(1, 100);
        let mut ids = std::collections::BTreeSet::new();
        for kind in [keys::USER_INDEX_ID, keys::USER_INDEX_EMAIL] {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(keys::USER_INDEX))
                .expression_attribute_values(":prefix", s(&format!("{kind}{prefix}")))
                .limit(i32::try_from(limit).unwrap_or(100))
                .send()
                .await
                .map_err(unavailable)?;
            for item in out.items() {
                ids.insert(get_s(item, "user_id")?);
            }
        }
        let mut users = Vec::new();
        for id in ids.into_iter().take(limit) {
            if let Some(user) = self.get_user(&UserId::from_stored(id)).await? {
                users.push(user);
            }
        }
        Ok(users)
    }

    async fn get_user(&self, user_id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        self.get(keys::user(user_id))
            .await?
            .as_ref()
            .map(user_from_item)
            .transpose()
    }

    async fn set_password(
        &self,
        user_id: &UserId,
        expected: AsRead<'_>,
        new_hash: &str,
        history: &[String],
        at: UnixTime,
    ) -> Result<(), StoreError> {
        let update = self
            .update(keys::user(user_id))
            .update_expression(
                "SET password_hash = :new, password_history = :history, password_changed_at = :at, must_change_password = :false ADD security_stamp :one",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":new", s(new_hash))
            .expression_attribute_values(":history", string_list(history))
            .expression_attribute_values(":at", n(at.secs()))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":stamp", n(stamp(expected.security_stamp)))
            .expression_attribute_names("#pk", PK);
        // The stamp as read (an item written before stamps were stored reads as 0).
        let stamp_as_read = if expected.security_stamp == 0 {
            "(attribute_not_exists(security_stamp) OR security_stamp = :stamp)"
        } else {
            "security_stamp = :stamp"
        };
        let update = match expected.password_hash {
            Some(old) => update
                .condition_expression(format!(
                    "attribute_exists(#pk) AND password_hash = :old AND {stamp_as_read}"
                ))
                .expression_attribute_values(":old", s(old)),
            None => update.condition_expression(format!(
                "attribute_exists(#pk) AND attribute_not_exists(password_hash) AND {stamp_as_read}"
            )),
        };
        if self.conditional(update).await? {
            Ok(())
        } else {
            Err(StoreError::ConditionFailed)
        }
    }

    async fn raise_security_stamp(&self, user_id: &UserId) -> Result<(), StoreError> {
        let update = self
            .update(keys::user(user_id))
            .update_expression("ADD security_stamp :one")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":one", n(1));
        if self.conditional(update).await? {
            Ok(())
        } else {
            Err(StoreError::ConditionFailed)
        }
    }

    async fn set_must_change_password(&self, user_id: &UserId) -> Result<(), StoreError> {
        let update = self
            .update(keys::user(user_id))
            .update_expression("SET must_change_password = :true")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":true", AttributeValue::Bool(true));
        if self.conditional(update).await? {
            Ok(())
        } else {
            Err(StoreError::ConditionFailed)
        }
    }

    async fn set_status(&self, user_id: &UserId, status: UserStatus) -> Result<(), StoreError> {
        let update = self
            .update(keys::user(user_id))
            .update_expression("SET #status = :status")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.as_str()));
        if self.conditional(update).await? {
            Ok(())
        } else {
            Err(StoreError::ConditionFailed)
        }
    }

    async fn set_roles(
        &self,
        user_id: &UserId,
        expected: &[String],
        roles: &[String],
    ) -> Result<(), StoreError> {
        // A list compares equal element by element, in order: `expected` is the list as read,
        // in its stored order; an item written without roles reads as none.
        let as_read = if expected.is_empty() {
            "(attribute_not_exists(#roles) OR #roles = :expected)"
        } else {
            "#roles = :expected"
        };
        let first_role = expected.is_empty() && !roles.is_empty();
        let update = self
            .update(keys::user(user_id))
            .update_expression(if first_role {
                "SET #roles = :roles ADD security_stamp :one"
            } else {
                "SET #roles = :roles"
            })
            .condition_expression(format!("attribute_exists(#pk) AND {as_read}"))
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#roles", "roles")
            .expression_attribute_values(":expected", string_list(expected))
            .expression_attribute_values(":roles", string_list(roles));
        let update = if first_role {
            update.expression_attribute_values(":one", n(1))
        } else {
            update
        };
        if self.conditional(update).await? {
            Ok(())
        } else {
            Err(StoreError::ConditionFailed)
        }
    }

    async fn deactivate_if_idle(
        &self,
        user_id: &UserId,
        cutoff: UnixTime,
    ) -> Result<bool, StoreError> {
        let update = self
            .update(keys::user(user_id))
            .update_expression("SET #status = :inactive ADD security_stamp :one")
            .condition_expression(
                "#status = :active AND created_at <= :cutoff AND (attribute_not_exists(last_sign_in_at) OR last_sign_in_at <= :cutoff)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":inactive", s(UserStatus::Inactive.as_str()))
            .expression_attribute_values(":active", s(UserStatus::Active.as_str()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":cutoff", n(cutoff.secs()));
        self.conditional(update).await
    }

    /// A filtered Scan: fine for a daily sweep of a bank's user base; a sparse index on
    /// `last_sign_in_at` would be the next step at larger scale.
    async fn list_users(
        &self,
        cursor: Option<String>,
    ) -> Result<(Vec<UserRecord>, Option<String>), StoreError> {
        let start = match cursor {
            Some(c) => {
                let (pk, sk) = c
                    .split_once('\u{1f}')
                    .ok_or_else(|| StoreError::Corrupt("bad cursor".into()))?;
                Some(key_item((pk.to_owned(), sk.to_owned())))
            }
            None => None,
        };
        let out = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("entity = :user")
            .expression_attribute_values(":user", s("user"))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(unavailable)?;
        let users = out
            .items()
            .iter()
            .map(user_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next = match out.last_evaluated_key {
            Some(key) if !key.is_empty() => {
                Some(format!("{}\u{1f}{}", get_s(&key, PK)?, get_s(&key, SK)?))
            }
            _ => None,
        };
        Ok((users, next))
    }

    async fn record_sign_in(&self, user_id: &UserId, at: UnixTime) -> Result<(), StoreError> {
        let update = self
            .update(keys::user(user_id))
            .update_expression("SET last_sign_in_at = :at")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":at", n(at.secs()));
        self.conditional(update).await.map(|_| ())
    }

    async fn replace_password_hash(
        &self,
        user_id: &UserId,
        expected: &str,
        new_hash: &str,
    ) -> Result<(), StoreError> {
        let (pk, sk) = keys::user(user_id);
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(&sk))
            .update_expression("SET password_hash = :new")
            .condition_expression("password_hash = :expected")
            .expression_attribute_values(":new", s(new_hash))
            .expression_attribute_values(":expected", s(expected))
            .send()
            .await
            .map_err(condition_or_unavailable)?;
        Ok(())
    }
}
