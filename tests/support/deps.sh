#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# deps.sh: make sure the Debian 12 packages livetap needs are installed.
#
#   tests/support/deps.sh          # install what is missing (as root), or say how
#   tests/support/deps.sh --list   # print the package list, one per line
#
# Shared by tests/run and deploy/up. It asks dpkg which packages are missing;
# if none are, it does nothing. As root it installs the missing ones with
# apt-get (no recommends: none of the list needs them). Not as root, it prints
# the exact command to run and exits 1. Package services that start on install
# (redis-server, postgresql, prometheus) do not matter: livetap starts its own
# servers on other ports and never touches the system ones.
set -euo pipefail

packages=(
	# the build
	build-essential clang meson ninja-build pkg-config python3
	# clang's sanitizer and libFuzzer runtimes (the asan/fuzz build)
	libclang-rt-14-dev
	# the design card
	libhiredis-dev libpq-dev libwebsockets-dev libnng-dev check
	# formats and codecs: normalized JSON, platform frames, Douyin protobuf
	libcjson-dev zlib1g-dev libbrotli-dev libprotobuf-c-dev protobuf-c-compiler
	# Chinese word segmentation for hot words
	libfriso-dev friso-dict
	# API auth (password hashing, JWT HMAC) and TLS to the platforms
	libsodium-dev libssl-dev
	# real servers for integration tests and the demo
	redis-server postgresql
	# promtool checks our /metrics text in tests
	prometheus
	# deploy/docker-compose.yml, load tests, the dashboard's headless test
	docker-compose wrk chromium
	# tools the test scripts call that a minimal Debian lacks (curl; pgrep
	# and ps from procps; git for the checks on ignored files; openssl makes
	# the test CA and certificate of the TLS test)
	curl procps git openssl
)

if [ "${1:-}" = --list ]; then
	printf '%s\n' "${packages[@]}"
	exit 0
fi

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = installed ] || missing+=("$p")
done

[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages: ${missing[*]}" >&2
	echo "deps: run as root:" >&2
	echo "  $cmd" >&2
	exit 1
fi

echo "deps: installing ${missing[*]}" >&2
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
