//! In-memory adapter: the same behaviour as [`super::dynamo`] (the conformance suite checks),
//! for fast unit and handler tests and for measuring in-process cost.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::keys;
use super::{
    AdminRequest, AdminStore, AsRead, AttemptSlot, AuditEvent, AuditStore, ChallengeRecord,
    ChallengeStore, Counter, CounterKey, CounterStore, DeliveryRecord, DeliveryStore, DeviceRecord,
    DeviceStore, FactorKind, FactorRecord, FactorStatus, FactorStore, InvitationRecord, KeyStore,
    MacKeys, PasskeyOwner, PasskeyUse, PendingCode, RecoveryCodeRecord, RecoveryStore,
    RegisteredPasskey, ResetRecord, ResetStore, Rotation, SendSlot, SessionRecord, SessionStore,
    SigningKeys, Swapped, UserRecord, UserStatus, UserStore, Versioned,
};
use crate::clock::UnixTime;
use crate::error::StoreError;
use crate::identity::UserId;

#[derive(Debug, Default)]
struct State {
    users: HashMap<UserId, UserRecord>,
    factors: Vec<FactorRecord>,
    counters: HashMap<(String, String), Versioned>,
    challenges: HashMap<String, ChallengeRecord>,
    sessions: HashMap<(UserId, String), SessionRecord>,
    deliveries: Vec<DeliveryRecord>,
    recovery: HashMap<UserId, Vec<RecoveryCodeRecord>>,
    devices: Vec<DeviceRecord>,
    resets: HashMap<String, ResetRecord>,
    events: Vec<AuditEvent>,
    seen: std::collections::HashSet<(UserId, String)>,
    invitations: HashMap<String, InvitationRecord>,
    requests: HashMap<String, AdminRequest>,
    passkeys: HashMap<String, PasskeyOwner>,
    signing_keys: HashMap<String, SigningKeys>,
    mac_keys: HashMap<String, MacKeys>,
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    fn state(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store poisoned".into()))
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn get_signing_keys(&self, name: &str) -> Result<Option<SigningKeys>, StoreError> {
        Ok(self.state()?.signing_keys.get(name).cloned())
    }

    async fn put_signing_keys(
        &self,
        name: &str,
        keys: &SigningKeys,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut state = self.state()?;
        if state.signing_keys.get(name).map(|k| k.version) != expected_version {
            return Err(StoreError::ConditionFailed);
        }
        state.signing_keys.insert(name.to_owned(), keys.clone());
        Ok(())
    }

    async fn get_mac_keys(&self, name: &str) -> Result<Option<MacKeys>, StoreError> {
        Ok(self.state()?.mac_keys.get(name).cloned())
    }

    async fn put_mac_keys(
        &self,
        name: &str,
        keys: &MacKeys,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut state = self.state()?;
        if state.mac_keys.get(name).map(|k| k.version) != expected_version {
            return Err(StoreError::ConditionFailed);
        }
        state.mac_keys.insert(name.to_owned(), keys.clone());
        Ok(())
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let mut state = self.state()?;
        if state.users.contains_key(&user.user_id) {
            return Err(StoreError::ConditionFailed);
        }
        state.users.insert(user.user_id.clone(), user.clone());
        Ok(())
    }

    async fn search_users(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let state = self.state()?;
        let mut found: Vec<UserRecord> = state
            .users
            .values()
            .filter(|u| {
                u.user_id.as_str().starts_with(prefix)
                    || u.email
                        .as_ref()
                        .is_some_and(|e| e.to_lowercase().starts_with(prefix))
            })
            .cloned()
            .collect();
        found.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        found.truncate(limit);
        Ok(found)
    }

    async fn get_user(&self, user_id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.state()?.users.get(user_id).cloned())
    }

