# SPDX-License-Identifier: MIT
# fetcher.sh: what the fetcher end-to-end scripts share (source it after
# setting emu_bin). Each script runs livetap-emu and livetap-fetcher against
# each other on localhost.
#
#   lt_e2e_setup NAME              $tmp (a fresh directory under
#                                  LT_TEST_TMPDIR), pids=() killed on exit,
#                                  failures=0, fail MSG, pass MSG
#   lt_emu_start PLATFORM NAME ARGS...
#                                  start the emulator on a free port with
#                                  its sent-log in $tmp/NAME.sent (KOOK
#                                  switches from $KOOK); sets emu_pid and
#                                  emu_port, or exits when it does not start

lt_e2e_cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}

lt_e2e_setup() {
	tmp=$(mktemp -d "${LT_TEST_TMPDIR:-/tmp}/$1.XXXXXX")
	pids=()
	trap lt_e2e_cleanup EXIT
	failures=0
}

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

lt_emu_start() {
	local platform=$1 name=$2
	shift 2
	LT_EMU_KOOK=${KOOK:-} "$emu_bin" --platform "$platform" --listen 127.0.0.1:0 --sent-log "$tmp/$name.sent" "$@" \
		>"$tmp/$name.emu.out" 2>"$tmp/$name.emu.err" &
	emu_pid=$!
	pids+=("$emu_pid")
	for _ in $(seq 1 100); do
		emu_port=$(sed -n 's/^livetap-emu: .* listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/$name.emu.out" 2>/dev/null || true)
		[ -n "$emu_port" ] && return 0
		sleep 0.05
	done
	echo "FAIL: the $platform emulator did not start:"
	cat "$tmp/$name.emu.err"
	exit 1
}
