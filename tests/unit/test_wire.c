/* SPDX-License-Identifier: MIT */
/*
 * test_wire: the binary record, batch and ack formats of common/wire.c.
 *
 * A seeded round trip over 100k random records (random bytes, invalid UTF-8,
 * fields at their limits; the seed is printed and LT_TEST_SEED replays it);
 * empty, truncated (every prefix of a valid batch), oversized, bad-version,
 * bad-kind and bad-count inputs refused with LT_EPROTO; a bad record skipped
 * while its batch-mates decode; and golden-byte fixtures in tests/unit/golden/
 * that pin the format (LT_GOLDEN_WRITE=DIR rewrites them, see its README).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/wire.h"
#include "tests/support/testsupport.h"

/* ---- seeded PRNG (splitmix64) ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint32_t rnd_below(uint32_t n) { return (uint32_t)(rnd() % n); }

static void seed_rng(void)
{
	const char *s = getenv("LT_TEST_SEED");
	uint64_t seed = s && *s ? strtoull(s, NULL, 0) : ((uint64_t)time(NULL) << 16) ^ (uint64_t)getpid();
	rng_state = seed;
	printf("test_wire: seed %" PRIu64 " (replay with LT_TEST_SEED=%" PRIu64 ")\n", seed, seed);
	fflush(stdout);
}

/* A random string in pool (owned by the caller's pool): length 0..max with
 * extra weight on 0 and on exactly max, bytes from the full 0..255 range
 * or (half the time) UTF-8 text with broken sequences mixed in. */
static struct lt_str rnd_str(char *pool, uint32_t max)
{
	uint32_t r = rnd_below(10), len;
	if (r == 0)
		len = 0;
	else if (r == 1)
		len = max;
	else
		len = rnd_below(max + 1) / (r < 6 ? 8 : 1);
	bool raw = rnd() & 1;
	for (uint32_t i = 0; i < len; i++) {
		if (raw) {
			pool[i] = (char)rnd_below(256);
		} else {
			static const char *const bits[] = {"a", "7", " ", "\xe4\xb8\xad", "\xf0\x9f\x98\x80", "\xc0\xaf",
							   "\xed\xa0\x80", "\x80", "\"", "\\", "\n"};
			const char *b = bits[rnd_below(11)];
			size_t bl = strlen(b);
			if (i + bl > len)
				bl = len - i;
			memcpy(pool + i, b, bl);
			i += (uint32_t)bl - 1;
		}
	}
	return (struct lt_str){len ? pool : NULL, len};
}

struct rmsg {
	struct lt_msg m;
	char room[LT_MSG_ROOM_MAX], id[LT_MSG_ID_MAX], uid[LT_MSG_USER_ID_MAX], name[LT_MSG_USER_NAME_MAX];
	char content[LT_MSG_CONTENT_MAX], extra[LT_MSG_EXTRA_MAX];
};

static void rnd_msg(struct rmsg *r)
{
	struct lt_msg *m = &r->m;
	m->platform = (uint8_t)rnd_below(LT_PLATFORM_COUNT);
	m->type = (uint8_t)rnd_below(LT_MSG_TYPE_COUNT);
	m->flags = (uint8_t)rnd_below(8);
	m->ts = (int64_t)rnd();
	m->count = (int64_t)rnd();
	m->value = (int64_t)rnd();
	m->room = rnd_str(r->room, LT_MSG_ROOM_MAX);
	m->msg_id = rnd_str(r->id, LT_MSG_ID_MAX);
	m->user_id = rnd_str(r->uid, LT_MSG_USER_ID_MAX);
	m->user_name = rnd_str(r->name, LT_MSG_USER_NAME_MAX);
	m->content = rnd_str(r->content, LT_MSG_CONTENT_MAX);
	m->extra = rnd_str(r->extra, LT_MSG_EXTRA_MAX);
}

static void assert_msg_eq(const struct lt_msg *a, const struct lt_msg *b)
{
	ck_assert_uint_eq(a->platform, b->platform);
	ck_assert_uint_eq(a->type, b->type);
	ck_assert_uint_eq(a->flags, b->flags);
	ck_assert_int_eq(a->ts, b->ts);
	ck_assert_int_eq(a->count, b->count);
	ck_assert_int_eq(a->value, b->value);
	ck_assert(lt_str_eq(a->room, b->room));
	ck_assert(lt_str_eq(a->msg_id, b->msg_id));
	ck_assert(lt_str_eq(a->user_id, b->user_id));
	ck_assert(lt_str_eq(a->user_name, b->user_name));
	ck_assert(lt_str_eq(a->content, b->content));
	ck_assert(lt_str_eq(a->extra, b->extra));
}

static struct lt_msg chat_msg(void)
{
	struct lt_msg m = {0};
	m.platform = LT_PLATFORM_BILIBILI;
	m.type = LT_MSG_CHAT;
	m.ts = 1732212345123;
	m.room = LT_STR("21452505");
	m.msg_id = LT_STR("b3f1c0de");
	m.user_id = LT_STR("123");
	m.user_name = LT_STR("\xe5\xb0\x8f\xe6\x98\x8e"); /* 小明 */
	m.content = LT_STR("\xe5\x93\x88\xe5\x93\x88 666");  /* 哈哈 666 */
	return m;
}

