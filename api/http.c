/* SPDX-License-Identifier: MIT */
/*
 * http: the libwebsockets side of livetap-api (see http.h and api.h).
 *
 * Per request, on the lws thread: method and path, query parameters (each
 * bounded), peer address, credentials (X-API-Key, Authorization: Bearer, or
 * ?token= for the WebSocket, since browsers cannot set its headers), the
 * route and its validation, the rate limit, the role check. Then one of:
 * an error body at once; an embedded file, /metrics or openapi.json at once;
 * a fresh hot-words body from the in-process cache at once; or a job for the
 * pool, whose answer is written from HTTP_WRITEABLE when it comes back.
 * Small responses go out in one lws_write (headers and body together);
 * larger ones in 32 KiB pieces per WRITEABLE; exports as chunked transfer
 * encoding, one queued chunk per WRITEABLE.
 */
#include "api/http.h"

#include <arpa/inet.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/feed.h"
#include "api/ratelimit.h"
#include "api/routes.h"
#include "api/www.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/sig.h"

#define CACHE_SLOTS 1024
#define DIRECT_MAX  (64 * 1024)
#define PIECE	    (32 * 1024)
#define N_ROUTES    (LT_R_RETENTION + 1)

struct cache_ent {
	char key[128];
	int64_t at_ms;
	bool refreshing; /* a background job is computing the next body */
	unsigned char *body;
	size_t len;
};

struct lt_http {
	const struct lt_config *cfg;
	struct lws_context *ctx;
	struct lws_vhost *vh;
	int port;
	bool loopback;
	struct lt_auth *auth;
	struct lt_rl *rl;
	struct lt_rl *rl_login; /* stricter: password guesses per address */
	struct lt_pool *pool;
	struct lt_feed *feed;
	int64_t cache_ms;
	struct cache_ent *cache;
	struct lt_metric *m_req, *m_lat;
	struct lt_series *s_req[N_ROUTES][6];
	struct lt_series *s_lat[N_ROUTES];
	struct lt_series *s_cache_hit, *s_cache_miss, *s_ratelimited;
};

struct pss {
	struct lt_job *job;
	const struct lt_route *route;
	struct lt_feed_client *fc;
	unsigned char *out; /* remainder of a large body */
	size_t out_len, out_off;
	bool head;
	bool body_wait;
	bool hdr_sent;
	char room[96]; /* WebSocket: "platform:room" */
	int64_t start_us;
};

struct resp_opts {
	int retry_after;
	const char *disposition;
	const char *etag;
	const char *cache;
	bool html;
};

static unsigned char sendbuf[LWS_PRE + DIRECT_MAX + 4096];

/* ---- metrics ---------------------------------------------------------- */

static void count(struct lt_http *h, const struct lt_route *r, int status, int64_t start_us)
{
	int id = r ? r->id : 0;
	int cls = status / 100;
	if (cls < 1 || cls > 5)
		cls = 5;
	if (!h->s_req[id][cls]) {
		char c[4] = {(char)('0' + cls), 'x', 'x', 0};
		h->s_req[id][cls] = lt_metrics_series(h->m_req, r ? r->name : "unknown", c);
	}
	lt_metrics_add(h->s_req[id][cls], 1);
	if (start_us) {
		if (!h->s_lat[id])
			h->s_lat[id] = lt_metrics_series(h->m_lat, r ? r->name : "unknown", NULL);
		lt_metrics_observe(h->s_lat[id], (double)(lt_clock_mono_us() - start_us) / 1e6);
	}
}

/* ---- responses -------------------------------------------------------- */

