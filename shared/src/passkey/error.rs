//! Why a passkey ceremony failed: one variant per cause, for logs, audit and metrics; one
//! public answer for all of them.

use crate::error::ApiError;

/// A refused or failed passkey ceremony.
///
/// Every variant is distinguishable in logs (`code()`), but a client only ever learns
/// [`ApiError::InvalidCredentials`] (see [`PasskeyError::public_error`]): an attacker probing
/// with someone else's credential ID, a phishing origin or a replayed response must not be told
/// which check stopped them. Messages never contain anything the client sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasskeyError {
    /// The relying-party settings are unusable (bad RP ID, an origin outside it): a deployment
    /// error, never the client's.
    #[error("passkey configuration: {0}")]
    Config(String),
    /// The caller passed something the ceremony cannot start with (an empty user name, an empty
    /// allow list, an allow list mixing users): a bug in the caller, never the client's.
    #[error("passkey ceremony misuse: {0}")]
    Misuse(&'static str),
    /// The response is larger than [`super::MAX_RESPONSE_BYTES`]; it was not parsed.
    #[error("response of {0} bytes is over the limit")]
    TooLarge(usize),
    /// The response is not a well-formed WebAuthn response (JSON, base64url, CBOR or
    /// authenticator data). The detail names the problem, never the content.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// The ceremony state is past its lifetime (5 minutes).
    #[error("ceremony state expired")]
    StateExpired,
    /// `clientDataJSON.type` is not the one of this ceremony (`webauthn.create` / `.get`).
    #[error("client data of the wrong ceremony type")]
    WrongCeremonyType,
    /// `clientDataJSON.challenge` is not this ceremony's challenge: a replayed response, or one
    /// made for another ceremony.
    #[error("challenge does not match this ceremony")]
    ChallengeMismatch,
    /// `clientDataJSON.origin` is not one of the configured origins (phishing, or a
    /// misconfigured deployment).
    #[error("origin not allowed")]
    WrongOrigin,
    /// The credential was used from a cross-origin iframe.
    #[error("cross-origin use refused")]
    CrossOrigin,
    /// The authenticator data's RP ID hash is not SHA-256 of the configured RP ID.
    #[error("RP ID hash does not match")]
    WrongRpId,
    /// The authenticator did not set the user-present flag.
    #[error("user presence missing")]
    UserNotPresent,
    /// The authenticator did not set the user-verified flag (required for passkeys).
    #[error("user verification missing")]
    UserNotVerified,
    /// No stored credential has this ID.
    #[error("unknown credential")]
    UnknownCredential,
    /// The credential is not one of those the ceremony allowed (`allowCredentials`).
    #[error("credential not allowed in this ceremony")]
    CredentialNotAllowed,
    /// A discoverable (usernameless) assertion came without a user handle.
    #[error("user handle missing")]
    MissingUserHandle,
    /// The user handle does not belong to the credential's owner (or the credential does not
    /// belong to the user the ceremony was started for).
    #[error("user handle does not match the credential's owner")]
    UserHandleMismatch,
    /// The assertion signature does not verify with the stored public key.
    #[error("signature does not verify")]
    BadSignature,
    /// The stored signature counter is non-zero and the assertion's counter did not increase:
    /// the credential's private key may have been cloned. The assertion is refused; the caller
    /// must alert the user and audit (SPEC: passkeys).
    #[error("signature counter went from {stored} to {received}: possible cloned authenticator")]
    CounterRegression { stored: u32, received: u32 },
    /// Backup eligibility changed since registration, or backup state is set without
    /// eligibility.
    #[error("backup flags inconsistent")]
    BackupFlagsInvalid,
    /// The new credential is already registered (it was in `excludeCredentials`).
    #[error("credential already registered")]
    CredentialExcluded,
    /// The credential's algorithm is not ES256 or RS256, or not what was offered.
    #[error("credential algorithm not accepted")]
    UnsupportedAlgorithm,
    /// Any other refusal by the verifying crate (its error name, for logs).
    #[error("refused by the verifier: {0}")]
    Rejected(String),
}

