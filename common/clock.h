/* SPDX-License-Identifier: MIT */
/*
 * clock: time, injectable for tests.
 *
 * Code that depends on time takes an lt_clock (or calls lt_now_ms, which reads
 * the process default). Unit tests install a manual clock and advance it; they
 * never read the wall clock.
 */
#ifndef LT_CLOCK_H
#define LT_CLOCK_H

#include <stdint.h>

struct lt_clock {
	int64_t (*now_ms)(void *ctx);     /* wall clock, ms since the epoch */
	int64_t (*mono_ms)(void *ctx);    /* monotonic ms */
	void *ctx;
};

/* The real clocks. */
int64_t lt_clock_wall_ms(void);
int64_t lt_clock_mono_ms(void);
int64_t lt_clock_mono_us(void);
extern const struct lt_clock lt_clock_real;

/* A manual clock for tests: both readings return *ctx (an int64_t). */
struct lt_clock lt_clock_manual(int64_t *ms);

static inline int64_t lt_clock_now(const struct lt_clock *c) { return c->now_ms(c->ctx); }
static inline int64_t lt_clock_mono(const struct lt_clock *c) { return c->mono_ms(c->ctx); }

/* Format ms since the epoch as "2026-11-21T22:54:28.123Z" (25 bytes incl.
 * NUL). */
void lt_clock_iso8601(int64_t ms, char out[32]);

#endif
