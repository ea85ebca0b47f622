#!/usr/bin/env bash
# Builds every Lambda function (functions/*/) as a Lambda `bootstrap` with cargo-lambda and
# prints a table: function, bootstrap size, the newest glibc symbol it needs (at most 2.34, the
# glibc of provided.al2023) and whether it starts (run with an empty environment here, it must
# stop at its configuration, exit 1). Exits non-zero if any function fails any of these.
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
# `bootstrap` for the provided.al2023 runtime. The Rust code has nothing architecture-specific;
# the C parts of dependencies (aws-lc-sys, cross-compiled by zig) are proven here for x86_64 only.
# Set PORTCULLIS_LAMBDA_ARCH=arm64 where the aarch64 target is installed to build what deploys.
#
# Artifacts: target/lambda/<function>/bootstrap. The compilation shares the workspace target/
# (cargo-lambda refuses --target-dir; set CARGO_TARGET_DIR to move it): the release units go to
# target/<triple>/release, apart from the debug build of scripts/test.sh.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

# Pinned: the versions this was verified with (cargo-lambda 1.9.2 with zig 0.17.1 from the
# ziglang wheel, late 2026). Change both together and re-run this script.
CARGO_LAMBDA_VERSION="1.9.2"
ZIGLANG_VERSION="0.17.1"
TOOLS_VENV="$STATE/tools-venv"

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

ensure_pinned_venv "$TOOLS_VENV" "cargo-lambda $CARGO_LAMBDA_VERSION (with zig $ZIGLANG_VERSION)" \
  "cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIGLANG_VERSION"
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
# provided.al2023 ships glibc 2.34: a bootstrap needing newer symbols would not start there.
MAX_GLIBC="2.34"

bootstrap_of() { echo "$TARGET_DIR/lambda/$1/bootstrap"; }

for entry in "${CRATES[@]}"; do
  rm -f "$(bootstrap_of "${entry%% *}")"
done

# One cargo invocation for all functions: one feature resolution, the shared crates compiled
# once, binaries linked in parallel. Only if it fails, each function alone, to name the culprits.
started=$SECONDS
pkg_args=()
for entry in "${CRATES[@]}"; do
  pkg_args+=(-p "${entry#* }")
done
log "cargo lambda build --release $ARCH_FLAG ${pkg_args[*]}"
declare -A STATUS
if ! cargo lambda build --release "$ARCH_FLAG" "${pkg_args[@]}"; then
  log "The combined build failed: building each function alone to find which"
  for entry in "${CRATES[@]}"; do
    bin="${entry%% *}"
    if ! cargo lambda build --release "$ARCH_FLAG" -p "${entry#* }" --bin "$bin"; then
      STATUS[$bin]="build failed"
    fi
  done
fi
build_secs=$((SECONDS - started))

host_arch="$(uname -m)"
failed=0
printf '\n%-18s %14s %10s  %s\n' "function" "bootstrap (KB)" "max glibc" "status"
for entry in "${CRATES[@]}"; do
  bin="${entry%% *}"
  file="$(bootstrap_of "$bin")"
  size="-" glibc="-" status="${STATUS[$bin]:-ok}"
  if [ ! -s "$file" ]; then
    [ "$status" = ok ] && status="no bootstrap produced"
  else
    size=$(($(stat -c %s "$file") / 1024))
    if command -v objdump > /dev/null; then
      glibc="$(objdump -T "$file" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)"
      if [ -n "$glibc" ] && [ "$(printf '%s\n%s\n' "$glibc" "$MAX_GLIBC" | sort -V | tail -1)" != "$MAX_GLIBC" ]; then
        status="needs glibc $glibc > $MAX_GLIBC (provided.al2023)"
      fi
    fi
    # It must load and start: without its environment, it stops at the configuration (exit 1).
    # Exit codes 124 and above mean a timeout, a loader error or a signal.
    if [ "$status" = ok ] && [[ "$ARCH_FLAG" == --x86-64 && "$host_arch" == x86_64 ]]; then
      rc=0
      timeout 10 env -i "$file" > /dev/null 2>&1 || rc=$?
      [ "$rc" -ge 124 ] && status="does not start (exit $rc)"
    fi
  fi
  [ "$status" = ok ] || failed=$((failed + 1))
  printf '%-18s %14s %10s  %s\n' "$bin" "$size" "${glibc:--}" "$status"
done
echo "(${PORTCULLIS_LAMBDA_ARCH:-x86_64}, release, built in ${build_secs}s; artifacts in ${TARGET_DIR#"$REPO_ROOT"/}/lambda/<function>/bootstrap)"

if [ "$failed" -gt 0 ]; then
  echo "$failed function(s) failed" >&2
  exit 1
fi
