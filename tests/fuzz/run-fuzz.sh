#!/bin/sh
# SPDX-License-Identifier: MIT
# Run one libFuzzer target for a bounded time over a private copy of its seed
# corpus (libFuzzer adds new inputs to the first corpus directory, and the
# checked-in corpus must stay as it is). Used by the 'fuzz' meson test suite.
#   run-fuzz.sh FUZZER CORPUS_DIR SECONDS
set -eu
fuzzer=$1
corpus=$2
secs=${3:-20}
work=$(mktemp -d "${TMPDIR:-/tmp}/lt-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$work/corpus" "$work/artifacts"
cp -R "$corpus"/. "$work/corpus/"
status=0
# -error_exitcode: libFuzzer's default (77) is what meson reads as SKIP.
# A fixed seed keeps this gate reproducible: the same mutations in the same
# order on every run (long, freely seeded runs are for people: README.md).
"$fuzzer" -seed="${LT_FUZZ_SEED:-1}" -max_total_time="$secs" -print_final_stats=1 -error_exitcode=1 \
	-timeout_exitcode=1 \
	-artifact_prefix="$work/artifacts/" \
	"$work/corpus" || status=$?
if [ "$status" -ne 0 ]; then
	for f in "$work"/artifacts/*; do
		[ -e "$f" ] || continue
		echo "crash input $(basename "$f") (base64):"
		base64 "$f"
	done
fi
exit "$status"
