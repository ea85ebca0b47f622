//! The counted limits as services use them: each applies one pure rule of [`crate::limits`]
//! to one counter (read, decide, conditional write).

use crate::clock::UnixTime;
use crate::deps::Deps;
use crate::error::{ApiError, StoreError};
use crate::identity::UserId;
use crate::limits::{
    self, CapOutcome, Counter, Decision, FailureOutcome, LockoutPolicy, PasswordSlot, Reservation,
    RollingCap, Write,
};
use crate::storage::{CounterKey, MAX_COUNTER_ROUNDS, Swapped, Versioned};

/// Applies `rule` to the counter at `key` and stores its decision, atomically with respect to
/// every other update of that counter: read, decide, write only if nobody wrote in between,
/// else read again. Starts from `known` (a [`Seen`] of this request) instead of a read when
/// given.
async fn update<T>(
    deps: &Deps,
    key: CounterKey<'_>,
    now: UnixTime,
    known: Option<Seen>,
    rule: impl Fn(Option<&Counter>) -> Decision<T> + Send,
) -> Result<T, StoreError> {
    update_from(deps, key, now, known, rule)
        .await
        .map(|(outcome, _)| outcome)
}

/// A counter as this request last saw it: read by it, or written by it. Handed to the next
/// update of the same counter in the same request, it saves that update its read (one round
/// trip): the first write is conditional on this version, and a request that lost a race to
/// another reads as usual. Never kept beyond one request.
#[derive(Debug, Clone)]
pub struct Seen(Option<Versioned>);

