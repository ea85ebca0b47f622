//! Keys that never leave KMS, behind small traits with a KMS adapter and an in-memory one
//! (for unit tests; the KMS adapter runs against the emulator in CI):
//!
//! - [`CodeMac`]: HMAC-SHA-256 with a KMS HMAC key: one-time codes are stored only as this MAC.
//! - [`SecretSealer`]: encryption of small secrets (TOTP seeds, the token-signing key of
//!   [`crate::signing`]) with an encryption context, so a ciphertext copied to another user's or
//!   factor's record does not decrypt. [`KmsSealer`] calls KMS `Encrypt` and `Decrypt` on the
//!   data key directly (no data key of its own, so at most 4 KiB of plaintext).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::MacAlgorithmSpec;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::StoreError;

/// A failed KMS call as [`StoreError::Unavailable`]: `what` (the service, or the service and
/// the operation), then the SDK's error with its sources.
pub(crate) fn kms_failure<E: std::error::Error + 'static, R: std::fmt::Debug>(
    what: &str,
    err: aws_sdk_kms::error::SdkError<E, R>,
) -> StoreError {
    StoreError::Unavailable(format!(
        "{what}: {}",
        aws_smithy_types::error::display::DisplayErrorContext(&err)
    ))
}

fn kms_error<E: std::error::Error + 'static, R: std::fmt::Debug>(
    err: aws_sdk_kms::error::SdkError<E, R>,
) -> StoreError {
    kms_failure("KMS", err)
}

#[async_trait]
pub trait CodeMac: Send + Sync + std::fmt::Debug {
    /// HMAC-SHA-256 of `message` under the code key.
    async fn mac(&self, message: &[u8]) -> Result<Vec<u8>, StoreError>;
}

#[derive(Debug, Clone)]
pub struct KmsCodeMac {
    client: Client,
    key_id: String,
}

impl KmsCodeMac {
    pub fn new(client: Client, key_id: &str) -> Self {
        KmsCodeMac {
            client,
            key_id: key_id.to_owned(),
        }
    }
}

#[async_trait]
impl CodeMac for KmsCodeMac {
    async fn mac(&self, message: &[u8]) -> Result<Vec<u8>, StoreError> {
        let out = self
            .client
            .generate_mac()
            .key_id(&self.key_id)
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .message(Blob::new(message))
            .send()
            .await
            .map_err(kms_error)?;
        out.mac
            .map(Blob::into_inner)
            .ok_or_else(|| StoreError::Unavailable("KMS GenerateMac returned no MAC".into()))
    }
}

/// HMAC-SHA-256 with a random in-process key (tests and in-process benchmarks).
pub struct LocalCodeMac {
    key: Zeroizing<[u8; 32]>,
}

impl LocalCodeMac {
    pub fn random() -> Self {
        LocalCodeMac {
            key: Zeroizing::new(super::random_bytes::<32>()),
        }
    }
}

impl std::fmt::Debug for LocalCodeMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalCodeMac(<key redacted>)")
    }
}

#[async_trait]
impl CodeMac for LocalCodeMac {
    async fn mac(&self, message: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.as_ref())
            .map_err(|_| StoreError::Unavailable("bad HMAC key".into()))?;
        mac.update(message);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

/// An encryption context: who the secret belongs to. Decryption with any other context fails.
pub type Context<'a> = &'a [(&'a str, &'a str)];

#[async_trait]
pub trait SecretSealer: Send + Sync + std::fmt::Debug {
    /// Encrypts `plaintext` bound to `context`; returns base64 ciphertext.
    async fn seal(&self, plaintext: &[u8], context: Context<'_>) -> Result<String, StoreError>;
    /// Decrypts; fails if the context differs from the one used to seal.
    async fn open(
        &self,
        sealed: &str,
        context: Context<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError>;
}

fn context_map(context: Context<'_>) -> HashMap<String, String> {
    context
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[derive(Debug, Clone)]
pub struct KmsSealer {
    client: Client,
    key_id: String,
}

impl KmsSealer {
    pub fn new(client: Client, key_id: &str) -> Self {
        KmsSealer {
            client,
            key_id: key_id.to_owned(),
        }
    }
}

#[async_trait]
impl SecretSealer for KmsSealer {
    async fn seal(&self, plaintext: &[u8], context: Context<'_>) -> Result<String, StoreError> {
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(plaintext))
            .set_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(kms_error)?;
        let blob = out
            .ciphertext_blob
            .ok_or_else(|| StoreError::Unavailable("KMS Encrypt returned no ciphertext".into()))?;
        Ok(STANDARD.encode(blob.as_ref()))
    }

    async fn open(
        &self,
        sealed: &str,
        context: Context<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let ciphertext = STANDARD
            .decode(sealed)
            .map_err(|_| StoreError::Corrupt("sealed secret is not base64".into()))?;
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .set_encryption_context(Some(context_map(context)))
            .send()
            .await
            .map_err(kms_error)?;
        out.plaintext
            .map(|p| Zeroizing::new(p.into_inner()))
            .ok_or_else(|| StoreError::Unavailable("KMS Decrypt returned no plaintext".into()))
    }
}

/// In-memory stand-in for KMS encryption (tests only): keeps plaintexts in a map under random
/// handles and enforces the context, as KMS does. It is a key store, not a cipher.
type Sealed = (HashMap<String, String>, Zeroizing<Vec<u8>>);

#[derive(Default)]
pub struct MemorySealer {
    sealed: Mutex<HashMap<String, Sealed>>,
}

impl std::fmt::Debug for MemorySealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemorySealer")
    }
}

#[async_trait]
impl SecretSealer for MemorySealer {
    async fn seal(&self, plaintext: &[u8], context: Context<'_>) -> Result<String, StoreError> {
        let handle = super::random_token();
        self.sealed
            .lock()
            .map_err(|_| StoreError::Unavailable("poisoned".into()))?
            .insert(
                handle.clone(),
                (context_map(context), Zeroizing::new(plaintext.to_vec())),
            );
        Ok(handle)
    }

    async fn open(
        &self,
        sealed: &str,
        context: Context<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let map = self
            .sealed
            .lock()
            .map_err(|_| StoreError::Unavailable("poisoned".into()))?;
        match map.get(sealed) {
            Some((ctx, plain)) if *ctx == context_map(context) => Ok(plain.clone()),
            _ => Err(StoreError::Corrupt(
                "sealed secret does not open in this context".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_mac_is_hmac_sha256_and_key_dependent() {
        let a = LocalCodeMac::random();
        let b = LocalCodeMac::random();
        assert_eq!(a.mac(b"x").await.unwrap().len(), 32);
        assert_eq!(a.mac(b"x").await.unwrap(), a.mac(b"x").await.unwrap());
        assert_ne!(a.mac(b"x").await.unwrap(), b.mac(b"x").await.unwrap());
        assert!(!format!("{a:?}").contains(&format!("{:?}", a.key.as_ref())));
    }

    #[tokio::test]
    async fn memory_sealer_enforces_the_context() {
        let s = MemorySealer::default();
        let sealed = s
            .seal(b"seed", &[("user_id", "a"), ("factor_id", "f")])
            .await
            .unwrap();
        assert_eq!(
            s.open(&sealed, &[("user_id", "a"), ("factor_id", "f")])
                .await
                .unwrap()
                .as_slice(),
            b"seed"
        );
        assert!(
            s.open(&sealed, &[("user_id", "b"), ("factor_id", "f")])
                .await
                .is_err()
        );
    }
}
