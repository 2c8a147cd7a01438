/* SPDX-License-Identifier: MIT */
/*
 * emu_bilibili: the Bilibili module of livetap-emu, as faithful to the real
 * servers as ../shared/brief/protocols/bilibili.md lets it be.
 *
 * HTTP (one port stands for api.live.bilibili.com, api.bilibili.com and
 * www.bilibili.com): room resolution (get_info, room_init, mobileRoomInit;
 * ids under 10000 are short ids of room 21450000+id; 0, 404404 and
 * non-digits are 60004), the buvid3 cookie ("/" sets it; finger/spi and getbuvid return it),
 * nav with wbi_img (-101 logged out, keys from the WBI doc's test vector) and
 * getDanmuInfo, which answers -352 unless buvid3 is in the cookie and w_rid is
 * the WBI signature of the other parameters; the token it hands out is the
 * room's key for the WebSocket auth. --wbi-rotate S changes the WBI keys and
 * the tokens every S seconds: a client must then fail the auth, fetch a new
 * token, get -352 with its cached keys, drop them and fetch nav again.
 *
 * WebSocket /sub: auth (op 7) first within 5 s, key checked ({"code":-101}
 * and close if wrong), reply op 8 {"code":0}; uid 0 gets LOG_IN_NOTICE and
 * from then masked names and uid 0 in DANMU_MSG and INTERACT_WORD_V2 (unless
 * --no-mask). Heartbeats (op 2) get op 3 with pack_len 20, the popularity 1
 * and the echo of the client's body after the packet (the real server's
 * quirk). Messages go out as op 5 in the version auth's protover asked for
 * (3 brotli, 2 zlib, else raw), several packets per frame; --mix-versions
 * varies the version per frame, puts two top-level packets in one frame now
 * and then, nests a zlib packet inside a brotli one and sends a quarter of
 * the gifts as SEND_GIFT_V2 (protobuf) instead of SEND_GIFT.
 *
 * The packet encoder and the WBI check are written here again on purpose,
 * independently of fetcher/platform_bilibili.c, so that the emulator checks
 * the fetcher instead of agreeing with it by construction.
 */
#include <brotli/encode.h>
#include <inttypes.h>
#include <libwebsockets.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/msg.h"
#include "tests/emu/emu.h"

#define BILI_HDR 16
#define BILI_IMG_KEY "7cd084941338484aae1ad9425b84077c"
#define BILI_SUB_KEY "4932caff0ff746eab6f01bf08b70ac45"
#define BILI_SHORT_BASE 21450000ULL
#define BILI_STREAMER_UID 1877212ULL
#define BILI_NO_SUCH_ROOM 404404ULL /* answered with 60004, for tests */

static const uint8_t mixin_tab[64] = {
	46, 47, 18, 2,  53, 8,  23, 32, 15, 50, 10, 31, 58, 3,  45, 35, 27, 43, 5,  49, 33, 9,
	42, 19, 29, 28, 14, 39, 12, 38, 41, 13, 37, 48, 7,  16, 24, 55, 40, 61, 26, 17, 0,  1,
	60, 51, 30, 4,  22, 25, 54, 21, 56, 59, 6,  63, 57, 62, 11, 36, 20, 34, 44, 52,
};

struct bili {
	struct emu *e;
	char img_key[33], sub_key[33];
	char mixin[33];
	int64_t wbi_epoch;   /* which key set is current (--wbi-rotate) */
	char buvid[64];
	uint64_t n_352, n_auth_ok, n_auth_bad;
};

struct bili_conn {
	bool authed;
	bool masked;   /* LOG_IN_NOTICE sent: names masked from now on */
	int protover;
	uint64_t uid;
	uint64_t frames;
	char room[32];
};

/* ---- small encoders ---------------------------------------------------- */

static void md5_hex(const void *p, size_t n, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	out[0] = 0;
	if (!EVP_Digest(p, n, md, &len, EVP_md5(), NULL) || len != 16)
		return;
	for (unsigned i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void pack(struct lt_buf *b, uint16_t ver, uint32_t op, uint32_t seq, const void *body, size_t n)
{
	lt_buf_u32be(b, (uint32_t)(BILI_HDR + n));
	lt_buf_u16be(b, BILI_HDR);
	lt_buf_u16be(b, ver);
	lt_buf_u32be(b, op);
	lt_buf_u32be(b, seq);
	lt_buf_append(b, body, n);
}

static void pack_zlib(struct lt_buf *b, const struct lt_buf *inner)
{
	uLongf cap = compressBound(inner->len);
	uint8_t *z = malloc(cap);

	if (!z || compress2(z, &cap, inner->data, inner->len, 6) != Z_OK) {
		free(z);
		b->err = b->err ? b->err : LT_ENOMEM;
		return;
	}
	pack(b, 2, 5, 0, z, cap);
	free(z);
}

static void pack_brotli(struct lt_buf *b, const struct lt_buf *inner)
{
	size_t cap = BrotliEncoderMaxCompressedSize(inner->len);
	uint8_t *z = malloc(cap ? cap : 64);

	if (!cap)
		cap = 64;
	if (!z || !BrotliEncoderCompress(5, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_TEXT, inner->len, inner->data, &cap, z)) {
		free(z);
		b->err = b->err ? b->err : LT_ENOMEM;
		return;
	}
	pack(b, 3, 5, 0, z, cap);
	free(z);
}

static void pb_varint(struct lt_buf *b, uint64_t v)
{
	while (v >= 0x80) {
		lt_buf_u8(b, (uint8_t)(v | 0x80));
		v >>= 7;
	}
	lt_buf_u8(b, (uint8_t)v);
}

static void pb_uint(struct lt_buf *b, unsigned field, uint64_t v)
{
	pb_varint(b, (uint64_t)field << 3);
	pb_varint(b, v);
}

static void pb_bytes(struct lt_buf *b, unsigned field, const void *p, size_t n)
{
	pb_varint(b, ((uint64_t)field << 3) | 2);
	pb_varint(b, n);
	lt_buf_append(b, p, n);
}

static void b64(struct lt_buf *out, const uint8_t *p, size_t n)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
		lt_buf_putc(out, t[v >> 18 & 63]);
		lt_buf_putc(out, t[v >> 12 & 63]);
		lt_buf_putc(out, i + 1 < n ? t[v >> 6 & 63] : '=');
		lt_buf_putc(out, i + 2 < n ? t[v & 63] : '=');
	}
}

