#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_fetcher_kook: livetap-fetcher --platform kook against livetap-emu
# --platform kook, end to end over real sockets on 127.0.0.1.
#
#   bash tests/e2e/test_fetcher_kook.sh BUILDDIR
#
# Needs LIVETAP_REDIS_URL (tests/run exports it; exit 77 without): the
# fetcher's status hash is read from it. Each case starts an emulator on a
# free port with a --sent-log, runs a fetcher with --stdout against it, stops
# the emulator first (it flushes and closes cleanly) and then the fetcher, and
# checks: every event the emulator wrote for the channel arrived exactly once
# with its msg_id and type, none arrived twice, and they came out in sn order
# (the emulator's msg_ids end in a counter of production order). Cases: plain
# with zlib frames, out-of-order and repeated sn (gateway lookup with the bot
# token, HELLO, --record then --replay gives the same lines, the token never
# in the log); dropped connections resumed without loss or duplicates;
# forced reconnects (s=5 40108) starting fresh sessions; garbage frames
# (corrupt zlib) counted without a crash; a wrong token (HTTP 401, never
# running); the resume state surviving a fetcher restart; HELLO 40103 (a
# fresh lookup); a second session for the token refused (s=5); no HELLO
# within 6 s (the connection given up after 6 s); PING/PONG
# (one case of ~40 s, since the PING interval is 30 s ± 5 s).
set -euo pipefail

build=${1:?usage: test_fetcher_kook.sh BUILDDIR}
build=$(cd "$build" && pwd)
emu_bin=$build/tests/emu/livetap-emu
fetcher_bin=$build/fetcher/livetap-fetcher
[ -n "${LIVETAP_REDIS_URL:-}" ] || { echo "SKIP: LIVETAP_REDIS_URL not set"; exit 77; }
[ -x "$emu_bin" ] && [ -x "$fetcher_bin" ] || { echo "FAIL: programs not built in $build"; exit 1; }

# shellcheck source=tests/e2e/lib/fetcher.sh
. "$(dirname "$0")/lib/fetcher.sh"
lt_e2e_setup fetcher-kook

room=3344556677 # the emulator's channel
token=emu-kook-token

# start_emu NAME ARGS...: sets emu_pid, emu_port (KOOK switches from $KOOK)
start_emu() { lt_emu_start kook "$@"; }

# start_fetcher NAME ARGS...: sets fetcher_pid; stdout in $tmp/NAME.out
start_fetcher() {
	local name=$1; shift
	LIVETAP_KOOK_API_BASE=http://127.0.0.1:$emu_port/api/v3 \
	LIVETAP_KOOK_TOKEN=${TOKEN:-$token} \
	LIVETAP_STATE_DIR=${STATE:-$tmp/state-$name} \
	LIVETAP_FETCHER_BACKOFF_BASE_MS=100 \
	LIVETAP_FETCHER_BACKOFF_MAX_MS=1000 \
	LIVETAP_FETCHER_MAX_FAILURES=${MAX_FAILURES:-50} \
	LIVETAP_FETCHER_STATUS_INTERVAL_MS=300 \
		"$fetcher_bin" --platform kook --room "$room" --stdout "$@" \
		>>"$tmp/$name.out" 2>>"$tmp/$name.err" &
	fetcher_pid=$!
	pids+=("$fetcher_pid")
}

stop() {
	kill -TERM "$1" 2>/dev/null || true
	stop_rc=0
	wait "$1" || stop_rc=$?
}

status_field() { # FIELD
	redis-cli -u "$LIVETAP_REDIS_URL" --no-raw hget "live:{kook:$room}:status" "$1" 2>/dev/null | tr -d '"'
}

# compare NAME: exactly once and in sn order, against $tmp/NAME.sent
compare() {
	python3 - "$tmp/$1.sent" "$tmp/$1.out" <<'PY'
import collections, json, sys
sent = {}
for l in open(sys.argv[1]):
    p = l.split()
    if len(p) == 3:
        sent[p[2]] = p[1]
out = [json.loads(l) for l in open(sys.argv[2])]
ids = [o["msg_id"] for o in out]
dups = [i for i, n in collections.Counter(ids).items() if n > 1]
missing = [i for i in sent if i not in set(ids)]
extra = [i for i in ids if i not in sent]
wrong = [(i, sent[i], o["type"]) for o, i in zip(out, ids) if i in sent and sent[i] != o["type"]]
# sn order: within one session the counter at the end of the id grows;
# a fresh session (after s=5) may give again what the old one had not
seq = [int(i[-12:], 16) for i in ids]
back = sum(1 for a, b in zip(seq, seq[1:]) if b <= a)
if not sent:
    print("nothing was sent"); sys.exit(1)
if dups or missing or extra or wrong or back > int(sys.argv[3] if len(sys.argv) > 3 else 0):
    print("sent %d, received %d; dups %s missing %s extra %s wrong types %s out of order %d"
          % (len(sent), len(out), dups[:3], missing[:3], extra[:3], wrong[:3], back)); sys.exit(1)
print("sent %d, each received exactly once, in order" % len(sent))
PY
}

