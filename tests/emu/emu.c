/* SPDX-License-Identifier: MIT */
/*
 * emu: the platform-independent half of livetap-emu (see emu.h).
 *
 * One lws context, one vhost on --listen, one protocol whose callback serves
 * both the HTTP endpoints (handed to the module, except /emu/stats which the
 * framework answers itself: connections per room and counters, for tests) and
 * the WebSocket. A 20 ms lws_sul ticker paces the traffic: it works out how
 * many messages are due at --rate since the first subscriber appeared, takes
 * them from the script (the same for every room) or the generator (drawn for
 * each room), and hands them in frames of at most --batch-max to the module
 * for every subscribed connection of the room. The same ticker
 * runs the fault switches and reaps closed connections (never freed inside
 * their own callback).
 *
 * Writes happen only in SERVER_WRITEABLE, one queued frame per call; a
 * connection whose queue passes EMU_QUEUE_MAX bytes is closed as a slow
 * consumer, so memory stays bounded whatever the client does.
 */
#include "tests/emu/emu.h"

#include <errno.h>
#include <inttypes.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json.h"
#include "common/mem.h"
#include "common/sig.h"

#define EMU_TICK_MS 20
#define EMU_QUEUE_MAX (16u << 20)
#define EMU_RX_MAX (1u << 20)
#define EMU_TICK_MSGS_MAX 4096
#define EMU_AUTH_TIMEOUT_S 5
#define EMU_SHUTDOWN_MS 3000

struct emu_frame {
	struct emu_frame *next;
	char *log;     /* sent-log lines for the messages inside, or NULL */
	size_t len;
	uint8_t data[]; /* LWS_PRE + len */
};

struct emu_conn {
	struct emu_conn *next;
	struct emu *e;
	struct lws *wsi;      /* NULL once closed (reaped by the ticker) */
	struct emu_frame *head, *tail;
	size_t queued;
	struct lt_buf rx;
	char room[LT_MSG_ROOM_MAX + 1];
	bool subscribed;
	bool closing;
	bool dead;
	bool ping_pending;    /* emu_conn_ping: a PING goes out before the next frame */
	uint64_t pongs;       /* PONGs received */
	void *mod_data;
};

struct emu_pss {
	struct emu_conn *conn;   /* WebSocket */
	struct lt_buf body;      /* HTTP response body */
	size_t body_off;
};

struct emu {
	const struct emu_module *m;
	struct emu_opts o;
	void *mod;
	struct lws_context *ctx;
	struct lws_vhost *vh;
	lws_sorted_usec_list_t tick;
	uint64_t rng;
	struct emu_conn *conns;
	FILE *sent_log;
	/* traffic */
	struct lt_msg *script;
	size_t script_n, script_pos;
	struct lt_arena script_arena, tick_arena;
	int64_t t0;            /* ms when the first subscriber appeared; 0 = not yet */
	int64_t paused_ms;     /* time spent stalled since t0 */
	uint64_t produced;
	bool exhausted;
	/* faults */
	int64_t next_drop, next_stall, stall_until;
	/* counters for /emu/stats */
	uint64_t n_sent, n_frames, n_garbage, n_drops, n_stalls, n_conns;
	int port;
};

static struct emu *g_emu; /* the protocol callback's way back; one emulator per process */

const struct emu_opts *emu_options(const struct emu *e) { return &e->o; }
int emu_port(const struct emu *e) { return e->port; }
const char *emu_ws_scheme(const struct emu *e) { return e->o.tls_cert ? "wss" : "ws"; }
void *emu_conn_data(struct emu_conn *c) { return c->mod_data; }
bool emu_stalled(const struct emu *e) { return e->stall_until != 0; }

uint32_t emu_rand(struct emu *e)
{
	e->rng ^= e->rng >> 12;
	e->rng ^= e->rng << 25;
	e->rng ^= e->rng >> 27;
	return (uint32_t)((e->rng * 0x2545F4914F6CDD1DULL) >> 32);
}

