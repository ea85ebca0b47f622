#!/usr/bin/env bash
# Coverage-guided fuzzing with cargo fuzz (libFuzzer), briefly: part of the test command.
#
#   scripts/fuzz.sh                 # every target, PORTCULLIS_FUZZ_RUNS (default 6000) inputs each,
#                                   # from a fixed seed: the same inputs every time (CI, test command)
#   scripts/fuzz.sh phone token     # only these targets
#   PORTCULLIS_FUZZ_SECONDS=600 scripts/fuzz.sh request    # exploring: random seed, time-bound
#   PORTCULLIS_FUZZ_BUILD_ONLY=1 scripts/fuzz.sh           # install cargo-fuzz and build, run nothing
#                                   # (the test command builds early, in the background)
#
# The test command's run is deterministic on purpose: a check that passes or fails the same way
# on every run of the same commit. Exploring finds new inputs (it found the 17-digit phone number
# in fuzz/seeds/phone/too-long); keep what it finds as a seed and a unit test.
#
# Targets (fuzz/fuzz_targets/, invariants in each file's header):
#   request     API Gateway events and JSON bodies under any content type → every request type
#   phone       phone numbers as typed (E.164 out, idempotent, voice only for +1)
#   token       access tokens (only the signed text verifies) and TOTP codes
#   user_agent  User-Agent minimums and user-ID normalisation
#   passkey     WebAuthn registration/assertion responses (JSON, CBOR, authenticator data)
#
# Runs on the stable toolchain: `-s none` (no sanitizer: AddressSanitizer needs nightly, and the
# code has no `unsafe`), `--dev` (debug assertions and overflow checks on; a few minutes less to
# build than release). Seeds are in fuzz/seeds/<target>/; the growing corpus stays in
# fuzz/corpus/ (ignored by git). A crash writes fuzz/artifacts/<target>/crash-* and fails.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

CARGO_FUZZ_VERSION="0.13.2"
SECONDS_EACH="${PORTCULLIS_FUZZ_SECONDS:-}"
RUNS="${PORTCULLIS_FUZZ_RUNS:-6000}"
if [ "$SECONDS_EACH" = "0" ] || [ "$RUNS" = "0" ]; then
  log "fuzzing skipped"
  echo "fuzz: skipped"
  exit 0
fi
if [ -n "$SECONDS_EACH" ]; then
  LIMITS=(-max_total_time="$SECONDS_EACH")
  WHAT="${SECONDS_EACH} s, random seed"
else
  LIMITS=(-seed=1 -runs="$RUNS")
  WHAT="$RUNS inputs from seed 1"
fi
if ! cargo fuzz --version 2> /dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  log "Installing cargo-fuzz $CARGO_FUZZ_VERSION (crates.io)"
  cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

targets=("$@")
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(cargo fuzz list)

log "cargo fuzz build (${targets[*]})"
cargo fuzz build --dev -s none
if [ "${PORTCULLIS_FUZZ_BUILD_ONLY:-0}" = 1 ]; then
  exit 0
fi

failed=()
total_runs=0
for target in "${targets[@]}"; do
  log "cargo fuzz run $target ($WHAT)"
  out="$STATE/fuzz-$target.log"
  # libFuzzer writes new inputs into the first directory: never the committed seeds.
  # Deterministic runs start from the seeds alone (a fresh scratch corpus); exploring ones keep
  # what they find in fuzz/corpus/ (ignored by git).
  if [ -n "$SECONDS_EACH" ]; then
    corpus="fuzz/corpus/$target"
  else
    corpus="$STATE/fuzz-scratch/$target"
    rm -rf "$corpus"
  fi
  mkdir -p "$corpus"
  dirs=("$corpus" "fuzz/seeds/$target")
  if cargo fuzz run --dev -s none "$target" "${dirs[@]}" -- \
    "${LIMITS[@]}" -max_len=4096 -timeout=10 > "$out" 2>&1; then
    runs="$(grep -o 'Done [0-9]* runs' "$out" | awk '{ print $2 }' | tail -1)"
    printf '  %-11s %9s executions, no crash\n' "$target" "${runs:-?}"
    total_runs=$((total_runs + ${runs:-0}))
  else
    failed+=("$target")
    echo "  $target FAILED; the end of $out:" >&2
    tail -40 "$out" >&2
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: ${#targets[@]} targets, ${#failed[@]} failed (${failed[*]})"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, $total_runs executions, 0 crashes"
