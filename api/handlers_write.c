/* SPDX-License-Identifier: MIT */
/*
 * handlers_write: the room list and the endpoints that change something
 * (rooms, login, backup, retention), run on pool workers. Every change is
 * recorded in audit_logs with the actor, the action, the target, the time
 * (now()) and the peer address. Bodies are JSON objects of a fixed shape:
 * unknown keys, wrong types and oversize strings are a 400.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/routes.h"
#include "common/clock.h"
#include "common/json.h"
#include "persister/partition.h"

extern char **environ;

static void jstr(struct lt_buf *b, const char *s)
{
	lt_json_str(b, s ? s : "", s ? strlen(s) : 0);
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

/* ---- rooms ------------------------------------------------------------ */

void lt_h_rooms_list(struct lt_worker *w, struct lt_job *j)
{
	struct lt_error e = {0};
	PGconn *pg = lt_worker_pg(w, &e);
	if (!pg)
		return pg_fail(w, j, NULL, &e);
	char lim[16];
	snprintf(lim, sizeof lim, "%d", j->req.limit);
	const char *p[1] = {lim};
	PGresult *pr = PQexecParams(pg,
				    "SELECT platform, room_id, enabled, coalesce(title, ''), "
				    "coalesce(last_state, ''), coalesce(last_error, ''), "
				    "floor(extract(epoch FROM created_at) * 1000)::bigint "
				    "FROM rooms ORDER BY platform, room_id LIMIT $1",
				    1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(pr) != PGRES_TUPLES_OK) {
		PQclear(pr);
		return pg_fail(w, j, pg, NULL);
	}
	int n = PQntuples(pr);
	/* The fetchers' live state, one pipelined HGETALL per room; rooms are
	 * listed even when Redis is down (state from the table). */
	redisContext *rc = lt_worker_redis(w, &e);
	redisReply **st = calloc((size_t)n + 1, sizeof *st);
	if (rc && st) {
		for (int i = 0; i < n; i++)
			redisAppendCommand(rc, "HGETALL live:{%s:%s}:status", PQgetvalue(pr, i, 0),
					   PQgetvalue(pr, i, 1));
		for (int i = 0; i < n; i++)
			if (redisGetReply(rc, (void **)&st[i]) != REDIS_OK) {
				lt_worker_redis_reset(w);
				break;
			}
	}
	struct lt_buf *b = &j->body;
	lt_buf_puts(b, "{\"rooms\":[");
	for (int i = 0; i < n; i++) {
		redisReply *h = st ? st[i] : NULL;
		const char *state = NULL;
		if (i)
			lt_buf_putc(b, ',');
		lt_buf_puts(b, "{\"platform\":");
		jstr(b, PQgetvalue(pr, i, 0));
		lt_buf_puts(b, ",\"room\":");
		jstr(b, PQgetvalue(pr, i, 1));
		lt_buf_printf(
		    b, ",\"enabled\":%s,\"title\":", PQgetvalue(pr, i, 2)[0] == 't' ? "true" : "false");
		jstr(b, PQgetvalue(pr, i, 3));
		lt_buf_printf(b, ",\"created_at\":%s,\"fetcher\":{", PQgetvalue(pr, i, 6));
		for (size_t k = 0; h && h->type == REDIS_REPLY_ARRAY && k + 1 < h->elements; k += 2) {
			if (k)
				lt_buf_putc(b, ',');
			jstr(b, h->element[k]->str);
			lt_buf_putc(b, ':');
			jstr(b, h->element[k + 1]->str);
			if (!strcmp(h->element[k]->str, "state"))
				state = h->element[k + 1]->str;
		}
		lt_buf_puts(b, "},\"state\":");
		if (!state)
			state = *PQgetvalue(pr, i, 4) ? PQgetvalue(pr, i, 4) : "idle";
		jstr(b, PQgetvalue(pr, i, 2)[0] == 't' ? state : "stopped");
		lt_buf_puts(b, ",\"last_error\":");
		jstr(b, PQgetvalue(pr, i, 5));
		lt_buf_putc(b, '}');
	}
	lt_buf_printf(b, "],\"count\":%d}", n);
	for (int i = 0; st && i < n; i++)
		if (st[i])
			freeReplyObject(st[i]);
	free(st);
	PQclear(pr);
	j->status = 200;
	j->ctype = "application/json";
}

