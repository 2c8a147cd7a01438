/* SPDX-License-Identifier: MIT */
/*
 * fetcher: the live loop of one room (see fetcher.h).
 *
 * One lws context without a listener and two protocols, each with its one
 * callback: "lt-http" for the bootstrap requests and "lt-ws" for the
 * WebSocket. The connection moves through phases:
 *
 *   BOOT (one HTTP request at a time, ops->http_next/http_done)
 *     -> WS (connecting, then open: auth via ops->on_open, frames to
 *        ops->on_frame, heartbeats from sul_hb)
 *     -> BACKOFF (sul_retry, delay from the retry table) -> BOOT ...
 *
 * Callbacks never start or free anything themselves: they record what
 * happened and schedule sul_step, which runs on the same loop right after and
 * takes the next step (mark, then act). A WebSocket we want to drop is asked
 * for WRITEABLE and closed by returning -1 there. Frames to send wait in a
 * bounded queue and are written one per CLIENT_WRITEABLE.
 *
 * Memory is bounded: the HTTP body (LT_FETCHER_HTTP_MAX), a received frame
 * (LT_CAPTURE_FRAME_MAX) and the send queue (LT_FETCHER_SENDQ_MAX) have
 * limits; the delivery window and spool have their own.
 *
 * With fetcher.metrics_listen set, /metrics shows per room
 * livetap_fetcher_{messages,dropped,bad_frames,heartbeats,reconnects}_total
 * and livetap_fetcher_running.
 */
#include "fetcher/fetcher.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <libwebsockets.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/app.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/delivery.h"
#include "common/json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/redisconn.h"
#include "common/sig.h"
#include "fetcher/capture.h"

#define LT_FETCHER_HTTP_MAX (4u << 20)
#define LT_FETCHER_SENDQ_MAX (1u << 20)
#define LT_FETCHER_RETRY_STEPS 16

enum phase { PH_BOOT, PH_WS, PH_BACKOFF, PH_DONE };

struct out_frame {
	struct out_frame *next;
	size_t len;
	bool text;
	uint8_t data[]; /* LWS_PRE + len */
};

/* The status hash, shared with the status thread under mu. */
struct status {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	bool running, stop, dirty;
	char key[160];
	char redis_url[512];
	int timeout_ms, interval_ms;
	/* fields */
	const char *state;
	int64_t since;
	char last_error[256];
	char resolved[LT_MSG_ROOM_MAX + 1];
	uint64_t reconnects, messages, bad_frames, heartbeats, dropped;
	/* thread-side counters */
	uint64_t writes, write_errors;
};

struct fetcher {
	const struct lt_platform_ops *ops;
	struct lt_platform_conn *pc;
	struct lws_context *ctx;
	char ctxlog[96];     /* "room=bilibili:123" for log lines */
	enum phase phase;
	int attempt;         /* platform attempt, reset after an auth */
	uint16_t retry_count; /* consecutive failures, for the retry table */
	lws_retry_bo_t retry;
	uint32_t retry_ms[LT_FETCHER_RETRY_STEPS];
	int exit_code;
	bool authed_once;
	char fail_reason[256];
	bool fail_pending;
	bool in_connect;     /* inside lws_client_connect_via_info */

	/* HTTP */
	struct lws *http_wsi;
	struct lt_http_req req;
	struct lt_buf http_body;
	struct lt_buf set_cookie;
	int http_status;
	bool http_done;      /* a response (or a transport failure) waits for sul_step */

	/* WebSocket */
	struct lws *ws_wsi;
	struct lt_ws_target target;
	bool ws_open, ws_close_req;
	struct lt_buf rx;
	struct out_frame *q_head, *q_tail;
	size_t q_bytes;
	int64_t last_rx_mono;
	int hb_ms, rx_timeout_ms;
	bool hb_fixed;       /* fetcher.heartbeat_s set: hb_ms always, else ops->heartbeat_ms */

	/* the platform's resume state (ops->state_save), kept in state_path */
	char state_path[1024];
	char state_last[256];
	int64_t state_written; /* mono ms of the last write */

	lws_sorted_usec_list_t sul_step, sul_retry, sul_hb, sul_watch;

	/* output */
	bool to_stdout;
	struct lt_buf out;
	struct lt_delivery *delivery;
	struct lt_capture_writer *capture;
	int64_t capture_flushed; /* wall ms of the last flush */
	struct lt_platform_io io;

	struct status st;

	/* /metrics (fetcher.metrics_listen), label room=PLATFORM:ROOM */
	struct lt_series *m_messages, *m_bad_frames, *m_reconnects, *m_heartbeats, *m_dropped, *m_running;
	uint64_t seen_bad_frames, seen_heartbeats;
};

/* ---- status ------------------------------------------------------------- */

