/* SPDX-License-Identifier: MIT */
/*
 * emu_douyin: the Douyin module of livetap-emu, after
 * ../shared/brief/protocols/douyin.md (its emulator checklist).
 *
 * HTTP (one port stands for live.douyin.com): "/" sets the ttwid cookie;
 * "/{web_rid}" (12 digits or fewer) answers the live page whose escaped SSR
 * state carries roomId\":\"7{web_rid}\", user_unique_id and status_str 2 —
 * but only with a ttwid cookie; without one it is the risk-control page
 * with no roomId, as the real site does.
 *
 * WebSocket /webcast/im/push/v2/: the query must carry room_id (7{web_rid}),
 * user_unique_id and a signature that passes the native signer's check over
 * their X-MS-STUB (fetcher/douyin_sign.c: the emulator checks what the
 * fetcher signed). A refused upgrade gets what the real server answers:
 * HTTP 200 instead of 101 with "handshake-status: 415" and
 * "handshake-msg: DEVICE_BLOCKED", no body (the framework's ws_filter hook).
 * On connect the last LT_EMU_DY_RECENT messages are sent again with their
 * msg_ids (need_persist_msg_count), so a reconnecting client sees repeats
 * and must drop them; they are not written to the sent-log again.
 *
 * Messages go out as real push frames (tests/support/douyin_enc.c): a
 * PushFrame with the im-* headers and a gzip'd Response, every 4th one with
 * need_ack; consecutive gifts of one user and gift are one combo (cumulative
 * repeat_count) closed by a repeat_end message; live_end is a Control
 * message with action 3. Heartbeat frames ("hb") keep the connection alive
 * and are answered with an hb frame; a WebSocket PING goes out every
 * second and a client that sends no PONG for 20 s is dropped (the real
 * server's behaviour, douyin.md §1.4); acks are counted and must name the
 * log_id of a frame that asked for one. Types Douyin has no message for
 * (superchat, guard, live_start, other) are not sent and not logged.
 * --garbage sends random bytes or a frame whose gzip is cut short.
 */
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/mem.h"
#include "fetcher/douyin.h"
#include "fetcher/douyin.pb-c.h"
#include "fetcher/douyin_sign.h"
#include "tests/emu/emu.h"
#include "tests/support/douyin_enc.h"

#define LT_EMU_DY_RECENT 15
#define LT_EMU_DY_ACK_EVERY 4
#define LT_EMU_DY_PING_MS 1000          /* a WebSocket PING this often */
#define LT_EMU_DY_PONG_TIMEOUT_MS 20000 /* no PONG for this long: drop the client */

struct recent {
	char method[48];
	uint8_t *payload;
	size_t len;
	uint64_t msg_id;
};

struct dymod {
	struct emu *e;
	struct recent recent[LT_EMU_DY_RECENT]; /* a ring, oldest at head */
	int recent_head, recent_n;
	uint64_t ttwid_seq;
	uint64_t run; /* the wall-clock second the emulator started */
	uint64_t rejected, acks, bad_acks, heartbeats, conns, replayed, pings, pongs;
};

struct dyconn {
	struct dyenc enc;
	bool ok;
	uint64_t seq;
	uint64_t ack_log_ids[64]; /* frames that asked for an ack, not yet acked */
	int64_t next_ping_ms;     /* when the next WebSocket PING goes out */
	int64_t pong_ms;          /* when a PONG last arrived (or the connection opened) */
	uint64_t pongs_seen;
};

static int dy_init(struct emu *e, void **mod)
{
	struct dymod *m = calloc(1, sizeof(*m));
	if (!m)
		return LT_ENOMEM;
	m->e = e;
	m->run = (uint64_t)(emu_now_ms() / 1000);
	*mod = m;
	return LT_OK;
}

static void dy_fini(void *mod)
{
	struct dymod *m = mod;
	if (!m)
		return;
	fprintf(stderr,
	        "livetap-emu: douyin: connections=%llu rejected=%llu heartbeats=%llu acks=%llu bad_acks=%llu "
	        "replayed=%llu pings=%llu pongs=%llu\n",
	        (unsigned long long)m->conns, (unsigned long long)m->rejected, (unsigned long long)m->heartbeats,
	        (unsigned long long)m->acks, (unsigned long long)m->bad_acks, (unsigned long long)m->replayed,
	        (unsigned long long)m->pings, (unsigned long long)m->pongs);
	for (int i = 0; i < LT_EMU_DY_RECENT; i++)
		free(m->recent[i].payload);
	free(m);
}

