/* SPDX-License-Identifier: MIT */
/*
 * platform_douyin: the Douyin (抖音) webcast platform (ops table
 * lt_platform_douyin). Facts from ../shared/brief/protocols/douyin.md.
 *
 * Bootstrap (pure: the driver does the HTTP): GET web_base/ for the ttwid
 * cookie (unless the configured cookie has one), then GET web_base/{web_rid}
 * whose SSR state carries roomId, user_unique_id and status_str (4 = the
 * stream has ended: retry later). The push URL is ws_url plus the query of
 * §1.2 and a `signature` from a pluggable signer (douyin_sign.h; native by
 * default, or the command named by douyin.signer) over the X-MS-STUB of
 * room_id and user_unique_id; a signer that fails makes the attempt fail
 * (retried after backoff). After a failed
 * attempt the live page is fetched again (a fresh room state and status).
 *
 * Decoding: every frame is a PushFrame (douyin.proto, protobuf-c into a
 * per-connection arena capped at LT_DY_PB_ARENA_MAX). payload_type "msg"
 * carries a Response, gzip'd when the header compress_type says so or the
 * payload starts with the gzip magic (inflate capped at LT_DY_INFLATE_MAX);
 * "hb" is the server's heartbeat answer, "close" ends the session (reconnect).
 * A Response with need_ack is answered with PushFrame{log_id, "ack",
 * internal_ext}. Unknown fields are skipped by protobuf-c; a frame or
 * message that does not parse is counted and skipped.
 *
 * Mapping: msg_id is Common.msg_id (else Message.msg_id). Messages seen
 * before (the server replays up to need_persist_msg_count recent messages on
 * every connect) are dropped by a two-generation set of recent ids. A gift
 * counts the combo delta: the last repeat_count per (user, gift, group) is
 * kept, so the cumulative steps of a combo (and the closing repeat_end
 * message) add up to the combo's total once. A gift that is not streakable
 * or has no group_id is no combo step: it counts its own repeat_count.
 * Masked users (id 0 or 111111 without another id) are anonymous. The room messages carry is the
 * configured web_rid, the same live and in --replay.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/mem.h"
#include "fetcher/douyin.h"
#include "fetcher/douyin.pb-c.h"
#include "fetcher/douyin_sign.h"
#include "fetcher/inflate.h"
#include "fetcher/platform.h"

#define DEFAULT_WEB "https://live.douyin.com"
#define DEFAULT_WS "wss://webcast5-ws-web-hl.douyin.com" LT_DY_WS_PATH
#define DEFAULT_UA                                                                                       \
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 " \
	"Safari/537.36"

enum step { STEP_TTWID, STEP_PAGE, STEP_DONE };

struct combo {
	uint64_t user, gift, group;
	uint64_t last; /* repeat_count last seen; 0 = empty slot */
};

struct lt_platform_conn {
	char room[LT_MSG_ROOM_MAX + 1]; /* web_rid as configured */
	char room_id[LT_MSG_ROOM_MAX + 1]; /* resolved webcast room id */
	char uid[24];                   /* user_unique_id */
	char ttwid[512];
	char *web_base, *ws_url, *cookie, *ua;
	char *signer_cmd;               /* douyin.signer when not "native" */
	bool skip_bootstrap;
	bool live_ended;                /* the page said status_str 4 */
	bool authed;                    /* a data frame arrived on this connection */
	const struct lt_clock *clock;
	enum step step;
	int hb_ms;
	uint64_t rng;
	struct lt_douyin_signer signer;

	struct lt_buf url, hdrs, target, out, inflated, extra;
	struct lt_inflate zs; /* gzip */
	struct lt_arena pb_arena;
	ProtobufCAllocator pb_alloc;

	uint64_t dedup[2][LT_DY_DEDUP_GEN * 2]; /* open addressing; 0 = empty */
	unsigned dedup_n[2];
	int dedup_cur;
	uint64_t duplicates;
	struct combo combos[LT_DY_COMBO_SLOTS];

	struct lt_platform_stats st;
};

/* ------------------------------------------------------------------ */
/* Small helpers */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static struct lt_str u64_str(uint64_t u, char buf[24])
{
	char *p = buf + 24;
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	return (struct lt_str){p, (uint32_t)(buf + 24 - p)};
}

static struct lt_str pbs(const char *s)
{
	return lt_str_c(s);
}

static void *pb_alloc(void *ud, size_t n)
{
	return lt_arena_alloc(ud, n);
}

static void pb_free(void *ud, void *p)
{
	(void)ud;
	(void)p;
}

/* ------------------------------------------------------------------ */
/* Recent msg_ids: two generations of LT_DY_DEDUP_GEN ids each; when the
 * current one is full the older one is forgotten. */

static unsigned dd_hash(uint64_t id)
{
	return (unsigned)((id * 0x9e3779b97f4a7c15ULL) >> 40) & (LT_DY_DEDUP_GEN * 2 - 1);
}

static bool dd_has(const uint64_t *set, uint64_t id)
{
	for (unsigned i = dd_hash(id);; i = (i + 1) & (LT_DY_DEDUP_GEN * 2 - 1)) {
		if (set[i] == id)
			return true;
		if (set[i] == 0)
			return false;
	}
}

