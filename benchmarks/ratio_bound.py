#!/usr/bin/python3
"""Upper bound of any lossless compression ratio on the seed volume.

make_volume.py adds gaussian noise (sigma 12 HU) before nnU-Net's CT
normalisation (clip to [-995, 389.9] HU, z-score with std 278.3 HU), and
stores float32. A voxel that is not clipped carries at least the entropy of
that noise quantised at the float32 spacing of its value,

    H >= log2(sigma / ulp(x)) + log2(sqrt(2 pi e))   bits,

even for a coder that knew the noise-free signal; a clipped voxel may cost
nothing. 32 bits divided by the mean of H bounds the ratio of every lossless
codec (LZ4, LZ4HC, Blosc, zstd ...) on this volume.

usage: ratio_bound.py VOL.npy [--every K]   (every K-th z slice, default 7)
"""
import argparse

import numpy as np

SIGMA_HU, STD_HU = 12.0, 278.3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vol")
    ap.add_argument("--every", type=int, default=7)
    args = ap.parse_args()
    v = np.load(args.vol, mmap_mode="r")
    sig = SIGMA_HU / STD_HU
    z = range(0, v.shape[1], args.every)
    lo = min(float(v[0, k].min()) for k in z)
    hi = max(float(v[0, k].max()) for k in z)
    bits = n = clipped = 0
    for k in z:
        s = np.asarray(v[0, k], dtype=np.float32).ravel()
        c = (s == lo) | (s == hi)
        ulp = np.spacing(np.abs(s[~c])).astype(np.float64)
        h = np.log2(sig / ulp) + 0.5 * np.log2(2 * np.pi * np.e)
        bits += float(np.clip(h, 0, 32).sum())
        n += s.size
        clipped += int(c.sum())
    print(f"{args.vol}: {len(z)} slices, clipped to {lo:.4f} / {hi:.4f}: {clipped / n:.1%} of the voxels")
    print(f"noise entropy >= {bits / n:.2f} bits per voxel -> no lossless ratio above {32 * n / bits:.2f}")


if __name__ == "__main__":
    main()
