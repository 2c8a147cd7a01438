/* SPDX-License-Identifier: MIT */
/*
 * pg_sink: one PostgreSQL connection with backoff, the COPY staging path and
 * the transaction that derives the statistics from new rows only (see
 * pg_sink.h).
 */
#include "persister/pg_sink.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/json.h"
#include "persister/migrate.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

struct lt_pgsink {
	char *dsn;
	char *search_path; /* set after connecting; NULL = the DSN's or server's */
	const struct lt_clock *clock;
	PGconn *conn;
	int64_t next_try_mono;
	int backoff_ms;
	uint32_t rng;
	struct lt_buf copy;
	struct lt_buf scratch;
	struct lt_buf one; /* a single row, in isolation mode */
	bool prepared;	   /* insert_sql and fast_sql are prepared on conn */
	/* The last write met rows already stored: write with insert_sql until
	 * a write finds none (replays come in runs; each fast_sql attempt on
	 * one would fail and be written again). */
	bool replaying;
	/* Open addressing table of the rows of one write, by key, to leave out
	 * a message that comes twice (see dedup_row). */
	struct dedup_slot *slots;
	size_t nslots; /* a power of two, or 0 */
	struct lt_pgsink_stats stats;
};

struct dedup_slot {
	size_t off; /* the row's offset in copy + 1; 0 = empty */
	uint64_t hash;
};

static const char stage_sql[] =
    "CREATE TEMP TABLE IF NOT EXISTS lt_stage ("
    " platform text COLLATE \"C\", room_id text COLLATE \"C\", ts_ms bigint, msg_id text COLLATE \"C\","
    " type text COLLATE \"C\", user_id text COLLATE \"C\", user_name text, content text, extra jsonb,"
    " count bigint, value bigint, source_id text COLLATE \"C\", seq bigint, flags integer"
    ") ON COMMIT DELETE ROWS";

static const char copy_sql[] = "COPY lt_stage FROM STDIN";

/* live_start opens a session (idempotent by its start time), live_end closes
 * the open one it follows. */
static const char sessions_sql[] =
    "WITH st AS (SELECT platform, room_id, timestamptz 'epoch' + ts_ms * interval '1 millisecond' AS ts,"
    "                   msg_id, type FROM lt_stage WHERE type IN ('live_start', 'live_end')),"
    " opened AS ("
    "  INSERT INTO live_sessions (platform, room_id, started_at, start_msg_id)"
    "  SELECT DISTINCT ON (platform, room_id, ts) platform, room_id, ts, msg_id FROM st"
    "  WHERE type = 'live_start' ORDER BY platform, room_id, ts, msg_id"
    "  ON CONFLICT (platform, room_id, started_at) DO NOTHING RETURNING 1)"
    " SELECT count(*) FROM opened";

static const char close_sql[] =
    "UPDATE live_sessions ls SET ended_at = e.ts, end_msg_id = e.msg_id"
    " FROM (SELECT DISTINCT ON (platform, room_id) platform, room_id,"
    "              timestamptz 'epoch' + ts_ms * interval '1 millisecond' AS ts, msg_id"
    "       FROM lt_stage WHERE type = 'live_end' ORDER BY platform, room_id, ts_ms DESC) e"
    " WHERE ls.platform = e.platform AND ls.room_id = e.room_id"
    "   AND ls.ended_at IS NULL AND ls.started_at <= e.ts";

/* The heart: insert what is new and derive everything from RETURNING. The
 * derived writes are ordered by key so that two persisters lock rows in the
 * same order; the message insert is not (sorting 5000 rows costs more than
 * the rare deadlock of two persisters given the same messages at once, which
 * the caller retries).
 *
 * A message's session is the latest one of its room that started at or before
 * it and had not ended before it. Looked up row by row (an index scan per
 * row), a message outside every session (a room between broadcasts) walks all
 * the room's earlier sessions: with 300 of them, a batch of 5000 took 1.5 s
 * instead of 0.3 s. rs looks once per room of the batch at the sessions
 * overlapping the batch's time span in that room: none means no row of the
 * room has a session (0 below, made NULL by nullif), a single one that covers
 * the whole span is every row's session, and only in any other case (a session
 * starts or ends inside the span) is the row by row lookup done, for that
 * room's rows. Session ids are bigserial, never 0. MATERIALIZED: inlined, the
 * planner would run the per-room lookup per row. */
