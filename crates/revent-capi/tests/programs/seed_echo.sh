#!/usr/bin/env bash
# The seed's echo server (echo_server.c here is ../shared/seed/echo_server.c, copied unchanged; when
# the shared folder is there, this checks that they still match), compiled against the system's
# headers and linked with revent's libevent: a client sends lines and gets "reply" to each, and the
# program prints what it received. It listens on the fixed port 9999, so it runs in a network namespace
# of its own (unshare -n; needs root), where that port is free whatever the host runs.
#   seed_echo.sh LIBS BINDIR
set -euo pipefail
libs=$1
bin=$2
here=$(cd "$(dirname "$0")" && pwd)
seed=$here/echo_server.c
shared=$(cd "$here/../../../../.." && pwd)/shared/seed/echo_server.c
if [ -f "$shared" ] && ! cmp -s "$seed" "$shared"; then
    echo "seed_echo.sh: $seed differs from $shared" >&2
    exit 1
fi
"${CC:-cc}" -O2 -o "$bin/seed_echo" "$seed" -L"$libs" -levent
out=$bin/seed_echo.out
LD_LIBRARY_PATH=$libs unshare -n bash -c '
    set -e
    ip link set lo up
    "$1" >"$2" 2>&1 &
    pid=$!
    trap "kill $pid 2>/dev/null; wait $pid 2>/dev/null || true" EXIT
    python3 -c "
import socket, time
for _ in range(200):
    try:
        s = socket.create_connection((\"127.0.0.1\", 9999), timeout=5)
        break
    except OSError:
        time.sleep(0.05)
for line in [b\"hello\n\", b\"world\n\"]:
    s.sendall(line)
    got = s.recv(100)
    assert got == b\"reply\", got
s.close()
time.sleep(0.2)
"' seed "$bin/seed_echo" "$out"
grep -q 'buf=\[hello' "$out" && grep -q 'buf=\[world' "$out" || {
    echo "FAIL: the seed's server did not print what it received:"
    cat "$out"
    exit 1
}
echo "seed echo_server.c: two lines answered with reply, and printed"