impl PasskeyError {
    /// A stable snake_case name for logs, metrics and audit events.
    pub fn code(&self) -> &'static str {
        match self {
            PasskeyError::Config(_) => "config",
            PasskeyError::Misuse(_) => "misuse",
            PasskeyError::TooLarge(_) => "too_large",
            PasskeyError::Malformed(_) => "malformed",
            PasskeyError::StateExpired => "state_expired",
            PasskeyError::WrongCeremonyType => "wrong_ceremony_type",
            PasskeyError::ChallengeMismatch => "challenge_mismatch",
            PasskeyError::WrongOrigin => "wrong_origin",
            PasskeyError::CrossOrigin => "cross_origin",
            PasskeyError::WrongRpId => "wrong_rp_id",
            PasskeyError::UserNotPresent => "user_not_present",
            PasskeyError::UserNotVerified => "user_not_verified",
            PasskeyError::UnknownCredential => "unknown_credential",
            PasskeyError::CredentialNotAllowed => "credential_not_allowed",
            PasskeyError::MissingUserHandle => "missing_user_handle",
            PasskeyError::UserHandleMismatch => "user_handle_mismatch",
            PasskeyError::BadSignature => "bad_signature",
            PasskeyError::CounterRegression { .. } => "counter_regression",
            PasskeyError::BackupFlagsInvalid => "backup_flags_invalid",
            PasskeyError::CredentialExcluded => "credential_excluded",
            PasskeyError::UnsupportedAlgorithm => "unsupported_algorithm",
            PasskeyError::Rejected(_) => "rejected",
        }
    }

    /// True for a possible cloned authenticator: alert the user and audit, besides refusing.
    pub fn is_counter_regression(&self) -> bool {
        matches!(self, PasskeyError::CounterRegression { .. })
    }

    /// True when the fault is the deployment's or the caller's, not the client's: answer 503
    /// and log at error level.
    pub fn is_server_fault(&self) -> bool {
        matches!(self, PasskeyError::Config(_) | PasskeyError::Misuse(_))
    }

    /// What the client is told: `invalid_credentials` (401) for every refusal, whatever the
    /// cause; `service_unavailable` for the server's own faults. (Per-IP throttling of these
    /// failures is the caller's, as for passwords.)
    pub fn public_error(&self) -> ApiError {
        if self.is_server_fault() {
            ApiError::ServiceUnavailable
        } else {
            ApiError::InvalidCredentials
        }
    }
}

impl From<PasskeyError> for ApiError {
    fn from(err: PasskeyError) -> Self {
        err.public_error()
    }
}

/// The verifying crate's errors, sorted into ours.
pub(super) fn from_webauthn(err: webauthn_rs_core::error::WebauthnError) -> PasskeyError {
    use webauthn_rs_core::error::WebauthnError as W;
    match err {
        W::InvalidClientDataType => PasskeyError::WrongCeremonyType,
        W::MismatchedChallenge | W::ChallengeNotFound => PasskeyError::ChallengeMismatch,
        W::InvalidRPOrigin => PasskeyError::WrongOrigin,
        W::CredentialCrossOrigin => PasskeyError::CrossOrigin,
        W::InvalidRPIDHash => PasskeyError::WrongRpId,
        W::UserNotPresent => PasskeyError::UserNotPresent,
        W::UserNotVerified => PasskeyError::UserNotVerified,
        W::CredentialNotFound => PasskeyError::UnknownCredential,
        W::AuthenticationFailure | W::SignatureInvalid => PasskeyError::BadSignature,
        W::CredentialBackupEligibilityInconsistent | W::CredentialMayNotBeHardwareBound => {
            PasskeyError::BackupFlagsInvalid
        }
        W::CredentialAlteredAlgFromRequest
        | W::CredentialInsecureCryptography
        | W::COSEKeyInvalidAlgorithm
        | W::COSEKeyEDUnsupported => PasskeyError::UnsupportedAlgorithm,
        W::ParseCBORFailure(_) => PasskeyError::Malformed("attestation object is not CBOR".into()),
        W::ParseJSONFailure(_) => PasskeyError::Malformed("client data is not JSON".into()),
        W::ParseNOMFailure
        | W::ParseInsufficientBytesAvailable
        | W::MissingAttestationCredentialData
        | W::COSEKeyInvalidCBORValue
        | W::COSEKeyInvalidType
        | W::COSEKeyECDSAXYInvalid
        | W::COSEKeyRSANEInvalid
        | W::COSEKeyECDSAInvalidCurve
        | W::COSEKeyEDDSAXInvalid
        | W::COSEKeyEDDSAInvalidCurve
        | W::EcdsaPointInvalid
        | W::RsaParametersInvalid => PasskeyError::Malformed(format!("{err:?}")),
        W::InvalidUsername | W::InvalidUserUniqueId => {
            PasskeyError::Misuse("user name, display name and handle must not be empty")
        }
        W::Configuration => PasskeyError::Config("refused by the verifier".into()),
        other => PasskeyError::Rejected(format!("{other:?}")),
    }
}
