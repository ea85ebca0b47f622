//! The DynamoDB adapter: factors.

use super::*;

pub(super) fn factor_to_item(factor: &FactorRecord) -> Item {
    let mut item = key_item(keys::factor(&factor.user_id, &factor.factor_id));
    item.insert("entity".into(), s("factor"));
    item.insert("user_id".into(), s(factor.user_id.as_str()));
    item.insert("factor_id".into(), s(&factor.factor_id));
    item.insert("kind".into(), s(factor.kind.name()));
    item.insert("status".into(), s(factor.status.as_str()));
    item.insert("created_at".into(), n(factor.created_at.secs()));
    put_opt_s(&mut item, "replaces", factor.replaces.as_deref());
    match &factor.kind {
        FactorKind::Phone { e164, delivery } => {
            item.insert("phone".into(), s(e164));
            item.insert("delivery".into(), s(delivery.as_str()));
        }
        FactorKind::Totp {
            secret_ciphertext,
            last_used_step,
        } => {
            item.insert("secret_ciphertext".into(), s(secret_ciphertext));
            put_opt_n(&mut item, "last_used_step", *last_used_step);
        }
        FactorKind::Email { address } => {
            item.insert("email".into(), s(address));
        }
        FactorKind::Passkey {
            name,
            credential,
            sign_count,
            last_used_at,
        } => {
            item.insert("name".into(), s(name));
            put_opt_s(&mut item, "passkey", credential.as_deref());
            item.insert("sign_count".into(), n(i64::from(*sign_count)));
            put_opt_n(&mut item, "last_used_at", last_used_at.map(UnixTime::secs));
        }
    }
    item
}

pub(super) fn factor_from_item(item: &Item) -> Result<FactorRecord, StoreError> {
    let kind = match get_s(item, "kind")?.as_str() {
        "phone" => FactorKind::Phone {
            e164: get_s(item, "phone")?,
            delivery: Delivery::parse(&get_s(item, "delivery")?)?,
        },
        "totp" => FactorKind::Totp {
            secret_ciphertext: get_s(item, "secret_ciphertext")?,
            last_used_step: opt_n(item, "last_used_step")?,
        },
        "email" => FactorKind::Email {
            address: get_s(item, "email")?,
        },
        "passkey" => FactorKind::Passkey {
            name: get_s(item, "name")?,
            credential: opt_s(item, "passkey")?,
            sign_count: get_u32(item, "sign_count")?,
            last_used_at: opt_n(item, "last_used_at")?.map(UnixTime),
        },
        other => {
            return Err(StoreError::Corrupt(format!(
                "unknown factor kind {other:?}"
            )));
        }
    };
    Ok(FactorRecord {
        user_id: UserId::from_stored(get_s(item, "user_id")?),
        factor_id: get_s(item, "factor_id")?,
        kind,
        status: FactorStatus::parse(&get_s(item, "status")?)?,
        created_at: UnixTime(get_n(item, "created_at")?),
        replaces: opt_s(item, "replaces")?,
    })
}

#[async_trait]
impl FactorStore for DynamoStore {
    async fn create_factor(&self, factor: &FactorRecord) -> Result<(), StoreError> {
        self.put_new(factor_to_item(factor)).await
    }

    async fn list_factors(&self, user_id: &UserId) -> Result<Vec<FactorRecord>, StoreError> {
        let (pk, _) = keys::user(user_id);
        let mut factors = self
            .query_prefix(&pk, keys::factor_prefix(), false)
            .await?
            .iter()
            .map(factor_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        factors.sort_by(|a, b| (a.created_at, &a.factor_id).cmp(&(b.created_at, &b.factor_id)));
        Ok(factors)
    }

    async fn get_factor(
        &self,
        user_id: &UserId,
        factor_id: &str,
    ) -> Result<Option<FactorRecord>, StoreError> {
        self.get(keys::factor(user_id, factor_id))
            .await?
            .as_ref()
            .map(factor_from_item)
            .transpose()
    }

    async fn activate_factor(&self, user_id: &UserId, factor_id: &str) -> Result<(), StoreError> {
        let update = self
            .update(keys::factor(user_id, factor_id))
            .update_expression("SET #status = :active")
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":active", s(FactorStatus::Active.as_str()))
            .expression_attribute_values(":pending", s(FactorStatus::Pending.as_str()));
        if self.conditional(update).await? {
            Ok(())
        } else {
            Err(StoreError::ConditionFailed)
        }
    }

