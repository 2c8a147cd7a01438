/* SPDX-License-Identifier: MIT */
/*
 * douyin_enc: Douyin push frames from normalized messages (douyin_enc.h),
 * written with the protobuf-c code generated from fetcher/douyin.proto.
 */
#include "tests/support/douyin_enc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/err.h"
#include "fetcher/douyin.h"
#include "fetcher/douyin.pb-c.h"

void dyenc_init(struct dyenc *d, uint64_t room_id)
{
	memset(d, 0, sizeof(*d));
	lt_arena_init(&d->arena, 0);
	d->closer_id = 7400000000000000000ULL;
	d->room_id = room_id;
}

void dyenc_free(struct dyenc *d)
{
	if (!d)
		return;
	lt_arena_free(&d->arena);
	free(d->items);
	memset(d, 0, sizeof(*d));
}

uint64_t dyenc_id(struct lt_str s)
{
	uint64_t v = 0;
	bool digits = s.len > 0 && s.len <= 18;
	for (uint32_t i = 0; digits && i < s.len; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			digits = false;
		else
			v = v * 10 + (uint64_t)(s.p[i] - '0');
	}
	if (digits && v)
		return v;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (uint32_t i = 0; i < s.len; i++)
		h = (h ^ (uint8_t)s.p[i]) * 0x100000001b3ULL;
	h &= (1ULL << 62) - 1;
	return h ? h : 1;
}

static char *astr(struct dyenc *d, struct lt_str s)
{
	char *p = lt_arena_strndup(&d->arena, s.p ? s.p : "", s.len);
	return p ? p : (char *)"";
}

static int push(struct dyenc *d, const char *method, const ProtobufCMessage *pm, uint64_t msg_id)
{
	size_t n = protobuf_c_message_get_packed_size(pm);
	uint8_t *buf = lt_arena_alloc(&d->arena, n ? n : 1);
	if (!buf)
		return LT_ENOMEM;
	protobuf_c_message_pack(pm, buf);
	return dyenc_add_raw(d, method, buf, n, msg_id);
}

int dyenc_add_raw(struct dyenc *d, const char *method, const void *p, size_t n, uint64_t msg_id)
{
	LtDy__Message *m = lt_arena_alloc(&d->arena, sizeof(*m));
	uint8_t *copy = lt_arena_alloc(&d->arena, n ? n : 1);
	if (!m || !copy)
		return LT_ENOMEM;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		void **items = realloc(d->items, cap * sizeof(*items));
		if (!items)
			return LT_ENOMEM;
		d->items = items;
		d->cap = cap;
	}
	lt_dy__message__init(m);
	if (n)
		memcpy(copy, p, n);
	m->method = lt_arena_strndup(&d->arena, method, strlen(method));
	m->payload.data = copy;
	m->payload.len = n;
	m->msg_id = (int64_t)msg_id;
	d->items[d->n++] = m;
	return m->method ? LT_OK : LT_ENOMEM;
}

static LtDy__Common *common(struct dyenc *d, const char *method, uint64_t msg_id, int64_t ts)
{
	LtDy__Common *c = lt_arena_alloc(&d->arena, sizeof(*c));
	if (!c)
		return NULL;
	lt_dy__common__init(c);
	c->method = (char *)method;
	c->msg_id = msg_id;
	c->room_id = d->room_id;
	c->create_time = (uint64_t)ts;
	return c;
}

static LtDy__User *user(struct dyenc *d, const struct lt_msg *m)
{
	LtDy__User *u = lt_arena_alloc(&d->arena, sizeof(*u));
	if (!u)
		return NULL;
	lt_dy__user__init(u);
	u->nickname = astr(d, m->user_name);
	if ((m->flags & LT_MSGF_ANONYMOUS) || !m->user_id.len) {
		u->id = LT_DY_MASKED_UID;
		return u;
	}
	uint64_t v = 0;
	bool digits = m->user_id.len <= 19;
	for (uint32_t i = 0; digits && i < m->user_id.len; i++) {
		if (m->user_id.p[i] < '0' || m->user_id.p[i] > '9')
			digits = false;
		else
			v = v * 10 + (uint64_t)(m->user_id.p[i] - '0');
	}
	if (digits && v && v != LT_DY_MASKED_UID)
		u->id = v;
	else
		u->sec_uid = astr(d, m->user_id);
	return u;
}

static int add_closer(struct dyenc *d, int64_t ts)
{
	LtDy__GiftMessage g = LT_DY__GIFT_MESSAGE__INIT;
	LtDy__GiftStruct gs = LT_DY__GIFT_STRUCT__INIT;
	LtDy__User u = LT_DY__USER__INIT;
	uint64_t id = d->closer_id++;

	d->combo_open = false;
	u.id = d->combo_user;
	gs.id = d->combo_gift;
	gs.name = d->combo_name;
	gs.diamond_count = (int32_t)d->combo_diamond;
	gs.type = 1;
	gs.combo = true;
	g.common = common(d, "WebcastGiftMessage", id, ts);
	if (!g.common)
		return LT_ENOMEM;
	g.gift_id = d->combo_gift;
	g.group_id = d->combo_group;
	g.repeat_count = d->combo_repeat;
	g.combo_count = d->combo_repeat;
	g.group_count = 1;
	g.repeat_end = 1;
	g.user = &u;
	g.gift = &gs;
	return push(d, "WebcastGiftMessage", &g.base, id);
}

