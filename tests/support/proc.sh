# SPDX-License-Identifier: MIT
# proc.sh: process checks for test scripts (source it).
#
# `kill -0 PID` succeeds for a zombie: a process that has exited but whose
# parent has not reaped it. A process whose parent died is handed to PID 1,
# and in containers PID 1 is often not an init that reaps orphans, so a
# killed orphan stays a zombie for good. "Is it still running?" must
# therefore read the state from /proc, not only ask kill.

# lt_alive PID: true while PID exists and is not a zombie (state Z) or dead (X).
lt_alive() {
	local stat state
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	# The name field is in parentheses and may hold spaces; the state follows it.
	state=${stat##*) }
	state=${state%% *}
	[ "$state" != Z ] && [ "$state" != X ]
}

# lt_wait_gone PID SECONDS: wait until PID is no longer alive; false on timeout.
lt_wait_gone() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		lt_alive "$1" || return 0
		sleep 0.1
	done
	! lt_alive "$1"
}
