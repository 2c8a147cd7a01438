/* SPDX-License-Identifier: MIT */
/*
 * test_processor: lt_processor_apply against the real Redis (and, for the
 * keyword rules, the real PostgreSQL) that tests/run starts.
 *
 * - every counter of a mixed batch (chat, gift, like, super chat, enter,
 *   anonymous) lands where contract.md says;
 * - the same batch applied twice leaves every key of the room byte-identical
 *   (DUMP) and a real subscriber sees each message published once;
 * - overlapping batches count the union; a duplicate inside a batch counts once;
 * - the hot-word windows and trend scores equal the C reference model
 *   (hotwords.c) step by step under an injected clock, and a sudden word
 *   outranks an always-there word by trend but not by count;
 * - malformed batches and records are counted and dropped, the rest applies;
 * - a Redis that is down gives LT_EREDIS with backoff; a flushed script
 *   cache (NOSCRIPT) is reloaded;
 * - keyword rules from PostgreSQL block hot words and publish alerts once;
 *   check-in streaks and the fortune draw are exactly once per day.
 * Each test uses its own room, so nothing needs flushing.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/redisconn.h"
#include "common/wire.h"
#include "processor/hotwords.h"
#include "processor/plugin.h"
#include "processor/plugins/keywords.h"
#include "processor/processor.h"
#include "processor/redis_sink.h"
#include "tests/support/testsupport.h"

static int room_seq;

static void room_name(char *out, size_t cap, const char *tag)
{
	snprintf(out, cap, "it%d%s%d%lld", (int)getpid(), tag, room_seq++, (long long)(lt_clock_wall_ms() % 100000));
}

static redisContext *rconn(void)
{
	redisContext *c = NULL;
	struct lt_error e = {0};
	ck_assert_msg(lt_redis_connect(lt_test_redis_url(), 2000, &c, &e) == LT_OK, "redis: %s", e.message);
	return c;
}

static struct lt_processor *proc_open(const char *url, const char *dsn)
{
	struct lt_processor_opts o = {.redis_url = url, .pg_dsn = dsn, .keywords_refresh_ms = 200};
	struct lt_processor *p = NULL;
	struct lt_error e = {0};
	ck_assert_msg(lt_processor_open(&o, &p, &e) == LT_OK, "open: %s", e.message);
	return p;
}

static struct lt_msg mk(const char *room, int type, const char *id, const char *uid, const char *name,
			const char *content, int64_t ts)
{
	struct lt_msg m = {0};
	m.platform = LT_PLATFORM_BILIBILI;
	m.type = (uint8_t)type;
	m.ts = ts;
	m.room = lt_str_c(room);
	m.msg_id = lt_str_c(id);
	m.user_id = lt_str_c(uid);
	m.user_name = lt_str_c(name);
	m.content = lt_str_c(content);
	if (!*uid)
		m.flags |= LT_MSGF_ANONYMOUS;
	return m;
}

static void batch(struct lt_buf *b, const struct lt_msg *ms, int n, uint64_t seq)
{
	ck_assert_int_eq(lt_wire_batch_begin(b, LT_WIRE_KIND_DATA, 0, "itest", seq), LT_OK);
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(lt_wire_batch_add(b, &ms[i]), LT_OK);
}

static long long hget_ll(redisContext *c, const char *key, const char *field)
{
	redisReply *r = redisCommand(c, "HGET %s %s", key, field);
	long long v = -1;
	ck_assert_ptr_nonnull(r);
	if (r->type == REDIS_REPLY_STRING)
		v = atoll(r->str);
	freeReplyObject(r);
	return v;
}

static double zscore(redisContext *c, const char *key, const char *member)
{
	redisReply *r = redisCommand(c, "ZSCORE %s %s", key, member);
	double v = -1;
	ck_assert_ptr_nonnull(r);
	if (r->type == REDIS_REPLY_STRING)
		v = atof(r->str);
	freeReplyObject(r);
	return v;
}

static long long integer(redisContext *c, const char *fmt, const char *key)
{
	redisReply *r = redisCommand(c, fmt, key);
	long long v;
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
	v = r->integer;
	freeReplyObject(r);
	return v;
}

/* Every key of the room, sorted, with its DUMP bytes: equal strings mean
 * byte-identical Redis state. Sets are the exception: Redis 7.0 keeps them
 * as hash tables whose DUMP order follows incremental rehashing (a mere
 * SISMEMBER can move it), so a set is compared by its sorted members. */
static char *snapshot(redisContext *c, const char *room)
{
	struct lt_buf out = LT_BUF_INIT;
	redisReply *keys;
	char pattern[128];

	snprintf(pattern, sizeof(pattern), "live:{bilibili:%s}*", room);
	keys = redisCommand(c, "EVAL %s 0 %s", "local k = redis.call('KEYS', ARGV[1]) table.sort(k) "
				       "local o = {} for _, x in ipairs(k) do o[#o+1] = x "
				       "if redis.call('TYPE', x).ok == 'set' then local m = redis.call('SMEMBERS', x) "
				       "table.sort(m) o[#o+1] = table.concat(m, ',') "
				       "else o[#o+1] = redis.call('DUMP', x) end end "
				       "return o", pattern);
	ck_assert_ptr_nonnull(keys);
	ck_assert_int_eq(keys->type, REDIS_REPLY_ARRAY);
	ck_assert_int_gt(keys->elements, 10);
	for (size_t i = 0; i + 1 < keys->elements; i += 2) {
		lt_buf_append(&out, keys->element[i]->str, keys->element[i]->len);
		lt_buf_putc(&out, '=');
		for (size_t j = 0; j < keys->element[i + 1]->len; j++)
			lt_buf_printf(&out, "%02x", (unsigned char)keys->element[i + 1]->str[j]);
		lt_buf_putc(&out, '\n');
	}
	freeReplyObject(keys);
	return (char *)lt_buf_steal(&out, NULL);
}

/* Equal snapshots, or fail naming the first key that differs. */
static void assert_same(const char *a, const char *b)
{
	size_t i = 0, line = 0;

	while (a[i] && a[i] == b[i]) {
		if (a[i] == '\n')
			line = i + 1;
		i++;
	}
	ck_assert_msg(a[i] == b[i], "state changed at key %.60s", a + line);
}

/* A real subscriber on one channel, counting messages in a thread. */
struct sub {
	redisContext *c;
	pthread_t t;
	atomic_int count;   /* payloads other than the sentinel */
	atomic_int fortune; /* payloads from the fortune plugin */
	atomic_int sentinels;
};

static void *sub_loop(void *arg)
{
	struct sub *s = arg;
	redisReply *r;

	while (redisGetReply(s->c, (void **)&r) == REDIS_OK) {
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING) {
			if (strcmp(r->element[2]->str, "__sentinel__") == 0)
				atomic_fetch_add(&s->sentinels, 1);
			else
				atomic_fetch_add(&s->count, 1);
			if (strstr(r->element[2]->str, "\"plugin\":\"fortune\""))
				atomic_fetch_add(&s->fortune, 1);
		}
		freeReplyObject(r);
	}
	return NULL;
}

static void sub_start(struct sub *s, const char *channel)
{
	redisReply *r;
	memset(s, 0, sizeof(*s));
	s->c = rconn();
	/* no read timeout: the subscriber waits as long as the test needs */
	redisSetTimeout(s->c, (struct timeval){0, 0});
	r = redisCommand(s->c, "SUBSCRIBE %s", channel);
	ck_assert_ptr_nonnull(r);
	freeReplyObject(r);
	ck_assert_int_eq(pthread_create(&s->t, NULL, sub_loop, s), 0);
}

/* Publish a sentinel and wait until the subscriber saw it: everything
 * published before has been counted. */
static void sub_sync(struct sub *s, redisContext *c, const char *channel)
{
	int want = atomic_load(&s->sentinels) + 1;
	redisReply *r = redisCommand(c, "PUBLISH %s __sentinel__", channel);
	freeReplyObject(r);
	for (int i = 0; i < 1000 && atomic_load(&s->sentinels) < want; i++)
		usleep(10000);
	ck_assert_int_eq(atomic_load(&s->sentinels), want);
}

static void sub_stop(struct sub *s)
{
	shutdown(s->c->fd, SHUT_RDWR);
	pthread_join(s->t, NULL);
	redisFree(s->c);
}

