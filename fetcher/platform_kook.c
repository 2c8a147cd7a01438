/* SPDX-License-Identifier: MIT */
/*
 * platform_kook: a KOOK channel watched through the bot WebSocket gateway
 * (ops table lt_platform_kook). Facts from ../shared/brief/protocols/kook.md
 * §1; constants and limits in kook.h.
 *
 * Bootstrap: GET {api_base}/gateway/index?compress=1 with the header
 * "Authorization: Bot TOKEN" answers the WebSocket URL, which carries the
 * token itself: the token and that URL are secrets and are never logged (the
 * URL is only handed to the driver as the target). A reconnect after a
 * dropped connection resumes (LT_KOOK_RESUME_TRIES times): the cached gateway
 * URL plus "&resume=1&sn=LAST&session_id=ID"; after that, or after s=5, a
 * fresh lookup without resume.
 *
 * Frames: a binary frame starting with a zlib header is one zlib stream,
 * inflated into at most LT_KOOK_INFLATE_MAX bytes (more is a bomb: LT_EPROTO);
 * anything else is taken as plain JSON (compress=0). Events (s=0) are
 * processed in sn order: an sn at or below the last processed one is a
 * duplicate and dropped; one beyond the next waits in a reorder buffer
 * (LT_KOOK_REORDER_MAX events / LT_KOOK_REORDER_BYTES) and a PING with the
 * last sn goes out at once so the server retransmits the gap; when the buffer
 * is full the gap is given up (counted) and the buffer drained in order. An
 * event without an sn is processed as it comes.
 *
 * A HELLO refused with 40101/40102 (a bad token) ends the session for good
 * (LT_PEV_CLOSE: state error, retried by the supervisor); 40103 and a HELLO
 * that does not come within 6 s mean a fresh gateway lookup.
 *
 * Timing is a tick: the driver calls heartbeat when heartbeat_ms says, and
 * the tick checks the HELLO deadline (6 s), sends the PING every 30 s ± 5 s,
 * and after a PONG that is 6 s late sends two more PINGs (2 s, then 4 s
 * later); a PONG missing after those makes heartbeat return LT_ETIMEDOUT,
 * which the driver answers with a reconnect (a resume, see above).
 *
 * Mapping (platform kook, room = the channel id): only events for the room
 * are kept: d.target_id for channel messages, extra.body.channel_id for
 * system events (type 255, whose target_id is the guild), and guild member
 * events for the guild the room's messages named in extra.guild_id.
 * Type 1/9 and media (2/3/4/8) are chat (9: the plain raw_content, the
 * KMarkdown kept in extra.kmarkdown; media: extra.attachment), 10 and 12
 * (content may be an object) are other with extra.kook_type, joined/exited
 * channel and guild member events are enter (extra.cmd names which),
 * added_reaction is like, everything else is other with the event's extra
 * kept. msg_id is d.msg_id, ts d.msg_timestamp, the user the author (or the
 * system event's body.user_id), named by the guild nickname, else the
 * username (possibly empty); bot authors get extra.bot = true.
 *
 * Pure like every platform: no I/O, time from conf->clock. The resume state
 * (session_id, sn) goes out through state_save for the driver to keep.
 */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"
#include "fetcher/kook.h"
#include "fetcher/inflate.h"
#include "fetcher/platform.h"

#define DEFAULT_API "https://www.kookapp.cn/api/v3"
#define HTTP_BODY_MAX (1u << 20)
#define GUILD_MAX 32

enum step { STEP_GATEWAY = 0, STEP_DONE };

enum link {
	LINK_DOWN = 0, /* no socket */
	LINK_HELLO,    /* open, waiting for HELLO */
	LINK_UP,       /* HELLO code 0 seen */
};

/* An event waiting for an earlier sn. */
struct held {
	int64_t sn;
	cJSON *d;     /* owned */
	size_t bytes;
};

struct lt_platform_conn {
	char room[LT_KOOK_ROOM_MAX + 1];
	char *api_base, *token, *ws_url;
	bool skip_bootstrap;
	const struct lt_clock *clock;
	uint64_t rng;

	/* session */
	char *gateway;   /* the WebSocket URL from the lookup (secret), or NULL */
	char session[LT_KOOK_SESSION_ID_MAX + 1];
	int64_t sn;      /* largest sn processed in this session */
	int resume_tries;
	bool resuming;   /* this attempt is a resume */
	char guild[GUILD_MAX + 1];
	enum step step;

	/* link and timing (monotonic ms) */
	enum link link;
	int64_t hello_deadline, next_ping, pong_deadline;
	int retry_pings;  /* PINGs sent after a missed PONG */
	bool gap_pinged;  /* an early PING for the current gap went out */

