//! What each function may ask of AWS, declared in Rust beside its route table.
//!
//! A function crate lists its [`Grant`]s (`FUNCTION.grants` for the HTTP functions, `GRANTS`
//! for the sweep and the sender). Two checks hold that list to the truth:
//!
//! - **the template**: `tools/local-gateway/tests/grants.rs` reads every function's inline IAM
//!   policy in `infra/template.yaml` and compares it with the crate's list, both ways, action by
//!   action, resource by resource, condition by condition: a grant the template adds that the
//!   crate does not declare fails, and so does a declared one the template lacks;
//! - **the code**: every SDK client a function builds carries a [`GrantGuard`], which refuses,
//!   before anything is sent, an operation the function has not declared (a DynamoDB call is
//!   checked against the table it names). A call the list forgot fails at once, in the service
//!   and end-to-end tests that take that path (the local endpoint gives each function its own
//!   guarded clients, as Lambda gives it its own role), and in production it fails the same
//!   way the missing IAM grant would, with a `grant_refused` error in the log that names it.
//!
//! What neither check sees is a declared grant no code path uses any more (the template and
//! the list would agree on it): the list sits beside the routes it serves, in the same diff as
//! the code that stops needing it, and the guard's log names every call a function makes.

use std::collections::BTreeSet;
use std::sync::Arc;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, Input,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// What an IAM statement of the template names as its `Resource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// `!GetAtt MainTable.Arn` (`PORTCULLIS_TABLE`).
    MainTable,
    /// `!GetAtt AuditTable.Arn` (`PORTCULLIS_AUDIT_TABLE`), append-only.
    AuditTable,
    /// `!GetAtt DataKey.Arn`: the tables' key, and the key that seals secrets.
    DataKey,
    /// `!GetAtt SigningKey.Arn`: the KMS token-signing key.
    SigningKey,
    /// `!GetAtt CodeHmacKey.Arn`: the KMS HMAC key.
    CodeHmacKey,
    /// `!GetAtt OutboxQueue.Arn`.
    OutboxQueue,
    /// The SES identity that sends email (`…:identity/${SesSenderIdentity}`).
    SenderIdentity,
    /// `"*"`: only where IAM has nothing narrower (SNS `Publish` to a phone number).
    Any,
}

/// The `Condition` of an IAM statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Condition {
    /// None.
    Always,
    /// `kms:ViaService` = DynamoDB: the table's key, used by DynamoDB on the caller's behalf.
    /// The function's code never makes these calls itself, so the guard never allows them.
    ViaDynamoDb,
    /// `kms:EncryptionContext:purpose` = this: only secrets sealed for that purpose.
    SealedFor(&'static str),
}

/// One IAM statement: these actions on this resource, under this condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub actions: &'static [&'static str],
    pub on: Resource,
    pub when: Condition,
}

impl Grant {
    pub const fn on(on: Resource, actions: &'static [&'static str]) -> Grant {
        Grant {
            actions,
            on,
            when: Condition::Always,
        }
    }

    pub const fn when(self, when: Condition) -> Grant {
        Grant { when, ..self }
    }
}

/// Queue an outbox message (alerts, reset links, invitations, audit events whose write failed).
pub const OUTBOX: Grant = Grant::on(Resource::OutboxQueue, &["sqs:SendMessage"]);
/// Append audit events.
pub const AUDIT_APPEND: Grant = Grant::on(Resource::AuditTable, &["dynamodb:PutItem"]);
/// The tables are encrypted with DataKey: DynamoDB uses it for whoever reads or writes them.
pub const TABLE_KEY: Grant = Grant::on(Resource::DataKey, &["kms:Decrypt", "kms:GenerateDataKey"])
    .when(Condition::ViaDynamoDb);
/// Every item action the request functions use on the main table.
pub const MAIN_TABLE: Grant = Grant::on(
    Resource::MainTable,
    &[
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
    ],
);
/// Envelope token signing: open the sealed token-signing key.
pub const OPEN_TOKEN_KEY: Grant =
    Grant::on(Resource::DataKey, &["kms:Decrypt"]).when(Condition::SealedFor("token-signing"));
