/* SPDX-License-Identifier: MIT */
/*
 * test_kook: fetcher/platform_kook.c on hand-built golden frames (from
 * kook.md §1): every signal, zlib frames, the mapping field by field, sn
 * order with reorder and duplicates, the channel filter, bad frames
 * (truncated, garbage, a zlib bomb) counted as LT_EPROTO, the bootstrap
 * (token header, resume URL, s=5 dropping the session), the timing of
 * HELLO / PING / PONG on a manual clock, and the resume state line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/json.h"
#include "fetcher/kook.h"
#include "fetcher/platform.h"
#include "tests/support/testsupport.h"

#define ROOM "3344556677"
#define GUILD "1122334455"
#define RECV_MS 1732212345678LL
#define MAXM 400

struct got {
	int n;
	cJSON *msg[MAXM];
	int sent;
	char last_sent[256];
};

static void on_emit(void *ud, const struct lt_msg *m)
{
	struct got *g = ud;
	struct lt_buf b = LT_BUF_INIT;

	ck_assert_int_lt(g->n, MAXM);
	ck_assert_int_eq(lt_json_msg(&b, m), LT_OK);
	g->msg[g->n] = cJSON_Parse(lt_buf_cstr(&b));
	ck_assert_msg(g->msg[g->n] != NULL, "not JSON: %s", lt_buf_cstr(&b));
	g->n++;
	lt_buf_free(&b);
}

static void on_send(void *ud, const void *p, size_t n, bool text)
{
	struct got *g = ud;
	ck_assert(text);
	ck_assert_uint_lt(n, sizeof(g->last_sent));
	memcpy(g->last_sent, p, n);
	g->last_sent[n] = '\0';
	g->sent++;
}

static void got_free(struct got *g)
{
	for (int i = 0; i < g->n; i++)
		cJSON_Delete(g->msg[i]);
	memset(g, 0, sizeof(*g));
}

static int64_t now_ms;
static struct lt_clock clk;

static struct lt_platform_conn *conn(void)
{
	struct lt_platform_conn *c = NULL;
	struct lt_platform_conf conf = {.room = ROOM, .api_base = "http://127.0.0.1:9/api/v3", .token = "s3cret",
	                                .clock = &clk};
	now_ms = 1000000;
	clk = lt_clock_manual(&now_ms);
	ck_assert_int_eq(lt_platform_kook.create(&conf, &c), LT_OK);
	return c;
}

static int feed(struct lt_platform_conn *c, struct got *g, const char *json, unsigned *ev)
{
	struct lt_platform_io io = {on_emit, on_send, g};
	unsigned dummy;
	return lt_platform_kook.on_frame(c, (const uint8_t *)json, strlen(json), RECV_MS, &io, ev ? ev : &dummy);
}

static int feed_bytes(struct lt_platform_conn *c, struct got *g, const void *p, size_t n)
{
	struct lt_platform_io io = {on_emit, on_send, g};
	unsigned ev;
	return lt_platform_kook.on_frame(c, p, n, RECV_MS, &io, &ev);
}

static const char *s(const cJSON *o, const char *path)
{
	char buf[128], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
		o = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(o) ? o->valuestring : NULL;
}

static double num(const cJSON *o, const char *path)
{
	char buf[128], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
		o = cJSON_GetObjectItemCaseSensitive(o, k);
	ck_assert_msg(cJSON_IsNumber(o) || cJSON_IsBool(o), "%s is not a number", path);
	return cJSON_IsBool(o) ? (double)cJSON_IsTrue(o) : o->valuedouble;
}

/* An s=0 text message in ROOM with sn and id. */
static char *text_event(int64_t sn, const char *id, const char *text)
{
	static char buf[1024];
	snprintf(buf, sizeof(buf),
	         "{\"s\":0,\"sn\":%lld,\"d\":{\"channel_type\":\"GROUP\",\"type\":1,\"target_id\":\"" ROOM "\","
	         "\"author_id\":\"2418200000\",\"content\":\"%s\",\"msg_id\":\"%s\",\"msg_timestamp\":1607397660000,"
	         "\"nonce\":\"\",\"extra\":{\"type\":1,\"guild_id\":\"" GUILD "\",\"channel_name\":\"闲聊\","
	         "\"author\":{\"id\":\"2418200000\",\"username\":\"tz-un\",\"identify_num\":\"5618\",\"nickname\":\"\","
	         "\"bot\":false}}}}",
	         (long long)sn, text, id);
	return buf;
}

