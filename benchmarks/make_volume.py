#!/usr/bin/python3
"""Build the seed-size benchmark volume (recipe of tests/data/README.md).

The small abdominal CT (NIfTI x,y,z = 122x101x30, int16 HU) is transposed to
C order (z, y, x), resampled with order-1 (trilinear) interpolation to the
target shape, given gaussian noise (sigma 12 HU, fixed seed) so that it is not
unrealistically compressible, normalised as nnU-Net does for CT (clip to the
foreground 0.5/99.5 percentiles, z-score with the foreground mean/std; --norm
global for a plain z-score) and saved
as float32 .npy of shape (1, Z, Y, X).

Memory: the output is written slab by slab through np.lib.format.open_memmap.
Trilinear interpolation is separable, so it is done axis by axis: x and y on
the small source (30 x 820 x 820 float32, ~80 MB at seed size), then z per
output slab. This gives the same values as scipy.ndimage.zoom(order=1) /
map_coordinates(order=1) with zoom's default coordinate mapping
(out index i -> in coordinate i * (n_in - 1) / (n_out - 1)) to float rounding;
--check-zoom compares both on a small shape.

usage: make_volume.py OUT.npy [--shape Z,Y,X] [--seed S] [--sigma HU] [--chunk N]
"""
import argparse
import os
import sys
import time

import nibabel as nib
import numpy as np

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")
DEFAULT_SRC = os.path.join(DATA, "example_ct_sm.nii.gz")
DEFAULT_SEG = os.path.join(DATA, "example_seg.nii.gz")


def axis_weights(n_in, n_out):
    """Left index and right weight of order-1 interpolation along one axis (zoom mapping)."""
    if n_out == 1 or n_in == 1:
        return np.zeros(n_out, np.int64), np.zeros(n_out, np.float32)
    c = np.arange(n_out, dtype=np.float64) * ((n_in - 1) / (n_out - 1))
    i0 = np.minimum(np.floor(c).astype(np.int64), n_in - 2)
    w = (c - i0).astype(np.float32)
    return i0, w


def interp_axis(a, axis, n_out):
    """Linear interpolation of array a along axis to n_out samples."""
    n_in = a.shape[axis]
    i0, w = axis_weights(n_in, n_out)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lo = np.take(a, i0, axis=axis)
    hi = np.take(a, i1, axis=axis)
    shp = [1] * a.ndim
    shp[axis] = n_out
    w = w.reshape(shp)
    return lo + (hi - lo) * w


def load_ct(src):
    img = nib.load(src)
    hu = np.asanyarray(img.dataobj)  # (x, y, z) int16, no scaling in this file
    return np.ascontiguousarray(hu.T).astype(np.float32)  # (z, y, x)


