//! Access tokens: JWTs (JWS compact, ES256) signed with a P-256 key, in one of the two modes of
//! [`crate::signing`] (SPEC §6): by default in process with a key stored only sealed by KMS
//! ([`LocalSigner`] over the opened key), or by KMS `Sign` with a key that never leaves KMS
//! ([`KmsSigner`]). The public keys are published as JWKs, so API Gateway JWT authorizers — ours
//! and other apps' — verify tokens without calling us.
//!
//! The JWS encoding is written here (it is base64url and JSON); the signature is made by the
//! `p256` crate or by KMS (`Sign`, `ECDSA_SHA_256`, RAW message), and verified by `p256`.
//! Verification accepts exactly `alg: ES256` with the expected `kid`: no `none`, no HMAC
//! confusion.

use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::crypto::keyed::kms_failure;
use crate::error::StoreError;

/// The claims of an access token. `amr`/`acr`/`auth_time` let other services demand a recent,
/// MFA-backed sign-in (step-up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// When the user last proved themselves (password + MFA, or a step-up).
    pub auth_time: i64,
    /// Authentication methods used (RFC 8176 values: `pwd`, `otp`, `sms`, `tel`, `mfa`, …).
    pub amr: Vec<String>,
    /// `urn:portcullis:acr:mfa` after a code, `urn:portcullis:acr:trusted-device` when a trusted
    /// device skipped MFA.
    pub acr: String,
    /// The session this token belongs to (sign-out and refresh revoke by it).
    pub sid: String,
    pub jti: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub token_use: String,
}

pub const ACR_MFA: &str = "urn:portcullis:acr:mfa";
/// A passkey with user verification (SPEC §13): multi-factor and phishing-resistant (the
/// signature covers the origin). It satisfies everything [`ACR_MFA`] does.
pub const ACR_PHISHING_RESISTANT: &str = "urn:portcullis:acr:phishing-resistant";
pub const ACR_TRUSTED_DEVICE: &str = "urn:portcullis:acr:trusted-device";

#[async_trait]
pub trait TokenSigner: Send + Sync + std::fmt::Debug {
    fn key_id(&self) -> &str;
    fn verifying_key(&self) -> &VerifyingKey;
    /// A raw ES256 signature (`r || s`, 64 bytes) of `message`.
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, StoreError>;
}

/// The key id published in the JWKS: derived from the public key, so it changes with the key.
pub fn key_id_of(key: &VerifyingKey) -> String {
    let spki = key
        .to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .unwrap_or_default();
    URL_SAFE_NO_PAD.encode(&Sha256::digest(&spki)[..16])
}

#[derive(Debug, Clone)]
pub struct KmsSigner {
    client: Client,
    kms_key_id: String,
    kid: String,
    public: VerifyingKey,
}

impl KmsSigner {
    /// Fetches the public key once (cold start).
    pub async fn connect(client: Client, key_id: &str) -> Result<Self, StoreError> {
        let out = client
            .get_public_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| kms_failure("KMS GetPublicKey", e))?;
        let der = out
            .public_key
            .ok_or_else(|| StoreError::Unavailable("KMS returned no public key".into()))?;
        let public = VerifyingKey::from_public_key_der(der.as_ref())
            .map_err(|e| StoreError::Corrupt(format!("signing key is not P-256: {e}")))?;
        Ok(KmsSigner {
            client,
            kms_key_id: key_id.to_owned(),
            kid: key_id_of(&public),
            public,
        })
    }
}

#[async_trait]
impl TokenSigner for KmsSigner {
    fn key_id(&self) -> &str {
        &self.kid
    }

    fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, StoreError> {
        let out = self
            .client
            .sign()
            .key_id(&self.kms_key_id)
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| kms_failure("KMS Sign", e))?;
        let der = out
            .signature
            .ok_or_else(|| StoreError::Unavailable("KMS Sign returned no signature".into()))?;
        let signature = Signature::from_der(der.as_ref())
            .map_err(|e| StoreError::Corrupt(format!("KMS signature is not DER ECDSA: {e}")))?;
        let signature = signature.normalize_s().unwrap_or(signature);
        Ok(signature.to_bytes().to_vec())
    }
}

