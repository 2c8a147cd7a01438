/* SPDX-License-Identifier: MIT */
/*
 * metrics: the registry, Prometheus text rendering, and a tiny /metrics HTTP
 * server on libwebsockets.
 *
 * Families live in a fixed array under one mutex; each series is allocated
 * once and never moves or goes away (until lt_metrics_reset), so callers keep
 * pointers and update them with atomics only. Gauges and histogram sums are
 * doubles kept as their bit patterns in 64-bit atomics and updated by
 * compare-and-swap. The server renders the registry per request into a buffer
 * owned by the connection and writes it out in chunks when writeable.
 */
#include "common/metrics.h"

#include <libwebsockets.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"

enum kind { K_COUNTER, K_GAUGE, K_HISTOGRAM };

struct lt_series {
	struct lt_metric *fam;
	char *v[2];
	_Atomic uint64_t u;	   /* counter value, or gauge double bits */
	_Atomic uint64_t sum_bits; /* histogram sum (double bits) */
	_Atomic uint64_t count;	   /* histogram observations */
	_Atomic uint64_t *buckets; /* histogram, nbounds + 1 (last = +Inf) */
};

struct lt_metric {
	enum kind kind;
	char *name, *help;
	char *label[2];
	int nlabels;
	double *bounds;
	int nbounds;
	struct lt_series **series;
	int nseries, cap;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lt_metric *families[LT_METRICS_MAX_FAMILIES];
static int nfamilies;
static _Atomic uint64_t series_dropped;

static const double default_bounds[] = {.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};

static uint64_t dbits(double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof u);
	return u;
}

static double bitsd(uint64_t u)
{
	double d;
	memcpy(&d, &u, sizeof d);
	return d;
}

