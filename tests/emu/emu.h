/* SPDX-License-Identifier: MIT */
/*
 * emu: the framework of livetap-emu, the platform emulator on localhost.
 *
 * The framework owns everything that is the same for every platform: the
 * libwebsockets server (one vhost, HTTP and WebSocket on one port), the
 * traffic source (a --script of normalized JSON lines or a deterministic
 * --generate'd stream), the clock that paces it (--rate), the fault switches
 * (--drop-every, --garbage, --stall-every) and the --sent-log. A platform is a
 * module: one `const struct emu_module` (emu_bilibili.c) that answers HTTP
 * requests, handles received WebSocket frames, renders normalized messages in
 * the platform's wire format and knows how to corrupt a frame. Adding Douyin or
 * KOOK is one file and one line in main.c.
 *
 * Threading: one thread, the lws event loop; every module hook runs on it and
 * must not block. Frames a module queues with emu_conn_send* are copied and
 * written in SERVER_WRITEABLE, in order.
 */
#ifndef LT_EMU_H
#define LT_EMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/msg.h"

struct emu;
struct emu_conn;

/* Options from the command line (main.c). */
struct emu_opts {
	const char *platform;    /* module name */
	const char *listen_host; /* "127.0.0.1" */
	int port;                /* 0 = any free port (printed on stdout) */
	const char *script;      /* JSON Lines of normalized messages, or NULL */
	bool loop;               /* replay the script forever */
	bool generate;           /* generated chat instead of a script */
	double rate;             /* messages per second (0 = 10) */
	int duration_s;          /* generate: stop after S s and send live_end (0 = forever) */
	uint64_t seed;           /* generate and faults: PRNG seed */
	int drop_every_s;        /* close every connection every S s (0 = never) */
	double garbage;          /* fraction of data frames preceded by a corrupted frame */
	int stall_every_s;       /* stop writing every S s ... */
	int stall_for_s;         /* ... for this long (default 10) */
	const char *sent_log;    /* one line per message written to a socket */
	bool mix_versions;       /* bilibili: vary the packet version per frame */
	bool no_mask;            /* bilibili: never mask anonymous users */
	int wbi_rotate_s;        /* bilibili: new WBI keys every S s (0 = fixed) */
	int hb_timeout_s;        /* close a connection silent this long (default 60) */
	int batch_max;           /* messages per data frame at most (default 16) */
	const char *tls_cert;    /* PEM certificate: serve HTTPS/WSS (NULL: plain) */
	const char *tls_key;     /* its PEM private key */
};

/* One HTTP request as the module sees it. Strings are NUL-terminated and
 * valid during the call. */
struct emu_http_req {
	const char *path;   /* "/room/v1/Room/get_info" */
	const char *query;  /* raw query string after '?', "" if none */
	const char *cookie; /* the Cookie header, "" if none */
	const char *ua;     /* the User-Agent header, "" if none */
	const char *authorization; /* the Authorization header, "" if none (kook: "Bot TOKEN") */
};

/* The module's answer: status (200 if left 0), a body (JSON by default) and
 * optionally one Set-Cookie value. body is owned by the framework. */
struct emu_http_resp {
	int status;
	const char *content_type; /* NULL = application/json */
	char set_cookie[256];
	struct lt_buf body;
};

