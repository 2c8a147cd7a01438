/* SPDX-License-Identifier: MIT */
/*
 * app: option parsing, --help/--version/--check-config, and the set-up every
 * livetap program does before its main loop (config, logging, signals,
 * metrics, the start-up line). Parsing is table driven: the common flags
 * first, then the program's own table; values are views into argv.
 */
#include "common/app.h"

#include <errno.h>
#include <malloc.h>
#include <hiredis/hiredis.h>
#include <libwebsockets.h>
#include <nng/nng.h>
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/sig.h"
#include "lt_config.h"

#define APP_MAX_VALUES 64

extern char **environ;

/*
 * libpq only for the programs that use it: the version is asked for through a
 * weak reference, which does not make the linker (--as-needed, meson's
 * default) keep libpq.so in a program that has no other use for it. A
 * fetcher (one process per room) thus maps neither libpq nor the ~19
 * libraries it pulls in (gnutls, krb5, ldap, ...): about 3.4 MB of RSS each.
 */
extern int PQlibVersion(void) __attribute__((weak));

/* The common flags; ids below 0 so they never collide with spec indexes. */
enum {
	OPT_HELP = -1,
	OPT_VERSION = -2,
	OPT_CONFIG = -3,
	OPT_CHECK = -4,
	OPT_LOGLEVEL = -5,
	OPT_REFERENCE = -6
};

static const struct {
	int id;
	struct lt_app_opt o;
} common_opts[] = {
    {OPT_HELP, {"help", 'h', false, NULL, "print this help and exit"}},
    {OPT_VERSION, {"version", 'V', false, NULL, "print the version and library versions and exit"}},
    {OPT_CONFIG, {"config", 'c', true, "FILE", "read settings from FILE (default deploy/livetap.json)"}},
    {OPT_CHECK, {"check-config", 0, false, NULL, "load the settings, print them (secrets as ***) and exit"}},
    {OPT_LOGLEVEL, {"log-level", 0, true, "LEVEL", "debug, info, warn, error or off (overrides log.level)"}},
    {OPT_REFERENCE, {"config-reference", 0, false, NULL, "print every setting as a Markdown table and exit"}},
};
#define N_COMMON (sizeof common_opts / sizeof common_opts[0])

struct app_val {
	int idx;	   /* index into spec->opts */
	const char *value; /* into argv, or "" */
};

struct lt_app {
	const struct lt_app_spec *spec;
	const char *config_path;
	const char *log_level;
	bool check_config;
	struct app_val vals[APP_MAX_VALUES];
	int nvals;
	struct lt_config *cfg;
	bool log_file_open;
};

static int spec_count(const struct lt_app_spec *spec)
{
	int n = 0;
	while (spec->opts && spec->opts[n].name)
		n++;
	return n;
}

/* Find an option by long name (len n) or short letter; *id gets a common id
 * (<0) or a spec index (>=0). */
static const struct lt_app_opt *find_opt(const struct lt_app_spec *spec, const char *name, size_t n,
					 char letter, int *id)
{
	for (size_t i = 0; i < N_COMMON; i++) {
		const struct lt_app_opt *o = &common_opts[i].o;
		if ((name && strlen(o->name) == n && !memcmp(o->name, name, n)) ||
		    (letter && o->short_name == letter)) {
			*id = common_opts[i].id;
			return o;
		}
	}
	for (int i = 0; i < spec_count(spec); i++) {
		const struct lt_app_opt *o = &spec->opts[i];
		if ((name && strlen(o->name) == n && !memcmp(o->name, name, n)) ||
		    (letter && o->short_name == letter)) {
			*id = i;
			return o;
		}
	}
	return NULL;
}

static void print_opt(FILE *out, const struct lt_app_opt *o)
{
	char left[64];
	char shortpart[8] = "    ";
	if (o->short_name)
		snprintf(shortpart, sizeof shortpart, "-%c, ", o->short_name);
	if (o->has_arg)
		snprintf(left, sizeof left, "%s--%s %s", shortpart, o->name, o->metavar ? o->metavar : "ARG");
	else
		snprintf(left, sizeof left, "%s--%s", shortpart, o->name);
	fprintf(out, "  %-28s %s\n", left, o->help ? o->help : "");
}

static void print_help(const struct lt_app_spec *spec, FILE *out)
{
	fprintf(out, "Usage: %s [OPTIONS]\n\n", spec->name);
	if (spec->summary)
		fprintf(out, "%s\n\n", spec->summary);
	if (spec_count(spec) > 0) {
		fprintf(out, "Options:\n");
		for (int i = 0; i < spec_count(spec); i++)
			print_opt(out, &spec->opts[i]);
		fprintf(out, "\n");
	}
	fprintf(out, "Common options:\n");
	for (size_t i = 0; i < N_COMMON; i++)
		print_opt(out, &common_opts[i].o);
	fprintf(out, "\nEvery setting can also be set in the environment as LIVETAP_SECTION_KEY\n"
		     "(e.g. LIVETAP_REDIS_URL); see --check-config for the values in effect.\n");
}

