#!/bin/sh
# The main job on the bundled real CT: install, build, convert the scan into a
# store, look at it, read patches through the lazy reader, and check a patch
# against numpy. Everything generated goes to a temporary folder.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
work=$(mktemp -d "${TMPDIR:-/tmp}/voxtile-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
vt=build/tools/voxtile

echo "== 1. the scan: tests/data/example_ct_sm.nii.gz (abdominal CT, int16 HU) as .npy (z, y, x)"
/usr/bin/python3 - "$work" <<'PY'
import sys, nibabel as nib, numpy as np
img = nib.load("tests/data/example_ct_sm.nii.gz")
ct = np.asarray(img.dataobj).transpose(2, 1, 0)  # NIfTI (x, y, z) -> C order (z, y, x)
np.save(f"{sys.argv[1]}/ct.npy", np.ascontiguousarray(ct))
print(f"   {img.shape} {img.get_data_dtype()} -> ct.npy {ct.shape} {ct.dtype}, spacing {img.header.get_zooms()}")
PY

echo "== 2. convert (streaming, LZ4HC, byte shuffle chosen automatically, 2 threads)"
$vt convert "$work/ct.npy" -o "$work/ct.vxt" -j 2

echo "== 3. what is in the store"
$vt info "$work/ct.vxt"
$vt verify "$work/ct.vxt"

echo "== 4. read random 64^3 patches as float16, reflect-padded at the borders"
build/examples/read_patches "$work/ct.vxt" 300 64

echo "== 5. one patch half outside the volume, checked against numpy (np.pad reflect + astype float16)"
$vt extract "$work/ct.vxt" --start 0,-8,70,-20 --size 1,32,48,48 --pad reflect --dtype float16 -o "$work/patch.npy"
/usr/bin/python3 - "$work" <<'PY'
import sys, numpy as np
w = sys.argv[1]
ct = np.load(f"{w}/ct.npy")
patch = np.load(f"{w}/patch.npy")
big = np.pad(ct, 64, mode="reflect")
ref = big[64 - 8:64 - 8 + 32, 64 + 70:64 + 70 + 48, 64 - 20:64 - 20 + 48].astype(np.float16)[None]
same = np.array_equal(patch.view(np.uint16), ref.view(np.uint16))
print(f"   patch {patch.shape} {patch.dtype}, HU range [{patch.min()}, {patch.max()}]: "
      f"{'identical to' if same else 'DIFFERENT FROM'} numpy")
sys.exit(0 if same else 1)
PY
echo "== done (temporary files in $work are removed)"
