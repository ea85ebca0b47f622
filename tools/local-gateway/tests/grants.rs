//! Each function's IAM policy in `infra/template.yaml` grants exactly what its crate declares
//! (`portcullis::grants`): no statement the crate does not declare, no declared grant missing,
//! action by action, resource by resource, condition by condition. The crate's list is what its
//! SDK clients allow (`GrantGuard`), so a call the code makes beyond it fails in the tests that
//! take that path, and a grant here beyond it is an over-grant this test refuses.

use std::collections::{BTreeMap, BTreeSet};

use portcullis::grants::{self, Grants};
use portcullis_local_gateway::{TEMPLATE, registry};
use serde_yaml::Value;

type Statements = BTreeSet<(String, String, String)>;

/// Template logical ID → the function's declared grants: every HTTP function of the registry,
/// the sweep and the sender.
fn declared() -> BTreeMap<String, Grants> {
    let mut all: BTreeMap<String, Grants> = registry::handlers()
        .into_iter()
        .map(|(id, function)| (id.to_owned(), function.grants))
        .collect();
    all.insert(
        "InactiveSweepFunction".into(),
        portcullis_inactive_sweep::GRANTS,
    );
    all.insert("SenderFunction".into(), portcullis_sender::GRANTS);
    all
}

/// The declared grants in the comparison's form.
fn declared_statements(grants: Grants) -> Statements {
    grants::statements(grants)
        .into_iter()
        .map(|(action, on, when)| (action, format!("{on:?}"), format!("{when:?}")))
        .collect()
}

fn tag_name(tagged: &serde_yaml::value::TaggedValue) -> String {
    tagged.tag.to_string().trim_start_matches('!').to_owned()
}

/// A statement's `Resource`, named as `grants::Resource` names it.
fn resource(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) if s == "*" => Ok("Any".into()),
        Value::Tagged(t) if tag_name(t) == "GetAtt" => {
            let target = t.value.as_str().unwrap_or_default();
            match target.strip_suffix(".Arn") {
                Some(
                    name @ ("MainTable" | "AuditTable" | "DataKey" | "SigningKey" | "CodeHmacKey"
                    | "OutboxQueue"),
                ) => Ok(name.to_owned()),
                _ => Err(format!("resource !GetAtt {target} is not modelled")),
            }
        }
        Value::Tagged(t)
            if tag_name(t) == "Sub"
                && t.value.as_str()
                    == Some(
                        "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${SesSenderIdentity}",
                    ) =>
        {
            Ok("SenderIdentity".into())
        }
        other => Err(format!("resource {other:?} is not modelled")),
    }
}

/// A statement's `Condition`, named as `grants::Condition` names it.
fn condition(value: Option<&Value>) -> Result<String, String> {
    let Some(value) = value else {
        return Ok("Always".into());
    };
    let equals = value
        .get("StringEquals")
        .and_then(Value::as_mapping)
        .filter(|m| m.len() == 1 && value.as_mapping().is_some_and(|c| c.len() == 1))
        .ok_or_else(|| format!("condition {value:?} is not modelled"))?;
    let (key, expected) = equals.iter().next().ok_or("empty condition")?;
    match (key.as_str(), expected) {
        (Some("kms:ViaService"), Value::Tagged(t))
            if tag_name(t) == "Sub"
                && t.value.as_str() == Some("dynamodb.${AWS::Region}.amazonaws.com") =>
        {
            Ok("ViaDynamoDb".into())
        }
        (Some("kms:EncryptionContext:purpose"), Value::String(purpose)) => {
            Ok(format!("SealedFor({purpose:?})"))
        }
        _ => Err(format!("condition {value:?} is not modelled")),
    }
}

/// Template logical ID → its inline policy's statements, in the comparison's form.
fn template_statements() -> Result<BTreeMap<String, Statements>, String> {
    let template: Value = serde_yaml::from_str(TEMPLATE).map_err(|e| e.to_string())?;
    let resources = template
        .get("Resources")
        .and_then(Value::as_mapping)
        .ok_or("no Resources")?;
    let mut all = BTreeMap::new();
    for (id, resource_def) in resources {
        if resource_def.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let id = id.as_str().ok_or("a logical ID that is not a string")?;
        let mut statements = Statements::new();
        let policies = resource_def
            .get("Properties")
            .and_then(|p| p.get("Policies"))
            .and_then(Value::as_sequence)
            .ok_or_else(|| format!("{id}: no Policies list"))?;
        for policy in policies {
            let list = policy
                .get("Statement")
                .and_then(Value::as_sequence)
                .filter(|_| policy.as_mapping().is_some_and(|m| m.len() == 1))
                .ok_or_else(|| {
                    format!("{id}: a policy that is not inline statements: {policy:?}")
                })?;
            for statement in list {
                let known = ["Effect", "Action", "Resource", "Condition"];
                if let Some(key) = statement.as_mapping().and_then(|m| {
                    m.keys()
                        .find(|k| !known.contains(&k.as_str().unwrap_or("")))
                }) {
                    return Err(format!("{id}: statement key {key:?} is not modelled"));
                }
                if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
                    return Err(format!("{id}: a statement that is not Effect: Allow"));
                }
                let on = resource(statement.get("Resource").unwrap_or(&Value::Null))
                    .map_err(|e| format!("{id}: {e}"))?;
                let when =
                    condition(statement.get("Condition")).map_err(|e| format!("{id}: {e}"))?;
                let actions = match statement.get("Action") {
                    Some(Value::String(one)) => vec![one.clone()],
                    Some(Value::Sequence(many)) => many
                        .iter()
                        .map(|a| {
                            a.as_str()
                                .map(str::to_owned)
                                .ok_or("an action that is not a string")
                        })
                        .collect::<Result<_, _>>()?,
                    other => return Err(format!("{id}: Action {other:?}")),
                };
                for action in actions {
                    statements.insert((action, on.clone(), when.clone()));
                }
            }
        }
        all.insert(id.to_owned(), statements);
    }
    Ok(all)
}

