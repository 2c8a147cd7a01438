/* SPDX-License-Identifier: MIT */
/*
 * delivery: the sender end of the pipeline, used by every fetcher (and by the
 * test producer). It turns pushed LiveMessages into lt_wire batches, sends
 * each batch to the processors and to the persisters, and keeps it until both
 * consumer kinds have acknowledged it.
 *
 * Path of a record:
 *   lt_delivery_push copies the record into the open batch. The open batch is
 *   sealed when it holds batch_max records or batch_bytes_max bytes, or by
 *   time: linger_ms after its first record if some consumer kind has acked
 *   every batch sealed before (as TCP's Nagle rule), else when one does or
 *   at the latest linger_max_ms after its first record. So when consumers
 *   keep up a record waits linger_ms, and when they fall behind they get
 *   fewer, bigger batches instead of a growing queue of tiny ones (each batch
 *   costs a consumer a receive, a decode and an ack whatever its size). A
 *   batch of fewer than eight records waits for company up to 4 x linger_ms,
 *   at least 50 ms (within linger_max_ms): a quiet room then sends a few records a batch
 *   instead of one, which cuts a 100 msg/s fetcher's thread wake-ups. A
 *   sealed batch gets the next seq of this
 *   source and is at once appended to the room's spool (spool_dir/<source>/,
 *   see spool.h; write(2) to the page cache, fdatasync if opts.fsync) and put
 *   in the in-memory window. One internal thread sends it to one processor and
 *   one persister (NNG push load-balances over every URL of a kind), receives
 *   acks on a sub socket dialed to every consumer's ack URL (bus.h), and
 *   resends a batch to a kind that has not acked it after the kind's resend
 *   timeout, doubling up to ack_timeout_max_ms. A consumer whose push link
 *   has just connected gets nothing until its ack link has too (at most
 *   500 ms): an ack published before that would be lost and the batch sent
 *   twice. The resend timeout is the
 *   kind's smoothed ack round trip plus four deviations (RFC 6298, from acks
 *   of first sends only), never below ack_timeout_ms nor above
 *   ack_timeout_max_ms, so a consumer that is slow but alive is not sent
 *   copies it has yet to reach in its queue. When a kind acks again after a silence
 *   longer than ack_timeout_ms, what it left unacked is resent at once. Once
 *   both kinds have acked a batch it is forgotten, and a spool segment whose
 *   batches are all acked is deleted.
 *
 * Consumers must ack every batch whose header decodes, even when they dropped
 * bad records in it; a batch that is never acked is resent for ever.
 *
 * What a fetcher killed with -9 can lose: only the records of the batch still
 * open, that is at most batch_max records and at most linger_ms (default 2 ms)
 * of traffic while the consumers keep up (seven records over 50 ms in a
 * quiet room), linger_max_ms (default 50 ms) while they are behind. Everything sealed is in the spool file (in the kernel's page
 * cache, which survives a process crash; opts.fsync also covers a power cut)
 * and is sent again when the fetcher starts with the same spool_dir and
 * source_id. Consumers are idempotent, so batches sent twice count once.
 *
 * Memory is bounded: the window keeps at most window_bytes of batch data in
 * memory; older unacked batches stay only on disk and are re-read from the
 * spool to be resent. When the spool reaches spool_max_bytes (or, without a
 * spool, the window is full) and the open batch is full, push returns
 * LT_EAGAIN and the caller counts a drop. At most max_inflight batches per
 * consumer kind are sent and unacknowledged at a time (flow control, so a
 * backlog after a restart does not time out in consumer queues).
 *
 * A consumer kind with no URL configured is not waited for.
 *
 * Reconnection: every consumer URL is dialed by its own NNG dialer (one for
 * batches, one for acks) that redials within a second when its consumer
 * restarts. NNG 1.5.2 can leave such a dialer idle for good after its consumer
 * was killed with -9, so the sender also watches each dialer's pipes and
 * replaces a dialer that has had none for 3 s, and replaces every dialer of
 * a kind that has acked nothing for max(4 x ack_timeout_ms,
 * ack_timeout_max_ms) while batches are in flight and its consumers are
 * connected (again after 2, 4, then 8 times that while the kind stays
 * silent). Replacing costs at most a resend (consumers are idempotent).
 *
 * Metrics: the internal thread exports the counters about once a second to
 * common/metrics.h as livetap_delivery_* families labelled source=<source_id>
 * (records pushed/rejected/acked/lost, batches sent/resent, spool corrupt,
 * bad acks; gauges pending records, spool bytes, window bytes).
 *
 * Seqs: one per batch, increasing, never repeated for a source: they continue
 * above the highest seq found in the spool, and never start below the wall
 * clock in microseconds.
 */
#ifndef LT_DELIVERY_H
#define LT_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/msg.h"

struct lt_delivery;

