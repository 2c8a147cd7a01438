/* SPDX-License-Identifier: MIT */
/*
 * test_recent: processor/recent.c, the set of lately applied batches: what
 * was added is found, what was not is not (same seq of another source, a
 * source that is a prefix of another), the oldest entry goes first when the
 * set is full and the rest stay findable, re-adding changes nothing, and a
 * long random run agrees with a plain reference list.
 */
#include <stdio.h>
#include <string.h>

#include "common/wire.h"
#include "processor/recent.h"
#include "tests/support/testsupport.h"

START_TEST(added_is_found)
{
	struct lt_recent *r = lt_recent_new(8);

	ck_assert_ptr_nonnull(r);
	ck_assert(!lt_recent_has(r, "bilibili:1#0", 1));
	lt_recent_add(r, "bilibili:1#0", 1);
	ck_assert(lt_recent_has(r, "bilibili:1#0", 1));
	ck_assert(!lt_recent_has(r, "bilibili:1#0", 2));
	ck_assert(!lt_recent_has(r, "bilibili:2#0", 1));
	ck_assert(!lt_recent_has(r, "bilibili:1#", 1)); /* a prefix is another source */
	ck_assert(!lt_recent_has(r, "bilibili:1#00", 1));
	lt_recent_add(r, "bilibili:1#0", 1); /* again: no second entry */
	ck_assert_uint_eq(lt_recent_count(r), 1);
	ck_assert(!lt_recent_has(NULL, "x", 1));
	ck_assert(!lt_recent_has(r, NULL, 1));
	lt_recent_free(r);
	ck_assert_ptr_null(lt_recent_new(0));
}
END_TEST

START_TEST(oldest_evicted_first)
{
	struct lt_recent *r = lt_recent_new(4);

	for (uint64_t s = 1; s <= 4; s++)
		lt_recent_add(r, "douyin:7#0", s);
	ck_assert_uint_eq(lt_recent_count(r), 4);
	lt_recent_add(r, "douyin:7#0", 5);
	ck_assert_uint_eq(lt_recent_count(r), 4);
	ck_assert(!lt_recent_has(r, "douyin:7#0", 1));
	for (uint64_t s = 2; s <= 5; s++)
		ck_assert(lt_recent_has(r, "douyin:7#0", s));
	lt_recent_add(r, "kook:9#0", 5);
	ck_assert(!lt_recent_has(r, "douyin:7#0", 2));
	ck_assert(lt_recent_has(r, "kook:9#0", 5) && lt_recent_has(r, "douyin:7#0", 5));
	lt_recent_free(r);
}
END_TEST

START_TEST(long_source_ids)
{
	struct lt_recent *r = lt_recent_new(4);
	char id[LT_WIRE_SOURCE_MAX + 2];

	memset(id, 'a', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0'; /* one over the limit: not added */
	lt_recent_add(r, id, 1);
	ck_assert_uint_eq(lt_recent_count(r), 0);
	id[LT_WIRE_SOURCE_MAX] = '\0'; /* exactly the limit */
	lt_recent_add(r, id, 1);
	ck_assert(lt_recent_has(r, id, 1));
	lt_recent_free(r);
}
END_TEST

/* 200k random adds and lookups over a small key space (many collisions in
 * the chains, many evictions), checked against the last `cap` distinct
 * adds kept in a plain array. */
START_TEST(agrees_with_reference)
{
	enum { CAP = 37, ROUNDS = 200000 };
	struct lt_recent *r = lt_recent_new(CAP);
	char ref_src[CAP][16];
	uint64_t ref_seq[CAP];
	size_t ref_n = 0, ref_head = 0;
	uint64_t rng = 42;

	for (int i = 0; i < ROUNDS; i++) {
		char src[16];
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		snprintf(src, sizeof(src), "s%u", (unsigned)(rng % 5));
		uint64_t seq = (rng >> 8) % 23;
		bool in_ref = false;
		for (size_t k = 0; k < ref_n; k++)
			if (ref_seq[k] == seq && !strcmp(ref_src[k], src))
				in_ref = true;
		ck_assert_int_eq(lt_recent_has(r, src, seq), in_ref);
		if ((rng >> 40) % 2 && !in_ref) {
			lt_recent_add(r, src, seq);
			snprintf(ref_src[ref_head], sizeof(ref_src[0]), "%s", src);
			ref_seq[ref_head] = seq;
			ref_head = (ref_head + 1) % CAP;
			if (ref_n < CAP)
				ref_n++;
		}
	}
	ck_assert_uint_eq(lt_recent_count(r), ref_n);
	lt_recent_free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("recent");
	TCase *tc = tcase_create("recent");

	tcase_add_test(tc, added_is_found);
	tcase_add_test(tc, oldest_evicted_first);
	tcase_add_test(tc, long_source_ids);
	tcase_add_test(tc, agrees_with_reference);
	suite_add_tcase(s, tc);
	return lt_test_run_suite(s);
}
