//! Authenticator-app codes (SPEC §4): RFC 6238 TOTP with HMAC-SHA-1, 6 digits and a 30 s step,
//! because that is the only profile every authenticator app implements (several accept
//! `algorithm=SHA256` in the URI and then silently compute SHA-1 anyway).
//!
//! The HOTP arithmetic, the `otpauth://` URI and the PNG QR code come from `totp-rs`; the SVG QR
//! code is drawn here from the same `qrcodegen` symbol the PNG is drawn from. Time is always a
//! parameter (Unix seconds), never read from the system clock, so callers use their `Clock` and
//! tests are exact.
//!
//! `totp-rs` is meant to be built with `default-features = false` and the features `otpauth`,
//! `qr` and `zeroize`: `zeroize` wipes the copies of the secret it holds, and leaving out `std`
//! removes its clock-reading methods (`generate_current`, `check_current`) altogether.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use qrcodegen::{QrCode, QrCodeEcc};
use rand::RngCore as _;
use subtle::{Choice, ConditionallySelectable as _, ConstantTimeEq as _};
use totp_rs::{Builder, Totp};
use zeroize::Zeroizing;

/// Length of a TOTP code, in digits.
const DIGITS: usize = 6;

/// Bytes of a freshly generated secret: 160 bits, the length RFC 4226 §4 recommends and the
/// output size of SHA-1 (a longer HMAC-SHA-1 key adds nothing).
const SECRET_BYTES: usize = 20;

/// Shortest secret accepted from storage: RFC 4226 §4 requires at least 128 bits.
const MIN_SECRET_BYTES: usize = 16;

/// Steps of clock drift tolerated either side of the current one. RFC 6238 §5.2 recommends
/// at most one: it absorbs a phone clock a few seconds off plus the time the user takes to type
/// the code, while keeping the window in which a shoulder-surfed code still works to 90 s.
const DRIFT_STEPS: i64 = 1;

/// Width of the white border around the QR symbol, in modules. ISO/IEC 18004 asks for 4, and
/// some readers fail without it; the PNG from `totp-rs` uses the same.
const QUIET_ZONE: i32 = 4;

/// Errors of this module. Messages never contain the secret, the URI or a code.
#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    /// The secret is shorter than the 128 bits RFC 4226 requires.
    #[error("a TOTP secret must be at least {MIN_SECRET_BYTES} bytes (128 bits)")]
    InvalidSecret,
    /// The otpauth URI could not be built (bad issuer or account label).
    #[error("cannot build the otpauth URI: {0}")]
    Uri(String),
    /// The QR code could not be drawn (URI too long, PNG encoding failed).
    #[error("cannot draw the QR code: {0}")]
    Qr(String),
}

