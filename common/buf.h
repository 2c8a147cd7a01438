/* SPDX-License-Identifier: MIT */
/*
 * buf: a growable byte buffer with a sticky error.
 *
 * Output builders append freely and check once at the end (the Redis pipeline,
 * the COPY buffer, an HTTP body, an encoded batch): after the first failed
 * allocation or a crossed limit every append is a no-op and lt_buf_err()
 * reports the first error. The buffer owns its memory; lt_buf_free() releases
 * it and accepts NULL.
 */
#ifndef LT_BUF_H
#define LT_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct lt_buf {
	uint8_t *data; /* owned; NUL-terminated when len < cap (see lt_buf_cstr) */
	size_t len;
	size_t cap;
	size_t limit;  /* 0 = no limit; growing past it sets LT_ETOOBIG */
	int err;       /* sticky: first error, LT_OK if none */
};

#define LT_BUF_INIT {NULL, 0, 0, 0, 0}

void lt_buf_init(struct lt_buf *b, size_t limit);
void lt_buf_free(struct lt_buf *b);
/* Forget the contents and the error, keep the memory. */
void lt_buf_reset(struct lt_buf *b);
/* The out-of-line part of lt_buf_reserve: check, grow (or fail). */
int lt_buf_reserve_grow(struct lt_buf *b, size_t n);

/* Make room for n more bytes; returns LT_OK or the sticky error. Inline for
 * the per-message reservations of the encoders and decoders: when the room
 * is there (and under the limit) this is a test; anything else goes to
 * lt_buf_reserve_grow, which decides as before. */
static inline int lt_buf_reserve(struct lt_buf *b, size_t n)
{
	if (n < b->cap - b->len && !b->err && (!b->limit || b->len + n <= b->limit))
		return 0; /* LT_OK */
	return lt_buf_reserve_grow(b, n);
}

/* The out-of-line part of lt_buf_append: grow (or fail) and append. */
void lt_buf_append_grow(struct lt_buf *b, const void *p, size_t n);

/* Append p[0..n) (p may be NULL when n is 0); errors stick in b. Inline,
 * because the decoders build their small texts with many tiny appends: when
 * the bytes fit in the memory b already has (and under its limit) this is a
 * copy and a store; anything else goes to lt_buf_append_grow. */
static inline void lt_buf_append(struct lt_buf *b, const void *p, size_t n)
{
	if (n < b->cap - b->len && !b->err && (!b->limit || b->len + n <= b->limit)) {
		if (n)
			memcpy(b->data + b->len, p, n);
		b->len += n;
		b->data[b->len] = 0;
		return;
	}
	lt_buf_append_grow(b, p, n);
}

static inline void lt_buf_puts(struct lt_buf *b, const char *s) { lt_buf_append(b, s, strlen(s)); }
static inline void lt_buf_putc(struct lt_buf *b, char c) { lt_buf_append(b, &c, 1); }
void lt_buf_printf(struct lt_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* v in decimal, as "%lld" writes it, without printf's parsing and locale
 * machinery (a fifth of the processor's CPU went to snprintf of numbers and
 * keys). lt_buf_fmt_i64 writes into out (at least LT_BUF_I64_MAX bytes,
 * NUL-terminated) and returns the length. */
#define LT_BUF_I64_MAX 21
size_t lt_buf_fmt_i64(char *out, int64_t v);
void lt_buf_i64(struct lt_buf *b, int64_t v);
void lt_buf_u8(struct lt_buf *b, uint8_t v);
void lt_buf_u16le(struct lt_buf *b, uint16_t v);
void lt_buf_u32le(struct lt_buf *b, uint32_t v);
void lt_buf_u64le(struct lt_buf *b, uint64_t v);
void lt_buf_u32be(struct lt_buf *b, uint32_t v);
void lt_buf_u16be(struct lt_buf *b, uint16_t v);

/* The contents as a NUL-terminated string (a NUL is kept after len); "" on
 * error. The pointer is valid until the next append. */
const char *lt_buf_cstr(struct lt_buf *b);
static inline int lt_buf_err(const struct lt_buf *b) { return b->err; }

/* Hand the memory to the caller (who frees it with free()); b becomes empty. */
uint8_t *lt_buf_steal(struct lt_buf *b, size_t *len);

/* Bounds-checked reading of a byte range: every get returns LT_EPROTO instead
 * of reading past the end, and leaves the cursor where it was on failure. */
struct lt_rd {
	const uint8_t *p;
	size_t len;
	size_t off;
};

static inline void lt_rd_init(struct lt_rd *r, const void *p, size_t len)
{
	r->p = (const uint8_t *)p;
	r->len = len;
	r->off = 0;
}
static inline size_t lt_rd_left(const struct lt_rd *r) { return r->len - r->off; }
int lt_rd_u8(struct lt_rd *r, uint8_t *v);
int lt_rd_u16le(struct lt_rd *r, uint16_t *v);
int lt_rd_u32le(struct lt_rd *r, uint32_t *v);
int lt_rd_u64le(struct lt_rd *r, uint64_t *v);
int lt_rd_u16be(struct lt_rd *r, uint16_t *v);
int lt_rd_u32be(struct lt_rd *r, uint32_t *v);
/* A view of the next n bytes (not copied); *out points into the input. */
int lt_rd_bytes(struct lt_rd *r, size_t n, const uint8_t **out);

#endif
