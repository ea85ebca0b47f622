//! A first factor enrolled at sign-in stays the only one (SPEC §12: an `mfa_enrolment_required`
//! challenge enrols a factor only while the user has no active factor), however the proofs
//! race: two sign-ins proving a first factor each at once, and one sign-in proving a phone's
//! code and a passkey together. Found in review: before, both ended active (the passkey with
//! no audit and no alert). `list_factors` is slowed to a DynamoDB-like round trip so the races
//! overlap on the in-memory adapter too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::passkeys::{ORIGIN, credential};
use common::*;
use portcullis::crypto::SecretString;
use portcullis::error::{ApiError, StoreError};
use portcullis::identity::UserId;
use portcullis::notifier::RecordingNotifier;
use portcullis::service::codes::SignInChallenge;
use portcullis::service::complete::complete_sign_in;
use portcullis::service::factors::{
    self, EnrolEmailRequest, EnrolPhoneRequest, Enroller, FactorVerified, VerifyFactorRequest,
};
use portcullis::service::passkeys::{self, EnrolPasskeyRequest};
use portcullis::storage::{
    FactorRecord, FactorStatus, FactorStore, PasskeyOwner, PasskeyUse, RegisteredPasskey,
};
use portcullis::{Deps, RequestMeta};
use portcullis_soft_authenticator::SoftAuthenticator;

/// The store as it is, with a DynamoDB-like round trip on `list_factors` (nothing else changed).
struct Slow(Arc<dyn FactorStore>);

crate::wrap_store! {
    FactorStore for Slow
    {
        async fn list_factors(&self, u: &UserId) -> Result<Vec<FactorRecord>, StoreError> {
            let out = self.0.list_factors(u).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            out
        }
    }
    create_factor(f: &FactorRecord) -> ();
    get_factor(u: &UserId, f: &str) -> Option<FactorRecord>;
    activate_factor(u: &UserId, f: &str) -> ();
    use_totp_step(u: &UserId, f: &str, s: i64) -> bool;
    delete_factor(u: &UserId, f: &str) -> bool;
    activate_passkey(u: &UserId, f: &str, r: &RegisteredPasskey<'_>) -> ();
    find_passkey(d: &str) -> Option<PasskeyOwner>;
    record_passkey_use(u: &UserId, f: &str, used: &PasskeyUse<'_>) -> bool;
    rename_passkey(u: &UserId, f: &str, n: &str) -> bool;
}

/// Each adapter with a user and no factor, its `list_factors` slowed.
async fn slow_deps(prefix: &str) -> Vec<(&'static str, Deps, RecordingNotifier, UserId)> {
    let mut out = Vec::new();
    for (name, mut deps, _clock, outbox, user) in all_deps_with_user(prefix).await {
        deps.stores.factors = Arc::new(Slow(deps.stores.factors.clone()));
        out.push((name, deps, outbox, user));
    }
    out
}

/// A pending phone enrolled in the sign-in `c`, and the code sent to it.
async fn phone_in(
    deps: &Deps,
    c: &SignInChallenge,
    outbox: &RecordingNotifier,
) -> (String, VerifyFactorRequest) {
    let meta = RequestMeta::default();
    let request = EnrolPhoneRequest {
        phone: "+12025550199".into(),
        delivery: "sms".into(),
    };
    let phone = factors::enrol_phone(deps, Enroller::SignIn(c, &meta), request)
        .await
        .unwrap();
    let code = SecretString::new(last_code(outbox));
    (phone.factor_id, VerifyFactorRequest::with_code(code))
}

async fn verify(
    deps: &Deps,
    c: &SignInChallenge,
    factor_id: &str,
    request: &VerifyFactorRequest,
) -> Result<FactorVerified, ApiError> {
    let meta = RequestMeta::default();
    factors::verify_factor(deps, Enroller::SignIn(c, &meta), factor_id, request).await
}

/// The kinds of the user's active factors.
async fn active(deps: &Deps, user: &UserId) -> Vec<&'static str> {
    let factors = deps.stores.factors.list_factors(user).await.unwrap();
    factors
        .into_iter()
        .filter(|f| f.status == FactorStatus::Active)
        .map(|f| f.kind.name())
        .collect()
}

#[tokio::test]
async fn two_enrolment_challenges_each_add_a_first_factor() {
    for (name, deps, outbox, user) in slow_deps("race").await {
        let meta = RequestMeta::default();
        let a = password_challenge(&deps, &user).await;
        let b = password_challenge(&deps, &user).await;
        let email = EnrolEmailRequest {
            email: "attacker@example.org".into(),
        };
        let email = factors::enrol_email(&deps, Enroller::SignIn(&a, &meta), email)
            .await
            .unwrap();
        let req_a = VerifyFactorRequest::with_code(SecretString::new(last_code(&outbox)));
        let (phone, req_b) = phone_in(&deps, &b, &outbox).await;
        let (ra, rb) = tokio::join!(
            verify(&deps, &a, &email.factor_id, &req_a),
            verify(&deps, &b, &phone, &req_b),
        );
        let active = active(&deps, &user).await.len();
        let accepted = [&ra, &rb].into_iter().filter(|r| r.is_ok()).count();
        let mut signed_in = 0;
        for proven in [ra, rb].into_iter().flatten() {
            let signed = complete_sign_in(&deps, proven.verified, None, &meta).await;
            signed_in += usize::from(signed.is_ok());
        }
        assert!(
            active <= 1,
            "{name}: {active} active factors from the password alone"
        );
        assert!(
            accepted <= active && signed_in <= active,
            "{name}: proofs accepted {accepted}, sessions {signed_in}, active factors {active}"
        );
    }
}

/// One `mfa_enrolment_required` challenge: a phone proven by its code while a passkey
/// registration of the same challenge is in flight. Only the proof that completed the
/// challenge activates its factor; the other leaves nothing active behind it.
#[tokio::test]
async fn one_enrolment_challenge_activates_a_phone_and_a_passkey() {
    for (name, deps, outbox, user) in slow_deps("race1").await {
        let meta = RequestMeta::default();
        let c = password_challenge(&deps, &user).await;
        let (phone, req_p) = phone_in(&deps, &c, &outbox).await;
        let request = EnrolPasskeyRequest::default();
        let pending = passkeys::enrol(&deps, Enroller::SignIn(&c, &meta), request)
            .await
            .unwrap();
        let mut authenticator = SoftAuthenticator::new(ORIGIN);
        let req_k = credential(authenticator.register(&pending.options).unwrap());
        let (rp, rk) = tokio::join!(
            async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                verify(&deps, &c, &phone, &req_p).await
            },
            verify(&deps, &c, &pending.factor_id, &req_k),
        );
        let active = active(&deps, &user).await;
        assert!(
            active.len() <= 1,
            "{name}: {active:?} active from one password-only challenge"
        );
        // No silent factor: what is active is what a proof was accepted for.
        let accepted: Vec<_> = [("phone", rp.is_ok()), ("passkey", rk.is_ok())]
            .into_iter()
            .filter_map(|(kind, ok)| ok.then_some(kind))
            .collect();
        assert_eq!(active, accepted, "{name}");
    }
}
