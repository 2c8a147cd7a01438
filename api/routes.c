/* SPDX-License-Identifier: MIT */
/*
 * routes: the URL table and parameter validation (see routes.h).
 */
#include "api/routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TS_MAX_MS 253402300799000LL

static const struct lt_route routes[] = {
    {LT_R_STATIC, "static", NULL, LT_ROLE_NONE, false}, /* the page holds no data */
    {LT_R_HEALTHZ, "healthz", lt_h_healthz, LT_ROLE_NONE, false},
    {LT_R_METRICS, "metrics", NULL, LT_ROLE_READ, false},
    {LT_R_OPENAPI, "openapi", NULL, LT_ROLE_NONE, false},
    {LT_R_LOGIN, "login", lt_h_login, LT_ROLE_NONE, true},
    {LT_R_ROOMS_LIST, "rooms", lt_h_rooms_list, LT_ROLE_READ, false},
    {LT_R_ROOMS_ADD, "rooms_add", lt_h_rooms_add, LT_ROLE_WRITE, true},
    {LT_R_ROOMS_DEL, "rooms_delete", lt_h_rooms_del, LT_ROLE_WRITE, false},
    {LT_R_STATUS, "status", lt_h_status, LT_ROLE_READ, false},
    {LT_R_MESSAGES, "messages", lt_h_messages, LT_ROLE_READ, false},
    {LT_R_HOTWORDS, "hotwords", lt_h_hotwords, LT_ROLE_READ, false},
    {LT_R_USERS, "users", lt_h_users, LT_ROLE_READ, false},
    {LT_R_SESSIONS, "sessions", lt_h_sessions, LT_ROLE_READ, false},
    {LT_R_EXPORT, "export", lt_h_export, LT_ROLE_READ, false},
    {LT_R_LIVE, "live", NULL, LT_ROLE_READ, false},
    {LT_R_BACKUP, "backup", lt_h_backup, LT_ROLE_WRITE, false},
    {LT_R_RETENTION, "retention", lt_h_retention, LT_ROLE_WRITE, true},
};

static const struct lt_route *route(int id)
{
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
		if (routes[i].id == id)
			return &routes[i];
	return NULL;
}

bool lt_route_platform_ok(const char *s)
{
	return !strcmp(s, "bilibili") || !strcmp(s, "douyin") || !strcmp(s, "kook");
}

bool lt_route_room_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > LT_API_ROOM_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

static const char *const msg_types[] = {"chat",	    "gift",	 "like",  "enter",	"follow",
					"share",    "superchat", "guard", "room_stats", "live_start",
					"live_end", "other",	 NULL};

