/* SPDX-License-Identifier: MIT */
/*
 * jscan: the in-place JSON scanner (see jscan.h). Skipping a value is one
 * forward pass with a bit stack for the kinds of open containers; strings
 * are skipped with memchr to the next quote and a count of the backslashes
 * before it.
 */
#include "fetcher/jscan.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

static const char *skip_ws(const char *p, const char *end)
{
	/* compact JSON has none: one test for the usual case */
	while (p < end && (unsigned char)*p <= ' ' && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	return p;
}

/* p just after a value: true if a comma follows at once and the next value
 * (or key) right after it, as in compact JSON. The separator checks of the
 * walkers then come to p + 1 without their whitespace steps: a comma is not
 * whitespace nor a closing bracket, and p[1] > ' ' is no whitespace. */
static inline bool comma_tight(const char *p, const char *end)
{
	return end - p >= 2 && p[0] == ',' && (unsigned char)p[1] > ' ';
}

/* The characters a number is made of: digits, - + . e E. */
static const uint8_t num_char[256] = {
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
	['8'] = 1, ['9'] = 1, ['-'] = 1, ['+'] = 1, ['.'] = 1, ['e'] = 1, ['E'] = 1,
};

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* The first '"' or '\\' in [p, end), or end. */
static const char *find_quote_or_bs(const char *p, const char *end)
{
#if defined(__SSE2__)
	const __m128i q = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\');
	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		int m = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, q), _mm_cmpeq_epi8(v, bs)));
		if (m)
			return p + __builtin_ctz((unsigned)m);
		p += 16;
	}
#endif
	while (p < end && *p != '"' && *p != '\\')
		p++;
	return p;
}

#if defined(__SSE2__)
/* Bit i set where p[i] == c, for 64 bytes. */
static uint64_t mask64(const char *p, __m128i c)
{
	uint64_t m = 0;
	for (int k = 0; k < 4; k++) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k));
		m |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(v, c)) << (16 * k);
	}
	return m;
}

/* Whether any of the 64 bytes at p is c: one movemask instead of four (most
 * blocks of a container have no backslash). */
static bool any64(const char *p, __m128i c)
{
	__m128i a = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)p), c);
	__m128i b = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 16)), c);
	__m128i d = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 32)), c);
	__m128i e = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 48)), c);
	return _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(d, e))) != 0;
}

/* The bytes of a 64-byte block that a backslash escapes, from the backslash
 * bits bs: those after an odd run of backslashes. *carry says the previous
 * block ended in an odd run and is updated for the next block. */
static uint64_t escaped64(uint64_t bs, uint64_t *carry)
{
	const uint64_t even = 0x5555555555555555ULL, odd = ~even;

	if (!bs && !*carry)
		return 0;
	if (!(bs & ((bs << 1) | *carry))) {
		/* no backslash next to another (nor escaped by the previous
		 * block's): each escapes the byte after it, as in the \" of a
		 * JSON text inside a string */
		uint64_t esc = (bs << 1) | *carry;
		*carry = bs >> 63;
		return esc;
	}
	uint64_t starts = bs & ~(bs << 1);
	uint64_t even_start_mask = even ^ *carry;
	uint64_t even_starts = starts & even_start_mask;
	uint64_t odd_starts = starts & ~even_start_mask;
	uint64_t even_carries = bs + even_starts;
	uint64_t odd_carries = bs + odd_starts;
	uint64_t next_carry = odd_carries < bs;
	odd_carries |= *carry;
	uint64_t even_carry_ends = even_carries & ~bs;
	uint64_t odd_carry_ends = odd_carries & ~bs;
	*carry = next_carry;
	return (even_carry_ends & odd) | (odd_carry_ends & even);
}

/* Bit i set where p[i] is a bracket, any of { [ } ]: OR-ing 0x20 maps '['
 * to '{' and ']' to '}' and no other byte to either. */
