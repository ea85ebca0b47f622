//! WebAuthn responses from the browser (untrusted JSON): `RegistrationResponseJSON` and
//! `AuthenticationResponseJSON` parsing, then the finish steps, which parse the client data,
//! the attestation object (CBOR), the authenticator data and the COSE key, against real states.
//!
//! Invariants: nothing panics; nothing verifies (every state's challenge is fresh and random,
//! so no input can have been signed for it); every refusal is the client's (one public
//! `invalid_credentials`), never a server fault; a refusal's message never repeats a string
//! the client sent.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portcullis::UnixTime;
use portcullis::error::ApiError;
use portcullis::passkey::{
    AssertionResponse, PasskeyConfig, PasskeyCredential, PasskeyError, PasskeyUser,
    RegistrationResponse, UserHandle, finish_authentication, finish_registration,
    start_authentication, start_registration,
};
use portcullis_soft_authenticator::SoftAuthenticator;

const NOW: UnixTime = UnixTime(1_800_000_000);

struct Fixture {
    config: PasskeyConfig,
    handle: UserHandle,
    stored: PasskeyCredential,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let config = PasskeyConfig {
        rp_id: "localhost".into(),
        rp_name: "Portcullis".into(),
        origins: vec!["http://localhost:3000".into()],
    };
    let handle = UserHandle::from_bytes(vec![1; 32]).expect("a user handle");
    let user = PasskeyUser {
        handle: &handle,
        name: "alice@example.com",
        display_name: "Alice",
    };
    let (options, state) = start_registration(&config, &user, &[], NOW).expect("starts");
    let mut authenticator = SoftAuthenticator::new("http://localhost:3000");
    let response = authenticator.register(&options).expect("registers");
    let response = RegistrationResponse::parse(&serde_json::to_vec(&response).expect("serialises"))
        .expect("parses");
    let stored = finish_registration(&config, state, &response, NOW).expect("verifies");
    Fixture {
        config,
        handle,
        stored,
    }
});

fn refusal_is_clean(err: &PasskeyError, sent: &str) {
    assert!(!err.is_server_fault(), "{err:?}");
    assert_eq!(err.public_error(), ApiError::InvalidCredentials);
    // Words the refusals say themselves ("malformed response: registration response: …") are
    // taken out of the message first: an input that contains one, or a piece of one
    // ("authenticati"), is not being echoed (both found by the fuzzer, which learns its
    // dictionary from the messages).
    const OWN_WORDS: [&str; 5] = [
        "registration",
        "authentication",
        "configuration",
        "verification",
        "authenticator",
    ];
    let message = err.to_string();
    let scrubbed = OWN_WORDS
        .iter()
        .fold(message.clone(), |text, own| text.replace(own, " "));
    for word in sent.split(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-') {
        if word.len() >= 12 {
            assert!(
                !scrubbed.contains(word),
                "the error repeats {word:?}: {message}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let f = &*FIXTURE;
    let sent = String::from_utf8_lossy(data);

    match RegistrationResponse::parse(data) {
        Err(err) => refusal_is_clean(&err, &sent),
        Ok(response) => {
            let user = PasskeyUser {
                handle: &f.handle,
                name: "alice@example.com",
                display_name: "Alice",
            };
            let (_, state) = start_registration(&f.config, &user, &[], NOW).expect("starts");
            match finish_registration(&f.config, state, &response, NOW) {
                Ok(credential) => panic!("an unsolicited registration verified: {credential:?}"),
                Err(err) => refusal_is_clean(&err, &sent),
            }
        }
    }

    match AssertionResponse::parse(data) {
        Err(err) => refusal_is_clean(&err, &sent),
        Ok(response) => {
            // The stored credential is found under whatever ID was sent, so every input reaches
            // the full verification (client data, authenticator data, signature).
            let stored = PasskeyCredential {
                id: response.credential_id().clone(),
                ..f.stored.clone()
            };
            let allow = Some(std::slice::from_ref(&stored)).filter(|_| data.len() % 2 == 0);
            let (_, state) = start_authentication(&f.config, allow, NOW).expect("starts");
            match finish_authentication(&f.config, state, &response, Some(&stored), NOW) {
                Ok(outcome) => panic!("an unsolicited assertion verified: {outcome:?}"),
                Err(err) => refusal_is_clean(&err, &sent),
            }
        }
    }
});
