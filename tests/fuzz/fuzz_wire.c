/* SPDX-License-Identifier: MIT */
/*
 * fuzz_wire: libFuzzer target for the wire decoder (common/wire.c).
 *
 * The input is decoded as a batch; every record is iterated; each record
 * that decodes must re-encode to exactly its own bytes (the format has one
 * spelling per record), and the decoded records, re-encoded as a new batch
 * and decoded again, must come back equal. Each record's JSON form must be
 * valid UTF-8 and parse with cJSON. An ack list is iterated and rebuilt
 * the same way. An input that is not a batch is tried as
 * a single record with the same checks. Any violation aborts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "common/json.h"
#include "common/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                   \
	do {                                                                       \
		if (!(c)) {                                                        \
			fprintf(stderr, "fuzz_wire: check failed: %s (line %d)\n", #c, __LINE__); \
			abort();                                                   \
		}                                                                  \
	} while (0)

static bool msg_eq(const struct lt_msg *a, const struct lt_msg *b)
{
	return a->platform == b->platform && a->type == b->type && a->flags == b->flags && a->ts == b->ts &&
	       a->count == b->count && a->value == b->value && lt_str_eq(a->room, b->room) &&
	       lt_str_eq(a->msg_id, b->msg_id) && lt_str_eq(a->user_id, b->user_id) &&
	       lt_str_eq(a->user_name, b->user_name) && lt_str_eq(a->content, b->content) &&
	       lt_str_eq(a->extra, b->extra);
}

/* The record's own bytes re-encode identically; its JSON is sound. */
static void check_record(const struct lt_msg *m, const uint8_t *rec, size_t n, struct lt_buf *tmp)
{
	lt_buf_reset(tmp);
	CHECK(lt_wire_msg_encode(tmp, m) == LT_OK);
	CHECK(tmp->len == n && memcmp(tmp->data, rec, n) == 0);
	lt_buf_reset(tmp);
	CHECK(lt_json_msg(tmp, m) == LT_OK);
	CHECK(lt_utf8_valid((const char *)tmp->data, tmp->len));
	cJSON *j = cJSON_ParseWithLength((const char *)tmp->data, tmp->len);
	CHECK(j != NULL);
	cJSON_Delete(j);
}

/* An ack list: every entry read stays inside the input; the entries read
 * before the first bad one, re-encoded, give a list that decodes to the same
 * entries; a clean list re-encodes to the very same bytes. */
static void check_acks(const uint8_t *data, size_t size, const struct lt_wire_batch *b)
{
	struct lt_buf again = LT_BUF_INIT;
	struct lt_wire_acks_iter it;
	const char *src;
	size_t sl;
	uint64_t seq;
	uint32_t nok = 0, calls = 0;
	int rc;
	bool bad = false;
	CHECK(b->source_id[0] == '\0');
	CHECK(lt_wire_acks_begin(&again, b->flags) == LT_OK);
	lt_wire_acks_iter_init(&it, b);
	while ((rc = lt_wire_acks_next(&it, &src, &sl, &seq)) != LT_EEOF) {
		CHECK(++calls <= b->count + 1);
		if (rc != LT_OK) {
			CHECK(rc == LT_EPROTO);
			bad = true;
			continue;
		}
		CHECK(!bad);
		CHECK((const uint8_t *)src > data && (const uint8_t *)src + sl + 8 <= data + size);
		CHECK(sl >= 1 && sl <= LT_WIRE_SOURCE_MAX && !memchr(src, 0, sl));
		CHECK(lt_wire_acks_add(&again, src, sl, seq) == LT_OK);
		nok++;
	}
	struct lt_wire_batch b2;
	CHECK(lt_wire_batch_decode(again.data, again.len, &b2) == LT_OK);
	CHECK(b2.kind == LT_WIRE_KIND_ACKS && b2.count == nok && b2.flags == b->flags);
	if (!bad)
		CHECK(nok == b->count && again.len == size && memcmp(again.data, data, size) == 0);
	lt_buf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lt_buf tmp = LT_BUF_INIT, again = LT_BUF_INIT;
	struct lt_wire_batch b;
	struct lt_msg m;
	if (lt_wire_batch_decode(data, size, &b) != LT_OK) {
		if (lt_wire_msg_decode(data, size, &m) == LT_OK)
			check_record(&m, data, size, &tmp);
		lt_buf_free(&tmp);
		return 0;
	}
	CHECK(b.count <= LT_WIRE_BATCH_MAX_RECORDS);
	CHECK(strlen(b.source_id) <= LT_WIRE_SOURCE_MAX);
	CHECK(b.body >= data && b.body + b.body_len == data + size);
	if (b.kind == LT_WIRE_KIND_ACKS) {
		check_acks(data, size, &b);
		lt_buf_free(&tmp);
		return 0;
	}
	struct lt_msg *ok = calloc(b.count ? b.count : 1, sizeof(*ok));
	CHECK(ok != NULL);
	uint32_t nok = 0, nbad = 0, calls = 0;
	struct lt_wire_iter it;
	lt_wire_iter_init(&it, &b);
	CHECK(lt_wire_batch_begin(&again, b.kind, b.flags, b.source_id, b.seq) == LT_OK);
	for (;;) {
		size_t before = it.off;
		int rc = lt_wire_iter_next(&it, &m);
		CHECK(++calls <= b.count + 2);
		CHECK(it.off <= it.len);
		if (rc == LT_EEOF)
			break;
		if (rc == LT_OK) {
			check_record(&m, it.p + before + 4, it.off - before - 4, &tmp);
			CHECK(lt_wire_batch_add(&again, &m) == LT_OK);
			ok[nok++] = m;
		} else {
			CHECK(rc == LT_EPROTO);
			nbad++;
		}
	}
	CHECK(lt_wire_iter_next(&it, &m) == LT_EEOF);
	CHECK(nok + nbad <= b.count + 1);
	/* Decode the rebuilt batch: the same records, nothing else. */
	struct lt_wire_batch b2;
	CHECK(lt_wire_batch_decode(again.data, again.len, &b2) == LT_OK);
	CHECK(b2.count == nok && b2.seq == b.seq && b2.kind == b.kind && b2.flags == b.flags);
	CHECK(strcmp(b2.source_id, b.source_id) == 0);
	lt_wire_iter_init(&it, &b2);
	for (uint32_t i = 0; i < nok; i++) {
		CHECK(lt_wire_iter_next(&it, &m) == LT_OK);
		CHECK(msg_eq(&m, &ok[i]));
	}
	CHECK(lt_wire_iter_next(&it, &m) == LT_EEOF);
	/* A fully clean batch re-encodes to the very same bytes. */
	if (nbad == 0)
		CHECK(again.len == size && memcmp(again.data, data, size) == 0);
	free(ok);
	lt_buf_free(&tmp);
	lt_buf_free(&again);
	return 0;
}
