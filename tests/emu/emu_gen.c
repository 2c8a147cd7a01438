/* SPDX-License-Identifier: MIT */
/*
 * emu_gen: the --generate traffic source of livetap-emu: plausible Chinese
 * live-room chat with a realistic mix of entries, likes, gifts, follows and
 * the occasional super chat or guard purchase, all drawn from emu_rand so that
 * one --seed always yields the same stream.
 *
 * The mix (per 1000 messages) follows what a mid-sized Bilibili room shows:
 * chat dominates, entries and likes come next, gifts are a few percent and
 * mostly cheap, paid messages are rare. Users come from a fixed pool so that
 * the same people talk more than once (user statistics have something to
 * count); a few of them are heavy talkers.
 *
 * Generated messages carry platform ids the way the platform would: chat a
 * 32-hex id_str, gifts a numeric tid, super chats a numeric id; the others
 * have none (msg_id empty), like on the real platform. The ids start with
 * the second the run began, so a restarted emulator never repeats one; all
 * else (text, users, kinds, amounts) depends on the seed only.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/mem.h"
#include "tests/emu/emu.h"

#define GEN_USERS 240

static const char *const phrases[] = {
	"哈哈哈哈哈哈", "666666", "主播好厉害", "这波操作可以", "来了来了", "晚上好", "打卡", "签到",
	"抽签", "前排", "awsl", "太强了吧", "笑死我了", "这是什么神仙操作", "主播今天状态不错",
	"下一把加油", "好听", "再来一首", "？？？", "离谱", "绝了", "冲冲冲", "yyds", "泪目", "妙啊",
	"啊这", "真实", "破防了", "好家伙", "有一说一确实不错", "弹幕护体", "第一次来，关注了",
	"从首页点进来的", "这个游戏叫什么名字", "主播几点下播", "晚安", "早上好", "主播吃饭了吗",
	"这BGM好好听", "求歌名", "爷青回", "典中典", "蚌埠住了", "草", "xswl", "nb", "GG",
	"这把稳了", "下饭操作", "刚来，发生了什么", "主播声音好好听", "今天播多久", "支持一下",
	"舰长好", "欢迎新朋友", "别急别急", "哈哈哈哈", "666", "高能预警", "前方高能",
};

static const char *const name_a[] = {
	"快乐的", "咸鱼", "夜猫子", "不吃香菜的", "摸鱼", "熬夜", "元气", "佛系", "暴躁", "路过的",
	"可爱的", "神秘", "沙雕", "睡不醒的", "爱吃糖的", "孤独的",
};
static const char *const name_b[] = {
	"小熊", "兔子", "橘猫", "柠檬", "土豆", "程序员", "学生党", "打工人", "萌新", "老哥",
	"鸽子", "仓鼠", "企鹅", "小白", "路人", "星星",
};

struct gift {
	int id;
	const char *name;
	int64_t price; /* per item, in the coin type's unit */
	const char *coin; /* "gold" (1000 = 1 CNY) or "silver" */
	int weight;
};

static const struct gift gifts[] = {
	{1, "辣条", 100, "silver", 30},
	{30607, "小心心", 0, "silver", 20},
	{31036, "小花花", 100, "gold", 15},
	{31039, "牛哇牛哇", 100, "gold", 15},
	{31164, "打call", 500, "gold", 8},
	{31225, "这个好诶", 1000, "gold", 6},
	{31040, "干杯", 6600, "gold", 3},
	{31702, "告白气球", 52000, "gold", 2},
	{31036, "i了i了", 1000, "gold", 1},
};

/* Message kinds and their weight per 1000. */
static const struct {
	int type;
	int weight;
} mix[] = {
	{LT_MSG_CHAT, 620}, {LT_MSG_ENTER, 150}, {LT_MSG_LIKE, 110}, {LT_MSG_GIFT, 80},
	{LT_MSG_FOLLOW, 20}, {LT_MSG_SHARE, 8}, {LT_MSG_ROOM_STATS, 6}, {LT_MSG_SUPERCHAT, 4},
	{LT_MSG_GUARD, 2},
};

static uint64_t gen_counter;
/* The platform ids of one run: the wall-clock second the generator started,
 * so that a restarted emulator (same seed, same chat) never repeats an id
 * that consumers have already seen and rightly dropped as a duplicate. */