/* Headers for status into sendbuf; returns their length or -1. */
static int headers(struct lws *wsi, int status, const char *ctype, lws_filepos_t len,
		   const struct resp_opts *o, unsigned char **pp, unsigned char *end)
{
	unsigned char *start = *pp;
	if (lws_add_http_common_headers(wsi, (unsigned)status, ctype, len, pp, end))
		return -1;
	static const char nosniff[] = "nosniff";
	if (lws_add_http_header_by_name(wsi, (const unsigned char *)"x-content-type-options:",
					(const unsigned char *)nosniff, sizeof nosniff - 1, pp, end))
		return -1;
	const char *cache = o && o->cache ? o->cache : "no-store";
	if (lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
					(const unsigned char *)cache, (int)strlen(cache), pp, end))
		return -1;
	if (o && o->html) {
		static const char csp[] =
		    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
		    "style-src 'self'; script-src 'self'; frame-ancestors 'none'";
		if (lws_add_http_header_by_name(wsi, (const unsigned char *)"content-security-policy:",
						(const unsigned char *)csp, sizeof csp - 1, pp, end))
			return -1;
	}
	if (o && o->retry_after > 0) {
		char v[16];
		int n = snprintf(v, sizeof v, "%d", o->retry_after);
		if (lws_add_http_header_by_name(
			wsi, (const unsigned char *)"retry-after:", (unsigned char *)v, n, pp, end))
			return -1;
	}
	if (o && o->etag &&
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"etag:", (const unsigned char *)o->etag,
					(int)strlen(o->etag), pp, end))
		return -1;
	if (o && o->disposition && *o->disposition &&
	    lws_add_http_header_by_name(
		wsi, (const unsigned char *)"content-disposition:", (const unsigned char *)o->disposition,
		(int)strlen(o->disposition), pp, end))
		return -1;
	if (lws_finalize_http_header(wsi, pp, end))
		return -1;
	return (int)(*pp - start);
}

/* Send a whole response. Returns what the callback should return. */
static int respond(struct lt_http *h, struct lws *wsi, struct pss *pss, int status, const char *ctype,
		   const void *body, size_t len, const struct resp_opts *o)
{
	unsigned char *p = sendbuf + LWS_PRE, *end = sendbuf + sizeof sendbuf - 1;
	count(h, pss->route, status, pss->start_us);
	pss->start_us = 0;
	int hl = headers(wsi, status, ctype, len, o, &p, end);
	if (hl < 0)
		return -1;
	if (pss->head || status == 304)
		len = 0;
	if (len <= DIRECT_MAX) {
		if (len)
			memcpy(p, body, len);
		if (lws_write(wsi, sendbuf + LWS_PRE, (size_t)hl + len, LWS_WRITE_HTTP_FINAL) < 0)
			return -1;
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	}
	if (lws_write(wsi, sendbuf + LWS_PRE, (size_t)hl, LWS_WRITE_HTTP_HEADERS) < 0)
		return -1;
	pss->out = malloc(LWS_PRE + len);
	if (!pss->out)
		return -1;
	memcpy(pss->out + LWS_PRE, body, len);
	pss->out_len = len;
	pss->out_off = 0;
	lws_callback_on_writable(wsi);
	return 0;
}

static int respond_error(struct lt_http *h, struct lws *wsi, struct pss *pss, int status,
			 const struct lt_error *e, int retry_after)
{
	char body[2048];
	size_t n = lt_error_json(e, body, sizeof body);
	struct resp_opts o = {.retry_after = retry_after};
	return respond(h, wsi, pss, status, "application/json", body, n, &o);
}

static int fail(struct lt_http *h, struct lws *wsi, struct pss *pss, int status, int code, const char *msg)
{
	struct lt_error e = {0};
	lt_error_set(&e, code, "%s", msg);
	return respond_error(h, wsi, pss, status, &e, 0);
}

/* ---- cache ------------------------------------------------------------ */

static struct cache_ent *cache_slot(struct lt_http *h, const char *key)
{
	uint32_t x = 2166136261u;
	for (const char *c = key; *c; c++)
		x = (x ^ (unsigned char)*c) * 16777619u;
	return &h->cache[x % CACHE_SLOTS];
}

static void cache_put(struct lt_http *h, const char *key, const struct lt_buf *b)
{
	if (!h->cache || h->cache_ms <= 0 || b->len > DIRECT_MAX)
		return;
	struct cache_ent *c = cache_slot(h, key);
	unsigned char *copy = malloc(b->len ? b->len : 1);
	if (!copy)
		return;
	memcpy(copy, b->data, b->len);
	free(c->body);
	c->body = copy;
	c->len = b->len;
	c->at_ms = lt_clock_mono_ms();
	c->refreshing = false;
	snprintf(c->key, sizeof c->key, "%s", key);
}

/* Refresh ahead: a hit on a body older than half the TTL queues one
 * background job (no connection) to recompute it, so under steady traffic
 * no client ever waits for Redis and no body is older than the TTL. */