static void json_lstr(struct lt_buf *b, struct lt_str s)
{
	lt_json_str(b, s.p ? s.p : "", s.len);
}

/* ---- HTTP -------------------------------------------------------------- */

/* The value of key in a decoded "k=v&k2=v2" query, copied into out. */
static bool query_get(const char *q, const char *key, char *out, size_t cap)
{
	size_t kl = strlen(key);

	while (q && *q) {
		const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q);
		if ((size_t)(end - q) > kl && !strncmp(q, key, kl) && q[kl] == '=') {
			snprintf(out, cap, "%.*s", (int)(end - q - (ptrdiff_t)kl - 1), q + kl + 1);
			return true;
		}
		q = amp ? amp + 1 : NULL;
	}
	return false;
}

static bool parse_room(const char *s, uint64_t *real, uint64_t *short_id)
{
	char *end;
	unsigned long long v;

	if (!*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 15)
		return false;
	v = strtoull(s, &end, 10);
	if (!v || v == BILI_NO_SUCH_ROOM)
		return false;
	*short_id = v < 10000 ? v : 0;
	*real = v < 10000 ? BILI_SHORT_BASE + v : v;
	return true;
}

static void room_info(struct lt_buf *b, const char *id, bool init_shape)
{
	uint64_t real, sid;

	if (!parse_room(id, &real, &sid)) {
		lt_buf_puts(b, "{\"code\":60004,\"msg\":\"房间不存在\",\"message\":\"房间不存在\",\"data\":{}}");
		return;
	}
	lt_buf_printf(b,
	              "{\"code\":0,\"msg\":\"ok\",\"message\":\"ok\",\"data\":{\"room_id\":%" PRIu64 ",\"short_id\":%" PRIu64
	              ",\"uid\":%llu,\"live_status\":1,%s\"title\":\"【livetap-emu】陪你聊天\",\"area_name\":\"聊天电台\"}}",
	              real, sid, BILI_STREAMER_UID,
	              init_shape ? "\"need_p2p\":0,\"hidden_till\":0,\"is_hidden\":false,\"is_locked\":false," : "");
}

/* Strip !'()* and percent-encode like encodeURIComponent (uppercase hex). */
static void wbi_encode(struct lt_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (strchr("!'()*", c))
			continue;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("-_.~", c))
			lt_buf_putc(b, (char)c);
		else
			lt_buf_printf(b, "%%%02X", c);
	}
}

struct kv {
	char k[64];
	char v[256];
};

static int kv_cmp(const void *a, const void *b)
{
	return strcmp(((const struct kv *)a)->k, ((const struct kv *)b)->k);
}

/* True if w_rid in the query is the WBI signature of the other parameters. */
static bool wbi_ok(const struct bili *s, const char *query)
{
	struct kv kv[24];
	size_t n = 0;
	char w_rid[64] = "", md[33];
	struct lt_buf b = LT_BUF_INIT;
	bool wts = false, ok;

	for (const char *q = query; q && *q && n < 24;) {
		const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q), *eq = memchr(q, '=', (size_t)(end - q));
		if (eq && eq - q < 64 && end - eq - 1 < 256) {
			snprintf(kv[n].k, sizeof(kv[n].k), "%.*s", (int)(eq - q), q);
			snprintf(kv[n].v, sizeof(kv[n].v), "%.*s", (int)(end - eq - 1), eq + 1);
			if (!strcmp(kv[n].k, "w_rid"))
				snprintf(w_rid, sizeof(w_rid), "%s", kv[n].v);
			else {
				wts |= !strcmp(kv[n].k, "wts");
				n++;
			}
		}
		q = amp ? amp + 1 : NULL;
	}
	if (!wts || !w_rid[0])
		return false;
	qsort(kv, n, sizeof(kv[0]), kv_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i)
			lt_buf_putc(&b, '&');
		wbi_encode(&b, kv[i].k);
		lt_buf_putc(&b, '=');
		wbi_encode(&b, kv[i].v);
	}
	lt_buf_puts(&b, s->mixin);
	md5_hex(b.data, b.len, md);
	ok = !lt_buf_err(&b) && !strcmp(md, w_rid);
	lt_buf_free(&b);
	return ok;
}

/* The room's auth key; with --wbi-rotate it changes with the WBI keys, so a
 * client must fetch a fresh token (through a fresh WBI signature) after a
 * rotation. */
static void room_token(const struct bili *s, const char *room, char out[33])
{
	char seed[96];
	int n = snprintf(seed, sizeof(seed), "livetap-emu-token:%s:%lld", room, (long long)s->wbi_epoch);
	md5_hex(seed, (size_t)n, out);
}

/* The current WBI key pair and its mixin key: the doc's test vector, or with
 * --wbi-rotate S a new pair every S seconds (the real keys rotate daily), so
 * that a client's cached keys go stale and getDanmuInfo answers -352. */
