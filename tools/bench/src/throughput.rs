//! Throughput through the local endpoint: how many password steps per second this machine
//! answers over HTTP when nothing but the hash is serialised.
//!
//! The local endpoint's server (`portcullis_local_gateway::server`, the same route table,
//! event building and handlers as `portcullis-local`) runs in this process on a tokio runtime
//! with one worker per core, over the in-memory adapter (and, when an emulator is configured,
//! over DynamoDB on it, reported beside). Client threads on loopback post the
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
use portcullis::{Clock, Deps, SystemClock};
use portcullis_local_gateway::{TEMPLATE, registry, routes, server};

use crate::PASSWORD;

/// Password steps per round on the in-memory adapter; three rounds, the median reported.
const SIGN_INS: usize = 300;
/// Against the emulator: fewer (each user is written to it first, untimed).
const SIGN_INS_EMULATED: usize = 100;
const ROUNDS: usize = 3;

/// One adapter's figures.
struct Through {
    rates: Vec<f64>,
    latencies: Vec<Duration>,
}

impl Through {
    fn rate(&self) -> f64 {
        let mut rates = self.rates.clone();
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    }

    fn percentile(&self, q: f64) -> f64 {
        let mut l = self.latencies.clone();
        l.sort();
        l[((l.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0
    }

    fn rounds(&self) -> String {
        self.rates
            .iter()
            .map(|r| format!("{r:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn report(argon_ms: f64) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let clients = 4 * cores;
    let memory = Deps::in_memory(
        Settings::defaults("bench"),
        Arc::new(SystemClock) as Arc<dyn Clock>,
    )
    .unwrap();
    let phc = memory.hasher.hash(PASSWORD.as_bytes()).unwrap();
    let parallel_argon = argon_on_every_core(&memory, &phc, cores);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .unwrap();
    let in_memory = through(&runtime, memory, &phc, "tp", SIGN_INS, clients);
    let emulated = crate::emulator_configured().then(|| {
        let deps = runtime.block_on(async {
            let mut settings = Settings::from_env().unwrap();
            settings.argon2 = Settings::defaults("x").argon2;
            Deps::with_aws(settings).await.unwrap()
        });
        let prefix = format!("tp-{}", std::process::id());
        through(&runtime, deps, &phc, &prefix, SIGN_INS_EMULATED, clients)
    });
    let goal_base = cores as f64 * 1000.0 / argon_ms;
    let rate = in_memory.rate();

    println!("## Throughput: password steps through the local endpoint\n");
    println!(
        "The local endpoint's HTTP server in process (the template's routes, API Gateway events, \
         the sign-in function's handler) on a tokio runtime of {cores} workers; {clients} client \
         threads on loopback post a right password for a distinct user each (every answer \
         checked: 200 `mfa_required`), {ROUNDS} rounds, the median round. Baselines from this \
         run: argon2id verifications per second on one thread (the first table), and on {cores} \
         threads at once. The in-memory adapter shows what the code around the hash costs; \
         against the emulator (the same moto server as above, which answers DynamoDB one \
         request at a time) the store's round trips come on top, on the same {cores} cores.\n"
    );
    println!("| measurement | per second | ÷ the goal's baseline | latency p50 / p99 (ms) |");
    println!("|---|---:|---:|---:|");
    println!(
        "| {cores} × argon2id per second on one thread (the goal's baseline) | {goal_base:.1} | 1.00 | |"
    );
    println!(
        "| argon2id on {cores} threads at once | {parallel_argon:.1} | {:.3} | |",
        parallel_argon / goal_base
    );
    let row = |name: String, t: &Through| {
        println!(
            "| {name} (rounds: {}) | {:.1} | {:.3} | {:.1} / {:.1} |",
            t.rounds(),
            t.rate(),
            t.rate() / goal_base,
            t.percentile(0.5),
            t.percentile(0.99)
        );
    };
    row(
        format!("password steps, in-memory adapter, {SIGN_INS} a round"),
        &in_memory,
    );
    if let Some(t) = &emulated {
        row(
            format!("password steps against the emulator, {SIGN_INS_EMULATED} a round"),
            t,
        );
    }
    println!(
        "\nPassword steps per second through the local endpoint (in-memory adapter) ÷ ({cores} × \
         argon2 per second per core) = **{:.3}** (goal ≥ 0.9); ÷ argon2 on {cores} threads at \
         once = {:.3}.\n",
        rate / goal_base,
        rate / parallel_argon,
    );
    if let Ok(path) = std::env::var("BENCH_THROUGHPUT_JSON") {
        let doc = serde_json::json!({
            "cores": cores,
            "clients": clients,
            "rate": rate,
            "rounds": in_memory.rates,
            "goal_base": goal_base,
            "argon_parallel": parallel_argon,
            "ratio": rate / goal_base,
            "p50_ms": in_memory.percentile(0.5),
            "p99_ms": in_memory.percentile(0.99),
            "emulated_rate": emulated.as_ref().map(Through::rate),
        });
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    }
}

/// Writes `per_round × ROUNDS` users (a phone factor each) to `deps`, serves the local
/// endpoint over them, and times the rounds.
fn through(
    runtime: &tokio::runtime::Runtime,
    deps: Deps,
    phc: &str,
    prefix: &str,
    per_round: usize,
    clients: usize,
) -> Through {
    let users: Vec<String> = (0..per_round * ROUNDS)
        .map(|i| format!("{prefix}-{i}@example.com"))
        .collect();
    let base = runtime.block_on(async {
        for id in &users {
            let user = crate::create_with_hash(&deps, id, phc).await;
            crate::add_phone(&deps, &user).await;
        }
        let routes = routes::from_template(TEMPLATE).unwrap();
        let gateway = server::Gateway::new(routes, registry::handlers(), deps.clone()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(server::serve(listener, Arc::new(gateway)));
        base
    });
    let mut out = Through {
        rates: Vec::new(),
        latencies: Vec::new(),
    };
    for round in users.chunks(per_round) {
        let (rate, mut lat) = round_of(&base, round, clients);
        out.rates.push(rate);
        out.latencies.append(&mut lat);
    }
    out
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
