//! Passkey ceremonies end to end against an independent software authenticator
//! (`tools/soft-authenticator`, written from the WebAuthn specification): the round trips,
//! and every refusal a relying party owes its users.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use portcullis::UnixTime;
use portcullis::error::ApiError;
use portcullis::passkey::{
    AssertionResponse, AuthenticationState, CEREMONY_TIMEOUT_SECS, CredentialId, PasskeyConfig,
    PasskeyCredential, PasskeyError, PasskeyUser, RegistrationResponse, RegistrationState,
    UserHandle, finish_authentication, finish_registration, start_authentication,
    start_registration,
};
use portcullis_soft_authenticator::{SoftAuthenticator, UserHandleReply};
use serde_json::{Value, json};

const ORIGIN: &str = "http://localhost:3000";
const NOW: UnixTime = UnixTime(1_800_000_000);

fn config() -> PasskeyConfig {
    PasskeyConfig {
        rp_id: "localhost".into(),
        rp_name: "Portcullis".into(),
        origins: vec![ORIGIN.into()],
    }
}

fn bytes(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

fn start_reg(handle: &UserHandle, existing: &[CredentialId]) -> (Value, RegistrationState) {
    let user = PasskeyUser {
        handle,
        name: "alice@example.com",
        display_name: "Alice",
    };
    start_registration(&config(), &user, existing, NOW).unwrap()
}

fn try_register(
    authenticator: &mut SoftAuthenticator,
    handle: &UserHandle,
) -> Result<PasskeyCredential, PasskeyError> {
    let (options, state) = start_reg(handle, &[]);
    // As the `credential` field of a request body, already parsed by the edge.
    let response = authenticator.register(&options).unwrap();
    let response = RegistrationResponse::from_json_value(&response)?;
    finish_registration(&config(), state, &response, NOW.plus_secs(5))
}

fn register(authenticator: &mut SoftAuthenticator, handle: &UserHandle) -> PasskeyCredential {
    try_register(authenticator, handle).unwrap()
}

/// One assertion: start (for the given passkeys, or discoverable), sign, parse, look up in
/// `stored` by the response's credential ID, finish.
fn try_authenticate(
    authenticator: &mut SoftAuthenticator,
    allow: Option<&[PasskeyCredential]>,
    stored: &[PasskeyCredential],
) -> Result<portcullis::passkey::AssertionOutcome, PasskeyError> {
    let (options, state) = start_authentication(&config(), allow, NOW).unwrap();
    let response = authenticator.authenticate(&options).unwrap();
    let response = AssertionResponse::from_json_value(&response)?;
    let found = stored.iter().find(|c| &c.id == response.credential_id());
    finish_authentication(&config(), state, &response, found, NOW.plus_secs(5))
}

#[test]
fn registration_options_ask_for_a_discoverable_user_verified_es256_or_rs256_passkey() {
    let handle = UserHandle::random();
    let existing = CredentialId::from_bytes(vec![7u8; 16]).unwrap();
    let (options, state) = start_reg(&handle, std::slice::from_ref(&existing));

    assert_eq!(
        options["rp"],
        json!({ "id": "localhost", "name": "Portcullis" })
    );
    assert_eq!(options["user"]["id"], handle.to_base64url());
    assert_eq!(options["user"]["name"], "alice@example.com");
    assert_eq!(options["user"]["displayName"], "Alice");
    let challenge = options["challenge"].as_str().unwrap();
    assert_eq!(challenge.len(), 43, "32 bytes, base64url without padding");
    let algs: Vec<i64> = options["pubKeyCredParams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["type"], "public-key");
            p["alg"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(algs, [-7, -257]);
    assert_eq!(options["timeout"], 300_000);
    assert_eq!(options["attestation"], "none");
    let selection = &options["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required");
    assert_eq!(selection["requireResidentKey"], true);
    assert_eq!(selection["userVerification"], "required");
    assert_eq!(
        options["excludeCredentials"],
        json!([{ "type": "public-key", "id": existing.to_base64url() }])
    );
    assert_eq!(options["extensions"]["credProps"], true);
    assert_eq!(state.expires_at(), NOW.plus_secs(CEREMONY_TIMEOUT_SECS));
    assert_eq!(state.user_handle(), &handle);
}

#[test]
fn a_registered_passkey_signs_in_and_its_counter_moves_on() {
    let handle = UserHandle::random();
    let mut authenticator = SoftAuthenticator::new(ORIGIN);
    let passkey = register(&mut authenticator, &handle);

    assert_eq!(passkey.id.as_bytes(), authenticator.credential_id());
    assert_eq!(passkey.user_handle, handle);
    assert_eq!(authenticator.user_handle(), Some(handle.as_bytes()));
    assert_eq!(passkey.public_key.algorithm(), "ES256");
    assert_eq!(passkey.sign_count, 1);
    assert!(passkey.user_verified);
    assert!(!passkey.backup_eligible && !passkey.backup_state);
    assert_eq!(passkey.amr_key_method(), "hwk");
    assert_eq!(
        passkey.aaguid.map(|a| a.to_string()).as_deref(),
        Some("5a5a5a5a-5a5a-5a5a-5a5a-5a5a5a5a5a5a")
    );
    assert_eq!(passkey.transports, ["internal", "hybrid"]);
    assert_eq!(passkey.discoverable, Some(true));

    // Stored as JSON (the factor record) and read back before use.
    let stored: PasskeyCredential = serde_json::from_slice(&bytes(&passkey)).unwrap();
    assert_eq!(stored, passkey);

    let (options, state) =
        start_authentication(&config(), Some(std::slice::from_ref(&stored)), NOW).unwrap();
    assert_eq!(options["rpId"], "localhost");
    assert_eq!(options["userVerification"], "required");
    assert_eq!(options["timeout"], 300_000);
    assert_eq!(
        options["allowCredentials"][0]["id"],
        passkey.id.to_base64url()
    );
    assert_eq!(options["allowCredentials"][0]["type"], "public-key");
    assert_eq!(state.user_handle(), Some(&handle));

    let response =
        AssertionResponse::parse(&bytes(&authenticator.authenticate(&options).unwrap())).unwrap();
    let outcome =
        finish_authentication(&config(), state, &response, Some(&stored), NOW.plus_secs(9))
            .unwrap();
    assert_eq!(outcome.credential_id, passkey.id);
    assert_eq!(outcome.user_handle, handle);
    assert_eq!(outcome.sign_count, 2);
    assert!(outcome.user_verified);

    // The next sign-in checks against the updated record.
    let updated = stored.updated(&outcome);
    assert_eq!(updated.sign_count, 2);
    let again = try_authenticate(
        &mut authenticator,
        Some(std::slice::from_ref(&updated)),
        std::slice::from_ref(&updated),
    );
    assert_eq!(again.unwrap().sign_count, 3);
}

#[test]
fn a_usernameless_ceremony_allows_any_credential_and_names_its_owner() {
    let handle = UserHandle::random();
    let mut authenticator = SoftAuthenticator::synced(ORIGIN);
    let passkey = register(&mut authenticator, &handle);
    assert!(passkey.backup_eligible && passkey.backup_state);
    assert_eq!(passkey.amr_key_method(), "swk");

    let (options, state) = start_authentication(&config(), None, NOW).unwrap();
    assert_eq!(options["allowCredentials"], json!([]));
    assert_eq!(options["userVerification"], "required");
    assert!(state.is_discoverable());
    assert_eq!(state.user_handle(), None);

    // The caller learns whom to look up from the response itself.
    let response =
        AssertionResponse::parse(&bytes(&authenticator.authenticate(&options).unwrap())).unwrap();
    assert_eq!(response.credential_id(), &passkey.id);
    assert_eq!(response.user_handle(), Some(&handle));
    let outcome = finish_authentication(
        &config(),
        state,
        &response,
        Some(&passkey),
        NOW.plus_secs(2),
    )
    .unwrap();
    assert_eq!(outcome.user_handle, handle);
    // A counterless (synced) passkey stays at 0, and 0 → 0 is not a regression.
    assert_eq!(outcome.sign_count, 0);
    let again = try_authenticate(&mut authenticator, None, &[passkey.updated(&outcome)]);
    assert_eq!(again.unwrap().sign_count, 0);
}

#[test]
fn a_usernameless_assertion_without_or_with_another_user_handle_is_refused() {
    let handle = UserHandle::random();
    let mut authenticator = SoftAuthenticator::new(ORIGIN);
    let passkey = register(&mut authenticator, &handle);

    authenticator.user_handle_reply = UserHandleReply::Absent;
    let err = try_authenticate(&mut authenticator, None, std::slice::from_ref(&passkey));
    assert_eq!(err.unwrap_err(), PasskeyError::MissingUserHandle);

    authenticator.user_handle_reply = UserHandleReply::Other(vec![9u8; 64]);
    let err = try_authenticate(&mut authenticator, None, std::slice::from_ref(&passkey));
    assert_eq!(err.unwrap_err(), PasskeyError::UserHandleMismatch);

    // With the user known, an absent handle is fine; a wrong one is not.
    authenticator.user_handle_reply = UserHandleReply::Absent;
    let allow = std::slice::from_ref(&passkey);
    assert!(try_authenticate(&mut authenticator, Some(allow), allow).is_ok());
    authenticator.user_handle_reply = UserHandleReply::Other(vec![9u8; 64]);
    let err = try_authenticate(&mut authenticator, Some(allow), allow);
    assert_eq!(err.unwrap_err(), PasskeyError::UserHandleMismatch);
}

/// `spoil` turns one knob of an honest authenticator. Registering with it spoilt is refused
/// with `expected`; so is signing in, with it spoilt after an honest registration.
fn refused_in_both_ceremonies(spoil: impl Fn(&mut SoftAuthenticator), expected: PasskeyError) {
    let handle = UserHandle::random();
    let mut spoilt = SoftAuthenticator::new(ORIGIN);
    spoil(&mut spoilt);
    assert_eq!(try_register(&mut spoilt, &handle).unwrap_err(), expected);

    let mut authenticator = SoftAuthenticator::new(ORIGIN);
    let passkey = register(&mut authenticator, &handle);
    spoil(&mut authenticator);
    let allow = std::slice::from_ref(&passkey);
    assert_eq!(
        try_authenticate(&mut authenticator, Some(allow), allow).unwrap_err(),
        expected,
        "signing in"
    );
    assert_eq!(
        try_authenticate(&mut authenticator, None, allow).unwrap_err(),
        expected,
        "signing in without a user name"
    );
}

#[test]
fn a_wrong_origin_is_refused_in_both_ceremonies() {
    refused_in_both_ceremonies(
        |a| a.origin = "https://localhost.evil.example".into(),
        PasskeyError::WrongOrigin,
    );
    // Same host, another port, is another origin.
    refused_in_both_ceremonies(
        |a| a.origin = "http://localhost:3001".into(),
        PasskeyError::WrongOrigin,
    );
}

#[test]
fn a_wrong_rp_id_is_refused_in_both_ceremonies() {
    refused_in_both_ceremonies(
        |a| a.rp_id = Some("evil.example".into()),
        PasskeyError::WrongRpId,
    );
    refused_in_both_ceremonies(
        |a| a.rp_id = Some("localhostx".into()),
        PasskeyError::WrongRpId,
    );
}

#[test]
fn a_cross_origin_call_is_refused_in_both_ceremonies() {
    refused_in_both_ceremonies(|a| a.cross_origin = true, PasskeyError::CrossOrigin);
}

#[test]
fn user_verification_and_presence_are_required() {
    refused_in_both_ceremonies(|a| a.user_verified = false, PasskeyError::UserNotVerified);
    refused_in_both_ceremonies(|a| a.user_present = false, PasskeyError::UserNotPresent);
}

/// What the caller does with states: keep them under the challenge record's key and take them
/// out (delete) before finishing, so a second finish finds nothing. In DynamoDB this is a
/// `DeleteItem` with `ReturnValues=ALL_OLD` and a condition that the item exists.
#[derive(Default)]
struct StateStore(HashMap<String, String>);

impl StateStore {
    fn put(&mut self, key: &str, state: &AuthenticationState) {
        self.0
            .insert(key.to_owned(), serde_json::to_string(state).unwrap());
    }

    fn take(&mut self, key: &str) -> Option<AuthenticationState> {
        self.0
            .remove(key)
            .map(|text| serde_json::from_str(&text).unwrap())
    }
}

#[test]
fn a_state_is_used_once_and_a_replayed_response_never_passes() {
    let handle = UserHandle::random();
    let mut authenticator = SoftAuthenticator::synced(ORIGIN); // counter 0: no counter to help
    let passkey = register(&mut authenticator, &handle);
    let mut store = StateStore::default();

    let (options, state) = start_authentication(&config(), None, NOW).unwrap();
    store.put("challenge-1", &state);
    let response =
        AssertionResponse::parse(&bytes(&authenticator.authenticate(&options).unwrap())).unwrap();

    let state = store
        .take("challenge-1")
        .expect("first use finds the state");
    finish_authentication(&config(), state, &response, Some(&passkey), NOW).unwrap();
    // The replay: the caller's store no longer has the state, so it never reaches the check.
    assert!(store.take("challenge-1").is_none());

    // Replayed against a new ceremony's state, the challenge does not match.
    let (_, fresh) = start_authentication(&config(), None, NOW).unwrap();
    assert_eq!(
        finish_authentication(&config(), fresh, &response, Some(&passkey), NOW).unwrap_err(),
        PasskeyError::ChallengeMismatch
    );
}

#[test]
fn a_response_to_another_ceremony_is_refused() {
    let handle = UserHandle::random();
    let mut authenticator = SoftAuthenticator::new(ORIGIN);
    let passkey = register(&mut authenticator, &handle);
    let allow = std::slice::from_ref(&passkey);

    // Two ceremonies started; the response to the first is presented with the second's state.
    let (options_a, _state_a) = start_authentication(&config(), Some(allow), NOW).unwrap();
    let (_options_b, state_b) = start_authentication(&config(), Some(allow), NOW).unwrap();
    let response =
        AssertionResponse::parse(&bytes(&authenticator.authenticate(&options_a).unwrap())).unwrap();
    assert_eq!(
        finish_authentication(&config(), state_b, &response, Some(&passkey), NOW).unwrap_err(),
        PasskeyError::ChallengeMismatch
    );

    // Registration likewise.
    let mut other = SoftAuthenticator::new(ORIGIN);
    let (options_a, _) = start_reg(&handle, &[]);
    let (_, state_b) = start_reg(&handle, &[]);
    let response =
        RegistrationResponse::parse(&bytes(&other.register(&options_a).unwrap())).unwrap();
    assert_eq!(
        finish_registration(&config(), state_b, &response, NOW).unwrap_err(),
        PasskeyError::ChallengeMismatch
    );

    // Client data of a registration (`webauthn.create`), signed, offered as an assertion.
    let (options, state) = start_authentication(&config(), Some(allow), NOW).unwrap();
    let challenge = options["challenge"].as_str().unwrap();
    let client_data = authenticator.client_data_json("webauthn.create", challenge);
    let auth_data = authenticator.assertion_authenticator_data("localhost", 50);
    let forged = authenticator.assertion_json(&auth_data, &client_data);
    let response = AssertionResponse::parse(&bytes(&forged)).unwrap();
    assert_eq!(
        finish_authentication(&config(), state, &response, Some(&passkey), NOW).unwrap_err(),
        PasskeyError::WrongCeremonyType
    );
}

#[test]
fn an_expired_state_is_refused() {
    let handle = UserHandle::random();
    let mut authenticator = SoftAuthenticator::new(ORIGIN);
    let (options, state) = start_reg(&handle, &[]);
    let response =
        RegistrationResponse::parse(&bytes(&authenticator.register(&options).unwrap())).unwrap();
    let late = NOW.plus_secs(CEREMONY_TIMEOUT_SECS);
    assert_eq!(
        finish_registration(&config(), state.clone(), &response, late).unwrap_err(),
        PasskeyError::StateExpired
    );
    let passkey = finish_registration(&config(), state, &response, late.plus_secs(-1)).unwrap();

    let allow = std::slice::from_ref(&passkey);
    let (options, state) = start_authentication(&config(), Some(allow), NOW).unwrap();
    let response =
        AssertionResponse::parse(&bytes(&authenticator.authenticate(&options).unwrap())).unwrap();
    assert_eq!(
        finish_authentication(&config(), state, &response, Some(&passkey), late).unwrap_err(),
        PasskeyError::StateExpired
    );
}

#[test]
fn a_bad_signature_is_refused() {
    let handle = UserHandle::random();
    let mut authenticator = SoftAuthenticator::new(ORIGIN);
    let passkey = register(&mut authenticator, &handle);
    authenticator.tamper_signature = true;
    let allow = std::slice::from_ref(&passkey);
    assert_eq!(
        try_authenticate(&mut authenticator, Some(allow), allow).unwrap_err(),
        PasskeyError::BadSignature
    );

    // Signed by another key under this credential's ID: the stored key does not verify it.
    let mut impostor = SoftAuthenticator::new(ORIGIN);
    let impostor_passkey = register(&mut impostor, &handle);
    let (options, state) = start_authentication(&config(), Some(allow), NOW).unwrap();
    let mut forged = impostor
        .authenticate(&json!({
            "challenge": options["challenge"], "rpId": "localhost", "allowCredentials": []
        }))
        .unwrap();
    forged["id"] = Value::from(passkey.id.to_base64url());
    forged["rawId"] = Value::from(passkey.id.to_base64url());
    let response = AssertionResponse::parse(&bytes(&forged)).unwrap();
    assert_ne!(impostor_passkey.id, passkey.id);
    assert_eq!(
        finish_authentication(&config(), state, &response, Some(&passkey), NOW).unwrap_err(),
        PasskeyError::BadSignature
    );
}

#[test]
fn an_unknown_or_unlisted_credential_is_refused() {
    let handle = UserHandle::random();
    let mut authenticator = SoftAuthenticator::new(ORIGIN);
    let passkey = register(&mut authenticator, &handle);
    assert_eq!(
        try_authenticate(&mut authenticator, None, &[]).unwrap_err(),
        PasskeyError::UnknownCredential
    );

    // The caller looked up another credential than the one that answered.
    let mut second = SoftAuthenticator::new(ORIGIN);
    let second_passkey = register(&mut second, &handle);
    let (options, state) = start_authentication(&config(), None, NOW).unwrap();
    let response =
        AssertionResponse::parse(&bytes(&authenticator.authenticate(&options).unwrap())).unwrap();
    assert_eq!(
        finish_authentication(&config(), state, &response, Some(&second_passkey), NOW).unwrap_err(),
        PasskeyError::UnknownCredential
    );

    // A credential of the same user that the ceremony did not allow.
    let allow = std::slice::from_ref(&passkey);
    let (options, state) = start_authentication(&config(), Some(allow), NOW).unwrap();
    let mut unlisted = options.clone();
    unlisted["allowCredentials"] = json!([]);
    let response =
        AssertionResponse::parse(&bytes(&second.authenticate(&unlisted).unwrap())).unwrap();
    assert_eq!(
        finish_authentication(&config(), state, &response, Some(&second_passkey), NOW).unwrap_err(),
        PasskeyError::CredentialNotAllowed
    );
}

#[test]
fn another_users_credential_does_not_pass_for_the_user_of_the_ceremony() {
    let alice = UserHandle::random();
    let mallory = UserHandle::random();
    let mut alice_key = SoftAuthenticator::new(ORIGIN);
    let alice_passkey = register(&mut alice_key, &alice);
    let mut mallory_key = SoftAuthenticator::new(ORIGIN);
    let mallory_passkey = register(&mut mallory_key, &mallory);

    // A record whose ID was (wrongly) put into Alice's allow list still names its owner.
    let mut allow = alice_passkey.clone();
    allow.id = mallory_passkey.id.clone();
    let (options, state) = start_authentication(&config(), Some(&[allow]), NOW).unwrap();
    let response =
        AssertionResponse::parse(&bytes(&mallory_key.authenticate(&options).unwrap())).unwrap();
    assert_eq!(
        finish_authentication(&config(), state, &response, Some(&mallory_passkey), NOW)
            .unwrap_err(),
        PasskeyError::UserHandleMismatch
    );

    // Mixing users in one allow list is a caller bug, refused at the start.
    let err = start_authentication(&config(), Some(&[alice_passkey, mallory_passkey]), NOW);
    assert!(err.unwrap_err().is_server_fault());
    assert!(
        start_authentication(&config(), Some(&[]), NOW)
            .unwrap_err()
            .is_server_fault(),
        "an empty allow list must not become a usernameless ceremony"
    );
}

#[test]
fn a_counter_that_does_not_increase_is_a_distinct_refusal() {
    let handle = UserHandle::random();
    let mut authenticator = SoftAuthenticator::new(ORIGIN);
    authenticator.set_counter(9);
    let passkey = register(&mut authenticator, &handle);
    assert_eq!(passkey.sign_count, 10);
    let allow = std::slice::from_ref(&passkey);

    // The clone signs with an older counter: 10 → 8.
    authenticator.set_counter(7);
    let err = try_authenticate(&mut authenticator, Some(allow), allow).unwrap_err();
    assert_eq!(
        err,
        PasskeyError::CounterRegression {
            stored: 10,
            received: 8
        }
    );
    assert!(err.is_counter_regression());
    assert_eq!(err.code(), "counter_regression");
    assert_eq!(err.public_error(), ApiError::InvalidCredentials);

    // Equal is not an increase either.
    authenticator.set_counter(9);
    let err = try_authenticate(&mut authenticator, Some(allow), allow).unwrap_err();
    assert!(err.is_counter_regression(), "{err:?}");

    // A non-zero counter dropping to 0 is a regression too.
    authenticator.set_counter(0);
    authenticator.counter_step = 0;
    let err = try_authenticate(&mut authenticator, Some(allow), allow).unwrap_err();
    assert!(err.is_counter_regression(), "{err:?}");

    // A bad signature with a low counter is a bad signature, not a clone alarm.
    authenticator.tamper_signature = true;
    let err = try_authenticate(&mut authenticator, Some(allow), allow).unwrap_err();
    assert_eq!(err, PasskeyError::BadSignature);
}

#[test]
fn a_counter_may_start_counting_after_zero() {
    let handle = UserHandle::random();
    let mut authenticator = SoftAuthenticator::synced(ORIGIN);
    let passkey = register(&mut authenticator, &handle);
    assert_eq!(passkey.sign_count, 0);
    authenticator.counter_step = 7;
    let allow = std::slice::from_ref(&passkey);
    let outcome = try_authenticate(&mut authenticator, Some(allow), allow).unwrap();
    assert_eq!(outcome.sign_count, 7);
}

#[test]
fn backup_eligibility_is_fixed_and_backup_state_is_reported() {
    let handle = UserHandle::random();
    let mut authenticator = SoftAuthenticator::new(ORIGIN);
    authenticator.backup_eligible = true;
    let passkey = register(&mut authenticator, &handle);
    assert!(passkey.backup_eligible && !passkey.backup_state);
    let allow = std::slice::from_ref(&passkey);

    authenticator.backup_state = true;
    let outcome = try_authenticate(&mut authenticator, Some(allow), allow).unwrap();
    assert!(outcome.backup_state);
    assert!(passkey.updated(&outcome).backup_state);

    authenticator.backup_eligible = false;
    authenticator.backup_state = false;
    assert_eq!(
        try_authenticate(&mut authenticator, Some(allow), allow).unwrap_err(),
        PasskeyError::BackupFlagsInvalid
    );

    // Nor may a credential registered as device-bound turn backup eligible later.
    let mut bound = SoftAuthenticator::new(ORIGIN);
    let bound_passkey = register(&mut bound, &handle);
    bound.backup_eligible = true;
    let allow = std::slice::from_ref(&bound_passkey);
    assert_eq!(
        try_authenticate(&mut bound, Some(allow), allow).unwrap_err(),
        PasskeyError::BackupFlagsInvalid
    );

    // Backed up without being eligible is refused at registration.
    let mut odd = SoftAuthenticator::new(ORIGIN);
    odd.backup_state = true;
    assert_eq!(
        try_register(&mut odd, &handle).unwrap_err(),
        PasskeyError::BackupFlagsInvalid
    );
}

#[test]
fn a_credential_already_registered_is_refused() {
    let handle = UserHandle::random();
    let mut authenticator = SoftAuthenticator::new(ORIGIN);
    let passkey = register(&mut authenticator, &handle);

    let (mut options, state) = start_reg(&handle, std::slice::from_ref(&passkey.id));
    // An honest authenticator refuses by itself…
    assert!(authenticator.register(&options).is_err());
    // …and the server does too, when the client ignores the exclusion.
    options["excludeCredentials"] = json!([]);
    let response =
        RegistrationResponse::parse(&bytes(&authenticator.register(&options).unwrap())).unwrap();
    assert_eq!(
        finish_registration(&config(), state, &response, NOW).unwrap_err(),
        PasskeyError::CredentialExcluded
    );
}

#[test]
fn states_survive_json_storage() {
    let handle = UserHandle::random();
    let mut authenticator = SoftAuthenticator::new(ORIGIN);
    let (options, state) = start_reg(&handle, &[]);
    let state: RegistrationState = serde_json::from_slice(&bytes(&state)).unwrap();
    let response =
        RegistrationResponse::parse(&bytes(&authenticator.register(&options).unwrap())).unwrap();
    let passkey = finish_registration(&config(), state, &response, NOW).unwrap();

    let allow = std::slice::from_ref(&passkey);
    let (options, state) = start_authentication(&config(), Some(allow), NOW).unwrap();
    let text = serde_json::to_string(&state).unwrap();
    assert!(
        text.len() < 1024,
        "small enough for a DynamoDB attribute: {text}"
    );
    let state: AuthenticationState = serde_json::from_str(&text).unwrap();
    let response =
        AssertionResponse::parse(&bytes(&authenticator.authenticate(&options).unwrap())).unwrap();
    finish_authentication(&config(), state, &response, Some(&passkey), NOW).unwrap();
}

#[test]
fn malformed_responses_are_refused_without_panicking() {
    let handle = UserHandle::random();
    let mut authenticator = SoftAuthenticator::new(ORIGIN);
    let (options, _) = start_reg(&handle, &[]);
    let good = authenticator.register(&options).unwrap();

    let mut cases: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{".to_vec(),
        b"{\"id\":1}".to_vec(),
        [b"[".repeat(10_000), b"]".repeat(10_000)].concat(),
    ];
    for (path, value) in [
        ("/type", json!("password")),
        ("/id", json!("not*base64")),
        ("/id", json!("AAAA")),
        ("/rawId", json!("")),
        ("/response/attestationObject", json!("AAAA")),
        ("/response/clientDataJSON", json!("e30")),
        ("/response/attestationObject", json!(12)),
    ] {
        let mut bad = good.clone();
        *bad.pointer_mut(path).unwrap() = value;
        cases.push(bytes(&bad));
    }
    for case in &cases {
        let parsed = RegistrationResponse::parse(case);
        let err = match parsed {
            Err(err) => err,
            Ok(response) => {
                let (_, state) = start_reg(&handle, &[]);
                finish_registration(&config(), state, &response, NOW).unwrap_err()
            }
        };
        assert_eq!(err.public_error(), ApiError::InvalidCredentials, "{err:?}");
        assert!(AssertionResponse::parse(case).is_err());
    }
}

#[test]
fn an_rs256_passkey_registers_and_signs_in() {
    let handle = UserHandle::random();
    let mut authenticator = SoftAuthenticator::rs256(ORIGIN).unwrap();
    let passkey = register(&mut authenticator, &handle);
    assert_eq!(passkey.public_key.algorithm(), "RS256");
    let stored: PasskeyCredential = serde_json::from_slice(&bytes(&passkey)).unwrap();
    let allow = std::slice::from_ref(&stored);
    let outcome = try_authenticate(&mut authenticator, Some(allow), allow).unwrap();
    assert_eq!(outcome.sign_count, 2);

    authenticator.tamper_signature = true;
    assert_eq!(
        try_authenticate(&mut authenticator, Some(allow), allow).unwrap_err(),
        PasskeyError::BadSignature
    );
}
