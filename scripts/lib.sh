# Shared shell functions for the scripts of scripts/ (local.sh, test.sh, the benchmarks, the
# tool installers). Source it; do not run it.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
STATE="$REPO_ROOT/.local"
mkdir -p "$STATE"

# Every step's line says how long the run has taken so far ([+mm:ss], from the first script
# of the run: the scripts a script calls inherit its start), so a slow step shows in the log.
export PORTCULLIS_RUN_STARTED="${PORTCULLIS_RUN_STARTED:-$(date +%s)}"
log() {
  local took=$(($(date +%s) - PORTCULLIS_RUN_STARTED))
  printf '\033[1m==> [+%02d:%02d] %s\033[0m\n' $((took / 60)) $((took % 60)) "$*" >&2
}

# The project-local virtualenv with the moto server, boto3, PyYAML and cfn-lint.
# Reinstalls only when scripts/requirements.txt changes.
ensure_venv() {
  local stamp="$VENV/.requirements.sha256"
  local want
  want="$(sha256sum "$REPO_ROOT/scripts/requirements.txt" | cut -d' ' -f1)"
  if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  log "Installing Python tools into .venv (moto server, boto3, PyYAML, cfn-lint)"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REPO_ROOT/scripts/requirements.txt"
  echo "$want" > "$stamp"
}

# The version of distribution DIST installed in the virtualenv VENV, or nothing.
installed_version() {
  "$1/bin/python" - "$2" 2> /dev/null <<'PY' || true
import importlib.metadata as m, sys
try:
    print(m.version(sys.argv[1]))
except m.PackageNotFoundError:
    pass
PY
}

# A virtualenv of pinned tools from PyPI, kept apart from .venv (their pins clash with moto's):
#   ensure_pinned_venv VENV 'what it is, for the log' DIST==VERSION ...
# Installs only when one of the DISTs is missing from VENV or at another version.
ensure_pinned_venv() {
  local venv="$1" what="$2" spec
  shift 2
  for spec in "$@"; do
    if [ "$(installed_version "$venv" "${spec%%==*}")" != "${spec#*==}" ]; then
      log "Installing $what into ${venv#"$REPO_ROOT/"}"
      [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
      "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
      return
    fi
  done
}

# schemathesis in its own virtualenv (its dependencies are not pinned against moto's).
SCHEMATHESIS_VERSION="4.32.5"
ensure_schemathesis() {
  local venv="$STATE/st-venv"
  if [ -x "$venv/bin/st" ] && "$venv/bin/st" --version 2> /dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    return 0
  fi
  log "Installing schemathesis $SCHEMATHESIS_VERSION into .local/st-venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
}

# A free TCP port on loopback.
free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits until URL answers any HTTP status (max SECONDS, default 30).
wait_for_http() {
  local url="$1" name="$2" seconds="${3:-30}"
  "$VENV/bin/python" - "$url" "$name" "$seconds" <<'PY'
import sys, time, urllib.request, urllib.error
url, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit(f"{name} did not answer at {url} within {seconds:.0f} s")
PY
}

# Starts the moto server on 127.0.0.1:PORT in the background; sets MOTO_PID.
start_moto() {
  local port="$1"
  log "Starting the moto server on 127.0.0.1:$port"
  # scripts/moto_server.py: moto's own server, DynamoDB requests one at a time (see the file).
  # PORTCULLIS_MOTO_UNSERIALISED=1 runs plain moto_server instead, to watch the concurrency
  # tests fail on it (shared/tests/conformance.rs, a_totp_step_raced_by_user_creations_…).
  if [ "${PORTCULLIS_MOTO_UNSERIALISED:-}" = 1 ]; then
    log "moto WITHOUT the serialising wrapper: its writes race; expect concurrency tests to fail"
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" > "$STATE/moto-$port.log" 2>&1 &
  else
    "$VENV/bin/python" "$REPO_ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$port" > "$STATE/moto-$port.log" 2>&1 &
  fi
  MOTO_PID=$!
  wait_for_http "http://127.0.0.1:$port/moto-api/" "moto server"
}

# LocalStack in the host process (no Docker): install and start (see the file).
# shellcheck source=scripts/localstack_host.sh
. "$REPO_ROOT/scripts/localstack_host.sh"

# Which emulator to run: PORTCULLIS_EMULATOR=localstack (default) or moto. LocalStack runs in
# Docker (localstack/docker-compose.yml) where a Docker engine answers, else in the host process;
# PORTCULLIS_LOCALSTACK_RUNTIME=docker|host forces one. Sets EMULATOR and EMULATOR_RUNTIME.
choose_emulator() {
  EMULATOR="${PORTCULLIS_EMULATOR:-localstack}"
  case "$EMULATOR" in
    moto) EMULATOR_RUNTIME=moto ;;
    localstack)
      case "${PORTCULLIS_LOCALSTACK_RUNTIME:-auto}" in
        auto)
          if command -v docker > /dev/null 2>&1 && timeout 15 docker info > /dev/null 2>&1 &&
            docker compose version > /dev/null 2>&1; then
            EMULATOR_RUNTIME=docker
          else
            EMULATOR_RUNTIME=host
          fi
          ;;
        docker | host) EMULATOR_RUNTIME="$PORTCULLIS_LOCALSTACK_RUNTIME" ;;
        *) echo "PORTCULLIS_LOCALSTACK_RUNTIME must be auto, docker or host" >&2; exit 1 ;;
      esac
      ;;
    *) echo "PORTCULLIS_EMULATOR must be localstack or moto (got $EMULATOR)" >&2; exit 1 ;;
  esac
}

