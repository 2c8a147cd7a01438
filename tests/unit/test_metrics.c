/* SPDX-License-Identifier: MIT */
/*
 * test_metrics: a registry with every kind of metric, with and without
 * labels, rendered and checked line by line and by `promtool check metrics`
 * (Debian package prometheus; tests/run installs it); exact counts under
 * concurrent updates; the bounds on families and series; and the /metrics
 * HTTP server on an ephemeral localhost port.
 */
#include <arpa/inet.h>
#include <check.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "common/metrics.h"
#include "tests/support/testsupport.h"

/* Build the registry every test renders from; returns the dropped count's
 * baseline series pointers for checks. */
static void fill_registry(void)
{
	struct lt_metric *c = lt_metrics_counter("livetap_test_messages_total", "Messages seen.", NULL, NULL);
	ck_assert_ptr_nonnull(c);
	lt_metrics_inc(c);
	lt_metrics_add(lt_metrics_series(c, NULL, NULL), 41);

	struct lt_metric *cl = lt_metrics_counter(
	    "livetap_test_room_messages_total",
	    "Messages per room and type.\nSecond line with a \\ backslash.", "room", "type");
	lt_metrics_add(lt_metrics_series(cl, "bilibili:1", "chat"), 3);
	lt_metrics_add(lt_metrics_series(cl, "bilibili:1", "gift"), 1);
	lt_metrics_add(lt_metrics_series(cl, "weird\"room\\\nname", "chat"), 2);

	struct lt_metric *g =
	    lt_metrics_gauge("livetap_test_spool_bytes", "Bytes in the spool.", "room", NULL);
	lt_metrics_set(lt_metrics_series(g, "douyin:9", NULL), 1536);
	lt_metrics_gauge_add(lt_metrics_series(g, "douyin:9", NULL), -512.5);
	struct lt_metric *gu = lt_metrics_gauge("livetap_test_up", "Whether the thing is up.", NULL, NULL);
	lt_metrics_set(lt_metrics_series(gu, NULL, NULL), 1);

	struct lt_metric *h =
	    lt_metrics_histogram("livetap_test_batch_seconds", "Batch latency.", NULL, 0, "platform", NULL);
	struct lt_series *hs = lt_metrics_series(h, "kook", NULL);
	lt_metrics_observe(hs, 0.001); /* le=0.001 is inclusive */
	lt_metrics_observe(hs, 0.3);
	lt_metrics_observe(hs, 100); /* only +Inf */
	static const double sizes[] = {1, 8, 64};
	struct lt_metric *hb =
	    lt_metrics_histogram("livetap_test_batch_records", "Records per batch.", sizes, 3, NULL, NULL);
	lt_metrics_observe(lt_metrics_series(hb, NULL, NULL), 8);
	lt_metrics_observe(lt_metrics_series(hb, NULL, NULL), 9);
	/* a family with labels but no series yet renders HELP/TYPE only */
	ck_assert_ptr_nonnull(lt_metrics_counter("livetap_test_unused_total", "Never used.", "room", NULL));
}

static void expect(const char *text, const char *line)
{
	ck_assert_msg(strstr(text, line) != NULL, "missing:\n%s\nin:\n%s", line, text);
}

