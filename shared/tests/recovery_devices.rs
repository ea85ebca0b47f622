//! Recovery codes, trusted devices and step-up (SPEC §4, §5) on both storage adapters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use portcullis::RequestMeta;
use portcullis::crypto::SecretString;
use portcullis::crypto::jwt::{ACR_MFA, ACR_TRUSTED_DEVICE};
use portcullis::error::ApiError;
use portcullis::error::StoreError;
use portcullis::identity::UserId;
use portcullis::notifier::RecordingNotifier;
use portcullis::service::codes::{self, SendCodeRequest};
use portcullis::service::complete::{TrustRequest, complete_sign_in};
use portcullis::service::factors::{self, ChangePhoneRequest, Enroller, VerifyFactorRequest};
use portcullis::service::sign_in::{SignInRequest, sign_in};
use portcullis::service::step_up;
use portcullis::service::tokens::{self, Caller};
use portcullis::service::{devices, recovery};
use portcullis::storage::{SessionRecord, SessionStore};
use portcullis::{Clock, Deps};

/// Password + SMS sign-in; optionally trusting the device. Returns (caller, device token).
async fn sms_sign_in(
    deps: &Deps,
    user: &UserId,
    outbox: &RecordingNotifier,
    trust: bool,
) -> (Caller, Option<String>) {
    let v = sms_verified(deps, user, outbox).await;
    let trust = trust.then(TrustRequest::default);
    let from = RequestMeta {
        user_agent: Some(portcullis_ua()),
        ..RequestMeta::default()
    };
    let signed = complete_sign_in(deps, v, trust, &from).await.unwrap();
    let caller = tokens::authenticate(
        deps,
        Some(&format!(
            "Bearer {}",
            signed.tokens().as_ref().unwrap().access_token
        )),
        &Default::default(),
    )
    .await
    .unwrap();
    (caller, signed.device_token().map(str::to_owned))
}

fn portcullis_ua() -> String {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36".into()
}

async fn sign_in_with_device(
    deps: &Deps,
    user: &UserId,
    token: Option<&str>,
) -> portcullis::service::sign_in::SignInAnswer {
    let meta = RequestMeta {
        device_token: token.map(|t| SecretString::new(t.into())),
        ..RequestMeta::default()
    };
    let request = SignInRequest {
        user_id: user.to_string(),
        password: SecretString::new(PASSWORD.into()),
    };
    sign_in(deps, request, &meta).await.unwrap()
}

#[tokio::test]
async fn a_user_who_lost_their_phone_signs_in_with_a_recovery_code_once() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("lost").await {
        let set = recovery::issue(&deps, &user, &RequestMeta::default())
            .await
            .unwrap();
        assert_eq!(set.len(), 10, "{name}");
        assert!(
            set.iter()
                .all(|c| c.len() == 19 && c.matches('-').count() == 3),
            "{set:?}"
        );
        assert_eq!(
            deps.stores
                .recovery
                .remaining_recovery_codes(&user)
                .await
                .unwrap(),
            10
        );

        let answer = sign_in_with_device(&deps, &user, None).await;
        assert!(
            answer
                .methods()
                .as_ref()
                .unwrap()
                .iter()
                .any(|m| m.method == portcullis::method::Method::RecoveryCode),
            "{name}"
        );
        let c = codes::open_challenge(&deps, answer.challenge_id().unwrap())
            .await
            .unwrap();
        let typed = SecretString::new(set[3].to_lowercase().replace('-', " "));
        let (verified, remaining) = recovery::redeem(&deps, &c, &typed, &RequestMeta::default())
            .await
            .unwrap();
        assert_eq!(remaining, 9, "{name}");
        let signed = finish_sign_in(&deps, verified).await;
        assert_eq!(signed.status(), "signed_in");
        let alert = outbox
            .sent()
            .into_iter()
            .find(|m| m.purpose == "alert_recovery_code_used")
            .expect("the user is alerted that a recovery code was used");
        assert!(alert.text.contains("9 remain"), "{}", alert.text);

        // single use
        let c2 = password_challenge(&deps, &user).await;
        assert_eq!(
            redeem_code(&deps, &c2, &set[3]).await.unwrap_err(),
            ApiError::CodeInvalid,
            "{name}"
        );
        // a wrong code counts as a try, like any code
        for _ in 0..3 {
            assert_eq!(
                redeem_code(&deps, &c2, "AAAA-AAAA-AAAA-AAAA")
                    .await
                    .unwrap_err(),
                ApiError::CodeInvalid
            );
        }
        assert_eq!(
            redeem_code(&deps, &c2, "AAAA-AAAA-AAAA-AAAA")
                .await
                .unwrap_err(),
            ApiError::ChallengeExpired,
            "{name}: 5th try ends it"
        );
        assert_eq!(
            redeem_code(&deps, &c2, "not a code")
                .await
                .unwrap_err()
                .status(),
            400
        );
    }
}

