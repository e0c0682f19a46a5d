#!/bin/bash
# Run the libFuzzer harnesses for a while each, report executions and findings,
# and bring findings into the committed corpus (tests/fuzz/README.md).
#
#   tests/fuzz/run.sh [-t SECONDS] [-j JOBS] [-f N] [-b BUILD] [-K] [-M] [-n] [-R] [HARNESS...]
#
#   -t SECONDS  fuzzing time per harness (default 60)
#   -j JOBS     harnesses fuzzed at the same time (default 2)
#   -f N        processes per harness (libFuzzer -fork=N, default 1)
#   -b BUILD    the libFuzzer build folder (default build-fuzz, see README.md)
#   -K          do not set VT_FUZZ_SKIP_KNOWN: hit the bugs already reported too
#   -M          do not reduce the corpus folders afterwards (see below)
#   -n          leave the corpus folders alone: fuzz a scratch copy, report only
#   -R          do not fuzz: only reduce the corpus folders
#   HARNESS     fuzz_open fuzz_read ... (default: all of them)
#
# Each harness runs libFuzzer in fork mode (-fork=N -ignore_crashes=1
# -ignore_timeouts=1 -ignore_ooms=1: a crash is recorded and fuzzing goes on)
# with -timeout=25 -rss_limit_mb=2048 and a -max_len suited to its input,
# on its corpus folder tests/fuzz/corpus/HARNESS as the working corpus. The
# log and the raw artifacts go to BUILD/fuzz-runs/HARNESS-TIME/. The script
# prints the executions of each harness (libFuzzer's final stats, or the last
# status line in fork mode) and, for every crash, leak, timeout or OOM:
# minimises it (-minimize_crash=1; timeouts and OOMs are kept as they are),
# copies it to tests/fuzz/corpus/HARNESS/KIND-SHA1 so that the fuzz-regress
# suite replays it, and prints the sanitizer's summary line.
#
# Afterwards the corpus folders are reduced (-merge=1) to the inputs that
# keep the coverage, within a size budget, keeping every seed-* and every
# crash-/leak-/timeout-/oom- file: the folders stay small enough to commit
# and to replay in the regress suite.
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
secs=60
jobs=2
build="$root/build-fuzz"
skip_known=1
reduce=1
scratch=0
reduce_only=0
forks=1
while getopts "t:j:f:b:KMnRh" opt; do
    case $opt in
    t) secs=$OPTARG ;;
    j) jobs=$OPTARG ;;
    f) forks=$OPTARG ;;
    b) build=$(cd "$OPTARG" && pwd) ;;
    K) skip_known=0 ;;
    M) reduce=0 ;;
    n) scratch=1 ;;
    R) reduce_only=1 ;;
    *) sed -n '2,30p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
all=(fuzz_open fuzz_read fuzz_sample fuzz_export fuzz_roundtrip fuzz_npy fuzz_nifti fuzz_nrrd fuzz_mha fuzz_gzip fuzz_cli_info)
harnesses=("$@")
[ ${#harnesses[@]} -eq 0 ] && harnesses=("${all[@]}")

max_len() {
    case $1 in
    fuzz_open | fuzz_cli_info | fuzz_sample | fuzz_export) echo 16384 ;; # a store file (+ parameters)
    fuzz_read) echo 128 ;;
    fuzz_npy) echo 1024 ;;
    *) echo 2048 ;;
    esac
}

# corpus budget after reduction, in KB, besides seeds and findings
budget() {
    case $1 in
    fuzz_open | fuzz_cli_info | fuzz_sample | fuzz_export) echo 400 ;;
    *) echo 120 ;;
    esac
}

[ "$skip_known" = 1 ] && export VT_FUZZ_SKIP_KNOWN=1
# undefined behaviour is a finding: stop at the first report, with a stack
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
stamp=$(date +%Y%m%d-%H%M%S)
runs="$build/fuzz-runs"
mkdir -p "$runs"

