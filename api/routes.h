/* SPDX-License-Identifier: MIT */
/*
 * routes: the API's URL space and the validation of everything a request
 * carries in its path and query string.
 *
 * lt_route_match is pure (no I/O, no lws): it takes the method, the decoded
 * path and the query parameters as "key=value" strings, and either fills a
 * struct lt_req with checked values and says which route it is, or returns
 * the HTTP status and error for the caller to send. Platforms are
 * bilibili | douyin | kook; room ids are 1..64 of [A-Za-z0-9_-]; limits are
 * 1..1000; times are ms since the epoch with since < until; unknown query
 * parameters are refused.
 */
#ifndef LT_ROUTES_H
#define LT_ROUTES_H

#include <stdbool.h>

#include "api/api.h"

enum lt_route_id {
	LT_R_STATIC = 1, /* dashboard files */
	LT_R_HEALTHZ,
	LT_R_METRICS,
	LT_R_OPENAPI,
	LT_R_LOGIN,
	LT_R_ROOMS_LIST,
	LT_R_ROOMS_ADD,
	LT_R_ROOMS_DEL,
	LT_R_STATUS,
	LT_R_MESSAGES,
	LT_R_HOTWORDS,
	LT_R_USERS,
	LT_R_SESSIONS,
	LT_R_EXPORT,
	LT_R_LIVE,
	LT_R_BACKUP,
	LT_R_RETENTION,
};

struct lt_route {
	int id;
	const char *name; /* for metrics labels, e.g. "hotwords" */
	lt_job_fn fn;	  /* NULL: answered on the lws thread */
	int need;	  /* role needed: LT_ROLE_READ (only off loopback) or LT_ROLE_WRITE */
	bool body;	  /* takes a JSON body */
};

/* Match and check. Returns 0 with *out the route and req filled, or an HTTP
 * status (400, 404, 405) with e saying why. */
int lt_route_match(int method, const char *path, char *const *args, int nargs, struct lt_req *req,
		   const struct lt_route **out, struct lt_error *e);

/* True for bilibili, douyin, kook. */
bool lt_route_platform_ok(const char *s);
/* True for 1..64 characters of [A-Za-z0-9_-]. */
bool lt_route_room_ok(const char *s);

#endif
