//! Passkeys (WebAuthn Level 3) for the relying party: registration and authentication
//! ceremonies as plain functions, independent of HTTP and storage.
//!
//! # The verifying crate, and why
//!
//! Every WebAuthn check — COSE key parsing, the attestation object (CBOR), authenticator data,
//! client data, origin, RP ID hash, flags, counters and the signature — is done by
//! **`webauthn-rs-core` 0.6** (kanidm's webauthn-rs project), pinned to an exact version. This
//! module only chooses the policy (discoverable credential required, user verification
//! required, attestation `none`, ES256 and RS256, 5 minutes), adds the checks the crate leaves
//! to the relying party (user handle ownership, the allow list, cross-origin assertions,
//! expiry, size limits) and sorts failures into [`PasskeyError`].
//!
//! Chosen over the alternatives because:
//! - **webauthn-rs is the Rust RP library in widest use** (kanidm, and most Rust servers that
//!   offer passkeys), maintained by the kanidm team, with a history of security review and
//!   fixes. Its 0.6 line verifies with the RustCrypto crates (p256, rsa): **no OpenSSL**, so it
//!   builds offline from crates.io and cross-links with cargo-lambda/zig like the rest of the
//!   workspace. (0.5 linked OpenSSL through `openssl-sys`: system headers, or `vendored` to
//!   build OpenSSL from source at every clean build, and a C library in every Lambda.)
//! - **Its core crate rather than its `webauthn-rs` wrapper**: the wrapper's passkey
//!   registration asks for `residentKey: "discouraged"` and cannot be told otherwise, while
//!   Portcullis requires discoverable credentials (passwordless sign-in, autofill). The core
//!   crate is the same verifier with the policy left to the caller; this module holds that
//!   policy in one place, tested end to end by an independent software authenticator
//!   (`tools/soft-authenticator`, written from the WebAuthn specification). The core API may
//!   change between minor versions, hence the exact pin: upgrade deliberately, with the tests.
//! - **`webauthn_rp`** (pure Rust, RP-only, Level 3 JSON, serialisable state) fits the
//!   protocol well but has one maintainer and few users; for a bank, the widely reviewed
//!   verifier wins.
//! - Its options and responses are the Level 3 JSON forms (`PublicKeyCredentialCreationOptionsJSON`,
//!   `…RequestOptionsJSON`, `RegistrationResponseJSON`, `AuthenticationResponseJSON`, base64url
//!   without padding), so browsers' `PublicKeyCredential.parseCreationOptionsFromJSON()` and
//!   `toJSON()` talk to it directly.
//!
//! # Ceremonies
//!
//! Registration: [`start_registration`] → options for `navigator.credentials.create()` and a
//! [`RegistrationState`] to keep server-side; the browser's `RegistrationResponseJSON` →
//! [`RegistrationResponse::parse`] → [`finish_registration`] → a [`PasskeyCredential`] to store.
//!
//! Authentication: [`start_authentication`] (the user's passkeys, or `None` for a
//! discoverable/usernameless ceremony with an empty `allowCredentials`) → options and an
//! [`AuthenticationState`]; the browser's `AuthenticationResponseJSON` →
//! [`AssertionResponse::parse`], which names the credential ID (and user handle) so the caller
//! can look up the stored credential, → [`finish_authentication`] → an [`AssertionOutcome`]
//! with the new counter and backup state to write back.
//!
//! # What the caller must do
//!
//! - **Keep the state server-side, bound to its purpose, and use it once.** The states hold
//!   the ceremony's challenge: 32 random bytes that are the only thing making a signed
//!   response fresh. They are secret (a response made for a known challenge can be replayed
//!   to whoever holds the state) and are never printed by `Debug`. Store the serialised state
//!   in the record of the purpose it was made for (this user's enrolment, this sign-in
//!   challenge, this step-up) for at most [`CEREMONY_TIMEOUT_SECS`], and **consume it before
//!   finishing** (delete it with a conditional write, or mark it used): a second finish with
//!   the same state must find nothing. The state also carries its own expiry, checked again
//!   here against the `now` passed in.
//! - **Credential IDs are unique across users**: create the credential record with a
//!   conditional write on its ID (the browser's `excludeCredentials` only covers this user).
//! - **Write back the outcome conditionally**: the new counter with a condition on the old one,
//!   so two concurrent assertions with the same counter cannot both count.
//! - **Alert and audit on [`PasskeyError::CounterRegression`]**; answer every failure with
//!   [`PasskeyError::public_error`] (one `invalid_credentials` for all of them).

mod error;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::internals::AuthenticatorData;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AttestationFormat, Authentication, AuthenticatorTransport,
    COSEAlgorithm, COSEKey, CredProtect, Credential, CredentialProtectionPolicy, ExtnState,
    ParsedAttestation, PublicKeyCredential, RegisterPublicKeyCredential, RegisteredExtensions,
    Registration, RequestRegistrationExtensions, UserVerificationPolicy,
};

