/* SPDX-License-Identifier: MIT */
/*
 * sanitize: the processor's check of one decoded record before it reaches
 * the plugins and apply.lua.
 *
 * The wire decoder only guarantees a record's shape (lengths within msg.h's
 * limits, known platform and type bytes). A record that is corrupted but
 * still decodable can carry any 64-bit ts, count or value, an empty room or
 * control bytes in an id; apply.lua turns numbers into Redis arguments, so
 * such a record made the script fail and took its batch-mates with it.
 * lt_sanitize_msg guarantees every value the processor and the script rely
 * on, or says why the record must be dropped:
 *
 *   rejected  platform unknown; ts outside [LT_SANITIZE_TS_MIN, now + 1 day];
 *             count or value outside [0, LT_SANITIZE_AMOUNT_MAX] (so that the
 *             sum of a script call's amounts stays an exact integer in a Lua
 *             double, and a counter cannot overflow); room empty or holding
 *             anything but printable ASCII without braces (it names the
 *             {ROOM} hash tag of every key); msg_id or a counted user_id with
 *             control bytes or invalid UTF-8 (they name markers and keys).
 *   repaired  invalid UTF-8 in user_name or content is replaced by U+FFFD
 *             (LT_MSGF_REPAIRED); what the repair makes longer than its
 *             msg.h limit is cut on a UTF-8 boundary (LT_MSGF_TRUNCATED).
 *             Either is flagged in extra as "repaired" / "truncated": true.
 *
 * An over-long field never gets here: the wire decoder refuses it.
 */
#ifndef LT_SANITIZE_H
#define LT_SANITIZE_H

#include <stdint.h>

#include "common/err.h"
#include "common/mem.h"
#include "common/msg.h"

#define LT_SANITIZE_TS_MIN	946684800000LL	 /* 2000-01-01T00:00:00Z */
#define LT_SANITIZE_TS_AHEAD_MS (24 * 3600000LL) /* clock skew tolerated */
#define LT_SANITIZE_AMOUNT_MAX	1000000000000LL	 /* 10^12: count and value */

/* What lt_sanitize_msg changed (bits of *changed). */
#define LT_SANITIZE_REPAIRED  0x1u
#define LT_SANITIZE_TRUNCATED 0x2u

/*
 * Check m against the rules above at wall clock now_ms. Returns LT_OK when
 * the record may be used (possibly repaired: *changed says how; repaired
 * strings and the flagged extra live in arena, the rest still points where
 * it did), LT_EINVAL when it must be dropped (*why is a static sentence, m is
 * unchanged), or LT_ENOMEM (arena full; m is unchanged).
 */
int lt_sanitize_msg(struct lt_msg *m, int64_t now_ms, struct lt_arena *arena, unsigned *changed,
		    const char **why);

#endif
