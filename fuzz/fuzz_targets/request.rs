//! Request parsing: an arbitrary API Gateway v2 event, then an arbitrary body under an
//! arbitrary content type through `edge::parse_json` into every request type of the API.
//!
//! Invariants: nothing panics; every refusal is a 4xx problem; a refusal's message never
//! repeats a string value the client sent (a password must not come back in an error).
#![no_main]

use lambda_http::{Body, Request};
use libfuzzer_sys::fuzz_target;
use portcullis::ApiError;
use portcullis::service::{admin, codes, factors, password, recovery, sign_in, step_up, tokens};
use portcullis_edge::{authorization, no_body, parse_json, path_param};

const MAX_BODY: usize = 4096;

fn check<T: serde::de::DeserializeOwned>(req: &Request, sent: &[String]) {
    if let Err(err) = parse_json::<T>(req, MAX_BODY) {
        refusal_is_clean(&err, sent);
    }
}

fn refusal_is_clean(err: &ApiError, sent: &[String]) {
    assert!((400..500).contains(&err.status()), "{err:?}");
    let problem = serde_json::to_string(&err.problem()).unwrap();
    // What the refusals say themselves is taken out first: a body whose strings include
    // "application/json" (the 415's "Send the request body as application/json.") is not
    // being echoed (found by the fuzzer, with an API Gateway event sent as a text/plain body).
    const OWN_WORDS: [&str; 2] = ["application/problem+json", "application/json"];
    let scrubbed = OWN_WORDS
        .iter()
        .fold(field_names_out(&problem), |text, own| {
            text.replace(own, " ")
        });
    for value in sent {
        assert!(
            !scrubbed.contains(value.as_str()),
            "the error repeats a submitted value: {problem}"
        );
    }
}

/// The problem without the field names it quotes itself: serde names fields in backquotes
/// ("unknown field `x`, expected `user_id` or `password`", "missing field `code`"), so a value
/// equal to one is not being echoed (`{"x": "user_id"}`, found by the fuzzer, which learns the
/// names from serde's comparisons). Other backquoted text, where a value would be (`unknown
/// variant`, an integer), is kept.
fn field_names_out(problem: &str) -> String {
    let mut out = String::with_capacity(problem.len());
    let mut rest = problem;
    let mut expected = false;
    while let Some(start) = rest.find('`') {
        let (before, quoted) = rest.split_at(start);
        let Some(end) = quoted[1..].find('`').map(|end| end + 2) else {
            break;
        };
        out.push_str(before);
        expected |= before.contains("expected");
        if expected || before.ends_with("field ") {
            out.push_str("` `");
        } else {
            out.push_str(&quoted[..end]);
        }
        rest = &quoted[end..];
    }
    out.push_str(rest);
    out
}

/// String values of at least 6 characters in a JSON document (shorter ones may occur in the
/// message by chance: field names, "null").
fn strings(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) if s.chars().count() >= 6 => {
            // The message is JSON-escaped in the problem; compare the escaped form.
            let escaped = serde_json::to_string(s).unwrap();
            out.push(escaped[1..escaped.len() - 1].to_owned());
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// Whether API Gateway could deliver this event: lambda_http builds the request's URL from the
/// `Host` header (else `requestContext.domainName`), `X-Forwarded-Proto` and `rawPath`, and
/// panics (an `unwrap` in `build_request_uri`) when they make no URL, e.g. a host that is not
/// a valid domain name (found by this target). API Gateway sets all three itself (the host is
/// the API's own domain, the scheme `https`, the path one it routed), so such an event never
/// reaches a function; it is skipped rather than reported against lambda_http.
fn deliverable(text: &str) -> bool {
    let Ok(event) = serde_json::from_str::<serde_json::Value>(text) else {
        return true;
    };
    let header = |name: &str| {
        event["headers"]
            .as_object()
            .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
            .and_then(|(_, v)| v.as_str())
    };
    let host = header("host").or(event["requestContext"]["domainName"].as_str());
    let Some(host) = host else {
        return true;
    };
    let scheme = header("x-forwarded-proto").unwrap_or("https");
    let path = event["rawPath"].as_str().unwrap_or_default();
    url::Url::parse(&format!("{scheme}://{host}{path}")).is_ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector & 0x80 != 0 {
        // The whole input is an API Gateway event, parsed as lambda_http parses it in Lambda.
        if let Ok(text) = std::str::from_utf8(rest)
            && deliverable(text)
            && let Ok(req) = lambda_http::request::from_str(text)
        {
            let _ = portcullis_edge::request_meta(&req);
            let _ = path_param(&req, "challenge_id");
            let _ = authorization(&req);
            let _ = no_body(&req, MAX_BODY);
            let _ = parse_json::<sign_in::SignInRequest>(&req, MAX_BODY);
        }
        return;
    }
    let content_type = match selector % 6 {
        0 => "application/json",
        1 => "application/json; charset=utf-8",
        2 => "application/problem+json",
        3 => "text/plain",
        4 => "APPLICATION/JSON ; x=y",
        _ => "",
    };
    let body = if selector & 0x40 != 0 {
        Body::Binary(rest.to_vec())
    } else {
        Body::Text(String::from_utf8_lossy(rest).into_owned())
    };
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/v1/x");
    if !content_type.is_empty() {
        builder = builder.header("content-type", content_type);
    }
    let Ok(req) = builder.body(body) else {
        return;
    };
    let mut sent = Vec::new();
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(rest) {
        strings(&value, &mut sent);
    }
    check::<sign_in::SignInRequest>(&req, &sent);
    check::<codes::SendCodeRequest>(&req, &sent);
    check::<step_up::StepUpRequest>(&req, &sent);
    check::<tokens::RefreshRequest>(&req, &sent);
    check::<factors::EnrolPhoneRequest>(&req, &sent);
    check::<factors::VerifyFactorRequest>(&req, &sent);
    check::<factors::ChangePhoneRequest>(&req, &sent);
    check::<recovery::RedeemRequest>(&req, &sent);
    check::<password::ChangePasswordRequest>(&req, &sent);
    check::<password::ForgotRequest>(&req, &sent);
    check::<password::ResetRequest>(&req, &sent);
    check::<password::NewPasswordRequest>(&req, &sent);
    check::<admin::InviteRequest>(&req, &sent);
    check::<admin::AcceptRequest>(&req, &sent);
    if let Err(err) = no_body(&req, MAX_BODY) {
        refusal_is_clean(&err, &sent);
    }
});
