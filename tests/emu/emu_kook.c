/* SPDX-License-Identifier: MIT */
/*
 * emu_kook: the KOOK bot gateway module of livetap-emu
 * (../shared/brief/protocols/kook.md §1 and §4.1; constants in fetcher/kook.h).
 *
 * HTTP: GET /api/v3/gateway/index?compress=0|1 with "Authorization: Bot
 * TOKEN" answers {"code":0,"data":{"url":"ws://HOST:PORT/gateway?compress=C&
 * token=TOKEN"}}; a wrong or missing token gets HTTP 401 with code 401.
 *
 * WebSocket /gateway: HELLO {"code":0,"session_id":…} at once (40101 for a
 * bad token, 40103 on the expire switch, then close); then s=0 events, each
 * with the session's next sn, one per frame, for the channel
 * EMU_KOOK_CHANNEL of guild EMU_KOOK_GUILD (and, every 5th event, one for
 * another channel that a fetcher of this channel must filter out); PING
 * gets PONG (none while --stall-every holds the writes), and a PING whose
 * sn is behind makes the server send again everything after it. A connection
 * with resume=1&sn=N&session_id=S gets HELLO, everything of S after N, then
 * s=6; an unknown session or an sn beyond the last gets s=5 (40106 / 40108).
 * With compress=1 every frame is one zlib stream; --garbage adds frames of
 * corrupt zlib (a good header, a broken body) or, uncompressed, broken JSON.
 * Generated messages map to KOOK: chat is a KMarkdown (type 9) or text
 * (type 1) message, enter a joined_channel system event, like an
 * added_reaction, everything else a card (type 10, which a fetcher maps to
 * other); the sent-log names the type the fetcher should produce and the
 * event's msg_id, whose last 12 hex digits count up in production order.
 *
 * KOOK-only switches, from the environment variable LT_EMU_KOOK as
 * "key=value,…": token=T (default emu-kook-token), reorder=P (a fraction of
 * events sent after their successor), dup=P (sent twice), expire=N (every
 * Nth connection gets HELLO 40103), nohello=N (every Nth connection gets
 * no HELLO at all), reconnect_every=S (s=5 40108 to every
 * connection every S seconds, forcing a fresh session), single=1 (a second
 * live session for the token is refused with s=5 40107).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/buf.h"
#include "common/json.h"
#include "fetcher/kook.h"
#include "tests/emu/emu.h"

#define EMU_KOOK_CHANNEL "3344556677"
#define EMU_KOOK_OTHER_CHANNEL "3344550000"
#define EMU_KOOK_GUILD "1122334455"
#define EMU_KOOK_DEFAULT_TOKEN "emu-kook-token"
#define SESS_MAX 32
#define HIST_MAX 8192 /* events kept per session for resume */

struct hist {
	int64_t sn;
	char *json;   /* the frame's JSON, owned */
	uint8_t type; /* sent-log type, or 0xff for an event of another channel */
	char msg_id[48];
	int64_t sent_ms;
};

struct sess {
	bool used;
	char id[40];
	int64_t last_sn;
	int live; /* connections attached */
	struct hist h[HIST_MAX]; /* ring by sn % HIST_MAX */
	int64_t last_used_ms;
};

struct kook {
	struct emu *e;
	char token[128];
	double reorder, dup;
	int expire_every, reconnect_every_s, nohello_every;
	bool single;
	uint64_t conns, counter;
	uint32_t nonce;
	int64_t next_reconnect;
	struct sess s[SESS_MAX];
};

struct kconn {
	int sess; /* index + 1; 0 = none */
	bool compress;
	bool up;
	char *held;  /* a frame held back for --reorder: sent after the next */
	size_t held_len;
	struct lt_msg held_log;
	char held_id[48];
	bool held_logged;
};

/* ------------------------------------------------------------------ */
/* Options and helpers */

static void parse_env(struct kook *k)
{
	const char *env = getenv("LT_EMU_KOOK");
	char buf[512];

	snprintf(k->token, sizeof(k->token), "%s", EMU_KOOK_DEFAULT_TOKEN);
	if (!env)
		return;
	snprintf(buf, sizeof(buf), "%s", env);
	for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');
		if (!eq)
			continue;
		*eq++ = '\0';
		if (!strcmp(kv, "token"))
			snprintf(k->token, sizeof(k->token), "%s", eq);
		else if (!strcmp(kv, "reorder"))
			k->reorder = atof(eq);
		else if (!strcmp(kv, "dup"))
			k->dup = atof(eq);
		else if (!strcmp(kv, "expire"))
			k->expire_every = atoi(eq);
		else if (!strcmp(kv, "nohello"))
			k->nohello_every = atoi(eq);
		else if (!strcmp(kv, "reconnect_every"))
			k->reconnect_every_s = atoi(eq);
		else if (!strcmp(kv, "single"))
			k->single = atoi(eq) != 0;
	}
}

