#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# soak: the whole pipeline under emulated load with faults, for a long time,
# then an exact account of what arrived and of every process's memory.
#
#   tests/soak/soak.sh [--builddir DIR] [--duration S] [--rooms N] [--rate R]
#                      [--warmup S] [--drop-every S] [--garbage P]
#                      [--platforms LIST] [--keep]
#
# Defaults: 20 rooms, 1000 messages/s in total, 1800 s, build/. What it runs,
# all on 127.0.0.1 in a private directory:
#
#   - one livetap-emu per room (--generate, its own seed, --rate R/N, faults
#     on: --drop-every closes the socket, --garbage corrupts a fraction of
#     frames), each writing what it sent to its own --sent-log; the rooms go
#     round-robin over the platforms that both livetap-emu and
#     livetap-fetcher support (Bilibili, Douyin, KOOK: it says which it used);
#   - one livetap-fetcher --platform P --room R per room, pointed at its
#     emulator through LIVETAP_<PLATFORM>_* endpoint settings, reconnecting
#     fast (100 ms doubling to 2 s) and giving up (state error) after 30
#     failures in a row, about a minute: longer than the drain at the end,
#     when the emulators are gone, but short enough to catch a room that
#     cannot reconnect during the run;
#   - one livetap-processor (Redis) and one livetap-persister (PostgreSQL, a
#     private schema chosen by PGOPTIONS search_path, dropped at the end).
#
# Every few seconds it samples each process's RSS (/proc/PID/status) and each
# room's live:{ROOM}:status state. At the end it stops the emulators (they
# close cleanly, so every frame in a sent-log was delivered), waits for the
# last batches to be acknowledged, stops the fetchers, and checks:
#
#   1. live_messages holds exactly what the emulators sent, per room: every
#      message with a platform id exactly once (same type), every id-less kind
#      (likes, entries, ...) as many times as sent; nothing lost, nothing
#      extra (rows of kinds the emulator never logs, such as `other`, are
#      shown but allowed); duplicates are impossible by the primary key and
#      show up as count mismatches;
#   2. no room's state was ever `error`;
#   3. every livetap process's RSS is flat after warm-up: the mean of the
#      samples in the 15 s after warm-up vs the mean of the last 3 samples
#      grows by less than 5%;
#   4. the fetchers' spools are empty (every batch acknowledged).
#
# It prints a table per room (sent, stored, lost, extra, fetcher RSS) and per
# process (RSS start and end), and exits non-zero on any failure (2 on bad
# usage). Redis and PostgreSQL: LIVETAP_REDIS_URL and LIVETAP_PG_DSN (tests/run
# exports them); without them it starts private ones with
# tests/support/servers.sh and stops them at the end.
set -euo pipefail

usage() {
	sed -n '3,8p' "$0" | sed 's/^# \{0,1\}//'
	echo "Defaults: --duration 1800 --rooms 20 --rate 1000 --warmup min(300, duration/4)"
	echo "          --drop-every max(10, duration/12) --garbage 0.01 --builddir build"
	echo "          --platforms bilibili,douyin,kook (those that work)"
}

src=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
build=$src/build
duration=1800
rooms=20
rate=1000
warmup=
drop_every=
garbage=0.01
want_platforms=bilibili,douyin,kook
keep=0
sample_s=5
while [ $# -gt 0 ]; do
	case $1 in
	--builddir) build=${2:?}; shift ;;
	--duration) duration=${2:?}; shift ;;
	--rooms) rooms=${2:?}; shift ;;
	--rate) rate=${2:?}; shift ;;
	--warmup) warmup=${2:?}; shift ;;
	--drop-every) drop_every=${2:?}; shift ;;
	--garbage) garbage=${2:?}; shift ;;
	--platforms) want_platforms=${2:?}; shift ;;
	--keep) keep=1 ;;
	-h | --help) usage; exit 0 ;;
	-*) echo "soak: unknown option '$1' (see --help)" >&2; exit 2 ;;
	*) build=$1 ;; # meson passes the build directory as the one argument
	esac
	shift
