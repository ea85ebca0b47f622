//! The envelope mode of the one-time-code MAC key (`portcullis::code_keys`) on both adapters:
//! the key is stored only sealed, opened once per environment, named in every MAC it makes,
//! rotated with codes in flight still verifying, and bound to its key ID; before the first key
//! (and in `kms` mode) every MAC is the KMS key's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use common::{T0, all_stores, unique};
use portcullis::code_keys::{self, CodeKeys, RotationError, Tagged};
use portcullis::crypto::keyed::{CodeMac, Context, LocalCodeMac, MemorySealer, SecretSealer};
use portcullis::error::StoreError;
use zeroize::Zeroizing;

/// A sealer that counts how often a key is opened (KMS `Decrypt` calls).
#[derive(Debug, Default)]
struct Counting {
    inner: MemorySealer,
    opens: AtomicUsize,
}

#[async_trait]
impl SecretSealer for Counting {
    async fn seal(&self, plaintext: &[u8], context: Context<'_>) -> Result<String, StoreError> {
        self.inner.seal(plaintext, context).await
    }

    async fn open(
        &self,
        sealed: &str,
        context: Context<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        self.inner.open(sealed, context).await
    }
}

fn stored(tag: Tagged) -> Option<String> {
    match tag {
        Tagged::Mac(mac) => Some(mac),
        Tagged::UnknownKey => None,
    }
}

const CODE: &[u8] = b"portcullis-code-v1\0challenge\0factor\x00123456";
const OTHER: &[u8] = b"portcullis-code-v1\0challenge\0factor\x00123457";