/* "15.5" from PQlibVersion()'s 150005 (or "9.6.24" for old ones); "-" in a
 * program not linked with libpq. */
static void pq_version(char *out, size_t cap)
{
	if (!PQlibVersion) {
		snprintf(out, cap, "-");
		return;
	}
	int v = PQlibVersion();
	if (v >= 100000)
		snprintf(out, cap, "%d.%d", v / 10000, v % 10000);
	else
		snprintf(out, cap, "%d.%d.%d", v / 10000, (v / 100) % 100, v % 100);
}

/* lws_get_library_version() without a trailing "-" (Debian builds carry no
 * git hash after it). */
static void lws_version(char *out, size_t cap)
{
	snprintf(out, cap, "%s", lws_get_library_version());
	size_t n = strlen(out);
	while (n > 0 && (out[n - 1] == '-' || out[n - 1] == ' '))
		out[--n] = '\0';
}

/* --version's text: our version, then the libraries we were linked with. */
void lt_app_version_text(const struct lt_app_spec *spec, struct lt_buf *out)
{
	char pq[32], lws[64];
	pq_version(pq, sizeof pq);
	lws_version(lws, sizeof lws);
	lt_buf_printf(out, "%s %s\n", spec->name, LT_VERSION);
	lt_buf_printf(out, "  hiredis %d.%d.%d\n", HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
	lt_buf_printf(out, "  libpq %s\n", pq);
	lt_buf_printf(out, "  libwebsockets %s\n", lws);
	lt_buf_printf(out, "  nng %s\n", nng_version());
	lt_buf_printf(out, "  cJSON %s\n", cJSON_Version());
}

static int usage_error(const struct lt_app_spec *spec, FILE *err, const char *what, const char *arg)
{
	fprintf(err, "%s: %s '%s' (try --help)\n", spec->name, what, arg);
	return 2;
}

/* Record a value for the option with id (common or spec index). */
static int take(struct lt_app *app, int id, const char *value, FILE *err, const char *shown)
{
	switch (id) {
	case OPT_CONFIG:
		app->config_path = value;
		return LT_APP_CONTINUE;
	case OPT_LOGLEVEL:
		if (lt_log_level_parse(value) < 0)
			return usage_error(app->spec, err, "bad log level (debug, info, warn, error, off)",
					   value);
		app->log_level = value;
		return LT_APP_CONTINUE;
	case OPT_CHECK:
		app->check_config = true;
		return LT_APP_CONTINUE;
	default:
		break;
	}
	if (app->nvals >= APP_MAX_VALUES)
		return usage_error(app->spec, err, "too many options, at", shown);
	app->vals[app->nvals].idx = id;
	app->vals[app->nvals].value = value ? value : "";
	app->nvals++;
	return LT_APP_CONTINUE;
}

/* See app.h. Help and version win as soon as they are seen. */
int lt_app_parse(const struct lt_app_spec *spec, int argc, char *const argv[], FILE *out, FILE *err,
		 struct lt_app **out_app)
{
	*out_app = NULL;
	struct lt_app *app = calloc(1, sizeof *app);
	if (!app) {
		fprintf(err, "%s: out of memory\n", spec->name);
		return 1;
	}
	app->spec = spec;
	int rc = LT_APP_CONTINUE;
	for (int i = 1; i < argc && rc == LT_APP_CONTINUE; i++) {
		const char *a = argv[i];
		const struct lt_app_opt *o;
		const char *value = NULL;
		int id = 0;
		if (!strcmp(a, "--")) {
			if (i + 1 < argc)
				rc = usage_error(spec, err, "unexpected argument", argv[i + 1]);
			break;
		}
		if (a[0] == '-' && a[1] == '-') {
			const char *eq = strchr(a + 2, '=');
			size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
			o = find_opt(spec, a + 2, n, 0, &id);
			if (!o) {
				char shown[128];
				snprintf(shown, sizeof shown, "--%.*s", (int)(n > 100 ? 100 : n), a + 2);
				rc = usage_error(spec, err, "unknown option", shown);
				break;
			}
			if (eq && !o->has_arg) {
				rc = usage_error(spec, err, "option takes no argument:", a);
				break;
			}
			if (eq)
				value = eq + 1;
		} else if (a[0] == '-' && a[1] && !a[2]) {
			o = find_opt(spec, NULL, 0, a[1], &id);
			if (!o) {
				rc = usage_error(spec, err, "unknown option", a);
				break;
			}
		} else if (a[0] == '-' && a[1]) {
			/* -xVALUE */
			o = find_opt(spec, NULL, 0, a[1], &id);
			if (!o || !o->has_arg) {
				char shown[4] = {'-', a[1], 0, 0};
				rc = usage_error(spec, err, "unknown option", o ? a : shown);
				break;
			}
			value = a + 2;
		} else {
			rc = usage_error(spec, err, "unexpected argument", a);
			break;
		}
		if (o->has_arg && !value) {
			if (i + 1 >= argc) {
				char shown[128];
				snprintf(shown, sizeof shown, "--%s", o->name);
				rc = usage_error(spec, err, "missing argument for option", shown);
				break;
			}
			value = argv[++i];
		}
		if (id == OPT_HELP) {
			print_help(spec, out);
			rc = 0;
		} else if (id == OPT_REFERENCE) {
			struct lt_buf b = LT_BUF_INIT;
			lt_config_reference_md(&b);
			fputs(lt_buf_cstr(&b), out);
			lt_buf_free(&b);
			rc = 0;
		} else if (id == OPT_VERSION) {
			struct lt_buf b = LT_BUF_INIT;
			lt_app_version_text(spec, &b);
			fputs(lt_buf_cstr(&b), out);
			lt_buf_free(&b);
			rc = 0;
		} else {
			rc = take(app, id, value, err, a);
		}
	}
	if (rc != LT_APP_CONTINUE) {
		fflush(out);
		free(app);
		return rc;
	}
	*out_app = app;
	return LT_APP_CONTINUE;
}

/* See app.h. */
int lt_app_setup(struct lt_app *app, const char *const *envp, FILE *out, FILE *err)
{
	struct lt_error e = {0};
	const char *name = app->spec->name;
	lt_config_free(app->cfg);
	app->cfg = NULL;
	if (lt_config_load(app->config_path, envp, &app->cfg, &e) != LT_OK) {
		fprintf(err, "%s: %s\n", name, e.message);
		return 1;
	}
	const char *lvl = app->log_level ? app->log_level : lt_config_str(app->cfg, "log.level");
	int level = lt_log_level_parse(lvl ? lvl : "info");
	if (level < 0) {
		fprintf(err, "%s: %s: log.level: unknown level '%s' (debug, info, warn, error, off)\n", name,
			lt_config_path(app->cfg) ? lt_config_path(app->cfg) : "settings", lvl);
		return 1;
	}
	if (app->check_config) {
		struct lt_buf b = LT_BUF_INIT;
		lt_config_dump(app->cfg, &b);
		fputs(lt_buf_cstr(&b), out);
		fflush(out);
		lt_buf_free(&b);
		return 0;
	}
	lt_log_init(name, level);
	lt_log_set_stderr(lt_config_bool(app->cfg, "log.stderr"));
	const char *file = lt_config_str(app->cfg, "log.file");
	if (file && *file) {
		if (lt_log_open_file(file, (size_t)lt_config_int(app->cfg, "log.max_bytes"),
				     (int)lt_config_int(app->cfg, "log.keep")) != LT_OK) {
			fprintf(err, "%s: log.file: cannot open '%s'\n", name, file);
			return 1;
		}
		app->log_file_open = true;
	}
	if (lt_sig_install() != LT_OK) {
		fprintf(err, "%s: cannot install signal handlers\n", name);
		return 1;
	}
	/* Every process says what it is and since when, for dashboards. */
	lt_metrics_set(
	    lt_metrics_series(lt_metrics_gauge("livetap_build_info",
					       "Always 1; the labels name the program and version.", "proc",
					       "version"),
			      name, LT_VERSION),
	    1);
	lt_metrics_set(
	    lt_metrics_series(lt_metrics_gauge("process_start_time_seconds",
					       "Start time of the process since the epoch, in seconds.", NULL,
					       NULL),
			      NULL, NULL),
	    (double)lt_clock_wall_ms() / 1000.0);
	return LT_APP_CONTINUE;
}

/* See app.h. */
struct lt_app *lt_app_start(const struct lt_app_spec *spec, int argc, char **argv)
{
	struct lt_app *app = NULL;
	int rc = lt_app_parse(spec, argc, argv, stdout, stderr, &app);
	if (rc != LT_APP_CONTINUE)
		exit(rc);
	rc = lt_app_setup(app, (const char *const *)environ, stdout, stderr);
	if (rc != LT_APP_CONTINUE) {
		lt_app_free(app);
		exit(rc);
	}
	if (spec->metrics_key) {
		const char *addr = lt_config_str(app->cfg, spec->metrics_key);
		if (addr && *addr) {
			int mrc = lt_metrics_serve(addr);
			if (mrc != LT_OK) {
				fprintf(stderr, "%s: %s: cannot serve /metrics on '%s': %s\n", spec->name,
					spec->metrics_key, addr, lt_strerror(mrc));
				lt_app_free(app);
				exit(1);
			}
		}
	}
	lt_app_startup_log(app);
	return app;
}

void lt_app_startup_log(const struct lt_app *app)
{
	char ctx[512], pq[32], lws[64];
	pq_version(pq, sizeof pq);
	lws_version(lws, sizeof lws);
	const char *path = app->cfg ? lt_config_path(app->cfg) : NULL;
	snprintf(ctx, sizeof ctx,
		 "version=%s hiredis=%d.%d.%d libpq=%s lws=%s nng=%s cjson=%s config=%s pid=%ld", LT_VERSION,
		 HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH, pq, lws, nng_version(), cJSON_Version(),
		 path ? path : "(defaults)", (long)getpid());
	lt_info(ctx, "%s %s starting", app->spec->name, LT_VERSION);
}

int lt_app_finish(struct lt_app *app, int rc)
{
	if (app)
		lt_info(NULL, "%s stopped (exit %d)", app->spec->name, rc);
	lt_metrics_stop();
	lt_app_free(app);
	return rc;
}

void lt_app_free(struct lt_app *app)
{
	if (!app)
		return;
	if (app->log_file_open)
		lt_log_close();
	lt_config_free(app->cfg);
	free(app);
}

const struct lt_config *lt_app_config(const struct lt_app *app)
{
	return app->cfg;
}

static int spec_index(const struct lt_app *app, const char *name)
{
	for (int i = 0; i < spec_count(app->spec); i++)
		if (!strcmp(app->spec->opts[i].name, name))
			return i;
	fprintf(stderr, "livetap bug: %s has no option '--%s'\n", app->spec->name, name);
	abort();
}

const char *lt_app_opt(const struct lt_app *app, const char *name)
{
	int idx = spec_index(app, name);
	const char *v = NULL;
	for (int i = 0; i < app->nvals; i++)
		if (app->vals[i].idx == idx)
			v = app->vals[i].value;
	return v;
}

bool lt_app_flag(const struct lt_app *app, const char *name)
{
	return lt_app_opt(app, name) != NULL;
}

int lt_app_count(const struct lt_app *app, const char *name)
{
	int idx = spec_index(app, name), n = 0;
	for (int i = 0; i < app->nvals; i++)
		n += app->vals[i].idx == idx;
	return n;
}

int lt_app_loop(int (*tick)(void *ctx), void *ctx)
{
	int64_t next_release = lt_clock_mono_ms() + LT_APP_RELEASE_EVERY_MS;
	while (!lt_sig_stop_requested()) {
		int rc = tick(ctx);
		if (rc != LT_OK)
			return rc;
		if (lt_clock_mono_ms() >= next_release) {
			lt_app_release_memory();
			next_release = lt_clock_mono_ms() + LT_APP_RELEASE_EVERY_MS;
		}
	}
	return LT_OK;
}

/* The path of this program's binary (what /proc/self/exe points to) in
 * path[cap]; false if it cannot be read or does not fit. */
static bool self_path(char *path, size_t cap)
{
	ssize_t n = readlink("/proc/self/exe", path, cap - 1);
	if (n <= 0 || (size_t)n >= cap - 1)
		return false;
	path[n] = '\0';
	return true;
}

/* See app.h. */
void lt_app_tune_malloc(char *const argv[])
{
#ifdef __GLIBC__
	if (getenv("GLIBC_TUNABLES"))
		return; /* the operator's own choice, or done already */
	if (setenv("GLIBC_TUNABLES", LT_APP_MALLOC_TUNABLES, 1) != 0)
		return;
	/* by the binary's own path, so that the kernel names the process
	 * after it (ps, top, perf); /proc/self/exe would name it "exe". That
	 * link still runs a binary replaced or deleted since we started. */
	char path[4096];
	if (self_path(path, sizeof path))
		execv(path, argv);
	execv("/proc/self/exe", argv);
	unsetenv("GLIBC_TUNABLES"); /* no exec: carry on as we are */
#else
	(void)argv;
#endif
}

/* See app.h. */
void lt_app_release_memory(void)
{
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

/* See app.h. */
int lt_app_exec_sibling(const char *name, char *const argv[])
{
	char path[4096];
	if (self_path(path, sizeof path)) {
		char *slash = strrchr(path, '/');
		if (slash && (size_t)(slash + 1 - path) + strlen(name) < sizeof path) {
			strcpy(slash + 1, name);
			execv(path, argv);
			if (errno != ENOENT)
				return -1;
		}
	}
	execvp(name, argv);
	return -1;
}
