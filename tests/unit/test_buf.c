/* SPDX-License-Identifier: MIT */
/*
 * test_buf: the growable buffer's sticky error and limit, its integer
 * writers' byte order and decimal text, and the bounds-checked reader lt_rd
 * (common/buf.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "tests/support/testsupport.h"

START_TEST(append_and_grow)
{
	struct lt_buf b = LT_BUF_INIT;
	ck_assert_str_eq(lt_buf_cstr(&b), "");
	for (int i = 0; i < 1000; i++)
		lt_buf_puts(&b, "abc");
	ck_assert_uint_eq(b.len, 3000);
	ck_assert_int_eq(lt_buf_err(&b), LT_OK);
	ck_assert_uint_eq(strlen(lt_buf_cstr(&b)), 3000);
	ck_assert_mem_eq(b.data + 2997, "abc", 4); /* with the trailing NUL */
	lt_buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_str_eq(lt_buf_cstr(&b), "");
	lt_buf_putc(&b, 'x');
	lt_buf_printf(&b, "%d-%s", 42, "y");
	ck_assert_str_eq(lt_buf_cstr(&b), "x42-y");
	/* printf longer than its 256-byte stack buffer */
	char big[1000];
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	lt_buf_printf(&b, "[%s]", big);
	ck_assert_uint_eq(b.len, 5 + 1001);
	ck_assert_int_eq(b.data[b.len - 1], ']');
	ck_assert_int_eq(b.data[b.len], 0);
	size_t n = 0;
	uint8_t *d = lt_buf_steal(&b, &n);
	ck_assert_uint_eq(n, 1006);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	free(d);
	lt_buf_free(&b);
	lt_buf_free(NULL);
}
END_TEST

START_TEST(limit_is_sticky)
{
	struct lt_buf b;
	lt_buf_init(&b, 10);
	lt_buf_append(&b, "12345678", 8);
	ck_assert_int_eq(lt_buf_err(&b), LT_OK);
	lt_buf_append(&b, "90", 2); /* exactly at the limit */
	ck_assert_int_eq(lt_buf_err(&b), LT_OK);
	ck_assert_str_eq(lt_buf_cstr(&b), "1234567890");
	lt_buf_putc(&b, 'x'); /* one past */
	ck_assert_int_eq(lt_buf_err(&b), LT_ETOOBIG);
	ck_assert_uint_eq(b.len, 10);
	/* Every later append is a no-op, even a small one that would fit. */
	lt_buf_reset(&b);
	lt_buf_append(&b, "12345678901", 11);
	ck_assert_int_eq(lt_buf_err(&b), LT_ETOOBIG);
	ck_assert_uint_eq(b.len, 0);
	lt_buf_putc(&b, 'a');
	lt_buf_printf(&b, "%s", "b");
	lt_buf_u32le(&b, 1);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(lt_buf_reserve(&b, 1), LT_ETOOBIG);
	ck_assert_str_eq(lt_buf_cstr(&b), "");
	/* reset forgets the error */
	lt_buf_reset(&b);
	lt_buf_putc(&b, 'a');
	ck_assert_int_eq(lt_buf_err(&b), LT_OK);
	ck_assert_str_eq(lt_buf_cstr(&b), "a");
	/* a request so large it would overflow size_t */
	ck_assert_int_eq(lt_buf_reserve(&b, SIZE_MAX - 2), LT_ETOOBIG);
	lt_buf_free(&b);
}
END_TEST

/* The inline fast path (room already there) and the grow path agree: an
 * empty append from NULL, appends that exactly fill the memory, then one
 * that must grow; the NUL is kept after every one. */
START_TEST(fast_path_and_grow)
{
	struct lt_buf b = LT_BUF_INIT;
	lt_buf_append(&b, NULL, 0);
	ck_assert_int_eq(lt_buf_err(&b), LT_OK);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_str_eq(lt_buf_cstr(&b), "");
	size_t cap = b.cap;
	ck_assert_uint_gt(cap, 1);
	while (b.len + 1 < cap)
		lt_buf_putc(&b, 'z');
	ck_assert_uint_eq(b.cap, cap); /* filled without growing */
	lt_buf_append(&b, NULL, 0);
	ck_assert_uint_eq(b.len, cap - 1);
	lt_buf_puts(&b, "ab"); /* must grow */
	ck_assert_int_eq(lt_buf_err(&b), LT_OK);
	ck_assert_uint_gt(b.cap, cap);
	ck_assert_uint_eq(b.len, cap + 1);
	ck_assert_mem_eq(b.data + cap - 2, "zab", 4);
	lt_buf_free(&b);
}
END_TEST

