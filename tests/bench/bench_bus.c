/* SPDX-License-Identifier: MIT */
/*
 * bench_bus: how fast records move over the NNG bus, over ipc:// in a
 * temporary directory, 64 records per NNG message. Prints three figures:
 *
 *   1. raw bus: a push socket sends pre-encoded batches to an
 *      lt_bus_consumer that decodes every record (records/s);
 *   2. delivery: lt_delivery_push with the spool on, one processor and one
 *      persister consumer thread that decode and ack, until drained
 *      (records/s, the whole sender path a fetcher uses);
 *      and the same with fsync on (fdatasync per sealed batch);
 *   3. latency: lt_delivery_push at 10,000 records/s for 2 s, time from push
 *      to the consumer's decode (p50/p99/max; linger 5 ms dominates).
 *
 * Bounded to a few seconds; exits non-zero if a record goes missing.
 */
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>

#include "common/buf.h"
#include "common/bus.h"
#include "common/delivery.h"
#include "common/wire.h"

#define PER_BATCH 64
#define SOURCE	  "bench:1"
#define LAT_MAX	  40000

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

static void fill_msg(struct lt_msg *m, long i, char *id, char *text)
{
	snprintf(id, 32, "bench-%ld", i);
	snprintf(text, 64, "主播 今天 好厉害 %ld", i % 97);
	memset(m, 0, sizeof(*m));
	m->platform = LT_PLATFORM_BILIBILI;
	m->type = LT_MSG_CHAT;
	m->ts = 1732212345000 + i;
	m->room = LT_STR("1");
	m->msg_id = lt_str_c(id);
	m->user_id = LT_STR("12345");
	m->user_name = LT_STR("观众");
	m->content = lt_str_c(text);
}

struct sink {
	struct lt_bus_consumer *c;
	pthread_t thr;
	atomic_bool stop;
	bool ack;
	atomic_long records;
	int64_t *lat; /* push-to-decode ns per record, indexed by m.count */
};

static void *sink_main(void *arg)
{
	struct sink *s = arg;
	while (!atomic_load(&s->stop)) {
		struct lt_bus_batch b;
		int rc = lt_bus_consumer_recv(s->c, 20, &b);
		if (rc == LT_ETIMEDOUT)
			continue;
		if (rc != LT_OK)
			break;
		struct lt_wire_batch wb;
		if (lt_wire_batch_decode(b.data, b.len, &wb) == LT_OK) {
			struct lt_wire_iter it;
			struct lt_msg m;
			long n = 0;
			int64_t now = s->lat ? mono_ns() : 0;
			lt_wire_iter_init(&it, &wb);
			while ((rc = lt_wire_iter_next(&it, &m)) != LT_EEOF) {
				if (rc != LT_OK)
					continue;
				n++;
				if (s->lat && m.count >= 0 && m.count < LAT_MAX && s->lat[m.count] == 0)
					s->lat[m.count] = now - m.value;
			}
			atomic_fetch_add(&s->records, n);
			if (s->ack)
				lt_bus_consumer_ack(s->c, wb.source_id, wb.seq);
		}
		lt_bus_batch_free(&b);
	}
	return NULL;
}

static struct sink *sink_start(const char *url, uint8_t kind, bool ack, int64_t *lat)
{
	struct sink *s = calloc(1, sizeof(*s));
	struct lt_error e = {0};
	if (!s || lt_bus_consumer_open(url, NULL, kind, &s->c, &e) != LT_OK) {
		fprintf(stderr, "bench_bus: consumer %s: %s\n", url, e.message);
		exit(1);
	}
	s->ack = ack;
	s->lat = lat;
	pthread_create(&s->thr, NULL, sink_main, s);
	return s;
}

static void sink_stop(struct sink *s)
{
	atomic_store(&s->stop, true);
	pthread_join(s->thr, NULL);
	lt_bus_consumer_close(s->c);
	free(s);
}

static void wait_records(struct sink *s, long n, int64_t deadline)
{
	while (atomic_load(&s->records) < n && mono_ns() < deadline)
		sleep_until_ns(mono_ns() + 200000);
}

static int bench_raw(const char *dir)
{
	const long n = 2000000;
	char url[512];
	snprintf(url, sizeof(url), "ipc://%s/raw.ipc", dir);
	struct sink *s = sink_start(url, LT_WIRE_CONSUMER_PROCESSOR, false, NULL);
	nng_socket push;
	nng_push0_open(&push);
	nng_dial(push, url, NULL, 0);
	/* Pre-encode a few distinct batches; sending dominates, not encoding. */
	struct lt_buf b = LT_BUF_INIT;
	lt_wire_batch_begin(&b, LT_WIRE_KIND_DATA, 0, SOURCE, 1);
	for (int i = 0; i < PER_BATCH; i++) {
		char id[32], text[64];
		struct lt_msg m;
		fill_msg(&m, i, id, text);
		lt_wire_batch_add(&b, &m);
	}
	int64_t t0 = mono_ns();
	for (long i = 0; i < n / PER_BATCH; i++) {
		nng_msg *m;
		nng_msg_alloc(&m, 0);
		nng_msg_append(m, b.data, b.len);
		if (nng_sendmsg(push, m, 0) != 0)
			nng_msg_free(m);
	}
	wait_records(s, n, t0 + 30000000000);
	double secs = (double)(mono_ns() - t0) / 1e9;
	long got = atomic_load(&s->records);
	printf("bench_bus raw: %ld records in %.3f s over ipc, %d per message (%zu bytes): %.0f records/s\n",
	       got, secs, PER_BATCH, b.len, (double)got / secs);
	nng_close(push);
	sink_stop(s);
	lt_buf_free(&b);
	return got == n ? 0 : 1;
}

