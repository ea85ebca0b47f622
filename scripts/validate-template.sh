#!/usr/bin/env bash
# Validates infra/template.yaml with the SAM CLI: `sam validate --lint` (the SAM transform and
# cfn-lint's rules, offline; no AWS account, credentials or network are used).
#
#   scripts/validate-template.sh
#
# The SAM CLI comes from PyPI into its own virtualenv, .local/sam-venv: it pins boto3/botocore
# and other libraries differently from moto in the main .venv, so the two are kept apart. It
# is installed once and reused while it holds the pinned versions.
#
# cfn-lint is pinned to 1.53.0 inside that venv (aws-sam-cli 1.170.0 accepts >=1.52,<1.59):
# from 1.54 cfn-lint no longer expands AWS::Serverless::* resources before linting
# (aws-cloudformation/cfn-lint#4491), and on this template it then reports nothing wrong inside
# the functions: a !GetAtt of a missing resource in a function's Policies, or an invalid
# Globals Runtime, pass as "a valid SAM Template". 1.53.0 catches both. A canary (a copy of the
# template with one dangling !GetAtt) must fail, so a linter that went blind fails this script.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

# Pinned: the versions this was verified with (late 2026). Change them and re-run this script.
AWS_SAM_CLI_VERSION="1.170.0"
CFN_LINT_VERSION="1.53.0"
SAM_VENV="$STATE/sam-venv"
TEMPLATE="infra/template.yaml"

ensure_pinned_venv "$SAM_VENV" "aws-sam-cli $AWS_SAM_CLI_VERSION (cfn-lint $CFN_LINT_VERSION)" \
  "aws-sam-cli==$AWS_SAM_CLI_VERSION" "cfn-lint==$CFN_LINT_VERSION"

# Offline and anonymous: no telemetry, no update check, dummy credentials so that nothing looks
# for real ones (validation with --lint makes no AWS call).
sam_validate() {
  env -u AWS_PROFILE -u AWS_SESSION_TOKEN SAM_CLI_TELEMETRY=0 SAM_CLI_DISABLE_UPDATE_CHECK=1 \
    AWS_ACCESS_KEY_ID=validate AWS_SECRET_ACCESS_KEY=validate \
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    "$SAM_VENV/bin/sam" validate --lint -t "$1" --region us-east-1
}

log "sam validate --lint -t $TEMPLATE"
sam_validate "$TEMPLATE"

# The canary: the first `Resource: !GetAtt MainTable.Arn` of a function policy made dangling.
canary_dir="$(mktemp -d)"
trap 'rm -rf "$canary_dir"' EXIT
sed '0,/Resource: !GetAtt MainTable.Arn/s//Resource: !GetAtt LintCanaryMissing.Arn/' \
  "$TEMPLATE" > "$canary_dir/template.yaml"
if cmp -s "$TEMPLATE" "$canary_dir/template.yaml"; then
  echo "warning: no 'Resource: !GetAtt MainTable.Arn' in $TEMPLATE; linter canary skipped" >&2
elif sam_validate "$canary_dir/template.yaml" > "$canary_dir/out" 2>&1; then
  echo "sam validate --lint accepted a template with a dangling !GetAtt in a function policy:" >&2
  echo "the linter is not checking SAM functions (cfn-lint version?)" >&2
  exit 1
else
  log "linter canary (dangling !GetAtt in a function policy) rejected, as it must be"
fi
