#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_dashboard.sh: the dashboard in headless Chromium against a real stack
# fed by the emulator.
#
#   test_dashboard.sh BUILD_DIR
#
# Starts, in a private state directory and PostgreSQL schema: livetap-emu
# (Bilibili, generated Chinese chat) -> livetap-fetcher -> livetap-processor
# (Redis) and livetap-persister (PostgreSQL), and livetap-api on a free port.
# The room is added through the API (POST /api/v1/rooms with an API key).
# Then Debian's chromium loads http://127.0.0.1:PORT/ headless, twice: once
# dumping the DOM after the page has run for a while (asserting that the
# room, its hot words and live messages from the WebSocket are in it), once
# saving a screenshot, whose path is printed:
#   $LT_TEST_TMPDIR/dashboard.XXXXXX/dashboard.png (or under BUILD_DIR).
# Exit 0 passes, 77 skips (no servers or no chromium), anything else fails.
set -euo pipefail

build=${1:?usage: test_dashboard.sh BUILD_DIR}
build=$(cd "$build" && pwd)
[ -n "${LIVETAP_REDIS_URL:-}" ] && [ -n "${LIVETAP_PG_DSN:-}" ] || { echo "SKIP: LIVETAP_REDIS_URL/LIVETAP_PG_DSN not set"; exit 77; }
command -v chromium >/dev/null || { echo "SKIP: chromium not installed"; exit 77; }
for b in tests/emu/livetap-emu fetcher/livetap-fetcher processor/livetap-processor persister/livetap-persister api/livetap-api; do
	[ -x "$build/$b" ] || { echo "FAIL: $build/$b not built"; exit 1; }
done

