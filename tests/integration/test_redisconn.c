/* SPDX-License-Identifier: MIT */
/*
 * test_redisconn: lt_redis_connect against the real Redis that tests/run
 * started (LIVETAP_REDIS_URL): PING, SELECT of the URL's database, AUTH being
 * sent, bad URLs rejected with a clear message, a refused port giving
 * LT_ECONN, passwords never shown; and a unix socket, on a private
 * redis-server this test starts and stops itself.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/redisconn.h"
#include "tests/support/testsupport.h"

/* "redis://127.0.0.1:PORT" from the test URL, without its /db. */
static void base_url(char *out, size_t cap)
{
	const char *u = lt_test_redis_url();
	ck_assert_msg(strncmp(u, "redis://", 8) == 0, "LIVETAP_REDIS_URL=%s is not redis://", u);
	const char *slash = strchr(u + 8, '/');
	size_t n = slash ? (size_t)(slash - u) : strlen(u);
	ck_assert_uint_lt(n, cap);
	memcpy(out, u, n);
	out[n] = '\0';
}

static redisReply *cmd(redisContext *c, const char *fmt, const char *a, const char *b)
{
	redisReply *r = redisCommand(c, fmt, a, b);
	ck_assert_msg(r != NULL, "redis: %s", c->errstr);
	return r;
}

START_TEST(connect_and_ping)
{
	redisContext *c = NULL;
	struct lt_error e = {0};
	ck_assert_msg(lt_redis_connect(lt_test_redis_url(), 2000, &c, &e) == LT_OK, "%s", e.message);
	ck_assert_ptr_nonnull(c);
	redisReply *r = cmd(c, "PING", NULL, NULL);
	ck_assert_int_eq(r->type, REDIS_REPLY_STATUS);
	ck_assert_str_eq(r->str, "PONG");
	freeReplyObject(r);
	redisFree(c);
}
END_TEST

START_TEST(select_database)
{
	char base[256], u3[300], u4[300], key[64];
	base_url(base, sizeof base);
	snprintf(u3, sizeof u3, "%s/3", base);
	snprintf(u4, sizeof u4, "%s/4", base);
	snprintf(key, sizeof key, "lt:test:redisconn:%ld", (long)getpid());
	redisContext *c3 = NULL, *c4 = NULL, *again = NULL;
	struct lt_error e = {0};
	ck_assert_msg(lt_redis_connect(u3, 2000, &c3, &e) == LT_OK, "%s", e.message);
	ck_assert_msg(lt_redis_connect(u4, 2000, &c4, &e) == LT_OK, "%s", e.message);
	freeReplyObject(cmd(c3, "SET %s %s", key, "in-db-3"));
	redisReply *r = cmd(c4, "GET %s", key, NULL);
	ck_assert_int_eq(r->type, REDIS_REPLY_NIL); /* not in db 4 */
	freeReplyObject(r);
	ck_assert_msg(lt_redis_connect(u3, 2000, &again, &e) == LT_OK, "%s", e.message);
	r = cmd(again, "GET %s", key, NULL);
	ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
	ck_assert_str_eq(r->str, "in-db-3");
	freeReplyObject(r);
	/* the server agrees which database this client is in */
	r = cmd(again, "CLIENT INFO", NULL, NULL);
	if (r->type == REDIS_REPLY_STRING)
		ck_assert_msg(strstr(r->str, " db=3 ") != NULL, "%s", r->str);
	freeReplyObject(r);
	freeReplyObject(cmd(c3, "DEL %s", key, NULL));
	redisFree(c3);
	redisFree(c4);
	redisFree(again);
	/* a database the server does not have is a Redis error */
	char u99[300];
	snprintf(u99, sizeof u99, "%s/9999", base);
	redisContext *c = NULL;
	ck_assert_int_eq(lt_redis_connect(u99, 2000, &c, &e), LT_EREDIS);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(e.message, "SELECT") != NULL, "%s", e.message);
}
END_TEST

START_TEST(auth_is_sent)
{
	/* The test server has no password, so AUTH is answered with an error:
	 * proof that the password reached the server, and LT_EAUTH. */
	char base[256], url[400];
	base_url(base, sizeof base);
	snprintf(url, sizeof url, "redis://:hunter2-pw@%s/0", base + 8);
	redisContext *c = NULL;
	struct lt_error e = {0};
	ck_assert_int_eq(lt_redis_connect(url, 2000, &c, &e), LT_EAUTH);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(e.message, "AUTH") != NULL, "%s", e.message);
	ck_assert_msg(strstr(e.message, "hunter2") == NULL, "password leaked: %s", e.message);
	ck_assert_msg(strstr(e.message, ":***@") != NULL, "%s", e.message);
}
END_TEST