START_TEST(mixed_batch_exactly_once)
{
	char room[64], key[160], chan[96];
	int64_t now = lt_clock_wall_ms(), ts = now - 1000;
	struct lt_msg ms[10];
	struct lt_buf b = LT_BUF_INIT;
	struct lt_processor *p = proc_open(lt_test_redis_url(), NULL);
	struct lt_processor_stats st;
	redisContext *c = rconn();
	struct sub s;
	char *snap1, *snap2;

	room_name(room, sizeof(room), "mix");
	snprintf(chan, sizeof(chan), "live:{bilibili:%s}", room);
	sub_start(&s, chan);
	ms[0] = mk(room, LT_MSG_CHAT, "m0", "u1", "Alice", "主播太强了破防了666666", ts);
	ms[1] = mk(room, LT_MSG_CHAT, "m1", "u2", "Bob", "破防了哈哈哈哈", ts);
	ms[2] = mk(room, LT_MSG_CHAT, "m2", "u1", "Alice2", "yyds", ts + 1);
	ms[3] = mk(room, LT_MSG_GIFT, "m3", "u2", "Bob", "辣条", ts);
	ms[3].count = 3;
	ms[3].value = 300;
	ms[4] = mk(room, LT_MSG_LIKE, "m4", "u3", "Carol", "", ts);
	ms[4].count = 5;
	ms[5] = mk(room, LT_MSG_CHAT, "m5", "", "***", "破防了", ts);
	ms[6] = mk(room, LT_MSG_SUPERCHAT, "m6", "u3", "Carol", "前方高能", ts + 5);
	ms[6].value = 3000;
	ms[7] = mk(room, LT_MSG_ENTER, "m7", "u4", "Dave", "", ts - 50);
	ms[8] = mk(room, LT_MSG_CHAT, "", "u4", "Dave", "synthetic id here", ts);
	ms[9] = mk(room, LT_MSG_ENTER, "m9", "u5", "Eve", "", ts);
	batch(&b, ms, 10, 1);

	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:user:u1", room);
	ck_assert_int_eq(hget_ll(c, key, "messages"), 2);
	ck_assert_int_eq(hget_ll(c, key, "first_seen"), ts);
	ck_assert_int_eq(hget_ll(c, key, "last_seen"), ts + 1);
	{
		redisReply *r = redisCommand(c, "HGET %s name", key);
		ck_assert_str_eq(r->str, "Alice2");
		freeReplyObject(r);
	}
	ck_assert_int_gt(integer(c, "TTL %s", key), 1700);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:user:u2", room);
	ck_assert_int_eq(hget_ll(c, key, "messages"), 1);
	ck_assert_int_eq(hget_ll(c, key, "gifts"), 3);
	ck_assert_int_eq(hget_ll(c, key, "gift_value"), 300);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:user:u3", room);
	ck_assert_int_eq(hget_ll(c, key, "likes"), 5);
	ck_assert_int_eq(hget_ll(c, key, "messages"), 1);
	ck_assert_int_eq(hget_ll(c, key, "gift_value"), 3000);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:user:u4", room);
	ck_assert_int_eq(hget_ll(c, key, "first_seen"), ts - 50);
	ck_assert_int_eq(hget_ll(c, key, "messages"), 1);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:user:u5", room);
	ck_assert_int_eq(hget_ll(c, key, "first_seen"), ts);
	ck_assert_int_eq(hget_ll(c, key, "messages"), -1);
	ck_assert_int_gt(integer(c, "TTL %s", key), 1700);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:user:", room);
	ck_assert_int_eq(integer(c, "EXISTS %s", key), 0);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:user_stats", room);
	ck_assert_int_eq(integer(c, "ZCARD %s", key), 4);
	ck_assert(zscore(c, key, "u1") == 2);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:hotwords:1m", room);
	ck_assert(zscore(c, key, "破防了") == 3);
	ck_assert(zscore(c, key, "666") == 1);
	ck_assert(zscore(c, key, "哈哈哈") == 1);
	ck_assert(zscore(c, key, "yyds") == 1);
	ck_assert(zscore(c, key, "前方高能") == 1);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:hotwords:30m", room);
	ck_assert(zscore(c, key, "破防了") == 3);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:messages", room);
	ck_assert_int_eq(integer(c, "XLEN %s", key), 10);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:session:d%lld", room, (long long)(now / 86400000));
	ck_assert_int_eq(hget_ll(c, key, "messages"), 6);
	ck_assert_int_eq(hget_ll(c, key, "gifts"), 3);
	ck_assert_int_eq(hget_ll(c, key, "likes"), 5);
	ck_assert_int_eq(hget_ll(c, key, "gift_value"), 3300);
	sub_sync(&s, c, chan);
	ck_assert_int_eq(atomic_load(&s.count), 10);

	/* the same batch again: nothing changes, nothing is published */
	snap1 = snapshot(c, room);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	snap2 = snapshot(c, room);
	assert_same(snap1, snap2);
	sub_sync(&s, c, chan);
	ck_assert_int_eq(atomic_load(&s.count), 10);
	lt_processor_stats(p, &st);
	ck_assert_int_eq(st.batches, 2);
	ck_assert_int_eq(st.messages, 20);
	ck_assert_int_eq(st.fresh, 10);
	ck_assert_int_eq(st.duplicates, 10);

	free(snap1);
	free(snap2);
	sub_stop(&s);
	redisFree(c);
	lt_buf_free(&b);
	lt_processor_close(p);
}
END_TEST

START_TEST(overlap_and_inner_duplicates)
{
	char room[64], key[160], id[16];
	int64_t now = lt_clock_wall_ms();
	struct lt_msg ms[10];
	struct lt_buf b = LT_BUF_INIT;
	struct lt_processor *p = proc_open(lt_test_redis_url(), NULL);
	redisContext *c = rconn();
	char ids[10][8];

	room_name(room, sizeof(room), "ovl");
	for (int i = 0; i < 10; i++) {
		snprintf(ids[i], sizeof(ids[i]), "o%d", i);
		ms[i] = mk(room, LT_MSG_CHAT, ids[i], i % 2 ? "odd" : "even", "x", "overlapword", now - 10);
	}
	batch(&b, ms, 6, 1); /* o0..o5 */
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	batch(&b, ms + 3, 7, 2); /* o3..o9: o3..o5 already seen */
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	/* a batch repeating one new message twice */
	snprintf(id, sizeof(id), "o10");
	ms[0] = mk(room, LT_MSG_CHAT, id, "even", "x", "overlapword", now - 10);
	ms[1] = ms[0];
	batch(&b, ms, 2, 3);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);

	snprintf(key, sizeof(key), "live:{bilibili:%s}:user:even", room);
	ck_assert_int_eq(hget_ll(c, key, "messages"), 6);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:user:odd", room);
	ck_assert_int_eq(hget_ll(c, key, "messages"), 5);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:hotwords:5m", room);
	ck_assert(zscore(c, key, "overlapword") == 11);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:messages", room);
	ck_assert_int_eq(integer(c, "XLEN %s", key), 11);
	redisFree(c);
	lt_buf_free(&b);
	lt_processor_close(p);
}
END_TEST

/* A batch that is partly new: the per-user hash (one HMGET and one HSET per
 * key in apply.lua) takes only the new messages' counts, extremes and name,
 * and the user_stats mirror follows the counter. */
START_TEST(partly_new_batch_hash_fields)
{
	char room[64], key[160];
	int64_t now = lt_clock_wall_ms(), t = now - 1000;
	struct lt_msg ms[4];
	struct lt_buf b = LT_BUF_INIT;
	struct lt_processor *p = proc_open(lt_test_redis_url(), NULL);
	redisContext *c = rconn();
	redisReply *r;

	room_name(room, sizeof(room), "part");
	ms[0] = mk(room, LT_MSG_CHAT, "h0", "u1", "A", "hello", t - 100);
	ms[1] = mk(room, LT_MSG_GIFT, "h1", "u1", "B", "gift", t - 50);
	ms[1].count = 2;
	ms[1].value = 20;
	batch(&b, ms, 2, 1);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	ms[2] = mk(room, LT_MSG_CHAT, "h3", "u1", "C", "again", t - 80);
	ms[3] = mk(room, LT_MSG_GIFT, "h4", "u1", "D", "gift", t - 10);
	ms[3].count = 3;
	ms[3].value = 30;
	batch(&b, ms, 4, 2); /* h0, h1 again, h3 and h4 new */
	for (int round = 0; round < 2; round++) {
		ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
		snprintf(key, sizeof(key), "live:{bilibili:%s}:user:u1", room);
		ck_assert_int_eq(hget_ll(c, key, "messages"), 2);
		ck_assert_int_eq(hget_ll(c, key, "gifts"), 5);
		ck_assert_int_eq(hget_ll(c, key, "gift_value"), 50);
		ck_assert_int_eq(hget_ll(c, key, "first_seen"), t - 100);
		ck_assert_int_eq(hget_ll(c, key, "last_seen"), t - 10);
		r = redisCommand(c, "HGET %s name", key);
		ck_assert_str_eq(r->str, "D");
		freeReplyObject(r);
		snprintf(key, sizeof(key), "live:{bilibili:%s}:user_stats", room);
		ck_assert(zscore(c, key, "u1") == 2);
	}
	redisFree(c);
	lt_buf_free(&b);
	lt_processor_close(p);
}
END_TEST

/* A user's name is written only when it differs from the stored one
 * (apply.lua reads it with the counters), yet a message whose only change
 * to the hash would be that name still counts for the key: its TTL is
 * refreshed as when the name was written again. */
START_TEST(unchanged_name_keeps_ttl_refresh)
{
	char room[64], key[160];
	int64_t now = lt_clock_wall_ms(), t = now - 120000; /* last_seen older than a minute */
	struct lt_msg m;
	struct lt_buf b = LT_BUF_INIT;
	struct lt_processor *p = proc_open(lt_test_redis_url(), NULL);
	redisContext *c = rconn();
	redisReply *r;

	room_name(room, sizeof(room), "samename");
	snprintf(key, sizeof(key), "live:{bilibili:%s}:user:u1", room);
	m = mk(room, LT_MSG_ENTER, "n0", "u1", "Alice", "", t);
	batch(&b, &m, 1, 1);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	ck_assert_int_eq(integer(c, "EXPIRE %s 100", key), 1);
	/* same name, same ts: no field changes */
	m = mk(room, LT_MSG_ENTER, "n1", "u1", "Alice", "", t);
	batch(&b, &m, 1, 2);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	ck_assert_int_gt(integer(c, "TTL %s", key), 1700);
	r = redisCommand(c, "HGET %s name", key);
	ck_assert_str_eq(r->str, "Alice");
	freeReplyObject(r);
	ck_assert_int_eq(hget_ll(c, key, "first_seen"), t);
	ck_assert_int_eq(hget_ll(c, key, "last_seen"), t);
	/* a new name is written */
	m = mk(room, LT_MSG_ENTER, "n2", "u1", "Alicia", "", t);
	batch(&b, &m, 1, 3);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	r = redisCommand(c, "HGET %s name", key);
	ck_assert_str_eq(r->str, "Alicia");
	freeReplyObject(r);
	redisFree(c);
	lt_buf_free(&b);
	lt_processor_close(p);
}
END_TEST

