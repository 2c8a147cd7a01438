/* SPDX-License-Identifier: MIT */
/*
 * mkcapture: writes a capture file (fetcher/capture.h) of realistic Bilibili
 * frames, deterministic from a seed, so tests and benchmarks need no
 * checked-in binaries.
 *
 *   mkcapture [--seed K] [--frames N] [--batch M] [--ver 0|2|3|mix]
 *             [--room R] [--start-ms T] [--step-ms S] -o FILE
 *
 * Frame 0 is the auth reply; then every frame is one op-5 packet holding M
 * inner packets (ver 3: a brotli stream, ver 2: zlib, ver 0: M raw packets
 * concatenated; mix rotates), with a heartbeat reply (with its echo quirk)
 * every 300 frames. The message mix follows a busy room: chat ~50%, entries
 * (INTERACT_WORD_V2 protobuf) ~22%, likes ~12%, gifts (SEND_GIFT and
 * SEND_GIFT_V2) ~10%, room stats, guards, super chats and other commands.
 * A summary line "frames=… messages=…" goes to stdout; every inner message
 * is one normalized message (SEND_GIFT_V2 carries one gift item).
 */
#include <brotli/encode.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/buf.h"
#include "fetcher/bilibili.h"
#include "fetcher/bilibili.pb-c.h"
#include "fetcher/capture.h"

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static int pick(int n)
{
	return (int)(rnd() % (uint64_t)n);
}

static const char *const words[] = {
	"哈哈哈", "主播", "好厉害", "666", "这波", "操作", "太强了", "晚上好", "来了", "打卡", "签到", "抽签",
	"冲冲冲", "可爱", "啊啊啊", "awsl", "前排", "支持", "加油", "好听", "再来一首", "笑死", "确实", "绝了",
	"老板大气", "欢迎", "今天", "直播", "游戏", "好看", "牛", "草", "hhh", "yyds", "下播", "别走",
};

static const char *const names[] = {
	"小明同学", "夜猫子", "星河", "阿白", "Kiwi", "路过的狐狸", "晴天", "咸鱼王", "momo", "一只猫",
};

static const char *const gifts[] = {"辣条", "小心心", "打call", "牛哇牛哇", "干杯", "花式夸夸"};

static void sentence(struct lt_buf *b)
{
	int n = 1 + pick(4);
	for (int i = 0; i < n; i++)
		lt_buf_puts(b, words[pick((int)(sizeof(words) / sizeof(words[0])))]);
}

static void b64(struct lt_buf *out, const uint8_t *p, size_t n)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		lt_buf_putc(out, a[(v >> 18) & 63]);
		lt_buf_putc(out, a[(v >> 12) & 63]);
		lt_buf_putc(out, i + 1 < n ? a[(v >> 6) & 63] : '=');
		lt_buf_putc(out, i + 2 < n ? a[v & 63] : '=');
	}
}

static uint64_t seqno;

