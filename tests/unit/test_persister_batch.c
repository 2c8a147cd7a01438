/* SPDX-License-Identifier: MIT */
/*
 * test_persister_batch: the persister's batch queue (persister/batch.c) and
 * the COPY text escaping of staging rows (persister/pg_sink.c), without a
 * database: dedup by (source, seq), the memory cap, bad headers and bad
 * records with their error notes, and hostile field content.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/wire.h"
#include "persister/batch.h"
#include "persister/pg_sink.h"
#include "tests/support/testsupport.h"

static struct lt_msg mk(const char *id, const char *content, int64_t ts)
{
	struct lt_msg m = {0};
	m.platform = LT_PLATFORM_DOUYIN;
	m.type = LT_MSG_CHAT;
	m.ts = ts;
	m.room = LT_STR("7000");
	m.msg_id = lt_str_c(id);
	m.user_id = LT_STR("u9");
	m.user_name = LT_STR("n");
	m.content = lt_str_c(content);
	return m;
}

static void encode(struct lt_buf *b, const char *source, uint64_t seq, const struct lt_msg *m, int n)
{
	ck_assert_int_eq(lt_wire_batch_begin(b, LT_WIRE_KIND_DATA, 0, source, seq), LT_OK);
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(lt_wire_batch_add(b, &m[i]), LT_OK);
}

/* Split a staging row into its tab-separated fields (in place). */
static int fields(char *row, char *out[], int max)
{
	int n = 0;
	size_t len = strlen(row);
	ck_assert_msg(len > 0 && row[len - 1] == '\n', "row not newline-terminated");
	row[len - 1] = '\0';
	ck_assert_ptr_null(strchr(row, '\n'));
	char *p = row;
	for (;;) {
		ck_assert_int_lt(n, max);
		out[n++] = p;
		char *t = strchr(p, '\t');
		if (!t)
			break;
		*t = '\0';
		p = t + 1;
	}
	return n;
}

START_TEST(test_copy_escape)
{
	struct lt_buf b = LT_BUF_INIT;
	ck_assert_uint_eq(lt_pgsink_copy_escape(&b, "a\tb\nc\\d\re", 9), 0);
	ck_assert_str_eq(lt_buf_cstr(&b), "a\\tb\\nc\\\\d\\re");
	lt_buf_reset(&b);
	ck_assert_uint_eq(lt_pgsink_copy_escape(&b, "x\0y\0", 4), 2);
	ck_assert_str_eq(lt_buf_cstr(&b), "x\xEF\xBF\xBDy\xEF\xBF\xBD");
	lt_buf_reset(&b);
	ck_assert_uint_eq(lt_pgsink_copy_escape(&b, "\\.", 2), 0);
	ck_assert_str_eq(lt_buf_cstr(&b), "\\\\.");
	lt_buf_reset(&b);
	ck_assert_uint_eq(lt_pgsink_copy_escape(&b, "", 0), 0);
	ck_assert_uint_eq(b.len, 0);
	lt_buf_reset(&b);
	lt_pgsink_copy_escape(&b, "签到 🎉", strlen("签到 🎉"));
	ck_assert_str_eq(lt_buf_cstr(&b), "签到 🎉");
	lt_buf_free(&b);
}
END_TEST

