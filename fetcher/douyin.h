/* SPDX-License-Identifier: MIT */
/*
 * douyin: the constants and limits of Douyin's webcast push protocol
 * (../shared/brief/protocols/douyin.md), shared by the decoder
 * (platform_douyin.c), the signer (douyin_sign.c), the emulator module
 * (tests/emu/emu_douyin.c) and the tests. Every frame on the push WebSocket
 * is a binary PushFrame protobuf (douyin.proto); a data frame's payload is a
 * gzip'd Response holding Messages, each a method name and the protobuf of
 * that method's message.
 */
#ifndef LT_DOUYIN_H
#define LT_DOUYIN_H

#define LT_DY_WS_PATH "/webcast/im/push/v2/"
#define LT_DY_AID "6383"
#define LT_DY_VERSION_CODE "180800"
#define LT_DY_SDK_VERSION "1.0.14-beta.0"

#define LT_DY_PT_MSG "msg"     /* PushFrame.payload_type of a data frame */
#define LT_DY_PT_HB "hb"       /* heartbeat, both ways */
#define LT_DY_PT_ACK "ack"     /* our answer to Response.need_ack */
#define LT_DY_PT_CLOSE "close" /* the server ends the session */

/* The heartbeat frame: PushFrame{payload_type:"hb"} and nothing else. */
#define LT_DY_HEARTBEAT_FRAME "\x3a\x02\x68\x62"
#define LT_DY_HEARTBEAT_MS 10000

#define LT_DY_FRAME_MAX (8u << 20)    /* a PushFrame we accept at all */
#define LT_DY_INFLATE_MAX (8u << 20)  /* gunzip'd Response bytes, against bombs */
#define LT_DY_PB_ARENA_MAX (32u << 20) /* protobuf-c allocations per frame */
#define LT_DY_HTTP_BODY_MAX (4u << 20)

#define LT_DY_DEDUP_GEN 4096 /* msg_ids remembered per generation (two generations) */
#define LT_DY_COMBO_SLOTS 1024 /* (user, gift, group) -> last repeat_count */
#define LT_DY_GIFT_COUNT_MAX 1000000000ULL /* items per gift message at most */

/* Control.action values. */
#define LT_DY_CONTROL_LIVE_END 3
/* GiftStruct.type of a streakable (combo) gift. */
#define LT_DY_GIFT_TYPE_COMBO 1
/* Social.action: 1 = follow, anything else a share. */
#define LT_DY_SOCIAL_FOLLOW 1
/* user.id of masked (anonymous) users. */
#define LT_DY_MASKED_UID 111111ULL

#endif
