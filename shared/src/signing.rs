//! The access-token signing keys (SPEC §6), in one of two modes (`PORTCULLIS_TOKEN_SIGNING`):
//!
//! - **`envelope`** (the default): tokens are signed in process with a P-256 key whose private
//!   part is stored only sealed by the KMS data key ([`crate::storage::SigningKeys`], encryption
//!   context `purpose=token-signing, kid=<kid>`). An execution environment reads the record and
//!   decrypts the key once, when it first signs — one `GetItem` and one KMS `Decrypt` per
//!   environment instead of one asymmetric KMS `Sign` per token. Functions that only verify
//!   tokens read the public keys and never decrypt. The record is read again every
//!   [`REFRESH`], and at once (at most every [`RELOAD_AT_MOST_EVERY`]) when a token names a key
//!   this environment does not know yet, so a rotation reaches every environment within
//!   minutes while both keys are published and accepted.
//! - **`kms`**: every token is signed by KMS `Sign` with the asymmetric key
//!   `PORTCULLIS_SIGNING_KEY_ID`, whose private part never leaves KMS's HSMs.
//!
//! What each protects against: both keep the private key out of the table, its backups and the
//! code (at rest, only KMS can open it, and only for a role allowed to `Decrypt` with that
//! context). Envelope mode has the key in the memory of the functions that sign: code running in
//! such a function (a compromised dependency) could copy it and sign tokens later, until the key
//! is rotated; in KMS mode it could only sign while it runs, and every signature is a CloudTrail
//! event. Deployments whose policy demands that the key never leaves an HSM choose `kms`.
//!
//! Rotation: `portcullis-admin rotate-signing-key` makes a new key, seals it and replaces the
//! record (conditionally on the version it read), keeping the previous public key published.
//! Rotations less than [`MIN_ROTATION_SECS`] apart are refused: tokens of the key two rotations
//! back may still be alive and would no longer verify.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::{SigningKey, VerifyingKey};
use tokio::sync::OnceCell;

use crate::clock::UnixTime;
use crate::crypto::jwt::{KmsSigner, LocalSigner, TokenSigner, key_id_of};
use crate::crypto::keyed::SecretSealer;
use crate::error::StoreError;
use crate::storage::{KeyStore, SigningKeys};

/// How often an environment reads the key record again.
pub const REFRESH: Duration = Duration::from_secs(300);

/// The most often a token naming an unknown key makes an environment read the record.
pub const RELOAD_AT_MOST_EVERY: Duration = Duration::from_secs(30);

/// The least time between two rotations: access tokens live 5 minutes and environments refresh
/// every 5, so 15 minutes leaves every token of the previous key time to expire.
pub const MIN_ROTATION_SECS: i64 = 900;

/// Where a key is used: in process, stored sealed by the data key (`envelope`), or in KMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    Envelope,
    Kms,
}

impl KeyMode {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "envelope" => Ok(KeyMode::Envelope),
            "kms" => Ok(KeyMode::Kms),
            other => Err(format!("must be envelope or kms, not {other:?}")),
        }
    }
}

/// How access tokens are signed.
pub type TokenSigning = KeyMode;

/// The encryption context of a sealed signing key.
fn context(kid: &str) -> [(&'static str, &str); 2] {
    [("purpose", "token-signing"), ("kid", kid)]
}

fn encode_public(key: &VerifyingKey) -> String {
    URL_SAFE_NO_PAD.encode(key.to_encoded_point(false).as_bytes())
}

fn decode_public(text: &str) -> Result<VerifyingKey, StoreError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| StoreError::Corrupt("signing key record: public key not base64url".into()))?;
    VerifyingKey::from_sec1_bytes(&bytes)
        .map_err(|_| StoreError::Corrupt("signing key record: not a P-256 point".into()))
}

/// The keys an environment knows: the current one (which signs) first, then the previous one
/// (still accepted) during a rotation.
pub struct KeyRing {
    keys: Vec<(String, VerifyingKey)>,
    signer: OnceCell<Arc<dyn TokenSigner>>,
    /// Envelope mode: the current key, sealed, opened at the first signature.
    sealed: Option<(Arc<dyn SecretSealer>, String)>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|(kid, _)| kid.as_str()).collect();
        write!(f, "KeyRing({kids:?})")
    }
}

impl KeyRing {
    fn of_signer(signer: Arc<dyn TokenSigner>) -> KeyRing {
        KeyRing {
            keys: vec![(signer.key_id().to_owned(), *signer.verifying_key())],
            signer: OnceCell::new_with(Some(signer)),
            sealed: None,
        }
    }

    /// The key that signs now.
    pub fn current_kid(&self) -> &str {
        self.keys.first().map_or("", |(kid, _)| kid.as_str())
    }