static void status_set(struct status *s, const char *state, const char *err)
{
	pthread_mutex_lock(&s->mu);
	if (state && (!s->state || strcmp(s->state, state) != 0)) {
		s->state = state;
		s->since = lt_clock_wall_ms();
	}
	if (err)
		snprintf(s->last_error, sizeof(s->last_error), "%s", err);
	s->dirty = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* One HSET of the whole hash; false on any Redis failure. */
static bool status_write(redisContext *rc, const struct status *snap)
{
	char since[24], rec[24], msgs[24], bad[24], hb[24], upd[24], pid[16], drop[24];
	const char *argv[22];
	redisReply *r;
	int n = 0;

	snprintf(since, sizeof(since), "%" PRId64, snap->since);
	snprintf(rec, sizeof(rec), "%" PRIu64, snap->reconnects);
	snprintf(msgs, sizeof(msgs), "%" PRIu64, snap->messages);
	snprintf(bad, sizeof(bad), "%" PRIu64, snap->bad_frames);
	snprintf(hb, sizeof(hb), "%" PRIu64, snap->heartbeats);
	snprintf(drop, sizeof(drop), "%" PRIu64, snap->dropped);
	snprintf(upd, sizeof(upd), "%" PRId64, lt_clock_wall_ms());
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	argv[n++] = "HSET";
	argv[n++] = snap->key;
	argv[n++] = "state";
	argv[n++] = snap->state ? snap->state : "idle";
	argv[n++] = "since";
	argv[n++] = since;
	argv[n++] = "last_error";
	argv[n++] = snap->last_error;
	argv[n++] = "reconnects";
	argv[n++] = rec;
	argv[n++] = "messages";
	argv[n++] = msgs;
	argv[n++] = "bad_frames";
	argv[n++] = bad;
	argv[n++] = "heartbeats";
	argv[n++] = hb;
	argv[n++] = "dropped";
	argv[n++] = drop;
	argv[n++] = "updated";
	argv[n++] = upd;
	argv[n++] = "pid";
	argv[n++] = pid;
	r = redisCommandArgv(rc, n, argv, NULL);
	if (!r)
		return false;
	bool ok = r->type != REDIS_REPLY_ERROR;
	freeReplyObject(r);
	return ok;
}

/* The status thread: write the hash every interval (or at once when the
 * state changes), reconnecting to Redis as needed; one last write on stop. */
static void *status_main(void *arg)
{
	struct status *s = arg;
	redisContext *rc = NULL;
	bool last = false;

	while (!last) {
		struct status snap;
		struct timespec ts;

		pthread_mutex_lock(&s->mu);
		if (!s->stop && !s->dirty) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += s->interval_ms / 1000;
			ts.tv_nsec += (long)(s->interval_ms % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&s->cv, &s->mu, &ts);
		}
		last = s->stop;
		s->dirty = false;
		memcpy(&snap, s, sizeof(snap)); /* the fields only; the sync objects are not used from snap */
		pthread_mutex_unlock(&s->mu);

		if (!rc && lt_redis_connect(s->redis_url, s->timeout_ms, &rc, NULL) != LT_OK)
			rc = NULL;
		if (rc && !status_write(rc, &snap)) {
			redisFree(rc);
			rc = NULL;
		}
		pthread_mutex_lock(&s->mu);
		if (rc)
			s->writes++;
		else
			s->write_errors++;
		pthread_mutex_unlock(&s->mu);
	}
	if (rc)
		redisFree(rc);
	return NULL;
}

static int status_start(struct status *s, const char *platform, const char *room, const char *url,
                        int timeout_ms, int interval_ms)
{
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	snprintf(s->key, sizeof(s->key), "live:{%s:%s}:status", platform, room);
	snprintf(s->redis_url, sizeof(s->redis_url), "%s", url ? url : "");
	s->timeout_ms = timeout_ms;
	s->interval_ms = interval_ms > 0 ? interval_ms : 2000;
	s->state = "idle";
	s->since = lt_clock_wall_ms();
	if (!url || !*url)
		return LT_OK; /* no Redis: status only in the log */
	if (pthread_create(&s->thread, NULL, status_main, s) != 0)
		return LT_ENOMEM;
	s->running = true;
	return LT_OK;
}

static void status_stop(struct status *s)
{
	if (s->running) {
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
		s->running = false;
	}
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
}

/* ---- small helpers ------------------------------------------------------ */

static void step_soon(struct fetcher *f);
static void fail(struct fetcher *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct fetcher *f, const char *fmt, ...)
{
	va_list ap;

	if (f->fail_pending || f->phase == PH_DONE)
		return;
	va_start(ap, fmt);
	vsnprintf(f->fail_reason, sizeof(f->fail_reason), fmt, ap);
	va_end(ap);
	f->fail_pending = true;
	step_soon(f);
}

/* Split "scheme://host:port/path" into parts (in buf). */
static int parse_url(const char *url, char *buf, size_t cap, const char **scheme, const char **host, int *port,
                     char *path, size_t path_cap)
{
	const char *p = NULL;

	if (!url || strlen(url) >= cap)
		return LT_EINVAL;
	snprintf(buf, cap, "%s", url);
	if (lws_parse_uri(buf, scheme, host, port, &p))
		return LT_EINVAL;
	snprintf(path, path_cap, "/%s", p ? p : "");
	return LT_OK;
}

/* Add "Name: value\r\n" lines to a request being built by lws. */
static int add_headers(struct lws *wsi, const char *headers, unsigned char **p, unsigned char *end)
{
	const char *h = headers;

	while (h && *h) {
		const char *eol = strstr(h, "\r\n"), *line_end = eol ? eol : h + strlen(h);
		const char *colon = memchr(h, ':', (size_t)(line_end - h));
		if (colon && colon - h < 120) {
			char name[128];
			const char *v = colon + 1;
			snprintf(name, sizeof(name), "%.*s:", (int)(colon - h), h);
			for (char *c = name; *c; c++)
				if (*c >= 'A' && *c <= 'Z')
					*c = (char)(*c - 'A' + 'a');
			while (v < line_end && *v == ' ')
				v++;
			if (lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)v,
			                                (int)(line_end - v), p, end))
				return -1;
		}
		h = eol ? eol + 2 : line_end;
	}
	return 0;
}