tmp=$(mktemp -d "${LT_TEST_TMPDIR:-$build}/dashboard.XXXXXX")
pids=()
schema="t_dash_$$"
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$tmp"/*.err; do echo "--- $f"; tail -5 "$f"; done; exit 1; }
pass() { echo "ok: $*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

psql -q "$LIVETAP_PG_DSN" -c "CREATE SCHEMA $schema" >/dev/null
export LIVETAP_PG_DSN="$LIVETAP_PG_DSN options=-csearch_path=$schema"
export LIVETAP_STATE_DIR=$tmp/state
export LIVETAP_API_KEYS=dashboard-test-key-0123456789
export LIVETAP_ADMIN_PASSWORD=dashboard-admin-password
mkdir -p "$LIVETAP_STATE_DIR"
echo '{}' >"$tmp/livetap.json"
cfg=(--config "$tmp/livetap.json")

room=$((30000000 + $$ % 1000000))

# The pipeline's consumers first (the persister creates the schema).
"$build/persister/livetap-persister" "${cfg[@]}" >"$tmp/persister.out" 2>"$tmp/persister.err" &
pids+=($!)
"$build/processor/livetap-processor" "${cfg[@]}" >"$tmp/processor.out" 2>"$tmp/processor.err" &
pids+=($!)
for _ in $(seq 1 100); do
	[ "$(psql -Atq "$LIVETAP_PG_DSN" -c "SELECT to_regclass('rooms') IS NOT NULL" 2>/dev/null)" = t ] && break
	sleep 0.1
done

port=$(free_port)
LIVETAP_API_LISTEN=127.0.0.1:$port "$build/api/livetap-api" "${cfg[@]}" >"$tmp/api.out" 2>"$tmp/api.err" &
pids+=($!)
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || fail "livetap-api is not healthy"
pass "livetap-api healthy on port $port"

code=$(curl -s -o "$tmp/add.json" -w '%{http_code}' -X POST -H "X-API-Key: $LIVETAP_API_KEYS" \
	-H 'Content-Type: application/json' -d "{\"platform\":\"bilibili\",\"room\":\"$room\",\"title\":\"演示直播间\"}" \
	"http://127.0.0.1:$port/api/v1/rooms")
[ "$code" = 201 ] || fail "POST /api/v1/rooms: $code $(cat "$tmp/add.json")"
pass "room bilibili:$room added through the API"

"$build/tests/emu/livetap-emu" --platform bilibili --listen 127.0.0.1:0 --generate --rate 40 --seed 5 \
	>"$tmp/emu.out" 2>"$tmp/emu.err" &
pids+=($!)
emu_port=
for _ in $(seq 1 100); do
	emu_port=$(sed -n 's/^livetap-emu: .* listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/emu.out" 2>/dev/null || true)
	[ -n "$emu_port" ] && break
	sleep 0.05
done
[ -n "$emu_port" ] || fail "emulator did not start"
LIVETAP_BILIBILI_API_BASE=http://127.0.0.1:$emu_port LIVETAP_BILIBILI_WS_URL=ws://127.0.0.1:$emu_port/sub \
	"$build/fetcher/livetap-fetcher" "${cfg[@]}" --platform bilibili --room "$room" \
	>"$tmp/fetcher.out" 2>"$tmp/fetcher.err" &
pids+=($!)

# Wait until the processor has hot words for the room.
api=http://127.0.0.1:$port/api/v1/rooms/bilibili/$room
for _ in $(seq 1 150); do
	curl -sf "$api/hotwords?window=1m" | grep -q '"word"' && break
	sleep 0.2
done
curl -sf "$api/hotwords?window=1m" | grep -q '"word"' || fail "no hot words reached Redis: $(curl -s "$api/hotwords")"
pass "pipeline running: hot words for bilibili:$room"

chrome=(chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
	--disable-background-networking --disable-component-update --disable-sync
	--disable-dev-shm-usage --hide-scrollbars --window-size=1600,1000 --force-dark-mode)
# The page polls and listens on its WebSocket: give it real seconds, and
# virtual time so the dump happens after the timers ran.
timeout 60 "${chrome[@]}" --user-data-dir="$(mktemp -d "$tmp/chrome.XXXXXX")" --virtual-time-budget=8000 \
	--dump-dom "http://127.0.0.1:$port/#bilibili%3A$room" >"$tmp/dom.html" 2>"$tmp/chrome-dom.err" || true
python3 - "$tmp/dom.html" "$room" <<'PY' || fail "dashboard DOM check (see $tmp/dom.html)"
import html.parser, sys
dom = open(sys.argv[1], encoding="utf-8").read()
room = sys.argv[2]
class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.rooms, self.words, self.feed_n = [], [], [], 0
        self.in_word = False
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = a.get("class", "")
        if tag == "li" and "room" in cls.split():
            self.rooms.append(a.get("data-key", ""))
        if tag == "text" and "word" in cls.split():
            self.in_word = True
        if tag == "li" and self.stack and self.stack[-1] == "feed":
            self.feed_n += 1
        if tag == "ol" and a.get("id") == "feed":
            self.stack.append("feed")
        elif tag in ("ol",):
            self.stack.append(tag)
    def handle_endtag(self, tag):
        if tag == "text":
            self.in_word = False
        if tag == "ol" and self.stack:
            self.stack.pop()
    def handle_data(self, d):
        if self.in_word and d.strip():
            self.words.append(d.strip())
p = P()
p.feed(dom)
ok = True
if "bilibili:" + room not in p.rooms:
    print("room bilibili:%s not listed (rooms: %s)" % (room, p.rooms)); ok = False
if not p.words:
    print("no hot words drawn"); ok = False
if p.feed_n < 5:
    print("live feed has %d messages" % p.feed_n); ok = False
if 'class="pill small ok"' not in dom:
    print("the live WebSocket is not connected"); ok = False
print("dashboard: rooms %s, %d hot words (%s), %d feed messages" % (p.rooms, len(p.words), " ".join(p.words[:5]), p.feed_n))
sys.exit(0 if ok else 1)
PY
pass "dashboard shows the room, hot words and live messages"

shot=$tmp/dashboard.png
timeout 60 "${chrome[@]}" --user-data-dir="$(mktemp -d "$tmp/chrome.XXXXXX")" --virtual-time-budget=8000 \
	--screenshot="$shot" "http://127.0.0.1:$port/#bilibili%3A$room" >/dev/null 2>"$tmp/chrome-shot.err" || true
[ -s "$shot" ] || fail "no screenshot written"
pass "screenshot: $shot"
psql -q "${LIVETAP_PG_DSN% options=*}" -c "SET client_min_messages = warning; DROP SCHEMA $schema CASCADE" >/dev/null 2>&1 || true
# tests/run removes its temporary directory after a green run: keep a copy
# beside the build's test logs, where a person looks after a run.
if [ -d "${LT_BUILDDIR:-}/meson-logs" ]; then
	cp "$shot" "$LT_BUILDDIR/meson-logs/dashboard.png" && shot=$LT_BUILDDIR/meson-logs/dashboard.png
fi
echo "dashboard screenshot: $shot"
