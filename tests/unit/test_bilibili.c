/* SPDX-License-Identifier: MIT */
/*
 * test_bilibili: fetcher/platform_bilibili.c, the Bilibili ops table.
 *
 * Every fixture in ../shared/fixtures/bilibili-messages/ (real payloads) is
 * wrapped in an op-5 packet and must decode to the expected type without a
 * bad frame; the commands the contract maps are checked field by field on
 * the normalized JSON (ids, names, counts, values, ts in ms). Packet level:
 * zlib and brotli batches, concatenated and nested packets, the nesting
 * bound, the inflate cap against a bomb, truncated / oversize / bad-version
 * packets, the 20-byte heartbeat-reply quirk, auth replies. The WBI signer
 * against the published test vector, and the bootstrap as a sequence of
 * HTTP steps with a manual clock (key cache and -352). All of it twice: with
 * the AVX2 loops of jscan and of the id_str search, and without.
 */
#include <brotli/encode.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/json.h"
#include "fetcher/bilibili.h"
#include "fetcher/bilibili.pb-c.h"
#include "fetcher/jscan.h"
#include "fetcher/platform.h"
#include "tests/support/testsupport.h"

#define ROOM "21452505"
#define RECV_MS 1732212345678LL

/* ------------------------------------------------------------------ */
/* A connection and a collector of what it emits and sends. */

#define MAXM 64

struct got {
	int n;
	cJSON *msg[MAXM];     /* the normalized JSON of each message */
	uint8_t flags[MAXM];
	int sent;             /* frames sent */
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
	ck_assert_int_eq(lt_platform_bilibili.create(&conf, &c), LT_OK);
	return c;
}

/* Decode one frame; returns on_frame's code. */
static int feed(struct lt_platform_conn *c, const void *p, size_t n, struct got *g, unsigned *ev)
{
	struct lt_platform_io io = {.emit = on_emit, .send = on_send, .ud = g};
	unsigned e = 0;
	int rc = lt_platform_bilibili.on_frame(c, p, n, RECV_MS, &io, &e);
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

static void packet(struct lt_buf *out, int ver, int op, const void *body, size_t n)
{
	lt_bili_pack(out, (uint16_t)ver, (uint32_t)op, 0, body, n);
}

/* One op-5 ver-0 frame holding body; decoded into g; no bad frame. */
static void decode_body(const char *body, size_t n, struct got *g, struct lt_platform_stats *st)
{
	struct lt_platform_conn *c = new_conn();
	struct lt_buf f = LT_BUF_INIT;
	lt_buf_init(&f, 0);
	packet(&f, 0, 5, body, n);
	ck_assert_int_eq(feed(c, f.data, f.len, g, NULL), LT_OK);
	lt_platform_bilibili.stats(c, st);
	ck_assert_int_eq(st->bad_frames, 0);
	lt_buf_free(&f);
	lt_platform_bilibili.destroy(c);
}

static char *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *p = malloc((size_t)len + 1);
	ck_assert(p != NULL);
	ck_assert_int_eq(fread(p, 1, (size_t)len, f), (size_t)len);
	p[len] = 0;
	fclose(f);
	*n = (size_t)len;
	return p;
}

static char *fixture(const char *rel, size_t *n)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/../shared/fixtures/bilibili-messages/%s", lt_test_srcdir(), rel);
	return read_file(path, n);
}

/* Decode one fixture file (wrapped in an op-5 packet); expect one message. */
static const cJSON *one(const char *rel, struct got *g)
{
	struct lt_platform_stats st;
	size_t n;
	char *body = fixture(rel, &n);
	decode_body(body, n, g, &st);
	free(body);
	ck_assert_int_eq(st.bad_messages, 0);
	ck_assert_int_eq(g->n, 1);
	return g->msg[0];
}

/* ------------------------------------------------------------------ */
/* Every fixture decodes to the expected type. */

static const char *expected_type(const char *dir, const char *file)
{
	static const struct {
		const char *dir, *type;
	} map[] = {
		{"DANMU_MSG", "chat"},          {"DANMU_MSG-4-0-2-2-2-0", "chat"}, {"SEND_GIFT", "gift"},
		{"GUARD_BUY", "guard"},         {"SUPER_CHAT_MESSAGE", "superchat"}, {"LIKE_INFO_V3_CLICK", "like"},
		{"ONLINE_RANK_COUNT", "room_stats"}, {"WATCHED_CHANGE", "room_stats"}, {"LIVE", "live_start"},
		{"PREPARING", "live_end"},      {"INTERACT_WORD_V2", "enter"},
	};
	if (!strcmp(dir, "INTERACT_WORD"))
		return !strcmp(file, "enter.json") ? "enter" : !strcmp(file, "follow.json") ? "follow" : "share";
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(map[i].dir, dir))
			return map[i].type;
	return "other";
}

/* INTERACT_WORD_V2 fixtures: the decoded protobuf as JSON; pack it again. */
static size_t interact_pb_from_json(const cJSON *j, uint8_t *out)
{
	Ltbili__InteractWord w = LTBILI__INTERACT_WORD__INIT;
	Ltbili__InteractUinfo ui = LTBILI__INTERACT_UINFO__INIT;
	Ltbili__InteractBase base = LTBILI__INTERACT_BASE__INIT;
	w.uid = (uint64_t)nget(j, "uid");
	w.uname = (char *)sget(j, "uname");
	w.msg_type = (int64_t)nget(j, "msg_type");
	w.room_id = (int64_t)nget(j, "room_id");
	w.timestamp = (int64_t)nget(j, "timestamp");
	w.trigger_time = (int64_t)nget(j, "trigger_time");
	const cJSON *u = oget(j, "uinfo");
	ui.uid = (uint64_t)nget(u, "uid");
	base.uname = (char *)sget(oget(u, "base"), "uname");
	ui.base_info = &base;
	w.uinfo = &ui;
	return ltbili__interact_word__pack(&w, out);
}

static void b64(struct lt_buf *out, const uint8_t *p, size_t n)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
		lt_buf_putc(out, a[(v >> 18) & 63]);
		lt_buf_putc(out, a[(v >> 12) & 63]);
		lt_buf_putc(out, i + 1 < n ? a[(v >> 6) & 63] : '=');
		lt_buf_putc(out, i + 2 < n ? a[v & 63] : '=');
	}
}

START_TEST(every_fixture)
{
	char root[1024];
	snprintf(root, sizeof(root), "%s/../shared/fixtures/bilibili-messages", lt_test_srcdir());
	DIR *d = opendir(root);
	ck_assert_msg(d != NULL, "no fixtures at %s", root);
	int files = 0, dirs = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !strcmp(de->d_name, "LICENSE"))
			continue;
		char sub[1400];
		snprintf(sub, sizeof(sub), "%s/%s", root, de->d_name);
		DIR *d2 = opendir(sub);
		if (!d2)
			continue;
		dirs++;
		struct dirent *fe;
		while ((fe = readdir(d2))) {
			if (!strstr(fe->d_name, ".json"))
				continue;
			char rel[600];
			snprintf(rel, sizeof(rel), "%s/%s", de->d_name, fe->d_name);
			size_t n;
			char *body = fixture(rel, &n);
			cJSON *j = cJSON_Parse(body);
			ck_assert_msg(j != NULL, "%s is not JSON", rel);
			struct lt_buf wrapped = LT_BUF_INIT;
			lt_buf_init(&wrapped, 0);
			if (!cJSON_GetObjectItemCaseSensitive(j, "cmd")) {
				/* INTERACT_WORD_V2/decoded_*.json: the protobuf's content */
				uint8_t pb[1024];
				size_t pn = interact_pb_from_json(j, pb);
				lt_buf_puts(&wrapped, "{\"cmd\":\"INTERACT_WORD_V2\",\"data\":{\"dmscore\":20,\"pb\":\"");
				b64(&wrapped, pb, pn);
				lt_buf_puts(&wrapped, "\"}}");
			} else {
				lt_buf_append(&wrapped, body, n);
			}
			struct got g = {0};
			struct lt_platform_stats st;
			decode_body((const char *)wrapped.data, wrapped.len, &g, &st);
			if (!strcmp(rel, "INTERACT_WORD_V2/normal.json")) {
				/* its pb is a placeholder, not base64: counted, skipped */
				ck_assert_int_eq(st.bad_messages, 1);
				ck_assert_int_eq(g.n, 0);
			} else {
				ck_assert_msg(st.bad_messages == 0, "%s: bad message", rel);
				ck_assert_msg(g.n == 1, "%s: %d messages", rel, g.n);
				const char *want = expected_type(de->d_name, fe->d_name);
				ck_assert_msg(!strcmp(sget(g.msg[0], "type"), want), "%s: type %s, want %s", rel,
				              sget(g.msg[0], "type"), want);
				ck_assert_str_eq(sget(g.msg[0], "platform"), "bilibili");
				ck_assert_str_eq(sget(g.msg[0], "room"), ROOM);
				ck_assert_msg(strlen(sget(g.msg[0], "msg_id")) > 0, "%s: no msg_id", rel);
				ck_assert_msg(nget(g.msg[0], "ts") > 1.0e12, "%s: ts not in ms", rel);
				if (!strcmp(want, "other")) {
					const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(oget(g.msg[0], "extra"), "cmd");
					ck_assert_msg(cJSON_IsString(cmd), "%s: other without extra.cmd", rel);
					ck_assert_str_eq(cmd->valuestring, de->d_name);
				}
			}
			files++;
			got_free(&g);
			lt_buf_free(&wrapped);
			cJSON_Delete(j);
			free(body);
		}
		closedir(d2);
	}
	closedir(d);
	ck_assert_int_ge(dirs, 39);
	ck_assert_int_ge(files, 79);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Field by field */