static void wbi_keys(struct bili *s)
{
	int rot = emu_options(s->e)->wbi_rotate_s;
	int64_t epoch = rot > 0 ? emu_now_ms() / 1000 / rot : 0;
	char raw[65], seed[64];

	if (s->img_key[0] && epoch == s->wbi_epoch)
		return;
	s->wbi_epoch = epoch;
	if (!rot) {
		snprintf(s->img_key, sizeof(s->img_key), "%s", BILI_IMG_KEY);
		snprintf(s->sub_key, sizeof(s->sub_key), "%s", BILI_SUB_KEY);
	} else {
		snprintf(seed, sizeof(seed), "wbi-img-%lld", (long long)epoch);
		md5_hex(seed, strlen(seed), s->img_key);
		snprintf(seed, sizeof(seed), "wbi-sub-%lld", (long long)epoch);
		md5_hex(seed, strlen(seed), s->sub_key);
	}
	snprintf(raw, sizeof(raw), "%s%s", s->img_key, s->sub_key);
	for (int i = 0; i < 32; i++)
		s->mixin[i] = raw[mixin_tab[i]];
	s->mixin[32] = 0;
}

static int bili_http(void *mod, const struct emu_http_req *rq, struct emu_http_resp *rs)
{
	struct bili *s = mod;
	char id[64] = "";

	wbi_keys(s);

	if (!strcmp(rq->path, "/")) {
		rs->content_type = "text/html; charset=utf-8";
		snprintf(rs->set_cookie, sizeof(rs->set_cookie), "buvid3=%s; path=/; domain=.bilibili.com", s->buvid);
		lt_buf_puts(&rs->body, "<!DOCTYPE html><html><head><title>哔哩哔哩 (゜-゜)つロ 干杯~-bilibili</title></head></html>");
		return LT_OK;
	}
	if (!strcmp(rq->path, "/x/frontend/finger/spi")) {
		lt_buf_printf(&rs->body, "{\"code\":0,\"message\":\"ok\",\"data\":{\"b_3\":\"%s\",\"b_4\":\"%s\"}}", s->buvid,
		              "B5C6E4D8-1A2B-3C4D-5E6F-7A8B9C0D1E2F12345-024112100-abcdef==");
		return LT_OK;
	}
	if (!strcmp(rq->path, "/x/web-frontend/getbuvid")) {
		lt_buf_printf(&rs->body, "{\"code\":0,\"message\":\"0\",\"data\":{\"buvid\":\"%s\"}}", s->buvid);
		return LT_OK;
	}
	if (!strcmp(rq->path, "/x/web-interface/nav")) {
		bool login = strstr(rq->cookie, "SESSDATA=") != NULL;
		lt_buf_printf(&rs->body,
		              "{\"code\":%d,\"message\":\"%s\",\"ttl\":1,\"data\":{\"isLogin\":%s,%s"
		              "\"wbi_img\":{\"img_url\":\"https://i0.hdslb.com/bfs/wbi/%s.png\","
		              "\"sub_url\":\"https://i0.hdslb.com/bfs/wbi/%s.png\"}}}",
		              login ? 0 : -101, login ? "0" : "账号未登录", login ? "true" : "false",
		              login ? "\"mid\":42,\"uname\":\"livetap\"," : "", s->img_key, s->sub_key);
		return LT_OK;
	}
	if (!strcmp(rq->path, "/room/v1/Room/get_info")) {
		query_get(rq->query, "room_id", id, sizeof(id));
		room_info(&rs->body, id, false);
		return LT_OK;
	}
	if (!strcmp(rq->path, "/room/v1/Room/room_init") || !strcmp(rq->path, "/room/v1/Room/mobileRoomInit")) {
		query_get(rq->query, "id", id, sizeof(id));
		room_info(&rs->body, id, true);
		return LT_OK;
	}
	if (!strcmp(rq->path, "/xlive/web-room/v1/index/getDanmuInfo")) {
		uint64_t real, sid;
		char tok[33], room[32];
		const char *bv = strstr(rq->cookie, "buvid3=");
		if (!bv || bv[7] == ';' || bv[7] == 0 || !wbi_ok(s, rq->query)) {
			s->n_352++;
			lt_buf_puts(&rs->body, "{\"code\":-352,\"message\":\"-352\",\"ttl\":1}");
			return LT_OK;
		}
		query_get(rq->query, "id", id, sizeof(id));
		if (!parse_room(id, &real, &sid)) {
			lt_buf_puts(&rs->body, "{\"code\":-400,\"message\":\"请求错误\",\"ttl\":1}");
			return LT_OK;
		}
		snprintf(room, sizeof(room), "%" PRIu64, real);
		room_token(s, room, tok);
		lt_buf_printf(&rs->body,
		              "{\"code\":0,\"message\":\"0\",\"ttl\":1,\"data\":{\"group\":\"live\",\"business_id\":0,"
		              "\"refresh_row_factor\":0.125,\"refresh_rate\":100,\"max_delay\":5000,\"token\":\"%s\","
		              "\"host_list\":[{\"host\":\"127.0.0.1\",\"port\":%d,\"wss_port\":%d,\"ws_port\":%d}]}}",
		              tok, emu_port(s->e), emu_port(s->e), emu_port(s->e));
		return LT_OK;
	}
	return LT_ENOTFOUND;
}

/* ---- WebSocket: rendering messages --------------------------------------- */

static uint64_t to_uid(struct lt_str s)
{
	uint64_t v = 0;

	for (uint32_t i = 0; i < s.len; i++) {
		if (s.p[i] < '0' || s.p[i] > '9' || v > UINT64_MAX / 10 - 10)
			return 0;
		v = v * 10 + (uint64_t)(s.p[i] - '0');
	}
	return v;
}

