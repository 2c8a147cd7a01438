# SPDX-License-Identifier: MIT
# tests/e2e/lib/pipeline.sh: sourced by the end-to-end pipeline tests and the
# pipeline benchmark. It gives a test its own PostgreSQL database, its own
# state directory and NNG ipc endpoints, starts livetap-processor and
# livetap-persister on them, and tears everything down on exit.
#
#   . tests/e2e/lib/pipeline.sh
#   lt_pipe_init BUILD_DIR NAME    # tmp dir, database lt_e2e_NAME_<random>
#   lt_pipe_start_persister        # sets persister_pid, waits for migrations
#   lt_pipe_start_processor        # sets processor_pid
#   lt_pipe_kill9 processor|persister; lt_pipe_start_...
#   lt_pipe_alive PID              # true while PID runs (not exited, not a zombie)
#   lt_pipe_psql SQL               # one value (or rows, '|'-separated)
#   lt_pipe_redis ARGS...          # redis-cli against the test's Redis
#
# Needs LIVETAP_REDIS_URL and LIVETAP_PG_DSN (tests/run exports them); the
# caller exits 77 without them. The processor and the persister see
# LIVETAP_PG_DSN pointed at the fresh database; the caller's value is kept in
# lt_pipe_dsn_admin for CREATE/DROP DATABASE.

lt_pipe_pids=()
lt_pipe_db=
processor_pid=
persister_pid=

lt_pipe_cleanup() {
	local p
	for p in "${lt_pipe_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${lt_pipe_pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ -n "$lt_pipe_db" ]; then
		psql -X -q "$lt_pipe_dsn_admin" -c "DROP DATABASE IF EXISTS $lt_pipe_db WITH (FORCE)" \
			>/dev/null 2>&1 || true
	fi
	if [ "${lt_pipe_keep:-0}" = 0 ] && [ -n "${lt_pipe_tmp:-}" ]; then rm -rf "$lt_pipe_tmp"; fi
}

# lt_pipe_init BUILD_DIR NAME: sets build, lt_pipe_tmp, lt_pipe_db and the
# environment the consumers read; installs the EXIT trap.
lt_pipe_init() {
	build=$(cd "$1" && pwd)
	local name=$2 b
	for b in processor/livetap-processor persister/livetap-persister tests/support/lt-producer; do
		[ -x "$build/$b" ] || { echo "FAIL: $build/$b not built"; exit 1; }
	done
	lt_pipe_tmp=$(mktemp -d "${LT_TEST_TMPDIR:-${TMPDIR:-/tmp}}/$name.XXXXXX")
	lt_pipe_dsn_admin=$LIVETAP_PG_DSN
	lt_pipe_db="lt_e2e_${name}_$$_$RANDOM"
	trap lt_pipe_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	psql -X -q -v ON_ERROR_STOP=1 "$lt_pipe_dsn_admin" -c "CREATE DATABASE $lt_pipe_db" >/dev/null ||
		{ echo "FAIL: cannot create database $lt_pipe_db"; exit 1; }
	# A later dbname= in a libpq connection string wins over an earlier one.
	export LIVETAP_PG_DSN="$lt_pipe_dsn_admin dbname=$lt_pipe_db"
	export LIVETAP_STATE_DIR=$lt_pipe_tmp/state
	export LIVETAP_PROCESSOR_LISTEN=ipc://$lt_pipe_tmp/proc.ipc
	export LIVETAP_PERSISTER_LISTEN=ipc://$lt_pipe_tmp/pers.ipc
	export LIVETAP_FETCHER_PROCESSORS=$LIVETAP_PROCESSOR_LISTEN
	export LIVETAP_FETCHER_PERSISTERS=$LIVETAP_PERSISTER_LISTEN
	export LIVETAP_PROCESSOR_METRICS_LISTEN=
	export LIVETAP_PERSISTER_METRICS_LISTEN=
	export LIVETAP_LOG_LEVEL=${LIVETAP_LOG_LEVEL:-warn}
	mkdir -p "$LIVETAP_STATE_DIR"
	echo '{}' >"$lt_pipe_tmp/livetap.json"
	lt_pipe_cfg=(--config "$lt_pipe_tmp/livetap.json")
}

# lt_pipe_alive PID: true while the process runs. Not kill -0, which also
# succeeds for a zombie (an exited child not yet waited for, or one nobody
# reaps when PID 1 does not).
lt_pipe_alive() {
	local st
	st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "${st%% *}" != Z ]
}

lt_pipe_psql() {
	psql -X -Atq -v ON_ERROR_STOP=1 "$LIVETAP_PG_DSN" -c "$1"
}

lt_pipe_redis() {
	redis-cli -u "$LIVETAP_REDIS_URL" --raw "$@"
}

lt_pipe_start_persister() {
	"$build/persister/livetap-persister" "${lt_pipe_cfg[@]}" \
		>>"$lt_pipe_tmp/persister.out" 2>>"$lt_pipe_tmp/persister.err" &
	persister_pid=$!
	lt_pipe_pids+=("$persister_pid")
	local _
	for _ in $(seq 1 300); do
		[ "$(lt_pipe_psql "SELECT to_regclass('live_messages') IS NOT NULL" 2>/dev/null)" = t ] && return 0
		lt_pipe_alive "$persister_pid" || break
		sleep 0.1
	done
	echo "FAIL: livetap-persister did not apply its migrations:"
	tail -n 20 "$lt_pipe_tmp/persister.err"
	exit 1
}

lt_pipe_start_processor() {
	"$build/processor/livetap-processor" "${lt_pipe_cfg[@]}" \
		>>"$lt_pipe_tmp/processor.out" 2>>"$lt_pipe_tmp/processor.err" &
	processor_pid=$!
	lt_pipe_pids+=("$processor_pid")
}

# lt_pipe_kill9 processor|persister: SIGKILL and reap it.
lt_pipe_kill9() {
	local pid
	if [ "$1" = processor ]; then pid=$processor_pid; else pid=$persister_pid; fi
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# lt_pipe_hwm PID: the process's peak RSS in kB (VmHWM), or "?".
lt_pipe_hwm() {
	awk '/^VmHWM:/ {print $2; f=1} END {if (!f) print "?"}' "/proc/$1/status" 2>/dev/null || echo "?"
}

# lt_pipe_logs: the tail of each program's stderr, for a failure report.
lt_pipe_logs() {
	local f
	for f in "$lt_pipe_tmp"/*.err; do
		[ -s "$f" ] || continue
		echo "---- ${f##*/} (last lines) ----"
		tail -n 15 "$f"
	done
}
