/* SPDX-License-Identifier: MIT */
/*
 * checkin: the 签到 plugin. A chat message whose text is "签到" (white space
 * around it ignored) checks its user in for the day (Beijing time, UTC+8,
 * since the platforms are Chinese): live:{ROOM}:checkin:UID holds last_day
 * (days since the epoch), streak (consecutive days) and count (days checked
 * in), kept 40 days. Several check-ins on one day count once; the script
 * does the day arithmetic so that it is atomic and exactly once.
 */
#include <stdio.h>
#include <string.h>

#include "processor/plugin.h"

#define CHECKIN_TTL_S (40 * 86400)
#define DAY_MS 86400000LL
#define UTC8_MS (8 * 3600000LL)

static int is_word(const struct lt_str *s, const char *w)
{
	size_t b = 0, e = s->len, n = strlen(w);

	while (b < e && (s->p[b] == ' ' || s->p[b] == '\t' || s->p[b] == '\n' || s->p[b] == '\r'))
		b++;
	while (e > b && (s->p[e - 1] == ' ' || s->p[e - 1] == '\t' || s->p[e - 1] == '\n' || s->p[e - 1] == '\r'))
		e--;
	return e - b == n && memcmp(s->p + b, w, n) == 0;
}

static int ck_on_message(void *state, struct lt_proc_msg *pm, struct lt_ops *o)
{
	const struct lt_msg *m = pm->m;
	char key[16 + LT_MSG_USER_ID_MAX];

	(void)state;
	if (m->type != LT_MSG_CHAT || (m->flags & LT_MSGF_ANONYMOUS) || m->user_id.len == 0 ||
	    memchr(m->user_id.p, '\0', m->user_id.len) || !is_word(&m->content, "签到"))
		return LT_OK;
	snprintf(key, sizeof(key), "checkin:%.*s", (int)m->user_id.len, m->user_id.p);
	return lt_ops_checkin(o, pm, key, (pm->ts + UTC8_MS) / DAY_MS, CHECKIN_TTL_S);
}

static const char *const ck_deps[] = {"userstats", NULL};

const struct lt_plugin lt_plugin_checkin = {
	.name = "checkin",
	.priority = 70,
	.depends_on = ck_deps,
	.on_message = ck_on_message,
};
