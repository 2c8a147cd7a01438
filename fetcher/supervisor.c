/* SPDX-License-Identifier: MIT */
/*
 * supervisor: one child fetcher per leased room (see supervisor.h).
 *
 * A poll loop with a short timeout (SUP_TICK_MS) over the PostgreSQL socket;
 * each turn it reads notifications, runs what is due — the claim (on a
 * NOTIFY, debounced, and every poll_s), the renewal (every lease_s / 3) —
 * reaps dead children with waitpid(WNOHANG), starts the children that are
 * wanted and due, and stops the ones that are no longer wanted (SIGTERM, then
 * SIGKILL at the deadline). No sleep() anywhere; the signal handler only sets
 * the stop flag (common/sig.h).
 *
 * Notification storms are avoided by construction: the rooms trigger fires on
 * every UPDATE, so only the timer renews (an UPDATE of our own rows), while a
 * claim updates only rows that are not ours yet, and notifications caused by
 * our own backend are ignored.
 */
#include "fetcher/supervisor.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/app.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/msg.h"
#include "common/sig.h"

#define SUP_TICK_MS 100
#define SUP_NOTIFY_DEBOUNCE_MS 100
#define SUP_PG_RETRY_MS 2000

enum child_state { CH_WAIT, CH_RUNNING, CH_STOPPING };

struct child {
	struct child *next;
	long long id;                        /* rooms.id */
	char platform[32];
	char room[LT_MSG_ROOM_MAX + 1];
	int state;                           /* enum child_state */
	pid_t pid;
	bool wanted;                         /* we hold the lease and the room is enabled */
	bool seen;                           /* in the last listing */
	int64_t restart_at;                  /* mono ms: start no earlier */
	int64_t started;                     /* mono ms */
	int64_t kill_at;                     /* mono ms: SIGKILL if still alive */
	int64_t backoff_ms;
	unsigned restarts;
};

struct sup {
	const struct lt_config *cfg;
	PGconn *pg;
	char owner[160];
	char exe[PATH_MAX]; /* livetap-fetcher next to us; "" = look it up in PATH */
	const char *config_path;
	int64_t lease_ms, poll_ms, renew_ms, restart_base_ms, restart_max_ms, stop_ms, max_rooms;
	int64_t next_claim, next_renew, last_renew_ok, pg_retry_at;
	struct child *children;
	uint64_t rng;
};

static uint32_t sup_rand(struct sup *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return (uint32_t)s->rng;
}

/* ---- PostgreSQL ---------------------------------------------------------- */

static void pg_drop(struct sup *s, const char *why)
{
	if (s->pg) {
		lt_warn(NULL, "supervisor: PostgreSQL connection lost (%s); retrying", why);
		PQfinish(s->pg);
		s->pg = NULL;
	}
	s->pg_retry_at = lt_clock_mono_ms() + SUP_PG_RETRY_MS;
}

static bool pg_connect(struct sup *s)
{
	const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
	const char *vals[] = {lt_config_str(s->cfg, "pg.dsn"), "5", "livetap-supervisor", NULL};
	PGresult *r;

	s->pg = PQconnectdbParams(keys, vals, 1);
	if (!s->pg || PQstatus(s->pg) != CONNECTION_OK) {
		lt_warn(NULL, "supervisor: cannot connect to PostgreSQL: %s",
		        s->pg ? PQerrorMessage(s->pg) : "out of memory");
		PQfinish(s->pg);
		s->pg = NULL;
		s->pg_retry_at = lt_clock_mono_ms() + SUP_PG_RETRY_MS;
		return false;
	}
	r = PQexec(s->pg, "LISTEN livetap_rooms");
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		PQclear(r);
		pg_drop(s, "LISTEN failed");
		return false;
	}
	PQclear(r);
	lt_info(NULL, "supervisor: connected to PostgreSQL as lease owner %s", s->owner);
	s->next_claim = s->next_renew = 0;
	return true;
}

