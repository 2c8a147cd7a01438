/* SPDX-License-Identifier: MIT */
/*
 * sanitize: reject or repair one decoded record (rules in sanitize.h).
 *
 * The common case, a good record, costs one pass over each string (UTF-8
 * and control-byte checks) and allocates nothing.
 */
#include "processor/sanitize.h"

#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/json.h"

/* True if s has no byte below 0x20 and no DEL. */
static int no_controls(struct lt_str s)
{
	for (uint32_t i = 0; i < s.len; i++) {
		uint8_t c = (uint8_t)s.p[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

/* A room id names the {ROOM} hash tag of every key: printable ASCII, no
 * space, no braces. */
static int room_ok(struct lt_str s)
{
	if (s.len == 0)
		return 0;
	for (uint32_t i = 0; i < s.len; i++) {
		uint8_t c = (uint8_t)s.p[i];
		if (c <= 0x20 || c >= 0x7f || c == '{' || c == '}')
			return 0;
	}
	return 1;
}

static int id_ok(struct lt_str s)
{
	return no_controls(s) && lt_utf8_valid(s.p, s.len);
}

/* Replace *s by its UTF-8 repair in arena, cut to max bytes on a code point
 * boundary. Returns LT_OK (with the change bits in *changed) or LT_ENOMEM. */
static int repair(struct lt_str *s, uint32_t max, struct lt_arena *arena, unsigned *changed)
{
	struct lt_buf b = LT_BUF_INIT;
	size_t n;
	char *copy;

	lt_utf8_repair(&b, s->p, s->len);
	if (lt_buf_err(&b)) {
		lt_buf_free(&b);
		return LT_ENOMEM;
	}
	n = b.len;
	if (n > max) {
		n = max;
		while (n > 0 && ((uint8_t)b.data[n] & 0xc0) == 0x80)
			n--;
		*changed |= LT_SANITIZE_TRUNCATED;
	}
	copy = lt_arena_strndup(arena, (const char *)b.data, n);
	lt_buf_free(&b);
	if (!copy)
		return LT_ENOMEM;
	*s = (struct lt_str){copy, (uint32_t)n};
	*changed |= LT_SANITIZE_REPAIRED;
	return LT_OK;
}

/* extra with "repaired" / "truncated": true put in front of its members.
 * An extra that is not an object (lt_json_msg would render it as {}) or
 * would grow past its limit becomes just the flags. */
static int flag_extra(struct lt_str *x, unsigned changed, struct lt_arena *arena)
{
	char flags[48];
	size_t fl = 0, i = 0, rest_len = 0, n;
	const char *rest = NULL;
	char *d;

	if (changed & LT_SANITIZE_REPAIRED) {
		memcpy(flags + fl, "\"repaired\":true", 15);
		fl += 15;
	}
	if (changed & LT_SANITIZE_TRUNCATED) {
		if (fl)
			flags[fl++] = ',';
		memcpy(flags + fl, "\"truncated\":true", 16);
		fl += 16;
	}
	while (i < x->len && (x->p[i] == ' ' || x->p[i] == '\t' || x->p[i] == '\n' || x->p[i] == '\r'))
		i++;
	if (i < x->len && x->p[i] == '{') {
		size_t j = i + 1;
		while (j < x->len &&
		       (x->p[j] == ' ' || x->p[j] == '\t' || x->p[j] == '\n' || x->p[j] == '\r'))
			j++;
		if (j < x->len && x->p[j] != '}') {
			rest = x->p + j;
			rest_len = x->len - j;
		}
	}
	n = 1 + fl + (rest ? 1 + rest_len : 1);
	if (n > LT_MSG_EXTRA_MAX) {
		rest = NULL;
		n = 2 + fl;
	}
	d = lt_arena_alloc(arena, n + 1);
	if (!d)
		return LT_ENOMEM;
	d[0] = '{';
	memcpy(d + 1, flags, fl);
	if (rest) {
		d[1 + fl] = ',';
		memcpy(d + 2 + fl, rest, rest_len);
	} else {
		d[1 + fl] = '}';
	}
	d[n] = '\0';
	*x = (struct lt_str){d, (uint32_t)n};
	return LT_OK;
}

static int reject(const char **why, const char *reason)
{
	*why = reason;
	return LT_EINVAL;
}

int lt_sanitize_msg(struct lt_msg *m, int64_t now_ms, struct lt_arena *arena, unsigned *changed,
		    const char **why)
{
	struct lt_msg t = *m;
	unsigned ch = 0;

	*changed = 0;
	if (t.platform == LT_PLATFORM_UNKNOWN || t.platform >= LT_PLATFORM_COUNT)
		return reject(why, "unknown platform");
	if (t.type >= LT_MSG_TYPE_COUNT)
		return reject(why, "unknown type");
	if (t.ts < LT_SANITIZE_TS_MIN || t.ts > now_ms + LT_SANITIZE_TS_AHEAD_MS)
		return reject(why, "ts out of range");
	if (t.count < 0 || t.count > LT_SANITIZE_AMOUNT_MAX)
		return reject(why, "count out of range");
	if (t.value < 0 || t.value > LT_SANITIZE_AMOUNT_MAX)
		return reject(why, "value out of range");
	if (!room_ok(t.room))
		return reject(why, "bad room id");
	if (!id_ok(t.msg_id))
		return reject(why, "bad msg_id");
	if (!(t.flags & LT_MSGF_ANONYMOUS) && !id_ok(t.user_id))
		return reject(why, "bad user_id");
	if (!lt_utf8_valid(t.user_name.p, t.user_name.len) &&
	    repair(&t.user_name, LT_MSG_USER_NAME_MAX, arena, &ch) != LT_OK)
		return LT_ENOMEM;
	if (!lt_utf8_valid(t.content.p, t.content.len) &&
	    repair(&t.content, LT_MSG_CONTENT_MAX, arena, &ch) != LT_OK)
		return LT_ENOMEM;
	if (ch) {
		if (flag_extra(&t.extra, ch, arena) != LT_OK)
			return LT_ENOMEM;
		if (ch & LT_SANITIZE_REPAIRED)
			t.flags |= LT_MSGF_REPAIRED;
		if (ch & LT_SANITIZE_TRUNCATED)
			t.flags |= LT_MSGF_TRUNCATED;
	}
	*m = t;
	*changed = ch;
	return LT_OK;
}