# ---- 1. plain: zlib, reorder and duplicates, record/replay -------------------
redis-cli -u "$LIVETAP_REDIS_URL" del "live:{kook:$room}:status" >/dev/null
KOOK=reorder=0.1,dup=0.1 start_emu plain --generate --rate 100 --seed 7
start_fetcher plain --record "$tmp/plain.cap"
sleep 3
st=$(status_field state)
[ "$st" = running ] && pass "status running while connected" || fail "status state '$st', want running"
stop "$emu_pid"
stop "$fetcher_pid"
[ "$stop_rc" = 0 ] && pass "fetcher exits 0 on SIGTERM" || fail "fetcher exit $stop_rc on SIGTERM"
grep -q '"authenticated' "$tmp/plain.err" && pass "gateway lookup with the token, HELLO accepted" \
	|| fail "never authenticated: $(tail -3 "$tmp/plain.err")"
grep -q "$token" "$tmp/plain.err" && fail "the bot token appears in the log" || pass "the token is not logged"
if out=$(compare plain); then pass "plain (zlib, reordered and repeated sn): $out"; else fail "plain: $out"; fi
"$fetcher_bin" --platform kook --room $room --replay "$tmp/plain.cap" --stdout >"$tmp/replay.out" 2>"$tmp/replay.err" \
	|| fail "replay exit $?: $(tail -2 "$tmp/replay.err")"
if cmp -s "$tmp/plain.out" "$tmp/replay.out"; then
	pass "--record then --replay yields the same $(wc -l <"$tmp/replay.out") lines in the same order"
else
	fail "--replay differs from the live output ($(wc -l <"$tmp/plain.out") vs $(wc -l <"$tmp/replay.out") lines)"
fi

# ---- 2. dropped connections: resume without loss or duplicates ----------------
KOOK=reorder=0.05 start_emu drop --generate --rate 100 --seed 8 --drop-every 2
start_fetcher drop
sleep 7
stop "$emu_pid"
stop "$fetcher_pid"
n=$(grep -c 'resumed session' "$tmp/drop.emu.err" || true)
[ "$n" -ge 2 ] && pass "resumed $n times after drops" || fail "resumed $n times: $(tail -3 "$tmp/drop.err")"
if out=$(compare drop); then pass "drops: $out"; else fail "drops: $out"; fi

# ---- 3. forced reconnect (s=5 40108): fresh sessions -----------------------------
KOOK=reconnect_every=2 start_emu recon --generate --rate 50 --seed 9
start_fetcher recon
sleep 7
stop "$emu_pid"
stop "$fetcher_pid"
n=$(grep -c 's=5 40108' "$tmp/recon.emu.err" || true)
m=$(grep -c 'asked for a reconnect' "$tmp/recon.err" || true)
[ "$n" -ge 2 ] && [ "$m" -ge 2 ] && pass "s=5 sent $n times, the fetcher reconnected $m times" \
	|| fail "s=5 sent $n, reconnects $m"
grep -q 'resumed session' "$tmp/recon.emu.err" && fail "resumed after s=5" || pass "no resume after s=5"
# a fresh session gives new events only: the order holds across sessions too
if out=$(compare recon); then pass "reconnects: $out"; else fail "reconnects: $out"; fi

# ---- 4. garbage: corrupt zlib frames counted, no crash ---------------------------------
redis-cli -u "$LIVETAP_REDIS_URL" del "live:{kook:$room}:status" >/dev/null
start_emu garbage --generate --rate 100 --seed 10 --garbage 0.3 --batch-max 4
start_fetcher garbage
sleep 3
bad=$(status_field bad_frames)
stop "$emu_pid"
stop "$fetcher_pid"
[ "$stop_rc" = 0 ] && pass "garbage: the fetcher survived" || fail "garbage: fetcher exit $stop_rc"
[ "${bad:-0}" -ge 1 ] && pass "garbage frames counted (bad_frames=$bad)" || fail "bad_frames='$bad'"
if out=$(compare garbage); then pass "garbage: $out"; else fail "garbage: $out"; fi