/* True if id was seen before; remembers it otherwise. id 0 is never a
 * duplicate. */
static bool seen(struct lt_platform_conn *c, uint64_t id)
{
	if (!id)
		return false;
	if (dd_has(c->dedup[0], id) || dd_has(c->dedup[1], id))
		return true;
	if (c->dedup_n[c->dedup_cur] >= LT_DY_DEDUP_GEN) {
		c->dedup_cur ^= 1;
		memset(c->dedup[c->dedup_cur], 0, sizeof(c->dedup[0]));
		c->dedup_n[c->dedup_cur] = 0;
	}
	uint64_t *set = c->dedup[c->dedup_cur];
	unsigned i = dd_hash(id);
	while (set[i])
		i = (i + 1) & (LT_DY_DEDUP_GEN * 2 - 1);
	set[i] = id;
	c->dedup_n[c->dedup_cur]++;
	return false;
}

/* ------------------------------------------------------------------ */
/* Emitting */

struct em {
	struct lt_platform_conn *c;
	const struct lt_platform_io *io;
	int64_t recv_ms;
	unsigned *ev;
	uint64_t msg_id;  /* Message.msg_id, the fallback */
	char idbuf[24];
	char uidbuf[24];
};

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

static void extra_u64(struct lt_buf *x, const char *k, uint64_t v)
{
	char tmp[24];
	struct lt_str s = u64_str(v, tmp);
	extra_key(x, k);
	lt_buf_append(x, s.p, s.len);
}

static void extra_i64(struct lt_buf *x, const char *k, int64_t v)
{
	if (v < 0) {
		extra_key(x, k);
		lt_buf_printf(x, "%lld", (long long)v);
	} else {
		extra_u64(x, k, (uint64_t)v);
	}
}

/* Start m for a message with common cm; false if it is a duplicate (then
 * nothing is to be emitted). */
static bool msg_begin(struct em *e, struct lt_msg *m, int type, const LtDy__Common *cm)
{
	uint64_t id = cm && cm->msg_id ? cm->msg_id : e->msg_id;

	if (seen(e->c, id)) {
		e->c->duplicates++;
		return false;
	}
	memset(m, 0, sizeof(*m));
	m->platform = LT_PLATFORM_DOUYIN;
	m->type = (uint8_t)type;
	m->room = lt_str_c(e->c->room);
	int64_t ts = cm ? (int64_t)cm->create_time : 0;
	if (ts <= 0)
		ts = e->recv_ms;
	else if (ts < 1000000000000LL)
		ts *= 1000; /* seconds */
	m->ts = ts;
	if (id)
		m->msg_id = u64_str(id, e->idbuf);
	lt_buf_reset(&e->c->extra);
	return true;
}

static void set_user(struct em *e, struct lt_msg *m, const LtDy__User *u)
{
	if (!u) {
		m->flags |= LT_MSGF_ANONYMOUS;
		return;
	}
	m->user_name = pbs(u->nickname);
	if (u->id && u->id != LT_DY_MASKED_UID)
		m->user_id = u64_str(u->id, e->uidbuf);
	else if (u->id_str && u->id_str[0] && strcmp(u->id_str, "111111") != 0)
		m->user_id = pbs(u->id_str);
	else if (u->sec_uid && u->sec_uid[0])
		m->user_id = pbs(u->sec_uid);
	else if (u->display_id && u->display_id[0] && u->id != LT_DY_MASKED_UID)
		m->user_id = pbs(u->display_id);
	else
		m->flags |= LT_MSGF_ANONYMOUS;
}

static void emit(struct em *e, struct lt_msg *m)
{
	struct lt_buf *x = &e->c->extra;
	char synth[17];

	if (x->len) {
		lt_buf_putc(x, '}');
		if (!lt_buf_err(x))
			m->extra = (struct lt_str){(const char *)x->data, (uint32_t)x->len};
	}
	if (!m->msg_id.len) {
		lt_msg_synth_id(m, synth);
		m->msg_id = (struct lt_str){synth, 16};
	}
	lt_msg_clamp(m);
	e->c->st.messages++;
	e->io->emit(e->io->ud, m);
}

/* ------------------------------------------------------------------ */
/* Message handlers: LT_OK, or LT_EPROTO when the payload does not parse. */

#define UNPACK(T, fn, e, p, n) ((T *)fn(&(e)->c->pb_alloc, (n), (p)))

static int on_chat(struct em *e, const uint8_t *p, size_t n)
{
	LtDy__ChatMessage *cm = UNPACK(LtDy__ChatMessage, lt_dy__chat_message__unpack, e, p, n);
	struct lt_msg m;
	if (!cm)
		return LT_EPROTO;
	if (!msg_begin(e, &m, LT_MSG_CHAT, cm->common))
		return LT_OK;
	set_user(e, &m, cm->user);
	m.content = pbs(cm->content);
	emit(e, &m);
	return LT_OK;
}

