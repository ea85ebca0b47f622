//! What the services know of the request they serve: its caller's details, as the edge read
//! them from API Gateway's event (`portcullis_edge::request_meta`). Plain data, passed to a
//! service as an argument (inside [`crate::service::tokens::Caller`] and
//! [`crate::service::admin::Admin`] on the routes that authenticate): no service reads the
//! edge's request type.

use crate::crypto::SecretString;

/// The caller's details of one request.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// The trusted-device token the client sent (`X-Device-Token`, SPEC §11).
    pub device_token: Option<SecretString>,
    /// `METHOD /path/{param}` as API Gateway matched it.
    pub route_key: Option<String>,
}
