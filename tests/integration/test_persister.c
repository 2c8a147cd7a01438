/* SPDX-License-Identifier: MIT */
/*
 * test_persister: the persister core (persister/persister.h) against the real
 * PostgreSQL (and Redis for hot-word snapshots) that tests/run starts: COPY
 * escaping with hostile content, dedup, statistics derived only from new
 * rows, sessions, check-ins, partitions ahead, the default partition,
 * retention with gzip CSV archives, bad input, batching by rows and age, and
 * a PostgreSQL restart in the middle with nothing lost. Each test works in a
 * fresh schema; time is a manual clock except in the restart test.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <zlib.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/redisconn.h"
#include "common/wire.h"
#include "persister/partition.h"
#include "persister/persister.h"
#include "tests/support/testsupport.h"

/* 2026-03-10 12:00:00 UTC */
#define T0  INT64_C(1773144000000)
#define DAY LT_DAY_MS

struct ack {
	char source[LT_WIRE_SOURCE_MAX + 1];
	uint64_t seq;
};

static struct {
	PGconn *c;
	char schema[64];
	struct lt_persister *p;
	int64_t now;
	struct lt_clock clk;
	struct ack acks[1024];
	int nacks;
	struct lt_persister_opts o;
} fx;

static void on_ack(void *ctx, const char *source_id, uint64_t seq)
{
	(void)ctx;
	ck_assert_int_lt(fx.nacks, 1024);
	snprintf(fx.acks[fx.nacks].source, sizeof fx.acks[0].source, "%s", source_id);
	fx.acks[fx.nacks++].seq = seq;
}

static bool acked(const char *source, uint64_t seq)
{
	for (int i = 0; i < fx.nacks; i++)
		if (fx.acks[i].seq == seq && strcmp(fx.acks[i].source, source) == 0)
			return true;
	return false;
}

static void q_ok(const char *sql)
{
	PGresult *r = PQexec(fx.c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s",
		      sql, PQresultErrorMessage(r));
	PQclear(r);
}

