//! `scripts/bench.sh` runs this (release build) and writes its report to `BENCHMARKS.md`.
//!
//! Everything is measured in one run on one thread, so the ratios hold on a noisy machine:
//! - argon2id verification alone (production parameters);
//! - the sign-in service on the in-memory adapter (wrong password, unknown user, success);
//! - their ratio, and sign-ins per second per core vs argon2 hashes per second per core;
//! - with the emulator configured (`AWS_ENDPOINT_URL`, `PORTCULLIS_TABLE`): the AWS calls one
//!   sign-in makes, by service and operation, counted by the SDK interceptor, and its latency
//!   beside the emulator's bare round trip.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a measuring tool: failing loudly is right

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::config::Settings;
use portcullis::crypto::SecretString;
use portcullis::crypto::totp::TotpSecret;
use portcullis::edge::RequestMeta;
use portcullis::identity::UserId;
use portcullis::notifier::RecordingNotifier;
use portcullis::service::codes::{self, SendCodeRequest};
use portcullis::service::complete::complete_sign_in;
use portcullis::service::sign_in::{SignInRequest, sign_in};
use portcullis::service::tokens::{self, RefreshRequest};
use portcullis::storage::{Delivery, FactorKind, FactorRecord, FactorStatus};
use portcullis::storage::{UserRecord, UserStatus};
use portcullis::{Clock, Deps, ManualClock, SystemClock, UnixTime};

const PASSWORD: &str = "benchmark passphrase 2026";

fn per_op(total: Duration, n: u32) -> f64 {
    total.as_secs_f64() * 1000.0 / f64::from(n)
}

async fn create(deps: &Deps, id: &str) -> UserId {
    let user_id = UserId::parse(id).unwrap();
    let record = UserRecord {
        user_id: user_id.clone(),
        email: None,
        phone: None,
        password_hash: Some(deps.hasher.hash(PASSWORD.as_bytes()).unwrap()),
        status: UserStatus::Active,
        roles: vec![],
        created_at: deps.clock.now(),
        password_changed_at: None,
        last_sign_in_at: None,
        must_change_password: false,
        password_history: vec![],
    };
    let _ = deps.stores.users.create_user(&record).await;
    user_id
}

async fn attempt(deps: &Deps, user: &str, password: &str) -> Result<(), portcullis::ApiError> {
    let req = SignInRequest {
        user_id: user.into(),
        password: SecretString::new(password.into()),
    };
    sign_in(deps, req, &RequestMeta::default())
        .await
        .map(|_| ())
}

