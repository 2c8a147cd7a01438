/* SPDX-License-Identifier: MIT */
/*
 * http: livetap-api's libwebsockets server: one protocol callback that
 * parses and checks each request (routes.c, auth.c, ratelimit.c), answers
 * what it can from memory and hands the rest to the worker pool (pool.c),
 * plus the live WebSocket feed (feed.c) on the same port. See api.h for the
 * threading and ownership rules.
 */
#ifndef LT_HTTP_H
#define LT_HTTP_H

#include "common/config.h"
#include "common/err.h"

struct lt_http;
struct lt_auth;

/* Listen on api.listen with the settings in cfg (which must outlive the
 * server) and auth (borrowed). Returns LT_OK with *out, or LT_EINVAL (bad
 * address) / LT_EIO (cannot bind) / LT_ENOMEM with e filled. */
int lt_http_start(const struct lt_config *cfg, struct lt_auth *auth, struct lt_http **out,
		  struct lt_error *e);
/* The port listened on. */
int lt_http_port(const struct lt_http *h);
/* Serve until the stop flag (lt_sig) is set. Returns LT_OK. */
int lt_http_run(struct lt_http *h);
/* Stop workers and the feed, close every connection, free. NULL is fine. */
void lt_http_free(struct lt_http *h);

#endif
