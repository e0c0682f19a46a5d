#!/bin/sh
# Print the version, X.Y.Z, from the VT_VERSION_MAJOR/_MINOR/_PATCH macros of
# include/voxtile.h, the one place it is defined. meson.build's project() runs
# this, so the library, voxtile --version, pkg-config, voxtile.__version__ (the
# library's vt_version_string) and the wheel's metadata (meson-python takes the
# project version) all carry the same version.
set -eu
h="$(dirname "$0")/../include/voxtile.h"
v=""
for f in MAJOR MINOR PATCH; do
    n=$(sed -n "s/^#define VT_VERSION_$f  *\([0-9][0-9]*\)[[:space:]]*$/\1/p" "$h")
    case "$n" in
        ''|*[!0-9]*) echo "$h: no single numeric #define VT_VERSION_$f" >&2; exit 1 ;;
    esac
    v="$v${v:+.}$n"
done
echo "$v"
