#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_fetcher_bilibili: livetap-fetcher against livetap-emu --platform bilibili,
# end to end over real sockets on 127.0.0.1.
#
#   bash tests/e2e/test_fetcher_bilibili.sh BUILDDIR
#
# Needs LIVETAP_REDIS_URL (tests/run exports it; exit 77 without). Each case
# starts an emulator on a free port with a --sent-log, runs a fetcher with
# --stdout against it, stops both, and compares: every message the emulator
# wrote with a platform id (chat id_str, gift tid, super chat id) arrived
# exactly once with that msg_id and type, and every id-less kind arrived as
# often as it was sent. Cases: plain (bootstrap with the signed getDanmuInfo,
# WBI keys and tokens that rotate (auth refused, -352, keys fetched again),
# auth, heartbeats seen in live:{ROOM}:status, versions 0/2/3 mixed, --record
# then --replay gives the same lines), dropped connections and reconnects,
# garbage frames counted without a crash, a stalled server, live end, a
# room that does not exist, a server that refuses (state error), and Redis
# down (messages flow anyway).
set -euo pipefail

build=${1:?usage: test_fetcher_bilibili.sh BUILDDIR}
build=$(cd "$build" && pwd)
emu_bin=$build/tests/emu/livetap-emu
fetcher_bin=$build/fetcher/livetap-fetcher
[ -n "${LIVETAP_REDIS_URL:-}" ] || { echo "SKIP: LIVETAP_REDIS_URL not set"; exit 77; }
[ -x "$emu_bin" ] && [ -x "$fetcher_bin" ] || { echo "FAIL: programs not built in $build"; exit 1; }

# shellcheck source=tests/e2e/lib/fetcher.sh
. "$(dirname "$0")/lib/fetcher.sh"
lt_e2e_setup fetcher-bili

# start_emu NAME ARGS...: sets emu_pid, emu_port; sent-log in $tmp/NAME.sent
start_emu() { lt_emu_start bilibili "$@"; }

# start_fetcher NAME ROOM ARGS...: sets fetcher_pid; stdout in $tmp/NAME.out
start_fetcher() {
	local name=$1 room=$2; shift 2
	LIVETAP_BILIBILI_API_BASE=http://127.0.0.1:$emu_port \
	LIVETAP_BILIBILI_WS_URL=ws://127.0.0.1:$emu_port/sub \
	LIVETAP_STATE_DIR=$tmp/state \
	LIVETAP_FETCHER_HEARTBEAT_S=${HB_S:-1} \
	LIVETAP_FETCHER_RX_TIMEOUT_S=${RX_S:-0} \
	LIVETAP_FETCHER_BACKOFF_BASE_MS=100 \
	LIVETAP_FETCHER_BACKOFF_MAX_MS=${BACKOFF_MAX:-1000} \
	LIVETAP_FETCHER_MAX_FAILURES=${MAX_FAILURES:-12} \
	LIVETAP_FETCHER_STATUS_INTERVAL_MS=300 \
	LIVETAP_FETCHER_METRICS_LISTEN=${METRICS_LISTEN:-} \
		"$fetcher_bin" --platform bilibili --room "$room" --stdout "$@" \
		>"$tmp/$name.out" 2>"$tmp/$name.err" &
	fetcher_pid=$!
	pids+=("$fetcher_pid")
}

# stop PID: SIGTERM, then the exit status in $stop_rc
stop() {
	kill -TERM "$1" 2>/dev/null || true
	stop_rc=0
	wait "$1" || stop_rc=$?
}

status_field() { # ROOM FIELD
	redis-cli -u "$LIVETAP_REDIS_URL" --no-raw hget "live:{bilibili:$1}:status" "$2" 2>/dev/null | tr -d '"'
}

