//! In-memory adapter: the same behaviour as [`super::dynamo`] (the conformance suite checks),
//! for fast unit and handler tests and for measuring in-process cost.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::{
    ChallengeRecord, ChallengeStore, FactorRecord, FactorStore, FailureOutcome, LockoutPolicy,
    LockoutStore, UserRecord, UserStore,
};
use crate::clock::UnixTime;
use crate::error::StoreError;
use crate::identity::UserId;

#[derive(Debug, Clone, Copy)]
struct FailureCounter {
    failures: u32,
    locked_until: Option<UnixTime>,
    /// Same meaning as the DynamoDB `ttl` attribute: the counter is gone at this instant.
    expires_at: UnixTime,
}

#[derive(Debug, Default)]
struct State {
    users: HashMap<UserId, UserRecord>,
    factors: Vec<FactorRecord>,
    lockouts: HashMap<String, FailureCounter>,
    challenges: HashMap<String, ChallengeRecord>,
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    fn state(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        self.state.lock().map_err(|_| StoreError::Unavailable("memory store poisoned".into()))
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

    async fn get_user(&self, user_id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.state()?.users.get(user_id).cloned())
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
impl LockoutStore for MemoryStore {
    async fn locked_until(&self, key: &str, now: UnixTime) -> Result<Option<UnixTime>, StoreError> {
        let state = self.state()?;
        Ok(state
            .lockouts
            .get(key)
            .filter(|c| c.expires_at > now)
            .and_then(|c| c.locked_until)
            .filter(|until| *until > now))
    }

    async fn record_failure(
        &self,
        key: &str,
        now: UnixTime,
        policy: LockoutPolicy,
    ) -> Result<FailureOutcome, StoreError> {
        let mut state = self.state()?;
        let live = state.lockouts.get(key).copied().filter(|c| c.expires_at > now);
        let failures = match live {
            Some(FailureCounter { locked_until: Some(until), .. }) => {
                return Ok(FailureOutcome::AlreadyLocked { until });
            }
            Some(counter) => counter.failures.saturating_add(1),
            None => 1,
        };
        let (outcome, counter) = if failures >= policy.threshold {
            let until = now.plus_secs(policy.lock_secs);
            (
                FailureOutcome::LockStarted { until },
                FailureCounter { failures, locked_until: Some(until), expires_at: until },
            )
        } else {
            (
                FailureOutcome::Counted { failures },
                FailureCounter {
                    failures,
                    locked_until: None,
                    expires_at: now.plus_secs(policy.window_secs),
                },
            )
        };
        state.lockouts.insert(key.to_owned(), counter);
        Ok(outcome)
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        self.state()?.lockouts.remove(key);
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
        let mut factors: Vec<FactorRecord> =
            self.state()?.factors.iter().filter(|f| &f.user_id == user_id).cloned().collect();
        factors.sort_by(|a, b| {
            (a.created_at, &a.factor_id).cmp(&(b.created_at, &b.factor_id))
        });
        Ok(factors)
    }
}

#[async_trait]
impl ChallengeStore for MemoryStore {
    async fn create_challenge(&self, challenge: &ChallengeRecord) -> Result<(), StoreError> {
        let mut state = self.state()?;
        if state.challenges.contains_key(&challenge.id_digest) {
            return Err(StoreError::ConditionFailed);
        }
        state.challenges.insert(challenge.id_digest.clone(), challenge.clone());
        Ok(())
    }

    async fn get_challenge(
        &self,
        id_digest: &str,
        now: UnixTime,
    ) -> Result<Option<ChallengeRecord>, StoreError> {
        Ok(self.state()?.challenges.get(id_digest).filter(|c| c.expires_at > now).cloned())
    }
}