static uint64_t mask64_brackets(const char *p)
{
	const __m128i x20 = _mm_set1_epi8(0x20), vo = _mm_set1_epi8('{'), vc = _mm_set1_epi8('}');
	uint64_t m = 0;
	for (int k = 0; k < 4; k++) {
		__m128i v = _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k)), x20);
		__m128i b = _mm_or_si128(_mm_cmpeq_epi8(v, vo), _mm_cmpeq_epi8(v, vc));
		m |= (uint64_t)(uint16_t)_mm_movemask_epi8(b) << (16 * k);
	}
	return m;
}

/* Bit i set where p[i] is inside a string (its opening quote included, its
 * closing quote not), given the unescaped quotes: a running XOR. */
static uint64_t prefix_xor(uint64_t x)
{
	x ^= x << 1;
	x ^= x << 2;
	x ^= x << 4;
	x ^= x << 8;
	x ^= x << 16;
	x ^= x << 32;
	return x;
}
#endif

/* AVX2 (with PCLMUL for the running XOR): the 64-byte block loops of
 * skip_str_long and skip_container in two 32-byte halves, about half the
 * instructions of their SSE2 form. Compiled for x86-64 with GCC or clang
 * whatever the build's -march, used only when the CPU has both (checked
 * once); lt_jscan_simd turns it off, so that the tests also run the SSE2
 * loops, which remain for other CPUs and take over for the last bytes. */
#if defined(LT_JSCAN_AVX2)
#define JSCAN_AVX2 1
#include <immintrin.h>
#include <stdatomic.h>

static atomic_int avx2_mode = -1; /* -1 not known yet, 0 off, 1 on */

static bool cpu_avx2(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("pclmul");
}

static inline bool use_avx2(void)
{
	int m = atomic_load_explicit(&avx2_mode, memory_order_relaxed);
	if (m < 0) {
		m = cpu_avx2();
		atomic_store_explicit(&avx2_mode, m, memory_order_relaxed);
	}
	return m > 0;
}

bool lt_jscan_avx2(void)
{
	return use_avx2();
}

/* Bit i set where the 64 bytes lo:hi hold c at i. */
__attribute__((target("avx2"))) static inline uint64_t mask64_avx2(__m256i lo, __m256i hi, __m256i c)
{
	uint32_t a = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(lo, c));
	uint32_t b = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(hi, c));
	return (uint64_t)a | (uint64_t)b << 32;
}

/* prefix_xor by a carry-less multiplication with all ones. */
__attribute__((target("avx2,pclmul"))) static inline uint64_t prefix_xor_clmul(uint64_t x)
{
	__m128i v = _mm_clmulepi64_si128(_mm_set_epi64x(0, (long long)x), _mm_set1_epi8(-1), 0);
	return (uint64_t)_mm_cvtsi128_si64(v);
}
#endif

bool lt_jscan_simd(bool allow)
{
#if defined(JSCAN_AVX2)
	int m = allow && cpu_avx2();
	atomic_store_explicit(&avx2_mode, m, memory_order_relaxed);
	return m > 0;
#else
	(void)allow;
	return false;
#endif
}

/* p at the opening quote; returns the position after the closing one, or
 * NULL. With SSE2, 64 bytes a step: the quotes that are not escaped are
 * those not preceded by an odd run of backslashes, found with the carry
 * trick (a run's start plus the run overflows into the byte after it). */
static const char *skip_str_long(const char *p, const char *end);

static inline const char *skip_str(const char *p, const char *end)
{
	p++;
#if defined(__SSE2__)
	if (end - p >= 16) {
		/* most strings are short and plain: their end is in the first 16 bytes */
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		unsigned mq = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')));
		unsigned mb = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
		if (mq && (!mb || __builtin_ctz(mq) < __builtin_ctz(mb)))
			return p + __builtin_ctz(mq) + 1;
	}
#endif
	return skip_str_long(p, end);
}

#if defined(JSCAN_AVX2)
/* skip_str_long's block loop: the position after the closing quote, or NULL
 * with *pp and *carry where the SSE2 loop goes on (fewer than 64 bytes). */
