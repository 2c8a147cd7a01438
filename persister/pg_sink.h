/* SPDX-License-Identifier: MIT */
/*
 * pg_sink: the persister's PostgreSQL side (internal to persister/).
 *
 * One connection, (re)made with exponential backoff and jitter after a
 * failure; on each new connection the migrations are applied and the TEMP
 * staging table is created, and the insert statements below are prepared on
 * their first use (parsed and planned once per connection, not per
 * transaction). lt_pgsink_apply writes a run of queued batches in one
 * transaction: text COPY into the staging table (a message that comes twice
 * in the run is staged once), sessions opened and closed by
 * live_start/live_end, then one statement that inserts into live_messages
 * and, from the RETURNING rows only (the rows that were new), updates
 * user_statistics, gift_records, the sessions' counters and checkins; the
 * error notes go to error_logs in the same transaction. The insert is a plain
 * one while rows are expected to be new; if PostgreSQL finds one already
 * stored (unique_violation), the transaction is rolled back and written again
 * with ON CONFLICT DO NOTHING, which is then used until a write meets no
 * stored row.
 * Nothing is acknowledged here: the caller acks after LT_OK, which means
 * COMMIT succeeded.
 */
#ifndef LT_PERSISTER_PG_SINK_H
#define LT_PERSISTER_PG_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"
#include "persister/batch.h"

struct lt_pgsink;

struct lt_pgsink_result {
	uint64_t staged;   /* rows copied into the staging table */
	uint64_t inserted; /* rows that were new to live_messages */
	uint64_t bad;	   /* rows refused in isolation mode */
};

/* A sink for dsn (a libpq connection string or URI; copied). search_path
 * (copied; NULL = the server's) is set on every connection: tests use a fresh
 * schema. clock (not copied; NULL = real) times the backoff. Does not
 * connect. Returns LT_OK with *out, or LT_ENOMEM. */
int lt_pgsink_open(const char *dsn, const char *search_path, const struct lt_clock *clock,
		   struct lt_pgsink **out);
void lt_pgsink_close(struct lt_pgsink *s);

/* Connect (and migrate, and create the staging table) unless connected.
 * Returns LT_OK, LT_EAGAIN while a backoff after a failure is running, or the
 * failure (LT_ECONN, LT_ECONFIG from migrations, …) with e filled; a failure
 * starts the next backoff step (100 ms doubling to 5 s, with jitter). */
int lt_pgsink_connect(struct lt_pgsink *s, struct lt_error *e);

/* The live connection, or NULL. Owned by the sink. */
PGconn *lt_pgsink_conn(struct lt_pgsink *s);

/* Forget the connection after an error the caller saw on it (e.g. in
 * maintenance): closes it if it is broken and starts the backoff. */
void lt_pgsink_check(struct lt_pgsink *s);

/* Write the first nb batches from first (and the notes) in one transaction.
 * isolate: each record in its own savepoint, so a record PostgreSQL refuses
 * is left out (counted in r->bad, noted in error_logs) instead of failing the
 * transaction; slow, for a batch that failed as a whole. Returns LT_OK after
 * COMMIT, LT_ECONN (connection lost: reconnect later, nothing is known to be
 * committed), LT_EAGAIN (serialization failure or deadlock: retry), LT_EINVAL
 * (PostgreSQL refused the data: retry with fewer batches or isolate), LT_EDB
 * (any other error; retry later). e says why. */
int lt_pgsink_apply(struct lt_pgsink *s, struct lt_batch *first, size_t nb, const struct lt_batch_note *notes,
		    size_t nnotes, bool isolate, struct lt_pgsink_result *r, struct lt_error *e);

/* Append s[0..n) to out escaped for COPY's text format: backslash, tab,
 * newline and carriage return as \\ \t \n \r; a NUL byte becomes U+FFFD.
 * The caller passes valid UTF-8. Returns how many NULs were replaced. */
size_t lt_pgsink_copy_escape(struct lt_buf *out, const char *s, size_t n);

/* Append one staging row for m (from source, seq) to out, tab-separated and
 * newline-terminated: invalid UTF-8 is repaired, an extra that is not a JSON
 * object PostgreSQL would take becomes {"invalid_extra":true}, and either
 * sets LT_MSGF_REPAIRED in the row's flags. scratch is working memory. */
void lt_pgsink_copy_row(struct lt_buf *out, struct lt_buf *scratch, const struct lt_msg *m,
			const char *source_id, uint64_t seq);

/* Counters since open. */
struct lt_pgsink_stats {
	uint64_t connects;
	uint64_t connect_failures;
	uint64_t commits;
	uint64_t rollbacks;
	uint64_t fallbacks; /* writes done again with ON CONFLICT after a unique_violation */
};
void lt_pgsink_stats(const struct lt_pgsink *s, struct lt_pgsink_stats *out);

#endif
