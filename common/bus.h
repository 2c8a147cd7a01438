/* SPDX-License-Identifier: MIT */
/*
 * bus: the consumer end of the NNG pipeline (livetap-processor,
 * livetap-persister and test consumers).
 *
 * A consumer binds two sockets: a pull socket at listen_url on which fetchers
 * push lt_wire batches, and a pub socket at ack_url on which it publishes an
 * ack once it has applied a batch. Several consumers of one kind may run at
 * once (each binds its own URLs; fetchers dial all of them and NNG push
 * load-balances). Acks travel in ack lists, one pub message each:
 *
 *   0x00 | lt_wire ack list (kind LT_WIRE_KIND_ACKS, from consumer kind)
 *
 * and a fetcher's sub socket subscribes to the topic "\0". NNG's pub/sub
 * filters at the subscriber, so every fetcher receives every ack message;
 * one message per batch made the fetchers' work grow with the square of the
 * number of rooms. A consumer therefore publishes the first ack after a quiet
 * spell at once and gathers the ones that follow for up to 10 ms (at most
 * 1024 to a message), every source in one list. Pub/sub is
 * lossy on purpose: an ack lost on the way only makes the fetcher send the
 * batch again, and consumers are idempotent.
 *
 * The sender end (batching, spool, resend) is common/delivery.h.
 *
 * Threads: lt_bus_consumer_recv from one thread at a time; lt_bus_consumer_ack
 * and lt_bus_consumer_stats from any thread. IPC listeners replace a stale socket file left by a killed
 * process.
 */
#ifndef LT_BUS_H
#define LT_BUS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct lt_bus_consumer;

/* One received batch: the raw lt_wire batch bytes. data/len stay valid until
 * lt_bus_batch_free; decode with lt_wire_batch_decode. */
struct lt_bus_batch {
	const uint8_t *data;
	size_t len;
	void *msg_; /* private: the nng_msg that owns data */
};

struct lt_bus_consumer_stats {
	uint64_t received; /* batches received */
	uint64_t received_bytes;
	uint64_t acks_sent;    /* acks published */
	uint64_t ack_errors;   /* acks that could not be encoded or published */
	uint64_t ack_messages; /* ack lists published */
};

/* Bind a pull socket at listen_url and a pub socket at ack_url (NULL means
 * lt_bus_ack_url(listen_url)). consumer_kind is LT_WIRE_CONSUMER_PROCESSOR or
 * LT_WIRE_CONSUMER_PERSISTER and is written into every ack. Returns LT_OK and
 * *out (owned by the caller, freed by lt_bus_consumer_close), LT_EINVAL for a
 * bad kind or URL, LT_ECONN if a URL cannot be bound (e filled in either case).
 * The URL strings are copied. */
int lt_bus_consumer_open(const char *listen_url, const char *ack_url, uint8_t consumer_kind,
			 struct lt_bus_consumer **out, struct lt_error *e);

/* Wait up to timeout_ms (< 0: forever, 0: poll) for the next batch. Returns
 * LT_OK with *out filled (the caller owns it until lt_bus_batch_free),
 * LT_ETIMEDOUT, or LT_ECLOSED once the consumer is being closed. */
int lt_bus_consumer_recv(struct lt_bus_consumer *c, int timeout_ms, struct lt_bus_batch *out);

/* Release a received batch; accepts NULL and an already freed batch. */
void lt_bus_batch_free(struct lt_bus_batch *b);

/* Publish "batch (source_id, seq) applied by this consumer's kind": at once
 * after a quiet spell, else within 10 ms with the acks gathered meanwhile,
 * or at lt_bus_consumer_flush_acks (close publishes what waits). Never blocks. Returns LT_OK, LT_EINVAL
 * (source_id empty or over LT_WIRE_SOURCE_MAX), LT_ENOMEM or LT_EIO; a
 * publish that fails later is counted in ack_errors. */
int lt_bus_consumer_ack(struct lt_bus_consumer *c, const char *source_id, uint64_t seq);

/* Publish the acks gathered so far now, instead of up to 10 ms later. A
 * consumer calls it when it has acked all it had in hand (its receive queue
 * is empty): the acks of one apply cycle then go out as one list, and no
 * fetcher waits up to 10 ms for them (a fetcher holds a batch that is not
 * full until the previous one is acked, delivery.h). Never blocks. */
void lt_bus_consumer_flush_acks(struct lt_bus_consumer *c);

/* A snapshot of the counters. */
void lt_bus_consumer_stats(struct lt_bus_consumer *c, struct lt_bus_consumer_stats *out);

/* Close both sockets and free c. Call it from the thread that calls recv, or
 * after that thread has stopped (recv with a timeout and check a stop flag).
 * Accepts NULL. */
void lt_bus_consumer_close(struct lt_bus_consumer *c);

/* The ack URL that goes with a listen URL, malloc'd (the caller frees it), or
 * NULL for an unsupported URL or on allocation failure:
 *   ipc:///run/p.ipc -> ipc:///run/p-ack.ipc, ipc:///run/p -> ipc:///run/p-ack,
 *   inproc://p -> inproc://p-ack, tcp://host:5555 -> tcp://host:5556. */
char *lt_bus_ack_url(const char *listen_url);

#endif
