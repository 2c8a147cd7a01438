/* SPDX-License-Identifier: MIT */
/*
 * log: JSON lines to stderr (and optionally a rotated file).
 *
 *   {"ts":"2026-11-21T22:54:28.123Z","level":"info","proc":"livetap-processor",
 *    "msg":"started","room":"bilibili:123","batch":"f1/42"}
 *
 * The level is checked before anything is formatted (use the LT_LOG macro,
 * or lt_log_enabled). Context fields are passed as "key=value" pairs in a
 * NULL-terminated list, or set once per thread with lt_log_ctx. common/
 * modules return codes and let callers log once; they do not log themselves.
 * Thread-safe: each line is written with one write(2).
 */
#ifndef LT_LOG_H
#define LT_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum lt_log_level {
	LT_LOG_DEBUG = 0,
	LT_LOG_INFO,
	LT_LOG_WARN,
	LT_LOG_ERROR,
	LT_LOG_OFF
};

/* Set the process name written in every line (not copied: pass a literal). */
void lt_log_init(const char *proc, int level);
void lt_log_set_level(int level);
/* Parse "debug" | "info" | "warn" | "error" | "off"; -1 if none. */
int lt_log_level_parse(const char *s);
/* Also write to path, rotating at max_bytes keeping keep old files
 * (path.1 … path.keep). 0, 0 = the defaults 10 MB × 5. Returns LT_OK or
 * LT_EIO. */
int lt_log_open_file(const char *path, size_t max_bytes, int keep);
void lt_log_close(void);
/* Whether lines also go to stderr (default true; log.stderr). With it off
 * and no file open, lines go nowhere. */
void lt_log_set_stderr(bool on);

extern int lt_log_level_cur;
static inline bool lt_log_enabled(int level) { return level >= lt_log_level_cur; }

/* Context for this thread's lines: up to 4 "key=value" strings, copied. Pass
 * NULL to clear. */
void lt_log_ctx(const char *kv);

/* Write one line. ctx is an optional "key=value key2=value2" string (values
 * without spaces), then the printf message. */
void lt_log_write(int level, const char *ctx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define LT_LOG(level, ctx, ...)                                  \
	do {                                                     \
		if (lt_log_enabled(level))                       \
			lt_log_write((level), (ctx), __VA_ARGS__); \
	} while (0)
#define lt_debug(ctx, ...) LT_LOG(LT_LOG_DEBUG, ctx, __VA_ARGS__)
#define lt_info(ctx, ...) LT_LOG(LT_LOG_INFO, ctx, __VA_ARGS__)
#define lt_warn(ctx, ...) LT_LOG(LT_LOG_WARN, ctx, __VA_ARGS__)
#define lt_error(ctx, ...) LT_LOG(LT_LOG_ERROR, ctx, __VA_ARGS__)

#endif
