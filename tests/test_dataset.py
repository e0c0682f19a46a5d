"""Dataset-level commands of the voxtile CLI against independent oracles:

1. `export`: convert + export gives back the source file byte for byte
   (NIfTI-1/-2, both byte orders, extensions, scaling kept, 4-d); crops read
   back by nibabel equal nibabel's slicer; channels as a 4-d file; --dtype
   casts; applied scaling; .npy stores; a pyramid level exported on its own
   grid; the error contract.
2. `--levels N`: a numpy reference of the pyramid (separable Lanczos-3
   stretched by 2 with half-sample mirror borders for images, 2x2x2 block
   mode for labels, the 3x-finest-spacing rule) and the levels' metadata.
3. `convert-dataset`: an nnU-Net raw folder to one store per case, reruns,
   failures, options.
4. `stats`: the JSON summary against numpy over known files.

A 3-d NIfTI (x, y, z) is stored as (1, z, y, x), a 4-d (x, y, z, t) as
(t, z, y, x).

Run: VOXTILE=build/tools/voxtile /usr/bin/python3 tests/test_dataset.py
"""
import gzip
import json
import math
import os
import re
import struct
import unittest

import numpy as np
from cliutil import (CT, DATA, SEG, VOXTILE, StoreCase, csv, file_bytes, rotation, run,  # noqa: E402,F401
                     to_store, translation)
import nibabel as nib


# header size -> byte ranges of the fields a crop changes: dim, qoffset_x..z, srow_x..z
CROP_FIELDS = {348: [(40, 56), (268, 280), (280, 328)],
               540: [(16, 80), (376, 400), (400, 496)]}


def write_file(path, data):
    with (gzip.open if path.endswith(".gz") else open)(path, "wb") as f:
        f.write(data)


def raw_slope_inter(path):
    """scl_slope and scl_inter as written in the file (nibabel's loaded header
    moves them to the data proxy)."""
    raw = file_bytes(path)
    for endian in "<>":
        size = struct.unpack(endian + "i", raw[:4])[0]
        if size == 348:
            return struct.unpack(endian + "ff", raw[112:120])
        if size == 540:
            return struct.unpack(endian + "dd", raw[176:192])
    raise AssertionError(f"{path}: not a NIfTI header")


def no_scaling(path):
    """The file says no scaling: scl_slope 0 or not finite, or exactly 1 and 0;
    and nibabel reads it so."""
    slope, inter = raw_slope_inter(path)
    img = nib.load(path)
    nib_none = float(img.dataobj.slope) == 1 and float(img.dataobj.inter) == 0
    return nib_none and (slope == 0 or not math.isfinite(slope) or (slope == 1 and inter == 0))


# ---- the pyramid reference ------------------------------------------------

def lanczos_weights():
    """The 12 taps of Lanczos-3 stretched by 2: input 2i-5+t of output i."""
    x = ((np.arange(12) - 5) - 0.5) / 2.0
    w = np.where(np.abs(x) < 3, np.sinc(x) * np.sinc(x / 3), 0.0)
    return w / w.sum()


W12 = lanczos_weights()


def lanczos_halve(a, axis):
    """Output i = sum_t W12[t] * a[mirror(2i-5+t)], ceil(n/2) outputs."""
    a = np.moveaxis(np.asarray(a, np.float64), axis, 0)
    n = a.shape[0]
    m = (n + 1) // 2
    p = np.pad(a, [(5, 6)] + [(0, 0)] * (a.ndim - 1), mode="symmetric")
    out = np.zeros((m,) + a.shape[1:])
    for t in range(12):
        out += W12[t] * p[t: t + 2 * m: 2]
    return np.moveaxis(out, 0, axis)


