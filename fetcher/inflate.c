/* SPDX-License-Identifier: MIT */
/*
 * inflate: the capped one-stream inflate loop (see inflate.h). The output
 * buffer grows from a guess of 4x the input; zlib never writes past cap.
 */
#include "fetcher/inflate.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>

void lt_inflate_init(struct lt_inflate *z, int wbits)
{
	memset(z, 0, sizeof(*z));
	z->wbits = wbits;
}

int lt_inflate_run(struct lt_inflate *z, const uint8_t *p, size_t n, size_t cap, struct lt_buf *out,
		   size_t *rest)
{
	if (!z->live) {
		memset(&z->zs, 0, sizeof(z->zs));
		if (inflateInit2(&z->zs, z->wbits) != Z_OK)
			return LT_ENOMEM;
		z->live = true;
	} else if (inflateReset(&z->zs) != Z_OK) {
		return LT_EINTERNAL;
	}
	lt_buf_reset(out);
	if (n > UINT_MAX)
		return LT_ETOOBIG;
	z->zs.next_in = (Bytef *)(uintptr_t)p;
	z->zs.avail_in = (uInt)n;
	size_t want = n < SIZE_MAX / 4 && n * 4 > 4096 ? n * 4 : 4096; /* a first guess */
	for (;;) {
		/* up to cap, then one byte more, which tells a bomb from the end */
		size_t step = out->len < cap ? cap - out->len : 1;
		int rc = lt_buf_reserve(out, want < step ? want : step);
		if (rc != LT_OK)
			return rc;
		size_t room = out->cap - out->len - 1; /* lt_buf keeps a byte for a NUL */
		if (room > step)
			room = step;
		if (room > UINT_MAX)
			room = UINT_MAX;
		z->zs.next_out = out->data + out->len;
		z->zs.avail_out = (uInt)room;
		int zr = inflate(&z->zs, Z_NO_FLUSH);
		out->len += room - z->zs.avail_out;
		out->data[out->len] = 0;
		if (out->len > cap)
			return LT_ETOOBIG;
		if (zr == Z_STREAM_END) {
			if (rest)
				*rest = z->zs.avail_in;
			return LT_OK;
		}
		if (zr == Z_BUF_ERROR && z->zs.avail_in == 0)
			return LT_EPROTO; /* truncated */
		if (zr != Z_OK && zr != Z_BUF_ERROR)
			return LT_EPROTO; /* not a stream, a bad checksum, ... */
		want = out->len;	  /* doubles the buffer */
	}
}

void lt_inflate_end(struct lt_inflate *z)
{
	if (z && z->live)
		inflateEnd(&z->zs);
	if (z)
		z->live = false;
}
