#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_fetcher_douyin: livetap-fetcher against livetap-emu --platform douyin,
# end to end over real sockets on 127.0.0.1.
#
#   bash tests/e2e/test_fetcher_douyin.sh BUILDDIR
#
# Needs LIVETAP_REDIS_URL (tests/run exports it; exit 77 without). Each case
# starts an emulator on a free port with a --sent-log, runs a fetcher with
# --stdout against it, stops both (the emulator first, so every frame it
# wrote was read), and checks that every msg_id the emulator wrote arrived
# exactly once with its type. Cases: plain (ttwid, room id from the live
# page, a signed push URL the emulator's check accepts, heartbeats, acks
# naming the right log_id, --record then --replay gives the same lines);
# gift combos from a script (each step counts its delta, not the cumulative
# repeat_count); dropped connections, where the emulator replays its recent
# messages on every reconnect and the fetcher drops the repeats; garbage
# frames counted without a crash; live end; a forged signature refused
# with the real server's answer (HTTP 200 with handshake-status: 415); a
# signer command (douyin.signer) whose signatures are refused: retried.
set -euo pipefail

build=${1:?usage: test_fetcher_douyin.sh BUILDDIR}
build=$(cd "$build" && pwd)
emu_bin=$build/tests/emu/livetap-emu
fetcher_bin=$build/fetcher/livetap-fetcher
[ -n "${LIVETAP_REDIS_URL:-}" ] || { echo "SKIP: LIVETAP_REDIS_URL not set"; exit 77; }
[ -x "$emu_bin" ] && [ -x "$fetcher_bin" ] || { echo "FAIL: programs not built in $build"; exit 1; }

# shellcheck source=tests/e2e/lib/fetcher.sh
. "$(dirname "$0")/lib/fetcher.sh"
lt_e2e_setup fetcher-douyin

# start_emu NAME ARGS...: sets emu_pid, emu_port; sent-log in $tmp/NAME.sent
start_emu() { lt_emu_start douyin "$@"; }

# start_fetcher NAME ROOM ARGS...: sets fetcher_pid; stdout in $tmp/NAME.out
start_fetcher() {
	local name=$1 room=$2; shift 2
	LIVETAP_DOUYIN_WEB_BASE=http://127.0.0.1:$emu_port \
	LIVETAP_DOUYIN_WS_URL=ws://127.0.0.1:$emu_port/webcast/im/push/v2/ \
	LIVETAP_STATE_DIR=$tmp/state \
	LIVETAP_FETCHER_HEARTBEAT_S=${HB_S:-1} \
	LIVETAP_FETCHER_BACKOFF_BASE_MS=100 \
	LIVETAP_FETCHER_BACKOFF_MAX_MS=1000 \
	LIVETAP_FETCHER_STATUS_INTERVAL_MS=300 \
		"$fetcher_bin" --platform douyin --room "$room" --stdout "$@" \
		>"$tmp/$name.out" 2>"$tmp/$name.err" &
	fetcher_pid=$!
	pids+=("$fetcher_pid")
}

stop() {
	kill -TERM "$1" 2>/dev/null || true
	stop_rc=0
	wait "$1" || stop_rc=$?
}

status_field() { # ROOM FIELD
	redis-cli -u "$LIVETAP_REDIS_URL" --no-raw hget "live:{douyin:$1}:status" "$2" 2>/dev/null | tr -d '"'
}

# emu_counter NAME KEY: a counter from the emulator's last line (at exit)
emu_counter() {
	sed -n "s/.*douyin:.* $2=\([0-9]*\).*/\1/p" "$tmp/$1.emu.err" | tail -1
}

# compare NAME: every sent msg_id received exactly once, with its type
compare() {
	python3 - "$tmp/$1.sent" "$tmp/$1.out" <<'PY'
import collections, json, sys
sent = [l.split() for l in open(sys.argv[1]) if l.strip()]
out = [json.loads(l) for l in open(sys.argv[2])]
got = collections.Counter((o["type"], o["msg_id"]) for o in out)
ids = collections.Counter(o["msg_id"] for o in out)
bad = [(t, i, got[(t, i)]) for _, t, i in sent if got[(t, i)] != 1]
dup = [i for i, n in ids.items() if n > 1]
if not sent:
    print("nothing was sent"); sys.exit(1)
if bad or dup or len(out) != len(sent):
    print("sent %d, received %d; not exactly once: %s; duplicates: %s" % (len(sent), len(out), bad[:5], dup[:5]))
    sys.exit(1)
print("sent %d, each received exactly once" % len(sent))
PY
}

