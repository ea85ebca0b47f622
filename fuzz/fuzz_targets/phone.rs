//! Phone numbers as typed by a person (`Phone::parse`, libphonenumber metadata).
//!
//! Invariants: nothing panics; a refusal is a 400; an accepted number is E.164 (`+` and at
//! most 15 digits), parsing its E.164 form gives the same number, and voice is offered only
//! for +1.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::phone::Phone;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    match Phone::parse(raw) {
        Ok(phone) => {
            let e164 = phone.e164();
            let digits = &e164[1..];
            assert!(e164.starts_with('+'), "{e164}");
            assert!(
                !digits.is_empty()
                    && digits.len() <= 15
                    && digits.bytes().all(|b| b.is_ascii_digit()),
                "not E.164: {e164}"
            );
            let again = Phone::parse(e164).expect("an accepted number's E.164 form parses");
            assert_eq!(again.e164(), e164);
            assert_eq!(phone.takes_voice(), e164.starts_with("+1"));
        }
        Err(err) => assert_eq!(err.status(), 400, "{err:?}"),
    }
});