/// Envelope code MACs: open the sealed code MAC key.
pub const OPEN_CODE_KEY: Grant =
    Grant::on(Resource::DataKey, &["kms:Decrypt"]).when(Condition::SealedFor("code-mac"));
/// KMS token signing (and the public half for the JWKS and for verifying).
pub const SIGN_TOKENS: Grant = Grant::on(Resource::SigningKey, &["kms:Sign", "kms:GetPublicKey"]);
/// Verify access tokens in KMS signing mode (the public half only).
pub const VERIFY_TOKENS: Grant = Grant::on(Resource::SigningKey, &["kms:GetPublicKey"]);
/// Code MACs in KMS mode, before the first envelope code key, and recovery-code tags.
pub const CODE_MAC: Grant = Grant::on(Resource::CodeHmacKey, &["kms:GenerateMac"]);
/// Text messages and calls (a phone number has no ARN: IAM can only allow `Publish` on `*`).
pub const SNS_PUBLISH: Grant = Grant::on(Resource::Any, &["sns:Publish"]);
/// Email, from the one SES identity.
pub const SES_SEND: Grant = Grant::on(Resource::SenderIdentity, &["ses:SendEmail"]);

/// What a request function that changes a user's state needs: queue outbox messages, read and
/// write the main table's items, append audit events (the tables' key through DynamoDB), and
/// send texts, calls and email. Each function adds its own keys to it.
pub const STATEFUL: &[Grant] = &[
    OUTBOX,
    MAIN_TABLE,
    AUDIT_APPEND,
    TABLE_KEY,
    SNS_PUBLISH,
    SES_SEND,
];

/// A function's grants, as sets of [`Grant`]s (a shared one such as [`STATEFUL`] and its own).
pub type Grants = &'static [&'static [Grant]];

/// One `(action, resource, condition)` per action of each grant: the form both sides of the
/// template comparison are put in.
pub fn statements(grants: &[&[Grant]]) -> BTreeSet<(String, Resource, Condition)> {
    grants
        .iter()
        .flat_map(|set| set.iter())
        .flat_map(|g| g.actions.iter().map(|a| ((*a).to_owned(), g.on, g.when)))
        .collect()
}

/// An SDK interceptor that refuses, before serialising it, any operation the function's grants
/// do not allow. Built by `Deps` for a function; unrestricted for the operator CLI and tests
/// that build `Deps` without one.
#[derive(Debug, Clone)]
pub struct GrantGuard {
    inner: Option<Arc<Granted>>,
}

#[derive(Debug)]
struct Granted {
    function: &'static str,
    /// `(action, resource)` the code may call; [`Condition::ViaDynamoDb`] grants left out.
    allowed: BTreeSet<(String, Resource)>,
    /// Table name → which table it is.
    tables: Vec<(String, Resource)>,
}

impl GrantGuard {
    /// No restriction (the operator CLI, which runs with an operator's own credentials).
    pub fn unrestricted() -> GrantGuard {
        GrantGuard { inner: None }
    }

    /// Only what `grants` allow, for `function`; DynamoDB calls are checked against the table
    /// they name (`main_table`, `audit_table`).
    pub fn new(
        function: &'static str,
        grants: &[&[Grant]],
        main_table: &str,
        audit_table: &str,
    ) -> GrantGuard {
        let allowed = statements(grants)
            .into_iter()
            .filter(|(_, _, when)| *when != Condition::ViaDynamoDb)
            .map(|(action, on, _)| (action, on))
            .collect();
        GrantGuard {
            inner: Some(Arc::new(Granted {
                function,
                allowed,
                tables: vec![
                    (main_table.to_owned(), Resource::MainTable),
                    (audit_table.to_owned(), Resource::AuditTable),
                ],
            })),
        }
    }

