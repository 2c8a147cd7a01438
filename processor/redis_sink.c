/* SPDX-License-Identifier: MIT */
/*
 * redis_sink: one synchronous hiredis connection, the apply script's SHA,
 * and the reconnect backoff. See redis_sink.h.
 */
#include "processor/redis_sink.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "common/buf.h"
#include "common/redisconn.h"

#include "common/clock.h"
#include "common/log.h"
#include "processor/embedded.h"

/* The declared backoff table (ms); the last entry repeats. */
static const int backoff_ms[] = {100, 200, 400, 800, 1600, 3200, 5000};
#define BACKOFF_N ((int)(sizeof(backoff_ms) / sizeof(backoff_ms[0])))

struct lt_redis_sink {
	char *url;
	int timeout_ms;
	redisContext *ctx;
	char sha[41];     /* "" until SCRIPT LOAD answered */
	int failures;     /* consecutive failed connects */
	int64_t next_try; /* monotonic ms */
	uint64_t connects;
	unsigned seed;
	char last_err[160];
	bool tuning_checked; /* check_tuning ran once */
	struct lt_buf out;   /* lt_redis_sink_send's command, in the protocol */
};

int lt_redis_sink_open(const char *url, int timeout_ms, struct lt_redis_sink **out, struct lt_error *e)
{
	struct lt_redis_sink *s;

	if (!url || (strncmp(url, "redis://", 8) != 0 && strncmp(url, "unix://", 7) != 0))
		return lt_error_set(e, LT_EINVAL, "redis url must start with redis:// or unix://");
	s = calloc(1, sizeof(*s));
	if (!s || !(s->url = strdup(url))) {
		free(s);
		return lt_error_set(e, LT_ENOMEM, "out of memory");
	}
	s->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
	s->seed = (unsigned)lt_clock_mono_us();
	lt_buf_init(&s->out, 0);
	*out = s;
	return LT_OK;
}

void lt_redis_sink_close(struct lt_redis_sink *s)
{
	if (!s)
		return;
	if (s->ctx)
		redisFree(s->ctx);
	lt_buf_free(&s->out);
	free(s->url);
	free(s);
}

static void drop(struct lt_redis_sink *s, const char *why)
{
	int b = s->failures < BACKOFF_N ? backoff_ms[s->failures] : backoff_ms[BACKOFF_N - 1];
	int jitter = b / 4 ? (int)(rand_r(&s->seed) % (unsigned)(b / 4)) : 0;

	if (strncmp(s->last_err, why, sizeof(s->last_err) - 1) != 0) {
		lt_warn("redis=down", "redis unavailable: %s (retrying with backoff)", why);
		snprintf(s->last_err, sizeof(s->last_err), "%s", why);
	}
	if (s->ctx) {
		redisFree(s->ctx);
		s->ctx = NULL;
	}
	s->sha[0] = '\0';
	s->failures++;
	s->next_try = lt_clock_mono_ms() + b + jitter;
}

/* Run one command; NULL (and the connection dropped) on a transport error. */
static redisReply *cmd(struct lt_redis_sink *s, int argc, const char **argv, const size_t *lens)
{
	redisReply *r = redisCommandArgv(s->ctx, argc, argv, lens);
	if (!r)
		drop(s, s->ctx->errstr[0] ? s->ctx->errstr : "connection lost");
	return r;
}

