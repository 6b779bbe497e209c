#!/usr/bin/env bash
# Leaves a verified mediasoup worker at mediasoup's default path, from (in order):
#   1. MEDIASOUP_WORKER_BIN, if the operator set it (anything but "skip");
#   2. the cache under ~/.cache/chorus (survives `npm ci`, which wipes node_modules);
#   3. a build from source: mediasoup's worker plus Chorus's patch series
#      (scripts/mediasoup/patches), against Debian's libraries and a libsrtp on OpenSSL, with
#      no GitHub or PyPI access;
#   or, only when CHORUS_WORKER_BUILD=prebuilt, mediasoup's unpatched prebuilt release from
#   GitHub (or one its own postinstall downloaded). The build writes build.json beside the
#   binary (patches, SRTP crypto), which the node reports in /health/info, so an unpatched
#   worker is never mistaken for a patched one.
# Runs as the project's postinstall; idempotent, and seconds when the cache is warm.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ms="$root/node_modules/mediasoup"
[ -f "$ms/package.json" ] || { echo "setup-worker: mediasoup is not installed yet" >&2; exit 1; }
version="$(node -p "require('$ms/package.json').version")"
recipe_hash="$(find "$root/scripts/mediasoup" "$root/scripts/setup-worker.sh" -type f -not -name '*.md' | LC_ALL=C sort \
  | xargs cat | sha256sum | cut -c1-12)"
cache_root="${CHORUS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chorus}"
cached="$cache_root/mediasoup-worker/$version-$(uname -s)-$(uname -m)-$recipe_hash/mediasoup-worker"
default_bin="$ms/worker/out/Release/mediasoup-worker"
log() { echo "setup-worker: $*"; }

# Chorus's patch series goes into node_modules/mediasoup first, on every install path, before any
# worker is chosen: the Node side of a patch must match the worker's. patch-package skips a
# patch that is already applied and fails on one that does not apply.
(cd "$root" && "$root/node_modules/.bin/patch-package" --patch-dir scripts/mediasoup/patches --error-on-fail >/dev/null) \
  || { echo "setup-worker: scripts/mediasoup/patches does not apply to mediasoup $version" >&2; exit 1; }
patches=()
for patch in "$root"/scripts/mediasoup/patches/mediasoup+"$version"+*.patch; do
  [ -e "$patch" ] || continue
  name="$(basename "$patch" .patch)"; patches+=("\"${name#mediasoup+"$version"+}\"")
done

verify() { MEDIASOUP_WORKER_BIN="$1" node "$root/scripts/mediasoup/verify-worker.mjs"; }

install_default() {
  mkdir -p "$(dirname "$default_bin")"
  if [ "$(readlink -f "$1")" != "$(readlink -f "$default_bin" 2>/dev/null || true)" ]; then
    ln -sfn "$1" "$default_bin"
  fi
}

keep() { # keep BIN MANIFEST: store a verified binary and its build.json in the cache, link it where mediasoup looks
  mkdir -p "$(dirname "$cached")"
  printf '%s\n' "$2" > "$(dirname "$cached")/build.json"
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

prebuilt_manifest="{\"mediasoup\":\"$version\",\"build\":\"prebuilt\",\"patches\":[],\"srtpCrypto\":\"openssl\",\"liburing\":true}"
if [ "${CHORUS_WORKER_BUILD:-source}" = prebuilt ]; then
  if [ -f "$default_bin" ] && [ ! -L "$default_bin" ] && verify "$default_bin"; then
    keep "$default_bin" "$prebuilt_manifest"; exit 0
  fi
  kernel="$(uname -r | cut -d. -f1)"
  case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
  url="https://github.com/versatica/mediasoup/releases/download/$version/mediasoup-worker-$version-linux-$arch-kernel$kernel.tgz"
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  log "trying the prebuilt worker: $url"
  if curl -fsSL --connect-timeout 10 --max-time 180 "$url" | tar -xz -C "$tmp" 2>/dev/null \
      && [ -f "$tmp/mediasoup-worker" ] && verify "$tmp/mediasoup-worker"; then
    keep "$tmp/mediasoup-worker" "$prebuilt_manifest"; exit 0
  fi
  log "no usable prebuilt worker; building from source against Debian's libraries"
fi

# --- build from source -------------------------------------------------------------------
packages="g++ make pkg-config curl python3-venv libssl-dev libuv1-dev libsrtp2-dev libusrsctp-dev libabsl-dev libflatbuffers-dev flatbuffers-compiler"
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

# The worker's source (patched above) is copied: the Debian subprojects replace its wraps there.
src="$cache_root/build/src-$version"; build="$cache_root/build/mediasoup-$version"
rm -rf "$src" "$build"; mkdir -p "$(dirname "$src")"
cp -r "$ms/worker" "$src"; rm -rf "$src/out"
bash "$root/scripts/mediasoup/system-deps.sh" "$src"
# libsrtp on OpenSSL, built from Debian's source (static-libs.sh), else Debian's NSS libsrtp2.
# liburing too (io_uring sends, bench/README.md "Levers: io_uring sends"), unless
# CHORUS_WORKER_LIBURING=false. build.json says which.
uring=false
libs=(libsrtp); [ "${CHORUS_WORKER_LIBURING:-true}" = true ] && libs+=(liburing)
for lib in "${libs[@]}"; do
  prefix="$cache_root/static-libs/$lib"
  if bash "$root/scripts/mediasoup/static-libs.sh" "$lib" "$prefix"; then
    PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    [ "$lib" = liburing ] && uring=true
  else
    log "could not build $lib from Debian's sources; building without it (see scripts/mediasoup/README.md)"
  fi
done
export PKG_CONFIG_PATH
# io_uring needs a kernel >= 6 (the worker's own rule) and liburing >= 2.5 (Debian 12 has 2.3).
meson setup "$build" "$src" --buildtype release -Db_ndebug=true --wrap-mode=nodownload \
  -Dms_disable_liburing="$([ "$uring" = true ] && echo false || echo true)"
meson compile -C "$build" flatbuffers-generator
meson compile -C "$build" -j "$(nproc)" mediasoup-worker
verify "$build/mediasoup-worker"
# Read from the binary, not assumed: NSS in its libraries means Debian's libsrtp2 was linked.
srtp_crypto=openssl; ldd "$build/mediasoup-worker" | grep -q libnss3 && srtp_crypto=nss
# The worker's meson links liburing on kernels >= 6 only.
liburing=false; [ "$uring" = true ] && [ "$(uname -r | cut -d. -f1)" -ge 6 ] && liburing=true
keep "$build/mediasoup-worker" "{\"mediasoup\":\"$version\",\"build\":\"source\",\"patches\":[$(IFS=,; echo "${patches[*]}")],\"srtpCrypto\":\"$srtp_crypto\",\"liburing\":$liburing}"
rm -rf "$build" "$src"