/* Run a statement with text parameters; NULL (and the connection dropped if
 * it broke) on failure. */
static PGresult *pg_exec(struct sup *s, const char *sql, int n, const char *const *params)
{
	PGresult *r;
	ExecStatusType st;

	if (!s->pg)
		return NULL;
	r = PQexecParams(s->pg, sql, n, NULL, params, NULL, NULL, 0);
	st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;
	lt_warn(NULL, "supervisor: query failed: %s", PQerrorMessage(s->pg));
	PQclear(r);
	if (PQstatus(s->pg) != CONNECTION_OK)
		pg_drop(s, "query failed");
	return NULL;
}

static struct child *child_find(struct sup *s, long long id)
{
	for (struct child *c = s->children; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

/* Record a child's state in rooms.last_state / last_error (while ours). */
static void report(struct sup *s, const struct child *c, const char *state, const char *err)
{
	char id[24];
	const char *p[4] = {id, state, err, s->owner};
	PGresult *r;

	snprintf(id, sizeof(id), "%lld", c->id);
	r = pg_exec(s,
	            "UPDATE rooms SET last_state = $2, last_error = $3, updated_at = now() "
	            "WHERE id = $1 AND lease_owner = $4",
	            4, p);
	PQclear(r);
}

/* The rows of r (id, platform, room_id, enabled) become the wanted set. */
static void apply_listing(struct sup *s, PGresult *r)
{
	for (struct child *c = s->children; c; c = c->next)
		c->seen = false;
	for (int i = 0; i < PQntuples(r); i++) {
		long long id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		bool enabled = PQgetvalue(r, i, 3)[0] == 't';
		struct child *c = child_find(s, id);
		if (!c) {
			if (!enabled)
				continue;
			c = calloc(1, sizeof(*c));
			if (!c)
				continue;
			c->id = id;
			snprintf(c->platform, sizeof(c->platform), "%s", PQgetvalue(r, i, 1));
			snprintf(c->room, sizeof(c->room), "%s", PQgetvalue(r, i, 2));
			c->state = CH_WAIT;
			c->backoff_ms = s->restart_base_ms;
			c->next = s->children;
			s->children = c;
			lt_info(NULL, "supervisor: room %s:%s is ours", c->platform, c->room);
		}
		c->seen = true;
		c->wanted = enabled;
	}
	for (struct child *c = s->children; c; c = c->next)
		if (!c->seen && c->wanted) {
			lt_warn(NULL, "supervisor: room %s:%s is no longer ours (lease lost or room removed)", c->platform,
			        c->room);
			c->wanted = false;
		}
}

/* Release the leases of rooms we hold but do not run (disabled ones). */
static void release_unwanted(struct sup *s, PGresult *r)
{
	for (int i = 0; i < PQntuples(r); i++) {
		const char *p[2] = {PQgetvalue(r, i, 0), s->owner};
		if (PQgetvalue(r, i, 3)[0] == 't')
			continue;
		PQclear(pg_exec(s,
		                "UPDATE rooms SET lease_owner = NULL, lease_until = NULL, last_state = 'idle' "
		                "WHERE id = $1 AND lease_owner = $2",
		                2, p));
	}
}

/* Claim free or expired enabled rooms (rows not ours only, so that a no-op
 * claim causes no NOTIFY), then read what we hold. */
static void claim(struct sup *s)
{
	char lease[24], max[24];
	const char *p[3] = {s->owner, lease, max};
	PGresult *r;

	snprintf(lease, sizeof(lease), "%" PRId64, s->lease_ms);
	snprintf(max, sizeof(max), "%" PRId64, s->max_rooms);
	/* LIMIT NULL is no limit; with max_rooms, only what we may still take */
	r = pg_exec(s,
	            "WITH c AS (SELECT id FROM rooms WHERE enabled "
	            "  AND (lease_owner IS NULL OR lease_until IS NULL OR lease_until < now()) "
	            "  AND lease_owner IS DISTINCT FROM $1 "
	            "  ORDER BY id "
	            "  LIMIT CASE WHEN $3::bigint > 0 THEN greatest(0, $3::bigint - "
	            "    (SELECT count(*) FROM rooms WHERE lease_owner = $1)) END "
	            "  FOR UPDATE SKIP LOCKED) "
	            "UPDATE rooms SET lease_owner = $1, "
	            "  lease_until = now() + $2::bigint * interval '1 millisecond' "
	            "FROM c WHERE rooms.id = c.id RETURNING rooms.id",
	            3, p);
	if (!r)
		return;
	if (PQntuples(r) > 0)
		lt_info(NULL, "supervisor: claimed %d room(s)", PQntuples(r));
	PQclear(r);
	r = pg_exec(s, "SELECT id, platform, room_id, enabled FROM rooms WHERE lease_owner = $1", 1, p);
	if (!r)
		return;
	apply_listing(s, r);
	release_unwanted(s, r);
	PQclear(r);
}

/* Extend every lease we hold; what comes back is what we hold. */
static void renew(struct sup *s)
{
	char lease[24];
	const char *p[2] = {s->owner, lease};
	PGresult *r;

	snprintf(lease, sizeof(lease), "%" PRId64, s->lease_ms);
	r = pg_exec(s,
	            "UPDATE rooms SET lease_until = now() + $2::bigint * interval '1 millisecond' "
	            "WHERE lease_owner = $1 RETURNING id, platform, room_id, enabled",
	            2, p);
	if (!r)
		return;
	s->last_renew_ok = lt_clock_mono_ms();
	apply_listing(s, r);
	release_unwanted(s, r);
	PQclear(r);
}

/* Read NOTIFYs; true if one came from another backend. */
static bool notifications(struct sup *s)
{
	PGnotify *n;
	bool any = false;

	if (!s->pg)
		return false;
	if (!PQconsumeInput(s->pg)) {
		pg_drop(s, PQerrorMessage(s->pg));
		return false;
	}
	while ((n = PQnotifies(s->pg))) {
		any |= n->be_pid != PQbackendPID(s->pg);
		PQfreemem(n);
	}
	return any;
}

/* ---- children -------------------------------------------------------------- */

static void child_start(struct sup *s, struct child *c)
{
	const char *argv[12];
	int n = 0;
	pid_t parent = getpid(), pid;

	argv[n++] = "livetap-fetcher";
	argv[n++] = "--platform";
	argv[n++] = c->platform;
	argv[n++] = "--room";
	argv[n++] = c->room;
	if (s->config_path) {
		argv[n++] = "--config";
		argv[n++] = s->config_path;
	}
	argv[n] = NULL;

	pid = fork();
	if (pid < 0) {
		lt_error(NULL, "supervisor: fork: %s", strerror(errno));
		c->restart_at = lt_clock_mono_ms() + c->backoff_ms;
		return;
	}
	if (pid == 0) {
		/* the child: die with the supervisor, so a killed supervisor leaves
		 * no fetcher behind to run next to the one that takes its rooms */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(0);
		if (s->exe[0])
			execv(s->exe, (char *const *)argv);
		else
			execvp("livetap-fetcher", (char *const *)argv);
		_exit(127);
	}
	c->pid = pid;
	c->state = CH_RUNNING;
	c->started = lt_clock_mono_ms();
	lt_info(NULL, "supervisor: started %s:%s (pid %d)", c->platform, c->room, (int)pid);
	report(s, c, "running", "");
}

static void child_stop(struct sup *s, struct child *c)
{
	if (c->state != CH_RUNNING)
		return;
	kill(c->pid, SIGTERM);
	c->state = CH_STOPPING;
	c->kill_at = lt_clock_mono_ms() + s->stop_ms;
	lt_info(NULL, "supervisor: stopping %s:%s (pid %d)", c->platform, c->room, (int)c->pid);
}

/* A child exited: plan the restart (if still wanted) with backoff. */
static void child_exited(struct sup *s, struct child *c, int status)
{
	int64_t now = lt_clock_mono_ms();
	bool asked = c->state == CH_STOPPING;
	char why[64];

	if (WIFEXITED(status))
		snprintf(why, sizeof(why), "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(status));
	else
		snprintf(why, sizeof(why), "ended");
	c->pid = 0;
	c->state = CH_WAIT;
	if (asked || !c->wanted) {
		lt_info(NULL, "supervisor: %s:%s stopped (%s)", c->platform, c->room, why);
		report(s, c, "idle", "");
		return;
	}
	/* a child that ran for a long while starts over with a short backoff */
	if (now - c->started > s->restart_max_ms)
		c->backoff_ms = s->restart_base_ms;
	c->restart_at = now + c->backoff_ms + (int64_t)(sup_rand(s) % (uint32_t)(c->backoff_ms / 5 + 1));
	lt_warn(NULL, "supervisor: %s:%s died (%s); restart %u in %" PRId64 " ms", c->platform, c->room, why,
	        c->restarts + 1, c->restart_at - now);
	report(s, c, "error", why);
	c->restarts++;
	c->backoff_ms = c->backoff_ms * 2 < s->restart_max_ms ? c->backoff_ms * 2 : s->restart_max_ms;
}

static void reap(struct sup *s)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (struct child *c = s->children; c; c = c->next)
			if (c->pid == pid) {
				child_exited(s, c, status);
				break;
			}
}

/* Start what is wanted and due, stop what is not wanted, forget what is
 * stopped and not wanted. */
static void reconcile(struct sup *s, bool stopping)
{
	int64_t now = lt_clock_mono_ms();
	struct child **pp = &s->children, *c;

	while ((c = *pp)) {
		bool want = c->wanted && !stopping;
		if (want && c->state == CH_WAIT && now >= c->restart_at)
			child_start(s, c);
		else if (!want && c->state == CH_RUNNING)
			child_stop(s, c);
		else if (c->state == CH_STOPPING && now >= c->kill_at) {
			lt_warn(NULL, "supervisor: %s:%s did not stop in time; SIGKILL", c->platform, c->room);
			kill(c->pid, SIGKILL);
			c->kill_at = now + 60000;
		}
		if (!want && c->state == CH_WAIT) {
			*pp = c->next;
			free(c);
			continue;
		}
		pp = &c->next;
	}
}

/* ---- the loop ------------------------------------------------------------------ */

static void tick(struct sup *s)
{
	int64_t now = lt_clock_mono_ms();
	struct pollfd pfd = {.fd = -1, .events = POLLIN};

	if (!s->pg && now >= s->pg_retry_at)
		pg_connect(s);
	if (s->pg)
		pfd.fd = PQsocket(s->pg);
	if (poll(&pfd, pfd.fd >= 0 ? 1 : 0, SUP_TICK_MS) > 0 && notifications(s)) {
		now = lt_clock_mono_ms();
		if (s->next_claim > now + SUP_NOTIFY_DEBOUNCE_MS)
			s->next_claim = now + SUP_NOTIFY_DEBOUNCE_MS;
	}
	now = lt_clock_mono_ms();
	if (s->pg && now >= s->next_renew) {
		renew(s);
		s->next_renew = now + s->renew_ms;
	}
	if (s->pg && now >= s->next_claim) {
		claim(s);
		s->next_claim = now + s->poll_ms;
	}
	/* fencing: without a renewal for most of a lease, someone else may
	 * take our rooms soon; stop our children before that can happen */
	if (s->last_renew_ok && now - s->last_renew_ok > s->lease_ms * 3 / 4) {
		for (struct child *c = s->children; c; c = c->next)
			if (c->wanted) {
				lt_warn(NULL, "supervisor: leases not renewed for %" PRId64 " ms; stopping %s:%s",
				        now - s->last_renew_ok, c->platform, c->room);
				c->wanted = false;
			}
	}
	reap(s);
	reconcile(s, false);
}

static void shutdown_children(struct sup *s)
{
	reconcile(s, true);
	while (s->children) {
		struct pollfd none;
		reap(s);
		reconcile(s, true);
		if (s->children)
			poll(&none, 0, 20);
	}
	if (s->pg) {
		const char *p[1] = {s->owner};
		PQclear(pg_exec(s,
		                "UPDATE rooms SET lease_owner = NULL, lease_until = NULL, last_state = 'idle' "
		                "WHERE lease_owner = $1",
		                1, p));
	}
}

int lt_supervisor_run(struct lt_app *app)
{
	struct sup s;
	const char *owner;
	char host[128] = "localhost";
	ssize_t n;

	memset(&s, 0, sizeof(s));
	s.cfg = lt_app_config(app);
	s.config_path = lt_config_path(s.cfg); /* children read the same file; the environment is inherited */
	s.lease_ms = lt_config_int(s.cfg, "supervisor.lease_s") * 1000;
	s.poll_ms = lt_config_int(s.cfg, "supervisor.poll_s") * 1000;
	s.renew_ms = s.lease_ms / 3 > 0 ? s.lease_ms / 3 : 1;
	s.restart_base_ms = lt_config_int(s.cfg, "supervisor.restart_base_ms");
	s.restart_max_ms = lt_config_int(s.cfg, "supervisor.restart_max_ms");
	s.stop_ms = lt_config_int(s.cfg, "supervisor.stop_timeout_s") * 1000;
	s.max_rooms = lt_config_int(s.cfg, "supervisor.max_rooms");
	s.rng = (uint64_t)lt_clock_mono_us() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ULL;
	owner = lt_config_str(s.cfg, "supervisor.owner");
	gethostname(host, sizeof(host) - 1);
	if (owner && *owner)
		snprintf(s.owner, sizeof(s.owner), "%s", owner);
	else
		snprintf(s.owner, sizeof(s.owner), "%s:%d", host, (int)getpid());
	/* children run the livetap-fetcher installed next to this program, as
	 * lt_app_exec_sibling finds it; resolved once, here, so that a missing
	 * one is said once rather than as every child's exit status 127 */
	n = readlink("/proc/self/exe", s.exe, sizeof(s.exe) - 1);
	if (n <= 0) {
		fprintf(stderr, "livetap-supervisor: cannot find my own executable\n");
		return 1;
	}
	s.exe[n] = 0;
	char *slash = strrchr(s.exe, '/');
	if (!slash || (size_t)(slash + 1 - s.exe) + sizeof("livetap-fetcher") > sizeof(s.exe)) {
		fprintf(stderr, "livetap-supervisor: cannot place livetap-fetcher next to %s\n", s.exe);
		return 1;
	}
	memcpy(slash + 1, "livetap-fetcher", sizeof("livetap-fetcher"));
	if (access(s.exe, X_OK) != 0) {
		lt_warn(NULL, "supervisor: no livetap-fetcher at %s (%s): children run the one in PATH", s.exe,
		        strerror(errno));
		s.exe[0] = 0;
	}

	lt_info(NULL, "supervisor: starting as %s (lease %" PRId64 " ms, poll %" PRId64 " ms, children %s)", s.owner,
	        s.lease_ms, s.poll_ms, s.exe[0] ? s.exe : "livetap-fetcher from PATH");
	while (!lt_sig_stop_requested())
		tick(&s);
	lt_info(NULL, "supervisor: stopping %s", s.owner);
	shutdown_children(&s);
	PQfinish(s.pg);
	return 0;
}