__attribute__((target("avx2"))) static const char *str_blocks_avx2(const char **pp, const char *end, uint64_t *carry)
{
	const __m256i vq = _mm256_set1_epi8('"'), vb = _mm256_set1_epi8('\\');
	const char *p = *pp;
	uint64_t cy = *carry;
	while (end - p >= 64) {
		__m256i lo = _mm256_loadu_si256((const __m256i *)(const void *)p);
		__m256i hi = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
		uint64_t bs = mask64_avx2(lo, hi, vb), qs = mask64_avx2(lo, hi, vq);
		uint64_t real = qs & ~escaped64(bs, &cy);
		if (real)
			return p + __builtin_ctzll(real) + 1;
		p += 64;
	}
	*pp = p;
	*carry = cy;
	return NULL;
}
#endif

/* The rest of skip_str: p just after the opening quote. */
static const char *skip_str_long(const char *p, const char *end)
{
#if defined(__SSE2__)
	const __m128i vq = _mm_set1_epi8('"'), vb = _mm_set1_epi8('\\');
	uint64_t carry = 0; /* the previous block ended in an odd run */
#if defined(JSCAN_AVX2)
	if (end - p >= 64 && use_avx2()) {
		const char *r = str_blocks_avx2(&p, end, &carry);
		if (r)
			return r;
	}
#endif
	while (end - p >= 64) {
		uint64_t bs = mask64(p, vb), qs = mask64(p, vq);
		uint64_t escaped = escaped64(bs, &carry);
		uint64_t real = qs & ~escaped;
		if (real)
			return p + __builtin_ctzll(real) + 1;
		p += 64;
	}
	if (carry)
		p++; /* the first byte here is escaped */
#endif
	for (;;) {
		p = find_quote_or_bs(p, end);
		if (p >= end)
			return NULL;
		if (*p == '"')
			return p + 1;
		p += 2; /* an escape: skip the escaped character */
	}
}

/* The first of " { } [ ] in [p, end), or end. */
static const char *find_struct(const char *p, const char *end)
{
#if defined(__SSE2__)
	const __m128i q = _mm_set1_epi8('"'), ob = _mm_set1_epi8('{'), cb = _mm_set1_epi8('}');
	const __m128i os = _mm_set1_epi8('['), cs = _mm_set1_epi8(']');
	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, q), _mm_cmpeq_epi8(v, ob)),
		                         _mm_or_si128(_mm_cmpeq_epi8(v, cb), _mm_or_si128(_mm_cmpeq_epi8(v, os),
		                                                                           _mm_cmpeq_epi8(v, cs))));
		int bits = _mm_movemask_epi8(m);
		if (bits)
			return p + __builtin_ctz((unsigned)bits);
		p += 16;
	}
#endif
	while (p < end && *p != '"' && *p != '{' && *p != '}' && *p != '[' && *p != ']')
		p++;
	return p;
}

static bool is_num_char(char c)
{
	return num_char[(unsigned char)c];
}

static const char *skip_container(const char *p, const char *end);

/* p at a value's first character; returns the position after it, or NULL.
 * Inline for the scalars that most values are; containers out of line. */
static inline const char *skip_value(const char *p, const char *end)
{
	if (p >= end)
		return NULL;
	switch (*p) {
	case '"':
		return skip_str(p, end);
	case 't':
		return end - p >= 4 && !memcmp(p, "true", 4) ? p + 4 : NULL;
	case 'f':
		return end - p >= 5 && !memcmp(p, "false", 5) ? p + 5 : NULL;
	case 'n':
		return end - p >= 4 && !memcmp(p, "null", 4) ? p + 4 : NULL;
	case '{':
	case '[':
		return skip_container(p, end);
	default:
		if (*p != '-' && (*p < '0' || *p > '9'))
			return NULL;
		while (p < end && is_num_char(*p))
			p++;
		return p;
	}
}

#if defined(__SSE2__)
/* The brackets outside strings of one 64-byte block at p (sb: their bits),
 * told apart by their byte (OR-ing 0x20 maps [ to { and ] to }), for both
 * block loops of skip_container: the offset after the bracket that closes
 * the container, -1 if the nesting is malformed or too deep, 0 to go on
 * (*kinds and *depth updated). */
