/* SPDX-License-Identifier: MIT */
/*
 * bench_persister: rows per second into the real PostgreSQL through the
 * persister's whole write path (COPY into the staging table, INSERT … ON
 * CONFLICT DO NOTHING RETURNING, user_statistics / gift_records / sessions /
 * check-ins from the new rows, ack after COMMIT), with realistic messages in
 * 128-record batches as fetchers send them, and the peak RSS of this process
 * (which is the persister core plus the encoder of the test batches).
 *
 *   LIVETAP_PG_DSN=… build/tests/bench/bench_persister [ROWS [BATCH_ROWS]]
 *
 * ROWS defaults to 200000, BATCH_ROWS (persister.batch_rows) to the
 * persister's default. The first batch opens a live session in each of the
 * 12 rooms (3 platforms x 4 room ids) before the first chat, so that every
 * later message belongs to one, as during a broadcast.
 * Then the same batches again, to measure the duplicate path (nothing new),
 * then as many new rows through two persisters at once (each with its own
 * connection, as when fetchers push to several persisters).
 * Works in a fresh schema that it drops at the end. Exits 77 without
 * LIVETAP_PG_DSN.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/wire.h"
#include "persister/persister.h"

#define PER_BATCH 128

static const char *const chat_lines[] = {
    "主播今天状态不错啊哈哈哈哈",
    "666666666",
    "签到",
    "这波操作太秀了，破防了家人们",
    "awsl 好可爱",
    "yyds!!! 永远的神",
    "下次一定 [doge]",
    "前面的等等我",
    "有没有人一起打排位的",
    "主播能不能唱一首晴天",
    "这个皮肤多少钱啊？",
    "hello from 海外观众 👋",
    "笑死我了 [笑哭][笑哭]",
    "弹幕护体",
    "关注了关注了",
};

static uint64_t acks;
static int batch_rows; /* persister.batch_rows of every persister here (argv[2]) */

/* ctx: the uint64_t ack counter of the caller. */
static void on_ack(void *ctx, const char *source_id, uint64_t seq)
{
	(void)source_id;
	(void)seq;
	(*(uint64_t *)ctx)++;
}

/* CPU seconds of this process. */
static double self_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       (double)ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds of a process on this machine (the PostgreSQL backend), from
 * /proc/PID/stat; -1 if unreadable (a remote server). */
static double proc_cpu(int pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	unsigned long ut = 0, st = 0;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds of every livetap-persister backend (they may come and go;
 * callers take differences). */
static double backends_cpu(PGconn *c)
{
	PGresult *r =
	    PQexec(c, "SELECT pid FROM pg_stat_activity WHERE application_name = 'livetap-persister'");
	double sum = 0;
	for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++) {
		double v = proc_cpu(atoi(PQgetvalue(r, i, 0)));
		if (v > 0)
			sum += v;
	}
	PQclear(r);
	return sum;
}

static long rss_kb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* Build batch number k (deterministic) into out. */
static void build(struct lt_buf *out, uint64_t k, int64_t t0, const char *source)
{
	char ids[PER_BATCH][24], uids[PER_BATCH][16], names[PER_BATCH][24], rooms[PER_BATCH][16];
	char extra[PER_BATCH][128];
	lt_wire_batch_begin(out, LT_WIRE_KIND_DATA, 0, source, k + 1);
	for (int i = 0; i < PER_BATCH; i++) {
		uint64_t n = k * PER_BATCH + (uint64_t)i;
		uint64_t h = n * 0x9E3779B97F4A7C15ull;
		struct lt_msg m = {0};
		m.platform = (uint8_t)(1 + (h >> 60) % 3);
		snprintf(rooms[i], sizeof rooms[i], "%u", 21452505u + (unsigned)((h >> 50) % 4));
		snprintf(ids[i], sizeof ids[i], "m%016" PRIx64, n);
		snprintf(uids[i], sizeof uids[i], "%u", 100000u + (unsigned)((h >> 20) % 2000));
		snprintf(names[i], sizeof names[i], "观众%u", (unsigned)((h >> 20) % 2000));
		m.room = lt_str_c(rooms[i]);
		m.msg_id = lt_str_c(ids[i]);
		m.user_id = lt_str_c(uids[i]);
		m.user_name = lt_str_c(names[i]);
		m.ts = t0 + (int64_t)(n * 3);
		unsigned kind = (unsigned)((h >> 8) % 100);
		if (k == 0 && i < 12) {
			m.platform = (uint8_t)(1 + i % 3);
			snprintf(rooms[i], sizeof rooms[i], "%u", 21452505u + (unsigned)(i / 3));
			m.room = lt_str_c(rooms[i]);
			m.type = LT_MSG_LIVE_START;
			m.ts = t0 - 1000;
		} else if (kind < 80) {
			m.type = LT_MSG_CHAT;
			m.content =
			    lt_str_c(chat_lines[(h >> 30) % (sizeof chat_lines / sizeof chat_lines[0])]);
			m.extra = LT_STR("{\"medal\":{\"name\":\"粉丝团\",\"level\":12},\"color\":16777215}");
		} else if (kind < 88) {
			m.type = LT_MSG_GIFT;
			m.count = 1 + (int64_t)(h % 10);
			m.value = m.count * 100;
			snprintf(extra[i], sizeof extra[i],
				 "{\"gift_name\":\"小心心\",\"count\":%" PRId64 ",\"value\":%" PRId64
				 ",\"currency\":\"gold\"}",
				 m.count, m.value);
			m.extra = lt_str_c(extra[i]);
			m.content = LT_STR("投喂 小心心");
		} else if (kind < 95) {
			m.type = LT_MSG_LIKE;
			m.count = 1 + (int64_t)(h % 5);
		} else {
			m.type = LT_MSG_ENTER;
			m.content = LT_STR("进入直播间");
		}
		lt_wire_batch_add(out, &m);
	}
}

