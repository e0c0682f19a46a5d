"""vt_sample / Array.sample / voxtile.sample_many against independent oracles.

Oracles: torch.nn.functional.grid_sample (align_corners=True; zeros, border
and reflection padding) and scipy.ndimage.map_coordinates (order 1 and 0;
grid-constant, nearest and mirror modes) at source coordinates computed here
in float64; for labels a per-label one-hot trilinear interpolation in float64
and its argmax (the smallest label on ties), written here; numpy's astype and
torch's bfloat16 rounding for the output dtypes; a brute-force list of the
tiles the taps reach.

1. linear: random volumes and maps (rotations, anisotropic scaling, shear,
   mirroring, translations far outside), every pad mode, tile shapes that are
   and are not powers of two, tiles spanning several channels, int16 with a
   transform, float16/bfloat16/float64 outputs, output strides (a batch slot).
2. label: K up to 40 labels, int16 and int32 tile paths, every pad mode, the
   pad label; nearest against torch and numpy.
3. displacement fields against a reference that upsamples the field itself.
4. the box path (crops, mirrors, axis permutations): same bits as the
   interpolating path (a zero field forces that path), and said so in stats.
5. the AVX2 kernel against the scalar path (VOXTILE_SAMPLE_SCALAR),
   bit for bit, signed zeros and non-finite taps of weight 0 included, and
   that the kernel did run (stats); threads; sample_many against separate
   calls.
6. tiles: each decoded once, every tile a tap reaches among them, and not many
   more; memory held below the tiles planned.
7. bad input: clear errors, nothing written past the output.
8. voxtile.augment.SpatialAugment: the matrix is S R F about the centre, the
   drawn probabilities and ranges (binomial bounds), nnU-Net's in-plane mode
   for anisotropic patches, elastic fields.
9. PatchDataset(spatial=..., normalize=...): DataLoader workers return what a
   single process does; image and labels stay aligned (labels made from the
   image's intensities are found again in the sampled image); normalisation
   against numpy, one transform for all channels or one per channel.

Run: PYTHONPATH=python /usr/bin/python3 tests/test_sample.py
"""
import ast
import atexit
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
try:
    import voxtile
except ImportError:
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import voxtile
import scipy.ndimage as ndi
import torch

TMP = tempfile.mkdtemp(prefix="vt-sample-")
atexit.register(shutil.rmtree, TMP, ignore_errors=True)


def rot(axis, t):
    c, s = np.cos(t), np.sin(t)
    r = np.eye(3)
    i, j = [k for k in range(3) if k != axis]
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def random_map(rng, shape, size, far=False):
    """A 3x4 map: rotation about every axis, anisotropic scale, some shear and mirroring, centred on a random
    point (far outside the volume when far)."""
    a = rot(0, rng.uniform(-np.pi, np.pi)) @ rot(1, rng.uniform(-1, 1)) @ rot(2, rng.uniform(-np.pi, np.pi))
    a = a @ np.diag(rng.uniform(0.4, 1.8, 3) * rng.choice([-1, 1], 3))
    a = a + np.triu(rng.uniform(-0.3, 0.3, (3, 3)), 1)
    centre = np.array([rng.uniform(-0.2 * n, 1.2 * n) for n in shape])
    if far:
        centre += rng.choice([-1, 1], 3) * rng.uniform(2, 5, 3) * np.array(shape)
    t = centre - a @ ((np.array(size) - 1) / 2)
    return np.hstack([a, t[:, None]])


def positions(m, size, field=None):
    """Source coordinates (3, *size) in float64; with a field (3, fz, fy, fx), its trilinear upsampling to the
    output grid (grid point a on output a (size-1)/(f-1)) is added to the index first."""
    k, j, i = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in size], indexing="ij")
    idx = np.stack([k, j, i])
    if field is not None:
        f = np.asarray(field, np.float64)
        u = [idx[d] * ((f.shape[d + 1] - 1) / (size[d] - 1) if size[d] > 1 else 0.0) for d in range(3)]
        idx = idx + np.stack([ndi.map_coordinates(f[c], u, order=1, mode="nearest") for c in range(3)])
    return np.einsum("ab,b...->a...", m[:, :3], idx) + m[:, 3].reshape(3, 1, 1, 1)


def torch_linear(vol, p, mode):
    """grid_sample(align_corners=True) of a (C, Z, Y, X) float64 volume at positions p (3, *size)."""
    n = vol.shape[1:]
    g = np.stack([2 * p[2] / (n[2] - 1) - 1, 2 * p[1] / (n[1] - 1) - 1, 2 * p[0] / (n[0] - 1) - 1], -1)
    return torch.nn.functional.grid_sample(torch.from_numpy(vol.astype(np.float64))[None],
                                           torch.from_numpy(g)[None], mode="bilinear", padding_mode=mode,
                                           align_corners=True)[0].numpy()


SCIPY_MODE = {"constant": "grid-constant", "edge": "nearest", "reflect": "mirror"}
TORCH_MODE = {"constant": "zeros", "edge": "border", "reflect": "reflection"}


def label_reference(seg, p, pad, pad_value):
    """argmax over labels of one-hot masks interpolated trilinearly (float64), smallest label on ties; and
    the margin between the best and the second best total weight (to leave out near-ties)."""
    labels = sorted(set(np.unique(seg).tolist()) | ({pad_value} if pad == "constant" else set()))
    w = np.stack([ndi.map_coordinates((seg == v).astype(np.float64), p, order=1, mode=SCIPY_MODE[pad],
                                      cval=1.0 if v == pad_value else 0.0) for v in labels])
    srt = np.sort(w, axis=0)
    return np.array(labels)[w.argmax(0)], srt[-1] - srt[-2]


def write_store(path, arrays):
    """arrays: name -> (data, tile, labels)."""
    with voxtile.Writer(path) as w:
        for name, (data, tile, labels) in arrays.items():
            i = w.add_array(name, data.shape, data.dtype, tile=tile, labels=labels)
            w.write(i, (0,) * data.ndim, data)
    return voxtile.open(path)


