/* SPDX-License-Identifier: MIT */
/*
 * test_sanitize: processor/sanitize.c, the check of every decoded record
 * before the plugins and apply.lua see it: each rule rejects exactly what it
 * names and at its boundary, repairs are valid UTF-8 within the limits and
 * flagged in extra, and a good record passes untouched without allocating.
 */
#include <string.h>

#include "common/json.h"
#include "processor/sanitize.h"
#include "tests/support/testsupport.h"

#define NOW 1767225600000LL /* 2026-01-01T00:00:00Z */

static struct lt_arena arena;

static void setup(void)
{
	lt_arena_init(&arena, 0);
}

static void teardown(void)
{
	lt_arena_free(&arena);
}

static struct lt_msg good(void)
{
	struct lt_msg m = {0};
	m.platform = LT_PLATFORM_BILIBILI;
	m.type = LT_MSG_GIFT;
	m.ts = NOW - 1000;
	m.count = 3;
	m.value = 300;
	m.room = lt_str_c("21452505");
	m.msg_id = lt_str_c("m-1");
	m.user_id = lt_str_c("u1");
	m.user_name = lt_str_c("Alice 爱丽丝");
	m.content = lt_str_c("辣条");
	m.extra = lt_str_c("{\"gift_name\":\"辣条\"}");
	return m;
}

/* Expect m to be rejected for reason why, and left as it was. */
static void rejected(struct lt_msg m, const char *why)
{
	struct lt_msg before = m;
	const char *got = NULL;
	unsigned changed = 7;

	ck_assert_int_eq(lt_sanitize_msg(&m, NOW, &arena, &changed, &got), LT_EINVAL);
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, why);
	ck_assert(memcmp(&m, &before, sizeof(m)) == 0);
}

static void accepted(struct lt_msg m)
{
	struct lt_msg before = m;
	const char *why = NULL;
	unsigned changed = 7;

	ck_assert_int_eq(lt_sanitize_msg(&m, NOW, &arena, &changed, &why), LT_OK);
	ck_assert_uint_eq(changed, 0);
	ck_assert(memcmp(&m, &before, sizeof(m)) == 0);
}

START_TEST(good_record_untouched)
{
	struct lt_msg m = good();

	accepted(m);
	ck_assert_uint_eq(arena.used_total, 0);
	m.msg_id = LT_STR_NULL; /* a synthetic id comes later */
	accepted(m);
	m = good();
	m.user_id = LT_STR_NULL; /* no user: not counted per user */
	accepted(m);
	m = good();
	m.flags = LT_MSGF_ANONYMOUS;
	m.user_id = lt_str_c("\x01masked"); /* never used as a key */
	accepted(m);
}
END_TEST

START_TEST(numbers_at_their_limits)
{
	struct lt_msg m = good();

	m.ts = LT_SANITIZE_TS_MIN;
	accepted(m);
	m.ts = LT_SANITIZE_TS_MIN - 1;
	rejected(m, "ts out of range");
	m.ts = NOW + LT_SANITIZE_TS_AHEAD_MS;
	accepted(m);
	m.ts = NOW + LT_SANITIZE_TS_AHEAD_MS + 1;
	rejected(m, "ts out of range");
	m.ts = INT64_MIN;
	rejected(m, "ts out of range");
	m = good();
	m.count = LT_SANITIZE_AMOUNT_MAX;
	m.value = 0;
	accepted(m);
	m.count = LT_SANITIZE_AMOUNT_MAX + 1;
	rejected(m, "count out of range");
	m.count = -1;
	rejected(m, "count out of range");
	m = good();
	m.value = LT_SANITIZE_AMOUNT_MAX;
	accepted(m);
	m.value = 4611686018427387904LL; /* what made HINCRBY fail */
	rejected(m, "value out of range");
	m.value = INT64_MIN;
	rejected(m, "value out of range");
}
END_TEST