START_TEST(render_lines)
{
	lt_metrics_reset();
	fill_registry();
	struct lt_buf b = LT_BUF_INIT;
	ck_assert_int_eq(lt_metrics_render(&b), LT_OK);
	const char *t = lt_buf_cstr(&b);
	expect(t, "# HELP livetap_test_messages_total Messages seen.\n"
		  "# TYPE livetap_test_messages_total counter\n"
		  "livetap_test_messages_total 42\n");
	expect(
	    t,
	    "# HELP livetap_test_room_messages_total Messages per room and type.\\nSecond line with a \\\\ "
	    "backslash.\n");
	expect(t, "livetap_test_room_messages_total{room=\"bilibili:1\",type=\"chat\"} 3\n");
	expect(t, "livetap_test_room_messages_total{room=\"bilibili:1\",type=\"gift\"} 1\n");
	expect(t, "livetap_test_room_messages_total{room=\"weird\\\"room\\\\\\nname\",type=\"chat\"} 2\n");
	expect(t,
	       "# TYPE livetap_test_spool_bytes gauge\nlivetap_test_spool_bytes{room=\"douyin:9\"} 1023.5\n");
	expect(t, "livetap_test_up 1\n");
	expect(t, "# TYPE livetap_test_batch_seconds histogram\n");
	expect(t, "livetap_test_batch_seconds_bucket{platform=\"kook\",le=\"0.001\"} 1\n");
	expect(t, "livetap_test_batch_seconds_bucket{platform=\"kook\",le=\"0.1\"} 1\n");
	expect(t, "livetap_test_batch_seconds_bucket{platform=\"kook\",le=\"0.25\"} 1\n");
	expect(t, "livetap_test_batch_seconds_bucket{platform=\"kook\",le=\"0.5\"} 2\n");
	expect(t, "livetap_test_batch_seconds_bucket{platform=\"kook\",le=\"10\"} 2\n");
	expect(t, "livetap_test_batch_seconds_bucket{platform=\"kook\",le=\"+Inf\"} 3\n");
	expect(t, "livetap_test_batch_seconds_sum{platform=\"kook\"} 100.301\n");
	expect(t, "livetap_test_batch_seconds_count{platform=\"kook\"} 3\n");
	expect(t, "livetap_test_batch_records_bucket{le=\"1\"} 0\n"
		  "livetap_test_batch_records_bucket{le=\"8\"} 1\n"
		  "livetap_test_batch_records_bucket{le=\"64\"} 2\n"
		  "livetap_test_batch_records_bucket{le=\"+Inf\"} 2\n"
		  "livetap_test_batch_records_sum 17\n"
		  "livetap_test_batch_records_count 2\n");
	expect(t, "# TYPE livetap_test_unused_total counter\n");
	lt_buf_free(&b);
}
END_TEST

START_TEST(promtool_accepts)
{
	lt_metrics_reset();
	fill_registry();
	struct lt_buf b = LT_BUF_INIT;
	ck_assert_int_eq(lt_metrics_render(&b), LT_OK);
	int found = system("command -v promtool >/dev/null 2>&1");
	ck_assert_msg(found == 0, "promtool is not on PATH: install the Debian package 'prometheus' "
				  "(tests/run does) to check the metrics text");
	char *dir = lt_test_tmpdir("promtool");
	char path[512], cmd[1200];
	snprintf(path, sizeof path, "%s/metrics.txt", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fwrite(b.data, 1, b.len, f);
	fclose(f);
	snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' > '%s.out' 2>&1", path, path);
	int st = system(cmd);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "promtool check metrics failed (status %d); see %s.out", st, path);
	/* The checker is real: a counter without _total is rejected. */
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("# HELP bad Bad.\n# TYPE bad counter\nbad 1\n", f);
	fclose(f);
	st = system(cmd);
	ck_assert(!(WIFEXITED(st) && WEXITSTATUS(st) == 0));
	free(dir);
	lt_buf_free(&b);
}
END_TEST