START_TEST(integers_byte_order)
{
	struct lt_buf b = LT_BUF_INIT;
	lt_buf_u8(&b, 0xAB);
	lt_buf_u16le(&b, 0x0102);
	lt_buf_u32le(&b, 0x03040506);
	lt_buf_u64le(&b, 0x0708090a0b0c0d0eULL);
	lt_buf_u16be(&b, 0x0102);
	lt_buf_u32be(&b, 0x03040506);
	ck_assert_uint_eq(b.len, 1 + 2 + 4 + 8 + 2 + 4);
	ck_assert_mem_eq(b.data,
			 "\xab\x02\x01\x06\x05\x04\x03\x0e\x0d\x0c\x0b\x0a\x09\x08\x07\x01\x02\x03\x04\x05\x06", 21);
	struct lt_rd r;
	lt_rd_init(&r, b.data, b.len);
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	ck_assert_int_eq(lt_rd_u8(&r, &u8), LT_OK);
	ck_assert_uint_eq(u8, 0xAB);
	ck_assert_int_eq(lt_rd_u16le(&r, &u16), LT_OK);
	ck_assert_uint_eq(u16, 0x0102);
	ck_assert_int_eq(lt_rd_u32le(&r, &u32), LT_OK);
	ck_assert_uint_eq(u32, 0x03040506);
	ck_assert_int_eq(lt_rd_u64le(&r, &u64), LT_OK);
	ck_assert_uint_eq(u64, 0x0708090a0b0c0d0eULL);
	ck_assert_int_eq(lt_rd_u16be(&r, &u16), LT_OK);
	ck_assert_uint_eq(u16, 0x0102);
	ck_assert_int_eq(lt_rd_u32be(&r, &u32), LT_OK);
	ck_assert_uint_eq(u32, 0x03040506);
	ck_assert_uint_eq(lt_rd_left(&r), 0);
	lt_buf_free(&b);
}
END_TEST

/* Every reader refuses to cross the end, and leaves the cursor alone. */
/* lt_buf_fmt_i64 / lt_buf_i64 write what "%lld" writes, for the edges and
 * for numbers around every power of ten. */
START_TEST(decimal_like_printf)
{
	const int64_t edge[] = {0, 1, -1, 9, 10, -10, INT64_MAX, INT64_MIN, INT64_MIN + 1, 1732212345123LL,
				-173221234512LL};
	char want[32], got[LT_BUF_I64_MAX];
	struct lt_buf b;
	lt_buf_init(&b, 0);
	for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++) {
		snprintf(want, sizeof(want), "%lld", (long long)edge[i]);
		ck_assert_uint_eq(lt_buf_fmt_i64(got, edge[i]), strlen(want));
		ck_assert_str_eq(got, want);
	}
	int64_t p = 1;
	for (int e = 0; e < 19; e++) {
		if (e > 0)
			p *= 10; /* up to 10^18 */
		for (int64_t d = -1; d <= 1; d++) {
			int64_t v = p + d;
			snprintf(want, sizeof(want), "%lld", (long long)v);
			ck_assert_uint_eq(lt_buf_fmt_i64(got, v), strlen(want));
			ck_assert_str_eq(got, want);
			snprintf(want, sizeof(want), "%lld", (long long)-v);
			lt_buf_fmt_i64(got, -v);
			ck_assert_str_eq(got, want);
		}
	}
	lt_buf_i64(&b, -42);
	lt_buf_putc(&b, ',');
	lt_buf_i64(&b, INT64_MAX);
	ck_assert_str_eq(lt_buf_cstr(&b), "-42,9223372036854775807");
	lt_buf_free(&b);
}
END_TEST

START_TEST(reader_bounds)
{
	const uint8_t data[7] = {1, 2, 3, 4, 5, 6, 7};
	for (size_t len = 0; len <= sizeof(data); len++) {
		/* An exact-size heap copy so that ASan would see an overread. */
		uint8_t *p = malloc(len ? len : 1);
		memcpy(p, data, len);
		struct lt_rd r;
		uint8_t u8 = 0;
		uint16_t u16 = 0;
		uint32_t u32 = 0;
		uint64_t u64 = 0;
		const uint8_t *v = NULL;
		lt_rd_init(&r, p, len);
		ck_assert_int_eq(lt_rd_u64le(&r, &u64), LT_EPROTO);
		ck_assert_uint_eq(r.off, 0);
		ck_assert_uint_eq(u64, 0);
		ck_assert_int_eq(lt_rd_u32le(&r, &u32), len >= 4 ? LT_OK : LT_EPROTO);
		size_t at = r.off;
		ck_assert_int_eq(lt_rd_u32be(&r, &u32), len - at >= 4 ? LT_OK : LT_EPROTO);
		at = r.off;
		int rc = lt_rd_u16le(&r, &u16);
		ck_assert_int_eq(rc, len - at >= 2 ? LT_OK : LT_EPROTO);
		if (rc)
			ck_assert_uint_eq(r.off, at);
		at = r.off;
		rc = lt_rd_u16be(&r, &u16);
		ck_assert_int_eq(rc, len - at >= 2 ? LT_OK : LT_EPROTO);
		at = r.off;
		rc = lt_rd_bytes(&r, lt_rd_left(&r) + 1, &v);
		ck_assert_int_eq(rc, LT_EPROTO);
		ck_assert_ptr_null(v);
		ck_assert_uint_eq(r.off, at);
		ck_assert_int_eq(lt_rd_bytes(&r, SIZE_MAX, &v), LT_EPROTO);
		ck_assert_int_eq(lt_rd_bytes(&r, lt_rd_left(&r), &v), LT_OK);
		ck_assert_uint_eq(lt_rd_left(&r), 0);
		ck_assert_int_eq(lt_rd_u8(&r, &u8), LT_EPROTO);
		ck_assert_int_eq(lt_rd_bytes(&r, 0, &v), LT_OK);
		free(p);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, append_and_grow);
	tcase_add_test(tc, limit_is_sticky);
	tcase_add_test(tc, fast_path_and_grow);
	tcase_add_test(tc, integers_byte_order);
	tcase_add_test(tc, decimal_like_printf);
	tcase_add_test(tc, reader_bounds);
	suite_add_tcase(s, tc);
	return lt_test_run_suite(s);
}
