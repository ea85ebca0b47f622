//! The DynamoDB adapter: challenges.

use super::*;

pub(super) fn challenge_to_item(c: &ChallengeRecord) -> Item {
    let mut item = key_item(keys::challenge(&c.id_digest));
    item.insert("entity".into(), s("challenge"));
    item.insert("id_digest".into(), s(&c.id_digest));
    item.insert("user_id".into(), s(c.user_id.as_str()));
    let stage = c.stage.stored();
    item.insert("purpose".into(), s(stage.purpose));
    item.insert("status".into(), s(stage.status));
    item.insert("created_at".into(), n(c.created_at.secs()));
    item.insert(TTL.into(), n(c.expires_at.secs()));
    item.insert("sends".into(), n(i64::from(c.sends)));
    item.insert("attempts".into(), n(i64::from(c.attempts)));
    item.insert("user_stamp".into(), n(stamp(c.user_stamp)));
    item.insert(
        "password_change_required".into(),
        AttributeValue::Bool(stage.password_change_required),
    );
    if let Some(code) = &c.code {
        item.insert("code_mac".into(), s(&code.mac));
        item.insert("code_expires_at".into(), n(code.expires_at.secs()));
        item.insert("code_factor_id".into(), s(&code.factor_id));
        item.insert("code_channel".into(), s(&code.channel));
    }
    put_opt_n(
        &mut item,
        "completed_at",
        c.completed_at.map(UnixTime::secs),
    );
    put_opt_s(&mut item, "factor_id", stage.factor_id);
    put_opt_s(&mut item, "session_id", stage.session_id);
    put_opt_s(
        &mut item,
        "ceremony",
        c.ceremony.as_ref().map(crate::crypto::SecretString::expose),
    );
    item
}

pub(super) fn challenge_from_item(item: &Item) -> Result<ChallengeRecord, StoreError> {
    let code = match opt_s(item, "code_mac")? {
        Some(mac) => Some(PendingCode {
            mac,
            expires_at: UnixTime(get_n(item, "code_expires_at")?),
            factor_id: get_s(item, "code_factor_id")?,
            channel: get_s(item, "code_channel")?,
        }),
        None => None,
    };
    let (purpose, status) = (get_s(item, "purpose")?, get_s(item, "status")?);
    let (factor_id, session_id) = (opt_s(item, "factor_id")?, opt_s(item, "session_id")?);
    let stage = Stage::from_stored(StoredStage {
        purpose: &purpose,
        status: &status,
        password_change_required: get_bool(item, "password_change_required")?,
        factor_id: factor_id.as_deref(),
        session_id: session_id.as_deref(),
    })
    .map_err(StoreError::Corrupt)?;
    Ok(ChallengeRecord {
        id_digest: get_s(item, "id_digest")?,
        user_id: UserId::from_stored(get_s(item, "user_id")?),
        stage,
        created_at: UnixTime(get_n(item, "created_at")?),
        expires_at: UnixTime(get_n(item, TTL)?),
        sends: get_u32(item, "sends")?,
        attempts: get_u32(item, "attempts")?,
        user_stamp: get_stamp(item, "user_stamp")?,
        code,
        completed_at: opt_n(item, "completed_at")?.map(UnixTime),
        ceremony: opt_s(item, "ceremony")?.map(crate::crypto::SecretString::new),
    })
}

const LIVE_AND_OPEN: &str = "#ttl > :now AND attribute_not_exists(completed_at)";

impl DynamoStore {
    /// After a lost condition on a challenge: was it gone (expired/completed/unknown)?
    async fn challenge_gone(&self, id_digest: &str, now: UnixTime) -> Result<bool, StoreError> {
        Ok(match self.get(keys::challenge(id_digest)).await? {
            Some(item) => !live(&item, now)? || opt_n(&item, "completed_at")?.is_some(),
            None => true,
        })
    }
}

#[async_trait]
impl ChallengeStore for DynamoStore {
    async fn create_challenge(&self, challenge: &ChallengeRecord) -> Result<(), StoreError> {
        self.put_new(challenge_to_item(challenge)).await
    }

    async fn get_challenge(
        &self,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        match self.get(keys::challenge(id_digest)).await? {
            Some(item) if live(&item, now)? => challenge_from_item(&item).map(Some),
            _ => Ok(None),
        }
    }

