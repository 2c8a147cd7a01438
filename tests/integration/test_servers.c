/* SPDX-License-Identifier: MIT */
/*
 * test_servers: the smoke test of the test harness itself.
 *
 * tests/run starts a private redis-server and PostgreSQL and exports
 * LIVETAP_REDIS_URL and LIVETAP_PG_DSN. Before any other integration test is
 * worth reading, this one shows that both servers answer: a hiredis SET/GET
 * round trip, and a libpq round trip of parameters (including Chinese text,
 * which chat lines are full of) through a table. Without the variables it
 * exits 77 (SKIP), which tests/run counts as a failure.
 */
#include "tests/support/testsupport.h"

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Split a redis://host:port[/db] URL into host, port and db. Only the TCP
 * form that servers.sh exports is needed here. Returns 0 on success.
 */
static int parse_redis_url(const char *url, char *host, size_t hostlen, int *port, int *db)
{
	const char *p = url;
	if (strncmp(p, "redis://", 8) != 0)
		return -1;
	p += 8;
	const char *colon = strchr(p, ':');
	if (!colon || (size_t)(colon - p) >= hostlen || colon == p)
		return -1;
	memcpy(host, p, (size_t)(colon - p));
	host[colon - p] = '\0';
	char *end;
	long v = strtol(colon + 1, &end, 10);
	if (end == colon + 1 || v <= 0 || v > 65535)
		return -1;
	*port = (int)v;
	*db = 0;
	if (*end == '/')
		*db = (int)strtol(end + 1, NULL, 10);
	return 0;
}

static redisContext *redis_connect(void)
{
	char host[256];
	int port, db;
	const char *url = lt_test_redis_url();
	ck_assert_msg(parse_redis_url(url, host, sizeof host, &port, &db) == 0, "bad LIVETAP_REDIS_URL '%s'",
		      url);
	struct timeval tv = {.tv_sec = 5};
	redisContext *c = redisConnectWithTimeout(host, port, tv);
	ck_assert_ptr_nonnull(c);
	ck_assert_msg(c->err == 0, "redis connect %s: %s", url, c->errstr);
	redisReply *r = redisCommand(c, "SELECT %d", db);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->type, REDIS_REPLY_STATUS);
	freeReplyObject(r);
	return c;
}

START_TEST(test_redis_set_get)
{
	redisContext *c = redis_connect();
	char key[64];
	snprintf(key, sizeof key, "livetap:test:servers:%ld", (long)getpid());
	/* A value with a NUL and UTF-8 in it: binary-safe both ways. */
	static const char val[] = "弹幕\0ok";

	redisReply *r = redisCommand(c, "SET %s %b", key, val, sizeof val);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->type, REDIS_REPLY_STATUS);
	ck_assert_str_eq(r->str, "OK");
	freeReplyObject(r);

	r = redisCommand(c, "GET %s", key);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
	ck_assert_uint_eq(r->len, sizeof val);
	ck_assert(memcmp(r->str, val, sizeof val) == 0);
	freeReplyObject(r);

	r = redisCommand(c, "DEL %s", key);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
	ck_assert_int_eq(r->integer, 1);
	freeReplyObject(r);

	redisFree(c);
}
END_TEST

START_TEST(test_pg_round_trip)
{
	const char *dsn = lt_test_pg_dsn();
	PGconn *pg = PQconnectdb(dsn);
	ck_assert_ptr_nonnull(pg);
	ck_assert_msg(PQstatus(pg) == CONNECTION_OK, "connect '%s': %s", dsn, PQerrorMessage(pg));
	ck_assert_str_eq(PQparameterStatus(pg, "server_encoding"), "UTF8");

	PGresult *res = PQexec(pg, "CREATE TEMP TABLE smoke (id bigint PRIMARY KEY, content text NOT NULL)");
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "create: %s", PQerrorMessage(pg));
	PQclear(res);

	const char *params[2] = {"42", "主播晚上好 666"};
	res = PQexecParams(pg, "INSERT INTO smoke VALUES ($1::bigint, $2) ON CONFLICT DO NOTHING", 2, NULL,
			   params, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "insert: %s", PQerrorMessage(pg));
	ck_assert_str_eq(PQcmdTuples(res), "1");
	PQclear(res);

	/* The same key again inserts nothing: the idempotence consumers rely on. */
	res = PQexecParams(pg, "INSERT INTO smoke VALUES ($1::bigint, $2) ON CONFLICT DO NOTHING", 2, NULL,
			   params, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "insert again: %s", PQerrorMessage(pg));
	ck_assert_str_eq(PQcmdTuples(res), "0");
	PQclear(res);

	res = PQexecParams(pg, "SELECT content, length(content) FROM smoke WHERE id = $1::bigint", 1, NULL,
			   params, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "select: %s", PQerrorMessage(pg));
	ck_assert_int_eq(PQntuples(res), 1);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), params[1]);
	ck_assert_str_eq(PQgetvalue(res, 0, 1), "9");
	PQclear(res);

	PQfinish(pg);
}
END_TEST

static Suite *servers_suite(void)
{
	Suite *s = suite_create("servers");
	TCase *tc = tcase_create("smoke");
	tcase_add_test(tc, test_redis_set_get);
	tcase_add_test(tc, test_pg_round_trip);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	/* Ask for both up front, so a missing server skips (77) before forking. */
	(void)lt_test_redis_url();
	(void)lt_test_pg_dsn();
	return lt_test_run_suite(servers_suite());
}