static struct lt_msg gift_msg(void)
{
	struct lt_msg m = {0};
	m.platform = LT_PLATFORM_DOUYIN;
	m.type = LT_MSG_GIFT;
	m.flags = LT_MSGF_TRUNCATED;
	m.ts = -1;
	m.count = 3;
	m.value = -300;
	m.room = LT_STR("7301");
	m.msg_id = LT_STR("g-1");
	m.user_id = LT_STR("");
	m.user_name = LT_STR("anon");
	m.content = LT_STR("");
	m.extra = LT_STR("{\"gift_name\":\"rose\",\"count\":3}");
	return m;
}

/* ---- round trip ---- */

START_TEST(roundtrip_random)
{
	enum { TOTAL = 100000, MAXB = 97 };
	struct rmsg *rs = malloc(sizeof(*rs) * MAXB);
	ck_assert_ptr_nonnull(rs);
	struct lt_buf b = LT_BUF_INIT;
	size_t done = 0, batches = 0;
	while (done < TOTAL) {
		uint32_t k = 1 + rnd_below(MAXB);
		uint64_t seq = rnd();
		char src[LT_WIRE_SOURCE_MAX + 1];
		uint32_t sl = rnd_below(LT_WIRE_SOURCE_MAX + 1);
		for (uint32_t i = 0; i < sl; i++)
			src[i] = (char)(1 + rnd_below(255));
		src[sl] = 0;
		ck_assert_int_eq(lt_wire_batch_begin(&b, LT_WIRE_KIND_DATA, 0, src, seq), LT_OK);
		for (uint32_t i = 0; i < k; i++) {
			rnd_msg(&rs[i]);
			ck_assert_int_eq(lt_wire_batch_add(&b, &rs[i].m), LT_OK);
		}
		ck_assert_uint_eq(lt_wire_batch_count(&b), k);
		struct lt_wire_batch wb;
		ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_OK);
		ck_assert_uint_eq(wb.kind, LT_WIRE_KIND_DATA);
		ck_assert_uint_eq(wb.seq, seq);
		ck_assert_uint_eq(wb.count, k);
		ck_assert_str_eq(wb.source_id, src);
		struct lt_wire_iter it;
		struct lt_msg d;
		lt_wire_iter_init(&it, &wb);
		for (uint32_t i = 0; i < k; i++) {
			ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_OK);
			assert_msg_eq(&d, &rs[i].m);
		}
		ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_EEOF);
		ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_EEOF);
		done += k;
		batches++;
	}
	printf("test_wire: %zu records in %zu batches round-tripped\n", done, batches);
	lt_buf_free(&b);
	free(rs);
}
END_TEST

START_TEST(record_roundtrip_alone)
{
	struct lt_buf b = LT_BUF_INIT;
	struct lt_msg m = gift_msg(), d;
	ck_assert_int_eq(lt_wire_msg_encode(&b, &m), LT_OK);
	ck_assert_int_eq(lt_wire_msg_decode(b.data, b.len, &d), LT_OK);
	assert_msg_eq(&d, &m);
	/* extra_normal is not on the wire: a decoded message always has its
	 * extra checked again by the encoder, whatever the sender said and
	 * whatever the caller's struct held before */
	m.extra_normal = true;
	lt_buf_reset(&b);
	ck_assert_int_eq(lt_wire_msg_encode(&b, &m), LT_OK);
	memset(&d, 0x45, sizeof(d));
	ck_assert_int_eq(lt_wire_msg_decode(b.data, b.len, &d), LT_OK);
	ck_assert(!d.extra_normal);
	/* Every proper prefix and one extra byte are refused. */
	for (size_t n = 0; n < b.len; n++)
		ck_assert_int_eq(lt_wire_msg_decode(b.data, n, &d), LT_EPROTO);
	lt_buf_u8(&b, 0);
	ck_assert_int_eq(lt_wire_msg_decode(b.data, b.len, &d), LT_EPROTO);
	lt_buf_free(&b);
}
END_TEST

/* ---- limits ---- */

START_TEST(field_limits_encode)
{
	static char big[LT_MSG_EXTRA_MAX + 1];
	memset(big, 'x', sizeof(big));
	struct lt_buf b = LT_BUF_INIT;
	ck_assert_int_eq(lt_wire_batch_begin(&b, LT_WIRE_KIND_DATA, 0, "s", 1), LT_OK);
	size_t hdr = b.len;
	struct {
		size_t off;
		uint32_t max;
	} f[] = {
		{offsetof(struct lt_msg, room), LT_MSG_ROOM_MAX},
		{offsetof(struct lt_msg, msg_id), LT_MSG_ID_MAX},
		{offsetof(struct lt_msg, user_id), LT_MSG_USER_ID_MAX},
		{offsetof(struct lt_msg, user_name), LT_MSG_USER_NAME_MAX},
		{offsetof(struct lt_msg, content), LT_MSG_CONTENT_MAX},
		{offsetof(struct lt_msg, extra), LT_MSG_EXTRA_MAX},
	};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		struct lt_msg m = chat_msg();
		struct lt_str *s = (struct lt_str *)((char *)&m + f[i].off);
		*s = (struct lt_str){big, f[i].max + 1};
		ck_assert_int_eq(lt_wire_batch_add(&b, &m), LT_ETOOBIG);
		ck_assert_uint_eq(b.len, hdr);
		ck_assert_int_eq(lt_buf_err(&b), LT_OK);
		struct lt_buf r = LT_BUF_INIT;
		ck_assert_int_eq(lt_wire_msg_encode(&r, &m), LT_ETOOBIG);
		ck_assert_uint_eq(r.len, 0);
		/* Exactly at the limit is fine and survives the trip. */
		s->len = f[i].max;
		ck_assert_int_eq(lt_wire_msg_encode(&r, &m), LT_OK);
		struct lt_msg d;
		ck_assert_int_eq(lt_wire_msg_decode(r.data, r.len, &d), LT_OK);
		assert_msg_eq(&d, &m);
		lt_buf_free(&r);
	}
	ck_assert_uint_eq(lt_wire_batch_count(&b), 0);
	/* Enum bytes the decoder would refuse are refused on the way out too. */
	struct lt_msg m = chat_msg();
	m.platform = LT_PLATFORM_COUNT;
	ck_assert_int_eq(lt_wire_batch_add(&b, &m), LT_EINVAL);
	m = chat_msg();
	m.type = LT_MSG_TYPE_COUNT;
	ck_assert_int_eq(lt_wire_batch_add(&b, &m), LT_EINVAL);
	m = chat_msg();
	m.flags = 0x80;
	ck_assert_int_eq(lt_wire_batch_add(&b, &m), LT_EINVAL);
	ck_assert_uint_eq(b.len, hdr);
	lt_buf_free(&b);
}
END_TEST

