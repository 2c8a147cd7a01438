/* SPDX-License-Identifier: MIT */
/*
 * test_jscan: fetcher/jscan.c, the in-place JSON scanner of the decoders.
 *
 * Strings with escapes at every position relative to the 64-byte blocks of
 * the fast path (runs of backslashes crossing a block edge, escaped quotes
 * at bit 63/64) against the expected span and value, seeded; getters and
 * walkers on open views; integers in every form; malformed input (cut
 * anywhere, mismatched brackets, nesting past the limit) never read past
 * the end and come back missing. Containers are skipped 64 bytes a step:
 * random bracket/quote/backslash soups and random nested values with
 * escapes, cut at every length, must give what a byte-by-byte reference
 * skipper gives (the same end, or malformed for both). lt_jscan_get_many
 * finds what a walk with lt_jit_member finds, lt_jscan_at_many what one
 * with lt_jit_elem finds, on random containers cut anywhere; so do
 * lt_jscan_at_many_after and lt_jscan_array_end, going on mid-array, and
 * lt_jscan_get_many_after after lt_jscan_first_member. All of it twice: with
 * the AVX2 block loops (where the CPU has them) and with the SSE2 ones.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "fetcher/jscan.h"
#include "tests/support/testsupport.h"

static uint64_t rs = 12345;

static uint64_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

/* The reference: a container skipped byte by byte. Strings end at the first
 * quote not escaped by a backslash (one backslash escapes the next byte);
 * brackets outside strings must match and nest at most LT_JSCAN_DEPTH_MAX
 * deep; anything else is not looked at. Returns the length or -1. */
static long ref_skip(const char *s, size_t n)
{
	char stack[LT_JSCAN_DEPTH_MAX];
	int depth = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '"') {
			for (i++; i < n && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
			if (i >= n)
				return -1;
		} else if (c == '{' || c == '[') {
			if (depth >= LT_JSCAN_DEPTH_MAX)
				return -1;
			stack[depth++] = c;
		} else if (c == '}' || c == ']') {
			if (depth == 0 || stack[depth - 1] != (c == '}' ? '{' : '['))
				return -1;
			if (--depth == 0)
				return (long)i + 1;
		}
	}
	return -1;
}

/* A random value into b, depth levels at most, strings full of escapes. */
static void gen_value(struct lt_buf *b, int depth)
{
	int k = (int)(rnd() % (depth > 0 ? 5 : 3));
	if (k == 0) {
		lt_buf_putc(b, '"');
		for (int n = (int)(rnd() % 40); n > 0; n--) {
			int r = (int)(rnd() % 10);
			if (r == 0)
				lt_buf_puts(b, "\\\\");
			else if (r == 1)
				lt_buf_puts(b, "\\\"");
			else if (r == 2)
				lt_buf_puts(b, "{[");
			else
				lt_buf_putc(b, (char)('a' + r));
		}
		lt_buf_putc(b, '"');
	} else if (k == 1) {
		lt_buf_puts(b, "12345");
	} else if (k == 2) {
		lt_buf_puts(b, "null");
	} else {
		bool obj = k == 3;
		lt_buf_putc(b, obj ? '{' : '[');
		for (int n = (int)(rnd() % 6); n > 0; n--) {
			if (obj)
				lt_buf_puts(b, "\"key\\\"x\":");
			gen_value(b, depth - 1);
			if (n > 1)
				lt_buf_putc(b, ',');
		}
		lt_buf_putc(b, obj ? '}' : ']');
	}
}

