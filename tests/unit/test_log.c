/* SPDX-License-Identifier: MIT */
/*
 * test_log: every line is one valid JSON object with ts, level, proc, msg and
 * the context fields; the level is checked before the arguments are
 * evaluated; escaping and UTF-8 repair; bounded lines; size rotation with a
 * tiny maximum; and whole lines under concurrent writers. stderr is
 * redirected to a file per test (Check forks each test).
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/json.h"
#include "common/log.h"
#include "tests/support/testsupport.h"

static char captured[1 << 20];

/* Send stderr to a fresh file; returns its path (caller frees). */
static char *capture_stderr(void)
{
	char *dir = lt_test_tmpdir("log");
	char *path = malloc(strlen(dir) + 16);
	ck_assert_ptr_nonnull(path);
	sprintf(path, "%s/stderr", dir);
	free(dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
	return path;
}

static const char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(captured, 1, sizeof captured - 1, f);
	fclose(f);
	captured[n] = '\0';
	return captured;
}

/* Parse the line-th line (0-based) of text; the caller deletes it. */
static cJSON *line_json(const char *text, int line)
{
	const char *p = text;
	for (int i = 0; i < line; i++) {
		p = strchr(p, '\n');
		ck_assert_ptr_nonnull(p);
		p++;
	}
	const char *end = strchr(p, '\n');
	ck_assert_ptr_nonnull(end);
	ck_assert_msg(lt_utf8_valid(p, (size_t)(end - p)), "line %d is not valid UTF-8", line);
	cJSON *j = cJSON_ParseWithLength(p, (size_t)(end - p));
	ck_assert_msg(j != NULL, "line %d is not JSON: %.*s", line, (int)(end - p), p);
	return j;
}

