/* SPDX-License-Identifier: MIT */
/*
 * log: one JSON object per line, to stderr and optionally to a file that is
 * rotated by size (path -> path.1 -> … -> path.keep).
 *
 * A line is assembled in a thread-local buffer (no allocation, bounded: an
 * over-long message is cut at a character boundary and marked with
 * "truncated":"1") and written with one write(2), so lines from several
 * threads or processes sharing stderr never interleave. Strings are JSON
 * escaped and invalid UTF-8 is replaced by U+FFFD. The file and its rotation
 * are guarded by a mutex; stderr needs none.
 */
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"

#define LINE_MAX_BYTES	  32768 /* one line, all included */
#define MSG_MAX_BYTES	  4096	/* the formatted message before escaping */
#define TAIL_RESERVE	  48	/* room kept for the closing of a line */
#define CTX_MAX_BYTES	  256	/* the per-thread context string */
#define DEFAULT_MAX_BYTES (10u * 1024 * 1024)
#define DEFAULT_KEEP	  5

int lt_log_level_cur = LT_LOG_INFO;

static const char *log_proc = "livetap";
static atomic_bool to_stderr = true;

static pthread_mutex_t file_mu = PTHREAD_MUTEX_INITIALIZER;
static int file_fd = -1;
static char *file_path;
static size_t file_max;
static int file_keep;
static size_t file_size;

static _Thread_local char thread_ctx[CTX_MAX_BYTES];
static _Thread_local char line_buf[LINE_MAX_BYTES];

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

/* A bounded writer over line_buf; `cut` is set once something did not fit. */
struct lw {
	char *p;
	size_t n, cap;
	int cut;
};

static void lw_raw(struct lw *w, const char *s, size_t n)
{
	if (w->cut || w->n + n > w->cap - TAIL_RESERVE) {
		w->cut = 1;
		return;
	}
	memcpy(w->p + w->n, s, n);
	w->n += n;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
	unsigned char c = s[0];
	size_t len;
	unsigned int cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (left < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
		return 0;
	return len;
}

/* Append s[0..n) escaped (without quotes), stopping before the tail reserve. */
static void lw_esc(struct lw *w, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t limit = w->cap - TAIL_RESERVE;
	for (size_t i = 0; i < n && !w->cut;) {
		char tmp[8];
		const char *out = tmp;
		size_t olen, step = 1;
		unsigned char c = u[i];
		if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			olen = 2;
		} else if (c == '\n') {
			out = "\\n";
			olen = 2;
		} else if (c == '\t') {
			out = "\\t";
			olen = 2;
		} else if (c == '\r') {
			out = "\\r";
			olen = 2;
		} else if (c < 0x20 || c == 0x7F) {
			snprintf(tmp, sizeof tmp, "\\u%04x", c);
			olen = 6;
		} else if (c < 0x80) {
			tmp[0] = (char)c;
			olen = 1;
		} else {
			step = utf8_seq(u + i, n - i);
			if (step == 0) {
				out = "\\ufffd";
				olen = 6;
				step = 1;
			} else {
				out = s + i;
				olen = step;
			}
		}
		if (w->n + olen > limit) {
			w->cut = 1;
			return;
		}
		memcpy(w->p + w->n, out, olen);
		w->n += olen;
		i += step;
	}
}

/* Append ,"k":"v" whole or not at all (a field that does not fit is dropped
 * and marks the line as cut). */
static void lw_field(struct lw *w, const char *prefix, const char *k, size_t kn, const char *v, size_t vn)
{
	size_t mark = w->n;
	lw_raw(w, ",\"", 2);
	lw_raw(w, prefix, strlen(prefix));
	lw_esc(w, k, kn);
	lw_raw(w, "\":\"", 3);
	lw_esc(w, v, vn);
	lw_raw(w, "\"", 1);
	if (w->cut)
		w->n = mark;
}

static int reserved_key(const char *k, size_t n)
{
	static const char *const names[] = {"ts", "level", "proc", "msg", "truncated"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strlen(names[i]) == n && memcmp(names[i], k, n) == 0)
			return 1;
	return 0;
}

/*
 * Parse "k=v k2=\"v 2\" k3=v3" into fields. A token without '=' becomes a key
 * with an empty value; a key that would shadow a fixed field gets a "ctx_"
 * prefix. Double-quoted values may hold spaces.
 */
static void lw_ctx(struct lw *w, const char *s)
{
	if (!s)
		return;
	const char *p = s;
	while (*p) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		const char *k = p;
		while (*p && *p != '=' && *p != ' ')
			p++;
		size_t kn = (size_t)(p - k);
		const char *v = p;
		size_t vn = 0;
		if (*p == '=') {
			p++;
			if (*p == '"') {
				v = ++p;
				while (*p && *p != '"')
					p++;
				vn = (size_t)(p - v);
				if (*p == '"')
					p++;
			} else {
				v = p;
				while (*p && *p != ' ')
					p++;
				vn = (size_t)(p - v);
			}
		}
		if (kn == 0)
			continue;
		lw_field(w, reserved_key(k, kn) ? "ctx_" : "", k, kn, v, vn);
		if (w->cut)
			return;
	}
}

/* Set the process name (kept by pointer: pass a literal) and the level. */
void lt_log_init(const char *proc, int level)
{
	if (proc)
		log_proc = proc;
	lt_log_set_level(level);
}

/* Levels outside debug..off are clamped. */
void lt_log_set_level(int level)
{
	if (level < LT_LOG_DEBUG)
		level = LT_LOG_DEBUG;
	if (level > LT_LOG_OFF)
		level = LT_LOG_OFF;
	lt_log_level_cur = level;
}

