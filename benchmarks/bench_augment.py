#!/usr/bin/python3
"""Augmented training patches: voxtile's one-pass sampler against the nnU-Net v2 way with torch.

Seed-size volume (benchmarks/make_volume.py) with a label array of K = 4 and K = 40 labels
(benchmarks/make_labels.py), both as .npy (the peer's memmaps) and as stores holding "image" and
"seg" (voxtile convert VOL.npy --seg SEG.npy).

1. Rotation and scaling always on (±30° about each axis, isotropic scale 0.7-1.4, as nnU-Net's
   trainer draws them), 128^3 float16 image + int16 labels per patch, one thread, the same
   transforms and centres for both:
   - voxtile: voxtile.sample_many (image trilinear, labels by label vote) from the store;
   - torch (nnU-Net v2's SpatialTransform): the 205^3 box around the centre from np.load(mmap_mode='r')
     (image float32, labels uint8), one grid_sample(bilinear) for the image, and for the labels one
     grid_sample per label of its one-hot mask with a running argmax (what nnU-Net's per-label loop
     computes), all with torch.set_num_threads(1).
   Times are per image+label pair, median over the patches; the two outputs are compared (voxels whose
   source positions stay inside the 205^3 box must agree).
2. nnU-Net's probabilities (SpatialAugment.nnunet: 20 % rotation, 20 % scaling, mirroring): pairs/s.
3. PatchDataset(spatial=SpatialAugment.nnunet(...)) through a DataLoader with 1 and 2 workers
   (batch 2, prefetch_factor 4: a rotated pair costs ~4x a crop, and with torch's in-order delivery and 2
   batches queued per worker a worker idles behind the other's slow batch; each round also runs 2 workers
   with torch's default 2): patches/s, and each worker's anonymous memory (peak RssAnon, peak Pss_Anon -- pages
   shared copy-on-write with the parent counted proportionally --, peak own anonymous -- pages no
   other process maps -- and RssAnon growth after the first batch). In the same rounds, the same
   batches made by one and by two independent processes without a DataLoader: how far this
   machine's two cores scale at all. Medians of --loader-rounds interleaved rounds.

    /usr/bin/python3 benchmarks/bench_augment.py VOL.npy SEG4.npy K4.vxt SEG40.npy K40.vxt [--patches 30] [--loader-patches 400] [--loader-rounds 5]
"""
import argparse
import os
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
import voxtile  # noqa: E402
from voxtile.augment import SpatialAugment  # noqa: E402
from voxtile.torch import PatchDataset  # noqa: E402

PATCH = (128, 128, 128)
BOX = 205  # nnU-Net's initial patch size for 128^3 with ±30° rotation