	/* reorder buffer, sorted by sn */
	struct held held[LT_KOOK_REORDER_MAX];
	int n_held;
	size_t held_bytes;

	struct lt_buf url, hdrs, target, inflated, extra, out;
	struct lt_inflate zs; /* zlib */
	struct lt_platform_stats st;
	uint64_t dups, gaps_skipped, filtered;
};

/* ------------------------------------------------------------------ */
/* Small helpers */

static int64_t now_mono(const struct lt_platform_conn *c)
{
	return lt_clock_mono(c->clock);
}

static uint32_t rnd(struct lt_platform_conn *c)
{
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return (uint32_t)((c->rng * 2685821657736338717ULL) >> 32);
}

static const cJSON *get(const cJSON *o, const char *k)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

static int64_t get_int(const cJSON *v, int64_t def)
{
	if (cJSON_IsNumber(v)) {
		/* Out-of-range doubles (and NaN) have no int64_t: converting them is UB. */
		double d = v->valuedouble;
		if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
			return def;
		return (int64_t)d;
	}
	if (cJSON_IsString(v) && v->valuestring[0]) {
		char *end;
		long long x = strtoll(v->valuestring, &end, 10);
		if (!*end)
			return x;
	}
	return def;
}

/* A string field as a view ("" for missing / not a string); numbers are not
 * ids here: KOOK sends ids as strings. */
static struct lt_str get_str(const cJSON *v)
{
	if (cJSON_IsString(v))
		return lt_str_c(v->valuestring);
	return LT_STR_NULL;
}

static bool str_is(struct lt_str s, const char *c)
{
	return s.len && lt_str_eqc(s, c);
}

static void extra_key(struct lt_buf *x, const char *k)
{
	lt_buf_putc(x, x->len ? ',' : '{');
	lt_buf_putc(x, '"');
	lt_buf_puts(x, k);
	lt_buf_puts(x, "\":");
}

static void extra_str(struct lt_buf *x, const char *k, struct lt_str v)
{
	extra_key(x, k);
	lt_json_str(x, v.p ? v.p : "", v.len);
}

static void extra_int(struct lt_buf *x, const char *k, int64_t v)
{
	extra_key(x, k);
	lt_buf_printf(x, "%" PRId64, v);
}

/* Append the JSON of item under key k (unformatted). */
static void extra_json(struct lt_buf *x, const char *k, const cJSON *item)
{
	char *s = item ? cJSON_PrintUnformatted(item) : NULL;
	if (!s)
		return;
	extra_key(x, k);
	lt_buf_puts(x, s);
	free(s);
}

static void send_text(const struct lt_platform_io *io, struct lt_buf *b)
{
	if (!lt_buf_err(b))
		io->send(io->ud, b->data, b->len, true);
}

static void send_ping(struct lt_platform_conn *c, const struct lt_platform_io *io)
{
	lt_buf_reset(&c->out);
	lt_buf_printf(&c->out, "{\"s\":%d,\"sn\":%" PRId64 "}", LT_KOOK_S_PING, c->sn);
	send_text(io, &c->out);
}

/* ------------------------------------------------------------------ */
/* Session state */

static void held_clear(struct lt_platform_conn *c)
{
	for (int i = 0; i < c->n_held; i++)
		cJSON_Delete(c->held[i].d);
	c->n_held = 0;
	c->held_bytes = 0;
}

/* Forget the session: s=5, a refused HELLO, resumes used up. */
static void session_drop(struct lt_platform_conn *c)
{
	c->session[0] = '\0';
	c->sn = 0;
	c->resume_tries = 0;
	c->gap_pinged = false;
	held_clear(c);
}

int lt_kook_state_parse(const char *s, size_t n, char session[LT_KOOK_SESSION_ID_MAX + 1], int64_t *sn)
{
	char buf[LT_KOOK_STATE_MAX + 1], sid[LT_KOOK_SESSION_ID_MAX + 2];
	long long v;
	int used = 0;

	if (!s || n == 0 || n > LT_KOOK_STATE_MAX || memchr(s, '\0', n))
		return LT_EPROTO;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (sscanf(buf, "kook1 %65s %lld%n", sid, &v, &used) != 2 || v < 0)
		return LT_EPROTO;
	if (buf[used] != '\0' && strcmp(buf + used, "\n") != 0)
		return LT_EPROTO;
	if (strlen(sid) > LT_KOOK_SESSION_ID_MAX)
		return LT_EPROTO;
	for (const char *p = sid; *p; p++)
		if (*p <= ' ' || *p > '~')
			return LT_EPROTO;
	snprintf(session, LT_KOOK_SESSION_ID_MAX + 1, "%s", strcmp(sid, "-") == 0 ? "" : sid);
	*sn = session[0] ? (int64_t)v : 0;
	return LT_OK;
}