pub use error::PasskeyError;

use crate::clock::UnixTime;

/// How long a ceremony lives: the options' `timeout` and the state's expiry (5 minutes).
pub const CEREMONY_TIMEOUT_SECS: i64 = 300;

/// The largest response accepted, checked before any parsing. Real responses are 1–3 KiB (an
/// RS256 attestation with extensions stays well under 16 KiB).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The longest credential ID the specification allows (`credentialIdLength` ≤ 1023).
pub const MAX_CREDENTIAL_ID_BYTES: usize = 1023;

/// The longest user handle the specification allows.
pub const MAX_USER_HANDLE_BYTES: usize = 64;

// ---------------------------------------------------------------------------------------------
// Configuration

/// The relying party: its ID (a registrable domain: `example.com`, or `localhost` locally),
/// the name shown by authenticators, and the exact origins allowed to use it
/// (`https://app.example.com`; `http://localhost:3000` locally).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyConfig {
    pub rp_id: String,
    pub rp_name: String,
    pub origins: Vec<String>,
}

impl PasskeyConfig {
    /// Checks the settings (call it at cold start so a bad deployment fails early): the RP ID
    /// is a lower-case domain name (browsers refuse IP addresses); every origin is a bare
    /// origin whose host is the RP ID or one of its subdomains, over HTTPS (HTTP only for
    /// `localhost`).
    pub fn validate(&self) -> Result<(), PasskeyError> {
        self.allowed_origins().map(|_| ())
    }

    fn allowed_origins(&self) -> Result<Vec<Url>, PasskeyError> {
        let rp_id = self.rp_id.as_str();
        let labels_ok = !rp_id.is_empty()
            && rp_id.len() <= 253
            && rp_id.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
        let all_numeric = rp_id
            .split('.')
            .all(|l| l.bytes().all(|b| b.is_ascii_digit()));
        if !labels_ok || all_numeric {
            return Err(PasskeyError::Config(format!(
                "RP ID {rp_id:?} is not a lower-case domain name"
            )));
        }
        if self.rp_name.trim().is_empty() {
            return Err(PasskeyError::Config("RP name is empty".into()));
        }
        if self.origins.is_empty() {
            return Err(PasskeyError::Config("no allowed origin".into()));
        }
        self.origins
            .iter()
            .map(|origin| {
                let bad = |why: &str| PasskeyError::Config(format!("origin {origin:?}: {why}"));
                let url = Url::parse(origin).map_err(|_| bad("not a URL"))?;
                let host = url.host_str().ok_or_else(|| bad("no host"))?;
                if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
                    return Err(bad("must be a bare origin (scheme, host, port)"));
                }
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(bad("must not carry credentials"));
                }
                match url.scheme() {
                    "https" => {}
                    "http" if host == "localhost" => {}
                    _ => return Err(bad("must be https (http only for localhost)")),
                }
                let in_rp = host == rp_id
                    || host
                        .strip_suffix(rp_id)
                        .is_some_and(|prefix| prefix.ends_with('.'));
                if !in_rp {
                    return Err(bad("host is not the RP ID or a subdomain of it"));
                }
                Ok(url)
            })
            .collect()
    }

    fn verifier(&self) -> Result<WebauthnCore, PasskeyError> {
        let origins = self.allowed_origins()?;
        Ok(WebauthnCore::new_unsafe_experts_only(
            &self.rp_name,
            &self.rp_id,
            origins,
            Duration::from_secs(CEREMONY_TIMEOUT_SECS.unsigned_abs()),
            // Origins match exactly: no other subdomain, no other port.
            Some(false),
            Some(false),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Identifiers

/// A credential ID (1–1023 bytes, chosen by the authenticator). Not secret; serialised as
/// base64url without padding, as in the WebAuthn JSON forms.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialId(Vec<u8>);

/// A user handle (1–64 bytes): the `user.id` a discoverable credential stores and returns.
/// It must not carry personal data (it is readable from the authenticator), so it is random,
/// made once per user with [`UserHandle::random`] and kept with the user. Serialised as
/// base64url without padding.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserHandle(Vec<u8>);

macro_rules! base64url_bytes {
    ($name:ident, $max:expr, $what:literal) => {
        impl $name {
            /// From raw bytes; refused if empty or over the specification's limit.
            pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Result<Self, PasskeyError> {
                let bytes = bytes.into();
                if bytes.is_empty() || bytes.len() > $max {
                    return Err(PasskeyError::Malformed(format!(
                        concat!($what, " of {} bytes (1 to {} allowed)"),
                        bytes.len(),
                        $max
                    )));
                }
                Ok($name(bytes))
            }

            /// From its base64url form (no padding).
            pub fn from_base64url(text: &str) -> Result<Self, PasskeyError> {
                let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| {
                    PasskeyError::Malformed(concat!($what, " is not base64url").into())
                })?;
                Self::from_bytes(bytes)
            }

            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            /// Its base64url form (no padding): the form used in JSON and as a storage key.
            pub fn to_base64url(&self) -> String {
                URL_SAFE_NO_PAD.encode(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.to_base64url())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_base64url())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_base64url())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::from_base64url(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

base64url_bytes!(CredentialId, MAX_CREDENTIAL_ID_BYTES, "credential ID");
base64url_bytes!(UserHandle, MAX_USER_HANDLE_BYTES, "user handle");

impl UserHandle {
    /// A new random user handle: 64 bytes from the CSPRNG, as the specification recommends.
    pub fn random() -> Self {
        UserHandle(crate::crypto::random_bytes::<64>().to_vec())
    }
}

/// An authenticator model identifier (AAGUID), as reported at registration. With attestation
/// `none` nothing vouches for it: it names the model for display ("iCloud Keychain"), it
/// proves nothing. Serialised in the usual 8-4-4-4-12 hex form.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aaguid(pub [u8; 16]);

impl std::fmt::Display for Aaguid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Aaguid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Aaguid({self})")
    }
}

impl Serialize for Aaguid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Aaguid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
        let mut out = [0u8; 16];
        if hex.len() != 32 {
            return Err(serde::de::Error::custom("AAGUID is not 32 hex digits"));
        }
        for (slot, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let digits = std::str::from_utf8(pair).map_err(serde::de::Error::custom)?;
            *slot = u8::from_str_radix(digits, 16)
                .map_err(|_| serde::de::Error::custom("AAGUID is not hex"))?;
        }
        Ok(Aaguid(out))
    }
}

// ---------------------------------------------------------------------------------------------
// Stored credential

/// A credential's public key with its algorithm, in webauthn-rs's serialised COSE key form (the
/// crate keeps that form stable for persistence). Public: no secret here.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasskeyPublicKey(COSEKey);

impl PasskeyPublicKey {
    /// The COSE algorithm name: `"ES256"` or `"RS256"`.
    pub fn algorithm(&self) -> &'static str {
        match self.0.type_ {
            COSEAlgorithm::ES256 => "ES256",
            COSEAlgorithm::RS256 => "RS256",
            _ => "other",
        }
    }
}

