#!/bin/sh
# SPDX-License-Identifier: MIT
# bench_replay_douyin: decoding speed of `livetap-fetcher --platform douyin
# --replay FILE --stdout` (issue 5 target: >= 500,000 messages/s for recorded
# Douyin gzip frames on one core). Generates a capture with mkcapture_douyin
# (deterministic from the seed), checks on a first run that every message
# comes out once (line count and distinct msg_ids), replays it again with the
# output thrown away, and prints messages/s per wall second and per CPU
# second (on a loaded machine the CPU figure is the one-core speed).
#   bench_replay_douyin.sh MKCAPTURE_DOUYIN FETCHER
# Environment: BENCH_FRAMES (3000), BENCH_BATCH (100 messages per frame),
# BENCH_SEED (7), BENCH_PLAIN (1: Responses not gzip'd).
set -eu
mk=$1
fetcher=$2
frames=${BENCH_FRAMES:-3000}
batch=${BENCH_BATCH:-100}
seed=${BENCH_SEED:-7}
plain=
[ "${BENCH_PLAIN:-0}" = 1 ] && plain=--plain
work=$(mktemp -d "${TMPDIR:-/tmp}/lt-bench-douyin.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

summary=$("$mk" --seed "$seed" --frames "$frames" --batch "$batch" $plain -o "$work/cap")
msgs=${summary##*messages=}
bytes=$(wc -c <"$work/cap")

"$fetcher" --platform douyin --room 646454278948 --replay "$work/cap" --stdout --log-level warn >"$work/out"
lines=$(wc -l <"$work/out")
ids=$(sed 's/.*"msg_id":"\([0-9]*\)".*/\1/' "$work/out" | sort -u | wc -l)
if [ "$lines" -ne "$msgs" ] || [ "$ids" -ne "$msgs" ]; then
	echo "bench_replay_douyin: expected $msgs lines with distinct ids, got $lines lines, $ids ids" >&2
	exit 1
fi
rm -f "$work/out"
if [ -x /usr/bin/time ]; then
	/usr/bin/time -f "%e %U %S %M" -o "$work/time" \
		"$fetcher" --platform douyin --room 646454278948 --replay "$work/cap" --stdout --log-level warn >/dev/null
	read -r wall user sys rss <"$work/time"
else
	t0=$(date +%s.%N)
	"$fetcher" --platform douyin --room 646454278948 --replay "$work/cap" --stdout --log-level warn >/dev/null
	t1=$(date +%s.%N)
	wall=$(echo "$t1 - $t0" | bc -l)
	user=$wall sys=0 rss=0
fi
awk -v m="$msgs" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v b="$bytes" -v p="${plain:-gzip}" 'BEGIN {
	cpu = u + s; if (cpu <= 0) cpu = 0.001; if (w <= 0) w = 0.001
	printf "bench_replay_douyin: %s, %d messages, capture %.1f MB: %.2f s wall, %.2f s cpu -> %.0f msg/s (wall), %.0f msg/s (cpu), peak RSS %d KB\n", p, m, b / 1048576, w, cpu, m / w, m / cpu, r
}'
