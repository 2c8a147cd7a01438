/* SPDX-License-Identifier: MIT */
/*
 * fuzz_json: libFuzzer target for common/json.c.
 *
 * The input is (1) parsed with lt_json_msg_parse; what parses must encode to
 * valid UTF-8 JSON that cJSON accepts, parse again, and encode to the same
 * bytes (encode ∘ parse is idempotent); (2) used as a record's extra, whose
 * output must be valid JSON holding an object; (3) escaped with lt_json_str
 * and repaired with lt_utf8_repair, both of which must yield valid UTF-8, the
 * former a JSON string. Any violation aborts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "common/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                   \
	do {                                                                       \
		if (!(c)) {                                                        \
			fprintf(stderr, "fuzz_json: check failed: %s (line %d)\n", #c, __LINE__); \
			abort();                                                   \
		}                                                                  \
	} while (0)

static cJSON *sound_json(const struct lt_buf *b)
{
	CHECK(lt_buf_err(b) == LT_OK);
	CHECK(lt_utf8_valid((const char *)b->data, b->len));
	cJSON *j = cJSON_ParseWithLength((const char *)b->data, b->len);
	CHECK(j != NULL);
	return j;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct lt_arena a;
	struct lt_buf j1 = LT_BUF_INIT, j2 = LT_BUF_INIT;
	struct lt_msg m, p;
	struct lt_error e;
	lt_arena_init(&a, 1u << 20);

	/* (1) parse, encode, parse, encode */
	if (lt_json_msg_parse(s, size, &a, &m, &e) == LT_OK) {
		CHECK(m.room.len <= LT_MSG_ROOM_MAX && m.content.len <= LT_MSG_CONTENT_MAX);
		CHECK(m.extra.len <= LT_MSG_EXTRA_MAX);
		CHECK(lt_json_msg(&j1, &m) == LT_OK);
		cJSON_Delete(sound_json(&j1));
		int rc = lt_json_msg_parse((const char *)j1.data, j1.len, &a, &p, &e);
		if (rc != LT_OK)
			fprintf(stderr, "fuzz_json: re-parse failed: %s\n%s\n", e.message, lt_buf_cstr(&j1));
		CHECK(rc == LT_OK);
		CHECK(lt_json_msg(&j2, &p) == LT_OK);
		CHECK(j1.len == j2.len && memcmp(j1.data, j2.data, j1.len) == 0);
	} else {
		CHECK(e.code == LT_EINVAL || e.code == LT_ENOMEM);
	}

	/* (2) the input as extra */
	if (size <= LT_MSG_EXTRA_MAX * 2) {
		memset(&m, 0, sizeof(m));
		m.extra = (struct lt_str){s, (uint32_t)size};
		lt_buf_reset(&j1);
		CHECK(lt_json_msg(&j1, &m) == LT_OK);
		cJSON *j = sound_json(&j1);
		CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "extra")));
		cJSON_Delete(j);
	}

	/* (3) escaping and repair */
	lt_buf_reset(&j1);
	lt_json_str(&j1, s, size);
	cJSON *str = sound_json(&j1);
	CHECK(cJSON_IsString(str));
	cJSON_Delete(str);
	lt_buf_reset(&j2);
	size_t k = lt_utf8_repair(&j2, s, size);
	CHECK(lt_buf_err(&j2) == LT_OK);
	CHECK(lt_utf8_valid((const char *)j2.data, j2.len));
	CHECK((k == 0) == lt_utf8_valid(s, size));
	if (k == 0)
		CHECK(j2.len == size && memcmp(j2.data, data, size) == 0);

	lt_buf_free(&j1);
	lt_buf_free(&j2);
	lt_arena_free(&a);
	return 0;
}