#[test]
fn every_functions_iam_policy_grants_exactly_what_its_crate_declares() {
    let template = template_statements().unwrap();
    let declared = declared();
    assert_eq!(
        template.keys().collect::<Vec<_>>(),
        declared.keys().collect::<Vec<_>>(),
        "the template's functions and the crates that declare grants differ"
    );
    let mut diffs = Vec::new();
    for (id, grants) in &declared {
        let want = declared_statements(grants);
        let have = &template[id];
        for extra in have.difference(&want) {
            diffs.push(format!(
                "{id}: the template grants {extra:?}, the crate does not declare it"
            ));
        }
        for missing in want.difference(have) {
            diffs.push(format!(
                "{id}: the crate declares {missing:?}, the template lacks it"
            ));
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn the_audit_table_is_append_only_for_every_function() {
    // SPEC: the functions may write and read audit events, never change or delete one.
    for (id, grants) in declared() {
        for (action, on, _) in grants::statements(grants) {
            if on == grants::Resource::AuditTable {
                assert!(
                    ["dynamodb:PutItem", "dynamodb:Query"].contains(&action.as_str()),
                    "{id} may {action} on the audit table"
                );
            }
        }
    }
}

#[test]
fn the_comparison_sees_a_grant_on_either_side_alone() {
    // The test above with teeth: one statement more in the template, or one fewer, is a diff.
    let template = template_statements().unwrap();
    let declared = declared();
    let want = declared_statements(declared["TokensFunction"]);
    let mut more = template["TokensFunction"].clone();
    more.insert(("dynamodb:Scan".into(), "MainTable".into(), "Always".into()));
    assert_eq!(more.difference(&want).count(), 1);
    let mut fewer = template["TokensFunction"].clone();
    let first = fewer.iter().next().cloned().unwrap();
    fewer.remove(&first);
    assert_eq!(want.difference(&fewer).count(), 1);
    assert!(resource(&Value::String("arn:aws:dynamodb:*:*:table/*".into())).is_err());
}

#[tokio::test]
async fn a_functions_clients_refuse_what_it_does_not_declare_on_the_real_sdk_path() {
    // Against the emulator (the same SDK clients as in Lambda): the tokens function declares
    // no access to the audit table, the devices function may query it, and the unguarded
    // wiring (the operator CLI's) may do anything.
    if std::env::var("AWS_ENDPOINT_URL").is_err() || std::env::var("PORTCULLIS_TABLE").is_err() {
        assert!(
            std::env::var("PORTCULLIS_REQUIRE_EMULATOR").as_deref() != Ok("1"),
            "PORTCULLIS_REQUIRE_EMULATOR=1 but no emulator is configured"
        );
        eprintln!("note: no emulator configured; the guard's wiring is not checked");
        return;
    }
    let settings = || portcullis::Settings::from_env().unwrap();
    let sdk = portcullis::Deps::sdk_config().await;
    let wire = |name: &'static str, grants: Grants| {
        portcullis::Deps::with_sdk_config_for(name, grants, settings(), sdk.clone())
    };
    let tokens = wire("tokens", portcullis_tokens::FUNCTION.grants)
        .await
        .unwrap();
    let devices = wire("devices", portcullis_devices::FUNCTION.grants)
        .await
        .unwrap();
    let open = portcullis::Deps::with_sdk_config(settings(), sdk.clone())
        .await
        .unwrap();
    let user = portcullis::identity::UserId::parse(&format!(
        "{}@example.com",
        portcullis::crypto::random_id("guard")
    ))
    .unwrap();
    let now = portcullis::Clock::now(&portcullis::SystemClock);
    let event = |kind: &str| portcullis::storage::AuditEvent {
        subject: user.clone(),
        event_id: portcullis::crypto::random_id("ev"),
        at: now,
        kind: kind.into(),
        actor: "system".into(),
        source_ip: None,
        user_agent: None,
        outcome: "success".into(),
        detail: None,
        expires_at: now.plus_secs(3600),
    };
    // Allowed to each: reading a user from the main table.
    assert!(tokens.stores.users.get_user(&user).await.is_ok());
    // The audit trail: refused to tokens, and nothing reaches the table; allowed to devices
    // (which appends and queries it) and to the unguarded wiring.
    assert!(
        tokens
            .stores
            .audit
            .append_event(&event("by_tokens"))
            .await
            .is_err()
    );
    assert!(
        tokens
            .stores
            .audit
            .list_events(&user, now, 10)
            .await
            .is_err()
    );
    devices
        .stores
        .audit
        .append_event(&event("by_devices"))
        .await
        .unwrap();
    assert!(
        devices
            .stores
            .audit
            .list_events(&user, now, 10)
            .await
            .is_ok()
    );
    let kinds: Vec<String> = open
        .stores
        .audit
        .list_events(&user, now, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["by_devices"], "the refused write was never sent");
}
