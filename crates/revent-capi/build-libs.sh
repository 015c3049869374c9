#!/usr/bin/env bash
# Builds libevent 2.1's shared libraries from revent and lays them out in one directory:
#
#   crates/revent-capi/build-libs.sh [OUTDIR]          (default: target/revent-libs)
#
# OUTDIR then holds libevent-2.1.so.7, libevent_core-2.1.so.7, libevent_extra-2.1.so.7,
# libevent_pthreads-2.1.so.7 and libevent_openssl-2.1.so.7 (each a link to its .so.7.0.1, with that
# SONAME) and the development links libevent.so, libevent_core.so, libevent_extra.so,
# libevent_pthreads.so, libevent_openssl.so. Then
#   LD_LIBRARY_PATH=OUTDIR some-program          runs a program built for libevent 2.1 on revent, and
#   cc prog.c -LOUTDIR -levent                    links one compiled against /usr/include/event2.
#
# How: `cargo build --profile capi -p revent-capi` gives a static archive of the Rust code; each library is
# linked from it with its own SONAME and a version script that exports exactly its libevent functions
# (nothing else of the Rust code is visible). libevent-2.1 and libevent_core-2.1 are separate copies, as
# libevent's are; libevent_extra-2.1 and libevent_pthreads-2.1 depend on libevent_core-2.1. Needs cc.
#
# One copy of the code per process for core + extra: a program linked with -levent_core -levent_extra
# must not get two copies of revent (two sets of statics: log and thread callbacks, debug mode; an
# evdns_base of one copy on an event_base of the other). So libevent_core-2.1 holds all the code, and
# exports, besides core's functions, each extra function X under a private alias __revent_extra_X
# (--defsym); libevent_extra-2.1 is a small library, DT_NEEDED libevent_core-2.1, whose every export X
# is an assembly trampoline `jmp __revent_extra_X@PLT` (a tail jump: arguments, variadic ones too, and
# the return pass through untouched).
#
# libevent_openssl-2.1 (event2/bufferevent_ssl.h) is laid out the same way, with aliases
# __revent_openssl_X that libevent-2.1 exports too: a program linked with -levent -levent_openssl
# resolves them in libevent-2.1 (it comes first in the lookup order), so its TLS bufferevents live in
# the same copy as its event_base. Like libevent's, it lists libssl.so.3 and libcrypto.so.3 as needed
# (-l:libssl.so.3, so no development links are needed to build); the Rust code finds OpenSSL's
# functions at run time (see src/openssl.rs), so nothing else links OpenSSL.
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
    | grep -E '^(event|evbuffer|bufferevent|evconnlistener|evutil|evthread|ev_token_bucket|libevent|evdns|evhttp|evrpc|evtag)_' \
    | sort -u >"$tmp/all"
grep -E '^(evhttp|evdns|evrpc|evtag)_' "$tmp/all" >"$tmp/extra" || true
grep -E '^(bufferevent_openssl_.*|bufferevent_ssl_renegotiate|bufferevent_get_openssl_error)$' \
    "$tmp/all" >"$tmp/openssl" || true
cat "$tmp/extra" "$tmp/openssl" | grep -v -x -F -f - "$tmp/all" | grep -v -x 'evthread_use_pthreads' \
    >"$tmp/core" || true
map() { # an empty list exports nothing
    if [ -s "$1" ]; then { echo '{ global:'; sed 's/$/;/' "$1"; echo 'local: *; };'; } >"$2"
    else echo '{ local: *; };' >"$2"; fi
}
sed 's/^/__revent_extra_/' "$tmp/extra" >"$tmp/aliases"
sed 's/^/__revent_openssl_/' "$tmp/openssl" >"$tmp/openssl-aliases"
cat "$tmp/core" "$tmp/aliases" "$tmp/openssl-aliases" >"$tmp/core+aliases"
map "$tmp/core+aliases" "$tmp/core.map"
cat "$tmp/core" "$tmp/extra" >"$tmp/full"
cat "$tmp/full" "$tmp/openssl-aliases" >"$tmp/full+aliases"
map "$tmp/full+aliases" "$tmp/full.map"
defsyms=()
while read -r f; do defsyms+=("-Wl,--defsym=__revent_extra_$f=$f"); done <"$tmp/extra"
ossl_defsyms=()
while read -r f; do ossl_defsyms+=("-Wl,--defsym=__revent_openssl_$f=$f"); done <"$tmp/openssl"