static void cache_refresh(struct lt_http *h, struct cache_ent *ce, const struct lt_job *model)
{
	if (ce->refreshing || lt_clock_mono_ms() - ce->at_ms < h->cache_ms / 2)
		return;
	struct lt_job *j = lt_job_new();
	if (!j)
		return;
	j->req = model->req;
	lt_buf_init(&j->req.body, LT_API_MAX_BODY);
	j->fn = lt_h_hotwords;
	snprintf(j->cache_key, sizeof j->cache_key, "%s", model->cache_key);
	j->wsi = NULL;
	if (lt_pool_submit(h->pool, j) != LT_OK) {
		lt_job_free(j);
		return;
	}
	ce->refreshing = true;
}

/* A background refresh came back. */
static void cache_refreshed(struct lt_http *h, struct lt_job *j)
{
	struct cache_ent *ce = h->cache ? cache_slot(h, j->cache_key) : NULL;
	if (j->status == 200)
		cache_put(h, j->cache_key, &j->body);
	else if (ce && !strcmp(ce->key, j->cache_key))
		ce->refreshing = false;
	lt_job_free(j);
}

/* ---- request parsing -------------------------------------------------- */

static int method_of(struct lws *wsi)
{
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI))
		return LT_M_GET;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))
		return LT_M_POST;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_DELETE_URI))
		return LT_M_DELETE;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI))
		return LT_M_HEAD;
	return LT_M_OTHER;
}

/* The credential of the request: X-API-Key, else Authorization: Bearer,
 * else (WebSocket only) ?token=. Returns its length (0 = none, -1 = too
 * long or malformed). */