    /// Whether `service`'s `operation` with this input is allowed; `Err` names what is not.
    pub fn check(&self, service: &str, operation: &str, input: &Input) -> Result<(), String> {
        let Some(granted) = &self.inner else {
            return Ok(());
        };
        let service = service.to_ascii_lowercase();
        if service == "dynamodb" {
            let calls = dynamo_calls(operation, input)
                .ok_or_else(|| format!("dynamodb:{operation} (its tables are not known)"))?;
            for (action, table) in calls {
                let resource = granted
                    .tables
                    .iter()
                    .find(|(name, _)| *name == table)
                    .map(|(_, r)| *r)
                    .ok_or_else(|| format!("{action} on a table that is neither of ours"))?;
                if !granted.allowed.contains(&(action.clone(), resource)) {
                    return Err(format!("{action} on {resource:?}"));
                }
            }
            return Ok(());
        }
        let action = format!("{service}:{}", iam_action(&service, operation));
        if granted.allowed.iter().any(|(a, _)| *a == action) {
            Ok(())
        } else {
            Err(action)
        }
    }
}

/// The IAM action that authorises an SDK operation (a batch is authorised as its single form).
fn iam_action<'a>(service: &str, operation: &'a str) -> &'a str {
    match (service, operation) {
        ("sqs", "SendMessageBatch") => "SendMessage",
        ("sqs", "DeleteMessageBatch") => "DeleteMessage",
        ("sqs", "ChangeMessageVisibilityBatch") => "ChangeMessageVisibility",
        _ => operation,
    }
}

/// The `(IAM action, table name)` pairs a DynamoDB operation needs: a transaction is authorised
/// item by item (there is no `dynamodb:TransactWriteItems` action). `None` for an operation the
/// guard does not read (it is then refused: nothing here uses one).
fn dynamo_calls(operation: &str, input: &Input) -> Option<Vec<(String, String)>> {
    use aws_sdk_dynamodb::operation as op;
    // The table an operation's input names (`None` when the input is not of that type).
    macro_rules! table {
        ($module:ident :: $input:ident) => {
            input.downcast_ref::<op::$module::$input>()?.table_name()
        };
    }
    let one =
        |table: Option<&str>| table.map(|t| vec![(format!("dynamodb:{operation}"), t.to_owned())]);
    match operation {
        "GetItem" => one(table!(get_item::GetItemInput)),
        "PutItem" => one(table!(put_item::PutItemInput)),
        "UpdateItem" => one(table!(update_item::UpdateItemInput)),
        "DeleteItem" => one(table!(delete_item::DeleteItemInput)),
        "Query" => one(table!(query::QueryInput)),
        "Scan" => one(table!(scan::ScanInput)),
        "TransactWriteItems" => {
            let items = input
                .downcast_ref::<op::transact_write_items::TransactWriteItemsInput>()?
                .transact_items();
            let mut calls = Vec::with_capacity(items.len());
            for item in items {
                let call = if let Some(put) = item.put() {
                    ("dynamodb:PutItem", put.table_name())
                } else if let Some(update) = item.update() {
                    ("dynamodb:UpdateItem", update.table_name())
                } else if let Some(delete) = item.delete() {
                    ("dynamodb:DeleteItem", delete.table_name())
                } else if let Some(check) = item.condition_check() {
                    ("dynamodb:ConditionCheckItem", check.table_name())
                } else {
                    return None;
                };
                calls.push((call.0.to_owned(), call.1.to_owned()));
            }
            Some(calls)
        }
        _ => None,
    }
}

