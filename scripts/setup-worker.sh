#!/usr/bin/env bash
# Leaves a verified mediasoup worker at mediasoup's default path, from (in order):
#   1. MEDIASOUP_WORKER_BIN, if the operator set it (anything but "skip");
#   2. the cache under ~/.cache/chorus (survives `npm ci`, which wipes node_modules);
#   3. a worker mediasoup's own postinstall already downloaded (older npm runs it);
#   4. mediasoup's prebuilt release from GitHub, when reachable;
#   5. a build from source against Debian's libraries, with no GitHub or PyPI access.
# Runs as the project's postinstall; idempotent, and seconds when the cache is warm.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ms="$root/node_modules/mediasoup"
[ -f "$ms/package.json" ] || { echo "setup-worker: mediasoup is not installed yet" >&2; exit 1; }
version="$(node -p "require('$ms/package.json').version")"
recipe_hash="$(cat "$root/scripts/mediasoup/system-deps.sh" "$root/scripts/setup-worker.sh" | sha256sum | cut -c1-12)"
cache_root="${CHORUS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chorus}"
cached="$cache_root/mediasoup-worker/$version-$(uname -s)-$(uname -m)-$recipe_hash/mediasoup-worker"
default_bin="$ms/worker/out/Release/mediasoup-worker"
log() { echo "setup-worker: $*"; }

verify() { MEDIASOUP_WORKER_BIN="$1" node "$root/scripts/mediasoup/verify-worker.mjs"; }

install_default() {
  mkdir -p "$(dirname "$default_bin")"
  if [ "$(readlink -f "$1")" != "$(readlink -f "$default_bin" 2>/dev/null || true)" ]; then
    ln -sfn "$1" "$default_bin"
  fi
}

keep() { # keep BIN: store a verified binary in the cache and link it where mediasoup looks
  mkdir -p "$(dirname "$cached")"
  cp "$1" "$cached.tmp" && chmod +x "$cached.tmp" && mv -f "$cached.tmp" "$cached"
  install_default "$cached"
  log "worker ready: $cached"
}

if [ -n "${MEDIASOUP_WORKER_BIN:-}" ] && [ "$MEDIASOUP_WORKER_BIN" != skip ]; then
  verify "$MEDIASOUP_WORKER_BIN" && { log "using MEDIASOUP_WORKER_BIN=$MEDIASOUP_WORKER_BIN"; exit 0; }
  echo "setup-worker: MEDIASOUP_WORKER_BIN=$MEDIASOUP_WORKER_BIN does not work" >&2; exit 1
fi

if [ -x "$cached" ] && verify "$cached"; then
  install_default "$cached"; log "cached worker: $cached"; exit 0
fi

if [ -f "$default_bin" ] && [ ! -L "$default_bin" ] && verify "$default_bin"; then
  keep "$default_bin"; exit 0
fi

if [ "${CHORUS_WORKER_BUILD:-auto}" != source ]; then
  kernel="$(uname -r | cut -d. -f1)"
  case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
  url="https://github.com/versatica/mediasoup/releases/download/$version/mediasoup-worker-$version-linux-$arch-kernel$kernel.tgz"
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  log "trying the prebuilt worker: $url"
  if curl -fsSL --connect-timeout 10 --max-time 180 "$url" | tar -xz -C "$tmp" 2>/dev/null \
      && [ -f "$tmp/mediasoup-worker" ] && verify "$tmp/mediasoup-worker"; then
    keep "$tmp/mediasoup-worker"; exit 0
  fi
  log "no usable prebuilt worker; building from source against Debian's libraries"
fi

# --- build from source -------------------------------------------------------------------
packages="g++ make pkg-config python3-venv libssl-dev libuv1-dev libsrtp2-dev libusrsctp-dev libabsl-dev libflatbuffers-dev flatbuffers-compiler"
# shellcheck disable=SC2086
if ! dpkg -s $packages >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends $packages \
    || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends $packages; }
fi

# The worker needs meson >= 1.1; Debian 12 ships 1.0. pip may only reach a local mirror here,
# so prefer a file:// index from pip's own config and let pip fall back to PyPI elsewhere.
venv="$cache_root/meson-venv"
if ! "$venv/bin/meson" --version 2>/dev/null | grep -q '^1\.12\.1$'; then
  python3 -m venv "$venv"
  index=(); local_index="$(pip config list 2>/dev/null | tr ' ' '\n' | grep -o "file://[^'\"]*" | head -n 1 || true)"
  [ -n "$local_index" ] && index=(--index-url "$local_index")
  "$venv/bin/pip" install -q "${index[@]}" meson==1.12.1 ninja
fi
export PATH="$venv/bin:$PATH"

bash "$root/scripts/mediasoup/system-deps.sh" "$ms/worker"
build="$cache_root/build/mediasoup-$version"
rm -rf "$build"
meson setup "$build" "$ms/worker" --buildtype release -Db_ndebug=true --wrap-mode=nodownload \
  -Dms_disable_liburing=true
meson compile -C "$build" flatbuffers-generator
meson compile -C "$build" -j "$(nproc)" mediasoup-worker
verify "$build/mediasoup-worker"
keep "$build/mediasoup-worker"
rm -rf "$build"
