//! The rules of every counted limit, written once as pure functions: the password lockout
//! (SPEC §2), the per-source-IP throttle (§8), the per-user second-factor lockout (§12), the
//! per-challenge send bar (§3) and the per-user rolling send caps (§12).
//!
//! A limit lives in one small [`Counter`] record. A rule reads the record as it is (`None`:
//! absent or expired) and returns a [`Decision`]: the record to write, and what the caller is
//! told. The store only makes the write conditional on the version it read
//! ([`crate::storage::CounterStore`]); the loop that reads, applies a rule and retries a lost
//! race is the private `update` in [`crate::service::limits`]. So concurrent requests can never
//! count past a threshold, and the rules are tested here without any storage at all.

use crate::clock::UnixTime;

/// A counter as stored: a run of failures (or attempts), an optional lock, and the times of
/// recent events for rolling windows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counter {
    /// Failures (or attempts) in the current run.
    pub count: u32,
    /// When the last one was counted.
    pub last_at: UnixTime,
    /// An explicit lock, while it runs.
    pub locked_until: Option<UnixTime>,
    /// Times of the events inside the longest rolling window, oldest first (send caps).
    pub recent: Vec<UnixTime>,
    /// The record counts as absent from this instant on (the DynamoDB `ttl`).
    pub expires_at: UnixTime,
}

/// What a rule decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Nothing changes.
    Keep,
    /// Store this counter.
    Put(Counter),
    /// Forget the counter.
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<T> {
    pub write: Write,
    pub outcome: T,
}

impl<T> Decision<T> {
    fn keep(outcome: T) -> Self {
        Decision {
            write: Write::Keep,
            outcome,
        }
    }

    fn put(counter: Counter, outcome: T) -> Self {
        Decision {
            write: Write::Put(counter),
            outcome,
        }
    }
}

/// Parameters of a failure counter with a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures that start a lock.
    pub threshold: u32,
    /// Length of a lock.
    pub lock_secs: i64,
    /// A run of failures is forgotten this long after its last failure.
    pub window_secs: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// The failure was counted; no lock yet.
    Counted { failures: u32 },
    /// This failure reached the threshold: a lock started now (exactly one caller sees this).
    LockStarted { until: UnixTime },
    /// A lock was already running.
    AlreadyLocked { until: UnixTime },
}

/// The lock a failure counter holds at `now`, if any.
pub fn locked_until(counter: Option<&Counter>, now: UnixTime) -> Option<UnixTime> {
    counter
        .filter(|c| c.expires_at > now)
        .and_then(|c| c.locked_until)
        .filter(|until| *until > now)
}

/// The number the next failure (or attempt) of a lockout counter gets at `now`: one past the
/// live run's, or 1 when there is no live run or its lock ran out; `Err` with the end of the
/// lock that runs at `now`.
fn next_in_run(counter: Option<&Counter>, now: UnixTime) -> Result<u32, UnixTime> {
    let live = counter.filter(|c| c.expires_at > now);
    if let Some(until) = locked_until(live, now) {
        return Err(until);
    }
    Ok(match live {
        Some(c) if c.locked_until.is_none() => c.count.saturating_add(1),
        _ => 1,
    })
}

/// The counter of a run of `count` failures (or attempts), the last at `now`, with no rolling
/// window events.
fn run_counter(
    count: u32,
    now: UnixTime,
    locked_until: Option<UnixTime>,
    expires_at: UnixTime,
) -> Counter {
    Counter {
        count,
        last_at: now,
        locked_until,
        recent: Vec::new(),
        expires_at,
    }
}

/// The `count`-th failure starts a lock of `lock_secs` now; the counter lasts as long as it.
fn start_lock(count: u32, now: UnixTime, policy: LockoutPolicy) -> Decision<FailureOutcome> {
    let until = now.plus_secs(policy.lock_secs);
    Decision::put(
        run_counter(count, now, Some(until), until),
        FailureOutcome::LockStarted { until },
    )
}

