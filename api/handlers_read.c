/* SPDX-License-Identifier: MIT */
/*
 * handlers_read: the read endpoints, run on pool workers (see api.h).
 *
 * Redis first: the processor's L1 stream (live:{ROOM}:messages, the last few
 * minutes), its L2 sorted sets and hashes (hot words, user statistics) and
 * the fetcher's status hash. PostgreSQL for anything older or missing: the
 * persister's live_messages, hotword_statistics snapshots, user_statistics
 * and live_sessions. Every query is parameterized; every string that goes
 * into a response goes through lt_json_str (escaped, UTF-8 repaired).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "common/clock.h"
#include "common/json.h"

#define STREAM_SCAN 2000	      /* L1 entries looked at per request */
#define TS_MAX_MS   253402300799000LL /* 9999-12-31: keeps to_timestamp() sane */

static void jstr(struct lt_buf *b, const char *s)
{
	lt_json_str(b, s ? s : "", s ? strlen(s) : 0);
}

static void redis_fail(struct lt_worker *w, struct lt_job *j, redisReply *r, const struct lt_error *e)
{
	if (r && r->type == REDIS_REPLY_ERROR)
		lt_job_error(j, 503, LT_EREDIS, "Redis: %.200s", r->str);
	else if (e && e->message[0])
		lt_job_error(j, 503, LT_EREDIS, "Redis is unavailable: %s", e->message);
	else
		lt_job_error(j, 503, LT_EREDIS, "Redis is unavailable");
	if (!r || r->type != REDIS_REPLY_ERROR)
		lt_worker_redis_reset(w);
}

static void pg_fail(struct lt_worker *w, struct lt_job *j, PGconn *pg, const struct lt_error *e)
{
	if (pg)
		lt_job_error(j, 503, LT_EDB, "PostgreSQL: %.200s", PQerrorMessage(pg));
	else
		lt_job_error(j, 503, LT_EDB, "PostgreSQL is unavailable: %s", e ? e->message : "");
	if (pg && PQstatus(pg) != CONNECTION_OK)
		lt_worker_pg_reset(w);
}

static void ms_text(int64_t ms, char *out, size_t cap)
{
	if (ms > TS_MAX_MS)
		ms = TS_MAX_MS;
	if (ms < 0)
		ms = 0;
	snprintf(out, cap, "%lld", (long long)ms);
}

static int64_t upper_of(const struct lt_req *q)
{
	int64_t u = q->until;
	if (q->before > 0 && q->before < u)
		u = q->before;
	return u > TS_MAX_MS ? TS_MAX_MS : u;
}

/* ---- healthz ---------------------------------------------------------- */

void lt_h_healthz(struct lt_worker *w, struct lt_job *j)
{
	struct lt_error re = {0}, pe = {0};
	bool rok = false, pok = false;
	redisContext *rc = lt_worker_redis(w, &re);
	if (rc) {
		redisReply *r = redisCommand(rc, "PING");
		rok = r && r->type == REDIS_REPLY_STATUS;
		if (!rok)
			lt_error_set(&re, LT_EREDIS, "%s",
				     r && r->type == REDIS_REPLY_ERROR ? r->str : rc->errstr);
		if (r)
			freeReplyObject(r);
		if (!r)
			lt_worker_redis_reset(w);
	}
	PGconn *pg = lt_worker_pg(w, &pe);
	if (pg) {
		PGresult *r = PQexec(pg, "SELECT 1");
		pok = PQresultStatus(r) == PGRES_TUPLES_OK;
		if (!pok) {
			lt_error_set(&pe, LT_EDB, "%s", PQerrorMessage(pg));
			lt_worker_pg_reset(w);
		}
		PQclear(r);
	}
	struct lt_buf *b = &j->body;
	lt_buf_printf(b, "{\"status\":\"%s\",\"redis\":{\"ok\":%s", rok && pok ? "ok" : "down",
		      rok ? "true" : "false");
	if (!rok) {
		lt_buf_puts(b, ",\"error\":");
		jstr(b, re.message);
	}
	lt_buf_printf(b, "},\"postgres\":{\"ok\":%s", pok ? "true" : "false");
	if (!pok) {
		lt_buf_puts(b, ",\"error\":");
		jstr(b, pe.message);
	}
	lt_buf_puts(b, "}}");
	j->status = rok && pok ? 200 : 503;
	j->ctype = "application/json";
}

