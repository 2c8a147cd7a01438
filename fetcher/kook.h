/* SPDX-License-Identifier: MIT */
/*
 * kook: the constants and limits of the KOOK bot WebSocket gateway
 * (../shared/brief/protocols/kook.md §1), shared by the decoder
 * (platform_kook.c), the emulator module (tests/emu/emu_kook.c) and the tests.
 *
 * A frame is one JSON object {"s":SIGNAL,"d":{…},"sn":N}; with compress=1
 * every server frame is a binary frame holding one complete zlib stream
 * (zlib header, windowBits 15) of that JSON. Client frames are plain text.
 *
 * The connection state machine's timings are the ones the docs prescribe:
 * HELLO within 6 s of connecting, a PING every 30 s ± 5 s carrying the largest
 * processed sn, a PONG within 6 s, after a missed PONG two more PINGs (2 s,
 * then 4 s later), then a reconnect with resume (twice), then a fresh
 * connect. s=5 drops the session (sn, session_id, reorder buffer).
 */
#ifndef LT_KOOK_H
#define LT_KOOK_H

#include <stddef.h>
#include <stdint.h>

/* Signals (the "s" field). */
#define LT_KOOK_S_EVENT 0       /* S->C: d = event, sn = sequence number */
#define LT_KOOK_S_HELLO 1       /* S->C: {"code":0,"session_id":…} or {"code":4010x} */
#define LT_KOOK_S_PING 2        /* C->S: {"s":2,"sn":N} */
#define LT_KOOK_S_PONG 3        /* S->C */
#define LT_KOOK_S_RESUME 4      /* C->S: {"s":4,"sn":N} */
#define LT_KOOK_S_RECONNECT 5   /* S->C: {"code":4010[678],"err":…}: start afresh */
#define LT_KOOK_S_RESUME_ACK 6  /* S->C: {"session_id":…} after the replay */

/* HELLO codes. */
#define LT_KOOK_HELLO_MISSING 40100  /* missing parameter */
#define LT_KOOK_HELLO_BAD_TOKEN 40101 /* invalid token: a configuration error */
#define LT_KOOK_HELLO_VERIFY 40102    /* token verification failed: configuration */
#define LT_KOOK_HELLO_EXPIRED 40103   /* token expired: fetch the gateway again */

/* RECONNECT codes. */
#define LT_KOOK_RC_RESUME_MISSING 40106
#define LT_KOOK_RC_SESSION_EXPIRED 40107
#define LT_KOOK_RC_BAD_SN 40108

/* Event types (d.type). */
#define LT_KOOK_T_TEXT 1
#define LT_KOOK_T_IMAGE 2
#define LT_KOOK_T_VIDEO 3
#define LT_KOOK_T_FILE 4
#define LT_KOOK_T_AUDIO 8
#define LT_KOOK_T_KMARKDOWN 9
#define LT_KOOK_T_CARD 10
#define LT_KOOK_T_ITEM 12
#define LT_KOOK_T_SYSTEM 255

/* Timing (ms). */
#define LT_KOOK_HELLO_TIMEOUT_MS 6000
#define LT_KOOK_PING_MS 30000
#define LT_KOOK_PING_JITTER_MS 5000
#define LT_KOOK_PONG_TIMEOUT_MS 6000
#define LT_KOOK_RETRY_PING1_MS 2000 /* after a missed PONG: one more PING after 2 s */
#define LT_KOOK_RETRY_PING2_MS 4000 /* ... and another 4 s later */
#define LT_KOOK_RESUME_TRIES 2      /* reconnects with resume before a fresh connect */

/* Limits. */
#define LT_KOOK_INFLATE_MAX (4u << 20)   /* inflated bytes per frame, against bombs */
#define LT_KOOK_REORDER_MAX 256          /* events held while an sn is missing */
#define LT_KOOK_REORDER_BYTES (8u << 20) /* and their bytes at most */
#define LT_KOOK_SESSION_ID_MAX 64        /* longer session ids are refused */
#define LT_KOOK_ROOM_MAX 32              /* channel ids are decimal, ~16 digits */
#define LT_KOOK_STATE_MAX 128            /* the persisted state line */

/*
 * The persisted resume state is one line "kook1 SESSION_ID SN\n" (or
 * "kook1 - 0\n" without a session). lt_kook_state_parse reads one: LT_OK
 * with session (NUL-terminated, at most LT_KOOK_SESSION_ID_MAX bytes, "" for
 * none) and *sn, or LT_EPROTO for anything else.
 */
int lt_kook_state_parse(const char *s, size_t n, char session[LT_KOOK_SESSION_ID_MAX + 1], int64_t *sn);

#endif
