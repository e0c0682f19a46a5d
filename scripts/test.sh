#!/bin/sh
# Every test: install what is missing, build, run all suites (unit, slow),
# then the unit suites and the fuzz corpora again under AddressSanitizer +
# UndefinedBehaviorSanitizer.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# -Dtests=enabled: a missing test dependency is an error, never silently fewer tests
[ -f build/build.ninja ] || meson setup build -Dtests=enabled >/dev/null
meson configure build -Dtests=enabled
ninja -C build
meson test -C build --print-errorlogs --num-processes 2
[ -f build-asan/build.ninja ] || meson setup build-asan -Dtests=enabled -Db_sanitize=address,undefined \
    -Dc_args=-fno-sanitize-recover=all -Dbuildtype=debug >/dev/null
ninja -C build-asan
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    meson test -C build-asan --suite unit --suite fuzz-regress --print-errorlogs --num-processes 2
# One end-to-end run under valgrind (memcheck): conversion with a segmentation,
# crop and pyramid levels, a reflect-padded float16 read, verify, dump, info,
# preview, stat-tiles, export.
vg="valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite"
work=$(mktemp -d "${TMPDIR:-/tmp}/voxtile-vg.XXXXXX")
trap 'rm -rf "$work"' EXIT
$vg build/tools/voxtile convert tests/data/example_ct_sm.nii.gz --seg tests/data/example_seg.nii.gz \
    --crop-to-label 2 --levels 1 -j 2 -q -o "$work/ct.vxt"
$vg build/tools/voxtile extract "$work/ct.vxt" --start 0,-4,-8,20 --size 1,24,40,40 --pad reflect \
    --dtype float16 -o "$work/p.npy"
$vg build/tools/voxtile verify "$work/ct.vxt" -j 2 >/dev/null
$vg build/tools/voxtile dump "$work/ct.vxt" --header --tiles >/dev/null
$vg build/tools/voxtile info "$work/ct.vxt" --json >/dev/null
$vg build/tools/voxtile preview "$work/ct.vxt" --axis y --overlay seg --grid --montage 4 -q -o "$work/p.png"
$vg build/tools/voxtile stat-tiles "$work/ct.vxt" -q -o "$work/t.png"
$vg build/tools/voxtile export "$work/ct.vxt" --array seg -o "$work/seg.nii.gz"
echo "valgrind end-to-end: clean"
