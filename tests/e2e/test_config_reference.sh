#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_config_reference: docs/OPERATIONS.md's generated blocks (the settings
# table from `livetap-processor --config-reference`, the metrics the code
# registers) match the code, so the reference cannot drift.
#
#   bash tests/e2e/test_config_reference.sh BUILDDIR
#
# Fails with the diff when they differ; the fix is to run
# tools/gen-config-reference.sh BUILDDIR and commit docs/OPERATIONS.md.
set -euo pipefail

build=${1:?usage: test_config_reference.sh BUILDDIR}
src=${LT_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
[ -x "$build/processor/livetap-processor" ] || { echo "FAIL: livetap-processor not built in $build"; exit 1; }
if "$src/tools/gen-config-reference.sh" --check "$build"; then
	echo "ok: docs/OPERATIONS.md matches the settings table and the registered metrics"
else
	echo "FAIL: docs/OPERATIONS.md is stale: run tools/gen-config-reference.sh $build and commit it"
	exit 1
fi