START_TEST(test_copy_row_fields)
{
	struct lt_buf row = LT_BUF_INIT, scratch = LT_BUF_INIT;
	struct lt_msg m = mk("id\t1", "tab\there\nnewline \\N", 1700000000123);
	m.user_name = LT_STR("bad\xC3utf8");
	m.extra = LT_STR("{\"a\":\n\"b\\tc\"}");
	m.count = -3;
	m.value = 42;
	lt_pgsink_copy_row(&row, &scratch, &m, "src\\1", 77);
	char *f[32];
	char *copy = strdup(lt_buf_cstr(&row));
	int n = fields(copy, f, 32);
	ck_assert_int_eq(n, 14);
	ck_assert_str_eq(f[0], "douyin");
	ck_assert_str_eq(f[1], "7000");
	ck_assert_str_eq(f[2], "1700000000123");
	ck_assert_str_eq(f[3], "id\\t1");
	ck_assert_str_eq(f[4], "chat");
	ck_assert_str_eq(f[5], "u9");
	ck_assert_str_eq(f[6], "bad\xEF\xBF\xBDutf8");
	ck_assert_str_eq(f[7], "tab\\there\\nnewline \\\\N");
	ck_assert_str_eq(f[8], "{\"a\":\\n\"b\\\\tc\"}");
	ck_assert_str_eq(f[9], "-3");
	ck_assert_str_eq(f[10], "42");
	ck_assert_str_eq(f[11], "src\\\\1");
	ck_assert_str_eq(f[12], "77");
	ck_assert_str_eq(f[13], "4"); /* LT_MSGF_REPAIRED */
	free(copy);

	/* extra: empty, not JSON, not an object, \u0000, a lone surrogate */
	static const char *bad_extra[] = {"{oops", "[1,2]", "\"s\"", "{\"x\":\"\\u0000\"}",
					  "{\"x\":\"\\ud800\"}"};
	for (size_t i = 0; i < sizeof bad_extra / sizeof bad_extra[0]; i++) {
		lt_buf_reset(&row);
		m = mk("x", "fine", 1);
		m.extra = lt_str_c(bad_extra[i]);
		lt_pgsink_copy_row(&row, &scratch, &m, "s", 1);
		copy = strdup(lt_buf_cstr(&row));
		ck_assert_int_eq(fields(copy, f, 32), 14);
		ck_assert_msg(strcmp(f[8], "{\"invalid_extra\":true}") == 0, "%s -> %s", bad_extra[i], f[8]);
		ck_assert_str_eq(f[13], "4");
		free(copy);
	}
	lt_buf_reset(&row);
	m = mk("x", "fine", 1);
	m.extra = LT_STR_NULL;
	m.flags = LT_MSGF_ANONYMOUS;
	lt_pgsink_copy_row(&row, &scratch, &m, "s", 1);
	copy = strdup(lt_buf_cstr(&row));
	ck_assert_int_eq(fields(copy, f, 32), 14);
	ck_assert_str_eq(f[8], "{}");
	ck_assert_str_eq(f[13], "1");
	free(copy);
	lt_buf_free(&row);
	lt_buf_free(&scratch);
}
END_TEST

START_TEST(test_queue_dedup_and_pop)
{
	struct lt_batchq q;
	lt_batchq_init(&q, 1 << 20);
	struct lt_buf b = LT_BUF_INIT;
	struct lt_msg m[3] = {mk("a", "1", 10), mk("b", "2", 20), mk("c", "3", 30)};
	encode(&b, "s1", 5, m, 3);
	uint32_t bad = 99;
	ck_assert_int_eq(lt_batchq_add(&q, b.data, b.len, 1000, &bad), LT_OK);
	ck_assert_uint_eq(bad, 0);
	ck_assert_int_eq(lt_batchq_add(&q, b.data, b.len, 1001, &bad), LT_EEXIST);
	encode(&b, "s1", 6, m, 2);
	ck_assert_int_eq(lt_batchq_add(&q, b.data, b.len, 1002, &bad), LT_OK);
	encode(&b, "s2", 5, m, 1); /* same seq, other source */
	ck_assert_int_eq(lt_batchq_add(&q, b.data, b.len, 1003, &bad), LT_OK);
	ck_assert_uint_eq(q.nbatches, 3);
	ck_assert_uint_eq(q.rows, 6);
	/* The copy is independent of the caller's buffer. */
	memset(b.data, 0xAB, b.len);
	ck_assert(lt_str_eqc(q.head->msgs[2].msg_id, "c"));
	ck_assert_int_eq(q.head->received_mono, 1000);
	lt_batchq_pop(&q, 1);
	ck_assert_uint_eq(q.rows, 3);
	ck_assert_str_eq(q.head->source_id, "s1");
	ck_assert_uint_eq(q.head->seq, 6);
	lt_batchq_pop(&q, 10);
	ck_assert_uint_eq(q.nbatches, 0);
	ck_assert_uint_eq(q.bytes, 0);
	ck_assert_ptr_null(q.head);
	ck_assert_ptr_null(q.tail);
	lt_batchq_free(&q);
	lt_buf_free(&b);
}
END_TEST

START_TEST(test_queue_cap)
{
	struct lt_batchq q;
	struct lt_buf b = LT_BUF_INIT;
	struct lt_msg m[1] = {mk("a", "some content", 10)};
	encode(&b, "s", 1, m, 1);
	lt_batchq_init(&q, b.len * 2);
	ck_assert_int_eq(lt_batchq_add(&q, b.data, b.len, 0, NULL), LT_OK);
	encode(&b, "s", 2, m, 1);
	ck_assert_int_eq(lt_batchq_add(&q, b.data, b.len, 0, NULL), LT_OK);
	encode(&b, "s", 3, m, 1);
	ck_assert_int_eq(lt_batchq_add(&q, b.data, b.len, 0, NULL), LT_EAGAIN);
	ck_assert_uint_eq(q.nbatches, 2);
	lt_batchq_pop(&q, 1);
	ck_assert_int_eq(lt_batchq_add(&q, b.data, b.len, 0, NULL), LT_OK);
	/* An empty queue takes even a batch over the cap (or it would never
	 * move). */
	lt_batchq_pop(&q, 2);
	struct lt_batchq small;
	lt_batchq_init(&small, 1);
	ck_assert_int_eq(lt_batchq_add(&small, b.data, b.len, 0, NULL), LT_OK);
	lt_batchq_free(&small);
	lt_batchq_free(&q);
	lt_buf_free(&b);
}
END_TEST

