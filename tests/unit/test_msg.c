/* SPDX-License-Identifier: MIT */
/*
 * test_msg: names and parsing of platforms and types, lt_msg_clamp cutting on
 * UTF-8 boundaries, and lt_msg_synth_id being stable (the same record gives
 * the same id in every process and build, since consumers deduplicate on it).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "common/msg.h"
#include "tests/support/testsupport.h"

START_TEST(names)
{
	for (int p = 1; p < LT_PLATFORM_COUNT; p++) {
		const char *n = lt_platform_name(p);
		ck_assert_int_eq(lt_platform_parse(n, strlen(n)), p);
	}
	ck_assert_str_eq(lt_platform_name(LT_PLATFORM_BILIBILI), "bilibili");
	ck_assert_str_eq(lt_platform_name(LT_PLATFORM_DOUYIN), "douyin");
	ck_assert_str_eq(lt_platform_name(LT_PLATFORM_KOOK), "kook");
	ck_assert_str_eq(lt_platform_name(0), "unknown");
	ck_assert_str_eq(lt_platform_name(99), "unknown");
	ck_assert_str_eq(lt_platform_name(-1), "unknown");
	ck_assert_int_eq(lt_platform_parse("kookx", 4), LT_PLATFORM_KOOK);
	ck_assert_int_eq(lt_platform_parse("koo", 3), LT_PLATFORM_UNKNOWN);
	ck_assert_int_eq(lt_platform_parse("unknown", 7), LT_PLATFORM_UNKNOWN);
	static const char *const types[] = {"chat", "gift", "like", "enter", "follow", "share", "superchat",
					    "guard", "room_stats", "live_start", "live_end", "other"};
	ck_assert_int_eq(sizeof(types) / sizeof(types[0]), LT_MSG_TYPE_COUNT);
	for (int t = 0; t < LT_MSG_TYPE_COUNT; t++) {
		ck_assert_str_eq(lt_msg_type_name(t), types[t]);
		ck_assert_int_eq(lt_msg_type_parse(types[t], strlen(types[t])), t);
	}
	ck_assert_str_eq(lt_msg_type_name(-1), "other");
	ck_assert_str_eq(lt_msg_type_name(LT_MSG_TYPE_COUNT), "other");
	/* the _str forms: the same static strings, with their lengths */
	for (int p = -1; p <= LT_PLATFORM_COUNT; p++) {
		struct lt_str s = lt_platform_name_str(p);
		ck_assert_ptr_eq(s.p, lt_platform_name(p));
		ck_assert_uint_eq(s.len, strlen(s.p));
	}
	for (int t = -1; t <= LT_MSG_TYPE_COUNT; t++) {
		struct lt_str s = lt_msg_type_name_str(t);
		ck_assert_ptr_eq(s.p, lt_msg_type_name(t));
		ck_assert_uint_eq(s.len, strlen(s.p));
	}
	ck_assert_int_eq(lt_msg_type_parse("Chat", 4), -1);
	ck_assert_int_eq(lt_msg_type_parse("", 0), -1);
	ck_assert(lt_str_eqc(LT_STR("ab"), "ab"));
	ck_assert(!lt_str_eqc(LT_STR("ab"), "abc"));
	ck_assert(lt_str_eq(LT_STR_NULL, LT_STR("")));
	ck_assert_uint_eq(lt_str_c(NULL).len, 0);
}
END_TEST

/* A field of `fill` ASCII bytes followed by `tail`, cut at limit. */
static void clamp_case(uint32_t limit, uint32_t fill, const char *tail, uint32_t want_len)
{
	static char buf[LT_MSG_CONTENT_MAX + 16];
	memset(buf, 'a', fill);
	size_t tl = strlen(tail);
	memcpy(buf + fill, tail, tl);
	struct lt_msg m = {0};
	m.content = (struct lt_str){buf, (uint32_t)(fill + tl)};
	bool cut = lt_msg_clamp(&m);
	ck_assert_msg(m.content.len == want_len, "fill %u + %zu bytes cut to %u, want %u", fill, tl, m.content.len,
		      want_len);
	ck_assert(cut == (fill + tl > limit));
	ck_assert(!!(m.flags & LT_MSGF_TRUNCATED) == cut);
	ck_assert(lt_utf8_valid(m.content.p, m.content.len));
}