static inline int block_brackets(const char *p, uint64_t sb, uint64_t *kinds, int *depth)
{
	for (; sb; sb &= sb - 1) {
		int i = __builtin_ctzll(sb);
		if ((p[i] | 0x20) == '{') {
			if (*depth >= LT_JSCAN_DEPTH_MAX)
				return -1;
			if (p[i] == '{')
				*kinds |= (uint64_t)1 << *depth;
			else
				*kinds &= ~((uint64_t)1 << *depth);
			(*depth)++;
		} else {
			if (*depth == 0)
				return -1;
			(*depth)--;
			if (((*kinds >> *depth) & 1) != (p[i] == '}'))
				return -1;
			if (*depth == 0)
				return i + 1;
		}
	}
	return 0;
}
#endif

#if defined(JSCAN_AVX2)
/* skip_container's state between its block loops. */
struct cblk {
	const char *p;
	uint64_t kinds, carry, in_str;
	int depth;
};

/* skip_container's block loop: 1 with st->p after the container's end, -1
 * if it is malformed, 0 with the state where the SSE2 loop goes on (fewer
 * than 64 bytes left, or a backslash outside a string in the block at
 * st->p, which that loop hands on to the byte loop in its turn). */
__attribute__((target("avx2,pclmul"))) static int container_blocks_avx2(struct cblk *st, const char *end)
{
	const __m256i vq = _mm256_set1_epi8('"'), vb = _mm256_set1_epi8('\\');
	const __m256i x20 = _mm256_set1_epi8(0x20), vo = _mm256_set1_epi8('{'), vc = _mm256_set1_epi8('}');
	const char *p = st->p;
	uint64_t kinds = st->kinds, carry = st->carry, in_str = st->in_str;
	int depth = st->depth;

	while (end - p >= 64) {
		__m256i lo = _mm256_loadu_si256((const __m256i *)(const void *)p);
		__m256i hi = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
		uint64_t bs = mask64_avx2(lo, hi, vb), c0 = carry;
		uint64_t str = prefix_xor_clmul(mask64_avx2(lo, hi, vq) & ~escaped64(bs, &c0)) ^ in_str;
		if (bs & ~str)
			break;
		/* brackets: OR-ing 0x20 maps [ to { and ] to } (mask64_brackets) */
		__m256i lo2 = _mm256_or_si256(lo, x20), hi2 = _mm256_or_si256(hi, x20);
		uint32_t ba = (uint32_t)_mm256_movemask_epi8(
			_mm256_or_si256(_mm256_cmpeq_epi8(lo2, vo), _mm256_cmpeq_epi8(lo2, vc)));
		uint32_t bb = (uint32_t)_mm256_movemask_epi8(
			_mm256_or_si256(_mm256_cmpeq_epi8(hi2, vo), _mm256_cmpeq_epi8(hi2, vc)));
		int r = block_brackets(p, ((uint64_t)ba | (uint64_t)bb << 32) & ~str, &kinds, &depth);
		if (r < 0)
			return -1;
		if (r > 0) {
			st->p = p + r;
			return 1;
		}
		carry = c0;
		in_str = (uint64_t)((int64_t)str >> 63);
		p += 64;
	}
	*st = (struct cblk){p, kinds, carry, in_str, depth};
	return 0;
}
#endif

