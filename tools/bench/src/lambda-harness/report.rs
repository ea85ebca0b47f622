//! The figures of each function, as `--json-out` writes them (read by `scripts/cost_model.py`
//! and `scripts/goals.py`), and the markdown section of `BENCHMARKS.md` made from them.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::write::DeflateEncoder;
use serde::Serialize;
use serde_json::value::RawValue;

const MIB: f64 = 1024.0 * 1024.0;

/// The zip's bytes beyond the deflated data, for one entry named `bootstrap` (9 bytes): the
/// local file header (30 + name), the central directory entry (46 + name) and the end of the
/// central directory (22); no extra fields (no ZIP64 below 2 GiB), no comment, no data
/// descriptor (what Python's `zipfile` writes, and `cargo lambda` packs the same one file).
pub const ZIP_OVERHEAD: u64 = 30 + 9 + 46 + 9 + 22;

/// Bytes of the deployment zip: the binary as `bootstrap`, deflated at the default level (6).
pub fn zip_size(binary: impl Read) -> std::io::Result<u64> {
    let mut encoder = DeflateEncoder::new(Counter(0), Compression::default());
    std::io::copy(&mut { binary }, &mut encoder)?;
    Ok(encoder.finish()?.0 + ZIP_OVERHEAD)
}

/// A writer that only counts.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The median (the mean of the middle two of an even count); `None` for no values.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The 90th percentile, nearest rank: the ⌈0.9 n⌉-th smallest value.
pub fn p90(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (v.len() * 9).div_ceil(10);
    v.get(rank.max(1) - 1).copied()
}

/// `x` rounded to `digits` decimals (what the report and the JSON carry).
pub fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

/// One function's figures: the `functions` entries of the JSON.
#[derive(Debug, Serialize)]
pub struct FunctionResult {
    pub binary_bytes: u64,
    pub binary_mib: f64,
    pub zip_bytes: u64,
    pub zip_mib: f64,
    pub init_ms: f64,
    pub init_ms_all: Vec<f64>,
    pub cold_start_ms: f64,
    pub cold_start_ms_all: Vec<f64>,
    pub warm_ms_median: Option<f64>,
    pub warm_ms_p90: Option<f64>,
    pub warm_invocations: usize,
    pub peak_rss_mib: Option<f64>,
    pub memory_mb: u64,
    pub architecture_configured: String,
    /// The HTTP status answered; `None` for the functions that answer something else.
    pub status: Option<u64>,
    pub request: String,
    /// What a non-HTTP function answered (the first cold start), as it answered it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<Box<RawValue>>,
}

impl FunctionResult {
    /// The figures from the measured durations (ms) and sizes (bytes).
    #[allow(clippy::too_many_arguments)] // one line per measured figure, named at the call
    pub fn new(
        binary_bytes: u64,
        zip_bytes: u64,
        init_ms: &[f64],
        cold_ms: &[f64],
        warm_ms: &[f64],
        peak_kib: Option<u64>,
        spec: &crate::setup::FunctionSpec,
        status: Option<u64>,
        answer: Option<Box<RawValue>>,
        request: &str,
    ) -> Self {
        let r2 = |v: f64| round(v, 2);
        FunctionResult {
            binary_bytes,
            binary_mib: r2(binary_bytes as f64 / MIB),
            zip_bytes,
            zip_mib: r2(zip_bytes as f64 / MIB),
            init_ms: median(init_ms).map_or(0.0, r2),
            init_ms_all: init_ms.iter().copied().map(r2).collect(),
            cold_start_ms: median(cold_ms).map_or(0.0, r2),
            cold_start_ms_all: cold_ms.iter().copied().map(r2).collect(),
            warm_ms_median: median(warm_ms).map(r2),
            warm_ms_p90: p90(warm_ms).map(r2),
            warm_invocations: warm_ms.len(),
            peak_rss_mib: peak_kib.map(|k| round(k as f64 / 1024.0, 1)),
            memory_mb: spec.memory_mb,
            architecture_configured: spec.architecture.clone(),
            answer: if status.is_none() { answer } else { None },
            status,
            request: request.to_owned(),
        }
    }
}

/// The whole JSON document: `{machine, warm, cold, functions: {binary: figures}}`, the
/// functions in the order measured.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub machine: &'a str,
    pub warm: usize,
    pub cold: usize,
    #[serde(serialize_with = "in_order")]
    pub functions: &'a [(String, FunctionResult)],
}

fn in_order<S: serde::Serializer>(
    functions: &&[(String, FunctionResult)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(functions.iter().map(|(k, v)| (k, v)))
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}"))
}