/// Counts one failure (a wrong password, a failed sign-in from an IP, a send past the limit):
/// the threshold-th failure starts a lock of `lock_secs`; a lock that ran out starts a new run.
pub fn count_failure(
    counter: Option<&Counter>,
    now: UnixTime,
    policy: LockoutPolicy,
) -> Decision<FailureOutcome> {
    let failures = match next_in_run(counter, now) {
        Ok(failures) => failures,
        Err(until) => return Decision::keep(FailureOutcome::AlreadyLocked { until }),
    };
    if failures >= policy.threshold {
        start_lock(failures, now, policy)
    } else {
        Decision::put(
            run_counter(failures, now, None, now.plus_secs(policy.window_secs)),
            FailureOutcome::Counted { failures },
        )
    }
}

/// The answer to "may this second-factor answer be compared?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Counted before the comparison: this is the `attempt`-th answer of the run. If it is
    /// wrong and `attempt` reached the threshold, the lock starts with it.
    Reserved { attempt: u32 },
    /// The second factor is locked: nothing is compared, not even a right answer.
    Locked { until: UnixTime },
}

/// The per-user second-factor lock (SPEC §12), derived from the counter: after `threshold`
/// answers that were not followed by a success, every answer is refused until `lock_secs`
/// after the last of them.
pub fn second_factor_locked_until(
    counter: Option<&Counter>,
    now: UnixTime,
    policy: LockoutPolicy,
) -> Option<UnixTime> {
    counter
        .filter(|c| c.expires_at > now && c.count >= policy.threshold)
        .map(|c| c.last_at.plus_secs(policy.lock_secs))
        .filter(|until| *until > now)
}

/// Counts a second-factor answer *before* it is compared (SPEC §12): at most `threshold`
/// answers are ever compared per run, however many arrive at once. A success clears the counter
/// (the caller deletes it); a run is forgotten `window_secs` after its last answer, and a lock
/// that ran out starts a new run.
pub fn reserve_answer(
    counter: Option<&Counter>,
    now: UnixTime,
    policy: LockoutPolicy,
) -> Decision<Reservation> {
    if let Some(until) = second_factor_locked_until(counter, now, policy) {
        return Decision::keep(Reservation::Locked { until });
    }
    let attempt = match counter.filter(|c| c.expires_at > now) {
        Some(c) if c.count < policy.threshold => c.count.saturating_add(1),
        _ => 1,
    };
    let expires_at = now.plus_secs(policy.window_secs.max(policy.lock_secs));
    Decision::put(
        run_counter(attempt, now, None, expires_at),
        Reservation::Reserved { attempt },
    )
}

/// A cap on events per rolling window (SPEC §12: 10 texts or calls per hour, 20 per day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollingCap {
    pub limit: u32,
    pub window_secs: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapOutcome {
    /// Counted; `at` identifies the event if it must be given back.
    Taken { at: UnixTime },
    /// A cap is full until the oldest event inside its window leaves it.
    Refused { retry_after_secs: i64 },
}

/// Takes one event under every cap, or refuses if any cap is full.
pub fn take_capped(
    counter: Option<&Counter>,
    now: UnixTime,
    caps: &[RollingCap],
) -> Decision<CapOutcome> {
    let longest = caps.iter().map(|c| c.window_secs).max().unwrap_or(0);
    let mut recent: Vec<UnixTime> = counter
        .filter(|c| c.expires_at > now)
        .map(|c| c.recent.clone())
        .unwrap_or_default();
    recent.retain(|at| at.plus_secs(longest) > now);
    recent.sort();
    let mut retry_after = 0;
    for cap in caps {
        let inside: Vec<&UnixTime> = recent
            .iter()
            .filter(|at| at.plus_secs(cap.window_secs) > now)
            .collect();
        if inside.len() >= cap.limit as usize {
            // The cap has room again when enough of its oldest events have left the window.
            let freeing = inside.len() + 1 - cap.limit as usize;
            let frees_at = inside[freeing - 1].plus_secs(cap.window_secs);
            retry_after = retry_after.max(frees_at.secs() - now.secs());
        }
    }
    if retry_after > 0 {
        return Decision::keep(CapOutcome::Refused {
            retry_after_secs: retry_after,
        });
    }
    recent.push(now);
    Decision::put(
        Counter {
            count: u32::try_from(recent.len()).unwrap_or(u32::MAX),
            last_at: now,
            locked_until: None,
            recent,
            expires_at: now.plus_secs(longest),
        },
        CapOutcome::Taken { at: now },
    )
}

