/* SPDX-License-Identifier: MIT */
/*
 * auth: API keys, the admin password and signed login tokens.
 *
 * API keys come from api.keys (read and write) and api.read_keys (read
 * only). Only their SHA-256 digests are kept in memory, and a presented key
 * is compared with every digest in constant time (sodium_memcmp), so timing
 * says nothing about which key nearly matched. The admin password
 * (admin.password, LIVETAP_ADMIN_PASSWORD, at least 12 characters; when
 * unset, a random one is generated, printed once to stderr and kept in
 * state_dir/admin-password with mode 0600 for later starts) is kept in
 * memory only as an Argon2id hash
 * (crypto_pwhash_str). A successful login returns an HS256 JWT
 * {"sub":"admin","iat":…,"exp":…} signed with api.jwt_secret, or with a
 * random secret kept in state_dir/api-jwt.key (mode 0600).
 */
#ifndef LT_AUTH_H
#define LT_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"

struct lt_auth;

/* Build from the settings. Returns LT_OK with *out owned by the caller
 * (lt_auth_free), or LT_ECONFIG (short password, unreadable secret file)
 * with e filled. May print a generated password to stderr, once. */
int lt_auth_new(const struct lt_config *cfg, struct lt_auth **out, struct lt_error *e);
void lt_auth_free(struct lt_auth *a);

/* The role (enum lt_role in api.h) of a presented credential: an API key or
 * a JWT (cred[0..n), not NUL-terminated). LT_ROLE_NONE when it matches
 * nothing or the token is expired or forged. actor (cap bytes) names who it
 * was: "admin" or "key:" and the digest's first 8 hex digits. */
int lt_auth_check(const struct lt_auth *a, const char *cred, size_t n, int64_t now_ms, char *actor,
		  size_t cap);

/* Verify the admin password (slow by design: Argon2id; call it from a
 * worker, never the event loop; calls are serialized). On success returns
 * LT_OK, a token in out (cap bytes) and its expiry (s since the epoch) in
 * *exp; LT_EAUTH otherwise. */
int lt_auth_login(struct lt_auth *a, const char *password, size_t n, int64_t now_ms, char *out, size_t cap,
		  int64_t *exp);

/* A token for the admin valid for ttl_s from now_ms (tests, login). */
int lt_auth_token(const struct lt_auth *a, int64_t now_ms, int64_t ttl_s, char *out, size_t cap);

#endif