static void compare_model(redisContext *c, const char *room, const struct lt_hotwords *h, const char *const *words,
			  int nwords)
{
	char key[160];

	for (int w = 0; w < LT_HW_NWIN; w++) {
		snprintf(key, sizeof(key), "live:{bilibili:%s}:hotwords:%s", room, lt_hotwords_window_name[w]);
		for (int i = 0; i < nwords; i++) {
			int64_t want = lt_hotwords_count(h, w, words[i]);
			double got = zscore(c, key, words[i]);
			ck_assert_msg(got == (want ? (double)want : -1), "%s %s: redis %g, model %lld", key, words[i], got,
				      (long long)want);
		}
	}
	for (int w = LT_HW_1M; w <= LT_HW_5M; w++) {
		snprintf(key, sizeof(key), "live:{bilibili:%s}:hotwords:trend:%s", room, lt_hotwords_window_name[w]);
		for (int i = 0; i < nwords; i++) {
			int present;
			double want = lt_hotwords_score(h, w, words[i], &present);
			double got = zscore(c, key, words[i]);
			if (!present)
				ck_assert_msg(got == -1, "%s %s: redis has %g, model none", key, words[i], got);
			else
				ck_assert_msg(fabs(got - want) < 1e-9, "%s %s: redis %g, model %g", key, words[i], got, want);
		}
	}
}

START_TEST(hotword_windows_follow_the_model)
{
	static const char *const words[] = {"steadyword", "spikeword"};
	char room[64], key[160];
	int64_t t0 = (lt_clock_wall_ms() / 10000) * 10000 - 40 * 60000, now = t0;
	struct lt_processor *p = proc_open(lt_test_redis_url(), NULL);
	struct lt_hotwords *h;
	redisContext *c = rconn();
	struct lt_buf b = LT_BUF_INIT;
	int seq = 0;

	ck_assert_int_eq(lt_hotwords_new(&h), LT_OK);
	room_name(room, sizeof(room), "hw");
	/* 35 minutes, a step every 20 s; steadyword twice a step; spikeword 8
	 * times a step during the last 2 minutes */
	for (int step = 0; step < 105; step++) {
		struct lt_msg ms[10];
		char ids[10][24];
		int n = 0;
		now = t0 + (int64_t)step * 20000 + 3000;
		for (int i = 0; i < 2; i++, n++) {
			snprintf(ids[n], sizeof(ids[n]), "s%d-%d", step, i);
			ms[n] = mk(room, LT_MSG_CHAT, ids[n], "u", "u", "steadyword", now - 2500);
			ck_assert_int_eq(lt_hotwords_add(h, "steadyword", now - 2500, 1, now), LT_OK);
		}
		if (step >= 99)
			for (int i = 0; i < 8; i++, n++) {
				snprintf(ids[n], sizeof(ids[n]), "k%d-%d", step, i);
				ms[n] = mk(room, LT_MSG_CHAT, ids[n], "v", "v", "spikeword!", now);
				ck_assert_int_eq(lt_hotwords_add(h, "spikeword", now, 1, now), LT_OK);
			}
		batch(&b, ms, n, (uint64_t)++seq);
		ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
		compare_model(c, room, h, words, 2);
	}
	/* by count the steady word leads the 30-minute window; by trend the spike */
	snprintf(key, sizeof(key), "live:{bilibili:%s}:hotwords:30m", room);
	ck_assert(zscore(c, key, "steadyword") > zscore(c, key, "spikeword"));
	snprintf(key, sizeof(key), "live:{bilibili:%s}:hotwords:trend:5m", room);
	{
		redisReply *r = redisCommand(c, "ZREVRANGE %s 0 0", key);
		ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
		ck_assert_int_eq(r->elements, 1);
		ck_assert_str_eq(r->element[0]->str, "spikeword");
		freeReplyObject(r);
	}
	/* quiet room: the tick alone moves the windows, and ticking twice at the
	 * same time changes nothing */
	now += 65000;
	ck_assert_int_eq(lt_processor_tick(p, now), LT_OK);
	ck_assert_int_eq(lt_processor_tick(p, now), LT_OK);
	lt_hotwords_tick(h, now);
	compare_model(c, room, h, words, 2);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:hotwords:1m", room);
	ck_assert_int_eq(integer(c, "ZCARD %s", key), 0);
	now += 6 * 60000;
	ck_assert_int_eq(lt_processor_tick(p, now), LT_OK);
	lt_hotwords_tick(h, now);
	compare_model(c, room, h, words, 2);

	lt_hotwords_free(h);
	redisFree(c);
	lt_buf_free(&b);
	lt_processor_close(p);
}
END_TEST

/* More distinct hot words in one call than apply.lua puts in one command
 * (it reads and writes a bucket or a window 1000 words at a time): every
 * chunk is counted, a second batch adds to the stored counts, and a tick
 * that takes the bucket out of 1m empties 1m and trend:1m while 5m keeps
 * its counts, as in the model (which holds up to 1024 words: it follows the
 * first NM, the others have the same counts, hence the same scores). */
/* every word's score in every window and trend set is the first word's */
static void same_scores(redisContext *c, const char *room, const char *const *words, int nwords)
{
	static const char *const sets[] = {"1m", "5m", "30m", "trend:1m", "trend:5m"};
	char key[160];

	for (size_t k = 0; k < sizeof(sets) / sizeof(sets[0]); k++) {
		snprintf(key, sizeof(key), "live:{bilibili:%s}:hotwords:%s", room, sets[k]);
		double want = zscore(c, key, words[0]);
		for (int i = 1; i < nwords; i++)
			ck_assert_msg(zscore(c, key, words[i]) == want, "%s %s: %g, %s: %g", key, words[i],
				      zscore(c, key, words[i]), words[0], want);
	}
}

START_TEST(hotwords_more_than_a_chunk)
{
	enum { NW = 1100, NM = 1000 };
	static char words[NW][8], ids[NW][16];
	static const char *wp[NW];
	static struct lt_msg ms[NW];
	char room[64], key[160];
	int64_t now = (lt_clock_wall_ms() / 10000) * 10000 + 5000;
	struct lt_processor *p = proc_open(lt_test_redis_url(), NULL);
	struct lt_hotwords *h;
	redisContext *c = rconn();
	struct lt_buf b = LT_BUF_INIT;

	ck_assert_int_eq(lt_hotwords_new(&h), LT_OK);
	room_name(room, sizeof(room), "hwc");
	for (int i = 0; i < NW; i++) {
		snprintf(words[i], sizeof(words[i]), "zq%c%c%c", 'a' + i / 676, 'a' + i / 26 % 26, 'a' + i % 26);
		wp[i] = words[i];
	}
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < NW; i++) {
			snprintf(ids[i], sizeof(ids[i]), "c%d-%d", round, i);
			ms[i] = mk(room, LT_MSG_CHAT, ids[i], "u", "u", words[i], now - 1000);
			if (i < NM)
				ck_assert_int_eq(lt_hotwords_add(h, words[i], now - 1000, 1, now), LT_OK);
		}
		batch(&b, ms, NW, (uint64_t)round + 1);
		ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	}
	snprintf(key, sizeof(key), "live:{bilibili:%s}:hotwords:30m", room);
	ck_assert_int_eq(integer(c, "ZCARD %s", key), NW);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:hotwords:trend:1m", room);
	ck_assert_int_eq(integer(c, "ZCARD %s", key), NW);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:hotwords:b:%lld", room, (long long)((now - 1000) / 10000));
	ck_assert_int_eq(integer(c, "HLEN %s", key), NW);
	ck_assert_int_eq(hget_ll(c, key, words[NW - 1]), 2);
	compare_model(c, room, h, wp, NM);
	same_scores(c, room, wp, NW);

	now += 65000;
	ck_assert_int_eq(lt_processor_tick(p, now), LT_OK);
	lt_hotwords_tick(h, now);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:hotwords:1m", room);
	ck_assert_int_eq(integer(c, "EXISTS %s", key), 0);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:hotwords:trend:1m", room);
	ck_assert_int_eq(integer(c, "ZCARD %s", key), 0);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:hotwords:5m", room);
	ck_assert_int_eq(integer(c, "ZCARD %s", key), NW);
	compare_model(c, room, h, wp, NM);
	same_scores(c, room, wp, NW);

	lt_hotwords_free(h);
	redisFree(c);
	lt_buf_free(&b);
	lt_processor_close(p);
}
END_TEST

START_TEST(malformed_input)
{
	char room[64], key[160];
	int64_t now = lt_clock_wall_ms();
	struct lt_msg ms[2];
	struct lt_buf b = LT_BUF_INIT;
	struct lt_processor *p = proc_open(lt_test_redis_url(), NULL);
	struct lt_processor_stats st;
	redisContext *c = rconn();
	static const uint8_t junk[] = "LTB\x09garbage that is not a batch";

	room_name(room, sizeof(room), "bad");
	ck_assert_int_eq(lt_processor_apply(p, junk, sizeof(junk), now), LT_EPROTO);
	ck_assert_int_eq(lt_processor_apply(p, junk, 0, now), LT_EPROTO);
	ck_assert_int_eq(lt_wire_ack_encode(&b, LT_WIRE_CONSUMER_PROCESSOR, "x", 1), LT_OK);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_EPROTO);
	ms[0] = mk(room, LT_MSG_CHAT, "b0", "u1", "a", "first", now);
	ms[1] = mk(room, LT_MSG_CHAT, "b1", "u1", "a", "second", now);
	batch(&b, ms, 2, 1);
	/* break the first record's version byte: header 21 + source, then u32 len */
	b.data[21 + strlen("itest") + 4] = 99;
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	lt_processor_stats(p, &st);
	ck_assert_int_eq(st.malformed_batches, 3);
	ck_assert_int_eq(st.malformed_records, 1);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:user:u1", room);
	ck_assert_int_eq(hget_ll(c, key, "messages"), 1);
	redisFree(c);
	lt_buf_free(&b);
	lt_processor_close(p);
}
END_TEST

