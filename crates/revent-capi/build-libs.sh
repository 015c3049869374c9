#!/usr/bin/env bash
# Builds libevent 2.1's shared libraries from revent and lays them out in one directory:
#
#   crates/revent-capi/build-libs.sh [OUTDIR]          (default: target/revent-libs)
#
# OUTDIR then holds libevent-2.1.so.7, libevent_core-2.1.so.7, libevent_extra-2.1.so.7 and
# libevent_pthreads-2.1.so.7 (each a link to its .so.7.0.1, with that SONAME) and the development links
# libevent.so, libevent_core.so, libevent_extra.so, libevent_pthreads.so. Then
#   LD_LIBRARY_PATH=OUTDIR some-program          runs a program built for libevent 2.1 on revent, and
#   cc prog.c -LOUTDIR -levent                    links one compiled against /usr/include/event2.
#
# How: `cargo build --profile capi -p revent-capi` gives a static archive of the Rust code; each library is
# linked from it with its own SONAME and a version script that exports exactly its libevent functions
# (nothing else of the Rust code is visible). libevent-2.1 and libevent_core-2.1 are separate copies, as
# libevent's are; libevent_extra-2.1 and libevent_pthreads-2.1 depend on libevent_core-2.1. Needs cc.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/target/revent-libs}
target=${CARGO_TARGET_DIR:-$root/target}
cc=${CC:-cc}
command -v "$cc" >/dev/null || { echo "build-libs.sh: no C compiler ($cc): apt-get install gcc" >&2; exit 2; }

cargo build --profile capi -q -p revent-capi --manifest-path "$root/Cargo.toml"
archive=$target/capi/librevent_capi.a
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# C shims for what Rust cannot define (variadic functions such as evbuffer_add_printf): every
# c/*.c but the pthreads library's own source, compiled into each library beside the archive.
shims=()
for src in "$here"/c/*.c; do
    [ -e "$src" ] || continue
    [ "$(basename "$src")" = evthread_pthreads.c ] && continue
    obj=$tmp/$(basename "$src" .c).o
    "$cc" -O2 -fPIC -Wall -Werror -c -o "$obj" "$src"
    shims+=("$obj")
done

# The libevent functions the archive and the shims define, by library.
nm --defined-only -g "$archive" ${shims[@]+"${shims[@]}"} 2>/dev/null | awk '$2 == "T" {print $3}' \
    | grep -E '^(event|evbuffer|bufferevent|evconnlistener|evutil|evthread|ev_token_bucket|libevent)_' \
    | sort -u >"$tmp/all"
grep -E '^(evhttp|evdns|evrpc|evtag)_' "$tmp/all" >"$tmp/extra" || true
grep -v -x -F -f "$tmp/extra" "$tmp/all" | grep -v -x 'evthread_use_pthreads' >"$tmp/core" || true
map() { { echo '{ global:'; sed 's/$/;/' "$1"; echo 'local: *; };'; } >"$2"; }
map "$tmp/core" "$tmp/core.map"
cat "$tmp/core" "$tmp/extra" >"$tmp/full"
map "$tmp/full" "$tmp/full.map"

# What Rust's standard library needs from the system.
native="-lpthread -ldl -lm -lrt -lutil -lgcc_s -lc"
link() { # link NAME VERSION-SCRIPT
    "$cc" -shared -o "$out/$1.0.1" -Wl,-soname,"$1" -Wl,--version-script="$2" \
        ${shims[@]+"${shims[@]}"} -Wl,--gc-sections -Wl,--whole-archive "$archive" \
        -Wl,--no-whole-archive $native
    ln -sf "$1.0.1" "$out/$1"
}
link libevent_core-2.1.so.7 "$tmp/core.map"
link libevent-2.1.so.7 "$tmp/full.map"

# libevent_extra (HTTP, DNS, RPC: their issues add them) and libevent_pthreads sit on libevent_core.
if [ -s "$tmp/extra" ]; then
    link libevent_extra-2.1.so.7 "$tmp/full.map"
else
    echo '{ local: *; };' >"$tmp/none.map"
    "$cc" -shared -o "$out/libevent_extra-2.1.so.7.0.1" -Wl,-soname,libevent_extra-2.1.so.7 \
        -Wl,--version-script="$tmp/none.map" -x c /dev/null -L"$out" -l:libevent_core-2.1.so.7
    ln -sf libevent_extra-2.1.so.7.0.1 "$out/libevent_extra-2.1.so.7"
fi
if [ -f "$here/c/evthread_pthreads.c" ]; then
    "$cc" -O2 -fPIC -shared -o "$out/libevent_pthreads-2.1.so.7.0.1" \
        -Wl,-soname,libevent_pthreads-2.1.so.7 "$here/c/evthread_pthreads.c" \
        -L"$out" -l:libevent_core-2.1.so.7 -lpthread
    ln -sf libevent_pthreads-2.1.so.7.0.1 "$out/libevent_pthreads-2.1.so.7"
fi
for l in libevent libevent_core libevent_extra libevent_pthreads; do
    [ -e "$out/$l-2.1.so.7" ] && ln -sf "$l-2.1.so.7" "$out/$l.so"
done
echo "$out: $(wc -l <"$tmp/core") functions in libevent_core-2.1.so.7, $(wc -l <"$tmp/full") in libevent-2.1.so.7"