/* The masked form of a name: its first character and "***". */
static void masked_name(struct lt_buf *b, struct lt_str n)
{
	size_t k = 0;

	if (n.len) {
		unsigned char c = (unsigned char)n.p[0];
		k = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
		if (k > n.len)
			k = n.len;
	}
	lt_buf_append(b, n.p, k);
	lt_buf_puts(b, "***");
}

/* A string field of the message's extra JSON, or dflt. */
static void extra_get(struct lt_str extra, const char *key, char *out, size_t cap, const char *dflt)
{
	char pat[64];
	const char *p, *end = extra.p + extra.len;

	snprintf(out, cap, "%s", dflt);
	if (!extra.len)
		return;
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	for (p = extra.p; p && p < end; p++) {
		size_t pl = strlen(pat);
		if ((size_t)(end - p) < pl || memcmp(p, pat, pl))
			continue;
		p += pl;
		while (p < end && *p == ' ')
			p++;
		if (p < end && *p == '"') {
			const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
			if (q)
				snprintf(out, cap, "%.*s", (int)(q - p - 1), p + 1);
		} else {
			size_t i = 0;
			while (p < end && i + 1 < cap && strchr("-0123456789", *p))
				out[i++] = *p++;
			if (i)
				out[i] = 0;
		}
		return;
	}
}

static void user_name(struct lt_buf *b, const struct bili_conn *bc, struct lt_str name, bool maskable)
{
	struct lt_buf t = LT_BUF_INIT;

	if (maskable && bc->masked) {
		masked_name(&t, name);
		lt_json_str(b, (const char *)t.data, t.len);
	} else {
		json_lstr(b, name);
	}
	lt_buf_free(&t);
}

static void render_danmu(struct bili *s, struct bili_conn *bc, struct lt_buf *b, const struct lt_msg *m)
{
	struct lt_buf x = LT_BUF_INIT;
	uint64_t uid = bc->masked ? 0 : to_uid(m->user_id);
	uint32_t v = emu_rand(s->e) % 12;
	const char *cmd = v == 0 ? "DANMU_MSG:3:7:1:1:1:1" : v < 3 ? "DANMU_MSG:4:0:2:2:2:0" : "DANMU_MSG";

	/* info[0][15].extra is JSON inside a JSON string */
	lt_buf_puts(&x, "{\"send_from_me\":false,\"mode\":0,\"color\":16777215,\"dm_type\":0,\"font_size\":25,"
	                "\"player_mode\":1,\"show_player_type\":0,\"content\":");
	json_lstr(&x, m->content);
	lt_buf_printf(&x, ",\"user_hash\":\"%u\",\"emoticon_unique\":\"\",\"bulge_display\":0,\"recommend_score\":%u,"
	                  "\"main_state_dm_color\":\"\",\"objective_state_dm_color\":\"\",\"direction\":0,"
	                  "\"pk_direction\":0,\"quartet_direction\":0,\"anniversary_crowd\":0,\"yeah_space_type\":\"\","
	                  "\"yeah_space_url\":\"\",\"jump_to_url\":\"\",\"space_type\":\"\",\"space_url\":\"\","
	                  "\"animation\":{},\"emots\":null,\"is_audited\":false,\"id_str\":",
	              emu_rand(s->e), emu_rand(s->e) % 10);
	json_lstr(&x, m->msg_id);
	lt_buf_puts(&x, ",\"icon\":null,\"show_reply\":true,\"reply_mid\":0,\"reply_uname\":\"\","
	                "\"reply_uname_color\":\"\",\"reply_is_mystery\":false,\"hit_combo\":0}");

	lt_buf_printf(b, "{\"cmd\":\"%s\",\"info\":[[0,1,25,16777215,%" PRId64 ",%d,0,\"%08x\",0,0,0,\"\",0,\"{}\",\"{}\","
	                 "{\"mode\":0,\"show_player_type\":0,\"extra\":",
	              cmd, m->ts, (int)(emu_rand(s->e) & 0x7fffffff) - 0x3fffffff, emu_rand(s->e));
	lt_json_str(b, (const char *)x.data, x.len);
	lt_buf_printf(b, ",\"user\":{\"uid\":%" PRIu64 ",\"base\":{\"name\":", uid);
	user_name(b, bc, m->user_name, true);
	lt_buf_puts(b, ",\"face\":\"https://i0.hdslb.com/bfs/face/member/noface.jpg\",\"name_color\":0,"
	               "\"is_mystery\":false,\"risk_ctrl_info\":null,\"origin_info\":null,\"official_info\":null},"
	               "\"medal\":null,\"wealth\":null,\"title\":null,\"uhead_frame\":null,\"guard_leader\":null}},"
	               "{\"activity_identity\":\"\",\"activity_source\":0,\"not_show\":0},0],");
	json_lstr(b, m->content);
	lt_buf_printf(b, ",[%" PRIu64 ",", uid);
	user_name(b, bc, m->user_name, true);
	lt_buf_printf(b, ",0,0,0,10000,1,\"\"],%s,[%u,0,9868950,\">50000\",0],[\"\",\"\"],0,0,null,"
	                 "{\"ts\":%" PRId64 ",\"ct\":\"%08X\"},0,0,null,null,0,210,[%u]],\"dm_v2\":\"\"}",
	              v == 0 ? "null" : v % 2 ? "[]" : "[21,\"脆鲨\",\"七海Nana7mi\",21452505,1725515,\"\",0,6809855,1725515,5414290,3,1,434334701]",
	              emu_rand(s->e) % 40, m->ts / 1000, emu_rand(s->e), emu_rand(s->e) % 30);
	lt_buf_free(&x);
}