static bool chance(struct kook *k, double p)
{
	return p > 0 && (double)emu_rand(k->e) / 4294967296.0 < p;
}

/* Value of key in a "a=b&c=d" query into out; false when absent. */
static bool query_get(const char *q, const char *key, char *out, size_t cap)
{
	size_t kl = strlen(key);
	for (const char *p = q; p && *p;) {
		if (!strncmp(p, key, kl) && p[kl] == '=') {
			size_t n = strcspn(p + kl + 1, "&");
			snprintf(out, cap, "%.*s", (int)n, p + kl + 1);
			return true;
		}
		p = strchr(p, '&');
		if (p)
			p++;
	}
	return false;
}

/* Queue json on c, zlib-compressed when the connection asked for it. log
 * (may be NULL) is the message the sent-log records for it. */
static void send_json(struct emu_conn *c, const char *json, size_t n, const struct lt_msg *log)
{
	struct kconn *kc = emu_conn_data(c);
	uLongf zn = compressBound((uLong)n);
	uint8_t *z = NULL;
	const void *p = json;
	size_t len = n;

	if (kc->compress) {
		z = malloc(zn);
		if (!z || compress2(z, &zn, (const Bytef *)json, (uLong)n, Z_DEFAULT_COMPRESSION) != Z_OK) {
			free(z);
			return;
		}
		p = z;
		len = zn;
	}
	if (log)
		emu_conn_send_msgs(c, p, len, log, 1);
	else
		emu_conn_send(c, p, len);
	free(z);
}

static void send_signal(struct emu_conn *c, int s, const char *d)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "{\"s\":%d,\"d\":%s}", s, d);
	send_json(c, buf, (size_t)n, NULL);
}

static struct sess *conn_sess(struct kook *k, struct emu_conn *c)
{
	struct kconn *kc = emu_conn_data(c);
	return kc->sess ? &k->s[kc->sess - 1] : NULL;
}

static void sess_free(struct sess *s)
{
	for (int i = 0; i < HIST_MAX; i++) {
		free(s->h[i].json);
		s->h[i].json = NULL;
	}
	s->used = false;
}

static int sess_new(struct kook *k)
{
	int idx = -1;
	int64_t oldest = INT64_MAX;

	for (int i = 0; i < SESS_MAX; i++) {
		if (!k->s[i].used) {
			idx = i;
			break;
		}
		if (!k->s[i].live && k->s[i].last_used_ms < oldest) {
			oldest = k->s[i].last_used_ms;
			idx = i;
		}
	}
	if (idx < 0)
		return -1;
	sess_free(&k->s[idx]);
	struct sess *s = &k->s[idx];
	s->used = true;
	s->last_sn = 0;
	s->live = 0;
	s->last_used_ms = emu_now_ms();
	snprintf(s->id, sizeof(s->id), "%08x-%04x-4%03x-a%03x-%08x%04x", emu_rand(k->e), emu_rand(k->e) & 0xffff,
	         emu_rand(k->e) & 0xfff, emu_rand(k->e) & 0xfff, emu_rand(k->e), emu_rand(k->e) & 0xffff);
	return idx;
}

static struct sess *sess_find(struct kook *k, const char *id)
{
	for (int i = 0; i < SESS_MAX; i++)
		if (k->s[i].used && !strcmp(k->s[i].id, id))
			return &k->s[i];
	return NULL;
}

/* Send every event of s after sn again (resume, or a PING that is behind). */
static void replay_after(struct emu_conn *c, struct sess *s, int64_t sn, int64_t older_than_ms)
{
	for (int64_t i = sn + 1; i <= s->last_sn; i++) {
		struct hist *h = &s->h[i % HIST_MAX];
		if (h->sn != i || !h->json)
			continue;
		if (older_than_ms && h->sent_ms > older_than_ms)
			continue;
		struct lt_msg m = {.type = h->type, .msg_id = lt_str_c(h->msg_id)};
		send_json(c, h->json, strlen(h->json), h->type == 0xff ? NULL : &m);
	}
}