# What Rust's standard library needs from the system.
native="-lpthread -ldl -lm -lrt -lutil -lgcc_s -lc"
link() { # link NAME VERSION-SCRIPT [LINKER-FLAGS...]
    local name=$1 script=$2
    shift 2
    "$cc" -shared -o "$out/$name.0.1" -Wl,-soname,"$name" -Wl,--version-script="$script" \
        ${shims[@]+"${shims[@]}"} -Wl,--gc-sections -Wl,--whole-archive "$archive" \
        -Wl,--no-whole-archive "$@" $native
    ln -sf "$name.0.1" "$out/$name"
}
link libevent_core-2.1.so.7 "$tmp/core.map" ${defsyms[@]+"${defsyms[@]}"} \
    ${ossl_defsyms[@]+"${ossl_defsyms[@]}"}
link libevent-2.1.so.7 "$tmp/full.map" ${ossl_defsyms[@]+"${ossl_defsyms[@]}"}

# libevent_extra (HTTP, DNS, RPC), libevent_openssl and libevent_pthreads sit on libevent_core:
# extra's and openssl's exports are trampolines into core's private aliases (see the top of this
# file).
trampolines() { # trampolines PREFIX LIST OUT.s
    {
        echo '	.text'
        while read -r f; do
            printf '\t.globl %s\n\t.type %s, @function\n%s:\n\tjmp %s%s@PLT\n\t.size %s, .-%s\n' \
                "$f" "$f" "$f" "$1" "$f" "$f" "$f"
        done <"$2"
        echo '	.section .note.GNU-stack,"",@progbits'
    } >"$3"
}
trampolines __revent_extra_ "$tmp/extra" "$tmp/extra.s"
map "$tmp/extra" "$tmp/extra.map"
"$cc" -shared -o "$out/libevent_extra-2.1.so.7.0.1" -Wl,-soname,libevent_extra-2.1.so.7 \
    -Wl,--version-script="$tmp/extra.map" "$tmp/extra.s" -L"$out" -Wl,--no-as-needed -l:libevent_core-2.1.so.7
ln -sf libevent_extra-2.1.so.7.0.1 "$out/libevent_extra-2.1.so.7"
trampolines __revent_openssl_ "$tmp/openssl" "$tmp/openssl.s"
map "$tmp/openssl" "$tmp/openssl.map"
# libssl 3 and libcrypto 3 as needed libraries when the system has them (Debian's libssl3, present
# wherever openssl is); without them the library still works in a program that loads OpenSSL itself.
ssl_libs=()
if [ "$("$cc" -print-file-name=libssl.so.3)" != libssl.so.3 ] \
    && [ "$("$cc" -print-file-name=libcrypto.so.3)" != libcrypto.so.3 ]; then
    ssl_libs=(-l:libssl.so.3 -l:libcrypto.so.3)
else
    echo "build-libs.sh: no libssl.so.3: libevent_openssl-2.1.so.7 does not list it as needed" >&2
fi
"$cc" -shared -o "$out/libevent_openssl-2.1.so.7.0.1" -Wl,-soname,libevent_openssl-2.1.so.7 \
    -Wl,--version-script="$tmp/openssl.map" "$tmp/openssl.s" -L"$out" -Wl,--no-as-needed \
    -l:libevent_core-2.1.so.7 ${ssl_libs[@]+"${ssl_libs[@]}"}
ln -sf libevent_openssl-2.1.so.7.0.1 "$out/libevent_openssl-2.1.so.7"
if [ -f "$here/c/evthread_pthreads.c" ]; then
    "$cc" -O2 -fPIC -shared -o "$out/libevent_pthreads-2.1.so.7.0.1" \
        -Wl,-soname,libevent_pthreads-2.1.so.7 "$here/c/evthread_pthreads.c" \
        -L"$out" -l:libevent_core-2.1.so.7 -lpthread
    ln -sf libevent_pthreads-2.1.so.7.0.1 "$out/libevent_pthreads-2.1.so.7"
fi
for l in libevent libevent_core libevent_extra libevent_pthreads libevent_openssl; do
    [ -e "$out/$l-2.1.so.7" ] && ln -sf "$l-2.1.so.7" "$out/$l.so"
done
echo "$out: $(wc -l <"$tmp/core") functions in libevent_core-2.1.so.7, $(wc -l <"$tmp/extra") in libevent_extra-2.1.so.7, $(wc -l <"$tmp/openssl") in libevent_openssl-2.1.so.7, $(wc -l <"$tmp/full") in libevent-2.1.so.7"
