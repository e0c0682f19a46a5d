"""The voxtile CLI against numpy: .npy variants in, boxes out (np.pad and
astype are the oracle), info --json, verify on damaged files, and the error
contract (message naming the file, exit status, nothing left behind).

Run: VOXTILE=build/tools/voxtile /usr/bin/python3 tests/test_cli.py
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
from cliutil import VOXTILE, csv, read_bytes, run, write_bytes  # noqa: E402,F401


class CliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="vt-cli-")
        self.rng = np.random.default_rng(7)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def convert(self, arr, name="a", *opts, save=None):
        src = self.path(name + ".npy")
        if save is None:
            np.save(src, arr)
        else:
            save(src, arr)
        out = self.path(name + ".vxt")
        run("convert", src, "-o", out, *opts)
        return out

    def extract(self, store, start, size, *opts):
        out = self.path("box.npy")
        run("extract", store, "--start", csv(start), "--size", csv(size), "-o", out, *opts)
        return np.load(out)

    def test_round_trip_every_dtype_and_layout(self):
        shapes = [(5, 7, 9), (2, 3, 4, 5), (11, 13), (17,), (1, 1, 1)]
        dtypes = ["u1", "i1", "<u2", ">u2", "<i2", ">i2", "<u4", "<i4", ">i4", "<f2", "<f4", ">f4", "<f8", ">f8", "?"]
        for shape in shapes:
            for dt in dtypes:
                a = (self.rng.normal(0, 1000, shape)).astype(dt)
                for fortran in (False, True):
                    arr = np.asfortranarray(a) if fortran else np.ascontiguousarray(a)
                    store = self.convert(arr, "rt", "--tile", "2,3,4", "-j", "2") if len(shape) >= 3 else self.convert(arr, "rt")
                    want = arr[None] if arr.ndim == 3 else arr
                    got = self.extract(store, [0] * want.ndim, want.shape)
                    self.assertEqual(got.shape, want.shape)
                    expect = want.astype(want.dtype.newbyteorder("=")) if want.dtype != bool else want.astype(np.uint8)
                    np.testing.assert_array_equal(got, expect, err_msg=f"{shape} {dt} fortran={fortran}")
                    self.assertEqual(got.dtype, expect.dtype)

    def test_int64_npy_is_narrowed_when_the_values_fit(self):
        # numpy's default integer: stored as int32/uint32 (the store's widest
        # integers) when every value fits, else an error naming the value
        for dt, stored, lo, hi, bad in (("<i8", np.int32, -(2**31), 2**31 - 1, -(2**31) - 1),
                                        (">i8", np.int32, -(2**31), 2**31 - 1, 2**31),
                                        ("<u8", np.uint32, 0, 2**32 - 1, 2**32),
                                        (">u8", np.uint32, 0, 2**32 - 1, 2**63 + 3)):
            for fortran in (False, True):
                with self.subTest(dtype=dt, fortran=fortran):
                    a = self.rng.integers(lo, hi, (3, 5, 7), endpoint=True, dtype=np.int64 if "i" in dt else np.uint64)
                    a.flat[0], a.flat[1] = lo, hi
                    a = a.astype(dt)
                    arr = np.asfortranarray(a) if fortran else a
                    store = self.convert(arr, "w", "--tile", "2,2,3")
                    got = self.extract(store, [0, 0, 0, 0], [1, 3, 5, 7])[0]
                    self.assertEqual(got.dtype, stored)
                    np.testing.assert_array_equal(got.astype(a.dtype.newbyteorder("=")), a)
                    a.flat[-1] = bad
                    np.save(self.path("bad.npy"), np.asfortranarray(a) if fortran else a)
                    p = run("convert", self.path("bad.npy"), "-o", self.path("bad.vxt"), ok=False)
                    self.assertEqual(p.returncode, 1)
                    self.assertIn(f"voxtile: {self.path('bad.npy')}: {'u' if 'u' in dt else ''}int64 value {bad} does not fit",
                                  p.stderr)
                    self.assertFalse(os.path.exists(self.path("bad.vxt")))

    def test_npy_format_versions(self):
        a = self.rng.integers(-1000, 1000, (4, 5, 6)).astype(np.int16)
        for version in [(1, 0), (2, 0), (3, 0)]:
            src = self.path(f"v{version[0]}.npy")
            with open(src, "wb") as f:
                np.lib.format.write_array(f, a, version=version)
            out = self.path(f"v{version[0]}.vxt")
            run("convert", src, "-o", out)
            np.testing.assert_array_equal(self.extract(out, [0, 0, 0, 0], [1, 4, 5, 6])[0], a)

    def test_boxes_with_padding_against_np_pad(self):
        a = self.rng.normal(0, 300, (9, 10, 11)).astype(np.float32)
        a[2, 3, 4] = np.nan
        a[0, 0, 0] = np.inf
        store = self.convert(a, "pad", "--tile", "4,3,5")
        v = a[None]
        for _ in range(60):
            size = self.rng.integers(1, 30, 4)
            size[0] = 1
            start = [0] + [int(self.rng.integers(-25, 25)) for _ in range(3)]
            mode = ["constant", "edge", "reflect"][int(self.rng.integers(0, 3))]
            dt = ["float16", "float32", "int16", "uint8", "float64"][int(self.rng.integers(0, 5))]
            pad_value = float(self.rng.choice([0.0, -1.0, 5.5]))
            got = self.extract(store, start, size, "--pad", mode, "--pad-value", pad_value, "--dtype", dt)
            # oracle: pad generously, then slice
            margin = 80
            padw = [(0, 0)] + [(margin, margin)] * 3
            if mode == "constant":
                big = np.pad(v, padw, mode="constant", constant_values=np.float32(pad_value))
            else:
                big = np.pad(v, padw, mode=mode)
            sl = tuple(slice(s + (margin if d else 0), s + (margin if d else 0) + n) for d, (s, n) in enumerate(zip(start, size)))
            ref = big[sl]
            if dt in ("float16", "float32", "float64"):
                want = ref.astype(dt)
                np.testing.assert_array_equal(got.view(f"u{want.itemsize}"), want.view(f"u{want.itemsize}"),
                                              err_msg=f"{start} {size} {mode} {dt}")
            else:
                info = np.iinfo(dt)
                r = np.nan_to_num(ref.astype(np.float64), nan=0.0, posinf=info.max, neginf=info.min)
                want = np.clip(np.trunc(r), info.min, info.max).astype(dt)
                np.testing.assert_array_equal(got, want, err_msg=f"{start} {size} {mode} {dt}")

    def test_float16_matches_numpy_on_special_values(self):
        bits = np.array([0, 0x80000000, 0x7F800000, 0xFF800000, 0x7F800001, 0x7FA00000, 0x7FC00000,
                         0xFF800001, 0x7FFFFFFF, 0x33000000, 0x33000001, 0x387FC000, 0x477FF000,
                         0x477FEFFF, 0x00000001, 0x3F802000, 0x3F803000], dtype=np.uint32)
        bits = np.concatenate([bits, self.rng.integers(0, 2**32, 5000, dtype=np.uint64).astype(np.uint32)])
        f = bits.view(np.float32)
        store = self.convert(f, "f16")
        got = self.extract(store, [0], [len(f)], "--dtype", "float16")
        with np.errstate(all="ignore"):
            want = f.astype(np.float16)
        np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))

    def test_info_json(self):
        a = np.zeros((1, 20, 30, 40), np.float32)
        a[0, 10:] = self.rng.normal(0, 1, (10, 30, 40))
        store = self.convert(a, "info", "--tile", "10,10,10", "--codec", "lz4", "--shuffle", "on")
        info = json.loads(run("info", store, "--json").stdout)
        self.assertEqual(info["format_version"], 1)
        self.assertEqual(info["file_size"], os.path.getsize(store))
        arr = info["arrays"][0]
        self.assertEqual(arr["name"], "image")
        self.assertEqual(arr["dtype"], "float32")
        self.assertEqual(arr["shape"], [1, 20, 30, 40])
        self.assertEqual(arr["tile"], [1, 10, 10, 10])
        self.assertEqual(arr["tiles"], 2 * 3 * 4)
        self.assertEqual(arr["codec"], "lz4")
        self.assertEqual(arr["raw_bytes"], a.nbytes)
        self.assertEqual(arr["constant_tiles"], 12)  # z < 10 is all zero
        self.assertEqual(arr["min"], float(a.min()))
        self.assertEqual(arr["max"], float(a.max()))
        self.assertLess(arr["stored_bytes"], a.nbytes)
        self.assertAlmostEqual(arr["ratio"], a.nbytes / arr["stored_bytes"], places=3)
        self.assertTrue(info["metadata"]["source"].endswith("info.npy"))
        text = run("info", store).stdout
        self.assertIn("array 'image': float32 (1, 20, 30, 40)", text)

    def test_verify_names_the_bad_tile(self):
        a = self.rng.normal(0, 1, (8, 8, 8)).astype(np.float32)
        store = self.convert(a, "v", "--tile", "4,4,4", "--codec", "none", "-j", "1")
        self.assertIn(": ok", run("verify", store).stdout)
        info = json.loads(run("info", store, "--json").stdout)
        self.assertEqual(info["arrays"][0]["raw_tiles"], 8)
        raw = read_bytes(store)
        # codec none, one thread: raw tiles in C order of the grid from byte 4096; tile 5 = (0,1,0,1)
        raw[4096 + 5 * 4 * 4 * 4 * 4 + 17] ^= 0x40
        bad = self.path("bad.vxt")
        write_bytes(bad, raw)
        p = run("verify", store, bad, ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"voxtile: {bad}: array 'image' tile 5 (0,1,0,1): checksum mismatch", p.stderr)
        self.assertIn("1 of 2 stores ok", p.stdout)
        # a checked extract refuses the damaged tile, the rest still reads
        p = run("extract", bad, "--start", "0,4,0,4", "--size", "1,1,1,1", "-o", self.path("x.npy"), ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("checksum mismatch", p.stderr)
        self.assertFalse(os.path.exists(self.path("x.npy")))
        got = self.extract(bad, [0, 0, 0, 0], [1, 4, 4, 4])
        np.testing.assert_array_equal(got[0], a[:4, :4, :4])
        # a damaged header is an error from open
        raw2 = read_bytes(store)
        raw2[100] ^= 1
        write_bytes(bad, raw2)
        p = run("verify", bad, ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"voxtile: {bad}: header checksum mismatch", p.stderr)

    def test_errors_name_the_file_and_leave_nothing(self):
        out = self.path("out.vxt")
        p = run("convert", self.path("missing.npy"), "-o", out, ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"voxtile: {self.path('missing.npy')}: cannot open", p.stderr)
        bad = self.path("bad.npy")
        write_bytes(bad, b"\x93NUMPY\x01\x00\x10\x00{'descr': <f4 }   \n")
        p = run("convert", bad, "-o", out, ok=False)
        self.assertIn(f"voxtile: {bad}: malformed .npy header", p.stderr)
        np.save(self.path("i64.npy"), np.array([[[0, 2**31]]], np.int64))
        p = run("convert", self.path("i64.npy"), "-o", out, ok=False)
        self.assertIn(f"voxtile: {self.path('i64.npy')}: int64 value 2147483648 does not fit int32", p.stderr)
        # truncated data
        a = np.zeros((4, 4, 4), np.float32)
        np.save(self.path("t.npy"), a)
        with open(self.path("t.npy"), "r+b") as f:
            f.truncate(os.path.getsize(self.path("t.npy")) - 10)
        p = run("convert", self.path("t.npy"), "-o", out, ok=False)
        self.assertIn("header describes 256 data bytes but the file holds 246", p.stderr)
        self.assertEqual(sorted(os.listdir(self.tmp)), ["bad.npy", "i64.npy", "t.npy"])
        # usage errors exit 2
        self.assertEqual(run("convert", "x.npy", ok=False).returncode, 2)
        self.assertEqual(run("convert", "x.npy", "-o", out, "--codec", "zstd", ok=False).returncode, 2)
        self.assertEqual(run("frobnicate", ok=False).returncode, 2)
        p = run("convert", "x.npy", "-o", out, "--crop-to-label", ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--crop-to-label needs --seg", p.stderr)
        store = self.convert(np.ones((3, 3, 3), np.uint8), "u")
        p = run("extract", store, "--start", "0,0,0", "--size", "1,1,1", "-o", self.path("e.npy"), ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("has 4 dimensions", p.stderr)
        p = run("info", self.path("nope.vxt"), ok=False)
        self.assertIn(f"voxtile: {self.path('nope.vxt')}: cannot open", p.stderr)
        for cmd in ("convert", "info", "verify", "extract"):
            h = run(cmd, "--help")
            self.assertIn("example:", h.stdout)


    def test_full_filesystem(self):
        """Conversion onto a full file system (a 512 KiB tmpfs in a private mount namespace) fails with
        a clear no-space error and leaves no file, not even a temporary."""
        src = self.path("noise.npy")
        np.save(src, self.rng.normal(0, 1, (1, 8, 256, 256)).astype(np.float32))  # 2 MiB, incompressible
        mnt = self.path("small")
        os.mkdir(mnt)
        script = (f'mount -t tmpfs -o size=512k tmpfs "{mnt}" || exit 99; '
                  f'"{os.path.abspath(VOXTILE)}" convert "{src}" -o "{mnt}/x.vxt" -j 2 -q; rc=$?; '
                  f'echo "left: $(ls -A "{mnt}")"; exit $rc')
        ns = ["--mount", "--propagation", "private"] if os.geteuid() == 0 else ["--user", "--map-root-user", "--mount"]
        p = subprocess.run(["unshare", *ns, "sh", "-c", script], capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 99, f"cannot mount a tmpfs here: {p.stderr}")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"voxtile: {mnt}/x.vxt: ", p.stderr)
        self.assertIn("No space left on device", p.stderr)
        self.assertIn("left: \n", p.stdout + "\n")  # nothing in the file system


if __name__ == "__main__":
    unittest.main(verbosity=1)
