/* SPDX-License-Identifier: MIT */
/*
 * partition: daily partitions of live_messages — naming and range math, and
 * the database side: create ahead, list, retention with gzip CSV archives
 * (see partition.h).
 */
#include "persister/partition.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

int64_t lt_partition_day(int64_t ts_ms)
{
	int64_t d = ts_ms / LT_DAY_MS;
	if (ts_ms % LT_DAY_MS < 0)
		d--;
	return d;
}

/* Howard Hinnant's days_from_civil / civil_from_days, proleptic Gregorian. */
int64_t lt_partition_from_civil(int y, int m, int d)
{
	int64_t yy = (int64_t)y - (m <= 2);
	int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
	int64_t yoe = yy - era * 400;
	int64_t mp = (m + 9) % 12;
	int64_t doy = (153 * mp + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void lt_partition_civil(int64_t day, int *y, int *m, int *d)
{
	int64_t z = day + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int64_t dd = doy - (153 * mp + 2) / 5 + 1;
	int64_t mm = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yoe + era * 400 + (mm <= 2));
	*m = (int)mm;
	*d = (int)dd;
}

int lt_partition_name(int64_t day, char *out, size_t cap)
{
	int y, m, d;
	if (day < -719162 || day > 2932896) /* 0001-01-01 .. 9999-12-31 */
		return LT_EINVAL;
	lt_partition_civil(day, &y, &m, &d);
	int n = snprintf(out, cap, LT_PARTITION_PREFIX "%04d%02d%02d", y, m, d);
	if (n < 0 || (size_t)n >= cap)
		return LT_EINVAL;
	return LT_OK;
}

int lt_partition_parse(const char *name, int64_t *day)
{
	size_t pl = sizeof LT_PARTITION_PREFIX - 1;
	if (!name || strncmp(name, LT_PARTITION_PREFIX, pl) != 0)
		return LT_EINVAL;
	const char *s = name + pl;
	if (strlen(s) != 8)
		return LT_EINVAL;
	int v[8];
	for (int i = 0; i < 8; i++) {
		if (s[i] < '0' || s[i] > '9')
			return LT_EINVAL;
		v[i] = s[i] - '0';
	}
	int y = v[0] * 1000 + v[1] * 100 + v[2] * 10 + v[3];
	int m = v[4] * 10 + v[5];
	int d = v[6] * 10 + v[7];
	if (y < 1 || m < 1 || m > 12 || d < 1 || d > 31)
		return LT_EINVAL;
	int64_t dd = lt_partition_from_civil(y, m, d);
	int yy, mm, d2;
	lt_partition_civil(dd, &yy, &mm, &d2);
	if (yy != y || mm != m || d2 != d) /* 2026-02-30 and the like */
		return LT_EINVAL;
	*day = dd;
	return LT_OK;
}

void lt_partition_date(int64_t day, char *out, size_t cap)
{
	int y, m, d;
	lt_partition_civil(day, &y, &m, &d);
	snprintf(out, cap, "%04d-%02d-%02d", y, m, d);
}

void lt_partition_range(int64_t day, int64_t *lo_ms, int64_t *hi_ms)
{
	*lo_ms = day * LT_DAY_MS;
	*hi_ms = (day + 1) * LT_DAY_MS;
}

/* Fill e from a failed result or the connection; LT_ECONN if it is gone. */
static int db_fail(PGconn *conn, PGresult *r, struct lt_error *e, const char *what)
{
	int code = PQstatus(conn) == CONNECTION_OK ? LT_EDB : LT_ECONN;
	const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(conn);
	int n = (int)strcspn(msg, "\n");
	lt_error_set(e, code, "partition: %s: %.*s", what, n > 180 ? 180 : n, msg);
	return code;
}

int lt_partition_ensure(PGconn *conn, int64_t day, bool *created, struct lt_error *e)
{
	char date[16];
	char name[LT_PARTITION_NAME_MAX];
	if (lt_partition_name(day, name, sizeof name) != LT_OK)
		return lt_error_set(e, LT_EINVAL, "partition: day %" PRId64 " is out of range", day);
	lt_partition_date(day, date, sizeof date);
	const char *params[1] = {date};
	PGresult *r =
	    PQexecParams(conn, "SELECT livetap_ensure_partition($1::date)", 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		int rc = db_fail(conn, r, e, name);
		PQclear(r);
		return rc;
	}
	if (created)
		*created = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return LT_OK;
}

int lt_partition_ensure_ahead(PGconn *conn, int64_t now_ms, int back, int ahead, int *created,
			      struct lt_error *e)
{
	int64_t today = lt_partition_day(now_ms);
	int made = 0;
	for (int64_t d = today - back; d <= today + ahead; d++) {
		bool c = false;
		int rc = lt_partition_ensure(conn, d, &c, e);
		if (rc != LT_OK)
			return rc;
		made += c;
	}
	if (created)
		*created = made;
	return LT_OK;
}

int lt_partition_list(PGconn *conn, int64_t **out, size_t *n, struct lt_error *e)
{
	PGresult *r = PQexec(conn, "SELECT c.relname FROM pg_inherits i "
				   "JOIN pg_class c ON c.oid = i.inhrelid "
				   "WHERE i.inhparent = 'live_messages'::regclass ORDER BY 1");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		int rc = db_fail(conn, r, e, "list");
		PQclear(r);
		return rc;
	}
	int rows = PQntuples(r);
	int64_t *days = malloc(sizeof *days * (size_t)(rows > 0 ? rows : 1));
	if (!days) {
		PQclear(r);
		return lt_error_set(e, LT_ENOMEM, "partition: list: out of memory");
	}
	size_t k = 0;
	for (int i = 0; i < rows; i++) {
		int64_t d;
		if (lt_partition_parse(PQgetvalue(r, i, 0), &d) == LT_OK)
			days[k++] = d;
	}
	PQclear(r);
	/* Names sort like their days (fixed width), but keep it explicit. */
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && days[j - 1] > days[j]; j--) {
			int64_t t = days[j];
			days[j] = days[j - 1];
			days[j - 1] = t;
		}
	*out = days;
	*n = k;
	return LT_OK;
}

