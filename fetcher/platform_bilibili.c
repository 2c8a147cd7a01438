/* SPDX-License-Identifier: MIT */
/*
 * platform_bilibili: the Bilibili live danmaku platform (ops table
 * lt_platform_bilibili). Facts from ../shared/brief/protocols/bilibili.md.
 *
 * Bootstrap (pure: the driver does the HTTP): room resolution with get_info,
 * buvid3 from finger/spi (or the login cookie, or a Set-Cookie), WBI keys from
 * /x/web-interface/nav (cached LT_BILI_WBI_TTL_MS, dropped on -352), then a
 * WBI-signed getDanmuInfo for the token and the host list. Later attempts
 * rotate through the host list and fetch a new token every
 * LT_BILI_TOKEN_EVERY failures or after a refused auth.
 *
 * Decoding: a frame is one or more packets (16-byte big-endian header); op 5
 * bodies are JSON (ver 0/1) or zlib / brotli streams of further packets
 * (ver 2 / 3), at most LT_BILI_DEPTH_MAX levels deep and at most
 * LT_BILI_INFLATE_MAX bytes each. op 3 is the heartbeat reply: exactly 4
 * bytes of popularity count even though the server echoes our heartbeat body
 * after them (the 20-byte pack_len quirk). op 8 is the auth reply. Every
 * length is checked before use; a malformed packet is counted and skipped.
 *
 * Mapping: command names are matched on the part before the first ':'
 * ("DANMU_MSG:4:0:2:2:2:0" is DANMU_MSG). Platform ids become msg_id where
 * the platform has one (DANMU_MSG id_str, gift tid, super chat id, LIVE
 * live_key, a top-level msg_id); everything else gets lt_msg_synth_id over
 * the message with its content temporarily replaced by the command and the
 * fields that identify it, so ids are stable across replays and distinct
 * between kinds.
 *
 * Speed: message bodies are read in place with fetcher/jscan.c (no tree,
 * no allocation; DANMU_MSG's info array and its JSON-in-a-string extra are
 * walked once), protobuf-c unpacks into an arena, brotli's ring buffers are
 * kept between packets and a batch is decoded where brotli left it (no copy).
 * cJSON parses what is cold: HTTP bodies, the auth reply, the data of
 * unmapped commands when it is not already in cJSON's printed form.
 * tests/bench/bench_replay.sh measures it.
 */
#include <brotli/decode.h>
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/mem.h"
#include "fetcher/bilibili.h"
#include "fetcher/bilibili.pb-c.h"
#include "fetcher/inflate.h"
#include "fetcher/jscan.h"
#include "fetcher/md5.h"
#include "fetcher/platform.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define DEFAULT_API "https://api.live.bilibili.com"
#define DEFAULT_AUX "https://api.bilibili.com"
#define DEFAULT_WS "wss://broadcastlv.chat.bilibili.com/sub"
#define DEFAULT_UA                                                                                       \
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 " \
	"Safari/537.36"
#define HEARTBEAT_BODY "[object Object]"
#define HTTP_BODY_MAX (4u << 20)

enum step {
	STEP_ROOM = 0,
	STEP_BUVID,
	STEP_NAV,
	STEP_DANMU,
	STEP_DONE,
};

struct host {
	char name[128];
	int wss_port;
};

/* Blocks the brotli decoder asked for, kept for the next packet: a decoder
 * per packet would otherwise map and fault in a fresh ring buffer each time. */
#define BR_BLOCKS 8
struct br_cache {
	struct {
		void *p;
		size_t n;
		bool used;
	} b[BR_BLOCKS];
};

struct lt_platform_conn {
	/* settings (owned copies) */
	char *room_cfg, *api_base, *aux_base, *ws_url, *cookie, *ua;
	int64_t uid;
	bool skip_bootstrap;
	const struct lt_clock *clock;

	/* what the bootstrap learned */
	char room[32];       /* long room id once resolved, else room_cfg (cut) */
	bool resolved;
	char buvid[128];
	char img_key[33], sub_key[33];
	int64_t wbi_expire_ms; /* 0 = no keys */
	char *token;
	struct host hosts[LT_BILI_HOSTS_MAX];
	int n_hosts, host_idx;
	enum step step;
	bool want_token;

	/* scratch owned by c, handed out until the next call */
	struct lt_buf url, hdrs, target, out;
	struct lt_buf inflated[LT_BILI_DEPTH_MAX];
	struct lt_buf extra, key, b64, scratch;
	bool extra_normal; /* extra holds keys, flat strings and integers only */
	struct lt_inflate zs; /* protocol version 2 (zlib) */
	struct br_cache br;
	struct lt_arena pb_arena;   /* protobuf-c's allocations for one message */
	ProtobufCAllocator pb_alloc;

	struct lt_platform_stats st;
};

/* ------------------------------------------------------------------ */
/* Packets */

void lt_bili_pack(struct lt_buf *out, uint16_t ver, uint32_t op, uint32_t seq, const void *body, size_t n)
{
	if (n > UINT32_MAX - LT_BILI_HDR_LEN) {
		if (!out->err)
			out->err = LT_ETOOBIG;
		return;
	}
	lt_buf_u32be(out, (uint32_t)(LT_BILI_HDR_LEN + n));
	lt_buf_u16be(out, LT_BILI_HDR_LEN);
	lt_buf_u16be(out, ver);
	lt_buf_u32be(out, op);
	lt_buf_u32be(out, seq);
	lt_buf_append(out, body, n);
}

/* ------------------------------------------------------------------ */
/* WBI signing */

static const uint8_t mixin_tab[64] = {
	46, 47, 18, 2,  53, 8,  23, 32, 15, 50, 10, 31, 58, 3,  45, 35, 27, 43, 5,  49, 33, 9,
	42, 19, 29, 28, 14, 39, 12, 38, 41, 13, 37, 48, 7,  16, 24, 55, 40, 61, 26, 17, 0,  1,
	60, 51, 30, 4,  22, 25, 54, 21, 56, 59, 6,  63, 57, 62, 11, 36, 20, 34, 44, 52,
};

int lt_bili_wbi_mixin(const char *img_key, const char *sub_key, char out[33])
{
	char raw[64];

	if (!img_key || !sub_key || strlen(img_key) != 32 || strlen(sub_key) != 32)
		return LT_EINVAL;
	memcpy(raw, img_key, 32);
	memcpy(raw + 32, sub_key, 32);
	for (int i = 0; i < 32; i++)
		out[i] = raw[mixin_tab[i]];
	out[32] = '\0';
	return LT_OK;
}

struct kv {
	const char *k, *v;
	size_t kn, vn;
};

static int kv_cmp(const void *a, const void *b)
{
	const struct kv *x = a, *y = b;
	size_t n = x->kn < y->kn ? x->kn : y->kn;
	int r = memcmp(x->k, y->k, n);
	if (r)
		return r;
	return (x->kn > y->kn) - (x->kn < y->kn);
}

/* encodeURIComponent-style: unreserved bytes kept, the rest %XX upper case;
 * the characters !'()* are dropped from values before signing. */
static void url_encode(struct lt_buf *out, const char *s, size_t n, bool strip)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (strip && (ch == '!' || ch == '\'' || ch == '(' || ch == ')' || ch == '*'))
			continue;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		    ch == '_' || ch == '.' || ch == '~') {
			lt_buf_putc(out, (char)ch);
		} else {
			lt_buf_putc(out, '%');
			lt_buf_putc(out, hex[ch >> 4]);
			lt_buf_putc(out, hex[ch & 15]);
		}
	}
}

int lt_bili_wbi_sign(struct lt_buf *out, const char *query, const char *mixin, int64_t wts)
{
	struct kv kv[32];
	int n = 0;
	char wts_s[24];
	struct lt_buf q = LT_BUF_INIT;
	char md[33];
	int rc = LT_OK;

	snprintf(wts_s, sizeof(wts_s), "%lld", (long long)wts);
	for (const char *p = query; p && *p && n < 31;) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		if (len) {
			kv[n].k = p;
			kv[n].kn = eq ? (size_t)(eq - p) : len;
			kv[n].v = eq ? eq + 1 : "";
			kv[n].vn = eq ? len - kv[n].kn - 1 : 0;
			n++;
		}
		p += len + (amp ? 1 : 0);
	}
	kv[n++] = (struct kv){"wts", wts_s, 3, strlen(wts_s)};
	qsort(kv, (size_t)n, sizeof(kv[0]), kv_cmp);
	lt_buf_init(&q, 0);
	for (int i = 0; i < n; i++) {
		if (i)
			lt_buf_putc(&q, '&');
		url_encode(&q, kv[i].k, kv[i].kn, false);
		lt_buf_putc(&q, '=');
		url_encode(&q, kv[i].v, kv[i].vn, true);
	}
	size_t qlen = q.len;
	lt_buf_puts(&q, mixin);
	if ((rc = lt_buf_err(&q)) != LT_OK)
		goto out;
	lt_md5_hex(q.data, q.len, md);
	lt_buf_append(out, q.data, qlen);
	lt_buf_puts(out, "&w_rid=");
	lt_buf_puts(out, md);
	rc = lt_buf_err(out);
out:
	lt_buf_free(&q);
	return rc;
}

/* ------------------------------------------------------------------ */
/* JSON helpers (cJSON, for the cold paths) */

static const cJSON *cj_get(const cJSON *o, const char *k)
{
	return o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

/* A number, or a string holding one; def otherwise. */
static int64_t cj_int(const cJSON *v, int64_t def)
{
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;
		if (d != d || d > 9.2e18 || d < -9.2e18)
			return def;
		return (int64_t)d;
	}
	if (cJSON_IsString(v) && v->valuestring[0]) {
		char *end;
		long long x = strtoll(v->valuestring, &end, 10);
		return *end ? def : (int64_t)x;
	}
	return def;
}

static struct lt_str cj_str(const cJSON *v)
{
	if (cJSON_IsString(v))
		return lt_str_c(v->valuestring);
	return LT_STR_NULL;
}

