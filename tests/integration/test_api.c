/* SPDX-License-Identifier: MIT */
/*
 * test_api: livetap-api against the real Redis and PostgreSQL that tests/run
 * starts. main() makes a fresh PostgreSQL schema (lt_migrate_apply), starts
 * build/api/livetap-api as a child process on a free port with its own
 * state directory and keys, and every test talks to it over real sockets
 * with the tiny HTTP/1.1 and WebSocket clients below. Redis and PostgreSQL
 * are seeded directly, the way the processor and the persister write them;
 * room ids carry the pid so parallel runs never share keys.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/auth.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/redisconn.h"
#include "persister/migrate.h"
#include "tests/support/testsupport.h"

#define WRITE_KEY "test-write-key-0123456789"
#define READ_KEY  "test-read-key-0123456789ab"
#define PASSWORD  "test-admin-password-42"
#define SECRET	  "test-jwt-secret-0123456789"

static char schema[64];
static char dsn[1024];
static char room[32]; /* this run's room id */
static char state_dir[1024];
static int port;
static pid_t server;
static char server_log[1200];
static char config_file[1200]; /* "{}": settings come from the environment */

/* ---- a tiny HTTP/1.1 client ------------------------------------------ */

struct resp {
	int status;
	char headers[8192];
	char *body; /* NUL-terminated, malloc'd; chunked bodies decoded */
	size_t len;
	bool closed_early; /* the server closed without a status line */
};

/* Connect to 127.0.0.1:p; rcvbuf > 0 shrinks the receive buffer first (a
 * slow reader). */
static int dial_buf(int p, int rcvbuf)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect: %s", strerror(errno));
	return fd;
}

static int dial(int p)
{
	return dial_buf(p, 0);
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return; /* the server may refuse mid-way; the reply says why */
		p += w;
		n -= (size_t)w;
	}
}

/* Read until EOF (Connection: close) with a 10 s overall bound. */
static char *read_all(int fd, size_t *n)
{
	size_t cap = 65536, len = 0;
	char *b = malloc(cap);
	int64_t deadline = lt_clock_mono_ms() + 10000;
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int left = (int)(deadline - lt_clock_mono_ms());
		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			break;
		if (len + 4096 > cap)
			b = realloc(b, cap *= 2);
		ssize_t r = recv(fd, b + len, cap - len - 1, 0);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	b[len] = '\0';
	*n = len;
	return b;
}

static void dechunk(struct resp *r)
{
	char *out = malloc(r->len + 1), *p = r->body, *end = r->body + r->len;
	size_t o = 0;
	while (p < end) {
		char *e = NULL;
		unsigned long n = strtoul(p, &e, 16);
		ck_assert_msg(e && e + 2 <= end && e[0] == '\r' && e[1] == '\n', "bad chunk header");
		if (n == 0)
			break;
		p = e + 2;
		ck_assert(p + n + 2 <= end);
		memcpy(out + o, p, n);
		o += n;
		p += n + 2;
	}
	out[o] = '\0';
	free(r->body);
	r->body = out;
	r->len = o;
}

static void parse_resp(struct resp *r, char *raw, size_t n)
{
	memset(r, 0, sizeof *r);
	char *eoh = strstr(raw, "\r\n\r\n");
	if (n < 12 || strncmp(raw, "HTTP/1.1 ", 9) || !eoh) {
		r->closed_early = true;
		r->body = raw;
		r->len = n;
		return;
	}
	r->status = atoi(raw + 9);
	size_t hl = (size_t)(eoh - raw);
	snprintf(r->headers, sizeof r->headers, "%.*s",
		 (int)(hl < sizeof r->headers - 1 ? hl : sizeof r->headers - 1), raw);
	for (char *c = r->headers; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	r->len = n - hl - 4;
	r->body = malloc(r->len + 1);
	memcpy(r->body, eoh + 4, r->len);
	r->body[r->len] = '\0';
	free(raw);
	if (strstr(r->headers, "transfer-encoding: chunked"))
		dechunk(r);
}

/* One request on a fresh connection. extra: more header lines ("K: V\r\n"). */
static struct resp http_to(int p, const char *method, const char *path, const char *extra, const char *body)
{
	char head[16384];
	size_t bl = body ? strlen(body) : 0;
	snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s%s\r\n",
		 method, path, extra ? extra : "", body ? "Content-Type: application/json\r\n" : "", "");
	if (body) {
		size_t hl = strlen(head) - 2;
		snprintf(head + hl, sizeof head - hl, "Content-Length: %zu\r\n\r\n", bl);
	}
	int fd = dial(p);
	send_all(fd, head, strlen(head));
	if (body)
		send_all(fd, body, bl);
	size_t n;
	char *raw = read_all(fd, &n);
	close(fd);
	struct resp r;
	parse_resp(&r, raw, n);
	return r;
}

static struct resp http(const char *method, const char *path, const char *extra, const char *body)
{
	return http_to(port, method, path, extra, body);
}

static void resp_free(struct resp *r)
{
	free(r->body);
}

/* The body is the JSON error form with this code. */
static void assert_error(struct resp *r, int status, const char *code)
{
	ck_assert_msg(r->status == status, "status %d, want %d: %s", r->status, status, r->body);
	cJSON *j = cJSON_Parse(r->body);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
	ck_assert_msg(cJSON_IsObject(e), "no error object: %s", r->body);
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");
	ck_assert(cJSON_IsString(c));
	if (code)
		ck_assert_str_eq(c->valuestring, code);
	ck_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")));
	ck_assert(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(e, "details")));
	cJSON_Delete(j);
}

static cJSON *json_ok(struct resp *r)
{
	ck_assert_msg(r->status == 200, "status %d: %s", r->status, r->body);
	cJSON *j = cJSON_Parse(r->body);
	ck_assert_msg(j != NULL, "not JSON: %s", r->body);
	return j;
}

/* ---- seeding ---------------------------------------------------------- */

static redisContext *redis(void)
{
	redisContext *c = NULL;
	ck_assert(lt_redis_connect(lt_test_redis_url(), 2000, &c, NULL) == LT_OK);
	return c;
}

__attribute__((format(printf, 2, 3))) static void rcmd(redisContext *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(c, fmt, ap);
	va_end(ap);
	ck_assert_msg(r && r->type != REDIS_REPLY_ERROR, "redis: %s", r ? r->str : c->errstr);
	freeReplyObject(r);
}

static PGconn *pg(void)
{
	PGconn *c = PQconnectdb(dsn);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	return c;
}

static void sql(PGconn *c, const char *q)
{
	PGresult *r = PQexec(c, q);
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s",
		      q, PQresultErrorMessage(r));
	PQclear(r);
}

static long sql_long(PGconn *c, const char *q)
{
	PGresult *r = PQexec(c, q);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", q,
		      PQresultErrorMessage(r));
	long v = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

static void msg_json(char *out, size_t cap, const char *id, const char *type, const char *user,
		     const char *content, int64_t ts)
{
	snprintf(out, cap,
		 "{\"v\":1,\"platform\":\"bilibili\",\"room\":\"%s\",\"type\":\"%s\",\"msg_id\":\"%s\","
		 "\"user\":{\"id\":\"%s\",\"name\":\"n%s\"},\"content\":\"%s\",\"ts\":%lld,\"extra\":{}}",
		 room, type, id, user, user, content, (long long)ts);
}

__attribute__((format(printf, 1, 2))) static char *path(const char *fmt, ...)
{
	static char buf[4][1024];
	static int i;
	char *b = buf[i++ % 4];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b, 1024, fmt, ap);
	va_end(ap);
	return b;
}

