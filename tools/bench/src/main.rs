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
use portcullis::edge::RequestMeta;
use portcullis::identity::UserId;
use portcullis::service::sign_in::{SignInRequest, sign_in};
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

    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(deps.hasher.verify(&phc, b"wrong password here"));
    }
    let argon = per_op(start.elapsed(), n);

    // Wrong passwords on distinct users so no lock interferes; clock moves to keep them apart.
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(create(&deps, &format!("wrong-{i}@example.com")).await);
    }
    let start = Instant::now();
    for id in &ids {
        let _ = std::hint::black_box(attempt(&deps, id.as_str(), "wrong password here").await);
    }
    let wrong = per_op(start.elapsed(), n);

    let start = Instant::now();
    for i in 0..n {
        let _ = std::hint::black_box(
            attempt(
                &deps,
                &format!("ghost-{i}@example.com"),
                "wrong password here",
            )
            .await,
        );
    }
    let unknown = per_op(start.elapsed(), n);

    let start = Instant::now();
    for _ in 0..n {
        attempt(&deps, user.as_str(), PASSWORD).await.unwrap();
    }
    let success = per_op(start.elapsed(), n);

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

    emulator(n.min(20)).await;
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
