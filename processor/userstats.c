/* SPDX-License-Identifier: MIT */
/*
 * userstats: per-user counters as ops (see userstats.h).
 */
#include "processor/userstats.h"

#include <string.h>

static int us_on_message(void *state, struct lt_proc_msg *pm, struct lt_ops *o)
{
	const struct lt_msg *m = pm->m;
	char key[16 + LT_MSG_USER_ID_MAX], uid[LT_MSG_USER_ID_MAX + 1], name[LT_MSG_USER_NAME_MAX + 1];
	int64_t cnt = m->count > 0 ? m->count : 1;
	const int ttl = LT_USERSTATS_TTL_S;
	int rc = LT_OK;

	(void)state;
	if ((m->flags & LT_MSGF_ANONYMOUS) || m->user_id.len == 0 || m->user_id.len > LT_MSG_USER_ID_MAX)
		return LT_OK;
	/* memcpy, not snprintf: this runs for every message */
	memcpy(uid, m->user_id.p, m->user_id.len);
	uid[m->user_id.len] = '\0';
	if (memchr(uid, '\0', m->user_id.len))
		return LT_OK; /* an id with a NUL byte cannot be a key we can name */
	memcpy(key, "user:", 5);
	memcpy(key + 5, uid, m->user_id.len + 1);
	switch (m->type) {
	case LT_MSG_CHAT:
	case LT_MSG_SUPERCHAT:
		rc |= lt_ops_hincr(o, pm, key, "messages", 1, ttl);
		rc |= lt_ops_zmirror(o, pm, "user_stats", uid, key, "messages", ttl);
		if (m->type == LT_MSG_SUPERCHAT && m->value > 0)
			rc |= lt_ops_hincr(o, pm, key, "gift_value", m->value, ttl);
		break;
	case LT_MSG_GIFT:
	case LT_MSG_GUARD:
		rc |= lt_ops_hincr(o, pm, key, "gifts", cnt, ttl);
		if (m->value > 0)
			rc |= lt_ops_hincr(o, pm, key, "gift_value", m->value, ttl);
		break;
	case LT_MSG_LIKE:
		rc |= lt_ops_hincr(o, pm, key, "likes", cnt, ttl);
		break;
	default:
		break;
	}
	if (m->user_name.len) {
		size_t nl = m->user_name.len < LT_MSG_USER_NAME_MAX ? m->user_name.len : LT_MSG_USER_NAME_MAX;
		memcpy(name, m->user_name.p, nl);
		name[nl] = '\0';
		rc |= lt_ops_hset(o, pm, key, "name", name, ttl);
	}
	rc |= lt_ops_hmin(o, pm, key, "first_seen", pm->ts, ttl);
	rc |= lt_ops_hmax(o, pm, key, "last_seen", pm->ts, ttl);
	return rc ? LT_ENOMEM : LT_OK;
}

const struct lt_plugin lt_plugin_userstats = {
	.name = "userstats",
	.priority = 60,
	.on_message = us_on_message,
};
