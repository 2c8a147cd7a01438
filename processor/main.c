/* SPDX-License-Identifier: MIT */
/*
 * livetap-processor: pulls lt_wire batches from fetchers over NNG, applies
 * each to Redis (hot words, user statistics, L1 stream, session, room
 * channel; see processor.h) and acknowledges it once Redis has answered.
 *
 * Batches already waiting on the bus are applied together (up to 512 or
 * 1 MB) so that a busy processor pays per-user and per-word work once for
 * many. A copy of a batch applied in the last few seconds (its fetcher sent
 * it again because the ack was late) is acked again without Redis
 * (processor/recent.h).
 * When Redis is down the batches in hand are kept and retried after the
 * sink's backoff; batches that arrive meanwhile are released without an ack
 * (their fetcher sends them again), so nothing is lost and memory stays
 * bounded. The wait is a receive with a timeout on the bus, never a sleep.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/app.h"
#include "common/bus.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/sig.h"
#include "common/wire.h"
#include "common/metrics.h"
#include "processor/processor.h"
#include "processor/recent.h"

static const struct lt_app_spec spec = {
	"livetap-processor",
	"Pulls LiveMessage batches from fetchers over NNG (processor.listen) and applies them to "
	"Redis exactly once: hot words, user statistics, the 5-minute message stream, the session "
	"hash and a PUBLISH per message on live:{platform:room}. Plugins: keywords, hotwords, "
	"userstats, checkin (签到), fortune (抽签).",
	NULL,
	"processor.metrics_listen",
};

/* Batches already queued on the bus are applied together (one script call
 * per room for all of them, the rooms pipelined), up to these bounds. Quiet
 * rooms send batches of one or two records (a batch is sealed 5 ms after its
 * first record), so the count bound must be high: with 16, twenty rooms at
 * 50 messages/s each needed 60 round trips a second to Redis, and on a busy
 * machine that was more than the processor got done; it fell behind, the
 * fetchers resent, and the resends cost as much as the originals. The byte
 * bound keeps one cycle, and so the latency of a busy room, short. */
#define MERGE_MAX 512
#define MERGE_BYTES (1u << 20)
/* Batches remembered as applied: at 1000 batches/s, about a minute, longer
 * than a fetcher's ack timeouts (2 s doubling to 10 s); ~100 bytes each. */
#define RECENT_MAX 65536

struct run {
	struct lt_processor *proc;
	struct lt_bus_consumer *bus;
	struct lt_bus_batch held[MERGE_MAX]; /* received, not yet applied */
	int nheld;
	int64_t next_tick;
	int down;
	struct lt_recent *recent;     /* (source_id, seq) applied lately */
	struct lt_series *m_resent;   /* copies acked again without Redis */
};

/* The header of a held batch: its source and seq, or false if it has none
 * (lt_processor_apply_many refuses such a batch as malformed). */
static bool batch_id(const struct lt_bus_batch *b, struct lt_wire_batch *h)
{
	return lt_wire_batch_decode(b->data, b->len, h) == LT_OK && h->source_id[0];
}

/* Apply the held batches; ack and release every one that is done (applied,
 * or malformed and dropped); keep the rest for a retry. A batch applied
 * lately is acked again at once and never reaches Redis. */
static void apply_held(struct run *r)
{
	struct lt_processor_input in[MERGE_MAX];
	struct lt_wire_batch h;
	int rcs[MERGE_MAX], rc, n = 0, kept = 0, skipped = 0;

	for (int k = 0; k < r->nheld; k++) {
		if (batch_id(&r->held[k], &h) && lt_recent_has(r->recent, h.source_id, h.seq)) {
			lt_bus_consumer_ack(r->bus, h.source_id, h.seq);
			lt_bus_batch_free(&r->held[k]);
			skipped++;
			continue;
		}
		r->held[n] = r->held[k];
		in[n].data = r->held[n].data;
		in[n].len = r->held[n].len;
		n++;
	}
	r->nheld = n;
	if (skipped)
		lt_metrics_add(r->m_resent, (uint64_t)skipped);
	if (n == 0) {
		lt_bus_consumer_flush_acks(r->bus);
		return;
	}
	rc = lt_processor_apply_many(r->proc, in, r->nheld, lt_clock_wall_ms(), rcs);
	for (int k = 0; k < r->nheld; k++) {
		if (rcs[k] == LT_OK || rcs[k] == LT_EPROTO) {
			if (batch_id(&r->held[k], &h)) {
				lt_bus_consumer_ack(r->bus, h.source_id, h.seq);
				if (rcs[k] == LT_OK)
					lt_recent_add(r->recent, h.source_id, h.seq);
			}
			lt_bus_batch_free(&r->held[k]);
		} else {
			r->held[kept++] = r->held[k];
		}
	}
	r->nheld = kept;
	lt_bus_consumer_flush_acks(r->bus);
	if (rc == LT_OK) {
		if (r->down)
			lt_info(NULL, "redis is back; applying again");
		r->down = 0;
	} else {
		if (!r->down)
			lt_warn(NULL, "%d batches not applied (%s); holding them and retrying", kept, lt_strerror(rc));
		r->down = 1;
	}
}