/* A record whose length field claims more than its limit, crafted by hand:
 * the decoder must refuse it although the bytes are all there. */
START_TEST(field_limits_decode)
{
	struct lt_msg m = chat_msg();
	m.room = LT_STR("");
	struct lt_buf b = LT_BUF_INIT;
	ck_assert_int_eq(lt_wire_msg_encode(&b, &m), LT_OK);
	/* Rebuild with a room of LT_MSG_ROOM_MAX + 1 bytes spliced in. */
	struct lt_buf c = LT_BUF_INIT;
	lt_buf_append(&c, b.data, 28);
	lt_buf_u16le(&c, LT_MSG_ROOM_MAX + 1);
	for (int i = 0; i < LT_MSG_ROOM_MAX + 1; i++)
		lt_buf_u8(&c, '1');
	lt_buf_append(&c, b.data + 30, b.len - 30);
	struct lt_msg d;
	ck_assert_int_eq(lt_wire_msg_decode(c.data, c.len, &d), LT_EPROTO);
	/* The same splice at exactly the limit decodes. */
	lt_buf_reset(&c);
	lt_buf_append(&c, b.data, 28);
	lt_buf_u16le(&c, LT_MSG_ROOM_MAX);
	for (int i = 0; i < LT_MSG_ROOM_MAX; i++)
		lt_buf_u8(&c, '1');
	lt_buf_append(&c, b.data + 30, b.len - 30);
	ck_assert_int_eq(lt_wire_msg_decode(c.data, c.len, &d), LT_OK);
	ck_assert_uint_eq(d.room.len, LT_MSG_ROOM_MAX);
	/* content length over 4096 and extra length over 8192 (u32 fields). */
	size_t content_len_off = b.len - 4 - m.extra.len - m.content.len - 4;
	lt_buf_reset(&c);
	lt_buf_append(&c, b.data, b.len);
	c.data[content_len_off] = 0x01;
	c.data[content_len_off + 1] = 0x10; /* 4097 */
	ck_assert_int_eq(lt_wire_msg_decode(c.data, c.len, &d), LT_EPROTO);
	lt_buf_reset(&c);
	lt_buf_append(&c, b.data, b.len);
	c.data[c.len - 1] = 0xff; /* extra len (empty) becomes huge */
	ck_assert_int_eq(lt_wire_msg_decode(c.data, c.len, &d), LT_EPROTO);
	lt_buf_free(&b);
	lt_buf_free(&c);
}
END_TEST

START_TEST(batch_full)
{
	struct lt_buf b = LT_BUF_INIT;
	struct lt_msg m = {0};
	ck_assert_int_eq(lt_wire_batch_begin(&b, LT_WIRE_KIND_DATA, 0, "full", 9), LT_OK);
	for (uint32_t i = 0; i < LT_WIRE_BATCH_MAX_RECORDS; i++)
		ck_assert_int_eq(lt_wire_batch_add(&b, &m), LT_OK);
	size_t len = b.len;
	ck_assert_int_eq(lt_wire_batch_add(&b, &m), LT_ETOOBIG);
	ck_assert_uint_eq(b.len, len);
	ck_assert_uint_eq(lt_wire_batch_count(&b), LT_WIRE_BATCH_MAX_RECORDS);
	struct lt_wire_batch wb;
	ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_OK);
	ck_assert_uint_eq(wb.count, LT_WIRE_BATCH_MAX_RECORDS);
	/* Announce one more than the maximum: refused as a bad count. */
	b.data[16] = 0x01;
	b.data[17] = 0x00;
	b.data[18] = 0x01;
	b.data[19] = 0x00;
	ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_EPROTO);
	lt_buf_free(&b);
}
END_TEST

START_TEST(batch_too_many_bytes)
{
	size_t n = (size_t)LT_WIRE_BATCH_MAX_BYTES + 1;
	uint8_t *p = calloc(1, n);
	ck_assert_ptr_nonnull(p);
	struct lt_buf b = LT_BUF_INIT;
	ck_assert_int_eq(lt_wire_batch_begin(&b, LT_WIRE_KIND_DATA, 0, "s", 1), LT_OK);
	memcpy(p, b.data, b.len);
	struct lt_wire_batch wb;
	ck_assert_int_eq(lt_wire_batch_decode(p, n, &wb), LT_EPROTO);
	/* The same header with a body just within the limit is accepted. */
	ck_assert_int_eq(lt_wire_batch_decode(p, n - 1, &wb), LT_OK);
	free(p);
	lt_buf_free(&b);
}
END_TEST