static uint32_t run_nonce;

static struct lt_str arena_str(struct lt_arena *a, const char *s, size_t n)
{
	char *p = lt_arena_strndup(a, s, n);
	return p ? (struct lt_str){p, (uint32_t)n} : LT_STR_NULL;
}

static struct lt_str arena_printf_buf(struct lt_arena *a, struct lt_buf *b)
{
	struct lt_str s = lt_buf_err(b) ? LT_STR_NULL : arena_str(a, (const char *)b->data, b->len);
	lt_buf_reset(b);
	return s;
}

#define GEN_LIKERS 64
static uint32_t recent_likers[GEN_LIKERS];
static unsigned n_likers;

/* A user for a like who has not liked lately: the platform sends one click
 * event per user and burst, so two identical like events in one frame would
 * be unrealistic (and indistinguishable for any deduplicating consumer). */
static uint32_t pick_liker(struct emu *e)
{
	uint32_t u = emu_rand(e) % GEN_USERS;

	for (int tries = 0; tries < 64; tries++) {
		bool seen = false;
		for (unsigned i = 0; i < GEN_LIKERS && i < n_likers; i++)
			seen |= recent_likers[i] == u;
		if (!seen)
			break;
		u = emu_rand(e) % GEN_USERS;
	}
	recent_likers[n_likers++ % GEN_LIKERS] = u;
	return u;
}

#define GEN_GUARDS 16
static struct {
	uint64_t room; /* FNV-1a of the room */
	uint64_t uid;
	int64_t second;
} recent_guards[GEN_GUARDS];
static unsigned n_guards;

static uint64_t room_hash(const char *room)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *room; room++)
		h = (h ^ (uint8_t)*room) * 0x100000001b3ULL;
	return h;
}

/* True if uid bought a guard in room in this second already; remembers it
 * otherwise. GUARD_BUY carries no id and its time in whole seconds: two
 * identical purchases by one user in one second are one and the same
 * message to every consumer (and on the real platform), so the generator
 * never makes such twins. */
static bool guard_twin(const char *room, struct lt_str user_id, int64_t ts_ms)
{
	uint64_t r = room_hash(room), uid = 0;
	for (uint32_t i = 0; i < user_id.len; i++)
		uid = uid * 10 + (uint64_t)(user_id.p[i] - '0');
	for (unsigned i = 0; i < GEN_GUARDS && i < n_guards; i++)
		if (recent_guards[i].room == r && recent_guards[i].uid == uid && recent_guards[i].second == ts_ms / 1000)
			return true;
	unsigned k = n_guards++ % GEN_GUARDS;
	recent_guards[k].room = r;
	recent_guards[k].uid = uid;
	recent_guards[k].second = ts_ms / 1000;
	return false;
}

/* A user from the pool; low indices talk more (a skewed draw). */
static void pick_user(struct emu *e, struct lt_arena *a, struct lt_msg *m, bool liker)
{
	char buf[128];
	uint32_t r = emu_rand(e) % GEN_USERS;
	uint32_t u = liker ? pick_liker(e) : (emu_rand(e) & 3) == 0 ? r % 12 : r; /* a quarter: a regular */
	uint64_t uid = 3493100000ULL + (uint64_t)u * 7919ULL + (e ? emu_options(e)->seed % 1000 : 0);
	int n;

	n = snprintf(buf, sizeof(buf), "%" PRIu64, uid);
	m->user_id = arena_str(a, buf, (size_t)n);
	n = snprintf(buf, sizeof(buf), "%s%s%s", name_a[u % (sizeof(name_a) / sizeof(name_a[0]))],
	             name_b[(u / 16) % (sizeof(name_b) / sizeof(name_b[0]))], u % 3 == 0 ? "" : "_");
	if (u % 3 != 0)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%u", u * 37 % 1000);
	m->user_name = arena_str(a, buf, (size_t)n);
}