static void hello(struct lt_platform_conn *c, struct got *g, const char *sid)
{
	char buf[128];
	unsigned ev = 0;
	struct lt_platform_io io = {on_emit, on_send, g};
	ck_assert_int_eq(lt_platform_kook.on_open(c, &io), LT_OK);
	snprintf(buf, sizeof(buf), "{\"s\":1,\"d\":{\"code\":0,\"session_id\":\"%s\"}}", sid);
	ck_assert_int_eq(feed(c, g, buf, &ev), LT_OK);
	ck_assert(ev & LT_PEV_AUTHED);
}

/* ------------------------------------------------------------------ */

START_TEST(chat_fields)
{
	struct lt_platform_conn *c = conn();
	struct got g = {0};

	hello(c, &g, "sess-1");
	ck_assert_int_eq(feed(c, &g, text_event(1, "67637d4c-19f5-4a2b-9e0a-2c3fe2c2a2f1", "你好 world"), NULL), LT_OK);
	ck_assert_int_eq(g.n, 1);
	const cJSON *m = g.msg[0];
	ck_assert_str_eq(s(m, "platform"), "kook");
	ck_assert_str_eq(s(m, "room"), ROOM);
	ck_assert_str_eq(s(m, "type"), "chat");
	ck_assert_str_eq(s(m, "msg_id"), "67637d4c-19f5-4a2b-9e0a-2c3fe2c2a2f1");
	ck_assert_str_eq(s(m, "user.id"), "2418200000");
	ck_assert_str_eq(s(m, "user.name"), "tz-un"); /* empty nickname: the username */
	ck_assert_str_eq(s(m, "content"), "你好 world");
	ck_assert_int_eq((int64_t)num(m, "ts"), 1607397660000LL);
	ck_assert_str_eq(s(m, "extra.username"), "tz-un#5618");
	ck_assert_str_eq(s(m, "extra.guild_id"), GUILD);
	ck_assert_int_eq((int)num(m, "extra.kook_type"), 1);
	ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetObjectItem(m, "extra"), "bot"));

	/* KMarkdown from a bot with a nickname: the plain raw_content */
	ck_assert_int_eq(
	        feed(c, &g,
	             "{\"s\":0,\"sn\":2,\"d\":{\"channel_type\":\"GROUP\",\"type\":9,\"target_id\":\"" ROOM "\","
	             "\"author_id\":\"77\",\"content\":\"**加粗** (met)77(met)\",\"msg_id\":\"km-1\",\"msg_timestamp\":5,"
	             "\"extra\":{\"type\":9,\"guild_id\":\"" GUILD "\",\"author\":{\"id\":\"77\",\"username\":\"botty\","
	             "\"nickname\":\"机器人\",\"identify_num\":\"0001\",\"bot\":true},\"kmarkdown\":{\"raw_content\":"
	             "\"加粗 @botty\",\"mention_part\":[]}}}}",
	             NULL),
	        LT_OK);
	ck_assert_int_eq(g.n, 2);
	m = g.msg[1];
	ck_assert_str_eq(s(m, "type"), "chat");
	ck_assert_str_eq(s(m, "content"), "加粗 @botty");
	ck_assert_str_eq(s(m, "user.name"), "机器人");
	ck_assert_str_eq(s(m, "extra.kmarkdown"), "**加粗** (met)77(met)");
	ck_assert_int_eq((int)num(m, "extra.bot"), 1);
	ck_assert_int_eq((int64_t)num(m, "ts"), 5);

	/* an image: chat with the attachment kept */
	ck_assert_int_eq(feed(c, &g,
	                      "{\"s\":0,\"sn\":3,\"d\":{\"channel_type\":\"GROUP\",\"type\":2,\"target_id\":\"" ROOM "\","
	                      "\"author_id\":\"78\",\"content\":\"https://img.kookapp.cn/a.png\",\"msg_id\":\"img-1\","
	                      "\"msg_timestamp\":6,\"extra\":{\"type\":2,\"author\":{\"username\":\"\",\"nickname\":\"\"},"
	                      "\"attachments\":{\"type\":\"image\",\"url\":\"https://img.kookapp.cn/a.png\"}}}}",
	                      NULL),
	                 LT_OK);
	ck_assert_int_eq(g.n, 3);
	m = g.msg[2];
	ck_assert_str_eq(s(m, "type"), "chat");
	ck_assert_str_eq(s(m, "user.name"), ""); /* both names empty */
	ck_assert_str_eq(s(m, "extra.attachment.url"), "https://img.kookapp.cn/a.png");

	/* type 12: content is an object -> other with the item kept */
	ck_assert_int_eq(feed(c, &g,
	                      "{\"s\":0,\"sn\":4,\"d\":{\"channel_type\":\"GROUP\",\"type\":12,\"target_id\":\"" ROOM "\","
	                      "\"author_id\":\"79\",\"content\":{\"type\":\"item\",\"data\":{\"user_id\":\"79\","
	                      "\"target_id\":\"80\",\"item_id\":42}},\"msg_id\":\"item-1\",\"msg_timestamp\":7,"
	                      "\"extra\":{\"type\":12}}}",
	                      NULL),
	                 LT_OK);
	ck_assert_int_eq(g.n, 4);
	m = g.msg[3];
	ck_assert_str_eq(s(m, "type"), "other");
	ck_assert_str_eq(s(m, "content"), "item");
	ck_assert_int_eq((int)num(m, "extra.kook_type"), 12);
	ck_assert_int_eq((int)num(m, "extra.item.data.item_id"), 42);

	struct lt_platform_stats st;
	lt_platform_kook.stats(c, &st);
	ck_assert_uint_eq(st.messages, 4);
	ck_assert_uint_eq(st.bad_frames, 0);
	got_free(&g);
	lt_platform_kook.destroy(c);
}
END_TEST

