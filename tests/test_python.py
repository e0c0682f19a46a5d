"""The Python package (python/voxtile) against independent oracles.

Oracles: numpy (basic indexing, np.pad, astype, np.unique), nibabel (the
bundled NIfTI files), torch's own dtype conversions, and references written
here (integer conversion, nnU-Net's sliding-window steps, Gaussian-weighted
stitching, binomial bounds for the foreground oversampling).

1. Store / Array basics: Writer and convert (.npy, NIfTI + seg, crops, raw
   files), properties, tile index, metadata types, geometry against nibabel
   (also an oblique grid), NIfTI scl_slope/scl_inter applied by read()
   against nibabel, pickling, the closed-store contract, the error classes
   (FileNotFound, OutOfMemory from a real allocation failure).
2. numpy basic indexing: thousands of random keys, integer-like keys (0-d
   arrays, __index__), error cases, __array__.
3. Array.read(): boxes outside the array, pad modes, dtype conversion (also
   to dtypes only numpy has, against astype), transform, out= slots, threads
   (decode threads and Python threads sharing one store), argument errors.
4. Writer: sparse arrays, double writes, incomplete arrays, abandoned writers,
   label index.
5. voxtile.torch.PatchDataset with DataLoader workers (fork, spawn,
   persistent; item and batch mode), epochs, foreground oversampling,
   labels=, dtypes.
6. GridPatches / sliding_window_steps against nnU-Net's step computation.
7. Stitcher against an in-memory Gaussian-weighted reference.
8. voxtile.dask.from_store, locally (two chunkings of one array combined,
   a store rewritten at its path) and on a distributed LocalCluster.
9. Library loading: VOXTILE_LIB, a checkout with nothing set, the installed
   layout.

Run: PYTHONPATH=python /usr/bin/python3 tests/test_python.py
"""
import gzip
import itertools
import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(HERE, "data")
CT = os.path.join(DATA, "example_ct_sm.nii.gz")
SEG = os.path.join(DATA, "example_seg.nii.gz")

try:
    import voxtile
except ImportError:  # run from a checkout without PYTHONPATH
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import voxtile

import nibabel as nib
import torch
import voxtile.dask
import voxtile.torch
from voxtile.torch import GridPatches, PatchDataset, Stitcher, gaussian_importance, sliding_window_steps

TMP = None  # module temp folder (setUpModule)
INT_TYPES = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32]
FLOAT_TYPES = [np.float16, np.float32, np.float64]


def setUpModule():
    global TMP
    TMP = tempfile.mkdtemp(prefix="voxtile-test-python-")


def tearDownModule():
    shutil.rmtree(TMP, ignore_errors=True)


def tmpdir():
    return tempfile.mkdtemp(dir=TMP)


# ---- helpers ------------------------------------------------------------------

def random_array(rng, shape, dtype):
    """Random values of dtype; floats include a few NaN/inf, integers span the type's range."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        a = (rng.standard_normal(shape) * 100).astype(dt)
        flat = a.reshape(-1)
        if flat.size > 8:
            flat[rng.integers(flat.size, size=3)] = [np.nan, np.inf, -np.inf]
        return a
    info = np.iinfo(dt)
    return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dt)


def write_store(path, arrays, pieces=3, rng=None, meta=None):
    """arrays: {name: (ndarray, add_array kwargs)}; each written in `pieces` slabs along axis 0,
    the arrays interleaved."""
    rng = rng or np.random.default_rng(0)
    with voxtile.Writer(path) as w:
        ids = {}
        for name, (a, kw) in arrays.items():
            ids[name] = w.add_array(name, a.shape, kw.pop("dtype", a.dtype), **kw)
        cuts = {}
        for name, (a, kw) in arrays.items():
            n = a.shape[0]
            k = min(pieces, n)
            inner = sorted(rng.choice(np.arange(1, n), size=k - 1, replace=False)) if k > 1 else []
            cuts[name] = [0] + [int(c) for c in inner] + [n]
        for p in range(max(len(c) - 1 for c in cuts.values())):
            for name, (a, kw) in arrays.items():
                c = cuts[name]
                if p < len(c) - 1:
                    w.write(ids[name], (c[p],) + (0,) * (a.ndim - 1), a[c[p]:c[p + 1]])
        for k, v in (meta or {}).items():
            w.set_meta(k, v)
    return path


def to_store_layout(arr):
    """nibabel's (x, y, z) -> voxtile's (1, z, y, x)."""
    return np.asarray(arr).transpose(2, 1, 0)[None]


def int_convert(x64, dtype):
    """voxtile's conversion of float64 values to an integer type: truncate toward zero, saturate, NaN -> 0."""
    info = np.iinfo(dtype)
    y = np.trunc(np.asarray(x64, np.float64))
    y = np.where(np.isnan(y), 0.0, y)
    y = np.clip(y, info.min, info.max)
    return y.astype(dtype)


def convert_ref(src, dtype):
    """Reference of read(dtype=...): values as float64, then converted."""
    dt = np.dtype(dtype)
    x = np.asarray(src).astype(np.float64)
    if dt.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            return x.astype(dt)
    return int_convert(x, dt)


def bf16_bits_ref(f32):
    """bfloat16 bits of float32 values (round to nearest even) for finite/inf values."""
    b = np.asarray(f32, np.float32).view(np.uint32).astype(np.uint64)
    r = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return r.astype(np.uint16)


def padded_box(ref, start, size, mode="constant", value=0):
    """ref[start:start+size] with numpy's np.pad for the voxels outside."""
    pads = [(max(0, -s), max(0, s + n - d)) for s, n, d in zip(start, size, ref.shape)]
    if mode == "constant":  # pad_value converted to the dtype as voxtile converts
        v = value if ref.dtype == bool else convert_ref(np.float64(value), ref.dtype)
        p = np.pad(ref, pads, mode="constant", constant_values=v)
    else:
        p = np.pad(ref, pads, mode=mode)
    sl = tuple(slice(s + a, s + a + n) for s, n, (a, _) in zip(start, size, pads))
    return p[sl]


def assert_same(tc, got, exp, msg=""):
    """Same shape, dtype and values (NaN equal to NaN, complex too; bitwise for floats)."""
    got, exp = np.asarray(got), np.asarray(exp)
    tc.assertEqual(got.shape, exp.shape, msg)
    tc.assertEqual(got.dtype, exp.dtype, msg)
    if exp.dtype.kind in "fc":
        eq = (got == exp) | (np.isnan(got) & np.isnan(exp))
        if not eq.all():
            bad = np.argwhere(~eq)[:5]
            tc.fail(f"{msg}: {np.count_nonzero(~eq)} values differ, e.g. at {bad.tolist()}: "
                    f"{got[tuple(bad[0])]} vs {exp[tuple(bad[0])]}")
    else:
        if not np.array_equal(got, exp):
            bad = np.argwhere(got != exp)[:5]
            tc.fail(f"{msg}: {np.count_nonzero(got != exp)} values differ, e.g. at {bad.tolist()}: "
                    f"{got[tuple(bad[0])]} vs {exp[tuple(bad[0])]}")


def nnunet_steps(image_size, patch_size, step_size):
    """nnU-Net's compute_steps_for_sliding_window (its images are padded to at least the patch first)."""
    steps = []
    for n, p in zip(image_size, patch_size):
        n = max(n, p)
        target = p * step_size
        num = int(np.ceil((n - p) / target)) + 1
        max_step = n - p
        actual = max_step / (num - 1) if num > 1 else 99999999999
        steps.append([int(np.round(actual * i)) for i in range(num)])
    return steps


_CT = None


def ct_data():
    """(image (1, z, y, x) int16, seg (1, z, y, x) uint8, nibabel image) of the bundled NIfTI files."""
    global _CT
    if _CT is None:
        img = nib.load(CT)
        seg = nib.load(SEG)
        _CT = (to_store_layout(np.asanyarray(img.dataobj)), to_store_layout(np.asanyarray(seg.dataobj)), img)
    return _CT


_CT_STORE = None


def ct_store():
    """The bundled CT and segmentation converted once (path)."""
    global _CT_STORE
    if _CT_STORE is None:
        _CT_STORE = os.path.join(TMP, "ct.vxt")
        voxtile.convert(CT, _CT_STORE, seg=SEG, threads=2)
    return _CT_STORE


# ---- 1. stores and arrays -------------------------------------------------------