static void render_gift(struct bili *s, struct lt_buf *b, const struct lt_msg *m)
{
	char name[128], gid[32], coin[16];
	int64_t num = m->count > 0 ? m->count : 1, price = m->value / num;

	extra_get(m->extra, "gift_name", name, sizeof(name), "辣条");
	extra_get(m->extra, "gift_id", gid, sizeof(gid), "1");
	extra_get(m->extra, "currency", coin, sizeof(coin), "gold");
	lt_buf_printf(b, "{\"cmd\":\"SEND_GIFT\",\"data\":{\"action\":\"投喂\",\"batch_combo_id\":\"\",\"blind_gift\":null,"
	                 "\"coin_type\":\"%s\",\"combo_send\":null,\"face\":\"https://i0.hdslb.com/bfs/face/member/noface.jpg\","
	                 "\"giftId\":%s,\"giftName\":",
	              coin, gid);
	lt_json_str(b, name, strlen(name));
	lt_buf_printf(b, ",\"giftType\":0,\"guard_level\":0,\"medal_info\":{\"anchor_roomid\":0,\"anchor_uname\":\"\","
	                 "\"guard_level\":0,\"medal_level\":0,\"medal_name\":\"\",\"target_id\":0},\"num\":%" PRId64
	                 ",\"price\":%" PRId64 ",\"rnd\":\"%u\",\"receive_user_info\":{\"uid\":%llu,\"uname\":\"主播\"},\"tid\":",
	              num, price, emu_rand(s->e), BILI_STREAMER_UID);
	json_lstr(b, m->msg_id);
	lt_buf_printf(b, ",\"timestamp\":%" PRId64 ",\"total_coin\":%" PRId64 ",\"uid\":%" PRIu64 ",\"uname\":", m->ts / 1000,
	              m->value, to_uid(m->user_id));
	json_lstr(b, m->user_name);
	lt_buf_puts(b, "}}");
}

/* SEND_GIFT_V2: the same gift as a base64 SendGiftBroadcast protobuf (the
 * platform's 2026 rollout), total_coin = price x num. */
static void render_gift_v2(struct lt_buf *b, const struct lt_msg *m)
{
	struct lt_buf pb = LT_BUF_INIT, item = LT_BUF_INIT;
	char name[128], gid[32], coin[16];
	int64_t num = m->count > 0 ? m->count : 1, price = m->value / num;

	extra_get(m->extra, "gift_name", name, sizeof(name), "辣条");
	extra_get(m->extra, "gift_id", gid, sizeof(gid), "1");
	extra_get(m->extra, "currency", coin, sizeof(coin), "gold");
	pb_uint(&item, 1, strtoull(gid, NULL, 10));
	pb_bytes(&item, 2, name, strlen(name));
	pb_uint(&item, 3, (uint64_t)num);
	pb_uint(&item, 5, (uint64_t)price);
	pb_uint(&item, 7, (uint64_t)(price * num));
	pb_bytes(&item, 8, coin, strlen(coin));
	pb_bytes(&item, 9, m->msg_id.p, m->msg_id.len);
	pb_uint(&item, 10, (uint64_t)(m->ts / 1000));
	pb_bytes(&item, 18, "投喂", strlen("投喂"));
	pb_uint(&pb, 1, to_uid(m->user_id));
	pb_bytes(&pb, 2, m->user_name.p, m->user_name.len);
	pb_bytes(&pb, 3, "https://i0.hdslb.com/bfs/face/member/noface.jpg", 47);
	pb_bytes(&pb, 10, item.data, item.len);
	lt_buf_puts(b, "{\"cmd\":\"SEND_GIFT_V2\",\"data\":{\"pb\":\"");
	b64(b, pb.data, pb.len);
	lt_buf_puts(b, "\"}}");
	lt_buf_free(&pb);
	lt_buf_free(&item);
}

static void render_combo(struct bili *s, struct lt_buf *b, const struct lt_msg *m)
{
	lt_buf_printf(b, "{\"cmd\":\"COMBO_SEND\",\"data\":{\"action\":\"投喂\",\"batch_combo_id\":\"batch:gift:combo_id:%u\","
	                 "\"batch_combo_num\":%" PRId64 ",\"combo_num\":%" PRId64 ",\"combo_total_coin\":%" PRId64
	                 ",\"gift_id\":1,\"gift_name\":\"辣条\",\"total_num\":%" PRId64 ",\"uid\":%" PRIu64 ",\"uname\":",
	              emu_rand(s->e), m->count, m->count, m->value, m->count, to_uid(m->user_id));
	json_lstr(b, m->user_name);
	lt_buf_printf(b, ",\"ruid\":%llu,\"r_uname\":\"主播\"}}", BILI_STREAMER_UID);
}