/* ------------------------------------------------------------------ */
/* Mapping one event (d) to a message */

struct em {
	struct lt_platform_conn *c;
	const struct lt_platform_io *io;
	int64_t recv_ms;
};

static void msg_init(struct em *e, struct lt_msg *m, int type, const cJSON *d)
{
	memset(m, 0, sizeof(*m));
	m->platform = LT_PLATFORM_KOOK;
	m->type = (uint8_t)type;
	m->room = lt_str_c(e->c->room);
	m->msg_id = get_str(get(d, "msg_id"));
	int64_t ts = get_int(get(d, "msg_timestamp"), 0);
	m->ts = ts > 0 ? ts : e->recv_ms;
}

static void emit(struct em *e, struct lt_msg *m)
{
	struct lt_buf *x = &e->c->extra;

	if (x->len) {
		lt_buf_putc(x, '}');
		if (!lt_buf_err(x))
			m->extra = (struct lt_str){(const char *)x->data, (uint32_t)x->len};
	}
	lt_msg_clamp(m);
	if (!m->msg_id.len) {
		/* an over-long id of stray UTF-8 continuation bytes clamps to
		 * nothing: no id, no message (found by fuzz_kook) */
		e->c->st.bad_messages++;
		return;
	}
	e->c->st.messages++;
	e->io->emit(e->io->ud, m);
}

/* The author's display name: the guild nickname, else the username. */
static struct lt_str author_name(const cJSON *author)
{
	struct lt_str n = get_str(get(author, "nickname"));
	return n.len ? n : get_str(get(author, "username"));
}

/* A message in a channel (every type but 255). */
static int on_channel_msg(struct em *e, const cJSON *d, int64_t type)
{
	struct lt_platform_conn *c = e->c;
	const cJSON *x = get(d, "extra"), *author = get(x, "author"), *content = get(d, "content");
	struct lt_buf *xb = &c->extra;
	struct lt_msg m;
	int mt = LT_MSG_CHAT;

	if (!str_is(get_str(get(d, "target_id")), c->room)) {
		c->filtered++;
		return LT_OK;
	}
	struct lt_str guild = get_str(get(x, "guild_id"));
	if (guild.len && guild.len <= GUILD_MAX && !c->guild[0]) {
		memcpy(c->guild, guild.p, guild.len);
		c->guild[guild.len] = '\0';
	}
	if (type == LT_KOOK_T_CARD || type == LT_KOOK_T_ITEM || !(cJSON_IsString(content) || cJSON_IsObject(content)))
		mt = LT_MSG_OTHER;
	if (type != LT_KOOK_T_TEXT && type != LT_KOOK_T_KMARKDOWN && type != LT_KOOK_T_IMAGE &&
	    type != LT_KOOK_T_VIDEO && type != LT_KOOK_T_FILE && type != LT_KOOK_T_AUDIO)
		mt = LT_MSG_OTHER;
	msg_init(e, &m, mt, d);
	m.user_id = get_str(get(d, "author_id"));
	m.user_name = author_name(author);

	lt_buf_reset(xb);
	extra_int(xb, "kook_type", type);
	if (guild.len)
		extra_str(xb, "guild_id", guild);
	struct lt_str cname = get_str(get(x, "channel_name"));
	if (cname.len)
		extra_str(xb, "channel_name", cname);
	struct lt_str uname = get_str(get(author, "username")), num = get_str(get(author, "identify_num"));
	if (uname.len) {
		lt_buf_reset(&c->out);
		lt_buf_append(&c->out, uname.p, uname.len);
		if (num.len) {
			lt_buf_putc(&c->out, '#');
			lt_buf_append(&c->out, num.p, num.len);
		}
		if (!lt_buf_err(&c->out))
			extra_str(xb, "username", (struct lt_str){(const char *)c->out.data, (uint32_t)c->out.len});
	}
	if (cJSON_IsTrue(get(author, "bot")))
		extra_key(xb, "bot"), lt_buf_puts(xb, "true");

	if (mt == LT_MSG_CHAT) {
		struct lt_str text = get_str(content);
		if (type == LT_KOOK_T_KMARKDOWN) {
			struct lt_str raw = get_str(get(get(x, "kmarkdown"), "raw_content"));
			extra_str(xb, "kmarkdown", text);
			if (raw.len)
				text = raw;
		} else if (type != LT_KOOK_T_TEXT) {
			const cJSON *att = get(x, "attachments");
			if (att)
				extra_json(xb, "attachment", att);
			else
				extra_str(xb, "attachment", text);
		}
		m.content = text;
	} else if (cJSON_IsString(content)) {
		m.content = get_str(content); /* a card's JSON text, kept as the content */
	} else if (content) {
		extra_json(xb, "item", content);
		struct lt_str it = get_str(get(content, "type"));
		m.content = it.len ? it : LT_STR("item");
	}
	if (!m.msg_id.len) {
		c->st.bad_messages++;
		return LT_EPROTO;
	}
	emit(e, &m);
	return LT_OK;
}

