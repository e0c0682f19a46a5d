#!/usr/bin/python3
"""Side-by-side benchmark: voxtile against the stores its users would otherwise pick.

    benchmarks/compare [--dir /tmp/vtcmp] [--patches 200] [--repeat 5] [--cold-repeat 3] ...

(benchmarks/compare is a thin wrapper that sets HDF5_PLUGIN_PATH and runs this
file with /usr/bin/python3.) From one seed-size volume (benchmarks/make_volume.py,
float32 (1, 546, 820, 820), reused when present) it builds

  voxtile       `voxtile convert VOL.npy -o VOL.vxt -j 2` (defaults: lz4hc 4, 16^3 tiles, shuffle auto)
  numpy-memmap  the .npy itself, np.load(mmap_mode='r')
  zarr-lz4      zarr 2, numcodecs Blosc LZ4 (clevel 5, no shuffle), 64^3 chunks
  zarr-lz4hc    zarr 2, Blosc LZ4HC level 5 + byte shuffle, 1x96x128x128 chunks, 32^3-voxel
                (128 KiB) Blosc blocks: the closest stand-in for nnU-Net's blosc2 b2nd store
  hdf5-lz4      HDF5 (h5py), 64^3 chunks, the LZ4 filter (id 32004, hdf5-filter-plugin)

and measures, every reader reading exactly the same boxes (the positions are
written to text files; bench_read --positions reads them):

  1. size, compression ratio and build time of each store;
  2. N random 128^3 boxes -> float16, one reader, warm cache: patches/s, p50/p99,
     voxtile's ratio against each peer; the voxels of a subset of boxes are
     compared (float16 bit patterns) between voxtile and every peer;
  3. two readers at once: voxtile with 2 threads on one handle and with 2
     processes (halves of the list, started together), every peer with 2 processes;
  4. 205^3 boxes that leave the volume on at least one side, reflect padding:
     voxtile vt_read(pad = reflect) against memmap crop + np.pad(mode='reflect') + astype;
  5. the same as 2 with a cold page cache (evicted before each repeat);
  6. peak anonymous memory (RssAnon high-water, sampled after every patch) of each reader process;
  7. `voxtile convert -j 2` with the defaults and with --codec lz4: wall time and
     peak RSS (/usr/bin/time -v).

Readers run as separate processes that wait on stdin before each repeat
(bench_read --sync, and `compare.py _read` for the Python peers). Repeats are
interleaved: round r runs one repeat of every configuration (order rotated
each round), so that drift of the shared machine hits all of them; the
ratios are medians of the per-round ratios.

By default voxtile is built privately from the committed HEAD of the checkout
(git clone into DIR/src, plus this working tree's benchmarks/bench_read.c and
benchmarks/meson.build), so another build in the checkout cannot change it mid-run;
--build DIR uses an existing build folder instead.

Internal subcommands (run by the harness):
  compare.py _read KIND PATH --positions F --size S --repeat R [--cold] [--pad reflect] [--sync]
  compare.py _build KIND VOL.npy OUT
"""
import argparse
import ctypes
import datetime
import gc
import glob
import json
import mmap
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
M64 = (1 << 64) - 1


def _plugin_dir():
    for d in sorted(glob.glob("/usr/lib/*/hdf5/serial/plugins")):
        if os.path.exists(os.path.join(d, "libh5lz4.so")):
            return d
    return None


if "HDF5_PLUGIN_PATH" not in os.environ and _plugin_dir():
    os.environ["HDF5_PLUGIN_PATH"] = _plugin_dir()

import numpy as np  # noqa: E402

# ---------------------------------------------------------------- stores

PEERS = {
    # name: (kind, file name, description)
    "numpy-memmap": ("npy", None, "the .npy, `np.load(mmap_mode='r')`"),
    "zarr-lz4": ("zarr", "vol_lz4_64.zarr", "zarr 2.13, Blosc LZ4 clevel 5, no shuffle, chunks 1x64x64x64"),
    "zarr-lz4hc": ("zarr", "vol_lz4hc5_96x128x128.zarr",
                   "zarr 2.13, Blosc LZ4HC level 5 + byte shuffle, chunks 1x96x128x128, Blosc blocks 128 KiB (32^3 voxels)"),
    "hdf5-lz4": ("h5", "vol_lz4_64.h5", "HDF5 1.10 (h5py 3.7), chunks 1x64x64x64, LZ4 filter 32004"),
}


METHOD = """\
`benchmarks/compare` (a wrapper of `benchmarks/compare.py`) puts voxtile beside the stores its
users would otherwise pick, all built from the same seed volume (`make_volume.py`):
the **numpy memmap** of the `.npy`; **zarr 2** with numcodecs Blosc LZ4 (no shuffle) in 64³
chunks; **zarr 2** with Blosc LZ4HC level 5 + byte shuffle, 1×96×128×128 chunks and 128 KiB
(32³-voxel) Blosc blocks, the closest stand-in for nnU-Net's blosc2 b2nd store (blosc2 is not in
Debian); **HDF5** with 64³ chunks and the LZ4 filter (id 32004, Debian's hdf5-filter-plugin).

- **Same boxes everywhere.** The harness draws the positions (128³: bench_read's own splitmix64
  sequence, seed 1; 205³: see table 4), writes them to a text file, and every reader reads that
  file: `bench_read --positions FILE` for voxtile, `arr[0, z:z+s, y:y+s, x:x+s].astype(np.float16)`
  for the peers. A subset of boxes is compared voxel by voxel (float16 bit patterns).
- **One reader = one core.** bench_read with 1 thread; each peer in its own Python process with
  Blosc's internal threads off (`numcodecs.blosc.use_threads = False`; HDF5 filters are serial).
- **Interleaved.** Every configuration is a separate process that waits on stdin before each
  repeat (`bench_read --sync`); round r runs one repeat of every configuration, in an order
  rotated each round, so that drift of the shared machine hits all of them. Ratios are the
  medians of per-round ratios, absolute patches/s the medians over rounds. The CPU time that
  other processes (and the hypervisor, steal) take during each repeat is read from /proc/stat;
  a warm repeat during which it exceeds 0.25 cores is run again (up to 3 tries).
- **Warm** readers read their files once at start; **cold** readers close the store, fsync and
  `posix_fadvise(DONTNEED)` every file, check residency with mincore() and reopen before each repeat.
- bench_read gained `--positions FILE` (box starts "z y x" per line, may be negative),
  `--pad constant|edge|reflect`, `--sync` (wait on stdin before each repeat; end of input stops)
  and `--dump FILE` (the output of the first repeat, for the voxel checks), and prints a
  machine-readable `REP` line per repeat with CLOCK_MONOTONIC start and end.
- voxtile is built from the committed HEAD into the run folder (with this tree's
  `benchmarks/bench_read.c`), so a rebuild of the checkout cannot change it mid-run.
  Full log with every repeat: `DIR/compare.log`; all figures: `DIR/compare_results.json`.
"""