int64_t emu_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Queue a frame with optional sent-log text (taken over). */
static void conn_queue(struct emu_conn *c, const void *p, size_t n, char *log)
{
	struct emu_frame *f;

	if (!c->wsi || c->dead || c->closing) {
		free(log);
		return;
	}
	if (c->queued + n > EMU_QUEUE_MAX) {
		fprintf(stderr, "livetap-emu: room %s: client too slow, closing\n", c->room);
		free(log);
		emu_conn_close(c);
		return;
	}
	f = malloc(sizeof(*f) + LWS_PRE + n);
	if (!f) {
		free(log);
		emu_conn_close(c);
		return;
	}
	f->next = NULL;
	f->log = log;
	f->len = n;
	memcpy(f->data + LWS_PRE, p, n);
	if (c->tail)
		c->tail->next = f;
	else
		c->head = f;
	c->tail = f;
	c->queued += n;
	lws_callback_on_writable(c->wsi);
}

void emu_conn_send(struct emu_conn *c, const void *p, size_t n)
{
	conn_queue(c, p, n, NULL);
}

void emu_conn_send_msgs(struct emu_conn *c, const void *p, size_t n, const struct lt_msg *msgs, size_t nmsgs)
{
	struct lt_buf log = LT_BUF_INIT;
	size_t len;

	if (c->e->sent_log) {
		for (size_t i = 0; i < nmsgs; i++) {
			const struct lt_msg *m = &msgs[i];
			lt_buf_printf(&log, "%s %s %.*s\n", c->room, lt_msg_type_name(m->type),
			              m->msg_id.len ? (int)m->msg_id.len : 1, m->msg_id.len ? m->msg_id.p : "-");
		}
	}
	if (lt_buf_err(&log)) {
		lt_buf_free(&log);
		conn_queue(c, p, n, NULL);
		return;
	}
	conn_queue(c, p, n, log.len ? (char *)lt_buf_steal(&log, &len) : NULL);
	lt_buf_free(&log);
}

void emu_conn_subscribe(struct emu_conn *c, const char *room)
{
	snprintf(c->room, sizeof(c->room), "%s", room);
	c->subscribed = true;
	emu_conn_touch(c);
}

void emu_conn_touch(struct emu_conn *c)
{
	if (c->wsi)
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, c->e->o.hb_timeout_s);
}

void emu_conn_close(struct emu_conn *c)
{
	c->closing = true;
	if (c->wsi)
		lws_callback_on_writable(c->wsi);
}

/* The decoded query arguments of wsi's request joined by '&' into buf. */
static const char *wsi_query(struct lws *wsi, char *buf, size_t cap)
{
	char frag[1024];
	size_t len = 0;

	if (!cap)
		return buf;
	buf[0] = '\0';
	for (int i = 0; wsi && lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i) >= 0; i++) {
		int n = snprintf(buf + len, cap - len, "%s%s", i ? "&" : "", frag);
		if (n < 0 || (size_t)n >= cap - len)
			break;
		len += (size_t)n;
	}
	return buf;
}

void emu_conn_ping(struct emu_conn *c)
{
	if (!c->wsi || c->closing || c->dead)
		return;
	c->ping_pending = true;
	lws_callback_on_writable(c->wsi);
}

uint64_t emu_conn_pongs(const struct emu_conn *c)
{
	return c->pongs;
}

const char *emu_conn_query(struct emu_conn *c, char *buf, size_t cap)
{
	return wsi_query(c->wsi, buf, cap);
}

/* LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: ask the module; a refusal is
 * written as "HTTP/1.1 200 OK" with handshake-status / handshake-msg and no
 * body (the shape Douyin's push servers answer a bad signature with), then
 * the connection is closed (non-zero return). */
static int ws_filter(struct emu *e, struct lws *wsi)
{
	char path[512] = "", query[4096], status[16];
	uint8_t hdr[LWS_PRE + 512], *start = &hdr[LWS_PRE], *p = start, *end = &hdr[sizeof(hdr) - 1];
	const char *msg = "";

	if (!e->m->ws_filter)
		return 0;
	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
		lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI);
	int st = e->m->ws_filter(e->mod, path, wsi_query(wsi, query, sizeof(query)), &msg);
	if (!st)
		return 0;
	snprintf(status, sizeof(status), "%d", st);
	if (!lws_add_http_header_status(wsi, 200, &p, end) &&
	    !lws_add_http_header_by_name(wsi, (const unsigned char *)"handshake-status:", (const unsigned char *)status,
	                                 (int)strlen(status), &p, end) &&
	    !lws_add_http_header_by_name(wsi, (const unsigned char *)"handshake-msg:", (const unsigned char *)msg,
	                                 (int)strlen(msg), &p, end) &&
	    !lws_add_http_header_content_length(wsi, 0, &p, end) && !lws_finalize_http_header(wsi, &p, end))
		lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS);
	return -1;
}