struct lt_delivery_opts {
	const char *source_id;	       /* 1..LT_WIRE_SOURCE_MAX bytes, e.g. "bilibili:21452505" */
	const char *const *processors; /* NNG URLs the processors bind */
	int n_processors;
	const char *const *persisters; /* NNG URLs the persisters bind */
	int n_persisters;
	const char *spool_dir;	    /* NULL: memory only (a killed sender loses its window) */
	int batch_max;		    /* records per batch; 0 = 128 */
	size_t batch_bytes_max;	    /* encoded bytes per batch; 0 = 1 MB */
	int linger_ms;		    /* 0 = 2 */
	int linger_max_ms;	    /* while consumers are behind; 0 = 50; < linger_ms: linger_ms */
	int ack_timeout_ms;	    /* 0 = 2000 */
	int ack_timeout_max_ms;	    /* backoff cap; 0 = 10000 */
	int max_inflight;	    /* unacked batches in flight per kind; 0 = 256 */
	size_t window_bytes;	    /* batch data kept in memory; 0 = 16 MB */
	size_t spool_max_bytes;	    /* disk cap; 0 = 1 GB */
	size_t spool_segment_bytes; /* 0 = 4 MB */
	bool fsync;		    /* fdatasync each sealed batch (the sealing push waits for the disk) */
};

struct lt_delivery_stats {
	uint64_t pushed;   /* records accepted by push */
	uint64_t rejected; /* push returned LT_EAGAIN (full) */
	uint64_t invalid;  /* push refused a record it could not encode */
	uint64_t clamped;  /* records cut at msg.h limits on push */
	uint64_t batches_sealed;
	uint64_t batches_held; /* sealed after linger_ms because no consumer kind was idle */
	uint64_t sent;		/* batch sends, both kinds, first time */
	uint64_t resent;	/* batch sends after a timeout or a restart */
	uint64_t send_eagain;	/* sends that waited for room in NNG's queue */
	uint64_t send_failed;	/* sends NNG gave up on (no consumer within ack_timeout_ms) */
	uint64_t acks;		/* acks received that matched a pending batch */
	uint64_t acks_stale;	/* acks for batches no longer pending or unknown */
	uint64_t acks_bad;	/* ack messages that did not decode */
	uint64_t acked_records; /* records acked by every required kind */
	uint64_t acked_batches;
	uint64_t ring_entries; /* batches tracked in memory: pending ones and finished ones behind them */
	uint64_t ring_compactions;
	uint64_t pending_records; /* sealed, not yet acked by every kind */
	uint64_t pending_batches;
	uint64_t open_records; /* in the batch still open (lost if killed now) */
	uint64_t window_bytes; /* batch data held in memory */
	uint64_t spool_bytes;  /* bytes on disk */
	uint64_t spool_segments;
	uint64_t spool_writes;
	uint64_t spool_reads;	    /* batches re-read from disk to be sent */
	uint64_t spool_corrupt;	    /* corrupt records/tails truncated on open */
	uint64_t recovered_batches; /* found in the spool on open (resent) */
	uint64_t recovered_records;
	uint64_t spool_errors;	 /* write/read failures */
	uint64_t send_watchdog;	 /* send aios cancelled after hanging past 2 x ack timeout + 1 s */
	uint64_t redials;	 /* dialers replaced: no pipe for 3 s, or their kind silent (above) */
	uint64_t silent_redials; /* of those, replaced because their kind was silent */
	uint64_t links_down;	 /* dialers (push and ack, per consumer URL) with no pipe now */
	uint64_t lost_records;	 /* given up: spool copy unreadable, or not on disk at close */
	uint64_t next_seq;
	uint64_t ack_rtt_us[2];	       /* smoothed ack round trip: processors, persisters (0: none yet) */
	uint64_t resend_timeout_ms[2]; /* current resend timeout per kind (from the round trip) */
};

/* Open a sender for o->source_id: recover the spool (a corrupt tail is
 * truncated and counted, never fatal), dial every URL (non-blocking; consumers
 * may come up later) and start the internal thread. o and its strings are
 * copied. Returns LT_OK and *out (owned by the caller, freed by
 * lt_delivery_close), LT_EINVAL/LT_ECONFIG for bad options, LT_EIO if the
 * spool directory cannot be used, LT_EEXIST if another sender holds it, LT_ECONN if a URL is malformed,
 * LT_ENOMEM; e is filled in on failure. */
int lt_delivery_open(const struct lt_delivery_opts *o, struct lt_delivery **out, struct lt_error *e);

/* Copy *m (its strings too; over-long fields are cut per lt_msg_clamp) into
 * the open batch. Thread-safe; never waits for the network (it may write a
 * sealed batch to the spool file). Returns LT_OK, LT_EAGAIN when the window
 * and the spool are full (nothing was done), LT_EINVAL for a record that
 * cannot be encoded, LT_ECLOSED after close has begun. */
int lt_delivery_push(struct lt_delivery *d, const struct lt_msg *m);

/* Seal the open batch now instead of waiting for linger_ms. Thread-safe. */
void lt_delivery_flush(struct lt_delivery *d);

/* Seal the open batch, then wait until every pushed record is acknowledged by
 * every required consumer kind, at most timeout_ms (< 0: forever). Returns
 * LT_OK or LT_ETIMEDOUT. Other threads may keep pushing meanwhile. */
int lt_delivery_drain(struct lt_delivery *d, int timeout_ms);

/* A snapshot of the counters. Thread-safe. */
void lt_delivery_stats(struct lt_delivery *d, struct lt_delivery_stats *out);

/* Stop the thread, write the open batch to the spool (without a spool it is
 * lost: drain first), close the sockets and free d. Unacked batches stay in
 * the spool for the next open. No other thread may use d once close is
 * called. Accepts NULL. */
void lt_delivery_close(struct lt_delivery *d);

#endif