#[tokio::test]
async fn concurrent_redemption_of_one_code_succeeds_once() {
    for (name, deps, _clock, _outbox, user) in all_deps_with_phoned_user("twice").await {
        let set = recovery::issue(&deps, &user, &RequestMeta::default())
            .await
            .unwrap();
        // Six challenges first (one sign-in after another: more than five at once would be
        // a burst of password attempts), then the same code at all six at once.
        let mut challenges = Vec::new();
        for _ in 0..6 {
            challenges.push(password_challenge(&deps, &user).await);
        }
        let mut tasks = Vec::new();
        for c in challenges {
            let deps = deps.clone();
            let code = set[0].clone();
            tasks.push(tokio::spawn(
                async move { redeem_code(&deps, &c, &code).await },
            ));
        }
        let mut wins = 0;
        for t in tasks {
            if t.await.unwrap().is_ok() {
                wins += 1;
            }
        }
        assert_eq!(wins, 1, "{name}");
        assert_eq!(
            deps.stores
                .recovery
                .remaining_recovery_codes(&user)
                .await
                .unwrap(),
            9
        );
    }
}

#[tokio::test]
async fn a_trusted_device_skips_mfa_until_removed_or_180_days_pass() {
    for (name, deps, clock, outbox, user) in all_deps_with_phoned_user("trusting").await {
        let (_, token) = sms_sign_in(&deps, &user, &outbox, true).await;
        let token = token.unwrap();
        assert!(
            outbox
                .sent()
                .iter()
                .any(|m| m.purpose == "alert_new_device" && m.text.contains("Chrome on Windows")),
            "{name}: alerted"
        );
        let listed = devices::list(&deps, &user, None).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "Chrome on Windows");
        assert!(
            !listed[0].current,
            "{name}: no token presented, no current device"
        );
        let secret = SecretString::new(token.clone());
        assert!(
            devices::list(&deps, &user, Some(&secret)).await.unwrap()[0].current,
            "{name}: the presenting device is marked"
        );
        let (id, _) = token.split_once('.').unwrap();
        let forged = SecretString::new(format!("{id}.{}", "A".repeat(43)));
        assert!(
            !devices::list(&deps, &user, Some(&forged)).await.unwrap()[0].current,
            "{name}: a wrong secret with the right id is not the device"
        );
        assert_eq!(listed[0].expires_at - listed[0].created_at, 180 * 86_400);

        let skipped = sign_in_with_device(&deps, &user, Some(&token)).await;
        assert_eq!(skipped.status(), "signed_in", "{name}");
        let tokens = skipped.tokens().unwrap();
        let caller = bearer(&deps, &tokens.access_token).await.unwrap();
        assert_eq!(caller.claims.acr, ACR_TRUSTED_DEVICE);
        assert!(
            !caller.is_elevated(&deps),
            "{name}: skipping MFA is not a step-up"
        );

        // another user's password with this token: MFA as usual (the token is bound to the user)
        let other = create_user(&deps, &unique("other")).await;
        add_phone(&deps, &other, "+12025550144").await;
        assert_eq!(
            sign_in_with_device(&deps, &other, Some(&token))
                .await
                .status(),
            "mfa_required",
            "{name}"
        );
        // a tampered token: MFA
        let tampered = format!("{}x", token);
        assert_eq!(
            sign_in_with_device(&deps, &user, Some(&tampered))
                .await
                .status(),
            "mfa_required"
        );

        // expiry is enforced on read
        clock.advance_secs(180 * 86_400);
        assert_eq!(
            sign_in_with_device(&deps, &user, Some(&token))
                .await
                .status(),
            "mfa_required",
            "{name}: expired"
        );
        clock.set(T0);
        // removal takes effect on the next sign-in
        devices::remove(&deps, &user, &listed[0].device_id, &RequestMeta::default())
            .await
            .unwrap();
        assert_eq!(
            sign_in_with_device(&deps, &user, Some(&token))
                .await
                .status(),
            "mfa_required",
            "{name}: removed"
        );
    }
}

