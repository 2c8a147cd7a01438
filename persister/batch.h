/* SPDX-License-Identifier: MIT */
/*
 * batch: the persister's queue of received lt_wire batches waiting for a
 * PostgreSQL commit (internal to persister/).
 *
 * lt_batchq_add copies the bytes of a batch, decodes its header and every
 * record, and keeps the records that are fit for PostgreSQL; a record that is
 * malformed or unfit (unknown platform or type, empty room or msg_id, a ts
 * outside years 1..9999) is counted and described in an error note instead,
 * without affecting its batch-mates. A batch whose header does not decode is
 * refused as a whole (it cannot be acknowledged: its source is unknown). The
 * queue is bounded in bytes and refuses (LT_EAGAIN) rather than grows; the
 * same (source, seq) twice is kept once. Batches leave the queue in arrival
 * order, after their transaction committed.
 */
#ifndef LT_PERSISTER_BATCH_H
#define LT_PERSISTER_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/msg.h"
#include "common/wire.h"

/* One refused batch or record, for a log line and an error_logs row. */
struct lt_batch_note {
	char kind[24]; /* "bad_batch", "bad_record" */
	char source_id[LT_WIRE_SOURCE_MAX + 1];
	uint64_t seq;
	int64_t index; /* record index in its batch, -1 for the batch */
	char message[160];
};

struct lt_batch {
	struct lt_batch *next;
	uint8_t *data; /* owned copy of the wire bytes */
	size_t len;
	char source_id[LT_WIRE_SOURCE_MAX + 1];
	uint64_t seq;
	int64_t received_mono; /* ms, for the batch_ms deadline */
	struct lt_msg *msgs;   /* owned array; strings point into data */
	uint32_t nmsgs;
	uint32_t nbad;
};

struct lt_batchq {
	struct lt_batch *head, *tail;
	size_t nbatches;
	size_t rows;
	size_t bytes;
	size_t max_bytes;
	/* Notes waiting for the next transaction, bounded. */
	struct lt_batch_note *notes;
	size_t nnotes, notes_cap;
	uint64_t notes_dropped;
};

#define LT_BATCHQ_MAX_NOTES 256

void lt_batchq_init(struct lt_batchq *q, size_t max_bytes);
void lt_batchq_free(struct lt_batchq *q);

/* Copy and decode data[0..len). Returns LT_OK (queued; *bad_records gets how
 * many records were refused), LT_EPROTO (the header is malformed or not a
 * data batch: nothing queued, a note added), LT_EEXIST (that source and seq
 * are already queued: nothing queued), LT_EAGAIN (the queue is full: nothing
 * queued, ask again later), LT_ENOMEM. now_mono is the monotonic ms clock. */
int lt_batchq_add(struct lt_batchq *q, const uint8_t *data, size_t len, int64_t now_mono,
		  uint32_t *bad_records);

/* Remove and free the first n batches (after their commit). */
void lt_batchq_pop(struct lt_batchq *q, size_t n);
/* Remove and free n batches starting at first (which must be in q). */
void lt_batchq_remove(struct lt_batchq *q, struct lt_batch *first, size_t n);

/* Add an error note (dropped and counted when LT_BATCHQ_MAX_NOTES wait). */
void lt_batchq_note(struct lt_batchq *q, const char *kind, const char *source_id, uint64_t seq, int64_t index,
		    const char *message);
/* Forget the notes (after they were written). */
void lt_batchq_notes_clear(struct lt_batchq *q);

/* Validate one decoded record for PostgreSQL; NULL if fit, else a static
 * sentence saying why not. */
const char *lt_batch_unfit(const struct lt_msg *m);

#endif
