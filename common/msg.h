/* SPDX-License-Identifier: MIT */
/*
 * msg: the LiveMessage, livetap's one normalized record.
 *
 * Every platform decoder produces these; the wire module carries them over NNG;
 * the json module renders the contract's JSON form; the processor and persister
 * consume them. A LiveMessage does not own its strings: each lt_str is a view
 * (pointer + length, not necessarily NUL-terminated) into a frame, a batch or
 * an arena that outlives the record. Strings are UTF-8; producers repair
 * invalid UTF-8 before they hand a record on (lt_json does so on output too).
 *
 * Field limits (bytes) are part of the wire format; a producer cuts an
 * over-long field at its limit on a UTF-8 boundary and sets LT_MSGF_TRUNCATED
 * (see lt_msg_clamp).
 */
#ifndef LT_MSG_H
#define LT_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lt_platform {
	LT_PLATFORM_UNKNOWN = 0,
	LT_PLATFORM_BILIBILI = 1,
	LT_PLATFORM_DOUYIN = 2,
	LT_PLATFORM_KOOK = 3,
	LT_PLATFORM_COUNT
};

enum lt_msg_type {
	LT_MSG_CHAT = 0,
	LT_MSG_GIFT,
	LT_MSG_LIKE,
	LT_MSG_ENTER,
	LT_MSG_FOLLOW,
	LT_MSG_SHARE,
	LT_MSG_SUPERCHAT,
	LT_MSG_GUARD,
	LT_MSG_ROOM_STATS,
	LT_MSG_LIVE_START,
	LT_MSG_LIVE_END,
	LT_MSG_OTHER,
	LT_MSG_TYPE_COUNT
};

/* Flags. */
#define LT_MSGF_ANONYMOUS 0x01u /* masked user: no user id, not counted per user */
#define LT_MSGF_TRUNCATED 0x02u /* at least one field was cut at its limit */
#define LT_MSGF_REPAIRED  0x04u /* invalid UTF-8 was replaced */

/* Limits in bytes, enforced by lt_msg_clamp and by the wire decoder. */
#define LT_MSG_ROOM_MAX      64
#define LT_MSG_ID_MAX        128
#define LT_MSG_USER_ID_MAX   64
#define LT_MSG_USER_NAME_MAX 128
#define LT_MSG_CONTENT_MAX   4096
#define LT_MSG_EXTRA_MAX     8192

struct lt_str {
	const char *p; /* not owned; may be NULL when len == 0 */
	uint32_t len;
};

#define LT_STR(s) ((struct lt_str){(s), (uint32_t)sizeof(s) - 1})
#define LT_STR_NULL ((struct lt_str){NULL, 0})

/* lt_platform_name and lt_msg_type_name with their lengths; static strings. */
struct lt_str lt_platform_name_str(int platform);
struct lt_str lt_msg_type_name_str(int type);

struct lt_msg {
	uint8_t platform;  /* enum lt_platform */
	uint8_t type;      /* enum lt_msg_type */
	uint8_t flags;     /* LT_MSGF_* */
	/* Set by a producer that built extra itself in the encoder's normalized
	 * flat form (keys and strings needing no escape, integers; see
	 * lt_json_msg): the encoder copies it without checking it again. Not
	 * carried on the wire; false (the zeroed default) means "check it". */
	bool extra_normal;
	int64_t ts;        /* ms since the epoch, UTC */
	int64_t count;     /* gift/guard: items; like: likes; room_stats: the number */
	int64_t value;     /* gift/superchat/guard: total value in the smallest unit */
	struct lt_str room;      /* platform room id, e.g. "21452505" */
	struct lt_str msg_id;    /* platform id, or a stable hash (lt_msg_synth_id) */
	struct lt_str user_id;   /* empty for anonymous users */
	struct lt_str user_name;
	struct lt_str content;   /* chat text, superchat text, or a short description */
	struct lt_str extra;     /* a JSON object text; empty means {} */
};

/* "bilibili", "douyin", "kook"; "unknown" otherwise. A static string. */
const char *lt_platform_name(int platform);
/* Parse a platform name; returns LT_PLATFORM_UNKNOWN if it is not one. */
int lt_platform_parse(const char *name, size_t len);
/* "chat", "gift", …, "other"; "other" for out-of-range values. */
const char *lt_msg_type_name(int type);
/* Parse a type name; returns -1 if it is not one. */
int lt_msg_type_parse(const char *name, size_t len);

static inline struct lt_str lt_str_c(const char *s)
{
	struct lt_str r = {s, 0};
	if (s)
		while (s[r.len])
			r.len++;
	return r;
}
bool lt_str_eq(struct lt_str a, struct lt_str b);
bool lt_str_eqc(struct lt_str a, const char *c);

/* Cut every field of m that is over its limit at the last UTF-8 boundary
 * within the limit and set LT_MSGF_TRUNCATED. Returns true if anything was cut.
 * (An over-long extra is replaced by "{\"truncated\":true}", since a cut JSON
 * object would not parse.) */
bool lt_msg_clamp(struct lt_msg *m);

/* A stable 64-bit FNV-1a based id for messages that have no platform id: hash
 * of platform, room, user id, ts and content, written as 16 hex digits plus
 * NUL into out (17 bytes). */
void lt_msg_synth_id(const struct lt_msg *m, char out[17]);

#endif