/* ---- output --------------------------------------------------------------- */

static void io_emit(void *ud, const struct lt_msg *m)
{
	struct fetcher *f = ud;

	if (f->to_stdout) {
		lt_json_msg(&f->out, m);
		lt_buf_putc(&f->out, '\n');
	} else if (lt_delivery_push(f->delivery, m) != LT_OK) {
		pthread_mutex_lock(&f->st.mu);
		f->st.dropped++;
		pthread_mutex_unlock(&f->st.mu);
		lt_metrics_add(f->m_dropped, 1);
		return;
	}
	pthread_mutex_lock(&f->st.mu);
	f->st.messages++;
	pthread_mutex_unlock(&f->st.mu);
	lt_metrics_add(f->m_messages, 1);
}

static void flush_stdout(struct fetcher *f)
{
	if (!f->to_stdout || !f->out.len)
		return;
	if (!lt_buf_err(&f->out) && fwrite(f->out.data, 1, f->out.len, stdout) == f->out.len)
		fflush(stdout);
	lt_buf_reset(&f->out);
}

static void io_send(void *ud, const void *p, size_t n, bool text)
{
	struct fetcher *f = ud;
	struct out_frame *o;

	if (!f->ws_wsi || !f->ws_open)
		return;
	if (f->q_bytes + n > LT_FETCHER_SENDQ_MAX) {
		fail(f, "send queue full");
		return;
	}
	o = malloc(sizeof(*o) + LWS_PRE + n);
	if (!o) {
		fail(f, "out of memory");
		return;
	}
	o->next = NULL;
	o->len = n;
	o->text = text;
	memcpy(o->data + LWS_PRE, p, n);
	if (f->q_tail)
		f->q_tail->next = o;
	else
		f->q_head = o;
	f->q_tail = o;
	f->q_bytes += n;
	lws_callback_on_writable(f->ws_wsi);
}

static void sendq_clear(struct fetcher *f)
{
	struct out_frame *o = f->q_head, *nx;

	for (; o; o = nx) {
		nx = o->next;
		free(o);
	}
	f->q_head = f->q_tail = NULL;
	f->q_bytes = 0;
}

/* ---- the steps ------------------------------------------------------------ */

static void start_http(struct fetcher *f)
{
	struct lws_client_connect_info i;
	const char *scheme, *host;
	char buf[2048], path[2048];
	struct lws *w;
	int port;

	if (parse_url(f->req.url, buf, sizeof(buf), &scheme, &host, &port, path, sizeof(path)) != LT_OK) {
		fail(f, "bad bootstrap URL");
		return;
	}
	lt_buf_reset(&f->http_body);
	lt_buf_reset(&f->set_cookie);
	f->http_status = 0;
	f->http_done = false;
	memset(&i, 0, sizeof(i));
	i.context = f->ctx;
	i.address = host;
	i.port = port;
	i.path = path;
	i.host = host;
	i.origin = host;
	i.method = f->req.method ? f->req.method : "GET";
	i.ssl_connection = !strcmp(scheme, "https") ? LCCSCF_USE_SSL : 0;
	i.alpn = "http/1.1";
	i.protocol = "lt-http";
	i.local_protocol_name = "lt-http";
	i.userdata = f;
	lt_debug(f->ctxlog, "%s %s%s", i.method, host, path);
	f->http_wsi = NULL;
	f->in_connect = true;
	w = lws_client_connect_via_info(&i);
	f->in_connect = false;
	if (f->http_done)
		return; /* failed inside the call; sul_step is scheduled */
	if (!w) {
		f->http_status = 0;
		f->http_done = true;
		step_soon(f);
		return;
	}
	f->http_wsi = w;
}

static void start_ws(struct fetcher *f)
{
	struct lws_client_connect_info i;
	const char *scheme, *host;
	char buf[2048], path[2048];
	struct lws *w;
	int port;

	if (f->ops->ws_target(f->pc, &f->target) != LT_OK ||
	    parse_url(f->target.url, buf, sizeof(buf), &scheme, &host, &port, path, sizeof(path)) != LT_OK) {
		fail(f, "no WebSocket target");
		return;
	}
	lt_buf_reset(&f->rx);
	f->ws_open = false;
	f->ws_close_req = false;
	memset(&i, 0, sizeof(i));
	i.context = f->ctx;
	i.address = host;
	i.port = port;
	i.path = path;
	i.host = host;
	i.origin = f->target.origin ? f->target.origin : host;
	i.ssl_connection = !strcmp(scheme, "wss") ? LCCSCF_USE_SSL : 0;
	i.protocol = f->target.protocol;
	i.local_protocol_name = "lt-ws";
	i.userdata = f;
	f->phase = PH_WS;
	/* the query is not logged: kook's carries the bot token */
	lt_info(f->ctxlog, "connecting to %s://%s:%d%.*s", scheme, host, port, (int)strcspn(path, "?"), path);
	f->ws_wsi = NULL;
	f->in_connect = true;
	w = lws_client_connect_via_info(&i);
	f->in_connect = false;
	if (!w)
		fail(f, "WebSocket connect to %s:%d failed", host, port);
	else if (!f->fail_pending)
		f->ws_wsi = w;
}

static void next_http(struct fetcher *f)
{
	int rc = f->ops->http_next(f->pc, &f->req);

	if (rc == LT_OK)
		start_http(f);
	else if (rc == LT_EEOF)
		start_ws(f);
	else
		fail(f, "bootstrap: %s", lt_strerror(rc));
}

