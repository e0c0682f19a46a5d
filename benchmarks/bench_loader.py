#!/usr/bin/python3
"""Patches/s through a PyTorch DataLoader, and the loader processes' memory.

Reads random 128^3 float16 patches (batch 2) from the seed volume through
voxtile.torch.PatchDataset with 0, 1 and 2 workers, and the same loop over a
numpy memmap of the .npy and over zarr (LZ4, 64^3 chunks), same positions.
Then 1000 patches with 2 workers through PatchDataset while sampling the
summed resident size (VmRSS) of the main process and its workers: it must
stay flat.

    /usr/bin/python3 benchmarks/bench_loader.py VOL.npy STORE.vxt [--zarr DIR] [--patches 200]

The peers do what a user would write: np.load(mmap_mode='r')[box].astype(float16),
zarr's array[box].astype(float16). Patches start uniformly inside the volume
for every reader (voxtile's foreground oversampling is off here) so all read
the same boxes.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
import voxtile  # noqa: E402
from voxtile.torch import PatchDataset  # noqa: E402


def positions(shape, patch, n, seed):
    """The boxes PatchDataset draws with oversample_foreground=0 (same RNG use)."""
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, 0, i])
        rng.integers(1)  # the case
        out.append([int(rng.integers(min(0, s - p), max(0, s - p) + 1)) for s, p in zip(shape, patch)])
    return out


class PeerDataset(torch.utils.data.Dataset):
    """A patch loader over an array-like (numpy memmap or zarr), opened lazily per worker."""

    def __init__(self, kind, path, patch, starts):
        self.kind, self.path, self.patch, self.starts = kind, path, patch, starts
        self.arr = None

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, i):
        if self.arr is None:
            if self.kind == "numpy":
                self.arr = np.load(self.path, mmap_mode="r")
            else:
                import zarr
                self.arr = zarr.open(self.path, mode="r")
        z, y, x = self.starts[i]
        pz, py, px = self.patch
        box = self.arr[:, z:z + pz, y:y + py, x:x + px]
        return {"image": torch.from_numpy(np.asarray(box).astype(np.float16))}


def rss_total(pid):
    """Summed (VmRSS, RssAnon, RssFile + RssShmem) in MiB of pid and its children, and their number."""
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    tot = {"VmRSS:": 0, "RssAnon:": 0, "RssFile:": 0, "RssShmem:": 0}
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    k = line.split(":")[0] + ":"
                    if k in tot:
                        tot[k] += int(line.split()[1])
        except OSError:
            pass
    return (tot["VmRSS:"] / 1024.0, tot["RssAnon:"] / 1024.0, (tot["RssFile:"] + tot["RssShmem:"]) / 1024.0,
            len(pids))


def run(ds, workers, batch, repeats):
    rates = []
    for _ in range(repeats):
        if getattr(ds, "batch_size", None):  # the dataset makes whole batches
            loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)
        else:
            loader = torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=workers)
        t0 = time.perf_counter()
        n = 0
        for b in loader:
            n += b["image"].shape[0]
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("npy")
    ap.add_argument("store")
    ap.add_argument("--zarr", help="zarr folder (built from the .npy when missing)")
    ap.add_argument("--patches", type=int, default=200)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rss-patches", type=int, default=1000)
    ap.add_argument("--rss-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(1)
    patch = (args.size,) * 3
    if args.rss_only:
        return rss_only(args, patch)
    with voxtile.open(args.store) as st:
        shape = st["image"].shape[1:]
        ratio = st["image"].nbytes / st["image"].stored_nbytes
    starts = positions(shape, patch, args.patches, seed=7)
    readers = [("voxtile", PatchDataset([args.store], patch, arrays=("image",), oversample_foreground=0.0,
                                        dtype=torch.float16, seed=7, length=args.patches)),
               ("voxtile batched", PatchDataset([args.store], patch, arrays=("image",), oversample_foreground=0.0,
                                                dtype=torch.float16, seed=7, length=args.patches, batch_size=2)),
               ("numpy-memmap", PeerDataset("numpy", args.npy, patch, starts))]
    if args.zarr:
        if not os.path.exists(args.zarr):
            import numcodecs
            import zarr
            src = np.load(args.npy, mmap_mode="r")
            z = zarr.open(args.zarr, mode="w", shape=src.shape, dtype=src.dtype, chunks=(1, 64, 64, 64),
                          compressor=numcodecs.Blosc("lz4", 5, numcodecs.Blosc.NOSHUFFLE))
            for k in range(0, src.shape[1], 64):
                z[:, k:k + 64] = src[:, k:k + 64]
        readers.append(("zarr-lz4", PeerDataset("zarr", args.zarr, patch, starts)))
    # the same boxes everywhere: check one patch of each peer against voxtile
    ref = readers[0][1][0]["image"]
    assert torch.equal(readers[1][1][0]["image"][0], ref), "the batched dataset returned other voxels"
    for name, ds in readers[2:]:
        assert torch.equal(ds[0]["image"], ref), f"{name} returned other voxels than voxtile"
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} UTC, {os.cpu_count()} cores; {args.patches} random {args.size}^3 "
          f"float16 patches, batch 2, median of {args.repeat}; store ratio {ratio:.3f}")
    print("| reader | workers | patches/s | x numpy-memmap |")
    print("|---|---|---|---|")
    base = {}
    for workers in (0, 1, 2):
        rates = {name: run(ds, workers, 2, args.repeat) for name, ds in readers}
        base[workers] = rates["numpy-memmap"]
        for name, r in rates.items():
            print(f"| {name} | {workers} | {r:.1f} | {r / base[workers]:.2f} |")
        sys.stdout.flush()
    if not args.rss_only:
        # memory in a fresh process: this one holds the pages the peers touched
        import subprocess
        subprocess.run([sys.executable, __file__, args.npy, args.store, "--rss-only",
                        "--rss-patches", str(args.rss_patches), "--size", str(args.size)], check=True)


def rss_only(args, patch):
    """Summed resident size of a 2-worker loader over many patches, in both dataset modes: items
    collated by torch (batch_size=2 in the DataLoader) and batches made by PatchDataset."""
    for mode in ("items", "batched"):
        batched = mode == "batched"
        ds = PatchDataset([args.store], patch, arrays=("image",), dtype=torch.float16, seed=11,
                          length=args.rss_patches, batch_size=2 if batched else None)
        loader = torch.utils.data.DataLoader(ds, batch_size=None if batched else 2, num_workers=2)
        samples = []
        n = 0
        for b in loader:
            n += b["image"].shape[0]
            if n % 50 == 0:
                samples.append(rss_total(os.getpid()))
        del loader
        for k, what in ((0, "VmRSS"), (1, "anonymous"), (2, "file + shared")):
            v = [s[k] for s in samples]
            print(f"{mode}: summed {what} of the {samples[-1][3]} loader processes over {n} patches (2 workers, "
                  f"sampled every 50): first {v[0]:.0f} MiB, median {statistics.median(v):.0f}, max {max(v):.0f}, "
                  f"last {v[-1]:.0f}")
        # flat: after the first samples (workers importing, first pages mapped) anonymous memory must
        # not keep growing; a leak of one 4 MiB patch per 50 would add > 60 MiB over 1000 patches
        anon = [s[1] for s in samples]
        growth = anon[-1] - anon[min(2, len(anon) - 1)]
        print(f"{mode}: anonymous memory growth from patch 150 to {n}: {growth:+.1f} MiB -> "
              f"{'flat' if growth <= 16 else 'NOT FLAT'}")


if __name__ == "__main__":
    main()
