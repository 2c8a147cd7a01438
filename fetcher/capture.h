/* SPDX-License-Identifier: MIT */
/*
 * capture: the file format of `livetap-fetcher --record FILE` and
 * `--replay FILE` (contract.md). One record per WebSocket frame received:
 *
 *   recv_ms  u64 little-endian   receive time, ms since the epoch (UTC)
 *   len      u32 little-endian   frame length, <= LT_CAPTURE_FRAME_MAX
 *   bytes    len bytes           the frame exactly as the WebSocket delivered it
 *
 * No file header, so captures concatenate. Readers check every length before
 * reading: a record longer than the limit or cut short at the end of the
 * file is LT_EPROTO (a capture whose writer was killed mid-record ends in a
 * truncated record; the records before it are still good).
 */
#ifndef LT_CAPTURE_H
#define LT_CAPTURE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/buf.h"
#include "common/err.h"

#define LT_CAPTURE_HDR_LEN 12u
#define LT_CAPTURE_FRAME_MAX (16u << 20) /* 16 MB, far above any platform frame */

/* Append one record to out (sticky error; LT_ETOOBIG past the frame limit). */
void lt_capture_append(struct lt_buf *out, int64_t recv_ms, const void *p, size_t n);

/* Parse the record at in[*off..len). Returns LT_OK with *recv_ms, *frame (a
 * view into in) and *frame_len, advancing *off; LT_EEOF at exactly the end;
 * LT_EPROTO for a truncated or oversize record (*off unchanged). */
int lt_capture_parse(const uint8_t *in, size_t len, size_t *off, int64_t *recv_ms, const uint8_t **frame,
                     size_t *frame_len);

struct lt_capture_writer;

/* Open path for appending (created 0644 if missing). Returns LT_OK and *out
 * (owned by the caller, lt_capture_writer_close), LT_EIO (errno kept). */
int lt_capture_writer_open(const char *path, struct lt_capture_writer **out);
/* Append one record (buffered). Returns LT_OK, LT_ETOOBIG, LT_EIO. */
int lt_capture_write(struct lt_capture_writer *w, int64_t recv_ms, const void *p, size_t n);
/* Hand buffered records to the kernel. Returns LT_OK or LT_EIO. */
int lt_capture_writer_flush(struct lt_capture_writer *w);
/* Flush and close; returns the flush result. Accepts NULL. */
int lt_capture_writer_close(struct lt_capture_writer *w);

struct lt_capture_reader;

/* Open path for reading ("-" = stdin). Returns LT_OK and *out (owned by the
 * caller, lt_capture_reader_close), LT_EIO. */
int lt_capture_reader_open(const char *path, struct lt_capture_reader **out);
/* The next record: LT_OK with *frame valid until the next call, LT_EEOF at a
 * clean end, LT_EPROTO for a record cut short by the end of the file,
 * LT_ETOOBIG for a length over LT_CAPTURE_FRAME_MAX (reading stops at
 * either), LT_EIO, LT_ENOMEM. */
int lt_capture_next(struct lt_capture_reader *r, int64_t *recv_ms, const uint8_t **frame, size_t *frame_len);
/* Bytes consumed so far (the offset of the next record). */
uint64_t lt_capture_reader_offset(const struct lt_capture_reader *r);
void lt_capture_reader_close(struct lt_capture_reader *r);

#endif
