/* SPDX-License-Identifier: MIT */
/* msg: names, limits and synthetic ids for the LiveMessage (see msg.h). */
#include "common/msg.h"

#include <stdio.h>
#include <string.h>

static const char *const platform_names[LT_PLATFORM_COUNT] = {
	[LT_PLATFORM_UNKNOWN] = "unknown",
	[LT_PLATFORM_BILIBILI] = "bilibili",
	[LT_PLATFORM_DOUYIN] = "douyin",
	[LT_PLATFORM_KOOK] = "kook",
};

static const char *const type_names[LT_MSG_TYPE_COUNT] = {
	[LT_MSG_CHAT] = "chat",
	[LT_MSG_GIFT] = "gift",
	[LT_MSG_LIKE] = "like",
	[LT_MSG_ENTER] = "enter",
	[LT_MSG_FOLLOW] = "follow",
	[LT_MSG_SHARE] = "share",
	[LT_MSG_SUPERCHAT] = "superchat",
	[LT_MSG_GUARD] = "guard",
	[LT_MSG_ROOM_STATS] = "room_stats",
	[LT_MSG_LIVE_START] = "live_start",
	[LT_MSG_LIVE_END] = "live_end",
	[LT_MSG_OTHER] = "other",
};

const char *lt_platform_name(int platform)
{
	if (platform <= 0 || platform >= LT_PLATFORM_COUNT)
		return "unknown";
	return platform_names[platform];
}

int lt_platform_parse(const char *name, size_t len)
{
	for (int i = 1; i < LT_PLATFORM_COUNT; i++)
		if (strlen(platform_names[i]) == len && memcmp(platform_names[i], name, len) == 0)
			return i;
	return LT_PLATFORM_UNKNOWN;
}

const char *lt_msg_type_name(int type)
{
	if (type < 0 || type >= LT_MSG_TYPE_COUNT)
		return "other";
	return type_names[type];
}

int lt_msg_type_parse(const char *name, size_t len)
{
	for (int i = 0; i < LT_MSG_TYPE_COUNT; i++)
		if (strlen(type_names[i]) == len && memcmp(type_names[i], name, len) == 0)
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

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= 0x100000001b3ULL;
	}
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
	/* ts in decimal as "%lld" writes it, digits formed from the end */
	char ts[24];
	char *t = ts + sizeof(ts);
	uint64_t u = m->ts < 0 ? (uint64_t)0 - (uint64_t)m->ts : (uint64_t)m->ts;
	do {
		*--t = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (m->ts < 0)
		*--t = '-';
	h = fnv1a(h, t, (size_t)(ts + sizeof(ts) - t));
	h = fnv1a(h, &sep, 1);
	h = fnv1a(h, &m->type, 1);
	h = fnv1a(h, m->content.p, m->content.len);
	/* "%016llx": 16 lowercase hex digits */
	static const char hex[16] = "0123456789abcdef";
	for (int i = 15; i >= 0; i--, h >>= 4)
		out[i] = hex[h & 15];
	out[16] = '\0';
}
