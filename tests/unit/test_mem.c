/* SPDX-License-Identifier: MIT */
/*
 * test_mem: the bump arena of common/mem.c: alignment, the limit, reset
 * keeping memory, large allocations and strndup.
 */
#include <stdint.h>
#include <string.h>

#include "common/mem.h"
#include "tests/support/testsupport.h"

START_TEST(alignment_and_contents)
{
	struct lt_arena a;
	lt_arena_init(&a, 0);
	unsigned char *prev[64];
	for (size_t i = 0; i < 64; i++) {
		size_t n = i * 7 + 1;
		unsigned char *p = lt_arena_alloc(&a, n);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq((uintptr_t)p % 16, 0);
		memset(p, (int)i, n);
		prev[i] = p;
	}
	/* Nothing overlapped: every block still holds its own byte. */
	for (size_t i = 0; i < 64; i++)
		for (size_t k = 0; k < i * 7 + 1; k++)
			ck_assert_uint_eq(prev[i][k], i);
	char *s = lt_arena_strndup(&a, "hello world", 5);
	ck_assert_str_eq(s, "hello");
	ck_assert_str_eq(lt_arena_strndup(&a, NULL, 0), "");
	/* Larger than any block: still served, still aligned. */
	unsigned char *big = lt_arena_alloc(&a, 3u << 20);
	ck_assert_ptr_nonnull(big);
	ck_assert_uint_eq((uintptr_t)big % 16, 0);
	memset(big, 1, 3u << 20);
	lt_arena_free(&a);
	lt_arena_free(&a); /* twice is fine */
}
END_TEST

START_TEST(limit)
{
	struct lt_arena a;
	lt_arena_init(&a, 64);
	ck_assert_ptr_nonnull(lt_arena_alloc(&a, 30)); /* 32 counted */
	ck_assert_ptr_nonnull(lt_arena_alloc(&a, 32));
	ck_assert_uint_eq(a.used_total, 64);
	ck_assert_ptr_null(lt_arena_alloc(&a, 1));
	ck_assert_ptr_null(lt_arena_strndup(&a, "x", 1));
	ck_assert_ptr_null(lt_arena_alloc(&a, SIZE_MAX)); /* rounding overflow */
	lt_arena_reset(&a);
	ck_assert_uint_eq(a.used_total, 0);
	ck_assert_ptr_nonnull(lt_arena_alloc(&a, 64));
	lt_arena_free(&a);
}
END_TEST

START_TEST(reset_reuses)
{
	struct lt_arena a;
	lt_arena_init(&a, 0);
	void *first = lt_arena_alloc(&a, 100);
	for (int i = 0; i < 200; i++)
		ck_assert_ptr_nonnull(lt_arena_alloc(&a, 1000)); /* several blocks */
	lt_arena_reset(&a);
	ck_assert_uint_eq(a.used_total, 0);
	ck_assert_ptr_nonnull(a.head);
	void *again = lt_arena_alloc(&a, 100);
	ck_assert_ptr_nonnull(again);
	ck_assert_uint_eq((uintptr_t)again % 16, 0);
	(void)first;
	lt_arena_reset(&a);
	lt_arena_free(&a);
	/* reset and free of an arena that never allocated */
	lt_arena_init(&a, 0);
	lt_arena_reset(&a);
	lt_arena_free(&a);
	lt_arena_free(NULL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mem");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, alignment_and_contents);
	tcase_add_test(tc, limit);
	tcase_add_test(tc, reset_reuses);
	suite_add_tcase(s, tc);
	return lt_test_run_suite(s);
}
