/* SPDX-License-Identifier: MIT */
/*
 * api: what the modules of livetap-api share (internal to api/).
 *
 * A request is parsed and checked on the libwebsockets thread (http.c,
 * routes.c): method, route, path parameters, query parameters, credentials,
 * rate limit. Anything answerable from memory (static files, /metrics, a
 * fresh cached hot-words body, every 4xx) is answered there at once. Anything
 * that needs Redis or PostgreSQL becomes a job (struct lt_job) that a worker
 * thread of the pool (pool.c) runs with its own connections, so a slow query
 * never stalls other clients; the worker hands the finished job back and
 * wakes the event loop with lws_cancel_service(), and the lws thread writes
 * the response from LWS_CALLBACK_HTTP_WRITEABLE. Exports stream: the worker
 * fills a small bounded queue of chunks and waits while it is full.
 *
 * Ownership: a job belongs to the lws thread while it is being built and
 * after it comes back (phase LT_JOB_DONE); to the pool in between. A
 * connection that closes while its job is away only marks the job orphaned;
 * the lws thread frees it when the pool hands it back (never inside the
 * worker, never inside the closing callback of another object).
 */
#ifndef LT_API_H
#define LT_API_H

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/err.h"

#define LT_API_MAX_BODY	 (64 * 1024) /* request bodies */
#define LT_API_MAX_ARGS	 16	     /* query parameters */
#define LT_API_MAX_ARG	 256	     /* bytes of one "k=v" */
#define LT_API_ROOM_MAX	 64	     /* room id characters */
#define LT_API_LIMIT_MAX 1000
#define LT_API_STREAM_Q	 8	     /* export chunks waiting for the socket */
#define LT_API_CHUNK	 (32 * 1024) /* export chunk size */

enum lt_method { LT_M_GET = 1, LT_M_POST, LT_M_DELETE, LT_M_HEAD, LT_M_OTHER };

/* Roles, in increasing power. A read key may read; a write key and the
 * admin token may do everything. */
enum lt_role { LT_ROLE_NONE = 0, LT_ROLE_READ, LT_ROLE_WRITE, LT_ROLE_ADMIN };

/* A checked request: every field here has passed validation. */
struct lt_req {
	int method;
	int route;			/* enum in routes.c */
	char platform[16];		/* bilibili | douyin | kook, or "" */
	char room[LT_API_ROOM_MAX + 1]; /* [A-Za-z0-9_-]{1,64}, or "" */
	char remote[64];		/* peer address */
	char actor[48];			/* "admin", "key:1a2b3c4d" or "anonymous" */
	int role;
	/* query parameters, validated by the route */
	int64_t since, until; /* ms; 0 / INT64_MAX when absent */
	int64_t before;	      /* paging cursor (exclusive upper ts), 0 = none */
	bool has_cursor;      /* messages: cursor=TS-ID, resume after (ts, msg_id) */
	int64_t cursor_ts;
	char cursor_id[160];
	int limit;
	char type[16];
	char window[4];	    /* 1m | 5m | 30m */
	char order[16];	    /* messages | gift_value */
	char format[8];	    /* csv | jsonl */
	bool purge;	    /* DELETE …?purge=true: remove the row */
	struct lt_buf body; /* request body (limit LT_API_MAX_BODY) */
};

enum lt_job_phase { LT_JOB_NEW = 0, LT_JOB_QUEUED, LT_JOB_DONE };

struct lt_worker;
struct lt_job;
typedef void (*lt_job_fn)(struct lt_worker *w, struct lt_job *j);

struct lt_job {
	struct lt_req req;
	lt_job_fn fn;
	/* response, filled by the worker */
	int status;
	const char *ctype;
	struct lt_buf body;
	char disposition[160]; /* Content-Disposition value or "" */
	char cache_key[128];   /* hot-words cache slot to fill, or "" */
	/* lifecycle, under the pool mutex */
	int phase;
	bool orphaned;
	bool noticed; /* already in the done list */
	/* streaming (exports), under the pool mutex */
	bool streaming;
	bool stream_end;
	bool stream_failed; /* worker: the query failed after the headers */
	struct lt_buf chunks[LT_API_STREAM_Q];
	int chead, ccount;
	struct lt_buf pending; /* worker side: bytes not yet a chunk */
	/* lws side */
	void *wsi;
	int64_t start_us;
	struct lt_job *next;
};

