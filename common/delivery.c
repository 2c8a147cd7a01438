/* SPDX-License-Identifier: MIT */
/*
 * delivery: batching, spooling and resending sender (see delivery.h).
 *
 * State, all under one mutex:
 *   - the open batch (an lt_buf holding an lt_wire batch being filled);
 *   - the ring: every sealed batch not yet acked by every required consumer
 *     kind, in seq order, each with its spool position, its bytes if they fit
 *     in the window, and per kind: acked?, tries, next resend time;
 *   - per kind: a cursor (the first batch never sent in this run), the list
 *     of batches in flight (sent, unacked; at most max_inflight) and a short
 *     back-off while NNG refuses sends (no consumer connected, queue full).
 * The worker thread seals batches on linger, sends and resends; the NNG aio
 * callback of the sub socket applies acks. Nothing here sleeps: the worker
 * waits on a condition variable until the next deadline or a signal.
 */
#include "common/delivery.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pubsub0/sub.h>

#include "common/buf.h"
#include "common/bus.h"
#include "common/metrics.h"
#include "common/spool.h"
#include "common/wire.h"

#define NKINDS		 2
#define ALL_KINDS	 0x3u
#define SENDS_PER_PASS	 64 /* release the lock after this many sends */
#define BLOCK_MS	 10 /* retry after an allocation failure */
#define PUSH_SENDBUF	 64
#define SUB_RECVBUF	 1024
#define METRICS_EVERY_MS 1000
#define COMPACT_MIN	 4096 /* ring entries before compaction is considered */
#define RECONN_MIN_MS	 20
#define RECONN_MAX_MS	 1000
#define LINK_DOWN_MS	 3000 /* a dialer without a pipe this long is replaced */
#define LINK_PIPES	 4    /* pipes of one link tracked at once (NNG: one per dialer) */
#define ACK_LINK_WAIT_MS 500  /* hold a kind's sends this long for its ack links (acks_settling) */
#define ACK_LINK_POLL_MS 5

static const uint8_t wire_kind[NKINDS] = {LT_WIRE_CONSUMER_PROCESSOR, LT_WIRE_CONSUMER_PERSISTER};

struct ent {
	uint64_t seq;
	uint32_t count;
	uint32_t len;
	uint8_t *data; /* NULL when the batch lives only in the spool */
	struct lt_spool_pos pos;
	bool spooled;
	bool recovered;
	uint8_t acked; /* bit k: kind k acked (or is not required) */
	uint8_t tries[NKINDS];
	int64_t due[NKINDS];
	int64_t sent_ms[NKINDS]; /* mono ms of the last send to kind k */
};

/* One consumer URL dialed by one of our sockets: a push socket (batches to
 * kind `kind`) or the sub socket (that consumer's acks). NNG 1.5.2 can leave
 * a dialer that never dials again after its consumer was killed (seen in the
 * pipeline fault test: no pipe, no connect(2) for minutes, while the
 * restarted consumer listened), so the worker watches each dialer's pipes
 * (nng_pipe_notify) and replaces a dialer that has had none for
 * LINK_DOWN_MS. pipes, pipe_ids, dialer_id and down_since are guarded by
 * lt_delivery.link_mu, which the pipe callbacks take and nothing holds while
 * calling NNG; dialer is the worker's. */
struct link {
	nng_socket sock;
	char *url;
	int kind;
	nng_dialer dialer;
	uint32_t dialer_id; /* 0: none */
	int pipes;
	uint32_t pipe_ids[LINK_PIPES];
	int64_t down_since; /* mono ms since when it has no pipe; 0 while it has one */
	int64_t changed_ms; /* mono ms it got its first pipe or lost its last (or was made) */
	int pair;	    /* index of the same consumer's other link (push <-> ack); -1: none */
};

struct lt_delivery {
	/* options */
	char *source_id;
	size_t source_len;
	int batch_max;
	size_t batch_bytes_max;
	int linger_ms, linger_max_ms, ack_timeout_ms, ack_timeout_max_ms, max_inflight;
	size_t window_max;

	pthread_mutex_t mu;
	pthread_cond_t wake;	/* the worker waits here */
	pthread_cond_t drained; /* drain waits here */
	pthread_t thr;
	bool thr_started;
	bool closing;

	nng_socket push[NKINDS];
	bool push_open[NKINDS];
	bool required[NKINDS];
	nng_socket sub;
	bool sub_open;
	nng_aio *ack_aio;

	/* Every dialer, push and sub (see struct link). */
	struct link *links;
	int n_links;
	pthread_mutex_t link_mu;
	int64_t kind_redial_ms[NKINDS]; /* when a silent kind's dialers were last replaced */
	int kind_redials[NKINDS];	/* times since the kind's last ack (backs the next one off) */
	int64_t infl_since[NKINDS];	/* when the kind's in-flight list last became non-empty */

	struct lt_spool *spool;

	struct lt_buf open;
	uint32_t open_count;
	int64_t open_deadline;	   /* first record + linger_ms */
	int64_t open_max_deadline; /* first record + linger_max_ms */
	int64_t open_few_deadline; /* first record + few_linger_ms(): a batch of few records waits this long */
	bool open_held;		   /* past open_deadline, waiting for an ack */

	struct ent *ring;
	size_t ring_cap, ring_head, ring_n;
	uint64_t head_abs; /* absolute position of ring[ring_head] */

	uint64_t cursor[NKINDS];
	uint64_t *infl[NKINDS];
	int n_infl[NKINDS];
	int64_t blocked_until[NKINDS];
	int64_t last_ack_ms[NKINDS]; /* mono ms of the kind's last matching ack */
	bool ack_wait;		     /* this pass held a kind for its ack links */
	/* Ack round trips of first sends (not resends: their acks are
	 * ambiguous), smoothed as TCP does (RFC 6298), in microseconds; the
	 * resend timeout rto_ms is srtt + 4 rttvar within [ack_timeout_ms,
	 * ack_timeout_max_ms]. */
	int64_t srtt_us[NKINDS], rttvar_us[NKINDS];
	int rto_ms[NKINDS];
	/* When NNG's send queue of a kind is full, the message waits in an aio
	 * and the kind is busy until its callback. */
	nng_aio *saio[NKINDS];
	bool sbusy[NKINDS];
	int64_t sbusy_since[NKINDS]; /* when the kind's send aio was started */
	uint64_t sseq[NKINDS];	     /* the batch waiting in saio */
	struct send_ctx {
		struct lt_delivery *d;
		int k;
	} sctx[NKINDS];

	/* Prometheus series (common/metrics.h), labelled by source, refreshed by
	 * the worker about once a second from st. */
	struct {
		struct lt_series *pushed, *rejected, *acked, *sent, *resent, *corrupt, *acks_bad, *lost;
		struct lt_series *pending, *spool_bytes, *window_bytes;
		struct lt_delivery_stats last;
		int64_t next_ms;
	} m;

