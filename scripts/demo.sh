#!/bin/sh
# The main job on the bundled real CT: install, build, convert the scan into a
# store, look at it, read patches through the lazy reader, and check a patch
# against numpy, sample augmented patches, resample as nnU-Net preprocesses
# and map back. Everything generated goes to a temporary folder.
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
echo "== 7. nnU-Net's preprocessing, streamed: resample to 1.5 mm (cubic image, label-vote segmentation),"
echo "   CT normalisation from the dataset fingerprint recorded (voxels stay int16 HU), then the segmentation"
echo "   mapped back to the source grid as a prediction would be (export --like), checked with nibabel"
mkdir -p "$work/ds/imagesTr" "$work/ds/labelsTr"
cp "$ct" "$work/ds/imagesTr/ct_001_0000.nii.gz"
cp "$seg" "$work/ds/labelsTr/ct_001.nii.gz"
echo '{"channel_names": {"0": "CT"}, "labels": {"background": 0}, "numTraining": 1, "file_ending": ".nii.gz"}' \
    > "$work/ds/dataset.json"
$vt stats "$work/ds" --fingerprint -o "$work/fp.json" | sed -n '3,4p'
$vt convert "$ct" --seg "$seg" --crop-to-label 4 --spacing 1.5,1.5,1.5 --normalize ct --fingerprint "$work/fp.json" \
    -o "$work/resampled.vxt" -q
$vt info "$work/resampled.vxt" | grep -E "^array|resampled from|spacing \(z"
$vt export "$work/resampled.vxt" --array seg --like "$work/resampled.vxt" -o "$work/seg_back.nii.gz" -q
/usr/bin/python3 - "$seg" "$work/seg_back.nii.gz" <<'PY'
import sys, nibabel as nib, numpy as np
a, b = nib.load(sys.argv[1]), nib.load(sys.argv[2])
sa, sb = np.asarray(a.dataobj), np.asarray(b.dataobj)
same_grid = sa.shape == sb.shape and np.allclose(a.affine, b.affine)
print(f"   back on the source grid: shape {sb.shape} and affine {'equal to' if same_grid else 'DIFFERENT FROM'} "
      f"the source's; labels after going to 1.5 mm and back equal the source's at {100 * np.mean(sa == sb):.2f} % "
      f"of voxels")
sys.exit(0 if same_grid and np.mean(sa == sb) > 0.9 else 1)
PY
echo "== done (temporary files in $work are removed; the pictures stay in build/demo/)"
