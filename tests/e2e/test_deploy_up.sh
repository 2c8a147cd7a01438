#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_deploy_up: deploy/up brings up the whole demo, twice in a row.
#
#   bash tests/e2e/test_deploy_up.sh BUILDDIR
#
# Runs `deploy/up --no-build --no-deps` on BUILDDIR's programs with a private
# state directory, so it starts its own Redis and PostgreSQL under it (as on a
# fresh machine), the three platform emulators, the processor, persister, API
# and fetcher supervisor. Checks: it prints the dashboard address and an API
# key; the dashboard page is served; the six demo rooms on all three platforms
# run; the API shows live hot words within a minute and messages of every
# platform reach PostgreSQL; the API key authorizes a write; SIGINT (Ctrl-C)
# stops every process it started, servers included. Then a second run on the
# same state directory comes up again with the same key and the data of the
# first run still there.
set -euo pipefail

build=${1:?usage: test_deploy_up.sh BUILDDIR}
build=$(cd "$build" && pwd)
src=${LT_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$src/tests/support/proc.sh"
for b in processor/livetap-processor persister/livetap-persister api/livetap-api fetcher/livetap-fetcher tests/emu/livetap-emu; do
	[ -x "$build/$b" ] || { echo "FAIL: $b not built in $build"; exit 1; }
done
command -v curl >/dev/null || { echo "FAIL: curl missing"; exit 1; }

tmp=$(mktemp -d "${LT_TEST_TMPDIR:-/tmp}/deploy-up.XXXXXX")
state=$tmp/var
up_pid=
cleanup() {
	if [ -n "$up_pid" ] && lt_alive "$up_pid"; then
		kill -TERM "$up_pid" 2>/dev/null || true
		lt_wait_gone "$up_pid" 30 || kill -KILL -- "-$up_pid" 2>/dev/null || true
	fi
	# Whatever a failed run left: the programs and both servers.
	for f in "$state"/run/*.pid; do [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done
	"$src/tests/support/servers.sh" stop "$state/servers" >/dev/null 2>&1 || true
	if [ -f "$state/servers/pg.home" ]; then rm -rf "$(cat "$state/servers/pg.home")"; fi
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

api_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
api=http://127.0.0.1:$api_port

# up RUN: start deploy/up as a user would from a terminal (SIGINT not
# ignored, as it is for background jobs of a script), in its own session.
up() {
	env -u LIVETAP_REDIS_URL -u LIVETAP_PG_DSN -u LIVETAP_API_KEYS \
		LIVETAP_STATE_DIR="$state" LT_BUILD_DIR="$build" LT_STOP_TIMEOUT=10 \
		LIVETAP_API_LISTEN=127.0.0.1:$api_port \
		python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.setsid()
os.execvp(sys.argv[1], sys.argv[1:])' "$src/deploy/up" --no-build --no-deps >"$tmp/up$1.out" 2>&1 &
	up_pid=$!
}

# wait_for SECONDS CMD...: poll CMD every 0.5 s until it succeeds.
wait_for() {
	local n=$(($1 * 2))
	shift
	for ((i = 0; i < n; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	return 1
}

get() { curl -fsS --max-time 5 "$api$1"; }
has_hotwords() { # PLATFORM ROOM: the 1-minute window has at least one word
	get "/api/v1/rooms/$1/$2/hotwords?window=1m&limit=5" |
		python3 -c 'import json,sys; d=json.load(sys.stdin); w=d.get("words", d.get("items", d)); sys.exit(0 if isinstance(w, list) and len(w) > 0 else 1)'
}
pg() { psql -X "host=127.0.0.1 port=$(cat "$state/servers/pg.port") dbname=livetap user=livetap" -Atqc "$1"; }
running_rooms() {
	get /api/v1/rooms | python3 -c 'import json,sys
d = json.load(sys.stdin); rooms = d.get("rooms", d.get("items", d))
print(sum(1 for x in rooms if (x.get("state") or x.get("status", {}).get("state")) == "running"))' 2>/dev/null || echo 0
}
all_running() { [ "$(running_rooms)" = 6 ]; }
stored_platforms() { [ "$(pg "SELECT count(DISTINCT platform) FROM live_messages")" = 3 ]; }

# check_run RUN: everything that must hold while deploy/up is up.
check_run() {
	local r=$1 t0 key
	t0=$(date +%s)
	if wait_for 90 grep -q 'press Ctrl-C to stop' "$tmp/up$r.out"; then
		pass "run $r: deploy/up came up in $(($(date +%s) - t0)) s"
	else
		fail "run $r: deploy/up did not come up"
		tail -n 30 "$tmp/up$r.out"
		return 1
	fi
	grep -q "dashboard: http://127.0.0.1:$api_port/" "$tmp/up$r.out" && pass "run $r: dashboard address printed" ||
		fail "run $r: no dashboard address"
	key=$(sed -n 's/^deploy\/up: API key: \([0-9a-f]*\) .*/\1/p' "$tmp/up$r.out")
	[ ${#key} = 48 ] && pass "run $r: API key printed" || fail "run $r: no API key in the output"
	echo "$key" >"$tmp/key$r"
	for p in processor persister api fetcher emu-bilibili emu-douyin emu-kook; do
		grep -q "started $p (pid" "$tmp/up$r.out" || fail "run $r: $p not started"
	done
	get / | grep -qi '<html' && pass "run $r: dashboard page served" || fail "run $r: no dashboard page"
	get /healthz >/dev/null && pass "run $r: /healthz ok" || fail "run $r: /healthz not ok"
	if wait_for 60 has_hotwords bilibili 21452505 && wait_for 30 has_hotwords douyin 646454278948 &&
		wait_for 30 has_hotwords kook 3344556677; then
		pass "run $r: live hot words on all three platforms $(($(date +%s) - t0)) s after start"
	else
		fail "run $r: no hot words within a minute"
	fi
	if wait_for 30 stored_platforms; then
		pass "run $r: messages of all three platforms in PostgreSQL"
	else
		fail "run $r: PostgreSQL has messages of $(pg "SELECT string_agg(DISTINCT platform, ',') FROM live_messages") only"
	fi
	# A child may be between a dropped connection and its reconnect (slow
	# under ASan): all six must be running at one moment within 30 s.
	if wait_for 30 all_running; then
		pass "run $r: the six demo rooms run"
	else
		fail "run $r: $(running_rooms) of 6 rooms running"
	fi
	code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "X-API-Key: $key" -H 'Content-Type: application/json' \
		-d '{"platform":"bilibili","room":"9'"$r"'"}' "$api/api/v1/rooms")
	case $code in 200 | 201) pass "run $r: the API key authorizes a write" ;; *) fail "run $r: POST /rooms with the key: $code" ;; esac
	code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "X-API-Key: $key" "$api/api/v1/rooms/bilibili/9$r")
	case $code in 200 | 204) pass "run $r: ... and a delete" ;; *) fail "run $r: DELETE /rooms with the key: $code" ;; esac
	code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
		-d '{"platform":"bilibili","room":"8'"$r"'"}' "$api/api/v1/rooms")
	[ "$code" = 401 ] && pass "run $r: a write without a key is refused" || fail "run $r: POST without a key: $code"
}