# ---- 5. a wrong token: 401, never running ------------------------------------------
start_emu badtoken --generate --rate 10 --seed 11
TOKEN=wrong-token MAX_FAILURES=3 start_fetcher badtoken
rc=0
for _ in $(seq 1 100); do kill -0 "$fetcher_pid" 2>/dev/null || break; sleep 0.1; done
stop "$fetcher_pid"
stop "$emu_pid"
grep -q 'HTTP 401' "$tmp/badtoken.err" && pass "wrong token: the gateway answers 401" || fail "no 401: $(tail -2 "$tmp/badtoken.err")"
[ ! -s "$tmp/badtoken.out" ] && pass "wrong token: no messages" || fail "wrong token: messages arrived"
grep -q 'wrong-token' "$tmp/badtoken.err" && fail "the wrong token appears in the log" || pass "the wrong token is not logged"

# ---- 6. the resume state survives a fetcher restart ------------------------------
start_emu restart --generate --rate 50 --seed 12
STATE=$tmp/state-restart start_fetcher restart
sleep 2
stop "$fetcher_pid"
state=$(cat "$tmp"/state-restart/spool/kook-$room.state 2>/dev/null || true)
[[ "$state" =~ ^kook1\ [0-9a-f-]+\ [0-9]+$ ]] && pass "resume state kept: $state" || fail "resume state '$state'"
sleep 1
STATE=$tmp/state-restart start_fetcher restart
sleep 2
stop "$emu_pid"
stop "$fetcher_pid"
grep -q 'resume state restored' "$tmp/restart.err" && grep -q 'resumed session' "$tmp/restart.emu.err" \
	&& pass "a restarted fetcher resumed its session" || fail "no resume after restart: $(tail -2 "$tmp/restart.emu.err")"
if out=$(compare restart); then pass "restart: $out (the gap while it was down replayed)"; else fail "restart: $out"; fi

# ---- 7. HELLO 40103 (token expired) on every 2nd connection: a fresh lookup --------
KOOK=expire=2 start_emu expire --generate --rate 50 --seed 14 --drop-every 2
start_fetcher expire
sleep 6
stop "$emu_pid"
stop "$fetcher_pid"
n=$(grep -c 'HELLO 40103' "$tmp/expire.emu.err" || true)
[ "$n" -ge 1 ] && pass "HELLO 40103 sent $n times, the fetcher went on" || fail "no 40103 sent"
if out=$(compare expire); then pass "40103: $out"; else fail "40103: $out"; fi

# ---- 8. one session per token (single=1): the second fetcher is refused with s=5 ----
KOOK=single=1 start_emu single --generate --rate 50 --seed 15
start_fetcher single
first=$fetcher_pid
sleep 1
start_fetcher single2
sleep 3
stop "$emu_pid"
stop "$first"
stop "$fetcher_pid"
n=$(grep -c 'second session refused' "$tmp/single.emu.err" || true)
[ "$n" -ge 1 ] && [ ! -s "$tmp/single2.out" ] && pass "second session refused $n times, it got no messages" \
	|| fail "second session: refused $n times, $(wc -l <"$tmp/single2.out" 2>/dev/null) messages"
if out=$(compare single); then pass "the first session: $out"; else fail "the first session: $out"; fi

# ---- 9. no HELLO within 6 s: the fetcher gives the connection up ------------------
KOOK=nohello=1 start_emu nohello --generate --rate 10 --seed 16
start_fetcher nohello
sleep 8
stop "$emu_pid"
stop "$fetcher_pid"
gap=$(python3 - "$tmp/nohello.err" <<'PY'
import json, sys, datetime
t = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
conn = fail = None
for l in open(sys.argv[1]):
    try: j = json.loads(l)
    except ValueError: continue
    if conn is None and j["msg"].startswith("connecting to"): conn = t(j["ts"])
    if fail is None and "heartbeat: " in j["msg"]: fail = t(j["ts"])
print("%.1f" % (fail - conn) if conn and fail else "none")
PY
)
python3 -c "import sys; sys.exit(0 if '$gap' != 'none' and 5.5 <= float('$gap') <= 7.5 else 1)" \
	&& pass "no HELLO: the connection is given up after ${gap} s" || fail "no HELLO: gave up after '$gap' s"

# ---- 10. PING/PONG: one beat after 25-35 s ---------------------------------------------
redis-cli -u "$LIVETAP_REDIS_URL" del "live:{kook:$room}:status" >/dev/null
start_emu ping --generate --rate 2 --seed 13
start_fetcher ping
sleep 37
hb=$(status_field heartbeats)
nf=$(grep -c 'attempt .* failed' "$tmp/ping.err" || true) # before the emulator goes away
stop "$emu_pid"
stop "$fetcher_pid"
[ "${hb:-0}" -ge 1 ] && pass "PING answered by PONG ($hb)" || fail "no PONG counted (heartbeats='$hb')"
[ "$nf" = 0 ] && pass "one connection for 37 s" || fail "the connection failed: $(grep 'failed' "$tmp/ping.err" | head -1)"

echo "$failures failures"
[ "$failures" = 0 ]
