/* SPDX-License-Identifier: MIT */
/*
 * capture: reader and writer of the --record / --replay file format (see
 * capture.h). The reader keeps one frame buffer that grows to the largest
 * frame seen (bounded by LT_CAPTURE_FRAME_MAX); the writer goes through
 * stdio's buffer and flushes on request.
 */
#include "fetcher/capture.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void put_hdr(uint8_t h[LT_CAPTURE_HDR_LEN], int64_t recv_ms, uint32_t n)
{
	uint64_t t = (uint64_t)recv_ms;
	for (int i = 0; i < 8; i++)
		h[i] = (uint8_t)(t >> (8 * i));
	for (int i = 0; i < 4; i++)
		h[8 + i] = (uint8_t)(n >> (8 * i));
}

void lt_capture_append(struct lt_buf *out, int64_t recv_ms, const void *p, size_t n)
{
	uint8_t h[LT_CAPTURE_HDR_LEN];

	if (n > LT_CAPTURE_FRAME_MAX) {
		if (!out->err)
			out->err = LT_ETOOBIG;
		return;
	}
	put_hdr(h, recv_ms, (uint32_t)n);
	lt_buf_append(out, h, sizeof(h));
	lt_buf_append(out, p, n);
}

int lt_capture_parse(const uint8_t *in, size_t len, size_t *off, int64_t *recv_ms, const uint8_t **frame,
                     size_t *frame_len)
{
	size_t o = *off;

	if (o >= len)
		return o == len ? LT_EEOF : LT_EPROTO;
	if (len - o < LT_CAPTURE_HDR_LEN)
		return LT_EPROTO;
	uint64_t t = get_le(in + o, 8);
	uint64_t n = get_le(in + o + 8, 4);
	if (n > LT_CAPTURE_FRAME_MAX || len - o - LT_CAPTURE_HDR_LEN < n)
		return LT_EPROTO;
	*recv_ms = (int64_t)t;
	*frame = in + o + LT_CAPTURE_HDR_LEN;
	*frame_len = (size_t)n;
	*off = o + LT_CAPTURE_HDR_LEN + (size_t)n;
	return LT_OK;
}

struct lt_capture_writer {
	FILE *f;
};

int lt_capture_writer_open(const char *path, struct lt_capture_writer **out)
{
	struct lt_capture_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return LT_ENOMEM;
	w->f = fopen(path, "ab");
	if (!w->f) {
		int saved = errno;
		free(w);
		errno = saved;
		return LT_EIO;
	}
	*out = w;
	return LT_OK;
}

int lt_capture_write(struct lt_capture_writer *w, int64_t recv_ms, const void *p, size_t n)
{
	uint8_t h[LT_CAPTURE_HDR_LEN];

	if (n > LT_CAPTURE_FRAME_MAX)
		return LT_ETOOBIG;
	put_hdr(h, recv_ms, (uint32_t)n);
	if (fwrite(h, 1, sizeof(h), w->f) != sizeof(h))
		return LT_EIO;
	if (n && fwrite(p, 1, n, w->f) != n)
		return LT_EIO;
	return LT_OK;
}

int lt_capture_writer_flush(struct lt_capture_writer *w)
{
	return fflush(w->f) == 0 ? LT_OK : LT_EIO;
}

int lt_capture_writer_close(struct lt_capture_writer *w)
{
	int rc = LT_OK;

	if (!w)
		return LT_OK;
	if (fclose(w->f) != 0)
		rc = LT_EIO;
	free(w);
	return rc;
}

struct lt_capture_reader {
	FILE *f;
	int own;       /* close f on close (not stdin) */
	uint8_t *buf;  /* the current frame */
	size_t cap;
	uint64_t off;
	int done;      /* sticky end: LT_EEOF / LT_EPROTO / LT_EIO */
};

int lt_capture_reader_open(const char *path, struct lt_capture_reader **out)
{
	struct lt_capture_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return LT_ENOMEM;
	if (strcmp(path, "-") == 0) {
		r->f = stdin;
	} else {
		r->f = fopen(path, "rb");
		r->own = 1;
	}
	if (!r->f) {
		int saved = errno;
		free(r);
		errno = saved;
		return LT_EIO;
	}
	*out = r;
	return LT_OK;
}

int lt_capture_next(struct lt_capture_reader *r, int64_t *recv_ms, const uint8_t **frame, size_t *frame_len)
{
	uint8_t h[LT_CAPTURE_HDR_LEN];

	if (r->done)
		return r->done;
	size_t got = fread(h, 1, sizeof(h), r->f);
	if (got != sizeof(h)) {
		if (ferror(r->f))
			r->done = LT_EIO;
		else
			r->done = got == 0 ? LT_EEOF : LT_EPROTO;
		return r->done;
	}
	uint64_t n = get_le(h + 8, 4);
	if (n > LT_CAPTURE_FRAME_MAX) {
		r->done = LT_ETOOBIG;
		return r->done;
	}
	if (n > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < n)
			cap *= 2;
		uint8_t *nb = realloc(r->buf, cap);
		if (!nb)
			return LT_ENOMEM;
		r->buf = nb;
		r->cap = cap;
	}
	if (n && fread(r->buf, 1, (size_t)n, r->f) != n) {
		r->done = ferror(r->f) ? LT_EIO : LT_EPROTO;
		return r->done;
	}
	r->off += LT_CAPTURE_HDR_LEN + n;
	*recv_ms = (int64_t)get_le(h, 8);
	*frame = r->buf;
	*frame_len = (size_t)n;
	return LT_OK;
}

uint64_t lt_capture_reader_offset(const struct lt_capture_reader *r)
{
	return r->off;
}

void lt_capture_reader_close(struct lt_capture_reader *r)
{
	if (!r)
		return;
	if (r->own)
		fclose(r->f);
	free(r->buf);
	free(r);
}