/* ---- status ----------------------------------------------------------- */

void lt_h_status(struct lt_worker *w, struct lt_job *j)
{
	char key[160];
	struct lt_error e = {0};
	lt_job_roomkey(j, key, sizeof key);
	strncat(key, ":status", sizeof key - strlen(key) - 1);
	redisContext *rc = lt_worker_redis(w, &e);
	if (!rc)
		return redis_fail(w, j, NULL, &e);
	redisReply *r = redisCommand(rc, "HGETALL %s", key);
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		redis_fail(w, j, r, &e);
		if (r)
			freeReplyObject(r);
		return;
	}
	PGconn *pg = lt_worker_pg(w, &e);
	if (!pg) {
		freeReplyObject(r);
		return pg_fail(w, j, NULL, &e);
	}
	const char *p[2] = {j->req.platform, j->req.room};
	PGresult *pr = PQexecParams(pg,
				    "SELECT enabled, coalesce(last_state, ''), coalesce(last_error, ''), "
				    "coalesce(title, ''), coalesce(lease_owner, '') "
				    "FROM rooms WHERE platform = $1 AND room_id = $2",
				    2, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(pr) != PGRES_TUPLES_OK) {
		freeReplyObject(r);
		PQclear(pr);
		return pg_fail(w, j, pg, NULL);
	}
	bool known = PQntuples(pr) == 1;
	if (!known && r->elements == 0) {
		freeReplyObject(r);
		PQclear(pr);
		return lt_job_error(j, 404, LT_ENOTFOUND, "no such room: %s:%s", j->req.platform,
				    j->req.room);
	}
	const char *state = NULL;
	for (size_t i = 0; i + 1 < r->elements; i += 2)
		if (!strcmp(r->element[i]->str, "state"))
			state = r->element[i + 1]->str;
	if (!state && known && *PQgetvalue(pr, 0, 1))
		state = PQgetvalue(pr, 0, 1);
	struct lt_buf *b = &j->body;
	lt_buf_puts(b, "{\"platform\":");
	jstr(b, j->req.platform);
	lt_buf_puts(b, ",\"room\":");
	jstr(b, j->req.room);
	lt_buf_puts(b, ",\"state\":");
	jstr(b, state ? state : "idle");
	if (known) {
		lt_buf_printf(
		    b, ",\"enabled\":%s,\"title\":", PQgetvalue(pr, 0, 0)[0] == 't' ? "true" : "false");
		jstr(b, PQgetvalue(pr, 0, 3));
		lt_buf_puts(b, ",\"lease_owner\":");
		jstr(b, PQgetvalue(pr, 0, 4));
	} else {
		lt_buf_puts(b, ",\"enabled\":null");
	}
	lt_buf_puts(b, ",\"fetcher\":{");
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		if (i)
			lt_buf_putc(b, ',');
		jstr(b, r->element[i]->str);
		lt_buf_putc(b, ':');
		jstr(b, r->element[i + 1]->str);
	}
	lt_buf_printf(b, "},\"source\":\"%s\"}", r->elements ? "redis" : "postgres");
	freeReplyObject(r);
	PQclear(pr);
	j->status = 200;
	j->ctype = "application/json";
}

/* ---- messages --------------------------------------------------------- */

struct msg_item {
	int64_t ts;
	char *id;   /* msg_id, owned */
	char *json; /* normalized JSON, owned */
};

/* Newest first: ts descending, then msg_id descending (bytewise, as
 * PostgreSQL's COLLATE "C" orders it). */
static int item_cmp(const void *a, const void *b)
{
	const struct msg_item *x = a, *y = b;
	if (x->ts != y->ts)
		return x->ts < y->ts ? 1 : -1;
	return -strcmp(x->id, y->id);
}

/* Strictly after the cursor in that order. */
static bool after_cursor(const struct lt_req *q, int64_t ts, const char *id)
{
	if (!q->has_cursor)
		return true;
	return ts < q->cursor_ts || (ts == q->cursor_ts && strcmp(id, q->cursor_id) < 0);
}

static void put_cursor(struct lt_buf *b, int64_t ts, const char *id)
{
	lt_buf_printf(b, "\"%lld-", (long long)ts);
	for (const unsigned char *c = (const unsigned char *)id; *c; c++)
		lt_buf_printf(b, "%02x", *c);
	lt_buf_putc(b, '"');
}