impl std::fmt::Debug for PasskeyPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PasskeyPublicKey({})", self.algorithm())
    }
}

/// What to store for a registered passkey (no secret in it: serialise it whole into the
/// factor record). Keyed by [`PasskeyCredential::id`] (unique across users) and findable by
/// [`PasskeyCredential::user_handle`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasskeyCredential {
    pub id: CredentialId,
    /// The owner's user handle (the `user.id` of the registration).
    pub user_handle: UserHandle,
    pub public_key: PasskeyPublicKey,
    /// The signature counter: 0 for authenticators that do not count (most synced passkeys).
    pub sign_count: u32,
    /// BE: the credential may be synced to other devices (a multi-device passkey). Fixed at
    /// registration; an assertion that changes it is refused.
    pub backup_eligible: bool,
    /// BS: the credential is backed up now (it may change; show it to the user).
    pub backup_state: bool,
    /// UV at registration (always true here: it is required).
    pub user_verified: bool,
    /// The authenticator model, when it reported one (an all-zero AAGUID counts as none).
    pub aaguid: Option<Aaguid>,
    /// Transport hints from the browser (`internal`, `hybrid`, `usb`, `nfc`, `ble`), passed back
    /// in `allowCredentials`. Unsigned: hints only.
    pub transports: Vec<String>,
    /// The browser's `credProps.rk` (a discoverable credential was made), when it said;
    /// unsigned, a hint only.
    pub discoverable: Option<bool>,
}

