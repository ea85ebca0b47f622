//! Which handler serves each function of the template. Adding a function crate means adding
//! one line here; the consistency test fails until the template, the OpenAPI document and this
//! table agree.

use std::collections::BTreeMap;

pub use portcullis::edge::{Handler, HandlerFuture};

/// Function logical ID in the template → (handler, routes the function crate declares).
pub fn handlers() -> BTreeMap<&'static str, (Handler, &'static [&'static str])> {
    BTreeMap::from([
        (
            "SignInFunction",
            (
                portcullis_sign_in::handle as Handler,
                portcullis_sign_in::ROUTES,
            ),
        ),
        (
            "SendCodeFunction",
            (
                portcullis_send_code::handle as Handler,
                portcullis_send_code::ROUTES,
            ),
        ),
        (
            "VerifyFunction",
            (
                portcullis_verify::handle as Handler,
                portcullis_verify::ROUTES,
            ),
        ),
        (
            "FactorsFunction",
            (
                portcullis_factors::handle as Handler,
                portcullis_factors::ROUTES,
            ),
        ),
        (
            "TokensFunction",
            (
                portcullis_tokens::handle as Handler,
                portcullis_tokens::ROUTES,
            ),
        ),
        (
            "RecoveryCodesFunction",
            (
                portcullis_recovery_codes::handle as Handler,
                portcullis_recovery_codes::ROUTES,
            ),
        ),
        (
            "AdminFunction",
            (
                portcullis_admin::handle as Handler,
                portcullis_admin::ROUTES,
            ),
        ),
        (
            "PasswordFunction",
            (
                portcullis_password::handle as Handler,
                portcullis_password::ROUTES,
            ),
        ),
        (
            "DevicesFunction",
            (
                portcullis_devices::handle as Handler,
                portcullis_devices::ROUTES,
            ),
        ),
    ])
}
