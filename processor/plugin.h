/* SPDX-License-Identifier: MIT */
/*
 * plugin: the processor's extension point. Hot words, user statistics,
 * check-in (签到), the fortune draw (抽签) and keyword rules are all plugins.
 *
 * A plugin is a const struct lt_plugin (an ops table). The processor orders
 * the enabled plugins so that every plugin runs after the ones it depends on,
 * and by priority (lower first) among those that are free to go; a plugin
 * whose dependency is missing or disabled is disabled too. A plugin that fails
 * (init, on_message or on_batch returning anything but LT_OK) is disabled,
 * logged and counted (livetap_processor_plugin_failures_total) and the
 * processor carries on without it: a plugin is never fatal.
 *
 * Plugins do not talk to Redis. on_message describes what a message changes
 * by adding ops (lt_ops_*, see below); the processor aggregates identical ops
 * of a batch in C and sends them in the batch's one script call, where each op
 * only counts the messages whose per-message marker was new. So a plugin gets
 * exactly-once for free, as long as everything it does is an op.
 */
#ifndef LT_PLUGIN_H
#define LT_PLUGIN_H

#include <stdint.h>

#include "common/err.h"
#include "common/msg.h"
#include "processor/segment.h"

struct lt_ops;
struct lt_processor;

/* One message as plugins see it. Everything is owned by the processor and
 * valid during the on_message call only. */
struct lt_proc_msg {
	const struct lt_msg *m;
	const char *room;          /* "bilibili:21452505" */
	int index;                 /* position among the room's messages in the batch */
	int64_t ts;                /* m->ts, clamped to [now - 1 day, now] */
	int64_t now_ms;
	const char *json;          /* the normalized JSON form */
	uint32_t json_len;
	/* chat and superchat only: the segmented words, else NULL. Plugins that
	 * run earlier may set blocked[i] to keep word i out of the hot words. */
	const struct lt_segment_words *words;
	uint8_t *blocked;
};

/* What init gets. Strings are owned by the processor and outlive the plugin. */
struct lt_plugin_env {
	const char *pg_dsn;        /* NULL: no PostgreSQL (keyword rules stay empty) */
	int keywords_refresh_ms;   /* how often keyword rules are reloaded */
};

/* After a batch was applied: what the script said for one room. */
struct lt_proc_result {
	const char *room;
	int messages;              /* messages sent for this room */
	int fresh;                 /* of which new (not seen before) */
};

struct lt_plugin {
	const char *name;
	int priority;                      /* lower runs first */
	const char *const *depends_on;     /* NULL-terminated names; NULL = none */
	/* Set up; *state is passed to every hook. Return LT_OK or disable the
	 * plugin (e says why). */
	int (*init)(const struct lt_plugin_env *env, void **state, struct lt_error *e);
	void (*destroy)(void *state);      /* NULL-safe state; may be NULL */
	/* Add ops for one message. May be NULL. */
	int (*on_message)(void *state, struct lt_proc_msg *pm, struct lt_ops *ops);
	/* After Redis answered for a room of a batch. May be NULL. */
	int (*on_batch)(void *state, const struct lt_proc_result *r);
};

/*
 * Ops: what a message changes in Redis. key is relative to the room prefix
 * "live:{ROOM}:" (e.g. "user:123"); ttl_s (> 0) is set on the key when the op
 * applied. Identical ops (same kind, key, field) of one batch become one op
 * with a list of (message, amount) contributions; the script applies the sum
 * over the messages that were new. Strings are copied. The functions return
 * LT_OK or LT_ENOMEM (the batch then fails and is retried).
 */
int lt_ops_hincr(struct lt_ops *o, const struct lt_proc_msg *pm, const char *key, const char *field,
		 int64_t amount, int ttl_s);
/* ZINCRBY key amount member. */
int lt_ops_zincr(struct lt_ops *o, const struct lt_proc_msg *pm, const char *key, const char *member,
		 int64_t amount, int ttl_s);
/* Keep the smallest / largest value of field among new messages. */
int lt_ops_hmin(struct lt_ops *o, const struct lt_proc_msg *pm, const char *key, const char *field,
		int64_t value, int ttl_s);
int lt_ops_hmax(struct lt_ops *o, const struct lt_proc_msg *pm, const char *key, const char *field,
		int64_t value, int ttl_s);
/* HSET key field value if any contributing message is new (the value of the
 * batch's latest contributing message wins). */
int lt_ops_hset(struct lt_ops *o, const struct lt_proc_msg *pm, const char *key, const char *field,
		const char *value, int ttl_s);
/* Set member's score in sorted set key to the value that counter
 * hash_field of hash hash_key has after this batch (when an lt_ops_hincr of
 * this batch changed it): a ranking that mirrors a counter, in one ZADD per
 * batch instead of a ZINCRBY per member. hash_field must not contain ':'.
 * Returns LT_OK, LT_EINVAL or LT_ENOMEM. */
int lt_ops_zmirror(struct lt_ops *o, const struct lt_proc_msg *pm, const char *key, const char *member,
		   const char *hash_key, const char *hash_field, int ttl_s);
/* One hot-word occurrence at pm->ts (bucketed by the script). */
int lt_ops_word(struct lt_ops *o, const struct lt_proc_msg *pm, const char *word, uint32_t len);
/* PUBLISH payload on "live:{ROOM}" (channel NULL) or "live:{ROOM}:channel"
 * if pm is new. */
int lt_ops_publish(struct lt_ops *o, const struct lt_proc_msg *pm, const char *channel, const char *payload,
		   uint32_t len);
/* If pm is new and SET marker NX EX ttl_s succeeds: PUBLISH payload on the
 * room channel. One answer per marker, however often it is asked. */
int lt_ops_once(struct lt_ops *o, const struct lt_proc_msg *pm, const char *marker, int ttl_s,
		const char *payload, uint32_t len);
/* A daily check-in of the user whose hash is key, on day (days since the
 * epoch): count +1 and streak +1 (or reset to 1 after a gap), once per day. */
int lt_ops_checkin(struct lt_ops *o, const struct lt_proc_msg *pm, const char *key, int64_t day, int ttl_s);
/* Session: live_start opens a session (id = its ts), live_end closes it;
 * counters go to the room's current session hash (L3, 2 h). */
int lt_ops_session(struct lt_ops *o, const struct lt_proc_msg *pm, const char *field, int64_t amount);

/* The built-in plugins. */
extern const struct lt_plugin lt_plugin_hotwords;
extern const struct lt_plugin lt_plugin_userstats;
extern const struct lt_plugin lt_plugin_checkin;
extern const struct lt_plugin lt_plugin_fortune;
extern const struct lt_plugin lt_plugin_keywords;

#endif
