#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench_pipeline: the whole pipeline on this machine, with Redis and
# PostgreSQL on it too (the servers tests/run or servers.sh started).
#
#   bash tests/bench/bench_pipeline.sh BUILD_DIR     (meson test --benchmark pipeline)
#
# One livetap-processor and one livetap-persister (their own ipc endpoints,
# state directory and a fresh database, as the e2e tests set them up) and:
#   1. throughput: lt-producer at full speed pushes N messages (default
#      200,000; env N) of 1,000 users; the time from its first push until
#      every message is acknowledged -- by the processor only (into Redis),
#      by the persister only (into PostgreSQL: committed), and by both (end
#      to end) -- in three runs on fresh rooms;
#   2. latency: bench_latency (tests/bench/latency.c) sends chat at 10,000
#      and at 1,000 msg/s (env LAT_RATES; LAT_RATES= skips them) for 10 s
#      each through the same processor and persister, and times each message
#      from lt_delivery_push to its arrival on a subscriber of the room
#      channel (p50/p90/p99/p99.9/max);
#   3. peak RSS (VmHWM) of the processor and the persister after all that.
# Each throughput run also prints the CPU microseconds per message that the
# processor, Redis, the persister, PostgreSQL and the producer spent on it
# (from /proc and Redis's INFO cpu): on 2 cores, 50,000 msg/s leaves 40 µs.
# The load average before and after is printed with the figures: the
# machine may be shared.
set -uo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[ -n "${LIVETAP_REDIS_URL:-}" ] && [ -n "${LIVETAP_PG_DSN:-}" ] || { echo "SKIP: LIVETAP_REDIS_URL/LIVETAP_PG_DSN not set"; exit 77; }
# shellcheck source=tests/e2e/lib/pipeline.sh
. "$src/tests/e2e/lib/pipeline.sh"
lt_pipe_init "${1:?usage: bench_pipeline.sh BUILD_DIR}" bench
tmp=$lt_pipe_tmp
[ -x "$build/tests/bench/bench_latency" ] || { echo "FAIL: $build/tests/bench/bench_latency not built"; exit 1; }
fail() { echo "FAIL: $*"; lt_pipe_logs; exit 1; }

n=${N:-200000}
lat_rates=${LAT_RATES-10000 1000} # set but empty: no latency runs
tag=$(( ($$ * 7919 + RANDOM) % 900000 + 100000 ))
echo "machine: $(nproc) CPUs, load average $(cut -d ' ' -f 1-3 /proc/loadavg) before; $n messages per run"

lt_pipe_start_persister
lt_pipe_start_processor

# CPU seconds (user + system) of a process, "0" if it is gone.
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Redis's CPU seconds (INFO cpu: its own and that of its finished children,
# the AOF rewrites that the appended traffic sets off). PostgreSQL's: the
# postmaster of LIVETAP_PG_DSN's cluster (its own time and that of the
# backends it has reaped) plus its live children, so other clusters on the
# machine do not count and a backend that exits mid-run is not lost; where
# the postmaster cannot be read (another user's cluster), every postgres
# process on the machine.
redis_cpu_s() { lt_pipe_redis INFO cpu | tr -d '\r' | awk -F: '/^used_cpu_(user|sys)(_children)?:/ {s += $2} END {printf "%.2f", s}'; }
pg_master=$(head -n 1 "$(lt_pipe_psql 'SHOW data_directory' 2>/dev/null)/postmaster.pid" 2>/dev/null || true)
[ -n "$pg_master" ] && [ -r "/proc/$pg_master/stat" ] || pg_master=""
pg_cpu_s() {
	local s=0 p
	if [ -n "$pg_master" ]; then
		s=$(awk '{printf "%.2f", ($14 + $15 + $16 + $17) / 100}' "/proc/$pg_master/stat" 2>/dev/null || echo 0)
		for p in $(pgrep -P "$pg_master"); do s=$(awk -v s="$s" '{printf "%.2f", s + ($14 + $15) / 100}' "/proc/$p/stat" 2>/dev/null || echo "$s"); done
	else
		for p in $(pgrep -x postgres); do s=$(awk -v s="$s" '{printf "%.2f", s + ($14 + $15) / 100}' "/proc/$p/stat" 2>/dev/null || echo "$s"); done
	fi
	echo "$s"
}
redis_forks() { lt_pipe_redis INFO stats | tr -d '\r' | awk -F: '/^total_forks:/ {print $2}'; }
cpu_snapshot() { echo "$(cpu_s "$processor_pid") $(redis_cpu_s) $(cpu_s "$persister_pid") $(pg_cpu_s)"; }

