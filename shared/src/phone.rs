//! Phone numbers (SPEC §3, §12): E.164 only, parsed and validated with the `phonenumber` crate
//! (Google's libphonenumber metadata). Extensions are refused — a one-time code cannot be
//! routed through one — and so are letters (vanity numbers such as `1-800-FLOWERS`: the digits
//! a keypad would give are not what the user typed, and toll-fraud lists use them). Each number
//! knows its region (ISO 3166), so the deployment's allow-lists (`SmsCountries`, default every
//! country; `VoiceCountries`, default US and Canada) are applied by country, not by calling
//! code: +1 876 is Jamaica and takes text messages only.

use crate::config::Countries;
use crate::error::ApiError;
use crate::storage::Delivery;

/// Longest input looked at; E.164 numbers have at most 15 digits plus `+`, so this leaves room
/// for spaces and punctuation a person may type.
const MAX_INPUT_CHARS: usize = 32;

/// A valid phone number in E.164 form (`+15551234567`). `Debug` shows the region only.
#[derive(Clone, PartialEq, Eq)]
pub struct Phone {
    e164: String,
    /// ISO 3166-1 region, when libphonenumber knows it (`US`, `CA`, `JM`, `GB`…).
    region: Option<String>,
}

debug_redacting!(Phone { region; e164 });

impl Phone {
    /// Parses a number typed in international form. Refuses anything that is not a valid,
    /// extension-free number with a country code.
    pub fn parse(raw: &str) -> Result<Phone, ApiError> {
        let raw = raw.trim();
        if raw.is_empty() || raw.chars().count() > MAX_INPUT_CHARS {
            return Err(ApiError::validation(
                "phone must be an international number in E.164 form, e.g. +15551234567.",
            ));
        }
        if looks_like_extension(raw) {
            return Err(extension_refused());
        }
        if raw.chars().any(char::is_alphabetic) {
            return Err(ApiError::validation(
                "phone must be digits only: letters (as in 1-800-FLOWERS) are not accepted.",
            ));
        }
        if !raw.starts_with('+') {
            return Err(ApiError::validation(
                "phone must start with + and the country code (E.164), e.g. +15551234567.",
            ));
        }
        let number = phonenumber::parse(None, raw)
            .map_err(|_| ApiError::validation("phone is not a valid phone number."))?;
        if number.extension().is_some() {
            return Err(extension_refused());
        }
        if !phonenumber::is_valid(&number) {
            return Err(ApiError::validation("phone is not a valid phone number."));
        }
        let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
        // E.164 allows at most 15 digits; libphonenumber's metadata accepts some longer numbers
        // (found by the fuzzer: +49 44 026 954944 026 9, 17 digits), which SNS would refuse.
        if e164.len() > 16 {
            return Err(ApiError::validation(
                "phone has more digits than an international number can (15 at most).",
            ));
        }
        Ok(Phone {
            e164,
            region: region_of(&number),
        })
    }

    /// Wraps a number read back from storage (stored only after [`Phone::parse`]); its region
    /// is looked up again.
    pub fn from_stored(e164: &str) -> Phone {
        let region = phonenumber::parse(None, e164)
            .ok()
            .and_then(|n| region_of(&n));
        Phone {
            e164: e164.to_owned(),
            region,
        }
    }

    pub fn e164(&self) -> &str {
        &self.e164
    }

    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// Whether the deployment sends codes to this number by `delivery`.
    pub fn allows(&self, delivery: Delivery, sms: &Countries, voice: &Countries) -> bool {
        match delivery {
            Delivery::Sms => sms.allows(self.region()),
            Delivery::Voice => sms.allows(self.region()) && voice.allows(self.region()),
        }
    }

    /// Refuses a channel the deployment does not offer for this number's country: voice
    /// outside `VoiceCountries` (`voice_not_supported`, 422), any code outside `SmsCountries`
    /// (`country_not_supported`, 422).
    pub fn check_delivery(
        &self,
        delivery: Delivery,
        sms: &Countries,
        voice: &Countries,
    ) -> Result<(), ApiError> {
        if !sms.allows(self.region()) {
            return Err(ApiError::CountryNotSupported);
        }
        match delivery {
            Delivery::Voice if !voice.allows(self.region()) => Err(ApiError::VoiceNotSupported),
            _ => Ok(()),
        }
    }
}

fn region_of(number: &phonenumber::PhoneNumber) -> Option<String> {
    number.country().id().map(|id| id.as_ref().to_owned())
}

