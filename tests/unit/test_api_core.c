/* SPDX-License-Identifier: MIT */
/*
 * test_api_core: the parts of livetap-api that need no network or database:
 * route matching and parameter validation (api/routes.c), the token-bucket
 * rate limit with injected time (api/ratelimit.c), and API keys and tokens
 * (api/auth.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api/api.h"
#include "api/auth.h"
#include "api/ratelimit.h"
#include "api/routes.h"
#include "tests/support/testsupport.h"

static int match(int method, const char *path, const char *args, struct lt_req *q, const struct lt_route **r,
		 struct lt_error *e)
{
	static char buf[1024];
	char *argv[LT_API_MAX_ARGS];
	int n = 0;
	memset(q, 0, sizeof *q);
	q->until = INT64_MAX;
	snprintf(buf, sizeof buf, "%s", args ? args : "");
	for (char *t = strtok(buf, "&"); t && n < LT_API_MAX_ARGS; t = strtok(NULL, "&"))
		argv[n++] = t;
	memset(e, 0, sizeof *e);
	return lt_route_match(method, path, argv, n, q, r, e);
}

START_TEST(routes_ok)
{
	struct lt_req q;
	const struct lt_route *r = NULL;
	struct lt_error e;
	ck_assert_int_eq(
	    match(LT_M_GET, "/api/v1/rooms/bilibili/21452505/hotwords", "window=5m&limit=7", &q, &r, &e), 0);
	ck_assert_int_eq(r->id, LT_R_HOTWORDS);
	ck_assert_str_eq(q.platform, "bilibili");
	ck_assert_str_eq(q.room, "21452505");
	ck_assert_str_eq(q.window, "5m");
	ck_assert_int_eq(q.limit, 7);
	ck_assert_int_eq(match(LT_M_GET, "/api/v1/rooms/kook/a-b_C/messages",
			       "since=5&until=10&type=gift&before=9", &q, &r, &e),
			 0);
	ck_assert_int_eq(r->id, LT_R_MESSAGES);
	ck_assert_int_eq(q.since, 5);
	ck_assert_int_eq(q.until, 10);
	ck_assert_int_eq(q.before, 9);
	ck_assert_str_eq(q.type, "gift");
	ck_assert_int_eq(q.limit, 100); /* default */
	ck_assert_int_eq(match(LT_M_DELETE, "/api/v1/rooms/douyin/x", "purge=true", &q, &r, &e), 0);
	ck_assert_int_eq(r->id, LT_R_ROOMS_DEL);
	ck_assert(q.purge);
	ck_assert_int_eq(r->need, LT_ROLE_WRITE);
	ck_assert_int_eq(match(LT_M_POST, "/api/v1/rooms", NULL, &q, &r, &e), 0);
	ck_assert_int_eq(r->id, LT_R_ROOMS_ADD);
	ck_assert_int_eq(match(LT_M_GET, "/api/v1/rooms", NULL, &q, &r, &e), 0);
	ck_assert_int_eq(r->id, LT_R_ROOMS_LIST);
	ck_assert_int_eq(r->need, LT_ROLE_READ);
	ck_assert_int_eq(match(LT_M_GET, "/healthz", NULL, &q, &r, &e), 0);
	ck_assert_int_eq(r->need, LT_ROLE_NONE);
	ck_assert_int_eq(match(LT_M_GET, "/", NULL, &q, &r, &e), 0);
	ck_assert_int_eq(r->id, LT_R_STATIC);
}
END_TEST