/* ---- malformed batches ---- */

static void build_three(struct lt_buf *b, struct lt_msg ms[3])
{
	ms[0] = chat_msg();
	ms[1] = gift_msg();
	ms[2] = chat_msg();
	ms[2].content = LT_STR("third");
	ck_assert_int_eq(lt_wire_batch_begin(b, LT_WIRE_KIND_DATA, 0, "bilibili:21452505", 77), LT_OK);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(lt_wire_batch_add(b, &ms[i]), LT_OK);
}

START_TEST(empty_inputs)
{
	struct lt_wire_batch wb;
	struct lt_msg d;
	ck_assert_int_eq(lt_wire_batch_decode(NULL, 0, &wb), LT_EPROTO);
	ck_assert_int_eq(lt_wire_batch_decode((const uint8_t *)"", 0, &wb), LT_EPROTO);
	ck_assert_int_eq(lt_wire_msg_decode(NULL, 0, &d), LT_EPROTO);
	ck_assert_int_eq(lt_wire_msg_decode((const uint8_t *)"", 0, &d), LT_EPROTO);
	/* An empty batch (count 0) is well-formed and iterates to EOF at once. */
	struct lt_buf b = LT_BUF_INIT;
	ck_assert_int_eq(lt_wire_batch_begin(&b, LT_WIRE_KIND_DATA, 0, "", 0), LT_OK);
	ck_assert_uint_eq(b.len, LT_WIRE_HDR_MIN + 1);
	ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_OK);
	ck_assert_str_eq(wb.source_id, "");
	struct lt_wire_iter it;
	lt_wire_iter_init(&it, &wb);
	ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_EEOF);
	lt_buf_free(&b);
}
END_TEST

START_TEST(truncated_every_prefix)
{
	struct lt_buf b = LT_BUF_INIT;
	struct lt_msg ms[3], d;
	build_three(&b, ms);
	size_t decoded_hdr = 0;
	for (size_t n = 0; n < b.len; n++) {
		uint8_t *cut = malloc(n ? n : 1); /* exact size, so ASan sees overreads */
		ck_assert_ptr_nonnull(cut);
		memcpy(cut, b.data, n);
		struct lt_wire_batch wb;
		int rc = lt_wire_batch_decode(cut, n, &wb);
		if (rc != LT_OK) {
			ck_assert_int_eq(rc, LT_EPROTO);
			free(cut);
			continue;
		}
		decoded_hdr++;
		/* The header survived: the cut must show up as an LT_EPROTO, and
		 * every record that does decode is one of the originals, in order. */
		struct lt_wire_iter it;
		lt_wire_iter_init(&it, &wb);
		int ok = 0, bad = 0;
		while ((rc = lt_wire_iter_next(&it, &d)) != LT_EEOF) {
			if (rc == LT_OK) {
				ck_assert_int_eq(bad, 0);
				assert_msg_eq(&d, &ms[ok]);
				ok++;
			} else {
				ck_assert_int_eq(rc, LT_EPROTO);
				bad++;
			}
		}
		ck_assert_int_ge(bad, 1);
		ck_assert_int_lt(ok, 3);
		free(cut);
	}
	/* count = 3 needs 12 body bytes before the header decodes at all. */
	ck_assert_uint_gt(decoded_hdr, 0);
	lt_buf_free(&b);
}
END_TEST

START_TEST(bad_header_fields)
{
	struct lt_buf b = LT_BUF_INIT;
	struct lt_msg ms[3];
	build_three(&b, ms);
	struct lt_wire_batch wb;
	struct {
		size_t off;
		uint8_t val;
		const char *what;
	} cases[] = {
		{0, 'X', "magic"},        {3, 0, "version 0"},   {3, 2, "version 2"},
		{4, 0, "kind 0"},         {4, 3, "kind 3"},      {6, 1, "reserved"},
		{7, 1, "reserved hi"},    {19, 0x80, "count huge"}, {20, 65, "source_id_len 65"},
		{20, 255, "source_id_len 255"}, {21, 0, "NUL in source_id"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t saved = b.data[cases[i].off];
		b.data[cases[i].off] = cases[i].val;
		ck_assert_msg(lt_wire_batch_decode(b.data, b.len, &wb) == LT_EPROTO, "accepted bad %s", cases[i].what);
		b.data[cases[i].off] = saved;
	}
	ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_OK);
	/* A count the body cannot hold (4 bytes per record at least). */
	uint32_t cnt = (uint32_t)((b.len - 21 - 17) / 4 + 1);
	b.data[16] = (uint8_t)cnt;
	b.data[17] = (uint8_t)(cnt >> 8);
	ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_EPROTO);
	lt_buf_free(&b);
}
END_TEST

START_TEST(source_id_limits)
{
	struct lt_buf b = LT_BUF_INIT;
	char src[LT_WIRE_SOURCE_MAX + 2];
	memset(src, 's', sizeof(src));
	src[LT_WIRE_SOURCE_MAX + 1] = 0;
	ck_assert_int_eq(lt_wire_batch_begin(&b, LT_WIRE_KIND_DATA, 0, src, 1), LT_EINVAL);
	ck_assert_int_eq(lt_wire_batch_begin(&b, LT_WIRE_KIND_DATA, 0, NULL, 1), LT_EINVAL);
	ck_assert_int_eq(lt_wire_batch_begin(&b, 9, 0, "x", 1), LT_EINVAL);
	src[LT_WIRE_SOURCE_MAX] = 0;
	ck_assert_int_eq(lt_wire_batch_begin(&b, LT_WIRE_KIND_DATA, 0, src, 1), LT_OK);
	struct lt_wire_batch wb;
	ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_OK);
	ck_assert_str_eq(wb.source_id, src);
	/* add on a buffer that holds no batch header */
	struct lt_buf e = LT_BUF_INIT;
	struct lt_msg m = chat_msg();
	ck_assert_int_eq(lt_wire_batch_add(&e, &m), LT_EINVAL);
	ck_assert_uint_eq(lt_wire_batch_count(&e), 0);
	lt_buf_free(&b);
}
END_TEST

