#!/bin/sh
# SPDX-License-Identifier: MIT
# bench_replay_node: calibration for bench_replay (issue 4 compares our
# Bilibili brotli replay decoding with "the popular Node client at about
# 35k messages/s"). Generates the same capture as bench_replay.sh, installs
# that client (npm bilibili-live-ws) into a temporary directory, feeds it the
# capture's frames one at a time through its own per-frame path
# (replay_node.js), checks it yields every message once, then runs
# bench_replay.sh, which makes the same capture from the same seed and times
# `livetap-fetcher --replay FILE --stdout` on it, and prints both in messages
# per wall second and per CPU second, and the ratio ours/Node, which does not
# depend on how fast the host is.
# Skipped (exit 0) when node or npm is missing or the registry unreachable.
#   bench_replay_node.sh MKCAPTURE FETCHER
# Environment: BENCH_FRAMES (5000), BENCH_BATCH (100 messages per frame),
# BENCH_VER (3 = brotli; 2 zlib, 0 raw, mix), BENCH_SEED (7), as in
# bench_replay.sh; BENCH_NODE_CLIENT_VERSION (6.3.1, of bilibili-live-ws),
# BENCH_NODE_PASSES (2: the last pass is reported, the first warms the JIT).
set -eu
mk=$1
fetcher=$2
frames=${BENCH_FRAMES:-5000}
batch=${BENCH_BATCH:-100}
ver=${BENCH_VER:-3}
seed=${BENCH_SEED:-7}
client=bilibili-live-ws@${BENCH_NODE_CLIENT_VERSION:-6.3.1}
passes=${BENCH_NODE_PASSES:-2}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/lt-bench-replay-node.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "bench_replay_node: skipped, node or npm not found"
	exit 0
fi
if ! timeout 300 npm install --prefix "$work/npm" --no-audit --no-fund --no-save \
	"$client" >"$work/npm.log" 2>&1; then
	echo "bench_replay_node: skipped, npm install $client failed (registry unreachable?):"
	tail -n 5 "$work/npm.log"
	exit 0
fi

"$mk" --seed "$seed" --frames "$frames" --batch "$batch" --ver "$ver" -o "$work/cap" >/dev/null
msgs=$((frames * batch))

# Node: replay_node.js fails (exit 1) unless every pass yields $msgs messages.
if ! node "$here/replay_node.js" "$work/npm" "$work/cap" "$msgs" "$passes" >"$work/node.out"; then
	cat "$work/node.out"
	echo "bench_replay_node: the Node client's run failed" >&2
	exit 1
fi
grep -v '^result ' "$work/node.out"
read -r _ _ nwall ncpu nver <<EOF
$(grep '^result ' "$work/node.out")
EOF

# ours: bench_replay.sh itself on the same capture (same knobs, same seed;
# it checks the line count and times one run to /dev/null)
ours=$(sh "$here/bench_replay.sh" "$mk" "$fetcher") || {
	echo "bench_replay_node: bench_replay.sh failed" >&2
	exit 1
}
echo "$ours"
figs=$(echo "$ours" | sed -n 's/^bench_replay: .*: \([0-9.]*\) s wall, \([0-9.]*\) s cpu .*/\1 \2/p')
wall=${figs% *}
cpu=${figs#* }
if [ -z "$figs" ]; then
	echo "bench_replay_node: no figures in bench_replay.sh's output" >&2
	exit 1
fi

awk -v m="$msgs" -v v="$ver" -v nv="$nver" -v node="$(node --version)" -v p="$passes" \
	-v nw="$nwall" -v nc="$ncpu" -v w="$wall" -v c="$cpu" 'BEGIN {
	cpu = c; if (cpu <= 0) cpu = 0.001; if (w <= 0) w = 0.001
	printf "bench_replay_node: ver %s, %d messages: bilibili-live-ws %s (node %s, pass %d) %.0f msg/s (wall), %.0f msg/s (cpu); livetap-fetcher %.0f msg/s (wall), %.0f msg/s (cpu); ours/node %.1fx (wall), %.1fx (cpu)\n", v, m, nv, node, p, m / nw, m / nc, m / w, m / cpu, nw / w, nc / cpu
}'
