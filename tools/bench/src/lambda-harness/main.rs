//! `portcullis-lambda-harness`: each function's binary measured as Lambda runs it — binary
//! size, the size of the zip Lambda is given, init, cold start, warm invocations and peak
//! memory. `scripts/bench.sh` runs it on the release binaries for `BENCHMARKS.md`.
//!
//! ```text
//! portcullis-lambda-harness --bin-dir target/release --env-file .local/bench.env \
//!     --template infra/template.yaml [--warm 20] [--cold 3] \
//!     [--json-out .local/bench-lambda.json] [--log-dir DIR] [function ...]
//! ```
//!
//! For each function binary it serves the Runtime API ([`runtime_api`]) on a free loopback
//! port, spawns the binary with the Lambda environment plus the functions' environment (the
//! env file written by `scripts/provision.py`, pointing at an AWS emulator), and hands it one
//! representative event at a time ([`events`]). Measured per function:
//! - the binary's size, and the zip's (the binary as `bootstrap`, deflated at the default
//!   level, as `cargo lambda build --output-format zip` packs it);
//! - init: from spawning the process to its first request for an event (the runtime asks only
//!   once the function's start-up is done), median of `--cold` process starts;
//! - cold start: from spawning the process to the answer to the first event (queued before the
//!   spawn), median of `--cold` process starts;
//! - warm invocations: `--warm` further events on the first process, each timed from the
//!   moment the event is handed out to the moment its answer has been read (median and p90);
//! - peak memory: `VmHWM` of `/proc/PID/status` after the last warm invocation.
//!
//! Every event goes through the function's real handler and its AWS calls (against the
//! emulator the env file names); an answer other than the expected status, an invocation
//! error, an init error or a process that dies fails the run (exit status 1, with the end of
//! the function's output). The markdown section goes to stdout, progress to stderr.
//!
//! Access tokens for the protected routes are issued by the project's token code with the
//! signer its deps build from the env file: in the `kms` mode of token signing (SPEC §6, KMS
//! `Sign` with `PORTCULLIS_SIGNING_KEY_ID`), which the functions are then run in too, so their
//! cold start verifies with KMS `GetPublicKey` (the default envelope mode would read the key
//! record from DynamoDB instead: one call either way).

mod events;
mod report;
mod runtime_api;
mod setup;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::crypto::jwt::TokenSigner;
use portcullis::{Deps, Settings};
use serde_json::value::RawValue;

use events::{ACCOUNT_ID, Events, Scenario};
use report::{FunctionResult, Report};
use runtime_api::{Answer, Outcome, Pending, RuntimeApi};
use setup::FunctionSpec;

const USAGE: &str = "usage: portcullis-lambda-harness --bin-dir DIR --env-file FILE --template FILE
         [--warm N (20)] [--cold N (3)] [--json-out FILE] [--log-dir DIR] [function ...]";

/// Per invocation, cold start included (the template's Timeout is 10 s).
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a wait looks whether the process is still alive.
const POLL: Duration = Duration::from_millis(50);
/// Lines of the function's output shown with a failure.
const LOG_TAIL_LINES: usize = 30;

#[derive(Debug, Default)]
struct Args {
    bin_dir: PathBuf,
    env_file: PathBuf,
    template: PathBuf,
    warm: usize,
    cold: usize,
    json_out: Option<PathBuf>,
    log_dir: Option<PathBuf>,
    functions: Vec<String>,
}

