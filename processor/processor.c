/* SPDX-License-Identifier: MIT */
/*
 * processor: one lt_wire batch in, one apply.lua call per room out.
 *
 * apply: decode the batch header (LT_EPROTO if it is not a data batch), walk
 * its records (one that does not decode or that lt_sanitize_msg refuses is
 * counted and skipped; see sanitize.h), group the messages by room, and per
 * room: render each message's JSON, segment chat text, run the
 * plugins' on_message (which add ops), add the session ops, serialise the
 * aggregated ops into the plan and send KEYS[1] = live:{ROOM}, now,
 * contributions, the message count, the messages' marker sets (as runs,
 * see build_room), (msg_id, json) pairs and the plan (flat arguments, see
 * ops_plan) in one EVALSHA. Ops are
 * aggregated in a hash table keyed by (kind, key, field); each keeps its total
 * and a linked list of (message index, amount) contributions in one shared
 * vector, so that the script can apply the total when all markers are new and
 * the sum over the new ones otherwise. The contributions travel apart from
 * the plan, as one string the script only parses in that second case: the
 * usual all-new batch never pays for decoding them.
 *
 * A call the script refuses (an error reply that is not a transient one: the
 * same call would fail again, and apply.lua refuses bad input before its
 * first write) is applied again in halves, down to single messages; only a
 * message refused alone is dropped, so one bad record never blocks its batch.
 */
#include "processor/processor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/metrics.h"
#include "common/wire.h"
#include "processor/plugin.h"
#include "processor/redis_sink.h"
#include "processor/sanitize.h"
#include "processor/segment.h"

#define MAX_PLUGINS 16
#define MAX_PER_CALL 4096 /* messages per script call: keeps each call short (others wait while it runs) */
#define MAX_ROOMS 4096            /* rooms remembered for the tick */
#define PIPELINE_MAX 8            /* script calls in flight at once */
#define PLAN_SAFE (1LL << 53)     /* numbers beyond are not exact in Lua */
#define ROOM_IDLE_MS (31 * 60000) /* forget a room after this long */
#define ROOM_KEY_MAX (16 + LT_MSG_ROOM_MAX)
#define TS_PAST_MS (24 * 3600000LL)
#define SEEN_SET_MS 600000 /* messages' markers are grouped by 10 minutes of ts */

enum op_kind {
	K_HINCR,
	K_ZINCR,
	K_HMIN,
	K_HMAX,
	K_HSET,
	K_WORD,
	K_PUB,
	K_ONCE,
	K_CHECKIN,
	K_SESS,
	K_SESS_START,
	K_SESS_END,
	K_ZMIRROR,
};
static const char *const kind_name[] = {"hincr", "zincr", "hmin", "hmax", "hset", "word",
					"pub", "once", "checkin", "sess", "sess_start", "sess_end", "zmirror"};

struct op {
	uint8_t kind;
	int ttl;
	const char *key;   /* arena */
	const char *field; /* arena */
	int64_t total;
	const char *extra; /* arena; hset value or payload */
	uint32_t extra_len;
	int32_t head, tail; /* contributions */
	uint32_t hash;
	int32_t gnext;      /* next op of the same hash group, -1 = last */
};

/* The hash ops (hincr, hmin, hmax, hset) of one key, and the zmirrors that
 * read one of its counters: the plan carries them as ONE "hash" op, so the
 * script reads and writes each key once with no per-field bookkeeping. */
struct hgroup {
	const char *key; /* arena */
	uint32_t hash;
	int ttl;         /* the largest of its ops' */
	int32_t head, tail;   /* field ops */
	int32_t mhead, mtail; /* zmirror ops */
};

struct contrib {
	int32_t idx;
	int32_t next;
	int64_t amt;
};

struct lt_ops {
	struct op *ops;
	size_t n, cap;
	struct contrib *c;
	size_t nc, capc;
	int32_t *table; /* op index + 1, 0 = empty */
	size_t tcap;
	struct hgroup *g;
	size_t ng, capg;
	int32_t *gtable; /* group index + 1, 0 = empty */
	size_t gtcap;
	struct lt_arena arena;
	int err;
};

struct plug {
	const struct lt_plugin *pl;
	void *state;
	int enabled;
	struct lt_series *failures;
};

/* One room's script call in a pipeline: items[from..to) and its result. */
struct call {
	size_t from, to;
	int rc;
};

/* One decoded message of the batch. */
struct item {
	struct lt_msg m;
	char room[ROOM_KEY_MAX];
	char synth[17];
	uint32_t order;
};

struct room_seen {
	char room[ROOM_KEY_MAX];
	int64_t last;
};

struct lt_processor {
	struct lt_segment *seg;
	struct lt_redis_sink *sink;
	struct plug plugs[MAX_PLUGINS];
	int nplugs;
	struct lt_plugin_env env;
	char *pg_dsn;
	struct lt_ops ops;
	struct lt_arena fix; /* repaired strings of the records being applied */
	struct item *items;
	size_t nitems, capitems;
	struct lt_buf json;  /* the room's messages' JSON, back to back */
	uint32_t *json_off;
	size_t capjson;
	struct lt_buf plan;     /* the plan's numbers, as text */
	struct lt_buf contribs; /* the ops' contributions, ARGV[2] */
	char key[ROOM_KEY_MAX + 8], nowtxt[24], ntxt[24]; /* KEYS[1], ARGV[1], ARGV[3] */
	const char **argv;
	size_t *lens;
	size_t capargv;
	struct lt_buf sets;  /* the messages' marker sets, as runs: ARGV[4] */
	struct lt_segment_words words;
	uint8_t blocked[LT_SEGMENT_MAX_WORDS];
	struct room_seen *rooms;
	size_t nrooms;
	struct call *calls;
	size_t capcalls;
	struct lt_processor_stats st;
	struct {
		struct lt_series *batches, *messages, *dups, *bad_batch, *bad_record, *invalid, *refused, *repaired,
			*redis_err, *latency;
	} m;
};

static const struct lt_plugin *const builtin[] = {
	&lt_plugin_keywords, &lt_plugin_hotwords, &lt_plugin_userstats, &lt_plugin_checkin, &lt_plugin_fortune,
};

/* ---- ops ---------------------------------------------------------------- */

static uint32_t fnv(uint32_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return (h ^ 0xff) * 16777619u;
}

static void ops_reset(struct lt_ops *o)
{
	o->n = 0;
	o->nc = 0;
	o->ng = 0;
	o->err = LT_OK;
	if (o->table)
		memset(o->table, 0, o->tcap * sizeof(*o->table));
	if (o->gtable)
		memset(o->gtable, 0, o->gtcap * sizeof(*o->gtable));
	lt_arena_reset(&o->arena);
}

static void ops_free(struct lt_ops *o)
{
	free(o->ops);
	free(o->c);
	free(o->table);
	free(o->g);
	free(o->gtable);
	lt_arena_free(&o->arena);
}

static int grouped(int kind)
{
	return kind == K_HINCR || kind == K_HMIN || kind == K_HMAX || kind == K_HSET || kind == K_ZMIRROR;
}