static int on_emoji(struct em *e, const uint8_t *p, size_t n)
{
	LtDy__EmojiChatMessage *cm = UNPACK(LtDy__EmojiChatMessage, lt_dy__emoji_chat_message__unpack, e, p, n);
	struct lt_msg m;
	if (!cm)
		return LT_EPROTO;
	if (!msg_begin(e, &m, LT_MSG_CHAT, cm->common))
		return LT_OK;
	set_user(e, &m, cm->user);
	m.content = pbs(cm->default_content);
	extra_i64(&e->c->extra, "emoji_id", cm->emoji_id);
	emit(e, &m);
	return LT_OK;
}

static uint64_t user_key(const LtDy__User *u)
{
	if (!u)
		return 0;
	if (u->id)
		return u->id;
	/* FNV-1a of whatever string id there is */
	const char *s = u->sec_uid && u->sec_uid[0] ? u->sec_uid : u->id_str ? u->id_str : "";
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
	return h;
}

/* The combo delta of a gift step: repeat_count minus the last one seen for
 * the same (user, gift, group); 0 for a repeat or an older step. */
static uint64_t combo_delta(struct lt_platform_conn *c, uint64_t user, uint64_t gift, uint64_t group,
                            uint64_t repeat)
{
	uint64_t h = ((user * 0x9e3779b97f4a7c15ULL) ^ (gift * 0xc2b2ae3d27d4eb4fULL) ^ group) * 0x165667b19e3779f9ULL;
	struct combo *s = &c->combos[(h >> 32) % LT_DY_COMBO_SLOTS];

	if (!repeat)
		repeat = 1;
	if (s->last && s->user == user && s->gift == gift && s->group == group) {
		if (repeat <= s->last)
			return 0;
		uint64_t d = repeat - s->last;
		s->last = repeat;
		return d;
	}
	*s = (struct combo){user, gift, group, repeat};
	return repeat;
}

static int on_gift(struct em *e, const uint8_t *p, size_t n)
{
	LtDy__GiftMessage *g = UNPACK(LtDy__GiftMessage, lt_dy__gift_message__unpack, e, p, n);
	struct lt_msg m;
	char tu[24];
	if (!g)
		return LT_EPROTO;
	if (!msg_begin(e, &m, LT_MSG_GIFT, g->common))
		return LT_OK;
	uint64_t gift_id = g->gift_id ? g->gift_id : g->gift ? g->gift->id : 0;
	/* Only a streakable gift (GiftStruct combo / type 1) in a group is a
	 * combo step with a cumulative repeat_count; any other gift message is
	 * a whole send of its own, counted as it stands (two of them by one
	 * user with repeat_count 1 and no group are two gifts, not a repeat). */
	bool combo = g->group_id && (!g->gift || g->gift->combo || g->gift->type == LT_DY_GIFT_TYPE_COMBO);
	uint64_t delta = combo ? combo_delta(e->c, user_key(g->user), gift_id, g->group_id, g->repeat_count)
	                       : g->repeat_count ? g->repeat_count : 1;
	if (!delta) {
		e->c->duplicates++; /* a combo's closing repeat or an out-of-order step: nothing new */
		return LT_OK;
	}
	/* items = combo steps x items per group, capped so that count x
	 * diamonds fits an int64 whatever the frame says */
	uint64_t per = g->group_count ? g->group_count : 1;
	uint64_t items = delta > LT_DY_GIFT_COUNT_MAX / per ? LT_DY_GIFT_COUNT_MAX : delta * per;
	int64_t count = (int64_t)(items < LT_DY_GIFT_COUNT_MAX ? items : LT_DY_GIFT_COUNT_MAX);
	int64_t diamonds = g->gift && g->gift->diamond_count > 0 ? g->gift->diamond_count : 0;
	struct lt_buf *x = &e->c->extra;

	set_user(e, &m, g->user);
	m.count = count;
	m.value = count * diamonds;
	m.content = g->gift ? pbs(g->gift->name) : LT_STR_NULL;
	extra_str(x, "gift_name", m.content);
	extra_i64(x, "count", m.count);
	extra_i64(x, "value", m.value);
	extra_str(x, "currency", LT_STR("diamond"));
	extra_u64(x, "gift_id", gift_id);
	extra_u64(x, "group_id", g->group_id);
	extra_u64(x, "repeat_count", g->repeat_count);
	extra_u64(x, "combo_count", g->combo_count);
	extra_u64(x, "group_count", g->group_count);
	extra_u64(x, "repeat_end", g->repeat_end);
	extra_i64(x, "diamond_count", diamonds);
	if (g->gift)
		extra_i64(x, "gift_type", g->gift->type);
	if (g->to_user && g->to_user->id)
		extra_str(x, "to_user", u64_str(g->to_user->id, tu));
	emit(e, &m);
	return LT_OK;
}

static int on_like(struct em *e, const uint8_t *p, size_t n)
{
	LtDy__LikeMessage *l = UNPACK(LtDy__LikeMessage, lt_dy__like_message__unpack, e, p, n);
	struct lt_msg m;
	if (!l)
		return LT_EPROTO;
	if (!msg_begin(e, &m, LT_MSG_LIKE, l->common))
		return LT_OK;
	set_user(e, &m, l->user);
	m.count = (int64_t)l->count;
	extra_u64(&e->c->extra, "count", l->count);
	extra_u64(&e->c->extra, "total", l->total);
	emit(e, &m);
	return LT_OK;
}