	uint64_t next_seq;
	uint64_t max_seen_seq;
	size_t window_bytes;
	struct lt_delivery_stats st;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static struct timespec mono_deadline(int64_t at_ms)
{
	struct timespec ts = {(time_t)(at_ms / 1000), (long)(at_ms % 1000) * 1000000L};
	return ts;
}

/* ---- the ring of pending batches ---- */

static struct ent *ring_at(struct lt_delivery *d, uint64_t abs)
{
	return &d->ring[(d->ring_head + (size_t)(abs - d->head_abs)) % d->ring_cap];
}

static uint64_t ring_end(const struct lt_delivery *d)
{
	return d->head_abs + d->ring_n;
}

static int ring_push(struct lt_delivery *d, const struct ent *e)
{
	if (d->ring_n == d->ring_cap) {
		size_t ncap = d->ring_cap ? d->ring_cap * 2 : 256;
		struct ent *n = malloc(ncap * sizeof(*n));
		if (!n)
			return LT_ENOMEM;
		for (size_t i = 0; i < d->ring_n; i++)
			n[i] = d->ring[(d->ring_head + i) % d->ring_cap];
		free(d->ring);
		d->ring = n;
		d->ring_cap = ncap;
		d->ring_head = 0;
	}
	d->ring[(d->ring_head + d->ring_n) % d->ring_cap] = *e;
	d->ring_n++;
	return LT_OK;
}

/* The absolute position of the batch with this seq, or UINT64_MAX. */
static uint64_t ring_find(struct lt_delivery *d, uint64_t seq)
{
	uint64_t lo = d->head_abs, hi = ring_end(d);
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (ring_at(d, mid)->seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < ring_end(d) && ring_at(d, lo)->seq == seq ? lo : UINT64_MAX;
}

static void ring_pop_done(struct lt_delivery *d)
{
	while (d->ring_n > 0 && d->ring[d->ring_head].acked == ALL_KINDS) {
		d->ring_head = (d->ring_head + 1) % d->ring_cap;
		d->ring_n--;
		d->head_abs++;
	}
	for (int k = 0; k < NKINDS; k++)
		if (d->cursor[k] < d->head_abs)
			d->cursor[k] = d->head_abs;
}

/* Drop finished entries that sit behind an older pending one (a batch one
 * kind keeps not acking), so the ring's memory follows the pending batches,
 * not the traffic. Absolute positions change: the cursors and in-flight lists
 * are remapped (by seq); callers must not hold positions across this. */
static void ring_compact(struct lt_delivery *d)
{
	struct ent *n = malloc(d->ring_cap * sizeof(*n));
	if (!n)
		return;
	for (int k = 0; k < NKINDS; k++)
		for (int i = 0; i < d->n_infl[k]; i++)
			d->infl[k][i] = ring_at(d, d->infl[k][i])->seq;
	uint64_t cur[NKINDS];
	bool cur_set[NKINDS] = {false, false};
	size_t j = 0;
	for (uint64_t a = d->head_abs; a < ring_end(d); a++) {
		struct ent *e = ring_at(d, a);
		for (int k = 0; k < NKINDS; k++) {
			if (!cur_set[k] && a >= d->cursor[k]) {
				cur[k] = d->head_abs + j;
				cur_set[k] = true;
			}
		}
		if (e->acked != ALL_KINDS)
			n[j++] = *e;
	}
	free(d->ring);
	d->ring = n;
	d->ring_head = 0;
	d->ring_n = j;
	for (int k = 0; k < NKINDS; k++) {
		d->cursor[k] = cur_set[k] ? cur[k] : d->head_abs + j;
		for (int i = 0; i < d->n_infl[k]; i++)
			d->infl[k][i] = ring_find(d, d->infl[k][i]);
	}
	d->st.ring_compactions++;
}

/* The batch is acked by every required kind (or given up): forget it. */
static void ent_done(struct lt_delivery *d, struct ent *e)
{
	d->st.acked_records += e->count;
	d->st.acked_batches++;
	d->st.pending_records -= e->count;
	d->st.pending_batches--;
	if (e->data) {
		free(e->data);
		e->data = NULL;
		d->window_bytes -= e->len;
	}
	if (e->spooled && d->spool)
		lt_spool_release(d->spool, &e->pos);
	e->spooled = false;
	ring_pop_done(d);
	if (d->ring_n > COMPACT_MIN && d->ring_n > 2 * d->st.pending_batches)
		ring_compact(d);
	if (d->st.pending_batches == 0 && d->open_count == 0)
		pthread_cond_broadcast(&d->drained);
}

static void infl_remove(struct lt_delivery *d, int k, uint64_t abs)
{
	for (int i = 0; i < d->n_infl[k]; i++) {
		if (d->infl[k][i] == abs) {
			d->infl[k][i] = d->infl[k][--d->n_infl[k]];
			return;
		}
	}
}

/* ---- sealing ---- */

/* Seal the open batch: spool it, put it in the ring. LT_EAGAIN when the spool
 * (or, without one, the window) is full: the batch stays open. */
static int seal(struct lt_delivery *d)
{
	if (d->open_count == 0)
		return LT_OK;
	size_t len = d->open.len;
	struct ent e = {.count = d->open_count, .len = (uint32_t)len, .acked = 0};
	e.seq = d->next_seq;
	for (int k = 0; k < NKINDS; k++)
		if (!d->required[k])
			e.acked |= (uint8_t)(1u << k);
	if (d->spool) {
		int rc = lt_spool_append(d->spool, d->open.data, len, &e.pos);
		if (rc == LT_EAGAIN)
			return LT_EAGAIN;
		if (rc == LT_OK) {
			e.spooled = true;
			d->st.spool_writes++;
		} else {
			d->st.spool_errors++; /* keep going from memory */
		}
	}
	if (!e.spooled && d->window_bytes + len > d->window_max && d->window_bytes > 0)
		return LT_EAGAIN;
	if (!e.spooled || d->window_bytes + len <= d->window_max) {
		e.data = malloc(len);
		if (!e.data && !e.spooled)
			return LT_EAGAIN;
		if (e.data) {
			memcpy(e.data, d->open.data, len);
			d->window_bytes += len;
		}
	}
	if (ring_push(d, &e) != LT_OK) {
		if (e.data) {
			free(e.data);
			d->window_bytes -= len;
		}
		if (e.spooled)
			lt_spool_release(d->spool, &e.pos);
		return LT_EAGAIN;
	}
	d->next_seq++;
	d->st.batches_sealed++;
	d->st.pending_records += e.count;
	d->st.pending_batches++;
	d->open_count = 0;
	lt_buf_reset(&d->open);
	pthread_cond_signal(&d->wake);
	return LT_OK;
}

/* A batch that holds fewer than FEW_RECORDS records at linger_ms waits for
 * company up to four times linger_ms, and at least FEW_LINGER_MIN_MS (within
 * linger_max_ms): a quiet room at 100 msg/s otherwise sends one record per
 * batch, and each batch costs the fetcher about ten thread wake-ups and two
 * loopback sends (its worker, NNG's sends to both kinds and their acks);
 * that was most of its CPU. With 4 records and 20 ms, a fetcher at 100 msg/s
 * (bench_fetcher_live.sh, pipeline mode) used 2.35-3.15% of a core; with 8
 * and 50 ms, 1.5-2.1% (mean 1.8%). 50 ms is linger_max_ms, the wait a batch
 * already has when the consumers are behind, so neither the latency bound nor
 * what a killed fetcher can lose grows. Between about 160 and 4,000 msg/s a
 * batch waits for 8 records instead of 4, a few milliseconds (at 1,000 msg/s
 * bench_latency's p50 went from about 3 to 5.5 ms) for half the batches; a
 * busier room fills a batch within linger_ms and is not delayed. The floor
 * keeps a quiet room's batching when linger_ms is short: the 2 ms default is
 * chosen for latency in busy rooms. */
#define FEW_RECORDS 8
#define FEW_LINGER_MIN_MS 50

static int64_t few_linger_ms(const struct lt_delivery *d)
{
	int64_t ms = 4 * (int64_t)d->linger_ms;
	if (ms < FEW_LINGER_MIN_MS)
		ms = FEW_LINGER_MIN_MS;
	return ms < d->linger_max_ms ? ms : d->linger_max_ms;
}

/* Whether the open batch still waits for company (push wakes the worker
 * when it reaches FEW_RECORDS). */
static bool waits_for_company(const struct lt_delivery *d, int64_t now)
{
	return d->open_count < FEW_RECORDS && now < d->open_few_deadline;
}

static void open_deadlines(struct lt_delivery *d, int64_t now)
{
	d->open_deadline = now + d->linger_ms;
	d->open_max_deadline = now + d->linger_max_ms;
	d->open_few_deadline = now + few_linger_ms(d);
	d->open_held = false;
}

/* Batches kind k has not acked yet: in flight plus not yet sent (a batch
 * acked out of order ahead of the cursor is counted too; a bound, not a
 * tally). */
static uint64_t kind_backlog(const struct lt_delivery *d, int k)
{
	return (uint64_t)d->n_infl[k] + (ring_end(d) - d->cursor[k]);
}

/* Whether the worker seals the open batch now (one that is full was sealed
 * by push). Like Nagle's algorithm: after linger_ms, a batch is sealed when
 * some required consumer kind has acked everything sealed before it;
 * otherwise it keeps filling until an ack comes (apply_ack wakes the worker)
 * or linger_max_ms after its first record. When the consumers keep up, that
 * is linger_ms; when they fall behind, fewer and bigger batches reach them
 * (each costs them a receive, a decode and an ack, whatever its size), so
 * their backlog does not feed on itself. */
static bool open_due(struct lt_delivery *d, int64_t now)
{
	if (d->open_count == 0 || now < d->open_deadline)
		return false;
	if (now >= d->open_max_deadline)
		return true;
	if (waits_for_company(d, now))
		return false;
	for (int k = 0; k < NKINDS; k++)
		if (d->required[k] && kind_backlog(d, k) == 0)
			return true;
	return !d->required[0] && !d->required[1];
}

int lt_delivery_push(struct lt_delivery *d, const struct lt_msg *m)
{
	struct lt_msg c = *m;
	int rc = LT_OK;
	pthread_mutex_lock(&d->mu);
	if (d->closing) {
		rc = LT_ECLOSED;
		goto out;
	}
	if (lt_msg_clamp(&c))
		d->st.clamped++;
	if (d->open_count > 0 && ((int)d->open_count >= d->batch_max || d->open.len >= d->batch_bytes_max ||
				  lt_buf_err(&d->open))) {
		if (seal(d) != LT_OK) {
			d->st.rejected++;
			rc = LT_EAGAIN;
			goto out;
		}
	}
	if (d->open_count == 0) {
		rc = lt_wire_batch_begin(&d->open, LT_WIRE_KIND_DATA, 0, d->source_id, d->next_seq);
		if (rc != LT_OK)
			goto out;
		open_deadlines(d, mono_ms());
		pthread_cond_signal(&d->wake);
	}
	rc = lt_wire_batch_add(&d->open, &c);
	if (rc == LT_ETOOBIG && d->open_count > 0) {
		/* The batch is at a wire limit: seal it and start a new one. */
		if (seal(d) != LT_OK) {
			d->st.rejected++;
			rc = LT_EAGAIN;
			goto out;
		}
		rc = lt_wire_batch_begin(&d->open, LT_WIRE_KIND_DATA, 0, d->source_id, d->next_seq);
		if (rc == LT_OK) {
			open_deadlines(d, mono_ms());
			rc = lt_wire_batch_add(&d->open, &c);
		}
	}
	if (rc != LT_OK) {
		d->st.invalid++;
		rc = rc == LT_ENOMEM ? LT_ENOMEM : LT_EINVAL;
		goto out;
	}
	d->open_count++;
	d->st.pushed++;
	if ((int)d->open_count >= d->batch_max || d->open.len >= d->batch_bytes_max)
		seal(d); /* on LT_EAGAIN the batch stays open; the next push reports it */
	else if (d->open_count == FEW_RECORDS)
		pthread_cond_signal(&d->wake); /* it waits for company no longer */
out:
	pthread_mutex_unlock(&d->mu);
	return rc;
}

void lt_delivery_flush(struct lt_delivery *d)
{
	pthread_mutex_lock(&d->mu);
	if (d->open_count > 0 && seal(d) != LT_OK)
		d->open_deadline = mono_ms(); /* let the worker keep trying */
	pthread_mutex_unlock(&d->mu);
}

/* ---- sending ---- */

/* Send e to kind k without blocking: straight into NNG's queue, or, when that
 * is full (consumers slower than us, or none connected), through the kind's
 * send aio, which makes the kind busy until NNG takes the message or
 * ack_timeout_ms passes. LT_OK, LT_EAGAIN (busy or out of memory: try later),
 * LT_EIO (the spool copy is unreadable: the batch was given up). */
static int send_ent(struct lt_delivery *d, int k, uint64_t abs, int64_t now)
{
	struct ent *e = ring_at(d, abs);
	nng_msg *m;
	if (d->sbusy[k])
		return LT_EAGAIN;
	if (nng_msg_alloc(&m, e->len) != 0) {
		d->blocked_until[k] = now + BLOCK_MS;
		return LT_EAGAIN;
	}
	if (e->data) {
		memcpy(nng_msg_body(m), e->data, e->len);
	} else if (!e->spooled || lt_spool_read(d->spool, &e->pos, nng_msg_body(m)) != LT_OK) {
		nng_msg_free(m);
		d->st.spool_errors++;
		d->st.lost_records += e->count;
		for (int j = 0; j < NKINDS; j++)
			infl_remove(d, j, abs);
		e->acked = ALL_KINDS;
		ent_done(d, e);
		return LT_EIO;
	} else {
		d->st.spool_reads++;
	}
	if (nng_sendmsg(d->push[k], m, NNG_FLAG_NONBLOCK) != 0) {
		d->st.send_eagain++;
		d->sbusy[k] = true;
		d->sbusy_since[k] = now;
		d->sseq[k] = e->seq;
		nng_aio_set_msg(d->saio[k], m);
		nng_aio_set_timeout(d->saio[k], d->ack_timeout_ms);
		nng_send_aio(d->push[k], d->saio[k]);
	}
	if (e->tries[k] > 0 || e->recovered)
		d->st.resent++;
	else
		d->st.sent++;
	int shift = e->tries[k] < 5 ? e->tries[k] : 5;
	int64_t wait = (int64_t)d->rto_ms[k] << shift;
	if (wait > d->ack_timeout_max_ms)
		wait = d->ack_timeout_max_ms;
	if (e->tries[k] < 255)
		e->tries[k]++;
	e->due[k] = now + wait;
	e->sent_ms[k] = now;
	return LT_OK;
}

/* NNG took (or gave up on) the message waiting in kind k's send aio. A
 * message it gave up on is still in flight for us and is resent when its
 * ack is overdue. */
static void send_cb(void *arg)
{
	struct send_ctx *c = arg;
	struct lt_delivery *d = c->d;
	int rv = nng_aio_result(d->saio[c->k]);
	if (rv != 0) {
		nng_msg *m = nng_aio_get_msg(d->saio[c->k]);
		nng_aio_set_msg(d->saio[c->k], NULL);
		if (m)
			nng_msg_free(m);
	}
	pthread_mutex_lock(&d->mu);
	d->sbusy[c->k] = false;
	if (rv != 0) {
		/* Never handed to a consumer: try again as soon as one is there,
		 * without counting it against the batch's back-off. */
		d->st.send_failed++;
		uint64_t abs = ring_find(d, d->sseq[c->k]);
		if (abs != UINT64_MAX) {
			struct ent *e = ring_at(d, abs);
			e->due[c->k] = 0;
			if (e->tries[c->k] > 0)
				e->tries[c->k]--;
		}
	}
	pthread_cond_signal(&d->wake);
	pthread_mutex_unlock(&d->mu);
}

/* Whether kind k's sends wait for its ack links: a consumer's ack link has
 * no pipe and its push link got or lost its pipe (or was opened) less than
 * ACK_LINK_WAIT_MS ago. The push and the ack sub dial (and redial, each on
 * its own back-off) apart; an ack list a consumer publishes before our sub
 * pipe exists is lost (pub/sub keeps nothing), and the batch it acked goes
 * out again after the resend timeout. At start-up, when the spool's batches
 * go out at once, the consumer saw them twice. A push link that is still
 * connecting counts too: NNG keeps what is sent meanwhile and hands it over
 * as soon as the pipe is there, maybe before the ack link's. A consumer
 * whose links stay down, or whose ack link stays down, longer than that is
 * gone or broken, and waiting for it would only hold up the kind's other
 * consumers. Called with d->mu held; takes link_mu. */
static bool acks_settling(struct lt_delivery *d, int k, int64_t now)
{
	bool wait = false;
	pthread_mutex_lock(&d->link_mu);
	for (int i = 0; i < d->n_links && !wait; i++) {
		const struct link *l = &d->links[i];
		if (l->kind != k || l->sock.id == d->sub.id || l->pair < 0 || d->links[l->pair].pipes > 0)
			continue;
		wait = now - l->changed_ms < ACK_LINK_WAIT_MS;
	}
	pthread_mutex_unlock(&d->link_mu);
	return wait;
}

/* One pass over kind k: resends that are due, then new sends while the
 * in-flight list has room. Returns true if it stopped at SENDS_PER_PASS with
 * more to do. */
static bool pump_kind(struct lt_delivery *d, int k, int64_t now, int *budget)
{
	uint8_t bit = (uint8_t)(1u << k);
	if (!d->required[k] || d->sbusy[k] || now < d->blocked_until[k])
		return false;
	if (acks_settling(d, k, now)) {
		d->ack_wait = true;
		return false;
	}
	for (int i = 0; i < d->n_infl[k]; i++) {
		uint64_t abs = d->infl[k][i];
		struct ent *e = ring_at(d, abs);
		if (e->due[k] > now)
			continue;
		if (*budget <= 0)
			return true;
		int rc = send_ent(d, k, abs, now);
		if (rc == LT_EAGAIN || d->sbusy[k])
			return false;
		(*budget)--;
		if (rc == LT_EIO)
			i = -1; /* the list changed; rescan (due times moved on) */
	}
	while (d->n_infl[k] < d->max_inflight && d->cursor[k] < ring_end(d)) {
		uint64_t abs = d->cursor[k];
		struct ent *e = ring_at(d, abs);
		if (e->acked & bit) {
			d->cursor[k]++;
			continue;
		}
		if (*budget <= 0)
			return true;
		int rc = send_ent(d, k, abs, now);
		if (rc == LT_EAGAIN)
			return false;
		(*budget)--;
		if (rc == LT_OK) {
			if (d->n_infl[k] == 0)
				d->infl_since[k] = now;
			d->infl[k][d->n_infl[k]++] = abs;
			d->cursor[k]++;
		}
		if (d->sbusy[k])
			return false;
	}
	return false;
}

/* How long a kind's send aio may stay busy before the worker cancels it.
 * The aio has a timeout of ack_timeout_ms, so this only fires when NNG 1.5.2
 * never completes it: seen once in the fault test, a producer whose
 * processor kind stayed busy for minutes after the processor was killed.
 * Cancelling completes the aio with an error; send_cb then frees the kind
 * and the batch is resent like any unacked one. */
static int64_t send_watchdog_ms(const struct lt_delivery *d)
{
	return 2 * (int64_t)d->ack_timeout_ms + 1000;
}

/* Cancel the send aio of every kind busy past the watchdog. Called with
 * d->mu held; drops it around nng_aio_cancel, whose completion takes it. */
static void send_watchdog(struct lt_delivery *d, int64_t now)
{
	for (int k = 0; k < NKINDS; k++) {
		if (!d->sbusy[k] || now - d->sbusy_since[k] < send_watchdog_ms(d))
			continue;
		d->sbusy_since[k] = now; /* at most one cancel per period */
		d->st.send_watchdog++;
		pthread_mutex_unlock(&d->mu);
		nng_aio_cancel(d->saio[k]);
		pthread_mutex_lock(&d->mu);
	}
}

/* ---- dialers ---- */

/* NNG calls this on its own threads for every pipe of our sockets: count
 * each link's pipes by the dialer that made them. Takes only link_mu. */
static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct lt_delivery *d = arg;
	uint32_t pid = (uint32_t)nng_pipe_id(p);
	int64_t now = mono_ms();
	pthread_mutex_lock(&d->link_mu);
	if (ev == NNG_PIPE_EV_ADD_PRE) {
		int did = nng_dialer_id(nng_pipe_dialer(p));
		for (int i = 0; i < d->n_links; i++) {
			struct link *l = &d->links[i];
			if (did <= 0 || l->dialer_id != (uint32_t)did || l->pipes >= LINK_PIPES)
				continue;
			if (l->pipes == 0)
				l->changed_ms = now;
			l->pipe_ids[l->pipes++] = pid;
			l->down_since = 0;
			break;
		}
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		for (int i = 0; i < d->n_links; i++) {
			struct link *l = &d->links[i];
			for (int j = 0; j < l->pipes; j++) {
				if (l->pipe_ids[j] != pid)
					continue;
				l->pipe_ids[j] = l->pipe_ids[--l->pipes];
				if (l->pipes == 0)
					l->down_since = l->changed_ms = now;
				goto out;
			}
		}
	}
out:
	pthread_mutex_unlock(&d->link_mu);
}

/* Create and start a new dialer for l (non-blocking: the consumer may be
 * down). The dialer's id is published before it starts, so pipe_cb knows
 * its first pipe. Worker or open only; no lock held. Returns NNG's code. */
static int link_dial(struct lt_delivery *d, struct link *l)
{
	nng_dialer nd;
	int rv = nng_dialer_create(&nd, l->sock, l->url);
	if (rv != 0)
		return rv;
	nng_dialer_set_ms(nd, NNG_OPT_RECONNMINT, RECONN_MIN_MS);
	nng_dialer_set_ms(nd, NNG_OPT_RECONNMAXT, RECONN_MAX_MS);
	pthread_mutex_lock(&d->link_mu);
	l->dialer = nd;
	l->dialer_id = (uint32_t)nng_dialer_id(nd);
	pthread_mutex_unlock(&d->link_mu);
	rv = nng_dialer_start(nd, NNG_FLAG_NONBLOCK);
	if (rv != 0) {
		pthread_mutex_lock(&d->link_mu);
		l->dialer_id = 0;
		pthread_mutex_unlock(&d->link_mu);
		nng_dialer_close(nd);
	}
	return rv;
}

/* How long a kind with batches in flight may go without any ack before its
 * dialers are replaced although they have pipes (a pipe NNG keeps but that
 * carries nothing). Longer than a resend back-off step, so a consumer that
 * is only slow or waiting for its database is left alone for a while. */
static int64_t silent_ms(const struct lt_delivery *d)
{
	int64_t s = 4 * (int64_t)d->ack_timeout_ms;
	return s > d->ack_timeout_max_ms ? s : d->ack_timeout_max_ms;
}

/* When the latest of kind k's links got its first pipe, among those that
 * have one now (0: none has). A kind's silence counts from then: batches
 * sent while its consumers were away waited in NNG's queue, and a consumer
 * that has just connected cannot have acked them yet. Replacing its dialers
 * then only closed the pipe NNG was draining that queue into; NNG 1.5.2
 * leaks a message it hands to a pipe that is closing (nanomsg/nng#1713,
 * fixed in 1.7.0), seen as an nng_msg from send_ent that LeakSanitizer
 * found when a consumer came up after silent_ms. Takes link_mu. */
static int64_t kind_up_since(struct lt_delivery *d, int k)
{
	int64_t up = 0;
	pthread_mutex_lock(&d->link_mu);
	for (int i = 0; i < d->n_links; i++) {
		const struct link *l = &d->links[i];
		if (l->kind == k && l->pipes > 0 && l->changed_ms > up)
			up = l->changed_ms;
	}
	pthread_mutex_unlock(&d->link_mu);
	return up;
}

/* Replace the dialers that need it: a link without a pipe for
 * LINK_DOWN_MS (its consumer is gone, or NNG stopped redialing), and every
 * link of a kind that acked nothing for silent_ms while batches were in
 * flight and its links had pipes (kind_up_since). A consumer that is silent
 * because it waits for its database gains nothing from this and loses the
 * acks in flight each time, so while the kind stays silent the period
 * doubles (silent_ms, 2x, 4x, then every 8x).
 * Called by the worker with d->mu held; drops it around the NNG calls (pipe
 * callbacks and acks go on meanwhile). */
static void links_check(struct lt_delivery *d, int64_t now)
{
	bool silent[NKINDS] = {false, false};
	for (int k = 0; k < NKINDS; k++) {
		if (!d->required[k] || d->n_infl[k] == 0)
			continue;
		int64_t up = kind_up_since(d, k);
		if (up == 0)
			continue; /* no pipe: nothing to close, LINK_DOWN_MS redials */
		int64_t last = d->last_ack_ms[k] > d->infl_since[k] ? d->last_ack_ms[k] : d->infl_since[k];
		if (up > last)
			last = up;
		int shift = d->kind_redials[k] < 3 ? d->kind_redials[k] : 3;
		if (now - last >= silent_ms(d) && now - d->kind_redial_ms[k] >= silent_ms(d) << shift) {
			silent[k] = true;
			d->kind_redial_ms[k] = now;
			d->kind_redials[k]++;
		}
	}
	for (int i = 0; i < d->n_links; i++) {
		struct link *l = &d->links[i];
		pthread_mutex_lock(&d->link_mu);
		bool down = l->pipes == 0 && l->down_since > 0 && now - l->down_since >= LINK_DOWN_MS;
		if (down)
			l->down_since = now; /* next attempt after another LINK_DOWN_MS */
		pthread_mutex_unlock(&d->link_mu);
		if (!down && !silent[l->kind])
			continue;
		d->st.redials++;
		if (!down)
			d->st.silent_redials++;
		pthread_mutex_unlock(&d->mu);
		nng_dialer old = l->dialer;
		if (nng_dialer_id(old) > 0)
			nng_dialer_close(old);
		link_dial(d, l); /* on failure: no dialer, still down, tried again later */
		pthread_mutex_lock(&d->mu);
	}
}

static int64_t next_wake(struct lt_delivery *d, int64_t now)
{
	int64_t w = d->m.next_ms > now ? d->m.next_ms : now + METRICS_EVERY_MS;
	if (d->ack_wait && now + ACK_LINK_POLL_MS < w)
		w = now + ACK_LINK_POLL_MS; /* pipe_cb does not wake the worker */
	if (d->open_count > 0) {
		/* Past linger_ms a held batch waits for an ack (which signals
		 * the worker) or for linger_max_ms. */
		int64_t o = now < d->open_deadline ? d->open_deadline : d->open_max_deadline;
		if (waits_for_company(d, now))
			o = d->open_few_deadline;
		if (o < w)
			w = o;
	}
	for (int k = 0; k < NKINDS; k++) {
		if (!d->required[k])
			continue;
		if (d->sbusy[k]) {
			/* Woken by its send callback, or by the watchdog below. */
			int64_t dog = d->sbusy_since[k] + send_watchdog_ms(d);
			if (dog < w)
				w = dog;
			continue;
		}
		if (now < d->blocked_until[k]) {
			if (d->blocked_until[k] < w)
				w = d->blocked_until[k];
			continue;
		}
		for (int i = 0; i < d->n_infl[k]; i++) {
			int64_t due = ring_at(d, d->infl[k][i])->due[k];
			if (due < w)
				w = due;
		}
	}
	return w;
}

static struct lt_series *counter_series(const char *name, const char *help, const char *source)
{
	return lt_metrics_series(lt_metrics_counter(name, help, "source", NULL), source, NULL);
}

static struct lt_series *gauge_series(const char *name, const char *help, const char *source)
{
	return lt_metrics_series(lt_metrics_gauge(name, help, "source", NULL), source, NULL);
}

static void metrics_init(struct lt_delivery *d)
{
	const char *s = d->source_id;
	d->m.pushed =
	    counter_series("livetap_delivery_records_pushed_total", "Records accepted for delivery.", s);
	d->m.rejected = counter_series("livetap_delivery_records_rejected_total",
				       "Records refused because the window and spool were full.", s);
	d->m.acked = counter_series("livetap_delivery_records_acked_total",
				    "Records acknowledged by every consumer kind.", s);
	d->m.sent = counter_series("livetap_delivery_batches_sent_total", "Batch sends, first time.", s);
	d->m.resent = counter_series("livetap_delivery_batches_resent_total",
				     "Batch sends after an ack timeout or a restart.", s);
	d->m.corrupt = counter_series("livetap_delivery_spool_corrupt_total",
				      "Corrupt spool tails or records dropped on open.", s);
	d->m.acks_bad =
	    counter_series("livetap_delivery_acks_bad_total", "Ack messages that did not decode.", s);
	d->m.lost = counter_series("livetap_delivery_records_lost_total",
				   "Records given up because their spool copy was unreadable.", s);
	d->m.pending =
	    gauge_series("livetap_delivery_pending_records", "Sealed records not yet acknowledged.", s);
	d->m.spool_bytes = gauge_series("livetap_delivery_spool_bytes", "Bytes in the spool on disk.", s);
	d->m.window_bytes = gauge_series("livetap_delivery_window_bytes", "Batch bytes held in memory.", s);
}

/* Push the counters' growth since the last call into the registry. */
static void metrics_update(struct lt_delivery *d)
{
	struct lt_delivery_stats *l = &d->m.last, *c = &d->st;
	lt_metrics_add(d->m.pushed, c->pushed - l->pushed);
	lt_metrics_add(d->m.rejected, c->rejected - l->rejected);
	lt_metrics_add(d->m.acked, c->acked_records - l->acked_records);
	lt_metrics_add(d->m.sent, c->sent - l->sent);
	lt_metrics_add(d->m.resent, c->resent - l->resent);
	lt_metrics_add(d->m.corrupt, c->spool_corrupt - l->spool_corrupt);
	lt_metrics_add(d->m.acks_bad, c->acks_bad - l->acks_bad);
	lt_metrics_add(d->m.lost, c->lost_records - l->lost_records);
	*l = *c;
	lt_metrics_set(d->m.pending, (double)c->pending_records);
	lt_metrics_set(d->m.window_bytes, (double)d->window_bytes);
	if (d->spool) {
		struct lt_spool_stats ss;
		lt_spool_stats(d->spool, &ss);
		lt_metrics_set(d->m.spool_bytes, (double)ss.bytes);
	}
}

static void *worker(void *arg)
{
	struct lt_delivery *d = arg;
	pthread_mutex_lock(&d->mu);
	while (!d->closing) {
		int64_t now = mono_ms();
		if (d->open_count > 0 && now >= d->open_deadline) {
			bool held = d->open_held;
			if (!open_due(d, now)) {
				/* held for an ack, unless only waiting for company */
				if (!waits_for_company(d, now))
					d->open_held = true;
			} else if (seal(d) != LT_OK) {
				d->open_deadline = now + (d->linger_ms > 10 ? d->linger_ms : 10);
				d->open_max_deadline = d->open_deadline;
			} else if (held) {
				d->st.batches_held++;
			}
		}
		if (now >= d->m.next_ms) {
			metrics_update(d);
			d->m.next_ms = now + METRICS_EVERY_MS;
		}
		send_watchdog(d, now);
		links_check(d, now);
		int budget = SENDS_PER_PASS;
		bool more = false;
		d->ack_wait = false;
		for (int k = 0; k < NKINDS; k++)
			more |= pump_kind(d, k, now, &budget);
		if (more) {
			/* Let pushes and acks in, then carry on. */
			pthread_mutex_unlock(&d->mu);
			pthread_mutex_lock(&d->mu);
			continue;
		}
		int64_t w = next_wake(d, now);
		if (w > now) {
			struct timespec ts = mono_deadline(w);
			pthread_cond_timedwait(&d->wake, &d->mu, &ts);
		}
	}
	pthread_mutex_unlock(&d->mu);
	return NULL;
}

/* ---- acks ---- */

/* One ack round trip of kind k (ms): update the smoothed RTT and the resend
 * timeout. A consumer that falls behind answers later and later; resending to
 * it after a fixed timeout would only add copies to its queue. */
static void rtt_sample(struct lt_delivery *d, int k, int64_t rtt_ms)
{
	int64_t r = (rtt_ms < 0 ? 0 : rtt_ms) * 1000;
	if (d->srtt_us[k] == 0) {
		d->srtt_us[k] = r > 0 ? r : 1;
		d->rttvar_us[k] = r / 2;
	} else {
		int64_t dev = d->srtt_us[k] > r ? d->srtt_us[k] - r : r - d->srtt_us[k];
		d->rttvar_us[k] += (dev - d->rttvar_us[k]) / 4;
		d->srtt_us[k] += (r - d->srtt_us[k]) / 8;
		if (d->srtt_us[k] <= 0)
			d->srtt_us[k] = 1;
	}
	int64_t rto = (d->srtt_us[k] + 4 * d->rttvar_us[k]) / 1000;
	if (rto < d->ack_timeout_ms)
		rto = d->ack_timeout_ms;
	if (rto > d->ack_timeout_max_ms)
		rto = d->ack_timeout_max_ms;
	d->rto_ms[k] = (int)rto;
}

static void apply_ack(struct lt_delivery *d, int k, uint64_t seq)
{
	uint8_t bit = (uint8_t)(1u << k);
	uint64_t abs = ring_find(d, seq);
	if (abs == UINT64_MAX) {
		d->st.acks_stale++;
		return;
	}
	struct ent *e = ring_at(d, abs);
	if (e->acked & bit) {
		d->st.acks_stale++;
		return;
	}
	e->acked |= bit;
	d->st.acks++;
	infl_remove(d, k, abs);
	int64_t now = mono_ms();
	if (e->tries[k] == 1 && !e->recovered)
		rtt_sample(d, k, now - e->sent_ms[k]);
	if (now - d->last_ack_ms[k] > d->ack_timeout_ms) {
		/* The kind was silent for longer than the ack timeout and is back
		 * (a consumer restarted, Redis or PostgreSQL came back): what it
		 * did not ack meanwhile was most likely dropped, so send it again
		 * now instead of waiting out each batch's back-off. */
		for (int i = 0; i < d->n_infl[k]; i++) {
			struct ent *o = ring_at(d, d->infl[k][i]);
			if (o->tries[k] > 1 && o->due[k] > now)
				o->due[k] = now;
		}
	}
	d->last_ack_ms[k] = now;
	d->kind_redials[k] = 0;
	if (e->acked == ALL_KINDS)
		ent_done(d, e);
	pthread_cond_signal(&d->wake);
}

static void ack_cb(void *arg)
{
	struct lt_delivery *d = arg;
	int rv = nng_aio_result(d->ack_aio);
	if (rv != 0) {
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			return;
		nng_recv_aio(d->sub, d->ack_aio);
		return;
	}
	nng_msg *m = nng_aio_get_msg(d->ack_aio);
	nng_aio_set_msg(d->ack_aio, NULL);
	const uint8_t *p = nng_msg_body(m);
	size_t n = nng_msg_len(m);
	struct lt_wire_batch b;
	int kind = -1;
	if (n > 1 && p[0] == 0 && lt_wire_batch_decode(p + 1, n - 1, &b) == LT_OK && b.kind == LT_WIRE_KIND_ACKS) {
		for (int k = 0; k < NKINDS; k++)
			if (b.flags == wire_kind[k])
				kind = k;
	}
	/* Every fetcher gets every consumer's ack lists (bus.h): ours are the
	 * entries with our source. */
	pthread_mutex_lock(&d->mu);
	if (kind < 0) {
		d->st.acks_bad++;
	} else {
		struct lt_wire_acks_iter it;
		lt_wire_acks_iter_init(&it, &b);
		for (;;) {
			const char *src;
			size_t sl;
			uint64_t seq;
			int r = lt_wire_acks_next(&it, &src, &sl, &seq);
			if (r == LT_EEOF)
				break;
			if (r != LT_OK) {
				d->st.acks_bad++;
				break;
			}
			if (sl != d->source_len || memcmp(src, d->source_id, sl) != 0)
				continue;
			if (d->required[kind])
				apply_ack(d, kind, seq);
			else
				d->st.acks_stale++;
		}
	}
	pthread_mutex_unlock(&d->mu);
	nng_msg_free(m);
	nng_recv_aio(d->sub, d->ack_aio);
}

/* ---- open / close ---- */

/* Recovery: each record found in the spool becomes a pending batch. */
static bool recover_cb(void *ctx, const struct lt_spool_pos *pos, const uint8_t *data, size_t len)
{
	struct lt_delivery *d = ctx;
	struct lt_wire_batch b;
	if (lt_wire_batch_decode(data, len, &b) != LT_OK || b.kind != LT_WIRE_KIND_DATA ||
	    strcmp(b.source_id, d->source_id) != 0 || (d->ring_n > 0 && b.seq <= d->max_seen_seq)) {
		d->st.spool_corrupt++;
		return false;
	}
	struct ent e = {.seq = b.seq,
			.count = b.count,
			.len = (uint32_t)len,
			.pos = *pos,
			.spooled = true,
			.recovered = true};
	for (int k = 0; k < NKINDS; k++)
		if (!d->required[k])
			e.acked |= (uint8_t)(1u << k);
	if (d->window_bytes + len <= d->window_max) {
		e.data = malloc(len);
		if (e.data) {
			memcpy(e.data, data, len);
			d->window_bytes += len;
		}
	}
	if (ring_push(d, &e) != LT_OK) {
		free(e.data);
		if (e.data)
			d->window_bytes -= len;
		return true; /* keep it on disk; the next run tries again */
	}
	if (b.seq > d->max_seen_seq)
		d->max_seen_seq = b.seq;
	d->st.recovered_batches++;
	d->st.recovered_records += b.count;
	d->st.pending_batches++;
	d->st.pending_records += b.count;
	return true;
}

/* Add a link for url (or its ack URL) on socket s. LT_OK, LT_ECONN for a URL
 * without an ack URL, LT_ENOMEM. */
static int link_add(struct lt_delivery *d, nng_socket s, int k, const char *url, bool ack, struct lt_error *e)
{
	char *u = ack ? lt_bus_ack_url(url) : strdup(url);
	if (!u)
		return ack ? lt_error_set(e, LT_ECONN, "delivery: bad consumer URL %s", url)
			   : lt_error_set(e, LT_ENOMEM, "delivery: out of memory");
	int me = d->n_links++;
	int64_t now = mono_ms();
	d->links[me] = (struct link){.sock = s, .url = u, .kind = k, .down_since = now, .changed_ms = now, .pair = -1};
	if (ack) {
		/* the consumer's push link, added before (same kind and URL) */
		for (int i = 0; i < me; i++) {
			struct link *p = &d->links[i];
			if (p->kind == k && p->pair < 0 && p->sock.id != s.id && !strcmp(p->url, url)) {
				p->pair = me;
				d->links[me].pair = i;
				break;
			}
		}
	}
	return LT_OK;
}

/* Watch the pipes of socket s (see pipe_cb). */
static int watch_pipes(struct lt_delivery *d, nng_socket s)
{
	int rv = nng_pipe_notify(s, NNG_PIPE_EV_ADD_PRE, pipe_cb, d);
	return rv ? rv : nng_pipe_notify(s, NNG_PIPE_EV_REM_POST, pipe_cb, d);
}

static void set_reconnect(nng_socket s)
{
	nng_socket_set_ms(s, NNG_OPT_RECONNMINT, RECONN_MIN_MS);
	nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, RECONN_MAX_MS);
}

