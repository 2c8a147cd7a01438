/* SPDX-License-Identifier: MIT */
/*
 * douyin_sign: the `signature` parameter of Douyin's push WebSocket URL
 * (douyin.md §1.3), behind a pluggable signer.
 *
 * The signed input is X-MS-STUB, the md5 hex of 13 "k=v" pairs taken from the
 * URL (lt_douyin_stub). The native signer (no JS engine) turns a stub into 16
 * characters: base64 in a custom alphabet of 12 bytes = flags, an RC4 key
 * byte k, and RC4([k]) over [counter, 0, 1, 14, D14, D15, S14, S15, r, xor],
 * D = md5(md5("")), S = md5(stub bytes). lt_douyin_sign_check is the
 * server's side of it, used by the emulator.
 *
 * A signer is a function and its state (struct lt_douyin_signer); the native
 * one is the default. Another (an external service, a JS engine) plugs in by
 * filling in fn/ud: the platform calls it once per connection attempt.
 * lt_douyin_sign_cmd is such a signer: a command named in the config
 * (douyin.signer) that gets the stub as its last argument and prints the
 * signature, for when Douyin changes the algorithm again.
 */
#ifndef LT_DOUYIN_SIGN_H
#define LT_DOUYIN_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LT_DY_SIG_MAX 128 /* bytes for a signature incl. NUL */

/* Fill out (NUL-terminated, at most LT_DY_SIG_MAX) with the signature of
 * stub_hex (32 lower-case hex digits). Returns LT_OK or an lt_err. */
typedef int (*lt_douyin_sign_fn)(void *ud, const char *stub_hex, char *out);

struct lt_douyin_signer {
	lt_douyin_sign_fn fn; /* NULL = native */
	void *ud;
	uint8_t counter;      /* native: per session, incremented per call */
	uint64_t rng;         /* native: xorshift state; seed it (non-zero) */
};

/* The X-MS-STUB for room_id and user_unique_id: 32 hex digits + NUL in
 * out. sdk_version is the URL's webcast_sdk_version. */
void lt_douyin_stub(const char *room_id, const char *uid, const char *sdk_version, char out[33]);

/* The native signature of stub_hex with explicit state (deterministic, for
 * tests against known vectors): 16 characters + NUL in out. Returns LT_OK or
 * LT_EINVAL when stub_hex is not 32 hex digits. */
int lt_douyin_sign_values(const char *stub_hex, uint8_t counter, bool flag, uint8_t payload_rnd,
                          uint8_t key, char out[17]);

/* Sign stub_hex with s (s->fn, or the native algorithm with s's counter and
 * random state). out holds LT_DY_SIG_MAX bytes. Returns LT_OK or an lt_err. */
int lt_douyin_sign(struct lt_douyin_signer *s, const char *stub_hex, char out[LT_DY_SIG_MAX]);

/* A signer that runs the shell command ud (a NUL-terminated string) with
 * stub_hex appended as its last argument, at most LT_DY_SIGNER_TIMEOUT_S
 * seconds, and takes the first line it prints as the signature. It blocks
 * the caller meanwhile (once per connection attempt). Returns LT_OK,
 * LT_EIO when the command fails or prints nothing usable. */
#define LT_DY_SIGNER_TIMEOUT_S 5
int lt_douyin_sign_cmd(void *ud, const char *stub_hex, char *out);

/* The server's check of a native signature: LT_OK when sig decodes to 12
 * bytes whose decrypted body carries md5(stub bytes)[14..15] and a correct
 * xor byte, LT_EAUTH otherwise. */
int lt_douyin_sign_check(const char *sig, const char *stub_hex);

#endif