static void begin_attempt(struct fetcher *f)
{
	int rc;

	f->phase = PH_BOOT;
	status_set(&f->st, "starting", NULL);
	rc = f->ops->begin(f->pc, f->attempt);
	if (rc != LT_OK) {
		fail(f, "begin: %s", lt_strerror(rc));
		return;
	}
	next_http(f);
}

static void retry_cb(lws_sorted_usec_list_t *sul)
{
	struct fetcher *f = lws_container_of(sul, struct fetcher, sul_retry);

	if (f->phase == PH_BACKOFF)
		begin_attempt(f);
}

static void end(struct fetcher *f, int code, const char *state)
{
	f->phase = PH_DONE;
	f->exit_code = code;
	status_set(&f->st, state, NULL);
	lt_sig_request_stop();
	lws_cancel_service(f->ctx);
}

/* The attempt failed: drop the socket, back off or give up. */
static void handle_failure(struct fetcher *f)
{
	char conceal = 0;
	unsigned delay;

	f->fail_pending = false;
	lws_sul_cancel(&f->sul_hb);
	lws_sul_cancel(&f->sul_watch);
	if (f->ws_wsi) {
		f->ws_close_req = true;
		lws_callback_on_writable(f->ws_wsi);
	}
	f->ws_wsi = NULL; /* its callbacks are ignored from now on */
	f->ws_open = false;
	f->http_wsi = NULL;
	sendq_clear(f);
	pthread_mutex_lock(&f->st.mu);
	f->st.reconnects++;
	pthread_mutex_unlock(&f->st.mu);
	lt_metrics_add(f->m_reconnects, 1);
	lt_metrics_set(f->m_running, 0);

	delay = lws_retry_get_delay_ms(f->ctx, &f->retry, &f->retry_count, &conceal);
	if (!conceal) {
		lt_error(f->ctxlog, "giving up after %u failed attempts: %s", (unsigned)f->retry_count, f->fail_reason);
		status_set(&f->st, "error", f->fail_reason);
		end(f, LT_FETCHER_EXIT_ERROR, "error");
		return;
	}
	lt_warn(f->ctxlog, "attempt %d failed: %s; retrying in %u ms", f->attempt, f->fail_reason, delay);
	status_set(&f->st, "starting", f->fail_reason);
	f->attempt++;
	f->phase = PH_BACKOFF;
	lws_sul_schedule(f->ctx, 0, &f->sul_retry, retry_cb, (lws_usec_t)delay * LWS_US_PER_MS);
}

static void http_step(struct fetcher *f)
{
	struct lt_http_resp resp;
	int rc;

	f->http_done = false;
	f->http_wsi = NULL;
	memset(&resp, 0, sizeof(resp));
	resp.status = f->http_status;
	resp.body = lt_buf_err(&f->http_body) ? "" : (const char *)f->http_body.data;
	resp.body_len = lt_buf_err(&f->http_body) ? 0 : f->http_body.len;
	resp.set_cookie = f->set_cookie.len ? lt_buf_cstr(&f->set_cookie) : NULL;
	if (!resp.body)
		resp.body = "";
	rc = f->ops->http_done(f->pc, &resp);
	if (rc == LT_OK) {
		next_http(f);
	} else if (rc == LT_ENOTFOUND) {
		lt_error(f->ctxlog, "the room does not exist");
		status_set(&f->st, "error", "room not found");
		end(f, LT_FETCHER_EXIT_GONE, "error");
	} else {
		fail(f, "bootstrap %s: HTTP %d: %s", f->req.url, resp.status, lt_strerror(rc));
	}
}

static void step_cb(lws_sorted_usec_list_t *sul)
{
	struct fetcher *f = lws_container_of(sul, struct fetcher, sul_step);

	if (f->phase == PH_DONE)
		return;
	if (f->fail_pending)
		handle_failure(f);
	else if (f->http_done && f->phase == PH_BOOT)
		http_step(f);
}

static void step_soon(struct fetcher *f)
{
	lws_sul_schedule(f->ctx, 0, &f->sul_step, step_cb, 1);
}

/* Milliseconds to the next heartbeat: the configured interval, or what the
 * platform asks for now (kook: its HELLO, PING and PONG deadlines). */
static int next_hb_ms(struct fetcher *f)
{
	int ms = f->hb_fixed ? f->hb_ms : f->ops->heartbeat_ms(f->pc);
	return ms > 0 ? ms : 1;
}

/* A heartbeat that fails (kook: no HELLO in time, PONGs missed) drops the
 * connection like any other failure. */
static void hb_cb(lws_sorted_usec_list_t *sul)
{
	struct fetcher *f = lws_container_of(sul, struct fetcher, sul_hb);
	int rc;

	if (f->phase != PH_WS || !f->ws_open)
		return;
	rc = f->ops->heartbeat(f->pc, &f->io);
	if (rc != LT_OK) {
		fail(f, "heartbeat: %s", lt_strerror(rc));
		return;
	}
	lws_sul_schedule(f->ctx, 0, &f->sul_hb, hb_cb, (lws_usec_t)next_hb_ms(f) * LWS_US_PER_MS);
}

/* Keep the platform's resume state (ops->state_save) in f->state_path when
 * it changed: at most once a second unless force, written to a temporary
 * file and renamed, so a killed fetcher leaves the old or the new line. */
