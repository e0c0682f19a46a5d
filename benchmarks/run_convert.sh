#!/usr/bin/env bash
# Conversion benchmark (issue 3): memory and time of `voxtile convert` on the
# seed-size volume from .nii.gz, .nii and .npy; see README.md here.
#
#   benchmarks/run_convert.sh
#
# Builds the volume (make_volume.py) unless it exists, writes it as NIfTI with
# nibabel (vol.nii) and gzips that (gzip -6, vol.nii.gz), then runs, ROUNDS
# times in turn, each conversion under /usr/bin/time -v and prints the median
# wall time, peak RSS and CPU of each with every run's figures. Each input is
# read once (cat > /dev/null) just before its conversion, so it comes from the
# page cache, and the output replaces the previous run's store, as in use.
#
# Environment (all optional):
#   BENCH_DIR  folder for the volume and stores (default /tmp/vtbench)
#   SHAPE      Z,Y,X of the volume (default 546,820,820 = seed size, 1.37 GiB)
#   JOBS       voxtile convert -j (default 2)
#   ROUNDS     runs of each conversion (default 3)
#   KEEP       1 keeps the stores (default: deleted at the end; the inputs stay)
#   PYTHON     python with numpy and nibabel (default /usr/bin/python3)
set -euo pipefail

# shellcheck source=benchmarks/common.sh
. "$(dirname "$0")/common.sh"
rounds=${ROUNDS:-3}

ninja -C "$build" tools/voxtile >/dev/null
mkdir -p "$dir"
base="$dir/vol_${shape//,/x}"
vol="$base.npy"
log="$dir/convert_${shape//,/x}.log"
: >"$log"

say "== $(date -u '+%Y-%m-%d %H:%M:%S UTC') voxtile conversion benchmark"
say "machine: $(machine)"
say "library: $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- src tools || echo ' + local changes')"
[[ -f "$vol" ]] || "$py" "$here/make_volume.py" "$vol" --shape "$shape" 2>&1 | tee -a "$log" >&2
if [[ ! -f "$base.nii" ]]; then
    # nibabel writes (x, y, z) from the (1, z, y, x) C-order volume: a transposed view, 0.8 mm voxels
    "$py" - "$vol" "$base.nii" <<'EOF'
import sys
import nibabel as nib
import numpy as np
v = np.load(sys.argv[1], mmap_mode="r")[0]
img = nib.Nifti1Image(np.asarray(v).transpose(2, 1, 0), np.diag([0.8, 0.8, 0.8, 1.0]), dtype=np.float32)
nib.save(img, sys.argv[2])
EOF
    say "wrote $base.nii ($(stat -c %s "$base.nii") bytes)"
fi
if [[ ! -f "$base.nii.gz" ]]; then
    gzip -6 -c "$base.nii" >"$base.nii.gz.part" && mv "$base.nii.gz.part" "$base.nii.gz"
    say "wrote $base.nii.gz ($(stat -c %s "$base.nii.gz") bytes, gzip -6)"
fi

names=(nii.gz nii npy-lz4 npy)
inputs=("$base.nii.gz" "$base.nii" "$vol" "$vol")
extra=("" "" "--codec lz4" "")
declare -A walls rss cpu
for ((r = 1; r <= rounds; r++)); do
    for i in "${!names[@]}"; do
        out="$dir/conv_${names[$i]}.vxt"
        cat "${inputs[$i]}" >/dev/null
        # shellcheck disable=SC2086
        /usr/bin/time -v "$build/tools/voxtile" convert "${inputs[$i]}" -o "$out" -j "$jobs" -q ${extra[$i]} \
            2>"$dir/time.txt"
        cat "$dir/time.txt" >>"$log"
        w=$(time_wall "$dir/time.txt")
        m=$(time_rss "$dir/time.txt")
        c=$(time_cpu "$dir/time.txt")
        say "round $r ${names[$i]}: wall $w s, peak RSS $m MiB, CPU $c"
        walls[$i]+="$w "
        rss[$i]+="$m "
        cpu[$i]+="$c "
    done
done
((rounds > 0)) && "$build/tools/voxtile" verify "$dir"/conv_*.vxt | tee -a "$log" >&2

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo
echo "## $(date -u '+%Y-%m-%d') convert, shape (1,$shape) float32, -j $jobs, median of $rounds"
echo
echo "| input | options | wall s (median) | all runs s | peak RSS MiB (max) | CPU (median) |"
echo "|---|---|---|---|---|---|"
for i in "${!names[@]}"; do
    opt=${extra[$i]:-defaults (lz4hc 4, tile 16^3)}
    mx=$(echo "${rss[$i]}" | tr ' ' '\n' | grep -v '^$' | sort -g | tail -1)
    echo "| $(basename "${inputs[$i]}") | $opt | $(echo "${walls[$i]}" | median) | ${walls[$i]% } | $mx | $(echo "${cpu[$i]//%/}" | median)% |"
done
echo
echo "log: $log"
[[ "${KEEP:-0}" == 1 ]] || rm -f "$dir"/conv_*.vxt