static int on_member(struct em *e, const uint8_t *p, size_t n)
{
	LtDy__MemberMessage *mm = UNPACK(LtDy__MemberMessage, lt_dy__member_message__unpack, e, p, n);
	struct lt_msg m;
	if (!mm)
		return LT_EPROTO;
	if (!msg_begin(e, &m, LT_MSG_ENTER, mm->common))
		return LT_OK;
	set_user(e, &m, mm->user);
	extra_u64(&e->c->extra, "member_count", mm->member_count);
	extra_u64(&e->c->extra, "action", mm->action);
	emit(e, &m);
	return LT_OK;
}

static int on_social(struct em *e, const uint8_t *p, size_t n)
{
	LtDy__SocialMessage *s = UNPACK(LtDy__SocialMessage, lt_dy__social_message__unpack, e, p, n);
	struct lt_msg m;
	if (!s)
		return LT_EPROTO;
	if (!msg_begin(e, &m, s->action == LT_DY_SOCIAL_FOLLOW ? LT_MSG_FOLLOW : LT_MSG_SHARE, s->common))
		return LT_OK;
	set_user(e, &m, s->user);
	extra_u64(&e->c->extra, "action", s->action);
	extra_u64(&e->c->extra, "share_type", s->share_type);
	extra_u64(&e->c->extra, "follow_count", s->follow_count);
	emit(e, &m);
	return LT_OK;
}

static int on_seq(struct em *e, const uint8_t *p, size_t n)
{
	LtDy__RoomUserSeqMessage *s = UNPACK(LtDy__RoomUserSeqMessage, lt_dy__room_user_seq_message__unpack, e, p, n);
	struct lt_msg m;
	if (!s)
		return LT_EPROTO;
	if (!msg_begin(e, &m, LT_MSG_ROOM_STATS, s->common))
		return LT_OK;
	m.flags |= LT_MSGF_ANONYMOUS;
	m.count = (int64_t)s->total;
	extra_str(&e->c->extra, "method", LT_STR("WebcastRoomUserSeqMessage"));
	extra_u64(&e->c->extra, "total", s->total);
	extra_u64(&e->c->extra, "total_user", s->total_user);
	extra_str(&e->c->extra, "total_pv_for_anchor", pbs(s->total_pv_for_anchor));
	emit(e, &m);
	return LT_OK;
}

static int on_stats(struct em *e, const uint8_t *p, size_t n)
{
	LtDy__RoomStatsMessage *s = UNPACK(LtDy__RoomStatsMessage, lt_dy__room_stats_message__unpack, e, p, n);
	struct lt_msg m;
	if (!s)
		return LT_EPROTO;
	if (!msg_begin(e, &m, LT_MSG_ROOM_STATS, s->common))
		return LT_OK;
	m.flags |= LT_MSGF_ANONYMOUS;
	m.count = s->total ? s->total : s->display_value;
	m.content = pbs(s->display_long);
	extra_str(&e->c->extra, "method", LT_STR("WebcastRoomStatsMessage"));
	extra_i64(&e->c->extra, "display_value", s->display_value);
	extra_i64(&e->c->extra, "total", s->total);
	emit(e, &m);
	return LT_OK;
}

static int on_control(struct em *e, const uint8_t *p, size_t n)
{
	LtDy__ControlMessage *s = UNPACK(LtDy__ControlMessage, lt_dy__control_message__unpack, e, p, n);
	struct lt_msg m;
	if (!s)
		return LT_EPROTO;
	bool end = s->action == LT_DY_CONTROL_LIVE_END;
	if (end)
		*e->ev |= LT_PEV_LIVE_END;
	if (!msg_begin(e, &m, end ? LT_MSG_LIVE_END : LT_MSG_OTHER, s->common))
		return LT_OK;
	m.flags |= LT_MSGF_ANONYMOUS;
	m.content = pbs(s->tips);
	extra_str(&e->c->extra, "method", LT_STR("WebcastControlMessage"));
	extra_u64(&e->c->extra, "action", s->action);
	emit(e, &m);
	return LT_OK;
}

static int on_fansclub(struct em *e, const uint8_t *p, size_t n)
{
	LtDy__FansclubMessage *s = UNPACK(LtDy__FansclubMessage, lt_dy__fansclub_message__unpack, e, p, n);
	struct lt_msg m;
	if (!s)
		return LT_EPROTO;
	if (!msg_begin(e, &m, LT_MSG_OTHER, s->common))
		return LT_OK;
	set_user(e, &m, s->user);
	m.content = pbs(s->content);
	extra_str(&e->c->extra, "method", LT_STR("WebcastFansclubMessage"));
	extra_i64(&e->c->extra, "fansclub_type", s->type);
	emit(e, &m);
	return LT_OK;
}

/* Any other method: `other`, its method kept, common read if it parses. */
static int on_other(struct em *e, const char *method, const uint8_t *p, size_t n)
{
	struct lt_msg m;
	/* Every Douyin message has its Common as field 1; a payload that is not
	 * of that shape still gets through with Message.msg_id. */
	LtDy__ChatMessage *any = UNPACK(LtDy__ChatMessage, lt_dy__chat_message__unpack, e, p, n);
	if (!msg_begin(e, &m, LT_MSG_OTHER, any ? any->common : NULL))
		return LT_OK;
	m.flags |= LT_MSGF_ANONYMOUS;
	extra_str(&e->c->extra, "method", pbs(method));
	emit(e, &m);
	return LT_OK;
}