/* Push nbatches batches through the persister; returns seconds taken;
 * cpu[0] gets the CPU seconds of this process and its backends, cpu[1] the
 * backends' alone (c: a connection of our own to list them). */
static double run(struct lt_persister *p, uint64_t nbatches, int64_t t0, double *worst_ms, PGconn *c,
		  double cpu[2])
{
	double c0 = self_cpu(), b0 = backends_cpu(c);
	struct lt_buf b = LT_BUF_INIT;
	struct lt_error e = {0};
	int64_t start = lt_clock_mono_us();
	*worst_ms = 0;
	for (uint64_t k = 0; k < nbatches; k++) {
		build(&b, k, t0, "bench:source");
		if (lt_persister_add_batch(p, b.data, b.len) != LT_OK) {
			fprintf(stderr, "bench_persister: add_batch failed\n");
			exit(1);
		}
		/* Like main.c under load: a backlog builds up while a flush runs,
		 * so flush once two writers' worth is waiting. */
		struct lt_persister_stats ps;
		lt_persister_stats(p, &ps);
		if (ps.pending_rows >= 2 * (uint64_t)batch_rows || k + 1 == nbatches) {
			int64_t f0 = lt_clock_mono_us();
			int rc = lt_persister_flush(p, true, on_ack, &acks, &e);
			double ms = (double)(lt_clock_mono_us() - f0) / 1000.0;
			if (ms > *worst_ms)
				*worst_ms = ms;
			if (rc != LT_OK) {
				fprintf(stderr, "bench_persister: flush: %s\n", e.message);
				exit(1);
			}
		}
	}
	lt_buf_free(&b);
	double b1 = backends_cpu(c);
	cpu[1] = b1 - b0;
	cpu[0] = self_cpu() - c0 + cpu[1];
	return (double)(lt_clock_mono_us() - start) / 1e6;
}

/* One of several persisters writing at once (as when fetchers push to
 * several): batches from, from + step, … below to, on its own connection. */
struct worker {
	pthread_t th;
	const char *dsn, *schema;
	uint64_t from, to, step;
	int64_t t0;
	char source[32];
	uint64_t acks, inserted;
	int failed;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	struct lt_persister_opts o;
	lt_persister_opts_default(&o);
	o.pg_dsn = w->dsn;
	o.pg_search_path = w->schema;
	o.hotwords_top = 0;
	o.batch_rows = batch_rows;
	struct lt_persister *p = NULL;
	struct lt_error e = {0};
	struct lt_buf b = LT_BUF_INIT;
	if (lt_persister_open(&o, &p, &e) != LT_OK) {
		w->failed = 1;
		return NULL;
	}
	for (uint64_t k = w->from; k < w->to && !w->failed; k += w->step) {
		build(&b, k, w->t0, w->source);
		if (lt_persister_add_batch(p, b.data, b.len) != LT_OK)
			w->failed = 1;
		if ((lt_persister_next_due_ms(p) == 0 || k + w->step >= w->to) &&
		    lt_persister_flush(p, true, on_ack, &w->acks, &e) != LT_OK) {
			fprintf(stderr, "bench_persister: %s: %s\n", w->source, e.message);
			w->failed = 1;
		}
	}
	struct lt_persister_stats st;
	lt_persister_stats(p, &st);
	w->inserted = st.rows_new;
	lt_buf_free(&b);
	lt_persister_close(p);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *dsn = getenv("LIVETAP_PG_DSN");
	if (!dsn || !*dsn) {
		fprintf(stderr, "bench_persister: LIVETAP_PG_DSN is not set; skipping\n");
		return 77;
	}
	uint64_t rows = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000;
	uint64_t nbatches = (rows + PER_BATCH - 1) / PER_BATCH;
	struct lt_persister_opts o;
	lt_persister_opts_default(&o);
	batch_rows = argc > 2 ? atoi(argv[2]) : o.batch_rows;
	if (batch_rows < 1) {
		fprintf(stderr, "bench_persister: BATCH_ROWS must be at least 1\n");
		return 2;
	}
	lt_log_init("bench_persister", LT_LOG_WARN);