/* ---- the server ------------------------------------------------------- */

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&a, sizeof a);
	socklen_t l = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &l);
	close(fd);
	return ntohs(a.sin_port);
}

/* Start livetap-api on p with extra "K=V" settings; wait until it answers. */
static pid_t start_server(int p, const char *const *extra, const char *log)
{
	char bin[1200], listen[64];
	snprintf(bin, sizeof bin, "%s/api/livetap-api", lt_test_builddir());
	snprintf(listen, sizeof listen, "127.0.0.1:%d", p);
	pid_t pid = fork();
	if (pid < 0)
		abort(); /* also called from main(), outside any Check test */
	if (pid == 0) {
		setenv("LIVETAP_API_LISTEN", listen, 1);
		setenv("LIVETAP_PG_DSN", dsn, 1);
		setenv("LIVETAP_REDIS_URL", lt_test_redis_url(), 1);
		setenv("LIVETAP_STATE_DIR", state_dir, 1);
		setenv("LIVETAP_API_KEYS", WRITE_KEY, 1);
		setenv("LIVETAP_API_READ_KEYS", READ_KEY, 1);
		setenv("LIVETAP_ADMIN_PASSWORD", PASSWORD, 1);
		setenv("LIVETAP_API_JWT_SECRET", SECRET, 1);
		setenv("LIVETAP_API_RATE_PER_S", "0", 1);
		for (int i = 0; extra && extra[i]; i++) {
			char kv[256];
			snprintf(kv, sizeof kv, "%s", extra[i]);
			char *eq = strchr(kv, '=');
			*eq = '\0';
			setenv(kv, eq + 1, 1);
		}
		if (!freopen(log, "a", stderr))
			_exit(126);
		execl(bin, bin, "--config", config_file, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
		close(fd);
		if (ok)
			return pid;
		usleep(100000);
	}
	fprintf(stderr, "livetap-api did not start; see %s\n", log);
	abort();
}

static void stop_server(pid_t pid)
{
	kill(pid, SIGTERM);
	int st = 0;
	for (int i = 0; i < 100 && waitpid(pid, &st, WNOHANG) == 0; i++)
		usleep(50000);
	if (waitpid(pid, &st, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
}

/* ---- tests: service endpoints ----------------------------------------- */

START_TEST(healthz_metrics_openapi_dashboard)
{
	struct resp r = http("GET", "/healthz", NULL, NULL);
	cJSON *j = json_ok(&r);
	ck_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "ok");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "redis"), "ok")));
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "postgres"), "ok")));
	cJSON_Delete(j);
	resp_free(&r);

	r = http("GET", "/metrics", NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "livetap_api_requests_total{route=\"healthz\",code=\"2xx\"}"));
	ck_assert_ptr_nonnull(strstr(r.body, "livetap_build_info"));
	resp_free(&r);

	r = http("GET", "/api/v1/openapi.json", NULL, NULL);
	j = json_ok(&r);
	const cJSON *paths = cJSON_GetObjectItem(j, "paths");
	static const char *const want[] = {"/healthz",
					   "/metrics",
					   "/",
					   "/api/v1/auth/login",
					   "/api/v1/rooms",
					   "/api/v1/rooms/{platform}/{room}",
					   "/api/v1/rooms/{platform}/{room}/status",
					   "/api/v1/rooms/{platform}/{room}/messages",
					   "/api/v1/rooms/{platform}/{room}/hotwords",
					   "/api/v1/rooms/{platform}/{room}/users",
					   "/api/v1/rooms/{platform}/{room}/sessions",
					   "/api/v1/rooms/{platform}/{room}/export",
					   "/api/v1/rooms/{platform}/{room}/live",
					   "/api/v1/admin/backup",
					   "/api/v1/admin/retention",
					   NULL};
	for (int i = 0; want[i]; i++)
		ck_assert_msg(cJSON_GetObjectItem(paths, want[i]) != NULL, "openapi lacks %s", want[i]);
	cJSON_Delete(j);
	resp_free(&r);

	r = http("GET", "/", NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.headers, "content-type: text/html"));
	ck_assert_ptr_nonnull(strstr(r.headers, "content-security-policy"));
	ck_assert_ptr_nonnull(strstr(r.body, "<script src=\"/app.js\">"));
	resp_free(&r);
	r = http("GET", "/app.js", NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "WebSocket"));
	resp_free(&r);
	r = http("GET", "/no-such-file.js", NULL, NULL);
	assert_error(&r, 404, "not_found");
	resp_free(&r);
}
END_TEST

/* ---- tests: rooms, auth, audit ---------------------------------------- */

START_TEST(rooms_auth_audit)
{
	char body[256];
	snprintf(body, sizeof body, "{\"platform\":\"douyin\",\"room\":\"%s\",\"title\":\"直播间\"}", room);
	struct resp r = http("POST", "/api/v1/rooms", NULL, body);
	assert_error(&r, 401, "unauthorized");
	resp_free(&r);
	r = http("POST", "/api/v1/rooms", "X-API-Key: " READ_KEY "\r\n", body);
	assert_error(&r, 403, NULL);
	resp_free(&r);
	r = http("POST", "/api/v1/rooms", "X-API-Key: wrong-key-0123456789abc\r\n", body);
	assert_error(&r, 401, "unauthorized");
	resp_free(&r);
	r = http("POST", "/api/v1/rooms", "X-API-Key: " WRITE_KEY "\r\n", body);
	ck_assert_msg(r.status == 201, "%d %s", r.status, r.body);
	resp_free(&r);
	r = http("POST", "/api/v1/rooms", "Authorization: Bearer " WRITE_KEY "\r\n", body);
	ck_assert_msg(r.status == 200, "%d %s", r.status, r.body); /* exists: re-enabled */
	resp_free(&r);

	/* The fetcher's state comes from live:{ROOM}:status. */
	redisContext *rc = redis();
	char key[128];
	snprintf(key, sizeof key, "live:{douyin:%s}:status", room);
	rcmd(rc, "HSET %s state running since 1 messages 7", key);
	r = http("GET", "/api/v1/rooms", NULL, NULL);
	cJSON *j = json_ok(&r);
	bool found = false;
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "rooms"))
	{
		if (strcmp(cJSON_GetObjectItem(it, "room")->valuestring, room) ||
		    strcmp(cJSON_GetObjectItem(it, "platform")->valuestring, "douyin"))
			continue;
		found = true;
		ck_assert_str_eq(cJSON_GetObjectItem(it, "state")->valuestring, "running");
		ck_assert_str_eq(cJSON_GetObjectItem(it, "title")->valuestring, "直播间");
		ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(it, "enabled")));
	}
	ck_assert(found);
	cJSON_Delete(j);
	resp_free(&r);
	r = http("GET", path("/api/v1/rooms/douyin/%s/status", room), NULL, NULL);
	j = json_ok(&r);
	ck_assert_str_eq(cJSON_GetObjectItem(j, "state")->valuestring, "running");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "fetcher"), "messages")->valuestring,
			 "7");
	cJSON_Delete(j);
	resp_free(&r);
	r = http("GET", "/api/v1/rooms/kook/no-such-room-x/status", NULL, NULL);
	assert_error(&r, 404, "not_found");
	resp_free(&r);

	/* Stop: the row stays, disabled (the supervisor follows it). */
	r = http("DELETE", path("/api/v1/rooms/douyin/%s", room), "X-API-Key: " WRITE_KEY "\r\n", NULL);
	ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
	resp_free(&r);
	PGconn *c = pg();
	char q[512];
	snprintf(q, sizeof q,
		 "SELECT count(*) FROM rooms WHERE platform = 'douyin' AND room_id = '%s' AND NOT enabled",
		 room);
	ck_assert_int_eq(sql_long(c, q), 1);
	r = http("DELETE", "/api/v1/rooms/kook/never-added", "X-API-Key: " WRITE_KEY "\r\n", NULL);
	assert_error(&r, 404, "not_found");
	resp_free(&r);

	/* Every write is in audit_logs: who, what, target, from where. */
	snprintf(q, sizeof q,
		 "SELECT count(*) FROM audit_logs WHERE target = 'douyin:%s' AND actor LIKE 'key:%%' "
		 "AND remote_addr = '127.0.0.1' AND action IN ('room.create', 'room.start', 'room.stop')",
		 room);
	ck_assert_int_eq(sql_long(c, q), 3);

	/* purge removes the row. */
	r = http("DELETE", path("/api/v1/rooms/douyin/%s?purge=true", room), "X-API-Key: " WRITE_KEY "\r\n",
		 NULL);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	snprintf(q, sizeof q, "SELECT count(*) FROM rooms WHERE platform = 'douyin' AND room_id = '%s'",
		 room);
	ck_assert_int_eq(sql_long(c, q), 0);
	PQfinish(c);
	redisFree(rc);
}
END_TEST