/* A system event (type 255): extra = {type: NAME, body: {…}}. */
static int on_system(struct em *e, const cJSON *d)
{
	struct lt_platform_conn *c = e->c;
	const cJSON *x = get(d, "extra"), *body = get(x, "body");
	struct lt_str name = get_str(get(x, "type"));
	struct lt_str chan = get_str(get(body, "channel_id"));
	struct lt_str target = get_str(get(d, "target_id"));
	struct lt_buf *xb = &c->extra;
	struct lt_msg m;
	int mt = LT_MSG_OTHER;
	bool guild_event = false;

	if (!name.len || !cJSON_IsObject(body)) {
		c->st.bad_messages++;
		return LT_EPROTO;
	}
	if (str_is(name, "joined_guild") || str_is(name, "exited_guild") || str_is(name, "guild_member_online") ||
	    str_is(name, "guild_member_offline"))
		guild_event = true;
	if (chan.len ? !str_is(chan, c->room) : !(guild_event && c->guild[0] && str_is(target, c->guild))) {
		c->filtered++;
		return LT_OK;
	}
	if (str_is(name, "joined_channel") || str_is(name, "exited_channel") || guild_event)
		mt = LT_MSG_ENTER;
	else if (str_is(name, "added_reaction"))
		mt = LT_MSG_LIKE;
	msg_init(e, &m, mt, d);
	m.user_id = get_str(get(body, "user_id"));
	if (!m.user_id.len)
		m.user_id = get_str(get(d, "author_id"));
	m.content = name;
	if (mt == LT_MSG_LIKE)
		m.count = 1;
	lt_buf_reset(xb);
	extra_int(xb, "kook_type", LT_KOOK_T_SYSTEM);
	extra_str(xb, "cmd", name);
	if (target.len)
		extra_str(xb, "guild_id", target);
	if (mt == LT_MSG_LIKE) {
		struct lt_str emoji = get_str(get(get(body, "emoji"), "name"));
		extra_str(xb, "emoji", emoji);
		extra_str(xb, "target_msg_id", get_str(get(body, "msg_id")));
	}
	if (mt == LT_MSG_OTHER)
		extra_json(xb, "body", body);
	if (!m.msg_id.len) {
		c->st.bad_messages++;
		return LT_EPROTO;
	}
	emit(e, &m);
	return LT_OK;
}

static void process(struct em *e, const cJSON *d)
{
	if (!cJSON_IsObject(d)) {
		e->c->st.bad_messages++;
		return;
	}
	struct lt_str ct = get_str(get(d, "channel_type"));
	if (ct.len && !str_is(ct, "GROUP")) {
		e->c->filtered++; /* direct and broadcast messages: no channel */
		return;
	}
	int64_t type = get_int(get(d, "type"), -1);
	if (type == LT_KOOK_T_SYSTEM)
		on_system(e, d);
	else if (type > 0)
		on_channel_msg(e, d, type);
	else
		e->c->st.bad_messages++;
}

/* Process the held events that are next in line. */
static void drain(struct em *e)
{
	struct lt_platform_conn *c = e->c;

	while (c->n_held && c->held[0].sn <= c->sn + 1) {
		struct held h = c->held[0];
		memmove(&c->held[0], &c->held[1], sizeof(c->held[0]) * (size_t)(c->n_held - 1));
		c->n_held--;
		c->held_bytes -= h.bytes;
		if (h.sn > c->sn) {
			c->sn = h.sn;
			process(e, h.d);
		} else {
			c->dups++;
		}
		cJSON_Delete(h.d);
	}
	if (!c->n_held)
		c->gap_pinged = false;
}

