/* SPDX-License-Identifier: MIT */
/*
 * wire: encoder and bounds-checked decoder of the LiveMessage record, the
 * batch that carries records from a fetcher to its consumers, and the ack
 * that flows back (layout in wire.h).
 *
 * The decoder is strict: every length is checked against what is left of the
 * input before it is used and against its msg.h limit, enum bytes must name a
 * known platform and type, unknown flag bits and non-zero reserved bytes are
 * refused, and a record must be consumed exactly by its length. Anything out
 * of shape is LT_EPROTO; nothing is ever read past the input. Decoded strings
 * are views into the input (not copied, not NUL-terminated).
 *
 * Byte offsets of the batch header, for readers of a hex dump:
 *   0 "LTB" | 3 version | 4 kind | 5 flags | 6 reserved u16 | 8 seq u64 |
 *   16 count u32 | 20 source_id_len u8 | 21 source_id | records
 */
#include "common/wire.h"

#include <string.h>

#include "common/err.h"

#define BATCH_OFF_COUNT 16
#define BATCH_OFF_SRCLEN 20
#define REC_FIXED 28 /* version, platform, type, flags, ts, count, value */
#define REC_KNOWN_FLAGS (LT_MSGF_ANONYMOUS | LT_MSGF_TRUNCATED | LT_MSGF_REPAIRED)

static inline void put16(uint8_t *d, uint16_t v)
{
	d[0] = (uint8_t)v;
	d[1] = (uint8_t)(v >> 8);
}

static inline void put32(uint8_t *d, uint32_t v)
{
	d[0] = (uint8_t)v;
	d[1] = (uint8_t)(v >> 8);
	d[2] = (uint8_t)(v >> 16);
	d[3] = (uint8_t)(v >> 24);
}

