/* SPDX-License-Identifier: MIT */
/*
 * inflate: one complete zlib or gzip stream per call into a capped buffer,
 * with one z_stream kept for the life of a connection (inflateReset between
 * frames instead of init/end per frame). Shared by the platforms whose frames
 * are compressed one stream each (douyin: gzip'd Responses; kook: zlib
 * frames; bilibili: protocol version 2 packets).
 *
 * A decoder never trusts what a frame claims: more output than the cap is a
 * bomb, an input that ends before its stream does is truncated, anything
 * zlib rejects is garbage; all three leave the stream ready for the next
 * frame.
 */
#ifndef LT_INFLATE_H
#define LT_INFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "common/buf.h"
#include "common/err.h"

#define LT_INFLATE_ZLIB MAX_WBITS	 /* windowBits: a zlib header */
#define LT_INFLATE_GZIP (16 + MAX_WBITS) /* windowBits: a gzip header */

struct lt_inflate {
	z_stream zs;
	int wbits;
	bool live; /* zs initialised (on first use) */
};

/* Set z up for streams of the given kind (LT_INFLATE_ZLIB or _GZIP).
 * Allocates nothing: zlib's state comes with the first lt_inflate_run. */
void lt_inflate_init(struct lt_inflate *z, int wbits);

/* Inflate the one stream that starts at p[0..n) into out, replacing what out
 * held. Returns LT_OK when the stream ended, with *rest (if not NULL) = the
 * input bytes left after it; LT_ETOOBIG when it would inflate to more than
 * cap bytes; LT_EPROTO when the input is truncated or not a valid stream;
 * LT_ENOMEM. On error out holds what was inflated so far. The caller owns out
 * (its own limit must allow cap bytes). */
int lt_inflate_run(struct lt_inflate *z, const uint8_t *p, size_t n, size_t cap, struct lt_buf *out,
		   size_t *rest);

/* Free zlib's state; z can be set up again with lt_inflate_init. Accepts a z
 * that never ran. */
void lt_inflate_end(struct lt_inflate *z);

#endif