static long q_long(const char *sql)
{
	PGresult *r = PQexec(fx.c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
	ck_assert_int_eq(PQntuples(r), 1);
	long v = PQgetisnull(r, 0, 0) ? -1 : atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

/* The single text value of sql with one parameter, malloc'd; NULL if none. */
static char *q_str1(const char *sql, const char *param)
{
	const char *params[1] = {param};
	PGresult *r = PQexecParams(fx.c, sql, 1, NULL, params, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
	char *v = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) ? strdup(PQgetvalue(r, 0, 0)) : NULL;
	PQclear(r);
	return v;
}

static void setup_with(void (*tweak)(struct lt_persister_opts *))
{
	memset(&fx, 0, sizeof fx);
	lt_log_init("test_persister", LT_LOG_ERROR);
	fx.c = PQconnectdb(lt_test_pg_dsn());
	ck_assert_msg(PQstatus(fx.c) == CONNECTION_OK, "%s", PQerrorMessage(fx.c));
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(fx.schema, sizeof fx.schema, "t_pers_%d_%ld", (int)getpid(), (long)(ts.tv_nsec % 1000000));
	char sql[200];
	snprintf(sql, sizeof sql,
		 "SET client_min_messages = warning; CREATE SCHEMA %s; SET search_path TO %s", fx.schema,
		 fx.schema);
	q_ok(sql);
	fx.now = T0;
	fx.clk = lt_clock_manual(&fx.now);
	lt_persister_opts_default(&fx.o);
	fx.o.pg_dsn = lt_test_pg_dsn();
	fx.o.pg_search_path = fx.schema;
	fx.o.clock = &fx.clk;
	fx.o.hotwords_top = 0;
	if (tweak)
		tweak(&fx.o);
	struct lt_error e = {0};
	ck_assert_msg(lt_persister_open(&fx.o, &fx.p, &e) == LT_OK, "%s", e.message);
}

static void setup(void)
{
	setup_with(NULL);
}

static void teardown(void)
{
	lt_persister_close(fx.p);
	fx.p = NULL;
	char sql[160];
	snprintf(sql, sizeof sql, "SET client_min_messages = warning; DROP SCHEMA IF EXISTS %s CASCADE",
		 fx.schema);
	PQclear(PQexec(fx.c, sql));
	PQfinish(fx.c);
}

static struct lt_msg mk(int type, const char *room, const char *id, const char *uid, const char *uname,
			const char *content, int64_t ts)
{
	struct lt_msg m = {0};
	m.platform = LT_PLATFORM_BILIBILI;
	m.type = (uint8_t)type;
	m.ts = ts;
	m.room = lt_str_c(room);
	m.msg_id = lt_str_c(id);
	m.user_id = lt_str_c(uid);
	m.user_name = lt_str_c(uname);
	m.content = lt_str_c(content);
	m.extra = LT_STR("{}");
	return m;
}

/* Encode msgs as one batch and hand it to the persister; returns its rc. */
static int add(const char *source, uint64_t seq, const struct lt_msg *msgs, int n)
{
	struct lt_buf b = LT_BUF_INIT;
	ck_assert_int_eq(lt_wire_batch_begin(&b, LT_WIRE_KIND_DATA, 0, source, seq), LT_OK);
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(lt_wire_batch_add(&b, &msgs[i]), LT_OK);
	int rc = lt_persister_add_batch(fx.p, b.data, b.len);
	lt_buf_free(&b);
	return rc;
}

static void flush_ok(void)
{
	struct lt_error e = {0};
	int rc = lt_persister_flush(fx.p, true, on_ack, NULL, &e);
	ck_assert_msg(rc == LT_OK, "flush: %d %s", rc, e.message);
}

START_TEST(test_copy_hostile_content)
{
	static const char nul_content[] = "before\0after";
	struct {
		const char *id;
		const char *content; /* as sent */
		size_t len;
		const char *want; /* as stored */
	} cases[] = {
	    {"tab", "a\tb\tc", 5, "a\tb\tc"},
	    {"nl", "line1\nline2\r\nline3", 18, "line1\nline2\r\nline3"},
	    {"bs", "C:\\path\\N\\\\x \\.", 15, "C:\\path\\N\\\\x \\."},
	    {"copyend", "\\.\n", 3, "\\.\n"},
	    {"nullish", "\\N", 2, "\\N"},
	    {"quote", "'; DROP TABLE live_messages; --\"", 32, "'; DROP TABLE live_messages; --\""},
	    {"nul", nul_content, sizeof nul_content - 1,
	     "before\xEF\xBF\xBD"
	     "after"},
	    {"badutf8", "ok\xFF\xFEok", 6, "ok\xEF\xBF\xBD\xEF\xBF\xBDok"},
	    {"cjk", "签到 哈哈哈 🎉 [doge]", 0, "签到 哈哈哈 🎉 [doge]"},
	    {"empty", "", 0, ""},
	};
	size_t n = sizeof cases / sizeof cases[0];
	struct lt_msg msgs[16];
	for (size_t i = 0; i < n; i++) {
		msgs[i] = mk(LT_MSG_CHAT, "hostile", cases[i].id, "u1", "名字\twith\ttabs\\",
			     cases[i].content, T0 + (int64_t)i);
		if (cases[i].len)
			msgs[i].content.len = (uint32_t)cases[i].len;
	}
	/* extra: JSON with escapes and raw whitespace, invalid JSON, \u0000, an
	 * array (not an object). */
	msgs[0].extra = LT_STR("{\"gift_name\":\"a\\tb\\\\c\\n\",\n\t\"k\": [1, 2]}");
	msgs[1].extra = LT_STR("{not json");
	msgs[2].extra = LT_STR("{\"x\":\"\\u0000\"}");
	msgs[3].extra = LT_STR("[1,2]");
	ck_assert_int_eq(add("src-hostile", 1, msgs, (int)n), LT_OK);
	flush_ok();
	ck_assert(acked("src-hostile", 1));
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages WHERE room_id = 'hostile'"), (long)n);
	for (size_t i = 0; i < n; i++) {
		char *got = q_str1("SELECT content FROM live_messages WHERE msg_id = $1", cases[i].id);
		ck_assert_msg(got != NULL, "%s missing", cases[i].id);
		ck_assert_msg(strcmp(got, cases[i].want) == 0, "%s: got [%s] want [%s]", cases[i].id, got,
			      cases[i].want);
		free(got);
		char *name = q_str1("SELECT user_name FROM live_messages WHERE msg_id = $1", cases[i].id);
		ck_assert_str_eq(name, "名字\twith\ttabs\\");
		free(name);
	}
	char *x = q_str1("SELECT extra->>'gift_name' FROM live_messages WHERE msg_id = $1", "tab");
	ck_assert_str_eq(x, "a\tb\\c\n");
	free(x);
	for (int i = 1; i <= 3; i++) {
		x = q_str1("SELECT extra::text FROM live_messages WHERE msg_id = $1", cases[i].id);
		ck_assert_str_eq(x, "{\"invalid_extra\": true}");
		free(x);
	}
	/* repaired rows are flagged */
	x = q_str1("SELECT (flags & 4)::text FROM live_messages WHERE msg_id = $1", "badutf8");
	ck_assert_str_eq(x, "4");
	free(x);
	x = q_str1("SELECT (flags & 4)::text FROM live_messages WHERE msg_id = $1", "cjk");
	ck_assert_str_eq(x, "0");
	free(x);
}
END_TEST

START_TEST(test_dedup_same_batch_twice)
{
	struct lt_msg msgs[3] = {
	    mk(LT_MSG_CHAT, "r1", "m1", "u1", "alice", "hello", T0),
	    mk(LT_MSG_CHAT, "r1", "m2", "u2", "bob", "hi", T0 + 1),
	    mk(LT_MSG_CHAT, "r1", "m2", "u2", "bob", "hi", T0 + 1), /* twice in one batch */
	};
	ck_assert_int_eq(add("src-a", 7, msgs, 3), LT_OK);
	/* The same batch again while the first is queued: kept once. */
	ck_assert_int_eq(add("src-a", 7, msgs, 3), LT_EEXIST);
	flush_ok();
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages"), 2);
	/* Resent after commit (its ack was lost): nothing new, acked again. */
	ck_assert_int_eq(add("src-a", 7, msgs, 3), LT_OK);
	flush_ok();
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages"), 2);
	ck_assert_int_eq(fx.nacks, 2);
	struct lt_persister_stats st;
	lt_persister_stats(fx.p, &st);
	ck_assert_uint_eq(st.rows_new, 2);
	ck_assert_uint_eq(st.rows_dup, 4);
	ck_assert_uint_eq(st.pending_rows, 0);
	ck_assert_int_eq(q_long("SELECT messages FROM user_statistics WHERE user_id = 'u2'"), 1);
}
END_TEST

START_TEST(test_derived_only_from_new_rows)
{
	struct lt_msg msgs[6] = {
	    mk(LT_MSG_CHAT, "r2", "c1", "u1", "alice", "签到", T0),
	    mk(LT_MSG_CHAT, "r2", "c2", "u1", "alice2", "hello", T0 + 1000),
	    mk(LT_MSG_GIFT, "r2", "g1", "u1", "alice2", "gift", T0 + 2000),
	    mk(LT_MSG_LIKE, "r2", "l1", "u2", "bob", "", T0 + 3000),
	    mk(LT_MSG_CHAT, "r2", "c3", "", "", "anonymous", T0 + 4000),
	    mk(LT_MSG_SUPERCHAT, "r2", "s1", "u2", "bob", "sc", T0 + 5000),
	};
	msgs[2].count = 3;
	msgs[2].value = 300;
	msgs[2].extra = LT_STR("{\"gift_name\":\"小花\",\"count\":3,\"value\":300,\"currency\":\"silver\"}");
	msgs[3].count = 10;
	msgs[4].flags = LT_MSGF_ANONYMOUS;
	msgs[5].value = 3000;
	ck_assert_int_eq(add("src-d", 1, msgs, 6), LT_OK);
	flush_ok();
	const char *check_u1 = "SELECT messages * 1000000 + gifts * 10000 + gift_value FROM user_statistics "
			       "WHERE platform = 'bilibili' AND room_id = 'r2' AND user_id = 'u1'";
	ck_assert_int_eq(q_long(check_u1), 2 * 1000000 + 3 * 10000 + 300);
	ck_assert_int_eq(q_long("SELECT likes FROM user_statistics WHERE user_id = 'u2'"), 10);
	ck_assert_int_eq(q_long("SELECT messages FROM user_statistics WHERE user_id = 'u2'"), 1);
	ck_assert_int_eq(q_long("SELECT gift_value FROM user_statistics WHERE user_id = 'u2'"), 3000);
	ck_assert_int_eq(q_long("SELECT count(*) FROM user_statistics"), 2); /* not the anonymous one */
	char *name = q_str1("SELECT user_name FROM user_statistics WHERE user_id = $1", "u1");
	ck_assert_str_eq(name, "alice2");
	free(name);
	ck_assert_int_eq(
	    q_long("SELECT count(*) FROM gift_records WHERE gift_name = '小花' AND count = 3 AND "
		   "value = 300 AND currency = 'silver'"),
	    1);
	ck_assert_int_eq(q_long("SELECT count(*) FROM checkins WHERE user_id = 'u1' AND streak = 1"), 1);

	/* The same messages again, from another source, mixed with one new
	 * chat: only the new chat counts. */
	struct lt_msg again[7];
	memcpy(again, msgs, sizeof msgs);
	again[6] = mk(LT_MSG_CHAT, "r2", "c4", "u1", "alice3", "new one", T0 + 6000);
	ck_assert_int_eq(add("src-other", 99, again, 7), LT_OK);
	flush_ok();
	ck_assert_int_eq(q_long(check_u1), 3 * 1000000 + 3 * 10000 + 300);
	ck_assert_int_eq(q_long("SELECT likes FROM user_statistics WHERE user_id = 'u2'"), 10);
	ck_assert_int_eq(q_long("SELECT count(*) FROM gift_records"), 1);
	ck_assert_int_eq(q_long("SELECT count(*) FROM checkins"), 1);
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages"), 7);

	/* A check-in the next day continues the streak; twice the same day
	 * is one. */
	struct lt_msg next[2] = {
	    mk(LT_MSG_CHAT, "r2", "c5", "u1", "alice3", "今天也签到", T0 + DAY),
	    mk(LT_MSG_CHAT, "r2", "c6", "u1", "alice3", "签到签到", T0 + DAY + 60000),
	};
	ck_assert_int_eq(add("src-d", 2, next, 2), LT_OK);
	flush_ok();
	ck_assert_int_eq(q_long("SELECT max(streak) FROM checkins WHERE user_id = 'u1'"), 2);
	ck_assert_int_eq(q_long("SELECT count(*) FROM checkins WHERE user_id = 'u1'"), 2);
}
END_TEST

START_TEST(test_sessions)
{
	struct lt_msg before = mk(LT_MSG_CHAT, "r3", "b0", "u1", "a", "before", T0 - 1000);
	ck_assert_int_eq(add("src-s", 1, &before, 1), LT_OK);
	flush_ok();
	struct lt_msg msgs[5] = {
	    mk(LT_MSG_LIVE_START, "r3", "start1", "", "", "live", T0),
	    mk(LT_MSG_CHAT, "r3", "x1", "u1", "a", "hi", T0 + 1000),
	    mk(LT_MSG_GIFT, "r3", "x2", "u2", "b", "gift", T0 + 2000),
	    mk(LT_MSG_LIKE, "r3", "x3", "u2", "b", "", T0 + 3000),
	    mk(LT_MSG_CHAT, "r3", "x4", "u1", "a", "again", T0 + 4000),
	};
	msgs[2].count = 2;
	msgs[2].value = 200;
	msgs[3].count = 5;
	ck_assert_int_eq(add("src-s", 2, msgs, 5), LT_OK);
	flush_ok();
	ck_assert_int_eq(
	    q_long("SELECT count(*) FROM live_sessions WHERE room_id = 'r3' AND ended_at IS NULL"), 1);
	long sid = q_long("SELECT id FROM live_sessions WHERE room_id = 'r3'");
	ck_assert_int_eq(
	    q_long("SELECT count(*) FROM live_messages WHERE room_id = 'r3' AND session_id IS NULL"), 1);
	char sql[200];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM live_messages WHERE session_id = %ld", sid);
	ck_assert_int_eq(q_long(sql), 5);
	const char *ctr = "SELECT messages * 1000000000 + gifts * 1000000 + gift_value * 1000 + likes "
			  "FROM live_sessions WHERE room_id = 'r3'";
	ck_assert_int_eq(q_long(ctr), 2 * 1000000000L + 2 * 1000000 + 200 * 1000 + 5);

	struct lt_msg end[2] = {
	    mk(LT_MSG_LIVE_END, "r3", "end1", "", "", "bye", T0 + 10000),
	    mk(LT_MSG_CHAT, "r3", "after", "u1", "a", "after end", T0 + 20000),
	};
	ck_assert_int_eq(add("src-s", 3, end, 2), LT_OK);
	flush_ok();
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_sessions WHERE room_id = 'r3' AND ended_at = "
				"timestamptz 'epoch' + 1773144010000 * interval '1 millisecond'"),
			 1);
	ck_assert_int_eq(
	    q_long("SELECT count(*) FROM live_messages WHERE msg_id = 'after' AND session_id IS NULL"), 1);
	/* Replaying everything changes no session and no counter. */
	ck_assert_int_eq(add("src-replay", 2, msgs, 5), LT_OK);
	ck_assert_int_eq(add("src-replay", 3, end, 2), LT_OK);
	flush_ok();
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_sessions"), 1);
	ck_assert_int_eq(q_long(ctr), 2 * 1000000000L + 2 * 1000000 + 200 * 1000 + 5);
	/* A new start opens a second session. */
	struct lt_msg start2 = mk(LT_MSG_LIVE_START, "r3", "start2", "", "", "live again", T0 + 60000);
	struct lt_msg chat2 = mk(LT_MSG_CHAT, "r3", "y1", "u1", "a", "second", T0 + 61000);
	struct lt_msg two[2] = {start2, chat2};
	ck_assert_int_eq(add("src-s", 4, two, 2), LT_OK);
	flush_ok();
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_sessions WHERE ended_at IS NULL"), 1);
	ck_assert_int_eq(
	    q_long("SELECT s.messages FROM live_sessions s JOIN live_messages m ON m.session_id = s.id "
		   "WHERE m.msg_id = 'y1'"),
	    1);
}
END_TEST