START_TEST(routes_refused)
{
	struct lt_req q;
	const struct lt_route *r = NULL;
	struct lt_error e;
	static const struct {
		int method;
		const char *path, *args;
		int status;
	} bad[] = {
	    {LT_M_GET, "/api/v1/rooms/twitch/1/status", NULL, 400},
	    {LT_M_GET, "/api/v1/rooms/bilibili/../status", NULL, 400},
	    {LT_M_GET, "/api/v1/rooms/bilibili/a b/status", NULL, 400},
	    {LT_M_GET, "/api/v1/rooms/bilibili/a;b/status", NULL, 400},
	    {LT_M_GET,
	     "/api/v1/rooms/bilibili/"
	     "12345678901234567890123456789012345678901234567890123456789012345/status",
	     NULL, 400},
	    {LT_M_GET, "/api/v1/rooms/bilibili/1/hotwords", "window=10m", 400},
	    {LT_M_GET, "/api/v1/rooms/bilibili/1/hotwords", "limit=0", 400},
	    {LT_M_GET, "/api/v1/rooms/bilibili/1/hotwords", "limit=1001", 400},
	    {LT_M_GET, "/api/v1/rooms/bilibili/1/hotwords", "limit=12x", 400},
	    {LT_M_GET, "/api/v1/rooms/bilibili/1/hotwords", "since=1", 400},
	    {LT_M_GET, "/api/v1/rooms/bilibili/1/messages", "since=10&until=10", 400},
	    {LT_M_GET, "/api/v1/rooms/bilibili/1/messages", "until=9999999999999999", 400},
	    {LT_M_GET, "/api/v1/rooms/bilibili/1/messages", "type=chat' OR 1=1", 400},
	    {LT_M_GET, "/api/v1/rooms/bilibili/1/users", "order=random()", 400},
	    {LT_M_GET, "/api/v1/rooms/bilibili/1/export", "format=xlsx", 400},
	    {LT_M_GET, "/api/v1/rooms/bilibili/1/nothing", NULL, 404},
	    {LT_M_GET, "/api/v1/nothing", NULL, 404},
	    {LT_M_POST, "/api/v1/rooms/bilibili/1/status", NULL, 405},
	    {LT_M_GET, "/api/v1/rooms/bilibili/1", NULL, 405},
	    {LT_M_GET, "/api/v1/admin/backup", NULL, 405},
	    {LT_M_DELETE, "/metrics", NULL, 405},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int st = match(bad[i].method, bad[i].path, bad[i].args, &q, &r, &e);
		ck_assert_msg(st == bad[i].status, "%s?%s: %d, want %d", bad[i].path,
			      bad[i].args ? bad[i].args : "", st, bad[i].status);
		ck_assert_msg(e.message[0], "%s: no message", bad[i].path);
	}
}
END_TEST

