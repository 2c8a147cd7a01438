/* SPDX-License-Identifier: MIT */
/*
 * bus: the consumer end of the NNG pipeline (see bus.h): a pull socket for
 * batches, a pub socket for acks, and the ack URL convention shared with
 * delivery.c.
 */
#include "common/bus.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pubsub0/pub.h>

#include "common/buf.h"
#include "common/wire.h"

/* Batches a pull socket buffers before NNG stops reading from fetchers (the
 * rest wait in the fetchers' windows). It bounds how many batches a consumer
 * can take in one go: the processor applies everything queued in one script
 * call per room, so with quiet rooms (a record or two per batch) this is what
 * lets it catch up when Redis is slow; at 32 a busy machine capped it below
 * 1000 batches/s. Typical batches are a few kB; at most 256 of them wait. */
#define PULL_RECVBUF 256
/* Acks a pub socket queues per subscriber; pub drops what does not fit and a
 * dropped ack stalls a fetcher's window until its ack timeout, so be roomy
 * (an ack is ~100 bytes). */
#define PUB_SENDBUF 4096
/* Pub/sub filters at the subscriber: every fetcher receives every ack message
 * of every consumer and drops the ones for other sources. One message per
 * batch made that quadratic (20 rooms at 1000 msg/s in all: 1,600 ack
 * messages a second into each fetcher, 80% of its CPU in NNG's threads), so
 * acks are gathered into ack lists: the first ack after a quiet spell goes at
 * once, the rest within ACK_LINGER_MS, at most ACK_LIST_MAX to a message. */
#define ACK_LINGER_MS 10
#define ACK_LIST_MAX  1024

struct lt_bus_consumer {
	nng_socket pull;
	nng_socket pub;
	nng_aio *aio;
	uint8_t kind;
	bool pull_open, pub_open;
	_Atomic uint64_t received, received_bytes, acks_sent, ack_errors, ack_messages;
	/* the ack list being gathered, under ack_mu; the flusher thread
	 * publishes it ACK_LINGER_MS after the previous list */
	pthread_mutex_t ack_mu;
	pthread_cond_t ack_cv; /* acks gathered, or stopping */
	struct lt_buf acks;
	uint32_t n_acks;
	int64_t last_publish_ms;
	pthread_t flusher;
	bool flusher_started, stopping, sync_ready;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Publish the gathered acks as one message: topic "\0" (no source starts
 * with a NUL) then the ack list. Called with ack_mu held. */
static void acks_publish(struct lt_bus_consumer *c)
{
	if (c->n_acks == 0)
		return;
	nng_msg *m = NULL;
	uint32_t n = c->n_acks;
	c->last_publish_ms = mono_ms();
	if (c->acks.err || nng_msg_alloc(&m, 0) != 0 || nng_msg_append(m, "", 1) != 0 ||
	    nng_msg_append(m, c->acks.data, c->acks.len) != 0) {
		if (m)
			nng_msg_free(m);
		atomic_fetch_add(&c->ack_errors, n);
	} else {
		/* counted before the send: a subscriber may read the list before
		 * nng_sendmsg returns, and the stats must not lag what it saw */
		atomic_fetch_add(&c->acks_sent, n);
		atomic_fetch_add(&c->ack_messages, 1);
		if (nng_sendmsg(c->pub, m, NNG_FLAG_NONBLOCK) != 0) {
			nng_msg_free(m);
			atomic_fetch_sub(&c->acks_sent, n);
			atomic_fetch_sub(&c->ack_messages, 1);
			atomic_fetch_add(&c->ack_errors, n);
		}
	}
	c->n_acks = 0;
	lt_wire_acks_begin(&c->acks, c->kind);
}

/* The flusher: sleeps while no ack waits; when some do, publishes them
 * ACK_LINGER_MS after the previous list. Its own thread on a condition
 * variable rather than a periodic NNG sleep aio: NNG's timer thread spins
 * up to a millisecond around each expiry, and a 10 ms tick made an idle
 * processor or persister use 5% of a core. */
static void *flusher_main(void *arg)
{
	struct lt_bus_consumer *c = arg;
	pthread_mutex_lock(&c->ack_mu);
	while (!c->stopping) {
		if (c->n_acks == 0) {
			pthread_cond_wait(&c->ack_cv, &c->ack_mu);
			continue;
		}
		int64_t due = c->last_publish_ms + ACK_LINGER_MS;
		if (mono_ms() >= due) {
			acks_publish(c);
			continue;
		}
		struct timespec ts = {(time_t)(due / 1000), (long)(due % 1000) * 1000000};
		pthread_cond_timedwait(&c->ack_cv, &c->ack_mu, &ts);
	}
	pthread_mutex_unlock(&c->ack_mu);
	return NULL;
}

/* An IPC socket file left by a killed process makes listen fail with
 * EADDRINUSE; if nobody answers on it, remove it so we can bind. */
static void remove_stale_ipc(const char *url)
{
	if (strncmp(url, "ipc://", 6) != 0)
		return;
	const char *path = url + 6;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno == ECONNREFUSED)
		unlink(path);
	close(fd);
}