/* Run a COPY … TO STDOUT statement and write its output gzip-compressed to
 * path (via path.tmp, renamed when complete). */
static int archive_copy(PGconn *conn, const char *copy_sql, const char *path, struct lt_error *e)
{
	char tmp[4096];
	int rc = LT_OK;
	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		return lt_error_set(e, LT_EINVAL, "partition: archive path too long");
	gzFile gz = gzopen(tmp, "wb6");
	if (!gz)
		return lt_error_set(e, LT_EIO, "partition: cannot create %s: %s", tmp, strerror(errno));
	PGresult *r = PQexec(conn, copy_sql);
	if (PQresultStatus(r) != PGRES_COPY_OUT) {
		rc = db_fail(conn, r, e, "archive copy");
		PQclear(r);
		gzclose(gz);
		goto fail;
	}
	PQclear(r);
	char *row = NULL;
	int len;
	while ((len = PQgetCopyData(conn, &row, 0)) > 0) {
		if (rc == LT_OK && gzwrite(gz, row, (unsigned)len) != len)
			rc = lt_error_set(e, LT_EIO, "partition: writing %s failed", tmp);
		PQfreemem(row);
	}
	if (len == -2 && rc == LT_OK)
		rc = db_fail(conn, NULL, e, "archive copy");
	while ((r = PQgetResult(conn)) != NULL) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == LT_OK)
			rc = db_fail(conn, r, e, "archive copy");
		PQclear(r);
	}
	if (gzclose(gz) != Z_OK && rc == LT_OK)
		rc = lt_error_set(e, LT_EIO, "partition: closing %s failed", tmp);
	if (rc != LT_OK)
		goto fail;
	if (rename(tmp, path) != 0) {
		rc = lt_error_set(e, LT_EIO, "partition: rename to %s: %s", path, strerror(errno));
		goto fail;
	}
	return LT_OK;
fail:
	unlink(tmp);
	return rc;
}

/* archive_dir/base.csv.gz, or base-<now_ms>.csv.gz if that exists already
 * (a day can be archived twice when late rows recreated its partition). */
static int archive_path(const char *dir, const char *base, int64_t now_ms, char *out, size_t cap)
{
	struct stat st;
	int n = snprintf(out, cap, "%s/%s.csv.gz", dir, base);
	if (n < 0 || (size_t)n >= cap)
		return LT_EINVAL;
	if (stat(out, &st) == 0) {
		n = snprintf(out, cap, "%s/%s-%" PRId64 ".csv.gz", dir, base, now_ms);
		if (n < 0 || (size_t)n >= cap)
			return LT_EINVAL;
	}
	return LT_OK;
}

static int exec_cmd(PGconn *conn, const char *sql, struct lt_error *e, const char *what)
{
	PGresult *r = PQexec(conn, sql);
	int rc = LT_OK;
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		rc = db_fail(conn, r, e, what);
	PQclear(r);
	return rc;
}

/* Archive (optionally) and drop one partition in one transaction: the
 * partition is locked against writes first, so the archive holds exactly
 * what is dropped. */