START_TEST(containers_random)
{
	static const char soup[] = "{}[]\"\"\\\\ab,: ";
	struct lt_buf b = LT_BUF_INIT;
	struct lt_jv v;
	size_t next;

	lt_buf_init(&b, 0);
	for (int round = 0; round < 6000; round++) {
		lt_buf_reset(&b);
		if (round % 2) {
			lt_buf_putc(&b, round % 4 == 1 ? '{' : '[');
			for (int n = 16 + (int)(rnd() % 300); n > 0; n--)
				lt_buf_putc(&b, soup[rnd() % (sizeof(soup) - 1)]);
		} else {
			lt_buf_putc(&b, '[');
			gen_value(&b, 6);
			lt_buf_putc(&b, ']');
			lt_buf_puts(&b, " trailing");
		}
		ck_assert_int_eq(lt_buf_err(&b), LT_OK);
		/* every cut, into an exact-size copy (ASan sees any read past it) */
		for (size_t n = b.len; n > 0; n -= n > 200 ? 1 + rnd() % 7 : 1) {
			char *cp = malloc(n);
			ck_assert_ptr_nonnull(cp);
			memcpy(cp, b.data, n);
			long want = ref_skip(cp, n);
			int rc = lt_jscan_value(cp, n, &v, &next);
			if (want < 0) {
				ck_assert_msg(rc == LT_EPROTO, "round %d len %zu: skipped %zu, want malformed", round, n,
				              rc == LT_OK ? next : 0);
			} else {
				ck_assert_msg(rc == LT_OK && next == (size_t)want && v.p == cp && v.n == next,
				              "round %d len %zu: rc %d next %zu, want %ld", round, n, rc, next, want);
			}
			free(cp);
		}
	}
	lt_buf_free(&b);
}
END_TEST

START_TEST(strings_random)
{
	struct lt_buf enc = LT_BUF_INIT, want = LT_BUF_INIT, scratch = LT_BUF_INIT;
	lt_buf_init(&enc, 0);
	lt_buf_init(&want, 0);
	lt_buf_init(&scratch, 0);
	for (int iter = 0; iter < 20000; iter++) {
		lt_buf_reset(&enc);
		lt_buf_reset(&want);
		lt_buf_putc(&enc, '"');
		int n = (int)(rnd() % 300);
		for (int i = 0; i < n; i++) {
			switch (rnd() % 8) {
			case 0: lt_buf_puts(&enc, "\\\""), lt_buf_putc(&want, '"'); break;
			case 1: lt_buf_puts(&enc, "\\\\"), lt_buf_putc(&want, '\\'); break;
			case 2: lt_buf_puts(&enc, "\\n"), lt_buf_putc(&want, '\n'); break;
			case 3: lt_buf_puts(&enc, "\\u00e9"), lt_buf_puts(&want, "\xc3\xa9"); break;
			case 4: lt_buf_puts(&enc, "\\ud83d\\ude00"), lt_buf_puts(&want, "\xf0\x9f\x98\x80"); break;
			default: {
				char ch = (char)('a' + rnd() % 26);
				lt_buf_putc(&enc, ch), lt_buf_putc(&want, ch);
			}
			}
		}
		lt_buf_putc(&enc, '"');
		size_t len = enc.len;
		lt_buf_puts(&enc, ",\"tail\\\"\"]");
		struct lt_jv v;
		size_t next;
		ck_assert_int_eq(lt_jscan_value((const char *)enc.data, enc.len, &v, &next), LT_OK);
		ck_assert_int_eq(v.n, len);
		ck_assert_int_eq(next, len);
		/* open view (to the end of the input) and exact view agree */
		struct lt_str s;
		lt_buf_reset(&scratch);
		lt_buf_reserve(&scratch, 2 * enc.len);
		ck_assert(lt_jscan_str((struct lt_jv){(const char *)enc.data, enc.len}, &scratch, &s));
		ck_assert_int_eq(s.len, want.len);
		ck_assert(want.len == 0 || memcmp(s.p, want.data, want.len) == 0);
		/* cut before the closing quote: missing, never past the cut */
		size_t cut = (size_t)(rnd() % len);
		ck_assert_int_eq(lt_jscan_value((const char *)enc.data, cut, &v, NULL), LT_EPROTO);
	}
	/* runs of backslashes ending exactly at the 64-byte edges */
	for (int pad = 0; pad < 140; pad++) {
		for (int run = 1; run <= 6; run++) {
			lt_buf_reset(&enc);
			lt_buf_putc(&enc, '"');
			for (int i = 0; i < pad; i++)
				lt_buf_putc(&enc, 'x');
			for (int i = 0; i < run; i++)
				lt_buf_putc(&enc, '\\');
			/* an odd run escapes the next quote: add one more char then */
			if (run % 2)
				lt_buf_puts(&enc, "\"y");
			lt_buf_puts(&enc, "\"zz\"");
			size_t len = (size_t)(enc.len - 3);
			for (int i = 0; i < 80; i++)
				lt_buf_putc(&enc, ' ');
			struct lt_jv v;
			ck_assert_int_eq(lt_jscan_value((const char *)enc.data, enc.len, &v, NULL), LT_OK);
			ck_assert_msg(v.n == len, "pad %d run %d: %zu != %zu", pad, run, v.n, len);
		}
	}
	lt_buf_free(&enc);
	lt_buf_free(&want);
	lt_buf_free(&scratch);
}
END_TEST

