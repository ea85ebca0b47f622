#!/usr/bin/env bash
# The benchmark report: starts its own moto server, provisions, runs the release-built benchmark
# and writes BENCHMARKS.md (figures from this one run; ratios against baselines of the same run).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
ensure_venv
cleanup() { [ -n "${MOTO_PID:-}" ] && kill "$MOTO_PID" 2> /dev/null || true; }
trap cleanup EXIT INT TERM
EMULATOR_PORT="$(free_port)"
start_moto "$EMULATOR_PORT"
provision "http://127.0.0.1:$EMULATOR_PORT" "$STATE/bench.env"
load_env "$STATE/bench.env"
log "Building the benchmark (release)"
cargo build --quiet --release -p portcullis-bench
{
  echo "# Benchmarks"
  echo
  echo "Produced by \`scripts/bench.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $(uname -m)); every figure below comes from one run,"
  echo "and every ratio compares two figures of that same run. Timed on one thread, so 'per core' is direct."
  echo
  target/release/portcullis-bench
} | tee BENCHMARKS.md
