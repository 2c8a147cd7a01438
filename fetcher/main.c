/* SPDX-License-Identifier: MIT */
/*
 * livetap-fetcher: watches one room (--platform P --room ID), or replays a
 * capture (--replay FILE), or supervises one child per enabled room
 * (--supervise). A short script: options and config via common/app.h, then
 * dispatch.
 *
 * --supervise is livetap-supervisor (fetcher/supervisor_main.c), a separate
 * executable installed next to this one: the supervisor needs libpq and the
 * ~19 libraries it pulls in, a fetcher does not, and there is one fetcher
 * per room. This program execs it with the same arguments (same pid).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/app.h"
#include "common/config.h"
#include "common/delivery.h"
#include "common/log.h"
#include "fetcher/fetcher.h"
#include "fetcher/platform.h"
#include "fetcher/replay.h"

/* Not const: the --platform help names the registered platforms (main). */
static struct lt_app_opt opts[] = {
	{"platform", 'p', true, "P", "the platform"},
	{"room", 'r', true, "ID", "the room to watch (or that FILE was recorded from)"},
	{"stdout", 0, false, NULL, "print each message as one JSON line instead of pushing it on"},
	{"record", 0, true, "FILE", "append every raw frame received to FILE (capture format)"},
	{"replay", 0, true, "FILE", "decode a recorded FILE as if it were live, then exit"},
	{"pace", 0, false, NULL, "with --replay: keep the recorded timing"},
	{"drain-timeout", 0, true, "MS", "with --replay: how long to wait for acknowledgements (30000)"},
	{"supervise", 0, false, NULL,
	 "run one child fetcher per enabled room in the rooms table (runs livetap-supervisor)"},
	{NULL, 0, false, NULL, NULL},
};

static const struct lt_app_spec spec = {
	"livetap-fetcher",
	"Watches one live-stream room and pushes each normalized message to the processors and "
	"persisters (or prints it with --stdout); --replay decodes a recorded capture the same way; "
	"--supervise runs one fetcher per enabled room.",
	opts,
	"fetcher.metrics_listen",
};