/* An over-long msg_id of stray UTF-8 continuation bytes clamps to nothing:
 * counted as a bad message, never emitted without an id (fuzz_kook found
 * it); a long id of good characters is cut to LT_MSG_ID_MAX and kept. */
START_TEST(msg_id_clamped_to_nothing)
{
	struct lt_platform_conn *c = conn();
	struct lt_platform_stats st;
	struct got g = {0};
	char id[300];

	hello(c, &g, "sess-1");
	id[0] = 'c';
	memset(id + 1, 0xa1, 200);
	id[201] = '\0';
	feed(c, &g, text_event(1, id, "x"), NULL);
	ck_assert_int_eq(g.n, 0);
	lt_platform_kook.stats(c, &st);
	ck_assert_int_eq(st.bad_messages, 1);
	memset(id, 'a', 200);
	feed(c, &g, text_event(2, id, "y"), NULL);
	ck_assert_int_eq(g.n, 1);
	ck_assert_int_eq(strlen(s(g.msg[0], "msg_id")), LT_MSG_ID_MAX);
	got_free(&g);
	lt_platform_kook.destroy(c);
}
END_TEST

START_TEST(system_events_and_filter)
{
	struct lt_platform_conn *c = conn();
	struct got g = {0};

	hello(c, &g, "sess-1");
	/* a guild member event before the guild is known: not ours to say */
	ck_assert_int_eq(feed(c, &g,
	                      "{\"s\":0,\"sn\":1,\"d\":{\"channel_type\":\"GROUP\",\"type\":255,\"target_id\":\"" GUILD "\","
	                      "\"author_id\":\"1\",\"content\":\"[系统消息]\",\"msg_id\":\"g-0\",\"msg_timestamp\":1,"
	                      "\"extra\":{\"type\":\"joined_guild\",\"body\":{\"user_id\":\"501\",\"joined_at\":1}}}}",
	                      NULL),
	                 LT_OK);
	ck_assert_int_eq(g.n, 0);
	/* another channel's message: filtered, but its sn counts */
	ck_assert_int_eq(feed(c, &g, text_event(2, "other-ch", "x"), NULL), LT_OK);
	ck_assert_int_eq(g.n, 1); /* ROOM in text_event; make it another channel: */
	ck_assert_int_eq(feed(c, &g,
	                      "{\"s\":0,\"sn\":3,\"d\":{\"channel_type\":\"GROUP\",\"type\":1,\"target_id\":\"999\","
	                      "\"author_id\":\"5\",\"content\":\"elsewhere\",\"msg_id\":\"m-999\",\"msg_timestamp\":2,"
	                      "\"extra\":{\"type\":1,\"guild_id\":\"" GUILD "\"}}}",
	                      NULL),
	                 LT_OK);
	ck_assert_int_eq(g.n, 1);
	/* a direct message: no channel */
	ck_assert_int_eq(feed(c, &g,
	                      "{\"s\":0,\"sn\":4,\"d\":{\"channel_type\":\"PERSON\",\"type\":1,\"target_id\":\"" ROOM "\","
	                      "\"author_id\":\"5\",\"content\":\"dm\",\"msg_id\":\"dm-1\",\"msg_timestamp\":2}}",
	                      NULL),
	                 LT_OK);
	ck_assert_int_eq(g.n, 1);
	/* joined_channel: target_id is the guild, the room is body.channel_id */
	ck_assert_int_eq(feed(c, &g,
	                      "{\"s\":0,\"sn\":5,\"d\":{\"channel_type\":\"GROUP\",\"type\":255,\"target_id\":\"" GUILD "\","
	                      "\"author_id\":\"1\",\"content\":\"[系统消息]\",\"msg_id\":\"j-1\",\"msg_timestamp\":9,"
	                      "\"extra\":{\"type\":\"joined_channel\",\"body\":{\"user_id\":\"502\",\"channel_id\":\"" ROOM "\","
	                      "\"joined_at\":9}}}}",
	                      NULL),
	                 LT_OK);
	ck_assert_int_eq(g.n, 2);
	ck_assert_str_eq(s(g.msg[1], "type"), "enter");
	ck_assert_str_eq(s(g.msg[1], "user.id"), "502");
	ck_assert_str_eq(s(g.msg[1], "msg_id"), "j-1");
	ck_assert_str_eq(s(g.msg[1], "extra.cmd"), "joined_channel");
	/* the same for another channel: filtered */
	ck_assert_int_eq(feed(c, &g,
	                      "{\"s\":0,\"sn\":6,\"d\":{\"type\":255,\"target_id\":\"" GUILD "\",\"author_id\":\"1\","
	                      "\"msg_id\":\"j-2\",\"msg_timestamp\":9,\"extra\":{\"type\":\"exited_channel\",\"body\":"
	                      "{\"user_id\":\"503\",\"channel_id\":\"888\"}}}}",
	                      NULL),
	                 LT_OK);
	ck_assert_int_eq(g.n, 2);
	/* the guild is known now (from sn 2): guild member events are kept */
	ck_assert_int_eq(feed(c, &g,
	                      "{\"s\":0,\"sn\":7,\"d\":{\"type\":255,\"target_id\":\"" GUILD "\",\"author_id\":\"1\","
	                      "\"msg_id\":\"g-1\",\"msg_timestamp\":10,\"extra\":{\"type\":\"exited_guild\",\"body\":"
	                      "{\"user_id\":\"504\",\"exited_at\":10}}}}",
	                      NULL),
	                 LT_OK);
	ck_assert_int_eq(g.n, 3);
	ck_assert_str_eq(s(g.msg[2], "type"), "enter");
	ck_assert_str_eq(s(g.msg[2], "extra.cmd"), "exited_guild");
	/* a reaction: like */
	ck_assert_int_eq(feed(c, &g,
	                      "{\"s\":0,\"sn\":8,\"d\":{\"type\":255,\"target_id\":\"" GUILD "\",\"author_id\":\"1\","
	                      "\"msg_id\":\"r-1\",\"msg_timestamp\":11,\"extra\":{\"type\":\"added_reaction\",\"body\":"
	                      "{\"channel_id\":\"" ROOM "\",\"msg_id\":\"m-1\",\"user_id\":\"505\",\"emoji\":"
	                      "{\"id\":\"[#128077;]\",\"name\":\"[#128077;]\"}}}}}",
	                      NULL),
	                 LT_OK);
	ck_assert_int_eq(g.n, 4);
	ck_assert_str_eq(s(g.msg[3], "type"), "like");
	ck_assert_str_eq(s(g.msg[3], "user.id"), "505");
	ck_assert_str_eq(s(g.msg[3], "extra.emoji"), "[#128077;]");
	ck_assert_str_eq(s(g.msg[3], "extra.target_msg_id"), "m-1");
	/* anything else: other, with the body kept */
	ck_assert_int_eq(feed(c, &g,
	                      "{\"s\":0,\"sn\":9,\"d\":{\"type\":255,\"target_id\":\"" GUILD "\",\"author_id\":\"1\","
	                      "\"msg_id\":\"u-1\",\"msg_timestamp\":12,\"extra\":{\"type\":\"updated_message\",\"body\":"
	                      "{\"channel_id\":\"" ROOM "\",\"msg_id\":\"m-1\",\"content\":\"edited\",\"updated_at\":12}}}}",
	                      NULL),
	                 LT_OK);
	ck_assert_int_eq(g.n, 5);
	ck_assert_str_eq(s(g.msg[4], "type"), "other");
	ck_assert_str_eq(s(g.msg[4], "extra.cmd"), "updated_message");
	ck_assert_str_eq(s(g.msg[4], "extra.body.content"), "edited");
	got_free(&g);
	lt_platform_kook.destroy(c);
}
END_TEST