static bool all_digits(const char *s, size_t max)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (s[n] < '0' || s[n] > '9')
			return false;
	return n > 0 && n <= max;
}

static int dy_http(void *mod, const struct emu_http_req *rq, struct emu_http_resp *rs)
{
	struct dymod *m = mod;

	if (!strcmp(rq->path, "/")) {
		snprintf(rs->set_cookie, sizeof(rs->set_cookie),
		         "ttwid=1%%7Cemu%llu%%7C1732212345%%7Cd1f0a3; Path=/; Domain=douyin.com; Max-Age=31536000; HttpOnly",
		         (unsigned long long)++m->ttwid_seq);
		rs->content_type = "text/html; charset=utf-8";
		lt_buf_puts(&rs->body, "<!DOCTYPE html><html><head><title>抖音直播</title></head><body></body></html>");
		return LT_OK;
	}
	const char *rid = rq->path + 1;
	if (!all_digits(rid, 18))
		return LT_ENOTFOUND;
	rs->content_type = "text/html; charset=utf-8";
	if (!strstr(rq->cookie, "ttwid=")) {
		/* the risk-control page: no room state at all */
		lt_buf_puts(&rs->body, "<html><body><div id=\"captcha\">请完成下列验证后继续</div></body></html>");
		return LT_OK;
	}
	lt_buf_printf(&rs->body,
	              "<!DOCTYPE html><html><head><title>直播间</title></head><body><script>"
	              "self.__pace_f.push([1,\"a:[\\\"$\\\",\\\"$L1\\\",null,{\\\"state\\\":{\\\"roomStore\\\":"
	              "{\\\"roomInfo\\\":{\\\"roomId\\\":\\\"7%s\\\",\\\"web_rid\\\":\\\"%s\\\",\\\"room\\\":"
	              "{\\\"id_str\\\":\\\"7%s\\\",\\\"status\\\":2,\\\"status_str\\\":\\\"2\\\",\\\"title\\\":\\\"来聊天\\\"}}},"
	              "\\\"userStore\\\":{\\\"odin\\\":{\\\"user_unique_id\\\":\\\"73%017llu\\\"}}}}]\"])</script></body></html>",
	              rid, rid, rid, (unsigned long long)(emu_rand(m->e) % 100000000000000000ULL));
	return LT_OK;
}

/* The value of key in a "a=b&c=d" query, copied into out. */
static bool qget(const char *q, const char *key, char *out, size_t cap)
{
	size_t kl = strlen(key);
	for (const char *p = q; p && *p;) {
		if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
			p += kl + 1;
			size_t n = strcspn(p, "&");
			if (n >= cap)
				return false;
			memcpy(out, p, n);
			out[n] = '\0';
			return true;
		}
		p = strchr(p, '&');
		if (p)
			p++;
	}
	return false;
}

/* Send the recent messages again (no sent-log lines: they were logged). */
static void send_recent(struct dymod *m, struct emu_conn *c, struct dyconn *dc)
{
	struct lt_buf f = LT_BUF_INIT;
	if (!m->recent_n)
		return;
	lt_buf_init(&f, 0);
	for (int i = 0; i < m->recent_n; i++) {
		const struct recent *r = &m->recent[(m->recent_head + i) % LT_EMU_DY_RECENT];
		dyenc_add_raw(&dc->enc, r->method, r->payload, r->len, r->msg_id);
	}
	struct dyenc_frame_opts o = {.gzip = true, .seq_id = ++dc->seq, .log_id = 7394000000000000000ULL + dc->seq,
	                             .now_ms = emu_now_ms()};
	if (dyenc_frame(&dc->enc, &f, &o) == LT_OK) {
		emu_conn_send(c, f.data, f.len);
		m->replayed += (uint64_t)m->recent_n;
	}
	lt_buf_free(&f);
}

/* The upgrade's parameters: room_id (7{web_rid}), user_unique_id and the
 * signature over their X-MS-STUB. Returns false if anything is missing or
 * the signature does not pass the check. */
static bool check_params(const char *q, char room_id[64])
{
	char uid[64] = "", sig[LT_DY_SIG_MAX] = "", sdk[64] = "", stub[33];

	if (!qget(q, "room_id", room_id, 64) || !qget(q, "user_unique_id", uid, sizeof(uid)) ||
	    !qget(q, "signature", sig, sizeof(sig)) || !qget(q, "webcast_sdk_version", sdk, sizeof(sdk)) ||
	    room_id[0] != '7' || !all_digits(room_id + 1, 18) || !all_digits(uid, 20))
		return false;
	lt_douyin_stub(room_id, uid, sdk, stub);
	return lt_douyin_sign_check(sig, stub) == LT_OK;
}