    async fn set_password(
        &self,
        user_id: &UserId,
        expected: AsRead<'_>,
        new_hash: &str,
        history: &[String],
        at: UnixTime,
    ) -> Result<(), StoreError> {
        let mut state = self.state()?;
        match state.users.get_mut(user_id) {
            Some(user) if AsRead::of(user) == expected => {
                user.password_hash = Some(new_hash.to_owned());
                user.password_history = history.to_vec();
                user.password_changed_at = Some(at);
                user.must_change_password = false;
                user.security_stamp += 1;
                Ok(())
            }
            _ => Err(StoreError::ConditionFailed),
        }
    }

    async fn raise_security_stamp(&self, user_id: &UserId) -> Result<(), StoreError> {
        match self.state()?.users.get_mut(user_id) {
            Some(user) => {
                user.security_stamp += 1;
                Ok(())
            }
            None => Err(StoreError::ConditionFailed),
        }
    }

    async fn set_must_change_password(&self, user_id: &UserId) -> Result<(), StoreError> {
        match self.state()?.users.get_mut(user_id) {
            Some(user) => {
                user.must_change_password = true;
                Ok(())
            }
            None => Err(StoreError::ConditionFailed),
        }
    }

    async fn set_status(&self, user_id: &UserId, status: UserStatus) -> Result<(), StoreError> {
        match self.state()?.users.get_mut(user_id) {
            Some(user) => {
                user.status = status;
                Ok(())
            }
            None => Err(StoreError::ConditionFailed),
        }
    }

    async fn set_roles(
        &self,
        user_id: &UserId,
        expected: &[String],
        roles: &[String],
    ) -> Result<(), StoreError> {
        match self.state()?.users.get_mut(user_id) {
            Some(user) if user.roles == expected => {
                if expected.is_empty() && !roles.is_empty() {
                    user.security_stamp = user.security_stamp.wrapping_add(1);
                }
                user.roles = roles.to_vec();
                Ok(())
            }
            _ => Err(StoreError::ConditionFailed),
        }
    }

