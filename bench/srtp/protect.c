/* Protects one 100-byte RTP packet (AES_CM_128_HMAC_SHA1_80, libsrtp's default) COUNT times and
 * prints the mean microseconds per packet: the SRTP cost a mediasoup worker pays per listener
 * packet. Built by bench/srtp.ts against each libsrtp2 it compares. */
#include <srtp2/srtp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char** argv)
{
	const int count = argc > 1 ? atoi(argv[1]) : 200000;
	unsigned char key[30];
	unsigned char packet[256];
	srtp_policy_t policy;
	srtp_t session;
	struct timespec start, end;

	if (srtp_init() != srtp_err_status_ok)
		return 1;
	for (int i = 0; i < 30; i++)
		key[i] = (unsigned char)(i * 7 + 1);
	memset(&policy, 0, sizeof policy);
	srtp_crypto_policy_set_rtp_default(&policy.rtp);
	srtp_crypto_policy_set_rtcp_default(&policy.rtcp);
	policy.ssrc.type = ssrc_any_outbound;
	policy.key = key;
	policy.window_size = 1024;
	policy.allow_repeat_tx = 1;
	if (srtp_create(&session, &policy) != srtp_err_status_ok)
		return 1;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (int i = 0; i < count; i++)
	{
		int len = 100;
		memset(packet, 0, 100);
		packet[0] = 0x80;
		packet[1] = 111;
		packet[2] = (unsigned char)(i >> 8);
		packet[3] = (unsigned char)i;
		packet[11] = 1;
		if (srtp_protect(session, packet, &len) != srtp_err_status_ok || len != 110)
			return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	printf("%.4f\n", ((end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec)) / count / 1000.0);
	return 0;
}