#define INSERT_HEAD                                                                                          \
	"WITH s AS ("                                                                                        \
	"  SELECT platform, room_id, timestamptz 'epoch' + ts_ms * interval '1 millisecond' AS ts,"          \
	"         msg_id, type, user_id, user_name, content, extra, count, value, source_id, seq, flags"     \
	"  FROM lt_stage),"                                                                                  \
	" r AS ("                                                                                            \
	"  SELECT platform, room_id,"                                                                        \
	"         timestamptz 'epoch' + min(ts_ms) * interval '1 millisecond' AS lo,"                        \
	"         timestamptz 'epoch' + max(ts_ms) * interval '1 millisecond' AS hi"                         \
	"  FROM lt_stage GROUP BY platform, room_id),"                                                       \
	" rs AS MATERIALIZED ("                                                                              \
	"  SELECT r.platform, r.room_id,"                                                                    \
	"         CASE WHEN c.n = 0 THEN 0 WHEN c.n = 1 AND c.covers THEN c.id END AS fast"                  \
	"  FROM r CROSS JOIN LATERAL ("                                                                      \
	"   SELECT count(*) AS n, max(ls.id) AS id,"                                                         \
	"          bool_and(ls.started_at <= r.lo AND (ls.ended_at IS NULL OR ls.ended_at >= r.hi))"         \
	"            AS covers"                                                                              \
	"   FROM live_sessions ls WHERE ls.platform = r.platform AND ls.room_id = r.room_id"                 \
	"     AND ls.started_at <= r.hi AND (ls.ended_at IS NULL OR ls.ended_at >= r.lo)) c),"               \
	" ins AS ("                                                                                          \
	"  INSERT INTO live_messages (platform, room_id, ts, msg_id, type, user_id, user_name, content,"     \
	"                             extra, count, value, session_id, source_id, seq, flags)"               \
	"  SELECT s.platform, s.room_id, s.ts, s.msg_id, s.type, s.user_id, s.user_name, s.content,"         \
	"         s.extra, s.count, s.value,"                                                                \
	"         nullif(coalesce("                                                                          \
	"          (SELECT rs.fast FROM rs WHERE rs.platform = s.platform AND rs.room_id = s.room_id),"      \
	"          (SELECT ls.id FROM live_sessions ls"                                                      \
	"           WHERE ls.platform = s.platform AND ls.room_id = s.room_id"                               \
	"             AND ls.started_at <= s.ts AND (ls.ended_at IS NULL OR ls.ended_at >= s.ts)"            \
	"           ORDER BY ls.started_at DESC LIMIT 1)), 0),"                                              \
	"         s.source_id, s.seq, s.flags"                                                               \
	"  FROM s"

