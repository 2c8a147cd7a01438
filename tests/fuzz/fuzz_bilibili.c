/* SPDX-License-Identifier: MIT */
/*
 * fuzz_bilibili: libFuzzer target for the Bilibili decoder
 * (fetcher/platform_bilibili.c: packets, zlib/brotli, the JSON mapping
 * through fetcher/jscan.c, the protobuf payloads) and the capture parser.
 *
 * The first input byte picks what the rest is, so that the seeds can be text:
 *   '0' a raw WebSocket frame, as the server would send it
 *   '1' one message body, wrapped in an op-5 ver-0 packet
 *   '2' protobuf bytes, base64-encoded into INTERACT_WORD_V2 and SEND_GIFT_V2
 *   '3' message bodies, one per line, packed as one zlib and one brotli batch
 *   '4' a capture file, every record decoded as a frame
 * anything else: as '0'. Every message emitted must be within msg.h's limits,
 * render to valid UTF-8 JSON that cJSON accepts, with a known type, a
 * non-empty msg_id and an object as extra. jscan's AVX2 and SSE2 block loops
 * must skip the raw input alike. Any violation aborts.
 */
#include <brotli/encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/json.h"
#include "fetcher/bilibili.h"
#include "fetcher/capture.h"
#include "fetcher/jscan.h"
#include "fetcher/platform.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                              \
	do {                                                                                  \
		if (!(c)) {                                                                   \
			fprintf(stderr, "fuzz_bilibili: check failed: %s (line %d)\n", #c, __LINE__); \
			abort();                                                              \
		}                                                                             \
	} while (0)

static void on_emit(void *ud, const struct lt_msg *m)
{
	struct lt_buf b = LT_BUF_INIT;
	(void)ud;
	CHECK(m->platform == LT_PLATFORM_BILIBILI);
	CHECK(m->type < LT_MSG_TYPE_COUNT);
	CHECK(m->msg_id.len > 0 && m->msg_id.len <= LT_MSG_ID_MAX);
	CHECK(m->user_id.len <= LT_MSG_USER_ID_MAX && m->user_name.len <= LT_MSG_USER_NAME_MAX);
	CHECK(m->content.len <= LT_MSG_CONTENT_MAX && m->extra.len <= LT_MSG_EXTRA_MAX);
	CHECK(!(m->flags & LT_MSGF_ANONYMOUS) || m->user_id.len == 0);
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
	(void)ud, (void)text;
	CHECK(n >= LT_BILI_HDR_LEN && p != NULL);
}

static void frame(struct lt_platform_conn *c, const uint8_t *p, size_t n)
{
	struct lt_platform_io io = {.emit = on_emit, .send = on_send, .ud = NULL};
	unsigned ev;
	int rc = lt_platform_bilibili.on_frame(c, p, n, 1732212345000LL, &io, &ev);
	CHECK(rc == LT_OK || rc == LT_EPROTO || rc == LT_EAUTH);
}

static void b64(struct lt_buf *out, const uint8_t *p, size_t n)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
		lt_buf_putc(out, a[(v >> 18) & 63]);
		lt_buf_putc(out, a[(v >> 12) & 63]);
		lt_buf_putc(out, i + 1 < n ? a[(v >> 6) & 63] : '=');
		lt_buf_putc(out, i + 2 < n ? a[v & 63] : '=');
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lt_platform_conf conf = {.room = "21452505", .skip_bootstrap = true};
	struct lt_platform_conn *c = NULL;
	struct lt_buf f = LT_BUF_INIT, body = LT_BUF_INIT;
	const uint8_t *p = size ? data + 1 : data;
	size_t n = size ? size - 1 : 0;

	/* jscan's AVX2 block loops (where the CPU has them) and its SSE2 ones
	 * find the same value on the raw input, from its first two bytes; the
	 * decoder then runs with one or the other, by the input's length */
	for (size_t k = 0; k < 2 && k < n; k++) {
		struct lt_jv va = {NULL, 0}, vs = {NULL, 0};
		size_t na = 0, ns = 0;
		lt_jscan_simd(true);
		int ra = lt_jscan_value((const char *)p + k, n - k, &va, &na);
		lt_jscan_simd(false);
		int rs = lt_jscan_value((const char *)p + k, n - k, &vs, &ns);
		CHECK(ra == rs);
		CHECK(ra != LT_OK || (va.p == vs.p && va.n == vs.n && na == ns));
	}
	lt_jscan_simd(size & 1);

	CHECK(lt_platform_bilibili.create(&conf, &c) == LT_OK);
	lt_buf_init(&f, 0);
	lt_buf_init(&body, 0);
	switch (size ? data[0] : '0') {
	case '1':
		lt_bili_pack(&f, 0, 5, 0, p, n);
		frame(c, f.data, f.len);
		break;
	case '2':
		for (int k = 0; k < 2; k++) {
			lt_buf_reset(&body);
			lt_buf_puts(&body, k ? "{\"cmd\":\"SEND_GIFT_V2\",\"data\":{\"pb\":\""
			                     : "{\"cmd\":\"INTERACT_WORD_V2\",\"data\":{\"pb\":\"");
			b64(&body, p, n);
			lt_buf_puts(&body, "\"}}");
			lt_buf_reset(&f);
			lt_bili_pack(&f, 0, 5, 0, body.data, body.len);
			frame(c, f.data, f.len);
		}
		break;
	case '3': {
		for (size_t i = 0; i < n;) {
			const uint8_t *nl = memchr(p + i, '\n', n - i);
			size_t len = nl ? (size_t)(nl - (p + i)) : n - i;
			lt_bili_pack(&body, 0, 5, 0, p + i, len);
			i += len + 1;
		}
		uLongf zn = compressBound(body.len);
		size_t bn = BrotliEncoderMaxCompressedSize(body.len);
		uint8_t *z = malloc(zn > bn ? zn : bn);
		CHECK(z != NULL);
		if (compress2(z, &zn, body.data, body.len, 1) == Z_OK) {
			lt_bili_pack(&f, 2, 5, 0, z, zn);
			frame(c, f.data, f.len);
		}
		if (BrotliEncoderCompress(1, 18, BROTLI_MODE_GENERIC, body.len, body.data, &bn, z)) {
			lt_buf_reset(&f);
			lt_bili_pack(&f, 3, 5, 0, z, bn);
			frame(c, f.data, f.len);
		}
		free(z);
		break;
	}
	case '4': {
		size_t off = 0, fl;
		int64_t t;
		const uint8_t *fp;
		int rc;
		while ((rc = lt_capture_parse(p, n, &off, &t, &fp, &fl)) == LT_OK) {
			CHECK(fp + fl <= p + n);
			frame(c, fp, fl);
		}
		CHECK(rc == LT_EEOF || rc == LT_EPROTO);
		break;
	}
	default:
		frame(c, p, n);
		break;
	}
	struct lt_platform_stats st;
	lt_platform_bilibili.stats(c, &st);
	CHECK(st.bad_frames <= st.frames);
	lt_platform_bilibili.destroy(c);
	lt_buf_free(&f);
	lt_buf_free(&body);
	return 0;
}
