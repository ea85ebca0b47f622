#!/usr/bin/env bash
# Runs inside the LocalStack container once its services are ready: creates the resources of
# infra/template.yaml (scripts/provision.py, the same script the moto path uses) and writes the
# functions' environment to .local/portcullis.env on the host.
set -euo pipefail
PYTHON=/opt/code/localstack/.venv/bin/python
[ -x "$PYTHON" ] || PYTHON=python3
"$PYTHON" /portcullis/scripts/provision.py \
  --template /portcullis/infra/template.yaml \
  --endpoint http://localhost:4566 --region us-east-1 --stage "${PORTCULLIS_STAGE:-local}" \
  --env-out /portcullis-state/portcullis.env
# The env file is read on the host: point it at the published port.
sed -i 's#http://localhost:4566#http://127.0.0.1:4566#' /portcullis-state/portcullis.env
