/* SPDX-License-Identifier: MIT */
/*
 * redis_sink: the processor's one Redis connection and its apply script.
 *
 * Connects lazily, loads apply.lua with SCRIPT LOAD and calls it with
 * EVALSHA (a NOSCRIPT answer, e.g. after a Redis restart, reloads it and
 * retries once). When Redis is down, calls fail fast with LT_EREDIS and the
 * next connect attempt waits on a backoff table (100 ms doubling to 5 s, with
 * up to 25 % jitter), so a caller never hammers a dead server and never
 * sleeps: it asks lt_redis_sink_retry_ms and waits on its own event source.
 */
#ifndef LT_REDIS_SINK_H
#define LT_REDIS_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct lt_redis_sink;

/* What apply.lua answered: messages it was given, how many were new, how
 * many ops applied. */
#define LT_REDIS_PHASES 5
struct lt_redis_apply_reply {
	long long messages;
	long long fresh;
	long long applied;
	/* time spent in the script's phases (µs, Redis's clock): markers +
	 * stream + publish, hot-word tick, ops, per-key min/max/set, trend */
	long long phase_us[LT_REDIS_PHASES];
};

/* Remember url (redis:// or unix://, as common/redisconn.h reads it; copied)
 * without connecting. Returns LT_OK with *out owned by the caller
 * (lt_redis_sink_close) or LT_EINVAL / LT_ENOMEM with e filled in. */
int lt_redis_sink_open(const char *url, int timeout_ms, struct lt_redis_sink **out, struct lt_error *e);
void lt_redis_sink_close(struct lt_redis_sink *s);

/* EVALSHA apply.lua with argv[0..argc) as its arguments after the numkeys
 * (KEYS[1], ARGV[1], ...), lens giving each length. Returns LT_OK with *r
 * filled; LT_EINVAL when the script answered with an error (it refused or
 * failed on this input: deterministic, the same call fails again; apply.lua
 * refuses bad input with an "LTINVALID" error before its first write);
 * LT_EREDIS when not connected (now or after backoff), on a lost connection
 * or timeout, and on a transient error reply (OOM, READONLY, LOADING, BUSY,
 * ...: the call may succeed later). */
int lt_redis_sink_apply(struct lt_redis_sink *s, int argc, const char **argv, const size_t *lens,
			struct lt_redis_apply_reply *r);

/*
 * Pipelining: send queues one EVALSHA (as lt_redis_sink_apply would, but
 * without waiting) and writes it out; recv reads the oldest reply not read
 * yet. The caller counts what it sent and reads every reply in order.
 * send returns LT_OK, LT_EREDIS (not connected, or the connection was lost:
 * every reply still pending is lost with it) or LT_ENOMEM. recv returns what
 * lt_redis_sink_apply would for that call, plus LT_EAGAIN for NOSCRIPT (the
 * script cache was flushed: send the call again with lt_redis_sink_apply,
 * which reloads it); LT_EREDIS from recv means the connection is gone.
 */
int lt_redis_sink_send(struct lt_redis_sink *s, int argc, const char **argv, const size_t *lens);
int lt_redis_sink_recv(struct lt_redis_sink *s, struct lt_redis_apply_reply *r);

/* Milliseconds until the next connect attempt is allowed (0 = now or
 * connected). */
int lt_redis_sink_retry_ms(const struct lt_redis_sink *s);

/* Number of successful (re)connects so far. */
uint64_t lt_redis_sink_connects(const struct lt_redis_sink *s);

#endif
