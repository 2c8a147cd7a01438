/* SPDX-License-Identifier: MIT */
/*
 * test_json: the normalized JSON form of common/json.c.
 *
 * The exact contract text of a message, string escaping (quotes, backslash,
 * every control character, U+2028/U+2029), invalid UTF-8 repair case by case
 * and against an independent reference decoder on random bytes, extra kept
 * or replaced by {}, and lt_json_msg_parse: a seeded round trip of random
 * messages through text and back, and bad shapes refused with the field
 * named. Every produced text is also parsed by cJSON.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "common/json.h"
#include "tests/support/testsupport.h"

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint32_t rnd_below(uint32_t n) { return (uint32_t)(rnd() % n); }

/* Assert text[0..n) is one JSON value cJSON accepts; returns the tree. */
static cJSON *must_parse(const char *text, size_t n)
{
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithLengthOpts(text, n, &end, 0);
	ck_assert_msg(j != NULL, "cJSON refused: %.*s", (int)(n > 300 ? 300 : n), text);
	ck_assert_msg(end == text + n, "trailing bytes after JSON value");
	return j;
}

static struct lt_msg chat_msg(void)
{
	struct lt_msg m = {0};
	m.platform = LT_PLATFORM_BILIBILI;
	m.type = LT_MSG_CHAT;
	m.ts = 1732212345123;
	m.room = LT_STR("21452505");
	m.msg_id = LT_STR("b3f1c0de");
	m.user_id = LT_STR("123");
	m.user_name = LT_STR("\xe5\xb0\x8f\xe6\x98\x8e");
	m.content = LT_STR("\xe5\x93\x88\xe5\x93\x88 666");
	return m;
}

START_TEST(contract_form)
{
	struct lt_buf b = LT_BUF_INIT;
	struct lt_msg m = chat_msg();
	ck_assert_int_eq(lt_json_msg(&b, &m), LT_OK);
	ck_assert_str_eq(lt_buf_cstr(&b),
			 "{\"v\":1,\"platform\":\"bilibili\",\"room\":\"21452505\",\"type\":\"chat\",\"msg_id\":\"b3f1c0de\","
			 "\"user\":{\"id\":\"123\",\"name\":\"\xe5\xb0\x8f\xe6\x98\x8e\"},\"content\":\"\xe5\x93\x88\xe5\x93\x88 "
			 "666\",\"ts\":1732212345123,\"extra\":{}}");
	/* Appends, never resets. */
	lt_buf_reset(&b);
	lt_buf_puts(&b, "x");
	m.platform = LT_PLATFORM_KOOK;
	m.type = LT_MSG_GIFT;
	m.flags = LT_MSGF_ANONYMOUS;
	m.ts = INT64_MIN;
	m.extra = LT_STR("{\"gift_name\":\"rose\",\"count\":3,\"value\":300,\"currency\":\"gold\"}");
	ck_assert_int_eq(lt_json_msg(&b, &m), LT_OK);
	ck_assert_str_eq(lt_buf_cstr(&b),
			 "x{\"v\":1,\"platform\":\"kook\",\"room\":\"21452505\",\"type\":\"gift\",\"msg_id\":\"b3f1c0de\","
			 "\"user\":{\"id\":\"\",\"name\":\"\xe5\xb0\x8f\xe6\x98\x8e\"},\"content\":\"\xe5\x93\x88\xe5\x93\x88 "
			 "666\",\"ts\":-9223372036854775808,\"extra\":{\"gift_name\":\"rose\",\"count\":3,\"value\":300,"
			 "\"currency\":\"gold\"}}");
	/* Out-of-range enums, NULL empty strings. */
	struct lt_msg z = {0};
	z.platform = 77;
	z.type = 200;
	lt_buf_reset(&b);
	ck_assert_int_eq(lt_json_msg(&b, &z), LT_OK);
	ck_assert_str_eq(lt_buf_cstr(&b), "{\"v\":1,\"platform\":\"unknown\",\"room\":\"\",\"type\":\"other\",\"msg_id\":\"\","
					  "\"user\":{\"id\":\"\",\"name\":\"\"},\"content\":\"\",\"ts\":0,\"extra\":{}}");
	/* Every type name, and the output of each is JSON. */
	for (int t = 0; t < LT_MSG_TYPE_COUNT; t++) {
		m = chat_msg();
		m.type = (uint8_t)t;
		lt_buf_reset(&b);
		ck_assert_int_eq(lt_json_msg(&b, &m), LT_OK);
		cJSON *j = must_parse((const char *)b.data, b.len);
		ck_assert_str_eq(cJSON_GetObjectItem(j, "type")->valuestring, lt_msg_type_name(t));
		ck_assert(cJSON_GetObjectItem(j, "ts")->valuedouble == 1732212345123.0);
		cJSON_Delete(j);
	}
	lt_buf_free(&b);
}
END_TEST

START_TEST(buffer_limit_sticks)
{
	struct lt_buf b;
	lt_buf_init(&b, 100);
	struct lt_msg m = chat_msg();
	ck_assert_int_eq(lt_json_msg(&b, &m), LT_ETOOBIG);
	ck_assert_int_eq(lt_json_msg(&b, &m), LT_ETOOBIG);
	ck_assert_str_eq(lt_buf_cstr(&b), "");
	lt_buf_free(&b);
}
END_TEST

