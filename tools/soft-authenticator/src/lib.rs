//! A software WebAuthn authenticator *and* the browser around it, for tests.
//!
//! Written from the WebAuthn Level 3 specification (§6.1 authenticator data, §6.5 attestation,
//! §5.8.1 client data, §6.3.3 assertion signature) and RFC 9052/9053 (COSE keys), not from any
//! relying-party library, so that the relying party is checked against an independent
//! implementation. It encodes the few fixed CBOR structures itself (no CBOR library), which
//! keeps it obviously separate from the verifier's parser.
//!
//! It takes the relying party's options JSON (`PublicKeyCredentialCreationOptionsJSON` /
//! `PublicKeyCredentialRequestOptionsJSON`) and answers with the Level 3 JSON responses a
//! browser's `PublicKeyCredential.toJSON()` produces (`RegistrationResponseJSON` /
//! `AuthenticationResponseJSON`, base64url without padding).
//!
//! Every check a relying party makes has a knob, set on [`SoftAuthenticator`] before a
//! ceremony: the origin the "browser" reports, the RP ID whose hash goes into the authenticator
//! data, the UV/UP/BE/BS flags, the signature counter, a tampered signature, a cross-origin
//! call and the user handle returned.
//!
//! Keys: ES256 (P-256) or RS256 (RSA-2048, PKCS#1 v1.5 with SHA-256) generated per
//! authenticator. Attestation: `none` only.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey as _;
use rand::RngCore as _;
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey as RsaSigningKey;
use rsa::signature::SignatureEncoding as _;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// COSE algorithm identifier of ES256 (RFC 9053).
pub const COSE_ES256: i64 = -7;
/// COSE algorithm identifier of RS256 (RFC 8812).
pub const COSE_RS256: i64 = -257;

/// The credential's private key.
#[derive(Clone)]
enum Key {
    Es256(SigningKey),
    Rs256(Box<RsaPrivateKey>),
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Key::Es256(_) => "Key::Es256(<private>)",
            Key::Rs256(_) => "Key::Rs256(<private>)",
        })
    }
}

/// Authenticator data flags (WebAuthn §6.1).
pub mod flags {
    pub const UP: u8 = 0x01;
    pub const UV: u8 = 0x04;
    pub const BE: u8 = 0x08;
    pub const BS: u8 = 0x10;
    pub const AT: u8 = 0x40;
    pub const ED: u8 = 0x80;
}

/// What the "user handle" of an assertion response carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserHandleReply {
    /// The `user.id` stored at registration (what a discoverable credential returns).
    Stored,
    /// None (`userHandle` absent), as a non-discoverable credential answers.
    Absent,
    /// Some other value (a lying or confused authenticator).
    Other(Vec<u8>),
}

/// One credential on one authenticator, plus the browser's part (origin, client data). The
/// public fields are the knobs; they apply to every following ceremony until changed. A clone
/// is a copy of the credential, private key and counter included (a cloned authenticator).
#[derive(Debug, Clone)]
pub struct SoftAuthenticator {
    /// The origin the browser writes into `clientDataJSON` (the page's origin).
    pub origin: String,
    /// The RP ID whose SHA-256 goes into the authenticator data; `None`: the one in the options
    /// (`rp.id` / `rpId`), as an honest authenticator does.
    pub rp_id: Option<String>,
    /// UP flag.
    pub user_present: bool,
    /// UV flag.
    pub user_verified: bool,
    /// BE flag.
    pub backup_eligible: bool,
    /// BS flag.
    pub backup_state: bool,
    /// `crossOrigin` in the client data (a cross-origin iframe).
    pub cross_origin: bool,
    /// The signature counter is incremented by this much before each signature (0: a
    /// counterless authenticator, like most synced passkeys).
    pub counter_step: u32,
    /// Flip a bit of the next assertion signatures.
    pub tamper_signature: bool,
    /// What an assertion returns as `userHandle`.
    pub user_handle_reply: UserHandleReply,
    /// The AAGUID reported at registration.
    pub aaguid: [u8; 16],
    /// Transports reported at registration.
    pub transports: Vec<String>,
    key: Key,
    credential_id: Vec<u8>,
    counter: u32,
    user_handle: Option<Vec<u8>>,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(value: &Value, what: &str) -> Result<Vec<u8>, String> {
    let text = value
        .as_str()
        .ok_or_else(|| format!("{what} is not a string"))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("{what} is not base64url"))
}