/* Parse the body as a JSON object whose keys are all in allowed. */
static cJSON *body_object(struct lt_job *j, const char *const *allowed)
{
	const struct lt_buf *in = &j->req.body;
	if (in->len == 0) {
		lt_job_error(j, 400, LT_EINVAL, "a JSON object body is required");
		return NULL;
	}
	if (!lt_utf8_valid((const char *)in->data, in->len)) {
		lt_job_error(j, 400, LT_EINVAL, "the body is not valid UTF-8");
		return NULL;
	}
	cJSON *o = cJSON_ParseWithLength((const char *)in->data, in->len);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		lt_job_error(j, 400, LT_EINVAL, "the body must be a JSON object");
		return NULL;
	}
	for (const cJSON *it = o->child; it; it = it->next) {
		bool ok = false;
		for (int i = 0; allowed[i]; i++)
			ok |= it->string && !strcmp(it->string, allowed[i]);
		if (!ok) {
			lt_job_error(j, 400, LT_EINVAL, "unknown key in body: %.64s",
				     it->string ? it->string : "");
			cJSON_Delete(o);
			return NULL;
		}
	}
	return o;
}

void lt_h_rooms_add(struct lt_worker *w, struct lt_job *j)
{
	struct lt_error e = {0};
	const char *title = NULL;
	cJSON *o = NULL;
	static const char *const allowed[] = {"platform", "room", "title", NULL};
	o = body_object(j, allowed);
	if (!o)
		return;
	const cJSON *pl = cJSON_GetObjectItemCaseSensitive(o, "platform");
	const cJSON *rm = cJSON_GetObjectItemCaseSensitive(o, "room");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "title");
	if (!cJSON_IsString(pl) || !lt_route_platform_ok(pl->valuestring)) {
		cJSON_Delete(o);
		return lt_job_error(j, 400, LT_EINVAL, "platform must be bilibili, douyin or kook");
	}
	if (!cJSON_IsString(rm) || !lt_route_room_ok(rm->valuestring)) {
		cJSON_Delete(o);
		return lt_job_error(j, 400, LT_EINVAL, "room must be 1..64 characters of A-Z a-z 0-9 _ -");
	}
	if (t && (!cJSON_IsString(t) || strlen(t->valuestring) > 200 ||
		  !lt_utf8_valid(t->valuestring, strlen(t->valuestring)))) {
		cJSON_Delete(o);
		return lt_job_error(j, 400, LT_EINVAL, "title must be a string of 200 bytes at most");
	}
	snprintf(j->req.platform, sizeof j->req.platform, "%s", pl->valuestring);
	snprintf(j->req.room, sizeof j->req.room, "%s", rm->valuestring);
	title = t ? t->valuestring : NULL;
	PGconn *pg = lt_worker_pg(w, &e);
	if (!pg) {
		cJSON_Delete(o);
		return pg_fail(w, j, NULL, &e);
	}
	const char *p[3] = {j->req.platform, j->req.room, title};
	PGresult *r =
	    PQexecParams(pg,
			 "INSERT INTO rooms (platform, room_id, title, enabled) VALUES ($1, $2, $3, true) "
			 "ON CONFLICT (platform, room_id) DO UPDATE SET enabled = true, "
			 "title = coalesce(EXCLUDED.title, rooms.title), updated_at = now() "
			 "RETURNING (xmax = 0), id",
			 3, NULL, p, NULL, NULL, 0);
	cJSON_Delete(o);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		return pg_fail(w, j, pg, NULL);
	}
	bool created = PQgetvalue(r, 0, 0)[0] == 't';
	char target[128];
	snprintf(target, sizeof target, "%s:%s", j->req.platform, j->req.room);
	lt_job_audit(pg, j, created ? "room.create" : "room.start", target, NULL);
	lt_buf_puts(&j->body, "{\"platform\":");
	jstr(&j->body, j->req.platform);
	lt_buf_puts(&j->body, ",\"room\":");
	jstr(&j->body, j->req.room);
	lt_buf_printf(&j->body, ",\"id\":%s,\"enabled\":true,\"created\":%s}", PQgetvalue(r, 0, 1),
		      created ? "true" : "false");
	PQclear(r);
	j->status = created ? 201 : 200;
	j->ctype = "application/json";
}

