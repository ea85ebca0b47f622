//! The envelope mode of token signing (SPEC §6, `portcullis::signing`) on both adapters: the
//! key is stored only sealed, opened once, rotated with the previous key still published and
//! accepted, and a record that does not hold together is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{T0, all_stores, unique};
use portcullis::crypto::jwt::{self, AccessClaims, Expectations};
use portcullis::crypto::keyed::{MemorySealer, SecretSealer};
use portcullis::error::StoreError;
use portcullis::signing::{self, RotationError, SignerSlot};

fn claims() -> AccessClaims {
    AccessClaims {
        iss: "https://issuer.example".into(),
        sub: "someone".into(),
        aud: "portcullis".into(),
        iat: 0,
        exp: i64::MAX,
        auth_time: 0,
        amr: vec!["pwd".into()],
        acr: jwt::ACR_MFA.into(),
        sid: "s".into(),
        jti: "j".into(),
        roles: vec![],
        token_use: "access".into(),
    }
}

async fn verifies(slot: &SignerSlot, token: &str) -> bool {
    let kid = jwt::kid_of(token).unwrap();
    let ring = slot.ring_knowing(&kid).await.unwrap();
    let Some(key) = ring.key(&kid) else {
        return false;
    };
    jwt::verify(
        token,
        &Expectations {
            key,
            kid: &kid,
            issuer: "https://issuer.example",
            audience: "portcullis",
            now: 1,
        },
    )
    .is_ok()
}

#[tokio::test]
async fn a_sealed_key_signs_and_a_rotation_keeps_the_previous_key_accepted() {
    for (name, stores) in all_stores().await {
        let record = unique("keys");
        let sealer: Arc<dyn SecretSealer> = Arc::new(MemorySealer::default());
        let slot = SignerSlot::envelope(stores.keys.clone(), &record, sealer.clone());
        assert!(
            matches!(slot.get().await, Err(StoreError::Unavailable(_))),
            "{name}: no key yet is a 503, not a panic"
        );
        let first = signing::rotate(stores.keys.as_ref(), &record, sealer.as_ref(), T0, false)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.version, 1);
        assert_eq!(first.previous_kid, None);
        // Only `--if-missing` set-up calls may run again without effect.
        assert!(
            signing::rotate(stores.keys.as_ref(), &record, sealer.as_ref(), T0, true)
                .await
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            signing::rotate(
                stores.keys.as_ref(),
                &record,
                sealer.as_ref(),
                T0.plus_secs(60),
                false
            )
            .await,
            Err(RotationError::TooSoon)
        ));
        let stored = stores
            .keys
            .get_signing_keys(&record)
            .await
            .unwrap()
            .unwrap();
        assert!(
            !stored.current_sealed.is_empty() && stored.current_sealed != stored.current_public,
            "{name}"
        );

        let signer = slot.get().await.unwrap();
        assert_eq!(signer.key_id(), first.current_kid, "{name}");
        let old_token = jwt::issue(signer.as_ref(), &claims()).await.unwrap();
        assert!(verifies(&slot, &old_token).await, "{name}");

        let second = signing::rotate(
            stores.keys.as_ref(),
            &record,
            sealer.as_ref(),
            T0.plus_secs(signing::MIN_ROTATION_SECS),
            false,
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(
            second.previous_kid.as_deref(),
            Some(first.current_kid.as_str())
        );

        // Another environment (a fresh slot) signs with the new key and accepts both.
        let fresh = SignerSlot::envelope(stores.keys.clone(), &record, sealer.clone());
        let new_token = jwt::issue(fresh.get().await.unwrap().as_ref(), &claims())
            .await
            .unwrap();
        assert_eq!(jwt::kid_of(&new_token).unwrap(), second.current_kid);
        assert!(
            verifies(&fresh, &old_token).await,
            "{name}: the previous key still verifies"
        );
        assert!(verifies(&fresh, &new_token).await);
        let published: Vec<String> = fresh
            .ring()
            .await
            .unwrap()
            .published()
            .map(|(kid, _)| kid.to_owned())
            .collect();
        assert_eq!(
            published,
            [second.current_kid.clone(), first.current_kid.clone()]
        );
        // The environment that read the keys before the rotation learns the new one from the
        // first token that names it.
        assert!(
            verifies(&slot, &new_token).await,
            "{name}: reloaded for an unknown kid"
        );
        // A token of a key that is not ours never verifies.
        let stranger = portcullis::crypto::jwt::LocalSigner::random();
        let forged = jwt::issue(&stranger, &claims()).await.unwrap();
        assert!(!verifies(&fresh, &forged).await, "{name}");
    }
}

#[tokio::test]
async fn two_rotations_at_once_make_one_key() {
    for (name, stores) in all_stores().await {
        let record = unique("keys");
        let sealer = MemorySealer::default();
        let (a, b) = tokio::join!(
            signing::rotate(stores.keys.as_ref(), &record, &sealer, T0, false),
            signing::rotate(stores.keys.as_ref(), &record, &sealer, T0, false),
        );
        let made = [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count();
        assert_eq!(made, 1, "{name}");
        // The other saw the first's record (too soon) or lost the conditional write.
        assert!(matches!(
            if a.is_ok() { b } else { a },
            Err(RotationError::Concurrent | RotationError::TooSoon)
        ));
    }
}

#[tokio::test]
async fn a_record_whose_parts_do_not_belong_together_is_refused() {
    for (name, stores) in all_stores().await {
        let sealer: Arc<dyn SecretSealer> = Arc::new(MemorySealer::default());
        let (one, two) = (unique("keys"), unique("keys"));
        for record in [&one, &two] {
            signing::rotate(stores.keys.as_ref(), record, sealer.as_ref(), T0, false)
                .await
                .unwrap();
        }
        // Someone with write access to the table puts one key's public half (and kid) beside
        // another's sealed private half.
        let a = stores.keys.get_signing_keys(&one).await.unwrap().unwrap();
        let b = stores.keys.get_signing_keys(&two).await.unwrap().unwrap();
        let swapped = portcullis::storage::SigningKeys {
            version: a.version + 1,
            current_sealed: b.current_sealed.clone(),
            ..a.clone()
        };
        stores
            .keys
            .put_signing_keys(&one, &swapped, Some(a.version))
            .await
            .unwrap();
        let slot = SignerSlot::envelope(stores.keys.clone(), &one, sealer.clone());
        assert!(
            slot.get().await.is_err(),
            "{name}: the sealed key is bound to its kid (encryption context)"
        );
    }
}