static struct lt_jv J(const char *s)
{
	return (struct lt_jv){s, strlen(s)};
}

/* lt_jscan_get_many walks in one loop what lt_jit_member walks: on random
 * objects (keys repeated, values of every kind, junk between members), cut
 * at every length, both find the same views. */
static void ref_get_many(struct lt_jv obj, const char *const *keys, int n, struct lt_jv *out)
{
	struct lt_jit it;
	struct lt_jv k, v;
	int found = 0;

	for (int i = 0; i < n; i++)
		out[i] = (struct lt_jv){NULL, 0};
	if (!lt_jv_is(obj, '{'))
		return;
	lt_jit_begin(&it, obj);
	while (found < n && lt_jit_member(&it, &k, &v)) {
		for (int i = 0; i < n; i++) {
			if (strlen(keys[i]) == k.n && !out[i].p && memcmp(keys[i], k.p, k.n) == 0) {
				out[i] = v;
				found++;
				break;
			}
		}
	}
}

START_TEST(get_many_as_walker)
{
	static const char *const keys[] = {"a", "bb", "", "k\\\"x", "zz"};
	static const char *const names[] = {"\"a\"", "\"bb\"", "\"\"", "\"k\\\"x\"", "\"q\"", "\"a\" ", "a", "\"bb"};
	static const char *const seps[] = {",", ",", ",", " , ", "", ";", "\n,"};
	struct lt_buf b = LT_BUF_INIT;

	lt_buf_init(&b, 0);
	for (int round = 0; round < 1000; round++) {
		lt_buf_reset(&b);
		lt_buf_putc(&b, '{');
		if (rnd() % 4 == 0)
			lt_buf_putc(&b, ' ');
		for (int m = (int)(rnd() % 7); m > 0; m--) {
			lt_buf_puts(&b, names[rnd() % 8]);
			lt_buf_puts(&b, rnd() % 8 ? ":" : " : ");
			gen_value(&b, 3);
			if (m > 1)
				lt_buf_puts(&b, seps[rnd() % 7]);
		}
		lt_buf_puts(&b, rnd() % 6 ? "}" : "]");
		lt_buf_puts(&b, ",\"a\":1}");
		for (size_t n = b.len; n > 0; n--) {
			char *cp = malloc(n);
			ck_assert_ptr_nonnull(cp);
			memcpy(cp, b.data, n);
			struct lt_jv got[5], want[5];
			int nk = 1 + (int)(rnd() % 5);
			lt_jscan_get_many((struct lt_jv){cp, n}, keys, nk, got);
			ref_get_many((struct lt_jv){cp, n}, keys, nk, want);
			for (int i = 0; i < nk; i++)
				ck_assert_msg(got[i].p == want[i].p && got[i].n == want[i].n, "round %d len %zu key %d: %.*s",
				              round, n, i, (int)n, cp);
			/* a first member named keys[0]: the others found after it
			 * as in one walk (keys[0] itself is never asked again) */
			struct lt_jv fv;
			const char *after;
			if (lt_jscan_first_member((struct lt_jv){cp, n}, keys[0], &fv, &after)) {
				ck_assert_ptr_eq(fv.p, want[0].p);
				ck_assert_int_eq(fv.n, want[0].n);
				struct lt_jv exact;
				ck_assert_int_eq(lt_jscan_value(fv.p, fv.n, &exact, NULL), LT_OK);
				ck_assert_ptr_eq(after, exact.p + exact.n);
				if (nk > 1) {
					lt_jscan_get_many_after(after, cp + n, keys + 1, nk - 1, got);
					ref_get_many((struct lt_jv){cp, n}, keys + 1, nk - 1, want);
					for (int i = 0; i < nk - 1; i++)
						ck_assert_msg(got[i].p == want[i].p && got[i].n == want[i].n,
						              "after: round %d len %zu key %d: %.*s", round, n, i + 1, (int)n, cp);
				}
			}
			free(cp);
		}
	}
	lt_buf_free(&b);
}
END_TEST