static int load_script(struct lt_redis_sink *s)
{
	const char *argv[] = {"SCRIPT", "LOAD", lt_embed_apply_lua};
	size_t lens[] = {6, 4, lt_embed_apply_lua_len};
	redisReply *r = cmd(s, 3, argv, lens);

	if (!r)
		return LT_EREDIS;
	if (r->type != REDIS_REPLY_STRING || r->len != 40) {
		lt_error("redis=script", "SCRIPT LOAD failed: %s", r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
		freeReplyObject(r);
		return LT_EREDIS;
	}
	memcpy(s->sha, r->str, 40);
	s->sha[40] = '\0';
	freeReplyObject(r);
	return LT_OK;
}

/* The encodings that livetap's Redis is configured with (docker-compose,
 * tests/support/servers.sh). A small sorted set is kept as a listpack,
 * whose every ZMSCORE / ZADD scans it and parses each score (strtod for
 * the trend's fractions); hot-word windows and trend sets are updated by
 * every batch, and with Redis's default of 128 entries the trend phase of
 * apply.lua cost 5x as much (bench_processor). Hash buckets of hot words
 * (hundreds of words each) pay the same for HMGET / HSET. Checked
 * once, logged as a hint: CONFIG may be renamed away, and it is the
 * operator's server. */
#define ZSET_LISTPACK_ADVISED 16
#define HASH_LISTPACK_ADVISED 32

static void check_tuning(struct lt_redis_sink *s)
{
	static const char *const names[2] = {"zset-max-listpack-entries", "hash-max-listpack-entries"};
	static const long advised[2] = {ZSET_LISTPACK_ADVISED, HASH_LISTPACK_ADVISED};

	s->tuning_checked = true;
	for (int i = 0; i < 2; i++) {
		redisReply *r = redisCommand(s->ctx, "CONFIG GET %s", names[i]);
		if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->type == REDIS_REPLY_STRING) {
			long v = strtol(r->element[1]->str, NULL, 10);
			if (v > advised[i])
				lt_info("redis=tuning",
					"redis has %s %ld; livetap's hot words cost Redis less CPU with %ld or "
					"less (docs/OPERATIONS.md, \"Redis settings\")",
					names[i], v, advised[i]);
		}
		if (r)
			freeReplyObject(r);
	}
}

static int connect_now(struct lt_redis_sink *s)
{
	struct lt_error e = {0};

	if (s->ctx)
		return LT_OK;
	if (lt_clock_mono_ms() < s->next_try)
		return LT_EREDIS;
	if (lt_redis_connect(s->url, s->timeout_ms, &s->ctx, &e) != LT_OK) {
		s->ctx = NULL;
		drop(s, e.message);
		return LT_EREDIS;
	}
	if (load_script(s) != LT_OK) {
		if (s->ctx)
			drop(s, "SCRIPT LOAD failed");
		return LT_EREDIS;
	}
	if (!s->tuning_checked)
		check_tuning(s);
	if (s->failures)
		lt_info("redis=up", "redis connected again after %d failed attempts", s->failures);
	s->failures = 0;
	s->last_err[0] = '\0';
	s->connects++;
	return LT_OK;
}

/* Error replies that say "not now" rather than "not this": the server is
 * out of memory, read-only, loading, busy with another script, or cannot
 * persist or replicate. Anything else an EVALSHA answers with is the script
 * refusing (or failing on) its input. */
static int transient(const char *err)
{
	static const char *const prefixes[] = {"OOM", "READONLY", "LOADING", "BUSY", "MASTERDOWN", "MISCONF",
					       "NOREPLICAS", "TRYAGAIN", "CLUSTERDOWN", "NOSCRIPT"};

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t n = strlen(prefixes[i]);
		if (strncmp(err, prefixes[i], n) == 0 && (err[n] == ' ' || err[n] == '\0'))
			return 1;
	}
	return 0;
}

/* What an EVALSHA of apply.lua answered: LT_OK with *out filled, LT_EINVAL
 * for a refusal, LT_EREDIS for a transient error or an unexpected reply. */
