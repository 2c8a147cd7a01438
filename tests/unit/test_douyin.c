/* SPDX-License-Identifier: MIT */
/*
 * test_douyin: the Douyin platform (fetcher/platform_douyin.c) and its signer
 * (fetcher/douyin_sign.c). Golden frames are written byte by byte here with a
 * tiny protobuf writer that follows the field numbers of douyin.md §2 (not
 * with the generated code the decoder uses), then decoded field by field:
 * gzip'd and plain Responses, need_ack and the exact bytes of our ack, every
 * mapped method, combo deltas, replayed ids dropped, unknown fields skipped,
 * and truncated, garbage, bombs rejected with LT_EPROTO and counted. The
 * signer is checked against the known vectors of the native algorithm and
 * against its own check; the bootstrap against canned HTTP answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/json.h"
#include "fetcher/douyin.h"
#include "fetcher/douyin_sign.h"
#include "fetcher/platform.h"
#include "tests/support/testsupport.h"

#define ROOM "646454278948"
#define RECV_MS 1732212345678LL
#define TS_MS 1732212340123LL

/* ------------------------------------------------------------------ */
/* A hand-written protobuf writer. */

static void varint(struct lt_buf *b, uint64_t v)
{
	while (v >= 0x80) {
		lt_buf_u8(b, (uint8_t)(v | 0x80));
		v >>= 7;
	}
	lt_buf_u8(b, (uint8_t)v);
}

static void f_varint(struct lt_buf *b, unsigned field, uint64_t v)
{
	varint(b, (uint64_t)field << 3);
	varint(b, v);
}

static void f_bytes(struct lt_buf *b, unsigned field, const void *p, size_t n)
{
	varint(b, (uint64_t)field << 3 | 2);
	varint(b, n);
	lt_buf_append(b, p, n);
}

static void f_str(struct lt_buf *b, unsigned field, const char *s)
{
	f_bytes(b, field, s, strlen(s));
}

static void f_msg(struct lt_buf *b, unsigned field, struct lt_buf *sub)
{
	f_bytes(b, field, sub->data, sub->len);
	lt_buf_reset(sub);
}