/* Append op i to the group of hash key (created if new). */
static int group_add(struct lt_ops *o, size_t i, const char *key)
{
	uint32_t h = fnv(2166136261u, key);
	struct op *op = &o->ops[i];
	struct hgroup *g = NULL;
	size_t j;

	if ((o->ng + 1) * 2 > o->gtcap) {
		size_t ncap = o->gtcap ? o->gtcap * 2 : 1024;
		int32_t *t = calloc(ncap, sizeof(*t));
		if (!t)
			return LT_ENOMEM;
		for (size_t k = 0; k < o->ng; k++) {
			j = o->g[k].hash & (ncap - 1);
			while (t[j])
				j = (j + 1) & (ncap - 1);
			t[j] = (int32_t)k + 1;
		}
		free(o->gtable);
		o->gtable = t;
		o->gtcap = ncap;
	}
	j = h & (o->gtcap - 1);
	while (o->gtable[j]) {
		struct hgroup *c = &o->g[o->gtable[j] - 1];
		if (c->hash == h && strcmp(c->key, key) == 0) {
			g = c;
			break;
		}
		j = (j + 1) & (o->gtcap - 1);
	}
	if (!g) {
		if (o->ng == o->capg) {
			size_t ncap = o->capg ? o->capg * 2 : 512;
			struct hgroup *n = realloc(o->g, ncap * sizeof(*n));
			if (!n)
				return LT_ENOMEM;
			o->g = n;
			o->capg = ncap;
		}
		g = &o->g[o->ng];
		g->key = op->kind == K_ZMIRROR ? lt_arena_strndup(&o->arena, key, strlen(key)) : op->key;
		if (!g->key)
			return LT_ENOMEM;
		g->hash = h;
		g->ttl = 0;
		g->head = g->tail = g->mhead = g->mtail = -1;
		o->gtable[j] = (int32_t)o->ng + 1;
		o->ng++;
	}
	if (op->kind == K_ZMIRROR) {
		if (g->mtail >= 0)
			o->ops[g->mtail].gnext = (int32_t)i;
		else
			g->mhead = (int32_t)i;
		g->mtail = (int32_t)i;
	} else {
		if (g->tail >= 0)
			o->ops[g->tail].gnext = (int32_t)i;
		else
			g->head = (int32_t)i;
		g->tail = (int32_t)i;
		if (op->ttl > g->ttl)
			g->ttl = op->ttl;
	}
	return LT_OK;
}

static int ops_grow_table(struct lt_ops *o)
{
	size_t ncap = o->tcap ? o->tcap * 2 : 1024;
	int32_t *t = calloc(ncap, sizeof(*t));

	if (!t)
		return LT_ENOMEM;
	for (size_t i = 0; i < o->n; i++) {
		size_t j = o->ops[i].hash & (ncap - 1);
		if (o->ops[i].kind == K_PUB || o->ops[i].kind == K_ONCE || o->ops[i].kind == K_SESS_START ||
		    o->ops[i].kind == K_SESS_END)
			continue;
		while (t[j])
			j = (j + 1) & (ncap - 1);
		t[j] = (int32_t)i + 1;
	}
	free(o->table);
	o->table = t;
	o->tcap = ncap;
	return LT_OK;
}

static int contrib_add(struct lt_ops *o, struct op *op, int idx, int64_t amt)
{
	struct contrib *c;

	if (o->nc == o->capc) {
		size_t ncap = o->capc ? o->capc * 2 : 4096;
		struct contrib *g = realloc(o->c, ncap * sizeof(*g));
		if (!g)
			return LT_ENOMEM;
		o->c = g;
		o->capc = ncap;
	}
	c = &o->c[o->nc];
	c->idx = idx;
	c->amt = amt;
	c->next = -1;
	if (op->tail >= 0)
		o->c[op->tail].next = (int32_t)o->nc;
	else
		op->head = (int32_t)o->nc;
	op->tail = (int32_t)o->nc;
	o->nc++;
	return LT_OK;
}

/* Find or add the op (kind, key, field) and record pm's contribution. */
static int ops_add(struct lt_ops *o, const struct lt_proc_msg *pm, int kind, const char *key, const char *field,
		   int64_t amount, int ttl, const char *extra, uint32_t extra_len, const char *group_key)
{
	int aggregate = !(kind == K_PUB || kind == K_ONCE || kind == K_SESS_START || kind == K_SESS_END);
	uint32_t h = fnv(fnv(2166136261u ^ (uint32_t)kind, key), field);
	struct op *op = NULL;
	size_t j = 0;

	if (o->err)
		return o->err;
	if (aggregate) {
		if ((o->n + 1) * 2 > o->tcap && ops_grow_table(o) != LT_OK)
			return o->err = LT_ENOMEM;
		j = h & (o->tcap - 1);
		while (o->table[j]) {
			struct op *c = &o->ops[o->table[j] - 1];
			if (c->hash == h && c->kind == kind && strcmp(c->key, key) == 0 && strcmp(c->field, field) == 0) {
				op = c;
				break;
			}
			j = (j + 1) & (o->tcap - 1);
		}
	}
	if (!op) {
		if (o->n == o->cap) {
			size_t ncap = o->cap ? o->cap * 2 : 1024;
			struct op *g = realloc(o->ops, ncap * sizeof(*g));
			if (!g)
				return o->err = LT_ENOMEM;
			o->ops = g;
			o->cap = ncap;
		}
		op = &o->ops[o->n];
		memset(op, 0, sizeof(*op));
		op->kind = (uint8_t)kind;
		op->ttl = ttl;
		op->hash = h;
		op->head = op->tail = op->gnext = -1;
		op->key = lt_arena_strndup(&o->arena, key, strlen(key));
		op->field = lt_arena_strndup(&o->arena, field, strlen(field));
		if (!op->key || !op->field)
			return o->err = LT_ENOMEM;
		op->total = amount;
		if (aggregate)
			o->table[j] = (int32_t)o->n + 1;
		o->n++;
		if (grouped(kind) && group_add(o, o->n - 1, kind == K_ZMIRROR ? group_key : key) != LT_OK)
			return o->err = LT_ENOMEM;
	} else {
		switch (kind) {
		case K_HMIN:
			if (amount < op->total)
				op->total = amount;
			break;
		case K_HMAX:
			if (amount > op->total)
				op->total = amount;
			break;
		case K_HSET:
		case K_CHECKIN:
			break;
		default:
			/* saturate: apply.lua refuses a total beyond 2^53 anyway */
			if (__builtin_add_overflow(op->total, amount, &op->total))
				op->total = amount < 0 ? INT64_MIN : INT64_MAX;
		}
	}
	if (extra) {
		char *x = lt_arena_alloc(&o->arena, extra_len + 1);
		if (!x)
			return o->err = LT_ENOMEM;
		memcpy(x, extra, extra_len);
		x[extra_len] = '\0';
		op->extra = x;
		op->extra_len = extra_len;
	}
	if (contrib_add(o, op, pm->index, amount) != LT_OK)
		return o->err = LT_ENOMEM;
	return LT_OK;
}

int lt_ops_hincr(struct lt_ops *o, const struct lt_proc_msg *pm, const char *key, const char *field,
		 int64_t amount, int ttl_s)
{
	return ops_add(o, pm, K_HINCR, key, field, amount, ttl_s, NULL, 0, NULL);
}

int lt_ops_zincr(struct lt_ops *o, const struct lt_proc_msg *pm, const char *key, const char *member,
		 int64_t amount, int ttl_s)
{
	return ops_add(o, pm, K_ZINCR, key, member, amount, ttl_s, NULL, 0, NULL);
}

