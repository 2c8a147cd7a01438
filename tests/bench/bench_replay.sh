#!/bin/sh
# SPDX-License-Identifier: MIT
# bench_replay: decoding speed of `livetap-fetcher --replay FILE --stdout`
# (issue 4 target: >= 500,000 messages/s for Bilibili brotli batches on one
# core). Generates a capture with mkcapture (deterministic from the seed),
# replays it with the output thrown away, checks the line count on a second
# run, and prints messages/s per wall second and per CPU second.
#   bench_replay.sh MKCAPTURE FETCHER [BROTLI_FLOOR]
# With BROTLI_FLOOR (build/tests/bench/bench_brotli_floor) it also prints how
# fast libbrotlidec alone decodes the same capture, the ceiling of the replay,
# and brotli plus one jscan pass over every message (--scan), about the least
# any decoder must do.
# Environment: BENCH_FRAMES (5000), BENCH_BATCH (100 messages per frame),
# BENCH_VER (3 = brotli; 2 zlib, 0 raw, mix), BENCH_SEED (7).
set -eu
mk=$1
fetcher=$2
floor=${3:-}
frames=${BENCH_FRAMES:-5000}
batch=${BENCH_BATCH:-100}
ver=${BENCH_VER:-3}
seed=${BENCH_SEED:-7}
work=$(mktemp -d "${TMPDIR:-/tmp}/lt-bench-replay.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

"$mk" --seed "$seed" --frames "$frames" --batch "$batch" --ver "$ver" -o "$work/cap" >/dev/null
msgs=$((frames * batch))
bytes=$(wc -c <"$work/cap")

# one run to count (every message once), one timed run to /dev/null
lines=$("$fetcher" --platform bilibili --room 21452505 --replay "$work/cap" --stdout --log-level warn | wc -l)
if [ "$lines" -ne "$msgs" ]; then
	echo "bench_replay: expected $msgs lines, got $lines" >&2
	exit 1
fi
if [ -x /usr/bin/time ]; then
	/usr/bin/time -f "%e %U %S %M" -o "$work/time" \
		"$fetcher" --platform bilibili --room 21452505 --replay "$work/cap" --stdout --log-level warn >/dev/null
	read -r wall user sys rss <"$work/time"
else
	t0=$(date +%s.%N)
	"$fetcher" --platform bilibili --room 21452505 --replay "$work/cap" --stdout --log-level warn >/dev/null
	t1=$(date +%s.%N)
	wall=$(echo "$t1 - $t0" | bc -l)
	user=$wall sys=0 rss=0
fi
awk -v m="$msgs" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v b="$bytes" -v v="$ver" 'BEGIN {
	cpu = u + s; if (cpu <= 0) cpu = 0.001; if (w <= 0) w = 0.001
	printf "bench_replay: ver %s, %d messages, capture %.1f MB: %.2f s wall, %.2f s cpu -> %.0f msg/s (wall), %.0f msg/s (cpu), peak RSS %d KB\n", v, m, b / 1048576, w, cpu, m / w, m / cpu, r
}'
if [ -n "$floor" ]; then
	"$floor" "$work/cap" 3
	"$floor" --scan "$work/cap" 3
fi