/* Row by row, the session a message belongs to: the latest of its room that
 * started at or before it and had not ended before it. The persister looks
 * per room of a batch first; this is what it must agree with. */
static const char row_by_row_session[] =
    "SELECT count(*) FROM live_messages m WHERE m.session_id IS DISTINCT FROM"
    " (SELECT ls.id FROM live_sessions ls WHERE ls.platform = m.platform AND ls.room_id = m.room_id"
    "    AND ls.started_at <= m.ts AND (ls.ended_at IS NULL OR ls.ended_at >= m.ts)"
    "  ORDER BY ls.started_at DESC LIMIT 1)";

START_TEST(test_session_per_room_as_row_by_row)
{
	struct lt_error e;
	ck_assert_int_eq(lt_persister_partitions(fx.p, NULL, &e), LT_OK); /* connects, migrates */
	/* Sessions already stored, in every shape the per-room lookup tells
	 * apart (times in seconds after T0; the batch spans 0..9 s):
	 *   sa: none; sb: one open since before, covering everything;
	 *   sc: one ended at 2 s, the next started at 5 s, still open;
	 *   sd: one ended at 3 s; se: one started at 3 s;
	 *   sf: two open ones covering everything (the later one wins);
	 *   sg: one ended before the batch, one starting after it;
	 *   sh: one covering the batch exactly (started at 0 s, ended at 9 s). */
	q_ok("CREATE TEMP TABLE ss (room text, st bigint, en bigint)");
	q_ok("INSERT INTO ss VALUES ('sb', -3600, NULL), ('sc', -3600, 2), ('sc', 5, NULL), ('sd', -3600, 3),"
	     " ('se', 3, NULL), ('sf', -7200, NULL), ('sf', -3600, NULL), ('sg', -7200, -3600),"
	     " ('sg', 3600, NULL), ('sh', 0, 9)");
	q_ok("INSERT INTO live_sessions (platform, room_id, started_at, ended_at)"
	     " SELECT 'bilibili', room, timestamptz 'epoch' + (1773144000 + st) * interval '1 second',"
	     "        timestamptz 'epoch' + (1773144000 + en) * interval '1 second' FROM ss");
	static const char *const rooms[] = {"sa", "sb", "sc", "sd", "se", "sf", "sg", "sh"};
	static char ids[80][16];
	struct lt_msg m[80];
	int n = 0;
	for (int r = 0; r < 8; r++)
		for (int i = 0; i < 10; i++, n++) {
			snprintf(ids[n], sizeof ids[0], "%s-%d", rooms[r], i);
			m[n] = mk(LT_MSG_CHAT, rooms[r], ids[n], "u1", "a", "x", T0 + i * 1000);
		}
	/* one batch; then one more message per room, in a write whose span
	 * is a single instant */
	ck_assert_int_eq(add("src-sr", 1, m, n), LT_OK);
	flush_ok();
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages"), 80);
	ck_assert_int_eq(q_long(row_by_row_session), 0);
	/* not vacuous: rows with and without sessions, and several sessions */
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages WHERE session_id IS NULL"),
			 10 + 2 + 6 + 3 + 10);
	ck_assert_int_eq(q_long("SELECT count(DISTINCT session_id) FROM live_messages"), 7);
	struct lt_msg one[8];
	static char ids1[8][16];
	for (int r = 0; r < 8; r++) {
		snprintf(ids1[r], sizeof ids1[0], "%s-x", rooms[r]);
		one[r] = mk(LT_MSG_CHAT, rooms[r], ids1[r], "u1", "a", "x", T0 + 4000);
	}
	ck_assert_int_eq(add("src-sr", 2, one, 8), LT_OK);
	flush_ok();
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages"), 88);
	ck_assert_int_eq(q_long(row_by_row_session), 0);
	/* the sessions' counters follow their messages */
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_sessions s WHERE s.messages <>"
				" (SELECT count(*) FROM live_messages m WHERE m.session_id = s.id)"),
			 0);
}
END_TEST

