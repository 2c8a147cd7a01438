/* SPDX-License-Identifier: MIT */
/*
 * persister: queue, flush with ack-after-commit, maintenance (partitions,
 * retention, hot-word snapshots). See persister.h.
 */
#include "persister/persister.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "common/json.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/redisconn.h"
#include "persister/batch.h"
#include "persister/partition.h"
#include "persister/pg_sink.h"

#define PARTITIONS_EVERY_MS (10 * 60 * 1000)
#define RETENTION_EVERY_MS  (60 * 60 * 1000)
#define HOTWORD_ROOMS_MAX   4096
#define HOTWORD_ROOM_TTL_MS (30 * 60 * 1000)
#define KNOWN_DAYS_MAX	    4096
#define ROOM_KEY_MAX	    (16 + LT_MSG_ROOM_MAX)

struct room_seen {
	char key[ROOM_KEY_MAX]; /* platform:room_id */
	int64_t last_mono;
};

struct lt_persister {
	struct lt_persister_opts o;
	char *pg_dsn, *search_path, *redis_url, *archive_dir;
	const struct lt_clock *clock;
	struct lt_batchq q;
	struct lt_pgsink *sink; /* == sinks[0]: also maintenance */
	struct lt_pgsink *sinks[LT_PERSISTER_WRITERS_MAX];
	int nwriters;

	redisContext *redis;
	int64_t redis_next_try;
	struct room_seen *rooms;
	size_t nrooms;
	int64_t last_snapshot_minute;

	int64_t *known_days; /* partitions we know exist (sorted) */
	size_t nknown;

	int64_t next_partitions_mono;
	int64_t next_retention_mono;
	bool partitions_done_once;
	uint64_t last_connects;

	struct lt_persister_stats st;
	struct lt_buf tmp;
	/* After a failure PostgreSQL reported (not a lost connection, which the
	 * sink's own backoff covers): no new attempt before hold_until. */
	int64_t hold_until;
	int hold_ms;
};

/* Process-wide metrics (registered once; NULL-safe when the registry is
 * full). */
static struct {
	struct lt_series *batches, *batches_bad, *records_bad, *rows_new, *rows_dup, *commits, *pg_errors,
	    *pending_rows;
} mx;

static void metrics_init(void)
{
	if (mx.batches)
		return;
	struct lt_metric *b = lt_metrics_counter("livetap_persister_batches_total",
						 "Batches received, by result.", "result", NULL);
	mx.batches = lt_metrics_series(b, "accepted", NULL);
	mx.batches_bad = lt_metrics_series(b, "malformed", NULL);
	mx.records_bad = lt_metrics_series(
	    lt_metrics_counter("livetap_persister_bad_records_total", "Records refused.", NULL, NULL), NULL,
	    NULL);
	struct lt_metric *rows =
	    lt_metrics_counter("livetap_persister_rows_total",
			       "Rows written to live_messages, by whether they were new.", "result", NULL);
	mx.rows_new = lt_metrics_series(rows, "new", NULL);
	mx.rows_dup = lt_metrics_series(rows, "duplicate", NULL);
	mx.commits = lt_metrics_series(
	    lt_metrics_counter("livetap_persister_commits_total", "Transactions committed.", NULL, NULL),
	    NULL, NULL);
	mx.pg_errors =
	    lt_metrics_series(lt_metrics_counter("livetap_persister_pg_errors_total",
						 "Failed PostgreSQL transactions and connects.", NULL, NULL),
			      NULL, NULL);
	mx.pending_rows = lt_metrics_series(
	    lt_metrics_gauge("livetap_persister_pending_rows", "Rows waiting for a commit.", NULL, NULL),
	    NULL, NULL);
}

void lt_persister_opts_default(struct lt_persister_opts *o)
{
	memset(o, 0, sizeof *o);
	o->redis_timeout_ms = 2000;
	o->batch_rows = 5000;
	o->batch_ms = 200;
	o->max_pending_bytes = 16u << 20;
	o->partitions_ahead = 2;
	o->retention_days = 0;
	o->hotwords_top = 20;
	o->writers = 2;
}