int lt_ops_hmin(struct lt_ops *o, const struct lt_proc_msg *pm, const char *key, const char *field,
		int64_t value, int ttl_s)
{
	return ops_add(o, pm, K_HMIN, key, field, value, ttl_s, NULL, 0, NULL);
}

int lt_ops_hmax(struct lt_ops *o, const struct lt_proc_msg *pm, const char *key, const char *field,
		int64_t value, int ttl_s)
{
	return ops_add(o, pm, K_HMAX, key, field, value, ttl_s, NULL, 0, NULL);
}

int lt_ops_hset(struct lt_ops *o, const struct lt_proc_msg *pm, const char *key, const char *field,
		const char *value, int ttl_s)
{
	return ops_add(o, pm, K_HSET, key, field, 1, ttl_s, value, (uint32_t)strlen(value), NULL);
}

int lt_ops_word(struct lt_ops *o, const struct lt_proc_msg *pm, const char *word, uint32_t len)
{
	char bucket[24], w[LT_SEGMENT_WORD_MAX + 1];

	if (len > LT_SEGMENT_WORD_MAX || len == 0)
		return LT_OK;
	memcpy(w, word, len);
	w[len] = '\0';
	lt_buf_fmt_i64(bucket, pm->ts / 10000);
	return ops_add(o, pm, K_WORD, bucket, w, 1, 0, NULL, 0, NULL);
}

int lt_ops_publish(struct lt_ops *o, const struct lt_proc_msg *pm, const char *channel, const char *payload,
		   uint32_t len)
{
	return ops_add(o, pm, K_PUB, channel ? channel : "", "", 1, 0, payload, len, NULL);
}

int lt_ops_once(struct lt_ops *o, const struct lt_proc_msg *pm, const char *marker, int ttl_s,
		const char *payload, uint32_t len)
{
	return ops_add(o, pm, K_ONCE, marker, "", 1, ttl_s, payload, len, NULL);
}

int lt_ops_checkin(struct lt_ops *o, const struct lt_proc_msg *pm, const char *key, int64_t day, int ttl_s)
{
	char f[LT_BUF_I64_MAX];

	lt_buf_fmt_i64(f, day);
	return ops_add(o, pm, K_CHECKIN, key, f, day, ttl_s, NULL, 0, NULL);
}

int lt_ops_zmirror(struct lt_ops *o, const struct lt_proc_msg *pm, const char *key, const char *member,
		   const char *hash_key, const char *hash_field, int ttl_s)
{
	if (strchr(hash_field, ':'))
		return LT_EINVAL;
	return ops_add(o, pm, K_ZMIRROR, key, member, 0, ttl_s, hash_field, (uint32_t)strlen(hash_field), hash_key);
}

int lt_ops_session(struct lt_ops *o, const struct lt_proc_msg *pm, const char *field, int64_t amount)
{
	return ops_add(o, pm, K_SESS, "", field, amount, 0, NULL, 0, NULL);
}

static void plan_contribs(const struct lt_ops *o, const struct op *op, struct lt_buf *cout)
{
	for (int32_t c = op->head; c >= 0; c = o->c[c].next) {
		if (c != op->head)
			lt_buf_putc(cout, ',');
		lt_buf_i64(cout, o->c[c].idx);
		lt_buf_putc(cout, ':');
		lt_buf_i64(cout, o->c[c].amt);
	}
	lt_buf_putc(cout, ';');
}

/*
 * The plan: flat EVALSHA arguments, read by apply.lua in place (no decode),
 * after the messages' (msg_id, json) pairs, in three sections:
 *   nw, then per word op: bucket, word, total
 *   no, then per other op: kind, key, field, total, ttl, extra ("" if none)
 *   ng, then per hash key: key, shape, its fields' values, its mirrors'
 *       members (those that are not the key's id, see mirror_from); the
 *       shape (ops_shape) names the fields and mirrors
 * A hash key carries every hash op of that key and the zmirrors that read
 * one of its counters, so the script reads and writes each key once. What
 * is the same for every user of a plugin (field names and kinds, mirrors'
 * sorted sets, ttls) travels as one argument, the shape, which the script
 * reads once per call and distinct shape: each argument costs Redis about
 * 900 instructions (parsed, made an object and a Lua string), about what
 * cjson.decode spent per JSON value, and a user's hash took 19 of them.
 * Words come first and the other ops keep their order: an op's effect
 * depends only on the ops of its own section before it. Strings go as they
 * are (the sanitizer made them valid UTF-8, which the JSON plan carried
 * unchanged), numbers as decimal integers. The contributions (*cout): per
 * op, and per field of a hash key, in that order, "idx:amt,idx:amt,...;"
 * (apply.lua parses them only when some marker was not new).
 *
 * apply.lua trusts the plan's values, so they are checked here: a number
 * beyond 2^53 (not exact in a Lua double; Redis would render it as
 * "4.6116860184273879e+18" and HINCRBY refuse it half-way through the
 * script, after the markers were set) or a once op without a ttl makes the
 * plan LT_EINVAL, which the caller treats like a refusal by the script:
 * it applies the call's messages in halves and drops only the culprit.
 */

/* Where zmirror op's member starts in its hash key g->key, when the member
 * is the key's id (the key is "<kind>:<member>", as user:UID is for the
 * member UID): the script then takes the member from the key and the plan
 * saves an argument per key. 0 when the member must be passed. */
static size_t mirror_from(const struct hgroup *g, const struct op *op)
{
	size_t kl = strlen(g->key), ml = strlen(op->field);

	if (ml == 0 || ml + 1 >= kl || g->key[kl - ml - 1] != ':' || memcmp(g->key + kl - ml, op->field, ml) != 0)
		return 0;
	return kl - ml;
}

/* Arguments the plan of o takes (after the messages' arguments). */
static size_t ops_plan_args(const struct lt_ops *o)
{
	size_t n = 3 + 2 * o->ng; /* nw, no, ng; per key: key, shape */

	for (size_t i = 0; i < o->n; i++) {
		const struct op *op = &o->ops[i];
		if (op->kind != K_ZMIRROR)
			n += op->kind == K_WORD ? 3 : grouped(op->kind) ? 1 : 6;
	}
	for (size_t i = 0; i < o->ng; i++)
		for (int32_t j = o->g[i].mhead; j >= 0; j = o->ops[j].gnext)
			n += mirror_from(&o->g[i], &o->ops[j]) == 0;
	return n;
}

/* Bytes every shape of o takes at most (see ops_shape). */
static size_t ops_shape_bytes(const struct lt_ops *o)
{
	size_t n = 0;

	for (size_t i = 0; i < o->ng; i++)
		n += 3 * (LT_BUF_I64_MAX + 1);
	for (size_t i = 0; i < o->n; i++) {
		const struct op *op = &o->ops[i];
		if (op->kind == K_ZMIRROR)
			n += op->extra_len + strlen(op->key) + 2 + 2 * (LT_BUF_I64_MAX + 1);
		else if (grouped(op->kind))
			n += strlen(op->field) + 3;
	}
	return n;
}

/* Argument *k is s[0..len). */
static void plan_str(const char **argv, size_t *lens, size_t *k, const char *s, size_t len)
{
	argv[*k] = s;
	lens[*k] = len;
	(*k)++;
}