#[tokio::test]
async fn staff_never_skip_mfa_on_a_trusted_device() {
    for ((name, deps, _clock, outbox), role) in all_deps_with_notifier()
        .await
        .into_iter()
        .flat_map(|d| ["admin", "support"].map(move |r| (d.clone(), r)))
    {
        // A device trusted before the user became staff stops skipping MFA at once.
        let before = create_user(&deps, &unique("promoted")).await;
        add_phone(&deps, &before, "+12025550146").await;
        let (_, trusted) = sms_sign_in(&deps, &before, &outbox, true).await;
        assert!(trusted.is_some(), "{name}");
        set_roles(&deps, &before, &[role]).await;
        assert_eq!(
            sign_in_with_device(&deps, &before, trusted.as_deref())
                .await
                .status(),
            "mfa_required",
            "{name}: {role}"
        );
        let user = create_user(&deps, &unique("admin")).await;
        let mut record = stored_user(&deps, &user).await;
        record.roles = vec![role.into()];
        let admin = UserId::parse(&unique("admin2")).unwrap();
        record.user_id = admin.clone();
        deps.stores.users.create_user(&record).await.unwrap();
        add_phone(&deps, &admin, "+12025550145").await;
        let (_, token) = sms_sign_in(&deps, &admin, &outbox, true).await;
        assert!(token.is_none(), "{name}: no device token for an admin");
        assert!(
            no_devices(&deps, &admin).await,
            "{name}: no trusted device stored for an admin"
        );
        assert_eq!(
            sign_in_with_device(&deps, &admin, token.as_deref())
                .await
                .status(),
            "mfa_required",
            "{name}"
        );
    }
}

#[tokio::test]
async fn every_sensitive_action_needs_a_fresh_code_even_on_a_trusted_device() {
    for (name, deps, clock, outbox, user) in all_deps_with_user("sensitive").await {
        let factor = add_phone(&deps, &user, "+12025550143").await;
        let (_, token) = sms_sign_in(&deps, &user, &outbox, true).await;
        let skipped = sign_in_with_device(&deps, &user, token.as_deref())
            .await
            .into_tokens()
            .unwrap();
        let caller = bearer(&deps, &skipped.access_token).await.unwrap();
        let phone = || ChangePhoneRequest {
            phone: "+12125551234".into(),
        };
        assert_eq!(
            factors::remove(&deps, &caller, &factor).await.unwrap_err(),
            ApiError::StepUpRequired,
            "{name}"
        );
        assert_eq!(
            factors::change_phone(&deps, &caller, &factor, phone())
                .await
                .unwrap_err(),
            ApiError::StepUpRequired
        );
        assert_eq!(
            factors::enrol_totp(&deps, Enroller::Session(&caller))
                .await
                .unwrap_err(),
            ApiError::StepUpRequired
        );
        assert_eq!(
            caller.require_step_up(&deps).unwrap_err(),
            ApiError::StepUpRequired,
            "{name}: recovery-code regeneration and password change use this check"
        );

        // step-up by SMS
        let started = start_step_up(&deps, &caller, "sms").await;
        assert_eq!(started.sent_to.as_deref(), Some("***-***-0143"));
        assert!(
            outbox
                .sent()
                .last()
                .unwrap()
                .text
                .contains("confirm a sensitive change"),
            "{name}: purpose named"
        );
        let challenge = step_up::challenge_of(&deps, &caller, &started.challenge_id)
            .await
            .unwrap();
        let v = answer_code(
            &deps,
            &challenge,
            "sms",
            &SecretString::new(last_code(&outbox)),
        )
        .await
        .unwrap();
        let elevated = step_up::elevate(&deps, &caller, &challenge, v)
            .await
            .unwrap();
        let elevated_caller = bearer(&deps, &elevated.access_token).await.unwrap();
        assert_eq!(elevated_caller.claims.acr, ACR_MFA);
        assert_eq!(elevated_caller.claims.auth_time, clock.now().secs());
        assert_eq!(
            elevated_caller.claims.sid, caller.claims.sid,
            "{name}: same session"
        );

        // the phone change: pending; old number keeps working; new number replaces it on proof
        let pending = factors::change_phone(&deps, &elevated_caller, &factor, phone())
            .await
            .unwrap();
        assert_eq!(pending.sent_to, "***-***-1234");
        let new_code = last_code(&outbox);
        let still = password_challenge(&deps, &user).await;
        codes::send_code(
            &deps,
            &still,
            &SendCodeRequest {
                method: "sms".into(),
                factor_id: Some(factor.clone()),
            },
            &RequestMeta::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            outbox.sent().last().unwrap().to,
            "+12025550143",
            "{name}: old number until the new one is proven"
        );
        let proven = factors::verify_factor(
            &deps,
            Enroller::Session(&elevated_caller),
            &pending.factor_id,
            &VerifyFactorRequest::with_code(SecretString::new(new_code)),
        )
        .await
        .unwrap();
        assert_eq!(
            proven.factor.status,
            portcullis::storage::FactorStatus::Active
        );
        assert!(
            deps.stores
                .factors
                .get_factor(&user, &factor)
                .await
                .unwrap()
                .is_none(),
            "{name}: old factor replaced"
        );
        assert!(alerted(&outbox, "alert_phone_changed"));
        let kinds = event_kinds(&deps, &user).await;
        assert!(
            kinds.contains(&"phone_changed".to_owned()),
            "{name}: a phone change is audited as such: {kinds:?}"
        );

        // elevation lasts 5 minutes
        clock.advance_secs(300);
        assert!(!elevated_caller.is_elevated(&deps), "{name}");
        assert_eq!(
            factors::remove(&deps, &elevated_caller, &pending.factor_id)
                .await
                .unwrap_err(),
            ApiError::StepUpRequired
        );

        // a step-up challenge belongs to its session
        let (other_session, _) = sms_sign_in(&deps, &user, &outbox, false).await;
        let started = start_step_up(&deps, &caller, "totp").await;
        assert_eq!(
            step_up::challenge_of(&deps, &other_session, &started.challenge_id)
                .await
                .unwrap_err(),
            ApiError::ChallengeExpired,
            "{name}"
        );
    }
}

