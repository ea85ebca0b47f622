#!/usr/bin/env bash
# The benchmark report: starts its own moto server, provisions, and writes BENCHMARKS.md from
# one run (every ratio compares two figures of that same run):
#   1. tools/bench (release): argon2 vs sign-in per core; the AWS calls of the failure paths;
#      every request of the sign-in flows through its function's handler (in-process cost,
#      latency against the emulator beside its bare round trip, AWS calls by operation);
#   2. portcullis-lambda-harness (tools/bench, release): each function's release binary under a
#      Lambda Runtime API emulator: size, cold start, warm invocation, peak memory;
#   3. scripts/cost_model.py: AWS $ per million sign-ins from 1 and 2, beside Cognito;
#   4. scripts/goals.py (first in the file): each performance goal beside what 1-3 measured.
# The release profile (Cargo.toml: LTO, one codegen unit) makes the build long: 30-40 minutes
# on 2 cores from cold. scripts/bench-profiles.sh is the comparison that chose it.
# Run it on an otherwise idle machine: the figures are only as quiet as the machine.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
ensure_venv
start_bench_moto "$STATE/bench.env"

# CARGO_TARGET_DIR is honoured (a directory that already holds a release build of the same
# profile, such as scripts/bench-profiles.sh's, saves rebuilding the AWS SDK).
RELEASE="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release"
FUNCTIONS=()
for dir in functions/*/; do FUNCTIONS+=(-p "portcullis-$(basename "$dir")"); done
log "Building the benchmark and the functions (release)"
cargo build --quiet --release -p portcullis-bench -p portcullis-admin-cli "${FUNCTIONS[@]}"
"$RELEASE/portcullis-admin" rotate-signing-key --if-missing > /dev/null
"$RELEASE/portcullis-admin" rotate-code-key --if-missing > /dev/null

OUT="$STATE/BENCHMARKS.md.new"
BODY="$STATE/BENCHMARKS.body.md"
{
  BENCH_FLOWS_JSON="$STATE/bench-flows.json" BENCH_THROUGHPUT_JSON="$STATE/bench-throughput.json" \
    "$RELEASE/portcullis-bench"
  log "Lambda functions under the Runtime API emulator"
  "$RELEASE/portcullis-lambda-harness" --bin-dir "$RELEASE" --env-file "$STATE/bench.env" \
    --template infra/template.yaml --json-out "$STATE/bench-lambda.json"
  echo
  "$VENV/bin/python" scripts/cost_model.py --flows "$STATE/bench-flows.json" \
    --lambda "$STATE/bench-lambda.json" --template infra/template.yaml
  # Sections measured by other commands (the load test) are kept as they are: everything
  # after the marker line of the current file.
  MARKER='<!-- kept by scripts/bench.sh: measured by other commands, see each section -->'
  if [ -f BENCHMARKS.md ] && grep -qF "$MARKER" BENCHMARKS.md; then
    echo
    awk -v m="$MARKER" 'kept || $0 == m { kept = 1; print }' BENCHMARKS.md
  fi
} > "$BODY"
{
  echo "# Benchmarks"
  echo
  echo "Produced by \`scripts/bench.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $(uname -m)); every figure below comes from one run,"
  echo "and every ratio compares two figures of that same run. Timed on one thread (so 'per core' is direct), but for the throughput on every core."
  echo
  "$VENV/bin/python" scripts/goals.py --flows "$STATE/bench-flows.json" \
    --lambda "$STATE/bench-lambda.json" --throughput "$STATE/bench-throughput.json" \
    --template infra/template.yaml --cargo Cargo.toml
  echo
  cat "$BODY"
} > "$OUT"
mv "$OUT" BENCHMARKS.md
log "Wrote BENCHMARKS.md"
