#!/usr/bin/env bash
# Point the mediasoup worker's meson subprojects at Debian's system libraries (pkg-config)
# instead of wraps that download sources from GitHub. Idempotent. Usage: system-deps.sh <worker
# source directory>. The worker's own fixes are the patch series in scripts/mediasoup/patches.
#
# Tracks mediasoup 3.19.x: the variable names below are the ones the worker's top-level
# meson.build reads from each subproject. Re-check them before bumping mediasoup.
set -euo pipefail
worker="$1"; sub="$worker/subprojects"
rm -rf "$sub"/*.wrap "$sub/packagecache"

# subproject NAME 'meson.build body': a project whose only compiled unit is an empty C file,
# because the worker's meson.build links a static library variable from each subproject.
subproject() {
  mkdir -p "$sub/$1"
  printf 'void chorus_sysdep_%s(void) {}\n' "${1//-/_}" > "$sub/$1/empty.c"
  printf '%s\n' "$2" > "$sub/$1/meson.build"
}

subproject openssl "project('openssl', 'c')
openssl_dep = dependency('openssl', version: '>=3.0')
libcrypto_lib = static_library('sys_crypto', 'empty.c')
libssl_lib = static_library('sys_ssl', 'empty.c')"

subproject libuv "project('libuv', 'c')
libuv_dep = dependency('libuv')
libuv = static_library('sys_uv', 'empty.c')"
printf "option('build_tests', type: 'boolean', value: false)\noption('build_benchmarks', type: 'boolean', value: false)\n" \
  > "$sub/libuv/meson_options.txt"

subproject usrsctp "project('usrsctp', 'c')
usrsctp_dep = dependency('usrsctp')
usrsctp = static_library('sys_usrsctp', 'empty.c')"
printf "option('sctp_build_programs', type: 'boolean', value: false)\n" > "$sub/usrsctp/meson_options.txt"

# Never used: the build disables io_uring (Debian 12's liburing is older than the worker wants).
subproject liburing "project('liburing', 'c')
uring = dependency('liburing')
liburing = static_library('sys_uring', 'empty.c')"

subproject flatbuffers "project('flatbuffers', 'c', 'cpp')
flatbuffers_dep = dependency('flatbuffers')
flatbuffers_lib = static_library('sys_flatbuffers', 'empty.c')"

# Only the worker's own unit tests use Catch2; they are not built.
subproject catch2 "project('catch2', 'cpp')
catch2_dep = declare_dependency()"

subproject abseil-cpp "project('abseil-cpp', 'c', 'cpp')
absl_container_dep = declare_dependency(dependencies: [dependency('absl_flat_hash_map'),
  dependency('absl_flat_hash_set'), dependency('absl_btree'), dependency('absl_inlined_vector')])
absl_strings_dep = declare_dependency(dependencies: [dependency('absl_strings')])
absl_types_dep = declare_dependency(dependencies: [dependency('absl_optional'),
  dependency('absl_memory'), dependency('absl_span')])
absl_container_lib = static_library('sys_absl', 'empty.c')"

# The worker uses versatica's libsrtp 3 fork (size_t lengths, separate in/out buffers), which
# no distribution packages. libsrtp 2 does the same crypto in place with int lengths; a header
# adapts the four calls the worker makes. pkg-config finds the OpenSSL build that
# static-libs.sh leaves on PKG_CONFIG_PATH, else Debian's libsrtp2 (on NSS).
subproject libsrtp3 "project('libsrtp3', 'c')
libsrtp3_dep = declare_dependency(include_directories: include_directories('include'),
  dependencies: [dependency('libsrtp2', version: '>=2.4')])
libsrtp3 = static_library('sys_srtp', 'empty.c')"
printf "option('crypto-library', type: 'string', value: 'openssl')\noption('crypto-library-kdf', type: 'string', value: 'disabled')\noption('tests', type: 'string', value: 'disabled')\n" \
  > "$sub/libsrtp3/meson_options.txt"
mkdir -p "$sub/libsrtp3/include"
cat > "$sub/libsrtp3/include/srtp.h" <<'HEADER'
#ifndef CHORUS_SRTP3_ON_SRTP2_H
#define CHORUS_SRTP3_ON_SRTP2_H
#include <srtp2/srtp.h>
#ifdef __cplusplus
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#define srtp_err_status_buffer_small static_cast<srtp_err_status_t>(28)
#define srtp_err_status_cryptex_err static_cast<srtp_err_status_t>(29)
namespace chorus_srtp {
using InPlace = srtp_err_status_t (*)(srtp_t, void*, int*);
// libsrtp2 transforms in place; copy into the caller's output buffer first, after checking it
// has room for the authentication tag that protect appends.
inline srtp_err_status_t Transform(InPlace fn, srtp_t ctx, const uint8_t* in, size_t inLen,
  uint8_t* out, size_t* outLen, size_t growth)
{
  if (inLen > INT_MAX || *outLen < inLen + growth)
    return srtp_err_status_buffer_small;
  if (out != in)
    std::memmove(out, in, inLen);
  int len = static_cast<int>(inLen);
  const srtp_err_status_t status = fn(ctx, out, &len);
  if (status == srtp_err_status_ok)
    *outLen = static_cast<size_t>(len);
  return status;
}
} // namespace chorus_srtp
inline srtp_err_status_t srtp_protect(srtp_t c, const uint8_t* in, size_t n, uint8_t* out, size_t* outN, size_t)
{ return chorus_srtp::Transform(::srtp_protect, c, in, n, out, outN, SRTP_MAX_TAG_LEN); }
inline srtp_err_status_t srtp_protect_rtcp(srtp_t c, const uint8_t* in, size_t n, uint8_t* out, size_t* outN, size_t)
{ return chorus_srtp::Transform(::srtp_protect_rtcp, c, in, n, out, outN, SRTP_MAX_TAG_LEN + 4); }
inline srtp_err_status_t srtp_unprotect(srtp_t c, const uint8_t* in, size_t n, uint8_t* out, size_t* outN)
{ return chorus_srtp::Transform(::srtp_unprotect, c, in, n, out, outN, 0); }
inline srtp_err_status_t srtp_unprotect_rtcp(srtp_t c, const uint8_t* in, size_t n, uint8_t* out, size_t* outN)
{ return chorus_srtp::Transform(::srtp_unprotect_rtcp, c, in, n, out, outN, 0); }
inline srtp_err_status_t srtp_stream_remove(srtp_t session, uint32_t ssrc)
{ return ::srtp_remove_stream(session, ssrc); }
#endif
#endif
HEADER

echo "system-deps: $worker now builds against Debian's libraries"
