/* SPDX-License-Identifier: MIT */
/*
 * json: the normalized JSON form of a LiveMessage (see json.h and
 * contract.md), UTF-8 validation and repair.
 *
 * lt_json_msg is on the processor's per-message path, so it is a hand-written
 * encoder: one lt_buf_reserve for the worst case, then plain stores, with runs
 * of safe ASCII copied by memcpy. Key order is fixed:
 *   v, platform, room, type, msg_id, user{id,name}, content, ts, extra
 *
 * String escaping: " and \ as \" and \\; \b \f \n \r \t in their short forms;
 * other control characters (U+0000..U+001F) as \u00xx; U+2028 and U+2029 as
 * \u2028 and \u2029 so that the text is also a safe JavaScript literal; all
 * other characters as raw UTF-8. Invalid UTF-8 (stray continuation bytes,
 * overlongs, surrogates, code points above U+10FFFF, truncated sequences) is
 * replaced by U+FFFD, one per maximal ill-formed subpart (the Unicode /
 * WHATWG "replacement of maximal subparts" policy).
 *
 * extra: emitted as the JSON object text it holds when that text is a valid
 * RFC 8259 object, with three normalizations so that the output is always
 * one line, valid UTF-8 and storable in PostgreSQL jsonb: insignificant
 * whitespace is dropped, invalid UTF-8 inside its strings is replaced by
 * U+FFFD and raw U+2028/U+2029 are escaped. Anything else — empty text, not
 * an object, a syntax error, trailing bytes, nesting deeper than 64, a raw
 * control character in a string, a \u0000 escape or an unpaired surrogate
 * escape (both of which jsonb refuses) — is replaced by {}. Validation is one
 * linear pass that writes as it checks; a flat object that is already in
 * normalized form (what the decoders build) is recognized by a quicker
 * check and copied whole, and one whose producer vouches for that form
 * (lt_msg.extra_normal) without the check.
 *
 * lt_json_msg_parse is the reverse, built on cJSON (not on a hot path).
 */
#include "common/json.h"

#include <math.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/err.h"

#define EXTRA_DEPTH_MAX 64

/* Byte classes for the string escaper: 0 = copy as is, 1 = ASCII that needs
 * an escape, 2 = a byte >= 0x80 (start of a UTF-8 sequence to check). */