#define INSERT_TAIL                                                                                          \
	"  RETURNING platform, room_id, ts, msg_id, type, user_id, user_name, content, extra, count,"        \
	"            value,"                                                                                 \
	"            session_id, flags),"                                                                    \
	" us AS ("                                                                                           \
	"  INSERT INTO user_statistics AS u (platform, room_id, user_id, user_name, messages, gifts,"        \
	"                                    gift_value,"                                                    \
	"                                    likes, first_seen, last_seen)"                                  \
	"  SELECT platform, room_id, user_id, (array_agg(user_name ORDER BY ts DESC))[1],"                   \
	"         count(*) FILTER (WHERE type IN ('chat', 'superchat')),"                                    \
	"         coalesce(sum(greatest(count, 1)) FILTER (WHERE type = 'gift'), 0),"                        \
	"         coalesce(sum(value) FILTER (WHERE type IN ('gift', 'superchat', 'guard')), 0),"            \
	"         coalesce(sum(greatest(count, 1)) FILTER (WHERE type = 'like'), 0),"                        \
	"         min(ts), max(ts)"                                                                          \
	"  FROM ins WHERE user_id <> '' AND (flags & 1) = 0"                                                 \
	"  GROUP BY platform, room_id, user_id ORDER BY platform, room_id, user_id"                          \
	"  ON CONFLICT (platform, room_id, user_id) DO UPDATE SET"                                           \
	"   messages = u.messages + EXCLUDED.messages, gifts = u.gifts + EXCLUDED.gifts,"                    \
	"   gift_value = u.gift_value + EXCLUDED.gift_value, likes = u.likes + EXCLUDED.likes,"              \
	"   user_name = CASE WHEN EXCLUDED.last_seen >= u.last_seen AND EXCLUDED.user_name <> ''"            \
	"                    THEN EXCLUDED.user_name ELSE u.user_name END,"                                  \
	"   first_seen = least(u.first_seen, EXCLUDED.first_seen),"                                          \
	"   last_seen = greatest(u.last_seen, EXCLUDED.last_seen)"                                           \
	"  RETURNING 1),"                                                                                    \
	" gr AS ("                                                                                           \
	"  INSERT INTO gift_records (platform, room_id, msg_id, ts, user_id, user_name, gift_name, count,"   \
	"                            value,"                                                                 \
	"                            currency, session_id)"                                                  \
	"  SELECT platform, room_id, msg_id, ts, user_id, user_name, coalesce(extra->>'gift_name', ''),"     \
	"         count, value, coalesce(extra->>'currency', ''), session_id"                                \
	"  FROM ins WHERE type IN ('gift', 'guard') ORDER BY platform, room_id, ts, msg_id"                  \
	"  ON CONFLICT DO NOTHING RETURNING 1),"                                                             \
	" ss AS ("                                                                                           \
	"  UPDATE live_sessions ls SET messages = ls.messages + a.messages, gifts = ls.gifts + a.gifts,"     \
	"         gift_value = ls.gift_value + a.gift_value, likes = ls.likes + a.likes"                     \
	"  FROM (SELECT session_id,"                                                                         \
	"               count(*) FILTER (WHERE type IN ('chat', 'superchat')) AS messages,"                  \
	"               coalesce(sum(greatest(count, 1)) FILTER (WHERE type = 'gift'), 0) AS gifts,"         \
	"               coalesce(sum(value) FILTER (WHERE type IN ('gift', 'superchat', 'guard')), 0)"       \
	"                 AS gift_value,"                                                                    \
	"               coalesce(sum(greatest(count, 1)) FILTER (WHERE type = 'like'), 0) AS likes"          \
	"        FROM ins WHERE session_id IS NOT NULL GROUP BY session_id) a"                               \
	"  WHERE ls.id = a.session_id RETURNING 1),"                                                         \
	" ci AS ("                                                                                           \
	"  INSERT INTO checkins (platform, room_id, user_id, day, streak, first_ts)"                         \
	"  SELECT c.platform, c.room_id, c.user_id, c.day,"                                                  \
	"         coalesce((SELECT p.streak FROM checkins p WHERE p.platform = c.platform"                   \
	"                     AND p.room_id = c.room_id AND p.user_id = c.user_id"                           \
	"                     AND p.day = c.day - 1), 0) + 1,"                                               \
	"         c.first_ts"                                                                                \
	"  FROM (SELECT platform, room_id, user_id, (ts AT TIME ZONE 'UTC')::date AS day,"                   \
	"               min(ts) AS first_ts"                                                                 \
	"        FROM ins WHERE type = 'chat' AND strpos(content, '签到') > 0 AND user_id <> ''"           \
	"          AND (flags & 1) = 0 GROUP BY 1, 2, 3, 4) c"                                               \
	"  ORDER BY 1, 2, 3, 4"                                                                              \
	"  ON CONFLICT DO NOTHING RETURNING 1)"                                                              \
	" SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM us),"                                     \
	"        (SELECT count(*) FROM gr),"                                                                 \
	"        (SELECT count(*) FROM ss), (SELECT count(*) FROM ci)"

/* Where a row may already be stored (a replay, a message two persisters were
 * given): ON CONFLICT DO NOTHING, a speculative insertion, which probes the
 * primary key before inserting and confirms the row after. */
static const char insert_sql[] = INSERT_HEAD "  ON CONFLICT DO NOTHING" INSERT_TAIL;

/* Where every row should be new (the usual case): a plain insert, 16 % less
 * PostgreSQL time per batch than the speculative one. The primary key still
 * refuses a row stored meanwhile or before, with unique_violation, which
 * fails the whole statement: lt_pgsink_apply then rolls back and writes the
 * same rows again with insert_sql. An anti-join against live_messages
 * instead (NOT EXISTS) measured barely cheaper than ON CONFLICT: it probes
 * the key just as often. */
static const char fast_sql[] = INSERT_HEAD INSERT_TAIL;

#define INSERT_STMT "lt_insert"
#define FAST_STMT   "lt_insert_fast"

static const char note_sql[] =
    "INSERT INTO error_logs (source, kind, message, details) VALUES ('persister', $1, $2, $3::jsonb)";

int lt_pgsink_open(const char *dsn, const char *search_path, const struct lt_clock *clock,
		   struct lt_pgsink **out)
{
	struct lt_pgsink *s = calloc(1, sizeof *s);
	if (!s)
		return LT_ENOMEM;
	s->dsn = strdup(dsn ? dsn : "");
	s->search_path = search_path && *search_path ? strdup(search_path) : NULL;
	if (!s->dsn || (search_path && *search_path && !s->search_path)) {
		lt_pgsink_close(s);
		return LT_ENOMEM;
	}
	s->clock = clock ? clock : &lt_clock_real;
	s->backoff_ms = BACKOFF_MIN_MS;
	s->rng = (uint32_t)getpid() * 2654435761u + 1;
	lt_buf_init(&s->copy, 0);
	lt_buf_init(&s->scratch, 0);
	lt_buf_init(&s->one, 0);
	*out = s;
	return LT_OK;
}