/* An event with sequence number sn; root owns d until we detach it. */
static void on_event(struct em *e, cJSON *root, int64_t sn, size_t bytes)
{
	struct lt_platform_conn *c = e->c;
	cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "d");

	if (sn < 0) {
		process(e, d); /* no sn: as it comes */
		return;
	}
	if (sn <= c->sn) {
		c->dups++;
		return;
	}
	if (sn == c->sn + 1) {
		c->sn = sn;
		process(e, d);
		drain(e);
		return;
	}
	/* a gap: hold it (once per sn) */
	int i = 0;
	while (i < c->n_held && c->held[i].sn < sn)
		i++;
	if (i < c->n_held && c->held[i].sn == sn) {
		c->dups++;
		return;
	}
	if (c->n_held == LT_KOOK_REORDER_MAX || c->held_bytes + bytes > LT_KOOK_REORDER_BYTES) {
		/* the buffer is full: give the gap up and go on in order */
		c->gaps_skipped++;
		if (c->n_held) {
			c->sn = c->held[0].sn - 1;
			drain(e); /* frees at least one slot */
			on_event(e, root, sn, bytes);
		} else {
			c->sn = sn; /* too big to hold at all: take it now */
			process(e, d);
		}
		return;
	}
	d = cJSON_DetachItemFromObjectCaseSensitive(root, "d");
	memmove(&c->held[i + 1], &c->held[i], sizeof(c->held[0]) * (size_t)(c->n_held - i));
	c->held[i] = (struct held){sn, d, bytes};
	c->n_held++;
	c->held_bytes += bytes;
	if (!c->gap_pinged && c->link == LINK_UP) {
		send_ping(c, e->io); /* the server retransmits what follows our sn */
		c->gap_pinged = true;
		c->pong_deadline = now_mono(c) + LT_KOOK_PONG_TIMEOUT_MS;
	}
}

/* ------------------------------------------------------------------ */
/* Frames */

static int inflate_frame(struct lt_platform_conn *c, const uint8_t *p, size_t n)
{
	size_t rest = 0;
	int rc = lt_inflate_run(&c->zs, p, n, LT_KOOK_INFLATE_MAX, &c->inflated, &rest);
	if (rc != LT_OK)
		return rc == LT_ENOMEM || rc == LT_EINTERNAL ? rc : LT_EPROTO; /* a bomb, truncated, garbage */
	c->st.bytes_inflated += c->inflated.len;
	return rest == 0 ? LT_OK : LT_EPROTO; /* one stream per frame */
}

static int on_hello(struct lt_platform_conn *c, const cJSON *d, unsigned *ev)
{
	int64_t code = get_int(get(d, "code"), -1);
	struct lt_str sid = get_str(get(d, "session_id"));

	if (!sid.len)
		sid = get_str(get(d, "sessionId"));
	if (code != 0 || !sid.len || sid.len > LT_KOOK_SESSION_ID_MAX) {
		/* 40103: the token in the URL expired; 40100-40102: configuration.
		 * Either way: a fresh gateway lookup after backoff. */
		c->st.http_errors++;
		free(c->gateway);
		c->gateway = NULL;
		session_drop(c);
		c->link = LINK_DOWN;
		/* 40101/40102: the token is wrong, which no retry mends: the room
		 * goes to error (the supervisor tries again after its backoff) */
		*ev |= code == LT_KOOK_HELLO_BAD_TOKEN || code == LT_KOOK_HELLO_VERIFY ? LT_PEV_CLOSE : LT_PEV_RECONNECT;
		return LT_EAUTH;
	}
	if (!lt_str_eqc(sid, c->session)) {
		/* a new session: its sn starts at 1 */
		held_clear(c);
		c->sn = 0;
		c->gap_pinged = false;
		memcpy(c->session, sid.p, sid.len);
		c->session[sid.len] = '\0';
	}
	c->link = LINK_UP;
	c->resume_tries = 0;
	c->retry_pings = 0;
	c->pong_deadline = 0;
	c->next_ping = now_mono(c) + LT_KOOK_PING_MS - LT_KOOK_PING_JITTER_MS + (int64_t)(rnd(c) % (2 * LT_KOOK_PING_JITTER_MS + 1));
	*ev |= LT_PEV_AUTHED;
	return LT_OK;
}