/* Argument *k is v in decimal, kept in nums (reserved: it never moves). */
static void plan_i64(struct lt_buf *nums, const char **argv, size_t *lens, size_t *k, int64_t v)
{
	size_t at = nums->len;

	lt_buf_i64(nums, v);
	nums->len++; /* keep the NUL: the next number starts after it */
	plan_str(argv, lens, k, (const char *)nums->data + at, nums->len - 1 - at);
}

/* Append s and its NUL to the shape being written. */
static void shape_put(struct lt_buf *b, const char *s, size_t len)
{
	lt_buf_append(b, s, len);
	lt_buf_append(b, "", 1);
}

static void shape_i64(struct lt_buf *b, int64_t v)
{
	char t[LT_BUF_I64_MAX];

	shape_put(b, t, lt_buf_fmt_i64(t, v));
}

/*
 * The shape of hash key g, appended to b: NUL-terminated elements ttl, nf,
 * nf x (field, k), nm, nm x (hash field, sorted set, ttl, from), with k =
 * "i" (hincr: value = total), "n" / "x" (hmin / hmax: value = the extreme)
 * or "s" (hset: value = the string); a mirror sets the member's score to the
 * counter field's new value. from: 0 when the member is passed as an
 * argument, else the member is the hash key from that byte on (see
 * mirror_from: "5" for user:UID, the same for every user, so the shape
 * stays shared). Names hold no NUL (they are C strings).
 */
static void ops_shape(const struct lt_ops *o, const struct hgroup *g, struct lt_buf *b)
{
	static const char hkind[][2] = {[K_HINCR] = "i", [K_HMIN] = "n", [K_HMAX] = "x", [K_HSET] = "s"};
	int64_t nf = 0, nm = 0;

	for (int32_t j = g->head; j >= 0; j = o->ops[j].gnext)
		nf++;
	for (int32_t j = g->mhead; j >= 0; j = o->ops[j].gnext)
		nm++;
	shape_i64(b, g->ttl);
	shape_i64(b, nf);
	for (int32_t j = g->head; j >= 0; j = o->ops[j].gnext) {
		const struct op *op = &o->ops[j];
		shape_put(b, op->field, strlen(op->field));
		shape_put(b, hkind[op->kind], 1);
	}
	shape_i64(b, nm);
	for (int32_t j = g->mhead; j >= 0; j = o->ops[j].gnext) {
		const struct op *op = &o->ops[j];
		shape_put(b, op->extra, op->extra_len);
		shape_put(b, op->key, strlen(op->key));
		shape_i64(b, op->ttl);
		shape_i64(b, (int64_t)mirror_from(g, op));
	}
}

/*
 * Write the plan of o into argv / lens from index 0 (room for
 * ops_plan_args(o) entries), its numbers and shapes into nums and the
 * contributions into cout. The strings stay o's (valid until ops_reset).
 * Returns LT_OK, LT_EINVAL or the buffers' sticky error.
 */
static int ops_plan(const struct lt_ops *o, struct lt_buf *nums, struct lt_buf *cout, const char **argv,
		    size_t *lens)
{
	size_t k = 0, nw = 0, no = 0;
	const uint8_t *base;

	for (size_t i = 0; i < o->n; i++) {
		const struct op *op = &o->ops[i];
		if (op->total > PLAN_SAFE || op->total < -PLAN_SAFE || op->ttl < 0 || (op->kind == K_ONCE && op->ttl == 0))
			return LT_EINVAL;
		if (op->kind == K_WORD)
			nw++;
		else if (!grouped(op->kind))
			no++;
	}

	lt_buf_reset(nums);
	lt_buf_reset(cout);
	/* every number at most 20 characters and its NUL, then the shapes */
	if (lt_buf_reserve(nums, (ops_plan_args(o) + 1) * (LT_BUF_I64_MAX + 1) + ops_shape_bytes(o)) != LT_OK)
		return lt_buf_err(nums);
	base = nums->data;
	plan_i64(nums, argv, lens, &k, (int64_t)nw);
	for (size_t i = 0; i < o->n; i++) {
		const struct op *op = &o->ops[i];
		if (op->kind != K_WORD)
			continue;
		plan_str(argv, lens, &k, op->key, strlen(op->key));
		plan_str(argv, lens, &k, op->field, strlen(op->field));
		plan_i64(nums, argv, lens, &k, op->total);
		plan_contribs(o, op, cout);
	}
	plan_i64(nums, argv, lens, &k, (int64_t)no);
	for (size_t i = 0; i < o->n; i++) {
		const struct op *op = &o->ops[i];
		if (op->kind == K_WORD || grouped(op->kind))
			continue;
		plan_str(argv, lens, &k, kind_name[op->kind], strlen(kind_name[op->kind]));
		plan_str(argv, lens, &k, op->key, strlen(op->key));
		plan_str(argv, lens, &k, op->field, strlen(op->field));
		plan_i64(nums, argv, lens, &k, op->total);
		plan_i64(nums, argv, lens, &k, op->ttl);
		plan_str(argv, lens, &k, op->extra ? op->extra : "", op->extra ? op->extra_len : 0);
		plan_contribs(o, op, cout);
	}
	plan_i64(nums, argv, lens, &k, (int64_t)o->ng);
	for (size_t i = 0; i < o->ng; i++) {
		const struct hgroup *g = &o->g[i];
		size_t at = nums->len;
		plan_str(argv, lens, &k, g->key, strlen(g->key));
		ops_shape(o, g, nums);
		plan_str(argv, lens, &k, (const char *)nums->data + at, nums->len - at);
		for (int32_t j = g->head; j >= 0; j = o->ops[j].gnext) {
			const struct op *op = &o->ops[j];
			if (op->kind == K_HSET)
				plan_str(argv, lens, &k, op->extra, op->extra_len);
			else
				plan_i64(nums, argv, lens, &k, op->total);
			plan_contribs(o, op, cout);
		}
		for (int32_t j = g->mhead; j >= 0; j = o->ops[j].gnext)
			if (mirror_from(g, &o->ops[j]) == 0)
				plan_str(argv, lens, &k, o->ops[j].field, strlen(o->ops[j].field));
	}
	if (nums->data != base || k != ops_plan_args(o))
		return LT_ENOMEM; /* cannot happen: reserved above, counted alike */
	return lt_buf_err(nums) ? lt_buf_err(nums) : lt_buf_err(cout);
}

/* ---- plugins ------------------------------------------------------------ */

/* Disable pg after a failure, and every enabled plugin that depends on it,
 * directly or not. */
static void plugin_fail(struct lt_processor *p, struct plug *pg, const char *hook, int rc)
{
	int changed = 1;

	pg->enabled = 0;
	p->st.plugin_failures++;
	lt_metrics_add(pg->failures, 1);
	lt_error("plugin=disabled", "plugin %s failed in %s (%s); disabled", pg->pl->name, hook, lt_strerror(rc));
	while (changed) {
		changed = 0;
		for (int i = 0; i < p->nplugs; i++) {
			struct plug *q = &p->plugs[i];
			for (const char *const *d = q->pl->depends_on; q->enabled && d && *d; d++) {
				int k;
				for (k = 0; k < p->nplugs && strcmp(p->plugs[k].pl->name, *d) != 0; k++)
					;
				if (k == p->nplugs || !p->plugs[k].enabled) {
					lt_error("plugin=disabled", "plugin %s: needs %s, which failed; disabled", q->pl->name,
						 *d);
					q->enabled = 0;
					changed = 1;
				}
			}
		}
	}
}

