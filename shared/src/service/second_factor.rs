//! Every second-factor answer goes through [`guard`] (SPEC §12): a code by text, voice or
//! email, a TOTP code, a recovery code — in a sign-in, enrolment or step-up challenge alike.
//!
//! 1. The answer is counted against the *user* before anything is compared (one conditional
//!    write), so at most `MfaFailureThreshold` answers are ever compared per run, however many
//!    challenges are opened and however many requests arrive at once.
//! 2. While the user's second factor is locked, every answer is refused with `locked` (423,
//!    `Retry-After`) without being compared — a right one too.
//! 3. A success ends the run; a wrong answer is audited, and the one that reaches the threshold
//!    starts the lock: audited and alerted.

use std::future::Future;

use crate::deps::Deps;
use crate::error::ApiError;
use crate::identity::UserId;
use crate::method::Method;
use crate::request::RequestMeta;
use crate::service::alerts::{self, Alert};
use crate::service::audit::{self, Event};
use crate::service::limits;

/// What comparing one answer found.
#[derive(Debug)]
pub enum Answer<T> {
    /// Right (and consumed: single use is the comparer's job).
    Right(T),
    /// Wrong; `challenge_ended` when it was the challenge's last allowed try.
    Wrong { challenge_ended: bool },
}

/// Compares a second-factor answer under the per-user lock: the proof when it is right;
/// otherwise `code_invalid`, `challenge_expired` (the challenge's last try) or `locked` (the
/// answer that started the user's lock).
///
/// `prepare` is the work before the comparison that compares nothing — counting the
/// challenge's try, reading or computing what the answer will be compared with (a MAC, a
/// decrypted seed) — and runs while the answer is counted against the user, so neither waits
/// for the other; `compare` gets its result only once the answer has been counted. (So a
/// refused answer may still have used one of its challenge's tries: the challenge is of no use
/// to a locked user anyway.) `from` is the request's caller, for the audit trail.
pub async fn guard<T, P, Prep, F, Fut>(
    deps: &Deps,
    user: &UserId,
    method: Method,
    from: &RequestMeta,
    prepare: Prep,
    compare: F,
) -> Result<T, ApiError>
where
    Prep: Future<Output = Result<P, ApiError>>,
    F: FnOnce(P) -> Fut,
    Fut: Future<Output = Result<Answer<T>, ApiError>>,
{
    let (reserved, prepared) = tokio::join!(limits::reserve_second_factor(deps, user), prepare);
    let attempt = match reserved {
        Ok(attempt) => attempt,
        Err(refusal) => {
            tracing::warn!(
                event = "second_factor_refused",
                method = method.as_str(),
                "second-factor answer refused: locked"
            );
            return Err(refusal);
        }
    };
    let challenge_ended = match compare(prepared?).await? {
        Answer::Right(proof) => {
            limits::second_factor_succeeded(deps, user).await?;
            return Ok(proof);
        }
        Answer::Wrong { challenge_ended } => challenge_ended,
    };
    // The threshold-th wrong answer starts the lock, unless a concurrent right answer has
    // ended the run meanwhile (a double submit must not lock the user out).
    let starts_lock = limits::starts_second_factor_lock(deps, attempt);
    let ((), locked) = tokio::join!(
        audit::record(
            deps,
            user,
            Event::SecondFactorFailed {
                method: method.as_str(),
                attempt,
            },
            from,
        ),
        async {
            if starts_lock {
                limits::second_factor_locked_until(deps, user).await
            } else {
                Ok(None)
            }
        },
    );
    if locked?.is_some() {
        tracing::warn!(
            event = "second_factor_locked",
            method = method.as_str(),
            "second factor locked after repeated wrong answers"
        );
        tokio::join!(
            audit::record(
                deps,
                user,
                Event::SecondFactorLocked { attempts: attempt },
                from,
            ),
            alerts::alert(deps, user, Alert::SecondFactorLocked),
        );
        return Err(ApiError::SecondFactorLocked {
            retry_after_secs: limits::second_factor_lock_secs(deps),
        });
    }
    if challenge_ended {
        tracing::warn!(
            event = "challenge_ended",
            "too many wrong answers for one challenge"
        );
        return Err(ApiError::ChallengeExpired);
    }
    Err(ApiError::CodeInvalid)
}