int lt_delivery_open(const struct lt_delivery_opts *o, struct lt_delivery **out, struct lt_error *e)
{
	int rc, rv;
	char *dir = NULL;
	if (!o || !out || !o->source_id || !*o->source_id || strlen(o->source_id) > LT_WIRE_SOURCE_MAX)
		return lt_error_set(e, LT_EINVAL, "delivery: source_id must be 1..%d bytes",
				    LT_WIRE_SOURCE_MAX);
	if (o->n_processors < 0 || o->n_persisters < 0 || (o->n_processors == 0 && o->n_persisters == 0))
		return lt_error_set(e, LT_ECONFIG, "delivery: no processor or persister URL");
	if (o->batch_max < 0 || o->linger_ms < 0 || o->linger_max_ms < 0 || o->ack_timeout_ms < 0 ||
	    o->max_inflight < 0)
		return lt_error_set(e, LT_ECONFIG, "delivery: negative option");
	struct lt_delivery *d = calloc(1, sizeof(*d));
	if (!d)
		return lt_error_set(e, LT_ENOMEM, "delivery: out of memory");
	pthread_mutex_init(&d->mu, NULL);
	pthread_mutex_init(&d->link_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->wake, &ca);
	pthread_cond_init(&d->drained, &ca);
	pthread_condattr_destroy(&ca);
	lt_buf_init(&d->open, 0);

	d->source_id = strdup(o->source_id);
	if (!d->source_id) {
		rc = lt_error_set(e, LT_ENOMEM, "delivery: out of memory");
		goto fail;
	}
	d->source_len = strlen(d->source_id);
	d->batch_max = o->batch_max ? o->batch_max : 128;
	if (d->batch_max > (int)LT_WIRE_BATCH_MAX_RECORDS)
		d->batch_max = LT_WIRE_BATCH_MAX_RECORDS;
	d->batch_bytes_max = o->batch_bytes_max ? o->batch_bytes_max : (1u << 20);
	d->linger_ms = o->linger_ms ? o->linger_ms : 2;
	d->linger_max_ms = o->linger_max_ms ? o->linger_max_ms : 50;
	if (d->linger_max_ms < d->linger_ms)
		d->linger_max_ms = d->linger_ms;
	d->ack_timeout_ms = o->ack_timeout_ms ? o->ack_timeout_ms : 2000;
	d->ack_timeout_max_ms = o->ack_timeout_max_ms ? o->ack_timeout_max_ms : 10000;
	if (d->ack_timeout_max_ms < d->ack_timeout_ms)
		d->ack_timeout_max_ms = d->ack_timeout_ms;
	for (int k = 0; k < NKINDS; k++)
		d->rto_ms[k] = d->ack_timeout_ms;
	d->max_inflight = o->max_inflight ? o->max_inflight : 256;
	d->window_max = o->window_bytes ? o->window_bytes : (16u << 20);
	d->required[0] = o->n_processors > 0;
	d->required[1] = o->n_persisters > 0;
	for (int k = 0; k < NKINDS; k++) {
		d->infl[k] = calloc((size_t)d->max_inflight, sizeof(uint64_t));
		if (!d->infl[k]) {
			rc = lt_error_set(e, LT_ENOMEM, "delivery: out of memory");
			goto fail;
		}
	}

	if (o->spool_dir && *o->spool_dir) {
		dir = lt_spool_dir_for(o->spool_dir, d->source_id);
		if (!dir) {
			rc = lt_error_set(e, LT_ENOMEM, "delivery: out of memory");
			goto fail;
		}
		struct lt_spool_opts so = {.segment_bytes = o->spool_segment_bytes,
					   .max_bytes = o->spool_max_bytes,
					   .fsync = o->fsync};
		rc = lt_spool_open(dir, &so, recover_cb, d, &d->spool, e);
		if (rc != LT_OK)
			goto fail;
		struct lt_spool_stats ss;
		lt_spool_stats(d->spool, &ss);
		d->st.spool_corrupt += ss.corrupt;
	}
	uint64_t now_us = wall_us();
	d->next_seq = d->ring_n > 0 && d->max_seen_seq >= now_us ? d->max_seen_seq + 1 : now_us;

	const char *const *urls[NKINDS] = {o->processors, o->persisters};
	int nurls[NKINDS] = {o->n_processors, o->n_persisters};
	d->links = calloc(2 * ((size_t)o->n_processors + (size_t)o->n_persisters), sizeof(*d->links));
	if (!d->links) {
		rc = lt_error_set(e, LT_ENOMEM, "delivery: out of memory");
		goto fail;
	}
	for (int k = 0; k < NKINDS; k++) {
		if (!d->required[k])
			continue;
		if ((rv = nng_push0_open(&d->push[k])) != 0) {
			rc = lt_error_set(e, LT_ENOMEM, "delivery: push socket: %s", nng_strerror(rv));
			goto fail;
		}
		d->push_open[k] = true;
		d->sctx[k] = (struct send_ctx){d, k};
		if ((rv = nng_aio_alloc(&d->saio[k], send_cb, &d->sctx[k])) != 0) {
			rc = lt_error_set(e, LT_ENOMEM, "delivery: aio: %s", nng_strerror(rv));
			goto fail;
		}
		nng_socket_set_int(d->push[k], NNG_OPT_SENDBUF, PUSH_SENDBUF);
		set_reconnect(d->push[k]);
		if ((rv = watch_pipes(d, d->push[k])) != 0) {
			rc = lt_error_set(e, LT_ENOMEM, "delivery: pipe notify: %s", nng_strerror(rv));
			goto fail;
		}
		for (int i = 0; i < nurls[k]; i++)
			if ((rc = link_add(d, d->push[k], k, urls[k][i], false, e)) != LT_OK)
				goto fail;
	}
	if ((rv = nng_sub0_open(&d->sub)) != 0) {
		rc = lt_error_set(e, LT_ENOMEM, "delivery: sub socket: %s", nng_strerror(rv));
		goto fail;
	}
	d->sub_open = true;
	nng_socket_set_int(d->sub, NNG_OPT_RECVBUF, SUB_RECVBUF);
	set_reconnect(d->sub);
	if ((rv = nng_socket_set(d->sub, NNG_OPT_SUB_SUBSCRIBE, "", 1)) != 0) { /* ack lists: bus.h */
		rc = lt_error_set(e, LT_ECONN, "delivery: subscribe: %s", nng_strerror(rv));
		goto fail;
	}
	if ((rv = watch_pipes(d, d->sub)) != 0) {
		rc = lt_error_set(e, LT_ENOMEM, "delivery: pipe notify: %s", nng_strerror(rv));
		goto fail;
	}
	for (int k = 0; k < NKINDS; k++)
		for (int i = 0; i < nurls[k]; i++)
			if ((rc = link_add(d, d->sub, k, urls[k][i], true, e)) != LT_OK)
				goto fail;
	for (int i = 0; i < d->n_links; i++) {
		if ((rv = link_dial(d, &d->links[i])) != 0) {
			rc = lt_error_set(e, LT_ECONN, "delivery: cannot dial %s: %s", d->links[i].url,
					  nng_strerror(rv));
			goto fail;
		}
	}
	if ((rv = nng_aio_alloc(&d->ack_aio, ack_cb, d)) != 0) {
		rc = lt_error_set(e, LT_ENOMEM, "delivery: aio: %s", nng_strerror(rv));
		goto fail;
	}
	nng_recv_aio(d->sub, d->ack_aio);
	metrics_init(d);
	if (pthread_create(&d->thr, NULL, worker, d) != 0) {
		rc = lt_error_set(e, LT_ENOMEM, "delivery: cannot start thread");
		goto fail;
	}
	d->thr_started = true;
	free(dir);
	*out = d;
	return LT_OK;
fail:
	free(dir);
	lt_delivery_close(d);
	return rc;
}

