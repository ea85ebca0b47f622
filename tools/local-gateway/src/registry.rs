//! Which function crate serves each function of the template. Adding a function crate means
//! adding one line here; the consistency test fails until the template, the OpenAPI document
//! and the crates' route tables agree.

use std::collections::BTreeMap;

pub use portcullis_edge::Function;

/// Function logical ID in the template → the function (its name and route table).
pub fn handlers() -> BTreeMap<&'static str, &'static Function> {
    BTreeMap::from([
        ("SignInFunction", &portcullis_sign_in::FUNCTION),
        ("SendCodeFunction", &portcullis_send_code::FUNCTION),
        ("VerifyFunction", &portcullis_verify::FUNCTION),
        ("FactorsFunction", &portcullis_factors::FUNCTION),
        ("TokensFunction", &portcullis_tokens::FUNCTION),
        (
            "RecoveryCodesFunction",
            &portcullis_recovery_codes::FUNCTION,
        ),
        ("AdminFunction", &portcullis_admin::FUNCTION),
        ("PasswordFunction", &portcullis_password::FUNCTION),
        ("DevicesFunction", &portcullis_devices::FUNCTION),
    ])
}