static int step(void *ctx)
{
	struct run *r = ctx;
	struct lt_bus_batch b = {0};
	int64_t now = lt_clock_mono_ms();
	size_t bytes;
	int wait, rc;

	if (r->nheld > 0) {
		wait = lt_processor_retry_ms(r->proc);
		if (wait > 0) {
			/* wait on the bus; what arrives meanwhile goes back unacked
			 * (its fetcher sends it again), so memory stays bounded */
			rc = lt_bus_consumer_recv(r->bus, wait > 200 ? 200 : wait, &b);
			if (rc == LT_OK)
				lt_bus_batch_free(&b);
			return rc == LT_ECLOSED ? LT_ECLOSED : LT_OK;
		}
		apply_held(r);
		return LT_OK;
	}
	if (now >= r->next_tick) {
		lt_processor_tick(r->proc, lt_clock_wall_ms());
		r->next_tick = now + 1000;
	}
	wait = (int)(r->next_tick - now);
	rc = lt_bus_consumer_recv(r->bus, wait < 1 ? 1 : wait, &r->held[0]);
	if (rc == LT_ETIMEDOUT)
		return LT_OK;
	if (rc != LT_OK)
		return rc;
	r->nheld = 1;
	bytes = r->held[0].len;
	while (r->nheld < MERGE_MAX && bytes < MERGE_BYTES &&
	       lt_bus_consumer_recv(r->bus, 0, &r->held[r->nheld]) == LT_OK)
		bytes += r->held[r->nheld++].len;
	apply_held(r);
	return LT_OK;
}

static int run(struct lt_app *app)
{
	const struct lt_config *cfg = lt_app_config(app);
	struct lt_processor_opts o = {
		.redis_url = lt_config_str(cfg, "redis.url"),
		.redis_timeout_ms = (int)lt_config_int(cfg, "redis.timeout_ms"),
		.dict_dir = lt_config_str(cfg, "processor.friso_dict"),
		.pg_dsn = lt_config_str(cfg, "pg.dsn"),
		.keywords_refresh_ms = (int)lt_config_int(cfg, "processor.keywords_refresh_ms"),
		.disable = lt_config_str(cfg, "processor.plugins_disable"),
	};
	const char *listen = lt_config_str(cfg, "processor.listen");
	struct run r = {0};
	struct lt_error e = {0};
	char plugins[256];
	int rc;

	/* the default ipc socket lives in state_dir: make sure it exists */
	if (mkdir(lt_config_str(cfg, "state_dir"), 0750) != 0 && errno != EEXIST)
		lt_warn(NULL, "cannot create state_dir %s: %s", lt_config_str(cfg, "state_dir"), strerror(errno));
	if (lt_processor_open(&o, &r.proc, &e) != LT_OK) {
		fprintf(stderr, "livetap-processor: %s\n", e.message);
		return 1;
	}
	r.recent = lt_recent_new(RECENT_MAX);
	r.m_resent = lt_metrics_series(
		lt_metrics_counter("livetap_processor_resent_batches_total",
				   "Copies of lately applied batches acked again without Redis.", NULL, NULL),
		NULL, NULL);
	if (!r.recent || lt_bus_consumer_open(listen, NULL, LT_WIRE_CONSUMER_PROCESSOR, &r.bus, &e) != LT_OK) {
		fprintf(stderr, "livetap-processor: %s\n", r.recent ? e.message : "out of memory");
		lt_recent_free(r.recent);
		lt_processor_close(r.proc);
		return 1;
	}
	lt_processor_plugins(r.proc, plugins, sizeof(plugins));
	lt_info(NULL, "listening on %s; plugins: %s", listen, plugins);
	rc = lt_app_loop(step, &r);
	for (int k = 0; k < r.nheld; k++)
		lt_bus_batch_free(&r.held[k]);
	lt_bus_consumer_close(r.bus);
	lt_recent_free(r.recent);
	lt_processor_close(r.proc);
	return rc == LT_OK || rc == LT_ECLOSED ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct lt_app *app = lt_app_start(&spec, argc, argv);
	return lt_app_finish(app, run(app));
}