fuzz_one() {
    local h=$1 bin="$build/tests/fuzz/$1" out="$runs/$1-$stamp"
    local corpus="$here/corpus/$h"
    mkdir -p "$out/artifacts"
    if [ ! -x "$bin" ]; then
        echo "$h: $bin missing: ninja -C $build tests/fuzz/$h" >"$out/summary"
        return
    fi
    if [ "$scratch" = 1 ]; then
        mkdir -p "$out/corpus"
        cp "$corpus"/* "$out/corpus/" 2>/dev/null
        corpus="$out/corpus"
    fi
    "$bin" -fork="$forks" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 -max_len="$(max_len "$h")" \
        -print_final_stats=1 -artifact_prefix="$out/artifacts/" "$corpus" </dev/null >"$out/log" 2>&1
    local execs
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/log" | awk '{s += $2} END {if (NR) print s}')
    [ -z "$execs" ] && execs=$(grep -o '^#[0-9]*' "$out/log" | tail -1 | tr -d '#')
    {
        printf '%-15s %12s executions in %ss  (log: %s)\n' "$h" "${execs:-0}" "$secs" "$out/log"
        local n=0 a kind min final sum
        for a in "$out"/artifacts/*; do
            [ -f "$a" ] || continue
            kind=$(basename "$a" | sed 's/-.*//')
            final=$a
            if { [ "$kind" = crash ] || [ "$kind" = leak ]; } && [ $n -lt 10 ]; then
                n=$((n + 1))
                min="$out/min-$(basename "$a")"
                "$bin" -minimize_crash=1 -artifact_prefix="$out/min-" -runs=20000 -max_total_time=60 -timeout=25 -rss_limit_mb=2048 \
                    -exact_artifact_path="$min" "$a" </dev/null >"$min.log" 2>&1
                [ -s "$min" ] && final=$min
            fi
            sum=$(sha1sum "$final" | cut -c1-40)
            local dest="$here/corpus/$h/$kind-$sum"
            [ "$scratch" = 1 ] && dest="$out/$kind-$sum"
            cp "$final" "$dest"
            local what
            what=$("$bin" -runs=1 -timeout=25 -rss_limit_mb=2048 -artifact_prefix="$out/replay-" "$dest" </dev/null 2>&1)
            what=$(grep -m1 -E 'SUMMARY|check failed|ERROR: libFuzzer' <<<"$what" || echo "(does not reproduce alone)")
            printf '  FINDING %-7s %s\n          %s\n' "$kind" "$dest" "$what"
        done
    } >"$out/summary"
}

reduce_one() {
    local h=$1 bin="$build/tests/fuzz/$1" dir="$here/corpus/$1"
    local tmp
    tmp=$(mktemp -d "$runs/merge-$h-XXXXXX")
    mkdir -p "$tmp/new"
    "$bin" -merge=1 -timeout=25 -rss_limit_mb=2048 -max_len="$(max_len "$h")" "$tmp/new" "$dir" \
        </dev/null >"$tmp/log" 2>&1 || { echo "$h: merge failed, corpus left as it is ($tmp/log)"; return; }
    # keep seeds and findings; add merged inputs, smallest first, within the budget
    declare -A keep=()
    local f
    for f in "$dir"/seed-* "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-*; do
        [ -f "$f" ] && keep[$(sha1sum "$f" | cut -c1-40)]=1
    done
    local room=$(($(budget "$h") * 1024))
    mkdir -p "$tmp/keep"
    while read -r size f; do
        local s
        s=$(basename "$f")
        [ -n "${keep[$s]:-}" ] && continue
        [ "$size" -gt "$room" ] && continue
        room=$((room - size))
        cp "$f" "$tmp/keep/$s"
    done < <(find "$tmp/new" -type f -printf '%s %p\n' | sort -n)
    for f in "$dir"/*; do
        case $(basename "$f") in
        seed-* | crash-* | leak-* | timeout-* | oom-*) ;;
        *) rm -f "$f" ;;
        esac
    done
    cp "$tmp"/keep/* "$dir"/ 2>/dev/null
    echo "$h: corpus reduced to $(ls "$dir" | wc -l) files, $(du -sk --apparent-size "$dir" | cut -f1) KB"
    rm -rf "$tmp"
}

if [ "$reduce_only" = 1 ]; then
    for h in "${harnesses[@]}"; do
        [ -x "$build/tests/fuzz/$h" ] && reduce_one "$h"
    done
    exit 0
fi
echo "fuzzing ${harnesses[*]}: ${secs}s each, $jobs at a time (VT_FUZZ_SKIP_KNOWN=${VT_FUZZ_SKIP_KNOWN:-unset})"
running=0
for h in "${harnesses[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
    fuzz_one "$h" &
    running=$((running + 1))
done
wait
for h in "${harnesses[@]}"; do
    cat "$runs/$h-$stamp/summary" 2>/dev/null
done
if [ "$reduce" = 1 ] && [ "$scratch" = 0 ]; then
    for h in "${harnesses[@]}"; do
        [ -x "$build/tests/fuzz/$h" ] && reduce_one "$h"
    done
fi