/// A P-256 key in process: the envelope mode's opened key, tests and in-process benchmarks.
pub struct LocalSigner {
    key: SigningKey,
    public: VerifyingKey,
    kid: String,
}

impl LocalSigner {
    /// A signer with this key (envelope mode: the key just decrypted).
    pub fn from_key(key: SigningKey) -> Self {
        let public = *key.verifying_key();
        LocalSigner {
            kid: key_id_of(&public),
            key,
            public,
        }
    }

    pub fn random() -> Self {
        let key = SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let public = *key.verifying_key();
        LocalSigner {
            kid: key_id_of(&public),
            key,
            public,
        }
    }
}

impl std::fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalSigner(kid={})", self.kid)
    }
}

#[async_trait]
impl TokenSigner for LocalSigner {
    fn key_id(&self) -> &str {
        &self.kid
    }

    fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, StoreError> {
        let signature: Signature = self.key.sign(message);
        Ok(signature.to_bytes().to_vec())
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
    kid: String,
}

/// Signs `claims` into a compact JWS.
pub async fn issue(signer: &dyn TokenSigner, claims: &AccessClaims) -> Result<String, StoreError> {
    let header = Header {
        alg: "ES256".into(),
        typ: "JWT".into(),
        kid: signer.key_id().to_owned(),
    };
    let encode = |v: &dyn erased::Json| v.json().map(|j| URL_SAFE_NO_PAD.encode(j));
    let header = encode(&header).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let payload = encode(claims).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let signing_input = format!("{header}.{payload}");
    let signature = signer.sign(signing_input.as_bytes()).await?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

mod erased {
    pub trait Json {
        fn json(&self) -> Result<Vec<u8>, serde_json::Error>;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Result<Vec<u8>, serde_json::Error> {
            serde_json::to_vec(self)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported algorithm or key")]
    WrongKey,
    #[error("bad signature")]
    BadSignature,
    #[error("expired")]
    Expired,
    #[error("wrong issuer or audience")]
    WrongAudience,
}

/// What a verifier expects of a token.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    pub key: &'a VerifyingKey,
    pub kid: &'a str,
    pub issuer: &'a str,
    pub audience: &'a str,
    pub now: i64,
}

/// The `kid` a token's header names, unverified: which of the published keys to verify it with.
pub fn kid_of(token: &str) -> Option<String> {
    if token.len() > 8192 {
        return None;
    }
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    let header: Header = serde_json::from_slice(&bytes).ok()?;
    (header.kid.len() <= 64).then_some(header.kid)
}

/// Verifies a compact JWS access token: ES256 with the expected `kid`, valid signature, not
/// expired, our issuer and audience. Only then are the claims returned.
pub fn verify(token: &str, expect: &Expectations<'_>) -> Result<AccessClaims, TokenError> {
    if token.len() > 8192 {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| TokenError::Malformed)
    };
    let header: Header = serde_json::from_slice(&decode(h)?).map_err(|_| TokenError::Malformed)?;
    if header.alg != "ES256" || header.kid != expect.kid {
        return Err(TokenError::WrongKey);
    }
    let signature = Signature::from_slice(&decode(s)?).map_err(|_| TokenError::BadSignature)?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    expect
        .key
        .verify(signing_input.as_bytes(), &signature)
        .map_err(|_| TokenError::BadSignature)?;
    let claims: AccessClaims =
        serde_json::from_slice(&decode(p)?).map_err(|_| TokenError::Malformed)?;
    if claims.exp <= expect.now {
        return Err(TokenError::Expired);
    }
    if claims.iss != expect.issuer || claims.aud != expect.audience || claims.token_use != "access"
    {
        return Err(TokenError::WrongAudience);
    }
    Ok(claims)
}

/// The JWK of a verifying key (RFC 7517/7518), as published at `/.well-known/jwks.json`.
pub fn jwk(key: &VerifyingKey, kid: &str) -> serde_json::Value {
    let point = key.to_encoded_point(false);
    let coord =
        |c: Option<&p256::FieldBytes>| c.map(|b| URL_SAFE_NO_PAD.encode(b)).unwrap_or_default();
    serde_json::json!({
        "kty": "EC",
        "crv": "P-256",
        "x": coord(point.x()),
        "y": coord(point.y()),
        "kid": kid,
        "use": "sig",
        "alg": "ES256",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            iss: "https://auth.example".into(),
            sub: "alice".into(),
            aud: "portcullis".into(),
            iat: 100,
            exp,
            auth_time: 100,
            amr: vec!["pwd".into(), "otp".into(), "mfa".into()],
            acr: ACR_MFA.into(),
            sid: "s1".into(),
            jti: "j1".into(),
            roles: vec![],
            token_use: "access".into(),
        }
    }

    fn expect<'a>(signer: &'a LocalSigner, now: i64) -> Expectations<'a> {
        Expectations {
            key: signer.verifying_key(),
            kid: signer.key_id(),
            issuer: "https://auth.example",
            audience: "portcullis",
            now,
        }
    }