static void state_keep(struct fetcher *f, bool force)
{
	char cur[sizeof(f->state_last)], tmp[sizeof(f->state_path) + 8];
	int64_t now = lt_clock_mono_ms();
	size_t n;
	FILE *fp;

	if (!f->ops->state_save || !f->state_path[0] || (!force && now - f->state_written < 1000))
		return;
	n = f->ops->state_save(f->pc, cur, sizeof(cur));
	if (n == 0 || n >= sizeof(cur) || strcmp(cur, f->state_last) == 0)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", f->state_path);
	fp = fopen(tmp, "w");
	if (!fp || fwrite(cur, 1, n, fp) != n || fclose(fp) != 0 || rename(tmp, f->state_path) != 0) {
		if (fp)
			fclose(fp);
		lt_warn(f->ctxlog, "resume state: cannot write %s", tmp);
		f->state_written = now;
		return;
	}
	memcpy(f->state_last, cur, n + 1);
	f->state_written = now;
}

/* Hand the platform the resume state an earlier process kept. */
static void state_restore(struct fetcher *f, const char *dir, const char *platform, const char *room)
{
	char buf[sizeof(f->state_last)];
	size_t n;
	FILE *fp;

	if (!f->ops->state_load || !dir || !*dir)
		return;
	snprintf(f->state_path, sizeof(f->state_path), "%s/%s-%s.state", dir, platform, room);
	/* the spool directory may not exist yet (--stdout opens no spool) */
	for (char *s = f->state_path + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(f->state_path, 0700) != 0 && errno != EEXIST)
			lt_debug(f->ctxlog, "mkdir %s: %s", f->state_path, strerror(errno));
		*s = '/';
	}
	fp = fopen(f->state_path, "r");
	if (!fp)
		return;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	if (f->ops->state_load(f->pc, buf, n) == LT_OK) {
		memcpy(f->state_last, buf, n + 1);
		lt_info(f->ctxlog, "resume state restored");
	}
}

static void watch_cb(lws_sorted_usec_list_t *sul)
{
	struct fetcher *f = lws_container_of(sul, struct fetcher, sul_watch);
	int64_t idle = lt_clock_mono_ms() - f->last_rx_mono;

	if (f->phase != PH_WS || !f->ws_open)
		return;
	if (idle >= f->rx_timeout_ms) {
		fail(f, "nothing received for %" PRId64 " ms", idle);
		return;
	}
	lws_sul_schedule(f->ctx, 0, &f->sul_watch, watch_cb, (lws_usec_t)(f->rx_timeout_ms - idle) * LWS_US_PER_MS);
}

/* One complete frame from the server. */
static void on_frame(struct fetcher *f, const uint8_t *p, size_t n)
{
	struct lt_platform_stats ps;
	unsigned ev = 0;
	int64_t now = lt_clock_wall_ms();

	f->last_rx_mono = lt_clock_mono_ms();
	if (f->capture) {
		/* buffered; handed to the kernel at least once a second, so a
		 * killed fetcher loses at most a second of its recording */
		if (lt_capture_write(f->capture, now, p, n) != LT_OK ||
		    (now - f->capture_flushed >= 1000 && lt_capture_writer_flush(f->capture) != LT_OK))
			lt_warn(f->ctxlog, "--record: write failed");
		if (now - f->capture_flushed >= 1000)
			f->capture_flushed = now;
	}
	f->ops->on_frame(f->pc, p, n, now, &f->io, &ev);
	flush_stdout(f);
	state_keep(f, (ev & (LT_PEV_AUTHED | LT_PEV_RECONNECT)) != 0);
	f->ops->stats(f->pc, &ps);
	pthread_mutex_lock(&f->st.mu);
	f->st.bad_frames = ps.bad_frames;
	f->st.heartbeats = ps.heartbeats;
	pthread_mutex_unlock(&f->st.mu);
	lt_metrics_add(f->m_bad_frames, ps.bad_frames - f->seen_bad_frames);
	lt_metrics_add(f->m_heartbeats, ps.heartbeats - f->seen_heartbeats);
	f->seen_bad_frames = ps.bad_frames;
	f->seen_heartbeats = ps.heartbeats;

	if (ev & LT_PEV_AUTHED) {
		const char *room = f->ops->room(f->pc);
		lt_info(f->ctxlog, "authenticated; room %s is running", room ? room : "?");
		f->attempt = 0;
		f->retry_count = 0;
		f->authed_once = true;
		pthread_mutex_lock(&f->st.mu);
		snprintf(f->st.resolved, sizeof(f->st.resolved), "%s", room ? room : "");
		pthread_mutex_unlock(&f->st.mu);
		status_set(&f->st, "running", NULL);
		lt_metrics_set(f->m_running, 1);
		lws_sul_schedule(f->ctx, 0, &f->sul_hb, hb_cb, (lws_usec_t)next_hb_ms(f) * LWS_US_PER_MS);
	}
	if (ev & LT_PEV_LIVE_END)
		lt_info(f->ctxlog, "the stream went offline");
	if (ev & LT_PEV_CLOSE) {
		lt_warn(f->ctxlog, "the server ended the session for good");
		status_set(&f->st, "error", "closed by the server");
		end(f, LT_FETCHER_EXIT_GONE, "error");
		return;
	}
	if (ev & LT_PEV_RECONNECT)
		fail(f, "the server asked for a reconnect");
}

/* ---- the two protocol callbacks -------------------------------------------- */

/* Why OpenSSL refused the last server certificate ("" if it did not): lws's
 * own connection error says only "SSL err 1". One fetcher per process, one
 * connection attempt at a time, so one slot is enough. */
static char g_tls_refusal[160];