/* The registered platform names as "a, b or c" in buf. */
static const char *platform_list(char *buf, size_t cap)
{
	const char *const *names = lt_platform_names();
	size_t n = 0, len = 0;

	while (names[n])
		n++;
	buf[0] = '\0';
	for (size_t i = 0; i < n && len < cap; i++) {
		int w = snprintf(buf + len, cap - len, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ", names[i]);
		if (w < 0)
			break;
		len += (size_t)w;
	}
	return buf;
}

/* A platform setting "<platform>.<key>" if the table has it and it was set
 * by the operator (or, with any_source, also when it is the default). */
static const char *platform_setting(const struct lt_config *cfg, const char *platform, const char *key,
                                    bool any_source)
{
	char full[64];
	snprintf(full, sizeof(full), "%s.%s", platform, key);
	for (const struct lt_cfg_def *d = lt_cfg_table; d->key; d++) {
		if (strcmp(d->key, full) != 0)
			continue;
		const char *v = lt_config_str(cfg, full);
		if (!v || !*v)
			return NULL;
		if (!any_source && strcmp(lt_config_source(cfg, full), "default") == 0)
			return NULL;
		return v;
	}
	return NULL;
}

static int open_delivery(const struct lt_config *cfg, const char *source, struct lt_delivery **d)
{
	const char *procs[16], *pers[16];
	int np = 0, nq = 0, n = 0;
	struct lt_error e = {0};

	for (int i = 0; i < 16 && lt_config_list(cfg, "fetcher.processors", i, &n); i++)
		procs[np++] = lt_config_list(cfg, "fetcher.processors", i, &n);
	for (int i = 0; i < 16 && lt_config_list(cfg, "fetcher.persisters", i, &n); i++)
		pers[nq++] = lt_config_list(cfg, "fetcher.persisters", i, &n);
	struct lt_delivery_opts o = {
		.source_id = source,
		.processors = procs,
		.n_processors = np,
		.persisters = pers,
		.n_persisters = nq,
		.spool_dir = NULL, /* a replay can be run again; it keeps its window in memory */
	};
	int rc = lt_delivery_open(&o, d, &e);
	if (rc != LT_OK)
		fprintf(stderr, "livetap-fetcher: %s\n", e.message);
	return rc;
}

static int replay(struct lt_app *app, const struct lt_platform_ops *ops, const struct lt_platform_conf *conf)
{
	const struct lt_config *cfg = lt_app_config(app);
	struct lt_delivery *d = NULL;
	struct lt_replay_stats st;
	struct lt_error e = {0};
	char source[80];

	const char *dt = lt_app_opt(app, "drain-timeout");
	struct lt_replay_opts o = {
		.path = lt_app_opt(app, "replay"),
		.ops = ops,
		.conf = conf,
		.pace = lt_app_flag(app, "pace"),
		.drain_timeout_ms = dt ? atoi(dt) : 0,
	};
	if (lt_app_flag(app, "stdout")) {
		o.out = stdout;
	} else {
		snprintf(source, sizeof(source), "%s:%s:replay", ops->name, conf->room);
		if (open_delivery(cfg, source, &d) != LT_OK)
			return 1;
		o.delivery = d;
	}
	int rc = lt_replay_run(&o, &st, &e);
	lt_delivery_close(d);
	if (st.truncated)
		fprintf(stderr, "livetap-fetcher: %s: the last record is cut short (ignored)\n", o.path);
	lt_info(NULL, "replay done: frames=%llu messages=%llu bad_frames=%llu bad_messages=%llu",
	        (unsigned long long)st.frames, (unsigned long long)st.messages,
	        (unsigned long long)st.bad_frames, (unsigned long long)st.bad_messages);
	if (rc != LT_OK) {
		fprintf(stderr, "livetap-fetcher: replay: %s\n", e.message[0] ? e.message : lt_strerror(rc));
		return 1;
	}
	return 0;
}

static int run(struct lt_app *app)
{
	const struct lt_config *cfg = lt_app_config(app);

	const char *platform = lt_app_opt(app, "platform");
	const char *room = lt_app_opt(app, "room");
	if (!platform || !room) {
		fprintf(stderr, "livetap-fetcher: --platform and --room are required (try --help)\n");
		return 2;
	}
	const struct lt_platform_ops *ops = lt_platform_find(platform);
	if (!ops) {
		char names[128];
		fprintf(stderr, "livetap-fetcher: unknown platform '%s' (one of: %s)\n", platform,
		        platform_list(names, sizeof(names)));
		return 2;
	}
	struct lt_platform_conf conf = {
		.room = room,
		/* the endpoints only when the operator set them: a platform falls
		 * back to its real hosts, and bilibili takes a given api_base for
		 * its second host too (one emulator serves both) */
		.api_base = platform_setting(cfg, platform, "api_base", false),
		.aux_base = platform_setting(cfg, platform, "web_base", false),
		.signer = platform_setting(cfg, platform, "signer", true),
		.ws_url = platform_setting(cfg, platform, "ws_url", false),
		.cookie = platform_setting(cfg, platform, "cookie", true),
		.token = platform_setting(cfg, platform, "token", true),
	};
	if (lt_app_opt(app, "replay"))
		return replay(app, ops, &conf);

	/* the live connection (fetcher/fetcher.c); honours --stdout and --record */
	return lt_fetcher_run(app, ops, &conf);
}

int main(int argc, char **argv)
{
	static char platform_help[160];
	char names[128];
	snprintf(platform_help, sizeof(platform_help), "the platform: %s", platform_list(names, sizeof(names)));
	opts[0].help = platform_help;

	/* --supervise: hand the whole command line to livetap-supervisor once
	 * it parses (--help, --version and usage errors are answered here) */
	struct lt_app *app = NULL;
	int rc = lt_app_parse(&spec, argc, argv, stdout, stderr, &app);
	if (rc != LT_APP_CONTINUE)
		return rc;
	bool supervise = lt_app_flag(app, "supervise");
	bool live = !supervise && !lt_app_opt(app, "replay");
	lt_app_free(app);
	if (live)
		lt_app_tune_malloc(argv); /* a live room runs for days: see app.h */
	if (supervise) {
		static char sup_name[] = "livetap-supervisor";
		argv[0] = sup_name;
		lt_app_exec_sibling("livetap-supervisor", argv);
		fprintf(stderr, "livetap-fetcher: --supervise: cannot run livetap-supervisor: %s\n",
			strerror(errno));
		return 1;
	}
	app = lt_app_start(&spec, argc, argv);
	rc = run(app);
	return lt_app_finish(app, rc);
}