    /// The key a token names, if it is one of ours.
    pub fn key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key)
    }

    /// Every key to publish in the JWKS, the current one first.
    pub fn published(&self) -> impl Iterator<Item = (&str, &VerifyingKey)> {
        self.keys.iter().map(|(kid, key)| (kid.as_str(), key))
    }

    /// The current key's signer (envelope mode: decrypted now, the first time).
    pub async fn signer(&self) -> Result<Arc<dyn TokenSigner>, StoreError> {
        self.signer
            .get_or_try_init(|| async {
                let Some((sealer, sealed)) = &self.sealed else {
                    return Err(StoreError::Unavailable("no signing key".into()));
                };
                let (kid, public) = self
                    .keys
                    .first()
                    .ok_or_else(|| StoreError::Unavailable("no signing key".into()))?;
                let secret = sealer.open(sealed, &context(kid)).await?;
                let key = SigningKey::from_slice(&secret).map_err(|_| {
                    StoreError::Corrupt("signing key record: not a P-256 scalar".into())
                })?;
                // The sealed key is bound to its kid by the encryption context; its public half
                // must be the one published under that kid.
                if key.verifying_key() != public {
                    return Err(StoreError::Corrupt(
                        "signing key record: private and public keys differ".into(),
                    ));
                }
                Ok(Arc::new(LocalSigner::from_key(key)) as Arc<dyn TokenSigner>)
            })
            .await
            .cloned()
    }
}

enum Source {
    Ready(Arc<dyn TokenSigner>),
    Kms {
        client: aws_sdk_kms::Client,
        key_id: String,
    },
    Envelope {
        keys: Arc<dyn KeyStore>,
        name: String,
        sealer: Arc<dyn SecretSealer>,
    },
    Unconfigured(&'static str),
}

/// The signing keys of one execution environment, loaded on first use and cached.
pub struct SignerSlot {
    source: Source,
    cache: tokio::sync::Mutex<Option<(Arc<KeyRing>, Instant)>>,
    last_forced: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for SignerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.source {
            Source::Ready(_) => "ready",
            Source::Kms { .. } => "kms",
            Source::Envelope { .. } => "envelope",
            Source::Unconfigured(_) => "unconfigured",
        };
        write!(f, "SignerSlot({mode})")
    }
}

impl SignerSlot {
    fn with(source: Source) -> Self {
        SignerSlot {
            source,
            cache: tokio::sync::Mutex::new(None),
            last_forced: Mutex::new(None),
        }
    }

    /// A signer in process (tests, in-process benchmarks).
    pub fn ready(signer: Arc<dyn TokenSigner>) -> Self {
        Self::with(Source::Ready(signer))
    }

    /// KMS mode: `Sign` with this asymmetric key for every token.
    pub fn kms(client: aws_sdk_kms::Client, key_id: &str) -> Self {
        Self::with(Source::Kms {
            client,
            key_id: key_id.to_owned(),
        })
    }

    /// Envelope mode: the key record `name` in `keys` (production:
    /// [`crate::storage::TOKEN_SIGNING_KEYS`]), its private key opened by `sealer`.
    pub fn envelope(keys: Arc<dyn KeyStore>, name: &str, sealer: Arc<dyn SecretSealer>) -> Self {
        Self::with(Source::Envelope {
            keys,
            name: name.to_owned(),
            sealer,
        })
    }

    /// Every use fails (503) naming the missing setting.
    pub fn unconfigured(setting: &'static str) -> Self {
        Self::with(Source::Unconfigured(setting))
    }

    /// The keys, from the cache while it is fresh.
    pub async fn ring(&self) -> Result<Arc<KeyRing>, StoreError> {
        self.load(false).await
    }

    /// The keys, read again if they do not include `kid` (a token of a key rotated in since
    /// this environment last read them), at most every [`RELOAD_AT_MOST_EVERY`].
    pub async fn ring_knowing(&self, kid: &str) -> Result<Arc<KeyRing>, StoreError> {
        let ring = self.load(false).await?;
        if ring.key(kid).is_some() || !matches!(self.source, Source::Envelope { .. }) {
            return Ok(ring);
        }
        let now = Instant::now();
        let due = match self.last_forced.lock() {
            Ok(mut last) => {
                let due = last.is_none_or(|at| now.duration_since(at) >= RELOAD_AT_MOST_EVERY);
                if due {
                    *last = Some(now);
                }
                due
            }
            Err(_) => false,
        };
        if due { self.load(true).await } else { Ok(ring) }
    }

    /// The current signer.
    pub async fn get(&self) -> Result<Arc<dyn TokenSigner>, StoreError> {
        self.ring().await?.signer().await
    }

