/* SPDX-License-Identifier: MIT */
/*
 * batch: the bounded queue of decoded batches waiting for a commit (see
 * batch.h).
 */
#include "persister/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

/* Years 1..9999 in ms since the epoch: what timestamptz and a partition name
 * can hold. */
#define TS_MIN_MS (-62135596800000LL)
#define TS_MAX_MS (253402300799999LL)

void lt_batchq_init(struct lt_batchq *q, size_t max_bytes)
{
	memset(q, 0, sizeof *q);
	q->max_bytes = max_bytes;
}

static void batch_free(struct lt_batch *b)
{
	if (!b)
		return;
	free(b->data);
	free(b->msgs);
	free(b);
}

void lt_batchq_free(struct lt_batchq *q)
{
	if (!q)
		return;
	lt_batchq_pop(q, q->nbatches);
	free(q->notes);
	q->notes = NULL;
	q->nnotes = q->notes_cap = 0;
}

const char *lt_batch_unfit(const struct lt_msg *m)
{
	if (m->platform == LT_PLATFORM_UNKNOWN || m->platform >= LT_PLATFORM_COUNT)
		return "unknown platform";
	if (m->type >= LT_MSG_TYPE_COUNT)
		return "unknown type";
	if (m->room.len == 0)
		return "empty room";
	if (m->msg_id.len == 0)
		return "empty msg_id";
	if (m->ts < TS_MIN_MS || m->ts > TS_MAX_MS)
		return "ts out of range";
	return NULL;
}

void lt_batchq_note(struct lt_batchq *q, const char *kind, const char *source_id, uint64_t seq, int64_t index,
		    const char *message)
{
	if (q->nnotes >= LT_BATCHQ_MAX_NOTES) {
		q->notes_dropped++;
		return;
	}
	if (q->nnotes == q->notes_cap) {
		size_t cap = q->notes_cap ? q->notes_cap * 2 : 16;
		struct lt_batch_note *n = realloc(q->notes, cap * sizeof *n);
		if (!n) {
			q->notes_dropped++;
			return;
		}
		q->notes = n;
		q->notes_cap = cap;
	}
	struct lt_batch_note *n = &q->notes[q->nnotes++];
	memset(n, 0, sizeof *n);
	snprintf(n->kind, sizeof n->kind, "%s", kind);
	snprintf(n->source_id, sizeof n->source_id, "%s", source_id ? source_id : "");
	n->seq = seq;
	n->index = index;
	snprintf(n->message, sizeof n->message, "%s", message);
}

void lt_batchq_notes_clear(struct lt_batchq *q)
{
	q->nnotes = 0;
}

static bool queued(const struct lt_batchq *q, const char *source_id, uint64_t seq)
{
	for (const struct lt_batch *b = q->head; b; b = b->next)
		if (b->seq == seq && strcmp(b->source_id, source_id) == 0)
			return true;
	return false;
}

int lt_batchq_add(struct lt_batchq *q, const uint8_t *data, size_t len, int64_t now_mono,
		  uint32_t *bad_records)
{
	struct lt_wire_batch wb;
	int rc = lt_wire_batch_decode(data, len, &wb);
	if (rc != LT_OK || wb.kind != LT_WIRE_KIND_DATA) {
		char msg[96];
		snprintf(msg, sizeof msg, "%s (%zu bytes)",
			 rc != LT_OK ? "malformed batch header" : "not a data batch", len);
		lt_batchq_note(q, "bad_batch", rc == LT_OK ? wb.source_id : "", rc == LT_OK ? wb.seq : 0, -1,
			       msg);
		return LT_EPROTO;
	}
	if (queued(q, wb.source_id, wb.seq))
		return LT_EEXIST;
	if (q->nbatches > 0 && q->bytes + len > q->max_bytes)
		return LT_EAGAIN;

	struct lt_batch *b = calloc(1, sizeof *b);
	if (!b)
		return LT_ENOMEM;
	b->data = malloc(len ? len : 1);
	/* count is bounded by the decoder (LT_WIRE_BATCH_MAX_RECORDS) */
	b->msgs = malloc(sizeof *b->msgs * (wb.count ? wb.count : 1));
	if (!b->data || !b->msgs) {
		batch_free(b);
		return LT_ENOMEM;
	}
	memcpy(b->data, data, len);
	b->len = len;
	memcpy(b->source_id, wb.source_id, sizeof b->source_id);
	b->seq = wb.seq;
	b->received_mono = now_mono;

	/* Decode again from our copy so the records point into memory we own. */
	struct lt_wire_batch own;
	if (lt_wire_batch_decode(b->data, b->len, &own) != LT_OK) {
		batch_free(b);
		return LT_EINTERNAL;
	}
	struct lt_wire_iter it;
	lt_wire_iter_init(&it, &own);
	int64_t index = 0;
	for (;; index++) {
		struct lt_msg m;
		int r = lt_wire_iter_next(&it, &m);
		if (r == LT_EEOF)
			break;
		const char *why = r == LT_OK ? lt_batch_unfit(&m) : "malformed record";
		if (!why && b->nmsgs >= wb.count)
			why = "more records than announced";
		if (why) {
			b->nbad++;
			lt_batchq_note(q, "bad_record", b->source_id, b->seq, index, why);
			continue;
		}
		lt_msg_clamp(&m);
		b->msgs[b->nmsgs++] = m;
	}
	if (bad_records)
		*bad_records = b->nbad;
	if (q->tail)
		q->tail->next = b;
	else
		q->head = b;
	q->tail = b;
	q->nbatches++;
	q->rows += b->nmsgs;
	q->bytes += b->len;
	return LT_OK;
}

void lt_batchq_pop(struct lt_batchq *q, size_t n)
{
	while (n-- > 0 && q->head) {
		struct lt_batch *b = q->head;
		q->head = b->next;
		if (!q->head)
			q->tail = NULL;
		q->nbatches--;
		q->rows -= b->nmsgs;
		q->bytes -= b->len;
		batch_free(b);
	}
}

void lt_batchq_remove(struct lt_batchq *q, struct lt_batch *first, size_t n)
{
	struct lt_batch *prev = NULL;
	struct lt_batch *b = q->head;
	while (b && b != first) {
		prev = b;
		b = b->next;
	}
	while (n-- > 0 && b) {
		struct lt_batch *next = b->next;
		if (prev)
			prev->next = next;
		else
			q->head = next;
		if (q->tail == b)
			q->tail = prev;
		q->nbatches--;
		q->rows -= b->nmsgs;
		q->bytes -= b->len;
		batch_free(b);
		b = next;
	}
}