# run NAME ROOM FLAGS...: one lt-producer at full speed; prints its figures and
# the CPU seconds each part of the pipeline spent on them, per message.
run() {
	local name=$1 room=$2 out before after
	shift 2
	out=$tmp/$name.json
	before=$(cpu_snapshot)
	/usr/bin/time -f "%U %S" -o "$tmp/$name.time" \
		"$build/tests/support/lt-producer" --source "bench-$tag-$name" --room "$room" --count "$n" \
		--users 1000 --plant benchword --plant-every 10 --spool "$tmp/spool-$name" \
		--drain-timeout 300000 "$@" >"$out" 2>"$tmp/$name.err" || fail "$name: producer: $(cat "$tmp/$name.err")"
	after=$(cpu_snapshot)
	python3 - "$out" "$name" "$before" "$after" "$tmp/$name.time" <<'PY'
import json, sys
p = json.loads(open(sys.argv[1]).read().splitlines()[-1])
print("%-26s %7d msgs: pushed in %6.2f s, all acked after %6.2f s = %7.0f msg/s (batches %d, resent %d)"
      % (sys.argv[2], p["sent"], p["push_seconds"], p["total_seconds"], p["sent"] / p["total_seconds"],
         p["delivery"]["batches"], p["delivery"]["resent"]))
b = [float(x) for x in sys.argv[3].split()]
a = [float(x) for x in sys.argv[4].split()]
prod = sum(float(x) for x in open(sys.argv[5]).read().split()[:2])
parts = [a[i] - b[i] for i in range(4)] + [prod]
names = ["processor", "redis", "persister", "postgres", "producer"]
us = 1e6 / p["sent"]
print("%-26s CPU us per message: %s; total %.1f" % ("", ", ".join("%s %.1f" % (n, c * us) for n, c in zip(names, parts)),
                                                    sum(parts) * us))
PY
}

# Warm-up, not counted: the processor loads its dictionary and script, the
# persister makes its partitions.
n_main=$n
n=2000
run "warm-up" "9${tag}0" --processors "$LIVETAP_PROCESSOR_LISTEN" --persisters "$LIVETAP_PERSISTER_LISTEN" >/dev/null
n=$n_main
echo "-- throughput (lt-producer --rate 0)"
run "into Redis only" "9${tag}1" --processors "$LIVETAP_PROCESSOR_LISTEN"
run "into PostgreSQL only" "9${tag}2" --persisters "$LIVETAP_PERSISTER_LISTEN"
run "end to end (both)" "9${tag}3" --processors "$LIVETAP_PROCESSOR_LISTEN" --persisters "$LIVETAP_PERSISTER_LISTEN"
rows=$(lt_pipe_psql "SELECT count(*) FROM live_messages WHERE room_id IN ('9${tag}2', '9${tag}3')")
[ "$rows" = $((2 * n)) ] || fail "PostgreSQL holds $rows rows, want $((2 * n))"
echo "   (PostgreSQL holds all $rows rows of the two runs that included it)"

echo "-- latency, send -> PUBLISH (bench_latency)"
k=4
for r in $lat_rates; do
	forks=$(redis_forks)
	"$build/tests/bench/bench_latency" --processors "$LIVETAP_PROCESSOR_LISTEN" \
		--persisters "$LIVETAP_PERSISTER_LISTEN" --room "9${tag}$k" --rate "$r" --seconds 10 --warmup 1 ||
		fail "bench_latency at $r msg/s"
	# A fork stops Redis for its duration (18 ms seen with 660 MB of data),
	# which shows in the tail: say so when one happened.
	if [ "$(redis_forks)" != "$forks" ]; then
		echo "   (Redis forked for an AOF rewrite during this run; the last fork took" \
			"$(lt_pipe_redis INFO stats | tr -d '\r' | awk -F: '/^latest_fork_usec:/ {printf "%.1f", $2 / 1000}') ms)"
	fi
	k=$((k + 1))
done

echo "-- peak RSS: livetap-processor $(lt_pipe_hwm "$processor_pid") kB, livetap-persister $(lt_pipe_hwm "$persister_pid") kB"
echo "machine: load average $(cut -d ' ' -f 1-3 /proc/loadavg) after"
exit 0
