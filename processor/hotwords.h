/* SPDX-License-Identifier: MIT */
/*
 * hotwords: the hot-word plugin and the arithmetic of buckets, windows and
 * trend that apply.lua runs in Redis.
 *
 * Occurrences (one per word per message) go into 10-second sub-buckets;
 * the windows 1m, 5m and 30m are the sums of their last 6, 30 and 180
 * sub-buckets, kept exact by moving a per-window cursor once a second and
 * subtracting each bucket the cursor passes (see apply.lua for why this is
 * idempotent). The trend score of a word in a window w is
 *
 *     (r_w - r_30) / (r_30 + 1),   r = count / window minutes,
 *
 * 0 for a word that is as frequent as over the last 30 minutes (the room's
 * baseline), large for a word that suddenly is everywhere.
 *
 * struct lt_hotwords is the same algorithm in C for one room, in memory: the
 * reference model that the unit tests drive with an injected clock and that
 * the integration test compares Redis against. It is bounded
 * (LT_HOTWORDS_MODEL_WORDS words; more are ignored) and not meant for
 * production volumes.
 */
#ifndef LT_HOTWORDS_H
#define LT_HOTWORDS_H

#include <stdint.h>

#include "common/err.h"

#define LT_HOTWORDS_BUCKET_MS 10000
#define LT_HOTWORDS_MODEL_WORDS 1024

enum lt_hotwords_window { LT_HW_1M = 0, LT_HW_5M, LT_HW_30M, LT_HW_NWIN };

/* Sub-buckets per window (6, 30, 180) and minutes (1, 5, 30). */
extern const int lt_hotwords_span[LT_HW_NWIN];
extern const int lt_hotwords_minutes[LT_HW_NWIN];
/* "1m", "5m", "30m". */
extern const char *const lt_hotwords_window_name[LT_HW_NWIN];

/* The sub-bucket of a time (floor(ts / 10 s)). */
int64_t lt_hotwords_bucket(int64_t ts_ms);

/* The trend score of count occurrences in window win (LT_HW_1M or
 * LT_HW_5M) against count30 in the 30-minute window. */
double lt_hotwords_trend(int64_t count, int win, int64_t count30);

struct lt_hotwords;

/* A new empty model; returns LT_OK with *out (lt_hotwords_free) or
 * LT_ENOMEM. */
int lt_hotwords_new(struct lt_hotwords **out);
void lt_hotwords_free(struct lt_hotwords *h);

/* Move the windows to now_ms (the apply script's step 2). */
void lt_hotwords_tick(struct lt_hotwords *h, int64_t now_ms);

/* n occurrences of word at ts_ms (clamped to now_ms), after a tick to now_ms
 * (the script's steps 2 and 3). Returns LT_OK or LT_ETOOBIG when the model
 * is full. word is copied. */
int lt_hotwords_add(struct lt_hotwords *h, const char *word, int64_t ts_ms, int64_t n, int64_t now_ms);

/* The window count of word (0 if absent). */
int64_t lt_hotwords_count(const struct lt_hotwords *h, int win, const char *word);

/* The trend score of word in win (LT_HW_1M or LT_HW_5M); *present set to 0
 * when the word is not in that window (no score). */
double lt_hotwords_score(const struct lt_hotwords *h, int win, const char *word, int *present);

/* The number of words the model knows and the i-th of them. */
int lt_hotwords_nwords(const struct lt_hotwords *h);
const char *lt_hotwords_word(const struct lt_hotwords *h, int i);

#endif