# stop RUN: Ctrl-C; every process deploy/up started is gone.
stop_run() {
	local r=$1 pids p left=0
	pids=$(cat "$state"/run/*.pid 2>/dev/null | tr '\n' ' ')
	pids+=" $(cat "$state/servers/redis.pid" 2>/dev/null || true)"
	pids+=" $(head -n 1 "$state/servers/pg/postmaster.pid" 2>/dev/null || head -n 1 "$(cat "$state/servers/pg.home" 2>/dev/null)/pg/postmaster.pid" 2>/dev/null || true)"
	kill -INT "$up_pid"
	if lt_wait_gone "$up_pid" 60; then
		wait "$up_pid" 2>/dev/null || true
		pass "run $r: deploy/up stopped on SIGINT"
	else
		fail "run $r: deploy/up still running 60 s after SIGINT"
	fi
	for p in $pids; do lt_alive "$p" && { left=$((left + 1)); ps -o pid,args -p "$p" | tail -n 1; }; done
	[ "$left" = 0 ] && pass "run $r: all $(echo $pids | wc -w) processes it started are gone" || fail "run $r: $left processes left"
	grep -q 'deploy/up: stopped' "$tmp/up$r.out" && pass "run $r: said it stopped" || fail "run $r: no 'stopped'"
	up_pid=
}

up 1
check_run 1 || true
n1=$(pg "SELECT count(*) FROM live_messages" 2>/dev/null || echo 0)
stop_run 1

up 2
check_run 2 || true
[ "$(cat "$tmp/key1")" = "$(cat "$tmp/key2")" ] && pass "run 2: same API key as run 1" || fail "run 2: the API key changed"
n2=$(pg "SELECT count(*) FROM live_messages" 2>/dev/null || echo 0)
[ "$n2" -gt "$n1" ] && [ "$n1" -gt 0 ] && pass "run 2: run 1's $n1 messages kept, $((n2 - n1)) more" ||
	fail "run 2: messages $n1 then $n2"
stop_run 2

echo "logs in $tmp"
[ "$failures" = 0 ] || { echo "$failures check(s) failed"; exit 1; }
rm -rf "$tmp"
echo "all checks passed"