impl PasskeyCredential {
    /// `hwk` or `swk` for the token's `amr` (RFC 8176): a backup-eligible credential can leave
    /// its device (synced passkey, software-protected key); one that cannot is hardware-bound.
    pub fn amr_key_method(&self) -> &'static str {
        if self.backup_eligible { "swk" } else { "hwk" }
    }

    /// This credential after a successful assertion: the new counter and backup state.
    pub fn updated(&self, outcome: &AssertionOutcome) -> PasskeyCredential {
        PasskeyCredential {
            sign_count: outcome.sign_count,
            backup_state: outcome.backup_state,
            ..self.clone()
        }
    }

    /// The crate's form of the stored credential, for verifying an assertion against it.
    fn to_verifier_form(&self) -> Credential {
        let transports: Vec<AuthenticatorTransport> = self
            .transports
            .iter()
            .filter_map(|t| t.parse().ok())
            .collect();
        Credential {
            cred_id: self.id.0.clone(),
            cred: self.public_key.0.clone(),
            counter: self.sign_count,
            transports: (!transports.is_empty()).then_some(transports),
            user_verified: self.user_verified,
            backup_eligible: self.backup_eligible,
            backup_state: self.backup_state,
            registration_policy: UserVerificationPolicy::Required,
            extensions: RegisteredExtensions::none(),
            attestation: ParsedAttestation::default(),
            attestation_format: AttestationFormat::None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ceremony state

/// The server side of a registration ceremony, between [`start_registration`] and
/// [`finish_registration`]. **Contains the challenge (secret)**: store it server-side only,
/// bound to the user and purpose it was made for, for at most [`CEREMONY_TIMEOUT_SECS`], and
/// consume it before finishing. Serialises to JSON (serde).
#[derive(Clone, Serialize, Deserialize)]
pub struct RegistrationState {
    ceremony: webauthn_rs_core::proto::RegistrationState,
    user_handle: UserHandle,
    excluded: Vec<CredentialId>,
    expires_at: i64,
}

impl RegistrationState {
    pub fn user_handle(&self) -> &UserHandle {
        &self.user_handle
    }

    /// When this state stops being usable (Unix seconds): use it as the record's TTL.
    pub fn expires_at(&self) -> UnixTime {
        UnixTime(self.expires_at)
    }
}

impl std::fmt::Debug for RegistrationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationState")
            .field("user_handle", &self.user_handle)
            .field("excluded", &self.excluded.len())
            .field("expires_at", &self.expires_at)
            .field("challenge", &"<redacted>")
            .finish()
    }
}

/// The server side of an authentication ceremony, between [`start_authentication`] and
/// [`finish_authentication`]. **Contains the challenge (secret)**: the same rules as
/// [`RegistrationState`]. It holds the allowed credential IDs and their owner, not their keys
/// or counters: the caller passes the freshly stored credential when finishing.
#[derive(Clone, Serialize, Deserialize)]
pub struct AuthenticationState {
    ceremony: webauthn_rs_core::proto::AuthenticationState,
    /// `None`: discoverable (any credential of this RP, identified by its user handle).
    allowed: Option<Vec<CredentialId>>,
    /// The owner of the allowed credentials, when the user was known at the start.
    user_handle: Option<UserHandle>,
    expires_at: i64,
}

impl AuthenticationState {
    /// The user the ceremony was started for; `None` for a discoverable ceremony.
    pub fn user_handle(&self) -> Option<&UserHandle> {
        self.user_handle.as_ref()
    }

    /// When this state stops being usable (Unix seconds): use it as the record's TTL.
    pub fn expires_at(&self) -> UnixTime {
        UnixTime(self.expires_at)
    }

    pub fn is_discoverable(&self) -> bool {
        self.allowed.is_none()
    }
}

impl std::fmt::Debug for AuthenticationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticationState")
            .field("user_handle", &self.user_handle)
            .field("allowed", &self.allowed.as_ref().map(Vec::len))
            .field("expires_at", &self.expires_at)
            .field("challenge", &"<redacted>")
            .finish()
    }
}

fn check_expiry(expires_at: i64, now: UnixTime) -> Result<(), PasskeyError> {
    if now.secs() >= expires_at {
        Err(PasskeyError::StateExpired)
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Responses from the browser (untrusted input)

fn check_size(json: &[u8]) -> Result<(), PasskeyError> {
    if json.len() > MAX_RESPONSE_BYTES {
        Err(PasskeyError::TooLarge(json.len()))
    } else {
        Ok(())
    }
}

/// Parses a ceremony response (`what`, for the error) after [`check_size`].
fn parse_sized<T: serde::de::DeserializeOwned>(json: &[u8], what: &str) -> Result<T, PasskeyError> {
    check_size(json)?;
    serde_json::from_slice(json).map_err(|e| json_error(what, &e))
}

/// A serde error described by its category and position only: never the content sent.
fn json_error(what: &str, err: &serde_json::Error) -> PasskeyError {
    PasskeyError::Malformed(format!(
        "{what}: {:?} error at line {} column {}",
        err.classify(),
        err.line(),
        err.column()
    ))
}

/// A JSON value as compact text, to parse (and size-check) like a request body.
fn compact_json(value: &serde_json::Value) -> Result<Vec<u8>, PasskeyError> {
    serde_json::to_vec(value).map_err(|e| json_error("response", &e))
}

/// The checks every credential in JSON form gets: `type` is `public-key`, `rawId` is a
/// credential ID of allowed length and `id` is the same bytes in base64url.
fn check_envelope(type_: &str, id: &str, raw_id: &[u8]) -> Result<CredentialId, PasskeyError> {
    if type_ != "public-key" {
        return Err(PasskeyError::Malformed("type is not public-key".into()));
    }
    let credential_id = CredentialId::from_bytes(raw_id.to_vec())?;
    let id_bytes = URL_SAFE_NO_PAD
        .decode(id)
        .map_err(|_| PasskeyError::Malformed("id is not base64url".into()))?;
    if id_bytes != raw_id {
        return Err(PasskeyError::Malformed("id and rawId differ".into()));
    }
    Ok(credential_id)
}

/// A parsed `RegistrationResponseJSON` (the result of `credential.toJSON()` after
/// `navigator.credentials.create()`), size-checked and shape-checked, not yet verified.
#[derive(Clone)]
pub struct RegistrationResponse {
    credential: RegisterPublicKeyCredential,
    id: CredentialId,
}

impl RegistrationResponse {
    /// Parses the JSON text of a `RegistrationResponseJSON`. Refuses anything over
    /// [`MAX_RESPONSE_BYTES`] before parsing; never panics.
    pub fn parse(json: &[u8]) -> Result<Self, PasskeyError> {
        let credential: RegisterPublicKeyCredential = parse_sized(json, "registration response")?;
        let id = check_envelope(&credential.type_, &credential.id, &credential.raw_id)?;
        Ok(RegistrationResponse { credential, id })
    }

    /// The same from an already parsed JSON value (e.g. the `credential` field of a request
    /// body); the size limit applies to its compact serialisation.
    pub fn from_json_value(value: &serde_json::Value) -> Result<Self, PasskeyError> {
        Self::parse(&compact_json(value)?)
    }

    pub fn credential_id(&self) -> &CredentialId {
        &self.id
    }
}

impl std::fmt::Debug for RegistrationResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistrationResponse({:?})", self.id)
    }
}