static struct lt_delivery *open_delivery(const char *purl, const char *qurl, const char *spool, bool fsync)
{
	const char *procs[] = {purl}, *pers[] = {qurl};
	struct lt_delivery_opts o = {.source_id = SOURCE,
				     .processors = procs,
				     .n_processors = 1,
				     .persisters = pers,
				     .n_persisters = 1,
				     .spool_dir = spool,
				     .batch_max = PER_BATCH,
				     .fsync = fsync};
	struct lt_delivery *d = NULL;
	struct lt_error e = {0};
	if (lt_delivery_open(&o, &d, &e) != LT_OK) {
		fprintf(stderr, "bench_bus: delivery: %s\n", e.message);
		exit(1);
	}
	return d;
}

static int bench_delivery(const char *dir, bool fsync)
{
	const long n = fsync ? 100000 : 1000000;
	char purl[512], qurl[512], spool[512];
	snprintf(purl, sizeof(purl), "ipc://%s/proc%d.ipc", dir, fsync);
	snprintf(qurl, sizeof(qurl), "ipc://%s/pers%d.ipc", dir, fsync);
	snprintf(spool, sizeof(spool), "%s/spool%d", dir, fsync);
	struct sink *p = sink_start(purl, LT_WIRE_CONSUMER_PROCESSOR, true, NULL);
	struct sink *q = sink_start(qurl, LT_WIRE_CONSUMER_PERSISTER, true, NULL);
	struct lt_delivery *d = open_delivery(purl, qurl, spool, fsync);
	int64_t t0 = mono_ns();
	long eagain = 0;
	for (long i = 0; i < n; i++) {
		char id[32], text[64];
		struct lt_msg m;
		fill_msg(&m, i, id, text);
		while (lt_delivery_push(d, &m) == LT_EAGAIN) {
			eagain++;
			sleep_until_ns(mono_ns() + 1000000);
		}
	}
	int64_t t1 = mono_ns();
	int rc = lt_delivery_drain(d, 60000);
	double secs = (double)(mono_ns() - t0) / 1e9;
	struct lt_delivery_stats st;
	lt_delivery_stats(d, &st);
	printf(
	    "bench_bus delivery: %ld records pushed in %.3f s, acked by both kinds in %.3f s: %.0f records/s "
	    "(spool on%s, batches %" PRIu64 ", resent %" PRIu64 ", eagain %ld)\n",
	    n, (double)(t1 - t0) / 1e9, secs, (double)n / secs, fsync ? ", fdatasync per batch" : "",
	    st.batches_sealed, st.resent, eagain);
	lt_delivery_close(d);
	long gp = atomic_load(&p->records), gq = atomic_load(&q->records);
	sink_stop(p);
	sink_stop(q);
	return rc == LT_OK && gp >= n && gq >= n ? 0 : 1;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static int bench_latency(const char *dir)
{
	const long n = 20000; /* 2 s at 10,000/s */
	const double rate = 10000;
	char purl[512], qurl[512], spool[512];
	snprintf(purl, sizeof(purl), "ipc://%s/lproc.ipc", dir);
	snprintf(qurl, sizeof(qurl), "ipc://%s/lpers.ipc", dir);
	snprintf(spool, sizeof(spool), "%s/lspool", dir);
	int64_t *lat = calloc(LAT_MAX, sizeof(int64_t));
	struct sink *p = sink_start(purl, LT_WIRE_CONSUMER_PROCESSOR, true, lat);
	struct sink *q = sink_start(qurl, LT_WIRE_CONSUMER_PERSISTER, true, NULL);
	struct lt_delivery *d = open_delivery(purl, qurl, spool, false);
	sleep_until_ns(mono_ns() + 200000000); /* let the pipes connect */
	int64_t t0 = mono_ns();
	for (long i = 0; i < n; i++) {
		char id[32], text[64];
		struct lt_msg m;
		fill_msg(&m, i, id, text);
		sleep_until_ns(t0 + (int64_t)((double)i * 1e9 / rate));
		m.count = i;
		m.value = mono_ns();
		lt_delivery_push(d, &m);
	}
	int rc = lt_delivery_drain(d, 30000);
	lt_delivery_close(d);
	sink_stop(p);
	sink_stop(q);
	long k = 0;
	for (long i = 0; i < n; i++)
		if (lat[i] > 0)
			lat[k++] = lat[i];
	qsort(lat, (size_t)k, sizeof(int64_t), cmp_i64);
	if (k > 0)
		printf("bench_bus latency at %.0f records/s (linger 5 ms, batch %d): push to consumer decode "
		       "p50 %.2f ms, p99 %.2f ms, max %.2f ms over %ld records\n",
		       rate, PER_BATCH, (double)lat[k / 2] / 1e6, (double)lat[k * 99 / 100] / 1e6,
		       (double)lat[k - 1] / 1e6, k);
	free(lat);
	return rc == LT_OK && k == n ? 0 : 1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/lt-bench-bus.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(dir)) {
		perror("bench_bus: mkdtemp");
		return 1;
	}
	int bad = 0;
	bad |= bench_raw(dir);
	bad |= bench_delivery(dir, false);
	bad |= bench_delivery(dir, true);
	bad |= bench_latency(dir);
	/* Everything was acked, so the spools are empty: remove the tree. */
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	return bad;
}