struct method_map {
	const char *name;
	int (*fn)(struct em *e, const uint8_t *p, size_t n);
};

static const struct method_map methods[] = {
	{"WebcastChatMessage", on_chat},
	{"WebcastGiftMessage", on_gift},
	{"WebcastLikeMessage", on_like},
	{"WebcastMemberMessage", on_member},
	{"WebcastSocialMessage", on_social},
	{"WebcastRoomUserSeqMessage", on_seq},
	{"WebcastRoomStatsMessage", on_stats},
	{"WebcastControlMessage", on_control},
	{"WebcastFansclubMessage", on_fansclub},
	{"WebcastEmojiChatMessage", on_emoji},
};

static void on_message(struct em *e, const LtDy__Message *msg)
{
	const char *method = msg->method ? msg->method : "";
	int rc = LT_ENOTFOUND;

	e->c->st.packets++;
	e->msg_id = (uint64_t)msg->msg_id;
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(methods[i].name, method) == 0) {
			rc = methods[i].fn(e, msg->payload.data, msg->payload.len);
			break;
		}
	if (rc == LT_ENOTFOUND)
		rc = method[0] ? on_other(e, method, msg->payload.data, msg->payload.len) : LT_EPROTO;
	if (rc != LT_OK)
		e->c->st.bad_messages++;
}

/* ------------------------------------------------------------------ */
/* Frames */

static int gunzip(struct lt_platform_conn *c, const uint8_t *p, size_t n)
{
	int rc = lt_inflate_run(&c->zs, p, n, LT_DY_INFLATE_MAX, &c->inflated, NULL);
	if (rc != LT_OK)
		return rc == LT_ENOMEM || rc == LT_EINTERNAL ? rc : LT_EPROTO; /* a bomb, truncated, garbage */
	c->st.bytes_inflated += c->inflated.len;
	return LT_OK;
}

static bool header_is(const LtDy__PushFrame *f, const char *k, const char *v)
{
	for (size_t i = 0; i < f->n_headers; i++)
		if (f->headers[i]->key && strcmp(f->headers[i]->key, k) == 0)
			return f->headers[i]->value && strcmp(f->headers[i]->value, v) == 0;
	return false;
}

/* Pack the ack of frame f answering r into c->out and send it. */
static int send_ack(struct lt_platform_conn *c, const struct lt_platform_io *io, uint64_t log_id,
                    const char *internal_ext)
{
	LtDy__PushFrame a = LT_DY__PUSH_FRAME__INIT;
	a.log_id = log_id;
	a.payload_type = (char *)LT_DY_PT_ACK;
	a.payload.data = (uint8_t *)(uintptr_t)(internal_ext ? internal_ext : "");
	a.payload.len = internal_ext ? strlen(internal_ext) : 0;
	size_t len = lt_dy__push_frame__get_packed_size(&a);
	lt_buf_reset(&c->out);
	if (lt_buf_reserve(&c->out, len) != LT_OK)
		return LT_ENOMEM;
	c->out.len = lt_dy__push_frame__pack(&a, c->out.data);
	io->send(io->ud, c->out.data, c->out.len, false);
	return LT_OK;
}

static int on_data(struct em *e, const LtDy__PushFrame *f)
{
	struct lt_platform_conn *c = e->c;
	const uint8_t *p = f->payload.data;
	size_t n = f->payload.len;

	if (header_is(f, "compress_type", "gzip") || (n >= 3 && p[0] == 0x1f && p[1] == 0x8b && p[2] == 0x08)) {
		int rc = gunzip(c, p, n);
		if (rc != LT_OK)
			return rc;
		p = c->inflated.data;
		n = c->inflated.len;
	}
	LtDy__Response *r = lt_dy__response__unpack(&c->pb_alloc, n, p);
	if (!r)
		return LT_EPROTO;
	if (!c->authed) {
		c->authed = true; /* the signed handshake was accepted */
		*e->ev |= LT_PEV_AUTHED;
	}
	if (r->heartbeat_duration > LT_DY_HEARTBEAT_MS && r->heartbeat_duration <= 60000)
		c->hb_ms = (int)r->heartbeat_duration;
	if (r->need_ack) {
		int rc = send_ack(c, e->io, f->log_id, r->internal_ext);
		if (rc != LT_OK)
			return rc;
	}
	for (size_t i = 0; i < r->n_messages; i++)
		on_message(e, r->messages[i]);
	return LT_OK;
}