/* One PostgreSQL row (type, msg_id, user_id, user_name, content, ts_ms,
 * extra) as the normalized JSON form. */
static void row_json(struct lt_buf *b, const char *platform, const char *room, PGresult *r, int i)
{
	lt_buf_puts(b, "{\"v\":1,\"platform\":");
	jstr(b, platform);
	lt_buf_puts(b, ",\"room\":");
	jstr(b, room);
	lt_buf_puts(b, ",\"type\":");
	jstr(b, PQgetvalue(r, i, 0));
	lt_buf_puts(b, ",\"msg_id\":");
	jstr(b, PQgetvalue(r, i, 1));
	lt_buf_puts(b, ",\"user\":{\"id\":");
	jstr(b, PQgetvalue(r, i, 2));
	lt_buf_puts(b, ",\"name\":");
	jstr(b, PQgetvalue(r, i, 3));
	lt_buf_puts(b, "},\"content\":");
	jstr(b, PQgetvalue(r, i, 4));
	lt_buf_printf(b, ",\"ts\":%s,\"extra\":%s}", PQgetvalue(r, i, 5),
		      *PQgetvalue(r, i, 6) ? PQgetvalue(r, i, 6) : "{}");
}

/* ts has millisecond precision (the persister writes it from ms), so
 * (ts, msg_id) row comparison continues a page exactly; $7/$8 are the
 * cursor (ts ms, msg_id) or a ts past the range. */
static const char messages_sql[] =
    "SELECT type, msg_id, user_id, user_name, content, "
    "floor(extract(epoch FROM ts) * 1000)::bigint, extra::text FROM live_messages "
    "WHERE platform = $1 AND room_id = $2 AND ts >= to_timestamp($3::bigint / 1000.0) "
    "AND ts < to_timestamp($4::bigint / 1000.0) AND ($5 = '' OR type = $5) "
    "AND (ts, msg_id) < (to_timestamp($7::bigint / 1000.0), $8::text COLLATE \"C\") "
    "ORDER BY ts DESC, msg_id COLLATE \"C\" DESC LIMIT $6";

