/* SPDX-License-Identifier: MIT */
/*
 * mem: a bump arena for records that live and die together.
 *
 * A decoded frame or batch puts all its strings in one arena and frees them in
 * one call. Allocation never fails silently: lt_arena_alloc returns NULL when
 * malloc fails or the arena's limit is reached, and the caller reports
 * LT_ENOMEM / LT_ETOOBIG. lt_arena_reset keeps the first block for reuse.
 */
#ifndef LT_MEM_H
#define LT_MEM_H

#include <stddef.h>

struct lt_arena_block;

struct lt_arena {
	struct lt_arena_block *head;
	size_t used_total; /* bytes handed out since the last reset */
	size_t limit;      /* 0 = none */
};

void lt_arena_init(struct lt_arena *a, size_t limit);
/* n bytes, 16-byte aligned, owned by the arena; NULL on failure or limit. */
void *lt_arena_alloc(struct lt_arena *a, size_t n);
/* A NUL-terminated copy of p[0..n) in the arena; NULL on failure. */
char *lt_arena_strndup(struct lt_arena *a, const char *p, size_t n);
void lt_arena_reset(struct lt_arena *a);
void lt_arena_free(struct lt_arena *a);

#endif