class TestStoreBasics(unittest.TestCase):
    def test_writer_dtypes_and_shapes(self):
        rng = np.random.default_rng(1)
        d = tmpdir()
        shapes = [((37,), (8,)), ((9, 11), (4, 3)), ((5, 6, 7), (2, 4, 3)), ((3, 4, 5, 6), (2, 3, 2, 4)),
                  ((2, 3, 4, 5, 3), (1, 2, 3, 2, 2)), ((5, 6, 7), None), ((40, 30), None), ((4, 3, 2, 20), None)]
        dtypes = INT_TYPES + FLOAT_TYPES
        for k, (shape, tile) in enumerate(shapes):
            for j, dt in enumerate(dtypes):
                if (k + j) % 3:  # a third of the combinations, every dtype and shape covered
                    continue
                a = random_array(rng, shape, dt)
                path = os.path.join(d, f"s{k}_{j}.vxt")
                codec = ["lz4hc", "lz4", "none"][(k + j // 3) % 3]
                kw = {"tile": tile, "codec": codec}
                write_store(path, {"x": (a, kw), "y": (a[:1].copy(), {})}, pieces=3, rng=rng)
                with voxtile.open(path) as st:
                    x = st["x"]
                    msg = f"{shape} {np.dtype(dt)} tile {tile}"
                    self.assertEqual(x.shape, shape, msg)
                    self.assertEqual(x.ndim, len(shape))
                    self.assertEqual(x.dtype, np.dtype(dt), msg)
                    self.assertEqual(x.vt_dtype, np.dtype(dt).name)
                    if tile is None:  # 16 on the last three axes, 1 before; 2-d 256 x 256; clipped
                        want = [1] * max(0, len(shape) - 3) + [16] * min(3, len(shape))
                        if len(shape) == 2:
                            want = [256, 256]
                        want = tuple(min(t, s) for t, s in zip(want, shape))
                    else:
                        want = tuple(tile)
                    self.assertEqual(x.tile_shape, want, msg)
                    self.assertEqual(x.grid, tuple(-(-s // t) for s, t in zip(shape, want)))
                    self.assertEqual(x.ntiles, int(np.prod(x.grid)))
                    self.assertEqual(x.nbytes, a.nbytes, msg)
                    self.assertEqual(x.size, a.size)
                    self.assertEqual(len(x), shape[0])
                    self.assertGreater(x.stored_nbytes, 0)
                    self.assertLessEqual(x.stored_nbytes, st.file_size)
                    assert_same(self, x[...], a, msg)
                    assert_same(self, st["y"][...], a[:1], msg)
                    fin = a[~np.isnan(a)] if a.dtype.kind == "f" else a  # NaN ignored
                    self.assertEqual(x.min, float(fin.min()), msg)
                    self.assertEqual(x.max, float(fin.max()), msg)
                    self.assertEqual(st.arrays, ["x", "y"])
                    x.verify()
                    st.verify()
                    # tile index entries: start/extent from the tile grid, sizes adding up
                    stored = 0
                    for t in range(x.ntiles):
                        info = x.tile(t)
                        coord = np.unravel_index(t, x.grid)
                        self.assertEqual(info["coord"], tuple(int(c) for c in coord))
                        self.assertEqual(info["start"], tuple(int(c) * w for c, w in zip(coord, want)))
                        ext = tuple(min(w, s - int(c) * w) for c, w, s in zip(coord, want, shape))
                        self.assertEqual(info["extent"], ext)
                        self.assertEqual(info["raw_size"], int(np.prod(ext)) * a.itemsize)
                        block = a[tuple(slice(b, b + e) for b, e in zip(info["start"], ext))]
                        if codec == "none" and not info["flags"] & 2:  # raw unless constant
                            self.assertEqual(info["stored_size"], info["raw_size"], msg)
                        if info["flags"] & 2:
                            np.testing.assert_array_equal(block, np.full_like(block, block.reshape(-1)[0]))
                        stored += info["stored_size"]
                    self.assertEqual(x.stored_nbytes, stored, msg)

    def test_bfloat16_array(self):
        rng = np.random.default_rng(2)
        f = (rng.standard_normal((6, 7, 8)) * 10).astype(np.float32)
        bits = bf16_bits_ref(f)
        path = os.path.join(tmpdir(), "bf.vxt")
        write_store(path, {"x": (bits, {"dtype": "bfloat16", "tile": (4, 4, 4)})})
        with voxtile.open(path) as st:
            x = st["x"]
            self.assertEqual(x.vt_dtype, "bfloat16")
            self.assertEqual(x.dtype, np.dtype(np.uint16))
            self.assertEqual(x.nbytes, bits.nbytes)
            assert_same(self, x[...], bits)
            # bf16 -> float32 is exact: the upper half of the binary32
            want = (bits.astype(np.uint32) << 16).view(np.float32)
            assert_same(self, x.read((0, 0, 0), x.shape, dtype=np.float32), want)

    def test_metadata_types(self):
        path = os.path.join(tmpdir(), "m.vxt")
        a = np.arange(10, dtype=np.uint8)
        meta = {"s": "héllo wörld", "b": b"\x00\x01\xff", "empty": b"", "f": [1.5, -2.25, np.pi],
                "i": [1, -2, 3 << 40], "f32": np.array([0.1, 0.2], np.float32), "one": [7],
                "bools": np.array([True, False]), "replaced": "old"}
        with voxtile.Writer(path) as w:
            w.write(w.add_array("a", a.shape, a.dtype), (0,), a)
            for k, v in meta.items():
                w.set_meta(k, v)
            w.set_meta("replaced", "new")
        with voxtile.open(path) as st:
            m = st.metadata
            self.assertEqual(set(m), set(meta))
            self.assertEqual(m["s"], "héllo wörld")
            self.assertIsInstance(m["s"], str)
            self.assertEqual(m["b"], b"\x00\x01\xff")
            self.assertIsInstance(m["b"], bytes)
            self.assertEqual(m["empty"], b"")
            self.assertEqual(m["replaced"], "new")
            for k, dt, want in (("f", np.float64, [1.5, -2.25, np.pi]), ("i", np.int64, [1, -2, 3 << 40]),
                                ("f32", np.float64, np.array([0.1, 0.2], np.float32).astype(np.float64)),
                                ("one", np.int64, [7]), ("bools", np.int64, [1, 0])):
                self.assertIsInstance(m[k], np.ndarray, k)
                self.assertEqual(m[k].dtype, np.dtype(dt), k)
                np.testing.assert_array_equal(m[k], np.array(want, dt), k)
            # no geometry: the documented defaults
            self.assertEqual(st.spacing, (1.0, 1.0, 1.0))
            np.testing.assert_array_equal(st.affine, np.eye(4))
            np.testing.assert_array_equal(st.direction, np.eye(3))
            self.assertEqual(st.origin, (0.0, 0.0, 0.0))

    def test_convert_npy(self):
        rng = np.random.default_rng(3)
        d = tmpdir()
        a3 = rng.integers(-500, 500, size=(7, 9, 11), dtype=np.int16)
        a4 = rng.standard_normal((2, 5, 6, 7)).astype(np.float32)
        s3 = rng.integers(0, 4, size=(7, 9, 11), dtype=np.uint8)
        for name, arr in (("a3", a3), ("a4", a4), ("s3", s3), ("b3", a3 * 2)):
            np.save(os.path.join(d, name + ".npy"), arr)
        p = lambda n: os.path.join(d, n)  # noqa: E731
        fractions = []
        voxtile.convert(p("a3.npy"), p("a3.vxt"), tile=(2, 4, 4), progress=fractions.append)
        voxtile.convert(p("a4.npy"), p("a4.vxt"), codec="none")
        voxtile.convert([p("a3.npy"), p("b3.npy")], p("c2.vxt"), seg=p("s3.npy"))
        voxtile.convert(p("a3.npy"), p("f.vxt"), dtype="float32", array="ct")
        self.assertTrue(fractions and all(0 <= f <= 1 for f in fractions))
        with voxtile.open(p("a3.vxt")) as st:
            x = st["image"]
            self.assertEqual((x.shape, x.dtype, x.tile_shape), ((1, 7, 9, 11), np.dtype(np.int16), (1, 2, 4, 4)))
            assert_same(self, x[...], a3[None])
            self.assertEqual(st.arrays, ["image"])
            self.assertEqual(st.metadata["format"], "npy")
        with voxtile.open(p("a4.vxt")) as st:
            assert_same(self, st["image"][...], a4)
            self.assertEqual(st["image"].stored_nbytes, a4.nbytes)
        with voxtile.open(p("c2.vxt")) as st:
            self.assertEqual(st.arrays, ["image", "seg"])
            assert_same(self, st["image"][...], np.stack([a3, a3 * 2]))
            seg = st["seg"]
            self.assertEqual(seg.shape, (1, 7, 9, 11))
            np.testing.assert_array_equal(seg[...], s3[None])
            values, counts = np.unique(s3, return_counts=True)
            self.assertEqual({v: n for v, (n, _) in seg.labels.items()},
                             dict(zip(values.tolist(), counts.tolist())))
        with voxtile.open(p("f.vxt")) as st:
            self.assertEqual(st.arrays, ["ct"])
            assert_same(self, st["ct"][...], a3[None].astype(np.float32))
        self.assertEqual(voxtile.probe(p("a4.npy"))["shape"], (2, 5, 6, 7))
        self.assertEqual(voxtile.probe(p("a3.npy"))["dtype"], "int16")

    def test_nifti_store_against_nibabel(self):
        img_data, seg_data, img = ct_data()
        path = ct_store()
        with voxtile.open(path) as st:
            self.assertEqual(st.arrays, ["image", "seg"])
            self.assertIn("image", st)
            self.assertIn("seg", st)
            self.assertNotIn("nope", st)
            self.assertEqual(list(st), ["image", "seg"])
            x, s = st["image"], st["seg"]
            self.assertIs(st["image"], x)
            self.assertEqual(x.shape, img_data.shape)
            self.assertEqual(x.dtype, np.dtype(np.int16))
            self.assertEqual(s.dtype, np.dtype(np.uint8))
            assert_same(self, x[...], img_data.astype(np.int16))
            assert_same(self, np.asarray(s), seg_data.astype(np.uint8))
            self.assertEqual(x.tile_shape, (1, 16, 16, 16))
            zooms = img.header.get_zooms()[:3]
            self.assertEqual(st.spacing, tuple(float(z) for z in zooms[::-1]))
            aff = img.affine
            np.testing.assert_allclose(st.affine, aff, rtol=0, atol=1e-5)
            np.testing.assert_allclose(st.origin, aff[:3, 3], rtol=0, atol=1e-5)
            np.testing.assert_allclose(st.direction, aff[:3, :3] / np.linalg.norm(aff[:3, :3], axis=0),
                                       rtol=0, atol=1e-9)
            m = st.metadata
            self.assertIsInstance(m["source"], str)
            self.assertEqual(m["source"], CT)
            self.assertEqual(m["seg.source"], SEG)
            self.assertIsInstance(m["nifti.header"], bytes)
            self.assertEqual(len(m["nifti.header"]), 348)
            self.assertEqual(m["nifti.sform_code"].dtype, np.int64)
            self.assertEqual(int(m["nifti.sform_code"][0]), int(img.header["sform_code"]))
            self.assertEqual(m["spacing"].dtype, np.float64)
            np.testing.assert_array_equal(m["crop"], [0, img_data.shape[1], 0, img_data.shape[2], 0,
                                                      img_data.shape[3]])
            values, counts = np.unique(seg_data, return_counts=True)
            self.assertEqual({v: n for v, (n, _) in s.labels.items()}, dict(zip(values.tolist(), counts.tolist())))
            self.assertEqual(x.labels, {})
            r = repr(st)
            self.assertIn(path, r)
            self.assertIn("image", r)
            self.assertIn("seg", r)
            self.assertIn("image", repr(x))
            self.assertIn("int16", repr(x))
            self.assertIn(str(x.shape), repr(x))
            with self.assertRaises(voxtile.NotFound) as cm:
                st["nope"]
            self.assertIsInstance(cm.exception, KeyError)
            self.assertIsInstance(cm.exception, voxtile.Error)
        probe = voxtile.probe(CT)
        self.assertEqual(probe["shape"], img_data.shape)
        self.assertEqual(probe["dtype"], "int16")
        self.assertEqual(tuple(probe["spacing"]), tuple(float(z) for z in zooms[::-1]))
        self.assertEqual(probe["format"], "nifti1")
        # export_nifti gives nibabel the same voxels and affine back
        out = os.path.join(tmpdir(), "back.nii.gz")
        voxtile.export_nifti(path, out)
        back = nib.load(out)
        np.testing.assert_array_equal(to_store_layout(np.asanyarray(back.dataobj)), img_data)
        np.testing.assert_allclose(back.affine, aff, atol=1e-5)
        voxtile.export_nifti(path, out, array="seg")
        np.testing.assert_array_equal(to_store_layout(np.asanyarray(nib.load(out).dataobj)), seg_data)

    def test_nifti_scaling(self):
        """scl_slope/scl_inter kept raw in the store and applied by read() to floating outputs, against
        nibabel's get_fdata() (scaled) and dataobj.get_unscaled() (raw)."""
        d = tmpdir()
        rng = np.random.default_rng(31)
        raw = rng.integers(-3000, 3000, size=(13, 11, 9), dtype=np.int16)
        raw[0, 0, :3] = [-32768, 32767, 0]
        nimg = nib.Nifti1Image(raw, np.diag([1.5, 2.0, 3.0, 1.0]))
        nimg.header.set_slope_inter(2.0, -100.0)
        src = os.path.join(d, "scaled.nii.gz")
        nib.save(nimg, src)
        seg_src = os.path.join(d, "seg.nii.gz")
        seg = (raw > 1000).astype(np.uint8) * 3
        nseg = nib.Nifti1Image(seg, np.diag([1.5, 2.0, 3.0, 1.0]))
        nib.save(nseg, seg_src)
        out = os.path.join(d, "scaled.vxt")
        cli = os.environ.get("VOXTILE") or os.path.join(os.path.dirname(os.path.realpath(voxtile._lib._path)),
                                                        "tools", "voxtile")
        if os.path.exists(cli):  # the CLI of this build (build/tools/voxtile)
            p = subprocess.run([cli, "convert", src, "--seg", seg_src, "--levels", "1", "-q", "-o", out],
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
        else:  # an installed library without the build tree: the same converter through Python
            voxtile.convert(src, out, seg=seg_src, levels=1)
        back = nib.load(src)
        self.assertEqual((float(back.dataobj.slope), float(back.dataobj.inter)), (2.0, -100.0))
        scaled = to_store_layout(back.get_fdata())  # float64, raw * 2 - 100
        unscaled = to_store_layout(back.dataobj.get_unscaled())
        self.assertEqual(unscaled.dtype, np.dtype(np.int16))
        with voxtile.open(out) as st:
            self.assertEqual(float(st.metadata["scl_slope"][0]), 2.0)
            self.assertEqual(float(st.metadata["scl_inter"][0]), -100.0)
            x = st["image"]
            self.assertEqual(x.dtype, np.dtype(np.int16), "stored raw")
            self.assertEqual(x.scaling, (2.0, -100.0))
            self.assertIsNone(st["seg"].scaling, "labels are never scaled")
            self.assertEqual(st["image@1"].scaling, (2.0, -100.0), "pyramid levels are raw too")
            full = ((0,) * 4, x.shape)
            # floating outputs are scaled
            assert_same(self, x.read(*full, dtype=np.float32), scaled.astype(np.float32), "float32")
            assert_same(self, x.read(*full, dtype=np.float64), scaled, "float64")
            with np.errstate(over="ignore"):  # -32768 * 2 - 100 is past float16's range: inf, as numpy
                assert_same(self, x.read(*full, dtype=np.float16), scaled.astype(np.float16), "float16")
            assert_same(self, x.read(*full, dtype="bfloat16"), bf16_bits_ref(scaled.astype(np.float32)), "bf16")
            # raw: dtype None, indexing, __array__, integer outputs, scaling=False
            assert_same(self, x.read(*full), unscaled, "dtype None")
            assert_same(self, x[...], unscaled, "a[...]")
            assert_same(self, np.asarray(x), unscaled, "np.asarray")
            assert_same(self, x[0, 3, ::-2], unscaled[0, 3, ::-2], "a[0, 3, ::-2]")
            assert_same(self, x.read(*full, dtype=np.int32), unscaled.astype(np.int32), "int32")
            assert_same(self, x.read(*full, dtype=np.float32, scaling=False), unscaled.astype(np.float32),
                        "scaling=False")
            # a box leaving the volume: constant pad is the output value (not scaled), edge pads are scaled
            start, size = (0, -2, 3, -4), (1, 6, 12, 8)
            assert_same(self, x.read(start, size, dtype=np.float32, pad_value=-7),
                        padded_box(scaled, start, size, "constant", -7).astype(np.float32), "constant pad")
            assert_same(self, x.read(start, size, dtype=np.float64, pad="edge"),
                        padded_box(scaled, start, size, "edge"), "edge pad")
            # a user transform applies to the scaled values: clip, then scale and offset
            for lo, hi, sc, off in [(-1000.0, 2000.0, 0.5, 3.0), (None, 500.0, -0.25, 1.0), (0.0, None, 1.0, 0.0),
                                    (-3000.0, -2999.0, 2.0, 0.0)]:
                exp = np.clip(scaled, -np.inf if lo is None else lo, np.inf if hi is None else hi) * sc + off
                got = x.read(*full, dtype=np.float64, transform=(lo, hi, sc, off))
                np.testing.assert_allclose(got, exp, rtol=1e-12, atol=1e-9, err_msg=f"{lo, hi, sc, off}")
                assert_same(self, x.read(*full, dtype=np.float32, transform=(lo, hi, sc, off)),
                            exp.astype(np.float32), f"{lo, hi, sc, off} float32")
            # scaling=False: the transform applies to the raw values
            assert_same(self, x.read(*full, dtype=np.float32, transform=(-100, 100, 2, 1), scaling=False),
                        (np.clip(unscaled, -100, 100) * 2.0 + 1).astype(np.float32), "raw transform")
            # dtypes only numpy has: the cast of the scaled values
            assert_same(self, x.read(*full, dtype=np.complex128), scaled.astype(np.complex128), "complex128")
            # PatchDataset reads the image as float: scaled; the label and its sampling are untouched
            ds = PatchDataset([out], (4, 6, 5), dtype=torch.float32, seed=2, length=12, oversample_foreground=0.5)
            seg_ref = to_store_layout(seg).astype(np.int16)
            for i in range(len(ds)):
                it = ds[i]
                st_ = [0] + [int(v) for v in it["start"]]
                assert_same(self, it["image"].numpy(), padded_box(scaled, st_, (1, 4, 6, 5)).astype(np.float32),
                            f"PatchDataset item {i}")
                assert_same(self, it["seg"].numpy(), padded_box(seg_ref, st_, (1, 4, 6, 5), "constant", -1),
                            f"PatchDataset item {i} seg")
        # a negative slope swaps the clip bounds
        nimg.header.set_slope_inter(-0.5, 10.0)
        src2 = os.path.join(d, "neg.nii")
        nib.save(nimg, src2)
        out2 = os.path.join(d, "neg.vxt")
        voxtile.convert(src2, out2)
        neg = to_store_layout(nib.load(src2).get_fdata())
        with voxtile.open(out2) as st:
            x = st["image"]
            self.assertEqual(x.scaling, (-0.5, 10.0))
            assert_same(self, x.read((0,) * 4, x.shape, dtype=np.float64), neg)
            for t in [(-200.0, 300.0, 1.0, 0.0), (None, 0.0, 3.0, -1.0), (5.0, None, -2.0, 0.5)]:
                exp = np.clip(neg, -np.inf if t[0] is None else t[0], np.inf if t[1] is None else t[1]) * t[2] + t[3]
                np.testing.assert_allclose(x.read((0,) * 4, x.shape, dtype=np.float64, transform=t), exp,
                                           rtol=1e-12, atol=1e-9, err_msg=str(t))
        # --apply-scaling stores the scaled values: nothing left to scale
        out3 = os.path.join(d, "applied.vxt")
        voxtile.convert(src, out3, apply_scaling=True)
        with voxtile.open(out3) as st:
            self.assertIsNone(st["image"].scaling)
            self.assertNotIn("scl_slope", st.metadata)
            np.testing.assert_array_equal(st["image"].read((0,) * 4, st["image"].shape, dtype=np.float64), scaled)

    def test_oblique_nifti_geometry(self):
        """A rotated, flipped, anisotropic grid: spacing, affine, origin and direction against nibabel."""
        d = tmpdir()
        rng = np.random.default_rng(19)
        data = rng.integers(-100, 100, size=(6, 7, 5), dtype=np.int16)  # (x, y, z)
        c, s_ = math.cos(0.3), math.sin(0.3)
        rot = np.array([[c, -s_, 0], [s_, c, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, 0.6, -0.8], [0, 0.8, 0.6]])
        aff = np.eye(4)
        aff[:3, :3] = rot @ np.diag([0.7, 1.3, -2.5])
        aff[:3, 3] = [10.5, -20.25, 33.0]
        img = nib.Nifti1Image(data, aff)
        img.header.set_sform(aff, code=2)
        src = os.path.join(d, "obl.nii")
        nib.save(img, src)
        img = nib.load(src)
        out = os.path.join(d, "obl.vxt")
        voxtile.convert(src, out)
        with voxtile.open(out) as st:
            assert_same(self, st["image"][...], to_store_layout(data))
            np.testing.assert_allclose(st.affine, img.affine, atol=1e-5)
            np.testing.assert_allclose(st.origin, img.affine[:3, 3], atol=1e-5)
            zooms = img.header.get_zooms()[:3]
            np.testing.assert_allclose(st.spacing, zooms[::-1], rtol=1e-6)
            np.testing.assert_allclose(st.spacing, np.linalg.norm(img.affine[:3, :3], axis=0)[::-1], rtol=1e-5)
            direction = img.affine[:3, :3] / np.linalg.norm(img.affine[:3, :3], axis=0)
            np.testing.assert_allclose(st.direction, direction, atol=1e-6)
            # column j is the direction of index axis j: voxel (i, j, k) -> world through the affine
            ijk = np.array([2, 3, 4])
            world = np.array(st.origin) + st.direction @ (ijk * np.array(st.spacing[::-1]))
            np.testing.assert_allclose(world, nib.affines.apply_affine(img.affine, ijk), atol=1e-4)

    def test_pickle_and_release(self):
        import pickle
        path = os.path.join(tmpdir(), "p.vxt")
        a = np.arange(4 * 5 * 6, dtype=np.int32).reshape(4, 5, 6)
        write_store(path, {"a": (a, {"tile": (2, 2, 2)})})
        with voxtile.open(path) as st:
            assert_same(self, st["a"][1:3], a[1:3])
            st.release()
            assert_same(self, st["a"][...], a)
            st2 = pickle.loads(pickle.dumps(st))
            try:
                self.assertEqual(st2.path, path)
                assert_same(self, st2["a"][..., 2], a[..., 2])
            finally:
                st2.close()

    def test_huge_page_mapping(self):
        """A store over 2 MiB is mapped at a 2 MiB boundary with huge-page advice ("hg" in smaps' VmFlags)
        unless huge_pages=False; both read the same values; the choice survives pickling."""
        import pickle
        path = os.path.join(tmpdir(), "h.vxt")
        a = np.random.default_rng(5).integers(0, 2**31, size=(40, 128, 128), dtype=np.int32)  # 2.5 MiB, incompressible
        write_store(path, {"a": (a, {"tile": (16, 16, 16)})})
        self.assertGreater(os.path.getsize(path), 2 << 20)

        def mapping():
            real, start, flags = os.path.realpath(path), None, None
            with open("/proc/self/smaps") as f:
                for line in f:
                    head = line.split()
                    if "-" in head[0] and len(head) >= 6 and not head[0].endswith(":"):
                        start = int(head[0].split("-")[0], 16) if head[-1] == real else None
                    elif start is not None and line.startswith("VmFlags:"):
                        return start, head[1:]
            return None, None

        thp = os.path.exists("/sys/kernel/mm/transparent_hugepage/enabled")
        for huge in (True, False):
            with voxtile.open(path, huge_pages=huge) as st:
                start, flags = mapping()
                self.assertIsNotNone(start)
                if huge:
                    self.assertEqual(start % (2 << 20), 0)
                if thp or not huge:
                    self.assertEqual("hg" in flags, huge, flags)
                assert_same(self, st["a"][...], a)
                st2 = pickle.loads(pickle.dumps(st))
                try:
                    self.assertEqual(st2.huge_pages, huge)
                finally:
                    st2.close()

    def test_convert_options(self):
        img_data, seg_data, img = ct_data()
        d = tmpdir()
        # a crop box (z0, z1, y0, y1, x0, x1): voxels and the translated affine
        box = (2, 20, 10, 90, 5, 100)
        out = os.path.join(d, "box.vxt")
        voxtile.convert(CT, out, seg=SEG, crop=box)
        with voxtile.open(out) as st:
            sl = (slice(None), slice(box[0], box[1]), slice(box[2], box[3]), slice(box[4], box[5]))
            assert_same(self, st["image"][...], img_data[sl])
            assert_same(self, st["seg"][...], seg_data[sl])
            np.testing.assert_array_equal(st.metadata["crop"], box)
            np.testing.assert_allclose(st.affine[:3, 3], nib.affines.apply_affine(img.affine, [box[4], box[2], box[0]]),
                                       atol=1e-4)
            np.testing.assert_allclose(st.affine[:3, :3], img.affine[:3, :3], atol=1e-6)
        # the segmentation's bounding box grown by a margin, clamped to the volume
        out = os.path.join(d, "label.vxt")
        voxtile.convert(CT, out, seg=SEG, crop="label", crop_margin=3, dtype="float32")
        nz = np.argwhere(seg_data[0] != 0)
        lo = np.maximum(nz.min(axis=0) - 3, 0)
        hi = np.minimum(nz.max(axis=0) + 4, seg_data.shape[1:])
        with voxtile.open(out) as st:
            sl = (slice(None),) + tuple(slice(a, b) for a, b in zip(lo, hi))
            assert_same(self, st["image"][...], img_data[sl].astype(np.float32))
            assert_same(self, st["seg"][...], seg_data[sl])
        with self.assertRaises(ValueError):
            voxtile.convert(CT, os.path.join(d, "x.vxt"), crop="everything")
        with self.assertRaises(voxtile.Error):
            voxtile.convert(os.path.join(d, "missing.nii.gz"), os.path.join(d, "x.vxt"))
        self.assertFalse(os.path.exists(os.path.join(d, "x.vxt")))
        # headerless raw data: shape, offset, byte order, spacing
        rng = np.random.default_rng(21)
        vol = rng.integers(-3000, 3000, size=(2, 4, 5, 6)).astype(np.int16)
        raw = os.path.join(d, "vol.raw")
        with open(raw, "wb") as f:
            f.write(b"H" * 10)
            f.write(vol.astype(">i2").tobytes())
        out = os.path.join(d, "raw.vxt")
        voxtile.convert(raw, out, raw={"shape": vol.shape, "dtype": "int16", "offset": 10, "big_endian": True,
                                       "spacing": (2.5, 0.5, 0.75)})
        with voxtile.open(out) as st:
            assert_same(self, st["image"][...], vol)
            self.assertEqual(st.spacing, (2.5, 0.5, 0.75))
            np.testing.assert_allclose(np.diag(st.affine), [0.75, 0.5, 2.5, 1])
        with open(raw, "wb") as f:
            f.write(vol[0].astype("<i2").tobytes())
        voxtile.convert(raw, out, raw={"shape": vol.shape[1:], "dtype": np.int16})
        with voxtile.open(out) as st:
            assert_same(self, st["image"][...], vol[:1])
            self.assertEqual(st.spacing, (1.0, 1.0, 1.0))
        # a damaged gzip stream is a malformed input (VT_EFORMAT) whichever reader meets it -- the
        # .raw.gz/NRRD/MetaImage inflater or zlib's gzread for .nii.gz -- and the message names the
        # file, not zlib's "<fd:N>" for it; VT_ECORRUPT is for damaged stores
        gz_raw = os.path.join(d, "bad.raw.gz")
        nii_gz = os.path.join(d, "bad.nii.gz")
        nib.save(nib.Nifti1Image(vol[0].T.copy(), np.eye(4)), nii_gz)
        with open(gz_raw, "wb") as f:
            f.write(gzip.compress(vol.astype("<i2").tobytes()))
        for path in (gz_raw, nii_gz):
            with open(path, "rb") as f:
                z = bytearray(f.read())
            z[-6] ^= 0xFF  # the CRC-32 of the gzip trailer
            with open(path, "wb") as f:
                f.write(z)
            with self.subTest(path=path), self.assertRaises(voxtile.Error) as cm:
                voxtile.convert(path, os.path.join(d, "x.vxt"), raw={"shape": vol.shape, "dtype": "int16"})
            self.assertEqual(cm.exception.code, voxtile._EFORMAT, str(cm.exception))
            self.assertIn(path, str(cm.exception))
            self.assertNotIn("<fd:", str(cm.exception))
            self.assertFalse(os.path.exists(os.path.join(d, "x.vxt")))

    def test_error_classes(self):
        """Missing files: FileNotFound (a voxtile.Error and a FileNotFoundError, errno ENOENT, the C message);
        the library out of memory: OutOfMemory (a voxtile.Error and a MemoryError)."""
        import errno
        d = tmpdir()
        missing = os.path.join(d, "missing.vxt")
        nodir = os.path.join(d, "no-such-dir", "out.vxt")
        calls = {"open": (lambda: voxtile.open(missing), missing),
                 "probe": (lambda: voxtile.probe(missing + ".nii"), missing + ".nii"),
                 "convert image": (lambda: voxtile.convert(missing + ".nii.gz", os.path.join(d, "o.vxt")),
                                   missing + ".nii.gz"),
                 "convert seg": (lambda: voxtile.convert(CT, os.path.join(d, "o.vxt"), seg=missing + ".nii"),
                                 missing + ".nii"),
                 "convert into a missing folder": (lambda: voxtile.convert(CT, nodir), os.path.dirname(nodir)),
                 "export_nifti": (lambda: voxtile.export_nifti(missing, os.path.join(d, "o.nii")), missing),
                 "Writer": (lambda: voxtile.Writer(nodir), os.path.dirname(nodir))}
        for what, (call, path) in calls.items():
            with self.assertRaises(FileNotFoundError, msg=what) as cm:
                call()
            e = cm.exception
            self.assertIsInstance(e, voxtile.FileNotFound, what)
            self.assertIsInstance(e, voxtile.Error, what)
            self.assertEqual(e.errno, errno.ENOENT, what)
            self.assertEqual(e.filename, path, what)
            self.assertEqual(e.code, -1, what)  # VT_EIO
            self.assertIn(os.path.basename(path), str(e), what)
            self.assertNotIn("[Errno", str(e), what)  # the library's message, not OSError's format
        self.assertEqual(sorted(os.listdir(d)), [], "nothing left behind")
        dangling = os.path.join(tmpdir(), "link.vxt")
        os.symlink(missing, dangling)
        with self.assertRaises(voxtile.FileNotFound):
            voxtile.open(dangling)
        # a file that exists but is no store is not a missing file
        bad = os.path.join(d, "bad.vxt")
        with open(bad, "wb") as f:
            f.write(b"x" * 5000)
        with self.assertRaises(voxtile.Error) as cm:
            voxtile.open(bad)
        self.assertNotIsInstance(cm.exception, FileNotFoundError)
        with self.assertRaises(voxtile.Error) as cm:
            voxtile.open(d)  # a folder
        self.assertNotIsInstance(cm.exception, FileNotFoundError)
        # VT_ENOMEM from the library: a converter whose 512 MiB slab does not fit under an address-space limit
        raw = os.path.join(d, "big.raw")
        with open(raw, "wb") as f:
            f.truncate(16384 * 16384 * 2)  # sparse: no disk used
        code = (
            "import os, resource, voxtile\n"
            "vm = [int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmSize:')][0]\n"
            "resource.setrlimit(resource.RLIMIT_AS, (vm + (96 << 20), vm + (96 << 20)))\n"
            "try:\n"
            f"    voxtile.convert({raw!r}, {os.path.join(d, 'big.vxt')!r}, threads=1,\n"
            "                    raw={'shape': (1, 16384, 16384), 'dtype': 'int16'})\n"
            "except voxtile.OutOfMemory as e:\n"
            "    print('OutOfMemory', isinstance(e, MemoryError), isinstance(e, voxtile.Error), e.code, e)\n")
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                   PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(voxtile.__file__))),
                   VOXTILE_LIB=os.path.abspath(voxtile._lib._path))
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith("OutOfMemory True True -6 "), p.stdout + p.stderr)
        self.assertIn("big.raw: out of memory", p.stdout)
        self.assertEqual(sorted(os.listdir(d)), ["bad.vxt", "big.raw"], "nothing left behind")

    def test_closed_store(self):
        path = os.path.join(tmpdir(), "c.vxt")
        a = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
        write_store(path, {"a": (a, {"labels": False}), "l": (np.arange(60, dtype=np.uint8).reshape(3, 4, 5),
                                                             {"labels": True})})
        with voxtile.open(path) as st:
            arr = st["a"]
            lab = st["l"]
            assert_same(self, arr[1], a[1])
        # closed by the with block
        self.assertIn("closed", repr(st))
        uses = {"st.arrays": lambda: st.arrays, "st['a'][0]": lambda: st["a"][0], "arr[0]": lambda: arr[0],
                "arr[...]": lambda: arr[...], "arr.read": lambda: arr.read((0, 0, 0), (1, 1, 1)),
                "np.asarray(arr)": lambda: np.asarray(arr), "arr.verify()": lambda: arr.verify(),
                "arr.tile(0)": lambda: arr.tile(0), "lab.labels": lambda: lab.labels,
                "st.file_size": lambda: st.file_size, "'a' in st": lambda: "a" in st, "list(st)": lambda: list(st),
                "st.verify()": lambda: st.verify(), "st.release()": lambda: st.release(),
                "st['nope']": lambda: st["nope"],
                "st['l'] (an array looked up before the close)": lambda: st["l"]}
        for name, use in uses.items():
            with self.assertRaises(voxtile.Error, msg=f"{name} after close"):
                use()
        st.close()  # closing twice is fine
        st2 = voxtile.open(path)
        st2.close()
        with self.assertRaises(voxtile.Error):
            st2["a"]
        with self.assertRaises(voxtile.Error):
            voxtile.open(os.path.join(TMP, "does-not-exist.vxt"))
        bad = os.path.join(tmpdir(), "bad.vxt")
        with open(bad, "wb") as f:
            f.write(b"not a store" * 100)
        with self.assertRaises(voxtile.Error):
            voxtile.open(bad)


# ---- 2. numpy basic indexing -------------------------------------------------------

class Index:
    """An object with __index__ (as numpy takes for an integer key)."""

    def __init__(self, v):
        self.v = v

    def __index__(self):
        return self.v

    def __repr__(self):
        return f"Index({self.v})"


def random_key(rng, shape):
    nd = len(shape)
    n_real = int(rng.integers(0, nd + 1))
    ell = int(rng.integers(0, n_real + 1)) if rng.random() < 0.45 else None
    axes = list(range(n_real)) if ell is None else list(range(ell)) + list(range(nd - (n_real - ell), nd))
    comps = []
    for ax in axes:
        n = shape[ax]
        r = rng.random()
        if r < 0.3:
            v = int(rng.integers(-n, n))
            comps.append(np.int64(v) if rng.random() < 0.2 else v)
        elif r < 0.4:
            comps.append(slice(None))
        else:
            def bound():
                return None if rng.random() < 0.25 else int(rng.integers(-n - 3, n + 4))
            step = None if rng.random() < 0.3 else int(rng.choice([-5, -3, -2, -1, 1, 2, 3, 4, 7]))
            comps.append(slice(bound(), bound(), step))
    if ell is not None:
        comps.insert(ell, Ellipsis)
    for _ in range(int(rng.choice([0, 0, 0, 1, 1, 2]))):
        comps.insert(int(rng.integers(0, len(comps) + 1)), None)
    if len(comps) == 1 and rng.random() < 0.5:
        return comps[0]
    return tuple(comps)


class TestIndexing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rng = np.random.default_rng(4)
        cls.d = tmpdir()
        cls.cases = []
        specs = [((37,), (8,), np.int16), ((9, 11), (4, 3), np.float32), ((5, 6, 7), (2, 4, 3), np.uint8),
                 ((3, 4, 5, 6), (2, 3, 2, 4), np.float64), ((2, 3, 4, 5, 3), (1, 2, 3, 2, 2), np.int32),
                 ((1, 6, 1, 5), (1, 4, 1, 2), np.float16)]
        for k, (shape, tile, dt) in enumerate(specs):
            a = random_array(rng, shape, dt)
            path = os.path.join(cls.d, f"i{k}.vxt")
            write_store(path, {"a": (a, {"tile": tile})})
            cls.cases.append((a, voxtile.open(path)))

    @classmethod
    def tearDownClass(cls):
        for _, st in cls.cases:
            st.close()

    def check(self, a, x, key):
        exp = a[key]
        got = x[key]
        self.assertIsInstance(got, (np.ndarray, np.generic), key)
        assert_same(self, got, exp, f"key {key!r}")

    def test_random_keys(self):
        rng = np.random.default_rng(5)
        n = 0
        for a, st in self.cases:
            x = st["a"]
            for _ in range(900):
                self.check(a, x, random_key(rng, a.shape))
                n += 1
        self.assertGreater(n, 5000)

    def test_special_keys(self):
        for a, st in self.cases:
            x = st["a"]
            n = a.shape[0]
            keys = [0, -1, n - 1, -n, Ellipsis, None, (), (Ellipsis,), (None, Ellipsis, None), slice(None),
                    slice(None, None, -1), slice(n, None, -1), slice(-n - 10, n + 10), slice(3, 1),
                    slice(None, None, -n - 5), slice(n - 1, -n - 1, -1), slice(5, 2, -1), slice(0, 0),
                    (Ellipsis, 0), (Ellipsis, -1), (0, Ellipsis), (None,) * 3, (Ellipsis, None),
                    (slice(None, None, 2),) * a.ndim, (slice(None, None, -2),) * a.ndim, (0,) * a.ndim,
                    (-1,) * a.ndim, (np.newaxis, 0, Ellipsis, np.newaxis), np.int32(-1), np.uint8(0),
                    # integer keys numpy takes besides int: 0-d integer arrays, objects with __index__
                    np.array(0), np.array(-1, np.int8), (Ellipsis, np.array(-1)), (np.array(n - 1), Ellipsis),
                    Index(0), (Index(-1), Ellipsis), (np.array(0),) * a.ndim, (Index(0),) * a.ndim,
                    slice(Index(1), np.array(n), np.int64(2)), slice(np.array(-1), None, Index(-1))]
            for key in keys:
                self.check(a, x, key)
            if a.ndim > 1:
                self.check(a, x, (0, np.array(a.shape[1] - 1)))
                self.check(a, x, (Index(-1), np.array(0), Ellipsis))
            # boolean scalars are masks to numpy (a[True] adds an axis, a[False] an empty one): not integers;
            # voxtile does basic indexing only and says so
            self.assertEqual(a[True].shape, (1,) + a.shape)
            for key in (True, False, np.bool_(True), np.array(True), (0, True), (Ellipsis, np.bool_(False))):
                if isinstance(key, tuple) and a.ndim < 2:
                    continue
                with self.assertRaises(IndexError, msg=repr(key)) as cm:
                    x[key]
                self.assertIn("boolean", str(cm.exception))
            # non-integer 0-d arrays and integer arrays of one element are not integer keys
            for key in (np.array(1.0), np.array([0]), [0]):
                with self.assertRaises(IndexError, msg=repr(key)):
                    x[key]
            assert_same(self, np.asarray(x), a)
            assert_same(self, np.array(x), a)
            assert_same(self, np.asarray(x, dtype=np.float64), a.astype(np.float64))
            # numpy 2 passes copy= to __array__: None and True give a new array, False cannot be honoured
            assert_same(self, x.__array__(copy=None), a)
            got = x.__array__(np.float32, copy=True)
            assert_same(self, got, a.astype(np.float32))
            with self.assertRaises(ValueError):
                x.__array__(copy=False)

    def test_errors_like_numpy(self):
        for a, st in self.cases:
            x = st["a"]
            n = a.shape[0]
            keys = [n, -n - 1, n + 100, (0,) * (a.ndim + 1), (slice(None),) * (a.ndim + 1),
                    (Ellipsis, Ellipsis), (0, Ellipsis, None, Ellipsis), 1.0, 0.5, np.float64(0), "a",
                    (Ellipsis, a.shape[-1]), (Ellipsis, -a.shape[-1] - 1), (None, n)]
            if a.ndim > 1:
                keys += [(0, 1.5), (0, a.shape[1]), (slice(None), -a.shape[1] - 1)]
            for key in keys:
                with self.assertRaises(Exception) as np_err:
                    a[key]
                with self.assertRaises(type(np_err.exception), msg=f"key {key!r}"):
                    x[key]
            for key in [n, -n - 1, (0,) * (a.ndim + 1), (Ellipsis, Ellipsis), 1.0]:
                with self.assertRaises(IndexError, msg=f"key {key!r}"):
                    x[key]
            for key in [slice(0.5, 2), slice(0, 3, 0)]:  # TypeError / ValueError like numpy
                with self.assertRaises(Exception) as np_err:
                    a[key]
                with self.assertRaises(type(np_err.exception), msg=f"key {key!r}"):
                    x[key]


# ---- 3. read() -----------------------------------------------------------------------

class TestRead(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rng = np.random.default_rng(6)
        cls.d = tmpdir()
        cls.arrays = {}
        specs = {"i16": ((7, 9, 11), (3, 4, 5), np.int16), "f32": ((6, 10, 9), (4, 4, 4), np.float32),
                 "u8": ((5, 4), (2, 3), np.uint8), "f64": ((4, 5, 6, 3), (2, 2, 4, 2), np.float64),
                 "f16": ((300,), (64,), np.float16), "i32": ((6, 7), (4, 4), np.int32),
                 "u16": ((5, 1, 6), (2, 1, 4), np.uint16), "one": ((1, 5), (1, 2), np.int8)}
        for name, (shape, tile, dt) in specs.items():
            a = random_array(rng, shape, dt)
            if name == "f32":
                a.reshape(-1)[:50] = [3e38, -3e38, 70000.0, -70000.0, 65519.99, 65520.0, 1e-8, -1e-8,
                                      5.96e-8, 2.98e-8, 2.9802326e-08, 0.5, 1.5, 2.5, -2.5, 127.9, 128.0, -128.5,
                                      -129.0, 255.5, 256.0, 32767.9, 32768.0, -32769.0, 4294967295.0, 4.3e9,
                                      2147483647.0, -2147483649.0, np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0,
                                      1e-40, -1e-40, 65504.0, 65505.0, 65535.0, 1e5, 0.999, -0.999, 1.0, -1.0,
                                      6.1e-5, 6.0e-5, 1.0009766, 1.00048828125, 2049.0, 2051.0]
            cls.arrays[name] = a
        path = os.path.join(cls.d, "r.vxt")
        write_store(path, {k: (a, {"tile": specs[k][1]}) for k, a in cls.arrays.items()})
        cls.st = voxtile.open(path)

    @classmethod
    def tearDownClass(cls):
        cls.st.close()

    def random_box(self, rng, shape, reach=2.0):
        start, size = [], []
        for n in shape:
            s = int(rng.integers(-int(reach * n) - 2, int(reach * n) + 3))
            size.append(int(rng.integers(1, 2 * n + 4)))
            start.append(s)
        return start, size

    def test_boxes_and_pads(self):
        rng = np.random.default_rng(7)
        for name, a in self.arrays.items():
            x = self.st[name]
            for k in range(60):
                start, size = self.random_box(rng, a.shape)
                for mode in ("constant", "edge", "reflect"):
                    if mode == "constant":
                        pv = [0, 3, -1][k % 3]
                        got = x.read(start, size, pad=mode, pad_value=pv)
                        exp = padded_box(a, start, size, mode, pv)
                    else:
                        got = x.read(start, size, pad=mode)
                        exp = padded_box(a, start, size, mode)
                    assert_same(self, got, exp, f"{name} {start} {size} {mode}")
            # wholly inside and wholly outside
            assert_same(self, x.read([0] * a.ndim, a.shape), a)
            far = [n * 3 + 1 for n in a.shape]
            assert_same(self, x.read(far, [2] * a.ndim, pad_value=7), np.full([2] * a.ndim, 7, a.dtype))
            assert_same(self, x.read([-n - 5 for n in a.shape], [3] * a.ndim),
                        np.zeros([3] * a.ndim, a.dtype))

    def test_reflect_large_pads(self):
        for name in ("i16", "u8", "one", "u16"):
            a = self.arrays[name]
            x = self.st[name]
            start = [-3 * n - 2 for n in a.shape]
            size = [7 * n + 5 for n in a.shape]
            assert_same(self, x.read(start, size, pad="reflect"), padded_box(a, start, size, "reflect"), name)
            assert_same(self, x.read(start, size, pad="edge"), padded_box(a, start, size, "edge"), name)

    def test_dtype_conversions(self):
        rng = np.random.default_rng(8)
        outs = INT_TYPES + FLOAT_TYPES
        for name, a in self.arrays.items():
            x = self.st[name]
            for dt in outs:
                got = x.read([0] * a.ndim, a.shape, dtype=dt)
                assert_same(self, got, convert_ref(a, dt), f"{name} -> {np.dtype(dt)}")
                start, size = self.random_box(rng, a.shape, reach=0.5)
                got = x.read(start, size, dtype=dt, pad="reflect")
                assert_same(self, got, convert_ref(padded_box(a, start, size, "reflect"), dt),
                            f"{name} -> {np.dtype(dt)} box")
                # pad_value is converted to the output dtype, not transformed
                got = x.read([-1] * a.ndim, [1] * a.ndim, dtype=dt, pad_value=-3.7)
                assert_same(self, got.reshape(()), convert_ref(np.float64(-3.7), dt), f"pad -> {np.dtype(dt)}")
            # names numpy knows
            assert_same(self, x.read([0] * a.ndim, a.shape, dtype="f4"), convert_ref(a, np.float32))
            assert_same(self, x.read([0] * a.ndim, a.shape, dtype=float), convert_ref(a, np.float64))
            with np.errstate(invalid="ignore"):
                assert_same(self, x.read([0] * a.ndim, a.shape, dtype=bool), a.astype(bool))

    def test_numpy_only_dtypes(self):
        """dtypes the library cannot produce (bool, int64, uint64, longdouble, complex, other byte order):
        numpy's astype of the exact values, boxes and pads and out= included."""
        rng = np.random.default_rng(23)
        targets = [bool, np.int64, np.uint64, np.longdouble, np.complex64, np.complex128, ">i8", "<u8", "?"]
        for name, a in self.arrays.items():
            x = self.st[name]
            for t in targets:
                dt = np.dtype(t)
                with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf to integers, as numpy warns
                    got = x.read([0] * a.ndim, a.shape, dtype=t)
                    assert_same(self, got, a.astype(dt), f"{name} -> {dt}")
                    self.assertEqual(got.dtype, dt)
                    start, size = self.random_box(rng, a.shape, reach=0.5)
                    for mode, pv in (("constant", 0), ("constant", -3), ("constant", 2.5), ("edge", 0),
                                     ("reflect", 0)):
                        got = x.read(start, size, dtype=t, pad=mode, pad_value=pv)
                        if mode == "constant":  # the pad value is cast like the data
                            exp = padded_box(a.astype(np.float64), start, size, "constant", pv).astype(dt)
                        else:
                            exp = padded_box(a, start, size, mode).astype(dt)
                        assert_same(self, got, exp, f"{name} -> {dt} {start} {size} {mode} {pv}")
                    # a transform: computed in float64, then cast
                    got = x.read(start, size, dtype=t, transform=(-50, 60, 0.5, -2), pad="edge")
                    exp = (np.clip(padded_box(a, start, size, "edge").astype(np.float64), -50, 60) * 0.5 - 2)
                    assert_same(self, got, exp.astype(dt), f"{name} -> {dt} transform")
                    # out=: a strided slot of a batch of that dtype, the rest untouched
                    batch = np.ones((2,) + tuple(2 * n for n in size), dt)
                    slot = batch[(1,) + tuple(slice(None, None, 2) for _ in size)]
                    self.assertIs(x.read(start, size, dtype=t, out=slot, pad="reflect"), slot)
                    assert_same(self, slot, padded_box(a, start, size, "reflect").astype(dt), f"{name} out {dt}")
                    self.assertTrue((batch[0] == 1).all())
        # bool is value != 0: 255 and -1 and 0.5 are True, not kept as numbers
        v = self.st["u8"].read((0, 0), self.arrays["u8"].shape, dtype=bool)
        self.assertEqual(v.dtype, np.dtype(bool))
        np.testing.assert_array_equal(v, self.arrays["u8"] != 0)
        # int64/uint64 hold values no voxtile dtype does once transformed
        big = self.st["i32"].read((0, 0), (6, 7), dtype=np.int64, transform=(None, None, 4.0, 0.0))
        assert_same(self, big, (self.arrays["i32"].astype(np.float64) * 4).astype(np.int64), "int64 past int32")
        with self.assertRaises(ValueError):  # out= of the wrong dtype
            self.st["u8"].read((0, 0), (5, 4), dtype=bool, out=np.zeros((5, 4), np.uint8))

    def test_float32_to_float16_bits(self):
        rng = np.random.default_rng(9)
        bits = rng.integers(0, 1 << 32, size=1 << 18, dtype=np.uint64).astype(np.uint32)
        # every exponent, and the neighbourhoods of the half range limits, rounding ties and NaN payloads
        special = np.array([0x477FE000, 0x477FEFFF, 0x477FF000, 0x477FF001, 0x47800000, 0x33000000, 0x33000001,
                            0x32FFFFFF, 0x387FC000, 0x387FE000, 0x38800000, 0x7F800001, 0x7FC00000, 0x7F802000,
                            0x7FFFFFFF, 0xFF800001, 0x7F801FFF, 0x00000001, 0x80000000, 0x3F801000, 0x3F803000,
                            0x3F801001], np.uint32)
        exps = (np.arange(256, dtype=np.uint32) << 23)[:, None] | rng.integers(0, 1 << 23, size=(256, 64),
                                                                              dtype=np.uint32)
        bits = np.concatenate([bits, special, special | 0x80000000, exps.ravel(), exps.ravel() | 0x80000000])
        f = bits.view(np.float32)
        path = os.path.join(tmpdir(), "h.vxt")
        write_store(path, {"f": (f, {"tile": (4096,)})})
        with voxtile.open(path) as st:
            got = st["f"].read((0,), f.shape, dtype=np.float16)
        with np.errstate(over="ignore", invalid="ignore"):
            exp = f.astype(np.float16)
        diff = got.view(np.uint16) != exp.view(np.uint16)
        if diff.any():
            i = np.flatnonzero(diff)[:5]
            self.fail(f"{diff.sum()} float16 results differ from numpy, e.g. float32 bits "
                      f"{[hex(b) for b in bits[i]]}: got {[hex(v) for v in got.view(np.uint16)[i]]}, "
                      f"numpy {[hex(v) for v in exp.view(np.uint16)[i]]}")

    def test_bfloat16_output(self):
        a = self.arrays["f32"]
        x = self.st["f32"]
        got = x.read((0, 0, 0), a.shape, dtype="bfloat16")
        self.assertEqual(got.dtype, np.dtype(np.uint16))
        t = torch.from_numpy(a).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        finite = ~np.isnan(a)
        np.testing.assert_array_equal(got[finite], t[finite])
        np.testing.assert_array_equal(got[finite], bf16_bits_ref(a)[finite])
        nan = got[~finite]
        self.assertTrue(((nan & 0x7F80) == 0x7F80).all() and ((nan & 0x7F) != 0).all(), "NaN stays NaN")
        assert_same(self, self.st["i16"].read((0, 0, 0), self.arrays["i16"].shape, dtype="bf16"),
                    bf16_bits_ref(self.arrays["i16"].astype(np.float32)))

    def test_transform(self):
        rng = np.random.default_rng(10)
        cases = [(-100.0, 200.0, 0.01, -0.5), (None, None, 2.5, 3.0), (0, 50, -3.0, 1000.0),
                 (-1e9, 1e9, 1 / 3.0, 0.1), (10, 10, 1.0, 0.0), (-3.5, None, 1e-3, 0.0)]
        for name, a in self.arrays.items():
            x = self.st[name]
            for (lo, hi, scale, off) in cases:
                for dt in (np.float32, np.float16, np.float64, np.int16, np.uint8, np.int32):
                    start, size = self.random_box(rng, a.shape, reach=0.3)
                    mode = ["constant", "edge", "reflect"][int(rng.integers(3))]
                    got = x.read(start, size, dtype=dt, transform=(lo, hi, scale, off), pad=mode, pad_value=-2)
                    src = padded_box(a, start, size, "edge" if mode == "constant" else mode).astype(np.float64)
                    v = np.clip(src, -np.inf if lo is None else lo, np.inf if hi is None else hi)
                    v = v * scale + off
                    exp = convert_ref(v, dt)
                    if mode == "constant":  # pad_value converted, not transformed
                        inside = padded_box(np.ones(a.shape, bool), start, size, "constant", False)
                        exp[~inside] = convert_ref(np.float64(-2), dt)
                    assert_same(self, got, exp, f"{name} {lo, hi, scale, off} -> {np.dtype(dt)} {mode}")

    def test_out_slots(self):
        a = self.arrays["f32"]
        x = self.st["f32"]
        rng = np.random.default_rng(11)
        size = (3, 5, 4)
        slots = [lambda b: b[1, 0, 1:4, 2:7, 3:7], lambda b: b[2, 1, ::3, 1:11:2, 2:6],
                 lambda b: b[3, 0, 6:3:-1, 11:1:-2, 9:5:-1], lambda b: b[1, 0, 0:4, 0:5, 0:3].transpose(2, 1, 0),
                 lambda b: b[2, 0, 3:6, 0:10:2, 1:5].transpose(2, 1, 0).transpose(2, 1, 0)[:, ::-1]]
        for k in range(15):
            start = [int(rng.integers(-2, n)) for n in a.shape]
            batch = np.full((4, 2, 8, 12, 10), -77.0, np.float32)
            mark = np.zeros(batch.shape, bool)
            slot = slots[k % len(slots)]
            view = slot(batch)
            self.assertEqual(view.shape, size)
            slot(mark)[...] = True
            before = batch.copy()
            r = x.read(start, size, out=view, pad="edge")
            self.assertIs(r, view)
            assert_same(self, view, padded_box(a, start, size, "edge"), f"slot {k % len(slots)}")
            assert_same(self, batch[~mark], before[~mark], "rest of the batch untouched")
        f = np.asfortranarray(np.zeros(size, np.float32))
        x.read((1, 2, 3), size, out=f)
        assert_same(self, f, a[1:4, 2:7, 3:7])
        # a contiguous slot, and a strided one filled by two threads
        batch = np.full((3,) + size, 5.0, np.float32)
        slot = batch[1]
        self.assertIs(x.read((-1, -2, 6), size, out=slot, pad="reflect"), slot)
        assert_same(self, batch[1], padded_box(a, (-1, -2, 6), size, "reflect"))
        self.assertTrue((batch[0] == 5).all() and (batch[2] == 5).all())
        big = np.full((2, 6, 20, 12), 5.0, np.float32)
        x.read((0, 1, 2), (6, 10, 6), out=big[1, :, ::2, ::2], threads=2, pad="edge")
        assert_same(self, big[1, :, ::2, ::2], padded_box(a, (0, 1, 2), (6, 10, 6), "edge"))
        self.assertTrue((big[0] == 5).all() and (big[1, :, 1::2] == 5).all() and (big[1, :, :, 1::2] == 5).all())
        # integer slot with conversion and transform
        batch = np.full((3, 1, 7, 9, 11), 99, np.int16)
        i16 = self.arrays["i16"]
        self.st["i16"].read((-1, 2, 3), (7, 9, 11), dtype=np.int16, transform=(-50, 50, 1, 0), out=batch[1, 0],
                            pad="reflect")
        assert_same(self, batch[1, 0], np.clip(padded_box(i16, (-1, 2, 3), (7, 9, 11), "reflect"), -50, 50))
        self.assertTrue((batch[0] == 99).all() and (batch[2] == 99).all())

    def test_python_threads_share_a_store(self):
        from concurrent.futures import ThreadPoolExecutor
        rng = np.random.default_rng(20)
        jobs = []
        for _ in range(64):
            name = list(self.arrays)[int(rng.integers(len(self.arrays)))]
            start, size = self.random_box(rng, self.arrays[name].shape, reach=0.5)
            jobs.append((name, start, size, ["constant", "edge", "reflect"][int(rng.integers(3))]))

        def work(job):
            name, start, size, mode = job
            return self.st[name].read(start, size, pad=mode, dtype=np.float64, threads=2)

        with ThreadPoolExecutor(4) as ex:
            results = list(ex.map(work, jobs))
        for (name, start, size, mode), got in zip(jobs, results):
            exp = padded_box(self.arrays[name], start, size, mode).astype(np.float64)
            assert_same(self, got, exp, f"{name} {start} {size} {mode}")

    def test_threads(self):
        a = self.arrays["f64"]
        x = self.st["f64"]
        rng = np.random.default_rng(12)
        for _ in range(10):
            start, size = self.random_box(rng, a.shape, reach=0.5)
            one = x.read(start, size, threads=1, pad="reflect", dtype=np.float32)
            two = x.read(start, size, threads=2, pad="reflect", dtype=np.float32)
            four = x.read(start, size, threads=4, pad="reflect", dtype=np.float32)
            assert_same(self, two, one)
            assert_same(self, four, one)
        big, _, _ = ct_data()
        with voxtile.open(ct_store()) as st:
            img = st["image"]
            assert_same(self, img.read((0, -3, 5, -7), (1, 36, 80, 130), threads=2, dtype=np.float32),
                        img.read((0, -3, 5, -7), (1, 36, 80, 130), threads=1, dtype=np.float32))
            assert_same(self, img.read((0, 0, 0, 0), img.shape, threads=2), big)

    def test_argument_errors(self):
        x = self.st["f32"]
        size = (2, 3, 4)
        bad_outs = [np.zeros(size, np.float64), np.zeros((2, 3, 5), np.float32), np.zeros((2, 3, 4, 1), np.float32),
                    np.zeros(size, np.int16), [[0.0]], np.zeros(24, np.float32)]
        ro = np.zeros(size, np.float32)
        ro.flags.writeable = False
        bad_outs.append(ro)
        bad_outs.append(np.zeros((2, 3, 8), np.float16))
        for out in bad_outs:
            with self.assertRaises(ValueError, msg=f"out {getattr(out, 'dtype', type(out))} "
                                                   f"{getattr(out, 'shape', '')}"):
                x.read((0, 0, 0), size, out=out)
        # strides that are not a multiple of the item size
        buf = np.zeros(2 * 3 * 4 * 6, np.uint8)
        odd = np.lib.stride_tricks.as_strided(buf.view(np.float32), size, (36, 12, 3))
        with self.assertRaises(ValueError):
            x.read((0, 0, 0), size, out=odd)
        for kw in [{"pad": "wrap"}, {"pad": "symmetric"}, {"pad": None}, {"dtype": "nonsense"}, {"dtype": object},
                   {"dtype": "U4"}, {"dtype": "S3"}, {"dtype": "M8[s]"}, {"dtype": "m8[s]"}, {"dtype": "V4"},
                   {"dtype": [("a", "f4")]}]:
            with self.assertRaises(voxtile.InvalidArgument, msg=str(kw)):
                x.read((0, 0, 0), size, **kw)
        for start, sz in [((0, 0), (1, 1)), ((0, 0, 0, 0), (1, 1, 1, 1)), ((0, 0, 0), (1, 0, 1)),
                          ((0, 0, 0), (1, -1, 1))]:
            with self.assertRaises(ValueError, msg=f"{start} {sz}"):
                x.read(start, sz)
        self.assertIsInstance(voxtile.InvalidArgument(1, "m"), voxtile.Error)
        # start/size entries: integers (operator.index) in range, never wrapped or truncated
        Idx = Index
        a = self.arrays["f32"]
        ok = x.read((np.int64(1), Idx(2), np.array(3)), (np.uint8(2), Idx(3), np.array(4)))
        assert_same(self, ok, a[1:3, 2:5, 3:7], "numpy integers, __index__ objects, 0-d integer arrays")
        assert_same(self, x.read(np.array([1, 2, 3]), np.array([2, 3, 4], np.uint64)), a[1:3, 2:5, 3:7])
        far = x.read((-(1 << 63), 0, 0), (1, 1, 1), pad_value=4)
        assert_same(self, far, np.full((1, 1, 1), 4, np.float32), "start -2**63 is valid")
        bad = [((2 ** 64 + 5, 0, 0), size, "start wraps to 5"), ((2 ** 63, 0, 0), size, "start 2**63"),
               ((-(2 ** 63) - 1, 0, 0), size, "start below -2**63"), ((5.7, 0, 0), size, "float start"),
               ((np.float64(1.0), 0, 0), size, "numpy float start"), ((True, 0, 0), size, "bool start"),
               ((np.bool_(False), 0, 0), size, "numpy bool start"), ((0, 0, 0), (2.0, 3, 4), "float size"),
               ((0, 0, 0), (True, 3, 4), "bool size"), ((0, 0, 0), (2, 3, 2 ** 63), "size 2**63"),
               ((0, 0, 0), (2, 3, 2 ** 64 + 4), "size wraps to 4"), ((0, 0, 0), (2, 3, "4"), "str size"),
               ((0, 0, 0), (2, 3, None), "None size"), (0, size, "start not a sequence"),
               ((0, 0, 0), (2, 3, np.array([4])), "1-d array entry")]
        for start, sz, what in bad:
            with self.assertRaises(voxtile.InvalidArgument, msg=what) as cm:
                x.read(start, sz)
            self.assertIsInstance(cm.exception, ValueError, what)
            self.assertIn("r.vxt", str(cm.exception), what)
        # a box numpy cannot allocate: OutOfMemory, a voxtile.Error and a MemoryError
        with self.assertRaises(voxtile.OutOfMemory) as cm:
            x.read((0, 0, 0), (1 << 20, 1 << 20, 1 << 20))
        self.assertIsInstance(cm.exception, MemoryError)
        self.assertIsInstance(cm.exception, voxtile.Error)
        # a box whose byte count overflows: InvalidArgument
        with self.assertRaises(voxtile.InvalidArgument):
            x.read((0, 0, 0), (1 << 62, 1 << 62, 1 << 62))


# ---- 4. Writer ---------------------------------------------------------------------------

class TestWriter(unittest.TestCase):
    def test_sparse_fill(self):
        d = tmpdir()
        path = os.path.join(d, "sp.vxt")
        rng = np.random.default_rng(13)
        shape, tile = (9, 10, 11), (4, 4, 4)
        for dt, fill in ((np.int16, -5), (np.float32, 2.5), (np.uint8, 0)):
            ref = np.full(shape, fill, dt)
            with voxtile.Writer(path) as w:
                i = w.add_array("s", shape, dt, tile=tile, sparse=True, fill=fill)
                j = w.add_array("dense", (3,), np.uint8)
                w.write(j, (0,), np.arange(3, dtype=np.uint8))
                # whole tiles, a partial tile, a box across tiles
                for start, size in (((0, 0, 0), (4, 4, 4)), ((4, 8, 8), (4, 2, 3)), ((8, 1, 2), (1, 6, 7))):
                    block = random_array(rng, size, dt)
                    w.write(i, start, block)
                    ref[tuple(slice(s, s + n) for s, n in zip(start, size))] = block
            with voxtile.open(path) as st:
                s = st["s"]
                self.assertEqual(s.fill, fill)
                assert_same(self, s[...], ref, f"sparse {np.dtype(dt)}")
                s.verify()

    def test_write_twice(self):
        d = tmpdir()
        path = os.path.join(d, "t.vxt")
        w = voxtile.Writer(path)
        i = w.add_array("a", (4, 4), np.uint8, tile=(2, 2))
        w.write(i, (0, 0), np.zeros((2, 4), np.uint8))
        with self.assertRaises(voxtile.Error):
            w.write(i, (1, 1), np.zeros((2, 2), np.uint8))
        with self.assertRaises(voxtile.Error):
            w.write(i, (2, 0), np.zeros((2, 4), np.uint8))
            w.finalize()
        w.close()
        self.assertEqual(os.listdir(d), [])
        # outside the array, unknown id, bad arguments
        w = voxtile.Writer(path)
        i = w.add_array("a", (4, 4), np.uint8)
        with self.assertRaises(ValueError):
            w.write(i, (3, 0), np.zeros((2, 4), np.uint8))
        with self.assertRaises((ValueError, IndexError)):
            w.write(i + 5, (0, 0), np.zeros((2, 4), np.uint8))
        with self.assertRaises(ValueError):
            w.add_array("a", (4,), np.uint8)  # duplicate name
        with self.assertRaises(ValueError):
            w.add_array("f", (4,), np.float32, labels=True)
        with self.assertRaises(ValueError):
            w.add_array("g", (4,), np.int64)
        with self.assertRaises(ValueError):
            w.add_array("h", (4,), np.uint8, fill=300)
        w.close()
        self.assertEqual(os.listdir(d), [])

    def test_incomplete_and_abandoned(self):
        d = tmpdir()
        path = os.path.join(d, "inc.vxt")
        w = voxtile.Writer(path)
        i = w.add_array("a", (6, 5), np.int16, tile=(2, 5))
        w.write(i, (0, 0), np.ones((4, 5), np.int16))
        with self.assertRaises(voxtile.Error) as cm:
            w.finalize()
        self.assertIn("a", str(cm.exception))
        w.close()
        self.assertFalse(os.path.exists(path))
        self.assertEqual(os.listdir(d), [])
        # an exception inside the with block
        with self.assertRaises(RuntimeError):
            with voxtile.Writer(path) as w:
                i = w.add_array("a", (2, 2), np.int16)
                w.write(i, (0, 0), np.ones((2, 2), np.int16))
                raise RuntimeError("boom")
        self.assertEqual(os.listdir(d), [])
        # nothing at the path before finalize
        w = voxtile.Writer(path)
        i = w.add_array("a", (2, 2), np.int16)
        w.write(i, (0, 0), np.ones((2, 2), np.int16))
        self.assertFalse(os.path.exists(path))
        w.finalize()
        w.close()
        self.assertEqual(os.listdir(d), ["inc.vxt"])
        os.unlink(path)
        # close without finalize
        w = voxtile.Writer(path)
        i = w.add_array("a", (2, 2), np.int16)
        w.write(i, (0, 0), np.ones((2, 2), np.int16))
        w.close()
        w.close()
        self.assertEqual(os.listdir(d), [])
        # an incomplete with block raises at exit and leaves nothing
        with self.assertRaises(voxtile.Error):
            with voxtile.Writer(path) as w:
                w.add_array("a", (2, 2), np.int16)
        self.assertEqual(os.listdir(d), [])
        # an existing store is replaced only by a successful finalize
        write_store(path, {"old": (np.arange(4, dtype=np.uint8), {})})
        with self.assertRaises(RuntimeError):
            with voxtile.Writer(path) as w:
                w.write(w.add_array("new", (4,), np.uint8), (0,), np.zeros(4, np.uint8))
                raise RuntimeError
        self.assertEqual(sorted(os.listdir(d)), ["inc.vxt"])
        with voxtile.open(path) as st:
            self.assertEqual(st.arrays, ["old"])

    def test_labels(self):
        d = tmpdir()
        rng = np.random.default_rng(14)
        for k, (shape, tile, dt) in enumerate((((1, 13, 17, 19), (1, 4, 8, 5), np.uint8),
                                               ((12, 10, 9), (5, 3, 4), np.int16),
                                               ((300,), (64,), np.int32), ((7, 9), (7, 9), np.uint16))):
            a = rng.choice(np.array([0, 0, 0, 1, 2, 5, 117, 200], np.int64), size=shape).astype(dt)
            if np.dtype(dt).kind == "i":
                a.reshape(-1)[::7] = -3
            a[(slice(0, 1),) * a.ndim] = 9  # a value in one voxel
            path = os.path.join(d, f"l{k}.vxt")
            write_store(path, {"seg": (a, {"tile": tile, "labels": True}), "img": (a.astype(np.float32), {})},
                        rng=rng)
            with voxtile.open(path) as st:
                s = st["seg"]
                labels = s.labels
                self.assertEqual(st["img"].labels, {})
                values, counts = np.unique(a, return_counts=True)
                self.assertEqual(sorted(labels), values.tolist())
                self.assertEqual(list(labels), sorted(labels), "increasing value")
                per_tile = {}
                for t in range(s.ntiles):
                    info = s.tile(t)
                    box = a[tuple(slice(b, b + e) for b, e in zip(info["start"], info["extent"]))]
                    v, c = np.unique(box, return_counts=True)
                    for vv, cc in zip(v.tolist(), c.tolist()):
                        per_tile.setdefault(vv, {})[t] = cc
                for v, n in zip(values.tolist(), counts.tolist()):
                    voxels, tiles = labels[v]
                    self.assertEqual(voxels, n, f"value {v}")
                    self.assertEqual(tiles.dtype, np.uint64)
                    self.assertEqual(tiles.shape[1], 2)
                    self.assertEqual(int(tiles[:, 1].sum()), n)
                    self.assertTrue((np.diff(tiles[:, 0].astype(np.int64)) > 0).all(), "by tile number")
                    self.assertEqual({int(t): int(c) for t, c in tiles}, per_tile[v], f"value {v}")


# ---- 5. PatchDataset ---------------------------------------------------------------------

def collate(items):
    return torch.utils.data.default_collate(items)


def batches_equal(got, exp):
    return len(got) == len(exp) and all(set(g) == set(e) and all(torch.equal(g[k], e[k]) for k in e)
                                        for g, e in zip(got, exp))


def assert_batches_equal(tc, got, exp, msg):
    tc.assertEqual(len(got), len(exp), msg)
    for b, (g, e) in enumerate(zip(got, exp)):
        tc.assertEqual(set(g), set(e), msg)
        for k in e:
            tc.assertEqual(g[k].dtype, e[k].dtype, f"{msg} batch {b} {k}")
            tc.assertTrue(torch.equal(g[k], e[k]), f"{msg}: batch {b} key {k} differs")


def make_fg_store(path, rng):
    """A small (2, 20, 24, 28) image with a sparse two-label segmentation (label 1 large, label 4 small)."""
    shape = (20, 24, 28)
    seg = np.zeros(shape, np.uint8)
    seg[3:9, 4:12, 5:14] = 1
    seg[14:16, 18:20, 22:25] = 4
    seg[0, 0, 0] = 1
    img = rng.standard_normal((2,) + shape).astype(np.float32) * 100
    write_store(path, {"image": (img, {"tile": (1, 8, 8, 8)}), "seg": (seg[None], {"tile": (1, 8, 8, 8),
                                                                                    "labels": True})}, rng=rng)
    return img, seg


class TestPatchDataset(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = tmpdir()
        rng = np.random.default_rng(15)
        cls.fg_path = os.path.join(cls.d, "fg.vxt")
        cls.fg_img, cls.fg_seg = make_fg_store(cls.fg_path, rng)
        # a second case: smaller than the patch along z
        cls.small_path = os.path.join(cls.d, "small.vxt")
        cls.small_img = rng.integers(-1000, 1000, size=(1, 6, 30, 26)).astype(np.int16)
        cls.small_seg = (rng.random((1, 6, 30, 26)) < 0.05).astype(np.uint8) * 3
        write_store(cls.small_path, {"image": (cls.small_img, {}), "seg": (cls.small_seg, {"labels": True})},
                    rng=rng)

    def full(self, case_paths):
        out = []
        img_ct, seg_ct, _ = ct_data()
        for p in case_paths:
            if p == self.fg_path:
                out.append((self.fg_img, self.fg_seg[None]))
            elif p == self.small_path:
                out.append((self.small_img, self.small_seg))
            else:
                out.append((img_ct, seg_ct))
        return out

    def check_items(self, ds, items, np_dtype=np.float32, seg_pad=-1, img_pad=0.0):
        full = self.full(ds.paths)
        ps = ds.patch_size
        for i, it in enumerate(items):
            img, seg = full[it["case"]]
            start = [int(v) for v in it["start"]]
            self.assertEqual(len(start), 3)
            self.assertEqual(it["image"].shape, (img.shape[0],) + ps)
            self.assertEqual(it["seg"].shape, (1,) + ps)
            self.assertEqual(it["seg"].dtype, torch.int16)
            exp_img = padded_box(img.astype(np.float64), [0] + start, (img.shape[0],) + ps, "constant", img_pad)
            exp_seg = padded_box(seg.astype(np.int16), [0] + start, (1,) + ps, "constant", seg_pad)
            if np_dtype is not None:
                got = it["image"].numpy()
                self.assertEqual(got.dtype, np.dtype(np_dtype))
                assert_same(self, got, exp_img.astype(np_dtype), f"item {i} image")
            assert_same(self, it["seg"].numpy(), exp_seg, f"item {i} seg")
            # a patch overlaps the volume
            for s, p, n in zip(start, ps, img.shape[1:]):
                self.assertTrue(s + p > 0 and s < n, f"item {i}: start {start} outside")

    def test_items_same_box(self):
        paths = [ct_store(), self.fg_path, self.small_path]
        ds = PatchDataset(paths, (16, 24, 20), dtype=torch.float32, seed=3, length=60, oversample_foreground=0.4)
        items = [ds[i] for i in range(len(ds))]
        self.assertEqual(len(ds), 60)
        self.assertEqual({it["case"] for it in items}, {0, 1, 2})
        self.check_items(ds, items)
        with self.assertRaises(IndexError):
            ds[60]
        # default dtype float16; other pad values
        ds16 = PatchDataset(paths, (16, 24, 20), seed=3, length=20, pad_value=-5.0, seg_pad_value=255)
        items16 = [ds16[i] for i in range(len(ds16))]
        self.assertEqual(items16[0]["image"].dtype, torch.float16)
        self.check_items(ds16, items16, np_dtype=np.float16, seg_pad=255, img_pad=-5.0)
        # bfloat16: torch's own conversion of the float32 patch
        dsbf = PatchDataset(paths, (16, 24, 20), dtype=torch.bfloat16, seed=3, length=60,
                            oversample_foreground=0.4)
        for i in range(len(dsbf)):
            it = dsbf[i]
            self.assertEqual(it["image"].dtype, torch.bfloat16)
            self.assertTrue(torch.equal(it["start"], items[i]["start"]))
            want = items[i]["image"].to(torch.bfloat16)
            self.assertTrue(torch.equal(it["image"].view(torch.int16), want.view(torch.int16)), f"bf16 item {i}")
        # patch larger than the volume on every axis
        dsl = PatchDataset([self.small_path], (9, 33, 40), dtype=torch.float32, seed=1, length=12)
        self.check_items(dsl, [dsl[i] for i in range(12)])
        # only the image
        dsi = PatchDataset([self.fg_path], (8, 8, 8), arrays=("image",), dtype=torch.float32, length=5)
        it = dsi[0]
        self.assertNotIn("seg", it)
        self.assertEqual(it["image"].shape, (2, 8, 8, 8))

    def test_argument_errors(self):
        with self.assertRaises(ValueError):
            PatchDataset([], (8, 8, 8))
        for ps in ((8, 8), (8, 0, 8), (8, 8, 8, 8)):
            with self.assertRaises(ValueError):
                PatchDataset([self.fg_path], ps)
        d = tmpdir()
        flat = os.path.join(d, "flat.vxt")
        write_store(flat, {"image": (np.zeros((10, 10, 10), np.float32), {})})
        with self.assertRaises(voxtile.InvalidArgument):
            PatchDataset([flat], (4, 4, 4), arrays=("image",))[0]
        for bad in (dict(shape=(10, 10, 10), patch_size=(4, 4, 4)), dict(shape=(1, 10, 10, 10), patch_size=(4, 4))):
            with self.assertRaises(ValueError):
                Stitcher(os.path.join(d, "s.vxt"), **bad)
        self.assertEqual(os.listdir(d), ["flat.vxt"])

    def test_epochs(self):
        ds = PatchDataset([ct_store(), self.small_path], (8, 16, 16), dtype=torch.float32, seed=7, length=30)
        e0 = [ds[i] for i in range(30)]
        again = [ds[i] for i in range(30)]
        assert_batches_equal(self, [collate(again)], [collate(e0)], "same epoch")
        ds.set_epoch(1)
        e1 = [ds[i] for i in range(30)]
        same = sum(torch.equal(a["start"], b["start"]) and a["case"] == b["case"] for a, b in zip(e0, e1))
        self.assertLess(same, 5, "another epoch draws other patches")
        ds.set_epoch(0)
        assert_batches_equal(self, [collate([ds[i] for i in range(30)])], [collate(e0)], "back to epoch 0")
        ds.set_epoch(1)
        assert_batches_equal(self, [collate([ds[i] for i in range(30)])], [collate(e1)], "epoch 1 again")
        other = PatchDataset([ct_store(), self.small_path], (8, 16, 16), dtype=torch.float32, seed=8, length=30)
        same = sum(torch.equal(a["start"], other[i]["start"]) for i, a in enumerate(e0))
        self.assertLess(same, 5, "another seed draws other patches")
        fresh = PatchDataset([ct_store(), self.small_path], (8, 16, 16), dtype=torch.float32, seed=7, length=30)
        assert_batches_equal(self, [collate([fresh[i] for i in range(30)])], [collate(e0)], "a fresh dataset")

    def loader_batches(self, ds, epochs=(0,), **kw):
        loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, **kw)
        out = []
        for e in epochs:
            ds.set_epoch(e)
            out.append(list(loader))
        return out

    def reference_batches(self, ds, epoch):
        ds.set_epoch(epoch)
        return [collate([ds[i] for i in range(b, min(b + 4, len(ds)))]) for b in range(0, len(ds), 4)]

    def test_dataloader_fork(self):
        ds = PatchDataset([ct_store(), self.small_path], (8, 16, 16), seed=11, length=22, release_every=3)
        ref = self.reference_batches(ds, 0)  # stores opened in the parent before the fork
        got, = self.loader_batches(ds, multiprocessing_context="fork")
        assert_batches_equal(self, got, ref, "fork")

    def test_dataloader_spawn(self):
        ds = PatchDataset([ct_store(), self.small_path], (8, 16, 16), seed=12, length=22,
                          oversample_foreground=0.5)
        ref = self.reference_batches(ds, 2)
        got, = self.loader_batches(ds, epochs=(2,), multiprocessing_context="spawn")
        assert_batches_equal(self, got, ref, "spawn")

    def batch_mode(self, ctx):
        """batch_size mode (each patch read into its slot of a shared-memory batch in the worker) through a
        2-worker DataLoader(batch_size=None): the same batches as a single-process pass, and as the
        item-mode patches collated."""
        paths = [ct_store(), self.small_path]  # one channel each: one batch tensor
        kw = dict(seed=14, length=26, oversample_foreground=0.5, dtype=torch.float32)
        ds = PatchDataset(paths, (8, 16, 12), batch_size=4, **kw)
        self.assertEqual(len(ds), 6)
        ds.set_epoch(1)
        ref = [ds[i] for i in range(len(ds))]  # in this process: no shared memory
        items = PatchDataset(paths, (8, 16, 12), **kw)
        items.set_epoch(1)
        collated = [collate([items[i] for i in range(4 * b, 4 * b + 4)]) for b in range(len(ds))]
        assert_batches_equal(self, ref, collated, "batch mode vs item mode collated")
        self.check_items(items, [items[i] for i in range(24)])  # and so against numpy
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context=ctx)
        got = list(loader)
        assert_batches_equal(self, got, ref, f"batch mode, 2 {ctx} workers")
        for b in got:
            self.assertEqual(tuple(b["image"].shape), (4, 1, 8, 16, 12))
            self.assertEqual(tuple(b["seg"].shape), (4, 1, 8, 16, 12))

    def test_dataloader_batch_mode_fork(self):
        self.batch_mode("fork")
        # stores with other channel counts cannot share a batch tensor: a clear error, not a shape mismatch
        mixed = PatchDataset([ct_store(), self.fg_path], (4, 4, 4), batch_size=8, seed=1, length=16)
        with self.assertRaisesRegex(voxtile.InvalidArgument, "same number of channels"):
            mixed[0]

    def test_dataloader_batch_mode_spawn(self):
        self.batch_mode("spawn")

    def test_dataloader_persistent(self):
        ds = PatchDataset([ct_store(), self.small_path], (8, 16, 16), seed=13, length=16)
        ref = [self.reference_batches(ds, e) for e in (0, 1, 2)]
        ds.set_epoch(0)
        got = self.loader_batches(ds, epochs=(0, 1, 2), persistent_workers=True)
        assert_batches_equal(self, got[0], ref[0], "persistent workers, epoch 0")
        for e in (1, 2):
            stale = [k for k in range(e) if batches_equal(got[e], ref[k])]
            note = f" -- the workers served epoch {stale} again" if stale else ""
            assert_batches_equal(self, got[e], ref[e], f"persistent workers, set_epoch({e}) after the workers "
                                                       f"started{note}")

    def centre_labels(self, ds, items):
        full = self.full(ds.paths)
        out = []
        for it in items:
            seg = full[it["case"]][1][0]
            c = [int(s) + p // 2 for s, p in zip(it["start"], ds.patch_size)]
            inside = all(0 <= v < n for v, n in zip(c, seg.shape))
            lab = int(seg[tuple(c)]) if inside else -1
            # the item's own seg patch agrees
            self.assertEqual(int(it["seg"][0][tuple(p // 2 for p in ds.patch_size)]), lab)
            out.append(lab)
        return np.array(out)

    def test_oversample_all_foreground(self):
        for paths, ps in (([ct_store(), self.fg_path, self.small_path], (8, 16, 16)), ([self.fg_path], (5, 7, 9)),
                          ([self.small_path], (9, 40, 4))):
            ds = PatchDataset(paths, ps, oversample_foreground=1.0, seed=5, length=80, dtype=torch.float32)
            items = [ds[i] for i in range(len(ds))]
            labs = self.centre_labels(ds, items)
            self.assertTrue((labs > 0).all(), f"{ps}: centres {labs.tolist()}")
            self.check_items(ds, items)

    def test_labels_option(self):
        ct = ct_store()
        _, seg_ct, _ = ct_data()
        present = np.unique(seg_ct)
        chosen = [int(present[3]), int(present[-1])]
        ds = PatchDataset([ct], (8, 16, 16), oversample_foreground=1.0, seed=6, length=60, labels=chosen)
        labs = self.centre_labels(ds, [ds[i] for i in range(60)])
        self.assertTrue(set(labs.tolist()) <= set(chosen), labs.tolist())
        self.assertEqual(set(labs.tolist()), set(chosen))
        # a random label, then a random voxel of it: the small label as often as the large one
        ds = PatchDataset([self.fg_path], (4, 4, 4), oversample_foreground=1.0, seed=9, length=400)
        labs = self.centre_labels(ds, [ds[i] for i in range(400)])
        self.assertTrue(set(labs.tolist()) <= {1, 4})
        n4 = int((labs == 4).sum())
        self.assertLessEqual(abs(n4 - 200), 4 * math.sqrt(400 * 0.25), f"label 4 chosen {n4} of 400 times")
        # labels naming one absent from the case: uniform start instead
        ds = PatchDataset([self.fg_path], (4, 4, 4), oversample_foreground=1.0, seed=9, length=40, labels=[77])
        items = [ds[i] for i in range(40)]
        self.check_items(ds, items, np_dtype=None)

    def exact_fg_fraction(self, img_shape, seg, ps):
        """Probability that a uniformly started patch has a foreground centre."""
        axes = []
        for s, p in zip(img_shape, ps):
            lo, hi = min(0, s - p), max(0, s - p)
            axes.append(np.arange(lo, hi + 1) + p // 2)
        fg = seg != 0
        total = 0
        for z in axes[0]:
            if not 0 <= z < fg.shape[0]:
                continue
            ys = axes[1][(axes[1] >= 0) & (axes[1] < fg.shape[1])]
            xs = axes[2][(axes[2] >= 0) & (axes[2] < fg.shape[2])]
            total += int(fg[z][np.ix_(ys, xs)].sum())
        return total / np.prod([len(a) for a in axes])

    def test_oversample_fractions(self):
        ps = (6, 6, 6)
        n = 1200  # cheap items; enough for a 4-sigma band of about +-0.055
        q_exact = self.exact_fg_fraction(self.fg_seg.shape, self.fg_seg, ps)
        self.assertTrue(0.02 < q_exact < 0.5)
        ds0 = PatchDataset([self.fg_path], ps, oversample_foreground=0.0, seed=21, length=n)
        labs0 = self.centre_labels(ds0, [ds0[i] for i in range(n)])
        q = float((labs0 > 0).mean())
        self.assertLessEqual(abs(q - q_exact), 4 * math.sqrt(q_exact * (1 - q_exact) / n),
                             f"oversample 0.0: {q} foreground centres, expected {q_exact}")
        ds5 = PatchDataset([self.fg_path], ps, oversample_foreground=0.5, seed=22, length=n)
        labs5 = self.centre_labels(ds5, [ds5[i] for i in range(n)])
        f = float((labs5 > 0).mean())
        p = 0.5 + 0.5 * q_exact
        self.assertLessEqual(abs(f - p), 4 * math.sqrt(p * (1 - p) / n),
                             f"oversample 0.5: {f} foreground centres, expected {p}")


# ---- 6. GridPatches --------------------------------------------------------------------------

class TestGridPatches(unittest.TestCase):
    def test_sliding_window_steps(self):
        rng = np.random.default_rng(16)
        for _ in range(400):
            size = tuple(int(v) for v in rng.integers(1, 300, size=3))
            patch = tuple(int(v) for v in rng.integers(1, 130, size=3))
            overlap = float(rng.choice([0.0, 0.25, 0.5, 0.75, 0.1, 0.9]))
            got = sliding_window_steps(size, patch, overlap)
            exp = nnunet_steps(size, patch, 1 - overlap)
            self.assertEqual([list(s) for s in got], exp, f"{size} {patch} {overlap}")
            for s, n, p in zip(got, size, patch):
                self.assertEqual(s[0], 0)
                self.assertEqual(s[-1], max(0, n - p))
        self.assertEqual(sliding_window_steps((100,), (40,), 0.5), [[0, 20, 40, 60]])
        self.assertEqual(sliding_window_steps((10, 5, 8), (8, 8, 8)), [[0, 2], [0], [0]])

    def test_grid(self):
        d = tmpdir()
        rng = np.random.default_rng(17)
        for k, (shape, ps, overlap) in enumerate((((2, 23, 19, 17), (8, 8, 8), 0.5), ((1, 5, 40, 9), (8, 16, 9), 0.25),
                                                  ((1, 30, 31, 32), (10, 12, 7), 0.0))):
            img = rng.standard_normal(shape).astype(np.float32)
            path = os.path.join(d, f"g{k}.vxt")
            write_store(path, {"image": (img, {"tile": (1, 4, 8, 8)})}, rng=rng)
            gp = GridPatches(path, ps, overlap=overlap)
            steps = nnunet_steps(shape[1:], ps, 1 - overlap)
            exp = list(itertools.product(*steps))  # C order: z slowest
            got = [tuple(int(v) for v in s) for s in gp]
            self.assertEqual(got, exp)
            self.assertEqual(len(gp), len(exp))
            for start in exp[:: max(1, len(exp) // 7)]:
                assert_same(self, gp.read(start), padded_box(img, (0,) + start, (shape[0],) + ps, "constant", 0))
                assert_same(self, gp.read(start, dtype=np.float16, pad="edge"),
                            padded_box(img, (0,) + start, (shape[0],) + ps, "edge").astype(np.float16))
            with voxtile.open(path) as st:
                self.assertEqual(list(GridPatches(st, ps, overlap=overlap)), exp)

    def test_gaussian_importance(self):
        for ps in ((8, 8, 8), (5, 12, 7), (1, 4, 9)):
            g = gaussian_importance(ps)
            self.assertEqual(g.shape, ps)
            self.assertEqual(g.dtype, np.float32)
            exp = np.ones(ps)
            for d, p in enumerate(ps):
                c = np.arange(p) - (p - 1) / 2
                shape = [1, 1, 1]
                shape[d] = p
                exp = exp * np.exp(-0.5 * (c / (p / 8)) ** 2).reshape(shape)
            exp /= exp.max()
            exp[exp == 0] = exp[exp > 0].min()
            np.testing.assert_allclose(g, exp, rtol=1e-6, atol=0)
            self.assertEqual(float(g.max()), 1.0)
            self.assertGreater(float(g.min()), 0.0)


# ---- 7. Stitcher ------------------------------------------------------------------------------

def fake_prediction(start, C, ps):
    """Deterministic in the voxel position and the patch: overlapping patches disagree."""
    z, y, x = np.meshgrid(*[np.arange(s, s + p, dtype=np.float64) for s, p in zip(start, ps)], indexing="ij")
    c = np.arange(C, dtype=np.float64)[:, None, None, None]
    base = np.sin(0.31 * z * (c + 1) + 0.17 * y - 0.23 * x * (c - 0.5)) + 0.1 * c
    patch = 0.3 * np.cos(1.7 * start[0] + 2.3 * start[1] + 0.7 * start[2] + 0.9 * c + 0.05 * (x - y))
    return (base + patch).astype(np.float32)


def stitch_reference(shape, ps, starts, preds):
    C, Z, Y, X = shape
    g = gaussian_importance(ps).astype(np.float64)
    acc = np.zeros((C, Z + 2 * ps[0], Y + 2 * ps[1], X + 2 * ps[2]))
    w = np.zeros(acc.shape[1:])
    for s, p in zip(starts, preds):
        sl = tuple(slice(v + q, v + q + q) for v, q in zip(s, ps))
        acc[(slice(None),) + sl] += p.astype(np.float64) * g
        w[sl] += g
    inner = tuple(slice(q, q + n) for q, n in zip(ps, (Z, Y, X)))
    return acc[(slice(None),) + inner] / w[inner]


class TestStitcher(unittest.TestCase):
    def run_case(self, shape, ps, overlap, output="probabilities", dtype=np.float32, as_tensor=False):
        d = tmpdir()
        src = os.path.join(d, "src.vxt")
        write_store(src, {"image": (np.zeros((1,) + shape[1:], np.uint8), {})})
        gp = GridPatches(src, ps, overlap=overlap)
        starts = list(gp)
        preds = [fake_prediction(s, shape[0], ps) for s in starts]
        out = os.path.join(d, "pred.vxt")
        st = Stitcher(out, shape, ps, output=output, dtype=dtype, metadata={"note": "x", "spacing": [1, 2, 3]})
        for s, p in zip(starts, preds):
            st.add(s, torch.from_numpy(p) if as_tensor else p)
        st.finalize()
        ref = stitch_reference(shape, ps, starts, preds)
        return out, ref, len(starts)

    def test_probabilities(self):
        for shape, ps, overlap, as_tensor in (((3, 23, 19, 17), (8, 8, 8), 0.5, False),
                                              ((2, 11, 30, 5), (4, 16, 8), 0.25, True),
                                              ((2, 5, 12, 13), (8, 8, 8), 0.5, False),
                                              ((2, 40, 7, 6), (6, 4, 4), 0.0, False),
                                              ((1, 9, 9, 9), (9, 9, 9), 0.5, False)):
            out, ref, n = self.run_case(shape, ps, overlap, as_tensor=as_tensor)
            self.assertGreater(n, 0)
            with voxtile.open(out) as st:
                self.assertEqual(st.arrays, ["pred"])
                self.assertEqual(st.metadata["note"], "x")
                a = st["pred"]
                self.assertEqual(a.shape, shape)
                self.assertEqual(a.dtype, np.dtype(np.float32))
                np.testing.assert_allclose(a[...], ref, rtol=1e-5, atol=1e-5, err_msg=f"{shape} {ps}")
        out, ref, _ = self.run_case((3, 23, 19, 17), (8, 8, 8), 0.5, dtype=np.float16)
        with voxtile.open(out) as st:
            self.assertEqual(st["pred"].dtype, np.dtype(np.float16))
            np.testing.assert_allclose(st["pred"][...].astype(np.float64), ref, rtol=2e-3, atol=2e-3)

    def test_argmax(self):
        shape = (3, 23, 19, 17)
        out, ref, _ = self.run_case(shape, (8, 8, 8), 0.5, output="argmax")
        with voxtile.open(out) as st:
            a = st["pred"]
            self.assertEqual(a.shape, (1,) + shape[1:])
            self.assertEqual(a.dtype, np.dtype(np.uint8))
            got = a[...][0]
        exp = ref.argmax(axis=0).astype(np.uint8)
        srt = np.sort(ref, axis=0)
        clear = (srt[-1] - srt[-2]) > 1e-4  # no near-ties in float32
        self.assertGreater(clear.mean(), 0.99)
        np.testing.assert_array_equal(got[clear], exp[clear])
        top2 = np.argsort(ref, axis=0)[-2:]
        self.assertTrue(((got == top2[0]) | (got == top2[1])).all())
        with voxtile.open(out) as st:
            values, counts = np.unique(got, return_counts=True)
            self.assertEqual({v: c for v, (c, _) in st["pred"].labels.items()},
                             dict(zip(values.tolist(), counts.tolist())))

    def test_errors_and_abandon(self):
        d = tmpdir()
        out = os.path.join(d, "p.vxt")
        shape, ps = (2, 12, 10, 9), (4, 4, 4)
        st = Stitcher(out, shape, ps)
        st.add((4, 0, 0), fake_prediction((4, 0, 0), 2, ps))
        st.add((4, 6, 5), fake_prediction((4, 6, 5), 2, ps))
        st.add((4, 0, 5), fake_prediction((4, 0, 5), 2, ps))  # y may go back within one z
        with self.assertRaises(ValueError):
            st.add((2, 0, 0), fake_prediction((2, 0, 0), 2, ps))
        with self.assertRaises(ValueError):
            st.add((6, 0, 0), np.zeros((2, 4, 4, 5), np.float32))
        with self.assertRaises(ValueError):
            st.add((6, 0, 0), np.zeros((3, 4, 4, 4), np.float32))
        st.close()
        self.assertEqual(os.listdir(d), [])
        with self.assertRaises(RuntimeError):
            with Stitcher(out, shape, ps) as st:
                st.add((0, 0, 0), fake_prediction((0, 0, 0), 2, ps))
                raise RuntimeError("stop")
        self.assertEqual(os.listdir(d), [])
        with self.assertRaises(ValueError):
            Stitcher(out, shape, ps, output="softmax")
        self.assertEqual(os.listdir(d), [])
        # the with block finalizes; adding afterwards fails
        with Stitcher(out, shape, ps) as st:
            for s in itertools.product(*nnunet_steps(shape[1:], ps, 0.5)):
                st.add(s, fake_prediction(s, 2, ps))
        self.assertEqual(os.listdir(d), ["p.vxt"])
        with self.assertRaises(RuntimeError):
            st.add((8, 0, 0), fake_prediction((8, 0, 0), 2, ps))
        with voxtile.open(out) as s:
            self.assertEqual(s["pred"].shape, shape)


# ---- 8. dask ------------------------------------------------------------------------------------

class TestDask(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rng = np.random.default_rng(18)
        cls.d = tmpdir()
        cls.a = rng.standard_normal((2, 37, 41, 43)).astype(np.float32)
        cls.path = os.path.join(cls.d, "dk.vxt")
        write_store(cls.path, {"image": (cls.a, {"tile": (1, 8, 8, 16)}),
                               "seg": ((cls.a > 1).astype(np.uint8), {"tile": (1, 5, 7, 8)})}, rng=rng)

    def check_chunks(self, x, tile, shape):
        for axis_chunks, t, n in zip(x.chunks, tile, shape):
            self.assertEqual(sum(axis_chunks), n)
            for c in axis_chunks[:-1]:
                self.assertEqual(c % t, 0, f"chunks {x.chunks} tile {tile}")
            self.assertTrue(axis_chunks[-1] % t == 0 or axis_chunks[-1] < t or sum(axis_chunks) == n)

    def test_local(self):
        import dask
        for cb in (1, 4096, 40000, 1 << 20, 32 << 20):
            x = voxtile.dask.from_store(self.path, "image", chunk_bytes=cb)
            self.assertEqual(x.shape, self.a.shape)
            self.assertEqual(x.dtype, self.a.dtype)
            self.check_chunks(x, (1, 8, 8, 16), self.a.shape)
            self.assertLessEqual(int(np.prod(x.chunksize)) * 4, max(cb, 8 * 8 * 16 * 4), "about chunk_bytes")
            if cb == 1:
                self.assertEqual(x.numblocks, (2, 5, 6, 3))
        x = voxtile.dask.from_store(self.path)
        a64 = self.a.astype(np.float64)
        with dask.config.set(scheduler="threads"):
            np.testing.assert_allclose(float(x.mean().compute()), a64.mean(), rtol=1e-5)
            np.testing.assert_allclose(float(x.std().compute()), a64.std(), rtol=1e-5)
            np.testing.assert_allclose(float(x[0, 5:20].sum().compute()), a64[0, 5:20].sum(), rtol=1e-4,
                                       atol=1e-3)
            assert_same(self, x[1, 3:30:4, ::-3, 7].compute(), self.a[1, 3:30:4, ::-3, 7])
            assert_same(self, np.asarray(x), self.a)
        s = voxtile.dask.from_store(self.path, "seg", chunk_bytes=2000)
        self.check_chunks(s, (1, 5, 7, 8), self.a.shape)
        with dask.config.set(scheduler="sync"):
            self.assertEqual(int(s.sum().compute()), int((self.a > 1).sum()))

    def test_rewritten_store(self):
        """A store rewritten at the same path (published by rename, as voxtile writers do) is read anew by
        from_store(), not served from the per-process open cache; a graph of the old file fails loudly."""
        import dask
        d = tmpdir()
        path = os.path.join(d, "re.vxt")
        rng = np.random.default_rng(19)
        first = rng.integers(-100, 100, size=(1, 9, 10, 11)).astype(np.int16)
        second = rng.integers(-100, 100, size=(1, 9, 10, 11)).astype(np.int16)  # same shape and dtype
        self.assertNotEqual(int(first.sum()), int(second.sum()))
        write_store(path, {"image": (first, {"tile": (1, 4, 4, 4)})})
        with dask.config.set(scheduler="sync"):
            old = voxtile.dask.from_store(path)
            self.assertEqual(int(old.sum(dtype=np.int64).compute()), int(first.astype(np.int64).sum()))
            ino = os.stat(path).st_ino
            write_store(path, {"image": (second, {"tile": (1, 4, 4, 4)})})  # a temporary file renamed over it
            self.assertNotEqual(os.stat(path).st_ino, ino, "published by rename")
            new = voxtile.dask.from_store(path)
            self.assertNotEqual(new.name, old.name)
            self.assertEqual(int(new.sum(dtype=np.int64).compute()), int(second.astype(np.int64).sum()))
            assert_same(self, new.compute(), second)
            # the old graph's file is gone from the path: an error naming it, not a mix of both files
            with self.assertRaises(voxtile.Error) as cm:
                old.sum().compute()
            self.assertIn("from_store() again", str(cm.exception))
            # a third version, rewritten in place through another name and os.replace
            third = second[:, :, :, ::-1] * 2
            tmp_path = os.path.join(d, "re.tmp.vxt")
            write_store(tmp_path, {"image": (third, {"tile": (1, 4, 4, 4)})})
            os.replace(tmp_path, path)
            assert_same(self, voxtile.dask.from_store(path).compute(), third)
        with dask.config.set(scheduler="threads"):
            self.assertEqual(int(voxtile.dask.from_store(path).sum(dtype=np.int64).compute()),
                             int(third.astype(np.int64).sum()))

    def test_two_chunkings_compose(self):
        """Two dask arrays of the same store array with different chunks are different graphs."""
        import dask
        small = voxtile.dask.from_store(self.path, "image", chunk_bytes=40000)
        whole = voxtile.dask.from_store(self.path, "image")
        self.assertNotEqual(small.chunks, whole.chunks)
        error = None
        try:
            with dask.config.set(scheduler="sync"):
                total = float((small + whole).sum().compute())
                diff = float(abs(small - whole).max().compute())
        except Exception as e:
            error = repr(e)
        if error:
            self.fail(f"combining from_store(chunk_bytes=40000) {small.chunksize} and from_store() "
                      f"{whole.chunksize} failed: {error} (graph names {small.name!r} / {whole.name!r})")
        self.assertEqual(diff, 0.0)
        np.testing.assert_allclose(total, 2 * self.a.astype(np.float64).sum(), rtol=1e-5, atol=1e-2)

    def test_distributed(self):
        from distributed import Client, LocalCluster
        x = voxtile.dask.from_store(self.path, "image", chunk_bytes=60000)
        self.assertGreater(x.npartitions, 4)
        cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                               local_directory=tmpdir())
        try:
            with Client(cluster) as client:
                mean, total, part = client.compute([x.mean(), (x * x).sum(), x[1, :, 10:30].max(axis=0)], sync=True)
                pids = client.run(os.getpid)
                self.assertEqual(len(pids), 2)
                self.assertNotIn(os.getpid(), pids.values())
        finally:
            cluster.close()
        a64 = self.a.astype(np.float64)
        np.testing.assert_allclose(float(mean), a64.mean(), rtol=1e-5)
        np.testing.assert_allclose(float(total), (a64 * a64).sum(), rtol=1e-5)
        assert_same(self, np.asarray(part), self.a[1, :, 10:30].max(axis=0))


# ---- 9. loading the library ---------------------------------------------------------------------

class TestLoading(unittest.TestCase):
    def run_py(self, code, lib):
        env = dict(os.environ)
        env["VOXTILE_LIB"] = lib
        env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(voxtile.__file__)))
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)

    def test_voxtile_lib(self):
        lib = os.path.abspath(voxtile._lib._path)
        built = os.path.join(ROOT, "build", "libvoxtile.so")
        if os.path.exists(built):
            lib = built
        p = self.run_py("import voxtile; print(voxtile._lib._path); print(voxtile.version())", lib)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.split("\n")[:2], [lib, voxtile.version()])

    def run_clean(self, code, pythonpath, cwd):
        """code in a fresh interpreter with no VOXTILE_LIB, only `pythonpath` to find the package."""
        env = {k: v for k, v in os.environ.items() if k not in ("VOXTILE_LIB", "PYTHONPATH")}
        env["PYTHONPATH"] = pythonpath
        return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True,
                              timeout=120)

    def test_checkout_lookup(self):
        """From a checkout, with VOXTILE_LIB unset, the package loads ROOT/build/libvoxtile.so."""
        built = os.path.join(ROOT, "build", "libvoxtile.so")
        if not os.path.exists(built):
            self.skipTest(f"no {built}: the checkout was built in another folder")
        code = ("import os, voxtile; print(voxtile.__file__); print(voxtile._lib._path); "
                "print(os.environ.get('VOXTILE_LIB'))")
        p = self.run_clean(code, os.path.join(ROOT, "python"), tmpdir())
        self.assertEqual(p.returncode, 0, p.stderr)
        pkg, lib, env = p.stdout.split("\n")[:3]
        self.assertEqual(env, "None")
        self.assertEqual(pkg, os.path.join(ROOT, "python", "voxtile", "__init__.py"))
        self.assertEqual(lib, built)

    def test_installed_layout(self):
        """The package and library copied where `meson install` puts them (the build's own install plan,
        meson-info/intro-installed.json) import and read with nothing set."""
        import json
        build = os.path.dirname(os.path.realpath(voxtile._lib._path))
        info = os.path.join(build, "meson-info")
        try:
            with open(os.path.join(info, "intro-installed.json")) as f:
                installed = json.load(f)
            with open(os.path.join(info, "intro-buildoptions.json")) as f:
                prefix = next(o["value"] for o in json.load(f) if o["name"] == "prefix")
        except (OSError, StopIteration) as e:
            self.skipTest(f"no meson install plan next to the library ({e})")
        dest = tmpdir()

        def place(path):
            self.assertTrue(path.startswith(prefix + os.sep), path)
            return os.path.join(dest, os.path.relpath(path, prefix))

        pkg_dir = lib0 = None
        links = []
        for src, to in installed.items():
            name = os.path.basename(src)
            if os.path.basename(os.path.dirname(src)) == "voxtile" and name.endswith(".py"):
                target = place(to)
                pkg_dir = os.path.dirname(target)
            elif name.startswith("libvoxtile.so"):
                target = place(to)
                if not os.path.isabs(src):  # a symlink meson makes (libvoxtile.so.0, libvoxtile.so)
                    links.append(target)
                    if name == "libvoxtile.so.0":
                        lib0 = target
                    continue
            else:
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(src, target)
        self.assertIsNotNone(pkg_dir, installed)
        self.assertIsNotNone(lib0, installed)
        for link in links:  # to the real library file in the same folder
            real = [f for f in os.listdir(os.path.dirname(link)) if f.startswith("libvoxtile.so.")
                    and not os.path.islink(os.path.join(os.path.dirname(link), f)) and f.count(".") > 2]
            self.assertEqual(len(real), 1, real)
            os.symlink(real[0], link)
        store = os.path.join(dest, "s.vxt")
        a = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
        write_store(store, {"x": (a, {})})
        code = ("import voxtile; print(voxtile.__file__); print(voxtile._lib._path)\n"
                f"with voxtile.open({store!r}) as st: print(int(st['x'][1].sum()))\n")
        p = self.run_clean(code, os.path.dirname(pkg_dir), dest)
        self.assertEqual(p.returncode, 0, p.stderr)
        pkg, lib, total = p.stdout.split("\n")[:3]
        self.assertEqual(pkg, os.path.join(pkg_dir, "__init__.py"))
        self.assertEqual(lib, lib0)
        self.assertEqual(int(total), int(a[1].sum()))

    def test_missing_lib(self):
        missing = os.path.join(TMP, "no-such-dir", "libvoxtile.so")
        code = ("try:\n import voxtile\nexcept ImportError as e:\n print('IMPORTERROR', e)\n"
                "else:\n print('imported')\n")
        p = self.run_py(code, missing)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith("IMPORTERROR"), p.stdout + p.stderr)
        self.assertIn(missing, p.stdout)
        self.assertIn("libvoxtile", p.stdout)
        self.assertIn("VOXTILE_LIB", p.stdout)
        p = self.run_py("import voxtile", missing)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("ImportError", p.stderr)
        # a file that is not a library
        notlib = os.path.join(tmpdir(), "libvoxtile.so")
        with open(notlib, "w") as f:
            f.write("not an ELF file\n")
        p = self.run_py(code, notlib)
        self.assertTrue(p.stdout.startswith("IMPORTERROR"), p.stdout + p.stderr)


class TestHugePageArrays(unittest.TestCase):
    def test_large_outputs_are_aligned_writable_and_freed(self):
        """Outputs of 2 MiB or more live in their own 2 MiB-aligned mapping (advised for huge pages): the
        values are the reader's, the array is an ordinary writable C-contiguous numpy array that pickles
        and becomes a torch tensor, and its mapping goes away with it."""
        import gc
        import pickle
        path = os.path.join(TMP, "huge.vxt")
        data = np.arange(3 * 40 * 70 * 90, dtype=np.float32).reshape(3, 40, 70, 90)
        w = voxtile.Writer(path)
        w.write(w.add_array("image", data.shape, np.float32, tile=(1, 16, 16, 16)), (0, 0, 0, 0), data)
        w.finalize()

        import mmap
        import weakref

        def mapping(arr):  # the mmap at the bottom of the array's base chain
            b = arr
            while isinstance(b, np.ndarray):
                b = b.base
            return b.obj if isinstance(b, memoryview) else b

        with voxtile.open(path) as st:
            a = st["image"].read((0, 0, 0, 0), data.shape)  # 3 MiB
            self.assertEqual(a.ctypes.data % (2 << 20), 0)
            np.testing.assert_array_equal(a, data)
            self.assertTrue(a.flags.writeable and a.flags.c_contiguous)
            a[1, 2, 3, 4] = -1.0
            self.assertEqual(pickle.loads(pickle.dumps(a))[1, 2, 3, 4], -1.0)
            import torch
            self.assertEqual(float(torch.from_numpy(a)[1, 2, 3, 4]), -1.0)
            small = st["image"].read((0, 0, 0, 0), (1, 4, 4, 4))  # small: plain numpy memory
            np.testing.assert_array_equal(small, data[:1, :4, :4, :4])
            self.assertIsInstance(mapping(a), mmap.mmap)
            self.assertNotIsInstance(mapping(small), mmap.mmap)
            gone = weakref.ref(mapping(a))
            t = torch.from_numpy(a)
            del a
            gc.collect()
            self.assertIsNotNone(gone())  # the tensor keeps it
            del t
            gc.collect()
            self.assertIsNone(gone())


if __name__ == "__main__":
    unittest.main(verbosity=2)
