#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench_redis_floor: what Redis costs per message for the least the contract
# asks of it, so that bench_processor's figure (processor/apply.lua) can be
# read against a floor. Redis runs every script on one thread, so its CPU
# per message bounds the pipeline's throughput whatever the other processes
# do: at 50,000 msg/s it has 20 µs a message, of the 40 µs the 2 cores give.
#
#   bash tests/bench/bench_redis_floor.sh      (LIVETAP_REDIS_URL: a Redis with
#                                               AOF on, as servers.sh starts it)
#
# One EVALSHA per batch of BATCH messages (128) from 1,000 users, as the
# processor sends them, of a script that does only this, in three levels:
#   markers   one SMISMEMBER and one SADD (and an EXPIRE) of the batch's ids;
#   +stream   and, per message, XADD to live:{ROOM}:messages and PUBLISH on
#             live:{ROOM} (the L1 stream and the room channel);
#   +user     and, per message, one HMGET and one HSET of its user's hash
#             live:{ROOM}:user:UID (messages, name, first_seen, last_seen).
# No hot words, rankings, sessions or TTLs beyond the marker set's: the real
# script does all of those too. Prints, per level, Redis's own CPU (INFO cpu,
# its main process; AOF rewrite children not counted) in µs per message and
# its inverse, the messages per Redis CPU-second: the most one Redis thread
# can take at that level. BATCHES (1,000) batches
# per level, each on a fresh room; the keys are deleted afterwards.
# CPU seconds on a shared machine inflate with its load; for instruction
# counts, point LIVETAP_REDIS_URL at a Redis run under
# `valgrind --tool=callgrind` and zero/dump its counters around one level
# (LEVELS="2" runs only +user) with callgrind_control.
set -euo pipefail

url=${LIVETAP_REDIS_URL:-}
[ -n "$url" ] || { echo "SKIP: LIVETAP_REDIS_URL not set"; exit 77; }
hostport=${url#redis://}
hostport=${hostport%%/*}
host=${hostport%%:*}
port=${hostport##*:}
batches=${BATCHES:-1000}
batch=${BATCH:-128}
rc() { redis-cli -h "$host" -p "$port" "$@"; }
rc PING >/dev/null || { echo "FAIL: no Redis at $url"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lt-bench-floor.XXXXXX")
rooms=()
cleanup() {
	local r
	for r in "${rooms[@]}"; do
		rc --scan --pattern "live:{$r}*" | xargs -r -n 500 redis-cli -h "$host" -p "$port" DEL >/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# LEVEL: 0 markers, 1 +stream, 2 +user
cat >"$tmp/floor.lua" <<'LUA'
local level = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local base = KEYS[1]
local pre = base .. ':'
local ids = {}
for i = 1, n do ids[i] = ARGV[3 * i] end
local seen = pre .. 'seen:0'
local known = redis.call('SMISMEMBER', seen, unpack(ids))
redis.call('SADD', seen, unpack(ids))
redis.call('EXPIRE', seen, '7200')
if level < 1 then return n end
local stream = pre .. 'messages'
for i = 1, n do
  if known[i] == 0 then
    local json = ARGV[3 * i + 1]
    redis.call('XADD', stream, '*', 'm', json)
    redis.call('PUBLISH', base, json)
    if level >= 2 then
      local uk = pre .. 'user:' .. ARGV[3 * i + 2]
      local got = redis.call('HMGET', uk, 'messages', 'first_seen', 'last_seen')
      redis.call('HSET', uk, 'messages', string.format('%d', (tonumber(got[1]) or 0) + 1),
                 'name', 'u' .. ARGV[3 * i + 2], 'first_seen', got[2] or '1763800000000',
                 'last_seen', '1763800000001')
    end
  end
end
return n
LUA
sha=$(rc SCRIPT LOAD "$(cat "$tmp/floor.lua")")

cpu() { rc INFO cpu | tr -d '\r' | awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%.3f", s}'; }

echo "redis-floor: $(rc INFO server | tr -d '\r' | awk -F: '/^redis_version:/ {print "Redis " $2}'), $(rc CONFIG GET appendonly | tr '\n' ' '); $batches batches of $batch; load average $(cut -d ' ' -f 1-3 /proc/loadavg)"
names=(markers +stream +user)
for level in ${LEVELS:-0 1 2}; do
	room="bench:floor$$x$level"
	rooms+=("$room")
	# RESP for every batch (bytes counted in the C locale: the chat is UTF-8)
	LC_ALL=C awk -v sha="$sha" -v room="$room" -v level="$level" -v nb="$batches" -v bs="$batch" '
	function bulk(s) { printf "$%d\r\n%s\r\n", length(s), s }
	BEGIN {
		srand(7); id = 0
		for (b = 0; b < nb; b++) {
			printf "*%d\r\n", 6 + 3 * bs
			bulk("EVALSHA"); bulk(sha); bulk("1"); bulk("live:{" room "}"); bulk(level); bulk(bs)
			for (i = 0; i < bs; i++) {
				id++; uid = int(rand() * 1000)
				json = "{\"platform\":\"bilibili\",\"room_id\":\"21452505\",\"msg_id\":\"" id "\",\"type\":\"chat\"," \
					"\"user\":{\"id\":\"" uid "\",\"name\":\"用户" uid "\"},\"content\":\"主播太强了哈哈哈 666\"," \
					"\"ts\":" (1763800000000 + id) ",\"extra\":{\"medal\":{\"name\":\"粉丝团\",\"level\":12}}}"
				bulk(id); bulk(json); bulk(uid)
			}
		}
	}' >"$tmp/cmds"
	c0=$(cpu)
	t0=$(date +%s.%N)
	out=$(rc --pipe <"$tmp/cmds" 2>&1 | tail -n 1)
	t1=$(date +%s.%N)
	c1=$(cpu)
	case $out in *"errors: 0,"*) ;; *) echo "FAIL: $out"; exit 1 ;; esac
	awk -v name="${names[$level]}" -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v m=$((batches * batch)) 'BEGIN {
		us = (c1 - c0) * 1e6 / m
		printf "%-8s %d msgs: Redis CPU %.1f us per message (%.0f msg per Redis CPU-second), %.2f s wall\n", name, m, us, (us > 0 ? 1e6 / us : 0), t1 - t0
	}'
done
echo "redis-floor: load average $(cut -d ' ' -f 1-3 /proc/loadavg) after"