static int credential(struct lws *wsi, char *out, int cap, char *const *args, int nargs, bool ws)
{
	int n = lws_hdr_custom_length(wsi, "x-api-key:", 10);
	if (n > 0) {
		if (n >= cap)
			return -1;
		return lws_hdr_custom_copy(wsi, out, cap, "x-api-key:", 10);
	}
	n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	if (n > 0) {
		char tmp[1100];
		if (n >= (int)sizeof tmp ||
		    lws_hdr_copy(wsi, tmp, sizeof tmp, WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
			return -1;
		if (strncasecmp(tmp, "Bearer ", 7))
			return -1;
		const char *t = tmp + 7;
		while (*t == ' ')
			t++;
		if ((int)strlen(t) >= cap)
			return -1;
		snprintf(out, (size_t)cap, "%s", t);
		return (int)strlen(out);
	}
	for (int i = 0; ws && i < nargs; i++)
		if (!strncmp(args[i], "token=", 6)) {
			if ((int)strlen(args[i] + 6) >= cap)
				return -1;
			snprintf(out, (size_t)cap, "%s", args[i] + 6);
			return (int)strlen(out);
		}
	return 0;
}

struct checked {
	int status; /* 0 = go on */
	int retry_after;
	struct lt_error e;
};

/* Everything before dispatch: args, route, credentials, rate limit, role. */
static void check_request(struct lt_http *h, struct lws *wsi, int method, const char *path, bool ws,
			  struct lt_req *req, const struct lt_route **route, struct checked *c)
{
	char argbuf[LT_API_MAX_ARGS][LT_API_MAX_ARG];
	char *args[LT_API_MAX_ARGS];
	int nargs = 0;
	memset(c, 0, sizeof *c);
	lws_get_peer_simple(wsi, req->remote, sizeof req->remote);
	for (int i = 0;; i++) {
		int fl = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
		if (fl <= 0)
			break;
		if (i >= LT_API_MAX_ARGS || fl >= LT_API_MAX_ARG) {
			c->status = 400;
			lt_error_set(&c->e, LT_EINVAL, "too many or too long query parameters");
			return;
		}
		if (lws_hdr_copy_fragment(wsi, argbuf[i], LT_API_MAX_ARG, WSI_TOKEN_HTTP_URI_ARGS, i) < 0)
			break;
		args[i] = argbuf[i];
		nargs++;
	}
	c->status = lt_route_match(method, path, args, nargs, req, route, &c->e);
	if (c->status)
		return;
	char cred[1024];
	int cl = credential(wsi, cred, sizeof cred, args, nargs, ws);
	snprintf(req->actor, sizeof req->actor, "anonymous");
	req->role = LT_ROLE_NONE;
	if (cl < 0) {
		c->status = 401;
		lt_error_set(&c->e, LT_EAUTH,
			     "malformed credentials (use X-API-Key or Authorization: Bearer)");
		return;
	}
	if (cl > 0) {
		req->role = lt_auth_check(h->auth, cred, (size_t)cl, lt_clock_wall_ms(), req->actor,
					  sizeof req->actor);
		if (req->role == LT_ROLE_NONE) {
			c->status = 401;
			lt_error_set(&c->e, LT_EAUTH, "invalid or expired credentials");
			/* A guessing client still pays from its address's bucket. */
		}
	}
	char bucket[96];
	int64_t now = lt_clock_mono_ms();
	snprintf(bucket, sizeof bucket, "a:%s", req->remote);
	bool ok = lt_rl_take(h->rl, bucket, now, &c->retry_after);
	if (ok && req->role != LT_ROLE_NONE) {
		snprintf(bucket, sizeof bucket, "k:%s", req->actor);
		ok = lt_rl_take(h->rl, bucket, now, &c->retry_after);
	}
	if (ok && (*route)->id == LT_R_LOGIN)
		ok = lt_rl_take(h->rl_login, req->remote, now, &c->retry_after);
	if (!ok) {
		lt_metrics_add(h->s_ratelimited, 1);
		c->status = 429;
		lt_error_set(&c->e, LT_EAGAIN, "rate limit exceeded; retry after %d s", c->retry_after);
		return;
	}
	if (c->status)
		return;
	const struct lt_route *r = *route;
	if (r->need == LT_ROLE_WRITE && req->role < LT_ROLE_WRITE) {
		c->status = req->role == LT_ROLE_NONE ? 401 : 403;
		lt_error_set(&c->e, req->role == LT_ROLE_NONE ? LT_EAUTH : LT_EPERM,
			     req->role == LT_ROLE_NONE ? "authentication required (X-API-Key or Bearer token)"
						       : "this key may only read");
	} else if (r->need == LT_ROLE_READ && !h->loopback && req->role == LT_ROLE_NONE) {
		c->status = 401;
		lt_error_set(&c->e, LT_EAUTH, "authentication required (X-API-Key or Bearer token)");
	}
}

/* ---- dispatch --------------------------------------------------------- */

static int serve_file(struct lt_http *h, struct lws *wsi, struct pss *pss, const char *path)
{
	for (const struct lt_www_file *f = lt_www_files; f->path; f++) {
		if (strcmp(f->path, path))
			continue;
		char inm[64] = "";
		if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_IF_NONE_MATCH) > 0)
			lws_hdr_copy(wsi, inm, sizeof inm, WSI_TOKEN_HTTP_IF_NONE_MATCH);
		struct resp_opts o = {.etag = f->etag, .cache = "no-cache", .html = !strcmp(f->path, "/")};
		if (!strcmp(inm, f->etag))
			return respond(h, wsi, pss, 304, f->ctype, NULL, 0, &o);
		return respond(h, wsi, pss, 200, f->ctype, f->data, f->len, &o);
	}
	return fail(h, wsi, pss, 404, LT_ENOTFOUND, "no such file");
}

static int submit(struct lt_http *h, struct lws *wsi, struct pss *pss)
{
	struct lt_job *j = pss->job;
	j->wsi = wsi;
	if (lt_pool_submit(h->pool, j) != LT_OK) {
		pss->job = NULL;
		lt_job_free(j);
		struct lt_error e = {0};
		lt_error_set(&e, LT_EAGAIN, "the server is busy; try again");
		return respond_error(h, wsi, pss, 503, &e, 1);
	}
	return 0;
}

