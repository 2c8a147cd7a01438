/* SPDX-License-Identifier: MIT */
/*
 * persister: the core of livetap-persister, without NNG.
 *
 * Feed it lt_wire batches (lt_persister_add_batch) and call lt_persister_flush
 * regularly: once about batch_rows rows are waiting or the oldest batch is
 * batch_ms old, it writes them in one PostgreSQL transaction (see pg_sink.h)
 * and, only after COMMIT, reports each (source_id, seq) that is now durable
 * through the ack callback, which main.c turns into a bus ack. Until then the
 * batches stay in memory (bounded: past max_pending_bytes new batches are
 * refused, not acked, and the fetcher sends them again), so a PostgreSQL
 * restart loses nothing: the persister reconnects with backoff and retries.
 * lt_persister_maintain keeps daily partitions created ahead, applies
 * retention (archiving to gzip CSV when archive_dir is set), and snapshots
 * the processor's hot words from Redis into hotword_statistics once a minute.
 *
 * Bad input never stops it: a batch whose header is malformed is counted,
 * logged with its size and recorded in error_logs, and dropped (it cannot be
 * acked); a bad record is counted and recorded while its batch-mates are
 * written and the batch is acked.
 *
 * Single-threaded: call everything from one thread. Under a backlog (more
 * than one full batch_rows chunk waiting) a flush writes up to `writers`
 * chunks at once, each in its own transaction on its own connection (the
 * extra ones on short-lived threads joined before the flush returns), and
 * acks each chunk that committed; derived rows are written in key order, so
 * the transactions wait for each other rather than deadlock, and a deadlock
 * that still happens is retried.
 */
#ifndef LT_PERSISTER_H
#define LT_PERSISTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/err.h"

struct lt_persister;

#define LT_PERSISTER_WRITERS_MAX 4

struct lt_persister_opts {
	const char *pg_dsn;	    /* libpq connection string or URI (required) */
	const char *pg_search_path; /* NULL = server default; tests pass a fresh schema */
	const char *redis_url;	    /* NULL or "" = no hot-word snapshots */
	int redis_timeout_ms;
	int batch_rows;		      /* commit at this many pending rows */
	int batch_ms;		      /* or when the oldest pending batch is this old */
	size_t max_pending_bytes;     /* refuse new batches past this */
	int partitions_ahead;	      /* days of partitions made ahead of today */
	int retention_days;	      /* 0 = keep everything */
	const char *archive_dir;      /* NULL or "" = drop without archive */
	int hotwords_top;	      /* words per window per room; 0 = off */
	int writers;		      /* connections writing at once under a backlog
				       * (1..LT_PERSISTER_WRITERS_MAX) */
	const struct lt_clock *clock; /* NULL = real; not copied */
};

/* Defaults as in common/settings.c (pg_dsn left NULL). */
void lt_persister_opts_default(struct lt_persister_opts *o);
/* Fill o from a loaded configuration (strings point into cfg). */
void lt_persister_opts_from_config(struct lt_persister_opts *o, const struct lt_config *cfg);

/* Make a persister; strings in o are copied. Does not connect (the first
 * flush or maintain does). Returns LT_OK with *out (the caller frees it with
 * lt_persister_close), LT_EINVAL (no DSN), LT_ENOMEM. */
int lt_persister_open(const struct lt_persister_opts *o, struct lt_persister **out, struct lt_error *e);
/* Free p; batches not yet committed are dropped (never acked). NULL is fine. */
void lt_persister_close(struct lt_persister *p);

/* Queue one lt_wire batch (data is copied; the caller keeps ownership).
 * Returns LT_OK (queued; its ack comes from a later flush), LT_EEXIST (that
 * batch is already queued; the queued copy's ack answers both), LT_EPROTO
 * (malformed or not a data batch: counted, logged, noted for error_logs,
 * dropped; no ack is possible), LT_EAGAIN (memory cap reached: not queued, do
 * not ack), LT_ENOMEM. */
int lt_persister_add_batch(struct lt_persister *p, const uint8_t *data, size_t len);

/* Called once per committed batch with its source_id (valid during the call)
 * and seq. */
typedef void (*lt_persister_ack_fn)(void *ctx, const char *source_id, uint64_t seq);

/* Write what is due (everything if force) in one or more transactions and
 * ack each committed batch through ack (may be NULL). Returns LT_OK (nothing
 * due, or all written), LT_EAGAIN (waiting to reconnect), LT_ECONN (the
 * connection failed or was lost now; batches kept), LT_EDB or another
 * failure (batches kept, retried on a later call); e (may be NULL) says why. */
int lt_persister_flush(struct lt_persister *p, bool force, lt_persister_ack_fn ack, void *ctx,
		       struct lt_error *e);

/* Milliseconds until the next flush is due (0 = now; batch_ms when the queue
 * is empty), for the receive timeout. */
int lt_persister_next_due_ms(struct lt_persister *p);

/* Periodic work, cheap to call often: partitions ahead (at start, then every
 * 10 minutes), retention (every hour), hot-word snapshot (each new minute).
 * Returns LT_OK or the first failure (retried on a later call). */
int lt_persister_maintain(struct lt_persister *p, struct lt_error *e);

/* The same steps on demand (tests, and lt_persister_maintain). */
int lt_persister_partitions(struct lt_persister *p, int *created, struct lt_error *e);
int lt_persister_retention(struct lt_persister *p, int *dropped, struct lt_error *e);
/* Snapshot the hot words of every room seen in the last 30 minutes; *rows
 * (may be NULL) gets how many words were written. */
int lt_persister_snapshot_hotwords(struct lt_persister *p, int *rows, struct lt_error *e);

struct lt_persister_stats {
	uint64_t batches;      /* accepted */
	uint64_t batches_bad;  /* refused as malformed */
	uint64_t batches_dup;  /* already queued */
	uint64_t batches_full; /* refused at the memory cap */
	uint64_t records_bad;  /* refused records (decode, validation, PostgreSQL) */
	uint64_t rows_new;     /* inserted into live_messages */
	uint64_t rows_dup;     /* already there */
	uint64_t commits;
	uint64_t parallel_commits; /* by a second or later writer of a round */
	uint64_t acks;
	uint64_t pg_errors; /* failed transactions and connects */
	uint64_t reconnects;
	uint64_t pending_rows;
	uint64_t pending_batches;
	uint64_t pending_bytes;
};
void lt_persister_stats(const struct lt_persister *p, struct lt_persister_stats *out);

#endif