/* ------------------------------------------------------------------ */
/* HTTP */

static int kook_http(void *mod, const struct emu_http_req *rq, struct emu_http_resp *rs)
{
	struct kook *k = mod;
	char want[200], compress[8] = "1";

	if (strcmp(rq->path, "/api/v3/gateway/index") != 0)
		return LT_ENOTFOUND;
	snprintf(want, sizeof(want), "Bot %s", k->token);
	if (!rq->authorization || strcmp(rq->authorization, want) != 0) {
		rs->status = 401;
		lt_buf_puts(&rs->body, "{\"code\":401,\"message\":\"你的用户凭证不正确\",\"data\":{}}");
		return LT_OK;
	}
	query_get(rq->query, "compress", compress, sizeof(compress));
	lt_buf_printf(&rs->body,
	              "{\"code\":0,\"message\":\"操作成功\",\"data\":{\"url\":\"%s://127.0.0.1:%d/gateway?compress=%s&token=",
	              emu_ws_scheme(k->e), emu_port(k->e), strcmp(compress, "0") ? "1" : "0");
	lt_buf_puts(&rs->body, k->token);
	lt_buf_puts(&rs->body, "\"}}");
	return LT_OK;
}

/* ------------------------------------------------------------------ */
/* WebSocket */

static void kook_ws_open(void *mod, struct emu_conn *c, const char *path)
{
	struct kook *k = mod;
	struct kconn *kc = emu_conn_data(c);
	char q[1024], v[128], d[160];
	struct sess *s = NULL;
	int idx;

	(void)path;
	emu_conn_query(c, q, sizeof(q));
	k->conns++;
	kc->compress = !(query_get(q, "compress", v, sizeof(v)) && !strcmp(v, "0"));
	if (!query_get(q, "token", v, sizeof(v)) || strcmp(v, k->token) != 0) {
		send_signal(c, LT_KOOK_S_HELLO, "{\"code\":40101}");
		emu_conn_close(c);
		return;
	}
	if (k->nohello_every > 0 && k->conns % (uint64_t)k->nohello_every == 0) {
		emu_conn_touch(c); /* silent, but not closed before the client gives up */
		fprintf(stderr, "livetap-emu: kook: no HELLO on this connection\n");
		return;
	}
	if (k->expire_every > 0 && k->conns % (uint64_t)k->expire_every == 0) {
		send_signal(c, LT_KOOK_S_HELLO, "{\"code\":40103}");
		fprintf(stderr, "livetap-emu: kook: HELLO 40103 sent\n");
		emu_conn_close(c);
		return;
	}
	if (k->single)
		for (int i = 0; i < SESS_MAX; i++)
			if (k->s[i].used && k->s[i].live > 0) {
				send_signal(c, LT_KOOK_S_RECONNECT, "{\"code\":40107,\"err\":\"another session is live\"}");
				fprintf(stderr, "livetap-emu: kook: second session refused\n");
				emu_conn_close(c);
				return;
			}
	if (query_get(q, "resume", v, sizeof(v)) && !strcmp(v, "1")) {
		char sid[64] = "", snv[32] = "0";
		query_get(q, "session_id", sid, sizeof(sid));
		query_get(q, "sn", snv, sizeof(snv));
		int64_t sn = strtoll(snv, NULL, 10);
		s = sess_find(k, sid);
		if (!s) {
			send_signal(c, LT_KOOK_S_RECONNECT, "{\"code\":40106,\"err\":\"resume failed\"}");
			emu_conn_close(c);
			return;
		}
		if (sn < 0 || sn > s->last_sn || (s->last_sn - sn) >= HIST_MAX) {
			send_signal(c, LT_KOOK_S_RECONNECT, "{\"code\":40108,\"err\":\"invalid sn\"}");
			emu_conn_close(c);
			return;
		}
		kc->sess = (int)(s - k->s) + 1;
		s->live++;
		snprintf(d, sizeof(d), "{\"code\":0,\"session_id\":\"%s\"}", s->id);
		send_signal(c, LT_KOOK_S_HELLO, d);
		emu_conn_subscribe(c, EMU_KOOK_CHANNEL);
		replay_after(c, s, sn, 0);
		snprintf(d, sizeof(d), "{\"session_id\":\"%s\"}", s->id);
		send_signal(c, LT_KOOK_S_RESUME_ACK, d);
		kc->up = true;
		fprintf(stderr, "livetap-emu: kook: resumed session %s after sn %" PRId64 " (%" PRId64 " replayed)\n", s->id,
		        sn, s->last_sn - sn);
		return;
	}
	idx = sess_new(k);
	if (idx < 0) {
		send_signal(c, LT_KOOK_S_RECONNECT, "{\"code\":40107,\"err\":\"too many sessions\"}");
		emu_conn_close(c);
		return;
	}
	s = &k->s[idx];
	kc->sess = idx + 1;
	s->live++;
	snprintf(d, sizeof(d), "{\"code\":0,\"session_id\":\"%s\"}", s->id);
	send_signal(c, LT_KOOK_S_HELLO, d);
	emu_conn_subscribe(c, EMU_KOOK_CHANNEL);
	kc->up = true;
}

