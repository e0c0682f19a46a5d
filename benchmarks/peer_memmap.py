#!/usr/bin/python3
"""Peer baseline for bench_read: random patches from a numpy memmap.

Reads the same kind of patches as bench_read -- N random (size, size, size)
boxes of channel 0, start anywhere in [0, shape - size], fixed seed -- from
np.load(VOL.npy, mmap_mode='r') with .astype(np.float16), and reports
patches/s (wall time of the whole list), p50/p99 latency and peak RssAnon per
repeat and the median over repeats. The positions are drawn with the same
splitmix64 generator and seed as bench_read, so both read the same boxes.

Warm (default): the file is read once before the first repeat. --cold: before
each repeat the memmap is dropped and the file evicted from the page cache
with posix_fadvise(DONTNEED) (after fsync), as bench_read --cold does; the
residency is checked with mincore() before and after, and a note printed if
the eviction did not take (pages still mapped by the process are not evicted).

--threads 2 splits the list in halves over two Python threads (numpy's
strided cast releases the GIL, so they overlap), as bench_read --threads 2.

Last line: RESULT peer=numpy_memmap threads=1 cold=0 patches_per_s=... p50_ms=... p99_ms=... peak_anon_mib=...
"""
import argparse
import gc
import statistics
import threading
import time

import numpy as np

# the page-cache helpers, percentiles and the position generator are compare.py's
from compare import evict, pct, resident_pct, splitmix64, warm  # noqa: E402


def positions(shape, size, n, seed):
    """Same sequence as bench_read (spatial axes = the last three)."""
    s = seed
    out = []
    for _ in range(n):
        p = []
        for d in range(len(shape) - 3, len(shape)):
            span = shape[d] - size + 1 if shape[d] >= size else 1
            s, r = splitmix64(s)
            p.append(r % span)
        out.append(tuple(p))
    return out


def rss_anon_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return -1


def run_once(arr, pos, size, threads):
    """Read every patch of pos from arr; (wall s, sorted latencies ms, peak RssAnon KiB)."""
    lead = (0,) * (arr.ndim - 3)
    lat = [0.0] * len(pos)
    peaks = [0] * threads

    def work(t, first, count):
        for i in range(first, first + count):
            z, y, x = pos[i]
            t1 = time.perf_counter()
            p = arr[lead + (slice(z, z + size), slice(y, y + size), slice(x, x + size))] \
                .astype(np.float16)
            lat[i] = (time.perf_counter() - t1) * 1e3
            del p
            peaks[t] = max(peaks[t], rss_anon_kib())

    per, extra = divmod(len(pos), threads)
    parts, first = [], 0
    for t in range(threads):
        n = per + (t < extra)
        parts.append((t, first, n))
        first += n
    t0 = time.perf_counter()
    if threads == 1:
        work(*parts[0])
    else:
        ths = [threading.Thread(target=work, args=pt) for pt in parts]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
    wall = time.perf_counter() - t0
    lat.sort()
    return wall, lat, max(peaks)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("npy")
    ap.add_argument("--patches", type=int, default=200)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--threads", type=int, default=1, choices=(1, 2),
                    help="reader threads splitting the patch list (numpy's cast releases the GIL)")
    a = ap.parse_args()

    arr = np.load(a.npy, mmap_mode="r")
    shape, dtype = arr.shape, arr.dtype
    del arr
    pos = positions(shape, a.size, a.patches, a.seed)
    out_mib = a.size ** 3 * 2 / 2**20
    print(f"peer numpy memmap {a.npy}: {dtype} {shape}; {a.patches} patches of {a.size}^3 -> "
          f"float16, {a.threads} thread(s), seed {a.seed}, {a.repeat} repeat(s), "
          f"{'cold' if a.cold else 'warm'}")
    if not a.cold:
        warm(a.npy)
        print(f"warm: file read once; {resident_pct(a.npy):.1f}% of its pages resident")
    res = []
    cold_failed = False
    for rep in range(a.repeat):
        note = ""
        if a.cold:
            # no mapping of the file may be alive here: mapped pages are not evicted
            gc.collect()
            before = resident_pct(a.npy)
            evict(a.npy)
            after = resident_pct(a.npy)
            note = f", resident before/after evict {before:.1f}%/{after:.1f}%"
            if after > 5.0:
                cold_failed = True
                print(f"note: eviction did not work: {after:.1f}% still resident; this repeat is not cold")
        arr = np.load(a.npy, mmap_mode="r")
        wall, lat, peak = run_once(arr, pos, a.size, a.threads)
        del arr
        r = (a.patches / wall, pct(lat, 50), pct(lat, 99), peak / 1024)
        res.append(r)
        print(f"repeat {rep + 1}: {wall:.2f} s, {r[0]:.1f} patches/s ({r[0] * out_mib:.1f} MiB/s out), "
              f"p50 {r[1]:.2f} ms, p99 {r[2]:.2f} ms, peak RssAnon {r[3]:.1f} MiB{note}", flush=True)
    med = [statistics.median(v) for v in zip(*res)]
    print(f"median of {a.repeat}: {med[0]:.1f} patches/s, p50 {med[1]:.2f} ms, p99 {med[2]:.2f} ms, "
          f"peak RssAnon {med[3]:.1f} MiB")
    if cold_failed:
        print("note: at least one cold repeat was not cold (see above)")
    print(f"RESULT peer=numpy_memmap threads={a.threads} cold={int(a.cold)} patches_per_s={med[0]:.2f} "
          f"p50_ms={med[1]:.3f} p99_ms={med[2]:.3f} peak_anon_mib={med[3]:.1f} "
          f"cold_ok={int(not cold_failed)}")


if __name__ == "__main__":
    main()