START_TEST(danmu_fields)
{
	struct got g = {0};
	const cJSON *m = one("DANMU_MSG/guard_jianzhang.json", &g);
	ck_assert_str_eq(sget(m, "type"), "chat");
	ck_assert_str_eq(sget(m, "content"), "赞");
	ck_assert_int_eq((int64_t)nget(m, "ts"), 1662305224469LL);
	ck_assert_str_eq(sget(oget(m, "user"), "id"), "77777777771");
	ck_assert_str_eq(sget(oget(m, "user"), "name"), "__MOCK_UNAME__");
	ck_assert_int_eq((int)nget(oget(m, "extra"), "guard_level"), 3);
	/* no id_str in this payload: a synthetic id, the same on every decode */
	char id[64];
	snprintf(id, sizeof(id), "%s", sget(m, "msg_id"));
	ck_assert_int_eq(strlen(id), 16);
	got_free(&g);
	m = one("DANMU_MSG/guard_jianzhang.json", &g);
	ck_assert_str_eq(sget(m, "msg_id"), id);
	got_free(&g);
	/* a different danmaku gets a different id */
	m = one("DANMU_MSG/guard_tidu.json", &g);
	ck_assert_str_ne(sget(m, "msg_id"), id);
	got_free(&g);
}
END_TEST

/* DANMU_MSG in shapes off the fused walk's path (no mode_info at [15], a
 * short info[0], a malformed tail of info[0], a short info): the element
 * walks decide, as before. Each: the message's content and id, or a bad
 * message. */