static int on_http(struct lt_http *h, struct lws *wsi, struct pss *pss, const char *path)
{
	int method = method_of(wsi);
	pss->route = NULL;
	pss->head = method == LT_M_HEAD;
	pss->start_us = lt_clock_mono_us();
	pss->hdr_sent = false;
	struct lt_job *j = lt_job_new();
	if (!j)
		return -1;
	struct checked c;
	check_request(h, wsi, method, path, false, &j->req, &pss->route, &c);
	if (c.status) {
		lt_job_free(j);
		return respond_error(h, wsi, pss, c.status, &c.e, c.retry_after);
	}
	const struct lt_route *r = pss->route;
	switch (r->id) {
	case LT_R_STATIC:
		lt_job_free(j);
		return serve_file(h, wsi, pss, path);
	case LT_R_OPENAPI:
		lt_job_free(j);
		return serve_file(h, wsi, pss, "/api/v1/openapi.json");
	case LT_R_METRICS: {
		lt_job_free(j);
		struct lt_buf b = LT_BUF_INIT;
		lt_metrics_render(&b);
		int rc = lt_buf_err(&b)
			     ? fail(h, wsi, pss, 500, LT_ENOMEM, "out of memory")
			     : respond(h, wsi, pss, 200, "text/plain; version=0.0.4", b.data, b.len, NULL);
		lt_buf_free(&b);
		return rc;
	}
	case LT_R_LIVE:
		lt_job_free(j);
		return fail(h, wsi, pss, 400, LT_EINVAL,
			    "this endpoint is a WebSocket: send Upgrade: websocket");
	case LT_R_HOTWORDS: {
		snprintf(j->cache_key, sizeof j->cache_key, "%s:%s:%s:%d", j->req.platform, j->req.room,
			 j->req.window, j->req.limit);
		struct cache_ent *ce = h->cache ? cache_slot(h, j->cache_key) : NULL;
		if (ce && ce->body && !strcmp(ce->key, j->cache_key) &&
		    lt_clock_mono_ms() - ce->at_ms < h->cache_ms) {
			cache_refresh(h, ce, j);
			lt_job_free(j);
			lt_metrics_add(h->s_cache_hit, 1);
			return respond(h, wsi, pss, 200, "application/json", ce->body, ce->len, NULL);
		}
		lt_metrics_add(h->s_cache_miss, 1);
		break;
	}
	default:
		break;
	}
	j->fn = r->fn;
	pss->job = j;
	if (r->body) {
		char cl[24] = "";
		if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
			lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH);
		long long n = cl[0] ? strtoll(cl, NULL, 10) : 0;
		if (n < 0 || n > LT_API_MAX_BODY) {
			pss->job = NULL;
			lt_job_free(j);
			return fail(h, wsi, pss, 413, LT_ETOOBIG, "the body is larger than 64 KiB");
		}
		if (n > 0 || lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
			pss->body_wait = true;
			return 0;
		}
	}
	return submit(h, wsi, pss);
}