def label_mode_halve(lab, red):
    """Most frequent value of each block (2 along halved axes, smaller at the
    far edge), the smallest value on ties."""
    lab = np.asarray(lab, np.int64)
    oshape = tuple((n + 1) // 2 if r else n for n, r in zip(lab.shape, red))
    sentinel = np.iinfo(np.int64).min
    cands = []
    for dz in ((0, 1) if red[0] else (0,)):
        for dy in ((0, 1) if red[1] else (0,)):
            for dx in ((0, 1) if red[2] else (0,)):
                c = np.full(oshape, sentinel, np.int64)
                src = lab[dz:: 2 if red[0] else 1, dy:: 2 if red[1] else 1, dx:: 2 if red[2] else 1]
                c[: src.shape[0], : src.shape[1], : src.shape[2]] = src
                cands.append(c)
    v = np.stack(cands, -1)  # (..., k)
    valid = v != sentinel
    counts = ((v[..., :, None] == v[..., None, :]) & valid[..., None, :]).sum(-1)
    counts = np.where(valid, counts, -1)
    best = counts.max(-1, keepdims=True)
    big = np.iinfo(np.int64).max
    return np.where(counts == best, v, big).min(-1)


def pyramid_plan(shape, spacing, n):
    """[(halved axes (z, y, x), shape, spacing)] for up to n levels."""
    sh, sp, plan = list(shape), list(map(float, spacing)), []
    for _ in range(n):
        sizes = [sp[a] for a in range(3) if sh[a] > 1]
        if not sizes:
            break
        finest = min(sizes)
        red = [sh[a] > 1 and sp[a] <= 3 * finest for a in range(3)]
        if not any(red):
            break
        sh = [(sh[a] + 1) // 2 if red[a] else sh[a] for a in range(3)]
        sp = [sp[a] * 2 if red[a] else sp[a] for a in range(3)]
        plan.append((red, tuple(sh), tuple(sp)))
    return plan


def pyramid_images(vol, plan):
    """The float64 cascade of a (z, y, x) volume."""
    out, cur = [], np.asarray(vol, np.float64)
    for red, _, _ in plan:
        for a in range(3):
            if red[a]:
                cur = lanczos_halve(cur, a)
        out.append(cur)
    return out


def pyramid_labels(lab, plan):
    out, cur = [], lab
    for red, _, _ in plan:
        cur = label_mode_halve(cur, red)
        out.append(cur)
    return out


def level_affine(affine, red):
    """Voxel i of the level is centred on voxel 2i + 0.5 of the level above
    (red in z, y, x; affine columns in x, y, z)."""
    m = np.eye(4)
    for a in range(3):
        if red[a]:
            col = 2 - a
            m[col, col] = 2
            m[col, 3] = 0.5
    return affine @ m


class DatasetTest(StoreCase):
    prefix = "vt-dataset-"
    seed = 23

    def export(self, store, name, *opts):
        out = os.path.join(self.outdir(), name)
        run("export", store, "-o", out, *opts)
        self.assertEqual(os.listdir(os.path.dirname(out)), [name], "export left other files behind")
        return out

    def int16_image(self, shape, cls=nib.Nifti1Image, endian="<", affine=None):
        data = self.rng.integers(-3000, 3000, shape).astype(np.int16)
        hdr = cls.header_class(endianness=endian)
        hdr.set_data_dtype(np.int16)
        if affine is None:
            affine = np.array([[0.7, 0, 0, -20.5], [0, 1.3, 0, 7.25], [0, 0, 2.5, 100.0], [0, 0, 0, 1]])
        return cls(data, affine, header=hdr)

    def scaled_file(self, name, slope=2.0, inter=-10.0, img=None):
        """An int16 NIfTI-1 with scl_slope/scl_inter set in the header (raw values kept)."""
        if img is None:
            img = self.int16_image((7, 6, 5))
        plain = self.save(img, "plain_" + name.replace(".gz", ""))
        raw = bytearray(file_bytes(plain))
        raw[112:120] = struct.pack("<ff", slope, inter)
        p = self.path(name)
        write_file(p, bytes(raw))
        got = nib.load(p)
        self.assertEqual(raw_slope_inter(p), (slope, inter))
        self.assertEqual((got.dataobj.slope, got.dataobj.inter), (slope, inter))
        np.testing.assert_array_equal(got.get_fdata(), np.asarray(img.dataobj, np.float64) * slope + inter)
        return p

    def assert_same_bytes(self, src, back):
        a, b = file_bytes(src), file_bytes(back)
        if a != b:
            diff = [i for i in range(min(len(a), len(b))) if a[i] != b[i]][:10]
            self.fail(f"{back} differs from {src}: sizes {len(a)} vs {len(b)}, first differing bytes at {diff}")

    # ---- 1. export ------------------------------------------------------

    def test_export_ct_reproduces_the_source(self):
        store = self.convert(CT)
        for name in ("back.nii.gz", "back.nii"):
            with self.subTest(output=name):
                back = self.export(store, name)
                if name.endswith(".gz"):
                    with open(back, "rb") as f:
                        self.assertEqual(f.read(2), b"\x1f\x8b", "a .nii.gz output is gzipped")
                else:
                    with open(back, "rb") as f:
                        self.assertEqual(f.read(4), struct.pack("<i", 348), "a .nii output is not gzipped")
                self.assert_same_bytes(CT, back)

    def test_export_segmentation_with_extension_reproduces_the_source(self):
        raw = file_bytes(SEG)
        self.assertGreater(struct.unpack("<f", raw[108:112])[0], 352)  # it has an extension
        self.assertEqual(raw[348], 1)
        store = self.convert(SEG)
        self.assert_same_bytes(SEG, self.export(store, "seg.nii.gz"))

    def test_export_variants_reproduce_the_source(self):
        aff = np.eye(4)
        aff[:3, :3] = rotation([1, 2, 3], 0.4) @ np.diag([0.8, 1.1, 2.0])
        aff[:3, 3] = [-12.5, 40.0, 3.25]
        files = {}
        files["nifti2"] = self.save(self.int16_image((7, 6, 5), cls=nib.Nifti2Image, affine=aff), "n2.nii")
        files["nifti2 gz"] = self.save(self.int16_image((5, 6, 7), cls=nib.Nifti2Image), "n2.nii.gz")
        be = nib.Nifti1Image(self.rng.normal(0, 100, (6, 5, 4)).astype(">f4"), aff,
                             header=nib.Nifti1Header(endianness=">"))
        be.header.set_data_dtype(">f4")
        files["big-endian"] = self.save(be, "be.nii.gz")
        self.assertEqual(file_bytes(files["big-endian"])[:4], struct.pack(">i", 348))
        ext = self.int16_image((6, 5, 4))
        ext.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"voxtile dataset test"))
        ext.header.extensions.append(nib.nifti1.Nifti1Extension(40, b"\x00\x01bin\xff" * 7))
        files["extension"] = self.save(ext, "ext.nii")
        raw = file_bytes(files["extension"])
        self.assertGreater(struct.unpack("<f", raw[108:112])[0], 352)
        be_ext = self.int16_image((4, 5, 6), endian=">")
        be_ext.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"big-endian extension"))
        files["big-endian extension"] = self.save(be_ext, "be_ext.nii.gz")
        files["scaled"] = self.scaled_file("scl.nii.gz")
        four = self.int16_image((5, 4, 3, 2))
        four.header.set_zooms((0.7, 1.3, 2.5, 4.0))
        files["4-d"] = self.save(four, "four.nii")
        for what, p in files.items():
            with self.subTest(what=what):
                store = self.convert(p)
                back = self.export(store, "back.nii.gz" if p.endswith(".gz") else "back.nii")
                self.assert_same_bytes(p, back)
                src, got = nib.load(p), nib.load(back)
                np.testing.assert_array_equal(np.asarray(got.dataobj), np.asarray(src.dataobj))
                np.testing.assert_array_equal(got.get_fdata(), src.get_fdata())

    def crop_box_oracle(self, seg_xyz, margin):
        """(z0, z1, y0, y1, x0, x1) of the foreground grown by margin, clamped."""
        idx = np.nonzero(seg_xyz != 0)
        box = []
        for ax in (2, 1, 0):
            lo, hi = int(idx[ax].min()) - margin, int(idx[ax].max()) + 1 + margin
            box += [max(lo, 0), min(hi, seg_xyz.shape[ax])]
        return box

    def check_cropped_export(self, img_path, seg_path, margin, *opts):
        src, segimg = nib.load(img_path), nib.load(seg_path)
        store = self.convert(img_path, "--crop-to-label", margin, *opts, seg=seg_path)
        info = self.info(store)
        box = info["metadata"]["crop"]
        self.assertEqual(box, self.crop_box_oracle(np.asarray(segimg.dataobj), margin))
        z0, z1, y0, y1, x0, x1 = box
        want = src.slicer[x0:x1, y0:y1, z0:z1]
        back = nib.load(self.export(store, "img.nii.gz"))
        self.assertEqual(back.shape, want.shape)
        self.assertEqual(back.get_data_dtype(), src.get_data_dtype())
        np.testing.assert_array_equal(np.asarray(back.dataobj), np.asarray(want.dataobj))
        np.testing.assert_array_equal(back.get_fdata(), want.get_fdata())
        np.testing.assert_allclose(back.affine, want.affine, rtol=0, atol=1e-4)
        t = translation(x0, y0, z0)
        np.testing.assert_allclose(back.header.get_qform(), src.header.get_qform() @ t, rtol=0, atol=1e-4)
        np.testing.assert_allclose(back.header.get_sform(), src.header.get_sform() @ t, rtol=0, atol=1e-4)
        for field in ("qform_code", "sform_code", "pixdim", "xyzt_units", "descrip"):
            np.testing.assert_array_equal(back.header[field], src.header[field], err_msg=field)
        # the header unchanged outside shape and translations, extensions kept
        n = 540 if isinstance(src.header, nib.Nifti2Header) else 348
        a, b = bytearray(file_bytes(img_path)), bytearray(file_bytes(back.get_filename()))
        vox = int(src.header["vox_offset"]) if n == 540 else int(struct.unpack(
            ">f" if src.header.endianness == ">" else "<f", bytes(a[108:112]))[0])
        for lo, hi in CROP_FIELDS[n]:
            a[lo:hi] = b[lo:hi] = b"\0" * (hi - lo)
        self.assertEqual(b[:vox], a[:vox], "header fields other than dim and translations changed")
        # the segmentation: its dtype, no scaling, same grid
        sback = nib.load(self.export(store, "seg.nii.gz", "--array", "seg"))
        swant = segimg.slicer[x0:x1, y0:y1, z0:z1]
        # the segmentation's dtype (in the byte order of the header it got)
        self.assertEqual(sback.get_data_dtype().newbyteorder("<"), segimg.get_data_dtype().newbyteorder("<"))
        self.assertTrue(no_scaling(sback.get_filename()), raw_slope_inter(sback.get_filename()))
        np.testing.assert_array_equal(np.asarray(sback.dataobj), np.asarray(swant.dataobj))
        np.testing.assert_array_equal(sback.get_fdata(), np.asarray(swant.dataobj, np.float64))
        np.testing.assert_allclose(sback.affine, want.affine, rtol=0, atol=1e-4)
        return box

    def test_export_crop_to_label_ct(self):
        box = self.check_cropped_export(CT, SEG, 2)
        self.assertNotEqual(box, [0, 30, 0, 101, 0, 122], "the crop does nothing")

    def test_export_crop_to_label_big_endian_and_nifti2(self):
        """The crop patched in the source's byte order and layout."""
        q = np.eye(4)
        q[:3, :3] = rotation([0.3, 1, -1], 0.5) @ np.diag([1.1, 0.9, 1.7])
        q[:3, 3] = [-30.0, 12.0, 5.5]
        seg = np.zeros((11, 9, 8), np.int16)
        seg[2:6, 5:8, 3:5] = 5
        seg[7, 6, 4] = -2
        for cls, endian, ext in ((nib.Nifti1Image, ">", "nii.gz"), (nib.Nifti2Image, "<", "nii"),
                                 (nib.Nifti2Image, ">", "nii.gz")):
            with self.subTest(cls=cls.__name__, endian=endian):
                img = self.int16_image((11, 9, 8), cls=cls, endian=endian, affine=q)
                img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"crop me"))
                stem = f"c_{cls.__name__}_{ord(endian)}"
                p = self.save(img, f"{stem}.{ext}")
                self.assertEqual(nib.load(p).header.endianness, endian)
                sp = self.save(cls(seg, nib.load(p).affine), f"{stem}_seg.{ext}")
                box = self.check_cropped_export(p, sp, 0)
                self.assertEqual(box, [3, 5, 5, 8, 2, 8])

    def test_export_crop_to_label_scaled_with_qform_and_sform(self):
        q = np.eye(4)
        q[:3, :3] = rotation([1, -2, 0.5], 0.7) @ np.diag([0.9, 1.2, -2.0])
        q[:3, 3] = [10.0, -20.0, 30.0]
        s = np.eye(4)
        s[:3, :3] = np.array([[0.9, 0.1, 0.0], [-0.05, 1.2, 0.2], [0.0, 0.1, 2.0]])
        s[:3, 3] = [-5.0, 6.0, -7.0]
        img = self.int16_image((14, 12, 10))
        img.set_qform(q, code=1)
        img.set_sform(s, code=2)
        p = self.scaled_file("sq.nii", img=img)
        self.assertEqual(int(nib.load(p).header["qform_code"]), 1)
        self.assertEqual(int(nib.load(p).header["sform_code"]), 2)
        seg = np.zeros((14, 12, 10), np.uint8)
        seg[4:9, 3:7, 2:6] = 3
        seg[6, 5, 4] = 1
        sp = self.save(nib.Nifti1Image(seg, nib.load(p).affine), "sq_seg.nii.gz")
        box = self.check_cropped_export(p, sp, 1)
        self.assertEqual(box, [1, 7, 2, 8, 3, 10])

    def test_export_channels_as_4d(self):
        """Several channels become a 4-d file (x, y, z, channel) with the first source's header."""
        aff = np.diag([0.9, 1.1, 2.0, 1.0])
        a = self.int16_image((6, 5, 4), affine=aff)
        b = self.int16_image((6, 5, 4), affine=aff)
        pa, pb = self.save(a, "ch_0000.nii.gz"), self.save(b, "ch_0001.nii.gz")
        store = self.convert([pa, pb])
        p = self.export(store, "both.nii.gz")
        img = nib.load(p)
        self.assertEqual(img.shape, (6, 5, 4, 2))
        self.assertEqual(int(img.header["dim"][0]), 4)
        np.testing.assert_array_equal(np.asarray(img.dataobj)[..., 0], np.asarray(a.dataobj))
        np.testing.assert_array_equal(np.asarray(img.dataobj)[..., 1], np.asarray(b.dataobj))
        np.testing.assert_allclose(img.affine, nib.load(pa).affine, rtol=0, atol=1e-6)
        src, got = bytearray(file_bytes(pa)[:348]), bytearray(file_bytes(p)[:348])
        src[40:56] = got[40:56] = b"\0" * 16
        self.assertEqual(got, src, "header fields other than dim changed")
        # and a 4-d file converts and exports back to itself
        store = self.convert(p)
        self.assert_same_bytes(p, self.export(store, "again.nii.gz"))

    def test_export_dtype_cast(self):
        """--dtype: float16 is written as float32; an integer cast keeps the raw values' scaling."""
        p = self.scaled_file("cast.nii.gz")
        src = nib.load(p)
        raw = src.dataobj.get_unscaled()
        self.assertEqual(raw.dtype, np.int16)
        for dt, want_dt in (("float16", "float32"), ("int32", "int32"), ("float64", "float64")):
            with self.subTest(dtype=dt):
                store = self.convert(p, "--dtype", dt)
                self.assertEqual(self.array_info(self.info(store), "image")["dtype"], dt)
                img = nib.load(self.export(store, "cast.nii.gz"))
                self.assertEqual(img.get_data_dtype(), np.dtype(want_dt))
                np.testing.assert_array_equal(img.dataobj.get_unscaled(), raw.astype(dt).astype(want_dt))
                self.assertEqual(raw_slope_inter(img.get_filename()), (2.0, -10.0))
                np.testing.assert_array_equal(img.get_fdata(), raw.astype(dt).astype(np.float64) * 2 - 10)
                np.testing.assert_allclose(img.affine, src.affine, rtol=0, atol=1e-6)

    def test_export_pyramid_level_geometry(self):
        """An exported level has the level's grid: its voxel size and image@K.affine."""
        store = self.convert(CT, "--levels", 2, "--crop", "0:30,3:90,4:120", seg=SEG)
        meta = self.info(store)["metadata"]
        src = nib.load(CT)
        base = src.slicer[4:120, 3:90, 0:30].affine
        aff = base
        for k in (1, 2):
            aff = level_affine(aff, [True, True, True])
            np.testing.assert_allclose(np.reshape(meta[f"image@{k}.affine"], (4, 4)), aff, rtol=0, atol=1e-6)
            for name in (f"image@{k}", f"seg@{k}"):
                with self.subTest(array=name):
                    img = nib.load(self.export(store, "level.nii.gz", "--array", name))
                    np.testing.assert_array_equal(to_store(np.asarray(img.dataobj)),
                                                  self.read_array(store, name))
                    np.testing.assert_allclose(img.header.get_zooms()[:3], [3.0 * 2 ** k] * 3, rtol=1e-6)
                    np.testing.assert_allclose(img.affine, aff, rtol=0, atol=1e-4)

    def test_export_apply_scaling(self):
        p = self.scaled_file("as.nii.gz")
        src = nib.load(p)
        store = self.convert(p, "--apply-scaling")
        self.assertEqual(self.array_info(self.info(store), "image")["dtype"], "float32")
        back = nib.load(self.export(store, "as.nii.gz"))
        self.assertEqual(back.get_data_dtype(), np.dtype("float32"))
        self.assertTrue(no_scaling(back.get_filename()), raw_slope_inter(back.get_filename()))
        np.testing.assert_array_equal(np.asarray(back.dataobj), src.get_fdata().astype(np.float32))
        np.testing.assert_array_equal(back.get_fdata(), src.get_fdata())
        np.testing.assert_allclose(back.affine, src.affine, rtol=0, atol=1e-6)

    def test_export_npy_store(self):
        for dt in ("int16", "float32", "float16", "uint8"):
            with self.subTest(dtype=dt):
                arr = self.rng.normal(0, 100, (4, 5, 6)).astype(dt)  # (z, y, x)
                src = self.path(f"a_{dt}.npy")
                np.save(src, arr)
                store = self.convert(src)
                img = nib.load(self.export(store, "a.nii"))
                self.assertEqual(img.shape, (6, 5, 4))
                self.assertEqual(img.get_data_dtype(), np.dtype("float32") if dt == "float16" else np.dtype(dt))
                self.assertTrue(no_scaling(img.get_filename()))
                np.testing.assert_array_equal(np.asarray(img.dataobj), arr.transpose(2, 1, 0).astype(img.get_data_dtype()))
                np.testing.assert_allclose(img.affine, np.eye(4), rtol=0, atol=1e-6)
                np.testing.assert_allclose(img.header.get_zooms(), (1, 1, 1))

    def test_export_errors(self):
        store = self.convert(CT)
        cases = [(["--array", "nope"], "x.nii.gz", store, [r"nope"]),
                 ([], "x.img", "x.img", [r"\.nii"]),
                 ([], "x.nii.bz2", "x.nii.bz2", [r"\.nii"]),
                 ([], "x", "x", [r"\.nii"]),
                 (["--array", "seg"], "x.nii", store, [r"seg"])]
        for opts, name, named, frags in cases:
            with self.subTest(opts=opts, name=name):
                d = self.outdir()
                out = os.path.join(d, name)
                p = run("export", store, "-o", out, *opts, ok=False)
                self.assertEqual(p.returncode, 1, p.stderr)
                if named == name:
                    named = out
                self.assertIn(named, p.stderr, "the message names the file")
                self.assertTrue(p.stderr.startswith("voxtile: "), p.stderr)
                for frag in frags:
                    self.assertRegex(p.stderr, frag)
                self.assertEqual(os.listdir(d), [], "export left files behind")
        d = self.outdir()
        missing = self.path("missing.vxt")
        p = run("export", missing, "-o", os.path.join(d, "x.nii"), ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(missing, p.stderr)
        self.assertEqual(os.listdir(d), [])

    # ---- 2. pyramid levels ----------------------------------------------

    def check_levels(self, store, vol, lab, spacing, affine, nlevels, expect_n=None, float_data=False):
        """vol: (c, z, y, x) image; lab: (z, y, x) labels or None; spacing (z, y, x)."""
        info = self.info(store)
        meta = info["metadata"]
        plan = pyramid_plan(vol.shape[1:], spacing, nlevels)
        if expect_n is not None:
            self.assertEqual(len(plan), expect_n, "reference plan")
        self.assertEqual(meta["levels"], [len(plan)])
        names = [a["name"] for a in info["arrays"]]
        self.assertNotIn(f"image@{len(plan) + 1}", names)
        self.assertNotIn("image@0", names)
        base_dtype = self.array_info(info, "image")["dtype"]
        refs = [pyramid_images(vol[c], plan) for c in range(vol.shape[0])]
        aff = np.asarray(affine, float)
        for k, (red, shape, sp) in enumerate(plan, 1):
            name = f"image@{k}"
            ai = self.array_info(info, name)
            self.assertEqual(ai["shape"], [vol.shape[0], *shape], name)
            self.assertEqual(ai["dtype"], base_dtype, name)
            got = self.read_array(store, name, info).astype(np.float64)
            want = np.stack([r[k - 1] for r in refs])
            if float_data:
                atol = 1e-5 * float(np.abs(vol).max())
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=atol, err_msg=name)
            else:  # rounded to nearest, saturated to the dtype's range
                ii = np.iinfo(np.dtype(base_dtype))
                want = np.clip(want, ii.min, ii.max)
                d = np.abs(got - np.rint(want))
                self.assertLessEqual(d.max(), 1, f"{name}: off by {d.max()} at {np.unravel_index(d.argmax(), d.shape)}")
                e = np.abs(got - want)
                self.assertLessEqual(e.max(), 0.5 + 1e-2, f"{name}: not rounded to nearest ({e.max()})")
            np.testing.assert_allclose(meta[f"{name}.spacing"], sp, rtol=1e-6, err_msg=name)
            aff = level_affine(aff, red)
            np.testing.assert_allclose(np.reshape(meta[f"{name}.affine"], (4, 4)), aff, rtol=0, atol=1e-6,
                                       err_msg=name)
        if lab is None:
            self.assertNotIn("seg@1", names)
            return
        seg_dtype = self.array_info(info, "seg")["dtype"]
        self.assertNotIn(f"seg@{len(plan) + 1}", names)
        for k, want in enumerate(pyramid_labels(lab, plan), 1):
            name = f"seg@{k}"
            ai = self.array_info(info, name)
            self.assertEqual(ai["shape"], [1, *want.shape], name)
            self.assertEqual(ai["dtype"], seg_dtype, name)
            got = self.read_array(store, name, info)[0].astype(np.int64)
            bad = np.argwhere(got != want)
            self.assertEqual(len(bad), 0, f"{name}: {len(bad)} voxels differ, first at {bad[:3].tolist()}")
            values, counts = np.unique(want, return_counts=True)
            self.assertEqual([l["value"] for l in ai["labels"]], values.tolist(), name)
            self.assertEqual([l["voxels"] for l in ai["labels"]], counts.tolist(), name)

    def test_reference_filter(self):
        """The reference itself: weights, a constant and a ramp survive, sizes."""
        self.assertEqual(len(W12), 12)
        self.assertAlmostEqual(W12.sum(), 1.0)
        np.testing.assert_allclose(W12, W12[::-1])
        np.testing.assert_allclose(lanczos_halve(np.full(9, 5.0), 0), np.full(5, 5.0))
        r = lanczos_halve(np.arange(40.0), 0)
        np.testing.assert_allclose(r[3:-3], 2 * np.arange(3, 17) + 0.5, atol=1e-9)  # centred on 2i + 0.5
        m = label_mode_halve(np.array([[[1, 2], [2, 3]], [[3, 3], [1, 1]]]), [True, True, True])
        self.assertEqual(m.tolist(), [[[1]]])  # 1 and 3 three times each: the smallest
        m = label_mode_halve(np.array([[[5, 4, 4]]]), [False, False, True])
        self.assertEqual(m.tolist(), [[[4, 4]]])

    def test_levels_ct_and_segmentation(self):
        store = self.convert(CT, "--levels", 3, seg=SEG)
        img, seg = nib.load(CT), nib.load(SEG)
        vol = to_store(np.asarray(img.dataobj))
        lab = to_store(np.asarray(seg.dataobj))[0]
        spacing = [float(z) for z in img.header.get_zooms()[::-1]]
        self.assertEqual(spacing, [3.0, 3.0, 3.0])
        plan = pyramid_plan(vol.shape[1:], spacing, 3)
        self.assertEqual([p[0] for p in plan], [[True] * 3] * 3)
        self.assertEqual([p[1] for p in plan], [(15, 51, 61), (8, 26, 31), (4, 13, 16)])
        self.check_levels(store, vol, lab, spacing, img.affine, 3, expect_n=3)
        # the base arrays are untouched
        info = self.info(store)
        np.testing.assert_array_equal(self.read_array(store, "image", info), vol)
        np.testing.assert_array_equal(self.read_array(store, "seg", info)[0], lab)

    def test_levels_anisotropic(self):
        """zooms (0.8, 0.8, 5.0): x and y halve until z is within 3x the finest."""
        data = (self.rng.normal(0, 1, (21, 18, 6)).cumsum(0) * 100).astype(np.float32)
        aff = np.diag([0.8, 0.8, 5.0, 1.0])
        aff[:3, 3] = [-10.0, 4.0, 22.5]
        p = self.save(nib.Nifti1Image(data, aff), "aniso.nii.gz")
        labels = self.rng.integers(0, 4, (21, 18, 6)).astype(np.uint8)
        labels[:5] = 7
        sp_ = self.save(nib.Nifti1Image(labels, aff), "aniso_seg.nii.gz")
        spacing = [5.0, 0.8, 0.8]
        plan = pyramid_plan((6, 18, 21), spacing, 8)
        self.assertEqual([p[0] for p in plan],
                         [[False, True, True], [False, True, True], [True, True, True], [True, True, True],
                          [True, True, True]])
        self.assertEqual(plan[-1][1], (1, 1, 1))
        vol = to_store(data)
        lab = to_store(labels)[0]
        for n, expect in ((2, 2), (8, 5)):
            with self.subTest(levels=n):
                store = self.convert(p, "--levels", n, seg=sp_)
                self.check_levels(store, vol, lab, spacing, nib.load(p).affine, n, expect_n=expect, float_data=True)
        # a cropped grid: the levels start from the crop corner
        store = self.convert(p, "--levels", 3, "--crop", "1:6,2:17,3:20", seg=sp_)
        cropped = nib.load(p).slicer[3:20, 2:17, 1:6]
        self.check_levels(store, to_store(np.asarray(cropped.dataobj)), lab[1:6, 2:17, 3:20], spacing,
                          cropped.affine, 3, float_data=True)

    def test_levels_of_a_plain_npy(self):
        """--levels on a .npy (C or Fortran order, 3-d or (c, z, y, x)): the levels are built, not skipped."""
        data = self.rng.normal(0, 1, (2, 14, 12, 10)).astype(np.float32)
        for arr, name in ((data[0], "v3.npy"), (data, "v4.npy"), (np.asfortranarray(data[0]), "vf.npy")):
            with self.subTest(name=name):
                p = os.path.join(self.tmp, name)
                np.save(p, arr)
                store = self.convert(p, "--levels", 1)
                vol = arr[None] if arr.ndim == 3 else arr
                self.check_levels(store, vol, None, [1.0, 1.0, 1.0], np.eye(4), 1, expect_n=1, float_data=True)

    def test_levels_flat_axis_ignored_for_finest(self):
        """A single slice of spacing 0.1: the finest spacing is among axes of size > 1."""
        data = self.rng.integers(0, 3000, (12, 10, 1)).astype(np.uint16)
        p = self.save(nib.Nifti1Image(data, np.diag([0.5, 0.5, 0.1, 1.0])), "flat.nii")
        spacing = [0.1, 0.5, 0.5]
        plan = pyramid_plan((1, 10, 12), spacing, 2)
        self.assertEqual([p[0] for p in plan], [[False, True, True]] * 2)
        store = self.convert(p, "--levels", 2)
        self.check_levels(store, to_store(data), None, spacing, nib.load(p).affine, 2, expect_n=2)

    def test_levels_uint8_overshoot_saturates(self):
        """Lanczos rings past 0 and 255 at sharp edges: stored values saturate."""
        data = np.zeros((20, 17, 9), np.uint8)
        data[7:, :, :] = 255
        data[:, 5:11, 3:6] = 0
        data[2:4, 12:, :] = 255
        p = self.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 1.0, 1.0])), "edges.nii.gz")
        ref = pyramid_images(to_store(data)[0], pyramid_plan((9, 17, 20), (1, 1, 1), 1))[0]
        self.assertLess(ref.min(), -1)
        self.assertGreater(ref.max(), 256)
        store = self.convert(p, "--levels", 2)
        self.check_levels(store, to_store(data), None, [1.0, 1.0, 1.0], nib.load(p).affine, 2, expect_n=2)

    def test_levels_several_channels(self):
        a = (self.rng.normal(0, 1, (9, 8, 7)).cumsum(1) * 50).astype(np.int16)
        b = (self.rng.normal(0, 1, (9, 8, 7)).cumsum(2) * 80).astype(np.int16)
        aff = np.diag([1.5, 1.0, 2.0, 1.0])
        pa = self.save(nib.Nifti1Image(a, aff), "ch_0000.nii.gz")
        pb = self.save(nib.Nifti1Image(b, aff), "ch_0001.nii.gz")
        store = self.convert([pa, pb], "--levels", 2)
        vol = np.concatenate([to_store(a), to_store(b)])
        self.check_levels(store, vol, None, [2.0, 1.0, 1.5], aff, 2, expect_n=2)

    # ---- 3. convert-dataset ---------------------------------------------

    def make_raw_dataset(self):
        """imagesTr: 3 good cases (2 with labels), 1 missing channel 0001; imagesTs: 1 case."""
        raw = self.path("Dataset042_Tiny")
        os.makedirs(raw)
        ds = {"channel_names": {"0": "CT", "1": "MR"},
              "labels": {"background": 0, "organ": 1, "tumour": 2},
              "numTraining": 4, "file_ending": ".nii.gz", "name": "tiny, \"quoted\""}
        text = json.dumps(ds, indent=4) + "\n"
        with open(os.path.join(raw, "dataset.json"), "w") as f:
            f.write(text)
        cases = {}
        shapes = {"case_001": (9, 8, 7), "case_002": (6, 7, 8), "case_003": (10, 6, 5), "bad_004": (5, 5, 5),
                  "case_101": (7, 7, 6)}
        for cid, shape in shapes.items():
            aff = np.diag([0.9, 1.1, 2.0, 1.0])
            chans = []
            for ch in range(2):
                data = np.zeros(shape, np.int16)
                inner = self.rng.integers(1, 2000, (shape[0] - 3, shape[1] - 2, shape[2] - 2)).astype(np.int16)
                if ch == 0:
                    data[1:-2, 1:-1, 2:] = inner
                else:
                    data[2:-1, 1:-1, : shape[2] - 2] = -inner
                chans.append(data)
            folder = "imagesTs" if cid == "case_101" else "imagesTr"
            paths = []
            for ch, data in enumerate(chans):
                if cid == "bad_004" and ch == 1:
                    continue
                paths.append(self.save(nib.Nifti1Image(data, aff), os.path.join(raw, folder, f"{cid}_{ch:04d}.nii.gz")))
            label = None
            if cid in ("case_001", "case_002"):
                lab = np.zeros(shape, np.uint8)
                lab[2:5, 2:4, 1:3] = 1
                lab[3, 3, 2] = 2
                label = self.save(nib.Nifti1Image(lab, aff), os.path.join(raw, "labelsTr", f"{cid}.nii.gz"))
            cases[cid] = (chans, label, paths)
        return raw, text, cases

    def dataset_summary(self, stdout):
        """(cases, converted, already there, failed) of the summary line; the 'converted again'
        count is checked to be 0 (dataset_redone() reads it)."""
        m = re.search(r"(\d+) cases: (\d+) converted \((\d+) again: made with other options\), (\d+) already there, "
                      r"(\d+) failed", stdout)
        self.assertIsNotNone(m, f"no summary in {stdout!r}")
        g = [int(x) for x in m.groups()]
        self.last_redone = g[2]
        return g[0], g[1], g[3], g[4]

    def store_states(self, out):
        states = {}
        for root, _, files in os.walk(out):
            for f in files:
                p = os.path.join(root, f)
                if p.endswith(".vxt"):
                    with open(p, "rb") as fh:
                        states[os.path.relpath(p, out)] = (os.stat(p).st_mtime_ns, fh.read())
        return states

    def test_convert_dataset(self):
        raw, text, cases = self.make_raw_dataset()
        out = self.path("stores", "Dataset042_Tiny")  # parents created
        p = run("convert-dataset", raw, "-o", out, "-j", 2, ok=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertRegex(p.stderr, r"bad_004")
        self.assertNotRegex(p.stderr, r"case_00[123]|case_101")
        self.assertEqual(self.dataset_summary(p.stdout), (5, 4, 0, 1))
        self.assertEqual(sorted(os.listdir(out)),
                         ["case_001.vxt", "case_002.vxt", "case_003.vxt", "dataset.json", "imagesTs"])
        self.assertEqual(os.listdir(os.path.join(out, "imagesTs")), ["case_101.vxt"])
        with open(os.path.join(out, "dataset.json"), "rb") as f:
            self.assertEqual(f.read(), text.encode())
        for cid, (chans, label, paths) in cases.items():
            if cid == "bad_004":
                continue
            with self.subTest(case=cid):
                store = os.path.join(out, "imagesTs" if cid == "case_101" else "", f"{cid}.vxt")
                info = self.info(store)
                names = [a["name"] for a in info["arrays"]]
                self.assertEqual(self.array_info(info, "image")["shape"], [2, *chans[0].shape[::-1]])
                got = self.read_array(store, "image", info)
                for ch in range(2):
                    np.testing.assert_array_equal(got[ch], to_store(np.asarray(nib.load(paths[ch]).dataobj))[0])
                    np.testing.assert_array_equal(got[ch], to_store(chans[ch])[0])
                self.assertEqual(info["metadata"]["sources"].split("\n"), paths)
                if label is None:
                    self.assertNotIn("seg", names)
                else:
                    self.assertIn("seg", names)
                    np.testing.assert_array_equal(self.read_array(store, "seg", info),
                                                  to_store(np.asarray(nib.load(label).dataobj)))
                    self.assertEqual(info["metadata"]["seg.source"], label)
        before = self.store_states(out)
        self.assertEqual(len(before), 4)
        # a rerun: nothing more to do (the broken case fails again)
        p = run("convert-dataset", raw, "-o", out, "-j", 2, ok=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(self.dataset_summary(p.stdout), (5, 0, 4, 1))
        self.assertEqual(self.store_states(out), before)
        # one store deleted: exactly that one again
        os.remove(os.path.join(out, "case_002.vxt"))
        p = run("convert-dataset", raw, "-o", out, ok=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(self.dataset_summary(p.stdout), (5, 1, 3, 1))
        after = self.store_states(out)
        self.assertEqual(sorted(after), sorted(before))
        for k in before:
            if k != "case_002.vxt":
                self.assertEqual(after[k], before[k], k)
        np.testing.assert_array_equal(self.read_array(os.path.join(out, "case_002.vxt"), "image"),
                                      np.concatenate([to_store(c) for c in cases["case_002"][0]]))
        self.assertEqual(sorted(os.listdir(out)),
                         ["case_001.vxt", "case_002.vxt", "case_003.vxt", "dataset.json", "imagesTs"])
        # the broken case fixed: only it is converted, exit 0
        chans = cases["bad_004"][0]
        self.save(nib.Nifti1Image(chans[1], np.diag([0.9, 1.1, 2.0, 1.0])),
                  os.path.join(raw, "imagesTr", "bad_004_0001.nii.gz"))
        p = run("convert-dataset", raw, "-o", out)
        self.assertEqual(self.dataset_summary(p.stdout), (5, 1, 4, 0))
        self.assertEqual(self.last_redone, 0)
        np.testing.assert_array_equal(self.read_array(os.path.join(out, "bad_004.vxt"), "image"),
                                      np.concatenate([to_store(c) for c in chans]))
        # a rerun with other store options converts every case again (a store records its options)
        p = run("convert-dataset", raw, "-o", out, "--codec", "lz4", "--tile", "4,4,4")
        self.assertEqual(self.dataset_summary(p.stdout), (5, 5, 0, 0))
        self.assertEqual(self.last_redone, 5)
        info = self.info(os.path.join(out, "case_001.vxt"))
        self.assertEqual(self.array_info(info, "image")["tile"], [1, 4, 4, 4])
        self.assertIn("codec=lz4 ", info["metadata"]["convert.options"])
        p = run("convert-dataset", raw, "-o", out, "--codec", "lz4", "--tile", "4,4,4")  # and then they are there
        self.assertEqual(self.dataset_summary(p.stdout), (5, 0, 5, 0))

    def test_convert_dataset_options_pass_through(self):
        raw, _, cases = self.make_raw_dataset()
        os.remove(os.path.join(raw, "imagesTr", "bad_004_0000.nii.gz"))
        out = self.path("opt")
        p = run("convert-dataset", raw, "-o", out, "--crop-nonzero", "--levels", "1", "--tile", "4,4,4")
        self.assertEqual(self.dataset_summary(p.stdout), (4, 4, 0, 0))
        for cid, (chans, label, _) in cases.items():
            if cid == "bad_004":
                continue
            with self.subTest(case=cid):
                store = os.path.join(out, "imagesTs" if cid == "case_101" else "", f"{cid}.vxt")
                info = self.info(store)
                vol = np.concatenate([to_store(c) for c in chans])  # (2, z, y, x)
                nz = np.nonzero((vol != 0).any(0))
                box = sum(([int(i.min()), int(i.max()) + 1] for i in nz), [])
                self.assertEqual(info["metadata"]["crop"], box)
                z0, z1, y0, y1, x0, x1 = box
                self.assertNotEqual(box, [0, vol.shape[1], 0, vol.shape[2], 0, vol.shape[3]])
                cropped = vol[:, z0:z1, y0:y1, x0:x1]
                np.testing.assert_array_equal(self.read_array(store, "image", info), cropped)
                self.assertEqual(self.array_info(info, "image")["tile"], [1, 4, 4, 4])
                self.assertEqual(info["metadata"]["levels"], [1])
                aff = np.diag([0.9, 1.1, 2.0, 1.0]) @ translation(x0, y0, z0)
                lab = None
                if label is not None:
                    lab = to_store(np.asarray(nib.load(label).dataobj))[0, z0:z1, y0:y1, x0:x1]
                    np.testing.assert_array_equal(self.read_array(store, "seg", info)[0], lab)
                self.check_levels(store, cropped, lab, [2.0, 1.1, 0.9], aff, 1, expect_n=1)

    def test_convert_dataset_errors(self):
        d = self.path("nojson")
        os.makedirs(os.path.join(d, "imagesTr"))
        out = self.path("o1")
        p = run("convert-dataset", d, "-o", out, ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(os.path.join(d, "dataset.json"), p.stderr)
        with open(os.path.join(d, "dataset.json"), "w") as f:
            f.write('{"labels": {"background": 0}, "file_ending": ".nii.gz"}')
        p = run("convert-dataset", d, "-o", out, ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r"channel_names")
        p = run("convert-dataset", d, ok=False)
        self.assertEqual(p.returncode, 2)

    # ---- 4. stats -------------------------------------------------------

    def test_stats(self):
        root = self.path("data")
        tr = os.path.join(root, "imagesTr")
        cases = []  # (path reported, shape (c, z, y, x), spacing (z, y, x), dtype, store)

        def nifti(name, data, zooms, where=tr):
            aff = np.diag([*zooms, 1.0])
            aff[:3, 3] = [1.0, -2.0, 3.0]
            return self.save(nib.Nifti1Image(data, aff), os.path.join(where, name))

        # two channels of one case
        a0 = nifti("ab_001_0000.nii.gz", self.rng.integers(0, 99, (10, 8, 6)).astype(np.int16), (1.0, 1.0, 2.0))
        nifti("ab_001_0001.nii.gz", self.rng.integers(0, 99, (10, 8, 6)).astype(np.int16), (1.0, 1.0, 2.0))
        cases.append((a0, (2, 6, 8, 10), (2.0, 1.0, 1.0), "int16", False))
        p = nifti("ab_002_0000.nii.gz", self.rng.normal(0, 1, (12, 9, 5)).astype(np.float32), (0.7, 0.7, 3.0))
        cases.append((p, (1, 5, 9, 12), (3.0, 0.7, 0.7), "float32", False))
        p = nifti("ab_003.nii", self.rng.integers(0, 9, (20, 6, 4)).astype(np.uint8), (0.5, 0.6, 1.5))
        cases.append((p, (1, 4, 6, 20), (1.5, 0.6, 0.5), "uint8", False))
        p = nifti("four.nii.gz", self.rng.integers(0, 9, (3, 4, 5, 3)).astype(np.int16), (0.9, 0.8, 4.0))
        cases.append((p, (3, 5, 4, 3), (4.0, 0.8, 0.9), "int16", False))
        p = os.path.join(root, "sub", "plain.npy")
        os.makedirs(os.path.dirname(p))
        np.save(p, self.rng.integers(0, 9, (3, 4, 7)).astype(np.int32))
        cases.append((p, (1, 3, 4, 7), (1.0, 1.0, 1.0), "int32", False))
        # labels are skipped
        nifti("ab_001.nii.gz", np.zeros((50, 50, 50), np.uint8), (9.0, 9.0, 9.0), where=os.path.join(root, "labelsTr"))
        # stores: one inside the folder, one given by name
        s1 = os.path.join(root, "zz.vxt")
        c0 = nifti("c_0000.nii", self.rng.normal(0, 1, (7, 11, 9)).astype(np.float32), (1.2, 0.4, 2.5),
                   where=self.path("srcs"))
        c1 = nifti("c_0001.nii", self.rng.normal(0, 1, (7, 11, 9)).astype(np.float32), (1.2, 0.4, 2.5),
                   where=self.path("srcs"))
        run("convert", c0, c1, "-o", s1, "-q")
        cases.append((s1, (2, 9, 11, 7), (2.5, 0.4, 1.2), "float32", True))
        s2 = self.path("ct.vxt")
        run("convert", CT, "-o", s2, "-q", "--crop", "2:29,0:101,5:120")
        cases.append((s2, (1, 27, 101, 115), (3.0, 3.0, 3.0), "int16", True))
        s3 = os.path.join(root, "sub", "from_npy.vxt")
        np.save(self.path("vol.npy"), self.rng.normal(0, 1, (5, 6, 7)))
        run("convert", self.path("vol.npy"), "-o", s3, "-q")
        cases.append((s3, (1, 5, 6, 7), (1.0, 1.0, 1.0), "float64", True))
        # unreadable
        bad = os.path.join(root, "broken.nii.gz")
        write_file(bad, b"this is not a NIfTI file" * 20)
        badstore = os.path.join(root, "broken.vxt")
        with open(badstore, "wb") as f:
            f.write(b"VXT?" + b"\0" * 200)

        n = len(cases)
        self.assertEqual(n, 8)  # even: the median is the upper one, index n // 2
        shapes = np.array([c[1] for c in cases])
        spacings = np.array([c[2] for c in cases])
        nbytes = shapes.prod(1) * 4
        self.assertEqual(len(set(nbytes.tolist())), n, "sizes all different: 'largest' has one order")
        stored = sum(self.array_info(self.info(c[0]), "image")["stored_bytes"] for c in cases if c[4])

        p = run("stats", root, s2, "--json", "--budget", "4KiB", ok=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(bad, p.stderr)
        self.assertIn(badstore, p.stderr)
        st = json.loads(p.stdout)
        self.assertEqual(st["cases"], n)
        self.assertEqual(st["stores"], 3)
        self.assertEqual(st["unreadable"], 2)
        med = n // 2
        ss = np.sort(shapes, 0)
        self.assertTrue((ss[med] != ss[med - 1]).any() and np.sort(nbytes)[med] != np.sort(nbytes)[med - 1],
                        "the data tell the upper median from the lower one")
        self.assertEqual(st["shape"]["min"], shapes.min(0).tolist())
        self.assertEqual(st["shape"]["max"], shapes.max(0).tolist())
        self.assertEqual(st["shape"]["median"], np.sort(shapes, 0)[med].tolist())
        np.testing.assert_allclose(st["spacing"]["min"], spacings.min(0), rtol=1e-6)
        np.testing.assert_allclose(st["spacing"]["max"], spacings.max(0), rtol=1e-6)
        np.testing.assert_allclose(st["spacing"]["median"], np.sort(spacings, 0)[med], rtol=1e-6)
        dtypes = {}
        for c in cases:
            dtypes[c[3]] = dtypes.get(c[3], 0) + 1
        self.assertEqual(st["dtypes"], dtypes)
        bs = np.sort(nbytes)
        self.assertEqual(st["bytes_float32"], {"min": int(bs[0]), "median": int(bs[med]), "max": int(bs[-1]),
                                               "total": int(nbytes.sum())})
        self.assertEqual(st["stored_bytes"], stored)
        order = np.argsort(-nbytes)[:5]
        self.assertEqual([(l["path"], l["shape"], l["bytes_float32"]) for l in st["largest"]],
                         [(cases[i][0], list(cases[i][1]), int(nbytes[i])) for i in order])
        budget = 4 * 1024
        self.assertEqual(st["budget"]["bytes"], budget)
        over = {cases[i][0]: int(nbytes[i]) for i in range(n) if nbytes[i] > budget}
        self.assertEqual(len(over), 2)
        got_over = {o["path"]: o for o in st["budget"]["over"]}
        self.assertEqual(len(got_over), len(st["budget"]["over"]))
        self.assertEqual(sorted(got_over), sorted(over))
        for path, b in over.items():
            o = got_over[path]
            self.assertEqual(o["bytes_float32"], b)
            self.assertAlmostEqual(o["crop_per_axis"], (budget / b) ** (1 / 3), delta=6e-5)
            self.assertAlmostEqual(o["downsample_per_axis"], (b / budget) ** (1 / 3), delta=6e-5)

        # the readable ones alone: exit 0, same numbers; no budget: no "budget"
        os.remove(bad)
        os.remove(badstore)
        p = run("stats", root, s2, "--json")
        st2 = json.loads(p.stdout)
        self.assertEqual(st2["unreadable"], 0)
        self.assertNotIn("budget", st2)
        for k in ("cases", "stores", "shape", "spacing", "dtypes", "bytes_float32", "stored_bytes", "largest"):
            self.assertEqual(st2[k], st[k], k)
        # text output: the same figures as the oracle, in the table's rows
        def human(b):
            units, u = ["B", "KiB", "MiB", "GiB"], 0
            while b >= 1024 and u < 3:
                b, u = b / 1024, u + 1
            return f"{b:.2f} {units[u]}" if u else f"{b:.0f} B"

        p = run("stats", root, s2, "--budget", "4KiB")
        lines = p.stdout.splitlines()
        self.assertEqual(lines[0], f"{n} cases (3 stores, {n - 3} image cases)")

        def row(label):
            got = [l for l in lines if l.startswith(label)]
            self.assertEqual(len(got), 1, label)
            return got[0][len(label):].split()

        x = " x "
        self.assertEqual(" ".join(row("shape (c, z, y, x)")),
                         " ".join(x.join(map(str, v)) for v in (shapes.min(0), ss[med], shapes.max(0))))
        self.assertEqual(row("bytes per case as float32"),
                         " ".join(human(int(v)) for v in (bs[0], bs[med], bs[-1])).split())
        self.assertIn(f"total as float32: {human(int(nbytes.sum()))}", p.stdout)
        top = lines[lines.index("largest cases:") + 1:][:5]
        for line, i in zip(top, order):
            self.assertEqual(line.split(), [*human(int(nbytes[i])).split(), *x.join(map(str, cases[i][1])).split(),
                                            cases[i][0]])
        budget_lines = [l for l in lines if "crop to" in l]
        self.assertEqual(len(budget_lines), len(over))
        for line in budget_lines:
            path = line.split()[-1]
            f = (budget / over[path]) ** (1 / 3)
            self.assertIn(f"crop to {f:.2f} per axis ({100 * f ** 3:.0f}% of voxels) or downsample by {1 / f:.2f}",
                          line)

    def test_stats_counts_channels_of_one_case_only(self):
        d = self.outdir()
        shapes = {"t.nii": (4, 5, 6), "t.nii.gz": (4, 5, 7), "c_0000.nii.gz": (3, 5, 6), "c_0001.nii.gz": (3, 5, 6),
                  "c_0000.nii": (2, 2, 2)}
        for name, shape in shapes.items():
            self.save(nib.Nifti1Image(np.zeros(shape, np.int16), np.eye(4)), os.path.join(d, name))
        st = json.loads(run("stats", d, "--json").stdout)
        # t.nii and t.nii.gz are two cases; c_0000/c_0001.nii.gz one case of 2 channels; c_0000.nii its own
        got = sorted((os.path.basename(l["path"]), l["shape"]) for l in st["largest"])
        self.assertEqual(got, [("c_0000.nii", [1, 2, 2, 2]), ("c_0000.nii.gz", [2, 6, 5, 3]),
                               ("t.nii", [1, 6, 5, 4]), ("t.nii.gz", [1, 7, 5, 4])])
        self.assertEqual(st["cases"], 4)

    def test_stats_nothing_found(self):
        d = self.outdir()
        p = run("stats", d, "--json", ok=False)
        self.assertEqual(p.returncode, 1)
        p = run("stats", self.path("does-not-exist"), "--json", ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(self.path("does-not-exist"), p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
