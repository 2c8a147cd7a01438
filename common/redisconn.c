/* SPDX-License-Identifier: MIT */
/*
 * redisconn: URL parsing and the connect/AUTH/SELECT sequence for hiredis
 * 0.14 (which has no redisOptions: redisConnectWithTimeout and
 * redisConnectUnixWithTimeout, then redisSetTimeout for commands). The parser
 * works on a bounded copy of the URL; nothing outlives the call but the
 * context handed to the caller.
 */
#include "common/redisconn.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define URL_MAX 1024

struct rurl {
	bool unix_sock;
	char host[256]; /* host, or the socket path */
	int port;
	int db;
	char user[128];
	char pass[256];
};

static int parse_db(const char *s, size_t n, int *db)
{
	if (n == 0 || n > 4)
		return LT_EINVAL;
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return LT_EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*db = v;
	return LT_OK;
}

static int copy_part(char *dst, size_t cap, const char *s, size_t n)
{
	if (n >= cap)
		return LT_EINVAL;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return LT_OK;
}

/* unix:///path[?db=N][&password=P] */
static int parse_unix(const char *rest, struct rurl *u)
{
	u->unix_sock = true;
	if (rest[0] != '/')
		return LT_EINVAL;
	const char *q = strchr(rest, '?');
	size_t pl = q ? (size_t)(q - rest) : strlen(rest);
	if (pl < 2 || copy_part(u->host, sizeof u->host, rest, pl))
		return LT_EINVAL;
	while (q && *q) {
		const char *param = q + 1;
		const char *amp = strchr(param, '&');
		size_t n = amp ? (size_t)(amp - param) : strlen(param);
		if (n > 3 && !strncmp(param, "db=", 3)) {
			if (parse_db(param + 3, n - 3, &u->db))
				return LT_EINVAL;
		} else if (n > 9 && !strncmp(param, "password=", 9)) {
			if (copy_part(u->pass, sizeof u->pass, param + 9, n - 9))
				return LT_EINVAL;
		} else {
			return LT_EINVAL;
		}
		q = amp;
	}
	return LT_OK;
}

/* redis://[[user]:password@]host[:port][/db] */
static int parse_tcp(const char *rest, struct rurl *u)
{
	const char *at = strrchr(rest, '@');
	const char *hp = rest;
	if (at) {
		const char *colon = memchr(rest, ':', (size_t)(at - rest));
		if (!colon)
			return LT_EINVAL;
		if (copy_part(u->user, sizeof u->user, rest, (size_t)(colon - rest)) ||
		    copy_part(u->pass, sizeof u->pass, colon + 1, (size_t)(at - colon - 1)))
			return LT_EINVAL;
		hp = at + 1;
	}
	const char *slash = strchr(hp, '/');
	size_t hpl = slash ? (size_t)(slash - hp) : strlen(hp);
	if (slash && slash[1] && parse_db(slash + 1, strlen(slash + 1), &u->db))
		return LT_EINVAL;
	const char *portp = NULL;
	if (hpl > 0 && hp[0] == '[') {
		const char *close = memchr(hp, ']', hpl);
		if (!close || copy_part(u->host, sizeof u->host, hp + 1, (size_t)(close - hp - 1)))
			return LT_EINVAL;
		if (close + 1 < hp + hpl) {
			if (close[1] != ':')
				return LT_EINVAL;
			portp = close + 2;
		}
	} else {
		const char *colon = memchr(hp, ':', hpl);
		size_t hl = colon ? (size_t)(colon - hp) : hpl;
		if (copy_part(u->host, sizeof u->host, hp, hl))
			return LT_EINVAL;
		if (colon)
			portp = colon + 1;
	}
	if (!u->host[0])
		return LT_EINVAL;
	u->port = 6379;
	if (portp) {
		size_t n = (size_t)(hp + hpl - portp);
		int v = 0;
		if (n == 0 || n > 5)
			return LT_EINVAL;
		for (size_t i = 0; i < n; i++) {
			if (portp[i] < '0' || portp[i] > '9')
				return LT_EINVAL;
			v = v * 10 + (portp[i] - '0');
		}
		if (v < 1 || v > 65535)
			return LT_EINVAL;
		u->port = v;
	}
	return LT_OK;
}