void dyenc_close_combo(struct dyenc *d, int64_t ts)
{
	if (d->combo_open)
		add_closer(d, ts);
}

static int add_gift(struct dyenc *d, const struct lt_msg *m, uint64_t msg_id)
{
	LtDy__GiftMessage g = LT_DY__GIFT_MESSAGE__INIT;
	LtDy__GiftStruct gs = LT_DY__GIFT_STRUCT__INIT;
	uint64_t count = m->count > 0 ? (uint64_t)m->count : 1;
	int64_t diamond = m->value > 0 ? m->value / (int64_t)count : 1;
	uint64_t gift = dyenc_id(m->content.len ? m->content : LT_STR("gift")) % 100000 + 1;
	LtDy__User *u = user(d, m);
	if (!u)
		return LT_ENOMEM;
	bool same = d->combo_open && d->combo_user == u->id && d->combo_gift == gift && d->combo_diamond == diamond &&
	            u->id != LT_DY_MASKED_UID;
	if (d->combo_open && !same) {
		int rc = add_closer(d, m->ts);
		if (rc != LT_OK)
			return rc;
	}
	if (!same) {
		d->combo_open = true;
		d->combo_user = u->id;
		d->combo_gift = gift;
		d->combo_group = 1700000000000ULL + ++d->group_seq;
		d->combo_repeat = 0;
		d->combo_diamond = diamond;
		snprintf(d->combo_name, sizeof(d->combo_name), "%.*s", (int)m->content.len, m->content.p ? m->content.p : "");
	}
	d->combo_repeat += count;
	gs.id = gift;
	gs.name = astr(d, m->content);
	gs.diamond_count = (int32_t)diamond;
	gs.type = 1;
	gs.combo = true;
	g.common = common(d, "WebcastGiftMessage", msg_id, m->ts);
	if (!g.common)
		return LT_ENOMEM;
	g.gift_id = gift;
	g.group_id = d->combo_group;
	g.repeat_count = d->combo_repeat;
	g.combo_count = d->combo_repeat;
	g.group_count = 1;
	g.user = u;
	g.gift = &gs;
	g.send_time = (uint64_t)m->ts;
	/* an anonymous gift cannot be continued, so it closes at once */
	int rc = push(d, "WebcastGiftMessage", &g.base, msg_id);
	if (rc == LT_OK && u->id == LT_DY_MASKED_UID)
		d->combo_open = false;
	return rc;
}

int dyenc_add(struct dyenc *d, const struct lt_msg *m, uint64_t msg_id)
{
	switch (m->type) {
	case LT_MSG_CHAT: {
		LtDy__ChatMessage c = LT_DY__CHAT_MESSAGE__INIT;
		c.common = common(d, "WebcastChatMessage", msg_id, m->ts);
		c.user = user(d, m);
		c.content = astr(d, m->content);
		c.event_time = (uint64_t)(m->ts / 1000);
		return c.common && c.user ? push(d, "WebcastChatMessage", &c.base, msg_id) : LT_ENOMEM;
	}
	case LT_MSG_GIFT:
		return add_gift(d, m, msg_id);
	case LT_MSG_LIKE: {
		LtDy__LikeMessage l = LT_DY__LIKE_MESSAGE__INIT;
		l.common = common(d, "WebcastLikeMessage", msg_id, m->ts);
		l.user = user(d, m);
		l.count = m->count > 0 ? (uint64_t)m->count : 1;
		l.total = 100000 + l.count;
		return l.common && l.user ? push(d, "WebcastLikeMessage", &l.base, msg_id) : LT_ENOMEM;
	}
	case LT_MSG_ENTER: {
		LtDy__MemberMessage e = LT_DY__MEMBER_MESSAGE__INIT;
		e.common = common(d, "WebcastMemberMessage", msg_id, m->ts);
		e.user = user(d, m);
		e.member_count = 1234;
		e.action = 1;
		return e.common && e.user ? push(d, "WebcastMemberMessage", &e.base, msg_id) : LT_ENOMEM;
	}
	case LT_MSG_FOLLOW:
	case LT_MSG_SHARE: {
		LtDy__SocialMessage s = LT_DY__SOCIAL_MESSAGE__INIT;
		s.common = common(d, "WebcastSocialMessage", msg_id, m->ts);
		s.user = user(d, m);
		s.action = m->type == LT_MSG_FOLLOW ? LT_DY_SOCIAL_FOLLOW : 3;
		s.share_type = m->type == LT_MSG_FOLLOW ? 0 : 1;
		s.follow_count = 5678;
		return s.common && s.user ? push(d, "WebcastSocialMessage", &s.base, msg_id) : LT_ENOMEM;
	}
	case LT_MSG_ROOM_STATS: {
		LtDy__RoomUserSeqMessage s = LT_DY__ROOM_USER_SEQ_MESSAGE__INIT;
		s.common = common(d, "WebcastRoomUserSeqMessage", msg_id, m->ts);
		s.total = m->count > 0 ? (uint64_t)m->count : 0;
		s.total_user = s.total * 7;
		s.total_pv_for_anchor = (char *)"43.6万";
		return s.common ? push(d, "WebcastRoomUserSeqMessage", &s.base, msg_id) : LT_ENOMEM;
	}
	case LT_MSG_LIVE_END: {
		LtDy__ControlMessage c = LT_DY__CONTROL_MESSAGE__INIT;
		dyenc_close_combo(d, m->ts);
		c.common = common(d, "WebcastControlMessage", msg_id, m->ts);
		c.action = LT_DY_CONTROL_LIVE_END;
		c.tips = (char *)"直播已结束";
		return c.common ? push(d, "WebcastControlMessage", &c.base, msg_id) : LT_ENOMEM;
	}
	default:
		return LT_ENOTFOUND;
	}
}

