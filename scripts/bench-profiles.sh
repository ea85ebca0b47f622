#!/usr/bin/env bash
# Which release profile the functions ship with: builds a few functions under each candidate
# profile and measures them with the Lambda harness (size, zip, init, cold start, warm
# invocation, peak memory), all in one run against one moto server, so the figures compare.
#
#   scripts/bench-profiles.sh [function ...]      (default: send-code tokens verify)
#
# Candidates (Cargo's environment overrides of the release profile, each in its own target
# directory under target/profiles/, so none disturbs target/release):
#   before   opt-level 3, no LTO, 16 codegen units (Cargo's defaults, stripped)
#   o3-lto   opt-level 3, fat LTO, 1 codegen unit
#   s-lto    opt-level "s", fat LTO, 1 codegen unit
#   z-lto    opt-level "z", fat LTO, 1 codegen unit
# The release profile in Cargo.toml is the one chosen from this comparison; BENCHMARKS.md
# keeps the table this prints. Takes 40-60 minutes on 2 cores (four builds of the AWS SDK);
# run it on an otherwise idle machine.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
ensure_venv

BINARIES=("$@")
[ "${#BINARIES[@]}" -gt 0 ] || BINARIES=(send-code tokens verify)
PACKAGES=()
for name in "${BINARIES[@]}"; do PACKAGES+=(-p "portcullis-$name"); done

declare -A OPT=([before]=3 [o3-lto]=3 [s-lto]=s [z-lto]=z)
declare -A LTO=([before]=false [o3-lto]=fat [s-lto]=fat [z-lto]=fat)
declare -A CGU=([before]=16 [o3-lto]=1 [s-lto]=1 [z-lto]=1)
CANDIDATES=(before o3-lto s-lto z-lto)

declare -A BUILD_S
for c in "${CANDIDATES[@]}"; do
  log "Building ${BINARIES[*]} as '$c' (opt-level ${OPT[$c]}, LTO ${LTO[$c]}, ${CGU[$c]} codegen units)"
  started=$SECONDS
  CARGO_PROFILE_RELEASE_OPT_LEVEL="${OPT[$c]}" CARGO_PROFILE_RELEASE_LTO="${LTO[$c]}" \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS="${CGU[$c]}" CARGO_PROFILE_RELEASE_STRIP=true \
    cargo build --quiet --release --target-dir "target/profiles/$c" "${PACKAGES[@]}"
  BUILD_S[$c]=$((SECONDS - started))
done
# The signing key record the functions read (any build of the CLI makes the same record).
cargo build --quiet -p portcullis-admin-cli

cleanup() { [ -n "${MOTO_PID:-}" ] && kill "$MOTO_PID" 2> /dev/null || true; }
trap cleanup EXIT INT TERM
EMULATOR_PORT="$(free_port)"
start_moto "$EMULATOR_PORT"
provision "http://127.0.0.1:$EMULATOR_PORT" "$STATE/profiles.env"
load_env "$STATE/profiles.env"
target/debug/portcullis-admin rotate-signing-key --if-missing > /dev/null

for c in "${CANDIDATES[@]}"; do
  log "Lambda harness: '$c'"
  "$VENV/bin/python" scripts/lambda_harness.py --bin-dir "target/profiles/$c/release" \
    --env-file "$STATE/profiles.env" --template infra/template.yaml --cold 5 \
    --json-out "$STATE/profiles-$c.json" "${BINARIES[@]}" > /dev/null
done

CANDIDATE_LIST="${CANDIDATES[*]}"
BUILD_TIMES="$(for c in "${CANDIDATES[@]}"; do printf '%s=%s ' "$c" "${BUILD_S[$c]}"; done)"
"$VENV/bin/python" - "$STATE" "$CANDIDATE_LIST" "$BUILD_TIMES" <<'PY'
import json, sys
state, candidates, builds = sys.argv[1], sys.argv[2].split(), dict(
    kv.split("=") for kv in sys.argv[3].split())
runs = {c: json.load(open(f"{state}/profiles-{c}.json"))["functions"] for c in candidates}
names = list(runs[candidates[0]])
print("| profile | build (s) | function | binary (MiB) | zip (MiB) | init (ms) | cold start (ms) "
      "| warm, median (ms) | peak memory (MiB) | zip ÷ before | init ÷ before | warm ÷ before |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in candidates:
    for name in names:
        r, b = runs[c][name], runs["before"][name]
        print(f"| {c} | {builds[c]} | {name} | {r['binary_mib']:.1f} | {r['zip_mib']:.2f} "
              f"| {r['init_ms']:.1f} | {r['cold_start_ms']:.1f} | {r['warm_ms_median']:.2f} "
              f"| {r['peak_rss_mib']:.1f} | {r['zip_mib'] / b['zip_mib']:.2f} "
              f"| {r['init_ms'] / b['init_ms']:.2f} | {r['warm_ms_median'] / b['warm_ms_median']:.2f} |")
PY