/// The device store, with every device removed the moment a sign-in has read it: a removal
/// (or a password reset) landing while the sign-in checks the password.
struct RemovedOnceRead(std::sync::Arc<dyn portcullis::storage::DeviceStore>);

#[async_trait::async_trait]
impl portcullis::storage::DeviceStore for RemovedOnceRead {
    async fn create_device(
        &self,
        device: &portcullis::storage::DeviceRecord,
    ) -> Result<(), portcullis::error::StoreError> {
        self.0.create_device(device).await
    }
    async fn get_device(
        &self,
        user_id: &UserId,
        device_id: &str,
        now: portcullis::UnixTime,
    ) -> Result<Option<portcullis::storage::DeviceRecord>, portcullis::error::StoreError> {
        let device = self.0.get_device(user_id, device_id, now).await?;
        self.0.delete_device(user_id, device_id).await?;
        Ok(device)
    }
    async fn list_devices(
        &self,
        user_id: &UserId,
        now: portcullis::UnixTime,
    ) -> Result<Vec<portcullis::storage::DeviceRecord>, portcullis::error::StoreError> {
        self.0.list_devices(user_id, now).await
    }
    async fn touch_device(
        &self,
        user_id: &UserId,
        device_id: &str,
        token_digest: &str,
        now: portcullis::UnixTime,
    ) -> Result<bool, portcullis::error::StoreError> {
        self.0
            .touch_device(user_id, device_id, token_digest, now)
            .await
    }
    async fn delete_device(
        &self,
        user_id: &UserId,
        device_id: &str,
    ) -> Result<bool, portcullis::error::StoreError> {
        self.0.delete_device(user_id, device_id).await
    }
    async fn delete_all_devices(
        &self,
        user_id: &UserId,
    ) -> Result<u32, portcullis::error::StoreError> {
        self.0.delete_all_devices(user_id).await
    }
}

#[tokio::test]
async fn a_device_removed_during_its_sign_in_issues_nothing_and_mfa_is_asked() {
    for (name, mut deps, _clock, outbox) in all_deps_with_notifier().await {
        let user = user_with_phone(&deps, "gone").await;
        let (_, token) = sms_sign_in(&deps, &user, &outbox, true).await;
        let token = token.unwrap();
        deps.stores.devices = std::sync::Arc::new(RemovedOnceRead(deps.stores.devices.clone()));
        let answer = sign_in_with_device(&deps, &user, Some(&token)).await;
        assert_eq!(
            answer.status(),
            "mfa_required",
            "{name}: the device was read as trusted, but gone before it was used"
        );
        assert!(answer.tokens().is_none(), "{name}: no tokens");
        let kinds = event_kinds(&deps, &user).await;
        assert!(
            kinds.iter().any(|k| k == "sign_in_aborted"),
            "{name}: the aborted sign-in is audited: {kinds:?}"
        );
        // The challenge it opened works as any other: the password counter was not left busy.
        assert_eq!(
            sign_in_with_device(&deps, &user, Some(&token))
                .await
                .status(),
            "mfa_required",
            "{name}"
        );
    }
}

