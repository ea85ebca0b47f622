//! The edge's route tables: the access a route declares is checked before its handler runs.
//! Each handler here records that it ran, so a check that let a request through would show.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use lambda_http::Request;
use portcullis::Deps;
use portcullis::service::admin::Admin;
use portcullis::service::tokens::{Caller, Elevated};
use portcullis_edge::{self as edge, Access, Answer, Call, Function, Route};
use serde_json::{Value, json};

static RAN: AtomicUsize = AtomicUsize::new(0);

fn ran(_: &Deps, _: Call) -> Answer<'static> {
    RAN.fetch_add(1, Ordering::SeqCst);
    Box::pin(async { Ok(edge::empty_response(204)) })
}
fn ran_session(_: &Deps, _: Call, _: Caller) -> Answer<'static> {
    RAN.fetch_add(1, Ordering::SeqCst);
    Box::pin(async { Ok(edge::empty_response(204)) })
}
fn ran_elevated(_: &Deps, _: Call, _: Elevated) -> Answer<'static> {
    RAN.fetch_add(1, Ordering::SeqCst);
    Box::pin(async { Ok(edge::empty_response(204)) })
}
fn ran_admin(_: &Deps, _: Call, _: Admin) -> Answer<'static> {
    RAN.fetch_add(1, Ordering::SeqCst);
    Box::pin(async { Ok(edge::empty_response(204)) })
}

static TABLE: Function = Function {
    name: "test",
    grants: &[],
    routes: &[
        Route::public("POST /public", ran),
        Route::public("POST /browser", ran).checking_client(),
        Route::session("POST /session", ran_session),
        Route::elevated("POST /elevated", ran_elevated),
        Route::admin("POST /admin", ran_admin),
    ],
};

const MODERN: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15";
const OUTDATED: &str = "Mozilla/5.0 (Windows NT 6.1; Trident/7.0; rv:11.0) like Gecko";

fn request(route: &str, user_agent: &str, authorization: Option<&str>) -> Request {
    let path = route.split_once(' ').unwrap().1;
    let mut headers = json!({ "user-agent": user_agent });
    if let Some(a) = authorization {
        headers["authorization"] = Value::String(a.into());
    }
    let event = json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": user_agent
            },
            "requestId": "r1",
            "routeKey": route,
            "stage": "$default",
            "time": "22/Nov/2026:10:15:02 +0000",
            "timeEpoch": 1795342502000u64
        },
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).unwrap()
}

/// (status, whether the handler ran)
async fn call(deps: &Deps, route: &str, user_agent: &str, auth: Option<&str>) -> (u16, bool) {
    let before = RAN.load(Ordering::SeqCst);
    let response = TABLE.handle(deps, request(route, user_agent, auth)).await;
    (
        response.status().as_u16(),
        RAN.load(Ordering::SeqCst) != before,
    )
}

// One test for all the requests: the handlers share one counter.
#[tokio::test]
async fn each_access_check_runs_before_the_handler() {
    for (_adapter, deps, clock, outbox) in common::all_deps_with_notifier().await {
        each_check_on(&deps).await;
        admin_checks_on(&deps, &clock, &outbox).await;
    }
}

/// The `Authorization` header of `user` with a new phone `e164`, signed in by text just now,
/// and the session's tokens.
async fn signed_in_header(
    deps: &Deps,
    outbox: &portcullis::notifier::RecordingNotifier,
    user: &portcullis::identity::UserId,
    e164: &str,
) -> (String, portcullis::service::tokens::Tokens) {
    common::add_phone(deps, user, e164).await;
    let (_, tokens) = common::sms_sign_in(deps, user, outbox).await;
    (format!("Bearer {}", tokens.access_token), tokens)
}

