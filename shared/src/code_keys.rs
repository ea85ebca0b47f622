//! The key one-time codes are stored under (SPEC §3: only a MAC of each code is kept), in one
//! of two modes (`PORTCULLIS_CODE_MAC`):
//!
//! - **`envelope`** (the default): HMAC-SHA-256 in process, with a 256-bit key stored only
//!   sealed by the KMS data key ([`crate::storage::MacKeys`], encryption context
//!   `purpose=code-mac, kid=<kid>`). An execution environment reads the record and opens the key
//!   once, at its first code — one `GetItem` and one KMS `Decrypt` per environment instead of
//!   one KMS `GenerateMac` per code sent and per code checked. The stored MAC names its key
//!   (`<kid>.<hex>`), and the record keeps the previous key sealed beside the current one, so a
//!   rotation leaves every code in flight valid. Until the first key exists (a deployment that
//!   has not run `portcullis-admin rotate-code-key` yet) codes are MACed by KMS as in `kms`
//!   mode, so a deployment of this version needs no step before it serves.
//! - **`kms`**: every MAC is a KMS `GenerateMac` with the HMAC key `PORTCULLIS_CODE_KEY_ID`,
//!   whose key never leaves KMS's HSMs; the stored MAC is the bare hex.
//!
//! What each protects against: a copy of the table (a backup, a leaked export) holds only MACs
//! in either mode, and six-digit codes cannot be found from them without the key. In envelope
//! mode the key is in the memory of the functions that send or check codes: code running there
//! (a compromised dependency) could copy it, and with it and a later copy of the table find the
//! codes pending then — codes that live 5 minutes. Rotating the key ends that.
//!
//! Recovery-code tags do not use this key: they are long-lived lookup keys, computed by KMS
//! under `PORTCULLIS_CODE_KEY_ID` (`deps.mac`), which never rotates under them.
//!
//! Rotation: `portcullis-admin rotate-code-key` makes a new key, seals it and replaces the
//! record (conditionally on the version it read), moving the current key to previous. Rotations
//! less than [`MIN_ROTATION_SECS`] apart are refused: a code MACed under the key two rotations
//! back could still be pending.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

use crate::clock::UnixTime;
use crate::crypto::keyed::{CodeMac, SecretSealer};
use crate::error::StoreError;
use crate::storage::{KeyStore, MacKeys};

/// How often an environment reads the key record again, the most often a MAC naming an unknown
/// key makes it read the record, and the least time between two rotations: those of the
/// signing keys. For codes, a code lives 5 minutes by default (`PORTCULLIS_CODE_TTL_MINUTES`)
/// and environments refresh every 5, so 15 minutes leaves every code of the previous key time
/// to expire before that key is dropped. A code older than the rotation before last (only with
/// a code life set above 10 minutes) no longer verifies: it is answered as an expired code is.
pub use crate::signing::{MIN_ROTATION_SECS, REFRESH, RELOAD_AT_MOST_EVERY, RotationError};
use crate::signing::{rotation_due, rotation_written};

/// How one-time codes are MACed.
pub type CodeMacMode = crate::signing::KeyMode;