void lt_h_messages(struct lt_worker *w, struct lt_job *j)
{
	const struct lt_req *q = &j->req;
	struct lt_error e = {0};
	char key[160];
	int64_t upper = upper_of(q);
	if (q->has_cursor && q->cursor_ts + 1 < upper)
		upper = q->cursor_ts + 1; /* the cursor's own ms may hold more */
	struct msg_item *items = NULL;
	size_t n = 0;
	int64_t covered_from = upper; /* L1 holds everything in [covered_from, now) */
	bool used_pg = false;

	lt_job_roomkey(j, key, sizeof key);
	strncat(key, ":messages", sizeof key - strlen(key) - 1);
	redisContext *rc = lt_worker_redis(w, &e);
	if (!rc)
		return redis_fail(w, j, NULL, &e);
	redisReply *r = redisCommand(rc, "XREVRANGE %s + - COUNT %d", key, STREAM_SCAN);
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		redis_fail(w, j, r, &e);
		if (r)
			freeReplyObject(r);
		return;
	}
	items = calloc(r->elements + (size_t)q->limit + 1, sizeof *items);
	if (!items) {
		freeReplyObject(r);
		return lt_job_error(j, 500, LT_ENOMEM, "out of memory");
	}
	int64_t oldest = INT64_MAX;
	for (size_t i = 0; i < r->elements; i++) {
		redisReply *ent = r->element[i];
		if (ent->type != REDIS_REPLY_ARRAY || ent->elements < 2 ||
		    ent->element[1]->type != REDIS_REPLY_ARRAY)
			continue;
		redisReply *f = ent->element[1];
		for (size_t k = 0; k + 1 < f->elements; k += 2) {
			if (strcmp(f->element[k]->str, "m"))
				continue;
			cJSON *m = cJSON_ParseWithLength(f->element[k + 1]->str, f->element[k + 1]->len);
			const cJSON *ts = cJSON_GetObjectItemCaseSensitive(m, "ts");
			const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "type");
			const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "msg_id");
			if (cJSON_IsNumber(ts) && cJSON_IsString(id) && ts->valuedouble >= 0 &&
			    ts->valuedouble < 9e15) {
				int64_t t = (int64_t)ts->valuedouble;
				if (t < oldest)
					oldest = t;
				bool type_ok = !q->type[0] ||
					       (cJSON_IsString(type) && !strcmp(type->valuestring, q->type));
				if (t >= q->since && t < upper && type_ok &&
				    after_cursor(q, t, id->valuestring)) {
					items[n].ts = t;
					items[n].id = strdup(id->valuestring);
					items[n].json =
					    strndup(f->element[k + 1]->str, f->element[k + 1]->len);
					if (items[n].json && items[n].id) {
						n++;
					} else {
						free(items[n].id);
						free(items[n].json);
					}
				}
			}
			cJSON_Delete(m);
		}
	}
	bool complete = r->elements < STREAM_SCAN;
	if (r->elements > 0 && oldest != INT64_MAX)
		covered_from = complete ? oldest : oldest + 1;
	freeReplyObject(r);
	qsort(items, n, sizeof *items, item_cmp);
	for (size_t i = (size_t)q->limit; i < n; i++) {
		free(items[i].json);
		free(items[i].id);
	}
	if (n > (size_t)q->limit)
		n = (size_t)q->limit;

	PGresult *pr = NULL;
	int64_t pg_upper = covered_from < upper ? covered_from : upper;
	if (n < (size_t)q->limit && q->since < pg_upper) {
		PGconn *pg = lt_worker_pg(w, &e);
		if (!pg) {
			pg_fail(w, j, NULL, &e);
			goto out;
		}
		char since[24], until[24], lim[16], cts[24];
		ms_text(q->since, since, sizeof since);
		ms_text(pg_upper, until, sizeof until);
		/* Without a cursor: a (ts, id) past every row of the range. */
		ms_text(q->has_cursor ? q->cursor_ts : TS_MAX_MS, cts, sizeof cts);
		snprintf(lim, sizeof lim, "%d", q->limit); /* room for duplicates */
		const char *p[8] = {q->platform, q->room, since, until,
				    q->type,	 lim,	  cts,	 q->has_cursor ? q->cursor_id : ""};
		pr = PQexecParams(pg, messages_sql, 8, NULL, p, NULL, NULL, 0);
		if (PQresultStatus(pr) != PGRES_TUPLES_OK) {
			pg_fail(w, j, pg, NULL);
			goto out;
		}
		used_pg = true;
	}
	struct lt_buf *b = &j->body;
	lt_buf_puts(b, "{\"platform\":");
	jstr(b, q->platform);
	lt_buf_puts(b, ",\"room\":");
	jstr(b, q->room);
	lt_buf_puts(b, ",\"messages\":[");
	int64_t last = 0;
	const char *last_id = "";
	size_t count = 0;
	for (size_t i = 0; i < n; i++, count++) {
		if (i)
			lt_buf_putc(b, ',');
		lt_buf_puts(b, items[i].json);
		last = items[i].ts;
		last_id = items[i].id;
	}
	for (int i = 0; pr && i < PQntuples(pr) && count < (size_t)q->limit; i++) {
		/* A message the stream also had (at its oldest ms) goes out once. */
		bool dup = false;
		for (size_t k = 0; k < n && !dup; k++)
			dup = !strcmp(items[k].id, PQgetvalue(pr, i, 1));
		if (dup)
			continue;
		if (count)
			lt_buf_putc(b, ',');
		row_json(b, q->platform, q->room, pr, i);
		last = strtoll(PQgetvalue(pr, i, 5), NULL, 10);
		last_id = PQgetvalue(pr, i, 1);
		count++;
	}
	lt_buf_printf(b, "],\"count\":%zu,\"next_before\":", count);
	if (count == (size_t)q->limit)
		lt_buf_printf(b, "%lld", (long long)last);
	else
		lt_buf_puts(b, "null");
	lt_buf_puts(b, ",\"next_cursor\":");
	if (count == (size_t)q->limit)
		put_cursor(b, last, last_id);
	else
		lt_buf_puts(b, "null");
	lt_buf_printf(b, ",\"sources\":[%s%s%s]}", n ? "\"redis\"" : "", n && used_pg ? "," : "",
		      used_pg ? "\"postgres\"" : "");
	j->status = 200;
	j->ctype = "application/json";
out:
	PQclear(pr);
	for (size_t i = 0; i < n; i++) {
		free(items[i].json);
		free(items[i].id);
	}
	free(items);
}