START_TEST(test_same_message_in_two_batches_of_one_write)
{
	/* Two sources deliver the same message, in batches written together:
	 * stored once (the first, as ON CONFLICT DO NOTHING would keep it) and
	 * counted once. */
	struct lt_msg a[2] = {
	    mk(LT_MSG_CHAT, "r20", "d1", "u1", "alice", "first", T0),
	    mk(LT_MSG_GIFT, "r20", "d2", "u1", "alice", "gift", T0 + 1),
	};
	a[1].count = 2;
	a[1].value = 200;
	struct lt_msg b[3] = {
	    mk(LT_MSG_CHAT, "r20", "d3", "u2", "bob", "new", T0 + 2),
	    mk(LT_MSG_CHAT, "r20", "d1", "u1", "alice", "second", T0),
	    mk(LT_MSG_GIFT, "r20", "d2", "u1", "alice", "gift", T0 + 1),
	};
	b[2].count = 2;
	b[2].value = 200;
	ck_assert_int_eq(add("src-x", 1, a, 2), LT_OK);
	ck_assert_int_eq(add("src-y", 1, b, 3), LT_OK);
	flush_ok();
	ck_assert_int_eq(fx.nacks, 2);
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages"), 3);
	char *c = q_str1("SELECT content FROM live_messages WHERE msg_id = $1", "d1");
	ck_assert_str_eq(c, "first");
	free(c);
	struct lt_persister_stats st;
	lt_persister_stats(fx.p, &st);
	ck_assert_uint_eq(st.rows_new, 3);
	ck_assert_uint_eq(st.rows_dup, 2);
	ck_assert_int_eq(q_long("SELECT messages * 1000 + gifts * 100 + gift_value FROM user_statistics"
				" WHERE user_id = 'u1'"),
			 1 * 1000 + 2 * 100 + 200);
	ck_assert_int_eq(q_long("SELECT count(*) FROM gift_records"), 1);
	ck_assert_int_eq(q_long("SELECT count(*) FROM error_logs"), 0);
	/* the same key with another ts is another message */
	struct lt_msg later = mk(LT_MSG_CHAT, "r20", "d1", "u1", "alice", "later", T0 + 5);
	struct lt_msg later2[2] = {later, later};
	ck_assert_int_eq(add("src-x", 2, later2, 2), LT_OK);
	flush_ok();
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages WHERE msg_id = 'd1'"), 2);
}
END_TEST

/* The messages of the stored-meanwhile tests: one that another writer
 * stores too (k0), and new ones around it. */
static int meanwhile_msgs(struct lt_msg *m)
{
	m[0] = mk(LT_MSG_CHAT, "r21", "k1", "u1", "a", "签到", T0);
	m[1] = mk(LT_MSG_CHAT, "r21", "k0", "u1", "a", "hello", T0 + 1);
	m[2] = mk(LT_MSG_GIFT, "r21", "k2", "u2", "b", "gift", T0 + 2);
	m[2].count = 1;
	m[2].value = 100;
	m[3] = mk(LT_MSG_CHAT, "r21", "k3", "u2", "b", "bye", T0 + 3);
	return 4;
}

static const char insert_k0[] =
    "INSERT INTO live_messages (platform, room_id, ts, msg_id, type, user_id, content)"
    " VALUES ('bilibili', 'r21', timestamptz 'epoch' + 1773144000001 * interval '1 millisecond', 'k0',"
    " 'chat', 'u1', 'hello')";

/* After the write of meanwhile_msgs: k0 was not counted again, the rest
 * was, and nothing was taken for bad data. */
static void meanwhile_check(void)
{
	ck_assert_int_eq(fx.nacks, 1);
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages WHERE room_id = 'r21'"), 4);
	struct lt_persister_stats st;
	lt_persister_stats(fx.p, &st);
	ck_assert_uint_eq(st.rows_new, 3);
	ck_assert_uint_eq(st.rows_dup, 1);
	ck_assert_uint_eq(st.records_bad, 0);
	ck_assert_int_eq(q_long("SELECT messages FROM user_statistics WHERE user_id = 'u1'"), 1);
	ck_assert_int_eq(
	    q_long("SELECT messages * 1000 + gift_value FROM user_statistics WHERE user_id = 'u2'"),
	    1 * 1000 + 100);
	ck_assert_int_eq(q_long("SELECT count(*) FROM gift_records"), 1);
	ck_assert_int_eq(q_long("SELECT count(*) FROM checkins"), 1);
	ck_assert_int_eq(q_long("SELECT count(*) FROM error_logs"), 0);
	/* then new messages only: written as usual */
	struct lt_msg m = mk(LT_MSG_CHAT, "r21", "k4", "u1", "a", "more", T0 + 4);
	ck_assert_int_eq(add("src-k", 2, &m, 1), LT_OK);
	flush_ok();
	ck_assert_int_eq(q_long("SELECT messages FROM user_statistics WHERE user_id = 'u1'"), 2);
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages WHERE room_id = 'r21'"), 5);
}

START_TEST(test_stored_before_counts_once)
{
	/* A message another persister stored before this write: the plain
	 * insert meets it (unique_violation), and the write is done again
	 * with ON CONFLICT DO NOTHING; not refused as bad data. */
	struct lt_error e;
	ck_assert_int_eq(lt_persister_partitions(fx.p, NULL, &e), LT_OK); /* connects, migrates */
	q_ok(insert_k0);
	struct lt_msg m[4];
	int n = meanwhile_msgs(m);
	ck_assert_int_eq(add("src-k", 1, m, n), LT_OK);
	flush_ok();
	meanwhile_check();
}
END_TEST

static void *flush_thread(void *arg)
{
	struct lt_error e = {0};
	*(int *)arg = lt_persister_flush(fx.p, true, on_ack, NULL, &e);
	return NULL;
}

START_TEST(test_stored_meanwhile_counts_once)
{
	/* Another connection inserts the same message and commits while this
	 * write waits for it: PostgreSQL reports unique_violation once the
	 * other commits, and the write is done again, counting it once. */
	struct lt_error e;
	ck_assert_int_eq(lt_persister_partitions(fx.p, NULL, &e), LT_OK);
	PGconn *other = PQconnectdb(lt_test_pg_dsn());
	ck_assert_msg(PQstatus(other) == CONNECTION_OK, "%s", PQerrorMessage(other));
	char sql[200];
	snprintf(sql, sizeof sql, "SET search_path TO %s", fx.schema);
	PQclear(PQexec(other, sql));
	PGresult *r = PQexec(other, "BEGIN");
	PQclear(r);
	r = PQexec(other, insert_k0);
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
	PQclear(r);
	struct lt_msg m[4];
	int n = meanwhile_msgs(m);
	ck_assert_int_eq(add("src-k", 1, m, n), LT_OK);
	int rc = -1;
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, flush_thread, &rc), 0);
	/* until the write waits for the other's row (at most 10 s) */
	long waiting = 0;
	for (int i = 0; i < 1000 && waiting == 0; i++) {
		waiting =
		    q_long("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'");
		if (waiting == 0)
			usleep(10000);
	}
	ck_assert_int_gt(waiting, 0);
	r = PQexec(other, "COMMIT");
	ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	PQfinish(other);
	pthread_join(th, NULL);
	ck_assert_int_eq(rc, LT_OK);
	meanwhile_check();
}
END_TEST

