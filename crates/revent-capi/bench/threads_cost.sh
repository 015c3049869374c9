#!/usr/bin/env bash
# What thread support costs a single-threaded program (threads_cost.c), side by side:
#
#   crates/revent-capi/bench/threads_cost.sh [-r ROUNDS] [-n N] NAME=LIBDIR[:off] ...
#
# LIBDIR is a directory of libevent 2.1 libraries (build-libs.sh's output), or "system" for Debian's
# libevent. Each library runs threads_cost in its three modes (threads off; evthread_use_pthreads
# before the base; after it, libevent#1130's order), or only with threads off given ":off" (a build
# without thread support), ROUNDS times, interleaved (library by library,
# mode by mode, round after round) so that a change in the machine's load hits every variant alike.
# Prints the median and the spread (min-max) of each phase, in millions of operations per second.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rounds=7
n=2000000
while getopts r:n: o; do
    case $o in
    r) rounds=$OPTARG ;;
    n) n=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "usage: threads_cost.sh [-r ROUNDS] [-n N] NAME=LIBDIR ..." >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# With threads off the program is linked without libevent_pthreads (a build without thread support
# has none to load), the same binary for every library.
"${CC:-cc}" -O2 -Wall -Werror -DNO_PTHREADS -o "$tmp/threads_cost_off" "$here/threads_cost.c" -levent
"${CC:-cc}" -O2 -Wall -Werror -o "$tmp/threads_cost" "$here/threads_cost.c" -levent -levent_pthreads

all_modes=("off:" "before:-t" "after:-T")
modes_of() { # SPEC: the modes it runs
    if [[ $1 == *:off ]]; then modes=("off:"); else modes=("${all_modes[@]}"); fi
}
for ((r = 0; r < rounds; r++)); do
    for spec in "$@"; do
        name=${spec%%=*} dir=${spec#*=} dir=${dir%:off}
        modes_of "$spec"
        for m in "${modes[@]}"; do
            mname=${m%%:*} flag=${m#*:}
            prog=$tmp/threads_cost
            [ -z "$flag" ] && prog=$tmp/threads_cost_off
            if [ "$dir" = system ]; then
                line=$("$prog" -n "$n" $flag)
            else
                line=$(LD_LIBRARY_PATH=$dir "$prog" -n "$n" $flag)
            fi
            echo "$name $mname $line" >>"$tmp/results"
        done
    done
done

printf '%-10s %-7s %-22s %-22s %-22s\n' library threads 'add+del Mops/s' 'active Mops/s' 'chain Mops/s'
for spec in "$@"; do
    name=${spec%%=*}
    modes_of "$spec"
    for m in "${modes[@]}"; do
        mname=${m%%:*}
        cells=()
        for phase in add_del active chain; do
            vals=$(awk -v n="$name" -v m="$mname" -v p="$phase" '$1 == n && $2 == m {
                for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == p) print kv[2] } }' \
                "$tmp/results" | sort -g)
            cnt=$(wc -l <<<"$vals")
            med=$(sed -n "$(((cnt + 1) / 2))p" <<<"$vals")
            cells+=("$(printf '%6.2f (%s-%s)' "$med" "$(head -1 <<<"$vals")" "$(tail -1 <<<"$vals")")")
        done
        printf '%-10s %-7s %-22s %-22s %-22s\n' "$name" "$mname" "${cells[@]}"
    done
done
