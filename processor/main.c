/* SPDX-License-Identifier: MIT */
/*
 * livetap-processor: pulls lt_wire batches from fetchers over NNG, applies
 * each to Redis (hot words, user statistics, L1 stream, session, room
 * channel; see processor.h) and acknowledges it once Redis has answered.
 *
 * When Redis is down the batch in hand is kept and retried after the sink's
 * backoff; batches that arrive meanwhile are released without an ack (their
 * fetcher sends them again), so nothing is lost and memory stays bounded.
 * The wait is a receive with a timeout on the bus, never a sleep.
 */
#include <stdio.h>
#include <string.h>

#include "common/app.h"
#include "common/bus.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/sig.h"
#include "common/wire.h"
#include "processor/processor.h"

static const struct lt_app_spec spec = {
	"livetap-processor",
	"Pulls LiveMessage batches from fetchers over NNG (processor.listen) and applies them to "
	"Redis exactly once: hot words, user statistics, the 5-minute message stream, the session "
	"hash and a PUBLISH per message on live:{platform:room}. Plugins: keywords, hotwords, "
	"userstats, checkin (签到), fortune (抽签).",
	NULL,
	"processor.metrics_listen",
};

struct run {
	struct lt_processor *proc;
	struct lt_bus_consumer *bus;
	struct lt_bus_batch pending; /* a batch Redis could not take yet */
	int has_pending;
	int64_t next_tick;
	int down;
};

static void ack(struct run *r, const struct lt_bus_batch *b)
{
	struct lt_wire_batch h;

	if (lt_wire_batch_decode(b->data, b->len, &h) == LT_OK && h.source_id[0])
		lt_bus_consumer_ack(r->bus, h.source_id, h.seq);
}

/* Apply b; returns 1 if it is done with (acked or dropped), 0 to keep it. */
static int handle(struct run *r, struct lt_bus_batch *b)
{
	int rc = lt_processor_apply(r->proc, b->data, b->len, lt_clock_wall_ms());

	if (rc == LT_OK || rc == LT_EPROTO) {
		if (r->down)
			lt_info(NULL, "redis is back; applying again");
		r->down = 0;
		ack(r, b);
		return 1;
	}
	if (!r->down)
		lt_warn(NULL, "batch not applied (%s); holding it and retrying", lt_strerror(rc));
	r->down = 1;
	return 0;
}

static int step(void *ctx)
{
	struct run *r = ctx;
	struct lt_bus_batch b = {0};
	int64_t now = lt_clock_mono_ms();
	int wait, rc;

	if (r->has_pending) {
		wait = lt_processor_retry_ms(r->proc);
		if (wait > 0) {
			/* wait on the bus; what arrives meanwhile goes back unacked */
			rc = lt_bus_consumer_recv(r->bus, wait > 200 ? 200 : wait, &b);
			if (rc == LT_OK)
				lt_bus_batch_free(&b);
			return rc == LT_ECLOSED ? LT_ECLOSED : LT_OK;
		}
		if (handle(r, &r->pending)) {
			lt_bus_batch_free(&r->pending);
			r->has_pending = 0;
		}
		return LT_OK;
	}
	if (now >= r->next_tick) {
		lt_processor_tick(r->proc, lt_clock_wall_ms());
		r->next_tick = now + 1000;
	}
	wait = (int)(r->next_tick - now);
	rc = lt_bus_consumer_recv(r->bus, wait < 1 ? 1 : wait, &b);
	if (rc == LT_ETIMEDOUT)
		return LT_OK;
	if (rc != LT_OK)
		return rc;
	if (handle(r, &b)) {
		lt_bus_batch_free(&b);
	} else {
		r->pending = b;
		r->has_pending = 1;
	}
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

	if (lt_processor_open(&o, &r.proc, &e) != LT_OK) {
		fprintf(stderr, "livetap-processor: %s\n", e.message);
		return 1;
	}
	if (lt_bus_consumer_open(listen, NULL, LT_WIRE_CONSUMER_PROCESSOR, &r.bus, &e) != LT_OK) {
		fprintf(stderr, "livetap-processor: %s\n", e.message);
		lt_processor_close(r.proc);
		return 1;
	}
	lt_processor_plugins(r.proc, plugins, sizeof(plugins));
	lt_info(NULL, "listening on %s; plugins: %s", listen, plugins);
	rc = lt_app_loop(step, &r);
	if (r.has_pending)
		lt_bus_batch_free(&r.pending);
	lt_bus_consumer_close(r.bus);
	lt_processor_close(r.proc);
	return rc == LT_OK || rc == LT_ECLOSED ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct lt_app *app = lt_app_start(&spec, argc, argv);
	return lt_app_finish(app, run(app));
}
