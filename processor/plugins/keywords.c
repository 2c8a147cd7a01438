/* SPDX-License-Identifier: MIT */
/*
 * keywords: block and alert rules loaded from PostgreSQL by a background
 * thread; see keywords.h.
 */
#include "processor/plugins/keywords.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/log.h"
#include "processor/plugin.h"

#define MAX_RULES 1024
#define PATTERN_MAX 128

enum { R_BLOCK, R_ALERT };

struct rule {
	long long id;
	int kind;
	char room[96];   /* "" = every room */
	char pattern[PATTERN_MAX + 1];
};

struct rules {
	struct rule *r;
	int n;
};

struct kw {
	char *dsn;
	int refresh_ms;
	pthread_t thread;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	struct rules cur;        /* guarded by mu */
	char lower[LT_MSG_CONTENT_MAX + 1];
};

static atomic_uint_least64_t loads;

uint64_t lt_keywords_loads(void)
{
	return atomic_load(&loads);
}

static void lower_copy(char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[n] = '\0';
}

/* One load. Returns 1 with *out filled, 0 to keep the last rules. */
static int load(struct kw *k, PGconn **conn, struct rules *out)
{
	PGresult *res;
	const char *state;
	int ok = 0;

	if (!*conn || PQstatus(*conn) != CONNECTION_OK) {
		if (*conn)
			PQfinish(*conn);
		/* the DSN (string or URI) expanded, with a bounded connect so that
		 * a black-holed server never holds up shutdown for long */
		const char *const keys[] = {"dbname", "connect_timeout", NULL};
		const char *const vals[] = {k->dsn, "3", NULL};
		*conn = PQconnectdbParams(keys, vals, 1);
		if (PQstatus(*conn) != CONNECTION_OK) {
			char why[256];
			snprintf(why, sizeof(why), "%s", PQerrorMessage(*conn));
			why[strcspn(why, "\n")] = '\0';
			lt_warn("plugin=keywords", "keyword rules: cannot reach PostgreSQL (%s); keeping the last rules", why);
			PQfinish(*conn);
			*conn = NULL;
			return 0;
		}
	}
	res = PQexec(*conn, "SELECT id, room, kind, pattern FROM keyword_rules WHERE enabled ORDER BY id");
	if (PQresultStatus(res) == PGRES_TUPLES_OK) {
		int n = PQntuples(res);
		if (n > MAX_RULES)
			n = MAX_RULES;
		out->r = calloc(n ? (size_t)n : 1, sizeof(*out->r));
		out->n = 0;
		if (out->r) {
			for (int i = 0; i < n; i++) {
				struct rule *r = &out->r[out->n];
				const char *kind = PQgetvalue(res, i, 2), *pat = PQgetvalue(res, i, 3);
				size_t pl = strlen(pat);
				if (pl == 0 || pl > PATTERN_MAX)
					continue;
				r->id = atoll(PQgetvalue(res, i, 0));
				r->kind = strcmp(kind, "alert") == 0 ? R_ALERT : R_BLOCK;
				if (strcmp(kind, "alert") != 0 && strcmp(kind, "block") != 0)
					continue;
				snprintf(r->room, sizeof(r->room), "%s", PQgetisnull(res, i, 1) ? "" : PQgetvalue(res, i, 1));
				lower_copy(r->pattern, pat, pl);
				out->n++;
			}
			ok = 1;
		}
	} else {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		if (state && strcmp(state, "42P01") == 0) { /* undefined_table: no rules yet */
			out->r = NULL;
			out->n = 0;
			ok = 1;
		} else {
			lt_warn("plugin=keywords", "keyword rules: query failed: %s; keeping the last rules",
				PQresultErrorMessage(res));
			PQfinish(*conn);
			*conn = NULL;
		}
	}
	PQclear(res);
	return ok;
}