fn parse_args(raw: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        warm: 20,
        cold: 3,
        ..Args::default()
    };
    let (mut bin_dir, mut env_file, mut template) = (None, None, None);
    let mut raw = raw.peekable();
    while let Some(arg) = raw.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.into())),
            _ => (arg.clone(), None),
        };
        if arg == "-h" {
            return Err(String::new());
        }
        if !flag.starts_with("--") {
            args.functions.push(arg);
            continue;
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| raw.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let count = |v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--bin-dir" => bin_dir = Some(PathBuf::from(value()?)),
            "--env-file" => env_file = Some(PathBuf::from(value()?)),
            "--template" => template = Some(PathBuf::from(value()?)),
            "--warm" => args.warm = count(value()?)?,
            "--cold" => args.cold = count(value()?)?,
            "--json-out" => args.json_out = Some(PathBuf::from(value()?)),
            "--log-dir" => args.log_dir = Some(PathBuf::from(value()?)),
            "--help" => return Err(String::new()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    let required = |v: Option<PathBuf>, name: &str| v.ok_or(format!("{name} is required"));
    args.bin_dir = required(bin_dir, "--bin-dir")?;
    args.env_file = required(env_file, "--env-file")?;
    args.template = required(template, "--template")?;
    if args.cold < 1 {
        return Err("--cold must be ≥ 1".into());
    }
    Ok(args)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{USAGE}\nportcullis-lambda-harness: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lambda-harness: FAILED: {e}");
            ExitCode::from(1)
        }
    }
}

/// The directory the functions' output goes to: `--log-dir`, kept, or a temporary one,
/// removed when the run ends (the tail is shown on a failure first).
struct LogDir {
    path: PathBuf,
    remove: bool,
}

impl LogDir {
    fn new(chosen: Option<&Path>) -> Result<Self, String> {
        let (path, remove) = match chosen {
            Some(dir) => (std::path::absolute(dir).map_err(|e| e.to_string())?, false),
            None => {
                let name = format!(
                    "lambda-harness-{}-{}",
                    std::process::id(),
                    runtime_api::hex(&portcullis::crypto::random_bytes::<4>())
                );
                (std::env::temp_dir().join(name), true)
            }
        };
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(LogDir { path, remove })
    }
}

impl Drop for LogDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

