/* SPDX-License-Identifier: MIT */
/*
 * feed: the Redis subscriber thread and the per-client bounded queues of
 * the live WebSocket feed (see feed.h).
 */
#include "api/feed.h"

#include <errno.h>
#include <libwebsockets.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/metrics.h"
#include "common/redisconn.h"

#define FEED_INBOX	  8192
#define FEED_ROOM	  96
#define FEED_MSG_MAX	  (256 * 1024)
#define FEED_INBOX_BYTES  (16 * 1024 * 1024) /* waiting for the lws thread */
#define FEED_CLIENT_BYTES (4 * 1024 * 1024)  /* queued for one client */

struct feed_msg {
	int refs; /* lws thread only, once out of the inbox */
	size_t len;
	char room[FEED_ROOM];
	unsigned char buf[]; /* LWS_PRE + len */
};

struct lt_feed_client {
	struct lws *wsi;
	char room[FEED_ROOM];
	struct feed_msg **q;
	int head, count;
	size_t bytes; /* payload bytes queued */
	uint64_t drops;
	struct lt_feed_client *next;
	struct lt_feed *feed;
};

struct lt_feed {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	bool joined;
	struct feed_msg *inbox[FEED_INBOX];
	int ihead, icount;
	size_t ibytes;
	char *url;
	int timeout_ms;
	int queue_max;
	void (*wake)(void *);
	void *ctx;
	struct lt_feed_client *clients; /* lws thread only */
	struct lt_series *m_in, *m_drop, *m_inbox_drop, *m_clients;
};

static void msg_unref(struct feed_msg *m)
{
	if (m && --m->refs <= 0)
		free(m);
}

/* Subscriber thread: "live:{platform:room}" -> the inbox. */
static void take_reply(struct lt_feed *f, redisReply *r)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 || strcmp(r->element[0]->str, "pmessage"))
		return;
	redisReply *ch = r->element[2], *pl = r->element[3];
	if (ch->len < 8 || ch->len - 7 >= FEED_ROOM || pl->len > FEED_MSG_MAX ||
	    memcmp(ch->str, "live:{", 6) || ch->str[ch->len - 1] != '}')
		return;
	struct feed_msg *m = malloc(sizeof *m + LWS_PRE + pl->len);
	if (!m)
		return;
	m->refs = 1;
	m->len = pl->len;
	memcpy(m->room, ch->str + 6, ch->len - 7);
	m->room[ch->len - 7] = '\0';
	memcpy(m->buf + LWS_PRE, pl->str, pl->len);
	pthread_mutex_lock(&f->mu);
	bool kept = f->icount < FEED_INBOX && f->ibytes + m->len <= FEED_INBOX_BYTES;
	if (kept) {
		f->inbox[(f->ihead + f->icount) % FEED_INBOX] = m;
		f->icount++;
		f->ibytes += m->len;
	}
	pthread_mutex_unlock(&f->mu);
	if (!kept) {
		free(m);
		lt_metrics_add(f->m_inbox_drop, 1);
		return;
	}
	lt_metrics_add(f->m_in, 1);
	f->wake(f->ctx);
}

/* Wait up to ms or until stop; true if stopping. */
static bool wait_stop(struct lt_feed *f, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&f->mu);
	if (!f->stop)
		pthread_cond_timedwait(&f->cv, &f->mu, &ts);
	bool s = f->stop;
	pthread_mutex_unlock(&f->mu);
	return s;
}

static bool stopping(struct lt_feed *f)
{
	pthread_mutex_lock(&f->mu);
	bool s = f->stop;
	pthread_mutex_unlock(&f->mu);
	return s;
}

/* One subscribed session: returns when the connection fails or on stop. */
static void session(struct lt_feed *f, redisContext *c)
{
	if (redisAppendCommand(c, "PSUBSCRIBE live:{*}") != REDIS_OK)
		return;
	int done = 0;
	while (!done)
		if (redisBufferWrite(c, &done) != REDIS_OK)
			return;
	while (!stopping(f)) {
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		int n = poll(&pfd, 1, 250);
		if (n < 0 && errno != EINTR)
			return;
		if (n <= 0)
			continue;
		if (redisBufferRead(c) != REDIS_OK)
			return;
		for (;;) {
			redisReply *r = NULL;
			if (redisGetReplyFromReader(c, (void **)&r) != REDIS_OK)
				return;
			if (!r)
				break;
			take_reply(f, r);
			freeReplyObject(r);
		}
	}
}

static void *feed_main(void *arg)
{
	struct lt_feed *f = arg;
	int delay = 100;
	while (!stopping(f)) {
		redisContext *c = NULL;
		if (lt_redis_connect(f->url, f->timeout_ms, &c, NULL) == LT_OK) {
			delay = 100;
			session(f, c);
			redisFree(c);
		}
		/* Back off before reconnecting: 100 ms doubling to 5 s, +-20%. */
		int jitter = delay / 5 > 0 ? (int)(random() % (delay / 5 * 2 + 1)) - delay / 5 : 0;
		if (wait_stop(f, delay + jitter))
			break;
		delay = delay * 2 > 5000 ? 5000 : delay * 2;
	}
	return NULL;
}

