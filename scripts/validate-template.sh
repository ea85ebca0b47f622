#!/usr/bin/env bash
# Validates infra/template.yaml with the SAM CLI (`sam validate --lint`: the SAM transform's
# schema and cfn-lint's rules, run offline; no AWS account or credentials are used).
#
#   scripts/validate-template.sh
#
# The SAM CLI comes from PyPI into its own virtualenv, .local/sam-venv: it pins boto3/botocore
# and other libraries differently from moto in the main .venv, so the two are kept apart. It
# is installed once and reused while it holds the pinned version.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO_ROOT="$PWD"

# Pinned: the version this was verified with (late 2026). Change it and re-run this script.
AWS_SAM_CLI_VERSION="1.170.0"
SAM_VENV="$REPO_ROOT/.local/sam-venv"
TEMPLATE="infra/template.yaml"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

installed_version() {
  "$SAM_VENV/bin/python" - "$1" 2> /dev/null <<'PY' || true
import importlib.metadata as m, sys
try:
    print(m.version(sys.argv[1]))
except m.PackageNotFoundError:
    pass
PY
}

if ! [ -x "$SAM_VENV/bin/sam" ] || [ "$(installed_version aws-sam-cli)" != "$AWS_SAM_CLI_VERSION" ]; then
  log "Installing aws-sam-cli $AWS_SAM_CLI_VERSION into .local/sam-venv"
  mkdir -p "$REPO_ROOT/.local"
  [ -x "$SAM_VENV/bin/python" ] || python3 -m venv "$SAM_VENV"
  "$SAM_VENV/bin/pip" install --quiet --disable-pip-version-check "aws-sam-cli==$AWS_SAM_CLI_VERSION"
fi

log "sam validate --lint -t $TEMPLATE"
# Offline and anonymous: no telemetry, no update check, dummy credentials so nothing looks for
# real ones (validation with --lint makes no AWS call).
env -u AWS_PROFILE -u AWS_SESSION_TOKEN SAM_CLI_TELEMETRY=0 SAM_CLI_DISABLE_UPDATE_CHECK=1 \
  AWS_ACCESS_KEY_ID=validate AWS_SECRET_ACCESS_KEY=validate \
  AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
  "$SAM_VENV/bin/sam" validate --lint -t "$TEMPLATE" --region us-east-1
