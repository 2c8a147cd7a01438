/* SPDX-License-Identifier: MIT */
/*
 * livetap-supervisor: what `livetap-fetcher --supervise` runs (that
 * command execs this one, installed next to it, with its arguments): one
 * child fetcher per enabled room of the rooms table (fetcher/supervisor.c).
 * It is its own executable so that livetap-fetcher, one process per room,
 * does not load libpq and the libraries it pulls in (about 3.4 MB of RSS per
 * fetcher).
 *
 * The supervisor execs each child as the livetap-fetcher next to this
 * program directly (fetcher/supervisor.c). A command line that still names a
 * room (--platform P --room R [--config FILE]), as children were started
 * before, is a room's fetcher and is handed on to livetap-fetcher (execv:
 * the pid, a parent's waitpid and PR_SET_PDEATHSIG all carry over).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/app.h"
#include "fetcher/supervisor.h"

static const struct lt_app_opt opts[] = {
    {"supervise", 0, false, NULL, "accepted for livetap-fetcher --supervise (supervising is all this does)"},
    {NULL, 0, false, NULL, NULL},
};

static const struct lt_app_spec spec = {
    "livetap-supervisor",
    "Runs one child livetap-fetcher per enabled room of the rooms table in PostgreSQL, sharing the "
    "rooms with other supervisors through leases; restarts dead children with backoff and stops "
    "them cleanly on SIGTERM. `livetap-fetcher --supervise` runs this program.",
    opts,
    "fetcher.metrics_listen",
};

/* True if argv is a room's fetcher (--platform or --room). */
static bool is_room_child(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--"))
			break;
		if (!strcmp(a, "--platform") || !strncmp(a, "--platform=", 11) || !strcmp(a, "--room") ||
		    !strncmp(a, "--room=", 7))
			return true;
	}
	return false;
}

int main(int argc, char **argv)
{
	if (is_room_child(argc, argv)) {
		static char fetcher_name[] = "livetap-fetcher";
		argv[0] = fetcher_name;
		lt_app_exec_sibling("livetap-fetcher", argv);
		fprintf(stderr, "livetap-supervisor: cannot run livetap-fetcher: %s\n", strerror(errno));
		return 127;
	}
	struct lt_app *app = lt_app_start(&spec, argc, argv);
	int rc = lt_supervisor_run(app);
	return lt_app_finish(app, rc);
}