/// The encryption context of a sealed code key.
fn context(kid: &str) -> [(&'static str, &str); 2] {
    [("purpose", "code-mac"), ("kid", kid)]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One key of the record: sealed, opened at its first use.
struct SealedKey {
    kid: String,
    sealed: String,
    opened: OnceCell<Zeroizing<Vec<u8>>>,
}

impl SealedKey {
    fn new(kid: &str, sealed: &str) -> Self {
        SealedKey {
            kid: kid.to_owned(),
            sealed: sealed.to_owned(),
            opened: OnceCell::new(),
        }
    }

    async fn mac(&self, sealer: &dyn SecretSealer, message: &[u8]) -> Result<String, StoreError> {
        let key = self
            .opened
            .get_or_try_init(|| async {
                let key = sealer.open(&self.sealed, &context(&self.kid)).await?;
                if key.len() != 32 {
                    return Err(StoreError::Corrupt(
                        "code key record: the key is not 32 bytes".into(),
                    ));
                }
                Ok(key)
            })
            .await?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key)
            .map_err(|_| StoreError::Corrupt("code key record: bad HMAC key".into()))?;
        mac.update(message);
        Ok(format!(
            "{}.{}",
            self.kid,
            hex(&mac.finalize().into_bytes())
        ))
    }
}

/// The keys an environment knows: the current one (which MACs new codes) and the previous one.
/// Empty when no record exists yet.
struct Ring {
    current: Option<SealedKey>,
    previous: Option<SealedKey>,
}

impl Ring {
    fn key(&self, kid: &str) -> Option<&SealedKey> {
        [&self.current, &self.previous]
            .into_iter()
            .flatten()
            .find(|key| key.kid == kid)
    }
}

enum Source {
    Kms,
    Envelope {
        keys: Arc<dyn KeyStore>,
        name: String,
        sealer: Arc<dyn SecretSealer>,
    },
}

/// The code keys of one execution environment, loaded on first use and cached.
pub struct CodeKeys {
    source: Source,
    /// KMS `GenerateMac`: `kms` mode, and envelope mode before the first key or for a MAC
    /// stored without a key ID.
    kms: Arc<dyn CodeMac>,
    cache: tokio::sync::Mutex<Option<(Arc<Ring>, Instant)>>,
    last_forced: Mutex<Option<Instant>>,
    /// How long the keys read are used before the record is read again ([`REFRESH`]).
    refresh: std::time::Duration,
}

impl std::fmt::Debug for CodeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.source {
            Source::Kms => "kms",
            Source::Envelope { .. } => "envelope",
        };
        write!(f, "CodeKeys({mode})")
    }
}

/// A code's MAC as it is stored, computed for a code being sent or checked.
pub enum Tagged {
    Mac(String),
    /// The stored MAC names a key this environment does not have (rotated out two rotations
    /// ago, or `kms` mode meeting an envelope MAC): nothing can match it.
    UnknownKey,
}

impl CodeKeys {
    fn with(source: Source, kms: Arc<dyn CodeMac>) -> Self {
        CodeKeys {
            source,
            kms,
            cache: tokio::sync::Mutex::new(None),
            last_forced: Mutex::new(None),
            refresh: REFRESH,
        }
    }

    /// Reads the key record again after `every` instead of [`REFRESH`].
    pub fn refreshing_every(mut self, every: std::time::Duration) -> Self {
        self.refresh = every;
        self
    }

    /// `kms` mode: every MAC by `kms` (tests and in-process benchmarks pass a local key).
    pub fn kms(kms: Arc<dyn CodeMac>) -> Self {
        Self::with(Source::Kms, kms)
    }

    /// Envelope mode: the key record `name` in `keys` (production:
    /// [`crate::storage::CODE_MAC_KEYS`]), its keys opened by `sealer`; `kms` before the first
    /// key exists and for MACs stored without a key ID.
    pub fn envelope(
        keys: Arc<dyn KeyStore>,
        name: &str,
        sealer: Arc<dyn SecretSealer>,
        kms: Arc<dyn CodeMac>,
    ) -> Self {
        Self::with(
            Source::Envelope {
                keys,
                name: name.to_owned(),
                sealer,
            },
            kms,
        )
    }

    async fn kms_mac(&self, message: &[u8]) -> Result<String, StoreError> {
        Ok(hex(&self.kms.mac(message).await?))
    }

    /// The MAC to store for a new code: under the current key.
    pub async fn mac(&self, message: &[u8]) -> Result<String, StoreError> {
        let Source::Envelope { sealer, .. } = &self.source else {
            return self.kms_mac(message).await;
        };
        match &self.ring(false).await?.current {
            Some(key) => key.mac(sealer.as_ref(), message).await,
            None => self.kms_mac(message).await,
        }
    }

    /// The MAC `message` would have under the key `stored` (a MAC as stored) names, to compare
    /// with `stored`.
    pub async fn mac_as(&self, stored: &str, message: &[u8]) -> Result<Tagged, StoreError> {
        let Some((kid, _)) = stored.split_once('.') else {
            return Ok(Tagged::Mac(self.kms_mac(message).await?));
        };
        let Source::Envelope { sealer, .. } = &self.source else {
            return Ok(Tagged::UnknownKey);
        };
        let mut ring = self.ring(false).await?;
        if ring.key(kid).is_none() && self.reload_due() {
            ring = self.ring(true).await?;
        }
        match ring.key(kid) {
            Some(key) => Ok(Tagged::Mac(key.mac(sealer.as_ref(), message).await?)),
            None => {
                // Not an attacker's doing (the server stored the MAC): a code older than the
                // rotation before last, or a reload refused by the 30-second bound. The
                // answer counts as wrong; this event says why.
                tracing::warn!(
                    event = "code_key_unknown",
                    kid,
                    "a pending code's MAC names a code key this environment does not have"
                );
                Ok(Tagged::UnknownKey)
            }
        }
    }

