#!/usr/bin/env bash
# README command 2: run every test.
#
# Formatting and lints, then unit tests, the storage conformance suite and the service tests on
# both adapters (in-memory and DynamoDB on the emulator), and the end-to-end tests through the
# local HTTP endpoint against the emulator. Starts and stops its own moto server and endpoint on
# free loopback ports, so it runs beside scripts/local.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

ensure_venv

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy (all targets, warnings are errors)"
cargo clippy --quiet --workspace --all-targets -- -D warnings

log "cfn-lint infra/template.yaml"
"$VENV/bin/cfn-lint" infra/template.yaml

cleanup() {
  [ -n "${GATEWAY_PID:-}" ] && kill "$GATEWAY_PID" 2> /dev/null || true
  [ -n "${MOTO_PID:-}" ] && kill "$MOTO_PID" 2> /dev/null || true
}
trap cleanup EXIT INT TERM

EMULATOR_PORT="$(free_port)"
start_moto "$EMULATOR_PORT"
ENV_FILE="$STATE/test.env"
provision "http://127.0.0.1:$EMULATOR_PORT" "$ENV_FILE"
load_env "$ENV_FILE"

log "Building the local endpoint and the operator CLI"
cargo build --quiet -p portcullis-local-gateway -p portcullis-admin-cli
API_PORT="$(free_port)"
# Every end-to-end request comes from 127.0.0.1: raise the per-IP throttle (default 30 failures
# in 10 minutes) so the suite's deliberate failures do not throttle each other. The throttle
# itself is tested at its default in the service tests (shared/tests/admin.rs).
PORTCULLIS_IP_FAILURE_THRESHOLD=1000 PORTCULLIS_WEB_DIR="$REPO_ROOT/web" \
  PORTCULLIS_RESET_URL="http://127.0.0.1:$API_PORT/reset" \
  PORTCULLIS_INVITATION_URL="http://127.0.0.1:$API_PORT/welcome" \
  PORTCULLIS_LISTEN="127.0.0.1:$API_PORT" target/debug/portcullis-local > "$STATE/gateway-test.log" 2>&1 &
GATEWAY_PID=$!
wait_for_http "http://127.0.0.1:$API_PORT/" "local endpoint"

export PORTCULLIS_API_URL="http://127.0.0.1:$API_PORT"
export PORTCULLIS_ADMIN_BIN="$REPO_ROOT/target/debug/portcullis-admin"
export PORTCULLIS_REQUIRE_EMULATOR=1

log "cargo test (unit, conformance on both adapters, end to end)"
cargo test --workspace 2>&1 | tee "$STATE/cargo-test.log"

# Property-based API test: requests generated from infra/openapi.yaml against the same local
# endpoint; every answer must be a non-5xx that matches the documented status codes, content
# types, headers and schemas. Bounded (examples per operation, time per request).
ensure_schemathesis
log "schemathesis against infra/openapi.yaml (bounded)"
"$STATE/st-venv/bin/st" run infra/openapi.yaml --url "$PORTCULLIS_API_URL" \
  --max-examples "${PORTCULLIS_SCHEMATHESIS_EXAMPLES:-25}" --request-timeout 10 --workers 2 \
  --phases examples,fuzzing,stateful --generation-deterministic \
  -c not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method

# Coverage-guided fuzzing of request parsing, phone numbers, tokens and User-Agents (cargo fuzz,
# PORTCULLIS_FUZZ_SECONDS per target, default 20; 0 skips).
scripts/fuzz.sh | tee "$STATE/fuzz.log"

# One closing line for the whole run (cargo's per-binary lines are above; schemathesis printed
# its own summary).
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' \
  "$STATE/cargo-test.log"
