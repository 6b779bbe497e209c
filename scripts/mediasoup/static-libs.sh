#!/usr/bin/env bash
# Builds, as static libraries, the two libraries the mediasoup worker links that Debian 12 does not
# package the way the worker needs them:
#   - libsrtp 2.5.0 on OpenSSL's crypto. Debian's libsrtp2 uses NSS, which sets up a PK11 context
#     for every packet; OpenSSL's EVP path uses the CPU's AES and SHA instructions (bench:srtp).
#   - liburing 2.9 (unless CHORUS_WORKER_LIBURING=false). The worker
#     sends through io_uring, batched once per event-loop turn, when built with liburing >= 2.5 on
#     a kernel >= 6; Debian 12 has 2.3.
# Sources are Debian's own upstream tarballs from Debian's package pool (reachable wherever
# Debian's apt is), each checked against the sha256 in Debian's .dsc.
# Usage: static-libs.sh <lib> <prefix>, lib = libsrtp | liburing. Exits non-zero when the source
# cannot be fetched or built; the caller then builds without it and records that in build.json.
set -euo pipefail
lib="$1"; prefix="$2"
pool=http://deb.debian.org/debian/pool/main
case "$lib" in
  libsrtp) url="$pool/libs/libsrtp2/libsrtp2_2.5.0.orig.tar.gz"; dir=libsrtp-2.5.0
    sha256=8a43ef8e9ae2b665292591af62aa1a4ae41e468b6d98d8258f91478735da4e09 ;;
  liburing) url="$pool/libu/liburing/liburing_2.9.orig.tar.gz"; dir=liburing-2.9
    sha256=57e9b36e4ac1e46b8e0351dfb1694dc59638fc25e384b4ba36d87b800b16db1a ;;
  *) echo "static-libs: unknown library $lib" >&2; exit 2 ;;
esac
[ -f "$prefix/.built-$sha256" ] && exit 0

work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
curl -fsSL --connect-timeout 10 --max-time 120 -o "$work/src.tar.gz" "$url"
echo "$sha256  $work/src.tar.gz" | sha256sum -c --quiet -
tar -xzf "$work/src.tar.gz" -C "$work"
rm -rf "$prefix"
if [ "$lib" = libsrtp ]; then
  meson setup "$work/build" "$work/$dir" --buildtype release -Db_ndebug=true \
    -Dcrypto-library=openssl -Ddefault_library=static -Dtests=disabled -Ddoc=disabled \
    -Dpcap-tests=disabled --prefix "$prefix" --libdir lib >/dev/null
  meson compile -C "$work/build" >/dev/null
  meson install -C "$work/build" >/dev/null
else
  (cd "$work/$dir" && ./configure --prefix="$prefix" --libdir="$prefix/lib" --libdevdir="$prefix/lib" \
    --includedir="$prefix/include" --mandir="$work/man" >/dev/null \
    && make -C src -j "$(nproc)" >/dev/null && make install >/dev/null)
  # Static only: the worker must not depend on a liburing.so that Debian's 2.3 would shadow.
  rm -f "$prefix"/lib/liburing*.so* "$prefix"/lib/liburing-ffi*
  rm -f "$prefix"/lib/pkgconfig/liburing-ffi.pc
fi
touch "$prefix/.built-$sha256"