/// The recovery store, failing every count while `failing` is set.
struct FlakyRecoveryCount {
    inner: std::sync::Arc<dyn portcullis::storage::RecoveryStore>,
    failing: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl portcullis::storage::RecoveryStore for FlakyRecoveryCount {
    async fn replace_recovery_codes(
        &self,
        user_id: &UserId,
        codes: &[portcullis::storage::RecoveryCodeRecord],
    ) -> Result<(), portcullis::error::StoreError> {
        self.inner.replace_recovery_codes(user_id, codes).await
    }
    async fn get_recovery_code(
        &self,
        user_id: &UserId,
        tag: &str,
    ) -> Result<Option<portcullis::storage::RecoveryCodeRecord>, portcullis::error::StoreError>
    {
        self.inner.get_recovery_code(user_id, tag).await
    }
    async fn use_recovery_code(
        &self,
        user_id: &UserId,
        tag: &str,
        now: portcullis::UnixTime,
    ) -> Result<bool, portcullis::error::StoreError> {
        self.inner.use_recovery_code(user_id, tag, now).await
    }
    async fn remaining_recovery_codes(
        &self,
        user_id: &UserId,
    ) -> Result<u32, portcullis::error::StoreError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(portcullis::error::StoreError::Unavailable(
                "injected".into(),
            ));
        }
        self.inner.remaining_recovery_codes(user_id).await
    }
}

#[tokio::test]
async fn a_store_error_after_the_password_attempt_is_counted_gives_the_attempt_back() {
    for (name, mut deps, _clock, _outbox) in all_deps_with_notifier().await {
        let user = user_with_phone(&deps, "hiccup").await;
        let flaky = std::sync::Arc::new(FlakyRecoveryCount {
            inner: deps.stores.recovery.clone(),
            failing: std::sync::atomic::AtomicBool::new(true),
        });
        deps.stores.recovery = flaky.clone();
        // A device token that skips nothing (unknown device): the recovery count is read
        // after the attempt is reserved, and fails.
        let meta = RequestMeta {
            device_token: Some(SecretString::new("dv_unknown.secret".into())),
            ..RequestMeta::default()
        };
        for _ in 0..deps.settings.lockout_threshold + 2 {
            let request = SignInRequest {
                user_id: user.to_string(),
                password: SecretString::new(PASSWORD.into()),
            };
            assert_eq!(
                sign_in(&deps, request, &meta).await.unwrap_err(),
                ApiError::ServiceUnavailable,
                "{name}"
            );
        }
        flaky
            .failing
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let request = SignInRequest {
            user_id: user.to_string(),
            password: SecretString::new(PASSWORD.into()),
        };
        assert_eq!(
            sign_in(&deps, request, &meta).await.unwrap().status(),
            "mfa_required",
            "{name}: no attempt was left reserved (else: rate_limited or locked)"
        );
    }
}

/// The session store, with the user deactivated or their security stamp raised the moment a
/// session is written, once armed: a revocation landing between a sign-in's writes and its
/// last check.
struct OvertakenAtSession(std::sync::Arc<dyn SessionStore>, Overtake);

/// What [`OvertakenAtSession`] does once armed.
struct Overtake {
    users: std::sync::Arc<dyn portcullis::storage::UserStore>,
    landing: Landing,
    armed: std::sync::atomic::AtomicBool,
}

/// What lands the moment a session is written.
#[derive(Clone, Copy)]
enum Landing {
    Deactivation,
    /// A password or MFA reset.
    StampRaise,
    /// Every role taken away.
    RoleRemoval,
    /// A first role (`support`) given.
    FirstRole,
    /// `admin` given to someone with a role already.
    RoleAdded,
}