done
for v in duration rooms rate; do
	[[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ] || { echo "soak: --$v wants a positive integer" >&2; exit 2; }
done
for p in ${want_platforms//,/ }; do
	case $p in bilibili | douyin | kook) ;; *) echo "soak: --platforms: unknown platform '$p'" >&2; exit 2 ;; esac
done
[ -n "$warmup" ] || warmup=$((duration / 4 > 300 ? 300 : duration / 4))
[ -n "$drop_every" ] || drop_every=$((duration / 12 < 10 ? 10 : duration / 12))
[ "$warmup" -lt "$duration" ] || { echo "soak: --warmup must be shorter than --duration" >&2; exit 2; }
build=$(cd "$build" && pwd)
emu_bin=$build/tests/emu/livetap-emu
fetcher_bin=$build/fetcher/livetap-fetcher
for b in "$emu_bin" "$fetcher_bin" "$build/processor/livetap-processor" "$build/persister/livetap-persister"; do
	[ -x "$b" ] || { echo "FAIL: $b is not built"; exit 1; }
done

# Under AddressSanitizer, freed memory sits in a quarantine and RSS grows by
# design: the RSS check is then reported but not enforced.
sanitize=$(python3 -c '
import json, sys
try:
    opts = json.load(open(sys.argv[1]))
    print(next((o["value"] for o in opts if o["name"] == "b_sanitize"), "none"))
except Exception:
    print("none")' "$build/meson-info/intro-buildoptions.json")

tmp=$(mktemp -d "${LT_TEST_TMPDIR:-${TMPDIR:-/tmp}}/soak.XXXXXX")
chmod 755 "$tmp"
state=$tmp/state
mkdir -p "$state" "$tmp/sent" "$tmp/log"
schema=soak_$(basename "$tmp" | tr -dc 'a-zA-Z0-9' | tr 'A-Z' 'a-z')_$$
pids=()
own_servers=0
say() { printf 'soak: %s\n' "$*"; }

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ -n "${LIVETAP_PG_DSN:-}" ] && [ $keep = 0 ]; then
		PGOPTIONS= psql -X "$LIVETAP_PG_DSN" -q -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
	fi
	if [ -n "${LIVETAP_REDIS_URL:-}" ] && [ $keep = 0 ] && [ -f "$tmp/rooms" ]; then
		while read -r platform room _; do
			redis-cli -u "$LIVETAP_REDIS_URL" --scan --pattern "live:{$platform:$room}*" 2>/dev/null |
				xargs -r -n 100 redis-cli -u "$LIVETAP_REDIS_URL" del >/dev/null 2>&1 || true
		done <"$tmp/rooms"
	fi
	if [ $own_servers = 1 ]; then
		"$src/tests/support/servers.sh" stop "$tmp/servers" >/dev/null 2>&1 || true
		[ -f "$tmp/servers/pg.home" ] && rm -rf "$(cat "$tmp/servers/pg.home")"
	fi
	if [ $rc = 0 ] && [ $keep = 0 ]; then rm -rf "$tmp"; else echo "soak: files kept in $tmp"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${LIVETAP_REDIS_URL:-}" ] || [ -z "${LIVETAP_PG_DSN:-}" ]; then
	say "LIVETAP_REDIS_URL / LIVETAP_PG_DSN not set: starting a private Redis and PostgreSQL"
	eval "$("$src/tests/support/servers.sh" start "$tmp/servers")"
	own_servers=1
fi
PGOPTIONS= psql -X "$LIVETAP_PG_DSN" -q -v ON_ERROR_STOP=1 -c "CREATE SCHEMA $schema" >/dev/null

endpoints() { # PLATFORM PORT: the settings that point a fetcher at an emulator
	case $1 in
	bilibili) echo "LIVETAP_BILIBILI_API_BASE=http://127.0.0.1:$2 LIVETAP_BILIBILI_WS_URL=ws://127.0.0.1:$2/sub" ;;
	douyin) echo "LIVETAP_DOUYIN_WEB_BASE=http://127.0.0.1:$2 LIVETAP_DOUYIN_WS_URL=ws://127.0.0.1:$2/webcast/im/push/v2/" ;;
	kook) echo "LIVETAP_KOOK_API_BASE=http://127.0.0.1:$2/api/v3 LIVETAP_KOOK_TOKEN=emu-kook-token" ;;
	esac
}