/* ------------------------------------------------------------------ */
/* Emitting */

struct em {
	struct lt_platform_conn *c;
	const struct lt_platform_io *io;
	int64_t recv_ms;
	unsigned *ev;
	const char *after_cmd; /* just after the body's first member, "cmd" (or NULL) */
};

/* Hot-path JSON access (jscan): views into the message body, strings with
 * escapes unescaped into c->scratch (reserved per message). */
static struct lt_jv jget(struct lt_jv o, const char *k)
{
	return lt_jscan_get(o, k);
}

/* root[k] for a handler (k is never "cmd"): the walk goes on from just after
 * cmd when on_message found it first, as a walk from the start would. */
static struct lt_jv jroot(struct em *e, struct lt_jv root, const char *k)
{
	struct lt_jv v;
	if (!e->after_cmd)
		return lt_jscan_get(root, k);
	lt_jscan_get_many_after(e->after_cmd, root.p + root.n, &k, 1, &v);
	return v;
}

static int64_t jint(struct lt_jv v, int64_t def)
{
	return lt_jscan_int(v, def);
}

static struct lt_str jstr(struct em *e, struct lt_jv v)
{
	struct lt_str s = LT_STR_NULL;
	if (!lt_jscan_str(v, &e->c->scratch, &s))
		return LT_STR_NULL;
	return s;
}

static struct lt_str jid(struct em *e, struct lt_jv v)
{
	struct lt_str s = LT_STR_NULL;
	if (!lt_jscan_id(v, &e->c->scratch, &s))
		return LT_STR_NULL;
	return s;
}

/* v in decimal, written at the end of buf[24]; a view of it. */
static const char digits2[201] =
	"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
	"8081828384858687888990919293949596979899";

/* (two digits per division: ids, uids and ns times are long) */
static struct lt_str i64_str(int64_t v, char buf[24])
{
	char *p = buf + 24;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	while (u >= 100) {
		const char *d = digits2 + 2 * (u % 100);
		u /= 100;
		*--p = d[1];
		*--p = d[0];
	}
	if (u >= 10) {
		*--p = digits2[2 * u + 1];
		*--p = digits2[2 * u];
	} else {
		*--p = (char)('0' + u);
	}
	if (v < 0)
		*--p = '-';
	return (struct lt_str){p, (uint32_t)(buf + 24 - p)};
}

static void key_int(struct lt_buf *k, int64_t v)
{
	char b[24];
	struct lt_str s = i64_str(v, b);
	lt_buf_append(k, "\x1f", 1);
	lt_buf_append(k, s.p, s.len);
}

static void uid_str(int64_t uid, char buf[24], struct lt_msg *m)
{
	if (uid > 0) {
		m->user_id = i64_str(uid, buf);
	} else {
		m->flags |= LT_MSGF_ANONYMOUS;
		m->user_id = LT_STR_NULL;
	}
}

/* Platform seconds to ms. Seconds past year 5000 (or negative) are not a
 * time: 0 tells the caller to keep the receive time. Never overflows. */
static int64_t s_to_ms(int64_t s)
{
	return s > 0 && s < 100000000000LL ? s * 1000 : 0;
}

/* a * b for amounts from the wire, saturated instead of overflowing. */
static int64_t mul_sat(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_mul_overflow(a, b, &r))
		return (a < 0) != (b < 0) ? INT64_MIN : INT64_MAX;
	return r;
}

static void msg_init(struct em *e, struct lt_msg *m, int type)
{
	memset(m, 0, sizeof(*m));
	m->platform = LT_PLATFORM_BILIBILI;
	m->type = (uint8_t)type;
	m->room = lt_str_c(e->c->room);
	m->ts = e->recv_ms;
}

/* Give m a synthetic id from its fields plus the text in c->key (command and
 * identifying fields), without changing its visible content. */
static void synth(struct em *e, struct lt_msg *m, char out[17])
{
	struct lt_str content = m->content;
	struct lt_buf *k = &e->c->key;

	lt_buf_append(k, "\x1f", 1);
	lt_buf_append(k, content.p, content.len);
	m->content = (struct lt_str){(const char *)k->data, (uint32_t)k->len};
	if (lt_buf_err(k))
		m->content = content;
	lt_msg_synth_id(m, out);
	m->content = content;
	m->msg_id = (struct lt_str){out, 16};
}

static void emit(struct em *e, struct lt_msg *m)
{
	if (e->c->extra.len && !lt_buf_err(&e->c->extra)) {
		m->extra = (struct lt_str){(const char *)e->c->extra.data, (uint32_t)e->c->extra.len};
		m->extra_normal = e->c->extra_normal;
	}
	lt_msg_clamp(m);
	if (!m->msg_id.len) {
		/* an over-long platform id of stray UTF-8 continuation bytes
		 * clamps to nothing: no id, no message */
		e->c->st.bad_messages++;
		return;
	}
	e->c->st.messages++;
	e->io->emit(e->io->ud, m);
}

/* extra is built in c->extra from a key, strings and integers at a time;
 * c->extra_normal says whether it is still in the encoder's normalized flat
 * form (lt_msg.extra_normal), so that the encoder copies it as it is
 * instead of checking every byte of it again. */
static struct lt_buf *extra_begin(struct em *e)
{
	lt_buf_reset(&e->c->extra);
	e->c->extra_normal = true;
	return &e->c->extra;
}

/* k is a plain ASCII literal. lt_json_str writes valid UTF-8 with the
 * characters that need one escaped; a value without a backslash is flat. */
static void extra_str(struct em *e, const char *k, struct lt_str v)
{
	struct lt_buf *x = &e->c->extra;
	lt_buf_putc(x, x->len ? ',' : '{');
	lt_buf_putc(x, '"');
	lt_buf_puts(x, k);
	lt_buf_puts(x, "\":");
	size_t at = x->len;
	lt_json_str(x, v.p ? v.p : "", v.len);
	if (!lt_buf_err(x) && memchr(x->data + at, '\\', x->len - at))
		e->c->extra_normal = false;
}

static void extra_int(struct lt_buf *x, const char *k, int64_t v)
{
	char tmp[24];
	struct lt_str s = i64_str(v, tmp);
	lt_buf_putc(x, x->len ? ',' : '{');
	lt_buf_putc(x, '"');
	lt_buf_puts(x, k);
	lt_buf_puts(x, "\":");
	lt_buf_append(x, s.p, s.len);
}

static void extra_end(struct lt_buf *x)
{
	if (x->len)
		lt_buf_putc(x, '}');
}

/* ------------------------------------------------------------------ */
/* Command handlers: each returns LT_OK or LT_EPROTO (counted as a bad
 * message). root is the body's top-level object, cmd the full command. */

/* The id_str inside DANMU_MSG's info[0][15].extra, a JSON object encoded as
 * a JSON string. Read from the escaped text as it stands, without decoding
 * the string and parsing it again: a key of the inner object appears there
 * as \"id_str\":\" right after the inner object's '{' or ',' (the same
 * text inside an inner string value would carry more backslashes, so it
 * cannot match). The id is hex, so it has no escapes; anything else is no id. */
static const char id_key[] = "\\\"id_str\\\":\\\"";
#define ID_KEY_LEN (sizeof(id_key) - 1)

#if defined(LT_JSCAN_AVX2)
#include <immintrin.h>

/* find_id_key's loop with AVX2 (when jscan uses its own): 32 starts a step
 * tested for the key's "id_" (bytes 2 to 4), which no other key of extra
 * has there (is_audited, icon); memcmp confirms. The first key, or NULL
 * with *pp where the SSE2 loops go on (fewer than 32 starts left). */
__attribute__((target("avx2"))) static const char *find_id_key_avx2(const char **pp, const char *last)
{
	const __m256i vi = _mm256_set1_epi8('i'), vd = _mm256_set1_epi8('d'), vu = _mm256_set1_epi8('_');
	const char *p = *pp;
	while (last - p >= 32) {
		/* last + ID_KEY_LEN is the end: the loads stay before it */
		__m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(p + 2));
		__m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(p + 3));
		__m256i c = _mm256_loadu_si256((const __m256i *)(const void *)(p + 4));
		__m256i hit = _mm256_and_si256(_mm256_and_si256(_mm256_cmpeq_epi8(a, vi), _mm256_cmpeq_epi8(b, vd)),
		                               _mm256_cmpeq_epi8(c, vu));
		for (uint32_t m = (uint32_t)_mm256_movemask_epi8(hit); m; m &= m - 1) {
			int i = __builtin_ctz(m);
			if (!memcmp(p + i, id_key, ID_KEY_LEN))
				return p + i;
		}
		p += 32;
	}
	*pp = p;
	return NULL;
}

/* The first byte of [p, lim) that is not an id_char, 32 bytes a step while
 * there are 32; *pp where the byte loop goes on otherwise. */
__attribute__((target("avx2"))) static const char *id_span_avx2(const char **pp, const char *lim)
{
	const __m256i x20 = _mm256_set1_epi8(0x20), a0 = _mm256_set1_epi8('a' - 1), z1 = _mm256_set1_epi8('z' + 1);
	const __m256i d0 = _mm256_set1_epi8('0' - 1), d1 = _mm256_set1_epi8('9' + 1);
	const __m256i us = _mm256_set1_epi8('_'), da = _mm256_set1_epi8('-');
	const char *p = *pp;
	while (lim - p >= 32) {
		__m256i c = _mm256_loadu_si256((const __m256i *)(const void *)p);
		/* bytes from 0x80 are negative for the signed compares: no class */
		__m256i l = _mm256_or_si256(c, x20); /* A-Z to a-z */
		__m256i alpha = _mm256_and_si256(_mm256_cmpgt_epi8(l, a0), _mm256_cmpgt_epi8(z1, l));
		__m256i digit = _mm256_and_si256(_mm256_cmpgt_epi8(c, d0), _mm256_cmpgt_epi8(d1, c));
		__m256i ok = _mm256_or_si256(_mm256_or_si256(alpha, digit),
		                             _mm256_or_si256(_mm256_cmpeq_epi8(c, us), _mm256_cmpeq_epi8(c, da)));
		uint32_t bad = ~(uint32_t)_mm256_movemask_epi8(ok);
		if (bad)
			return p + __builtin_ctz(bad);
		p += 32;
	}
	*pp = p;
	return NULL;
}
#endif

