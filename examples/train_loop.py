#!/usr/bin/python3
"""A tiny 3-D segmentation net trained for a few steps on the bundled CT, fed
by voxtile.torch.PatchDataset through a 2-worker DataLoader, with nnU-Net's
spatial augmentation (rotation, scaling, mirroring: image and labels sampled
from the tiles in one pass) and its CT normalisation done in the same read.
Prints the
loader's throughput (through training, and of the loader alone in a pass
without the net) and the resident memory of every process.

    PYTHONPATH=python /usr/bin/python3 examples/train_loop.py [--steps 20] [--epochs 2] [--workers 2]

Items depend on (seed, epoch, index): ds.set_epoch(epoch) before each epoch
draws new patches (without it every epoch repeats the first one).
"""
import argparse
import os
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import voxtile
from voxtile.augment import SpatialAugment
from voxtile.torch import PatchDataset

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "tests", "data")


def rss_mib(pid):
    """Resident size of a process (anonymous + file pages), MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


class TinyNet(nn.Module):
    """Two 3-D convolutions down, one up: enough to show a training step."""

    def __init__(self, classes):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv3d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv3d(8, 16, 3, stride=2, padding=1),
                                 nn.ReLU())
        self.dec = nn.ConvTranspose3d(16, classes, 2, stride=2)

    def forward(self, x):
        return self.dec(self.enc(x))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20, help="training steps per epoch")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--patch", type=int, nargs=3, default=(32, 64, 64))
    args = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "ct.vxt")
        voxtile.convert(os.path.join(DATA, "example_ct_sm.nii.gz"), store,
                        seg=os.path.join(DATA, "example_seg.nii.gz"), crop="nonzero")
        with voxtile.open(store) as st:
            classes = max(st["seg"].labels) + 1
            print(f"{store}: image {st['image'].shape}, {len(st['seg'].labels)} labels, spacing {st.spacing}")
        # CT: clip to +-1000 HU, then (x - 0) / 1000, fused into the read (no normalised copy anywhere)
        ds = PatchDataset([store], args.patch, oversample_foreground=0.33, dtype=torch.float32, seed=1,
                          length=args.steps * args.batch, spatial=SpatialAugment.nnunet(args.patch),
                          normalize=(-1000, 1000, 0.0, 1000.0))
        # prefetch_factor 4: a rotated patch costs ~4x a crop, and batches come back in order
        loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, num_workers=args.workers,
                                             persistent_workers=args.workers > 0,
                                             **({"prefetch_factor": 4} if args.workers > 0 else {}))
        net = TinyNet(classes)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        t_load, t0 = 0.0, time.perf_counter()
        for epoch in range(args.epochs):
            ds.set_epoch(epoch)  # other patches each epoch (reaches the persistent workers too)
            tick = time.perf_counter()
            for step, batch in enumerate(loader):
                t_load += time.perf_counter() - tick
                x = batch["image"]  # already clipped and scaled to [-1, 1]
                y = batch["seg"][:, 0].long()  # -1 where the patch left the volume: ignored by the loss
                loss = F.cross_entropy(net(x), y, ignore_index=-1)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if step % 5 == 0 or step == args.steps - 1:
                    procs = [os.getpid()] + children(os.getpid())
                    rss = " + ".join(f"{rss_mib(p):.0f}" for p in procs)
                    print(f"epoch {epoch} step {step:3d}  loss {loss.item():.3f}  fg voxels {int((y > 0).sum())}  "
                          f"RSS MiB {rss}")
                tick = time.perf_counter()
        total = time.perf_counter() - t0
        n = len(ds) * args.epochs
        print(f"{n} patches of {tuple(args.patch)} in {total:.2f} s: {n / total:.1f} patches/s through "
              f"training; the loop waited {t_load:.2f} s on the loader ({args.workers} workers)")
        # the loader alone: one more epoch with no net, so the figure is what the loader delivers,
        # not what the training step lets it show
        ds.set_epoch(args.epochs)
        t1 = time.perf_counter()
        m = sum(int(b["image"].shape[0]) for b in loader)
        alone = time.perf_counter() - t1
        print(f"loader alone: {m} patches in {alone:.2f} s: {m / alone:.1f} patches/s ({args.workers} workers)")

if __name__ == "__main__":
    main()
