//! The outbox (SPEC §15) on both adapters: what a request queues, what the sender makes of it,
//! and the SQS adapter on the emulator. The sender function's batch handling (poisoned
//! messages, retries) is tested in `functions/sender`; the local endpoint's drain and the
//! dead-letter queue end to end in `tests/tests/outbox.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::*;
use portcullis::error::StoreError;
use portcullis::identity::UserId;
use portcullis::notifier::RecordingNotifier;
use portcullis::outbox::{Alert, MemoryOutbox, Outbox, Outgoing, SqsOutbox};
use portcullis::service::password::{self, ForgotRequest};
use portcullis::service::{alerts, sender};
use portcullis::storage::{AsRead, AuditEvent, AuditStore};
use portcullis::{Deps, UnixTime};

async fn try_password(deps: &Deps, user: &UserId, password: &str) {
    let _ = sign_in_as(deps, user.as_str(), password).await;
}

/// Deps whose outbox is a queue in memory, so a test sees what was queued and delivers it,
/// each with a new user (ID made from `prefix`).
async fn queued(
    prefix: &str,
) -> Vec<(
    &'static str,
    Deps,
    Arc<MemoryOutbox>,
    RecordingNotifier,
    UserId,
)> {
    let mut out = Vec::new();
    for (name, mut deps, _clock, sent, user) in all_deps_with_user(prefix).await {
        let queue = Arc::new(MemoryOutbox::default());
        deps.outbox = queue.clone();
        out.push((name, deps, queue, sent, user));
    }
    out
}

/// One message was sent, and its text says `phrase` (`why`: what the check is about).
fn assert_one_mail_saying(sent: &RecordingNotifier, name: &str, phrase: &str, why: &str) {
    let mails = sent.sent();
    assert_eq!(mails.len(), 1, "{name}");
    assert!(
        mails[0].text.contains(phrase),
        "{name}: {why}{}",
        mails[0].text
    );
}

async fn deliver_all(deps: &Deps, queue: &MemoryOutbox) -> usize {
    let items = queue.take();
    for item in &items {
        sender::deliver(deps, item).await.unwrap();
    }
    items.len()
}

#[tokio::test]
async fn a_forgotten_password_is_queued_the_same_for_everyone_and_only_users_get_a_link() {
    for (name, deps, queue, sent, user) in queued("forgetful").await {
        let nobody = unique("nobody");
        for id in [user.to_string(), nobody.clone()] {
            password::forgot(&deps, ForgotRequest { user_id: id })
                .await
                .unwrap();
        }
        let items = queue.take();
        // The same message for a user and for an ID nobody has: the request neither reads the
        // user nor does anything else that could tell them apart (timing included).
        assert!(
            matches!(
                &items[..],
                [Outgoing::PasswordReset { user_id: a, .. }, Outgoing::PasswordReset { user_id: b, .. }]
                    if *a == user.to_string() && *b == nobody
            ),
            "{name}: {items:?}"
        );
        assert!(
            sent.sent().is_empty(),
            "{name}: nothing sent in the request"
        );
        let queued_json = items[0].to_json().unwrap();
        assert!(
            !queued_json.contains("token"),
            "{name}: no link in the queue: {queued_json}"
        );
        for item in &items {
            sender::deliver(&deps, item).await.unwrap();
        }
        let mails = sent.sent();
        assert_eq!(mails.len(), 1, "{name}: a link for the user only");
        assert_eq!(mails[0].purpose, "password_reset");
        assert!(mails[0].text.contains("token="), "{name}");
    }
}

#[tokio::test]
async fn a_reset_request_delivered_after_its_lifetime_sends_nothing() {
    for (name, deps, clock, sent, user) in all_deps_with_user("late").await {
        // The password was set at creation; these requests come after it.
        clock.advance_secs(deps.settings.reset_ttl_secs + 120);
        let now = deps.clock.now();
        let stale = Outgoing::PasswordReset {
            user_id: user.to_string(),
            requested_at: now.secs() - deps.settings.reset_ttl_secs,
        };
        sender::deliver(&deps, &stale).await.unwrap();
        assert!(
            sent.sent().is_empty(),
            "{name}: a link that would already be dead"
        );
        let fresh = Outgoing::PasswordReset {
            user_id: user.to_string(),
            requested_at: now.secs() - 60,
        };
        sender::deliver(&deps, &fresh).await.unwrap();
        assert_one_mail_saying(
            &sent,
            name,
            "within 29 minutes",
            "the link lives from the request, not from the delivery: ",
        );
    }
}

