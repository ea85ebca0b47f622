//! The one error type of the HTTP API and its single mapping to `application/problem+json`
//! (RFC 9457) with a stable snake_case `code`. Source errors are logged here, at the boundary,
//! and never sent to clients; public messages never contain a secret.

use serde::Serialize;

/// Every failure a client can see. The `code` of each variant is part of the API contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed: {0}")]
    ValidationFailed(String),
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("unauthorized")]
    Unauthorized,
    #[error("code invalid")]
    CodeInvalid,
    #[error("challenge expired")]
    ChallengeExpired,
    #[error("step-up required")]
    StepUpRequired,
    #[error("forbidden")]
    Forbidden,
    #[error("account inactive")]
    AccountInactive,
    #[error("unsupported client: {0}")]
    UnsupportedClient(String),
    #[error("voice not supported")]
    VoiceNotSupported,
    /// The deployment sends no codes to this number's country (`SmsCountries`).
    #[error("country not supported")]
    CountryNotSupported,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("payload too large (limit {0} bytes)")]
    PayloadTooLarge(usize),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("locked for {retry_after_secs} s")]
    Locked { retry_after_secs: i64 },
    /// The user's second factor is locked after too many wrong answers (SPEC §12): the same
    /// `locked` code and status as a password lock, with its own explanation.
    #[error("second factor locked for {retry_after_secs} s")]
    SecondFactorLocked { retry_after_secs: i64 },
    #[error("send limit reached")]
    SendLimitReached { retry_after_secs: i64 },
    /// The user's rolling hourly or daily cap of texts and calls is reached (SPEC §12): the
    /// same `send_limit_reached` code as the per-challenge limit.
    #[error("send cap reached")]
    SendCapReached { retry_after_secs: i64 },
    #[error("rate limited")]
    RateLimited { retry_after_secs: i64 },
    #[error("service unavailable")]
    ServiceUnavailable,
}

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
}

/// Seconds a client should wait before retrying after a transient failure.
pub const SERVICE_UNAVAILABLE_RETRY_AFTER_SECS: i64 = 2;

/// The exact guidance of SPEC §3 for the sixth send request.
pub const SEND_LIMIT_MESSAGE: &str = "We can no longer send a code: you have reached the maximum attempts for sending a code to one of your devices. Sign out, wait 30 minutes and sign in again.";