static int bad(struct lt_error *e, const char *key, const char *msg)
{
	lt_error_set(e, LT_EINVAL, "%s", msg);
	if (key)
		lt_error_detail(e, "parameter", key);
	return 400;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* A non-negative decimal integer of at most 15 digits. */
static bool parse_int(const char *s, int64_t *out)
{
	size_t n = strlen(s);
	if (n == 0 || n > 15)
		return false;
	int64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* cursor=TS-HEX: the (ts, msg_id) of the last message of the previous page,
 * the id hex-encoded (so any id survives a URL and nothing else gets in). */
static int parse_cursor(const char *v, struct lt_req *q)
{
	const char *dash = strchr(v, '-');
	char ts[24];
	if (!dash || (size_t)(dash - v) >= sizeof ts)
		return -1;
	memcpy(ts, v, (size_t)(dash - v));
	ts[dash - v] = '\0';
	int64_t t;
	if (!parse_int(ts, &t) || t > TS_MAX_MS)
		return -1;
	const char *h = dash + 1;
	size_t n = strlen(h);
	if (n == 0 || n % 2 || n / 2 >= sizeof q->cursor_id)
		return -1;
	for (size_t i = 0; i < n; i += 2) {
		int hi = hexval(h[i]), lo = hexval(h[i + 1]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
			return -1;
		q->cursor_id[i / 2] = (char)(hi << 4 | lo);
	}
	q->cursor_id[n / 2] = '\0';
	q->cursor_ts = t;
	q->has_cursor = true;
	return 0;
}

/* Which query parameters a route takes ("" ends a list). */
static bool allowed(int id, const char *k)
{
	static const struct {
		int id;
		const char *keys[7];
	} t[] = {
	    {LT_R_ROOMS_LIST, {"limit"}},
	    {LT_R_ROOMS_DEL, {"purge"}},
	    {LT_R_MESSAGES, {"since", "until", "type", "limit", "before", "cursor"}},
	    {LT_R_HOTWORDS, {"window", "limit"}},
	    {LT_R_USERS, {"order", "limit"}},
	    {LT_R_SESSIONS, {"since", "until", "limit", "before"}},
	    {LT_R_EXPORT, {"format", "since", "until", "type"}},
	    {LT_R_LIVE, {"token"}},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		if (t[i].id != id)
			continue;
		for (int k2 = 0; k2 < 7 && t[i].keys[k2]; k2++)
			if (!strcmp(t[i].keys[k2], k))
				return true;
	}
	return false;
}

static int parse_args(int id, char *const *args, int nargs, struct lt_req *q, struct lt_error *e)
{
	bool have_limit = false;
	for (int i = 0; i < nargs; i++) {
		char kbuf[32];
		const char *eq = strchr(args[i], '=');
		size_t kl = eq ? (size_t)(eq - args[i]) : strlen(args[i]);
		const char *v = eq ? eq + 1 : "";
		if (kl == 0 || kl >= sizeof kbuf)
			return bad(e, NULL, "bad query parameter");
		memcpy(kbuf, args[i], kl);
		kbuf[kl] = '\0';
		if (!allowed(id, kbuf))
			return bad(e, kbuf, "unknown query parameter for this endpoint");
		int64_t n = 0;
		if (!strcmp(kbuf, "limit")) {
			if (!parse_int(v, &n) || n < 1 || n > LT_API_LIMIT_MAX)
				return bad(e, kbuf, "limit must be an integer in 1..1000");
			q->limit = (int)n;
			have_limit = true;
		} else if (!strcmp(kbuf, "since") || !strcmp(kbuf, "until") || !strcmp(kbuf, "before")) {
			if (!parse_int(v, &n) || n > TS_MAX_MS)
				return bad(e, kbuf,
					   "since, until and before are milliseconds since the epoch");
			if (kbuf[0] == 's')
				q->since = n;
			else if (kbuf[0] == 'u')
				q->until = n;
			else
				q->before = n;
		} else if (!strcmp(kbuf, "cursor")) {
			if (parse_cursor(v, q) != 0)
				return bad(e, kbuf,
					   "cursor must be a next_cursor value from an earlier page");
		} else if (!strcmp(kbuf, "type")) {
			bool ok = false;
			for (int t = 0; msg_types[t]; t++)
				ok |= !strcmp(v, msg_types[t]);
			if (!ok)
				return bad(e, kbuf,
					   "type must be one of chat, gift, like, enter, follow, share, "
					   "superchat, guard, room_stats, live_start, live_end, other");
			snprintf(q->type, sizeof q->type, "%s", v);
		} else if (!strcmp(kbuf, "window")) {
			if (strcmp(v, "1m") && strcmp(v, "5m") && strcmp(v, "30m"))
				return bad(e, kbuf, "window must be 1m, 5m or 30m");
			snprintf(q->window, sizeof q->window, "%s", v);
		} else if (!strcmp(kbuf, "order")) {
			if (strcmp(v, "messages") && strcmp(v, "gift_value"))
				return bad(e, kbuf, "order must be messages or gift_value");
			snprintf(q->order, sizeof q->order, "%s", v);
		} else if (!strcmp(kbuf, "format")) {
			if (strcmp(v, "csv") && strcmp(v, "jsonl"))
				return bad(e, kbuf, "format must be csv or jsonl");
			snprintf(q->format, sizeof q->format, "%s", v);
		} else if (!strcmp(kbuf, "purge")) {
			if (strcmp(v, "true") && strcmp(v, "false") && strcmp(v, "1") && strcmp(v, "0"))
				return bad(e, kbuf, "purge must be true or false");
			q->purge = v[0] == 't' || v[0] == '1';
		}
		/* token: read by http.c for WebSocket auth */
	}
	if (q->since >= q->until)
		return bad(e, "since", "since must be before until");
	if (!have_limit)
		q->limit = id == LT_R_MESSAGES	   ? 100
			   : id == LT_R_ROOMS_LIST ? 1000
			   : id == LT_R_SESSIONS   ? 50
						   : 20;
	if (!q->window[0])
		snprintf(q->window, sizeof q->window, "1m");
	if (!q->order[0])
		snprintf(q->order, sizeof q->order, "messages");
	if (!q->format[0])
		snprintf(q->format, sizeof q->format, "jsonl");
	return 0;
}

/* See routes.h. */
int lt_route_match(int method, const char *path, char *const *args, int nargs, struct lt_req *req,
		   const struct lt_route **out, struct lt_error *e)
{
	int id = 0;
	char seg[6][80];
	int ns = 0;
	req->method = method;
	if (strlen(path) > 512)
		return (void)bad(e, NULL, "the path is too long"), 414;
	/* Split /a/b/c into at most 6 segments of < 80 bytes. */
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *s = p;
		while (*p && *p != '/')
			p++;
		size_t n = (size_t)(p - s);
		if (ns == 6 || n >= sizeof seg[0]) {
			lt_error_set(e, LT_ENOTFOUND, "no such endpoint");
			return 404;
		}
		memcpy(seg[ns], s, n);
		seg[ns][n] = '\0';
		ns++;
	}
	bool api = ns >= 2 && !strcmp(seg[0], "api") && !strcmp(seg[1], "v1");
	if (!api) {
		if (ns == 1 && !strcmp(seg[0], "healthz"))
			id = LT_R_HEALTHZ;
		else if (ns == 1 && !strcmp(seg[0], "metrics"))
			id = LT_R_METRICS;
		else
			id = LT_R_STATIC;
		if (method != LT_M_GET && method != LT_M_HEAD) {
			lt_error_set(e, LT_EINVAL, "method not allowed");
			return 405;
		}
	} else if (ns == 3 && !strcmp(seg[2], "openapi.json")) {
		id = LT_R_OPENAPI;
	} else if (ns == 4 && !strcmp(seg[2], "auth") && !strcmp(seg[3], "login")) {
		id = LT_R_LOGIN;
	} else if (ns == 4 && !strcmp(seg[2], "admin") && !strcmp(seg[3], "backup")) {
		id = LT_R_BACKUP;
	} else if (ns == 4 && !strcmp(seg[2], "admin") && !strcmp(seg[3], "retention")) {
		id = LT_R_RETENTION;
	} else if (ns == 3 && !strcmp(seg[2], "rooms")) {
		id = method == LT_M_POST ? LT_R_ROOMS_ADD : LT_R_ROOMS_LIST;
	} else if ((ns == 5 || ns == 6) && !strcmp(seg[2], "rooms")) {
		if (!lt_route_platform_ok(seg[3])) {
			lt_error_set(e, LT_EINVAL, "platform must be bilibili, douyin or kook");
			lt_error_detail(e, "parameter", "platform");
			return 400;
		}
		if (!lt_route_room_ok(seg[4])) {
			lt_error_set(e, LT_EINVAL, "room must be 1..64 characters of A-Z a-z 0-9 _ -");
			lt_error_detail(e, "parameter", "room");
			return 400;
		}
		/* Both checked above: 8 and 64 bytes at most. */
		memcpy(req->platform, seg[3], strlen(seg[3]) + 1);
		memcpy(req->room, seg[4], strlen(seg[4]) + 1);
		if (ns == 5) {
			id = LT_R_ROOMS_DEL;
			if (method != LT_M_DELETE) {
				lt_error_set(e, LT_EINVAL, "method not allowed");
				return 405;
			}
		} else {
			static const struct {
				const char *name;
				int id;
			} sub[] = {{"status", LT_R_STATUS},	{"messages", LT_R_MESSAGES},
				   {"hotwords", LT_R_HOTWORDS}, {"users", LT_R_USERS},
				   {"sessions", LT_R_SESSIONS}, {"export", LT_R_EXPORT},
				   {"live", LT_R_LIVE}};
			for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++)
				if (!strcmp(seg[5], sub[i].name))
					id = sub[i].id;
		}
	}
	if (!id) {
		lt_error_set(e, LT_ENOTFOUND, "no such endpoint");
		return 404;
	}
	const struct lt_route *r = route(id);
	bool write = r->need == LT_ROLE_WRITE || id == LT_R_LOGIN;
	if (api && id != LT_R_ROOMS_DEL &&
	    ((write && method != LT_M_POST) || (!write && method != LT_M_GET && method != LT_M_HEAD))) {
		lt_error_set(e, LT_EINVAL, "method not allowed");
		return 405;
	}
	int st = id == LT_R_STATIC ? 0 : parse_args(id, args, nargs, req, e);
	if (st)
		return st;
	req->route = id;
	*out = r;
	return 0;
}