void lt_h_rooms_del(struct lt_worker *w, struct lt_job *j)
{
	struct lt_error e = {0};
	PGconn *pg = lt_worker_pg(w, &e);
	if (!pg)
		return pg_fail(w, j, NULL, &e);
	const char *p[2] = {j->req.platform, j->req.room};
	PGresult *r =
	    PQexecParams(pg,
			 j->req.purge ? "DELETE FROM rooms WHERE platform = $1 AND room_id = $2 RETURNING id"
				      : "UPDATE rooms SET enabled = false, updated_at = now() "
					"WHERE platform = $1 AND room_id = $2 RETURNING id",
			 2, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		return pg_fail(w, j, pg, NULL);
	}
	if (PQntuples(r) == 0) {
		PQclear(r);
		return lt_job_error(j, 404, LT_ENOTFOUND, "no such room: %s:%s", j->req.platform,
				    j->req.room);
	}
	PQclear(r);
	char target[128];
	snprintf(target, sizeof target, "%s:%s", j->req.platform, j->req.room);
	lt_job_audit(pg, j, j->req.purge ? "room.delete" : "room.stop", target, NULL);
	lt_buf_puts(&j->body, "{\"platform\":");
	jstr(&j->body, j->req.platform);
	lt_buf_puts(&j->body, ",\"room\":");
	jstr(&j->body, j->req.room);
	lt_buf_printf(&j->body, ",\"enabled\":false,\"deleted\":%s}", j->req.purge ? "true" : "false");
	j->status = 200;
	j->ctype = "application/json";
}

/* ---- login ------------------------------------------------------------ */

void lt_h_login(struct lt_worker *w, struct lt_job *j)
{
	static const char *const allowed[] = {"password", "user", NULL};
	cJSON *o = body_object(j, allowed);
	if (!o)
		return;
	const cJSON *pw = cJSON_GetObjectItemCaseSensitive(o, "password");
	if (!cJSON_IsString(pw) || strlen(pw->valuestring) > 1024) {
		cJSON_Delete(o);
		return lt_job_error(j, 400, LT_EINVAL, "password must be a string of 1024 bytes at most");
	}
	char token[1024];
	int64_t exp = 0;
	int rc = lt_auth_login(lt_worker_auth(w), pw->valuestring, strlen(pw->valuestring),
			       lt_clock_wall_ms(), token, sizeof token, &exp);
	cJSON_Delete(o);
	struct lt_error e = {0};
	PGconn *pg = lt_worker_pg(w, &e);
	if (rc != LT_OK) {
		if (pg)
			lt_job_audit(pg, j, "login.failed", "admin", NULL);
		return lt_job_error(j, 401, LT_EAUTH, "wrong password");
	}
	snprintf(j->req.actor, sizeof j->req.actor, "admin");
	if (pg)
		lt_job_audit(pg, j, "login", "admin", NULL);
	lt_buf_printf(&j->body, "{\"token\":\"%s\",\"token_type\":\"Bearer\",\"expires_at\":%lld}", token,
		      (long long)exp);
	j->status = 200;
	j->ctype = "application/json";
}

/* ---- backup ----------------------------------------------------------- */

static bool plain_ident(const char *s)
{
	if (!*s || strlen(s) > 63)
		return false;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' ||
		      (c != s && *c >= '0' && *c <= '9')))
			return false;
	return true;
}

/* pg_dump of livetap's schema (custom format) into state_dir/backups, run
 * with posix_spawn and an argv (no shell), plus Redis BGSAVE. */