static void drop_conn(struct lt_pgsink *s)
{
	if (s->conn)
		PQfinish(s->conn);
	s->conn = NULL;
	s->prepared = false;
}

void lt_pgsink_close(struct lt_pgsink *s)
{
	if (!s)
		return;
	drop_conn(s);
	lt_buf_free(&s->copy);
	lt_buf_free(&s->scratch);
	lt_buf_free(&s->one);
	free(s->slots);
	free(s->dsn);
	free(s->search_path);
	free(s);
}

void lt_pgsink_stats(const struct lt_pgsink *s, struct lt_pgsink_stats *out)
{
	*out = s->stats;
}

PGconn *lt_pgsink_conn(struct lt_pgsink *s)
{
	return s->conn && PQstatus(s->conn) == CONNECTION_OK ? s->conn : NULL;
}

/* Next backoff step with ±25 % jitter. */
static void schedule_retry(struct lt_pgsink *s)
{
	s->rng = s->rng * 1103515245u + 12345u;
	int jitter = s->backoff_ms / 4;
	int d = s->backoff_ms - jitter + (int)((s->rng >> 8) % (uint32_t)(2 * jitter + 1));
	s->next_try_mono = lt_clock_mono(s->clock) + d;
	s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

void lt_pgsink_check(struct lt_pgsink *s)
{
	if (s->conn && PQstatus(s->conn) != CONNECTION_OK) {
		drop_conn(s);
		schedule_retry(s);
	}
}

/* The first line of a libpq error, for an lt_error message. */
static int fail_msg(struct lt_error *e, int code, const char *what, const char *msg)
{
	int n = (int)strcspn(msg ? msg : "", "\n");
	return lt_error_set(e, code, "postgres: %s: %.*s", what, n > 200 ? 200 : n, msg ? msg : "");
}

/* Quiet NOTICEs ("already exists, skipping"), no JIT, and select the
 * schema. JIT: the planner's cost of the insert statement grows with the rows
 * staged when it is planned and with the tables' statistics; once it passed
 * jit_above_cost (in bench_persister's replay of 5000-row batches), compiling
 * its 114 expressions took 100-150 ms at every execution, more than the
 * statement itself: 4 times the PostgreSQL CPU of that phase. */
static int set_session(struct lt_pgsink *s, struct lt_error *e)
{
	PGresult *r = PQexec(s->conn, "SET client_min_messages = warning; SET jit = off");
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	if (ok && s->search_path) {
		char *id = PQescapeIdentifier(s->conn, s->search_path, strlen(s->search_path));
		char sql[256];
		ok = id && snprintf(sql, sizeof sql, "SET search_path TO %s", id) < (int)sizeof sql;
		PQfreemem(id);
		if (ok) {
			r = PQexec(s->conn, sql);
			ok = PQresultStatus(r) == PGRES_COMMAND_OK;
			PQclear(r);
		}
	}
	if (!ok)
		return fail_msg(e, PQstatus(s->conn) == CONNECTION_OK ? LT_EDB : LT_ECONN, "session settings",
				PQerrorMessage(s->conn));
	return LT_OK;
}

int lt_pgsink_connect(struct lt_pgsink *s, struct lt_error *e)
{
	if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
		return LT_OK;
	drop_conn(s);
	if (s->next_try_mono && lt_clock_mono(s->clock) < s->next_try_mono)
		return lt_error_set(e, LT_EAGAIN, "postgres: waiting before reconnecting");
	/* The DSN may carry its own options (e.g. a search_path): ours are set
	 * by statements below, not by overriding "options". */
	const char *keys[4] = {"dbname", "application_name", "connect_timeout", NULL};
	const char *vals[4] = {s->dsn, "livetap-persister", "5", NULL};
	int rc;
	s->conn = PQconnectdbParams(keys, vals, 1);
	if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
		rc = fail_msg(e, LT_ECONN, "connect", s->conn ? PQerrorMessage(s->conn) : "out of memory");
		goto fail;
	}
	rc = set_session(s, e);
	if (rc != LT_OK)
		goto fail;
	rc = lt_migrate_apply(s->conn, e);
	if (rc != LT_OK)
		goto fail;
	PGresult *r = PQexec(s->conn, stage_sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		rc = fail_msg(e, PQstatus(s->conn) == CONNECTION_OK ? LT_EDB : LT_ECONN, "staging table",
			      PQresultErrorMessage(r));
		PQclear(r);
		goto fail;
	}
	PQclear(r);
	s->stats.connects++;
	s->backoff_ms = BACKOFF_MIN_MS;
	s->next_try_mono = 0;
	return LT_OK;
fail:
	s->stats.connect_failures++;
	drop_conn(s);
	schedule_retry(s);
	return rc;
}

