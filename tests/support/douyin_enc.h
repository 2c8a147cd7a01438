/* SPDX-License-Identifier: MIT */
/*
 * douyin_enc: an encoder of Douyin push frames for the tests, the capture
 * generator (mkcapture_douyin) and the emulator (tests/emu/emu_douyin.c).
 *
 * Normalized messages become Douyin Messages (chat -> WebcastChatMessage,
 * gift -> WebcastGiftMessage with real combos, like, enter -> Member,
 * follow/share -> Social, room_stats -> RoomUserSeq, live_end -> Control
 * action 3); messages are collected into one Response and dyenc_frame packs
 * it into a PushFrame (gzip'd, optionally need_ack) like the real server's.
 *
 * Gift combos: consecutive gifts of the same user and gift name form one
 * combo (one group_id, repeat_count rising by each gift's count); when the
 * combo breaks, a closing GiftMessage with repeat_end = 1 repeating the total
 * is added first (a new msg_id, not one of the normalized messages). The
 * decoder must count only the deltas.
 */
#ifndef LT_DOUYIN_ENC_H
#define LT_DOUYIN_ENC_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/mem.h"
#include "common/msg.h"

struct dyenc {
	struct lt_arena arena; /* pending messages and their payloads */
	void **items;          /* LtDy__Message *, pending */
	size_t n, cap;
	uint64_t closer_id;    /* ids of the combo closers */
	uint64_t group_seq;
	bool combo_open;
	uint64_t combo_user, combo_gift, combo_group, combo_repeat;
	int64_t combo_diamond;
	char combo_name[96];
	uint64_t room_id;
};

struct dyenc_frame_opts {
	bool gzip;                /* compress the Response (header compress_type=gzip) */
	bool need_ack;
	uint64_t seq_id, log_id;
	int64_t now_ms;
	const char *internal_ext; /* NULL = a realistic one */
};

void dyenc_init(struct dyenc *d, uint64_t room_id);
void dyenc_free(struct dyenc *d);
/* A numeric id for s: its value if it is all digits (and fits), else a 62-bit
 * FNV-1a hash of it (never 0). */
uint64_t dyenc_id(struct lt_str s);
/* Add m (msg_id given as a number) to the pending Response. Returns LT_OK,
 * LT_ENOTFOUND for a type Douyin has no message for (nothing added). */
int dyenc_add(struct dyenc *d, const struct lt_msg *m, uint64_t msg_id);
/* Add a Message with a given method and payload bytes (copied). */
int dyenc_add_raw(struct dyenc *d, const char *method, const void *p, size_t n, uint64_t msg_id);
/* Close an open gift combo (adds its repeat_end message). */
void dyenc_close_combo(struct dyenc *d, int64_t ts);
/* Messages pending. */
static inline size_t dyenc_pending(const struct dyenc *d) { return d->n; }
/* Pack the pending messages as one data PushFrame appended to out, and
 * forget them. Returns LT_OK or LT_ENOMEM. */
int dyenc_frame(struct dyenc *d, struct lt_buf *out, const struct dyenc_frame_opts *o);
/* gzip p[0..n) appended to out. */
int dyenc_gzip(struct lt_buf *out, const void *p, size_t n);

#endif
