/* SPDX-License-Identifier: MIT */
/*
 * test_config: the settings table and lt_config_load — precedence (default <
 * file < environment), ${key} expansion, every type, the error messages that
 * name the file, the key and the problem, secrets never shown, and the
 * Markdown reference.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "tests/support/testsupport.h"

static const char *const no_env[] = {NULL};

/* Write text to DIR/name and return the path (caller frees). */
static char *write_file(const char *name, const char *text)
{
	char *dir = lt_test_tmpdir("cfg");
	size_t n = strlen(dir) + strlen(name) + 2;
	char *path = malloc(n);
	ck_assert_ptr_nonnull(path);
	snprintf(path, n, "%s/%s", dir, name);
	free(dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* Load expecting failure; returns the message (static). */
static const char *load_err(const char *json, const char *const *envp, char **path_out)
{
	static struct lt_error e;
	char *path = write_file("livetap.json", json);
	struct lt_config *c = NULL;
	memset(&e, 0, sizeof e);
	int rc = lt_config_load(path, envp, &c, &e);
	ck_assert_int_eq(rc, LT_ECONFIG);
	ck_assert_int_eq(e.code, LT_ECONFIG);
	ck_assert_ptr_null(c);
	if (path_out)
		*path_out = path;
	else
		free(path);
	return e.message;
}

START_TEST(table_is_sane)
{
	/* Unique keys, known types, help on every entry, int defaults in range. */
	for (int i = 0; lt_cfg_table[i].key; i++) {
		ck_assert_msg(lt_cfg_table[i].help && *lt_cfg_table[i].help, "%s has no help",
			      lt_cfg_table[i].key);
		ck_assert_int_le(lt_cfg_table[i].type, LT_CFG_SECRET_LIST);
		for (int j = i + 1; lt_cfg_table[j].key; j++)
			ck_assert_msg(strcmp(lt_cfg_table[i].key, lt_cfg_table[j].key) != 0,
				      "duplicate key %s", lt_cfg_table[i].key);
		if (lt_cfg_table[i].type == LT_CFG_SECRET || lt_cfg_table[i].type == LT_CFG_SECRET_LIST)
			ck_assert_msg(lt_cfg_table[i].def == NULL, "secret %s has a default",
				      lt_cfg_table[i].key);
	}
}
END_TEST

START_TEST(defaults_without_file)
{
	/* The default path is relative: from an empty directory it is missing,
	 * which is fine. */
	char *dir = lt_test_tmpdir("cfgcwd");
	ck_assert_int_eq(chdir(dir), 0);
	struct lt_config *c = NULL;
	struct lt_error e = {0};
	ck_assert_int_eq(lt_config_load(NULL, no_env, &c, &e), LT_OK);
	ck_assert_ptr_null(lt_config_path(c));
	ck_assert_str_eq(lt_config_str(c, "state_dir"), "./var");
	ck_assert_str_eq(lt_config_str(c, "redis.url"), "redis://127.0.0.1:6379/0");
	ck_assert_str_eq(lt_config_str(c, "pg.dsn"), "host=127.0.0.1 dbname=livetap");
	ck_assert_str_eq(lt_config_str(c, "processor.listen"), "ipc://./var/processor.ipc");
	ck_assert_str_eq(lt_config_str(c, "persister.listen"), "ipc://./var/persister.ipc");
	ck_assert_str_eq(lt_config_str(c, "fetcher.spool_dir"), "./var/spool");
	ck_assert_str_eq(lt_config_str(c, "api.listen"), "127.0.0.1:8080");
	ck_assert_str_eq(lt_config_str(c, "log.level"), "info");
	ck_assert_str_eq(lt_config_str(c, "log.file"), "");
	ck_assert(lt_config_bool(c, "log.stderr"));
	ck_assert_int_eq(lt_config_int(c, "log.max_bytes"), 10 * 1024 * 1024);
	ck_assert_int_eq(lt_config_int(c, "log.keep"), 5);
	int n = -1;
	ck_assert_str_eq(lt_config_list(c, "fetcher.processors", 0, &n), "ipc://./var/processor.ipc");
	ck_assert_int_eq(n, 1);
	ck_assert_ptr_null(lt_config_list(c, "fetcher.processors", 1, &n));
	ck_assert_ptr_null(lt_config_list(c, "api.keys", 0, &n));
	ck_assert_int_eq(n, 0);
	ck_assert_ptr_null(lt_config_str(c, "kook.token"));
	ck_assert_str_eq(lt_config_source(c, "redis.url"), "default");
	lt_config_free(c);
	free(dir);
}
END_TEST

START_TEST(explicit_path_must_exist)
{
	struct lt_config *c = NULL;
	struct lt_error e = {0};
	ck_assert_int_eq(lt_config_load("/nonexistent/livetap.json", no_env, &c, &e), LT_ECONFIG);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(e.message, "/nonexistent/livetap.json: cannot open") != NULL, "%s", e.message);
}
END_TEST

START_TEST(precedence_default_file_env)
{
	char *path = write_file("livetap.json", "{\n"
						"  \"state_dir\": \"/srv/lt\",\n"
						"  \"redis\": {\"url\": \"redis://10.0.0.1:6380/2\"},\n"
						"  \"pg.dsn\": \"host=db dbname=x\",\n"
						"  \"log\": {\"keep\": 3, \"stderr\": false},\n"
						"  \"processor\": {\"listen\": \"tcp://0.0.0.0:5555\"}\n"
						"}\n");
	const char *const env[] = {"LIVETAP_REDIS_URL=unix:///run/redis.sock", "LIVETAP_LOG_KEEP=7",
				   "LIVETAP_PERSISTER_LISTEN=", /* empty = unset */
				   "UNRELATED=1", NULL};
	struct lt_config *c = NULL;
	struct lt_error e = {0};
	ck_assert_int_eq(lt_config_load(path, env, &c, &e), LT_OK);
	ck_assert_str_eq(lt_config_path(c), path);
	/* env beats file beats default */
	ck_assert_str_eq(lt_config_str(c, "redis.url"), "unix:///run/redis.sock");
	ck_assert_str_eq(lt_config_source(c, "redis.url"), "env");
	ck_assert_int_eq(lt_config_int(c, "log.keep"), 7);
	ck_assert_str_eq(lt_config_str(c, "pg.dsn"), "host=db dbname=x");
	ck_assert_str_eq(lt_config_source(c, "pg.dsn"), "file");
	ck_assert(!lt_config_bool(c, "log.stderr"));
	ck_assert_str_eq(lt_config_str(c, "api.listen"), "127.0.0.1:8080");
	ck_assert_str_eq(lt_config_source(c, "api.listen"), "default");
	/* ${state_dir} follows the file; fetcher.processors follows processor.listen */
	ck_assert_str_eq(lt_config_str(c, "persister.listen"), "ipc:///srv/lt/persister.ipc");
	ck_assert_str_eq(lt_config_str(c, "fetcher.spool_dir"), "/srv/lt/spool");
	ck_assert_str_eq(lt_config_list(c, "fetcher.processors", 0, NULL), "tcp://0.0.0.0:5555");
	lt_config_free(c);

	/* The environment's state_dir moves every default below it. */
	const char *const env2[] = {"LIVETAP_STATE_DIR=/var/lib/ltx", NULL};
	ck_assert_int_eq(lt_config_load(path, env2, &c, &e), LT_OK);
	ck_assert_str_eq(lt_config_str(c, "fetcher.spool_dir"), "/var/lib/ltx/spool");
	ck_assert_str_eq(lt_config_list(c, "fetcher.persisters", 0, NULL),
			 "ipc:///var/lib/ltx/persister.ipc");
	lt_config_free(c);
	free(path);
}
END_TEST

START_TEST(lists_from_file_and_env)
{
	char *path =
	    write_file("l.json", "{\"fetcher\":{\"persisters\":[\"tcp://a:1\",\"\",\"tcp://b:2\"]}}");
	const char *const env[] = {"LIVETAP_FETCHER_PROCESSORS= tcp://x:1 ,, tcp://y:2,", NULL};
	struct lt_config *c = NULL;
	struct lt_error e = {0};
	ck_assert_int_eq(lt_config_load(path, env, &c, &e), LT_OK);
	int n = 0;
	ck_assert_str_eq(lt_config_list(c, "fetcher.persisters", 0, &n), "tcp://a:1");
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(lt_config_list(c, "fetcher.persisters", 1, NULL), "tcp://b:2");
	ck_assert_str_eq(lt_config_list(c, "fetcher.processors", 0, &n), "tcp://x:1");
	ck_assert_str_eq(lt_config_list(c, "fetcher.processors", 1, NULL), "tcp://y:2");
	ck_assert_int_eq(n, 2);
	lt_config_free(c);
	free(path);
}
END_TEST

START_TEST(secrets_are_never_dumped)
{
	char *path = write_file("s.json", "{\"kook\":{\"token\":\"kook-SECRET-1\"}}");
	const char *const env[] = {"LIVETAP_API_KEYS=key-SECRET-a,key-SECRET-b",
				   "LIVETAP_BILIBILI_COOKIE=SESSDATA=SECRET", NULL};
	struct lt_config *c = NULL;
	struct lt_error e = {0};
	ck_assert_int_eq(lt_config_load(path, env, &c, &e), LT_OK);
	ck_assert_str_eq(lt_config_str(c, "kook.token"), "kook-SECRET-1");
	int n = 0;
	ck_assert_str_eq(lt_config_list(c, "api.keys", 1, &n), "key-SECRET-b");
	ck_assert_int_eq(n, 2);
	struct lt_buf b = LT_BUF_INIT;
	lt_config_dump(c, &b);
	const char *d = lt_buf_cstr(&b);
	ck_assert_msg(strstr(d, "SECRET") == NULL, "a secret leaked:\n%s", d);
	ck_assert_ptr_nonnull(strstr(d, "kook.token = ***  (file)\n"));
	ck_assert_ptr_nonnull(strstr(d, "api.keys = ***  (env)\n"));
	ck_assert_ptr_nonnull(strstr(d, "bilibili.cookie = ***  (env)\n"));
	ck_assert_ptr_nonnull(strstr(d, "admin.password = (unset)  (default)\n"));
	ck_assert_ptr_nonnull(strstr(d, "redis.url = redis://127.0.0.1:6379/0  (default)\n"));
	lt_buf_free(&b);
	lt_config_free(c);
	free(path);
}
END_TEST

START_TEST(secrets_from_key_files)
{
	char *tok = write_file("kook.token", "tok-from-file\n");
	char *keys = write_file("api.keys", "k1\nk2\n\nk3\n");
	char *empty = write_file("empty.json", "{}");
	char e1[600], e2[600], e3[600];
	snprintf(e1, sizeof e1, "LIVETAP_KOOK_TOKEN_FILE=%s", tok);
	snprintf(e2, sizeof e2, "LIVETAP_API_KEYS_FILE=%s", keys);
	snprintf(e3, sizeof e3, "LIVETAP_ADMIN_PASSWORD_FILE=%s", "/nonexistent/pw");
	const char *const env[] = {e1, e2, NULL};
	struct lt_config *c = NULL;
	struct lt_error e = {0};
	ck_assert_msg(lt_config_load(empty, env, &c, &e) == LT_OK, "%s", e.message);
	ck_assert_str_eq(lt_config_str(c, "kook.token"), "tok-from-file");
	ck_assert_str_eq(lt_config_source(c, "kook.token"), "env");
	int n = 0;
	ck_assert_str_eq(lt_config_list(c, "api.keys", 2, &n), "k3");
	ck_assert_int_eq(n, 3);
	lt_config_free(c);
	/* the variable itself wins over its _FILE */
	const char *const env2[] = {"LIVETAP_KOOK_TOKEN=direct", e1, NULL};
	ck_assert_int_eq(lt_config_load(empty, env2, &c, &e), LT_OK);
	ck_assert_str_eq(lt_config_str(c, "kook.token"), "direct");
	lt_config_free(c);
	/* a missing key file is an error naming the variable */
	const char *const env3[] = {e3, NULL};
	ck_assert_int_eq(lt_config_load(empty, env3, &c, &e), LT_ECONFIG);
	ck_assert_msg(strstr(e.message,
			     "environment LIVETAP_ADMIN_PASSWORD_FILE: admin.password: cannot read "
			     "'/nonexistent/pw'") == e.message,
		      "%s", e.message);
	/* _FILE is only for secrets */
	const char *const env4[] = {"LIVETAP_REDIS_URL_FILE=/nonexistent", NULL};
	ck_assert_int_eq(lt_config_load(empty, env4, &c, &e), LT_OK);
	lt_config_free(c);
	free(tok);
	free(keys);
	free(empty);
}
END_TEST

START_TEST(unknown_key_suggests)
{
	char *path = NULL;
	const char *m = load_err("{\"redis\":{\"ulr\":\"x\"}}", no_env, &path);
	char want[512];
	snprintf(want, sizeof want, "%s: redis.ulr: unknown setting (did you mean 'redis.url'?)", path);
	ck_assert_str_eq(m, want);
	free(path);
	m = load_err("{\"state_dri\":\"x\"}", no_env, NULL);
	ck_assert_msg(strstr(m, "state_dri: unknown setting (did you mean 'state_dir'?)") != NULL, "%s", m);
	m = load_err("{\"zzzzzz\":{\"qqqq\":1}}", no_env, NULL);
	ck_assert_msg(strstr(m, "zzzzzz.qqqq: unknown setting") != NULL && !strstr(m, "did you mean"), "%s",
		      m);
}
END_TEST

START_TEST(wrong_types_and_ranges)
{
	char *path = NULL;
	const char *m = load_err("{\"redis\":{\"url\":5}}", no_env, &path);
	char want[512];
	snprintf(want, sizeof want, "%s: redis.url: expected a string, got a number", path);
	ck_assert_str_eq(m, want);
	free(path);
	m = load_err("{\"log\":{\"keep\":1000}}", no_env, NULL);
	ck_assert_msg(strstr(m, "log.keep: 1000 is out of range 0..100") != NULL, "%s", m);
	m = load_err("{\"log\":{\"keep\":2.5}}", no_env, NULL);
	ck_assert_msg(strstr(m, "log.keep: expected an integer, got 2.5") != NULL, "%s", m);
	m = load_err("{\"log\":{\"keep\":\"3\"}}", no_env, NULL);
	ck_assert_msg(strstr(m, "log.keep: expected an integer, got a string") != NULL, "%s", m);
	m = load_err("{\"log\":{\"stderr\":\"yes\"}}", no_env, NULL);
	ck_assert_msg(strstr(m, "log.stderr: expected true or false, got a string") != NULL, "%s", m);
	m = load_err("{\"fetcher\":{\"processors\":[1]}}", no_env, NULL);
	ck_assert_msg(strstr(m, "fetcher.processors: expected an array of strings") != NULL, "%s", m);
	m = load_err("{\"fetcher\":{\"spool_dir\":\"${nope}/x\"}}", no_env, &path);
	snprintf(want, sizeof want, "%s: fetcher.spool_dir: ${nope} does not name a plain setting", path);
	ck_assert_str_eq(m, want);
	free(path);
	m = load_err("{\"fetcher\":{\"spool_dir\":\"${kook.token}\"}}", no_env, NULL);
	ck_assert_msg(strstr(m, "does not name a plain setting") != NULL, "%s", m);
	m = load_err("[1,2]", no_env, NULL);
	ck_assert_msg(strstr(m, "expected a JSON object at the top") != NULL, "%s", m);
	m = load_err("{\n  \"redis\": {\"url\": \"x\",}\n}\n", no_env, NULL);
	ck_assert_msg(strstr(m, "not valid JSON (line 2") != NULL, "%s", m);
}
END_TEST

START_TEST(env_errors_name_the_variable)
{
	struct lt_config *c = NULL;
	struct lt_error e = {0};
	char *path = write_file("ok.json", "{}");
	const char *const env[] = {"LIVETAP_LOG_MAX_BYTES=12abc", NULL};
	ck_assert_int_eq(lt_config_load(path, env, &c, &e), LT_ECONFIG);
	ck_assert_str_eq(
	    e.message, "environment LIVETAP_LOG_MAX_BYTES: log.max_bytes: expected an integer, got '12abc'");
	const char *const env2[] = {"LIVETAP_LOG_STDERR=maybe", NULL};
	ck_assert_int_eq(lt_config_load(path, env2, &c, &e), LT_ECONFIG);
	ck_assert_str_eq(e.message,
			 "environment LIVETAP_LOG_STDERR: log.stderr: expected true or false, got 'maybe'");
	const char *const env3[] = {"LIVETAP_LOG_MAX_BYTES=100", NULL};
	ck_assert_int_eq(lt_config_load(path, env3, &c, &e), LT_ECONFIG);
	ck_assert_msg(strstr(e.message, "100 is out of range 4096..") != NULL, "%s", e.message);
	const char *const env5[] = {"LIVETAP_FETCHER_SPOOL_DIR=${bogus}/s", NULL};
	ck_assert_int_eq(lt_config_load(path, env5, &c, &e), LT_ECONFIG);
	ck_assert_str_eq(e.message, "environment LIVETAP_FETCHER_SPOOL_DIR: fetcher.spool_dir: ${bogus} does "
				    "not name a plain setting");
	/* Booleans accept the usual spellings. */
	const char *const env4[] = {"LIVETAP_LOG_STDERR=off", NULL};
	ck_assert_int_eq(lt_config_load(path, env4, &c, &e), LT_OK);
	ck_assert(!lt_config_bool(c, "log.stderr"));
	lt_config_free(c);
	free(path);
}
END_TEST

START_TEST(contract_environment_names)
{
	struct lt_buf b = LT_BUF_INIT;
	lt_config_reference_md(&b);
	const char *md = lt_buf_cstr(&b);
	ck_assert_ptr_nonnull(strstr(md, "| key | environment | type | default | meaning |\n"));
	static const char *const rows[] = {
	    "| `state_dir` | `LIVETAP_STATE_DIR` |",
	    "| `redis.url` | `LIVETAP_REDIS_URL` |",
	    "| `pg.dsn` | `LIVETAP_PG_DSN` |",
	    "| `processor.listen` | `LIVETAP_PROCESSOR_LISTEN` |",
	    "| `persister.listen` | `LIVETAP_PERSISTER_LISTEN` |",
	    "| `fetcher.processors` | `LIVETAP_FETCHER_PROCESSORS` |",
	    "| `fetcher.persisters` | `LIVETAP_FETCHER_PERSISTERS` |",
	    "| `fetcher.spool_dir` | `LIVETAP_FETCHER_SPOOL_DIR` |",
	    "| `api.listen` | `LIVETAP_API_LISTEN` |",
	    "| `api.keys` | `LIVETAP_API_KEYS` |",
	    "| `admin.password` | `LIVETAP_ADMIN_PASSWORD` |",
	    "| `bilibili.api_base` | `LIVETAP_BILIBILI_API_BASE` |",
	    "| `kook.token` | `LIVETAP_KOOK_TOKEN` |",
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		ck_assert_msg(strstr(md, rows[i]) != NULL, "missing row %s", rows[i]);
	/* One row per setting, plus the two header lines. */
	int lines = 0, keys = 0;
	for (const char *p = md; *p; p++)
		lines += *p == '\n';
	while (lt_cfg_table[keys].key)
		keys++;
	ck_assert_int_eq(lines, keys + 2);
	lt_buf_free(&b);
}
END_TEST

START_TEST(shipped_config_loads)
{
	/* deploy/livetap.json must stay valid as the table changes. */
	char path[1024];
	snprintf(path, sizeof path, "%s/deploy/livetap.json", lt_test_srcdir());
	if (access(path, R_OK) != 0)
		return; /* not shipped yet */
	struct lt_config *c = NULL;
	struct lt_error e = {0};
	ck_assert_msg(lt_config_load(path, no_env, &c, &e) == LT_OK, "%s", e.message);
	ck_assert_str_eq(lt_config_path(c), path);
	lt_config_free(c);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, table_is_sane);
	tcase_add_test(tc, defaults_without_file);
	tcase_add_test(tc, explicit_path_must_exist);
	tcase_add_test(tc, precedence_default_file_env);
	tcase_add_test(tc, lists_from_file_and_env);
	tcase_add_test(tc, secrets_are_never_dumped);
	tcase_add_test(tc, secrets_from_key_files);
	tcase_add_test(tc, unknown_key_suggests);
	tcase_add_test(tc, wrong_types_and_ranges);
	tcase_add_test(tc, env_errors_name_the_variable);
	tcase_add_test(tc, contract_environment_names);
	tcase_add_test(tc, shipped_config_loads);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return lt_test_run_suite(config_suite());
}
