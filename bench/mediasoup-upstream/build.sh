#!/usr/bin/env bash
# Builds a newer mediasoup's worker offline (Debian's libraries, the npm registry, no GitHub or
# PyPI) and a scratch clone of this project running on it, to measure that release against the
# pinned one with the same benchmarks (issue 21: "measure the newest release before patching").
# Nothing here is part of an install: the project keeps its pinned mediasoup.
#
#   bash bench/mediasoup-upstream/build.sh [VERSION] [WORKDIR]     (default 3.32.2, /tmp/chorus-mediasoup-VERSION)
#   cd WORKDIR/chorus && MEDIASOUP_WORKER_BIN=WORKDIR/chorus/node_modules/mediasoup/worker/out/Release/mediasoup-worker \
#     npm run bench:broadcast -- --listeners 200 --procs 2 --peer werift --stagger 50
#
# Needs `scripts/setup.sh` to have run once (its meson and the libsrtp 2.5.0 on OpenSSL it builds).
# Written for 3.32.x: the worker's subprojects there are openssl, libuv, flatbuffers, libsrtp3,
# unordered_dense and catch2. ankerl::unordered_dense is packaged neither by Debian 12 nor on npm,
# so include/ankerl/unordered_dense.h stands in for it (the standard library's containers, a
# mixing integer hash): slower than the real one, but in a profile of the fan-out the containers
# do not show (malloc 0.45 % of the worker's samples).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"; root="$(cd "$here/../.." && pwd)"
version="${1:-3.32.2}"; work="${2:-/tmp/chorus-mediasoup-$version}"
cache="${CHORUS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chorus}"
[ -x "$cache/meson-venv/bin/meson" ] || { echo "run scripts/setup.sh first (meson)" >&2; exit 1; }
[ -d "$cache/static-libs/libsrtp/lib/pkgconfig" ] || { echo "run scripts/setup.sh first (libsrtp on OpenSSL)" >&2; exit 1; }
rm -rf "$work"; mkdir -p "$work"
(cd "$work" && npm pack "mediasoup@$version" --silent >/dev/null && tar xzf "mediasoup-$version.tgz")
cp -a "$work/package/worker" "$work/src"; rm -rf "$work/src/out"
UNORDERED_DENSE_INCLUDE="$here/include" bash "$here/system-deps.sh" "$work/src"
export PATH="$cache/meson-venv/bin:$PATH"
export PKG_CONFIG_PATH="$work/pkgconfig-extra:$cache/static-libs/libsrtp/lib/pkgconfig"
meson setup "$work/build" "$work/src" --buildtype release -Db_ndebug=true --wrap-mode=nodownload
meson compile -C "$work/build" flatbuffers-generator
nice -n 10 meson compile -C "$work/build" -j "$(nproc)" mediasoup-worker

# The project as committed, on that mediasoup: its own node_modules, with mediasoup replaced.
git clone -q "$root" "$work/chorus"
cp -a "$root/node_modules" "$work/chorus/node_modules"
rm -rf "$work/chorus/node_modules/mediasoup"; cp -a "$work/package" "$work/chorus/node_modules/mediasoup"
(cd "$work/chorus/node_modules/mediasoup" && npm install --omit=dev --ignore-scripts --no-audit --no-fund --silent)
dest="$work/chorus/node_modules/mediasoup/worker/out/Release"; mkdir -p "$dest"
cp "$work/build/mediasoup-worker" "$dest/mediasoup-worker"
printf '{"mediasoup":"%s","build":"source","patches":[],"srtpCrypto":"openssl","liburing":false}\n' "$version" > "$dest/build.json"
cd "$work/chorus" && MEDIASOUP_WORKER_BIN="$dest/mediasoup-worker" node scripts/mediasoup/verify-worker.mjs
echo "mediasoup $version: worker $dest/mediasoup-worker, project $work/chorus"
