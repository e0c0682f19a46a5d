"""NIfTI conversion through the voxtile CLI with nibabel as the oracle:
every datatype in both byte orders, .nii/.nii.gz/NIfTI-2/.hdr+.img, the
geometry (sform, qform, base affine), scaling, the real CT and its
segmentation (label index, the three crop modes), channels, --dtype casts,
and the error contract on malformed inputs (exit 1, a message naming the
file, nothing left in the output folder).

A 3-d NIfTI (x, y, z) is stored as (1, z, y, x), a 4-d (x, y, z, t) as
(t, z, y, x), a 2-d (x, y) as (1, 1, y, x).

Run: VOXTILE=build/tools/voxtile /usr/bin/python3 tests/test_nifti.py
"""
import gzip
import os
import re
import struct
import unittest

import numpy as np
from cliutil import (CT, DATA, SEG, VOXTILE, StoreCase, csv, file_bytes, rotation, run,  # noqa: E402,F401
                     to_store, translation)
import nibabel as nib
from PIL import Image


NATIVE_DTYPES = ["u1", "i1", "u2", "i2", "u4", "i4", "f4", "f8"]


def native(dt):
    dt = np.dtype(dt)
    return dt.newbyteorder("=") if dt.byteorder not in ("=", "|") else dt


def file_bytes_raw(path):
    with open(path, "rb") as f:
        return f.read()


def bits(a):
    """A view for bit-exact comparison of floats (NaN payloads, -0.0)."""
    a = np.ascontiguousarray(a)
    if a.dtype.kind == "f":
        return a.view(f"u{a.dtype.itemsize}")
    return a