fn random_signing_key() -> SigningKey {
    loop {
        let mut scalar = [0u8; 32];
        rand::rng().fill_bytes(&mut scalar);
        // Zero or ≥ n (probability ~2^-32): draw again.
        if let Ok(key) = SigningKey::from_slice(&scalar) {
            return key;
        }
    }
}

/// The `challenge` of a ceremony's options, as the options carry it (base64url).
fn options_challenge(options: &Value) -> Result<&str, String> {
    options["challenge"]
        .as_str()
        .ok_or_else(|| "options have no challenge".to_owned())
}

// --- the few CBOR items needed (RFC 8949 §3: major type, then the argument) ----------------

fn cbor_head(major: u8, arg: u64, out: &mut Vec<u8>) {
    let major = major << 5;
    match arg {
        0..=23 => out.push(major | arg as u8),
        24..=0xff => out.extend([major | 24, arg as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend((arg as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend((arg as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend(arg.to_be_bytes());
        }
    }
}

fn cbor_int(value: i64, out: &mut Vec<u8>) {
    if value >= 0 {
        cbor_head(0, value.unsigned_abs(), out);
    } else {
        // Major type 1 carries -1 - value.
        cbor_head(1, (-1 - value).unsigned_abs(), out);
    }
}

fn cbor_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    cbor_head(2, bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn cbor_text(text: &str, out: &mut Vec<u8>) {
    cbor_head(3, text.len() as u64, out);
    out.extend_from_slice(text.as_bytes());
}

/// A member's value in a COSE_Key: an integer or a byte string.
enum CoseValue<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

/// A COSE_Key (RFC 9052 §7): a CBOR map of integer labels, the members in the order given
/// (the caller's canonical order), its length counted from them.
fn cose_key(members: &[(i64, CoseValue<'_>)]) -> Vec<u8> {
    let mut out = Vec::new();
    cbor_head(5, members.len() as u64, &mut out);
    for (label, value) in members {
        cbor_int(*label, &mut out);
        match value {
            CoseValue::Int(value) => cbor_int(*value, &mut out),
            CoseValue::Bytes(bytes) => cbor_bytes(bytes, &mut out),
        }
    }
    out
}

impl SoftAuthenticator {
    /// A new ES256 authenticator with one fresh credential, honest settings (UP, UV, no
    /// backup, counter step 1) and the given browser origin.
    pub fn new(origin: &str) -> Self {
        let mut credential_id = vec![0u8; 32];
        rand::rng().fill_bytes(&mut credential_id);
        SoftAuthenticator {
            origin: origin.to_owned(),
            rp_id: None,
            user_present: true,
            user_verified: true,
            backup_eligible: false,
            backup_state: false,
            cross_origin: false,
            counter_step: 1,
            tamper_signature: false,
            user_handle_reply: UserHandleReply::Stored,
            aaguid: [0x5a; 16],
            transports: vec!["internal".into(), "hybrid".into()],
            key: Key::Es256(random_signing_key()),
            credential_id,
            counter: 0,
            user_handle: None,
        }
    }

    /// A synced passkey as platforms make them: backup eligible and backed up, no counter.
    pub fn synced(origin: &str) -> Self {
        SoftAuthenticator {
            backup_eligible: true,
            backup_state: true,
            counter_step: 0,
            ..SoftAuthenticator::new(origin)
        }
    }

    /// An RS256 authenticator (RSA-2048), otherwise like [`SoftAuthenticator::new`]. Fails
    /// only if the system's random source does.
    pub fn rs256(origin: &str) -> Result<Self, String> {
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
            .map_err(|e| format!("RSA key generation: {e}"))?;
        Ok(SoftAuthenticator {
            key: Key::Rs256(Box::new(key)),
            ..SoftAuthenticator::new(origin)
        })
    }

    /// The COSE algorithm of the credential: [`COSE_ES256`] or [`COSE_RS256`].
    pub fn algorithm(&self) -> i64 {
        match self.key {
            Key::Es256(_) => COSE_ES256,
            Key::Rs256(_) => COSE_RS256,
        }
    }

    pub fn credential_id(&self) -> &[u8] {
        &self.credential_id
    }

    /// The current signature counter.
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// Sets the signature counter (e.g. back, to imitate a cloned authenticator).
    pub fn set_counter(&mut self, value: u32) {
        self.counter = value;
    }

    /// The user handle stored at registration.
    pub fn user_handle(&self) -> Option<&[u8]> {
        self.user_handle.as_deref()
    }

    fn flags(&self) -> u8 {
        let mut f = 0;
        if self.user_present {
            f |= flags::UP;
        }
        if self.user_verified {
            f |= flags::UV;
        }
        if self.backup_eligible {
            f |= flags::BE;
        }
        if self.backup_state {
            f |= flags::BS;
        }
        f
    }

    fn next_counter(&mut self) -> u32 {
        self.counter = self.counter.wrapping_add(self.counter_step);
        self.counter
    }

    /// The credential public key as a COSE_Key, in CTAP2 canonical key order: for ES256
    /// (RFC 9053 §7.1.1, EC2) kty 2, alg -7, crv 1 (P-256), x, y; for RS256 (RFC 8230 §4)
    /// kty 3, alg -257, n, e.
    pub fn cose_public_key(&self) -> Vec<u8> {
        use CoseValue::{Bytes, Int};
        match &self.key {
            Key::Es256(key) => {
                let point = key.verifying_key().to_encoded_point(false);
                let x = point.x().map(|x| x.to_vec()).unwrap_or_default();
                let y = point.y().map(|y| y.to_vec()).unwrap_or_default();
                cose_key(&[
                    (1, Int(2)),          // kty: EC2
                    (3, Int(COSE_ES256)), // alg
                    (-1, Int(1)),         // crv: P-256
                    (-2, Bytes(&x)),
                    (-3, Bytes(&y)),
                ])
            }
            Key::Rs256(key) => {
                let (n, e) = (key.n().to_bytes_be(), key.e().to_bytes_be());
                cose_key(&[
                    (1, Int(3)),          // kty: RSA
                    (3, Int(COSE_RS256)), // alg
                    (-1, Bytes(&n)),
                    (-2, Bytes(&e)),
                ])
            }
        }
    }

    /// The public key as DER SubjectPublicKeyInfo (the Level 3 `publicKey` convenience field).
    fn spki_der(&self) -> Result<Vec<u8>, String> {
        match &self.key {
            Key::Es256(key) => key
                .verifying_key()
                .to_public_key_der()
                .map(|d| d.as_bytes().to_vec())
                .map_err(|e| format!("SPKI: {e}")),
            Key::Rs256(key) => rsa::pkcs8::EncodePublicKey::to_public_key_der(&key.to_public_key())
                .map(|d| d.as_bytes().to_vec())
                .map_err(|e| format!("SPKI: {e}")),
        }
    }

    /// The signature over `message`: ECDSA (DER) or RSASSA-PKCS1-v1_5, both with SHA-256.
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.key {
            Key::Es256(key) => {
                let signature: Signature = key.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
            Key::Rs256(key) => {
                let signer = RsaSigningKey::<Sha256>::new(key.as_ref().clone());
                signer.sign(message).to_vec()
            }
        }
    }

    /// Authenticator data (§6.1): rpIdHash ‖ flags ‖ signCount (big-endian) ‖
    /// [attestedCredentialData: aaguid ‖ credentialIdLength ‖ credentialId ‖ COSE_Key].
    fn authenticator_data(&self, rp_id: &str, attested: bool, counter: u32) -> Vec<u8> {
        let mut data = Sha256::digest(rp_id.as_bytes()).to_vec();
        data.push(self.flags() | if attested { flags::AT } else { 0 });
        data.extend(counter.to_be_bytes());
        if attested {
            data.extend(self.aaguid);
            data.extend((self.credential_id.len() as u16).to_be_bytes());
            data.extend(&self.credential_id);
            data.extend(self.cose_public_key());
        }
        data
    }

    /// `clientDataJSON` (§5.8.1) as a browser serialises it: type, challenge, origin,
    /// crossOrigin, in that order.
    fn client_data(&self, ceremony_type: &str, challenge_b64: &str) -> Vec<u8> {
        format!(
            "{{\"type\":{},\"challenge\":{},\"origin\":{},\"crossOrigin\":{}}}",
            Value::from(ceremony_type),
            Value::from(challenge_b64),
            Value::from(self.origin.as_str()),
            self.cross_origin
        )
        .into_bytes()
    }

    /// The RP ID of a ceremony: the one set on this authenticator, else the options' own
    /// (`in_options`: `rp.id` when creating, `rpId` when getting; `name` says which).
    fn ceremony_rp_id(&self, in_options: &Value, name: &str) -> Result<String, String> {
        match &self.rp_id {
            Some(rp_id) => Ok(rp_id.clone()),
            None => in_options
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("options have no {name}")),
        }
    }

    /// `navigator.credentials.create()` with these options (the `publicKey` member, JSON form):
    /// checks what an authenticator checks (ES256 offered, this credential not excluded), stores
    /// `user.id` and answers with a `RegistrationResponseJSON` carrying a `none` attestation.
    pub fn register(&mut self, options: &Value) -> Result<Value, String> {
        let challenge = options_challenge(options)?;
        let rp_id = self.ceremony_rp_id(&options["rp"]["id"], "rp.id")?;
        let alg = self.algorithm();
        let offered = options["pubKeyCredParams"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["alg"] == alg));
        if !offered {
            return Err(format!("NotSupportedError: algorithm {alg} not offered"));
        }
        if let Some(excluded) = options["excludeCredentials"].as_array() {
            for descriptor in excluded {
                if unb64(&descriptor["id"], "excludeCredentials id")? == self.credential_id {
                    return Err("InvalidStateError: credential excluded".into());
                }
            }
        }
        self.user_handle = Some(unb64(&options["user"]["id"], "user.id")?);

        let counter = self.next_counter();
        let auth_data = self.authenticator_data(&rp_id, true, counter);
        // Attestation object (§6.5.4), fmt "none" with an empty statement (§8.7), keys in
        // CTAP2 canonical order (shorter first).
        let mut attestation_object = Vec::new();
        cbor_head(5, 3, &mut attestation_object);
        cbor_text("fmt", &mut attestation_object);
        cbor_text("none", &mut attestation_object);
        cbor_text("attStmt", &mut attestation_object);
        cbor_head(5, 0, &mut attestation_object);
        cbor_text("authData", &mut attestation_object);
        cbor_bytes(&auth_data, &mut attestation_object);

        let client_data = self.client_data("webauthn.create", challenge);
        let spki = self.spki_der()?;
        Ok(json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": { "credProps": { "rk": true } },
            "response": {
                "clientDataJSON": b64(&client_data),
                "attestationObject": b64(&attestation_object),
                "authenticatorData": b64(&auth_data),
                "transports": self.transports,
                "publicKeyAlgorithm": alg,
                "publicKey": b64(&spki),
            },
        }))
    }

    /// `navigator.credentials.get()` with these options (JSON form): refuses if
    /// `allowCredentials` is non-empty and does not list this credential, otherwise signs
    /// authenticatorData ‖ SHA-256(clientDataJSON) (§6.3.3) and answers with an
    /// `AuthenticationResponseJSON`.
    pub fn authenticate(&mut self, options: &Value) -> Result<Value, String> {
        let challenge = options_challenge(options)?;
        let rp_id = self.ceremony_rp_id(&options["rpId"], "rpId")?;
        if let Some(allowed) = options["allowCredentials"].as_array()
            && !allowed.is_empty()
        {
            let mut listed = false;
            for descriptor in allowed {
                listed |= unb64(&descriptor["id"], "allowCredentials id")? == self.credential_id;
            }
            if !listed {
                return Err("NotAllowedError: no allowed credential here".into());
            }
        }
        let counter = self.next_counter();
        let auth_data = self.authenticator_data(&rp_id, false, counter);
        let client_data = self.client_data("webauthn.get", challenge);
        Ok(self.assertion_json(&auth_data, &client_data))
    }

    /// Signs arbitrary authenticator data and client data (for tests that build their own,
    /// e.g. a wrong ceremony type) and wraps them as an `AuthenticationResponseJSON`.
    pub fn assertion_json(&self, auth_data: &[u8], client_data: &[u8]) -> Value {
        let mut signed = auth_data.to_vec();
        signed.extend(Sha256::digest(client_data));
        let mut signature = self.sign(&signed);
        if self.tamper_signature
            && let Some(last) = signature.last_mut()
        {
            *last ^= 0x01;
        }
        let user_handle = match &self.user_handle_reply {
            UserHandleReply::Stored => self.user_handle.as_deref().map(b64),
            UserHandleReply::Absent => None,
            UserHandleReply::Other(bytes) => Some(b64(bytes)),
        };
        let mut response = json!({
            "clientDataJSON": b64(client_data),
            "authenticatorData": b64(auth_data),
            "signature": b64(&signature),
        });
        if let Some(handle) = user_handle {
            response["userHandle"] = Value::from(handle);
        }
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": response,
        })
    }

    /// Client data of any type (for tests of the ceremony-type check).
    pub fn client_data_json(&self, ceremony_type: &str, challenge_b64: &str) -> Vec<u8> {
        self.client_data(ceremony_type, challenge_b64)
    }

    /// Authenticator data for an assertion with the current knobs and a given counter.
    pub fn assertion_authenticator_data(&self, rp_id: &str, counter: u32) -> Vec<u8> {
        self.authenticator_data(rp_id, false, counter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier as _;

    #[test]
    fn cbor_heads_follow_rfc_8949() {
        let enc = |v: i64| {
            let mut out = Vec::new();
            cbor_int(v, &mut out);
            out
        };
        // RFC 8949 Appendix A.
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(23), [0x17]);
        assert_eq!(enc(24), [0x18, 0x18]);
        assert_eq!(enc(1000), [0x19, 0x03, 0xe8]);
        assert_eq!(enc(-1), [0x20]);
        assert_eq!(enc(-7), [0x26]);
        assert_eq!(enc(-257), [0x39, 0x01, 0x00]);
        let mut text = Vec::new();
        cbor_text("fmt", &mut text);
        assert_eq!(text, [0x63, b'f', b'm', b't']);
    }

    #[test]
    fn assertion_signature_covers_auth_data_and_client_data_hash() {
        let mut authenticator = SoftAuthenticator::new("http://localhost:3000");
        let options = json!({ "challenge": "AAAA", "rpId": "localhost", "allowCredentials": [] });
        let response = authenticator.authenticate(&options).unwrap();
        let auth_data = unb64(&response["response"]["authenticatorData"], "ad").unwrap();
        let client_data = unb64(&response["response"]["clientDataJSON"], "cd").unwrap();
        let signature = unb64(&response["response"]["signature"], "sig").unwrap();
        assert_eq!(&auth_data[..32], Sha256::digest(b"localhost").as_slice());
        assert_eq!(auth_data[32], flags::UP | flags::UV);
        assert_eq!(&auth_data[33..37], &1u32.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client_data));
        let Key::Es256(key) = &authenticator.key else {
            panic!("ES256 by default")
        };
        let key = VerifyingKey::from(key);
        key.verify(&signed, &Signature::from_der(&signature).unwrap())
            .unwrap();
        let client: Value = serde_json::from_slice(&client_data).unwrap();
        assert_eq!(client["type"], "webauthn.get");
        assert_eq!(client["origin"], "http://localhost:3000");
    }
}
