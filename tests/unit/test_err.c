/* SPDX-License-Identifier: MIT */
/*
 * test_err: error names and sentences, and the error value of common/err.c,
 * whose JSON rendering (the API's error body) is parsed back with cJSON.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/err.h"
#include "tests/support/testsupport.h"

START_TEST(names_and_sentences)
{
	for (int i = 0; i < LT_ERR_COUNT; i++) {
		ck_assert_ptr_nonnull(lt_strerror(i));
		ck_assert_ptr_nonnull(lt_errname(i));
		ck_assert_str_ne(lt_errname(i), "unknown");
		ck_assert_str_ne(lt_strerror(i), "unknown error");
		for (int j = 0; j < i; j++)
			ck_assert_msg(strcmp(lt_errname(i), lt_errname(j)) != 0, "codes %d and %d share a name", i, j);
	}
	ck_assert_str_eq(lt_errname(LT_OK), "ok");
	ck_assert_str_eq(lt_errname(LT_EINVAL), "bad_input");
	ck_assert_str_eq(lt_errname(-1), "unknown");
	ck_assert_str_eq(lt_errname(LT_ERR_COUNT), "unknown");
	ck_assert_str_eq(lt_strerror(12345), "unknown error");
}
END_TEST

/* Parse out as the API body and check its three members. */
static void check_body(const char *out, size_t n, const char *code, const char *message)
{
	ck_assert_uint_eq(strlen(out), n);
	cJSON *j = cJSON_Parse(out);
	ck_assert_msg(j != NULL, "not JSON: %s", out);
	cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
	ck_assert(cJSON_IsObject(err));
	ck_assert_int_eq(cJSON_GetArraySize(j), 1);
	ck_assert_int_eq(cJSON_GetArraySize(err), 3);
	cJSON *c = cJSON_GetObjectItemCaseSensitive(err, "code");
	cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
	cJSON *d = cJSON_GetObjectItemCaseSensitive(err, "details");
	ck_assert(cJSON_IsString(c) && cJSON_IsString(m) && cJSON_IsObject(d));
	ck_assert_str_eq(c->valuestring, code);
	if (message)
		ck_assert_str_eq(m->valuestring, message);
	cJSON_Delete(j);
}

START_TEST(error_json_roundtrip)
{
	struct lt_error e;
	char out[1024];
	ck_assert_int_eq(lt_error_set(&e, LT_EINVAL, "room %s: bad \"id\"\n\ttab\\%d", "bilibili:1", 7), LT_EINVAL);
	lt_error_detail(&e, "key", "room");
	lt_error_detail(&e, "va\"l", "x\\y\n\x01");
	size_t n = lt_error_json(&e, out, sizeof(out));
	check_body(out, n, "bad_input", "room bilibili:1: bad \"id\"\n\ttab\\7");
	cJSON *j = cJSON_Parse(out);
	cJSON *d = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "error"), "details");
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(d, "key")->valuestring, "room");
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(d, "va\"l")->valuestring, "x\\y\n\x01");
	cJSON_Delete(j);
	/* No message: the code's sentence. NULL error: internal. */
	memset(&e, 0, sizeof(e));
	e.code = LT_ENOTFOUND;
	n = lt_error_json(&e, out, sizeof(out));
	check_body(out, n, "not_found", "not found");
	n = lt_error_json(NULL, out, sizeof(out));
	check_body(out, n, "internal_error", NULL);
	/* lt_error_set clears earlier details and accepts NULL. */
	ck_assert_int_eq(lt_error_set(NULL, LT_EIO, "x"), LT_EIO);
	lt_error_detail(NULL, "a", "b");
	lt_error_set(&e, LT_EIO, "again");
	ck_assert_str_eq(e.details, "");
}
END_TEST

/* Worst cases still give valid JSON in a 1 KiB buffer: a message full of
 * characters that need escaping, and details filled to the brim. */
START_TEST(error_json_full)
{
	struct lt_error e;
	char out[1024], big[600];
	memset(big, '"', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	lt_error_set(&e, LT_EPROTO, "%s", big);
	ck_assert_uint_eq(strlen(e.message), LT_ERROR_MSG_MAX - 1);
	for (int i = 0; i < 100; i++)
		lt_error_detail(&e, "k\"\"\"\"", "v\n\n\n\n\n\n");
	ck_assert_uint_lt(strlen(e.details), LT_ERROR_DETAILS_MAX);
	size_t n = lt_error_json(&e, out, sizeof(out));
	check_body(out, n, "protocol_error", NULL);
	/* The details that were kept are a valid object body. */
	char obj[LT_ERROR_DETAILS_MAX + 3];
	snprintf(obj, sizeof(obj), "{%s}", e.details);
	cJSON *j = cJSON_Parse(obj);
	ck_assert_ptr_nonnull(j);
	ck_assert_int_gt(cJSON_GetArraySize(j), 1);
	cJSON_Delete(j);
	/* Smaller buffers never overflow and stay NUL-terminated. */
	for (size_t cap = 1; cap < 64; cap++) {
		char small[64];
		memset(small, 'Z', sizeof(small));
		size_t k = lt_error_json(&e, small, cap);
		ck_assert_uint_lt(k, cap);
		ck_assert_uint_eq(strlen(small), k);
		ck_assert_int_eq(small[cap < 63 ? cap : 63], cap < 63 ? 'Z' : small[63]);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("err");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, names_and_sentences);
	tcase_add_test(tc, error_json_roundtrip);
	tcase_add_test(tc, error_json_full);
	suite_add_tcase(s, tc);
	return lt_test_run_suite(s);
}