/* A record that fails to decode is skipped; its batch-mates still decode. */
START_TEST(bad_record_skipped)
{
	struct lt_buf b = LT_BUF_INIT;
	struct lt_msg ms[3], d;
	build_three(&b, ms);
	size_t hdr = 21 + strlen("bilibili:21452505");
	size_t r0 = hdr + 4 + (b.data[hdr] | (b.data[hdr + 1] << 8));
	/* record 1's bytes start at r0 + 4: version, platform, type, flags */
	static const struct {
		size_t at;
		uint8_t val;
	} breaks[] = {{0, 2}, {1, LT_PLATFORM_COUNT}, {2, LT_MSG_TYPE_COUNT}, {3, 0x08}, {28, 0xff}};
	for (size_t k = 0; k < sizeof(breaks) / sizeof(breaks[0]); k++) {
		uint8_t saved = b.data[r0 + 4 + breaks[k].at];
		b.data[r0 + 4 + breaks[k].at] = breaks[k].val;
		struct lt_wire_batch wb;
		ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_OK);
		struct lt_wire_iter it;
		lt_wire_iter_init(&it, &wb);
		ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_OK);
		assert_msg_eq(&d, &ms[0]);
		ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_EPROTO);
		ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_OK);
		assert_msg_eq(&d, &ms[2]);
		ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_EEOF);
		b.data[r0 + 4 + breaks[k].at] = saved;
	}
	lt_buf_free(&b);
}
END_TEST

/* A record length past the end: the records before it decode, then one
 * LT_EPROTO, then LT_EEOF. */
START_TEST(record_len_past_end)
{
	struct lt_buf b = LT_BUF_INIT;
	struct lt_msg ms[3], d;
	build_three(&b, ms);
	size_t hdr = 21 + strlen("bilibili:21452505");
	size_t r0 = hdr + 4 + (b.data[hdr] | (b.data[hdr + 1] << 8));
	b.data[r0 + 3] = 0x7f; /* record 1's length: ~2 GB */
	struct lt_wire_batch wb;
	ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_OK);
	struct lt_wire_iter it;
	lt_wire_iter_init(&it, &wb);
	ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_OK);
	assert_msg_eq(&d, &ms[0]);
	ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_EPROTO);
	ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_EEOF);
	ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_EEOF);
	lt_buf_free(&b);
}
END_TEST

/* The announced count disagrees with the records present. */
START_TEST(count_mismatch)
{
	struct lt_buf b = LT_BUF_INIT;
	struct lt_msg ms[3], d;
	build_three(&b, ms);
	struct lt_wire_batch wb;
	struct lt_wire_iter it;
	/* count 2 of 3: two records, then the leftover bytes are flagged. */
	b.data[16] = 2;
	ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_OK);
	lt_wire_iter_init(&it, &wb);
	ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_OK);
	ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_OK);
	ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_EPROTO);
	ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_EEOF);
	/* count 4 of 3: three records, then the missing fourth is LT_EPROTO. */
	b.data[16] = 4;
	ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_OK);
	lt_wire_iter_init(&it, &wb);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_OK);
		assert_msg_eq(&d, &ms[i]);
	}
	ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_EPROTO);
	ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_EEOF);
	lt_buf_free(&b);
}
END_TEST

START_TEST(ack_roundtrip)
{
	struct lt_buf b = LT_BUF_INIT;
	ck_assert_int_eq(lt_wire_ack_encode(&b, LT_WIRE_CONSUMER_PERSISTER, "kook:42", UINT64_MAX), LT_OK);
	struct lt_wire_batch wb;
	ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_OK);
	ck_assert_uint_eq(wb.kind, LT_WIRE_KIND_ACK);
	ck_assert_uint_eq(wb.flags, LT_WIRE_CONSUMER_PERSISTER);
	ck_assert_uint_eq(wb.seq, UINT64_MAX);
	ck_assert_uint_eq(wb.count, 0);
	ck_assert_str_eq(wb.source_id, "kook:42");
	ck_assert_uint_eq(wb.body_len, 0);
	/* Records cannot be added to an ack... */
	struct lt_msg m = chat_msg();
	size_t len = b.len;
	ck_assert_int_eq(lt_wire_batch_add(&b, &m), LT_EINVAL);
	ck_assert_uint_eq(b.len, len);
	/* ...and an ack carrying anything is out of shape. */
	lt_buf_u32le(&b, 0);
	ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_EPROTO);
	b.len -= 4;
	b.data[16] = 1;
	ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_EPROTO);
	lt_buf_free(&b);
}
END_TEST