/* ---- hot words -------------------------------------------------------- */

static const char hotwords_sql[] =
    "SELECT word, count, score FROM hotword_statistics "
    "WHERE platform = $1 AND room_id = $2 AND \"window\" = $3 AND bucket_start = "
    "(SELECT max(bucket_start) FROM hotword_statistics "
    " WHERE platform = $1 AND room_id = $2 AND \"window\" = $3) "
    "ORDER BY count DESC, word LIMIT $4";

void lt_h_hotwords(struct lt_worker *w, struct lt_job *j)
{
	const struct lt_req *q = &j->req;
	struct lt_error e = {0};
	char key[160], tkey[176], base[128];
	lt_job_roomkey(j, base, sizeof base);
	snprintf(key, sizeof key, "%s:hotwords:%s", base, q->window);
	snprintf(tkey, sizeof tkey, "%s:hotwords:trend:%s", base, q->window);
	redisContext *rc = lt_worker_redis(w, &e);
	if (!rc)
		return redis_fail(w, j, NULL, &e);
	redisReply *r = redisCommand(rc, "ZREVRANGE %s 0 %d WITHSCORES", key, q->limit - 1);
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		redis_fail(w, j, r, &e);
		if (r)
			freeReplyObject(r);
		return;
	}
	redisReply *t = NULL;
	if (r->elements > 0 && strcmp(q->window, "30m")) {
		/* The trend scores of the same words, in one round trip. */
		size_t nw = r->elements / 2;
		const char **argv = calloc(nw + 2, sizeof *argv);
		size_t *lens = calloc(nw + 2, sizeof *lens);
		if (argv && lens) {
			argv[0] = "ZMSCORE";
			lens[0] = 7;
			argv[1] = tkey;
			lens[1] = strlen(tkey);
			for (size_t i = 0; i < nw; i++) {
				argv[i + 2] = r->element[2 * i]->str;
				lens[i + 2] = r->element[2 * i]->len;
			}
			t = redisCommandArgv(rc, (int)(nw + 2), argv, lens);
			if (t && (t->type != REDIS_REPLY_ARRAY || t->elements != nw)) {
				freeReplyObject(t);
				t = NULL;
			}
		}
		free(argv);
		free(lens);
	}
	struct lt_buf *b = &j->body;
	lt_buf_puts(b, "{\"platform\":");
	jstr(b, q->platform);
	lt_buf_puts(b, ",\"room\":");
	jstr(b, q->room);
	lt_buf_printf(b, ",\"window\":\"%s\",\"generated_at\":%lld,\"words\":[", q->window,
		      (long long)lt_clock_wall_ms());
	const char *source = "redis";
	PGresult *pr = NULL;
	if (r->elements > 0) {
		for (size_t i = 0; i + 1 < r->elements; i += 2) {
			if (i)
				lt_buf_putc(b, ',');
			lt_buf_puts(b, "{\"word\":");
			lt_json_str(b, r->element[i]->str, r->element[i]->len);
			lt_buf_printf(b, ",\"count\":%lld", strtoll(r->element[i + 1]->str, NULL, 10));
			redisReply *ts = t ? t->element[i / 2] : NULL;
			if (ts && ts->type == REDIS_REPLY_STRING)
				lt_buf_printf(b, ",\"trend\":%.3f", strtod(ts->str, NULL));
			lt_buf_putc(b, '}');
		}
	} else {
		PGconn *pg = lt_worker_pg(w, &e);
		char lim[16];
		snprintf(lim, sizeof lim, "%d", q->limit);
		const char *p[4] = {q->platform, q->room, q->window, lim};
		if (pg)
			pr = PQexecParams(pg, hotwords_sql, 4, NULL, p, NULL, NULL, 0);
		if (!pg || PQresultStatus(pr) != PGRES_TUPLES_OK) {
			PQclear(pr);
			freeReplyObject(r);
			if (t)
				freeReplyObject(t);
			return pg_fail(w, j, pg, &e);
		}
		for (int i = 0; i < PQntuples(pr); i++) {
			if (i)
				lt_buf_putc(b, ',');
			lt_buf_puts(b, "{\"word\":");
			jstr(b, PQgetvalue(pr, i, 0));
			lt_buf_printf(b, ",\"count\":%s,\"trend\":%s}", PQgetvalue(pr, i, 1),
				      PQgetvalue(pr, i, 2));
		}
		source = PQntuples(pr) ? "postgres" : "none";
	}
	lt_buf_printf(b, "],\"source\":\"%s\"}", source);
	PQclear(pr);
	freeReplyObject(r);
	if (t)
		freeReplyObject(t);
	j->status = 200;
	j->ctype = "application/json";
}

