//! Phone numbers as typed by a person (`Phone::parse`, libphonenumber metadata).
//!
//! Invariants: nothing panics; a refusal is a 400; an accepted number is E.164 (`+` and at
//! most 15 digits), parsing its E.164 form gives the same number, and with the default
//! countries (texts everywhere, calls to US and CA) a call is offered only to +1 numbers of
//! those two regions, and never where a text is not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::config::Countries;
use portcullis::phone::Phone;
use portcullis::storage::Delivery;

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
            let (sms, voice) = (
                Countries::parse("all").expect("all"),
                Countries::parse("US,CA").expect("US,CA"),
            );
            let calls = phone.allows(Delivery::Voice, &sms, &voice);
            assert!(phone.allows(Delivery::Sms, &sms, &voice), "{e164}");
            assert_eq!(
                calls,
                e164.starts_with("+1") && matches!(phone.region(), Some("US" | "CA")),
                "{e164} {:?}",
                phone.region()
            );
        }
        Err(err) => assert_eq!(err.status(), 400, "{err:?}"),
    }
});