/// Gives back an event taken at `at` (a send that failed): one entry with that time leaves.
pub fn give_back(counter: Option<&Counter>, now: UnixTime, at: UnixTime) -> Decision<()> {
    let Some(current) = counter.filter(|c| c.expires_at > now) else {
        return Decision::keep(());
    };
    let Some(index) = current.recent.iter().rposition(|t| *t == at) else {
        return Decision::keep(());
    };
    let mut next = current.clone();
    next.recent.remove(index);
    next.count = u32::try_from(next.recent.len()).unwrap_or(u32::MAX);
    Decision::put(next, ())
}

/// The answer to "may this password be evaluated?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSlot {
    /// Counted before the evaluation: the `attempt`-th of the run.
    Reserved { attempt: u32 },
    /// The user ID is locked.
    Locked { until: UnixTime },
    /// The run's attempts are all being evaluated right now (a burst): not evaluated, not
    /// counted; the caller may try again in a moment.
    Busy,
}

/// Counts a password attempt *before* the password is evaluated (SPEC §2, §12): at most
/// `threshold` attempts of a run are ever evaluated, however many arrive at once — otherwise a
/// burst of parallel guesses all passes the lock check and is evaluated before the fifth
/// failure is counted. An attempt past the threshold while earlier ones are still being
/// evaluated is refused without being counted ([`PasswordSlot::Busy`]). A right password gives its attempt back
/// ([`give_back_attempt`]); a wrong one keeps it, and the threshold-th starts the lock
/// ([`conclude_wrong_attempt`]).
pub fn reserve_attempt(
    counter: Option<&Counter>,
    now: UnixTime,
    policy: LockoutPolicy,
) -> Decision<PasswordSlot> {
    let attempt = match next_in_run(counter, now) {
        Ok(attempt) => attempt,
        Err(until) => return Decision::keep(PasswordSlot::Locked { until }),
    };
    if attempt > policy.threshold {
        return Decision::keep(PasswordSlot::Busy);
    }
    Decision::put(
        run_counter(attempt, now, None, now.plus_secs(policy.window_secs)),
        PasswordSlot::Reserved { attempt },
    )
}

/// After a wrong password that was the `attempt`-th of its run: the threshold-th starts the
/// lock, unless a right password ended the run meanwhile (the counter is gone).
pub fn conclude_wrong_attempt(
    counter: Option<&Counter>,
    now: UnixTime,
    policy: LockoutPolicy,
    attempt: u32,
) -> Decision<FailureOutcome> {
    let live = counter.filter(|c| c.expires_at > now);
    if let Some(until) = locked_until(live, now) {
        return Decision::keep(FailureOutcome::AlreadyLocked { until });
    }
    match live {
        Some(c) if attempt >= policy.threshold => start_lock(c.count.max(attempt), now, policy),
        _ => Decision::keep(FailureOutcome::Counted { failures: attempt }),
    }
}

