/* SPDX-License-Identifier: MIT */
/*
 * spool: an append-only store of opaque records (sealed batches) on disk, one
 * directory per source, so that what a fetcher has sealed survives its death
 * and is sent again by the next run.
 *
 * The directory holds segment files named by a 20-digit decimal id,
 * "00000000000000000001.seg", each:
 *
 *   "LTSPOOL1" (8 bytes) | records…
 *   record = len u32le | crc32(data) u32le (zlib) | data (len bytes)
 *
 * Appends go to the active (newest) segment with one writev(2) per record; a
 * new segment is started when the active one would pass segment_bytes. Every
 * record is live until the caller releases it; a segment whose records are
 * all released is deleted (the active one once it has been rolled over).
 * On open every segment is scanned: a torn or corrupt tail (short header,
 * length out of bounds, CRC mismatch) is truncated and counted, never fatal;
 * each valid record is handed to a callback that says whether to keep it.
 *
 * One process at a time: open takes an exclusive flock on dir/.lock (freed
 * when the spool is closed or the process dies, even by kill -9).
 *
 * Not thread-safe: the owner serialises calls (delivery holds its lock).
 */
#ifndef LT_SPOOL_H
#define LT_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define LT_SPOOL_RECORD_MAX (64u << 20) /* = LT_WIRE_BATCH_MAX_BYTES */

struct lt_spool;

struct lt_spool_opts {
	size_t segment_bytes; /* 0 = 4 MB */
	size_t max_bytes;     /* disk cap over all segments; 0 = 1 GB */
	bool fsync;	      /* fdatasync after every append */
};

/* Where a record lives; returned by append and by the open scan. */
struct lt_spool_pos {
	uint64_t seg; /* segment id */
	uint32_t off; /* offset of the record header in the segment */
	uint32_t len; /* data length */
};

struct lt_spool_stats {
	uint64_t bytes; /* on disk, all segments */
	uint64_t segments;
	uint64_t live; /* records not yet released */
	uint64_t appends;
	uint64_t reads;
	uint64_t corrupt;	  /* corrupt tails truncated (one per segment) */
	uint64_t truncated_bytes; /* bytes cut off by those truncations */
	uint64_t recovered;	  /* records found on open and kept */
	uint64_t deleted_segments;
};

/* Called once per valid record found on open, oldest first. data is only
 * valid during the call. Return true to keep the record live (the caller will
 * release it later), false to release it at once. */
typedef bool (*lt_spool_recover_fn)(void *ctx, const struct lt_spool_pos *pos, const uint8_t *data,
				    size_t len);

/* Open (creating it and its parents if needed) the spool directory dir and
 * scan it, calling fn (may be NULL: keep everything) for each record. o may be
 * NULL for the defaults. Returns LT_OK and *out (owned by the caller, freed by
 * lt_spool_close), LT_EIO if the directory cannot be created or read,
 * LT_EEXIST if another open spool (this or another process) holds it,
 * LT_ENOMEM; e is filled in on failure. */
int lt_spool_open(const char *dir, const struct lt_spool_opts *o, lt_spool_recover_fn fn, void *ctx,
		  struct lt_spool **out, struct lt_error *e);

/* Append data[0..len) as one record; on LT_OK *pos says where. Returns
 * LT_EAGAIN if the disk cap would be passed (nothing written), LT_ETOOBIG if
 * len > LT_SPOOL_RECORD_MAX, LT_EIO if the write failed (the segment is cut
 * back to its previous size). */
int lt_spool_append(struct lt_spool *s, const void *data, size_t len, struct lt_spool_pos *pos);

/* Read the record at pos into dst (pos->len bytes, owned by the caller),
 * checking its header and CRC. Returns LT_OK, LT_ENOTFOUND (no such segment),
 * LT_EIO, or LT_EPROTO (the bytes on disk do not match). */
int lt_spool_read(struct lt_spool *s, const struct lt_spool_pos *pos, uint8_t *dst);

/* The record at pos is no longer needed. Deletes its segment when that was
 * the last live record of a non-active segment. Positions in unknown
 * segments are ignored; release each position once (records are counted per
 * segment, not tracked one by one). */
void lt_spool_release(struct lt_spool *s, const struct lt_spool_pos *pos);

void lt_spool_stats(const struct lt_spool *s, struct lt_spool_stats *out);

/* Close files and free s; segments stay on disk. Accepts NULL. */
void lt_spool_close(struct lt_spool *s);

/* base + "/" + source_id made filesystem-safe (bytes outside [A-Za-z0-9_-]
 * become %XX, so distinct sources get distinct names), malloc'd; NULL on
 * allocation failure. */
char *lt_spool_dir_for(const char *base, const char *source_id);

#endif