static void conn_free_frames(struct emu_conn *c)
{
	struct emu_frame *f = c->head, *nx;

	for (; f; f = nx) {
		nx = f->next;
		free(f->log);
		free(f);
	}
	c->head = c->tail = NULL;
	c->queued = 0;
}

/* Write the head frame; 0 to keep the connection, -1 to close it. */
static int conn_writeable(struct emu *e, struct emu_conn *c)
{
	struct emu_frame *f = c->head;

	if (emu_stalled(e))
		return 0; /* the ticker asks for WRITEABLE again when the stall ends */
	if (c->ping_pending && !c->closing) {
		uint8_t ping[LWS_PRE + 8];
		memcpy(ping + LWS_PRE, "emu-ping", 8);
		c->ping_pending = false;
		if (lws_write(c->wsi, ping + LWS_PRE, 8, LWS_WRITE_PING) < 8)
			return -1;
		if (f || c->closing)
			lws_callback_on_writable(c->wsi);
		return 0;
	}
	if (!f) {
		if (c->closing) {
			lws_close_reason(c->wsi, LWS_CLOSE_STATUS_GOINGAWAY, NULL, 0);
			return -1;
		}
		return 0;
	}
	if (lws_write(c->wsi, f->data + LWS_PRE, f->len, LWS_WRITE_BINARY) < (int)f->len)
		return -1;
	e->n_frames++;
	if (f->log && e->sent_log) {
		fputs(f->log, e->sent_log);
		for (const char *s = f->log; *s; s++)
			e->n_sent += *s == '\n';
	}
	c->head = f->next;
	if (!c->head)
		c->tail = NULL;
	c->queued -= f->len;
	free(f->log);
	free(f);
	if (c->head || c->closing)
		lws_callback_on_writable(c->wsi);
	return 0;
}

/* GET /emu/stats: what tests need to see from outside. */
static void stats_json(struct emu *e, struct lt_buf *b)
{
	bool first = true;

	lt_buf_printf(b, "{\"sent\":%" PRIu64 ",\"frames\":%" PRIu64 ",\"garbage\":%" PRIu64 ",\"drops\":%" PRIu64
	                 ",\"stalls\":%" PRIu64 ",\"connections_total\":%" PRIu64 ",\"produced\":%" PRIu64
	                 ",\"exhausted\":%s,\"rooms\":{",
	              e->n_sent, e->n_frames, e->n_garbage, e->n_drops, e->n_stalls, e->n_conns, e->produced,
	              e->exhausted ? "true" : "false");
	/* connections per subscribed room (small lists: quadratic is fine) */
	for (struct emu_conn *c = e->conns; c; c = c->next) {
		int n = 0;
		bool seen = false;
		if (c->dead || !c->subscribed)
			continue;
		for (struct emu_conn *d = e->conns; d != c; d = d->next)
			if (!d->dead && d->subscribed && !strcmp(d->room, c->room))
				seen = true;
		if (seen)
			continue;
		for (struct emu_conn *d = c; d; d = d->next)
			if (!d->dead && d->subscribed && !strcmp(d->room, c->room))
				n++;
		lt_buf_printf(b, "%s", first ? "" : ",");
		lt_json_str(b, c->room, strlen(c->room));
		lt_buf_printf(b, ":%d", n);
		first = false;
	}
	lt_buf_puts(b, "}}");
}