static int listed(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *s = list; s && *s;) {
		const char *e = strchr(s, ',');
		size_t l = e ? (size_t)(e - s) : strlen(s);
		while (l && *s == ' ') {
			s++;
			l--;
		}
		if (l == n && memcmp(s, name, n) == 0)
			return 1;
		s = e ? e + 1 : NULL;
	}
	return 0;
}

static struct plug *find_plug(struct lt_processor *p, const char *name)
{
	for (int i = 0; i < p->nplugs; i++)
		if (strcmp(p->plugs[i].pl->name, name) == 0)
			return &p->plugs[i];
	return NULL;
}

/* Order: dependencies first, then priority; a plugin whose dependency is
 * missing or disabled is disabled. Then init in that order. */
static void plugins_setup(struct lt_processor *p, const char *disable, const struct lt_plugin *const *extra)
{
	struct plug sorted[MAX_PLUGINS];
	int placed[MAX_PLUGINS] = {0};
	int n = 0;
	struct lt_metric *fam = lt_metrics_counter("livetap_processor_plugin_failures_total",
						   "Plugins disabled after a failure.", "plugin", NULL);

	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]) && p->nplugs < MAX_PLUGINS; i++) {
		struct plug *pg = &p->plugs[p->nplugs++];
		pg->pl = builtin[i];
		pg->enabled = !listed(disable, builtin[i]->name);
		pg->failures = lt_metrics_series(fam, builtin[i]->name, NULL);
	}
	for (; extra && *extra; extra++) {
		struct plug *pg;
		if (p->nplugs == MAX_PLUGINS) {
			lt_error("plugin=disabled", "plugin %s: more than %d plugins", (*extra)->name, MAX_PLUGINS);
			continue;
		}
		pg = &p->plugs[p->nplugs++];
		pg->pl = *extra;
		pg->enabled = !listed(disable, (*extra)->name);
		pg->failures = lt_metrics_series(fam, (*extra)->name, NULL);
	}
	for (;;) {
		int best = -1;
		for (int i = 0; i < p->nplugs; i++) {
			const char *const *d = p->plugs[i].pl->depends_on;
			int ok = !placed[i];
			for (; ok && d && *d; d++) {
				struct plug *dep = find_plug(p, *d);
				int k = dep ? (int)(dep - p->plugs) : -1;
				ok = k >= 0 && placed[k];
			}
			if (ok && (best < 0 || p->plugs[i].pl->priority < p->plugs[best].pl->priority))
				best = i;
		}
		if (best < 0)
			break;
		placed[best] = 1;
		sorted[n++] = p->plugs[best];
	}
	for (int i = 0; i < p->nplugs; i++) {
		if (!placed[i]) {
			lt_error("plugin=disabled", "plugin %s: a dependency is missing or circular; disabled",
				 p->plugs[i].pl->name);
			p->plugs[i].enabled = 0;
			sorted[n++] = p->plugs[i];
		}
	}
	memcpy(p->plugs, sorted, (size_t)n * sizeof(sorted[0]));
	for (int i = 0; i < p->nplugs; i++) {
		struct plug *pg = &p->plugs[i];
		struct lt_error e = {0};
		int rc;
		for (const char *const *d = pg->pl->depends_on; pg->enabled && d && *d; d++) {
			struct plug *dep = find_plug(p, *d);
			if (!dep || !dep->enabled) {
				lt_warn("plugin=disabled", "plugin %s: needs %s, which is disabled", pg->pl->name, *d);
				pg->enabled = 0;
			}
		}
		if (!pg->enabled || !pg->pl->init)
			continue;
		rc = pg->pl->init(&p->env, &pg->state, &e);
		if (rc != LT_OK) {
			lt_error("plugin=disabled", "plugin %s: %s", pg->pl->name, e.message);
			plugin_fail(p, pg, "init", rc);
		}
	}
}

void lt_processor_plugins(const struct lt_processor *p, char *out, size_t cap)
{
	size_t used = 0;

	if (cap == 0)
		return;
	out[0] = '\0';
	for (int i = 0; i < p->nplugs; i++) {
		int w;
		if (!p->plugs[i].enabled)
			continue;
		w = snprintf(out + used, cap - used, "%s%s", used ? "," : "", p->plugs[i].pl->name);
		if (w < 0 || (size_t)w >= cap - used)
			return;
		used += (size_t)w;
	}
}

/* ---- open / close ------------------------------------------------------- */

int lt_processor_open(const struct lt_processor_opts *o, struct lt_processor **out, struct lt_error *e)
{
	struct lt_processor *p;
	int rc;

	if (!o || !o->redis_url)
		return lt_error_set(e, LT_EINVAL, "processor: redis url missing");
	p = calloc(1, sizeof(*p));
	if (!p)
		return lt_error_set(e, LT_ENOMEM, "out of memory");
	lt_arena_init(&p->ops.arena, 0);
	lt_arena_init(&p->fix, 0);
	lt_buf_init(&p->json, 0);
	lt_buf_init(&p->plan, 0);
	lt_buf_init(&p->contribs, 0);
	lt_buf_init(&p->sets, 0);
	if (o->pg_dsn && *o->pg_dsn && !(p->pg_dsn = strdup(o->pg_dsn))) {
		rc = lt_error_set(e, LT_ENOMEM, "out of memory");
		goto fail;
	}
	p->env.pg_dsn = p->pg_dsn;
	p->env.keywords_refresh_ms = o->keywords_refresh_ms > 0 ? o->keywords_refresh_ms : 30000;
	rc = lt_redis_sink_open(o->redis_url, o->redis_timeout_ms, &p->sink, e);
	if (rc != LT_OK)
		goto fail;
	rc = lt_segment_open(o->dict_dir, &p->seg, e);
	if (rc != LT_OK)
		goto fail;
	p->m.batches = lt_metrics_series(
		lt_metrics_counter("livetap_processor_batches_total", "Batches applied to Redis.", NULL, NULL), NULL, NULL);
	p->m.messages = lt_metrics_series(
		lt_metrics_counter("livetap_processor_messages_total", "Messages sent to Redis.", NULL, NULL), NULL, NULL);
	p->m.dups = lt_metrics_series(lt_metrics_counter("livetap_processor_duplicates_total",
							 "Messages Redis had already seen.", NULL, NULL),
				      NULL, NULL);
	{
		struct lt_metric *bad = lt_metrics_counter("livetap_processor_malformed_total",
							   "Malformed input dropped.", "what", NULL);
		p->m.bad_batch = lt_metrics_series(bad, "batch", NULL);
		p->m.bad_record = lt_metrics_series(bad, "record", NULL);
		p->m.invalid = lt_metrics_series(bad, "invalid", NULL);
		p->m.refused = lt_metrics_series(bad, "refused", NULL);
	}
	p->m.repaired = lt_metrics_series(lt_metrics_counter("livetap_processor_repaired_total",
							     "Records applied after a repair (UTF-8, cut).", NULL,
							     NULL),
					  NULL, NULL);
	p->m.redis_err = lt_metrics_series(
		lt_metrics_counter("livetap_processor_redis_errors_total", "Applies that failed on Redis.", NULL, NULL),
		NULL, NULL);
	p->m.latency = lt_metrics_series(lt_metrics_histogram("livetap_processor_apply_seconds",
							      "Time to apply one batch to Redis.", NULL, 0, NULL,
							      NULL),
					 NULL, NULL);
	plugins_setup(p, o->disable, o->extra_plugins);
	*out = p;
	return LT_OK;
fail:
	lt_processor_close(p);
	return rc;
}