static void kook_ws_rx(void *mod, struct emu_conn *c, const uint8_t *p, size_t n)
{
	struct kook *k = mod;
	struct sess *s = conn_sess(k, c);
	char buf[256];
	int sig = -1;
	long long sn = -1;

	if (n >= sizeof(buf))
		return;
	memcpy(buf, p, n);
	buf[n] = '\0';
	const char *ps = strstr(buf, "\"s\":"), *pn = strstr(buf, "\"sn\":");
	if (ps)
		sig = atoi(ps + 4);
	if (pn)
		sn = atoll(pn + 5);
	if (!s)
		return;
	s->last_used_ms = emu_now_ms();
	if (sig == LT_KOOK_S_PING) {
		emu_conn_touch(c);
		send_signal(c, LT_KOOK_S_PONG, "{}");
		/* behind: send again what it lacks (what went out over 500 ms ago) */
		if (sn >= 0 && sn < s->last_sn && s->last_sn - sn < HIST_MAX)
			replay_after(c, s, sn, emu_now_ms() - 500);
	} else if (sig == LT_KOOK_S_RESUME && sn >= 0) {
		if (sn <= s->last_sn && s->last_sn - sn < HIST_MAX)
			replay_after(c, s, sn, 0);
		snprintf(buf, sizeof(buf), "{\"session_id\":\"%s\"}", s->id);
		send_signal(c, LT_KOOK_S_RESUME_ACK, buf);
	}
}

/* Render m as a KOOK event (the "d" object) into b; the type the fetcher
 * should map it to goes to *type. */
