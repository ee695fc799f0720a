#!/usr/bin/env bash
# Makes the local images the Docker tests build real Python MCP servers FROM. No registry can be
# pulled from here, so:
#   1. toolshed-test/python:3.11-bookworm — Debian bookworm (minbase) with python3, venv, pip and
#      CA certificates, made with debootstrap and `docker import` (~75 s once);
#   2. toolshed-test/python-mcp:<hash> — that base plus a venv (/opt/mcp) with the MCP packages of
#      scripts/requirements-images.txt, installed from wheels downloaded on the host (inside
#      containers the package index answers only with the host's CA bundle) — no install at
#      container start.
# Both are cached by tag (the second by the hash of its requirements), so a later run is a no-op.
# Prints the MCP image's tag on stdout.
#
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian), TOOLSHED_CACHE_DIR (wheels;
# default ~/.cache/toolshed).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
base=toolshed-test/python:3.11-bookworm
requirements="$root/scripts/requirements-images.txt"
hash=$(sha256sum "$requirements" | cut -c1-12)
image="toolshed-test/python-mcp:$hash"
cache=${TOOLSHED_CACHE_DIR:-$HOME/.cache/toolshed}
log() { printf '==> %s\n' "$*" >&2; }

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi

if ! docker image inspect "$base" >/dev/null 2>&1; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo=sudo; fi
    $sudo apt-get update -qq >/dev/null
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  log "debootstrap bookworm with python3 into $rootfs (about 75 s)"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
  tar -C "$rootfs" -c . | docker import -c 'CMD ["python3"]' - "$base" >/dev/null
  log "made $base"
fi

# Wheels for bookworm's Python (3.11.2), downloaded on the host.
wheels="$cache/wheels-$hash"
if [ ! -f "$wheels/.complete" ]; then
  log "downloading wheels for the MCP image into $wheels"
  mkdir -p "$wheels"
  python3 -m pip download --quiet --dest "$wheels" --python-version 3.11.2 --only-binary=:all: \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any \
    --implementation cp --abi cp311 --abi abi3 --abi none -r "$requirements"
  touch "$wheels/.complete"
fi

context=$(mktemp -d)
trap 'rm -rf "$context" "${rootfs:-}"' EXIT
cp -r "$wheels" "$context/wheels"
cp "$requirements" "$context/requirements.txt"
cat >"$context/Dockerfile" <<DOCKERFILE
FROM $base
COPY wheels /tmp/wheels
COPY requirements.txt /tmp/requirements.txt
RUN python3 -m venv /opt/mcp \\
 && /opt/mcp/bin/pip install --no-index --find-links /tmp/wheels -r /tmp/requirements.txt \\
 && rm -rf /tmp/wheels /root/.cache
ENV PATH=/opt/mcp/bin:\$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
DOCKERFILE
log "building $image"
# The classic builder (this engine has no buildx); its deprecation notice is not an error.
if ! out=$(DOCKER_BUILDKIT=0 docker build -q -t "$image" "$context" 2>&1); then
  printf '%s\n' "$out" >&2
  exit 1
fi
echo "$image"