/* WRITEABLE for a job that came back or a stream with chunks. */
static int write_job(struct lt_http *h, struct lws *wsi, struct pss *pss)
{
	struct lt_job *j = pss->job;
	if (!j->streaming) {
		if (!lt_pool_done(h->pool, j))
			return 0;
		pss->job = NULL;
		if (j->cache_key[0] && j->status == 200)
			cache_put(h, j->cache_key, &j->body);
		struct resp_opts o = {.disposition = j->disposition};
		int rc = respond(h, wsi, pss, j->status ? j->status : 500,
				 j->ctype ? j->ctype : "application/json", j->body.data, j->body.len, &o);
		lt_job_free(j);
		return rc;
	}
	if (!pss->hdr_sent) {
		unsigned char *p = sendbuf + LWS_PRE, *end = sendbuf + sizeof sendbuf - 1;
		struct resp_opts o = {.disposition = j->disposition};
		if (lws_add_http_header_status(wsi, (unsigned)j->status, &p, end) ||
		    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
						 (const unsigned char *)j->ctype, (int)strlen(j->ctype), &p,
						 end) ||
		    lws_add_http_header_by_name(wsi, (const unsigned char *)"transfer-encoding:",
						(const unsigned char *)"chunked", 7, &p, end) ||
		    lws_add_http_header_by_name(wsi, (const unsigned char *)"content-disposition:",
						(const unsigned char *)o.disposition,
						(int)strlen(o.disposition), &p, end) ||
		    lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
						(const unsigned char *)"no-store", 8, &p, end) ||
		    lws_finalize_http_header(wsi, &p, end))
			return -1;
		if (lws_write(wsi, sendbuf + LWS_PRE, (size_t)(p - (sendbuf + LWS_PRE)),
			      LWS_WRITE_HTTP_HEADERS) < 0)
			return -1;
		pss->hdr_sent = true;
		lws_callback_on_writable(wsi);
		return 0;
	}
	struct lt_buf chunk = LT_BUF_INIT;
	int got = lt_pool_pop_chunk(h->pool, j, &chunk);
	if (got == 1) {
		unsigned char *buf = malloc(LWS_PRE + chunk.len + 32);
		if (!buf) {
			lt_buf_free(&chunk);
			return -1;
		}
		int hl = snprintf((char *)buf + LWS_PRE, 16, "%zx\r\n", chunk.len);
		memcpy(buf + LWS_PRE + hl, chunk.data, chunk.len);
		memcpy(buf + LWS_PRE + hl + chunk.len, "\r\n", 2);
		int wr = lws_write(wsi, buf + LWS_PRE, (size_t)hl + chunk.len + 2, LWS_WRITE_HTTP);
		free(buf);
		lt_buf_free(&chunk);
		if (wr < 0)
			return -1;
		lws_callback_on_writable(wsi);
		return 0;
	}
	if (got == 0 || !lt_pool_done(h->pool, j))
		return 0; /* the worker will wake us */
	pss->job = NULL;
	bool broken = j->stream_failed;
	lt_job_free(j);
	if (broken) {
		count(h, pss->route, 500, pss->start_us);
		return -1; /* no terminating chunk: the client sees the failure */
	}
	count(h, pss->route, 200, pss->start_us);
	pss->start_us = 0;
	memcpy(sendbuf + LWS_PRE, "0\r\n\r\n", 5);
	if (lws_write(wsi, sendbuf + LWS_PRE, 5, LWS_WRITE_HTTP_FINAL) < 0)
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- the protocol callback --------------------------------------------- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct lt_http *h = lws_context_user(lws_get_context(wsi));
	struct pss *pss = user;
	switch (reason) {
	case LWS_CALLBACK_HTTP:
	case LWS_CALLBACK_HTTP_BODY:
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
	case LWS_CALLBACK_HTTP_WRITEABLE:
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
	case LWS_CALLBACK_ESTABLISHED:
	case LWS_CALLBACK_SERVER_WRITEABLE:
	case LWS_CALLBACK_CLOSED:
		/* lws has no per-session data for a connection that closed
		 * before it said anything. */
		if (!pss)
			return reason == LWS_CALLBACK_HTTP ? -1 : 0;
		break;
	default:
		break;
	}
	switch (reason) {
	case LWS_CALLBACK_HTTP:
		if (pss->job) /* a pipelined request while one is in flight */
			return -1;
		return on_http(h, wsi, pss, in ? (const char *)in : "/");

	case LWS_CALLBACK_HTTP_BODY:
		if (pss->job && pss->body_wait)
			lt_buf_append(&pss->job->req.body, in, len);
		return 0;

	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (!pss->job || !pss->body_wait)
			return 0;
		pss->body_wait = false;
		if (lt_buf_err(&pss->job->req.body)) {
			lt_job_free(pss->job);
			pss->job = NULL;
			return fail(h, wsi, pss, 413, LT_ETOOBIG, "the body is larger than 64 KiB");
		}
		return submit(h, wsi, pss);

	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (pss->out) {
			size_t n = pss->out_len - pss->out_off;
			bool last = n <= PIECE;
			if (!last)
				n = PIECE;
			if (lws_write(wsi, pss->out + LWS_PRE + pss->out_off, n,
				      last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < 0)
				return -1;
			pss->out_off += n;
			if (!last) {
				lws_callback_on_writable(wsi);
				return 0;
			}
			free(pss->out);
			pss->out = NULL;
			return lws_http_transaction_completed(wsi) ? -1 : 0;
		}
		if (pss->job)
			return write_job(h, wsi, pss);
		return 0;

	case LWS_CALLBACK_CLOSED_HTTP:
		if (pss->job) {
			lt_pool_release(h->pool, pss->job);
			pss->job = NULL;
		}
		free(pss->out);
		pss->out = NULL;
		return 0;

	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
		char path[600];
		struct lt_req req;
		memset(&req, 0, sizeof req);
		req.until = INT64_MAX;
		const struct lt_route *r = NULL;
		struct checked c;
		if (lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) <= 0)
			return 1;
		check_request(h, wsi, LT_M_GET, path, true, &req, &r, &c);
		if (c.status || r->id != LT_R_LIVE) {
			lt_info(NULL, "live feed refused: %d %s", c.status ? c.status : 404, c.e.message);
			return 1;
		}
		snprintf(pss->room, sizeof pss->room, "%s:%s", req.platform, req.room);
		return 0;
	}

	case LWS_CALLBACK_ESTABLISHED:
		if (!pss->room[0])
			return -1;
		pss->fc = lt_feed_attach(h->feed, wsi, pss->room);
		return pss->fc ? 0 : -1;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		return pss->fc ? lt_feed_write(pss->fc) : 0;

	case LWS_CALLBACK_RECEIVE:
		return 0; /* the feed is one-way; pings are answered by lws */

	case LWS_CALLBACK_CLOSED:
		lt_feed_detach(h->feed, pss->fc);
		pss->fc = NULL;
		return 0;

	case LWS_CALLBACK_EVENT_WAIT_CANCELLED: {
		if (!h)
			return 0;
		lt_feed_dispatch(h->feed);
		struct lt_job *j;
		while ((j = lt_pool_take(h->pool)) != NULL) {
			if (j->wsi)
				lws_callback_on_writable(j->wsi);
			else if (lt_pool_done(h->pool, j))
				cache_refreshed(h, j);
		}
		return 0;
	}
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"livetap", callback, sizeof(struct pss), 4096, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- life cycle ------------------------------------------------------- */