void lt_processor_close(struct lt_processor *p)
{
	if (!p)
		return;
	for (int i = p->nplugs - 1; i >= 0; i--)
		if (p->plugs[i].pl->destroy && p->plugs[i].state)
			p->plugs[i].pl->destroy(p->plugs[i].state);
	lt_segment_close(p->seg);
	lt_redis_sink_close(p->sink);
	ops_free(&p->ops);
	lt_arena_free(&p->fix);
	free(p->items);
	free(p->json_off);
	free(p->argv);
	free(p->lens);
	lt_buf_free(&p->sets);
	free(p->rooms);
	free(p->calls);
	free(p->pg_dsn);
	lt_buf_free(&p->json);
	lt_buf_free(&p->plan);
	lt_buf_free(&p->contribs);
	free(p);
}

/* ---- apply -------------------------------------------------------------- */

static int item_cmp(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	int c = strcmp(x->room, y->room);
	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static void room_seen(struct lt_processor *p, const char *room, int64_t now)
{
	size_t oldest = 0;

	for (size_t i = 0; i < p->nrooms; i++) {
		if (strcmp(p->rooms[i].room, room) == 0) {
			p->rooms[i].last = now;
			return;
		}
		if (p->rooms[i].last < p->rooms[oldest].last)
			oldest = i;
	}
	if (!p->rooms) {
		p->rooms = calloc(MAX_ROOMS, sizeof(*p->rooms));
		if (!p->rooms)
			return;
	}
	if (p->nrooms < MAX_ROOMS)
		oldest = p->nrooms++;
	snprintf(p->rooms[oldest].room, sizeof(p->rooms[oldest].room), "%s", room);
	p->rooms[oldest].last = now;
}

static int reserve_argv(struct lt_processor *p, size_t n)
{
	if (n <= p->capargv)
		return LT_OK;
	free(p->argv);
	free(p->lens);
	p->argv = malloc(n * sizeof(*p->argv));
	p->lens = malloc(n * sizeof(*p->lens));
	p->capargv = p->argv && p->lens ? n : 0;
	return p->capargv ? LT_OK : LT_ENOMEM;
}

/* The session ops every message implies (L3 counters, live_start/live_end). */
static int session_ops(struct lt_ops *o, struct lt_proc_msg *pm)
{
	const struct lt_msg *m = pm->m;
	int64_t cnt = m->count > 0 ? m->count : 1;

	switch (m->type) {
	case LT_MSG_CHAT:
		return lt_ops_session(o, pm, "messages", 1);
	case LT_MSG_SUPERCHAT:
		lt_ops_session(o, pm, "messages", 1);
		return lt_ops_session(o, pm, "gift_value", m->value);
	case LT_MSG_GIFT:
	case LT_MSG_GUARD:
		lt_ops_session(o, pm, "gifts", cnt);
		return lt_ops_session(o, pm, "gift_value", m->value);
	case LT_MSG_LIKE:
		return lt_ops_session(o, pm, "likes", cnt);
	case LT_MSG_LIVE_START:
		return ops_add(o, pm, K_SESS_START, "", "", pm->ts, 0, NULL, 0, NULL);
	case LT_MSG_LIVE_END:
		return ops_add(o, pm, K_SESS_END, "", "", pm->ts, 0, NULL, 0, NULL);
	default:
		return LT_OK;
	}
}

/* One run of build_room's marker sets: "set:count,". */
static void put_run(struct lt_buf *b, int64_t set, size_t count)
{
	lt_buf_i64(b, set);
	lt_buf_putc(b, ':');
	lt_buf_i64(b, (int64_t)count);
	lt_buf_putc(b, ',');
}

/* Build one room's script call for items[from..to) into p->argv / p->lens
 * (p->key and p->nowtxt hold two of its arguments): run the plugins, add
 * the session ops, serialise the plan. Returns the argument count (> 0), or
 * -LT_ENOMEM. */
static int build_room(struct lt_processor *p, size_t from, size_t to, int64_t now)
{
	size_t n = to - from;
	char *key = p->key, *nowtxt = p->nowtxt;
	const char *room = p->items[from].room;
	size_t nplan;
	int rc;

	ops_reset(&p->ops);
	lt_buf_reset(&p->json);
	if (n + 1 > p->capjson) {
		uint32_t *g = realloc(p->json_off, (n + 1) * sizeof(*g));
		if (!g)
			return -LT_ENOMEM;
		p->json_off = g;
		p->capjson = n + 1;
	}
	for (size_t i = 0; i < n; i++) {
		struct item *it = &p->items[from + i];
		struct lt_proc_msg pm = {0};
		const struct lt_msg *m = &it->m;

		p->json_off[i] = (uint32_t)p->json.len;
		lt_json_msg(&p->json, m);
		if (lt_buf_err(&p->json))
			return -LT_ENOMEM;
		pm.m = m;
		pm.room = room;
		pm.index = (int)i;
		pm.now_ms = now;
		pm.ts = m->ts > now ? now : m->ts < now - TS_PAST_MS ? now - TS_PAST_MS : m->ts;
		pm.json = (const char *)p->json.data + p->json_off[i];
		pm.json_len = (uint32_t)(p->json.len - p->json_off[i]);
		if ((m->type == LT_MSG_CHAT || m->type == LT_MSG_SUPERCHAT) && m->content.len) {
			lt_segment_words(p->seg, m->content.p, m->content.len, &p->words);
			memset(p->blocked, 0, sizeof(p->blocked));
			pm.words = &p->words;
			pm.blocked = p->blocked;
		}
		for (int k = 0; k < p->nplugs; k++) {
			struct plug *pg = &p->plugs[k];
			if (!pg->enabled || !pg->pl->on_message)
				continue;
			rc = pg->pl->on_message(pg->state, &pm, &p->ops);
			if (p->ops.err)
				return -p->ops.err;
			if (rc != LT_OK)
				plugin_fail(p, pg, "on_message", rc);
		}
		session_ops(&p->ops, &pm);
		if (p->ops.err)
			return -p->ops.err;
	}
	p->json_off[n] = (uint32_t)p->json.len;
	nplan = ops_plan_args(&p->ops);
	if (reserve_argv(p, 5 + 2 * n + nplan) != LT_OK)
		return -LT_ENOMEM;
	rc = ops_plan(&p->ops, &p->plan, &p->contribs, p->argv + 5 + 2 * n, p->lens + 5 + 2 * n);
	if (rc != LT_OK)
		return -rc;
	snprintf(key, sizeof(p->key), "live:{%s}", room);
	snprintf(nowtxt, sizeof(p->nowtxt), "%lld", (long long)now);
	p->argv[0] = key;
	p->lens[0] = strlen(key);
	p->argv[1] = nowtxt;
	p->lens[1] = strlen(nowtxt);
	p->argv[2] = lt_buf_cstr(&p->contribs);
	p->lens[2] = p->contribs.len;
	p->lens[3] = lt_buf_fmt_i64(p->ntxt, (int64_t)n);
	p->argv[3] = p->ntxt;
	/* The marker sets as runs, "set:count," each, in message order: the
	 * messages of a call nearly all share one set (10 minutes of ts), and
	 * an argument per message cost Redis ~1,800 instructions (parsed, made
	 * an object and a Lua string, freed). */
	lt_buf_reset(&p->sets);
	int64_t run_set = 0;
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		const struct lt_msg *m = &p->items[from + i].m;
		int64_t set = m->ts >= 0 ? m->ts / SEEN_SET_MS : 0;
		if (run > 0 && set != run_set) {
			put_run(&p->sets, run_set, run);
			run = 0;
		}
		run_set = set;
		run++;
		p->argv[5 + 2 * i] = m->msg_id.p;
		p->lens[5 + 2 * i] = m->msg_id.len;
		p->argv[6 + 2 * i] = (const char *)p->json.data + p->json_off[i];
		p->lens[6 + 2 * i] = p->json_off[i + 1] - p->json_off[i];
	}
	if (run > 0)
		put_run(&p->sets, run_set, run);
	if (lt_buf_err(&p->sets))
		return -LT_ENOMEM;
	p->argv[4] = lt_buf_cstr(&p->sets);
	p->lens[4] = p->sets.len;
	return (int)(5 + 2 * n + nplan);
}