static void str_is(const char *in, size_t n, const char *want)
{
	struct lt_buf b = LT_BUF_INIT;
	lt_json_str(&b, in, n);
	ck_assert_int_eq(lt_buf_err(&b), LT_OK);
	ck_assert_msg(b.len == strlen(want) && memcmp(b.data, want, b.len) == 0, "escaped %zu bytes to %s, want %s",
		      n, lt_buf_cstr(&b), want);
	cJSON *j = must_parse((const char *)b.data, b.len);
	ck_assert(cJSON_IsString(j));
	cJSON_Delete(j);
	lt_buf_free(&b);
}

#define STR_IS(lit, want) str_is((lit), sizeof(lit) - 1, (want))

START_TEST(escaping)
{
	STR_IS("", "\"\"");
	STR_IS("plain text / slash", "\"plain text / slash\"");
	STR_IS("a\"b\\c", "\"a\\\"b\\\\c\"");
	STR_IS("\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"");
	STR_IS("\x7f", "\"\x7f\"");
	STR_IS("x\xe2\x80\xa8y\xe2\x80\xa9z", "\"x\\u2028y\\u2029z\"");
	STR_IS("\xe2\x80\xa7\xe2\x80\xaa", "\"\xe2\x80\xa7\xe2\x80\xaa\""); /* neighbours stay raw */
	STR_IS("\xe4\xb8\xad\xf0\x9f\x98\x80", "\"\xe4\xb8\xad\xf0\x9f\x98\x80\"");
	/* Every control character. */
	for (int c = 0; c < 0x20; c++) {
		char in[1] = {(char)c}, want[16];
		switch (c) {
		case '\b': strcpy(want, "\"\\b\""); break;
		case '\f': strcpy(want, "\"\\f\""); break;
		case '\n': strcpy(want, "\"\\n\""); break;
		case '\r': strcpy(want, "\"\\r\""); break;
		case '\t': strcpy(want, "\"\\t\""); break;
		default: snprintf(want, sizeof(want), "\"\\u%04x\"", c); break;
		}
		str_is(in, 1, want);
	}
}
END_TEST

#define FFFD "\xef\xbf\xbd"

static const struct {
	const char *in;
	size_t n;
	const char *out;
	size_t repl;
} repairs[] = {
#define R(i, o, k) {i, sizeof(i) - 1, o, k}
	R("\xc0\x80", FFFD FFFD, 2),                      /* overlong NUL */
	R("\xc1\xbf", FFFD FFFD, 2),                      /* overlong 2-byte */
	R("\xe0\x80\x80", FFFD FFFD FFFD, 3),             /* overlong 3-byte */
	R("\xe0\x9f\xbf", FFFD FFFD FFFD, 3),
	R("\xf0\x80\x80\x80", FFFD FFFD FFFD FFFD, 4),    /* overlong 4-byte */
	R("\xf0\x8f\xbf\xbf", FFFD FFFD FFFD FFFD, 4),
	R("\xed\xa0\x80", FFFD FFFD FFFD, 3),             /* U+D800 */
	R("\xed\xbf\xbf", FFFD FFFD FFFD, 3),             /* U+DFFF */
	R("\xf4\x90\x80\x80", FFFD FFFD FFFD FFFD, 4),    /* U+110000 */
	R("\xf5\x80\x80\x80", FFFD FFFD FFFD FFFD, 4),
	R("\xff", FFFD, 1),
	R("\xfe\xfe", FFFD FFFD, 2),
	R("\x80", FFFD, 1),                               /* stray continuation */
	R("\xbf\xbf", FFFD FFFD, 2),
	R("\xe4\xb8", FFFD, 1),                           /* truncated at the end */
	R("\xe4\xb8" "a", FFFD "a", 1),                   /* truncated before ASCII */
	R("\xf0\x9f\x98", FFFD, 1),
	R("\xf0\x9f\x98\xe4\xb8\xad", FFFD "\xe4\xb8\xad", 1),
	R("a\xf0\x9f\x98\x80" "b", "a\xf0\x9f\x98\x80" "b", 0),
	R("\xed\x9f\xbf", "\xed\x9f\xbf", 0),             /* U+D7FF */
	R("\xee\x80\x80", "\xee\x80\x80", 0),             /* U+E000 */
	R("\xef\xbf\xbf", "\xef\xbf\xbf", 0),             /* U+FFFF */
	R("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf", 0),     /* U+10FFFF */
	R("\xc2\x80", "\xc2\x80", 0),                     /* U+0080 */
#undef R
};

START_TEST(utf8_repair_cases)
{
	for (size_t i = 0; i < sizeof(repairs) / sizeof(repairs[0]); i++) {
		struct lt_buf b = LT_BUF_INIT;
		size_t k = lt_utf8_repair(&b, repairs[i].in, repairs[i].n);
		ck_assert_msg(k == repairs[i].repl, "case %zu: %zu replacements, want %zu", i, k, repairs[i].repl);
		ck_assert_msg(b.len == strlen(repairs[i].out) && memcmp(b.data, repairs[i].out, b.len) == 0,
			      "case %zu: wrong repair", i);
		ck_assert(lt_utf8_valid(repairs[i].in, repairs[i].n) == (repairs[i].repl == 0));
		ck_assert(lt_utf8_valid((const char *)b.data, b.len));
		/* The JSON string carries the same repair. */
		char want[64];
		snprintf(want, sizeof(want), "\"%s\"", repairs[i].out);
		str_is(repairs[i].in, repairs[i].n, want);
		lt_buf_free(&b);
	}
}
END_TEST

/* An independent reference: decode code points the textbook way and say
 * whether s is well-formed. */
static bool ref_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t len;
		uint32_t cp, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			len = 2, cp = c & 0x1F, min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			len = 3, cp = c & 0x0F, min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			len = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += len;
	}
	return true;
}