fn main() {
    // One thread for everything: per-core figures, and argon2 runs where the service runs.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let n: u32 = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let settings = Settings::defaults("bench");
    let clock = Arc::new(ManualClock::new(UnixTime(1_800_000_000)));
    let deps = Deps::in_memory(settings.clone(), clock.clone() as Arc<dyn Clock>).unwrap();
    let user = create(&deps, "bench@example.com").await;
    let phc = deps
        .stores
        .users
        .get_user(&user)
        .await
        .unwrap()
        .unwrap()
        .password_hash
        .unwrap();

    // Warm up caches and the memory pool.
    for _ in 0..3 {
        deps.hasher.verify(&phc, PASSWORD.as_bytes());
    }

    // Wrong passwords on distinct users so no lock interferes.
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(create(&deps, &format!("wrong-{i}@example.com")).await);
    }
    // Interleaved: each iteration times argon2 alone and then each sign-in flow once, so that
    // noise from the rest of the machine lands on baseline and flows alike.
    let (mut argon_t, mut wrong_t, mut unknown_t, mut success_t) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    for (i, id) in ids.iter().enumerate() {
        let t = Instant::now();
        std::hint::black_box(deps.hasher.verify(&phc, b"wrong password here"));
        argon_t += t.elapsed();
        let t = Instant::now();
        let _ = std::hint::black_box(attempt(&deps, id.as_str(), "wrong password here").await);
        wrong_t += t.elapsed();
        let ghost = format!("ghost-{i}@example.com");
        let t = Instant::now();
        let _ = std::hint::black_box(attempt(&deps, &ghost, "wrong password here").await);
        unknown_t += t.elapsed();
        let t = Instant::now();
        attempt(&deps, user.as_str(), PASSWORD).await.unwrap();
        success_t += t.elapsed();
    }
    let (argon, wrong, unknown, success) = (
        per_op(argon_t, n),
        per_op(wrong_t, n),
        per_op(unknown_t, n),
        per_op(success_t, n),
    );

    println!("## Sign-in: in process (in-memory adapter, one thread, {n} iterations each)\n");
    println!("| measurement | ms per operation | per second per core | ratio to argon2 alone |");
    println!("|---|---:|---:|---:|");
    println!(
        "| argon2id verification alone (m=19 MiB, t=2, p=1) | {argon:.2} | {:.1} | 1.00 |",
        1000.0 / argon
    );
    for (name, ms) in [
        ("sign-in, right password (challenge opened)", success),
        ("sign-in, wrong password", wrong),
        ("sign-in, unknown user (dummy hash)", unknown),
    ] {
        println!(
            "| {name} | {ms:.2} | {:.1} | {:.3} |",
            1000.0 / ms,
            argon / ms
        );
    }
    println!(
        "\nSign-ins per second per core ÷ argon2 hashes per second per core = **{:.3}** (goal ≥ 0.9).",
        argon / success
    );
    println!(
        "Unknown user vs wrong password, in-process time: {:.3} (1.0 = indistinguishable).\n",
        unknown / wrong
    );

    mfa_in_process(&deps, n).await;
    emulator(n.min(20)).await;
}

/// A user with an active phone and an active authenticator, directly in the stores.
async fn user_with_factors(deps: &Deps, id: &str) -> (UserId, TotpSecret) {
    let user = create(deps, id).await;
    deps.stores
        .factors
        .create_factor(&FactorRecord {
            user_id: user.clone(),
            factor_id: "f_phone".into(),
            kind: FactorKind::Phone {
                e164: "+12025550143".into(),
                delivery: Delivery::Sms,
            },
            status: FactorStatus::Active,
            created_at: deps.clock.now(),
            replaces: None,
        })
        .await
        .unwrap();
    let secret = TotpSecret::generate();
    let sealed = deps
        .sealer
        .seal(
            secret.as_bytes(),
            &codes::totp_context(user.as_str(), "f_totp"),
        )
        .await
        .unwrap();
    deps.stores
        .factors
        .create_factor(&FactorRecord {
            user_id: user.clone(),
            factor_id: "f_totp".into(),
            kind: FactorKind::Totp {
                secret_ciphertext: sealed,
                last_used_step: None,
            },
            status: FactorStatus::Active,
            created_at: deps.clock.now(),
            replaces: None,
        })
        .await
        .unwrap();
    (user, secret)
}

async fn challenge_for(deps: &Deps, user: &UserId) -> portcullis::storage::ChallengeRecord {
    let req = SignInRequest {
        user_id: user.to_string(),
        password: SecretString::new(PASSWORD.into()),
    };
    let answer = sign_in(deps, req, &RequestMeta::default()).await.unwrap();
    codes::open_challenge(deps, &answer.challenge_id.unwrap())
        .await
        .unwrap()
}

fn sms() -> SendCodeRequest {
    SendCodeRequest {
        method: "sms".into(),
        factor_id: None,
    }
}