/// A parsed `AuthenticationResponseJSON` (the result of `credential.toJSON()` after
/// `navigator.credentials.get()`), size-checked and shape-checked, not yet verified. Its
/// credential ID (and user handle, for discoverable credentials) tell the caller which stored
/// credential to look up before [`finish_authentication`]; nothing in it is trusted until then.
#[derive(Clone)]
pub struct AssertionResponse {
    credential: PublicKeyCredential,
    id: CredentialId,
    user_handle: Option<UserHandle>,
}

impl AssertionResponse {
    /// Parses the JSON text of an `AuthenticationResponseJSON`. Refuses anything over
    /// [`MAX_RESPONSE_BYTES`] before parsing; never panics.
    pub fn parse(json: &[u8]) -> Result<Self, PasskeyError> {
        let credential: PublicKeyCredential = parse_sized(json, "authentication response")?;
        let id = check_envelope(&credential.type_, &credential.id, &credential.raw_id)?;
        // An empty user handle is what some authenticators send for "none".
        let user_handle = match credential.response.user_handle.as_deref() {
            None | Some([]) => None,
            Some(bytes) => Some(UserHandle::from_bytes(bytes.to_vec())?),
        };
        Ok(AssertionResponse {
            credential,
            id,
            user_handle,
        })
    }

    /// The same from an already parsed JSON value; the size limit applies to its compact
    /// serialisation.
    pub fn from_json_value(value: &serde_json::Value) -> Result<Self, PasskeyError> {
        Self::parse(&compact_json(value)?)
    }

    /// The credential to look up (unverified until [`finish_authentication`]).
    pub fn credential_id(&self) -> &CredentialId {
        &self.id
    }

    /// The user handle the authenticator returned, if any (unverified).
    pub fn user_handle(&self) -> Option<&UserHandle> {
        self.user_handle.as_ref()
    }
}

impl std::fmt::Debug for AssertionResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AssertionResponse({:?})", self.id)
    }
}

// ---------------------------------------------------------------------------------------------
// Registration

/// The user a passkey is registered for: the random handle kept with the user, and the names
/// an authenticator shows in its account picker (never used to identify anyone).
#[derive(Debug, Clone, Copy)]
pub struct PasskeyUser<'a> {
    pub handle: &'a UserHandle,
    /// The account name, e.g. the user ID (`alice@example.com`).
    pub name: &'a str,
    pub display_name: &'a str,
}

/// The algorithms offered, in order of preference: ES256 (what nearly every authenticator
/// makes), RS256 (Windows Hello on older TPMs).
const ALGORITHMS: [COSEAlgorithm; 2] = [COSEAlgorithm::ES256, COSEAlgorithm::RS256];