/// An admin route runs its handler only for an active admin, by token *and* stored record, in
/// an elevated session.
async fn admin_checks_on(
    deps: &Deps,
    clock: &portcullis::ManualClock,
    outbox: &portcullis::notifier::RecordingNotifier,
) {
    let bearer = |t: &str| format!("Bearer {t}");
    assert_eq!(call(deps, "POST /admin", MODERN, None).await, (401, false));
    // A user without the role, just signed in with MFA (elevated): refused.
    let plain = common::create_user(deps, &common::unique("plain")).await;
    let (plain_auth, _) = signed_in_header(deps, outbox, &plain, "+12025550150").await;
    assert_eq!(
        call(deps, "POST /elevated", MODERN, Some(&plain_auth)).await,
        (204, true)
    );
    assert_eq!(
        call(deps, "POST /admin", MODERN, Some(&plain_auth)).await,
        (403, false),
        "a non-admin"
    );
    // An admin, elevated: runs.
    let admin = common::create_user(deps, &common::unique("adm")).await;
    common::set_roles(deps, &admin, &["admin"]).await;
    let (admin_auth, tokens) = signed_in_header(deps, outbox, &admin, "+12025550151").await;
    assert_eq!(
        call(deps, "POST /admin", MODERN, Some(&admin_auth)).await,
        (204, true)
    );
    // The role taken away in the store: the token still says admin, the record does not.
    // (`support` is left, so giving admin back is no first role, which would end the session.)
    common::set_roles(deps, &admin, &["support"]).await;
    assert_eq!(
        call(deps, "POST /admin", MODERN, Some(&admin_auth)).await,
        (403, false),
        "a token whose admin role the record no longer has"
    );
    common::set_roles(deps, &admin, &["admin"]).await;
    assert_eq!(
        call(deps, "POST /admin", MODERN, Some(&admin_auth)).await,
        (204, true)
    );
    // Past the step-up window, with a live access token (refreshed, which does not
    // elevate): refused until the admin steps up.
    clock.advance_secs(deps.settings.step_up_secs - 10);
    let refreshed = portcullis::service::tokens::refresh(
        deps,
        portcullis::service::tokens::RefreshRequest {
            refresh_token: portcullis::crypto::SecretString::new(tokens.refresh_token.clone()),
        },
    )
    .await
    .unwrap();
    let refreshed_auth = bearer(&refreshed.access_token);
    assert_eq!(
        call(deps, "POST /admin", MODERN, Some(&refreshed_auth)).await,
        (204, true)
    );
    clock.advance_secs(20);
    assert_eq!(
        call(deps, "POST /session", MODERN, Some(&refreshed_auth)).await,
        (204, true),
        "the token is live"
    );
    assert_eq!(
        call(deps, "POST /admin", MODERN, Some(&refreshed_auth)).await,
        (403, false),
        "an admin whose session is no longer elevated"
    );
}

async fn each_check_on(deps: &Deps) {
    // No live session: a session or elevated handler never runs.
    assert_eq!(call(deps, "POST /public", MODERN, None).await, (204, true));
    for route in ["POST /session", "POST /elevated"] {
        for auth in [
            None,
            Some("Bearer "),
            Some("Basic YWxpY2U6cGFzcw=="),
            Some("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9."),
        ] {
            assert_eq!(
                call(deps, route, MODERN, auth).await,
                (401, false),
                "{route} with {auth:?}"
            );
        }
    }
    // A route checking the browser refuses an outdated one before its handler.
    let (status, ran) = call(deps, "POST /browser", OUTDATED, None).await;
    assert!((400..500).contains(&status), "{status}");
    assert!(!ran);
    assert_eq!(call(deps, "POST /browser", MODERN, None).await, (204, true));
    // The same browser passes a route that does not check.
    assert_eq!(
        call(deps, "POST /public", OUTDATED, None).await,
        (204, true)
    );
    // A route key outside the table is a 404.
    assert_eq!(
        call(deps, "POST /elsewhere", MODERN, None).await,
        (404, false)
    );
}

#[test]
fn the_access_of_a_route_follows_from_its_constructor() {
    let access: Vec<Access> = TABLE.routes.iter().map(|r| r.access()).collect();
    assert_eq!(
        access,
        [
            Access::Public,
            Access::Public,
            Access::Session,
            Access::Elevated,
            Access::Admin
        ]
    );
    assert_eq!(
        TABLE.route_keys().collect::<Vec<_>>(),
        [
            "POST /public",
            "POST /browser",
            "POST /session",
            "POST /elevated",
            "POST /admin"
        ]
    );
}