static void render_interact(struct bili *s, struct bili_conn *bc, struct lt_buf *b, const struct lt_msg *m, int msg_type)
{
	struct lt_buf pb = LT_BUF_INIT, base = LT_BUF_INIT, uinfo = LT_BUF_INIT, nm = LT_BUF_INIT;
	uint64_t uid = bc->masked ? 0 : to_uid(m->user_id);

	if (bc->masked)
		masked_name(&nm, m->user_name);
	else
		lt_buf_append(&nm, m->user_name.p, m->user_name.len);
	pb_bytes(&base, 1, nm.data, nm.len);
	pb_bytes(&base, 2, "https://i0.hdslb.com/bfs/face/member/noface.jpg", 47);
	pb_uint(&uinfo, 1, uid);
	pb_bytes(&uinfo, 2, base.data, base.len);

	pb_uint(&pb, 1, uid);
	pb_bytes(&pb, 2, nm.data, nm.len);
	pb_uint(&pb, 5, (uint64_t)msg_type);
	pb_uint(&pb, 6, strtoull(bc->room, NULL, 10));
	pb_uint(&pb, 7, (uint64_t)(m->ts / 1000));
	pb_uint(&pb, 8, (uint64_t)m->ts * 1000 + emu_rand(s->e) % 1000);
	pb_uint(&pb, 15, (uint64_t)m->ts * 1000000 + emu_rand(s->e) % 1000000); /* ns, like the real one */
	pb_bytes(&pb, 22, uinfo.data, uinfo.len);

	lt_buf_printf(b, "{\"cmd\":\"INTERACT_WORD_V2\",\"data\":{\"dmscore\":%u,\"pb\":\"", 10 + emu_rand(s->e) % 20);
	b64(b, pb.data, pb.len);
	lt_buf_puts(b, "\"}}");
	lt_buf_free(&pb);
	lt_buf_free(&base);
	lt_buf_free(&uinfo);
	lt_buf_free(&nm);
}

static void render(struct bili *s, struct bili_conn *bc, struct lt_buf *b, const struct lt_msg *m)
{
	switch (m->type) {
	case LT_MSG_CHAT:
		render_danmu(s, bc, b, m);
		break;
	case LT_MSG_GIFT:
		if (emu_options(s->e)->mix_versions && emu_rand(s->e) % 4 == 0)
			render_gift_v2(b, m);
		else
			render_gift(s, b, m);
		break;
	case LT_MSG_LIKE:
		lt_buf_printf(b, "{\"cmd\":\"LIKE_INFO_V3_CLICK\",\"data\":{\"show_area\":0,\"msg_type\":6,"
		                 "\"like_icon\":\"https://i0.hdslb.com/bfs/live/23678e3d90402bea6a65251b3e728044c21b1f0f.png\","
		                 "\"uid\":%" PRIu64 ",\"like_text\":\"为主播点赞了\",\"uname\":",
		              to_uid(m->user_id));
		json_lstr(b, m->user_name);
		lt_buf_puts(b, ",\"uname_color\":\"\",\"identities\":[1],\"fans_medal\":{\"target_id\":0,\"medal_level\":0,"
		               "\"medal_name\":\"\"},\"contribution_info\":{\"grade\":0},\"dmscore\":20}}");
		break;
	case LT_MSG_ENTER:
	case LT_MSG_FOLLOW:
	case LT_MSG_SHARE:
		render_interact(s, bc, b, m, m->type == LT_MSG_ENTER ? 1 : m->type == LT_MSG_FOLLOW ? 2 : 3);
		break;
	case LT_MSG_SUPERCHAT: {
		int64_t price = m->value / 1000 > 0 ? m->value / 1000 : 30;
		lt_buf_printf(b, "{\"cmd\":\"SUPER_CHAT_MESSAGE\",\"data\":{\"id\":%.*s,\"uid\":%" PRIu64 ",\"price\":%" PRId64
		                 ",\"rate\":1000,\"message\":",
		              m->msg_id.len ? (int)m->msg_id.len : 1, m->msg_id.len ? m->msg_id.p : "0", to_uid(m->user_id),
		              price);
		json_lstr(b, m->content);
		lt_buf_printf(b, ",\"message_trans\":\"\",\"start_time\":%" PRId64 ",\"end_time\":%" PRId64
		                 ",\"time\":60,\"ts\":%" PRId64 ",\"token\":\"%08X\",\"gift\":{\"gift_id\":12000,"
		                 "\"gift_name\":\"醒目留言\",\"num\":1},\"user_info\":{\"uname\":",
		              m->ts / 1000, m->ts / 1000 + 60, m->ts / 1000, emu_rand(s->e));
		json_lstr(b, m->user_name);
		lt_buf_printf(b, ",\"face\":\"https://i0.hdslb.com/bfs/face/member/noface.jpg\",\"guard_level\":0,"
		                 "\"user_level\":12},\"medal_info\":null,\"background_color\":\"#EDF5FF\"},\"roomid\":%s}",
		              bc->room);
		break;
	}
	case LT_MSG_GUARD:
		lt_buf_printf(b, "{\"cmd\":\"GUARD_BUY\",\"data\":{\"uid\":%" PRIu64 ",\"username\":", to_uid(m->user_id));
		json_lstr(b, m->user_name);
		lt_buf_printf(b, ",\"guard_level\":3,\"num\":%" PRId64 ",\"price\":%" PRId64 ",\"gift_id\":10003,"
		                 "\"gift_name\":\"舰长\",\"start_time\":%" PRId64 ",\"end_time\":%" PRId64 "}}",
		              m->count > 0 ? m->count : 1, m->value ? m->value / (m->count > 0 ? m->count : 1) : 198000,
		              m->ts / 1000, m->ts / 1000);
		break;
	case LT_MSG_ROOM_STATS:
		lt_buf_printf(b, "{\"cmd\":\"ONLINE_RANK_COUNT\",\"data\":{\"count\":%" PRId64 ",\"count_text\":\"%" PRId64
		                 "\",\"online_count\":%" PRId64 ",\"online_count_text\":\"%" PRId64 "\"}}",
		              m->count, m->count, m->count, m->count);
		break;
	case LT_MSG_LIVE_START:
		lt_buf_printf(b, "{\"cmd\":\"LIVE\",\"live_key\":\"%u\",\"voice_background\":\"\",\"sub_session_key\":"
		                 "\"%u sub_time:%" PRId64 "\",\"live_platform\":\"pc\",\"live_model\":0,\"live_time\":%" PRId64
		                 ",\"roomid\":%s}",
		              emu_rand(s->e), emu_rand(s->e), m->ts / 1000, m->ts / 1000, bc->room);
		break;
	case LT_MSG_LIVE_END:
		lt_buf_printf(b, "{\"cmd\":\"PREPARING\",\"msg_id\":\"%u:1000:1000\",\"p_is_ack\":true,\"p_msg_type\":1,"
		                 "\"send_time\":%" PRId64 ",\"roomid\":\"%s\"}",
		              emu_rand(s->e), m->ts, bc->room);
		break;
	default: {
		char cmd[64];
		extra_get(m->extra, "cmd", cmd, sizeof(cmd), "WIDGET_BANNER");
		lt_buf_puts(b, "{\"cmd\":");
		lt_json_str(b, cmd, strlen(cmd));
		lt_buf_puts(b, ",\"data\":{}}");
		break;
	}
	}
}

