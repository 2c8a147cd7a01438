/* SPDX-License-Identifier: MIT */
/*
 * platform: what the fetcher needs to know about one live-stream platform,
 * as one `const struct lt_platform_ops` per platform (platform_bilibili.c,
 * later platform_douyin.c, platform_kook.c). Adding a platform means one file,
 * one line in the registry (platform.c) and a test.
 *
 * The ops are pure: they never open a socket, read a file or the wall clock
 * (time comes from conf->clock or from the caller). The fetcher's event loop
 * (fetcher.c) does the I/O and drives one connection like this:
 *
 *   c = ops->create(&conf)
 *   loop:
 *     ops->begin(c, attempt)                 new connection attempt
 *     while ops->http_next(c, &req) == LT_OK:
 *         do the HTTP request, then ops->http_done(c, &resp)
 *     ops->ws_target(c, &target)             open target.url with target.headers
 *     on open:    ops->on_open(c, &io)       sends the auth frame(s) via io.send
 *     on frame:   ops->on_frame(c, bytes, len, recv_ms, &io, &ev)
 *     every ops->heartbeat_ms(c): ops->heartbeat(c, &io)
 *     on close / error / ev & LT_PEV_RECONNECT: back off, attempt++, loop
 *   ops->destroy(c)
 *
 * --replay drives only create, on_frame and destroy, with recv_ms from the
 * capture file, so a replay decodes exactly like the live connection did and
 * yields the same synthetic message ids every time.
 *
 * Ownership: every string an op hands out (requests, targets, messages)
 * points into the connection state or into the frame being decoded and is
 * valid until the next op call on that connection (messages: only during the
 * emit callback). Callers copy what they keep.
 */
#ifndef LT_PLATFORM_H
#define LT_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/msg.h"

/* Settings for one connection; create() copies every string. NULL strings
 * mean "the platform's real default". */
struct lt_platform_conf {
	const char *room;       /* required: the room id as the operator gave it */
	const char *api_base;   /* main HTTP base, e.g. "https://api.live.bilibili.com" */
	const char *aux_base;   /* second HTTP base (bilibili: api.bilibili.com for nav
	                         * and buvid; douyin: web_base); NULL = api_base when
	                         * api_base is given (one emulator), else the real one */
	const char *ws_url;     /* WebSocket URL override; skips the token's host list */
	const char *cookie;     /* secret login cookie ("SESSDATA=…; buvid3=…"); never logged */
	const char *token;      /* secret bot token (kook); NULL otherwise */
	const char *user_agent; /* NULL = a built-in desktop Chrome UA */
	int64_t uid;            /* logged-in user id (bilibili: cookie owner's mid); 0 = anonymous */
	bool skip_bootstrap;    /* no HTTP at all: connect to ws_url with an empty key
	                         * (an emulator that needs no token) */
	const struct lt_clock *clock; /* NULL = lt_clock_real; used for WBI wts and key expiry */
	const char *signer;     /* douyin: "native" (or NULL), else a signer command */
};

/* One HTTP request of the bootstrap. */
struct lt_http_req {
	const char *method;  /* "GET" or "POST" */
	const char *url;     /* absolute URL */
	const char *headers; /* "Name: value\r\n" lines (User-Agent, Cookie, Referer…), maybe "" */
	const char *body;    /* NULL for GET */
	size_t body_len;
};

/* The answer to it. status 0 means the request failed at the transport
 * (connect refused, TLS, timeout). */
struct lt_http_resp {
	int status;
	const char *set_cookie; /* every Set-Cookie header value, joined by "\n"; NULL if none */
	const char *body;       /* not necessarily NUL-terminated */
	size_t body_len;
};

/* Where to open the WebSocket. */
struct lt_ws_target {
	const char *url;     /* "wss://host:port/path" or "ws://…" */
	const char *headers; /* "Name: value\r\n" lines to add to the upgrade, maybe "" */
	const char *origin;  /* Origin header value, or NULL */
	const char *protocol; /* Sec-WebSocket-Protocol, or NULL */
};

/* Callbacks the driver gives to on_open, on_frame and heartbeat. */
struct lt_platform_io {
	/* One decoded message; *m and its strings are valid only during the call. */
	void (*emit)(void *ud, const struct lt_msg *m);
	/* Queue one frame to send (copied by the driver); text selects a text frame. */
	void (*send)(void *ud, const void *p, size_t n, bool text);
	void *ud;
};

/* Events on_frame reports in *ev (a bit set). */
#define LT_PEV_AUTHED    0x01u /* the server accepted our auth: the room is running */
#define LT_PEV_HEARTBEAT 0x02u /* a heartbeat reply arrived */
#define LT_PEV_CLOSE     0x04u /* the server ended the session for good (e.g. room banned) */
#define LT_PEV_RECONNECT 0x08u /* drop this connection and reconnect (with a fresh bootstrap) */
#define LT_PEV_LIVE_END  0x10u /* the stream went offline (messages may still follow) */