/* ---- users ------------------------------------------------------------ */

static const char *const user_fields[] = {"name",  "messages",	 "gifts",    "gift_value",
					  "likes", "first_seen", "last_seen"};
#define N_USER_FIELDS 7

static const char users_by_messages_sql[] = "SELECT user_id, user_name, messages, gifts, gift_value, likes, "
					    "floor(extract(epoch FROM first_seen) * 1000)::bigint, "
					    "floor(extract(epoch FROM last_seen) * 1000)::bigint "
					    "FROM user_statistics WHERE platform = $1 AND room_id = $2 "
					    "ORDER BY messages DESC, user_id LIMIT $3";
static const char users_by_gift_sql[] = "SELECT user_id, user_name, messages, gifts, gift_value, likes, "
					"floor(extract(epoch FROM first_seen) * 1000)::bigint, "
					"floor(extract(epoch FROM last_seen) * 1000)::bigint "
					"FROM user_statistics WHERE platform = $1 AND room_id = $2 "
					"ORDER BY gift_value DESC, user_id LIMIT $3";

static void num_or_zero(struct lt_buf *b, const char *s)
{
	char *end = NULL;
	long long v = s && *s ? strtoll(s, &end, 10) : 0;
	lt_buf_printf(b, "%lld", v);
}

void lt_h_users(struct lt_worker *w, struct lt_job *j)
{
	const struct lt_req *q = &j->req;
	struct lt_error e = {0};
	char base[128], key[160];
	struct lt_buf *b = &j->body;
	lt_job_roomkey(j, base, sizeof base);
	lt_buf_puts(b, "{\"platform\":");
	jstr(b, q->platform);
	lt_buf_puts(b, ",\"room\":");
	jstr(b, q->room);
	lt_buf_printf(b, ",\"order\":\"%s\",\"users\":[", q->order);
	if (!strcmp(q->order, "messages")) {
		redisContext *rc = lt_worker_redis(w, &e);
		if (!rc)
			return redis_fail(w, j, NULL, &e);
		snprintf(key, sizeof key, "%s:user_stats", base);
		redisReply *r = redisCommand(rc, "ZREVRANGE %s 0 %d", key, q->limit - 1);
		if (!r || r->type != REDIS_REPLY_ARRAY) {
			redis_fail(w, j, r, &e);
			if (r)
				freeReplyObject(r);
			return;
		}
		if (r->elements > 0) {
			/* One pipelined HMGET per user. */
			for (size_t i = 0; i < r->elements; i++) {
				char ukey[512];
				snprintf(ukey, sizeof ukey, "%s:user:%s", base, r->element[i]->str);
				redisAppendCommand(
				    rc, "HMGET %s name messages gifts gift_value likes first_seen last_seen",
				    ukey);
			}
			for (size_t i = 0; i < r->elements; i++) {
				redisReply *h = NULL;
				if (redisGetReply(rc, (void **)&h) != REDIS_OK || !h) {
					freeReplyObject(r);
					return redis_fail(w, j, NULL, &e);
				}
				if (i)
					lt_buf_putc(b, ',');
				lt_buf_puts(b, "{\"id\":");
				lt_json_str(b, r->element[i]->str, r->element[i]->len);
				for (int f = 0; h->type == REDIS_REPLY_ARRAY && f < N_USER_FIELDS &&
						(size_t)f < h->elements;
				     f++) {
					redisReply *v = h->element[f];
					lt_buf_printf(b, ",\"%s\":", user_fields[f]);
					if (f == 0)
						jstr(b, v->type == REDIS_REPLY_STRING ? v->str : "");
					else
						num_or_zero(b, v->type == REDIS_REPLY_STRING ? v->str : NULL);
				}
				lt_buf_putc(b, '}');
				freeReplyObject(h);
			}
			lt_buf_puts(b, "],\"source\":\"redis\"}");
			freeReplyObject(r);
			j->status = 200;
			j->ctype = "application/json";
			return;
		}
		freeReplyObject(r);
	}
	PGconn *pg = lt_worker_pg(w, &e);
	if (!pg)
		return pg_fail(w, j, NULL, &e);
	char lim[16];
	snprintf(lim, sizeof lim, "%d", q->limit);
	const char *p[3] = {q->platform, q->room, lim};
	PGresult *pr =
	    PQexecParams(pg, strcmp(q->order, "messages") ? users_by_gift_sql : users_by_messages_sql, 3,
			 NULL, p, NULL, NULL, 0);
	if (PQresultStatus(pr) != PGRES_TUPLES_OK) {
		PQclear(pr);
		return pg_fail(w, j, pg, NULL);
	}
	for (int i = 0; i < PQntuples(pr); i++) {
		if (i)
			lt_buf_putc(b, ',');
		lt_buf_puts(b, "{\"id\":");
		jstr(b, PQgetvalue(pr, i, 0));
		lt_buf_puts(b, ",\"name\":");
		jstr(b, PQgetvalue(pr, i, 1));
		for (int f = 1; f < N_USER_FIELDS; f++)
			lt_buf_printf(b, ",\"%s\":%s", user_fields[f], PQgetvalue(pr, i, f + 1));
		lt_buf_putc(b, '}');
	}
	lt_buf_puts(b, "],\"source\":\"postgres\"}");
	PQclear(pr);
	j->status = 200;
	j->ctype = "application/json";
}