START_TEST(test_queue_bad_input)
{
	struct lt_batchq q;
	lt_batchq_init(&q, 1 << 20);
	static const uint8_t junk[] = {'L', 'T', 'B', 9, 1, 0, 0, 0};
	ck_assert_int_eq(lt_batchq_add(&q, junk, sizeof junk, 0, NULL), LT_EPROTO);
	ck_assert_int_eq(lt_batchq_add(&q, junk, 0, 0, NULL), LT_EPROTO);
	ck_assert_uint_eq(q.nbatches, 0);
	ck_assert_uint_eq(q.nnotes, 2);
	ck_assert_str_eq(q.notes[0].kind, "bad_batch");
	ck_assert_int_eq(q.notes[0].index, -1);

	/* Records refused for what they hold, between good ones. */
	struct lt_msg m[5] = {mk("ok1", "x", 10), mk("", "empty id", 20), mk("ts", "far", INT64_C(1) << 62),
			      mk("ok2", "y", 30), mk("t", "bad type", 40)};
	m[4].type = 200;
	struct lt_buf b = LT_BUF_INIT;
	ck_assert_int_eq(lt_wire_batch_begin(&b, LT_WIRE_KIND_DATA, 0, "src", 1), LT_OK);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(lt_wire_batch_add(&b, &m[i]), LT_OK);
	/* a truncated record length at the end */
	lt_buf_u32le(&b, 1000);
	lt_buf_append(&b, "xx", 2);
	b.data[16] = 5; /* count (u32 at offset 16): announce 5 records */
	uint32_t bad = 0;
	ck_assert_int_eq(lt_batchq_add(&q, b.data, b.len, 0, &bad), LT_OK);
	ck_assert_uint_eq(q.nbatches, 1);
	ck_assert_uint_eq(q.rows, 2);
	ck_assert(lt_str_eqc(q.head->msgs[0].msg_id, "ok1"));
	ck_assert(lt_str_eqc(q.head->msgs[1].msg_id, "ok2"));
	ck_assert_uint_eq(bad, 3);
	ck_assert_uint_eq(q.nnotes, 5);
	ck_assert_str_eq(q.notes[2].kind, "bad_record");
	ck_assert_str_eq(q.notes[2].message, "empty msg_id");
	ck_assert_int_eq(q.notes[2].index, 1);
	ck_assert_str_eq(q.notes[3].message, "ts out of range");
	ck_assert_str_eq(q.notes[4].message, "malformed record");
	lt_batchq_notes_clear(&q);
	ck_assert_uint_eq(q.nnotes, 0);

	/* Notes are bounded. */
	for (int i = 0; i < LT_BATCHQ_MAX_NOTES + 44; i++)
		lt_batchq_add(&q, junk, sizeof junk, 0, NULL);
	ck_assert_uint_eq(q.nnotes, LT_BATCHQ_MAX_NOTES);
	ck_assert_uint_eq(q.notes_dropped, 44);
	lt_batchq_free(&q);
	lt_buf_free(&b);
}
END_TEST

START_TEST(test_unfit)
{
	struct lt_msg m = mk("a", "b", 0);
	ck_assert_ptr_null(lt_batch_unfit(&m));
	m.ts = INT64_C(253402300799999);
	ck_assert_ptr_null(lt_batch_unfit(&m));
	m.ts++;
	ck_assert_str_eq(lt_batch_unfit(&m), "ts out of range");
	m.ts = INT64_C(-62135596800000);
	ck_assert_ptr_null(lt_batch_unfit(&m));
	m.ts--;
	ck_assert_ptr_nonnull(lt_batch_unfit(&m));
	m = mk("a", "b", 0);
	m.platform = LT_PLATFORM_UNKNOWN;
	ck_assert_str_eq(lt_batch_unfit(&m), "unknown platform");
	m = mk("a", "b", 0);
	m.room = LT_STR_NULL;
	ck_assert_str_eq(lt_batch_unfit(&m), "empty room");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("persister_batch");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_copy_escape);
	tcase_add_test(tc, test_copy_row_fields);
	tcase_add_test(tc, test_queue_dedup_and_pop);
	tcase_add_test(tc, test_queue_cap);
	tcase_add_test(tc, test_queue_bad_input);
	tcase_add_test(tc, test_unfit);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return lt_test_run_suite(suite());
}
