#!/usr/bin/env bash
# memcached's own test suite (t/*.t of Debian's source package for the installed memcached) run twice:
# against Debian's libevent, and on revent (LD_LIBRARY_PATH=LIBS). Passes when every test file has the
# same outcome (pass, skip or fail) in both runs; prints the counts and the files that differ.
#   memcached_suite.sh [LIBS [BINDIR]]        (without LIBS: builds target/revent-libs)
#
# - The source is fetched once (apt-get source through a private apt configuration with deb-src twins of
#   the system's sources: the system's apt setup is left alone) and kept unpacked in target/memcached-src.
# - The suite runs ./memcached-debug (a debug build) and ./timedrun from its working directory: timedrun is
#   built from the source; memcached-debug is a wrapper that execs /usr/bin/memcached without the
#   debug-only `-o relaxed_privileges`. So t/expirations.t fails in both runs (`debugtime` is debug-only).
# - Each run has network, PID and mount namespaces of its own (needs root): servers see only their own
#   loopback (t/issue_67.t listens on every address and the default port), /tmp is a directory of its own
#   (unix sockets, extstore files), and whatever a test leaves running dies with the namespace.
# - The two runs go side by side, each running a few test files at once: the suite mostly sleeps.
# - The wrapper records which libevent-2.1.so.7 the loader resolves for every memcached it starts, and
#   each run first checks /proc/PID/maps of a server started the tests' way.
# Logs: target/memcached-suite/{libevent,revent}/logs/*.log (each test file's output).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
libs=${1:-}
jobs=${MEMCACHED_SUITE_JOBS:-4} # test files at once in each run
limit=300                       # seconds for one test file (the slowest takes about 25)

need() { echo "memcached_suite.sh: $*" >&2; exit 2; }
command -v memcached >/dev/null || need "needs memcached (apt-get install memcached)"
command -v cc >/dev/null || need "needs a C compiler (apt-get install gcc)"
command -v dpkg-source >/dev/null || need "needs dpkg-source (apt-get install dpkg-dev)"
perl -MTAP::Harness -e1 2>/dev/null || need "needs perl with TAP::Harness (apt-get install perl)"
command -v ip >/dev/null || need "needs ip (apt-get install iproute2)"
[ "$(id -u)" = 0 ] || need "needs root (namespaces for the servers: unshare -n -p -m)"
if [ -z "$libs" ]; then
    libs=$root/target/revent-libs
    "$root/crates/revent-capi/build-libs.sh" "$libs" >/dev/null
fi
libs=$(cd "$libs" && pwd)
[ -e "$libs/libevent-2.1.so.7" ] || need "no libevent-2.1.so.7 in $libs (crates/revent-capi/build-libs.sh)"
syslib=$(LD_TRACE_LOADED_OBJECTS=1 /usr/bin/memcached | awk '$1 == "libevent-2.1.so.7" {print $3}')
[ -n "$syslib" ] || need "/usr/bin/memcached does not load libevent-2.1.so.7 (apt-get install memcached)"
syslib=$(readlink -f "$syslib")

