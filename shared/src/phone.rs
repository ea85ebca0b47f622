//! Phone numbers (SPEC §3): E.164 only, parsed and validated with the `phonenumber` crate
//! (Google's libphonenumber metadata). Extensions are refused — a one-time code cannot be
//! routed through one — and voice calls go only to +1 (US and Canada) numbers.

use crate::error::ApiError;
use crate::storage::Delivery;

/// Longest input looked at; E.164 numbers have at most 15 digits plus `+`, so this leaves room
/// for spaces and punctuation a person may type.
const MAX_INPUT_CHARS: usize = 32;

/// A valid phone number in E.164 form (`+15551234567`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    e164: String,
    country_code: u16,
}

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
            country_code: number.code().value(),
        })
    }

    /// Wraps a number read back from storage (stored only after [`Phone::parse`]).
    pub fn from_stored(e164: &str) -> Phone {
        let country_code = if e164.starts_with("+1") { 1 } else { 0 };
        Phone {
            e164: e164.to_owned(),
            country_code,
        }
    }

    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// US, Canada and the rest of the North American Numbering Plan: the numbers voice
    /// codes may be sent to.
    pub fn takes_voice(&self) -> bool {
        self.country_code == 1
    }

    /// Refuses voice for numbers outside +1 (`voice_not_supported`, 422).
    pub fn check_delivery(&self, delivery: Delivery) -> Result<(), ApiError> {
        match delivery {
            Delivery::Voice if !self.takes_voice() => Err(ApiError::VoiceNotSupported),
            _ => Ok(()),
        }
    }
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

    #[test]
    fn voice_only_for_plus_one_numbers() {
        let us = Phone::parse("+12025550143").unwrap();
        let ca = Phone::parse("+16135550123").unwrap();
        let uk = Phone::parse("+447911123456").unwrap();
        assert!(us.check_delivery(Delivery::Voice).is_ok());
        assert!(ca.check_delivery(Delivery::Voice).is_ok());
        assert_eq!(
            uk.check_delivery(Delivery::Voice).unwrap_err(),
            ApiError::VoiceNotSupported
        );
        assert!(uk.check_delivery(Delivery::Sms).is_ok());
    }
}
