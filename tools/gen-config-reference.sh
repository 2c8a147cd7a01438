#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# gen-config-reference.sh: regenerate the generated parts of docs/OPERATIONS.md.
#
#   tools/gen-config-reference.sh [--check] [BUILDDIR]     (BUILDDIR: build)
#
# Two blocks of docs/OPERATIONS.md are generated, each between a BEGIN and an
# END marker line:
#
#   config-reference  the settings table, exactly as
#                     `livetap-processor --config-reference` prints it (from
#                     common/settings.c, the one table every program reads);
#   metrics           every metric the sources register (lt_metrics_counter /
#                     gauge / histogram and common/delivery.c's series), found
#                     by reading common/ fetcher/ processor/ persister/ api/.
#
# Without --check it rewrites the file in place (and says whether anything
# changed). With --check it changes nothing and exits 1, showing the diff, if
# the committed file differs from what it would write:
# tests/e2e/test_config_reference.sh runs that, so the reference cannot drift
# from the code. Exit 2 on bad usage or a missing program.
set -euo pipefail

check=0
build=
for a in "$@"; do
	case $a in
	--check) check=1 ;;
	-h | --help) sed -n '3,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "gen-config-reference: unknown option '$a'" >&2; exit 2 ;;
	*) build=$a ;;
	esac
done
src=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
build=${build:-$src/build}
[ -d "$build" ] && build=$(cd "$build" && pwd)
prog=$build/processor/livetap-processor
doc=$src/docs/OPERATIONS.md
[ -x "$prog" ] || { echo "gen-config-reference: $prog is not built" >&2; exit 2; }
[ -f "$doc" ] || { echo "gen-config-reference: $doc not found" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gen-ref.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# A settings file in the caller's directory or LIVETAP_* variables do not
# change the table (it prints defaults), but keep the run clean anyway.
(cd "$tmp" && env -i PATH="$PATH" "$prog" --config-reference) >"$tmp/config-reference.md"
[ -s "$tmp/config-reference.md" ] || { echo "gen-config-reference: $prog printed nothing" >&2; exit 2; }

python3 - "$src" >"$tmp/metrics.md" <<'PY'
import glob, os, re, sys
src = sys.argv[1]
# name, help (one or more adjacent string literals), then the label names
pat = re.compile(r'(counter_series|gauge_series|lt_metrics_(counter|gauge|histogram))\(\s*"((?:livetap|process)_[a-z0-9_]+)",'
                 r'\s*((?:"(?:[^"\\]|\\.)*"\s*)+)(?:,([^;]*?))?\)\s*[,;)]', re.S)
rows = {}
for d in ("common", "fetcher", "processor", "processor/plugins", "persister", "api"):
    for f in sorted(glob.glob(os.path.join(src, d, "*.c"))):
        text = open(f, encoding="utf-8").read()
        for m in pat.finditer(text):
            fn, kind, name, help_lits, rest = m.groups()
            kind = kind or ("counter" if fn == "counter_series" else "gauge")
            helptext = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', help_lits))
            if fn in ("counter_series", "gauge_series"):
                labels = ["source"]
            else:
                labels = [l for l in re.findall(r'"([a-z_]+)"', rest or "")]
            where = os.path.relpath(f, src)
            rows.setdefault(name, (kind, labels, helptext, where))
def who(where, name):
    if name in ("livetap_build_info", "process_start_time_seconds"): return "every program"
    top = where.split("/")[0]
    if where == "common/delivery.c": return "fetcher (one series per room)"
    return {"processor": "processor", "persister": "persister", "api": "api", "fetcher": "fetcher"}.get(top, top)
print("| metric | type | labels | from | meaning |")
print("| --- | --- | --- | --- | --- |")
for name in sorted(rows, key=lambda n: (who(rows[n][3], n) != "every program", who(rows[n][3], n), n)):
    kind, labels, helptext, where = rows[name]
    print("| `%s` | %s | %s | %s | %s |" % (name, kind, ", ".join("`%s`" % l for l in labels) or "—",
                                            who(where, name), helptext.replace("|", "\\|")))
PY

# splice NAME FILE: replace the lines between the NAME markers of $tmp/doc
splice() {
	python3 - "$tmp/doc" "$1" "$2" <<'PY'
import sys
path, name, block = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
text = open(path).read()
begin = "<!-- BEGIN %s:" % name
end = "<!-- END %s -->" % name
b = text.find(begin)
e = text.find(end)
if b < 0 or e < b:
    sys.exit("gen-config-reference: markers for %s not found in docs/OPERATIONS.md" % name)
b = text.index("\n", b) + 1
open(path, "w").write(text[:b] + block + text[e:])
PY
}
cp "$doc" "$tmp/doc"
splice config-reference "$tmp/config-reference.md"
splice metrics "$tmp/metrics.md"

if [ $check = 1 ]; then
	if cmp -s "$doc" "$tmp/doc"; then
		echo "docs/OPERATIONS.md: generated blocks are current"
		exit 0
	fi
	echo "docs/OPERATIONS.md is out of date with the code; run tools/gen-config-reference.sh and commit:" >&2
	diff -u "$doc" "$tmp/doc" | sed 's/^/  /' >&2 || true
	exit 1
fi
if cmp -s "$doc" "$tmp/doc"; then
	echo "docs/OPERATIONS.md: unchanged"
else
	cp "$tmp/doc" "$doc"
	echo "docs/OPERATIONS.md: regenerated"
fi