/* The reasons lws raises from inside OpenSSL: their `user` is an SSL_CTX or
 * an X509_STORE_CTX, not the connection's fetcher, so they must never be
 * read as one. Returning 0 keeps OpenSSL's own verdict on the certificate;
 * a refusal is only noted, for the connection error that follows. */
static bool openssl_reason(enum lws_callback_reasons reason, void *user, size_t len)
{
	if (reason == LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION && user && len == 0) {
		X509_STORE_CTX *x = user;
		snprintf(g_tls_refusal, sizeof(g_tls_refusal), "TLS: server certificate refused (%s)",
		         X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)));
	}

	switch (reason) {
	case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_CLIENT_VERIFY_CERTS:
	case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS:
	case LWS_CALLBACK_OPENSSL_PERFORM_CLIENT_CERT_VERIFICATION:
	case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
	case LWS_CALLBACK_OPENSSL_CONTEXT_REQUIRES_PRIVATE_KEY:
		return true;
	default:
		return false;
	}
}

static int http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct fetcher *f = user;
	char cookie[4096];

	if (openssl_reason(reason, user, len))
		return 0;
	if (!f || (wsi != f->http_wsi && !(f->in_connect && reason == LWS_CALLBACK_CLIENT_CONNECTION_ERROR)))
		return lws_callback_http_dummy(wsi, reason, user, in, len);

	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
		unsigned char **p = (unsigned char **)in, *end = (*p) + len;
		if (add_headers(wsi, f->req.headers, p, end))
			return -1;
		if (f->req.body) {
			char cl[24];
			snprintf(cl, sizeof(cl), "%zu", f->req.body_len);
			if (lws_add_http_header_by_name(wsi, (const unsigned char *)"content-length:",
			                                (const unsigned char *)cl, (int)strlen(cl), p, end))
				return -1;
			lws_client_http_body_pending(wsi, 1);
			lws_callback_on_writable(wsi);
		}
		break;
	}
	case LWS_CALLBACK_CLIENT_HTTP_WRITEABLE: {
		uint8_t *b;
		if (!f->req.body)
			break;
		b = malloc(LWS_PRE + f->req.body_len + 1);
		if (!b)
			return -1;
		memcpy(b + LWS_PRE, f->req.body, f->req.body_len);
		lws_client_http_body_pending(wsi, 0);
		if (lws_write(wsi, b + LWS_PRE, f->req.body_len, LWS_WRITE_HTTP_FINAL) < (int)f->req.body_len) {
			free(b);
			return -1;
		}
		free(b);
		break;
	}
	case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
		f->http_status = (int)lws_http_client_http_response(wsi);
		for (int i = 0; lws_hdr_copy_fragment(wsi, cookie, sizeof(cookie), WSI_TOKEN_HTTP_SET_COOKIE, i) >= 0; i++) {
			if (f->set_cookie.len)
				lt_buf_putc(&f->set_cookie, '\n');
			lt_buf_puts(&f->set_cookie, cookie);
		}
		break;
	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
		lt_buf_append(&f->http_body, in, len);
		break;
	case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
		char buffer[4096 + LWS_PRE], *px = buffer + LWS_PRE;
		int lenx = sizeof(buffer) - LWS_PRE;
		if (lws_http_client_read(wsi, &px, &lenx) < 0)
			return -1;
		return 0;
	}
	case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
		f->http_done = true;
		f->http_wsi = NULL;
		step_soon(f);
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		/* the cause (refused, TLS verification, ...) is only here */
		lt_warn(f->ctxlog, "HTTP connection failed: %s", g_tls_refusal[0] ? g_tls_refusal : in ? (const char *)in : "?");
		g_tls_refusal[0] = '\0';
		f->http_status = 0;
		f->http_done = true;
		f->http_wsi = NULL;
		step_soon(f);
		break;
	case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
		/* closed before COMPLETED: a transport failure */
		f->http_status = 0;
		f->http_done = true;
		f->http_wsi = NULL;
		step_soon(f);
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static int ws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct fetcher *f = user;

	if (openssl_reason(reason, user, len))
		return 0;
	if (!f)
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	if (f->in_connect && wsi != f->ws_wsi && reason == LWS_CALLBACK_CLIENT_CONNECTION_ERROR) {
		fail(f, "WebSocket connect failed: %s", g_tls_refusal[0] ? g_tls_refusal : in ? (const char *)in : "?");
		g_tls_refusal[0] = '\0';
		return 0;
	}
	if (wsi != f->ws_wsi) {
		/* a connection we gave up on: close it at the first chance */
		if (reason == LWS_CALLBACK_CLIENT_WRITEABLE || reason == LWS_CALLBACK_CLIENT_RECEIVE)
			return -1;
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}

	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
		unsigned char **p = (unsigned char **)in, *end = (*p) + len;
		if (add_headers(wsi, f->target.headers, p, end))
			return -1;
		break;
	}
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		f->ws_open = true;
		f->last_rx_mono = lt_clock_mono_ms();
		lws_sul_schedule(f->ctx, 0, &f->sul_watch, watch_cb, (lws_usec_t)f->rx_timeout_ms * LWS_US_PER_MS);
		if (f->ops->on_open(f->pc, &f->io) != LT_OK)
			fail(f, "auth frame could not be built");
		else if (!f->hb_fixed)
			/* a platform with a deadline before auth (kook: HELLO in 6 s) */
			lws_sul_schedule(f->ctx, 0, &f->sul_hb, hb_cb, (lws_usec_t)next_hb_ms(f) * LWS_US_PER_MS);
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (lws_is_first_fragment(wsi))
			lt_buf_reset(&f->rx);
		lt_buf_append(&f->rx, in, len);
		if (lt_buf_err(&f->rx)) {
			fail(f, "oversize frame");
			return -1;
		}
		if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
			on_frame(f, f->rx.data, f->rx.len);
			lt_buf_reset(&f->rx);
		}
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE: {
		struct out_frame *o = f->q_head;
		if (f->ws_close_req)
			return -1;
		if (!o)
			break;
		if (lws_write(wsi, o->data + LWS_PRE, o->len, o->text ? LWS_WRITE_TEXT : LWS_WRITE_BINARY) < (int)o->len) {
			fail(f, "write failed");
			return -1;
		}
		f->q_head = o->next;
		if (!f->q_head)
			f->q_tail = NULL;
		f->q_bytes -= o->len;
		free(o);
		if (f->q_head)
			lws_callback_on_writable(wsi);
		break;
	}
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		fail(f, "WebSocket connect failed: %s", g_tls_refusal[0] ? g_tls_refusal : in ? (const char *)in : "?");
		g_tls_refusal[0] = '\0';
		f->ws_wsi = NULL;
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		fail(f, "connection closed by the server");
		f->ws_wsi = NULL;
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
	{"lt-http", http_cb, 0, 0, 0, NULL, 0},
	{"lt-ws", ws_cb, 0, 65536, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- setup and teardown ------------------------------------------------------ */

/* The retry table: backoff_base_ms doubling up to backoff_max_ms; the last
 * entry repeats. max_failures attempts in a row are concealed (retried), the
 * next one turns the room to error. */
static void build_retry(struct fetcher *f, int64_t base, int64_t max, int64_t max_failures)
{
	int n = 0;

	for (int64_t d = base; n < LT_FETCHER_RETRY_STEPS; d *= 2) {
		f->retry_ms[n++] = (uint32_t)(d < max ? d : max);
		if (d >= max)
			break;
	}
	memset(&f->retry, 0, sizeof(f->retry));
	f->retry.retry_ms_table = f->retry_ms;
	f->retry.retry_ms_table_count = (uint16_t)n;
	f->retry.conceal_count = max_failures > 0 ? (uint16_t)(max_failures > 65534 ? 65534 : max_failures)
	                                          : LWS_RETRY_CONCEAL_ALWAYS;
	f->retry.jitter_percent = 20;
}

static int open_output(struct fetcher *f, struct lt_app *app, const char *source)
{
	const struct lt_config *cfg = lt_app_config(app);
	const char *procs[16], *pers[16];
	int np = 0, nq = 0, n = 0;
	struct lt_error e = {0};
	const char *rec = lt_app_opt(app, "record");

	if (rec && lt_capture_writer_open(rec, &f->capture) != LT_OK) {
		fprintf(stderr, "livetap-fetcher: --record %s: %s\n", rec, strerror(errno));
		return LT_EIO;
	}
	if (f->to_stdout)
		return LT_OK;
	for (int i = 0; i < 16 && lt_config_list(cfg, "fetcher.processors", i, &n); i++)
		procs[np++] = lt_config_list(cfg, "fetcher.processors", i, &n);
	for (int i = 0; i < 16 && lt_config_list(cfg, "fetcher.persisters", i, &n); i++)
		pers[nq++] = lt_config_list(cfg, "fetcher.persisters", i, &n);
	struct lt_delivery_opts o = {
		.source_id = source,
		.processors = procs,
		.n_processors = np,
		.persisters = pers,
		.n_persisters = nq,
		.spool_dir = lt_config_str(cfg, "fetcher.spool_dir"),
	};
	if (lt_delivery_open(&o, &f->delivery, &e) != LT_OK) {
		fprintf(stderr, "livetap-fetcher: %s\n", e.message);
		return LT_EIO;
	}
	return LT_OK;
}

/* The fetcher's series on /metrics; NULL series (a full registry) make every
 * update a no-op. */
static void open_metrics(struct fetcher *f, const char *room)
{
	f->m_messages = lt_metrics_series(lt_metrics_counter("livetap_fetcher_messages_total",
	                                                     "Messages decoded and handed on.", "room", NULL),
	                                  room, NULL);
	f->m_dropped = lt_metrics_series(lt_metrics_counter("livetap_fetcher_dropped_total",
	                                                    "Messages the pipeline refused (window and spool full).",
	                                                    "room", NULL),
	                                 room, NULL);
	f->m_bad_frames = lt_metrics_series(lt_metrics_counter("livetap_fetcher_bad_frames_total",
	                                                       "Frames with a malformed part, counted and skipped.",
	                                                       "room", NULL),
	                                    room, NULL);
	f->m_heartbeats = lt_metrics_series(lt_metrics_counter("livetap_fetcher_heartbeats_total",
	                                                       "Heartbeat replies received.", "room", NULL),
	                                    room, NULL);
	f->m_reconnects = lt_metrics_series(lt_metrics_counter("livetap_fetcher_reconnects_total",
	                                                       "Failed connection attempts and dropped connections.",
	                                                       "room", NULL),
	                                    room, NULL);
	f->m_running = lt_metrics_series(lt_metrics_gauge("livetap_fetcher_running",
	                                                  "1 while the room is connected and authenticated.", "room",
	                                                  NULL),
	                                 room, NULL);
}

/* True unless every endpoint of conf is known to be plain http:// / ws://
 * (without a ws_url the host list from the bootstrap may name wss://). */
static bool needs_tls(const struct lt_platform_conf *conf)
{
	const char *bases[] = {conf->api_base, conf->aux_base};

	if (!conf->ws_url || strncmp(conf->ws_url, "ws://", 5) != 0)
		return true;
	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++)
		if (bases[i] && strncmp(bases[i], "http://", 7) != 0)
			return true;
	return !conf->api_base && !conf->skip_bootstrap;
}