/* One message JSON body into b. */
static void message(struct lt_buf *b, const char *room, int64_t ms)
{
	int r = pick(1000);
	uint64_t uid = 10000 + (rnd() % 5000000);
	const char *name = names[pick(10)];
	int64_t s = ms / 1000;
	seqno++;
	/* every random draw up front: the order in which a compiler evaluates
	 * printf's arguments must not change the capture */
	uint64_t R[29];
	for (int i = 0; i < 29; i++)
		R[i] = rnd();

	if (r < 500) {
		struct lt_buf text = LT_BUF_INIT;
		lt_buf_init(&text, 0);
		sentence(&text);
		bool anon = (int)(R[0] % 20) == 0;
		lt_buf_printf(b,
		              "{\"cmd\":\"%s\",\"info\":[[0,1,25,16777215,%lld,%u,0,\"%08x\",0,0,0,\"\",0,\"{}\",\"{}\","
		              "{\"mode\":0,\"show_player_type\":0,\"extra\":\"{\\\"send_from_me\\\":false,\\\"mode\\\":0,"
		              "\\\"color\\\":16777215,\\\"dm_type\\\":0,\\\"font_size\\\":25,\\\"player_mode\\\":1,"
		              "\\\"show_player_type\\\":0,\\\"content\\\":\\\"%s\\\",\\\"user_hash\\\":\\\"%u\\\","
		              "\\\"emoticon_unique\\\":\\\"\\\",\\\"bulge_display\\\":0,\\\"recommend_score\\\":%d,"
		              "\\\"main_state_dm_color\\\":\\\"\\\",\\\"objective_state_dm_color\\\":\\\"\\\","
		              "\\\"direction\\\":0,\\\"pk_direction\\\":0,\\\"quartet_direction\\\":0,"
		              "\\\"anniversary_crowd\\\":0,\\\"yeah_space_type\\\":\\\"\\\",\\\"yeah_space_url\\\":\\\"\\\","
		              "\\\"jump_to_url\\\":\\\"\\\",\\\"space_type\\\":\\\"\\\",\\\"space_url\\\":\\\"\\\","
		              "\\\"animation\\\":{},\\\"emots\\\":null,\\\"is_audited\\\":false,"
		              "\\\"id_str\\\":\\\"%016llx%016llx\\\",\\\"icon\\\":null,\\\"show_reply\\\":true,"
		              "\\\"reply_mid\\\":0,\\\"reply_uname\\\":\\\"\\\",\\\"reply_uname_color\\\":\\\"\\\","
		              "\\\"reply_is_mystery\\\":false,\\\"hit_combo\\\":0}\","
		              "\"user\":{\"uid\":%llu,\"base\":{\"name\":\"%s\",\"face\":\"https://i0.hdslb.com/bfs/face/"
		              "%016llx.jpg\",\"name_color\":0,\"is_mystery\":false,\"risk_ctrl_info\":null,"
		              "\"origin_info\":{\"name\":\"%s\",\"face\":\"https://i0.hdslb.com/bfs/face/%016llx.jpg\"},"
		              "\"official_info\":{\"role\":0,\"title\":\"\",\"desc\":\"\",\"type\":-1}},"
		              "\"medal\":null,\"wealth\":null,\"title\":{\"old_title_css_id\":\"\",\"title_css_id\":\"\"},"
		              "\"guard\":null,\"uhead_frame\":null,\"guard_leader\":{\"is_guard_leader\":false}}},"
		              "{\"activity_identity\":\"\",\"activity_source\":0,\"not_show\":0},0],"
		              "\"%s\",[%llu,\"%s\",0,0,0,10000,1,\"\"],[],[%d,0,9868950,\">50000\",0],[\"\",\"\"],0,0,null,"
		              "{\"ts\":%lld,\"ct\":\"%08X\"},0,0,null,null,0,%d,[%d],null],\"dm_v2\":\"\"}",
		              (int)(R[1] % 8) == 0 ? "DANMU_MSG:4:0:2:2:2:0" : "DANMU_MSG", (long long)ms, (unsigned)R[2],
		              (unsigned)R[3], lt_buf_cstr(&text), (unsigned)R[4], (int)(R[5] % 10),
		              (unsigned long long)R[6], (unsigned long long)seqno, anon ? 0ULL : (unsigned long long)uid,
		              anon ? "***" : name, (unsigned long long)R[7], name, (unsigned long long)R[8],
		              lt_buf_cstr(&text), anon ? 0ULL : (unsigned long long)uid, anon ? "***" : name, (int)(R[9] % 40),
		              (long long)s, (unsigned)R[10], (int)(R[11] % 100), (int)(R[12] % 30));
		lt_buf_free(&text);
	} else if (r < 720) {
		Ltbili__InteractWord w = LTBILI__INTERACT_WORD__INIT;
		Ltbili__InteractUinfo ui = LTBILI__INTERACT_UINFO__INIT;
		Ltbili__InteractBase base = LTBILI__INTERACT_BASE__INIT;
		w.uid = uid;
		w.uname = (char *)name;
		w.msg_type = (int)(R[13] % 20) == 0 ? 2 : (int)(R[14] % 30) == 0 ? 3 : 1;
		w.room_id = atoll(room);
		w.timestamp = s;
		w.score = ms;
		w.trigger_time = ms * 1000000 + (int64_t)seqno % 1000000;
		base.uname = (char *)name;
		base.face = "https://i0.hdslb.com/bfs/face/member/noface.jpg";
		ui.uid = uid;
		ui.base_info = &base;
		w.uinfo = &ui;
		uint8_t pb[512];
		size_t n = ltbili__interact_word__pack(&w, pb);
		lt_buf_printf(b, "{\"cmd\":\"INTERACT_WORD_V2\",\"data\":{\"dmscore\":%d,\"pb\":\"", (int)(R[15] % 30));
		b64(b, pb, n);
		lt_buf_puts(b, "\"}}");
	} else if (r < 840) {
		lt_buf_printf(b,
		              "{\"cmd\":\"LIKE_INFO_V3_CLICK\",\"data\":{\"show_area\":0,\"msg_type\":6,"
		              "\"like_icon\":\"https://i0.hdslb.com/bfs/live/23678e3d90402bea6a65251b3e728044c21b1f0f.png\","
		              "\"uid\":%llu,\"like_text\":\"为主播点赞了\",\"uname\":\"%s\",\"uname_color\":\"\","
		              "\"identities\":[1],\"fans_medal\":{\"target_id\":0,\"medal_level\":0,\"medal_name\":\"\","
		              "\"medal_color\":0,\"is_lighted\":0,\"guard_level\":0,\"score\":0},"
		              "\"contribution_info\":{\"grade\":0},\"dmscore\":%d,\"seq\":%llu}}",
		              (unsigned long long)uid, name, (int)(R[16] % 30), (unsigned long long)seqno);
	} else if (r < 920) {
		int g = (int)(R[17] % 6);
		int num = 1 + (int)(R[18] % 3) * (int)(R[19] % 5);
		int price = g == 0 ? 100 : 1000 * (1 + g);
		lt_buf_printf(b,
		              "{\"cmd\":\"SEND_GIFT\",\"data\":{\"action\":\"投喂\",\"batch_combo_id\":\"\","
		              "\"blind_gift\":null,\"coin_type\":\"%s\",\"combo_send\":null,\"face\":"
		              "\"https://i0.hdslb.com/bfs/face/member/noface.jpg\",\"giftId\":%d,\"giftName\":\"%s\","
		              "\"giftType\":5,\"guard_level\":0,\"medal_info\":{\"anchor_roomid\":0,\"medal_level\":0,"
		              "\"medal_name\":\"\",\"target_id\":0},\"num\":%d,\"price\":%d,\"rnd\":\"%llu\","
		              "\"tid\":\"%lld%06llu\",\"timestamp\":%lld,\"total_coin\":%d,\"uid\":%llu,\"uname\":\"%s\"}}",
		              g == 0 ? "silver" : "gold", 30000 + g, gifts[g], num, price, (unsigned long long)R[20] % 100000000,
		              (long long)ms, (unsigned long long)(seqno % 1000000), (long long)s, price * num,
		              (unsigned long long)uid, name);
	} else if (r < 940) {
		Ltbili__SendGiftBroadcast sg = LTBILI__SEND_GIFT_BROADCAST__INIT;
		Ltbili__GiftItem it = LTBILI__GIFT_ITEM__INIT;
		Ltbili__GiftItem *list[1] = {&it};
		char tid[40];
		snprintf(tid, sizeof(tid), "%lld%06llu", (long long)ms, (unsigned long long)(seqno % 1000000));
		sg.uid = (int64_t)uid;
		sg.uname = (char *)name;
		sg.face = "https://i0.hdslb.com/bfs/face/member/noface.jpg";
		sg.n_gift_list = 1;
		sg.gift_list = list;
		it.gift_id = 31036;
		it.gift_name = "小花花";
		it.num = 1 + (int)(R[21] % 10);
		it.price = 100;
		it.total_coin = it.price * it.num;
		it.coin_type = "gold";
		it.tid = tid;
		it.timestamp = s;
		it.action = "投喂";
		uint8_t pb[512];
		size_t n = ltbili__send_gift_broadcast__pack(&sg, pb);
		lt_buf_puts(b, "{\"cmd\":\"SEND_GIFT_V2\",\"data\":{\"pb\":\"");
		b64(b, pb, n);
		lt_buf_puts(b, "\"}}");
	} else if (r < 960) {
		lt_buf_printf(b,
		              "{\"cmd\":\"ONLINE_RANK_COUNT\",\"data\":{\"count\":%d,\"count_text\":\"%d\","
		              "\"online_count\":%d,\"online_count_text\":\"%d\"},\"seq\":%llu}",
		              1000 + (int)(R[22] % 9000), 1000 + (int)(R[23] % 9000), 2000 + (int)(R[24] % 9000), 2000 + (int)(R[25] % 9000),
		              (unsigned long long)seqno);
	} else if (r < 970) {
		int n = 10000 + (int)(R[26] % 90000);
		lt_buf_printf(b,
		              "{\"cmd\":\"WATCHED_CHANGE\",\"data\":{\"num\":%d,\"text_small\":\"%d\","
		              "\"text_large\":\"%d人看过\"},\"seq\":%llu}",
		              n, n, n, (unsigned long long)seqno);
	} else if (r < 975) {
		lt_buf_printf(b,
		              "{\"cmd\":\"GUARD_BUY\",\"data\":{\"uid\":%llu,\"username\":\"%s\",\"guard_level\":3,"
		              "\"num\":1,\"price\":198000,\"gift_id\":10003,\"gift_name\":\"舰长\",\"start_time\":%lld,"
		              "\"end_time\":%lld}}",
		              (unsigned long long)uid, name, (long long)s + (long long)seqno, (long long)s);
	} else if (r < 980) {
		struct lt_buf text = LT_BUF_INIT;
		lt_buf_init(&text, 0);
		sentence(&text);
		lt_buf_printf(b,
		              "{\"cmd\":\"SUPER_CHAT_MESSAGE\",\"data\":{\"id\":%llu,\"uid\":%llu,\"price\":30,"
		              "\"message\":\"%s\",\"start_time\":%lld,\"end_time\":%lld,\"ts\":%lld,"
		              "\"user_info\":{\"uname\":\"%s\",\"face\":\"\",\"guard_level\":0,\"user_level\":1}},"
		              "\"roomid\":%s}",
		              (unsigned long long)(5000000 + seqno), (unsigned long long)uid, lt_buf_cstr(&text),
		              (long long)s, (long long)s + 60, (long long)s, name, room);
		lt_buf_free(&text);
	} else {
		lt_buf_printf(b,
		              "{\"cmd\":\"ROOM_REAL_TIME_MESSAGE_UPDATE\",\"data\":{\"roomid\":%s,\"fans\":%d,"
		              "\"red_notice\":-1,\"fans_club\":%d,\"seq\":%llu}}",
		              room, 100000 + (int)(R[27] % 1000), 1000 + (int)(R[28] % 100), (unsigned long long)seqno);
	}
}

