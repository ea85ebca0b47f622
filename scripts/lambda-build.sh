#!/usr/bin/env bash
# Builds every Lambda function (functions/*/) as a Lambda `bootstrap` with cargo-lambda and
# prints each binary's size. Exits non-zero if any function fails to build.
#
#   scripts/lambda-build.sh             # release build of every function, x86_64
#   scripts/lambda-build.sh sign-in …   # only these functions (binary names)
#
# cargo-lambda (and the zig it links with) comes from PyPI into a project-local virtualenv,
# .local/tools-venv, installed once and reused while it holds the pinned versions below.
#
# Architecture: infra/template.yaml deploys arm64 (Graviton), and `sam build` (BuildMethod
# rust-cargolambda) builds aarch64-unknown-linux-gnu wherever that Rust target can be installed
# (`rustup target add aarch64-unknown-linux-gnu`). CI machines cannot download Rust targets, so
# this builds x86_64-unknown-linux-gnu, the only installed target. That still proves that each
# function compiles in release mode and links, through zig against an old glibc, into a
# `bootstrap` for the provided.al2023 runtime; the code has no architecture-specific parts.
# Set PORTCULLIS_LAMBDA_ARCH=arm64 where the aarch64 target is installed to build what deploys.
#
# Artifacts: target/lambda/<function>/bootstrap. The compilation shares the workspace target/
# (cargo-lambda refuses --target-dir; set CARGO_TARGET_DIR to move it): the release units go to
# target/<triple>/release, apart from the debug build of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO_ROOT="$PWD"

# Pinned: the versions this was verified with (cargo-lambda 1.9.2 with zig 0.17.1 from the
# ziglang wheel, late 2026). Change both together and re-run this script.
CARGO_LAMBDA_VERSION="1.9.2"
ZIGLANG_VERSION="0.17.1"
TOOLS_VENV="$REPO_ROOT/.local/tools-venv"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Installed version of a distribution in the tools venv, or nothing.
installed_version() {
  "$TOOLS_VENV/bin/python" - "$1" 2> /dev/null <<'PY' || true
import importlib.metadata as m, sys
try:
    print(m.version(sys.argv[1]))
except m.PackageNotFoundError:
    pass
PY
}

ensure_cargo_lambda() {
  if [ -x "$TOOLS_VENV/bin/python" ] \
    && [ "$(installed_version cargo-lambda)" = "$CARGO_LAMBDA_VERSION" ] \
    && [ "$(installed_version ziglang)" = "$ZIGLANG_VERSION" ]; then
    return 0
  fi
  log "Installing cargo-lambda $CARGO_LAMBDA_VERSION (with zig $ZIGLANG_VERSION) into .local/tools-venv"
  mkdir -p "$REPO_ROOT/.local"
  [ -x "$TOOLS_VENV/bin/python" ] || python3 -m venv "$TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check \
    "cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIGLANG_VERSION"
}

# "<binary> <package>" for every function crate: the [[bin]] name (the directory name when the
# manifest has no [[bin]] section) and the [package] name, read from functions/*/Cargo.toml.
function_crates() {
  local manifest dir pkg bin
  for manifest in functions/*/Cargo.toml; do
    dir="$(basename "$(dirname "$manifest")")"
    pkg="$(awk '/^\[/{s=$0} s=="[package]" && $1=="name" {gsub(/[" ]/,"",$3); print $3; exit}' "$manifest")"
    bin="$(awk '/^\[/{s=$0} s=="[[bin]]" && $1=="name" {gsub(/[" ]/,"",$3); print $3; exit}' "$manifest")"
    echo "${bin:-$dir} ${pkg:-$dir}"
  done
}

case "${PORTCULLIS_LAMBDA_ARCH:-x86_64}" in
  x86_64 | x86-64) ARCH_FLAG=--x86-64 ;;
  arm64 | aarch64) ARCH_FLAG=--arm64 ;;
  *)
    echo "PORTCULLIS_LAMBDA_ARCH must be x86_64 or arm64" >&2
    exit 2
    ;;
esac

ensure_cargo_lambda
# cargo finds the `cargo-lambda` subcommand, and cargo-lambda finds zig, on PATH.
export PATH="$TOOLS_VENV/bin:$PATH"

mapfile -t CRATES < <(function_crates)
if [ "${#CRATES[@]}" -eq 0 ]; then
  echo "no function crates under functions/" >&2
  exit 1
fi
if [ "$#" -gt 0 ]; then
  wanted=" $* "
  selected=()
  for entry in "${CRATES[@]}"; do
    [[ "$wanted" == *" ${entry%% *} "* ]] && selected+=("$entry")
  done
  if [ "${#selected[@]}" -ne "$#" ]; then
    echo "unknown function in: $* (known: $(printf '%s ' "${CRATES[@]%% *}"))" >&2
    exit 2
  fi
  CRATES=("${selected[@]}")
fi

TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
declare -A STATUS SECONDS_TAKEN
failed=0
for entry in "${CRATES[@]}"; do
  bin="${entry%% *}"
  pkg="${entry#* }"
  log "cargo lambda build --release $ARCH_FLAG -p $pkg --bin $bin"
  started=$SECONDS
  rm -f "$TARGET_DIR/lambda/$bin/bootstrap"
  if cargo lambda build --release "$ARCH_FLAG" -p "$pkg" --bin "$bin" \
    && [ -s "$TARGET_DIR/lambda/$bin/bootstrap" ]; then
    STATUS[$bin]=ok
  else
    STATUS[$bin]=FAILED
    failed=$((failed + 1))
  fi
  SECONDS_TAKEN[$bin]=$((SECONDS - started))
done

printf '\n%-18s %-8s %14s %8s\n' "function" "status" "bootstrap (KB)" "time (s)"
for entry in "${CRATES[@]}"; do
  bin="${entry%% *}"
  file="$TARGET_DIR/lambda/$bin/bootstrap"
  size="-"
  [ -s "$file" ] && size=$(($(stat -c %s "$file") / 1024))
  printf '%-18s %-8s %14s %8s\n' "$bin" "${STATUS[$bin]}" "$size" "${SECONDS_TAKEN[$bin]}"
done
echo "(arch: ${PORTCULLIS_LAMBDA_ARCH:-x86_64}; artifacts in ${TARGET_DIR#"$REPO_ROOT"/}/lambda/<function>/bootstrap)"

if [ "$failed" -gt 0 ]; then
  echo "$failed function(s) failed to build" >&2
  exit 1
fi
