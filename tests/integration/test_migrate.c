/* SPDX-License-Identifier: MIT */
/*
 * test_migrate: persister/migrate.c against the real PostgreSQL that
 * tests/run starts. Each test works in a fresh schema (search_path), so tests
 * running at once never see each other's tables.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "persister/migrate.h"
#include "tests/support/testsupport.h"

/* Connect and switch to a new schema whose name is written to schema. */
static PGconn *connect_fresh(char schema[64])
{
	PGconn *c = PQconnectdb(lt_test_pg_dsn());
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	unsigned r = (unsigned)getpid() * 2654435761u ^ (unsigned)ts.tv_nsec;
	snprintf(schema, 64, "t_mig_%08x", r);
	char sql[160];
	snprintf(sql, sizeof sql, "CREATE SCHEMA %s; SET search_path TO %s", schema, schema);
	PGresult *res = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
	PQclear(res);
	return c;
}

static PGconn *connect_to(const char *schema)
{
	PGconn *c = PQconnectdb(lt_test_pg_dsn());
	ck_assert(PQstatus(c) == CONNECTION_OK);
	char sql[128];
	snprintf(sql, sizeof sql, "SET search_path TO %s", schema);
	PQclear(PQexec(c, sql));
	return c;
}

static void drop_schema(PGconn *c, const char *schema)
{
	char sql[128];
	snprintf(sql, sizeof sql, "SET client_min_messages = warning; DROP SCHEMA %s CASCADE", schema);
	PGresult *r = PQexec(c, sql);
	PQclear(r);
	PQfinish(c);
}

/* The single value of a one-row query, as a long. */
static long q_long(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
	ck_assert_int_eq(PQntuples(r), 1);
	long v = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

static void q_ok(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s",
		      sql, PQresultErrorMessage(r));
	PQclear(r);
}

START_TEST(test_apply_creates_schema_once)
{
	char schema[64];
	PGconn *c = connect_fresh(schema);
	struct lt_error e = {0};
	ck_assert_int_eq(lt_migrate_current(c), 0);
	ck_assert_msg(lt_migrate_apply(c, &e) == LT_OK, "%s", e.message);
	ck_assert_int_eq(lt_migrate_current(c), lt_migrate_embedded[lt_migrate_embedded_count - 1].version);
	static const char *tables[] = {
	    "rooms",	       "live_sessions",	     "live_messages", "live_messages_default",
	    "user_statistics", "hotword_statistics", "gift_records",  "checkins",
	    "keyword_rules",   "error_logs",	     "audit_logs",    "schema_migrations"};
	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
		char sql[128];
		snprintf(sql, sizeof sql,
			 "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND "
			 "tablename = '%s'",
			 tables[i]);
		ck_assert_msg(q_long(c, sql) == 1, "table %s missing", tables[i]);
	}
	/* live_messages is partitioned by range. */
	ck_assert_int_eq(q_long(c, "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = "
				   "'live_messages'::regclass AND partstrat = 'r'"),
			 1);
	/* A second run applies nothing and records nothing more. */
	ck_assert_msg(lt_migrate_apply(c, &e) == LT_OK, "%s", e.message);
	ck_assert_int_eq(q_long(c, "SELECT count(*) FROM schema_migrations"),
			 (long)lt_migrate_embedded_count);
	ck_assert_int_eq(q_long(c, "SELECT count(*) FROM schema_migrations WHERE length(checksum) = 64 AND "
				   "applied_at <= now()"),
			 (long)lt_migrate_embedded_count);
	drop_schema(c, schema);
}
END_TEST

START_TEST(test_edited_migration_refused)
{
	char schema[64];
	PGconn *c = connect_fresh(schema);
	struct lt_error e = {0};
	ck_assert_int_eq(lt_migrate_apply(c, &e), LT_OK);
	q_ok(c, "UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = 1");
	ck_assert_int_eq(lt_migrate_apply(c, &e), LT_ECONFIG);
	ck_assert_ptr_nonnull(strstr(e.message, "edited"));
	/* A version this binary does not know is refused too. */
	char sql[256];
	snprintf(sql, sizeof sql, "UPDATE schema_migrations SET checksum = '%s' WHERE version = 1",
		 lt_migrate_embedded[0].checksum);
	q_ok(c, sql);
	ck_assert_int_eq(lt_migrate_apply(c, &e), LT_OK);
	q_ok(c, "INSERT INTO schema_migrations (version, name, checksum) VALUES (999, 'future', 'x')");
	ck_assert_int_eq(lt_migrate_apply(c, &e), LT_ECONFIG);
	drop_schema(c, schema);
}
END_TEST

