//! Throughput through the local endpoint: how many password steps per second this machine
//! answers over HTTP when nothing but the hash is serialised.
//!
//! The local endpoint's server (`portcullis_local_gateway::server`, the same route table,
//! event building and handlers as `portcullis-local`) runs in this process on a tokio runtime
//! with one worker per core, over the in-memory adapter. Client threads on loopback post the
//! right password of a distinct user each (every answer must be 200 `mfa_required`: a phone
//! factor, the challenge opened). The baselines come from the same run, just before:
//! - the goal's: the cores × argon2id verifications per second on one thread;
//! - what the cores give at once: one thread per core verifying, nothing else running.
//!
//! `BENCH_THROUGHPUT_JSON=path` also writes the figures (for `scripts/goals.py`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use portcullis::config::Settings;
use portcullis::storage::{Delivery, FactorKind, FactorRecord, FactorStatus};
use portcullis::{Clock, Deps, SystemClock};
use portcullis_local_gateway::{TEMPLATE, registry, routes, server};

use crate::PASSWORD;

/// Password steps per round; three rounds, the median reported.
const SIGN_INS: usize = 300;
const ROUNDS: usize = 3;

pub fn report(argon_ms: f64) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let clients = 4 * cores;
    let deps = Deps::in_memory(
        Settings::defaults("bench"),
        Arc::new(SystemClock) as Arc<dyn Clock>,
    )
    .unwrap();
    let phc = deps.hasher.hash(PASSWORD.as_bytes()).unwrap();
    let parallel_argon = argon_on_every_core(&deps, &phc, cores);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .unwrap();
    let users: Vec<String> = (0..SIGN_INS * ROUNDS)
        .map(|i| format!("tp-{i}@example.com"))
        .collect();
    let base = runtime.block_on(async {
        for id in &users {
            crate::create_with_hash(&deps, id, &phc).await;
            deps.stores
                .factors
                .create_factor(&FactorRecord {
                    user_id: portcullis::identity::UserId::parse(id).unwrap(),
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
        }
        let routes = routes::from_template(TEMPLATE).unwrap();
        let gateway = server::Gateway::new(routes, registry::handlers(), deps.clone()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(server::serve(listener, Arc::new(gateway)));
        base
    });

    let mut rates = Vec::new();
    let mut latencies = Vec::new();
    for round in users.chunks(SIGN_INS) {
        let (rate, mut lat) = round_of(&base, round, clients);
        rates.push(rate);
        latencies.append(&mut lat);
    }
    rates.sort_by(f64::total_cmp);
    latencies.sort();
    let rate = rates[rates.len() / 2];
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    let per_core = 1000.0 / argon_ms;
    let goal_base = cores as f64 * per_core;

    println!("## Throughput: password steps through the local endpoint (in-memory adapter)\n");
    println!(
        "The local endpoint's HTTP server in process (the template's routes, API Gateway events, \
         the sign-in function's handler) on a tokio runtime of {cores} workers, over the in-memory \
         adapter; {clients} client threads on loopback post a right password for a distinct user \
         each (every answer checked: 200 `mfa_required`). {ROUNDS} rounds of {SIGN_INS}; the median \
         round. Baselines from this run: argon2id verifications per second on one thread (the \
         first table), and on {cores} threads at once.\n"
    );
    println!("| measurement | per second | ratio |");
    println!("|---|---:|---:|");
    println!(
        "| {cores} × argon2id per second on one thread (the goal's baseline) | {goal_base:.1} | 1.00 |"
    );
    println!(
        "| argon2id on {cores} threads at once | {parallel_argon:.1} | {:.3} |",
        parallel_argon / goal_base
    );
    println!(
        "| password steps through the local endpoint (median of {ROUNDS} rounds: {}) | {rate:.1} | **{:.3}** |",
        rates
            .iter()
            .map(|r| format!("{r:.1}"))
            .collect::<Vec<_>>()
            .join(", "),
        rate / goal_base
    );
    println!(
        "\nPassword steps per second ÷ ({cores} × argon2 per second per core) = **{:.3}** (goal ≥ 0.9); \
         ÷ argon2 on {cores} threads at once = {:.3}. Latency of a password step under this load: \
         p50 {:.1} ms, p99 {:.1} ms.\n",
        rate / goal_base,
        rate / parallel_argon,
        p(0.5),
        p(0.99)
    );
    if let Ok(path) = std::env::var("BENCH_THROUGHPUT_JSON") {
        let doc = serde_json::json!({
            "cores": cores,
            "clients": clients,
            "rate": rate,
            "rounds": rates,
            "goal_base": goal_base,
            "argon_parallel": parallel_argon,
            "ratio": rate / goal_base,
            "p50_ms": p(0.5),
            "p99_ms": p(0.99),
        });
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    }
}

/// argon2id verifications per second with one thread per core, all at once.
fn argon_on_every_core(deps: &Deps, phc: &str, cores: usize) -> f64 {
    const EACH: usize = 40;
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..cores {
            scope.spawn(|| {
                for _ in 0..EACH {
                    std::hint::black_box(deps.hasher.verify(phc, b"wrong password here"));
                }
            });
        }
    });
    (cores * EACH) as f64 / start.elapsed().as_secs_f64()
}

/// One round: `clients` threads share the users; returns sign-ins per second and latencies.
fn round_of(base: &str, users: &[String], clients: usize) -> (f64, Vec<Duration>) {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let latencies: Vec<Duration> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(user) = users.get(i) else { break };
                        let body = serde_json::json!({"user_id": user, "password": PASSWORD});
                        let t = Instant::now();
                        let mut answer = agent
                            .post(format!("{base}/v1/sign-in"))
                            .header("content-type", "application/json")
                            .send(body.to_string())
                            .unwrap();
                        let status = answer.status().as_u16();
                        let text = answer.body_mut().read_to_string().unwrap_or_default();
                        mine.push(t.elapsed());
                        let json: serde_json::Value =
                            serde_json::from_str(&text).unwrap_or_default();
                        assert!(
                            status == 200 && json["status"] == "mfa_required",
                            "password step through the local endpoint: {status} {text}"
                        );
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    (
        users.len() as f64 / start.elapsed().as_secs_f64(),
        latencies,
    )
}