impl ApiError {
    pub fn validation(detail: impl Into<String>) -> Self {
        ApiError::ValidationFailed(detail.into())
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::ValidationFailed(_) => 400,
            ApiError::InvalidCredentials | ApiError::Unauthorized | ApiError::CodeInvalid => 401,
            ApiError::StepUpRequired
            | ApiError::Forbidden
            | ApiError::AccountInactive
            | ApiError::UnsupportedClient(_) => 403,
            ApiError::NotFound => 404,
            ApiError::MethodNotAllowed => 405,
            ApiError::Conflict(_) => 409,
            ApiError::ChallengeExpired => 410,
            ApiError::PayloadTooLarge(_) => 413,
            ApiError::UnsupportedMediaType => 415,
            ApiError::VoiceNotSupported | ApiError::CountryNotSupported => 422,
            ApiError::Locked { .. } | ApiError::SecondFactorLocked { .. } => 423,
            ApiError::SendLimitReached { .. }
            | ApiError::SendCapReached { .. }
            | ApiError::RateLimited { .. } => 429,
            ApiError::ServiceUnavailable => 503,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::ValidationFailed(_) => "validation_failed",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::Unauthorized => "unauthorized",
            ApiError::CodeInvalid => "code_invalid",
            ApiError::ChallengeExpired => "challenge_expired",
            ApiError::StepUpRequired => "step_up_required",
            ApiError::Forbidden => "forbidden",
            ApiError::AccountInactive => "account_inactive",
            ApiError::UnsupportedClient(_) => "unsupported_client",
            ApiError::VoiceNotSupported => "voice_not_supported",
            ApiError::CountryNotSupported => "country_not_supported",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Locked { .. } | ApiError::SecondFactorLocked { .. } => "locked",
            ApiError::SendLimitReached { .. } | ApiError::SendCapReached { .. } => {
                "send_limit_reached"
            }
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::ServiceUnavailable => "service_unavailable",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::ValidationFailed(_) => "The request is not valid",
            ApiError::InvalidCredentials => "Sign-in failed",
            ApiError::Unauthorized => "Authentication required",
            ApiError::CodeInvalid => "The code is not valid",
            ApiError::ChallengeExpired => "The challenge has expired",
            ApiError::StepUpRequired => "A fresh verification is required",
            ApiError::Forbidden => "Forbidden",
            ApiError::AccountInactive => "The account is inactive",
            ApiError::UnsupportedClient(_) => "Unsupported browser or operating system",
            ApiError::VoiceNotSupported => "Voice calls are not available for this number",
            ApiError::CountryNotSupported => "Codes are not sent to this country",
            ApiError::NotFound => "Not found",
            ApiError::MethodNotAllowed => "Method not allowed",
            ApiError::Conflict(_) => "Conflict",
            ApiError::PayloadTooLarge(_) => "Payload too large",
            ApiError::UnsupportedMediaType => "Unsupported media type",
            ApiError::Locked { .. } => "The user ID is locked",
            ApiError::SecondFactorLocked { .. } => "The second factor is locked",
            ApiError::SendLimitReached { .. } | ApiError::SendCapReached { .. } => {
                "Send limit reached"
            }
            ApiError::RateLimited { .. } => "Too many requests",
            ApiError::ServiceUnavailable => "Service unavailable",
        }
    }

    /// The public explanation. It never contains a secret or a hint about whether a user exists.
    fn detail(&self) -> String {
        match self {
            ApiError::ValidationFailed(detail) => detail.clone(),
            ApiError::InvalidCredentials => {
                "The user ID or password is not correct.".to_owned()
            }
            ApiError::Unauthorized => "A valid access token is required.".to_owned(),
            ApiError::CodeInvalid => "The code is not correct or has expired.".to_owned(),
            ApiError::ChallengeExpired => {
                "This sign-in attempt has expired or ended. Sign in again.".to_owned()
            }
            ApiError::StepUpRequired => {
                "This action needs a fresh verification code: complete a step-up first.".to_owned()
            }
            ApiError::Forbidden => "You are not allowed to do this.".to_owned(),
            ApiError::AccountInactive => "This user ID has been deactivated (by the bank, or because it was not used for a long time). Contact support to reactivate it.".to_owned(),
            ApiError::UnsupportedClient(detail) => detail.clone(),
            ApiError::VoiceNotSupported => "Voice calls are not available for this number's country (by default only US and Canada numbers); use a text message instead.".to_owned(),
            ApiError::CountryNotSupported => "One-time codes are not sent to numbers of this country: use another number or an authenticator app.".to_owned(),
            ApiError::NotFound => "The resource does not exist.".to_owned(),
            ApiError::MethodNotAllowed => "This method is not allowed on this resource.".to_owned(),
            ApiError::Conflict(detail) => detail.clone(),
            ApiError::PayloadTooLarge(limit) => {
                format!("The request body is larger than {limit} bytes.")
            }
            ApiError::UnsupportedMediaType => {
                "Send the request body as application/json.".to_owned()
            }
            ApiError::Locked { retry_after_secs } => format!(
                "Too many failed sign-in attempts: this user ID is locked. Try again in {} minutes.",
                minutes_rounded_up(*retry_after_secs)
            ),
            ApiError::SecondFactorLocked { retry_after_secs } => format!(
                "Too many wrong codes: your second factor is locked. Try again in {} minutes.",
                minutes_rounded_up(*retry_after_secs)
            ),
            ApiError::SendLimitReached { .. } => SEND_LIMIT_MESSAGE.to_owned(),
            ApiError::SendCapReached { retry_after_secs } => format!(
                "We can no longer send a code: you have reached the maximum number of codes by text or call for now. Try again in {} minutes, or use another method.",
                minutes_rounded_up(*retry_after_secs)
            ),
            ApiError::RateLimited { retry_after_secs } => format!(
                "Too many requests from this address. Try again in {} minutes.",
                minutes_rounded_up(*retry_after_secs)
            ),
            ApiError::ServiceUnavailable => {
                "The service is temporarily unavailable. Try again shortly.".to_owned()
            }
        }
    }

    /// `Retry-After` in seconds, for the answers that have one.
    pub fn retry_after_secs(&self) -> Option<i64> {
        match self {
            ApiError::Locked { retry_after_secs }
            | ApiError::SecondFactorLocked { retry_after_secs }
            | ApiError::SendLimitReached { retry_after_secs }
            | ApiError::SendCapReached { retry_after_secs }
            | ApiError::RateLimited { retry_after_secs } => Some((*retry_after_secs).max(1)),
            ApiError::ServiceUnavailable => Some(SERVICE_UNAVAILABLE_RETRY_AFTER_SECS),
            _ => None,
        }
    }

    pub fn problem(&self) -> Problem {
        let code = self.code();
        Problem {
            problem_type: format!("urn:portcullis:problem:{code}"),
            title: self.title().to_owned(),
            status: self.status(),
            detail: self.detail(),
            code: code.to_owned(),
        }
    }
}

