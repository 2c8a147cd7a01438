/* SPDX-License-Identifier: MIT */
/*
 * test_app: the program skeleton driven with argv arrays — --help,
 * --version, the one-line usage errors with exit status 2, option values in
 * every spelling, --check-config (secrets as ***, bad config exits 1), the
 * set-up of logging from the config, and the signal flags and the main loop.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/app.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/sig.h"
#include "lt_config.h"
#include "tests/support/testsupport.h"

static const struct lt_app_opt opts[] = {
    {"room", 'r', true, "ID", "the room to watch"},
    {"platform", 0, true, "P", "bilibili, douyin or kook"},
    {"stdout", 0, false, NULL, "print messages instead of pushing them"},
    {NULL, 0, false, NULL, NULL},
};
static const struct lt_app_spec spec = {"livetap-test", "Tests the program skeleton.", opts, NULL};
static const char *const no_env[] = {NULL};

/* Captured output of one call. */
struct cap {
	char *out, *err;
	size_t outn, errn;
	FILE *fo, *fe;
};

static void cap_open(struct cap *c)
{
	memset(c, 0, sizeof *c);
	c->fo = open_memstream(&c->out, &c->outn);
	c->fe = open_memstream(&c->err, &c->errn);
	ck_assert(c->fo && c->fe);
}

static void cap_close(struct cap *c)
{
	fclose(c->fo);
	fclose(c->fe);
}

static void cap_free(struct cap *c)
{
	free(c->out);
	free(c->err);
}

/* Parse a NULL-terminated argv; returns the status, *app when continuing. */
static int parse(struct cap *c, struct lt_app **app, const char *const *args)
{
	int argc = 0;
	while (args[argc])
		argc++;
	cap_open(c);
	int rc = lt_app_parse(&spec, argc, (char *const *)args, c->fo, c->fe, app);
	cap_close(c);
	return rc;
}

/* A bad command line: exit 2, nothing on stdout, exactly want on stderr. */
static void bad(const char *const *args, const char *want)
{
	struct cap c;
	struct lt_app *app = (struct lt_app *)1;
	ck_assert_int_eq(parse(&c, &app, args), 2);
	ck_assert_ptr_null(app);
	ck_assert_str_eq(c.err, want);
	ck_assert_str_eq(c.out, "");
	cap_free(&c);
}

#if defined(__SANITIZE_ADDRESS__)
#define LT_OWN_ALLOCATOR 1 /* AddressSanitizer's malloc: nothing of glibc's to trim */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LT_OWN_ALLOCATOR 1
#endif
#endif

#ifndef LT_OWN_ALLOCATOR
static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}
#endif

/* A burst's small blocks, freed under one that stays: the heap cannot
 * shrink from the top, and free() alone keeps it resident; releasing gives
 * it back. */
START_TEST(release_memory)
{
#ifdef LT_OWN_ALLOCATOR
	printf("release_memory: skipped under AddressSanitizer (its own allocator)\n");
#else
	enum { N = 40000, SZ = 1000 }; /* 40 MB in blocks below the mmap threshold */
	char **blocks = malloc(N * sizeof(*blocks));
	ck_assert_ptr_nonnull(blocks);
	for (int i = 0; i < N; i++) {
		blocks[i] = malloc(SZ);
		ck_assert_ptr_nonnull(blocks[i]);
		memset(blocks[i], i & 0xff, SZ);
	}
	char *pin = malloc(SZ); /* at the top of the heap */
	memset(pin, 1, SZ);
	long full = rss_kb();
	for (int i = 0; i < N; i++)
		free(blocks[i]);
	long freed = rss_kb();
	lt_app_release_memory();
	long released = rss_kb();
	printf("release_memory: RSS %ld kB with the burst, %ld kB after free, %ld kB after release\n", full,
	       freed, released);
	ck_assert_int_gt(full - released, 30000);
	ck_assert_int_lt(released, freed);
	free(pin);
	free(blocks);
#endif
}
END_TEST

START_TEST(help)
{
	struct cap c;
	struct lt_app *app = NULL;
	ck_assert_int_eq(parse(&c, &app, (const char *const[]){"x", "--help", NULL}), 0);
	ck_assert_ptr_null(app);
	ck_assert_ptr_eq(strstr(c.out, "Usage: livetap-test [OPTIONS]\n"), c.out);
	ck_assert_ptr_nonnull(strstr(c.out, "Tests the program skeleton."));
	ck_assert_ptr_nonnull(strstr(c.out, "-r, --room ID"));
	ck_assert_ptr_nonnull(strstr(c.out, "--stdout"));
	ck_assert_ptr_nonnull(strstr(c.out, "-c, --config FILE"));
	ck_assert_ptr_nonnull(strstr(c.out, "--check-config"));
	ck_assert_ptr_nonnull(strstr(c.out, "--log-level LEVEL"));
	ck_assert_str_eq(c.err, "");
	cap_free(&c);
	/* -h wins even after other options, and before a bad one */
	ck_assert_int_eq(parse(&c, &app, (const char *const[]){"x", "--room", "1", "-h", "--bogus", NULL}),
			 0);
	ck_assert_str_eq(c.err, "");
	cap_free(&c);
}
END_TEST

