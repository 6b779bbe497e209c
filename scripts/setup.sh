#!/usr/bin/env bash
# Installs everything Chorus needs on a fresh Debian/Ubuntu machine, idempotently:
#   scripts/setup.sh          Debian packages to run, npm dependencies, the mediasoup worker,
#                             and the built server and web pages.
#   scripts/setup.sh --test   also what the test suite drives: Debian's chromium (real browser
#                             tests), ffmpeg, coturn (the TURN relay test), redis-server and
#                             nginx (the cluster tests start their own instances), and postgresql
#                             (the records tests start their own server from its binaries),
#                             openssl (certificates for the Redis-over-TLS test).
# Needs Node.js 20+ and npm. Runs apt-get as root, or through sudo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

want_test=false
for arg in "$@"; do
  case "$arg" in
    --test) want_test=true ;;
    *) echo "setup: unknown option $arg (use --test)" >&2; exit 2 ;;
  esac
done

node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$node_major" -lt 20 ]; then
  echo "setup: Chorus needs Node.js 20 or newer (found: $(node -v 2>/dev/null || echo none))" >&2
  exit 1
fi

# The mediasoup worker's build dependencies are installed by scripts/setup-worker.sh only when
# it has to build from source; here go the packages every install needs.
# ffmpeg runs the HLS fallback (src/hls) on every node and makes the watch page's sample video.
packages="ca-certificates curl python3 python3-venv ffmpeg"
$want_test && packages="$packages chromium coturn redis-server nginx postgresql openssl"
missing=""
for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  echo "setup: installing Debian packages:$missing"
  # shellcheck disable=SC2086
  $sudo apt-get install -y --no-install-recommends $missing \
    || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends $missing; }
fi

# mediasoup's own postinstall (run by npm versions that run dependency scripts) would try to
# download or build the worker by itself; scripts/setup-worker.sh, the project's postinstall,
# owns that step, so mediasoup's is told to stand aside.
export MEDIASOUP_WORKER_BIN=skip
npm ci --no-audit --no-fund
unset MEDIASOUP_WORKER_BIN

npm run build
# Normally made by the web build already; idempotent, and says so if ffmpeg is missing.
npm run --silent sample-video
echo "setup: done"
