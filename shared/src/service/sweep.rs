//! The inactive-ID sweep (SPEC §7): a scheduled function deactivates user IDs with no sign-in
//! for 90 days (or never signed in, 90 days after creation) and alerts them. Each
//! deactivation is a conditional write, so a sign-in racing the sweep wins; it raises the
//! security stamp, and the user's trusted devices and sessions are removed after it.

use serde::Serialize;

use crate::deps::Deps;
use crate::error::ApiError;
use crate::service::alerts::{self, Alert};
use crate::service::audit::{self, Event};
use crate::storage::UserStatus;

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SweepReport {
    pub scanned: u32,
    pub deactivated: u32,
    /// Deactivated users whose trusted devices and sessions could not all be removed.
    #[serde(skip_serializing_if = "is_zero")]
    pub revoke_failed: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

pub async fn sweep(deps: &Deps) -> Result<SweepReport, ApiError> {
    let now = deps.clock.now();
    let cutoff = now.plus_secs(-deps.settings.inactive_after_secs);
    let mut report = SweepReport::default();
    let mut cursor = None;
    loop {
        let (users, next) = deps.stores.users.list_users(cursor).await?;
        for user in users {
            report.scanned += 1;
            if user.status != UserStatus::Active
                || user.last_sign_in_at.unwrap_or(user.created_at) > cutoff
            {
                continue;
            }
            if deps
                .stores
                .users
                .deactivate_if_idle(&user.user_id, cutoff)
                .await?
            {
                report.deactivated += 1;
                tracing::warn!(
                    event = "account_deactivated",
                    "user ID deactivated after 90 days without sign-in"
                );
                // Recorded and alerted first: the deactivation has happened whatever follows.
                audit::record_by_system(deps, &user.user_id, Event::InactiveDeactivated).await;
                alerts::alert(deps, &user.user_id, Alert::AccountDeactivated).await;
                // As an admin's deactivation does: no trusted device or session survives it,
                // so a later reactivation starts from a full sign-in with MFA. A failure here
                // does not stop the sweep (the next user is as due); it is logged for the
                // alarm and counted, and harmless meanwhile: an inactive user's trusted device
                // or session opens nothing (sign-in and refresh check the status), and a
                // reactivation removes them again.
                if let Err(err) =
                    crate::service::password::revoke_access(deps, &user.user_id, None).await
                {
                    report.revoke_failed += 1;
                    tracing::error!(
                        error = %err,
                        event = "sweep_revoke_failed",
                        "deactivated, but its devices and sessions were not all removed"
                    );
                }
            }
        }
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    tracing::info!(
        scanned = report.scanned,
        deactivated = report.deactivated,
        "inactive-ID sweep done"
    );
    Ok(report)
}