# 1. The source for the installed version, unpacked once.
pkg=$(dpkg-query -W -f='${source:Package}' memcached)
ver=$(dpkg-query -W -f='${source:Version}' memcached)
cache=$root/target/memcached-src
src=$cache/$pkg-$ver
if [ ! -f "$src/.complete" ]; then
    echo "== fetching the source of $pkg $ver (once; kept in $src)"
    apt=$cache/apt
    rm -rf "$apt" "$src" "$src.tmp"
    mkdir -p "$apt/parts" "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/download"
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && sed -E 's/^Types:.*/Types: deb-src/' "$f" >"$apt/parts/$(basename "$f")"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] && sed -nE 's/^deb[[:space:]]/deb-src /p' "$f" >"$apt/parts/$(basename "$f" .list)-src.list"
    done
    # Lists, caches and lock in target/ too; downloads as root (apt's _apt user may not reach target/).
    opts=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$apt/parts"
        -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache" -o APT::Sandbox::User=root)
    # A source without deb-src only makes update complain; `apt-get source` says whether ours came.
    apt-get "${opts[@]}" -qq update >"$apt/update.log" 2>&1 || true
    if ! (cd "$apt/download" && apt-get "${opts[@]}" -qq source --download-only "$pkg=$ver") \
        >"$apt/source.log" 2>&1; then
        cat "$apt/update.log" "$apt/source.log" >&2
        need "could not download the source of $pkg $ver (apt-get source through deb-src twins of" \
            "/etc/apt/sources.list*; needs the network and that version still in the archive)"
    fi
    # (No maintainers' keyring here: dpkg-source cannot check the .dsc's signature, apt checked its hashes.)
    dpkg-source -q -x "$apt/download"/*.dsc "$src.tmp" >"$apt/unpack.log" 2>&1 || {
        cat "$apt/unpack.log" >&2
        need "dpkg-source could not unpack $apt/download/*.dsc"
    }
    mv "$src.tmp" "$src"
    cc -O2 -o "$src/timedrun" "$src/timedrun.c"
    touch "$src/.complete"
fi

# 2. Both runs side by side, each in a directory of its own (the suite's working directory).
work=$root/target/memcached-suite
pids=()
cleanup() {
    # unshare ignores SIGTERM while it waits; SIGKILL ends it, --kill-child then kills the namespace's
    # init, and with it everything in the namespace.
    for p in ${pids[@]+"${pids[@]}"}; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The harness: runs the files JOBS at a time, each under `timeout`, and writes a line per file to
# results ("FILE OUTCOME SECONDS DETAIL") and each file's output to logs/FILE.log.
harness=$(
    cat <<'PERL'
use strict; use warnings;
use TAP::Harness; use Time::HiRes qw(time);
my ($jobs, $limit, $out, @files) = @ARGV;
my (%log, %t0);
open my $res, '>', "$out/results" or die "$out/results: $!";
my $h = TAP::Harness->new({
    jobs => $jobs, merge => 1, verbosity => -3,
    exec => sub { ['timeout', '-k', '10', $limit, $^X, $_[1]] },
    callbacks => {
        made_parser => sub {
            my ($parser, $job) = @_;
            my $f = $job->[0];
            $t0{$f} = time;
            $parser->callback(ALL => sub { push @{$log{$f}}, $_[0]->as_string });
        },
        after_test => sub {
            my ($job, $p) = @_;
            my $f = $job->[0];
            my ($outcome, $detail) = ('pass', '');
            if (defined $p->skip_all) {
                ($outcome, $detail) = ('skip', $p->skip_all);
            } elsif ($p->has_problems) {
                $outcome = 'fail';
                my @d;
                push @d, 'failed tests ' . join(',', $p->failed) if $p->failed;
                push @d, 'exit ' . $p->exit . ($p->exit == 124 ? ' (timed out)' : '') if $p->exit;
                push @d, 'signal ' . ($p->wait & 127) if $p->wait & 127;
                push @d, $p->parse_errors if $p->parse_errors;
                $detail = join('; ', @d);
            }
            (my $name = $f) =~ s{.*/}{};
            open my $l, '>', "$out/logs/$name.log" or die;
            print $l "$_\n" for @{$log{$f} || []};
            printf $res "%s %s %.1f %s\n", $f, $outcome, time - $t0{$f}, $detail;
            $res->flush;
        },
    },
});
$h->runtests(@files);
PERL
)

# Inside the namespaces: loopback up, /tmp of our own, check which libevent a server really maps, then
# the suite. Arguments: RUN-DIRECTORY JOBS LIMIT [FILES...] (default every t/*.t); LD_LIBRARY_PATH as
# the run wants.
inner=$(
    cat <<'SH'
set -euo pipefail
dir=$1 jobs=$2 limit=$3
ip link set lo up
mount --bind "$dir/tmp" /tmp
cd "$dir"
./memcached-debug -u root -s /tmp/check.sock -o relaxed_privileges >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do [ -S /tmp/check.sock ] && break; sleep 0.05; done
awk '$6 ~ /libevent-2\.1\.so\.7/ {print $6}' "/proc/$pid/maps" | sort -u >maps
kill "$pid"; wait "$pid" 2>/dev/null || true
rm -f /tmp/check.sock
shift 3
[ $# -gt 0 ] || set -- t/*.t
exec perl -e "$HARNESS" "$jobs" "$limit" "$dir" "$@"
SH
)

# Starts RUN's suite in its namespaces, in the background (pid in `pids`): JOBS files at a time,
# FILES (default all).
launch() {
    local run=$1 jobs=$2
    shift 2
    local dir=$work/$run env=(env -u LD_LIBRARY_PATH)
    [ $run = revent ] && env=(env LD_LIBRARY_PATH="$libs")
    HARNESS=$harness "${env[@]}" unshare --net --pid --mount --fork --mount-proc --kill-child \
        bash -c "$inner" inner "$dir" "$jobs" "$limit" "$@" >>"$dir/run.log" 2>&1 &
    pids+=($!)
}

start=$(date +%s)
for run in libevent revent; do
    dir=$work/$run
    rm -rf "$dir"
    mkdir -p "$dir/tmp" "$dir/logs"
    cp -r "$src/t" "$src/doc" "$dir/" # t/line-lengths.t reads doc/protocol.txt
    cp "$src/timedrun" "$dir/timedrun"
    # The release binary has no relaxed_privileges (MemcachedTest.pm adds it to every server): drop that
    # item from any -o list, and note which libevent the loader picks for this environment.
    cat >"$dir/memcached-debug" <<'SH'
#!/usr/bin/env bash
args=()
while [ $# -gt 0 ]; do
    case $1 in
    -o | --extended) opt=${2-}; shift; shift || true ;;
    -o*) opt=${1#-o}; shift ;;
    --extended=*) opt=${1#--extended=}; shift ;;
    *) args+=("$1"); shift; continue ;;
    esac
    kept=$(printf '%s\n' "$opt" | tr ',' '\n' | grep -vx relaxed_privileges | paste -sd, -) || true
    [ -n "$kept" ] && args+=(-o "$kept")
