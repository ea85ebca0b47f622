//! Administration end to end: an admin invites a user who on-boards; an MFA reset needs two
//! admins; events and deliveries are visible to the right people.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_e2e::*;
use serde_json::json;

#[test]
fn an_invited_user_on_boards_and_an_mfa_reset_needs_two_admins() {
    let Some(api) = api() else { return };
    let alice = signed_in_with_phone(&api, &unique("alice-admin"), PASSWORD, &["admin"]);
    let bob = signed_in_with_phone(&api, &unique("bob-admin"), PASSWORD, &["admin"]);
    let (alice_token, bob_token) = (&access_token(&alice), &access_token(&bob));

    // on-boarding
    let newcomer = unique("hire");
    let invited = api.invite(
        alice_token,
        &json!({"user_id": newcomer, "email": newcomer}),
    );
    assert_eq!(invited.status, 201, "{invited:?}");
    let (_, body) = wait_for_emails(&newcomer, 1)
        .last()
        .cloned()
        .expect("the invitation email");
    let token = link_token(&body);
    let accept = || {
        api.post_json(
            &format!("/v1/invitations/{token}/accept"),
            &json!({"password": "my very first passphrase"}),
        )
    };
    let accepted = accept();
    assert_eq!(accepted.status, 204, "{accepted:?}");
    accept().assert_problem(400, "validation_failed");
    assert_eq!(
        api.sign_in(&newcomer, "my very first passphrase").json()["status"],
        "mfa_enrolment_required"
    );

    // a user who is not an admin is refused
    let plain = signed_in_with_phone(&api, &unique("plain"), PASSWORD, &[]);
    let plain_token = &access_token(&plain);
    api.invite(
        plain_token,
        &json!({"user_id": unique("x"), "email": "x@example.com"}),
    )
    .assert_problem(403, "forbidden");

    // the MFA reset: Alice files, Alice cannot approve, Bob approves
    let victim = unique("victim");
    signed_in_with_phone(&api, &victim, PASSWORD, &[]);
    let filed = api.post_auth(
        "/v1/admin/mfa-resets",
        alice_token,
        &json!({"user_id": victim, "reason": "Lost phone; identity checked at the branch"}),
    );
    assert_eq!(filed.status, 201, "{filed:?}");
    let request_id = filed.json()["request_id"].as_str().unwrap().to_owned();
    let approve = |token: &str| {
        api.post_auth(
            &format!("/v1/admin/mfa-resets/{request_id}/approve"),
            token,
            &json!({}),
        )
    };
    approve(alice_token).assert_problem(403, "forbidden");
    approve(plain_token).assert_problem(403, "forbidden");
    let approved = approve(bob_token);
    assert_eq!(approved.status, 204, "{approved:?}");
    assert_eq!(
        api.sign_in(&victim, PASSWORD).json()["status"],
        "mfa_enrolment_required"
    );

    // the trail: the admin sees the victim's events and deliveries (never the codes)
    let events = api
        .get(&format!("/v1/admin/users/{victim}/events"), Some(bob_token))
        .json();
    let kinds = strings_of(&events["events"], "kind");
    for kind in [
        "mfa_reset_approved",
        "mfa_reset_requested",
        "factor_added",
        "sign_in_succeeded",
        "code_sent",
        "operator_create_user",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    // SPEC §8: every event recorded while handling a request carries the caller's source IP
    // and User-Agent — code_sent and factor_added included (recorded deep in the services).
    // The one that no request made: the operator CLI's creation of the user (actor operator).
    let requested = |e: &&serde_json::Value| e["actor"] != "operator";
    for event in events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(requested)
    {
        assert_eq!(event["source_ip"], "127.0.0.1", "{event}");
        assert!(
            event["user_agent"]
                .as_str()
                .is_some_and(|ua| !ua.is_empty()),
            "{event}"
        );
    }
    let deliveries = api.get(
        &format!("/v1/admin/users/{victim}/deliveries"),
        Some(bob_token),
    );
    assert_eq!(deliveries.status, 200);
    assert!(
        !deliveries.text.contains("code to"),
        "no message content in deliveries"
    );
    assert!(
        deliveries.json()["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["channel"] == "sms" && d["outcome"] == "sent")
    );
    // users see their own events
    let own = api.get("/v1/me/events", Some(plain_token)).json();
    assert!(
        own["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "sign_in_succeeded")
    );
}

#[test]
fn admin_routes_refuse_bad_input_and_self_service() {
    let Some(api) = api() else { return };
    let admin_user = unique("carol-admin");
    let carol = signed_in_with_phone(&api, &admin_user, PASSWORD, &["admin"]);
    let token = &access_token(&carol);
    api.invite(
        token,
        &json!({"user_id": unique("y"), "email": "not-an-email"}),
    )
    .assert_problem(400, "validation_failed");
    api.invite(
        token,
        &json!({"user_id": unique("y"), "email": "y@example.com", "roles": ["god"]}),
    )
    .assert_problem(400, "validation_failed");
    api.post_auth(
        "/v1/admin/mfa-resets",
        token,
        &json!({"user_id": admin_user, "reason": "Resetting my own factors here"}),
    )
    .assert_problem(403, "forbidden");
    api.post_auth(
        &format!("/v1/admin/users/{admin_user}/unlock"),
        token,
        &json!({}),
    )
    .assert_problem(403, "forbidden");
    api.post_auth(
        "/v1/admin/users/nobody-here@example.com/unlock",
        token,
        &json!({}),
    )
    .assert_problem(404, "not_found");
    api.post_auth("/v1/admin/mfa-resets/mr_nope/approve", token, &json!({}))
        .assert_problem(404, "not_found");
}