/* p at '{' or '['. */
static const char *skip_container(const char *p, const char *end)
{
	uint64_t kinds = 0; /* bit d set: the container at depth d is an object */
	int depth = 0;

	/* an empty one ([] is common) without a 64-byte block */
	if (end - p >= 2 && p[1] == (p[0] == '{' ? '}' : ']'))
		return p + 2;
#if defined(__SSE2__)
	/* 64 bytes a step: the quotes that are not escaped give, by a running
	 * XOR, the bytes inside strings; only the brackets outside them are
	 * looked at one by one. A backslash outside a string (not JSON) hands
	 * the block to the byte loop below, which reads it as it always did. */
	const __m128i vq = _mm_set1_epi8('"'), vb = _mm_set1_epi8('\\');
	uint64_t carry = 0, in_str = 0; /* the previous block ended in an odd
	                                 * backslash run / inside a string */
#if defined(JSCAN_AVX2)
	if (end - p >= 64 && use_avx2()) {
		struct cblk st = {p, kinds, carry, in_str, depth};
		int r = container_blocks_avx2(&st, end);
		if (r > 0)
			return st.p;
		if (r < 0)
			return NULL;
		p = st.p, kinds = st.kinds, carry = st.carry, in_str = st.in_str, depth = st.depth;
	}
#endif
	while (end - p >= 64) {
		uint64_t bs = any64(p, vb) ? mask64(p, vb) : 0, c0 = carry;
		uint64_t str = prefix_xor(mask64(p, vq) & ~escaped64(bs, &c0)) ^ in_str;
		if (bs & ~str)
			break;
		int r = block_brackets(p, mask64_brackets(p) & ~str, &kinds, &depth);
		if (r != 0)
			return r > 0 ? p + r : NULL;
		carry = c0;
		in_str = (uint64_t)((int64_t)str >> 63);
		p += 64;
	}
	if (in_str) {
		/* the block ended inside a string: finish it (an escaped first
		 * byte is skipped; skip_str starts one byte after its argument) */
		p = skip_str(p - 1 + carry, end);
		if (!p)
			return NULL;
	}
#endif
	while ((p = find_struct(p, end)) < end) {
		char c = *p;
		if (c == '"') {
			p = skip_str(p, end);
			if (!p)
				return NULL;
			continue;
		}
		if (c == '{' || c == '[') {
			if (depth >= LT_JSCAN_DEPTH_MAX)
				return NULL;
			if (c == '{')
				kinds |= (uint64_t)1 << depth;
			else
				kinds &= ~((uint64_t)1 << depth);
			depth++;
		} else if (c == '}' || c == ']') {
			if (depth == 0)
				return NULL;
			depth--;
			bool obj = (kinds >> depth) & 1;
			if (obj != (c == '}'))
				return NULL;
			if (depth == 0)
				return p + 1;
		}
		p++;
	}
	return NULL;
}

int lt_jscan_value(const char *s, size_t n, struct lt_jv *out, size_t *next)
{
	const char *end = s + n;
	const char *p = skip_ws(s, end);
	const char *q = skip_value(p, end);
	if (!q)
		return LT_EPROTO;
	out->p = p;
	out->n = (size_t)(q - p);
	if (next)
		*next = (size_t)(q - s);
	return LT_OK;
}

void lt_jit_begin(struct lt_jit *it, struct lt_jv v)
{
	it->first = true;
	it->bad = false;
	it->pending = NULL;
	it->close = NULL;
	if (v.p && v.n >= 2 && (v.p[0] == '{' || v.p[0] == '[')) {
		it->p = v.p + 1;
		it->end = v.p + v.n;
	} else {
		it->p = it->end = NULL;
	}
}

static bool jit_fail(struct lt_jit *it)
{
	it->bad = true;
	it->p = NULL;
	return false;
}

/* Before the next item: skip the value handed out last, then the comma (or
 * nothing for the first item); false at the closing bracket. */
static inline __attribute__((always_inline)) bool jit_sep(struct lt_jit *it)
{
	if (!it->p)
		return false;
	if (it->pending) {
		const char *q = skip_value(it->pending, it->end);
		it->pending = NULL;
		if (!q)
			return jit_fail(it);
		it->p = q;
	}
	if (!it->first && comma_tight(it->p, it->end)) {
		it->p++;
		return true;
	}
	it->p = skip_ws(it->p, it->end);
	if (it->p >= it->end)
		return jit_fail(it);
	if (*it->p == '}' || *it->p == ']') {
		it->close = it->p + 1;
		it->p = NULL;
		return false;
	}
	if (!it->first) {
		if (*it->p != ',')
			return jit_fail(it);
		it->p = skip_ws(it->p + 1, it->end);
		if (it->p >= it->end)
			return jit_fail(it);
	}
	it->first = false;
	return true;
}