START_TEST(login_tokens)
{
	struct resp r = http("POST", "/api/v1/auth/login", NULL, "{\"password\":\"not the password\"}");
	assert_error(&r, 401, "unauthorized");
	resp_free(&r);
	r = http("POST", "/api/v1/auth/login", NULL, "{\"password\":\"" PASSWORD "\"}");
	cJSON *j = json_ok(&r);
	char auth[1200];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n",
		 cJSON_GetObjectItem(j, "token")->valuestring);
	ck_assert(cJSON_GetObjectItem(j, "expires_at")->valuedouble > (double)time(NULL));
	cJSON_Delete(j);
	resp_free(&r);

	char body[128];
	snprintf(body, sizeof body, "{\"platform\":\"kook\",\"room\":\"%s\"}", room);
	r = http("POST", "/api/v1/rooms", auth, body);
	ck_assert_msg(r.status == 201 || r.status == 200, "%d %s", r.status, r.body);
	resp_free(&r);
	PGconn *c = pg();
	char q[256];
	snprintf(q, sizeof q, "SELECT count(*) FROM audit_logs WHERE actor = 'admin' AND target = 'kook:%s'",
		 room);
	ck_assert_int_eq(sql_long(c, q), 1);
	ck_assert_int_ge(sql_long(c, "SELECT count(*) FROM audit_logs WHERE action = 'login.failed'"), 1);
	PQfinish(c);

	/* A forged signature and an expired token are refused. */
	char forged[1200];
	snprintf(forged, sizeof forged, "%s", auth);
	char *last = strrchr(forged, '.') + 3;
	*last = *last == 'A' ? 'B' : 'A';
	r = http("POST", "/api/v1/rooms", forged, body);
	assert_error(&r, 401, "unauthorized");
	resp_free(&r);

	const char *env[] = {"LIVETAP_API_JWT_SECRET=" SECRET, "LIVETAP_ADMIN_PASSWORD=" PASSWORD, NULL};
	struct lt_config *cfg = NULL;
	ck_assert(lt_config_load(config_file, env, &cfg, NULL) == LT_OK);
	struct lt_auth *a = NULL;
	ck_assert(lt_auth_new(cfg, &a, NULL) == LT_OK);
	char tok[1024];
	ck_assert(lt_auth_token(a, lt_clock_wall_ms() - 7200 * 1000, 60, tok, sizeof tok) == LT_OK);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", tok);
	r = http("POST", "/api/v1/rooms", auth, body);
	assert_error(&r, 401, "unauthorized");
	resp_free(&r);
	/* The same secret, not expired: accepted (the check is real). */
	ck_assert(lt_auth_token(a, lt_clock_wall_ms(), 60, tok, sizeof tok) == LT_OK);
	snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", tok);
	r = http("DELETE", path("/api/v1/rooms/kook/%s", room), auth, NULL);
	ck_assert_msg(r.status == 200, "%d %s", r.status, r.body);
	resp_free(&r);
	lt_auth_free(a);
	lt_config_free(cfg);
}
END_TEST

START_TEST(bad_bodies)
{
	const char *wk = "X-API-Key: " WRITE_KEY "\r\n";
	static const char *const bodies[] = {
	    "not json",
	    "[1,2]",
	    "{\"platform\":\"bilibili\"}",
	    "{\"platform\":\"evil\",\"room\":\"1\"}",
	    "{\"platform\":\"bilibili\",\"room\":\"../../etc/passwd\"}",
	    "{\"platform\":\"bilibili\",\"room\":\"1'; DROP TABLE rooms; --\"}",
	    "{\"platform\":\"bilibili\",\"room\":\"1\",\"admin\":true}",
	    "{\"platform\":\"bilibili\",\"room\":\"1\",\"title\":7}",
	    "{\"platform\":\"bilibili\",\"room\":"
	    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
	    "{\"platform\":\"bilibili\",\"room\":\"1\",\"title\":\"\xff\xfe\"}",
	    NULL,
	};
	for (int i = 0; bodies[i]; i++) {
		struct resp r = http("POST", "/api/v1/rooms", wk, bodies[i]);
		assert_error(&r, 400, "bad_input");
		resp_free(&r);
	}
	/* 70 KiB: refused by its Content-Length before it is read. */
	char *big = malloc(70 * 1024 + 1);
	memset(big, 'x', 70 * 1024);
	big[70 * 1024] = '\0';
	struct resp r = http("POST", "/api/v1/rooms", wk, big);
	assert_error(&r, 413, NULL);
	resp_free(&r);
	free(big);
	PGconn *c = pg();
	ck_assert_int_eq(
	    sql_long(c, "SELECT count(*) FROM rooms WHERE room_id LIKE '%DROP%' OR platform = 'evil'"), 0);
	ck_assert_int_eq(sql_long(c, "SELECT count(*) FROM pg_tables WHERE tablename = 'rooms' "
				     "AND schemaname = current_schema()"),
			 1);
	PQfinish(c);
}
END_TEST

/* ---- tests: reads ------------------------------------------------------ */