/// A TOTP shared secret: 160 random bits when generated here. `Debug` redacts it and its memory
/// is zeroed on drop; it is only ever stored encrypted (KMS, SPEC §4).
#[derive(Clone)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    /// 20 bytes from the OS-seeded CSPRNG (`rand::rng()`: `ChaCha` reseeded from the OS).
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        rand::rng().fill_bytes(&mut bytes);
        TotpSecret(bytes)
    }

    /// Wraps a secret read back from storage (after decryption). Refuses anything shorter than
    /// 128 bits, so a truncated or corrupted value cannot silently weaken the factor.
    ///
    /// # Errors
    ///
    /// [`TotpError::InvalidSecret`] if `bytes` is shorter than 16 bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, TotpError> {
        // Wrap first, so the bytes are wiped even when they are refused.
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(TotpError::InvalidSecret);
        }
        Ok(TotpSecret(bytes))
    }

    /// The raw secret, for encryption before storage.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32 without padding: what authenticator apps accept for manual entry
    /// (32 characters for 20 bytes).
    pub fn to_base32(&self) -> String {
        totp_rs::Secret::from(self.as_bytes()).to_base32()
    }

    /// The `totp-rs` generator for this secret with the SPEC §4 profile (SHA-1, 6 digits, 30 s,
    /// which are the `Builder` defaults, spelled out so a change of default cannot change
    /// codes). `build_noncompliant` skips checks that hold by construction: the secret is at
    /// least 128 bits and the profile is fixed, so there is no error to handle.
    fn generator(&self) -> Totp {
        self.builder().build_noncompliant()
    }

    fn builder(&self) -> Builder {
        Builder::new()
            .with_algorithm(totp_rs::Algorithm::SHA1)
            .with_digits(6)
            .with_step_duration(30)
            .with_skew(0)
            .with_secret(self.as_bytes())
    }
}

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// What the enrolment answer contains (SPEC §4). Every field reveals the secret (the URI and
/// both images carry it), so `Debug` redacts them all. The fields are plain `String`s (no
/// wipe on drop) so the handler can move them into its response without copies.
pub struct TotpEnrolment {
    /// The secret in base32 without padding, for typing into an app by hand.
    pub secret_base32: String,
    /// `otpauth://totp/Issuer:account?secret=…&issuer=…`. `totp-rs` leaves out
    /// `algorithm`, `digits` and `period` because ours are the Key URI defaults
    /// (SHA1, 6, 30), which every app assumes.
    pub otpauth_uri: String,
    /// PNG of a QR code of `otpauth_uri`, standard base64 without a `data:` prefix.
    pub qr_png_base64: String,
    /// SVG document of the same QR code.
    pub qr_svg: String,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpEnrolment")
            .field("secret_base32", &"<redacted>")
            .field("otpauth_uri", &"<redacted>")
            .field("qr_png_base64", &"<redacted>")
            .field("qr_svg", &"<redacted>")
            .finish()
    }
}

/// Builds the enrolment answer: base32 secret, otpauth URI, and a QR code of the URI as PNG and
/// SVG (both encode the same symbol: ECC level M, 4-module quiet zone).
///
/// The issuer is shown by the app and must not be empty or contain `:` (the Key URI format uses
/// `:` to separate issuer and account and cannot escape it; `%3A` is also read as the
/// separator). It comes from configuration, so such an issuer is an error.
///
/// The account label is only what the app displays. User IDs may contain `:`, and refusing
/// them would leave those users unable to enrol, so each `:` in the account is shown as
/// U+FF1A FULLWIDTH COLON (`：`), which looks the same but is not the Key URI separator. The
/// secret and the codes do not depend on the label.
///
/// # Errors
///
/// [`TotpError::Uri`] for an empty issuer or account, or an issuer containing `:`;
/// [`TotpError::Qr`] if the URI does not fit in a QR code (only with an oversized secret).
pub fn enrolment(
    secret: &TotpSecret,
    issuer: &str,
    account: &str,
) -> Result<TotpEnrolment, TotpError> {
    if issuer.trim().is_empty() {
        return Err(TotpError::Uri("the issuer must not be empty".into()));
    }
    if issuer.contains(':') {
        return Err(TotpError::Uri("the issuer must not contain ':'".into()));
    }
    if account.trim().is_empty() {
        return Err(TotpError::Uri("the account name must not be empty".into()));
    }
    let account_label = account.replace(':', "\u{FF1A}");

    // `build()` (not `build_noncompliant`) re-checks the label rules before the URI is made.
    // Its error messages are not forwarded: some variants quote their input.
    let totp = secret
        .builder()
        .with_issuer(Some(issuer))
        .with_account_name(account_label.as_str())
        .build()
        .map_err(|err| TotpError::Uri(uri_error_reason(&err).into()))?;
    let otpauth_uri = totp
        .to_url()
        .map_err(|err| TotpError::Uri(uri_error_reason(&err).into()))?;

    // `totp_rs::TotpError::UrlTooLong` embeds the whole URI, secret included: never forward it.
    let png = Zeroizing::new(
        totp.to_qr_png()
            .map_err(|_| TotpError::Qr("the otpauth URI does not fit in a QR code".into()))?,
    );
    let qr_png_base64 = STANDARD.encode(png.as_slice());
    let qr_svg = qr_svg(&otpauth_uri)?;

    Ok(TotpEnrolment {
        secret_base32: secret.to_base32(),
        otpauth_uri,
        qr_png_base64,
        qr_svg,
    })
}

