#!/usr/bin/env bash
# For bench/mediasoup-upstream/build.sh: the project's scripts/mediasoup/system-deps.sh (which
# tracks the pinned 3.19.x) first, then what mediasoup 3.32.x needs on top of it. Usage:
# system-deps.sh <worker source directory>.
#  - 3.32's libsrtp 3 API builds its settings through an opaque policy (srtp_policy_create() and
#    setters, then srtp_create()); the project's header adapts the packet calls only, so it is
#    kept as srtp-packets.h and a new srtp.h adds the policy calls on libsrtp 2's plain struct.
#  - unordered_dense (Debian 12 does not package it): set UNORDERED_DENSE_INCLUDE to a directory
#    holding ankerl/unordered_dense.h, and this writes an unordered_dense.pc into
#    $worker/../pkgconfig-extra, which the caller puts on PKG_CONFIG_PATH.
# The project's usrsctp, abseil and liburing subprojects are left in place; 3.32 asks for none
# of them (its own SCTP stack; io_uring removed in 3.20.7), so meson never reads them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
worker="$1"; include="$worker/subprojects/libsrtp3/include"
bash "$here/../../scripts/mediasoup/system-deps.sh" "$worker" >/dev/null

if [ -n "${UNORDERED_DENSE_INCLUDE:-}" ]; then
  [ -f "$UNORDERED_DENSE_INCLUDE/ankerl/unordered_dense.h" ] \
    || { echo "system-deps: no ankerl/unordered_dense.h under $UNORDERED_DENSE_INCLUDE" >&2; exit 1; }
  pc="$(cd "$worker/.." && pwd)/pkgconfig-extra"; mkdir -p "$pc"
  ver="$(sed -n 's/^#define ANKERL_UNORDERED_DENSE_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' \
    "$UNORDERED_DENSE_INCLUDE/ankerl/unordered_dense.h" | paste -sd.)"
  printf 'Name: unordered_dense\nDescription: ankerl::unordered_dense (header only)\nVersion: %s\nCflags: -I%s\n' \
    "${ver:-0}" "$UNORDERED_DENSE_INCLUDE" > "$pc/unordered_dense.pc"
fi

mv "$include/srtp.h" "$include/srtp-packets.h"
cat > "$include/srtp.h" <<'HEADER'
#ifndef CHORUS_SRTP3_POLICY_ON_SRTP2_H
#define CHORUS_SRTP3_POLICY_ON_SRTP2_H
// libsrtp 2's policy struct is renamed so that srtp_policy_t can be libsrtp 3's opaque handle.
// The functions have C linkage, so the typedef's name does not reach any symbol.
#define srtp_policy_t chorus_srtp2_policy_t
#include "srtp-packets.h"
#undef srtp_policy_t
#ifdef __cplusplus
#include <new>
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
#endif
#endif
HEADER

echo "system-deps (mediasoup-upstream): $worker now builds against Debian's libraries"
