//! The audit log (SPEC §8): every security event appended with time, actor, subject, source
//! IP, User-Agent and outcome. A write that fails does not undo the action it describes: the
//! event is logged as an error (alarmed on) and queued in the outbox, whose sender writes it
//! again (SPEC §15), so an event is lost only if both DynamoDB and SQS refuse it.

use crate::crypto::random_id;
use crate::deps::Deps;
use crate::edge::RequestMeta;
use crate::identity::UserId;
use crate::storage::AuditEvent;

/// Who did it.
#[derive(Debug, Clone)]
pub enum Actor<'a> {
    /// The user themselves.
    User,
    Admin(&'a UserId),
    System,
}

pub async fn record(
    deps: &Deps,
    subject: &UserId,
    kind: &str,
    actor: Actor<'_>,
    meta: Option<&RequestMeta>,
    outcome: &str,
    detail: Option<String>,
) {
    // A service that does not carry the request's caller still records it: the handler's.
    let scoped;
    let meta = match meta {
        Some(meta) => Some(meta),
        None => {
            scoped = crate::edge::current_caller();
            scoped.as_ref()
        }
    };
    let now = deps.clock.now();
    let clip = |s: &String| s.chars().take(512).collect::<String>();
    let event = AuditEvent {
        subject: subject.clone(),
        event_id: random_id("ev"),
        at: now,
        kind: kind.to_owned(),
        actor: match actor {
            Actor::User => "self".to_owned(),
            Actor::Admin(id) => id.to_string(),
            Actor::System => "system".to_owned(),
        },
        source_ip: meta.and_then(|m| m.source_ip.clone()),
        user_agent: meta.and_then(|m| m.user_agent.as_ref()).map(clip),
        outcome: outcome.to_owned(),
        detail,
        expires_at: now.plus_secs(deps.settings.retention_secs),
    };
    match deps.stores.audit.append_event(&event).await {
        Ok(()) => {}
        // The event id is new, so a refused "only if absent" put means an earlier attempt of
        // this same write (retried by the SDK after a timeout) already stored it.
        Err(crate::error::StoreError::ConditionFailed) => {}
        // Not lost: queued for the sender, which writes it again (same event id, so a write
        // that did land is not doubled); alarmed on by its log line.
        Err(err) => {
            tracing::error!(error = %err, event = "audit_write_failed", kind, "audit event queued for a second write");
            crate::service::sender::enqueue(deps, crate::outbox::Outgoing::Audit { event }).await;
        }
    }
}