static int decode(struct em *e, const uint8_t *p, size_t n)
{
	struct lt_platform_conn *c = e->c;

	if (n == 0 || n > LT_DY_FRAME_MAX)
		return LT_EPROTO;
	lt_arena_reset(&c->pb_arena);
	LtDy__PushFrame *f = lt_dy__push_frame__unpack(&c->pb_alloc, n, p);
	if (!f || !f->payload_type)
		return LT_EPROTO;
	const char *pt = f->payload_type;
	if (strcmp(pt, LT_DY_PT_MSG) == 0)
		return on_data(e, f);
	if (strcmp(pt, LT_DY_PT_HB) == 0) {
		c->st.heartbeats++;
		*e->ev |= LT_PEV_HEARTBEAT;
		return LT_OK;
	}
	if (strcmp(pt, LT_DY_PT_CLOSE) == 0) {
		*e->ev |= LT_PEV_RECONNECT;
		return LT_OK;
	}
	if (strcmp(pt, LT_DY_PT_ACK) == 0 || pt[0])
		return LT_OK; /* another kind of frame: nothing for us */
	return LT_EPROTO; /* no payload_type: not a PushFrame we know */
}

/* ------------------------------------------------------------------ */
/* The ops */

static void dy_destroy(struct lt_platform_conn *c)
{
	if (!c)
		return;
	free(c->web_base);
	free(c->ws_url);
	free(c->cookie);
	free(c->ua);
	free(c->signer_cmd);
	lt_buf_free(&c->url);
	lt_buf_free(&c->hdrs);
	lt_buf_free(&c->target);
	lt_buf_free(&c->out);
	lt_buf_free(&c->inflated);
	lt_buf_free(&c->extra);
	lt_inflate_end(&c->zs);
	lt_arena_free(&c->pb_arena);
	free(c);
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int dy_create(const struct lt_platform_conf *conf, struct lt_platform_conn **out)
{
	struct lt_platform_conn *c;

	if (!conf || !conf->room || !conf->room[0] || strlen(conf->room) > LT_MSG_ROOM_MAX)
		return LT_EINVAL;
	for (const char *p = conf->room; *p; p++)
		if (*p < '0' || *p > '9')
			return LT_EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return LT_ENOMEM;
	const char *web = conf->aux_base ? conf->aux_base : conf->api_base ? conf->api_base : DEFAULT_WEB;
	c->web_base = strdup(web);
	c->ws_url = strdup(conf->ws_url ? conf->ws_url : DEFAULT_WS);
	c->cookie = dup_or_null(conf->cookie);
	c->ua = strdup(conf->user_agent ? conf->user_agent : DEFAULT_UA);
	if (!c->web_base || !c->ws_url || !c->ua || (conf->cookie && !c->cookie)) {
		dy_destroy(c);
		return LT_ENOMEM;
	}
	snprintf(c->room, sizeof(c->room), "%s", conf->room);
	c->skip_bootstrap = conf->skip_bootstrap;
	c->clock = conf->clock ? conf->clock : &lt_clock_real;
	c->hb_ms = LT_DY_HEARTBEAT_MS;
	c->rng = (uint64_t)lt_clock_mono(c->clock) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)c;
	c->signer.rng = rng_next(&c->rng) | 1;
	if (conf->signer && conf->signer[0] && strcmp(conf->signer, "native") != 0) {
		c->signer_cmd = strdup(conf->signer);
		if (!c->signer_cmd) {
			dy_destroy(c);
			return LT_ENOMEM;
		}
		c->signer.fn = lt_douyin_sign_cmd;
		c->signer.ud = c->signer_cmd;
	}
	if (c->cookie)
		lt_platform_cookie_get(c->cookie, "ttwid", c->ttwid, sizeof(c->ttwid));
	lt_buf_init(&c->url, 0);
	lt_buf_init(&c->hdrs, 0);
	lt_buf_init(&c->target, 0);
	lt_buf_init(&c->out, 0);
	lt_buf_init(&c->inflated, LT_DY_INFLATE_MAX + 1);
	lt_inflate_init(&c->zs, LT_INFLATE_GZIP);
	lt_buf_init(&c->extra, 0);
	lt_arena_init(&c->pb_arena, LT_DY_PB_ARENA_MAX);
	c->pb_alloc = (ProtobufCAllocator){.alloc = pb_alloc, .free = pb_free, .allocator_data = &c->pb_arena};
	c->step = STEP_DONE;
	*out = c;
	return LT_OK;
}

static int dy_begin(struct lt_platform_conn *c, int attempt)
{
	if (c->skip_bootstrap) {
		if (!c->uid[0])
			snprintf(c->uid, sizeof(c->uid), "%llu",
			         (unsigned long long)(7300000000000000000ULL + rng_next(&c->rng) % 700000000000000000ULL));
		if (!c->room_id[0])
			snprintf(c->room_id, sizeof(c->room_id), "%s", c->room);
		c->step = STEP_DONE;
		return LT_OK;
	}
	if (!c->ttwid[0])
		c->step = STEP_TTWID;
	else if (!c->room_id[0] || attempt > 0)
		c->step = STEP_PAGE;
	else
		c->step = STEP_DONE;
	return LT_OK;
}

static void rand_chars(struct lt_platform_conn *c, struct lt_buf *b, size_t n, const char *set)
{
	size_t k = strlen(set);
	for (size_t i = 0; i < n; i++)
		lt_buf_putc(b, set[rng_next(&c->rng) % k]);
}