fn extension_refused() -> ApiError {
    ApiError::validation(
        "phone must not have an extension: codes cannot be routed through an extension.",
    )
}

/// Extension markers people type: `x123`, `ext. 123`, `;ext=123`, `#123`, a pause `,`.
fn looks_like_extension(raw: &str) -> bool {
    let lower = raw.to_ascii_lowercase();
    lower.contains("ext")
        || lower.contains('x')
        || lower.contains(';')
        || lower.contains('#')
        || lower.contains(',')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_valid_international_numbers() {
        assert_eq!(
            Phone::parse("+1 (202) 555-0143").unwrap().e164(),
            "+12025550143"
        );
        assert_eq!(
            Phone::parse(" +44 7911 123456 ").unwrap().e164(),
            "+447911123456"
        );
    }

    #[test]
    fn refuses_extensions_with_the_spec_reason() {
        for raw in [
            "+12025550143 x123",
            "+12025550143 ext. 12",
            "+12025550143;ext=9",
            "+12025550143#5",
            "+12025550143,,5",
        ] {
            let err = Phone::parse(raw).unwrap_err();
            assert!(
                err.problem()
                    .detail
                    .contains("codes cannot be routed through an extension"),
                "{raw}"
            );
        }
    }

    #[test]
    fn refuses_national_format_garbage_and_invalid_numbers() {
        for raw in [
            "2025550143",
            "",
            "+",
            "+1",
            "hello",
            "+999 123",
            "+1 000 000 0000",
            &"+1".repeat(40),
        ] {
            assert_eq!(Phone::parse(raw).unwrap_err().status(), 400, "{raw}");
        }
    }

    #[test]
    fn refuses_numbers_longer_than_e164_allows() {
        // Found by `scripts/fuzz.sh phone`: libphonenumber calls this 17-digit number valid.
        let err = Phone::parse("+4944 026 954944 026 9").unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(
            Phone::parse("+49 30 901820").is_ok(),
            "a normal German number still is"
        );
    }

    fn defaults() -> (Countries, Countries) {
        (
            Countries::All,
            Countries::parse("US,CA").unwrap_or(Countries::All),
        )
    }

    #[test]
    fn voice_only_for_us_and_canada_by_region_not_by_calling_code() {
        let (sms, voice) = defaults();
        let us = Phone::parse("+12025550143").unwrap();
        let ca = Phone::parse("+16135550123").unwrap();
        let uk = Phone::parse("+447911123456").unwrap();
        let jamaica = Phone::parse("+18765550123").unwrap();
        assert_eq!(jamaica.region(), Some("JM"));
        assert_eq!(us.region(), Some("US"));
        assert_eq!(ca.region(), Some("CA"));
        for ok in [&us, &ca] {
            assert!(ok.check_delivery(Delivery::Voice, &sms, &voice).is_ok());
        }
        for text_only in [&uk, &jamaica] {
            assert_eq!(
                text_only
                    .check_delivery(Delivery::Voice, &sms, &voice)
                    .unwrap_err(),
                ApiError::VoiceNotSupported
            );
            assert!(
                text_only
                    .check_delivery(Delivery::Sms, &sms, &voice)
                    .is_ok()
            );
        }
        assert_eq!(Phone::from_stored("+18765550123").region(), Some("JM"));
    }

    #[test]
    fn text_messages_only_to_allowed_countries() {
        let sms = Countries::parse("US,GB").unwrap();
        let voice = Countries::parse("US").unwrap();
        let fr = Phone::parse("+33612345678").unwrap();
        assert_eq!(
            fr.check_delivery(Delivery::Sms, &sms, &voice).unwrap_err(),
            ApiError::CountryNotSupported
        );
        assert!(!fr.allows(Delivery::Sms, &sms, &voice));
        let gb = Phone::parse("+447400123456").unwrap();
        assert_eq!(gb.region(), Some("GB"));
        assert!(gb.allows(Delivery::Sms, &sms, &voice));
        assert!(!gb.allows(Delivery::Voice, &sms, &voice));
    }

    #[test]
    fn letters_are_refused_like_extensions() {
        for raw in ["+1202555CALL", "+1 800 FLOWERS", "+1202555014é"] {
            let err = Phone::parse(raw).unwrap_err();
            assert_eq!(err.status(), 400, "{raw}");
            assert!(err.problem().detail.contains("digits only"), "{raw}");
        }
    }
}
