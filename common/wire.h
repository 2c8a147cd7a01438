/* SPDX-License-Identifier: MIT */
/*
 * wire: the binary form of a LiveMessage and of a batch, as carried over NNG
 * from fetchers to processors and persisters, and of the acks that flow back.
 *
 * All integers little-endian. A batch:
 *
 *   magic "LTB" (3) | version u8 (=1) | kind u8 | flags u8 | reserved u16
 *   seq u64 | count u32 | source_id_len u8 | source_id (<= 64 bytes)
 *   count × ( record_len u32 | record bytes )
 *
 * kind LT_WIRE_KIND_DATA carries records; LT_WIRE_KIND_ACK has count = 0 and
 * says "batch (source_id, seq) applied by consumer kind <flags>";
 * LT_WIRE_KIND_ACKS, an ack list, has an empty source_id, seq 0 and says the
 * same of count entries, each
 *
 *   source_id_len u8 (1..64) | source_id | seq u64
 *
 * (what consumers publish: every fetcher receives every ack message, so one
 * message carries the acks of a few milliseconds, for every source). Every record
 * is length-prefixed so that one malformed record is skipped without taking its
 * batch-mates with it. A record:
 *
 *   version u8 (=1) | platform u8 | type u8 | flags u8 | ts i64 | count i64 |
 *   value i64 | room, msg_id, user_id, user_name (u16 len + bytes each) |
 *   content, extra (u32 len + bytes each)
 *
 * with each length checked against the limits in msg.h. Decoders never read
 * past their input and return LT_EPROTO for anything out of shape.
 */
#ifndef LT_WIRE_H
#define LT_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/msg.h"

#define LT_WIRE_VERSION 1
#define LT_WIRE_SOURCE_MAX 64
#define LT_WIRE_BATCH_MAX_RECORDS 65536
#define LT_WIRE_BATCH_MAX_BYTES (64u << 20)
#define LT_WIRE_HDR_MIN 20

enum lt_wire_kind {
	LT_WIRE_KIND_DATA = 1,
	LT_WIRE_KIND_ACK = 2,
	LT_WIRE_KIND_ACKS = 3,
};

/* Consumer kinds named in an ack's flags. */
#define LT_WIRE_CONSUMER_PROCESSOR 0x01u
#define LT_WIRE_CONSUMER_PERSISTER 0x02u

struct lt_wire_batch {
	uint8_t kind;      /* enum lt_wire_kind */
	uint8_t flags;     /* for acks: LT_WIRE_CONSUMER_* */
	uint64_t seq;
	uint32_t count;    /* records announced */
	char source_id[LT_WIRE_SOURCE_MAX + 1];
	const uint8_t *body; /* view of the records, inside the decoded input */
	size_t body_len;
};

/* Append one encoded record (without its u32 length prefix) to out. The
 * message must already respect msg.h's limits (use lt_msg_clamp); returns
 * LT_ETOOBIG otherwise, or out's sticky error. */
int lt_wire_msg_encode(struct lt_buf *out, const struct lt_msg *m);

/* Decode one record from p[0..n). On success *m's strings point into p. */
int lt_wire_msg_decode(const uint8_t *p, size_t n, struct lt_msg *m);

/* Batch writer: begin writes the header with count 0, add appends a
 * length-prefixed record and bumps the count in place, end returns the
 * sticky error. out is reset by begin. */
int lt_wire_batch_begin(struct lt_buf *out, uint8_t kind, uint8_t flags, const char *source_id, uint64_t seq);
int lt_wire_batch_add(struct lt_buf *out, const struct lt_msg *m);
uint32_t lt_wire_batch_count(const struct lt_buf *out);

/* Encode an ack for (source_id, seq) from consumer (LT_WIRE_CONSUMER_*). */
int lt_wire_ack_encode(struct lt_buf *out, uint8_t consumer, const char *source_id, uint64_t seq);

/* Ack lists. begin resets out to an empty list from consumer; add appends
 * one entry (LT_EINVAL for a source_id that is empty, over
 * LT_WIRE_SOURCE_MAX or holds a NUL, or an out that holds no list;
 * LT_ETOOBIG past LT_WIRE_BATCH_MAX_RECORDS entries), else out's sticky error. */
int lt_wire_acks_begin(struct lt_buf *out, uint8_t consumer);
int lt_wire_acks_add(struct lt_buf *out, const char *source_id, size_t len, uint64_t seq);

/* Iterate a decoded ack list (an iterator over anything else is empty).
 * next returns LT_OK with *source_id (len bytes, not NUL-terminated, a view
 * into the input) and *seq; LT_EPROTO once for an entry out of shape or
 * bytes left over after the announced count (the rest is unreadable), then
 * LT_EEOF. */
struct lt_wire_acks_iter {
	const uint8_t *p;
	size_t len;
	size_t off;
	uint32_t left;
	int broken;
};
void lt_wire_acks_iter_init(struct lt_wire_acks_iter *it, const struct lt_wire_batch *b);
int lt_wire_acks_next(struct lt_wire_acks_iter *it, const char **source_id, size_t *len, uint64_t *seq);

/* Decode a batch header; on success fills *b (body is a view into p). */
int lt_wire_batch_decode(const uint8_t *p, size_t n, struct lt_wire_batch *b);

/* Iterate the records of a decoded batch. next returns LT_OK with *m filled,
 * LT_EPROTO for a malformed record (skipped; iteration may continue), or
 * LT_EEOF when done. A bad record length that makes the rest unreadable ends
 * the iteration with LT_EPROTO and then LT_EEOF. */
struct lt_wire_iter {
	const uint8_t *p;
	size_t len;
	size_t off;
	uint32_t left;
	int broken;
};
void lt_wire_iter_init(struct lt_wire_iter *it, const struct lt_wire_batch *b);
int lt_wire_iter_next(struct lt_wire_iter *it, struct lt_msg *m);

#endif