/* ---- sessions --------------------------------------------------------- */

void lt_h_sessions(struct lt_worker *w, struct lt_job *j)
{
	const struct lt_req *q = &j->req;
	struct lt_error e = {0};
	PGconn *pg = lt_worker_pg(w, &e);
	if (!pg)
		return pg_fail(w, j, NULL, &e);
	char since[24], until[24], lim[16];
	ms_text(q->since, since, sizeof since);
	ms_text(upper_of(q), until, sizeof until);
	snprintf(lim, sizeof lim, "%d", q->limit);
	const char *p[5] = {q->platform, q->room, since, until, lim};
	PGresult *pr =
	    PQexecParams(pg,
			 "SELECT id, floor(extract(epoch FROM started_at) * 1000)::bigint, "
			 "coalesce(floor(extract(epoch FROM ended_at) * 1000)::bigint::text, 'null'), "
			 "messages, gifts, gift_value, likes FROM live_sessions "
			 "WHERE platform = $1 AND room_id = $2 "
			 "AND started_at >= to_timestamp($3::bigint / 1000.0) "
			 "AND started_at < to_timestamp($4::bigint / 1000.0) "
			 "ORDER BY started_at DESC LIMIT $5",
			 5, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(pr) != PGRES_TUPLES_OK) {
		PQclear(pr);
		return pg_fail(w, j, pg, NULL);
	}
	struct lt_buf *b = &j->body;
	lt_buf_puts(b, "{\"platform\":");
	jstr(b, q->platform);
	lt_buf_puts(b, ",\"room\":");
	jstr(b, q->room);
	lt_buf_puts(b, ",\"sessions\":[");
	int nt = PQntuples(pr);
	for (int i = 0; i < nt; i++) {
		lt_buf_printf(b,
			      "%s{\"id\":%s,\"started_at\":%s,\"ended_at\":%s,\"messages\":%s,\"gifts\":%s,"
			      "\"gift_value\":%s,\"likes\":%s}",
			      i ? "," : "", PQgetvalue(pr, i, 0), PQgetvalue(pr, i, 1), PQgetvalue(pr, i, 2),
			      PQgetvalue(pr, i, 3), PQgetvalue(pr, i, 4), PQgetvalue(pr, i, 5),
			      PQgetvalue(pr, i, 6));
	}
	lt_buf_printf(b, "],\"count\":%d,\"next_before\":", nt);
	if (nt == q->limit && nt > 0)
		lt_buf_puts(b, PQgetvalue(pr, nt - 1, 1));
	else
		lt_buf_puts(b, "null");
	lt_buf_putc(b, '}');
	PQclear(pr);
	j->status = 200;
	j->ctype = "application/json";
}

/* ---- export ----------------------------------------------------------- */

static const char csv_header[] = "ts,platform,room,type,msg_id,user_id,user_name,content,extra\n";

static void csv_field(struct lt_buf *b, const char *s)
{
	lt_buf_putc(b, '"');
	for (; *s; s++) {
		if (*s == '"')
			lt_buf_putc(b, '"');
		lt_buf_putc(b, *s);
	}
	lt_buf_putc(b, '"');
}