static void cookie_header(struct lt_platform_conn *c, bool page)
{
	struct lt_buf *h = &c->hdrs;
	bool any = false;

	lt_buf_reset(h);
	lt_buf_printf(h, "User-Agent: %s\r\n", c->ua);
	if (page)
		lt_buf_printf(h, "Referer: %s/\r\n", c->web_base);
	if (c->cookie && c->cookie[0]) {
		lt_buf_printf(h, "Cookie: %s", c->cookie);
		any = true;
	}
	if (c->ttwid[0] && !(c->cookie && strstr(c->cookie, "ttwid="))) {
		lt_buf_printf(h, "%sttwid=%s", any ? "; " : "Cookie: ", c->ttwid);
		any = true;
	}
	if (page) {
		lt_buf_puts(h, any ? "; msToken=" : "Cookie: msToken=");
		rand_chars(c, h, 107, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");
		lt_buf_puts(h, "; __ac_nonce=0");
		rand_chars(c, h, 20, "0123456789abcdef");
		any = true;
	}
	if (any)
		lt_buf_puts(h, "\r\n");
}

static int dy_http_next(struct lt_platform_conn *c, struct lt_http_req *req)
{
	struct lt_buf *u = &c->url;

	lt_buf_reset(u);
	switch (c->step) {
	case STEP_TTWID:
		lt_buf_printf(u, "%s/", c->web_base);
		cookie_header(c, false);
		break;
	case STEP_PAGE:
		lt_buf_printf(u, "%s/%s", c->web_base, c->room);
		cookie_header(c, true);
		break;
	case STEP_DONE:
	default:
		return LT_EEOF;
	}
	if (lt_buf_err(u) || lt_buf_err(&c->hdrs))
		return LT_ENOMEM;
	req->method = "GET";
	req->url = lt_buf_cstr(u);
	req->headers = lt_buf_cstr(&c->hdrs);
	req->body = NULL;
	req->body_len = 0;
	return LT_OK;
}

/* The digits after the first of keys (escaped or plain JSON) in body, into
 * out; false if none. */
static bool page_digits(const char *body, size_t n, const char *key, char *out, size_t cap)
{
	char pat[2][64];
	snprintf(pat[0], sizeof(pat[0]), "%s\\\":\\\"", key);
	snprintf(pat[1], sizeof(pat[1]), "\"%s\":\"", key);
	for (int k = 0; k < 2; k++) {
		size_t pl = strlen(pat[k]);
		for (size_t i = 0; i + pl <= n; i++) {
			if (body[i] != pat[k][0] || memcmp(body + i, pat[k], pl) != 0)
				continue;
			size_t j = i + pl, d = 0;
			while (j + d < n && body[j + d] >= '0' && body[j + d] <= '9')
				d++;
			if (d == 0 || d >= cap)
				break;
			memcpy(out, body + j, d);
			out[d] = '\0';
			return true;
		}
	}
	return false;
}

static int dy_http_done(struct lt_platform_conn *c, const struct lt_http_resp *resp)
{
	int rc = LT_OK;

	if (resp->status == 0 || resp->status == 429 || resp->status >= 500) {
		rc = LT_EAGAIN;
		goto out;
	}
	if (resp->status == 404) {
		rc = LT_ENOTFOUND;
		goto out;
	}
	if (resp->status != 200 || resp->body_len > LT_DY_HTTP_BODY_MAX) {
		rc = LT_EPROTO;
		goto out;
	}
	switch (c->step) {
	case STEP_TTWID:
		if (!resp->set_cookie || !lt_platform_cookie_get(resp->set_cookie, "ttwid", c->ttwid, sizeof(c->ttwid))) {
			rc = LT_EAGAIN;
			goto out;
		}
		c->step = STEP_PAGE;
		break;
	case STEP_PAGE: {
		char status[8] = "";
		if (!resp->body || !page_digits(resp->body, resp->body_len, "roomId", c->room_id, sizeof(c->room_id))) {
			rc = LT_EAGAIN; /* risk control / captcha page: retry later */
			goto out;
		}
		if (!page_digits(resp->body, resp->body_len, "user_unique_id", c->uid, sizeof(c->uid)) || c->uid[0] == '0')
			snprintf(c->uid, sizeof(c->uid), "%llu",
			         (unsigned long long)(7300000000000000000ULL + rng_next(&c->rng) % 700000000000000000ULL));
		page_digits(resp->body, resp->body_len, "status_str", status, sizeof(status));
		c->live_ended = strcmp(status, "4") == 0;
		c->step = STEP_DONE;
		break;
	}
	default:
		rc = LT_EINTERNAL;
		goto out;
	}
out:
	if (rc != LT_OK)
		c->st.http_errors++;
	return rc;
}

static void url_enc(struct lt_buf *b, const char *s)
{
	static const char hexd[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		    ch == '_' || ch == '.' || ch == '~') {
			lt_buf_putc(b, (char)ch);
		} else {
			lt_buf_putc(b, '%');
			lt_buf_putc(b, hexd[ch >> 4]);
			lt_buf_putc(b, hexd[ch & 15]);
		}
	}
}

