#!/usr/bin/env bash
# LocalStack init hook (READY stage): runs inside the container once its services answer.
# Creates the resources of infra/template.yaml with scripts/provision.py (the same script the
# moto path uses: one definition of the resources) and writes the functions' environment to
# /portcullis-state/$PORTCULLIS_ENV_NAME, which docker-compose.yml maps to .local/ on the host
# (.local/portcullis.env unless the scripts ask for another name). A non-zero exit marks the hook ERROR, and the container's healthcheck fails.
set -euo pipefail

# LocalStack's own virtualenv has boto3 and PyYAML.
PYTHON=/opt/code/localstack/.venv/bin/python
[ -x "$PYTHON" ] || PYTHON=python3

"$PYTHON" /portcullis/scripts/provision.py \
  --template /portcullis/infra/template.yaml \
  --endpoint http://localhost:4566 \
  --region us-east-1 \
  --stage "${PORTCULLIS_STAGE:-local}" \
  --emulator localstack \
  --env-out "/portcullis-state/${PORTCULLIS_ENV_NAME:-portcullis.env}" \
  --env-endpoint "http://127.0.0.1:${PORTCULLIS_EMULATOR_PORT:-4566}"   # read on the host (published port)