START_TEST(hotwords_cache_and_fallback)
{
	redisContext *rc = redis();
	char key[128];
	snprintf(key, sizeof key, "live:{bilibili:%s}:hotwords:1m", room);
	rcmd(rc, "DEL %s", key);
	rcmd(rc, "ZADD %s 30 哈哈哈 20 666 10 主播", key);
	snprintf(key, sizeof key, "live:{bilibili:%s}:hotwords:trend:1m", room);
	rcmd(rc, "ZADD %s 3.5 666", key);
	struct resp r =
	    http("GET", path("/api/v1/rooms/bilibili/%s/hotwords?window=1m&limit=2", room), NULL, NULL);
	cJSON *j = json_ok(&r);
	const cJSON *w = cJSON_GetObjectItem(j, "words");
	ck_assert_int_eq(cJSON_GetArraySize(w), 2);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(w, 0), "word")->valuestring, "哈哈哈");
	ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(w, 0), "count")->valueint, 30);
	ck_assert_double_eq_tol(cJSON_GetObjectItem(cJSON_GetArrayItem(w, 1), "trend")->valuedouble, 3.5,
				1e-9);
	ck_assert_str_eq(cJSON_GetObjectItem(j, "source")->valuestring, "redis");
	cJSON_Delete(j);
	resp_free(&r);

	/* Cached for api.cache_ms (1 s): a change shows after it, not before. */
	snprintf(key, sizeof key, "live:{bilibili:%s}:hotwords:1m", room);
	rcmd(rc, "ZADD %s 100 新词", key);
	r = http("GET", path("/api/v1/rooms/bilibili/%s/hotwords?window=1m&limit=2", room), NULL, NULL);
	ck_assert_ptr_null(strstr(r.body, "新词"));
	resp_free(&r);
	usleep(1200 * 1000);
	r = http("GET", path("/api/v1/rooms/bilibili/%s/hotwords?window=1m&limit=2", room), NULL, NULL);
	ck_assert_ptr_nonnull(strstr(r.body, "新词"));
	resp_free(&r);

	/* Nothing in Redis for 30m: the newest PostgreSQL snapshot. */
	PGconn *c = pg();
	char q[512];
	snprintf(q, sizeof q,
		 "INSERT INTO hotword_statistics (platform, room_id, \"window\", bucket_start, word, count) "
		 "VALUES "
		 "('bilibili', '%s', '30m', now() - interval '2 hours', 'old', 99), "
		 "('bilibili', '%s', '30m', now() - interval '1 hour', 'newer', 5), "
		 "('bilibili', '%s', '30m', now() - interval '1 hour', 'newest', 7)",
		 room, room, room);
	sql(c, q);
	r = http("GET", path("/api/v1/rooms/bilibili/%s/hotwords?window=30m", room), NULL, NULL);
	j = json_ok(&r);
	ck_assert_str_eq(cJSON_GetObjectItem(j, "source")->valuestring, "postgres");
	w = cJSON_GetObjectItem(j, "words");
	ck_assert_int_eq(cJSON_GetArraySize(w), 2);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(w, 0), "word")->valuestring, "newest");
	cJSON_Delete(j);
	resp_free(&r);
	PQfinish(c);

	/* Invalid UTF-8 and control characters in Redis come out as valid,
	 * escaped JSON. */
	snprintf(key, sizeof key, "live:{bilibili:%s}:hotwords:5m", room);
	rcmd(rc, "DEL %s", key);
	{
		redisReply *x = redisCommand(rc, "ZADD %s 5 %b", key, "bad\xff\xfe\x01\"q", (size_t)8);
		ck_assert(x && x->type == REDIS_REPLY_INTEGER);
		freeReplyObject(x);
	}
	r = http("GET", path("/api/v1/rooms/bilibili/%s/hotwords?window=5m", room), NULL, NULL);
	j = json_ok(&r);
	w = cJSON_GetObjectItem(j, "words");
	ck_assert_int_eq(cJSON_GetArraySize(w), 1);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(w, 0), "word")->valuestring,
			 "bad\xef\xbf\xbd\xef\xbf\xbd\x01\"q");
	cJSON_Delete(j);
	resp_free(&r);
	static const char *const bad[] = {
	    "window=2m", "window=1m&limit=0", "limit=1001", "limit=99999999999999999999",
	    "limit=-1",	 "limit=1e3",	      "bogus=1",    NULL};
	for (int i = 0; bad[i]; i++) {
		r = http("GET", path("/api/v1/rooms/bilibili/%s/hotwords?%s", room, bad[i]), NULL, NULL);
		assert_error(&r, 400, "bad_input");
		resp_free(&r);
	}
	redisFree(rc);
}
END_TEST

START_TEST(messages_redis_then_postgres)
{
	redisContext *rc = redis();
	PGconn *c = pg();
	int64_t now = lt_clock_wall_ms();
	char key[128], m[512], q[1024];
	snprintf(key, sizeof key, "live:{bilibili:%s}:messages", room);
	rcmd(rc, "DEL %s", key);
	/* L1: three recent messages. */
	for (int i = 0; i < 3; i++) {
		char id[16];
		snprintf(id, sizeof id, "r%d", i);
		msg_json(m, sizeof m, id, i == 1 ? "gift" : "chat", "u1", "hi", now - 1000 * (3 - i));
		rcmd(rc, "XADD %s * m %s", key, m);
	}
	/* PostgreSQL: 250 older ones, one with hostile text. */
	snprintf(
	    q, sizeof q,
	    "INSERT INTO live_messages (platform, room_id, ts, msg_id, type, user_id, user_name, content) "
	    "SELECT 'bilibili', '%s', date_trunc('milliseconds', now()) - interval '1 hour' - g * interval "
	    "'1 second', 'p' || g, 'chat', "
	    "'u' || (g %% 7), 'name' || g, CASE WHEN g = 1 THEN E'a,\"b\"\\nc' ELSE 'm' || g END "
	    "FROM generate_series(1, 250) g",
	    room);
	sql(c, q);
	/* 30 more in one and the same millisecond (gifts and entries often
	 * share a platform timestamp): paging must not lose any of them. */
	snprintf(q, sizeof q,
		 "INSERT INTO live_messages (platform, room_id, ts, msg_id, type) SELECT 'bilibili', '%s', "
		 "date_trunc('milliseconds', now()) - interval '2 hours', 'tie' || g, 'enter' "
		 "FROM generate_series(1, 30) g",
		 room);
	sql(c, q);

	struct resp r = http("GET", path("/api/v1/rooms/bilibili/%s/messages?limit=5", room), NULL, NULL);
	cJSON *j = json_ok(&r);
	const cJSON *ms = cJSON_GetObjectItem(j, "messages");
	ck_assert_int_eq(cJSON_GetArraySize(ms), 5);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(ms, 0), "msg_id")->valuestring, "r2");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(ms, 3), "msg_id")->valuestring, "p1");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(ms, 3), "content")->valuestring,
			 "a,\"b\"\nc");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "sources")), 2);
	cJSON_Delete(j);
	resp_free(&r);

	/* Paging with next_cursor (7 at a time, so pages split the tie) walks
	 * every message exactly once, newest first. */
	int total = 0;
	char url[512], seen_prev[160] = "";
	snprintf(url, sizeof url, "/api/v1/rooms/bilibili/%s/messages?limit=7", room);
	int64_t prev = INT64_MAX;
	for (int page = 0; page < 100; page++) {
		r = http("GET", url, NULL, NULL);
		j = json_ok(&r);
		const cJSON *it;
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(j, "messages"))
		{
			int64_t ts = (int64_t)cJSON_GetObjectItem(it, "ts")->valuedouble;
			const char *id = cJSON_GetObjectItem(it, "msg_id")->valuestring;
			ck_assert_msg(ts < prev || (ts == prev && strcmp(id, seen_prev) < 0),
				      "page %d: %lld/%s after %lld/%s", page, (long long)ts, id,
				      (long long)prev, seen_prev);
			prev = ts;
			snprintf(seen_prev, sizeof seen_prev, "%s", id);
			total++;
		}
		const cJSON *nc = cJSON_GetObjectItem(j, "next_cursor");
		if (cJSON_IsNull(nc)) {
			cJSON_Delete(j);
			resp_free(&r);
			break;
		}
		snprintf(url, sizeof url, "/api/v1/rooms/bilibili/%s/messages?limit=7&cursor=%s", room,
			 nc->valuestring);
		cJSON_Delete(j);
		resp_free(&r);
	}
	ck_assert_int_eq(total, 283);
	/* next_before (plain ms) pages by time; with limit 100 nothing here
	 * shares a boundary millisecond. */
	r = http("GET", path("/api/v1/rooms/bilibili/%s/messages?limit=3&cursor=12-zz", room), NULL, NULL);
	assert_error(&r, 400, "bad_input");
	resp_free(&r);
	r = http("GET", path("/api/v1/rooms/bilibili/%s/messages?limit=3&cursor=12-2700", room), NULL, NULL);
	assert_error(&r, 400, "bad_input"); /* a NUL in the id */
	resp_free(&r);

	/* type and time range filters, from both sources. */
	r = http("GET", path("/api/v1/rooms/bilibili/%s/messages?type=gift", room), NULL, NULL);
	j = json_ok(&r);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "messages")), 1);
	cJSON_Delete(j);
	resp_free(&r);
	r = http("GET",
		 path("/api/v1/rooms/bilibili/%s/messages?since=%lld&until=%lld&limit=1000", room,
		      (long long)(now - 3600 * 1000 - 10500), (long long)(now - 3600 * 1000)),
		 NULL, NULL);
	j = json_ok(&r);
	int n = cJSON_GetArraySize(cJSON_GetObjectItem(j, "messages"));
	ck_assert_msg(n >= 9 && n <= 11, "range gave %d", n);
	cJSON_Delete(j);
	resp_free(&r);

	static const char *const bad[] = {"since=10&until=5",	"since=abc",   "type=chat'--",
					  "type=%27%3B%20DROP", "type=%ff%fe", "until=999999999999999999",
					  "limit=1000000",	NULL};
	for (int i = 0; bad[i]; i++) {
		r = http("GET", path("/api/v1/rooms/bilibili/%s/messages?%s", room, bad[i]), NULL, NULL);
		assert_error(&r, 400, "bad_input");
		resp_free(&r);
	}
	PQfinish(c);
	redisFree(rc);
}
END_TEST