static void retention3(struct lt_persister_opts *o)
{
	o->retention_days = 3;
	o->partitions_ahead = 2;
	static char dir[512];
	char *d = lt_test_tmpdir("persister-archive");
	snprintf(dir, sizeof dir, "%s/archive", d);
	free(d);
	o->archive_dir = dir;
}

/* Read a whole gzip file into a string (malloc'd). */
static char *gunzip_file(const char *path)
{
	gzFile gz = gzopen(path, "rb");
	ck_assert_msg(gz != NULL, "cannot open %s", path);
	struct lt_buf b = LT_BUF_INIT;
	char chunk[4096];
	int n;
	while ((n = gzread(gz, chunk, sizeof chunk)) > 0)
		lt_buf_append(&b, chunk, (size_t)n);
	gzclose(gz);
	lt_buf_putc(&b, '\0');
	size_t len;
	return (char *)lt_buf_steal(&b, &len);
}

START_TEST(test_partitions_and_retention)
{
	setup_with(retention3);
	struct lt_error e = {0};
	int64_t day0 = lt_partition_day(T0);
	/* Five days ago: the partitions of that time and a message. */
	fx.now = T0 - 5 * DAY;
	int created = 0;
	ck_assert_msg(lt_persister_partitions(fx.p, &created, &e) == LT_OK, "%s", e.message);
	ck_assert_int_eq(created, 4); /* yesterday .. today + 2 */
	struct lt_msg old[2] = {
	    mk(LT_MSG_CHAT, "r4", "old1", "u1", "a", "old, with \"quotes\", commas\nand a newline",
	       T0 - 5 * DAY),
	    mk(LT_MSG_CHAT, "r4", "old2", "u1", "a", "old two", T0 - 5 * DAY + 1000),
	};
	ck_assert_int_eq(add("src-r", 1, old, 2), LT_OK);
	flush_ok();
	char name[LT_PARTITION_NAME_MAX];
	lt_partition_name(day0 - 5, name, sizeof name);
	char sql[256];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", name);
	ck_assert_int_eq(q_long(sql), 2);

	/* Now: partitions ahead exist, and a late message from 7 days ago (out
	 * of the window, no partition) lands in the default partition. */
	fx.now = T0;
	ck_assert_int_eq(lt_persister_partitions(fx.p, &created, &e), LT_OK);
	for (int d = -1; d <= 2; d++) {
		lt_partition_name(day0 + d, name, sizeof name);
		snprintf(
		    sql, sizeof sql,
		    "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = '%s'",
		    name);
		ck_assert_msg(q_long(sql) == 1, "%s missing", name);
	}
	struct lt_msg late = mk(LT_MSG_CHAT, "r4", "late", "u1", "a", "late", T0 - 7 * DAY);
	struct lt_msg today = mk(LT_MSG_CHAT, "r4", "today", "u1", "a", "today", T0);
	struct lt_msg both[2] = {late, today};
	ck_assert_int_eq(add("src-r", 2, both, 2), LT_OK);
	flush_ok();
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages_default"), 1);

	int dropped = 0;
	ck_assert_msg(lt_persister_retention(fx.p, &dropped, &e) == LT_OK, "%s", e.message);
	/* days -6, -5 and -4 (made while the clock was at -5) are older than
	 * 3 days; -3 is kept. */
	ck_assert_int_eq(dropped, 3);
	lt_partition_name(day0 - 5, name, sizeof name);
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = '%s'",
		 name);
	ck_assert_int_eq(q_long(sql), 0);
	lt_partition_name(day0 - 3, name, sizeof name);
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = '%s'",
		 name);
	ck_assert_int_eq(q_long(sql), 1);
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages_default"), 0);
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages"), 1);

	/* The archive holds the dropped rows as CSV with a header. */
	lt_partition_name(day0 - 5, name, sizeof name);
	char path[1024];
	snprintf(path, sizeof path, "%s/%s.csv.gz", fx.o.archive_dir, name);
	char *csv = gunzip_file(path);
	ck_assert_msg(strncmp(csv, "platform,room_id,ts,msg_id,type,", 32) == 0, "header: %.60s", csv);
	ck_assert_ptr_nonnull(strstr(csv, ",old1,chat,"));
	ck_assert_ptr_nonnull(strstr(csv, ",old2,chat,"));
	ck_assert_ptr_nonnull(strstr(csv, "\"old, with \"\"quotes\"\", commas\nand a newline\""));
	free(csv);
	lt_partition_date(day0 - 3, sql, sizeof sql);
	snprintf(path, sizeof path, "%s/live_messages_default-before-%s.csv.gz", fx.o.archive_dir, sql);
	csv = gunzip_file(path);
	ck_assert_ptr_nonnull(strstr(csv, ",late,chat,"));
	free(csv);
	/* Retention again: nothing more to do. */
	ck_assert_int_eq(lt_persister_retention(fx.p, &dropped, &e), LT_OK);
	ck_assert_int_eq(dropped, 0);
}
END_TEST

START_TEST(test_default_partition_then_partition)
{
	/* Far in the future (beyond partitions_ahead + 1): the default
	 * partition. */
	int64_t far = T0 + 30 * DAY;
	struct lt_msg m[2] = {
	    mk(LT_MSG_CHAT, "r5", "f1", "u1", "a", "future", far),
	    mk(LT_MSG_CHAT, "r5", "f2", "u1", "a", "future 2", far + 1),
	};
	ck_assert_int_eq(add("src-f", 1, m, 2), LT_OK);
	flush_ok();
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages_default"), 2);
	/* Time passes; the day comes into the window: its partition is created
	 * and the default rows move into it. */
	fx.now = far;
	struct lt_msg m3 = mk(LT_MSG_CHAT, "r5", "f3", "u1", "a", "now in range", far + 2);
	struct lt_msg again[2] = {m[0], m3};
	ck_assert_int_eq(add("src-f", 2, again, 2), LT_OK);
	flush_ok();
	char name[LT_PARTITION_NAME_MAX], sql[128];
	lt_partition_name(lt_partition_day(far), name, sizeof name);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", name);
	ck_assert_int_eq(q_long(sql), 3);
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages_default"), 0);
	ck_assert_int_eq(q_long("SELECT messages FROM user_statistics WHERE room_id = 'r5'"), 3);
}
END_TEST