START_TEST(sn_order_reorder_dedup)
{
	struct lt_platform_conn *c = conn();
	struct got g = {0};
	char id[32];

	hello(c, &g, "sess-1");
	int sent_before = g.sent;
	/* 1, 3, 2, 2, 1, 5, 4: processed 1 2 3 4 5 once each */
	static const int order[] = {1, 3, 2, 2, 1, 5, 4};
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		snprintf(id, sizeof(id), "id-%d", order[i]);
		ck_assert_int_eq(feed(c, &g, text_event(order[i], id, "t"), NULL), LT_OK);
	}
	ck_assert_int_eq(g.n, 5);
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof(id), "id-%d", i + 1);
		ck_assert_str_eq(s(g.msg[i], "msg_id"), id);
	}
	/* a gap sent an early PING with the last processed sn */
	ck_assert_int_gt(g.sent, sent_before);
	ck_assert_str_eq(g.last_sent, "{\"s\":2,\"sn\":3}");

	/* the state line carries the session and the last sn */
	char st[LT_KOOK_STATE_MAX];
	size_t n = lt_platform_kook.state_save(c, st, sizeof(st));
	ck_assert_uint_gt(n, 0);
	ck_assert_str_eq(st, "kook1 sess-1 5\n");

	/* a full reorder buffer gives the gap up and goes on in order */
	for (int i = 0; i < LT_KOOK_REORDER_MAX + 1; i++) {
		snprintf(id, sizeof(id), "big-%d", 7 + i);
		ck_assert_int_eq(feed(c, &g, text_event(7 + i, id, "t"), NULL), LT_OK);
		if (i < LT_KOOK_REORDER_MAX)
			ck_assert_int_eq(g.n, 5); /* held while sn 6 is missing */
	}
	ck_assert_int_eq(g.n, 5 + LT_KOOK_REORDER_MAX + 1);
	ck_assert_str_eq(s(g.msg[5], "msg_id"), "big-7"); /* sn 6 never came */
	snprintf(id, sizeof(id), "big-%d", 7 + LT_KOOK_REORDER_MAX);
	ck_assert_str_eq(s(g.msg[5 + LT_KOOK_REORDER_MAX], "msg_id"), id);
	got_free(&g);
	lt_platform_kook.destroy(c);
}
END_TEST

