/* SPDX-License-Identifier: MIT */
/* buf: growable buffer with a sticky error, and a bounds-checked reader. */
#include "common/buf.h"
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lt_buf_init(struct lt_buf *b, size_t limit)
{
	memset(b, 0, sizeof(*b));
	b->limit = limit;
}

void lt_buf_free(struct lt_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->err = LT_OK;
}

void lt_buf_reset(struct lt_buf *b)
{
	b->len = 0;
	b->err = LT_OK;
	if (b->data)
		b->data[0] = 0;
}

int lt_buf_reserve_grow(struct lt_buf *b, size_t n)
{
	if (b->err)
		return b->err;
	if (n > SIZE_MAX / 2 - b->len - 1)
		return b->err = LT_ETOOBIG;
	size_t need = b->len + n + 1; /* room for a trailing NUL */
	if (b->limit && need > b->limit + 1)
		return b->err = LT_ETOOBIG;
	if (need <= b->cap)
		return LT_OK;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	uint8_t *d = realloc(b->data, cap);
	if (!d)
		return b->err = LT_ENOMEM;
	b->data = d;
	b->cap = cap;
	return LT_OK;
}

/* lt_buf_append's slow path (see buf.h): the fast path found no room, an
 * error or the limit; this one reserves, so it grows, or fails and sticks. */
void lt_buf_append_grow(struct lt_buf *b, const void *p, size_t n)
{
	if (lt_buf_reserve(b, n))
		return;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
}


void lt_buf_printf(struct lt_buf *b, const char *fmt, ...)
{
	if (b->err)
		return;
	va_list ap;
	va_start(ap, fmt);
	char small[256];
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = LT_EINVAL;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		lt_buf_append(b, small, (size_t)n);
		return;
	}
	if (lt_buf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

size_t lt_buf_fmt_i64(char *out, int64_t v)
{
	char tmp[LT_BUF_I64_MAX];
	size_t n = 0, len = 0;
	/* in unsigned arithmetic, so INT64_MIN negates without overflow */
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		out[len++] = '-';
	while (n)
		out[len++] = tmp[--n];
	out[len] = '\0';
	return len;
}

void lt_buf_i64(struct lt_buf *b, int64_t v)
{
	char t[LT_BUF_I64_MAX];
	lt_buf_append(b, t, lt_buf_fmt_i64(t, v));
}

void lt_buf_u8(struct lt_buf *b, uint8_t v) { lt_buf_append(b, &v, 1); }

void lt_buf_u16le(struct lt_buf *b, uint16_t v)
{
	uint8_t t[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	lt_buf_append(b, t, 2);
}

void lt_buf_u32le(struct lt_buf *b, uint32_t v)
{
	uint8_t t[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
	lt_buf_append(b, t, 4);
}

void lt_buf_u64le(struct lt_buf *b, uint64_t v)
{
	uint8_t t[8];
	for (int i = 0; i < 8; i++)
		t[i] = (uint8_t)(v >> (8 * i));
	lt_buf_append(b, t, 8);
}

void lt_buf_u32be(struct lt_buf *b, uint32_t v)
{
	uint8_t t[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	lt_buf_append(b, t, 4);
}

void lt_buf_u16be(struct lt_buf *b, uint16_t v)
{
	uint8_t t[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	lt_buf_append(b, t, 2);
}

const char *lt_buf_cstr(struct lt_buf *b)
{
	if (b->err || !b->data)
		return "";
	return (const char *)b->data;
}

uint8_t *lt_buf_steal(struct lt_buf *b, size_t *len)
{
	uint8_t *d = b->data;
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return d;
}

int lt_rd_bytes(struct lt_rd *r, size_t n, const uint8_t **out)
{
	if (n > r->len - r->off)
		return LT_EPROTO;
	*out = r->p + r->off;
	r->off += n;
	return LT_OK;
}

int lt_rd_u8(struct lt_rd *r, uint8_t *v)
{
	if (r->len - r->off < 1)
		return LT_EPROTO;
	*v = r->p[r->off++];
	return LT_OK;
}

int lt_rd_u16le(struct lt_rd *r, uint16_t *v)
{
	const uint8_t *p;
	if (lt_rd_bytes(r, 2, &p))
		return LT_EPROTO;
	*v = (uint16_t)(p[0] | (p[1] << 8));
	return LT_OK;
}

int lt_rd_u32le(struct lt_rd *r, uint32_t *v)
{
	const uint8_t *p;
	if (lt_rd_bytes(r, 4, &p))
		return LT_EPROTO;
	*v = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
	return LT_OK;
}

int lt_rd_u64le(struct lt_rd *r, uint64_t *v)
{
	const uint8_t *p;
	if (lt_rd_bytes(r, 8, &p))
		return LT_EPROTO;
	uint64_t x = 0;
	for (int i = 7; i >= 0; i--)
		x = (x << 8) | p[i];
	*v = x;
	return LT_OK;
}

int lt_rd_u16be(struct lt_rd *r, uint16_t *v)
{
	const uint8_t *p;
	if (lt_rd_bytes(r, 2, &p))
		return LT_EPROTO;
	*v = (uint16_t)((p[0] << 8) | p[1]);
	return LT_OK;
}

int lt_rd_u32be(struct lt_rd *r, uint32_t *v)
{
	const uint8_t *p;
	if (lt_rd_bytes(r, 4, &p))
		return LT_EPROTO;
	*v = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
	return LT_OK;
}