static void wake(void *ctx)
{
	struct lt_http *h = ctx;
	if (h->ctx)
		lws_cancel_service(h->ctx);
}

static void lws_log(int level, const char *line)
{
	char msg[512];
	snprintf(msg, sizeof msg, "%s", line);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	lt_log_write(level == LLL_ERR ? LT_LOG_ERROR : LT_LOG_WARN, "lib=lws", "%s", msg);
}

/* "HOST:PORT" or "[v6]:PORT" -> a numeric address (resolving names) and
 * port. An empty HOST means every interface. */
static int split_listen(const char *s, char *host, size_t cap, int *port, bool *loopback)
{
	const char *colon = strrchr(s, ':');
	if (!colon)
		return LT_EINVAL;
	char name[256];
	size_t hl = (size_t)(colon - s);
	if (hl >= sizeof name)
		return LT_EINVAL;
	memcpy(name, s, hl);
	name[hl] = '\0';
	if (name[0] == '[' && hl >= 2 && name[hl - 1] == ']') {
		memmove(name, name + 1, hl - 2);
		name[hl - 2] = '\0';
	}
	char *end = NULL;
	long p = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || p < 0 || p > 65535)
		return LT_EINVAL;
	*port = (int)p;
	host[0] = '\0';
	*loopback = false;
	if (!name[0])
		return LT_OK;
	struct addrinfo hints = {.ai_flags = AI_ADDRCONFIG}, *ai = NULL;
	if (getaddrinfo(name, NULL, &hints, &ai) != 0 || !ai)
		return LT_EINVAL;
	if (ai->ai_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ai->ai_addr;
		inet_ntop(AF_INET, &sin->sin_addr, host, (socklen_t)cap);
		*loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ai->ai_addr;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, (socklen_t)cap);
		*loopback = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
	}
	freeaddrinfo(ai);
	if (!strcmp(host, "0.0.0.0") || !strcmp(host, "::"))
		host[0] = '\0';
	return LT_OK;
}