int dyenc_gzip(struct lt_buf *out, const void *p, size_t n)
{
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return LT_ENOMEM;
	size_t bound = deflateBound(&zs, (uLong)n) + 32;
	if (lt_buf_reserve(out, bound) != LT_OK) {
		deflateEnd(&zs);
		return LT_ENOMEM;
	}
	zs.next_in = (Bytef *)(uintptr_t)p;
	zs.avail_in = (uInt)n;
	zs.next_out = out->data + out->len;
	zs.avail_out = (uInt)bound;
	int zr = deflate(&zs, Z_FINISH);
	out->len += bound - zs.avail_out;
	deflateEnd(&zs);
	return zr == Z_STREAM_END ? LT_OK : LT_EINTERNAL;
}

int dyenc_frame(struct dyenc *d, struct lt_buf *out, const struct dyenc_frame_opts *o)
{
	LtDy__Response r = LT_DY__RESPONSE__INIT;
	LtDy__PushFrame f = LT_DY__PUSH_FRAME__INIT;
	LtDy__HeadersEntry h[5], *hp[5];
	char ext[256], cur[96], now[24];
	struct lt_buf body = LT_BUF_INIT, gz = LT_BUF_INIT;
	int rc = LT_ENOMEM;

	snprintf(ext, sizeof(ext), "internal_src:pushserver|first_req_ms:%lld|wss_msg_type:r|wrds_v:%llu",
	         (long long)o->now_ms, (unsigned long long)(7400000000000000000ULL + o->seq_id));
	snprintf(cur, sizeof(cur), "t-%lld_r-%llu_d-1_u-1", (long long)o->now_ms,
	         (unsigned long long)(7400000000000000000ULL + o->seq_id));
	snprintf(now, sizeof(now), "%lld", (long long)o->now_ms);
	r.messages = (LtDy__Message **)d->items;
	r.n_messages = d->n;
	r.cursor = cur;
	r.fetch_interval = 0;
	r.now = (uint64_t)o->now_ms;
	r.internal_ext = (char *)(o->internal_ext ? o->internal_ext : ext);
	r.heartbeat_duration = 0;
	r.need_ack = o->need_ack;
	lt_buf_init(&body, 0);
	lt_buf_init(&gz, 0);
	if (lt_buf_reserve(&body, lt_dy__response__get_packed_size(&r)) != LT_OK)
		goto out;
	body.len = lt_dy__response__pack(&r, body.data);
	const char *keys[5] = {"compress_type", "im-internal_ext", "im-cursor", "im-now", "im-live_cursor"};
	const char *vals[5] = {"gzip", r.internal_ext, cur, now, "d-1_u-1"};
	size_t nh = 0;
	for (size_t i = o->gzip ? 0 : 1; i < 5; i++) {
		lt_dy__headers_entry__init(&h[nh]);
		h[nh].key = (char *)keys[i];
		h[nh].value = (char *)vals[i];
		hp[nh] = &h[nh];
		nh++;
	}
	f.seq_id = o->seq_id;
	f.log_id = o->log_id;
	f.service = 8888;
	f.method = 8;
	f.headers = hp;
	f.n_headers = nh;
	f.payload_encoding = (char *)"pb";
	f.payload_type = (char *)LT_DY_PT_MSG;
	if (o->gzip) {
		if (dyenc_gzip(&gz, body.data, body.len) != LT_OK)
			goto out;
		f.payload.data = gz.data;
		f.payload.len = gz.len;
	} else {
		f.payload.data = body.data;
		f.payload.len = body.len;
	}
	size_t len = lt_dy__push_frame__get_packed_size(&f);
	if (lt_buf_reserve(out, len) != LT_OK)
		goto out;
	out->len += lt_dy__push_frame__pack(&f, out->data + out->len);
	rc = LT_OK;
out:
	d->n = 0;
	lt_arena_reset(&d->arena);
	lt_buf_free(&body);
	lt_buf_free(&gz);
	return rc;
}