/// Starts a registration: the `PublicKeyCredentialCreationOptionsJSON` for the browser and the
/// state to keep. Discoverable credential and user verification required, attestation `none`,
/// ES256 and RS256, `excludeCredentials` = `existing` (the user's passkeys), 5 minutes.
pub fn start_registration(
    config: &PasskeyConfig,
    user: &PasskeyUser<'_>,
    existing: &[CredentialId],
    now: UnixTime,
) -> Result<(serde_json::Value, RegistrationState), PasskeyError> {
    let verifier = config.verifier()?;
    let extensions = RequestRegistrationExtensions {
        // Ask the authenticator to refuse the credential without user verification, even when
        // discovered; not enforced (authenticators that cannot would fail the ceremony).
        cred_protect: Some(CredProtect {
            credential_protection_policy: CredentialProtectionPolicy::UserVerificationRequired,
            enforce_credential_protection_policy: Some(false),
        }),
        uvm: None,
        cred_props: Some(true),
        min_pin_length: None,
        hmac_create_secret: None,
    };
    let builder = verifier
        .new_challenge_register_builder(user.handle.as_bytes(), user.name, user.display_name)
        .map_err(error::from_webauthn)?
        .attestation(AttestationConveyancePreference::None)
        .credential_algorithms(ALGORITHMS.to_vec())
        .require_resident_key(true)
        .authenticator_attachment(None)
        .user_verification_policy(UserVerificationPolicy::Required)
        .reject_synchronised_authenticators(false)
        .exclude_credentials(Some(existing.iter().map(|id| id.0.clone()).collect()))
        .hints(None)
        .extensions(Some(extensions));
    let (options, ceremony) = verifier
        .generate_challenge_register(builder)
        .map_err(error::from_webauthn)?;
    let options = serde_json::to_value(&options.public_key)
        .map_err(|_| PasskeyError::Config("options do not serialise".into()))?;
    let state = RegistrationState {
        ceremony,
        user_handle: user.handle.clone(),
        excluded: existing.to_vec(),
        expires_at: now.plus_secs(CEREMONY_TIMEOUT_SECS).secs(),
    };
    Ok((options, state))
}

/// Finishes a registration: verifies the response against the state (challenge, origin, RP
/// ID, flags, algorithm; attestation `none` is accepted, any other is checked by the crate and
/// its statement not trusted further) and returns the credential to store. The state must
/// have been consumed from storage (see the module documentation).
pub fn finish_registration(
    config: &PasskeyConfig,
    state: RegistrationState,
    response: &RegistrationResponse,
    now: UnixTime,
) -> Result<PasskeyCredential, PasskeyError> {
    let verifier = config.verifier()?;
    check_expiry(state.expires_at, now)?;
    if state.excluded.contains(&response.id) {
        return Err(PasskeyError::CredentialExcluded);
    }
    let credential = verifier
        .register_credential(&response.credential, &state.ceremony, None)
        .map_err(error::from_webauthn)?;
    if !credential.user_verified {
        return Err(PasskeyError::UserNotVerified);
    }
    if !ALGORITHMS.contains(&credential.cred.type_) {
        return Err(PasskeyError::UnsupportedAlgorithm);
    }
    let discoverable = match &credential.extensions.cred_props {
        ExtnState::Set(props) | ExtnState::Unsigned(props) | ExtnState::Unsolicited(props) => {
            props.rk
        }
        ExtnState::NotRequested | ExtnState::Ignored => None,
    };
    Ok(PasskeyCredential {
        id: CredentialId::from_bytes(credential.cred_id.clone())?,
        user_handle: state.user_handle,
        public_key: PasskeyPublicKey(credential.cred),
        sign_count: credential.counter,
        backup_eligible: credential.backup_eligible,
        backup_state: credential.backup_state,
        user_verified: credential.user_verified,
        aaguid: aaguid_of(&response.credential.response.attestation_object),
        transports: response
            .credential
            .response
            .transports
            .iter()
            .flatten()
            .filter(|t| !matches!(t, AuthenticatorTransport::Unknown))
            .filter_map(|t| serde_json::to_value(t).ok())
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        discoverable,
    })
}

/// The AAGUID in an (already verified) attestation object's authenticator data, through the
/// crate's parsers; `None` when absent or all zeros.
fn aaguid_of(attestation_object: &[u8]) -> Option<Aaguid> {
    let value: serde_cbor_2::Value = serde_cbor_2::from_slice(attestation_object).ok()?;
    let serde_cbor_2::Value::Map(map) = value else {
        return None;
    };
    let auth_data = map.iter().find_map(|(k, v)| match (k, v) {
        (serde_cbor_2::Value::Text(k), serde_cbor_2::Value::Bytes(v)) if k == "authData" => Some(v),
        _ => None,
    })?;
    let parsed = AuthenticatorData::<Registration>::try_from(auth_data.as_slice()).ok()?;
    let aaguid = parsed.acd?.aaguid;
    (aaguid != [0u8; 16]).then_some(Aaguid(aaguid))
}

// ---------------------------------------------------------------------------------------------
// Authentication