START_TEST(utf8_random_against_reference)
{
	unsigned char s[64];
	size_t invalid = 0;
	for (int iter = 0; iter < 100000; iter++) {
		size_t n = rnd_below(sizeof(s) + 1);
		bool mostly_valid = iter & 1;
		for (size_t i = 0; i < n; i++) {
			if (mostly_valid && i + 3 <= n && rnd_below(4) == 0) {
				/* a random code point, encoded well, perhaps cut later */
				uint32_t cp = 0x80 + rnd_below(0x10FFFF - 0x80);
				if (cp >= 0xD800 && cp <= 0xDFFF)
					cp = 0xFFFD;
				unsigned char t[4];
				size_t l;
				if (cp < 0x800)
					t[0] = (unsigned char)(0xC0 | (cp >> 6)), t[1] = (unsigned char)(0x80 | (cp & 0x3F)), l = 2;
				else if (cp < 0x10000)
					t[0] = (unsigned char)(0xE0 | (cp >> 12)),
					t[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)),
					t[2] = (unsigned char)(0x80 | (cp & 0x3F)), l = 3;
				else
					t[0] = (unsigned char)(0xF0 | (cp >> 18)),
					t[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F)),
					t[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)),
					t[3] = (unsigned char)(0x80 | (cp & 0x3F)), l = 4;
				if (i + l > n)
					l = n - i;
				memcpy(s + i, t, l);
				i += l - 1;
			} else {
				s[i] = (unsigned char)(mostly_valid ? rnd_below(0x80) : rnd_below(256));
			}
		}
		bool v = ref_valid(s, n);
		invalid += !v;
		ck_assert_msg(lt_utf8_valid((const char *)s, n) == v, "validity differs from reference");
		struct lt_buf b = LT_BUF_INIT;
		size_t k = lt_utf8_repair(&b, (const char *)s, n);
		ck_assert_int_eq(lt_buf_err(&b), LT_OK);
		ck_assert(ref_valid(b.data, b.len));
		ck_assert((k == 0) == v);
		if (v)
			ck_assert(b.len == n && memcmp(b.data, s, n) == 0);
		/* lt_json_str's output is JSON whose value is the repaired text
		 * (NUL bytes aside: cJSON strings end at the first NUL). */
		struct lt_buf j = LT_BUF_INIT;
		lt_json_str(&j, (const char *)s, n);
		ck_assert(ref_valid(j.data, j.len));
		cJSON *t = must_parse((const char *)j.data, j.len);
		size_t cut = strnlen((const char *)b.data, b.len);
		ck_assert_uint_eq(strlen(t->valuestring), cut);
		ck_assert(memcmp(t->valuestring, b.data, cut) == 0);
		cJSON_Delete(t);
		lt_buf_free(&j);
		lt_buf_free(&b);
	}
	ck_assert_uint_gt(invalid, 1000);
}
END_TEST

/* The reference escaper, one byte at a time with snprintf: repair the text
 * with lt_utf8_repair (checked against ref_valid above), then " and \ and
 * the short forms, \u00xx for the other controls, \u2028/\u2029, and every
 * other byte as is. */
static void ref_escape(struct lt_buf *out, const unsigned char *s, size_t n)
{
	struct lt_buf r = LT_BUF_INIT;
	lt_utf8_repair(&r, (const char *)s, n);
	lt_buf_append(out, "\"", 1);
	for (size_t i = 0; i < r.len; i++) {
		unsigned c = r.data[i];
		char e[8];
		if (c == '"' || c == '\\') {
			snprintf(e, sizeof(e), "\\%c", (char)c);
		} else if (c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t') {
			snprintf(e, sizeof(e), "\\%c",
				 c == '\b'   ? 'b'
				 : c == '\f' ? 'f'
				 : c == '\n' ? 'n'
				 : c == '\r' ? 'r'
					     : 't');
		} else if (c < 0x20) {
			snprintf(e, sizeof(e), "\\u%04x", c);
		} else if (c == 0xE2 && i + 2 < r.len && r.data[i + 1] == 0x80 &&
			   (r.data[i + 2] == 0xA8 || r.data[i + 2] == 0xA9)) {
			snprintf(e, sizeof(e), "\\u%04x", r.data[i + 2] == 0xA8 ? 0x2028u : 0x2029u);
			i += 2;
		} else {
			e[0] = (char)c;
			e[1] = 0;
		}
		lt_buf_append(out, e, strlen(e));
	}
	lt_buf_append(out, "\"", 1);
	lt_buf_free(&r);
}

/* Random text built from pieces the escaper treats differently: ASCII runs
 * of every length (so the 8-byte skip starts and ends at every offset),
 * quotes, backslashes, controls, DEL, CJK, U+2028/U+2029, other multi-byte
 * characters and random (mostly invalid) bytes. */
static size_t rnd_mixed(unsigned char *s, size_t cap)
{
	static const char *const pieces[] = {"\"",
					     "\\",
					     "\n",
					     "\t",
					     "\x01",
					     "\x1f",
					     "\x7f",
					     " ",
					     "~",
					     "\xe4\xbd\xa0",
					     "\xe5\xa5\xbd",
					     "\xe2\x80\xa8",
					     "\xe2\x80\xa9",
					     "\xe2\x80\xa7",
					     "\xc3\xa9",
					     "\xf0\x9f\x98\x80",
					     "\xed\x9f\xbf",
					     "\xef\xbf\xbd"};
	size_t n = 0, want = rnd_below((uint32_t)cap - 8);
	while (n < want) {
		uint32_t k = rnd_below(10);
		if (k < 4) {
			size_t run = rnd_below(20);
			for (size_t j = 0; j < run && n < cap; j++)
				s[n++] = (unsigned char)(0x20 + rnd_below(0x5f));
		} else if (k < 8) {
			const char *p = pieces[rnd_below(sizeof(pieces) / sizeof(pieces[0]))];
			size_t l = strlen(p);
			if (n + l > cap)
				break;
			memcpy(s + n, p, l);
			n += l;
		} else {
			s[n++] = (unsigned char)rnd_below(256);
		}
	}
	return n;
}