/* lt_jscan_at_many against a walk with lt_jit_elem, the same way. */
static void ref_at_many(struct lt_jv arr, const int *idx, int n, struct lt_jv *out)
{
	struct lt_jit it;
	struct lt_jv v;
	int k = 0;

	for (int i = 0; i < n; i++)
		out[i] = (struct lt_jv){NULL, 0};
	if (!lt_jv_is(arr, '['))
		return;
	lt_jit_begin(&it, arr);
	for (int i = 0; k < n && lt_jit_elem(&it, &v); i++) {
		while (k < n && idx[k] < i)
			k++;
		if (k < n && idx[k] == i)
			out[k++] = v;
	}
}

/* A random array of min_elems to min_elems + 7 values, with odd separators
 * now and then and sometimes the wrong closing bracket, then ",1]": into b. */
static void gen_array(struct lt_buf *b, int min_elems)
{
	static const char *const seps[] = {",", ",", ",", " , ", "", ";", "\n,"};

	lt_buf_reset(b);
	lt_buf_putc(b, '[');
	for (int m = min_elems + (int)(rnd() % 8); m > 0; m--) {
		gen_value(b, 3);
		if (m > 1)
			lt_buf_puts(b, seps[rnd() % 7]);
	}
	lt_buf_puts(b, rnd() % 6 ? "]" : "}");
	lt_buf_puts(b, ",1]");
}

START_TEST(at_many_as_walker)
{
	static const int idx[][3] = {{0, 1, 2}, {1, 3, 5}, {0, 0, 4}, {2, 1, 6}, {5, 6, 7}};
	struct lt_buf b = LT_BUF_INIT;

	lt_buf_init(&b, 0);
	for (int round = 0; round < 1000; round++) {
		gen_array(&b, 0);
		for (size_t n = b.len; n > 0; n--) {
			char *cp = malloc(n);
			ck_assert_ptr_nonnull(cp);
			memcpy(cp, b.data, n);
			struct lt_jv got[3], want[3];
			const int *ix = idx[rnd() % 5];
			int nk = 1 + (int)(rnd() % 3);
			lt_jscan_at_many((struct lt_jv){cp, n}, ix, nk, got);
			ref_at_many((struct lt_jv){cp, n}, ix, nk, want);
			for (int i = 0; i < nk; i++)
				ck_assert_msg(got[i].p == want[i].p && got[i].n == want[i].n, "round %d len %zu idx %d: %.*s",
				              round, n, i, (int)n, cp);
			free(cp);
		}
	}
	lt_buf_free(&b);
}
END_TEST

/* lt_jscan_at_many_after and lt_jscan_array_end against a walk with
 * lt_jit_elem that stops at element `from` - 1 and goes on from there: the
 * same elements further on, the same end (or malformed for both), on
 * random arrays cut anywhere. */