START_TEST(registration_rules)
{
	lt_metrics_reset();
	struct lt_metric *a = lt_metrics_counter("x_total", "h", "room", NULL);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_eq(lt_metrics_counter("x_total", "other help", "room", NULL), a); /* same: found */
	ck_assert_ptr_null(lt_metrics_gauge("x_total", "h", "room", NULL));		/* other kind */
	ck_assert_ptr_null(lt_metrics_counter("x_total", "h", "platform", NULL));	/* other labels */
	ck_assert_ptr_null(lt_metrics_counter("1bad", "h", NULL, NULL));
	ck_assert_ptr_null(lt_metrics_counter("bad-name", "h", NULL, NULL));
	ck_assert_ptr_null(lt_metrics_counter("", "h", NULL, NULL));
	ck_assert_ptr_null(lt_metrics_counter("ok_total", "h", "__reserved", NULL));
	ck_assert_ptr_null(lt_metrics_counter("ok_total", "h", "a", "a"));
	ck_assert_ptr_null(lt_metrics_counter("ok_total", "h", NULL, "b"));
	ck_assert_ptr_null(lt_metrics_histogram("h_seconds", "h", NULL, 0, "le", NULL));
	static const double unsorted[] = {1, 0.5};
	ck_assert_ptr_null(lt_metrics_histogram("h_seconds", "h", unsorted, 2, NULL, NULL));
	double inf = INFINITY;
	ck_assert_ptr_null(lt_metrics_histogram("h_seconds", "h", &inf, 1, NULL, NULL));
	/* NULL handles are harmless */
	lt_metrics_inc(NULL);
	lt_metrics_add(NULL, 1);
	lt_metrics_observe(NULL, 1);
	lt_metrics_set(NULL, 1);
	ck_assert_ptr_null(lt_metrics_series(NULL, "a", "b"));
	/* series are found again, not duplicated */
	struct lt_series *s1 = lt_metrics_series(a, "r1", NULL);
	ck_assert_ptr_eq(lt_metrics_series(a, "r1", NULL), s1);
	ck_assert_ptr_ne(lt_metrics_series(a, "r2", NULL), s1);
	/* wrong-kind updates are ignored */
	lt_metrics_set(s1, 5);
	lt_metrics_observe(s1, 5);
	ck_assert(lt_metrics_value(s1) == 0);
}
END_TEST

START_TEST(bounded_series)
{
	lt_metrics_reset();
	struct lt_metric *m = lt_metrics_gauge("many", "Many series.", "room", NULL);
	char name[32];
	for (int i = 0; i < LT_METRICS_MAX_SERIES; i++) {
		snprintf(name, sizeof name, "r%d", i);
		ck_assert_ptr_nonnull(lt_metrics_series(m, name, NULL));
	}
	ck_assert_ptr_null(lt_metrics_series(m, "one-too-many", NULL));
	ck_assert_ptr_nonnull(lt_metrics_series(m, "r7", NULL)); /* existing ones still found */
	struct lt_buf b = LT_BUF_INIT;
	lt_metrics_render(&b);
	expect(lt_buf_cstr(&b), "\nlivetap_metrics_series_dropped_total 1\n");
	lt_buf_free(&b);
	lt_metrics_reset();
	for (int i = 0; i < LT_METRICS_MAX_FAMILIES; i++) {
		snprintf(name, sizeof name, "f%d_total", i);
		ck_assert_ptr_nonnull(lt_metrics_counter(name, "h", NULL, NULL));
	}
	ck_assert_ptr_null(lt_metrics_counter("one_more_total", "h", NULL, NULL));
}
END_TEST

#define THREADS 4
#define ITERS	100000

struct hammer {
	struct lt_series *c, *g, *h;
};

static void *hammer_main(void *arg)
{
	struct hammer *hm = arg;
	for (int i = 0; i < ITERS; i++) {
		lt_metrics_add(hm->c, 1);
		lt_metrics_gauge_add(hm->g, 2);
		lt_metrics_observe(hm->h, (double)(i % 4));
	}
	return NULL;
}

START_TEST(concurrent_updates_are_exact)
{
	lt_metrics_reset();
	static const double bounds[] = {0, 1, 2};
	struct hammer hm = {
	    lt_metrics_series(lt_metrics_counter("c_total", "c", NULL, NULL), NULL, NULL),
	    lt_metrics_series(lt_metrics_gauge("g", "g", NULL, NULL), NULL, NULL),
	    lt_metrics_series(lt_metrics_histogram("h", "h", bounds, 3, NULL, NULL), NULL, NULL),
	};
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, hammer_main, &hm), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	ck_assert(lt_metrics_value(hm.c) == THREADS * ITERS);
	ck_assert(lt_metrics_value(hm.g) == 2.0 * THREADS * ITERS);
	ck_assert(lt_metrics_value(hm.h) == THREADS * ITERS);
	struct lt_buf b = LT_BUF_INIT;
	lt_metrics_render(&b);
	char line[128];
	snprintf(line, sizeof line, "h_bucket{le=\"0\"} %d\nh_bucket{le=\"1\"} %d\n", THREADS * ITERS / 4,
		 THREADS * ITERS / 2);
	expect(lt_buf_cstr(&b), line);
	snprintf(line, sizeof line, "h_sum %d\nh_count %d\n", THREADS * ITERS / 4 * 6, THREADS * ITERS);
	expect(lt_buf_cstr(&b), line);
	lt_buf_free(&b);
}
END_TEST

