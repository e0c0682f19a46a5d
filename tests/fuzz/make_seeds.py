#!/usr/bin/python3
"""Write the seed corpora of the fuzz harnesses into tests/fuzz/corpus/<harness>/.

    /usr/bin/python3 tests/fuzz/make_seeds.py [--lib build/libvoxtile.so]

Seeds are small valid inputs (a few KB each) that the fuzzer mutates: stores
of every dtype, codec and filter (written through the Python package, so the
library in build/ must be built), NIfTI-1/2 files (nibabel), .npy headers,
NRRD and MetaImage headers with data, compressed streams for fuzz_gzip, and
request / array-description bytes for fuzz_read and fuzz_roundtrip. Every
seed is named seed-<what>; files the fuzzer adds (run.sh) keep libFuzzer's
names. Deterministic: the same seeds every run (apart from the writer's
version field of the stores)."""
import argparse
import gzip
import io
import os
import random
import struct
import sys
import tempfile
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CORPUS = os.path.join(HERE, "corpus")


def put(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- stores (fuzz_open, fuzz_cli_info) -------------------------------------

def stores(tmp):
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import voxtile

    rng = np.random.default_rng(7)

    def store(name, arrays, meta=()):
        path = os.path.join(tmp, name + ".vxt")
        with voxtile.Writer(path) as w:
            for a in arrays:
                data = a.pop("data")
                write = a.pop("write", None)
                ident = w.add_array(**a)
                if write is None:
                    w.write(ident, [0] * data.ndim, data)
                else:
                    for start, block in write(data):
                        w.write(ident, start, block)
            for k, v in meta:
                w.set_meta(k, v)
        with open(path, "rb") as f:
            blob = f.read()
        assert len(blob) < 16384, (name, len(blob))
        for h in ("fuzz_open", "fuzz_cli_info"):
            put(h, name + ".vxt", blob)

    seg = (rng.integers(0, 4, (1, 4, 6, 5)) * (rng.random((1, 4, 6, 5)) < 0.4)).astype(np.uint8)
    img = (rng.standard_normal((1, 4, 6, 5)) * 100).astype(np.float32)
    img[0, :2, :3, :3] = 7  # constant tiles
    store("image_seg", [
        dict(name="image", shape=img.shape, dtype="float32", tile=(1, 2, 3, 3), codec="lz4", shuffle="on", data=img),
        dict(name="seg", shape=seg.shape, dtype="uint8", tile=(1, 2, 3, 3), codec="lz4hc", shuffle="off",
             labels=True, data=seg),
    ], meta=[("source", "case_0000.nii.gz"), ("spacing", [3.0, 0.8, 0.8]), ("origin", [0.0, -10.5, 4.0]),
             ("crop", np.array([0, 4, 1, 7, 0, 5], dtype=np.int64)), ("nifti.header", bytes(range(64)))])

    a = np.arange(24, dtype="<i2").reshape(2, 3, 4)
    a[:, 2:3, 2:4] = 7
    store("int16_none", [dict(name="image", shape=a.shape, dtype="int16", tile=(2, 2, 2), codec="none",
                              data=a)], meta=[("source", "tiny.npy")])

    h = (rng.standard_normal((9, 11)) * 1000).astype(np.float16)
    h[0, 0], h[1, 1], h[2, 2] = np.nan, np.inf, -0.0
    store("f16_2d_lz4hc_auto", [dict(name="image", shape=h.shape, dtype="float16", tile=(4, 4), codec="lz4hc",
                                     level=9, shuffle="auto", data=h)])

    b = (rng.standard_normal(70) * 5).astype(np.float32).view(np.uint32) >> 16
    store("bf16_1d", [dict(name="v", shape=(70,), dtype="bfloat16", tile=(16,), codec="lz4", level=3,
                           data=b.astype(np.uint16).view(np.uint16))])

    f = rng.standard_normal((2, 2, 2, 3, 4))
    f[1] = 0.5
    store("f64_5d", [dict(name="image", shape=f.shape, dtype="float64", tile=(1, 1, 2, 2, 2), codec="lz4hc",
                          shuffle="on", data=f)], meta=[("levels", [0])])

    u = (rng.integers(0, 3, (3, 5, 4)) * 100000).astype(np.uint32)

    def halves(d):  # only the first half: the rest is the fill value
        yield [0, 0, 0], d[:2]

    u[2:] = 9
    store("u32_sparse_labels", [dict(name="seg", shape=u.shape, dtype="uint32", tile=(2, 2, 2), codec="lz4",
                                      shuffle="on", sparse=True, fill=9, labels=True, data=u, write=halves)])

    i8 = rng.integers(-128, 127, (3, 7, 5)).astype(np.int8)
    u16 = rng.integers(0, 65535, (1, 2, 20, 20)).astype(np.uint16)
    i32 = np.repeat(np.arange(6, dtype=np.int32), 5).reshape(6, 5) - 3
    store("three_arrays", [
        dict(name="a", shape=i8.shape, dtype="int8", tile=(2, 4, 4), codec="lz4", shuffle="off", data=i8),
        dict(name="image", shape=u16.shape, dtype="uint16", codec="lz4", data=u16),  # default tiles
        dict(name="labels", shape=i32.shape, dtype="int32", tile=(3, 3), codec="none", labels=True, data=i32),
    ], meta=[("k", b""), ("empty", ""), ("f", []), ("i", np.array([-1, 2**40], dtype=np.int64))])

    z = np.zeros((2, 8, 8), dtype=np.float32)

    def nothing(d):
        return iter(())

    store("all_constant", [dict(name="image", shape=z.shape, dtype="float32", tile=(1, 4, 4), codec="lz4",
                                sparse=True, fill=-1.5, data=z, write=nothing)])

    r = rng.integers(0, 255, (1, 3, 16, 16)).astype(np.uint8)
    store("u8_raw_fallback", [dict(name="image", shape=r.shape, dtype="uint8", tile=(1, 1, 16, 16), codec="lz4",
                                   data=r)])


# ---- .npy (fuzz_npy) -------------------------------------------------------

def npys():
    rng = np.random.default_rng(3)

    def save(name, arr, version=None, **kw):
        b = io.BytesIO()
        if version:
            np.lib.format.write_array(b, arr, version=version, **kw)
        else:
            np.save(b, arr, **kw)
        put("fuzz_npy", name, b.getvalue())

    save("u1_3d.npy", rng.integers(0, 255, (2, 3, 4)).astype(np.uint8))
    save("i2_4d.npy", rng.integers(-9, 9, (2, 2, 3, 4)).astype(np.int16))
    save("f4_be.npy", rng.standard_normal((2, 3, 3)).astype(">f4"))
    save("f8_fortran.npy", np.asfortranarray(rng.standard_normal((3, 4, 2))))
    save("f2_v2.npy", rng.standard_normal((2, 2, 3)).astype(np.float16), version=(2, 0))
    save("u4_v3.npy", rng.integers(0, 9, (1, 2, 2, 2)).astype(np.uint32), version=(3, 0))
    save("bool_3d.npy", rng.random((2, 2, 2)) < 0.5)
    save("i1_1d.npy", np.arange(5, dtype=np.int8))
    save("scalar.npy", np.float32(1.5))
    save("i4_big4d.npy", np.arange(24, dtype=">i4").reshape(1, 2, 3, 4))
    # int64/uint64 are read narrowed to 32 bits: C and Fortran order, big-endian, a value too big
    save("i8_3d.npy", (np.arange(24).reshape(2, 3, 4) - 12).astype("<i8"))
    save("i8f_3d.npy", np.asfortranarray((np.arange(24).reshape(2, 3, 4) - 12).astype("<i8")))
    save("u8be_big.npy", np.array([[[1, 2**40]]], dtype=">u8"))
    put("fuzz_npy", "structured.npy", b"\x93NUMPY\x01\x00v\x00{'descr': [('a', '<i4')], 'fortran_order': False, "
        b"'shape': (2,), }" + b" " * 56 + b"\n" + bytes(8))
    put("fuzz_npy", "py2_long.npy", b"\x93NUMPY\x01\x00F\x00{\"descr\": \"<u2\", \"shape\": (2L, 1L, 2L), "
        b"\"fortran_order\": False}" + b" " * 7 + b"\n" + bytes(8))


# ---- NIfTI (fuzz_nifti) ----------------------------------------------------

def niftis(tmp):
    import nibabel as nib

    rng = np.random.default_rng(5)

    def blob(img, ext=".nii"):
        p = os.path.join(tmp, "x" + ext)
        nib.save(img, p)
        with open(p, "rb") as f:
            return f.read()

    def pair(img, stem, hlen, name):  # the header's hlen bytes, then the .img
        hp = os.path.join(tmp, stem + ".hdr")
        nib.save(img, hp)
        with open(hp, "rb") as f:
            h = f.read()
        with open(os.path.join(tmp, stem + ".img"), "rb") as f:
            put("fuzz_nifti", name, h[:hlen] + f.read())

    aff = np.diag([0.8, 0.8, 3.0, 1.0])
    aff[:3, 3] = [-10, 20, 5]
    d = rng.integers(0, 255, (4, 3, 2)).astype(np.uint8)
    put("fuzz_nifti", "n1_u8.nii", blob(nib.Nifti1Image(d, aff)))
    i = nib.Nifti1Image(rng.integers(-500, 500, (3, 4, 2)).astype(np.int16), aff)
    i.header.set_slope_inter(2.0, -1024)
    i.header.set_qform(aff, 1)
    i.header.set_sform(aff, 0)
    put("fuzz_nifti", "n1_i16_scaled_qform.nii", blob(i))
    put("fuzz_nifti", "n1_f32_4d.nii", blob(nib.Nifti1Image(rng.standard_normal((3, 2, 2, 2)).astype(np.float32),
                                                             aff)))
    be = nib.Nifti1Image(rng.standard_normal((2, 3, 2)).astype(">f8"), aff)
    put("fuzz_nifti", "n1_f64_be.nii", blob(be))
    put("fuzz_nifti", "n1_i64.nii", blob(nib.Nifti1Image(rng.integers(-9, 9, (2, 2, 3)).astype(np.int64), aff, dtype=np.int64)))
    put("fuzz_nifti", "n1_u64.nii", blob(nib.Nifti1Image(rng.integers(0, 9, (2, 2, 2)).astype(np.uint64), aff, dtype=np.uint64)))
    put("fuzz_nifti", "n2_u16.nii", blob(nib.Nifti2Image(rng.integers(0, 999, (3, 2, 2)).astype(np.uint16), aff)))
    x = nib.Nifti1Image(rng.integers(0, 9, (2, 2, 2)).astype(np.int8), aff)
    x.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"fuzz extension text\x00"))
    put("fuzz_nifti", "n1_i8_ext.nii", blob(x))
    pair(nib.Nifti1Pair(rng.integers(0, 9, (2, 3, 2)).astype(np.uint16), aff), "pair", 348, "n1_pair.hdr+img")
    pair(nib.Nifti2Pair(rng.integers(0, 9, (2, 2, 2)).astype(np.float32), aff), "pair2", 540, "n2_pair.hdr+img")


