/* SPDX-License-Identifier: MIT */
/*
 * auth: hashed API keys compared in constant time, the Argon2id admin
 * password and HS256 tokens (see auth.h). libsodium does the cryptography:
 * crypto_hash_sha256, crypto_pwhash_str (Argon2id), crypto_auth_hmacsha256,
 * sodium_memcmp and the URL-safe base64 codec.
 */
#include "api/auth.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"

#define AUTH_MAX_KEYS	64
#define AUTH_SECRET_LEN 32
#define AUTH_PW_MIN	12
#define AUTH_TOKEN_MAX	1024

struct auth_key {
	unsigned char digest[crypto_hash_sha256_BYTES];
	int role;
};

struct lt_auth {
	struct auth_key keys[AUTH_MAX_KEYS];
	int nkeys;
	char pwhash[crypto_pwhash_STRBYTES];
	unsigned char secret[crypto_auth_hmacsha256_KEYBYTES];
	int64_t ttl_s;
	pthread_mutex_t login_mu; /* one Argon2id verification at a time (64 MiB each) */
};

static int add_keys(struct lt_auth *a, const struct lt_config *cfg, const char *setting, int role,
		    struct lt_error *e)
{
	int n = 0;
	lt_config_list(cfg, setting, 0, &n);
	for (int i = 0; i < n; i++) {
		const char *k = lt_config_list(cfg, setting, i, NULL);
		if (!k || !*k)
			continue;
		if (strlen(k) < 16)
			return lt_error_set(e, LT_ECONFIG, "%s: every API key needs 16 characters at least",
					    setting);
		if (a->nkeys >= AUTH_MAX_KEYS)
			return lt_error_set(e, LT_ECONFIG, "%s: at most %d keys", setting, AUTH_MAX_KEYS);
		crypto_hash_sha256(a->keys[a->nkeys].digest, (const unsigned char *)k, strlen(k));
		a->keys[a->nkeys].role = role;
		a->nkeys++;
	}
	return LT_OK;
}

/* The token secret: api.jwt_secret, else state_dir/api-jwt.key (made with
 * mode 0600 on first start). */
static int load_secret(struct lt_auth *a, const struct lt_config *cfg, struct lt_error *e)
{
	const char *s = lt_config_str(cfg, "api.jwt_secret");
	if (s && *s) {
		if (strlen(s) < 16)
			return lt_error_set(e, LT_ECONFIG, "api.jwt_secret: 16 characters at least");
		crypto_hash_sha256(a->secret, (const unsigned char *)s, strlen(s));
		return LT_OK;
	}
	const char *dir = lt_config_str(cfg, "state_dir");
	char path[4096];
	snprintf(path, sizeof path, "%s/api-jwt.key", dir && *dir ? dir : ".");
	if (dir && *dir)
		(void)mkdir(dir, 0700);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t got = read(fd, a->secret, sizeof a->secret);
		close(fd);
		if (got != (ssize_t)sizeof a->secret)
			return lt_error_set(e, LT_ECONFIG, "%s: expected %zu bytes", path, sizeof a->secret);
		return LT_OK;
	}
	randombytes_buf(a->secret, sizeof a->secret);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return lt_error_set(e, LT_ECONFIG, "%s: cannot create: %s", path, strerror(errno));
	ssize_t put = write(fd, a->secret, sizeof a->secret);
	close(fd);
	if (put != (ssize_t)sizeof a->secret)
		return lt_error_set(e, LT_ECONFIG, "%s: short write", path);
	return LT_OK;
}

/* The admin password when admin.password is unset: the one kept in
 * state_dir/admin-password (mode 0600) from an earlier start, else a new
 * random one, kept there and printed once to stderr. */