START_TEST(test_failed_migration_rolls_back)
{
	char schema[64];
	PGconn *c = connect_fresh(schema);
	struct lt_error e = {0};
	struct lt_migration list[2] = {
	    lt_migrate_embedded[0],
	    {900, "broken", "0000000000000000000000000000000000000000000000000000000000000000",
	     "CREATE TABLE half_done (a int); SELECT * FROM no_such_table;"},
	};
	ck_assert_int_eq(lt_migrate_apply_list(c, list, 2, &e), LT_EDB);
	ck_assert_ptr_nonnull(strstr(e.message, "900"));
	ck_assert_int_eq(q_long(c, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND "
				   "tablename = 'half_done'"),
			 0);
	ck_assert_int_eq(lt_migrate_current(c), 1);
	/* The connection is usable afterwards (not left inside a transaction). */
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_IDLE);
	drop_schema(c, schema);
}
END_TEST

struct racer {
	const char *schema;
	int rc;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	PGconn *c = PQconnectdb(lt_test_pg_dsn());
	char sql[128];
	snprintf(sql, sizeof sql, "SET search_path TO %s", r->schema);
	PQclear(PQexec(c, sql));
	struct lt_error e;
	r->rc = lt_migrate_apply(c, &e);
	PQfinish(c);
	return NULL;
}