# compare NAME: exactly-once check of $tmp/NAME.out against $tmp/NAME.sent
compare() {
	python3 - "$tmp/$1.sent" "$tmp/$1.out" <<'PY'
import collections, json, sys
sent = [l.split() for l in open(sys.argv[1]) if l.strip()]
out = []
for line in open(sys.argv[2]):
    out.append(json.loads(line))   # every stdout line must be JSON
got = collections.Counter((o["type"], o["msg_id"]) for o in out)
bad = [(t, i, got[(t, i)]) for _, t, i in sent if i != "-" and got[(t, i)] != 1]
sent_kinds = collections.Counter(t for _, t, i in sent if i == "-")
out_kinds = collections.Counter(o["type"] for o in out)
kind_bad = {k: (n, out_kinds[k]) for k, n in sent_kinds.items() if out_kinds[k] != n}
ids = sum(1 for _, _, i in sent if i != "-")
if not sent:
    print("nothing was sent"); sys.exit(1)
if bad or kind_bad:
    print("sent %d, received %d; ids not exactly once: %s; kinds sent/received: %s"
          % (len(sent), len(out), bad[:5], kind_bad)); sys.exit(1)
print("sent %d (%d with platform ids), each received exactly once" % (len(sent), ids))
PY
}

# ---- 1. plain: bootstrap, auth, heartbeat, versions, record/replay ----------
room=21452505
redis-cli -u "$LIVETAP_REDIS_URL" del "live:{bilibili:$room}:status" >/dev/null
start_emu plain --generate --rate 100 --seed 7 --mix-versions
start_fetcher plain $room --record "$tmp/plain.cap"
sleep 3
st=$(status_field $room state)
[ "$st" = running ] && pass "status running while connected" || fail "status state '$st', want running"
hb=$(status_field $room heartbeats)
[ "${hb:-0}" -ge 1 ] && pass "heartbeat replies counted ($hb)" || fail "no heartbeat reply seen (heartbeats='$hb')"
stop "$emu_pid" # first: it closes cleanly, so the fetcher has read every frame written
stop "$fetcher_pid"
[ "$stop_rc" = 0 ] && pass "fetcher exits 0 on SIGTERM" || fail "fetcher exit $stop_rc on SIGTERM"
st=$(status_field $room state)
[ "$st" = idle ] && pass "status idle after stop" || fail "status '$st' after stop, want idle"
curl_ok=$(grep -c '"authenticated' "$tmp/plain.err" || true)
[ "$curl_ok" -ge 1 ] && pass "signed bootstrap and auth accepted" || fail "never authenticated: $(tail -3 "$tmp/plain.err")"
if out=$(compare plain); then pass "plain: $out"; else fail "plain: $out"; fi
n_other=$(grep -c '"cmd":"LOG_IN_NOTICE"' "$tmp/plain.out" || true)
[ "$n_other" = 1 ] && pass "LOG_IN_NOTICE once for uid 0" || fail "LOG_IN_NOTICE seen $n_other times"
masked=$(python3 -c '
import json,sys
chats=[json.loads(l) for l in open(sys.argv[1]) if "\"type\":\"chat\"" in l]
print(sum(1 for c in chats if c["user"]["id"]=="" and c["user"]["name"].endswith("***")), len(chats))' "$tmp/plain.out")
set -- $masked
[ "$1" = "$2" ] && [ "$2" -gt 0 ] && pass "anonymous chat masked: no user id ($1/$2)" || fail "masking: $masked"
"$fetcher_bin" --platform bilibili --room $room --replay "$tmp/plain.cap" --stdout >"$tmp/replay.out" 2>"$tmp/replay.err" \
	|| fail "replay exit $?: $(tail -2 "$tmp/replay.err")"
if cmp -s <(sort "$tmp/plain.out") <(sort "$tmp/replay.out"); then
	pass "--record then --replay yields the same $(wc -l <"$tmp/replay.out") lines"
else
	fail "--replay differs from the live output ($(wc -l <"$tmp/plain.out") vs $(wc -l <"$tmp/replay.out") lines)"
fi

# ---- 2. dropped connections: reconnect, nothing twice -------------------------
room=10002
start_emu drop --generate --rate 80 --seed 11 --drop-every 1
start_fetcher drop $room
sleep 4.5
rec=$(status_field $room reconnects)
stop "$emu_pid"; stop "$fetcher_pid" # the emulator first: it closes cleanly, the fetcher reads every frame
auths=$(grep -c '"authenticated' "$tmp/drop.err" || true)
[ "$auths" -ge 3 ] && pass "reconnected after drops ($auths sessions, reconnects=$rec)" || fail "only $auths sessions after drops"
if out=$(compare drop); then pass "drop: $out"; else fail "drop: $out"; fi

# ---- 2a. rotating WBI keys and tokens: auth refused, -352, fresh keys ----------
room=10012
start_emu wbi --generate --rate 60 --seed 12 --wbi-rotate 2 --drop-every 3
start_fetcher wbi $room
sleep 7
stop "$emu_pid"; stop "$fetcher_pid" # the emulator first: it closes cleanly, the fetcher reads every frame
refused=$(grep -c 'asked for a reconnect' "$tmp/wbi.err" || true)
n352=$(grep -c 'failed: bootstrap [^ ]*getDanmuInfo' "$tmp/wbi.err" || true)
auths=$(grep -c '"authenticated' "$tmp/wbi.err" || true)
[ "$refused" -ge 1 ] && [ "$n352" -ge 1 ] && [ "$auths" -ge 3 ] \
	&& pass "stale token refused ($refused), stale WBI keys -352 ($n352), then signed again ($auths sessions)" \
	|| fail "WBI rotation: refused=$refused -352=$n352 sessions=$auths"
if out=$(compare wbi); then pass "wbi: $out"; else fail "wbi: $out"; fi

# ---- 3. garbage frames: counted, skipped, no crash ------------------------------
room=10003
start_emu garbage --generate --rate 100 --seed 5 --garbage 0.3 --mix-versions
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
METRICS_LISTEN=127.0.0.1:$mport start_fetcher garbage $room
sleep 3
bad=$(status_field $room bad_frames)
mbad=$(curl -s "http://127.0.0.1:$mport/metrics" | sed -n "s/^livetap_fetcher_bad_frames_total{room=\"bilibili:$room\"} //p")
[ "${mbad:-0}" -ge 1 ] && pass "/metrics counts the garbage too (livetap_fetcher_bad_frames_total $mbad)" || fail "/metrics bad_frames '$mbad'"
kill -0 "$fetcher_pid" 2>/dev/null && pass "fetcher alive amid garbage" || fail "fetcher died on garbage"
# a live fetcher re-runs itself without glibc's per-thread cache of freed
# blocks, whose filling made its RSS creep for tens of minutes (common/app.h)
if tr '\0' '\n' <"/proc/$fetcher_pid/environ" 2>/dev/null | grep -qx 'GLIBC_TUNABLES=glibc.malloc.tcache_count=0'; then
	pass "live fetcher runs with glibc's tcache off"
else
	fail "live fetcher: GLIBC_TUNABLES not set in its environment"
fi
# ... by its own path, so ps and top still call it livetap-fetcher (the
# kernel names a process after the file it runs: /proc/self/exe gave "exe")
comm=$(cat "/proc/$fetcher_pid/comm" 2>/dev/null || true)
[ "$comm" = livetap-fetcher ] && pass "the re-run fetcher keeps its name ($comm)" || fail "fetcher's name after the re-run: '$comm'"
stop "$emu_pid"; stop "$fetcher_pid" # the emulator first: it closes cleanly, the fetcher reads every frame
[ "$stop_rc" = 0 ] || true
[ "${bad:-0}" -ge 1 ] && pass "garbage frames counted (bad_frames=$bad)" || fail "bad_frames='$bad'"
if out=$(compare garbage); then pass "garbage: $out"; else fail "garbage: $out"; fi

# ---- 4. a stalled server: the receive timeout reconnects -----------------------
room=10004
start_emu stall --generate --rate 20 --seed 9 --stall-every 1 --stall-for 3
RX_S=1 start_fetcher stall $room
sleep 4.5
stop "$emu_pid"; stop "$fetcher_pid" # the emulator first: it closes cleanly, the fetcher reads every frame
if grep -q 'nothing received for' "$tmp/stall.err"; then pass "stall detected by the receive timeout"; else fail "stall not detected"; fi
auths=$(grep -c '"authenticated' "$tmp/stall.err" || true)
[ "$auths" -ge 2 ] && pass "reconnected after the stall ($auths sessions)" || fail "no reconnect after stall ($auths)"

# ---- 5. live end -------------------------------------------------------------
room=10005
start_emu end --generate --rate 50 --seed 4 --duration 1
start_fetcher end $room
sleep 2.5
stop "$emu_pid"; stop "$fetcher_pid" # the emulator first: it closes cleanly, the fetcher reads every frame
n_end=$(grep -c '"type":"live_end"' "$tmp/end.out" || true)
[ "$n_end" = 1 ] && pass "live_end arrives once" || fail "live_end seen $n_end times"
if out=$(compare end); then pass "end: $out"; else fail "end: $out"; fi

# ---- 6. a room that does not exist: error, exit 4 ------------------------------
start_emu gone --generate --rate 1
start_fetcher gone 404404
gone_rc=0
for _ in $(seq 1 50); do kill -0 "$fetcher_pid" 2>/dev/null || break; sleep 0.1; done
wait "$fetcher_pid" || gone_rc=$?
stop "$emu_pid"
[ "$gone_rc" = 4 ] && pass "unknown room ends the fetcher (exit $gone_rc)" || fail "unknown room: exit $gone_rc"

# ---- 7. no server at all: backoff, then state error ----------------------------
room=10007
emu_port=1 # nothing listens there
redis-cli -u "$LIVETAP_REDIS_URL" del "live:{bilibili:$room}:status" >/dev/null
MAX_FAILURES=3 BACKOFF_MAX=200 start_fetcher refused $room
err_rc=0
for _ in $(seq 1 100); do kill -0 "$fetcher_pid" 2>/dev/null || break; sleep 0.1; done
wait "$fetcher_pid" || err_rc=$?
st=$(status_field $room state)
[ "$err_rc" = 3 ] && [ "$st" = error ] && pass "a room that keeps failing goes to error (exit 3, last_error: $(status_field $room last_error))" \
	|| fail "keeps failing: exit $err_rc, state '$st'"

# ---- 8. Redis down: the status cannot be written, messages flow all the same ----
room=10008
start_emu noredis --generate --rate 100 --seed 8
LIVETAP_REDIS_URL=redis://127.0.0.1:1/0 start_fetcher noredis $room
sleep 3
stop "$emu_pid"; stop "$fetcher_pid" # the emulator first: it closes cleanly, the fetcher reads every frame
[ "$stop_rc" = 0 ] || true
if out=$(compare noredis); then pass "Redis unreachable, messages still flow: $out"; else fail "noredis: $out"; fi

# ---- 9a. --script round trip: normalized -> Bilibili wire -> normalized ---------
# The plain run's output (minus `other`) is the emulator's script; what the
# fetcher decodes must match it field by field (type, platform ids, content,
# user, gift count and value), in order.
room=10010
grep -v '"type":"other"' "$tmp/plain.out" | head -n 300 >"$tmp/script.jsonl"
start_emu script --script "$tmp/script.jsonl" --rate 300 --no-mask --mix-versions
start_fetcher script $room
sleep 2.5
stop "$emu_pid"; stop "$fetcher_pid" # the emulator first: it closes cleanly, the fetcher reads every frame
if out=$(python3 - "$tmp/script.jsonl" "$tmp/script.out" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2]) if '"type":"other"' not in l]
if len(a) != len(b):
    print("script %d messages, decoded %d" % (len(a), len(b))); sys.exit(1)
