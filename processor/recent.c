/* SPDX-License-Identifier: MIT */
#include "processor/recent.h"

#include <stdlib.h>
#include <string.h>

#include "common/wire.h"

/* Entries live in a ring (insertion order, for eviction) and are chained
 * from a power-of-two bucket array by index; -1 ends a chain. */
struct entry {
	uint64_t seq;
	uint64_t hash;
	int32_t next; /* next entry in the same bucket */
	char source[LT_WIRE_SOURCE_MAX + 1];
};

struct lt_recent {
	struct entry *ring;
	int32_t *bucket;
	size_t cap, mask, head, n; /* head: the slot written next */
};

static uint64_t hash_of(const char *s, uint64_t seq)
{
	uint64_t h = 1469598103934665603ULL ^ seq * 0x9E3779B97F4A7C15ULL; /* FNV-1a, seeded */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h ^ h >> 29;
}

struct lt_recent *lt_recent_new(size_t capacity)
{
	struct lt_recent *r;
	size_t nb = 1;

	if (capacity == 0 || capacity > (1u << 30))
		return NULL;
	while (nb < capacity * 2)
		nb <<= 1;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->ring = malloc(capacity * sizeof(*r->ring));
	r->bucket = malloc(nb * sizeof(*r->bucket));
	if (!r->ring || !r->bucket) {
		lt_recent_free(r);
		return NULL;
	}
	/* Written out now, not left to calloc's lazy zero pages: the set's
	 * memory is then resident from the start and RSS stays flat while the
	 * ring fills (the soak checks that it does). */
	memset(r->ring, 0, capacity * sizeof(*r->ring));
	memset(r->bucket, 0xff, nb * sizeof(*r->bucket)); /* all -1 */
	r->cap = capacity;
	r->mask = nb - 1;
	return r;
}

void lt_recent_free(struct lt_recent *r)
{
	if (!r)
		return;
	free(r->ring);
	free(r->bucket);
	free(r);
}

static int32_t find(const struct lt_recent *r, const char *source_id, uint64_t seq, uint64_t h)
{
	for (int32_t i = r->bucket[h & r->mask]; i >= 0; i = r->ring[i].next) {
		const struct entry *e = &r->ring[i];
		if (e->hash == h && e->seq == seq && !strcmp(e->source, source_id))
			return i;
	}
	return -1;
}

bool lt_recent_has(const struct lt_recent *r, const char *source_id, uint64_t seq)
{
	return r && source_id && find(r, source_id, seq, hash_of(source_id, seq)) >= 0;
}

/* Take slot i out of its bucket's chain. */
static void unlink_slot(struct lt_recent *r, int32_t i)
{
	int32_t *p = &r->bucket[r->ring[i].hash & r->mask];

	while (*p >= 0 && *p != i)
		p = &r->ring[*p].next;
	if (*p == i)
		*p = r->ring[i].next;
}

void lt_recent_add(struct lt_recent *r, const char *source_id, uint64_t seq)
{
	size_t len;
	uint64_t h;
	int32_t i;
	struct entry *e;

	if (!r || !source_id || (len = strlen(source_id)) > LT_WIRE_SOURCE_MAX)
		return;
	h = hash_of(source_id, seq);
	if (find(r, source_id, seq, h) >= 0)
		return;
	i = (int32_t)r->head;
	if (r->n == r->cap)
		unlink_slot(r, i); /* the oldest lives where we write next */
	else
		r->n++;
	e = &r->ring[i];
	e->seq = seq;
	e->hash = h;
	memcpy(e->source, source_id, len + 1);
	e->next = r->bucket[h & r->mask];
	r->bucket[h & r->mask] = i;
	r->head = (r->head + 1) % r->cap;
}

size_t lt_recent_count(const struct lt_recent *r)
{
	return r ? r->n : 0;
}