static int kook_on_frame(struct lt_platform_conn *c, const uint8_t *p, size_t n, int64_t recv_ms,
                         const struct lt_platform_io *io, unsigned *ev)
{
	struct em e = {.c = c, .io = io, .recv_ms = recv_ms};
	cJSON *root = NULL;
	const char *json = (const char *)p;
	size_t len = n;
	int rc = LT_OK;

	*ev = 0;
	c->st.frames++;
	c->st.bytes_in += n;
	if (n >= 2 && p[0] == 0x78 && ((p[0] << 8) | p[1]) % 31 == 0) {
		rc = inflate_frame(c, p, n);
		if (rc != LT_OK)
			goto bad;
		json = (const char *)c->inflated.data;
		len = c->inflated.len;
	}
	root = cJSON_ParseWithLength(json, len);
	if (!cJSON_IsObject(root)) {
		rc = LT_EPROTO;
		goto bad;
	}
	const cJSON *s = get(root, "s");
	if (!cJSON_IsNumber(s)) {
		rc = LT_EPROTO;
		goto bad;
	}
	c->st.packets++;
	const cJSON *d = get(root, "d");
	switch (s->valueint) { /* cJSON clamps valueint: no UB for huge s */
	case LT_KOOK_S_EVENT: {
		const cJSON *sn = get(root, "sn");
		int64_t v = cJSON_IsNumber(sn) && sn->valuedouble >= 1 && sn->valuedouble < 9e15 ? (int64_t)sn->valuedouble
		                                                                                   : -1;
		if (!cJSON_IsObject(d)) {
			rc = LT_EPROTO;
			goto bad;
		}
		on_event(&e, root, v, len);
		break;
	}
	case LT_KOOK_S_HELLO:
		rc = on_hello(c, d, ev);
		break;
	case LT_KOOK_S_PONG:
		c->pong_deadline = 0;
		c->retry_pings = 0;
		c->st.heartbeats++;
		*ev |= LT_PEV_HEARTBEAT;
		break;
	case LT_KOOK_S_RECONNECT:
		/* the docs: clear sn, the buffer and the session, start again
		 * without resume, or messages get mixed up */
		session_drop(c);
		free(c->gateway);
		c->gateway = NULL;
		c->link = LINK_DOWN;
		*ev |= LT_PEV_RECONNECT;
		break;
	case LT_KOOK_S_RESUME_ACK: {
		struct lt_str sid = get_str(get(d, "session_id"));
		if (!sid.len)
			sid = get_str(get(d, "sessionId"));
		if (sid.len && sid.len <= LT_KOOK_SESSION_ID_MAX && !lt_str_eqc(sid, c->session)) {
			memcpy(c->session, sid.p, sid.len);
			c->session[sid.len] = '\0';
		}
		c->resume_tries = 0;
		break;
	}
	default:
		break; /* s=2/4 never come from a server; unknown signals are ignored */
	}
	cJSON_Delete(root);
	if (c->inflated.cap > (1u << 20))
		lt_buf_free(&c->inflated), lt_buf_init(&c->inflated, LT_KOOK_INFLATE_MAX + 1);
	return rc;
bad:
	cJSON_Delete(root);
	c->st.bad_frames++;
	if (c->inflated.cap > (1u << 20))
		lt_buf_free(&c->inflated), lt_buf_init(&c->inflated, LT_KOOK_INFLATE_MAX + 1);
	return LT_EPROTO;
}

/* ------------------------------------------------------------------ */
/* The ops */

static void kook_destroy(struct lt_platform_conn *c)
{
	if (!c)
		return;
	free(c->api_base);
	if (c->token)
		memset(c->token, 0, strlen(c->token));
	free(c->token);
	free(c->ws_url);
	if (c->gateway)
		memset(c->gateway, 0, strlen(c->gateway));
	free(c->gateway);
	held_clear(c);
	lt_buf_free(&c->url);
	lt_buf_free(&c->hdrs);
	lt_buf_free(&c->target);
	lt_buf_free(&c->inflated);
	lt_buf_free(&c->extra);
	lt_buf_free(&c->out);
	lt_inflate_end(&c->zs);
	free(c);
}

static int kook_create(const struct lt_platform_conf *conf, struct lt_platform_conn **out)
{
	struct lt_platform_conn *c;

	if (!conf || !conf->room || !conf->room[0] || strlen(conf->room) > LT_KOOK_ROOM_MAX)
		return LT_EINVAL;
	for (const char *p = conf->room; *p; p++)
		if (*p < '0' || *p > '9')
			return LT_EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return LT_ENOMEM;
	snprintf(c->room, sizeof(c->room), "%s", conf->room);
	c->api_base = strdup(conf->api_base ? conf->api_base : DEFAULT_API);
	c->token = strdup(conf->token ? conf->token : "");
	c->ws_url = conf->ws_url ? strdup(conf->ws_url) : NULL;
	if (!c->api_base || !c->token || (conf->ws_url && !c->ws_url)) {
		kook_destroy(c);
		return LT_ENOMEM;
	}
	c->skip_bootstrap = conf->skip_bootstrap;
	c->clock = conf->clock ? conf->clock : &lt_clock_real;
	c->rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)lt_clock_mono(c->clock);
	for (const char *p = c->room; *p; p++)
		c->rng = c->rng * 31 + (uint64_t)*p;
	if (!c->rng)
		c->rng = 1;
	lt_buf_init(&c->url, 0);
	lt_buf_init(&c->hdrs, 0);
	lt_buf_init(&c->target, 0);
	lt_buf_init(&c->inflated, LT_KOOK_INFLATE_MAX + 1);
	lt_inflate_init(&c->zs, LT_INFLATE_ZLIB);
	lt_buf_init(&c->extra, 0);
	lt_buf_init(&c->out, 0);
	c->step = STEP_DONE;
	*out = c;
	return LT_OK;
}