START_TEST(clamp_utf8_boundary)
{
	const uint32_t L = LT_MSG_CONTENT_MAX;
	clamp_case(L, L, "", L);                          /* exactly at the limit: untouched */
	clamp_case(L, L - 1, "\xe4\xb8\xad", L - 1);      /* 中 would straddle: dropped whole */
	clamp_case(L, L - 2, "\xe4\xb8\xad", L - 2);
	clamp_case(L, L - 3, "\xe4\xb8\xad", L);          /* 中 ends exactly at the limit */
	clamp_case(L, L - 3, "\xe4\xb8\xad" "b", L);      /* cut after 中 */
	clamp_case(L, L - 1, "\xf0\x9f\x98\x80", L - 1);  /* 4-byte emoji */
	clamp_case(L, L - 3, "\xf0\x9f\x98\x80", L - 3);
	clamp_case(L, L - 4, "\xf0\x9f\x98\x80", L);
	clamp_case(L, L - 1, "\xc3\xa9\xc3\xa9", L - 1);  /* 2-byte é */
	clamp_case(L, L, "xyz", L);
	/* Every field has its own limit; extra is replaced, not cut. */
	static char big[LT_MSG_EXTRA_MAX + 2];
	memset(big, 'z', sizeof(big));
	struct lt_msg m = {0};
	m.room = (struct lt_str){big, LT_MSG_ROOM_MAX + 1};
	m.msg_id = (struct lt_str){big, LT_MSG_ID_MAX + 1};
	m.user_id = (struct lt_str){big, LT_MSG_USER_ID_MAX + 1};
	m.user_name = (struct lt_str){big, LT_MSG_USER_NAME_MAX + 1};
	m.content = (struct lt_str){big, LT_MSG_CONTENT_MAX + 1};
	m.extra = (struct lt_str){big, LT_MSG_EXTRA_MAX + 1};
	ck_assert(lt_msg_clamp(&m));
	ck_assert_uint_eq(m.room.len, LT_MSG_ROOM_MAX);
	ck_assert_uint_eq(m.msg_id.len, LT_MSG_ID_MAX);
	ck_assert_uint_eq(m.user_id.len, LT_MSG_USER_ID_MAX);
	ck_assert_uint_eq(m.user_name.len, LT_MSG_USER_NAME_MAX);
	ck_assert_uint_eq(m.content.len, LT_MSG_CONTENT_MAX);
	ck_assert(lt_str_eqc(m.extra, "{\"truncated\":true}"));
	ck_assert(!lt_msg_clamp(&m)); /* idempotent */
	/* A name made only of 3-byte characters: cut to a multiple of 3. */
	static char cjk[LT_MSG_USER_NAME_MAX + 30];
	for (size_t i = 0; i + 3 <= sizeof(cjk); i += 3)
		memcpy(cjk + i, "\xe4\xb8\xad", 3);
	struct lt_msg n = {0};
	n.user_name = (struct lt_str){cjk, (uint32_t)(sizeof(cjk) / 3 * 3)};
	ck_assert(lt_msg_clamp(&n));
	ck_assert_uint_eq(n.user_name.len, LT_MSG_USER_NAME_MAX / 3 * 3);
	ck_assert(lt_utf8_valid(n.user_name.p, n.user_name.len));
}
END_TEST

/* The documented recipe, written out independently: FNV-1a 64 over
 * platform byte, room, 0x1f, user id, 0x1f, decimal ts, 0x1f, type byte,
 * content. */
static unsigned long long ref_fnv(const struct lt_msg *m)
{
	unsigned char buf[512];
	size_t n = 0;
	buf[n++] = m->platform;
	memcpy(buf + n, m->room.p, m->room.len), n += m->room.len;
	buf[n++] = 0x1f;
	memcpy(buf + n, m->user_id.p, m->user_id.len), n += m->user_id.len;
	buf[n++] = 0x1f;
	n += (size_t)sprintf((char *)buf + n, "%lld", (long long)m->ts);
	buf[n++] = 0x1f;
	buf[n++] = m->type;
	memcpy(buf + n, m->content.p, m->content.len), n += m->content.len;
	unsigned long long h = 14695981039346656037ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ buf[i]) * 1099511628211ULL;
	return h;
}