class TestLinear(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rng = np.random.default_rng(11)
        cls.vol = rng.normal(size=(2, 29, 34, 31)).astype(np.float32)
        cls.vol[:, 10:20, 12:25, 5:15] += 3  # edges across tiles
        cls.stores = {tile: write_store(os.path.join(TMP, f"lin{'x'.join(map(str, tile))}.vxt"),
                                        {"image": (cls.vol, tile, False)})
                      for tile in [(1, 8, 8, 8), (1, 5, 7, 6), (2, 16, 4, 32)]}

    def test_against_torch_and_scipy(self):
        rng = np.random.default_rng(1)
        size = (13, 17, 11)
        for tile, st in self.stores.items():
            a = st["image"]
            for trial in range(8):
                m = random_map(rng, self.vol.shape[1:], size, far=trial == 7)
                p = positions(m, size)
                for pad in ("constant", "edge", "reflect"):
                    got = a.sample(m, size, pad=pad)
                    self.assertEqual(got.shape, (2,) + size)
                    self.assertEqual(got.dtype, np.float32)
                    ref = torch_linear(self.vol, p, TORCH_MODE[pad])
                    ref2 = np.stack([ndi.map_coordinates(self.vol[c].astype(np.float64), p, order=1,
                                                         mode=SCIPY_MODE[pad]) for c in range(2)])
                    np.testing.assert_allclose(got, ref, atol=2e-5, err_msg=f"{tile} {pad} torch")
                    np.testing.assert_allclose(got, ref2, atol=2e-5, err_msg=f"{tile} {pad} scipy")

    def test_constant_pad_value_and_far_outside(self):
        a = self.stores[(1, 8, 8, 8)]["image"]
        m = np.hstack([np.eye(3), np.array([[1000.0], [-2000.0], [50.0]])])
        got = a.sample(m, (4, 5, 6), pad_value=-7.5)
        np.testing.assert_array_equal(got, np.full((2, 4, 5, 6), -7.5, np.float32))

    def test_output_dtypes_round_the_float32_result(self):
        a = self.stores[(1, 5, 7, 6)]["image"]
        rng = np.random.default_rng(2)
        m = random_map(rng, self.vol.shape[1:], (9, 10, 11))
        f32 = a.sample(m, (9, 10, 11))
        np.testing.assert_array_equal(a.sample(m, (9, 10, 11), dtype=np.float16).view(np.uint16),
                                      f32.astype(np.float16).view(np.uint16))
        np.testing.assert_array_equal(a.sample(m, (9, 10, 11), dtype=np.float64), f32.astype(np.float64))
        bf = torch.from_numpy(f32).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        np.testing.assert_array_equal(a.sample(m, (9, 10, 11), dtype="bfloat16"), bf)

    def test_int16_with_transform(self):
        rng = np.random.default_rng(3)
        hu = rng.integers(-1024, 2000, size=(1, 21, 23, 19)).astype(np.int16)
        st = write_store(os.path.join(TMP, "hu.vxt"), {"image": (hu, (1, 8, 8, 8), False)})
        m = random_map(rng, hu.shape[1:], (12, 12, 12))
        lo, hi, mean, std = -500.0, 1500.0, 40.0, 300.0
        got = st["image"].sample(m, (12, 12, 12), transform=(lo, hi, 1 / std, -mean / std), dtype=np.float16)
        norm = ((np.clip(hu.astype(np.float64), lo, hi) - mean) / std).astype(np.float32)  # each source voxel
        ref = torch_linear(norm, positions(m, (12, 12, 12)), "zeros")
        np.testing.assert_allclose(got.astype(np.float32), ref, atol=2e-3, rtol=2e-3)

    def test_out_slot_of_a_batch(self):
        a = self.stores[(1, 8, 8, 8)]["image"]
        rng = np.random.default_rng(4)
        m = random_map(rng, self.vol.shape[1:], (6, 7, 8))
        batch = np.full((3, 2, 6, 7, 8), 99, np.float16)
        out = batch[1]
        self.assertIs(a.sample(m, (6, 7, 8), dtype=np.float16, out=out), out)
        np.testing.assert_array_equal(batch[1], a.sample(m, (6, 7, 8), dtype=np.float16))
        self.assertTrue((batch[0] == 99).all() and (batch[2] == 99).all())
        strided = np.zeros((2, 6, 7, 16), np.float32)[..., ::2]
        a.sample(m, (6, 7, 8), out=strided)
        np.testing.assert_array_equal(strided, a.sample(m, (6, 7, 8)))

    def test_threads_and_sample_many(self):
        a = self.stores[(1, 5, 7, 6)]["image"]
        rng = np.random.default_rng(5)
        m = random_map(rng, self.vol.shape[1:], (30, 31, 33))
        one = a.sample(m, (30, 31, 33), dtype=np.float16)
        np.testing.assert_array_equal(a.sample(m, (30, 31, 33), dtype=np.float16, threads=3).view(np.uint16),
                                      one.view(np.uint16))
        b = self.stores[(1, 8, 8, 8)]["image"]
        x, y = voxtile.sample_many([(a, dict(dtype=np.float16)), (b, dict(order="nearest"))], m, (30, 31, 33),
                                   threads=2)
        np.testing.assert_array_equal(x.view(np.uint16), one.view(np.uint16))
        np.testing.assert_array_equal(y, b.sample(m, (30, 31, 33), order="nearest"))


class TestLabels(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rng = np.random.default_rng(21)
        blocks = rng.integers(0, 40, size=(7, 8, 7))
        seg = ndi.zoom(blocks, 5, order=0)[:33, :37, :30]
        seg[rng.random(seg.shape) < 0.03] = 39  # speckles: many mixed neighbourhoods
        cls.seg = seg.astype(np.uint8)
        cls.big = (cls.seg.astype(np.int32) * 1000 - 5000)  # int32 labels: the int32 tile path
        cls.st = write_store(os.path.join(TMP, "seg.vxt"), {
            "seg": (cls.seg[None], (1, 8, 8, 8), True), "big": (cls.big[None], (1, 6, 5, 7), True)})

    def check(self, name, seg, pad, pad_value, m, size, dtype):
        got = self.st[name].sample(m, size, order="label", dtype=dtype, pad=pad, pad_value=pad_value)[0]
        ref, margin = label_reference(seg, positions(m, size), pad, pad_value)
        clear = margin > 1e-9
        self.assertGreater(clear.mean(), 0.9)
        np.testing.assert_array_equal(got[clear], ref[clear], err_msg=f"{name} {pad}")

    def test_against_one_hot_argmax(self):
        rng = np.random.default_rng(6)
        size = (15, 14, 16)
        for trial in range(6):
            m = random_map(rng, self.seg.shape, size, far=trial == 5)
            for pad in ("constant", "edge", "reflect"):
                self.check("seg", self.seg, pad, -1, m, size, np.int16)
                self.check("big", self.big, pad, -7, m, size, np.int32)

    def test_ties_go_to_the_smaller_label(self):
        seg = np.zeros((1, 4, 4, 4), np.uint8)
        seg[0, :, :, 2:] = 5
        st = write_store(os.path.join(TMP, "tie.vxt"), {"seg": (seg, (1, 4, 4, 4), True)})
        m = np.hstack([np.eye(3), np.array([[0.0], [0.0], [1.5]])])  # halfway between x=1 (0) and x=2 (5)
        got = st["seg"].sample(m, (4, 4, 1), order="label")
        self.assertTrue((got == 0).all())
        m[2, 3] = 1.5000001
        self.assertTrue((st["seg"].sample(m, (4, 4, 1), order="label") == 5).all())

    def test_nearest(self):
        rng = np.random.default_rng(7)
        size = (9, 12, 10)
        for trial in range(5):
            m = random_map(rng, self.seg.shape, size)
            p = positions(m, size)
            got = self.st["seg"].sample(m, size, order="nearest")[0]
            n = self.seg.shape
            g = np.stack([2 * p[2] / (n[2] - 1) - 1, 2 * p[1] / (n[1] - 1) - 1, 2 * p[0] / (n[0] - 1) - 1], -1)
            ref = torch.nn.functional.grid_sample(torch.from_numpy(self.seg.astype(np.float64))[None, None],
                                                  torch.from_numpy(g)[None], mode="nearest", padding_mode="zeros",
                                                  align_corners=True)[0, 0].numpy()
            np.testing.assert_array_equal(got, ref)
            for pad, npmode in (("edge", "edge"), ("reflect", "reflect")):
                idx = np.rint(p).astype(np.int64)  # numpy rounds halves to even, as the sampler
                padded = np.pad(self.seg, 300, mode=npmode)
                ref = padded[idx[0] + 300, idx[1] + 300, idx[2] + 300]
                got = self.st["seg"].sample(m, size, order="nearest", pad=pad)[0]
                np.testing.assert_array_equal(got, ref)


class TestField(unittest.TestCase):
    def test_displacement_against_upsampled_field(self):
        rng = np.random.default_rng(8)
        vol = ndi.gaussian_filter(rng.normal(size=(1, 40, 36, 38)), 2).astype(np.float32)
        seg = (vol[0] > 0).astype(np.uint8) + (vol[0] > 0.05)
        st = write_store(os.path.join(TMP, "field.vxt"), {"image": (vol, (1, 8, 8, 8), False),
                                                          "seg": (seg[None], (1, 8, 8, 8), True)})
        size = (20, 22, 18)
        for fshape in [(3, 4, 5), (1, 6, 2), (20, 22, 18), (41, 45, 37)]:  # coarser, as fine, finer
            field = rng.normal(scale=2.0, size=(3,) + fshape).astype(np.float32)
            m = random_map(rng, vol.shape[1:], size)
            p = positions(m, size, field)
            got, lab = voxtile.sample_many([(st["image"], {}), (st["seg"], dict(order="label"))], m, size,
                                           displacement=field)
            ref = ndi.map_coordinates(vol[0].astype(np.float64), p, order=1, mode="grid-constant")
            np.testing.assert_allclose(got[0], ref, atol=2e-5)
            ref_l, margin = label_reference(seg, p, "constant", 0)
            clear = margin > 1e-9
            np.testing.assert_array_equal(lab[0][clear], ref_l[clear])


class TestBoxPath(unittest.TestCase):
    def test_crop_mirror_permutation_same_bits(self):
        rng = np.random.default_rng(9)
        vol = (rng.normal(size=(2, 19, 22, 25)) * 100).astype(np.float32)
        vol[0, 3, 4, 5] = np.inf  # a weight-0 tap of infinity must not leak into its neighbours
        hu = rng.integers(-1000, 1000, size=(1, 19, 22, 25)).astype(np.int16)
        lab = (ndi.zoom(rng.integers(0, 6, (4, 4, 5)), 5, order=0)[:19, :22, :25]).astype(np.uint8)[None]
        st = write_store(os.path.join(TMP, "box.vxt"), {"image": (vol, (1, 8, 8, 8), False),
                                                        "hu": (hu, (1, 5, 8, 7), False),
                                                        "lab": (lab, (1, 8, 6, 8), True)})
        zero = np.zeros((3, 2, 2, 2), np.float32)
        size = (7, 9, 11)
        for trial in range(12):
            perm = rng.permutation(3)
            m = np.zeros((3, 4))
            m[np.arange(3), perm] = rng.choice([-1, 1], 3)
            m[:, 3] = rng.integers(-12, 30, 3)
            for name, kw in (("image", dict(dtype=np.float16, pad="reflect")),
                             ("hu", dict(dtype=np.float16, transform=(-200, 500, 0.01, 0.3))),
                             ("hu", dict(dtype=np.float32, pad="edge")), ("hu", dict(order="nearest")),
                             ("lab", dict(order="label", dtype=np.int16, pad_value=-1)),
                             ("lab", dict(order="label", pad="reflect"))):
                s1, s2 = {}, {}
                fast = st[name].sample(m, size, stats=s1, **kw)
                slow = st[name].sample(m, size, displacement=zero, stats=s2, **kw)
                self.assertTrue(s1["box_read"])
                self.assertFalse(s2["box_read"])
                np.testing.assert_array_equal(fast.view(np.uint8), slow.view(np.uint8), err_msg=f"{m} {name} {kw}")
            # and the crop is what numpy's slicing says
            ident = np.hstack([np.eye(3), np.array([[2.0], [3.0], [4.0]])])
            np.testing.assert_array_equal(st["hu"].sample(ident, size, order="nearest"),
                                          hu[:, 2:9, 3:12, 4:15])


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


class TestPaths(unittest.TestCase):
    def test_avx2_and_scalar_give_the_same_bits(self):
        # rows (a block is 32 wide, groups of 8) of 8 + 8 + 1, 32 + 8, 32 + 8 + 5, 8 + 5 (a partial group)
        # and 5 (scalar only) voxels
        code = r'''
import hashlib, sys, numpy as np, voxtile
sys.path.insert(0, sys.argv[2])
from test_sample import random_map
st = voxtile.open(sys.argv[1]); rng = np.random.default_rng(12); h = hashlib.sha256(); lanes = set()
for trial in range(10):
    for size in ((16, 24, 17), (5, 7, 40), (4, 6, 45), (6, 9, 13), (3, 4, 5)):
        m = random_map(rng, st["image"].shape[1:], size, far=trial == 9)
        for pad in ("constant", "edge", "reflect"):
            s = {}
            img, seg = voxtile.sample_many([(st["image"], dict(pad=pad, stats=s)),
                                            (st["seg"], dict(order="label", pad=pad, dtype=np.int16))], m, size)
            h.update(img.tobytes()); h.update(seg.tobytes()); lanes.add(s["vector_lanes"])
# every weight 0 (scale 2, whole translation): a -0.0 tap stays -0.0 only tap by tap, which is the
# form a voxel with a non-finite tap takes; its neighbours in the row must not
m = np.array([[2.0, 0, 0, 18], [0, 2, 0, 8], [0, 0, 2, 14]])
h.update(st["image"].sample(m, (8, 10, 16)).tobytes())
print(h.hexdigest(), sorted(lanes))
'''
        rng = np.random.default_rng(13)
        vol = rng.normal(size=(1, 50, 47, 52)).astype(np.float32)
        vol[0, 20:30, 10:30, 15:40] = -0.0  # signed zeros beside ...
        vol[0, 24, 20, 20:30:3] = np.inf    # ... taps of weight 0 that are not finite
        vol[0, 25, 21, 21:31:4] = np.nan
        seg = (ndi.zoom(rng.integers(0, 9, (6, 6, 6)), 9, order=0)[:50, :47, :52]).astype(np.uint8)
        path = os.path.join(TMP, "paths.vxt")
        write_store(path, {"image": (vol, (1, 16, 16, 16), False), "seg": (seg[None], (1, 16, 16, 16), True)})
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"), HERE]))
        env.pop("VOXTILE_SAMPLE_SCALAR", None)
        avx2 = 8 if "avx2" in cpu_flags() else 0
        out = []
        for extra, want in (({}, avx2), ({"VOXTILE_SAMPLE_SCALAR": "1"}, 0)):
            r = subprocess.run([sys.executable, "-c", code, path, HERE], env=dict(env, **extra),
                               check=True, capture_output=True, text=True).stdout.split(maxsplit=1)
            out.append(r[0])
            # the calls that sampled tiles took the path asked for (0: scalar; a map far outside the
            # array decodes no tile and reports 0 either way)
            lanes = set(ast.literal_eval(r[1]))
            self.assertIn(want, lanes, extra)
            self.assertLessEqual(lanes, {0, want}, extra)
        if avx2 == 0:
            print("  this CPU has no AVX2: only the scalar path was run")
        self.assertEqual(out[0], out[1])


class TestTiles(unittest.TestCase):
    def test_each_tile_once_and_the_tiles_the_taps_reach(self):
        rng = np.random.default_rng(14)
        vol = rng.normal(size=(1, 90, 80, 85)).astype(np.float32)
        st = write_store(os.path.join(TMP, "tiles.vxt"), {"image": (vol, (1, 8, 8, 8), False)})
        size = (40, 36, 44)
        for trial in range(6):
            m = random_map(rng, vol.shape[1:], size)
            s = {}
            st["image"].sample(m, size, stats=s)
            p = positions(m, size)
            f = np.floor(p).astype(np.int64)
            reached = set()
            for dz in (0, 1):
                for dy in (0, 1):
                    for dx in (0, 1):
                        z, y, x = f[0] + dz, f[1] + dy, f[2] + dx
                        ok = (z >= 0) & (z < 90) & (y >= 0) & (y < 80) & (x >= 0) & (x < 85)
                        reached |= set(zip((z[ok] // 8).tolist(), (y[ok] // 8).tolist(), (x[ok] // 8).tolist()))
            self.assertEqual(s["tiles_decoded"], s["tiles_needed"])
            self.assertGreaterEqual(s["tiles_needed"], len(reached))
            self.assertLessEqual(s["tiles_needed"], 1.1 * len(reached) + 2)  # the hull grazes a few more
            chunk = 9 * 9 * 9 * 4
            self.assertLess(s["peak_bytes"], s["tiles_needed"] * chunk)


class TestVerify(unittest.TestCase):
    def test_a_corrupt_tile_is_an_error_not_data(self):
        rng = np.random.default_rng(21)
        vol = rng.normal(size=(1, 24, 24, 24)).astype(np.float32)
        path = os.path.join(TMP, "verify.vxt")
        write_store(path, {"image": (vol, (1, 8, 8, 8), False)}).close()
        with voxtile.open(path) as st:
            # tile (0, 1, 1, 1): the map below samples the middle of the volume, through it
            tiles = [st["image"].tile(k) for k in range(st["image"].ntiles)]
            t = next(t for t in tiles if tuple(t["coord"]) == (0, 1, 1, 1))
        with open(path, "r+b") as f:  # flip bytes in the middle of its stored data
            f.seek(t["offset"] + t["stored_size"] // 2)
            b = f.read(4)
            f.seek(t["offset"] + t["stored_size"] // 2)
            f.write(bytes(x ^ 0x5A for x in b))
        c = math.cos(0.3)
        m = np.array([[1, 0, 0, 4.5], [0, c, -math.sin(0.3), 8.2], [0, math.sin(0.3), c, 3.7]])
        with voxtile.open(path) as st:
            for threads in (1, 2):
                with self.assertRaises(voxtile.Error) as cm:
                    st["image"].sample(m, (14, 12, 12), threads=threads)
                self.assertIn("checksum", str(cm.exception))
                with self.assertRaises(voxtile.Error) as cm:
                    voxtile.sample_many([(st["image"], dict(dtype=np.float16))], m, (14, 12, 12), threads=threads)
            # a map that stays away from that tile is served as usual
            far = np.hstack([np.eye(3), np.array([[16.0], [16.0], [0.0]])])
            np.testing.assert_array_equal(st["image"].sample(far, (8, 8, 8), order="nearest"),
                                          vol[:, 16:24, 16:24, 0:8])


class TestErrors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        seg = (np.arange(4 * 5 * 6, dtype=np.int16).reshape(1, 4, 5, 6) * 3) % 300  # up to 297
        cls.seg = seg
        cls.st = write_store(os.path.join(TMP, "err.vxt"), {
            "seg": (seg, (1, 4, 4, 4), True), "image": (seg.astype(np.float32), (1, 4, 4, 4), False),
            "flat": (np.zeros((5, 6), np.uint8), (5, 6), False)})

    def test_bad_inputs(self):
        a, seg, flat = self.st["image"], self.st["seg"], self.st["flat"]
        ok = np.hstack([np.eye(3), np.zeros((3, 1))])
        bad = ok.copy()
        bad[1, 2] = np.nan
        cases = [
            (lambda: a.sample(bad, (2, 2, 2)), "matrix entry (1, 2) is nan"),
            (lambda: a.sample(np.eye(3), (2, 2, 2)), "3x4 or 4x4"),
            (lambda: a.sample(np.vstack([ok, [0, 0, 1, 1]]), (2, 2, 2)), "(0, 0, 0, 1)"),
            (lambda: a.sample(ok, (2, 0, 2)), "size"),
            (lambda: a.sample(ok, (2, 2, 1 << 25)), "output extent"),
            (lambda: a.sample(ok * 1e16, (2, 2, 2)), "beyond"),
            (lambda: a.sample(ok, (2, 2, 2), displacement=np.zeros((2, 2, 2, 2))), "(3, dz, dy, dx)"),
            (lambda: a.sample(ok, (2, 2, 2), displacement=np.full((3, 2, 2, 2), np.inf)), "field value 0 is inf"),
            (lambda: a.sample(ok, (2, 2, 2), dtype=np.int16), "linear interpolation writes"),
            (lambda: a.sample(ok, (2, 2, 2), order="label"), "needs integer labels"),
            (lambda: seg.sample(ok, (2, 2, 2), order="label", dtype=np.uint8), "cannot hold the labels"),
            (lambda: seg.sample(ok, (2, 2, 2), order="label", dtype=np.int16, pad_value=1e6), "pad value"),
            (lambda: seg.sample(ok, (2, 2, 2), order="label", dtype=np.int16, pad_value=0.5), "pad value"),
            (lambda: seg.sample(ok, (2, 2, 2), order="label", transform=(0, 1, 1, 0)), "no intensity transform"),
            # nearest keeps integer values as they are: no silent clipping of a label into a narrow dtype
            (lambda: seg.sample(ok, (2, 2, 2), order="nearest", dtype=np.uint8), "cannot hold the values"),
            (lambda: seg.sample(ok, (2, 2, 2), order="nearest", dtype=np.int8), "cannot hold the values"),
            (lambda: seg.sample(ok, (2, 2, 2), order="nearest", pad_value=1e6), "pad value"),
            (lambda: seg.sample(ok, (2, 2, 2), order="nearest", dtype=np.uint16, pad_value=-1), "pad value"),
            (lambda: flat.sample(ok, (2, 2, 2)), "at least 3"),
            (lambda: a.sample(ok, (2, 2, 2), order="cubic"), "order must be"),
            (lambda: a.sample(ok, (2, 2, 2), threads=999), "threads"),
            (lambda: a.sample(ok, (2, 2, 2), out=np.zeros((1, 2, 2, 3), np.float32)), "out must be"),
        ]
        for call, text in cases:
            with self.assertRaises(voxtile.Error, msg=text) as cm:
                call()
            self.assertIn(text, str(cm.exception))
        # what nearest may do: the stored dtype, a wider one, a float, or a transform (converted as read() does)
        ident = ok.copy()
        ident[:, 3] = (1, 2, 3)
        want = np.asarray(self.seg)[:, 1:3, 2:4, 3:5]
        for kw in (dict(), dict(dtype=np.int32, pad_value=-1), dict(dtype=np.float32),
                   dict(dtype=np.uint8, transform=(0, 255, 1, 0))):
            got = seg.sample(ident, (2, 2, 2), order="nearest", **kw)
            ref = np.clip(want, 0, 255) if "transform" in kw else want
            np.testing.assert_array_equal(got, ref.astype(got.dtype), err_msg=str(kw))
        # a failed call leaves the caller's buffer as it was outside the output
        out = np.full((1, 2, 2, 2), 5, np.float32)
        with self.assertRaises(voxtile.Error):
            a.sample(bad, (2, 2, 2), out=out)
        self.assertTrue((out == 5).all())


class TestAugment(unittest.TestCase):
    def test_matrix_is_scale_rotation_flip_about_the_centre(self):
        from voxtile.augment import SpatialAugment, rotation_matrix
        aug = SpatialAugment((20, 30, 40), p_rotation=1, p_scaling=1, synchronize_scaling=False)
        rng = np.random.default_rng(1)
        for _ in range(50):
            centre = rng.uniform(-50, 200, 3)
            t = aug.draw(rng, centre)
            a = np.diag(t.scales) @ rotation_matrix(t.angles) @ np.diag([-1.0 if m else 1.0 for m in t.mirror])
            np.testing.assert_allclose(t.matrix[:, :3], a, atol=1e-12)
            np.testing.assert_allclose(t.matrix @ np.array([9.5, 14.5, 19.5, 1.0]), centre, atol=1e-9)
            r = rotation_matrix(t.angles)
            np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        # about z only: the y-x plane turns, z stays
        np.testing.assert_allclose(rotation_matrix((np.pi / 2, 0, 0)) @ [1, 2, 3], [1, -3, 2], atol=1e-12)

    def test_nnunet_probabilities_and_ranges(self):
        from voxtile.augment import SpatialAugment
        aug = SpatialAugment.nnunet((128, 128, 128))
        rng = np.random.default_rng(2)
        n = 3000
        draws = [aug.draw(rng, (50.0, 60.0, 70.0)) for _ in range(n)]
        rotated = np.array([any(a != 0 for a in t.angles) for t in draws])
        scaled = np.array([t.scales != (1.0, 1.0, 1.0) for t in draws])
        mirrored = np.array([t.mirror for t in draws])

        def within(k, p):  # 5 sigma of a binomial
            self.assertLess(abs(k - n * p), 5 * np.sqrt(n * p * (1 - p)), (k, p))
        within(rotated.sum(), 0.2)
        within(scaled.sum(), 0.2)
        for axis in range(3):
            within(mirrored[:, axis].sum(), 0.5)
        angles = np.array([t.angles for t in draws])[rotated]
        self.assertTrue((np.abs(angles) <= np.pi / 6).all() and (angles != 0).all())
        scales = np.array([t.scales for t in draws])[scaled]
        self.assertTrue((scales >= 0.7).all() and (scales <= 1.4).all())
        self.assertTrue((scales == scales[:, :1]).all())  # one scale for all axes
        self.assertTrue(all(t.displacement is None for t in draws))
        # anisotropic patch (the largest edge > 3x z): in-plane rotation up to 180 degrees, z not scaled
        flat = SpatialAugment.nnunet((20, 256, 224))
        self.assertTrue(flat.in_plane)
        d = [flat.draw(rng, (10.0, 100.0, 100.0)) for _ in range(2000)]
        ang = np.array([t.angles for t in d])
        self.assertTrue((ang[:, 1:] == 0).all())
        self.assertGreater(np.abs(ang[:, 0]).max(), np.pi * 0.9)
        self.assertTrue(all(t.scales[0] == 1.0 for t in d))

    def test_elastic_field(self):
        from voxtile.augment import SpatialAugment
        aug = SpatialAugment((64, 48, 40), p_rotation=0, p_scaling=0, p_elastic=1, elastic_magnitude=(0.05, 0.1),
                             elastic_scale=(0.1, 0.2), mirror_axes=())
        rng = np.random.default_rng(3)
        for _ in range(10):
            f = aug.draw(rng, (0.0, 0.0, 0.0)).displacement
            self.assertEqual(f.shape, (3, 9, 7, 6))
            self.assertEqual(f.dtype, np.float32)
            for comp, edge in enumerate((64, 48, 40)):
                peak = np.abs(f[comp]).max()
                self.assertGreaterEqual(peak, 0.05 * edge * 0.999)
                self.assertLessEqual(peak, 0.1 * edge * 1.001)
        with self.assertRaises(ValueError):
            SpatialAugment((8, 8, 8), p_rotation=1.5)
        with self.assertRaises(ValueError):
            SpatialAugment((8, 8, 8), scaling=(0, 1))


class TestPatchDatasetSpatial(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rng = np.random.default_rng(31)
        smooth = ndi.gaussian_filter(rng.normal(size=(60, 70, 66)), 4)
        smooth = (smooth - smooth.mean()) / smooth.std()
        cls.image = (smooth * 300 + 40).astype(np.int16)[None]
        cls.seg = (np.digitize(smooth, [-0.8, 0.0, 0.8])).astype(np.uint8)[None]  # 4 labels from intensity
        cls.two = np.concatenate([cls.image, (cls.image // 2 + 1000).astype(np.int16)])
        cls.path = os.path.join(TMP, "ds.vxt")
        cls.path2 = os.path.join(TMP, "ds2.vxt")
        write_store(cls.path, {"image": (cls.image, (1, 16, 16, 16), False), "seg": (cls.seg, (1, 16, 16, 16), True)})
        write_store(cls.path2, {"image": (cls.two, (1, 16, 16, 16), False), "seg": (cls.seg, (1, 16, 16, 16), True)})

    def dataset(self, **kw):
        from voxtile.augment import SpatialAugment
        from voxtile.torch import PatchDataset
        aug = SpatialAugment((24, 28, 20), p_rotation=1, p_scaling=1, p_elastic=0.3, elastic_magnitude=(0, 0.1))
        return PatchDataset([self.path], (24, 28, 20), spatial=aug, seed=5, length=16, **kw)

    def test_workers_return_what_one_process_does(self):
        for batch in (None, 2):
            ds = self.dataset(batch_size=batch)
            want = [ds[i] for i in range(len(ds))]
            loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
            got = list(loader)
            self.assertEqual(len(got), len(want))
            for g, w in zip(got, want):
                for key in ("image", "seg", "start", "case"):
                    self.assertTrue(torch.equal(torch.as_tensor(g[key]), torch.as_tensor(w[key])), key)
        ds = self.dataset()
        a = ds[3]["image"]
        ds.set_epoch(1)
        self.assertFalse(torch.equal(a, ds[3]["image"]))

    def test_workers_refill_only_buffers_the_main_process_let_go(self):
        """A worker fills a batch buffer again once the main process has dropped every tensor over it: batches
        (or views of them) still held keep their values, and a loop that drops each batch is served from a
        few buffers (seen as the shared-memory files the batches are mapped from)."""
        def inode(t):
            p = t.data_ptr()
            with open("/proc/self/maps") as f:
                for line in f:
                    lo, hi = (int(v, 16) for v in line.split()[0].split("-"))
                    if lo <= p < hi:
                        return int(line.split()[4])
            raise AssertionError("batch memory not mapped")

        for dtype in (torch.float16, torch.bfloat16):
            ds = self.dataset(batch_size=2, dtype=dtype)
            ds.length = 64  # 32 batches, 16 per worker: more than a worker's buffers of one size
            want = [ds[i] for i in range(len(ds))]
            loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
            held = list(loader)  # every buffer held: the workers must not refill any of them
            views = [b["image"][1] for b in held]  # and a view alone keeps its buffer
            for g, w in zip(held, want):
                self.assertEqual(g["image"].dtype, dtype)
                self.assertTrue(torch.equal(g["image"].view(torch.int16), w["image"].view(torch.int16)))
                self.assertTrue(torch.equal(g["seg"], w["seg"]))
            del held
            for _ in loader:  # other batches while only the views are held
                pass
            for v, w in zip(views, want):
                self.assertTrue(torch.equal(v.view(torch.int16), w["image"][1].view(torch.int16)))
            del views
            files = set()
            for g, w in zip(loader, want):
                self.assertTrue(torch.equal(g["image"].view(torch.int16), w["image"].view(torch.int16)))
                self.assertTrue(torch.equal(g["seg"], w["seg"]))
                files.add(inode(g["image"]))
                del g
            # each worker: the batch being filled, prefetch_factor (2) waiting, the one in this loop, one that
            # may not be freed yet; without reuse, 32 files
            self.assertLessEqual(len(files), 2 * 5)

        # a collate_fn working on the batch in the worker gets plain tensors, which torch sends as they are
        def collate(b):
            return {"image": b["image"] * 1, "row": b["image"][:, :, 1], "seg": b["seg"], "case": b["case"] + 0}

        ds = self.dataset(batch_size=2)
        want = [ds[i] for i in range(len(ds))]
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, collate_fn=collate, timeout=120)
        for g, w in zip(loader, want):
            self.assertIs(type(g["image"]), torch.Tensor)
            self.assertTrue(torch.equal(g["image"], w["image"]))
            self.assertTrue(torch.equal(g["row"], w["image"][:, :, 1]))
            self.assertTrue(torch.equal(g["seg"], w["seg"]))
            self.assertTrue(torch.equal(g["case"], w["case"]))

    def test_workers_send_each_buffer_once(self):
        """A batch buffer travels to the main process as a descriptor (a socket round trip and a new mapping on
        both sides) only until the main process keeps a mapping of it; after that the workers send its token
        alone. Batches stay equal to the single-process ones; the mappings of workers that have exited are
        dropped."""
        import voxtile.torch as vtt
        calls, orig = [], vtt._received

        def counting(token, buffer):
            calls.append((token, buffer is not None))
            return orig(token, buffer)

        vtt._received = counting
        try:
            ds = self.dataset(batch_size=2)
            ds.length = 64  # 32 batches
            want = [ds[i] for i in range(len(ds))]
            for epoch in range(2):  # new workers each time
                calls.clear()
                loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, timeout=120)
                for g, w in zip(loader, want):
                    self.assertTrue(torch.equal(g["image"].view(torch.int16), w["image"].view(torch.int16)))
                    self.assertTrue(torch.equal(g["seg"], w["seg"]))
                    del g
                self.assertEqual(len(calls), 64)  # image and labels of 32 batches
                tokens = {t for t, _ in calls}
                self.assertLessEqual(len(tokens), 2 * 5)  # the buffers of the two workers' pools
                # a descriptor per tensor of a buffer's first batch only (without the handshake: all 64)
                self.assertLessEqual(sum(sent for _, sent in calls), 2 * len(tokens))
                self.assertEqual(len({t.split("-")[0] for t in tokens}), 2)
            # the first epoch's workers are gone, and so are their buffers' mappings
            self.assertEqual({t for t in vtt._RECEIVED}, tokens)
        finally:
            vtt._received = orig

    def test_image_and_labels_stay_aligned(self):
        ds = self.dataset(dtype=torch.float32, oversample_foreground=0.5)
        agree = []
        for i in range(len(ds)):
            item = ds[i]
            img, seg = item["image"][0].numpy(), item["seg"][0].numpy()
            inside = seg >= 0  # -1: outside the volume
            z = (img - 40) / 300
            from_image = np.digitize(z, [-0.8, 0.0, 0.8])
            agree.append((from_image == seg)[inside].mean())
            self.assertGreater(inside.mean(), 0.2)
        # measured on this data: aligned 0.960; labels half a voxel off 0.925, one voxel off 0.867
        self.assertGreater(np.mean(agree), 0.95)

    def test_normalize(self):
        from voxtile.augment import SpatialAugment
        from voxtile.torch import PatchDataset
        lo, hi, mean, std = -200.0, 600.0, 50.0, 250.0
        ident = SpatialAugment((10, 12, 14), p_rotation=0, p_scaling=0, mirror_axes=())
        for spatial in (None, ident):
            ds = PatchDataset([self.path], (10, 12, 14), seed=2, length=6, dtype=torch.float32, spatial=spatial,
                              normalize=(lo, hi, mean, std), oversample_foreground=0)
            for i in range(len(ds)):
                item = ds[i]
                z, y, x = item["start"].tolist()
                raw = np.pad(self.image[0].astype(np.float64), 20)[z + 20:z + 30, y + 20:y + 32, x + 20:x + 34]
                inside = np.pad(np.ones(self.image[0].shape, bool), 20)[z + 20:z + 30, y + 20:y + 32, x + 20:x + 34]
                ref = ((np.clip(raw, lo, hi) - mean) / std).astype(np.float32)
                np.testing.assert_allclose(item["image"][0].numpy()[inside], ref[inside], rtol=1e-6, atol=1e-6)
        # one transform per channel, both paths, float16 as numpy rounds the float32 result
        norm = [(lo, hi, mean, std), (None, None, 1000.0, 100.0)]
        for spatial in (None, ident):
            ds = PatchDataset([self.path2], (10, 12, 14), seed=2, length=4, dtype=torch.float16, spatial=spatial,
                              normalize=norm, oversample_foreground=0)
            for i in range(len(ds)):
                item = ds[i]
                z, y, x = item["start"].tolist()
                for c, (a, b, m, s) in enumerate(norm):
                    raw = np.pad(self.two[c].astype(np.float64), 20)[z + 20:z + 30, y + 20:y + 32, x + 20:x + 34]
                    ref = ((np.clip(raw, -np.inf if a is None else a, np.inf if b is None else b) - m) / s)
                    inside = np.pad(np.ones(self.two[c].shape, bool), 20)[z + 20:z + 30, y + 20:y + 32,
                                                                           x + 20:x + 34]
                    got = item["image"][c].numpy()
                    np.testing.assert_array_equal(got[inside], ref.astype(np.float32).astype(np.float16)[inside])
        with self.assertRaises(ValueError):
            PatchDataset([self.path], (4, 4, 4), normalize=(0, 1, 0, 0))

    def test_every_label_array_is_sampled(self):
        # a second label array, an increasing relabelling of the first (so the same votes win, ties too)
        from voxtile.augment import SpatialAugment
        from voxtile.torch import PatchDataset
        path = os.path.join(TMP, "ds3.vxt")
        seg2 = (self.seg.astype(np.int16) * 2 + 1).astype(np.uint8)
        write_store(path, {"image": (self.image, (1, 16, 16, 16), False), "seg": (self.seg, (1, 16, 16, 16), True),
                           "organs": (seg2, (1, 8, 16, 16), True),
                           "two": (np.concatenate([self.seg, self.seg]), (1, 16, 16, 16), True)}).close()
        size = (24, 28, 20)
        aug = SpatialAugment(size, p_rotation=1, p_scaling=1, p_elastic=0.3, elastic_magnitude=(0, 0.1))
        for spatial in (None, aug):
            for batch_size, workers in ((None, 0), (2, 0), (2, 2)):
                ds = PatchDataset([path], size, arrays=("image", "seg", "organs"), spatial=spatial, seed=6,
                                  length=8, batch_size=batch_size)
                one = PatchDataset([path], size, spatial=spatial, seed=6, length=8, batch_size=batch_size)
                loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)
                for got, ref in zip(loader, one):
                    seg = got["seg"].numpy()
                    self.assertEqual(seg.shape[-4], 2)
                    np.testing.assert_array_equal(seg[..., 0:1, :, :, :], ref["seg"].numpy())  # as with one array
                    first = seg[..., 0, :, :, :]
                    np.testing.assert_array_equal(seg[..., 1, :, :, :], np.where(first >= 0, first * 2 + 1, -1))
                    np.testing.assert_array_equal(got["image"].numpy(), ref["image"].numpy())
                    self.assertGreater((first > 0).mean(), 0.05)
        with self.assertRaisesRegex(ValueError, "each once"):
            PatchDataset([path], size, arrays=("image", "seg", "seg"))
        with self.assertRaisesRegex(voxtile.Error, "label array 'two' has shape"):
            PatchDataset([path], size, arrays=("image", "two"), spatial=aug)[0]

    def test_normalize_on_rotated_patches(self):
        # each channel clipped and z-scored before interpolation: the trilinear interpolation (scipy, float64)
        # of the normalised volume at the positions the same draw gives
        from voxtile.augment import SpatialAugment
        from voxtile.torch import PatchDataset
        size = (10, 12, 14)
        aug = SpatialAugment(size, p_rotation=1, p_scaling=1, p_mirror=0.5)
        norm = [(-200.0, 600.0, 50.0, 250.0), (None, None, 1000.0, 100.0)]
        ds = PatchDataset([self.path2], size, seed=4, length=6, dtype=torch.float32, spatial=aug,
                          normalize=norm, oversample_foreground=0)
        checked = 0
        for i in range(len(ds)):
            item = ds[i]
            start = item["start"].tolist()
            rng = np.random.default_rng([4, 0, i, 1])  # PatchDataset's draw for (seed, epoch 0, item i)
            t = aug.draw(rng, [s + (p - 1) / 2 for s, p in zip(start, size)])
            p = positions(np.asarray(t.matrix), size)
            f = np.floor(p)
            inside = np.all((f >= 0) & (f + 1 <= np.array(self.two.shape[1:]).reshape(3, 1, 1, 1) - 1), axis=0)
            for c, (a, b, m, s_) in enumerate(norm):
                v = (np.clip(self.two[c].astype(np.float64), -np.inf if a is None else a,
                             np.inf if b is None else b) - m) / s_
                ref = ndi.map_coordinates(v, p.reshape(3, -1), order=1).reshape(size)
                got = item["image"][c].numpy()
                np.testing.assert_allclose(got[inside], ref[inside], rtol=0, atol=2e-5 * np.abs(v).max())
            checked += int(inside.sum())
        self.assertGreater(checked, 1000)


if __name__ == "__main__":
    unittest.main(verbosity=2)