START_TEST(redis_down_and_noscript)
{
	char room[64], key[160];
	int64_t now = lt_clock_wall_ms();
	struct lt_msg m;
	struct lt_buf b = LT_BUF_INIT;
	struct lt_processor *p = proc_open("redis://127.0.0.1:1/0", NULL);
	struct lt_processor_stats st;
	redisContext *c = rconn();
	redisReply *r;

	room_name(room, sizeof(room), "down");
	m = mk(room, LT_MSG_CHAT, "d0", "u1", "a", "hello", now);
	batch(&b, &m, 1, 1);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_EREDIS);
	ck_assert_int_gt(lt_processor_retry_ms(p), 0);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_EREDIS);
	lt_processor_stats(p, &st);
	ck_assert_int_eq(st.redis_errors, 2);
	ck_assert_int_eq(st.batches, 0);
	lt_processor_close(p);

	p = proc_open(lt_test_redis_url(), NULL);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	r = redisCommand(c, "SCRIPT FLUSH");
	freeReplyObject(r);
	m = mk(room, LT_MSG_CHAT, "d1", "u1", "a", "hello", now);
	batch(&b, &m, 1, 2);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:user:u1", room);
	ck_assert_int_eq(hget_ll(c, key, "messages"), 2);
	redisFree(c);
	lt_buf_free(&b);
	lt_processor_close(p);
}
END_TEST

static void pg_exec(PGconn *pg, const char *sql)
{
	PGresult *res = PQexec(pg, sql);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s",
		      sql, PQresultErrorMessage(res));
	PQclear(res);
}

START_TEST(plugins_keywords_checkin_fortune)
{
	char room[64], key[200], chan[96], achan[112], sql[512];
	int64_t day_ms = 86400000, now = lt_clock_wall_ms();
	struct lt_msg ms[4];
	struct lt_buf b = LT_BUF_INIT;
	PGconn *pg = PQconnectdb(lt_test_pg_dsn());
	struct lt_processor *p;
	redisContext *c = rconn();
	struct sub s, a;
	uint64_t loads0;
	char plugins[128];

	ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "pg: %s", PQerrorMessage(pg));
	room_name(room, sizeof(room), "plg");
	pg_exec(pg, "CREATE TABLE IF NOT EXISTS keyword_rules (id bigserial PRIMARY KEY, room text NULL, "
		    "kind text NOT NULL, pattern text NOT NULL, enabled bool NOT NULL DEFAULT true)");
	snprintf(sql, sizeof(sql),
		 "INSERT INTO keyword_rules (room, kind, pattern, enabled) VALUES "
		 "('bilibili:%s', 'block', 'blockme', true), ('%s', 'alert', '报警词', true), "
		 "('bilibili:%s', 'block', 'hello', false), ('other:room', 'block', 'allowed', true)",
		 room, room, room);
	pg_exec(pg, sql);
	loads0 = lt_keywords_loads();
	p = proc_open(lt_test_redis_url(), lt_test_pg_dsn());
	lt_processor_plugins(p, plugins, sizeof(plugins));
	ck_assert_str_eq(plugins, "keywords,hotwords,userstats,checkin,fortune");
	for (int i = 0; i < 500 && lt_keywords_loads() <= loads0; i++)
		usleep(10000);
	ck_assert_uint_gt(lt_keywords_loads(), loads0);

	snprintf(chan, sizeof(chan), "live:{bilibili:%s}", room);
	snprintf(achan, sizeof(achan), "live:{bilibili:%s}:alerts", room);
	sub_start(&s, chan);
	sub_start(&a, achan);
	ms[0] = mk(room, LT_MSG_CHAT, "p0", "u1", "Alice", "blockme123 allowed hello", now);
	ms[1] = mk(room, LT_MSG_CHAT, "p1", "u2", "Bob", "有人说报警词了", now);
	ms[2] = mk(room, LT_MSG_CHAT, "p2", "u1", "Alice", " 签到 ", now);
	ms[3] = mk(room, LT_MSG_CHAT, "p3", "u1", "Alice", "抽签", now);
	batch(&b, ms, 4, 1);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:hotwords:1m", room);
	ck_assert(zscore(c, key, "blockme123") == -1);
	ck_assert(zscore(c, key, "allowed") == 1);
	ck_assert(zscore(c, key, "hello") == 1);
	sub_sync(&a, c, achan);
	ck_assert_int_eq(atomic_load(&a.count), 1);
	sub_sync(&s, c, chan);
	ck_assert_int_eq(atomic_load(&s.count), 5); /* 4 messages + 1 fortune */
	ck_assert_int_eq(atomic_load(&s.fortune), 1);

	/* check-in: same day again (new message) counts nothing; next day streaks */
	snprintf(key, sizeof(key), "live:{bilibili:%s}:checkin:u1", room);
	ck_assert_int_eq(hget_ll(c, key, "count"), 1);
	ck_assert_int_eq(hget_ll(c, key, "streak"), 1);
	ms[0] = mk(room, LT_MSG_CHAT, "p4", "u1", "Alice", "签到", now + 1);
	ms[1] = mk(room, LT_MSG_CHAT, "p5", "u1", "Alice", "抽签", now + 1);
	batch(&b, ms, 2, 2);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now + 1), LT_OK);
	ck_assert_int_eq(hget_ll(c, key, "count"), 1);
	ms[0] = mk(room, LT_MSG_CHAT, "p6", "u1", "Alice", "签到", now + day_ms);
	batch(&b, ms, 1, 3);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now + day_ms), LT_OK);
	ck_assert_int_eq(hget_ll(c, key, "count"), 2);
	ck_assert_int_eq(hget_ll(c, key, "streak"), 2);
	ms[0] = mk(room, LT_MSG_CHAT, "p7", "u1", "Alice", "签到", now + 3 * day_ms);
	batch(&b, ms, 1, 4);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now + 3 * day_ms), LT_OK);
	ck_assert_int_eq(hget_ll(c, key, "count"), 3);
	ck_assert_int_eq(hget_ll(c, key, "streak"), 1);
	sub_sync(&s, c, chan);
	ck_assert_int_eq(atomic_load(&s.fortune), 1);

	snprintf(sql, sizeof(sql), "DELETE FROM keyword_rules WHERE room IN ('bilibili:%s', '%s', 'other:room')", room,
		 room);
	pg_exec(pg, sql);
	sub_stop(&s);
	sub_stop(&a);
	PQfinish(pg);
	redisFree(c);
	lt_buf_free(&b);
	lt_processor_close(p);
}
END_TEST

/* ---- plugin lifecycle: order, dependencies, failures ---------------------- */

static char calls[256];

static void note(const char *name)
{
	if (strlen(calls) + strlen(name) + 2 < sizeof(calls)) {
		strcat(calls, name);
		strcat(calls, ",");
	}
}

static int t_init_fail(const struct lt_plugin_env *env, void **state, struct lt_error *e)
{
	(void)env;
	(void)state;
	return lt_error_set(e, LT_EINVAL, "refusing on purpose");
}

static int t_b_msg(void *st, struct lt_proc_msg *pm, struct lt_ops *o)
{
	(void)st;
	(void)pm;
	(void)o;
	note("b");
	return LT_OK;
}

static int t_a_msg(void *st, struct lt_proc_msg *pm, struct lt_ops *o)
{
	(void)st;
	(void)pm;
	(void)o;
	note("a");
	return LT_OK;
}

static int t_flaky_msg(void *st, struct lt_proc_msg *pm, struct lt_ops *o)
{
	(void)st;
	note("f");
	if (lt_str_eqc(pm->m->content, "boom"))
		return LT_EINVAL;
	return lt_ops_hincr(o, pm, "flaky", "calls", 1, 60);
}

static int t_after_msg(void *st, struct lt_proc_msg *pm, struct lt_ops *o)
{
	(void)st;
	(void)pm;
	(void)o;
	note("x");
	return LT_OK;
}

static const char *const dep_b[] = {"t_b", NULL};
static const char *const dep_badinit[] = {"t_badinit", NULL};
static const char *const dep_flaky[] = {"t_flaky", NULL};
static const char *const dep_nope[] = {"nope", NULL};
static const struct lt_plugin t_badinit = {.name = "t_badinit", .priority = 1, .init = t_init_fail};
static const struct lt_plugin t_needsbad = {.name = "t_needsbad", .priority = 2, .depends_on = dep_badinit,
					    .on_message = t_a_msg};
static const struct lt_plugin t_missing = {.name = "t_missing", .priority = 3, .depends_on = dep_nope,
					   .on_message = t_a_msg};
static const struct lt_plugin t_a = {.name = "t_a", .priority = 5, .depends_on = dep_b, .on_message = t_a_msg};
static const struct lt_plugin t_b = {.name = "t_b", .priority = 90, .on_message = t_b_msg};
static const struct lt_plugin t_flaky = {.name = "t_flaky", .priority = 95, .on_message = t_flaky_msg};
static const struct lt_plugin t_after = {.name = "t_after", .priority = 96, .depends_on = dep_flaky,
					 .on_message = t_after_msg};

START_TEST(apply_many_together)
{
	char room[64], key[160], ids[10][8];
	int64_t now = lt_clock_wall_ms();
	struct lt_msg ms[10];
	struct lt_buf a = LT_BUF_INIT, b = LT_BUF_INIT;
	struct lt_processor *p = proc_open(lt_test_redis_url(), NULL);
	struct lt_processor_input in[3];
	struct lt_processor_stats st;
	static const uint8_t junk[] = "not a batch";
	int rcs[3];
	redisContext *c = rconn();

	room_name(room, sizeof(room), "many");
	for (int i = 0; i < 10; i++) {
		snprintf(ids[i], sizeof(ids[i]), "n%d", i);
		ms[i] = mk(room, LT_MSG_CHAT, ids[i], "u1", "x", "manyword", now);
	}
	batch(&a, ms, 6, 1);     /* n0..n5 */
	batch(&b, ms + 3, 7, 2); /* n3..n9 */
	in[0] = (struct lt_processor_input){a.data, a.len};
	in[1] = (struct lt_processor_input){junk, sizeof(junk)};
	in[2] = (struct lt_processor_input){b.data, b.len};
	ck_assert_int_eq(lt_processor_apply_many(p, in, 3, now, rcs), LT_OK);
	ck_assert_int_eq(rcs[0], LT_OK);
	ck_assert_int_eq(rcs[1], LT_EPROTO);
	ck_assert_int_eq(rcs[2], LT_OK);
	ck_assert_int_eq(lt_processor_apply_many(p, in, 3, now, rcs), LT_OK);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:user:u1", room);
	ck_assert_int_eq(hget_ll(c, key, "messages"), 10);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:user_stats", room);
	ck_assert(zscore(c, key, "u1") == 10);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:hotwords:1m", room);
	ck_assert(zscore(c, key, "manyword") == 10);
	lt_processor_stats(p, &st);
	ck_assert_int_eq(st.batches, 4);
	ck_assert_int_eq(st.fresh, 10);
	ck_assert_int_eq(st.duplicates, 16);
	redisFree(c);
	lt_buf_free(&a);
	lt_buf_free(&b);
	lt_processor_close(p);
}
END_TEST