void lt_h_backup(struct lt_worker *w, struct lt_job *j)
{
	struct lt_error e = {0};
	const struct lt_config *cfg = lt_worker_config(w);
	PGconn *pg = lt_worker_pg(w, &e);
	if (!pg)
		return pg_fail(w, j, NULL, &e);
	PGresult *r = PQexec(pg, "SELECT current_schema()");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQgetisnull(r, 0, 0)) {
		PQclear(r);
		return pg_fail(w, j, pg, NULL);
	}
	char schema[64];
	snprintf(schema, sizeof schema, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	if (!plain_ident(schema))
		return lt_job_error(j, 500, LT_EINTERNAL, "unexpected schema name");
	const char *state = lt_config_str(cfg, "state_dir");
	char dir[2048], file[2200], logf[2300], stamp[32], name[64];
	snprintf(dir, sizeof dir, "%s/backups", state && *state ? state : ".");
	(void)mkdir(state && *state ? state : ".", 0700);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return lt_job_error(j, 500, LT_EIO, "cannot create the backup directory");
	lt_clock_iso8601(lt_clock_wall_ms(), stamp);
	for (char *c = stamp; *c; c++)
		if (*c == ':' || *c == '.')
			*c = '-';
	snprintf(name, sizeof name, "livetap-%s.dump", stamp);
	snprintf(file, sizeof file, "%s/%s", dir, name);
	snprintf(logf, sizeof logf, "%s.log", file);
	const char *dsn = lt_config_str(cfg, "pg.dsn");
	char *argv[] = {"pg_dump", "--format=custom", "--no-owner", "--schema", schema, "--file",
			file,	   "--dbname",	      (char *)dsn,  NULL};
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, logf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	pid_t pid;
	int src = posix_spawnp(&pid, "pg_dump", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (src != 0)
		return lt_job_error(j, 500, LT_EIO, "cannot run pg_dump: %s", strerror(src));
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return lt_job_error(j, 500, LT_EIO, "pg_dump failed (see %s.log in the backup directory)",
				    name);
	struct stat sb;
	long long bytes = stat(file, &sb) == 0 ? (long long)sb.st_size : 0;
	char bgsave[128] = "unavailable";
	redisContext *rc = lt_worker_redis(w, &e);
	if (rc) {
		redisReply *rr = redisCommand(rc, "BGSAVE");
		if (rr && (rr->type == REDIS_REPLY_STATUS || rr->type == REDIS_REPLY_ERROR))
			snprintf(bgsave, sizeof bgsave, "%.120s", rr->str);
		if (rr)
			freeReplyObject(rr);
		else
			lt_worker_redis_reset(w);
	}
	char details[256];
	snprintf(details, sizeof details, "{\"file\":\"backups/%s\",\"bytes\":%lld}", name, bytes);
	lt_job_audit(pg, j, "admin.backup", "database", details);
	lt_buf_printf(&j->body, "{\"file\":\"backups/%s\",\"bytes\":%lld,\"redis_bgsave\":", name, bytes);
	jstr(&j->body, bgsave);
	lt_buf_putc(&j->body, '}');
	j->status = 200;
	j->ctype = "application/json";
}

/* ---- retention -------------------------------------------------------- */

void lt_h_retention(struct lt_worker *w, struct lt_job *j)
{
	static const char *const allowed[] = {"days", NULL};
	cJSON *o = body_object(j, allowed);
	if (!o)
		return;
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "days");
	if (!cJSON_IsNumber(d) || d->valuedouble < 1 || d->valuedouble > 36500 ||
	    d->valuedouble != (double)(int)d->valuedouble) {
		cJSON_Delete(o);
		return lt_job_error(j, 400, LT_EINVAL, "days must be an integer in 1..36500");
	}
	int days = (int)d->valuedouble;
	cJSON_Delete(o);
	struct lt_error e = {0};
	PGconn *pg = lt_worker_pg(w, &e);
	if (!pg)
		return pg_fail(w, j, NULL, &e);
	int dropped = 0;
	if (lt_partition_retention(pg, lt_clock_wall_ms(), days, NULL, &dropped, &e) != LT_OK)
		return lt_job_error(j, 503, LT_EDB, "retention failed: %s", e.message);
	char dd[16];
	snprintf(dd, sizeof dd, "%d", days);
	const char *p[1] = {dd};
	PGresult *r =
	    PQexecParams(pg, "DELETE FROM error_logs WHERE ts < now() - make_interval(days => $1::int)", 1,
			 NULL, p, NULL, NULL, 0);
	const char *errs = PQresultStatus(r) == PGRES_COMMAND_OK ? PQcmdTuples(r) : "0";
	char details[128];
	snprintf(details, sizeof details, "{\"days\":%d,\"dropped_partitions\":%d}", days, dropped);
	lt_job_audit(pg, j, "admin.retention", "live_messages", details);
	lt_buf_printf(&j->body, "{\"days\":%d,\"dropped_partitions\":%d,\"error_logs_deleted\":%s}", days,
		      dropped, *errs ? errs : "0");
	PQclear(r);
	j->status = 200;
	j->ctype = "application/json";
}