bool lt_jit_member(struct lt_jit *it, struct lt_jv *key, struct lt_jv *val)
{
	if (!jit_sep(it))
		return false;
	if (*it->p != '"')
		return jit_fail(it);
	const char *k = it->p;
	const char *kend = skip_str(k, it->end);
	if (!kend)
		return jit_fail(it);
	const char *q = skip_ws(kend, it->end);
	if (q >= it->end || *q != ':')
		return jit_fail(it);
	q = skip_ws(q + 1, it->end);
	if (q >= it->end)
		return jit_fail(it);
	key->p = k + 1;
	key->n = (size_t)(kend - 1 - (k + 1));
	val->p = q;
	val->n = (size_t)(it->end - q);
	it->p = q;
	it->pending = q;
	return true;
}

bool lt_jit_elem(struct lt_jit *it, struct lt_jv *val)
{
	if (!jit_sep(it))
		return false;
	val->p = it->p;
	val->n = (size_t)(it->end - it->p);
	it->pending = it->p;
	return true;
}

void lt_jit_skip_to(struct lt_jit *it, const char *after)
{
	if (it->p && it->pending && after && after > it->pending && after <= it->end) {
		it->pending = NULL;
		it->p = after;
	}
}

struct lt_jv lt_jscan_get(struct lt_jv obj, const char *key)
{
	struct lt_jv out = {NULL, 0};
	lt_jscan_get_many(obj, &key, 1, &out);
	return out;
}

/* memcmp(key, k, n) == 0 for the short keys of message bodies, without the
 * call (n >= 1 and key[0] == k[0] already). */
static inline bool same_key(const char *key, const char *k, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (key[i] != k[i])
			return false;
	return true;
}

/* The walk of lt_jit_member fused into one loop (the same checks in the same
 * order), with the position in a register instead of the walker struct: the
 * handlers' lookups walk every member of most message bodies. p just after
 * the opening brace (first) or just after a member's value. */
static inline void get_many(const char *p, const char *end, bool first, const char *const *keys, int n,
                            struct lt_jv *out)
{
	size_t len[32];
	int found = 0;

	for (int i = 0; i < n; i++) {
		out[i] = (struct lt_jv){NULL, 0};
		len[i] = strlen(keys[i]);
	}
	while (found < n) {
		/* jit_sep: the separator before the next member */
		if (!first && comma_tight(p, end)) {
			p++;
		} else {
			p = skip_ws(p, end);
			if (p >= end || *p == '}' || *p == ']')
				return;
			if (!first) {
				if (*p != ',')
					return;
				p = skip_ws(p + 1, end);
				if (p >= end)
					return;
			}
		}
		first = false;
		/* lt_jit_member: the key, the colon, the value's start */
		if (*p != '"')
			return;
		const char *k = p + 1, *kend = skip_str(p, end);
		if (!kend)
			return;
		const char *q = skip_ws(kend, end);
		if (q >= end || *q != ':')
			return;
		q = skip_ws(q + 1, end);
		if (q >= end)
			return;
		size_t kn = (size_t)(kend - 1 - k);
		for (int i = 0; i < n; i++) {
			if (len[i] == kn && !out[i].p && (kn == 0 || keys[i][0] == k[0]) && same_key(keys[i], k, kn)) {
				out[i] = (struct lt_jv){q, (size_t)(end - q)};
				found++;
				break;
			}
		}
		if (found >= n)
			return;
		p = skip_value(q, end);
		if (!p)
			return;
	}
}

void lt_jscan_get_many(struct lt_jv obj, const char *const *keys, int n, struct lt_jv *out)
{
	if (n > 32)
		n = 32;
	if (!lt_jv_is(obj, '{') || obj.n < 2) {
		for (int i = 0; i < n; i++)
			out[i] = (struct lt_jv){NULL, 0};
		return;
	}
	get_many(obj.p + 1, obj.p + obj.n, true, keys, n, out);
}

