/* SPDX-License-Identifier: MIT */
/*
 * pool: the worker threads that talk to Redis and PostgreSQL for
 * livetap-api, so the libwebsockets loop never blocks on them (see api.h).
 *
 * Why threads and not non-blocking hiredis/libpq on the loop: most reads
 * are a handful of commands that take well under a millisecond, but a
 * PostgreSQL fallback, an export, a pg_dump or an Argon2id login can take
 * seconds; with a pool those wait on their own thread while the loop keeps
 * serving every other client, and the handler code stays straight-line.
 * Each worker owns one hiredis and one libpq connection, made on first use
 * and remade after an error. Queues are bounded: a full queue is a 503.
 */
#include <libwebsockets.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "common/redisconn.h"

struct lt_worker {
	struct lt_pool *pool;
	pthread_t thread;
	redisContext *redis;
	PGconn *pg;
};

struct lt_pool {
	pthread_mutex_t mu;
	pthread_cond_t work; /* a job was queued, or stop */
	pthread_cond_t room; /* a stream chunk was taken */
	struct lt_job *qhead, *qtail;
	int qlen, max_queue;
	struct lt_job *dhead, *dtail; /* needing the lws thread's attention */
	bool stop;
	int n;
	struct lt_worker *workers;
	char *redis_url, *pg_dsn;
	int timeout_ms;
	void (*wake)(void *);
	void *wake_ctx;
	const struct lt_config *cfg;
	struct lt_auth *auth;
};

struct lt_job *lt_job_new(void)
{
	struct lt_job *j = calloc(1, sizeof *j);
	if (!j)
		return NULL;
	lt_buf_init(&j->req.body, LT_API_MAX_BODY);
	lt_buf_init(&j->body, 0);
	lt_buf_init(&j->pending, 0);
	j->req.until = INT64_MAX;
	return j;
}

void lt_job_free(struct lt_job *j)
{
	if (!j)
		return;
	lt_buf_free(&j->req.body);
	lt_buf_free(&j->body);
	lt_buf_free(&j->pending);
	for (int i = 0; i < LT_API_STREAM_Q; i++)
		lt_buf_free(&j->chunks[i]);
	free(j);
}

/* Under mu: put j on the attention list once and wake the loop. */
static void notice_locked(struct lt_pool *p, struct lt_job *j)
{
	if (j->noticed)
		return;
	j->noticed = true;
	j->next = NULL;
	if (p->dtail)
		p->dtail->next = j;
	else
		p->dhead = j;
	p->dtail = j;
}

static void *worker_main(void *arg)
{
	struct lt_worker *w = arg;
	struct lt_pool *p = w->pool;
	for (;;) {
		pthread_mutex_lock(&p->mu);
		while (!p->qhead && !p->stop)
			pthread_cond_wait(&p->work, &p->mu);
		if (!p->qhead) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		struct lt_job *j = p->qhead;
		p->qhead = j->next;
		if (!p->qhead)
			p->qtail = NULL;
		p->qlen--;
		bool skip = j->orphaned;
		pthread_mutex_unlock(&p->mu);
		if (!skip)
			j->fn(w, j);
		pthread_mutex_lock(&p->mu);
		j->phase = LT_JOB_DONE;
		j->stream_end = true;
		notice_locked(p, j);
		pthread_mutex_unlock(&p->mu);
		p->wake(p->wake_ctx);
	}
	if (w->redis)
		redisFree(w->redis);
	if (w->pg)
		PQfinish(w->pg);
	return NULL;
}