static void render(struct kook *k, struct lt_buf *b, const struct lt_msg *m, const char *channel, const char *msg_id,
                   uint8_t *type)
{
	const char *uid = m->user_id.len ? "" : "1000001";
	struct lt_buf uidb = LT_BUF_INIT;

	lt_buf_append(&uidb, m->user_id.p, m->user_id.len);
	lt_buf_puts(&uidb, uid);
	const char *user = lt_buf_cstr(&uidb);

	switch (m->type) {
	case LT_MSG_CHAT: {
		bool km = emu_rand(k->e) % 2 == 0;
		*type = LT_MSG_CHAT;
		lt_buf_printf(b, "{\"channel_type\":\"GROUP\",\"type\":%d,\"target_id\":\"%s\",\"author_id\":\"%s\",\"content\":",
		              km ? LT_KOOK_T_KMARKDOWN : LT_KOOK_T_TEXT, channel, user);
		lt_json_str(b, m->content.p ? m->content.p : "", m->content.len);
		lt_buf_printf(b, ",\"msg_id\":\"%s\",\"msg_timestamp\":%" PRId64 ",\"nonce\":\"\",\"verify_token\":\"vt\","
		                 "\"extra\":{\"type\":%d,\"guild_id\":\"" EMU_KOOK_GUILD "\",\"channel_name\":\"闲聊\","
		                 "\"mention\":[],\"mention_all\":false,\"mention_roles\":[],\"mention_here\":false,"
		                 "\"author\":{\"id\":\"%s\",\"username\":",
		              msg_id, m->ts, km ? LT_KOOK_T_KMARKDOWN : LT_KOOK_T_TEXT, user);
		lt_json_str(b, m->user_name.p ? m->user_name.p : "", m->user_name.len);
		lt_buf_puts(b, ",\"identify_num\":\"1024\",\"nickname\":");
		lt_json_str(b, m->user_name.p ? m->user_name.p : "", m->user_name.len);
		lt_buf_puts(b, ",\"bot\":false,\"roles\":[]}");
		if (km) {
			lt_buf_puts(b, ",\"kmarkdown\":{\"raw_content\":");
			lt_json_str(b, m->content.p ? m->content.p : "", m->content.len);
			lt_buf_puts(b, ",\"mention_part\":[],\"mention_role_part\":[]}");
		}
		lt_buf_puts(b, "}}");
		break;
	}
	case LT_MSG_ENTER:
	case LT_MSG_LIKE:
		*type = m->type;
		lt_buf_printf(b,
		              "{\"channel_type\":\"GROUP\",\"type\":255,\"target_id\":\"" EMU_KOOK_GUILD "\",\"author_id\":\"1\","
		              "\"content\":\"[系统消息]\",\"msg_id\":\"%s\",\"msg_timestamp\":%" PRId64 ",\"nonce\":\"\","
		              "\"extra\":{\"type\":\"%s\",\"body\":{\"channel_id\":\"%s\",\"user_id\":\"%s\",",
		              msg_id, m->ts, m->type == LT_MSG_ENTER ? "joined_channel" : "added_reaction", channel, user);
		if (m->type == LT_MSG_ENTER)
			lt_buf_printf(b, "\"joined_at\":%" PRId64 "}}}", m->ts);
		else
			lt_buf_puts(b, "\"msg_id\":\"00000000-0000-0000-0000-000000000000\",\"emoji\":{\"id\":\"[#128077;]\","
			               "\"name\":\"[#128077;]\"}}}}");
		break;
	default:
		*type = LT_MSG_OTHER;
		lt_buf_printf(b, "{\"channel_type\":\"GROUP\",\"type\":10,\"target_id\":\"%s\",\"author_id\":\"%s\",\"content\":",
		              channel, user);
		lt_buf_puts(&uidb, "");
		{
			struct lt_buf card = LT_BUF_INIT;
			lt_buf_puts(&card, "[{\"type\":\"card\",\"modules\":[{\"type\":\"section\",\"text\":{\"type\":\"plain-text\",\"content\":");
			lt_json_str(&card, m->content.p ? m->content.p : "", m->content.len);
			lt_buf_puts(&card, "}}]}]");
			lt_json_str(b, (const char *)lt_buf_cstr(&card), card.len);
			lt_buf_free(&card);
		}
		lt_buf_printf(b, ",\"msg_id\":\"%s\",\"msg_timestamp\":%" PRId64 ",\"nonce\":\"\",\"extra\":{\"type\":10,"
		                 "\"guild_id\":\"" EMU_KOOK_GUILD "\",\"author\":{\"id\":\"%s\",\"username\":\"\",\"nickname\":\"\","
		                 "\"identify_num\":\"0001\",\"bot\":true}}}",
		              msg_id, m->ts, user);
		break;
	}
	lt_buf_free(&uidb);
}

/* Give the next event of c's session and queue it (maybe held back or twice). */
static void push_event(struct kook *k, struct emu_conn *c, const struct lt_msg *m, const char *channel)
{
	struct kconn *kc = emu_conn_data(c);
	struct sess *s = conn_sess(k, c);
	struct lt_buf d = LT_BUF_INIT, frame = LT_BUF_INIT;
	char msg_id[48];
	uint8_t type = LT_MSG_OTHER;

	if (!s)
		return;
	k->counter++;
	snprintf(msg_id, sizeof(msg_id), "%08x-%04x-4%03x-8%03x-%012" PRIx64, k->nonce, emu_rand(k->e) & 0xffff,
	         emu_rand(k->e) & 0xfff, emu_rand(k->e) & 0xfff, k->counter);
	render(k, &d, m, channel, msg_id, &type);
	if (strcmp(channel, EMU_KOOK_CHANNEL) != 0)
		type = 0xff;
	int64_t sn = ++s->last_sn;
	lt_buf_printf(&frame, "{\"s\":0,\"d\":%s,\"sn\":%" PRId64 "}", lt_buf_cstr(&d), sn);
	if (lt_buf_err(&frame))
		goto out;
	struct hist *h = &s->h[sn % HIST_MAX];
	free(h->json);
	h->json = strdup(lt_buf_cstr(&frame));
	h->sn = sn;
	h->type = type;
	h->sent_ms = emu_now_ms();
	snprintf(h->msg_id, sizeof(h->msg_id), "%s", msg_id);

	struct lt_msg log = {.type = type, .msg_id = lt_str_c(h->msg_id)};
	const struct lt_msg *logp = type == 0xff ? NULL : &log;
	if (!kc->held && chance(k, k->reorder)) {
		kc->held = strdup(lt_buf_cstr(&frame));
		kc->held_len = frame.len;
		snprintf(kc->held_id, sizeof(kc->held_id), "%s", msg_id);
		kc->held_log = (struct lt_msg){.type = type};
		kc->held_logged = logp != NULL;
		goto out;
	}
	send_json(c, (const char *)frame.data, frame.len, logp);
	if (chance(k, k->dup))
		send_json(c, (const char *)frame.data, frame.len, logp);
	if (kc->held) {
		kc->held_log.msg_id = lt_str_c(kc->held_id);
		send_json(c, kc->held, kc->held_len, kc->held_logged ? &kc->held_log : NULL);
		free(kc->held);
		kc->held = NULL;
	}
out:
	lt_buf_free(&d);
	lt_buf_free(&frame);
}

