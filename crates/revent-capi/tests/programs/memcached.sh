#!/usr/bin/env bash
# Debian's memcached on revent's libevent (LD_LIBRARY_PATH=LIBS): set/get/delete/incr through the text
# protocol, 200 connections at once, libmemcached's clients (memccp/memccat/memcrm, and memccapable,
# its protocol conformance test), then memcaslap with verification (libmemcached-tools).
#   memcached.sh LIBS [BINDIR]
set -euo pipefail
libs=$1
command -v memcached >/dev/null || { echo "memcached.sh: needs memcached (apt-get install memcached)" >&2; exit 2; }
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
LD_LIBRARY_PATH=$libs memcached -u root -l 127.0.0.1 -p "$port" -U 0 -t 2 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
python3 - "$port" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
for _ in range(200):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        break
    except OSError:
        time.sleep(0.05)

def cmd(conn, c, want):
    conn.sendall(c)
    got = b""
    while len(got) < len(want):
        chunk = conn.recv(1000)
        assert chunk, "connection closed"
        got += chunk
    assert got == want, (c, got, want)

cmd(s, b"set foo 0 0 3\r\nbar\r\n", b"STORED\r\n")
cmd(s, b"get foo\r\n", b"VALUE foo 0 3\r\nbar\r\nEND\r\n")
cmd(s, b"set n 0 0 1\r\n5\r\n", b"STORED\r\n")
cmd(s, b"incr n 3\r\n", b"8\r\n")
cmd(s, b"delete foo\r\n", b"DELETED\r\n")
cmd(s, b"get foo\r\n", b"END\r\n")
conns = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(200)]
for i, c in enumerate(conns):
    v = b"%d" % i
    cmd(c, b"set k%d 0 0 %d\r\n%s\r\n" % (i, len(v), v), b"STORED\r\n")
for i, c in enumerate(conns):
    v = b"%d" % i
    cmd(c, b"get k%d\r\n" % i, b"VALUE k%d 0 %d\r\n%s\r\nEND\r\n" % (i, len(v), v))
print("memcached: text protocol and 200 connections ok")
PY
# libmemcached's own clients (libmemcached-tools): a value stored, read back byte for byte, checked,
# deleted; then memccapable, its protocol conformance test (text and binary protocols).
if command -v memccp >/dev/null; then
    dir=$(mktemp -d)
    trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
    head -c 100000 /dev/urandom >"$dir/blob"
    (cd "$dir" && memccp --servers="127.0.0.1:$port" blob)
    memccat --servers="127.0.0.1:$port" --file="$dir/back" blob
    cmp "$dir/blob" "$dir/back" || { echo "FAIL: memccat returned other bytes than memccp stored"; exit 1; }
    memcexist --servers="127.0.0.1:$port" blob
    memcrm --servers="127.0.0.1:$port" blob
    if memcexist --servers="127.0.0.1:$port" blob 2>/dev/null; then
        echo "FAIL: blob still exists after memcrm"; exit 1
    fi
    out=$(timeout 60 memccapable -h 127.0.0.1 -p "$port" 2>&1) || { echo "FAIL: memccapable"; echo "$out"; exit 1; }
    grep -q '^All tests passed' <<<"$out" || { echo "FAIL: memccapable"; echo "$out"; exit 1; }
    echo "memcached: memccp/memccat/memcexist/memcrm ok; memccapable: $(echo "$out" | grep -c '\[pass\]') tests pass"
elif [ "${CI:-}" = true ]; then
    echo "memcached.sh: needs memccp (apt-get install libmemcached-tools)" >&2
    exit 2
fi
if command -v memcaslap >/dev/null; then
    out=$(timeout 30 memcaslap -s "127.0.0.1:$port" -T 2 -c 32 -t 3s -v 0.1 2>&1)
    echo "$out" | grep -E '^Run time' || true
    grep -q 'verify_failed: 0' <<<"$out" || { echo "FAIL: memcaslap verification"; echo "$out"; exit 1; }
    echo "memcached: memcaslap with verification, no failures"
elif [ "${CI:-}" = true ]; then
    echo "memcached.sh: needs memcaslap (apt-get install libmemcached-tools)" >&2
    exit 2
fi
