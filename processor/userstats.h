/* SPDX-License-Identifier: MIT */
/*
 * userstats: the per-user statistics plugin (lt_plugin_userstats, declared in
 * plugin.h). For every message of a known, non-anonymous user it keeps
 * live:{ROOM}:user:UID = {name, messages (chat + super chat), gifts
 * (gift and guard items), gift_value (gifts, guards and super chats, in the
 * platform's smallest unit), likes, first_seen, last_seen (ms)} and the
 * ranking live:{ROOM}:user_stats (UID -> messages, set from the hash's new
 * counter in one ZADD per batch: lt_ops_zmirror), all with a 30-minute
 * TTL refreshed by activity. Anonymous users (LT_MSGF_ANONYMOUS or an empty
 * user id) are not counted per user.
 */
#ifndef LT_USERSTATS_H
#define LT_USERSTATS_H

#include "processor/plugin.h"

#define LT_USERSTATS_TTL_S 1800

#endif
