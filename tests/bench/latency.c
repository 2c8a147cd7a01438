/* SPDX-License-Identifier: MIT */
/*
 * bench_latency: the time from a fetcher's send to the Redis PUBLISH, through
 * the real livetap-processor. One process plays both ends, so both stamps come
 * from one monotonic clock: a sender (common/delivery.h with its default
 * batching, as livetap-fetcher uses it) pushes chat messages at a fixed rate,
 * noting each message's send time by its index, and a hiredis subscriber
 * thread on live:{bilibili:ROOM} takes the index back out of each published
 * msg_id. What is measured is lt_delivery_push -> batch linger -> NNG ->
 * processor (decode, segmentation, aggregation, one EVALSHA) -> PUBLISH ->
 * the subscriber's read; the subscriber's own hop is included, not removed.
 *
 *   bench_latency --processors URL --persisters URL --room R
 *                 [--rate 10000] [--seconds 10] [--warmup 1]
 *
 * Needs LIVETAP_REDIS_URL. Prints one line with the message count and
 * p50/p90/p99/p99.9/max in milliseconds (messages of the first --warmup
 * seconds are sent but not counted). Exits 1 if a message was not published
 * within 30 s, or was published twice; 2 on bad flags.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "common/delivery.h"
#include "common/msg.h"
#include "common/redisconn.h"

struct bench {
	const char *room;
	char channel[160];
	char prefix[64]; /* msg_id prefix: "lat<pid>/" */
	long n;
	_Atomic int64_t *sent_ns; /* per index; 0 = not yet sent (written by main, read by the subscriber) */
	int64_t *lat_ns;	  /* per index; 0 = not yet received */
	atomic_long received;
	atomic_long dups;
	atomic_int ready;
	redisContext *sub;
};

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until_ns(int64_t t)
{
	struct timespec ts = {(time_t)(t / 1000000000), (long)(t % 1000000000)};
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* The subscriber: every message on the channel that carries our prefix. */
static void *subscriber(void *arg)
{
	struct bench *b = arg;
	redisReply *r = redisCommand(b->sub, "SUBSCRIBE %s", b->channel);
	if (!r) {
		fprintf(stderr, "bench_latency: SUBSCRIBE failed: %s\n", b->sub->errstr);
		atomic_store(&b->ready, -1);
		return NULL;
	}
	freeReplyObject(r);
	atomic_store(&b->ready, 1);
	size_t plen = strlen(b->prefix);
	while (atomic_load(&b->received) < b->n) {
		void *v = NULL;
		if (redisGetReply(b->sub, &v) != REDIS_OK)
			break; /* the read timeout: the main thread decides */
		int64_t now = mono_ns();
		r = v;
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
		    r->element[2]->type == REDIS_REPLY_STRING) {
			const char *id = strstr(r->element[2]->str, "\"msg_id\":\"");
			if (id && strncmp(id + 10, b->prefix, plen) == 0) {
				long i = strtol(id + 10 + plen, NULL, 10);
				int64_t sent =
				    (i >= 0 && i < b->n)
					? atomic_load_explicit(&b->sent_ns[i], memory_order_relaxed)
					: 0;
				if (sent && b->lat_ns[i]) {
					atomic_fetch_add(&b->dups, 1);
				} else if (sent) {
					b->lat_ns[i] = now - sent;
					atomic_fetch_add(&b->received, 1);
				}
			}
		}
		freeReplyObject(r);
	}
	return NULL;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	const char *procs[1] = {NULL}, *pers[1] = {NULL}, *room = NULL;
	double rate = 10000, seconds = 10, warmup = 1;
	int linger = 0, linger_max = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--processors"))
			procs[0] = argv[i + 1];
		else if (!strcmp(argv[i], "--persisters"))
			pers[0] = argv[i + 1];
		else if (!strcmp(argv[i], "--room"))
			room = argv[i + 1];
		else if (!strcmp(argv[i], "--rate"))
			rate = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--seconds"))
			seconds = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--warmup"))
			warmup = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--linger-ms"))
			linger = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--linger-max-ms"))
			linger_max = atoi(argv[i + 1]);
		else {
			fprintf(stderr, "bench_latency: unknown flag %s\n", argv[i]);
			return 2;
		}
	}
	const char *url = getenv("LIVETAP_REDIS_URL");
	if (!procs[0] || !room || !url || rate <= 0 || seconds <= 0 || warmup < 0 || warmup >= seconds) {
		fprintf(stderr,
			"usage: bench_latency --processors URL [--persisters URL] --room R [--rate N] "
			"[--seconds S] [--warmup S] [--linger-ms N] [--linger-max-ms N]  (needs LIVETAP_REDIS_URL)\n");
		return 2;
	}
	struct bench b = {.room = room, .n = (long)(rate * seconds)};
	snprintf(b.channel, sizeof(b.channel), "live:{bilibili:%s}", room);
	snprintf(b.prefix, sizeof(b.prefix), "lat%ld/", (long)getpid());
	b.sent_ns = calloc((size_t)b.n, sizeof(*b.sent_ns));
	b.lat_ns = calloc((size_t)b.n, sizeof(int64_t));
	struct lt_error e = {0};
	if (!b.sent_ns || !b.lat_ns || lt_redis_connect(url, 2000, &b.sub, &e) != LT_OK) {
		fprintf(stderr, "bench_latency: redis: %s\n", e.message);
		return 1;
	}
	struct timeval tv = {30, 0};
	redisSetTimeout(b.sub, tv);
	pthread_t th;
	pthread_create(&th, NULL, subscriber, &b);
	while (atomic_load(&b.ready) == 0)
		sleep_until_ns(mono_ns() + 1000000);
	if (atomic_load(&b.ready) < 0)
		return 1;

	char source[80];
	snprintf(source, sizeof(source), "bench-latency-%ld", (long)getpid());
	struct lt_delivery_opts o = {.source_id = source,
				     .processors = procs,
				     .n_processors = 1,
				     .persisters = pers,
				     .n_persisters = pers[0] ? 1 : 0,
				     .linger_ms = linger,
				     .linger_max_ms = linger_max};
	struct lt_delivery *d = NULL;
	if (lt_delivery_open(&o, &d, &e) != LT_OK) {
		fprintf(stderr, "bench_latency: delivery: %s\n", e.message);
		return 1;
	}
	static const char *const words[] = {"主播", "好厉害",	"哈哈哈", "666",
					    "破防", "下次一定", "awsl",	  "晚上好"};
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	int64_t ts0 = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
	int64_t t0 = mono_ns();
	long eagain = 0;
	for (long i = 0; i < b.n; i++) {
		char id[96], uid[32], text[128];
		struct lt_msg m = {0};
		int64_t due = t0 + (int64_t)((double)i * 1e9 / rate);
		sleep_until_ns(due);
		snprintf(id, sizeof(id), "%s%ld", b.prefix, i);
		snprintf(uid, sizeof(uid), "u%ld", i % 997);
		snprintf(text, sizeof(text), "%s %s", words[i % 8], words[(i / 8) % 8]);
		m.platform = LT_PLATFORM_BILIBILI;
		m.type = LT_MSG_CHAT;
		m.ts = ts0 + (due - t0) / 1000000;
		m.room = lt_str_c(room);
		m.msg_id = lt_str_c(id);
		m.user_id = lt_str_c(uid);
		m.user_name = lt_str_c(uid);
		m.content = lt_str_c(text);
		atomic_store_explicit(&b.sent_ns[i], mono_ns(), memory_order_relaxed);
		while (lt_delivery_push(d, &m) == LT_EAGAIN) {
			eagain++;
			sleep_until_ns(mono_ns() + 100000);
		}
	}
	double send_s = (double)(mono_ns() - t0) / 1e9;
	int drc = lt_delivery_drain(d, 60000);
	pthread_join(th, NULL);
	lt_delivery_close(d);

	long first = (long)(rate * warmup), got = 0;
	int64_t *v = malloc(sizeof(int64_t) * (size_t)(b.n - first));
	for (long i = first; i < b.n; i++)
		if (b.lat_ns[i])
			v[got++] = b.lat_ns[i];
	long missing = b.n - atomic_load(&b.received);
	qsort(v, (size_t)got, sizeof(int64_t), cmp64);
#define PCT(p) (got ? (double)v[(size_t)((double)(got - 1) * (p))] / 1e6 : 0.0)
	printf(
	    "send -> PUBLISH at %.0f msg/s (achieved %.0f/s, %ld counted after %.0f s warm-up, %ld missing, "
	    "%ld twice, drain %s): p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n",
	    rate, (double)b.n / send_s, got, warmup, missing, atomic_load(&b.dups),
	    drc == LT_OK ? "ok" : "timed out", PCT(0.50), PCT(0.90), PCT(0.99), PCT(0.999),
	    got ? (double)v[got - 1] / 1e6 : 0.0);
	free(v);
	free((void *)b.sent_ns);
	free(b.lat_ns);
	redisFree(b.sub);
	return (missing || atomic_load(&b.dups) || drc != LT_OK) ? 1 : 0;
}