static int kook_begin(struct lt_platform_conn *c, int attempt)
{
	(void)attempt;
	c->link = LINK_DOWN;
	c->resuming = false;
	if (c->session[0] && c->resume_tries < LT_KOOK_RESUME_TRIES) {
		c->resume_tries++;
		c->resuming = true;
	} else if (c->session[0]) {
		session_drop(c); /* resumes used up: start afresh */
		free(c->gateway);
		c->gateway = NULL;
	}
	if (c->skip_bootstrap || c->ws_url)
		c->step = STEP_DONE;
	else
		c->step = c->resuming && c->gateway ? STEP_DONE : STEP_GATEWAY;
	return LT_OK;
}

static int kook_http_next(struct lt_platform_conn *c, struct lt_http_req *req)
{
	if (c->step != STEP_GATEWAY)
		return LT_EEOF;
	lt_buf_reset(&c->url);
	lt_buf_printf(&c->url, "%s/gateway/index?compress=1", c->api_base);
	lt_buf_reset(&c->hdrs);
	lt_buf_printf(&c->hdrs, "Authorization: Bot %s\r\n", c->token);
	if (lt_buf_err(&c->url) || lt_buf_err(&c->hdrs))
		return LT_ENOMEM;
	req->method = "GET";
	req->url = lt_buf_cstr(&c->url);
	req->headers = lt_buf_cstr(&c->hdrs);
	req->body = NULL;
	req->body_len = 0;
	return LT_OK;
}

static int kook_http_done(struct lt_platform_conn *c, const struct lt_http_resp *resp)
{
	cJSON *root = NULL;
	int rc = LT_OK;

	if (resp->status == 0 || resp->status == 401 || resp->status == 403 || resp->status == 429 ||
	    resp->status >= 500) {
		rc = LT_EAGAIN; /* a bad token is a configuration error: retried after backoff */
		goto out;
	}
	if (resp->status != 200 || resp->body_len > HTTP_BODY_MAX) {
		rc = LT_EPROTO;
		goto out;
	}
	root = cJSON_ParseWithLength(resp->body, resp->body_len);
	struct lt_str url = get_str(get(get(root, "data"), "url"));
	if (get_int(get(root, "code"), -1) != 0) {
		rc = LT_EAGAIN;
		goto out;
	}
	if (!url.len || (strncmp(url.p, "ws://", 5) != 0 && strncmp(url.p, "wss://", 6) != 0)) {
		rc = LT_EPROTO;
		goto out;
	}
	free(c->gateway);
	c->gateway = strndup(url.p, url.len);
	if (!c->gateway) {
		rc = LT_ENOMEM;
		goto out;
	}
	c->step = STEP_DONE;
out:
	if (rc != LT_OK)
		c->st.http_errors++;
	cJSON_Delete(root);
	return rc;
}

static int kook_ws_target(struct lt_platform_conn *c, struct lt_ws_target *t)
{
	const char *base = c->ws_url ? c->ws_url : c->gateway;

	if (!base)
		return LT_EINVAL;
	lt_buf_reset(&c->target);
	lt_buf_puts(&c->target, base);
	if (c->resuming && c->session[0])
		lt_buf_printf(&c->target, "%cresume=1&sn=%" PRId64 "&session_id=%s", strchr(base, '?') ? '&' : '?', c->sn,
		              c->session);
	if (lt_buf_err(&c->target))
		return LT_ENOMEM;
	t->url = lt_buf_cstr(&c->target);
	t->headers = "";
	t->origin = NULL;
	t->protocol = NULL;
	return LT_OK;
}

static int kook_on_open(struct lt_platform_conn *c, const struct lt_platform_io *io)
{
	(void)io; /* the client says nothing first: the server sends HELLO */
	c->link = LINK_HELLO;
	c->hello_deadline = now_mono(c) + LT_KOOK_HELLO_TIMEOUT_MS;
	c->pong_deadline = 0;
	c->retry_pings = 0;
	return LT_OK;
}