START_TEST(users_sessions_export)
{
	redisContext *rc = redis();
	PGconn *c = pg();
	char key[160], q[1024];
	snprintf(key, sizeof key, "live:{bilibili:%s}:user_stats", room);
	rcmd(rc, "DEL %s", key);
	rcmd(rc, "ZADD %s 12 alice 40 bob", key);
	snprintf(key, sizeof key, "live:{bilibili:%s}:user:bob", room);
	rcmd(rc, "HSET %s name Bob messages 40 gifts 2 gift_value 500 likes 3 first_seen 1 last_seen 2", key);
	snprintf(key, sizeof key, "live:{bilibili:%s}:user:alice", room);
	rcmd(rc, "HSET %s name Alice messages 12 gifts 0 gift_value 0 likes 0 first_seen 1 last_seen 2", key);
	struct resp r = http("GET", path("/api/v1/rooms/bilibili/%s/users?limit=10", room), NULL, NULL);
	cJSON *j = json_ok(&r);
	const cJSON *u = cJSON_GetObjectItem(j, "users");
	ck_assert_int_eq(cJSON_GetArraySize(u), 2);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(u, 0), "name")->valuestring, "Bob");
	ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(u, 0), "gift_value")->valueint, 500);
	cJSON_Delete(j);
	resp_free(&r);

	snprintf(q, sizeof q,
		 "INSERT INTO user_statistics (platform, room_id, user_id, user_name, messages, gift_value, "
		 "first_seen, last_seen) VALUES ('bilibili', '%s', 'x', 'Xavier', 1, 9000, now(), now()), "
		 "('bilibili', '%s', 'y', 'Yan', 50, 10, now(), now())",
		 room, room);
	sql(c, q);
	r = http("GET", path("/api/v1/rooms/bilibili/%s/users?order=gift_value", room), NULL, NULL);
	j = json_ok(&r);
	u = cJSON_GetObjectItem(j, "users");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(u, 0), "name")->valuestring, "Xavier");
	ck_assert_str_eq(cJSON_GetObjectItem(j, "source")->valuestring, "postgres");
	cJSON_Delete(j);
	resp_free(&r);
	r = http("GET", path("/api/v1/rooms/bilibili/%s/users?order=name", room), NULL, NULL);
	assert_error(&r, 400, "bad_input");
	resp_free(&r);

	snprintf(q, sizeof q,
		 "INSERT INTO live_sessions (platform, room_id, started_at, ended_at, messages) VALUES "
		 "('bilibili', '%s', now() - interval '3 hours', now() - interval '2 hours', 10), "
		 "('bilibili', '%s', now() - interval '1 hour', NULL, 20)",
		 room, room);
	sql(c, q);
	r = http("GET", path("/api/v1/rooms/bilibili/%s/sessions?limit=1", room), NULL, NULL);
	j = json_ok(&r);
	const cJSON *s = cJSON_GetObjectItem(j, "sessions");
	ck_assert_int_eq(cJSON_GetArraySize(s), 1);
	ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(s, 0), "messages")->valueint, 20);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(s, 0), "ended_at")));
	double nb = cJSON_GetObjectItem(j, "next_before")->valuedouble;
	cJSON_Delete(j);
	resp_free(&r);
	r = http("GET", path("/api/v1/rooms/bilibili/%s/sessions?before=%.0f", room, nb), NULL, NULL);
	j = json_ok(&r);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "sessions")), 1);
	cJSON_Delete(j);
	resp_free(&r);

	/* Export: 3000 rows streamed, chunked; CSV quoting holds. */
	snprintf(
	    q, sizeof q,
	    "INSERT INTO live_messages (platform, room_id, ts, msg_id, type, user_id, user_name, content) "
	    "SELECT 'douyin', '%s', now() - g * interval '1 second', 'e' || g, 'chat', 'u', 'n', "
	    "CASE WHEN g = 7 THEN E'comma, \"quote\"\\nnewline' ELSE repeat('字', 50) END "
	    "FROM generate_series(1, 3000) g",
	    room);
	sql(c, q);
	r = http("GET", path("/api/v1/rooms/douyin/%s/export?format=csv", room), NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.headers, "transfer-encoding: chunked"));
	ck_assert_ptr_nonnull(strstr(r.headers, "text/csv"));
	ck_assert_ptr_nonnull(strstr(r.body, "\"comma, \"\"quote\"\"\nnewline\""));
	int lines = 0;
	for (char *p = r.body; *p; p++)
		lines += *p == '\n';
	ck_assert_int_eq(lines, 3000 + 1 + 1); /* header + one embedded newline */
	resp_free(&r);
	r = http("GET", path("/api/v1/rooms/douyin/%s/export?format=jsonl&since=0", room), NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	lines = 0;
	for (char *line = strtok(r.body, "\n"); line; line = strtok(NULL, "\n")) {
		cJSON *m = cJSON_Parse(line);
		ck_assert_msg(m != NULL, "bad line %s", line);
		cJSON_Delete(m);
		lines++;
	}
	ck_assert_int_eq(lines, 3000);
	resp_free(&r);
	r = http("GET", path("/api/v1/rooms/douyin/%s/export?format=xml", room), NULL, NULL);
	assert_error(&r, 400, "bad_input");
	resp_free(&r);
	PQfinish(c);
	redisFree(rc);
}
END_TEST

/* ---- tests: the live feed ---------------------------------------------- */

/* Open the feed; returns the socket after the 101. */
static int ws_open_buf(const char *p, int *status, int rcvbuf)
{
	int fd = dial_buf(port, rcvbuf);
	char req[1024];
	snprintf(req, sizeof req,
		 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
		 p);
	send_all(fd, req, strlen(req));
	char buf[4096];
	size_t n = 0;
	while (n < sizeof buf - 1) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, 5000) <= 0)
			break;
		ssize_t r = recv(fd, buf + n, 1, 0);
		if (r <= 0)
			break;
		n++;
		buf[n] = '\0';
		if (n >= 4 && !memcmp(buf + n - 4, "\r\n\r\n", 4))
			break;
	}
	buf[n] = '\0';
	*status = n > 12 ? atoi(buf + 9) : 0;
	return fd;
}

static int recv_exact(int fd, unsigned char *p, size_t n, int timeout_ms)
{
	size_t got = 0;
	while (got < n) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, timeout_ms) <= 0)
			return -1;
		ssize_t r = recv(fd, p + got, n - got, 0);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int ws_open(const char *p, int *status)
{
	return ws_open_buf(p, status, 0);
}