/* Rows go out one at a time (libpq single-row mode): the result is never
 * held in memory, only a bounded queue of 32 KiB chunks waits for the
 * socket. A client that goes away cancels the query. */
void lt_h_export(struct lt_worker *w, struct lt_job *j)
{
	const struct lt_req *q = &j->req;
	struct lt_error e = {0};
	PGconn *pg = lt_worker_pg(w, &e);
	if (!pg)
		return pg_fail(w, j, NULL, &e);
	char since[24], until[24];
	ms_text(q->since, since, sizeof since);
	ms_text(upper_of(q), until, sizeof until);
	const char *p[5] = {q->platform, q->room, since, until, q->type};
	if (!PQsendQueryParams(
		pg,
		"SELECT type, msg_id, user_id, user_name, content, "
		"floor(extract(epoch FROM ts) * 1000)::bigint, extra::text FROM live_messages "
		"WHERE platform = $1 AND room_id = $2 AND ts >= to_timestamp($3::bigint / 1000.0) "
		"AND ts < to_timestamp($4::bigint / 1000.0) AND ($5 = '' OR type = $5) "
		"ORDER BY ts, msg_id",
		5, NULL, p, NULL, NULL, 0) ||
	    !PQsetSingleRowMode(pg))
		return pg_fail(w, j, pg, NULL);
	bool csv = !strcmp(q->format, "csv");
	bool started = false, failed = false;
	struct lt_buf line = LT_BUF_INIT;
	PGresult *r;
	while ((r = PQgetResult(pg)) != NULL) {
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_SINGLE_TUPLE && !failed) {
			if (!started) {
				j->status = 200;
				j->ctype = csv ? "text/csv; charset=utf-8" : "application/x-ndjson";
				snprintf(j->disposition, sizeof j->disposition,
					 "attachment; filename=\"%s-%s.%s\"", q->platform, q->room,
					 q->format);
				lt_worker_stream_begin(w, j);
				if (csv)
					lt_worker_stream_write(w, j, csv_header, sizeof csv_header - 1);
				started = true;
			}
			lt_buf_reset(&line);
			if (csv) {
				lt_buf_printf(&line, "%s,%s,%s,%s,", PQgetvalue(r, 0, 5), q->platform,
					      q->room, PQgetvalue(r, 0, 0));
				csv_field(&line, PQgetvalue(r, 0, 1));
				lt_buf_putc(&line, ',');
				csv_field(&line, PQgetvalue(r, 0, 2));
				lt_buf_putc(&line, ',');
				csv_field(&line, PQgetvalue(r, 0, 3));
				lt_buf_putc(&line, ',');
				csv_field(&line, PQgetvalue(r, 0, 4));
				lt_buf_putc(&line, ',');
				csv_field(&line, PQgetvalue(r, 0, 6));
			} else {
				row_json(&line, q->platform, q->room, r, 0);
			}
			lt_buf_putc(&line, '\n');
			if (lt_worker_stream_write(w, j, line.data, line.len) != LT_OK) {
				failed = true;
				PGcancel *c = PQgetCancel(pg);
				char err[128];
				if (c) {
					PQcancel(c, err, sizeof err);
					PQfreeCancel(c);
				}
			}
		} else if (st == PGRES_FATAL_ERROR && !failed && !started) {
			lt_job_error(j, 503, LT_EDB, "PostgreSQL: %.200s", PQresultErrorMessage(r));
			failed = true;
		} else if (st == PGRES_FATAL_ERROR && started) {
			/* Too late for a status: the stream ends without its last
			 * chunk, so the client sees a broken transfer, not a short
			 * file that looks complete. */
			j->stream_failed = true;
			failed = true;
		}
		PQclear(r);
	}
	lt_buf_free(&line);
	if (!started && !failed) {
		/* No rows: an empty file (a CSV still has its header). */
		j->status = 200;
		j->ctype = csv ? "text/csv; charset=utf-8" : "application/x-ndjson";
		snprintf(j->disposition, sizeof j->disposition, "attachment; filename=\"%s-%s.%s\"",
			 q->platform, q->room, q->format);
		if (csv)
			lt_buf_puts(&j->body, csv_header);
	}
	if (started)
		lt_worker_stream_end(w, j);
}