/// A right password gives back the attempt it reserved: right passwords never count.
pub fn give_back_attempt(counter: Option<&Counter>, now: UnixTime) -> Decision<()> {
    match counter.filter(|c| c.expires_at > now && c.locked_until.is_none()) {
        Some(c) if c.count > 1 => {
            let mut next = c.clone();
            next.count -= 1;
            Decision::put(next, ())
        }
        Some(_) => Decision {
            write: Write::Delete,
            outcome: (),
        },
        None => Decision::keep(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: UnixTime = UnixTime(1_000_000);
    const POLICY: LockoutPolicy = LockoutPolicy {
        threshold: 5,
        lock_secs: 1800,
        window_secs: 86_400,
    };

    /// Applies a rule to the record and stores its write, as a store would.
    fn step<O>(
        record: &mut Option<Counter>,
        rule: impl FnOnce(Option<&Counter>) -> Decision<O>,
    ) -> O {
        let decision = rule(record.as_ref());
        match decision.write {
            Write::Keep => {}
            Write::Put(c) => *record = Some(c),
            Write::Delete => *record = None,
        }
        decision.outcome
    }

    #[test]
    fn the_fifth_failure_locks_for_thirty_minutes_then_a_new_run_starts() {
        let mut record = None;
        for i in 1..5 {
            assert_eq!(
                step(&mut record, |c| count_failure(c, T, POLICY)),
                FailureOutcome::Counted { failures: i }
            );
        }
        let until = T.plus_secs(1800);
        assert_eq!(
            step(&mut record, |c| count_failure(c, T, POLICY)),
            FailureOutcome::LockStarted { until }
        );
        assert_eq!(
            locked_until(record.as_ref(), T.plus_secs(1799)),
            Some(until)
        );
        assert_eq!(
            step(&mut record, |c| count_failure(c, T.plus_secs(5), POLICY)),
            FailureOutcome::AlreadyLocked { until }
        );
        assert_eq!(locked_until(record.as_ref(), until), None);
        assert_eq!(
            step(&mut record, |c| count_failure(c, until, POLICY)),
            FailureOutcome::Counted { failures: 1 }
        );
    }

    #[test]
    fn a_run_of_failures_is_forgotten_after_its_window() {
        let mut record = None;
        step(&mut record, |c| count_failure(c, T, POLICY));
        let later = T.plus_secs(POLICY.window_secs);
        assert_eq!(
            step(&mut record, |c| count_failure(c, later, POLICY)),
            FailureOutcome::Counted { failures: 1 }
        );
    }

    const MFA: LockoutPolicy = LockoutPolicy {
        threshold: 10,
        lock_secs: 1800,
        window_secs: 90 * 86_400,
    };

    #[test]
    fn ten_answers_without_success_lock_every_answer_for_thirty_minutes() {
        let mut record = None;
        for attempt in 1..=10 {
            assert_eq!(
                step(&mut record, |c| reserve_answer(
                    c,
                    T.plus_secs(attempt.into()),
                    MFA
                )),
                Reservation::Reserved { attempt }
            );
        }
        let until = T.plus_secs(10 + 1800);
        assert_eq!(
            step(&mut record, |c| reserve_answer(c, T.plus_secs(11), MFA)),
            Reservation::Locked { until }
        );
        assert_eq!(
            second_factor_locked_until(record.as_ref(), T.plus_secs(11), MFA),
            Some(until)
        );
        // After the lock, a new run starts.
        assert_eq!(
            step(&mut record, |c| reserve_answer(c, until, MFA)),
            Reservation::Reserved { attempt: 1 }
        );
    }

    #[test]
    fn the_tenth_answer_is_still_compared_and_a_run_is_kept_for_its_window() {
        let mut record = None;
        for _ in 0..9 {
            step(&mut record, |c| reserve_answer(c, T, MFA));
        }
        assert_eq!(
            step(&mut record, |c| reserve_answer(c, T, MFA)),
            Reservation::Reserved { attempt: 10 }
        );
        // A run is remembered across days (new challenges do not reset it) ...
        let mut record = None;
        step(&mut record, |c| reserve_answer(c, T, MFA));
        let day_later = T.plus_secs(86_400);
        assert_eq!(
            step(&mut record, |c| reserve_answer(c, day_later, MFA)),
            Reservation::Reserved { attempt: 2 }
        );
        // ... until its window has passed without an answer.
        let forgotten = day_later.plus_secs(MFA.window_secs);
        assert_eq!(
            step(&mut record, |c| reserve_answer(c, forgotten, MFA)),
            Reservation::Reserved { attempt: 1 }
        );
    }

    const CAPS: [RollingCap; 2] = [
        RollingCap {
            limit: 10,
            window_secs: 3600,
        },
        RollingCap {
            limit: 20,
            window_secs: 86_400,
        },
    ];

    #[test]
    fn ten_sends_per_rolling_hour_and_twenty_per_rolling_day() {
        let mut record = None;
        for i in 0..10 {
            let at = T.plus_secs(i * 60);
            assert_eq!(
                step(&mut record, |c| take_capped(c, at, &CAPS)),
                CapOutcome::Taken { at }
            );
        }
        // The 11th within the hour waits until the first leaves the window.
        assert_eq!(
            step(&mut record, |c| take_capped(c, T.plus_secs(600), &CAPS)),
            CapOutcome::Refused {
                retry_after_secs: 3000
            }
        );
        // An hour after the first, one more is allowed: rolling, not per clock hour.
        assert!(matches!(
            step(&mut record, |c| take_capped(c, T.plus_secs(3600), &CAPS)),
            CapOutcome::Taken { .. }
        ));
        // Fill the day: 9 more, spaced so the hourly cap never binds.
        for i in 0..9 {
            let at = T.plus_secs(7200 + i * 3600);
            assert!(matches!(
                step(&mut record, |c| take_capped(c, at, &CAPS)),
                CapOutcome::Taken { .. }
            ));
        }
        let late = T.plus_secs(7200 + 9 * 3600);
        match step(&mut record, |c| take_capped(c, late, &CAPS)) {
            CapOutcome::Refused { retry_after_secs } => {
                // The first event of the day leaves 24 hours after it was taken.
                assert_eq!(retry_after_secs, 86_400 - (late.secs() - T.secs()));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_failed_send_is_given_back() {
        let mut record = None;
        for _ in 0..10 {
            step(&mut record, |c| take_capped(c, T, &CAPS));
        }
        assert!(matches!(
            take_capped(record.as_ref(), T, &CAPS).outcome,
            CapOutcome::Refused { .. }
        ));
        step(&mut record, |c| give_back(c, T, T));
        assert_eq!(
            step(&mut record, |c| take_capped(c, T, &CAPS)),
            CapOutcome::Taken { at: T }
        );
    }

    #[test]
    fn password_attempts_are_counted_before_evaluation_and_a_burst_gets_five() {
        let mut record = None;
        // Twenty attempts arrive at once: five are reserved, the rest refused before argon2.
        let reserved: Vec<PasswordSlot> = (0..20)
            .map(|_| step(&mut record, |c| reserve_attempt(c, T, POLICY)))
            .collect();
        let evaluated: Vec<u32> = reserved
            .iter()
            .filter_map(|r| match r {
                PasswordSlot::Reserved { attempt } => Some(*attempt),
                _ => None,
            })
            .collect();
        assert_eq!(evaluated, [1, 2, 3, 4, 5]);
        assert_eq!(reserved[5..], [PasswordSlot::Busy; 15]);
        // All five were wrong: the fifth starts the lock, the others are plain failures.
        for attempt in 1..5 {
            assert_eq!(
                step(&mut record, |c| conclude_wrong_attempt(
                    c, T, POLICY, attempt
                )),
                FailureOutcome::Counted { failures: attempt }
            );
        }
        assert_eq!(
            step(&mut record, |c| conclude_wrong_attempt(c, T, POLICY, 5)),
            FailureOutcome::LockStarted {
                until: T.plus_secs(1800)
            }
        );
        assert!(matches!(
            step(&mut record, |c| reserve_attempt(
                c,
                T.plus_secs(1799),
                POLICY
            )),
            PasswordSlot::Locked { .. }
        ));
        // After the lock a new run starts.
        assert_eq!(
            step(&mut record, |c| reserve_attempt(
                c,
                T.plus_secs(1800),
                POLICY
            )),
            PasswordSlot::Reserved { attempt: 1 }
        );
    }

    #[test]
    fn a_right_password_gives_its_attempt_back_and_four_failures_then_the_right_one_works() {
        let mut record = None;
        for attempt in 1..5 {
            step(&mut record, |c| reserve_attempt(c, T, POLICY));
            step(&mut record, |c| {
                conclude_wrong_attempt(c, T, POLICY, attempt)
            });
        }
        assert_eq!(
            step(&mut record, |c| reserve_attempt(c, T, POLICY)),
            PasswordSlot::Reserved { attempt: 5 }
        );
        step(&mut record, |c| give_back_attempt(c, T));
        assert_eq!(
            record.as_ref().map(|c| c.count),
            Some(4),
            "right passwords never count"
        );
        // A run the right password ended (counter cleared at sign-in) starts no lock.
        let mut cleared: Option<Counter> = None;
        assert_eq!(
            step(&mut cleared, |c| conclude_wrong_attempt(c, T, POLICY, 5)),
            FailureOutcome::Counted { failures: 5 }
        );
        assert!(cleared.is_none());
        // The last attempt given back removes the counter.
        let mut one = None;
        step(&mut one, |c| reserve_attempt(c, T, POLICY));
        step(&mut one, |c| give_back_attempt(c, T));
        assert!(one.is_none());
    }
}
