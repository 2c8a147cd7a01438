/* SPDX-License-Identifier: MIT */
/*
 * keywords: keyword rules from PostgreSQL (the persister owns the table):
 *
 *   keyword_rules(id, room text null, kind text ('block'|'alert'),
 *                 pattern text, enabled bool)
 *
 * room NULL applies to every room; otherwise it names one room, either as
 * "platform:room_id" or as the bare room id. Patterns match as substrings,
 * Latin case-insensitively. A block rule keeps every hot word containing the
 * pattern out of the hot words; an alert rule PUBLISHes, once per new
 * message, {"v":1,"room":…,"rule":id,"pattern":…,"msg_id":…,"message":{…}}
 * on live:{ROOM}:alerts.
 *
 * A background thread loads the enabled rules every keywords_refresh_ms. If
 * PostgreSQL is unreachable the last rules stay in force and the load is
 * retried (connects time out after 3 s, so shutdown is never held up long);
 * if the table does not exist yet, there are no rules.
 */
#ifndef LT_KEYWORDS_H
#define LT_KEYWORDS_H

#include <stdint.h>

/* How many successful loads (any processor in this process) so far; tests
 * wait on it. */
uint64_t lt_keywords_loads(void);

#endif
