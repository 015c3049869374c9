#!/usr/bin/env bash
# Debian's tmux on revent's libevent_core (LD_LIBRARY_PATH=LIBS): a server on a fresh socket, a
# detached session, `echo revent-ok` typed into its shell with send-keys, the pane read back with
# capture-pane, then kill-server. tmux reads `bev->input`/`bev->output` straight from
# `struct bufferevent` and drives its client/server protocol and the pane through bufferevents.
#   tmux.sh LIBS [BINDIR]
set -euo pipefail
libs=$(cd "$1" && pwd)
command -v tmux >/dev/null || { echo "tmux.sh: needs tmux (apt-get install tmux)" >&2; exit 2; }
tmux_bin=$(command -v tmux)

# tmux is linked with BIND_NOW: it starts only if the library has every function it imports. Until
# the evbuffer functions are in revent's library, say so and skip rather than fail obscurely.
missing=$(comm -23 \
    <(nm -D --undefined-only "$tmux_bin" | awk '{print $2}' \
        | grep -E '^(event|evbuffer|bufferevent|evutil|evconnlistener)_' | sort -u) \
    <(nm -D --defined-only "$libs/libevent_core-2.1.so.7" | awk '{print $3}' | sort -u))
if [ -n "$missing" ]; then
    echo "tmux.sh: SKIPPED: revent's libevent_core-2.1.so.7 lacks what tmux imports:" $missing
    exit 0
fi

dir=$(mktemp -d)
sock=$dir/socket
t() { LD_LIBRARY_PATH=$libs TERM=xterm-256color timeout 20 "$tmux_bin" -S "$sock" -f /dev/null "$@"; }
cleanup() {
    t kill-server 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

t new-session -d -s revent -x 100 -y 30
pid=$(t display-message -p -t revent '#{pid}')
# The server (forked by the first client) must be running on revent's library, not Debian's.
grep -q "$libs/libevent_core-2.1.so.7" "/proc/$pid/maps" || {
    echo "FAIL: the tmux server (pid $pid) did not load $libs/libevent_core-2.1.so.7"
    exit 1
}

t send-keys -t revent 'echo revent-ok' Enter
ok=
for _ in $(seq 1 100); do
    if grep -qx 'revent-ok' <<<"$(t capture-pane -p -t revent)"; then
        ok=1
        break
    fi
    sleep 0.1
done
[ -n "$ok" ] || {
    echo "FAIL: capture-pane never showed a line 'revent-ok'; the pane holds:"
    t capture-pane -p -t revent
    exit 1
}

t kill-server
for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
    echo "FAIL: the tmux server (pid $pid) is still running after kill-server"
    exit 1
fi
echo "tmux: new-session, send-keys, capture-pane and kill-server on revent ok"