START_TEST(bad_urls)
{
	static const char *const urls[] = {
	    "",
	    "http://127.0.0.1:6379/0",
	    "redis://",
	    "redis://:6379/0",
	    "redis://127.0.0.1:99999/0",
	    "redis://127.0.0.1:0/0",
	    "redis://127.0.0.1:63x9/0",
	    "redis://127.0.0.1:6379/abc",
	    "redis://127.0.0.1:6379/-1",
	    "redis://[::1/0",
	    "unix://relative/path",
	    "unix:///run/redis.sock?db=x",
	    "unix:///run/redis.sock?color=blue",
	};
	for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
		redisContext *c = NULL;
		struct lt_error e = {0};
		ck_assert_msg(lt_redis_connect(urls[i], 500, &c, &e) == LT_EINVAL, "accepted '%s'", urls[i]);
		ck_assert_ptr_null(c);
		ck_assert_msg(strstr(e.message, "redis.url: bad URL '") == e.message, "%s", e.message);
		ck_assert_ptr_nonnull(strstr(e.message, "expected redis://"));
	}
	redisContext *c = NULL;
	struct lt_error e = {0};
	ck_assert_int_eq(lt_redis_connect(NULL, 500, &c, &e), LT_EINVAL);
	ck_assert_int_eq(lt_redis_connect("redis://:s3cret@[::1/0", 500, &c, &e), LT_EINVAL);
	ck_assert_msg(strstr(e.message, "s3cret") == NULL, "%s", e.message);
}
END_TEST

START_TEST(refused_port)
{
	/* A port nobody listens on: bind one, note it, close it. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {0};
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	socklen_t sl = sizeof sa;
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	close(fd);
	char url[128];
	snprintf(url, sizeof url, "redis://:pw-xyz@127.0.0.1:%d/0", ntohs(sa.sin_port));
	redisContext *c = NULL;
	struct lt_error e = {0};
	ck_assert_int_eq(lt_redis_connect(url, 1000, &c, &e), LT_ECONN);
	ck_assert_ptr_null(c);
	ck_assert_int_eq(e.code, LT_ECONN);
	ck_assert_msg(strstr(e.message, "cannot connect") != NULL, "%s", e.message);
	ck_assert_msg(strstr(e.message, "pw-xyz") == NULL, "%s", e.message);
	/* a socket path that does not exist */
	ck_assert_int_eq(lt_redis_connect("unix:///nonexistent/redis.sock", 1000, &c, &e), LT_ECONN);
}
END_TEST

START_TEST(redact)
{
	char out[128];
	lt_redis_url_redact("redis://:pw@h:1/0", out, sizeof out);
	ck_assert_str_eq(out, "redis://:***@h:1/0");
	lt_redis_url_redact("redis://user:pw@h:1/0", out, sizeof out);
	ck_assert_str_eq(out, "redis://user:***@h:1/0");
	lt_redis_url_redact("redis://h:1/0", out, sizeof out);
	ck_assert_str_eq(out, "redis://h:1/0");
	lt_redis_url_redact("unix:///s.sock?db=2&password=pw&x=1", out, sizeof out);
	ck_assert_str_eq(out, "unix:///s.sock?db=2&password=***&x=1");
	lt_redis_url_redact("unix:///s.sock?password=pw", out, sizeof out);
	ck_assert_str_eq(out, "unix:///s.sock?password=***");
}
END_TEST

/* A private redis-server on a unix socket only (port 0), in a temp dir. */
START_TEST(unix_socket)
{
	char *dir = lt_test_tmpdir("redisunix");
	char sock[512], url[600];
	snprintf(sock, sizeof sock, "%s/redis.sock", dir);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock,
		       "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", dir,
		       "--logfile", "redis.log", (char *)NULL);
		_exit(127);
	}
	struct stat st;
	for (int i = 0; i < 200 && stat(sock, &st) != 0; i++) {
		struct timespec ts = {0, 25 * 1000 * 1000};
		nanosleep(&ts, NULL); /* a test waiting for a child, not an event loop */
	}
	ck_assert_msg(stat(sock, &st) == 0, "redis-server did not create %s (see %s/redis.log)", sock, dir);
	snprintf(url, sizeof url, "unix://%s?db=5", sock);
	redisContext *c = NULL;
	struct lt_error e = {0};
	int rc = lt_redis_connect(url, 2000, &c, &e);
	ck_assert_msg(rc == LT_OK, "%s", e.message);
	freeReplyObject(cmd(c, "SET %s %s", "k", "v5"));
	redisFree(c);
	snprintf(url, sizeof url, "unix://%s", sock);
	ck_assert_int_eq(lt_redis_connect(url, 2000, &c, &e), LT_OK);
	redisReply *r = cmd(c, "GET %s", "k", NULL);
	ck_assert_int_eq(r->type, REDIS_REPLY_NIL); /* db 0, not 5 */
	freeReplyObject(r);
	freeReplyObject(cmd(c, "SELECT 5", NULL, NULL));
	r = cmd(c, "GET %s", "k", NULL);
	ck_assert_str_eq(r->str, "v5");
	freeReplyObject(r);
	redisFree(c);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	free(dir);
}
END_TEST

static Suite *redisconn_suite(void)
{
	Suite *s = suite_create("redisconn");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, connect_and_ping);
	tcase_add_test(tc, select_database);
	tcase_add_test(tc, auth_is_sent);
	tcase_add_test(tc, bad_urls);
	tcase_add_test(tc, refused_port);
	tcase_add_test(tc, redact);
	tcase_add_test(tc, unix_socket);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	(void)lt_test_redis_url(); /* exit 77 (SKIP) here, not in every forked test */
	return lt_test_run_suite(redisconn_suite());
}