static int usage(void)
{
	fprintf(stderr, "usage: mkcapture [--seed K] [--frames N] [--batch M] [--ver 0|2|3|mix] [--room R] "
	                "[--start-ms T] [--step-ms S] -o FILE\n");
	return 2;
}

int main(int argc, char **argv)
{
	long long seed = 1, frames = 1000, batch = 20, start = 1732212345000LL, step = 100;
	const char *ver = "3", *room = "21452505", *path = NULL;
	struct lt_buf inner = LT_BUF_INIT, pkt = LT_BUF_INIT, file = LT_BUF_INIT, comp = LT_BUF_INIT;
	unsigned long long messages = 0;
	FILE *f;

	for (int i = 1; i < argc; i += 2) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v)
			return usage();
		if (!strcmp(a, "--seed"))
			seed = atoll(v);
		else if (!strcmp(a, "--frames"))
			frames = atoll(v);
		else if (!strcmp(a, "--batch"))
			batch = atoll(v);
		else if (!strcmp(a, "--ver"))
			ver = v;
		else if (!strcmp(a, "--room"))
			room = v;
		else if (!strcmp(a, "--start-ms"))
			start = atoll(v);
		else if (!strcmp(a, "--step-ms"))
			step = atoll(v);
		else if (!strcmp(a, "-o"))
			path = v;
		else
			return usage();
	}
	if (!path || frames < 0 || batch < 1 || batch > 100000)
		return usage();
	rng_state ^= (uint64_t)seed * 0x9E3779B97F4A7C15ULL;
	if (!rng_state)
		rng_state = 1;
	f = fopen(path, "wb");
	if (!f) {
		perror(path);
		return 1;
	}
	lt_buf_init(&inner, 0);
	lt_buf_init(&pkt, 0);
	lt_buf_init(&file, 0);
	lt_buf_init(&comp, 0);

	/* the auth reply */
	lt_bili_pack(&pkt, LT_BILI_VER_HB, LT_BILI_OP_AUTH_REPLY, 1, "{\"code\":0}", 10);
	lt_capture_append(&file, start, pkt.data, pkt.len);

	for (long long fr = 0; fr < frames; fr++) {
		int64_t ms = start + (fr + 1) * step;
		int v = !strcmp(ver, "mix") ? (int[]){3, 2, 0}[fr % 3] : atoi(ver);
		lt_buf_reset(&inner);
		lt_buf_reset(&pkt);
		for (long long k = 0; k < batch; k++) {
			struct lt_buf body = LT_BUF_INIT;
			lt_buf_init(&body, 0);
			message(&body, room, ms);
			lt_bili_pack(&inner, LT_BILI_VER_RAW, LT_BILI_OP_MESSAGE, 0, body.data, body.len);
			lt_buf_free(&body);
			messages++;
		}
		if (v == 3) {
			size_t cap = BrotliEncoderMaxCompressedSize(inner.len);
			lt_buf_reset(&comp);
			lt_buf_reserve(&comp, cap);
			size_t out = cap;
			if (!BrotliEncoderCompress(5, 22, BROTLI_MODE_TEXT, inner.len, inner.data, &out, comp.data))
				return fprintf(stderr, "brotli failed\n"), 1;
			lt_bili_pack(&pkt, 3, LT_BILI_OP_MESSAGE, 0, comp.data, out);
		} else if (v == 2) {
			uLongf out = compressBound(inner.len);
			lt_buf_reset(&comp);
			lt_buf_reserve(&comp, out);
			if (compress2(comp.data, &out, inner.data, inner.len, 6) != Z_OK)
				return fprintf(stderr, "zlib failed\n"), 1;
			lt_bili_pack(&pkt, 2, LT_BILI_OP_MESSAGE, 0, comp.data, out);
		} else {
			lt_buf_append(&pkt, inner.data, inner.len);
		}
		lt_capture_append(&file, ms, pkt.data, pkt.len);
		if (fr % 300 == 299) {
			/* heartbeat reply: pack_len 20, then the echo of our body */
			lt_buf_reset(&pkt);
			lt_buf_u32be(&pkt, 20);
			lt_buf_u16be(&pkt, 16);
			lt_buf_u16be(&pkt, 1);
			lt_buf_u32be(&pkt, 3);
			lt_buf_u32be(&pkt, 0);
			lt_buf_u32be(&pkt, 1);
			lt_buf_puts(&pkt, "[object Object]");
			lt_capture_append(&file, ms, pkt.data, pkt.len);
		}
		if (file.len > (1u << 20)) {
			if (lt_buf_err(&file) || fwrite(file.data, 1, file.len, f) != file.len)
				return perror(path), 1;
			lt_buf_reset(&file);
		}
	}
	if (lt_buf_err(&file) || fwrite(file.data, 1, file.len, f) != file.len || fclose(f) != 0)
		return perror(path), 1;
	printf("frames=%lld messages=%llu\n", frames, messages);
	lt_buf_free(&inner);
	lt_buf_free(&pkt);
	lt_buf_free(&file);
	lt_buf_free(&comp);
	return 0;
}
