/* SPDX-License-Identifier: MIT */
/*
 * ratelimit: token buckets per client address and per API key.
 *
 * Each bucket holds up to burst tokens and refills at rate per second; a
 * request takes one. The table has a fixed number of slots (bounded memory
 * whatever the number of clients): a new client takes a free slot in its
 * probe window or evicts the one idle longest there. Used from the lws
 * thread only (no locking). Time is passed in, so tests drive it.
 */
#ifndef LT_RATELIMIT_H
#define LT_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct lt_rl;

/* rate <= 0 turns limiting off (every take succeeds). NULL on no memory. */
struct lt_rl *lt_rl_new(double rate, double burst);
void lt_rl_free(struct lt_rl *rl);

/* Take a token from key's bucket at now_ms. True if allowed; otherwise
 * *retry_s gets the whole seconds until a token is back (at least 1). */
bool lt_rl_take(struct lt_rl *rl, const char *key, int64_t now_ms, int *retry_s);

#endif