done
LD_TRACE_LOADED_OBJECTS=1 /usr/bin/memcached | awk '$1 == "libevent-2.1.so.7" {print $3}' \
    >>"$(dirname "$0")/loaded" || true
exec /usr/bin/memcached ${args[@]+"${args[@]}"}
SH
    chmod +x "$dir/memcached-debug"
    launch $run "$jobs"
done
echo "== memcached's test suite ($(ls "$src"/t/*.t | wc -l) files), against Debian's libevent and on" \
    "revent side by side, $jobs files at a time in each"
status=0
for i in 0 1; do wait "${pids[$i]}" || status=1; done
pids=()
echo "   took $(($(date +%s) - start)) s"

# 3. Did each run load the libevent it should? (every server the suite started, and the checked one)
for run in libevent revent; do
    dir=$work/$run
    want=$syslib
    [ $run = revent ] && want=$(readlink -f "$libs/libevent-2.1.so.7")
    got=$(cat "$dir/maps" 2>/dev/null | xargs -r readlink -f | sort -u)
    [ "$got" = "$want" ] || {
        echo "FAIL: the $run run's memcached mapped '${got:-nothing}', not $want"
        cat "$dir/run.log"
        exit 1
    }
    wrong=$(xargs -r readlink -f <"$dir/loaded" | grep -cvxF "$want" || true)
    [ "$wrong" = 0 ] && [ -s "$dir/loaded" ] || {
        echo "FAIL: in the $run run, $wrong of $(wc -l <"$dir/loaded") memcached starts did not resolve $want"
        exit 1
    }
    echo "   $run: $(wc -l <"$dir/loaded") memcached starts, all with $want"
done
[ $status = 0 ] || { echo "FAIL: a run did not finish:"; tail -20 "$work"/*/run.log; exit 1; }

# 4. Outcomes per file, compared.
for run in libevent revent; do
    [ "$(wc -l <"$work/$run/results")" = "$(ls "$src"/t/*.t | wc -l)" ] || {
        echo "FAIL: the $run run has results for $(wc -l <"$work/$run/results") files only"
        tail -20 "$work/$run/run.log"
        exit 1
    }
done
# Exits non-zero, with the files in $work/diff, when some file's outcome differs; `compare final`
# says DIFF.
compare() {
    python3 - "$work" "$@" <<'PY'
import sys
work = sys.argv[1]
res = {}
for run in ("libevent", "revent"):
    res[run] = {}
    for line in open(f"{work}/{run}/results"):
        f, outcome, secs, *detail = line.rstrip("\n").split(" ", 3)
        res[run][f] = (outcome, float(secs), detail[0] if detail else "")
print(f"   {'':18} pass  skip  fail")
for run, name in (("libevent", "Debian's libevent"), ("revent", "revent")):
    n = [sum(1 for o, _, _ in res[run].values() if o == k) for k in ("pass", "skip", "fail")]
    print(f"   {name:18} {n[0]:4}  {n[1]:4}  {n[2]:4}")
for run in ("libevent", "revent"):
    for f, (o, _, d) in sorted(res[run].items()):
        if o == "fail":
            print(f"   fails on {run}: {f} ({d})")
diff = [f for f in sorted(res["libevent"]) if res["libevent"][f][0] != res["revent"].get(f, ("missing",))[0]]
final = len(sys.argv) > 2
for f in diff:
    a, b = res["libevent"][f], res["revent"].get(f, ("missing", 0, ""))
    print(f"{'DIFF' if final else 'differs'}: {f}: {a[0]} on libevent, {b[0]} on revent "
          f"({b[2] or a[2]}); output in {work}/{{libevent,revent}}/logs/{f.split('/')[-1]}.log")
with open(f"{work}/diff", "w") as out:
    out.write("".join(f + "\n" for f in diff))
if diff:
    sys.exit(1)
print("memcached's test suite: same outcome for every file on revent as on libevent")
PY
}
# MEMCACHED_SUITE_FLIP=FILE (a test of this script): FILE's first outcome on libevent is taken as a
# failure, so that the rerun below runs.
if [ -n "${MEMCACHED_SUITE_FLIP:-}" ]; then
    sed -i "s|^$MEMCACHED_SUITE_FLIP pass |$MEMCACHED_SUITE_FLIP fail |" "$work/libevent/results"
fi
if ! compare; then
    # Some files are timing-bound (t/daemonize.t kills a server and reconnects at once): a file
    # whose outcomes differ runs again in both runs, one file at a time; only a difference that
    # stays is a failure.
    mapfile -t again <"$work/diff"
    echo "   running the ${#again[@]} file(s) that differ again, in both runs"
    for run in libevent revent; do
        mv "$work/$run/results" "$work/$run/results.first"
        launch $run 1 "${again[@]}"
    done
    for i in 0 1; do wait "${pids[$i]}" || true; done
    pids=()
    for run in libevent revent; do
        # The second outcome of each file that ran again replaces its first.
        awk 'NR == FNR { again[$1] = $0; next } ($1 in again) { print again[$1]; next } { print }' \
            "$work/$run/results" "$work/$run/results.first" >"$work/$run/results.merged"
        mv "$work/$run/results.merged" "$work/$run/results"
    done
    compare final
fi