/* ---- pool.c ---------------------------------------------------------- */
struct lt_pool;
/* Start n worker threads; wake(ctx) is called (from a worker) whenever a job
 * needs the lws thread's attention. The pool keeps copies of the URLs. */
int lt_pool_start(int n, const char *redis_url, const char *pg_dsn, int timeout_ms, int max_queue,
		  void (*wake)(void *), void *ctx, struct lt_pool **out);
/* Stop the workers (queued jobs of closed connections are skipped, waiting
 * streams end); the pool stays usable for lt_pool_release. NULL is fine. */
void lt_pool_stop(struct lt_pool *p);
/* Stop if needed and free the pool and the jobs it still holds. */
void lt_pool_free(struct lt_pool *p);
/* Queue j (phase NEW). LT_OK, or LT_EAGAIN when the queue is full (j stays
 * the caller's). */
int lt_pool_submit(struct lt_pool *p, struct lt_job *j);
/* The next job needing attention on the lws thread, or NULL. */
struct lt_job *lt_pool_take(struct lt_pool *p);
/* Connection closed: free j now if it is back, else mark it orphaned. */
void lt_pool_release(struct lt_pool *p, struct lt_job *j);
/* Export chunk for the lws thread: 1 = *out got one (the caller frees it),
 * 0 = none yet, -1 = the stream is over. Wakes a waiting worker. */
int lt_pool_pop_chunk(struct lt_pool *p, struct lt_job *j, struct lt_buf *out);
/* Job state, read under the mutex. */
bool lt_pool_done(struct lt_pool *p, struct lt_job *j);
void lt_job_free(struct lt_job *j);
struct lt_job *lt_job_new(void);

/* Worker side: this worker's connections, (re)connected on demand. NULL on
 * failure with e filled. */
redisContext *lt_worker_redis(struct lt_worker *w, struct lt_error *e);
PGconn *lt_worker_pg(struct lt_worker *w, struct lt_error *e);
/* Drop a connection after an error, so the next call reconnects. */
void lt_worker_redis_reset(struct lt_worker *w);
void lt_worker_pg_reset(struct lt_worker *w);
/* Streaming: switch j to a chunked stream (status, ctype already set);
 * append bytes (blocks while the queue is full; LT_ECLOSED once the client is
 * gone); finish. */
void lt_worker_stream_begin(struct lt_worker *w, struct lt_job *j);
int lt_worker_stream_write(struct lt_worker *w, struct lt_job *j, const void *p, size_t n);
void lt_worker_stream_end(struct lt_worker *w, struct lt_job *j);
/* The process settings (read-only, shared). */
const struct lt_config *lt_worker_config(struct lt_worker *w);
void lt_pool_set_config(struct lt_pool *p, const struct lt_config *cfg);
struct lt_auth *lt_worker_auth(struct lt_worker *w);
void lt_pool_set_auth(struct lt_pool *p, struct lt_auth *a);

/* ---- helpers shared by handlers (handlers_common.c) ------------------ */
/* Fill j with an error response: status, then the JSON error body. */
void lt_job_error(struct lt_job *j, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The room as "platform:room" and the key prefix "live:{platform:room}". */
void lt_job_roomkey(const struct lt_job *j, char *out, size_t cap);
/* Record a write in audit_logs (best effort; returns LT_OK or LT_EDB). */
int lt_job_audit(PGconn *pg, const struct lt_job *j, const char *action, const char *target,
		 const char *details_json);

/* The worker handlers (handlers_*.c). */
void lt_h_healthz(struct lt_worker *w, struct lt_job *j);
void lt_h_rooms_list(struct lt_worker *w, struct lt_job *j);
void lt_h_rooms_add(struct lt_worker *w, struct lt_job *j);
void lt_h_rooms_del(struct lt_worker *w, struct lt_job *j);
void lt_h_status(struct lt_worker *w, struct lt_job *j);
void lt_h_messages(struct lt_worker *w, struct lt_job *j);
void lt_h_hotwords(struct lt_worker *w, struct lt_job *j);
void lt_h_users(struct lt_worker *w, struct lt_job *j);
void lt_h_sessions(struct lt_worker *w, struct lt_job *j);
void lt_h_export(struct lt_worker *w, struct lt_job *j);
void lt_h_login(struct lt_worker *w, struct lt_job *j);
void lt_h_backup(struct lt_worker *w, struct lt_job *j);
void lt_h_retention(struct lt_worker *w, struct lt_job *j);

#endif