/// The `BENCHMARKS.md` section.
pub fn markdown(report: &Report<'_>) -> String {
    let (warm, cold, machine) = (report.warm, report.cold, report.machine);
    let mut out = format!(
        "## Lambda functions: size, cold start, memory\n\n\
         Each release binary is run as Lambda runs it, against a Runtime API emulator \
         (`portcullis-lambda-harness`, in `tools/bench`) on loopback, its AWS calls going to \
         the moto server: zip = the deployment package (the binary as `bootstrap`, deflated); \
         init = process spawn until its first request for an event (start-up done), and cold \
         start = process spawn until the answer to the first event (queued before the spawn, \
         so it includes that event's AWS calls to the emulator on fresh connections), medians \
         of {cold} starts; then {warm} warm invocations on the first process, each timed from \
         hand-out to answer; peak memory = VmHWM after the last one. These are {machine} \
         release builds run on this machine, not arm64 on Lambda (whose cold start adds the \
         sandbox and code download, and whose CPU share follows the configured memory).\n\n\
         | function | binary (MiB) | zip (MiB) | init (ms) | cold start (ms) \
         | warm invocation, median / p90 (ms) | peak memory (MiB) \
         | memory configured (MiB) | request answered |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---|\n"
    );
    for (name, r) in report.functions {
        let status = match (r.status, &r.answer) {
            (Some(status), _) => status.to_string(),
            (None, Some(answer)) => format!("ok {}", answer.get()),
            (None, None) => "ok".to_owned(),
        };
        out.push_str(&format!(
            "| {name} | {:.1} | {:.1} | {} | {} | {} / {} | {} | {} | {status}: {} |\n",
            r.binary_mib,
            r.zip_mib,
            fmt(Some(r.init_ms)),
            fmt(Some(r.cold_start_ms)),
            fmt(r.warm_ms_median),
            fmt(r.warm_ms_p90),
            fmt(r.peak_rss_mib),
            r.memory_mb,
            r.request,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::FunctionSpec;

    #[test]
    fn median_and_p90() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(p90(&[]), None);
        assert_eq!(p90(&[5.0]), Some(5.0));
        let twenty: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        assert_eq!(p90(&twenty), Some(18.0));
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(p90(&ten), Some(9.0));
        assert_eq!(p90(&[1.0, 2.0, 3.0]), Some(3.0));
    }

    #[test]
    fn the_zip_size_is_deflate_plus_the_headers() {
        // The empty file deflates to 2 bytes: 118, what Python's zipfile writes for it.
        assert_eq!(zip_size(&b""[..]).unwrap(), 118);
        // A known input: 705 bytes of deflate stream from miniz_oxide (flate2's backend) plus
        // the 116 of the headers. Python's zipfile makes 822 bytes of it: zlib's deflate
        // stream is one byte longer (the two encoders choose their matches differently).
        let data: Vec<u8> = (0..100_000u64)
            .map(|i| ((i * i + 7 * i) % 251) as u8)
            .collect();
        assert_eq!(zip_size(&data[..]).unwrap(), 821);
    }

    fn spec() -> FunctionSpec {
        FunctionSpec {
            logical_id: "SenderFunction".into(),
            binary: "sender".into(),
            memory_mb: 256,
            architecture: "arm64".into(),
            timeout_s: 10,
        }
    }

    #[test]
    fn the_json_has_the_shape_the_scripts_read() {
        let answer = RawValue::from_string(r#"{"batchItemFailures":[]}"#.into()).unwrap();
        let sender = FunctionResult::new(
            8_600_000,
            3_600_000,
            &[16.66, 17.0, 15.0],
            &[26.6, 30.0, 25.0],
            &[6.8, 7.0, 8.1],
            Some(9523),
            &spec(),
            None,
            Some(answer),
            "SQS batch",
        );
        let report = Report {
            machine: "x86_64",
            warm: 3,
            cold: 3,
            functions: &[("sender".into(), sender)],
        };
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        let f = &json["functions"]["sender"];
        assert_eq!(json["machine"], "x86_64");
        assert_eq!(json["warm"], 3);
        assert_eq!(f["binary_mib"], 8.2);
        assert_eq!(f["zip_mib"], 3.43);
        assert_eq!(f["init_ms"], 16.66);
        assert_eq!(f["init_ms_all"], serde_json::json!([16.66, 17.0, 15.0]));
        assert_eq!(f["cold_start_ms"], 26.6);
        assert_eq!(f["warm_ms_median"], 7.0);
        assert_eq!(f["warm_ms_p90"], 8.1);
        assert_eq!(f["warm_invocations"], 3);
        assert_eq!(f["peak_rss_mib"], 9.3);
        assert_eq!(f["memory_mb"], 256);
        assert_eq!(f["architecture_configured"], "arm64");
        assert_eq!(f["status"], serde_json::Value::Null);
        assert_eq!(f["answer"]["batchItemFailures"], serde_json::json!([]));
        let line = markdown(&report).lines().last().unwrap().to_owned();
        assert_eq!(
            line,
            "| sender | 8.2 | 3.4 | 16.7 | 26.6 | 7.0 / 8.1 | 9.3 | 256 | \
             ok {\"batchItemFailures\":[]}: SQS batch |"
        );
    }

    #[test]
    fn an_http_function_reports_its_status_and_no_answer() {
        let r = FunctionResult::new(
            1,
            1,
            &[1.0],
            &[2.0],
            &[],
            None,
            &spec(),
            Some(401),
            None,
            "req",
        );
        let json = serde_json::to_value(&r).unwrap();
        assert!(json.get("answer").is_none());
        assert_eq!(json["status"], 401);
        assert_eq!(json["warm_ms_median"], serde_json::Value::Null);
        let report = Report {
            machine: "x86_64",
            warm: 0,
            cold: 1,
            functions: &[("f".into(), r)],
        };
        assert!(
            markdown(&report)
                .ends_with("| f | 0.0 | 0.0 | 1.0 | 2.0 | – / – | – | 256 | 401: req |\n")
        );
    }
}
