/* SPDX-License-Identifier: MIT */
/*
 * fuzz_kook: libFuzzer target for the KOOK decoder (fetcher/platform_kook.c:
 * zlib frames, signals, the sn reorder buffer, the mapping) and its
 * bootstrap and state parsers.
 *
 * The first input byte picks what the rest is, so that the seeds can be text:
 *   '0' one raw WebSocket frame
 *   '1' frames, one per line, fed in order to one connection (sn order,
 *       duplicates, HELLO / s=5 between events)
 *   '2' the same lines, each zlib-compressed into its own frame
 *   '3' a gateway response body, then the resume state line parser
 * anything else: as '0'. Between frames the heartbeat tick runs on a manual
 * clock. Every message emitted must be for the configured channel, within
 * msg.h's limits, render to valid UTF-8 JSON that cJSON accepts, with a known
 * type, a non-empty msg_id and an object as extra. Any violation aborts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/json.h"
#include "fetcher/kook.h"
#include "fetcher/platform.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ROOM "3344556677"

#define CHECK(c)                                                                                  \
	do {                                                                                      \
		if (!(c)) {                                                                       \
			fprintf(stderr, "fuzz_kook: check failed: %s (line %d)\n", #c, __LINE__); \
			abort();                                                                  \
		}                                                                                 \
	} while (0)

static void on_emit(void *ud, const struct lt_msg *m)
{
	struct lt_buf b = LT_BUF_INIT;
	(void)ud;
	CHECK(m->platform == LT_PLATFORM_KOOK);
	CHECK(m->type < LT_MSG_TYPE_COUNT);
	CHECK(lt_str_eqc(m->room, ROOM));
	CHECK(m->msg_id.len > 0 && m->msg_id.len <= LT_MSG_ID_MAX);
	CHECK(m->user_id.len <= LT_MSG_USER_ID_MAX && m->user_name.len <= LT_MSG_USER_NAME_MAX);
	CHECK(m->content.len <= LT_MSG_CONTENT_MAX && m->extra.len <= LT_MSG_EXTRA_MAX);
	CHECK(lt_json_msg(&b, m) == LT_OK);
	CHECK(lt_utf8_valid((const char *)b.data, b.len));
	cJSON *j = cJSON_ParseWithLength((const char *)b.data, b.len);
	CHECK(j != NULL);
	CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "extra")));
	cJSON_Delete(j);
	lt_buf_free(&b);
}

static size_t n_sent;

static void on_send(void *ud, const void *p, size_t n, bool text)
{
	(void)ud;
	CHECK(text && n > 0 && ((const char *)p)[0] == '{');
	n_sent++;
}

static int64_t now_ms;

static void frame(struct lt_platform_conn *c, const struct lt_platform_io *io, const uint8_t *p, size_t n)
{
	unsigned ev = 0;
	int rc = lt_platform_kook.on_frame(c, p, n, 1732212345678LL, io, &ev);
	CHECK(rc == LT_OK || rc == LT_EPROTO || rc == LT_EAUTH);
	CHECK(rc != LT_EAUTH || (ev & (LT_PEV_RECONNECT | LT_PEV_CLOSE)));
	now_ms += 1000;
	int ms = lt_platform_kook.heartbeat_ms(c);
	CHECK(ms > 0 && ms <= LT_KOOK_PING_MS + LT_KOOK_PING_JITTER_MS);
	rc = lt_platform_kook.heartbeat(c, io);
	CHECK(rc == LT_OK || rc == LT_ETIMEDOUT);
	if (ev & (LT_PEV_RECONNECT | LT_PEV_CLOSE)) {
		lt_platform_kook.begin(c, 1);
		lt_platform_kook.on_open(c, io);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lt_clock clk = lt_clock_manual(&now_ms);
	struct lt_platform_conf conf = {.room = ROOM, .api_base = "http://127.0.0.1:9/api/v3", .token = "t",
	                                .clock = &clk};
	struct lt_platform_io io = {on_emit, on_send, NULL};
	struct lt_platform_conn *c = NULL;
	char mode = size ? (char)data[0] : '0';
	const uint8_t *p = size ? data + 1 : data;
	size_t n = size ? size - 1 : 0;

	now_ms = 1000000;
	CHECK(lt_platform_kook.create(&conf, &c) == LT_OK);
	lt_platform_kook.begin(c, 0);
	lt_platform_kook.on_open(c, &io);
	if (mode == '1' || mode == '2') {
		const uint8_t *line = p, *end = p + n;
		while (line < end) {
			const uint8_t *nl = memchr(line, '\n', (size_t)(end - line));
			size_t len = (size_t)((nl ? nl : end) - line);
			if (mode == '2') {
				uLongf zn = compressBound(len);
				uint8_t *z = malloc(zn);
				CHECK(z && compress2(z, &zn, line, len, 6) == Z_OK);
				frame(c, &io, z, zn);
				free(z);
			} else {
				frame(c, &io, line, len);
			}
			line += len + 1;
		}
	} else if (mode == '3') {
		struct lt_http_req rq;
		struct lt_http_resp resp = {.status = 200, .body = (const char *)p, .body_len = n};
		struct lt_ws_target t;
		char sid[LT_KOOK_SESSION_ID_MAX + 1];
		int64_t sn;
		if (lt_platform_kook.http_next(c, &rq) == LT_OK && lt_platform_kook.http_done(c, &resp) == LT_OK) {
			CHECK(lt_platform_kook.ws_target(c, &t) == LT_OK);
			CHECK(!strncmp(t.url, "ws://", 5) || !strncmp(t.url, "wss://", 6));
		}
		if (lt_kook_state_parse((const char *)p, n, sid, &sn) == LT_OK) {
			CHECK(sn >= 0 && strlen(sid) <= LT_KOOK_SESSION_ID_MAX);
			CHECK(lt_platform_kook.state_load(c, (const char *)p, n) == LT_OK);
			char line[LT_KOOK_STATE_MAX];
			CHECK(lt_platform_kook.state_save(c, line, sizeof(line)) > 0);
		}
	} else {
		frame(c, &io, p, n);
	}
	lt_platform_kook.destroy(c);
	return 0;
}
