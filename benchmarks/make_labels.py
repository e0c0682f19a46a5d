#!/usr/bin/python3
"""Build a seed-size label volume to go with make_volume.py's image.

The bundled organ segmentation (tests/data/example_seg.nii.gz, NIfTI x,y,z =
122x101x30, 42 distinct values) is transposed to C order (z, y, x) and
upsampled to the target shape by nearest neighbour with make_volume.py's
coordinate mapping (output index i -> source coordinate i (n_in-1)/(n_out-1),
rounded half up), so every label lands where the image's organ lands. --labels K
renumbers the values into K classes: background stays 0, the others take
1 + (rank - 1) % (K - 1) in order of value; K=0 keeps the 42 values.
Written slab by slab as uint8 .npy of shape (1, Z, Y, X).

usage: make_labels.py OUT.npy [--shape Z,Y,X] [--labels K]
"""
import argparse
import os

import nibabel as nib
import numpy as np

SEG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "example_seg.nii.gz")


def nearest_index(n_in, n_out):
    if n_out == 1 or n_in == 1:
        return np.zeros(n_out, np.int64)
    return np.floor(np.arange(n_out) * ((n_in - 1) / (n_out - 1)) + 0.5).astype(np.int64).clip(0, n_in - 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--shape", default="546,820,820", help="Z,Y,X (default 546,820,820)")
    ap.add_argument("--labels", type=int, default=0, help="renumber into K classes (0: keep all values)")
    args = ap.parse_args()
    shape = tuple(int(s) for s in args.shape.split(","))
    seg = np.asarray(nib.load(SEG).dataobj).transpose(2, 1, 0)
    values = np.unique(seg)
    lut = np.zeros(int(values.max()) + 1, np.uint8)
    for rank, v in enumerate(values):
        lut[v] = v if args.labels == 0 else (0 if v == 0 else 1 + (rank - 1) % (args.labels - 1))
    seg = lut[seg]
    iz, iy, ix = (nearest_index(n, m) for n, m in zip(seg.shape, shape))
    plane = seg[:, iy][:, :, ix]  # (z_in, Y, X)
    out = np.lib.format.open_memmap(args.out, mode="w+", dtype=np.uint8, shape=(1,) + shape)
    for z0 in range(0, shape[0], 32):
        z1 = min(shape[0], z0 + 32)
        out[0, z0:z1] = plane[iz[z0:z1]]
    out.flush()
    print(f"{args.out}: (1, {shape[0]}, {shape[1]}, {shape[2]}) uint8, {len(np.unique(plane))} distinct values")


if __name__ == "__main__":
    main()