def zarr_compressor(name):
    from numcodecs import Blosc
    if name == "zarr-lz4":
        return Blosc(cname="lz4", clevel=5, shuffle=Blosc.NOSHUFFLE), (1, 64, 64, 64)
    return Blosc(cname="lz4hc", clevel=5, shuffle=Blosc.SHUFFLE, blocksize=32 ** 3 * 4), (1, 96, 128, 128)


def store_files(path):
    if os.path.isdir(path):
        out = []
        for d, _, fs in os.walk(path):
            out += [os.path.join(d, f) for f in fs]
        return sorted(out)
    return [path]


def store_bytes(path):
    return sum(os.path.getsize(f) for f in store_files(path))


# ---------------------------------------------------------------- page cache

_libc = None


def _lib():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.mmap.restype = ctypes.c_void_p
        _libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                               ctypes.c_int, ctypes.c_long]
        _libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        _libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    return _libc


def resident_pct(path):
    """Percentage of the store's pages in the page cache (mincore on fresh mappings)."""
    libc = _lib()
    pg = os.sysconf("SC_PAGE_SIZE")
    tot = res = 0
    for f in store_files(path):
        size = os.path.getsize(f)
        if size == 0:
            continue
        npages = (size + pg - 1) // pg
        fd = os.open(f, os.O_RDONLY)
        try:
            addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if addr in (None, ctypes.c_void_p(-1).value):
                return -1.0
            try:
                vec = ctypes.create_string_buffer(npages)
                if libc.mincore(addr, size, vec) != 0:
                    return -1.0
                res += int((np.frombuffer(vec.raw, np.uint8, npages) & 1).sum())
                tot += npages
            finally:
                libc.munmap(addr, size)
        finally:
            os.close(fd)
    return 100.0 * res / tot if tot else -1.0