void lt_jscan_get_many_after(const char *p, const char *end, const char *const *keys, int n, struct lt_jv *out)
{
	if (n > 32)
		n = 32;
	if (!p || p > end) {
		for (int i = 0; i < n; i++)
			out[i] = (struct lt_jv){NULL, 0};
		return;
	}
	get_many(p, end, false, keys, n, out);
}

bool lt_jscan_first_member(struct lt_jv obj, const char *key, struct lt_jv *val, const char **after)
{
	if (!lt_jv_is(obj, '{') || obj.n < 2)
		return false;
	const char *end = obj.p + obj.n, *p = skip_ws(obj.p + 1, end);
	/* lt_jit_member's checks for the first member, as get_many makes them */
	if (p >= end || *p != '"')
		return false;
	const char *k = p + 1, *kend = skip_str(p, end);
	if (!kend)
		return false;
	const char *q = skip_ws(kend, end);
	if (q >= end || *q != ':')
		return false;
	q = skip_ws(q + 1, end);
	if (q >= end)
		return false;
	size_t kn = (size_t)(kend - 1 - k);
	if (kn != strlen(key) || memcmp(key, k, kn) != 0)
		return false;
	const char *a = skip_value(q, end);
	if (!a)
		return false;
	*val = (struct lt_jv){q, (size_t)(end - q)};
	*after = a;
	return true;
}

struct lt_jv lt_jscan_at(struct lt_jv arr, int i)
{
	struct lt_jv out = {NULL, 0};
	lt_jscan_at_many(arr, &i, 1, &out);
	return out;
}

/* The walk of lt_jit_elem fused into one loop, as lt_jscan_get_many: p at
 * the element at index at (at 0: just after the opening bracket; else just
 * after the element before it). */
static inline void at_many(const char *p, const char *end, int at, const int *idx, int n, struct lt_jv *out)
{
	int k = 0;

	for (int i = at; k < n; i++) {
		/* jit_sep: the separator before the next element */
		if (i > 0 && comma_tight(p, end)) {
			p++;
		} else {
			p = skip_ws(p, end);
			if (p >= end || *p == '}' || *p == ']')
				return;
			if (i > 0) {
				if (*p != ',')
					return;
				p = skip_ws(p + 1, end);
				if (p >= end)
					return;
			}
		}
		if (i >= idx[k]) {
			while (k < n && idx[k] < i)
				k++;
			if (k < n && idx[k] == i)
				out[k++] = (struct lt_jv){p, (size_t)(end - p)};
			if (k >= n)
				return;
		}
		p = skip_value(p, end);
		if (!p)
			return;
	}
}

void lt_jscan_at_many(struct lt_jv arr, const int *idx, int n, struct lt_jv *out)
{
	for (int i = 0; i < n; i++)
		out[i] = (struct lt_jv){NULL, 0};
	if (!lt_jv_is(arr, '[') || arr.n < 2)
		return;
	at_many(arr.p + 1, arr.p + arr.n, 0, idx, n, out);
}

void lt_jscan_at_many_after(const char *p, const char *end, int at, const int *idx, int n, struct lt_jv *out)
{
	for (int i = 0; i < n; i++)
		out[i] = (struct lt_jv){NULL, 0};
	if (!p || p > end || at < 1)
		return;
	at_many(p, end, at, idx, n, out);
}

/* The rest of a walk with lt_jit_elem to the closing bracket, with its
 * checks: the separator before each element, each element skipped. */
const char *lt_jscan_array_end(const char *p, const char *end)
{
	if (!p || p > end)
		return NULL;
	for (;;) {
		if (comma_tight(p, end)) {
			p++;
		} else {
			p = skip_ws(p, end);
			if (p >= end)
				return NULL;
			if (*p == '}' || *p == ']')
				return p + 1;
			if (*p != ',')
				return NULL;
			p = skip_ws(p + 1, end);
			if (p >= end)
				return NULL;
		}
		p = skip_value(p, end);
		if (!p)
			return NULL;
	}
}

