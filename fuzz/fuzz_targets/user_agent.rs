//! User-Agent handling (`client::check` against the minimum versions) and user IDs as typed
//! (`UserId::parse`: NFKC, lower case).
//!
//! Invariants: nothing panics; a refused client is a 403 `unsupported_client` whose message
//! does not repeat the User-Agent; a user ID's normal form is its own normal form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::client::{DEFAULT_MINIMUMS, Minimums, check};
use portcullis::identity::UserId;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let minimums = Minimums::parse(DEFAULT_MINIMUMS).expect("the default minimums parse");
    if let Err(err) = check(&minimums, Some(text)) {
        assert_eq!(err.status(), 403);
        assert_eq!(err.code(), "unsupported_client");
        if text.len() >= 8 {
            let problem = serde_json::to_string(&err.problem()).unwrap();
            assert!(
                !problem.contains(text),
                "the refusal repeats the User-Agent"
            );
        }
    }
    // A configured minimums list from the environment: refused or accepted, never a panic.
    let _ = Minimums::parse(text);
    if let Ok(id) = UserId::parse(text) {
        let again = UserId::parse(id.as_str()).expect("a normalised ID is valid");
        assert_eq!(
            again.as_str(),
            id.as_str(),
            "normalisation is not idempotent"
        );
    }
});