static void *loader(void *arg)
{
	struct kw *k = arg;
	PGconn *conn = NULL;

	pthread_mutex_lock(&k->mu);
	while (!k->stop) {
		struct rules fresh = {0}, old;
		struct timespec until;
		pthread_mutex_unlock(&k->mu);
		if (load(k, &conn, &fresh)) {
			pthread_mutex_lock(&k->mu);
			old = k->cur;
			k->cur = fresh;
			pthread_mutex_unlock(&k->mu);
			free(old.r);
			atomic_fetch_add(&loads, 1);
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += k->refresh_ms / 1000;
		until.tv_nsec += (long)(k->refresh_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&k->mu);
		while (!k->stop && pthread_cond_timedwait(&k->cv, &k->mu, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&k->mu);
	if (conn)
		PQfinish(conn);
	return NULL;
}

static void kw_destroy(void *state)
{
	struct kw *k = state;

	if (!k)
		return;
	if (k->started) {
		pthread_mutex_lock(&k->mu);
		k->stop = 1;
		pthread_cond_signal(&k->cv);
		pthread_mutex_unlock(&k->mu);
		pthread_join(k->thread, NULL);
	}
	pthread_mutex_destroy(&k->mu);
	pthread_cond_destroy(&k->cv);
	free(k->cur.r);
	free(k->dsn);
	free(k);
}

static int kw_init(const struct lt_plugin_env *env, void **state, struct lt_error *e)
{
	struct kw *k = calloc(1, sizeof(*k));

	if (!k)
		return lt_error_set(e, LT_ENOMEM, "out of memory");
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
	k->refresh_ms = env->keywords_refresh_ms > 0 ? env->keywords_refresh_ms : 30000;
	if (env->pg_dsn && *env->pg_dsn) {
		if (!(k->dsn = strdup(env->pg_dsn))) {
			kw_destroy(k);
			return lt_error_set(e, LT_ENOMEM, "out of memory");
		}
		if (pthread_create(&k->thread, NULL, loader, k) != 0) {
			kw_destroy(k);
			return lt_error_set(e, LT_ENOMEM, "cannot start the keyword rules thread");
		}
		k->started = 1;
	}
	*state = k;
	return LT_OK;
}

static int room_match(const struct rule *r, const char *room)
{
	const char *colon;

	if (!r->room[0] || strcmp(r->room, room) == 0)
		return 1;
	colon = strchr(room, ':');
	return colon && strcmp(r->room, colon + 1) == 0;
}

static int alert(struct lt_ops *o, struct lt_proc_msg *pm, const struct rule *r)
{
	struct lt_buf b = LT_BUF_INIT;
	int rc;

	lt_buf_puts(&b, "{\"v\":1,\"room\":");
	lt_json_str(&b, pm->room, strlen(pm->room));
	lt_buf_printf(&b, ",\"rule\":%lld,\"pattern\":", r->id);
	lt_json_str(&b, r->pattern, strlen(r->pattern));
	lt_buf_puts(&b, ",\"msg_id\":");
	lt_json_str(&b, pm->m->msg_id.p, pm->m->msg_id.len);
	lt_buf_puts(&b, ",\"message\":");
	lt_buf_append(&b, pm->json, pm->json_len);
	lt_buf_putc(&b, '}');
	rc = lt_buf_err(&b);
	if (rc == LT_OK)
		rc = lt_ops_publish(o, pm, "alerts", (const char *)b.data, (uint32_t)b.len);
	lt_buf_free(&b);
	return rc;
}

static int kw_on_message(void *state, struct lt_proc_msg *pm, struct lt_ops *o)
{
	struct kw *k = state;
	const struct lt_msg *m = pm->m;
	int rc = LT_OK, lowered = 0;

	if (!pm->words || !k->started)
		return LT_OK;
	pthread_mutex_lock(&k->mu);
	for (int i = 0; i < k->cur.n && rc == LT_OK; i++) {
		const struct rule *r = &k->cur.r[i];
		if (!room_match(r, pm->room))
			continue;
		if (r->kind == R_BLOCK) {
			for (int w = 0; w < pm->words->n; w++)
				if (strstr(pm->words->w[w].p, r->pattern))
					pm->blocked[w] = 1;
		} else {
			if (!lowered) {
				lower_copy(k->lower, m->content.p, m->content.len);
				lowered = 1;
			}
			if (strstr(k->lower, r->pattern))
				rc = alert(o, pm, r);
		}
	}
	pthread_mutex_unlock(&k->mu);
	return rc;
}

const struct lt_plugin lt_plugin_keywords = {
	.name = "keywords",
	.priority = 10,
	.init = kw_init,
	.destroy = kw_destroy,
	.on_message = kw_on_message,
};
