"""Crash safety of publishing a store: the CLI converter killed with SIGKILL.

What voxtile.h (vt_writer_open) and docs/format.md (6. Writing and publishing)
promise, checked here on a conversion of about 1-2 s (`voxtile convert
src.npy -o out.vxt -j 2`, a 1 x Z x 512 x 512 float32 volume of noise plus a
gradient, Z (64..256) adapted so that one conversion takes ~1-2 s):

* A process killed while writing never leaves a partial store at the output
  path: after any kill it holds nothing (or, when a store was there before,
  that old store, byte for byte) or the complete new store, which `voxtile
  verify` accepts and whose voxels equal the source (`voxtile extract`).
* With O_TMPFILE the output folder holds nothing else than the source,
  except when the kill falls between naming the finished file (linkat) and
  renaming it: then one complete hidden `.out.vxt.tmp.XXXXXX` may be left.

Kills:
1. At >= 50 moments drawn uniformly over the conversion time, measured just
   before (VT_CRASH_KILLS, default 50), into an empty folder and over an old
   store. A conversion that finishes before its moment is checked (the new
   store) and the kill drawn again, so that every kill hits a running process.
2. Exactly at the publication steps, with strace's fault injection
   (`strace -f -e inject=SYSCALL:signal=SIGKILL:when=N`): the signal is
   injected at syscall entry, and the kernel skips a syscall whose entry
   stop leaves a fatal signal pending, so the process dies right *before*
   the syscall: the first pwrite (provisional header), the fsync of the
   file, the linkat, the rename, the fsync of the folder, and exit_group
   (after everything). strace's call counters are per thread; the strace log
   is checked to show that the intended call was the one killed.
3. The same in the fallback mode where /proc/self/fd is not accessible (a
   named hidden temporary from the start): run in a private mount namespace
   with a tmpfs over /proc (root and unshare needed, else skipped). There a
   kill leaves the hidden temporary behind; it must be either rejected by
   `voxtile verify` (incomplete) or a complete store, never the output.
4. A reader (the Python binding, which maps the file through the C library)
   that has the old store open while a conversion replaces it keeps reading
   the old data; a new open sees the new store.

Run: VOXTILE=build/tools/voxtile /usr/bin/python3 tests/test_crash.py
Environment: VT_CRASH_KILLS (random kills per scenario, default 50),
VT_CRASH_SEED (seed of the kill moments; printed), VT_CRASH_FALLBACK_KILLS
(random kills in the fallback mode, default 20).
"""
import collections
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cliutil import VOXTILE, run  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
KILLS = int(os.environ.get("VT_CRASH_KILLS", "50"))
FALLBACK_KILLS = int(os.environ.get("VT_CRASH_FALLBACK_KILLS", "20"))
SEED = int(os.environ.get("VT_CRASH_SEED", str(int(time.time()) % 1000000)))
STRACE = shutil.which("strace")
if STRACE and subprocess.run([STRACE, "-f", "-o", os.devnull, "true"], capture_output=True).returncode != 0:
    STRACE = None  # ptrace not permitted here
NY = NX = 512
TMP_RE = re.compile(r"^\.out\.vxt\.tmp\.[0-9a-f]{6}$")
TRACED = "openat,pwrite64,fsync,linkat,rename,renameat,renameat2,unlink,exit_group"

# outcomes, per scenario and window, printed at the end
TALLY = collections.defaultdict(collections.Counter)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def make_source(path, nz, seed=1):
    """1 x nz x 512 x 512 float32: noise plus a gradient, written slab by slab."""
    rng = np.random.default_rng(seed)
    a = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(1, nz, NY, NX))
    y = np.arange(NY, dtype=np.float32)[:, None] * 0.01
    x = np.arange(NX, dtype=np.float32)[None, :] * 0.02
    for z0 in range(0, nz, 16):
        z1 = min(nz, z0 + 16)
        slab = rng.standard_normal((z1 - z0, NY, NX), dtype=np.float32)
        slab += (np.arange(z0, z1, dtype=np.float32) * 0.5)[:, None, None] + y + x
        a[0, z0:z1] = slab
    a.flush()
    del a