/* GET path over HTTP/1.0 from 127.0.0.1:port; returns the status, body in
 * *body (malloc'd). */
static int http_get(int port, const char *path, char **body)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	struct sockaddr_in sa = {0};
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	char req[256];
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
	ck_assert_int_eq(write(fd, req, (size_t)n), n);
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap);
	ck_assert_ptr_nonnull(buf);
	ssize_t r;
	while (len < cap - 1 && (r = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)r;
	buf[len] = '\0';
	close(fd);
	int status = 0;
	ck_assert_int_eq(sscanf(buf, "HTTP/1.%*d %d", &status), 1);
	const char *sep = strstr(buf, "\r\n\r\n");
	*body = strdup(sep ? sep + 4 : "");
	free(buf);
	return status;
}

START_TEST(http_server)
{
	lt_metrics_reset();
	fill_registry();
	ck_assert_int_eq(lt_metrics_serve("127.0.0.1"), LT_EINVAL);
	ck_assert_int_eq(lt_metrics_serve("127.0.0.1:99999"), LT_EINVAL);
	ck_assert_int_eq(lt_metrics_port(), 0);
	ck_assert_int_eq(lt_metrics_serve("127.0.0.1:0"), LT_OK);
	int port = lt_metrics_port();
	ck_assert_int_gt(port, 0);
	ck_assert_int_eq(lt_metrics_serve("127.0.0.1:0"), LT_EEXIST);
	char *body = NULL;
	ck_assert_int_eq(http_get(port, "/metrics", &body), 200);
	expect(body, "livetap_test_messages_total 42\n");
	struct lt_buf b = LT_BUF_INIT;
	lt_metrics_render(&b);
	ck_assert_str_eq(body, lt_buf_cstr(&b)); /* the whole text, in order */
	free(body);
	/* updates show up on the next request */
	lt_metrics_inc(lt_metrics_counter("livetap_test_messages_total", "Messages seen.", NULL, NULL));
	ck_assert_int_eq(http_get(port, "/metrics", &body), 200);
	expect(body, "livetap_test_messages_total 43\n");
	free(body);
	ck_assert_int_eq(http_get(port, "/other", &body), 404);
	free(body);
	ck_assert_int_eq(http_get(port, "/metrics/x", &body), 404);
	free(body);
	lt_metrics_stop();
	ck_assert_int_eq(lt_metrics_port(), 0);
	/* a host name is resolved (lws itself only takes addresses) */
	ck_assert_int_eq(lt_metrics_serve("localhost:0"), LT_OK);
	ck_assert_int_eq(http_get(lt_metrics_port(), "/metrics", &body), 200);
	free(body);
	lt_metrics_stop();
	ck_assert_int_eq(lt_metrics_serve("no-such-host.invalid:0"), LT_EINVAL);
	/* a port in use is reported, not ignored */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {0};
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	socklen_t sl = sizeof sa;
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
	ck_assert_int_eq(lt_metrics_serve(addr), LT_EIO);
	close(fd);
	lt_buf_free(&b);
}
END_TEST

static Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, render_lines);
	tcase_add_test(tc, promtool_accepts);
	tcase_add_test(tc, registration_rules);
	tcase_add_test(tc, bounded_series);
	tcase_add_test(tc, concurrent_updates_are_exact);
	tcase_add_test(tc, http_server);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return lt_test_run_suite(metrics_suite());
}