int lt_delivery_drain(struct lt_delivery *d, int timeout_ms)
{
	int rc = LT_OK;
	int64_t deadline = mono_ms() + (timeout_ms < 0 ? (int64_t)1 << 50 : timeout_ms);
	struct timespec ts = mono_deadline(deadline);
	pthread_mutex_lock(&d->mu);
	if (d->open_count > 0 && seal(d) != LT_OK)
		d->open_deadline = mono_ms();
	pthread_cond_signal(&d->wake);
	while (d->st.pending_batches > 0 || d->open_count > 0) {
		if (pthread_cond_timedwait(&d->drained, &d->mu, &ts) == ETIMEDOUT) {
			rc = d->st.pending_batches > 0 || d->open_count > 0 ? LT_ETIMEDOUT : LT_OK;
			break;
		}
		if (d->open_count > 0 && d->st.pending_batches == 0 && seal(d) != LT_OK)
			d->open_deadline = mono_ms();
	}
	pthread_mutex_unlock(&d->mu);
	return rc;
}

void lt_delivery_stats(struct lt_delivery *d, struct lt_delivery_stats *out)
{
	pthread_mutex_lock(&d->mu);
	*out = d->st;
	out->open_records = d->open_count;
	out->window_bytes = d->window_bytes;
	for (int k = 0; k < NKINDS; k++) {
		out->ack_rtt_us[k] = (uint64_t)d->srtt_us[k];
		out->resend_timeout_ms[k] = (uint64_t)d->rto_ms[k];
	}
	out->next_seq = d->next_seq;
	out->ring_entries = d->ring_n;
	pthread_mutex_lock(&d->link_mu);
	out->links_down = 0;
	for (int i = 0; i < d->n_links; i++)
		out->links_down += d->links[i].pipes == 0;
	pthread_mutex_unlock(&d->link_mu);
	if (d->spool) {
		struct lt_spool_stats ss;
		lt_spool_stats(d->spool, &ss);
		out->spool_bytes = ss.bytes;
		out->spool_segments = ss.segments;
	}
	pthread_mutex_unlock(&d->mu);
}