def evict(path):
    """fsync and POSIX_FADV_DONTNEED every file of the store (no mapping of it may be alive)."""
    for f in store_files(path):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm(path):
    """Read every file of the store once, through one 1 MiB buffer (so that the warm-up itself
    leaves no freed heap behind that would count in the reader's RssAnon)."""
    buf = bytearray(1 << 20)
    for f in store_files(path):
        with open(f, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


# ---------------------------------------------------------------- positions

def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def positions_inside(shape, size, n, seed):
    """bench_read's own sequence (splitmix64, start uniform in [0, shape - size])."""
    s, out = seed, []
    for _ in range(n):
        p = []
        for d in shape:
            s, r = splitmix64(s)
            p.append(r % (d - size + 1 if d >= size else 1))
        out.append(tuple(p))
    return out


def positions_outside(shape, size, n, seed):
    """Boxes that leave the volume on at least one side but keep more than half of each axis
    inside: start uniform in [-(size // 2), d - size + size // 2] per axis, redrawn until some
    axis passes a border. Then every pad width is < the in-volume extent, so numpy's reflect on
    the in-volume crop equals reflecting the whole volume."""
    rng = np.random.default_rng(seed)
    h = size // 2
    out = []
    while len(out) < n:
        p = tuple(int(rng.integers(-h, d - size + h + 1)) for d in shape)
        if any(v < 0 or v + size > d for v, d in zip(p, shape)):
            out.append(p)
    return out


def write_positions(path, pos, comment):
    with open(path, "w") as f:
        f.write(f"# {comment}\n# z y x (box start; channel 0)\n")
        for p in pos:
            f.write("%d %d %d\n" % p)


# ---------------------------------------------------------------- reading (peers)

def rss_anon_kib(fd):
    b = os.pread(fd, 4096, 0)
    i = b.find(b"RssAnon:")
    return int(b[i + 8:b.index(b"\n", i)].split()[0]) if i >= 0 else -1


class PeerReader:
    def __init__(self, kind, path):
        self.kind, self.path = kind, path
        self.arr = self.f = None
        if kind == "zarr":
            import numcodecs.blosc
            import zarr  # noqa: F401
            # one decompression thread: one reader = one core, as voxtile's 1-thread figure
            numcodecs.blosc.use_threads = False
        elif kind == "h5":
            import h5py  # noqa: F401

    def open(self):
        if self.kind == "npy":
            self.arr = np.load(self.path, mmap_mode="r")
        elif self.kind == "zarr":
            import zarr
            self.arr = zarr.open_array(self.path, mode="r")
        else:
            import h5py
            self.f = h5py.File(self.path, "r")
            self.arr = self.f["image"]

    def close(self):
        self.arr = None
        if self.f is not None:
            self.f.close()
            self.f = None
        gc.collect()

    def read(self, start, size, pad=None):
        z, y, x = start
        a = self.arr
        if pad is None:
            return a[0, z:z + size, y:y + size, x:x + size].astype(np.float16)
        shp = a.shape[1:]
        lo = [max(0, v) for v in start]
        hi = [min(d, v + size) for v, d in zip(start, shp)]
        crop = a[0, lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        widths = [(l - v, v + size - h) for v, l, h in zip(start, lo, hi)]
        return np.pad(crop, widths, mode=pad).astype(np.float16)


def read_positions(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(tuple(int(v) for v in line.split()))
    return out


def pct(sorted_v, q):
    k = max(1, min(len(sorted_v), int(np.ceil(q / 100.0 * len(sorted_v)))))
    return sorted_v[k - 1]


def cmd_read(argv):
    ap = argparse.ArgumentParser(prog="compare.py _read")
    ap.add_argument("kind", choices=("npy", "zarr", "h5"))
    ap.add_argument("path")
    ap.add_argument("--positions", required=True)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--pad", default=None)
    ap.add_argument("--sync", action="store_true")
    ap.add_argument("--trace", action="store_true",
                    help="after the repeats, one more (untimed) pass under tracemalloc: the largest "
                         "Python/numpy heap use within one read")
    a = ap.parse_args(argv)
    pos = read_positions(a.positions)
    r = PeerReader(a.kind, a.path)
    status = os.open("/proc/self/status", os.O_RDONLY)
    if not a.cold:
        warm(a.path)
        print(f"warm: {resident_pct(a.path):.1f}% resident", flush=True)
    r.open()
    base = rss_anon_kib(status)
    res = []
    for rep in range(a.repeat):
        resident = -1.0
        if a.cold:
            r.close()  # mapped pages are not evicted
            before = resident_pct(a.path)
            evict(a.path)
            resident = resident_pct(a.path)
            print(f"cold: resident before/after evict {before:.1f}%/{resident:.1f}%", flush=True)
            r.open()
        if a.sync:
            print(f"READY {rep + 1}", flush=True)
            if not sys.stdin.readline():
                break  # the driver is done

        lat = [0.0] * len(pos)
        peak = 0
        t0 = time.clock_gettime(time.CLOCK_MONOTONIC)
        for i, p in enumerate(pos):
            s = time.perf_counter()
            out = r.read(p, a.size, a.pad)
            lat[i] = (time.perf_counter() - s) * 1e3
            peak = max(peak, rss_anon_kib(status))  # with the patch alive, as bench_read's buffer
            del out
        t1 = time.clock_gettime(time.CLOCK_MONOTONIC)
        lat.sort()
        pps = len(pos) / (t1 - t0)
        res.append(pps)
        print(f"REP rep={rep + 1} t0={t0:.6f} t1={t1:.6f} patches={len(pos)} patches_per_s={pps:.3f} "
              f"p50_ms={pct(lat, 50):.4f} p99_ms={pct(lat, 99):.4f} peak_anon_mib={peak / 1024:.2f} "
              f"base_anon_mib={base / 1024:.2f} peak_file_mib=-1 resident_pct={resident:.2f}", flush=True)
    if a.trace:
        import tracemalloc
        tracemalloc.start()
        top = 0
        for p in pos:
            tracemalloc.reset_peak()
            base_t = tracemalloc.get_traced_memory()[0]
            out = r.read(p, a.size, a.pad)
            top = max(top, tracemalloc.get_traced_memory()[1] - base_t)
            del out
        tracemalloc.stop()
        print(f"TRACE traced_peak_mib={top / 2**20:.2f}", flush=True)
    r.close()
    if res:
        print(f"RESULT peer={a.kind} patches_per_s={statistics.median(res):.2f}")


# ---------------------------------------------------------------- building (peers)

def cmd_build(argv):
    ap = argparse.ArgumentParser(prog="compare.py _build")
    ap.add_argument("name", choices=[k for k in PEERS if k != "numpy-memmap"])
    ap.add_argument("npy")
    ap.add_argument("out")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    mm = np.load(a.npy, mmap_mode="r")
    status = os.open("/proc/self/status", os.O_RDONLY)
    peak = 0
    kind = PEERS[a.name][0]
    if kind == "zarr":
        import zarr
        comp, chunks = zarr_compressor(a.name)
        z = zarr.open_array(a.out, mode="w", shape=mm.shape, chunks=chunks, dtype=mm.dtype,
                            compressor=comp)
        step = chunks[1]
        for z0 in range(0, mm.shape[1], step):  # slabs aligned to the chunks: each chunk written once
            z[:, z0:z0 + step] = mm[:, z0:z0 + step]
            peak = max(peak, rss_anon_kib(status))
    else:
        import h5py
        with h5py.File(a.out, "w") as f:
            ds = f.create_dataset("image", shape=mm.shape, dtype=mm.dtype, chunks=(1, 64, 64, 64),
                                  compression=32004)
            for z0 in range(0, mm.shape[1], 64):
                ds[:, z0:z0 + 64] = mm[:, z0:z0 + 64]
                peak = max(peak, rss_anon_kib(status))
    print(f"BUILD wall_s={time.perf_counter() - t0:.3f} peak_anon_mib={peak / 1024:.1f}")


# ---------------------------------------------------------------- harness helpers

def log(msg, fh=None):
    print(msg, file=sys.stderr, flush=True)
    if fh:
        fh.write(msg + "\n")
        fh.flush()


def parse_kv(line):
    return {k: float(v) if re.fullmatch(r"-?[0-9.]+(e-?[0-9]+)?", v) else v
            for k, v in (w.split("=", 1) for w in line.split()[1:] if "=" in w)}


def time_v(cmd, logf):
    """Run cmd under /usr/bin/time -v; (wall s, peak RSS MiB, CPU %, stdout)."""
    tf = logf.name + ".time"
    p = subprocess.run(["/usr/bin/time", "-v", "-o", tf] + cmd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    txt = open(tf).read()
    os.unlink(tf)
    logf.write(f"+ {shlex.join(cmd)}\n{p.stdout}{txt}")
    logf.flush()
    if p.returncode:
        raise SystemExit(f"failed ({p.returncode}): {shlex.join(cmd)}\n{p.stdout}")
    el = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", txt).group(1)
    wall = 0.0
    for part in el.split(":"):
        wall = wall * 60 + float(part)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", txt).group(1)) / 1024
    cpu = re.search(r"Percent of CPU this job got: (\S+)", txt).group(1)
    return wall, rss, cpu, p.stdout


class Proc:
    """A reader process in --sync mode: READY <rep> before each repeat, REP ... after it."""

    def __init__(self, cmd, logf):
        self.cmd, self.logf = cmd, logf
        logf.write(f"+ {shlex.join(cmd)}\n")
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, bufsize=1)

    def _until(self, prefix):
        while True:
            line = self.p.stdout.readline()
            if not line:
                rc = self.p.wait()
                raise SystemExit(f"reader exited ({rc}) waiting for {prefix}: {shlex.join(self.cmd)}")
            self.logf.write(line)
            if line.startswith(prefix):
                return line

    is_ready = False

    def ready(self):
        if not self.is_ready:
            self._until("READY")
            self.is_ready = True

    def go(self):
        self.is_ready = False
        self.p.stdin.write("\n")
        self.p.stdin.flush()

    def rep(self):
        return parse_kv(self._until("REP "))

    def finish(self):
        out = self.p.stdout.read()
        self.p.wait()
        self.logf.write(out)
        if self.p.returncode:
            raise SystemExit(f"reader failed ({self.p.returncode}): {shlex.join(self.cmd)}")
        return out


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pids):
    """(busy ticks of the whole machine incl. steal, CPU ticks of pids and of this process)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)  # user nice system irq softirq steal
    own = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                w = f.read().rsplit(")", 1)[1].split()
            own += int(w[11]) + int(w[12])  # utime stime
        except OSError:
            pass
    t = os.times()
    own += round((t.user + t.system) * CLK_TCK)
    return busy, own


def interleaved(configs, rounds, logf, label, max_foreign=None, tries=3):
    """configs: {name: [cmd, ...]} (several commands = processes started together, each with
    --sync and a --repeat of at least rounds * tries). Each round runs one repeat of every
    configuration, order rotated per round. CPU time used during a repeat by anything but the
    readers and this process ("foreign", in cores) is measured from /proc/stat; with max_foreign,
    a repeat above it is run again, up to `tries` times (the last attempt counts).
    Returns {name: [per-round dict(pps, p50, p99, peak_anon, base_anon, resident, foreign, tries)]}."""
    procs = {n: [Proc(c, logf) for c in cmds] for n, cmds in configs.items()}
    names = list(configs)
    out = {n: [] for n in names}  # and out["#trace"][n]: tracemalloc peak of the --trace pass
    for ps in procs.values():  # all started (warm-up done) before the first measurement
        for p in ps:
            p.ready()
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            ps = procs[n]
            pids = [p.p.pid for p in ps]
            for attempt in range(1, tries + 1):
                for p in ps:
                    p.ready()
                b0, o0 = cpu_ticks(pids)
                w0 = time.monotonic()
                for p in ps:
                    p.go()
                reps = [p.rep() for p in ps]
                b1, o1 = cpu_ticks(pids)
                foreign = max(0, (b1 - b0) - (o1 - o0)) / CLK_TCK / (time.monotonic() - w0)
                t0 = min(x["t0"] for x in reps)
                t1 = max(x["t1"] for x in reps)
                d = {
                    "pps": sum(x["patches"] for x in reps) / (t1 - t0),
                    "p50": statistics.mean(x["p50_ms"] for x in reps),
                    "p99": max(x["p99_ms"] for x in reps),
                    "peak_anon": max(x["peak_anon_mib"] for x in reps),
                    "base_anon": max(x["base_anon_mib"] for x in reps),
                    "resident": max(x["resident_pct"] for x in reps),
                    "foreign": foreign,
                    "tries": attempt,
                }
                msg = (f"  [{label} round {r + 1}/{rounds}] {n}: {d['pps']:.1f} patches/s, p50 {d['p50']:.2f} ms, "
                       f"p99 {d['p99']:.2f} ms, peak RssAnon {d['peak_anon']:.1f} MiB, other load "
                       f"{foreign:.2f} cores" + (f", resident after eviction {d['resident']:.1f}%"
                                                 if d["resident"] >= 0 else ""))
                if max_foreign is not None and foreign > max_foreign and attempt < tries:
                    log(msg + " -> disturbed, run again", logf)
                    continue
                log(msg, logf)
                break
            out[n].append(d)
    for n, ps in procs.items():
        for p in ps:
            p.p.stdin.close()  # end of input: the reader stops after the repeats so far
            for line in p.finish().splitlines():
                if line.startswith("TRACE"):
                    out.setdefault("#trace", {})[n] = parse_kv(line)["traced_peak_mib"]
    return out


def med(runs, key):
    return statistics.median(x[key] for x in runs)


def med_ratio(a, b, key="pps"):
    """Median over rounds of a[r][key] / b[r][key]."""
    return statistics.median(x[key] / y[key] for x, y in zip(a, b))


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def f1(v):
    return f"{v:.1f}"


def f2(v):
    return f"{v:.2f}"


# ---------------------------------------------------------------- harness

def build_private(d, logf):
    """Clone the committed HEAD, add this tree's benchmark sources, build tools/voxtile and bench_read."""
    src, bld = os.path.join(d, "src"), os.path.join(d, "build")
    head = subprocess.check_output(["git", "-C", ROOT, "rev-parse", "HEAD"], text=True).strip()
    have = None
    if os.path.isdir(os.path.join(src, ".git")):
        have = subprocess.check_output(["git", "-C", src, "rev-parse", "HEAD"], text=True).strip()
    if have != head:
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(bld, ignore_errors=True)
        subprocess.run(["git", "clone", "-q", ROOT, src], check=True)
        subprocess.run(["git", "-C", src, "checkout", "-q", head], check=True)
    for f in ("bench_read.c", "meson.build"):
        a, b = os.path.join(HERE, f), os.path.join(src, "benchmarks", f)
        if open(a, "rb").read() != open(b, "rb").read():
            shutil.copyfile(a, b)
    if not os.path.exists(os.path.join(bld, "build.ninja")):
        subprocess.run(["meson", "setup", bld, src, "--buildtype=debugoptimized", "-Dtests=disabled"],
                       check=True, stdout=logf, stderr=subprocess.STDOUT)
    subprocess.run(["ninja", "-C", bld, "tools/voxtile", "benchmarks/bench_read"], check=True,
                   stdout=logf, stderr=subprocess.STDOUT)
    return bld, head


def machine_info():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    import h5py
    import numcodecs
    import numcodecs.blosc
    import zarr
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram": f"{mem:.1f} GiB",
        "kernel": platform.release(),
        "software": f"Python {platform.python_version()}, numpy {np.__version__}, zarr {zarr.__version__}, "
                    f"numcodecs {numcodecs.__version__} (Blosc {numcodecs.blosc.VERSION_STRING}), "
                    f"h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version})",
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=os.environ.get("BENCH_DIR", "/tmp/vtcmp"),
                    help="folder for the volume, stores, positions and logs (default /tmp/vtcmp)")
    ap.add_argument("--build", default=None,
                    help="existing build folder with tools/voxtile and benchmarks/bench_read "
                         "(default: build the committed HEAD privately in DIR)")
    ap.add_argument("--shape", default="546,820,820", help="Z,Y,X of the volume (default seed size)")
    ap.add_argument("--patches", type=int, default=200)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--pad-size", type=int, default=205)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=7, help="rounds of the warm runs (items 2-4)")
    ap.add_argument("--cold-repeat", type=int, default=3, help="rounds of the cold runs (item 5)")
    ap.add_argument("--convert-repeat", type=int, default=3, help="runs of each voxtile convert (item 7)")
    ap.add_argument("--jobs", type=int, default=2, help="voxtile convert -j (default 2)")
    ap.add_argument("--max-foreign", type=float, default=0.25,
                    help="warm repeats during which other processes used more than this many cores are "
                         "run again (up to 3 tries; default 0.25; the cold runs are never repeated)")
    ap.add_argument("--check", type=int, default=16, help="boxes whose voxels are compared (default 16)")
    ap.add_argument("--reuse", action="store_true", help="reuse peer stores already in DIR (skip their build)")
    ap.add_argument("--keep", action="store_true", help="keep the stores at the end (the volume is always kept)")
    ap.add_argument("--readme", default=None,
                    help="write the results as the section '## Side by side (issue 5)' at the end of this "
                         "file (replacing that section if present)")
    a = ap.parse_args()
    py = sys.executable
    d = a.dir
    os.makedirs(d, exist_ok=True)
    shape = tuple(int(v) for v in a.shape.split(","))
    sz = a.size
    logf = open(os.path.join(d, "compare.log"), "w")
    started = datetime.datetime.now(datetime.timezone.utc)
    command = os.environ.get("COMPARE_COMMAND") or shlex.join([sys.argv[0]] + sys.argv[1:])
    log(f"== {started:%Y-%m-%d %H:%M:%S} UTC benchmarks/compare: {command}", logf)

    if a.build:
        bld = a.build
        head = subprocess.check_output(["git", "-C", ROOT, "rev-parse", "HEAD"], text=True).strip()
        commit_note = f"build folder {bld} (checkout HEAD {head[:7]})"
    else:
        bld, head = build_private(d, logf)
        commit_note = f"{head[:7]} (committed HEAD, built privately in {bld})"
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "benchmarks"],
                           stdout=subprocess.PIPE, text=True).stdout.strip()
    if dirty:
        commit_note += "; benchmarks/ from the working tree"
    voxtile_cli = os.path.join(bld, "tools", "voxtile")
    bench = os.path.join(bld, "benchmarks", "bench_read")
    me = os.path.abspath(__file__)
    mi = machine_info()
    log(f"machine: {mi}; library {commit_note}", logf)

    # ---- 1. volume
    vol = os.path.join(d, f"vol_{'x'.join(map(str, shape))}.npy")
    if os.path.exists(vol):
        log(f"volume {vol} exists, reused (make_volume.py is deterministic)", logf)
    else:
        w, rss, cpu, _ = time_v([py, os.path.join(HERE, "make_volume.py"), vol, "--shape", a.shape], logf)
        log(f"make_volume: {w:.1f} s", logf)
    raw = int(np.prod(shape)) * 4
    warm(vol)

    # ---- 7 (and 1). voxtile convert, defaults and --codec lz4, interleaved
    vxt = os.path.join(d, "vol.vxt")
    vxt_lz4 = os.path.join(d, "vol_lz4.vxt")
    conv = {"defaults": [], "--codec lz4": []}
    for r in range(a.convert_repeat):
        for name, out, extra in (("defaults", vxt, []), ("--codec lz4", vxt_lz4, ["--codec", "lz4"])):
            if os.path.exists(out):
                os.unlink(out)
            warm(vol)
            cmd = [voxtile_cli, "convert", vol, "-o", out, "-j", str(a.jobs), "-q"] + extra
            w, rss, cpu, _ = time_v(cmd, logf)
            conv[name].append((w, rss, cpu))
            log(f"  [convert {r + 1}/{a.convert_repeat}] {name}: {w:.2f} s, peak RSS {rss:.1f} MiB, CPU {cpu}",
                logf)
    lz4_size = store_bytes(vxt_lz4)
    os.unlink(vxt_lz4)

    # ---- 1. peer stores
    builds = {}
    for name, (kind, fn, _) in PEERS.items():
        if fn is None:
            continue
        path = os.path.join(d, fn)
        if a.reuse and os.path.exists(path):
            log(f"{name}: reusing {path}", logf)
            builds[name] = None
            continue
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.unlink(path)
        warm(vol)
        w, rss, cpu, out = time_v([py, me, "_build", name, vol, path], logf)
        inner = parse_kv(next(ln for ln in out.splitlines() if ln.startswith("BUILD")))
        builds[name] = (w, rss, cpu, inner["wall_s"], inner["peak_anon_mib"])
        log(f"  build {name}: {w:.1f} s (in Python {inner['wall_s']:.1f} s), peak RSS {rss:.0f} MiB, CPU {cpu}",
            logf)
    paths = {"voxtile": vxt}
    for name, (kind, fn, _) in PEERS.items():
        paths[name] = vol if fn is None else os.path.join(d, fn)

    # ---- positions
    pos = positions_inside(shape, sz, a.patches, a.seed)
    pos_f = os.path.join(d, f"pos{sz}.txt")
    write_positions(pos_f, pos, f"{a.patches} boxes of {sz}^3, splitmix64 seed {a.seed} (bench_read's sequence)")
    halves = []
    for h, part in enumerate((pos[:len(pos) // 2], pos[len(pos) // 2:])):
        f = os.path.join(d, f"pos{sz}_half{h}.txt")
        write_positions(f, part, f"half {h} of {pos_f}")
        halves.append(f)
    psz = a.pad_size
    ppos = positions_outside(shape, psz, a.patches, a.seed)
    ppos_f = os.path.join(d, f"pos{psz}_outside.txt")
    write_positions(ppos_f, ppos, f"{a.patches} boxes of {psz}^3 leaving the volume, numpy seed {a.seed}")
    nsides = [sum((v < 0) + (v + psz > s) for v, s in zip(p, shape)) for p in ppos]
    out_frac = [1 - np.prod([(min(s, v + psz) - max(0, v)) / psz for v, s in zip(p, shape)]) for p in ppos]

    def peer_cmd(name, posfile, size, extra=()):
        kind = PEERS[name][0]
        return [py, me, "_read", kind, paths[name], "--positions", posfile, "--size", str(size),
                "--sync"] + list(extra)

    def vt_cmd(posfile, size, extra=()):
        return [bench, vxt, "--positions", posfile, "--size", str(size), "--sync"] + list(extra)

    peers = [n for n in PEERS]

    # ---- 2. check voxels on a subset
    k = max(1, min(a.check, len(pos)))
    idx = sorted(set(int(v) for v in np.linspace(0, len(pos) - 1, k)))
    chk_f = os.path.join(d, f"pos{sz}_check.txt")
    write_positions(chk_f, [pos[i] for i in idx], "boxes checked")
    dump = os.path.join(d, "dump.f16")
    subprocess.run([bench, vxt, "--positions", chk_f, "--size", str(sz), "--repeat", "1", "--dump", dump],
                   check=True, stdout=logf, stderr=subprocess.STDOUT)
    ref = np.fromfile(dump, np.uint16).reshape(len(idx), sz, sz, sz)
    checks = []
    for name in peers:
        r = PeerReader(PEERS[name][0], paths[name])
        r.open()
        bad = 0
        for j, i in enumerate(idx):
            bad += int((r.read(pos[i], sz).view(np.uint16) != ref[j]).sum())
        r.close()
        checks.append((name, len(idx), ref.size, bad))
        log(f"  check {name}: {bad} of {ref.size} voxels differ from voxtile (float16 bits)", logf)
    del ref
    os.unlink(dump)
    gc.collect()

    # ---- 2 + 3. warm, interleaved: one reader and two readers
    cfg = {"voxtile": [vt_cmd(pos_f, sz, ["--repeat", str(a.repeat * 3)])]}
    for n in peers:
        cfg[n] = [peer_cmd(n, pos_f, sz, ["--repeat", str(a.repeat * 3), "--trace"])]
    cfg["voxtile 2 threads"] = [vt_cmd(pos_f, sz, ["--repeat", str(a.repeat * 3), "--threads", "2"])]
    cfg["voxtile 2 processes"] = [vt_cmd(h, sz, ["--repeat", str(a.repeat * 3)]) for h in halves]
    for n in peers:
        cfg[n + " 2 processes"] = [peer_cmd(n, h, sz, ["--repeat", str(a.repeat * 3)]) for h in halves]
    log(f"items 2+3: {len(cfg)} configurations x {a.repeat} rounds, warm", logf)
    warm_res = interleaved(cfg, a.repeat, logf, "warm", a.max_foreign)

    # ---- 4. 205^3 boxes leaving the volume, reflect padding
    chk4 = list(range(min(8, len(ppos))))
    chk4_f = os.path.join(d, f"pos{psz}_check.txt")
    write_positions(chk4_f, [ppos[i] for i in chk4], "boxes checked")
    subprocess.run([bench, vxt, "--positions", chk4_f, "--size", str(psz), "--repeat", "1", "--pad", "reflect",
                    "--dump", dump], check=True, stdout=logf, stderr=subprocess.STDOUT)
    ref = np.fromfile(dump, np.uint16).reshape(len(chk4), psz, psz, psz)
    r = PeerReader("npy", vol)
    r.open()
    bad_np = bad_oracle = 0

    def reflect_idx(i, n):
        i = np.abs(i)
        return np.where(i >= n, 2 * (n - 1) - i, i)

    for j, i in enumerate(chk4):
        bad_np += int((r.read(ppos[i], psz, "reflect").view(np.uint16) != ref[j]).sum())
        ix = [reflect_idx(np.arange(v, v + psz), n) for v, n in zip(ppos[i], shape)]
        bad_oracle += int((r.arr[0][np.ix_(*ix)].astype(np.float16).view(np.uint16) != ref[j]).sum())
    r.close()
    pad_check = (len(chk4), ref.size, bad_np, bad_oracle)
    log(f"  check pad: {bad_np} voxels differ from memmap+np.pad, {bad_oracle} from the whole-volume "
        f"reflect oracle, of {ref.size}", logf)
    del ref
    os.unlink(dump)
    gc.collect()
    cfg4 = {"voxtile": [vt_cmd(ppos_f, psz, ["--repeat", str(a.repeat * 3), "--pad", "reflect"])],
            "numpy-memmap": [peer_cmd("numpy-memmap", ppos_f, psz,
                                      ["--repeat", str(a.repeat * 3), "--pad", "reflect", "--trace"])]}
    log(f"item 4: {psz}^3 boxes, reflect padding, {a.repeat} rounds", logf)
    pad_res = interleaved(cfg4, a.repeat, logf, "pad", a.max_foreign)

    # ---- 5. cold
    cfg5 = {"voxtile": [vt_cmd(pos_f, sz, ["--repeat", str(a.cold_repeat), "--cold"])]}
    for n in peers:
        cfg5[n] = [peer_cmd(n, pos_f, sz, ["--repeat", str(a.cold_repeat), "--cold"])]
    log(f"item 5: cold, {a.cold_repeat} rounds", logf)
    cold_res = interleaved(cfg5, a.cold_repeat, logf, "cold")

    ended = datetime.datetime.now(datetime.timezone.utc)

    # ---------------------------------------------------------------- tables
    md = []
    md.append(f"Run {started:%Y-%m-%d %H:%M}–{ended:%H:%M} UTC; machine: {mi['nproc']} cores (`nproc`), "
              f"CPU \"{mi['cpu']}\", {mi['ram']} RAM, kernel {mi['kernel']}; {mi['software']}. "
              f"Library: commit {commit_note}.")
    md.append("")
    md.append(f"Command: `{command}`")
    md.append("")
    allw = [x for res in (warm_res, pad_res) for k, v in res.items() if not k.startswith("#") for x in v]
    allc = [x for k, v in cold_res.items() if not k.startswith("#") for x in v]
    rerun = sum(x["tries"] - 1 for x in allw)
    still = sum(1 for x in allw if x["foreign"] > a.max_foreign)
    md.append(f"Volume: `make_volume.py` seed volume, float32 (1, {', '.join(map(str, shape))}), "
              f"{raw / 2**30:.2f} GiB. {a.patches} boxes; warm runs: median of {a.repeat} interleaved rounds, "
              f"cold: {a.cold_repeat}; the `voxtile x` columns are medians of the per-round ratios. "
              f"Other work on the machine (CPU time of other processes and steal during a repeat, from "
              f"/proc/stat): median {statistics.median(x['foreign'] for x in allw):.2f} cores during the "
              f"warm repeats, {statistics.median(x['foreign'] for x in allc):.2f} during the cold ones; "
              f"{rerun} warm repeats were run again because other work took more than {a.max_foreign} "
              f"cores ({still} still did after 3 tries and were kept).")
    md.append("")

    # item 1
    rows = []
    dconv = conv["defaults"]
    rows.append(["voxtile (lz4hc 4, tile 16³, shuffle auto)", f1(store_bytes(vxt) / 2**20),
                 f"{raw / store_bytes(vxt):.3f}",
                 f"{statistics.median(x[0] for x in dconv):.2f}",
                 f1(statistics.median(x[1] for x in dconv)), f"voxtile convert -j {a.jobs}"])
    rows.append(["voxtile `--codec lz4` (tile 16³, shuffle auto)", f1(lz4_size / 2**20), f"{raw / lz4_size:.3f}",
                 f"{statistics.median(x[0] for x in conv['--codec lz4']):.2f}",
                 f1(statistics.median(x[1] for x in conv['--codec lz4'])), f"voxtile convert -j {a.jobs} --codec lz4"])
    for name, (kind, fn, desc) in PEERS.items():
        b = builds.get(name)
        size = store_bytes(paths[name])
        if fn is None:
            rows.append([f"{name}: {desc}", f1(size / 2**20), f"{raw / size:.3f}", "–", "–", "make_volume.py"])
        elif b is None:
            rows.append([f"{name}: {desc}", f1(size / 2**20), f"{raw / size:.3f}", "(reused)", "", ""])
        else:
            threads = "Blosc 2 threads" if kind == "zarr" else "1 thread (HDF5 filters are serial)"
            rows.append([f"{name}: {desc}", f1(size / 2**20), f"{raw / size:.3f}",
                         f"{b[0]:.2f} ({b[3]:.2f} in Python)", f"{b[1]:.0f} (anon {b[4]:.0f})",
                         f"compare.py _build, slabs of whole chunks from the memmap, {threads}"])
    md.append("### 1. Stores: size, compression ratio, build time")
    md.append("")
    md.append(table(["store", "size MiB", "ratio (raw / bytes on disk)", "build wall s", "build peak RSS MiB", "how"],
                    rows))
    md.append("")
    md.append(f"voxtile convert: median of {a.convert_repeat}. Peer builds: one run each, wall time of the "
              f"process (Python start and imports included; in parentheses the time of the write loop), "
              f"peak RSS from `/usr/bin/time -v`, which includes the file pages of the source memmap "
              f"(peak RssAnon in parentheses).")
    md.append("")

    # item 2
    vt = warm_res["voxtile"]
    rows = []
    for n in ["voxtile"] + peers:
        rr = warm_res[n]
        rows.append([n, f1(med(rr, "pps")), "1.00" if n == "voxtile" else f"**{med_ratio(vt, rr):.2f}**",
                     f2(med(rr, "p50")), f2(med(rr, "p99"))])
    md.append(f"### 2. {a.patches} random {sz}³ boxes → float16, one reader, warm cache")
    md.append("")
    md.append(table(["reader", "patches/s", "voxtile x", "p50 ms", "p99 ms"], rows))
    md.append("")
    md.append("Voxels compared on a subset of the boxes (float16 bit patterns, voxtile's `vt_read` output "
              "against each peer's `arr[box].astype(np.float16)`):")
    md.append("")
    md.append(table(["peer", "boxes", "voxels", "voxels differing"],
                    [[n, b, v, bad] for n, b, v, bad in checks]))
    md.append("")

    # item 3
    rows = []
    one = {n: warm_res[n] for n in ["voxtile"] + peers}
    for n, base in [("voxtile 2 threads", "voxtile"), ("voxtile 2 processes", "voxtile")] + \
            [(p + " 2 processes", p) for p in peers]:
        rr = warm_res[n]
        vt2 = warm_res["voxtile 2 threads"]
        rows.append([n, f1(med(rr, "pps")), f"**{med_ratio(rr, one[base]):.2f}**",
                     "–" if n.startswith("voxtile") else f"{med_ratio(vt2, rr):.2f}",
                     "–" if n.startswith("voxtile") else f"{med_ratio(warm_res['voxtile 2 processes'], rr):.2f}",
                     f2(med(rr, "p50")), f2(med(rr, "p99"))])
    md.append("### 3. Two readers at once (warm)")
    md.append("")
    md.append(table(["readers", "patches/s (summed)", "x the same reader alone", "voxtile 2 threads x",
                     "voxtile 2 processes x", "p50 ms", "p99 ms"], rows))
    md.append("")
    md.append("Two processes read one half of the list each, released at the same moment; the rate is all "
              "patches over the span from the first start to the last end (CLOCK_MONOTONIC). p50 is the mean "
              "of the two processes' p50, p99 the larger p99. \"x the same reader alone\" is against the "
              "one-reader runs of table 2 in the same rounds (target for voxtile: >= 1.8).")
    md.append("")

    # item 4
    vp, npp = pad_res["voxtile"], pad_res["numpy-memmap"]
    md.append(f"### 4. {a.patches} boxes of {psz}³ leaving the volume, reflect padding → float16 (warm, one reader)")
    md.append("")
    md.append(table(["reader", "patches/s", "voxtile x", "p50 ms", "p99 ms"], [
        ["voxtile `vt_read` pad reflect", f1(med(vp, "pps")), "1.00", f2(med(vp, "p50")), f2(med(vp, "p99"))],
        ["numpy memmap crop + `np.pad(mode='reflect')` + astype", f1(med(npp, "pps")),
         f"**{med_ratio(vp, npp):.2f}**", f2(med(npp, "p50")), f2(med(npp, "p99"))]]))
    md.append("")
    sides = {s: nsides.count(s) for s in sorted(set(nsides))}
    md.append(f"Starts uniform in [−{psz // 2}, shape − {psz} + {psz // 2}] per axis, redrawn until the box "
              f"passes a border: boxes leaving on 1/2/3 axes: "
              f"{'/'.join(str(sides.get(s, 0)) for s in (1, 2, 3))}; outside part of the box median "
              f"{100 * statistics.median(out_frac):.0f} % (max {100 * max(out_frac):.0f} %). Every pad width is "
              f"smaller than the in-volume part, so reflecting the crop is reflecting the volume. Checked on "
              f"{pad_check[0]} boxes ({pad_check[1]} voxels): {pad_check[2]} differ from memmap + np.pad, "
              f"{pad_check[3]} from a whole-volume reflect oracle (index mirroring on the memmap).")
    md.append("")

    # item 5
    rows = []
    vc = cold_res["voxtile"]
    for n in ["voxtile"] + peers:
        rr = cold_res[n]
        rows.append([n, f1(med(rr, "pps")), "1.00" if n == "voxtile" else f"**{med_ratio(vc, rr):.2f}**",
                     f2(med(rr, "p50")), f2(med(rr, "p99")), f1(max(x["resident"] for x in rr))])
    md.append("### 5. Cold cache: the boxes of table 2, page cache evicted before each repeat (one reader)")
    md.append("")
    md.append(table(["reader", "patches/s", "voxtile x", "p50 ms", "p99 ms", "% of the files resident after eviction (max)"], rows))
    md.append("")
    md.append("Before each repeat the reader closes its store (drops the memmap, closes the h5py file), "
              "the files are fsync'ed and evicted with `posix_fadvise(DONTNEED)`, and reopened; residency "
              "is measured with mincore() after the eviction (last column).")
    md.append("")

    # item 6
    rows = []
    for n in ["voxtile"] + peers:
        w = warm_res[n]
        c = cold_res[n]
        p4 = pad_res.get(n)
        tw = warm_res.get("#trace", {}).get(n)
        tp = pad_res.get("#trace", {}).get(n)
        rows.append([n, f1(med(w, "base_anon")), f1(max(x["peak_anon"] for x in w)),
                     f1(max(x["peak_anon"] for x in c)),
                     f1(max(x["peak_anon"] for x in p4)) if p4 else "–",
                     f1(max(x["peak_anon"] for x in w) - med(w, "base_anon")),
                     "–" if tw is None else f1(tw), "–" if tp is None else f1(tp)])
    md.append("### 6. Peak anonymous memory of one reader process (RssAnon high-water, MiB)")
    md.append("")
    md.append(table(["reader", "after open, before reading", f"peak, {sz}³ warm", f"peak, {sz}³ cold",
                     f"peak, {psz}³ reflect", f"growth while reading ({sz}³ warm)",
                     f"tracemalloc peak in one read, {sz}³", f"tracemalloc peak in one read, {psz}³ reflect"],
                    rows))
    md.append("")
    md.append("RssAnon is sampled from /proc/self/status after every patch, while the patch is still held "
              f"(voxtile: bench_read's output buffer, {sz}³ float16 = {sz ** 3 * 2 / 2**20:.1f} MiB, {psz}³ = "
              f"{psz ** 3 * 2 / 2**20:.1f} MiB; the library's own scratch is per thread and persistent, so "
              "the sampling sees it). The Python figures include the interpreter and the imported modules "
              "(numpy, zarr/numcodecs, h5py). Temporaries that a Python read allocates and frees inside one "
              "call (the float32 box before astype, zarr's decoded chunks, np.pad's float32 box) are returned "
              "to the system before the sample when large, so the sampling misses them; the last two columns "
              "show them: after the timed repeats each peer makes one more pass under tracemalloc and "
              "reports the largest Python/numpy heap growth within one read, the returned float16 patch "
              "included (C allocations inside Blosc or "
              "HDF5 are not traced). The store's file pages (page cache, shared) are not anonymous memory "
              "and are not counted.")
    md.append("")

    # item 7
    rows = []
    for name, rr in conv.items():
        rows.append([f"`voxtile convert VOL.npy -o VOL.vxt -j {a.jobs}" + (" --codec lz4`" if "lz4" in name else "`"),
                     f2(statistics.median(x[0] for x in rr)),
                     " / ".join(f2(x[0]) for x in rr),
                     f1(statistics.median(x[1] for x in rr)),
                     statistics.median(int(x[2].rstrip('%')) for x in rr),
                     "<= 4 s" if "lz4" in name else "<= 10 s"])
    md.append(f"### 7. Conversion .npy → voxtile with {a.jobs} threads")
    md.append("")
    md.append(table(["command", "wall s (median)", "all runs s", "peak RSS MiB", "CPU %", "target"], rows))
    md.append("")
    md.append("`/usr/bin/time -v`; the .npy is read once right before each run, so it is in the page cache; "
              "runs of the two commands alternate.")
    md.append("")
    text = "\n".join(md)
    print(text)
    with open(os.path.join(d, "compare_results.md"), "w") as f:
        f.write(text + "\n")
    json.dump({"warm": warm_res, "pad": pad_res, "cold": cold_res, "convert": conv, "builds": builds,
               "checks": checks, "pad_check": pad_check}, open(os.path.join(d, "compare_results.json"), "w"),
              indent=1)
    if a.readme:
        cur = open(a.readme).read() if os.path.exists(a.readme) else ""
        head_md = "## Side by side (issue 5)"
        i = cur.find("\n" + head_md + "\n")
        if i >= 0:
            cur = cur[:i + 1]
        if cur and not cur.endswith("\n\n"):
            cur = cur.rstrip("\n") + "\n\n"
        with open(a.readme, "w") as f:
            f.write(cur + head_md + "\n\n" + METHOD + "\n" + text + "\n")
        log(f"wrote the section to {a.readme}", logf)
    if not a.keep:
        for name, (kind, fn, _) in PEERS.items():
            if fn is not None:
                p = paths[name]
                shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
        os.unlink(vxt)
    log(f"log: {logf.name}; results: {os.path.join(d, 'compare_results.md')}", logf)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_read":
        cmd_read(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "_build":
        cmd_build(sys.argv[2:])
    else:
        main()
