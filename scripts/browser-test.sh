#!/usr/bin/env bash
# Headless-Chromium tests of the reference web client (web/), in tests/browser.
#
# Called by scripts/test.sh after the API tests, with the local endpoint already serving web/
# and these exported: PORTCULLIS_API_URL, AWS_ENDPOINT_URL, PORTCULLIS_ADMIN_BIN and the
# variables of the stack's env file. Installs what it needs on a fresh machine: Debian's
# chromium (apt-get) if /usr/bin/chromium is missing, and the npm packages of tests/browser
# (npm ci, again only when package-lock.json changes). Ends with one line:
#   browser tests: N passed, N failed
#
# Settings: PORTCULLIS_BROWSER_TEST_TIMEOUT (seconds for the whole run, default 900),
# PORTCULLIS_BROWSER_TEST_CONCURRENCY (test files at once, default 1: a read of the emulator's
# data.json stalls every other request to it),
# PORTCULLIS_SCREENSHOTS=1 (write docs/screenshots/*.png instead of .local/browser-screens/).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BROWSER_DIR="$REPO_ROOT/tests/browser"
CHROMIUM="${PORTCULLIS_CHROMIUM:-/usr/bin/chromium}"
TIMEOUT="${PORTCULLIS_BROWSER_TEST_TIMEOUT:-900}"
CONCURRENCY="${PORTCULLIS_BROWSER_TEST_CONCURRENCY:-1}"

summary() {
  echo "browser tests: $1 passed, $2 failed"
}

fail_setup() {
  echo "browser-test.sh: $*" >&2
  summary 0 1
  exit 1
}

for name in PORTCULLIS_API_URL AWS_ENDPOINT_URL PORTCULLIS_ADMIN_BIN; do
  [ -n "${!name:-}" ] || fail_setup "$name is not set (scripts/test.sh exports it with the running stack)"
done
[ -x "$PORTCULLIS_ADMIN_BIN" ] || fail_setup "PORTCULLIS_ADMIN_BIN ($PORTCULLIS_ADMIN_BIN) is not an executable"

# Debian's Chromium; playwright-core drives it and never downloads a browser of its own.
ensure_chromium() {
  [ -x "$CHROMIUM" ] && return 0
  [ "$CHROMIUM" = /usr/bin/chromium ] || fail_setup "PORTCULLIS_CHROMIUM=$CHROMIUM is not an executable"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo > /dev/null 2>&1 ||
      fail_setup "/usr/bin/chromium is missing; install it as root: apt-get update && apt-get install -y chromium"
    sudo=(sudo -n)
  fi
  log "Installing Chromium (Debian package) for the browser tests"
  "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq ||
    fail_setup "apt-get update failed; install Chromium yourself: apt-get install -y chromium"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium ||
    fail_setup "apt-get install chromium failed; install it yourself: apt-get install -y chromium"
  [ -x "$CHROMIUM" ] || fail_setup "chromium was installed but /usr/bin/chromium is missing"
}

# Node.js 20+ (playwright-core's minimum; Debian 12's own nodejs is 18).
ensure_node() {
  command -v node > /dev/null 2>&1 || fail_setup "Node.js 20 or later is needed (node not found)"
  command -v npm > /dev/null 2>&1 || fail_setup "npm is needed (not found next to node)"
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  [ "$major" -ge 20 ] || fail_setup "Node.js 20 or later is needed (found $(node --version))"
}

# npm ci only when node_modules is missing or package-lock.json changed (like ensure_venv).
ensure_node_modules() {
  local stamp="$BROWSER_DIR/node_modules/.package-lock.sha256"
  local want
  want="$(sha256sum "$BROWSER_DIR/package-lock.json" | cut -d' ' -f1)"
  if [ -d "$BROWSER_DIR/node_modules" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  log "Installing the browser tests' npm packages (npm ci in tests/browser)"
  (cd "$BROWSER_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) ||
    fail_setup "npm ci failed in tests/browser"
  echo "$want" > "$stamp"
}

ensure_chromium
ensure_node
ensure_node_modules

log "Browser tests (headless Chromium $("$CHROMIUM" --version 2> /dev/null | awk '{print $2}')) against $PORTCULLIS_API_URL"
TAP="$STATE/browser-tests.tap"
rm -f "$TAP"
status=0
(
  cd "$BROWSER_DIR"
  PORTCULLIS_CHROMIUM="$CHROMIUM" timeout --kill-after=10 "$TIMEOUT" \
    node --test --test-concurrency="$CONCURRENCY" \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$TAP" \
    test/*.test.js
) || status=$?

passed="$(sed -n 's/^# pass \([0-9][0-9]*\)$/\1/p' "$TAP" 2> /dev/null | tail -n 1)"
failed="$(sed -n 's/^# fail \([0-9][0-9]*\)$/\1/p' "$TAP" 2> /dev/null | tail -n 1)"
cancelled="$(sed -n 's/^# cancelled \([0-9][0-9]*\)$/\1/p' "$TAP" 2> /dev/null | tail -n 1)"
passed="${passed:-0}"
failed="$(( ${failed:-0} + ${cancelled:-0} ))"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # killed by the timeout, or node failed before reporting: count the run as one failure
  [ "$status" -eq 124 ] && echo "browser-test.sh: timed out after ${TIMEOUT}s" >&2
  failed=1
fi
summary "$passed" "$failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