/* The version a data frame goes out in. */
static int frame_version(struct bili *s, struct bili_conn *bc)
{
	static const int mix[] = {3, 3, 2, 0};
	int base = bc->protover == 3 ? 3 : bc->protover == 2 ? 2 : 0;

	if (!emu_options(s->e)->mix_versions)
		return base;
	return mix[emu_rand(s->e) % 4];
}

static void outer(struct lt_buf *frame, int ver, const struct lt_buf *inner)
{
	if (ver == 3)
		pack_brotli(frame, inner);
	else if (ver == 2)
		pack_zlib(frame, inner);
	else
		lt_buf_append(frame, inner->data, inner->len);
}

static void bili_push(void *mod, struct emu_conn *c, const struct lt_msg *msgs, size_t n)
{
	struct bili *s = mod;
	struct bili_conn *bc = emu_conn_data(c);
	struct lt_buf in1 = LT_BUF_INIT, in2 = LT_BUF_INIT, body = LT_BUF_INIT, frame = LT_BUF_INIT;
	struct lt_msg *logged = calloc(n ? n : 1, sizeof(*logged));
	size_t split = n;
	bool two = false;

	if (!logged || !bc->authed)
		goto out;
	if (emu_options(s->e)->mix_versions && n >= 2 && emu_rand(s->e) % 4 == 0) {
		split = n / 2;
		two = true;
	}
	for (size_t i = 0; i < n; i++) {
		const struct lt_msg *m = &msgs[i];
		lt_buf_reset(&body);
		render(s, bc, &body, m);
		pack(i < split ? &in1 : &in2, 0, 5, 0, body.data, body.len);
		if (m->type == LT_MSG_GIFT && m->count > 1 && emu_rand(s->e) % 2 == 0) {
			/* the aggregate that must not count again */
			lt_buf_reset(&body);
			render_combo(s, &body, m);
			pack(i < split ? &in1 : &in2, 0, 5, 0, body.data, body.len);
		}
		logged[i] = *m;
		if (m->type != LT_MSG_CHAT && m->type != LT_MSG_GIFT && m->type != LT_MSG_SUPERCHAT)
			logged[i].msg_id = LT_STR_NULL;
	}
	if (emu_options(s->e)->mix_versions && !two && emu_rand(s->e) % 10 == 0) {
		/* a zlib packet nested inside a brotli one */
		struct lt_buf z = LT_BUF_INIT;
		pack_zlib(&z, &in1);
		pack_brotli(&frame, &z);
		lt_buf_free(&z);
	} else {
		outer(&frame, frame_version(s, bc), &in1);
		if (two)
			outer(&frame, frame_version(s, bc), &in2);
	}
	if (!lt_buf_err(&frame) && !lt_buf_err(&in1) && !lt_buf_err(&in2))
		emu_conn_send_msgs(c, frame.data, frame.len, logged, n);
	bc->frames++;
out:
	free(logged);
	lt_buf_free(&in1);
	lt_buf_free(&in2);
	lt_buf_free(&body);
	lt_buf_free(&frame);
}

/* A corrupted frame, one of several kinds a decoder must survive. */
static void bili_garbage(void *mod, struct emu_conn *c)
{
	struct bili *s = mod;
	struct bili_conn *bc = emu_conn_data(c);
	struct lt_buf f = LT_BUF_INIT;
	uint8_t junk[64];
	uint32_t n = 1 + emu_rand(s->e) % sizeof(junk);

	if (!bc->authed)
		return;
	for (uint32_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)emu_rand(s->e);
	switch (emu_rand(s->e) % 6) {
	case 0: /* random bytes */
		lt_buf_append(&f, junk, n);
		break;
	case 1: /* a header that promises more than the frame holds */
		lt_buf_u32be(&f, 1000);
		lt_buf_u16be(&f, 16);
		lt_buf_u16be(&f, 0);
		lt_buf_u32be(&f, 5);
		lt_buf_u32be(&f, 0);
		lt_buf_append(&f, "{\"cmd\":\"DANMU_MSG\"", 17);
		break;
	case 2: /* a brotli body that is not brotli */
		pack(&f, 3, 5, 0, junk, n);
		break;
	case 3: /* a zlib body that is not zlib */
		pack(&f, 2, 5, 0, junk, n);
		break;
	case 4: /* JSON cut in the middle */
		pack(&f, 0, 5, 0, "{\"cmd\":\"DANMU_MSG\",\"info\":[[0,1,25,", 35);
		break;
	default: /* pack_len smaller than a header */
		lt_buf_u32be(&f, 7);
		lt_buf_u16be(&f, 16);
		lt_buf_u16be(&f, 0);
		lt_buf_u32be(&f, 5);
		lt_buf_u32be(&f, 0);
		break;
	}
	if (!lt_buf_err(&f))
		emu_conn_send(c, f.data, f.len);
	lt_buf_free(&f);
}

