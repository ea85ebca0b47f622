# Shared shell functions for scripts/local.sh and scripts/test.sh. Source it; do not run it.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
STATE="$REPO_ROOT/.local"
mkdir -p "$STATE"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

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

# Waits until URL answers any HTTP status (max ~30 s).
wait_for_http() {
  local url="$1" name="$2"
  "$VENV/bin/python" - "$url" "$name" <<'PY'
import sys, time, urllib.request, urllib.error
url, name = sys.argv[1], sys.argv[2]
for _ in range(300):
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit(f"{name} did not answer at {url}")
PY
}

# Starts the moto server on 127.0.0.1:PORT in the background; sets MOTO_PID.
start_moto() {
  local port="$1"
  log "Starting the moto server on 127.0.0.1:$port"
  # scripts/moto_server.py: moto's own server, DynamoDB requests one at a time (see the file).
  "$VENV/bin/python" "$REPO_ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$port" > "$STATE/moto-$port.log" 2>&1 &
  MOTO_PID=$!
  wait_for_http "http://127.0.0.1:$port/moto-api/" "moto server"
}

# Starts LocalStack with docker compose (only where a Docker engine runs).
start_localstack() {
  if ! docker info > /dev/null 2>&1; then
    echo "PORTCULLIS_EMULATOR=localstack needs a running Docker engine; none found. Use the default (moto)." >&2
    exit 1
  fi
  log "Starting LocalStack (docker compose)"
  docker compose -f "$REPO_ROOT/localstack/docker-compose.yml" up -d --wait
  wait_for_http "http://127.0.0.1:4566/_localstack/health" "LocalStack"
}

# Creates the template's resources on the emulator at ENDPOINT and writes the functions'
# environment to ENV_FILE (derived from infra/template.yaml: no second list of resources).
provision() {
  local endpoint="$1" env_file="$2"
  log "Provisioning the resources of infra/template.yaml on $endpoint"
  "$VENV/bin/python" "$REPO_ROOT/scripts/provision.py" \
    --template "$REPO_ROOT/infra/template.yaml" \
    --endpoint "$endpoint" --region us-east-1 --stage local \
    --env-out "$env_file"
}

load_env() {
  set -a
  # shellcheck disable=SC1090
  . "$1"
  set +a
}
