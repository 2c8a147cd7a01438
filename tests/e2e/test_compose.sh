#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_compose: deploy/docker-compose.yml is a stack Debian's docker-compose
# 1.29 accepts, and it keeps its promises. No Docker engine is needed:
# `docker-compose config` only parses, validates and resolves the file.
#
#   bash tests/e2e/test_compose.sh [BUILDDIR]     (BUILDDIR is not used)
#
# deploy/ is copied to a temporary directory with livetap.env.example as
# livetap.env (the name the compose file expects; the real one is never
# committed), so the check never depends on a local secrets file. Checks:
# `config` succeeds with and without the demo profile and with the scale
# override; the services issue 7 names exist, the emulator only under the
# `demo` profile; every service has a healthcheck and a restart policy; no
# secret is written inline (every password, key, token or cookie comes from
# the env file); Redis has AOF on; PostgreSQL keeps its data in a volume;
# fetchers dial the consumers over tcp://; the example env file holds every
# secret the stack needs; deploy/livetap.env is git-ignored.
set -euo pipefail

src=${LT_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v docker-compose >/dev/null || { echo "FAIL: docker-compose not installed (tests/support/deps.sh installs it)"; exit 1; }

tmp=$(mktemp -d "${LT_TEST_TMPDIR:-${TMPDIR:-/tmp}}/compose.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

mkdir -p "$tmp/deploy"
cp "$src/deploy/docker-compose.yml" "$src/deploy/docker-compose.scale.yml" "$src/deploy/Dockerfile" "$tmp/deploy/"
cp "$src/deploy/livetap.env.example" "$tmp/deploy/livetap.env"
cd "$tmp"
# Nothing from the caller's environment may change what the file resolves to.
unset COMPOSE_FILE COMPOSE_PROFILES COMPOSE_PROJECT_NAME DOCKER_HOST 2>/dev/null || true

dc() { docker-compose --project-name livetap-test "$@"; }

if dc -f deploy/docker-compose.yml config >config.yml 2>config.err; then
	pass "docker-compose config accepts deploy/docker-compose.yml ($(docker-compose version --short 2>/dev/null || echo '?'))"
else
	fail "docker-compose config: $(cat config.err)"
	exit 1
fi
dc -f deploy/docker-compose.yml --profile demo config >demo.yml 2>demo.err && pass "... and with --profile demo" || fail "--profile demo: $(cat demo.err)"
dc -f deploy/docker-compose.yml -f deploy/docker-compose.scale.yml config >scale.yml 2>scale.err \
	&& pass "... and with deploy/docker-compose.scale.yml layered on" || fail "scale override: $(cat scale.err)"

# The resolved files are YAML; python3 (always there: meson needs it) reads
# them with the yaml module docker-compose itself depends on.
check() { # FILE PYTHON-SCRIPT: prints problems one per line, nothing when fine
	python3 - "$1" <<PY
import re, sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
svcs = d.get("services", {})
problems = []
$2
print("\n".join(problems))
PY
}

out=$(check config.yml '
want = {"redis", "postgres", "processor", "persister", "api", "fetcher"}
missing = want - set(svcs)
if missing: problems.append("missing services: %s" % sorted(missing))
for name, s in sorted(svcs.items()):
    hc = s.get("healthcheck") or {}
    if not hc.get("test") or hc.get("disable"): problems.append("%s: no healthcheck" % name)
    if s.get("restart") not in ("always", "unless-stopped", "on-failure"): problems.append("%s: restart policy %r" % (name, s.get("restart")))
    if name.startswith("emu") and "demo" not in (s.get("profiles") or []): problems.append("%s: emulator outside the demo profile" % name)
cmd = " ".join(svcs.get("redis", {}).get("command") or [])
if "--appendonly yes" not in cmd: problems.append("redis: AOF not on (command: %s)" % cmd)
if not any(v.endswith(":/var/lib/postgresql/data") or ":/var/lib/postgresql/data:" in v for v in svcs.get("postgres", {}).get("volumes") or []):
    problems.append("postgres: no volume for its data")
if not any(v.startswith("redis-data:") or ":/data" in v for v in svcs.get("redis", {}).get("volumes") or []):
    problems.append("redis: no volume for its AOF")
env = svcs.get("fetcher", {}).get("environment") or {}
if "--supervise" not in (svcs.get("fetcher", {}).get("command") or []): problems.append("fetcher: not the supervisor")
for k in ("LIVETAP_FETCHER_PROCESSORS", "LIVETAP_FETCHER_PERSISTERS"):
    if not str(env.get(k, "")).startswith("tcp://"): problems.append("fetcher: %s is %r, want tcp://" % (k, env.get(k)))
for name, k in (("processor", "LIVETAP_PROCESSOR_LISTEN"), ("persister", "LIVETAP_PERSISTER_LISTEN")):
    if not str((svcs.get(name, {}).get("environment") or {}).get(k, "")).startswith("tcp://"): problems.append("%s: %s not tcp://" % (name, k))
')
[ -z "$out" ] && pass "services present; each has a healthcheck and a restart policy; AOF, volumes, tcp:// endpoints" || fail "$out"

out=$(check demo.yml '
emus = [n for n in svcs if n.startswith("emu")]
if not emus: problems.append("--profile demo starts no emulator")
')
[ -z "$out" ] && pass "the demo profile adds the emulator" || fail "$out"

out=$(check scale.yml '
env = svcs.get("fetcher", {}).get("environment") or {}
for k in ("LIVETAP_FETCHER_PROCESSORS", "LIVETAP_FETCHER_PERSISTERS"):
    if len(str(env.get(k, "")).split(",")) < 2: problems.append("scale: fetcher %s has one endpoint" % k)
for name, s in sorted(svcs.items()):
    if not (s.get("healthcheck") or {}).get("test") or not s.get("restart"): problems.append("scale: %s lacks healthcheck or restart" % name)
')
[ -z "$out" ] && pass "the scale override: fetchers dial two processors and two persisters" || fail "$out"

# No secret inline: in the committed files (not the resolved ones, which
# carry the env file's values), no password/secret/token/key/cookie variable
# is given a value, and no DSN or URL carries a password.
inline=$(grep -nEi '(PASSWORD|SECRET|TOKEN|_KEYS?|COOKIE)[A-Z_]*[[:space:]]*[:=][[:space:]]*[^[:space:]#]' \
	"$src/deploy/docker-compose.yml" "$src/deploy/docker-compose.scale.yml" || true)
inline+=$(grep -nEi 'password=|redis://:[^@]+@|postgres(ql)?://[^:/@]+:[^@]+@' \
	"$src/deploy/docker-compose.yml" "$src/deploy/docker-compose.scale.yml" || true)
[ -z "$inline" ] && pass "no secret written inline in the compose files" || fail "secrets inline: $inline"
# The services take env_file from a YAML anchor; the resolved file has
# inlined it, so every service but Redis must show the env file's PGPASSWORD
# (or, for PostgreSQL, POSTGRES_PASSWORD).
out=$(check config.yml '
for name, s in sorted(svcs.items()):
    if name == "redis": continue
    env = s.get("environment") or {}
    if "PGPASSWORD" not in env and "POSTGRES_PASSWORD" not in env: problems.append("%s: does not read the env file" % name)
')
[ -z "$out" ] && pass "every service but Redis reads deploy/livetap.env" || fail "$out"

for v in POSTGRES_PASSWORD PGPASSWORD LIVETAP_ADMIN_PASSWORD LIVETAP_API_KEYS; do
	grep -q "^$v=" "$src/deploy/livetap.env.example" || fail "deploy/livetap.env.example does not set $v"
done
pass "deploy/livetap.env.example names the secrets"

if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	if git -C "$src" check-ignore -q deploy/livetap.env; then
		pass "deploy/livetap.env is git-ignored"
	else
		fail "deploy/livetap.env is not in .gitignore"
	fi
	if git -C "$src" ls-files --error-unmatch deploy/livetap.env >/dev/null 2>&1; then
		fail "deploy/livetap.env is committed"
	fi
fi

[ "$failures" = 0 ] || { echo "$failures check(s) failed"; exit 1; }
echo "all checks passed"