START_TEST(version)
{
	struct cap c;
	struct lt_app *app = NULL;
	ck_assert_int_eq(parse(&c, &app, (const char *const[]){"x", "--version", NULL}), 0);
	char first[64];
	snprintf(first, sizeof first, "livetap-test %s\n", LT_VERSION);
	ck_assert_ptr_eq(strstr(c.out, first), c.out);
	ck_assert_ptr_nonnull(strstr(c.out, "\n  hiredis 0."));
	ck_assert_ptr_nonnull(strstr(c.out, "\n  libpq "));
	ck_assert_ptr_nonnull(strstr(c.out, "\n  libwebsockets 4."));
	ck_assert_ptr_nonnull(strstr(c.out, "\n  nng 1."));
	ck_assert_ptr_nonnull(strstr(c.out, "\n  cJSON 1."));
	cap_free(&c);
	ck_assert_int_eq(parse(&c, &app, (const char *const[]){"x", "-V", NULL}), 0);
	ck_assert_ptr_eq(strstr(c.out, first), c.out);
	cap_free(&c);
}
END_TEST

START_TEST(config_reference)
{
	struct cap c;
	struct lt_app *app = NULL;
	ck_assert_int_eq(parse(&c, &app, (const char *const[]){"x", "--config-reference", NULL}), 0);
	ck_assert_ptr_eq(strstr(c.out, "| key | environment |"), c.out);
	ck_assert_ptr_nonnull(strstr(c.out, "| `redis.url` | `LIVETAP_REDIS_URL` |"));
	cap_free(&c);
}
END_TEST

START_TEST(usage_errors)
{
	bad((const char *const[]){"x", "--bogus", NULL},
	    "livetap-test: unknown option '--bogus' (try --help)\n");
	bad((const char *const[]){"x", "--bogus=1", NULL},
	    "livetap-test: unknown option '--bogus' (try --help)\n");
	bad((const char *const[]){"x", "-z", NULL}, "livetap-test: unknown option '-z' (try --help)\n");
	bad((const char *const[]){"x", "--room", NULL},
	    "livetap-test: missing argument for option '--room' (try --help)\n");
	bad((const char *const[]){"x", "-r", NULL},
	    "livetap-test: missing argument for option '--room' (try --help)\n");
	bad((const char *const[]){"x", "--config", NULL},
	    "livetap-test: missing argument for option '--config' (try --help)\n");
	bad((const char *const[]){"x", "stray", NULL},
	    "livetap-test: unexpected argument 'stray' (try --help)\n");
	bad((const char *const[]){"x", "--", "stray", NULL},
	    "livetap-test: unexpected argument 'stray' (try --help)\n");
	bad((const char *const[]){"x", "--stdout=yes", NULL},
	    "livetap-test: option takes no argument: '--stdout=yes' (try --help)\n");
	bad((const char *const[]){"x", "--log-level", "loud", NULL},
	    "livetap-test: bad log level (debug, info, warn, error, off) 'loud' (try --help)\n");
}
END_TEST

START_TEST(values)
{
	struct cap c;
	struct lt_app *app = NULL;
	ck_assert_int_eq(
	    parse(&c, &app,
		  (const char *const[]){"x", "--room", "1", "-r2", "--room=3", "--platform=kook", "--stdout",
					"--log-level", "debug", "-c", "/some/file.json", "--", NULL}),
	    LT_APP_CONTINUE);
	ck_assert_ptr_nonnull(app);
	ck_assert_str_eq(c.err, "");
	ck_assert_str_eq(lt_app_opt(app, "room"), "3"); /* the last one */
	ck_assert_int_eq(lt_app_count(app, "room"), 3);
	ck_assert_str_eq(lt_app_opt(app, "platform"), "kook");
	ck_assert(lt_app_flag(app, "stdout"));
	ck_assert_str_eq(lt_app_opt(app, "stdout"), "");
	ck_assert_ptr_null(lt_app_config(app));
	lt_app_free(app);
	cap_free(&c);
	ck_assert_int_eq(parse(&c, &app, (const char *const[]){"x", NULL}), LT_APP_CONTINUE);
	ck_assert_ptr_null(lt_app_opt(app, "room"));
	ck_assert(!lt_app_flag(app, "stdout"));
	ck_assert_int_eq(lt_app_count(app, "room"), 0);
	lt_app_free(app);
	cap_free(&c);
}
END_TEST

