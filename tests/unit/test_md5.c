/* SPDX-License-Identifier: MIT */
/*
 * test_md5: fetcher/md5.c. The test suite of RFC 1321 (appendix A.5), and
 * every length from 0 to 300 bytes (each padding case: 55, 56, 63, 64 ...)
 * plus a long input against OpenSSL's MD5.
 */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "fetcher/md5.h"
#include "tests/support/testsupport.h"

START_TEST(rfc1321)
{
	static const struct {
		const char *in, *hex;
	} v[] = {
	    {"", "d41d8cd98f00b204e9800998ecf8427e"},
	    {"a", "0cc175b9c0f1b6a831c399e269772661"},
	    {"abc", "900150983cd24fb0d6963f7d28e17f72"},
	    {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
	    {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
	    {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
	     "d174ab98d277d9f5a5611c2c9f419d9f"},
	    {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
	     "57edf4a22be3c955ac49da2e2107b67a"},
	};
	char hex[33];
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		lt_md5_hex(v[i].in, strlen(v[i].in), hex);
		ck_assert_str_eq(hex, v[i].hex);
	}
}
END_TEST

START_TEST(against_openssl)
{
	size_t big = 1000003;
	uint8_t *buf = malloc(big), a[16], b[16];
	unsigned int len = 16;

	ck_assert_ptr_nonnull(buf);
	for (size_t i = 0; i < big; i++)
		buf[i] = (uint8_t)(i * 131 + (i >> 8));
	for (size_t n = 0; n <= 300; n++) {
		lt_md5(buf, n, a);
		ck_assert_int_eq(EVP_Digest(buf, n, b, &len, EVP_md5(), NULL), 1);
		ck_assert_msg(memcmp(a, b, 16) == 0, "length %zu", n);
	}
	lt_md5(buf, big, a);
	ck_assert_int_eq(EVP_Digest(buf, big, b, &len, EVP_md5(), NULL), 1);
	ck_assert_int_eq(memcmp(a, b, 16), 0);
	free(buf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("md5");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, rfc1321);
	tcase_add_test(tc, against_openssl);
	suite_add_tcase(s, tc);
	return lt_test_run_suite(s);
}
