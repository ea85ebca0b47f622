//! The key adapters (KMS on the emulator, and the in-process ones used by unit tests) pass the
//! same checks: MACs are deterministic per key and 256-bit, sealed secrets open only in their
//! encryption context, signatures verify as ES256 JWTs with the published key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use portcullis::crypto::jwt::{
    self, AccessClaims, Expectations, KmsSigner, LocalSigner, TokenSigner,
};
use portcullis::crypto::keyed::{
    CodeMac, KmsCodeMac, KmsSealer, LocalCodeMac, MemorySealer, SecretSealer,
};

struct Keys {
    name: &'static str,
    mac: Arc<dyn CodeMac>,
    sealer: Arc<dyn SecretSealer>,
    signer: Arc<dyn TokenSigner>,
}

async fn all_keys() -> Vec<Keys> {
    let mut keys = vec![Keys {
        name: "in-process",
        mac: Arc::new(LocalCodeMac::random()),
        sealer: Arc::new(MemorySealer::default()),
        signer: Arc::new(LocalSigner::random()),
    }];
    if common::emulator_table().is_some() {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let kms = aws_sdk_kms::Client::new(&sdk);
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set with the emulator"))
        };
        keys.push(Keys {
            name: "kms",
            mac: Arc::new(KmsCodeMac::new(kms.clone(), &var("PORTCULLIS_CODE_KEY_ID"))),
            sealer: Arc::new(KmsSealer::new(kms.clone(), &var("PORTCULLIS_DATA_KEY_ID"))),
            signer: Arc::new(
                KmsSigner::connect(kms, &var("PORTCULLIS_SIGNING_KEY_ID"))
                    .await
                    .unwrap(),
            ),
        });
    }
    keys
}

#[tokio::test]
async fn macs_are_deterministic_256_bit_and_message_dependent() {
    for k in all_keys().await {
        let a = k.mac.mac(b"portcullis-code-v1 123456").await.unwrap();
        assert_eq!(a.len(), 32, "{}", k.name);
        assert_eq!(
            a,
            k.mac.mac(b"portcullis-code-v1 123456").await.unwrap(),
            "{}",
            k.name
        );
        assert_ne!(
            a,
            k.mac.mac(b"portcullis-code-v1 123457").await.unwrap(),
            "{}",
            k.name
        );
    }
}

#[tokio::test]
async fn sealed_secrets_open_only_in_their_context() {
    for k in all_keys().await {
        let ctx = [("user_id", "alice"), ("factor_id", "f_1")];
        let sealed = k.sealer.seal(b"twenty-byte-secret!!", &ctx).await.unwrap();
        assert!(!sealed.contains("twenty"), "{}", k.name);
        assert_eq!(
            k.sealer.open(&sealed, &ctx).await.unwrap().as_slice(),
            b"twenty-byte-secret!!",
            "{}",
            k.name
        );
        for (other, what) in [
            ([("user_id", "mallory"), ("factor_id", "f_1")], "other user"),
            ([("user_id", "alice"), ("factor_id", "f_2")], "other factor"),
        ] {
            assert!(
                k.sealer.open(&sealed, &other).await.is_err(),
                "{}: {what}",
                k.name
            );
        }
    }
}

#[tokio::test]
async fn tokens_signed_by_the_key_verify_with_its_published_jwk() {
    for k in all_keys().await {
        let claims = AccessClaims {
            iss: "https://auth.example".into(),
            sub: "alice".into(),
            aud: "portcullis".into(),
            iat: 1,
            exp: 1000,
            auth_time: 1,
            amr: vec!["pwd".into(), "sms".into(), "mfa".into()],
            acr: jwt::ACR_MFA.into(),
            sid: "s".into(),
            jti: "j".into(),
            roles: vec![],
            token_use: "access".into(),
        };
        let token = jwt::issue(k.signer.as_ref(), &claims).await.unwrap();
        // Rebuild the key from the JWK alone, as another service would.
        let jwk = jwt::jwk(k.signer.verifying_key(), k.signer.key_id());
        let decode = |f: &str| {
            base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                jwk[f].as_str().unwrap(),
            )
            .unwrap()
        };
        let mut sec1 = vec![4u8];
        sec1.extend(decode("x"));
        sec1.extend(decode("y"));
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
        let expect = Expectations {
            key: &key,
            kid: k.signer.key_id(),
            issuer: "https://auth.example",
            audience: "portcullis",
            now: 2,
        };
        assert_eq!(jwt::verify(&token, &expect).unwrap(), claims, "{}", k.name);
    }
}
