/* SPDX-License-Identifier: MIT */
/*
 * bilibili: the constants and limits of Bilibili's live danmaku wire format
 * (../shared/brief/protocols/bilibili.md), and the few encoders that the
 * decoder's peers share: the emulator and tests/support/mkcapture build
 * packets with lt_bili_pack, and the WBI signer is exported so that its test
 * vector can be checked.
 *
 * A packet: a 16-byte big-endian header
 *   pack_len u32 (header + body) | header_len u16 (16) | ver u16 | op u32 | seq u32
 * then the body. ver 0/1: raw (JSON), 2: zlib, 3: brotli; a compressed body
 * is itself a concatenation of packets.
 */
#ifndef LT_BILIBILI_H
#define LT_BILIBILI_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define LT_BILI_HDR_LEN 16u

#define LT_BILI_VER_RAW 0
#define LT_BILI_VER_HB 1
#define LT_BILI_VER_ZLIB 2
#define LT_BILI_VER_BROTLI 3

#define LT_BILI_OP_HEARTBEAT 2
#define LT_BILI_OP_HEARTBEAT_REPLY 3
#define LT_BILI_OP_MESSAGE 5
#define LT_BILI_OP_AUTH 7
#define LT_BILI_OP_AUTH_REPLY 8

#define LT_BILI_INFLATE_MAX (16u << 20) /* decompressed bytes per packet, against bombs */
#define LT_BILI_DEPTH_MAX 3             /* nesting levels of compressed packets */
#define LT_BILI_HEARTBEAT_MS 30000
#define LT_BILI_HOSTS_MAX 8             /* host_list entries kept */
#define LT_BILI_WBI_TTL_MS (11LL * 3600 * 1000 + 59 * 60 * 1000 + 30 * 1000)
#define LT_BILI_TOKEN_EVERY 3           /* refetch the token every N failed attempts */

/* Append one packet (header + body) to out. */
void lt_bili_pack(struct lt_buf *out, uint16_t ver, uint32_t op, uint32_t seq, const void *body, size_t n);

/* The WBI mixin key: out gets the 32 chars picked from img_key + sub_key by
 * the mixin table, NUL-terminated. Returns LT_OK, or LT_EINVAL if either key
 * is not 32 characters. */
int lt_bili_wbi_mixin(const char *img_key, const char *sub_key, char out[33]);

/* Sign query ("k=v&k2=v2", values not yet encoded) for time wts (seconds):
 * append the sorted, encoded query with wts and w_rid to out, e.g.
 * "id=1&type=0&wts=…&w_rid=<md5 hex>". Returns LT_OK or out's error. */
int lt_bili_wbi_sign(struct lt_buf *out, const char *query, const char *mixin, int64_t wts);

#endif