/* ---- bad input: deterministic, many seeds -------------------------------- */

/* A fixed clock for the bad-input tests: runs differ in nothing. In the past,
 * so that stream trimming (MINID now - 5 min against Redis's own ids) keeps
 * every entry. */
#define FIXED_NOW 1704067200000LL /* 2024-01-01T00:00:00Z */

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Delete every key of a fixed room, so that a test with fixed names starts
 * from nothing however often it runs against the same Redis. */
static void room_wipe(redisContext *c, const char *room)
{
	char pattern[128];
	redisReply *r;

	snprintf(pattern, sizeof(pattern), "live:{bilibili:%s}*", room);
	r = redisCommand(c, "EVAL %s 0 %s",
			 "for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) end return 0", pattern);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_ne(r->type, REDIS_REPLY_ERROR);
	freeReplyObject(r);
}

static double metric(const char *name, const char *label)
{
	return lt_metrics_value(lt_metrics_series(lt_metrics_counter(name, "", label ? "what" : NULL, NULL), label,
						  NULL));
}

/* Random byte corruption (and truncation) of a valid batch, 500 rounds from a
 * fixed seed: every outcome is LT_OK or LT_EPROTO, never a Redis error (the
 * records that still decode are checked before the script sees them), and a
 * clean batch applies afterwards. */
START_TEST(corrupted_batches_never_crash)
{
	char key[160], ids[20][8];
	const char *room = "fuzzbytes";
	struct lt_msg ms[20];
	struct lt_buf b = LT_BUF_INIT;
	struct lt_processor *p = proc_open(lt_test_redis_url(), NULL);
	struct lt_processor_stats st;
	uint8_t *copy;
	uint64_t x = 88172645463325252ull;
	redisContext *c = rconn();

	room_wipe(c, room);
	for (int i = 0; i < 20; i++) {
		snprintf(ids[i], sizeof(ids[i]), "f%d", i);
		ms[i] = mk(room, i % 3 ? LT_MSG_CHAT : LT_MSG_GIFT, ids[i], "u1", "x", "fuzz 破防了 [doge] 签到",
			   FIXED_NOW - 1000);
	}
	batch(&b, ms, 20, 1);
	copy = malloc(b.len);
	ck_assert_ptr_nonnull(copy);
	for (int round = 0; round < 500; round++) {
		size_t len = b.len;
		int rc;
		memcpy(copy, b.data, b.len);
		for (int k = 0; k < 1 + round % 8; k++) {
			xorshift(&x);
			copy[x % b.len] = (uint8_t)(x >> 32);
		}
		if (round % 5 == 0)
			len = (size_t)(x % b.len); /* truncated too */
		rc = lt_processor_apply(p, copy, len, FIXED_NOW);
		ck_assert_msg(rc == LT_OK || rc == LT_EPROTO, "round %d: %s", round, lt_strerror(rc));
	}
	lt_processor_stats(p, &st);
	ck_assert_uint_eq(st.redis_errors, 0);
	ck_assert_uint_eq(st.refused_records, 0);
	ck_assert_uint_gt(st.invalid_records, 0);
	/* and a clean batch still applies */
	ms[0] = mk(room, LT_MSG_CHAT, "clean", "u9", "x", "clean", FIXED_NOW);
	batch(&b, ms, 1, 2);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, FIXED_NOW), LT_OK);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:user:u9", room);
	ck_assert_int_eq(hget_ll(c, key, "messages"), 1);
	free(copy);
	redisFree(c);
	lt_buf_free(&b);
	lt_processor_close(p);
}
END_TEST

/* What one generated batch should do. */
struct fuzz_expect {
	int applied, invalid, undecodable, repaired;
	int64_t messages[5], gifts[5], gift_value[5]; /* per user u0..u4 */
};

/* Batch `seed` of the record-corruption test: 8 records from a PRNG seeded
 * by seed alone. Most are good chats and gifts; some carry a value the
 * processor must refuse (each rule of sanitize.h, including the 2^62 gift
 * value that used to make apply.lua's HINCRBY fail), some invalid UTF-8 it
 * must repair, some a broken version byte the decoder refuses. */
static void fuzz_batch(struct lt_buf *b, const char *room, int seed, struct fuzz_expect *e)
{
	static char ids[8][24], uids[8][8];
	static const char *const bad_rooms[] = {"", "a}b", "x{y", "sp ace", "n\nl"};
	uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(seed + 1);
	size_t rec_at[8];
	int broken[8] = {0};
	struct lt_msg m;

	ck_assert_int_eq(lt_wire_batch_begin(b, LT_WIRE_KIND_DATA, 0, "fuzzsrc", (uint64_t)seed), LT_OK);
	for (int i = 0; i < 8; i++) {
		int fate = (int)(xorshift(&x) % 16), user = (int)(xorshift(&x) % 5), gift = xorshift(&x) % 3 == 0;
		int64_t ts = FIXED_NOW - 1000 - (int64_t)(xorshift(&x) % 3600000);
		int valid = 1;

		snprintf(ids[i], sizeof(ids[i]), "r%d-%d", seed, i);
		snprintf(uids[i], sizeof(uids[i]), "u%d", user);
		m = mk(room, gift ? LT_MSG_GIFT : LT_MSG_CHAT, ids[i], uids[i], "name", "fuzz 破防了 yyds", ts);
		if (gift) {
			m.count = 1 + (int64_t)(xorshift(&x) % 10);
			m.value = (int64_t)(xorshift(&x) % 100000);
		}
		switch (fate) {
		case 0:
			m.ts = (int64_t)xorshift(&x) | INT64_MIN; /* negative */
			valid = 0;
			break;
		case 1:
			m.ts = FIXED_NOW + 2 * 86400000LL + (int64_t)(xorshift(&x) % 1000000000);
			valid = 0;
			break;
		case 2:
			m.type = LT_MSG_GIFT;
			m.count = 1;
			m.value = (int64_t)1 << 62;
			valid = 0;
			break;
		case 3:
			m.type = LT_MSG_LIKE;
			m.count = -(int64_t)(1 + xorshift(&x) % 100);
			valid = 0;
			break;
		case 4:
			m.room = lt_str_c(bad_rooms[xorshift(&x) % 5]);
			valid = 0;
			break;
		case 5:
			m.msg_id = lt_str_c("bad\x01id");
			valid = 0;
			break;
		case 6:
			m.user_id = lt_str_c("u\xff");
			valid = 0;
			break;
		case 7:
			m.platform = LT_PLATFORM_UNKNOWN;
			valid = 0;
			break;
		case 8:
			m.content = lt_str_c("broken \xe4\xbd utf-8 \xff");
			m.user_name = lt_str_c("\xc0\xaf");
			e->repaired++;
			break;
		case 9:
			broken[i] = 1;
			break;
		default:
			break;
		}
		rec_at[i] = b->len + 4;
		ck_assert_int_eq(lt_wire_batch_add(b, &m), LT_OK);
		if (broken[i]) {
			e->undecodable++;
		} else if (!valid) {
			e->invalid++;
		} else {
			e->applied++;
			if (m.type == LT_MSG_CHAT)
				e->messages[user]++;
			if (m.type == LT_MSG_GIFT) {
				e->gifts[user] += m.count;
				e->gift_value[user] += m.value;
			}
		}
	}
	for (int i = 0; i < 8; i++)
		if (broken[i])
			b->data[rec_at[i]] = 99; /* the record's version byte */
}

/* 500 batches with corrupted records, each from its own fixed seed, each
 * applied twice: every batch is acknowledged (LT_OK), every good record is
 * applied exactly once, the repaired ones too, and the counters and metrics
 * of refused records equal what the generator corrupted. */
