/* SPDX-License-Identifier: MIT */
/*
 * test_emu_gen: the --generate source of livetap-emu (tests/emu/emu_gen.c),
 * linked with stand-ins for the framework's random numbers and clock so that
 * the draws are scripted.
 */
#include <check.h>
#include <string.h>

#include "common/mem.h"
#include "tests/emu/emu.h"
#include "tests/support/testsupport.h"

/* The scripted draws, in the order emu_generate makes them: the kind (998 of
 * 1000 is a guard purchase), then per user the pool index and the
 * "regular" coin (1: not a regular). */
static const uint32_t *script;
static size_t script_n, script_pos;

uint32_t emu_rand(struct emu *e)
{
	(void)e;
	return script_pos < script_n ? script[script_pos++] : 1;
}

int64_t emu_now_ms(void)
{
	return 1795300000500LL; /* one second for the whole test */
}

const struct emu_opts *emu_options(const struct emu *e)
{
	(void)e;
	return NULL; /* not called: e is NULL */
}

/* Two guard purchases drawn for the same user in the same second of one
 * room: GUARD_BUY has no id and whole-second times, so they would be one
 * message to any consumer; the second goes to another user. The same user
 * in another room is no twin. */
START_TEST(guard_no_twins)
{
	static const uint32_t draws[] = {998, 0, 1, 998, 0, 1, 5, 1, 998, 0, 1};
	struct lt_arena a;
	struct lt_msg m[3];

	script = draws;
	script_n = sizeof(draws) / sizeof(draws[0]);
	script_pos = 0;
	lt_arena_init(&a, 0);
	emu_generate(NULL, "100", &a, &m[0]);
	emu_generate(NULL, "100", &a, &m[1]);
	emu_generate(NULL, "200", &a, &m[2]);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(m[i].type, LT_MSG_GUARD);
		ck_assert_uint_gt(m[i].user_id.len, 0);
	}
	ck_assert(m[0].user_id.len != m[1].user_id.len || memcmp(m[0].user_id.p, m[1].user_id.p, m[0].user_id.len));
	ck_assert(m[0].user_id.len == m[2].user_id.len && !memcmp(m[0].user_id.p, m[2].user_id.p, m[0].user_id.len));
	ck_assert_uint_eq(script_pos, script_n);
	lt_arena_free(&a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("emu_gen");
	TCase *tc = tcase_create("emu_gen");
	tcase_add_test(tc, guard_no_twins);
	suite_add_tcase(s, tc);
	return lt_test_run_suite(s);
}