START_TEST(escape_random_against_reference)
{
	unsigned char s[96];
	for (int iter = 0; iter < 50000; iter++) {
		size_t n = rnd_mixed(s, sizeof(s));
		struct lt_buf got = LT_BUF_INIT, want = LT_BUF_INIT;
		lt_json_str(&got, (const char *)s, n);
		ref_escape(&want, s, n);
		ck_assert_int_eq(lt_buf_err(&got), LT_OK);
		ck_assert_msg(got.len == want.len && memcmp(got.data, want.data, got.len) == 0,
			      "iteration %d: escaped to %s, reference %s", iter, lt_buf_cstr(&got),
			      lt_buf_cstr(&want));
		lt_buf_free(&got);
		lt_buf_free(&want);
	}
}
END_TEST

/* lt_json_msg writes ts as "%lld" does, at every magnitude and sign. */
START_TEST(ts_random_against_printf)
{
	static const int64_t edges[] = {0, 1, -1, 9, 10, 99, 100, -100, 101, INT64_MAX, INT64_MIN};
	for (int iter = 0; iter < 100000; iter++) {
		struct lt_msg m = chat_msg();
		if (iter < (int)(sizeof(edges) / sizeof(edges[0]))) {
			m.ts = edges[iter];
		} else {
			uint64_t u = rnd() >> rnd_below(64);
			m.ts = (int64_t)(rnd_below(2) ? 0 - u : u); /* wraps, no overflow */
		}
		struct lt_buf b = LT_BUF_INIT;
		ck_assert_int_eq(lt_json_msg(&b, &m), LT_OK);
		char want[40];
		snprintf(want, sizeof(want), ",\"ts\":%" PRId64 ",", m.ts);
		ck_assert_msg(strstr(lt_buf_cstr(&b), want), "ts %" PRId64 " written as %s", m.ts,
			      lt_buf_cstr(&b));
		lt_buf_free(&b);
	}
}
END_TEST

/* ---- extra ---- */

static void extra_of(const char *in, size_t n, struct lt_buf *want);

static void extra_is(const char *in, size_t n, const char *want)
{
	struct lt_buf got = LT_BUF_INIT;
	extra_of(in, n, &got);
	ck_assert_msg(got.len == strlen(want) && memcmp(got.data, want, got.len) == 0,
		      "extra %.*s became %.*s, want %s", (int)(n > 80 ? 80 : n), in, (int)got.len,
		      (const char *)got.data, want);
	lt_buf_free(&got);
}

#define EXTRA_IS(lit, want) extra_is((lit), sizeof(lit) - 1, (want))