START_TEST(ids_and_enums)
{
	struct lt_msg m = good();

	m.platform = LT_PLATFORM_UNKNOWN;
	rejected(m, "unknown platform");
	m.platform = LT_PLATFORM_COUNT;
	rejected(m, "unknown platform");
	m = good();
	m.type = LT_MSG_TYPE_COUNT;
	rejected(m, "unknown type");
	m = good();
	m.room = LT_STR_NULL;
	rejected(m, "bad room id");
	m.room = lt_str_c("214}52");
	rejected(m, "bad room id");
	m.room = lt_str_c("a{b");
	rejected(m, "bad room id");
	m.room = lt_str_c("12 34");
	rejected(m, "bad room id");
	m.room = lt_str_c("房间");
	rejected(m, "bad room id");
	m.room = (struct lt_str){"12\00034", 5};
	rejected(m, "bad room id");
	m.room = lt_str_c("abc-DEF_123.x");
	accepted(m);
	m = good();
	m.msg_id = (struct lt_str){"m\0x", 3};
	rejected(m, "bad msg_id");
	m.msg_id = lt_str_c("m\xff");
	rejected(m, "bad msg_id");
	m.msg_id = lt_str_c("消息-1");
	accepted(m);
	m = good();
	m.user_id = lt_str_c("u\n1");
	rejected(m, "bad user_id");
	m.user_id = lt_str_c("u\xc3");
	rejected(m, "bad user_id");
	m.user_id = lt_str_c("u\x7f");
	rejected(m, "bad user_id");
}
END_TEST

START_TEST(repairs_are_flagged)
{
	struct lt_msg m = good();
	const char *why = NULL;
	unsigned changed = 0;

	m.content = lt_str_c("ok \xff\xfe then");
	ck_assert_int_eq(lt_sanitize_msg(&m, NOW, &arena, &changed, &why), LT_OK);
	ck_assert_uint_eq(changed, LT_SANITIZE_REPAIRED);
	ck_assert(m.flags & LT_MSGF_REPAIRED);
	ck_assert(lt_utf8_valid(m.content.p, m.content.len));
	ck_assert(lt_str_eqc(m.content, "ok \xef\xbf\xbd\xef\xbf\xbd then"));
	ck_assert(lt_str_eqc(m.extra, "{\"repaired\":true,\"gift_name\":\"辣条\"}"));
	ck_assert(lt_str_eqc(m.user_name, "Alice 爱丽丝"));

	/* a name of 128 invalid bytes triples: cut at the limit, on a boundary */
	{
		char name[LT_MSG_USER_NAME_MAX];
		memset(name, 0xff, sizeof(name));
		m = good();
		m.extra = LT_STR_NULL;
		m.user_name = (struct lt_str){name, sizeof(name)};
		ck_assert_int_eq(lt_sanitize_msg(&m, NOW, &arena, &changed, &why), LT_OK);
		ck_assert_uint_eq(changed, LT_SANITIZE_REPAIRED | LT_SANITIZE_TRUNCATED);
		ck_assert(m.flags & LT_MSGF_TRUNCATED);
		ck_assert_uint_le(m.user_name.len, LT_MSG_USER_NAME_MAX);
		ck_assert_uint_eq(m.user_name.len, LT_MSG_USER_NAME_MAX / 3 * 3);
		ck_assert(lt_utf8_valid(m.user_name.p, m.user_name.len));
		ck_assert(lt_str_eqc(m.extra, "{\"repaired\":true,\"truncated\":true}"));
	}
	/* an extra that is no object becomes the flags alone */
	m = good();
	m.content = lt_str_c("\xc0");
	m.extra = lt_str_c("[1,2]");
	ck_assert_int_eq(lt_sanitize_msg(&m, NOW, &arena, &changed, &why), LT_OK);
	ck_assert(lt_str_eqc(m.extra, "{\"repaired\":true}"));
	m = good();
	m.content = lt_str_c("\xc0");
	m.extra = lt_str_c(" { } ");
	ck_assert_int_eq(lt_sanitize_msg(&m, NOW, &arena, &changed, &why), LT_OK);
	ck_assert(lt_str_eqc(m.extra, "{\"repaired\":true}"));
}
END_TEST

START_TEST(flagged_extra_renders_as_json)
{
	struct lt_msg m = good();
	struct lt_buf b = LT_BUF_INIT;
	const char *why = NULL;
	unsigned changed = 0;

	m.user_name = lt_str_c("\xe4\xbd");
	ck_assert_int_eq(lt_sanitize_msg(&m, NOW, &arena, &changed, &why), LT_OK);
	ck_assert_int_eq(lt_json_msg(&b, &m), LT_OK);
	ck_assert_ptr_nonnull(
	    strstr((const char *)b.data, "\"extra\":{\"repaired\":true,\"gift_name\":\"辣条\"}"));
	lt_buf_free(&b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sanitize");
	TCase *tc = tcase_create("sanitize");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, good_record_untouched);
	tcase_add_test(tc, numbers_at_their_limits);
	tcase_add_test(tc, ids_and_enums);
	tcase_add_test(tc, repairs_are_flagged);
	tcase_add_test(tc, flagged_extra_renders_as_json);
	suite_add_tcase(s, tc);
	return lt_test_run_suite(s);
}