static char *write_config(const char *text)
{
	char *dir = lt_test_tmpdir("app");
	char *path = malloc(strlen(dir) + 16);
	ck_assert_ptr_nonnull(path);
	sprintf(path, "%s/lt.json", dir);
	free(dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return path;
}

START_TEST(check_config)
{
	char *path =
	    write_config("{\"kook\":{\"token\":\"tok-SECRET\"},\"redis\":{\"url\":\"redis://h:1/2\"}}");
	struct cap c;
	struct lt_app *app = NULL;
	ck_assert_int_eq(
	    parse(&c, &app, (const char *const[]){"x", "--check-config", "--config", path, NULL}),
	    LT_APP_CONTINUE);
	cap_free(&c);
	const char *const env[] = {"LIVETAP_API_KEYS=k-SECRET", NULL};
	cap_open(&c);
	ck_assert_int_eq(lt_app_setup(app, env, c.fo, c.fe), 0);
	cap_close(&c);
	ck_assert_str_eq(c.err, "");
	ck_assert_ptr_null(strstr(c.out, "SECRET"));
	ck_assert_ptr_nonnull(strstr(c.out, "kook.token = ***  (file)\n"));
	ck_assert_ptr_nonnull(strstr(c.out, "api.keys = ***  (env)\n"));
	ck_assert_ptr_nonnull(strstr(c.out, "redis.url = redis://h:1/2  (file)\n"));
	cap_free(&c);
	lt_app_free(app);
	free(path);

	/* A bad file: exit 1 with one line naming the file, the key and the problem. */
	path = write_config("{\"redis\":{\"url\":true}}");
	ck_assert_int_eq(parse(&c, &app, (const char *const[]){"x", "--check-config", "-c", path, NULL}),
			 LT_APP_CONTINUE);
	cap_free(&c);
	cap_open(&c);
	ck_assert_int_eq(lt_app_setup(app, no_env, c.fo, c.fe), 1);
	cap_close(&c);
	char want[600];
	snprintf(want, sizeof want, "livetap-test: %s: redis.url: expected a string, got a boolean\n", path);
	ck_assert_str_eq(c.err, want);
	ck_assert_str_eq(c.out, "");
	cap_free(&c);
	lt_app_free(app);
	free(path);

	/* A missing explicit file, and a bad log.level, also exit 1. */
	ck_assert_int_eq(parse(&c, &app, (const char *const[]){"x", "-c", "/nonexistent.json", NULL}),
			 LT_APP_CONTINUE);
	cap_free(&c);
	cap_open(&c);
	ck_assert_int_eq(lt_app_setup(app, no_env, c.fo, c.fe), 1);
	cap_close(&c);
	ck_assert_ptr_nonnull(strstr(c.err, "livetap-test: /nonexistent.json: cannot open"));
	cap_free(&c);
	lt_app_free(app);
	path = write_config("{\"log\":{\"level\":\"chatty\"}}");
	ck_assert_int_eq(parse(&c, &app, (const char *const[]){"x", "-c", path, NULL}), LT_APP_CONTINUE);
	cap_free(&c);
	cap_open(&c);
	ck_assert_int_eq(lt_app_setup(app, no_env, c.fo, c.fe), 1);
	cap_close(&c);
	ck_assert_ptr_nonnull(strstr(c.err, "log.level: unknown level 'chatty'"));
	cap_free(&c);
	lt_app_free(app);
	free(path);
}
END_TEST

START_TEST(setup_logging)
{
	char *dir = lt_test_tmpdir("applog");
	char logfile[512], json[1024];
	snprintf(logfile, sizeof logfile, "%s/app.log", dir);
	snprintf(json, sizeof json, "{\"log\":{\"level\":\"warn\",\"file\":\"%s\",\"stderr\":false}}",
		 logfile);
	char *path = write_config(json);
	struct cap c;
	struct lt_app *app = NULL;
	ck_assert_int_eq(parse(&c, &app, (const char *const[]){"x", "-c", path, NULL}), LT_APP_CONTINUE);
	cap_free(&c);
	cap_open(&c);
	ck_assert_int_eq(lt_app_setup(app, no_env, c.fo, c.fe), LT_APP_CONTINUE);
	cap_close(&c);
	cap_free(&c);
	ck_assert_int_eq(lt_log_level_cur, LT_LOG_WARN);
	struct lt_buf m = LT_BUF_INIT;
	lt_metrics_render(&m);
	ck_assert_ptr_nonnull(strstr(
	    lt_buf_cstr(&m), "\nlivetap_build_info{proc=\"livetap-test\",version=\"" LT_VERSION "\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(lt_buf_cstr(&m), "\nprocess_start_time_seconds 1"));
	lt_buf_free(&m);
	ck_assert_str_eq(lt_config_str(lt_app_config(app), "log.file"), logfile);
	lt_info(NULL, "below the level");
	lt_warn("room=r", "into the file");
	lt_app_startup_log(app); /* info: filtered */
	lt_app_free(app);	 /* closes the file */
	FILE *f = fopen(logfile, "r");
	ck_assert_ptr_nonnull(f);
	char line[1024];
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	ck_assert_ptr_nonnull(
	    strstr(line, "\"level\":\"warn\",\"proc\":\"livetap-test\",\"msg\":\"into the file\""));
	ck_assert_ptr_null(fgets(line, sizeof line, f));
	fclose(f);

	/* --log-level beats log.level */
	ck_assert_int_eq(
	    parse(&c, &app, (const char *const[]){"x", "-c", path, "--log-level", "debug", NULL}),
	    LT_APP_CONTINUE);
	cap_free(&c);
	cap_open(&c);
	ck_assert_int_eq(lt_app_setup(app, no_env, c.fo, c.fe), LT_APP_CONTINUE);
	cap_close(&c);
	cap_free(&c);
	ck_assert_int_eq(lt_log_level_cur, LT_LOG_DEBUG);
	lt_app_startup_log(app);
	lt_app_free(app);
	f = fopen(logfile, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
	ck_assert_ptr_nonnull(strstr(line, "\"msg\":\"livetap-test " LT_VERSION " starting\""));
	ck_assert_ptr_nonnull(strstr(line, "\"version\":\"" LT_VERSION "\",\"hiredis\":\"0."));
	ck_assert_ptr_nonnull(strstr(line, "\"nng\":\"1."));
	ck_assert_ptr_nonnull(strstr(line, "\"config\":\""));
	fclose(f);
	free(path);
	free(dir);
}
END_TEST

struct ticker {
	int calls, stop_at, fail_at;
	int signo;
};

static int tick(void *ctx)
{
	struct ticker *t = ctx;
	t->calls++;
	if (t->calls == t->stop_at)
		raise(t->signo);
	if (t->calls == t->fail_at)
		return LT_EIO;
	return LT_OK;
}

START_TEST(signals_and_loop)
{
	ck_assert_int_eq(lt_sig_install(), LT_OK);
	ck_assert(!lt_sig_stop_requested());
	ck_assert(!lt_sig_reload_take());
	raise(SIGHUP);
	ck_assert(lt_sig_reload_take());
	ck_assert(!lt_sig_reload_take()); /* once per signal */
	ck_assert(!lt_sig_stop_requested());
	raise(SIGPIPE); /* ignored: we are still here */
	ck_assert(!lt_sig_stop_requested());

	struct ticker t = {0, 0, 5, SIGTERM};
	ck_assert_int_eq(lt_app_loop(tick, &t), LT_EIO); /* tick's error ends the loop */
	ck_assert_int_eq(t.calls, 5);

	struct ticker t2 = {0, 7, 0, SIGTERM};
	ck_assert_int_eq(lt_app_loop(tick, &t2), LT_OK); /* SIGTERM ends it after that tick */
	ck_assert_int_eq(t2.calls, 7);
	ck_assert(lt_sig_stop_requested());
}
END_TEST

START_TEST(sigint_and_request_stop)
{
	ck_assert_int_eq(lt_sig_install(), LT_OK);
	raise(SIGINT);
	ck_assert(lt_sig_stop_requested());
}
END_TEST

START_TEST(request_stop)
{
	ck_assert(!lt_sig_stop_requested());
	lt_sig_request_stop();
	ck_assert(lt_sig_stop_requested());
	struct ticker t = {0, 0, 0, SIGTERM};
	ck_assert_int_eq(lt_app_loop(tick, &t), LT_OK);
	ck_assert_int_eq(t.calls, 0);
}
END_TEST

static Suite *app_suite(void)
{
	Suite *s = suite_create("app");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, help);
	tcase_add_test(tc, version);
	tcase_add_test(tc, config_reference);
	tcase_add_test(tc, usage_errors);
	tcase_add_test(tc, values);
	tcase_add_test(tc, check_config);
	tcase_add_test(tc, setup_logging);
	tcase_add_test(tc, signals_and_loop);
	tcase_add_test(tc, sigint_and_request_stop);
	tcase_add_test(tc, request_stop);
	tcase_add_test(tc, release_memory);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return lt_test_run_suite(app_suite());
}