/* The next text frame's payload (malloc'd), or NULL after timeout_ms. */
static char *ws_next(int fd, int timeout_ms)
{
	unsigned char h[2];
	if (recv_exact(fd, h, 2, timeout_ms))
		return NULL;
	uint64_t len = h[1] & 0x7f;
	if (len == 126) {
		unsigned char e[2];
		ck_assert(!recv_exact(fd, e, 2, 2000));
		len = (uint64_t)e[0] << 8 | e[1];
	} else if (len == 127) {
		unsigned char e[8];
		ck_assert(!recv_exact(fd, e, 8, 2000));
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | e[i];
	}
	ck_assert(len < 1 << 20);
	char *p = malloc(len + 1);
	ck_assert(!recv_exact(fd, (unsigned char *)p, len, 2000));
	p[len] = '\0';
	return p;
}

START_TEST(live_feed)
{
	int st = 0;
	int fd = ws_open(path("/api/v1/rooms/bilibili/%s/live", room), &st);
	ck_assert_int_eq(st, 101);
	int bad = ws_open("/api/v1/rooms/evil/x/live", &st);
	ck_assert_int_ne(st, 101);
	close(bad);
	redisContext *rc = redis();
	char ch[128], other[128], m[512];
	snprintf(ch, sizeof ch, "live:{bilibili:%s}", room);
	snprintf(other, sizeof other, "live:{bilibili:%s-other}", room);
	/* Until the first frame arrives the client may not be attached yet (a
	 * loaded machine): ping the channel until it does, then count. */
	bool attached = false;
	for (int i = 0; i < 50 && !attached; i++) {
		rcmd(rc, "PUBLISH %s %s", ch, "{\"hello\":1}");
		char *got = ws_next(fd, 200);
		attached = got != NULL;
		free(got);
	}
	ck_assert_msg(attached, "the live feed never delivered");
	while (1) { /* drain extra hellos */
		char *got = ws_next(fd, 300);
		if (!got)
			break;
		free(got);
	}
	for (int i = 0; i < 5; i++) {
		char id[16];
		snprintf(id, sizeof id, "w%d", i);
		msg_json(m, sizeof m, id, "chat", "u", "实时消息", lt_clock_wall_ms());
		rcmd(rc, "PUBLISH %s %s", other, "{\"not\":\"mine\"}");
		rcmd(rc, "PUBLISH %s %s", ch, m);
	}
	for (int i = 0; i < 5; i++) {
		char *got = ws_next(fd, 5000);
		ck_assert_msg(got != NULL, "frame %d did not arrive", i);
		char id[32];
		snprintf(id, sizeof id, "\"msg_id\":\"w%d\"", i);
		ck_assert_msg(strstr(got, id) && strstr(got, "实时消息"), "frame %d: %s", i, got);
		free(got);
	}
	ck_assert_ptr_null(ws_next(fd, 300)); /* nothing from the other room */
	close(fd);

	/* A client that never reads: its queue stays bounded and drops count. */
	fd = ws_open_buf(path("/api/v1/rooms/bilibili/%s/live", room), &st, 4096);
	ck_assert_int_eq(st, 101);
	attached = false;
	for (int i = 0; i < 50 && !attached; i++) {
		rcmd(rc, "PUBLISH %s %s", ch, "{\"hello\":2}");
		char *got = ws_next(fd, 200);
		attached = got != NULL;
		free(got);
	}
	ck_assert(attached);
	char big[8192];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	for (int i = 0; i < 3000; i++)
		rcmd(rc, "PUBLISH %s %s", ch, big);
	usleep(800 * 1000);
	struct resp r = http("GET", "/metrics", NULL, NULL);
	char *d = strstr(r.body, "\nlivetap_api_ws_dropped_total ");
	ck_assert_ptr_nonnull(d);
	ck_assert_msg(atol(d + strlen("\nlivetap_api_ws_dropped_total ")) > 0, "no drops counted: %.80s", d);
	resp_free(&r);
	close(fd);
	r = http("GET", "/healthz", NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	redisFree(rc);
}
END_TEST

/* ---- tests: hostile requests ------------------------------------------- */

START_TEST(hostile_requests)
{
	static const char *const paths[] = {
	    "/api/v1/rooms/bilibili/..%2F..%2Fetc%2Fpasswd/status",
	    "/api/v1/rooms/bilibili/a%00b/status",
	    "/api/v1/rooms/bilibili/%E2%80%AE/status",
	    "/api/v1/rooms/bilibili/1%27%20OR%201%3D1/messages",
	    "/api/v1/rooms/BILIBILI/1/status",
	    "/api/v1/rooms/bilibili/"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/status",
	    "/api/v1/rooms/bilibili/1/status/extra",
	    "/api/v1/nothing",
	    "/../../etc/passwd",
	    NULL,
	};
	for (int i = 0; paths[i]; i++) {
		struct resp r = http("GET", paths[i], NULL, NULL);
		if (r.closed_early && strstr(paths[i], "%00")) {
			/* lws itself drops a request whose URI decodes to a NUL. */
			resp_free(&r);
			continue;
		}
		ck_assert_msg(r.status == 400 || r.status == 404, "%s: %d", paths[i], r.status);
		if (r.status != 404 || strncmp(paths[i], "/../", 4))
			assert_error(&r, r.status, NULL);
		resp_free(&r);
	}
	struct resp r = http("PUT", "/api/v1/rooms", NULL, "{}");
	ck_assert_msg(r.status >= 400 && r.status < 500, "PUT: %d", r.status);
	resp_free(&r);
	/* Too many query parameters. */
	char many[1024] = "/api/v1/rooms/bilibili/1/messages?";
	for (int i = 0; i < 20; i++)
		strcat(many, "limit=1&");
	r = http("GET", many, NULL, NULL);
	assert_error(&r, 400, "bad_input");
	resp_free(&r);
	/* A header far over the limit: refused or closed, never a crash. */
	char *hdr = malloc(40000);
	strcpy(hdr, "X-Junk: ");
	memset(hdr + 8, 'a', 39000);
	strcpy(hdr + 39008, "\r\n");
	r = http("GET", "/healthz", hdr, NULL);
	ck_assert_msg(r.closed_early || (r.status >= 400 && r.status < 500), "huge header: %d", r.status);
	resp_free(&r);
	free(hdr);
	/* Garbage instead of HTTP. */
	int fd = dial(port);
	send_all(fd, "\x16\x03\x01garbage\r\n\r\n", 14);
	size_t n;
	free(read_all(fd, &n));
	close(fd);
	/* Credentials that are too long or not Bearer. */
	char longkey[1500];
	memset(longkey, 'k', sizeof longkey);
	snprintf(longkey, sizeof longkey, "X-API-Key: %01400d\r\n", 7);
	r = http("GET", "/api/v1/rooms", longkey, NULL);
	assert_error(&r, 401, "unauthorized");
	resp_free(&r);
	r = http("GET", "/api/v1/rooms", "Authorization: Basic YWRtaW46YWRtaW4=\r\n", NULL);
	assert_error(&r, 401, "unauthorized");
	resp_free(&r);
	/* Still alive and well. */
	r = http("GET", "/healthz", NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
}
END_TEST

/* ---- tests: rate limit, admin ------------------------------------------ */

START_TEST(rate_limit)
{
	int p = free_port();
	static const char *const extra[] = {"LIVETAP_API_RATE_PER_S=1", "LIVETAP_API_RATE_BURST=3", NULL};
	pid_t pid = start_server(p, extra, server_log);
	int ok = 0, limited = 0;
	struct resp last = {0};
	for (int i = 0; i < 6; i++) {
		struct resp r = http_to(p, "GET", "/api/v1/openapi.json", NULL, NULL);
		if (r.status == 200)
			ok++;
		if (r.status == 429) {
			limited++;
			resp_free(&last);
			last = r;
			continue;
		}
		resp_free(&r);
	}
	ck_assert_msg(ok >= 2 && ok <= 4, "ok=%d", ok);
	ck_assert_int_ge(limited, 2);
	assert_error(&last, 429, NULL);
	ck_assert_ptr_nonnull(strstr(last.headers, "retry-after: "));
	resp_free(&last);
	sleep(2);
	struct resp r = http_to(p, "GET", "/api/v1/openapi.json", NULL, NULL);
	ck_assert_int_eq(r.status, 200); /* the bucket refilled */
	resp_free(&r);
	stop_server(pid);

	/* Password guessing has its own, stricter bucket: a burst of 10, then
	 * one per 6 s (slow sanitizer builds may earn a token back meanwhile). */
	p = free_port();
	pid = start_server(p, NULL, server_log);
	int refused = 0, limited_at = -1;
	for (int i = 0; i < 20 && limited_at < 0; i++) {
		r = http_to(p, "POST", "/api/v1/auth/login", NULL, "{\"password\":\"guess-guess-guess\"}");
		if (r.status == 429)
			limited_at = i;
		else
			assert_error(&r, 401, "unauthorized");
		refused += r.status == 401;
		resp_free(&r);
	}
	ck_assert_msg(limited_at >= 10, "limited after %d guesses", limited_at);
	ck_assert_int_ge(refused, 10);
	/* Right after a 429 even the right password waits. */
	r = http_to(p, "POST", "/api/v1/auth/login", NULL, "{\"password\":\"" PASSWORD "\"}");
	assert_error(&r, 429, NULL);
	ck_assert_ptr_nonnull(strstr(r.headers, "retry-after: "));
	resp_free(&r);
	r = http_to(p, "GET", "/api/v1/openapi.json", NULL, NULL);
	ck_assert_int_eq(r.status, 200); /* other endpoints are not affected */
	resp_free(&r);
	stop_server(pid);
}
END_TEST

START_TEST(admin_backup_retention)
{
	struct resp r = http("POST", "/api/v1/admin/backup", NULL, NULL);
	assert_error(&r, 401, NULL);
	resp_free(&r);
	r = http("POST", "/api/v1/admin/backup", "X-API-Key: " WRITE_KEY "\r\n", NULL);
	cJSON *j = json_ok(&r);
	char file[2048];
	snprintf(file, sizeof file, "%s/%s", state_dir, cJSON_GetObjectItem(j, "file")->valuestring);
	struct stat sb;
	ck_assert_msg(stat(file, &sb) == 0 && sb.st_size > 1000, "backup %s missing or tiny", file);
	ck_assert_int_eq((long)sb.st_size, (long)cJSON_GetObjectItem(j, "bytes")->valuedouble);
	cJSON_Delete(j);
	resp_free(&r);

	PGconn *c = pg();
	sql(c, "SELECT livetap_ensure_partition(current_date - 40)");
	ck_assert_int_eq(sql_long(c, "SELECT count(*) FROM pg_class WHERE relname = 'live_messages_p' || "
				     "to_char(current_date - 40, 'YYYYMMDD') AND relnamespace = "
				     "current_schema()::regnamespace"),
			 1);
	r = http("POST", "/api/v1/admin/retention", "X-API-Key: " WRITE_KEY "\r\n", "{\"days\":0}");
	assert_error(&r, 400, "bad_input");
	resp_free(&r);
	r = http("POST", "/api/v1/admin/retention", "X-API-Key: " WRITE_KEY "\r\n", "{\"days\":30}");
	j = json_ok(&r);
	ck_assert_int_ge(cJSON_GetObjectItem(j, "dropped_partitions")->valueint, 1);
	cJSON_Delete(j);
	resp_free(&r);
	ck_assert_int_eq(sql_long(c, "SELECT count(*) FROM pg_class WHERE relname = 'live_messages_p' || "
				     "to_char(current_date - 40, 'YYYYMMDD') AND relnamespace = "
				     "current_schema()::regnamespace"),
			 0);
	ck_assert_int_eq(sql_long(c, "SELECT count(*) FROM audit_logs WHERE action IN ('admin.backup', "
				     "'admin.retention')"),
			 2);
	PQfinish(c);
}
END_TEST

START_TEST(healthz_names_what_is_down)
{
	int p = free_port();
	char redis_url[64], dead_pg[1200];
	snprintf(redis_url, sizeof redis_url, "LIVETAP_REDIS_URL=redis://127.0.0.1:%d/0", free_port());
	const char *const extra[] = {redis_url, NULL};
	pid_t pid = start_server(p, extra, server_log);
	struct resp r = http_to(p, "GET", "/healthz", NULL, NULL);
	ck_assert_int_eq(r.status, 503);
	cJSON *j = cJSON_Parse(r.body);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "redis"), "ok")));
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "postgres"), "ok")));
	ck_assert(cJSON_IsString(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "redis"), "error")));
	cJSON_Delete(j);
	resp_free(&r);
	/* A read that needs Redis is a 503 with the error body, not a hang. */
	r = http_to(p, "GET", path("/api/v1/rooms/bilibili/%s/hotwords", room), NULL, NULL);
	assert_error(&r, 503, NULL);
	resp_free(&r);
	stop_server(pid);

	p = free_port();
	snprintf(dead_pg, sizeof dead_pg,
		 "LIVETAP_PG_DSN=host=127.0.0.1 port=%d dbname=x user=x connect_timeout=2", free_port());
	const char *const extra2[] = {dead_pg, NULL};
	pid = start_server(p, extra2, server_log);
	r = http_to(p, "GET", "/healthz", NULL, NULL);
	ck_assert_int_eq(r.status, 503);
	j = cJSON_Parse(r.body);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "redis"), "ok")));
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "postgres"), "ok")));
	cJSON_Delete(j);
	resp_free(&r);
	stop_server(pid);
}
END_TEST