crate::wrap_store! {
    SessionStore for OvertakenAtSession
    {
        async fn create_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
            self.0.create_session(session).await?;
            let Overtake {
                users,
                landing,
                armed,
            } = &self.1;
            if armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
                let user = &session.user_id;
                match landing {
                    Landing::Deactivation => {
                        let inactive = portcullis::storage::UserStatus::Inactive;
                        users.set_status(user, inactive).await?;
                    }
                    Landing::StampRaise => users.raise_security_stamp(user).await?,
                    Landing::RoleRemoval => {
                        let had = users.get_user(user).await?.map(|u| u.roles);
                        users.set_roles(user, &had.unwrap_or_default(), &[]).await?;
                    }
                    Landing::FirstRole => users.set_roles(user, &[], &["support".into()]).await?,
                    Landing::RoleAdded => {
                        let had = users.get_user(user).await?.map(|u| u.roles);
                        let had = had.unwrap_or_default();
                        let more = [had.clone(), vec!["admin".into()]].concat();
                        users.set_roles(user, &had, &more).await?;
                    }
                }
            }
            Ok(())
        }
    }
    get_session(u: &UserId, s: &str) -> Option<SessionRecord>;
    rotate_refresh(u: &UserId, s: &str, r: portcullis::storage::Rotation<'_>) -> bool;
    revoke_session(u: &UserId, s: &str) -> ();
    restamp_session(u: &UserId, s: &str, from: u64, to: u64) -> bool;
    list_sessions(u: &UserId) -> Vec<SessionRecord>;
    elevate_session(u: &UserId, s: &str, at: portcullis::UnixTime, amr: &[String], acr: &str) -> ();
}

fn overtaken(deps: &mut Deps, landing: Landing) -> std::sync::Arc<OvertakenAtSession> {
    let store = std::sync::Arc::new(OvertakenAtSession(
        deps.stores.sessions.clone(),
        Overtake {
            users: deps.stores.users.clone(),
            landing,
            armed: std::sync::atomic::AtomicBool::new(false),
        },
    ));
    deps.stores.sessions = store.clone();
    store
}

async fn no_devices(deps: &Deps, user: &UserId) -> bool {
    deps.stores
        .devices
        .list_devices(user, deps.clock.now())
        .await
        .unwrap()
        .is_empty()
}

fn no_live_session(sessions: &[portcullis::storage::SessionRecord]) -> bool {
    sessions.iter().all(|s| s.revoked)
}

#[tokio::test]
async fn a_deactivation_landing_during_a_sign_in_issues_nothing() {
    sign_in_overtaken_by(Landing::Deactivation, ApiError::AccountInactive).await;
}

/// A role taken away between an MFA sign-in's read of the user and its last check: the tokens
/// would carry the role, so nothing is issued. A role removal moves no stamp (it ends no
/// session), so only the roles' comparison in `confirm_current` catches it.
#[tokio::test]
async fn a_role_removal_landing_during_a_sign_in_issues_nothing() {
    sign_in_overtaken_by(Landing::RoleRemoval, ApiError::ChallengeExpired).await;
}

/// A first role given between an MFA sign-in's read of the user and its last check: the
/// sign-in was made under a non-staff's rules (a trusted device asked for, perhaps an email
/// code), so nothing is issued; the grant's write moved the stamp.
#[tokio::test]
async fn a_first_role_landing_during_a_sign_in_issues_nothing() {
    sign_in_overtaken_by(Landing::FirstRole, ApiError::ChallengeExpired).await;
}

/// Another role given to a staff member while they sign in does not stop the sign-in (else
/// one admin could keep a colleague out by granting and taking away `support` in a loop): the
/// tokens carry the roles the sign-in judged, the new one comes with the next refresh.
#[tokio::test]
async fn a_role_added_during_a_staff_sign_in_does_not_stop_it() {
    for (name, mut deps, _clock, outbox) in all_deps_with_notifier().await {
        let user = user_with_phone(&deps, "added").await;
        set_roles(&deps, &user, &["support"]).await;
        let (opened, v, from) =
            overtaken_sign_in(&mut deps, &user, &outbox, Landing::RoleAdded).await;
        let signed =
            portcullis::service::complete::complete_mfa_sign_in(&deps, v, &opened, None, &from)
                .await
                .unwrap();
        let tokens = signed.into_tokens().unwrap();
        let caller = bearer(&deps, &tokens.access_token).await.unwrap();
        assert_eq!(caller.claims.roles, ["support"], "{name}: the roles judged");
        let now = stored_user(&deps, &user).await.roles;
        assert_eq!(now, ["support", "admin"], "{name}");
    }
}

