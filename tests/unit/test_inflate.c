/* SPDX-License-Identifier: MIT */
/*
 * test_inflate: fetcher/inflate.c, the capped one-stream inflate shared by
 * the douyin, kook and bilibili decoders.
 *
 * zlib and gzip streams decoded whole; output of exactly the cap accepted,
 * one byte more refused as a bomb (and a real bomb: 8 MB of zeros); empty
 * input, a truncated stream, garbage and the wrong header kind refused; bytes
 * after the stream reported; and the same state decoding good frames after
 * each failure.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/buf.h"
#include "fetcher/inflate.h"
#include "tests/support/testsupport.h"

/* p[0..n) compressed as one stream of the given kind into out. */
static void deflate_into(struct lt_buf *out, const void *p, size_t n, int wbits)
{
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	ck_assert_int_eq(deflateInit2(&zs, 9, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY), Z_OK);
	uLong bound = deflateBound(&zs, (uLong)n);
	lt_buf_reset(out);
	ck_assert_int_eq(lt_buf_reserve(out, bound), LT_OK);
	zs.next_in = (Bytef *)(uintptr_t)p;
	zs.avail_in = (uInt)n;
	zs.next_out = out->data;
	zs.avail_out = (uInt)bound;
	ck_assert_int_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
	out->len = bound - zs.avail_out;
	deflateEnd(&zs);
}

static const char text[] = "{\"cmd\":\"DANMU_MSG\",\"info\":[[0,1,25],\"hello hello hello hello\"]}";

START_TEST(zlib_and_gzip)
{
	struct lt_buf in = LT_BUF_INIT, out = LT_BUF_INIT;
	struct lt_inflate z;
	size_t rest = 99;

	lt_buf_init(&in, 0);
	lt_buf_init(&out, 1u << 20);
	lt_inflate_init(&z, LT_INFLATE_ZLIB);
	deflate_into(&in, text, sizeof(text) - 1, MAX_WBITS);
	ck_assert_int_eq(lt_inflate_run(&z, in.data, in.len, 1u << 20, &out, &rest), LT_OK);
	ck_assert_int_eq(rest, 0);
	ck_assert_int_eq(out.len, sizeof(text) - 1);
	ck_assert_int_eq(memcmp(out.data, text, out.len), 0);
	ck_assert_int_eq(out.data[out.len], 0);
	/* again with the same state (reset, not re-initialised) */
	ck_assert_int_eq(lt_inflate_run(&z, in.data, in.len, 1u << 20, &out, NULL), LT_OK);
	ck_assert_int_eq(out.len, sizeof(text) - 1);
	/* a gzip stream is not a zlib stream */
	deflate_into(&in, text, sizeof(text) - 1, 16 + MAX_WBITS);
	ck_assert_int_eq(lt_inflate_run(&z, in.data, in.len, 1u << 20, &out, NULL), LT_EPROTO);
	lt_inflate_end(&z);

	lt_inflate_init(&z, LT_INFLATE_GZIP);
	ck_assert_int_eq(lt_inflate_run(&z, in.data, in.len, 1u << 20, &out, &rest), LT_OK);
	ck_assert_int_eq(rest, 0);
	ck_assert_int_eq(out.len, sizeof(text) - 1);
	ck_assert_int_eq(memcmp(out.data, text, out.len), 0);
	lt_inflate_end(&z);
	lt_inflate_end(&z); /* twice is harmless */
	lt_buf_free(&in);
	lt_buf_free(&out);
}
END_TEST

