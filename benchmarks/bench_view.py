#!/usr/bin/python3
"""Memory of `voxtile view` serving random slices (a benchmark line, not a timed test).

Starts `voxtile view STORE --port 0`, asks for N random slices of the image (uniform axis, uniform
index; level 0, and with --levels-too also the coarse levels the page asks for first), from one
client or several at once, and samples the server's /proc/PID/status after every answer:
RssAnon (anonymous memory: heap, thread stacks touched, slice buffers) and RssFile (pages of the
store's mapping, shared with the page cache and given back under pressure). Each answer's size is
checked against the slice's shape. Exit status 1 when peak RssAnon is over --limit (64 MiB).

usage: bench_view.py STORE [--slices 200] [--clients 1] [--seed 1] [--limit-mib 64] [--voxtile PATH]

The seed-size store (benchmarks/README.md):
    /usr/bin/python3 benchmarks/make_volume.py /tmp/vtbench/VOL.npy
    build/tools/voxtile convert /tmp/vtbench/VOL.npy -o /tmp/vtbench/VOL.vxt --levels 2 -j 2
    /usr/bin/python3 benchmarks/bench_view.py /tmp/vtbench/VOL.vxt
"""
import argparse
import concurrent.futures
import http.client
import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("RssAnon", "RssFile", "VmHWM", "VmRSS", "Threads"):
                out[k] = int(v.split()[0])  # kB (Threads: a count)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("store")
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--levels-too", action="store_true", help="also ask for the coarse levels, as the page does")
    ap.add_argument("--limit-mib", type=float, default=64)
    ap.add_argument("--voxtile", default=os.path.join(ROOT, "build", "tools", "voxtile"))
    a = ap.parse_args()

    t0 = time.perf_counter()
    proc = subprocess.Popen([a.voxtile, "view", a.store, "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        if not select.select([proc.stdout], [], [], 60)[0]:
            sys.exit("bench_view: the server printed nothing")
        line = proc.stdout.readline()
        started = time.perf_counter() - t0
        port = int(re.search(r"127\.0\.0\.1:(\d+)/", line).group(1))
        at_start = status(proc.pid)

        def get(conn, target):
            conn.request("GET", target)
            r = conn.getresponse()
            return r.status, r.getheader("X-Voxtile-Shape"), r.read()

        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        info = json.loads(get(c, "/api/array?store=0&array=image")[2])
        c.close()
        shape = info["shape"][-3:]
        esize = {"uint8": 1, "int8": 1, "uint16": 2, "int16": 2, "float16": 2, "bfloat16": 2, "uint32": 4,
                 "int32": 4, "float32": 4, "float64": 8}[info["dtype"]]
        levels = info["levels"] if a.levels_too else info["levels"][:1]
        rng = random.Random(a.seed)
        jobs = []
        for _ in range(a.slices):
            axis = rng.randrange(3)
            index = rng.randrange(shape[axis])
            for lv in levels:
                n = lv["shape"][-3 + axis]
                k = min(n - 1, index * n // shape[axis])
                jobs.append((lv["name"], "zyx"[axis], k, lv["shape"][-3:]))

        peak = dict(at_start)
        lock = threading.Lock()
        times, sizes = [], []

        def client(part):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            for name, axis, k, lshape in part:
                t = time.perf_counter()
                st, shp, body = get(conn, f"/api/slice?store=0&array={name.replace('@', '%40')}&axis={axis}&index={k}")
                dt = time.perf_counter() - t
                rows, cols = [lshape[i] for i in range(3) if "zyx"[i] != axis]
                if st != 200 or shp != f"{rows},{cols}" or len(body) != rows * cols * esize:
                    raise SystemExit(f"bench_view: {name} {axis} {k}: {st} {shp} {len(body)} bytes")
                s = status(proc.pid)
                with lock:
                    times.append(dt)
                    sizes.append(len(body))
                    for key, v in s.items():
                        peak[key] = max(peak.get(key, 0), v)
            conn.close()

        parts = [jobs[i::a.clients] for i in range(a.clients)]
        t = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(a.clients) as ex:
            list(ex.map(client, parts))
        wall = time.perf_counter() - t
        time.sleep(2.5)  # the server lets go of the stores' pages after a second without slices
        idle = status(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(60)
    times.sort()
    mib = lambda kb: kb / 1024  # noqa: E731
    print(f"store {a.store}: {os.path.getsize(a.store) / 2**30:.2f} GiB, image {info['dtype']} {info['shape']}, "
          f"levels {[lv['name'] for lv in levels]}")
    print(f"server ready in {started:.2f} s; at start RssAnon {mib(at_start['RssAnon']):.1f} MiB, "
          f"RssFile {mib(at_start['RssFile']):.1f} MiB, {at_start['Threads']} threads")
    print(f"{len(jobs)} slices ({a.slices} random, {a.clients} client{'s' if a.clients > 1 else ''}), "
          f"{sum(sizes) / 2**20:.0f} MiB served in {wall:.2f} s; per slice p50 {times[len(times) // 2] * 1e3:.1f} ms, "
          f"p99 {times[min(len(times) - 1, int(0.99 * len(times)))] * 1e3:.1f} ms")
    print(f"peak RssAnon {mib(peak['RssAnon']):.1f} MiB, peak RssFile {mib(peak['RssFile']):.1f} MiB, "
          f"VmHWM {mib(peak['VmHWM']):.1f} MiB; idle 2.5 s later: RssAnon {mib(idle['RssAnon']):.1f} MiB, "
          f"RssFile {mib(idle['RssFile']):.1f} MiB; server exit status {rc}")
    ok = mib(peak["RssAnon"]) < a.limit_mib and rc == 0
    print(f"{'PASS' if ok else 'FAIL'}: peak RssAnon {mib(peak['RssAnon']):.1f} MiB "
          f"{'<' if ok else '>='} {a.limit_mib:g} MiB")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