def lib_dir_of(exe):
    """Folder of the libvoxtile the CLI loads (ld.so cannot expand $ORIGIN without /proc)."""
    p = subprocess.run(["ldd", exe], capture_output=True, text=True)
    m = re.search(r"libvoxtile\.so\S*\s+=>\s+(\S+)", p.stdout)
    return os.path.dirname(m.group(1)) if m and m.group(1) != "not" else None


class CrashTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vt-crash-")
        try:
            cls.make_fixture()
        except BaseException:
            shutil.rmtree(cls.tmp)
            raise

    @classmethod
    def make_fixture(cls):
        cls.dir = os.path.join(cls.tmp, "work")  # the output folder: the source and the output only
        cls.aux = os.path.join(cls.tmp, "aux")  # strace logs, extracts, the old store's master copy
        os.mkdir(cls.dir)
        os.mkdir(cls.aux)
        cls.src = os.path.join(cls.dir, "src.npy")
        cls.out = os.path.join(cls.dir, "out.vxt")
        nz = 64
        make_source(cls.src, nz)
        t = cls.measure()
        for _ in range(3):  # a fast machine: more slices (up to 256), for a conversion of ~1.5 s
            if t >= 1.0 or nz >= 256:
                break
            nz = min(256, -(-int(nz * min(4.0, 1.5 / t)) // 16) * 16)
            make_source(cls.src, nz)
            t = cls.measure()
        cls.nz, cls.T = nz, t
        cls.src_arr = np.load(cls.src, mmap_mode="r")
        # the old store: other data, other shape
        old_src = os.path.join(cls.aux, "old.npy")
        old = np.random.default_rng(5).normal(0, 100, (1, 20, 64, 48)).astype(np.float32)
        np.save(old_src, old)
        cls.old_arr = old
        cls.old_store = os.path.join(cls.aux, "old.vxt")
        run("convert", old_src, "-o", cls.old_store, "-q")
        with open(cls.old_store, "rb") as f:
            cls.old_bytes = f.read()
        cls.rng = random.Random(SEED)
        log(f"\ntest_crash: source 1x{nz}x{NY}x{NX} float32, conversion {t:.2f} s (-j 2), seed {SEED}")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)
        log("\nkill outcomes (scenario / window: outcome x count):")
        for key in sorted(TALLY):
            log(f"  {key}: " + ", ".join(f"{k} x{v}" for k, v in sorted(TALLY[key].items())))

    @classmethod
    def convert_cmd(cls):
        return [VOXTILE, "convert", cls.src, "-o", cls.out, "-j", "2", "-q"]

    @classmethod
    def measure(cls):
        times = []
        for _ in range(3):
            if os.path.exists(cls.out):
                os.unlink(cls.out)
            t0 = time.monotonic()
            subprocess.run(cls.convert_cmd(), check=True)
            times.append(time.monotonic() - t0)
        os.unlink(cls.out)
        return statistics.median(times)

    # ---- state before and after a kill ----------------------------------------

    def prepare(self, replace):
        for name in os.listdir(self.dir):
            if name != "src.npy":
                os.unlink(os.path.join(self.dir, name))
        if replace:
            with open(self.out, "wb") as f:
                f.write(self.old_bytes)

    def is_new_store(self, path):
        """verify accepts it and its voxels equal the source."""
        p = run("verify", path, ok=False)
        if p.returncode != 0:
            return False, f"verify: {p.stdout.strip()} {p.stderr.strip()}"
        box = os.path.join(self.aux, "box.npy")
        try:
            run("extract", path, "--start", "0,0,0,0", "--size", f"1,{self.nz},{NY},{NX}", "-o", box)
            got = np.load(box, mmap_mode="r")
            same = got.shape == self.src_arr.shape and got.dtype == self.src_arr.dtype and np.array_equal(
                got, self.src_arr)
            del got
        finally:
            if os.path.exists(box):
                os.unlink(box)
        return same, "voxels differ from the source"

    def path_state(self, replace, what):
        """The folder after a kill: at most one hidden temporary beside the source, and at
        out.vxt nothing ('none', and only when there was no old store), the old store byte for
        byte ('old') or the complete new one ('new'). Returns the state and the temporaries."""
        names = sorted(os.listdir(self.dir))
        others = [n for n in names if n not in ("src.npy", "out.vxt")]
        for n in others:
            self.assertRegex(n, TMP_RE, f"{what}: unexpected file {n} in the output folder: {names}")
        self.assertLessEqual(len(others), 1, f"{what}: several temporaries: {names}")
        if "out.vxt" in names:
            with open(self.out, "rb") as f:
                data = f.read()
            if replace and data == self.old_bytes:
                state = "old"
            else:
                ok, why = self.is_new_store(self.out)
                self.assertTrue(ok, f"{what}: out.vxt is neither the old store nor the complete new one "
                                    f"({len(data)} bytes): {why}")
                state = "new"
        else:
            self.assertFalse(replace, f"{what}: the old store at out.vxt disappeared: {names}")
            state = "none"
        return state, others

    def outcome(self, replace, what):
        """Check the folder after a kill against the contract; returns a short name of the state:
        'none' / 'old' (nothing published), 'new' (the complete new store), plus '+tmp' when a
        hidden temporary was left (then complete, and only between linkat and rename)."""
        state, others = self.path_state(replace, what)
        if others:
            # the linkat..rename window: nothing published yet, the hidden name holds the complete file
            self.assertNotEqual(state, "new", f"{what}: a temporary {others[0]} next to the published store")
            ok, why = self.is_new_store(os.path.join(self.dir, others[0]))
            self.assertTrue(ok, f"{what}: leftover {others[0]} is not a complete store: {why}")
            state += "+tmp"
        return state

    # ---- 1. random kills -------------------------------------------------------

    def random_kills(self, n, replace, scen, wrap, check):
        """n kills, each at a moment drawn uniformly over the conversion time, measured just
        before (the machine's load changes). A conversion that finishes before its moment
        (it ran faster than measured) is checked, counted apart, and the kill is drawn again."""
        t = self.measure()
        misses = 0
        for i in range(n):
            while True:
                self.prepare(replace)
                delay = self.rng.uniform(0, t)
                cmd = wrap(self.convert_cmd()) if wrap else self.convert_cmd()
                p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                time.sleep(delay)
                finished = p.poll() is not None
                if not finished:
                    p.kill()
                _, err = p.communicate()
                what = f"{scen} kill {i} at {delay:.3f} s of {t:.2f} s (seed {SEED})"
                if p.returncode != 0:  # 0: it finished between the poll and the kill
                    break
                self.assertEqual(p.returncode, 0, f"{what}: converter failed on its own: {err}")
                self.assertEqual(check(replace, what), "new", what)
                TALLY[scen + " / random"]["finished before the kill (drawn again)"] += 1
                misses += 1
                self.assertLess(misses, 2 * n + 10, f"{scen}: conversions keep finishing before the kill")
            self.assertEqual(p.returncode, -signal.SIGKILL, f"{what}: {err}")
            TALLY[scen + " / random"][check(replace, what)] += 1

    def test_random_kills_fresh(self):
        self.random_kills(KILLS, False, "tmpfile/fresh", None, self.outcome)

    def test_random_kills_replace(self):
        self.random_kills(KILLS, True, "tmpfile/replace", None, self.outcome)

    # ---- 2. kills at the publication steps --------------------------------------

    # (name, inject spec, regex of the killed call in strace's log, regexes the log must also match
    #  (calls done before), regexes it must not match, expected state in an empty folder, over an old store)
    WINDOWS = [
        ("first pwrite (provisional header)", "pwrite64:signal=SIGKILL:when=1",
         r'pwrite64\(\d+, "VOXTILE.*, 4096, 0\) = \?', [], [r"fsync\("], "none", "old"),
        ("fsync of the file", "fsync:signal=SIGKILL:when=1", r"fsync\(\d+\) += \?",
         [r'pwrite64\(\d+, "VOXTILE.*, 4096, 0\) = 4096'], [r"linkat\(", r"rename(at2?)?\("], "none", "old"),
        ("linkat", "linkat:signal=SIGKILL:when=1", r"linkat\(.*/proc/self/fd/\d+.*\) = \?",
         [r"fsync\(\d+\) += 0"], [r"rename(at2?)?\("], "none", "old"),
        ("rename", "rename,renameat,renameat2:signal=SIGKILL:when=1",
         r'rename(at2?)?\(.*\.out\.vxt\.tmp\.[0-9a-f]{6}", .*out\.vxt"\S*\) = \?', [r"fsync\(\d+\) += 0"], [],
         "none+tmp", "old+tmp"),
        ("fsync of the folder", "fsync:signal=SIGKILL:when=2", r"O_DIRECTORY\) = (\d+)\n\d+ +fsync\(\1\) += \?",
         [r"rename(at2?)?\(.*\) = 0"], [], "new", "new"),
        ("exit", "exit_group:signal=SIGKILL:when=1", r"exit_group\(0\) += \?",
         [r"rename(at2?)?\(.*\) = 0", r"O_DIRECTORY\) = (\d+)\n\d+ +fsync\(\1\) += 0"], [], "new", "new"),
    ]

    def check_trace(self, trace, killed, need, avoid, what):
        tail = "\n".join(trace.splitlines()[-15:])
        self.assertIn("+++ killed by SIGKILL +++", trace, f"{what}: not killed:\n{tail}")
        self.assertRegex(trace, killed, f"{what}: the killed call is not the intended one:\n{tail}")
        for r in need:
            self.assertRegex(trace, r, f"{what}: expected earlier call missing:\n{tail}")
        for r in avoid:
            self.assertNotRegex(trace, r, f"{what}: call that should not have happened yet:\n{tail}")

    def strace_kill(self, inject, wrap=None):
        logf = os.path.join(self.aux, "strace.log")
        cmd = [STRACE, "-f", "-o", logf, "-e", "trace=" + TRACED, "-e", "inject=" + inject, *self.convert_cmd()]
        p = subprocess.run(wrap(cmd) if wrap else cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
        with open(logf) as f:
            trace = f.read()
        os.unlink(logf)
        return p, trace

    def test_publication_windows(self):
        if STRACE is None:
            self.skipTest("strace not installed or ptrace not permitted")
        for name, inject, killed, need, avoid, want_fresh, want_replace in self.WINDOWS:
            for replace, want in ((False, want_fresh), (True, want_replace)):
                scen = "tmpfile/" + ("replace" if replace else "fresh")
                what = f"{scen} kill before {name}"
                self.prepare(replace)
                p, trace = self.strace_kill(inject)
                self.check_trace(trace, killed, need, avoid, what)
                self.assertRegex(trace, r"O_TMPFILE", f"{what}: the writer did not use O_TMPFILE")
                if name in ("rename", "fsync of the folder", "exit"):
                    self.assertRegex(trace, r"linkat\(.*\) = 0", what)
                state = self.outcome(replace, what)
                self.assertEqual(state, want, what)
                TALLY[scen + " / " + name][state] += 1

    # ---- 3. the named-temporary fallback (no /proc) ---------------------------

    def fallback_wrap(self):
        """A command wrapper running it with /proc hidden, or None when impossible here."""
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            return None
        env_ld = lib_dir_of(VOXTILE)

        def wrap(cmd):
            pre = ["env", f"LD_LIBRARY_PATH={env_ld}"] if env_ld else []
            return pre + ["unshare", "-m", "sh", "-c",
                          'mount -t tmpfs none /proc && test ! -e /proc/self/fd && exec "$@"', "sh", *cmd]
        probe = subprocess.run(wrap([VOXTILE, "--help"]), capture_output=True)
        return wrap if probe.returncode == 0 else None

    def fallback_outcome(self, replace, what):
        """As outcome(), but a hidden temporary may be left at any time; it is then either
        rejected as incomplete by verify, or a complete store; never a store at out.vxt that
        is not the complete one."""
        state, others = self.path_state(replace, what)
        if others:
            self.assertNotEqual(state, "new", f"{what}: a temporary next to the published store")
            tmp = os.path.join(self.dir, others[0])
            p = run("verify", tmp, ok=False)
            if p.returncode == 0:
                ok, why = self.is_new_store(tmp)
                self.assertTrue(ok, f"{what}: leftover {others[0]}: {why}")
                state += "+tmp(complete)"
            else:
                msg = p.stdout + p.stderr
                self.assertRegex(msg, r"incomplete|shorter than a store header",
                                 f"{what}: leftover {others[0]} rejected for another reason: {msg}")
                state += "+tmp(incomplete)"
        return state

    def test_fallback_named_temporary(self):
        wrap = self.fallback_wrap()
        if wrap is None:
            self.skipTest("cannot hide /proc (needs root, unshare and mount)")
        windows = {  # name -> (fresh, replace) expected states
            "first pwrite (provisional header)": ("none+tmp(incomplete)", "old+tmp(incomplete)"),
            "fsync of the file": ("none+tmp(complete)", "old+tmp(complete)"),
            "rename": ("none+tmp(complete)", "old+tmp(complete)"),
            "fsync of the folder": ("new", "new"),
            "exit": ("new", "new"),
        }
        if STRACE is not None:
            for name, inject, killed, need, avoid, _, _ in self.WINDOWS:
                if name not in windows:
                    continue
                for replace in (False, True):
                    scen = "fallback/" + ("replace" if replace else "fresh")
                    what = f"{scen} kill before {name}"
                    self.prepare(replace)
                    p, trace = self.strace_kill(inject, wrap)
                    self.check_trace(trace, killed, need, avoid, what)
                    self.assertNotRegex(trace, r"O_TMPFILE|linkat", f"{what}: not the fallback path")
                    self.assertRegex(trace, r'openat\(.*\.out\.vxt\.tmp\.[0-9a-f]{6}", O_WRONLY\|O_CREAT\|O_EXCL', what)
                    state = self.fallback_outcome(replace, what)
                    self.assertEqual(state, windows[name][replace], what)
                    TALLY[scen + " / " + name][state] += 1
        self.random_kills(FALLBACK_KILLS // 2, False, "fallback/fresh", wrap, self.fallback_outcome)
        self.random_kills(FALLBACK_KILLS - FALLBACK_KILLS // 2, True, "fallback/replace", wrap, self.fallback_outcome)

    # ---- 4. a reader of the old store while it is replaced ------------------------

    def test_reader_keeps_old_store(self):
        sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))
        lib = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(VOXTILE))), "libvoxtile.so")
        if os.path.exists(lib):
            os.environ.setdefault("VOXTILE_LIB", lib)
        libs = subprocess.run(["ldd", os.environ.get("VOXTILE_LIB", lib)], capture_output=True, text=True).stdout
        if "libasan" in libs or "libtsan" in libs:  # a sanitizer runtime cannot be loaded into python
            self.skipTest("the library is a sanitizer build")
        try:
            import voxtile
        except (ImportError, OSError) as e:
            self.skipTest(f"the Python binding cannot be loaded here: {e}")
        self.prepare(replace=True)
        old = self.old_arr
        reads = 0
        with voxtile.open(self.out) as s:
            a = s["image"]
            np.testing.assert_array_equal(a.read([0] * 4, old.shape), old)
            p = subprocess.Popen(self.convert_cmd(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            while p.poll() is None:  # read all along the conversion, and after the rename
                np.testing.assert_array_equal(a.read([0] * 4, old.shape), old)
                np.testing.assert_array_equal(a[0, 3:17, 10:50, 5:40], old[0, 3:17, 10:50, 5:40])
                reads += 1
            _, err = p.communicate()
            self.assertEqual(p.returncode, 0, err)
            self.assertNotEqual(os.stat(self.out).st_size, len(self.old_bytes))
            for _ in range(5):
                np.testing.assert_array_equal(a.read([0] * 4, old.shape), old)
                np.testing.assert_array_equal(np.asarray(a), old)
            self.assertEqual(a.shape, old.shape)
            s.verify()
        self.assertGreater(reads, 0)
        with voxtile.open(self.out) as s:
            a = s["image"]
            self.assertEqual(a.shape, self.src_arr.shape)
            for z0 in (0, self.nz // 2, self.nz - 8):
                np.testing.assert_array_equal(a[0, z0:z0 + 8, 100:300, 17:400], self.src_arr[0, z0:z0 + 8, 100:300, 17:400])
        self.assertEqual(sorted(os.listdir(self.dir)), ["out.vxt", "src.npy"])
        TALLY["reader of the replaced store"][f"reads of the old data during the conversion: {reads}"] += 1


if __name__ == "__main__":
    unittest.main(verbosity=2)