# ---- NRRD and MetaImage (fuzz_nrrd, fuzz_mha) ---------------------------------

def nrrds():
    rng = np.random.default_rng(9)
    u8 = rng.integers(0, 255, 24).astype(np.uint8).tobytes()
    i16 = rng.integers(-900, 900, 30).astype("<i2").tobytes()
    put("fuzz_nrrd", "raw_u8.nrrd", b"NRRD0004\n# comment\ntype: uchar\ndimension: 3\nsizes: 4 3 2\n"
        b"encoding: raw\nspacings: 0.5 0.5 2\n\n" + u8)
    put("fuzz_nrrd", "gzip_i16_lps.nrrd", b"NRRD0005\ntype: short\ndimension: 3\nsizes: 5 3 2\nendian: little\n"
        b"encoding: gzip\nspace: left-posterior-superior\nspace directions: (0.8,0,0) (0,0.8,0) (0,0,3)\n"
        b"space origin: (-10,20,5)\nkey:=value\n\n" + gzip.compress(i16, mtime=0))
    put("fuzz_nrrd", "big_f32_4d_channels.nrrd", b"NRRD0004\ntype: float\ndimension: 4\nsizes: 2 3 2 2\n"
        b"kinds: vector domain domain domain\nendian: big\nencoding: raw\n\n"
        + rng.standard_normal(24).astype(">f4").tobytes())
    put("fuzz_nrrd", "time_last_u16.nrrd", b"NRRD0004\ntype: uint16\ndimension: 4\nsizes: 3 2 2 2\n"
        b"kinds: domain domain domain time\nencoding: raw\nendian: little\n\n"
        + rng.integers(0, 9, 24).astype("<u2").tobytes())
    put("fuzz_nrrd", "detached_skip.nhdr", b"NRRD0004\ntype: int64\ndimension: 3\nsizes: 2 2 2\nendian: little\n"
        b"encoding: raw\ndata file: d.raw\nline skip: 1\nbyte skip: 2\n\nskipped line\nXX"
        + np.arange(8, dtype="<i8").tobytes())
    put("fuzz_nrrd", "detached_gz.nhdr", b"NRRD0004\ntype: uint\ndimension: 3\nsizes: 2 2 2\nendian: little\n"
        b"encoding: gzip\ndata file: d.raw\n\n" + np.arange(8, dtype="<u4").tobytes())
    put("fuzz_nrrd", "byteskip_end.nrrd", b"NRRD0004\ntype: double\ndimension: 3\nsizes: 2 1 2\n"
        b"endian: little\nencoding: raw\nbyte skip: -1\n\njunk" + np.arange(4, dtype="<f8").tobytes())

    s16 = rng.integers(-900, 900, 24).astype("<i2").tobytes()
    put("fuzz_mha", "local_short.mha", b"ObjectType = Image\nNDims = 3\nDimSize = 4 3 2\n"
        b"ElementSpacing = 0.8 0.8 3\nOffset = -10 20 5\nTransformMatrix = 1 0 0 0 1 0 0 0 1\n"
        b"ElementType = MET_SHORT\nElementDataFile = LOCAL\n" + s16)
    z = zlib.compress(rng.standard_normal(12).astype("<f4").tobytes())
    put("fuzz_mha", "zlib_float.mha", b"ObjectType = Image\nNDims = 3\nDimSize = 3 2 2\nBinaryData = True\n"
        b"BinaryDataByteOrderMSB = False\nCompressedData = True\nCompressedDataSize = %d\n"
        b"ElementType = MET_FLOAT\nElementDataFile = LOCAL\n" % len(z) + z)
    put("fuzz_mha", "channels_uchar.mha", b"ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\n"
        b"ElementNumberOfChannels = 3\nElementType = MET_UCHAR_ARRAY\nElementDataFile = LOCAL\n"
        + bytes(range(24)))
    put("fuzz_mha", "4d_msb_ulonglong.mha", b"ObjectType = Image\nNDims = 4\nDimSize = 2 1 2 2\n"
        b"ElementByteOrderMSB = True\nElementType = MET_ULONG_LONG\nElementDataFile = LOCAL\n"
        + np.arange(8, dtype=">u8").tobytes())
    put("fuzz_mha", "detached_raw.mhd", b"ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\nHeaderSize = 3\n"
        b"ElementType = MET_USHORT\nElementDataFile = d.raw\nabc" + np.arange(8, dtype="<u2").tobytes())
    put("fuzz_mha", "detached_zraw.mhd", b"ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\n"
        b"CompressedData = True\nElementType = MET_INT\nElementDataFile = d.zraw\n"
        + np.arange(8, dtype="<i4").tobytes())
    put("fuzz_mha", "headersize_end.mhd", b"NDims = 3\nDimSize = 2 2 1\nHeaderSize = -1\n"
        b"ElementType = MET_DOUBLE\nElementDataFile = d.raw\nxx" + np.arange(4, dtype="<f8").tobytes())


