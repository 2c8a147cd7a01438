#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench_fetcher_live: what live fetchers cost. Starts livetap-emu with a
# generated stream at RATE messages/s per room and FETCHERS fetchers (one room
# each), lets them run SECS seconds, and reports CPU (% of one core, from
# /proc/PID/stat over the window) and memory (RSS, PSS, private; summed over
# the fetchers) once with --stdout to /dev/null and, when LIVETAP_REDIS_URL
# and LIVETAP_PG_DSN are set, once through the real pipeline (a processor and
# a persister, schema in a private PostgreSQL schema).
#
#   bash tests/bench/bench_fetcher_live.sh BUILDDIR            # 1 fetcher, 100 msg/s, 20 s
#   FETCHERS=200 RATE=2 SECS=20 MODES=stdout bash tests/bench/bench_fetcher_live.sh BUILDDIR
#
# Targets (issue 4): one fetcher at 100 msg/s under 8 MB RSS and 2% of a core.
# RSS counts shared library pages (libcrypto, libc, …) in every process;
# PSS divides them among the processes that map them, so PSS summed over
# 200 fetchers is what 200 fetchers really cost.
set -euo pipefail

build=${1:?usage: bench_fetcher_live.sh BUILDDIR}
build=$(cd "$build" && pwd)
rate=${RATE:-100}
secs=${SECS:-20}
n=${FETCHERS:-1}
modes=${MODES:-stdout pipeline}
tmp=$(mktemp -d "${LT_TEST_TMPDIR:-/tmp}/bench-fetcher.XXXXXX")
mkdir -p "$tmp/state"
pids=()
schema=""
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -z "$schema" ] || PGOPTIONS= psql "$LIVETAP_PG_DSN" -q -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
}
trap cleanup EXIT
hz=$(getconf CLK_TCK)

"$build/tests/emu/livetap-emu" --platform bilibili --listen 127.0.0.1:0 --generate --rate "$rate" --seed 1 \
	>"$tmp/emu.out" 2>"$tmp/emu.err" &
pids+=($!)
for _ in $(seq 1 100); do
	port=$(sed -n 's/^livetap-emu: .* listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/emu.out" 2>/dev/null || true)
	[ -n "$port" ] && break
	sleep 0.05
done

ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
mem() { # RSS PSS PRIVATE in kB summed
	local r=0 s=0 v=0
	for p in "$@"; do
		r=$((r + $(awk '/^Rss:/{print $2}' "/proc/$p/smaps_rollup")))
		s=$((s + $(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup")))
		v=$((v + $(awk '/^Private_(Clean|Dirty):/{x += $2} END{print x}' "/proc/$p/smaps_rollup")))
	done
	echo "$r $s $v"
}

run_mode() {
	local mode=$1 fpids=() i
	for i in $(seq 1 "$n"); do
		if [ "$mode" = stdout ]; then
			LIVETAP_BILIBILI_API_BASE=http://127.0.0.1:$port LIVETAP_BILIBILI_WS_URL=ws://127.0.0.1:$port/sub \
			LIVETAP_STATE_DIR=$tmp/state LIVETAP_LOG_LEVEL=warn LIVETAP_REDIS_URL=${LIVETAP_REDIS_URL:-} \
				"$build/fetcher/livetap-fetcher" --platform bilibili --room $((7000000 + i)) --stdout \
				>/dev/null 2>>"$tmp/fetchers.err" &
		else
			PGOPTIONS="-c search_path=$schema" \
			LIVETAP_BILIBILI_API_BASE=http://127.0.0.1:$port LIVETAP_BILIBILI_WS_URL=ws://127.0.0.1:$port/sub \
			LIVETAP_STATE_DIR=$tmp/state LIVETAP_LOG_LEVEL=warn \
				"$build/fetcher/livetap-fetcher" --platform bilibili --room $((8000000 + i)) \
				>/dev/null 2>>"$tmp/fetchers.err" &
		fi
		fpids+=($!)
		pids+=($!)
	done
	sleep 3
	local t0 t1
	t0=$(ticks "${fpids[@]}")
	sleep "$secs"
	t1=$(ticks "${fpids[@]}")
	read -r rss pss priv < <(mem "${fpids[@]}")
	connected=$(curl -s "http://127.0.0.1:$port/emu/stats" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["rooms"]))')
	echo "rooms connected at the emulator: $connected of $n"
	python3 - "$mode" "$n" "$rate" "$secs" "$hz" "$t0" "$t1" "$rss" "$pss" "$priv" <<'PY'
import sys
mode, n, rate, secs, hz, t0, t1, rss, pss, priv = sys.argv[1:]
n, secs, hz = int(n), float(secs), int(hz)
cpu = (int(t1) - int(t0)) / hz / secs * 100
print("fetcher %-8s fetchers=%d rate=%s msg/s each: CPU %.2f%% of a core total (%.3f%% each), "
      "RSS %.1f MB total (%.1f each), PSS %.1f MB total (%.2f each), private %.1f MB total (%.2f each)"
      % (mode, n, rate, cpu, cpu / n, int(rss) / 1024, int(rss) / 1024 / n, int(pss) / 1024,
         int(pss) / 1024 / n, int(priv) / 1024, int(priv) / 1024 / n))
PY
	for p in "${fpids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${fpids[@]}"; do wait "$p" 2>/dev/null || true; done
}

for mode in $modes; do
	if [ "$mode" = pipeline ]; then
		if [ -z "${LIVETAP_REDIS_URL:-}" ] || [ -z "${LIVETAP_PG_DSN:-}" ]; then
			echo "pipeline mode skipped: LIVETAP_REDIS_URL / LIVETAP_PG_DSN not set"
			continue
		fi
		schema=bench_fetcher_$$
		PGOPTIONS= psql "$LIVETAP_PG_DSN" -q -v ON_ERROR_STOP=1 -c "CREATE SCHEMA $schema" >/dev/null
		for prog in processor persister; do
			PGOPTIONS="-c search_path=$schema" LIVETAP_STATE_DIR=$tmp/state LIVETAP_LOG_LEVEL=warn \
				"$build/$prog/livetap-$prog" >"$tmp/$prog.out" 2>"$tmp/$prog.err" &
			pids+=($!)
		done
		sleep 2
	fi
	run_mode "$mode"
done
echo "logs in $tmp"