static void gzip_buf(struct lt_buf *out, const void *p, size_t n)
{
	z_stream zs;
	memset(&zs, 0, sizeof(zs));
	ck_assert_int_eq(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
	size_t bound = deflateBound(&zs, (uLong)n) + 32;
	ck_assert_int_eq(lt_buf_reserve(out, bound), LT_OK);
	zs.next_in = (Bytef *)(uintptr_t)p;
	zs.avail_in = (uInt)n;
	zs.next_out = out->data + out->len;
	zs.avail_out = (uInt)bound;
	ck_assert_int_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
	out->len += bound - zs.avail_out;
	deflateEnd(&zs);
}

/* Common{1 method, 2 msg_id, 3 room_id, 4 create_time} */
static void common(struct lt_buf *b, const char *method, uint64_t msg_id, uint64_t ts)
{
	struct lt_buf c = LT_BUF_INIT;
	lt_buf_init(&c, 0);
	f_str(&c, 1, method);
	f_varint(&c, 2, msg_id);
	f_varint(&c, 3, 7319999999999999999ULL);
	f_varint(&c, 4, ts);
	f_msg(b, 1, &c);
	lt_buf_free(&c);
}

/* User{1 id, 3 nickname} plus an unknown field 9999 */
static void user(struct lt_buf *b, unsigned field, uint64_t id, const char *nick)
{
	struct lt_buf u = LT_BUF_INIT;
	lt_buf_init(&u, 0);
	f_varint(&u, 1, id);
	f_str(&u, 3, nick);
	f_str(&u, 9999, "unknown-field");
	f_msg(b, field, &u);
	lt_buf_free(&u);
}

/* Messages are collected as Response field 1 entries. */
struct resp {
	struct lt_buf msgs;
};

static void add_msg(struct resp *r, const char *method, uint64_t msg_id, struct lt_buf *payload)
{
	struct lt_buf m = LT_BUF_INIT;
	lt_buf_init(&m, 0);
	f_str(&m, 1, method);
	f_bytes(&m, 2, payload->data, payload->len);
	f_varint(&m, 3, msg_id);
	f_varint(&m, 77, 1); /* unknown */
	f_msg(&r->msgs, 1, &m);
	lt_buf_reset(payload);
	lt_buf_free(&m);
}

/* PushFrame{1 seq, 2 log_id, 3 8888, 4 8, 5 headers, 6 "pb", 7 "msg", 8 payload} */
static void frame(struct lt_buf *out, struct resp *r, bool gz, bool need_ack, const char *ext, uint64_t log_id)
{
	struct lt_buf body = LT_BUF_INIT, h = LT_BUF_INIT, pl = LT_BUF_INIT;
	lt_buf_init(&body, 0);
	lt_buf_init(&h, 0);
	lt_buf_init(&pl, 0);
	lt_buf_append(&body, r->msgs.data, r->msgs.len);
	f_str(&body, 2, "t-1732212345678_r-1_d-1_u-1");
	f_varint(&body, 4, RECV_MS);
	f_str(&body, 5, ext);
	f_str(&body, 11, "live-cursor"); /* Douyin string vs TikTok bool: not in our schema */
	if (need_ack)
		f_varint(&body, 9, 1);
	lt_buf_reset(out);
	f_varint(out, 1, 20);
	f_varint(out, 2, log_id);
	f_varint(out, 3, 8888);
	f_varint(out, 4, 8);
	if (gz) {
		f_str(&h, 1, "compress_type");
		f_str(&h, 2, "gzip");
		f_msg(out, 5, &h);
		gzip_buf(&pl, body.data, body.len);
	} else {
		lt_buf_append(&pl, body.data, body.len);
	}
	f_str(&h, 1, "im-now");
	f_str(&h, 2, "1732212345678");
	f_msg(out, 5, &h);
	f_str(out, 6, "pb");
	f_str(out, 7, "msg");
	f_bytes(out, 8, pl.data, pl.len);
	f_varint(out, 15, 42); /* unknown */
	ck_assert_int_eq(lt_buf_err(out), LT_OK);
	lt_buf_reset(&r->msgs);
	lt_buf_free(&body);
	lt_buf_free(&h);
	lt_buf_free(&pl);
}

/* ------------------------------------------------------------------ */
/* A connection and a collector. */

#define MAXM 64

struct got {
	int n;
	cJSON *msg[MAXM];
	uint8_t flags[MAXM];
	int64_t count[MAXM], value[MAXM];
	int sent;
	struct lt_buf last_sent;
};

static void on_emit(void *ud, const struct lt_msg *m)
{
	struct got *g = ud;
	struct lt_buf b = LT_BUF_INIT;

	ck_assert_int_lt(g->n, MAXM);
	lt_buf_init(&b, 0);
	ck_assert_int_eq(lt_json_msg(&b, m), LT_OK);
	g->msg[g->n] = cJSON_Parse(lt_buf_cstr(&b));
	ck_assert_msg(g->msg[g->n] != NULL, "not JSON: %s", lt_buf_cstr(&b));
	g->flags[g->n] = m->flags;
	g->count[g->n] = m->count;
	g->value[g->n] = m->value;
	g->n++;
	lt_buf_free(&b);
}

static void on_send(void *ud, const void *p, size_t n, bool text)
{
	struct got *g = ud;
	ck_assert(!text);
	g->sent++;
	lt_buf_reset(&g->last_sent);
	lt_buf_append(&g->last_sent, p, n);
}

static void got_free(struct got *g)
{
	for (int i = 0; i < g->n; i++)
		cJSON_Delete(g->msg[i]);
	lt_buf_free(&g->last_sent);
	memset(g, 0, sizeof(*g));
}

static struct lt_platform_conn *new_conn(void)
{
	struct lt_platform_conf conf = {.room = ROOM, .skip_bootstrap = true};
	struct lt_platform_conn *c = NULL;
	ck_assert_int_eq(lt_platform_douyin.create(&conf, &c), LT_OK);
	return c;
}

static int feed(struct lt_platform_conn *c, const void *p, size_t n, struct got *g, unsigned *ev)
{
	struct lt_platform_io io = {.emit = on_emit, .send = on_send, .ud = g};
	unsigned e = 0;
	int rc = lt_platform_douyin.on_frame(c, p, n, RECV_MS, &io, &e);
	if (ev)
		*ev = e;
	return rc;
}

static const char *sget(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	ck_assert_msg(cJSON_IsString(v), "no string %s", k);
	return v->valuestring;
}

static double nget(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	ck_assert_msg(cJSON_IsNumber(v), "no number %s", k);
	return v->valuedouble;
}

static const cJSON *oget(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	ck_assert_msg(cJSON_IsObject(v), "no object %s", k);
	return v;
}

static struct lt_platform_stats stats(struct lt_platform_conn *c)
{
	struct lt_platform_stats st;
	lt_platform_douyin.stats(c, &st);
	return st;
}

/* ------------------------------------------------------------------ */

START_TEST(chat_gzip_golden)
{
	struct lt_platform_conn *c = new_conn();
	struct resp r = {LT_BUF_INIT};
	struct lt_buf p = LT_BUF_INIT, f = LT_BUF_INIT;
	struct got g = {0};
	unsigned ev = 0;

	lt_buf_init(&r.msgs, 0);
	lt_buf_init(&p, 0);
	lt_buf_init(&f, 0);
	common(&p, "WebcastChatMessage", 7394284080632260335ULL, TS_MS);
	user(&p, 2, 95848912345ULL, "小明同学");
	f_str(&p, 3, "主播好！今天唱什么");
	f_varint(&p, 15, TS_MS / 1000);
	f_str(&p, 41, "rtf v2, unknown to us");
	add_msg(&r, "WebcastChatMessage", 7394284080632260335ULL, &p);
	frame(&f, &r, true, false, "ext", 7394284080632260335ULL);

	ck_assert_int_eq(feed(c, f.data, f.len, &g, &ev), LT_OK);
	ck_assert(ev & LT_PEV_AUTHED);
	ck_assert_int_eq(g.n, 1);
	ck_assert_int_eq(g.sent, 0); /* no need_ack: no ack */
	const cJSON *m = g.msg[0];
	ck_assert_str_eq(sget(m, "platform"), "douyin");
	ck_assert_str_eq(sget(m, "room"), ROOM);
	ck_assert_str_eq(sget(m, "type"), "chat");
	ck_assert_str_eq(sget(m, "msg_id"), "7394284080632260335");
	ck_assert_str_eq(sget(oget(m, "user"), "id"), "95848912345");
	ck_assert_str_eq(sget(oget(m, "user"), "name"), "小明同学");
	ck_assert_str_eq(sget(m, "content"), "主播好！今天唱什么");
	ck_assert(nget(m, "ts") == (double)TS_MS);
	struct lt_platform_stats st = stats(c);
	ck_assert_int_eq(st.frames, 1);
	ck_assert_int_eq(st.bad_frames, 0);
	ck_assert_int_eq(st.messages, 1);
	ck_assert_uint_gt(st.bytes_inflated, f.len / 2);
	got_free(&g);
	lt_buf_free(&r.msgs);
	lt_buf_free(&p);
	lt_buf_free(&f);
	lt_platform_douyin.destroy(c);
}
END_TEST

/* need_ack: PushFrame{2 log_id, 7 "ack", 8 internal_ext}, nothing else. Also
 * a plain (not gzip'd) Response with seconds as create_time. */
START_TEST(need_ack_frame_bytes)
{
	struct lt_platform_conn *c = new_conn();
	struct resp r = {LT_BUF_INIT};
	struct lt_buf p = LT_BUF_INIT, f = LT_BUF_INIT, want = LT_BUF_INIT;
	struct got g = {0};

	lt_buf_init(&r.msgs, 0);
	lt_buf_init(&p, 0);
	lt_buf_init(&f, 0);
	lt_buf_init(&want, 0);
	common(&p, "WebcastLikeMessage", 1001, TS_MS / 1000);
	f_varint(&p, 2, 15);
	f_varint(&p, 3, 98765);
	user(&p, 5, 42, "点赞的人");
	add_msg(&r, "WebcastLikeMessage", 1001, &p);
	const char *ext = "internal_src:pushserver|first_req_ms:1732212345000|wss_msg_type:r|wrds_v:7394";
	frame(&f, &r, false, true, ext, 7394284080632260335ULL);
	ck_assert_int_eq(feed(c, f.data, f.len, &g, NULL), LT_OK);
	ck_assert_int_eq(g.sent, 1);
	f_varint(&want, 2, 7394284080632260335ULL);
	f_str(&want, 7, "ack");
	f_str(&want, 8, ext);
	ck_assert_uint_eq(g.last_sent.len, want.len);
	ck_assert(memcmp(g.last_sent.data, want.data, want.len) == 0);
	ck_assert_int_eq(g.n, 1);
	ck_assert_str_eq(sget(g.msg[0], "type"), "like");
	ck_assert(nget(g.msg[0], "ts") == (double)(TS_MS / 1000 * 1000));
	ck_assert(nget(oget(g.msg[0], "extra"), "count") == 15);
	ck_assert(nget(oget(g.msg[0], "extra"), "total") == 98765);
	ck_assert_int_eq(g.count[0], 15);
	got_free(&g);
	lt_buf_free(&r.msgs);
	lt_buf_free(&p);
	lt_buf_free(&f);
	lt_buf_free(&want);
	lt_platform_douyin.destroy(c);
}
END_TEST

static void gift(struct resp *r, struct lt_buf *p, uint64_t id, uint64_t uid, uint64_t group, uint64_t repeat,
                 int repeat_end)
{
	struct lt_buf gs = LT_BUF_INIT;
	lt_buf_init(&gs, 0);
	common(p, "WebcastGiftMessage", id, TS_MS);
	f_varint(p, 2, 463);        /* gift_id */
	f_varint(p, 4, 1);          /* group_count */
	f_varint(p, 5, repeat);     /* repeat_count */
	f_varint(p, 6, repeat);     /* combo_count */
	user(p, 7, uid, "送礼的人");
	user(p, 8, 88, "主播");
	if (repeat_end)
		f_varint(p, 9, 1);
	f_varint(p, 11, group);
	f_varint(&gs, 5, 463);
	f_varint(&gs, 10, 1);
	f_varint(&gs, 11, 1);
	f_varint(&gs, 12, 10); /* diamonds */
	f_str(&gs, 16, "玫瑰");
	f_msg(p, 15, &gs);
	add_msg(r, "WebcastGiftMessage", id, p);
	lt_buf_free(&gs);
}

/* A combo 1, 3, 3 (repeat_end), 6 counts 1 + 2 + 3; an older step (2) after
 * that adds nothing; a new group starts from its own repeat_count. */
START_TEST(gift_combo_delta)
{
	struct lt_platform_conn *c = new_conn();
	struct resp r = {LT_BUF_INIT};
	struct lt_buf p = LT_BUF_INIT, f = LT_BUF_INIT;
	struct got g = {0};

	lt_buf_init(&r.msgs, 0);
	lt_buf_init(&p, 0);
	lt_buf_init(&f, 0);
	gift(&r, &p, 2001, 5, 900, 1, 0);
	gift(&r, &p, 2002, 5, 900, 3, 0);
	gift(&r, &p, 2003, 5, 900, 3, 1);
	frame(&f, &r, true, false, "x", 1);
	ck_assert_int_eq(feed(c, f.data, f.len, &g, NULL), LT_OK);
	gift(&r, &p, 2004, 5, 900, 6, 0);
	gift(&r, &p, 2005, 5, 900, 2, 0);
	gift(&r, &p, 2006, 5, 901, 4, 0);
	gift(&r, &p, 2007, 6, 900, 2, 0); /* another user, same group id */
	frame(&f, &r, true, false, "x", 2);
	ck_assert_int_eq(feed(c, f.data, f.len, &g, NULL), LT_OK);
	ck_assert_int_eq(g.n, 5);
	const char *ids[5] = {"2001", "2002", "2004", "2006", "2007"};
	int64_t counts[5] = {1, 2, 3, 4, 2};
	for (int i = 0; i < 5; i++) {
		ck_assert_str_eq(sget(g.msg[i], "type"), "gift");
		ck_assert_str_eq(sget(g.msg[i], "msg_id"), ids[i]);
		ck_assert_int_eq(g.count[i], counts[i]);
		ck_assert_int_eq(g.value[i], counts[i] * 10);
		const cJSON *x = oget(g.msg[i], "extra");
		ck_assert(nget(x, "count") == (double)counts[i]);
		ck_assert(nget(x, "value") == (double)(counts[i] * 10));
		ck_assert_str_eq(sget(x, "gift_name"), "玫瑰");
		ck_assert_str_eq(sget(x, "currency"), "diamond");
		ck_assert(nget(x, "gift_id") == 463);
	}
	ck_assert_str_eq(sget(oget(g.msg[0], "extra"), "to_user"), "88");
	got_free(&g);
	lt_buf_free(&r.msgs);
	lt_buf_free(&p);
	lt_buf_free(&f);
	lt_platform_douyin.destroy(c);
}
END_TEST

/* A gift that is not streakable (GiftStruct combo 0, type 2) and has no
 * group is a whole send: two of them by one user, each with repeat_count 1,
 * are two gifts (they were dropped as a zero combo delta). */
START_TEST(gift_not_combo_counted)
{
	struct lt_platform_conn *c = new_conn();
	struct resp r = {LT_BUF_INIT};
	struct lt_buf p = LT_BUF_INIT, f = LT_BUF_INIT, gs = LT_BUF_INIT;
	struct got g = {0};

	lt_buf_init(&r.msgs, 0);
	lt_buf_init(&p, 0);
	lt_buf_init(&f, 0);
	lt_buf_init(&gs, 0);
	for (uint64_t id = 3001; id <= 3003; id++) {
		lt_buf_reset(&gs);
		common(&p, "WebcastGiftMessage", id, TS_MS);
		f_varint(&p, 2, 3389);          /* gift_id */
		f_varint(&p, 4, 1);             /* group_count */
		f_varint(&p, 5, id == 3003 ? 2 : 1); /* repeat_count */
		user(&p, 7, 5, "送礼的人");
		f_varint(&gs, 5, 3389);
		f_varint(&gs, 11, 2);    /* type: not streakable */
		f_varint(&gs, 12, 520); /* diamonds */
		f_str(&gs, 16, "嘉年华");
		f_msg(&p, 15, &gs);
		add_msg(&r, "WebcastGiftMessage", id, &p);
	}
	frame(&f, &r, true, false, "x", 1);
	ck_assert_int_eq(feed(c, f.data, f.len, &g, NULL), LT_OK);
	ck_assert_int_eq(g.n, 3);
	const char *ids[3] = {"3001", "3002", "3003"};
	for (int i = 0; i < 3; i++) {
		ck_assert_str_eq(sget(g.msg[i], "type"), "gift");
		ck_assert_str_eq(sget(g.msg[i], "msg_id"), ids[i]);
		ck_assert_int_eq(g.count[i], i == 2 ? 2 : 1);
		ck_assert_int_eq(g.value[i], g.count[i] * 520);
	}
	/* the same message replayed is still dropped by its msg_id */
	got_free(&g);
	g = (struct got){0};
	gift(&r, &p, 3002, 5, 0, 1, 0);
	frame(&f, &r, true, false, "x", 2);
	ck_assert_int_eq(feed(c, f.data, f.len, &g, NULL), LT_OK);
	ck_assert_int_eq(g.n, 0);
	got_free(&g);
	lt_buf_free(&r.msgs);
	lt_buf_free(&p);
	lt_buf_free(&f);
	lt_buf_free(&gs);
	lt_platform_douyin.destroy(c);
}
END_TEST

/* Every other mapped method in one frame, field by field. */
START_TEST(methods_mapped)
{
	struct lt_platform_conn *c = new_conn();
	struct resp r = {LT_BUF_INIT};
	struct lt_buf p = LT_BUF_INIT, f = LT_BUF_INIT;
	struct got g = {0};
	unsigned ev = 0;

	lt_buf_init(&r.msgs, 0);
	lt_buf_init(&p, 0);
	lt_buf_init(&f, 0);
	common(&p, "WebcastMemberMessage", 3001, TS_MS);
	user(&p, 2, 11, "进场");
	f_varint(&p, 3, 4321);
	f_varint(&p, 10, 1);
	add_msg(&r, "WebcastMemberMessage", 3001, &p);
	common(&p, "WebcastSocialMessage", 3002, TS_MS);
	user(&p, 2, 12, "关注者");
	f_varint(&p, 4, 1);
	f_varint(&p, 6, 999);
	add_msg(&r, "WebcastSocialMessage", 3002, &p);
	common(&p, "WebcastSocialMessage", 3003, TS_MS);
	user(&p, 2, 13, "分享者");
	f_varint(&p, 3, 2);
	f_varint(&p, 4, 3);
	add_msg(&r, "WebcastSocialMessage", 3003, &p);
	common(&p, "WebcastRoomUserSeqMessage", 3004, TS_MS);
	f_varint(&p, 3, 5120);
	f_varint(&p, 7, 88000);
	f_str(&p, 11, "43.6万");
	add_msg(&r, "WebcastRoomUserSeqMessage", 3004, &p);
	common(&p, "WebcastRoomStatsMessage", 3005, TS_MS);
	f_str(&p, 4, "5.1万人看过");
	f_varint(&p, 5, 51000);
	f_varint(&p, 9, 51234);
	add_msg(&r, "WebcastRoomStatsMessage", 3005, &p);
	common(&p, "WebcastFansclubMessage", 3006, TS_MS);
	f_varint(&p, 2, 2);
	f_str(&p, 3, "加入了粉丝团");
	user(&p, 4, 14, "粉丝");
	add_msg(&r, "WebcastFansclubMessage", 3006, &p);
	common(&p, "WebcastEmojiChatMessage", 3007, TS_MS);
	user(&p, 2, 15, "表情");
	f_varint(&p, 3, 5566);
	f_str(&p, 5, "[比心]");
	add_msg(&r, "WebcastEmojiChatMessage", 3007, &p);
	common(&p, "WebcastChatMessage", 3008, TS_MS);
	user(&p, 2, LT_DY_MASKED_UID, "用***");
	f_str(&p, 3, "匿名说话");
	add_msg(&r, "WebcastChatMessage", 3008, &p);
	common(&p, "WebcastRoomRankMessage", 3009, TS_MS);
	add_msg(&r, "WebcastRoomRankMessage", 3009, &p);
	common(&p, "WebcastControlMessage", 3010, TS_MS);
	f_varint(&p, 2, 3);
	f_str(&p, 3, "直播已结束");
	add_msg(&r, "WebcastControlMessage", 3010, &p);
	frame(&f, &r, true, false, "x", 3);
	ck_assert_int_eq(feed(c, f.data, f.len, &g, &ev), LT_OK);
	ck_assert(ev & LT_PEV_LIVE_END);
	ck_assert_int_eq(g.n, 10);

	ck_assert_str_eq(sget(g.msg[0], "type"), "enter");
	ck_assert(nget(oget(g.msg[0], "extra"), "member_count") == 4321);
	ck_assert_str_eq(sget(g.msg[1], "type"), "follow");
	ck_assert(nget(oget(g.msg[1], "extra"), "follow_count") == 999);
	ck_assert_str_eq(sget(g.msg[2], "type"), "share");
	ck_assert(nget(oget(g.msg[2], "extra"), "share_type") == 2);
	ck_assert_str_eq(sget(g.msg[3], "type"), "room_stats");
	ck_assert_int_eq(g.count[3], 5120);
	ck_assert(nget(oget(g.msg[3], "extra"), "total_user") == 88000);
	ck_assert_str_eq(sget(oget(g.msg[3], "extra"), "total_pv_for_anchor"), "43.6万");
	ck_assert_str_eq(sget(g.msg[4], "type"), "room_stats");
	ck_assert_int_eq(g.count[4], 51234);
	ck_assert_str_eq(sget(g.msg[4], "content"), "5.1万人看过");
	ck_assert_str_eq(sget(g.msg[5], "type"), "other");
	ck_assert_str_eq(sget(oget(g.msg[5], "extra"), "method"), "WebcastFansclubMessage");
	ck_assert_str_eq(sget(g.msg[5], "content"), "加入了粉丝团");
	ck_assert_str_eq(sget(oget(g.msg[5], "user"), "id"), "14");
	ck_assert_str_eq(sget(g.msg[6], "type"), "chat");
	ck_assert_str_eq(sget(g.msg[6], "content"), "[比心]");
	ck_assert(nget(oget(g.msg[6], "extra"), "emoji_id") == 5566);
	ck_assert_str_eq(sget(g.msg[7], "type"), "chat");
	ck_assert(g.flags[7] & LT_MSGF_ANONYMOUS);
	ck_assert_str_eq(sget(oget(g.msg[7], "user"), "name"), "用***");
	ck_assert_str_eq(sget(g.msg[8], "type"), "other");
	ck_assert_str_eq(sget(oget(g.msg[8], "extra"), "method"), "WebcastRoomRankMessage");
	ck_assert_str_eq(sget(g.msg[8], "msg_id"), "3009");
	ck_assert_str_eq(sget(g.msg[9], "type"), "live_end");
	ck_assert_str_eq(sget(g.msg[9], "msg_id"), "3010");
	ck_assert(nget(oget(g.msg[9], "extra"), "action") == 3);
	got_free(&g);
	lt_buf_free(&r.msgs);
	lt_buf_free(&p);
	lt_buf_free(&f);
	lt_platform_douyin.destroy(c);
}
END_TEST

/* The server replays recent messages after a reconnect: the same frame again
 * emits nothing; a frame mixing old and new emits only the new. */
START_TEST(replayed_ids_dropped)
{
	struct lt_platform_conn *c = new_conn();
	struct resp r = {LT_BUF_INIT};
	struct lt_buf p = LT_BUF_INIT, f = LT_BUF_INIT, f2 = LT_BUF_INIT;
	struct got g = {0};

	lt_buf_init(&r.msgs, 0);
	lt_buf_init(&p, 0);
	lt_buf_init(&f, 0);
	lt_buf_init(&f2, 0);
	for (uint64_t id = 1; id <= 3; id++) {
		common(&p, "WebcastChatMessage", 5000 + id, TS_MS);
		f_str(&p, 3, "hi");
		add_msg(&r, "WebcastChatMessage", 5000 + id, &p);
	}
	frame(&f, &r, true, false, "x", 1);
	ck_assert_int_eq(feed(c, f.data, f.len, &g, NULL), LT_OK);
	ck_assert_int_eq(g.n, 3);
	ck_assert_int_eq(feed(c, f.data, f.len, &g, NULL), LT_OK);
	ck_assert_int_eq(g.n, 3);
	for (uint64_t id = 3; id <= 4; id++) {
		common(&p, "WebcastChatMessage", 5000 + id, TS_MS);
		f_str(&p, 3, "hi");
		add_msg(&r, "WebcastChatMessage", 5000 + id, &p);
	}
	frame(&f2, &r, true, false, "x", 2);
	ck_assert_int_eq(feed(c, f2.data, f2.len, &g, NULL), LT_OK);
	ck_assert_int_eq(g.n, 4);
	ck_assert_str_eq(sget(g.msg[3], "msg_id"), "5004");
	/* after many newer ids the old ones are forgotten (bounded memory) */
	for (uint64_t base = 0; base < 3 * LT_DY_DEDUP_GEN; base += 16) {
		struct got g2 = {0};
		for (uint64_t k = 0; k < 16; k++) {
			common(&p, "WebcastChatMessage", 100000 + base + k, TS_MS);
			add_msg(&r, "WebcastChatMessage", 100000 + base + k, &p);
		}
		frame(&f2, &r, false, false, "x", 3);
		ck_assert_int_eq(feed(c, f2.data, f2.len, &g2, NULL), LT_OK);
		ck_assert_int_eq(g2.n, 16);
		got_free(&g2);
	}
	struct got g3 = {0};
	ck_assert_int_eq(feed(c, f.data, f.len, &g3, NULL), LT_OK);
	ck_assert_int_eq(g3.n, 3);
	got_free(&g3);
	got_free(&g);
	lt_buf_free(&r.msgs);
	lt_buf_free(&p);
	lt_buf_free(&f);
	lt_buf_free(&f2);
	lt_platform_douyin.destroy(c);
}
END_TEST

/* Empty, truncated at every length, garbage, a gzip cut short, a gzip bomb,
 * a wrong wire type: LT_EPROTO, counted, and the connection goes on. */
START_TEST(bad_frames_counted)
{
	struct lt_platform_conn *c = new_conn();
	struct resp r = {LT_BUF_INIT};
	struct lt_buf p = LT_BUF_INIT, f = LT_BUF_INIT, bad = LT_BUF_INIT;
	struct got g = {0};
	uint64_t nbad = 0;

	lt_buf_init(&r.msgs, 0);
	lt_buf_init(&p, 0);
	lt_buf_init(&f, 0);
	lt_buf_init(&bad, 0);
	common(&p, "WebcastChatMessage", 6001, TS_MS);
	f_str(&p, 3, "好");
	add_msg(&r, "WebcastChatMessage", 6001, &p);
	frame(&f, &r, true, false, "x", 1);

	ck_assert_int_eq(feed(c, "", 0, &g, NULL), LT_EPROTO);
	nbad++;
	/* every cut of the frame inside its payload or before it (the last two
	 * bytes are an unknown trailing field): never a message */
	for (size_t n = 1; n < f.len - 2; n++) {
		int rc = feed(c, f.data, n, &g, NULL);
		if (rc == LT_EPROTO)
			nbad++;
	}
	ck_assert_int_eq(g.n, 0);
	ck_assert_uint_gt(nbad, f.len / 2);
	static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
	ck_assert_int_eq(feed(c, garbage, sizeof(garbage), &g, NULL), LT_EPROTO);
	nbad++;
	/* a length prefix longer than the frame */
	static const uint8_t overlong[] = {0x42, 0xff, 0xff, 0x03, 0x00};
	ck_assert_int_eq(feed(c, overlong, sizeof(overlong), &g, NULL), LT_EPROTO);
	nbad++;
	/* payload_type with the wrong wire type (varint instead of bytes) */
	static const uint8_t wiretype[] = {0x38, 0x05};
	ck_assert_int_eq(feed(c, wiretype, sizeof(wiretype), &g, NULL), LT_EPROTO);
	nbad++;
	/* gzip of 64 MB of zeros: over the cap */
	{
		size_t big = 64u << 20;
		uint8_t *zeros = calloc(1, big);
		struct lt_buf gz = LT_BUF_INIT;
		lt_buf_init(&gz, 0);
		gzip_buf(&gz, zeros, big);
		free(zeros);
		struct lt_buf h = LT_BUF_INIT;
		lt_buf_init(&h, 0);
		f_str(&h, 1, "compress_type");
		f_str(&h, 2, "gzip");
		f_msg(&bad, 5, &h);
		f_str(&bad, 7, "msg");
		f_bytes(&bad, 8, gz.data, gz.len);
		ck_assert_int_eq(feed(c, bad.data, bad.len, &g, NULL), LT_EPROTO);
		nbad++;
		lt_buf_free(&gz);
		lt_buf_free(&h);
	}
	/* a message whose payload does not parse is skipped, the rest decoded */
	static const uint8_t junk[] = {0x0a, 0xff};
	lt_buf_reset(&p);
	lt_buf_append(&p, junk, sizeof(junk));
	add_msg(&r, "WebcastChatMessage", 6002, &p);
	common(&p, "WebcastChatMessage", 6003, TS_MS);
	f_str(&p, 3, "还活着");
	add_msg(&r, "WebcastChatMessage", 6003, &p);
	frame(&bad, &r, true, false, "x", 2);
	ck_assert_int_eq(feed(c, bad.data, bad.len, &g, NULL), LT_OK);
	ck_assert_int_eq(g.n, 1);
	ck_assert_str_eq(sget(g.msg[0], "msg_id"), "6003");

	struct lt_platform_stats st = stats(c);
	ck_assert_uint_eq(st.bad_frames, nbad);
	ck_assert_uint_eq(st.bad_messages, 1);
	/* and the good frame still decodes */
	ck_assert_int_eq(feed(c, f.data, f.len, &g, NULL), LT_OK);
	ck_assert_int_eq(g.n, 2);
	ck_assert_str_eq(sget(g.msg[1], "content"), "好");
	got_free(&g);
	lt_buf_free(&r.msgs);
	lt_buf_free(&p);
	lt_buf_free(&f);
	lt_buf_free(&bad);
	lt_platform_douyin.destroy(c);
}
END_TEST

START_TEST(heartbeat_and_close)
{
	struct lt_platform_conn *c = new_conn();
	struct got g = {0};
	unsigned ev = 0;
	struct lt_platform_io io = {.emit = on_emit, .send = on_send, .ud = &g};

	ck_assert_int_eq(lt_platform_douyin.heartbeat_ms(c), 10000);
	ck_assert_int_eq(lt_platform_douyin.heartbeat(c, &io), LT_OK);
	ck_assert_uint_eq(g.last_sent.len, 4);
	ck_assert(memcmp(g.last_sent.data, "\x3a\x02\x68\x62", 4) == 0);
	ck_assert_int_eq(feed(c, "\x3a\x02\x68\x62", 4, &g, &ev), LT_OK);
	ck_assert(ev & LT_PEV_HEARTBEAT);
	ck_assert_int_eq(stats(c).heartbeats, 1);
	ck_assert_int_eq(feed(c, "\x3a\x05" "close", 7, &g, &ev), LT_OK);
	ck_assert(ev & LT_PEV_RECONNECT);
	ck_assert_int_eq(g.n, 0);
	got_free(&g);
	lt_platform_douyin.destroy(c);
}
END_TEST

/* Known vectors of the native algorithm (douyin.md §1.3: the Go port is
 * checked byte for byte against the JS; these are its test vectors). */
START_TEST(signer_vectors)
{
	char out[17], stub[33];
	const char *s = "704f436b2558b0d7a1c7e758527dd8f1";

	ck_assert_int_eq(lt_douyin_sign_values(s, 1, true, 63, 63, out), LT_OK);
	ck_assert_str_eq(out, "6pt0VC0aRZDP7n07");
	ck_assert_int_eq(lt_douyin_sign_values(s, 0, false, 0, 6, out), LT_OK);
	ck_assert_str_eq(out, "fD+evFuzasjOC8Uu");
	ck_assert_int_eq(lt_douyin_sign_values("xyz", 0, false, 0, 6, out), LT_EINVAL);
	ck_assert_int_eq(lt_douyin_sign_check("6pt0VC0aRZDP7n07", s), LT_OK);
	ck_assert_int_eq(lt_douyin_sign_check("fD+evFuzasjOC8Uu", s), LT_OK);
	/* another stub, a flipped character, a wrong length */
	ck_assert_int_eq(lt_douyin_sign_check("6pt0VC0aRZDP7n07", "00000000000000000000000000000000"), LT_EAUTH);
	ck_assert_int_eq(lt_douyin_sign_check("6pt0VC0aRZDP7n08", s), LT_EAUTH);
	ck_assert_int_eq(lt_douyin_sign_check("6pt0VC0aRZDP7n0", s), LT_EAUTH);
	/* the stub is md5 of the 13 pairs */
	lt_douyin_stub("7319999999999999999", "7300000000000000001", LT_DY_SDK_VERSION, stub);
	ck_assert_uint_eq(strlen(stub), 32);
	struct lt_douyin_signer sg = {.rng = 12345};
	char sig[LT_DY_SIG_MAX], prev[LT_DY_SIG_MAX] = "";
	for (int i = 0; i < 200; i++) {
		ck_assert_int_eq(lt_douyin_sign(&sg, stub, sig), LT_OK);
		ck_assert_int_eq(lt_douyin_sign_check(sig, stub), LT_OK);
		ck_assert_str_ne(sig, prev);
		strcpy(prev, sig);
	}
}
END_TEST

static int fixed_signer(void *ud, const char *stub_hex, char *out)
{
	(void)stub_hex;
	snprintf(out, LT_DY_SIG_MAX, "%s", (const char *)ud);
	return 0;
}

/* Bootstrap against canned answers: ttwid from Set-Cookie, room id and
 * user_unique_id from the escaped SSR state, a signed push URL. */
START_TEST(bootstrap_steps)
{
	struct lt_platform_conf conf = {.room = ROOM, .aux_base = "http://127.0.0.1:1", .ws_url = "ws://127.0.0.1:1/webcast/im/push/v2/"};
	struct lt_platform_conn *c = NULL;
	struct lt_http_req rq;
	struct lt_ws_target t;
	static const char page[] = "<script>self.__pace_f.push([1,\"{\\\"roomId\\\":\\\"7319999999999999999\\\",\\\"user_unique_id\\\":\\\"7301234567890123456\\\",\\\"status_str\\\":\\\"2\\\"}\"])</script>";

	ck_assert_int_eq(lt_platform_douyin.create(&conf, &c), LT_OK);
	ck_assert_int_eq(lt_platform_douyin.begin(c, 0), LT_OK);
	ck_assert_int_eq(lt_platform_douyin.http_next(c, &rq), LT_OK);
	ck_assert_str_eq(rq.url, "http://127.0.0.1:1/");
	struct lt_http_resp r1 = {.status = 200, .set_cookie = "ttwid=1%7Cabc; Path=/; HttpOnly", .body = "", .body_len = 0};
	ck_assert_int_eq(lt_platform_douyin.http_done(c, &r1), LT_OK);
	ck_assert_int_eq(lt_platform_douyin.http_next(c, &rq), LT_OK);
	ck_assert_str_eq(rq.url, "http://127.0.0.1:1/" ROOM);
	ck_assert_ptr_nonnull(strstr(rq.headers, "Cookie: ttwid=1%7Cabc; msToken="));
	ck_assert_ptr_nonnull(strstr(rq.headers, "__ac_nonce="));
	/* a risk-control page: retry later */
	struct lt_http_resp rbad = {.status = 200, .body = "<html>验证码</html>", .body_len = 20};
	ck_assert_int_eq(lt_platform_douyin.http_done(c, &rbad), LT_EAGAIN);
	struct lt_http_resp r2 = {.status = 200, .body = page, .body_len = sizeof(page) - 1};
	ck_assert_int_eq(lt_platform_douyin.http_done(c, &r2), LT_OK);
	ck_assert_int_eq(lt_platform_douyin.http_next(c, &rq), LT_EEOF);
	ck_assert_int_eq(lt_platform_douyin.ws_target(c, &t), LT_OK);
	ck_assert_ptr_nonnull(strstr(t.url, "ws://127.0.0.1:1/webcast/im/push/v2/?app_name=douyin_web&"));
	ck_assert_ptr_nonnull(strstr(t.url, "&room_id=7319999999999999999&"));
	ck_assert_ptr_nonnull(strstr(t.url, "&user_unique_id=7301234567890123456&"));
	ck_assert_ptr_nonnull(strstr(t.url, "&compress=gzip&"));
	ck_assert_ptr_nonnull(strstr(t.headers, "Cookie: ttwid=1%7Cabc\r\n"));
	/* the signature passes the server's check for this room and user */
	const char *sp = strstr(t.url, "&signature=");
	ck_assert_ptr_nonnull(sp);
	char sig[64] = "";
	size_t k = 0;
	for (sp += 11; *sp && *sp != '&' && k < sizeof(sig) - 1; sp++) {
		if (sp[0] == '%' && sp[1] && sp[2]) {
			char hx[3] = {sp[1], sp[2], 0};
			sig[k++] = (char)strtol(hx, NULL, 16);
			sp += 2;
		} else {
			sig[k++] = *sp;
		}
	}
	char stub[33];
	lt_douyin_stub("7319999999999999999", "7301234567890123456", LT_DY_SDK_VERSION, stub);
	ck_assert_int_eq(lt_douyin_sign_check(sig, stub), LT_OK);
	/* after a failure the page is fetched again, the ttwid kept */
	ck_assert_int_eq(lt_platform_douyin.begin(c, 1), LT_OK);
	ck_assert_int_eq(lt_platform_douyin.http_next(c, &rq), LT_OK);
	ck_assert_str_eq(rq.url, "http://127.0.0.1:1/" ROOM);
	struct lt_http_resp r404 = {.status = 404};
	ck_assert_int_eq(lt_platform_douyin.http_done(c, &r404), LT_ENOTFOUND);
	ck_assert_uint_eq(stats(c).http_errors, 2);
	lt_platform_douyin.destroy(c);

	/* bad rooms */
	struct lt_platform_conf bad = {.room = "abc"};
	ck_assert_int_eq(lt_platform_douyin.create(&bad, &c), LT_EINVAL);
	bad.room = "";
	ck_assert_int_eq(lt_platform_douyin.create(&bad, &c), LT_EINVAL);
	ck_assert_ptr_eq(lt_platform_find("douyin"), &lt_platform_douyin);
	(void)fixed_signer;
}
END_TEST

/* douyin.signer names a command: it gets the stub and its first line is the
 * signature; a failing command fails the attempt. */
START_TEST(command_signer)
{
	struct lt_platform_conf conf = {.room = ROOM, .skip_bootstrap = true, .ws_url = "ws://127.0.0.1:1/x",
	                                .signer = "printf SIG-%s"};
	struct lt_platform_conn *c = NULL;
	struct lt_ws_target t;
	char stub[33], want[64];

	ck_assert_int_eq(lt_platform_douyin.create(&conf, &c), LT_OK);
	ck_assert_int_eq(lt_platform_douyin.begin(c, 0), LT_OK);
	ck_assert_int_eq(lt_platform_douyin.ws_target(c, &t), LT_OK);
	const char *u = strstr(t.url, "&user_unique_id=");
	ck_assert_ptr_nonnull(u);
	char uid[24] = "";
	sscanf(u + 16, "%23[0-9]", uid);
	lt_douyin_stub(ROOM, uid, LT_DY_SDK_VERSION, stub);
	snprintf(want, sizeof(want), "&signature=SIG-%s", stub);
	ck_assert_msg(strstr(t.url, want) != NULL, "no %s in %s", want, t.url);
	lt_platform_douyin.destroy(c);

	conf.signer = "false";
	ck_assert_int_eq(lt_platform_douyin.create(&conf, &c), LT_OK);
	ck_assert_int_eq(lt_platform_douyin.begin(c, 0), LT_OK);
	ck_assert_int_ne(lt_platform_douyin.ws_target(c, &t), LT_OK);
	lt_platform_douyin.destroy(c);

	char sig[LT_DY_SIG_MAX];
	ck_assert_int_eq(lt_douyin_sign_cmd((void *)"echo", "not-a-stub", sig), LT_EINVAL);
	ck_assert_int_eq(lt_douyin_sign_cmd((void *)"echo", "704f436b2558b0d7a1c7e758527dd8f1", sig), LT_OK);
	ck_assert_str_eq(sig, "704f436b2558b0d7a1c7e758527dd8f1");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("douyin");
	TCase *tc = tcase_create("douyin");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, chat_gzip_golden);
	tcase_add_test(tc, need_ack_frame_bytes);
	tcase_add_test(tc, gift_combo_delta);
	tcase_add_test(tc, gift_not_combo_counted);
	tcase_add_test(tc, methods_mapped);
	tcase_add_test(tc, replayed_ids_dropped);
	tcase_add_test(tc, bad_frames_counted);
	tcase_add_test(tc, heartbeat_and_close);
	tcase_add_test(tc, signer_vectors);
	tcase_add_test(tc, bootstrap_steps);
	tcase_add_test(tc, command_signer);
	suite_add_tcase(s, tc);
	return lt_test_run_suite(s);
}