START_TEST(extra_kept_or_replaced)
{
	EXTRA_IS("", "{}");
	EXTRA_IS("{}", "{}");
	EXTRA_IS(" {\n \"a\" : 1 ,\t\"b\":[ true , false,null ] ,\"c\" : { } } \r\n",
		 "{\"a\":1,\"b\":[true,false,null],\"c\":{}}");
	EXTRA_IS("{\"n\":-0.5e+10,\"m\":0,\"k\":1E-3,\"z\":-0}", "{\"n\":-0.5e+10,\"m\":0,\"k\":1E-3,\"z\":-0}");
	EXTRA_IS("{\"a b\":\" c } \"}", "{\"a b\":\" c } \"}");
	EXTRA_IS("{\"s\":\"\\/\\b\\f\\n\\r\\t\\\"\\\\\\u00e9\\ud83d\\ude00\"}",
		 "{\"s\":\"\\/\\b\\f\\n\\r\\t\\\"\\\\\\u00e9\\ud83d\\ude00\"}");
	EXTRA_IS("{\"a\":\"x\xc0\"}", "{\"a\":\"x" FFFD "\"}");
	EXTRA_IS("{\"a\":\"\xe2\x80\xa8\"}", "{\"a\":\"\\u2028\"}");
	EXTRA_IS("{\"\xe7\xa4\xbc\xe7\x89\xa9\":\"\xe7\x8e\xab\xe7\x91\xb0\"}",
		 "{\"\xe7\xa4\xbc\xe7\x89\xa9\":\"\xe7\x8e\xab\xe7\x91\xb0\"}");
	static const char *const bad[] = {
		"[]", "1", "\"x\"", "null", "{", "}", "{\"a\":}", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "{} x", "{}{}",
		"{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":-}", "{\"a\":+1}", "{\"a\":tru}",
		"{\"a\":nul}", "{\"a\":\"\x01\"}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\\u12g4\"}",
		"{\"a\":\"\\u0000\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\ud800x\"}", "{\"a\":\"\\udc00\\ud800\"}",
		"{\"a\":\"\\ud800\\u0041\"}", "{\"a\":[1,2}", "{\"a\":[1,2]]}", "{\"a\":\"open}", "{\"a\":1 \"b\":2}",
		"{,}", "{\"a\":[,]}", "{\"a\":\"x\"", "\xef\xbb\xbf{}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		extra_is(bad[i], strlen(bad[i]), "{}");
	extra_is("{\"a\"\0:1}", 8, "{}"); /* NUL outside a string */
	extra_is("{\"a\":\"\0\"}", 9, "{}"); /* raw NUL inside a string */
}
END_TEST

/* The normalized form of extra as lt_json_msg writes it, into want; the
 * whole message must parse and be valid UTF-8. */
static void extra_of(const char *in, size_t n, struct lt_buf *want)
{
	struct lt_msg m = {0};
	m.extra = (struct lt_str){in, (uint32_t)n};
	struct lt_buf b = LT_BUF_INIT;
	ck_assert_int_eq(lt_json_msg(&b, &m), LT_OK);
	const char *got = strstr(lt_buf_cstr(&b), ",\"extra\":");
	ck_assert_ptr_nonnull(got);
	got += 9;
	lt_buf_append(want, got, b.len - (size_t)(got - (const char *)b.data) - 1);
	cJSON_Delete(must_parse((const char *)b.data, b.len));
	ck_assert(lt_utf8_valid((const char *)b.data, b.len));
	lt_buf_free(&b);
}

/* Flat objects in normalized form are copied without the full pass; the
 * same text after a leading space (which the quick check refuses) takes
 * the full pass and must come out the same, valid or not. Random objects
 * of the decoders' shape, then mutated at a random byte. */
START_TEST(extra_flat_same_as_full_pass)
{
	static const char *const keys[] = {"gift_name", "count", "", "a b", "\xe7\xa4\xbc", "x\\y", "q\"", "\x01"};
	static const char *const strs[] = {"", "gold", "\xe7\x8e\xab\xe7\x91\xb0", "\xe2\x80\xa8", "\xc0",
					   "\\u0000", "\\n", "a\tb", "\xf0\x9f\x98\x80", "\xed\xa0\x80"};
	static const char *const nums[] = {"0", "-0", "7", "-12", "1732212345123", "01", "-", "1.5", "1e3",
					   "true", "null", "{}", "[1]", "{\"a\":1}"};
	char in[512], sp[520];
	EXTRA_IS("{\"a\":-0,\"b\":\"\",\"\":0}", "{\"a\":-0,\"b\":\"\",\"\":0}");
	EXTRA_IS("{\"a\":0}x", "{}");
	EXTRA_IS("{\"a\":0", "{}");
	EXTRA_IS("{\"a\":}", "{}");
	EXTRA_IS("{}}", "{}");
	for (int iter = 0; iter < 20000; iter++) {
		size_t n = 0;
		int members = (int)rnd_below(5);
		in[n++] = '{';
		for (int k = 0; k < members; k++) {
			if (k)
				in[n++] = ',';
			n += (size_t)snprintf(in + n, sizeof(in) - n, "\"%s\":", keys[rnd_below(8)]);
			if (rnd_below(2))
				n += (size_t)snprintf(in + n, sizeof(in) - n, "\"%s\"", strs[rnd_below(10)]);
			else
				n += (size_t)snprintf(in + n, sizeof(in) - n, "%s", nums[rnd_below(14)]);
		}
		in[n++] = '}';
		if (rnd_below(4) == 0) /* a mutation: cut, or one byte changed */
			n = rnd_below(2) ? rnd_below((uint32_t)n + 1) : n;
		if (rnd_below(4) == 0 && n)
			in[rnd_below((uint32_t)n)] = (char)rnd_below(256);
		sp[0] = ' ';
		memcpy(sp + 1, in, n);
		struct lt_buf a = LT_BUF_INIT, b = LT_BUF_INIT;
		extra_of(in, n, &a);
		extra_of(sp, n + 1, &b);
		ck_assert_msg(a.len == b.len && memcmp(a.data, b.data, a.len) == 0,
			      "iteration %d: %.*s gave %s, through the full pass %s", iter, (int)n, in,
			      lt_buf_cstr(&a), lt_buf_cstr(&b));
		ck_assert(lt_utf8_valid((const char *)a.data, a.len));
		lt_buf_free(&a);
		lt_buf_free(&b);
	}
}
END_TEST

/* A producer that builds extra as the decoders do (ASCII keys, strings
 * through lt_json_str, integers) may set extra_normal when no string needed
 * a backslash: the encoder then copies extra unchecked, and must write what
 * its checks would have. Random strings of every awkward kind; and an empty
 * extra is still {}. */
START_TEST(extra_normal_same_as_checked)
{
	static const char *const strs[] = {"", "gold", "\xe7\x8e\xab\xe7\x91\xb0", "\xe2\x80\xa8", "\xc0", "a\"b",
					   "\\", "a\tb", "\xf0\x9f\x98\x80", "\xed\xa0\x80", "\xf0\x9f\x98", "\x7f"};
	for (int iter = 0; iter < 5000; iter++) {
		struct lt_buf x = LT_BUF_INIT;
		bool normal = true;
		int members = 1 + (int)rnd_below(4);
		for (int k = 0; k < members; k++) {
			lt_buf_puts(&x, k ? ",\"k\":" : "{\"k\":");
			if (rnd_below(2)) {
				const char *v = strs[rnd_below(12)];
				size_t at = x.len;
				lt_json_str(&x, v, strlen(v) + (rnd_below(8) == 0)); /* sometimes with its NUL */
				if (memchr(x.data + at, '\\', x.len - at))
					normal = false;
			} else {
				lt_buf_printf(&x, "%lld", (long long)rnd_below(2000000) - 1000000);
			}
		}
		lt_buf_putc(&x, '}');
		struct lt_msg m = {0};
		m.extra = (struct lt_str){(const char *)x.data, (uint32_t)x.len};
		struct lt_buf a = LT_BUF_INIT, b = LT_BUF_INIT;
		ck_assert_int_eq(lt_json_msg(&a, &m), LT_OK);
		m.extra_normal = normal;
		ck_assert_int_eq(lt_json_msg(&b, &m), LT_OK);
		ck_assert_msg(a.len == b.len && memcmp(a.data, b.data, a.len) == 0, "%s: checked %s, copied %s",
			      lt_buf_cstr(&x), lt_buf_cstr(&a), lt_buf_cstr(&b));
		lt_buf_free(&a);
		lt_buf_free(&b);
		lt_buf_free(&x);
	}
	struct lt_msg m = {0};
	m.extra_normal = true;
	struct lt_buf b = LT_BUF_INIT;
	ck_assert_int_eq(lt_json_msg(&b, &m), LT_OK);
	ck_assert_ptr_nonnull(strstr(lt_buf_cstr(&b), ",\"extra\":{}}"));
	lt_buf_free(&b);
}
END_TEST

START_TEST(extra_depth)
{
	char in[256], want[256];
	/* depth 63 below the top object: kept */
	int k = 63;
	size_t n = (size_t)snprintf(in, sizeof(in), "{\"a\":");
	for (int i = 0; i < k; i++)
		in[n++] = '[';
	for (int i = 0; i < k; i++)
		in[n++] = ']';
	in[n++] = '}';
	in[n] = 0;
	memcpy(want, in, n + 1);
	extra_is(in, n, want);
	/* depth 64: replaced */
	n = (size_t)snprintf(in, sizeof(in), "{\"a\":");
	for (int i = 0; i < k + 1; i++)
		in[n++] = '[';
	for (int i = 0; i < k + 1; i++)
		in[n++] = ']';
	in[n++] = '}';
	in[n] = 0;
	extra_is(in, n, "{}");
}
END_TEST

/* ---- parse ---- */

static const char *const extras[] = {
	"",
	"{}",
	"{\"gift_name\":\"\xe7\x8e\xab\xe7\x91\xb0\",\"count\":3,\"value\":300,\"currency\":\"gold\"}",
	"{\"a\":[1,2,{\"b\":null}],\"t\":true,\"f\":false}",
	"{\"cmd\":\"DANMU_MSG\",\"medal\":{\"name\":\"x\",\"level\":21}}",
	"{\"count\":-7,\"value\":9007199254740992}",
};

/* Random bytes without NUL (cJSON strings stop at NUL), up to max/3 so that
 * the repaired text stays within the limit. */
static struct lt_str rnd_text(char *pool, uint32_t max, bool nonempty)
{
	uint32_t n = rnd_below(max / 3 + 1);
	if (nonempty && n == 0)
		n = 1;
	bool raw = rnd() & 1;
	for (uint32_t i = 0; i < n; i++) {
		if (raw) {
			pool[i] = (char)(1 + rnd_below(255));
		} else {
			static const char *const bits[] = {"a", "Z", "0", " ", "\xe4\xb8\xad", "\xf0\x9f\x98\x80", "\"",
							   "\\", "\n", "\x1f", "\xe2\x80\xa8", "/"};
			const char *b = bits[rnd_below(12)];
			size_t bl = strlen(b);
			if (i + bl > n)
				bl = n - i;
			memcpy(pool + i, b, bl);
			i += (uint32_t)bl - 1;
		}
	}
	return (struct lt_str){pool, n};
}

START_TEST(parse_roundtrip_random)
{
	static char room[LT_MSG_ROOM_MAX], id[LT_MSG_ID_MAX], uid[LT_MSG_USER_ID_MAX], name[LT_MSG_USER_NAME_MAX],
		content[LT_MSG_CONTENT_MAX];
	struct lt_arena a;
	lt_arena_init(&a, 0);
	struct lt_buf j1 = LT_BUF_INIT, j2 = LT_BUF_INIT, rep = LT_BUF_INIT;
	for (int iter = 0; iter < 10000; iter++) {
		struct lt_msg m = {0}, p;
		m.platform = (uint8_t)(1 + rnd_below(LT_PLATFORM_COUNT - 1));
		m.type = (uint8_t)rnd_below(LT_MSG_TYPE_COUNT);
		m.ts = (int64_t)(rnd() % (1ULL << 53)) - (int64_t)(rnd() % (1ULL << 40));
		m.room = rnd_text(room, LT_MSG_ROOM_MAX, true);
		m.msg_id = rnd_text(id, LT_MSG_ID_MAX, false);
		m.user_id = rnd_text(uid, LT_MSG_USER_ID_MAX, true);
		m.user_name = rnd_text(name, LT_MSG_USER_NAME_MAX, false);
		m.content = rnd_text(content, LT_MSG_CONTENT_MAX, false);
		m.extra = lt_str_c(extras[rnd_below(sizeof(extras) / sizeof(extras[0]))]);
		lt_buf_reset(&j1);
		lt_buf_reset(&j2);
		ck_assert_int_eq(lt_json_msg(&j1, &m), LT_OK);
		struct lt_error e = {0};
		int rc = lt_json_msg_parse((const char *)j1.data, j1.len, &a, &p, &e);
		ck_assert_msg(rc == LT_OK, "parse failed: %s on %s", e.message, lt_buf_cstr(&j1));
		ck_assert_int_eq(lt_json_msg(&j2, &p), LT_OK);
		ck_assert_msg(j1.len == j2.len && memcmp(j1.data, j2.data, j1.len) == 0, "round trip differs:\n%s\n%s",
			      lt_buf_cstr(&j1), lt_buf_cstr(&j2));
		ck_assert_uint_eq(p.platform, m.platform);
		ck_assert_uint_eq(p.type, m.type);
		ck_assert_int_eq(p.ts, m.ts);
		/* Strings come back repaired, byte for byte. */
		struct lt_str *got[] = {&p.room, &p.msg_id, &p.user_id, &p.user_name, &p.content};
		struct lt_str *sent[] = {&m.room, &m.msg_id, &m.user_id, &m.user_name, &m.content};
		for (int f = 0; f < 5; f++) {
			lt_buf_reset(&rep);
			lt_utf8_repair(&rep, sent[f]->p, sent[f]->len);
			ck_assert(got[f]->len == rep.len && memcmp(got[f]->p, rep.data, rep.len) == 0);
		}
		ck_assert(!(p.flags & LT_MSGF_REPAIRED)); /* the text was already repaired */
		ck_assert(!(p.flags & LT_MSGF_ANONYMOUS));
		if (m.extra.len > 2)
			ck_assert(lt_str_eq(p.extra, m.extra));
		lt_arena_reset(&a);
	}
	lt_buf_free(&j1);
	lt_buf_free(&j2);
	lt_buf_free(&rep);
	lt_arena_free(&a);
}
END_TEST

START_TEST(parse_fills_fields)
{
	struct lt_arena a;
	lt_arena_init(&a, 0);
	struct lt_msg m;
	struct lt_error e = {0};
	const char *s = "{\"v\":1,\"platform\":\"douyin\",\"room\":\"7301\",\"type\":\"gift\",\"msg_id\":\"g1\","
			"\"user\":{\"id\":\"\",\"name\":\"anon\\u0041\"},\"content\":\"x\xff\",\"ts\":-5,"
			"\"extra\":{ \"gift_name\" : \"rose\", \"count\":3, \"value\":300 },\"future_key\":[1]}";
	ck_assert_int_eq(lt_json_msg_parse(s, strlen(s), &a, &m, &e), LT_OK);
	ck_assert_uint_eq(m.platform, LT_PLATFORM_DOUYIN);
	ck_assert_uint_eq(m.type, LT_MSG_GIFT);
	ck_assert_int_eq(m.ts, -5);
	ck_assert(lt_str_eqc(m.room, "7301"));
	ck_assert(lt_str_eqc(m.msg_id, "g1"));
	ck_assert_uint_eq(m.user_id.len, 0);
	ck_assert(lt_str_eqc(m.user_name, "anonA"));
	ck_assert(lt_str_eqc(m.content, "x" FFFD));
	ck_assert(lt_str_eqc(m.extra, "{\"gift_name\":\"rose\",\"count\":3,\"value\":300}"));
	ck_assert_int_eq(m.count, 3);
	ck_assert_int_eq(m.value, 300);
	ck_assert_uint_eq(m.flags, LT_MSGF_ANONYMOUS | LT_MSGF_REPAIRED);
	/* Minimal line: optional fields empty. Length excludes the junk after. */
	s = "{\"v\":1,\"platform\":\"kook\",\"room\":\"1\",\"type\":\"like\",\"ts\":0}GARBAGE";
	ck_assert_int_eq(lt_json_msg_parse(s, strlen(s) - 7, &a, &m, &e), LT_OK);
	ck_assert_uint_eq(m.msg_id.len + m.user_id.len + m.user_name.len + m.content.len + m.extra.len, 0);
	ck_assert_int_eq(lt_json_msg_parse(s, strlen(s), &a, &m, &e), LT_EINVAL);
	/* extra keeps its numbers exactly as written (no trip through a double),
	 * loses its whitespace, and the first of duplicate keys wins (as cJSON). */
	s = "{\"v\":1,\"platform\":\"kook\",\"room\":\"1\",\"type\":\"other\",\"ts\":0,"
	    "\"extra\" : {\"uid\": 12345678901234567890, \"f\":1.10, \"s\":\"a,}]\\\"\"} ,\"extra\":{\"second\":1}}";
	ck_assert_int_eq(lt_json_msg_parse(s, strlen(s), &a, &m, &e), LT_OK);
	ck_assert_msg(lt_str_eqc(m.extra, "{\"uid\":12345678901234567890,\"f\":1.10,\"s\":\"a,}]\\\"\"}"),
		      "extra is %.*s", (int)m.extra.len, m.extra.p);
	lt_arena_free(&a);
}
END_TEST

START_TEST(parse_bad_shapes)
{
	static char long_room[200], long_content[LT_MSG_CONTENT_MAX + 256];
	snprintf(long_room, sizeof(long_room),
		 "{\"v\":1,\"platform\":\"kook\",\"room\":\"%065d\",\"type\":\"chat\",\"ts\":1}", 7);
	int off = snprintf(long_content, sizeof(long_content),
			   "{\"v\":1,\"platform\":\"kook\",\"room\":\"1\",\"type\":\"chat\",\"ts\":1,\"content\":\"");
	memset(long_content + off, 'x', LT_MSG_CONTENT_MAX + 1);
	strcpy(long_content + off + LT_MSG_CONTENT_MAX + 1, "\"}");
#define BASE "\"platform\":\"kook\",\"room\":\"1\",\"type\":\"chat\",\"ts\":1"
	static const struct {
		const char *in;
		const char *field;
	} cases[] = {
		{"not json", NULL},
		{"", NULL},
		{"[1]", "(root)"},
		{"{" BASE "}", "v"},
		{"{\"v\":2," BASE "}", "v"},
		{"{\"v\":\"1\"," BASE "}", "v"},
		{"{\"v\":1,\"platform\":\"youtube\",\"room\":\"1\",\"type\":\"chat\",\"ts\":1}", "platform"},
		{"{\"v\":1,\"platform\":1,\"room\":\"1\",\"type\":\"chat\",\"ts\":1}", "platform"},
		{"{\"v\":1,\"room\":\"1\",\"type\":\"chat\",\"ts\":1}", "platform"},
		{"{\"v\":1,\"platform\":\"kook\",\"room\":\"1\",\"type\":\"dance\",\"ts\":1}", "type"},
		{"{\"v\":1,\"platform\":\"kook\",\"room\":\"1\",\"ts\":1}", "type"},
		{"{\"v\":1,\"platform\":\"kook\",\"room\":\"1\",\"type\":\"chat\",\"ts\":\"1\"}", "ts"},
		{"{\"v\":1,\"platform\":\"kook\",\"room\":\"1\",\"type\":\"chat\",\"ts\":1.5}", "ts"},
		{"{\"v\":1,\"platform\":\"kook\",\"room\":\"1\",\"type\":\"chat\",\"ts\":1e300}", "ts"},
		{"{\"v\":1,\"platform\":\"kook\",\"room\":\"1\",\"type\":\"chat\"}", "ts"},
		{"{\"v\":1,\"platform\":\"kook\",\"type\":\"chat\",\"ts\":1}", "room"},
		{"{\"v\":1,\"platform\":\"kook\",\"room\":5,\"type\":\"chat\",\"ts\":1}", "room"},
		{long_room, "room"},
		{long_content, "content"},
		{"{\"v\":1," BASE ",\"msg_id\":5}", "msg_id"},
		{"{\"v\":1," BASE ",\"user\":\"x\"}", "user"},
		{"{\"v\":1," BASE ",\"user\":{\"id\":5}}", "user.id"},
		{"{\"v\":1," BASE ",\"user\":{\"id\":\"1\",\"name\":[]}}", "user.name"},
		{"{\"v\":1," BASE ",\"content\":null}", "content"},
		{"{\"v\":1," BASE ",\"extra\":[]}", "extra"},
		{"{\"v\":1," BASE ",\"extra\":\"{}\"}", "extra"},
		{"{\"v\":1," BASE ",\"extra\":{\"a\":\"\\u0000\"}}", "extra"},
		{"{\"v\":1," BASE ",\"extra\":{\"a\":01}}", "extra"},
		{"{\"v\":1," BASE "} x", NULL},
	};
#undef BASE
	struct lt_arena a;
	lt_arena_init(&a, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct lt_msg m;
		memset(&m, 0xAB, sizeof(m));
		struct lt_error e = {0};
		int rc = lt_json_msg_parse(cases[i].in, strlen(cases[i].in), &a, &m, &e);
		ck_assert_msg(rc == LT_EINVAL, "case %zu accepted: %s", i, cases[i].in);
		ck_assert_int_eq(e.code, LT_EINVAL);
		ck_assert_uint_eq(m.platform, 0xAB); /* untouched on failure */
		if (cases[i].field) {
			char want[64];
			snprintf(want, sizeof(want), "%s: ", cases[i].field);
			ck_assert_msg(strncmp(e.message, want, strlen(want)) == 0, "case %zu: message '%s' should name %s",
				      i, e.message, cases[i].field);
			snprintf(want, sizeof(want), "\"field\":\"%s\"", cases[i].field);
			ck_assert_str_eq(e.details, want);
		}
		/* e may be NULL */
		ck_assert_int_eq(lt_json_msg_parse(cases[i].in, strlen(cases[i].in), &a, &m, NULL), LT_EINVAL);
	}
	lt_arena_free(&a);
}
END_TEST

START_TEST(parse_arena_limit)
{
	struct lt_arena a;
	lt_arena_init(&a, 16);
	struct lt_msg m;
	struct lt_error e = {0};
	const char *s = "{\"v\":1,\"platform\":\"kook\",\"room\":\"1\",\"type\":\"chat\",\"ts\":1,"
			"\"content\":\"more than sixteen bytes of text\"}";
	ck_assert_int_eq(lt_json_msg_parse(s, strlen(s), &a, &m, &e), LT_ENOMEM);
	lt_arena_free(&a);
}
END_TEST

static Suite *json_suite(void)
{
	Suite *s = suite_create("json");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, contract_form);
	tcase_add_test(tc, buffer_limit_sticks);
	tcase_add_test(tc, escaping);
	tcase_add_test(tc, utf8_repair_cases);
	tcase_add_test(tc, utf8_random_against_reference);
	tcase_add_test(tc, escape_random_against_reference);
	tcase_add_test(tc, ts_random_against_printf);
	tcase_add_test(tc, extra_kept_or_replaced);
	tcase_add_test(tc, extra_flat_same_as_full_pass);
	tcase_add_test(tc, extra_normal_same_as_checked);
	tcase_add_test(tc, extra_depth);
	tcase_add_test(tc, parse_roundtrip_random);
	tcase_add_test(tc, parse_fills_fields);
	tcase_add_test(tc, parse_bad_shapes);
	tcase_add_test(tc, parse_arena_limit);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	const char *s = getenv("LT_TEST_SEED");
	uint64_t seed = s && *s ? strtoull(s, NULL, 0) : ((uint64_t)time(NULL) << 16) ^ (uint64_t)getpid();
	rng_state = seed;
	printf("test_json: seed %" PRIu64 " (replay with LT_TEST_SEED=%" PRIu64 ")\n", seed, seed);
	fflush(stdout);
	return lt_test_run_suite(json_suite());
}