async fn run(args: &Args) -> Result<(), String> {
    let read =
        |path: &Path| std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()));
    let template = read(&args.template)?;
    let specs = setup::template_functions(&template)?;
    let names: Vec<String> = if args.functions.is_empty() {
        specs.iter().map(|s| s.binary.clone()).collect()
    } else {
        args.functions.clone()
    };
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| !specs.iter().any(|s| &s.binary == *n))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let all: Vec<&str> = specs.iter().map(|s| s.binary.as_str()).collect();
        return Err(format!(
            "not a function of the template: {} (functions: {})",
            unknown.join(", "),
            all.join(", ")
        ));
    }
    let missing: Vec<&str> = names
        .iter()
        .filter(|n| events::scenario(n).is_none())
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "no representative request defined for: {}",
            missing.join(", ")
        ));
    }
    let mut func_env =
        setup::parse_env_file(&read(&args.env_file)?, &args.env_file.display().to_string())?;
    // The harness's tokens are signed by KMS (see the module documentation).
    func_env.insert("PORTCULLIS_TOKEN_SIGNING".into(), "kms".into());
    let needs_token = names
        .iter()
        .filter_map(|n| events::scenario(n))
        .any(|s| s.needs_token());
    let settings = Settings::from_lookup(|name| func_env.get(name).cloned())
        .map_err(|e| format!("the env file's settings: {e}"))?;
    let (issuer, audience) = (
        settings.token_issuer.clone(),
        settings.token_audience.clone(),
    );
    let signer = if needs_token {
        Some(signer(&func_env, settings).await?)
    } else {
        None
    };
    let routes =
        portcullis_local_gateway::routes::from_template(&template).map_err(|e| e.to_string())?;
    let mut events = Events::new(routes, signer, issuer, audience);

    let log_dir = LogDir::new(args.log_dir.as_deref())?;
    let started = Instant::now();
    let mut results = Vec::new();
    for name in &names {
        let Some(spec) = specs.iter().find(|s| &s.binary == name) else {
            continue;
        };
        let Some(scenario) = events::scenario(name) else {
            continue;
        };
        let path = std::path::absolute(args.bin_dir.join(name)).map_err(|e| e.to_string())?;
        if !is_executable(&path) {
            return Err(format!(
                "{name}: no executable {} (build the release binaries)",
                path.display()
            ));
        }
        let t = Instant::now();
        let measure = Measure {
            spec,
            binary: &path,
            func_env: &func_env,
            scenario,
            log_dir: &log_dir.path,
        };
        let r = measure.run(&mut events, args.warm, args.cold).await?;
        eprintln!(
            "lambda-harness: {name}: zip {:.1} MiB, init {:.1} ms, cold {:.1} ms, warm {} ms, \
             {} MiB ({:.1} s)",
            r.zip_mib,
            r.init_ms,
            r.cold_start_ms,
            r.warm_ms_median.map_or("–".into(), |v| format!("{v:.1}")),
            r.peak_rss_mib.map_or("–".into(), |v| format!("{v:.1}")),
            t.elapsed().as_secs_f64()
        );
        results.push((name.clone(), r));
    }
    eprintln!(
        "lambda-harness: {} functions in {:.1} s",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    let report = Report {
        machine: std::env::consts::ARCH,
        warm: args.warm,
        cold: args.cold,
        functions: &results,
    };
    print!("{}", report::markdown(&report));
    if let Some(out) = &args.json_out {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let mut text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        text.push('\n');
        std::fs::write(out, text).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(())
}

/// The signer the project's start-up builds from these settings (`kms` mode: KMS `Sign` with
/// `PORTCULLIS_SIGNING_KEY_ID`), its AWS configuration taken from the env file too (endpoint,
/// region, keys), so the harness talks to the emulator the functions do.
async fn signer(
    env: &BTreeMap<String, String>,
    settings: Settings,
) -> Result<Arc<dyn TokenSigner>, String> {
    let Some(endpoint) = env.get("AWS_ENDPOINT_URL") else {
        return Err("the env file has no AWS_ENDPOINT_URL (an emulator is expected)".into());
    };
    let get = |name: &str, default: &str| env.get(name).map_or(default, String::as_str).to_owned();
    let credentials = aws_sdk_kms::config::Credentials::new(
        get("AWS_ACCESS_KEY_ID", "test"),
        get("AWS_SECRET_ACCESS_KEY", "test"),
        None,
        None,
        "env-file",
    );
    let sdk = Deps::sdk_loader()
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(get("AWS_REGION", "us-east-1")))
        .credentials_provider(credentials)
        .load()
        .await;
    let deps = Deps::with_sdk_config(settings, sdk)
        .await
        .map_err(|e| format!("the harness's deps: {e}"))?;
    deps.signer
        .get()
        .await
        .map_err(|e| format!("the token signer (KMS GetPublicKey at {endpoint}): {e}"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// One function's measurement.
struct Measure<'a> {
    spec: &'a FunctionSpec,
    binary: &'a Path,
    func_env: &'a BTreeMap<String, String>,
    scenario: Scenario,
    log_dir: &'a Path,
}

/// A running process of the function, with its Runtime API; killed when dropped.
struct Process {
    child: Child,
    api: RuntimeApi,
    log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn ms(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}

impl Measure<'_> {
    async fn run(
        &self,
        events: &mut Events,
        warm: usize,
        cold: usize,
    ) -> Result<FunctionResult, String> {
        let (mut init_ms, mut cold_ms, mut warm_ms) = (Vec::new(), Vec::new(), Vec::new());
        let (mut status, mut first_answer, mut peak_kib) = (None, None, None);
        let mut n = 0;
        for round in 0..cold {
            n += 1;
            let event = events.make(&self.scenario, n).await?;
            let (mut process, pending, spawned) = self.start(&event).await?;
            let answer = self.wait(&mut process, pending).await?;
            cold_ms.push(ms(spawned, answer.answered));
            init_ms.push(ms(spawned, answer.handed_out));
            let (st, raw) = self.check(&answer)?;
            if round == 0 {
                (status, first_answer) = (st, raw);
                for _ in 0..warm {
                    n += 1;
                    let event = events.make(&self.scenario, n).await?;
                    let pending = process.api.enqueue(&event);
                    let answer = self.wait(&mut process, pending).await?;
                    self.check(&answer)?;
                    warm_ms.push(ms(answer.handed_out, answer.answered));
                }
                if !matches!(process.child.try_wait(), Ok(None)) {
                    return Err(format!(
                        "{}: the process died after its last answer",
                        self.spec.binary
                    ));
                }
                peak_kib = Some(vm_hwm_kib(process.child.id())?);
            }
        }
        let binary_bytes = std::fs::metadata(self.binary)
            .map_err(|e| format!("{}: {e}", self.binary.display()))?
            .len();
        let zip_bytes = std::fs::File::open(self.binary)
            .and_then(report::zip_size)
            .map_err(|e| format!("{}: {e}", self.binary.display()))?;
        Ok(FunctionResult::new(
            binary_bytes,
            zip_bytes,
            &init_ms,
            &cold_ms,
            &warm_ms,
            peak_kib,
            self.spec,
            status,
            first_answer,
            self.scenario.describe,
        ))
    }

    /// Queues the first event, then spawns the binary: the process, its first invocation and
    /// the instant of the spawn.
    async fn start(
        &self,
        event: &serde_json::Value,
    ) -> Result<(Process, Pending, Instant), String> {
        let name = &self.spec.binary;
        let arn = format!(
            "arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{}",
            self.spec.logical_id
        );
        let timeout = Duration::from_secs(self.spec.timeout_s);
        let api = RuntimeApi::start(&arn, timeout)
            .await
            .map_err(|e| format!("{name}: the Runtime API: {e}"))?;
        let pending = api.enqueue(event);
        let log = self.log_dir.join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let spawned = Instant::now();
        let child = Command::new(self.binary)
            .env_clear()
            .envs(self.lambda_env(&api.address))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .current_dir(self.log_dir)
            .spawn()
            .map_err(|e| format!("{name}: cannot start {}: {e}", self.binary.display()))?;
        Ok((Process { child, api, log }, pending, spawned))
    }

    /// The environment Lambda gives the process: its own variables, then the functions' (the
    /// env file), then the ones that name this function and its Runtime API.
    fn lambda_env(&self, runtime_api: &str) -> BTreeMap<String, String> {
        let spec = self.spec;
        let fixed = [
            (
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            ),
            ("LANG", "en_US.UTF-8".into()),
            ("TZ", ":UTC".into()),
            ("LAMBDA_TASK_ROOT", "/var/task".into()),
            ("_HANDLER", "bootstrap".into()),
            ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".into()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", spec.logical_id),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "harness".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ];
        let mut env: BTreeMap<String, String> =
            fixed.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        env.extend(self.func_env.clone());
        let function = [
            ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
            ("AWS_LAMBDA_FUNCTION_NAME", spec.logical_id.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                spec.memory_mb.to_string(),
            ),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ];
        env.extend(function.into_iter().map(|(k, v)| (k.to_owned(), v)));
        env
    }

    /// Waits for the answer to `pending`; fails on an invocation error, an init error, a dead
    /// process or no answer within [`INVOKE_TIMEOUT`].
    async fn wait(&self, process: &mut Process, mut pending: Pending) -> Result<Answer, String> {
        let name = &self.spec.binary;
        let tail = |process: &Process| log_tail(&process.log);
        let deadline = Instant::now() + INVOKE_TIMEOUT;
        let mut init_error = process.api.init_error();
        if let Some(error) = init_error.borrow_and_update().clone() {
            return Err(format!("{name}: init error: {error}\n{}", tail(process)));
        }
        loop {
            tokio::select! {
                answer = &mut pending.answer => {
                    let Ok(answer) = answer else {
                        return Err(format!("{name}: the Runtime API closed\n{}", tail(process)));
                    };
                    if answer.outcome == Outcome::Error {
                        return Err(format!(
                            "{name}: invocation error: {}\n{}",
                            String::from_utf8_lossy(&answer.payload),
                            tail(process)
                        ));
                    }
                    return Ok(answer);
                }
                Ok(()) = init_error.changed() => {
                    let error = init_error.borrow().clone().unwrap_or_default();
                    return Err(format!("{name}: init error: {error}\n{}", tail(process)));
                }
                () = tokio::time::sleep(POLL) => {
                    if let Ok(Some(status)) = process.child.try_wait() {
                        return Err(format!(
                            "{name}: the process exited ({status}) before answering\n{}",
                            tail(process)
                        ));
                    }
                    if Instant::now() > deadline {
                        return Err(format!(
                            "{name}: no answer within {} s\n{}",
                            INVOKE_TIMEOUT.as_secs(),
                            tail(process)
                        ));
                    }
                }
            }
        }
    }

    /// The answer's `statusCode` (`None` when it is not an HTTP response) if it is one of the
    /// scenario's, with the answer as sent when it is a JSON object (the report shows it for a
    /// function that does not answer HTTP).
    fn check(&self, answer: &Answer) -> Result<(Option<u64>, Option<Box<RawValue>>), String> {
        let name = &self.spec.binary;
        let text = String::from_utf8_lossy(&answer.payload);
        let raw = RawValue::from_string(text.trim().to_owned())
            .map_err(|_| format!("{name}: the answer is not JSON: {}", clip(&text, 200)))?;
        let value: serde_json::Value =
            serde_json::from_str(raw.get()).map_err(|e| format!("{name}: {e}"))?;
        let status = value.get("statusCode").and_then(serde_json::Value::as_u64);
        if !self.scenario.expect.contains(&status) {
            let expected: Vec<String> = self
                .scenario
                .expect
                .iter()
                .map(|s| s.map_or("none".into(), |s| s.to_string()))
                .collect();
            return Err(format!(
                "{name}: answered {} (expected {}): {}",
                status.map_or("no statusCode".into(), |s| s.to_string()),
                expected.join(" or "),
                clip(&text, 400)
            ));
        }
        Ok((status, value.is_object().then_some(raw)))
    }
}

fn clip(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

/// The last lines of a function's output (empty when it cannot be read).
fn log_tail(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines[from..].join("\n")
}

/// The peak resident set size of process `pid`, in KiB.
fn vm_hwm_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or(format!("no VmHWM in {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_args(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn the_flags_of_the_python_harness() {
        let a = parse(&[
            "--bin-dir",
            "target/release",
            "--env-file=.local/bench.env",
            "--template",
            "infra/template.yaml",
            "--warm",
            "5",
            "--cold",
            "2",
            "--json-out",
            "out.json",
            "sign-in",
            "tokens",
        ])
        .unwrap();
        assert_eq!(a.bin_dir, PathBuf::from("target/release"));
        assert_eq!(a.env_file, PathBuf::from(".local/bench.env"));
        assert_eq!((a.warm, a.cold), (5, 2));
        assert_eq!(a.json_out, Some(PathBuf::from("out.json")));
        assert_eq!(a.functions, ["sign-in", "tokens"]);
        let defaults = parse(&["--bin-dir", "b", "--env-file", "e", "--template", "t"]).unwrap();
        assert_eq!((defaults.warm, defaults.cold), (20, 3));
        assert!(parse(&["--bin-dir", "b", "--env-file", "e"]).is_err());
        assert!(
            parse(&[
                "--bin-dir",
                "b",
                "--env-file",
                "e",
                "--template",
                "t",
                "--cold",
                "0"
            ])
            .is_err()
        );
        assert!(parse(&["--bogus"]).is_err());
    }

    #[test]
    fn vm_hwm_of_this_process() {
        assert!(vm_hwm_kib(std::process::id()).unwrap() > 0);
    }
}