START_TEST(test_bad_input)
{
	/* Not a batch at all. */
	static const uint8_t junk[] = "this is not a batch, not even close";
	ck_assert_int_eq(lt_persister_add_batch(fx.p, junk, sizeof junk), LT_EPROTO);
	/* An ack where data is expected. */
	struct lt_buf b = LT_BUF_INIT;
	ck_assert_int_eq(lt_wire_ack_encode(&b, LT_WIRE_CONSUMER_PROCESSOR, "src-x", 5), LT_OK);
	ck_assert_int_eq(lt_persister_add_batch(fx.p, b.data, b.len), LT_EPROTO);
	/* A batch with a broken record between two good ones, and a record of
	 * an unknown platform. */
	struct lt_msg good1 = mk(LT_MSG_CHAT, "r6", "g1", "u1", "a", "good one", T0);
	struct lt_msg good2 = mk(LT_MSG_CHAT, "r6", "g2", "u1", "a", "good two", T0 + 1);
	struct lt_msg alien = mk(LT_MSG_CHAT, "r6", "alien", "u1", "a", "??", T0 + 2);
	ck_assert_int_eq(lt_wire_batch_begin(&b, LT_WIRE_KIND_DATA, 0, "src-bad", 3), LT_OK);
	ck_assert_int_eq(lt_wire_batch_add(&b, &good1), LT_OK);
	size_t second = b.len;
	ck_assert_int_eq(lt_wire_batch_add(&b, &good2), LT_OK);
	ck_assert_int_eq(lt_wire_batch_add(&b, &good2), LT_OK);
	size_t fourth = b.len;
	ck_assert_int_eq(lt_wire_batch_add(&b, &alien), LT_OK);
	b.data[second + 4] = 99;     /* the second record's version byte */
	b.data[fourth + 4 + 1] = 77; /* the fourth record's platform */
	ck_assert_int_eq(lt_persister_add_batch(fx.p, b.data, b.len), LT_OK);
	flush_ok();
	ck_assert(acked("src-bad", 3));
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages WHERE room_id = 'r6'"), 2);
	ck_assert_int_eq(q_long("SELECT count(*) FROM error_logs WHERE kind = 'bad_batch'"), 2);
	ck_assert_int_eq(q_long("SELECT count(*) FROM error_logs WHERE kind = 'bad_record' AND "
				"details->>'source_id' = 'src-bad' AND (details->>'seq')::int = 3"),
			 2);
	ck_assert_int_eq(q_long("SELECT count(*) FROM error_logs WHERE kind = 'bad_record' AND "
				"details->>'index' = '1' AND message = 'malformed record'"),
			 1);
	struct lt_persister_stats st;
	lt_persister_stats(fx.p, &st);
	ck_assert_uint_eq(st.batches_bad, 2);
	ck_assert_uint_eq(st.records_bad, 2);
	lt_buf_free(&b);
}
END_TEST

START_TEST(test_postgres_refuses_one_record)
{
	/* cJSON takes this extra, PostgreSQL's jsonb does not (numeric
	 * overflow): the transaction fails as a whole, then batch by batch, then
	 * record by record; only the one record is left out. */
	struct lt_msg a[3] = {
	    mk(LT_MSG_CHAT, "r10", "ok1", "u1", "a", "fine", T0),
	    mk(LT_MSG_GIFT, "r10", "poison", "u1", "a", "gift", T0 + 1),
	    mk(LT_MSG_CHAT, "r10", "ok2", "u1", "a", "fine too", T0 + 2),
	};
	a[1].extra = LT_STR("{\"gift_name\":\"x\",\"value\":1e999999}");
	struct lt_msg b[2] = {
	    mk(LT_MSG_CHAT, "r10", "ok3", "u2", "b", "other batch", T0 + 3),
	    mk(LT_MSG_CHAT, "r10", "ok4", "u2", "b", "签到", T0 + 4),
	};
	ck_assert_int_eq(add("src-p", 1, b, 2), LT_OK);
	ck_assert_int_eq(add("src-p", 2, a, 3), LT_OK);
	flush_ok();
	ck_assert(acked("src-p", 1) && acked("src-p", 2));
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages WHERE room_id = 'r10'"), 4);
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages WHERE msg_id = 'poison'"), 0);
	ck_assert_int_eq(q_long("SELECT messages FROM user_statistics WHERE user_id = 'u1'"), 2);
	ck_assert_int_eq(q_long("SELECT count(*) FROM gift_records"), 0);
	ck_assert_int_eq(q_long("SELECT count(*) FROM checkins WHERE user_id = 'u2'"), 1);
	ck_assert_int_eq(q_long("SELECT count(*) FROM error_logs WHERE kind = 'bad_record' AND "
				"message LIKE 'refused by PostgreSQL%' AND details->>'source_id' = 'src-p'"),
			 1);
	struct lt_persister_stats st;
	lt_persister_stats(fx.p, &st);
	ck_assert_uint_eq(st.records_bad, 1);
	ck_assert_uint_eq(st.rows_new, 4);
}
END_TEST

START_TEST(test_database_error_keeps_and_waits)
{
	/* An error PostgreSQL reports (here: a table an operator dropped) keeps
	 * the batches unacked and backs off instead of hammering the server. */
	struct lt_error e;
	ck_assert_int_eq(lt_persister_partitions(fx.p, NULL, &e), LT_OK); /* connects, migrates */
	q_ok("DROP TABLE gift_records");
	struct lt_msg m = mk(LT_MSG_CHAT, "r12", "e1", "u1", "a", "x", T0);
	ck_assert_int_eq(add("src-e", 1, &m, 1), LT_OK);
	ck_assert_int_eq(lt_persister_flush(fx.p, true, on_ack, NULL, &e), LT_EDB);
	ck_assert_ptr_nonnull(strstr(e.message, "gift_records"));
	ck_assert_int_eq(lt_persister_flush(fx.p, true, on_ack, NULL, &e), LT_EAGAIN);
	fx.now += 300;
	ck_assert_int_eq(lt_persister_flush(fx.p, true, on_ack, NULL, &e), LT_EDB);
	ck_assert_int_eq(lt_persister_flush(fx.p, true, on_ack, NULL, &e), LT_EAGAIN);
	fx.now += 300; /* the wait doubled to 500 ms */
	ck_assert_int_eq(lt_persister_flush(fx.p, true, on_ack, NULL, &e), LT_EAGAIN);
	ck_assert_int_eq(fx.nacks, 0);
	struct lt_persister_stats st;
	lt_persister_stats(fx.p, &st);
	ck_assert_uint_eq(st.pending_rows, 1);
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages"), 0);
}
END_TEST

START_TEST(test_prepared_insert_follows_table_changes)
{
	/* The statement that inserts and derives is prepared once per
	 * connection: tables it writes changing between two flushes (here a
	 * column an operator added) make PostgreSQL replan it, and the next
	 * flush counts as before. (A new connection prepares it again: see the
	 * restart test.) */
	struct lt_msg a = mk(LT_MSG_GIFT, "r13", "p1", "u1", "a", "gift", T0);
	a.count = 2;
	a.value = 200;
	ck_assert_int_eq(add("src-p", 1, &a, 1), LT_OK);
	flush_ok();
	q_ok("ALTER TABLE gift_records ADD COLUMN note text");
	q_ok("ALTER TABLE user_statistics ADD COLUMN note text");
	struct lt_msg b = mk(LT_MSG_GIFT, "r13", "p2", "u1", "a", "gift", T0 + 1);
	b.count = 3;
	b.value = 300;
	ck_assert_int_eq(add("src-p", 2, &b, 1), LT_OK);
	flush_ok();
	ck_assert_int_eq(fx.nacks, 2);
	ck_assert_int_eq(q_long("SELECT count(*) FROM gift_records WHERE room_id = 'r13'"), 2);
	ck_assert_int_eq(
	    q_long("SELECT gifts * 10000 + gift_value FROM user_statistics WHERE room_id = 'r13'"),
	    5 * 10000 + 500);
}
END_TEST

