"""convert --spacing, normalisation and export --like against independent oracles.

Oracles, written here in float64 numpy: the separable resampling of each
axis as a matrix (Keys' cubic with a = -1/2, linear, nearest with halves up;
output i at input coordinate (i + 0.5) n / n' - 0.5, taps clamped to the
edge); labels as the argmax of every label's one-hot mask resampled linearly
(the smallest label on ties); nibabel for the files (shapes, affines, header
fields) and nibabel.affines.rescale_affine for the geometry of a resampled
grid; numpy for the normalisations.

1. --spacing: random volumes (float32, int16 with rounding), cubic and
   linear, anisotropic sources and targets, separate z auto / on / off /
   linear; the segmentation; the bundled CT and its 42-label segmentation
   cropped and resampled; the recorded metadata; levels on a resampled grid.
2. export --like: a resampled, cropped case's image, its labels and a
   14-class float16 prediction (argmax) mapped back to the source grid:
   numpy reference, the source's affine and header fields (nibabel); float
   channels as a 4-d file with the background channel set outside the crop.
3. --normalize zscore / ct: read(normalize=True), GridPatches and
   PatchDataset(normalize=True) against numpy; Stitcher(dtype=float16).
4. bad input: spacings of 0, negative or malformed; --like a store of another
   case (shape, affine); argmax of integer or single channels; CT without
   its parameters or with the wrong channel count: clear errors, no output.

Run: PYTHONPATH=python VOXTILE=build/tools/voxtile /usr/bin/python3 tests/test_resample.py
"""
import atexit
import json
import os
import shutil
import struct
import sys
import tempfile
import unittest

import numpy as np
import nibabel as nib
from nibabel.affines import apply_affine

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
try:
    import voxtile
except ImportError:
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import voxtile
import torch  # noqa: F401 (voxtile.torch)
import voxtile.torch as vtt

from cliutil import CT, SEG, run  # noqa: E402 (the bundled CT; the CLI, VOXTILE)

TMP = tempfile.mkdtemp(prefix="vt-resample-")
atexit.register(shutil.rmtree, TMP, ignore_errors=True)


def path(name):
    return os.path.join(TMP, name)


# ---- the reference ----------------------------------------------------------