static const char *field(const cJSON *j, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static int evaluated;
static int bump(void)
{
	return ++evaluated;
}

START_TEST(fields_and_levels)
{
	char *path = capture_stderr();
	lt_log_init("livetap-test", LT_LOG_WARN);
	evaluated = 0;
	lt_info("room=x", "not shown %d", bump());
	lt_debug(NULL, "not shown %d", bump());
	ck_assert_int_eq(evaluated, 0); /* level checked before formatting */
	lt_warn("room=bilibili:123 batch=f1/42", "disk %d%% full", 93);
	lt_error(NULL, "plain");
	lt_log_set_level(LT_LOG_OFF);
	lt_error(NULL, "off means off");
	const char *out = slurp(path);
	ck_assert_int_eq(count_lines(out), 2);
	cJSON *j = line_json(out, 0);
	ck_assert_str_eq(field(j, "level"), "warn");
	ck_assert_str_eq(field(j, "proc"), "livetap-test");
	ck_assert_str_eq(field(j, "msg"), "disk 93% full");
	ck_assert_str_eq(field(j, "room"), "bilibili:123");
	ck_assert_str_eq(field(j, "batch"), "f1/42");
	const char *ts = field(j, "ts");
	ck_assert_ptr_nonnull(ts);
	ck_assert_uint_eq(strlen(ts), 24);
	ck_assert(ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z');
	/* the fixed fields come first, in this order */
	ck_assert_ptr_eq(out, strstr(out, "{\"ts\":\""));
	ck_assert_ptr_nonnull(strstr(out, "\",\"level\":\"warn\",\"proc\":\"livetap-test\",\"msg\":\"disk"));
	cJSON_Delete(j);
	j = line_json(out, 1);
	ck_assert_str_eq(field(j, "level"), "error");
	ck_assert_int_eq(cJSON_GetArraySize(j), 4);
	cJSON_Delete(j);
	free(path);
}
END_TEST

START_TEST(escaping_and_utf8)
{
	char *path = capture_stderr();
	lt_log_init("t", LT_LOG_DEBUG);
	lt_info("k=\"a b\" q=x\"y msg=clash bare =novalue",
		"q\"uote\\ nl\n tab\t ctl\x01 bad\xff\xfe 中文 end");
	const char *out = slurp(path);
	ck_assert_int_eq(count_lines(out), 1);
	cJSON *j = line_json(out, 0);
	ck_assert_str_eq(field(j, "msg"),
			 "q\"uote\\ nl\n tab\t ctl\x01 bad\xef\xbf\xbd\xef\xbf\xbd 中文 end");
	ck_assert_str_eq(field(j, "k"), "a b");
	ck_assert_str_eq(field(j, "q"), "x\"y");
	ck_assert_str_eq(field(j, "ctx_msg"), "clash");
	ck_assert_str_eq(field(j, "bare"), "");
	cJSON_Delete(j);
	free(path);
}
END_TEST

START_TEST(thread_context)
{
	char *path = capture_stderr();
	lt_log_init("t", LT_LOG_INFO);
	lt_log_ctx("room=douyin:7 src=f2");
	lt_info("batch=9", "with ctx");
	lt_log_ctx(NULL);
	lt_info(NULL, "without");
	const char *out = slurp(path);
	cJSON *j = line_json(out, 0);
	ck_assert_str_eq(field(j, "room"), "douyin:7");
	ck_assert_str_eq(field(j, "src"), "f2");
	ck_assert_str_eq(field(j, "batch"), "9");
	cJSON_Delete(j);
	j = line_json(out, 1);
	ck_assert_ptr_null(field(j, "room"));
	cJSON_Delete(j);
	free(path);
}
END_TEST

START_TEST(long_lines_are_bounded)
{
	char *path = capture_stderr();
	lt_log_init("t", LT_LOG_INFO);
	size_t n = 100000;
	char *big = malloc(n + 1);
	ck_assert_ptr_nonnull(big);
	for (size_t i = 0; i < n; i++)
		big[i] = "\"\x01"[i % 2]; /* worst case: every byte escapes */
	big[n] = '\0';
	lt_info("room=r1", "%s", big);
	/* a multi-byte character cut in half at the format limit must not leak */
	memset(big, 'a', n);
	memcpy(big + 4094, "中", 3);
	big[5000] = '\0';
	lt_info(NULL, "%s", big);
	free(big);
	const char *out = slurp(path);
	ck_assert_int_eq(count_lines(out), 2);
	ck_assert_uint_le(strchr(out, '\n') - out, 32768);
	cJSON *j = line_json(out, 0);
	ck_assert_str_eq(field(j, "truncated"), "1");
	ck_assert_str_eq(field(j, "room"), "r1");
	cJSON_Delete(j);
	j = line_json(out, 1);
	ck_assert_str_eq(field(j, "truncated"), "1");
	cJSON_Delete(j);
	free(path);
}
END_TEST

static off_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

START_TEST(rotation)
{
	char *path = capture_stderr(); /* keep the test's stderr quiet */
	char *dir = lt_test_tmpdir("logrot");
	char file[512], name[600];
	snprintf(file, sizeof file, "%s/lt.log", dir);
	lt_log_init("t", LT_LOG_INFO);
	lt_log_set_stderr(false);
	ck_assert_int_eq(lt_log_open_file(file, 1000, 2), LT_OK);
	for (int i = 0; i < 60; i++)
		lt_info("room=r", "line %03d", i);
	lt_log_close();
	/* lt.log, lt.log.1, lt.log.2 exist, each under the limit; no lt.log.3 */
	ck_assert_int_gt(file_size(file), 0);
	ck_assert_int_le(file_size(file), 1000);
	for (int k = 1; k <= 2; k++) {
		snprintf(name, sizeof name, "%s.%d", file, k);
		ck_assert_int_gt(file_size(name), 0);
		ck_assert_int_le(file_size(name), 1000);
	}
	snprintf(name, sizeof name, "%s.3", file);
	ck_assert_int_eq(file_size(name), -1);
	/* the newest line is last in lt.log; lt.log.1 holds the lines just before */
	const char *cur = slurp(file);
	int nlines = count_lines(cur);
	cJSON *j = line_json(cur, nlines - 1);
	ck_assert_str_eq(field(j, "msg"), "line 059");
	cJSON_Delete(j);
	j = line_json(cur, 0);
	int first = atoi(field(j, "msg") + 5);
	cJSON_Delete(j);
	snprintf(name, sizeof name, "%s.1", file);
	const char *prev = slurp(name);
	j = line_json(prev, count_lines(prev) - 1);
	ck_assert_int_eq(atoi(field(j, "msg") + 5), first - 1);
	cJSON_Delete(j);
	/* stderr was off */
	ck_assert_str_eq(slurp(path), "");
	/* Reopening appends and continues the size count. */
	ck_assert_int_eq(lt_log_open_file(file, 0, 0), LT_OK);
	lt_info(NULL, "appended");
	lt_log_close();
	ck_assert_int_eq(count_lines(slurp(file)), nlines + 1);
	ck_assert_int_eq(lt_log_open_file("/nonexistent/dir/x.log", 0, 0), LT_EIO);
	free(dir);
	free(path);
}
END_TEST

#define THREADS	   4
#define PER_THREAD 500

static void *writer(void *arg)
{
	char ctx[32];
	snprintf(ctx, sizeof ctx, "t=%d", (int)(long)arg);
	for (int i = 0; i < PER_THREAD; i++)
		lt_info(ctx,
			"message %d from a thread with some padding to make lines longer than a few bytes",
			i);
	return NULL;
}

START_TEST(concurrent_lines_stay_whole)
{
	char *path = capture_stderr();
	lt_log_init("t", LT_LOG_INFO);
	pthread_t th[THREADS];
	for (long i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, writer, (void *)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	const char *out = slurp(path);
	ck_assert_int_eq(count_lines(out), THREADS * PER_THREAD);
	int per[THREADS] = {0};
	const char *p = out;
	for (int i = 0; i < THREADS * PER_THREAD; i++) {
		cJSON *j = line_json(p, 0); /* one pass: each line from its start */
		per[atoi(field(j, "t"))]++;
		cJSON_Delete(j);
		p = strchr(p, '\n') + 1;
	}
	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(per[i], PER_THREAD);
	free(path);
}
END_TEST

START_TEST(level_names)
{
	ck_assert_int_eq(lt_log_level_parse("debug"), LT_LOG_DEBUG);
	ck_assert_int_eq(lt_log_level_parse("info"), LT_LOG_INFO);
	ck_assert_int_eq(lt_log_level_parse("warn"), LT_LOG_WARN);
	ck_assert_int_eq(lt_log_level_parse("warning"), LT_LOG_WARN);
	ck_assert_int_eq(lt_log_level_parse("error"), LT_LOG_ERROR);
	ck_assert_int_eq(lt_log_level_parse("off"), LT_LOG_OFF);
	ck_assert_int_eq(lt_log_level_parse("INFO"), -1);
	ck_assert_int_eq(lt_log_level_parse(""), -1);
	ck_assert_int_eq(lt_log_level_parse(NULL), -1);
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, fields_and_levels);
	tcase_add_test(tc, escaping_and_utf8);
	tcase_add_test(tc, thread_context);
	tcase_add_test(tc, long_lines_are_bounded);
	tcase_add_test(tc, rotation);
	tcase_add_test(tc, concurrent_lines_stay_whole);
	tcase_add_test(tc, level_names);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return lt_test_run_suite(log_suite());
}