START_TEST(test_concurrent_apply)
{
	char schema[64];
	PGconn *c = connect_fresh(schema);
	struct racer rs[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		rs[i] = (struct racer){schema, -1};
		ck_assert_int_eq(pthread_create(&th[i], NULL, race, &rs[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(rs[i].rc, LT_OK);
	}
	ck_assert_int_eq(q_long(c, "SELECT count(*) FROM schema_migrations"),
			 (long)lt_migrate_embedded_count);
	drop_schema(c, schema);
}
END_TEST

START_TEST(test_rooms_notify)
{
	char schema[64];
	PGconn *c = connect_fresh(schema);
	struct lt_error e;
	ck_assert_int_eq(lt_migrate_apply(c, &e), LT_OK);
	PGconn *l = connect_to(schema);
	q_ok(l, "LISTEN livetap_rooms");
	q_ok(c, "INSERT INTO rooms (platform, room_id) VALUES ('bilibili', '21452505')");
	q_ok(c, "UPDATE rooms SET enabled = false WHERE room_id = '21452505'");
	q_ok(c, "DELETE FROM rooms WHERE room_id = '21452505'");
	int got = 0;
	for (int tries = 0; tries < 50 && got < 3; tries++) {
		PQconsumeInput(l);
		PGnotify *n;
		while ((n = PQnotifies(l)) != NULL) {
			ck_assert_str_eq(n->relname, "livetap_rooms");
			ck_assert_str_eq(n->extra, "bilibili:21452505");
			got++;
			PQfreemem(n);
		}
		if (got < 3) {
			fd_set fds;
			FD_ZERO(&fds);
			FD_SET(PQsocket(l), &fds);
			struct timeval tv = {0, 100000};
			select(PQsocket(l) + 1, &fds, NULL, NULL, &tv);
		}
	}
	ck_assert_int_eq(got, 3);
	PQfinish(l);
	drop_schema(c, schema);
}
END_TEST

START_TEST(test_default_rows_move_into_new_partition)
{
	char schema[64];
	PGconn *c = connect_fresh(schema);
	struct lt_error e;
	ck_assert_int_eq(lt_migrate_apply(c, &e), LT_OK);
	q_ok(c, "INSERT INTO live_messages (platform, room_id, ts, msg_id, type) VALUES "
		"('bilibili', '1', '2025-03-04 23:59:59.999+00', 'a', 'chat'),"
		"('bilibili', '1', '2025-03-05 00:00:00+00', 'b', 'chat'),"
		"('bilibili', '1', '2025-03-05 12:00:00+00', 'c', 'chat')");
	ck_assert_int_eq(q_long(c, "SELECT count(*) FROM live_messages_default"), 3);
	ck_assert_int_eq(q_long(c, "SELECT livetap_ensure_partition('2025-03-05')::int"), 1);
	ck_assert_int_eq(q_long(c, "SELECT livetap_ensure_partition('2025-03-05')::int"), 0);
	ck_assert_int_eq(q_long(c, "SELECT count(*) FROM live_messages_p20250305"), 2);
	ck_assert_int_eq(q_long(c, "SELECT count(*) FROM live_messages_default"), 1);
	ck_assert_int_eq(q_long(c, "SELECT count(*) FROM live_messages"), 3);
	/* New rows of that day go to the partition, and the key still dedups. */
	q_ok(c, "INSERT INTO live_messages (platform, room_id, ts, msg_id, type) VALUES "
		"('bilibili', '1', '2025-03-05 12:00:00+00', 'c', 'chat') ON CONFLICT DO NOTHING");
	ck_assert_int_eq(q_long(c, "SELECT count(*) FROM live_messages_p20250305"), 2);
	drop_schema(c, schema);
}
END_TEST

/* The single value of a one-row query, as text the caller frees. */
static char *q_text(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
	ck_assert_int_eq(PQntuples(r), 1);
	char *v = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

/* Table t has one index, its primary key, on (platform, room_id, ts, msg_id). */
static void assert_time_ordered_key(PGconn *c, const char *t)
{
	char sql[256];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_index WHERE indrelid = '%s'::regclass", t);
	long n = q_long(c, sql);
	ck_assert_msg(n == 1, "%s has %ld indexes", t, n);
	snprintf(sql, sizeof sql,
		 "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = '%s'::regclass AND "
		 "indisprimary",
		 t);
	char *def = q_text(c, sql);
	ck_assert_msg(strstr(def, "(platform, room_id, ts, msg_id)") != NULL, "%s: %s", t, def);
	free(def);
}

/* 003 on a database that already holds rows (in a day partition and in the
 * default one): they stay, every table and partition keeps exactly one key,
 * with ts before msg_id, that still refuses a duplicate, and per-room time
 * ranges are read through it. */
START_TEST(test_time_ordered_keys_upgrade)
{
	char schema[64];
	PGconn *c = connect_fresh(schema);
	struct lt_error e;
	ck_assert_int_ge(lt_migrate_embedded_count, 3);
	ck_assert_int_eq(lt_migrate_embedded[2].version, 3);
	ck_assert_int_eq(lt_migrate_apply_list(c, lt_migrate_embedded, 2, &e), LT_OK);
	ck_assert_int_eq(q_long(c, "SELECT livetap_ensure_partition('2025-03-05')::int"), 1);
	q_ok(c, "INSERT INTO live_messages (platform, room_id, ts, msg_id, type) VALUES "
		"('bilibili', '1', '2025-03-04 12:00:00+00', 'a', 'chat'),"
		"('bilibili', '1', '2025-03-05 12:00:00+00', 'b', 'chat'),"
		"('bilibili', '1', '2025-03-05 13:00:00+00', 'c', 'gift')");
	q_ok(c, "INSERT INTO gift_records (platform, room_id, msg_id, ts, user_id) VALUES "
		"('bilibili', '1', 'c', '2025-03-05 13:00:00+00', 'u')");
	ck_assert_int_eq(lt_migrate_apply(c, &e), LT_OK);
	ck_assert_int_eq(lt_migrate_current(c), lt_migrate_embedded[lt_migrate_embedded_count - 1].version);

	ck_assert_int_eq(q_long(c, "SELECT count(*) FROM live_messages"), 3);
	ck_assert_int_eq(q_long(c, "SELECT count(*) FROM gift_records"), 1);
	assert_time_ordered_key(c, "live_messages");
	assert_time_ordered_key(c, "live_messages_default");
	assert_time_ordered_key(c, "live_messages_p20250305");
	assert_time_ordered_key(c, "gift_records");
	ck_assert_int_eq(q_long(c, "SELECT livetap_ensure_partition('2025-03-06')::int"), 1);
	assert_time_ordered_key(c, "live_messages_p20250306");

	/* the same message twice: refused, and skipped by ON CONFLICT */
	PGresult *r = PQexec(c, "INSERT INTO live_messages (platform, room_id, ts, msg_id, type) VALUES "
				"('bilibili', '1', '2025-03-05 12:00:00+00', 'b', 'chat')");
	ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
	ck_assert_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23505");
	PQclear(r);
	q_ok(c, "INSERT INTO live_messages (platform, room_id, ts, msg_id, type) VALUES "
		"('bilibili', '1', '2025-03-05 12:00:00+00', 'b', 'chat'),"
		"('bilibili', '1', '2025-03-05 12:00:00+00', 'd', 'chat') ON CONFLICT DO NOTHING");
	ck_assert_int_eq(q_long(c, "SELECT count(*) FROM live_messages"), 4);

	q_ok(c, "SET enable_seqscan = off");
	char *plan =
	    q_text(c, "EXPLAIN (COSTS OFF, FORMAT JSON) SELECT msg_id FROM live_messages_p20250305 "
		      "WHERE platform = 'bilibili' AND room_id = '1' AND ts >= '2025-03-05 12:30:00+00' "
		      "ORDER BY ts");
	ck_assert_msg(strstr(plan, "live_messages_p20250305_pkey") != NULL, "%s", plan);
	free(plan);
	drop_schema(c, schema);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("migrate");
	TCase *tc = tcase_create("pg");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_apply_creates_schema_once);
	tcase_add_test(tc, test_edited_migration_refused);
	tcase_add_test(tc, test_failed_migration_rolls_back);
	tcase_add_test(tc, test_concurrent_apply);
	tcase_add_test(tc, test_rooms_notify);
	tcase_add_test(tc, test_default_rows_move_into_new_partition);
	tcase_add_test(tc, test_time_ordered_keys_upgrade);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	lt_test_pg_dsn();
	return lt_test_run_suite(suite());
}