# ---- compressed streams (fuzz_gzip) --------------------------------------------
# template numbers and voxel counts as in fuzz_gzip.c

GZ_TEMPLATES = [
    ("nii", 6 * 5 * 4, "u1"), ("nii", 4 * 3 * 5, "<i2"), ("nii", 3 * 4 * 2 * 2, "<f4"), ("nii", 2 * 3 * 2, "<i8"),
    ("nii", 2 * 2 * 3, ">f8"), ("nii2", 5 * 4 * 3, "<u2"), ("nii_ext", 4 * 4 * 2, "u1"), ("nii", 24, ">u8"),
    ("nrrd", 5 * 4 * 3, "<u2"), ("nrrd_skip3", 2 * 3 * 4 * 2, "<f4"), ("nrrd", 3 * 2 * 2, ">i8"),
    ("mha", 5 * 4 * 3, "<i2"), ("mha", 3 * 2 * 2 * 2, "<f4"), ("mha", 16, ">u8"),
]


def gzips():
    rng = np.random.default_rng(11)
    for t, (kind, n, dt) in enumerate(GZ_TEMPLATES):
        if dt.endswith("i8") or dt.endswith("u8"):
            vals = rng.integers(0, 1000, n).astype(dt)
        elif "f" in dt:
            vals = rng.standard_normal(n).astype(dt)
        else:
            vals = rng.integers(0, 100, n).astype(dt)
        data = vals.tobytes()
        if kind == "nii_ext":
            data = b"extension bytes, 40 of them...........\x00\x00" + data
        if kind == "nrrd_skip3":
            data = b"abc" + data
        if kind.startswith("mha"):
            stream = zlib.compress(data)
        else:
            stream = gzip.compress(data, mtime=0)
        put("fuzz_gzip", "t%02d_%s" % (t, kind), bytes([t]) + stream)
        if kind == "nii":  # the data in two members, and with trailing garbage
            half = len(data) // 2
            put("fuzz_gzip", "t%02d_%s_two_members" % (t, kind),
                bytes([t]) + gzip.compress(data[:half], mtime=0) + gzip.compress(data[half:], mtime=0))
            put("fuzz_gzip", "t%02d_%s_truncated" % (t, kind), bytes([t]) + stream[:-5])


