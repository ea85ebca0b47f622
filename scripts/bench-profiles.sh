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
# keeps the table this prints (also written to .local/profiles.md after each candidate). Takes
# 60-90 minutes on 2 cores (four release builds of the AWS SDK, three of them linking with fat
# LTO on one core); run it on an otherwise idle machine. A build time is cold only when its
# target directory was empty.
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

# The emulator first: each candidate is measured as soon as it is built, so a run cut short
# still reports the candidates it finished.
start_bench_moto "$STATE/profiles.env"
# The signing key record the functions read (any build of the CLI makes the same record), and
# the Lambda harness: one debug build measures every candidate (its Runtime API and its zip
# sizing are the same for all; the figures are the functions').
cargo build --quiet -p portcullis-admin-cli -p portcullis-bench --bin portcullis-admin \
  --bin portcullis-lambda-harness
target/debug/portcullis-admin rotate-signing-key --if-missing > /dev/null
target/debug/portcullis-admin rotate-code-key --if-missing > /dev/null

report() {
  "$VENV/bin/python" - "$STATE" "$@" <<'PY'
import json, os, sys
state, done = sys.argv[1], sys.argv[2:]
runs, builds = {}, {}
for entry in done:
    c, secs = entry.split("=")
    runs[c] = json.load(open(f"{state}/profiles-{c}.json"))["functions"]
    builds[c] = secs
base = runs[done[0].split("=")[0]]
print(f"| profile | build (s) | function | binary (MiB) | zip (MiB) | init (ms) | cold start (ms) "
      f"| warm, median (ms) | peak memory (MiB) | zip ÷ {done[0].split('=')[0]} | init ÷ | warm ÷ |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in runs:
    for name, r in runs[c].items():
        b = base[name]
        print(f"| {c} | {builds[c]} | {name} | {r['binary_mib']:.1f} | {r['zip_mib']:.2f} "
              f"| {r['init_ms']:.1f} | {r['cold_start_ms']:.1f} | {r['warm_ms_median']:.2f} "
              f"| {r['peak_rss_mib']:.1f} | {r['zip_mib'] / b['zip_mib']:.2f} "
              f"| {r['init_ms'] / b['init_ms']:.2f} | {r['warm_ms_median'] / b['warm_ms_median']:.2f} |")
PY
}

DONE=()
for c in "${CANDIDATES[@]}"; do
  log "Building ${BINARIES[*]} as '$c' (opt-level ${OPT[$c]}, LTO ${LTO[$c]}, ${CGU[$c]} codegen units)"
  started=$SECONDS
  CARGO_PROFILE_RELEASE_OPT_LEVEL="${OPT[$c]}" CARGO_PROFILE_RELEASE_LTO="${LTO[$c]}" \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS="${CGU[$c]}" CARGO_PROFILE_RELEASE_STRIP=true \
    cargo build --quiet --release --target-dir "target/profiles/$c" "${PACKAGES[@]}"
  secs=$((SECONDS - started))
  log "Lambda harness: '$c' (built in $secs s)"
  target/debug/portcullis-lambda-harness --bin-dir "target/profiles/$c/release" \
    --env-file "$STATE/profiles.env" --template infra/template.yaml --cold 5 \
    --json-out "$STATE/profiles-$c.json" "${BINARIES[@]}" > /dev/null
  DONE+=("$c=$secs")
  report "${DONE[@]}" > "$STATE/profiles.md"
  log "Table so far: .local/profiles.md"
done
cat "$STATE/profiles.md"
