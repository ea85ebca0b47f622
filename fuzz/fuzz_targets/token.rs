//! Tokens: compact JWS access tokens (`jwt::verify`) and TOTP codes (`totp::verify`).
//!
//! A real token is signed once; each input either replaces it or splices bytes into it.
//! Invariants: nothing panics; only the exact signed text (or, at most, the same signing
//! input with another valid signature) verifies, and then with the signed claims; a TOTP
//! code is accepted only if it is the six digits of an acceptable step.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portcullis::crypto::jwt::{self, AccessClaims, Expectations, LocalSigner, TokenSigner};
use portcullis::crypto::totp::{self, TotpSecret};

const NOW: i64 = 1_800_000_000;

struct Fixture {
    signer: LocalSigner,
    token: String,
    claims: AccessClaims,
    secret: TotpSecret,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let signer = LocalSigner::random();
    let claims = AccessClaims {
        iss: "https://issuer.example".into(),
        sub: "alice@example.com".into(),
        aud: "portcullis".into(),
        iat: NOW - 10,
        exp: NOW + 900,
        auth_time: NOW - 10,
        amr: vec!["pwd".into(), "otp".into(), "mfa".into()],
        acr: jwt::ACR_MFA.into(),
        sid: "sid-1".into(),
        jti: "jti-1".into(),
        roles: vec![],
        token_use: "access".into(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let token = runtime
        .block_on(jwt::issue(&signer, &claims))
        .expect("signs");
    let secret = TotpSecret::from_bytes(vec![7; 20]).expect("a 160-bit secret");
    Fixture {
        signer,
        token,
        claims,
        secret,
    }
});

fuzz_target!(|data: &[u8]| {
    let f = &*FIXTURE;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let candidate = if mode & 1 == 0 {
        text.to_owned()
    } else {
        // Splice the input into the real token at a position chosen by the input.
        let at = (mode as usize >> 1) * f.token.len() / 128;
        let mut at = at.min(f.token.len());
        while !f.token.is_char_boundary(at) {
            at -= 1;
        }
        let cut = (rest.len() % 4).min(f.token.len() - at);
        format!("{}{}{}", &f.token[..at], text, &f.token[at + cut..])
    };
    let expect = Expectations {
        key: f.signer.verifying_key(),
        kid: f.signer.key_id(),
        issuer: "https://issuer.example",
        audience: "portcullis",
        now: NOW,
    };
    if let Ok(claims) = jwt::verify(&candidate, &expect) {
        let signing_input = |t: &str| t.rsplit_once('.').map(|(s, _)| s.to_owned());
        assert_eq!(
            signing_input(&candidate),
            signing_input(&f.token),
            "a token with another header or payload verified"
        );
        assert_eq!(claims.sub, f.claims.sub);
        assert_eq!(claims.exp, f.claims.exp);
    }

    // TOTP: any text as a code, at a time and last-used step taken from the input.
    let unix = NOW + i64::from(mode) * 7;
    let last = (mode & 2 != 0).then(|| totp::step_of(unix) - 1);
    if let Some(step) = totp::verify(&f.secret, text, unix, last) {
        let digits: String = text.chars().filter(|c| *c != ' ').collect();
        assert_eq!(digits.len(), 6);
        assert!((totp::step_of(unix) - 1..=totp::step_of(unix) + 1).contains(&step));
        assert!(
            last.is_none_or(|l| step > l),
            "a used step was accepted again"
        );
        assert_eq!(digits, totp::code_at(&f.secret, step * 30));
    }
});