START_TEST(after_and_end_as_walker)
{
	static const int idx[][3] = {{1, 2, 3}, {1, 3, 5}, {2, 2, 4}, {3, 1, 6}, {5, 6, 7}};
	struct lt_buf b = LT_BUF_INIT;

	lt_buf_init(&b, 0);
	for (int round = 0; round < 1000; round++) {
		gen_array(&b, 1);
		for (size_t n = b.len; n > 0; n--) {
			char *cp = malloc(n);
			ck_assert_ptr_nonnull(cp);
			memcpy(cp, b.data, n);
			struct lt_jv arr = {cp, n}, v, got[3], want[3];
			const int *ix = idx[rnd() % 5];
			int nk = 1 + (int)(rnd() % 3), from = 1 + (int)(rnd() % 3);
			/* the walker: up to element from - 1, which the caller reads
			 * to its end (as on_danmu reads info[0]) */
			struct lt_jit it;
			const char *after = NULL;
			lt_jit_begin(&it, arr);
			for (int i = 0; i < from && lt_jit_elem(&it, &v); i++) {
				if (i == from - 1) {
					struct lt_jv exact;
					if (lt_jscan_value(v.p, v.n, &exact, NULL) == LT_OK) {
						after = exact.p + exact.n;
						lt_jit_skip_to(&it, after);
					}
				}
			}
			if (!after) {
				free(cp);
				continue;
			}
			struct lt_jit rest = it;
			for (int i = 0; i < nk; i++)
				want[i] = (struct lt_jv){NULL, 0};
			int k = 0;
			for (int i = from; k < nk && lt_jit_elem(&it, &v); i++) {
				while (k < nk && ix[k] < i)
					k++;
				if (k < nk && ix[k] == i)
					want[k++] = v;
			}
			lt_jscan_at_many_after(after, cp + n, from, ix, nk, got);
			for (int i = 0; i < nk; i++)
				ck_assert_msg(got[i].p == want[i].p && got[i].n == want[i].n,
				              "round %d len %zu from %d idx %d: %.*s", round, n, from, i, (int)n, cp);
			while (lt_jit_elem(&rest, &v))
				;
			const char *end = lt_jscan_array_end(after, cp + n);
			ck_assert_msg(end == (rest.bad ? NULL : rest.close), "round %d len %zu from %d: %.*s", round, n,
			              from, (int)n, cp);
			free(cp);
		}
	}
	ck_assert_ptr_null(lt_jscan_array_end(NULL, NULL));
	lt_buf_free(&b);
}
END_TEST

START_TEST(getters)
{
	const char *doc = " {\"a\":1,\"b\":[10,\"x\\\"]\",{\"c\":[]},-7,2.5e3,\"42\"],\"k\\\"q\":true,\"d\":{\"e\":\"f\"}} tail";
	struct lt_jv root;
	size_t next;
	ck_assert_int_eq(lt_jscan_value(doc, strlen(doc), &root, &next), LT_OK);
	ck_assert_int_eq(next, strlen(doc) - 5);
	ck_assert_int_eq(lt_jscan_int(lt_jscan_get(root, "a"), -1), 1);
	struct lt_jv b = lt_jscan_get(root, "b");
	ck_assert(lt_jv_is(b, '['));
	ck_assert_int_eq(lt_jscan_int(lt_jscan_at(b, 0), -1), 10);
	ck_assert_int_eq(lt_jscan_int(lt_jscan_at(b, 3), 0), -7);
	ck_assert_int_eq(lt_jscan_int(lt_jscan_at(b, 4), 0), 2500);
	ck_assert_int_eq(lt_jscan_int(lt_jscan_at(b, 5), 0), 42);
	ck_assert(!lt_jv_ok(lt_jscan_at(b, 6)));
	ck_assert(lt_jv_is(lt_jscan_at(b, 2), '{'));
	ck_assert(!lt_jv_ok(lt_jscan_get(root, "zz")));
	ck_assert(!lt_jv_ok(lt_jscan_get(b, "a"))); /* not an object */
	struct lt_buf sc = LT_BUF_INIT;
	struct lt_str s;
	lt_buf_init(&sc, 0);
	lt_buf_reserve(&sc, 256);
	ck_assert(lt_jscan_str(lt_jscan_get(lt_jscan_get(root, "d"), "e"), &sc, &s));
	ck_assert_int_eq(s.len, 1);
	ck_assert(lt_jscan_str(lt_jscan_at(b, 1), &sc, &s));
	ck_assert_int_eq(s.len, 3);
	ck_assert_int_eq(memcmp(s.p, "x\"]", 3), 0);
	ck_assert(lt_jscan_id(lt_jscan_get(root, "a"), &sc, &s));
	ck_assert_int_eq(s.len, 1);
	ck_assert(!lt_jscan_id(lt_jscan_at(b, 3), &sc, &s)); /* negative: no id */
	static const char *const keys[] = {"d", "a", "nope"};
	struct lt_jv out[3];
	lt_jscan_get_many(root, keys, 3, out);
	ck_assert(lt_jv_is(out[0], '{') && lt_jv_ok(out[1]) && !lt_jv_ok(out[2]));
	lt_buf_free(&sc);

	/* integers */
	ck_assert_int_eq(lt_jscan_int(J("9223372036854775807"), 0), INT64_MAX);
	ck_assert_int_eq(lt_jscan_int(J("9223372036854775808"), -5), -5);
	ck_assert_int_eq(lt_jscan_int(J("99999999999999999999999"), -5), -5);
	ck_assert_int_eq(lt_jscan_int(J("\"12x\""), -5), -5);
	ck_assert_int_eq(lt_jscan_int(J("\"\""), -5), -5);
	ck_assert_int_eq(lt_jscan_int(J("true"), -5), -5);
	ck_assert_int_eq(lt_jscan_int(J("1.9"), -5), 1);
	ck_assert_int_eq(lt_jscan_int(J("1e400"), -5), -5);
	ck_assert_int_eq(lt_jscan_int(J("-"), -5), -5);
}
END_TEST

