//! Prints a fresh admin's access token for property-based testing of the protected routes:
//! an admin is created with the operator CLI (`PORTCULLIS_ADMIN_BIN`), enrols a phone inside
//! the first sign-in through the endpoint (`PORTCULLIS_API_URL`) with the code read back from
//! the emulator, and is so signed in with MFA (an elevated session). `scripts/test.sh` gives
//! the token to schemathesis; the endpoint it runs against gives tokens a long lifetime.
//!
//!     cargo run -q -p portcullis-e2e --bin test-session   # → {"access_token": "…", "user_id": "…"}
#![allow(clippy::unwrap_used, clippy::expect_used)]

use portcullis_e2e::{api, signed_in_with_phone, unique};

fn main() {
    let api = api().expect("PORTCULLIS_API_URL must name the endpoint");
    let user = unique("schemathesis-admin");
    let signed = signed_in_with_phone(&api, &user, "a passphrase for the fuzzer", &["admin"]);
    let out = serde_json::json!({
        "access_token": signed["access_token"],
        "user_id": user,
    });
    println!("{out}");
}
