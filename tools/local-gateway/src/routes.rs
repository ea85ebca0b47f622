//! The route table, derived from the SAM template.

use serde_yaml::{Mapping, Value};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub method: String,
    /// The path template, e.g. `/v1/sign-in/{challenge_id}/codes`.
    pub path: String,
    /// The logical ID of the function in the template, e.g. `SignInFunction`.
    pub function: String,
    /// `Auth: {Authorizer: NONE}`: no access token needed.
    pub public: bool,
}

impl Route {
    /// `POST /v1/sign-in`, as API Gateway names it in `routeKey`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Matches a concrete path, returning the path parameters.
    pub fn matches(&self, method: &str, path: &str) -> Option<Vec<(String, String)>> {
        if !self.method.eq_ignore_ascii_case(method) {
            return None;
        }
        let pattern: Vec<&str> = self.path.trim_matches('/').split('/').collect();
        let actual: Vec<&str> = path.trim_matches('/').split('/').collect();
        if pattern.len() != actual.len() {
            return None;
        }
        let mut params = Vec::new();
        for (p, a) in pattern.iter().zip(actual.iter()) {
            if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if a.is_empty() {
                    return None;
                }
                params.push((name.to_owned(), percent_decode(a)));
            } else if p != a {
                return None;
            }
        }
        Some(params)
    }
}

/// API Gateway HTTP API hands functions percent-decoded path parameters (`a%40b.example` →
/// `a@b.example`). A value that does not decode to UTF-8 is passed as sent.
pub fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| segment.to_owned())
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("template is not valid YAML: {0}")]
    Yaml(String),
    #[error("template: {0}")]
    Shape(String),
}

/// The mapping under the top-level `key` of a YAML document; `missing` says what is wrong
/// when there is none.
fn top_level(document: &str, key: &str, missing: &str) -> Result<Mapping, RouteError> {
    let mut doc: Value =
        serde_yaml::from_str(document).map_err(|e| RouteError::Yaml(e.to_string()))?;
    match doc.get_mut(key).map(std::mem::take) {
        Some(Value::Mapping(mapping)) => Ok(mapping),
        _ => Err(RouteError::Shape(missing.to_owned())),
    }
}

/// Every `HttpApi` event of every function in the template, sorted by path then method.
pub fn from_template(template: &str) -> Result<Vec<Route>, RouteError> {
    let resources = top_level(template, "Resources", "no Resources")?;
    let mut routes = Vec::new();
    for (name, resource) in &resources {
        if resource.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let function = name.as_str().unwrap_or_default().to_owned();
        let Some(events) = resource
            .get("Properties")
            .and_then(|p| p.get("Events"))
            .and_then(Value::as_mapping)
        else {
            continue;
        };
        for event in events.values() {
            if event.get("Type").and_then(Value::as_str) != Some("HttpApi") {
                continue;
            }
            let props = event.get("Properties");
            let field = |key: &str| props.and_then(|p| p.get(key)).and_then(Value::as_str);
            let (Some(method), Some(path)) = (field("Method"), field("Path")) else {
                return Err(RouteError::Shape(format!(
                    "{function}: HttpApi event without Method/Path"
                )));
            };
            let authorizer = props
                .and_then(|p| p.get("Auth"))
                .and_then(|a| a.get("Authorizer"))
                .and_then(Value::as_str);
            routes.push(Route {
                method: method.to_ascii_uppercase(),
                path: path.to_owned(),
                function: function.clone(),
                public: authorizer == Some("NONE"),
            });
        }
    }
    routes.sort_by(|a, b| (&a.path, &a.method).cmp(&(&b.path, &b.method)));
    Ok(routes)
}

/// The routes of the OpenAPI document: `(METHOD, path, x-portcullis-function)`.
pub fn from_openapi(openapi: &str) -> Result<Vec<(String, String, String)>, RouteError> {
    let paths = top_level(openapi, "paths", "openapi: no paths")?;
    let mut out = Vec::new();
    for (path, item) in &paths {
        let path = path.as_str().unwrap_or_default();
        let Some(ops) = item.as_mapping() else {
            continue;
        };
        for (method, op) in ops {
            let method = method.as_str().unwrap_or_default();
            if !["get", "put", "post", "delete", "patch"].contains(&method) {
                continue;
            }
            let function = op
                .get("x-portcullis-function")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            out.push((method.to_ascii_uppercase(), path.to_owned(), function));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `POST` route of a function `F`.
    fn post(path: &str, public: bool) -> Route {
        Route {
            method: "POST".into(),
            path: path.into(),
            function: "F".into(),
            public,
        }
    }

    /// A match's one path parameter, `name` = `value`.
    fn param(name: &str, value: &str) -> Option<Vec<(String, String)>> {
        Some(vec![(name.to_owned(), value.to_owned())])
    }

    #[test]
    fn path_parameters_match_one_segment() {
        let route = post("/v1/sign-in/{challenge_id}/codes", true);
        let abc = param("challenge_id", "abc");
        assert_eq!(route.matches("POST", "/v1/sign-in/abc/codes"), abc);
        assert_eq!(route.matches("GET", "/v1/sign-in/abc/codes"), None);
        assert_eq!(route.matches("POST", "/v1/sign-in//codes"), None);
        assert_eq!(route.matches("POST", "/v1/sign-in/a/b/codes"), None);
    }

    #[test]
    fn path_parameters_are_percent_decoded_as_api_gateway_does() {
        let route = post("/v1/admin/users/{user_id}/unlock", false);
        assert_eq!(
            route.matches("POST", "/v1/admin/users/a%40b.example/unlock"),
            param("user_id", "a@b.example")
        );
        assert_eq!(percent_decode("J%C3%BCrgen"), "Jürgen");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%FF"), "%FF"); // not UTF-8: as sent
    }
}