# ---- requests and array descriptions (fuzz_read, fuzz_roundtrip) ------------------

def requests():
    r = random.Random(17)
    for i in range(12):  # one per array, inside, simple options
        put("fuzz_read", "array%02d_inside" % i, bytes([i, 0]) + bytes([10, 10] * 5) + bytes([0, 0, 0, 0]))
    for i in range(40):
        put("fuzz_read", "random%02d" % i, bytes(r.randrange(256) for _ in range(r.randrange(8, 64))))
    put("fuzz_read", "planes_f16", bytes([10, 0] + [10, 10] * 4 + [0, 7, 0, 0]))
    put("fuzz_read", "planes_f16_edge", bytes([10, 0] + [0, 40, 15, 60] * 4 + [1, 7, 2, 0]))

    for i in range(24):
        spec = [i % 10, i % 5, 3 + i, 4 + i, 5, 6, 2, i % 4, 1 + i % 3, i % 3, 2 * i + 1, i % 3, i * 37 % 256]
        spec += [r.randrange(256) for _ in range(4 + 1 + 8 + 40)]
        body = bytes(r.randrange(4) * 60 for _ in range(r.randrange(50, 400)))
        put("fuzz_roundtrip", "spec%02d" % i, bytes(spec) + body)


# ---- resampled, cropped stores mapped back (fuzz_export) --------------------