impl Intercept for GrantGuard {
    fn name(&self) -> &'static str {
        "PortcullisGrantGuard"
    }

    /// After the operation's configuration is applied (its metadata is in the bag), before
    /// anything is serialised or sent.
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(granted) = &self.inner else {
            return Ok(());
        };
        let Some(meta) = cfg.load::<Metadata>() else {
            return Err("grant guard: the operation has no metadata".into());
        };
        match self.check(meta.service(), meta.name(), context.input()) {
            Ok(()) => Ok(()),
            Err(refused) => {
                tracing::error!(
                    event = "grant_refused",
                    function = granted.function,
                    refused = %refused,
                    "an AWS call the function does not declare was refused"
                );
                Err(format!("{} is not granted {refused}", granted.function).into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::{
        get_item::GetItemInput, scan::ScanInput, transact_write_items::TransactWriteItemsInput,
    };
    use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};

    const GRANTS: Grants = &[&[OUTBOX, MAIN_TABLE, AUDIT_APPEND, TABLE_KEY, OPEN_TOKEN_KEY]];

    fn guard() -> GrantGuard {
        GrantGuard::new("test", GRANTS, "main", "audit")
    }

    fn get(table: &str) -> Input {
        Input::erase(GetItemInput::builder().table_name(table).build().unwrap())
    }

    fn transaction(items: Vec<TransactWriteItem>) -> Input {
        Input::erase(
            TransactWriteItemsInput::builder()
                .set_transact_items(Some(items))
                .build()
                .unwrap(),
        )
    }

    /// A transaction's put (or, `delete`, delete) of an item of `table`.
    fn write(table: &str, delete: bool) -> TransactWriteItem {
        let item = TransactWriteItem::builder();
        let key = Some(Default::default());
        if delete {
            item.delete(
                Delete::builder()
                    .table_name(table)
                    .set_key(key)
                    .build()
                    .unwrap(),
            )
        } else {
            item.put(
                Put::builder()
                    .table_name(table)
                    .set_item(key)
                    .build()
                    .unwrap(),
            )
        }
        .build()
    }

    #[test]
    fn a_dynamodb_call_is_checked_against_the_table_it_names() {
        let guard = guard();
        assert_eq!(guard.check("DynamoDB", "GetItem", &get("main")), Ok(()));
        // The audit table takes PutItem only here: reading it is not granted.
        assert_eq!(
            guard.check("DynamoDB", "GetItem", &get("audit")),
            Err("dynamodb:GetItem on AuditTable".into())
        );
        assert!(
            guard
                .check("DynamoDB", "GetItem", &get("someone-elses"))
                .is_err()
        );
        let scan = Input::erase(ScanInput::builder().table_name("main").build().unwrap());
        assert_eq!(
            guard.check("DynamoDB", "Scan", &scan),
            Err("dynamodb:Scan on MainTable".into())
        );
        // An operation whose input the guard does not read is refused, not waved through.
        assert!(
            guard
                .check("DynamoDB", "DescribeTable", &get("main"))
                .is_err()
        );
    }

    #[test]
    fn a_transaction_is_checked_item_by_item() {
        let guard = guard();
        let fine = transaction(vec![
            write("main", false),
            write("main", true),
            write("audit", false),
        ]);
        assert_eq!(guard.check("DynamoDB", "TransactWriteItems", &fine), Ok(()));
        let deletes_an_event = transaction(vec![write("main", false), write("audit", true)]);
        assert_eq!(
            guard.check("DynamoDB", "TransactWriteItems", &deletes_an_event),
            Err("dynamodb:DeleteItem on AuditTable".into())
        );
    }

    #[test]
    fn other_services_are_checked_by_action_and_a_batch_as_its_single_form() {
        let guard = guard();
        let any = get("main");
        assert_eq!(guard.check("SQS", "SendMessage", &any), Ok(()));
        assert_eq!(guard.check("SQS", "SendMessageBatch", &any), Ok(()));
        assert_eq!(guard.check("KMS", "Decrypt", &any), Ok(()));
        assert_eq!(guard.check("KMS", "Sign", &any), Err("kms:Sign".to_owned()));
        assert_eq!(
            guard.check("SNS", "Publish", &any),
            Err("sns:Publish".to_owned())
        );
        // The table key's grants are DynamoDB's to use, never the code's.
        let only_table_key = GrantGuard::new("test", &[&[TABLE_KEY]], "main", "audit");
        assert!(only_table_key.check("KMS", "Decrypt", &any).is_err());
        assert!(
            only_table_key
                .check("KMS", "GenerateDataKey", &any)
                .is_err()
        );
    }

    #[test]
    fn without_grants_nothing_is_refused() {
        let open = GrantGuard::unrestricted();
        assert_eq!(open.check("DynamoDB", "DescribeTable", &get("x")), Ok(()));
        assert_eq!(open.check("KMS", "ScheduleKeyDeletion", &get("x")), Ok(()));
    }
}
