/* SPDX-License-Identifier: MIT */
/*
 * fortune: the 抽签 plugin. A chat message whose text is "抽签" draws the
 * user's fortune for the day (Beijing time): a deterministic pick from a
 * fixed table by an FNV-1a hash of room, user id and day, so every processor
 * and every redelivery draws the same. The answer is a normalized message of
 * type "other" with extra {"plugin":"fortune",...}, PUBLISHed on the room
 * channel at most once per user and day (marker live:{ROOM}:fortune:UID:DAY,
 * two days).
 */
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"
#include "processor/plugin.h"

#define FORTUNE_TTL_S (2 * 86400)
#define DAY_MS 86400000LL
#define UTC8_MS (8 * 3600000LL)

static const struct {
	const char *lot;
	const char *advice;
} table[] = {
	{"大吉", "宜开播，宜上舰"}, {"中吉", "宜发弹幕，宜三连"}, {"小吉", "宜摸鱼，忌熬夜"},
	{"吉", "宜签到，宜白嫖"},   {"末吉", "宜早睡，忌上头"},   {"凶", "忌抽卡，忌破防"},
	{"大凶", "今天就别氪了"},
};
#define NLOTS (sizeof(table) / sizeof(table[0]))

static uint32_t fnv(uint32_t h, const void *p, size_t n)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 16777619u;
	return h;
}

static int fo_on_message(void *state, struct lt_proc_msg *pm, struct lt_ops *o)
{
	const struct lt_msg *m = pm->m;
	struct lt_buf out = LT_BUF_INIT, extra = LT_BUF_INIT, text = LT_BUF_INIT;
	struct lt_msg r = {0};
	char marker[48 + LT_MSG_USER_ID_MAX], id[48 + LT_MSG_USER_ID_MAX];
	long long day;
	uint32_t h;
	size_t k;
	int rc;

	(void)state;
	if (m->type != LT_MSG_CHAT || (m->flags & LT_MSGF_ANONYMOUS) || m->user_id.len == 0 ||
	    memchr(m->user_id.p, '\0', m->user_id.len) || m->content.len < 6 ||
	    m->content.len > 16)
		return LT_OK;
	{
		/* the text, trimmed, must be exactly 抽签 */
		size_t b = 0, e = m->content.len;
		while (b < e && m->content.p[b] == ' ')
			b++;
		while (e > b && m->content.p[e - 1] == ' ')
			e--;
		if (e - b != strlen("抽签") || memcmp(m->content.p + b, "抽签", e - b) != 0)
			return LT_OK;
	}
	day = (long long)((pm->ts + UTC8_MS) / DAY_MS);
	h = fnv(2166136261u, pm->room, strlen(pm->room));
	h = fnv(h, "|", 1);
	h = fnv(h, m->user_id.p, m->user_id.len);
	h = fnv(h, &day, sizeof(day));
	k = h % NLOTS;
	snprintf(marker, sizeof(marker), "fortune:%.*s:%lld", (int)m->user_id.len, m->user_id.p, day);
	snprintf(id, sizeof(id), "fortune:%.*s:%lld", (int)m->user_id.len, m->user_id.p, day);
	lt_buf_printf(&text, "@%.*s 今日运势：%s（%s）", (int)m->user_name.len, m->user_name.p ? m->user_name.p : "",
		      table[k].lot, table[k].advice);
	lt_buf_puts(&extra, "{\"plugin\":\"fortune\",\"fortune\":");
	lt_json_str(&extra, table[k].lot, strlen(table[k].lot));
	lt_buf_printf(&extra, ",\"day\":%lld,\"for\":", day);
	lt_json_str(&extra, m->user_id.p, m->user_id.len);
	lt_buf_putc(&extra, '}');
	rc = lt_buf_err(&text) ? lt_buf_err(&text) : lt_buf_err(&extra);
	if (rc != LT_OK)
		goto out;
	r.platform = m->platform;
	r.type = LT_MSG_OTHER;
	r.ts = pm->ts;
	r.room = m->room;
	r.msg_id = lt_str_c(id);
	r.user_id = m->user_id;
	r.user_name = m->user_name;
	r.content = (struct lt_str){(const char *)text.data, (uint32_t)text.len};
	r.extra = (struct lt_str){(const char *)extra.data, (uint32_t)extra.len};
	rc = lt_json_msg(&out, &r);
	if (rc == LT_OK)
		rc = lt_ops_once(o, pm, marker, FORTUNE_TTL_S, (const char *)out.data, (uint32_t)out.len);
out:
	lt_buf_free(&out);
	lt_buf_free(&extra);
	lt_buf_free(&text);
	return rc;
}

static const char *const fo_deps[] = {"userstats", NULL};

const struct lt_plugin lt_plugin_fortune = {
	.name = "fortune",
	.priority = 80,
	.depends_on = fo_deps,
	.on_message = fo_on_message,
};