    fn reload_due(&self) -> bool {
        let now = Instant::now();
        match self.last_forced.lock() {
            Ok(mut last) => {
                let due = last.is_none_or(|at| now.duration_since(at) >= RELOAD_AT_MOST_EVERY);
                if due {
                    *last = Some(now);
                }
                due
            }
            Err(_) => false,
        }
    }

    async fn ring(&self, force: bool) -> Result<Arc<Ring>, StoreError> {
        let Source::Envelope { keys, name, .. } = &self.source else {
            return Err(StoreError::Unavailable("kms mode has no key record".into()));
        };
        let mut cache = self.cache.lock().await;
        if let Some((ring, at)) = cache.as_ref()
            && at.elapsed() < self.refresh
            && !force
        {
            return Ok(ring.clone());
        }
        let cached = cache.as_ref().map(|(ring, _)| ring.clone());
        let record = match (keys.get_mac_keys(name).await, &cached) {
            (Ok(record), _) => record,
            // A periodic refresh that fails keeps the keys read before (the next call reads
            // again): a blip in the key store must not fail a send, or a check whose try is
            // already taken, that the key in memory can make.
            // A forced reload (a key ID this environment lacks) reports the failure.
            (Err(err), Some(ring)) if !force => {
                tracing::warn!(
                    error = %err,
                    event = "code_key_refresh_failed",
                    "code key record not read: the keys already in memory are used"
                );
                return Ok(ring.clone());
            }
            (Err(err), _) => return Err(err),
        };
        // A key already opened stays open (no second `Decrypt`) while the record still holds it.
        let keep = |kid: &str, sealed: &str| {
            let key = SealedKey::new(kid, sealed);
            if let Some(opened) = cached
                .as_deref()
                .and_then(|ring| ring.key(kid))
                .filter(|old| old.sealed == sealed)
                .and_then(|old| old.opened.get())
            {
                let _ = key.opened.set(opened.clone());
            }
            key
        };
        let ring = Arc::new(match &record {
            None => Ring {
                current: None,
                previous: None,
            },
            Some(record) => Ring {
                current: Some(keep(&record.current_kid, &record.current_sealed)),
                previous: record
                    .previous_kid
                    .as_deref()
                    .zip(record.previous_sealed.as_deref())
                    .map(|(kid, sealed)| keep(kid, sealed)),
            },
        });
        if record.is_none() {
            tracing::warn!(
                event = "code_key_missing",
                "no code key yet: codes are MACed by KMS until `portcullis-admin rotate-code-key`"
            );
        }
        *cache = Some((ring.clone(), Instant::now()));
        Ok(ring)
    }
}

/// Makes a new code key, seals it, and makes it current (the old one becomes the previous key,
/// and the one before it is dropped). With `only_if_missing`, does nothing when a key exists.
pub async fn rotate(
    keys: &dyn KeyStore,
    name: &str,
    sealer: &dyn SecretSealer,
    now: UnixTime,
    only_if_missing: bool,
) -> Result<Option<MacKeys>, RotationError> {
    let old = keys.get_mac_keys(name).await?;
    if !rotation_due(old.as_ref().map(|o| o.created_at), now, only_if_missing)? {
        return Ok(None);
    }
    let secret = Zeroizing::new(crate::crypto::random_bytes::<32>());
    // The key ID: random, short, and never a character of the `<kid>.<hex>` separator.
    let kid = hex(&crate::crypto::random_bytes::<8>());
    let sealed = sealer.seal(secret.as_ref(), &context(&kid)).await?;
    let record = MacKeys {
        version: old.as_ref().map_or(1, |o| o.version + 1),
        current_kid: kid,
        current_sealed: sealed,
        created_at: now,
        previous_kid: old.as_ref().map(|o| o.current_kid.clone()),
        previous_sealed: old.as_ref().map(|o| o.current_sealed.clone()),
    };
    let written = keys
        .put_mac_keys(name, &record, old.as_ref().map(|o| o.version))
        .await;
    rotation_written(written).map(|()| Some(record))
}