def hold_resident(args):
    """Read every input once and keep it mapped in this process until the run ends.

    Some machines page out file data that no process maps and nothing has read for a while (this
    workplace's VMs run DAMON with a `pageout` scheme for unmapped page cache idle for ~60 s): between
    parts, the store a part does not use would go back to disk, and the next part would read it from there
    (and in small folios). Pages a process keeps mapped are left alone. The stores are read through
    voxtile's own mapping (Store.verify: every tile, so the page cache holds them in 2 MiB folios where the
    kernel can), the .npy files through numpy's, one byte per 4 KiB page. Returns what must stay referenced."""
    held = []
    for path in (args.store4, args.store40):
        st = voxtile.open(path)
        st.verify()
        held.append(st)
    for path in (args.vol, args.seg4, args.seg40):
        mm = np.load(path, mmap_mode="r")
        flat = mm.reshape(-1)
        step = max(4096 // mm.itemsize, 1)
        int(flat[::step].astype(np.int64).sum())  # noqa: the touch is the point
        held.append(mm)
    return held


def transforms(shape, n, seed):
    """n (matrix, centre) pairs: rotation and scaling always on, centres uniform in the volume."""
    aug = SpatialAugment(PATCH, p_rotation=1.0, p_scaling=1.0, mirror_axes=())
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        centre = np.array([rng.uniform(0, s - 1) for s in shape])
        out.append((aug.draw(rng, centre).matrix, centre))
    return out


def torch_way(img_mm, seg_mm, labels, m, centre):
    """nnU-Net v2's way: the 205^3 box, grid_sample for the image, one grid_sample per label + argmax."""
    start = [int(round(c)) - BOX // 2 for c in centre]
    # the box, zero-padded where it leaves the volume (nnU-Net pads image with 0, seg with -1)
    box = np.zeros((BOX,) * 3, np.float32)
    sbox = np.full((BOX,) * 3, -1, np.int16)
    src = tuple(slice(max(0, s), max(0, min(n, s + BOX))) for s, n in zip(start, img_mm.shape[1:]))
    dst = tuple(slice(a.start - s, a.stop - s) for a, s in zip(src, start))
    box[dst] = img_mm[(0,) + src]
    sbox[dst] = seg_mm[(0,) + src]
    # source positions of the patch's voxels in the box, normalised for grid_sample(align_corners=True)
    k, j, i = torch.meshgrid(*[torch.arange(p, dtype=torch.float32) for p in PATCH], indexing="ij")
    idx = torch.stack([k, j, i, torch.ones_like(k)], -1)
    pos = idx @ torch.from_numpy(m.astype(np.float32)).T - torch.tensor(start, dtype=torch.float32)
    grid = (2 * pos / (BOX - 1) - 1).flip(-1)[None]
    image = torch.nn.functional.grid_sample(torch.from_numpy(box)[None, None], grid, mode="bilinear",
                                            padding_mode="zeros", align_corners=True)[0]
    seg_t = torch.from_numpy(sbox)
    best = torch.full(PATCH, -1.0)
    result = torch.full(PATCH, -1, dtype=torch.int16)
    for lab in [-1] + labels:
        w = torch.nn.functional.grid_sample((seg_t == lab).float()[None, None], grid, mode="bilinear",
                                            padding_mode="zeros", align_corners=True)[0, 0]
        better = w > best
        best = torch.where(better, w, best)
        result[better] = lab
    return image.half().numpy(), result.numpy()[None], pos.numpy()


def part1(args, k, seg_npy, store):
    img_mm = np.load(args.vol, mmap_mode="r")
    seg_mm = np.load(seg_npy, mmap_mode="r")
    st = voxtile.open(store)
    img, seg = st["image"], st["seg"]
    labels = sorted(v for v in seg.labels)
    ts = transforms(img.shape[1:], args.patches, seed=k)
    tv, tt, agree, diff = [], [], [], []
    for n, (m, centre) in enumerate(ts):
        t0 = time.perf_counter()
        vi, vs = voxtile.sample_many([(img, dict(dtype=np.float16)),
                                      (seg, dict(order="label", dtype=np.int16, pad_value=-1))], m, PATCH)
        tv.append(time.perf_counter() - t0)
        if n < args.torch_patches:
            t0 = time.perf_counter()
            ti, tsg, pos = torch_way(img_mm, seg_mm, labels, m, centre)
            tt.append(time.perf_counter() - t0)
            inside = ((pos >= 1) & (pos <= BOX - 2)).all(-1)[None]
            diff.append(float(np.abs(vi.astype(np.float32) - ti.astype(np.float32))[inside].max()))
            agree.append(float((vs == tsg)[inside].mean()))
    mv, mt = statistics.median(tv) * 1e3, statistics.median(tt) * 1e3
    print(f"| K = {k:2d} | {mv:7.1f} | {mt:8.1f} | {mt / mv:6.1f}x | {min(agree):.4f} | {max(diff):.1e} |"
          f" {len(tv)} / {len(tt)} |", flush=True)
    return mv, mt


def part2(args, store):
    st = voxtile.open(store)
    img, seg = st["image"], st["seg"]
    aug = SpatialAugment.nnunet(PATCH)
    rng = np.random.default_rng(7)
    # centres as PatchDataset places them: an integer start + (patch - 1) / 2, so an unrotated, unscaled
    # patch is a crop (read as a box) and not a shift by a fraction of a voxel
    draws = [aug.draw(rng, [int(rng.integers(0, s - p + 1)) + (p - 1) / 2 for s, p in zip(img.shape[1:], PATCH)])
             for _ in range(args.patches * 3)]
    rotated = sum(1 for t in draws if any(t.angles) or t.scales != (1.0, 1.0, 1.0))
    # outputs new for every pair (what sample_many without out= costs), and the same two arrays for every
    # pair (what a DataLoader worker does: it refills its batch buffers); on a machine where a first touch of
    # memory is expensive the two differ by that cost alone. Interleaved pair by pair, so that a slow spell of
    # this shared machine falls on both alike.
    oi, os_ = np.zeros((1,) + PATCH, np.float16), np.zeros((1,) + PATCH, np.int16)
    kinds = (("new outputs", None), ("reused outputs (a worker's batch buffers)", (oi, os_)))
    # the same draws in every round: pairs/s per round, and the median of the rounds
    rate = {label: [] for label, _ in kinds}
    times = {label: [] for label, _ in kinds}
    for r in range(args.nnunet_rounds):
        round_t = {label: 0.0 for label, _ in kinds}
        for t in draws:
            for label, out in kinds:
                t0 = time.perf_counter()
                voxtile.sample_many([(img, dict(dtype=np.float16, out=out and out[0])),
                                     (seg, dict(order="label", dtype=np.int16, pad_value=-1, out=out and out[1]))],
                                    t.matrix, PATCH)
                dt = time.perf_counter() - t0
                round_t[label] += dt
                times[label].append(dt)
        for label in rate:
            rate[label].append(len(draws) / round_t[label])
    for label, rs in rate.items():
        print(f"| nnU-Net probabilities, {label} | {statistics.median(rs):.1f} pairs/s (rounds: "
              f"{', '.join(f'{v:.1f}' for v in rs)}) | median {statistics.median(times[label]) * 1e3:.1f} ms | "
              f"{rotated} of {len(draws)} drawn with rotation or scaling |", flush=True)


def anon(pid, pss=True):
    """(RssAnon, Pss_Anon, own anonymous) in MiB of a process. RssAnon counts the pages a forked worker shares
    copy-on-write with its parent (torch and numpy after import: ~117 MiB); Pss_Anon divides those among the
    processes; own anonymous counts only the anonymous pages no other process maps (per mapping of
    /proc/PID/smaps: its Anonymous pages, at most its Private_Clean + Private_Dirty). The last two are 0
    unless pss: reading smaps walks the process's page tables under its mmap lock, which stalls the
    worker's own mmap/munmap when done often."""
    ra = pa = own = 0.0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    ra = int(line.split()[1]) / 1024
        if pss:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss_Anon:"):
                        pa = int(line.split()[1]) / 1024
            vma = {}
            with open(f"/proc/{pid}/smaps") as f:
                for line in f:
                    key, _, rest = line.partition(":")
                    if key in ("Anonymous", "Private_Clean", "Private_Dirty"):
                        vma[key] = int(rest.split()[0])
                    elif key == "VmFlags":  # the last line of a mapping
                        own += min(vma.get("Anonymous", 0), vma.get("Private_Clean", 0) + vma.get("Private_Dirty", 0))
                        vma = {}
            own /= 1024
    except OSError:
        pass
    return ra, pa, own


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def loader_run(store, workers, patches, smaps=True, prefetch=4):
    """PatchDataset(spatial=nnunet, batch 2) through a DataLoader: (patches/s after the first batch, peak
    RssAnon, peak Pss_Anon, peak own anonymous, RssAnon growth after the first batch) of its workers, and
    the main process's CPU time per batch in ms (all its threads: the loop, torch's queue feeder threads, and
    this benchmark's 50 ms memory poller); the two from smaps are 0 without smaps."""
    ds = PatchDataset([store], PATCH, spatial=SpatialAugment.nnunet(PATCH), seed=3, length=patches,
                      batch_size=2, oversample_foreground=0.33)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers, persistent_workers=False,
                                         prefetch_factor=prefetch)
    peak, first, stop = {}, {}, threading.Event()

    def sampler():
        tick = 0
        while not stop.is_set():
            for c in children(os.getpid()):
                now = anon(c, pss=smaps and tick % 10 == 0)  # RssAnon every 50 ms, the others every 0.5 s
                peak[c] = tuple(max(a, b) for a, b in zip(peak.get(c, (0.0, 0.0, 0.0)), now))
            tick += 1
            time.sleep(0.05)

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    n = 0
    t0 = None
    for batch in loader:
        n += batch["image"].shape[0]
        if t0 is None:  # the first batch pays the workers' start
            t0, c0 = time.perf_counter(), time.process_time()
            n = 0
            for c in children(os.getpid()):
                first[c] = anon(c, pss=False)[0]
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    stop.set()
    th.join()
    grow = max((peak[c][0] - first.get(c, peak[c][0]) for c in peak), default=0.0)
    return ((n / dt,) + tuple(max((v[k] for v in peak.values()), default=0.0) for k in range(3)) +
            (grow, 1e3 * cpu / max(n / 2, 1)))


def solo(store, share, procs, patches):
    """One of `procs` processes sampling the same dataset's batches share, share + procs, ... in-process (no
    DataLoader): prints its first and last instant (time.time) and patches made."""
    ds = PatchDataset([store], PATCH, spatial=SpatialAugment.nnunet(PATCH), seed=3, length=patches,
                      batch_size=2, oversample_foreground=0.33)
    ds[share]  # stores opened, as a worker's first batch
    t0, n = time.time(), 0
    for i in range(share + procs, len(ds), procs):
        n += ds[i]["image"].shape[0]
    print(t0, time.time(), n, flush=True)


def solo_run(store, procs, patches):
    """Patches/s of `procs` independent processes sampling at once: the machine's own scaling, the ceiling
    of a DataLoader's."""
    cmd = [sys.executable, os.path.abspath(__file__), "--solo", "SHARE", str(procs), store, str(patches)]
    ps = [subprocess.Popen(cmd[:3] + [str(k)] + cmd[4:], stdout=subprocess.PIPE, text=True) for k in range(procs)]
    out = [p.communicate()[0].split() for p in ps]
    if any(p.returncode for p in ps):
        raise SystemExit("a solo sampler failed")
    return sum(int(o[2]) for o in out) / (max(float(o[1]) for o in out) - min(float(o[0]) for o in out))


def part3(args, store):
    """Rounds of: DataLoader with 1 worker, with 2; one independent process, two at once (interleaved, so
    that a slow spell of this shared machine falls on all four alike); medians. Then one DataLoader run
    each with the workers' smaps read every 0.5 s for the memory table (reading smaps stalls a worker a
    little, so the throughput rounds read only /proc/PID/status)."""
    runs = {k: [] for k in ("w1", "w2", "w2d", "p1", "p2")}
    main_cpu = []  # the main process's CPU ms per batch, 2 workers
    for r in range(args.loader_rounds):
        for w in (1, 2):
            row = loader_run(store, w, args.loader_patches, smaps=False, prefetch=args.prefetch)
            runs[f"w{w}"].append(row[0])
            if w == 2:
                main_cpu.append(row[5])
        runs["w2d"].append(loader_run(store, 2, args.loader_patches, smaps=False, prefetch=2)[0])
        for p in (1, 2):
            runs[f"p{p}"].append(solo_run(store, p, args.loader_patches))
        print(f"round {r + 1}: DataLoader 1 worker {runs['w1'][-1]:.1f}, 2 workers {runs['w2'][-1]:.1f} (prefetch_factor "
              f"2: {runs['w2d'][-1]:.1f}); independent 1 process {runs['p1'][-1]:.1f}, 2 processes {runs['p2'][-1]:.1f} "
              "patches/s", flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    loader = statistics.median(b / a for a, b in zip(runs["w1"], runs["w2"]))
    loader_d = statistics.median(b / a for a, b in zip(runs["w1"], runs["w2d"]))
    alone = statistics.median(b / a for a, b in zip(runs["p1"], runs["p2"]))
    print(f"\nmedians of {args.loader_rounds} rounds (prefetch_factor {args.prefetch}): DataLoader 1 worker "
          f"{med['w1']:.1f}, 2 workers {med['w2']:.1f} (prefetch_factor 2: {med['w2d']:.1f}) patches/s; independent "
          f"processes 1: {med['p1']:.1f}, 2: {med['p2']:.1f}")
    print(f"2 workers / 1 worker (median of the rounds' ratios): {loader:.2f}x (prefetch_factor 2: {loader_d:.2f}x); "
          f"the machine itself, 2 independent processes / 1: {alone:.2f}x")
    # With as many workers as cores the main process's CPU comes out of the workers' two cores: the
    # DataLoader can reach at most the machine's 2-process rate less that share.
    share = statistics.median(main_cpu) * med["w2"] / 2 / 1e3  # cores the main process takes
    print(f"main process with 2 workers: {statistics.median(main_cpu):.2f} ms CPU per batch, {100 * share:.1f} % of a "
          f"core; the machine's ratio less that share: {alone * (1 - share / 2):.2f}x")
    print("\n| workers | patches/s | peak RssAnon | peak Pss_Anon | peak own anonymous | RssAnon growth after the "
          "first batch |")
    print("|---|---|---|---|---|---|")
    for w in (1, 2):
        row = loader_run(store, w, args.loader_patches, prefetch=args.prefetch)
        print(f"| {w} | {row[0]:.1f} | {row[1]:.1f} | {row[2]:.1f} | {row[3]:.1f} | {row[4]:+.1f} |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("vol")
    ap.add_argument("seg4")
    ap.add_argument("store4")
    ap.add_argument("seg40")
    ap.add_argument("store40")
    ap.add_argument("--patches", type=int, default=30, help="voxtile patches per configuration (default 30)")
    ap.add_argument("--torch-patches", type=int, default=6, help="of those, also the torch way (default 6)")
    ap.add_argument("--nnunet-rounds", type=int, default=5,
                    help="rounds of part 2 over the same draws; the median of the rounds (default 5)")
    ap.add_argument("--loader-patches", type=int, default=120, help="patches through the DataLoader")
    ap.add_argument("--loader-rounds", type=int, default=3, help="rounds of the DataLoader part (default 3)")
    ap.add_argument("--prefetch", type=int, default=4,
                    help="the DataLoader's prefetch_factor (default 4; each round also runs 2 workers with 2)")
    ap.add_argument("--loader-only", action="store_true", help=argparse.SUPPRESS)
    if sys.argv[1:2] == ["--solo"]:
        return solo(sys.argv[4], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[5]))
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.loader_only:  # part 3 in a process of its own: the workers inherit nothing of parts 1 and 2
        part3(args, args.store4)
        return
    t0 = time.perf_counter()
    held = hold_resident(args)  # noqa: F841 (referenced until main returns)
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, numpy {np.__version__}; inputs read and "
          f"held mapped in {time.perf_counter() - t0:.1f} s")
    print("\n1. rotation + scaling always on, 128^3 image (float16) + labels (int16), one thread, ms per pair\n")
    print("| labels | voxtile | torch way | ratio | labels agree | max image diff | patches |")
    print("|---|---|---|---|---|---|---|")
    part1(args, 4, args.seg4, args.store4)
    part1(args, 40, args.seg40, args.store40)
    print(f"\n2. SpatialAugment.nnunet, one thread, median of {args.nnunet_rounds} rounds\n")
    part2(args, args.store4)
    print("\n3. PatchDataset(spatial=SpatialAugment.nnunet) + DataLoader, batch 2, per worker anonymous MiB\n",
          flush=True)
    subprocess.run([sys.executable, os.path.abspath(__file__), "--loader-only"] + sys.argv[1:], check=True)


if __name__ == "__main__":
    main()
