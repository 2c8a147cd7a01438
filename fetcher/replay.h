/* SPDX-License-Identifier: MIT */
/*
 * replay: `livetap-fetcher --replay FILE`. Reads a capture (capture.h),
 * decodes every frame with a platform's ops exactly as the live connection
 * did (recv_ms from the file), and hands every message on: as one normalized
 * JSON line each to a FILE (--stdout), or to the pipeline through
 * lt_delivery_push, then waits until all of it is acknowledged.
 */
#ifndef LT_REPLAY_H
#define LT_REPLAY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "fetcher/platform.h"

struct lt_delivery;

struct lt_replay_opts {
	const char *path;                      /* capture file, "-" = stdin */
	const struct lt_platform_ops *ops;     /* the platform that recorded it */
	const struct lt_platform_conf *conf;   /* its settings (room at least) */
	FILE *out;                             /* JSON lines here, or NULL … */
	struct lt_delivery *delivery;          /* … push here (not owned) */
	int drain_timeout_ms;                  /* wait for acks at the end; 0 = 30000 */
	bool pace;                             /* keep the recorded timing */
};

struct lt_replay_stats {
	uint64_t frames;
	uint64_t messages;     /* handed on */
	uint64_t bad_frames;   /* frames the platform could not fully decode */
	uint64_t bad_messages;
	uint64_t push_retries; /* pushes refused for now (window full) and retried */
	uint64_t pending;      /* records not acknowledged when the drain ended */
	bool truncated;        /* the capture ended in a partial record */
};

/* Replay o->path. Returns LT_OK when every frame was read and every message
 * written (stdout) or acknowledged (delivery); LT_EIO for a file that cannot
 * be read or an output that cannot be written; LT_ETIMEDOUT when the drain
 * timed out (st->pending says how many records are left); LT_ECLOSED when a
 * stop was requested. A truncated last record is not an error (st->truncated),
 * an oversize one is LT_EPROTO. *st is filled in every case; e (may be NULL)
 * names the problem. */
int lt_replay_run(const struct lt_replay_opts *o, struct lt_replay_stats *st, struct lt_error *e);

#endif