size_t lt_pgsink_copy_escape(struct lt_buf *out, const char *s, size_t n)
{
	size_t nuls = 0;
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		const char *rep;
		switch (s[i]) {
		case '\\':
			rep = "\\\\";
			break;
		case '\t':
			rep = "\\t";
			break;
		case '\n':
			rep = "\\n";
			break;
		case '\r':
			rep = "\\r";
			break;
		case '\0':
			rep = "\xEF\xBF\xBD";
			nuls++;
			break;
		default:
			continue;
		}
		lt_buf_append(out, s + start, i - start);
		lt_buf_puts(out, rep);
		start = i + 1;
	}
	lt_buf_append(out, s + start, n - start);
	return nuls;
}

/* Escape a text field, repairing invalid UTF-8 first; true if it changed. */
static bool put_text(struct lt_buf *out, struct lt_buf *scratch, struct lt_str v)
{
	const char *p = v.p ? v.p : "";
	if (lt_utf8_valid(p, v.len))
		return lt_pgsink_copy_escape(out, p, v.len) > 0;
	lt_buf_reset(scratch);
	lt_utf8_repair(scratch, p, v.len);
	lt_pgsink_copy_escape(out, (const char *)scratch->data, scratch->len);
	return true;
}

/* Would PostgreSQL's jsonb take this object text? cJSON checks the syntax
 * (including surrogate pairs); jsonb also refuses \u0000 in strings. */
static bool extra_ok(const char *p, size_t n)
{
	for (size_t i = 0; i + 5 < n; i++)
		if (p[i] == '\\' && (p[i + 1] == 'u' || p[i + 1] == 'U') && memcmp(p + i + 2, "0000", 4) == 0)
			return false;
	cJSON *j = cJSON_ParseWithLength(p, n);
	bool ok = j && cJSON_IsObject(j);
	cJSON_Delete(j);
	return ok;
}

static bool put_extra(struct lt_buf *out, struct lt_buf *scratch, struct lt_str v)
{
	static const char invalid[] = "{\"invalid_extra\":true}";
	if (v.len == 0 || (v.len == 2 && v.p[0] == '{' && v.p[1] == '}')) {
		lt_buf_puts(out, "{}");
		return false;
	}
	const char *p = v.p;
	size_t n = v.len;
	bool changed = false;
	if (!lt_utf8_valid(p, n)) {
		lt_buf_reset(scratch);
		lt_utf8_repair(scratch, p, n);
		p = (const char *)scratch->data;
		n = scratch->len;
		changed = true;
	}
	if (!extra_ok(p, n)) {
		lt_buf_puts(out, invalid);
		return true;
	}
	lt_pgsink_copy_escape(out, p, n);
	return changed;
}

void lt_pgsink_copy_row(struct lt_buf *out, struct lt_buf *scratch, const struct lt_msg *m,
			const char *source_id, uint64_t seq)
{
	bool rep = false;
	unsigned flags = m->flags;
	lt_buf_puts(out, lt_platform_name(m->platform));
	lt_buf_putc(out, '\t');
	rep |= put_text(out, scratch, m->room);
	lt_buf_printf(out, "\t%" PRId64 "\t", m->ts);
	rep |= put_text(out, scratch, m->msg_id);
	lt_buf_putc(out, '\t');
	lt_buf_puts(out, lt_msg_type_name(m->type));
	lt_buf_putc(out, '\t');
	rep |= put_text(out, scratch, m->user_id);
	lt_buf_putc(out, '\t');
	rep |= put_text(out, scratch, m->user_name);
	lt_buf_putc(out, '\t');
	rep |= put_text(out, scratch, m->content);
	lt_buf_putc(out, '\t');
	rep |= put_extra(out, scratch, m->extra);
	lt_buf_printf(out, "\t%" PRId64 "\t%" PRId64 "\t", m->count, m->value);
	rep |= put_text(out, scratch, lt_str_c(source_id));
	if (rep)
		flags |= LT_MSGF_REPAIRED;
	lt_buf_printf(out, "\t%" PRIu64 "\t%u\n", seq, flags);
}

/* Classify a failed result: connection gone, retryable, data, other. */
static int classify(struct lt_pgsink *s, PGresult *r)
{
	if (!s->conn || PQstatus(s->conn) != CONNECTION_OK)
		return LT_ECONN;
	const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (!st)
		return LT_EDB;
	if (strncmp(st, "08", 2) == 0 || strncmp(st, "57P", 3) == 0)
		return LT_ECONN;
	if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0)
		return LT_EAGAIN;
	if (strncmp(st, "22", 2) == 0 || strncmp(st, "23", 2) == 0)
		return LT_EINVAL;
	return LT_EDB;
}

/* Run a statement; fills e and returns the class on failure. *out (may be
 * NULL) receives the result on success (the caller clears it). */