#[tokio::test]
async fn an_alert_waits_in_the_queue_and_a_failed_send_is_an_error_to_retry() {
    for (name, deps, queue, sent, user) in queued("alerted").await {
        alerts::alert(&deps, &user, Alert::PasswordChanged).await;
        assert!(
            sent.sent().is_empty(),
            "{name}: the request does not wait for the provider"
        );
        let items = queue.take();
        assert_eq!(items.len(), 1, "{name}");
        sent.set_failing(true);
        assert!(
            sender::deliver(&deps, &items[0]).await.is_err(),
            "{name}: a provider failure goes back to the queue"
        );
        sent.set_failing(false);
        sender::deliver(&deps, &items[0]).await.unwrap();
        assert_eq!(sent.sent().len(), 1, "{name}");
        let mut outcomes: Vec<String> = deps
            .stores
            .deliveries
            .list_deliveries(&user, deps.clock.now())
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.outcome)
            .collect();
        outcomes.sort();
        assert_eq!(
            outcomes,
            ["failed", "sent"],
            "{name}: a record for each attempt"
        );
    }
}

#[tokio::test]
async fn the_fifth_failed_password_queues_the_same_for_unknown_ids() {
    for (name, deps, queue, _sent, user) in queued("guessed").await {
        let nobody = UserId::parse(&unique("nobody")).unwrap();
        for id in [&user, &nobody] {
            for _ in 0..deps.settings.lockout_threshold {
                try_password(&deps, id, "wrong password!").await;
            }
        }
        let items = queue.take();
        let locks: Vec<&str> = items
            .iter()
            .filter_map(|item| match item {
                Outgoing::Alert {
                    user_id,
                    alert: Alert::LockStarted,
                } => Some(user_id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            locks,
            [user.as_str(), nobody.as_str()],
            "{name}: one lock alert queued for each, known or not"
        );
        assert_eq!(items.len(), 2, "{name}: {items:?}");
    }
}

/// An audit table that refuses every write (throttled, or away).
#[derive(Debug)]
struct RefusingAudit;

#[async_trait]
impl AuditStore for RefusingAudit {
    async fn append_event(&self, _: &AuditEvent) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("audit table away".into()))
    }
    async fn list_events(
        &self,
        _: &UserId,
        _: UnixTime,
        _: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        Ok(vec![])
    }
    async fn first_sighting(&self, _: &UserId, _: &str, _: UnixTime) -> Result<bool, StoreError> {
        Ok(false)
    }
}

#[tokio::test]
async fn an_audit_event_that_cannot_be_written_is_queued_and_written_by_the_sender() {
    for (name, mut deps, queue, _sent, user) in queued("audited").await {
        let table = deps.stores.audit.clone();
        deps.stores.audit = Arc::new(RefusingAudit);
        try_password(&deps, &user, "wrong password!").await;
        let items = queue.take();
        let events: Vec<&AuditEvent> = items
            .iter()
            .filter_map(|item| match item {
                Outgoing::Audit { event } => Some(event),
                _ => None,
            })
            .collect();
        assert_eq!(events.len(), 1, "{name}: {items:?}");
        assert_eq!(events[0].kind, "sign_in_failed");
        deps.stores.audit = table;
        // Delivered twice (SQS delivers at least once): written once.
        for _ in 0..2 {
            sender::deliver(&deps, &items[0]).await.unwrap();
        }
        assert_eq!(
            event_kinds(&deps, &user).await,
            ["sign_in_failed"],
            "{name}: written once, by the sender"
        );
    }
}

#[tokio::test]
async fn without_a_queue_messages_are_delivered_in_the_request() {
    // Deps::in_memory has no queue (InlineOutbox): the in-process tools keep working.
    for (name, deps, _clock, sent, user) in all_deps_with_user("inline").await {
        alerts::alert(&deps, &user, Alert::PasswordChanged).await;
        assert_eq!(sent.sent().len(), 1, "{name}");
        assert_eq!(deliver_all(&deps, &MemoryOutbox::default()).await, 0);
    }
}

#[tokio::test]
async fn the_sqs_adapter_queues_what_the_sender_reads_on_the_emulator() {
    if emulator_table().is_none() {
        return;
    }
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let name = unique("outbox-conformance");
    let url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let outbox = SqsOutbox::new(sqs.clone(), &url);
    let items = [
        Outgoing::Alert {
            user_id: "alice@example.com".into(),
            alert: Alert::NewTrustedDevice {
                name: "Firefox on Linux \"home\" 🏠".into(),
            },
        },
        Outgoing::Invitation {
            user_id: "bob@example.com".into(),
            invited_by: "admin@example.com".into(),
        },
    ];
    for item in &items {
        outbox.enqueue(item).await.unwrap();
    }
    let mut read = Vec::new();
    for _ in 0..10 {
        let got = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for message in got.messages.unwrap_or_default() {
            read.push(Outgoing::from_json(message.body().unwrap()).unwrap());
        }
        if read.len() == items.len() {
            break;
        }
    }
    sqs.delete_queue().queue_url(&url).send().await.unwrap();
    read.sort_by_key(|item| item.kind());
    assert_eq!(read, items, "what was queued, read back intact");
    // A queue that is not there: an error the caller turns into an inline delivery.
    let gone = SqsOutbox::new(sqs, &url);
    assert!(gone.enqueue(&items[0]).await.is_err());
}

