//! User IDs are normalised before any lookup or counting (SPEC §2): trimmed, Unicode NFKC,
//! lower-cased. `Admin@Bank.example `, `ａｄｍｉｎ@bank.example` and `admin@bank.example` are
//! one user and share one failure counter.

use unicode_normalization::UnicodeNormalization as _;

use crate::error::ApiError;

/// Longest accepted user ID, in characters, after normalisation.
pub const MAX_USER_ID_CHARS: usize = 128;

/// A normalised user ID. The only way to make one is [`UserId::parse`] (or reading one back
/// from storage, where only normalised IDs are written).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    /// Normalises and validates a user ID typed by a person.
    pub fn parse(raw: &str) -> Result<UserId, ApiError> {
        let normalised: String = raw.trim().nfkc().collect::<String>().to_lowercase();
        let normalised = normalised.trim().to_owned();
        if normalised.is_empty() {
            return Err(ApiError::validation("user_id must not be empty."));
        }
        if normalised.chars().count() > MAX_USER_ID_CHARS {
            return Err(ApiError::validation(format!(
                "user_id must be at most {MAX_USER_ID_CHARS} characters."
            )));
        }
        if normalised
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(ApiError::validation(
                "user_id must not contain spaces or control characters.",
            ));
        }
        Ok(UserId(normalised))
    }

    /// The user of a record opened before anyone is known (a passwordless challenge): a
    /// name [`UserId::parse`] can never produce (it refuses spaces), so it is nobody's.
    pub fn nobody() -> UserId {
        UserId(" nobody".to_owned())
    }

    /// Wraps an ID read back from storage (written normalised by [`UserId::parse`]).
    pub fn from_stored(stored: String) -> UserId {
        UserId(stored)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Read back from a queued message: parsed (and so validated) again, never trusted as is.
impl<'de> serde::Deserialize<'de> for UserId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        UserId::parse(&raw).map_err(|_| serde::de::Error::custom("not a valid user ID"))
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_folds_width_and_lowercases() {
        let a = UserId::parse("  Admin@Bank.Example ").unwrap();
        let b = UserId::parse("ａｄｍｉｎ@bank.example").unwrap();
        assert_eq!(a.as_str(), "admin@bank.example");
        assert_eq!(a, b);
    }

    #[test]
    fn compatibility_characters_fold() {
        // U+FB01 LATIN SMALL LIGATURE FI and U+2160 ROMAN NUMERAL ONE
        assert_eq!(UserId::parse("ﬁnance").unwrap().as_str(), "finance");
        assert_eq!(UserId::parse("user\u{2160}").unwrap().as_str(), "useri");
    }

    #[test]
    fn refuses_empty_long_and_control_characters() {
        assert!(UserId::parse("   ").is_err());
        assert!(UserId::parse(&"a".repeat(129)).is_err());
        assert!(UserId::parse(&"a".repeat(128)).is_ok());
        assert!(UserId::parse("a\u{0000}b").is_err());
        assert!(UserId::parse("a b").is_err());
    }
}