    async fn store_code(
        &self,
        id_digest: &str,
        now: UnixTime,
        max_sends: u32,
        code: &PendingCode,
    ) -> Result<SendSlot, StoreError> {
        let result = self
            .update(keys::challenge(id_digest))
            .update_expression(
                "SET code_mac = :mac, code_expires_at = :exp, code_factor_id = :fid, code_channel = :ch ADD sends :one",
            )
            .condition_expression(format!("{LIVE_AND_OPEN} AND sends < :max"))
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now", n(now.secs()))
            .expression_attribute_values(":max", n(i64::from(max_sends)))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":mac", s(&code.mac))
            .expression_attribute_values(":exp", n(code.expires_at.secs()))
            .expression_attribute_values(":fid", s(&code.factor_id))
            .expression_attribute_values(":ch", s(&code.channel))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(condition_or_unavailable);
        match result {
            Ok(out) => {
                let attrs = out.attributes.unwrap_or_default();
                Ok(SendSlot::Reserved {
                    sends: get_u32(&attrs, "sends")?,
                })
            }
            Err(StoreError::ConditionFailed) => Ok(if self.challenge_gone(id_digest, now).await? {
                SendSlot::Gone
            } else {
                SendSlot::LimitReached
            }),
            Err(other) => Err(other),
        }
    }

    async fn release_code(&self, id_digest: &str, mac: &str) -> Result<(), StoreError> {
        let update = self
            .update(keys::challenge(id_digest))
            .update_expression(
                "SET sends = sends - :one REMOVE code_mac, code_expires_at, code_factor_id, code_channel",
            )
            .condition_expression("code_mac = :mac AND sends >= :one")
            .expression_attribute_values(":mac", s(mac))
            .expression_attribute_values(":one", n(1));
        self.conditional(update).await.map(|_| ())
    }

    async fn reserve_attempt(
        &self,
        id_digest: &str,
        now: UnixTime,
        max_attempts: u32,
    ) -> Result<AttemptSlot, StoreError> {
        let result = self
            .update(keys::challenge(id_digest))
            .update_expression("ADD attempts :one")
            .condition_expression(format!("{LIVE_AND_OPEN} AND attempts < :max"))
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now", n(now.secs()))
            .expression_attribute_values(":max", n(i64::from(max_attempts)))
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(condition_or_unavailable);
        match result {
            Ok(out) => Ok(AttemptSlot::Reserved(Box::new(challenge_from_item(
                &out.attributes.unwrap_or_default(),
            )?))),
            Err(StoreError::ConditionFailed) => Ok(if self.challenge_gone(id_digest, now).await? {
                AttemptSlot::Gone
            } else {
                AttemptSlot::Exhausted
            }),
            Err(other) => Err(other),
        }
    }

    async fn complete_challenge(
        &self,
        id_digest: &str,
        now: UnixTime,
        expected_mac: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .update(keys::challenge(id_digest))
            .update_expression(
                "SET completed_at = :now REMOVE code_mac, code_expires_at, code_factor_id, code_channel",
            )
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now", n(now.secs()));
        update = match expected_mac {
            Some(mac) => update
                .condition_expression(format!("{LIVE_AND_OPEN} AND code_mac = :mac"))
                .expression_attribute_values(":mac", s(mac)),
            None => update.condition_expression(LIVE_AND_OPEN),
        };
        self.conditional(update).await
    }

    async fn delete_challenge(&self, id_digest: &str) -> Result<(), StoreError> {
        self.delete(keys::challenge(id_digest)).await.map(|_| ())
    }

    async fn put_ceremony(
        &self,
        id_digest: &str,
        now: UnixTime,
        ceremony: &crate::crypto::SecretString,
    ) -> Result<bool, StoreError> {
        let update = self
            .update(keys::challenge(id_digest))
            .update_expression("SET ceremony = :ceremony")
            .condition_expression(LIVE_AND_OPEN)
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now", n(now.secs()))
            .expression_attribute_values(":ceremony", s(ceremony.expose()));
        self.conditional(update).await
    }

    async fn take_ceremony(
        &self,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<Option<crate::crypto::SecretString>, StoreError> {
        let result = self
            .update(keys::challenge(id_digest))
            .update_expression("REMOVE ceremony")
            .condition_expression(format!("{LIVE_AND_OPEN} AND attribute_exists(ceremony)"))
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":now", n(now.secs()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedOld)
            .send()
            .await
            .map_err(condition_or_unavailable);
        match result {
            Ok(out) => Ok(opt_s(&out.attributes.unwrap_or_default(), "ceremony")?
                .map(crate::crypto::SecretString::new)),
            Err(StoreError::ConditionFailed) => Ok(None),
            Err(other) => Err(other),
        }
    }
}