/* See http.h. */
int lt_http_start(const struct lt_config *cfg, struct lt_auth *auth, struct lt_http **out, struct lt_error *e)
{
	char host[64];
	int port = 0;
	bool loopback = false;
	const char *listen = lt_config_str(cfg, "api.listen");
	if (split_listen(listen ? listen : "", host, sizeof host, &port, &loopback) != LT_OK)
		return lt_error_set(e, LT_EINVAL, "api.listen: expected HOST:PORT, got '%s'",
				    listen ? listen : "");
	struct lt_http *h = calloc(1, sizeof *h);
	if (!h)
		return lt_error_set(e, LT_ENOMEM, "out of memory");
	h->cfg = cfg;
	h->auth = auth;
	const char *ra = lt_config_str(cfg, "api.read_auth");
	if (ra && !strcmp(ra, "always")) {
		loopback = false; /* treated as reachable from anywhere */
	} else if (ra && *ra && strcmp(ra, "auto")) {
		lt_http_free(h);
		return lt_error_set(e, LT_ECONFIG, "api.read_auth: expected auto or always, got '%s'", ra);
	}
	h->loopback = loopback;
	h->cache_ms = lt_config_int(cfg, "api.cache_ms");
	h->cache = calloc(CACHE_SLOTS, sizeof *h->cache);
	h->rl = lt_rl_new((double)lt_config_int(cfg, "api.rate_per_s"),
			  (double)lt_config_int(cfg, "api.rate_burst"));
	/* Logins: 10 at once, then one every 6 s per address, whatever
	 * api.rate_per_s says (Argon2id already makes each guess slow). */
	h->rl_login = lt_rl_new(1.0 / 6.0, 10.0);
	h->m_req = lt_metrics_counter("livetap_api_requests_total",
				      "HTTP requests by route and status class.", "route", "code");
	h->m_lat = lt_metrics_histogram("livetap_api_request_seconds", "HTTP request latency by route.", NULL,
					0, "route", NULL);
	h->s_cache_hit =
	    lt_metrics_series(lt_metrics_counter("livetap_api_cache_hits_total",
						 "Hot-words answers from the cache.", NULL, NULL),
			      NULL, NULL);
	h->s_cache_miss = lt_metrics_series(
	    lt_metrics_counter("livetap_api_cache_misses_total", "Hot-words answers computed.", NULL, NULL),
	    NULL, NULL);
	h->s_ratelimited = lt_metrics_series(
	    lt_metrics_counter("livetap_api_rate_limited_total", "Requests refused with 429.", NULL, NULL),
	    NULL, NULL);
	int timeout = (int)lt_config_int(cfg, "redis.timeout_ms");
	if (!h->cache || !h->rl || !h->rl_login ||
	    lt_pool_start((int)lt_config_int(cfg, "api.workers"), lt_config_str(cfg, "redis.url"),
			  lt_config_str(cfg, "pg.dsn"), timeout, 1024, wake, h, &h->pool) != LT_OK ||
	    lt_feed_start(lt_config_str(cfg, "redis.url"), timeout, (int)lt_config_int(cfg, "api.ws_queue"),
			  wake, h, &h->feed) != LT_OK) {
		lt_http_free(h);
		return lt_error_set(e, LT_ENOMEM, "out of memory");
	}
	lt_pool_set_config(h->pool, cfg);
	lt_pool_set_auth(h->pool, auth);

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof info);
	info.port = port;
	info.iface = host[0] ? host : NULL;
	info.protocols = protocols;
	info.user = h;
	info.max_http_header_data = 8192;
	info.max_http_header_pool = 256;
	info.timeout_secs = 30;
	info.keepalive_timeout = 60;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
	if (host[0] && !strchr(host, ':'))
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	h->ctx = lws_create_context(&info);
	if (!h->ctx) {
		lt_http_free(h);
		return lt_error_set(e, LT_EIO, "api.listen: cannot listen on '%s'", listen);
	}
	h->vh = lws_get_vhost_by_name(h->ctx, "default");
	h->port = h->vh ? lws_get_vhost_listen_port(h->vh) : port;
	*out = h;
	return LT_OK;
}

int lt_http_port(const struct lt_http *h)
{
	return h->port;
}

/* See http.h. lws_service returns at least every 250 ms here (no timers
 * of ours need more), so the stop flag is seen promptly. */
int lt_http_run(struct lt_http *h)
{
	while (!lt_sig_stop_requested())
		if (lws_service(h->ctx, 250) < 0)
			break;
	return LT_OK;
}

/* See http.h. Workers and the feed stop first, so nothing wakes a context
 * that is gone; then lws closes every connection (CLOSED callbacks release
 * jobs and feed clients). */
void lt_http_free(struct lt_http *h)
{
	if (!h)
		return;
	struct lws_context *ctx = h->ctx;
	/* Threads first (they wake the context), then the context (whose
	 * CLOSED callbacks hand jobs and clients back), then the memory. */
	lt_pool_stop(h->pool);
	lt_feed_stop(h->feed);
	h->ctx = NULL;
	if (ctx)
		lws_context_destroy(ctx);
	lt_pool_free(h->pool);
	lt_feed_free(h->feed);
	lt_rl_free(h->rl);
	lt_rl_free(h->rl_login);
	for (int i = 0; h->cache && i < CACHE_SLOTS; i++)
		free(h->cache[i].body);
	free(h->cache);
	free(h);
}