START_TEST(ratelimit_buckets)
{
	struct lt_rl *rl = lt_rl_new(2.0, 3.0); /* 2/s, burst 3 */
	int retry = 0;
	int64_t t = 1000;
	for (int i = 0; i < 3; i++)
		ck_assert(lt_rl_take(rl, "a:1.2.3.4", t, &retry));
	ck_assert(!lt_rl_take(rl, "a:1.2.3.4", t, &retry));
	ck_assert_int_eq(retry, 1);
	ck_assert(lt_rl_take(rl, "a:5.6.7.8", t, &retry)); /* another client is not affected */
	t += 500;					   /* one token back */
	ck_assert(lt_rl_take(rl, "a:1.2.3.4", t, &retry));
	ck_assert(!lt_rl_take(rl, "a:1.2.3.4", t, &retry));
	t += 10000; /* refills up to the burst, no further */
	for (int i = 0; i < 3; i++)
		ck_assert(lt_rl_take(rl, "a:1.2.3.4", t, &retry));
	ck_assert(!lt_rl_take(rl, "a:1.2.3.4", t, &retry));
	/* Many clients: the table stays bounded and keeps working. */
	char key[32];
	for (int i = 0; i < 50000; i++) {
		snprintf(key, sizeof key, "a:10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		ck_assert(lt_rl_take(rl, key, t, &retry));
	}
	lt_rl_free(rl);
	rl = lt_rl_new(0, 1); /* off */
	for (int i = 0; i < 1000; i++)
		ck_assert(lt_rl_take(rl, "x", 0, &retry));
	lt_rl_free(rl);
}
END_TEST

static struct lt_auth *auth_with(const char *const *env)
{
	struct lt_config *cfg = NULL;
	struct lt_error e = {0};
	char *dir = lt_test_tmpdir("auth");
	char path[1024];
	snprintf(path, sizeof path, "%s/livetap.json", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "{\"state_dir\":\"%s\"}\n", dir);
	fclose(f);
	ck_assert_msg(lt_config_load(path, env, &cfg, &e) == LT_OK, "%s", e.message);
	struct lt_auth *a = NULL;
	int rc = lt_auth_new(cfg, &a, &e);
	lt_config_free(cfg);
	free(dir);
	return rc == LT_OK ? a : NULL;
}

START_TEST(auth_keys_and_tokens)
{
	static const char *const env[] = {"LIVETAP_API_KEYS=write-key-aaaaaaaaaaaa,write-key-bbbbbbbbbbbb",
					  "LIVETAP_API_READ_KEYS=read-key-cccccccccccc",
					  "LIVETAP_ADMIN_PASSWORD=a-good-password-1", NULL};
	struct lt_auth *a = auth_with(env);
	ck_assert_ptr_nonnull(a);
	char actor[48];
	ck_assert_int_eq(lt_auth_check(a, "write-key-bbbbbbbbbbbb", 22, 0, actor, sizeof actor),
			 LT_ROLE_WRITE);
	ck_assert(!strncmp(actor, "key:", 4) && strlen(actor) == 12);
	ck_assert_int_eq(lt_auth_check(a, "read-key-cccccccccccc", 21, 0, actor, sizeof actor), LT_ROLE_READ);
	ck_assert_int_eq(lt_auth_check(a, "write-key-bbbbbbbbbbbX", 22, 0, actor, sizeof actor),
			 LT_ROLE_NONE);
	ck_assert_int_eq(lt_auth_check(a, "write-key-bbbbbbbbbbb", 21, 0, actor, sizeof actor), LT_ROLE_NONE);
	ck_assert_int_eq(lt_auth_check(a, "", 0, 0, actor, sizeof actor), LT_ROLE_NONE);

	char tok[1024], out[1024];
	int64_t now = 1795300000000, exp = 0;
	ck_assert_int_eq(lt_auth_login(a, "wrong-password-1", 16, now, out, sizeof out, &exp), LT_EAUTH);
	ck_assert_int_eq(lt_auth_login(a, "a-good-password-1", 17, now, tok, sizeof tok, &exp), LT_OK);
	ck_assert_int_eq(exp, now / 1000 + 43200);
	ck_assert_int_eq(lt_auth_check(a, tok, strlen(tok), now + 1000, actor, sizeof actor), LT_ROLE_ADMIN);
	ck_assert_str_eq(actor, "admin");
	/* Expired, or any byte changed: refused. */
	ck_assert_int_eq(lt_auth_check(a, tok, strlen(tok), (exp + 1) * 1000, actor, sizeof actor),
			 LT_ROLE_NONE);
	for (size_t i = 0; i < strlen(tok); i += 7) {
		snprintf(out, sizeof out, "%s", tok);
		if (out[i] == '.')
			continue;
		out[i] = out[i] == 'A' ? 'B' : 'A';
		ck_assert_msg(lt_auth_check(a, out, strlen(out), now, actor, sizeof actor) == LT_ROLE_NONE,
			      "byte %zu changed and still accepted", i);
	}
	/* Another secret (another state dir) does not accept it. */
	struct lt_auth *b = auth_with(env);
	ck_assert_int_eq(lt_auth_check(b, tok, strlen(tok), now, actor, sizeof actor), LT_ROLE_NONE);
	lt_auth_free(b);
	lt_auth_free(a);

	static const char *const short_pw[] = {"LIVETAP_ADMIN_PASSWORD=short", NULL};
	ck_assert_ptr_null(auth_with(short_pw));
	static const char *const short_key[] = {"LIVETAP_API_KEYS=abc",
						"LIVETAP_ADMIN_PASSWORD=a-good-password-1", NULL};
	ck_assert_ptr_null(auth_with(short_key));
}
END_TEST

START_TEST(auth_generated_password)
{
	char *dir = lt_test_tmpdir("authpw");
	char cfgpath[1024], pwpath[1024], pw[128];
	snprintf(cfgpath, sizeof cfgpath, "%s/livetap.json", dir);
	snprintf(pwpath, sizeof pwpath, "%s/state/admin-password", dir);
	FILE *f = fopen(cfgpath, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "{\"state_dir\":\"%s/state\"}\n", dir);
	fclose(f);
	static const char *const env[] = {"LIVETAP_LOG_LEVEL=warn", NULL};
	struct lt_config *cfg = NULL;
	ck_assert(lt_config_load(cfgpath, env, &cfg, NULL) == LT_OK);
	struct lt_auth *a = NULL;
	ck_assert(lt_auth_new(cfg, &a, NULL) == LT_OK);
	struct stat sb;
	ck_assert_int_eq(stat(pwpath, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	f = fopen(pwpath, "r");
	ck_assert_ptr_nonnull(fgets(pw, sizeof pw, f));
	fclose(f);
	ck_assert_int_ge(strlen(pw), 20);
	char tok[1024];
	int64_t exp;
	ck_assert_int_eq(lt_auth_login(a, pw, strlen(pw), 0, tok, sizeof tok, &exp), LT_OK);
	lt_auth_free(a);
	/* The next start keeps the same password. */
	ck_assert(lt_auth_new(cfg, &a, NULL) == LT_OK);
	ck_assert_int_eq(lt_auth_login(a, pw, strlen(pw), 0, tok, sizeof tok, &exp), LT_OK);
	ck_assert_int_eq(lt_auth_login(a, "something-else-entirely", 23, 0, tok, sizeof tok, &exp), LT_EAUTH);
	lt_auth_free(a);
	lt_config_free(cfg);
	free(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("api_core");
	TCase *t = tcase_create("core");
	tcase_add_test(t, routes_ok);
	tcase_add_test(t, routes_refused);
	tcase_add_test(t, ratelimit_buckets);
	tcase_add_test(t, auth_keys_and_tokens);
	tcase_add_test(t, auth_generated_password);
	tcase_set_timeout(t, 60);
	suite_add_tcase(s, t);
	return lt_test_run_suite(s);
}
