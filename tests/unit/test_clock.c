/* SPDX-License-Identifier: MIT */
/*
 * test_clock: the manual clock, ISO-8601 formatting of known instants
 * (including before the epoch), and the real clocks' basic promises
 * (monotonic never goes back; the units agree).
 */
#include <check.h>
#include <string.h>

#include "common/clock.h"
#include "tests/support/testsupport.h"

START_TEST(manual_clock)
{
	int64_t t = 1732212345123;
	struct lt_clock c = lt_clock_manual(&t);
	ck_assert_int_eq(lt_clock_now(&c), 1732212345123);
	ck_assert_int_eq(lt_clock_mono(&c), 1732212345123);
	t += 60000;
	ck_assert_int_eq(lt_clock_now(&c), 1732212405123);
	ck_assert_int_eq(lt_clock_mono(&c), 1732212405123);
}
END_TEST

START_TEST(iso8601)
{
	char out[32];
	lt_clock_iso8601(0, out);
	ck_assert_str_eq(out, "1970-01-01T00:00:00.000Z");
	lt_clock_iso8601(1732212345123, out);
	ck_assert_str_eq(out, "2024-11-21T18:05:45.123Z");
	lt_clock_iso8601(1709164800007, out); /* a leap day */
	ck_assert_str_eq(out, "2024-02-29T00:00:00.007Z");
	lt_clock_iso8601(-1, out);
	ck_assert_str_eq(out, "1969-12-31T23:59:59.999Z");
	lt_clock_iso8601(253402300799999, out);
	ck_assert_str_eq(out, "9999-12-31T23:59:59.999Z");
	ck_assert_uint_eq(strlen(out), 24);
}
END_TEST

START_TEST(real_clocks)
{
	/* Tests the real clock itself, so it reads it: only ordering and
	 * agreement, never a value. */
	int64_t m0 = lt_clock_mono_ms(), u0 = lt_clock_mono_us();
	for (int i = 0; i < 1000; i++) {
		int64_t m1 = lt_clock_mono_ms();
		ck_assert_int_ge(m1, m0);
		m0 = m1;
	}
	int64_t u1 = lt_clock_mono_us();
	ck_assert_int_ge(u1, u0);
	ck_assert_int_le(u0 / 1000, lt_clock_mono_ms());
	ck_assert_int_gt(lt_clock_wall_ms(), INT64_C(1600000000000)); /* after 2020 */
	ck_assert_int_ge(lt_clock_now(&lt_clock_real), lt_clock_wall_ms() - 1000);
	ck_assert_int_ge(lt_clock_mono(&lt_clock_real), m0);
}
END_TEST

static Suite *clock_suite(void)
{
	Suite *s = suite_create("clock");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, manual_clock);
	tcase_add_test(tc, iso8601);
	tcase_add_test(tc, real_clocks);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return lt_test_run_suite(clock_suite());
}