static int parse_url(const char *url, struct rurl *u)
{
	memset(u, 0, sizeof *u);
	if (!url || strlen(url) >= URL_MAX)
		return LT_EINVAL;
	if (!strncmp(url, "redis://", 8))
		return parse_tcp(url + 8, u);
	if (!strncmp(url, "unix://", 7))
		return parse_unix(url + 7, u);
	return LT_EINVAL;
}

void lt_redis_url_redact(const char *url, char *out, size_t cap)
{
	if (!cap)
		return;
	if (!url) {
		snprintf(out, cap, "(null)");
		return;
	}
	const char *at = !strncmp(url, "redis://", 8) ? strrchr(url, '@') : NULL;
	const char *colon = at ? memchr(url + 8, ':', (size_t)(at - url - 8)) : NULL;
	const char *pw = strstr(url, "password=");
	if (colon) {
		snprintf(out, cap, "%.*s:***%s", (int)(colon - url), url, at);
	} else if (pw) {
		const char *amp = strchr(pw, '&');
		snprintf(out, cap, "%.*spassword=***%s", (int)(pw - url), url, amp ? amp : "");
	} else {
		snprintf(out, cap, "%s", url);
	}
}

static int reply_ok(redisContext *c, redisReply *r, int fail_code, const char *what, const char *shown,
		    struct lt_error *e)
{
	if (!r) {
		int code = c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == ETIMEDOUT) ? LT_ETIMEDOUT
											     : LT_ECONN;
		return lt_error_set(e, code, "redis %s: %s failed: %s", shown, what, c->errstr);
	}
	int rc = LT_OK;
	if (r->type == REDIS_REPLY_ERROR)
		rc = lt_error_set(e, fail_code, "redis %s: %s: %.*s", shown, what, (int)r->len, r->str);
	freeReplyObject(r);
	return rc;
}

/* See redisconn.h. */
int lt_redis_connect(const char *url, int timeout_ms, redisContext **out, struct lt_error *e)
{
	char shown[URL_MAX + 8];
	lt_redis_url_redact(url, shown, sizeof shown);
	struct rurl u;
	if (parse_url(url, &u) != LT_OK) {
		lt_error_set(e, LT_EINVAL,
			     "redis.url: bad URL '%.200s': expected redis://[:password@]host[:port][/db] or "
			     "unix:///path[?db=N]",
			     shown);
		lt_error_detail(e, "key", "redis.url");
		return LT_EINVAL;
	}
	if (timeout_ms <= 0)
		timeout_ms = 2000;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	redisContext *c = u.unix_sock ? redisConnectUnixWithTimeout(u.host, tv)
				      : redisConnectWithTimeout(u.host, u.port, tv);
	int rc = LT_OK;
	if (!c)
		return lt_error_set(e, LT_ENOMEM, "redis %s: cannot allocate a context", shown);
	if (c->err) {
		int saved = errno;
		rc = (c->err == REDIS_ERR_IO && (saved == ETIMEDOUT || saved == EINPROGRESS)) ||
			     strstr(c->errstr, "timed out")
			 ? LT_ETIMEDOUT
			 : LT_ECONN;
		lt_error_set(e, rc, "redis %s: cannot connect: %s", shown, c->errstr);
		goto fail;
	}
	if (redisSetTimeout(c, tv) != REDIS_OK) {
		rc = lt_error_set(e, LT_ECONN, "redis %s: cannot set the timeout", shown);
		goto fail;
	}
	if (!u.unix_sock)
		redisEnableKeepAlive(c);
	if (u.pass[0]) {
		redisReply *r = u.user[0] ? redisCommand(c, "AUTH %s %s", u.user, u.pass)
					  : redisCommand(c, "AUTH %s", u.pass);
		if ((rc = reply_ok(c, r, LT_EAUTH, "AUTH", shown, e)))
			goto fail;
	}
	if (u.db != 0) {
		redisReply *r = redisCommand(c, "SELECT %d", u.db);
		if ((rc = reply_ok(c, r, LT_EREDIS, "SELECT", shown, e)))
			goto fail;
	}
	*out = c;
	return LT_OK;
fail:
	redisFree(c);
	return rc;
}
