/* SPDX-License-Identifier: MIT */
/*
 * test_partition: persister/partition.c's pure half — the UTC day of a
 * timestamp, civil dates, partition names and their parsing, day ranges —
 * with fixed (injected) times, no database.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "persister/partition.h"
#include "tests/support/testsupport.h"

START_TEST(test_day_of_timestamp)
{
	ck_assert_int_eq(lt_partition_day(0), 0);
	ck_assert_int_eq(lt_partition_day(LT_DAY_MS - 1), 0);
	ck_assert_int_eq(lt_partition_day(LT_DAY_MS), 1);
	ck_assert_int_eq(lt_partition_day(-1), -1); /* 1969-12-31 23:59:59.999 */
	ck_assert_int_eq(lt_partition_day(-LT_DAY_MS), -1);
	ck_assert_int_eq(lt_partition_day(-LT_DAY_MS - 1), -2);
	/* 2026-11-21T22:54:28.123Z */
	ck_assert_int_eq(lt_partition_day(INT64_C(1795301668123)), 20778);
}
END_TEST

START_TEST(test_names)
{
	char name[LT_PARTITION_NAME_MAX];
	ck_assert_int_eq(lt_partition_name(lt_partition_day(INT64_C(1795301668123)), name, sizeof name),
			 LT_OK);
	ck_assert_str_eq(name, "live_messages_p20261121");
	ck_assert_int_eq(lt_partition_name(0, name, sizeof name), LT_OK);
	ck_assert_str_eq(name, "live_messages_p19700101");
	ck_assert_int_eq(lt_partition_name(-1, name, sizeof name), LT_OK);
	ck_assert_str_eq(name, "live_messages_p19691231");
	/* leap days */
	ck_assert_int_eq(lt_partition_name(lt_partition_from_civil(2024, 2, 29), name, sizeof name), LT_OK);
	ck_assert_str_eq(name, "live_messages_p20240229");
	ck_assert_int_eq(lt_partition_name(lt_partition_from_civil(2000, 2, 29), name, sizeof name), LT_OK);
	ck_assert_str_eq(name, "live_messages_p20000229");
	ck_assert_int_eq(lt_partition_from_civil(2100, 3, 1) - lt_partition_from_civil(2100, 2, 28), 1);
	/* bounds of what a name can hold */
	ck_assert_int_eq(lt_partition_name(lt_partition_from_civil(9999, 12, 31), name, sizeof name), LT_OK);
	ck_assert_str_eq(name, "live_messages_p99991231");
	ck_assert_int_eq(lt_partition_name(lt_partition_from_civil(9999, 12, 31) + 1, name, sizeof name),
			 LT_EINVAL);
	ck_assert_int_eq(lt_partition_name(lt_partition_from_civil(1, 1, 1) - 1, name, sizeof name),
			 LT_EINVAL);
	/* too small a buffer */
	char tiny[8];
	ck_assert_int_eq(lt_partition_name(0, tiny, sizeof tiny), LT_EINVAL);
}
END_TEST

START_TEST(test_civil_matches_gmtime)
{
	/* Every day from 1900 to 2200 agrees with the C library. */
	for (int64_t d = lt_partition_from_civil(1900, 1, 1); d <= lt_partition_from_civil(2200, 1, 1);
	     d += 1) {
		time_t t = (time_t)(d * 86400);
		struct tm tm;
		ck_assert_ptr_nonnull(gmtime_r(&t, &tm));
		int y, m, dd;
		lt_partition_civil(d, &y, &m, &dd);
		ck_assert_int_eq(y, tm.tm_year + 1900);
		ck_assert_int_eq(m, tm.tm_mon + 1);
		ck_assert_int_eq(dd, tm.tm_mday);
		ck_assert_int_eq(lt_partition_from_civil(y, m, dd), d);
	}
}
END_TEST

START_TEST(test_parse_round_trip)
{
	char name[LT_PARTITION_NAME_MAX];
	for (int64_t d = -800; d < 40000; d += 37) {
		int64_t back = -1;
		ck_assert_int_eq(lt_partition_name(d, name, sizeof name), LT_OK);
		ck_assert_int_eq(lt_partition_parse(name, &back), LT_OK);
		ck_assert_int_eq(back, d);
	}
	static const char *bad[] = {
	    "live_messages_p2026112",	/* short */
	    "live_messages_p202611211", /* long */
	    "live_messages_p2026x121",	/* not digits */
	    "live_messages_p20260230",	/* no such date */
	    "live_messages_p20261301",	/* month 13 */
	    "live_messages_p20261100",	/* day 0 */
	    "live_messages_p00001231",	/* year 0 */
	    "live_messages_default",	"live_message_p20261121", "",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t d = 12345;
		ck_assert_msg(lt_partition_parse(bad[i], &d) == LT_EINVAL, "%s parsed", bad[i]);
		ck_assert_int_eq(d, 12345); /* untouched on failure */
	}
	ck_assert_int_eq(lt_partition_parse(NULL, NULL), LT_EINVAL);
}
END_TEST

START_TEST(test_ranges_and_dates)
{
	int64_t lo, hi;
	int64_t d = lt_partition_from_civil(2026, 3, 10);
	lt_partition_range(d, &lo, &hi);
	ck_assert_int_eq(lo, INT64_C(1773100800000)); /* 2026-03-10T00:00:00Z */
	ck_assert_int_eq(hi - lo, LT_DAY_MS);
	ck_assert_int_eq(lt_partition_day(lo), d);
	ck_assert_int_eq(lt_partition_day(hi - 1), d);
	ck_assert_int_eq(lt_partition_day(hi), d + 1);
	char date[16];
	lt_partition_date(d, date, sizeof date);
	ck_assert_str_eq(date, "2026-03-10");
	lt_partition_date(lt_partition_from_civil(1999, 12, 31), date, sizeof date);
	ck_assert_str_eq(date, "1999-12-31");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("partition");
	TCase *tc = tcase_create("pure");
	tcase_add_test(tc, test_day_of_timestamp);
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_civil_matches_gmtime);
	tcase_add_test(tc, test_parse_round_trip);
	tcase_add_test(tc, test_ranges_and_dates);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return lt_test_run_suite(suite());
}
