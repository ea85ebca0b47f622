#!/usr/bin/env bash
# README command 2: run every test.
#
# Formatting and lints; the reference web client in headless Chromium; unit tests, the storage
# conformance suite and the service tests on both adapters (in-memory and DynamoDB on the
# emulator), and the end-to-end tests through the local HTTP endpoint against the emulator;
# schemathesis against infra/openapi.yaml; cargo fuzz, briefly. Starts and stops its own
# emulator and endpoint on free loopback ports, so it runs beside scripts/local.sh. Every stage
# runs even if an earlier one failed; the last line is `tests: N passed, N failed`.
#
# The emulator is LocalStack (what the users test against: Docker's where a Docker engine runs,
# else in the host process, installed into .local/localstack/ by the first run), or the moto
# server with PORTCULLIS_EMULATOR=moto (the faster inner loop).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

ensure_venv

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy (all targets, warnings are errors)"
cargo clippy --quiet --workspace --all-targets -- -D warnings

log "Python unit tests (scripts/: the cost model's arithmetic, the goals table, provisioning on in-process moto)"
"$VENV/bin/python" -m unittest scripts/test_cost_model.py scripts/test_goals.py scripts/test_provision.py 2>&1 | tee "$STATE/python-test.log"

log "cfn-lint infra/template.yaml"
"$VENV/bin/cfn-lint" infra/template.yaml

