#!/bin/sh
# Install what voxtile needs on Debian 12, only what is missing.
# python3-mesonpy, python3-build, python3-venv, patchelf and git: pip install . and the
# wheel test (python3 -m build --no-isolation wants patchelf; its sdist is meson dist of a git tree).
set -eu
pkgs="meson ninja-build pkg-config gcc libc6-dev liblz4-dev libxxhash-dev libpng-dev check zlib1g-dev mandoc python3-pil python3 python3-numpy python3-scipy python3-nibabel python3-torch python3-dask python3-distributed python3-mesonpy python3-build python3-venv patchelf git valgrind strace libmicrohttpd-dev chromium chromium-driver python3-selenium"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
