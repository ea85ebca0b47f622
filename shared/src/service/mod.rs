//! One module per use case. Services take [`crate::Deps`] and plain inputs, return plain
//! outputs or an [`crate::ApiError`]; they know nothing of HTTP or Lambda.

pub mod sign_in;