static int dy_ws_target(struct lt_platform_conn *c, struct lt_ws_target *t)
{
	struct lt_buf *b = &c->target;
	char stub[33], sig[LT_DY_SIG_MAX], tmp[512];
	int64_t now = lt_clock_now(c->clock);
	const char *ver = strncmp(c->ua, "Mozilla/", 8) == 0 ? c->ua + 8 : c->ua;

	if (!c->room_id[0])
		snprintf(c->room_id, sizeof(c->room_id), "%s", c->room);
	if (!c->uid[0])
		snprintf(c->uid, sizeof(c->uid), "%llu",
		         (unsigned long long)(7300000000000000000ULL + rng_next(&c->rng) % 700000000000000000ULL));
	lt_douyin_stub(c->room_id, c->uid, LT_DY_SDK_VERSION, stub);
	int rc = lt_douyin_sign(&c->signer, stub, sig);
	if (rc != LT_OK)
		return rc;
	lt_buf_reset(b);
	lt_buf_puts(b, c->ws_url);
	lt_buf_putc(b, strchr(c->ws_url, '?') ? '&' : '?');
	lt_buf_puts(b, "app_name=douyin_web&version_code=" LT_DY_VERSION_CODE "&webcast_sdk_version=" LT_DY_SDK_VERSION
	               "&update_version_code=" LT_DY_SDK_VERSION "&compress=gzip&device_platform=web&cookie_enabled=true"
	               "&screen_width=1920&screen_height=1080&browser_language=zh-CN&browser_platform=Win32"
	               "&browser_name=Mozilla&browser_version=");
	url_enc(b, ver);
	lt_buf_puts(b, "&browser_online=true&tz_name=Asia/Shanghai&cursor=");
	snprintf(tmp, sizeof(tmp), "d-1_u-1_fh-%s_t-%lld_r-1", c->uid, (long long)now);
	url_enc(b, tmp);
	lt_buf_puts(b, "&internal_ext=");
	snprintf(tmp, sizeof(tmp),
	         "internal_src:dim|wss_push_room_id:%s|wss_push_did:%s|first_req_ms:%lld|fetch_time:%lld|seq:1|"
	         "wss_info:0-%lld-0-0|wrds_v:%s",
	         c->room_id, c->uid, (long long)now, (long long)now, (long long)now, c->uid);
	url_enc(b, tmp);
	lt_buf_printf(b,
	              "&host=https://live.douyin.com&aid=" LT_DY_AID "&live_id=1&did_rule=3&endpoint=live_pc"
	              "&support_wrds=1&user_unique_id=%s&im_path=/webcast/im/fetch/&identity=audience"
	              "&need_persist_msg_count=15&insert_task_id=&live_reason=&room_id=%s&heartbeatDuration=0"
	              "&signature=",
	              c->uid, c->room_id);
	url_enc(b, sig);
	cookie_header(c, false);
	if (lt_buf_err(b) || lt_buf_err(&c->hdrs))
		return LT_ENOMEM;
	t->url = lt_buf_cstr(b);
	t->headers = lt_buf_cstr(&c->hdrs);
	t->origin = NULL;
	t->protocol = NULL;
	return LT_OK;
}

static int dy_on_open(struct lt_platform_conn *c, const struct lt_platform_io *io)
{
	(void)io;
	c->authed = false;
	return LT_OK; /* Douyin has no auth frame: the signed URL is the auth */
}

static int dy_on_frame(struct lt_platform_conn *c, const uint8_t *p, size_t n, int64_t recv_ms,
                       const struct lt_platform_io *io, unsigned *ev)
{
	struct em e = {.c = c, .io = io, .recv_ms = recv_ms, .ev = ev};

	*ev = 0;
	c->st.frames++;
	c->st.bytes_in += n;
	int rc = decode(&e, p, n);
	if (rc != LT_OK) {
		c->st.bad_frames++;
		rc = LT_EPROTO;
	}
	if (c->inflated.cap > (1u << 20)) {
		lt_buf_free(&c->inflated);
		lt_buf_init(&c->inflated, LT_DY_INFLATE_MAX + 1);
	}
	return rc;
}

static int dy_heartbeat_ms(const struct lt_platform_conn *c)
{
	return c->hb_ms;
}

static int dy_heartbeat(struct lt_platform_conn *c, const struct lt_platform_io *io)
{
	(void)c;
	io->send(io->ud, LT_DY_HEARTBEAT_FRAME, sizeof(LT_DY_HEARTBEAT_FRAME) - 1, false);
	return LT_OK;
}

static const char *dy_room(const struct lt_platform_conn *c)
{
	return c->room;
}

static void dy_stats(const struct lt_platform_conn *c, struct lt_platform_stats *out)
{
	*out = c->st;
}

const struct lt_platform_ops lt_platform_douyin = {
	.name = "douyin",
	.platform = LT_PLATFORM_DOUYIN,
	.create = dy_create,
	.destroy = dy_destroy,
	.begin = dy_begin,
	.http_next = dy_http_next,
	.http_done = dy_http_done,
	.ws_target = dy_ws_target,
	.on_open = dy_on_open,
	.on_frame = dy_on_frame,
	.heartbeat_ms = dy_heartbeat_ms,
	.heartbeat = dy_heartbeat,
	.room = dy_room,
	.stats = dy_stats,
};