# ---- 1. plain: ttwid, room page, signature, heartbeats, acks, record/replay --
room=646454278948
redis-cli -u "$LIVETAP_REDIS_URL" del "live:{douyin:$room}:status" >/dev/null
start_emu plain --generate --rate 150 --seed 7
start_fetcher plain $room --record "$tmp/plain.cap"
sleep 3.5
st=$(status_field $room state)
[ "$st" = running ] && pass "status running while connected" || fail "status state '$st', want running"
stop "$emu_pid"
stop "$fetcher_pid"
[ "$stop_rc" = 0 ] && pass "fetcher exits 0 on SIGTERM" || fail "fetcher exit $stop_rc on SIGTERM"
conns=$(emu_counter plain connections) rej=$(emu_counter plain rejected)
[ "${conns:-0}" -ge 1 ] && [ "${rej:-1}" = 0 ] && pass "ttwid, room page and signature accepted ($conns session)" \
	|| fail "handshake: connections=$conns rejected=$rej: $(tail -3 "$tmp/plain.err")"
hb=$(emu_counter plain heartbeats) acks=$(emu_counter plain acks) bad_acks=$(emu_counter plain bad_acks)
[ "${hb:-0}" -ge 2 ] && pass "heartbeat frames received by the server ($hb)" || fail "heartbeats=$hb"
pings=$(emu_counter plain pings) pongs=$(emu_counter plain pongs)
[ "${pings:-0}" -ge 2 ] && [ "${pongs:-0}" -ge 2 ] && pass "WebSocket pings answered by the fetcher (pings=$pings pongs=$pongs)" \
	|| fail "pings=$pings pongs=$pongs"
[ "${acks:-0}" -ge 1 ] && [ "${bad_acks:-1}" = 0 ] && pass "need_ack answered with the frame's log_id ($acks acks)" \
	|| fail "acks=$acks bad_acks=$bad_acks"
if out=$(compare plain); then pass "plain: $out"; else fail "plain: $out"; fi
"$fetcher_bin" --platform douyin --room $room --replay "$tmp/plain.cap" --stdout >"$tmp/replay.out" 2>"$tmp/replay.err" \
	|| fail "replay exit $?: $(tail -2 "$tmp/replay.err")"
if cmp -s "$tmp/plain.out" "$tmp/replay.out"; then
	pass "--record then --replay yields the same $(wc -l <"$tmp/replay.out") lines"
else
	fail "--replay differs from the live output ($(wc -l <"$tmp/plain.out") vs $(wc -l <"$tmp/replay.out") lines)"
fi