	char schema[64];
	snprintf(schema, sizeof schema, "bench_pers_%d", (int)getpid());
	PGconn *c = PQconnectdb(dsn);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "bench_persister: %s", PQerrorMessage(c));
		return 1;
	}
	char sql[160];
	snprintf(sql, sizeof sql, "CREATE SCHEMA %s", schema);
	PQclear(PQexec(c, sql));

	o.pg_dsn = dsn;
	o.batch_rows = batch_rows;
	o.pg_search_path = schema;
	o.hotwords_top = 0;
	struct lt_persister *p = NULL;
	struct lt_error e = {0};
	if (lt_persister_open(&o, &p, &e) != LT_OK || lt_persister_partitions(p, NULL, &e) != LT_OK) {
		fprintf(stderr, "bench_persister: %s\n", e.message);
		return 1;
	}
	long rss0 = rss_kb();
	int64_t t0 = lt_clock_wall_ms() - 3600 * 1000;
	double worst_new, worst_dup, cpu_new[2], cpu_dup[2];
	double s_new = run(p, nbatches, t0, &worst_new, c, cpu_new);
	struct lt_persister_stats st;
	lt_persister_stats(p, &st);
	uint64_t inserted = st.rows_new;
	double s_dup = run(p, nbatches, t0, &worst_dup, c, cpu_dup);
	lt_persister_stats(p, &st);

	printf("bench_persister: %" PRIu64 " rows in %" PRIu64 " batches of %d, flushes of up to %d rows\n",
	       nbatches * PER_BATCH, nbatches, PER_BATCH, o.batch_rows);
	printf("  new rows:       %.0f rows/s wall (%.2f s; %" PRIu64 " inserted; slowest flush %.1f ms)\n",
	       (double)inserted / s_new, s_new, inserted, worst_new);
	printf(
	    "                  %.0f rows per CPU second of persister + its PostgreSQL backends (%.2f CPU s, "
	    "backends %.2f)\n",
	    (double)inserted / cpu_new[0], cpu_new[0], cpu_new[1]);
	printf("  replayed rows:  %.0f rows/s wall (%.2f s; %" PRIu64 " duplicates, new: %" PRIu64 ")\n",
	       (double)(nbatches * PER_BATCH) / s_dup, s_dup, st.rows_dup, st.rows_new - inserted);
	printf("                  %.0f rows per CPU second (%.2f CPU s, backends %.2f)\n",
	       (double)(nbatches * PER_BATCH) / cpu_dup[0], cpu_dup[0], cpu_dup[1]);
	/* Two persisters at once, on new messages (each its own batches). */
	struct worker w[2];
	int64_t w0 = lt_clock_mono_us();
	for (int i = 0; i < 2; i++) {
		w[i] = (struct worker){.dsn = dsn,
				       .schema = schema,
				       .from = nbatches + (uint64_t)i,
				       .to = 2 * nbatches,
				       .step = 2,
				       .t0 = t0};
		snprintf(w[i].source, sizeof w[i].source, "bench:p%d", i);
		pthread_create(&w[i].th, NULL, work, &w[i]);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(w[i].th, NULL);
	double s_two = (double)(lt_clock_mono_us() - w0) / 1e6;
	uint64_t two = w[0].inserted + w[1].inserted;
	printf("  two persisters: %.0f rows/s wall together (%.2f s; %" PRIu64 " inserted)\n",
	       (double)two / s_two, s_two, two);
	double load[1] = {0};
	if (getloadavg(load, 1) == 1)
		printf("  machine load average: %.1f (wall figures shrink with it; CPU figures much less)\n",
		       load[0]);
	printf("  acks: %" PRIu64 " (expected %" PRIu64 "), commits: %" PRIu64 "\n", acks, 2 * nbatches,
	       st.commits);
	printf("  peak RSS: %.1f MB (%.1f MB after connecting)\n", (double)rss_kb() / 1024.0,
	       (double)rss0 / 1024.0);
	int ok = inserted == nbatches * PER_BATCH && st.rows_new == inserted && acks == 2 * nbatches &&
		 two == nbatches * PER_BATCH && !w[0].failed && !w[1].failed &&
		 w[0].acks + w[1].acks == nbatches;

	lt_persister_close(p);
	snprintf(sql, sizeof sql, "SET client_min_messages = warning; DROP SCHEMA %s CASCADE", schema);
	PQclear(PQexec(c, sql));
	PQfinish(c);
	return ok ? 0 : 1;
}