/* After Redis answered r for items[from..to): count, tell the plugins. */
static void finish_room(struct lt_processor *p, size_t from, const struct lt_redis_apply_reply *r, int64_t now,
			const char *src)
{
	const char *room = p->items[from].room;
	int rc;

	room_seen(p, room, now);
	p->st.messages += (uint64_t)r->messages;
	p->st.fresh += (uint64_t)r->fresh;
	p->st.duplicates += (uint64_t)(r->messages - r->fresh);
	for (int k = 0; k < LT_REDIS_PHASES && k < 5; k++)
		p->st.script_us[k] += (uint64_t)r->phase_us[k];
	lt_metrics_add(p->m.messages, (uint64_t)r->messages);
	lt_metrics_add(p->m.dups, (uint64_t)(r->messages - r->fresh));
	if (r->fresh < r->messages)
		lt_debug(NULL, "room=%s batch=%s: %lld of %lld messages already seen", room, src,
			 r->messages - r->fresh, r->messages);
	{
		struct lt_proc_result res = {room, (int)r->messages, (int)r->fresh};
		for (int k = 0; k < p->nplugs; k++) {
			struct plug *pg = &p->plugs[k];
			if (pg->enabled && pg->pl->on_batch && (rc = pg->pl->on_batch(pg->state, &res)) != LT_OK)
				plugin_fail(p, pg, "on_batch", rc);
		}
	}
}

/* Build, send and wait for one room's script call for items[from..to).
 * Returns LT_OK, LT_EINVAL (refused), LT_EREDIS or LT_ENOMEM. */
static int apply_room(struct lt_processor *p, size_t from, size_t to, int64_t now, const char *src)
{
	struct lt_redis_apply_reply r;
	int argc = build_room(p, from, to, now), rc;

	if (argc < 0)
		return -argc;
	rc = lt_redis_sink_apply(p->sink, argc, p->argv, p->lens, &r);
	if (rc != LT_OK)
		return rc;
	finish_room(p, from, &r, now, src);
	return LT_OK;
}

/*
 * Apply items[from..to) (one room) as one script call; if the script refuses
 * it (LT_EINVAL: deterministic, apply.lua wrote nothing), apply each half in
 * turn the same way, down to single messages, and drop (count, log) only a
 * message that is refused alone: its batch-mates are applied and the batch
 * can be acknowledged. The per-message markers keep every part exactly once
 * if a later part fails on a lost connection and the batch comes again.
 * Returns LT_OK, LT_EREDIS or LT_ENOMEM.
 */
static int apply_range(struct lt_processor *p, size_t from, size_t to, int64_t now, const char *src)
{
	size_t mid;
	int rc = apply_room(p, from, to, now, src);

	if (rc != LT_EINVAL)
		return rc;
	if (to - from == 1) {
		const struct lt_msg *m = &p->items[from].m;
		p->st.refused_records++;
		lt_metrics_add(p->m.refused, 1);
		lt_warn(NULL, "room=%s batch=%s: Redis refused message %.*s; dropped", p->items[from].room, src,
			(int)m->msg_id.len, m->msg_id.p);
		return LT_OK;
	}
	mid = from + (to - from) / 2;
	rc = apply_range(p, from, mid, now, src);
	return rc != LT_OK ? rc : apply_range(p, mid, to, now, src);
}

/*
 * Apply p->items (sorted by room) as one script call per room (or per
 * MAX_PER_CALL messages of a room), pipelined: up to PIPELINE_MAX calls are
 * in flight, so that Redis runs one room's call while the next one is built,
 * and the answers are read in order. A call that was refused (or met a
 * flushed script cache) is applied again on its own with apply_range once
 * the pipe is empty. Returns LT_OK, LT_EREDIS or LT_ENOMEM; what was
 * applied stays applied (its markers make a retry a no-op for it).
 */
static int apply_pipelined(struct lt_processor *p, int64_t now, const char *src)
{
	size_t ncalls = 0, sent = 0, got = 0;
	int broken = LT_OK, rc = LT_OK;

	for (size_t i = 0; i < p->nitems;) {
		size_t j = i + 1;
		while (j < p->nitems && strcmp(p->items[j].room, p->items[i].room) == 0 && j - i < MAX_PER_CALL)
			j++;
		if (ncalls == p->capcalls) {
			size_t ncap = p->capcalls ? p->capcalls * 2 : 64;
			struct call *g = realloc(p->calls, ncap * sizeof(*g));
			if (!g)
				return LT_ENOMEM;
			p->calls = g;
			p->capcalls = ncap;
		}
		p->calls[ncalls++] = (struct call){i, j, LT_OK};
		i = j;
	}
	while (got < ncalls) {
		struct call *c;
		if (sent < ncalls && sent - got < PIPELINE_MAX) {
			int argc;
			c = &p->calls[sent++];
			if (broken) {
				c->rc = broken;
				continue;
			}
			argc = build_room(p, c->from, c->to, now);
			c->rc = argc < 0 ? -argc : lt_redis_sink_send(p->sink, argc, p->argv, p->lens);
			if (c->rc == LT_EREDIS || c->rc == LT_ENOMEM)
				broken = c->rc; /* send no more; read what is in flight */
			continue;
		}
		c = &p->calls[got++];
		if (c->rc == LT_OK) {
			struct lt_redis_apply_reply r;
			c->rc = lt_redis_sink_recv(p->sink, &r);
			if (c->rc == LT_OK)
				finish_room(p, c->from, &r, now, src);
		}
	}
	for (size_t k = 0; k < ncalls; k++) {
		struct call *c = &p->calls[k];
		if (c->rc == LT_EINVAL || c->rc == LT_EAGAIN)
			c->rc = apply_range(p, c->from, c->to, now, src);
		if (c->rc != LT_OK && rc == LT_OK)
			rc = c->rc;
	}
	return rc;
}

/* "platform:room" into out (cap bytes), cut as snprintf's "%s:%.*s" would
 * cut it (also at a NUL in the room id), without printf: once per record. */