/* See api.h. */
int lt_pool_start(int n, const char *redis_url, const char *pg_dsn, int timeout_ms, int max_queue,
		  void (*wake)(void *), void *ctx, struct lt_pool **out)
{
	struct lt_pool *p = calloc(1, sizeof *p);
	if (!p)
		return LT_ENOMEM;
	p->workers = calloc((size_t)n, sizeof *p->workers);
	p->redis_url = strdup(redis_url ? redis_url : "");
	p->pg_dsn = strdup(pg_dsn ? pg_dsn : "");
	if (!p->workers || !p->redis_url || !p->pg_dsn) {
		free(p->workers);
		free(p->redis_url);
		free(p->pg_dsn);
		free(p);
		return LT_ENOMEM;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->room, NULL);
	p->timeout_ms = timeout_ms;
	p->max_queue = max_queue;
	p->wake = wake;
	p->wake_ctx = ctx;
	for (int i = 0; i < n; i++) {
		p->workers[i].pool = p;
		if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0)
			break;
		p->n++;
	}
	if (p->n == 0) {
		lt_pool_free(p);
		return LT_ENOMEM;
	}
	*out = p;
	return LT_OK;
}

/* See api.h. */
void lt_pool_stop(struct lt_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	/* Streams waiting for a socket that will not drain any more end now. */
	for (struct lt_job *j = p->qhead; j; j = j->next)
		j->orphaned = true;
	pthread_cond_broadcast(&p->work);
	pthread_cond_broadcast(&p->room);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->n; i++)
		pthread_join(p->workers[i].thread, NULL);
	p->n = 0;
}

/* See api.h. */
void lt_pool_free(struct lt_pool *p)
{
	if (!p)
		return;
	lt_pool_stop(p);
	/* Jobs handed back but never collected belong to closed connections. */
	while (p->dhead) {
		struct lt_job *j = p->dhead;
		p->dhead = j->next;
		if (j->orphaned || !j->wsi) /* closed connections, cache refreshes */
			lt_job_free(j);
	}
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->room);
	free(p->workers);
	free(p->redis_url);
	free(p->pg_dsn);
	free(p);
}

/* See api.h. */
int lt_pool_submit(struct lt_pool *p, struct lt_job *j)
{
	pthread_mutex_lock(&p->mu);
	if (p->qlen >= p->max_queue || p->stop) {
		pthread_mutex_unlock(&p->mu);
		return LT_EAGAIN;
	}
	j->phase = LT_JOB_QUEUED;
	j->next = NULL;
	if (p->qtail)
		p->qtail->next = j;
	else
		p->qhead = j;
	p->qtail = j;
	p->qlen++;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->mu);
	return LT_OK;
}

/* See api.h. Orphaned jobs that are done are freed here, on the lws thread. */
struct lt_job *lt_pool_take(struct lt_pool *p)
{
	for (;;) {
		pthread_mutex_lock(&p->mu);
		struct lt_job *j = p->dhead;
		if (j) {
			p->dhead = j->next;
			if (!p->dhead)
				p->dtail = NULL;
			j->noticed = false;
			j->next = NULL;
		}
		bool gone = j && j->orphaned;
		bool done = j && j->phase == LT_JOB_DONE;
		pthread_mutex_unlock(&p->mu);
		if (!gone)
			return j;
		if (done)
			lt_job_free(j);
	}
}

/* See api.h. */
void lt_pool_release(struct lt_pool *p, struct lt_job *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&p->mu);
	bool back = j->phase != LT_JOB_QUEUED && !j->noticed;
	if (!back) {
		j->orphaned = true;
		pthread_cond_broadcast(&p->room);
	}
	pthread_mutex_unlock(&p->mu);
	if (back)
		lt_job_free(j);
}

/* See api.h. */
bool lt_pool_done(struct lt_pool *p, struct lt_job *j)
{
	pthread_mutex_lock(&p->mu);
	bool d = j->phase == LT_JOB_DONE;
	pthread_mutex_unlock(&p->mu);
	return d;
}