static int dy_ws_filter(void *mod, const char *path, const char *query, const char **msg)
{
	struct dymod *m = mod;
	char room_id[64] = "";

	(void)path;
	if (check_params(query, room_id))
		return 0;
	m->rejected++;
	*msg = "DEVICE_BLOCKED";
	return 415;
}

static void dy_ws_open(void *mod, struct emu_conn *c, const char *path)
{
	struct dymod *m = mod;
	struct dyconn *dc = emu_conn_data(c);
	char q[4096], room_id[64] = "";

	(void)path;
	dyenc_init(&dc->enc, 0);
	emu_conn_query(c, q, sizeof(q));
	if (!check_params(q, room_id)) { /* the filter let it through: cannot happen */
		m->rejected++;
		emu_conn_close(c);
		return;
	}
	dc->enc.room_id = strtoull(room_id, NULL, 10);
	/* combo group ids and the closers' msg_ids are unique across
	 * connections and emulator runs, as the server's are (a client keeps the
	 * last repeat_count per group and the recent msg_ids over reconnects,
	 * so a reused group would make new steps look old) */
	uint64_t conn_base = ((m->run % 100000) * 10000 + (m->conns + m->rejected + 1) % 10000) * 1000000ULL;
	dc->enc.group_seq = conn_base;
	dc->enc.closer_id = 7400000000000000000ULL + conn_base;
	dc->ok = true;
	dc->next_ping_ms = emu_now_ms() + LT_EMU_DY_PING_MS;
	dc->pong_ms = emu_now_ms();
	m->conns++;
	emu_conn_subscribe(c, room_id + 1);
	send_recent(m, c, dc);
}

static void remember(struct dymod *m, const LtDy__Message *msg)
{
	struct recent *r;
	if (m->recent_n < LT_EMU_DY_RECENT) {
		r = &m->recent[(m->recent_head + m->recent_n) % LT_EMU_DY_RECENT];
		m->recent_n++;
	} else {
		r = &m->recent[m->recent_head];
		m->recent_head = (m->recent_head + 1) % LT_EMU_DY_RECENT;
	}
	uint8_t *p = malloc(msg->payload.len ? msg->payload.len : 1);
	if (!p) {
		r->len = 0;
		return;
	}
	free(r->payload);
	r->payload = p;
	memcpy(p, msg->payload.data, msg->payload.len);
	r->len = msg->payload.len;
	snprintf(r->method, sizeof(r->method), "%s", msg->method);
	r->msg_id = (uint64_t)msg->msg_id;
}

static void dy_ws_rx(void *mod, struct emu_conn *c, const uint8_t *p, size_t n)
{
	struct dymod *m = mod;
	struct dyconn *dc = emu_conn_data(c);
	LtDy__PushFrame *f = lt_dy__push_frame__unpack(NULL, n, p);

	if (!f || !dc->ok) {
		if (f)
			lt_dy__push_frame__free_unpacked(f, NULL);
		return;
	}
	if (!strcmp(f->payload_type, LT_DY_PT_HB)) {
		m->heartbeats++;
		emu_conn_touch(c);
		emu_conn_send(c, LT_DY_HEARTBEAT_FRAME, sizeof(LT_DY_HEARTBEAT_FRAME) - 1);
	} else if (!strcmp(f->payload_type, LT_DY_PT_ACK)) {
		bool found = false;
		for (size_t i = 0; i < 64; i++)
			if (dc->ack_log_ids[i] && dc->ack_log_ids[i] == f->log_id) {
				dc->ack_log_ids[i] = 0;
				found = true;
				break;
			}
		if (found && f->payload.len > 0)
			m->acks++;
		else
			m->bad_acks++;
	}
	lt_dy__push_frame__free_unpacked(f, NULL);
}

