/* SPDX-License-Identifier: MIT */
/*
 * metrics: a process-wide registry of counters, gauges and histograms,
 * rendered in the Prometheus text exposition format (version 0.0.4).
 *
 *   static struct lt_metric *rx;      // registered once, at start-up
 *   rx = lt_metrics_counter("livetap_fetcher_messages_total", "Messages decoded.",
 *                           "room", "type");
 *   struct lt_series *s = lt_metrics_series(rx, "bilibili:1", "chat"); // cache it
 *   lt_metrics_add(s, 1);
 *
 * A metric (family) has zero, one or two label names; a series is one
 * combination of label values, created on first use and kept for the life of
 * the process (pointers stay valid; callers cache them). Updates are lock-free
 * atomics; creating a series or rendering takes the registry mutex. Memory is
 * bounded: at most LT_METRICS_MAX_FAMILIES families and
 * LT_METRICS_MAX_SERIES series per family; past that lt_metrics_series
 * returns NULL and every update on NULL is a no-op (counted in
 * livetap_metrics_series_dropped_total).
 *
 * lt_metrics_serve() answers GET /metrics on HOST:PORT from a background
 * thread (libwebsockets); the API process renders into its own response with
 * lt_metrics_render().
 */
#ifndef LT_METRICS_H
#define LT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define LT_METRICS_MAX_FAMILIES 256
#define LT_METRICS_MAX_SERIES	4096
#define LT_METRICS_MAX_BUCKETS	32

struct lt_metric;
struct lt_series;

/*
 * Register a family, or return the one already registered under name if its
 * kind and labels match. label1/label2 are label names (NULL = fewer labels).
 * Returns NULL on a bad name, a conflicting re-registration, or a full
 * registry. name, help and label names are copied.
 */
struct lt_metric *lt_metrics_counter(const char *name, const char *help, const char *label1,
				     const char *label2);
struct lt_metric *lt_metrics_gauge(const char *name, const char *help, const char *label1,
				   const char *label2);
/* bounds: nbounds strictly increasing finite upper bounds (le); +Inf is
 * implicit. NULL/0 = the default latency buckets in seconds
 * (.001 .0025 .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10). */
struct lt_metric *lt_metrics_histogram(const char *name, const char *help, const double *bounds, int nbounds,
				       const char *label1, const char *label2);

/* The series for these label values (NULL for an unused label; values are
 * copied), created if new. NULL if m is NULL or the family is full. Owned by
 * the registry. */
struct lt_series *lt_metrics_series(struct lt_metric *m, const char *value1, const char *value2);

/* Counter: add n. Gauge: add n (may be negative via lt_metrics_set). */
void lt_metrics_add(struct lt_series *s, uint64_t n);
/* Gauge: set to v. */
void lt_metrics_set(struct lt_series *s, double v);
/* Gauge: add v (negative allowed). */
void lt_metrics_gauge_add(struct lt_series *s, double v);
/* Histogram: record one observation. */
void lt_metrics_observe(struct lt_series *s, double v);

/* Shorthands for unlabelled metrics: the family's only series. */
void lt_metrics_inc(struct lt_metric *m);

/* Current values, mostly for tests: a counter's count, a gauge's value, a
 * histogram's observation count. 0 for NULL. */
double lt_metrics_value(const struct lt_series *s);

/* Append the whole registry in text exposition format to out. Returns out's
 * sticky error. */
int lt_metrics_render(struct lt_buf *out);

/*
 * Serve GET /metrics (404 for anything else) on "HOST:PORT" from a
 * background thread. HOST is an address or a name ("localhost", "[::1]";
 * empty = every interface). PORT 0 picks a free port (see lt_metrics_port). One
 * server per process. Returns LT_OK, LT_EINVAL for a bad address, LT_EEXIST
 * if already serving, LT_EIO if the port cannot be bound.
 */
int lt_metrics_serve(const char *addr);
/* The port being served, 0 if none. */
int lt_metrics_port(void);
/* Stop the server thread (if any) and wait for it. */
void lt_metrics_stop(void);

/* Forget every family and series (tests only: no other thread may hold a
 * metric or series pointer). */
void lt_metrics_reset(void);

#endif