fn minutes_rounded_up(secs: i64) -> i64 {
    (secs.max(1) + 59) / 60
}

/// A storage or downstream failure. Never shown to clients: it becomes `service_unavailable`
/// after being logged by the edge (`portcullis_edge::answer`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: the item exists, is gone, or changed since it was read.
    #[error("conditional write lost")]
    ConditionFailed,
    /// The backing service failed or could not be reached.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A stored item could not be read back into the domain type.
    #[error("corrupt item: {0}")]
    Corrupt(String),
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        tracing::error!(error = %err, "storage failure");
        ApiError::ServiceUnavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_snake_case_and_status_is_4xx_or_503() {
        let all = [
            ApiError::validation("x"),
            ApiError::InvalidCredentials,
            ApiError::Unauthorized,
            ApiError::CodeInvalid,
            ApiError::ChallengeExpired,
            ApiError::StepUpRequired,
            ApiError::Forbidden,
            ApiError::AccountInactive,
            ApiError::UnsupportedClient("x".into()),
            ApiError::VoiceNotSupported,
            ApiError::CountryNotSupported,
            ApiError::NotFound,
            ApiError::MethodNotAllowed,
            ApiError::Conflict("x".into()),
            ApiError::PayloadTooLarge(1),
            ApiError::UnsupportedMediaType,
            ApiError::Locked {
                retry_after_secs: 1,
            },
            ApiError::SendLimitReached {
                retry_after_secs: 1,
            },
            ApiError::SecondFactorLocked {
                retry_after_secs: 1,
            },
            ApiError::SendCapReached {
                retry_after_secs: 1,
            },
            ApiError::RateLimited {
                retry_after_secs: 1,
            },
            ApiError::ServiceUnavailable,
        ];
        for err in all {
            let p = err.problem();
            assert!(p.code.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            assert!((400..500).contains(&p.status) || p.status == 503, "{p:?}");
            assert!(p.problem_type.ends_with(&p.code));
        }
    }

    #[test]
    fn spec_statuses_hold() {
        assert_eq!(ApiError::validation("x").status(), 400);
        assert_eq!(ApiError::InvalidCredentials.status(), 401);
        assert_eq!(ApiError::ChallengeExpired.status(), 410);
        assert_eq!(ApiError::VoiceNotSupported.status(), 422);
        assert_eq!(
            ApiError::Locked {
                retry_after_secs: 5
            }
            .status(),
            423
        );
        assert_eq!(
            ApiError::SendLimitReached {
                retry_after_secs: 5
            }
            .status(),
            429
        );
        assert_eq!(ApiError::ServiceUnavailable.status(), 503);
    }

    #[test]
    fn send_limit_message_is_the_spec_text() {
        assert_eq!(
            ApiError::SendLimitReached {
                retry_after_secs: 1800
            }
            .problem()
            .detail,
            SEND_LIMIT_MESSAGE
        );
    }

    #[test]
    fn locked_detail_rounds_minutes_up() {
        let p = ApiError::Locked {
            retry_after_secs: 61,
        }
        .problem();
        assert!(p.detail.contains("2 minutes"), "{}", p.detail);
    }
}