# Starts LocalStack with docker compose on 127.0.0.1:PORT (only where a Docker engine runs). Its
# init hook provisions inside the container and writes .local/ENV_NAME (default portcullis.env).
start_localstack_docker() {
  local port="$1" env_name="${2:-portcullis.env}"
  LOCALSTACK_COMPOSE_PROJECT="portcullis-$port"
  log "Starting LocalStack (docker compose, project $LOCALSTACK_COMPOSE_PROJECT) on 127.0.0.1:$port"
  PORTCULLIS_EMULATOR_PORT="$port" PORTCULLIS_ENV_NAME="$env_name" \
    docker compose -p "$LOCALSTACK_COMPOSE_PROJECT" -f "$REPO_ROOT/localstack/docker-compose.yml" up -d --wait
  wait_for_http "http://127.0.0.1:$port/_localstack/health" "LocalStack" 60
}

stop_localstack_docker() {
  [ -n "${LOCALSTACK_COMPOSE_PROJECT:-}" ] || return 0
  docker compose -p "$LOCALSTACK_COMPOSE_PROJECT" -f "$REPO_ROOT/localstack/docker-compose.yml" down > /dev/null 2>&1 || true
  LOCALSTACK_COMPOSE_PROJECT=
}

# Starts the chosen emulator (choose_emulator) on 127.0.0.1:PORT; sets ENDPOINT. ENV_NAME names
# the env file that LocalStack's Docker init hook writes under .local/.
start_emulator() {
  local port="$1" env_name="${2:-portcullis.env}"
  ENDPOINT="http://127.0.0.1:$port"
  case "$EMULATOR_RUNTIME" in
    moto) start_moto "$port" ;;
    docker) start_localstack_docker "$port" "$env_name" ;;
    host) start_localstack_host "$port" ;;
  esac
  if [ "$EMULATOR" = localstack ]; then
    warm_up_dynamodb "$ENDPOINT"
  fi
}

stop_emulator() {
  [ -n "${MOTO_PID:-}" ] && kill "$MOTO_PID" 2> /dev/null || true
  MOTO_PID=
  stop_localstack_host
  stop_localstack_docker
}

# LocalStack's DynamoDB is DynamoDB Local, whose JVM starts at the first DynamoDB call (5-10 s,
# more on a busy machine): make that call now, not inside a test's time budget.
warm_up_dynamodb() {
  local endpoint="$1"
  log "Warming up LocalStack's DynamoDB (DynamoDB Local's JVM starts at the first call)"
  "$VENV/bin/python" - "$endpoint" <<'PY'
import sys, time
import boto3, botocore.config
started = time.monotonic()
client = boto3.client("dynamodb", endpoint_url=sys.argv[1], region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test",
                      config=botocore.config.Config(read_timeout=120, retries={"max_attempts": 5}))
client.list_tables()
first = time.monotonic() - started
samples = []
for _ in range(5):
    t = time.monotonic(); client.list_tables(); samples.append(time.monotonic() - t)
print(f"DynamoDB answered in {first:.1f} s; then {sorted(samples)[2] * 1000:.0f} ms per call", file=sys.stderr)
PY
}

# Creates the template's resources on the emulator at ENDPOINT and writes the functions'
# environment to ENV_FILE (derived from infra/template.yaml: no second list of resources).
provision() {
  local endpoint="$1" env_file="$2"
  log "Provisioning the resources of infra/template.yaml on $endpoint ($EMULATOR)"
  "$VENV/bin/python" "$REPO_ROOT/scripts/provision.py" \
    --template "$REPO_ROOT/infra/template.yaml" --emulator "$EMULATOR" \
    --endpoint "$endpoint" --region us-east-1 --stage local \
    --env-out "$env_file"
}

load_env() {
  set -a
  # shellcheck disable=SC1090
  . "$1"
  set +a
}

# The benchmarks' emulator (scripts/bench.sh, bench-profiles.sh): always the serialised moto
# server, so that their figures compare with earlier runs on it, on a free port and stopped when
# the script ends; provisioned, with the functions' environment written to ENV_FILE and loaded.
start_bench_moto() {
  local env_file="$1"
  trap stop_emulator EXIT INT TERM
  EMULATOR=moto
  EMULATOR_RUNTIME=moto
  EMULATOR_PORT="$(free_port)"
  start_moto "$EMULATOR_PORT"
  provision "http://127.0.0.1:$EMULATOR_PORT" "$env_file"
  load_env "$env_file"
}
