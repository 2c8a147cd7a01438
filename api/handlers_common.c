/* SPDX-License-Identifier: MIT */
/*
 * handlers_common: what every worker handler uses: error bodies, the room's
 * Redis key prefix and the audit log.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"

/* See api.h. */
void lt_job_error(struct lt_job *j, int status, int code, const char *fmt, ...)
{
	struct lt_error e = {0};
	char msg[LT_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	lt_error_set(&e, code, "%s", msg);
	char out[2048];
	size_t n = lt_error_json(&e, out, sizeof out);
	lt_buf_reset(&j->body);
	lt_buf_append(&j->body, out, n);
	j->status = status;
	j->ctype = "application/json";
	j->cache_key[0] = '\0';
}

/* See api.h: "live:{platform:room}". */
void lt_job_roomkey(const struct lt_job *j, char *out, size_t cap)
{
	snprintf(out, cap, "live:{%s:%s}", j->req.platform, j->req.room);
}

/* See api.h. Who (actor), what (action, target, details), when (now()),
 * from where (the peer address). */
int lt_job_audit(PGconn *pg, const struct lt_job *j, const char *action, const char *target,
		 const char *details_json)
{
	const char *p[5] = {j->req.actor, action, target, details_json ? details_json : "{}", j->req.remote};
	PGresult *r = PQexecParams(pg,
				   "INSERT INTO audit_logs (actor, action, target, details, remote_addr) "
				   "VALUES ($1, $2, $3, $4::jsonb, $5)",
				   5, NULL, p, NULL, NULL, 0);
	int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? LT_OK : LT_EDB;
	PQclear(r);
	return rc;
}