/* When the next tick is due, in ms from now. */
static int kook_heartbeat_ms(const struct lt_platform_conn *c)
{
	int64_t now = now_mono(c), due;

	switch (c->link) {
	case LINK_HELLO:
		due = c->hello_deadline;
		break;
	case LINK_UP:
		due = c->next_ping;
		if (c->pong_deadline && c->pong_deadline < due)
			due = c->pong_deadline;
		break;
	case LINK_DOWN:
	default:
		return LT_KOOK_PING_MS + LT_KOOK_PING_JITTER_MS;
	}
	due -= now;
	return due < 10 ? 10 : due > LT_KOOK_PING_MS + LT_KOOK_PING_JITTER_MS ? LT_KOOK_PING_MS + LT_KOOK_PING_JITTER_MS
	                                                                        : (int)due;
}

/* The tick: the HELLO deadline, the PING schedule and missed PONGs. Returns
 * LT_ETIMEDOUT when the connection is to be dropped (and resumed). */
static int kook_heartbeat(struct lt_platform_conn *c, const struct lt_platform_io *io)
{
	int64_t now = now_mono(c);

	if (c->link == LINK_HELLO) {
		if (now < c->hello_deadline)
			return LT_OK;
		free(c->gateway); /* no HELLO in 6 s: back to the gateway lookup */
		c->gateway = NULL;
		c->link = LINK_DOWN;
		return LT_ETIMEDOUT;
	}
	if (c->link != LINK_UP)
		return LT_OK;
	if (c->pong_deadline && now >= c->pong_deadline) {
		if (c->retry_pings >= 2) {
			c->link = LINK_DOWN;
			return LT_ETIMEDOUT;
		}
		/* missed: PING again after 2 s, then after 4 s more */
		int64_t wait = c->retry_pings == 0 ? LT_KOOK_RETRY_PING1_MS : LT_KOOK_RETRY_PING2_MS;
		c->next_ping = now + wait;
		c->pong_deadline = 0;
		c->retry_pings++;
		return LT_OK;
	}
	if (now >= c->next_ping) {
		send_ping(c, io);
		if (c->retry_pings == 0) {
			c->pong_deadline = now + LT_KOOK_PONG_TIMEOUT_MS;
			c->next_ping = now + LT_KOOK_PING_MS - LT_KOOK_PING_JITTER_MS +
			               (int64_t)(rnd(c) % (2 * LT_KOOK_PING_JITTER_MS + 1));
		} else {
			/* a retry PING: the next retry (or the give-up) comes after
			 * the next wait, or the PONG timeout after the last one */
			c->pong_deadline = now + (c->retry_pings == 1 ? LT_KOOK_RETRY_PING2_MS : LT_KOOK_PONG_TIMEOUT_MS);
			c->next_ping = now + LT_KOOK_PING_MS;
		}
	}
	return LT_OK;
}

static const char *kook_room(const struct lt_platform_conn *c)
{
	return c->room;
}

static void kook_stats(const struct lt_platform_conn *c, struct lt_platform_stats *out)
{
	*out = c->st;
}

static size_t kook_state_save(const struct lt_platform_conn *c, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "kook1 %s %" PRId64 "\n", c->session[0] ? c->session : "-",
	                 c->session[0] ? c->sn : (int64_t)0);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static int kook_state_load(struct lt_platform_conn *c, const char *p, size_t n)
{
	char sid[LT_KOOK_SESSION_ID_MAX + 1];
	int64_t sn;
	int rc = lt_kook_state_parse(p, n, sid, &sn);

	if (rc != LT_OK)
		return rc;
	held_clear(c);
	memcpy(c->session, sid, sizeof(sid));
	c->sn = sn;
	c->resume_tries = 0;
	return LT_OK;
}

const struct lt_platform_ops lt_platform_kook = {
	.name = "kook",
	.platform = LT_PLATFORM_KOOK,
	.create = kook_create,
	.destroy = kook_destroy,
	.begin = kook_begin,
	.http_next = kook_http_next,
	.http_done = kook_http_done,
	.ws_target = kook_ws_target,
	.on_open = kook_on_open,
	.on_frame = kook_on_frame,
	.heartbeat_ms = kook_heartbeat_ms,
	.heartbeat = kook_heartbeat,
	.room = kook_room,
	.stats = kook_stats,
	.state_save = kook_state_save,
	.state_load = kook_state_load,
};