void lt_persister_opts_from_config(struct lt_persister_opts *o, const struct lt_config *cfg)
{
	lt_persister_opts_default(o);
	o->pg_dsn = lt_config_str(cfg, "pg.dsn");
	o->redis_url = lt_config_str(cfg, "redis.url");
	o->redis_timeout_ms = (int)lt_config_int(cfg, "redis.timeout_ms");
	o->batch_rows = (int)lt_config_int(cfg, "persister.batch_rows");
	o->batch_ms = (int)lt_config_int(cfg, "persister.batch_ms");
	o->max_pending_bytes = (size_t)lt_config_int(cfg, "persister.max_pending_bytes");
	o->partitions_ahead = (int)lt_config_int(cfg, "persister.partitions_ahead");
	o->retention_days = (int)lt_config_int(cfg, "persister.retention_days");
	o->archive_dir = lt_config_str(cfg, "persister.archive_dir");
	o->hotwords_top = (int)lt_config_int(cfg, "persister.hotwords_top");
	o->writers = (int)lt_config_int(cfg, "persister.writers");
}

static char *dup_or_null(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

int lt_persister_open(const struct lt_persister_opts *o, struct lt_persister **out, struct lt_error *e)
{
	if (!o->pg_dsn || !*o->pg_dsn)
		return lt_error_set(e, LT_EINVAL, "persister: no PostgreSQL DSN (pg.dsn)");
	struct lt_persister *p = calloc(1, sizeof *p);
	if (!p)
		return lt_error_set(e, LT_ENOMEM, "persister: out of memory");
	p->o = *o;
	p->pg_dsn = strdup(o->pg_dsn);
	p->search_path = dup_or_null(o->pg_search_path);
	p->redis_url = dup_or_null(o->redis_url);
	p->archive_dir = dup_or_null(o->archive_dir);
	p->o.pg_dsn = p->pg_dsn;
	p->o.pg_search_path = p->search_path;
	p->o.redis_url = p->redis_url;
	p->o.archive_dir = p->archive_dir;
	if (p->o.batch_rows < 1)
		p->o.batch_rows = 1;
	if (p->o.batch_ms < 1)
		p->o.batch_ms = 1;
	if (p->o.redis_timeout_ms < 10)
		p->o.redis_timeout_ms = 2000;
	p->clock = o->clock ? o->clock : &lt_clock_real;
	p->rooms = calloc(HOTWORD_ROOMS_MAX, sizeof *p->rooms);
	p->known_days = calloc(KNOWN_DAYS_MAX, sizeof *p->known_days);
	lt_batchq_init(&p->q, o->max_pending_bytes ? o->max_pending_bytes : (16u << 20));
	lt_buf_init(&p->tmp, 0);
	p->nwriters = o->writers < 1			      ? 1
		      : o->writers > LT_PERSISTER_WRITERS_MAX ? LT_PERSISTER_WRITERS_MAX
							      : o->writers;
	bool ok = p->pg_dsn && p->rooms && p->known_days;
	for (int w = 0; ok && w < p->nwriters; w++)
		ok = lt_pgsink_open(p->pg_dsn, p->search_path, p->clock, &p->sinks[w]) == LT_OK;
	if (!ok) {
		lt_persister_close(p);
		return lt_error_set(e, LT_ENOMEM, "persister: out of memory");
	}
	p->sink = p->sinks[0];
	metrics_init();
	*out = p;
	return LT_OK;
}

void lt_persister_close(struct lt_persister *p)
{
	if (!p)
		return;
	for (int w = 0; w < LT_PERSISTER_WRITERS_MAX; w++)
		lt_pgsink_close(p->sinks[w]);
	if (p->redis)
		redisFree(p->redis);
	lt_batchq_free(&p->q);
	lt_buf_free(&p->tmp);
	free(p->rooms);
	free(p->known_days);
	free(p->pg_dsn);
	free(p->search_path);
	free(p->redis_url);
	free(p->archive_dir);
	free(p);
}

void lt_persister_stats(const struct lt_persister *p, struct lt_persister_stats *out)
{
	*out = p->st;
	out->pending_rows = p->q.rows;
	out->pending_batches = p->q.nbatches;
	out->pending_bytes = p->q.bytes;
}

/* Remember the rooms of a batch for the hot-word snapshots (bounded; the
 * stalest entry is replaced when full). */
static void rooms_touch(struct lt_persister *p, const struct lt_batch *b, int64_t now)
{
	char key[ROOM_KEY_MAX];
	const struct lt_str *last = NULL;
	for (uint32_t i = 0; i < b->nmsgs; i++) {
		const struct lt_msg *m = &b->msgs[i];
		if (last && lt_str_eq(*last, m->room))
			continue;
		last = &m->room;
		snprintf(key, sizeof key, "%s:%.*s", lt_platform_name(m->platform), (int)m->room.len,
			 m->room.p);
		size_t slot = p->nrooms, oldest = 0;
		for (size_t k = 0; k < p->nrooms; k++) {
			if (strcmp(p->rooms[k].key, key) == 0) {
				slot = k;
				break;
			}
			if (p->rooms[k].last_mono < p->rooms[oldest].last_mono)
				oldest = k;
		}
		if (slot == p->nrooms) {
			if (p->nrooms < HOTWORD_ROOMS_MAX)
				p->nrooms++;
			else
				slot = oldest;
			memcpy(p->rooms[slot].key, key, sizeof key);
		}
		p->rooms[slot].last_mono = now;
	}
}

int lt_persister_add_batch(struct lt_persister *p, const uint8_t *data, size_t len)
{
	uint32_t bad = 0;
	int64_t now = lt_clock_mono(p->clock);
	int rc = lt_batchq_add(&p->q, data, len, now, &bad);
	switch (rc) {
	case LT_OK:
		p->st.batches++;
		lt_metrics_add(mx.batches, 1);
		if (bad) {
			p->st.records_bad += bad;
			lt_metrics_add(mx.records_bad, bad);
			char ctx[128];
			snprintf(ctx, sizeof ctx, "batch=%s/%" PRIu64, p->q.tail->source_id, p->q.tail->seq);
			lt_warn(ctx, "refused %" PRIu32 " bad record(s) of %" PRIu32 "; kept the rest", bad,
				bad + p->q.tail->nmsgs);
		}
		rooms_touch(p, p->q.tail, now);
		lt_metrics_set(mx.pending_rows, (double)p->q.rows);
		break;
	case LT_EPROTO: {
		p->st.batches_bad++;
		lt_metrics_add(mx.batches_bad, 1);
		const struct lt_batch_note *n = p->q.nnotes ? &p->q.notes[p->q.nnotes - 1] : NULL;
		lt_warn(NULL, "dropped a malformed batch: %s source=%s", n ? n->message : "?",
			n && n->source_id[0] ? n->source_id : "?");
		break;
	}
	case LT_EEXIST:
		p->st.batches_dup++;
		break;
	case LT_EAGAIN:
		p->st.batches_full++;
		break;
	default:
		break;
	}
	return rc;
}

int lt_persister_next_due_ms(struct lt_persister *p)
{
	if (!p->q.head)
		return p->q.nnotes ? 0 : p->o.batch_ms;
	if (p->q.rows >= (size_t)p->o.batch_rows)
		return 0;
	int64_t age = lt_clock_mono(p->clock) - p->q.head->received_mono;
	return age >= p->o.batch_ms ? 0 : (int)(p->o.batch_ms - age);
}

static bool day_known(const struct lt_persister *p, int64_t day)
{
	size_t lo = 0, hi = p->nknown;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (p->known_days[mid] == day)
			return true;
		if (p->known_days[mid] < day)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static void day_remember(struct lt_persister *p, int64_t day)
{
	if (day_known(p, day))
		return;
	if (p->nknown == KNOWN_DAYS_MAX) /* forget the oldest; re-checking is cheap */
		memmove(p->known_days, p->known_days + 1, --p->nknown * sizeof *p->known_days);
	size_t i = p->nknown;
	while (i > 0 && p->known_days[i - 1] > day) {
		p->known_days[i] = p->known_days[i - 1];
		i--;
	}
	p->known_days[i] = day;
	p->nknown++;
}

/* The days a partition is made for on demand: from retention's cutoff (or
 * ten years back) to partitions_ahead + 1 days ahead. Rows outside go to the
 * default partition (retention trims it). */
static void day_window(const struct lt_persister *p, int64_t *lo, int64_t *hi)
{
	int64_t today = lt_partition_day(lt_clock_now(p->clock));
	*lo = today - (p->o.retention_days > 0 ? p->o.retention_days : 3650);
	*hi = today + p->o.partitions_ahead + 1;
}

/* Make sure the partitions of the days in nb batches from first exist. */
static int ensure_days(struct lt_persister *p, struct lt_batch *first, size_t nb, struct lt_error *e)
{
	PGconn *c = lt_pgsink_conn(p->sink);
	int64_t lo, hi, prev = INT64_MIN;
	day_window(p, &lo, &hi);
	struct lt_batch *b = first;
	for (size_t k = 0; k < nb && b; k++, b = b->next) {
		for (uint32_t i = 0; i < b->nmsgs; i++) {
			int64_t d = lt_partition_day(b->msgs[i].ts);
			if (d == prev || d < lo || d > hi)
				continue;
			prev = d;
			if (day_known(p, d))
				continue;
			int rc = lt_partition_ensure(c, d, NULL, e);
			if (rc != LT_OK)
				return rc;
			day_remember(p, d);
		}
	}
	return LT_OK;
}

/* How many batches from first make one transaction; *full says whether it
 * is as big as batch_rows allows (more batches are waiting behind it). */
static size_t take_count(const struct lt_persister *p, const struct lt_batch *first, bool *full)
{
	size_t n = 0, rows = 0;
	const struct lt_batch *b = first;
	for (; b; b = b->next) {
		if (n > 0 && rows + b->nmsgs > (size_t)p->o.batch_rows)
			break;
		n++;
		rows += b->nmsgs;
	}
	*full = b != NULL || rows >= (size_t)p->o.batch_rows;
	return n;
}

static void pg_failed(struct lt_persister *p, struct lt_pgsink *sink, int rc, const struct lt_error *e)
{
	p->st.pg_errors++;
	lt_metrics_add(mx.pg_errors, 1);
	if (rc != LT_EAGAIN)
		lt_warn(NULL, "%s (batches kept: %zu, rows %zu)", e->message, p->q.nbatches, p->q.rows);
	lt_pgsink_check(sink);
}

/* One transaction: a run of batches for one connection. Writers other than
 * the first run on their own thread; everything they touch is theirs (the
 * sink, the chunk) or read-only (the batches) until they are joined. */
struct chunk {
	struct lt_persister *p;
	struct lt_pgsink *sink;
	struct lt_batch *first;
	size_t nb;
	bool notes;  /* this transaction also writes the queued error notes */
	size_t done; /* batches from first that were committed */
	int rc;
	struct lt_pgsink_result res;
	struct lt_error e;
	pthread_t th;
	bool threaded;
};

/* Up to c->nb batches in one transaction; on a data error the first batch
 * alone, then record by record (c->done says how many committed). */
static void write_chunk(struct chunk *c)
{
	const struct lt_batch_note *notes = c->notes ? c->p->q.notes : NULL;
	size_t nnotes = c->notes ? c->p->q.nnotes : 0;
	c->done = c->nb;
	c->rc = lt_pgsink_apply(c->sink, c->first, c->nb, notes, nnotes, false, &c->res, &c->e);
	if (c->rc == LT_EAGAIN) /* deadlock or serialization: once more at once */
		c->rc = lt_pgsink_apply(c->sink, c->first, c->nb, notes, nnotes, false, &c->res, &c->e);
	if (c->rc != LT_EINVAL || c->nb == 0)
		return;
	lt_warn(NULL, "postgres refused a transaction's data (%s); retrying %s", c->e.message,
		c->nb > 1 ? "batch by batch" : "record by record");
	c->done = 1;
	if (c->nb > 1) {
		c->rc = lt_pgsink_apply(c->sink, c->first, 1, notes, nnotes, false, &c->res, &c->e);
		if (c->rc != LT_EINVAL)
			return;
	}
	c->rc = lt_pgsink_apply(c->sink, c->first, 1, notes, nnotes, true, &c->res, &c->e);
}

static void *chunk_thread(void *arg)
{
	write_chunk(arg);
	return NULL;
}

/* Connect a sink, counting reconnects. */
static int sink_ready(struct lt_persister *p, struct lt_pgsink *sink, struct lt_error *e)
{
	struct lt_pgsink_stats ss;
	lt_pgsink_stats(sink, &ss);
	uint64_t before = ss.connects;
	int rc = lt_pgsink_connect(sink, e);
	lt_pgsink_stats(sink, &ss);
	if (rc == LT_OK && ss.connects != before && ss.connects > 1)
		p->st.reconnects++;
	return rc;
}

/* Plan the chunks of one round: the first from the head of the queue, more
 * (one per extra writer) only while full chunks are waiting, so that the
 * extra connections work only when there is a backlog. */
static int plan(struct lt_persister *p, struct chunk *ch)
{
	int n = 0;
	struct lt_batch *b = p->q.head;
	for (int w = 0; w < p->nwriters; w++) {
		bool full;
		size_t nb = take_count(p, b, &full);
		if (w > 0 && (nb == 0 || !full))
			break;
		struct lt_error ce;
		if (w > 0 && sink_ready(p, p->sinks[w], &ce) != LT_OK)
			break;
		ch[n] = (struct chunk){.p = p, .sink = p->sinks[w], .first = b, .nb = nb, .notes = w == 0};
		n++;
		for (size_t k = 0; k < nb && b; k++)
			b = b->next;
		if (!b)
			break;
	}
	return n;
}

/* Ack and drop the committed batches of chunk c. */
static void settle(struct lt_persister *p, struct chunk *c, lt_persister_ack_fn ack, void *ctx)
{
	uint64_t dup = c->res.staged - c->res.inserted - c->res.bad;
	p->st.commits++;
	p->st.rows_new += c->res.inserted;
	p->st.rows_dup += dup;
	p->st.records_bad += c->res.bad;
	lt_metrics_add(mx.commits, 1);
	lt_metrics_add(mx.rows_new, c->res.inserted);
	lt_metrics_add(mx.rows_dup, dup);
	lt_metrics_add(mx.records_bad, c->res.bad);
	if (c->notes)
		lt_batchq_notes_clear(&p->q);
	struct lt_batch *b = c->first;
	for (size_t k = 0; k < c->done && b; k++, b = b->next) {
		if (ack)
			ack(ctx, b->source_id, b->seq);
		p->st.acks++;
	}
	lt_batchq_remove(&p->q, c->first, c->done);
}

int lt_persister_flush(struct lt_persister *p, bool force, lt_persister_ack_fn ack, void *ctx,
		       struct lt_error *e)
{
	struct lt_error local;
	if (!e)
		e = &local;
	for (;;) {
		if (!p->q.head && p->q.nnotes == 0)
			return LT_OK;
		if (!force && lt_persister_next_due_ms(p) > 0)
			return LT_OK;
		if (p->hold_until && lt_clock_mono(p->clock) < p->hold_until)
			return lt_error_set(e, LT_EAGAIN, "persister: waiting before retrying PostgreSQL");
		int rc = sink_ready(p, p->sink, e);
		if (rc == LT_EAGAIN)
			return rc;
		if (rc != LT_OK) {
			pg_failed(p, p->sink, rc, e);
			return rc;
		}
		struct chunk ch[LT_PERSISTER_WRITERS_MAX];
		int n = plan(p, ch);
		size_t all = 0;
		for (int i = 0; i < n; i++)
			all += ch[i].nb;
		rc = ensure_days(p, p->q.head, all, e);
		if (rc != LT_OK) {
			pg_failed(p, p->sink, rc, e);
			return rc;
		}
		for (int i = 1; i < n; i++)
			ch[i].threaded = pthread_create(&ch[i].th, NULL, chunk_thread, &ch[i]) == 0;
		write_chunk(&ch[0]);
		for (int i = 1; i < n; i++) {
			if (ch[i].threaded)
				pthread_join(ch[i].th, NULL);
			else
				write_chunk(&ch[i]);
		}
		/* Settle in queue order; remember the first failure. */
		int first_rc = LT_OK;
		for (int i = 0; i < n; i++) {
			if (ch[i].rc == LT_OK) {
				settle(p, &ch[i], ack, ctx);
				p->st.parallel_commits += i > 0;
				continue;
			}
			pg_failed(p, ch[i].sink, ch[i].rc, &ch[i].e);
			if (first_rc == LT_OK) {
				first_rc = ch[i].rc;
				*e = ch[i].e;
			}
		}
		lt_metrics_set(mx.pending_rows, (double)p->q.rows);
		if (first_rc == LT_OK) {
			p->hold_until = 0;
			p->hold_ms = 0;
			continue;
		}
		if (first_rc != LT_ECONN) { /* 250 ms doubling to 10 s */
			p->hold_ms = p->hold_ms ? (p->hold_ms * 2 > 10000 ? 10000 : p->hold_ms * 2) : 250;
			p->hold_until = lt_clock_mono(p->clock) + p->hold_ms;
		}
		return first_rc;
	}
}

int lt_persister_partitions(struct lt_persister *p, int *created, struct lt_error *e)
{
	int rc = lt_pgsink_connect(p->sink, e);
	if (rc != LT_OK)
		return rc;
	int back = 1;
	rc = lt_partition_ensure_ahead(lt_pgsink_conn(p->sink), lt_clock_now(p->clock), back,
				       p->o.partitions_ahead, created, e);
	if (rc == LT_OK) {
		int64_t today = lt_partition_day(lt_clock_now(p->clock));
		for (int64_t d = today - back; d <= today + p->o.partitions_ahead; d++)
			day_remember(p, d);
	} else {
		lt_pgsink_check(p->sink);
	}
	return rc;
}

int lt_persister_retention(struct lt_persister *p, int *dropped, struct lt_error *e)
{
	if (dropped)
		*dropped = 0;
	if (p->o.retention_days <= 0)
		return LT_OK;
	int rc = lt_pgsink_connect(p->sink, e);
	if (rc != LT_OK)
		return rc;
	rc = lt_partition_retention(lt_pgsink_conn(p->sink), lt_clock_now(p->clock), p->o.retention_days,
				    p->archive_dir, dropped, e);
	if (rc != LT_OK)
		lt_pgsink_check(p->sink);
	/* Dropped days must be found missing again if rows for them come. */
	int64_t lo, hi;
	day_window(p, &lo, &hi);
	size_t k = 0;
	for (size_t i = 0; i < p->nknown; i++)
		if (p->known_days[i] >= lo)
			p->known_days[k++] = p->known_days[i];
	p->nknown = k;
	return rc;
}

/* Append s as an element of a PostgreSQL array literal: "…" with \ and "
 * escaped. */
static void array_elem(struct lt_buf *b, const char *s, size_t n)
{
	lt_buf_putc(b, '"');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			lt_buf_putc(b, '\\');
		if (s[i] != '\0')
			lt_buf_putc(b, s[i]);
	}
	lt_buf_putc(b, '"');
}

static int redis_ready(struct lt_persister *p, struct lt_error *e)
{
	if (p->redis && !p->redis->err)
		return LT_OK;
	if (p->redis) {
		redisFree(p->redis);
		p->redis = NULL;
	}
	int64_t now = lt_clock_mono(p->clock);
	if (p->redis_next_try && now < p->redis_next_try)
		return lt_error_set(e, LT_EAGAIN, "redis: waiting before reconnecting");
	int rc = lt_redis_connect(p->redis_url, p->o.redis_timeout_ms, &p->redis, e);
	if (rc != LT_OK)
		p->redis_next_try = now + 5000;
	return rc;
}

static const char hot_sql[] =
    "INSERT INTO hotword_statistics (platform, room_id, \"window\", bucket_start, word, count, score, rank)"
    " SELECT $1, $2, $3, timestamptz 'epoch' + $4::bigint * interval '1 millisecond', w, c, s, r"
    " FROM unnest($5::text[], $6::bigint[], $7::float8[]) WITH ORDINALITY AS t(w, c, s, r)"
    " ON CONFLICT (platform, room_id, \"window\", bucket_start, word) DO UPDATE SET"
    "  count = EXCLUDED.count, score = EXCLUDED.score, rank = EXCLUDED.rank";

/* Snapshot one room and window: the top words by count, and their trend
 * score where the processor keeps one. Returns the words written. */
static int snapshot_one(struct lt_persister *p, PGconn *c, const char *room, const char *win,
			int64_t minute_ms, int *rows, struct lt_error *e)
{
	redisReply *r = redisCommand(p->redis, "ZREVRANGE live:{%s}:hotwords:%s 0 %d WITHSCORES", room, win,
				     p->o.hotwords_top - 1);
	if (!r)
		return lt_error_set(e, LT_ECONN, "redis: %s", p->redis->errstr);
	if (r->type != REDIS_REPLY_ARRAY || r->elements == 0 || r->elements % 2) {
		int rc =
		    r->type == REDIS_REPLY_ERROR ? lt_error_set(e, LT_EREDIS, "redis: %s", r->str) : LT_OK;
		freeReplyObject(r);
		return rc;
	}
	size_t n = r->elements / 2;
	bool trend = strcmp(win, "30m") != 0;
	for (size_t i = 0; trend && i < n; i++)
		redisAppendCommand(p->redis, "ZSCORE live:{%s}:hotwords:trend:%s %b", room, win,
				   r->element[2 * i]->str, (size_t)r->element[2 * i]->len);
	struct lt_buf words = LT_BUF_INIT, counts = LT_BUF_INIT, scores = LT_BUF_INIT;
	lt_buf_putc(&words, '{');
	lt_buf_putc(&counts, '{');
	lt_buf_putc(&scores, '{');
	int rc = LT_OK;
	for (size_t i = 0; i < n; i++) {
		const redisReply *w = r->element[2 * i], *sc = r->element[2 * i + 1];
		double score = 0;
		if (trend) {
			redisReply *t = NULL;
			if (redisGetReply(p->redis, (void **)&t) != REDIS_OK) {
				rc = lt_error_set(e, LT_ECONN, "redis: %s", p->redis->errstr);
				break;
			}
			if (t && t->type == REDIS_REPLY_STRING)
				score = strtod(t->str, NULL);
			freeReplyObject(t);
		}
		lt_buf_reset(&p->tmp);
		lt_utf8_repair(&p->tmp, w->str ? w->str : "", w->str ? w->len : 0);
		if (i) {
			lt_buf_putc(&words, ',');
			lt_buf_putc(&counts, ',');
			lt_buf_putc(&scores, ',');
		}
		array_elem(&words, (const char *)p->tmp.data, p->tmp.len);
		lt_buf_printf(&counts, "%lld", (long long)strtod(sc->str ? sc->str : "0", NULL));
		lt_buf_printf(&scores, "%.6g", score);
	}
	freeReplyObject(r);
	lt_buf_putc(&words, '}');
	lt_buf_putc(&counts, '}');
	lt_buf_putc(&scores, '}');
	if (rc == LT_OK && (lt_buf_err(&words) || lt_buf_err(&counts) || lt_buf_err(&scores)))
		rc = lt_error_set(e, LT_ENOMEM, "hotwords: out of memory");
	if (rc == LT_OK) {
		char platform[16], ms[24];
		const char *colon = strchr(room, ':');
		snprintf(platform, sizeof platform, "%.*s", (int)(colon - room), room);
		snprintf(ms, sizeof ms, "%" PRId64, minute_ms);
		const char *params[7] = {platform,
					 colon + 1,
					 win,
					 ms,
					 lt_buf_cstr(&words),
					 lt_buf_cstr(&counts),
					 lt_buf_cstr(&scores)};
		PGresult *res = PQexecParams(c, hot_sql, 7, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			const char *m = PQresultErrorMessage(res);
			rc = lt_error_set(e, PQstatus(c) == CONNECTION_OK ? LT_EDB : LT_ECONN,
					  "hotwords: %.*s", (int)strcspn(m, "\n"), m);
		} else if (rows) {
			*rows += atoi(PQcmdTuples(res));
		}
		PQclear(res);
	}
	lt_buf_free(&words);
	lt_buf_free(&counts);
	lt_buf_free(&scores);
	return rc;
}

int lt_persister_snapshot_hotwords(struct lt_persister *p, int *rows, struct lt_error *e)
{
	static const char *const windows[] = {"1m", "5m", "30m"};
	if (rows)
		*rows = 0;
	if (!p->redis_url || p->o.hotwords_top <= 0)
		return LT_OK;
	int rc = lt_pgsink_connect(p->sink, e);
	if (rc != LT_OK)
		return rc;
	rc = redis_ready(p, e);
	if (rc != LT_OK)
		return rc;
	PGconn *c = lt_pgsink_conn(p->sink);
	int64_t now = lt_clock_mono(p->clock);
	int64_t minute = lt_clock_now(p->clock) / 60000 * 60000;
	for (size_t i = 0; i < p->nrooms && rc == LT_OK; i++) {
		if (now - p->rooms[i].last_mono > HOTWORD_ROOM_TTL_MS)
			continue;
		for (size_t w = 0; w < 3 && rc == LT_OK; w++)
			rc = snapshot_one(p, c, p->rooms[i].key, windows[w], minute, rows, e);
	}
	if (rc != LT_OK)
		lt_pgsink_check(p->sink);
	return rc;
}

int lt_persister_maintain(struct lt_persister *p, struct lt_error *e)
{
	struct lt_error local;
	if (!e)
		e = &local;
	int64_t now = lt_clock_mono(p->clock);
	int rc = LT_OK;
	if (!p->partitions_done_once || now >= p->next_partitions_mono) {
		int created = 0;
		rc = lt_persister_partitions(p, &created, e);
		if (rc == LT_EAGAIN)
			return rc;
		if (rc != LT_OK)
			return rc;
		if (created)
			lt_info(NULL, "created %d live_messages partition(s)", created);
		p->partitions_done_once = true;
		p->next_partitions_mono = now + PARTITIONS_EVERY_MS;
	}
	if (p->o.retention_days > 0 && now >= p->next_retention_mono) {
		int dropped = 0;
		rc = lt_persister_retention(p, &dropped, e);
		if (rc != LT_OK)
			return rc;
		if (dropped)
			lt_info(NULL, "retention dropped %d partition(s) older than %d days%s", dropped,
				p->o.retention_days, p->archive_dir ? " (archived)" : "");
		p->next_retention_mono = now + RETENTION_EVERY_MS;
	}
	int64_t minute = lt_clock_now(p->clock) / 60000;
	if (p->redis_url && p->o.hotwords_top > 0 && minute != p->last_snapshot_minute) {
		int rows = 0;
		rc = lt_persister_snapshot_hotwords(p, &rows, e);
		if (rc == LT_OK)
			p->last_snapshot_minute = minute;
		else if (rc != LT_EAGAIN)
			lt_warn(NULL, "hot-word snapshot: %s", e->message);
		return rc == LT_EAGAIN ? LT_OK : rc;
	}
	return LT_OK;
}