class NiftiTest(StoreCase):
    prefix = "vt-nifti-"
    seed = 11

    def read_all(self, store, name="image"):
        info = self.info(store)
        return self.read_array(store, name, info), info

    def assert_fails(self, inputs, named, *fragments, opts=(), seg=None):
        """convert fails with exit 1, 'voxtile: NAMED: ...' and an empty output folder."""
        if isinstance(inputs, str):
            inputs = [inputs]
        d = self.outdir()
        args = ["convert", *inputs, "-o", os.path.join(d, "s.vxt"), "-q", *opts]
        if seg is not None:
            args += ["--seg", seg]
        p = run(*args, ok=False)
        self.assertEqual(p.returncode, 1, f"{args}: exit {p.returncode}, stderr {p.stderr!r}")
        self.assertTrue(p.stderr.startswith(f"voxtile: {named}: "), f"message does not name {named}: {p.stderr!r}")
        for frag in fragments:
            self.assertRegex(p.stderr, frag)
        self.assertEqual(os.listdir(d), [], f"{args} left files behind")
        return p.stderr

    def check_against_nibabel(self, path, store=None, *opts, tol=1e-4):
        """Convert (unless given a store) and compare voxels, dtype, affine,
        spacing and header with nibabel's reading of @p path."""
        if store is None:
            store = self.convert(path, *opts)
        img = nib.load(path)
        want = to_store(np.asarray(img.dataobj))
        want = want.astype(native(want.dtype))
        got, info = self.read_all(store)
        self.assertEqual(got.shape, want.shape, path)
        self.assertEqual(got.dtype, want.dtype, path)
        np.testing.assert_array_equal(bits(got), bits(want), err_msg=path)
        self.check_geometry(path, info, img, tol=tol)
        return img, info

    def check_geometry(self, path, info, img, tol=1e-4):
        meta = info["metadata"]
        hdr = img.header
        np.testing.assert_allclose(np.reshape(meta["affine"], (4, 4)), img.affine, rtol=0, atol=tol,
                                   err_msg=f"{path}: affine")
        zooms = [float(z) for z in hdr.get_zooms()[:3]]
        zooms += [1.0] * (3 - len(zooms))
        np.testing.assert_allclose(meta["spacing"], zooms[::-1], rtol=1e-6, err_msg=f"{path}: spacing")
        np.testing.assert_allclose(np.reshape(meta["nifti.qform"], (4, 4)), hdr.get_qform(), rtol=0, atol=tol,
                                   err_msg=f"{path}: qform")
        np.testing.assert_allclose(np.reshape(meta["nifti.sform"], (4, 4)), hdr.get_sform(), rtol=0, atol=tol,
                                   err_msg=f"{path}: sform")
        self.assertEqual(meta["nifti.qform_code"], [int(hdr["qform_code"])], path)
        self.assertEqual(meta["nifti.sform_code"], [int(hdr["sform_code"])], path)
        hpath = path
        for a, b in ((".img.gz", ".hdr.gz"), (".img", ".hdr")):
            if path.endswith(a):
                hpath = path[: -len(a)] + b
                break
        raw = file_bytes(hpath)
        n = 540 if isinstance(hdr, nib.Nifti2Header) else 348
        self.assertEqual(bytes.fromhex(meta["nifti.header"]), raw[:n], f"{path}: verbatim header")
        self.assertEqual(meta["format"], "nifti2" if n == 540 else "nifti1")
        self.assertEqual(meta["crop"], [0, info["arrays"][0]["shape"][1], 0, info["arrays"][0]["shape"][2], 0,
                                        info["arrays"][0]["shape"][3]])

    def random_data(self, dt, shape):
        dt = np.dtype(dt)
        if dt.kind in "ui":
            ii = np.iinfo(dt)
            a = self.rng.integers(ii.min, ii.max, shape, dtype=np.int64 if dt.kind == "i" or dt.itemsize < 8 else np.uint64,
                                  endpoint=True).astype(dt)
            flat = a.reshape(-1)
            flat[:2] = [ii.min, ii.max][: flat.size]
            return a
        a = self.rng.normal(0, 1000, shape).astype(dt)
        flat = a.reshape(-1)
        flat[:6] = [np.nan, np.inf, -np.inf, -0.0, np.finfo(dt).tiny / 4, np.finfo(dt).max][: flat.size]
        return a

    def image(self, data, affine=None, cls=nib.Nifti1Image, endian="<", dtype=None):
        hdr = cls.header_class(endianness=endian)  # Nifti1PairHeader for pairs: magic ni1
        hdr.set_data_dtype(np.dtype(dtype if dtype is not None else data.dtype))
        if affine is None:
            affine = np.array([[0.7, 0, 0, -20.5], [0, 1.3, 0, 7.25], [0, 0, 2.5, 100.0], [0, 0, 0, 1]])
        return cls(data, affine, header=hdr)

    # ---- 1. voxels and dtypes -------------------------------------------

    def test_every_datatype_both_byte_orders(self):
        shape = (7, 6, 5)
        for dt in NATIVE_DTYPES:
            data = self.random_data(dt, shape)
            for endian in "<>":
                with self.subTest(dtype=dt, endian=endian):
                    p = self.save(self.image(data, endian=endian), f"t_{dt}_{'le' if endian == '<' else 'be'}.nii")
                    with open(p, "rb") as f:
                        self.assertEqual(f.read(4), struct.pack(endian + "i", 348))
                    img = nib.load(p)
                    self.assertEqual(img.get_data_dtype(), np.dtype(dt).newbyteorder(endian))
                    self.assertTrue(np.isnan(img.dataobj.slope) or img.dataobj.slope == 1)
                    store = self.convert(p, "--tile", "2,3,4")
                    self.check_against_nibabel(p, store)
                    info = self.info(store)
                    self.assertNotIn("scl_slope", info["metadata"])
                    self.assertEqual(self.array_info(info, "image")["dtype"], np.dtype(dt).name)

    def test_file_variants(self):
        """.nii.gz, NIfTI-2 (.nii, .nii.gz), .hdr/.img pairs (by either name, gzipped too)."""
        shape = (9, 4, 3)
        variants = [
            (nib.Nifti1Image, "nii.gz", None),
            (nib.Nifti2Image, "nii", None),
            (nib.Nifti2Image, "nii.gz", None),
            (nib.Nifti1Pair, "hdr", "img"),
            (nib.Nifti1Pair, "img.gz", "hdr.gz"),
            (nib.Nifti2Pair, "img", "hdr"),
            (nib.Nifti2Pair, "hdr.gz", "img.gz"),
        ]
        for cls, ext, other in variants:
            for dt in NATIVE_DTYPES:
                data = self.random_data(dt, shape)
                for endian in "<>":
                    with self.subTest(cls=cls.__name__, ext=ext, dtype=dt, endian=endian):
                        stem = f"v_{cls.__name__}_{dt}_{'le' if endian == '<' else 'be'}"
                        p = self.save(self.image(data, cls=cls, endian=endian), f"{stem}.{ext}")
                        if other is not None:  # nibabel wrote both halves; convert by either name
                            self.assertTrue(os.path.exists(self.path(f"{stem}.{other}")))
                        hsize = 540 if cls in (nib.Nifti2Image, nib.Nifti2Pair) else 348
                        hp = p if other is None or ext.startswith("hdr") else self.path(f"{stem}.{other}")
                        self.assertEqual(file_bytes(hp)[:4], struct.pack(endian + "i", hsize))
                        self.check_against_nibabel(p)
                        if other is not None and dt in ("u1", "i2", "f8"):
                            self.check_against_nibabel(self.path(f"{stem}.{other}"))

    def test_int64_narrowed_to_int32(self):
        shape = (5, 4, 3)
        cases = [("i8", "int32", np.iinfo(np.int32).min, np.iinfo(np.int32).max, [2**31, -(2**31) - 1]),
                 ("u8", "uint32", 0, 2**32 - 1, [2**32, 2**63 + 5])]
        for dt, stored, lo, hi, bad in cases:
            for endian in "<>":
                with self.subTest(dtype=dt, endian=endian):
                    data = self.rng.integers(lo, hi, shape, endpoint=True, dtype=np.int64 if dt == "i8" else np.uint64)
                    data = data.astype(dt)
                    data.flat[0], data.flat[1] = lo, hi
                    tag = f"{dt}_{'le' if endian == '<' else 'be'}"
                    p = self.save(self.image(data, endian=endian), f"n_{tag}.nii.gz")
                    img = nib.load(p)
                    self.assertEqual(img.get_data_dtype(), np.dtype(dt).newbyteorder(endian))
                    store = self.convert(p)
                    got, info = self.read_all(store)
                    self.assertEqual(got.dtype, np.dtype(stored))
                    self.assertEqual(self.array_info(info, "image")["dtype"], stored)
                    want = to_store(np.asarray(img.dataobj))
                    np.testing.assert_array_equal(got.astype(np.int64 if dt == "i8" else np.uint64), want)
                    self.check_geometry(p, info, img)
                    # export widens back to the source's 64-bit datatype: same header, same voxels
                    back = self.path(f"back_{tag}.nii")
                    run("export", store, "-o", back)
                    bimg = nib.load(back)
                    self.assertEqual(bimg.get_data_dtype(), img.get_data_dtype())
                    np.testing.assert_array_equal(np.asarray(bimg.dataobj), np.asarray(img.dataobj))
                    self.assertEqual(bimg.header["bitpix"], 64)
                    for i, v in enumerate(bad):
                        b = data.copy()
                        b[2, 3, 1] = v
                        bp = self.save(self.image(b, endian=endian), f"bad{i}_{tag}.nii")
                        self.assertEqual(int(np.asarray(nib.load(bp).dataobj)[2, 3, 1]), v)
                        self.assert_fails(bp, bp, r"does not fit", re.escape(str(v)))

    def test_4d_image(self):
        data = self.rng.integers(-500, 500, (6, 5, 4, 3)).astype(np.int16)  # x, y, z, t
        for cls, ext in ((nib.Nifti1Image, "nii"), (nib.Nifti2Image, "nii.gz")):
            with self.subTest(cls=cls.__name__):
                img = self.image(data, cls=cls)
                img.header.set_zooms((0.7, 1.3, 2.5, 4.0))
                p = self.save(img, f"four.{ext}")
                store = self.convert(p, "--tile", "3,2,4")
                img, info = self.check_against_nibabel(p, store)
                self.assertEqual(self.array_info(info, "image")["shape"], [3, 4, 5, 6])
                got = self.extract(store, [3, 4, 5, 6])
                for t in range(3):  # volume t is channel t
                    np.testing.assert_array_equal(got[t], data[..., t].transpose(2, 1, 0))
                # every volume cropped alike
                store = self.convert(p, "--crop", "1:3,1:4,2:5")
                self.check_crop(store, [1, 3, 1, 4, 2, 5], [p])

    def test_5d_images(self):
        """(x, y, z, t, 1) is a 4-d image; a 5th axis of more than one is not supported."""
        data = self.rng.integers(-500, 500, (6, 5, 4, 3, 1)).astype(np.int16)
        p = self.save(nib.Nifti1Image(data, np.eye(4)), "five.nii")
        self.assertEqual(int(nib.load(p).header["dim"][0]), 5)
        got, info = self.read_all(self.convert(p))
        np.testing.assert_array_equal(got, to_store(np.asarray(nib.load(p).dataobj)[..., 0]))
        data = self.rng.integers(-500, 500, (6, 5, 4, 1, 2)).astype(np.int16)
        p = self.save(nib.Nifti1Image(data, np.eye(4)), "five2.nii.gz")
        self.assert_fails(p, p, r"dim\[5\]", r"not supported")

    def test_vox_offset_beyond_header(self):
        """Data that start after padding: vox_offset 1024 (the extender says no extensions)."""
        data = self.rng.integers(-500, 500, (6, 5, 4)).astype(np.int16)
        for endian in "<>":
            for gz in (False, True):
                with self.subTest(endian=endian, gz=gz):
                    tmp = self.save(self.image(data, endian=endian), "plain.nii")
                    raw = bytearray(file_bytes_raw(tmp))
                    self.assertEqual(struct.unpack(endian + "f", raw[108:112])[0], 352.0)
                    raw[108:112] = struct.pack(endian + "f", 1024.0)
                    raw = raw[:352] + b"\0" * (1024 - 352) + raw[352:]
                    p = self.path(f"off_{ord(endian)}.nii" + (".gz" if gz else ""))
                    with (gzip.open if gz else open)(p, "wb") as f:
                        f.write(raw)
                    np.testing.assert_array_equal(np.asarray(nib.load(p).dataobj), data)
                    _, info = self.check_against_nibabel(p)
                    self.assertNotIn("nifti.extensions", info["metadata"])

    def test_odd_shapes(self):
        for shape, stored in [((1, 1, 1), [1, 1, 1, 1]), ((9, 7), [1, 1, 7, 9]), ((1, 13, 1), [1, 1, 13, 1]),
                              ((5, 1, 1, 2), [2, 1, 1, 5]), ((17, 3, 2), [1, 2, 3, 17])]:
            for dt in ("f4", "u1"):
                with self.subTest(shape=shape, dtype=dt):
                    data = self.random_data(dt, shape)
                    aff = np.diag([0.5, 2.0, 3.0, 1.0])
                    aff[:3, 3] = [1, 2, 3]
                    p = self.save(nib.Nifti1Image(data, aff), f"odd_{'x'.join(map(str, shape))}_{dt}.nii")
                    store = self.convert(p)
                    img, info = self.check_against_nibabel(p, store)
                    self.assertEqual(self.array_info(info, "image")["shape"], stored)

    def test_header_extensions_kept(self):
        data = self.rng.integers(0, 200, (5, 4, 3)).astype(np.uint8)
        for ext in ("nii", "nii.gz"):
            with self.subTest(ext=ext):
                img = self.image(data)
                img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"voxtile test extension"))
                img.header.extensions.append(nib.nifti1.Nifti1Extension(40, b"\x00\x01binary\xff" * 5))
                p = self.save(img, f"ext.{ext}")
                raw = file_bytes(p)
                vox_offset = int(struct.unpack("<f", raw[108:112])[0])  # nibabel's loaded header says 0
                self.assertGreater(vox_offset, 352)
                self.assertEqual(raw[348:349], b"\x01")
                self.assertEqual(len(nib.load(p).header.extensions), 2)
                store = self.convert(p)
                _, info = self.check_against_nibabel(p, store)
                self.assertEqual(bytes.fromhex(info["metadata"]["nifti.extensions"]), raw[352:vox_offset])

    # ---- 2. geometry ----------------------------------------------------

    def geometry_cases(self):
        """(name, image) pairs: sform only, qform only (rotation, qfac -1), both, neither."""
        shape = (7, 6, 5)
        data = self.rng.integers(0, 1000, shape).astype(np.int16)
        shear = np.array([[0.9, 0.2, 0.05, -30.0], [-0.1, 1.1, 0.3, 12.5], [0.02, -0.25, 2.2, 48.0], [0, 0, 0, 1]])
        R = rotation([1, 2, 3], 0.6)
        zooms = np.array([0.8, 1.2, 2.0])
        q_aff = np.eye(4)
        q_aff[:3, :3] = R @ np.diag(zooms * [1, 1, -1])  # det < 0: qfac = -1
        q_aff[:3, 3] = [10.0, -20.0, 30.0]
        s_aff = np.diag([1.5, 1.75, 2.25, 1.0])
        s_aff[:3, 3] = [-5, -6, -7]
        for cls in (nib.Nifti1Image, nib.Nifti2Image):
            img = cls(data, None)
            img.set_qform(None, code=0)
            img.set_sform(shear, code=1)
            yield cls.__name__ + " sform only", img, (0, 1)
            img = cls(data, None)
            img.set_sform(s_aff, code=0)  # srow filled but not to be used
            img.set_qform(q_aff, code=1)
            yield cls.__name__ + " qform only", img, (1, 0)
            img = cls(data, None)
            img.set_qform(q_aff, code=1)
            img.set_sform(shear, code=4)
            yield cls.__name__ + " both", img, (1, 4)
            img = cls(data, None)
            img.header.set_zooms((1.5, 2.0, 2.5))
            yield cls.__name__ + " neither", img, (0, 0)

    def test_affine_sform_qform_both_neither(self):
        for i, (name, img, codes) in enumerate(self.geometry_cases()):
            for ext in ("nii", "nii.gz"):
                with self.subTest(case=name, ext=ext):
                    p = self.save(img, f"geo{i}.{ext}")
                    loaded = nib.load(p)
                    h = loaded.header
                    self.assertEqual((int(h["qform_code"]), int(h["sform_code"])), codes)
                    if "qform only" in name:
                        self.assertEqual(float(h["pixdim"][0]), -1.0)
                        self.assertLess(np.linalg.det(loaded.affine[:3, :3]), 0)
                    if "neither" in name:
                        np.testing.assert_allclose(loaded.affine, h.get_base_affine())
                    store = self.convert(p)
                    self.check_against_nibabel(p, store)

    def test_affine_of_4d_and_2d(self):
        """The base affine and the zooms of images that are not 3-d."""
        for shape, zooms in [((6, 5, 4, 3), (1.5, 2.0, 2.5, 3.0)), ((9, 7), (0.5, 0.25))]:
            with self.subTest(shape=shape):
                img = nib.Nifti1Image(self.rng.normal(0, 1, shape).astype(np.float32), None)
                img.header.set_zooms(zooms)
                p = self.save(img, f"base{len(shape)}.nii")
                self.check_against_nibabel(p)
        # a 2-d image with only a qform: nibabel's qform (and affine) takes the
        # z column from pixdim[3] even though dim[0] = 2
        img = nib.Nifti1Image(self.rng.normal(0, 1, (9, 7)).astype(np.float32), None)
        q = np.eye(4)
        q[:3, :3] = rotation([0, 0, 1], 0.3) @ np.diag([0.5, 0.25, 3.0])
        q[:3, 3] = [4, 5, 6]
        img.set_qform(q, code=1)
        p = self.save(img, "q2d.nii")
        h = nib.load(p).header
        self.assertEqual((int(h["dim"][0]), int(h["qform_code"]), int(h["sform_code"])), (2, 1, 0))
        self.assertEqual(float(h["pixdim"][3]), 3.0)
        np.testing.assert_allclose(nib.load(p).affine, q, atol=1e-6)
        self.check_against_nibabel(p)

    # ---- 3. scaling -----------------------------------------------------

    def scaled_file(self, cls, endian, slope, inter, gz, name):
        raw = self.rng.integers(-1000, 1000, (7, 6, 5)).astype(np.int16)
        p = self.save(self.image(raw, cls=cls, endian=endian), name + ".nii")
        with open(p, "r+b") as f:  # patch scl_slope / scl_inter into the header
            if cls is nib.Nifti1Image:
                f.seek(112)
                f.write(struct.pack(endian + "ff", slope, inter))
            else:
                f.seek(176)
                f.write(struct.pack(endian + "dd", slope, inter))
        if gz:
            with open(p, "rb") as f, gzip.open(p + ".gz", "wb") as g:
                g.write(f.read())
            os.remove(p)
            p += ".gz"
        img = nib.load(p)
        self.assertAlmostEqual(float(img.dataobj.slope), slope, places=6)
        self.assertAlmostEqual(float(img.dataobj.inter), inter, places=5)
        np.testing.assert_array_equal(np.asarray(img.dataobj.get_unscaled()), raw)
        return p, img, raw

    def test_scaling_kept_or_applied(self):
        for cls in (nib.Nifti1Image, nib.Nifti2Image):
            for endian in "<>":
                for slope, inter in [(2.0, -100.0), (0.1, 0.25), (1.0, -1024.0)]:
                    with self.subTest(cls=cls.__name__, endian=endian, slope=slope, inter=inter):
                        gz = endian == ">"
                        p, img, raw = self.scaled_file(cls, endian, slope, inter, gz,
                                                       f"sc_{cls.__name__}_{ord(endian)}_{slope}_{inter}")
                        # default: raw integers, scaling in the metadata
                        store = self.convert(p)
                        got, info = self.read_all(store)
                        self.assertEqual(got.dtype, np.int16)
                        np.testing.assert_array_equal(got, to_store(raw))
                        meta = info["metadata"]
                        self.assertAlmostEqual(meta["scl_slope"][0], float(img.dataobj.slope), places=12)
                        self.assertAlmostEqual(meta["scl_inter"][0], float(img.dataobj.inter), places=12)
                        self.check_geometry(p, info, img)
                        # reading floats applies the scaling (nibabel's get_fdata); --raw does not
                        shape = self.array_info(info, "image")["shape"]
                        want = img.get_fdata(dtype=np.float64)
                        np.testing.assert_array_equal(self.extract(store, shape, "--dtype", "float64"), to_store(want))
                        np.testing.assert_array_equal(self.extract(store, shape, "--dtype", "float64", "--raw"),
                                                      to_store(raw).astype(np.float64))
                        # applied: float32 as nibabel's get_fdata
                        want = img.get_fdata(dtype=np.float32)
                        self.assertEqual(want.dtype, np.float32)
                        store = self.convert(p, "--apply-scaling")
                        got, info = self.read_all(store)
                        self.assertEqual(got.dtype, np.float32)
                        self.assertEqual(self.array_info(info, "image")["dtype"], "float32")
                        np.testing.assert_allclose(got, to_store(want), rtol=2e-7, atol=1e-6)
                        self.assertNotIn("scl_slope", info["metadata"])
                        self.assertNotIn("scl_inter", info["metadata"])

    def test_scaling_is_applied_to_levels_and_preview_not_to_seg(self):
        p, img, raw = self.scaled_file(nib.Nifti1Image, "<", 0.5, -1024.0, False, "scl")
        seg = self.save(nib.Nifti1Image((raw > 0).astype(np.uint8), img.affine), "scl_seg.nii")
        store = self.convert(p, "--seg", seg, "--levels", "1")
        applied = self.convert(p, "--seg", seg, "--levels", "1", "--apply-scaling")
        info, info_applied = self.info(store), self.info(applied)
        for name in ("image", "image@1"):
            shape = self.array_info(info, name)["shape"]
            got = self.extract(store, shape, "--array", name, "--dtype", "float32")
            raw_level = self.extract(store, shape, "--array", name)
            np.testing.assert_array_equal(got, (raw_level.astype(np.float64) * 0.5 - 1024).astype(np.float32))
            if name == "image":  # the stored level of applied values is filtered in float, not rounded
                want = self.extract(applied, shape, "--array", name, "--dtype", "float32")
                np.testing.assert_array_equal(got, want)
        seg_shape = self.array_info(info, "seg")["shape"]
        np.testing.assert_array_equal(self.extract(store, seg_shape, "--array", "seg", "--dtype", "float32"),
                                      to_store((raw > 0).astype(np.float32)))
        # preview draws physical values: the same picture as from the applied store
        pics = []
        for st in (store, applied):
            out = self.path(f"pv{len(pics)}.png")
            run("preview", st, "--window=-1024,1200", "-q", "-o", out)
            with Image.open(out) as im:
                pics.append(np.asarray(im.convert("RGB")))
        self.assertGreater(len(np.unique(pics[0])), 8)  # not a flat picture
        np.testing.assert_array_equal(pics[0], pics[1])
        self.assertEqual(self.array_info(info_applied, "image")["dtype"], "float32")

    def test_channels_with_different_scalings(self):
        a, _, _ = self.scaled_file(nib.Nifti1Image, "<", 2.0, -100.0, False, "ch_a")
        b, _, _ = self.scaled_file(nib.Nifti1Image, "<", 0.5, 3.0, False, "ch_b")
        c, _, _ = self.scaled_file(nib.Nifti1Image, "<", 2.0, -100.0, False, "ch_c")
        self.assert_fails([a, b], b, "differ from", "--apply-scaling")
        info = self.info(self.convert([a, c]))  # the same scaling: kept, raw values
        self.assertEqual(info["metadata"]["scl_slope"], [2.0])
        got, _ = self.read_all(self.convert([a, b], "--apply-scaling"))
        want = np.stack([nib.load(x).get_fdata(dtype=np.float32).transpose(2, 1, 0) for x in (a, b)])
        np.testing.assert_allclose(got, want, rtol=2e-7, atol=1e-6)

    def test_scaling_with_dtype(self):
        p, img, raw = self.scaled_file(nib.Nifti1Image, "<", 2.0, -100.0, False, "scd")
        want = img.get_fdata(dtype=np.float64)
        got, info = self.read_all(self.convert(p, "--apply-scaling", "--dtype", "int32"))
        self.assertEqual(got.dtype, np.int32)
        np.testing.assert_array_equal(got, to_store(np.rint(want).astype(np.int32)))
        got, info = self.read_all(self.convert(p, "--apply-scaling", "--dtype", "float64"))
        self.assertEqual(got.dtype, np.float64)
        np.testing.assert_array_equal(got, to_store(want))

    def test_zero_slope_means_no_scaling(self):
        for slope, inter in [(0.0, 5.0), (float("nan"), 3.0), (1.0, 0.0)]:
            with self.subTest(slope=slope, inter=inter):
                raw = self.rng.integers(-1000, 1000, (7, 6, 5)).astype(np.int16)
                p = self.save(self.image(raw), f"z_{slope}_{inter}.nii")
                self.patch(p, 112, "ff", slope, inter)
                img = nib.load(p)
                self.assertEqual((img.dataobj.slope, img.dataobj.inter), (1.0, 0.0))
                for opts in ((), ("--apply-scaling",)):
                    got, info = self.read_all(self.convert(p, *opts))
                    np.testing.assert_array_equal(got, to_store(img.get_fdata()))
                    self.assertNotIn("scl_slope", info["metadata"])
                    self.assertNotIn("scl_inter", info["metadata"])

    def test_no_scaling_metadata_without_scaling(self):
        info = self.info(self.convert(CT))
        self.assertTrue(np.isnan(nib.load(CT).header["scl_slope"]))
        self.assertNotIn("scl_slope", info["metadata"])
        self.assertNotIn("scl_inter", info["metadata"])

    # ---- 4. the real CT and segmentation --------------------------------

    def label_index_oracle(self, seg, tile=(16, 16, 16)):
        """{value: (voxels, tiles)} of a (z, y, x) label volume."""
        values, counts = np.unique(seg, return_counts=True)
        Z, Y, X = seg.shape
        gz, gy, gx = [-(-n // t) for n, t in zip(seg.shape, tile)]
        zi, yi, xi = np.meshgrid(np.arange(Z) // tile[0], np.arange(Y) // tile[1], np.arange(X) // tile[2],
                                 indexing="ij")
        tid = (zi * gy + yi) * gx + xi
        pairs = np.unique(np.stack([seg.reshape(-1).astype(np.int64), tid.reshape(-1)]), axis=1)
        tiles = {int(v): int((pairs[0] == v).sum()) for v in values}
        return {int(v): (int(c), tiles[int(v)]) for v, c in zip(values, counts)}, gz * gy * gx

    def check_labels(self, info, seg_zyx):
        labels = self.array_info(info, "seg")["labels"]
        want, ntiles = self.label_index_oracle(seg_zyx)
        self.assertEqual([l["value"] for l in labels], sorted(want))
        self.assertEqual({l["value"]: l["voxels"] for l in labels}, {v: c for v, (c, _) in want.items()})
        self.assertEqual(sum(l["voxels"] for l in labels), seg_zyx.size)
        self.assertEqual(self.array_info(info, "seg")["tiles"], ntiles)
        for l in labels:
            self.assertGreaterEqual(l["tiles"], 1)
            self.assertLessEqual(l["tiles"], ntiles)
        self.assertGreaterEqual(sum(l["tiles"] for l in labels), ntiles)  # every tile holds some value
        self.assertEqual({l["value"]: l["tiles"] for l in labels}, {v: t for v, (_, t) in want.items()})

    def test_real_ct_and_segmentation(self):
        ct_img, seg_img = nib.load(CT), nib.load(SEG)
        ct = np.asarray(ct_img.dataobj)
        seg = np.asarray(seg_img.dataobj)
        self.assertEqual(ct.shape, (122, 101, 30))
        store = self.convert(CT, seg=SEG)
        img, info = self.check_against_nibabel(CT, store)
        got_seg = self.extract(store, [1, 30, 101, 122], "--array", "seg")
        self.assertEqual(got_seg.dtype, seg.dtype)
        np.testing.assert_array_equal(got_seg, to_store(seg))
        self.assertEqual(self.array_info(info, "seg")["dtype"], "uint8")
        self.check_labels(info, to_store(seg)[0])
        self.assertEqual(int(seg.max()), 117)
        meta = info["metadata"]
        self.assertEqual(meta["source"], CT)
        self.assertEqual(meta["seg.source"], SEG)
        self.assertEqual(meta["crop"], [0, 30, 0, 101, 0, 122])
        # the segmentation alone, as an image
        self.check_against_nibabel(SEG)

    def check_crop(self, store, box, img_paths, seg_path=None):
        """The store holds exactly the nibabel slicer's crop of the inputs (box in z, y, x)."""
        z0, z1, y0, y1, x0, x1 = box
        info = self.info(store)
        meta = info["metadata"]
        self.assertEqual(meta["crop"], list(box))
        imgs = [nib.load(p) for p in img_paths]
        sl = [im.slicer[x0:x1, y0:y1, z0:z1] for im in imgs]
        want = np.concatenate([to_store(np.asarray(s.dataobj)) for s in sl])
        got = self.extract(store, want.shape)
        np.testing.assert_array_equal(got, want)
        base = np.asarray(imgs[0].dataobj)[x0:x1, y0:y1, z0:z1]
        np.testing.assert_array_equal(got[: to_store(base).shape[0]], to_store(base))
        aff = np.reshape(meta["affine"], (4, 4))
        np.testing.assert_allclose(aff, sl[0].affine, rtol=0, atol=1e-4)
        np.testing.assert_allclose(aff, imgs[0].affine @ translation(x0, y0, z0), rtol=0, atol=1e-4)
        np.testing.assert_allclose(meta["origin"], sl[0].affine[:3, 3], rtol=0, atol=1e-4)
        if seg_path is not None:
            s = nib.load(seg_path).slicer[x0:x1, y0:y1, z0:z1]
            sw = to_store(np.asarray(s.dataobj))
            gs = self.extract(store, sw.shape, "--array", "seg")
            np.testing.assert_array_equal(gs, sw)
            self.check_labels(info, sw[0])

    def test_crop_to_label(self):
        seg = np.asarray(nib.load(SEG).dataobj).transpose(2, 1, 0)  # z, y, x
        idx = np.nonzero(seg > 0)
        shape = seg.shape
        for margin in (3, 0, 40):
            with self.subTest(margin=margin):
                box = []
                for d in range(3):
                    box += [max(0, int(idx[d].min()) - margin), min(shape[d], int(idx[d].max()) + 1 + margin)]
                if margin == 3:
                    self.assertNotEqual(box, [0, 30, 0, 101, 0, 122])  # the crop is not trivial
                store = self.convert(CT, "--crop-to-label", str(margin), seg=SEG)
                self.check_crop(store, box, [CT], SEG)

    def test_crop_nonzero(self):
        ct_img = nib.load(CT)
        ct = np.asarray(ct_img.dataobj)
        ct_zyx = ct.transpose(2, 1, 0)
        idx = np.nonzero(ct_zyx != 0)
        box = [v for d in range(3) for v in (int(idx[d].min()), int(idx[d].max()) + 1)]
        self.check_crop(self.convert(CT, "--crop-nonzero", seg=SEG), box, [CT], SEG)
        # the CT masked by the segmentation: a box well inside the volume
        seg = np.asarray(nib.load(SEG).dataobj)
        masked = np.where(seg > 0, ct, 0).astype(np.int16)
        mp = self.save(nib.Nifti1Image(masked, ct_img.affine, ct_img.header), "masked.nii.gz")
        idx = np.nonzero(masked.transpose(2, 1, 0) != 0)
        box = [v for d in range(3) for v in (int(idx[d].min()), int(idx[d].max()) + 1)]
        self.assertNotEqual(box, [0, 30, 0, 101, 0, 122])
        self.check_crop(self.convert(mp, "--crop-nonzero", seg=SEG), box, [mp], SEG)
        # several channels: the union of their boxes; -0.0 is zero, NaN is not
        a = np.zeros((20, 16, 12), np.float32)
        b = np.zeros((20, 16, 12), np.float32)
        a[3:9, 4:6, 5] = 1.5
        a[0, 0, 0] = -0.0
        b[12, 10:14, 2:4] = -2.0
        b[15, 1, 11] = np.nan
        aff = np.diag([1.0, 2.0, 3.0, 1.0])
        pa = self.save(nib.Nifti1Image(a, aff), "ch_a.nii")
        pb = self.save(nib.Nifti1Image(b, aff), "ch_b.nii")
        nz = (np.abs(np.nan_to_num(a, nan=1.0)) > 0) | (np.abs(np.nan_to_num(b, nan=1.0)) > 0)
        idx = np.nonzero(nz.transpose(2, 1, 0))
        box = [v for d in range(3) for v in (int(idx[d].min()), int(idx[d].max()) + 1)]
        self.assertEqual(box, [2, 12, 1, 14, 3, 16])
        self.check_crop(self.convert([pa, pb], "--crop-nonzero"), box, [pa, pb])

    def test_crop_explicit_box(self):
        for box in ([5, 20, 10, 90, 7, 100], [0, 30, 0, 101, 0, 122], [29, 30, 100, 101, 121, 122], [0, 1, 0, 101, 3, 4]):
            with self.subTest(box=box):
                spec = ",".join(f"{box[2 * d]}:{box[2 * d + 1]}" for d in range(3))
                store = self.convert(CT, "--crop", spec, seg=SEG)
                self.check_crop(store, box, [CT], SEG)
        for spec in ("0:31,0:101,0:122", "5:5,0:101,0:122", "0:30,0:102,0:122", "0:30,0:101,10:9"):
            with self.subTest(bad=spec):
                self.assert_fails(CT, CT, r"crop", opts=("--crop", spec))

    def test_segmentation_dtypes(self):
        """Label arrays of integer dtypes keep them; float labels that are integers become int16."""
        aff = np.diag([1.0, 1.5, 2.0, 1.0])
        img = self.save(nib.Nifti1Image(self.rng.normal(0, 1, (9, 8, 7)).astype(np.float32), aff), "img.nii")
        for dt in ("u1", "i1", "u2", "i2", "u4", "i4", "f4", "f8"):
            with self.subTest(dtype=dt):
                lab = self.rng.integers(-3 if dt[0] in "if" else 0, 5, (9, 8, 7))
                lab[0, 0, 0] = 100
                sp = self.save(self.image(lab.astype(dt), affine=aff, endian=">"), f"seg_{dt}.nii.gz")
                store = self.convert(img, seg=sp)
                got, info = self.read_all(store, "seg")
                want = to_store(np.asarray(nib.load(sp).dataobj))
                np.testing.assert_array_equal(got, want)
                self.assertEqual(got.dtype, np.dtype(dt) if dt[0] != "f" else np.int16)
                self.check_labels(info, want[0])
        lab = np.zeros((9, 8, 7), np.float32)
        lab[1, 2, 3] = 2.5
        sp = self.save(nib.Nifti1Image(lab, aff), "seg_frac.nii")
        self.assert_fails(img, sp, r"not an integer", seg=sp)

    # ---- 5. channels ----------------------------------------------------

    def test_channels_in_input_order(self):
        aff = np.array([[0, 0, 2.0, -10], [1.5, 0, 0, 5], [0, 1.0, 0, 20], [0, 0, 0, 1]])
        a = self.rng.integers(-1000, 1000, (8, 7, 6)).astype(np.int16)
        b = self.rng.integers(-1000, 1000, (8, 7, 6)).astype(np.int16)
        pa = self.save(nib.Nifti1Image(a, aff), "case_0000.nii.gz")
        pb = self.save(nib.Nifti1Image(b, aff), "case_0001.nii")
        for order in ([pa, pb], [pb, pa]):
            with self.subTest(order=[os.path.basename(p) for p in order]):
                store = self.convert(order)
                got, info = self.read_all(store)
                want = np.concatenate([to_store(np.asarray(nib.load(p).dataobj)) for p in order])
                self.assertEqual(got.shape, (2, 6, 7, 8))
                self.assertEqual(got.dtype, np.int16)
                np.testing.assert_array_equal(got, want)
                self.assertEqual(info["metadata"]["source"], order[0])
                self.assertEqual(info["metadata"]["sources"], "\n".join(order))
                np.testing.assert_allclose(np.reshape(info["metadata"]["affine"], (4, 4)), nib.load(pa).affine,
                                           atol=1e-4)
        # a 4-d input contributes all its volumes, in place
        c = self.rng.integers(-1000, 1000, (8, 7, 6, 2)).astype(np.int16)
        pc = self.save(nib.Nifti1Image(c, aff), "four.nii")
        store = self.convert([pa, pc, pb])
        got = self.extract(store, [4, 6, 7, 8])
        np.testing.assert_array_equal(got, np.concatenate([to_store(a), to_store(c), to_store(b)]))

    def test_channels_of_different_dtypes(self):
        aff = np.diag([1.0, 1.0, 2.0, 1.0])
        for da, db in [("u1", "i2"), ("i2", "f4"), ("u2", "i2"), ("i1", "u1"), ("f4", "f8")]:
            with self.subTest(a=da, b=db):
                a = self.random_data(da, (5, 4, 3))
                b = self.random_data(db, (5, 4, 3))
                if np.dtype(db).kind == "f":
                    b = np.nan_to_num(b, posinf=7, neginf=-7).astype(db)
                pa = self.save(nib.Nifti1Image(a, aff), f"dt_{da}.nii")
                pb = self.save(nib.Nifti1Image(b, aff), f"dt_{db}.nii")
                got, _ = self.read_all(self.convert([pa, pb]))
                self.assertTrue(np.can_cast(a.dtype, got.dtype) and np.can_cast(b.dtype, got.dtype),
                                f"{da} + {db} stored as {got.dtype}")
                np.testing.assert_array_equal(got[0], to_store(a)[0].astype(got.dtype))
                np.testing.assert_array_equal(got[1], to_store(b)[0].astype(got.dtype))

    def test_channels_that_disagree(self):
        aff = np.diag([1.0, 1.0, 2.0, 1.0])
        a = np.ones((8, 7, 6), np.int16)
        pa = self.save(nib.Nifti1Image(a, aff), "a.nii")
        other_shape = self.save(nib.Nifti1Image(np.ones((8, 7, 5), np.int16), aff), "shape.nii")
        self.assert_fails([pa, other_shape], other_shape, r"shape")
        self.assert_fails([other_shape, pa], pa, r"shape")
        moved = aff.copy()
        moved[0, 3] = 1.0
        other_aff = self.save(nib.Nifti1Image(a, moved), "affine.nii.gz")
        self.assert_fails([pa, other_aff], other_aff, r"affine")
        other_zoom = self.save(nib.Nifti1Image(a, np.diag([1.0, 1.0, 2.5, 1.0])), "zoom.nii")
        self.assert_fails([pa, other_zoom], other_zoom, r"affine")
        # the segmentation must share the grid too
        self.assert_fails(pa, other_shape, r"shape", seg=other_shape)
        seg_aff = self.save(nib.Nifti1Image(np.zeros((8, 7, 6), np.uint8), moved), "segaff.nii")
        self.assert_fails(pa, seg_aff, r"affine", seg=seg_aff)
        self.assert_fails(CT, pa, r"shape", seg=pa)
        # a segmentation of the right grid converts
        seg = self.save(nib.Nifti1Image(np.zeros((8, 7, 6), np.uint8), aff), "seg.nii")
        self.convert(pa, seg=seg)

    # ---- 6. --dtype -----------------------------------------------------

    def test_dtype_float16(self):
        data = self.rng.normal(0, 3000, (9, 8, 7)).astype(np.float32)
        data.flat[:5] = [np.nan, np.inf, -np.inf, -0.0, 1e-6]
        data.flat[5:9] = [65504.0, -65504.0, 65519.0, 2.0 ** -24]
        p = self.save(nib.Nifti1Image(data, np.eye(4)), "f.nii.gz")
        store = self.convert(p, "--dtype", "float16")
        got, info = self.read_all(store)
        self.assertEqual(got.dtype, np.float16)
        self.assertEqual(self.array_info(info, "image")["dtype"], "float16")
        want = to_store(np.asarray(nib.load(p).dataobj)).astype(np.float16)
        np.testing.assert_array_equal(bits(got), bits(want))
        # int16 data to float16 where it is exact, and float64 data
        for src in (self.rng.integers(-2048, 2048, (9, 8, 7)).astype(np.int16),
                    self.rng.normal(0, 10, (9, 8, 7)).astype(np.float64)):
            p = self.save(nib.Nifti1Image(src, np.eye(4)), f"h_{src.dtype}.nii")
            got, _ = self.read_all(self.convert(p, "--dtype", "float16"))
            np.testing.assert_array_equal(bits(got), bits(to_store(src).astype(np.float16)))
        # a finite value beyond float16's range does not fit
        big = data.copy()
        big[1, 2, 3] = 70000.0
        p = self.save(nib.Nifti1Image(big, np.eye(4)), "big.nii")
        self.assert_fails(p, p, r"does not fit", opts=("--dtype", "float16"))

    def test_dtype_int16_rounds_to_nearest(self):
        data = self.rng.normal(0, 3000, (9, 8, 7)).astype(np.float32)
        data.flat[:12] = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, -0.50000006, 32767.4, -32768.4, 3.7, -3.7]
        for ext, dt in (("nii", np.float32), ("nii.gz", np.float64)):
            with self.subTest(dtype=np.dtype(dt).name):
                p = self.save(nib.Nifti1Image(data.astype(dt), np.eye(4)), f"r_{np.dtype(dt).name}.{ext}")
                store = self.convert(p, "--dtype", "int16")
                got, info = self.read_all(store)
                self.assertEqual(got.dtype, np.int16)
                self.assertEqual(self.array_info(info, "image")["dtype"], "int16")
                src = np.asarray(nib.load(p).dataobj).astype(np.float64)
                want = np.rint(src).astype(np.int16)  # nearest, ties to even
                np.testing.assert_array_equal(got, to_store(want))
        # integers narrowed where they fit
        small = self.rng.integers(-32768, 32768, (9, 8, 7)).astype(np.int32)
        p = self.save(nib.Nifti1Image(small, np.eye(4)), "i32.nii")
        got, _ = self.read_all(self.convert(p, "--dtype", "int16"))
        np.testing.assert_array_equal(got, to_store(small).astype(np.int16))
        # values that do not fit: an error naming the file, nothing written
        for i, v in enumerate([40000.0, -32769.0, 32767.5, np.nan, np.inf]):
            with self.subTest(value=v):
                bad = data.copy()
                bad[8, 7, 6] = v  # the very last voxel: the store is mostly written by then
                p = self.save(nib.Nifti1Image(bad, np.eye(4)), f"bad{i}.nii")
                self.assert_fails(p, p, r"does not fit", opts=("--dtype", "int16"))
        p = self.save(nib.Nifti1Image(small, np.eye(4)), "neg.nii.gz")
        self.assert_fails(p, p, r"does not fit", opts=("--dtype", "uint8"))

    # ---- 7. malformed inputs --------------------------------------------

    def good_nii(self, name, gz=False, dtype=np.int16, smooth=False, nifti2=False):
        if smooth:  # compressible: deflate codes it with Huffman blocks
            x, y, z = np.meshgrid(np.arange(24), np.arange(20), np.arange(10), indexing="ij")
            data = ((x * 3 + y * 5 + z * 7) % 50).astype(dtype)
        else:  # incompressible: deflate stores it
            data = self.rng.integers(-30000, 30000, (24, 20, 10)).astype(dtype)
        cls = nib.Nifti2Image if nifti2 else nib.Nifti1Image
        return self.save(cls(data, np.eye(4)), name + (".nii.gz" if gz else ".nii"))

    def patch(self, path, offset, fmt, *values):
        with open(path, "r+b") as f:
            f.seek(offset)
            f.write(struct.pack("<" + fmt, *values))

    def test_truncated_gzip(self):
        for smooth in (False, True):
            with self.subTest(smooth=smooth):
                p = self.good_nii(f"trunc{int(smooth)}", gz=True, smooth=smooth)
                raw = file_bytes_raw(p)
                with open(p, "wb") as f:
                    f.write(raw[: len(raw) // 2])
                err = self.assert_fails(p, p, r"truncat|corrupt")
                self.assertNotIn("<fd:", err)

    def test_gzip_without_its_trailer(self):
        # every voxel is there, but the CRC-32 and length that close the gzip
        # member are not: Python's gzip refuses the file, and so must voxtile
        p = self.good_nii("notrailer", gz=True, smooth=True)
        raw = file_bytes_raw(p)
        with open(p, "wb") as f:
            f.write(raw[:-8])
        with self.assertRaises(EOFError):
            with gzip.open(p, "rb") as f:
                f.read()
        self.assert_fails(p, p, r"truncated gzip stream")

    def test_corrupt_gzip(self):
        for smooth in (True, False):
            with self.subTest(smooth=smooth):
                p = self.good_nii(f"corrupt{int(smooth)}", gz=True, smooth=smooth)
                raw = bytearray(file_bytes_raw(p))
                mid = len(raw) // 2
                for k in range(mid, mid + 8):
                    raw[k] ^= 0x5A
                with open(p, "wb") as f:
                    f.write(raw)
                with self.assertRaises(Exception):  # zlib/gzip agree that the stream is bad
                    with gzip.open(p, "rb") as f:
                        f.read()
                err = self.assert_fails(p, p, r"corrupt|truncat|CRC|check|invalid|incorrect")
                self.assertNotIn("<fd:", err)  # zlib's name for a gzdopen()ed stream: the file is named already

    def test_uncompressed_shorter_than_header_says(self):
        for nifti2 in (False, True):
            with self.subTest(nifti2=nifti2):
                p = self.good_nii(f"short{int(nifti2)}", nifti2=nifti2)
                size = os.path.getsize(p)
                with open(p, "r+b") as f:
                    f.truncate(size - 100)
                self.assert_fails(p, p, r"truncated|ends")
        # shorter than the header itself
        p = self.good_nii("stub")
        with open(p, "r+b") as f:
            f.truncate(200)
        self.assert_fails(p, p, r"short|truncat")
        # a pair whose .img is short
        pr = self.save(nib.Nifti1Pair(np.ones((6, 5, 4), np.float32), np.eye(4)), "pair.hdr")
        img = self.path("pair.img")
        with open(img, "r+b") as f:
            f.truncate(os.path.getsize(img) - 4)
        self.assert_fails(pr, img, r"truncated|ends")
        # a pair without its .img
        pr2 = self.save(nib.Nifti1Pair(np.ones((6, 5, 4), np.float32), np.eye(4)), "lonely.hdr")
        os.remove(self.path("lonely.img"))
        self.assert_fails(pr2, self.path("lonely.img"), r"cannot open")

    def convert_on_tty(self, *opts):
        """convert the CT with standard error on a pseudo-terminal; what it wrote there."""
        import pty
        import subprocess
        master, slave = pty.openpty()
        out = os.path.join(self.outdir(), "s.vxt")
        p = subprocess.Popen([VOXTILE, "convert", CT, "-o", out, *opts], stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        got = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            got += chunk
        os.close(master)
        self.assertEqual(p.wait(), 0)
        self.assertTrue(os.path.exists(out))
        return got.decode()

    def test_progress_bar_only_on_a_terminal(self):
        bar = self.convert_on_tty("-j", "1")
        steps = re.findall(r"\r\[(=*) *\] +(\d+)%", bar)
        self.assertGreaterEqual(len(steps), 2, repr(bar))
        pcts = [int(p) for _, p in steps]
        self.assertEqual(pcts, sorted(pcts))  # it only moves forward
        self.assertEqual(pcts[-1], 100)
        for fill, pct in steps:
            self.assertEqual(len(fill), int(pct) // 4)
        self.assertEqual(self.convert_on_tty("-q"), "")  # -q: nothing
        p = run("convert", CT, "-o", os.path.join(self.outdir(), "s.vxt"))  # not a terminal: no bar
        self.assertNotIn("\r", p.stderr)
        self.assertNotIn("%", p.stderr)

    def test_bad_dims(self):
        cases = [(42, "h", 0, r"dim\[1\]"), (44, "h", -3, r"dim\[2\]"), (46, "h", 0, r"dim\[3\]"),
                 (40, "h", 0, r"dim\[0\]"), (40, "h", 8, r"dim\[0\]"), (40, "h", -1, r"dim\[0\]")]
        for i, (off, fmt, v, msg) in enumerate(cases):
            with self.subTest(offset=off, value=v):
                p = self.good_nii(f"dim{i}")
                self.patch(p, off, fmt, v)
                self.assert_fails(p, p, msg)
        # NIfTI-2: 64-bit dims
        for i, (off, v, msg) in enumerate([(24, 0, r"dim\[1\]"), (32, -5, r"dim\[2\]"), (16, 0, r"dim\[0\]"),
                                           (16, 8, r"dim\[0\]")]):
            with self.subTest(nifti2=True, offset=off, value=v):
                p = self.good_nii(f"dim2_{i}", nifti2=True)
                self.patch(p, off, "q", v)
                self.assert_fails(p, p, msg)
        # sizes whose product overflows 64 bits, or is implausibly large (NIfTI-2)
        for i, (v, msg) in enumerate([(2**40, r"dim sizes overflow"), (2**20, r"implausibly large")]):
            with self.subTest(nifti2=True, dims=v):
                p = self.good_nii(f"ovf{i}", nifti2=True)
                self.patch(p, 24, "qqq", v, v, v)
                self.assert_fails(p, p, msg)
        # a NIfTI-1 header claiming far more voxels than the file holds: said
        # before a store that size is set up, naming the input
        p = self.good_nii("huge")
        self.patch(p, 42, "hhh", 32767, 32767, 32767)
        self.assert_fails(p, p, r"file truncated: the header describes 70362301923326 bytes")
        # the same header gzipped
        p = self.good_nii("dimgz")
        self.patch(p, 44, "h", 0)
        with open(p, "rb") as f, gzip.open(p + ".gz", "wb") as g:
            g.write(f.read())
        self.assert_fails(p + ".gz", p + ".gz", r"dim\[2\]")

    def test_unsupported_datatypes(self):
        rgb = np.zeros((6, 5, 4), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
        p = self.save(nib.Nifti1Image(rgb, np.eye(4)), "rgb.nii")
        self.assertEqual(int(nib.load(p).header["datatype"]), 128)
        self.assert_fails(p, p, r"RGB", r"not supported")
        for dt, code in ((np.complex64, 32), (np.complex128, 1792)):
            with self.subTest(dtype=np.dtype(dt).name):
                c = (self.rng.normal(size=(6, 5, 4)) + 1j * self.rng.normal(size=(6, 5, 4))).astype(dt)
                p = self.save(nib.Nifti1Image(c, np.eye(4)), f"{np.dtype(dt).name}.nii.gz")
                self.assertEqual(int(nib.load(p).header["datatype"]), code)
                self.assert_fails(p, p, r"complex", r"not supported")
        # as a segmentation too
        good = self.save(nib.Nifti1Image(np.ones((6, 5, 4), np.int16), np.eye(4)), "good.nii")
        self.assert_fails(good, self.path("rgb.nii"), r"RGB", r"not supported", seg=self.path("rgb.nii"))

    def test_bad_magic_and_sizeof_hdr(self):
        p = self.good_nii("magic")
        self.patch(p, 344, "4s", b"xyz\0")
        self.assert_fails(p, p, r"magic")
        p = self.good_nii("magic2", nifti2=True)
        self.patch(p, 4, "4s", b"n+3\0")
        self.assert_fails(p, p, r"magic")
        for v in (0, 100, 349, 539, 541, 0x5C010000 + 1):
            with self.subTest(sizeof_hdr=v):
                p = self.good_nii(f"sizeof{v}")
                self.patch(p, 0, "I", v)
                self.assert_fails(p, p, r"sizeof_hdr|not a NIfTI")
        p = self.path("empty.nii")
        open(p, "wb").close()
        self.assert_fails(p, p, r"short|not a NIfTI")
        # a file that is not NIfTI at all, gzipped
        p = self.path("text.nii.gz")
        with gzip.open(p, "wb") as g:
            g.write(b"hello world\n" * 100)
        self.assert_fails(p, p, r"sizeof_hdr|not a NIfTI")


if __name__ == "__main__":
    unittest.main(verbosity=2)
