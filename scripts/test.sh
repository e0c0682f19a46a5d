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
# preview, stat-tiles, export, and the viewer's server.
vg="valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite"
work=$(mktemp -d "${TMPDIR:-/tmp}/voxtile-vg.XXXXXX")
vpid=""
trap 'if [ -n "$vpid" ]; then kill "$vpid" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
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
# the viewer's server: the page, the API and slices of every axis and level from its thread
# pool, a bad request, then SIGINT (exit status 0, no leak)
if ! build/tools/voxtile view /dev/null 2>&1 | grep -q "built without the viewer"; then
    $vg build/tools/voxtile view "$work/ct.vxt" --port 0 >"$work/view.out" 2>"$work/view.err" &
    vpid=$!
    i=0
    until grep -q serving "$work/view.out" 2>/dev/null; do
        i=$((i + 1)); [ $i -lt 600 ] && kill -0 "$vpid" 2>/dev/null || { cat "$work/view.err"; exit 1; }
        sleep 0.1
    done
    port=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$work/view.out")
    /usr/bin/python3 - "$port" <<'EOF'
import sys, urllib.error, urllib.request
from concurrent.futures import ThreadPoolExecutor
base = f"http://127.0.0.1:{sys.argv[1]}"
def get(t):
    try:
        with urllib.request.urlopen(base + t, timeout=120) as r:
            return r.status, len(r.read())
    except urllib.error.HTTPError as e:
        return e.code, len(e.read())
targets = ["/", "/view.js", "/api/stores", "/api/array?store=0&array=image", "/api/array?store=0&array=seg&level=1"]
targets += [f"/api/slice?store=0&array={a}&axis={x}&index=3" + l for a in ("image", "seg") for x in "zyx"
            for l in ("", "&level=1")]
with ThreadPoolExecutor(4) as ex:
    got = list(ex.map(get, targets))
assert all(s == 200 and n > 0 for s, n in got), got
assert get("/api/slice?store=0&array=image&axis=q&index=0")[0] == 400
EOF
    kill -INT "$vpid"
    wait "$vpid" || { cat "$work/view.err"; exit 1; }
    vpid=""
fi
echo "valgrind end-to-end: clean"