/// Starts an authentication: the `PublicKeyCredentialRequestOptionsJSON` for the browser and
/// the state to keep. `Some(passkeys)`: the user is known (second factor, step-up) and
/// `allowCredentials` lists their passkeys — all of one user, at least one. `None`: a
/// discoverable (usernameless, autofill) ceremony with an empty `allowCredentials`. User
/// verification required; 5 minutes.
pub fn start_authentication(
    config: &PasskeyConfig,
    allow: Option<&[PasskeyCredential]>,
    now: UnixTime,
) -> Result<(serde_json::Value, AuthenticationState), PasskeyError> {
    let verifier = config.verifier()?;
    let (credentials, allowed, user_handle) = match allow {
        None => (Vec::new(), None, None),
        Some([]) => {
            // An empty list would silently turn into a discoverable ceremony.
            return Err(PasskeyError::Misuse(
                "no passkey to allow: pass None for a discoverable ceremony",
            ));
        }
        Some(passkeys @ [first, ..]) => {
            if passkeys.iter().any(|p| p.user_handle != first.user_handle) {
                return Err(PasskeyError::Misuse("allowed passkeys of different users"));
            }
            (
                passkeys
                    .iter()
                    .map(PasskeyCredential::to_verifier_form)
                    .collect(),
                Some(passkeys.iter().map(|p| p.id.clone()).collect()),
                Some(first.user_handle.clone()),
            )
        }
    };
    let builder = verifier
        .new_challenge_authenticate_builder(credentials, Some(UserVerificationPolicy::Required))
        .map_err(error::from_webauthn)?
        .extensions(None)
        // WebAuthn L3 §7.2: backup eligibility is fixed for a credential's life.
        .allow_backup_eligible_upgrade(false)
        .hints(None);
    let (options, mut ceremony) = verifier
        .generate_challenge_authenticate(builder)
        .map_err(error::from_webauthn)?;
    // The state keeps IDs only: finishing verifies against the credential as stored then
    // (its current counter), not a copy from the start.
    ceremony.set_allowed_credentials(Vec::new());
    let options = serde_json::to_value(&options.public_key)
        .map_err(|_| PasskeyError::Config("options do not serialise".into()))?;
    let state = AuthenticationState {
        ceremony,
        allowed,
        user_handle,
        expires_at: now.plus_secs(CEREMONY_TIMEOUT_SECS).secs(),
    };
    Ok((options, state))
}

/// A successful assertion: who, with what, and what to write back to the stored credential
/// (with a condition on the old counter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionOutcome {
    pub credential_id: CredentialId,
    /// The credential's owner (verified: the stored owner, matching any handle returned).
    pub user_handle: UserHandle,
    /// The new signature counter to store (unchanged 0 for authenticators without one).
    pub sign_count: u32,
    pub backup_eligible: bool,
    /// The current backup state (may differ from the stored one: store it).
    pub backup_state: bool,
    /// Always true: user verification is required (a passkey is both factors).
    pub user_verified: bool,
}

/// The parts of `clientDataJSON` the crate does not check on assertions.
#[derive(Deserialize)]
struct ClientDataOrigin {
    #[serde(rename = "crossOrigin", default)]
    cross_origin: Option<bool>,
}