def build(out, shape, src, seed, sigma, chunk, log, seg_src=None, norm="nnunet"):
    t0 = time.time()
    vol = load_ct(src)
    Z, Y, X = shape
    log(f"source {src}: (z,y,x)={vol.shape} HU range [{vol.min():.0f}, {vol.max():.0f}]")
    # x then y on the small source volume
    a = interp_axis(interp_axis(vol, 2, X), 1, Y).astype(np.float32)
    zi0, zw = axis_weights(vol.shape[0], Z)
    zi1 = np.minimum(zi0 + 1, vol.shape[0] - 1)

    mm = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(1, Z, Y, X))
    rng = np.random.default_rng(seed)
    s1 = 0.0
    s2 = 0.0
    n = 0
    for z0 in range(0, Z, chunk):
        z1 = min(Z, z0 + chunk)
        w = zw[z0:z1, None, None]
        slab = a[zi0[z0:z1]]
        slab += (a[zi1[z0:z1]] - slab) * w
        noise = rng.standard_normal(slab.shape, dtype=np.float32)
        noise *= np.float32(sigma)
        slab += noise
        del noise
        s1 += float(slab.sum(dtype=np.float64))
        s2 += float(np.square(slab, dtype=np.float64).sum())
        n += slab.size
        mm[0, z0:z1] = slab
    if norm == "global":
        mean = s1 / n
        std = (s2 / n - mean * mean) ** 0.5
        lo, hi = -np.inf, np.inf
    else:
        # nnU-Net's CTNormalization: clip to the 0.5 / 99.5 percentiles of the
        # foreground (segmented) intensities, then z-score with the
        # foreground mean and std.
        fg = load_ct(src)[load_ct(seg_src) > 0]
        lo, hi = (float(v) for v in np.percentile(fg, [0.5, 99.5]))
        mean, std = float(fg.mean()), float(fg.std())
    log(f"pass 1 (resample + noise) {time.time() - t0:.1f} s; normalisation {norm}: "
        f"clip [{lo:.1f}, {hi:.1f}] HU, mean {mean:.3f} HU, std {std:.3f} HU")
    m32 = np.float32(mean)
    inv = np.float32(1.0 / std)
    for z0 in range(0, Z, chunk):
        z1 = min(Z, z0 + chunk)
        slab = np.asarray(mm[0, z0:z1])
        np.clip(slab, np.float32(lo), np.float32(hi), out=slab)
        slab -= m32
        slab *= inv
        mm[0, z0:z1] = slab
    mm.flush()
    del mm
    log(f"wrote {out} shape (1,{Z},{Y},{X}) float32, {os.path.getsize(out) / 2**30:.3f} GiB "
        f"in {time.time() - t0:.1f} s")


def check_zoom(src):
    """Compare the separable interpolation with scipy.ndimage.zoom(order=1) on a small shape."""
    from scipy import ndimage
    vol = load_ct(src)
    shape = (41, 77, 90)
    ref = ndimage.zoom(vol, [s / n for s, n in zip(shape, vol.shape)], order=1)
    assert ref.shape == shape, ref.shape
    mine = interp_axis(interp_axis(interp_axis(vol, 2, shape[2]), 1, shape[1]), 0, shape[0])
    err = float(np.abs(mine - ref).max())
    print(f"check-zoom: max |separable - ndimage.zoom(order=1)| = {err:.3g} HU")
    return err < 1e-2


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", help="output .npy")
    ap.add_argument("--shape", default="546,820,820", help="Z,Y,X (default 546,820,820)")
    ap.add_argument("--src", default=DEFAULT_SRC, help="source NIfTI (default: shared example_ct_sm)")
    ap.add_argument("--seed", type=int, default=20240601, help="noise seed")
    ap.add_argument("--sigma", type=float, default=12.0, help="noise sigma in HU (default 12)")
    ap.add_argument("--seg", default=DEFAULT_SEG, help="segmentation giving the foreground for the normalisation")
    ap.add_argument("--norm", choices=["nnunet", "global"], default="nnunet",
                    help="nnunet (default): clip to foreground 0.5/99.5 percentiles, z-score with the "
                         "foreground mean/std, as nnU-Net's CTNormalization; global: plain z-score")
    ap.add_argument("--chunk", type=int, default=16, help="z slices per slab (default 16)")
    ap.add_argument("--check-zoom", action="store_true",
                    help="only compare the interpolation with scipy.ndimage.zoom and exit")
    args = ap.parse_args()
    if args.check_zoom:
        sys.exit(0 if check_zoom(args.src) else 1)
    if not args.out:
        ap.error("OUT.npy is required")
    shape = tuple(int(v) for v in args.shape.split(","))
    if len(shape) != 3 or min(shape) < 1:
        ap.error("--shape: expected Z,Y,X")
    build(args.out, shape, args.src, args.seed, args.sigma, max(1, args.chunk),
          lambda m: print(m, file=sys.stderr, flush=True), seg_src=args.seg, norm=args.norm)


if __name__ == "__main__":
    main()