START_TEST(corrupted_records_never_take_their_batch)
{
	const char *room = "fuzzrecords";
	struct fuzz_expect e = {0};
	struct lt_buf b = LT_BUF_INIT;
	struct lt_processor *p;
	struct lt_processor_stats st;
	redisContext *c = rconn();
	char key[160];
	double invalid0 = metric("livetap_processor_malformed_total", "invalid");
	double undecodable0 = metric("livetap_processor_malformed_total", "record");
	double repaired0 = metric("livetap_processor_repaired_total", NULL);

	room_wipe(c, room);
	p = proc_open(lt_test_redis_url(), NULL);
	for (int pass = 0; pass < 2; pass++) {
		for (int seed = 0; seed < 500; seed++) {
			struct fuzz_expect one = {0};
			int rc;
			fuzz_batch(&b, room, seed, pass == 0 ? &e : &one);
			rc = lt_processor_apply(p, b.data, b.len, FIXED_NOW);
			ck_assert_msg(rc == LT_OK, "pass %d seed %d: %s", pass, seed, lt_strerror(rc));
		}
		lt_processor_stats(p, &st);
		ck_assert_uint_eq(st.batches, (uint64_t)(pass + 1) * 500);
		ck_assert_uint_eq(st.invalid_records, (uint64_t)(pass + 1) * (uint64_t)e.invalid);
		ck_assert_uint_eq(st.malformed_records, (uint64_t)(pass + 1) * (uint64_t)e.undecodable);
		ck_assert_uint_eq(st.repaired_records, (uint64_t)(pass + 1) * (uint64_t)e.repaired);
		ck_assert_uint_eq(st.refused_records, 0);
		ck_assert_uint_eq(st.redis_errors, 0);
		ck_assert_uint_eq(st.fresh, (uint64_t)e.applied);
		ck_assert_uint_eq(st.duplicates, (uint64_t)pass * (uint64_t)e.applied);
		for (int u = 0; u < 5; u++) {
			snprintf(key, sizeof(key), "live:{bilibili:%s}:user:u%d", room, u);
			ck_assert_int_eq(hget_ll(c, key, "messages"), e.messages[u]);
			ck_assert_int_eq(hget_ll(c, key, "gifts"), e.gifts[u] ? e.gifts[u] : -1);
			ck_assert_int_eq(hget_ll(c, key, "gift_value"), e.gift_value[u] ? e.gift_value[u] : -1);
		}
		snprintf(key, sizeof(key), "live:{bilibili:%s}:messages", room);
		ck_assert_int_eq(integer(c, "XLEN %s", key), e.applied);
	}
	/* the generator hit every kind of damage, often */
	ck_assert_int_gt(e.invalid, 500);
	ck_assert_int_gt(e.undecodable, 100);
	ck_assert_int_gt(e.repaired, 100);
	ck_assert(metric("livetap_processor_malformed_total", "invalid") - invalid0 == 2.0 * e.invalid);
	ck_assert(metric("livetap_processor_malformed_total", "record") - undecodable0 == 2.0 * e.undecodable);
	ck_assert(metric("livetap_processor_repaired_total", NULL) - repaired0 == 2.0 * e.repaired);
	/* a repaired message went out as valid UTF-8, flagged in extra */
	{
		redisReply *r;
		snprintf(key, sizeof(key), "live:{bilibili:%s}:messages", room);
		r = redisCommand(c, "EVAL %s 1 %s",
				 "for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do "
				 "if string.find(e[2][2], 'broken', 1, true) then return e[2][2] end end return ''",
				 key);
		ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
		ck_assert_ptr_nonnull(strstr(r->str, "\"content\":\"broken \xef\xbf\xbd utf-8 \xef\xbf\xbd\""));
		ck_assert_ptr_nonnull(strstr(r->str, "\"extra\":{\"repaired\":true}"));
		freeReplyObject(r);
	}
	redisFree(c);
	lt_buf_free(&b);
	lt_processor_close(p);
}
END_TEST

/* A plugin whose op apply.lua must refuse (a total beyond 2^53) for messages
 * that say "poison": the script refuses the room's call before any write,
 * the processor applies the call's messages in halves and drops only the
 * poisoned ones; the batch is acknowledged, its good messages count once. */
static int t_poison_msg(void *st, struct lt_proc_msg *pm, struct lt_ops *o)
{
	(void)st;
	if (lt_str_eqc(pm->m->content, "poison"))
		return lt_ops_hincr(o, pm, "poison", "n", (int64_t)1 << 60, 60);
	return LT_OK;
}

static const struct lt_plugin t_poison = {.name = "t_poison", .priority = 99, .on_message = t_poison_msg};

START_TEST(script_refusal_drops_only_the_record)
{
	static const struct lt_plugin *const extra[] = {&t_poison, NULL};
	struct lt_processor_opts o = {.redis_url = lt_test_redis_url(), .extra_plugins = extra};
	const char *room = "poison";
	struct lt_processor *p = NULL;
	struct lt_processor_stats st;
	struct lt_error e = {0};
	struct lt_msg ms[7];
	struct lt_buf b = LT_BUF_INIT;
	char key[160], ids[7][8];
	redisContext *c = rconn();
	double refused0 = metric("livetap_processor_malformed_total", "refused");

	room_wipe(c, room);
	ck_assert_int_eq(lt_processor_open(&o, &p, &e), LT_OK);
	for (int i = 0; i < 7; i++) {
		snprintf(ids[i], sizeof(ids[i]), "p%d", i);
		ms[i] = mk(room, LT_MSG_CHAT, ids[i], "u1", "a", i == 1 || i == 5 ? "poison" : "fine", FIXED_NOW - 10);
	}
	batch(&b, ms, 7, 1);
	for (int round = 1; round <= 2; round++) {
		ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, FIXED_NOW), LT_OK);
		lt_processor_stats(p, &st);
		ck_assert_uint_eq(st.refused_records, 2 * (uint64_t)round);
		ck_assert_uint_eq(st.redis_errors, 0);
		ck_assert_uint_eq(st.batches, (uint64_t)round);
		snprintf(key, sizeof(key), "live:{bilibili:%s}:user:u1", room);
		ck_assert_int_eq(hget_ll(c, key, "messages"), 5);
		snprintf(key, sizeof(key), "live:{bilibili:%s}:messages", room);
		ck_assert_int_eq(integer(c, "XLEN %s", key), 5);
		snprintf(key, sizeof(key), "live:{bilibili:%s}:poison", room);
		ck_assert_int_eq(integer(c, "EXISTS %s", key), 0);
	}
	ck_assert(metric("livetap_processor_malformed_total", "refused") - refused0 == 4.0);
	redisFree(c);
	lt_buf_free(&b);
	lt_processor_close(p);
}
END_TEST

/* apply_many pipelines one script call per room: a flushed script cache
 * (NOSCRIPT on every call in flight) and a refused call in the middle of
 * the pipe are each applied again on their own; every other room is applied
 * once, in full. */
START_TEST(pipelined_rooms_recover_alone)
{
	static const struct lt_plugin *const extra[] = {&t_poison, NULL};
	struct lt_processor_opts o = {.redis_url = lt_test_redis_url(), .extra_plugins = extra};
	struct lt_processor *p = NULL;
	struct lt_processor_stats st;
	struct lt_error e = {0};
	struct lt_buf b[5] = {LT_BUF_INIT, LT_BUF_INIT, LT_BUF_INIT, LT_BUF_INIT, LT_BUF_INIT};
	struct lt_processor_input in[5];
	char rooms[5][16], ids[5][3][16], key[160];
	int rcs[5];
	redisContext *c = rconn();
	redisReply *r;

	ck_assert_int_eq(lt_processor_open(&o, &p, &e), LT_OK);
	for (int round = 0; round < 2; round++) {
		for (int k = 0; k < 5; k++) {
			struct lt_msg ms[3];
			snprintf(rooms[k], sizeof(rooms[k]), "pipe%d", k);
			if (round == 0)
				room_wipe(c, rooms[k]);
			for (int i = 0; i < 3; i++) {
				snprintf(ids[k][i], sizeof(ids[k][i]), "q%d-%d-%d", round, k, i);
				ms[i] = mk(rooms[k], LT_MSG_CHAT, ids[k][i], "u1", "a",
					   round == 1 && k == 2 && i == 1 ? "poison" : "fine", FIXED_NOW - 10);
			}
			batch(&b[k], ms, 3, (uint64_t)(round * 5 + k + 1));
			in[k] = (struct lt_processor_input){b[k].data, b[k].len};
		}
		if (round == 0) {
			r = redisCommand(c, "SCRIPT FLUSH");
			freeReplyObject(r);
		}
		ck_assert_int_eq(lt_processor_apply_many(p, in, 5, FIXED_NOW, rcs), LT_OK);
		for (int k = 0; k < 5; k++)
			ck_assert_int_eq(rcs[k], LT_OK);
		/* the same batches again: all duplicates, nothing changes */
		ck_assert_int_eq(lt_processor_apply_many(p, in, 5, FIXED_NOW, rcs), LT_OK);
	}
	lt_processor_stats(p, &st);
	ck_assert_uint_eq(st.refused_records, 2);
	ck_assert_uint_eq(st.fresh, 29);
	ck_assert_uint_eq(st.redis_errors, 0);
	for (int k = 0; k < 5; k++) {
		snprintf(key, sizeof(key), "live:{bilibili:%s}:user:u1", rooms[k]);
		ck_assert_int_eq(hget_ll(c, key, "messages"), k == 2 ? 5 : 6);
		snprintf(key, sizeof(key), "live:{bilibili:%s}:messages", rooms[k]);
		ck_assert_int_eq(integer(c, "XLEN %s", key), k == 2 ? 5 : 6);
	}
	for (int k = 0; k < 5; k++)
		lt_buf_free(&b[k]);
	redisFree(c);
	lt_processor_close(p);
}
END_TEST

/* On its first connect the sink reads the listpack settings and logs a hint
 * when they are above what livetap's Redis uses (docs/OPERATIONS.md). */
static bool sink_logs_hint(redisContext *c, const char *zset_entries)
{
	char path[] = "/tmp/lt-sinklog.XXXXXX", line[512];
	int fd = mkstemp(path);
	bool hint = false;
	struct lt_redis_sink *s = NULL;
	struct lt_redis_apply_reply r;
	struct lt_error e = {0};
	const char *argv[4] = {"live:{bilibili:sinkhint}", "1704067200000", "", "0"};
	size_t lens[4] = {24, 13, 0, 1};
	redisReply *rr;

	ck_assert_int_ge(fd, 0);
	close(fd);
	rr = redisCommand(c, "CONFIG SET zset-max-listpack-entries %s", zset_entries);
	ck_assert(rr && rr->type == REDIS_REPLY_STATUS);
	freeReplyObject(rr);
	lt_log_set_stderr(false);
	ck_assert_int_eq(lt_log_open_file(path, 1 << 20, 0), 0);
	ck_assert_int_eq(lt_redis_sink_open(lt_test_redis_url(), 2000, &s, &e), LT_OK);
	ck_assert_int_eq(lt_redis_sink_apply(s, 4, argv, lens, &r), LT_OK); /* connects */
	lt_redis_sink_close(s);
	lt_log_close();
	lt_log_set_stderr(true);
	rr = redisCommand(c, "CONFIG SET zset-max-listpack-entries 16");
	freeReplyObject(rr);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "zset-max-listpack-entries") && strstr(line, zset_entries))
			hint = true;
	fclose(f);
	unlink(path);
	return hint;
}

START_TEST(redis_sink_hints_at_listpack_settings)
{
	redisContext *c = rconn();
	ck_assert(sink_logs_hint(c, "128"));
	ck_assert(!sink_logs_hint(c, "8"));
	redisFree(c);
}
END_TEST