    async fn load(&self, force: bool) -> Result<Arc<KeyRing>, StoreError> {
        let mut cache = self.cache.lock().await;
        if let Some((ring, at)) = cache.as_ref() {
            let fresh = !matches!(self.source, Source::Envelope { .. }) || at.elapsed() < REFRESH;
            if fresh && !force {
                return Ok(ring.clone());
            }
        }
        let ring = match &self.source {
            Source::Ready(signer) => Arc::new(KeyRing::of_signer(signer.clone())),
            Source::Kms { client, key_id } => {
                let signer = KmsSigner::connect(client.clone(), key_id).await?;
                Arc::new(KeyRing::of_signer(Arc::new(signer)))
            }
            Source::Envelope { keys, name, sealer } => {
                let record = keys.get_signing_keys(name).await?.ok_or_else(|| {
                    StoreError::Unavailable(
                        "no token-signing key yet: run `portcullis-admin rotate-signing-key`"
                            .into(),
                    )
                })?;
                let previous = cache.as_ref().map(|(ring, _)| ring.clone());
                Arc::new(ring_of(&record, sealer.clone(), previous.as_deref())?)
            }
            Source::Unconfigured(setting) => {
                return Err(StoreError::Unavailable(format!(
                    "{setting} is not configured"
                )));
            }
        };
        *cache = Some((ring.clone(), Instant::now()));
        Ok(ring)
    }
}

/// The ring of a key record; the decrypted signer is kept from `cached` when its key is still
/// the current one (no second `Decrypt`).
fn ring_of(
    record: &SigningKeys,
    sealer: Arc<dyn SecretSealer>,
    cached: Option<&KeyRing>,
) -> Result<KeyRing, StoreError> {
    let mut keys = vec![(
        record.current_kid.clone(),
        decode_public(&record.current_public)?,
    )];
    if let (Some(kid), Some(public)) = (&record.previous_kid, &record.previous_public) {
        keys.push((kid.clone(), decode_public(public)?));
    }
    let signer = cached
        .filter(|ring| ring.current_kid() == record.current_kid)
        .and_then(|ring| ring.signer.get().cloned());
    Ok(KeyRing {
        keys,
        signer: OnceCell::new_with(signer),
        sealed: Some((sealer, record.current_sealed.clone())),
    })
}

/// Why a rotation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("the last rotation was less than {MIN_ROTATION_SECS} seconds ago")]
    TooSoon,
    #[error("another rotation happened at the same time: run it again")]
    Concurrent,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Makes a new signing key, seals it, and makes it current (the old one stays published as the
/// previous key). With `only_if_missing`, does nothing when a key exists (first set-up).
pub async fn rotate(
    keys: &dyn KeyStore,
    name: &str,
    sealer: &dyn SecretSealer,
    now: UnixTime,
    only_if_missing: bool,
) -> Result<Option<SigningKeys>, RotationError> {
    let old = keys.get_signing_keys(name).await?;
    if !rotation_due(old.as_ref().map(|o| o.created_at), now, only_if_missing)? {
        return Ok(None);
    }
    let key = SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let public = *key.verifying_key();
    let kid = key_id_of(&public);
    let secret = zeroize::Zeroizing::new(key.to_bytes().to_vec());
    let sealed = sealer.seal(&secret, &context(&kid)).await?;
    let record = SigningKeys {
        version: old.as_ref().map_or(1, |o| o.version + 1),
        current_kid: kid,
        current_public: encode_public(&public),
        current_sealed: sealed,
        created_at: now,
        previous_kid: old.as_ref().map(|o| o.current_kid.clone()),
        previous_public: old.as_ref().map(|o| o.current_public.clone()),
    };
    let written = keys
        .put_signing_keys(name, &record, old.as_ref().map(|o| o.version))
        .await;
    rotation_written(written).map(|()| Some(record))
}

/// Whether a key record made at `created_at` (`None`: no record) is to be replaced now: `false`
/// when one exists and `only_if_missing` (first set-up), an error when the last rotation is too
/// recent. Shared by every key record's rotation ([`crate::code_keys::rotate`] too).
pub(crate) fn rotation_due(
    created_at: Option<UnixTime>,
    now: UnixTime,
    only_if_missing: bool,
) -> Result<bool, RotationError> {
    match created_at {
        None => Ok(true),
        Some(_) if only_if_missing => Ok(false),
        Some(at) if now.secs() - at.secs() < MIN_ROTATION_SECS => Err(RotationError::TooSoon),
        Some(_) => Ok(true),
    }
}

/// A rotation's conditional write, as the rotation's outcome: another rotation came first when
/// the record's version had moved.
pub(crate) fn rotation_written(written: Result<(), StoreError>) -> Result<(), RotationError> {
    match written {
        Ok(()) => Ok(()),
        Err(StoreError::ConditionFailed) => Err(RotationError::Concurrent),
        Err(err) => Err(err.into()),
    }
}