/// [`update`], returning the counter as stored afterwards too.
async fn update_from<T>(
    deps: &Deps,
    key: CounterKey<'_>,
    now: UnixTime,
    known: Option<Seen>,
    rule: impl Fn(Option<&Counter>) -> Decision<T> + Send,
) -> Result<(T, Seen), StoreError> {
    let mut known = known;
    for round in 0..MAX_COUNTER_ROUNDS {
        if round > 0 {
            // Lost the race: let the winners' writes land before reading again.
            let most = 2 + 3 * round as u64;
            let pause = rand::Rng::random_range(&mut rand::rng(), 1..=most);
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
        let seen = match known.take() {
            // Expired since: absent for the rule and for the write's condition alike.
            Some(Seen(seen)) => seen.filter(|v| v.counter.expires_at > now),
            None => deps.stores.counters.read_counter(key, now).await?,
        };
        let decision = rule(seen.as_ref().map(|v| &v.counter));
        let next = match &decision.write {
            Write::Keep => return Ok((decision.outcome, Seen(seen))),
            Write::Put(counter) => Some(counter),
            Write::Delete if seen.is_none() => return Ok((decision.outcome, Seen(None))),
            Write::Delete => None,
        };
        let version = seen.as_ref().map(|v| v.version);
        if let Swapped::Won(stored) = deps
            .stores
            .counters
            .swap_counter(key, now, version, next)
            .await?
        {
            return Ok((decision.outcome, Seen(stored)));
        }
    }
    Err(StoreError::Unavailable("counter too contended".into()))
}

/// Reads the counter at `key`, for a later update in this request.
pub async fn read(deps: &Deps, key: CounterKey<'_>) -> Result<Seen, StoreError> {
    let now = deps.clock.now();
    Ok(Seen(deps.stores.counters.read_counter(key, now).await?))
}

/// The password lockout (SPEC §2: 5 failures, 30 minutes).
pub fn password_policy(deps: &Deps) -> LockoutPolicy {
    LockoutPolicy {
        threshold: deps.settings.lockout_threshold,
        lock_secs: deps.settings.lockout_secs,
        window_secs: deps.settings.failure_window_secs,
    }
}

/// The per-source-IP throttle (SPEC §8: 30 failures in 10 minutes, 10 minutes).
pub fn ip_policy(deps: &Deps) -> LockoutPolicy {
    LockoutPolicy {
        threshold: deps.settings.ip_failure_threshold,
        lock_secs: deps.settings.ip_throttle_secs,
        window_secs: deps.settings.ip_throttle_secs,
    }
}

/// The per-user second-factor lockout (SPEC §12: 10 answers, 30 minutes).
pub fn second_factor_policy(deps: &Deps) -> LockoutPolicy {
    LockoutPolicy {
        threshold: deps.settings.mfa_failure_threshold,
        lock_secs: deps.settings.mfa_lockout_secs,
        window_secs: deps.settings.mfa_failure_window_secs,
    }
}

/// The lock on `key` now, if one runs.
pub async fn locked_until(
    deps: &Deps,
    key: CounterKey<'_>,
) -> Result<Option<UnixTime>, StoreError> {
    let now = deps.clock.now();
    let seen = deps.stores.counters.read_counter(key, now).await?;
    Ok(limits::locked_until(seen.as_ref().map(|v| &v.counter), now))
}

/// The lock in a counter this request read, if one runs.
pub fn lock_in(deps: &Deps, seen: &Seen) -> Option<UnixTime> {
    let now = deps.clock.now();
    limits::locked_until(seen.0.as_ref().map(|v| &v.counter), now)
}

/// Counts one failure on `key` under `policy`.
pub async fn count_failure(
    deps: &Deps,
    key: CounterKey<'_>,
    policy: LockoutPolicy,
) -> Result<FailureOutcome, StoreError> {
    let now = deps.clock.now();
    update(deps, key, now, None, |c| {
        limits::count_failure(c, now, policy)
    })
    .await
}

/// Counts one failure on `key` under `policy`, starting from the counter as this request read
/// it.
pub async fn count_failure_after(
    deps: &Deps,
    key: CounterKey<'_>,
    policy: LockoutPolicy,
    seen: Seen,
) -> Result<FailureOutcome, StoreError> {
    let now = deps.clock.now();
    update(deps, key, now, Some(seen), |c| {
        limits::count_failure(c, now, policy)
    })
    .await
}

/// Counts a password attempt for `user` before it is evaluated: `Ok(attempt)`; `locked`
/// (423) during a lock; `rate_limited` (429, `Retry-After: 1`) while the run's attempts are all
/// being evaluated already (a burst: the extra attempts are neither evaluated nor counted).
/// `seen`: the counter as this request just read it.
pub async fn reserve_password(
    deps: &Deps,
    user: &UserId,
    seen: Seen,
) -> Result<(u32, Seen), ApiError> {
    let now = deps.clock.now();
    let policy = password_policy(deps);
    match update_from(deps, CounterKey::Password(user), now, Some(seen), |c| {
        limits::reserve_attempt(c, now, policy)
    })
    .await?
    {
        (PasswordSlot::Reserved { attempt }, stored) => Ok((attempt, stored)),
        (PasswordSlot::Locked { until }, _) => Err(ApiError::Locked {
            retry_after_secs: until.secs() - now.secs(),
        }),
        (PasswordSlot::Busy, _) => Err(ApiError::RateLimited {
            retry_after_secs: 1,
        }),
    }
}

/// A wrong password that was the `attempt`-th of its run (the threshold-th starts the lock).
/// `reserved`: the counter as the reservation left it.
pub async fn conclude_wrong_password(
    deps: &Deps,
    user: &UserId,
    attempt: u32,
    reserved: Seen,
) -> Result<FailureOutcome, StoreError> {
    let now = deps.clock.now();
    let policy = password_policy(deps);
    update(deps, CounterKey::Password(user), now, Some(reserved), |c| {
        limits::conclude_wrong_attempt(c, now, policy, attempt)
    })
    .await
}

/// A right password: its reserved attempt is given back. `reserved`: the counter as the
/// reservation left it.
pub async fn give_back_password(
    deps: &Deps,
    user: &UserId,
    reserved: Seen,
) -> Result<(), StoreError> {
    let now = deps.clock.now();
    update(deps, CounterKey::Password(user), now, Some(reserved), |c| {
        limits::give_back_attempt(c, now)
    })
    .await
}

/// Forgets the counter on `key`.
pub async fn clear(deps: &Deps, key: CounterKey<'_>) -> Result<(), StoreError> {
    deps.stores.counters.clear_counter(key).await
}

/// When the user's second factor is locked until, if it is (for an admin's view and for
/// refusing sends that could not be used).
pub async fn second_factor_locked_until(
    deps: &Deps,
    user: &UserId,
) -> Result<Option<UnixTime>, StoreError> {
    let seen = read(deps, CounterKey::SecondFactor(user)).await?;
    Ok(second_factor_lock_in(deps, &seen))
}

/// The second-factor lock in the user's `SecondFactor` counter as this request read it.
pub fn second_factor_lock_in(deps: &Deps, seen: &Seen) -> Option<UnixTime> {
    let now = deps.clock.now();
    limits::second_factor_locked_until(
        seen.0.as_ref().map(|v| &v.counter),
        now,
        second_factor_policy(deps),
    )
}

/// Counts a second-factor answer before it is compared (SPEC §12). `Ok(attempt)` when it may
/// be compared; `locked` (423) while the user's second factor is locked, even for a right
/// answer.
pub async fn reserve_second_factor(deps: &Deps, user: &UserId) -> Result<u32, ApiError> {
    let now = deps.clock.now();
    let policy = second_factor_policy(deps);
    match update(deps, CounterKey::SecondFactor(user), now, None, |c| {
        limits::reserve_answer(c, now, policy)
    })
    .await?
    {
        Reservation::Reserved { attempt } => Ok(attempt),
        Reservation::Locked { until } => Err(ApiError::SecondFactorLocked {
            retry_after_secs: until.secs() - now.secs(),
        }),
    }
}

/// Whether a wrong answer that was the `attempt`-th of its run starts the lock.
pub fn starts_second_factor_lock(deps: &Deps, attempt: u32) -> bool {
    attempt >= deps.settings.mfa_failure_threshold
}

/// The retry time of a lock that starts now.
pub fn second_factor_lock_secs(deps: &Deps) -> i64 {
    deps.settings.mfa_lockout_secs
}

/// A completed second factor ends the run of wrong answers.
pub async fn second_factor_succeeded(deps: &Deps, user: &UserId) -> Result<(), StoreError> {
    clear(deps, CounterKey::SecondFactor(user)).await
}

/// The user's caps on texts and calls (SPEC §12: 10 per rolling hour, 20 per rolling day).
fn send_caps(deps: &Deps) -> [RollingCap; 2] {
    [
        RollingCap {
            limit: deps.settings.max_sends_per_hour,
            window_secs: 3600,
        },
        RollingCap {
            limit: deps.settings.max_sends_per_day,
            window_secs: 86_400,
        },
    ]
}

/// `send_cap_reached` (429) if the caps, as this request read them, are full: checked before
/// a code's MAC is made (a KMS call), so a user at the cap costs no key call. The take after
/// it still decides, atomically.
pub fn check_send_caps(deps: &Deps, seen: &Seen) -> Result<(), ApiError> {
    let now = deps.clock.now();
    let live = seen.0.as_ref().filter(|v| v.counter.expires_at > now);
    match limits::take_capped(live.map(|v| &v.counter), now, &send_caps(deps)).outcome {
        CapOutcome::Taken { .. } => Ok(()),
        CapOutcome::Refused { retry_after_secs } => Err(cap_reached(retry_after_secs)),
    }
}

fn cap_reached(retry_after_secs: i64) -> ApiError {
    tracing::warn!(
        event = "send_cap_reached",
        "user's hourly or daily send cap reached"
    );
    ApiError::SendCapReached { retry_after_secs }
}

/// Takes one text or call from the user's caps, across every challenge, step-up, enrolment
/// and number change; `send_limit_reached` (429) when a cap is full. `seen`: the user's
/// `Sends` counter as this request read it.
pub async fn take_send(deps: &Deps, user: &UserId, seen: Seen) -> Result<UnixTime, ApiError> {
    let now = deps.clock.now();
    let caps = send_caps(deps);
    match update_from(deps, CounterKey::Sends(user), now, Some(seen), |c| {
        limits::take_capped(c, now, &caps)
    })
    .await?
    {
        (CapOutcome::Taken { at }, _) => Ok(at),
        (CapOutcome::Refused { retry_after_secs }, _) => Err(cap_reached(retry_after_secs)),
    }
}

/// Gives back a send that the provider did not deliver.
pub async fn give_back_send(deps: &Deps, user: &UserId, at: UnixTime) -> Result<(), StoreError> {
    let now = deps.clock.now();
    update(deps, CounterKey::Sends(user), now, None, |c| {
        limits::give_back(c, now, at)
    })
    .await
}
