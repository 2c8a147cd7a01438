/* SPDX-License-Identifier: MIT */
/*
 * json: the normalized JSON form of a LiveMessage, exactly as contract.md
 * shows it:
 *
 *   {"v":1,"platform":"bilibili","room":"21452505","type":"chat","msg_id":"…",
 *    "user":{"id":"123","name":"…"},"content":"…","ts":1732212345123,"extra":{}}
 *
 * Strings are escaped per RFC 8259 (", \, control characters as \uXXXX);
 * invalid UTF-8 is replaced by U+FFFD, never passed on. extra is emitted as
 * the JSON object text it holds ({} when empty); anonymous users have "id":"".
 * Also the reverse (used by the emulator's --script and by tests), and UTF-8
 * helpers shared by every producer.
 */
#ifndef LT_JSON_H
#define LT_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/mem.h"
#include "common/msg.h"

/* Append m's JSON form to out (no newline). Returns out's sticky error. */
int lt_json_msg(struct lt_buf *out, const struct lt_msg *m);

/* Append s[0..n) as a quoted, escaped JSON string, repairing invalid UTF-8. */
void lt_json_str(struct lt_buf *out, const char *s, size_t n);

/* Parse one normalized-JSON line into *m; strings are copied into arena.
 * Returns LT_OK, or LT_EINVAL with e (if not NULL) naming the problem. */
struct lt_error;
int lt_json_msg_parse(const char *s, size_t n, struct lt_arena *arena, struct lt_msg *m, struct lt_error *e);

/* True if s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool lt_utf8_valid(const char *s, size_t n);

/* Copy s[0..n) into out with every invalid sequence replaced by U+FFFD.
 * Returns the number of replacements. */
size_t lt_utf8_repair(struct lt_buf *out, const char *s, size_t n);

#endif