    async fn use_totp_step(
        &self,
        user_id: &UserId,
        factor_id: &str,
        step: i64,
    ) -> Result<bool, StoreError> {
        let update = self
            .update(keys::factor(user_id, factor_id))
            .update_expression("SET last_used_step = :step")
            .condition_expression(
                "kind = :totp AND (attribute_not_exists(last_used_step) OR last_used_step < :step)",
            )
            .expression_attribute_values(":step", n(step))
            .expression_attribute_values(":totp", s("totp"));
        self.conditional(update).await
    }

    /// A passkey's credential-ID record goes after the factor, only while it still points at
    /// that factor. Were the second delete lost, the record would name a factor that no longer
    /// exists: a passwordless sign-in with it fails as an unknown credential.
    async fn delete_factor(&self, user_id: &UserId, factor_id: &str) -> Result<bool, StoreError> {
        let Some(old) = self
            .delete_returning(keys::factor(user_id, factor_id))
            .await?
        else {
            return Ok(false);
        };
        if let Some(digest) = opt_s(&old, "credential_digest")? {
            let result = self
                .delete_item(keys::passkey(&digest))
                .condition_expression("user_id = :user AND factor_id = :factor")
                .expression_attribute_values(":user", s(user_id.as_str()))
                .expression_attribute_values(":factor", s(factor_id))
                .send()
                .await
                .map_err(condition_or_unavailable);
            match result {
                Ok(_) | Err(StoreError::ConditionFailed) => {}
                Err(other) => return Err(other),
            }
        }
        Ok(true)
    }

    /// One transaction: the factor (pending passkey → active, with its credential and digest)
    /// and the credential-ID record (only if no one has it).
    async fn activate_passkey(
        &self,
        user_id: &UserId,
        factor_id: &str,
        registered: &RegisteredPasskey<'_>,
    ) -> Result<(), StoreError> {
        let credential_digest = registered.credential_digest;
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
        let built = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Unavailable(e.to_string());
        let (pk, sk) = keys::factor(user_id, factor_id);
        let update = Update::builder()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(&sk))
            .update_expression(
                "SET #status = :active, passkey = :credential, credential_digest = :digest, sign_count = :count",
            )
            .condition_expression("#status = :pending AND kind = :passkey")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":active", s(FactorStatus::Active.as_str()))
            .expression_attribute_values(":pending", s(FactorStatus::Pending.as_str()))
            .expression_attribute_values(":passkey", s("passkey"))
            .expression_attribute_values(":credential", s(registered.credential))
            .expression_attribute_values(":count", n(i64::from(registered.sign_count)))
            .expression_attribute_values(":digest", s(credential_digest))
            .build()
            .map_err(built)?;
        let mut owner = key_item(keys::passkey(credential_digest));
        owner.insert("entity".into(), s("passkey"));
        owner.insert("user_id".into(), s(user_id.as_str()));
        owner.insert("factor_id".into(), s(factor_id));
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(owner))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(built)?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await
            .map_err(transaction_error)?;
        Ok(())
    }

    async fn find_passkey(
        &self,
        credential_digest: &str,
    ) -> Result<Option<PasskeyOwner>, StoreError> {
        match self.get(keys::passkey(credential_digest)).await? {
            Some(item) => Ok(Some(PasskeyOwner {
                user_id: UserId::from_stored(get_s(&item, "user_id")?),
                factor_id: get_s(&item, "factor_id")?,
            })),
            None => Ok(None),
        }
    }

    async fn record_passkey_use(
        &self,
        user_id: &UserId,
        factor_id: &str,
        used: &PasskeyUse<'_>,
    ) -> Result<bool, StoreError> {
        let update = self
            .update(keys::factor(user_id, factor_id))
            .update_expression("SET passkey = :credential, sign_count = :new, last_used_at = :at")
            .condition_expression("kind = :passkey AND #status = :active AND sign_count = :old")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":passkey", s("passkey"))
            .expression_attribute_values(":active", s(FactorStatus::Active.as_str()))
            .expression_attribute_values(":old", n(i64::from(used.expected_count)))
            .expression_attribute_values(":new", n(i64::from(used.new_count)))
            .expression_attribute_values(":credential", s(used.credential))
            .expression_attribute_values(":at", n(used.at.secs()));
        self.conditional(update).await
    }

    async fn rename_passkey(
        &self,
        user_id: &UserId,
        factor_id: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        let update = self
            .update(keys::factor(user_id, factor_id))
            .update_expression("SET #name = :name")
            .condition_expression("kind = :passkey")
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":passkey", s("passkey"))
            .expression_attribute_values(":name", s(name));
        self.conditional(update).await
    }
}
