/* SPDX-License-Identifier: MIT */
/*
 * feed: the live WebSocket feed, /api/v1/rooms/{platform}/{room}/live.
 *
 * One subscriber thread holds one Redis connection in PSUBSCRIBE live:{*}
 * (the room channels; the pattern matches "live:{platform:room}" only, not
 * the room's sub-channels) and hands each message to the lws thread through
 * a bounded inbox (8192 messages, 16 MiB), waking it with the wake callback. The lws thread
 * (lt_feed_dispatch) copies a reference into the bounded queue of every
 * client watching that room; a slow client whose queue is full (api.ws_queue
 * messages or 4 MiB) loses its oldest messages, counted per client and in livetap_api_ws_dropped_total,
 * so memory stays bounded whatever the clients do. The subscriber
 * reconnects with a growing, jittered delay when Redis goes away.
 */
#ifndef LT_FEED_H
#define LT_FEED_H

#include <stddef.h>
#include <stdint.h>

struct lt_feed;
struct lt_feed_client;

/* Start the subscriber. queue_max is the per-client queue length. The feed
 * keeps a copy of redis_url. */
int lt_feed_start(const char *redis_url, int timeout_ms, int queue_max, void (*wake)(void *), void *ctx,
		  struct lt_feed **out);
/* Stop the subscriber thread; clients may still detach afterwards. */
void lt_feed_stop(struct lt_feed *f);
/* Stop if needed and free everything, detaching remaining clients. */
void lt_feed_free(struct lt_feed *f);

/* lws thread only. Attach wsi to room ("platform:room"); NULL on no memory. */
struct lt_feed_client *lt_feed_attach(struct lt_feed *f, void *wsi, const char *room);
/* Detach and free c (from LWS_CALLBACK_CLOSED; NULL is fine). */
void lt_feed_detach(struct lt_feed *f, struct lt_feed_client *c);
/* Move the inbox into client queues and ask lws for writable callbacks. */
void lt_feed_dispatch(struct lt_feed *f);
/* Write c's oldest queued message (from SERVER_WRITEABLE). Returns 0, or -1
 * when the write failed and the connection should close. */
int lt_feed_write(struct lt_feed_client *c);
/* Messages dropped for c so far. */
uint64_t lt_feed_drops(const struct lt_feed_client *c);

#endif
