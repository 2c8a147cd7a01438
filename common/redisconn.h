/* SPDX-License-Identifier: MIT */
/*
 * redisconn: open a synchronous hiredis connection from a livetap Redis URL.
 *
 *   redis://[[user]:password@]host[:port][/db]   (port 6379, db 0 by default;
 *                                                 host may be [v6])
 *   unix:///path/to/redis.sock[?db=N][&password=P]
 *
 * The connection gets the timeout for connecting and for every later command,
 * TCP keep-alive, AUTH when a password is given and SELECT when db is not 0.
 * Error messages show the URL with the password replaced by ***.
 */
#ifndef LT_REDISCONN_H
#define LT_REDISCONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "common/err.h"

/*
 * Connect to url. timeout_ms > 0 bounds the connect and each command.
 * Returns LT_OK with *out a connection the caller frees with redisFree();
 * otherwise *out is untouched and e (if not NULL) says why:
 * LT_EINVAL (a URL that does not parse), LT_ECONN (refused, unreachable, or
 * lost), LT_ETIMEDOUT, LT_EAUTH (AUTH rejected), LT_EREDIS (SELECT or
 * another reply error), LT_ENOMEM.
 */
int lt_redis_connect(const char *url, int timeout_ms, redisContext **out, struct lt_error *e);

/* Copy url into out (cap bytes, always NUL-terminated) with any password
 * replaced by ***; for log lines. */
void lt_redis_url_redact(const char *url, char *out, size_t cap);

#endif