static void dy_ws_push(void *mod, struct emu_conn *c, const struct lt_msg *msgs, size_t n)
{
	struct dymod *m = mod;
	struct dyconn *dc = emu_conn_data(c);
	struct lt_msg *sent = calloc(n ? n : 1, sizeof(*sent));
	char (*ids)[24] = calloc(n ? n : 1, sizeof(*ids));
	struct lt_buf f = LT_BUF_INIT;
	size_t ns = 0;

	if (!dc->ok || !sent || !ids)
		goto out;
	/* WebSocket PINGs like the real push server's; no PONG for
	 * LT_EMU_DY_PONG_TIMEOUT_MS drops the client (douyin.md §1.4) */
	int64_t now = emu_now_ms();
	if (emu_conn_pongs(c) != dc->pongs_seen) {
		dc->pongs_seen = emu_conn_pongs(c);
		dc->pong_ms = now;
	}
	if (now - dc->pong_ms > LT_EMU_DY_PONG_TIMEOUT_MS) {
		emu_conn_close(c);
		goto out;
	}
	if (now >= dc->next_ping_ms) {
		emu_conn_ping(c);
		m->pings++;
		dc->next_ping_ms = now + LT_EMU_DY_PING_MS;
	}
	lt_buf_init(&f, 0);
	for (size_t i = 0; i < n; i++) {
		uint64_t id = dyenc_id(msgs[i].msg_id.len ? msgs[i].msg_id : LT_STR("x"));
		if (!msgs[i].msg_id.len)
			id = 7395000000000000000ULL + emu_rand(m->e);
		size_t before = dyenc_pending(&dc->enc);
		if (dyenc_add(&dc->enc, &msgs[i], id) != LT_OK)
			continue;
		/* the message added last is this one (a combo closer may precede it) */
		for (size_t k = before; k < dyenc_pending(&dc->enc); k++)
			remember(m, dc->enc.items[k]);
		sent[ns] = msgs[i];
		snprintf(ids[ns], sizeof(ids[ns]), "%llu", (unsigned long long)id);
		sent[ns].msg_id = lt_str_c(ids[ns]);
		ns++;
	}
	if (!dyenc_pending(&dc->enc))
		goto out;
	dc->seq++;
	struct dyenc_frame_opts o = {.gzip = true, .need_ack = dc->seq % LT_EMU_DY_ACK_EVERY == 0, .seq_id = dc->seq,
	                             .log_id = 7394000000000000000ULL + dc->seq, .now_ms = emu_now_ms()};
	if (o.need_ack)
		dc->ack_log_ids[dc->seq / LT_EMU_DY_ACK_EVERY % 64] = o.log_id;
	if (dyenc_frame(&dc->enc, &f, &o) == LT_OK)
		emu_conn_send_msgs(c, f.data, f.len, sent, ns);
out:
	lt_buf_free(&f);
	free(sent);
	free(ids);
}

static void dy_ws_garbage(void *mod, struct emu_conn *c)
{
	struct dymod *m = mod;
	struct dyconn *dc = emu_conn_data(c);
	struct lt_buf f = LT_BUF_INIT;
	uint8_t junk[24];

	if (!dc->ok)
		return;
	if (emu_rand(m->e) % 2) {
		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (uint8_t)emu_rand(m->e);
		junk[0] = 0xff; /* field 31, wire type 7: never valid */
		emu_conn_send(c, junk, sizeof(junk));
		return;
	}
	/* a data frame whose gzip'd Response is cut short */
	LtDy__PushFrame pf = LT_DY__PUSH_FRAME__INIT;
	LtDy__HeadersEntry h = LT_DY__HEADERS_ENTRY__INIT, *hp = &h;
	static const char text[] = "this is not going to decompress to anything";
	lt_buf_init(&f, 0);
	dyenc_gzip(&f, text, sizeof(text));
	h.key = (char *)"compress_type";
	h.value = (char *)"gzip";
	pf.headers = &hp;
	pf.n_headers = 1;
	pf.payload_type = (char *)LT_DY_PT_MSG;
	pf.payload.data = f.data;
	pf.payload.len = f.len / 2;
	uint8_t out[256];
	size_t len = lt_dy__push_frame__get_packed_size(&pf);
	if (len <= sizeof(out)) {
		lt_dy__push_frame__pack(&pf, out);
		emu_conn_send(c, out, len);
	}
	lt_buf_free(&f);
}

static void dy_ws_close(void *mod, struct emu_conn *c)
{
	struct dymod *m = mod;
	struct dyconn *dc = emu_conn_data(c);
	m->pongs += emu_conn_pongs(c);
	dyenc_free(&dc->enc);
}

const struct emu_module emu_douyin = {
	.name = "douyin",
	.ws_path = LT_DY_WS_PATH,
	.conn_size = sizeof(struct dyconn),
	.init = dy_init,
	.fini = dy_fini,
	.http = dy_http,
	.ws_open = dy_ws_open,
	.ws_rx = dy_ws_rx,
	.ws_push = dy_ws_push,
	.ws_garbage = dy_ws_garbage,
	.ws_close = dy_ws_close,
	.ws_filter = dy_ws_filter,
};