START_TEST(ack_list_roundtrip)
{
	struct lt_buf b = LT_BUF_INIT;
	ck_assert_int_eq(lt_wire_acks_begin(&b, LT_WIRE_CONSUMER_PROCESSOR), LT_OK);
	ck_assert_int_eq(lt_wire_acks_add(&b, "kook:42", 7, 7), LT_OK);
	ck_assert_int_eq(lt_wire_acks_add(&b, "bilibili:21452505", 17, UINT64_MAX), LT_OK);
	ck_assert_int_eq(lt_wire_acks_add(&b, "kook:42", 7, 8), LT_OK);
	/* what no source can be */
	ck_assert_int_eq(lt_wire_acks_add(&b, "", 0, 1), LT_EINVAL);
	ck_assert_int_eq(lt_wire_acks_add(&b, "a\0b", 3, 1), LT_EINVAL);
	char longsrc[LT_WIRE_SOURCE_MAX + 1];
	memset(longsrc, 'x', sizeof(longsrc));
	ck_assert_int_eq(lt_wire_acks_add(&b, longsrc, sizeof(longsrc), 1), LT_EINVAL);
	ck_assert_int_eq(lt_wire_acks_add(&b, longsrc, LT_WIRE_SOURCE_MAX, 9), LT_OK);
	/* 21-byte header, then 1 + len + 8 per entry */
	ck_assert_uint_eq(b.len, 21 + (1 + 7 + 8) * 2 + (1 + 17 + 8) + (1 + 64 + 8));
	struct lt_wire_batch wb;
	ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_OK);
	ck_assert_uint_eq(wb.kind, LT_WIRE_KIND_ACKS);
	ck_assert_uint_eq(wb.flags, LT_WIRE_CONSUMER_PROCESSOR);
	ck_assert_uint_eq(wb.count, 4);
	ck_assert_str_eq(wb.source_id, "");
	struct lt_wire_acks_iter it;
	const char *src;
	size_t sl;
	uint64_t seq;
	lt_wire_acks_iter_init(&it, &wb);
	ck_assert_int_eq(lt_wire_acks_next(&it, &src, &sl, &seq), LT_OK);
	ck_assert(sl == 7 && memcmp(src, "kook:42", 7) == 0 && seq == 7);
	ck_assert_int_eq(lt_wire_acks_next(&it, &src, &sl, &seq), LT_OK);
	ck_assert(sl == 17 && memcmp(src, "bilibili:21452505", 17) == 0 && seq == UINT64_MAX);
	ck_assert_int_eq(lt_wire_acks_next(&it, &src, &sl, &seq), LT_OK);
	ck_assert(sl == 7 && seq == 8);
	ck_assert_int_eq(lt_wire_acks_next(&it, &src, &sl, &seq), LT_OK);
	ck_assert(sl == 64 && seq == 9);
	ck_assert_int_eq(lt_wire_acks_next(&it, &src, &sl, &seq), LT_EEOF);
	ck_assert_int_eq(lt_wire_acks_next(&it, &src, &sl, &seq), LT_EEOF);
	/* Records cannot go into an ack list, nor entries into a batch. */
	struct lt_msg m = chat_msg();
	ck_assert_int_eq(lt_wire_batch_add(&b, &m), LT_EINVAL);
	struct lt_buf d = LT_BUF_INIT;
	ck_assert_int_eq(lt_wire_batch_begin(&d, LT_WIRE_KIND_DATA, 0, "x", 1), LT_OK);
	ck_assert_int_eq(lt_wire_acks_add(&d, "x", 1, 1), LT_EINVAL);
	/* An iterator over a data batch is empty. */
	ck_assert_int_eq(lt_wire_batch_decode(d.data, d.len, &wb), LT_OK);
	lt_wire_acks_iter_init(&it, &wb);
	ck_assert_int_eq(lt_wire_acks_next(&it, &src, &sl, &seq), LT_EEOF);
	lt_buf_free(&d);
	lt_buf_free(&b);
}
END_TEST

/* Ack lists out of shape: the decoder or the iterator says so, and never
 * reads past the input. */
START_TEST(ack_list_malformed)
{
	struct lt_buf b = LT_BUF_INIT;
	struct lt_wire_batch wb;
	struct lt_wire_acks_iter it;
	const char *src;
	size_t sl;
	uint64_t seq;
	ck_assert_int_eq(lt_wire_acks_begin(&b, LT_WIRE_CONSUMER_PERSISTER), LT_OK);
	ck_assert_int_eq(lt_wire_acks_add(&b, "douyin:1", 8, 1), LT_OK);
	ck_assert_int_eq(lt_wire_acks_add(&b, "douyin:2", 8, 2), LT_OK);
	size_t len = b.len;
	/* cut short: the second entry (17 bytes each) runs past the body; a
	 * body under 10 bytes an entry does not even decode */
	ck_assert_int_eq(lt_wire_batch_decode(b.data, 21 + 20, &wb), LT_OK);
	lt_wire_acks_iter_init(&it, &wb);
	ck_assert_int_eq(lt_wire_acks_next(&it, &src, &sl, &seq), LT_OK);
	ck_assert_int_eq(lt_wire_acks_next(&it, &src, &sl, &seq), LT_EPROTO);
	ck_assert_int_eq(lt_wire_acks_next(&it, &src, &sl, &seq), LT_EEOF);
	ck_assert_int_eq(lt_wire_batch_decode(b.data, 21 + 19, &wb), LT_EPROTO);
	/* a trailing byte after the announced entries */
	lt_buf_append(&b, "z", 1);
	ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_OK);
	lt_wire_acks_iter_init(&it, &wb);
	ck_assert_int_eq(lt_wire_acks_next(&it, &src, &sl, &seq), LT_OK);
	ck_assert_int_eq(lt_wire_acks_next(&it, &src, &sl, &seq), LT_OK);
	ck_assert_int_eq(lt_wire_acks_next(&it, &src, &sl, &seq), LT_EPROTO);
	b.len = len;
	/* an entry whose source length is 0, or runs past the body, or holds a NUL */
	b.data[21] = 0;
	ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_OK);
	lt_wire_acks_iter_init(&it, &wb);
	ck_assert_int_eq(lt_wire_acks_next(&it, &src, &sl, &seq), LT_EPROTO);
	b.data[21] = 200;
	ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_OK);
	lt_wire_acks_iter_init(&it, &wb);
	ck_assert_int_eq(lt_wire_acks_next(&it, &src, &sl, &seq), LT_EPROTO);
	b.data[21] = 8;
	b.data[23] = 0;
	ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_OK);
	lt_wire_acks_iter_init(&it, &wb);
	ck_assert_int_eq(lt_wire_acks_next(&it, &src, &sl, &seq), LT_EPROTO);
	/* a list with a seq in its header */
	b.data[21] = 8;
	b.data[23] = 'o';
	ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_OK);
	b.data[8] = 1;
	ck_assert_int_eq(lt_wire_batch_decode(b.data, b.len, &wb), LT_EPROTO);
	/* a list that names a source in its header */
	struct lt_buf h = LT_BUF_INIT;
	ck_assert_int_eq(lt_wire_batch_begin(&h, LT_WIRE_KIND_ACKS, LT_WIRE_CONSUMER_PERSISTER, "s", 0), LT_OK);
	ck_assert_int_eq(lt_wire_batch_decode(h.data, h.len, &wb), LT_EPROTO);
	lt_buf_free(&h);
	lt_buf_free(&b);
}
END_TEST

