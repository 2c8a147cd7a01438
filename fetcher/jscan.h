/* SPDX-License-Identifier: MIT */
/*
 * jscan: a JSON scanner that reads values in place, for the hot path of the
 * platform decoders (hundreds of thousands of messages a second, where
 * building a cJSON tree per message costs most of the time).
 *
 * A value is a view (struct lt_jv) of its text inside the caller's buffer;
 * nothing is allocated and nothing is copied except strings with escapes,
 * which lt_jscan_str unescapes into a caller's scratch buffer. Every read is
 * bounded by the view's end; anything out of shape (unterminated strings,
 * mismatched brackets, nesting deeper than LT_JSCAN_DEPTH_MAX) makes the
 * value "missing" (p == NULL) and lt_jscan_value return LT_EPROTO.
 * Skipping a value checks its structure only (strings closed, brackets
 * matched, depth bounded); the walkers check the separators of what they
 * walk; numbers are checked by their characters, not their grammar. So
 * text that is passed on whole is parsed again by cJSON first, and callers
 * that pass strings on repair their UTF-8 (lt_json_msg does). cJSON stays the parser
 * for everything that is not hot (HTTP bodies, rare commands).
 */
#ifndef LT_JSCAN_H
#define LT_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/msg.h"

#define LT_JSCAN_DEPTH_MAX 64

/* A value's text: p[0] says its kind ('{', '[', '"', '-' or digit, 't', 'f',
 * 'n'); p == NULL means missing. Values handed out by the walkers and
 * getters are "open": they start at the value and run to the end of the
 * enclosing input, so that nothing is skipped that nobody asked for; every
 * reader finds the value's own end as it goes. lt_jscan_value gives an
 * exact view. */
struct lt_jv {
	const char *p;
	size_t n;
};

/* The first value in s[0..n) (after whitespace). Returns LT_OK with *out and,
 * if next is not NULL, *next = the offset just after it; LT_EPROTO if it is
 * malformed or truncated. */
int lt_jscan_value(const char *s, size_t n, struct lt_jv *out, size_t *next);

/* Walking a container once. */
struct lt_jit {
	const char *p, *end;
	const char *pending; /* the value handed out last, skipped on the next step */
	const char *close;   /* after the closing bracket, once the walk reached it */
	bool first;
	bool bad; /* set when the container turned out malformed */
};

/* Start walking v (an object or an array; anything else walks nothing). */
void lt_jit_begin(struct lt_jit *it, struct lt_jv v);
/* The next member of an object: *key is the key's raw text between its
 * quotes (escapes not decoded). false at the end or on malformed input. */
bool lt_jit_member(struct lt_jit *it, struct lt_jv *key, struct lt_jv *val);
/* The next element of an array. */
bool lt_jit_elem(struct lt_jit *it, struct lt_jv *val);

/* The caller read the value handed out last and found that it ends just
 * before after: the walk goes on from there without skipping it again. */
void lt_jit_skip_to(struct lt_jit *it, const char *after);

/* obj[key] (compared with the raw key text); missing if absent. */
struct lt_jv lt_jscan_get(struct lt_jv obj, const char *key);
/* out[i] = obj[keys[i]] for i < n (n <= 32), in one walk. */
void lt_jscan_get_many(struct lt_jv obj, const char *const *keys, int n, struct lt_jv *out);
/* The same, going on inside an object whose walk got as far as p, just
 * after a member's value; end is the end of its input. Members before p are
 * not looked at. */
void lt_jscan_get_many_after(const char *p, const char *end, const char *const *keys, int n, struct lt_jv *out);
/* If obj's first member is key: true with *val its value (open) and *after
 * the position just after that value, from which lt_jscan_get_many_after
 * finds any other key as lt_jscan_get_many on obj would. false if the first
 * member is another key, or obj or that value is malformed. */
bool lt_jscan_first_member(struct lt_jv obj, const char *key, struct lt_jv *val, const char **after);
/* arr[i]; missing if out of range. */
struct lt_jv lt_jscan_at(struct lt_jv arr, int i);
/* out[k] = arr[idx[k]] for k < n (idx ascending), in one walk. */
void lt_jscan_at_many(struct lt_jv arr, const int *idx, int n, struct lt_jv *out);
/* The same, going on inside an array whose walk got as far as p, just after
 * its element at index at - 1 (at >= 1); end is the end of its input.
 * Elements before at are not looked at. */
void lt_jscan_at_many_after(const char *p, const char *end, int at, const int *idx, int n, struct lt_jv *out);
/* p just after an element of an array: walk the rest of it as lt_jit_elem
 * would (separators checked, elements skipped) and return the position just
 * after its closing bracket; NULL where that walk would find it malformed. */
const char *lt_jscan_array_end(const char *p, const char *end);

static inline bool lt_jv_ok(struct lt_jv v) { return v.p != NULL; }
static inline bool lt_jv_is(struct lt_jv v, char kind) { return v.p && v.p[0] == kind; }

/* An integer from a number (fraction cut off) or from a string holding an
 * integer; def if v is anything else or out of range. */
int64_t lt_jscan_int(struct lt_jv v, int64_t def);

/* A string's value: a view into the input when it has no escapes, else
 * unescaped into scratch (appended; \u escapes become UTF-8, lone
 * surrogates U+FFFD). The caller reserves enough room beforehand (the
 * unescaped form is never longer than the escaped one) so that earlier views
 * into scratch stay valid; false if v is not a string or scratch is full. */
bool lt_jscan_str(struct lt_jv v, struct lt_buf *scratch, struct lt_str *out);

/* An id as text: a string's value, or an integer's digits as they stand
 * (a view); missing otherwise. */
bool lt_jscan_id(struct lt_jv v, struct lt_buf *scratch, struct lt_str *out);

/* Whether the scanner may use its AVX2 loops (the default, on a CPU that has
 * AVX2 and PCLMUL) or only the SSE2 / byte-by-byte ones: for the tests,
 * which run both. Returns whether the AVX2 loops are now in use. */
bool lt_jscan_simd(bool allow);

/* Defined where the AVX2 loops are compiled in (x86-64, GCC or clang: as
 * functions with their own target, whatever the build's -march); then
 * lt_jscan_avx2 says whether to use them now, and decoders with AVX2 loops
 * of their own follow it. */
#if defined(__SSE2__) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LT_JSCAN_AVX2 1
bool lt_jscan_avx2(void);
#endif

#endif
