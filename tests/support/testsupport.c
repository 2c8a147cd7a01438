/* SPDX-License-Identifier: MIT */
/* testsupport: environment, temp dirs and the Check runner for tests. */
#include "tests/support/testsupport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *need_env(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v) {
		fprintf(stderr, "%s is not set: integration tests run under tests/run; skipping\n", name);
		exit(77);
	}
	return v;
}

const char *lt_test_redis_url(void) { return need_env("LIVETAP_REDIS_URL"); }
const char *lt_test_pg_dsn(void) { return need_env("LIVETAP_PG_DSN"); }

const char *lt_test_srcdir(void)
{
	const char *v = getenv("LT_SRCDIR");
	return v && *v ? v : ".";
}

const char *lt_test_builddir(void)
{
	const char *v = getenv("LT_BUILDDIR");
	return v && *v ? v : ".";
}

char *lt_test_tmpdir(const char *tag)
{
	const char *base = getenv("LT_TEST_TMPDIR");
	if (!base || !*base)
		base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	size_t n = strlen(base) + strlen(tag) + 32;
	char *p = malloc(n);
	if (!p)
		abort();
	snprintf(p, n, "%s/%s.XXXXXX", base, tag);
	if (!mkdtemp(p)) {
		perror("mkdtemp");
		abort();
	}
	return p;
}

int lt_test_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
