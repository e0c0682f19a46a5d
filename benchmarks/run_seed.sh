#!/usr/bin/env bash
# Seed-size read benchmark of voxtile; see README.md in this directory.
#
#   benchmarks/run_seed.sh
#
# Builds the volume (benchmarks/make_volume.py) into a temporary folder,
# converts it with `voxtile convert` (wall time and peak RSS from
# /usr/bin/time -v), runs bench_read (1 and 2 threads, warm and cold) and the
# numpy-memmap peer (benchmarks/peer_memmap.py, 1 and 2 threads, warm and
# cold) on the same patches, and prints a summary table.
#
# Environment (all optional):
#   BENCH_DIR  temporary folder for the volume and stores (default /tmp/vtbench)
#   SHAPE      Z,Y,X of the volume (default 546,820,820 = seed size, 1.37 GiB)
#   CODEC      voxtile convert --codec (default: the converter's, lz4hc)
#   LEVEL      voxtile convert --level (default: the converter's, 4 for lz4hc)
#   TILE       voxtile convert --tile Z,Y,X (default: the converter's, 16,16,16)
#   SHUFFLE    voxtile convert --shuffle (default: the converter's, auto)
#   JOBS       voxtile convert -j (default 2)
#   PATCHES, SIZE, REPEAT, SEED   bench_read / peer options (default 200, 128, 5, 1)
#   PEER_COLD  1 (default) also runs the peer cold; 0 skips it
#   KEEP       1 keeps the volume and store afterwards (default 0: delete the
#              store; the volume is kept for the next run unless KEEP=none)
#   PYTHON     python with numpy/nibabel/scipy (default /usr/bin/python3)
set -euo pipefail

# shellcheck source=benchmarks/common.sh
. "$(dirname "$0")/common.sh"
patches=${PATCHES:-200}
size=${SIZE:-128}
repeat=${REPEAT:-5}
seed=${SEED:-1}
peer_cold=${PEER_COLD:-1}
keep=${KEEP:-0}

ninja -C "$build" tools/voxtile benchmarks/bench_read >/dev/null
mkdir -p "$dir"

vol="$dir/vol_${shape//,/x}.npy"
tag="${CODEC:-default}_l${LEVEL:-default}_t${TILE:-default}_s${SHUFFLE:-default}"
tag=${tag//,/x}
store="$dir/vol_${shape//,/x}_$tag.vxt"
log="$dir/run_${shape//,/x}_$tag.log"
: >"$log"


say "== $(date -u '+%Y-%m-%d %H:%M:%S UTC') voxtile read benchmark"
say "machine: $(machine)"
say "volume $vol shape (1,$shape); store $store"

if [[ -f "$vol" ]]; then
    say "volume exists, reusing it (make_volume.py is deterministic)"
else
    t0=$(date +%s.%N)
    "$py" "$here/make_volume.py" "$vol" --shape "$shape" 2>&1 | tee -a "$log" >&2
    say "make_volume: $(echo "$(date +%s.%N) - $t0" | bc) s"
fi

conv=("$build/tools/voxtile" convert "$vol" -o "$store" -j "$jobs")
[[ -n "${CODEC:-}" ]] && conv+=(--codec "$CODEC")
[[ -n "${LEVEL:-}" ]] && conv+=(--level "$LEVEL")
[[ -n "${TILE:-}" ]] && conv+=(--tile "$TILE")
[[ -n "${SHUFFLE:-}" ]] && conv+=(--shuffle "$SHUFFLE")
say "+ ${conv[*]}"
# the volume was just written or read: it is (mostly) in the page cache
/usr/bin/time -v "${conv[@]}" 2>"$dir/time.txt" | tee -a "$log" >&2
cat "$dir/time.txt" >>"$log"
conv_wall=$(time_wall "$dir/time.txt")
conv_rss=$(time_rss "$dir/time.txt")
conv_cpu=$(time_cpu "$dir/time.txt")
say "convert: wall ${conv_wall} s, peak RSS ${conv_rss} MiB, CPU ${conv_cpu}"
"$build/tools/voxtile" info "$store" | tee -a "$log" >&2

common=(--patches "$patches" --size "$size" --repeat "$repeat" --seed "$seed")
declare -A R
run() { # name cmd...
    local name=$1
    shift
    say "+ $*"
    "$@" 2>&1 | tee -a "$log" "$dir/$name.out" >&2
    R[$name]=$(grep '^RESULT' "$dir/$name.out" | tail -1)
    rm -f "$dir/$name.out"
}

vt=("$build/benchmarks/bench_read" "$store" "${common[@]}")
peer=("$py" "$here/peer_memmap.py" "$vol" "${common[@]}")
# peer and voxtile runs interleaved, so that drift of a noisy machine hits both
run peer_t1_warm "${peer[@]}" --threads 1
run vt_t1_warm "${vt[@]}" --threads 1
run peer_t2_warm "${peer[@]}" --threads 2
run vt_t2_warm "${vt[@]}" --threads 2
run vt_t1_cold "${vt[@]}" --threads 1 --cold
[[ "$peer_cold" == 1 ]] && run peer_t1_cold "${peer[@]}" --threads 1 --cold
run vt_t2_cold "${vt[@]}" --threads 2 --cold
[[ "$peer_cold" == 1 ]] && run peer_t2_cold "${peer[@]}" --threads 2 --cold

field() { # result-line key
    sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"
}

{
    echo
    echo "## $(date -u '+%Y-%m-%d') shape (1,$shape) codec=${CODEC:-lz4hc} level=${LEVEL:-4} tile=${TILE:-16,16,16} shuffle=${SHUFFLE:-auto}; $patches patches of ${size}^3 -> float16, median of $repeat"
    echo
    echo "convert (-j $jobs): wall ${conv_wall} s, peak RSS ${conv_rss} MiB, CPU ${conv_cpu}; store ratio $(field "${R[vt_t1_warm]}" ratio)"
    echo
    echo "| reader | cache | threads | patches/s | x numpy-memmap (same threads, cache) | p50 ms | p99 ms | peak RssAnon MiB |"
    echo "|---|---|---|---|---|---|---|---|"
    for k in peer_t1_warm vt_t1_warm peer_t2_warm vt_t2_warm peer_t1_cold vt_t1_cold peer_t2_cold vt_t2_cold; do
        [[ -n "${R[$k]:-}" ]] || continue
        line=${R[$k]}
        cache=${k##*_}
        pk=peer_${k#*_}
        pps=$(field "$line" patches_per_s)
        x="-"
        if [[ -n "${R[$pk]:-}" ]]; then
            x=$(awk -v a="$pps" -v b="$(field "${R[$pk]}" patches_per_s)" 'BEGIN{printf "%.2f", a/b}')
        fi
        reader=voxtile
        [[ $k == peer* ]] && reader=numpy-memmap
        echo "| $reader | $cache | $(field "$line" threads) | $pps | $x | $(field "$line" p50_ms) | $(field "$line" p99_ms) | $(field "$line" peak_anon_mib) |"
    done
    echo
} | tee -a "$log"

if [[ "$keep" != 1 ]]; then
    rm -f "$store"
    [[ "$keep" == none ]] && rm -f "$vol"
fi
echo "log: $log" >&2