/* "debug" | "info" | "warn" (or "warning") | "error" | "off"; -1 otherwise. */
int lt_log_level_parse(const char *s)
{
	if (!s)
		return -1;
	for (int i = 0; i <= LT_LOG_OFF; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	if (strcmp(s, "warning") == 0)
		return LT_LOG_WARN;
	return -1;
}

/* Copy kv (bounded) as this thread's context; NULL clears it. */
void lt_log_ctx(const char *kv)
{
	if (!kv) {
		thread_ctx[0] = '\0';
		return;
	}
	snprintf(thread_ctx, sizeof thread_ctx, "%s", kv);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = write(fd, p, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += r;
		n -= (size_t)r;
	}
}

/* Shift path.(keep-1) -> path.keep … path -> path.1 and reopen path. Called
 * with file_mu held. On failure the file output is switched off. */
static void rotate_locked(void)
{
	size_t n = strlen(file_path) + 16;
	char *from = malloc(n), *to = malloc(n);
	if (!from || !to)
		goto out;
	close(file_fd);
	file_fd = -1;
	for (int i = file_keep - 1; i >= 1; i--) {
		snprintf(from, n, "%s.%d", file_path, i);
		snprintf(to, n, "%s.%d", file_path, i + 1);
		rename(from, to); /* a missing one is fine */
	}
	if (file_keep >= 1) {
		snprintf(to, n, "%s.1", file_path);
		rename(file_path, to);
	} else {
		unlink(file_path);
	}
	file_fd = open(file_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	file_size = 0;
out:
	free(from);
	free(to);
}

/*
 * Open (append) path as a second output, rotating at max_bytes and keeping
 * keep old files; 0 and 0 mean 10 MB and 5. Replaces an earlier file output.
 * Returns LT_OK, LT_ENOMEM, or LT_EIO (errno set) if path cannot be opened.
 */
int lt_log_open_file(const char *path, size_t max_bytes, int keep)
{
	int rc = LT_OK;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return LT_EIO;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return LT_EIO;
	}
	char *copy = strdup(path);
	if (!copy) {
		close(fd);
		return LT_ENOMEM;
	}
	pthread_mutex_lock(&file_mu);
	if (file_fd >= 0)
		close(file_fd);
	free(file_path);
	file_fd = fd;
	file_path = copy;
	file_max = max_bytes ? max_bytes : DEFAULT_MAX_BYTES;
	file_keep = (max_bytes == 0 && keep == 0) ? DEFAULT_KEEP : keep;
	if (file_keep < 0)
		file_keep = 0;
	file_size = (size_t)st.st_size;
	pthread_mutex_unlock(&file_mu);
	return rc;
}

void lt_log_set_stderr(bool on)
{
	atomic_store(&to_stderr, on);
}

/* Close the file output (stderr stays). Safe to call when none is open. */
void lt_log_close(void)
{
	pthread_mutex_lock(&file_mu);
	if (file_fd >= 0)
		close(file_fd);
	file_fd = -1;
	free(file_path);
	file_path = NULL;
	pthread_mutex_unlock(&file_mu);
}

/*
 * Format and write one line if level is enabled. ctx may be NULL; the
 * thread's context (lt_log_ctx) follows it. Never fails visibly: a line that
 * cannot be written is dropped.
 */
void lt_log_write(int level, const char *ctx, const char *fmt, ...)
{
	if (level < lt_log_level_cur || level >= LT_LOG_OFF || level < LT_LOG_DEBUG)
		return;
	int saved_errno = errno;
	char msg[MSG_MAX_BYTES];
	va_list ap;
	va_start(ap, fmt);
	int mn = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	size_t mlen = mn < 0 ? 0 : (size_t)mn >= sizeof msg ? sizeof msg - 1 : (size_t)mn;

	char ts[32];
	lt_clock_iso8601(lt_clock_wall_ms(), ts);

	struct lw w = {line_buf, 0, sizeof line_buf, 0};
	lw_raw(&w, "{\"ts\":\"", 7);
	lw_raw(&w, ts, strlen(ts));
	lw_raw(&w, "\",\"level\":\"", 11);
	lw_raw(&w, level_names[level], strlen(level_names[level]));
	lw_raw(&w, "\",\"proc\":\"", 10);
	lw_esc(&w, log_proc, strlen(log_proc));
	lw_raw(&w, "\",\"msg\":\"", 9);
	lw_esc(&w, msg, mlen);
	/* lw_esc stops at a character boundary, so closing the string here is
	 * valid even when the message was cut; the tail reserve has room. */
	int cut = w.cut || (mn >= 0 && (size_t)mn >= sizeof msg);
	w.p[w.n++] = '"';
	if (!w.cut) {
		lw_ctx(&w, ctx);
		if (!w.cut && thread_ctx[0])
			lw_ctx(&w, thread_ctx);
		cut = cut || w.cut;
	}
	static const char tail_cut[] = ",\"truncated\":\"1\"}\n";
	if (cut) {
		memcpy(w.p + w.n, tail_cut, sizeof tail_cut - 1);
		w.n += sizeof tail_cut - 1;
	} else {
		memcpy(w.p + w.n, "}\n", 2);
		w.n += 2;
	}

	if (atomic_load(&to_stderr))
		write_all(STDERR_FILENO, w.p, w.n);

	pthread_mutex_lock(&file_mu);
	if (file_fd >= 0) {
		if (file_size > 0 && file_size + w.n > file_max)
			rotate_locked();
		if (file_fd >= 0) {
			write_all(file_fd, w.p, w.n);
			file_size += w.n;
		}
	}
	pthread_mutex_unlock(&file_mu);
	errno = saved_errno;
}
