//! One module per use case. Services take [`crate::Deps`] and plain inputs, return plain
//! outputs or an [`crate::ApiError`]. They do not parse requests or build responses (this crate
//! does not depend on `lambda_http`): they take [`crate::request::RequestMeta`] (source IP, User-Agent,
//! trusted-device token, route) as an argument — on a public route the request's, on a session
//! route the [`tokens::Caller`]'s `from` — and hand it to [`audit::record`], which requires it,
//! so every security event carries the caller it came from; only what no request causes (the
//! inactivity sweep) uses [`audit::record_by_system`]. No service learns its caller any other
//! way (there is no task-local).

pub mod admin;
pub mod alerts;
pub mod audit;
pub mod codes;
pub mod complete;
pub mod devices;
pub mod factors;
pub mod limits;
pub mod passkeys;
pub mod password;
pub mod recovery;
pub mod second_factor;
pub mod sender;
pub mod sign_in;
pub mod step_up;
pub mod sweep;
pub mod tokens;