static int run(struct lt_pgsink *s, const char *sql, const char *what, PGresult **out, struct lt_error *e)
{
	PGresult *r = PQexec(s->conn, sql);
	ExecStatusType st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		if (out)
			*out = r;
		else
			PQclear(r);
		return LT_OK;
	}
	int rc = classify(s, r);
	fail_msg(e, rc, what, r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn));
	PQclear(r);
	return rc;
}

static int copy_in(struct lt_pgsink *s, const struct lt_buf *rows, struct lt_error *e)
{
	PGresult *r = PQexec(s->conn, copy_sql);
	if (PQresultStatus(r) != PGRES_COPY_IN) {
		int rc = classify(s, r);
		fail_msg(e, rc, "copy", r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn));
		PQclear(r);
		return rc;
	}
	PQclear(r);
	int ok = 1;
	size_t off = 0;
	while (ok && off < rows->len) {
		/* libpq's output buffer grows to hold a whole chunk and keeps
		 * that size: small chunks keep it small */
		size_t chunk = rows->len - off > (64u << 10) ? (64u << 10) : rows->len - off;
		ok = PQputCopyData(s->conn, (const char *)rows->data + off, (int)chunk) == 1;
		off += chunk;
	}
	if (PQputCopyEnd(s->conn, ok ? NULL : "client error") != 1)
		ok = 0;
	int rc = LT_OK;
	while ((r = PQgetResult(s->conn)) != NULL) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == LT_OK) {
			rc = classify(s, r);
			fail_msg(e, rc, "copy", PQresultErrorMessage(r));
		}
		PQclear(r);
	}
	if (rc == LT_OK && !ok) {
		rc = classify(s, NULL);
		fail_msg(e, rc, "copy", PQerrorMessage(s->conn));
	}
	return rc;
}

/* The big statement is parsed and planned once per connection, not once per
 * transaction: it has no parameters, so PostgreSQL keeps one generic plan
 * and replans it by itself when a table it uses changes. Prepared outside a
 * transaction, so that no rollback can leave us believing in a statement the
 * server does not have; the first use rather than the connect, so that a
 * missing derived table fails the writes, not the partition maintenance. */
static int prepare_insert(struct lt_pgsink *s, struct lt_error *e)
{
	if (s->prepared)
		return LT_OK;
	static const char *const names[2] = {INSERT_STMT, FAST_STMT};
	static const char *const sqls[2] = {insert_sql, fast_sql};
	int rc = LT_OK;
	for (int i = 0; i < 2 && rc == LT_OK; i++) {
		PGresult *r = PQprepare(s->conn, names[i], sqls[i], 0, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			rc = classify(s, r);
			fail_msg(e, rc, "prepare insert",
				 r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn));
		}
		PQclear(r);
	}
	/* A failure after the first leaves that one prepared: drop it too, so
	 * that the next try prepares both afresh. */
	if (rc == LT_OK)
		s->prepared = true;
	else if (rc != LT_ECONN)
		PQclear(PQexec(s->conn, "DEALLOCATE ALL"));
	return rc;
}

/* Stage rows and run the session statements and stmt, INSERT_STMT or
 * FAST_STMT (inside a transaction or savepoint the caller manages). *unique
 * is set if stmt failed with unique_violation. */
static int apply_rows(struct lt_pgsink *s, const struct lt_buf *rows, bool sessions, bool clear,
		      const char *stmt, uint64_t *inserted, bool *unique, struct lt_error *e)
{
	*unique = false;
	int rc = copy_in(s, rows, e);
	if (rc != LT_OK)
		return rc;
	if (sessions) {
		rc = run(s, sessions_sql, "sessions", NULL, e);
		if (rc == LT_OK)
			rc = run(s, close_sql, "sessions", NULL, e);
		if (rc != LT_OK)
			return rc;
	}
	PGresult *r = PQexecPrepared(s->conn, stmt, 0, NULL, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
		*unique = st && strcmp(st, "23505") == 0;
		rc = classify(s, r);
		fail_msg(e, rc, "insert", r ? PQresultErrorMessage(r) : PQerrorMessage(s->conn));
		PQclear(r);
		return rc;
	}
	*inserted += (uint64_t)strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	/* In isolation mode the staging row must go before the next one (DELETE,
	 * not TRUNCATE: no new relfilenode per row); otherwise COMMIT clears it. */
	return clear ? run(s, "DELETE FROM lt_stage", "clear staging", NULL, e) : LT_OK;
}

static void note_json(struct lt_buf *b, const struct lt_batch_note *n)
{
	lt_buf_reset(b);
	lt_buf_puts(b, "{\"source_id\":");
	lt_json_str(b, n->source_id, strlen(n->source_id));
	lt_buf_printf(b, ",\"seq\":%" PRIu64, n->seq);
	if (n->index >= 0)
		lt_buf_printf(b, ",\"index\":%" PRId64, n->index);
	lt_buf_putc(b, '}');
}

