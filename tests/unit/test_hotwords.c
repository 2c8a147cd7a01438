/* SPDX-License-Identifier: MIT */
/*
 * test_hotwords: the bucket/window/trend arithmetic of processor/hotwords.c
 * (the same algorithm apply.lua runs in Redis; test_processor checks that
 * Redis agrees with this model). Time comes from a manual clock.
 */
#include <math.h>
#include <stdio.h>

#include "common/clock.h"
#include "processor/hotwords.h"
#include "tests/support/testsupport.h"

static int64_t clk_ms;
static struct lt_clock clk;
static struct lt_hotwords *h;

static void setup(void)
{
	clk_ms = 1732212340000; /* a bucket boundary */
	clk = lt_clock_manual(&clk_ms);
	ck_assert_int_eq(lt_hotwords_new(&h), LT_OK);
}

static void teardown(void)
{
	lt_hotwords_free(h);
}

static void add(const char *w, int64_t ts, int64_t n)
{
	ck_assert_int_eq(lt_hotwords_add(h, w, ts, n, lt_clock_now(&clk)), LT_OK);
}

static void advance(int64_t ms)
{
	clk_ms += ms;
	lt_hotwords_tick(h, lt_clock_now(&clk));
}

START_TEST(buckets)
{
	ck_assert_int_eq(lt_hotwords_bucket(0), 0);
	ck_assert_int_eq(lt_hotwords_bucket(9999), 0);
	ck_assert_int_eq(lt_hotwords_bucket(10000), 1);
	ck_assert_int_eq(lt_hotwords_bucket(1732212345123), 173221234);
	ck_assert_int_eq(lt_hotwords_bucket(-1), -1);
	ck_assert_int_eq(lt_hotwords_span[LT_HW_1M] * LT_HOTWORDS_BUCKET_MS, 60000);
	ck_assert_int_eq(lt_hotwords_span[LT_HW_30M] * LT_HOTWORDS_BUCKET_MS, 1800000);
}
END_TEST

START_TEST(windows_expire_on_time)
{
	add("a", clk_ms, 1);
	add("a", clk_ms + 5000, 2);
	ck_assert_int_eq(lt_hotwords_count(h, LT_HW_1M, "a"), 3);
	ck_assert_int_eq(lt_hotwords_count(h, LT_HW_30M, "a"), 3);
	/* 59 s later both occurrences are still inside the last minute */
	advance(59999);
	ck_assert_int_eq(lt_hotwords_count(h, LT_HW_1M, "a"), 3);
	/* at +60 s the first bucket (both occurrences, same 10 s) leaves 1m */
	advance(1);
	ck_assert_int_eq(lt_hotwords_count(h, LT_HW_1M, "a"), 0);
	ck_assert_int_eq(lt_hotwords_count(h, LT_HW_5M, "a"), 3);
	advance(4 * 60000);
	ck_assert_int_eq(lt_hotwords_count(h, LT_HW_5M, "a"), 0);
	ck_assert_int_eq(lt_hotwords_count(h, LT_HW_30M, "a"), 3);
	advance(25 * 60000);
	ck_assert_int_eq(lt_hotwords_count(h, LT_HW_30M, "a"), 0);
}
END_TEST

START_TEST(tick_is_idempotent)
{
	add("b", clk_ms, 4);
	advance(30000);
	add("b", clk_ms, 1);
	advance(30000); /* first bucket leaves 1m */
	ck_assert_int_eq(lt_hotwords_count(h, LT_HW_1M, "b"), 1);
	lt_hotwords_tick(h, clk_ms);
	lt_hotwords_tick(h, clk_ms);
	lt_hotwords_tick(h, clk_ms - 20000); /* a processor with a slow clock */
	ck_assert_int_eq(lt_hotwords_count(h, LT_HW_1M, "b"), 1);
	ck_assert_int_eq(lt_hotwords_count(h, LT_HW_5M, "b"), 5);
}
END_TEST

START_TEST(late_and_future_occurrences)
{
	add("c", clk_ms, 1);
	advance(2 * 60000);
	/* late: 90 s old, already out of 1m, still in 5m and 30m */
	add("c", clk_ms - 90000, 1);
	ck_assert_int_eq(lt_hotwords_count(h, LT_HW_1M, "c"), 0);
	ck_assert_int_eq(lt_hotwords_count(h, LT_HW_5M, "c"), 2);
	/* future: clamped to now */
	add("c", clk_ms + 3600000, 1);
	ck_assert_int_eq(lt_hotwords_count(h, LT_HW_1M, "c"), 1);
	advance(60000);
	ck_assert_int_eq(lt_hotwords_count(h, LT_HW_1M, "c"), 0);
	/* older than every window: counted nowhere */
	add("c", clk_ms - 31 * 60000, 5);
	ck_assert_int_eq(lt_hotwords_count(h, LT_HW_30M, "c"), 3);
}
END_TEST

START_TEST(trend_prefers_sudden_words)
{
	int present;
	double steady, spike;

	ck_assert(fabs(lt_hotwords_trend(30, LT_HW_5M, 180) - 0.0) < 1e-12);
	ck_assert(fabs(lt_hotwords_trend(10, LT_HW_1M, 30) - (10.0 - 1.0) / 2.0) < 1e-12);
	ck_assert(lt_hotwords_trend(1, LT_HW_5M, 30) < 0);
	/* 30 minutes of a steady word, 6 per minute */
	for (int m = 0; m < 30; m++) {
		add("steady", clk_ms, 6);
		advance(60000);
	}
	/* then a sudden word, 20 in the last minute */
	add("spike", clk_ms, 20);
	add("steady", clk_ms, 6);
	ck_assert_int_gt(lt_hotwords_count(h, LT_HW_30M, "steady"), lt_hotwords_count(h, LT_HW_30M, "spike"));
	steady = lt_hotwords_score(h, LT_HW_5M, "steady", &present);
	ck_assert(present);
	spike = lt_hotwords_score(h, LT_HW_5M, "spike", &present);
	ck_assert(present);
	ck_assert_msg(spike > steady + 1.0, "spike %g steady %g", spike, steady);
	ck_assert(fabs(steady) < 0.2);
	lt_hotwords_score(h, LT_HW_30M, "spike", &present);
	ck_assert(!present);
	lt_hotwords_score(h, LT_HW_1M, "nothing", &present);
	ck_assert(!present);
}
END_TEST

START_TEST(bounded)
{
	char w[16];
	int rc = LT_OK;

	for (int i = 0; i <= LT_HOTWORDS_MODEL_WORDS && rc == LT_OK; i++) {
		snprintf(w, sizeof(w), "w%d", i);
		rc = lt_hotwords_add(h, w, clk_ms, 1, clk_ms);
	}
	ck_assert_int_eq(rc, LT_ETOOBIG);
	ck_assert_int_eq(lt_hotwords_nwords(h), LT_HOTWORDS_MODEL_WORDS);
	ck_assert_str_eq(lt_hotwords_word(h, 0), "w0");
	ck_assert_ptr_null(lt_hotwords_word(h, LT_HOTWORDS_MODEL_WORDS));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hotwords");
	TCase *tc = tcase_create("hotwords");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, buckets);
	tcase_add_test(tc, windows_expire_on_time);
	tcase_add_test(tc, tick_is_idempotent);
	tcase_add_test(tc, late_and_future_occurrences);
	tcase_add_test(tc, trend_prefers_sudden_words);
	tcase_add_test(tc, bounded);
	suite_add_tcase(s, tc);
	return lt_test_run_suite(s);
}
