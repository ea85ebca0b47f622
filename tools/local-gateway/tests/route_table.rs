//! The route table is written once (the template); the OpenAPI document, the function crates
//! and the local endpoint's handler table must agree with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use portcullis_edge::Access;
use portcullis_local_gateway::{OPENAPI, TEMPLATE, registry, routes};
use serde_yaml::Value;

#[test]
fn template_openapi_and_handlers_list_the_same_routes() {
    let template = routes::from_template(TEMPLATE).unwrap();
    assert!(!template.is_empty());
    let from_template: BTreeSet<(String, String, String)> = template
        .iter()
        .map(|r| (r.method.clone(), r.path.clone(), r.function.clone()))
        .collect();
    let from_openapi: BTreeSet<(String, String, String)> =
        routes::from_openapi(OPENAPI).unwrap().into_iter().collect();
    assert_eq!(
        from_template, from_openapi,
        "infra/template.yaml and infra/openapi.yaml (x-portcullis-function) disagree"
    );

    let handlers = registry::handlers();
    let mut by_function: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for route in &template {
        by_function
            .entry(route.function.clone())
            .or_default()
            .insert(route.key());
    }
    let registered: BTreeSet<String> = handlers.keys().map(|k| k.to_string()).collect();
    let templated: BTreeSet<String> = by_function.keys().cloned().collect();
    assert_eq!(
        registered, templated,
        "the local endpoint's handlers and the template's functions differ"
    );
    for (function, served) in &handlers {
        let declared: BTreeSet<String> = served.route_keys().map(str::to_owned).collect();
        assert_eq!(
            &declared, &by_function[*function],
            "{function}: the routes its crate declares differ from the template's"
        );
    }
}

#[test]
fn every_function_crate_is_in_the_template_and_vice_versa() {
    let doc: Value = serde_yaml::from_str(TEMPLATE).unwrap();
    let mut binaries = BTreeSet::new();
    for (_, resource) in doc["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() == Some("AWS::Serverless::Function") {
            let binary = resource["Metadata"]["BuildProperties"]["Binary"].as_str();
            binaries.insert(
                binary
                    .expect("every function names its cargo-lambda Binary")
                    .to_owned(),
            );
        }
    }
    let functions_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../functions");
    let crates: BTreeSet<String> = std::fs::read_dir(functions_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        binaries, crates,
        "functions/* crates and template functions differ"
    );
}

#[test]
fn protected_routes_are_exactly_those_without_authorizer_none() {
    // Public routes per SPEC §11 carry `Auth: {Authorizer: NONE}`; everything else is JWT.
    let template = routes::from_template(TEMPLATE).unwrap();
    for route in template {
        let public_by_spec = !route.path.starts_with("/v1/me")
            && !route.path.starts_with("/v1/admin")
            && route.path != "/v1/sign-out";
        assert_eq!(
            route.public, public_by_spec,
            "{} {}",
            route.method, route.path
        );
    }
}

#[test]
fn a_route_behind_the_jwt_authorizer_is_a_session_route_in_its_crate_and_vice_versa() {
    // The authorizer checks the token's signature only; the function's edge checks that the
    // session is live. A route the template protects but whose crate serves it as public
    // would skip that check, and a session route the template left public would let API
    // Gateway pass requests with no token at all to the function.
    let template = routes::from_template(TEMPLATE).unwrap();
    let handlers = registry::handlers();
    let mut checked = 0;
    for route in &template {
        let served = handlers[route.function.as_str()]
            .routes
            .iter()
            .find(|r| r.key == route.key())
            .unwrap();
        assert_eq!(
            served.access() != Access::Public,
            !route.public,
            "{}: the template's authorizer and the crate's access differ",
            route.key()
        );
        checked += 1;
    }
    assert_eq!(checked, template.len());
}

#[test]
fn the_admin_routes_and_only_they_check_the_caller_as_an_admin() {
    // SPEC §8: every admin action needs an active admin, by token and stored record, in an
    // elevated session. An admin route served as a plain session route would leave that check
    // to its service; a non-admin route behind it would refuse every user.
    let handlers = registry::handlers();
    let mut admin_routes = 0;
    for function in handlers.values() {
        for route in function.routes {
            let under_admin = route
                .key
                .split_once(' ')
                .unwrap()
                .1
                .starts_with("/v1/admin/");
            assert_eq!(
                route.access() == Access::Admin,
                under_admin,
                "{}: an admin route is Route::admin, and only an admin route",
                route.key
            );
            admin_routes += usize::from(under_admin);
        }
    }
    assert_eq!(admin_routes, 15);
}

#[test]
fn routes_that_start_a_sign_in_or_an_enrolment_check_the_browser() {
    // SPEC §2 item 5: outdated browsers are refused where a sign-in starts or a factor is
    // enrolled; `POST /v1/sign-in` checks inside its service, after the lockout read.
    let handlers = registry::handlers();
    let checking: BTreeSet<&str> = handlers
        .values()
        .flat_map(|f| f.routes.iter())
        .filter(|r| r.checks_client())
        .map(|r| r.key)
        .collect();
    let expected: BTreeSet<&str> = [
        "POST /v1/passkey/options",
        "POST /v1/passkey/sign-in",
        "POST /v1/sign-in/{challenge_id}/password",
        "POST /v1/sign-in/{challenge_id}/factors/phone",
        "POST /v1/sign-in/{challenge_id}/factors/totp",
        "POST /v1/sign-in/{challenge_id}/factors/email",
        "POST /v1/sign-in/{challenge_id}/factors/passkey",
        "POST /v1/me/factors/phone",
        "POST /v1/me/factors/totp",
        "POST /v1/me/factors/email",
        "POST /v1/me/factors/passkey",
    ]
    .into_iter()
    .collect();
    assert_eq!(checking, expected);
}

#[test]
fn no_function_may_update_or_delete_the_audit_log() {
    let doc: Value = serde_yaml::from_str(TEMPLATE).unwrap();
    let mut writers = 0;
    for (name, resource) in doc["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        for policy in resource["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            for statement in policy["Statement"].as_sequence().into_iter().flatten() {
                let on_audit = serde_yaml::to_string(&statement["Resource"])
                    .unwrap()
                    .contains("AuditTable");
                if !on_audit {
                    continue;
                }
                let actions: Vec<String> = statement["Action"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_owned())
                    .collect();
                for action in &actions {
                    assert!(
                        action == "dynamodb:PutItem" || action == "dynamodb:Query",
                        "{name:?} is granted {action} on the append-only audit table"
                    );
                }
                writers += 1;
            }
        }
    }
    assert!(
        writers >= 8,
        "the functions that record events can write the audit table"
    );
}