for x, y in zip(a, b):
    keys = ["type", "content", "user"] + (["msg_id"] if x["type"] in ("chat", "gift", "superchat") else [])
    for k in keys:
        if x[k] != y[k]:
            print("%s differs: %r vs %r" % (k, x[k], y[k])); sys.exit(1)
    if x["type"] == "gift" and [x["extra"].get(k) for k in ("count", "value")] != [y["extra"].get(k) for k in ("count", "value")]:
        print("gift differs: %r vs %r" % (x["extra"], y["extra"])); sys.exit(1)
print("%d messages round-tripped field by field" % len(a))
PY
); then pass "script: $out"; else fail "script: $out"; fi

# ---- 9. through the real pipeline: pushed, applied, acknowledged ----------------
# A processor (Redis) and a persister (PostgreSQL, private schema) on ipc://
# sockets in a private state dir; the fetcher pushes (no --stdout). Every
# message sent must be in live_messages exactly once and in the room's
# Redis stream, and the fetcher's spool must be empty (everything acked).
if [ -n "${LIVETAP_PG_DSN:-}" ] && [ -x "$build/processor/livetap-processor" ] && [ -x "$build/persister/livetap-persister" ]; then
	room=10009
	schema=fetch_e2e_$$
	state=$tmp/pipe-state
	mkdir -p "$state"
	PGOPTIONS= psql "$LIVETAP_PG_DSN" -q -v ON_ERROR_STOP=1 -c "CREATE SCHEMA $schema" >/dev/null
	redis-cli -u "$LIVETAP_REDIS_URL" --scan --pattern "live:{bilibili:$room}:*" | while read -r k; do
		redis-cli -u "$LIVETAP_REDIS_URL" del "$k" >/dev/null
	done
	cons=()
	for prog in persister processor; do
		PGOPTIONS="-c search_path=$schema" LIVETAP_STATE_DIR=$state \
			"$build/$prog/livetap-$prog" >"$tmp/pipe.$prog.out" 2>"$tmp/pipe.$prog.err" &
		cons+=($!)
		pids+=($!)
	done
	for _ in $(seq 1 100); do
		[ -S "$state/processor.ipc" ] && [ -S "$state/persister.ipc" ] && break
		sleep 0.1
	done
	start_emu pipe --generate --rate 100 --seed 21 --mix-versions
	LIVETAP_BILIBILI_API_BASE=http://127.0.0.1:$emu_port LIVETAP_BILIBILI_WS_URL=ws://127.0.0.1:$emu_port/sub \
	LIVETAP_FETCHER_HEARTBEAT_S=1 LIVETAP_STATE_DIR=$state \
		"$fetcher_bin" --platform bilibili --room $room >"$tmp/pipe.out" 2>"$tmp/pipe.err" &
	fetcher_pid=$!
	pids+=($!)
	sleep 3
	stop "$emu_pid"          # the stream ends first, so nothing is sent after the fetcher stops
	sleep 1.5                # the last batches are acked
	stop "$fetcher_pid"
	[ "$stop_rc" = 0 ] && pass "pipeline: fetcher exits 0" || fail "pipeline: fetcher exit $stop_rc"
	PGOPTIONS="-c search_path=$schema" psql "$LIVETAP_PG_DSN" -qAt -c \
		"SELECT json_build_object('type', type, 'msg_id', msg_id) FROM live_messages WHERE platform = 'bilibili' AND room_id = '$room'" \
		>"$tmp/pipe.out"
	if out=$(compare pipe); then pass "pipeline: PostgreSQL has $out"; else fail "pipeline (PostgreSQL): $out"; fi
	rows=$(wc -l <"$tmp/pipe.out")
	xlen=$(redis-cli -u "$LIVETAP_REDIS_URL" xlen "live:{bilibili:$room}:messages")
	[ "$xlen" = "$rows" ] && pass "pipeline: Redis stream has the same $xlen messages" || fail "pipeline: stream $xlen vs $rows rows"
	left=$(find "$state/spool" -type f -size +0 2>/dev/null | wc -l)
	[ "$left" = 0 ] && pass "pipeline: every batch acknowledged (spool empty)" || fail "pipeline: $left spool files left"
	for p in "${cons[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	PGOPTIONS= psql "$LIVETAP_PG_DSN" -q -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
else
	fail "pipeline case needs LIVETAP_PG_DSN and the processor and persister built"
fi

echo "logs in $tmp"
[ "$failures" = 0 ] || { echo "$failures check(s) failed"; exit 1; }
echo "all checks passed"