/* The NNG teardown of a delivery, run on its own thread so that close can
 * bound how long it waits: NNG 1.5.2 (Debian 12) can deadlock in nng_close
 * (nanomsg/nng#1543, fixed after 1.5.2), seen here as a fetcher that never
 * exits after SIGTERM. Everything the caller cares about is on disk before
 * this runs. */
struct nng_teardown {
	struct lt_delivery *d;
	pthread_mutex_t mu;
	pthread_cond_t done_cv;
	bool done;
};

static void *nng_teardown_run(void *arg)
{
	struct nng_teardown *t = arg;
	struct lt_delivery *d = t->d;

	if (d->sub_open)
		nng_close(d->sub);
	if (d->ack_aio) {
		nng_msg *m = nng_aio_get_msg(d->ack_aio);
		if (m)
			nng_msg_free(m);
		nng_aio_free(d->ack_aio);
	}
	for (int k = 0; k < NKINDS; k++) {
		if (d->saio[k])
			nng_aio_stop(d->saio[k]);
		if (d->push_open[k])
			nng_close(d->push[k]);
		if (d->saio[k]) {
			nng_msg *m = nng_aio_get_msg(d->saio[k]);
			if (m)
				nng_msg_free(m);
			nng_aio_free(d->saio[k]);
		}
	}
	pthread_mutex_lock(&t->mu);
	t->done = true;
	pthread_cond_signal(&t->done_cv);
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

/* Close d's NNG sockets, waiting at most timeout_ms. Returns true when the
 * teardown finished; false when it hung, in which case the teardown thread
 * and the NNG objects are left to the process's exit (d must then not be
 * freed either, since the thread still reads it). */
static bool nng_teardown_bounded(struct lt_delivery *d, int timeout_ms)
{
	struct nng_teardown *t = calloc(1, sizeof(*t));
	pthread_t thr;
	if (!t) {
		struct nng_teardown local = {.d = d};
		pthread_mutex_init(&local.mu, NULL);
		pthread_cond_init(&local.done_cv, NULL);
		nng_teardown_run(&local); /* no memory for a thread: wait */
		pthread_mutex_destroy(&local.mu);
		pthread_cond_destroy(&local.done_cv);
		return true;
	}
	t->d = d;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->done_cv, NULL);
	if (pthread_create(&thr, NULL, nng_teardown_run, t) != 0) {
		nng_teardown_run(t);
		goto finished;
	}
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&t->mu);
	while (!t->done)
		if (pthread_cond_timedwait(&t->done_cv, &t->mu, &until) == ETIMEDOUT)
			break;
	bool done = t->done;
	pthread_mutex_unlock(&t->mu);
	if (!done) {
		pthread_detach(thr);
		return false; /* t, d and the sockets stay for the exit */
	}
	pthread_join(thr, NULL);
