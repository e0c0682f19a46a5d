#!/bin/sh
# Every test: install what is missing, build, run all suites (unit, slow),
# then the unit suites again under AddressSanitizer + UndefinedBehaviorSanitizer.
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
    meson test -C build-asan --suite unit --print-errorlogs --num-processes 2