/// Finishes an authentication: `stored` is the credential the caller found under
/// [`AssertionResponse::credential_id`] (`None` if there is none). Verifies, in order: the
/// state's expiry, that the credential is known, allowed and owned by the right user (and by
/// the returned user handle), then through the crate the client data (type, challenge,
/// origin), RP ID hash, presence and verification flags, backup flags, the signature over
/// authenticatorData ‖ SHA-256(clientDataJSON), and the counter; and that the assertion was
/// not made cross-origin. The state must have been consumed from storage.
pub fn finish_authentication(
    config: &PasskeyConfig,
    state: AuthenticationState,
    response: &AssertionResponse,
    stored: Option<&PasskeyCredential>,
    now: UnixTime,
) -> Result<AssertionOutcome, PasskeyError> {
    let verifier = config.verifier()?;
    check_expiry(state.expires_at, now)?;
    let stored = match stored {
        Some(s) if s.id == response.id => s,
        _ => return Err(PasskeyError::UnknownCredential),
    };
    if let Some(allowed) = &state.allowed {
        if !allowed.contains(&response.id) {
            return Err(PasskeyError::CredentialNotAllowed);
        }
        if state.user_handle.as_ref() != Some(&stored.user_handle) {
            return Err(PasskeyError::UserHandleMismatch);
        }
    } else if response.user_handle.is_none() {
        return Err(PasskeyError::MissingUserHandle);
    }
    if let Some(returned) = &response.user_handle
        && *returned != stored.user_handle
    {
        return Err(PasskeyError::UserHandleMismatch);
    }

    let result = verifier
        .authenticate_single_credential(
            &response.credential,
            &state.ceremony,
            &stored.to_verifier_form(),
        )
        .map_err(|err| match err {
            webauthn_rs_core::error::WebauthnError::CredentialPossibleCompromise => {
                PasskeyError::CounterRegression {
                    stored: stored.sign_count,
                    received: AuthenticatorData::<Authentication>::try_from(
                        response.credential.response.authenticator_data.as_slice(),
                    )
                    .map(|data| data.counter)
                    .unwrap_or(0),
                }
            }
            other => error::from_webauthn(other),
        })?;

    // The signature covers clientDataJSON, so this reads signed data.
    let client_data: ClientDataOrigin =
        serde_json::from_slice(&response.credential.response.client_data_json)
            .map_err(|e| json_error("client data", &e))?;
    if client_data.cross_origin == Some(true) {
        return Err(PasskeyError::CrossOrigin);
    }
    if !result.user_verified() {
        return Err(PasskeyError::UserNotVerified);
    }

    Ok(AssertionOutcome {
        credential_id: stored.id.clone(),
        user_handle: stored.user_handle.clone(),
        sign_count: result.counter(),
        backup_eligible: result.backup_eligible(),
        backup_state: result.backup_state(),
        user_verified: result.user_verified(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> PasskeyConfig {
        PasskeyConfig {
            rp_id: "localhost".into(),
            rp_name: "Portcullis".into(),
            origins: vec!["http://localhost:3000".into()],
        }
    }

    #[test]
    fn config_accepts_localhost_and_https_subdomains() {
        config().validate().unwrap();
        PasskeyConfig {
            rp_id: "bank.example".into(),
            rp_name: "Bank".into(),
            origins: vec![
                "https://bank.example".into(),
                "https://login.bank.example:8443".into(),
            ],
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn config_refuses_ip_addresses_foreign_hosts_plain_http_and_paths() {
        let with = |rp_id: &str, origin: &str| PasskeyConfig {
            rp_id: rp_id.into(),
            rp_name: "Bank".into(),
            origins: vec![origin.into()],
        };
        for (rp_id, origin) in [
            ("127.0.0.1", "http://127.0.0.1:3000"),
            ("bank.example", "https://evil.example"),
            ("bank.example", "https://notbank.example"),
            ("bank.example", "http://bank.example"),
            ("bank.example", "https://bank.example/login"),
            ("Bank.Example", "https://bank.example"),
            ("", "https://bank.example"),
        ] {
            let err = with(rp_id, origin).validate().unwrap_err();
            assert!(matches!(err, PasskeyError::Config(_)), "{rp_id} {origin}");
            assert!(err.is_server_fault());
        }
    }

    #[test]
    fn states_never_print_their_challenge() {
        let handle = UserHandle::random();
        let user = PasskeyUser {
            handle: &handle,
            name: "alice@example.com",
            display_name: "Alice",
        };
        let (options, reg) = start_registration(&config(), &user, &[], UnixTime(1_000)).unwrap();
        let challenge = options["challenge"].as_str().unwrap().to_owned();
        assert!(!format!("{reg:?}").contains(&challenge));
        let (options, auth) = start_authentication(&config(), None, UnixTime(1_000)).unwrap();
        let challenge = options["challenge"].as_str().unwrap().to_owned();
        assert!(!format!("{auth:?}").contains(&challenge));
        // …but the serialised state (for storage) keeps it.
        assert!(serde_json::to_string(&auth).unwrap().contains(&challenge));
    }

    #[test]
    fn every_refusal_is_one_public_answer() {
        for err in [
            PasskeyError::WrongOrigin,
            PasskeyError::BadSignature,
            PasskeyError::UnknownCredential,
            PasskeyError::ChallengeMismatch,
            PasskeyError::CounterRegression {
                stored: 5,
                received: 5,
            },
            PasskeyError::Malformed("x".into()),
        ] {
            assert_eq!(err.public_error(), ApiErrorAlias::InvalidCredentials);
        }
        assert_eq!(
            PasskeyError::Config("x".into()).public_error(),
            ApiErrorAlias::ServiceUnavailable
        );
    }

    use crate::error::ApiError as ApiErrorAlias;

    #[test]
    fn aaguid_prints_and_parses_in_uuid_form() {
        let a = Aaguid([
            0xea, 0x9b, 0x8d, 0x66, 0x4d, 0x01, 0x1d, 0x21, 0x3c, 0xe4, 0xb6, 0xb4, 0x8c, 0xb5,
            0x75, 0xd4,
        ]);
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(text, "\"ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4\"");
        assert_eq!(serde_json::from_str::<Aaguid>(&text).unwrap(), a);
    }

    #[test]
    fn oversized_responses_are_refused_before_parsing() {
        let big = vec![b' '; MAX_RESPONSE_BYTES + 1];
        assert_eq!(
            AssertionResponse::parse(&big).unwrap_err(),
            PasskeyError::TooLarge(MAX_RESPONSE_BYTES + 1)
        );
        assert_eq!(
            RegistrationResponse::parse(&big).unwrap_err(),
            PasskeyError::TooLarge(MAX_RESPONSE_BYTES + 1)
        );
    }
}
