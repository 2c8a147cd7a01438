/* SPDX-License-Identifier: MIT */
/*
 * migrate: apply the embedded SQL migrations under an advisory lock and
 * record them in schema_migrations (see migrate.h).
 */
#include "persister/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Created only when missing (checked under the lock), so no NOTICE. */
static const char exists_sql[] =
    "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'schema_migrations'";
static const char create_table_sql[] = "CREATE TABLE schema_migrations ("
				       " version integer PRIMARY KEY,"
				       " name text NOT NULL,"
				       " checksum text NOT NULL,"
				       " applied_at timestamptz NOT NULL DEFAULT now())";

/* The lock is per schema, so tests that each use a fresh schema do not wait
 * for one another, while two persisters on one schema do. */
static const char lock_sql[] = "SELECT pg_advisory_lock(hashtext('livetap_migrate:' || current_schema()))";
static const char unlock_sql[] =
    "SELECT pg_advisory_unlock(hashtext('livetap_migrate:' || current_schema()))";

/* Map a failed result to LT_ECONN (connection gone) or LT_EDB, filling e. */
static int db_fail(PGconn *conn, PGresult *r, struct lt_error *e, const char *what)
{
	int code = PQstatus(conn) == CONNECTION_OK ? LT_EDB : LT_ECONN;
	const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(conn);
	char clean[200];
	size_t n = strlen(msg);
	if (n >= sizeof clean)
		n = sizeof clean - 1;
	memcpy(clean, msg, n);
	while (n > 0 && (clean[n - 1] == '\n' || clean[n - 1] == ' '))
		n--;
	clean[n] = '\0';
	lt_error_set(e, code, "migrate: %s: %s", what, clean);
	return code;
}

/* Run one statement that returns no rows we need. */
static int exec_cmd(PGconn *conn, const char *sql, struct lt_error *e, const char *what)
{
	PGresult *r = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(r);
	int rc = LT_OK;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		rc = db_fail(conn, r, e, what);
	PQclear(r);
	return rc;
}

static void rollback_quietly(PGconn *conn)
{
	PQclear(PQexec(conn, "ROLLBACK"));
}

/* Apply one migration in its own transaction. */
static int apply_one(PGconn *conn, const struct lt_migration *m, struct lt_error *e)
{
	char what[96];
	char ver[16];
	snprintf(what, sizeof what, "version %03d (%s)", m->version, m->name);
	snprintf(ver, sizeof ver, "%d", m->version);
	int rc = exec_cmd(conn, "BEGIN", e, what);
	if (rc != LT_OK)
		return rc;
	rc = exec_cmd(conn, m->sql, e, what);
	if (rc != LT_OK)
		goto fail;
	const char *params[3] = {ver, m->name, m->checksum};
	PGresult *r =
	    PQexecParams(conn, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
			 3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		rc = db_fail(conn, r, e, what);
		PQclear(r);
		goto fail;
	}
	PQclear(r);
	rc = exec_cmd(conn, "COMMIT", e, what);
	return rc;
fail:
	rollback_quietly(conn);
	return rc;
}

/* Compare the applied rows with the list and apply what is missing; called
 * with the advisory lock held. */
static int apply_locked(PGconn *conn, const struct lt_migration *list, size_t n, struct lt_error *e)
{
	PGresult *r = PQexec(conn, exists_sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		int rc = db_fail(conn, r, e, "schema_migrations");
		PQclear(r);
		return rc;
	}
	int exists = atoi(PQgetvalue(r, 0, 0)) > 0;
	PQclear(r);
	int rc = exists ? LT_OK : exec_cmd(conn, create_table_sql, e, "schema_migrations");
	if (rc != LT_OK)
		return rc;
	r = PQexec(conn, "SELECT version, checksum FROM schema_migrations ORDER BY version");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		rc = db_fail(conn, r, e, "reading schema_migrations");
		PQclear(r);
		return rc;
	}
	int rows = PQntuples(r);
	int known_max = n ? list[n - 1].version : 0;
	for (int i = 0; i < rows; i++) {
		int v = atoi(PQgetvalue(r, i, 0));
		const char *sum = PQgetvalue(r, i, 1);
		const struct lt_migration *m = NULL;
		for (size_t j = 0; j < n; j++)
			if (list[j].version == v)
				m = &list[j];
		if (!m) {
			rc = lt_error_set(
			    e, LT_ECONFIG,
			    "migrate: the database has version %03d, which this program does not know "
			    "(newest known: %03d); refusing to start",
			    v, known_max);
			break;
		}
		if (strcmp(sum, m->checksum) != 0) {
			rc = lt_error_set(
			    e, LT_ECONFIG,
			    "migrate: version %03d (%s) was applied with checksum %.12s… but the "
			    "embedded file has %.12s…: a shipped migration was edited; refusing to start",
			    v, m->name, sum, m->checksum);
			break;
		}
	}
	if (rc != LT_OK) {
		PQclear(r);
		return rc;
	}
	for (size_t j = 0; j < n && rc == LT_OK; j++) {
		int applied = 0;
		for (int i = 0; i < rows; i++)
			if (atoi(PQgetvalue(r, i, 0)) == list[j].version)
				applied = 1;
		if (!applied)
			rc = apply_one(conn, &list[j], e);
	}
	PQclear(r);
	return rc;
}

int lt_migrate_apply_list(PGconn *conn, const struct lt_migration *list, size_t n, struct lt_error *e)
{
	if (!conn || PQstatus(conn) != CONNECTION_OK)
		return lt_error_set(e, LT_ECONN, "migrate: no connection to PostgreSQL");
	for (size_t j = 1; j < n; j++)
		if (list[j].version <= list[j - 1].version)
			return lt_error_set(e, LT_EINVAL, "migrate: migrations are not sorted by version");
	int rc = exec_cmd(conn, lock_sql, e, "advisory lock");
	if (rc != LT_OK)
		return rc;
	rc = apply_locked(conn, list, n, e);
	if (PQstatus(conn) == CONNECTION_OK) {
		struct lt_error ignore;
		exec_cmd(conn, unlock_sql, &ignore, "advisory unlock");
	}
	return rc;
}

int lt_migrate_apply(PGconn *conn, struct lt_error *e)
{
	return lt_migrate_apply_list(conn, lt_migrate_embedded, lt_migrate_embedded_count, e);
}

int lt_migrate_current(PGconn *conn)
{
	if (!conn || PQstatus(conn) != CONNECTION_OK)
		return -1;
	PGresult *r = PQexec(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		return -1;
	}
	int exists = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!exists)
		return 0;
	r = PQexec(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations");
	int v = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : -1;
	PQclear(r);
	return v;
}