# ---- 2. gift combos: deltas, not cumulative counts ---------------------------
room=100002
cat >"$tmp/combo.jsonl" <<EOF2
{"v":1,"platform":"douyin","room":"$room","type":"gift","msg_id":"9001","user":{"id":"1001","name":"甲"},"content":"玫瑰","ts":1732212345001,"extra":{"gift_name":"玫瑰","count":3,"value":3}}
{"v":1,"platform":"douyin","room":"$room","type":"gift","msg_id":"9002","user":{"id":"1001","name":"甲"},"content":"玫瑰","ts":1732212345002,"extra":{"gift_name":"玫瑰","count":2,"value":2}}
{"v":1,"platform":"douyin","room":"$room","type":"gift","msg_id":"9003","user":{"id":"1001","name":"甲"},"content":"玫瑰","ts":1732212345003,"extra":{"gift_name":"玫瑰","count":4,"value":4}}
{"v":1,"platform":"douyin","room":"$room","type":"gift","msg_id":"9004","user":{"id":"1002","name":"乙"},"content":"嘉年华","ts":1732212345004,"extra":{"gift_name":"嘉年华","count":1,"value":30000}}
{"v":1,"platform":"douyin","room":"$room","type":"chat","msg_id":"9005","user":{"id":"1002","name":"乙"},"content":"谢谢主播","ts":1732212345005,"extra":{}}
{"v":1,"platform":"douyin","room":"$room","type":"gift","msg_id":"9006","user":{"id":"1001","name":"甲"},"content":"玫瑰","ts":1732212345006,"extra":{"gift_name":"玫瑰","count":2,"value":2}}
{"v":1,"platform":"douyin","room":"$room","type":"live_end","msg_id":"9007","user":{"id":"","name":""},"content":"","ts":1732212345007,"extra":{}}
EOF2
start_emu combo --script "$tmp/combo.jsonl" --rate 20 --batch-max 2
start_fetcher combo $room
sleep 2.5
stop "$emu_pid"; stop "$fetcher_pid"
got=$(python3 -c '
import json,sys
print(" ".join("%s:%s:%s" % (o["msg_id"], o["extra"]["count"], o["extra"]["value"]) for o in map(json.loads, open(sys.argv[1])) if o["type"]=="gift"))' "$tmp/combo.out")
want="9001:3:3 9002:2:2 9003:4:4 9004:1:30000 9006:2:2"
[ "$got" = "$want" ] && pass "combo steps count their deltas ($got)" || fail "combo counts '$got', want '$want'"
if out=$(compare combo); then pass "combo: $out"; else fail "combo: $out"; fi

# ---- 3. dropped connections: recent messages replayed, dropped as repeats ----
room=100003
start_emu drop --generate --rate 80 --seed 11 --drop-every 1
start_fetcher drop $room
sleep 4.5
stop "$emu_pid"; stop "$fetcher_pid"
conns=$(emu_counter drop connections) replayed=$(emu_counter drop replayed)
[ "${conns:-0}" -ge 3 ] && pass "reconnected after drops ($conns sessions)" || fail "only $conns sessions after drops"
[ "${replayed:-0}" -ge 15 ] && pass "recent messages replayed on reconnect ($replayed), none output twice (below)" \
	|| fail "replayed=$replayed"
if out=$(compare drop); then pass "drop: $out"; else fail "drop: $out"; fi

# ---- 4. garbage frames: counted, skipped, no crash -----------------------------
room=100004
start_emu garbage --generate --rate 100 --seed 5 --garbage 0.3
start_fetcher garbage $room
sleep 3
bad=$(status_field $room bad_frames)
kill -0 "$fetcher_pid" 2>/dev/null && pass "fetcher alive amid garbage" || fail "fetcher died on garbage"
stop "$emu_pid"; stop "$fetcher_pid"
[ "${bad:-0}" -ge 1 ] && pass "garbage frames counted (bad_frames=$bad)" || fail "bad_frames='$bad'"
if out=$(compare garbage); then pass "garbage: $out"; else fail "garbage: $out"; fi

# ---- 5. live end ---------------------------------------------------------------
room=100005
start_emu end --generate --rate 50 --seed 4 --duration 1
start_fetcher end $room
sleep 2.5
stop "$emu_pid"; stop "$fetcher_pid"
n_end=$(grep -c '"type":"live_end"' "$tmp/end.out" || true)
[ "$n_end" = 1 ] && pass "live_end arrives once" || fail "live_end seen $n_end times"
grep -q 'the stream went offline' "$tmp/end.err" && pass "live end reported" || fail "live end not reported"
if out=$(compare end); then pass "end: $out"; else fail "end: $out"; fi

# ---- 6. a forged signature is refused the real way: 200, handshake-status 415
start_emu forged --generate --rate 1
curl -s -i -m 2 -H "Connection: Upgrade" -H "Upgrade: websocket" -H "Sec-WebSocket-Version: 13" \
	-H "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" \
	"http://127.0.0.1:$emu_port/webcast/im/push/v2/?room_id=7646454278948&user_unique_id=7300000000000000001&webcast_sdk_version=1.0.14-beta.0&signature=AAAAAAAAAAAAAAAA" \
	>"$tmp/forged.http" || true
stop "$emu_pid"
rej=$(emu_counter forged rejected) conns=$(emu_counter forged connections)
tr -d '\r' <"$tmp/forged.http" >"$tmp/forged.txt"
if [ "${rej:-0}" = 1 ] && [ "${conns:-1}" = 0 ] && grep -q '^HTTP/1\.[01] 200' "$tmp/forged.txt" &&
	grep -qi '^handshake-status: 415$' "$tmp/forged.txt" && grep -qi '^handshake-msg: DEVICE_BLOCKED$' "$tmp/forged.txt"; then
	pass "forged signature refused with HTTP 200, handshake-status 415, DEVICE_BLOCKED"
else
	fail "forged: rejected=$rej connections=$conns answer: $(head -3 "$tmp/forged.txt" | tr '\n' ' ')"
fi

# ---- 7. a signer command (douyin.signer) whose signature the server refuses --
room=100007
start_emu badsig --generate --rate 20
LIVETAP_DOUYIN_SIGNER='printf AAAAAAAAAAAAAAAA%.0s' start_fetcher badsig $room
sleep 2
stop "$emu_pid"; stop "$fetcher_pid"
rej=$(emu_counter badsig rejected) conns=$(emu_counter badsig connections)
fails=$(grep -c 'attempt [0-9]* failed' "$tmp/badsig.err" || true)
[ "${rej:-0}" -ge 2 ] && [ "${conns:-1}" = 0 ] && [ "$fails" -ge 2 ] && [ ! -s "$tmp/badsig.out" ] \
	&& pass "signer command used; refused handshakes retried with backoff (rejected=$rej, failed attempts=$fails)" \
	|| fail "bad signer: rejected=$rej connections=$conns failed attempts=$fails lines=$(wc -l <"$tmp/badsig.out")"

echo "test_fetcher_douyin: $failures failure(s)"
[ "$failures" = 0 ]