/// A fixed reason for a `totp-rs` error, without echoing any of its fields.
fn uri_error_reason(err: &totp_rs::TotpError) -> &'static str {
    match err {
        totp_rs::TotpError::InvalidIssuer { .. } => "the issuer must not contain ':'",
        totp_rs::TotpError::InvalidAccountName { .. } => "the account name must not contain ':'",
        totp_rs::TotpError::AccountNameNotSet => "the account name must not be empty",
        totp_rs::TotpError::SecretTooShort { .. } => "the secret is shorter than 128 bits",
        _ => "invalid TOTP parameters",
    }
}

/// An SVG document of the QR code of `text`: the same symbol `totp-rs` draws as PNG
/// (`qrcodegen`, ECC level M, mask chosen by the library), one unit per module, a white
/// background including the quiet zone, and all dark modules in one `<path>`.
fn qr_svg(text: &str) -> Result<String, TotpError> {
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium)
        .map_err(|_| TotpError::Qr("the otpauth URI does not fit in a QR code".into()))?;
    let size = qr.size();
    let dimension = size + 2 * QUIET_ZONE;
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if qr.get_module(x, y) {
                write!(path, "M{},{}h1v1h-1z", x + QUIET_ZONE, y + QUIET_ZONE)
                    .map_err(|_| TotpError::Qr("cannot write the SVG path".into()))?;
            }
        }
    }
    Ok(format!(
        concat!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" "##,
            r##"viewBox="0 0 {dim} {dim}" shape-rendering="crispEdges">"##,
            r##"<rect width="{dim}" height="{dim}" fill="#ffffff"/>"##,
            r##"<path d="{path}" fill="#000000"/>"##,
            r##"</svg>"##,
        ),
        dim = dimension,
        path = path,
    ))
}

/// Length of a TOTP step, in seconds (RFC 6238 X; SPEC §4).
pub const STEP_SECS: i64 = 30;