/* begin resets a buffer that carries a sticky error from earlier use. */
START_TEST(begin_resets)
{
	struct lt_buf b;
	lt_buf_init(&b, 64);
	lt_buf_append(&b, "0123456789012345678901234567890123456789012345678901234567890123456789", 70);
	ck_assert_int_eq(lt_buf_err(&b), LT_ETOOBIG);
	ck_assert_int_eq(lt_wire_batch_begin(&b, LT_WIRE_KIND_DATA, 0, "x", 5), LT_OK);
	ck_assert_uint_eq(b.len, 22);
	/* The buffer's own limit is a sticky error for add. */
	struct lt_msg m = chat_msg();
	m.content = (struct lt_str){"0123456789012345678901234567890123456789012345678901234567890123456789", 70};
	ck_assert_int_eq(lt_wire_batch_add(&b, &m), LT_ETOOBIG);
	ck_assert_int_eq(lt_buf_err(&b), LT_ETOOBIG);
	ck_assert_uint_eq(lt_wire_batch_count(&b), 0);
	lt_buf_free(&b);
}
END_TEST

/* ---- golden bytes ---- */

struct golden {
	const char *file;
	void (*build)(struct lt_buf *b);
};

static void golden_batch(struct lt_buf *b)
{
	struct lt_msg ms[3];
	build_three(b, ms);
}

static void golden_ack(struct lt_buf *b)
{
	ck_assert_int_eq(lt_wire_ack_encode(b, LT_WIRE_CONSUMER_PROCESSOR, "bilibili:21452505", 77), LT_OK);
}

static void golden_record(struct lt_buf *b)
{
	struct lt_msg m = gift_msg();
	lt_buf_reset(b);
	ck_assert_int_eq(lt_wire_msg_encode(b, &m), LT_OK);
}

static const struct golden goldens[] = {
	{"batch_v1.bin", golden_batch},
	{"ack_v1.bin", golden_ack},
	{"record_gift_v1.bin", golden_record},
};

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct lt_buf b = LT_BUF_INIT;
	uint8_t tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		lt_buf_append(&b, tmp, n);
	fclose(f);
	return lt_buf_steal(&b, len);
}

START_TEST(golden_bytes)
{
	const char *wdir = getenv("LT_GOLDEN_WRITE");
	for (size_t i = 0; i < sizeof(goldens) / sizeof(goldens[0]); i++) {
		struct lt_buf b = LT_BUF_INIT;
		goldens[i].build(&b);
		char path[4096];
		if (wdir && *wdir) {
			snprintf(path, sizeof(path), "%s/%s", wdir, goldens[i].file);
			FILE *f = fopen(path, "wb");
			ck_assert_ptr_nonnull(f);
			ck_assert_uint_eq(fwrite(b.data, 1, b.len, f), b.len);
			fclose(f);
		}
		snprintf(path, sizeof(path), "%s/tests/unit/golden/%s", lt_test_srcdir(), goldens[i].file);
		size_t n = 0;
		uint8_t *want = slurp(path, &n);
		ck_assert_msg(want != NULL, "missing fixture %s", path);
		ck_assert_msg(n == b.len && memcmp(want, b.data, n) == 0,
			      "%s: encoder output differs from the checked-in bytes (%zu vs %zu bytes)", goldens[i].file,
			      b.len, n);
		free(want);
		lt_buf_free(&b);
	}
}
END_TEST

static uint8_t *golden_load(const char *name, size_t *n)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/tests/unit/golden/%s", lt_test_srcdir(), name);
	uint8_t *p = slurp(path, n);
	ck_assert_msg(p != NULL, "missing fixture %s", path);
	return p;
}

/* Decode the checked-in files field by field against values written here by
 * hand, and spot-check the layout offsets wire.h documents. */
