/* SPDX-License-Identifier: MIT */
/*
 * recent: the batches this processor applied lately, by (source_id, seq).
 *
 * A fetcher sends a batch again when its ack is late (common/delivery.h),
 * and on a busy machine acks are late exactly when the processor is behind.
 * Applying the resent copy is harmless (per-message markers make it a no-op
 * in Redis) but costs as much as the original, so the resends deepen the
 * backlog that caused them. With this set a copy of a batch applied in the
 * last few seconds is acknowledged again at once, without Redis.
 *
 * Only batches whose script calls succeeded are added, so a hit never skips
 * work that was not done; a miss (evicted, another processor applied it,
 * or this one restarted) falls back on the markers. Fixed capacity, the
 * oldest entry is evicted first; lookups and inserts are O(1).
 */
#ifndef LT_RECENT_H
#define LT_RECENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lt_recent;

/* A set of at most capacity entries (>= 1), or NULL without memory. */
struct lt_recent *lt_recent_new(size_t capacity);
void lt_recent_free(struct lt_recent *r);

/* Whether (source_id, seq) was added and not evicted since. */
bool lt_recent_has(const struct lt_recent *r, const char *source_id, uint64_t seq);

/* Add (source_id, seq), evicting the oldest entry when full. Adding an entry
 * that is there already changes nothing. source_id longer than
 * LT_WIRE_SOURCE_MAX is not added. */
void lt_recent_add(struct lt_recent *r, const char *source_id, uint64_t seq);

/* Entries held now. */
size_t lt_recent_count(const struct lt_recent *r);

#endif