static bool valid_name(const char *s, bool colon)
{
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
			  (colon && c == ':') || (p != s && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

static bool valid_label(const char *s, enum kind k)
{
	if (!valid_name(s, false) || strncmp(s, "__", 2) == 0)
		return false;
	return !(k == K_HISTOGRAM && strcmp(s, "le") == 0);
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static void metric_free(struct lt_metric *m)
{
	if (!m)
		return;
	for (int i = 0; i < m->nseries; i++) {
		struct lt_series *s = m->series[i];
		free(s->v[0]);
		free(s->v[1]);
		free(s->buckets);
		free(s);
	}
	free(m->series);
	free(m->name);
	free(m->help);
	free(m->label[0]);
	free(m->label[1]);
	free(m->bounds);
	free(m);
}

static struct lt_metric *reg(enum kind k, const char *name, const char *help, const double *bounds,
			     int nbounds, const char *l1, const char *l2)
{
	if (!valid_name(name, true) || (l1 && !valid_label(l1, k)) || (l2 && !valid_label(l2, k)) ||
	    (!l1 && l2) || (l1 && l2 && !strcmp(l1, l2)))
		return NULL;
	if (k == K_HISTOGRAM) {
		if (!bounds || nbounds <= 0) {
			bounds = default_bounds;
			nbounds = (int)(sizeof default_bounds / sizeof default_bounds[0]);
		}
		if (nbounds > LT_METRICS_MAX_BUCKETS)
			return NULL;
		for (int i = 0; i < nbounds; i++)
			if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
				return NULL;
	} else {
		nbounds = 0;
	}
	struct lt_metric *m = NULL;
	pthread_mutex_lock(&reg_mu);
	for (int i = 0; i < nfamilies; i++) {
		struct lt_metric *f = families[i];
		if (strcmp(f->name, name) != 0)
			continue;
		bool same = f->kind == k && same_str(f->label[0], l1) && same_str(f->label[1], l2) &&
			    f->nbounds == nbounds;
		for (int b = 0; same && b < nbounds; b++)
			same = f->bounds[b] == bounds[b];
		m = same ? f : NULL;
		goto out;
	}
	if (nfamilies >= LT_METRICS_MAX_FAMILIES)
		goto out;
	m = calloc(1, sizeof *m);
	if (!m)
		goto out;
	m->kind = k;
	m->name = strdup(name);
	m->help = strdup(help ? help : "");
	m->label[0] = l1 ? strdup(l1) : NULL;
	m->label[1] = l2 ? strdup(l2) : NULL;
	m->nlabels = l1 ? (l2 ? 2 : 1) : 0;
	m->nbounds = nbounds;
	if (nbounds) {
		m->bounds = malloc(sizeof *m->bounds * (size_t)nbounds);
		if (m->bounds)
			memcpy(m->bounds, bounds, sizeof *m->bounds * (size_t)nbounds);
	}
	if (!m->name || !m->help || (l1 && !m->label[0]) || (l2 && !m->label[1]) || (nbounds && !m->bounds)) {
		metric_free(m);
		m = NULL;
		goto out;
	}
	families[nfamilies++] = m;
out:
	pthread_mutex_unlock(&reg_mu);
	return m;
}

struct lt_metric *lt_metrics_counter(const char *name, const char *help, const char *label1,
				     const char *label2)
{
	return reg(K_COUNTER, name, help, NULL, 0, label1, label2);
}

struct lt_metric *lt_metrics_gauge(const char *name, const char *help, const char *label1, const char *label2)
{
	return reg(K_GAUGE, name, help, NULL, 0, label1, label2);
}

struct lt_metric *lt_metrics_histogram(const char *name, const char *help, const double *bounds, int nbounds,
				       const char *label1, const char *label2)
{
	return reg(K_HISTOGRAM, name, help, bounds, nbounds, label1, label2);
}

/* See metrics.h. Values beyond the family's label count are ignored; a
 * missing value for a declared label is rendered as "". */
struct lt_series *lt_metrics_series(struct lt_metric *m, const char *value1, const char *value2)
{
	if (!m)
		return NULL;
	const char *v[2] = {m->nlabels > 0 ? (value1 ? value1 : "") : NULL,
			    m->nlabels > 1 ? (value2 ? value2 : "") : NULL};
	struct lt_series *s = NULL;
	pthread_mutex_lock(&reg_mu);
	for (int i = 0; i < m->nseries; i++) {
		struct lt_series *c = m->series[i];
		if (same_str(c->v[0], v[0]) && same_str(c->v[1], v[1])) {
			s = c;
			goto out;
		}
	}
	if (m->nseries >= LT_METRICS_MAX_SERIES)
		goto drop;
	if (m->nseries == m->cap) {
		int ncap = m->cap ? m->cap * 2 : 8;
		struct lt_series **grown = realloc(m->series, sizeof *grown * (size_t)ncap);
		if (!grown)
			goto drop;
		m->series = grown;
		m->cap = ncap;
	}
	s = calloc(1, sizeof *s);
	if (!s)
		goto drop;
	s->fam = m;
	for (int i = 0; i < 2; i++)
		if (v[i] && !(s->v[i] = strdup(v[i])))
			goto drop_s;
	if (m->kind == K_HISTOGRAM && !(s->buckets = calloc((size_t)m->nbounds + 1, sizeof *s->buckets)))
		goto drop_s;
	if (m->kind == K_GAUGE)
		atomic_store(&s->u, dbits(0.0));
	atomic_store(&s->sum_bits, dbits(0.0));
	m->series[m->nseries++] = s;
	goto out;
drop_s:
	free(s->v[0]);
	free(s->v[1]);
	free(s->buckets);
	free(s);
	s = NULL;
drop:
	atomic_fetch_add(&series_dropped, 1);
out:
	pthread_mutex_unlock(&reg_mu);
	return s;
}

static void add_double(_Atomic uint64_t *bits, double v)
{
	uint64_t old = atomic_load(bits);
	while (!atomic_compare_exchange_weak(bits, &old, dbits(bitsd(old) + v)))
		;
}

/* Counter: += n. On a gauge, adds n as a double. */
void lt_metrics_add(struct lt_series *s, uint64_t n)
{
	if (!s)
		return;
	if (s->fam->kind == K_COUNTER)
		atomic_fetch_add(&s->u, n);
	else if (s->fam->kind == K_GAUGE)
		add_double(&s->u, (double)n);
}

void lt_metrics_set(struct lt_series *s, double v)
{
	if (s && s->fam->kind == K_GAUGE)
		atomic_store(&s->u, dbits(v));
}

void lt_metrics_gauge_add(struct lt_series *s, double v)
{
	if (s && s->fam->kind == K_GAUGE)
		add_double(&s->u, v);
}

/* One observation: the first bucket whose bound is >= v (le semantics). NaN
 * is ignored. */
void lt_metrics_observe(struct lt_series *s, double v)
{
	if (!s || s->fam->kind != K_HISTOGRAM || isnan(v))
		return;
	const struct lt_metric *m = s->fam;
	int b = 0;
	while (b < m->nbounds && v > m->bounds[b])
		b++;
	atomic_fetch_add(&s->buckets[b], 1);
	add_double(&s->sum_bits, v);
	atomic_fetch_add(&s->count, 1);
}

void lt_metrics_inc(struct lt_metric *m)
{
	lt_metrics_add(lt_metrics_series(m, NULL, NULL), 1);
}

double lt_metrics_value(const struct lt_series *s)
{
	if (!s)
		return 0;
	switch (s->fam->kind) {
	case K_COUNTER:
		return (double)atomic_load(&s->u);
	case K_GAUGE:
		return bitsd(atomic_load(&s->u));
	case K_HISTOGRAM:
		return (double)atomic_load(&s->count);
	}
	return 0;
}

/* The shortest of %.15g..%.17g that reads back as v: 0.1 stays "0.1". */
static void fmt_double(char out[40], double v)
{
	if (isnan(v)) {
		snprintf(out, 40, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, 40, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(out, 40, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

static void put_double(struct lt_buf *out, double v)
{
	char tmp[40];
	fmt_double(tmp, v);
	lt_buf_puts(out, tmp);
}

static void put_escaped(struct lt_buf *out, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			lt_buf_puts(out, "\\\\");
		else if (*s == '\n')
			lt_buf_puts(out, "\\n");
		else if (quote && *s == '"')
			lt_buf_puts(out, "\\\"");
		else
			lt_buf_putc(out, *s);
	}
}

/* name{l1="v1",l2="v2"[,le="b"]} with a suffix on the name. */
static void put_series_name(struct lt_buf *out, const struct lt_metric *m, const struct lt_series *s,
			    const char *suffix, const char *le)
{
	lt_buf_puts(out, m->name);
	lt_buf_puts(out, suffix);
	if (m->nlabels == 0 && !le)
		return;
	lt_buf_putc(out, '{');
	for (int i = 0; i < m->nlabels; i++) {
		if (i)
			lt_buf_putc(out, ',');
		lt_buf_puts(out, m->label[i]);
		lt_buf_puts(out, "=\"");
		put_escaped(out, s->v[i], true);
		lt_buf_putc(out, '"');
	}
	if (le) {
		if (m->nlabels)
			lt_buf_putc(out, ',');
		lt_buf_puts(out, "le=\"");
		lt_buf_puts(out, le);
		lt_buf_putc(out, '"');
	}
	lt_buf_putc(out, '}');
}

static void render_family(struct lt_buf *out, const struct lt_metric *m)
{
	static const char *const kinds[] = {"counter", "gauge", "histogram"};
	lt_buf_printf(out, "# HELP %s ", m->name);
	put_escaped(out, m->help, false);
	lt_buf_printf(out, "\n# TYPE %s %s\n", m->name, kinds[m->kind]);
	for (int i = 0; i < m->nseries; i++) {
		const struct lt_series *s = m->series[i];
		if (m->kind == K_COUNTER) {
			put_series_name(out, m, s, "", NULL);
			lt_buf_printf(out, " %llu\n", (unsigned long long)atomic_load(&s->u));
		} else if (m->kind == K_GAUGE) {
			put_series_name(out, m, s, "", NULL);
			lt_buf_putc(out, ' ');
			put_double(out, bitsd(atomic_load(&s->u)));
			lt_buf_putc(out, '\n');
		} else {
			/* Read the buckets first and derive the count from them, so
			 * _count always equals the +Inf bucket even while observing. */
			uint64_t cum = 0;
			for (int b = 0; b <= m->nbounds; b++) {
				char le[40];
				fmt_double(le, b < m->nbounds ? m->bounds[b] : INFINITY);
				cum += atomic_load(&s->buckets[b]);
				put_series_name(out, m, s, "_bucket", le);
				lt_buf_printf(out, " %llu\n", (unsigned long long)cum);
			}
			put_series_name(out, m, s, "_sum", NULL);
			lt_buf_putc(out, ' ');
			put_double(out, bitsd(atomic_load(&s->sum_bits)));
			lt_buf_putc(out, '\n');
			put_series_name(out, m, s, "_count", NULL);
			lt_buf_printf(out, " %llu\n", (unsigned long long)cum);
		}
	}
}

/* See metrics.h. */
int lt_metrics_render(struct lt_buf *out)
{
	pthread_mutex_lock(&reg_mu);
	for (int i = 0; i < nfamilies; i++)
		render_family(out, families[i]);
	pthread_mutex_unlock(&reg_mu);
	lt_buf_puts(
	    out, "# HELP livetap_metrics_series_dropped_total Series not created because a family was full.\n"
		 "# TYPE livetap_metrics_series_dropped_total counter\n");
	lt_buf_printf(out, "livetap_metrics_series_dropped_total %llu\n",
		      (unsigned long long)atomic_load(&series_dropped));
	return lt_buf_err(out);
}

void lt_metrics_reset(void)
{
	pthread_mutex_lock(&reg_mu);
	for (int i = 0; i < nfamilies; i++)
		metric_free(families[i]);
	nfamilies = 0;
	atomic_store(&series_dropped, 0);
	pthread_mutex_unlock(&reg_mu);
}

/* ---- the /metrics server ----------------------------------------------- */

#define SRV_CHUNK      4096
#define SRV_BODY_LIMIT (64u * 1024 * 1024)

struct srv_pss {
	struct lt_buf body;
	size_t off;
	bool active;
};

static pthread_mutex_t srv_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lws_context *srv_ctx;
static pthread_t srv_thread;
static atomic_int srv_stop;
static int srv_port;

static int srv_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct srv_pss *pss = user;
	uint8_t hdr[LWS_PRE + 512], *start = &hdr[LWS_PRE], *p = start, *end = &hdr[sizeof hdr - 1];
	(void)len;
	switch (reason) {
	case LWS_CALLBACK_HTTP:
		if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0 ||
		    strcmp((const char *)in, "/metrics") != 0) {
			lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL);
			return lws_http_transaction_completed(wsi) ? -1 : 0;
		}
		lt_buf_init(&pss->body, SRV_BODY_LIMIT);
		pss->off = 0;
		pss->active = true;
		if (lt_metrics_render(&pss->body) != LT_OK) {
			lws_return_http_status(wsi, HTTP_STATUS_INTERNAL_SERVER_ERROR, NULL);
			return lws_http_transaction_completed(wsi) ? -1 : 0;
		}
		if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK,
						"text/plain; version=0.0.4; charset=utf-8", pss->body.len, &p,
						end) ||
		    lws_finalize_write_http_header(wsi, start, &p, end))
			return 1;
		lws_callback_on_writable(wsi);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE: {
		if (!pss || !pss->active)
			break;
		uint8_t chunk[LWS_PRE + SRV_CHUNK];
		size_t n = pss->body.len - pss->off;
		if (n > SRV_CHUNK)
			n = SRV_CHUNK;
		bool last = pss->off + n >= pss->body.len;
		memcpy(chunk + LWS_PRE, pss->body.data + pss->off, n);
		if (lws_write(wsi, chunk + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) !=
		    (int)n)
			return 1;
		pss->off += n;
		if (!last) {
			lws_callback_on_writable(wsi);
			return 0;
		}
		lt_buf_free(&pss->body);
		pss->active = false;
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	}
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if (pss && pss->active) {
			lt_buf_free(&pss->body);
			pss->active = false;
		}
		break;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols srv_protocols[] = {
    {"http", srv_callback, sizeof(struct srv_pss), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void *srv_main(void *arg)
{
	struct lws_context *ctx = arg;
	while (!atomic_load(&srv_stop))
		if (lws_service(ctx, 0) < 0)
			break;
	return NULL;
}

static void lws_to_log(int level, const char *line)
{
	size_t n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	LT_LOG(level == LLL_ERR ? LT_LOG_ERROR : LT_LOG_WARN, "lib=lws", "%.*s", (int)n, line);
}

/* Split "HOST:PORT" (HOST may be empty = all interfaces, or [v6]). */
static int parse_addr(const char *addr, char *host, size_t cap, int *port)
{
	const char *colon = strrchr(addr, ':');
	if (!colon || !colon[1])
		return LT_EINVAL;
	size_t hl = (size_t)(colon - addr);
	const char *h = addr;
	if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl >= cap)
		return LT_EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	char *endp;
	long p = strtol(colon + 1, &endp, 10);
	if (*endp || p < 0 || p > 65535)
		return LT_EINVAL;
	*port = (int)p;
	return LT_OK;
}

/*
 * Resolve host (a name such as "localhost", or an address; empty = all
 * interfaces) to a numeric address for lws, which only takes an address or
 * an interface name, and try to bind host:port ourselves first: a port in use
 * is then reported without lws (whose failed context creation leaks and
 * logs). *v6 tells whether the address is IPv6. Port 0 is not bound here.
 */
static int resolve_and_check(char *host, size_t cap, int port, int *v6)
{
	char ps[16];
	snprintf(ps, sizeof ps, "%d", port);
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (getaddrinfo(host[0] ? host : NULL, ps, &hints, &res) != 0 || !res)
		return LT_EINVAL;
	int rc = LT_OK;
	*v6 = res->ai_family == AF_INET6;
	if (host[0] &&
	    getnameinfo(res->ai_addr, res->ai_addrlen, host, (socklen_t)cap, NULL, 0, NI_NUMERICHOST) != 0)
		rc = LT_EINVAL;
	if (rc == LT_OK && port != 0) {
		rc = LT_EIO;
		int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0) {
			int one = 1;
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
			if (bind(fd, res->ai_addr, res->ai_addrlen) == 0)
				rc = LT_OK;
			close(fd);
		}
	}
	freeaddrinfo(res);
	return rc;
}

/* See metrics.h. The context is created here, so a port that cannot be bound
 * is reported to the caller; the thread only services it. */
int lt_metrics_serve(const char *addr)
{
	char host[256];
	int port;
	if (!addr || parse_addr(addr, host, sizeof host, &port) != LT_OK)
		return LT_EINVAL;
	int rc = LT_OK;
	pthread_mutex_lock(&srv_mu);
	if (srv_ctx) {
		rc = LT_EEXIST;
		goto out;
	}
	int v6 = 0;
	if ((rc = resolve_and_check(host, sizeof host, port, &v6)) != LT_OK)
		goto out;
	lws_set_log_level(LLL_ERR | LLL_WARN, lws_to_log);
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof info);
	info.port = port;
	info.iface = host[0] ? host : NULL;
	info.protocols = srv_protocols;
	info.gid = -1;
	info.uid = -1;
	info.options = v6 || !host[0] ? 0 : LWS_SERVER_OPTION_DISABLE_IPV6;
	struct lws_context *ctx = lws_create_context(&info);
	if (!ctx) {
		rc = LT_EIO;
		goto out;
	}
	struct lws_vhost *vh = lws_get_vhost_by_name(ctx, "default");
	int bound = vh ? lws_get_vhost_listen_port(vh) : -1;
	if (bound <= 0) {
		lws_context_destroy(ctx);
		rc = LT_EIO;
		goto out;
	}
	atomic_store(&srv_stop, 0);
	if (pthread_create(&srv_thread, NULL, srv_main, ctx) != 0) {
		lws_context_destroy(ctx);
		rc = LT_EIO;
		goto out;
	}
	srv_ctx = ctx;
	srv_port = bound;
out:
	pthread_mutex_unlock(&srv_mu);
	return rc;
}

int lt_metrics_port(void)
{
	pthread_mutex_lock(&srv_mu);
	int p = srv_port;
	pthread_mutex_unlock(&srv_mu);
	return p;
}

void lt_metrics_stop(void)
{
	pthread_mutex_lock(&srv_mu);
	struct lws_context *ctx = srv_ctx;
	if (ctx) {
		atomic_store(&srv_stop, 1);
		lws_cancel_service(ctx);
		pthread_join(srv_thread, NULL);
		lws_context_destroy(ctx);
		srv_ctx = NULL;
		srv_port = 0;
	}
	pthread_mutex_unlock(&srv_mu);
}