wait_port() { # FILE: the port livetap-emu printed, or nothing after 5 s
	local p
	for _ in $(seq 1 100); do
		p=$(sed -n 's/^livetap-emu: .* listening on [0-9.]*:\([0-9]*\)$/\1/p' "$1" 2>/dev/null || true)
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.05
	done
	return 1
}

# ---- which platforms work ----------------------------------------------------
# A platform is used when both programs take it: the emulator starts with it
# (prints its listening line) and the fetcher does not answer "unknown
# platform" (it is run once against a closed port, giving up at the first
# failure). Their --help texts are not asked: they may lag the code.
platforms=()
for p in ${want_platforms//,/ }; do
	if LIVETAP_STATE_DIR=$tmp/probe-state LIVETAP_FETCHER_MAX_FAILURES=1 LIVETAP_REDIS_URL=redis://127.0.0.1:1/0 \
		env $(endpoints "$p" 1) timeout 10 "$fetcher_bin" --platform "$p" --room 1 --stdout >/dev/null 2>"$tmp/probe-fetcher-$p.err" ||
		true; grep -q 'unknown platform' "$tmp/probe-fetcher-$p.err"; then
		say "platform $p: livetap-fetcher does not support it, left out"
		continue
	fi
	"$emu_bin" --platform "$p" --listen 127.0.0.1:0 --generate --rate 1 >"$tmp/probe-$p.out" 2>"$tmp/probe-$p.err" &
	probe=$!
	if wait_port "$tmp/probe-$p.out" >/dev/null; then platforms+=("$p"); else
		say "platform $p: livetap-emu does not support it ($(head -c 200 "$tmp/probe-$p.err")), left out"
	fi
	kill -TERM "$probe" 2>/dev/null || true
	wait "$probe" 2>/dev/null || true
done
[ ${#platforms[@]} -gt 0 ] || { echo "FAIL: no platform works"; exit 1; }

per_room=$(python3 -c "print('%.3f' % ($rate / $rooms))")
say "$rooms rooms over ${platforms[*]}; $rate msg/s in total ($per_room per room); ${duration}s, warm-up ${warmup}s;" \
	"faults: --drop-every $drop_every --garbage $garbage"

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- consumers -------------------------------------------------------------------
export LIVETAP_STATE_DIR=$state
start() { # NAME CMD...: runs CMD in the background, logs in $tmp/log/NAME.{out,err}
	local name=$1; shift
	"$@" >"$tmp/log/$name.out" 2>"$tmp/log/$name.err" &
	pids+=($!)
	echo "$! $name" >>"$tmp/procs"
}
proc_mport=$(free_port)
pers_mport=$(free_port)
PGOPTIONS="-c search_path=$schema" LIVETAP_PERSISTER_METRICS_LISTEN=127.0.0.1:$pers_mport \
	start persister "$build/persister/livetap-persister"
LIVETAP_PROCESSOR_METRICS_LISTEN=127.0.0.1:$proc_mport start processor "$build/processor/livetap-processor"
for _ in $(seq 1 150); do
	[ -S "$state/processor.ipc" ] && [ -S "$state/persister.ipc" ] && break
	sleep 0.1
done
[ -S "$state/processor.ipc" ] && [ -S "$state/persister.ipc" ] || {
	echo "FAIL: processor/persister did not start"; tail -n 5 "$tmp"/log/*.err; exit 1
}

# ---- emulators and fetchers, one each per room ---------------------------------
# delivery_sample: per fetcher "platform:room pending window_bytes spool_bytes"
# from its /metrics (livetap_delivery_* gauges)
delivery_sample() {
	while read -r platform room _ mport; do
		curl -s --max-time 2 "http://127.0.0.1:$mport/metrics" 2>/dev/null | awk -v r="$platform:$room" '
			/^livetap_delivery_pending_records[{ ]/ {p = $NF}
			/^livetap_delivery_window_bytes[{ ]/ {w = $NF}
			/^livetap_delivery_spool_bytes[{ ]/ {s = $NF}
			END {print r, (p == "" ? "?" : p), (w == "" ? "?" : w), (s == "" ? "?" : s)}' || true
	done <"$tmp/rooms"
	return 0 # a fetcher that is gone reads as "?", never as a failure
}
base=$((700000 + RANDOM % 200000))
# The KOOK emulator serves one channel (3344556677) with one token: one KOOK
# room at most, the others go round-robin over the other platforms.
kook_used=0
for i in $(seq 0 $((rooms - 1))); do
	platform=${platforms[$((i % ${#platforms[@]}))]}
	room=$((base + i))
	if [ "$platform" = kook ]; then
		if [ $kook_used = 0 ] && [ ${#platforms[@]} -gt 0 ]; then
			kook_used=1
			room=3344556677
		else
			others=()
			for q in "${platforms[@]}"; do [ "$q" = kook ] || others+=("$q"); done
			[ ${#others[@]} -gt 0 ] && platform=${others[$((i % ${#others[@]}))]}
			[ "$platform" = kook ] && room=3344556677 # only KOOK works: rooms share the channel
		fi
	fi
	name=$platform-$room
	redis-cli -u "$LIVETAP_REDIS_URL" --scan --pattern "live:{$platform:$room}*" | xargs -r redis-cli -u "$LIVETAP_REDIS_URL" del >/dev/null
	start "emu-$name" "$emu_bin" --platform "$platform" --listen 127.0.0.1:0 --generate --rate "$per_room" \
		--seed $((1000 + i)) --drop-every "$drop_every" --garbage "$garbage" --sent-log "$tmp/sent/$name.log"
	port=$(wait_port "$tmp/log/emu-$name.out") || { echo "FAIL: emulator $name did not start"; cat "$tmp/log/emu-$name.err"; exit 1; }
	mport=$(free_port)
	# shellcheck disable=SC2046 # the endpoint settings are words by design
	env $(endpoints "$platform" "$port") LIVETAP_FETCHER_METRICS_LISTEN=127.0.0.1:$mport \
		LIVETAP_FETCHER_HEARTBEAT_S=5 LIVETAP_FETCHER_BACKOFF_BASE_MS=100 LIVETAP_FETCHER_BACKOFF_MAX_MS=2000 \
		LIVETAP_FETCHER_STATUS_INTERVAL_MS=1000 LIVETAP_FETCHER_MAX_FAILURES=30 \
		"$fetcher_bin" --platform "$platform" --room "$room" >"$tmp/log/fetcher-$name.out" 2>"$tmp/log/fetcher-$name.err" &
	pids+=($!)
	echo "$! fetcher-$name" >>"$tmp/procs"
	echo "$platform $room $port $mport" >>"$tmp/rooms"
done
say "pipeline up: $(wc -l <"$tmp/procs") processes; files in $tmp"

# cpu_sample LABEL: each process's CPU seconds so far (utime + stime) as
# "LABEL name seconds" lines in $tmp/cpu
cpu_sample() {
	local tck
	tck=$(getconf CLK_TCK)
	while read -r pid name; do
		awk -v l="$1" -v n="$name" -v t="$tck" '{sub(/^.*\) /, ""); printf "%s %s %.2f\n", l, n, ($12 + $13) / t}' \
			"/proc/$pid/stat" 2>/dev/null || true
	done <"$tmp/procs" >>"$tmp/cpu"
	# the servers too, when this user can see them (PostgreSQL: the postmaster
	# and its children alive at both samples, the persister's backend among them)
	local p
	for p in $redis_pid; do
		awk -v l="$1" -v p="$p" -v t="$tck" '{sub(/^.*\) /, ""); printf "%s redis-%s %.2f\n", l, p, ($12 + $13) / t}' \
			"/proc/$p/stat" 2>/dev/null || true
	done >>"$tmp/cpu"
	for p in $pg_pid $(pgrep -P "${pg_pid:-1}" 2>/dev/null); do
		[ -n "$pg_pid" ] || break
		awk -v l="$1" -v p="$p" -v t="$tck" '{sub(/^.*\) /, ""); printf "%s postgres-%s %.2f\n", l, p, ($12 + $13) / t}' \
			"/proc/$p/stat" 2>/dev/null || true
	done >>"$tmp/cpu"
}
redis_pid=$(redis-cli -u "$LIVETAP_REDIS_URL" info server 2>/dev/null | awk -F: '/^process_id:/ {print $2}' | tr -d '\r' || true)
pg_pid=$(PGOPTIONS= psql -X "$LIVETAP_PG_DSN" -Atqc "SHOW data_directory" 2>/dev/null | xargs -r -I{} head -n1 {}/postmaster.pid 2>/dev/null || true)

# ---- the run: sample RSS and room states -----------------------------------------
: >"$tmp/cpu"
cpu_sample start
t0=$(date +%s)
: >"$tmp/rss"
: >"$tmp/states"
: >"$tmp/delivery"
next_report=$((t0 + 60))
while :; do
	now=$(date +%s)
	el=$((now - t0))
	[ $el -ge "$duration" ] && break
	while read -r pid name; do
		rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
		echo "$el $name ${rss:-dead}" >>"$tmp/rss"
	done <"$tmp/procs"
	delivery_sample | sed "s/^/$el /" >>"$tmp/delivery"
	while read -r platform room _; do
		st=$(redis-cli -u "$LIVETAP_REDIS_URL" --raw hget "live:{$platform:$room}:status" state 2>/dev/null || true)
		echo "$el $platform:$room ${st:-none}" >>"$tmp/states"
	done <"$tmp/rooms"
	if [ "$now" -ge $next_report ]; then
		rows=$(PGOPTIONS="-c search_path=$schema" psql -X "$LIVETAP_PG_DSN" -Atqc "SELECT count(*) FROM live_messages" 2>/dev/null || echo '?')
		say "${el}s: $rows rows in live_messages; $(awk -v t=$el '$1 == t && $3 == "dead"' "$tmp/rss" | wc -l) processes dead"
		next_report=$((now + 60))
	fi
	sleep $sample_s
done

cpu_sample end
run_s=$(($(date +%s) - t0))

# consumers: "processor messages+duplicates applied, persister rows" from their /metrics
consumers() {
	local a b
	a=$(curl -s --max-time 2 "http://127.0.0.1:$proc_mport/metrics" 2>/dev/null |
		awk '/^livetap_processor_(messages|duplicates)_total /{n += $NF} END {print n + 0}' || true)
	b=$(curl -s --max-time 2 "http://127.0.0.1:$pers_mport/metrics" 2>/dev/null |
		awk '/^livetap_persister_rows_total[{ ]/{n += $NF} END {print n + 0}' || true)
	echo "processor applied ${a:-?}, persister wrote ${b:-?}"
	return 0
}

# ---- the end: emulators first, then wait for the acks, then the fetchers ---------
say "end of the run: $(cat "$tmp"/sent/*.log 2>/dev/null | wc -l) messages sent so far; $(consumers);" \
	"fetchers pending: $(delivery_sample | awk '$2 != "?" {p += $2} END {print p + 0}') records"
# The rooms' states at the end of the run, before the emulators go away.
final_states=$(while read -r platform room _; do
	echo "$platform:$room $(redis-cli -u "$LIVETAP_REDIS_URL" --raw hget "live:{$platform:$room}:status" state 2>/dev/null)"
done <"$tmp/rooms")
total_sent() { cat "$tmp"/sent/*.log 2>/dev/null | wc -l; }
while read -r pid name; do
	case $name in emu-*) kill -TERM "$pid" 2>/dev/null || true ;; esac
done <"$tmp/procs"
while read -r pid name; do
	case $name in emu-*) wait "$pid" 2>/dev/null || true ;; esac
done <"$tmp/procs"
sent=$(total_sent)
say "emulators stopped: $sent messages sent; waiting for the last batches"
# rows of the kinds the emulators logged (the fetchers also store kinds they
# never log, such as `other`), until they reach what was sent or stop growing
kinds=$(cat "$tmp"/sent/*.log | awk '{print $2}' | sort -u | sed "s/.*/'&'/" | paste -sd, -)
last=-1
stable=0
wait_t0=$(date +%s)
while [ $(($(date +%s) - wait_t0)) -lt 120 ]; do
	rows=$(PGOPTIONS="-c search_path=$schema" psql -X "$LIVETAP_PG_DSN" -Atqc \
		"SELECT count(*) FROM live_messages WHERE type IN (${kinds:-''})" 2>/dev/null || echo 0)
	[ "$rows" -ge "$sent" ] && break
	if [ "$rows" = "$last" ]; then stable=$((stable + 1)); else stable=0; fi
	[ $stable -ge 10 ] && break
	last=$rows
	sleep 1
done
# then until every fetcher has every batch acknowledged by both consumer
# kinds (the processor may still be catching up when PostgreSQL has it all)
drain_t0=$(date +%s)
while [ $(($(date +%s) - drain_t0)) -lt 90 ]; do
	pending=$(delivery_sample | awk '{ if ($2 == "?") u++; else p += $2 } END {print p + 0, u + 0}')
	[ "$pending" = "0 0" ] && break
	[ "${pending% *}" = 0 ] && [ $(($(date +%s) - drain_t0)) -ge 10 ] && break # the silent ones are gone
	sleep 1
done
say "drained in $(($(date +%s) - drain_t0))s (records still pending, fetchers not answering: $pending); $(consumers)"
delivery_sample | sed "s/^/end /" >>"$tmp/delivery"
while read -r pid name; do
	case $name in fetcher-*) kill -TERM "$pid" 2>/dev/null || true ;; esac
done <"$tmp/procs"
# A fetcher gets 30 s to exit after SIGTERM; one that hangs is reported (with
# its threads' stacks in log/NAME.stacks when gdb is there) and killed.
fetcher_rc=0
: >"$tmp/hung"
stop_t0=$(date +%s)
while read -r pid name; do
	case $name in fetcher-*) ;; *) continue ;; esac
	while kill -0 "$pid" 2>/dev/null && [ $(($(date +%s) - stop_t0)) -lt 30 ]; do sleep 0.2; done
	if kill -0 "$pid" 2>/dev/null && ! grep -q '^Z' <(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null); then
		command -v gdb >/dev/null && timeout 20 gdb -p "$pid" -batch -ex "thread apply all bt" >"$tmp/log/$name.stacks" 2>&1 || true
		echo "$name" >>"$tmp/hung"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rc=0
	wait "$pid" || rc=$?
	if [ $rc != 0 ]; then echo "$name exit $rc" >>"$tmp/fetcher_exits"; fetcher_rc=1; fi
done <"$tmp/procs"
spool_left=$(find "$state/spool" -type f -name '*.seg' -size +0 2>/dev/null | wc -l)
spool_bytes=$(find "$state/spool" -type f ! -name '.lock' -printf '%s\n' 2>/dev/null | awk '{s += $1} END {print s + 0}')
PGOPTIONS="-c search_path=$schema" psql -X "$LIVETAP_PG_DSN" -Atq -F $'\t' -c \
	"SELECT platform, room_id, type, msg_id FROM live_messages" >"$tmp/stored.tsv"
for n in processor persister; do
	pid=$(awk -v n=$n '$2 == n {print $1}' "$tmp/procs")
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
done
pids=()

# ---- the account ---------------------------------------------------------------------
echo "$final_states" >"$tmp/final_states"
python3 - "$tmp" "$warmup" "$duration" "$fetcher_rc" "$spool_left" "$spool_bytes" "$sanitize" "$run_s" <<'PY'
import collections, glob, os, sys
sanitize = sys.argv[7]
run_s = int(sys.argv[8])

tmp, warmup, duration, fetcher_rc, spool_left, spool_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
failures = []

rooms = [l.split() for l in open(os.path.join(tmp, "rooms"))]
stored = collections.defaultdict(list)
for line in open(os.path.join(tmp, "stored.tsv")):
    p, r, t, i = line.rstrip("\n").split("\t")
    stored[(p, r)].append((t, i))

rows = []
tot = collections.Counter()
for platform, room in (r[:2] for r in rooms):
    sent = [l.split() for l in open(os.path.join(tmp, "sent", "%s-%s.log" % (platform, room))) if l.strip()]
    got = collections.Counter(stored[(platform, room)])
    got_types = collections.Counter(t for t, _ in stored[(platform, room)])
    sent_ids = collections.Counter((t, i) for _, t, i in sent if i != "-")
    sent_kinds = collections.Counter(t for _, t, i in sent if i == "-")
    id_types = {t for t, _ in sent_ids}
    lost = dup = extra = 0
    for key, n in sent_ids.items():
        g = got.get(key, 0)
        if g < n: lost += n - g
        if g > n: dup += g - n
    # stored rows with a platform id the emulator never sent (same kinds)
    extra += sum(n for (t, i), n in got.items() if t in id_types and (t, i) not in sent_ids)
    for k, n in sent_kinds.items():
        g = got_types.get(k, 0)
        if g < n: lost += n - g
        if g > n: dup += g - n
    matched_kinds = id_types | set(sent_kinds)
    n_stored = sum(n for t, n in got_types.items() if t in matched_kinds)
    n_other = sum(n for t, n in got_types.items() if t not in matched_kinds)
    rows.append((platform, room, len(sent), n_stored, lost, dup, extra, n_other))
    tot.update(sent=len(sent), stored=n_stored, lost=lost, dup=dup, extra=extra, other=n_other)
    if not sent: failures.append("%s:%s: the emulator sent nothing" % (platform, room))
    if lost or dup or extra:
        failures.append("%s:%s: sent %d, stored %d: %d lost, %d too many, %d never sent" % (platform, room, len(sent), n_stored, lost, dup, extra))

# RSS: per process, mean of the samples in [warmup, warmup + 15] vs the mean
# of the last three samples
samples = collections.defaultdict(list)
for line in open(os.path.join(tmp, "rss")):
    t, name, v = line.split()
    samples[name].append((int(t), v))
rss = {}
for name, s in samples.items():
    if any(v == "dead" for _, v in s):
        first_dead = next(t for t, v in s if v == "dead")
        failures.append("%s died during the run (at %ds)" % (name, first_dead))
        continue
    first = s[0][1]
    start = [int(v) for t, v in s if warmup <= t <= warmup + 15] or [int(s[len(s) // 2][1])]
    end = [int(v) for _, v in s[-3:]]
    a, b = sum(start) / len(start), sum(end) / len(end)
    g = (b - a) / a * 100 if a else 0.0
    rss[name] = (int(first), a, b, g, max(int(v) for _, v in s))
    if not name.startswith("emu-") and g >= 5.0 and sanitize == "none":
        failures.append("%s: RSS grew %.1f%% after warm-up (%.0f -> %.0f kB)" % (name, g, a, b))

states = collections.defaultdict(collections.Counter)
for line in open(os.path.join(tmp, "states")):
    t, room, st = line.split()
    states[room][st] += 1
for room, c in sorted(states.items()):
    if c.get("error"):
        failures.append("%s: state error in %d of %d samples" % (room, c["error"], sum(c.values())))
for line in open(os.path.join(tmp, "final_states")):
    parts = line.split()
    if len(parts) == 2 and parts[1] == "error":
        failures.append("%s: state error at the end" % parts[0])
hung = [l.strip() for l in open(os.path.join(tmp, "hung")) if l.strip()]
if hung:
    failures.append("%d fetcher(s) hung after SIGTERM and were killed: %s (stacks in log/*.stacks)" % (len(hung), " ".join(hung)))
if fetcher_rc:
    exits = [l.strip() for l in open(os.path.join(tmp, "fetcher_exits"))] if os.path.exists(os.path.join(tmp, "fetcher_exits")) else []
    failures.append("fetchers that did not exit 0 on SIGTERM: %s" % ", ".join(exits))
if spool_left:
    failures.append("%d spool segments left unacknowledged (%d bytes)" % (spool_left, spool_bytes))

print()
print("%-9s %-8s %9s %9s %6s %6s %6s %7s %10s %10s %7s" % ("platform", "room", "sent", "stored", "lost", "dups", "extra", "other", "fetch kB0", "fetch kB1", "growth"))
for platform, room, n, s, lost, dup, extra, other in rows:
    f = rss.get("fetcher-%s-%s" % (platform, room))
    a, b, g = (f[1], f[2], "%+.1f%%" % f[3]) if f else (0, 0, "dead")
    print("%-9s %-8s %9d %9d %6d %6d %6d %7d %10.0f %10.0f %7s" % (platform, room, n, s, lost, dup, extra, other, a, b, g))
print("%-18s %9d %9d %6d %6d %6d %7d" % ("total", tot["sent"], tot["stored"], tot["lost"], tot["dup"], tot["extra"], tot["other"]))
print()
print("%-28s %10s %12s %12s %10s %8s" % ("process", "first kB", "warm-up kB", "end kB", "peak kB", "growth"))
for name in sorted(rss, key=lambda n: (n.startswith("emu-"), n.startswith("fetcher-"), n)):
    first, a, b, g, peak = rss[name]
    if name.startswith(("fetcher-", "emu-")) and name not in ("fetcher-" + rows[0][0] + "-" + rows[0][1], "emu-" + rows[0][0] + "-" + rows[0][1]):
        continue
    print("%-28s %10d %12.0f %12.0f %10d %7.1f%%" % (name, first, a, b, peak, g))
fg = [v for n, v in rss.items() if n.startswith("fetcher-")]
eg = [v for n, v in rss.items() if n.startswith("emu-")]
for label, vs in (("fetchers (all)", fg), ("emulators (all, not checked)", eg)):
    if vs:
        print("%-28s %10s %12.0f %12.0f %10d %7.1f%%  (max growth of one: %.1f%%)" % (
            label, "", sum(v[1] for v in vs) / len(vs), sum(v[2] for v in vs) / len(vs),
            max(v[4] for v in vs), sum(v[3] for v in vs) / len(vs), max(v[3] for v in vs)))
print()
st = collections.Counter()
for c in states.values(): st.update(c)
print("room states sampled: %s" % ", ".join("%s %d" % kv for kv in sorted(st.items())))
# the fetchers' delivery windows over the run (sums over fetchers)
dl = collections.defaultdict(lambda: [0, 0, 0])
for line in open(os.path.join(tmp, "delivery")):
    t, room, p, w, sp = line.split()
    if "?" in (p, w, sp): continue
    for k, v in enumerate((p, w, sp)): dl[t][k] += float(v)
ts = sorted((int(t) for t in dl if t != "end"))
if ts:
    def at(t): return dl[str(t)]
    wu = min(ts, key=lambda t: abs(t - warmup))
    print("fetchers, summed: pending records / window kB / spool kB: at %ds %d / %.0f / %.0f; at %ds %d / %.0f / %.0f; max pending %d; after the drain %s" % (
        wu, at(wu)[0], at(wu)[1] / 1024, at(wu)[2] / 1024, ts[-1], at(ts[-1])[0], at(ts[-1])[1] / 1024, at(ts[-1])[2] / 1024,
        max(dl[str(t)][0] for t in ts), "%d / %.0f / %.0f" % (dl["end"][0], dl["end"][1] / 1024, dl["end"][2] / 1024) if "end" in dl else "?"))
print("spool after stop: %d segments, %d bytes" % (spool_left, spool_bytes))
# CPU over the run (start of sampling to end of run), by kind of process
cpu = collections.defaultdict(dict)
for line in open(os.path.join(tmp, "cpu")):
    label, name, sec = line.split()
    cpu[name][label] = float(sec)
groups = collections.defaultdict(float)
for name, v in cpu.items():
    if "start" in v and "end" in v:
        groups[name.split("-")[0]] += v["end"] - v["start"]
if groups:
    print("CPU seconds over the %ds run: %s" % (run_s, ", ".join(
        "%s %.1f (%.0f%% of a core)" % (g, c, 100 * c / max(run_s, 1)) for g, c in sorted(groups.items()))))
if sanitize != "none":
    print("RSS growth not checked: this build uses -Db_sanitize=%s (ASan keeps freed memory in quarantine)" % sanitize)
if failures:
    print()
    for f in failures: print("FAIL:", f)
    sys.exit(1)
print("soak passed: %d messages sent, %d stored, 0 lost, 0 duplicated; %s" % (tot["sent"], tot["stored"], "RSS flat after warm-up" if sanitize == "none" else "RSS not checked (sanitizer build)"))
PY
