/* SPDX-License-Identifier: MIT */
/*
 * app: the short-script main() every livetap program shares.
 *
 *   static const struct lt_app_opt opts[] = {
 *           {"room", 'r', true, "ID", "the room to watch"},
 *           {"stdout", 0, false, NULL, "print messages instead of pushing them"},
 *           {NULL, 0, false, NULL, NULL},
 *   };
 *   static const struct lt_app_spec spec = {"livetap-fetcher", "Watches one room…", opts,
 *                                            "fetcher.metrics_listen"};
 *   int main(int argc, char **argv)
 *   {
 *           struct lt_app *app = lt_app_start(&spec, argc, argv); // exits on --help etc.
 *           int rc = run(app);           // lt_app_config(app), lt_app_opt(app, "room"), …
 *           return lt_app_finish(app, rc);
 *   }
 *
 * Every program gets the common flags: -h/--help, -V/--version,
 * -c/--config FILE, --check-config (load, print the settings with secrets as
 * ***, exit 0; or print the error and exit 1), --log-level LEVEL and
 * --config-reference (the settings table in Markdown, for the README). An
 * unknown flag, a missing argument or a stray argument prints one line
 *   PROG: unknown option '--x' (try --help)
 * to stderr and exits 2. The parts (lt_app_parse, lt_app_setup) return codes
 * and write to the FILEs given, so tests drive them with argv arrays;
 * lt_app_start is the thin wrapper that exits.
 */
#ifndef LT_APP_H
#define LT_APP_H

#include <stdbool.h>
#include <stdio.h>

#include "common/buf.h"
#include "common/config.h"

/* One program option. name is the long name without "--". */
struct lt_app_opt {
	const char *name;
	char short_name; /* 0 = none */
	bool has_arg;
	const char *metavar; /* shown in --help for has_arg options; NULL = "ARG" */
	const char *help;
};

struct lt_app_spec {
	const char *name;	       /* "livetap-processor"; also the log's proc */
	const char *summary;	       /* one paragraph for --help */
	const struct lt_app_opt *opts; /* terminated by name == NULL; may be NULL */
	const char *metrics_key;       /* e.g. "processor.metrics_listen": lt_app_start
					* serves /metrics there when set; NULL = none */
};

struct lt_app;

/* lt_app_parse / lt_app_setup: carry on (anything else is an exit status). */
#define LT_APP_CONTINUE (-1)

/*
 * Parse argv against the common flags and spec->opts. Returns
 * LT_APP_CONTINUE with *out a new app the caller owns (lt_app_free), or an
 * exit status with *out NULL: 0 after printing --help or --version to out,
 * 2 after printing one line to err. spec and argv must outlive the app
 * (option values point into argv).
 */
int lt_app_parse(const struct lt_app_spec *spec, int argc, char *const argv[], FILE *out, FILE *err,
		 struct lt_app **out_app);

/*
 * Load the configuration (--config, else the default path; envp NULL = the
 * process environment), then either answer --check-config (the dump to out,
 * return 0; or the error to err, return 1) or set up logging (level from
 * --log-level, else log.level; log.file with rotation) and the signal flags
 * and return LT_APP_CONTINUE. It also sets the gauges livetap_build_info
 * {proc,version} and process_start_time_seconds. A bad config prints
 * "PROG: <error>" to err and returns 1.
 */
int lt_app_setup(struct lt_app *app, const char *const *envp, FILE *out, FILE *err);

/* lt_app_parse + lt_app_setup on stdout/stderr, exit() unless they say
 * continue, start the metrics server if spec->metrics_key is set, and write
 * the start-up log line. Returns the app (owned by the caller). */
struct lt_app *lt_app_start(const struct lt_app_spec *spec, int argc, char **argv);

/* Log "stopped", close the log file, free app; returns rc for `return`. */
int lt_app_finish(struct lt_app *app, int rc);
/* Free app and its config; NULL is fine. Does not log. */
void lt_app_free(struct lt_app *app);

/* The loaded configuration (owned by app); NULL before lt_app_setup. */
const struct lt_config *lt_app_config(const struct lt_app *app);
/* The value of the program option name (last one given; points into argv),
 * "" for a flag without argument, NULL if not given. */
const char *lt_app_opt(const struct lt_app *app, const char *name);
/* True if the program option name was given. */
bool lt_app_flag(const struct lt_app *app, const char *name);
/* How many times the option was given (for repeatable options). */
int lt_app_count(const struct lt_app *app, const char *name);

/* "PROG VERSION\n" and one line per library version, as --version prints. */
void lt_app_version_text(const struct lt_app_spec *spec, struct lt_buf *out);
/* The start-up line: version, library versions, config file, pid. */
void lt_app_startup_log(const struct lt_app *app);

/*
 * A minimal main loop: call tick(ctx) until the stop flag is set or tick
 * returns something other than LT_OK (which is returned; LT_OK on a stop).
 * tick must block for a bounded time (a poll with a timeout), never sleep().
 */
int lt_app_loop(int (*tick)(void *ctx), void *ctx);

/*
 * Give the C library's free memory back to the system (glibc: malloc_trim,
 * which also returns free pages in the middle of each thread's heap). A
 * burst (a backlog after a restart, a stalled consumer) otherwise leaves the
 * heap at its high-water mark for good. lt_app_loop calls it every
 * LT_APP_RELEASE_EVERY_MS; a program with its own loop calls it as often.
 * It walks the heap: microseconds for the few MB a livetap process holds.
 */
#define LT_APP_RELEASE_EVERY_MS 30000
void lt_app_release_memory(void);

/*
 * Re-run this program (same pid, same arguments) with glibc's per-thread
 * cache of freed blocks (tcache) turned off, unless GLIBC_TUNABLES is set
 * already. In a fetcher, the delivery thread allocates NNG's messages and
 * NNG's threads free them; each thread's tcache then keeps up to 7 blocks of
 * every small size that other threads allocated, and the process's RSS
 * creeps up for tens of minutes (5% in the 30-minute soak, flat without the
 * cache). At a fetcher's few hundred allocations a second the cache buys
 * nothing. Call it first thing, before any thread, file or socket exists;
 * it returns only when it did nothing (another libc, already set, exec
 * failed).
 */
#define LT_APP_MALLOC_TUNABLES "glibc.malloc.tcache_count=0"
void lt_app_tune_malloc(char *const argv[]);

/*
 * Replace this process by the livetap program name (e.g.
 * "livetap-supervisor") installed next to this one (the directory of
 * /proc/self/exe), or found in PATH when there is none there, with argv
 * (argv[0] included, NULL-terminated). The pid stays, so a parent's waitpid
 * and a PR_SET_PDEATHSIG carry over. Returns -1 with errno set only if no
 * exec succeeded.
 */
int lt_app_exec_sibling(const char *name, char *const argv[]);

#endif