/* memmem(p, end - p, id_key): SSE2 tests 16 starts a step for the key's 'i'
 * and '_' (bytes 2 and 4), memcmp confirms the few candidates. glibc's
 * memmem was 3% of a Bilibili replay. */
static const char *find_id_key(const char *p, const char *end)
{
	if (end - p < (ptrdiff_t)ID_KEY_LEN)
		return NULL;
	const char *last = end - ID_KEY_LEN; /* the last possible start */
#if defined(LT_JSCAN_AVX2)
	if (last - p >= 32 && lt_jscan_avx2()) {
		const char *r = find_id_key_avx2(&p, last);
		if (r)
			return r;
	}
#endif
#if defined(__SSE2__)
	const __m128i vi = _mm_set1_epi8('i'), vu = _mm_set1_epi8('_');
	/* 32 starts a step while there is room, their candidates tested
	 * together: the key is rare, a kilobyte of extra has one */
	while (last - p >= 32) {
		__m128i a0 = _mm_loadu_si128((const __m128i *)(const void *)(p + 2));
		__m128i b0 = _mm_loadu_si128((const __m128i *)(const void *)(p + 4));
		__m128i a1 = _mm_loadu_si128((const __m128i *)(const void *)(p + 18));
		__m128i b1 = _mm_loadu_si128((const __m128i *)(const void *)(p + 20));
		__m128i c0 = _mm_and_si128(_mm_cmpeq_epi8(a0, vi), _mm_cmpeq_epi8(b0, vu));
		__m128i c1 = _mm_and_si128(_mm_cmpeq_epi8(a1, vi), _mm_cmpeq_epi8(b1, vu));
		if (_mm_movemask_epi8(_mm_or_si128(c0, c1)))
			break; /* the 16-byte loop below finds it in order */
		p += 32;
	}
	while (last - p >= 16) {
		__m128i a = _mm_loadu_si128((const __m128i *)(const void *)(p + 2));
		__m128i b = _mm_loadu_si128((const __m128i *)(const void *)(p + 4));
		unsigned m = (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, vi), _mm_cmpeq_epi8(b, vu)));
		for (; m; m &= m - 1) {
			int i = __builtin_ctz(m);
			if (!memcmp(p + i, id_key, ID_KEY_LEN))
				return p + i;
		}
		p += 16;
	}
#endif
	for (; p <= last; p++)
		if (p[2] == 'i' && !memcmp(p, id_key, ID_KEY_LEN))
			return p;
	return NULL;
}

