#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# cli.sh: the command-line contract of every livetap program in a build.
#
#   tests/e2e/cli.sh BUILD_DIR
#
# For each program that exists among BUILD_DIR/*/livetap-* and
# BUILD_DIR/tests/emu/livetap-emu it checks, as three separate tests:
#   --help     exits 0 and prints a usage text (a line containing "usage");
#   --version  exits 0 and prints the project version;
#   --bogus    exits non-zero with exactly one line on stderr.
# One line per check ("ok - ..." / "FAIL - ..."), then the last line
# "N passed, M failed"; exit 0 iff M is 0. No programs: "0 passed, 0 failed".
# tests/run calls it for each build (with the sanitizer options exported for
# the asan build, so a leak report at exit fails the check).
set -euo pipefail

bdir=${1:?usage: tests/e2e/cli.sh BUILD_DIR}
bdir=$(cd "$bdir" && pwd)
src=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)

version=$(meson introspect --projectinfo "$bdir" 2>/dev/null |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])' 2>/dev/null || true)
if [ -z "$version" ]; then
	version=$(sed -n "s/^[[:space:]]*version[[:space:]]*:[[:space:]]*'\([^']*\)'.*/\1/p" "$src/meson.build" | head -n 1)
fi

work=$(mktemp -d "${LT_TEST_TMPDIR:-${TMPDIR:-/tmp}}/cli.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Nothing a program does here may land in the repo or a real state dir.
export LIVETAP_STATE_DIR=$work/state

passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
bad() { echo "FAIL - $*"; failed=$((failed + 1)); }

# run PROG ARGS...: sets rc, and writes $work/out and $work/err.
run() {
	rc=0
	timeout 20 "$@" </dev/null >"$work/out" 2>"$work/err" || rc=$?
}

show() {
	sed -n '1,10s/^/    | /p' "$work/$1"
}

progs=()
for p in "$bdir"/*/livetap-* "$bdir/tests/emu/livetap-emu"; do
	[ -f "$p" ] && [ -x "$p" ] && progs+=("$p")
done

for p in ${progs[@]+"${progs[@]}"}; do
	name=${p#"$bdir"/}

	run "$p" --help
	if [ "$rc" -eq 0 ] && grep -qi usage "$work/out" "$work/err"; then
		ok "$name --help"
	else
		bad "$name --help: exit $rc, usage text: $(grep -qi usage "$work/out" "$work/err" && echo yes || echo no)"
		show err
	fi

	run "$p" --version
	if [ "$rc" -eq 0 ] && [ -n "$version" ] && grep -qF -- "$version" "$work/out" "$work/err"; then
		ok "$name --version"
	else
		bad "$name --version: exit $rc, wanted '$version' in the output"
		show out
		show err
	fi

	run "$p" --bogus
	lines=$(wc -l <"$work/err")
	# A last line without a newline still counts as a line.
	[ -s "$work/err" ] && [ -n "$(tail -c 1 "$work/err")" ] && lines=$((lines + 1))
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$lines" -eq 1 ]; then
		ok "$name --bogus"
	else
		bad "$name --bogus: exit $rc (want non-zero), $lines stderr lines (want 1)"
		show err
	fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