def keys(t, a=-0.5):
    t = np.abs(t)
    return np.where(t <= 1, (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1,
                    np.where(t < 2, a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a, 0.0))


def axis_matrix(n_in, n_out, kind):
    """(n_out, n_in): one axis resampled, voxel centres aligned, edge values outside."""
    x = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    m = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    if kind == "nearest":
        m[rows, np.clip(np.floor(x + 0.5).astype(int), 0, n_in - 1)] = 1
        return m
    f = np.floor(x).astype(int)
    for k in ((0, 1) if kind == "linear" else (-1, 0, 1, 2)):
        j = f + k
        w = np.clip(1 - np.abs(x - j), 0, None) if kind == "linear" else keys(x - j)
        np.add.at(m, (rows, np.clip(j, 0, n_in - 1)), w)
    return m


def resample(vol, shape, kinds):
    out = np.asarray(vol, np.float64)
    for ax in range(3):
        m = axis_matrix(out.shape[ax], shape[ax], kinds[ax])
        out = np.moveaxis(np.tensordot(m, np.moveaxis(out, ax, 0), axes=1), 0, ax)
    return out


def vote(seg, shape, kinds):
    """Labels: argmax over the labels of the one-hot masks resampled linearly (nearest where the kind is
    nearest), the smallest label on ties; also the winning and the runner-up weights."""
    ks = ["nearest" if k == "nearest" else "linear" for k in kinds]
    best = np.full(shape, -1.0)
    second = np.full(shape, -1.0)
    out = np.zeros(shape, np.int64)
    for v in np.unique(seg):
        p = resample(seg == v, shape, ks)
        win = p > best + 1e-9
        second = np.where(win, best, np.maximum(second, p))
        out[win] = v
        best[win] = p[win]
    return out, best, second


def assert_labels(test, got, seg, shape, kinds):
    want, best, second = vote(seg, shape, kinds)
    bad = got != want
    # only where two labels weigh the same (up to rounding) may the choice differ
    test.assertTrue(np.all(best[bad] - second[bad] < 1e-9), f"{bad.sum()} labels differ from the one-hot argmax")
    test.assertLess(bad.mean(), 0.002)


def new_shape(shape, old, new):
    """nnU-Net's: round(old / new * n), the old spacing as the file stores it (float32 zooms)."""
    return [max(1, int(np.rint(float(np.float32(o)) / s * n))) for n, o, s in zip(shape, old, new)]


def assert_resampled_affine(test, got, src_aff, n_in, n_out):
    """Each corner and the centre of the new grid lands where the centre-aligned map puts it in the source
    (nibabel's apply_affine on both sides); all arguments (z, y, x) but the affines."""
    n_in, n_out = np.array(n_in, float), np.array(n_out, float)
    for idx in ([0, 0, 0], n_out - 1, (n_out - 1) / 2, [n_out[0] - 1, 0, 3]):
        idx = np.array(idx, float)
        src = (idx + 0.5) * n_in / n_out - 0.5
        np.testing.assert_allclose(apply_affine(got, idx[::-1]), apply_affine(src_aff, src[::-1]), atol=1e-4)


def save_nifti(name, vol_zyx, zooms_zyx, dtype, origin=(3.0, -7.0, 11.0), flip_x=False):
    aff = np.diag([-zooms_zyx[2] if flip_x else zooms_zyx[2], zooms_zyx[1], zooms_zyx[0], 1.0])
    aff[:3, 3] = origin
    img = nib.Nifti1Image(np.asarray(vol_zyx).transpose(2, 1, 0).astype(dtype), aff)
    img.header.set_xyzt_units("mm")
    nib.save(img, path(name))
    return path(name), aff


def zyx(img):
    return np.asarray(img.dataobj).transpose(2, 1, 0)


class Spacing(unittest.TestCase):
    def test_images_every_order_and_separate_z(self):
        rng = np.random.default_rng(11)
        vol = rng.normal(size=(14, 23, 19)) * 100
        vol[4:9, 5:15, 3:12] += 400
        src, aff = save_nifti("v.nii.gz", vol, (4.0, 0.7, 0.9), np.float32)
        cases = [  # spacing, order, separate_z, expected kernels
            ((1.5, 1.1, 0.6), "cubic", "off", "cubic,cubic,cubic"),
            ((1.5, 1.1, 0.6), "linear", "off", "linear,linear,linear"),
            ((2.0, 1.0, 1.0), "cubic", "auto", "nearest,cubic,cubic"),  # source 4 / 0.7 > 3
            ((2.0, 1.0, 1.0), "cubic", "auto/linear", "linear,cubic,cubic"),
            ((5.0, 0.5, 0.45), "linear", "on", "nearest,linear,linear"),
        ]
        for sp, order, sep, kern in cases:
            with self.subTest(spacing=sp, order=order, separate_z=sep):
                out = path("v.vxt")
                voxtile.convert(src, out, spacing=sp, order=order, separate_z=sep)
                with voxtile.open(out) as s:
                    got = s["image"][...][0]
                    self.assertEqual(s.metadata["resample.kernel"], kern)
                    shape = new_shape(vol.shape, (4.0, 0.7, 0.9), sp)
                    self.assertEqual(got.shape, tuple(shape))
                    want = resample(vol.astype(np.float32), shape, kern.split(","))
                    np.testing.assert_allclose(got, want, atol=1e-3, rtol=1e-5)
                    assert_resampled_affine(self, s.affine, aff, vol.shape, shape)
                    eff = [float(np.float32(o)) * n / m for o, n, m in zip((4.0, 0.7, 0.9), vol.shape, shape)]
                    np.testing.assert_allclose(s.spacing, eff, rtol=1e-12)
                    np.testing.assert_allclose(s.metadata["source.affine"].reshape(4, 4), aff, atol=1e-6)
                    self.assertEqual(list(s.metadata["source.shape"]), list(vol.shape))
                    np.testing.assert_allclose(s.metadata["resample.spacing"], sp)

    def test_separate_z_tie_as_nnunet(self):
        """nnU-Net decides on the first anisotropic spacing (the source's here): two axes sharing its largest
        spacing mean no axis alone, even though the target (5, 1, 1) alone would name axis 0."""
        rng = np.random.default_rng(4)
        vol = rng.normal(size=(6, 7, 20)).astype(np.float32) * 50
        src, _ = save_nifti("tie.nii.gz", vol, (4.0, 4.0, 0.7), np.float32)
        out = path("tie.vxt")
        voxtile.convert(src, out, spacing=(5.0, 1.0, 1.0))
        with voxtile.open(out) as s:
            self.assertEqual(s.metadata["resample.kernel"], "cubic,cubic,cubic")
            shape = new_shape(vol.shape, (4.0, 4.0, 0.7), (5.0, 1.0, 1.0))
            np.testing.assert_allclose(s["image"][...][0], resample(vol, shape, ["cubic"] * 3), atol=1e-3, rtol=1e-5)

    def test_int16_rounds_and_clamps_and_upsamples(self):
        rng = np.random.default_rng(3)
        vol = rng.integers(-32768, 32767, size=(9, 12, 10)).astype(np.int16)
        vol[:, :, :4] = 32767  # cubic overshoot near a step must clamp, not wrap
        src, _ = save_nifti("i.nii.gz", vol, (1.0, 1.0, 1.0), np.int16)
        out = path("i.vxt")
        run("convert", src, "--spacing", "0.5,0.7,0.45", "-o", out, "-q")
        with voxtile.open(out) as s:
            a = s["image"]
            self.assertEqual(a.dtype, np.int16)
            shape = new_shape(vol.shape, (1, 1, 1), (0.5, 0.7, 0.45))
            want = np.clip(np.rint(resample(vol, shape, ["cubic"] * 3)), -32768, 32767)
            got = a[...][0].astype(np.float64)
            self.assertLessEqual(np.abs(got - want).max(), 1)  # float rounding at .5 only
            self.assertLess(np.mean(got != want), 0.001)

    def test_segmentation_label_vote(self):
        rng = np.random.default_rng(5)
        vol = rng.normal(size=(12, 21, 17)).astype(np.float32)
        seg = rng.integers(0, 6, size=vol.shape).astype(np.uint8)
        seg[2:9, 4:16, 3:13] = 9
        src, _ = save_nifti("l.nii.gz", vol, (5.0, 0.7, 0.8), np.float32)
        segp, _ = save_nifti("l_seg.nii.gz", seg, (5.0, 0.7, 0.8), np.uint8)
        for sp, sep in (((2.0, 1.0, 1.0), "auto"), ((2.0, 1.0, 1.0), "off"), ((7.0, 0.5, 0.6), "on")):
            with self.subTest(spacing=sp, separate_z=sep):
                out = path("l.vxt")
                voxtile.convert(src, out, seg=segp, spacing=sp, separate_z=sep)
                with voxtile.open(out) as s:
                    got = s["seg"][...][0]
                    kern = s.metadata["resample.kernel"].split(",")
                    assert_labels(self, got, seg, got.shape, kern)
                    self.assertEqual(set(s["seg"].labels), set(np.unique(got).tolist()))

    def test_bundled_ct_cropped(self):
        out = path("ct.vxt")
        run("convert", CT, "--seg", SEG, "--crop-to-label", "3", "--spacing", "2,2.5,4.5", "--levels", "1",
            "-o", out, "-q")
        ct, sg = nib.load(CT), nib.load(SEG)
        with voxtile.open(out) as s:
            c = s.metadata["crop"]
            box = tuple(slice(c[2 * d], c[2 * d + 1]) for d in range(3))
            src_zooms = ct.header.get_zooms()[::-1]
            cropped = zyx(ct)[box].astype(np.float64)
            shape = new_shape(cropped.shape, src_zooms, (2, 2.5, 4.5))
            kern = s.metadata["resample.kernel"].split(",")
            got = s["image"][...][0].astype(np.float64)
            want = np.clip(np.rint(resample(cropped, shape, kern)), -32768, 32767)
            self.assertEqual(got.shape, tuple(shape))
            self.assertLessEqual(np.abs(got - want).max(), 1)
            assert_labels(self, s["seg"][...][0], zyx(sg)[box], shape, kern)
            # the stored affine: the cropped source's, rescaled about its centre
            caff = ct.affine.copy()
            caff[:3, 3] = ct.affine[:3, :3] @ [c[4], c[2], c[0]] + ct.affine[:3, 3]
            assert_resampled_affine(self, s.affine, caff, cropped.shape, shape)
            self.assertIn("image@1", s)
        # the exported image carries the resampled grid's geometry
        run("export", out, "-o", path("ct_out.nii.gz"))
        e = nib.load(path("ct_out.nii.gz"))
        run("export", out, "--array", "image@1", "-o", path("ct_l1.nii.gz"))
        e1 = nib.load(path("ct_l1.nii.gz"))
        with voxtile.open(out) as s:
            np.testing.assert_allclose(e.affine, s.affine, atol=1e-4)
            np.testing.assert_array_equal(zyx(e), s["image"][...][0])
            np.testing.assert_allclose(e1.affine, s.metadata["image@1.affine"].reshape(4, 4), atol=1e-4)
            self.assertEqual(zyx(e1).shape, s["image@1"].shape[1:])


class Export(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rng = np.random.default_rng(8)
        z, y, x = 26, 30, 28
        zz, yy, xx = np.meshgrid(*[np.linspace(-1, 1, n) for n in (z, y, x)], indexing="ij")
        vol = (1000 * np.exp(-(zz ** 2 + yy ** 2 + xx ** 2) * 2) + rng.normal(size=(z, y, x)) * 20 - 500)
        cls.vol = vol.astype(np.int16)
        seg = np.zeros((z, y, x), np.uint8)
        seg[(zz ** 2 + yy ** 2 + xx ** 2) < 0.5] = 1
        seg[(zz ** 2 + (yy - 0.2) ** 2 + xx ** 2) < 0.1] = 2
        seg[3:6, 4:9, 5:12] = 3
        cls.seg = seg
        cls.src, cls.aff = save_nifti("case.nii.gz", cls.vol, (2.5, 0.8, 0.75), np.int16, flip_x=True)
        cls.segp, _ = save_nifti("case_seg.nii.gz", seg, (2.5, 0.8, 0.75), np.uint8, flip_x=True)
        cls.store = path("case.vxt")
        run("convert", cls.src, "--seg", cls.segp, "--crop-to-label", "2", "--spacing", "1.5,1.2,1.1",
            "-o", cls.store, "-q")
        with voxtile.open(cls.store) as s:
            cls.grid = s["image"].shape[1:]
            cls.crop = [int(v) for v in s.metadata["crop"]]
            cls.kern = s.metadata["resample.kernel"].split(",")
            cls.affine = s.affine

    def uncrop(self, inner, fill=0):
        out = np.full(self.vol.shape, fill, inner.dtype)
        c = self.crop
        out[c[0]:c[1], c[2]:c[3], c[4]:c[5]] = inner
        return out

    def extent(self):
        c = self.crop
        return [c[1] - c[0], c[3] - c[2], c[5] - c[4]]

    def check_header(self, img, dtype, shape):
        src = nib.load(self.src)
        self.assertEqual(img.shape, shape)
        self.assertEqual(img.get_data_dtype(), np.dtype(dtype))
        np.testing.assert_allclose(img.affine, src.affine, atol=1e-5)
        for f in ("qform_code", "sform_code", "xyzt_units", "pixdim"):
            np.testing.assert_array_equal(img.header[f][:4] if f == "pixdim" else img.header[f], src.header[f][:4]
                                          if f == "pixdim" else src.header[f], f)

    def test_argmax_of_float16_probabilities(self):
        rng = np.random.default_rng(1)
        C = 14
        logits = rng.normal(size=(C,) + self.grid).astype(np.float32)
        with voxtile.open(self.store) as s:
            seg = s["seg"][...][0]
        for k in range(1, 4):  # agree with the labels mostly, so that there are regions
            logits[k] += 3 * (seg == k)
        probs = np.exp(logits) / np.exp(logits).sum(0)
        pred = path("pred.vxt")
        st = vtt.Stitcher(pred, probs.shape, self.grid, dtype=np.float16,
                          metadata={"affine": self.affine.ravel()})
        st.add((0, 0, 0), probs)
        st.finalize()
        with voxtile.open(pred) as p:
            self.assertEqual(p["pred"].dtype, np.float16)
            stored = p["pred"][...].astype(np.float64)
        np.testing.assert_allclose(stored, probs, atol=1e-3)
        out = path("pred_argmax.nii.gz")
        run("export", pred, "--like", self.store, "--argmax", "-o", out, "-q")
        img = nib.load(out)
        self.check_header(img, np.uint8, self.vol.shape[::-1])
        got = zyx(img)
        kern = ["nearest" if k == "nearest" else "linear" for k in self.kern]
        res = np.stack([resample(stored[c], self.extent(), kern) for c in range(C)])
        srt = np.sort(res, axis=0)
        want = self.uncrop(res.argmax(0).astype(np.uint8))
        close = self.uncrop(srt[-1] - srt[-2] < 1e-5)  # float32 sums: near ties may go either way
        self.assertTrue(np.all((got == want) | close), f"{np.sum((got != want) & ~close)} voxels differ")
        self.assertGreater(len(np.unique(got)), 3)
        # the Python API writes the same file contents
        voxtile.export(pred, path("pred_py.nii.gz"), like=self.store, argmax=True)
        np.testing.assert_array_equal(zyx(nib.load(path("pred_py.nii.gz"))), got)

    def test_progress_with_and_without_like(self):
        # without like, export is export_nifti's file, now with its progress reported too
        rng = np.random.default_rng(5)
        probs = rng.random((2,) + self.grid).astype(np.float32)
        w = voxtile.Writer(path("p2.vxt"))
        w.write(w.add_array("pred", probs.shape, np.float32), (0, 0, 0, 0), probs)
        w.finalize()
        for like, array, kw in ((None, "image", {}), (self.store, None, dict(order="cubic"))):
            src = self.store if like is None else path("p2.vxt")
            fractions = []
            out = path("progress.nii.gz")
            voxtile.export(src, out, like=like, array=array, progress=fractions.append, **kw)
            self.assertGreaterEqual(len(fractions), 1, like)  # one slab of these small files: at least the end
            self.assertEqual(fractions, sorted(fractions), like)
            self.assertGreater(fractions[0], 0.0, like)
            self.assertEqual(fractions[-1], 1.0, like)
            if like is None:
                voxtile.export_nifti(self.store, path("plain.nii.gz"))
                a, b = nib.load(out), nib.load(path("plain.nii.gz"))
                self.assertEqual(a.header.binaryblock, b.header.binaryblock)
                np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
        with self.assertRaises(voxtile.InvalidArgument):
            voxtile.export(self.store, path("x.nii"), argmax=True, progress=print)

    def test_probabilities_as_channels(self):
        rng = np.random.default_rng(2)
        probs = rng.random((3,) + self.grid).astype(np.float32)
        probs /= probs.sum(0)
        w = voxtile.Writer(path("p3.vxt"))
        w.write(w.add_array("pred", probs.shape, np.float32), (0, 0, 0, 0), probs)
        w.finalize()
        out = path("p3.nii")
        voxtile.export(path("p3.vxt"), out, like=self.store, order="cubic")
        img = nib.load(out)
        self.assertEqual(img.shape, self.vol.shape[::-1] + (3,))
        got = np.asarray(img.dataobj).transpose(3, 2, 1, 0)
        kern = ["nearest" if k == "nearest" else "cubic" for k in self.kern]
        for c in range(3):
            want = self.uncrop(resample(probs[c], self.extent(), kern), fill=1.0 if c == 0 else 0.0)
            np.testing.assert_allclose(got[c], want, atol=1e-5)

    def test_integers_float32_cannot_hold_are_refused(self):
        # the resampling runs in float32: int32 values beyond 2^24 would come back changed, so they are
        # refused, naming the array; up to 2^24 they are exported
        rng = np.random.default_rng(6)
        for top, ok in ((1 << 24, True), ((1 << 24) + 3, False)):
            vals = rng.integers(top - 1000, top + 1, (1,) + self.grid).astype(np.int32)
            vals.flat[0] = top
            name = path(f"i32_{top}.vxt")
            w = voxtile.Writer(name)
            w.write(w.add_array("pred", vals.shape, np.int32), (0, 0, 0, 0), vals)
            w.finalize()
            out = path(f"i32_{top}.nii")
            if ok:
                voxtile.export(name, out, like=self.store)
                got = zyx(nib.load(out))
                kern = ["nearest" if k == "nearest" else "linear" for k in self.kern]
                want = self.uncrop(np.rint(resample(vals[0].astype(np.float64), self.extent(), kern)))
                inside = self.uncrop(np.ones(self.extent(), bool), fill=False)
                self.assertEqual(got.dtype, np.int32)
                self.assertLessEqual(np.abs(got[inside] - want[inside]).max(), 2)  # float32 steps of 1-2 here
            else:
                with self.assertRaisesRegex(voxtile.InvalidArgument, "pred.*2\\^24"):
                    voxtile.export(name, out, like=self.store)
                self.assertFalse(os.path.exists(out))

    def test_image_and_labels_back_on_the_source_grid(self):
        out = path("img_back.nii.gz")
        run("export", self.store, "--array", "image", "--like", self.store, "-o", out, "-q")
        img = nib.load(out)
        self.check_header(img, np.int16, self.vol.shape[::-1])
        with voxtile.open(self.store) as s:
            stored = s["image"][...][0]
            segs = s["seg"][...][0]
        kern = ["nearest" if k == "nearest" else "linear" for k in self.kern]
        want = self.uncrop(np.rint(resample(stored, self.extent(), kern)))
        self.assertLessEqual(np.abs(zyx(img) - want).max(), 1)
        # close to the source itself inside the crop (a round trip through a coarser grid)
        c = self.crop
        inner = (slice(c[0], c[1]), slice(c[2], c[3]), slice(c[4], c[5]))
        self.assertLess(np.median(np.abs(zyx(img)[inner].astype(float) - self.vol[inner])), 60)
        out = path("seg_back.nii.gz")
        voxtile.export(self.store, out, like=self.store, array="seg")
        lab = nib.load(out)
        self.check_header(lab, np.uint8, self.vol.shape[::-1])
        got = zyx(lab)
        self.assertTrue(np.all(got[np.ones_like(got, bool) & (self.uncrop(np.ones(self.extent(), bool)) == 0)] == 0))
        assert_labels(self, got[inner], segs, self.extent(), self.kern)
        self.assertGreater(np.mean(got == self.seg), 0.97)

    def test_no_resampling_just_uncrop(self):
        store = path("crop_only.vxt")
        run("convert", self.src, "--seg", self.segp, "--crop", "2:20,3:25,1:27", "-o", store, "-q")
        out = path("crop_back.nii.gz")
        run("export", store, "--array", "seg", "--like", store, "-o", out, "-q")
        want = np.zeros_like(self.seg)
        want[2:20, 3:25, 1:27] = self.seg[2:20, 3:25, 1:27]
        np.testing.assert_array_equal(zyx(nib.load(out)), want)

    def test_errors(self):
        out = path("bad.nii.gz")
        # a prediction of another grid
        other = path("other.vxt")
        w = voxtile.Writer(other)
        w.write(w.add_array("pred", (2, 5, 6, 7), np.float32), (0, 0, 0, 0), np.zeros((2, 5, 6, 7), np.float32))
        w.finalize()
        p = run("export", other, "--like", self.store, "--argmax", "-o", out, ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("another case", p.stderr)
        self.assertIn(other, p.stderr)
        self.assertFalse(os.path.exists(out))
        # same shape, another case's geometry
        moved = self.affine.copy()
        moved[:3, 3] += 40
        w = voxtile.Writer(path("moved.vxt"))
        w.write(w.add_array("pred", (2,) + self.grid, np.float32), (0, 0, 0, 0),
                np.zeros((2,) + self.grid, np.float32))
        w.set_meta("affine", moved.ravel())
        w.finalize()
        with self.assertRaises(voxtile.InvalidArgument) as e:
            voxtile.export(path("moved.vxt"), out, like=self.store, argmax=True)
        self.assertIn("affine", str(e.exception))
        self.assertFalse(os.path.exists(out))
        # fewer channels than the case's segmentation has classes; one channel
        with voxtile.open(self.store) as s:
            seg_max = max(s["seg"].labels)
        for c in (seg_max, 1):
            few = path(f"few{c}.vxt")
            w = voxtile.Writer(few)
            w.write(w.add_array("pred", (c,) + self.grid, np.float16), (0, 0, 0, 0),
                    np.zeros((c,) + self.grid, np.float16))
            w.finalize()
            p = run("export", few, "--like", self.store, "--argmax", "-o", out, ok=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn(few, p.stderr)
            self.assertIn("one channel per class", p.stderr)
            self.assertFalse(os.path.exists(out))
        # argmax of integer channels; labels of several channels
        p = run("export", self.store, "--array", "seg", "--like", self.store, "--argmax", "-o", out, ok=False)
        self.assertIn("argmax needs float channels", p.stderr)
        # --argmax without --like is a usage error
        p = run("export", self.store, "--argmax", "-o", out, ok=False)
        self.assertEqual(p.returncode, 2)
        # a store that records no source grid
        w = voxtile.Writer(path("bare.vxt"))
        w.write(w.add_array("image", (1, 4, 4, 4), np.float32), (0, 0, 0, 0), np.zeros((1, 4, 4, 4), np.float32))
        w.finalize()
        p = run("export", other, "--like", path("bare.vxt"), "-o", out, ok=False)
        self.assertIn("records no source grid", p.stderr)
        self.assertFalse(os.path.exists(out))


class Normalize(unittest.TestCase):
    def test_zscore_and_ct_by_read_gridpatches_and_patchdataset(self):
        raw = nib.load(CT).get_fdata().transpose(2, 1, 0)
        sg = zyx(nib.load(SEG))
        z = path("z.vxt")
        run("convert", CT, "--seg", SEG, "--normalize", "zscore", "-o", z, "-q")
        ct = path("c.vxt")
        params = (-800.0, 600.0, 45.5, 210.25)
        voxtile.convert(CT, ct, seg=SEG, normalize="ct", norm_params=[params])
        want_z = (raw - raw.mean()) / raw.std()
        want_c = (np.clip(raw, params[0], params[1]) - params[2]) / params[3]
        for store, want, scheme in ((z, want_z, "zscore"), (ct, want_c, "ct")):
            with self.subTest(scheme=scheme), voxtile.open(store) as s:
                a = s["image"]
                self.assertEqual(s.metadata["normalize"], scheme)
                self.assertEqual(a.dtype, np.int16)  # the stored values stay raw
                np.testing.assert_array_equal(a[...][0], np.asarray(nib.load(CT).dataobj).transpose(2, 1, 0))
                self.assertIsNone(s["seg"].normalization)
                got = a.read((0, 0, 0, 0), a.shape, dtype=np.float32, normalize=True)[0]
                np.testing.assert_allclose(got, want, atol=1e-5)
                h = a.read((0, 0, 0, 0), a.shape, dtype=np.float16, normalize=True)[0]
                np.testing.assert_allclose(h.astype(np.float64), want, atol=2e-3, rtol=1e-3)
                gp = vtt.GridPatches(s, (16, 32, 32), normalize=True)
                start = list(gp)[len(gp) // 2]
                patch = gp.read(start)[0]
                zz, yy, xx = start
                ref = np.zeros((16, 32, 32))
                box = want[zz:zz + 16, yy:yy + 32, xx:xx + 32]
                ref[:box.shape[0], :box.shape[1], :box.shape[2]] = box
                np.testing.assert_allclose(patch, ref, atol=1e-5)
        ds = vtt.PatchDataset([z], (16, 24, 24), normalize=True, dtype=torch.float32, length=6, seed=4)
        for i in range(6):
            item = ds[i]
            zz, yy, xx = [int(v) for v in item["start"]]
            ref = np.zeros((16, 24, 24))
            lo = [max(0, v) for v in (zz, yy, xx)]
            hi = [min(n, v + p) for n, v, p in zip(raw.shape, (zz, yy, xx), (16, 24, 24))]
            ref[lo[0] - zz:hi[0] - zz, lo[1] - yy:hi[1] - yy, lo[2] - xx:hi[2] - xx] = \
                want_z[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            np.testing.assert_allclose(item["image"][0].numpy(), ref, atol=1e-5)
            segref = np.full((16, 24, 24), -1)
            segref[lo[0] - zz:hi[0] - zz, lo[1] - yy:hi[1] - yy, lo[2] - xx:hi[2] - xx] = \
                sg[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            np.testing.assert_array_equal(item["seg"][0].numpy(), segref)

    def test_normalize_reads_the_scaled_values_it_was_recorded_on(self):
        vol = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
        src, _ = save_nifti("scaled.nii", vol, (1.0, 1.0, 1.0), np.int16)
        with open(src, "r+b") as f:  # scl_slope, scl_inter
            f.seek(112)
            f.write(struct.pack("<ff", 2.0, -10.0))
        out = path("scaled.vxt")
        voxtile.convert(src, out, normalize="zscore")
        x = vol * 2.0 - 10.0
        with voxtile.open(out) as s:
            a = s["image"]
            self.assertEqual(a.scaling, (2.0, -10.0))
            got = a.read((0, 0, 0, 0), a.shape, dtype=np.float32, normalize=True)[0]
            np.testing.assert_allclose(got, (x - x.mean()) / x.std(), atol=1e-5)
            # the raw values with the scaled values' mean and std would be silently wrong
            with self.assertRaisesRegex(voxtile.InvalidArgument, "scaling=False"):
                a.read((0, 0, 0, 0), a.shape, dtype=np.float32, normalize=True, scaling=False)

    def test_zscore_of_values_far_from_zero(self):
        # mean 1e9, std ~1: sum(x^2)/n - mean^2 cancels every digit of the variance in double;
        # the recorded mean and std must be numpy's all the same (float64 source, one channel and two)
        rng = np.random.default_rng(31)
        for shape in ((9, 10, 11), (2, 9, 10, 11)):
            vol = 1e9 + rng.normal(size=shape)
            src = path("far.npy")
            np.save(src, vol)
            out = path("far.vxt")
            voxtile.convert(src, out, normalize="zscore", dtype="float64")
            with voxtile.open(out) as s:
                got = s["image"].normalization
            chans = vol if vol.ndim == 4 else vol[None]
            self.assertEqual(len(got), len(chans))
            for (lo, hi, mean, sd), ch in zip(got, chans):
                self.assertEqual((lo, hi), (ch.min(), ch.max()))
                self.assertAlmostEqual(mean / ch.mean(), 1.0, delta=1e-13)
                self.assertAlmostEqual(sd / ch.std(), 1.0, delta=1e-9)

    def test_ct_from_a_dataset_fingerprint(self):
        """stats --fingerprint, then convert-dataset / convert / voxtile.convert --normalize ct with it: the
        parameters are numpy's foreground (label > 0 inside the nonzero box) percentiles 0.5 and 99.5, mean
        and std, and read(normalize=True) clips and scales by them."""
        ds = path("fpds")
        for sub in ("imagesTr", "labelsTr"):
            os.makedirs(os.path.join(ds, sub), exist_ok=True)
        shutil.copy(CT, os.path.join(ds, "imagesTr", "ct_001_0000.nii.gz"))
        shutil.copy(SEG, os.path.join(ds, "labelsTr", "ct_001.nii.gz"))
        with open(os.path.join(ds, "dataset.json"), "w") as f:
            json.dump({"channel_names": {"0": "CT"}, "labels": {"background": 0, "organ": 1},
                       "numTraining": 1, "file_ending": ".nii.gz"}, f)
        fp = path("fp.json")
        run("stats", ds, "--fingerprint", "-o", fp)
        raw = nib.load(CT).get_fdata().transpose(2, 1, 0)
        nz = np.argwhere(raw != 0)
        lo, hi = nz.min(0), nz.max(0) + 1
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        fg = raw[box][zyx(nib.load(SEG))[box] > 0]
        want = [*np.percentile(fg, [0.5, 99.5]), fg.mean(), fg.std()]
        out = path("fpout")
        run("convert-dataset", ds, "-o", out, "-j", "1", "--normalize", "ct", "--fingerprint", fp)
        one = path("fp1.vxt")
        run("convert", CT, "--normalize", "ct", "--fingerprint", fp, "-o", one, "-q")
        py = path("fp2.vxt")
        voxtile.convert(CT, py, normalize="ct", fingerprint=voxtile.load_fingerprint(fp))
        for store in (os.path.join(out, "ct_001.vxt"), one, py):
            with self.subTest(store=store), voxtile.open(store) as s:
                self.assertEqual(s.metadata["normalize"], "ct")
                np.testing.assert_allclose(s.metadata["normalize.params"], want, rtol=1e-9)
                a = s["image"]
                got = a.read((0, 0, 0, 0), a.shape, dtype=np.float32, normalize=True)[0]
                np.testing.assert_allclose(got, (np.clip(raw, want[0], want[1]) - want[2]) / want[3], atol=1e-5)
        # parameters only with --normalize ct; a file that is not a fingerprint names itself
        p = run("convert", CT, "--fingerprint", fp, "-o", path("x.vxt"), ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("add --normalize ct", p.stderr)
        bad = path("bad.json")
        with open(bad, "w") as f:
            f.write('{"spacings": [[1, 1, 1]]')
        p = run("convert-dataset", ds, "-o", path("fpbad"), "--normalize", "ct", "--fingerprint", bad, ok=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(bad, p.stderr)
        self.assertFalse(os.path.exists(path("fpbad")))
        with self.assertRaises(voxtile.InvalidArgument):
            voxtile.convert(CT, path("x.vxt"), normalize="zscore", fingerprint=fp)
        with self.assertRaises(voxtile.InvalidArgument):
            voxtile.convert(CT, path("x.vxt"), normalize="ct", fingerprint={"spacings": []})
        self.assertFalse(os.path.exists(path("x.vxt")))

    def test_errors(self):
        out = path("n.vxt")
        p = run("convert", CT, "--normalize", "ct", "-o", out, ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--norm-params", p.stderr)
        with self.assertRaises(voxtile.InvalidArgument) as e:  # two channels of parameters for one
            voxtile.convert(CT, out, normalize="ct", norm_params=[(0, 1, 0, 1), (0, 1, 0, 1)])
        self.assertIn("1 channels, 2 given", str(e.exception))
        p = run("convert", CT, "--normalize", "ct", "--norm-params", "0,1,0,0", "-o", out, ok=False)
        self.assertIn("STD > 0", p.stderr)
        self.assertFalse(os.path.exists(out))
        run("convert", CT, "-o", out, "-q")
        with voxtile.open(out) as s:
            with self.assertRaises(voxtile.InvalidArgument):
                s["image"].read((0, 0, 0, 0), (1, 2, 2, 2), dtype=np.float32, normalize=True)
            with self.assertRaises(voxtile.InvalidArgument):
                vtt.GridPatches(s, (8, 8, 8), normalize=True)


class LongOptions(unittest.TestCase):
    def test_convert_options_of_any_length_are_recorded(self):
        """A 4-channel CT normalisation, resampling and a 60-byte array name make the options line longer
        than 512 bytes: it is still recorded whole (it used to be dropped, and a rerun of convert-dataset
        could not tell the store was made the same way)."""
        name = "image_" + "x" * 54
        params = [(-1.23456789e+100 * (c + 1), 1.23456789e+100, -1.23456789e-100 * (c + 1), 9.87654321e+99)
                  for c in range(4)]
        sp = (1.2345678901234567, 0.98765432109876543, 1.1111111111111112)
        out = path("long.vxt")
        voxtile.convert([CT] * 4, out, array=name, spacing=sp, normalize="ct", norm_params=params, threads=1)
        with voxtile.open(out) as s:
            line = s.metadata["convert.options"]
            self.assertGreater(len(line), 512)
            self.assertTrue(line.startswith(f"array={name} dtype=same "), line)
            self.assertIn(" spacing=%.17g,%.17g,%.17g " % sp, line)
            self.assertIn(" normalize=ct:", line)
            for c, (lo, hi, mean, std) in enumerate(params):
                self.assertIn((";" if c else ":") + "%.9g,%.9g,%.9g,%.9g" % (lo, hi, mean, std), line)


class ValueRange(unittest.TestCase):
    """Resampled conversion keeps the unresampled path's rule for values the stored type cannot hold
    (VT_ERANGE naming the file, nothing written); only what the kernel's ringing adds beyond a type's range
    is clamped; a label that is no integer (NaN included) is refused before any cast."""

    def test_source_values_that_do_not_fit_are_refused_with_or_without_resampling(self):
        vol = np.full((6, 8, 7), 100.0, np.float32)
        vol[2, 3, 4] = 1e6
        src, _ = save_nifti("big.nii.gz", vol, (1.0, 1.0, 1.0), np.float32)
        out = path("big.vxt")
        for extra in ([], ["--spacing", "0.5,1,1"]):
            with self.subTest(resampled=bool(extra)):
                p = run("convert", src, "--dtype", "int16", "-o", out, *extra, ok=False)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(src, p.stderr)
                self.assertIn("1e+06 does not fit int16", p.stderr)
                self.assertFalse(os.path.exists(out))
        with self.assertRaises(voxtile.InvalidArgument) as e:
            voxtile.convert(src, out, spacing=(0.5, 1, 1), dtype="float16")
        self.assertIn("does not fit float16", str(e.exception))
        self.assertFalse(os.path.exists(out))

    def test_kernel_overshoot_is_clamped_in_float16(self):
        vol = np.zeros((6, 8, 9), np.float32)
        vol[:, :, 4:] = 65000.0  # fits float16; cubic ringing at the step goes past 65504
        src, _ = save_nifti("step.nii.gz", vol, (1.0, 1.0, 1.0), np.float32)
        out = path("step.vxt")
        voxtile.convert(src, out, spacing=(1.0, 1.0, 0.3), dtype="float16")
        shape = new_shape(vol.shape, (1, 1, 1), (1.0, 1.0, 0.3))
        want = resample(vol, shape, ["cubic"] * 3)
        self.assertGreater(want.max(), 65504)  # the reference overshoots
        with voxtile.open(out) as s:
            got = s["image"][...][0].astype(np.float64)
        self.assertTrue(np.isfinite(got).all())
        np.testing.assert_allclose(got, np.clip(want, -65504, 65504), rtol=1e-3, atol=1e-3)

    def test_nan_label_is_refused(self):
        img = np.random.default_rng(1).normal(size=(5, 6, 7)).astype(np.float32)
        seg = np.zeros((5, 6, 7), np.float32)
        seg[2, 2, 2] = np.nan
        src, _ = save_nifti("im.nii.gz", img, (1.0, 1.0, 1.0), np.float32)
        lab, _ = save_nifti("nanseg.nii.gz", seg, (1.0, 1.0, 1.0), np.float32)
        out = path("nanseg.vxt")
        for extra in ([], ["--spacing", "0.5,1,1"]):
            with self.subTest(resampled=bool(extra)):
                p = run("convert", src, "--seg", lab, "-o", out, *extra, ok=False)
                self.assertNotEqual(p.returncode, 0)
                self.assertIn(lab, p.stderr)
                self.assertIn("label value nan is not an integer", p.stderr)
                self.assertFalse(os.path.exists(out))


class BadSpacing(unittest.TestCase):
    def test_cli_and_python(self):
        out = path("bad.vxt")
        for sp in ("0,1,1", "1,-2,1", "1,1", "a,b,c", "1,1,inf"):
            with self.subTest(spacing=sp):
                p = run("convert", CT, "--spacing", sp, "-o", out, ok=False)
                self.assertEqual(p.returncode, 2)
                self.assertIn("--spacing", p.stderr)
        for sp in ((0, 1, 1), (1, -1, 1)):
            with self.assertRaises(voxtile.InvalidArgument) as e:
                voxtile.convert(CT, out, spacing=sp)
            self.assertIn("positive", str(e.exception))
            self.assertIn(CT, str(e.exception))
        # all zeros means "no resampling" to the library: refused here, not a silent plain conversion
        for sp in ((0, 0, 0), (1, 1)):
            with self.assertRaisesRegex(voxtile.InvalidArgument, "positive"):
                voxtile.convert(CT, out, spacing=sp)
        with self.assertRaises(voxtile.InvalidArgument):
            voxtile.convert(CT, out, spacing=(1, 1, 1), separate_z="sideways")
        self.assertFalse(os.path.exists(out))
        self.assertEqual([f for f in os.listdir(TMP) if f.startswith("bad.vxt")], [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
