/* SPDX-License-Identifier: MIT */
/*
 * err: livetap's one error enum and a richer error value.
 *
 * Every fallible function in common/ returns an lt_err code: LT_OK (zero) on
 * success, a negative-free positive code otherwise, and writes its out-parameters
 * only on success. Where a caller needs to tell a person or a program more (the
 * API's {"error":{"code","message","details"}} body, a config error that names
 * the file and the key), it passes a struct lt_error to be filled in.
 */
#ifndef LT_ERR_H
#define LT_ERR_H

#include <stddef.h>

typedef enum lt_err {
	LT_OK = 0,
	LT_ENOMEM,     /* allocation failed */
	LT_EINVAL,     /* bad argument or bad input value */
	LT_EPROTO,     /* malformed wire data: truncated, oversize, bad version */
	LT_ETOOBIG,    /* a size limit was exceeded */
	LT_EIO,        /* file or socket I/O failed (errno kept by caller) */
	LT_ECONN,      /* connection refused, reset or lost */
	LT_ETIMEDOUT,  /* a deadline passed */
	LT_EAGAIN,     /* try again later; nothing was done */
	LT_ECLOSED,    /* the object was closed or is shutting down */
	LT_ENOTFOUND,  /* no such thing */
	LT_EEXIST,     /* already exists */
	LT_ECONFIG,    /* bad configuration */
	LT_EAUTH,      /* authentication failed */
	LT_EPERM,      /* not allowed */
	LT_EDB,        /* PostgreSQL reported an error */
	LT_EREDIS,     /* Redis reported an error */
	LT_EEOF,       /* end of input; not an error for iterators */
	LT_EINTERNAL,  /* a bug: an invariant did not hold */
	LT_ERR_COUNT
} lt_err;

/* A static English sentence for code; never NULL, even for unknown codes. */
const char *lt_strerror(int code);

/* A stable machine-readable name for code, e.g. "bad_input" for LT_EINVAL;
 * used as the "code" of API error bodies. Never NULL. */
const char *lt_errname(int code);

#define LT_ERROR_MSG_MAX 256
#define LT_ERROR_DETAILS_MAX 512

/* An error value: a code, a sentence for people, and details as a JSON object
 * body (without braces, e.g. "\"key\":\"room\""), all inline, no allocation. */
struct lt_error {
	int code;
	char message[LT_ERROR_MSG_MAX];
	char details[LT_ERROR_DETAILS_MAX];
};

/* Set e (if not NULL) to code and a printf-formatted message; clears details.
 * Returns code, so callers can write `return lt_error_set(e, LT_EINVAL, ...)`. */
int lt_error_set(struct lt_error *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Append one string detail "key":"value" (value JSON-escaped) to e. Silently
 * stops adding when the details buffer is full. e may be NULL. */
void lt_error_detail(struct lt_error *e, const char *key, const char *value);

/* Render e as {"error":{"code":"…","message":"…","details":{…}}} into out
 * (size cap). Returns the length written (truncated output stays valid JSON
 * only if cap >= 1024; callers use a buffer at least that large). */
size_t lt_error_json(const struct lt_error *e, char *out, size_t cap);

#endif
