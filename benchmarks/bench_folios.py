#!/usr/bin/python3
"""The same store held by the page cache in 4 KiB pages and in 2 MiB folios: augmented patches from each.

A process that touches a page of a mapped file for the first time has the kernel map it; in 4 KiB
pages that is one page-table entry per page (a few at a time by fault-around), in 2 MiB folios one
entry for all of it (on a filesystem with large folios and a mapping at a 2 MiB boundary, as vt_open
makes it). voxtile's writer writes aligned 2 MiB windows so that a freshly written store is cached in
2 MiB folios; a copy made by `dd bs=128K` (or cp, or any writer of small pieces) is cached in small
ones. This script makes that copy, says how each is mapped (FilePmdMapped of /proc/self/smaps_rollup
after touching every page), then samples the same augmented 128^3 image + label pairs from both,
alternating store by store and draw by draw (ABBA), one thread:

    /usr/bin/python3 benchmarks/bench_folios.py STORE.vxt [--pairs 200] [--keep]

STORE.vxt holds "image" and "seg" (voxtile convert VOL.npy --seg SEG.npy); the copy goes beside it
and is deleted at the end unless --keep.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
import voxtile  # noqa: E402
from voxtile.augment import SpatialAugment  # noqa: E402

PATCH = (128, 128, 128)


def pmd_mapped_kib(path):
    """FilePmdMapped after a child maps the whole file and touches every page (a fresh process, so that
    nothing of this one's mappings counts)."""
    code = ("import mmap, sys\n"
            "f = open(sys.argv[1], 'rb'); m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)\n"
            "s = sum(m[i] for i in range(0, len(m), 4096))\n"
            "print([l.split()[1] for l in open('/proc/self/smaps_rollup') if l.startswith('FilePmdMapped')][0])\n")
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def run(stores, mode, pairs, seed):
    aug = (SpatialAugment.nnunet(PATCH) if mode == "nnunet"
           else SpatialAugment(PATCH, p_rotation=1.0, p_scaling=1.0, mirror_axes=()))
    rng = np.random.default_rng(seed)
    shape = stores[0]["image"].shape[1:]
    draws = [aug.draw(rng, [int(rng.integers(0, s - p + 1)) + (p - 1) / 2 for s, p in zip(shape, PATCH)])
             for _ in range(2 * pairs)]
    oi, os_ = np.zeros((1,) + PATCH, np.float16), np.zeros((1,) + PATCH, np.int16)
    ts = ([], [])
    for i in range(pairs):
        for pos, k in enumerate((0, 1) if i % 2 == 0 else (1, 0)):
            st = stores[k]
            t = draws[2 * i + pos] if i % 4 < 2 else draws[2 * i + 1 - pos]
            t0 = time.perf_counter()
            voxtile.sample_many([(st["image"], dict(dtype=np.float16, out=oi)),
                                 (st["seg"], dict(order="label", dtype=np.int16, pad_value=-1, out=os_))],
                                t.matrix, PATCH)
            ts[k].append(time.perf_counter() - t0)
    return ts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("store")
    ap.add_argument("--pairs", type=int, default=200, help="draws per store for nnU-Net's probabilities")
    ap.add_argument("--keep", action="store_true", help="keep the small-page copy")
    args = ap.parse_args()
    copy = args.store + ".4k-copy.vxt"
    subprocess.run(["dd", f"if={args.store}", f"of={copy}", "bs=128K", "status=none"], check=True)
    try:
        names = ("copy (dd bs=128K)", "as written by voxtile")
        paths = (copy, args.store)
        for n, p in zip(names, paths):
            print(f"{n}: FilePmdMapped {pmd_mapped_kib(p) / 1024:.0f} MiB of {os.path.getsize(p) / 2**20:.0f} MiB")
        print("\n| draws | store | pairs/s | median ms |\n|---|---|---|---|")
        for mode, pairs in (("nnunet", args.pairs), ("rotated+scaled", max(args.pairs // 5, 10))):
            stores = [voxtile.open(p) for p in paths]  # fresh handles: nothing mapped yet
            ts = run(stores, mode, pairs, seed=11)
            for n, t in zip(names, ts):
                print(f"| {mode} | {n} | {len(t) / sum(t):.1f} | {statistics.median(t) * 1e3:.1f} |")
            print(f"| {mode} | ratio | {sum(ts[0]) / sum(ts[1]):.2f}x | |", flush=True)
            for s in stores:
                s.close()
    finally:
        if not args.keep:
            os.unlink(copy)


if __name__ == "__main__":
    main()