/// The RFC 6238 time step `T = floor(unix_secs / 30)` (`T0 = 0`). Floor division, so a time before
/// the epoch maps to a negative step rather than sharing step 0 with the first 30 s; for every
/// real time (≥ 0) it is simply `unix_secs / 30`.
#[must_use]
pub fn step_of(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The 6-digit code for a time (RFC 6238: HMAC-SHA-1, 30 s step, 6 digits, zero padded). Times
/// before the epoch have no counter of their own (the HOTP counter is unsigned) and get the
/// code of step 0; `verify` never accepts them.
#[must_use]
pub fn code_at(secret: &TotpSecret, unix_secs: i64) -> String {
    let step = u64::try_from(step_of(unix_secs)).unwrap_or(0);
    code_for_step(&secret.generator(), step).to_string()
}

/// The code of one step as a `totp-rs` token (a stack value; `Display` pads to 6 digits).
fn code_for_step(generator: &Totp, step: u64) -> totp_rs::Token {
    // `generate` takes a time and divides it by the step length; the first second of the step
    // maps back to exactly `step`. No overflow: step ≤ i64::MAX / 30 + 1, so step × 30 < u64::MAX.
    generator.generate(step.saturating_mul(STEP_SECS.unsigned_abs()))
}

/// Verifies a submitted code at `unix_secs`. Returns the step the code belongs to, or `None`.
///
/// - **Drift**: the steps T-1, T and T+1 are tried (`DRIFT_STEPS`): phones' clocks are a few
///   seconds off and typing takes time, and RFC 6238 §5.2 advises no more than one step.
/// - **Replay**: a step `<= last_used_step` is never accepted, so a code cannot be used twice
///   (RFC 6238 §5.2), nor can an older code once a newer one has been used. The caller must
///   store the returned step with a conditional write ("only if greater than the stored one")
///   so two concurrent requests with the same code cannot both succeed.
/// - **Timing**: every candidate step is computed and compared in constant time (`subtle`),
///   with no early exit, so the response time does not reveal which step (if any) matched.
///   If two candidate steps have the same code (a one-in-a-million coincidence) the latest
///   acceptable one is returned, which moves `last_used_step` furthest forward.
/// - **Input**: spaces are removed (apps show `123 456`); what remains must be exactly six
///   ASCII digits, else `None`. Other Unicode digits are refused rather than folded.
#[must_use]
pub fn verify(
    secret: &TotpSecret,
    code: &str,
    unix_secs: i64,
    last_used_step: Option<i64>,
) -> Option<i64> {
    let submitted = Zeroizing::new(parse_code(code)?);
    let generator = secret.generator();
    let current = step_of(unix_secs);

    let mut matched = Choice::from(0);
    let mut matched_step: i64 = 0;
    for candidate in (current - DRIFT_STEPS)..=(current + DRIFT_STEPS) {
        // Whether a step may be used is not secret (the caller knows the time and the last
        // step); only the comparison with the expected code has to be constant time.
        let Ok(counter) = u64::try_from(candidate) else {
            continue; // before the epoch: no such step
        };
        let fresh = last_used_step.is_none_or(|last| candidate > last);
        let expected = Zeroizing::new(code_digits(&code_for_step(&generator, counter)));
        let hit = expected.ct_eq(&*submitted) & Choice::from(u8::from(fresh));
        matched_step = i64::conditional_select(&matched_step, &candidate, hit);
        matched |= hit;
    }
    bool::from(matched).then_some(matched_step)
}

/// The six ASCII digits of a submitted code with spaces removed, or `None`. Works on bytes
/// without allocating: any non-ASCII byte (so any Unicode digit) is refused.
fn parse_code(code: &str) -> Option<[u8; DIGITS]> {
    let mut digits = [0u8; DIGITS];
    let mut len = 0;
    for &byte in code.as_bytes().iter().filter(|&&b| b != b' ') {
        if !byte.is_ascii_digit() || len == DIGITS {
            return None;
        }
        digits[len] = byte;
        len += 1;
    }
    (len == DIGITS).then_some(digits)
}

/// The ASCII digits of a token, zero padded to six.
fn code_digits(token: &totp_rs::Token) -> [u8; DIGITS] {
    let text = Zeroizing::new(token.to_string());
    let mut digits = [b'0'; DIGITS];
    // The token always prints exactly DIGITS digits; copying from the right keeps this total.
    for (slot, byte) in digits.iter_mut().rev().zip(text.as_bytes().iter().rev()) {
        *slot = *byte;
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 6238 Appendix B SHA-1 seed: the ASCII string "12345678901234567890".
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap()
    }

    #[test]
    fn rfc6238_appendix_b_sha1_vectors_give_the_last_six_digits() {
        let secret = rfc_secret();
        let vectors: [(i64, &str); 6] = [
            (59, "287082"),             // 94287082
            (1_111_111_109, "081804"),  // 07081804
            (1_111_111_111, "050471"),  // 14050471
            (1_234_567_890, "005924"),  // 89005924
            (2_000_000_000, "279037"),  // 69279037
            (20_000_000_000, "353130"), // 65353130
        ];
        for (time, expected) in vectors {
            assert_eq!(code_at(&secret, time), expected, "time {time}");
            assert_eq!(
                verify(&secret, expected, time, None),
                Some(step_of(time)),
                "time {time}"
            );
        }
    }

    #[test]
    fn step_of_divides_by_thirty() {
        assert_eq!(STEP_SECS, 30);
        assert_eq!(step_of(0), 0);
        assert_eq!(step_of(29), 0);
        assert_eq!(step_of(30), 1);
        assert_eq!(step_of(59), 1);
        assert_eq!(step_of(1_111_111_109), 37_037_036);
        assert_eq!(step_of(-1), -1);
    }

    #[test]
    fn codes_one_step_early_or_late_are_accepted() {
        let secret = TotpSecret::generate();
        let now = 1_700_000_015;
        let step = step_of(now);
        let previous = code_at(&secret, now - STEP_SECS);
        let next = code_at(&secret, now + STEP_SECS);
        assert_eq!(
            verify(&secret, &code_at(&secret, now), now, None),
            Some(step)
        );
        assert_eq!(verify(&secret, &previous, now, None), Some(step - 1));
        assert_eq!(verify(&secret, &next, now, None), Some(step + 1));
    }

    #[test]
    fn codes_two_steps_early_or_late_are_refused() {
        let secret = rfc_secret();
        let now = 1_700_000_015;
        let two_back = code_at(&secret, now - 2 * STEP_SECS);
        let two_ahead = code_at(&secret, now + 2 * STEP_SECS);
        // Make sure the test is meaningful: the refused codes differ from the accepted ones.
        for offset in [-1, 0, 1] {
            let accepted = code_at(&secret, now + offset * STEP_SECS);
            assert_ne!(two_back, accepted);
            assert_ne!(two_ahead, accepted);
        }
        assert_eq!(verify(&secret, &two_back, now, None), None);
        assert_eq!(verify(&secret, &two_ahead, now, None), None);
    }

    #[test]
    fn a_code_is_refused_once_its_step_has_been_used() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        let code = code_at(&secret, now);
        let step = verify(&secret, &code, now, None).unwrap();
        assert_eq!(verify(&secret, &code, now, Some(step)), None);
        // Still refused a few seconds later, within the drift window.
        assert_eq!(verify(&secret, &code, now + STEP_SECS, Some(step)), None);
    }

    #[test]
    fn an_older_code_is_refused_once_a_newer_step_has_been_used() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        let step = step_of(now);
        let previous = code_at(&secret, now - STEP_SECS);
        assert_eq!(verify(&secret, &previous, now, Some(step)), None);
        assert_eq!(verify(&secret, &previous, now, Some(step - 1)), None);
        assert_eq!(
            verify(&secret, &previous, now, Some(step - 2)),
            Some(step - 1)
        );
        // A code ahead of the last used step is still fine.
        let next = code_at(&secret, now + STEP_SECS);
        assert_eq!(verify(&secret, &next, now, Some(step)), Some(step + 1));
    }

    #[test]
    fn spaces_in_a_code_are_ignored() {
        let secret = rfc_secret();
        assert_eq!(verify(&secret, "287 082", 59, None), Some(1));
        assert_eq!(verify(&secret, " 287082 ", 59, None), Some(1));
    }

    #[test]
    fn malformed_codes_are_refused() {
        let secret = rfc_secret();
        for code in [
            "12345",
            "1234567",
            "12a456",
            "",
            "      ",
            "١٢٣٤٥٦",       // Arabic-Indic digits
            "２８７０８２", // fullwidth digits of a valid code
            "+87082",
            "-87082",
            "287082\n",
            "2870820",
        ] {
            assert_eq!(verify(&secret, code, 59, None), None, "{code:?}");
        }
    }

    #[test]
    fn a_wrong_code_is_refused() {
        let secret = rfc_secret();
        let wrong = if code_at(&secret, 59) == "000000" {
            "000001"
        } else {
            "000000"
        };
        assert_eq!(verify(&secret, wrong, 59, None), None);
        assert_eq!(
            verify(
                &rfc_secret(),
                &code_at(&TotpSecret::generate(), 59),
                59,
                None
            ),
            None
        );
    }

    #[test]
    fn times_before_the_epoch_never_verify_and_early_times_skip_negative_steps() {
        let secret = rfc_secret();
        assert_eq!(verify(&secret, &code_at(&secret, -31), -31, None), None);
        // At t = 10 the window is steps -1, 0, 1: the real ones still verify.
        assert_eq!(verify(&secret, &code_at(&secret, 10), 10, None), Some(0));
        assert_eq!(verify(&secret, &code_at(&secret, 40), 10, None), Some(1));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(
            TotpSecret::from_bytes(vec![7; 15]),
            Err(TotpError::InvalidSecret)
        ));
        assert!(matches!(
            TotpSecret::from_bytes(Vec::new()),
            Err(TotpError::InvalidSecret)
        ));
        assert_eq!(
            TotpSecret::from_bytes(vec![7; 16]).unwrap().as_bytes(),
            &[7; 16]
        );
    }

    #[test]
    fn generated_secrets_are_20_random_bytes_and_32_base32_chars() {
        let a = TotpSecret::generate();
        let b = TotpSecret::generate();
        assert_eq!(a.as_bytes().len(), 20);
        assert_eq!(b.as_bytes().len(), 20);
        assert_ne!(a.as_bytes(), b.as_bytes());
        let base32 = a.to_base32();
        assert_eq!(base32.len(), 32);
        assert!(
            base32
                .bytes()
                .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c))
        );
    }

    #[test]
    fn base32_is_rfc4648_without_padding() {
        // Python: base64.b32encode(b"foobarfoobarfoob") == "MZXW6YTBOJTG633CMFZGM33PMI======".
        let secret = TotpSecret::from_bytes(b"foobarfoobarfoob".to_vec()).unwrap();
        assert_eq!(secret.to_base32(), "MZXW6YTBOJTG633CMFZGM33PMI");
        assert!(!rfc_secret().to_base32().contains('='));
        assert_eq!(rfc_secret().to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn otpauth_uri_round_trips_with_issuer_in_label_and_parameter() {
        let secret = TotpSecret::generate();
        let issuer = "Acme Bank & Co";
        let account = "Alice+mfa@bank.example";
        let enrolment = enrolment(&secret, issuer, account).unwrap();
        let uri = &enrolment.otpauth_uri;

        assert!(
            uri.starts_with("otpauth://totp/Acme%20Bank%20%26%20Co:Alice%2Bmfa%40bank.example?")
        );
        let query = uri.split_once('?').unwrap().1;
        let params: Vec<&str> = query.split('&').collect();
        assert!(params.contains(&format!("secret={}", secret.to_base32()).as_str()));
        assert!(params.contains(&"issuer=Acme%20Bank%20%26%20Co"));
        assert_eq!(enrolment.secret_base32, secret.to_base32());

        let parsed = Totp::from_url(uri).unwrap();
        assert_eq!(parsed.secret().as_bytes(), secret.as_bytes());
        assert_eq!(parsed.issuer(), Some(issuer));
        assert_eq!(parsed.account_name(), account);
        assert_eq!(parsed.algorithm(), totp_rs::Algorithm::SHA1);
        assert_eq!(parsed.digits(), 6);
        assert_eq!(parsed.step(), 30);
        // An app reading the URI computes the same codes.
        assert_eq!(
            parsed.generate(1_234_567_890).to_string(),
            code_at(&secret, 1_234_567_890)
        );
    }

    #[test]
    fn colons_in_the_account_are_shown_as_fullwidth_colons() {
        let secret = TotpSecret::generate();
        let enrolment = enrolment(&secret, "Portcullis", "corp:alice").unwrap();
        let parsed = Totp::from_url(&enrolment.otpauth_uri).unwrap();
        assert_eq!(parsed.issuer(), Some("Portcullis"));
        assert_eq!(parsed.account_name(), "corp\u{FF1A}alice");
        assert_eq!(parsed.secret().as_bytes(), secret.as_bytes());
    }

    #[test]
    fn bad_issuers_and_empty_accounts_are_refused() {
        let secret = TotpSecret::generate();
        assert!(matches!(
            enrolment(&secret, "Port:cullis", "alice"),
            Err(TotpError::Uri(_))
        ));
        assert!(matches!(
            enrolment(&secret, "", "alice"),
            Err(TotpError::Uri(_))
        ));
        assert!(matches!(
            enrolment(&secret, "Portcullis", ""),
            Err(TotpError::Uri(_))
        ));
    }

    #[test]
    fn an_oversized_secret_is_a_qr_error_that_does_not_leak_the_secret() {
        let secret = TotpSecret::from_bytes(vec![0xAA; 2048]).unwrap();
        let err = enrolment(&secret, "Portcullis", "alice").unwrap_err();
        assert!(matches!(err, TotpError::Qr(_)));
        let text = format!("{err} {err:?}");
        assert!(!text.contains(&secret.to_base32()[..16]), "{text}");
    }

    #[test]
    fn qr_png_is_a_png_of_reasonable_size() {
        let enrolment =
            enrolment(&TotpSecret::generate(), "Portcullis", "alice@bank.example").unwrap();
        assert!(!enrolment.qr_png_base64.starts_with("data:"));
        let png = STANDARD.decode(&enrolment.qr_png_base64).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!((200..20_000).contains(&png.len()), "{} bytes", png.len());
        // IHDR: width and height, big endian, at bytes 16..24.
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!(width, height);
        assert!((200..1000).contains(&width), "{width} px");
    }

    #[test]
    fn qr_svg_is_a_well_formed_svg_of_the_same_symbol_as_the_png() {
        let enrolment =
            enrolment(&TotpSecret::generate(), "Portcullis", "alice@bank.example").unwrap();
        let svg = &enrolment.qr_svg;
        assert!(svg.starts_with("<svg "));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains(r#"xmlns="http://www.w3.org/2000/svg""#));

        // Balanced tags: every opening tag is closed or self-closing, in order.
        let mut open: Vec<String> = Vec::new();
        for tag in svg.split('<').skip(1) {
            let tag = tag.split_once('>').unwrap().0;
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop().as_deref(), Some(name));
            } else if !tag.ends_with('/') {
                open.push(tag.split_whitespace().next().unwrap().to_owned());
            }
        }
        assert!(open.is_empty(), "unclosed: {open:?}");

        // viewBox covers the symbol plus a 4-module quiet zone; the PNG draws 8 px per module
        // with the same quiet zone, so it is exactly 8 times wider if it is the same symbol.
        let view_box = svg.split_once(r#"viewBox="0 0 "#).unwrap().1;
        let dimension: u32 = view_box.split_once(' ').unwrap().0.parse().unwrap();
        assert!(dimension >= 21 + 8);
        let png = STANDARD.decode(&enrolment.qr_png_base64).unwrap();
        assert_eq!(
            u32::from_be_bytes(png[16..20].try_into().unwrap()),
            dimension * 8
        );

        // The three finder patterns are there: the top-left module of the symbol is dark.
        assert!(svg.contains("M4,4h1v1h-1z"));
        assert_eq!(svg.matches("<path").count(), 1);
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        let printed = format!("{secret:?}");
        assert_eq!(printed, "TotpSecret(<redacted>)");

        let enrolment = enrolment(&secret, "Portcullis", "alice").unwrap();
        let printed = format!("{enrolment:?} {enrolment:#?}");
        assert!(!printed.contains(&secret.to_base32()), "{printed}");
        assert!(!printed.contains("otpauth://"), "{printed}");
        assert!(!printed.contains("<svg"), "{printed}");
        assert!(
            !printed.contains(&enrolment.qr_png_base64[..20]),
            "{printed}"
        );
        assert!(printed.contains("<redacted>"));
    }
}