START_TEST(cap)
{
	struct lt_buf in = LT_BUF_INIT, out = LT_BUF_INIT;
	struct lt_inflate z;
	size_t big = 100000;
	char *raw = malloc(big);

	ck_assert_ptr_nonnull(raw);
	for (size_t i = 0; i < big; i++)
		raw[i] = (char)('a' + (i * 7) % 23);
	lt_buf_init(&in, 0);
	lt_buf_init(&out, 0);
	lt_inflate_init(&z, LT_INFLATE_ZLIB);
	deflate_into(&in, raw, big, MAX_WBITS);
	/* exactly the cap: fine */
	ck_assert_int_eq(lt_inflate_run(&z, in.data, in.len, big, &out, NULL), LT_OK);
	ck_assert_int_eq(out.len, big);
	ck_assert_int_eq(memcmp(out.data, raw, big), 0);
	/* one byte less room: a bomb, never more than cap + 1 bytes written */
	ck_assert_int_eq(lt_inflate_run(&z, in.data, in.len, big - 1, &out, NULL), LT_ETOOBIG);
	ck_assert_uint_le(out.len, big);
	/* the buffer's own limit is honoured too */
	struct lt_buf small = LT_BUF_INIT;
	lt_buf_init(&small, 1000);
	ck_assert_int_eq(lt_inflate_run(&z, in.data, in.len, big, &small, NULL), LT_ETOOBIG);
	lt_buf_free(&small);
	/* a real bomb: 8 MB of zeros into a 4 MB cap */
	size_t bomb = 8u << 20;
	char *zeros = calloc(1, bomb);
	ck_assert_ptr_nonnull(zeros);
	deflate_into(&in, zeros, bomb, MAX_WBITS);
	free(zeros);
	ck_assert_uint_lt(in.len, 20000);
	ck_assert_int_eq(lt_inflate_run(&z, in.data, in.len, 4u << 20, &out, NULL), LT_ETOOBIG);
	ck_assert_uint_le(out.len, (4u << 20) + 1);
	/* and the state decodes the next good frame */
	deflate_into(&in, text, sizeof(text) - 1, MAX_WBITS);
	ck_assert_int_eq(lt_inflate_run(&z, in.data, in.len, 4u << 20, &out, NULL), LT_OK);
	ck_assert_int_eq(out.len, sizeof(text) - 1);
	lt_inflate_end(&z);
	free(raw);
	lt_buf_free(&in);
	lt_buf_free(&out);
}
END_TEST

START_TEST(bad_input)
{
	struct lt_buf in = LT_BUF_INIT, out = LT_BUF_INIT;
	struct lt_inflate z;
	static const uint8_t garbage[] = "\x78\x9c this is not deflate data at all \xff\xfe";
	size_t rest = 0;

	lt_buf_init(&in, 0);
	lt_buf_init(&out, 0);
	lt_inflate_init(&z, LT_INFLATE_ZLIB);
	/* empty input: no stream */
	ck_assert_int_eq(lt_inflate_run(&z, (const uint8_t *)"", 0, 1000, &out, NULL), LT_EPROTO);
	ck_assert_int_eq(out.len, 0);
	/* garbage */
	ck_assert_int_eq(lt_inflate_run(&z, garbage, sizeof(garbage) - 1, 1000, &out, NULL), LT_EPROTO);
	ck_assert_int_eq(lt_inflate_run(&z, (const uint8_t *)"\0\0\0\0", 4, 1000, &out, NULL), LT_EPROTO);
	/* a stream cut short, at every length */
	deflate_into(&in, text, sizeof(text) - 1, MAX_WBITS);
	for (size_t k = 1; k < in.len; k++)
		ck_assert_int_eq(lt_inflate_run(&z, in.data, k, 1000, &out, NULL), LT_EPROTO);
	/* a bad checksum */
	in.data[in.len - 1] ^= 0x55;
	ck_assert_int_eq(lt_inflate_run(&z, in.data, in.len, 1000, &out, NULL), LT_EPROTO);
	in.data[in.len - 1] ^= 0x55;
	/* bytes after the stream are the caller's business */
	size_t slen = in.len;
	lt_buf_append(&in, "tail", 4);
	ck_assert_int_eq(lt_inflate_run(&z, in.data, in.len, 1000, &out, &rest), LT_OK);
	ck_assert_int_eq(rest, 4);
	ck_assert_int_eq(out.len, sizeof(text) - 1);
	ck_assert_int_eq(lt_inflate_run(&z, in.data, slen, 1000, &out, &rest), LT_OK);
	ck_assert_int_eq(rest, 0);
	lt_inflate_end(&z);
	/* never run: nothing to free */
	lt_inflate_init(&z, LT_INFLATE_GZIP);
	lt_inflate_end(&z);
	lt_inflate_end(NULL);
	lt_buf_free(&in);
	lt_buf_free(&out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("inflate");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, zlib_and_gzip);
	tcase_add_test(tc, cap);
	tcase_add_test(tc, bad_input);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return lt_test_run_suite(s);
}
