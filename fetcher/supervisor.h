/* SPDX-License-Identifier: MIT */
/*
 * supervisor: `livetap-fetcher --supervise`, one child fetcher process per
 * enabled room in PostgreSQL's rooms table, shared with other supervisors
 * (on this host or others) through leases.
 *
 * A room belongs to the supervisor named in rooms.lease_owner until
 * rooms.lease_until. The supervisor claims enabled rooms whose lease is free
 * or expired with `SELECT … FOR UPDATE SKIP LOCKED` (so two supervisors never
 * claim the same room), renews its leases every supervisor.lease_s / 3, and
 * runs a child only while it holds the lease: a room whose lease was lost
 * has its child stopped, and if renewing fails for most of a lease (the
 * database is unreachable) every child is stopped before the leases can
 * expire and be taken elsewhere. supervisor.max_rooms caps how many rooms
 * one supervisor leases, so that rooms spread over hosts (without it the
 * first supervisor takes every free room and the others stand by for
 * failover). A supervisor killed with -9 takes its
 * children with it (PR_SET_PDEATHSIG) and its leases expire after lease_s,
 * when another supervisor takes the rooms.
 *
 * It follows changes at once through LISTEN livetap_rooms (the rooms
 * trigger's NOTIFY) and rescans every supervisor.poll_s. A child that dies is
 * restarted after a backoff (supervisor.restart_base_ms doubling up to
 * restart_max_ms, with jitter); each child's state goes to rooms.last_state /
 * last_error (running, error with the exit status, idle). On SIGTERM every
 * child gets SIGTERM (it flushes its spool), SIGKILL after
 * supervisor.stop_timeout_s, and the leases are released so another
 * supervisor can take the rooms at once.
 */
#ifndef LT_SUPERVISOR_H
#define LT_SUPERVISOR_H

struct lt_app;

/* Run the supervisor until SIGTERM/SIGINT. Reads pg.dsn and supervisor.*
 * from lt_app_config(app); children are the livetap-fetcher installed next
 * to this executable (else the one in PATH) run with --platform P --room R
 * (and --config when one was given). Returns the exit
 * status: 0 after a clean stop, 1 when the setup failed. */
int lt_supervisor_run(struct lt_app *app);

#endif
