#!/usr/bin/env bash
# servers.sh: start or stop a private Redis and PostgreSQL for tests and demos.
#
#   eval "$(tests/support/servers.sh start DIR)"   # exports LIVETAP_REDIS_URL, LIVETAP_PG_DSN,
#                                                  # LT_REDIS_PORT, LT_PG_PORT, LT_SERVERS_DIR
#   tests/support/servers.sh stop DIR
#   tests/support/servers.sh restart-redis DIR     # same port, same data (AOF)
#   tests/support/servers.sh restart-pg DIR
#   tests/support/servers.sh kill-redis DIR | kill-pg DIR
#   tests/support/servers.sh start-redis|start-pg|stop-redis|stop-pg DIR  # one of them
#
# Redis runs with AOF on (appendfsync everysec) so a restart keeps its data;
# PostgreSQL runs with fsync off (durability is not under test, restarts are),
# as an unprivileged user because it refuses root. Both listen on 127.0.0.1 on
# free ports; logs stay in DIR for post-mortems. Nothing here touches a server
# outside DIR.
set -euo pipefail

cmd=${1:?usage: servers.sh start|stop|start-redis|start-pg|stop-redis|stop-pg|restart-redis|restart-pg|kill-redis|kill-pg|env DIR}
dir=${2:?usage: servers.sh $cmd DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# meson test sets MALLOC_PERTURB_ for the code under test, and the fault tests
# restart the servers from inside it. The servers are not under test: with it,
# glibc fills every block PostgreSQL allocates or frees (6% of a backend's
# time in bench_persister after such a restart).
unset MALLOC_PERTURB_

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
pg_user=${LT_PG_OS_USER:-livetap-pg}
# shellcheck source=tests/support/proc.sh
. "$(dirname "$0")/proc.sh"

free_port() {
	python3 - <<'PY' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u "$pg_user" -- "$@"
	else
		"$@"
	fi
}

# Where PostgreSQL's files live (data in $pgroot/pg, socket, pg.log): DIR
# itself, unless we are root and the unprivileged user cannot reach DIR
# (say DIR is ./var under root's 0700 home). Then they live in a directory of
# their own under /var/lib/livetap-pg, named in DIR/pg.home, with DIR/pg.log a
# symlink to the log so post-mortems look in one place.
pgroot=$dir
[ -f "$dir/pg.home" ] && pgroot=$(cat "$dir/pg.home")

pick_pgroot() {
	[ "$(id -u)" = 0 ] || return 0
	[ -f "$dir/pg.home" ] && return 0
	[ "$(stat -c %U "$dir")" = "$pg_user" ] || chown "$pg_user" "$dir"
	runuser -u "$pg_user" -- test -w "$dir" 2>/dev/null && return 0
	pgroot=/var/lib/livetap-pg/$(printf '%s' "$dir" | md5sum | cut -c 1-16)
	mkdir -p "$pgroot"
	chown "$pg_user" "$pgroot"
	chmod 755 /var/lib/livetap-pg
	echo "$pgroot" >"$dir/pg.home"
	ln -sfn "$pgroot/pg.log" "$dir/pg.log"
}

start_redis() {
	local port
	if [ -f "$dir/redis.port" ]; then port=$(cat "$dir/redis.port"); else port=$(free_port); echo "$port" >"$dir/redis.port"; fi
	mkdir -p "$dir/redis"
	redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/redis" --daemonize yes \
		--pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --appendonly yes \
		--appendfsync everysec --save '' --protected-mode no \
		--zset-max-listpack-entries 16 --hash-max-listpack-entries 32 >/dev/null
	for _ in $(seq 1 100); do
		redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "redis-server did not start; see $dir/redis.log" >&2
	return 1
}

start_pg() {
	local port
	if [ "$(id -u)" = 0 ] && ! id "$pg_user" >/dev/null 2>&1; then
		useradd --system --no-create-home --shell /usr/sbin/nologin "$pg_user"
	fi
	pick_pgroot
	if [ -f "$dir/pg.port" ]; then port=$(cat "$dir/pg.port"); else port=$(free_port); echo "$port" >"$dir/pg.port"; fi
	if [ ! -f "$pgroot/pg/PG_VERSION" ]; then
		rm -rf "$pgroot/pg"
		mkdir -p "$pgroot/pg"
		if [ "$(id -u)" = 0 ]; then chown "$pg_user" "$pgroot/pg" "$pgroot"; fi
		# cwd: the pg user may not be able to read the caller's.
		(cd / && as_pg "$pgbin/initdb" -D "$pgroot/pg" -U livetap --auth=trust -E UTF8 --locale=C.UTF-8) \
			>"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
		cat >>"$pgroot/pg/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$pgroot'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 128MB
log_min_messages = warning
CONF
	fi
	if [ "$(id -u)" = 0 ]; then chown "$pg_user" "$pgroot"; fi
	clear_stale_pg
	(cd / && as_pg "$pgbin/pg_ctl" -D "$pgroot/pg" -l "$pgroot/pg.log" -w -t 60 start) >/dev/null ||
		{ tail -n 30 "$pgroot/pg.log" >&2; return 1; }
	if ! (cd / && as_pg "$pgbin/psql" -h 127.0.0.1 -p "$port" -U livetap -d postgres -Atqc \
		"SELECT 1 FROM pg_database WHERE datname='livetap'") | grep -q 1; then
		(cd / && as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U livetap livetap)
	fi
}

# After kill-pg the lock files stay behind: postmaster.pid in the data
# directory and .s.PGSQL.PORT.lock beside the socket. PostgreSQL removes a
# stale one itself when its PID is gone, but not when that PID is a zombie
# (a killed postmaster that PID 1 never reaps, as in containers whose PID 1
# is no init): kill(pid, 0) still succeeds and start refuses with "lock file
# ... already exists". So: wait for the old server's children to detach from
# its shared memory (they exit on their own when the postmaster dies), then
# remove each lock file whose PID is not a live process.
clear_stale_pg() {
	local pidfile=$pgroot/pg/postmaster.pid pid shmid nattch f
	[ -f "$pidfile" ] || return 0
	pid=$(head -n 1 "$pidfile" 2>/dev/null) || return 0
	case $pid in '' | *[!0-9]*) return 0 ;; esac
	lt_alive "$pid" && return 0 # a live server: let pg_ctl say so
	# Line 7 of postmaster.pid holds the shared memory segment's key and id.
	shmid=$(sed -n 7p "$pidfile" | awk '{print $2}')
	if [ -n "$shmid" ]; then
		for _ in $(seq 1 100); do
			nattch=$(ipcs -m 2>/dev/null | awk -v id="$shmid" '$2 == id {print $6}')
			{ [ -z "$nattch" ] || [ "$nattch" = 0 ]; } && break
			sleep 0.1
		done
	fi
	for f in "$pidfile" "$pgroot"/.s.PGSQL.*.lock; do
		[ -f "$f" ] || continue
		pid=$(head -n 1 "$f" 2>/dev/null) || continue
		case $pid in '' | *[!0-9]*) continue ;; esac
		lt_alive "$pid" || rm -f "$f"
	done
}