/* PostgreSQL fails in the middle of an export: the transfer must end
 * broken (no terminating chunk), never as a short file that looks whole. */
START_TEST(export_fails_midway)
{
	PGconn *c = pg();
	char q[512];
	snprintf(q, sizeof q,
		 "INSERT INTO live_messages (platform, room_id, ts, msg_id, type, content) "
		 "SELECT 'bilibili', '%s-x', now() - g * interval '1 ms', 'f' || g, 'chat', repeat('y', 300) "
		 "FROM generate_series(1, 200000) g",
		 room);
	sql(c, q);
	int fd = dial_buf(port, 4096);
	char req[512];
	snprintf(req, sizeof req,
		 "GET /api/v1/rooms/bilibili/%s-x/export?format=csv HTTP/1.1\r\nHost: x\r\n\r\n", room);
	send_all(fd, req, strlen(req));
	char buf[65536];
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
	ck_assert_int_gt(recv(fd, buf, sizeof buf, 0), 0);
	/* The query is still running (the client reads slowly): kill it. */
	long killed = 0;
	for (int i = 0; i < 50 && killed == 0; i++) {
		killed = sql_long(c, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
				     "WHERE application_name = 'livetap-api' AND state = 'active' "
				     "AND query LIKE '%live_messages%'");
		if (!killed)
			usleep(100 * 1000);
	}
	ck_assert_int_ge(killed, 1);
	/* Read the rest: it must not end with the last chunk. */
	char tail[8] = "";
	size_t total = 0;
	for (;;) {
		pfd.revents = 0;
		if (poll(&pfd, 1, 10000) <= 0)
			break;
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n <= 0)
			break;
		total += (size_t)n;
		if (n >= 7)
			memcpy(tail, buf + n - 7, 7);
	}
	close(fd);
	ck_assert_msg(strcmp(tail, "\r\n0\r\n\r\n") != 0,
		      "a failed export ended like a complete one (%zu bytes)", total);
	/* The server saw it fail (not a client hiccup), and serves on. */
	struct resp r = http("GET", "/metrics", NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "livetap_api_requests_total{route=\"export\",code=\"5xx\"} "));
	resp_free(&r);
	PQfinish(c);
}
END_TEST