static int http_request(struct emu *e, struct lws *wsi, struct emu_pss *pss, const char *path)
{
	uint8_t hdr[LWS_PRE + 2048], *start = &hdr[LWS_PRE], *p = start, *end = &hdr[sizeof(hdr) - 1];
	char query[2048] = "", cookie[2048] = "", ua[512] = "", auth[512] = "", frag[1024];
	struct emu_http_req rq = {path, query, cookie, ua, auth};
	struct emu_http_resp rs;
	size_t qlen = 0;
	int rc;

	/* the query, re-joined from lws's decoded fragments */
	for (int i = 0; lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i) >= 0; i++) {
		int n = snprintf(query + qlen, sizeof(query) - qlen, "%s%s", i ? "&" : "", frag);
		if (n < 0 || (size_t)n >= sizeof(query) - qlen)
			break;
		qlen += (size_t)n;
	}
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COOKIE) > 0)
		lws_hdr_copy(wsi, cookie, sizeof(cookie), WSI_TOKEN_HTTP_COOKIE);
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_USER_AGENT) > 0)
		lws_hdr_copy(wsi, ua, sizeof(ua), WSI_TOKEN_HTTP_USER_AGENT);
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) > 0)
		lws_hdr_copy(wsi, auth, sizeof(auth), WSI_TOKEN_HTTP_AUTHORIZATION);

	memset(&rs, 0, sizeof(rs));
	lt_buf_init(&rs.body, 1u << 20);
	if (!strcmp(path, "/emu/stats")) {
		stats_json(e, &rs.body);
		rc = LT_OK;
	} else {
		rc = e->m->http(e->mod, &rq, &rs);
	}
	if (rc == LT_ENOTFOUND) {
		lt_buf_reset(&rs.body);
		lt_buf_puts(&rs.body, "{\"code\":-404,\"message\":\"啥都木有\"}");
		rs.status = 404;
	}
	if (!rs.status)
		rs.status = 200;
	lt_buf_free(&pss->body);
	pss->body = rs.body;
	pss->body_off = 0;
	if (lt_buf_err(&pss->body))
		return -1;
	if (lws_add_http_common_headers(wsi, (unsigned)rs.status,
	                                rs.content_type ? rs.content_type : "application/json; charset=utf-8",
	                                pss->body.len, &p, end))
		return -1;
	if (rs.set_cookie[0] &&
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"set-cookie:", (const unsigned char *)rs.set_cookie,
	                                (int)strlen(rs.set_cookie), &p, end))
		return -1;
	if (lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	lws_callback_on_writable(wsi);
	return 0;
}

static int http_writeable(struct lws *wsi, struct emu_pss *pss)
{
	size_t left = pss->body.len - pss->body_off, n = left > 16384 ? 16384 : left;
	uint8_t *buf = malloc(LWS_PRE + n + 1);
	int final = n == left;

	if (!buf)
		return -1;
	if (n)
		memcpy(buf + LWS_PRE, pss->body.data + pss->body_off, n);
	if (lws_write(wsi, buf + LWS_PRE, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)n) {
		free(buf);
		return -1;
	}
	free(buf);
	pss->body_off += n;
	if (!final) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	lt_buf_free(&pss->body);
	if (lws_http_transaction_completed(wsi))
		return -1;
	return 0;
}

static int ws_established(struct emu *e, struct lws *wsi, struct emu_pss *pss)
{
	char path[512] = "";
	struct emu_conn *c;

	if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0)
		lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI);
	if (e->m->ws_path && strcmp(path, e->m->ws_path) != 0)
		return -1;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	c->mod_data = e->m->conn_size ? calloc(1, e->m->conn_size) : NULL;
	if (e->m->conn_size && !c->mod_data) {
		free(c);
		return -1;
	}
	c->e = e;
	c->wsi = wsi;
	lt_buf_init(&c->rx, EMU_RX_MAX);
	c->next = e->conns;
	e->conns = c;
	pss->conn = c;
	e->n_conns++;
	lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, EMU_AUTH_TIMEOUT_S);
	if (e->m->ws_open)
		e->m->ws_open(e->mod, c, path);
	return 0;
}

static int ws_receive(struct emu *e, struct lws *wsi, struct emu_conn *c, const void *in, size_t len)
{
	if (lws_is_first_fragment(wsi))
		lt_buf_reset(&c->rx);
	lt_buf_append(&c->rx, in, len);
	if (lt_buf_err(&c->rx))
		return -1; /* an oversize frame: no real client sends one */
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
		return 0;
	if (e->m->ws_rx)
		e->m->ws_rx(e->mod, c, c->rx.data, c->rx.len);
	lt_buf_reset(&c->rx);
	return 0;
}