/* See api.h. */
int lt_pool_pop_chunk(struct lt_pool *p, struct lt_job *j, struct lt_buf *out)
{
	int rc;
	pthread_mutex_lock(&p->mu);
	if (j->ccount > 0) {
		*out = j->chunks[j->chead];
		lt_buf_init(&j->chunks[j->chead], 0);
		j->chead = (j->chead + 1) % LT_API_STREAM_Q;
		j->ccount--;
		pthread_cond_broadcast(&p->room);
		rc = 1;
	} else {
		rc = j->stream_end ? -1 : 0;
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* ---- worker side ----------------------------------------------------- */

redisContext *lt_worker_redis(struct lt_worker *w, struct lt_error *e)
{
	if (w->redis && w->redis->err) {
		redisFree(w->redis);
		w->redis = NULL;
	}
	if (!w->redis && lt_redis_connect(w->pool->redis_url, w->pool->timeout_ms, &w->redis, e) != LT_OK)
		return NULL;
	return w->redis;
}

void lt_worker_redis_reset(struct lt_worker *w)
{
	if (w->redis)
		redisFree(w->redis);
	w->redis = NULL;
}

PGconn *lt_worker_pg(struct lt_worker *w, struct lt_error *e)
{
	if (w->pg && PQstatus(w->pg) != CONNECTION_OK) {
		PQreset(w->pg);
		if (PQstatus(w->pg) != CONNECTION_OK) {
			PQfinish(w->pg);
			w->pg = NULL;
		}
	}
	if (!w->pg) {
		char timeout[16];
		snprintf(timeout, sizeof timeout, "%d", (w->pool->timeout_ms + 999) / 1000);
		const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
		const char *vals[] = {w->pool->pg_dsn, timeout, "livetap-api", NULL};
		w->pg = PQconnectdbParams(keys, vals, 1);
		if (!w->pg || PQstatus(w->pg) != CONNECTION_OK) {
			lt_error_set(e, LT_ECONN, "PostgreSQL: %s",
				     w->pg ? PQerrorMessage(w->pg) : "out of memory");
			PQfinish(w->pg);
			w->pg = NULL;
			return NULL;
		}
		PQsetNoticeProcessor(w->pg, NULL, NULL);
		PQclear(PQexec(w->pg, "SET statement_timeout = '30s'"));
	}
	return w->pg;
}

void lt_worker_pg_reset(struct lt_worker *w)
{
	if (w->pg)
		PQfinish(w->pg);
	w->pg = NULL;
}

const struct lt_config *lt_worker_config(struct lt_worker *w)
{
	return w->pool->cfg;
}
void lt_pool_set_config(struct lt_pool *p, const struct lt_config *cfg)
{
	p->cfg = cfg;
}
struct lt_auth *lt_worker_auth(struct lt_worker *w)
{
	return w->pool->auth;
}
void lt_pool_set_auth(struct lt_pool *p, struct lt_auth *a)
{
	p->auth = a;
}

void lt_worker_stream_begin(struct lt_worker *w, struct lt_job *j)
{
	struct lt_pool *p = w->pool;
	pthread_mutex_lock(&p->mu);
	j->streaming = true;
	notice_locked(p, j);
	pthread_mutex_unlock(&p->mu);
	p->wake(p->wake_ctx);
}

/* Move j->pending into the chunk queue, waiting for room. */
static int flush_chunk(struct lt_worker *w, struct lt_job *j)
{
	struct lt_pool *p = w->pool;
	int rc = LT_OK;
	pthread_mutex_lock(&p->mu);
	while (j->ccount == LT_API_STREAM_Q && !j->orphaned && !p->stop)
		pthread_cond_wait(&p->room, &p->mu);
	if (j->orphaned || p->stop) {
		rc = LT_ECLOSED;
	} else {
		int slot = (j->chead + j->ccount) % LT_API_STREAM_Q;
		lt_buf_free(&j->chunks[slot]);
		j->chunks[slot] = j->pending;
		lt_buf_init(&j->pending, 0);
		j->ccount++;
		notice_locked(p, j);
	}
	pthread_mutex_unlock(&p->mu);
	if (rc == LT_OK)
		p->wake(p->wake_ctx);
	return rc;
}

int lt_worker_stream_write(struct lt_worker *w, struct lt_job *j, const void *data, size_t n)
{
	lt_buf_append(&j->pending, data, n);
	if (lt_buf_err(&j->pending))
		return LT_ENOMEM;
	if (j->pending.len >= LT_API_CHUNK)
		return flush_chunk(w, j);
	return LT_OK;
}

void lt_worker_stream_end(struct lt_worker *w, struct lt_job *j)
{
	if (j->pending.len > 0)
		(void)flush_chunk(w, j);
}
