/* SPDX-License-Identifier: MIT */
/*
 * md5: MD5 (RFC 1321) of a buffer, for the platforms' request signatures
 * (bilibili's WBI w_rid, douyin's X-MS-STUB and signature). Not for security:
 * the platforms chose it. Written out here rather than taken from OpenSSL
 * because the first EVP call initialises OpenSSL 3 (configuration, providers,
 * algorithm tables), which costs a fetcher on a plain ws:// endpoint about
 * 2 MB of memory for one digest per connection.
 */
#ifndef LT_MD5_H
#define LT_MD5_H

#include <stddef.h>
#include <stdint.h>

/* out = MD5(p[0..n)). */
void lt_md5(const void *p, size_t n, uint8_t out[16]);

/* out = the MD5 of p[0..n) in lower-case hex, NUL-terminated. */
void lt_md5_hex(const void *p, size_t n, char out[33]);

#endif
