/* SPDX-License-Identifier: MIT */
/* mem: bump arena (see mem.h). Blocks grow geometrically; reset keeps one. */
#include "common/mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct lt_arena_block {
	struct lt_arena_block *next;
	size_t cap;
	size_t used;
	_Alignas(16) unsigned char data[];
};

#define ARENA_MIN_BLOCK 4096

void lt_arena_init(struct lt_arena *a, size_t limit)
{
	a->head = NULL;
	a->used_total = 0;
	a->limit = limit;
}

void *lt_arena_alloc(struct lt_arena *a, size_t n)
{
	size_t need = (n + 15) & ~(size_t)15;
	if (need < n)
		return NULL;
	if (a->limit && a->used_total + need > a->limit)
		return NULL;
	struct lt_arena_block *b = a->head;
	if (!b || b->cap - b->used < need) {
		size_t cap = b ? b->cap * 2 : ARENA_MIN_BLOCK;
		if (cap > (1u << 20))
			cap = 1u << 20;
		if (cap < need)
			cap = need;
		b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->cap = cap;
		b->used = 0;
		b->next = a->head;
		a->head = b;
	}
	void *p = b->data + b->used;
	b->used += need;
	a->used_total += need;
	return p;
}

char *lt_arena_strndup(struct lt_arena *a, const char *p, size_t n)
{
	char *d = lt_arena_alloc(a, n + 1);
	if (!d)
		return NULL;
	if (n)
		memcpy(d, p, n);
	d[n] = '\0';
	return d;
}

void lt_arena_reset(struct lt_arena *a)
{
	struct lt_arena_block *b = a->head;
	if (!b)
		return;
	/* Keep the largest (newest) block, free the rest. */
	struct lt_arena_block *rest = b->next;
	while (rest) {
		struct lt_arena_block *nx = rest->next;
		free(rest);
		rest = nx;
	}
	b->next = NULL;
	b->used = 0;
	a->used_total = 0;
}

void lt_arena_free(struct lt_arena *a)
{
	if (!a)
		return;
	struct lt_arena_block *b = a->head;
	while (b) {
		struct lt_arena_block *nx = b->next;
		free(b);
		b = nx;
	}
	a->head = NULL;
	a->used_total = 0;
}
