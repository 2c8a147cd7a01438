#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_fetcher_tls: the fetcher over TLS (https:// and wss://), as it talks to
# the real platforms, against livetap-emu serving TLS on localhost.
#
#   bash tests/e2e/test_fetcher_tls.sh BUILDDIR
#
# A private CA and a certificate for 127.0.0.1 are made with the openssl
# command. For each platform (Bilibili, Douyin, KOOK, whose gateway hands out
# a wss:// URL) the emulator serves HTTPS and WSS on one port, and the
# fetcher, trusting the private CA (SSL_CERT_FILE, as OpenSSL's default
# verify path), must bootstrap, connect and print exactly what the emulator
# sent. Then the negative case: a fetcher that does not trust the CA must
# refuse the server (certificate verification failed, in its log), print
# nothing and keep retrying with backoff rather than fall back to plain text.
set -euo pipefail

build=${1:?usage: test_fetcher_tls.sh BUILDDIR}
build=$(cd "$build" && pwd)
src=${LT_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
emu_bin=$build/tests/emu/livetap-emu
fetcher_bin=$build/fetcher/livetap-fetcher
[ -x "$emu_bin" ] && [ -x "$fetcher_bin" ] || { echo "FAIL: programs not built in $build"; exit 1; }
command -v openssl >/dev/null || { echo "FAIL: the openssl command is missing (tests/support/deps.sh installs it)"; exit 1; }

. "$(dirname "$0")/lib/fetcher.sh"
lt_e2e_setup fetcher-tls

# ---- a private CA and a server certificate for 127.0.0.1 ----
(
	cd "$tmp"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=livetap test CA"
	openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=127.0.0.1"
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >srv.ext
	openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile srv.ext
) >"$tmp/openssl.log" 2>&1 || { cat "$tmp/openssl.log"; echo "FAIL: could not make the test certificates"; exit 1; }

# start_emu PLATFORM: sets emu_pid, emu_port; what it sends goes to $tmp/PLATFORM.sent
start_emu() {
	lt_emu_start "$1" "$1" --generate --rate 40 --seed 7 --tls-cert "$tmp/srv.pem" --tls-key "$tmp/srv.key"
}

# run_fetcher PLATFORM ROOM NAME SECONDS [CA]: the fetcher for SECONDS, then
# TERM; with EMU_FIRST=1 the emulator is stopped first (it closes cleanly, so
# the fetcher reads every frame the emulator logged as sent)
run_fetcher() {
	local p=$1 room=$2 name=$3 secs=$4 ca=${5:-}
	env ${ca:+SSL_CERT_FILE=$ca} \
		LIVETAP_BILIBILI_API_BASE=https://127.0.0.1:$emu_port \
		LIVETAP_BILIBILI_WS_URL=wss://127.0.0.1:$emu_port/sub \
		LIVETAP_DOUYIN_WEB_BASE=https://127.0.0.1:$emu_port \
		LIVETAP_DOUYIN_WS_URL=wss://127.0.0.1:$emu_port/webcast/im/push/v2/ \
		LIVETAP_KOOK_API_BASE=https://127.0.0.1:$emu_port/api/v3 \
		LIVETAP_KOOK_TOKEN=emu-kook-token \
		LIVETAP_STATE_DIR="$tmp/state-$name" \
		LIVETAP_FETCHER_BACKOFF_BASE_MS=100 LIVETAP_FETCHER_BACKOFF_MAX_MS=500 \
		LIVETAP_FETCHER_MAX_FAILURES=1000 \
		"$fetcher_bin" --platform "$p" --room "$room" --stdout >"$tmp/$name.out" 2>"$tmp/$name.err" &
	local f=$!
	pids+=("$f")
	sleep "$secs"
	if [ "${EMU_FIRST:-0}" = 1 ]; then
		kill -TERM "$emu_pid" 2>/dev/null || true
		wait "$emu_pid" || true
		sleep 0.5 # the fetcher reads up to the close
	fi
	kill -TERM "$f" 2>/dev/null || true
	wait "$f" || true
}

# compare PLATFORM NAME: every message the fetcher printed was sent, and all
# that was sent to the room reached it (the emulator is stopped first, so
# the sent-log holds only frames that were written to the socket)
compare() {
	python3 - "$tmp/$1.sent" "$tmp/$2.out" <<'PY'
import json, sys
sent = {}
for l in open(sys.argv[1]):
    p = l.split()
    if len(p) == 3 and p[2] != "-":
        sent[p[2]] = p[1]
got = [json.loads(l) for l in open(sys.argv[2])]
ids = {o["msg_id"] for o in got if o.get("msg_id")}
missing = [i for i in sent if i not in ids]
if len(got) < 20 or missing:
    print("sent %d with ids, printed %d, missing %d" % (len(sent), len(got), len(missing)))
    sys.exit(1)
print("%d messages, all %d sent ids received" % (len(got), len(sent)))
PY
}

for p in bilibili douyin kook; do
	case $p in bilibili) room=5050 ;; douyin) room=646454278948 ;; kook) room=3344556677 ;; esac
	start_emu "$p"
	EMU_FIRST=1 run_fetcher "$p" "$room" "$p-ok" 3 "$tmp/ca.pem"
	if res=$(compare "$p" "$p-ok"); then
		pass "$p over https:// and wss://: $res"
	else
		fail "$p over TLS: $res"
		tail -n 5 "$tmp/$p-ok.err"
	fi
done

# ---- a server the fetcher does not trust is refused ----
start_emu bilibili
run_fetcher bilibili 5050 untrusted 2
[ ! -s "$tmp/untrusted.out" ] && pass "untrusted certificate: nothing printed" ||
	fail "untrusted certificate: $(wc -l <"$tmp/untrusted.out") messages printed"
grep -q '"level":"warn".*TLS: server certificate refused (unable to get local issuer certificate)' "$tmp/untrusted.err" &&
	pass "untrusted certificate: the log says why" || fail "untrusted certificate: no reason in the log"
n=$(grep -c 'attempt [0-9]* failed' "$tmp/untrusted.err" || true)
[ "$n" -ge 2 ] && pass "untrusted certificate: $n attempts, with backoff" || fail "untrusted certificate: $n attempts"
grep -q '"connections_total":0' <(curl -fsS --cacert "$tmp/ca.pem" "https://127.0.0.1:$emu_port/emu/stats") &&
	pass "untrusted certificate: no WebSocket reached the server" || fail "a WebSocket was opened to an untrusted server"

echo "logs in $tmp"
[ "$failures" = 0 ] || { echo "$failures check(s) failed"; exit 1; }
rm -rf "$tmp"
echo "all checks passed"
