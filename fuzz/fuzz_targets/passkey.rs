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
    let message = err.to_string();
    let scrubbed = own_words_out(&message);
    for word in sent.split(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-') {
        if word.len() >= 12 {
            assert!(
                !scrubbed.contains(word),
                "the error repeats {word:?}: {message}"
            );
        }
    }
}

/// The message without the words it says by itself, so that an input containing one (or a
/// piece of one) is not taken for an echo: the refusals' own long words ("malformed response:
/// registration response: …"; "authenticati" was found by the fuzzer, which learns its
/// dictionary from the comparisons this check makes), and, outside quotes, identifiers (the
/// verifying crate's error names, `Rejected(ParseInsufficientBytesAvailable)`). Quoted text,
/// where a payload's `Debug` would show what the client sent, is kept whole.
fn own_words_out(message: &str) -> String {
    const OWN_WORDS: [&str; 8] = [
        "registration",
        "authentication",
        "configuration",
        "verification",
        "authenticator",
        "inconsistent",
        "cross-origin",
        "discoverable",
    ];
    let mut out = String::with_capacity(message.len());
    let mut word = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in message.chars().chain(std::iter::once(' ')) {
        if !quoted && c.is_ascii_alphanumeric() {
            word.push(c);
            continue;
        }
        let identifier = word.starts_with(|c: char| c.is_ascii_uppercase())
            && word.contains(|c: char| c.is_ascii_lowercase());
        out.push_str(if identifier { " " } else { &word });
        word.clear();
        if c == '"' && !escaped {
            quoted = !quoted;
        }
        escaped = quoted && c == '\\' && !escaped;
        out.push(c);
    }
    OWN_WORDS
        .iter()
        .fold(out, |text, own| text.replace(own, " "))
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
            let allow =
                Some(std::slice::from_ref(&stored)).filter(|_| data.len().is_multiple_of(2));
            let (_, state) = start_authentication(&f.config, allow, NOW).expect("starts");
            match finish_authentication(&f.config, state, &response, Some(&stored), NOW) {
                Ok(outcome) => panic!("an unsolicited assertion verified: {outcome:?}"),
                Err(err) => refusal_is_clean(&err, &sent),
            }
        }
    }
});