static void small_batches(struct lt_persister_opts *o)
{
	o->batch_rows = 10;
	o->batch_ms = 200;
}

START_TEST(test_batching_by_rows_and_age)
{
	setup_with(small_batches);
	struct lt_msg m[4];
	char ids[12][8];
	for (int k = 0; k < 3; k++) {
		for (int i = 0; i < 4; i++) {
			snprintf(ids[k * 4 + i], sizeof ids[0], "b%d", k * 4 + i);
			m[i] = mk(LT_MSG_CHAT, "r7", ids[k * 4 + i], "u1", "a", "x", T0 + k * 4 + i);
		}
		ck_assert_int_eq(add("src-b", (uint64_t)k + 1, m, 4), LT_OK);
		fx.now += 10;
	}
	ck_assert_int_eq(lt_persister_next_due_ms(fx.p), 0); /* 12 rows >= 10 */
	struct lt_error e;
	ck_assert_int_eq(lt_persister_flush(fx.p, false, on_ack, NULL, &e), LT_OK);
	/* 8 rows (two batches) went; 4 wait for their age. */
	ck_assert_int_eq(fx.nacks, 2);
	ck_assert(acked("src-b", 1) && acked("src-b", 2) && !acked("src-b", 3));
	ck_assert_int_eq(lt_persister_next_due_ms(fx.p), 200 - 10);
	fx.now += 100;
	ck_assert_int_eq(lt_persister_flush(fx.p, false, on_ack, NULL, &e), LT_OK);
	ck_assert_int_eq(fx.nacks, 2);
	fx.now += 100;
	ck_assert_int_eq(lt_persister_next_due_ms(fx.p), 0);
	ck_assert_int_eq(lt_persister_flush(fx.p, false, on_ack, NULL, &e), LT_OK);
	ck_assert_int_eq(fx.nacks, 3);
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages"), 12);
}
END_TEST

static void two_writers(struct lt_persister_opts *o)
{
	o->batch_rows = 50;
	o->writers = 2;
}

START_TEST(test_parallel_writers)
{
	setup_with(two_writers);
	static char ids[200][16];
	struct lt_msg m[20];
	for (int k = 0; k < 10; k++) {
		for (int i = 0; i < 20; i++) {
			snprintf(ids[k * 20 + i], sizeof ids[0], "pw%d", k * 20 + i);
			m[i] = mk(i % 5 == 0 ? LT_MSG_GIFT : LT_MSG_CHAT, "r11", ids[k * 20 + i],
				  i % 2 ? "u1" : "u2", "a", "签到 parallel", T0 + k * 20 + i);
			m[i].count = 1;
			m[i].value = 10;
		}
		ck_assert_int_eq(add("src-w", (uint64_t)k + 1, m, 20), LT_OK);
	}
	flush_ok();
	struct lt_persister_stats st;
	lt_persister_stats(fx.p, &st);
	ck_assert_uint_gt(st.parallel_commits, 0);
	ck_assert_uint_eq(st.pending_rows, 0);
	ck_assert_int_eq(fx.nacks, 10);
	for (uint64_t s = 1; s <= 10; s++)
		ck_assert(acked("src-w", s));
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages WHERE room_id = 'r11'"), 200);
	ck_assert_int_eq(q_long("SELECT sum(messages) FROM user_statistics WHERE room_id = 'r11'"), 160);
	ck_assert_int_eq(q_long("SELECT sum(gift_value) FROM user_statistics WHERE room_id = 'r11'"), 400);
	ck_assert_int_eq(q_long("SELECT count(*) FROM gift_records"), 40);
	ck_assert_int_eq(q_long("SELECT count(*) FROM checkins"), 2);
	/* Everything again: nothing changes. */
	for (int k = 0; k < 10; k++) {
		for (int i = 0; i < 20; i++) {
			m[i] = mk(i % 5 == 0 ? LT_MSG_GIFT : LT_MSG_CHAT, "r11", ids[k * 20 + i],
				  i % 2 ? "u1" : "u2", "a", "签到 parallel", T0 + k * 20 + i);
			m[i].count = 1;
			m[i].value = 10;
		}
		ck_assert_int_eq(add("src-w2", (uint64_t)k + 1, m, 20), LT_OK);
	}
	flush_ok();
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages WHERE room_id = 'r11'"), 200);
	ck_assert_int_eq(q_long("SELECT sum(messages) FROM user_statistics WHERE room_id = 'r11'"), 160);
	ck_assert_int_eq(fx.nacks, 20);
}
END_TEST

static void tiny_cap(struct lt_persister_opts *o)
{
	o->max_pending_bytes = 65536;
}

START_TEST(test_memory_cap_refuses)
{
	setup_with(tiny_cap);
	static char big[4000];
	memset(big, 'x', sizeof big - 1);
	struct lt_msg m[8];
	char ids[8][8];
	for (int i = 0; i < 8; i++) {
		snprintf(ids[i], sizeof ids[i], "cap%d", i);
		m[i] = mk(LT_MSG_CHAT, "r8", ids[i], "u1", "a", big, T0 + i);
	}
	int accepted = 0, refused = 0;
	for (uint64_t s = 1; s <= 6; s++) {
		int rc = add("src-cap", s, m, 8);
		ck_assert(rc == LT_OK || rc == LT_EAGAIN);
		accepted += rc == LT_OK;
		refused += rc == LT_EAGAIN;
	}
	ck_assert_int_gt(refused, 0);
	ck_assert_int_gt(accepted, 0);
	struct lt_persister_stats st;
	lt_persister_stats(fx.p, &st);
	ck_assert_uint_le(st.pending_bytes, 65536);
	flush_ok();
	ck_assert_int_eq(fx.nacks, accepted);
	ck_assert_int_eq(add("src-cap", 99, m, 8), LT_OK); /* room again */
}
END_TEST

static void real_clock(struct lt_persister_opts *o)
{
	o->clock = NULL;
}

static void servers(const char *cmd)
{
	const char *dir = getenv("LT_SERVERS_DIR");
	ck_assert_msg(dir && *dir, "LT_SERVERS_DIR is not set (tests/run sets it)");
	char line[2048];
	snprintf(line, sizeof line, "'%s/tests/support/servers.sh' %s '%s' >/dev/null 2>&1", lt_test_srcdir(),
		 cmd, dir);
	ck_assert_msg(system(line) == 0, "servers.sh %s failed", cmd);
}

struct restarter {
	pthread_t th;
	atomic_int done;
};

static void *restart_pg(void *arg)
{
	struct restarter *r = arg;
	servers("restart-pg");
	atomic_store(&r->done, 1);
	return NULL;
}