static int emu_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct emu *e = g_emu;
	struct emu_pss *pss = user;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		return http_request(e, wsi, pss, in ? (const char *)in : "/");
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return http_writeable(wsi, pss);
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
	case LWS_CALLBACK_CLOSED_HTTP:
		if (pss)
			lt_buf_free(&pss->body);
		break;
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return ws_filter(e, wsi);
	case LWS_CALLBACK_ESTABLISHED:
		return ws_established(e, wsi, pss);
	case LWS_CALLBACK_RECEIVE:
		return pss->conn ? ws_receive(e, wsi, pss->conn, in, len) : -1;
	case LWS_CALLBACK_RECEIVE_PONG:
		if (pss->conn)
			pss->conn->pongs++;
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return pss->conn ? conn_writeable(e, pss->conn) : 0;
	case LWS_CALLBACK_CLOSED:
		if (pss->conn) {
			/* reaped by the ticker, not freed inside its own callback */
			pss->conn->wsi = NULL;
			pss->conn->dead = true;
			pss->conn = NULL;
		}
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols emu_protocols[] = {
	{"emu", emu_callback, sizeof(struct emu_pss), 65536, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

static void reap(struct emu *e)
{
	struct emu_conn **pp = &e->conns, *c;

	while ((c = *pp)) {
		if (!c->dead) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		if (e->m->ws_close)
			e->m->ws_close(e->mod, c);
		conn_free_frames(c);
		lt_buf_free(&c->rx);
		free(c->mod_data);
		free(c);
	}
}

/* The next message of the script into *m, or false when it is exhausted. */
static bool next_script_message(struct emu *e, struct lt_msg *m)
{
	if (e->exhausted || !e->script_n) {
		e->exhausted = true;
		return false;
	}
	if (e->script_pos == e->script_n) {
		if (!e->o.loop) {
			e->exhausted = true;
			return false;
		}
		e->script_pos = 0;
	}
	*m = e->script[e->script_pos++];
	m->ts = emu_now_ms();
	return true;
}

static bool conn_live(const struct emu_conn *c)
{
	return c->subscribed && !c->dead && !c->closing;
}

/* True if c is the first live connection of its room in the list. */
static bool first_of_room(const struct emu *e, const struct emu_conn *c)
{
	for (const struct emu_conn *d = e->conns; d != c; d = d->next)
		if (conn_live(d) && !strcmp(d->room, c->room))
			return false;
	return true;
}

/* Hand msgs[0..n) to every live connection of room, in frames of at most
 * batch_max messages, with a corrupted frame before some (--garbage). */
static void push_room(struct emu *e, const char *room, const struct lt_msg *msgs, size_t n, struct lt_msg *per)
{
	for (struct emu_conn *c = e->conns; c; c = c->next) {
		if (!conn_live(c) || strcmp(c->room, room) != 0)
			continue;
		for (size_t i = 0; i < n; i += (size_t)e->o.batch_max) {
			size_t k = n - i < (size_t)e->o.batch_max ? n - i : (size_t)e->o.batch_max;
			for (size_t j = 0; j < k; j++) {
				per[j] = msgs[i + j];
				per[j].platform = (uint8_t)lt_platform_parse(e->m->name, strlen(e->m->name));
				per[j].room = lt_str_c(c->room);
			}
			if (e->o.garbage > 0 && e->m->ws_garbage &&
			    (double)emu_rand(e) / 4294967296.0 < e->o.garbage) {
				e->m->ws_garbage(e->mod, c);
				e->n_garbage++;
			}
			e->m->ws_push(e->mod, c, per, k);
		}
	}
}

/* The messages due since the last tick: a script's are the same for every
 * room; a generated stream is drawn for each room separately (so that two
 * demo rooms do not show the same chat), opening with LIVE and ending with
 * PREPARING after --duration. */
static void traffic(struct emu *e, int64_t now)
{
	struct lt_msg *msgs, *per;
	bool any = false, opening, ending;
	uint64_t due;
	size_t k, n = 0;

	for (struct emu_conn *c = e->conns; c; c = c->next)
		any |= conn_live(c);
	if (!e->t0) {
		if (!any)
			return;
		e->t0 = now;
	}
	if (e->exhausted)
		return;
	due = (uint64_t)((double)(now - e->t0 - e->paused_ms) * e->o.rate / 1000.0);
	ending = e->o.generate && e->o.duration_s > 0 && now - e->t0 - e->paused_ms >= (int64_t)e->o.duration_s * 1000;
	if (due <= e->produced && !ending)
		return;
	if (due - e->produced > EMU_TICK_MSGS_MAX)
		e->produced = due - EMU_TICK_MSGS_MAX; /* we fell behind: skip, don't flood */
	k = due > e->produced ? (size_t)(due - e->produced) : 0;
	opening = e->produced == 0;
	lt_arena_reset(&e->tick_arena);
	msgs = lt_arena_alloc(&e->tick_arena, sizeof(*msgs) * (k + 1));
	per = lt_arena_alloc(&e->tick_arena, sizeof(*per) * (size_t)e->o.batch_max);
	if (!msgs || !per)
		return;
	e->produced = due;

	if (!e->o.generate) {
		while (n < k && next_script_message(e, &msgs[n]))
			n++;
		for (struct emu_conn *c = e->conns; c; c = c->next)
			if (conn_live(c) && first_of_room(e, c))
				push_room(e, c->room, msgs, n, per);
		return;
	}
	for (struct emu_conn *c = e->conns; c; c = c->next) {
		if (!conn_live(c) || !first_of_room(e, c))
			continue;
		n = 0;
		if (ending) {
			memset(&msgs[0], 0, sizeof(msgs[0]));
			msgs[0].type = LT_MSG_LIVE_END;
			msgs[0].ts = emu_now_ms();
			n = 1;
		}
		for (; !ending && n < k; n++) {
			if (opening && n == 0) {
				/* a generated stream opens like a broadcast does: LIVE */
				memset(&msgs[0], 0, sizeof(msgs[0]));
				msgs[0].type = LT_MSG_LIVE_START;
				msgs[0].ts = emu_now_ms();
				continue;
			}
			emu_generate(e, c->room, &e->tick_arena, &msgs[n]);
		}
		push_room(e, c->room, msgs, n, per);
	}
	if (ending)
		e->exhausted = true;
}

static void faults(struct emu *e, int64_t now)
{
	if (e->o.drop_every_s > 0 && e->t0) {
		if (!e->next_drop)
			e->next_drop = now + (int64_t)e->o.drop_every_s * 1000;
		if (now >= e->next_drop) {
			for (struct emu_conn *c = e->conns; c; c = c->next)
				if (!c->dead)
					emu_conn_close(c);
			e->n_drops++;
			e->next_drop = now + (int64_t)e->o.drop_every_s * 1000;
		}
	}
	if (e->o.stall_every_s > 0 && e->t0) {
		if (!e->next_stall)
			e->next_stall = now + (int64_t)e->o.stall_every_s * 1000;
		if (!e->stall_until && now >= e->next_stall) {
			e->stall_until = now + (int64_t)e->o.stall_for_s * 1000;
			e->n_stalls++;
		}
		if (e->stall_until && now >= e->stall_until) {
			e->stall_until = 0;
			e->next_stall = now + (int64_t)e->o.stall_every_s * 1000;
			for (struct emu_conn *c = e->conns; c; c = c->next)
				if (c->wsi)
					lws_callback_on_writable(c->wsi);
		}
	}
}

static void tick_cb(lws_sorted_usec_list_t *sul)
{
	struct emu *e = lws_container_of(sul, struct emu, tick);
	int64_t now = mono_ms();

	reap(e);
	faults(e, now);
	if (emu_stalled(e)) {
		if (e->t0)
			e->paused_ms += EMU_TICK_MS;
	} else {
		traffic(e, now);
	}
	if (e->sent_log)
		fflush(e->sent_log);
	lws_sul_schedule(e->ctx, 0, &e->tick, tick_cb, EMU_TICK_MS * LWS_US_PER_MS);
}

/* On SIGTERM: no more traffic, write what is queued, close every WebSocket
 * with a close frame and wait (at most EMU_SHUTDOWN_MS) until the clients
 * have answered it, so that every frame in the sent-log was also read by the
 * client (an abrupt close could reset the connection and lose the last
 * frames in flight). */
static void shutdown_gracefully(struct emu *e)
{
	int64_t deadline = mono_ms() + EMU_SHUTDOWN_MS;
	bool open = true;

	e->exhausted = true;
	e->stall_until = 0;
	while (open && mono_ms() < deadline) {
		open = false;
		for (struct emu_conn *c = e->conns; c; c = c->next)
			if (!c->dead) {
				if (!c->closing)
					emu_conn_close(c);
				open = true;
			}
		if (open && lws_service(e->ctx, 0) < 0)
			break;
	}
	if (e->sent_log)
		fflush(e->sent_log);
}

/* Read --script: one normalized JSON message per line, blank lines and lines
 * starting with '#' skipped; a bad line is a start-up error naming the line. */
static int load_script(struct emu *e, const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	ssize_t n;
	int lineno = 0, rc = 0;

	if (!f) {
		fprintf(stderr, "livetap-emu: --script %s: %s\n", path, strerror(errno));
		return 1;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		struct lt_error err = {0};
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = 0;
		if (n == 0 || line[0] == '#')
			continue;
		if (e->script_n == alloc) {
			size_t na = alloc ? alloc * 2 : 256;
			struct lt_msg *nm = realloc(e->script, na * sizeof(*nm));
			if (!nm || na > 10000000) {
				free(nm == e->script ? NULL : nm);
				fprintf(stderr, "livetap-emu: --script %s: too large\n", path);
				rc = 1;
				break;
			}
			e->script = nm;
			alloc = na;
		}
		if (lt_json_msg_parse(line, (size_t)n, &e->script_arena, &e->script[e->script_n], &err) != LT_OK) {
			fprintf(stderr, "livetap-emu: --script %s:%d: %s\n", path, lineno,
			        err.message[0] ? err.message : "not a normalized message");
			rc = 1;
			break;
		}
		e->script_n++;
	}
	free(line);
	fclose(f);
	return rc;
}

int emu_run(const struct emu_module *m, const struct emu_opts *o)
{
	struct lws_context_creation_info info;
	struct emu e;
	int rc = 1;

	memset(&e, 0, sizeof(e));
	e.m = m;
	e.o = *o;
	if (e.o.rate <= 0)
		e.o.rate = 10;
	if (e.o.stall_for_s <= 0)
		e.o.stall_for_s = 10;
	if (e.o.hb_timeout_s <= 0)
		e.o.hb_timeout_s = 60;
	if (e.o.batch_max <= 0)
		e.o.batch_max = 16;
	e.rng = o->seed ? o->seed * 0x9E3779B97F4A7C15ULL : 0x853c49e6748fea9bULL;
	lt_arena_init(&e.script_arena, 0);
	lt_arena_init(&e.tick_arena, 0);
	g_emu = &e;

	if (o->script && load_script(&e, o->script))
		goto out;
	if (o->sent_log) {
		e.sent_log = fopen(o->sent_log, "a");
		if (!e.sent_log) {
			fprintf(stderr, "livetap-emu: --sent-log %s: %s\n", o->sent_log, strerror(errno));
			goto out;
		}
	}
	if (m->init && m->init(&e, &e.mod) != LT_OK) {
		fprintf(stderr, "livetap-emu: module %s failed to start\n", m->name);
		goto out_log;
	}

	lws_set_log_level(LLL_ERR, NULL);
	memset(&info, 0, sizeof(info));
	info.port = o->port;
	info.iface = o->listen_host;
	info.protocols = emu_protocols;
	if (o->tls_cert) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = o->tls_cert;
		info.ssl_private_key_filepath = o->tls_key;
	}
	e.ctx = lws_create_context(&info);
	if (!e.ctx) {
		fprintf(stderr, "livetap-emu: cannot listen on %s:%d\n", o->listen_host, o->port);
		goto out_mod;
	}
	e.vh = lws_get_vhost_by_name(e.ctx, "default");
	e.port = e.vh ? lws_get_vhost_listen_port(e.vh) : o->port;
	printf("livetap-emu: %s listening on %s:%d\n", m->name, o->listen_host, e.port);
	fflush(stdout);

	lws_sul_schedule(e.ctx, 0, &e.tick, tick_cb, EMU_TICK_MS * LWS_US_PER_MS);
	while (!lt_sig_stop_requested())
		if (lws_service(e.ctx, 0) < 0)
			break;
	rc = 0;
	shutdown_gracefully(&e);
	lws_sul_cancel(&e.tick);
	lws_context_destroy(e.ctx);
	reap(&e);
out_mod:
	if (m->fini)
		m->fini(e.mod);
out_log:
	if (e.sent_log)
		fclose(e.sent_log);
out:
	free(e.script);
	lt_arena_free(&e.script_arena);
	lt_arena_free(&e.tick_arena);
	g_emu = NULL;
	return rc;
}