stop_redis() {
	local pid
	pid=$(cat "$dir/redis.pid" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null || true
	lt_wait_gone "$pid" 5 || true
	rm -f "$dir/redis.pid"
}

stop_pg() {
	[ -f "$pgroot/pg/postmaster.pid" ] && (cd / && as_pg "$pgbin/pg_ctl" -D "$pgroot/pg" -m fast -w stop) >/dev/null 2>&1 || true
}

exports() {
	echo "export LIVETAP_REDIS_URL=redis://127.0.0.1:$(cat "$dir/redis.port")/0"
	echo "export LIVETAP_PG_DSN='host=127.0.0.1 port=$(cat "$dir/pg.port") dbname=livetap user=livetap'"
	echo "export LT_REDIS_PORT=$(cat "$dir/redis.port")"
	echo "export LT_PG_PORT=$(cat "$dir/pg.port")"
	echo "export LT_SERVERS_DIR=$dir"
}

case $cmd in
start) start_redis; start_pg; exports ;;
stop) stop_redis; stop_pg ;;
start-redis) start_redis ;;
start-pg) start_pg ;;
stop-redis) stop_redis ;;
stop-pg) stop_pg ;;
restart-redis) stop_redis; start_redis ;;
restart-pg) stop_pg; start_pg ;;
kill-redis)
	if [ -f "$dir/redis.pid" ]; then
		pid=$(cat "$dir/redis.pid")
		kill -9 "$pid" 2>/dev/null || true
		lt_wait_gone "$pid" 5 || true
		rm -f "$dir/redis.pid"
	fi
	;;
kill-pg)
	if [ -f "$pgroot/pg/postmaster.pid" ]; then
		pid=$(head -n 1 "$pgroot/pg/postmaster.pid")
		kill -9 "$pid" 2>/dev/null || true
		lt_wait_gone "$pid" 5 || true
	fi
	;;
env) exports ;;
*) echo "servers.sh: unknown command $cmd" >&2; exit 2 ;;
esac
