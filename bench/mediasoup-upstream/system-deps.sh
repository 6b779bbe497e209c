#!/usr/bin/env bash
# For bench/mediasoup-upstream/build.sh: scripts/mediasoup/system-deps.sh (which tracks the pinned
# 3.19.x) adapted to mediasoup 3.32.x.
# Points the worker's meson subprojects at Debian's system libraries (pkg-config) instead of
# wraps that download from GitHub. Usage: system-deps.sh <worker source directory>.
# Differences from 3.19: no usrsctp (the worker has its own SCTP stack), no abseil, no liburing
# (io_uring removed in 3.20.7); unordered_dense is found with dependency('unordered_dense'),
# i.e. pkg-config, and libsrtp3's API is now the opaque-policy one (srtp_policy_create() ...).
#
# unordered_dense: Debian 12 does not package it. Set UNORDERED_DENSE_INCLUDE to a directory
# that holds ankerl/unordered_dense.h; this script then writes a unordered_dense.pc into
# $worker/../pkgconfig-extra, which the caller must put on PKG_CONFIG_PATH.
set -euo pipefail
worker="$1"; sub="$worker/subprojects"
rm -rf "$sub"/*.wrap "$sub/packagecache"

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

subproject flatbuffers "project('flatbuffers', 'c', 'cpp')
flatbuffers_dep = dependency('flatbuffers')
flatbuffers_lib = static_library('sys_flatbuffers', 'empty.c')"

# Only the worker's own unit tests use Catch2; they are not built.
subproject catch2 "project('catch2', 'cpp')
catch2_dep = declare_dependency()"

if [ -n "${UNORDERED_DENSE_INCLUDE:-}" ]; then
  [ -f "$UNORDERED_DENSE_INCLUDE/ankerl/unordered_dense.h" ] \
    || { echo "system-deps: no ankerl/unordered_dense.h under $UNORDERED_DENSE_INCLUDE" >&2; exit 1; }
  pc="$(cd "$worker/.." && pwd)/pkgconfig-extra"; mkdir -p "$pc"
  ver="$(sed -n 's/^#define ANKERL_UNORDERED_DENSE_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' \
    "$UNORDERED_DENSE_INCLUDE/ankerl/unordered_dense.h" | paste -sd.)"
  printf 'Name: unordered_dense\nDescription: ankerl::unordered_dense (header only)\nVersion: %s\nCflags: -I%s\n' \
    "${ver:-0}" "$UNORDERED_DENSE_INCLUDE" > "$pc/unordered_dense.pc"
fi

# The worker uses versatica's libsrtp 3 fork (size_t lengths, separate in/out buffers, an opaque
# srtp_policy_t built with srtp_policy_create()/..._set_*()), which no distribution packages.
# libsrtp 2 does the same crypto in place with int lengths and a plain policy struct; this header
# adapts the calls the worker makes. pkg-config finds the OpenSSL build of libsrtp 2.5.0
# (static-libs.sh) when it is on PKG_CONFIG_PATH, else Debian's libsrtp2 (on NSS).
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
// libsrtp 2's policy struct is renamed so that srtp_policy_t can be libsrtp 3's opaque handle.
// The functions have C linkage, so the typedef's name does not reach any symbol.
#define srtp_policy_t chorus_srtp2_policy_t
#include <srtp2/srtp.h>
#undef srtp_policy_t
#ifdef __cplusplus
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#define srtp_err_status_buffer_small static_cast<srtp_err_status_t>(28)
#define srtp_err_status_cryptex_err static_cast<srtp_err_status_t>(29)
struct chorus_srtp3_policy
{
  chorus_srtp2_policy_t p;
  srtp_profile_t profile;
  unsigned char key[SRTP_MAX_KEY_LEN];
};
typedef chorus_srtp3_policy* srtp_policy_t;
inline srtp_err_status_t srtp_policy_create(srtp_policy_t* policy)
{
  auto* pol = new (std::nothrow) chorus_srtp3_policy();
  if (!pol)
    return srtp_err_status_alloc_fail;
  std::memset(&pol->p, 0, sizeof(pol->p));
  pol->profile = srtp_profile_reserved;
  pol->p.key = pol->key;
  *policy = pol;
  return srtp_err_status_ok;
}
inline void srtp_policy_destroy(srtp_policy_t policy)
{ delete policy; }
inline srtp_err_status_t srtp_policy_set_ssrc(srtp_policy_t policy, srtp_ssrc_t ssrc)
{ policy->p.ssrc = ssrc; return srtp_err_status_ok; }
inline srtp_err_status_t srtp_policy_set_profile(srtp_policy_t policy, srtp_profile_t profile)
{
  srtp_err_status_t status = srtp_crypto_policy_set_from_profile_for_rtp(&policy->p.rtp, profile);
  if (status == srtp_err_status_ok)
    status = srtp_crypto_policy_set_from_profile_for_rtcp(&policy->p.rtcp, profile);
  if (status == srtp_err_status_ok)
    policy->profile = profile;
  return status;
}
// libsrtp 2 takes one buffer of master key then master salt; MKI is not used by the worker.
inline srtp_err_status_t srtp_policy_add_key(srtp_policy_t policy, const uint8_t* key, size_t keyLen,
  const uint8_t* salt, size_t saltLen, const uint8_t* mki, size_t mkiLen)
{
  if (mki != nullptr || mkiLen != 0 || keyLen + saltLen > sizeof(policy->key))
    return srtp_err_status_bad_param;
  std::memcpy(policy->key, key, keyLen);
  std::memcpy(policy->key + keyLen, salt, saltLen);
  return srtp_err_status_ok;
}
inline srtp_err_status_t srtp_policy_set_allow_repeat_tx(srtp_policy_t policy, bool allow)
{ policy->p.allow_repeat_tx = allow ? 1 : 0; return srtp_err_status_ok; }
inline srtp_err_status_t srtp_policy_set_window_size(srtp_policy_t policy, size_t size)
{ policy->p.window_size = static_cast<unsigned long>(size); return srtp_err_status_ok; }
inline srtp_err_status_t srtp_create(srtp_t* session, srtp_policy_t policy)
{ return ::srtp_create(session, &policy->p); }
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

echo "system-deps-3.32: $worker now builds against Debian's libraries"