int64_t lt_jscan_int(struct lt_jv v, int64_t def)
{
	bool neg = false, quoted = false;
	uint64_t x = 0;

	if (!v.p || !v.n)
		return def; /* before any pointer arithmetic: NULL + 0 is UB too */
	const char *p = v.p, *end = v.p + v.n, *start;
	if (*p == '"') {
		quoted = true;
		p++;
	}
	start = p;
	if (p < end && *p == '-') {
		neg = true;
		p++;
	}
	if (p >= end || *p < '0' || *p > '9')
		return def;
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		if (x > (UINT64_MAX - 9) / 10)
			return def;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) {
		/* 1.5e9, 12.0 and the like: rare, let strtod do it */
		char tmp[40];
		const char *q = p;
		while (q < end && is_num_char(*q))
			q++;
		size_t n = (size_t)(q - start);
		if (n >= sizeof(tmp) || (quoted && (q >= end || *q != '"')))
			return def;
		memcpy(tmp, start, n);
		tmp[n] = '\0';
		char *stop;
		double d = strtod(tmp, &stop);
		if (*stop || d != d || d > 9.2e18 || d < -9.2e18)
			return def;
		return (int64_t)d;
	}
	if (quoted && (p >= end || *p != '"'))
		return def;
	if (x > (uint64_t)INT64_MAX)
		return def;
	return neg ? -(int64_t)x : (int64_t)x;
}

static int hex4(const char *p)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

static size_t put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

bool lt_jscan_str(struct lt_jv v, struct lt_buf *scratch, struct lt_str *out)
{
	if (!lt_jv_is(v, '"') || v.n < 2)
		return false;
	const char *p = v.p + 1, *end = v.p + v.n;
	const char *q = find_quote_or_bs(p, end);
	if (q >= end)
		return false;
	if (*q == '"') {
		if ((size_t)(q - p) > UINT32_MAX)
			return false;
		*out = (struct lt_str){p, (uint32_t)(q - p)};
		return true;
	}
	/* unescape into scratch: the result is never longer than the rest of
	 * the input, which the caller reserved */
	size_t room = scratch->err ? 0 : scratch->cap - scratch->len;
	char *o0 = (char *)scratch->data + scratch->len, *o = o0;
	char *olim = o0 + (room ? room - 1 : 0);
	for (;;) {
		q = find_quote_or_bs(p, end);
		if (q >= end)
			return false;
		if ((size_t)(olim - o) < (size_t)(q - p) + 4)
			return false;
		memcpy(o, p, (size_t)(q - p));
		o += q - p;
		p = q;
		if (*p == '"')
			break;
		if (end - p < 2)
			return false;
		char e = p[1];
		p += 2;
		switch (e) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '/': *o++ = '/'; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u': {
			if (end - p < 4)
				return false;
			int cp = hex4(p);
			if (cp < 0)
				return false;
			p += 4;
			uint32_t u = (uint32_t)cp;
			if (u >= 0xD800 && u <= 0xDBFF && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
				int lo = hex4(p + 2);
				if (lo >= 0xDC00 && lo <= 0xDFFF) {
					u = 0x10000 + ((u - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
					p += 6;
				}
			}
			if (u >= 0xD800 && u <= 0xDFFF)
				u = 0xFFFD; /* a lone surrogate */
			o += put_utf8(o, u);
			break;
		}
		default:
			return false;
		}
	}
	*out = (struct lt_str){o0, (uint32_t)(o - o0)};
	scratch->len += (size_t)(o - o0);
	scratch->data[scratch->len] = 0;
	return true;
}

bool lt_jscan_id(struct lt_jv v, struct lt_buf *scratch, struct lt_str *out)
{
	if (lt_jv_is(v, '"'))
		return lt_jscan_str(v, scratch, out) && out->len > 0;
	if (!v.p || v.n == 0)
		return false;
	size_t n = 0;
	while (n < v.n && n <= 40 && v.p[n] >= '0' && v.p[n] <= '9')
		n++;
	if (n == 0 || n > 40 || (n < v.n && is_num_char(v.p[n])))
		return false;
	*out = (struct lt_str){v.p, (uint32_t)n};
	return true;
}