/// One full SMS sign-in after the password: send, verify, open the session.
async fn sms_flow(
    deps: &Deps,
    user: &UserId,
    outbox: &RecordingNotifier,
) -> (f64, f64, portcullis::service::tokens::Tokens) {
    let c = challenge_for(deps, user).await;
    let t = Instant::now();
    codes::send_code(deps, &c, &sms()).await.unwrap();
    let send = t.elapsed().as_secs_f64() * 1000.0;
    let code = outbox.sent().last().and_then(|m| m.code.clone()).unwrap();
    let t = Instant::now();
    let v = codes::check_code(deps, &c, "sms", &SecretString::new(code), None)
        .await
        .unwrap();
    let signed = complete_sign_in(deps, &v, None, &portcullis::edge::RequestMeta::default())
        .await
        .unwrap();
    (
        send,
        t.elapsed().as_secs_f64() * 1000.0,
        signed.tokens.unwrap(),
    )
}

async fn mfa_in_process(base: &Deps, n: u32) {
    let mut deps = base.clone();
    let (registry, outbox) = RecordingNotifier::registry();
    deps.notifiers = registry;
    let (user, secret) = user_with_factors(&deps, "mfa-bench@example.com").await;
    let (mut send, mut verify) = (0.0, 0.0);
    let mut refresh_token = String::new();
    for _ in 0..n {
        let (s, v, tokens) = sms_flow(&deps, &user, &outbox).await;
        send += s;
        verify += v;
        refresh_token = tokens.refresh_token;
    }
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(portcullis::crypto::totp::verify(
            &secret,
            "123456",
            1_800_000_000,
            None,
        ));
    }
    let totp_alone = per_op(t.elapsed(), n);
    let t = Instant::now();
    for _ in 0..n {
        let tokens = tokens::refresh(
            &deps,
            RefreshRequest {
                refresh_token: SecretString::new(refresh_token.clone()),
            },
        )
        .await
        .unwrap();
        refresh_token = tokens.refresh_token;
    }
    let refresh = per_op(t.elapsed(), n);
    let nf = f64::from(n);
    println!(
        "## MFA flows: in process (in-memory adapter, local HMAC and P-256 keys, {n} iterations)\n"
    );
    println!("| measurement | ms per operation |");
    println!("|---|---:|");
    println!(
        "| send an SMS code (recording notifier) | {:.3} |",
        send / nf
    );
    println!(
        "| verify the SMS code + open the session (JWT signed in process) | {:.3} |",
        verify / nf
    );
    println!("| TOTP verification alone (3 steps compared, constant time) | {totp_alone:.4} |");
    println!("| refresh (rotate + new JWT) | {refresh:.3} |");
    println!();
}