static size_t zip(const char *json, uint8_t *out, size_t cap)
{
	uLongf n = cap;
	ck_assert_int_eq(compress2(out, &n, (const Bytef *)json, strlen(json), 9), Z_OK);
	return n;
}

START_TEST(zlib_frames_and_bad_frames)
{
	struct lt_platform_conn *c = conn();
	struct got g = {0};
	static uint8_t z[1 << 16];
	struct lt_platform_stats st;

	size_t n = zip("{\"s\":1,\"d\":{\"code\":0,\"sessionId\":\"sess-z\"}}", z, sizeof(z));
	struct lt_platform_io io = {on_emit, on_send, &g};
	lt_platform_kook.on_open(c, &io);
	ck_assert_int_eq(feed_bytes(c, &g, z, n), LT_OK); /* the golang-bot spelling */
	n = zip(text_event(1, "z-1", "压缩"), z, sizeof(z));
	ck_assert_int_eq(feed_bytes(c, &g, z, n), LT_OK);
	ck_assert_int_eq(g.n, 1);
	ck_assert_str_eq(s(g.msg[0], "content"), "压缩");

	/* truncated zlib, corrupt zlib, trailing bytes, empty, not JSON, no s */
	n = zip(text_event(2, "z-2", "x"), z, sizeof(z));
	ck_assert_int_eq(feed_bytes(c, &g, z, n / 2), LT_EPROTO);
	uint8_t bad[32] = {0x78, 0x9c, 0xff, 1, 2, 3};
	ck_assert_int_eq(feed_bytes(c, &g, bad, sizeof(bad)), LT_EPROTO);
	uint8_t two[2048];
	size_t m = zip("{\"s\":3}", two, sizeof(two));
	two[m] = 'x';
	ck_assert_int_eq(feed_bytes(c, &g, two, m + 1), LT_EPROTO);
	ck_assert_int_eq(feed_bytes(c, &g, "", 0), LT_EPROTO);
	ck_assert_int_eq(feed(c, &g, "{\"s\":0,\"d\":{\"type\":", NULL), LT_EPROTO);
	ck_assert_int_eq(feed(c, &g, "{\"d\":{}}", NULL), LT_EPROTO);
	ck_assert_int_eq(feed(c, &g, "{\"s\":0,\"sn\":2,\"d\":\"x\"}", NULL), LT_EPROTO);

	/* a bomb: 8 MB of zeros in one frame is over LT_KOOK_INFLATE_MAX */
	size_t big = 8u << 20;
	char *zeros = calloc(1, big + 1);
	memset(zeros, ' ', big);
	uLongf bn = compressBound(big);
	uint8_t *bz = malloc(bn);
	ck_assert_int_eq(compress2(bz, &bn, (const Bytef *)zeros, big, 9), Z_OK);
	ck_assert_int_eq(feed_bytes(c, &g, bz, bn), LT_EPROTO);
	free(zeros);
	free(bz);

	lt_platform_kook.stats(c, &st);
	ck_assert_uint_eq(st.bad_frames, 8);
	ck_assert_uint_eq(st.messages, 1);
	/* and the connection goes on */
	n = zip(text_event(2, "z-2", "after"), z, sizeof(z));
	ck_assert_int_eq(feed_bytes(c, &g, z, n), LT_OK);
	ck_assert_int_eq(g.n, 2);
	got_free(&g);
	lt_platform_kook.destroy(c);
}
END_TEST

