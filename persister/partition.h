/* SPDX-License-Identifier: MIT */
/*
 * partition: the daily partitions of live_messages.
 *
 * A day is counted in whole UTC days since 1970-01-01 (day 0). The partition
 * of a day is live_messages_pYYYYMMDD and holds [00:00, 24:00) UTC of that
 * day. The pure functions (day of a timestamp, name, bounds, parsing a name
 * back) need no database and are unit-tested with injected times; the rest
 * work on a PGconn (owned by the caller, not inside a transaction unless
 * said): create partitions ahead, move rows out of the default partition, and
 * apply retention, archiving a partition to gzip CSV before dropping it.
 */
#ifndef LT_PARTITION_H
#define LT_PARTITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "common/err.h"

#define LT_PARTITION_PREFIX "live_messages_p"
/* "live_messages_p" + YYYYMMDD + NUL, with room for 5-digit years. */
#define LT_PARTITION_NAME_MAX 32
#define LT_DAY_MS	      86400000LL

/* The UTC day of ts_ms (ms since the epoch), rounding toward minus infinity
 * (so -1 ms is day -1). */
int64_t lt_partition_day(int64_t ts_ms);

/* The civil date of a day: *y (e.g. 2026), *m (1..12), *d (1..31). */
void lt_partition_civil(int64_t day, int *y, int *m, int *d);
/* The day of a civil date (proleptic Gregorian); no range check. */
int64_t lt_partition_from_civil(int y, int m, int d);

/* Write "live_messages_pYYYYMMDD" into out (cap bytes, at least
 * LT_PARTITION_NAME_MAX). Returns LT_OK, or LT_EINVAL if the year is outside
 * 1..9999. */
int lt_partition_name(int64_t day, char *out, size_t cap);

/* Parse a partition name back into its day. Returns LT_OK, or LT_EINVAL for
 * anything that is not exactly the prefix and a valid date. */
int lt_partition_parse(const char *name, int64_t *day);

/* "YYYY-MM-DD" of day into out (at least 16 bytes). */
void lt_partition_date(int64_t day, char *out, size_t cap);

/* The half-open range of a day in ms: [*lo_ms, *hi_ms). */
void lt_partition_range(int64_t day, int64_t *lo_ms, int64_t *hi_ms);

/* Create the partition of day unless it exists, moving that day's rows out of
 * the default partition (SQL function livetap_ensure_partition, one
 * transaction). *created (may be NULL) says whether it was made now. Returns
 * LT_OK, LT_ECONN or LT_EDB (e filled). */
int lt_partition_ensure(PGconn *conn, int64_t day, bool *created, struct lt_error *e);

/* Ensure the partitions of today - back .. today + ahead (days, UTC of
 * now_ms). *created (may be NULL) gets how many were made. */
int lt_partition_ensure_ahead(PGconn *conn, int64_t now_ms, int back, int ahead, int *created,
			      struct lt_error *e);

/* The days that have a partition in conn's schema, sorted ascending, in a
 * malloc'd array the caller frees (*out, *n). Names that do not parse are
 * left out. */
int lt_partition_list(PGconn *conn, int64_t **out, size_t *n, struct lt_error *e);

/* Drop every partition whose whole day is older than retention_days before
 * the day of now_ms (day < today - retention_days), and delete default-
 * partition rows older than that. When archive_dir is not NULL each
 * partition is first written to archive_dir/live_messages_pYYYYMMDD.csv.gz
 * (CSV with a header line, COPY … TO STDOUT through zlib, written to a
 * temporary name and renamed when complete); a partition whose archive
 * fails is kept. retention_days <= 0 does nothing. *dropped (may be NULL)
 * gets how many partitions were dropped. */
int lt_partition_retention(PGconn *conn, int64_t now_ms, int retention_days, const char *archive_dir,
			   int *dropped, struct lt_error *e);

#endif