/* redis_sink tells a refusal by the script (deterministic: LT_EINVAL, the
 * processor bisects) from a transient error (LT_EREDIS, no ack): apply.lua
 * refuses a call whose shape is wrong before its first write. */
START_TEST(redis_sink_tells_refusals_apart)
{
	struct lt_redis_sink *s = NULL;
	struct lt_redis_apply_reply r;
	struct lt_error e = {0};
	const char *argv[13] = {"live:{bilibili:sinktest}", "1704067200000", "", "0", "2840111:1,", "m1", "{}",
				"0", "0", "1", "user:x", "", "a"};
	/* hash key shapes: ttl, nf, (field, k) ..., nm, each ended by a NUL */
	static const char shape[] = "0\0" "1\0" "a\0" "i\0" "0\0";
	static const char no_ttl[] = "1\0" "a\0" "i\0" "0\0";
	size_t lens[13];
	redisContext *c = rconn();
	redisReply *rr;

	for (int i = 0; i < 13; i++)
		lens[i] = strlen(argv[i]);
	rr = redisCommand(c, "DEL live:{bilibili:sinktest}:seen:2840111 live:{bilibili:sinktest}:user:x");
	freeReplyObject(rr);
	ck_assert_int_eq(lt_redis_sink_open(lt_test_redis_url(), 2000, &s, &e), LT_OK);
	ck_assert_int_eq(lt_redis_sink_apply(s, 4, argv, lens, &r), LT_OK);
	argv[1] = "-5";
	lens[1] = 2;
	ck_assert_int_eq(lt_redis_sink_apply(s, 4, argv, lens, &r), LT_EINVAL);
	argv[1] = "1704067200000";
	lens[1] = strlen(argv[1]);
	argv[3] = "not a count";
	lens[3] = strlen(argv[3]);
	ck_assert_int_eq(lt_redis_sink_apply(s, 4, argv, lens, &r), LT_EINVAL);
	argv[3] = "1";
	lens[3] = 1;
	ck_assert_int_eq(lt_redis_sink_apply(s, 6, argv, lens, &r), LT_EINVAL); /* 1 of 2 message args */
	argv[5] = "";
	lens[5] = 0;
	ck_assert_int_eq(lt_redis_sink_apply(s, 7, argv, lens, &r), LT_EINVAL); /* empty msg_id */
	argv[5] = "m1";
	lens[5] = 2;
	/* the marker sets' runs must cover the messages exactly */
	{
		static const char *const bad[] = {"2840111:2,", "2840111:0,", "", "2840111:1", "x2840111:1,",
						  "2840111:1,2840112:0,x"};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			argv[4] = bad[i];
			lens[4] = strlen(bad[i]);
			ck_assert_int_eq(lt_redis_sink_apply(s, 7, argv, lens, &r), LT_EINVAL);
		}
		argv[4] = "2840111:1,";
		lens[4] = strlen(argv[4]);
	}
	/* the plan's sections must end with the last argument, a hash key's
	 * shape must be well formed: refused before the marker is written */
	ck_assert_int_eq(lt_redis_sink_apply(s, 9, argv, lens, &r), LT_EINVAL);  /* no ng */
	ck_assert_int_eq(lt_redis_sink_apply(s, 11, argv, lens, &r), LT_EINVAL); /* no shape */
	ck_assert_int_eq(lt_redis_sink_apply(s, 12, argv, lens, &r), LT_EINVAL); /* empty shape */
	argv[11] = no_ttl;
	lens[11] = sizeof(no_ttl) - 1;
	ck_assert_int_eq(lt_redis_sink_apply(s, 13, argv, lens, &r), LT_EINVAL);
	argv[11] = shape;
	lens[11] = sizeof(shape) - 1;
	ck_assert_int_eq(lt_redis_sink_apply(s, 12, argv, lens, &r), LT_EINVAL); /* its value missing */
	ck_assert_int_eq(integer(c, "EXISTS %s", "live:{bilibili:sinktest}:seen:2840111"), 0);
	argv[12] = "7";
	lens[12] = 1;
	ck_assert_int_eq(lt_redis_sink_apply(s, 13, argv, lens, &r), LT_OK); /* well formed */
	ck_assert_int_eq(r.fresh, 1);
	ck_assert_int_eq(hget_ll(c, "live:{bilibili:sinktest}:user:x", "a"), 7);
	/* a mirror's member: the hash key from byte 5 on (from = 5), or an
	 * argument (from = 0); a from that is not a count is refused */
	{
		static const char by_key[] = "0\0" "1\0" "m\0" "i\0" "1\0" "m\0" "rank\0" "0\0" "5\0";
		static const char by_arg[] = "0\0" "1\0" "m\0" "i\0" "1\0" "m\0" "rank\0" "0\0" "0\0";
		static const char bad_from[] = "0\0" "1\0" "m\0" "i\0" "1\0" "m\0" "rank\0" "0\0" "x\0";
		const char *mv[15] = {"live:{bilibili:sinktest}", "1704067200000", "", "0", "", "0", "0", "2",
				      "user:ab", by_key, "3", "user:cd", by_arg, "4", "zz"};
		size_t ml[15];
		for (int i = 0; i < 15; i++)
			ml[i] = strlen(mv[i]);
		ml[9] = sizeof(by_key) - 1;
		ml[12] = sizeof(by_arg) - 1;
		rr = redisCommand(c, "DEL live:{bilibili:sinktest}:rank live:{bilibili:sinktest}:user:ab "
				     "live:{bilibili:sinktest}:user:cd");
		freeReplyObject(rr);
		ck_assert_int_eq(lt_redis_sink_apply(s, 14, mv, ml, &r), LT_EINVAL); /* member argument missing */
		mv[9] = bad_from;
		ml[9] = sizeof(bad_from) - 1;
		ck_assert_int_eq(lt_redis_sink_apply(s, 15, mv, ml, &r), LT_EINVAL);
		mv[9] = by_key;
		ml[9] = sizeof(by_key) - 1;
		ck_assert_int_eq(lt_redis_sink_apply(s, 15, mv, ml, &r), LT_OK);
		ck_assert(zscore(c, "live:{bilibili:sinktest}:rank", "ab") == 3);
		ck_assert(zscore(c, "live:{bilibili:sinktest}:rank", "zz") == 4);
		ck_assert_int_eq(integer(c, "ZCARD %s", "live:{bilibili:sinktest}:rank"), 2);
	}
	/* pipelined, the same answers in order */
	argv[3] = "0";
	lens[3] = 1;
	ck_assert_int_eq(lt_redis_sink_send(s, 4, argv, lens), LT_OK);
	argv[1] = "x";
	lens[1] = 1;
	ck_assert_int_eq(lt_redis_sink_send(s, 4, argv, lens), LT_OK);
	ck_assert_int_eq(lt_redis_sink_recv(s, &r), LT_OK);
	ck_assert_int_eq(lt_redis_sink_recv(s, &r), LT_EINVAL);
	/* a flushed script cache in the pipe: LT_EAGAIN */
	argv[1] = "1704067200000";
	lens[1] = strlen(argv[1]);
	rr = redisCommand(c, "SCRIPT FLUSH");
	freeReplyObject(rr);
	ck_assert_int_eq(lt_redis_sink_send(s, 4, argv, lens), LT_OK);
	ck_assert_int_eq(lt_redis_sink_recv(s, &r), LT_EAGAIN);
	ck_assert_int_eq(lt_redis_sink_apply(s, 4, argv, lens, &r), LT_OK);
	lt_redis_sink_close(s);
	redisFree(c);
}
END_TEST

/* An error reply that means "not now" (here OOM under maxmemory) is not a
 * refusal: LT_EREDIS, nothing dropped, and the batch applies in full once
 * Redis has memory again. */
START_TEST(transient_redis_error_keeps_the_batch)
{
	const char *room = "oom";
	struct lt_processor *p = proc_open(lt_test_redis_url(), NULL);
	struct lt_processor_stats st;
	struct lt_msg ms[3];
	struct lt_buf b = LT_BUF_INIT;
	redisContext *c = rconn();
	redisReply *r;
	char key[160];

	room_wipe(c, room);
	ms[0] = mk(room, LT_MSG_CHAT, "o0", "u1", "a", "one", FIXED_NOW - 10);
	ms[1] = mk(room, LT_MSG_CHAT, "o1", "u1", "a", "two", FIXED_NOW - 10);
	ms[2] = mk(room, LT_MSG_CHAT, "o2", "u2", "b", "three", FIXED_NOW - 10);
	batch(&b, ms, 3, 1);
	r = redisCommand(c, "CONFIG SET maxmemory 1");
	freeReplyObject(r);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, FIXED_NOW), LT_EREDIS);
	r = redisCommand(c, "CONFIG SET maxmemory 0");
	freeReplyObject(r);
	lt_processor_stats(p, &st);
	ck_assert_uint_eq(st.refused_records, 0);
	ck_assert_uint_eq(st.redis_errors, 1);
	ck_assert_uint_eq(st.batches, 0);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, FIXED_NOW), LT_OK);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:user:u1", room);
	ck_assert_int_eq(hget_ll(c, key, "messages"), 2);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:messages", room);
	ck_assert_int_eq(integer(c, "XLEN %s", key), 3);
	redisFree(c);
	lt_buf_free(&b);
	lt_processor_close(p);
}
END_TEST

/* Keyword rules when PostgreSQL is unreachable (no rules, processor fine)
 * and when the table does not exist yet (a successful load of no rules). */
