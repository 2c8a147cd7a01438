/* SPDX-License-Identifier: MIT */
/*
 * douyin_sign: the native signer of Douyin's push URL and its check (see
 * douyin_sign.h; algorithm from douyin.md §1.3). MD5 is fetcher/md5.c;
 * RC4 with a one-byte key is a few lines and is written out here (OpenSSL 3
 * keeps RC4 in the legacy provider only).
 */
#include "fetcher/douyin_sign.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "fetcher/md5.h"

static const char alphabet[] = "Dkdpgh4ZKsQB80/Mfvw36XI1R25+WUAlEi7NLboqYTOPuzmFjJnryx9HVGcaStCe";

static void md5(const void *p, size_t n, uint8_t out[16])
{
	lt_md5(p, n, out);
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int unhex(const char *s, uint8_t out[16])
{
	for (int i = 0; i < 32; i++) {
		char ch = s[i];
		int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
		        : ch >= 'A' && ch <= 'F'                    ? ch - 'A' + 10
		                                                    : -1;
		if (v < 0)
			return LT_EINVAL;
		if (i & 1)
			out[i / 2] = (uint8_t)(out[i / 2] | v);
		else
			out[i / 2] = (uint8_t)(v << 4);
	}
	return s[32] == '\0' ? LT_OK : LT_EINVAL;
}

/* RC4 keyed with the single byte k, applied in place. */
static void rc4_1(uint8_t k, uint8_t *p, size_t n)
{
	uint8_t S[256];
	unsigned j = 0;

	for (int i = 0; i < 256; i++)
		S[i] = (uint8_t)i;
	for (int i = 0; i < 256; i++) {
		j = (j + S[i] + k) & 255;
		uint8_t t = S[i];
		S[i] = S[j];
		S[j] = t;
	}
	unsigned a = 0;
	j = 0;
	for (size_t x = 0; x < n; x++) {
		a = (a + 1) & 255;
		j = (j + S[a]) & 255;
		uint8_t t = S[a];
		S[a] = S[j];
		S[j] = t;
		p[x] ^= S[(S[a] + S[j]) & 255];
	}
}

void lt_douyin_stub(const char *room_id, const char *uid, const char *sdk_version, char out[33])
{
	char in[512];
	uint8_t d[16];
	int n = snprintf(in, sizeof(in),
	                 "live_id=1,aid=6383,version_code=180800,webcast_sdk_version=%s,room_id=%s,"
	                 "sub_room_id=,sub_channel_id=,did_rule=3,user_unique_id=%s,device_platform=web,"
	                 "device_type=,ac=,identity=audience",
	                 sdk_version, room_id, uid);
	if (n < 0 || (size_t)n >= sizeof(in))
		n = (int)sizeof(in) - 1;
	md5(in, (size_t)n, d);
	hex(d, 16, out);
}

int lt_douyin_sign_values(const char *stub_hex, uint8_t counter, bool flag, uint8_t payload_rnd,
                          uint8_t key, char out[17])
{
	uint8_t stub[16], s[16], e0[16], e[16], b[12];

	if (!stub_hex || strlen(stub_hex) != 32 || unhex(stub_hex, stub) != LT_OK)
		return LT_EINVAL;
	md5(stub, 16, s);
	md5("", 0, e0);
	md5(e0, 16, e);
	b[0] = (uint8_t)(0x40 | (flag ? 0x10 : 0));
	b[1] = key;
	uint8_t *pl = b + 2;
	pl[0] = counter & 0x3f;
	pl[1] = 0;
	pl[2] = 1;
	pl[3] = 14;
	pl[4] = e[14];
	pl[5] = e[15];
	pl[6] = s[14];
	pl[7] = s[15];
	pl[8] = payload_rnd;
	pl[9] = 0;
	for (int i = 0; i < 9; i++)
		pl[9] ^= pl[i];
	rc4_1(key, pl, 10);
	for (int i = 0, o = 0; i < 12; i += 3) {
		uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 | b[i + 2];
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = alphabet[v >> 6 & 63];
		out[o++] = alphabet[v & 63];
	}
	out[16] = '\0';
	return LT_OK;
}

static uint8_t rnd_byte(struct lt_douyin_signer *s, bool no_ff)
{
	for (;;) {
		uint64_t x = s->rng ? s->rng : 0x9e3779b97f4a7c15ULL;
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		s->rng = x;
		uint8_t v = (uint8_t)((x * 0x2545f4914f6cdd1dULL) >> 56);
		if (!no_ff || v != 0xff)
			return v;
	}
}

int lt_douyin_sign(struct lt_douyin_signer *s, const char *stub_hex, char out[LT_DY_SIG_MAX])
{
	if (s->fn)
		return s->fn(s->ud, stub_hex, out);
	uint8_t flag = rnd_byte(s, false);
	s->counter++;
	uint8_t r = rnd_byte(s, true), k = rnd_byte(s, true);
	return lt_douyin_sign_values(stub_hex, s->counter & 0x3f, flag & 1, r, k, out);
}

int lt_douyin_sign_cmd(void *ud, const char *stub_hex, char *out)
{
	char cmd[2048], line[LT_DY_SIG_MAX + 2];
	uint8_t stub[16];

	/* the stub is 32 hex digits, so it needs no quoting */
	if (!ud || !stub_hex || strlen(stub_hex) != 32 || unhex(stub_hex, stub) != LT_OK)
		return LT_EINVAL;
	int n = snprintf(cmd, sizeof(cmd), "timeout %d %s %s", LT_DY_SIGNER_TIMEOUT_S, (const char *)ud, stub_hex);
	if (n < 0 || (size_t)n >= sizeof(cmd))
		return LT_EINVAL;
	FILE *p = popen(cmd, "r");
	if (!p)
		return LT_EIO;
	bool got = fgets(line, sizeof(line), p) != NULL;
	int st = pclose(p);
	if (!got || st != 0)
		return LT_EIO;
	size_t len = strcspn(line, "\r\n");
	if (len == 0 || len >= LT_DY_SIG_MAX)
		return LT_EIO;
	memcpy(out, line, len);
	out[len] = '\0';
	return LT_OK;
}

int lt_douyin_sign_check(const char *sig, const char *stub_hex)
{
	uint8_t b[12], stub[16], s[16], x = 0;

	if (!sig || strlen(sig) != 16 || !stub_hex || strlen(stub_hex) != 32 || unhex(stub_hex, stub) != LT_OK)
		return LT_EAUTH;
	for (int i = 0, o = 0; i < 16; i += 4) {
		uint32_t v = 0;
		for (int j = 0; j < 4; j++) {
			const char *q = strchr(alphabet, sig[i + j]);
			if (!q || !sig[i + j])
				return LT_EAUTH;
			v = v << 6 | (uint32_t)(q - alphabet);
		}
		b[o++] = (uint8_t)(v >> 16);
		b[o++] = (uint8_t)(v >> 8);
		b[o++] = (uint8_t)v;
	}
	if ((b[0] & 0x40) == 0)
		return LT_EAUTH;
	rc4_1(b[1], b + 2, 10);
	md5(stub, 16, s);
	for (int i = 2; i < 11; i++)
		x ^= b[i];
	if (b[8] != s[14] || b[9] != s[15] || b[11] != x || b[4] != 1 || b[5] != 14)
		return LT_EAUTH;
	return LT_OK;
}
