/* SPDX-License-Identifier: MIT */
/*
 * mkcapture_douyin: writes a capture file (fetcher/capture.h) of realistic
 * Douyin push frames, deterministic from a seed, for tests, benchmarks and
 * fuzz seeds.
 *
 *   mkcapture_douyin [--seed K] [--frames N] [--batch M] [--plain]
 *                    [--room R] [--start-ms T] [--step-ms S] -o FILE
 *
 * Every frame is a PushFrame holding one gzip'd Response (--plain: not
 * compressed) with M normalized messages (plus the repeat_end closers of
 * the gift combos, which count nothing); every 50th Response asks for an
 * ack and every 300th frame is a heartbeat answer. The mix follows a busy
 * room: chat ~52%, entries ~22%, likes ~12%, gifts ~9% (half of them
 * continuing a combo), follows and shares ~3%, room stats ~2%. A summary
 * line "frames=… messages=…" goes to stdout; every normalized message
 * decodes to exactly one output line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "fetcher/capture.h"
#include "fetcher/douyin.h"
#include "tests/support/douyin_enc.h"

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static const char *const chats[] = {
	"主播好！", "哈哈哈哈哈哈", "666666", "这波操作太秀了", "来了来了", "主播今天状态不错",
	"点赞点赞", "求主播唱一首晴天", "好听！", "第一次来，关注了", "晚上好呀大家", "这个多少钱",
	"上链接上链接", "主播几点下播", "太好笑了吧", "我来签到了", "抽签抽签", "啊啊啊啊啊",
	"支持主播", "今天吃什么", "有没有人一起", "nb", "awsl", "加油！！！",
};
static const char *const names[] = {
	"小明同学", "快乐的鱼", "用户8823", "夜猫子", "北京吃货", "星辰大海", "一只小可爱", "momo",
	"路人甲", "今天也要加油", "不吃香菜", "南方姑娘",
};
static const struct {
	const char *name;
	int64_t diamonds;
} gifts[] = {
	{"小心心", 1}, {"玫瑰", 1}, {"抖音", 1}, {"人气票", 1}, {"棒棒糖", 9}, {"大啤酒", 2}, {"加油鸭", 15},
	{"爱你哟", 52}, {"嘉年华", 30000},
};

static void usage(void)
{
	fputs("usage: mkcapture_douyin [--seed K] [--frames N] [--batch M] [--plain] [--room R]\n"
	      "                        [--start-ms T] [--step-ms S] -o FILE\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	uint64_t seed = 1, msgid = 7394284080632260335ULL;
	long frames = 1000, batch = 16;
	int64_t t = 1732212345000LL, step = 100;
	const char *out = NULL;
	bool plain = false;
	struct dyenc d;
	struct lt_buf fb = LT_BUF_INIT, cap = LT_BUF_INIT;
	long nmsgs = 0;
	char uidbuf[24], cur_user[24] = "", cur_name[64] = "";
	int cur_gift = -1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--plain")) {
			plain = true;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--seed"))
			seed = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--frames"))
			frames = strtol(v, NULL, 10);
		else if (!strcmp(a, "--batch"))
			batch = strtol(v, NULL, 10);
		else if (!strcmp(a, "--room"))
			(void)v; /* the room is the replay's --room; frames carry the webcast id */
		else if (!strcmp(a, "--start-ms"))
			t = strtoll(v, NULL, 10);
		else if (!strcmp(a, "--step-ms"))
			step = strtoll(v, NULL, 10);
		else if (!strcmp(a, "-o"))
			out = v;
		else
			usage();
	}
	if (!out || frames <= 0 || batch <= 0)
		usage();
	rng_state ^= seed * 0x9e3779b97f4a7c15ULL;
	if (!rng_state)
		rng_state = 1;
	msgid += seed * 100000000ULL;
	dyenc_init(&d, 7319999999999999999ULL);
	lt_buf_init(&fb, 0);
	lt_buf_init(&cap, 0);
	FILE *f = fopen(out, "wb");
	if (!f) {
		perror(out);
		return 1;
	}
	for (long fr = 0; fr < frames; fr++) {
		t += step;
		lt_buf_reset(&fb);
		if (fr % 300 == 299) {
			lt_buf_append(&fb, LT_DY_HEARTBEAT_FRAME, sizeof(LT_DY_HEARTBEAT_FRAME) - 1);
		} else {
			for (long k = 0; k < batch; k++) {
				struct lt_msg m;
				memset(&m, 0, sizeof(m));
				m.platform = LT_PLATFORM_DOUYIN;
				m.ts = t - (int64_t)(rnd() % 500);
				uint64_t uid = 10000000 + rnd() % 500000;
				snprintf(uidbuf, sizeof(uidbuf), "%llu", (unsigned long long)uid);
				m.user_id = lt_str_c(uidbuf);
				m.user_name = lt_str_c(names[rnd() % (sizeof(names) / sizeof(names[0]))]);
				unsigned r = (unsigned)(rnd() % 100);
				if (r < 52) {
					m.type = LT_MSG_CHAT;
					m.content = lt_str_c(chats[rnd() % (sizeof(chats) / sizeof(chats[0]))]);
				} else if (r < 74) {
					m.type = LT_MSG_ENTER;
				} else if (r < 86) {
					m.type = LT_MSG_LIKE;
					m.count = 1 + (int64_t)(rnd() % 15);
				} else if (r < 95) {
					int gi;
					if (cur_gift >= 0 && rnd() % 2) { /* the combo goes on */
						gi = cur_gift;
						m.user_id = lt_str_c(cur_user);
						m.user_name = lt_str_c(cur_name);
					} else {
						gi = (int)(rnd() % (sizeof(gifts) / sizeof(gifts[0])));
						cur_gift = gi;
						snprintf(cur_user, sizeof(cur_user), "%s", uidbuf);
						snprintf(cur_name, sizeof(cur_name), "%.*s", (int)m.user_name.len, m.user_name.p);
					}
					m.type = LT_MSG_GIFT;
					m.count = 1 + (int64_t)(rnd() % 3);
					m.value = m.count * gifts[gi].diamonds;
					m.content = lt_str_c(gifts[gi].name);
				} else if (r < 98) {
					m.type = rnd() % 2 ? LT_MSG_FOLLOW : LT_MSG_SHARE;
				} else {
					m.type = LT_MSG_ROOM_STATS;
					m.count = 1000 + (int64_t)(rnd() % 5000);
					m.user_id = m.user_name = LT_STR_NULL;
					m.flags |= LT_MSGF_ANONYMOUS;
				}
				if (dyenc_add(&d, &m, msgid++) == LT_OK)
					nmsgs++;
			}
			struct dyenc_frame_opts o = {.gzip = !plain, .need_ack = fr % 50 == 0, .seq_id = (uint64_t)fr + 1,
			                             .log_id = 7394284080632260335ULL + (uint64_t)fr, .now_ms = t};
			if (dyenc_frame(&d, &fb, &o) != LT_OK) {
				fprintf(stderr, "mkcapture_douyin: out of memory\n");
				return 1;
			}
		}
		lt_buf_reset(&cap);
		lt_capture_append(&cap, t, fb.data, fb.len);
		if (lt_buf_err(&cap) || fwrite(cap.data, 1, cap.len, f) != cap.len) {
			fprintf(stderr, "mkcapture_douyin: %s: write failed\n", out);
			return 1;
		}
	}
	if (fclose(f) != 0) {
		perror(out);
		return 1;
	}
	printf("frames=%ld messages=%ld\n", frames, nmsgs);
	dyenc_free(&d);
	lt_buf_free(&fb);
	lt_buf_free(&cap);
	return 0;
}