START_TEST(bootstrap_resume_reconnect)
{
	struct lt_platform_conn *c = conn();
	struct got g = {0};
	struct lt_http_req rq;
	struct lt_ws_target t;
	unsigned ev;

	ck_assert_int_eq(lt_platform_kook.begin(c, 0), LT_OK);
	ck_assert_int_eq(lt_platform_kook.http_next(c, &rq), LT_OK);
	ck_assert_str_eq(rq.url, "http://127.0.0.1:9/api/v3/gateway/index?compress=1");
	ck_assert_str_eq(rq.headers, "Authorization: Bot s3cret\r\n");
	struct lt_http_resp bad = {.status = 401, .body = "{\"code\":401}", .body_len = 12};
	ck_assert_int_eq(lt_platform_kook.http_done(c, &bad), LT_EAGAIN);
	static const char ok[] = "{\"code\":0,\"message\":\"\",\"data\":{\"url\":\"ws://127.0.0.1:9/gateway?compress=1&token=s3cret\"}}";
	struct lt_http_resp resp = {.status = 200, .body = ok, .body_len = sizeof(ok) - 1};
	ck_assert_int_eq(lt_platform_kook.http_done(c, &resp), LT_OK);
	ck_assert_int_eq(lt_platform_kook.http_next(c, &rq), LT_EEOF);
	ck_assert_int_eq(lt_platform_kook.ws_target(c, &t), LT_OK);
	ck_assert_str_eq(t.url, "ws://127.0.0.1:9/gateway?compress=1&token=s3cret");

	hello(c, &g, "sess-r");
	feed(c, &g, text_event(1, "a", "a"), NULL);
	feed(c, &g, text_event(2, "b", "b"), NULL);
	/* the connection drops: the next attempt resumes without a lookup */
	ck_assert_int_eq(lt_platform_kook.begin(c, 1), LT_OK);
	ck_assert_int_eq(lt_platform_kook.http_next(c, &rq), LT_EEOF);
	ck_assert_int_eq(lt_platform_kook.ws_target(c, &t), LT_OK);
	ck_assert_str_eq(t.url, "ws://127.0.0.1:9/gateway?compress=1&token=s3cret&resume=1&sn=2&session_id=sess-r");
	/* HELLO of the same session, the replay (a duplicate and the rest), s=6 */
	hello(c, &g, "sess-r");
	feed(c, &g, text_event(2, "b", "b"), NULL);
	feed(c, &g, text_event(3, "c", "c"), NULL);
	ck_assert_int_eq(feed(c, &g, "{\"s\":6,\"d\":{\"session_id\":\"sess-r\"}}", NULL), LT_OK);
	ck_assert_int_eq(g.n, 3);
	ck_assert_str_eq(s(g.msg[2], "msg_id"), "c");

	/* two failed resumes, then a fresh lookup */
	ck_assert_int_eq(lt_platform_kook.begin(c, 1), LT_OK);
	ck_assert_int_eq(lt_platform_kook.http_next(c, &rq), LT_EEOF);
	ck_assert_int_eq(lt_platform_kook.begin(c, 2), LT_OK);
	ck_assert_int_eq(lt_platform_kook.http_next(c, &rq), LT_EEOF);
	ck_assert_int_eq(lt_platform_kook.begin(c, 3), LT_OK);
	ck_assert_int_eq(lt_platform_kook.http_next(c, &rq), LT_OK);
	ck_assert_int_eq(lt_platform_kook.http_done(c, &resp), LT_OK);
	ck_assert_int_eq(lt_platform_kook.ws_target(c, &t), LT_OK);
	ck_assert_ptr_null(strstr(t.url, "resume"));

	/* a new session: sn starts again; s=5 drops everything */
	hello(c, &g, "sess-new");
	feed(c, &g, text_event(1, "n1", "n1"), NULL);
	ck_assert_int_eq(g.n, 4);
	feed(c, &g, text_event(3, "n3", "held"), NULL); /* held for sn 2 */
	ck_assert_int_eq(feed(c, &g, "{\"s\":5,\"d\":{\"code\":40108,\"err\":\"invalid sn\"}}", &ev), LT_OK);
	ck_assert(ev & LT_PEV_RECONNECT);
	char st[LT_KOOK_STATE_MAX];
	lt_platform_kook.state_save(c, st, sizeof(st));
	ck_assert_str_eq(st, "kook1 - 0\n");
	ck_assert_int_eq(lt_platform_kook.begin(c, 0), LT_OK);
	ck_assert_int_eq(lt_platform_kook.http_next(c, &rq), LT_OK); /* fresh lookup */
	ck_assert_int_eq(lt_platform_kook.http_done(c, &resp), LT_OK);
	ck_assert_int_eq(lt_platform_kook.ws_target(c, &t), LT_OK);
	ck_assert_ptr_null(strstr(t.url, "resume"));
	hello(c, &g, "sess-3");
	feed(c, &g, text_event(2, "m2", "x"), NULL); /* sn 1 of the new session is missing: held */
	ck_assert_int_eq(g.n, 4);                    /* and the old held sn 3 is gone */
	feed(c, &g, text_event(1, "m1", "x"), NULL);
	ck_assert_int_eq(g.n, 6);
	ck_assert_str_eq(s(g.msg[4], "msg_id"), "m1");
	ck_assert_str_eq(s(g.msg[5], "msg_id"), "m2");

	/* HELLO refused (40103): a reconnect with a fresh lookup */
	lt_platform_kook.begin(c, 0);
	ck_assert_int_eq(feed(c, &g, "{\"s\":1,\"d\":{\"code\":40103}}", &ev), LT_EAUTH);
	ck_assert(ev & LT_PEV_RECONNECT);
	ck_assert_int_eq(lt_platform_kook.begin(c, 1), LT_OK);
	ck_assert_int_eq(lt_platform_kook.http_next(c, &rq), LT_OK);
	/* 40101 (invalid token): no retry mends it, the session ends for good */
	ck_assert_int_eq(feed(c, &g, "{\"s\":1,\"d\":{\"code\":40101}}", &ev), LT_EAUTH);
	ck_assert(ev & LT_PEV_CLOSE);
	ck_assert(!(ev & LT_PEV_RECONNECT));
	got_free(&g);
	lt_platform_kook.destroy(c);
}
END_TEST