static int write_note(struct lt_pgsink *s, const struct lt_batch_note *n, struct lt_error *e)
{
	struct lt_buf *b = &s->scratch;
	note_json(b, n);
	if (lt_buf_err(b))
		return lt_error_set(e, LT_ENOMEM, "postgres: note: out of memory");
	/* message: valid UTF-8 for the text column */
	struct lt_buf msg = LT_BUF_INIT;
	lt_utf8_repair(&msg, n->message, strlen(n->message));
	const char *params[3] = {n->kind, lt_buf_cstr(&msg), lt_buf_cstr(b)};
	PGresult *r = PQexecParams(s->conn, note_sql, 3, NULL, params, NULL, NULL, 0);
	int rc = LT_OK;
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		rc = classify(s, r);
		fail_msg(e, rc, "error_logs", PQresultErrorMessage(r));
	}
	PQclear(r);
	lt_buf_free(&msg);
	return rc;
}

static bool has_session_events(const struct lt_msg *m, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (m[i].type == LT_MSG_LIVE_START || m[i].type == LT_MSG_LIVE_END)
			return true;
	return false;
}

/* Size the dedup table for rows rows (at most half full) and empty it; a
 * table much bigger than needed (after a burst) is made again smaller. */
static int dedup_reset(struct lt_pgsink *s, size_t rows)
{
	size_t want = 64;
	while (want < 2 * rows)
		want *= 2;
	if (s->nslots < want || s->nslots > 4 * want) {
		free(s->slots);
		s->slots = calloc(want, sizeof *s->slots);
		s->nslots = s->slots ? want : 0;
		return s->slots ? LT_OK : LT_ENOMEM;
	}
	memset(s->slots, 0, s->nslots * sizeof *s->slots);
	return LT_OK;
}

/* The key of the staging row at off in s->copy: its first four fields
 * (platform, room, ts_ms, msg_id: the primary key of live_messages) as
 * escaped text, where no field holds a raw tab. */
static const uint8_t *row_key(const struct lt_pgsink *s, size_t off, size_t *len)
{
	const uint8_t *p = s->copy.data + off;
	size_t n = s->copy.len - off, tabs = 0, i = 0;
	for (; i < n; i++)
		if (p[i] == '\t' && ++tabs == 4)
			break;
	*len = i;
	return p;
}

/* Leave out the row just appended at off if an earlier row of this write has
 * the same key; returns true if it did. Without this, a message that comes
 * twice in one write (two batches carrying it) would make fast_sql fail on
 * its own rows. Escaping is one to one and ts_ms is printed one way, so equal
 * key text is an equal key; an equal key with unequal text (none is known)
 * would only cost the fallback to insert_sql. The first row is kept, as
 * ON CONFLICT DO NOTHING keeps the first it inserts. */
static bool dedup_row(struct lt_pgsink *s, size_t off)
{
	size_t len;
	const uint8_t *key = row_key(s, off, &len);
	uint64_t h = 1469598103934665603u; /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ key[i]) * 1099511628211u;
	for (size_t i = (size_t)h & (s->nslots - 1);; i = (i + 1) & (s->nslots - 1)) {
		struct dedup_slot *sl = &s->slots[i];
		if (sl->off == 0) {
			sl->off = off + 1;
			sl->hash = h;
			return false;
		}
		size_t olen;
		const uint8_t *other;
		if (sl->hash == h && (other = row_key(s, sl->off - 1, &olen), olen == len) &&
		    memcmp(other, key, len) == 0) {
			s->copy.len = off;
			return true;
		}
	}
}

/* Isolation mode: each record in its own savepoint. */
static int apply_isolated(struct lt_pgsink *s, struct lt_batch *first, size_t nb, struct lt_pgsink_result *r,
			  struct lt_error *e)
{
	struct lt_batch *b = first;
	for (size_t k = 0; k < nb && b; k++, b = b->next) {
		for (uint32_t i = 0; i < b->nmsgs; i++) {
			lt_buf_reset(&s->one);
			lt_pgsink_copy_row(&s->one, &s->scratch, &b->msgs[i], b->source_id, b->seq);
			if (lt_buf_err(&s->one))
				return lt_error_set(e, LT_ENOMEM, "postgres: staging row: out of memory");
			int rc = run(s, "SAVEPOINT lt_row", "savepoint", NULL, e);
			if (rc != LT_OK)
				return rc;
			struct lt_error re = {0};
			bool unique;
			r->staged++;
			rc = apply_rows(s, &s->one, has_session_events(&b->msgs[i], 1), true, INSERT_STMT,
					&r->inserted, &unique, &re);
			if (rc == LT_OK) {
				rc = run(s, "RELEASE SAVEPOINT lt_row", "savepoint", NULL, e);
				if (rc != LT_OK)
					return rc;
				continue;
			}
			if (rc != LT_EINVAL) {
				*e = re;
				return rc;
			}
			rc = run(s, "ROLLBACK TO SAVEPOINT lt_row", "savepoint", NULL, e);
			if (rc != LT_OK)
				return rc;
			r->bad++;
			struct lt_batch_note n = {0};
			snprintf(n.kind, sizeof n.kind, "bad_record");
			snprintf(n.source_id, sizeof n.source_id, "%s", b->source_id);
			n.seq = b->seq;
			n.index = -1; /* the wire index is not kept per record */
			snprintf(n.message, sizeof n.message, "refused by PostgreSQL: %.130s", re.message);
			rc = write_note(s, &n, e);
			if (rc != LT_OK)
				return rc;
		}
	}
	return LT_OK;
}

