#!/usr/bin/python3
"""voxtile.dask.convert_dataset against `voxtile convert-dataset -j N` on one generated nnU-Net dataset.

The dataset: CASES cases (default 8), each the bundled CT (tests/data/example_ct_sm.nii.gz, x,y,z =
122x101x30 int16 HU) and its segmentation resampled to about SHAPE (z, y, x; default 200,300,300) --
image trilinear (scipy.ndimage.zoom order 1), labels nearest -- each case a different crop of a slightly
larger grid (sizes differ by up to 5 %) plus gaussian noise sigma 12 HU with its own seed, written as
int16 / uint8 NIfTI-1 .nii.gz (nibabel, gzip level 6) in imagesTr/labelsTr of a folder under --dir,
deleted at the end unless --keep.

Timed, in rounds (each round runs every driver once, on a fresh output folder, inputs in the page cache;
the driver that goes first rotates from round to round):
- cli:        `voxtile convert-dataset RAW -o OUT -j WORKERS -q`
- dask:       voxtile.dask.convert_dataset(RAW, OUT, client=client) on a LocalCluster of WORKERS
              processes x 1 thread started once before the rounds (the usual case: a running cluster)
- dask+start: voxtile.dask.convert_dataset(RAW, OUT, n_workers=WORKERS): its own LocalCluster, started
              and closed inside the call
The figure of each driver is the median wall time of --repeat rounds (default 3). The stores of the
last round are checked byte for byte against the CLI's.

usage: bench_dask_convert.py [--cases 8] [--workers 2] [--shape 200,300,300] [--repeat 3]
                             [--dir /tmp] [--keep] [--voxtile build/tools/voxtile]
Run from the checkout with the build's library:
    PYTHONPATH=python VOXTILE_LIB=build/libvoxtile.so /usr/bin/python3 benchmarks/bench_dask_convert.py
"""
import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_dataset(raw, cases, shape, seed=1):
    import nibabel as nib
    from scipy import ndimage

    ct = nib.load(os.path.join(ROOT, "tests", "data", "example_ct_sm.nii.gz"))
    seg = nib.load(os.path.join(ROOT, "tests", "data", "example_seg.nii.gz"))
    img = np.asarray(ct.dataobj, np.float32)                       # (x, y, z)
    lab = np.asarray(seg.dataobj)
    big = [int(round(s * 1.05)) for s in shape[::-1]]              # (x, y, z), 5 % larger
    zoom = [b / s for b, s in zip(big, img.shape)]
    img = ndimage.zoom(img, zoom, order=1)
    lab = ndimage.zoom(lab, zoom, order=0)
    aff = ct.affine @ np.diag([1 / zoom[0], 1 / zoom[1], 1 / zoom[2], 1])
    for sub in ("imagesTr", "labelsTr"):
        os.makedirs(os.path.join(raw, sub))
    with open(os.path.join(raw, "dataset.json"), "w") as f:
        json.dump({"channel_names": {"0": "CT"}, "labels": {"background": 0}, "numTraining": cases,
                   "file_ending": ".nii.gz"}, f, indent=4)
    rng = np.random.default_rng(seed)
    total = 0
    for c in range(cases):
        n = [int(rng.integers(int(round(s * 0.95)), s + 1)) for s in big]   # this case's size
        o = [int(rng.integers(0, b - k + 1)) for b, k in zip(big, n)]       # and where it is cut
        box = tuple(slice(a, a + k) for a, k in zip(o, n))
        data = img[box] + rng.normal(0, 12, n).astype(np.float32)
        data = np.clip(np.rint(data), -32768, 32767).astype(np.int16)
        a = aff.copy()
        a[:3, 3] = aff[:3, :3] @ o + aff[:3, 3]
        nib.save(nib.Nifti1Image(data, a), os.path.join(raw, "imagesTr", f"case_{c:03d}_0000.nii.gz"))
        nib.save(nib.Nifti1Image(lab[box].astype(np.uint8), a), os.path.join(raw, "labelsTr", f"case_{c:03d}.nii.gz"))
        total += data.size
    return total


def tree_hashes(out):
    got = {}
    for root, _, names in os.walk(out):
        for n in names:
            if n.endswith(".vxt"):
                p = os.path.join(root, n)
                with open(p, "rb") as f:
                    got[os.path.relpath(p, out)] = hashlib.sha256(f.read()).hexdigest()
    return got


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shape", default="200,300,300")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--voxtile", default=os.path.join(ROOT, "build", "tools", "voxtile"))
    args = ap.parse_args()
    shape = [int(v) for v in args.shape.split(",")]

    import voxtile.dask
    from distributed import Client, LocalCluster

    work = tempfile.mkdtemp(prefix="vt-bench-dask-", dir=args.dir)
    raw = os.path.join(work, "Dataset900_Bench")
    cluster = client = None
    try:
        t = time.monotonic()
        voxels = make_dataset(raw, args.cases, shape)
        size = sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(raw) for n in ns)
        print(f"{args.cases} cases, {voxels / args.cases / 1e6:.1f} M voxels each on average (int16 + uint8 labels), "
              f"{size / 2**20:.0f} MiB of .nii.gz, made in {time.monotonic() - t:.0f} s", flush=True)
        for r, _, ns in os.walk(raw):  # into the page cache
            for n in ns:
                with open(os.path.join(r, n), "rb") as f:
                    while f.read(1 << 24):
                        pass
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0")
        client = Client(cluster)

        def cli(out):
            subprocess.run([args.voxtile, "convert-dataset", raw, "-o", out, "-j", str(args.workers), "-q"],
                           check=True)

        def dask(out):
            rep = voxtile.dask.convert_dataset(raw, out, client=client)
            assert {r["status"] for r in rep} == {"converted"}, rep

        def dask_start(out):
            rep = voxtile.dask.convert_dataset(raw, out, n_workers=args.workers)
            assert {r["status"] for r in rep} == {"converted"}, rep

        drivers = {"cli": cli, "dask": dask, "dask+start": dask_start}
        times = {k: [] for k in drivers}
        hashes = {}
        names = list(drivers)
        for rnd in range(args.repeat):
            for name in names[rnd % 3:] + names[:rnd % 3]:  # each driver first in turn: no order bias
                fn = drivers[name]
                out = os.path.join(work, f"out-{name}")
                shutil.rmtree(out, ignore_errors=True)
                t = time.monotonic()
                fn(out)
                times[name].append(time.monotonic() - t)
                if rnd == args.repeat - 1:
                    hashes[name] = tree_hashes(out)
                print(f"round {rnd + 1} {name}: {times[name][-1]:.2f} s", flush=True)
        same = all(h == hashes["cli"] for h in hashes.values()) and len(hashes["cli"]) == args.cases
        print(f"\nstores identical to the CLI's: {'yes' if same else 'NO'} ({len(hashes['cli'])} stores)")
        print(f"\n| driver ({args.workers} workers) | median wall s of {args.repeat} | all runs | cases/s |")
        print("|---|---|---|---|")
        for name, ts in times.items():
            m = statistics.median(ts)
            print(f"| {name} | {m:.2f} | {', '.join(f'{x:.2f}' for x in ts)} | {args.cases / m:.2f} |")
        return 0 if same else 1
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    sys.exit(main())
