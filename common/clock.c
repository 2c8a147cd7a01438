/* SPDX-License-Identifier: MIT */
/*
 * clock: the real clocks (CLOCK_REALTIME, CLOCK_MONOTONIC) behind struct
 * lt_clock, a manual clock that tests advance by hand, and the ISO-8601 UTC
 * formatter the log uses. Nothing here allocates.
 */
#include "common/clock.h"

#include <stdio.h>
#include <time.h>

int64_t lt_clock_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t lt_clock_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t lt_clock_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t real_now(void *ctx)
{
	(void)ctx;
	return lt_clock_wall_ms();
}

static int64_t real_mono(void *ctx)
{
	(void)ctx;
	return lt_clock_mono_ms();
}

const struct lt_clock lt_clock_real = {real_now, real_mono, NULL};

static int64_t manual_read(void *ctx)
{
	return *(const int64_t *)ctx;
}

/*
 * A clock whose wall and monotonic readings are both *ms. The caller owns ms
 * and keeps it alive as long as the clock is used; advancing it is simply
 * `*ms += 1000`.
 */
struct lt_clock lt_clock_manual(int64_t *ms)
{
	struct lt_clock c = {manual_read, manual_read, ms};
	return c;
}

/*
 * Format ms since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (always
 * NUL-terminated). Negative times are rounded towards minus infinity so the
 * millisecond field stays in 0..999.
 */
void lt_clock_iso8601(int64_t ms, char out[32])
{
	int64_t sec = ms / 1000;
	int64_t rem = ms % 1000;
	if (rem < 0) {
		rem += 1000;
		sec -= 1;
	}
	time_t t = (time_t)sec;
	struct tm tm;
	if (!gmtime_r(&t, &tm)) {
		snprintf(out, 32, "1970-01-01T00:00:00.000Z");
		return;
	}
	size_t n = strftime(out, 24, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n == 0) {
		snprintf(out, 32, "1970-01-01T00:00:00.000Z");
		return;
	}
	snprintf(out + n, 32 - n, ".%03uZ", (unsigned)rem % 1000u);
}