static int listen_url(nng_socket s, const char *url)
{
	int rv = nng_listen(s, url, NULL, 0);
	if (rv == NNG_EADDRINUSE) {
		remove_stale_ipc(url);
		rv = nng_listen(s, url, NULL, 0);
	}
	return rv;
}

int lt_bus_consumer_open(const char *listen, const char *ack_url, uint8_t consumer_kind,
			 struct lt_bus_consumer **out, struct lt_error *e)
{
	char *ack_owned = NULL;
	int rv, rc;
	if (!listen || !*listen || !out)
		return lt_error_set(e, LT_EINVAL, "bus: no listen URL");
	if (consumer_kind != LT_WIRE_CONSUMER_PROCESSOR && consumer_kind != LT_WIRE_CONSUMER_PERSISTER)
		return lt_error_set(e, LT_EINVAL, "bus: bad consumer kind %u", consumer_kind);
	if (!ack_url) {
		ack_owned = lt_bus_ack_url(listen);
		if (!ack_owned)
			return lt_error_set(e, LT_EINVAL, "bus: cannot derive an ack URL from %s", listen);
		ack_url = ack_owned;
	}
	struct lt_bus_consumer *c = calloc(1, sizeof(*c));
	if (!c) {
		rc = lt_error_set(e, LT_ENOMEM, "bus: out of memory");
		goto fail;
	}
	c->kind = consumer_kind;
	pthread_mutex_init(&c->ack_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* mono_ms's clock */
	pthread_cond_init(&c->ack_cv, &ca);
	pthread_condattr_destroy(&ca);
	c->sync_ready = true;
	lt_buf_init(&c->acks, 0);
	if (lt_wire_acks_begin(&c->acks, c->kind) != LT_OK) {
		rc = lt_error_set(e, LT_ENOMEM, "bus: out of memory");
		goto fail;
	}
	if ((rv = nng_pull0_open(&c->pull)) != 0) {
		rc = lt_error_set(e, LT_ENOMEM, "bus: pull socket: %s", nng_strerror(rv));
		goto fail;
	}
	c->pull_open = true;
	nng_socket_set_int(c->pull, NNG_OPT_RECVBUF, PULL_RECVBUF);
	nng_socket_set_size(c->pull, NNG_OPT_RECVMAXSZ, LT_WIRE_BATCH_MAX_BYTES + 1024);
	if ((rv = listen_url(c->pull, listen)) != 0) {
		rc = lt_error_set(e, rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP ? LT_EINVAL : LT_ECONN,
				  "bus: cannot listen on %s: %s", listen, nng_strerror(rv));
		goto fail;
	}
	if ((rv = nng_pub0_open(&c->pub)) != 0) {
		rc = lt_error_set(e, LT_ENOMEM, "bus: pub socket: %s", nng_strerror(rv));
		goto fail;
	}
	c->pub_open = true;
	nng_socket_set_int(c->pub, NNG_OPT_SENDBUF, PUB_SENDBUF);
	if ((rv = listen_url(c->pub, ack_url)) != 0) {
		rc = lt_error_set(e, rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP ? LT_EINVAL : LT_ECONN,
				  "bus: cannot listen on %s: %s", ack_url, nng_strerror(rv));
		goto fail;
	}
	if ((rv = nng_aio_alloc(&c->aio, NULL, NULL)) != 0) {
		rc = lt_error_set(e, LT_ENOMEM, "bus: aio: %s", nng_strerror(rv));
		goto fail;
	}
	if ((rv = pthread_create(&c->flusher, NULL, flusher_main, c)) != 0) {
		rc = lt_error_set(e, LT_ENOMEM, "bus: cannot start the ack thread: %s", strerror(rv));
		goto fail;
	}
	c->flusher_started = true;
	free(ack_owned);
	*out = c;
	return LT_OK;
fail:
	free(ack_owned);
	lt_bus_consumer_close(c);
	return rc;
}

int lt_bus_consumer_recv(struct lt_bus_consumer *c, int timeout_ms, struct lt_bus_batch *out)
{
	nng_aio_set_timeout(c->aio, timeout_ms < 0 ? NNG_DURATION_INFINITE : (nng_duration)timeout_ms);
	nng_recv_aio(c->pull, c->aio);
	nng_aio_wait(c->aio);
	int rv = nng_aio_result(c->aio);
	if (rv == NNG_ETIMEDOUT || rv == NNG_EAGAIN)
		return LT_ETIMEDOUT;
	if (rv != 0)
		return LT_ECLOSED;
	nng_msg *m = nng_aio_get_msg(c->aio);
	nng_aio_set_msg(c->aio, NULL);
	out->msg_ = m;
	out->data = nng_msg_body(m);
	out->len = nng_msg_len(m);
	atomic_fetch_add(&c->received, 1);
	atomic_fetch_add(&c->received_bytes, out->len);
	return LT_OK;
}

void lt_bus_batch_free(struct lt_bus_batch *b)
{
	if (!b || !b->msg_)
		return;
	nng_msg_free(b->msg_);
	b->msg_ = NULL;
	b->data = NULL;
	b->len = 0;
}

int lt_bus_consumer_ack(struct lt_bus_consumer *c, const char *source_id, uint64_t seq)
{
	size_t sl = source_id ? strlen(source_id) : 0;
	if (sl == 0 || sl > LT_WIRE_SOURCE_MAX) {
		atomic_fetch_add(&c->ack_errors, 1);
		return LT_EINVAL;
	}
	pthread_mutex_lock(&c->ack_mu);
	int rc = lt_wire_acks_add(&c->acks, source_id, sl, seq);
	if (rc == LT_OK) {
		c->n_acks++;
		/* After a quiet spell at once; in a stream, the flusher's job. */
		if (c->n_acks >= ACK_LIST_MAX || mono_ms() - c->last_publish_ms >= ACK_LINGER_MS)
			acks_publish(c);
		else if (c->n_acks == 1)
			pthread_cond_signal(&c->ack_cv);
	} else {
		atomic_fetch_add(&c->ack_errors, 1);
		rc = rc == LT_ENOMEM ? LT_ENOMEM : LT_EIO;
		/* a sticky buffer error: start a fresh list */
		if (c->acks.err) {
			c->n_acks = 0;
			lt_buf_free(&c->acks);
			lt_buf_init(&c->acks, 0);
			lt_wire_acks_begin(&c->acks, c->kind);
		}
	}
	pthread_mutex_unlock(&c->ack_mu);
	return rc;
}

void lt_bus_consumer_flush_acks(struct lt_bus_consumer *c)
{
	pthread_mutex_lock(&c->ack_mu);
	acks_publish(c);
	pthread_mutex_unlock(&c->ack_mu);
}

void lt_bus_consumer_stats(struct lt_bus_consumer *c, struct lt_bus_consumer_stats *out)
{
	out->received = atomic_load(&c->received);
	out->received_bytes = atomic_load(&c->received_bytes);
	out->acks_sent = atomic_load(&c->acks_sent);
	out->ack_errors = atomic_load(&c->ack_errors);
	out->ack_messages = atomic_load(&c->ack_messages);
}

void lt_bus_consumer_close(struct lt_bus_consumer *c)
{
	if (!c)
		return;
	if (c->aio)
		nng_aio_stop(c->aio);
	if (c->flusher_started) {
		pthread_mutex_lock(&c->ack_mu);
		c->stopping = true;
		pthread_cond_signal(&c->ack_cv);
		pthread_mutex_unlock(&c->ack_mu);
		pthread_join(c->flusher, NULL);
	}
	if (c->pub_open) {
		pthread_mutex_lock(&c->ack_mu);
		acks_publish(c); /* what waits for the flusher */
		pthread_mutex_unlock(&c->ack_mu);
	}
	if (c->pull_open)
		nng_close(c->pull);
	if (c->pub_open)
		nng_close(c->pub);
	if (c->aio) {
		nng_msg *m = nng_aio_get_msg(c->aio);
		if (m)
			nng_msg_free(m);
		nng_aio_free(c->aio);
	}
	lt_buf_free(&c->acks);
	if (c->sync_ready) {
		pthread_mutex_destroy(&c->ack_mu);
		pthread_cond_destroy(&c->ack_cv);
	}
	free(c);
}

char *lt_bus_ack_url(const char *url)
{
	if (!url)
		return NULL;
	size_t n = strlen(url);
	char *r = malloc(n + 16);
	if (!r)
		return NULL;
	if (strncmp(url, "ipc://", 6) == 0 || strncmp(url, "inproc://", 9) == 0) {
		const char *start = url + (url[0] == 'i' && url[1] == 'p' ? 6 : 9);
		const char *slash = strrchr(start, '/');
		const char *dot = strrchr(url, '.');
		if (n == (size_t)(start - url))
			goto bad;
		/* Keep an extension of the last path element: p.ipc -> p-ack.ipc. */
		if (dot && dot > start && (!slash || dot > slash + 1) && dot[-1] != '/') {
			size_t k = (size_t)(dot - url);
			snprintf(r, n + 16, "%.*s-ack%s", (int)k, url, dot);
		} else {
			snprintf(r, n + 16, "%s-ack", url);
		}
		return r;
	}
	if (strncmp(url, "tcp://", 6) == 0 || strncmp(url, "tcp4://", 7) == 0 ||
	    strncmp(url, "tcp6://", 7) == 0) {
		const char *colon = strrchr(url, ':');
		if (!colon || colon < url + 6 || colon[1] == '\0')
			goto bad;
		char *end;
		errno = 0;
		unsigned long port = strtoul(colon + 1, &end, 10);
		if (errno || *end != '\0' || port == 0 || port >= 65535)
			goto bad;
		snprintf(r, n + 16, "%.*s:%lu", (int)(colon - url), url, port + 1);
		return r;
	}
bad:
	free(r);
	return NULL;
}