int lt_fetcher_run(struct lt_app *app, const struct lt_platform_ops *ops, const struct lt_platform_conf *conf)
{
	const struct lt_config *cfg = lt_app_config(app);
	struct lws_context_creation_info info;
	struct fetcher *f = calloc(1, sizeof(*f));
	char source[96];
	int rc = LT_FETCHER_EXIT_SETUP;

	if (!f)
		return LT_FETCHER_EXIT_SETUP;
	f->ops = ops;
	f->to_stdout = lt_app_flag(app, "stdout");
	f->io = (struct lt_platform_io){io_emit, io_send, f};
	lt_buf_init(&f->http_body, LT_FETCHER_HTTP_MAX);
	lt_buf_init(&f->set_cookie, 64u << 10);
	lt_buf_init(&f->rx, LT_CAPTURE_FRAME_MAX);
	lt_buf_init(&f->out, 0);
	snprintf(f->ctxlog, sizeof(f->ctxlog), "room=%s:%s", ops->name, conf->room);
	snprintf(source, sizeof(source), "%s:%s", ops->name, conf->room);
	build_retry(f, lt_config_int(cfg, "fetcher.backoff_base_ms"), lt_config_int(cfg, "fetcher.backoff_max_ms"),
	            lt_config_int(cfg, "fetcher.max_failures"));

	open_metrics(f, source);
	if (ops->create(conf, &f->pc) != LT_OK) {
		fprintf(stderr, "livetap-fetcher: room '%s' is not a valid %s room\n", conf->room, ops->name);
		goto out;
	}
	f->hb_fixed = lt_config_int(cfg, "fetcher.heartbeat_s") > 0;
	f->hb_ms = f->hb_fixed ? (int)lt_config_int(cfg, "fetcher.heartbeat_s") * 1000 : ops->heartbeat_ms(f->pc);
	state_restore(f, lt_config_str(cfg, "fetcher.spool_dir"), ops->name, conf->room);
	f->rx_timeout_ms = lt_config_int(cfg, "fetcher.rx_timeout_s") > 0
	                           ? (int)lt_config_int(cfg, "fetcher.rx_timeout_s") * 1000
	                           : f->hb_ms + 5000;
	if (status_start(&f->st, ops->name, conf->room, lt_config_str(cfg, "redis.url"),
	                 (int)lt_config_int(cfg, "redis.timeout_ms"),
	                 (int)lt_config_int(cfg, "fetcher.status_interval_ms")) != LT_OK)
		goto out_pc;
	if (open_output(f, app, source) != LT_OK)
		goto out_status;

	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	/* TLS only when an endpoint needs it: OpenSSL's set-up is most of a
	 * fetcher's memory, and an emulator on localhost speaks plain ws:// */
	if (needs_tls(conf))
		info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.timeout_secs = 15;
	info.connect_timeout_secs = 10;
	info.fd_limit_per_thread = 64;
	lws_set_log_level(LLL_ERR, NULL);
	f->ctx = lws_create_context(&info);
	if (!f->ctx) {
		fprintf(stderr, "livetap-fetcher: libwebsockets context failed\n");
		goto out_output;
	}

	lt_info(f->ctxlog, "starting (heartbeat %d ms, rx timeout %d ms, %s)", f->hb_ms, f->rx_timeout_ms,
	        f->to_stdout ? "stdout" : "pipeline");
	begin_attempt(f);
	int64_t next_release = lt_clock_mono_ms() + LT_APP_RELEASE_EVERY_MS;
	while (!lt_sig_stop_requested() && f->phase != PH_DONE) {
		if (lws_service(f->ctx, 0) < 0)
			break;
		if (lt_clock_mono_ms() >= next_release) {
			lt_app_release_memory(); /* a backlog's window, a reconnect's buffers */
			next_release = lt_clock_mono_ms() + LT_APP_RELEASE_EVERY_MS;
		}
	}
	if (f->phase != PH_DONE) {
		f->exit_code = LT_FETCHER_EXIT_OK;
		status_set(&f->st, "stopping", NULL);
		lt_info(f->ctxlog, "stopping");
	}
	rc = f->exit_code;
	state_keep(f, true);
	lws_sul_cancel(&f->sul_step);
	lws_sul_cancel(&f->sul_retry);
	lws_sul_cancel(&f->sul_hb);
	lws_sul_cancel(&f->sul_watch);
	f->ws_wsi = NULL;
	f->http_wsi = NULL;
	lws_context_destroy(f->ctx);
out_output:
	flush_stdout(f);
	if (f->delivery) {
		lt_delivery_drain(f->delivery, 1000); /* best effort; the spool keeps the rest */
		lt_delivery_close(f->delivery);
	}
	lt_capture_writer_close(f->capture);
	if (rc == LT_FETCHER_EXIT_OK)
		status_set(&f->st, "idle", NULL);
out_status:
	status_stop(&f->st);
out_pc:
	ops->destroy(f->pc);
out:
	sendq_clear(f);
	lt_buf_free(&f->http_body);
	lt_buf_free(&f->set_cookie);
	lt_buf_free(&f->rx);
	lt_buf_free(&f->out);
	free(f);
	return rc;
}