START_TEST(timing)
{
	struct lt_platform_conn *c = conn();
	struct got g = {0};
	struct lt_platform_io io = {on_emit, on_send, &g};

	/* no HELLO within 6 s */
	lt_platform_kook.on_open(c, &io);
	ck_assert_int_eq(lt_platform_kook.heartbeat_ms(c), LT_KOOK_HELLO_TIMEOUT_MS);
	now_ms += 5999;
	ck_assert_int_eq(lt_platform_kook.heartbeat(c, &io), LT_OK);
	now_ms += 1;
	ck_assert_int_eq(lt_platform_kook.heartbeat(c, &io), LT_ETIMEDOUT);

	/* PING every 30 s ± 5 s with the last sn */
	hello(c, &g, "sess-t");
	feed(c, &g, text_event(1, "a", "a"), NULL);
	int ms = lt_platform_kook.heartbeat_ms(c);
	ck_assert_int_ge(ms, LT_KOOK_PING_MS - LT_KOOK_PING_JITTER_MS);
	ck_assert_int_le(ms, LT_KOOK_PING_MS + LT_KOOK_PING_JITTER_MS);
	now_ms += ms - 1;
	ck_assert_int_eq(lt_platform_kook.heartbeat(c, &io), LT_OK);
	ck_assert_int_eq(g.sent, 0);
	now_ms += 1;
	ck_assert_int_eq(lt_platform_kook.heartbeat(c, &io), LT_OK);
	ck_assert_int_eq(g.sent, 1);
	ck_assert_str_eq(g.last_sent, "{\"s\":2,\"sn\":1}");
	/* the PONG is due within 6 s */
	ck_assert_int_eq(lt_platform_kook.heartbeat_ms(c), LT_KOOK_PONG_TIMEOUT_MS);
	now_ms += 3000;
	unsigned ev;
	ck_assert_int_eq(feed(c, &g, "{\"s\":3}", &ev), LT_OK);
	ck_assert(ev & LT_PEV_HEARTBEAT);
	ck_assert_int_ge(lt_platform_kook.heartbeat_ms(c), LT_KOOK_PING_MS - LT_KOOK_PING_JITTER_MS - 3000);

	/* next PING: no PONG; 6 s later a PING after 2 s, then 4 s later one more, then give up */
	now_ms += lt_platform_kook.heartbeat_ms(c);
	ck_assert_int_eq(lt_platform_kook.heartbeat(c, &io), LT_OK);
	ck_assert_int_eq(g.sent, 2);
	now_ms += LT_KOOK_PONG_TIMEOUT_MS;
	ck_assert_int_eq(lt_platform_kook.heartbeat(c, &io), LT_OK); /* timed out: retry scheduled */
	ck_assert_int_eq(g.sent, 2);
	ck_assert_int_eq(lt_platform_kook.heartbeat_ms(c), LT_KOOK_RETRY_PING1_MS);
	now_ms += LT_KOOK_RETRY_PING1_MS;
	ck_assert_int_eq(lt_platform_kook.heartbeat(c, &io), LT_OK);
	ck_assert_int_eq(g.sent, 3);
	now_ms += lt_platform_kook.heartbeat_ms(c);
	ck_assert_int_eq(lt_platform_kook.heartbeat(c, &io), LT_OK);
	ck_assert_int_eq(lt_platform_kook.heartbeat_ms(c), LT_KOOK_RETRY_PING2_MS);
	now_ms += LT_KOOK_RETRY_PING2_MS;
	ck_assert_int_eq(lt_platform_kook.heartbeat(c, &io), LT_OK);
	ck_assert_int_eq(g.sent, 4);
	now_ms += lt_platform_kook.heartbeat_ms(c);
	ck_assert_int_eq(lt_platform_kook.heartbeat(c, &io), LT_ETIMEDOUT);

	/* ... while a PONG during the retries makes it healthy again */
	hello(c, &g, "sess-t");
	now_ms += lt_platform_kook.heartbeat_ms(c);
	lt_platform_kook.heartbeat(c, &io);
	now_ms += LT_KOOK_PONG_TIMEOUT_MS;
	lt_platform_kook.heartbeat(c, &io);
	now_ms += LT_KOOK_RETRY_PING1_MS;
	lt_platform_kook.heartbeat(c, &io);
	feed(c, &g, "{\"s\":3}", NULL);
	ck_assert_int_gt(lt_platform_kook.heartbeat_ms(c), LT_KOOK_PONG_TIMEOUT_MS);
	got_free(&g);
	lt_platform_kook.destroy(c);
}
END_TEST

