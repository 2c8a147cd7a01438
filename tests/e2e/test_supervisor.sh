#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_supervisor: livetap-fetcher --supervise against the real PostgreSQL
# (LIVETAP_PG_DSN) and livetap-emu, with short leases.
#
#   bash tests/e2e/test_supervisor.sh BUILDDIR
#
# The rooms table is created in a private schema (PGOPTIONS search_path) from
# the persister's first migration, so nothing here touches other tests'
# tables. Checks: a supervisor starts one child per enabled room (the
# emulator's /emu/stats counts one authenticated connection per room), a
# killed child is restarted, a disabled room's child stops at once (NOTIFY)
# and comes back when enabled, a PostgreSQL outage makes the supervisor stop
# its children before its leases can expire (and it recovers), a second supervisor shares the rooms without
# ever running a room twice, and after kill -9 of the first supervisor its
# children die with it and the second takes its rooms once the leases
# expire; SIGTERM stops every child and releases the leases; with
# supervisor.max_rooms two supervisors split the rooms.
set -euo pipefail

build=${1:?usage: test_supervisor.sh BUILDDIR}
build=$(cd "$build" && pwd)
src=${LT_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
emu_bin=$build/tests/emu/livetap-emu
fetcher_bin=$build/fetcher/livetap-fetcher
# lt_alive: a killed supervisor's children are orphans; where PID 1 does not
# reap they stay zombies, which `kill -0` still reports as running.
. "$src/tests/support/proc.sh"
[ -n "${LIVETAP_PG_DSN:-}" ] && [ -n "${LIVETAP_REDIS_URL:-}" ] || { echo "SKIP: LIVETAP_PG_DSN/LIVETAP_REDIS_URL not set"; exit 77; }
[ -x "$emu_bin" ] && [ -x "$fetcher_bin" ] || { echo "FAIL: programs not built in $build"; exit 1; }

tmp=$(mktemp -d "${LT_TEST_TMPDIR:-/tmp}/supervisor.XXXXXX")
schema=sup_$(basename "$tmp" | tr -dc 'a-zA-Z0-9' | tr 'A-Z' 'a-z')_$$
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	PGOPTIONS= psql "$LIVETAP_PG_DSN" -q -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

sql() { PGOPTIONS="-c search_path=$schema" psql "$LIVETAP_PG_DSN" -qAt -v ON_ERROR_STOP=1 -c "$1"; }

# ---- schema: the rooms table exactly as persister/sql/001_init.sql has it ----
PGOPTIONS= psql "$LIVETAP_PG_DSN" -q -v ON_ERROR_STOP=1 -c "CREATE SCHEMA $schema" >/dev/null
ddl=$(sed -n '/^CREATE TABLE rooms (/,/^\tFOR EACH ROW EXECUTE FUNCTION livetap_rooms_notify();/p' "$src/persister/sql/001_init.sql")
[ -n "$ddl" ] || { echo "FAIL: rooms DDL not found in persister/sql/001_init.sql"; exit 1; }
PGOPTIONS="-c search_path=$schema" psql "$LIVETAP_PG_DSN" -q -v ON_ERROR_STOP=1 >/dev/null <<<"$ddl"
sql "INSERT INTO rooms (platform, room_id) VALUES ('bilibili','10011'),('bilibili','10012'),('bilibili','10013')"

# ---- the emulator all children connect to ----
"$emu_bin" --platform bilibili --listen 127.0.0.1:0 --generate --rate 5 --seed 2 >"$tmp/emu.out" 2>"$tmp/emu.err" &
emu_pid=$!
pids+=("$emu_pid")
for _ in $(seq 1 100); do
	port=$(sed -n 's/^livetap-emu: .* listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/emu.out" 2>/dev/null || true)
	[ -n "$port" ] && break
	sleep 0.05
done
[ -n "$port" ] || { echo "FAIL: emulator did not start"; exit 1; }

rooms_json() { curl -s "http://127.0.0.1:$port/emu/stats" | python3 -c 'import json,sys; r=json.load(sys.stdin)["rooms"]; print(" ".join("%s=%d" % (k, r[k]) for k in sorted(r)))'; }
# wait_rooms WANT SECONDS: until the emulator's room list reads WANT
wait_rooms() {
	local want=$1 secs=$2 got
	for _ in $(seq 1 $((secs * 10))); do
		got=$(rooms_json)
		[ "$got" = "$want" ] && return 0
		sleep 0.1
	done
	echo "rooms: '$got', want '$want'"
	return 1
}
# never_twice SECONDS: sample the emulator; fail if a room ever has 2 connections
never_twice() {
	local secs=$1 got
	for _ in $(seq 1 $((secs * 10))); do
		got=$(rooms_json)
		case " $got" in *=[2-9]*) echo "a room ran twice: $got"; return 1 ;; esac
		sleep 0.1
	done
	return 0
}

start_sup() { # NAME OWNER
	PGOPTIONS="-c search_path=$schema" \
	LIVETAP_BILIBILI_API_BASE=http://127.0.0.1:$port \
	LIVETAP_BILIBILI_WS_URL=ws://127.0.0.1:$port/sub \
	LIVETAP_STATE_DIR=$tmp/state-$1 \
	LIVETAP_FETCHER_HEARTBEAT_S=1 \
	LIVETAP_FETCHER_STATUS_INTERVAL_MS=500 \
	LIVETAP_SUPERVISOR_LEASE_S=3 \
	LIVETAP_SUPERVISOR_POLL_S=1 \
	LIVETAP_SUPERVISOR_OWNER=$2 \
	LIVETAP_SUPERVISOR_RESTART_BASE_MS=200 \
	LIVETAP_SUPERVISOR_RESTART_MAX_MS=2000 \
	LIVETAP_SUPERVISOR_STOP_TIMEOUT_S=5 \
	LIVETAP_SUPERVISOR_MAX_ROOMS=${MAX_ROOMS:-0} \
		"$fetcher_bin" --supervise >"$tmp/$1.out" 2>"$tmp/$1.err" &
	sup_pid=$!
	pids+=("$sup_pid")
}
all3="10011=1 10012=1 10013=1"

# ---- 1. one child per enabled room ----
start_sup a sup-a
a_pid=$sup_pid
if wait_rooms "$all3" 10; then pass "supervisor A runs one fetcher per room"; else fail "A did not start all rooms"; fi
owners=$(sql "SELECT string_agg(DISTINCT lease_owner, ',') FROM rooms")
states=$(sql "SELECT string_agg(DISTINCT last_state, ',') FROM rooms")
[ "$owners" = sup-a ] && [ "$states" = running ] && pass "leases held by A, last_state running" || fail "owners '$owners' states '$states'"

# ---- 2. a killed child is restarted ----
victim=$(pgrep -P "$a_pid" | head -n 1)
kill -9 "$victim"
sleep 0.5
if wait_rooms "$all3" 10 && ! lt_alive "$victim"; then
	new=$(pgrep -P "$a_pid" | wc -l)
	grep -q 'died (killed by signal 9)' "$tmp/a.err" && [ "$new" = 3 ] && pass "killed child restarted (3 children again)" || fail "restart: children $new"
else
	fail "killed child not restarted"
fi

# ---- 3. disable / enable follows NOTIFY at once ----
sql "UPDATE rooms SET enabled = false WHERE room_id = '10012'"
if wait_rooms "10011=1 10013=1" 3; then pass "disabled room stopped within 3 s"; else fail "disabled room still runs"; fi
lo=$(sql "SELECT coalesce(lease_owner,'none') || '/' || coalesce(last_state,'') FROM rooms WHERE room_id = '10012'")
[ "$lo" = none/idle ] && pass "disabled room's lease released, state idle" || fail "disabled room: $lo"
sql "UPDATE rooms SET enabled = true WHERE room_id = '10012'"
if wait_rooms "$all3" 3; then pass "re-enabled room back within 3 s"; else fail "re-enabled room not back"; fi

# ---- 3a. PostgreSQL down: A cannot renew, fences itself, comes back after ----
# (needs LT_SERVERS_DIR from tests/run or servers.sh to restart the server)
if [ -n "${LT_SERVERS_DIR:-}" ]; then
	"$src/tests/support/servers.sh" kill-pg "$LT_SERVERS_DIR" >/dev/null 2>&1 || true
	if wait_rooms "" 6; then pass "PostgreSQL down: A stopped its children before its leases could expire"; else fail "no fencing while PostgreSQL was down"; fi
	"$src/tests/support/servers.sh" start-pg "$LT_SERVERS_DIR" >"$tmp/pg-restart.log" 2>&1
	if wait_rooms "$all3" 15; then pass "PostgreSQL back: A reconnected and runs its rooms again"; else fail "A did not come back after PostgreSQL"; fi
	grep -q 'leases not renewed' "$tmp/a.err" && pass "fencing logged" || fail "fencing not logged"
else
	echo "note: LT_SERVERS_DIR not set; the PostgreSQL-outage case is left out"
fi

# ---- 4. a second supervisor shares the rooms without running any twice ----
start_sup b sup-b
b_pid=$sup_pid
if never_twice 3; then pass "with two supervisors no room runs twice (3 s sampled)"; else fail "room ran twice"; fi
b_rooms=$(sql "SELECT count(*) FROM rooms WHERE lease_owner = 'sup-b'")
[ "$b_rooms" = 0 ] && pass "B takes nothing while A's leases are renewed" || fail "B holds $b_rooms rooms"

# ---- 5. kill -9 A: its children die with it, B takes the rooms after the leases expire ----
a_children=$(pgrep -P "$a_pid" | tr '\n' ' ')
kill -9 "$a_pid"
t0=$(date +%s.%N)
for _ in $(seq 1 50); do # they get SIGTERM and flush (the drain waits up to 1 s)
	alive=0
	for c in $a_children; do lt_alive "$c" && alive=$((alive + 1)); done
	[ "$alive" = 0 ] && break
	sleep 0.1
done
[ "$alive" = 0 ] && pass "A's children died with it (within 5 s)" || fail "$alive of A's children outlived it"
if wait_rooms "$all3" 15 && t1=$(date +%s.%N) && never_twice 1; then
	owners=$(sql "SELECT string_agg(DISTINCT lease_owner, ',') FROM rooms")
	[ "$owners" = sup-b ] && pass "B took all rooms $(python3 -c "print('%.1f' % ($t1 - $t0))") s after A died (lease 3 s)" \
		|| fail "owners after failover: $owners"
else
	fail "B did not take A's rooms"
fi

# ---- 6. SIGTERM: children stop, leases released ----
b_children=$(pgrep -P "$b_pid" | tr '\n' ' ')
kill -TERM "$b_pid"
rc=0
wait "$b_pid" || rc=$?
alive=0
for c in $b_children; do lt_alive "$c" && alive=$((alive + 1)); done
[ "$rc" = 0 ] && [ "$alive" = 0 ] && pass "SIGTERM: supervisor exits 0, children stopped" || fail "SIGTERM: exit $rc, $alive children alive"
left=$(sql "SELECT count(*) FROM rooms WHERE lease_owner IS NOT NULL")
[ "$left" = 0 ] && pass "leases released on a clean stop" || fail "$left leases left"
if wait_rooms "" 3; then pass "no connection left at the emulator"; else fail "connections left"; fi
st=$(redis-cli -u "$LIVETAP_REDIS_URL" --no-raw hget "live:{bilibili:10011}:status" state | tr -d '"')
[ "$st" = idle ] && pass "child wrote state idle on its way out" || fail "child status '$st' after stop"

# ---- 7. supervisor.max_rooms spreads the rooms over two supervisors ----
MAX_ROOMS=2 start_sup c sup-c
c_pid=$sup_pid
MAX_ROOMS=2 start_sup d sup-d
d_pid=$sup_pid
if wait_rooms "$all3" 10 && never_twice 2; then
	split=$(sql "SELECT string_agg(n::text, ',' ORDER BY n) FROM (SELECT count(*) AS n FROM rooms GROUP BY lease_owner) x")
	[ "$split" = "1,2" ] && pass "max_rooms=2: the rooms split 2 + 1 over two supervisors" || fail "max_rooms split '$split'"
else
	fail "two supervisors with max_rooms=2 did not run all rooms once"
fi
kill -TERM "$c_pid" "$d_pid"
wait "$c_pid" "$d_pid" || true

echo "logs in $tmp"
[ "$failures" = 0 ] || { echo "$failures check(s) failed"; exit 1; }
echo "all checks passed"