async fn emulator(n: u32) {
    if std::env::var("AWS_ENDPOINT_URL").is_err() || std::env::var("PORTCULLIS_TABLE").is_err() {
        println!("_No emulator configured: AWS call counts skipped (run scripts/bench.sh)._");
        return;
    }
    let mut settings = Settings::from_env().unwrap();
    settings.argon2 = Settings::defaults("x").argon2;
    let mut deps = Deps::with_aws(settings).await.unwrap();
    deps.clock = Arc::new(SystemClock);
    let run_id = std::process::id();
    let user = create(&deps, &format!("bench-{run_id}@example.com")).await;

    println!("## Sign-in against the emulator (moto on loopback)\n");
    println!("AWS calls per sign-in, counted by the SDK interceptor:\n");
    println!("| flow | calls | by service and operation |");
    println!("|---|---:|---|");
    let flows: Vec<(&str, String, &str)> = vec![
        (
            "right password, no factor → mfa_enrolment_required",
            user.to_string(),
            PASSWORD,
        ),
        (
            "wrong password (1st failure)",
            format!("w1-{run_id}@example.com"),
            "wrong password here",
        ),
        (
            "unknown user (1st failure)",
            format!("ghost-{run_id}@example.com"),
            "wrong password here",
        ),
    ];
    for (name, id, password) in &flows {
        if name.starts_with("wrong") {
            create(&deps, id).await;
        }
        deps.calls.reset();
        let _ = attempt(&deps, id, password).await;
        report_calls(name, &deps);
    }
    // A second failure on the same ID takes the counter's "continue the run" path.
    let id = format!("w1-{run_id}@example.com");
    deps.calls.reset();
    let _ = attempt(&deps, &id, "wrong password here").await;
    report_calls("wrong password (2nd failure)", &deps);
    let locked = format!("lk-{run_id}@example.com");
    for _ in 0..5 {
        let _ = attempt(&deps, &locked, "wrong password here").await;
    }
    deps.calls.reset();
    let _ = attempt(&deps, &locked, "wrong password here").await;
    report_calls("during a lock (password not evaluated)", &deps);

    // MFA flows through the real adapters: DynamoDB, KMS (HMAC, encrypt, sign) and SNS.
    let (mfa_user, secret) = user_with_factors(&deps, &format!("mfa-{run_id}@example.com")).await;
    let c = challenge_for(&deps, &mfa_user).await;
    deps.calls.reset();
    codes::send_code(&deps, &c, &sms()).await.unwrap();
    report_calls("send an SMS code (SNS Publish)", &deps);
    deps.calls.reset();
    let wrong =
        codes::check_code(&deps, &c, "sms", &SecretString::new("000000".into()), None).await;
    assert!(wrong.is_err());
    report_calls("verify a wrong SMS code", &deps);
    let c = challenge_for(&deps, &mfa_user).await;
    let now = deps.clock.now().secs();
    deps.calls.reset();
    let v = codes::check_code(
        &deps,
        &c,
        "totp",
        &SecretString::new(portcullis::crypto::totp::code_at(&secret, now)),
        None,
    )
    .await
    .unwrap();
    let signed = complete_sign_in(&deps, &v, None, &portcullis::edge::RequestMeta::default())
        .await
        .unwrap();
    report_calls("verify a TOTP code + open the session", &deps);
    deps.calls.reset();
    tokens::refresh(
        &deps,
        RefreshRequest {
            refresh_token: SecretString::new(signed.tokens.as_ref().unwrap().refresh_token.clone()),
        },
    )
    .await
    .unwrap();
    report_calls("refresh", &deps);

    // Latency beside the bare round trip of the emulator (one GetItem of a missing key).
    let probe = UserId::parse("no-such-user@example.com").unwrap();
    let start = Instant::now();
    for _ in 0..n {
        deps.stores.users.get_user(&probe).await.unwrap();
    }
    let rtt = per_op(start.elapsed(), n);
    let start = Instant::now();
    for _ in 0..n {
        attempt(&deps, user.as_str(), PASSWORD).await.unwrap();
    }
    let signin = per_op(start.elapsed(), n);
    println!("\n| latency against the emulator ({n} iterations) | ms | ratio to bare round trip |");
    println!("|---|---:|---:|");
    println!("| bare round trip (DynamoDB GetItem) | {rtt:.2} | 1.0 |");
    println!(
        "| sign-in, right password | {signin:.2} | {:.1} |",
        signin / rtt
    );
    // Verify latency: a fresh challenge and code per iteration; only verify + session timed.
    // Codes go through a recording notifier here so the benchmark can read them; DynamoDB and
    // KMS are the real adapters on the emulator.
    let mut recorded = deps.clone();
    let (registry, outbox) = RecordingNotifier::registry();
    recorded.notifiers = registry;
    let mut verify_total = 0.0;
    for _ in 0..n {
        let (_, v, _) = sms_flow(&recorded, &mfa_user, &outbox).await;
        verify_total += v;
    }
    let verify = verify_total / f64::from(n);
    println!(
        "| verify an SMS code + open the session (KMS GenerateMac and Sign, DynamoDB) | {verify:.2} | {:.1} |",
        verify / rtt
    );
}

fn report_calls(name: &str, deps: &Deps) {
    let calls = deps.calls.snapshot();
    let total: u64 = calls.values().sum();
    let detail: Vec<String> = calls
        .iter()
        .map(|((svc, op), c)| format!("{svc} {op} × {c}"))
        .collect();
    println!("| {name} | {total} | {} |", detail.join(", "));
}