static int drop_one(PGconn *conn, const char *name, const char *archive_dir, int64_t now_ms,
		    struct lt_error *e)
{
	char sql[256];
	int rc = exec_cmd(conn, "BEGIN", e, name);
	if (rc != LT_OK)
		return rc;
	/* Two persisters applying retention at once: one at a time, and the
	 * second finds the partition gone and skips it. */
	rc =
	    exec_cmd(conn, "SELECT pg_advisory_xact_lock(hashtext('livetap_retention:' || current_schema()))",
		     e, name);
	if (rc != LT_OK)
		goto fail;
	const char *params[1] = {name};
	PGresult *r =
	    PQexecParams(conn, "SELECT to_regclass(quote_ident($1)) IS NULL", 1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		rc = db_fail(conn, r, e, name);
		PQclear(r);
		goto fail;
	}
	bool gone = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (gone) {
		PQclear(PQexec(conn, "ROLLBACK"));
		return LT_EEXIST;
	}
	snprintf(sql, sizeof sql, "LOCK TABLE %s IN SHARE MODE", name);
	rc = exec_cmd(conn, sql, e, name);
	if (rc != LT_OK)
		goto fail;
	if (archive_dir) {
		char path[4096];
		if (archive_path(archive_dir, name, now_ms, path, sizeof path) != LT_OK) {
			rc = lt_error_set(e, LT_EINVAL, "partition: archive path too long");
			goto fail;
		}
		snprintf(sql, sizeof sql,
			 "COPY (SELECT * FROM %s ORDER BY ts, msg_id) TO STDOUT WITH (FORMAT csv, HEADER)",
			 name);
		rc = archive_copy(conn, sql, path, e);
		if (rc != LT_OK)
			goto fail;
	}
	snprintf(sql, sizeof sql, "DROP TABLE %s", name);
	rc = exec_cmd(conn, sql, e, name);
	if (rc != LT_OK)
		goto fail;
	return exec_cmd(conn, "COMMIT", e, name);
fail:
	PQclear(PQexec(conn, "ROLLBACK"));
	return rc;
}

/* Old rows that sit in the default partition: archive and delete them. */
static int trim_default(PGconn *conn, int64_t cutoff_day, const char *archive_dir, int64_t now_ms,
			struct lt_error *e)
{
	char date[16];
	char sql[320];
	lt_partition_date(cutoff_day, date, sizeof date);
	/* The cutoff is a date we formatted from an integer, never input. */
	snprintf(sql, sizeof sql, "SELECT count(*) FROM live_messages_default WHERE ts < '%s 00:00:00+00'",
		 date);
	PGresult *r = PQexec(conn, sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		int rc = db_fail(conn, r, e, "default partition");
		PQclear(r);
		return rc;
	}
	long old = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	if (old == 0)
		return LT_OK;
	int rc = exec_cmd(conn, "BEGIN", e, "default partition");
	if (rc != LT_OK)
		return rc;
	rc = exec_cmd(conn, "LOCK TABLE live_messages_default IN SHARE ROW EXCLUSIVE MODE", e,
		      "default partition");
	if (rc != LT_OK)
		goto fail;
	if (archive_dir) {
		char path[4096];
		char base[64];
		snprintf(base, sizeof base, "live_messages_default-before-%s", date);
		if (archive_path(archive_dir, base, now_ms, path, sizeof path) != LT_OK) {
			rc = lt_error_set(e, LT_EINVAL, "partition: archive path too long");
			goto fail;
		}
		snprintf(sql, sizeof sql,
			 "COPY (SELECT * FROM live_messages_default WHERE ts < '%s 00:00:00+00' ORDER BY ts, "
			 "msg_id) "
			 "TO STDOUT WITH (FORMAT csv, HEADER)",
			 date);
		rc = archive_copy(conn, sql, path, e);
		if (rc != LT_OK)
			goto fail;
	}
	snprintf(sql, sizeof sql, "DELETE FROM live_messages_default WHERE ts < '%s 00:00:00+00'", date);
	rc = exec_cmd(conn, sql, e, "default partition");
	if (rc != LT_OK)
		goto fail;
	return exec_cmd(conn, "COMMIT", e, "default partition");
fail:
	PQclear(PQexec(conn, "ROLLBACK"));
	return rc;
}

int lt_partition_retention(PGconn *conn, int64_t now_ms, int retention_days, const char *archive_dir,
			   int *dropped, struct lt_error *e)
{
	if (dropped)
		*dropped = 0;
	if (retention_days <= 0)
		return LT_OK;
	if (archive_dir && mkdir(archive_dir, 0750) != 0 && errno != EEXIST)
		return lt_error_set(e, LT_EIO, "partition: cannot create %s: %s", archive_dir,
				    strerror(errno));
	int64_t cutoff = lt_partition_day(now_ms) - retention_days;
	int64_t *days = NULL;
	size_t n = 0;
	int rc = lt_partition_list(conn, &days, &n, e);
	if (rc != LT_OK)
		return rc;
	int count = 0;
	for (size_t i = 0; i < n && rc == LT_OK; i++) {
		if (days[i] >= cutoff)
			break;
		char name[LT_PARTITION_NAME_MAX];
		if (lt_partition_name(days[i], name, sizeof name) != LT_OK)
			continue;
		rc = drop_one(conn, name, archive_dir, now_ms, e);
		if (rc == LT_OK)
			count++;
		else if (rc == LT_EEXIST) /* dropped by another persister */
			rc = LT_OK;
	}
	free(days);
	if (rc == LT_OK)
		rc = trim_default(conn, cutoff, archive_dir, now_ms, e);
	if (dropped)
		*dropped = count;
	return rc;
}