START_TEST(keywords_without_database_or_table)
{
	char room[64], key[160], db[64], sql[160], dsn[512];
	int64_t now = lt_clock_wall_ms();
	struct lt_msg m;
	struct lt_buf b = LT_BUF_INIT;
	struct lt_processor *p;
	PGconn *pg = PQconnectdb(lt_test_pg_dsn());
	redisContext *c = rconn();
	char names[128];
	uint64_t loads0;

	room_name(room, sizeof(room), "kwnone");
	p = proc_open(lt_test_redis_url(), "host=127.0.0.1 port=1 dbname=none connect_timeout=1");
	m = mk(room, LT_MSG_CHAT, "k0", "u1", "x", "blockme unreachable", now);
	batch(&b, &m, 1, 1);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	lt_processor_plugins(p, names, sizeof(names));
	ck_assert(strstr(names, "keywords") != NULL);
	lt_processor_close(p);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:hotwords:1m", room);
	ck_assert(zscore(c, key, "blockme") == 1);

	ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "pg: %s", PQerrorMessage(pg));
	snprintf(db, sizeof(db), "lt_kw_%d", (int)getpid());
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", db);
	pg_exec(pg, sql);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
	pg_exec(pg, sql);
	snprintf(dsn, sizeof(dsn), "%s dbname=%s", lt_test_pg_dsn(), db);
	loads0 = lt_keywords_loads();
	p = proc_open(lt_test_redis_url(), dsn);
	for (int i = 0; i < 500 && lt_keywords_loads() <= loads0; i++)
		usleep(10000);
	ck_assert_uint_gt(lt_keywords_loads(), loads0);
	lt_processor_close(p);
	snprintf(sql, sizeof(sql), "DROP DATABASE %s", db);
	pg_exec(pg, sql);
	PQfinish(pg);
	redisFree(c);
	lt_buf_free(&b);
}
END_TEST

START_TEST(plugin_order_dependencies_and_failures)
{
	static const struct lt_plugin *const extra[] = {&t_a,      &t_badinit, &t_needsbad, &t_missing,
							&t_flaky, &t_after,   &t_b,        NULL};
	struct lt_processor_opts o = {.redis_url = lt_test_redis_url(), .extra_plugins = extra};
	struct lt_processor *p = NULL;
	struct lt_processor_stats st;
	struct lt_error e = {0};
	struct lt_msg ms[3];
	struct lt_buf b = LT_BUF_INIT;
	char room[64], key[160], names[256];
	int64_t now = lt_clock_wall_ms();
	redisContext *c = rconn();

	ck_assert_int_eq(lt_processor_open(&o, &p, &e), LT_OK);
	lt_processor_plugins(p, names, sizeof(names));
	ck_assert_str_eq(names, "keywords,hotwords,userstats,checkin,fortune,t_b,t_a,t_flaky,t_after");
	room_name(room, sizeof(room), "plug");
	ms[0] = mk(room, LT_MSG_CHAT, "q0", "u1", "a", "one", now);
	ms[1] = mk(room, LT_MSG_CHAT, "q1", "u1", "a", "boom", now);
	ms[2] = mk(room, LT_MSG_CHAT, "q2", "u1", "a", "three", now);
	batch(&b, ms, 3, 1);
	calls[0] = '\0';
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	/* b before a (dependency beats priority); flaky fails on "boom" and takes
	 * its dependent with it; the batch itself is applied in full */
	ck_assert_str_eq(calls, "b,a,f,x,b,a,f,b,a,");
	lt_processor_plugins(p, names, sizeof(names));
	ck_assert_str_eq(names, "keywords,hotwords,userstats,checkin,fortune,t_b,t_a");
	lt_processor_stats(p, &st);
	ck_assert_int_eq(st.plugin_failures, 2);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:user:u1", room);
	ck_assert_int_eq(hget_ll(c, key, "messages"), 3);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:flaky", room);
	ck_assert_int_eq(hget_ll(c, key, "calls"), 1);
	redisFree(c);
	lt_buf_free(&b);
	lt_processor_close(p);
}
END_TEST

START_TEST(sessions)
{
	char room[64], key[160];
	int64_t now = lt_clock_wall_ms();
	struct lt_msg ms[4];
	struct lt_buf b = LT_BUF_INIT;
	struct lt_processor *p = proc_open(lt_test_redis_url(), NULL);
	redisContext *c = rconn();
	redisReply *r;

	room_name(room, sizeof(room), "sess");
	ms[0] = mk(room, LT_MSG_LIVE_START, "s0", "", "", "", now - 100);
	batch(&b, ms, 1, 1);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	ms[0] = mk(room, LT_MSG_CHAT, "s1", "u1", "a", "hi", now - 50);
	ms[1] = mk(room, LT_MSG_GIFT, "s2", "u1", "a", "x", now - 40);
	ms[1].count = 2;
	ms[1].value = 20;
	ms[2] = mk(room, LT_MSG_LIKE, "s3", "u2", "b", "", now - 30);
	batch(&b, ms, 3, 2);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	ms[0] = mk(room, LT_MSG_LIVE_END, "s4", "", "", "", now - 10);
	batch(&b, ms, 1, 3);
	ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
	snprintf(key, sizeof(key), "live:{bilibili:%s}:session:%lld", room, (long long)(now - 100));
	ck_assert_int_eq(hget_ll(c, key, "messages"), 1);
	ck_assert_int_eq(hget_ll(c, key, "gifts"), 2);
	ck_assert_int_eq(hget_ll(c, key, "gift_value"), 20);
	ck_assert_int_eq(hget_ll(c, key, "likes"), 1);
	ck_assert_int_eq(hget_ll(c, key, "started"), now - 100);
	ck_assert_int_eq(hget_ll(c, key, "ended"), now - 10);
	r = redisCommand(c, "HGET %s state", key);
	ck_assert_str_eq(r->str, "ended");
	freeReplyObject(r);
	ck_assert_int_gt(integer(c, "TTL %s", key), 7000);
	redisFree(c);
	lt_buf_free(&b);
	lt_processor_close(p);
}
END_TEST

/* One batch that opens and closes a session between its messages: each
 * session counter goes to the session current where its field first comes
 * in the batch (the ops are aggregated per field), before the start (the
 * day's session), inside it, after the end (the day's again); apply.lua
 * writes a session's counters together, so it must do so before each
 * change. Applied twice, nothing changes. */
START_TEST(sessions_change_within_a_batch)
{
	char room[64], day[160], live[160];
	int64_t now = lt_clock_wall_ms();
	struct lt_msg ms[5];
	struct lt_buf b = LT_BUF_INIT;
	struct lt_processor *p = proc_open(lt_test_redis_url(), NULL);
	redisContext *c = rconn();
	redisReply *r;

	room_name(room, sizeof(room), "sessmix");
	ms[0] = mk(room, LT_MSG_CHAT, "x1", "u1", "a", "hi", now - 60);
	ms[1] = mk(room, LT_MSG_LIVE_START, "x2", "", "", "", now - 50);
	ms[2] = mk(room, LT_MSG_GIFT, "x3", "u1", "a", "x", now - 40);
	ms[2].count = 3;
	ms[2].value = 30;
	ms[3] = mk(room, LT_MSG_LIVE_END, "x4", "", "", "", now - 30);
	ms[4] = mk(room, LT_MSG_LIKE, "x5", "u2", "b", "", now - 20);
	ms[4].count = 4;
	batch(&b, ms, 5, 1);
	for (int k = 0; k < 2; k++) {
		ck_assert_int_eq(lt_processor_apply(p, b.data, b.len, now), LT_OK);
		snprintf(day, sizeof(day), "live:{bilibili:%s}:session:d%lld", room, (long long)(now / 86400000));
		snprintf(live, sizeof(live), "live:{bilibili:%s}:session:%lld", room, (long long)(now - 50));
		ck_assert_int_eq(hget_ll(c, day, "messages"), 1);
		ck_assert_int_eq(hget_ll(c, day, "likes"), 4);
		ck_assert_int_eq(hget_ll(c, day, "last_ts"), now);
		ck_assert_int_eq(hget_ll(c, day, "gifts"), -1);
		ck_assert_int_eq(hget_ll(c, live, "gifts"), 3);
		ck_assert_int_eq(hget_ll(c, live, "gift_value"), 30);
		ck_assert_int_eq(hget_ll(c, live, "last_ts"), now);
		ck_assert_int_eq(hget_ll(c, live, "messages"), -1);
		ck_assert_int_eq(hget_ll(c, live, "likes"), -1);
		ck_assert_int_eq(hget_ll(c, live, "ended"), now - 30);
		r = redisCommand(c, "HGET %s state", live);
		ck_assert_str_eq(r->str, "ended");
		freeReplyObject(r);
		ck_assert_int_gt(integer(c, "TTL %s", day), 7000);
		ck_assert_int_gt(integer(c, "TTL %s", live), 7000);
	}
	redisFree(c);
	lt_buf_free(&b);
	lt_processor_close(p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("processor");
	TCase *tc = tcase_create("processor");

	lt_test_redis_url();
	lt_test_pg_dsn();
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, mixed_batch_exactly_once);
	tcase_add_test(tc, overlap_and_inner_duplicates);
	tcase_add_test(tc, partly_new_batch_hash_fields);
	tcase_add_test(tc, unchanged_name_keeps_ttl_refresh);
	tcase_add_test(tc, hotword_windows_follow_the_model);
	tcase_add_test(tc, hotwords_more_than_a_chunk);
	tcase_add_test(tc, malformed_input);
	tcase_add_test(tc, redis_down_and_noscript);
	tcase_add_test(tc, plugins_keywords_checkin_fortune);
	tcase_add_test(tc, plugin_order_dependencies_and_failures);
	tcase_add_test(tc, sessions);
	tcase_add_test(tc, sessions_change_within_a_batch);
	tcase_add_test(tc, apply_many_together);
	tcase_add_test(tc, corrupted_batches_never_crash);
	tcase_add_test(tc, corrupted_records_never_take_their_batch);
	tcase_add_test(tc, script_refusal_drops_only_the_record);
	tcase_add_test(tc, pipelined_rooms_recover_alone);
	tcase_add_test(tc, redis_sink_tells_refusals_apart);
	tcase_add_test(tc, redis_sink_hints_at_listpack_settings);
	tcase_add_test(tc, transient_redis_error_keeps_the_batch);
	tcase_add_test(tc, keywords_without_database_or_table);
	suite_add_tcase(s, tc);
	return lt_test_run_suite(s);
}