START_TEST(test_postgres_restart_loses_nothing)
{
	setup_with(real_clock);
	int64_t t = lt_clock_wall_ms();
	/* Batches keep coming and flushing while PostgreSQL is stopped and
	 * started again (fast shutdown: connections are cut). */
	enum { PER = 20, MAXB = 400 };
	static char ids[MAXB * PER][16];
	struct lt_msg m[PER];
	uint64_t seq = 0;
	int failures = 0;
	struct restarter r;
	atomic_init(&r.done, 0);
	for (int k = 0; k < 5; k++) {
		for (int i = 0; i < PER; i++) {
			snprintf(ids[seq * PER + i], sizeof ids[0], "pr%" PRIu64, seq * PER + i);
			m[i] = mk(LT_MSG_CHAT, "r9", ids[seq * PER + i], "u1", "a", "before",
				  t + (int64_t)(seq * PER) + i);
		}
		ck_assert_int_eq(add("src-pg", ++seq, m, PER), LT_OK);
		flush_ok();
	}
	ck_assert_int_eq(pthread_create(&r.th, NULL, restart_pg, &r), 0);
	int after = 0; /* batches sent once the restart finished */
	while (after < 20 && seq < MAXB) {
		int was_done = atomic_load(&r.done);
		for (int i = 0; i < PER; i++) {
			snprintf(ids[seq * PER + i], sizeof ids[0], "pr%" PRIu64, seq * PER + i);
			m[i] = mk(LT_MSG_CHAT, "r9", ids[seq * PER + i], "u1", "a", "around",
				  t + (int64_t)(seq * PER) + i);
		}
		int rc = add("src-pg", ++seq, m, PER);
		ck_assert_int_eq(rc, LT_OK);
		struct lt_error e;
		rc = lt_persister_flush(fx.p, true, on_ack, NULL, &e);
		failures += rc != LT_OK;
		after += was_done;
		usleep(20 * 1000);
	}
	pthread_join(r.th, NULL);
	ck_assert_msg(failures > 0, "the restart never hit a flush");
	/* Reconnects with backoff (at most 5 s between tries). */
	int rc = LT_EAGAIN;
	for (int tries = 0; tries < 300 && rc != LT_OK; tries++) {
		struct lt_error e;
		rc = lt_persister_flush(fx.p, true, on_ack, NULL, &e);
		if (rc != LT_OK)
			usleep(50 * 1000);
	}
	ck_assert_int_eq(rc, LT_OK);
	ck_assert_int_eq(fx.nacks, (int)seq);
	for (uint64_t s = 1; s <= seq; s++)
		ck_assert(acked("src-pg", s));
	/* The test's own connection died with the server. */
	PQfinish(fx.c);
	fx.c = PQconnectdb(lt_test_pg_dsn());
	ck_assert(PQstatus(fx.c) == CONNECTION_OK);
	char sql[160];
	snprintf(sql, sizeof sql, "SET search_path TO %s", fx.schema);
	q_ok(sql);
	long want = (long)seq * PER;
	ck_assert_int_eq(q_long("SELECT count(*) FROM live_messages WHERE room_id = 'r9'"), want);
	ck_assert_int_eq(q_long("SELECT count(DISTINCT msg_id) FROM live_messages WHERE room_id = 'r9'"),
			 want);
	ck_assert_int_eq(q_long("SELECT messages FROM user_statistics WHERE room_id = 'r9'"), want);
	struct lt_persister_stats st;
	lt_persister_stats(fx.p, &st);
	ck_assert_uint_ge(st.reconnects, 1);
	ck_assert_uint_eq(st.pending_rows, 0);
}
END_TEST

static void with_redis(struct lt_persister_opts *o)
{
	o->redis_url = lt_test_redis_url();
	o->hotwords_top = 3;
}

START_TEST(test_hotword_snapshot)
{
	setup_with(with_redis);
	char room[64];
	snprintf(room, sizeof room, "hw%d", (int)getpid());
	redisContext *r = NULL;
	struct lt_error e = {0};
	ck_assert_msg(lt_redis_connect(lt_test_redis_url(), 2000, &r, &e) == LT_OK, "%s", e.message);
	freeReplyObject(redisCommand(
	    r, "DEL live:{bilibili:%s}:hotwords:1m live:{bilibili:%s}:hotwords:trend:1m", room, room));
	freeReplyObject(redisCommand(r, "ZADD live:{bilibili:%s}:hotwords:1m 5 %s 9 %s 1 %s 7 %s", room,
				     "666", "破防", "awsl", "yyds"));
	freeReplyObject(redisCommand(r, "ZADD live:{bilibili:%s}:hotwords:trend:1m 2.5 %s", room, "破防"));
	struct lt_msg m = mk(LT_MSG_CHAT, room, "hw1", "u1", "a", "破防了", T0);
	ck_assert_int_eq(add("src-hw", 1, &m, 1), LT_OK);
	flush_ok();
	int rows = 0;
	ck_assert_msg(lt_persister_snapshot_hotwords(fx.p, &rows, &e) == LT_OK, "%s", e.message);
	ck_assert_int_eq(rows, 3); /* top 3 of 1m; 5m and 30m are empty */
	ck_assert_int_eq(q_long("SELECT count(*) FROM hotword_statistics WHERE \"window\" = '1m'"), 3);
	char *w = q_str1("SELECT word FROM hotword_statistics WHERE rank = 1 AND \"window\" = $1", "1m");
	ck_assert_str_eq(w, "破防");
	free(w);
	ck_assert_int_eq(q_long("SELECT count FROM hotword_statistics WHERE word = 'yyds'"), 7);
	ck_assert_int_eq(q_long("SELECT (score * 10)::int FROM hotword_statistics WHERE word = '破防'"), 25);
	ck_assert_int_eq(q_long("SELECT count(*) FROM hotword_statistics WHERE word = 'awsl'"), 0);
	ck_assert_int_eq(q_long("SELECT count(*) FROM hotword_statistics WHERE bucket_start = "
				"timestamptz 'epoch' + 1773144000000 * interval '1 millisecond'"),
			 3);
	/* The same minute again overwrites, not duplicates. */
	ck_assert_int_eq(lt_persister_snapshot_hotwords(fx.p, &rows, &e), LT_OK);
	ck_assert_int_eq(q_long("SELECT count(*) FROM hotword_statistics"), 3);
	freeReplyObject(redisCommand(
	    r, "DEL live:{bilibili:%s}:hotwords:1m live:{bilibili:%s}:hotwords:trend:1m", room, room));
	redisFree(r);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("persister");
	TCase *tc = tcase_create("pg");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_copy_hostile_content);
	tcase_add_test(tc, test_dedup_same_batch_twice);
	tcase_add_test(tc, test_derived_only_from_new_rows);
	tcase_add_test(tc, test_sessions);
	tcase_add_test(tc, test_session_per_room_as_row_by_row);
	tcase_add_test(tc, test_same_message_in_two_batches_of_one_write);
	tcase_add_test(tc, test_stored_before_counts_once);
	tcase_add_test(tc, test_stored_meanwhile_counts_once);
	tcase_add_test(tc, test_default_partition_then_partition);
	tcase_add_test(tc, test_bad_input);
	tcase_add_test(tc, test_postgres_refuses_one_record);
	tcase_add_test(tc, test_database_error_keeps_and_waits);
	tcase_add_test(tc, test_prepared_insert_follows_table_changes);
	suite_add_tcase(s, tc);
	/* Tests that make their own persister. */
	TCase *own = tcase_create("custom");
	tcase_set_timeout(own, 120);
	tcase_add_checked_fixture(own, NULL, teardown);
	tcase_add_test(own, test_partitions_and_retention);
	tcase_add_test(own, test_batching_by_rows_and_age);
	tcase_add_test(own, test_memory_cap_refuses);
	tcase_add_test(own, test_parallel_writers);
	tcase_add_test(own, test_hotword_snapshot);
	tcase_add_test(own, test_postgres_restart_loses_nothing);
	suite_add_tcase(s, own);
	return s;
}

int main(void)
{
	lt_test_pg_dsn();
	return lt_test_run_suite(suite());
}
