#!/usr/bin/env bash
# The one test command of the workspace (README, .ci/run).
#
# Installs what the tests need (a Python venv with moto, the MCP servers and python-hcl2; venvs of
# their own for checkov and schemathesis; Debian's docker-registry), starts the moto server and a local OCI registry on
# 127.0.0.1, runs fmt, clippy, every test (one build: cargo nextest + doctests) and the Terraform
# checks, then stops what it started.
#
# Environment:
#   TOOLSHED_SKIP_INSTALL=1   do not pip/apt install (use what is there)
#   TOOLSHED_VENV=DIR         the test venv (default .venv in the workspace)
#   TOOLSHED_CHECKOV_VENV=DIR the checkov venv (default .venv-checkov)
#   CI=true                   target/ and the venvs in ~/.cache/toolshed-sdk (kept between runs)
#   TOOLSHED_SCHEMATHESIS_VENV=DIR the schemathesis venv (default .venv-schemathesis)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
run_dir="$root/.toolshed-run"
mkdir -p "$run_dir"
# CI runs each time in a fresh clone on the same machine: keep what the run makes (target/, the
# venvs) in one cache per machine, so a run builds and installs only what changed.
if [ "${CI:-}" = true ]; then
  ci_cache=${XDG_CACHE_HOME:-$HOME/.cache}/toolshed-sdk
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ci_cache/target}
  : "${TOOLSHED_VENV:=$ci_cache/venv}" "${TOOLSHED_CHECKOV_VENV:=$ci_cache/venv-checkov}" \
    "${TOOLSHED_SCHEMATHESIS_VENV:=$ci_cache/venv-schemathesis}"
fi
venv=${TOOLSHED_VENV:-$root/.venv}
checkov_venv=${TOOLSHED_CHECKOV_VENV:-$root/.venv-checkov}
schemathesis_venv=${TOOLSHED_SCHEMATHESIS_VENV:-$root/.venv-schemathesis}
pids=()

log() { printf '==> %s\n' "$*" >&2; }

cleanup() {
  for pid in "${pids[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]:-}"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # url seconds
  local url=$1 deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then log "timed out waiting for $url"; return 1; fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------- installs
if [ "${TOOLSHED_SKIP_INSTALL:-0}" != 1 ]; then
  if [ ! -x "$venv/bin/python" ]; then
    log "creating test venv $venv"
    python3 -m venv "$venv"
  fi
  log "installing Python test dependencies"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
  if [ ! -x "$checkov_venv/bin/checkov" ]; then
    log "creating checkov venv $checkov_venv"
    python3 -m venv "$checkov_venv"
    "$checkov_venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-checkov.txt
  fi
  if [ ! -x "$schemathesis_venv/bin/schemathesis" ]; then
    # CPython 3.11.7 fails inside schemathesis's generator ("AST constructor recursion depth
    # mismatch"): prefer a Python >= 3.12 (pyenv keeps other versions off PATH).
    st_python=python3
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      for candidate in python3.13 python3.12; do
        if "$candidate" -c 'import sys' >/dev/null 2>&1; then st_python=$candidate; break; fi
      done
      if [ "$st_python" = python3 ] && command -v pyenv >/dev/null 2>&1; then
        for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9])(\.|$)' | sort -rV); do
          st_python="$(pyenv root)/versions/$v/bin/python3"; break
        done
      fi
    fi
    log "creating schemathesis venv $schemathesis_venv ($("$st_python" --version 2>&1))"
    "$st_python" -m venv "$schemathesis_venv"
    "$schemathesis_venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-schemathesis.txt
  fi
  if ! command -v docker-registry >/dev/null 2>&1 && [ ! -x /usr/bin/docker-registry ]; then
    log "installing Debian's docker-registry"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null
    else
      sudo apt-get update -qq >/dev/null && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null
    fi
  fi
  # The Docker tests compile tiny FROM-scratch test programs with `cc -static`.
  if ! command -v cc >/dev/null 2>&1 || [ ! -f /usr/lib/x86_64-linux-gnu/libc.a ]; then
    log "installing gcc and libc6-dev (static libc)"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null
    else
      sudo apt-get update -qq >/dev/null && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null
    fi
  fi
  if ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest"
    cargo install --locked cargo-nextest
  fi
  if ! cargo hack --version >/dev/null 2>&1; then
    log "installing cargo-hack"
    cargo install --locked cargo-hack
  fi
fi
export PATH="$venv/bin:$PATH"
export TOOLSHED_TEST_PYTHON="$venv/bin/python"
export TOOLSHED_TEST_VENV_BIN="$venv/bin"
export TOOLSHED_TEST_SCHEMATHESIS="$schemathesis_venv/bin/schemathesis"

# ---------------------------------------------------------------- services
# Tests that need a backend read these variables; when they are set the backend MUST be there
# (TOOLSHED_REQUIRE_BACKENDS=1 turns a skip into a failure).
export TOOLSHED_REQUIRE_BACKENDS=1

moto_port=$(free_port)
log "starting moto on 127.0.0.1:$moto_port"
"$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$run_dir/moto.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$moto_port/moto-api/data.json" 30
export TOOLSHED_TEST_MOTO_ENDPOINT="http://127.0.0.1:$moto_port"

registry_port=$(free_port)
registry_bin=$(command -v docker-registry || echo /usr/bin/docker-registry)
mkdir -p "$run_dir/registry"
cat >"$run_dir/registry.yml" <<YML
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $run_dir/registry }
  delete: { enabled: true }
http:
  addr: 127.0.0.1:$registry_port
YML
log "starting docker-registry on 127.0.0.1:$registry_port"
"$registry_bin" serve "$run_dir/registry.yml" >"$run_dir/registry.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$registry_port/v2/" 30
export TOOLSHED_TEST_REGISTRY="127.0.0.1:$registry_port"

if docker info >/dev/null 2>&1; then
  export TOOLSHED_TEST_DOCKER=1
  # The local Python image real Python MCP servers are built FROM (made once, then cached by tag).
  log "local Python image for the real-server tests"
  TOOLSHED_TEST_PYTHON_IMAGE=$(scripts/python-base-image.sh)
  export TOOLSHED_TEST_PYTHON_IMAGE
else
  log "no Docker engine reachable: Docker tests will fail under TOOLSHED_REQUIRE_BACKENDS"
fi

# ---------------------------------------------------------------- Rust
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# Each feature of toolshed-core alone (the library target only, so the dev-dependencies, which
# enable others, do not count): a feature that builds only when the workspace unifies it with
# another one fails here. Check only.
log "toolshed-core: each feature alone"
cargo hack check --locked -p toolshed-core --each-feature
# The example MCP server and the stdio bridge go into FROM-scratch images: build them static once,
# here, rather than from inside the first Docker test. (--target keeps the flag off proc-macros.)
log "static MCP binaries for the container images"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked \
  -p mcp-stdio-bridge -p mcp-example-server --target x86_64-unknown-linux-gnu
log "cargo nextest"
cargo nextest run --workspace --locked --no-fail-fast
log "doctests"
cargo test --workspace --doc --locked

# ---------------------------------------------------------------- Terraform
if [ -x scripts/check-terraform.sh ]; then
  log "terraform checks"
  TOOLSHED_CHECKOV="$checkov_venv/bin/checkov" scripts/check-terraform.sh
fi
log "all checks passed"