/// An MFA sign-in of `user`, its code right, with `landing` armed to land when its session is
/// written: the opened challenge, the proof, and the caller's details.
async fn overtaken_sign_in(
    deps: &mut Deps,
    user: &UserId,
    outbox: &portcullis::notifier::RecordingNotifier,
    landing: Landing,
) -> (
    codes::MfaSignIn,
    portcullis::service::codes::Verified,
    RequestMeta,
) {
    let store = overtaken(deps, landing);
    // Opened (and its user read) before the change lands, as the verify route does.
    let opened = codes::open_mfa_sign_in(deps, &password_step(deps, user).await)
        .await
        .unwrap();
    send_by(deps, opened.record(), "sms").await.unwrap();
    let code = SecretString::new(last_code(outbox));
    let v = answer_code(deps, opened.record(), "sms", &code)
        .await
        .unwrap();
    store
        .1
        .armed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let from = RequestMeta {
        user_agent: Some(portcullis_ua()),
        ..RequestMeta::default()
    };
    (opened, v, from)
}

async fn sign_in_overtaken_by(landing: Landing, refusal: ApiError) {
    for (name, mut deps, _clock, outbox) in all_deps_with_notifier().await {
        let user = user_with_phone(&deps, "overtaken").await;
        // Staff get no trusted device: only the role case needs a role to take away.
        if matches!(landing, Landing::RoleRemoval) {
            set_roles(&deps, &user, &["support"]).await;
        }
        let (opened, v, from) = overtaken_sign_in(&mut deps, &user, &outbox, landing).await;
        let trust = Some(TrustRequest::default());
        let result =
            portcullis::service::complete::complete_mfa_sign_in(&deps, v, &opened, trust, &from)
                .await;
        assert_eq!(result.unwrap_err(), refusal, "{name}");
        let sessions = deps.stores.sessions.list_sessions(&user).await.unwrap();
        assert!(no_live_session(&sessions), "{name}: {sessions:?}");
        assert!(
            no_devices(&deps, &user).await,
            "{name}: the device trusted in that sign-in is removed"
        );
        assert!(
            event_kinds(&deps, &user)
                .await
                .iter()
                .any(|k| k == "sign_in_aborted"),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_password_reset_landing_during_a_trusted_device_sign_in_issues_nothing() {
    for (name, mut deps, _clock, outbox) in all_deps_with_notifier().await {
        let user = user_with_phone(&deps, "overreset").await;
        let (_, token) = sms_sign_in(&deps, &user, &outbox, true).await;
        let store = overtaken(&mut deps, Landing::StampRaise);
        let before: Vec<String> = deps
            .stores
            .sessions
            .list_sessions(&user)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.session_id)
            .collect();
        store
            .1
            .armed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let request = SignInRequest {
            user_id: user.to_string(),
            password: SecretString::new(PASSWORD.into()),
        };
        let meta = RequestMeta {
            device_token: token.map(SecretString::new),
            ..RequestMeta::default()
        };
        assert_eq!(
            sign_in(&deps, request, &meta).await.unwrap_err(),
            ApiError::ChallengeExpired,
            "{name}: the stamp moved after the user was read"
        );
        let new: Vec<_> = deps
            .stores
            .sessions
            .list_sessions(&user)
            .await
            .unwrap()
            .into_iter()
            .filter(|s| !before.contains(&s.session_id))
            .collect();
        assert_eq!(new.len(), 1, "{name}: the sign-in wrote its session");
        assert!(new[0].revoked, "{name}: and it is revoked: {new:?}");
    }
}

#[tokio::test]
async fn a_reset_after_the_challenge_opened_ends_the_sign_in_even_when_the_user_is_read_again() {
    for (name, deps, _clock, outbox, user) in all_deps_with_phoned_user("stale").await {
        let v = sms_verified(&deps, &user, &outbox).await;
        // A password or MFA reset lands after the code was checked: complete_sign_in reads
        // the user afresh (new stamp), and must still refuse.
        deps.stores.users.raise_security_stamp(&user).await.unwrap();
        assert_eq!(
            complete_sign_in(&deps, v, None, &RequestMeta::default())
                .await
                .unwrap_err(),
            ApiError::ChallengeExpired,
            "{name}"
        );
        assert!(
            no_sessions(&deps, &user).await,
            "{name}: no session written"
        );
    }
}