int lt_pgsink_apply(struct lt_pgsink *s, struct lt_batch *first, size_t nb, const struct lt_batch_note *notes,
		    size_t nnotes, bool isolate, struct lt_pgsink_result *r, struct lt_error *e)
{
	memset(r, 0, sizeof *r);
	if (!lt_pgsink_conn(s))
		return lt_error_set(e, LT_ECONN, "postgres: not connected");
	int rc = prepare_insert(s, e);
	if (rc != LT_OK)
		goto out;
	rc = run(s, "BEGIN", "begin", NULL, e);
	if (rc != LT_OK)
		goto out;
	if (isolate) {
		rc = apply_isolated(s, first, nb, r, e);
	} else {
		lt_buf_reset(&s->copy);
		bool sessions = false;
		size_t rows = 0, twice = 0;
		struct lt_batch *b = first;
		for (size_t k = 0; k < nb && b; k++, b = b->next)
			rows += b->nmsgs;
		if (dedup_reset(s, rows) != LT_OK) {
			rc = lt_error_set(e, LT_ENOMEM, "postgres: staging rows: out of memory");
			goto out;
		}
		b = first;
		for (size_t k = 0; k < nb && b; k++, b = b->next) {
			for (uint32_t i = 0; i < b->nmsgs; i++) {
				size_t off = s->copy.len;
				lt_pgsink_copy_row(&s->copy, &s->scratch, &b->msgs[i], b->source_id, b->seq);
				if (!lt_buf_err(&s->copy) && dedup_row(s, off))
					twice++;
			}
			r->staged += b->nmsgs;
			sessions = sessions || has_session_events(b->msgs, b->nmsgs);
		}
		bool fast = !s->replaying, unique = false;
		if (lt_buf_err(&s->copy))
			rc = lt_error_set(e, LT_ENOMEM, "postgres: staging rows: out of memory");
		else if (r->staged > 0)
			rc = apply_rows(s, &s->copy, sessions, false, fast ? FAST_STMT : INSERT_STMT,
					&r->inserted, &unique, e);
		if (rc != LT_OK && fast && unique) {
			/* A row was stored already (a replay) or meanwhile (by
			 * another persister): the same rows again, the slow way,
			 * in a new transaction (the failed one is lost). */
			s->stats.fallbacks++;
			fast = false;
			r->inserted = 0;
			rc = run(s, "ROLLBACK", "rollback", NULL, e);
			if (rc == LT_OK)
				rc = run(s, "BEGIN", "begin", NULL, e);
			if (rc == LT_OK)
				rc = apply_rows(s, &s->copy, sessions, false, INSERT_STMT, &r->inserted,
						&unique, e);
		}
		if (rc == LT_OK && !fast)
			s->replaying = r->inserted < rows - twice;
	}
	for (size_t i = 0; i < nnotes && rc == LT_OK; i++)
		rc = write_note(s, &notes[i], e);
	if (rc == LT_OK)
		rc = run(s, "COMMIT", "commit", NULL, e);
out:
	if (rc == LT_OK) {
		s->stats.commits++;
	} else {
		s->stats.rollbacks++;
		if (s->conn && PQstatus(s->conn) == CONNECTION_OK &&
		    PQtransactionStatus(s->conn) != PQTRANS_IDLE)
			PQclear(PQexec(s->conn, "ROLLBACK"));
		lt_pgsink_check(s);
	}
	/* Keep the rows buffer for the next batch, but not the size of a burst
	 * (a backlog after a restart or a stall) once batches are small again:
	 * the persister's memory follows its load. */
	if (s->copy.cap > (256u << 10) && s->copy.len < s->copy.cap / 4) {
		lt_buf_free(&s->copy);
		lt_buf_init(&s->copy, 0);
	}
	return rc;
}