/* api.read_auth=always: what a listener beyond loopback (or a loopback
 * one behind a public proxy) does: every read needs a key or token. */
START_TEST(reads_need_auth_off_loopback)
{
	int p = free_port();
	static const char *const extra[] = {"LIVETAP_API_READ_AUTH=always", NULL};
	pid_t pid = start_server(p, extra, server_log);
	struct resp r = http_to(p, "GET", "/api/v1/rooms", NULL, NULL);
	assert_error(&r, 401, "unauthorized");
	resp_free(&r);
	r = http_to(p, "GET", path("/api/v1/rooms/bilibili/%s/hotwords", room), NULL, NULL);
	assert_error(&r, 401, "unauthorized");
	resp_free(&r);
	r = http_to(p, "GET", "/metrics", NULL, NULL);
	assert_error(&r, 401, "unauthorized");
	resp_free(&r);
	r = http_to(p, "GET", "/api/v1/rooms", "X-API-Key: " READ_KEY "\r\n", NULL);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	r = http_to(p, "GET", "/", NULL, NULL); /* the page holds no data: it asks for a login */
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	r = http_to(p, "GET", "/healthz", NULL, NULL); /* probes stay open */
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	r = http_to(p, "GET", "/api/v1/openapi.json", NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	resp_free(&r);
	/* The live feed: refused without a token, accepted with ?token=. */
	int save = port, st = 0;
	port = p;
	int fd = ws_open(path("/api/v1/rooms/bilibili/%s/live", room), &st);
	ck_assert_int_ne(st, 101);
	close(fd);
	fd = ws_open(path("/api/v1/rooms/bilibili/%s/live?token=%s", room, READ_KEY), &st);
	ck_assert_int_eq(st, 101);
	close(fd);
	port = save;
	stop_server(pid);
}
END_TEST

/* A client that leaves in the middle of a large export: the server
 * cancels the query and keeps serving everyone else. */
START_TEST(export_client_leaves)
{
	PGconn *c = pg();
	char q[512];
	snprintf(q, sizeof q,
		 "INSERT INTO live_messages (platform, room_id, ts, msg_id, type, content) "
		 "SELECT 'kook', '%s', now() - g * interval '1 ms', 'big' || g, 'chat', repeat('x', 200) "
		 "FROM generate_series(1, 100000) g",
		 room);
	sql(c, q);
	/* One worker: a worker left waiting on a gone client would hang
	 * every later request. */
	int p = free_port();
	static const char *const extra[] = {"LIVETAP_API_WORKERS=1", NULL};
	pid_t pid = start_server(p, extra, server_log);
	for (int round = 0; round < 3; round++) {
		int fd = dial_buf(p, 4096);
		char req[512];
		snprintf(req, sizeof req,
			 "GET /api/v1/rooms/kook/%s/export?format=csv HTTP/1.1\r\nHost: x\r\n\r\n", room);
		send_all(fd, req, strlen(req));
		char buf[4096];
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
		ck_assert_int_gt(recv(fd, buf, sizeof buf, 0), 0);
		close(fd);
		struct resp r = http_to(p, "GET", path("/api/v1/rooms/kook/%s/sessions", room), NULL, NULL);
		ck_assert_int_eq(r.status, 200);
		resp_free(&r);
	}
	/* And a complete one still works, all 100000 rows. */
	struct resp r =
	    http_to(p, "GET", path("/api/v1/rooms/kook/%s/export?format=jsonl", room), NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	size_t lines = 0;
	for (char *x = r.body; *x; x++)
		lines += *x == '\n';
	ck_assert_uint_eq(lines, 100000);
	resp_free(&r);
	stop_server(pid);
	PQfinish(c);
}
END_TEST

/* ---- main -------------------------------------------------------------- */

static Suite *suite(void)
{
	Suite *s = suite_create("api");
	TCase *t = tcase_create("api");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, healthz_metrics_openapi_dashboard);
	tcase_add_test(t, rooms_auth_audit);
	tcase_add_test(t, login_tokens);
	tcase_add_test(t, bad_bodies);
	tcase_add_test(t, hotwords_cache_and_fallback);
	tcase_add_test(t, messages_redis_then_postgres);
	tcase_add_test(t, users_sessions_export);
	tcase_add_test(t, live_feed);
	tcase_add_test(t, hostile_requests);
	tcase_add_test(t, rate_limit);
	tcase_add_test(t, admin_backup_retention);
	tcase_add_test(t, healthz_names_what_is_down);
	tcase_add_test(t, export_client_leaves);
	tcase_add_test(t, reads_need_auth_off_loopback);
	tcase_add_test(t, export_fails_midway);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	const char *base = lt_test_pg_dsn();
	(void)lt_test_redis_url();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	unsigned r = (unsigned)getpid() * 2654435761u ^ (unsigned)ts.tv_nsec;
	snprintf(schema, sizeof schema, "t_api_%08x", r);
	snprintf(room, sizeof room, "t%u", r % 100000000u);
	snprintf(dsn, sizeof dsn, "%s options=-csearch_path=%s", base, schema);
	PGconn *c = PQconnectdb(base);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "test_api: %s", PQerrorMessage(c));
		return 1;
	}
	char q[256];
	snprintf(q, sizeof q, "SET client_min_messages = warning; CREATE SCHEMA %s; SET search_path TO %s",
		 schema, schema);
	PQclear(PQexec(c, q));
	struct lt_error e = {0};
	if (lt_migrate_apply(c, &e) != LT_OK) {
		fprintf(stderr, "test_api: migrations: %s\n", e.message);
		return 1;
	}
	char *dir = lt_test_tmpdir("api");
	snprintf(state_dir, sizeof state_dir, "%s/state", dir);
	snprintf(server_log, sizeof server_log, "%s/livetap-api.log", dir);
	mkdir(state_dir, 0700);
	snprintf(config_file, sizeof config_file, "%s/livetap.json", dir);
	FILE *cf = fopen(config_file, "w");
	if (!cf)
		return 1;
	fputs("{}\n", cf);
	fclose(cf);
	port = free_port();
	server = start_server(port, NULL, server_log);
	int rc = lt_test_run_suite(suite());
	stop_server(server);
	/* Under the sanitizer build, a report from any livetap-api started here
	 * (they all log to server_log, leaks included at exit) fails the run. */
	FILE *lf = fopen(server_log, "r");
	char line[1024];
	while (lf && fgets(line, sizeof line, lf))
		if (strstr(line, "ERROR: AddressSanitizer") || strstr(line, "runtime error:") ||
		    strstr(line, "ERROR: LeakSanitizer")) {
			fprintf(stderr, "test_api: sanitizer report in %s: %s", server_log, line);
			rc = EXIT_FAILURE;
		}
	if (lf)
		fclose(lf);
	if (rc != EXIT_SUCCESS) {
		fprintf(stderr, "test_api: server log: %s\n", server_log);
	} else {
		snprintf(q, sizeof q, "SET client_min_messages = warning; DROP SCHEMA %s CASCADE", schema);
		PQclear(PQexec(c, q));
	}
	PQfinish(c);
	free(dir);
	return rc;
}