/* A platform module. Every hook is optional except http and ws_push. */
struct emu_module {
	const char *name;      /* "bilibili" */
	const char *ws_path;   /* the WebSocket path, e.g. "/sub" */
	size_t conn_size;      /* bytes of per-connection module state (zeroed) */
	/* Module state for e; LT_OK or an lt_err. */
	int (*init)(struct emu *e, void **mod);
	void (*fini)(void *mod);
	/* Answer an HTTP request; LT_ENOTFOUND means 404. */
	int (*http)(void *mod, const struct emu_http_req *rq, struct emu_http_resp *rs);
	/* A WebSocket connection opened (path is the request path with query). */
	void (*ws_open)(void *mod, struct emu_conn *c, const char *path);
	/* One complete frame received from the client. */
	void (*ws_rx)(void *mod, struct emu_conn *c, const uint8_t *p, size_t n);
	/* Render msgs[0..n) (all for c's room) as one or more frames on c, with
	 * emu_conn_send_msgs so that the sent-log sees them. */
	void (*ws_push)(void *mod, struct emu_conn *c, const struct lt_msg *msgs, size_t n);
	/* Queue one corrupted frame on c (--garbage). */
	void (*ws_garbage)(void *mod, struct emu_conn *c);
	/* The connection is gone; free what the module allocated for it. */
	void (*ws_close)(void *mod, struct emu_conn *c);
	/* Before the upgrade is answered: 0 lets the WebSocket open; anything else
	 * refuses it the way the platform's servers do, with HTTP 200 instead of
	 * 101 and the headers "handshake-status: <that number>" and
	 * "handshake-msg: <*msg>" (douyin: 415, DEVICE_BLOCKED). path is the
	 * request path, query its decoded arguments joined by '&'. */
	int (*ws_filter)(void *mod, const char *path, const char *query, const char **msg);
};

/* The options the emulator runs with. */
const struct emu_opts *emu_options(const struct emu *e);
/* A deterministic 32-bit random number (xorshift64*, seeded by --seed). */
uint32_t emu_rand(struct emu *e);
/* The wall clock in ms (messages carry it as their time). */
int64_t emu_now_ms(void);
/* The port the server listens on. */
int emu_port(const struct emu *e);
/* "wss" when the server speaks TLS (--tls-cert), else "ws": for URLs that a
 * module hands out, such as KOOK's gateway. */
const char *emu_ws_scheme(const struct emu *e);

/* The connection's module state (conn_size bytes, zeroed at open). */
void *emu_conn_data(struct emu_conn *c);
/* Queue a binary frame (copied). Frames go out in order. */
void emu_conn_send(struct emu_conn *c, const void *p, size_t n);
/* Queue a frame carrying msgs[0..n): when it has been written to the socket,
 * one sent-log line per message is written ("ROOM TYPE MSGID"). */
void emu_conn_send_msgs(struct emu_conn *c, const void *p, size_t n, const struct lt_msg *msgs, size_t nmsgs);
/* Subscribe c to the traffic of room (copied): from now on ws_push is called
 * for it. Also resets the silence timer (call on every heartbeat). */
void emu_conn_subscribe(struct emu_conn *c, const char *room);
/* Keep c alive for another hb_timeout_s. */
void emu_conn_touch(struct emu_conn *c);
/* Close c once its queued frames are written. */
void emu_conn_close(struct emu_conn *c);
/* Send a WebSocket PING (control frame) on c before its next queued frame. */
void emu_conn_ping(struct emu_conn *c);
/* PONGs c has received so far. */
uint64_t emu_conn_pongs(const struct emu_conn *c);
/* The query string of c's upgrade request (lws's decoded arguments joined
 * by '&') into buf (cap bytes, "" if none); only valid during ws_open.
 * Returns buf. */
const char *emu_conn_query(struct emu_conn *c, char *buf, size_t cap);
/* True while --stall-every holds every write back. */
bool emu_stalled(const struct emu *e);

/* The modules (one line each in main.c's list). */
extern const struct emu_module emu_bilibili;
extern const struct emu_module emu_douyin;
extern const struct emu_module emu_kook;

/* Run the emulator with module m until SIGINT/SIGTERM. Returns 0, or 1 after
 * printing a one-line reason (bad script, port in use). */
int emu_run(const struct emu_module *m, const struct emu_opts *o);

/* The generator: fill *m with the next plausible message for room, strings in
 * arena (deterministic for a seed). Exposed for the module's tests. */
struct lt_arena;
void emu_generate(struct emu *e, const char *room, struct lt_arena *arena, struct lt_msg *m);

#endif
