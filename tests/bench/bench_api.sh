#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench_api.sh: livetap-api's hot-words endpoint under wrk.
#
#   bench_api.sh BUILD_DIR [SECONDS]
#
# Starts build/api/livetap-api on a free port against LIVETAP_REDIS_URL and
# LIVETAP_PG_DSN (tests/run or tests/support/servers.sh provide them; exit 77
# without), seeds one room's 1m hot words (50 words) in Redis, then runs two
# wrk passes against GET /api/v1/rooms/bilibili/<room>/hotwords?window=1m&limit=20:
#   1. throughput: 2 threads, 64 connections, as fast as it goes (req/s);
#   2. latency at ~1,000 req/s: 10 connections, each pausing 10 ms between
#      requests (wrk's delay() hook), with the latency percentiles.
# The API runs with the rate limit off (api.rate_per_s=0) and the default
# 1 s body cache. Targets: >= 20,000 req/s; p99 <= 5 ms at 1,000 req/s.
# Prints the figures and exits non-zero if a target is missed.
set -euo pipefail
build=${1:?usage: bench_api.sh BUILD_DIR [SECONDS]}
secs=${2:-5}
[ -n "${LIVETAP_REDIS_URL:-}" ] && [ -n "${LIVETAP_PG_DSN:-}" ] || { echo "bench_api: LIVETAP_REDIS_URL/LIVETAP_PG_DSN unset; skipping"; exit 77; }
command -v wrk >/dev/null || { echo "bench_api: wrk not installed; skipping"; exit 77; }
bin=$build/api/livetap-api
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench_api.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
room="bench$$"
rhost=$(echo "$LIVETAP_REDIS_URL" | sed -E 's#^redis://([^:/]+):?([0-9]*)/?.*#\1#')
rport=$(echo "$LIVETAP_REDIS_URL" | sed -E 's#^redis://[^:/]+:?([0-9]*)/?.*#\1#')
rcli() { redis-cli -h "$rhost" -p "${rport:-6379}" "$@" >/dev/null; }
args=()
for i in $(seq 1 50); do args+=("$((1000 - i))" "词$i"); done
rcli ZADD "live:{bilibili:$room}:hotwords:1m" "${args[@]}"

echo '{}' >"$tmp/livetap.json"
LIVETAP_API_LISTEN=127.0.0.1:$port LIVETAP_STATE_DIR=$tmp LIVETAP_API_RATE_PER_S=0 \
	LIVETAP_ADMIN_PASSWORD=bench-password-0123 LIVETAP_LOG_LEVEL=warn \
	"$bin" --config "$tmp/livetap.json" 2>"$tmp/api.log" &
pid=$!
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
url="http://127.0.0.1:$port/api/v1/rooms/bilibili/$room/hotwords?window=1m&limit=20"
curl -sf "$url" | grep -q '词1' || { echo "bench_api: endpoint did not answer"; cat "$tmp/api.log"; exit 1; }

echo "== throughput: wrk -t2 -c64 -d${secs}s"
wrk -t2 -c64 -d"${secs}s" --latency "$url" | tee "$tmp/tput.txt"
rps=$(awk '/^Requests\/sec:/ {print int($2)}' "$tmp/tput.txt")

cat >"$tmp/pace.lua" <<'LUA'
function delay() return 10 end
LUA
echo "== latency at ~1000 req/s: wrk -t2 -c10 -d${secs}s, 10 ms pause per connection"
wrk -t2 -c10 -d"${secs}s" --latency -s "$tmp/pace.lua" "$url" | tee "$tmp/lat.txt"
p99=$(awk '$1 == "99%" {print $2}' "$tmp/lat.txt")
paced=$(awk '/^Requests\/sec:/ {print int($2)}' "$tmp/lat.txt")
# wrk prints 1.23ms / 456.00us / 1.2s: to microseconds.
p99_us=$(echo "$p99" | awk '/us$/ {sub("us",""); print int($1)} /ms$/ {sub("ms",""); print int($1*1000)} /[0-9]s$/ {sub("s",""); print int($1*1000000)}')
echo "bench_api: hotwords ${rps} req/s (target >= 20000); paced ${paced} req/s, p99 ${p99} (target <= 5ms)"
[ "$rps" -ge 20000 ] && [ "$p99_us" -le 5000 ]
