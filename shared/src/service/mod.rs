//! One module per use case. Services take [`crate::Deps`] and plain inputs, return plain
//! outputs or an [`crate::ApiError`]; they know nothing of HTTP or Lambda.

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
