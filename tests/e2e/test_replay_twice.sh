#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_replay_twice: replaying the same frames twice changes no count.
#
#   bash tests/e2e/test_replay_twice.sh BUILD_DIR
#
# mkcapture writes a Bilibili capture (mixed ver 0/2/3 frames, chat, gifts,
# entries, likes, super chats, ...) stamped a minute ago; livetap-fetcher
# --replay pushes it through livetap-processor (Redis) and livetap-persister
# (a fresh PostgreSQL database). The test records every count: live_messages
# rows (total, distinct msg_id, per type), user_statistics rows, gift_records,
# live_sessions counters; in Redis every live:{ROOM}:user:UID hash, the
# user_stats sorted set, the 5m and 30m hot-word sorted sets, the stream
# length and the session hashes. It replays the same file again (a new
# delivery with new seqs, so only the per-message markers and primary keys
# stand between the pipeline and a double count) and asserts that every one
# of those counts is unchanged, and that the first replay stored exactly the
# messages mkcapture wrote. (The 1m window is left out: it moves with the
# clock between the two replays.)
set -uo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[ -n "${LIVETAP_REDIS_URL:-}" ] && [ -n "${LIVETAP_PG_DSN:-}" ] || { echo "SKIP: LIVETAP_REDIS_URL/LIVETAP_PG_DSN not set"; exit 77; }
# shellcheck source=tests/e2e/lib/pipeline.sh
. "$src/tests/e2e/lib/pipeline.sh"
lt_pipe_init "${1:?usage: test_replay_twice.sh BUILD_DIR}" replay2
tmp=$lt_pipe_tmp
for b in fetcher/livetap-fetcher tests/support/mkcapture; do
	[ -x "$build/$b" ] || { echo "FAIL: $build/$b not built"; exit 1; }
done
fail() { echo "FAIL: $*"; lt_pipe_logs; lt_pipe_keep=1; echo "files kept in $tmp"; exit 1; }

room=$(( ($$ * 7919 + RANDOM) % 9000000 + 81000000 ))
r="bilibili:$room"
now_ms=$(($(date +%s%N) / 1000000))
"$build/tests/support/mkcapture" --seed 23 --frames 300 --batch 20 --ver mix --room "$room" \
	--start-ms $((now_ms - 60000)) --step-ms 100 -o "$tmp/c.cap" >"$tmp/mk.out" || fail "mkcapture"
want=$(sed -n 's/.*messages=\([0-9]*\).*/\1/p' "$tmp/mk.out")
[ -n "$want" ] && [ "$want" -gt 0 ] || fail "mkcapture printed no message count: $(cat "$tmp/mk.out")"

lt_pipe_start_persister
lt_pipe_start_processor

replay() { # replay N
	local rc=0
	"$build/fetcher/livetap-fetcher" "${lt_pipe_cfg[@]}" --platform bilibili --room "$room" \
		--replay "$tmp/c.cap" --drain-timeout 120000 >"$tmp/replay$1.out" 2>"$tmp/replay$1.err" || rc=$?
	[ "$rc" = 0 ] || fail "replay $1 exited $rc: $(tail -n 3 "$tmp/replay$1.err")"
}

# snapshot FILE: every count, one "name: value" line each, stable order.
snapshot() {
	local f=$1 k
	{
		echo "pg live_messages total|distinct msg_id: $(lt_pipe_psql "SELECT count(*), count(DISTINCT msg_id)
			FROM live_messages WHERE platform = 'bilibili' AND room_id = '$room'")"
		lt_pipe_psql "SELECT 'pg live_messages type ' || type || ': ' || count(*) || ' count ' || sum(count)
			|| ' value ' || sum(value) FROM live_messages
			WHERE platform = 'bilibili' AND room_id = '$room' GROUP BY type ORDER BY type"
		lt_pipe_psql "SELECT 'pg user_statistics ' || user_id || ': ' || concat_ws(' ', messages, gifts,
			gift_value, likes, first_seen, last_seen) FROM user_statistics
			WHERE platform = 'bilibili' AND room_id = '$room' ORDER BY user_id"
		echo "pg gift_records count|value: $(lt_pipe_psql "SELECT count(*), coalesce(sum(value), 0)
			FROM gift_records WHERE platform = 'bilibili' AND room_id = '$room'")"
		lt_pipe_psql "SELECT 'pg live_sessions ' || id || ': ' || concat_ws(' ', messages, gifts, gift_value,
			likes) FROM live_sessions WHERE platform = 'bilibili' AND room_id = '$room' ORDER BY id"
		# one redis-cli for every user hash: seven fields each, one per line
		lt_pipe_redis --scan --pattern "live:{$r}:user:*" | sort >"$f.keys"
		awk '{print "HMGET " $0 " " F}' F="$user_fields" "$f.keys" | lt_pipe_redis >"$f.vals"
		paste -d ' ' "$f.keys" <(paste -d ' ' - - - - - - - <"$f.vals") | sed 's/^/redis /'
		lt_pipe_redis --scan --pattern "live:{$r}:session:*" | sort | while read -r k; do
			echo "redis $k: $(lt_pipe_redis hgetall "$k" | paste -d '=' - - | sort | tr '\n' ' ')"
		done
		echo "redis user_stats: $(lt_pipe_redis zrange "live:{$r}:user_stats" 0 -1 withscores | paste -d '=' - - | sort | tr '\n' ' ')"
		for k in 5m 30m; do
			echo "redis hotwords:$k: $(lt_pipe_redis zrange "live:{$r}:hotwords:$k" 0 -1 withscores | paste -d '=' - - | sort | tr '\n' ' ')"
		done
		echo "redis stream length: $(lt_pipe_redis xlen "live:{$r}:messages")"
	} >"$f"
}

user_fields="name messages gifts gift_value likes first_seen last_seen"
replay 1
snapshot "$tmp/first.txt"
rows=$(sed -n 's/^pg live_messages total|distinct msg_id: //p' "$tmp/first.txt")
echo "first replay: mkcapture wrote $want messages; live_messages total|distinct: $rows;" \
	"$(grep -c '^pg user_statistics' "$tmp/first.txt") users in PostgreSQL," \
	"$(grep -c '^redis live:.*:user:' "$tmp/first.txt") user hashes in Redis;" \
	"$(sed -n 's/^redis stream length: //p' "$tmp/first.txt") in the stream;" \
	"$(sed -n 's/^redis hotwords:30m: //p' "$tmp/first.txt" | wc -w) hot words in 30m"
[ "$rows" = "$want|$want" ] || fail "live_messages holds $rows after one replay, want $want|$want"
[ "$(sed -n 's/^redis stream length: //p' "$tmp/first.txt")" = "$want" ] || fail "the stream does not hold $want messages"
[ "$(sed -n 's/^redis hotwords:30m: //p' "$tmp/first.txt" | wc -w)" -gt 10 ] || fail "fewer than 10 hot words after one replay"
awk '$2 ~ /:user:/ && $4 > 0 {n++} END {exit !n}' "$tmp/first.txt" || fail "no user message counter in Redis"
grep -q '^pg user_statistics .*: [1-9]' "$tmp/first.txt" || fail "no user_statistics row with messages"

replay 2
snapshot "$tmp/second.txt"
if ! diff -u "$tmp/first.txt" "$tmp/second.txt" >"$tmp/diff.txt"; then
	grep '^[-+]' "$tmp/diff.txt" | cut -c 1-300 | head -n 40
	fail "a second replay of the same capture changed counts (diff above)"
fi
echo "second replay: all $(wc -l <"$tmp/first.txt") recorded counts unchanged"
echo "ok"
exit 0