START_TEST(state_line)
{
	char sid[LT_KOOK_SESSION_ID_MAX + 1];
	int64_t sn = -1;
	struct lt_platform_conn *c = conn();
	struct lt_ws_target t;
	struct lt_http_req rq;

	ck_assert_int_eq(lt_kook_state_parse("kook1 abc-1 42\n", 15, sid, &sn), LT_OK);
	ck_assert_str_eq(sid, "abc-1");
	ck_assert_int_eq(sn, 42);
	ck_assert_int_eq(lt_kook_state_parse("kook1 - 0\n", 10, sid, &sn), LT_OK);
	ck_assert_str_eq(sid, "");
	ck_assert_int_eq(lt_kook_state_parse("kook1 abc -1\n", 13, sid, &sn), LT_EPROTO);
	ck_assert_int_eq(lt_kook_state_parse("kook2 abc 1\n", 12, sid, &sn), LT_EPROTO);
	ck_assert_int_eq(lt_kook_state_parse("kook1 abc 1 x\n", 14, sid, &sn), LT_EPROTO);
	ck_assert_int_eq(lt_kook_state_parse("", 0, sid, &sn), LT_EPROTO);
	char longid[200];
	snprintf(longid, sizeof(longid), "kook1 %0100d 1\n", 7);
	ck_assert_int_eq(lt_kook_state_parse(longid, strlen(longid), sid, &sn), LT_EPROTO);

	/* restored state: the first attempt looks the gateway up and resumes */
	ck_assert_int_eq(lt_platform_kook.state_load(c, "kook1 sess-x 77\n", 16), LT_OK);
	lt_platform_kook.begin(c, 0);
	ck_assert_int_eq(lt_platform_kook.http_next(c, &rq), LT_OK);
	static const char ok[] = "{\"code\":0,\"data\":{\"url\":\"wss://gw.example/gateway?token=t\"}}";
	struct lt_http_resp resp = {.status = 200, .body = ok, .body_len = sizeof(ok) - 1};
	ck_assert_int_eq(lt_platform_kook.http_done(c, &resp), LT_OK);
	ck_assert_int_eq(lt_platform_kook.ws_target(c, &t), LT_OK);
	ck_assert_str_eq(t.url, "wss://gw.example/gateway?token=t&resume=1&sn=77&session_id=sess-x");
	lt_platform_kook.destroy(c);

	/* rooms are channel ids */
	struct lt_platform_conf conf = {.room = "12ab"};
	c = NULL;
	ck_assert_int_eq(lt_platform_kook.create(&conf, &c), LT_EINVAL);
	ck_assert_ptr_eq(lt_platform_find("kook"), &lt_platform_kook);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kook");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, chat_fields);
	tcase_add_test(tc, msg_id_clamped_to_nothing);
	tcase_add_test(tc, system_events_and_filter);
	tcase_add_test(tc, sn_order_reorder_dedup);
	tcase_add_test(tc, zlib_frames_and_bad_frames);
	tcase_add_test(tc, bootstrap_resume_reconnect);
	tcase_add_test(tc, timing);
	tcase_add_test(tc, state_line);
	suite_add_tcase(s, tc);
	return lt_test_run_suite(s);
}