/* See feed.h. */
int lt_feed_start(const char *redis_url, int timeout_ms, int queue_max, void (*wake)(void *), void *ctx,
		  struct lt_feed **out)
{
	struct lt_feed *f = calloc(1, sizeof *f);
	if (!f)
		return LT_ENOMEM;
	f->url = strdup(redis_url ? redis_url : "");
	if (!f->url) {
		free(f);
		return LT_ENOMEM;
	}
	f->timeout_ms = timeout_ms;
	f->queue_max = queue_max < 1 ? 1 : queue_max;
	f->wake = wake;
	f->ctx = ctx;
	f->m_in =
	    lt_metrics_series(lt_metrics_counter("livetap_api_ws_messages_total",
						 "Channel messages received for the live feed.", NULL, NULL),
			      NULL, NULL);
	f->m_drop =
	    lt_metrics_series(lt_metrics_counter("livetap_api_ws_dropped_total",
						 "Live-feed messages dropped for slow clients.", NULL, NULL),
			      NULL, NULL);
	f->m_inbox_drop = lt_metrics_series(
	    lt_metrics_counter("livetap_api_ws_inbox_dropped_total",
			       "Live-feed messages dropped before dispatch (event loop behind).", NULL, NULL),
	    NULL, NULL);
	f->m_clients = lt_metrics_series(
	    lt_metrics_gauge("livetap_api_ws_clients", "Connected live-feed clients.", NULL, NULL), NULL,
	    NULL);
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	if (pthread_create(&f->thread, NULL, feed_main, f) != 0) {
		pthread_mutex_destroy(&f->mu);
		pthread_cond_destroy(&f->cv);
		free(f->url);
		free(f);
		return LT_ENOMEM;
	}
	*out = f;
	return LT_OK;
}

/* See feed.h. */
void lt_feed_stop(struct lt_feed *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->mu);
	f->stop = true;
	pthread_cond_broadcast(&f->cv);
	pthread_mutex_unlock(&f->mu);
	if (!f->joined)
		pthread_join(f->thread, NULL);
	f->joined = true;
}

/* See feed.h. */
void lt_feed_free(struct lt_feed *f)
{
	if (!f)
		return;
	lt_feed_stop(f);
	while (f->icount > 0) {
		free(f->inbox[f->ihead]);
		f->ihead = (f->ihead + 1) % FEED_INBOX;
		f->icount--;
	}
	while (f->clients)
		lt_feed_detach(f, f->clients);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	free(f->url);
	free(f);
}

struct lt_feed_client *lt_feed_attach(struct lt_feed *f, void *wsi, const char *room)
{
	struct lt_feed_client *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->q = calloc((size_t)f->queue_max, sizeof *c->q);
	if (!c->q) {
		free(c);
		return NULL;
	}
	c->wsi = wsi;
	c->feed = f;
	snprintf(c->room, sizeof c->room, "%s", room);
	c->next = f->clients;
	f->clients = c;
	lt_metrics_gauge_add(f->m_clients, 1);
	return c;
}

void lt_feed_detach(struct lt_feed *f, struct lt_feed_client *c)
{
	if (!c)
		return;
	for (struct lt_feed_client **pp = &f->clients; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	while (c->count > 0) {
		msg_unref(c->q[c->head]);
		c->head = (c->head + 1) % f->queue_max;
		c->count--;
	}
	lt_metrics_gauge_add(f->m_clients, -1);
	free(c->q);
	free(c);
}

/* See feed.h. */
void lt_feed_dispatch(struct lt_feed *f)
{
	struct feed_msg *batch[256];
	for (;;) {
		int n = 0;
		pthread_mutex_lock(&f->mu);
		while (f->icount > 0 && n < 256) {
			batch[n] = f->inbox[f->ihead];
			f->ibytes -= batch[n]->len;
			n++;
			f->ihead = (f->ihead + 1) % FEED_INBOX;
			f->icount--;
		}
		pthread_mutex_unlock(&f->mu);
		if (n == 0)
			return;
		for (int i = 0; i < n; i++) {
			struct feed_msg *m = batch[i];
			for (struct lt_feed_client *c = f->clients; c; c = c->next) {
				if (strcmp(c->room, m->room))
					continue;
				/* Full (by count or bytes): the oldest go, the newest stays. */
				while (c->count > 0 &&
				       (c->count == f->queue_max || c->bytes + m->len > FEED_CLIENT_BYTES)) {
					c->bytes -= c->q[c->head]->len;
					msg_unref(c->q[c->head]);
					c->head = (c->head + 1) % f->queue_max;
					c->count--;
					c->drops++;
					lt_metrics_add(f->m_drop, 1);
				}
				m->refs++;
				c->q[(c->head + c->count) % f->queue_max] = m;
				c->count++;
				c->bytes += m->len;
				lws_callback_on_writable(c->wsi);
			}
			msg_unref(m);
		}
	}
}

/* See feed.h. */
int lt_feed_write(struct lt_feed_client *c)
{
	if (c->count == 0)
		return 0;
	struct lt_feed *f = c->feed;
	struct feed_msg *m = c->q[c->head];
	int w = lws_write(c->wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
	c->head = (c->head + 1) % f->queue_max;
	c->count--;
	c->bytes -= m->len;
	msg_unref(m);
	if (w < 0)
		return -1;
	if (c->count > 0)
		lws_callback_on_writable(c->wsi);
	return 0;
}

uint64_t lt_feed_drops(const struct lt_feed_client *c)
{
	return c ? c->drops : 0;
}