/* ---- WebSocket: what the client sends ------------------------------------ */

static void on_auth(struct bili *s, struct emu_conn *c, struct bili_conn *bc, const uint8_t *p, size_t n)
{
	struct lt_buf out = LT_BUF_INIT, body = LT_BUF_INIT;
	char key[128] = "", tok[33], room[32] = "";
	const char *j = (const char *)p, *k;
	unsigned long long roomid = 0, uid = 0;
	int protover = 0;

	/* a small field scan: the auth body is flat JSON */
	lt_buf_append(&body, j, n);
	j = lt_buf_cstr(&body);
	if ((k = strstr(j, "\"roomid\":")))
		roomid = strtoull(k + 9, NULL, 10);
	if ((k = strstr(j, "\"uid\":")))
		uid = strtoull(k + 6, NULL, 10);
	if ((k = strstr(j, "\"protover\":")))
		protover = atoi(k + 11);
	if ((k = strstr(j, "\"key\":\""))) {
		const char *e = strchr(k + 7, '"');
		if (e && (size_t)(e - k - 7) < sizeof(key))
			snprintf(key, sizeof(key), "%.*s", (int)(e - k - 7), k + 7);
	}
	snprintf(room, sizeof(room), "%llu", roomid);
	wbi_keys(s);
	room_token(s, room, tok);
	if (!roomid || strcmp(key, tok) != 0) {
		s->n_auth_bad++;
		pack(&out, 1, 8, 1, "{\"code\":-101}", 13);
		emu_conn_send(c, out.data, out.len);
		emu_conn_close(c);
		goto out;
	}
	s->n_auth_ok++;
	bc->authed = true;
	bc->protover = protover;
	bc->uid = uid;
	snprintf(bc->room, sizeof(bc->room), "%s", room);
	pack(&out, 1, 8, 1, "{\"code\":0}", 10);
	emu_conn_send(c, out.data, out.len);
	if (uid == 0 && !emu_options(s->e)->no_mask) {
		static const char notice[] = "{\"cmd\":\"LOG_IN_NOTICE\",\"data\":{\"notice_msg\":\"为保护用户隐私，未登录无法查看他人昵称\","
		                             "\"image_web\":\"http://i0.hdslb.com/bfs/dm/75e7c16b99208df259fe0a93354fd3440cbab412.png\","
		                             "\"image_app\":\"http://i0.hdslb.com/bfs/dm/b632f7dcd3acf47deffb5f9ccc9546ae97a3415b.png\"}}";
		lt_buf_reset(&out);
		pack(&out, 0, 5, 0, notice, sizeof(notice) - 1);
		emu_conn_send(c, out.data, out.len);
		bc->masked = true;
	}
	emu_conn_subscribe(c, room);
out:
	lt_buf_free(&out);
	lt_buf_free(&body);
}

static void on_heartbeat(struct emu_conn *c, const uint8_t *body, size_t n)
{
	struct lt_buf out = LT_BUF_INIT;

	/* pack_len counts 16 + 4 only; the echo of the client's body follows */
	lt_buf_u32be(&out, 20);
	lt_buf_u16be(&out, BILI_HDR);
	lt_buf_u16be(&out, 1);
	lt_buf_u32be(&out, 3);
	lt_buf_u32be(&out, 0);
	lt_buf_u32be(&out, 1);
	lt_buf_append(&out, body, n);
	emu_conn_send(c, out.data, out.len);
	emu_conn_touch(c);
	lt_buf_free(&out);
}

static void bili_rx(void *mod, struct emu_conn *c, const uint8_t *p, size_t n)
{
	struct bili *s = mod;
	struct bili_conn *bc = emu_conn_data(c);
	size_t off = 0;

	while (n - off >= BILI_HDR) {
		const uint8_t *h = p + off;
		uint32_t len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
		uint32_t op = (uint32_t)h[8] << 24 | (uint32_t)h[9] << 16 | (uint32_t)h[10] << 8 | h[11];
		if (len < BILI_HDR || len > n - off) {
			emu_conn_close(c); /* the real server drops clients that talk nonsense */
			return;
		}
		if (op == 7 && !bc->authed)
			on_auth(s, c, bc, h + BILI_HDR, len - BILI_HDR);
		else if (op == 2 && bc->authed)
			on_heartbeat(c, h + BILI_HDR, len - BILI_HDR);
		else if (!bc->authed) {
			emu_conn_close(c);
			return;
		}
		off += len;
	}
}

static int bili_init(struct emu *e, void **mod)
{
	struct bili *s = calloc(1, sizeof(*s));

	if (!s)
		return LT_ENOMEM;
	s->e = e;
	wbi_keys(s);
	snprintf(s->buvid, sizeof(s->buvid), "%08X-%04X-%04X-%04X-%08X%04X%05uinfoc", emu_rand(e), emu_rand(e) & 0xffff,
	         emu_rand(e) & 0xffff, emu_rand(e) & 0xffff, emu_rand(e), emu_rand(e) & 0xffff, emu_rand(e) % 100000);
	*mod = s;
	return LT_OK;
}

static void bili_fini(void *mod)
{
	free(mod);
}

const struct emu_module emu_bilibili = {
	.name = "bilibili",
	.ws_path = "/sub",
	.conn_size = sizeof(struct bili_conn),
	.init = bili_init,
	.fini = bili_fini,
	.http = bili_http,
	.ws_rx = bili_rx,
	.ws_push = bili_push,
	.ws_garbage = bili_garbage,
};