static int generated_password(const struct lt_config *cfg, char *out, size_t cap, struct lt_error *e)
{
	const char *dir = lt_config_str(cfg, "state_dir");
	char path[4096];
	snprintf(path, sizeof path, "%s/admin-password", dir && *dir ? dir : ".");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t got = read(fd, out, cap - 1);
		close(fd);
		if (got < AUTH_PW_MIN)
			return lt_error_set(e, LT_ECONFIG, "%s: too short; delete it for a new password",
					    path);
		out[got] = '\0';
		out[strcspn(out, "\r\n")] = '\0';
		return LT_OK;
	}
	static const char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
	size_t n = cap - 1 < 24 ? cap - 1 : 24;
	for (size_t i = 0; i < n; i++)
		out[i] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
	out[n] = '\0';
	if (dir && *dir)
		(void)mkdir(dir, 0700);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, out, n) != (ssize_t)n) {
		if (fd >= 0)
			close(fd);
		return lt_error_set(e, LT_ECONFIG, "%s: cannot keep the generated admin password: %s", path,
				    strerror(errno));
	}
	close(fd);
	fprintf(
	    stderr,
	    "livetap-api: LIVETAP_ADMIN_PASSWORD is not set; generated admin password (shown once, kept in "
	    "%s): %s\n",
	    path, out);
	return LT_OK;
}

static int hash_password(struct lt_auth *a, const struct lt_config *cfg, struct lt_error *e)
{
	const char *pw = lt_config_str(cfg, "admin.password");
	char gen[128];
	if (!pw || !*pw) {
		int rc = generated_password(cfg, gen, sizeof gen, e);
		if (rc != LT_OK)
			return rc;
		pw = gen;
	} else if (strlen(pw) < AUTH_PW_MIN) {
		return lt_error_set(e, LT_ECONFIG, "admin.password: %d characters at least", AUTH_PW_MIN);
	}
	int rc = crypto_pwhash_str(a->pwhash, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
				   crypto_pwhash_MEMLIMIT_INTERACTIVE);
	sodium_memzero(gen, sizeof gen);
	if (rc != 0)
		return lt_error_set(e, LT_ENOMEM, "admin.password: cannot hash (out of memory)");
	return LT_OK;
}

/* See auth.h. */
int lt_auth_new(const struct lt_config *cfg, struct lt_auth **out, struct lt_error *e)
{
	if (sodium_init() < 0)
		return lt_error_set(e, LT_EINTERNAL, "libsodium did not initialize");
	struct lt_auth *a = calloc(1, sizeof *a);
	if (!a)
		return lt_error_set(e, LT_ENOMEM, "out of memory");
	int rc = add_keys(a, cfg, "api.keys", LT_ROLE_WRITE, e);
	if (rc == LT_OK)
		rc = add_keys(a, cfg, "api.read_keys", LT_ROLE_READ, e);
	if (rc == LT_OK)
		rc = load_secret(a, cfg, e);
	if (rc == LT_OK)
		rc = hash_password(a, cfg, e);
	if (rc != LT_OK) {
		free(a);
		return rc;
	}
	a->ttl_s = lt_config_int(cfg, "api.token_ttl_s");
	pthread_mutex_init(&a->login_mu, NULL);
	*out = a;
	return LT_OK;
}

void lt_auth_free(struct lt_auth *a)
{
	if (!a)
		return;
	pthread_mutex_destroy(&a->login_mu);
	sodium_memzero(a, sizeof *a);
	free(a);
}