finished:
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->done_cv);
	free(t);
	return true;
}

void lt_delivery_close(struct lt_delivery *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->mu);
	d->closing = true;
	pthread_cond_broadcast(&d->wake);
	pthread_cond_broadcast(&d->drained);
	pthread_mutex_unlock(&d->mu);
	if (d->thr_started)
		pthread_join(d->thr, NULL);
	if (d->ack_aio)
		nng_aio_stop(d->ack_aio);
	/* Data first: the open batch goes to the spool before any NNG teardown,
	 * so a close that hangs in NNG cannot lose it. */
	if (d->open_count > 0 && d->spool)
		seal(d); /* the spool keeps it for the next run */
	/* What is not on disk now is gone: count it. */
	d->st.lost_records += d->open_count;
	for (size_t i = 0; i < d->ring_n; i++) {
		struct ent *e = &d->ring[(d->ring_head + i) % d->ring_cap];
		if (e->acked != ALL_KINDS && !e->spooled)
			d->st.lost_records += e->count;
	}
	if (d->thr_started)
		metrics_update(d);
	lt_spool_close(d->spool);
	d->spool = NULL;
	if (!nng_teardown_bounded(d, 3000)) {
		fprintf(stderr,
			"livetap: source=%s: NNG socket close hung (NNG 1.5.2 bug "
			"nanomsg/nng#1543); the spool is closed, leaving the sockets to process exit\n",
			d->source_id ? d->source_id : "?");
		return;
	}
	for (int k = 0; k < NKINDS; k++)
		free(d->infl[k]);
	for (int i = 0; i < d->n_links; i++)
		free(d->links[i].url);
	free(d->links);
	pthread_mutex_destroy(&d->link_mu);
	for (size_t i = 0; i < d->ring_n; i++)
		free(d->ring[(d->ring_head + i) % d->ring_cap].data);
	free(d->ring);
	lt_buf_free(&d->open);
	free(d->source_id);
	pthread_cond_destroy(&d->wake);
	pthread_cond_destroy(&d->drained);
	pthread_mutex_destroy(&d->mu);
	free(d);
}
