/* SPDX-License-Identifier: MIT */
/*
 * fuzz_douyin: libFuzzer target for the Douyin decoder
 * (fetcher/platform_douyin.c: PushFrame, gzip, Response, the per-method
 * protobufs and their mapping, need_ack answers, dedup and combo state) and
 * the capture parser.
 *
 * The first input byte picks what the rest is:
 *   '0' a raw WebSocket frame (a PushFrame), as the server would send it
 *   '1' Response bytes, sent in a PushFrame plain and gzip'd
 *   '2' a method index byte, then one message payload, in a Response
 *   '3' a capture file, every record decoded as a frame
 * anything else: as '0'. Every message emitted must be within msg.h's limits,
 * render to valid UTF-8 JSON that cJSON accepts, with a known type, a
 * non-empty msg_id and an object as extra; every frame sent back must be an
 * ack. Any violation aborts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/json.h"
#include "fetcher/capture.h"
#include "fetcher/douyin.h"
#include "fetcher/platform.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                  \
	do {                                                                                      \
		if (!(c)) {                                                                       \
			fprintf(stderr, "fuzz_douyin: check failed: %s (line %d)\n", #c, __LINE__); \
			abort();                                                                  \
		}                                                                                 \
	} while (0)

static void on_emit(void *ud, const struct lt_msg *m)
{
	struct lt_buf b = LT_BUF_INIT;
	(void)ud;
	CHECK(m->platform == LT_PLATFORM_DOUYIN);
	CHECK(m->type < LT_MSG_TYPE_COUNT);
	CHECK(m->msg_id.len > 0 && m->msg_id.len <= LT_MSG_ID_MAX);
	CHECK(m->user_id.len <= LT_MSG_USER_ID_MAX && m->user_name.len <= LT_MSG_USER_NAME_MAX);
	CHECK(m->content.len <= LT_MSG_CONTENT_MAX && m->extra.len <= LT_MSG_EXTRA_MAX);
	CHECK(!(m->flags & LT_MSGF_ANONYMOUS) || m->user_id.len == 0);
	CHECK(m->type != LT_MSG_GIFT || m->count > 0);
	lt_buf_init(&b, 0);
	CHECK(lt_json_msg(&b, m) == LT_OK);
	CHECK(lt_utf8_valid((const char *)b.data, b.len));
	cJSON *j = cJSON_ParseWithLength((const char *)b.data, b.len);
	CHECK(j != NULL);
	CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "extra")));
	cJSON_Delete(j);
	lt_buf_free(&b);
}

static void on_send(void *ud, const void *p, size_t n, bool text)
{
	(void)ud;
	CHECK(!text);
	/* an ack: field 7 "ack" is in it */
	CHECK(n >= 5 && memmem(p, n, "\x3a\x03" "ack", 5) != NULL);
}

static void frame(struct lt_platform_conn *c, const uint8_t *p, size_t n)
{
	struct lt_platform_io io = {.emit = on_emit, .send = on_send, .ud = NULL};
	unsigned ev = 0;
	int rc = lt_platform_douyin.on_frame(c, p, n, 1732212345678LL, &io, &ev);
	CHECK(rc == LT_OK || rc == LT_EPROTO);
}

static void varint(struct lt_buf *b, uint64_t v)
{
	while (v >= 0x80) {
		lt_buf_u8(b, (uint8_t)(v | 0x80));
		v >>= 7;
	}
	lt_buf_u8(b, (uint8_t)v);
}

static void field_bytes(struct lt_buf *b, unsigned f, const void *p, size_t n)
{
	varint(b, (uint64_t)f << 3 | 2);
	varint(b, n);
	lt_buf_append(b, p, n);
}

/* PushFrame{2 log_id, 5 {compress_type: gzip}?, 7 "msg", 8 body(gzip'd?)} */
static void data_frame(struct lt_platform_conn *c, const uint8_t *body, size_t n, bool gz)
{
	struct lt_buf f = LT_BUF_INIT;
	lt_buf_init(&f, 0);
	varint(&f, 2 << 3);
	varint(&f, 7394284080632260335ULL);
	if (gz) {
		static const char h[] = "\x0a\x0d" "compress_type" "\x12\x04" "gzip";
		field_bytes(&f, 5, h, sizeof(h) - 1);
	}
	field_bytes(&f, 7, "msg", 3);
	if (gz) {
		uLongf zn = compressBound(n) + 32;
		uint8_t *z = malloc(zn);
		z_stream zs;
		CHECK(z != NULL);
		memset(&zs, 0, sizeof(zs));
		CHECK(deflateInit2(&zs, 1, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
		zs.next_in = (Bytef *)(uintptr_t)body;
		zs.avail_in = (uInt)n;
		zs.next_out = z;
		zs.avail_out = (uInt)zn;
		CHECK(deflate(&zs, Z_FINISH) == Z_STREAM_END);
		field_bytes(&f, 8, z, zn - zs.avail_out);
		deflateEnd(&zs);
		free(z);
	} else {
		field_bytes(&f, 8, body, n);
	}
	CHECK(lt_buf_err(&f) == LT_OK);
	frame(c, f.data, f.len);
	lt_buf_free(&f);
}

static const char *const methods[] = {
	"WebcastChatMessage",    "WebcastGiftMessage",        "WebcastLikeMessage",
	"WebcastMemberMessage",  "WebcastSocialMessage",      "WebcastRoomUserSeqMessage",
	"WebcastRoomStatsMessage", "WebcastControlMessage",   "WebcastFansclubMessage",
	"WebcastEmojiChatMessage", "WebcastRoomRankMessage",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lt_platform_conf conf = {.room = "646454278948", .skip_bootstrap = true};
	struct lt_platform_conn *c = NULL;
	const uint8_t *p = size ? data + 1 : data;
	size_t n = size ? size - 1 : 0;

	CHECK(lt_platform_douyin.create(&conf, &c) == LT_OK);
	switch (size ? data[0] : '0') {
	case '1':
		data_frame(c, p, n, false);
		data_frame(c, p, n, true);
		break;
	case '2': {
		if (!n)
			break;
		struct lt_buf m = LT_BUF_INIT, r = LT_BUF_INIT;
		lt_buf_init(&m, 0);
		lt_buf_init(&r, 0);
		const char *method = methods[p[0] % (sizeof(methods) / sizeof(methods[0]))];
		field_bytes(&m, 1, method, strlen(method));
		field_bytes(&m, 2, p + 1, n - 1);
		field_bytes(&r, 1, m.data, m.len);
		/* twice: the second time everything is a replayed duplicate */
		data_frame(c, r.data, r.len, false);
		data_frame(c, r.data, r.len, true);
		lt_buf_free(&m);
		lt_buf_free(&r);
		break;
	}
	case '3': {
		size_t off = 0, fl;
		int64_t t;
		const uint8_t *fp;
		while (lt_capture_parse(p, n, &off, &t, &fp, &fl) == LT_OK) {
			CHECK(fp + fl <= p + n);
			frame(c, fp, fl);
		}
		break;
	}
	case '0':
		frame(c, p, n);
		break;
	default:
		frame(c, data, size);
		break;
	}
	struct lt_platform_stats st;
	lt_platform_douyin.stats(c, &st);
	CHECK(st.bad_frames <= st.frames);
	lt_platform_douyin.destroy(c);
	return 0;
}