    async fn deactivate_if_idle(
        &self,
        user_id: &UserId,
        cutoff: UnixTime,
    ) -> Result<bool, StoreError> {
        match self.state()?.users.get_mut(user_id) {
            Some(user)
                if user.status == UserStatus::Active
                    && user.last_sign_in_at.unwrap_or(user.created_at) <= cutoff
                    && user.created_at <= cutoff =>
            {
                user.status = UserStatus::Inactive;
                user.security_stamp = user.security_stamp.wrapping_add(1);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list_users(
        &self,
        cursor: Option<String>,
    ) -> Result<(Vec<UserRecord>, Option<String>), StoreError> {
        const PAGE: usize = 100;
        let state = self.state()?;
        let mut users: Vec<&UserRecord> = state.users.values().collect();
        users.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        let start = cursor.and_then(|c| c.parse::<usize>().ok()).unwrap_or(0);
        let page: Vec<UserRecord> = users
            .iter()
            .skip(start)
            .take(PAGE)
            .map(|u| (*u).clone())
            .collect();
        let next = (start + PAGE < users.len()).then(|| (start + PAGE).to_string());
        Ok((page, next))
    }

    async fn record_sign_in(&self, user_id: &UserId, at: UnixTime) -> Result<(), StoreError> {
        if let Some(user) = self.state()?.users.get_mut(user_id) {
            user.last_sign_in_at = Some(at);
        }
        Ok(())
    }

    async fn replace_password_hash(
        &self,
        user_id: &UserId,
        expected: &str,
        new_hash: &str,
    ) -> Result<(), StoreError> {
        let mut state = self.state()?;
        match state.users.get_mut(user_id) {
            Some(user) if user.password_hash.as_deref() == Some(expected) => {
                user.password_hash = Some(new_hash.to_owned());
                Ok(())
            }
            _ => Err(StoreError::ConditionFailed),
        }
    }
}

#[async_trait]
impl CounterStore for MemoryStore {
    async fn read_counter(
        &self,
        key: CounterKey<'_>,
        now: UnixTime,
    ) -> Result<Option<Versioned>, StoreError> {
        Ok(self
            .state()?
            .counters
            .get(&keys::counter(key))
            .filter(|v| v.counter.expires_at > now)
            .cloned())
    }

    async fn swap_counter(
        &self,
        key: CounterKey<'_>,
        now: UnixTime,
        seen: Option<u64>,
        next: Option<&Counter>,
    ) -> Result<Swapped, StoreError> {
        let mut state = self.state()?;
        let key = keys::counter(key);
        let current = state
            .counters
            .get(&key)
            .filter(|v| v.counter.expires_at > now)
            .map(|v| v.version);
        if current != seen {
            return Ok(Swapped::Lost);
        }
        match next {
            Some(counter) => {
                let stored = Versioned {
                    counter: counter.clone(),
                    version: super::next_counter_version(seen),
                };
                state.counters.insert(key, stored.clone());
                Ok(Swapped::Won(Some(stored)))
            }
            None => {
                state.counters.remove(&key);
                Ok(Swapped::Won(None))
            }
        }
    }

    async fn clear_counter(&self, key: CounterKey<'_>) -> Result<(), StoreError> {
        self.state()?.counters.remove(&keys::counter(key));
        Ok(())
    }
}

#[async_trait]
impl FactorStore for MemoryStore {
    async fn create_factor(&self, factor: &FactorRecord) -> Result<(), StoreError> {
        let mut state = self.state()?;
        if state
            .factors
            .iter()
            .any(|f| f.user_id == factor.user_id && f.factor_id == factor.factor_id)
        {
            return Err(StoreError::ConditionFailed);
        }
        state.factors.push(factor.clone());
        Ok(())
    }

    async fn list_factors(&self, user_id: &UserId) -> Result<Vec<FactorRecord>, StoreError> {
        let mut factors: Vec<FactorRecord> = self
            .state()?
            .factors
            .iter()
            .filter(|f| &f.user_id == user_id)
            .cloned()
            .collect();
        factors.sort_by(|a, b| (a.created_at, &a.factor_id).cmp(&(b.created_at, &b.factor_id)));
        Ok(factors)
    }

    async fn get_factor(
        &self,
        user_id: &UserId,
        factor_id: &str,
    ) -> Result<Option<FactorRecord>, StoreError> {
        Ok(self
            .state()?
            .factors
            .iter()
            .find(|f| &f.user_id == user_id && f.factor_id == factor_id)
            .cloned())
    }

    async fn activate_factor(&self, user_id: &UserId, factor_id: &str) -> Result<(), StoreError> {
        let mut state = self.state()?;
        match state
            .factors
            .iter_mut()
            .find(|f| &f.user_id == user_id && f.factor_id == factor_id)
        {
            Some(f) if f.status == FactorStatus::Pending => {
                f.status = FactorStatus::Active;
                Ok(())
            }
            _ => Err(StoreError::ConditionFailed),
        }
    }

    async fn use_totp_step(
        &self,
        user_id: &UserId,
        factor_id: &str,
        step: i64,
    ) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        let Some(f) = state
            .factors
            .iter_mut()
            .find(|f| &f.user_id == user_id && f.factor_id == factor_id)
        else {
            return Ok(false);
        };
        match &mut f.kind {
            FactorKind::Totp { last_used_step, .. }
                if last_used_step.is_none_or(|last| last < step) =>
            {
                *last_used_step = Some(step);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_factor(&self, user_id: &UserId, factor_id: &str) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        let before = state.factors.len();
        state
            .factors
            .retain(|f| !(&f.user_id == user_id && f.factor_id == factor_id));
        state
            .passkeys
            .retain(|_, owner| !(&owner.user_id == user_id && owner.factor_id == factor_id));
        Ok(state.factors.len() != before)
    }

    async fn activate_passkey(
        &self,
        user_id: &UserId,
        factor_id: &str,
        registered: &RegisteredPasskey<'_>,
    ) -> Result<(), StoreError> {
        let mut state = self.state()?;
        if state.passkeys.contains_key(registered.credential_digest) {
            return Err(StoreError::ConditionFailed);
        }
        let Some(factor) = state
            .factors
            .iter_mut()
            .find(|f| &f.user_id == user_id && f.factor_id == factor_id)
        else {
            return Err(StoreError::ConditionFailed);
        };
        let FactorKind::Passkey {
            credential: stored,
            sign_count,
            ..
        } = &mut factor.kind
        else {
            return Err(StoreError::ConditionFailed);
        };
        if factor.status != FactorStatus::Pending {
            return Err(StoreError::ConditionFailed);
        }
        *stored = Some(registered.credential.to_owned());
        *sign_count = registered.sign_count;
        factor.status = FactorStatus::Active;
        state.passkeys.insert(
            registered.credential_digest.to_owned(),
            PasskeyOwner {
                user_id: user_id.clone(),
                factor_id: factor_id.to_owned(),
            },
        );
        Ok(())
    }

    async fn find_passkey(
        &self,
        credential_digest: &str,
    ) -> Result<Option<PasskeyOwner>, StoreError> {
        Ok(self.state()?.passkeys.get(credential_digest).cloned())
    }

    async fn record_passkey_use(
        &self,
        user_id: &UserId,
        factor_id: &str,
        used: &PasskeyUse<'_>,
    ) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        let Some(factor) = state.factors.iter_mut().find(|f| {
            &f.user_id == user_id && f.factor_id == factor_id && f.status == FactorStatus::Active
        }) else {
            return Ok(false);
        };
        match &mut factor.kind {
            FactorKind::Passkey {
                credential,
                sign_count,
                last_used_at,
                ..
            } if *sign_count == used.expected_count => {
                *credential = Some(used.credential.to_owned());
                *sign_count = used.new_count;
                *last_used_at = Some(used.at);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn rename_passkey(
        &self,
        user_id: &UserId,
        factor_id: &str,
        new_name: &str,
    ) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        match state
            .factors
            .iter_mut()
            .find(|f| &f.user_id == user_id && f.factor_id == factor_id)
            .map(|f| &mut f.kind)
        {
            Some(FactorKind::Passkey { name, .. }) => {
                new_name.clone_into(name);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl ChallengeStore for MemoryStore {
    async fn create_challenge(&self, challenge: &ChallengeRecord) -> Result<(), StoreError> {
        let mut state = self.state()?;
        if state.challenges.contains_key(&challenge.id_digest) {
            return Err(StoreError::ConditionFailed);
        }
        state
            .challenges
            .insert(challenge.id_digest.clone(), challenge.clone());
        Ok(())
    }

    async fn get_challenge(
        &self,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        Ok(self
            .state()?
            .challenges
            .get(id_digest)
            .filter(|c| c.expires_at > now)
            .cloned())
    }

    async fn store_code(
        &self,
        id_digest: &str,
        now: UnixTime,
        max_sends: u32,
        code: &PendingCode,
    ) -> Result<SendSlot, StoreError> {
        let mut state = self.state()?;
        let Some(c) = state
            .challenges
            .get_mut(id_digest)
            .filter(|c| c.expires_at > now && c.completed_at.is_none())
        else {
            return Ok(SendSlot::Gone);
        };
        if c.sends >= max_sends {
            return Ok(SendSlot::LimitReached);
        }
        c.sends += 1;
        c.code = Some(code.clone());
        Ok(SendSlot::Reserved { sends: c.sends })
    }

    async fn release_code(&self, id_digest: &str, mac: &str) -> Result<(), StoreError> {
        let mut state = self.state()?;
        if let Some(c) = state.challenges.get_mut(id_digest)
            && c.code.as_ref().is_some_and(|code| code.mac == mac)
        {
            c.code = None;
            c.sends = c.sends.saturating_sub(1);
        }
        Ok(())
    }

    async fn reserve_attempt(
        &self,
        id_digest: &str,
        now: UnixTime,
        max_attempts: u32,
    ) -> Result<AttemptSlot, StoreError> {
        let mut state = self.state()?;
        let Some(c) = state
            .challenges
            .get_mut(id_digest)
            .filter(|c| c.expires_at > now && c.completed_at.is_none())
        else {
            return Ok(AttemptSlot::Gone);
        };
        if c.attempts >= max_attempts {
            return Ok(AttemptSlot::Exhausted);
        }
        c.attempts += 1;
        Ok(AttemptSlot::Reserved(Box::new(c.clone())))
    }

    async fn complete_challenge(
        &self,
        id_digest: &str,
        now: UnixTime,
        expected_mac: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        let Some(c) = state
            .challenges
            .get_mut(id_digest)
            .filter(|c| c.expires_at > now && c.completed_at.is_none())
        else {
            return Ok(false);
        };
        if let Some(mac) = expected_mac
            && c.code.as_ref().is_none_or(|code| code.mac != mac)
        {
            return Ok(false);
        }
        c.completed_at = Some(now);
        c.code = None;
        Ok(true)
    }

    async fn delete_challenge(&self, id_digest: &str) -> Result<(), StoreError> {
        self.state()?.challenges.remove(id_digest);
        Ok(())
    }

    async fn put_ceremony(
        &self,
        id_digest: &str,
        now: UnixTime,
        ceremony: &crate::crypto::SecretString,
    ) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        match state.challenges.get_mut(id_digest) {
            Some(c) if c.expires_at > now && c.completed_at.is_none() => {
                c.ceremony = Some(ceremony.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn take_ceremony(
        &self,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<Option<crate::crypto::SecretString>, StoreError> {
        let mut state = self.state()?;
        Ok(match state.challenges.get_mut(id_digest) {
            Some(c) if c.expires_at > now && c.completed_at.is_none() => c.ceremony.take(),
            _ => None,
        })
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let mut state = self.state()?;
        let key = (session.user_id.clone(), session.session_id.clone());
        if state.sessions.contains_key(&key) {
            return Err(StoreError::ConditionFailed);
        }
        state.sessions.insert(key, session.clone());
        Ok(())
    }

    async fn get_session(
        &self,
        user_id: &UserId,
        session_id: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .state()?
            .sessions
            .get(&(user_id.clone(), session_id.to_owned()))
            .cloned())
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
        let mut state = self.state()?;
        match state
            .sessions
            .get_mut(&(user_id.clone(), session_id.to_owned()))
        {
            Some(s) if !s.revoked && s.refresh_digest == old_digest => {
                s.rotated.push(old_digest.to_owned());
                s.refresh_digest = new_digest.to_owned();
                s.last_refresh_at = now;
                s.idle_expires_at = idle_expires_at;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn revoke_session(&self, user_id: &UserId, session_id: &str) -> Result<(), StoreError> {
        if let Some(s) = self
            .state()?
            .sessions
            .get_mut(&(user_id.clone(), session_id.to_owned()))
        {
            s.revoked = true;
        }
        Ok(())
    }

    async fn restamp_session(
        &self,
        user_id: &UserId,
        session_id: &str,
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError> {
        match self
            .state()?
            .sessions
            .get_mut(&(user_id.clone(), session_id.to_owned()))
        {
            Some(s) if !s.revoked && s.user_stamp == Some(from) => {
                s.user_stamp = Some(to);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list_sessions(&self, user_id: &UserId) -> Result<Vec<SessionRecord>, StoreError> {
        let mut sessions: Vec<SessionRecord> = self
            .state()?
            .sessions
            .values()
            .filter(|s| &s.user_id == user_id)
            .cloned()
            .collect();
        sessions.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        Ok(sessions)
    }

    async fn elevate_session(
        &self,
        user_id: &UserId,
        session_id: &str,
        auth_time: UnixTime,
        amr: &[String],
        acr: &str,
    ) -> Result<(), StoreError> {
        match self
            .state()?
            .sessions
            .get_mut(&(user_id.clone(), session_id.to_owned()))
        {
            Some(s) if !s.revoked => {
                s.auth_time = auth_time;
                s.amr = amr.to_vec();
                s.acr = acr.to_owned();
                Ok(())
            }
            _ => Err(StoreError::ConditionFailed),
        }
    }
}

#[async_trait]
impl DeliveryStore for MemoryStore {
    async fn record_delivery(&self, delivery: &DeliveryRecord) -> Result<(), StoreError> {
        let mut state = self.state()?;
        if state
            .deliveries
            .iter()
            .any(|d| d.user_id == delivery.user_id && d.delivery_id == delivery.delivery_id)
        {
            return Err(StoreError::ConditionFailed);
        }
        state.deliveries.push(delivery.clone());
        Ok(())
    }

    async fn list_deliveries(
        &self,
        user_id: &UserId,
        now: UnixTime,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut out: Vec<DeliveryRecord> = self
            .state()?
            .deliveries
            .iter()
            .filter(|d| &d.user_id == user_id && d.expires_at > now)
            .cloned()
            .collect();
        out.sort_by(|a, b| (b.at, &b.delivery_id).cmp(&(a.at, &a.delivery_id)));
        Ok(out)
    }
}

#[async_trait]
impl RecoveryStore for MemoryStore {
    async fn replace_recovery_codes(
        &self,
        user_id: &UserId,
        codes: &[RecoveryCodeRecord],
    ) -> Result<(), StoreError> {
        self.state()?
            .recovery
            .insert(user_id.clone(), codes.to_vec());
        Ok(())
    }

    async fn get_recovery_code(
        &self,
        user_id: &UserId,
        tag: &str,
    ) -> Result<Option<RecoveryCodeRecord>, StoreError> {
        Ok(self
            .state()?
            .recovery
            .get(user_id)
            .and_then(|codes| codes.iter().find(|c| c.tag == tag).cloned()))
    }

    async fn use_recovery_code(
        &self,
        user_id: &UserId,
        tag: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        match state
            .recovery
            .get_mut(user_id)
            .and_then(|codes| codes.iter_mut().find(|c| c.tag == tag))
        {
            Some(code) if code.used_at.is_none() => {
                code.used_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn remaining_recovery_codes(&self, user_id: &UserId) -> Result<u32, StoreError> {
        let state = self.state()?;
        let n = state
            .recovery
            .get(user_id)
            .map(|c| c.iter().filter(|c| c.used_at.is_none()).count())
            .unwrap_or(0);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

#[async_trait]
impl DeviceStore for MemoryStore {
    async fn create_device(&self, device: &DeviceRecord) -> Result<(), StoreError> {
        let mut state = self.state()?;
        if state
            .devices
            .iter()
            .any(|d| d.user_id == device.user_id && d.device_id == device.device_id)
        {
            return Err(StoreError::ConditionFailed);
        }
        state.devices.push(device.clone());
        Ok(())
    }

    async fn get_device(
        &self,
        user_id: &UserId,
        device_id: &str,
        now: UnixTime,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        Ok(self
            .state()?
            .devices
            .iter()
            .find(|d| &d.user_id == user_id && d.device_id == device_id && d.expires_at > now)
            .cloned())
    }

    async fn list_devices(
        &self,
        user_id: &UserId,
        now: UnixTime,
    ) -> Result<Vec<DeviceRecord>, StoreError> {
        let mut out: Vec<DeviceRecord> = self
            .state()?
            .devices
            .iter()
            .filter(|d| &d.user_id == user_id && d.expires_at > now)
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.device_id).cmp(&(b.created_at, &b.device_id)));
        Ok(out)
    }

    async fn touch_device(
        &self,
        user_id: &UserId,
        device_id: &str,
        token_digest: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        match self.state()?.devices.iter_mut().find(|d| {
            &d.user_id == user_id
                && d.device_id == device_id
                && d.token_digest == token_digest
                && d.expires_at > now
        }) {
            Some(d) => {
                d.last_used_at = now;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn delete_device(&self, user_id: &UserId, device_id: &str) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        let before = state.devices.len();
        state
            .devices
            .retain(|d| !(&d.user_id == user_id && d.device_id == device_id));
        Ok(state.devices.len() != before)
    }

    async fn delete_all_devices(&self, user_id: &UserId) -> Result<u32, StoreError> {
        let mut state = self.state()?;
        let before = state.devices.len();
        state.devices.retain(|d| &d.user_id != user_id);
        Ok(u32::try_from(before - state.devices.len()).unwrap_or(u32::MAX))
    }
}

#[async_trait]
impl ResetStore for MemoryStore {
    async fn create_reset(&self, reset: &ResetRecord) -> Result<(), StoreError> {
        let mut state = self.state()?;
        if state.resets.contains_key(&reset.token_digest) {
            return Err(StoreError::ConditionFailed);
        }
        state
            .resets
            .insert(reset.token_digest.clone(), reset.clone());
        Ok(())
    }

    async fn take_reset(
        &self,
        token_digest: &str,
        now: UnixTime,
    ) -> Result<Option<ResetRecord>, StoreError> {
        Ok(self
            .state()?
            .resets
            .remove(token_digest)
            .filter(|r| r.expires_at > now))
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn append_event(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut state = self.state()?;
        if state
            .events
            .iter()
            .any(|e| e.subject == event.subject && e.event_id == event.event_id)
        {
            return Err(StoreError::ConditionFailed);
        }
        state.events.push(event.clone());
        Ok(())
    }

    async fn list_events(
        &self,
        user_id: &UserId,
        now: UnixTime,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let mut out: Vec<AuditEvent> = self
            .state()?
            .events
            .iter()
            .filter(|e| &e.subject == user_id && e.expires_at > now)
            .cloned()
            .collect();
        out.sort_by(|a, b| (b.at, &b.event_id).cmp(&(a.at, &a.event_id)));
        out.truncate(limit);
        Ok(out)
    }

    async fn first_sighting(
        &self,
        user_id: &UserId,
        fingerprint: &str,
        _now: UnixTime,
    ) -> Result<bool, StoreError> {
        Ok(self
            .state()?
            .seen
            .insert((user_id.clone(), fingerprint.to_owned())))
    }
}

#[async_trait]
impl AdminStore for MemoryStore {
    async fn create_invitation(&self, invitation: &InvitationRecord) -> Result<(), StoreError> {
        let mut state = self.state()?;
        if state.invitations.contains_key(&invitation.token_digest) {
            return Err(StoreError::ConditionFailed);
        }
        state
            .invitations
            .insert(invitation.token_digest.clone(), invitation.clone());
        Ok(())
    }

    async fn take_invitation(
        &self,
        token_digest: &str,
        now: UnixTime,
    ) -> Result<Option<InvitationRecord>, StoreError> {
        Ok(self
            .state()?
            .invitations
            .remove(token_digest)
            .filter(|i| i.expires_at > now))
    }

    async fn create_request(&self, request: &AdminRequest) -> Result<(), StoreError> {
        let mut state = self.state()?;
        if state.requests.contains_key(&request.request_id) {
            return Err(StoreError::ConditionFailed);
        }
        state
            .requests
            .insert(request.request_id.clone(), request.clone());
        Ok(())
    }

    async fn get_request(
        &self,
        request_id: &str,
        now: UnixTime,
    ) -> Result<Option<AdminRequest>, StoreError> {
        Ok(self
            .state()?
            .requests
            .get(request_id)
            .filter(|r| r.expires_at > now)
            .cloned())
    }

    async fn list_requests(&self, now: UnixTime) -> Result<Vec<AdminRequest>, StoreError> {
        let mut out: Vec<AdminRequest> = self
            .state()?
            .requests
            .values()
            .filter(|r| r.expires_at > now)
            .cloned()
            .collect();
        out.sort_by_key(|r| r.created_at);
        Ok(out)
    }

    async fn approve_request(
        &self,
        request_id: &str,
        approver: &str,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        match self.state()?.requests.get_mut(request_id) {
            Some(r)
                if r.expires_at > now
                    && r.approved_by.is_none()
                    && r.requested_by != approver
                    && r.user_id.as_str() != approver =>
            {
                r.approved_by = Some(approver.to_owned());
                r.approved_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn withdraw_approval(&self, request_id: &str, approver: &str) -> Result<(), StoreError> {
        if let Some(r) = self.state()?.requests.get_mut(request_id)
            && r.approved_by.as_deref() == Some(approver)
        {
            r.approved_by = None;
            r.approved_at = None;
        }
        Ok(())
    }
}