    #[tokio::test]
    async fn issued_tokens_verify_and_carry_the_claims() {
        let signer = LocalSigner::random();
        let token = issue(&signer, &claims(400)).await.unwrap();
        assert_eq!(verify(&token, &expect(&signer, 399)).unwrap(), claims(400));
        assert_eq!(
            verify(&token, &expect(&signer, 400)),
            Err(TokenError::Expired)
        );
    }

    #[tokio::test]
    async fn tampering_other_keys_and_alg_none_are_refused() {
        let signer = LocalSigner::random();
        let other = LocalSigner::random();
        let token = issue(&signer, &claims(400)).await.unwrap();
        // another key with the same kid claim still fails on the signature
        let forged = issue(&other, &claims(400)).await.unwrap();
        let forged_parts: Vec<&str> = forged.split('.').collect();
        let parts: Vec<&str> = token.split('.').collect();
        let swapped = format!("{}.{}.{}", parts[0], parts[1], forged_parts[2]);
        assert_eq!(
            verify(&swapped, &expect(&signer, 1)),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&forged, &expect(&signer, 1)),
            Err(TokenError::WrongKey)
        );
        // payload changed
        let mut evil = claims(400);
        evil.sub = "mallory".into();
        let evil_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&evil).unwrap());
        let tampered = format!("{}.{}.{}", parts[0], evil_payload, parts[2]);
        assert_eq!(
            verify(&tampered, &expect(&signer, 1)),
            Err(TokenError::BadSignature)
        );
        // alg none
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"x"}"#);
        assert_eq!(
            verify(&format!("{none_header}.{}.", parts[1]), &expect(&signer, 1)),
            Err(TokenError::WrongKey)
        );
        assert_eq!(
            verify("a.b", &expect(&signer, 1)),
            Err(TokenError::Malformed)
        );
        assert_eq!(verify("", &expect(&signer, 1)), Err(TokenError::Malformed));
    }

    #[tokio::test]
    async fn wrong_audience_or_issuer_is_refused() {
        let signer = LocalSigner::random();
        let mut c = claims(400);
        c.aud = "someone-else".into();
        let token = issue(&signer, &c).await.unwrap();
        assert_eq!(
            verify(&token, &expect(&signer, 1)),
            Err(TokenError::WrongAudience)
        );
    }

    #[test]
    fn jwk_has_p256_coordinates() {
        let signer = LocalSigner::random();
        let jwk = jwk(signer.verifying_key(), signer.key_id());
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk["y"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
    }
}
