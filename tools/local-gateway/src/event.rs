//! Builds the event API Gateway HTTP API (payload format 2.0) sends to a Lambda function.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lambda_http::http::HeaderMap;
use serde_json::{Map, Value, json};

use crate::routes::Route;

/// Everything about one incoming request the event needs.
#[derive(Debug)]
pub struct Incoming<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub source_ip: String,
    pub host: &'a str,
    pub request_id: String,
    pub time_epoch_ms: i64,
}

/// The event JSON, as API Gateway would send it for `route`.
pub fn build(
    incoming: &Incoming<'_>,
    route: &Route,
    path_params: &[(String, String)],
    jwt_claims: Option<&Map<String, Value>>,
) -> Value {
    // API Gateway joins repeated headers with commas and lower-cases names; cookies travel apart.
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for name in incoming.headers.keys() {
        let values: Vec<&str> = incoming
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if name.as_str() == "cookie" {
            cookies.extend(
                values
                    .iter()
                    .flat_map(|v| v.split(';'))
                    .map(|c| c.trim().to_owned()),
            );
            continue;
        }
        headers.insert(name.as_str().to_owned(), Value::String(values.join(",")));
    }
    let user_agent = headers
        .get("user-agent")
        .cloned()
        .unwrap_or(Value::String(String::new()));
    let path_parameters: Map<String, Value> = path_params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let (body, is_base64) = match std::str::from_utf8(incoming.body) {
        _ if incoming.body.is_empty() => (Value::Null, false),
        Ok(text) => (Value::String(text.to_owned()), false),
        Err(_) => (Value::String(STANDARD.encode(incoming.body)), true),
    };
    let route_key = route.key();
    let mut request_context = json!({
        "accountId": "000000000000",
        "apiId": "local",
        "domainName": incoming.host,
        "domainPrefix": incoming.host.split('.').next().unwrap_or("local"),
        "http": {
            "method": incoming.method,
            "path": incoming.path,
            "protocol": "HTTP/1.1",
            "sourceIp": incoming.source_ip,
            "userAgent": user_agent,
        },
        "requestId": incoming.request_id,
        "routeKey": route_key,
        "stage": "$default",
        "time": "",
        "timeEpoch": incoming.time_epoch_ms,
    });
    if let (Some(claims), Some(ctx)) = (jwt_claims, request_context.as_object_mut()) {
        ctx.insert(
            "authorizer".into(),
            json!({ "jwt": { "claims": claims, "scopes": Value::Null } }),
        );
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": incoming.path,
        "rawQueryString": incoming.query.unwrap_or(""),
        "headers": headers,
        "requestContext": request_context,
        "isBase64Encoded": is_base64,
    });
    // As API Gateway does: decoded, repeated names joined with commas ("+" is a space).
    let mut query = Map::new();
    for pair in incoming
        .query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| crate::routes::percent_decode(&s.replace('+', " "));
        let (name, value) = (decode(name), decode(value));
        match query.get_mut(&name) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                query.insert(name, Value::String(value));
            }
        }
    }
    if let Some(obj) = event.as_object_mut() {
        if !query.is_empty() {
            obj.insert("queryStringParameters".into(), Value::Object(query));
        }
        if !cookies.is_empty() {
            obj.insert("cookies".into(), json!(cookies));
        }
        if !path_parameters.is_empty() {
            obj.insert("pathParameters".into(), Value::Object(path_parameters));
        }
        if !body.is_null() {
            obj.insert("body".into(), body);
        }
    }
    event
}

/// Claims as API Gateway's JWT authorizer passes them to a protected route's function: a map
/// of strings (arrays as `[a b]`, numbers as their digits). Used by [`crate::server`] and by
/// the Lambda harness of `tools/bench`, so both hand the functions the same `authorizer`.
pub fn authorizer_claims(
    claims: &portcullis::crypto::jwt::AccessClaims,
) -> serde_json::Map<String, serde_json::Value> {
    let value = serde_json::to_value(claims).unwrap_or_default();
    let mut out = serde_json::Map::new();
    if let serde_json::Value::Object(map) = value {
        for (key, v) in map {
            let text = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Array(items) => format!(
                    "[{}]",
                    items
                        .iter()
                        .map(|i| i
                            .as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| i.to_string()))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                other => other.to_string(),
            };
            out.insert(key, serde_json::Value::String(text));
        }
    }
    out
}