static const uint8_t esc_class[256] = {
	[0x00] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	[0x10] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	['"'] = 1, ['\\'] = 1,
	[0x80] = 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	[0x90] = 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	[0xA0] = 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	[0xB0] = 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	[0xC0] = 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	[0xD0] = 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	[0xE0] = 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	[0xF0] = 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

static const char hexdig[16] = "0123456789abcdef";

/* Length of the well-formed UTF-8 sequence at s[0..n) (n >= 1, s[0] >= 0x80),
 * or minus the length of its maximal ill-formed subpart (Unicode 15, table
 * 3-7: no overlongs, no surrogates D800..DFFF, nothing above U+10FFFF). */
static inline int utf8_next(const uint8_t *s, size_t n)
{
	uint8_t c = s[0], lo = 0x80, hi = 0xBF;
	int need;
	if (c < 0x80)
		return 1;
	if (c < 0xC2)
		return -1;
	if (c < 0xE0) {
		need = 1;
	} else if (c < 0xF0) {
		need = 2;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else if (c < 0xF5) {
		need = 3;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else {
		return -1;
	}
	for (int i = 1; i <= need; i++) {
		if ((size_t)i >= n || s[i] < lo || s[i] > hi)
			return -i;
		lo = 0x80;
		hi = 0xBF;
	}
	return need + 1;
}

static inline bool is_line_sep(const uint8_t *s)
{
	return s[0] == 0xE2 && s[1] == 0x80 && (s[2] == 0xA8 || s[2] == 0xA9);
}

static inline uint8_t *put_fffd(uint8_t *d)
{
	d[0] = 0xEF;
	d[1] = 0xBF;
	d[2] = 0xBD;
	return d + 3;
}

static inline uint8_t *put_u_escape(uint8_t *d, unsigned cp)
{
	d[0] = '\\';
	d[1] = 'u';
	d[2] = (uint8_t)hexdig[(cp >> 12) & 15];
	d[3] = (uint8_t)hexdig[(cp >> 8) & 15];
	d[4] = (uint8_t)hexdig[(cp >> 4) & 15];
	d[5] = (uint8_t)hexdig[cp & 15];
	return d + 6;
}

/* True if none of the 8 bytes at p needs a look (class 0 in esc_class:
 * ASCII from 0x20 up, other than " and \). Word-at-a-time: a byte < 0x20
 * sets its high bit in (x - 0x20..) & ~x, a byte equal to '"' or '\' in
 * the same test for zero on x ^ that byte; all exact when no byte of x has
 * its high bit set, which is tested too. */
static inline bool safe8(const uint8_t *p)
{
	const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
	uint64_t x, q, b;
	memcpy(&x, p, 8);
	q = x ^ (ones * '"');
	b = x ^ (ones * '\\');
	return !((x | ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b)) & high);
}

/* Copy s[0..k) to d with a few overlapping word moves instead of a call
 * to memcpy: the runs copied here (ids, names, short chat lines, keys of
 * extra) are mostly under 16 bytes, where the libc call costs more than
 * the copy. Never reads or writes outside the k bytes. */
static inline void copy_short(uint8_t *d, const uint8_t *s, size_t k)
{
	if (k >= 8) {
		if (k > 16) {
			memcpy(d, s, k);
			return;
		}
		uint64_t a, b;
		memcpy(&a, s, 8);
		memcpy(&b, s + k - 8, 8);
		memcpy(d, &a, 8);
		memcpy(d + k - 8, &b, 8);
	} else if (k >= 4) {
		uint32_t a, b;
		memcpy(&a, s, 4);
		memcpy(&b, s + k - 4, 4);
		memcpy(d, &a, 4);
		memcpy(d + k - 4, &b, 4);
	} else if (k) {
		/* 1..3 bytes: first, middle (= first or last) and last */
		uint8_t a = s[0], m = s[k >> 1], z = s[k - 1];
		d[0] = a;
		d[k >> 1] = m;
		d[k - 1] = z;
	}
}

/* Write the escaped body of s[0..n) (no quotes) at d, which has room for
 * 6 * n bytes; returns the new end. Runs of bytes that need no change
 * (ASCII text and well-formed sequences other than U+2028/U+2029) are
 * copied with one memcpy each. A leading ASCII run is skipped 8 bytes at
 * a time: ids and rooms are all ASCII, chat text mostly not. */
static inline __attribute__((always_inline)) uint8_t *esc_body(uint8_t *d, const uint8_t *s, size_t n)
{
	size_t i = 0, run = 0;
	if (n == 0)
		return d; /* s may be NULL */
	while (n - i >= 8 && safe8(s + i)) {
		memcpy(d + i, s + i, 8); /* d has room for 6 * n bytes */
		i += 8;
	}
	d += i;
	run = i;
	while (i < n) {
		uint8_t c = s[i], cls = esc_class[c];
		if (!cls) {
			i++;
			continue;
		}
		int l = 0;
		if (cls == 2) {
			/* Fast path: the common 3-byte form (CJK) E1..EC or EE..EF
			 * followed by two continuation bytes, never U+2028/9 (E2 80
			 * A8/A9 takes the slow path). */
			if (c >= 0xE1 && c <= 0xEF && c != 0xED && n - i >= 3 && (s[i + 1] & 0xC0) == 0x80 &&
			    (s[i + 2] & 0xC0) == 0x80 && !(c == 0xE2 && s[i + 1] == 0x80)) {
				i += 3;
				continue;
			}
			l = utf8_next(s + i, n - i);
			if (l > 0 && !(l == 3 && is_line_sep(s + i))) {
				i += (size_t)l;
				continue;
			}
		}
		copy_short(d, s + run, i - run);
		d += i - run;
		if (cls == 1) {
			i++;
			*d++ = '\\';
			switch (c) {
			case '"': *d++ = '"'; break;
			case '\\': *d++ = '\\'; break;
			case '\b': *d++ = 'b'; break;
			case '\f': *d++ = 'f'; break;
			case '\n': *d++ = 'n'; break;
			case '\r': *d++ = 'r'; break;
			case '\t': *d++ = 't'; break;
			default: d = put_u_escape(d - 1, c); break;
			}
		} else if (l < 0) {
			d = put_fffd(d);
			i += (size_t)-l;
		} else {
			d = put_u_escape(d, s[i + 2] == 0xA8 ? 0x2028u : 0x2029u);
			i += 3;
		}
		run = i;
	}
	copy_short(d, s + run, n - run);
	return d + (n - run);
}

static inline uint8_t *put_lit(uint8_t *d, const char *s, size_t n)
{
	memcpy(d, s, n);
	return d + n;
}

#define PUT_LIT(d, s) put_lit((d), (s), sizeof(s) - 1)

/* Inline in each of lt_json_msg's five strings: the call and its register
 * saves were a fifth of the cost of a short id or name. */
static inline __attribute__((always_inline)) uint8_t *put_qstr(uint8_t *d, const char *s, size_t n)
{
	*d++ = '"';
	d = esc_body(d, (const uint8_t *)s, n);
	*d++ = '"';
	return d;
}

/* "00" … "99": put_i64 forms two digits per division. */
static const char digits2[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static uint8_t *put_i64(uint8_t *d, int64_t v)
{
	uint8_t tmp[24];
	uint8_t *t = tmp + sizeof(tmp);
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	while (u >= 100) {
		const char *p = digits2 + 2 * (u % 100);
		u /= 100;
		*--t = (uint8_t)p[1];
		*--t = (uint8_t)p[0];
	}
	if (u >= 10) {
		*--t = (uint8_t)digits2[2 * u + 1];
		*--t = (uint8_t)digits2[2 * u];
	} else {
		*--t = (uint8_t)('0' + u);
	}
	if (v < 0)
		*d++ = '-';
	size_t k = (size_t)(tmp + sizeof(tmp) - t);
	memcpy(d, t, k);
	return d + k;
}

/* ---- extra: one pass that validates a JSON object and copies it ---- */

struct jv {
	const uint8_t *s;
	size_t n;
	size_t i;
	uint8_t *d;
};

static inline void jv_ws(struct jv *v)
{
	while (v->i < v->n) {
		uint8_t c = v->s[v->i];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		v->i++;
	}
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Read \uXXXX at s[i] (the backslash); -1 if it is not one. */
static long jv_u4(const struct jv *v, size_t i)
{
	if (v->n - i < 6 || v->s[i] != '\\' || v->s[i + 1] != 'u')
		return -1;
	long cp = 0;
	for (size_t k = 2; k < 6; k++) {
		int h = hexval(v->s[i + k]);
		if (h < 0)
			return -1;
		cp = cp * 16 + h;
	}
	return cp;
}

static bool jv_string(struct jv *v)
{
	*v->d++ = '"';
	v->i++;
	for (;;) {
		size_t j = v->i;
		while (j < v->n && !esc_class[v->s[j]])
			j++;
		if (j > v->i) {
			copy_short(v->d, v->s + v->i, j - v->i);
			v->d += j - v->i;
			v->i = j;
		}
		if (v->i >= v->n)
			return false;
		uint8_t c = v->s[v->i];
		if (c == '"') {
			*v->d++ = '"';
			v->i++;
			return true;
		}
		if (c == '\\') {
			if (v->n - v->i < 2)
				return false;
			uint8_t e = v->s[v->i + 1];
			size_t len = 2;
			if (e == 'u') {
				long cp = jv_u4(v, v->i);
				if (cp <= 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
					return false;
				len = 6;
				if (cp >= 0xD800 && cp <= 0xDBFF) {
					long lo = jv_u4(v, v->i + 6);
					if (lo < 0xDC00 || lo > 0xDFFF)
						return false;
					len = 12;
				}
			} else if (!strchr("\"\\/bfnrt", e) || e == 0) {
				return false;
			}
			memcpy(v->d, v->s + v->i, len);
			v->d += len;
			v->i += len;
			continue;
		}
		if (c < 0x80)
			return false; /* a raw control character */
		int l = utf8_next(v->s + v->i, v->n - v->i);
		if (l < 0) {
			v->d = put_fffd(v->d);
			v->i += (size_t)-l;
		} else if (l == 3 && is_line_sep(v->s + v->i)) {
			v->d = put_u_escape(v->d, v->s[v->i + 2] == 0xA8 ? 0x2028u : 0x2029u);
			v->i += 3;
		} else {
			copy_short(v->d, v->s + v->i, (size_t)l);
			v->d += l;
			v->i += (size_t)l;
		}
	}
}

static inline bool jv_digit(const struct jv *v)
{
	return v->i < v->n && v->s[v->i] >= '0' && v->s[v->i] <= '9';
}

static bool jv_number(struct jv *v)
{
	size_t start = v->i;
	if (v->s[v->i] == '-')
		v->i++;
	if (!jv_digit(v))
		return false;
	if (v->s[v->i] == '0') {
		v->i++;
	} else {
		while (jv_digit(v))
			v->i++;
	}
	if (v->i < v->n && v->s[v->i] == '.') {
		v->i++;
		if (!jv_digit(v))
			return false;
		while (jv_digit(v))
			v->i++;
	}
	if (v->i < v->n && (v->s[v->i] == 'e' || v->s[v->i] == 'E')) {
		v->i++;
		if (v->i < v->n && (v->s[v->i] == '+' || v->s[v->i] == '-'))
			v->i++;
		if (!jv_digit(v))
			return false;
		while (jv_digit(v))
			v->i++;
	}
	copy_short(v->d, v->s + start, v->i - start);
	v->d += v->i - start;
	return true;
}

static bool jv_word(struct jv *v, const char *w, size_t wl)
{
	if (v->n - v->i < wl || memcmp(v->s + v->i, w, wl) != 0)
		return false;
	memcpy(v->d, w, wl);
	v->d += wl;
	v->i += wl;
	return true;
}

static bool jv_value(struct jv *v, int depth);

/* An object or array at v->s[v->i] ('{' or '['). */
static bool jv_container(struct jv *v, int depth)
{
	uint8_t open = v->s[v->i], close = open == '{' ? '}' : ']';
	if (depth >= EXTRA_DEPTH_MAX)
		return false;
	*v->d++ = open;
	v->i++;
	jv_ws(v);
	if (v->i < v->n && v->s[v->i] == close) {
		*v->d++ = close;
		v->i++;
		return true;
	}
	for (;;) {
		if (open == '{') {
			if (v->i >= v->n || v->s[v->i] != '"' || !jv_string(v))
				return false;
			jv_ws(v);
			if (v->i >= v->n || v->s[v->i] != ':')
				return false;
			*v->d++ = ':';
			v->i++;
			jv_ws(v);
		}
		if (!jv_value(v, depth + 1))
			return false;
		jv_ws(v);
		if (v->i >= v->n)
			return false;
		uint8_t c = v->s[v->i++];
		*v->d++ = c;
		if (c == close)
			return true;
		if (c != ',')
			return false;
		jv_ws(v);
	}
}

static bool jv_value(struct jv *v, int depth)
{
	if (v->i >= v->n)
		return false;
	switch (v->s[v->i]) {
	case '{':
	case '[':
		return jv_container(v, depth);
	case '"':
		return jv_string(v);
	case 't':
		return jv_word(v, "true", 4);
	case 'f':
		return jv_word(v, "false", 5);
	case 'n':
		return jv_word(v, "null", 4);
	default:
		return jv_number(v);
	}
}

/* The string at s[*pi] (the opening quote) if its normalized form is its
 * own text: no escapes, no control characters, well-formed UTF-8 other than
 * U+2028/U+2029. Moves *pi past the closing quote and returns true; false
 * says "not that simple", not "invalid". */
static inline bool flat_str(const uint8_t *s, size_t n, size_t *pi)
{
	size_t i = *pi + 1;
	while (i < n) {
		uint8_t c = s[i], cls = esc_class[c];
		if (!cls) {
			i++;
			continue;
		}
		if (c == '"') {
			*pi = i + 1;
			return true;
		}
		if (cls == 1)
			return false;
		int l = utf8_next(s + i, n - i);
		if (l < 0 || (l == 3 && is_line_sep(s + i)))
			return false;
		i += (size_t)l;
	}
	return false;
}

/* True if s[0..n) is a flat object that is already in normalized form, so
 * that put_extra may copy it as it stands: {} or {"k":v,...} with no
 * whitespace outside strings, every key a flat_str, every value a flat_str
 * or an integer (-?(0|[1-9][0-9]*)). This is what the decoders build, and
 * checking it is a fraction of the full pass. Every text accepted here is
 * also accepted by the full pass, which would copy it unchanged; anything
 * else (nesting, literals, fractions, escapes, whitespace, invalid UTF-8,
 * or plain garbage) gets false and goes through the full pass. */
static bool extra_flat(const uint8_t *s, size_t n)
{
	if (n < 2 || s[0] != '{')
		return false;
	if (s[1] == '}')
		return n == 2;
	size_t i = 1;
	for (;;) {
		if (i >= n || s[i] != '"' || !flat_str(s, n, &i))
			return false;
		if (i >= n || s[i] != ':')
			return false;
		if (++i >= n)
			return false;
		if (s[i] == '"') {
			if (!flat_str(s, n, &i))
				return false;
		} else {
			if (s[i] == '-')
				i++;
			if (i >= n || s[i] < '0' || s[i] > '9')
				return false;
			if (s[i] == '0')
				i++;
			else
				while (i < n && s[i] >= '0' && s[i] <= '9')
					i++;
		}
		if (i >= n)
			return false;
		if (s[i] == '}')
			return i + 1 == n;
		if (s[i] != ',')
			return false;
		i++;
	}
}

/* Write extra at d (room for 6 * len + 2 bytes): the normalized object, or {}
 * when it is not a valid object. Returns the new end. A text already in
 * normalized flat form (extra_flat) is copied as it is; the rest takes the
 * full validating pass. */
static uint8_t *put_extra(uint8_t *d, struct lt_str x, bool normal)
{
	if ((normal && x.len >= 2) || extra_flat((const uint8_t *)x.p, x.len)) {
		memcpy(d, x.p, x.len);
		return d + x.len;
	}
	if (x.len >= 2) {
		struct jv v = {(const uint8_t *)x.p, x.len, 0, d};
		jv_ws(&v);
		if (v.i < v.n && v.s[v.i] == '{' && jv_container(&v, 0)) {
			jv_ws(&v);
			if (v.i == v.n)
				return v.d;
		}
	}
	return PUT_LIT(d, "{}");
}

/* ---- public encoders ---- */

/* Append m's contract JSON form to out (no newline); m is only read. Returns
 * out's sticky error (LT_ENOMEM, or LT_ETOOBIG past out's limit). Anonymous
 * records (LT_MSGF_ANONYMOUS) get "id":"" whatever user_id holds. */
int lt_json_msg(struct lt_buf *out, const struct lt_msg *m)
{
	struct lt_str uid = (m->flags & LT_MSGF_ANONYMOUS) ? LT_STR_NULL : m->user_id;
	uint64_t strs = (uint64_t)m->room.len + m->msg_id.len + uid.len + m->user_name.len +
			m->content.len + m->extra.len;
	if (strs > (SIZE_MAX - 256) / 6)
		return out->err ? out->err : (out->err = LT_ETOOBIG);
	int rc = lt_buf_reserve(out, 6 * (size_t)strs + 192);
	if (rc)
		return rc;
	struct lt_str pn = lt_platform_name_str(m->platform);
	struct lt_str tn = lt_msg_type_name_str(m->type);
	uint8_t *d = out->data + out->len;
	d = PUT_LIT(d, "{\"v\":1,\"platform\":\"");
	copy_short(d, (const uint8_t *)pn.p, pn.len);
	d += pn.len;
	d = PUT_LIT(d, "\",\"room\":");
	d = put_qstr(d, m->room.p, m->room.len);
	d = PUT_LIT(d, ",\"type\":\"");
	copy_short(d, (const uint8_t *)tn.p, tn.len);
	d += tn.len;
	d = PUT_LIT(d, "\",\"msg_id\":");
	d = put_qstr(d, m->msg_id.p, m->msg_id.len);
	d = PUT_LIT(d, ",\"user\":{\"id\":");
	d = put_qstr(d, uid.p, uid.len);
	d = PUT_LIT(d, ",\"name\":");
	d = put_qstr(d, m->user_name.p, m->user_name.len);
	d = PUT_LIT(d, "},\"content\":");
	d = put_qstr(d, m->content.p, m->content.len);
	d = PUT_LIT(d, ",\"ts\":");
	d = put_i64(d, m->ts);
	d = PUT_LIT(d, ",\"extra\":");
	d = put_extra(d, m->extra, m->extra_normal);
	*d++ = '}';
	out->len = (size_t)(d - out->data);
	out->data[out->len] = 0;
	return LT_OK;
}

/* Append s[0..n) as a quoted, escaped JSON string; errors stick in out. */
void lt_json_str(struct lt_buf *out, const char *s, size_t n)
{
	if (n > (SIZE_MAX - 8) / 6) {
		if (!out->err)
			out->err = LT_ETOOBIG;
		return;
	}
	if (lt_buf_reserve(out, 6 * n + 2))
		return;
	uint8_t *d = put_qstr(out->data + out->len, s, n);
	out->len = (size_t)(d - out->data);
	out->data[out->len] = 0;
}

/* True if s[0..n) is well-formed UTF-8. */
bool lt_utf8_valid(const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;
	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		int l = utf8_next(p + i, n - i);
		if (l < 0)
			return false;
		i += (size_t)l;
	}
	return true;
}

/* Append s[0..n) to out with each maximal ill-formed subpart replaced by
 * U+FFFD; returns the number of replacements (counted even if out failed). */
size_t lt_utf8_repair(struct lt_buf *out, const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t repl = 0;
	uint8_t *d = NULL;
	if (n <= (SIZE_MAX - 8) / 3 && lt_buf_reserve(out, 3 * n) == LT_OK)
		d = out->data + out->len;
	else if (!out->err)
		out->err = LT_ETOOBIG;
	size_t i = 0;
	while (i < n) {
		int l = p[i] < 0x80 ? 1 : utf8_next(p + i, n - i);
		if (l < 0) {
			repl++;
			if (d)
				d = put_fffd(d);
			i += (size_t)-l;
		} else {
			if (d) {
				memcpy(d, p + i, (size_t)l);
				d += l;
			}
			i += (size_t)l;
		}
	}
	if (d) {
		out->len = (size_t)(d - out->data);
		out->data[out->len] = 0;
	}
	return repl;
}

/* ---- parse (cJSON) ---- */

static int bad_field(struct lt_error *e, const char *field, const char *what)
{
	lt_error_set(e, LT_EINVAL, "%s: %s", field, what);
	lt_error_detail(e, "field", field);
	return LT_EINVAL;
}

/* Copy the string item it (may be NULL when !required) into the arena as
 * *out, repairing invalid UTF-8 (and setting LT_MSGF_REPAIRED in *flags). */
static int take_str(const cJSON *it, const char *field, bool required, uint32_t max, struct lt_arena *a,
		    struct lt_str *out, uint8_t *flags, struct lt_error *e)
{
	if (!it) {
		if (required)
			return bad_field(e, field, "missing");
		*out = LT_STR_NULL;
		return LT_OK;
	}
	if (!cJSON_IsString(it) || !it->valuestring)
		return bad_field(e, field, "not a string");
	const char *s = it->valuestring;
	size_t n = strlen(s);
	char *copy;
	if (lt_utf8_valid(s, n)) {
		if (n > max)
			return bad_field(e, field, "too long");
		copy = lt_arena_strndup(a, s, n);
	} else {
		struct lt_buf tmp = LT_BUF_INIT;
		lt_utf8_repair(&tmp, s, n);
		if (lt_buf_err(&tmp) || tmp.len > max) {
			lt_buf_free(&tmp);
			return bad_field(e, field, "too long");
		}
		n = tmp.len;
		copy = lt_arena_strndup(a, (const char *)tmp.data, n);
		lt_buf_free(&tmp);
		*flags |= LT_MSGF_REPAIRED;
	}
	if (!copy)
		return lt_error_set(e, LT_ENOMEM, "%s: arena full", field);
	out->p = copy;
	out->len = (uint32_t)n;
	return LT_OK;
}

/* Skip the JSON string at s[i] (the opening quote) of a document cJSON has
 * already accepted; returns the index after the closing quote. */
static size_t skip_str(const char *s, size_t n, size_t i)
{
	for (i++; i < n && s[i] != '"'; i++)
		if (s[i] == '\\')
			i++;
	return i < n ? i + 1 : n;
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/* Find the raw text of the first top-level member named key (spelled without
 * escapes) in the object s[0..n), which cJSON has already accepted, so this
 * only tracks strings and nesting. Returns true with its value's span. */
static bool raw_member(const char *s, size_t n, const char *key, size_t *vs, size_t *ve)
{
	size_t kl = strlen(key), i = skip_ws(s, n, 0);
	if (i >= n || s[i] != '{')
		return false;
	i++;
	for (;;) {
		i = skip_ws(s, n, i);
		if (i >= n || s[i] != '"')
			return false;
		size_t ks = i + 1, ke = skip_str(s, n, i);
		bool match = ke - ks == kl + 1 && memcmp(s + ks, key, kl) == 0;
		i = skip_ws(s, n, ke);
		if (i >= n || s[i] != ':')
			return false;
		i = skip_ws(s, n, i + 1);
		size_t start = i;
		int depth = 0;
		while (i < n) {
			char c = s[i];
			if (c == '"') {
				i = skip_str(s, n, i);
				continue;
			}
			if (c == '{' || c == '[') {
				depth++;
			} else if (c == '}' || c == ']') {
				if (depth == 0)
					break;
				depth--;
			} else if (c == ',' && depth == 0) {
				break;
			}
			i++;
		}
		if (match) {
			*vs = start;
			*ve = i;
			return true;
		}
		if (i >= n || s[i] != ',')
			return false;
		i++;
	}
}

/* An integral JSON number that a double holds exactly (|x| <= 2^53). */
static bool exact_int(const cJSON *it, int64_t *v)
{
	if (!cJSON_IsNumber(it))
		return false;
	double x = it->valuedouble;
	if (!isfinite(x) || x != floor(x) || fabs(x) > 9007199254740992.0)
		return false;
	*v = (int64_t)x;
	return true;
}

/* Parse one normalized-JSON line s[0..n) into *m (see json.h). Required: v
 * (= 1), platform (a known name), room, type (a known name), ts (an integer);
 * optional, empty when absent: msg_id, user {id, name}, content, extra (an
 * object). Unknown keys are ignored. Strings are copied into arena (invalid
 * UTF-8 repaired, LT_MSGF_REPAIRED set) and checked against msg.h's limits;
 * extra keeps its own text (numbers exactly as written) in the normalized
 * form lt_json_msg emits, and must pass that encoder's strict check (else
 * LT_EINVAL naming extra); its integer "count" and "value" (|x| <= 2^53),
 * when present, fill m->count and m->value. Trailing bytes other than
 * whitespace are refused;
 * an empty user id sets LT_MSGF_ANONYMOUS. Returns LT_OK with *m filled,
 * LT_EINVAL with e naming the field ("field" in its details), or LT_ENOMEM. */
int lt_json_msg_parse(const char *s, size_t n, struct lt_arena *arena, struct lt_msg *m, struct lt_error *e)
{
	struct lt_msg t;
	int rc;
	int64_t iv;
	memset(&t, 0, sizeof(t));
	const char *endp = NULL;
	cJSON *root = s ? cJSON_ParseWithLengthOpts(s, n, &endp, 0) : NULL;
	size_t end = root ? (size_t)(endp - s) : 0;
	if (root && skip_ws(s, n, end) != n) {
		rc = lt_error_set(e, LT_EINVAL, "trailing bytes after the JSON object");
		goto out;
	}
	if (!root) {
		rc = lt_error_set(e, LT_EINVAL, "not valid JSON");
		goto out;
	}
	if (!cJSON_IsObject(root)) {
		rc = bad_field(e, "(root)", "not an object");
		goto out;
	}
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "v");
	if (!v) {
		rc = bad_field(e, "v", "missing");
		goto out;
	}
	if (!exact_int(v, &iv) || iv != 1) {
		rc = bad_field(e, "v", "unsupported version (expected 1)");
		goto out;
	}
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "platform");
	if (!cJSON_IsString(it) || !it->valuestring) {
		rc = bad_field(e, "platform", it ? "not a string" : "missing");
		goto out;
	}
	t.platform = (uint8_t)lt_platform_parse(it->valuestring, strlen(it->valuestring));
	if (t.platform == LT_PLATFORM_UNKNOWN) {
		rc = bad_field(e, "platform", "unknown platform");
		goto out;
	}
	it = cJSON_GetObjectItemCaseSensitive(root, "type");
	if (!cJSON_IsString(it) || !it->valuestring) {
		rc = bad_field(e, "type", it ? "not a string" : "missing");
		goto out;
	}
	int ty = lt_msg_type_parse(it->valuestring, strlen(it->valuestring));
	if (ty < 0) {
		rc = bad_field(e, "type", "unknown message type");
		goto out;
	}
	t.type = (uint8_t)ty;
	it = cJSON_GetObjectItemCaseSensitive(root, "ts");
	if (!it) {
		rc = bad_field(e, "ts", "missing");
		goto out;
	}
	if (!exact_int(it, &t.ts)) {
		rc = bad_field(e, "ts", "not an integer number of milliseconds");
		goto out;
	}
	if ((rc = take_str(cJSON_GetObjectItemCaseSensitive(root, "room"), "room", true, LT_MSG_ROOM_MAX, arena,
			   &t.room, &t.flags, e)))
		goto out;
	if ((rc = take_str(cJSON_GetObjectItemCaseSensitive(root, "msg_id"), "msg_id", false, LT_MSG_ID_MAX,
			   arena, &t.msg_id, &t.flags, e)))
		goto out;
	if ((rc = take_str(cJSON_GetObjectItemCaseSensitive(root, "content"), "content", false,
			   LT_MSG_CONTENT_MAX, arena, &t.content, &t.flags, e)))
		goto out;
	const cJSON *user = cJSON_GetObjectItemCaseSensitive(root, "user");
	if (user && !cJSON_IsObject(user)) {
		rc = bad_field(e, "user", "not an object");
		goto out;
	}
	if ((rc = take_str(cJSON_GetObjectItemCaseSensitive(user, "id"), "user.id", false, LT_MSG_USER_ID_MAX,
			   arena, &t.user_id, &t.flags, e)))
		goto out;
	if ((rc = take_str(cJSON_GetObjectItemCaseSensitive(user, "name"), "user.name", false,
			   LT_MSG_USER_NAME_MAX, arena, &t.user_name, &t.flags, e)))
		goto out;
	if (t.user_id.len == 0)
		t.flags |= LT_MSGF_ANONYMOUS;
	const cJSON *extra = cJSON_GetObjectItemCaseSensitive(root, "extra");
	if (extra) {
		if (!cJSON_IsObject(extra)) {
			rc = bad_field(e, "extra", "not an object");
			goto out;
		}
		if (exact_int(cJSON_GetObjectItemCaseSensitive(extra, "count"), &iv))
			t.count = iv;
		if (exact_int(cJSON_GetObjectItemCaseSensitive(extra, "value"), &iv))
			t.value = iv;
		/* Keep extra's own text (numbers exactly as written), normalized
		 * and checked by the encoder's strict pass; cJSON's re-print is
		 * only the fallback for a key spelled with escapes. */
		size_t vs = 0, ve = 0;
		char *txt = NULL;
		struct lt_str raw;
		if (raw_member(s, end, "extra", &vs, &ve)) {
			if (ve - vs > LT_MSG_EXTRA_MAX * 4u) {
				rc = bad_field(e, "extra", "too long");
				goto out;
			}
			raw.p = s + vs;
			raw.len = (uint32_t)(ve - vs);
		} else {
			txt = cJSON_PrintUnformatted(extra);
			if (!txt) {
				rc = lt_error_set(e, LT_ENOMEM, "extra: out of memory");
				goto out;
			}
			raw = lt_str_c(txt);
		}
		uint8_t *copy = lt_arena_alloc(arena, 6 * (size_t)raw.len + 3);
		size_t xl = 0;
		bool strict = false;
		if (copy) {
			xl = (size_t)(put_extra(copy, raw, false) - copy);
			copy[xl] = 0;
			strict = !(xl == 2 && memcmp(copy, "{}", 2) == 0 && cJSON_GetArraySize(extra) != 0);
		}
		cJSON_free(txt);
		if (!copy) {
			rc = lt_error_set(e, LT_ENOMEM, "extra: arena full");
			goto out;
		}
		if (!strict) {
			rc = bad_field(e, "extra", "not a strict JSON object (RFC 8259, no \\u0000, no lone surrogates)");
			goto out;
		}
		if (xl > LT_MSG_EXTRA_MAX) {
			rc = bad_field(e, "extra", "too long");
			goto out;
		}
		t.extra.p = (const char *)copy;
		t.extra.len = (uint32_t)xl;
	}
	*m = t;
	rc = LT_OK;
out:
	cJSON_Delete(root);
	return rc;
}