#[tokio::test]
async fn an_invitation_goes_to_the_stored_address_only_while_it_is_due() {
    use portcullis::storage::{UserRecord, UserStatus};
    for (name, deps, clock, sent) in all_deps_with_notifier().await {
        let invitee = |id: &UserId, created_at: UnixTime, password: Option<String>| UserRecord {
            user_id: id.clone(),
            email: Some("invitee@example.com".into()),
            phone: None,
            password_hash: password,
            status: UserStatus::Active,
            roles: vec![],
            created_at,
            password_changed_at: None,
            last_sign_in_at: None,
            must_change_password: false,
            password_history: vec![],
            security_stamp: 0,
        };
        let now = deps.clock.now();
        let due = UserId::parse(&unique("invited")).unwrap();
        let set_up = UserId::parse(&unique("already")).unwrap();
        let stale = UserId::parse(&unique("stale")).unwrap();
        let users = &deps.stores.users;
        users.create_user(&invitee(&due, now, None)).await.unwrap();
        let hash = deps.hasher.hash(PASSWORD.as_bytes()).unwrap();
        users
            .create_user(&invitee(&set_up, now, Some(hash)))
            .await
            .unwrap();
        let long_ago = UnixTime(now.secs() - deps.settings.invitation_ttl_secs);
        users
            .create_user(&invitee(&stale, long_ago, None))
            .await
            .unwrap();
        for id in [&due, &set_up, &stale] {
            let item = Outgoing::Invitation {
                user_id: id.to_string(),
                invited_by: "admin@example.com".into(),
            };
            sender::deliver(&deps, &item).await.unwrap();
        }
        let mails = sent.sent();
        assert_eq!(mails.len(), 1, "{name}: only the invitation still due");
        assert_eq!(
            mails[0].to, "invitee@example.com",
            "{name}: the stored address"
        );
        assert!(mails[0].text.contains(due.as_str()), "{name}");
        clock.advance_secs(1);
    }
    // A message cannot name the address (nor anything else the sender does not expect).
    let forged = r#"{"kind":"invitation","user_id":"a@example.com","invited_by":"x@example.com","email":"attacker@evil.example"}"#;
    assert!(Outgoing::from_json(forged).is_err());
}

#[tokio::test]
async fn a_reset_request_from_the_future_does_not_buy_a_longer_link() {
    for (name, deps, _clock, sent, user) in all_deps_with_user("future").await {
        let now = deps.clock.now();
        let item = Outgoing::PasswordReset {
            user_id: user.to_string(),
            requested_at: now.secs() + 365 * 86_400,
        };
        sender::deliver(&deps, &item).await.unwrap();
        assert_one_mail_saying(&sent, name, "within 30 minutes", "");
    }
}

#[tokio::test]
async fn a_reset_request_queued_before_a_password_change_sends_nothing() {
    for (name, deps, clock, sent, user) in all_deps_with_user("changed").await {
        let requested_at = deps.clock.now().secs();
        clock.advance_secs(60);
        let hash = deps.hasher.hash(b"a brand new passphrase").unwrap();
        let old = stored_user(&deps, &user).await;
        deps.stores
            .users
            .set_password(&user, AsRead::of(&old), &hash, &[], deps.clock.now())
            .await
            .unwrap();
        let item = Outgoing::PasswordReset {
            user_id: user.to_string(),
            requested_at,
        };
        sender::deliver(&deps, &item).await.unwrap();
        assert!(
            sent.sent().is_empty(),
            "{name}: the change ended the request"
        );
    }
}

/// A queue that is configured but refuses everything (SQS away).
#[derive(Debug)]
struct RefusingQueue;

#[async_trait]
impl Outbox for RefusingQueue {
    async fn enqueue(&self, _: &Outgoing) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("SQS away".into()))
    }
}

#[tokio::test]
async fn with_the_queue_away_alerts_go_inline_but_reset_requests_do_not() {
    for (name, mut deps, _clock, sent) in all_deps_with_notifier().await {
        deps.outbox = Arc::new(RefusingQueue);
        let user = create_user(&deps, &unique("away")).await;
        forgot(&deps, &user).await;
        assert!(
            sent.sent().is_empty(),
            "{name}: inline, a reset would email real users only, and time would tell"
        );
        alerts::alert(&deps, &user, Alert::PasswordChanged).await;
        assert_eq!(sent.sent().len(), 1, "{name}: an alert is not lost");
    }
}