START_TEST(malformed)
{
	const char *bad[] = {"", "   ", "{", "[1,2", "{\"a\":1]", "[1}", "\"abc", "tru", "nul", "x", "]"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct lt_jv v;
		ck_assert_msg(lt_jscan_value(bad[i], strlen(bad[i]), &v, NULL) == LT_EPROTO, "%s", bad[i]);
	}
	/* skipping checks brackets and strings only; the walkers check the
	 * separators of what they walk */
	struct lt_jv loose;
	ck_assert_int_eq(lt_jscan_value("{\"a\" 1}", 8, &loose, NULL), LT_OK);
	/* walking a broken object stops and says so */
	struct lt_jit it;
	struct lt_jv k, v;
	lt_jit_begin(&it, J("{\"a\":1 \"b\":2}"));
	ck_assert(lt_jit_member(&it, &k, &v));
	ck_assert(!lt_jit_member(&it, &k, &v));
	ck_assert(it.bad);
	lt_jit_begin(&it, J("[1,[2,"));
	ck_assert(lt_jit_elem(&it, &v));
	ck_assert(lt_jit_elem(&it, &v));
	ck_assert(!lt_jit_elem(&it, &v));
	ck_assert(it.bad);
	/* nesting: 64 levels are fine, 65 are not */
	char deep[200];
	for (int d = 64; d <= 65; d++) {
		memset(deep, '[', (size_t)d);
		memset(deep + d, ']', (size_t)d);
		struct lt_jv x;
		ck_assert_int_eq(lt_jscan_value(deep, (size_t)(2 * d), &x, NULL), d == 64 ? LT_OK : LT_EPROTO);
	}
	/* every prefix of a document is handled without reading past it */
	const char *doc = "{\"a\":[1,{\"b\":\"c\\\\\\\"\"}],\"d\":\"\\u00e9\"}";
	size_t n = strlen(doc);
	for (size_t cut = 0; cut < n; cut++) {
		char *copy = malloc(cut ? cut : 1);
		memcpy(copy, doc, cut);
		struct lt_jv x;
		ck_assert_int_eq(lt_jscan_value(copy, cut, &x, NULL), LT_EPROTO);
		struct lt_jv d = lt_jscan_get((struct lt_jv){copy, cut}, "d");
		(void)d;
		free(copy);
	}
}
END_TEST

/* Every test twice: with the AVX2 block loops where the CPU has them, and
 * with the SSE2 ones they stand in for. */
static void simd_on(void)
{
	lt_jscan_simd(true);
}

static void simd_off(void)
{
	ck_assert(!lt_jscan_simd(false));
}

int main(void)
{
	Suite *s = suite_create("jscan");
	for (int i = 0; i < 2; i++) {
		TCase *tc = tcase_create(i ? "sse2" : "core");
		tcase_set_timeout(tc, 60);
		tcase_add_checked_fixture(tc, i ? simd_off : simd_on, NULL);
		tcase_add_test(tc, strings_random);
		tcase_add_test(tc, getters);
		tcase_add_test(tc, malformed);
		tcase_add_test(tc, containers_random);
		tcase_add_test(tc, get_many_as_walker);
		tcase_add_test(tc, at_many_as_walker);
		tcase_add_test(tc, after_and_end_as_walker);
		suite_add_tcase(s, tc);
	}
	printf("test_jscan: AVX2 loops %s on this CPU\n", lt_jscan_simd(true) ? "available" : "not available");
	return lt_test_run_suite(s);
}