#[tokio::test]
async fn before_the_first_key_codes_are_macd_by_kms_and_after_it_in_process_under_a_named_key() {
    for (name, stores) in all_stores().await {
        let record = unique("code-mac");
        let sealer = Arc::new(Counting::default());
        let kms: Arc<dyn CodeMac> = Arc::new(LocalCodeMac::random());
        let slot = CodeKeys::envelope(stores.keys.clone(), &record, sealer.clone(), kms.clone());
        // No record yet: the KMS key's MAC, bare hex, as `kms` mode stores it.
        let early = slot.mac(CODE).await.unwrap();
        let kms_hex: String = kms
            .mac(CODE)
            .await
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(early, kms_hex, "{name}");

        let made = code_keys::rotate(stores.keys.as_ref(), &record, sealer.as_ref(), T0, false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((made.version, made.previous_kid), (1, None), "{name}");
        // A new environment (the first one's cache holds the empty record for 5 minutes).
        let env = CodeKeys::envelope(stores.keys.clone(), &record, sealer.clone(), kms.clone());
        let tag = env.mac(CODE).await.unwrap();
        let (kid, hex) = tag.split_once('.').unwrap();
        assert_eq!(kid, made.current_kid, "{name}: the MAC names its key");
        assert_eq!(hex.len(), 64, "{name}: HMAC-SHA-256");
        assert_ne!(hex, kms_hex, "{name}: not the KMS key's MAC");
        assert!(
            !made.current_sealed.contains(hex),
            "{name}: the record holds no MAC material in clear"
        );
        // Checking: the same message gives the stored MAC, another does not.
        assert_eq!(
            stored(env.mac_as(&tag, CODE).await.unwrap()),
            Some(tag.clone())
        );
        assert_ne!(
            stored(env.mac_as(&tag, OTHER).await.unwrap()),
            Some(tag.clone())
        );
        // A code stored before the first key (or by `kms` mode) still checks, through KMS.
        assert_eq!(
            stored(env.mac_as(&early, CODE).await.unwrap()),
            Some(early.clone()),
            "{name}"
        );
        // Opened once for the environment, however many codes.
        for _ in 0..5 {
            env.mac(OTHER).await.unwrap();
        }
        assert_eq!(sealer.opens.load(Ordering::SeqCst), 1, "{name}");
    }
}

#[tokio::test]
async fn a_rotation_keeps_codes_in_flight_valid_until_the_next_one() {
    for (name, stores) in all_stores().await {
        let record = unique("code-mac");
        let sealer: Arc<dyn SecretSealer> = Arc::new(MemorySealer::default());
        let kms: Arc<dyn CodeMac> = Arc::new(LocalCodeMac::random());
        let env = |keys: &portcullis::storage::Stores| {
            CodeKeys::envelope(keys.keys.clone(), &record, sealer.clone(), kms.clone())
        };
        code_keys::rotate(stores.keys.as_ref(), &record, sealer.as_ref(), T0, false)
            .await
            .unwrap();
        let old = env(&stores);
        let before = old.mac(CODE).await.unwrap();

        assert!(matches!(
            code_keys::rotate(
                stores.keys.as_ref(),
                &record,
                sealer.as_ref(),
                T0.plus_secs(60),
                false
            )
            .await,
            Err(RotationError::TooSoon)
        ));
        assert!(
            code_keys::rotate(stores.keys.as_ref(), &record, sealer.as_ref(), T0, true)
                .await
                .unwrap()
                .is_none(),
            "{name}: --if-missing leaves a key alone"
        );
        let second = code_keys::rotate(
            stores.keys.as_ref(),
            &record,
            sealer.as_ref(),
            T0.plus_secs(code_keys::MIN_ROTATION_SECS),
            false,
        )
        .await
        .unwrap()
        .unwrap();
        // An environment started after the rotation MACs under the new key and still checks a
        // code sent before it.
        let new = env(&stores);
        let after = new.mac(CODE).await.unwrap();
        assert!(
            after.starts_with(&format!("{}.", second.current_kid)),
            "{name}"
        );
        assert_ne!(after, before, "{name}");
        assert_eq!(
            stored(new.mac_as(&before, CODE).await.unwrap()),
            Some(before.clone())
        );
        // The environment from before the rotation meets a MAC of a key it does not know yet:
        // it reads the record again at once.
        assert_eq!(
            stored(old.mac_as(&after, CODE).await.unwrap()),
            Some(after.clone()),
            "{name}"
        );

        // The next rotation drops the first key: its codes (long expired) match nothing.
        code_keys::rotate(
            stores.keys.as_ref(),
            &record,
            sealer.as_ref(),
            T0.plus_secs(2 * code_keys::MIN_ROTATION_SECS),
            false,
        )
        .await
        .unwrap();
        let newest = env(&stores);
        assert!(
            matches!(
                newest.mac_as(&before, CODE).await.unwrap(),
                Tagged::UnknownKey
            ),
            "{name}"
        );
        assert_eq!(
            stored(newest.mac_as(&after, CODE).await.unwrap()),
            Some(after)
        );
        // A MAC naming a key that never existed matches nothing either.
        assert!(matches!(
            newest
                .mac_as(&format!("0000000000000000.{}", "0".repeat(64)), CODE)
                .await
                .unwrap(),
            Tagged::UnknownKey
        ));
    }
}

#[tokio::test]
async fn two_rotations_at_once_make_one_key() {
    for (name, stores) in all_stores().await {
        let record = unique("code-mac");
        let sealer = MemorySealer::default();
        let (a, b) = tokio::join!(
            code_keys::rotate(stores.keys.as_ref(), &record, &sealer, T0, false),
            code_keys::rotate(stores.keys.as_ref(), &record, &sealer, T0, false),
        );
        assert_eq!(
            [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
            1,
            "{name}"
        );
        assert!(matches!(
            if a.is_ok() { b } else { a },
            Err(RotationError::Concurrent | RotationError::TooSoon)
        ));
    }
}

#[tokio::test]
async fn a_sealed_key_put_under_another_key_id_does_not_open() {
    for (name, stores) in all_stores().await {
        let sealer: Arc<dyn SecretSealer> = Arc::new(MemorySealer::default());
        let kms: Arc<dyn CodeMac> = Arc::new(LocalCodeMac::random());
        let (one, two) = (unique("code-mac"), unique("code-mac"));
        for record in [&one, &two] {
            code_keys::rotate(stores.keys.as_ref(), record, sealer.as_ref(), T0, false)
                .await
                .unwrap();
        }
        // Someone with write access to the table moves one record's sealed key under the
        // other's key ID.
        let a = stores.keys.get_mac_keys(&one).await.unwrap().unwrap();
        let b = stores.keys.get_mac_keys(&two).await.unwrap().unwrap();
        let swapped = portcullis::storage::MacKeys {
            version: a.version + 1,
            current_sealed: b.current_sealed.clone(),
            ..a.clone()
        };
        stores
            .keys
            .put_mac_keys(&one, &swapped, Some(a.version))
            .await
            .unwrap();
        let env = CodeKeys::envelope(stores.keys.clone(), &one, sealer.clone(), kms);
        assert!(
            env.mac(CODE).await.is_err(),
            "{name}: the sealed key is bound to its kid (encryption context)"
        );
    }
}

#[tokio::test]
async fn kms_mode_macs_with_kms_and_never_matches_an_envelope_mac() {
    let kms: Arc<dyn CodeMac> = Arc::new(LocalCodeMac::random());
    let slot = CodeKeys::kms(kms.clone());
    let mac = slot.mac(CODE).await.unwrap();
    assert!(!mac.contains('.'));
    assert_eq!(stored(slot.mac_as(&mac, CODE).await.unwrap()), Some(mac));
    assert!(matches!(
        slot.mac_as(&format!("abcdef0123456789.{}", "0".repeat(64)), CODE)
            .await
            .unwrap(),
        Tagged::UnknownKey
    ));
}

/// A key store whose reads fail while `down` is set (a blip in DynamoDB).
struct Flaky {
    inner: Arc<dyn portcullis::storage::KeyStore>,
    down: std::sync::atomic::AtomicBool,
}

impl Flaky {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("key store down".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl portcullis::storage::KeyStore for Flaky {
    async fn get_signing_keys(
        &self,
        name: &str,
    ) -> Result<Option<portcullis::storage::SigningKeys>, StoreError> {
        self.check()?;
        self.inner.get_signing_keys(name).await
    }

    async fn put_signing_keys(
        &self,
        name: &str,
        keys: &portcullis::storage::SigningKeys,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        self.inner
            .put_signing_keys(name, keys, expected_version)
            .await
    }

    async fn get_mac_keys(
        &self,
        name: &str,
    ) -> Result<Option<portcullis::storage::MacKeys>, StoreError> {
        self.check()?;
        self.inner.get_mac_keys(name).await
    }

    async fn put_mac_keys(
        &self,
        name: &str,
        keys: &portcullis::storage::MacKeys,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        self.inner.put_mac_keys(name, keys, expected_version).await
    }
}

#[tokio::test]
async fn a_refresh_that_fails_keeps_the_keys_in_memory_but_a_first_read_or_forced_reload_fails() {
    for (name, stores) in all_stores().await {
        let record = unique("code-mac");
        let sealer = Arc::new(Counting::default());
        let kms: Arc<dyn CodeMac> = Arc::new(LocalCodeMac::random());
        code_keys::rotate(stores.keys.as_ref(), &record, sealer.as_ref(), T0, false)
            .await
            .unwrap();
        let flaky = Arc::new(Flaky {
            inner: stores.keys.clone(),
            down: Default::default(),
        });
        // Every call is a refresh (no caching): each one reads the record.
        let env = CodeKeys::envelope(flaky.clone(), &record, sealer.clone(), kms.clone())
            .refreshing_every(std::time::Duration::ZERO);
        let before = env.mac(CODE).await.unwrap();
        flaky.down.store(true, Ordering::SeqCst);
        // The store is down: the keys read before still make and check MACs.
        let during = env.mac(CODE).await.unwrap();
        assert_eq!(during, before, "{name}");
        assert_eq!(
            stored(env.mac_as(&before, CODE).await.unwrap()),
            Some(before.clone())
        );
        // A key ID this environment lacks forces a reload, whose failure is reported.
        let unknown = format!("abcdef0123456789.{}", "0".repeat(64));
        assert!(env.mac_as(&unknown, CODE).await.is_err(), "{name}");
        // An environment that never read the record has nothing to fall back on.
        let fresh = CodeKeys::envelope(flaky.clone(), &record, sealer.clone(), kms);
        assert!(fresh.mac(CODE).await.is_err(), "{name}");
        flaky.down.store(false, Ordering::SeqCst);
        assert_eq!(fresh.mac(CODE).await.unwrap(), before, "{name}");
    }
}
