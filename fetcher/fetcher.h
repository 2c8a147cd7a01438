/* SPDX-License-Identifier: MIT */
/*
 * fetcher: the live loop of livetap-fetcher, one room on one libwebsockets
 * event loop.
 *
 * It drives a platform's ops table (platform.h): the HTTP bootstrap as lws
 * client requests, then the WebSocket, heartbeats from an lws_sul timer,
 * frames written only in CLIENT_WRITEABLE, and reconnects after a failure
 * with exponential backoff and jitter from a retry table (lws_retry_bo_t,
 * built from fetcher.backoff_base_ms / fetcher.backoff_max_ms). After
 * fetcher.max_failures failed attempts in a row the room goes to state
 * `error` and lt_fetcher_run returns (the supervisor restarts it later).
 * A connection that stays silent for fetcher.rx_timeout_s is dropped and
 * retried (a stalled server).
 *
 * Decoded messages go to the pipeline (common/delivery.h), or as JSON lines
 * to stdout with --stdout; --record FILE appends every received frame to a
 * capture (capture.h). The status hash live:{PLATFORM:ROOM}:status (state,
 * since, last_error, reconnects, messages, bad_frames, heartbeats, updated,
 * pid) is written every fetcher.status_interval_ms by a separate thread with
 * its own Redis connection, so a Redis outage never holds up message flow.
 */
#ifndef LT_FETCHER_H
#define LT_FETCHER_H

#include "fetcher/platform.h"

struct lt_app;

/* Exit statuses of lt_fetcher_run (and of a supervised child). */
#define LT_FETCHER_EXIT_OK 0        /* stopped on request (SIGTERM/SIGINT) */
#define LT_FETCHER_EXIT_SETUP 1     /* bad options, spool or capture unusable */
#define LT_FETCHER_EXIT_ERROR 3     /* the room kept failing: state error */
#define LT_FETCHER_EXIT_GONE 4      /* the room does not exist or was closed for good */

/*
 * Watch the room of conf with ops until a stop is requested (lt_sig) or the
 * room fails for good. Reads --stdout and --record from app and everything
 * else from lt_app_config(app) (redis.url, fetcher.*). conf is copied by the
 * platform; app must outlive the call. Returns one of LT_FETCHER_EXIT_*.
 */
int lt_fetcher_run(struct lt_app *app, const struct lt_platform_ops *ops, const struct lt_platform_conf *conf);

#endif