def exports(tmp):
    """Stores as `convert --spacing` writes them (source grid, crop, resampling recorded): an int16 image with
    labels, cropped and resampled with separate z; float32 class probabilities of 3 channels; one not
    resampled, only cropped. The first byte of a seed is fuzz_export's options (argmax, cubic)."""
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import nibabel as nib
    import voxtile

    rng = np.random.default_rng(11)
    z, y, x = 5, 9, 8
    aff = np.diag([0.8, 0.7, 4.0, 1.0])
    aff[:3, 3] = (-3.0, 5.0, 20.0)
    img = np.zeros((x, y, z), np.int16)
    img[1:7, 2:8, 1:4] = rng.integers(-200, 300, (6, 6, 3))
    seg = ((img > 0).astype(np.uint8) + (img > 150)).astype(np.uint8)
    probs = rng.random((x, y, z, 3)).astype(np.float32)
    for name, arr in (("img", img), ("seg", seg), ("probs", probs)):
        nib.save(nib.Nifti1Image(arr, aff), os.path.join(tmp, name + ".nii"))

    def conv(name, options, args=(), seg_file=None):
        path = os.path.join(tmp, name + ".vxt")
        voxtile.convert([os.path.join(tmp, a + ".nii") for a in args], path,
                        seg=seg_file and os.path.join(tmp, seg_file + ".nii"), tile=(4, 4, 4), threads=1, **options)
        with open(path, "rb") as f:
            blob = f.read()
        assert len(blob) < 16384, (name, len(blob))
        for opt in (0, 3):
            put("fuzz_export", "%s-opt%d.vxt" % (name, opt), bytes([opt]) + blob)

    conv("ct_seg_resampled", dict(crop="nonzero", spacing=(2.0, 1.0, 1.0)), ["img"], "seg")
    conv("probs_resampled", dict(spacing=(3.0, 0.9, 1.1), order="linear"), ["probs"])
    conv("cropped_only", dict(crop="label", crop_margin=1), ["img"], "seg")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", default=os.path.join(ROOT, "build", "libvoxtile.so"))
    ap.add_argument("--only", choices=("exports",), help="write only these seeds (the others stay as they are)")
    args = ap.parse_args()
    os.environ.setdefault("VOXTILE_LIB", args.lib)
    if args.only == "exports":
        with tempfile.TemporaryDirectory() as tmp:
            exports(tmp)
        return
    with tempfile.TemporaryDirectory() as tmp:
        stores(tmp)
        niftis(tmp)
        exports(tmp)
    npys()
    nrrds()
    gzips()
    requests()
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(CORPUS) for f in fs)
    print("seeds written to %s (%d KB in all)" % (CORPUS, total // 1024))


if __name__ == "__main__":
    main()