START_TEST(synth_id_stable)
{
	struct lt_msg m = {0};
	m.platform = LT_PLATFORM_DOUYIN;
	m.type = LT_MSG_CHAT;
	m.ts = 1732212345123;
	m.room = LT_STR("7301");
	m.user_id = LT_STR("42");
	m.content = LT_STR("\xe4\xbd\xa0\xe5\xa5\xbd");
	char a[17], b[17], want[17];
	lt_msg_synth_id(&m, a);
	lt_msg_synth_id(&m, b);
	ck_assert_str_eq(a, b);
	ck_assert_uint_eq(strlen(a), 16);
	snprintf(want, sizeof(want), "%016llx", ref_fnv(&m));
	ck_assert_str_eq(a, want);
	/* Pinned: a change of recipe would break deduplication across versions. */
	ck_assert_str_eq(a, "a1262ac0119ffdf5");
	/* Fields outside the recipe do not matter; those inside do. */
	m.msg_id = LT_STR("ignored");
	m.user_name = LT_STR("ignored");
	m.extra = LT_STR("{\"x\":1}");
	m.count = 9;
	lt_msg_synth_id(&m, b);
	ck_assert_str_eq(a, b);
	m.ts++;
	lt_msg_synth_id(&m, b);
	ck_assert_str_ne(a, b);
	m.ts--;
	m.content = LT_STR("\xe4\xbd\xa0\xe5\xa5\xbd!");
	lt_msg_synth_id(&m, b);
	ck_assert_str_ne(a, b);
	/* Separators keep ("1","23") and ("12","3") apart. */
	struct lt_msg p = {0}, q = {0};
	p.room = LT_STR("1");
	p.user_id = LT_STR("23");
	q.room = LT_STR("12");
	q.user_id = LT_STR("3");
	lt_msg_synth_id(&p, a);
	lt_msg_synth_id(&q, b);
	ck_assert_str_ne(a, b);
}
END_TEST

/* xorshift64*: a fixed-seed stream, so a failure repeats. */
static uint64_t rnd(uint64_t *st)
{
	*st ^= *st >> 12;
	*st ^= *st << 25;
	*st ^= *st >> 27;
	return *st * 2685821657736338717ULL;
}

/* The hand-rolled decimal ts and hex output against the snprintf recipe
 * (ref_fnv and "%016llx"), on random records: ts of every magnitude and
 * sign (with the extremes), random bytes in room, user id and content. */
START_TEST(synth_id_matches_snprintf)
{
	static const int64_t edges[] = {0,
					1,
					-1,
					9,
					10,
					-10,
					99,
					100,
					INT64_MAX,
					INT64_MIN,
					INT64_MIN + 1,
					1732212345123,
					-1732212345123};
	uint64_t st = 0x9E3779B97F4A7C15ULL;
	char room[100], uid[100], content[100];
	for (int it = 0; it < 200000; it++) {
		struct lt_msg m = {0};
		m.platform = (uint8_t)rnd(&st);
		m.type = (uint8_t)rnd(&st);
		if (it < (int)(sizeof(edges) / sizeof(edges[0]))) {
			m.ts = edges[it];
		} else {
			uint64_t u = rnd(&st) >> (rnd(&st) % 64);
			m.ts = (int64_t)((rnd(&st) & 1) ? 0 - u : u); /* wraps, no overflow */
		}
		char *bufs[3] = {room, uid, content};
		struct lt_str *strs[3] = {&m.room, &m.user_id, &m.content};
		for (int k = 0; k < 3; k++) {
			uint32_t len = (uint32_t)(rnd(&st) % sizeof(room));
			for (uint32_t j = 0; j < len; j++)
				bufs[k][j] = (char)rnd(&st);
			*strs[k] = (struct lt_str){bufs[k], len};
		}
		char got[17], want[17];
		memset(got, 'x', sizeof(got));
		lt_msg_synth_id(&m, got);
		snprintf(want, sizeof(want), "%016llx", ref_fnv(&m));
		ck_assert_mem_eq(got, want, 17);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("msg");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, names);
	tcase_add_test(tc, clamp_utf8_boundary);
	tcase_add_test(tc, synth_id_stable);
	tcase_add_test(tc, synth_id_matches_snprintf);
	suite_add_tcase(s, tc);
	return lt_test_run_suite(s);
}