START_TEST(danmu_shapes)
{
	static const struct {
		const char *info0, *rest, *content, *id; /* id NULL: synthetic; content NULL: bad */
	} cases[] = {
		{"[0,1,25,0,1732212345000,7,0,\"h\",0,0,0,\"\",0,\"{}\",\"{}\",{\"extra\":\"{\\\"id_str\\\":\\\"ab12\\\"}\"},{},0]",
		 ",\"hi\",[42,\"n\"],[],[],[],0,3]", "hi", "ab12"},
		{"[0,1,25,0,1732212345000,7,0,\"h\",0,0,0,\"\",0,\"{}\",\"{}\",\"not an object\",{},0]",
		 ",\"hi\",[42,\"n\"],[],[],[],0,3]", "hi", NULL},
		{"[0,1,25,0,1732212345000]", ",\"hi\",[42,\"n\"]]", "hi", NULL},
		{"[0,1,25,0,1732212345000,7,0,\"h\",0,0,0,\"\",0,\"{}\",\"{}\",{\"extra\":\"{\\\"id_str\\\":\\\"ab12\\\"}\"},\"open]",
		 ",\"hi\",[42,\"n\"]]", NULL, NULL},
		{"[0,1,25,0,1732212345000,7,0,\"h\",0,0,0,\"\",0,\"{}\",\"{}\",{\"extra\":\"{\\\"id_str\\\":\\\"ab12\\\"}\"} 0]",
		 ",\"hi\",[42,\"n\"]]", NULL, NULL},
		{"[0,1,25,0,1732212345000,7,0,\"h\",0,0,0,\"\",0,\"{}\",\"{}\",{\"extra\":\"{\\\"id_str\\\":\\\"ab12\\\"}\",}]",
		 ",\"hi\",[42,\"n\"]]", NULL, NULL},
		{"[0,1,25,0,1732212345000,7,0,\"h\",0,0,0,\"\",0,\"{}\",\"{}\",{\"extra\":\"{\\\"id_str\\\":\\\"ab12\\\"}\"}]",
		 ",\"hi\"", "hi", "ab12"},
		{"[0,1,25,0,1732212345000,7,0,\"h\",0,0,0,\"\",0,\"{}\",\"{}\",{\"extra\":\"{\\\"id_str\\\":\\\"ab12\\\"}\"}]",
		 "}", NULL, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[1024];
		snprintf(body, sizeof(body), "{\"cmd\":\"DANMU_MSG\",\"info\":[%s%s}", cases[i].info0, cases[i].rest);
		struct got g = {0};
		struct lt_platform_stats st;
		decode_body(body, strlen(body), &g, &st);
		if (!cases[i].content) {
			ck_assert_msg(g.n == 0 && st.bad_messages == 1, "case %zu: want a bad message", i);
		} else {
			ck_assert_msg(g.n == 1 && st.bad_messages == 0, "case %zu: want a message", i);
			ck_assert_str_eq(sget(g.msg[0], "content"), cases[i].content);
			if (cases[i].id)
				ck_assert_str_eq(sget(g.msg[0], "msg_id"), cases[i].id);
			else
				ck_assert_int_eq(strlen(sget(g.msg[0], "msg_id")), 16);
		}
		got_free(&g);
	}
}
END_TEST

START_TEST(danmu_suffix_id_str_anonymous)
{
	struct got g = {0};
	struct lt_platform_stats st;
	/* the platform id inside the JSON string info[0][15].extra */
	const char *body =
		"{\"cmd\":\"DANMU_MSG:4:0:2:2:2:0\",\"info\":[[0,1,25,16777215,1732212345001,99,0,\"x\",0,0,0,\"\",0,"
		"\"{}\",\"{}\",{\"mode\":0,\"extra\":\"{\\\"content\\\":\\\"say \\\\\\\"id_str\\\\\\\":\\\\\\\"no\\\","
		"\\\"id_str\\\":\\\"0f1e2d3c4b5a69788796a5b4c3d2e1f0\\\"}\",\"user\":{\"uid\":0,\"base\":{\"name\":"
		"\"\\u63d0***\"}}},{}],\"hi \\\"there\\\"\",[0,\"\\u63d0***\",0,0,0,10000,1,\"\"],[],[0]]}";
	decode_body(body, strlen(body), &g, &st);
	ck_assert_int_eq(g.n, 1);
	const cJSON *m = g.msg[0];
	ck_assert_str_eq(sget(m, "type"), "chat");
	ck_assert_str_eq(sget(m, "msg_id"), "0f1e2d3c4b5a69788796a5b4c3d2e1f0");
	ck_assert_str_eq(sget(m, "content"), "hi \"there\"");
	ck_assert_str_eq(sget(oget(m, "user"), "id"), "");
	ck_assert_str_eq(sget(oget(m, "user"), "name"), "提***");
	ck_assert(g.flags[0] & LT_MSGF_ANONYMOUS);
	ck_assert_int_eq((int64_t)nget(m, "ts"), 1732212345001LL);
	got_free(&g);
}
END_TEST

/* The id_str key found at every offset of the extra string (each lane of the
 * 32- and 16-byte searches and their tails), after decoys that share its 'i' and '_'
 * (is_audited, "id_st"), a copy inside an inner string value (more
 * backslashes) and a key not preceded by '{' or ','. */
START_TEST(danmu_id_str_offsets)
{
	static const char *const decoys[] = {
		"",
		"\\\"is_audited\\\":false,",
		"\\\"id_st\\\":1,\\\"id_strx\\\":2,",
		"\\\"c\\\":\\\"x\\\\\\\"id_str\\\\\\\":\\\\\\\"no\\\",",
	};
	char body[2048], pad[112];

	for (size_t d = 0; d < sizeof(decoys) / sizeof(decoys[0]); d++) {
		for (int k = 0; k < 100; k++) {
			struct got g = {0};
			struct lt_platform_stats st;
			memset(pad, 'a', (size_t)k);
			pad[k] = '\0';
			snprintf(body, sizeof(body),
			         "{\"cmd\":\"DANMU_MSG\",\"info\":[[0,1,25,16777215,1732212345001,99,0,\"x\",0,0,0,\"\",0,"
			         "\"{}\",\"{}\",{\"mode\":0,\"extra\":\"{\\\"p\\\":\\\"%s\\\",%s"
			         "\\\"id_str\\\":\\\"abc%02d\\\"}\",\"user\":{\"uid\":5}},{}],\"hi\","
			         "[5,\"u\",0,0,0,10000,1,\"\"],[],[0]]}",
			         pad, decoys[d], k);
			decode_body(body, strlen(body), &g, &st);
			ck_assert_int_eq(g.n, 1);
			char want[8];
			snprintf(want, sizeof(want), "abc%02d", k);
			ck_assert_msg(strcmp(sget(g.msg[0], "msg_id"), want) == 0, "decoy %zu pad %d: %s", d, k,
			              sget(g.msg[0], "msg_id"));
			got_free(&g);
		}
	}
	/* the key cut short at the end of the string: no id (a synthetic one) */
	struct got g = {0};
	struct lt_platform_stats st;
	snprintf(body, sizeof(body),
	         "{\"cmd\":\"DANMU_MSG\",\"info\":[[0,1,25,16777215,1732212345001,99,0,\"x\",0,0,0,\"\",0,"
	         "\"{}\",\"{}\",{\"mode\":0,\"extra\":\"{\\\"id_str\\\":\"},{}],\"hi\","
	         "[5,\"u\",0,0,0,10000,1,\"\"],[],[0]]}");
	decode_body(body, strlen(body), &g, &st);
	ck_assert_int_eq(g.n, 1);
	ck_assert_int_eq(strlen(sget(g.msg[0], "msg_id")), 16);
	got_free(&g);
}
END_TEST

/* The id after the id_str key, of every length around the 32-byte steps of
 * the AVX2 span and the 128-byte id limit, of id characters with now and
 * then one that is not (a byte of each class edge): the same message with
 * the AVX2 loops as without; an id of id characters only, at most 128 long,
 * is the msg_id as it stands. */
START_TEST(danmu_id_str_any_length)
{
	static const char idc[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-";
	static const char notid[] = "./:@[`{\x7f\x80\xff ";
	uint64_t r = 88172645463325252ULL;
	char body[1024], id[160], out[2][512];

	for (int round = 0; round < 600; round++) {
		int len = round % 140;
		bool clean = true;
		for (int i = 0; i < len; i++) {
			r ^= r << 13, r ^= r >> 7, r ^= r << 17;
			if (r % 23 == 0) {
				id[i] = notid[(r >> 8) % (sizeof(notid) - 1)];
				clean = false;
			} else {
				id[i] = idc[(r >> 8) % (sizeof(idc) - 1)];
			}
		}
		id[len] = '\0';
		snprintf(body, sizeof(body),
		         "{\"cmd\":\"DANMU_MSG\",\"info\":[[0,1,25,16777215,1732212345001,99,0,\"x\",0,0,0,\"\",0,"
		         "\"{}\",\"{}\",{\"mode\":0,\"extra\":\"{\\\"id_str\\\":\\\"%s\\\",\\\"icon\\\":null}\","
		         "\"user\":{\"uid\":5}},{}],\"hi\",[5,\"u\",0,0,0,10000,1,\"\"],[],[0]]}",
		         id);
		for (int simd = 0; simd < 2; simd++) {
			struct got g = {0};
			struct lt_platform_stats st;
			lt_jscan_simd(simd);
			decode_body(body, strlen(body), &g, &st);
			ck_assert_int_eq(g.n, 1);
			snprintf(out[simd], sizeof(out[simd]), "%s", sget(g.msg[0], "msg_id"));
			if (clean && len >= 1 && len <= 128)
				ck_assert_str_eq(out[simd], id);
			got_free(&g);
		}
		ck_assert_msg(strcmp(out[0], out[1]) == 0, "len %d: %s vs %s", len, out[0], out[1]);
	}
	lt_jscan_simd(true);
}
END_TEST

START_TEST(gift_fields)
{
	struct got g = {0};
	const cJSON *m = one("SEND_GIFT/sample_7c1cf3.json", &g);
	ck_assert_str_eq(sget(m, "type"), "gift");
	ck_assert_str_eq(sget(m, "msg_id"), "1664028708120000001");
	ck_assert_str_eq(sget(oget(m, "user"), "id"), "77777777771");
	ck_assert_int_eq((int64_t)nget(m, "ts"), 1664028708000LL);
	const cJSON *x = oget(m, "extra");
	ck_assert_str_eq(sget(x, "gift_name"), "辣条");
	ck_assert_int_eq((int)nget(x, "count"), 1);
	ck_assert_int_eq((int)nget(x, "value"), 100);
	ck_assert_str_eq(sget(x, "currency"), "silver");
	got_free(&g);

	/* COMBO_SEND aggregates gifts already counted: other, no value */
	m = one("COMBO_SEND/normal.json", &g);
	ck_assert_str_eq(sget(m, "type"), "other");
	ck_assert_str_eq(sget(oget(m, "extra"), "cmd"), "COMBO_SEND");
	ck_assert(cJSON_GetObjectItemCaseSensitive(oget(m, "extra"), "value") == NULL);
	got_free(&g);
}
END_TEST

START_TEST(gift_v2_protobuf)
{
	Ltbili__SendGiftBroadcast sg = LTBILI__SEND_GIFT_BROADCAST__INIT;
	Ltbili__GiftItem a = LTBILI__GIFT_ITEM__INIT, b = LTBILI__GIFT_ITEM__INIT;
	Ltbili__GiftItem *list[2] = {&a, &b};
	uint8_t pb[512];
	struct lt_buf body = LT_BUF_INIT;
	struct got g = {0};
	struct lt_platform_stats st;

	sg.uid = 42;
	sg.uname = "小明";
	sg.n_gift_list = 2;
	sg.gift_list = list;
	a.gift_id = 31036, a.gift_name = "小花花", a.num = 3, a.price = 100, a.total_coin = 300;
	a.coin_type = "gold", a.tid = "1732212345000000001", a.timestamp = 1732212345;
	b.gift_id = 1, b.gift_name = "辣条", b.num = 2, b.price = 100, b.total_coin = 0;
	b.coin_type = "silver", b.tid = "1732212345000000002", b.timestamp = 1732212346;
	size_t n = ltbili__send_gift_broadcast__pack(&sg, pb);
	lt_buf_init(&body, 0);
	/* seen at data.data.pb too */
	lt_buf_puts(&body, "{\"cmd\":\"SEND_GIFT_V2\",\"data\":{\"data\":{\"pb\":\"");
	b64(&body, pb, n);
	lt_buf_puts(&body, "\"}}}");
	decode_body((const char *)body.data, body.len, &g, &st);
	ck_assert_int_eq(g.n, 2); /* gift_list is repeated: one message per item */
	ck_assert_str_eq(sget(g.msg[0], "msg_id"), "1732212345000000001");
	ck_assert_str_eq(sget(oget(g.msg[0], "user"), "id"), "42");
	ck_assert_int_eq((int)nget(oget(g.msg[0], "extra"), "count"), 3);
	ck_assert_int_eq((int)nget(oget(g.msg[0], "extra"), "value"), 300);
	ck_assert_int_eq((int64_t)nget(g.msg[0], "ts"), 1732212345000LL);
	ck_assert_str_eq(sget(g.msg[1], "msg_id"), "1732212345000000002");
	ck_assert_int_eq((int)nget(oget(g.msg[1], "extra"), "value"), 200); /* price x num */
	ck_assert_str_eq(sget(oget(g.msg[1], "extra"), "currency"), "silver");
	got_free(&g);

	/* not base64, not protobuf: counted, skipped */
	const char *bad[] = {"{\"cmd\":\"SEND_GIFT_V2\",\"data\":{\"pb\":\"!!!\"}}",
	                     "{\"cmd\":\"SEND_GIFT_V2\",\"data\":{\"pb\":\"/////w==\"}}",
	                     "{\"cmd\":\"INTERACT_WORD_V2\",\"data\":{\"pb\":\"CP////8=\"}}"};
	for (size_t i = 0; i < 3; i++) {
		decode_body(bad[i], strlen(bad[i]), &g, &st);
		ck_assert_int_eq(g.n, 0);
		ck_assert_int_eq(st.bad_messages, 1);
		got_free(&g);
	}
	lt_buf_free(&body);
}
END_TEST

/* SEND_GIFT_V2's base64 at every length mod 4 (padding 0, 1, 2) decodes to
 * the same message; a bad character at any position makes it a bad message. */
START_TEST(gift_v2_base64)
{
	char name[64];
	uint8_t pb[512];
	struct lt_buf body = LT_BUF_INIT;

	lt_buf_init(&body, 0);
	for (int len = 1; len < 40; len++) {
		Ltbili__SendGiftBroadcast sg = LTBILI__SEND_GIFT_BROADCAST__INIT;
		Ltbili__GiftItem a = LTBILI__GIFT_ITEM__INIT;
		Ltbili__GiftItem *list[1] = {&a};
		memset(name, 'n', (size_t)len);
		name[len] = '\0';
		sg.uid = 42, sg.uname = name, sg.n_gift_list = 1, sg.gift_list = list;
		a.gift_id = 1, a.gift_name = "g", a.num = 1, a.price = 100, a.tid = "77";
		size_t n = ltbili__send_gift_broadcast__pack(&sg, pb);
		lt_buf_reset(&body);
		lt_buf_puts(&body, "{\"cmd\":\"SEND_GIFT_V2\",\"data\":{\"pb\":\"");
		size_t at = body.len;
		b64(&body, pb, n);
		size_t b64_end = body.len;
		lt_buf_puts(&body, "\"}}");
		struct got g = {0};
		struct lt_platform_stats st;
		decode_body((const char *)body.data, body.len, &g, &st);
		ck_assert_int_eq(g.n, 1);
		ck_assert_str_eq(sget(oget(g.msg[0], "user"), "name"), name);
		ck_assert_str_eq(sget(g.msg[0], "msg_id"), "77");
		got_free(&g);
		for (size_t k = at; k < b64_end; k++) {
			uint8_t keep = body.data[k];
			body.data[k] = '!';
			decode_body((const char *)body.data, body.len, &g, &st);
			ck_assert_msg(g.n == 0 && st.bad_messages == 1, "len %d: '!' at %zu decoded", len, k - at);
			got_free(&g);
			body.data[k] = keep;
		}
	}
	lt_buf_free(&body);
}
END_TEST

/* A SEND_GIFT whose tid is an over-long run of stray UTF-8 continuation
 * bytes: the id clamps to nothing, so the message is counted bad instead of
 * going out without an id. */
START_TEST(gift_tid_clamped_to_nothing)
{
	struct got g = {0};
	struct lt_platform_stats st;
	char body[1024], tid[256];

	memset(tid, 0xa1, 200);
	tid[200] = '\0';
	snprintf(body, sizeof(body),
	         "{\"cmd\":\"SEND_GIFT\",\"data\":{\"giftId\":1,\"giftName\":\"g\",\"num\":1,\"price\":100,"
	         "\"tid\":\"%s\",\"uid\":5,\"uname\":\"u\"}}",
	         tid);
	decode_body(body, strlen(body), &g, &st);
	ck_assert_int_eq(g.n, 0);
	ck_assert_int_eq(st.bad_messages, 1);
	ck_assert_int_eq(st.messages, 0);
	got_free(&g);
}
END_TEST

START_TEST(interact_fields)
{
	struct got g = {0};
	const cJSON *m = one("INTERACT_WORD/follow.json", &g);
	ck_assert_str_eq(sget(m, "type"), "follow");
	ck_assert_int_eq((int64_t)nget(m, "ts"), 1665498661870LL); /* trigger_time ns -> ms */
	ck_assert_str_eq(sget(oget(m, "user"), "id"), "77777777771");
	got_free(&g);
	m = one("INTERACT_WORD/share.json", &g);
	ck_assert_str_eq(sget(m, "type"), "share");
	got_free(&g);

	size_t n;
	char *text = fixture("INTERACT_WORD_V2/decoded_medal.json", &n);
	cJSON *j = cJSON_Parse(text);
	uint8_t pb[1024];
	size_t pn = interact_pb_from_json(j, pb);
	struct lt_buf body = LT_BUF_INIT;
	lt_buf_init(&body, 0);
	lt_buf_puts(&body, "{\"cmd\":\"INTERACT_WORD_V2\",\"data\":{\"dmscore\":20,\"pb\":\"");
	b64(&body, pb, pn);
	lt_buf_puts(&body, "\"}}");
	struct lt_platform_stats st;
	decode_body((const char *)body.data, body.len, &g, &st);
	ck_assert_int_eq(g.n, 1);
	ck_assert_str_eq(sget(g.msg[0], "type"), "enter");
	ck_assert_str_eq(sget(oget(g.msg[0], "user"), "id"), "77777777771");
	ck_assert_str_eq(sget(oget(g.msg[0], "user"), "name"), "__MOCK_UNAME__");
	ck_assert_int_eq((int64_t)nget(g.msg[0], "ts"), (int64_t)(nget(j, "trigger_time") / 1e6));
	got_free(&g);
	lt_buf_free(&body);
	cJSON_Delete(j);
	free(text);
}
END_TEST

/* INTERACT_WORD_V2 payloads of odd shapes (duplicates, a sub-message
 * twice, wrong wire types,
 * unknown fields of every wire type, field 0, a NUL in a string, 10-byte
 * varints, truncation, an oversize payload): the message must be what
 * protobuf-c's unpack gives, or a bad message where it gives nothing. */
START_TEST(interact_v2_matches_protobuf_c)
{
	static const struct {
		const char *name;
		size_t n;
		const uint8_t b[48];
	} cases[] = {
#define PB(name, ...) {name, sizeof((const uint8_t[]){__VA_ARGS__}), {__VA_ARGS__}}
		PB("plain", 0x08, 0x2a, 0x12, 0x02, 'a', 'b', 0x28, 0x01, 0x38, 0x64),
		PB("uid twice", 0x08, 0x2a, 0x08, 0x2b, 0x12, 0x01, 'x', 0x28, 0x01),
		PB("uname twice", 0x12, 0x01, 'x', 0x12, 0x01, 'y', 0x28, 0x02),
		PB("uname a varint", 0x10, 0x05, 0x28, 0x01),
		PB("uid length-prefixed", 0x0a, 0x01, 0x01, 0x28, 0x01),
		PB("NUL in uname", 0x08, 0x07, 0x12, 0x03, 'a', 0, 'b', 0x28, 0x01),
		PB("uinfo fallbacks", 0x28, 0x03, 0xb2, 0x01, 0x08, 0x08, 0x09, 0x12, 0x04, 0x0a, 0x02, 'z', 'q'),
		PB("uinfo twice", 0x28, 0x01, 0xb2, 0x01, 0x02, 0x08, 0x09, 0xb2, 0x01, 0x04, 0x12, 0x02, 0x0a, 0x00),
		PB("base twice", 0xb2, 0x01, 0x08, 0x12, 0x02, 0x0a, 0x00, 0x12, 0x02, 0x0a, 0x00, 0x28, 0x01),
		PB("empty uinfo", 0x08, 0x00, 0xb2, 0x01, 0x00, 0x28, 0x06),
		PB("unknown 64-bit, 32-bit, bytes", 0x19, 1, 2, 3, 4, 5, 6, 7, 8, 0x25, 1, 2, 3, 4, 0x1a, 0x01, 0x00,
		   0x08, 0x05, 0x28, 0x01),
		PB("unknown group", 0x1b, 0x1c, 0x08, 0x05),
		PB("wire type 7", 0x1f, 0x08, 0x05),
		PB("field 0", 0x00, 0x01, 0x08, 0x05),
		PB("10-byte msg_type", 0x08, 0x01, 0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		PB("11-byte varint", 0x08, 0x01, 0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		PB("truncated string", 0x08, 0x01, 0x12, 0x05, 'a'),
		PB("truncated varint", 0x08, 0x81),
		PB("5-byte tag", 0xf8, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x08, 0x02),
		PB("long trigger", 0x08, 0x01, 0x28, 0x02, 0x78, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02),
#undef PB
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]) + 1; i++) {
		/* the last round: an oversize payload, a valid message padded by an
		 * unknown field */
		uint8_t big[6000];
		const uint8_t *p;
		size_t n;
		const char *name;
		if (i < sizeof(cases) / sizeof(cases[0])) {
			p = cases[i].b, n = cases[i].n, name = cases[i].name;
		} else {
			size_t pad = sizeof(big) - 10;
			memcpy(big, (const uint8_t[]){0x08, 0x05, 0x28, 0x01, 0x1a, (uint8_t)(0x80 | (pad & 0x7f)),
			                              (uint8_t)(pad >> 7)}, 7);
			memset(big + 7, 'p', pad);
			p = big, n = 7 + pad, name = "oversize";
		}
		struct lt_buf body = LT_BUF_INIT;
		lt_buf_init(&body, 0);
		lt_buf_puts(&body, "{\"cmd\":\"INTERACT_WORD_V2\",\"data\":{\"pb\":\"");
		b64(&body, p, n);
		lt_buf_puts(&body, "\"}}");
		struct got g = {0};
		struct lt_platform_stats st;
		decode_body((const char *)body.data, body.len, &g, &st);
		Ltbili__InteractWord *w = ltbili__interact_word__unpack(NULL, n, p);
		if (!w) {
			ck_assert_msg(g.n == 0 && st.bad_messages == 1, "%s: protobuf-c refuses it", name);
		} else {
			ck_assert_msg(g.n == 1, "%s: protobuf-c takes it", name);
			int64_t uid = (int64_t)w->uid;
			const char *uname = w->uname;
			if (w->uinfo) {
				if (!uid)
					uid = (int64_t)w->uinfo->uid;
				if (!uname[0] && w->uinfo->base_info)
					uname = w->uinfo->base_info->uname;
			}
			char ids[24];
			snprintf(ids, sizeof(ids), "%lld", (long long)uid);
			ck_assert_str_eq(sget(oget(g.msg[0], "user"), "id"), uid > 0 ? ids : "");
			ck_assert_str_eq(sget(oget(g.msg[0], "user"), "name"), uname);
			static const char *const types[] = {"other", "enter", "follow", "share", "follow", "follow", "like"};
			const char *ty = w->msg_type >= 0 && w->msg_type <= 6 ? types[w->msg_type] : "other";
			ck_assert_msg(!strcmp(sget(g.msg[0], "type"), ty), "%s: type %s", name, sget(g.msg[0], "type"));
			int64_t ts = w->trigger_time > 1000000000000000LL ? w->trigger_time / 1000000
			             : w->timestamp > 0 && w->timestamp < 100000000000LL ? w->timestamp * 1000
			                                                                : RECV_MS;
			ck_assert_int_eq((int64_t)nget(g.msg[0], "ts"), ts);
			ltbili__interact_word__free_unpacked(w, NULL);
		}
		got_free(&g);
		lt_buf_free(&body);
	}
}
END_TEST

START_TEST(superchat_guard_like_fields)
{
	struct got g = {0};
	const cJSON *m = one("SUPER_CHAT_MESSAGE/normal.json", &g);
	ck_assert_str_eq(sget(m, "type"), "superchat");
	ck_assert_str_eq(sget(m, "msg_id"), "4898587");
	ck_assert_str_eq(sget(m, "content"), "__MOCK_MESSAGE_CONTENT__");
	ck_assert_int_eq((int64_t)nget(m, "ts"), 1661528623000LL);
	ck_assert_int_eq((int)nget(oget(m, "extra"), "value"), 30000); /* 30 CNY in gold */
	ck_assert_str_eq(sget(oget(m, "user"), "name"), "__MOCK_UNAME__");
	got_free(&g);

	m = one("GUARD_BUY/normal.json", &g);
	ck_assert_str_eq(sget(m, "type"), "guard");
	ck_assert_str_eq(sget(m, "content"), "舰长");
	ck_assert_int_eq((int64_t)nget(m, "ts"), 1661604507000LL);
	ck_assert_int_eq((int)nget(oget(m, "extra"), "value"), 198000);
	ck_assert_int_eq((int)nget(oget(m, "extra"), "count"), 1);
	ck_assert_int_eq((int)nget(oget(m, "extra"), "guard_level"), 3);
	got_free(&g);

	m = one("LIKE_INFO_V3_CLICK/normal.json", &g);
	ck_assert_str_eq(sget(m, "type"), "like");
	ck_assert_str_eq(sget(m, "content"), "为主播点赞了");
	ck_assert_int_eq((int64_t)nget(m, "ts"), RECV_MS); /* no time of its own */
	got_free(&g);
}
END_TEST

/* GUARD_BUY has no id: its synthetic one is deterministic (the same message
 * twice has the same id) and tells apart one user's purchases in one second
 * that differ in anything but the time (num, price, level). */
START_TEST(guard_buy_synthetic_ids)
{
	static const char *const bodies[] = {
		"{\"cmd\":\"GUARD_BUY\",\"data\":{\"uid\":42,\"username\":\"u\",\"guard_level\":3,\"num\":1,"
		"\"price\":198000,\"gift_id\":10003,\"gift_name\":\"舰长\",\"start_time\":1661604507,"
		"\"end_time\":1661604507}}",
		"{\"cmd\":\"GUARD_BUY\",\"data\":{\"uid\":42,\"username\":\"u\",\"guard_level\":3,\"num\":1,"
		"\"price\":198000,\"gift_id\":10003,\"gift_name\":\"舰长\",\"start_time\":1661604507,"
		"\"end_time\":1661604507}}",
		"{\"cmd\":\"GUARD_BUY\",\"data\":{\"uid\":42,\"username\":\"u\",\"guard_level\":3,\"num\":3,"
		"\"price\":198000,\"gift_id\":10003,\"gift_name\":\"舰长\",\"start_time\":1661604507,"
		"\"end_time\":1661604507}}",
		"{\"cmd\":\"GUARD_BUY\",\"data\":{\"uid\":42,\"username\":\"u\",\"guard_level\":3,\"num\":1,"
		"\"price\":138000,\"gift_id\":10003,\"gift_name\":\"舰长\",\"start_time\":1661604507,"
		"\"end_time\":1661604507}}",
		"{\"cmd\":\"GUARD_BUY\",\"data\":{\"uid\":42,\"username\":\"u\",\"guard_level\":2,\"num\":1,"
		"\"price\":198000,\"gift_id\":10003,\"gift_name\":\"舰长\",\"start_time\":1661604507,"
		"\"end_time\":1661604507}}",
	};
	char ids[5][32];
	for (int i = 0; i < 5; i++) {
		struct got g = {0};
		struct lt_platform_stats st;
		decode_body(bodies[i], strlen(bodies[i]), &g, &st);
		ck_assert_int_eq(g.n, 1);
		ck_assert_str_eq(sget(g.msg[0], "type"), "guard");
		snprintf(ids[i], sizeof(ids[i]), "%s", sget(g.msg[0], "msg_id"));
		ck_assert_int_eq((int)strlen(ids[i]), 16);
		got_free(&g);
	}
	ck_assert_str_eq(ids[0], ids[1]); /* deterministic: replay and redelivery keep the id */
	for (int i = 2; i < 5; i++)
		for (int j = 0; j < i; j++)
			if (j != 1)
				ck_assert_str_ne(ids[i], ids[j]);
}
END_TEST

START_TEST(stats_and_live)
{
	struct got g = {0};
	const cJSON *m = one("ONLINE_RANK_COUNT/normal.json", &g);
	ck_assert_str_eq(sget(m, "type"), "room_stats");
	ck_assert_int_eq((int)nget(oget(m, "extra"), "online_count"), 1822);
	got_free(&g);
	m = one("WATCHED_CHANGE/1k.json", &g);
	ck_assert_int_eq((int)nget(oget(m, "extra"), "watched"), 1127);
	got_free(&g);

	/* LIVE arrives twice: the same msg_id both times */
	char id[64];
	m = one("LIVE/start_live.json", &g);
	ck_assert_str_eq(sget(m, "type"), "live_start");
	snprintf(id, sizeof(id), "%s", sget(m, "msg_id"));
	ck_assert_str_eq(id, "LIVE:293804801320940837");
	got_free(&g);
	m = one("LIVE/push_stream.json", &g);
	ck_assert_str_eq(sget(m, "msg_id"), id);
	got_free(&g);

	struct lt_platform_conn *c = new_conn();
	struct lt_buf f = LT_BUF_INIT;
	size_t n;
	char *body = fixture("PREPARING/normal.json", &n);
	unsigned ev;
	lt_buf_init(&f, 0);
	packet(&f, 0, 5, body, n);
	ck_assert_int_eq(feed(c, f.data, f.len, &g, &ev), LT_OK);
	ck_assert(ev & LT_PEV_LIVE_END);
	ck_assert_str_eq(sget(g.msg[0], "type"), "live_end");
	got_free(&g);
	free(body);
	lt_buf_free(&f);
	lt_platform_bilibili.destroy(c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Packets */

static const char *chat_body(int i, char *buf, size_t cap)
{
	snprintf(buf, cap,
	         "{\"cmd\":\"DANMU_MSG\",\"info\":[[0,1,25,1,%d,0,0,\"\",0,0,0,\"\",0,\"{}\",\"{}\",{\"extra\":"
	         "\"{\\\"id_str\\\":\\\"id%d\\\"}\"}],\"m%d\",[%d,\"u\"],[],[0]]}",
	         1000000 + i, i, i, 100 + i);
	return buf;
}

static void batch(struct lt_buf *inner, int first, int count)
{
	char b[512];
	for (int i = first; i < first + count; i++) {
		chat_body(i, b, sizeof(b));
		packet(inner, 0, 5, b, strlen(b));
	}
}

static void zlib_pack(struct lt_buf *out, const struct lt_buf *in)
{
	uLongf n = compressBound(in->len);
	uint8_t *z = malloc(n);
	ck_assert_int_eq(compress2(z, &n, in->data, in->len, 6), Z_OK);
	packet(out, 2, 5, z, n);
	free(z);
}

static void brotli_pack(struct lt_buf *out, const struct lt_buf *in)
{
	size_t n = BrotliEncoderMaxCompressedSize(in->len);
	uint8_t *z = malloc(n);
	ck_assert(BrotliEncoderCompress(5, 22, BROTLI_MODE_GENERIC, in->len, in->data, &n, z));
	packet(out, 3, 5, z, n);
	free(z);
}

static void expect_ids(struct got *g, int first, int count)
{
	ck_assert_int_eq(g->n, count);
	for (int i = 0; i < count; i++) {
		char want[16];
		snprintf(want, sizeof(want), "id%d", first + i);
		ck_assert_str_eq(sget(g->msg[i], "msg_id"), want);
	}
}

START_TEST(zlib_brotli_concat_nested)
{
	struct lt_buf inner = LT_BUF_INIT, frame = LT_BUF_INIT, mid = LT_BUF_INIT;
	struct got g = {0};
	struct lt_platform_conn *c = new_conn();
	lt_buf_init(&inner, 0);
	lt_buf_init(&frame, 0);
	lt_buf_init(&mid, 0);

	batch(&inner, 0, 5);
	zlib_pack(&frame, &inner);
	ck_assert_int_eq(feed(c, frame.data, frame.len, &g, NULL), LT_OK);
	expect_ids(&g, 0, 5);
	got_free(&g);

	lt_buf_reset(&frame);
	brotli_pack(&frame, &inner);
	ck_assert_int_eq(feed(c, frame.data, frame.len, &g, NULL), LT_OK);
	expect_ids(&g, 0, 5);
	got_free(&g);

	/* three top-level packets in one frame: raw, brotli, zlib */
	lt_buf_reset(&frame);
	batch(&frame, 0, 1);
	lt_buf_reset(&inner);
	batch(&inner, 1, 3);
	brotli_pack(&frame, &inner);
	lt_buf_reset(&inner);
	batch(&inner, 4, 2);
	zlib_pack(&frame, &inner);
	ck_assert_int_eq(feed(c, frame.data, frame.len, &g, NULL), LT_OK);
	expect_ids(&g, 0, 6);
	got_free(&g);

	/* brotli inside zlib inside brotli: 3 levels, the limit */
	lt_buf_reset(&inner);
	batch(&inner, 0, 2);
	brotli_pack(&mid, &inner);
	lt_buf_reset(&inner);
	zlib_pack(&inner, &mid);
	lt_buf_reset(&frame);
	brotli_pack(&frame, &inner);
	ck_assert_int_eq(feed(c, frame.data, frame.len, &g, NULL), LT_OK);
	expect_ids(&g, 0, 2);
	got_free(&g);

	/* one level more is refused, counted, survived */
	lt_buf_reset(&mid);
	zlib_pack(&mid, &frame);
	ck_assert_int_eq(feed(c, mid.data, mid.len, &g, NULL), LT_EPROTO);
	ck_assert_int_eq(g.n, 0);
	struct lt_platform_stats st;
	lt_platform_bilibili.stats(c, &st);
	ck_assert_int_eq(st.bad_frames, 1);

	lt_buf_free(&inner);
	lt_buf_free(&frame);
	lt_buf_free(&mid);
	lt_platform_bilibili.destroy(c);
}
END_TEST

/* A brotli stream longer than its window comes out of the decoder in pieces
 * (the ring buffer wraps): they are put together, not read in place. */
START_TEST(brotli_longer_than_window)
{
	struct lt_buf inner = LT_BUF_INIT, frame = LT_BUF_INIT;
	struct got g = {0};
	struct lt_platform_conn *c = new_conn();
	lt_buf_init(&inner, 0);
	lt_buf_init(&frame, 0);

	batch(&inner, 0, 50);
	ck_assert_uint_gt(inner.len, 4 * 1024);
	size_t n = BrotliEncoderMaxCompressedSize(inner.len);
	uint8_t *z = malloc(n);
	ck_assert(BrotliEncoderCompress(5, 10, BROTLI_MODE_GENERIC, inner.len, inner.data, &n, z)); /* 1 KB window */
	packet(&frame, 3, 5, z, n);
	free(z);
	ck_assert_int_eq(feed(c, frame.data, frame.len, &g, NULL), LT_OK);
	expect_ids(&g, 0, 50);
	got_free(&g);
	/* and a short one after it, on the same connection */
	lt_buf_reset(&inner);
	batch(&inner, 0, 3);
	lt_buf_reset(&frame);
	brotli_pack(&frame, &inner);
	ck_assert_int_eq(feed(c, frame.data, frame.len, &g, NULL), LT_OK);
	expect_ids(&g, 0, 3);
	got_free(&g);
	struct lt_platform_stats st;
	lt_platform_bilibili.stats(c, &st);
	ck_assert_int_eq(st.bad_frames, 0);

	lt_buf_free(&inner);
	lt_buf_free(&frame);
	lt_platform_bilibili.destroy(c);
}
END_TEST

START_TEST(bad_packets)
{
	struct lt_platform_conn *c = new_conn();
	struct got g = {0};
	struct lt_buf f = LT_BUF_INIT;
	char b[512];
	lt_buf_init(&f, 0);

	/* empty and short frames */
	ck_assert_int_eq(feed(c, "", 0, &g, NULL), LT_OK);
	ck_assert_int_eq(feed(c, "\0\0\0\x10\0\x10\0", 7, &g, NULL), LT_EPROTO);
	/* pack_len beyond the frame, pack_len below the header, header_len < 16 */
	batch(&f, 0, 1);
	ck_assert_int_eq(feed(c, f.data, f.len - 1, &g, NULL), LT_EPROTO);
	uint8_t h[16] = {0, 0, 0, 8, 0, 16, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0};
	ck_assert_int_eq(feed(c, h, 16, &g, NULL), LT_EPROTO);
	uint8_t h2[16] = {0, 0, 0, 16, 0, 8, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0};
	ck_assert_int_eq(feed(c, h2, 16, &g, NULL), LT_EPROTO);
	ck_assert_int_eq(g.n, 0);
	/* an unknown version: that packet skipped, the next one still decoded */
	lt_buf_reset(&f);
	chat_body(7, b, sizeof(b));
	packet(&f, 9, 5, b, strlen(b));
	batch(&f, 8, 1);
	ck_assert_int_eq(feed(c, f.data, f.len, &g, NULL), LT_EPROTO);
	expect_ids(&g, 8, 1);
	got_free(&g);
	/* garbage compressed bodies */
	lt_buf_reset(&f);
	packet(&f, 2, 5, "not zlib at all", 15);
	ck_assert_int_eq(feed(c, f.data, f.len, &g, NULL), LT_EPROTO);
	lt_buf_reset(&f);
	packet(&f, 3, 5, "\xff\xff\xff\xff", 4);
	ck_assert_int_eq(feed(c, f.data, f.len, &g, NULL), LT_EPROTO);
	/* a body that is not JSON, or JSON without a cmd: counted as bad messages */
	lt_buf_reset(&f);
	packet(&f, 0, 5, "{\"cmd\":", 7);
	packet(&f, 0, 5, "[1,2]", 5);
	packet(&f, 0, 5, "{\"info\":[]}", 11);
	ck_assert_int_eq(feed(c, f.data, f.len, &g, NULL), LT_OK);
	ck_assert_int_eq(g.n, 0);
	struct lt_platform_stats st;
	lt_platform_bilibili.stats(c, &st);
	ck_assert_int_eq(st.bad_messages, 3);
	ck_assert_int_eq(st.bad_frames, 7);
	lt_buf_free(&f);
	lt_platform_bilibili.destroy(c);
}
END_TEST

START_TEST(inflate_bomb_capped)
{
	/* 32 MB of zeros compress to a few KB; the cap is 16 MB */
	size_t big = 32u << 20;
	uint8_t *zeros = calloc(1, big);
	uLongf zn = compressBound(big);
	uint8_t *z = malloc(zn);
	struct lt_buf f = LT_BUF_INIT;
	struct got g = {0};
	struct lt_platform_conn *c = new_conn();
	ck_assert_int_eq(compress2(z, &zn, zeros, big, 9), Z_OK);
	lt_buf_init(&f, 0);
	packet(&f, 2, 5, z, zn);
	ck_assert_int_eq(feed(c, f.data, f.len, &g, NULL), LT_EPROTO);
	ck_assert_int_eq(g.n, 0);
	/* and the connection goes on */
	lt_buf_reset(&f);
	batch(&f, 0, 1);
	ck_assert_int_eq(feed(c, f.data, f.len, &g, NULL), LT_OK);
	expect_ids(&g, 0, 1);
	got_free(&g);
	free(zeros);
	free(z);
	lt_buf_free(&f);
	lt_platform_bilibili.destroy(c);
}
END_TEST

START_TEST(heartbeat_and_auth)
{
	struct lt_platform_conn *c = new_conn();
	struct got g = {0};
	struct lt_buf f = LT_BUF_INIT;
	unsigned ev;
	lt_buf_init(&f, 0);
	lt_buf_init(&g.last_sent, 0);

	/* op 3: pack_len 20, then the echo of "[object Object]" */
	static const uint8_t hb[] = {0, 0, 0, 0x14, 0, 0x10, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1,
	                             '[', 'o', 'b', 'j', 'e', 'c', 't', ' ', 'O', 'b', 'j', 'e', 'c', 't', ']'};
	ck_assert_int_eq(feed(c, hb, sizeof(hb), &g, &ev), LT_OK);
	ck_assert(ev & LT_PEV_HEARTBEAT);
	ck_assert_int_eq(g.n, 0);
	/* followed by a real packet, that one is read */
	lt_buf_append(&f, hb, 20);
	batch(&f, 3, 1);
	ck_assert_int_eq(feed(c, f.data, f.len, &g, &ev), LT_OK);
	expect_ids(&g, 3, 1);
	got_free(&g);
	lt_buf_init(&g.last_sent, 0);
	struct lt_platform_stats st;
	lt_platform_bilibili.stats(c, &st);
	ck_assert_int_eq(st.bad_frames, 0);
	ck_assert_int_eq(st.heartbeats, 2);

	/* auth ok: authed, and one heartbeat sent at once */
	lt_buf_reset(&f);
	lt_bili_pack(&f, 1, 8, 1, "{\"code\":0}", 10);
	ck_assert_int_eq(feed(c, f.data, f.len, &g, &ev), LT_OK);
	ck_assert(ev & LT_PEV_AUTHED);
	ck_assert_int_eq(g.sent, 1);
	ck_assert_int_ge(g.last_sent.len, 16);
	ck_assert_int_eq(g.last_sent.data[11], 2); /* op 2 */
	/* auth refused */
	lt_buf_reset(&f);
	lt_bili_pack(&f, 1, 8, 1, "{\"code\":-101}", 13);
	ck_assert_int_eq(feed(c, f.data, f.len, &g, &ev), LT_EAUTH);
	ck_assert(ev & LT_PEV_RECONNECT);
	ck_assert(!(ev & LT_PEV_AUTHED));

	/* the heartbeat frame itself */
	struct lt_platform_io io = {.emit = on_emit, .send = on_send, .ud = &g};
	ck_assert_int_eq(lt_platform_bilibili.heartbeat(c, &io), LT_OK);
	ck_assert_int_eq(g.last_sent.len, 16 + 15);
	ck_assert_int_eq(lt_platform_bilibili.heartbeat_ms(c), 30000);
	got_free(&g);
	lt_buf_free(&f);
	lt_platform_bilibili.destroy(c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* WBI and the bootstrap */

START_TEST(wbi_vector)
{
	char mixin[33];
	struct lt_buf q = LT_BUF_INIT;
	ck_assert_int_eq(lt_bili_wbi_mixin("7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45", mixin),
	                 LT_OK);
	ck_assert_str_eq(mixin, "ea1db124af3c7062474693fa704f4ff8");
	ck_assert_int_eq(lt_bili_wbi_mixin("short", "4932caff0ff746eab6f01bf08b70ac45", mixin), LT_EINVAL);
	/* the documented example: sorted, wts added, md5 of query + mixin */
	lt_buf_init(&q, 0);
	ck_assert_int_eq(lt_bili_wbi_sign(&q, "foo=114&bar=514&zab=1919810", mixin, 1702204169), LT_OK);
	ck_assert_str_eq(lt_buf_cstr(&q),
	                 "bar=514&foo=114&wts=1702204169&zab=1919810&w_rid=8f6f2b5b3d485fe1886cec6a0be8c5d4");
	/* values are encoded upper-case and stripped of !'()* */
	lt_buf_reset(&q);
	ck_assert_int_eq(lt_bili_wbi_sign(&q, "b=a b&a=(x)!*'y/", mixin, 1), LT_OK);
	ck_assert_ptr_nonnull(strstr(lt_buf_cstr(&q), "a=xy%2F&b=a%20b&wts=1&w_rid="));
	lt_buf_free(&q);
}
END_TEST

static void respond(struct lt_platform_conn *c, int status, const char *body, int want)
{
	struct lt_http_resp r = {.status = status, .body = body, .body_len = strlen(body)};
	ck_assert_int_eq(lt_platform_bilibili.http_done(c, &r), want);
}

static const char *next_url(struct lt_platform_conn *c)
{
	struct lt_http_req req;
	int rc = lt_platform_bilibili.http_next(c, &req);
	if (rc == LT_EEOF)
		return NULL;
	ck_assert_int_eq(rc, LT_OK);
	ck_assert_str_eq(req.method, "GET");
	ck_assert_ptr_nonnull(strstr(req.headers, "User-Agent: "));
	return req.url;
}

#define NAV_OK                                                                                          \
	"{\"code\":-101,\"data\":{\"isLogin\":false,\"wbi_img\":{\"img_url\":"                               \
	"\"https://i0.hdslb.com/bfs/wbi/7cd084941338484aae1ad9425b84077c.png\",\"sub_url\":"                \
	"\"https://i0.hdslb.com/bfs/wbi/4932caff0ff746eab6f01bf08b70ac45.png\"}}}"
#define DANMU_OK                                                                                        \
	"{\"code\":0,\"data\":{\"token\":\"tok+1\",\"host_list\":[{\"host\":\"h1.example\",\"port\":2243,"   \
	"\"wss_port\":2245,\"ws_port\":2244},{\"host\":\"h2.example\",\"wss_port\":443}]}}"

START_TEST(bootstrap_steps)
{
	int64_t now = 1732212345000LL;
	struct lt_clock clk = lt_clock_manual(&now);
	struct lt_platform_conf conf = {.room = "510", .api_base = "http://127.0.0.1:9", .clock = &clk};
	struct lt_platform_conn *c = NULL;
	struct lt_ws_target t;
	const char *u;

	ck_assert_int_eq(lt_platform_bilibili.create(&conf, &c), LT_OK);
	ck_assert_int_eq(lt_platform_bilibili.begin(c, 0), LT_OK);
	u = next_url(c);
	ck_assert_str_eq(u, "http://127.0.0.1:9/room/v1/Room/get_info?room_id=510");
	respond(c, 200, "{\"code\":0,\"data\":{\"room_id\":21452505,\"short_id\":510,\"uid\":7}}", LT_OK);
	ck_assert_str_eq(lt_platform_bilibili.room(c), "21452505");
	u = next_url(c);
	ck_assert_str_eq(u, "http://127.0.0.1:9/x/frontend/finger/spi");
	respond(c, 200, "{\"code\":0,\"data\":{\"b_3\":\"BUVID-3\",\"b_4\":\"x\"}}", LT_OK);
	u = next_url(c);
	ck_assert_str_eq(u, "http://127.0.0.1:9/x/web-interface/nav");
	respond(c, 200, NAV_OK, LT_OK);
	u = next_url(c);
	ck_assert_ptr_nonnull(strstr(u, "/xlive/web-room/v1/index/getDanmuInfo?id=21452505&type=0&"
	                                "web_location=444.8&wts=1732212345&w_rid="));
	/* risk control: try again later, with new keys */
	respond(c, 200, "{\"code\":-352,\"message\":\"-352\"}", LT_EAGAIN);
	ck_assert_int_eq(lt_platform_bilibili.begin(c, 1), LT_OK);
	u = next_url(c);
	ck_assert_str_eq(u, "http://127.0.0.1:9/x/web-interface/nav");
	respond(c, 200, NAV_OK, LT_OK);
	u = next_url(c);
	ck_assert_ptr_nonnull(strstr(u, "getDanmuInfo"));
	respond(c, 200, DANMU_OK, LT_OK);
	ck_assert_ptr_null(next_url(c));
	ck_assert_int_eq(lt_platform_bilibili.ws_target(c, &t), LT_OK);
	ck_assert_str_eq(t.url, "wss://h1.example:2245/sub");

	/* the auth frame carries the real room, the buvid and the token */
	struct got g = {0};
	struct lt_platform_io io = {.emit = on_emit, .send = on_send, .ud = &g};
	lt_buf_init(&g.last_sent, 0);
	ck_assert_int_eq(lt_platform_bilibili.on_open(c, &io), LT_OK);
	ck_assert_int_eq(g.sent, 1);
	ck_assert_int_eq(g.last_sent.data[11], 7); /* op 7 */
	cJSON *auth = cJSON_ParseWithLength((const char *)g.last_sent.data + 16, g.last_sent.len - 16);
	ck_assert_ptr_nonnull(auth);
	ck_assert_int_eq((int64_t)nget(auth, "roomid"), 21452505);
	ck_assert_int_eq((int)nget(auth, "protover"), 3);
	ck_assert_str_eq(sget(auth, "key"), "tok+1");
	ck_assert_str_eq(sget(auth, "buvid"), "BUVID-3");
	cJSON_Delete(auth);
	got_free(&g);

	/* a failed connection moves to the next host without HTTP */
	ck_assert_int_eq(lt_platform_bilibili.begin(c, 1), LT_OK);
	ck_assert_ptr_null(next_url(c));
	ck_assert_int_eq(lt_platform_bilibili.ws_target(c, &t), LT_OK);
	ck_assert_str_eq(t.url, "wss://h2.example:443/sub");
	/* every third failure fetches a new token; the WBI keys are cached */
	ck_assert_int_eq(lt_platform_bilibili.begin(c, 3), LT_OK);
	u = next_url(c);
	ck_assert_ptr_nonnull(strstr(u, "getDanmuInfo"));
	respond(c, 200, DANMU_OK, LT_OK);
	/* ... until they expire (12 h) */
	now += 12LL * 3600 * 1000;
	ck_assert_int_eq(lt_platform_bilibili.begin(c, 6), LT_OK);
	ck_assert_str_eq(next_url(c), "http://127.0.0.1:9/x/web-interface/nav");
	/* HTTP errors: 412 and 5xx retry later, a missing room is not found */
	respond(c, 412, "", LT_EAGAIN);
	lt_platform_bilibili.destroy(c);

	conf.room = "999";
	ck_assert_int_eq(lt_platform_bilibili.create(&conf, &c), LT_OK);
	ck_assert_int_eq(lt_platform_bilibili.begin(c, 0), LT_OK);
	next_url(c);
	respond(c, 200, "{\"code\":60004,\"msg\":\"no room\"}", LT_ENOTFOUND);
	respond(c, 200, "not json", LT_EPROTO);
	lt_platform_bilibili.destroy(c);

	/* bad settings */
	conf.room = "12a";
	ck_assert_int_eq(lt_platform_bilibili.create(&conf, &c), LT_EINVAL);
	conf.room = NULL;
	ck_assert_int_eq(lt_platform_bilibili.create(&conf, &c), LT_EINVAL);
	lt_platform_bilibili.destroy(NULL);
}
END_TEST

/* An unmapped command keeps its data in extra exactly as cJSON would print
 * it: the copy of text already in that form and cJSON's re-print of the rest
 * must not differ, whitespace, escapes, odd numbers and malformed data
 * included. */
static void on_emit_extra(void *ud, const struct lt_msg *m)
{
	struct lt_buf *x = ud;
	lt_buf_reset(x);
	lt_buf_append(x, m->extra.p, m->extra.len);
}

START_TEST(other_data_as_cjson_prints_it)
{
	static const char *const datas[] = {
		"{\"roomid\":21452505,\"fans\":100501,\"red_notice\":-1,\"fans_club\":1000,\"seq\":15}",
		"{}", "[]", "[[],{},[{}]]", "{\"a\":[1,2,{\"b\":null}],\"c\":true,\"d\":false}", "0", "-5",
		"\"plain\"", "\"中文\"", "123456789012345", "1234567890123456", "-0", "007", "1.5", "1e3",
		"2147483648", "-2147483649", "{\"a\": 1}", " {\"a\":1}", "{\"a\":1} ", "[1 ,2]",
		"\"a\\\"b\"", "\"a\\/b\"", "\"\\u4e2d\"", "\"tab\there\"", "{\"k\\n\":1}", "{\"a\":1,\"a\":2}",
		"[1,]", "{\"a\":}", "{\"a\" :1}", "[tru]", "[nul]", "[-]", "[1-2]", "{,}", "[,1]",
		"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
		"{\"x\":\"\\u0001\"}", "[1.0]", "[100000000000000000000]", "[1E2]", "[0]", "[-1]",
	};
	struct lt_buf body = LT_BUF_INIT, f = LT_BUF_INIT, x = LT_BUF_INIT, want = LT_BUF_INIT;

	lt_buf_init(&body, 0);
	lt_buf_init(&f, 0);
	lt_buf_init(&x, 0);
	lt_buf_init(&want, 0);
	for (size_t i = 0; i < sizeof(datas) / sizeof(datas[0]); i++) {
		struct lt_platform_conn *c = new_conn();
		struct lt_platform_io io = {.emit = on_emit_extra, .ud = &x};
		unsigned ev = 0;
		lt_buf_reset(&body);
		lt_buf_printf(&body, "{\"cmd\":\"X_OTHER\",\"data\":%s}", datas[i]);
		lt_buf_reset(&f);
		packet(&f, 0, 5, body.data, body.len);
		lt_buf_reset(&x);
		ck_assert_int_eq(lt_platform_bilibili.on_frame(c, f.data, f.len, RECV_MS, &io, &ev), LT_OK);
		lt_buf_reset(&want);
		lt_buf_puts(&want, "{\"cmd\":\"X_OTHER\"");
		cJSON *j = cJSON_Parse(datas[i]);
		char *s = j ? cJSON_PrintUnformatted(j) : NULL;
		if (s)
			lt_buf_printf(&want, ",\"data\":%s", s);
		lt_buf_puts(&want, "}");
		cJSON_free(s);
		cJSON_Delete(j);
		if (x.len) /* the body parsed as far as the data: the extras agree */
			ck_assert_msg(x.len == want.len && !memcmp(x.data, want.data, x.len), "%s: got %.*s want %s",
			              datas[i], (int)x.len, (const char *)x.data, lt_buf_cstr(&want));
		lt_platform_bilibili.destroy(c);
	}
	lt_buf_free(&body);
	lt_buf_free(&f);
	lt_buf_free(&x);
	lt_buf_free(&want);
}
END_TEST

START_TEST(registry)
{
	ck_assert_ptr_eq(lt_platform_find("bilibili"), &lt_platform_bilibili);
	ck_assert_ptr_null(lt_platform_find("myspace"));
	ck_assert_ptr_null(lt_platform_find(NULL));
	ck_assert_str_eq(lt_platform_names()[0], "bilibili");
}
END_TEST

/* Every test twice: with jscan's AVX2 loops (and the decoder's own) where
 * the CPU has them, and with the SSE2 ones they stand in for. */
static void simd_on(void)
{
	lt_jscan_simd(true);
}

static void simd_off(void)
{
	lt_jscan_simd(false);
}

int main(void)
{
	Suite *s = suite_create("bilibili");
	for (int i = 0; i < 2; i++) {
		TCase *tc = tcase_create(i ? "sse2" : "core");
		tcase_set_timeout(tc, 60);
		tcase_add_checked_fixture(tc, i ? simd_off : simd_on, NULL);
		tcase_add_test(tc, every_fixture);
		tcase_add_test(tc, danmu_fields);
		tcase_add_test(tc, danmu_shapes);
		tcase_add_test(tc, danmu_suffix_id_str_anonymous);
		tcase_add_test(tc, danmu_id_str_offsets);
		tcase_add_test(tc, gift_v2_base64);
		tcase_add_test(tc, gift_tid_clamped_to_nothing);
		tcase_add_test(tc, gift_fields);
		tcase_add_test(tc, gift_v2_protobuf);
		tcase_add_test(tc, interact_fields);
		tcase_add_test(tc, interact_v2_matches_protobuf_c);
		tcase_add_test(tc, superchat_guard_like_fields);
		tcase_add_test(tc, guard_buy_synthetic_ids);
		tcase_add_test(tc, stats_and_live);
		tcase_add_test(tc, zlib_brotli_concat_nested);
		tcase_add_test(tc, brotli_longer_than_window);
		tcase_add_test(tc, bad_packets);
		tcase_add_test(tc, inflate_bomb_capped);
		tcase_add_test(tc, heartbeat_and_auth);
		tcase_add_test(tc, wbi_vector);
		tcase_add_test(tc, bootstrap_steps);
		tcase_add_test(tc, other_data_as_cjson_prints_it);
		tcase_add_test(tc, registry);
		tcase_add_test(tc, danmu_id_str_any_length);
		suite_add_tcase(s, tc);
	}
	return lt_test_run_suite(s);
}