START_TEST(golden_decode)
{
	size_t n;
	uint8_t *p = golden_load("batch_v1.bin", &n);
	ck_assert_uint_ge(n, 38);
	ck_assert_mem_eq(p, "LTB\x01\x01\x00\x00\x00", 8);
	ck_assert_mem_eq(p + 8, "\x4d\0\0\0\0\0\0\0", 8); /* seq 77 */
	ck_assert_mem_eq(p + 16, "\x03\0\0\0\x11", 5);     /* count 3, source_id_len 17 */
	ck_assert_mem_eq(p + 21, "bilibili:21452505", 17);
	struct lt_wire_batch wb;
	ck_assert_int_eq(lt_wire_batch_decode(p, n, &wb), LT_OK);
	ck_assert_uint_eq(wb.kind, LT_WIRE_KIND_DATA);
	ck_assert_uint_eq(wb.seq, 77);
	ck_assert_uint_eq(wb.count, 3);
	ck_assert_str_eq(wb.source_id, "bilibili:21452505");
	struct lt_wire_iter it;
	struct lt_msg d;
	lt_wire_iter_init(&it, &wb);
	ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_OK);
	ck_assert_uint_eq(d.platform, 1);
	ck_assert_uint_eq(d.type, 0);
	ck_assert_uint_eq(d.flags, 0);
	ck_assert_int_eq(d.ts, 1732212345123);
	ck_assert_int_eq(d.count, 0);
	ck_assert_int_eq(d.value, 0);
	ck_assert(lt_str_eqc(d.room, "21452505"));
	ck_assert(lt_str_eqc(d.msg_id, "b3f1c0de"));
	ck_assert(lt_str_eqc(d.user_id, "123"));
	ck_assert(lt_str_eqc(d.user_name, "\xe5\xb0\x8f\xe6\x98\x8e"));
	ck_assert(lt_str_eqc(d.content, "\xe5\x93\x88\xe5\x93\x88 666"));
	ck_assert_uint_eq(d.extra.len, 0);
	ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_OK);
	ck_assert_uint_eq(d.platform, 2);
	ck_assert_uint_eq(d.type, 1);
	ck_assert_uint_eq(d.flags, LT_MSGF_TRUNCATED);
	ck_assert_int_eq(d.ts, -1);
	ck_assert_int_eq(d.count, 3);
	ck_assert_int_eq(d.value, -300);
	ck_assert(lt_str_eqc(d.room, "7301"));
	ck_assert(lt_str_eqc(d.msg_id, "g-1"));
	ck_assert_uint_eq(d.user_id.len, 0);
	ck_assert(lt_str_eqc(d.user_name, "anon"));
	ck_assert_uint_eq(d.content.len, 0);
	ck_assert(lt_str_eqc(d.extra, "{\"gift_name\":\"rose\",\"count\":3}"));
	ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_OK);
	ck_assert(lt_str_eqc(d.content, "third"));
	ck_assert_int_eq(lt_wire_iter_next(&it, &d), LT_EEOF);
	free(p);

	p = golden_load("ack_v1.bin", &n);
	ck_assert_uint_eq(n, 38);
	ck_assert_mem_eq(p, "LTB\x01\x02\x01\x00\x00", 8);
	ck_assert_int_eq(lt_wire_batch_decode(p, n, &wb), LT_OK);
	ck_assert_uint_eq(wb.kind, LT_WIRE_KIND_ACK);
	ck_assert_uint_eq(wb.flags, LT_WIRE_CONSUMER_PROCESSOR);
	ck_assert_uint_eq(wb.seq, 77);
	ck_assert_str_eq(wb.source_id, "bilibili:21452505");
	free(p);

	p = golden_load("record_gift_v1.bin", &n);
	/* 28 fixed + 4 × u16 + 2 × u32 + strings 4 + 3 + 0 + 4 + 0 + 30 */
	ck_assert_uint_eq(n, 28 + 8 + 8 + 41);
	ck_assert_mem_eq(p, "\x01\x02\x01\x02\xff\xff\xff\xff\xff\xff\xff\xff\x03\0\0\0\0\0\0\0", 20);
	ck_assert_mem_eq(p + 20, "\xd4\xfe\xff\xff\xff\xff\xff\xff\x04\x00" "7301", 14); /* value -300, room */
	ck_assert_int_eq(lt_wire_msg_decode(p, n, &d), LT_OK);
	ck_assert_int_eq(d.value, -300);
	ck_assert(lt_str_eqc(d.extra, "{\"gift_name\":\"rose\",\"count\":3}"));
	free(p);
}
END_TEST

static Suite *wire_suite(void)
{
	Suite *s = suite_create("wire");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, roundtrip_random);
	tcase_add_test(tc, record_roundtrip_alone);
	tcase_add_test(tc, field_limits_encode);
	tcase_add_test(tc, field_limits_decode);
	tcase_add_test(tc, batch_full);
	tcase_add_test(tc, batch_too_many_bytes);
	tcase_add_test(tc, empty_inputs);
	tcase_add_test(tc, truncated_every_prefix);
	tcase_add_test(tc, bad_header_fields);
	tcase_add_test(tc, source_id_limits);
	tcase_add_test(tc, bad_record_skipped);
	tcase_add_test(tc, record_len_past_end);
	tcase_add_test(tc, count_mismatch);
	tcase_add_test(tc, ack_roundtrip);
	tcase_add_test(tc, ack_list_roundtrip);
	tcase_add_test(tc, ack_list_malformed);
	tcase_add_test(tc, begin_resets);
	tcase_add_test(tc, golden_bytes);
	tcase_add_test(tc, golden_decode);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	seed_rng();
	return lt_test_run_suite(wire_suite());
}