static int parse_reply(const redisReply *r, struct lt_redis_apply_reply *out)
{
	int rc = LT_EREDIS;

	if (r->type == REDIS_REPLY_ARRAY && r->elements >= 3 && r->element[0]->type == REDIS_REPLY_INTEGER &&
	    r->element[1]->type == REDIS_REPLY_INTEGER && r->element[2]->type == REDIS_REPLY_INTEGER) {
		out->messages = r->element[0]->integer;
		out->fresh = r->element[1]->integer;
		out->applied = r->element[2]->integer;
		for (size_t i = 0; i < LT_REDIS_PHASES; i++)
			out->phase_us[i] = i + 3 < r->elements && r->element[i + 3]->type == REDIS_REPLY_INTEGER
						   ? r->element[i + 3]->integer
						   : 0;
		rc = LT_OK;
	} else if (r->type == REDIS_REPLY_ERROR && !transient(r->str)) {
		/* deterministic: the same call would fail the same way */
		lt_debug("redis=script", "apply script refused its input: %s", r->str);
		rc = LT_EINVAL;
	} else {
		lt_error("redis=script", "apply script failed: %s",
			 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	}
	return rc;
}

/* One bulk string of the protocol: $len, CRLF, the bytes, CRLF. */
static void put_bulk(struct lt_buf *b, const char *p, size_t len)
{
	lt_buf_putc(b, '$');
	lt_buf_i64(b, (int64_t)len);
	lt_buf_append(b, "\r\n", 2);
	lt_buf_append(b, p, len);
	lt_buf_append(b, "\r\n", 2);
}

/* "EVALSHA sha 1" followed by argv, written in the protocol into s->out and
 * queued in hiredis's output buffer, for lt_redis_sink_apply and
 * lt_redis_sink_send alike (hiredis's redisFormatSdsCommandArgv spent ~390
 * instructions an argument in sdscatfmt, 11 % of the processor's
 * instructions in bench_processor; this ~80). LT_EREDIS has dropped the
 * connection. */
static int queue_evalsha(struct lt_redis_sink *s, int argc, const char **argv, const size_t *lens)
{
	struct lt_buf *b = &s->out;
	size_t need = 64 + 40;
	int rc;

	for (int i = 0; i < argc; i++)
		need += lens[i] + 3 + LT_BUF_I64_MAX + 2;
	lt_buf_reset(b);
	if (lt_buf_reserve(b, need) != LT_OK)
		return LT_ENOMEM;
	lt_buf_putc(b, '*');
	lt_buf_i64(b, (int64_t)argc + 3);
	lt_buf_append(b, "\r\n", 2);
	put_bulk(b, "EVALSHA", 7);
	put_bulk(b, s->sha, strlen(s->sha));
	put_bulk(b, "1", 1);
	for (int i = 0; i < argc; i++)
		put_bulk(b, argv[i], lens[i]);
	if (lt_buf_err(b))
		return LT_ENOMEM;
	if (redisAppendFormattedCommand(s->ctx, (const char *)b->data, b->len) != REDIS_OK) {
		rc = s->ctx->err == REDIS_ERR_OOM ? LT_ENOMEM : LT_EREDIS;
		drop(s, s->ctx->errstr[0] ? s->ctx->errstr : "cannot queue a command");
		return rc;
	}
	return LT_OK;
}

int lt_redis_sink_apply(struct lt_redis_sink *s, int argc, const char **argv, const size_t *lens,
			struct lt_redis_apply_reply *out)
{
	redisReply *r = NULL;
	int rc;

	if (connect_now(s) != LT_OK)
		return LT_EREDIS;
	for (int attempt = 0; attempt < 2; attempt++) {
		rc = queue_evalsha(s, argc, argv, lens);
		if (rc != LT_OK)
			return rc;
		/* blocking: writes the queued command out, then reads its reply */
		if (redisGetReply(s->ctx, (void **)&r) != REDIS_OK || !r) {
			drop(s, s->ctx->errstr[0] ? s->ctx->errstr : "connection lost");
			return LT_EREDIS;
		}
		if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 && attempt == 0) {
			freeReplyObject(r);
			r = NULL;
			if (load_script(s) != LT_OK)
				return LT_EREDIS;
			continue;
		}
		break;
	}
	rc = parse_reply(r, out);
	freeReplyObject(r);
	return rc;
}

int lt_redis_sink_retry_ms(const struct lt_redis_sink *s)
{
	int64_t d;

	if (s->ctx)
		return 0;
	d = s->next_try - lt_clock_mono_ms();
	return d > 0 ? (int)d : 0;
}

uint64_t lt_redis_sink_connects(const struct lt_redis_sink *s)
{
	return s->connects;
}

/* EVALSHA argv as lt_redis_sink_apply does, queued and written out; the
 * reply is read by lt_redis_sink_recv. */
int lt_redis_sink_send(struct lt_redis_sink *s, int argc, const char **argv, const size_t *lens)
{
	int done = 0, rc;

	if (connect_now(s) != LT_OK)
		return LT_EREDIS;
	rc = queue_evalsha(s, argc, argv, lens);
	while (rc == LT_OK && !done) {
		if (redisBufferWrite(s->ctx, &done) != REDIS_OK) {
			drop(s, s->ctx->errstr[0] ? s->ctx->errstr : "connection lost");
			rc = LT_EREDIS;
		}
	}
	return rc;
}

int lt_redis_sink_recv(struct lt_redis_sink *s, struct lt_redis_apply_reply *out)
{
	redisReply *r = NULL;
	int rc;

	if (!s->ctx)
		return LT_EREDIS;
	if (redisGetReply(s->ctx, (void **)&r) != REDIS_OK || !r) {
		drop(s, s->ctx->errstr[0] ? s->ctx->errstr : "connection lost");
		return LT_EREDIS;
	}
	if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0)
		rc = LT_EAGAIN; /* lt_redis_sink_apply reloads the script */
	else
		rc = parse_reply(r, out);
	freeReplyObject(r);
	return rc;
}
