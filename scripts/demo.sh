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

ct=tests/data/example_ct_sm.nii.gz
seg=tests/data/example_seg.nii.gz
echo "== 1. convert a real abdominal CT and its organ segmentation (NIfTI, gzipped: streamed)"
echo "   cropped to the segmented body plus 4 voxels, with 2 pyramid levels, LZ4HC, 2 threads"
$vt convert "$ct" --seg "$seg" --crop-to-label 4 --levels 2 -j 2 -o "$work/ct.vxt"

echo "== 2. what is in the store"
$vt info "$work/ct.vxt"
$vt verify "$work/ct.vxt"
echo "   pictures (kept in build/demo/): slices with the organs over them, and where the bytes go"
mkdir -p build/demo
$vt preview "$work/ct.vxt" --window soft --overlay seg --montage 9 -o build/demo/axial.png
$vt preview "$work/ct.vxt" --axis y --window soft --overlay seg --grid --zoom 3 -o build/demo/coronal.png
$vt stat-tiles "$work/ct.vxt" -o build/demo/tiles.png

echo "== 3. back to NIfTI: the same voxels and header fields as the source (checked with nibabel)"
$vt convert "$ct" -o "$work/full.vxt" -q
$vt export "$work/full.vxt" -o "$work/back.nii.gz"
/usr/bin/python3 - "$ct" "$work/back.nii.gz" <<'PY'
import sys, gzip, nibabel as nib, numpy as np
a, b = nib.load(sys.argv[1]), nib.load(sys.argv[2])
same = np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj)) and np.allclose(a.affine, b.affine)
hdr = gzip.open(sys.argv[1]).read(348) == gzip.open(sys.argv[2]).read(348)
print(f"   voxels and affine {'identical' if same else 'DIFFERENT'}, header bytes {'identical' if hdr else 'DIFFERENT'}")
sys.exit(0 if same and hdr else 1)
PY

echo "== 4. read random 64^3 patches as float16, reflect-padded at the borders"
build/examples/read_patches "$work/full.vxt" 300 64

echo "== 5. one patch half outside the volume, checked against numpy (np.pad reflect + astype float16)"
$vt extract "$work/full.vxt" --start 0,-8,70,-20 --size 1,32,48,48 --pad reflect --dtype float16 -o "$work/patch.npy"
/usr/bin/python3 - "$ct" "$work/patch.npy" <<'PY'
import sys, numpy as np, nibabel as nib
ct = np.asarray(nib.load(sys.argv[1]).dataobj).transpose(2, 1, 0)  # NIfTI (x, y, z) -> (z, y, x)
patch = np.load(sys.argv[2])
big = np.pad(ct, 64, mode="reflect")
ref = big[64 - 8:64 - 8 + 32, 64 + 70:64 + 70 + 48, 64 - 20:64 - 20 + 48].astype(np.float16)[None]
same = np.array_equal(patch.view(np.uint16), ref.view(np.uint16))
print(f"   patch {patch.shape} {patch.dtype}, HU range [{patch.min()}, {patch.max()}]: "
      f"{'identical to' if same else 'DIFFERENT FROM'} numpy")
sys.exit(0 if same else 1)
PY
echo "== 6. augmented training patches: rotated, scaled, mirrored, deformed -- image and labels sampled"
echo "   together straight from the tiles (voxtile.sample_many), next to the plain crops"
PYTHONPATH=python /usr/bin/python3 examples/augment_montage.py "$work/ct.vxt" -o build/demo/augmented.png
echo "== done (temporary files in $work are removed; the pictures stay in build/demo/)"
