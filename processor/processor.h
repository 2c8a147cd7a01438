/* SPDX-License-Identifier: MIT */
/*
 * processor: the core of livetap-processor, testable without NNG.
 *
 * lt_processor_apply takes one lt_wire batch as received from a fetcher,
 * groups its records by room, runs the plugins over each message (hot words,
 * user statistics, check-in, fortune draw, keyword rules, see plugin.h),
 * aggregates their ops (a hash key's field ops become one op) and sends
 * every room's share to Redis as ONE EVALSHA of apply.lua, which sets a
 * per-message marker first and applies only what new messages contributed
 * (exactly once; see apply.lua). Records are checked first (sanitize.h). main.c acks the
 * batch when apply returned LT_OK or LT_EPROTO and keeps it otherwise.
 *
 * Threads: a processor is used by one thread at a time (friso's task and the
 * hiredis context are not shareable); run one processor per thread.
 */
#ifndef LT_PROCESSOR_H
#define LT_PROCESSOR_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct lt_processor;
struct lt_plugin;

struct lt_processor_opts {
	const char *redis_url;        /* required: redis://host:port/db or unix:///path */
	int redis_timeout_ms;         /* connect and command timeout; 0 = 2000 */
	const char *dict_dir;         /* friso lexicon dir; NULL = Debian's */
	const char *pg_dsn;           /* keyword rules' database; NULL = no rules */
	int keywords_refresh_ms;      /* 0 = 30000 */
	const char *disable;          /* comma-separated plugin names to leave out; NULL = none */
	/* more plugins (plugin.h) after the built-in ones, NULL-terminated; the
	 * array and the plugins must outlive the processor. NULL = none. */
	const struct lt_plugin *const *extra_plugins;
};

struct lt_processor_stats {
	uint64_t batches;             /* batches applied (LT_OK) */
	uint64_t messages;            /* records decoded and sent to Redis */
	uint64_t fresh;               /* of which new */
	uint64_t duplicates;          /* of which already seen */
	uint64_t malformed_batches;   /* LT_EPROTO */
	uint64_t malformed_records;   /* undecodable records skipped inside good batches */
	uint64_t invalid_records;     /* decodable records that lt_sanitize_msg refused */
	uint64_t repaired_records;    /* records applied after a repair (sanitize.h) */
	uint64_t refused_records;     /* records apply.lua refused even alone: dropped */
	uint64_t redis_errors;        /* LT_EREDIS returns */
	uint64_t plugin_failures;
	int64_t last_apply_us;        /* duration of the last LT_OK apply */
	/* cumulative time inside apply.lua by phase (µs): markers/stream/publish,
	 * hot-word tick, ops, per-key min/max/set, trend (for benchmarks) */
	uint64_t script_us[5];
};

/* Create a processor: loads the segmenter's dictionary, initialises the
 * plugins (a failing plugin is disabled and logged, not fatal) and connects
 * to Redis (a Redis that is down is not an error here: apply retries with
 * backoff). Returns LT_OK with *out owned by the caller (lt_processor_close),
 * or LT_EINVAL / LT_ENOTFOUND / LT_ENOMEM with e filled in. */
int lt_processor_open(const struct lt_processor_opts *o, struct lt_processor **out, struct lt_error *e);

/*
 * Apply one lt_wire data batch (batch[0..len) is only read during the call).
 * now_ms is the wall clock (hot-word buckets, stream trimming, sessions).
 * Returns:
 *   LT_OK      Redis answered for every room of the batch: ack it;
 *   LT_EPROTO  the batch cannot be decoded (or is not a data batch): it was
 *              counted and logged with its source; ack and drop it;
 *   LT_EREDIS  Redis is down or refused the script: do not ack; the fetcher
 *              sends it again (or the caller retries after
 *              lt_processor_retry_ms). Rooms already applied stay applied;
 *              their markers make the retry a no-op for them.
 *   LT_ENOMEM  out of memory: do not ack.
 * Malformed records inside a good batch (undecodable, or refused by
 * lt_sanitize_msg) are counted and skipped; when apply.lua refuses a room's
 * call, its messages are applied in halves down to single ones and only a
 * message refused alone is dropped (counted in refused_records): the batch
 * is still LT_OK.
 */
int lt_processor_apply(struct lt_processor *p, const uint8_t *batch, size_t len, int64_t now_ms);

/* One batch for lt_processor_apply_many (read only during the call). */
struct lt_processor_input {
	const uint8_t *data;
	size_t len;
};

/*
 * Apply n batches together, as one script call per room for all of them:
 * under load the processor takes every batch already queued on the bus, so
 * per-user and per-word work (and the script call) is paid once for many
 * batches. The rooms' calls are pipelined (up to 8 in flight), so Redis runs
 * one room while the next is built. rcs[i] gets batch i's own result: LT_OK (ack it) or LT_EPROTO
 * (malformed: ack and drop it). Returns LT_OK when Redis answered for all of
 * them, else LT_EREDIS / LT_ENOMEM, and then every rcs[i] that was LT_OK is
 * set to that code (ack none of those; what was already applied is made a
 * no-op on retry by its markers).
 */
int lt_processor_apply_many(struct lt_processor *p, const struct lt_processor_input *in, int n, int64_t now_ms,
			    int *rcs);

/* Advance the hot-word windows of every room seen in the last 31 minutes
 * (one small script call per room); call about once a second. Returns LT_OK
 * or LT_EREDIS. */
int lt_processor_tick(struct lt_processor *p, int64_t now_ms);

/* Milliseconds until the Redis reconnect backoff allows another attempt
 * (0 when connected or due now). Uses the monotonic clock. */
int lt_processor_retry_ms(const struct lt_processor *p);

/* A copy of the counters. */
void lt_processor_stats(const struct lt_processor *p, struct lt_processor_stats *out);

/* Names of the plugins that are enabled, in run order, comma-separated into
 * out (cap bytes, NUL-terminated). For tests and the start-up log. */
void lt_processor_plugins(const struct lt_processor *p, char *out, size_t cap);

/* Free p, its plugins and its Redis connection; accepts NULL. */
void lt_processor_close(struct lt_processor *p);

#endif