/* The characters of an id_str: [0-9A-Za-z_-]. */
static const uint8_t id_char[256] = {
	['-'] = 1, ['_'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1,
	['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
	['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
	['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
	['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static struct lt_str danmu_id_str(struct lt_jv s)
{
	const char *p = s.p + 1, *end = s.p + s.n - 1;
	while (p < end) {
		const char *hit = find_id_key(p, end);
		if (!hit)
			break;
		p = hit + ID_KEY_LEN;
		if (hit == s.p + 1 || (hit[-1] != '{' && hit[-1] != ','))
			continue;
		const char *q = p, *stop = NULL;
		const char *qlim = end - p > LT_MSG_ID_MAX + 1 ? p + LT_MSG_ID_MAX + 1 : end;
#if defined(LT_JSCAN_AVX2)
		if (qlim - q >= 32 && lt_jscan_avx2())
			stop = id_span_avx2(&q, qlim);
#endif
		if (stop)
			q = stop;
		else
			while (q < qlim && id_char[(unsigned char)*q])
				q++;
		if (q > p && end - q >= 2 && q[0] == '\\' && q[1] == '"')
			return (struct lt_str){p, (uint32_t)(q - p)};
		break;
	}
	return LT_STR_NULL;
}

/* DANMU_MSG's info[0]: ts ([4]), rnd ([5]) and from mode_info ([15]) the
 * id_str and the user object, in one walk that never skips the same text
 * twice. Returns where info[0] ends (NULL if it is malformed). */
struct danmu0 {
	struct lt_jv ts, rnd, user;
	struct lt_str id;
};

/* mode_info (info[0][15], an object): the id_str in extra and the user
 * object. Returns where it ends, NULL if it is malformed. */
static const char *danmu_mode_info(struct lt_jv v, struct danmu0 *d)
{
	struct lt_jit im;
	struct lt_jv k, mv;

	lt_jit_begin(&im, v);
	while (lt_jit_member(&im, &k, &mv)) {
		struct lt_jv s;
		if (k.n == 5 && !memcmp(k.p, "extra", 5) && lt_jv_is(mv, '"') &&
		    lt_jscan_value(mv.p, mv.n, &s, NULL) == LT_OK) {
			d->id = danmu_id_str(s);
			lt_jit_skip_to(&im, s.p + s.n);
		} else if (k.n == 4 && !memcmp(k.p, "user", 4)) {
			d->user = mv;
		}
	}
	return im.bad ? NULL : im.close;
}

static const char *danmu_info0(struct lt_jv i0, struct danmu0 *d)
{
	struct lt_jit it;
	struct lt_jv v;

	lt_jit_begin(&it, i0);
	for (int i = 0; lt_jit_elem(&it, &v); i++) {
		if (i == 4)
			d->ts = v;
		else if (i == 5)
			d->rnd = v;
		else if (i == 15 && lt_jv_is(v, '{')) {
			const char *close = danmu_mode_info(v, d);
			if (!close)
				return NULL;
			lt_jit_skip_to(&it, close);
		}
	}
	return it.bad ? NULL : it.close;
}

/* DANMU_MSG's info as on_danmu's element walks find it, for the shape it
 * always has: info[0] an array with an object at [15]. The fused walkers
 * take the elements in one loop each instead of a call per element; false
 * (anything else, anything malformed) hands the message to the slow walks,
 * which decide as they always did. top: info[0], [1], [2], [7]. */
static bool danmu_fast(struct lt_jv info, struct lt_jv top[4], struct danmu0 *d)
{
	struct lt_jv i0, w[3];

	lt_jscan_at_many(info, (const int[]){0}, 1, &i0);
	if (!lt_jv_is(i0, '['))
		return false;
	lt_jscan_at_many(i0, (const int[]){4, 5, 15}, 3, w);
	if (!lt_jv_is(w[2], '{'))
		return false;
	const char *end = lt_jscan_array_end(danmu_mode_info(w[2], d), i0.p + i0.n);
	if (!end)
		return false;
	d->ts = w[0];
	d->rnd = w[1];
	top[0] = i0;
	lt_jscan_at_many_after(end, info.p + info.n, 1, (const int[]){1, 2, 7}, 3, top + 1);
	return true;
}

/* Whether s holds "***" (a masked name): memmem's set-up cost more than
 * this loop over a name of a few bytes. */
static bool has_stars(struct lt_str s)
{
	for (uint32_t i = 0; i + 3 <= s.len; i++)
		if (s.p[i] == '*' && s.p[i + 1] == '*' && s.p[i + 2] == '*')
			return true;
	return false;
}

static int on_danmu(struct em *e, struct lt_jv root, struct lt_str cmd)
{
	struct lt_jv top[4] = {{NULL, 0}, {NULL, 0}, {NULL, 0}, {NULL, 0}}, user[2], v;
	struct danmu0 d0 = {{NULL, 0}, {NULL, 0}, {NULL, 0}, LT_STR_NULL};
	struct lt_jit it;
	struct lt_msg m;
	char ub[24], idb[17];

	(void)cmd;
	struct lt_jv info = jroot(e, root, "info");
	if (!danmu_fast(info, top, &d0)) {
		d0 = (struct danmu0){{NULL, 0}, {NULL, 0}, {NULL, 0}, LT_STR_NULL};
		for (int i = 0; i < 4; i++)
			top[i] = (struct lt_jv){NULL, 0};
		lt_jit_begin(&it, info);
		for (int i = 0; i <= 7 && lt_jit_elem(&it, &v); i++) {
			if (i == 0) {
				top[0] = v;
				const char *end = danmu_info0(v, &d0);
				if (!end)
					return LT_EPROTO;
				lt_jit_skip_to(&it, end);
			} else if (i == 1 || i == 2) {
				top[i] = v;
			} else if (i == 7) {
				top[3] = v;
			}
		}
	}
	if (!lt_jv_is(top[0], '[') || !lt_jv_is(top[1], '"'))
		return LT_EPROTO;
	lt_jscan_at_many(top[2], (const int[]){0, 1}, 2, user);
	msg_init(e, &m, LT_MSG_CHAT);
	m.content = jstr(e, top[1]);
	int64_t ts = jint(d0.ts, 0);
	if (ts > 0)
		m.ts = ts;
	int64_t uid = jint(user[0], 0);
	m.user_name = jstr(e, user[1]);
	if (uid <= 0)
		uid = jint(jget(d0.user, "uid"), 0);
	if (!m.user_name.len)
		m.user_name = jstr(e, jget(jget(d0.user, "base"), "name"));
	uid_str(uid, ub, &m);
	if (uid <= 0 || has_stars(m.user_name))
		m.flags |= LT_MSGF_ANONYMOUS;
	if (m.flags & LT_MSGF_ANONYMOUS)
		m.user_id = LT_STR_NULL;
	m.msg_id = d0.id;
	extra_begin(e);
	int64_t guard = jint(top[3], 0);
	if (guard > 0)
		extra_int(&e->c->extra, "guard_level", guard);
	extra_end(&e->c->extra);
	if (!m.msg_id.len) {
		lt_buf_reset(&e->c->key);
		lt_buf_puts(&e->c->key, "DANMU_MSG");
		key_int(&e->c->key, uid);
		key_int(&e->c->key, jint(d0.rnd, 0));
		synth(e, &m, idb);
	}
	emit(e, &m);
	return LT_OK;
}

struct gift {
	int64_t uid;
	struct lt_str uname, name, coin, tid;
	int64_t gift_id, num, price, total, ts_s;
};

static int gift_emit(struct em *e, const struct gift *g, const char *cmd)
{
	struct lt_msg m;
	char ub[24], idb[17];

	msg_init(e, &m, LT_MSG_GIFT);
	uid_str(g->uid, ub, &m);
	m.user_name = g->uname;
	m.content = g->name;
	if (s_to_ms(g->ts_s))
		m.ts = s_to_ms(g->ts_s);
	int64_t num = g->num > 0 ? g->num : 1;
	int64_t value = g->total > 0 ? g->total : mul_sat(g->price, num);
	m.count = num;
	m.value = value;
	struct lt_buf *x = extra_begin(e);
	extra_str(e, "gift_name", g->name);
	extra_int(x, "gift_id", g->gift_id);
	extra_int(x, "count", num);
	extra_int(x, "value", value);
	extra_str(e, "currency", g->coin.len ? g->coin : LT_STR("gold"));
	extra_int(x, "price", g->price);
	extra_end(x);
	if (g->tid.len) {
		m.msg_id = g->tid;
	} else {
		lt_buf_reset(&e->c->key);
		lt_buf_printf(&e->c->key, "%s\x1f%lld\x1f%lld", cmd, (long long)g->gift_id, (long long)num);
		synth(e, &m, idb);
	}
	emit(e, &m);
	return LT_OK;
}

static int on_gift(struct em *e, struct lt_jv root, struct lt_str cmd)
{
	static const char *const keys[] = {"uid",        "uname",     "giftName", "giftId", "num",
	                                   "price",      "total_coin", "coin_type", "tid",    "timestamp"};
	struct lt_jv v[10];
	struct gift g;

	(void)cmd;
	struct lt_jv d = jroot(e, root, "data");
	if (!lt_jv_is(d, '{'))
		return LT_EPROTO;
	lt_jscan_get_many(d, keys, 10, v);
	g.uid = jint(v[0], 0);
	g.uname = jstr(e, v[1]);
	g.name = jstr(e, v[2]);
	g.gift_id = jint(v[3], 0);
	g.num = jint(v[4], 1);
	g.price = jint(v[5], 0);
	g.total = jint(v[6], 0);
	g.coin = jstr(e, v[7]);
	g.tid = jid(e, v[8]);
	g.ts_s = jint(v[9], 0);
	return gift_emit(e, &g, "SEND_GIFT");
}

/* Strict base64 (standard alphabet, padding optional) into out. */
static const int8_t b64_map[256] = {
#define B64_ROW16 -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1
	B64_ROW16, B64_ROW16,
	-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,			/* + / */
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,			/* 0-9 */
	-1, 0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14,			/* A-O */
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,			/* P-Z */
	-1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,			/* a-o */
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,			/* p-z */
	B64_ROW16, B64_ROW16, B64_ROW16, B64_ROW16, B64_ROW16, B64_ROW16, B64_ROW16, B64_ROW16,
#undef B64_ROW16
};

/* b64_map's values shifted to their place in a group of four, for
 * b64_decode's whole groups; 0x80000000 marks a character that is not one. */
#define B64_V(c)                                                                                  \
	((c) >= 'A' && (c) <= 'Z'   ? (c) - 'A'                                                  \
	 : (c) >= 'a' && (c) <= 'z' ? (c) - 'a' + 26                                             \
	 : (c) >= '0' && (c) <= '9' ? (c) - '0' + 52                                             \
	 : (c) == '+'               ? 62                                                         \
	 : (c) == '/'               ? 63                                                         \
				    : -1)
#define B64_T(c, sh) (B64_V(c) < 0 ? 0x80000000u : (uint32_t)B64_V(c) << (sh))
#define B64_R4(c, sh) B64_T((c), sh), B64_T((c) + 1, sh), B64_T((c) + 2, sh), B64_T((c) + 3, sh)
#define B64_R16(c, sh) B64_R4((c), sh), B64_R4((c) + 4, sh), B64_R4((c) + 8, sh), B64_R4((c) + 12, sh)
#define B64_R64(c, sh) B64_R16((c), sh), B64_R16((c) + 16, sh), B64_R16((c) + 32, sh), B64_R16((c) + 48, sh)
#define B64_TAB(sh) {B64_R64(0, sh), B64_R64(64, sh), B64_R64(128, sh), B64_R64(192, sh)}
static const uint32_t b64_t18[256] = B64_TAB(18), b64_t12[256] = B64_TAB(12), b64_t6[256] = B64_TAB(6),
		      b64_t0[256] = B64_TAB(0);
#undef B64_TAB
#undef B64_R64
#undef B64_R16
#undef B64_R4
#undef B64_T
#undef B64_V

static int b64_decode(struct lt_buf *out, struct lt_str s)
{
	const int8_t *map = b64_map;
	uint32_t acc = 0;
	int bits = 0;
	size_t i = 0;
	lt_buf_reset(out);
	if (lt_buf_reserve(out, s.len) != LT_OK)
		return LT_ENOMEM;
	/* written through a local pointer: stores to out->data[out->len++]
	 * would reload out->len after every byte (uint8_t aliases it) */
	uint8_t *o = out->data;
	/* whole groups of 4 characters to 3 bytes, each character's bits
	 * already in place in its table (a bad one sets bit 31), the 3 bytes
	 * stored as one 4-byte word (the fourth is overwritten by the next
	 * group or left past the end: out has s.len bytes of room, and
	 * 3 * (s.len / 4) + 1 <= s.len); the first group holding padding or a
	 * bad character goes to the loop below */
	for (; s.len - i >= 4; i += 4) {
		const unsigned char *g = (const unsigned char *)s.p + i;
		uint32_t v = b64_t18[g[0]] | b64_t12[g[1]] | b64_t6[g[2]] | b64_t0[g[3]];
		if (v & 0x80000000u)
			break;
		v <<= 8;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		v = __builtin_bswap32(v);
#endif
		memcpy(o, &v, 4);
		o += 3;
	}
	for (; i < s.len && s.p[i] != '='; i++) {
		int v = map[(unsigned char)s.p[i]];
		if (v < 0) {
			out->len = (size_t)(o - out->data);
			return LT_EPROTO;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			*o++ = (uint8_t)(acc >> bits);
		}
	}
	out->len = (size_t)(o - out->data);
	for (; i < s.len && s.p[i] == '='; i++)
		;
	if (i != s.len || bits >= 6)
		return LT_EPROTO;
	return LT_OK;
}

static struct lt_str pb_field(struct em *e, struct lt_jv d)
{
	struct lt_jv pb = jget(d, "pb");
	if (!lt_jv_is(pb, '"'))
		pb = jget(jget(d, "data"), "pb");
	return jstr(e, pb);
}

/* protobuf-c allocates every string and sub-message separately: from an
 * arena reset per message instead (its limit bounds a hostile payload).
 * So an unpacked message is never given back with *_free_unpacked, whose
 * walk over every field would only call pb_free: the next reset (or
 * lt_arena_free at close) takes it all. */
static void *pb_alloc(void *ud, size_t n)
{
	return lt_arena_alloc(ud, n);
}

static void pb_free(void *ud, void *p)
{
	(void)ud, (void)p;
}

static int on_gift_v2(struct em *e, struct lt_jv root, struct lt_str cmd)
{
	struct lt_str pb = pb_field(e, jroot(e, root, "data"));
	struct lt_buf *b = &e->c->b64;

	(void)cmd;
	if (!pb.len || b64_decode(b, pb) != LT_OK)
		return LT_EPROTO;
	lt_arena_reset(&e->c->pb_arena);
	Ltbili__SendGiftBroadcast *sg = ltbili__send_gift_broadcast__unpack(&e->c->pb_alloc, b->len, b->data);
	if (!sg)
		return LT_EPROTO;
	for (size_t i = 0; i < sg->n_gift_list; i++) {
		const Ltbili__GiftItem *it = sg->gift_list[i];
		struct gift g = {
			.uid = sg->uid,
			.uname = lt_str_c(sg->uname),
			.name = lt_str_c(it->gift_name),
			.coin = lt_str_c(it->coin_type),
			.tid = lt_str_c(it->tid),
			.gift_id = it->gift_id,
			.num = it->num,
			.price = it->price,
			.total = it->total_coin,
			.ts_s = it->timestamp,
		};
		gift_emit(e, &g, "SEND_GIFT_V2");
	}
	return LT_OK;
}

static int interact_type(int64_t t)
{
	switch (t) {
	case 1: return LT_MSG_ENTER;
	case 2:
	case 4:
	case 5: return LT_MSG_FOLLOW;
	case 3: return LT_MSG_SHARE;
	case 6: return LT_MSG_LIKE;
	default: return LT_MSG_OTHER;
	}
}

static struct lt_str interact_text(int type)
{
	switch (type) {
	case LT_MSG_ENTER: return LT_STR("进入直播间");
	case LT_MSG_FOLLOW: return LT_STR("关注了主播");
	case LT_MSG_SHARE: return LT_STR("分享了直播间");
	case LT_MSG_LIKE: return LT_STR("为主播点赞了");
	default: return LT_STR("");
	}
}

static int interact_emit(struct em *e, int64_t uid, struct lt_str uname, int64_t msg_type, int64_t ts_s,
                         int64_t trigger_ns, const char *cmd)
{
	struct lt_msg m;
	char ub[24], idb[17];
	int type = interact_type(msg_type);

	msg_init(e, &m, type);
	uid_str(uid, ub, &m);
	m.user_name = uname;
	if (trigger_ns > 1000000000000000LL)
		m.ts = trigger_ns / 1000000;
	else if (s_to_ms(ts_s))
		m.ts = s_to_ms(ts_s);
	m.content = interact_text(type);
	if (type == LT_MSG_LIKE)
		m.count = 1;
	struct lt_buf *x = extra_begin(e);
	if (type == LT_MSG_OTHER) {
		extra_str(e, "cmd", lt_str_c(cmd));
		extra_int(x, "msg_type", msg_type);
	}
	extra_end(x);
	lt_buf_reset(&e->c->key);
	lt_buf_puts(&e->c->key, "INTERACT");
	key_int(&e->c->key, msg_type);
	key_int(&e->c->key, trigger_ns);
	synth(e, &m, idb);
	emit(e, &m);
	return LT_OK;
}

static int on_interact(struct em *e, struct lt_jv root, struct lt_str cmd)
{
	static const char *const keys[] = {"uid", "uname", "msg_type", "timestamp", "trigger_time"};
	struct lt_jv v[5];

	(void)cmd;
	struct lt_jv d = jroot(e, root, "data");
	if (!lt_jv_is(d, '{'))
		return LT_EPROTO;
	lt_jscan_get_many(d, keys, 5, v);
	return interact_emit(e, jint(v[0], 0), jstr(e, v[1]), jint(v[2], 0), jint(v[3], 0), jint(v[4], 0),
	                     "INTERACT_WORD");
}

static int on_interact_v2(struct em *e, struct lt_jv root, struct lt_str cmd)
{
	struct lt_str pb = pb_field(e, jroot(e, root, "data"));
	struct lt_buf *b = &e->c->b64;

	(void)cmd;
	if (!pb.len || b64_decode(b, pb) != LT_OK)
		return LT_EPROTO;
	lt_arena_reset(&e->c->pb_arena);
	Ltbili__InteractWord *w = ltbili__interact_word__unpack(&e->c->pb_alloc, b->len, b->data);
	if (!w)
		return LT_EPROTO;
	int64_t uid = (int64_t)w->uid;
	const char *uname = w->uname;
	if (w->uinfo) {
		if (!uid)
			uid = (int64_t)w->uinfo->uid;
		if ((!uname || !uname[0]) && w->uinfo->base_info)
			uname = w->uinfo->base_info->uname;
	}
	interact_emit(e, uid, lt_str_c(uname), w->msg_type, w->timestamp, w->trigger_time, "INTERACT_WORD_V2");
	return LT_OK;
}

static int on_like(struct em *e, struct lt_jv root, struct lt_str cmd)
{
	static const char *const keys[] = {"uid", "uname", "like_text"};
	struct lt_jv v[3];
	struct lt_msg m;
	char ub[24], idb[17];

	(void)cmd;
	struct lt_jv d = jroot(e, root, "data");
	if (!lt_jv_is(d, '{'))
		return LT_EPROTO;
	lt_jscan_get_many(d, keys, 3, v);
	msg_init(e, &m, LT_MSG_LIKE);
	uid_str(jint(v[0], 0), ub, &m);
	m.user_name = jstr(e, v[1]);
	m.content = jstr(e, v[2]);
	m.count = 1;
	extra_begin(e);
	lt_buf_reset(&e->c->key);
	lt_buf_puts(&e->c->key, "LIKE_INFO_V3_CLICK");
	synth(e, &m, idb);
	emit(e, &m);
	return LT_OK;
}

static int on_superchat(struct em *e, struct lt_jv root, struct lt_str cmd)
{
	static const char *const keys[] = {"uid", "user_info", "message", "ts", "start_time", "price", "id"};
	struct lt_jv v[7];
	struct lt_msg m;
	char ub[24], sb[17];

	(void)cmd;
	struct lt_jv d = jroot(e, root, "data");
	if (!lt_jv_is(d, '{'))
		return LT_EPROTO;
	lt_jscan_get_many(d, keys, 7, v);
	msg_init(e, &m, LT_MSG_SUPERCHAT);
	uid_str(jint(v[0], 0), ub, &m);
	m.user_name = jstr(e, jget(v[1], "uname"));
	m.content = jstr(e, v[2]);
	int64_t ts = jint(v[3], 0);
	if (ts <= 0)
		ts = jint(v[4], 0);
	if (s_to_ms(ts))
		m.ts = s_to_ms(ts);
	int64_t price = jint(v[5], 0);
	m.count = 1;
	m.value = mul_sat(price, 1000); /* CNY to gold, the gifts' smallest unit */
	struct lt_buf *x = extra_begin(e);
	extra_int(x, "price", price);
	extra_int(x, "value", m.value);
	extra_str(e, "currency", LT_STR("gold"));
	extra_end(x);
	m.msg_id = jid(e, v[6]);
	if (!m.msg_id.len) {
		lt_buf_reset(&e->c->key);
		lt_buf_puts(&e->c->key, "SUPER_CHAT_MESSAGE");
		synth(e, &m, sb);
	}
	emit(e, &m);
	return LT_OK;
}

static int on_guard(struct em *e, struct lt_jv root, struct lt_str cmd)
{
	static const char *const keys[] = {"uid", "username", "gift_name", "start_time", "num",
	                                   "price", "guard_level", "gift_id"};
	struct lt_jv v[8];
	struct lt_msg m;
	char ub[24], idb[17];

	(void)cmd;
	struct lt_jv d = jroot(e, root, "data");
	if (!lt_jv_is(d, '{'))
		return LT_EPROTO;
	lt_jscan_get_many(d, keys, 8, v);
	msg_init(e, &m, LT_MSG_GUARD);
	uid_str(jint(v[0], 0), ub, &m);
	m.user_name = jstr(e, v[1]);
	struct lt_str name = jstr(e, v[2]);
	m.content = name;
	int64_t start = jint(v[3], 0);
	if (s_to_ms(start))
		m.ts = s_to_ms(start);
	int64_t num = jint(v[4], 1), price = jint(v[5], 0);
	m.count = num;
	m.value = mul_sat(price, num > 0 ? num : 1);
	struct lt_buf *x = extra_begin(e);
	extra_str(e, "gift_name", name);
	extra_int(x, "guard_level", jint(v[6], 0));
	extra_int(x, "count", num);
	extra_int(x, "value", m.value);
	extra_str(e, "currency", LT_STR("gold"));
	extra_end(x);
	lt_buf_reset(&e->c->key);
	/* no id of its own (USER_TOAST_MSG's payflow_id comes in another
	 * command): the key is everything that tells two purchases apart, so
	 * one user's different purchases in one second (another level, more
	 * months, another price) keep their own rows, while a message sent
	 * twice, or replayed, keeps its id */
	lt_buf_printf(&e->c->key, "GUARD_BUY\x1f%lld\x1f%lld\x1f%lld\x1f%lld\x1f%lld", (long long)jint(v[7], 0),
	              (long long)start, (long long)num, (long long)price, (long long)jint(v[6], 0));
	synth(e, &m, idb);
	emit(e, &m);
	return LT_OK;
}

static int on_stats(struct em *e, struct lt_jv root, struct lt_str cmd)
{
	struct lt_msg m;
	char idb[17];
	bool online = cmd.len && cmd.p[0] == 'O';

	struct lt_jv d = jroot(e, root, "data");
	if (!lt_jv_is(d, '{'))
		return LT_EPROTO;
	msg_init(e, &m, LT_MSG_ROOM_STATS);
	int64_t n;
	if (online) {
		n = jint(jget(d, "online_count"), -1);
		if (n < 0)
			n = jint(jget(d, "count"), 0);
	} else {
		n = jint(jget(d, "num"), 0);
	}
	m.count = n;
	struct lt_buf *x = extra_begin(e);
	extra_str(e, "cmd", cmd);
	extra_int(x, online ? "online_count" : "watched", n);
	extra_end(x);
	lt_buf_reset(&e->c->key);
	lt_buf_append(&e->c->key, cmd.p, cmd.len);
	key_int(&e->c->key, n);
	synth(e, &m, idb);
	emit(e, &m);
	return LT_OK;
}

static int on_live(struct em *e, struct lt_jv root, struct lt_str cmd)
{
	struct lt_msg m;
	char idb[17];
	bool start = cmd.p[0] == 'L';

	msg_init(e, &m, start ? LT_MSG_LIVE_START : LT_MSG_LIVE_END);
	struct lt_buf *x = extra_begin(e);
	extra_str(e, "cmd", cmd);
	if (start) {
		int64_t t = jint(jroot(e, root, "live_time"), 0);
		if (s_to_ms(t))
			m.ts = s_to_ms(t);
		struct lt_str key = jid(e, jroot(e, root, "live_key"));
		if (key.len) {
			extra_str(e, "live_key", key);
			lt_buf_reset(&e->c->key);
			lt_buf_puts(&e->c->key, "LIVE:");
			lt_buf_append(&e->c->key, key.p, key.len);
			/* the key buffer is not touched again before emit */
			m.msg_id = (struct lt_str){(const char *)e->c->key.data, (uint32_t)e->c->key.len};
		}
	} else {
		int64_t t = jint(jroot(e, root, "send_time"), 0);
		if (t > 0)
			m.ts = t;
		extra_int(x, "round", jint(jroot(e, root, "round"), 0));
		*e->ev |= LT_PEV_LIVE_END;
	}
	extra_end(x);
	if (!m.msg_id.len) {
		struct lt_str top = jid(e, jroot(e, root, "msg_id"));
		if (top.len) {
			m.msg_id = top;
		} else {
			lt_buf_reset(&e->c->key);
			lt_buf_printf(&e->c->key, "%.*s", (int)cmd.len, cmd.p);
			synth(e, &m, idb);
		}
	}
	emit(e, &m);
	return LT_OK;
}

/* Whether v (an exact view) is already in the form cJSON_PrintUnformatted
 * would give it after cJSON_Parse (cJSON 1.7): no whitespace outside strings,
 * strings without escapes or control bytes, integers of at most 15 digits
 * without a leading zero (printed back by "%d" or "%1.15g" as they stand),
 * true, false, null, separators in place, nesting at most LT_JSCAN_DEPTH_MAX.
 * Text that passes is copied as it is; anything else goes through cJSON. */
static bool json_canonical(const char *p, const char *end)
{
	uint64_t kinds = 0; /* bit d set: the container at depth d is an object */
	int depth = 0;
	enum { VAL, KEY, AFTER } want = VAL; /* what comes next */

	while (p < end) {
		char ch = *p;
		if (want == AFTER) {
			/* after a value: ',' or the container's closing bracket */
			if (depth == 0)
				return false;
			bool obj = (kinds >> (depth - 1)) & 1;
			if (ch == ',') {
				want = obj ? KEY : VAL;
				p++;
				continue;
			}
			if (ch != (obj ? '}' : ']'))
				return false;
			depth--;
			p++;
			continue; /* still AFTER */
		}
		if (want == KEY) {
			if (ch != '"')
				return false;
		} else if (ch == '{' || ch == '[') {
			if (depth >= LT_JSCAN_DEPTH_MAX)
				return false;
			if (ch == '{')
				kinds |= (uint64_t)1 << depth;
			else
				kinds &= ~((uint64_t)1 << depth);
			depth++;
			p++;
			if (p < end && *p == (ch == '{' ? '}' : ']')) {
				depth--;
				p++;
				want = AFTER;
			} else {
				want = ch == '{' ? KEY : VAL;
			}
			continue;
		}
		if (ch == '"') {
			for (p++; p < end && *p != '"'; p++)
				if ((unsigned char)*p < 0x20 || *p == '\\')
					return false;
			if (p >= end)
				return false;
			p++;
			if (want == KEY) {
				if (p >= end || *p != ':')
					return false;
				p++;
				want = VAL;
				continue;
			}
		} else if (ch == '-' || (ch >= '0' && ch <= '9')) {
			const char *d = ch == '-' ? p + 1 : p;
			const char *q = d;
			while (q < end && *q >= '0' && *q <= '9')
				q++;
			if (q == d || q - d > 15 || (*d == '0' && (q - d > 1 || ch == '-')))
				return false;
			p = q;
		} else if (end - p >= 4 && (!memcmp(p, "true", 4) || !memcmp(p, "null", 4))) {
			p += 4;
		} else if (end - p >= 5 && !memcmp(p, "false", 5)) {
			p += 5;
		} else {
			return false;
		}
		want = AFTER;
	}
	return depth == 0 && want == AFTER;
}

/* Anything else: type other, the command and (when small) its data kept in
 * extra. The rare path: data already in cJSON's printed form is copied,
 * anything else is checked and re-printed by cJSON. */
static int on_other(struct em *e, struct lt_jv root, struct lt_str cmd, const char *body, size_t n)
{
	struct lt_msg m;
	char idb[17];

	msg_init(e, &m, LT_MSG_OTHER);
	struct lt_buf *x = extra_begin(e);
	extra_str(e, "cmd", cmd);
	struct lt_jv d = jroot(e, root, "data");
	if (!d.p || lt_jscan_value(d.p, d.n, &d, NULL) != LT_OK || d.n >= LT_MSG_EXTRA_MAX / 2) {
		/* no data kept */
	} else if (json_canonical(d.p, d.p + d.n)) {
		lt_buf_puts(x, ",\"data\":");
		lt_buf_append(x, d.p, d.n);
	} else {
		cJSON *dj = cJSON_ParseWithLength(d.p, d.n);
		char *s = dj ? cJSON_PrintUnformatted(dj) : NULL;
		if (s) {
			lt_buf_puts(x, ",\"data\":");
			lt_buf_puts(x, s);
			cJSON_free(s);
		}
		cJSON_Delete(dj);
	}
	extra_end(x);
	e->c->extra_normal = false; /* data as it came: the encoder checks it */
	struct lt_str top = jid(e, jroot(e, root, "msg_id"));
	if (top.len) {
		m.msg_id = top;
	} else {
		lt_buf_reset(&e->c->key);
		lt_buf_append(&e->c->key, body, n);
		synth(e, &m, idb);
	}
	emit(e, &m);
	return LT_OK;
}

struct cmd_map {
	const char *name;
	size_t len;
	int (*fn)(struct em *e, struct lt_jv root, struct lt_str cmd);
};

#define CMD(s, f) {.name = s, .len = sizeof(s) - 1, .fn = f}
static const struct cmd_map cmds[] = {
	CMD("DANMU_MSG", on_danmu),
	CMD("SEND_GIFT", on_gift),
	CMD("SEND_GIFT_V2", on_gift_v2),
	CMD("INTERACT_WORD", on_interact),
	CMD("INTERACT_WORD_V2", on_interact_v2),
	CMD("LIKE_INFO_V3_CLICK", on_like),
	CMD("SUPER_CHAT_MESSAGE", on_superchat),
	CMD("GUARD_BUY", on_guard),
	CMD("ONLINE_RANK_COUNT", on_stats),
	CMD("WATCHED_CHANGE", on_stats),
	CMD("LIVE", on_live),
	CMD("PREPARING", on_live),
};
#undef CMD

/* One op-5 JSON body. */
static void on_message(struct em *e, const uint8_t *p, size_t n)
{
	struct lt_jv root;
	int rc = LT_EPROTO;

	/* room for every unescaped string of this body (never longer than it,
	 * twice for the JSON-in-a-string of DANMU_MSG) */
	lt_buf_reset(&e->c->scratch);
	if (n > LT_BILI_INFLATE_MAX || lt_buf_reserve(&e->c->scratch, 2 * n + 64) != LT_OK)
		goto out;
	/* the root stays an open view: only what a handler asks for is read */
	size_t skip = 0;
	while (skip < n && (p[skip] == ' ' || p[skip] == '\n' || p[skip] == '\r' || p[skip] == '\t'))
		skip++;
	root = (struct lt_jv){(const char *)p + skip, n - skip};
	if (!lt_jv_is(root, '{'))
		goto out;
	/* cmd comes first in every body: its walk is not made again by the
	 * handler's lookups of the members after it */
	struct lt_jv cv;
	e->after_cmd = NULL;
	if (!lt_jscan_first_member(root, "cmd", &cv, &e->after_cmd))
		cv = jget(root, "cmd");
	struct lt_str cmd = jstr(e, cv);
	if (!cmd.len)
		goto out;
	const char *colon = memchr(cmd.p, ':', cmd.len);
	size_t base = colon ? (size_t)(colon - cmd.p) : cmd.len;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (cmds[i].len == base && memcmp(cmds[i].name, cmd.p, base) == 0) {
			rc = cmds[i].fn(e, root, cmd);
			goto out;
		}
	}
	rc = on_other(e, root, cmd, (const char *)p, n);
out:
	if (rc != LT_OK)
		e->c->st.bad_messages++;
}

/* ------------------------------------------------------------------ */
/* Packets and decompression */

static int inflate_zlib(struct lt_platform_conn *c, struct lt_buf *out, const uint8_t *p, size_t n)
{
	return lt_inflate_run(&c->zs, p, n, LT_BILI_INFLATE_MAX, out, NULL);
}

static void *br_alloc(void *opaque, size_t n)
{
	struct br_cache *bc = opaque;
	int empty = -1;
	for (int i = 0; i < BR_BLOCKS; i++) {
		if (bc->b[i].p && !bc->b[i].used && bc->b[i].n >= n && bc->b[i].n <= 2 * n + 4096) {
			bc->b[i].used = true;
			return bc->b[i].p;
		}
		if (!bc->b[i].p && empty < 0)
			empty = i;
	}
	void *p = malloc(n);
	if (p && empty >= 0) {
		bc->b[empty].p = p;
		bc->b[empty].n = n;
		bc->b[empty].used = true;
	}
	return p;
}

static void br_free(void *opaque, void *p)
{
	struct br_cache *bc = opaque;
	if (!p)
		return;
	for (int i = 0; i < BR_BLOCKS; i++) {
		if (bc->b[i].p == p) {
			bc->b[i].used = false;
			return;
		}
	}
	free(p);
}

static void br_cache_free(struct br_cache *bc)
{
	for (int i = 0; i < BR_BLOCKS; i++)
		free(bc->b[i].p);
	memset(bc, 0, sizeof(*bc));
}

/* Decompress one brotli stream. The decoder writes into its ring buffer and
 * hands pieces out with BrotliDecoderTakeOutput; a stream that finishes in
 * one piece (every batch shorter than the window) is read where it is, in
 * *data, valid until the caller destroys *sp (always, also on error), instead
 * of being copied into out. Pieces of a longer stream are copied into out as
 * they come, and out grows exactly as it did when brotli wrote into it (the
 * same reservations, so the same LT_ETOOBIG). *len is the output length, also
 * on error (what came out before it). */
static int inflate_brotli(struct lt_platform_conn *c, struct lt_buf *out, const uint8_t *p, size_t n,
                          BrotliDecoderState **sp, const uint8_t **data, size_t *len)
{
	BrotliDecoderState *s = BrotliDecoderCreateInstance(br_alloc, br_free, &c->br);
	size_t avail_in = n, avail_out = 0;
	const uint8_t *next_in = p;
	uint8_t *next_out = NULL;
	size_t want = n * 8 < 16384 ? 16384 : n * 8;
	int rc = LT_EPROTO;

	*sp = s;
	lt_buf_reset(out);
	*data = out->data;
	*len = 0;
	if (!s)
		return LT_ENOMEM;
	if (lt_buf_reserve(out, want) != LT_OK)
		return LT_ETOOBIG;
	for (;;) {
		BrotliDecoderResult r = BrotliDecoderDecompressStream(s, &avail_in, &next_in, &avail_out, &next_out, NULL);
		while (BrotliDecoderHasMoreOutput(s)) {
			size_t k = 0;
			const uint8_t *q = BrotliDecoderTakeOutput(s, &k);
			if (!q || !k)
				break;
			if (out->len == 0 && BrotliDecoderIsFinished(s) && k <= out->cap - 1) {
				*data = q;
				*len = k;
				return LT_OK;
			}
			while (k) {
				size_t room = out->cap - out->len - 1;
				if (!room) {
					if (lt_buf_reserve(out, want) != LT_OK) {
						*len = out->len;
						return LT_ETOOBIG;
					}
					room = out->cap - out->len - 1;
				}
				size_t m = k < room ? k : room;
				memcpy(out->data + out->len, q, m);
				out->len += m;
				q += m;
				k -= m;
			}
		}
		if (r == BROTLI_DECODER_RESULT_SUCCESS) {
			rc = LT_OK;
			break;
		}
		if (r != BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT)
			break; /* error, or the input ended early */
	}
	*data = out->data;
	*len = out->len;
	return rc;
}

static int on_auth_reply(struct em *e, const uint8_t *p, size_t n)
{
	cJSON *root = n ? cJSON_ParseWithLength((const char *)p, n) : NULL;
	int64_t code = n ? cj_int(cj_get(root, "code"), -1) : 0;
	cJSON_Delete(root);
	if (code == 0) {
		*e->ev |= LT_PEV_AUTHED;
		/* every client sends one heartbeat at once after the auth reply */
		lt_buf_reset(&e->c->out);
		lt_bili_pack(&e->c->out, LT_BILI_VER_HB, LT_BILI_OP_HEARTBEAT, 1, HEARTBEAT_BODY,
		             sizeof(HEARTBEAT_BODY) - 1);
		if (!lt_buf_err(&e->c->out) && e->io->send)
			e->io->send(e->io->ud, e->c->out.data, e->c->out.len, false);
		return LT_OK;
	}
	*e->ev |= LT_PEV_RECONNECT;
	e->c->want_token = true;
	return LT_EAUTH;
}

static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static int decode(struct em *e, const uint8_t *p, size_t n, int depth)
{
	struct lt_platform_conn *c = e->c;
	size_t off = 0;
	int rc = LT_OK;

	while (off < n) {
		/* the 16-byte header read in place: lt_rd's calls per field were
		 * 1% of a replay, for a header in every message */
		if (n - off < LT_BILI_HDR_LEN)
			return LT_EPROTO;
		const uint8_t *h = p + off;
		uint32_t pack_len = be32(h), op = be32(h + 8);
		uint16_t hdr_len = be16(h + 4), ver = be16(h + 6);
		if (hdr_len < LT_BILI_HDR_LEN || pack_len < hdr_len || pack_len > n - off)
			return LT_EPROTO;
		const uint8_t *body = p + off + hdr_len;
		size_t blen = pack_len - hdr_len;
		c->st.packets++;
		off += pack_len;
		switch (op) {
		case LT_BILI_OP_HEARTBEAT_REPLY:
			c->st.heartbeats++;
			*e->ev |= LT_PEV_HEARTBEAT;
			/* the server echoes our heartbeat body after the 4 counted
			 * bytes; skip it unless a real packet follows */
			if (off < n) {
				if (n - off < 6)
					return rc;
				uint32_t pl2 = be32(p + off);
				uint16_t hl2 = be16(p + off + 4);
				if (hl2 != LT_BILI_HDR_LEN || pl2 < LT_BILI_HDR_LEN || pl2 > n - off)
					return rc;
			}
			break;
		case LT_BILI_OP_AUTH_REPLY: {
			int ar = on_auth_reply(e, body, blen);
			if (ar != LT_OK)
				return ar;
			break;
		}
		case LT_BILI_OP_MESSAGE:
			if (ver == LT_BILI_VER_RAW || ver == LT_BILI_VER_HB) {
				on_message(e, body, blen);
			} else if (ver == LT_BILI_VER_ZLIB || ver == LT_BILI_VER_BROTLI) {
				if (depth >= LT_BILI_DEPTH_MAX) {
					rc = LT_EPROTO;
					break;
				}
				struct lt_buf *out = &c->inflated[depth];
				BrotliDecoderState *bs = NULL; /* the brotli output lives in it */
				const uint8_t *data;
				size_t len;
				int ir;
				if (ver == LT_BILI_VER_ZLIB) {
					ir = inflate_zlib(c, out, body, blen);
					data = out->data;
					len = out->len;
				} else {
					ir = inflate_brotli(c, out, body, blen, &bs, &data, &len);
				}
				c->st.bytes_inflated += len;
				if (ir != LT_OK) {
					if (bs)
						BrotliDecoderDestroyInstance(bs);
					rc = LT_EPROTO;
					break;
				}
				int dr = decode(e, data, len, depth + 1);
				if (bs)
					BrotliDecoderDestroyInstance(bs);
				if (dr == LT_EAUTH)
					return dr;
				if (dr != LT_OK)
					rc = dr;
			} else {
				rc = LT_EPROTO; /* unknown version: skip this packet */
			}
			break;
		default:
			break; /* ops the server is not known to send: ignored */
		}
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* The ops */

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void bili_destroy(struct lt_platform_conn *c)
{
	if (!c)
		return;
	free(c->room_cfg);
	free(c->api_base);
	free(c->aux_base);
	free(c->ws_url);
	free(c->cookie);
	free(c->ua);
	free(c->token);
	lt_buf_free(&c->url);
	lt_buf_free(&c->hdrs);
	lt_buf_free(&c->target);
	lt_buf_free(&c->out);
	for (int i = 0; i < LT_BILI_DEPTH_MAX; i++)
		lt_buf_free(&c->inflated[i]);
	lt_buf_free(&c->extra);
	lt_buf_free(&c->key);
	lt_buf_free(&c->b64);
	lt_buf_free(&c->scratch);
	lt_inflate_end(&c->zs);
	br_cache_free(&c->br);
	lt_arena_free(&c->pb_arena);
	free(c);
}

static int bili_create(const struct lt_platform_conf *conf, struct lt_platform_conn **out)
{
	struct lt_platform_conn *c;

	if (!conf || !conf->room || !conf->room[0] || strlen(conf->room) >= sizeof(c->room))
		return LT_EINVAL;
	for (const char *p = conf->room; *p; p++)
		if (*p < '0' || *p > '9')
			return LT_EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return LT_ENOMEM;
	c->room_cfg = strdup(conf->room);
	c->api_base = strdup(conf->api_base ? conf->api_base : DEFAULT_API);
	/* one non-default api_base (an emulator) serves every endpoint */
	bool custom = conf->api_base && strcmp(conf->api_base, DEFAULT_API) != 0;
	c->aux_base = strdup(conf->aux_base ? conf->aux_base : custom ? conf->api_base : DEFAULT_AUX);
	c->ws_url = dup_or_null(conf->ws_url);
	c->cookie = dup_or_null(conf->cookie);
	c->ua = strdup(conf->user_agent ? conf->user_agent : DEFAULT_UA);
	if (!c->room_cfg || !c->api_base || !c->aux_base || !c->ua || (conf->ws_url && !c->ws_url) ||
	    (conf->cookie && !c->cookie)) {
		bili_destroy(c);
		return LT_ENOMEM;
	}
	c->uid = conf->uid;
	c->skip_bootstrap = conf->skip_bootstrap;
	c->clock = conf->clock ? conf->clock : &lt_clock_real;
	snprintf(c->room, sizeof(c->room), "%s", c->room_cfg);
	if (c->cookie)
		lt_platform_cookie_get(c->cookie, "buvid3", c->buvid, sizeof(c->buvid));
	lt_buf_init(&c->url, 0);
	lt_buf_init(&c->hdrs, 0);
	lt_buf_init(&c->target, 0);
	lt_buf_init(&c->out, 0);
	for (int i = 0; i < LT_BILI_DEPTH_MAX; i++)
		lt_buf_init(&c->inflated[i], LT_BILI_INFLATE_MAX + 1);
	lt_buf_init(&c->extra, 0);
	lt_inflate_init(&c->zs, LT_INFLATE_ZLIB);
	lt_buf_init(&c->key, 0);
	lt_buf_init(&c->b64, 0);
	lt_buf_init(&c->scratch, 0);
	lt_arena_init(&c->pb_arena, 4u << 20);
	c->pb_alloc = (ProtobufCAllocator){.alloc = pb_alloc, .free = pb_free, .allocator_data = &c->pb_arena};
	c->step = STEP_DONE;
	*out = c;
	return LT_OK;
}

static bool wbi_valid(const struct lt_platform_conn *c)
{
	return c->wbi_expire_ms && lt_clock_now(c->clock) < c->wbi_expire_ms;
}

/* From the current state, the first step still needed to get a token. */
static enum step token_step(const struct lt_platform_conn *c)
{
	if (!c->resolved)
		return STEP_ROOM;
	if (!c->buvid[0])
		return STEP_BUVID;
	if (!wbi_valid(c))
		return STEP_NAV;
	return STEP_DANMU;
}

static int bili_begin(struct lt_platform_conn *c, int attempt)
{
	if (c->skip_bootstrap) {
		c->step = STEP_DONE;
		return LT_OK;
	}
	if (!c->token || c->want_token || (attempt > 0 && attempt % LT_BILI_TOKEN_EVERY == 0)) {
		c->step = token_step(c);
		c->want_token = false;
	} else {
		c->step = STEP_DONE;
		if (attempt > 0 && c->n_hosts)
			c->host_idx = (c->host_idx + 1) % c->n_hosts;
	}
	return LT_OK;
}

static void common_headers(struct lt_platform_conn *c, bool with_cookie)
{
	struct lt_buf *h = &c->hdrs;
	lt_buf_reset(h);
	lt_buf_printf(h, "User-Agent: %s\r\nReferer: https://live.bilibili.com/\r\n", c->ua);
	if (with_cookie && (c->cookie || c->buvid[0])) {
		lt_buf_puts(h, "Cookie: ");
		if (c->cookie)
			lt_buf_puts(h, c->cookie);
		bool has = c->cookie && lt_platform_cookie_get(c->cookie, "buvid3", NULL, 0);
		if (c->buvid[0] && !has)
			lt_buf_printf(h, "%sbuvid3=%s", c->cookie && c->cookie[0] ? "; " : "", c->buvid);
		lt_buf_puts(h, "\r\n");
	}
}

static int bili_http_next(struct lt_platform_conn *c, struct lt_http_req *req)
{
	struct lt_buf *u = &c->url;

	lt_buf_reset(u);
	switch (c->step) {
	case STEP_ROOM:
		lt_buf_printf(u, "%s/room/v1/Room/get_info?room_id=%s", c->api_base, c->room_cfg);
		common_headers(c, true);
		break;
	case STEP_BUVID:
		lt_buf_printf(u, "%s/x/frontend/finger/spi", c->aux_base);
		common_headers(c, true);
		break;
	case STEP_NAV:
		lt_buf_printf(u, "%s/x/web-interface/nav", c->aux_base);
		common_headers(c, true);
		break;
	case STEP_DANMU: {
		char mixin[33], q[64];
		if (lt_bili_wbi_mixin(c->img_key, c->sub_key, mixin) != LT_OK)
			return LT_EINTERNAL;
		snprintf(q, sizeof(q), "id=%s&type=0&web_location=444.8", c->room);
		lt_buf_printf(u, "%s/xlive/web-room/v1/index/getDanmuInfo?", c->api_base);
		lt_bili_wbi_sign(u, q, mixin, lt_clock_now(c->clock) / 1000);
		common_headers(c, true);
		break;
	}
	case STEP_DONE:
	default:
		return LT_EEOF;
	}
	if (lt_buf_err(u) || lt_buf_err(&c->hdrs))
		return LT_ENOMEM;
	req->method = "GET";
	req->url = lt_buf_cstr(u);
	req->headers = lt_buf_cstr(&c->hdrs);
	req->body = NULL;
	req->body_len = 0;
	return LT_OK;
}

/* "https://i0.hdslb.com/bfs/wbi/7cd0…077c.png" -> "7cd0…077c" */
static bool url_stem(const char *url, char out[33])
{
	const char *slash = strrchr(url, '/');
	const char *s = slash ? slash + 1 : url;
	size_t n = strcspn(s, ".");
	if (n != 32)
		return false;
	memcpy(out, s, 32);
	out[32] = '\0';
	return true;
}

static int bili_http_done(struct lt_platform_conn *c, const struct lt_http_resp *resp)
{
	cJSON *root = NULL;
	int rc = LT_OK;

	if (resp->status == 412 || resp->status == 0 || resp->status >= 500) {
		rc = LT_EAGAIN;
		goto out;
	}
	if (resp->status != 200 || resp->body_len > HTTP_BODY_MAX) {
		rc = LT_EPROTO;
		goto out;
	}
	root = cJSON_ParseWithLength(resp->body, resp->body_len);
	if (!root) {
		rc = LT_EPROTO;
		goto out;
	}
	int64_t code = cj_int(cj_get(root, "code"), -1);
	const cJSON *d = cj_get(root, "data");
	if (code == -352 || code == -412) {
		c->wbi_expire_ms = 0; /* risk control: the keys may be stale */
		rc = LT_EAGAIN;
		goto out;
	}
	switch (c->step) {
	case STEP_ROOM: {
		int64_t rid = cj_int(cj_get(d, "room_id"), 0);
		if (code != 0 || rid <= 0) {
			rc = code == 0 ? LT_EPROTO : LT_ENOTFOUND;
			goto out;
		}
		snprintf(c->room, sizeof(c->room), "%lld", (long long)rid);
		c->resolved = true;
		break;
	}
	case STEP_BUVID: {
		struct lt_str b = cj_str(cj_get(d, "b_3"));
		if (b.len && b.len < sizeof(c->buvid)) {
			memcpy(c->buvid, b.p, b.len);
			c->buvid[b.len] = '\0';
		} else if (!resp->set_cookie || !lt_platform_cookie_get(resp->set_cookie, "buvid3", c->buvid, sizeof(c->buvid))) {
			rc = LT_EPROTO;
			goto out;
		}
		break;
	}
	case STEP_NAV: {
		/* logged out nav answers -101 but still carries wbi_img */
		const cJSON *img = cj_get(d, "wbi_img");
		const cJSON *iu = cj_get(img, "img_url"), *su = cj_get(img, "sub_url");
		if (!cJSON_IsString(iu) || !cJSON_IsString(su) || !url_stem(iu->valuestring, c->img_key) ||
		    !url_stem(su->valuestring, c->sub_key)) {
			rc = LT_EPROTO;
			goto out;
		}
		c->wbi_expire_ms = lt_clock_now(c->clock) + LT_BILI_WBI_TTL_MS;
		if (cJSON_IsTrue(cj_get(d, "isLogin")) && c->uid == 0)
			c->uid = cj_int(cj_get(d, "mid"), 0);
		break;
	}
	case STEP_DANMU: {
		struct lt_str tok = cj_str(cj_get(d, "token"));
		if (code != 0 || !tok.len) {
			rc = LT_EPROTO;
			goto out;
		}
		free(c->token);
		c->token = strndup(tok.p, tok.len);
		if (!c->token) {
			rc = LT_ENOMEM;
			goto out;
		}
		c->n_hosts = 0;
		c->host_idx = 0;
		const cJSON *h;
		cJSON_ArrayForEach(h, cj_get(d, "host_list"))
		{
			struct lt_str name = cj_str(cj_get(h, "host"));
			int64_t port = cj_int(cj_get(h, "wss_port"), 443);
			if (c->n_hosts >= LT_BILI_HOSTS_MAX || !name.len || name.len >= sizeof(c->hosts[0].name) ||
			    port <= 0 || port > 65535)
				continue;
			memcpy(c->hosts[c->n_hosts].name, name.p, name.len);
			c->hosts[c->n_hosts].name[name.len] = '\0';
			c->hosts[c->n_hosts].wss_port = (int)port;
			c->n_hosts++;
		}
		break;
	}
	default:
		rc = LT_EINTERNAL;
		goto out;
	}
	c->step = c->step == STEP_DANMU ? STEP_DONE : token_step(c);
out:
	if (rc != LT_OK)
		c->st.http_errors++;
	cJSON_Delete(root);
	return rc;
}

static int bili_ws_target(struct lt_platform_conn *c, struct lt_ws_target *t)
{
	lt_buf_reset(&c->target);
	if (c->ws_url)
		lt_buf_puts(&c->target, c->ws_url);
	else if (c->n_hosts)
		lt_buf_printf(&c->target, "wss://%s:%d/sub", c->hosts[c->host_idx].name, c->hosts[c->host_idx].wss_port);
	else
		lt_buf_puts(&c->target, DEFAULT_WS);
	common_headers(c, false);
	if (lt_buf_err(&c->target) || lt_buf_err(&c->hdrs))
		return LT_ENOMEM;
	t->url = lt_buf_cstr(&c->target);
	t->headers = lt_buf_cstr(&c->hdrs);
	t->origin = "https://live.bilibili.com";
	t->protocol = NULL;
	return LT_OK;
}

static int bili_on_open(struct lt_platform_conn *c, const struct lt_platform_io *io)
{
	struct lt_buf body = LT_BUF_INIT;
	int rc;

	lt_buf_init(&body, 0);
	lt_buf_printf(&body, "{\"uid\":%lld,\"roomid\":%s,\"protover\":3,\"platform\":\"web\",\"type\":2,\"buvid\":",
	              (long long)c->uid, c->room);
	lt_json_str(&body, c->buvid, strlen(c->buvid));
	lt_buf_puts(&body, ",\"key\":");
	lt_json_str(&body, c->token ? c->token : "", c->token ? strlen(c->token) : 0);
	lt_buf_putc(&body, '}');
	lt_buf_reset(&c->out);
	lt_bili_pack(&c->out, LT_BILI_VER_HB, LT_BILI_OP_AUTH, 1, body.data, body.len);
	rc = lt_buf_err(&body) ? lt_buf_err(&body) : lt_buf_err(&c->out);
	if (rc == LT_OK)
		io->send(io->ud, c->out.data, c->out.len, false);
	lt_buf_free(&body);
	return rc;
}

static int bili_on_frame(struct lt_platform_conn *c, const uint8_t *p, size_t n, int64_t recv_ms,
                         const struct lt_platform_io *io, unsigned *ev)
{
	struct em e = {.c = c, .io = io, .recv_ms = recv_ms, .ev = ev};

	*ev = 0;
	c->st.frames++;
	c->st.bytes_in += n;
	int rc = decode(&e, p, n, 0);
	if (rc == LT_EPROTO)
		c->st.bad_frames++;
	/* don't keep a bomb-sized buffer around */
	for (int i = 0; i < LT_BILI_DEPTH_MAX; i++)
		if (c->inflated[i].cap > (4u << 20))
			lt_buf_free(&c->inflated[i]), lt_buf_init(&c->inflated[i], LT_BILI_INFLATE_MAX + 1);
	return rc;
}

static int bili_heartbeat_ms(const struct lt_platform_conn *c)
{
	(void)c;
	return LT_BILI_HEARTBEAT_MS;
}

static int bili_heartbeat(struct lt_platform_conn *c, const struct lt_platform_io *io)
{
	lt_buf_reset(&c->out);
	lt_bili_pack(&c->out, LT_BILI_VER_HB, LT_BILI_OP_HEARTBEAT, 1, HEARTBEAT_BODY, sizeof(HEARTBEAT_BODY) - 1);
	if (lt_buf_err(&c->out))
		return lt_buf_err(&c->out);
	io->send(io->ud, c->out.data, c->out.len, false);
	return LT_OK;
}

static const char *bili_room(const struct lt_platform_conn *c)
{
	return c->room;
}

static void bili_stats(const struct lt_platform_conn *c, struct lt_platform_stats *out)
{
	*out = c->st;
}

const struct lt_platform_ops lt_platform_bilibili = {
	.name = "bilibili",
	.platform = LT_PLATFORM_BILIBILI,
	.create = bili_create,
	.destroy = bili_destroy,
	.begin = bili_begin,
	.http_next = bili_http_next,
	.http_done = bili_http_done,
	.ws_target = bili_ws_target,
	.on_open = bili_on_open,
	.on_frame = bili_on_frame,
	.heartbeat_ms = bili_heartbeat_ms,
	.heartbeat = bili_heartbeat,
	.room = bili_room,
	.stats = bili_stats,
};
