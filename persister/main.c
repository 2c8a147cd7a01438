/* SPDX-License-Identifier: MIT */
/*
 * livetap-persister: pulls lt_wire batches from fetchers over NNG
 * (persister.listen), writes them to partitioned PostgreSQL tables with the
 * derived statistics (persister.h), and acknowledges each batch on the bus
 * only after its transaction committed.
 *
 * While PostgreSQL is away the queued batches are kept and retried with
 * backoff; past persister.max_pending_bytes new batches are released without
 * an ack (their fetcher sends them again), so memory stays bounded and
 * nothing is lost. The wait is a receive with a timeout, never a sleep.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/app.h"
#include "common/bus.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/wire.h"
#include "persister/persister.h"

static const struct lt_app_spec spec = {
    "livetap-persister",
    "Pulls LiveMessage batches from fetchers over NNG (persister.listen) and writes them to "
    "PostgreSQL exactly once: live_messages partitioned by day (COPY into a staging table, "
    "INSERT ... ON CONFLICT DO NOTHING), user_statistics, gift_records, live_sessions, checkins "
    "and hot-word snapshots, then acknowledges each batch after COMMIT. Applies the SQL "
    "migrations at start-up, keeps partitions ahead and applies retention.",
    NULL,
    "persister.metrics_listen",
};

#define MAX_DRAIN 1024

struct run {
	struct lt_persister *p;
	struct lt_bus_consumer *bus;
	int64_t next_maintain;
	uint64_t refused_logged;
	bool maintain_failing;
};

static void on_commit(void *ctx, const char *source_id, uint64_t seq)
{
	struct run *r = ctx;
	if (lt_bus_consumer_ack(r->bus, source_id, seq) != LT_OK)
		lt_warn(NULL, "could not publish the ack of %s/%" PRIu64 " (the fetcher will resend)",
			source_id, seq);
}

static int step(void *ctx)
{
	struct run *r = ctx;
	struct lt_bus_batch b = {0};
	struct lt_error e = {0};
	int wait = lt_persister_next_due_ms(r->p);
	if (wait > 100)
		wait = 100;
	int rc = lt_bus_consumer_recv(r->bus, wait < 1 ? 1 : wait, &b);
	if (rc == LT_ECLOSED)
		return rc;
	/* Take what is already waiting on the bus (up to MAX_DRAIN batches)
	 * before writing, so a backlog reaches the persister's queue, where
	 * several writers can share it. */
	for (int drained = 0; rc == LT_OK; drained++) {
		if (lt_persister_add_batch(r->p, b.data, b.len) == LT_EAGAIN) {
			struct lt_persister_stats st;
			lt_persister_stats(r->p, &st);
			if (st.batches_full >= r->refused_logged * 2 + 1) { /* 1, 3, 7, … */
				lt_warn(NULL,
					"queue full (%" PRIu64 " rows waiting for PostgreSQL); %" PRIu64
					" batch(es) released unacked so far",
					st.pending_rows, st.batches_full);
				r->refused_logged = st.batches_full;
			}
		}
		lt_bus_batch_free(&b);
		if (drained >= MAX_DRAIN)
			break;
		rc = lt_bus_consumer_recv(r->bus, 0, &b);
		if (rc == LT_ECLOSED)
			return rc;
	}
	lt_persister_flush(r->p, false, on_commit, r, &e);
	lt_bus_consumer_flush_acks(r->bus);
	int64_t now = lt_clock_mono_ms();
	if (now >= r->next_maintain) {
		/* Log a failing maintenance once, and once when it recovers. */
		rc = lt_persister_maintain(r->p, &e);
		if (rc != LT_OK && rc != LT_EAGAIN && !r->maintain_failing)
			lt_warn(NULL, "maintenance (partitions, retention, hot words): %s; retrying",
				e.message);
		else if (rc == LT_OK && r->maintain_failing)
			lt_info(NULL, "maintenance works again");
		if (rc != LT_EAGAIN)
			r->maintain_failing = rc != LT_OK;
		r->next_maintain = now + 1000;
	}
	return LT_OK;
}

static int run(struct lt_app *app)
{
	const struct lt_config *cfg = lt_app_config(app);
	struct lt_persister_opts o;
	lt_persister_opts_from_config(&o, cfg);
	const char *listen = lt_config_str(cfg, "persister.listen");
	struct run r = {0};
	struct lt_error e = {0};

	if (lt_persister_open(&o, &r.p, &e) != LT_OK) {
		fprintf(stderr, "livetap-persister: %s\n", e.message);
		return 1;
	}
	/* Migrations and partitions first: an edited migration is fatal, an
	 * unreachable server is waited for. */
	int rc = lt_persister_maintain(r.p, &e);
	if (rc == LT_ECONFIG || rc == LT_EDB) {
		fprintf(stderr, "livetap-persister: %s\n", e.message);
		lt_persister_close(r.p);
		return 1;
	}
	if (rc != LT_OK)
		lt_warn(NULL, "PostgreSQL not ready yet (%s); will keep trying", e.message);
	r.next_maintain = lt_clock_mono_ms() + 1000;
	if (lt_bus_consumer_open(listen, NULL, LT_WIRE_CONSUMER_PERSISTER, &r.bus, &e) != LT_OK) {
		fprintf(stderr, "livetap-persister: %s\n", e.message);
		lt_persister_close(r.p);
		return 1;
	}
	lt_info(NULL, "listening on %s; batches of %d rows or %d ms", listen, o.batch_rows, o.batch_ms);
	rc = lt_app_loop(step, &r);
	/* Last chance for what is queued; unacked batches are resent anyway. */
	lt_persister_flush(r.p, true, on_commit, &r, &e);
	struct lt_persister_stats st;
	lt_persister_stats(r.p, &st);
	lt_info(NULL,
		"rows new %" PRIu64 ", duplicate %" PRIu64 ", bad records %" PRIu64 ", commits %" PRIu64
		", left unacked %" PRIu64 " batch(es)",
		st.rows_new, st.rows_dup, st.records_bad, st.commits, st.pending_batches);
	lt_bus_consumer_close(r.bus);
	lt_persister_close(r.p);
	return rc == LT_OK || rc == LT_ECLOSED ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct lt_app *app = lt_app_start(&spec, argc, argv);
	return lt_app_finish(app, run(app));
}