static inline void put64(uint8_t *d, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		d[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t get64(const uint8_t *p)
{
	uint64_t x = 0;
	for (int i = 7; i >= 0; i--)
		x = (x << 8) | p[i];
	return x;
}

/* Size of m's encoded record, or 0 if a field is over its limit or an enum
 * byte is out of range (the decoder would refuse the record). */
static size_t rec_size(const struct lt_msg *m)
{
	if (m->room.len > LT_MSG_ROOM_MAX || m->msg_id.len > LT_MSG_ID_MAX ||
	    m->user_id.len > LT_MSG_USER_ID_MAX || m->user_name.len > LT_MSG_USER_NAME_MAX ||
	    m->content.len > LT_MSG_CONTENT_MAX || m->extra.len > LT_MSG_EXTRA_MAX)
		return 0;
	return REC_FIXED + 4 * 2 + 2 * 4 + (size_t)m->room.len + m->msg_id.len + m->user_id.len +
	       m->user_name.len + m->content.len + m->extra.len;
}

static int rec_check(const struct lt_msg *m)
{
	if (m->platform >= LT_PLATFORM_COUNT || m->type >= LT_MSG_TYPE_COUNT || (m->flags & ~REC_KNOWN_FLAGS))
		return LT_EINVAL;
	return LT_OK;
}

static inline uint8_t *put_str16(uint8_t *d, struct lt_str s)
{
	put16(d, (uint16_t)s.len);
	if (s.len)
		memcpy(d + 2, s.p, s.len);
	return d + 2 + s.len;
}

static inline uint8_t *put_str32(uint8_t *d, struct lt_str s)
{
	put32(d, s.len);
	if (s.len)
		memcpy(d + 4, s.p, s.len);
	return d + 4 + s.len;
}

/* Write m's record at d, which has room for rec_size(m) bytes. */
static void rec_write(uint8_t *d, const struct lt_msg *m)
{
	d[0] = LT_WIRE_VERSION;
	d[1] = m->platform;
	d[2] = m->type;
	d[3] = m->flags;
	put64(d + 4, (uint64_t)m->ts);
	put64(d + 12, (uint64_t)m->count);
	put64(d + 20, (uint64_t)m->value);
	d += REC_FIXED;
	d = put_str16(d, m->room);
	d = put_str16(d, m->msg_id);
	d = put_str16(d, m->user_id);
	d = put_str16(d, m->user_name);
	d = put_str32(d, m->content);
	put_str32(d, m->extra);
}

/* Append m's record to out. Returns LT_ETOOBIG when a field is over its
 * limit, LT_EINVAL for an unknown platform, type or flag bit (in both cases
 * out is untouched), or out's sticky error. m's strings stay the caller's. */
int lt_wire_msg_encode(struct lt_buf *out, const struct lt_msg *m)
{
	int rc = rec_check(m);
	if (rc)
		return rc;
	size_t n = rec_size(m);
	if (!n)
		return LT_ETOOBIG;
	if ((rc = lt_buf_reserve(out, n)))
		return rc;
	rec_write(out->data + out->len, m);
	out->len += n;
	out->data[out->len] = 0;
	return LT_OK;
}

static int get_str16(const uint8_t *p, size_t n, size_t *off, uint32_t max, struct lt_str *s)
{
	if (n - *off < 2)
		return LT_EPROTO;
	uint32_t l = get16(p + *off);
	*off += 2;
	if (l > max || n - *off < l)
		return LT_EPROTO;
	s->p = (const char *)(p + *off);
	s->len = l;
	*off += l;
	return LT_OK;
}

static int get_str32(const uint8_t *p, size_t n, size_t *off, uint32_t max, struct lt_str *s)
{
	if (n - *off < 4)
		return LT_EPROTO;
	uint32_t l = get32(p + *off);
	*off += 4;
	if (l > max || n - *off < l)
		return LT_EPROTO;
	s->p = (const char *)(p + *off);
	s->len = l;
	*off += l;
	return LT_OK;
}

/* Decode the record p[0..n), which must be consumed exactly. Returns LT_OK
 * with *m filled (its strings point into p, which the caller keeps alive as
 * long as m is used) or LT_EPROTO with *m untouched. */
int lt_wire_msg_decode(const uint8_t *p, size_t n, struct lt_msg *m)
{
	struct lt_msg t;
	size_t off = REC_FIXED;
	if (!p || n < REC_FIXED)
		return LT_EPROTO;
	if (p[0] != LT_WIRE_VERSION || p[1] >= LT_PLATFORM_COUNT || p[2] >= LT_MSG_TYPE_COUNT ||
	    (p[3] & ~REC_KNOWN_FLAGS))
		return LT_EPROTO;
	t.platform = p[1];
	t.type = p[2];
	t.flags = p[3];
	t.extra_normal = false; /* not on the wire: a decoded extra is checked again */
	t.ts = (int64_t)get64(p + 4);
	t.count = (int64_t)get64(p + 12);
	t.value = (int64_t)get64(p + 20);
	if (get_str16(p, n, &off, LT_MSG_ROOM_MAX, &t.room) ||
	    get_str16(p, n, &off, LT_MSG_ID_MAX, &t.msg_id) ||
	    get_str16(p, n, &off, LT_MSG_USER_ID_MAX, &t.user_id) ||
	    get_str16(p, n, &off, LT_MSG_USER_NAME_MAX, &t.user_name) ||
	    get_str32(p, n, &off, LT_MSG_CONTENT_MAX, &t.content) ||
	    get_str32(p, n, &off, LT_MSG_EXTRA_MAX, &t.extra))
		return LT_EPROTO;
	if (off != n)
		return LT_EPROTO;
	*m = t;
	return LT_OK;
}

/* Reset out and write a batch header with count 0. Returns LT_EINVAL for a
 * NULL or over-long (> LT_WIRE_SOURCE_MAX) source_id or an unknown kind,
 * else out's sticky error. source_id is copied. */
int lt_wire_batch_begin(struct lt_buf *out, uint8_t kind, uint8_t flags, const char *source_id, uint64_t seq)
{
	if (!source_id || (kind != LT_WIRE_KIND_DATA && kind != LT_WIRE_KIND_ACK && kind != LT_WIRE_KIND_ACKS))
		return LT_EINVAL;
	size_t sl = strlen(source_id);
	if (sl > LT_WIRE_SOURCE_MAX)
		return LT_EINVAL;
	lt_buf_reset(out);
	int rc = lt_buf_reserve(out, LT_WIRE_HDR_MIN + 1 + sl);
	if (rc)
		return rc;
	uint8_t *d = out->data;
	memcpy(d, "LTB", 3);
	d[3] = LT_WIRE_VERSION;
	d[4] = kind;
	d[5] = flags;
	put16(d + 6, 0);
	put64(d + 8, seq);
	put32(d + BATCH_OFF_COUNT, 0);
	d[BATCH_OFF_SRCLEN] = (uint8_t)sl;
	memcpy(d + BATCH_OFF_SRCLEN + 1, source_id, sl);
	out->len = LT_WIRE_HDR_MIN + 1 + sl;
	out->data[out->len] = 0;
	return LT_OK;
}

/* Append m as a length-prefixed record to the batch in out (started by
 * lt_wire_batch_begin) and bump its count. Returns LT_OK; LT_ETOOBIG when m
 * is over a field limit or the batch is full (LT_WIRE_BATCH_MAX_RECORDS or
 * LT_WIRE_BATCH_MAX_BYTES) and LT_EINVAL for a bad enum or a buffer that holds
 * no DATA batch header (acks carry no records): in those cases the batch is
 * unchanged and stays usable.
 * Otherwise out's sticky error (allocation, out's own limit). */
int lt_wire_batch_add(struct lt_buf *out, const struct lt_msg *m)
{
	if (out->err)
		return out->err;
	if (out->len < LT_WIRE_HDR_MIN + 1 || !out->data || memcmp(out->data, "LTB", 3) != 0 ||
	    out->data[4] != LT_WIRE_KIND_DATA)
		return LT_EINVAL;
	int rc = rec_check(m);
	if (rc)
		return rc;
	size_t n = rec_size(m);
	uint32_t count = get32(out->data + BATCH_OFF_COUNT);
	if (!n || count >= LT_WIRE_BATCH_MAX_RECORDS || out->len + 4 + n > LT_WIRE_BATCH_MAX_BYTES)
		return LT_ETOOBIG;
	if ((rc = lt_buf_reserve(out, 4 + n)))
		return rc;
	uint8_t *d = out->data + out->len;
	put32(d, (uint32_t)n);
	rec_write(d + 4, m);
	out->len += 4 + n;
	out->data[out->len] = 0;
	put32(out->data + BATCH_OFF_COUNT, count + 1);
	return LT_OK;
}

/* The record count of the batch being built in out; 0 if out holds none. */
uint32_t lt_wire_batch_count(const struct lt_buf *out)
{
	if (out->err || !out->data || out->len < LT_WIRE_HDR_MIN + 1)
		return 0;
	return get32(out->data + BATCH_OFF_COUNT);
}

/* The smallest ack-list entry: a one-byte source_id. */
#define ACKS_ENTRY_MIN (1 + 1 + 8)

/* Reset out to an ack: "batch (source_id, seq) applied by consumer". Same
 * returns as lt_wire_batch_begin. */
int lt_wire_ack_encode(struct lt_buf *out, uint8_t consumer, const char *source_id, uint64_t seq)
{
	return lt_wire_batch_begin(out, LT_WIRE_KIND_ACK, consumer, source_id, seq);
}

/* Decode the header of the batch or ack p[0..n). Returns LT_OK with *b filled
 * (b->body is a view into p: the caller keeps p alive while it iterates) or
 * LT_EPROTO with *b untouched: short input, bad magic, version, kind or
 * reserved bytes, a source_id that is too long or holds a NUL, an ack list
 * with a source_id or a seq in its header, a count over
 * LT_WIRE_BATCH_MAX_RECORDS or over what the body could possibly hold (4 bytes
 * per record at least), an ack that carries records, or n over
 * LT_WIRE_BATCH_MAX_BYTES. */
int lt_wire_batch_decode(const uint8_t *p, size_t n, struct lt_wire_batch *b)
{
	if (!p || n < LT_WIRE_HDR_MIN + 1 || n > LT_WIRE_BATCH_MAX_BYTES)
		return LT_EPROTO;
	if (memcmp(p, "LTB", 3) != 0 || p[3] != LT_WIRE_VERSION)
		return LT_EPROTO;
	uint8_t kind = p[4];
	if ((kind != LT_WIRE_KIND_DATA && kind != LT_WIRE_KIND_ACK && kind != LT_WIRE_KIND_ACKS) ||
	    get16(p + 6) != 0)
		return LT_EPROTO;
	uint32_t count = get32(p + BATCH_OFF_COUNT);
	size_t sl = p[BATCH_OFF_SRCLEN];
	size_t hdr = LT_WIRE_HDR_MIN + 1 + sl;
	if (sl > LT_WIRE_SOURCE_MAX || n < hdr || memchr(p + BATCH_OFF_SRCLEN + 1, 0, sl))
		return LT_EPROTO;
	size_t body_len = n - hdr;
	if (count > LT_WIRE_BATCH_MAX_RECORDS || (uint64_t)count * 4 > body_len)
		return LT_EPROTO;
	if (kind == LT_WIRE_KIND_ACK && (count != 0 || body_len != 0))
		return LT_EPROTO;
	if (kind == LT_WIRE_KIND_ACKS && (sl != 0 || get64(p + 8) != 0 || (uint64_t)count * ACKS_ENTRY_MIN > body_len))
		return LT_EPROTO;
	b->kind = kind;
	b->flags = p[5];
	b->seq = get64(p + 8);
	b->count = count;
	memcpy(b->source_id, p + BATCH_OFF_SRCLEN + 1, sl);
	b->source_id[sl] = '\0';
	b->body = p + hdr;
	b->body_len = body_len;
	return LT_OK;
}

/* Start iterating b's records; b's input must outlive the iterator. */
void lt_wire_iter_init(struct lt_wire_iter *it, const struct lt_wire_batch *b)
{
	it->p = b->body;
	it->len = b->body_len;
	it->off = 0;
	it->left = b->count;
	it->broken = 0;
}

/* Next record: LT_OK with *m filled (strings point into the batch input);
 * LT_EPROTO for a record that does not decode (it is skipped, the next call
 * goes on with its batch-mates); LT_EPROTO once when a record length runs past
 * the body, or when bytes are left over after the announced count, and
 * LT_EEOF from then on. */
int lt_wire_iter_next(struct lt_wire_iter *it, struct lt_msg *m)
{
	if (it->broken)
		return LT_EEOF;
	if (it->left == 0) {
		if (it->off != it->len) {
			it->broken = 1;
			return LT_EPROTO;
		}
		return LT_EEOF;
	}
	size_t rest = it->len - it->off;
	uint32_t rl;
	if (rest < 4 || (rl = get32(it->p + it->off), rest - 4 < rl)) {
		it->broken = 1;
		it->left = 0;
		return LT_EPROTO;
	}
	const uint8_t *rec = it->p + it->off + 4;
	it->off += 4 + (size_t)rl;
	it->left--;
	return lt_wire_msg_decode(rec, rl, m);
}

/* ---- ack lists ---- */

int lt_wire_acks_begin(struct lt_buf *out, uint8_t consumer)
{
	return lt_wire_batch_begin(out, LT_WIRE_KIND_ACKS, consumer, "", 0);
}

int lt_wire_acks_add(struct lt_buf *out, const char *source_id, size_t len, uint64_t seq)
{
	if (out->err)
		return out->err;
	if (out->len < LT_WIRE_HDR_MIN + 1 || !out->data ||
	    memcmp(out->data, "LTB", 3) != 0 || out->data[4] != LT_WIRE_KIND_ACKS)
		return LT_EINVAL;
	if (!source_id || len == 0 || len > LT_WIRE_SOURCE_MAX || memchr(source_id, 0, len))
		return LT_EINVAL;
	uint32_t count = get32(out->data + BATCH_OFF_COUNT);
	if (count >= LT_WIRE_BATCH_MAX_RECORDS)
		return LT_ETOOBIG;
	int rc = lt_buf_reserve(out, 1 + len + 8);
	if (rc)
		return rc;
	uint8_t *d = out->data + out->len;
	d[0] = (uint8_t)len;
	memcpy(d + 1, source_id, len);
	put64(d + 1 + len, seq);
	out->len += 1 + len + 8;
	out->data[out->len] = 0;
	put32(out->data + BATCH_OFF_COUNT, count + 1);
	return LT_OK;
}

void lt_wire_acks_iter_init(struct lt_wire_acks_iter *it, const struct lt_wire_batch *b)
{
	it->p = b->body;
	it->len = b->kind == LT_WIRE_KIND_ACKS ? b->body_len : 0;
	it->off = 0;
	it->left = b->kind == LT_WIRE_KIND_ACKS ? b->count : 0;
	it->broken = b->kind != LT_WIRE_KIND_ACKS;
}

int lt_wire_acks_next(struct lt_wire_acks_iter *it, const char **source_id, size_t *len, uint64_t *seq)
{
	if (it->broken)
		return LT_EEOF;
	if (it->left == 0) {
		it->broken = 1;
		return it->off == it->len ? LT_EEOF : LT_EPROTO;
	}
	size_t n = it->len - it->off;
	const uint8_t *p = it->p + it->off;
	size_t sl = n > 0 ? p[0] : 0;
	if (n < ACKS_ENTRY_MIN || sl == 0 || sl > LT_WIRE_SOURCE_MAX || n < 1 + sl + 8 || memchr(p + 1, 0, sl)) {
		it->broken = 1;
		return LT_EPROTO;
	}
	*source_id = (const char *)(p + 1);
	*len = sl;
	*seq = get64(p + 1 + sl);
	it->off += 1 + sl + 8;
	it->left--;
	return LT_OK;
}
