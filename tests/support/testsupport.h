/* SPDX-License-Identifier: MIT */
/*
 * testsupport: what every Check test binary shares.
 *
 * tests/run starts a real redis-server and a real PostgreSQL in a private
 * temporary directory and exports LIVETAP_REDIS_URL and LIVETAP_PG_DSN; the
 * integration tests read them here. A test run without them (a bare
 * `meson test`) skips integration tests with exit status 77, which meson
 * reports as SKIP; tests/run always provides them and fails if any is skipped.
 */
#ifndef LT_TESTSUPPORT_H
#define LT_TESTSUPPORT_H

#include <check.h>

/* The Redis URL / PostgreSQL DSN that tests/run started; exit(77) if unset. */
const char *lt_test_redis_url(void);
const char *lt_test_pg_dsn(void);

/* A fresh directory under $LT_TEST_TMPDIR (or /tmp) named after tag; the
 * caller frees the string. The directory is left for post-mortems. */
char *lt_test_tmpdir(const char *tag);

/* The source and build roots (from the environment meson test sets). */
const char *lt_test_srcdir(void);
const char *lt_test_builddir(void);

/* Run s with CK_NORMAL output (fork mode as CK_FORK says), free the runner
 * and return EXIT_SUCCESS if every test passed, EXIT_FAILURE otherwise. */
int lt_test_run_suite(Suite *s);

#endif