static void room_key(char *out, size_t cap, const char *platform, const char *room, size_t len)
{
	size_t pl = strlen(platform), n = 0;
	len = room ? strnlen(room, len) : 0;
	if (cap == 0)
		return;
	pl = pl < cap - 1 ? pl : cap - 1;
	memcpy(out, platform, pl);
	n = pl;
	if (n < cap - 1)
		out[n++] = ':';
	len = len < cap - 1 - n ? len : cap - 1 - n;
	if (len)
		memcpy(out + n, room, len);
	out[n + len] = '\0';
}

/* Decode one batch and append its good records to p->items: a record that
 * does not decode, or that lt_sanitize_msg refuses, is counted and skipped
 * (one log line per batch names its source); a repaired one is counted and
 * kept. Returns LT_OK, LT_EPROTO (nothing appended) or LT_ENOMEM. */
static int collect(struct lt_processor *p, const uint8_t *batch, size_t len, int64_t now, char *src, size_t srccap)
{
	struct lt_wire_batch b;
	struct lt_wire_iter it;
	struct lt_msg m;
	unsigned undecodable = 0, invalid = 0, repaired = 0;
	const char *first = NULL;
	int rc;

	if (lt_wire_batch_decode(batch, len, &b) != LT_OK || b.kind != LT_WIRE_KIND_DATA) {
		p->st.malformed_batches++;
		lt_metrics_add(p->m.bad_batch, 1);
		lt_warn(NULL, "dropped a malformed batch (%zu bytes): not a livetap data batch", len);
		return LT_EPROTO;
	}
	snprintf(src, srccap, "%s/%llu", b.source_id, (unsigned long long)b.seq);
	lt_wire_iter_init(&it, &b);
	while ((rc = lt_wire_iter_next(&it, &m)) != LT_EEOF) {
		struct item *x;
		if (rc != LT_OK) {
			undecodable++;
			continue;
		}
		if (p->nitems == p->capitems) {
			size_t ncap = p->capitems ? p->capitems * 2 : 1024;
			struct item *g = realloc(p->items, ncap * sizeof(*g));
			if (!g)
				return LT_ENOMEM;
			p->items = g;
			p->capitems = ncap;
		}
		x = &p->items[p->nitems];
		x->m = m;
		x->order = (uint32_t)p->nitems;
		x->synth[0] = '\0';
		room_key(x->room, sizeof(x->room), lt_platform_name(m.platform), m.room.p, m.room.len);
		if (m.msg_id.len == 0) {
			/* from the record as sent, as every consumer computes it */
			lt_msg_synth_id(&m, x->synth);
			x->m.msg_id.p = x->synth;
			x->m.msg_id.len = 16;
		}
		{
			const char *why = NULL;
			unsigned changed = 0;
			rc = lt_sanitize_msg(&x->m, now, &p->fix, &changed, &why);
			if (rc == LT_ENOMEM)
				return LT_ENOMEM;
			if (rc != LT_OK) {
				if (!first)
					first = why;
				invalid++;
				lt_debug(NULL, "batch=%s: dropped record %.*s: %s", src, (int)x->m.msg_id.len,
					 x->m.msg_id.p, why);
				continue;
			}
			repaired += changed != 0;
		}
		p->nitems++;
	}
	p->st.malformed_records += undecodable;
	p->st.invalid_records += invalid;
	p->st.repaired_records += repaired;
	lt_metrics_add(p->m.bad_record, undecodable);
	lt_metrics_add(p->m.invalid, invalid);
	lt_metrics_add(p->m.repaired, repaired);
	if (undecodable || invalid)
		lt_warn(NULL, "batch=%s: skipped %u undecodable and %u invalid record(s)%s%s", src, undecodable, invalid,
			first ? ", first: " : "", first ? first : "");
	if (repaired)
		lt_info(NULL, "batch=%s: repaired %u record(s) (invalid UTF-8, flagged in extra)", src, repaired);
	return LT_OK;
}

int lt_processor_apply_many(struct lt_processor *p, const struct lt_processor_input *in, int n, int64_t now,
			    int *rcs)
{
	char src[LT_WIRE_SOURCE_MAX + 32] = "-", one[LT_WIRE_SOURCE_MAX + 32];
	int64_t t0 = lt_clock_mono_us();
	int rc, good = 0;

	p->nitems = 0;
	lt_arena_reset(&p->fix);
	for (int k = 0; k < n; k++) {
		rcs[k] = collect(p, in[k].data, in[k].len, now, one, sizeof(one));
		if (rcs[k] == LT_ENOMEM)
			goto fail;
		if (rcs[k] == LT_OK && good++ == 0)
			memcpy(src, one, sizeof(src));
	}
	if (good == 0)
		return LT_OK;
	/* synthetic ids point into items, which qsort moves: fix them after */
	qsort(p->items, p->nitems, sizeof(*p->items), item_cmp);
	for (size_t i = 0; i < p->nitems; i++)
		if (p->items[i].synth[0])
			p->items[i].m.msg_id.p = p->items[i].synth;
	rc = apply_pipelined(p, now, src);
	if (rc != LT_OK) {
		if (rc == LT_EREDIS) {
			p->st.redis_errors++;
			lt_metrics_add(p->m.redis_err, 1);
		}
		for (int k = 0; k < n; k++)
			if (rcs[k] == LT_OK)
				rcs[k] = rc;
		return rc;
	}
	p->st.batches += (uint64_t)good;
	lt_metrics_add(p->m.batches, (uint64_t)good);
	p->st.last_apply_us = lt_clock_mono_us() - t0;
	lt_metrics_observe(p->m.latency, (double)p->st.last_apply_us / 1e6);
	return LT_OK;
fail:
	for (int k = 0; k < n; k++)
		if (rcs[k] == LT_OK)
			rcs[k] = LT_ENOMEM;
	return LT_ENOMEM;
}

int lt_processor_apply(struct lt_processor *p, const uint8_t *batch, size_t len, int64_t now)
{
	struct lt_processor_input in = {batch, len};
	int rc1 = LT_OK, rc = lt_processor_apply_many(p, &in, 1, now, &rc1);

	return rc != LT_OK ? rc : rc1;
}

int lt_processor_tick(struct lt_processor *p, int64_t now)
{
	int rc = LT_OK;

	for (size_t i = 0; i < p->nrooms; i++) {
		char key[ROOM_KEY_MAX + 8], nowtxt[24];
		const char *argv[4];
		size_t lens[4];
		struct lt_redis_apply_reply r;

		if (p->rooms[i].last < now - ROOM_IDLE_MS) {
			p->rooms[i--] = p->rooms[--p->nrooms];
			continue;
		}
		snprintf(key, sizeof(key), "live:{%s}", p->rooms[i].room);
		snprintf(nowtxt, sizeof(nowtxt), "%lld", (long long)now);
		argv[0] = key;
		lens[0] = strlen(key);
		argv[1] = nowtxt;
		lens[1] = strlen(nowtxt);
		argv[2] = "";
		lens[2] = 0;
		argv[3] = "0";
		lens[3] = 1;
		if (lt_redis_sink_apply(p->sink, 4, argv, lens, &r) != LT_OK) {
			rc = LT_EREDIS;
			break;
		}
	}
	return rc;
}

int lt_processor_retry_ms(const struct lt_processor *p)
{
	return lt_redis_sink_retry_ms(p->sink);
}

void lt_processor_stats(const struct lt_processor *p, struct lt_processor_stats *out)
{
	*out = p->st;
}
