/* SPDX-License-Identifier: MIT */
/* msg: names, limits and synthetic ids for the LiveMessage (see msg.h). */
#include "common/msg.h"

#include <stdio.h>
#include <string.h>

/* Names with their lengths, so that the JSON encoder copies them without
 * a strlen per message. */
#define NAME(s) {(s), (uint32_t)sizeof(s) - 1}
static const struct lt_str platform_names[LT_PLATFORM_COUNT] = {
	[LT_PLATFORM_UNKNOWN] = NAME("unknown"),
	[LT_PLATFORM_BILIBILI] = NAME("bilibili"),
	[LT_PLATFORM_DOUYIN] = NAME("douyin"),
	[LT_PLATFORM_KOOK] = NAME("kook"),
};

static const struct lt_str type_names[LT_MSG_TYPE_COUNT] = {
	[LT_MSG_CHAT] = NAME("chat"),
	[LT_MSG_GIFT] = NAME("gift"),
	[LT_MSG_LIKE] = NAME("like"),
	[LT_MSG_ENTER] = NAME("enter"),
	[LT_MSG_FOLLOW] = NAME("follow"),
	[LT_MSG_SHARE] = NAME("share"),
	[LT_MSG_SUPERCHAT] = NAME("superchat"),
	[LT_MSG_GUARD] = NAME("guard"),
	[LT_MSG_ROOM_STATS] = NAME("room_stats"),
	[LT_MSG_LIVE_START] = NAME("live_start"),
	[LT_MSG_LIVE_END] = NAME("live_end"),
	[LT_MSG_OTHER] = NAME("other"),
};

struct lt_str lt_platform_name_str(int platform)
{
	if (platform <= 0 || platform >= LT_PLATFORM_COUNT)
		return platform_names[LT_PLATFORM_UNKNOWN];
	return platform_names[platform];
}

const char *lt_platform_name(int platform) { return lt_platform_name_str(platform).p; }

int lt_platform_parse(const char *name, size_t len)
{
	for (int i = 1; i < LT_PLATFORM_COUNT; i++)
		if (platform_names[i].len == len && memcmp(platform_names[i].p, name, len) == 0)
			return i;
	return LT_PLATFORM_UNKNOWN;
}

struct lt_str lt_msg_type_name_str(int type)
{
	if (type < 0 || type >= LT_MSG_TYPE_COUNT)
		return type_names[LT_MSG_OTHER];
	return type_names[type];
}

const char *lt_msg_type_name(int type) { return lt_msg_type_name_str(type).p; }

int lt_msg_type_parse(const char *name, size_t len)
{
	for (int i = 0; i < LT_MSG_TYPE_COUNT; i++)
		if (type_names[i].len == len && memcmp(type_names[i].p, name, len) == 0)
			return i;
	return -1;
}

bool lt_str_eq(struct lt_str a, struct lt_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

bool lt_str_eqc(struct lt_str a, const char *c)
{
	return lt_str_eq(a, lt_str_c(c));
}

/* Cut s to at most max bytes without splitting a UTF-8 sequence. */
static bool clamp_str(struct lt_str *s, uint32_t max)
{
	if (s->len <= max)
		return false;
	uint32_t n = max;
	/* Step back over continuation bytes (10xxxxxx) to a lead byte, then drop
	 * that lead byte too if its sequence does not fit. */
	while (n > 0 && ((unsigned char)s->p[n] & 0xC0) == 0x80)
		n--;
	s->len = n;
	return true;
}

bool lt_msg_clamp(struct lt_msg *m)
{
	bool cut = false;
	cut |= clamp_str(&m->room, LT_MSG_ROOM_MAX);
	cut |= clamp_str(&m->msg_id, LT_MSG_ID_MAX);
	cut |= clamp_str(&m->user_id, LT_MSG_USER_ID_MAX);
	cut |= clamp_str(&m->user_name, LT_MSG_USER_NAME_MAX);
	cut |= clamp_str(&m->content, LT_MSG_CONTENT_MAX);
	if (m->extra.len > LT_MSG_EXTRA_MAX) {
		m->extra = LT_STR("{\"truncated\":true}");
		cut = true;
	}
	if (cut)
		m->flags |= LT_MSGF_TRUNCATED;
	return cut;
}

/* "00" … "99": two decimal digits per division. */
static const char digits2[201] =
	"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
	"8081828384858687888990919293949596979899";

/* FNV-1a, four bytes per turn of the loop (the same hash, fewer branches:
 * synthetic ids are made for most Bilibili messages). */
static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint64_t prime = 0x100000001b3ULL;
	const unsigned char *c = p;
	size_t i = 0;
	for (; n - i >= 4; i += 4) {
		h = (h ^ c[i]) * prime;
		h = (h ^ c[i + 1]) * prime;
		h = (h ^ c[i + 2]) * prime;
		h = (h ^ c[i + 3]) * prime;
	}
	for (; i < n; i++)
		h = (h ^ c[i]) * prime;
	return h;
}

void lt_msg_synth_id(const struct lt_msg *m, char out[17])
{
	uint64_t h = 0xcbf29ce484222325ULL;
	unsigned char sep = 0x1f;
	h = fnv1a(h, &m->platform, 1);
	h = fnv1a(h, m->room.p, m->room.len);
	h = fnv1a(h, &sep, 1);
	h = fnv1a(h, m->user_id.p, m->user_id.len);
	h = fnv1a(h, &sep, 1);
	/* ts in decimal as "%lld" writes it, digits formed from the end, two
	 * per division (a 13-digit ms time is most of the bytes hashed) */
	char ts[24];
	char *t = ts + sizeof(ts);
	uint64_t u = m->ts < 0 ? (uint64_t)0 - (uint64_t)m->ts : (uint64_t)m->ts;
	while (u >= 100) {
		const char *d = digits2 + 2 * (u % 100);
		u /= 100;
		*--t = d[1];
		*--t = d[0];
	}
	if (u >= 10) {
		*--t = digits2[2 * u + 1];
		*--t = digits2[2 * u];
	} else {
		*--t = (char)('0' + u);
	}
	if (m->ts < 0)
		*--t = '-';
	h = fnv1a(h, t, (size_t)(ts + sizeof(ts) - t));
	h = fnv1a(h, &sep, 1);
	h = fnv1a(h, &m->type, 1);
	h = fnv1a(h, m->content.p, m->content.len);
	/* "%016llx": 16 lowercase hex digits, a byte (two digits) a turn */
	static const char hex[16] = "0123456789abcdef";
	for (int i = 14; i >= 0; i -= 2, h >>= 8) {
		out[i + 1] = hex[h & 15];
		out[i] = hex[(h >> 4) & 15];
	}
	out[16] = '\0';
}