/* Counters, monotonic over the life of the connection state. */
struct lt_platform_stats {
	uint64_t frames;       /* frames given to on_frame */
	uint64_t bad_frames;   /* frames with at least one malformed part, counted and skipped */
	uint64_t packets;      /* protocol packets decoded (bilibili: incl. nested ones) */
	uint64_t messages;     /* messages emitted */
	uint64_t bad_messages; /* message bodies that did not parse / map, skipped */
	uint64_t bytes_in;     /* frame bytes received */
	uint64_t bytes_inflated; /* bytes produced by decompression */
	uint64_t heartbeats;   /* heartbeat replies */
	uint64_t http_errors;  /* bootstrap responses that failed */
};

struct lt_platform_conn;

struct lt_platform_ops {
	const char *name;   /* "bilibili" */
	int platform;       /* enum lt_platform */

	/* New connection state from conf (strings copied). Returns LT_OK and
	 * *out (owned by the caller, freed by destroy), LT_EINVAL when conf->room
	 * is missing or malformed, LT_ENOMEM. */
	int (*create)(const struct lt_platform_conf *conf, struct lt_platform_conn **out);
	/* Free c; accepts NULL. */
	void (*destroy)(struct lt_platform_conn *c);

	/* Start connection attempt number attempt (0 first, counting up over
	 * failures, reset to 0 by the driver after a connection that authed).
	 * Decides what the bootstrap must fetch again (bilibili: the token every
	 * few failures, the next host of the host list otherwise). */
	int (*begin)(struct lt_platform_conn *c, int attempt);
	/* The next bootstrap request: LT_OK with *req filled (strings owned by c,
	 * valid until the next call), or LT_EEOF when the bootstrap is complete
	 * and ws_target can be called. */
	int (*http_next)(struct lt_platform_conn *c, struct lt_http_req *req);
	/* Consume the response to the last request. Returns LT_OK to go on,
	 * LT_EAGAIN when the step failed but a retry after backoff may work
	 * (HTTP 412/5xx, -352 risk control: the WBI keys are dropped),
	 * LT_ENOTFOUND for a room that does not exist, LT_EPROTO for a body out
	 * of shape. Never fatal for the process. */
	int (*http_done)(struct lt_platform_conn *c, const struct lt_http_resp *resp);

	/* Where to connect now. LT_OK with *t filled (owned by c). */
	int (*ws_target)(struct lt_platform_conn *c, struct lt_ws_target *t);
	/* The socket is open: send the auth frame(s) via io->send. */
	int (*on_open)(struct lt_platform_conn *c, const struct lt_platform_io *io);
	/* Decode one received frame. Messages go to io->emit (each once); replies
	 * the protocol requires (a heartbeat after auth, acks) go to io->send;
	 * what happened goes to *ev. recv_ms is the receive time (ms since the
	 * epoch), used for messages that carry no time of their own. Returns
	 * LT_OK, LT_EPROTO for a frame (or part of one) that was malformed: it is
	 * counted in bad_frames, what could be decoded was emitted and the
	 * connection can go on; LT_EAUTH when the server refused our auth (ev has
	 * LT_PEV_RECONNECT). */
	int (*on_frame)(struct lt_platform_conn *c, const uint8_t *p, size_t n, int64_t recv_ms,
	                const struct lt_platform_io *io, unsigned *ev);
	/* Milliseconds between heartbeats (bilibili: 30000). */
	int (*heartbeat_ms)(const struct lt_platform_conn *c);
	/* Send one heartbeat frame via io->send. */
	int (*heartbeat)(struct lt_platform_conn *c, const struct lt_platform_io *io);

	/* The room id messages carry (the resolved long id once known, else the
	 * configured one); owned by c. */
	const char *(*room)(const struct lt_platform_conn *c);
	void (*stats)(const struct lt_platform_conn *c, struct lt_platform_stats *out);

	/* Optional, for platforms whose sessions can be resumed (kook); NULL
	 * elsewhere. state_save writes the connection's resume state as one
	 * short text line into buf (cap bytes) and returns its length (0: nothing
	 * to keep); the driver keeps it in a file under fetcher.spool_dir when it
	 * changes. state_load hands back what an earlier process saved, before
	 * the first begin: LT_OK, or LT_EPROTO for text it does not accept (the
	 * connection then starts afresh). */
	size_t (*state_save)(const struct lt_platform_conn *c, char *buf, size_t cap);
	int (*state_load)(struct lt_platform_conn *c, const char *p, size_t n);
};

/* The platforms (one line each in platform.c's registry). */
extern const struct lt_platform_ops lt_platform_bilibili;
extern const struct lt_platform_ops lt_platform_douyin;
extern const struct lt_platform_ops lt_platform_kook;

/* The ops of the platform called name ("bilibili"), or NULL. Static data. */
const struct lt_platform_ops *lt_platform_find(const char *name);

/* The registered platform names, NULL-terminated, for --help. */
const char *const *lt_platform_names(void);

/* The value of cookie name in cookies ("a=b; c=d", or Set-Cookie values
 * joined by "\n"), copied NUL-terminated into out[cap]. With out NULL, only
 * whether a non-empty value is there. Returns false when it is absent,
 * empty or does not fit. Shared by the platforms' bootstraps. */
bool lt_platform_cookie_get(const char *cookies, const char *name, char *out, size_t cap);

#endif