cleanup() {
  [ -n "${fuzz_build_pid:-}" ] && kill -- "-$fuzz_build_pid" 2> /dev/null || true
  [ -n "${ST_GATEWAY_PID:-}" ] && kill "$ST_GATEWAY_PID" 2> /dev/null || true
  [ -n "${GATEWAY_PID:-}" ] && kill "$GATEWAY_PID" 2> /dev/null || true
  stop_emulator
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The fuzz targets build in their own workspace (fuzz/target, with coverage instrumentation):
# the whole dependency tree a second time. That build starts now, at the lowest CPU priority
# (nice 19), so it runs on what the stages below leave idle (the end-to-end tests spend most of
# their time waiting on the emulator) and slows them hardly at all; the fuzz stage at the end
# waits for it and then only runs the targets.
fuzz_build_pid=""
if [ "${PORTCULLIS_FUZZ_RUNS:-6000}" != 0 ] && [ "${PORTCULLIS_FUZZ_SECONDS:-}" != 0 ]; then
  log "cargo fuzz build started in the background (nice 19; log: .local/fuzz-build.log)"
  # Its own process group (setsid), so that leaving early stops cargo and rustc too.
  PORTCULLIS_FUZZ_BUILD_ONLY=1 setsid nice -n 19 scripts/fuzz.sh > "$STATE/fuzz-build.log" 2>&1 &
  fuzz_build_pid=$!
fi

choose_emulator
EMULATOR_PORT="$(free_port)"
emulator_started=$SECONDS
start_emulator "$EMULATOR_PORT" test.env
ENV_FILE="$STATE/test.env"
provision "$ENDPOINT" "$ENV_FILE"
log "Emulator $EMULATOR ($EMULATOR_RUNTIME) ready in $((SECONDS - emulator_started)) s"
load_env "$ENV_FILE"

log "Building the local endpoint and the operator CLI"
cargo build --quiet -p portcullis-local-gateway -p portcullis-admin-cli
log "Making the access-token signing key and the code MAC key (envelope mode) with the operator CLI"
target/debug/portcullis-admin rotate-signing-key --if-missing > /dev/null
target/debug/portcullis-admin rotate-code-key --if-missing > /dev/null
API_PORT="$(free_port)"
# Every end-to-end request comes from 127.0.0.1: raise the per-IP throttle (default 30 failures
# in 10 minutes) so the suite's deliberate failures do not throttle each other. The throttle
# itself is tested at its default in the service tests (shared/tests/admin.rs).
# The emulator is slower than AWS (moto handles one DynamoDB request at a time, LocalStack's
# DynamoDB Local takes 15-30 ms a call) and shares two cores with argon2 bursts during the load
# test: give its calls 10 s per attempt and 30 s per operation instead of AWS's 2 s / 5 s (the
# defaults, which the fault tests exercise), and 10 s to connect. The load test's 200 users go
# through this one process, where in AWS each request has its own Lambda environment; a
# sign-in makes up to six calls at once, so 200 at once would put some 1,200 calls in flight
# at the emulator, more than it answers within those timeouts: at most 32 requests are
# handled at once (the others wait in the endpoint, as beyond a reserved concurrency).
PORTCULLIS_AWS_CONNECT_TIMEOUT_MS=10000 PORTCULLIS_AWS_ATTEMPT_TIMEOUT_MS=10000 \
  PORTCULLIS_AWS_OPERATION_TIMEOUT_MS=30000 PORTCULLIS_LOCAL_CONCURRENCY=32 \
  PORTCULLIS_IP_FAILURE_THRESHOLD=1000 PORTCULLIS_WEB_DIR="$REPO_ROOT/web" \
  PORTCULLIS_RESET_URL="http://127.0.0.1:$API_PORT/reset" \
  PORTCULLIS_INVITATION_URL="http://127.0.0.1:$API_PORT/welcome" \
  PORTCULLIS_PASSKEY_RP_ID=localhost PORTCULLIS_PASSKEY_ORIGINS="http://localhost:$API_PORT" \
  PORTCULLIS_LISTEN="127.0.0.1:$API_PORT" target/debug/portcullis-local > "$STATE/gateway-test.log" 2>&1 &
GATEWAY_PID=$!
wait_for_http "http://127.0.0.1:$API_PORT/" "local endpoint"

export PORTCULLIS_API_URL="http://127.0.0.1:$API_PORT"
export PORTCULLIS_ADMIN_BIN="$REPO_ROOT/target/debug/portcullis-admin"
export PORTCULLIS_REQUIRE_EMULATOR=1

# Every stage below runs even when an earlier one failed, so the closing line counts them all.
failed_stages=()

# The reference web client in headless Chromium (Debian's chromium, playwright-core from npm),
# against the same local endpoint, with codes read back from the emulator. First, while the
# emulator is fresh: moto's data.json (where sent messages are read back) slows as it fills.
log "browser tests (web/ in headless Chromium)"
scripts/browser-test.sh 2>&1 | tee "$STATE/browser-test.log" || failed_stages+=("browser tests")

log "cargo test (unit, conformance on both adapters, end to end)"
cargo test --workspace --no-fail-fast 2>&1 | tee "$STATE/cargo-test.log" || failed_stages+=("cargo test")

# Property-based API test: requests generated from infra/openapi.yaml; every answer must be a
# non-5xx that matches the documented status codes, content types, headers and schemas.
# Bounded (examples per operation, time per request). The protected routes are exercised
# beyond their 401s: a second endpoint on the same emulator gives sessions long enough for the
# whole run (access tokens, step-up and inactivity 2 hours), an admin signs in on it with MFA
# (tests/src/bin/test-session.rs), and schemathesis sends that admin's token with every
# request. Sign-out is left out of that run: it would end the session for everything after it
# (the end-to-end tests cover it).
ensure_schemathesis
ST_PORT="$(free_port)"
PORTCULLIS_ACCESS_TOKEN_MINUTES=120 PORTCULLIS_STEP_UP_MINUTES=120 PORTCULLIS_SESSION_IDLE_MINUTES=120 \
  PORTCULLIS_AWS_CONNECT_TIMEOUT_MS=10000 PORTCULLIS_AWS_ATTEMPT_TIMEOUT_MS=10000 \
  PORTCULLIS_AWS_OPERATION_TIMEOUT_MS=30000 PORTCULLIS_IP_FAILURE_THRESHOLD=100000 PORTCULLIS_LISTEN="127.0.0.1:$ST_PORT" \
  target/debug/portcullis-local > "$STATE/gateway-schemathesis.log" 2>&1 &
ST_GATEWAY_PID=$!
wait_for_http "http://127.0.0.1:$ST_PORT/.well-known/jwks.json" "schemathesis endpoint"
log "Signing in an admin for schemathesis (tests/src/bin/test-session.rs)"
ST_TOKEN="$(PORTCULLIS_API_URL="http://127.0.0.1:$ST_PORT" cargo run --quiet -p portcullis-e2e --bin test-session \
  | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' || true)"
schemathesis_ok=0
if [ -z "$ST_TOKEN" ]; then
  echo "schemathesis: no admin session could be opened" >&2
  failed_stages+=("schemathesis")
else
  log "schemathesis against infra/openapi.yaml (bounded, with an admin's token)"
  if "$STATE/st-venv/bin/st" run infra/openapi.yaml --url "http://127.0.0.1:$ST_PORT" \
    -H "Authorization: Bearer $ST_TOKEN" --exclude-path /v1/sign-out \
    --max-examples "${PORTCULLIS_SCHEMATHESIS_EXAMPLES:-25}" --request-timeout 10 --workers 2 \
    --phases examples,fuzzing,stateful --generation-deterministic \
    -c not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method; then
    schemathesis_ok=1
  else
    failed_stages+=("schemathesis")
  fi
fi
kill "$ST_GATEWAY_PID" 2> /dev/null || true

# Coverage-guided fuzzing of request parsing, phone numbers, tokens and User-Agents (cargo fuzz,
# 6,000 inputs per target from a fixed seed: PORTCULLIS_FUZZ_RUNS; 0 skips). Its build began in
# the background at the start; a failed background build is built again here, in the open.
if [ -n "$fuzz_build_pid" ]; then
  log "waiting for the background cargo fuzz build"
  wait "$fuzz_build_pid" || log "the background fuzz build failed (.local/fuzz-build.log): building again"
  fuzz_build_pid=""
fi
scripts/fuzz.sh 2>&1 | tee "$STATE/fuzz.log" || failed_stages+=("fuzz")

# A failed browser test's message again, near the end where a CI excerpt shows it (the spec
# reporter prints the failures last; the whole log is .local/browser-test.log).
if grep -q '^✖ failing tests:' "$STATE/browser-test.log" 2> /dev/null; then
  log "browser test failures (from .local/browser-test.log)"
  sed -n '/^✖ failing tests:/,$p' "$STATE/browser-test.log" | head -n 80 >&2
fi

# One closing line for the whole run: every cargo test and browser test, schemathesis as one
# test, each fuzz target as one test.
if [ "${#failed_stages[@]}" -gt 0 ]; then
  printf 'failed: %s\n' "${failed_stages[@]}" >&2
fi
{
  cat "$STATE/cargo-test.log"
  grep -h '^browser tests:' "$STATE/browser-test.log" || true
  grep -h '^Ran [0-9]* tests\?' "$STATE/python-test.log" || true
  grep -h '^fuzz:' "$STATE/fuzz.log" || true
  echo "schemathesis: $schemathesis_ok"
} | awk '
  /^test result:/ { passed += $4; failed += $6 }
  /^browser tests:/ { passed += $3; failed += $5 }
  /^Ran [0-9]+ tests?/ { passed += $2 }
  /^fuzz: [0-9]+ targets, [0-9]+ executions/ { passed += $2 }
  /^fuzz: [0-9]+ targets, [0-9]+ failed/ { passed += $2 - $4; failed += $4 }
  /^schemathesis: 1/ { passed += 1 }
  /^schemathesis: 0/ { failed += 1 }
  END { printf "tests: %d passed, %d failed\n", passed, failed }'
[ "${#failed_stages[@]}" -eq 0 ]
