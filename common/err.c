/* SPDX-License-Identifier: MIT */
/* err: error names, sentences, and the error value (see err.h). */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
	const char *name;
	const char *text;
} err_table[LT_ERR_COUNT] = {
	[LT_OK] = {"ok", "success"},
	[LT_ENOMEM] = {"out_of_memory", "out of memory"},
	[LT_EINVAL] = {"bad_input", "invalid argument or input"},
	[LT_EPROTO] = {"protocol_error", "malformed or unsupported data"},
	[LT_ETOOBIG] = {"too_large", "size limit exceeded"},
	[LT_EIO] = {"io_error", "input/output error"},
	[LT_ECONN] = {"connection_failed", "connection failed or lost"},
	[LT_ETIMEDOUT] = {"timeout", "timed out"},
	[LT_EAGAIN] = {"try_again", "temporarily unavailable, try again"},
	[LT_ECLOSED] = {"closed", "closed or shutting down"},
	[LT_ENOTFOUND] = {"not_found", "not found"},
	[LT_EEXIST] = {"already_exists", "already exists"},
	[LT_ECONFIG] = {"bad_config", "invalid configuration"},
	[LT_EAUTH] = {"unauthorized", "authentication failed"},
	[LT_EPERM] = {"forbidden", "not permitted"},
	[LT_EDB] = {"database_error", "PostgreSQL error"},
	[LT_EREDIS] = {"redis_error", "Redis error"},
	[LT_EEOF] = {"end_of_input", "end of input"},
	[LT_EINTERNAL] = {"internal_error", "internal error"},
};

const char *lt_strerror(int code)
{
	if (code < 0 || code >= LT_ERR_COUNT || !err_table[code].text)
		return "unknown error";
	return err_table[code].text;
}

const char *lt_errname(int code)
{
	if (code < 0 || code >= LT_ERR_COUNT || !err_table[code].name)
		return "unknown";
	return err_table[code].name;
}

int lt_error_set(struct lt_error *e, int code, const char *fmt, ...)
{
	if (!e)
		return code;
	e->code = code;
	e->details[0] = '\0';
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return code;
}

/* Write s JSON-escaped into out[*n..cap-1]; stops (returning -1) rather than
 * overflow. Bytes >= 0x80 are copied as they are: callers pass UTF-8. */
static int esc_into(char *out, size_t cap, size_t *n, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char tmp[8];
		const char *rep = NULL;
		size_t rl = 1;
		switch (c) {
		case '"': rep = "\\\""; rl = 2; break;
		case '\\': rep = "\\\\"; rl = 2; break;
		case '\n': rep = "\\n"; rl = 2; break;
		case '\r': rep = "\\r"; rl = 2; break;
		case '\t': rep = "\\t"; rl = 2; break;
		default:
			if (c < 0x20) {
				snprintf(tmp, sizeof(tmp), "\\u%04x", c);
				rep = tmp;
				rl = 6;
			}
		}
		if (*n + (rep ? rl : 1) + 1 > cap)
			return -1;
		if (rep) {
			memcpy(out + *n, rep, rl);
			*n += rl;
		} else {
			out[(*n)++] = (char)c;
		}
	}
	out[*n] = '\0';
	return 0;
}

void lt_error_detail(struct lt_error *e, const char *key, const char *value)
{
	if (!e || !key || !value)
		return;
	char tmp[LT_ERROR_DETAILS_MAX];
	size_t n = strlen(e->details);
	memcpy(tmp, e->details, n + 1);
	if (n && n + 1 < sizeof(tmp))
		tmp[n++] = ',';
	if (n + 1 >= sizeof(tmp))
		return;
	tmp[n++] = '"';
	if (esc_into(tmp, sizeof(tmp), &n, key) || n + 4 >= sizeof(tmp))
		return;
	memcpy(tmp + n, "\":\"", 3);
	n += 3;
	if (esc_into(tmp, sizeof(tmp), &n, value) || n + 2 >= sizeof(tmp))
		return;
	tmp[n++] = '"';
	tmp[n] = '\0';
	memcpy(e->details, tmp, n + 1);
}

size_t lt_error_json(const struct lt_error *e, char *out, size_t cap)
{
	if (!cap)
		return 0;
	size_t n = 0;
	const char *pre = "{\"error\":{\"code\":\"";
	int code = e ? e->code : LT_EINTERNAL;
	const char *msg = e && e->message[0] ? e->message : lt_strerror(code);
	const char *det = e ? e->details : "";
	out[0] = '\0';
	if (esc_into(out, cap, &n, pre) < 0)
		goto cut;
	n = strlen(pre);
	memcpy(out, pre, n);
	out[n] = '\0';
	if (esc_into(out, cap, &n, lt_errname(code)))
		goto cut;
	if (n + 16 >= cap)
		goto cut;
	memcpy(out + n, "\",\"message\":\"", 13);
	n += 13;
	out[n] = '\0';
	if (esc_into(out, cap, &n, msg))
		goto cut;
	size_t dl = strlen(det);
	if (n + dl + 20 >= cap)
		goto cut;
	n += (size_t)snprintf(out + n, cap - n, "\",\"details\":{%s}}}", det);
	return n;
cut:
	/* Fall back to a short body that always fits a 1 KiB buffer. */
	n = (size_t)snprintf(out, cap, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\",\"details\":{}}}",
			     lt_errname(code), lt_strerror(code));
	return n < cap ? n : cap - 1;
}