static void kook_ws_push(void *mod, struct emu_conn *c, const struct lt_msg *msgs, size_t n)
{
	struct kook *k = mod;
	struct kconn *kc = emu_conn_data(c);
	int64_t now = emu_now_ms();

	if (!kc->up)
		return;
	if (k->reconnect_every_s > 0) {
		if (!k->next_reconnect)
			k->next_reconnect = now + (int64_t)k->reconnect_every_s * 1000;
		if (now >= k->next_reconnect) {
			k->next_reconnect = now + (int64_t)k->reconnect_every_s * 1000;
			/* every connection, once: the session is invalid from now on */
			struct sess *s = conn_sess(k, c);
			send_signal(c, LT_KOOK_S_RECONNECT, "{\"code\":40108,\"err\":\"invalid sn\"}");
			fprintf(stderr, "livetap-emu: kook: s=5 40108 sent\n");
			kc->up = false;
			if (s) {
				s->live--;
				sess_free(s);
				kc->sess = 0;
			}
			emu_conn_close(c);
			return;
		}
	}
	for (size_t i = 0; i < n; i++) {
		push_event(k, c, &msgs[i], EMU_KOOK_CHANNEL);
		if (k->counter % 5 == 0)
			push_event(k, c, &msgs[i], EMU_KOOK_OTHER_CHANNEL);
	}
}

static void kook_ws_garbage(void *mod, struct emu_conn *c)
{
	struct kook *k = mod;
	struct kconn *kc = emu_conn_data(c);
	uint8_t junk[64];

	if (!kc->compress) {
		static const char broken[] = "{\"s\":0,\"d\":{\"type\":9,\"target_id\":";
		emu_conn_send(c, broken, sizeof(broken) - 1);
		return;
	}
	junk[0] = 0x78;
	junk[1] = 0x9c; /* a valid zlib header, then a body that is not deflate */
	for (size_t i = 2; i < sizeof(junk); i++)
		junk[i] = (uint8_t)emu_rand(k->e);
	junk[2] = 0xff; /* block type 3: invalid */
	emu_conn_send(c, junk, sizeof(junk));
}

static void kook_ws_close(void *mod, struct emu_conn *c)
{
	struct kook *k = mod;
	struct kconn *kc = emu_conn_data(c);
	struct sess *s = conn_sess(k, c);

	if (s && s->live > 0)
		s->live--;
	kc->sess = 0;
	free(kc->held); /* a held frame is lost like a frame on a dropped socket */
	kc->held = NULL;
}

static int kook_init(struct emu *e, void **mod)
{
	struct kook *k = calloc(1, sizeof(*k));

	if (!k)
		return LT_ENOMEM;
	k->e = e;
	k->nonce = (uint32_t)(emu_now_ms() / 1000);
	parse_env(k);
	*mod = k;
	return LT_OK;
}

static void kook_fini(void *mod)
{
	struct kook *k = mod;

	if (!k)
		return;
	for (int i = 0; i < SESS_MAX; i++)
		sess_free(&k->s[i]);
	free(k);
}

const struct emu_module emu_kook = {
	.name = "kook",
	.ws_path = "/gateway",
	.conn_size = sizeof(struct kconn),
	.init = kook_init,
	.fini = kook_fini,
	.http = kook_http,
	.ws_open = kook_ws_open,
	.ws_rx = kook_ws_rx,
	.ws_push = kook_ws_push,
	.ws_garbage = kook_ws_garbage,
	.ws_close = kook_ws_close,
};