static void b64url(const unsigned char *p, size_t n, char *out, size_t cap)
{
	sodium_bin2base64(out, cap, p, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static const char jwt_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* See auth.h. */
int lt_auth_token(const struct lt_auth *a, int64_t now_ms, int64_t ttl_s, char *out, size_t cap)
{
	char payload[128], h64[64], p64[192];
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	char m64[64];
	int64_t iat = now_ms / 1000;
	snprintf(payload, sizeof payload, "{\"sub\":\"admin\",\"iat\":%lld,\"exp\":%lld}", (long long)iat,
		 (long long)(iat + ttl_s));
	b64url((const unsigned char *)jwt_header, strlen(jwt_header), h64, sizeof h64);
	b64url((const unsigned char *)payload, strlen(payload), p64, sizeof p64);
	char signing[300];
	int n = snprintf(signing, sizeof signing, "%s.%s", h64, p64);
	if (n < 0 || (size_t)n >= sizeof signing)
		return LT_EINTERNAL;
	crypto_auth_hmacsha256(mac, (const unsigned char *)signing, (unsigned long long)n, a->secret);
	b64url(mac, sizeof mac, m64, sizeof m64);
	n = snprintf(out, cap, "%s.%s", signing, m64);
	return n > 0 && (size_t)n < cap ? LT_OK : LT_ETOOBIG;
}

/* A JWT we issued: the signature matches (constant time), the header is
 * ours, and it has not expired. */
static int check_jwt(const struct lt_auth *a, const char *t, size_t n, int64_t now_ms)
{
	if (n > AUTH_TOKEN_MAX)
		return LT_ROLE_NONE;
	const char *dot1 = memchr(t, '.', n);
	if (!dot1)
		return LT_ROLE_NONE;
	const char *dot2 = memchr(dot1 + 1, '.', n - (size_t)(dot1 + 1 - t));
	if (!dot2)
		return LT_ROLE_NONE;
	unsigned char mac[crypto_auth_hmacsha256_BYTES], got[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256(mac, (const unsigned char *)t, (unsigned long long)(dot2 - t), a->secret);
	size_t glen = 0;
	if (sodium_base642bin(got, sizeof got, dot2 + 1, n - (size_t)(dot2 + 1 - t), NULL, &glen, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    glen != sizeof got)
		return LT_ROLE_NONE;
	if (sodium_memcmp(mac, got, sizeof mac) != 0)
		return LT_ROLE_NONE;
	char h64[64];
	b64url((const unsigned char *)jwt_header, strlen(jwt_header), h64, sizeof h64);
	if ((size_t)(dot1 - t) != strlen(h64) || memcmp(t, h64, strlen(h64)))
		return LT_ROLE_NONE;
	char payload[512];
	size_t plen = 0;
	if (sodium_base642bin((unsigned char *)payload, sizeof payload - 1, dot1 + 1,
			      (size_t)(dot2 - dot1 - 1), NULL, &plen, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return LT_ROLE_NONE;
	payload[plen] = '\0';
	cJSON *j = cJSON_Parse(payload);
	int role = LT_ROLE_NONE;
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(j, "exp");
	const cJSON *sub = cJSON_GetObjectItemCaseSensitive(j, "sub");
	if (cJSON_IsNumber(exp) && cJSON_IsString(sub) && !strcmp(sub->valuestring, "admin") &&
	    exp->valuedouble * 1000.0 > (double)now_ms)
		role = LT_ROLE_ADMIN;
	cJSON_Delete(j);
	return role;
}

/* See auth.h. */
int lt_auth_check(const struct lt_auth *a, const char *cred, size_t n, int64_t now_ms, char *actor,
		  size_t cap)
{
	if (!cred || n == 0 || n > AUTH_TOKEN_MAX)
		return LT_ROLE_NONE;
	if (memchr(cred, '.', n)) {
		int role = check_jwt(a, cred, n, now_ms);
		if (role != LT_ROLE_NONE)
			snprintf(actor, cap, "admin");
		return role;
	}
	unsigned char d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(d, (const unsigned char *)cred, n);
	int role = LT_ROLE_NONE;
	/* Look at every key, always: the time taken does not depend on which
	 * one matched. */
	for (int i = 0; i < a->nkeys; i++) {
		int eq = sodium_memcmp(d, a->keys[i].digest, sizeof d) == 0;
		role |= eq ? a->keys[i].role : 0;
	}
	if (role == (LT_ROLE_READ | LT_ROLE_WRITE))
		role = LT_ROLE_WRITE;
	if (role != LT_ROLE_NONE)
		snprintf(actor, cap, "key:%02x%02x%02x%02x", d[0], d[1], d[2], d[3]);
	return role;
}

/* See auth.h. */
int lt_auth_login(struct lt_auth *a, const char *password, size_t n, int64_t now_ms, char *out, size_t cap,
		  int64_t *exp)
{
	pthread_mutex_lock(&a->login_mu);
	int ok = crypto_pwhash_str_verify(a->pwhash, password, n) == 0;
	pthread_mutex_unlock(&a->login_mu);
	if (!ok)
		return LT_EAUTH;
	int rc = lt_auth_token(a, now_ms, a->ttl_s, out, cap);
	if (rc == LT_OK)
		*exp = now_ms / 1000 + a->ttl_s;
	return rc;
}