void emu_generate(struct emu *e, const char *room, struct lt_arena *a, struct lt_msg *m)
{
	struct lt_buf b = LT_BUF_INIT;
	int w = (int)(emu_rand(e) % 1000), type = LT_MSG_CHAT;
	size_t np = sizeof(phrases) / sizeof(phrases[0]);

	for (size_t i = 0; i < sizeof(mix) / sizeof(mix[0]); i++) {
		if (w < mix[i].weight) {
			type = mix[i].type;
			break;
		}
		w -= mix[i].weight;
	}
	memset(m, 0, sizeof(*m));
	m->type = (uint8_t)type;
	m->ts = emu_now_ms();
	m->room = lt_str_c(room);
	gen_counter++;
	if (!run_nonce)
		run_nonce = (uint32_t)(emu_now_ms() / 1000);
	pick_user(e, a, m, type == LT_MSG_LIKE);

	switch (type) {
	case LT_MSG_CHAT: {
		const char *p1 = phrases[emu_rand(e) % np];
		if (emu_rand(e) % 5 == 0)
			lt_buf_printf(&b, "%s%s", p1, phrases[emu_rand(e) % np]);
		else
			lt_buf_puts(&b, p1);
		m->content = arena_printf_buf(a, &b);
		lt_buf_printf(&b, "%08x%08x%08x%08x", run_nonce, emu_rand(e), emu_rand(e), emu_rand(e));
		m->msg_id = arena_printf_buf(a, &b);
		break;
	}
	case LT_MSG_GIFT: {
		int total = 0, r;
		const struct gift *g = &gifts[0];
		for (size_t i = 0; i < sizeof(gifts) / sizeof(gifts[0]); i++)
			total += gifts[i].weight;
		r = (int)(emu_rand(e) % (uint32_t)total);
		for (size_t i = 0; i < sizeof(gifts) / sizeof(gifts[0]); i++) {
			if (r < gifts[i].weight) {
				g = &gifts[i];
				break;
			}
			r -= gifts[i].weight;
		}
		m->count = (emu_rand(e) % 4 == 0) ? 1 + emu_rand(e) % 10 : 1;
		m->value = g->price * m->count;
		lt_buf_printf(&b, "%" PRIu64, (uint64_t)run_nonce * 1000000000 + gen_counter);
		m->msg_id = arena_printf_buf(a, &b);
		lt_buf_printf(&b, "投喂 %s", g->name);
		m->content = arena_printf_buf(a, &b);
		lt_buf_puts(&b, "{\"gift_name\":");
		lt_json_str(&b, g->name, strlen(g->name));
		lt_buf_printf(&b, ",\"gift_id\":%d,\"count\":%" PRId64 ",\"value\":%" PRId64 ",\"currency\":\"%s\"}", g->id,
		              m->count, m->value, g->coin);
		m->extra = arena_printf_buf(a, &b);
		break;
	}
	case LT_MSG_LIKE:
		m->count = 1;
		m->content = LT_STR("为主播点赞了");
		break;
	case LT_MSG_SUPERCHAT: {
		static const int64_t prices[] = {30, 30, 50, 100, 500};
		int64_t price = prices[emu_rand(e) % 5];
		lt_buf_printf(&b, "%" PRIu64, (uint64_t)(run_nonce % 100000) * 10000000 + gen_counter);
		m->msg_id = arena_printf_buf(a, &b);
		lt_buf_printf(&b, "主播加油！%s", phrases[emu_rand(e) % np]);
		m->content = arena_printf_buf(a, &b);
		m->count = 1;
		m->value = price * 1000;
		lt_buf_printf(&b, "{\"price_cny\":%" PRId64 ",\"currency\":\"gold\"}", price);
		m->extra = arena_printf_buf(a, &b);
		break;
	}
	case LT_MSG_GUARD:
		for (int tries = 0; tries < 64 && guard_twin(room, m->user_id, m->ts); tries++)
			pick_user(e, a, m, false);
		m->count = 1;
		m->value = 198000;
		m->content = LT_STR("开通了舰长");
		m->extra = LT_STR("{\"guard_level\":3,\"gift_name\":\"舰长\",\"currency\":\"gold\"}");
		break;
	case LT_MSG_ROOM_STATS:
		m->user_id = m->user_name = LT_STR_NULL;
		m->count = 1000 + emu_rand(e) % 4000;
		break;
	default: /* enter, follow, share: a user and nothing else */
		break;
	}
	lt_buf_free(&b);
}
