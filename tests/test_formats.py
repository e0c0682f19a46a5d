"""NRRD and MetaImage input through the voxtile CLI, against numpy: files
written by hand here (text header + numpy bytes, gzip/zlib from Python's
modules), converted, read back with extract, and the geometry checked in
info --json; then malformed and unsupported files and the error contract
(exit status 1, a message naming the file, nothing left behind).

Run: VOXTILE=build/tools/voxtile /usr/bin/python3 tests/test_formats.py
(SHOW_ERRORS=1 prints every expected error message, to review them.)
"""
import gzip
import json
import os
import shutil
import subprocess
import tempfile
import unittest
import zlib

import numpy as np
from cliutil import VOXTILE, StoreCase, csv, run  # noqa: E402,F401


# (numpy dtype, NRRD spellings, MetaImage ElementType); 64-bit integers are
# stored as 32-bit ones.
TYPES = [
    ("i1", ["signed char", "int8", "int8_t"], "MET_CHAR"),
    ("u1", ["uchar", "unsigned char", "uint8", "uint8_t"], "MET_UCHAR"),
    ("i2", ["short", "short int", "signed short", "signed short int", "int16", "int16_t"], "MET_SHORT"),
    ("u2", ["ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"], "MET_USHORT"),
    ("i4", ["int", "signed int", "int32", "int32_t"], "MET_INT"),
    ("u4", ["uint", "unsigned int", "uint32", "uint32_t"], "MET_UINT"),
    ("i8", ["longlong", "long long", "long long int", "signed long long", "signed long long int", "int64",
            "int64_t"], "MET_LONG_LONG"),
    ("u8", ["ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"], "MET_ULONG_LONG"),
    ("f4", ["float"], "MET_FLOAT"),
    ("f8", ["double"], "MET_DOUBLE"),
]

STORED = {"i8": np.int32, "u8": np.uint32}


def vec(v):
    return "(" + ",".join(repr(float(x)) for x in v) + ")"


def rotation(a, b, c):
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_values(rng, dt, shape):
    dt = np.dtype(dt)
    if dt.kind == "f":
        return rng.normal(0, 1000, shape).astype(dt)
    info = np.iinfo(dt)
    lo, hi = max(info.min, -(2**31)), min(info.max, 2**31 - 1) if dt.kind == "i" else min(info.max, 2**32 - 1)
    v = rng.integers(lo, hi, shape, endpoint=True, dtype=np.int64 if dt.kind == "i" else np.uint64).astype(dt)
    v.flat[0] = lo  # the extremes survive narrowing and byte swapping
    v.flat[-1] = hi
    return v


class FormatTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="vt-formats-")
        self.out = os.path.join(self.tmp, "out")
        os.mkdir(self.out)
        self.rng = np.random.default_rng(11)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def write(self, name, data):
        p = self.path(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        return p

    def convert(self, src):
        store = os.path.join(self.out, "s.vxt")
        if os.path.exists(store):
            os.unlink(store)
        run("convert", src, "-o", store)
        return store

    def check(self, src, want, affine=None, spacing=None, fmt=None, msg=""):
        """Convert src; the store must hold want (c, z, y, x) and the geometry."""
        store = self.convert(src)
        box = os.path.join(self.out, "box.npy")
        run("extract", store, "--start", "0,0,0,0", "--size", csv(want.shape), "-o", box)
        got = np.load(box)
        os.unlink(box)
        expect = want.astype(STORED.get(want.dtype.str[1:], want.dtype.newbyteorder("=")))
        self.assertEqual(got.dtype, expect.dtype, msg)
        np.testing.assert_array_equal(got, expect, err_msg=msg)
        info = json.loads(run("info", store, "--json").stdout)
        meta = info["metadata"]
        if fmt:
            self.assertEqual(meta["format"], fmt, msg)
        if affine is not None:
            np.testing.assert_allclose(np.array(meta["affine"]).reshape(4, 4), affine, rtol=0, atol=1e-9,
                                       err_msg=msg)
        if spacing is not None:
            np.testing.assert_allclose(meta["spacing"], spacing, rtol=1e-12, err_msg=msg)
        return meta

    def fails(self, src, names, expect=None):
        """Converting src fails: exit 1, stderr 'voxtile: PATH: ...' (PATH one of names), nothing written."""
        before = sorted(os.listdir(self.out))
        p = run("convert", src, "-o", os.path.join(self.out, "bad.vxt"), ok=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        names = [names] if isinstance(names, str) else names
        self.assertTrue(any(p.stderr.startswith(f"voxtile: {n}: ") for n in names), p.stderr)
        if expect:
            self.assertIn(expect, p.stderr)
        self.assertEqual(sorted(os.listdir(self.out)), before, p.stderr)
        if os.environ.get("SHOW_ERRORS"):
            print(p.stderr.replace(self.tmp, "T"), end="")
        return p.stderr

    # ---- NRRD -------------------------------------------------------------

    def nrrd(self, name, vol, layout="3d", endian="<", encoding="raw", detached=False, type_name=None,
             fields=None, version=4, space="left-posterior-superior", dirs=None, origin=None):
        """Write vol (c, z, y, x) as NRRD; returns the header's path."""
        dt = vol.dtype.newbyteorder(endian)
        if layout == "3d":
            arr, sizes = vol[0], [vol.shape[3], vol.shape[2], vol.shape[1]]
        elif layout == "first":  # channels interleaved: file array (z, y, x, c)
            arr, sizes = vol.transpose(1, 2, 3, 0), [vol.shape[0], vol.shape[3], vol.shape[2], vol.shape[1]]
        else:  # "last": (t, z, y, x)
            arr, sizes = vol, [vol.shape[3], vol.shape[2], vol.shape[1], vol.shape[0]]
        data = np.ascontiguousarray(arr).astype(dt).tobytes()
        if encoding in ("gzip", "gz"):
            data = gzip.compress(data)
        lines = [f"NRRD000{version}", "# written by test_formats.py",
                 f"type: {type_name or 'short'}", f"dimension: {len(sizes)}", f"sizes: {' '.join(map(str, sizes))}",
                 f"encoding: {encoding}", "endian: " + ("big" if endian == ">" else "little")]
        if space:
            lines.append(f"space: {space}")
        if dirs is not None:
            lines.append("space directions: " + " ".join("none" if d is None else vec(d) for d in dirs))
        if origin is not None:
            lines.append(f"space origin: {vec(origin)}")
        lines += fields or []
        lines.append("comment:=a key/value pair: ignored")
        if detached:
            raw = name + (".raw.gz" if encoding != "raw" else ".raw")
            lines.append(f"data file: {os.path.basename(raw)}")
            self.write(raw, data)
            return self.write(name + ".nhdr", "\n".join(lines) + "\n")
        return self.write(name + ".nrrd", "\n".join(lines).encode() + b"\n\n" + data)

    def test_nrrd_every_type_endian_encoding(self):
        shape = (1, 3, 5, 7)
        R = rotation(0.3, -0.2, 0.5)
        sp = np.array([0.7, 1.3, 2.5])
        D = R * sp  # columns: the directions of x, y, z
        origin = [-12.5, 3.25, 40.0]
        want_aff = np.eye(4)
        want_aff[:3, :3] = np.diag([-1, -1, 1]) @ D
        want_aff[:3, 3] = np.diag([-1, -1, 1]) @ origin
        k = 0
        for dt, names, _ in TYPES:
            for endian in "<>":
                for encoding in ("raw", "gzip", "gz"):
                    if encoding == "gz" and endian == ">":
                        continue
                    vol = random_values(self.rng, dt, shape)
                    type_name = names[k % len(names)]
                    src = self.nrrd(f"t{k}", vol, endian=endian, encoding=encoding, detached=k % 3 == 1,
                                    type_name=type_name, dirs=[D[:, 0], D[:, 1], D[:, 2]], origin=origin,
                                    version=1 + k % 5)
                    self.check(src, vol, want_aff, sp[::-1], "nrrd", msg=f"{dt} {endian} {encoding} {type_name}")
                    k += 1

    def test_nrrd_4d_channels_first_interleaved(self):
        D = np.diag([1.5, 0.5, 2.0])
        for i, (enc, endian, kinds, dirs) in enumerate([
                ("raw", "<", "vector domain domain domain", True),
                ("gzip", ">", "list domain domain domain", True),
                ("raw", ">", None, True),                       # "none" direction alone says so
                ("gzip", "<", "list space space space", False),  # kinds alone, spacings
                ("raw", "<", "3-vector ??? ??? ???", False)]):
            vol = self.rng.integers(-30000, 30000, (3, 4, 5, 6)).astype(np.int16)
            fields = [f"kinds: {kinds}"] if kinds else []
            if not dirs:
                fields.append("spacings: nan 1.5 0.5 2")
            src = self.nrrd(f"c{i}", vol, "first", endian, enc, detached=i % 2 == 1, fields=fields,
                            space="RAS" if dirs else None,
                            dirs=[None, D[:, 0], D[:, 1], D[:, 2]] if dirs else None,
                            origin=[1, 2, 3] if dirs else None)
            want = np.eye(4)
            want[:3, :3] = D
            if dirs:
                want[:3, 3] = [1, 2, 3]
            self.check(src, vol, want, [2.0, 0.5, 1.5], msg=f"case {i}")

    def test_nrrd_4d_volumes_last(self):
        D = np.array([[0, 0, 2.0], [1.0, 0, 0], [0, 1.5, 0]])  # permuted axes
        for i, (enc, kinds, dirs) in enumerate([
                ("raw", "domain domain domain time", True),
                ("gzip", "space space space list", False),
                ("raw", None, False),    # no hint at all: X Y Z T as NIfTI
                ("gzip", None, True)]):  # the trailing "none" says so
            vol = self.rng.normal(0, 1, (2, 3, 4, 5)).astype(np.float32)
            fields = [f"kinds: {kinds}"] if kinds else []
            src = self.nrrd(f"v{i}", vol, "last", "<", enc, detached=i % 2 == 0, type_name="float", fields=fields,
                            space="RAS" if dirs else None,
                            dirs=[D[:, 0], D[:, 1], D[:, 2], None] if dirs else None)
            want = np.eye(4)
            if dirs:
                want[:3, :3] = D
            self.check(src, vol, want, [2.0, 1.5, 1.0] if dirs else [1, 1, 1], msg=f"case {i}")

    def test_nrrd_spaces_and_spacings(self):
        vol = self.rng.integers(0, 255, (1, 2, 3, 4)).astype(np.uint8)
        D = np.diag([0.5, 0.75, 3.0])
        o = [5.0, -6.0, 7.0]
        for space, flip in [("RAS", [1, 1, 1]), ("right-anterior-superior", [1, 1, 1]), ("LPS", [-1, -1, 1]),
                            ("Left-Posterior-Superior", [-1, -1, 1]), ("LAS", [-1, 1, 1]),
                            ("left-anterior-superior", [-1, 1, 1]), ("scanner-xyz", [1, 1, 1])]:
            src = self.nrrd("s", vol, type_name="uchar", space=space, dirs=list(D.T), origin=o)
            want = np.eye(4)
            want[:3, :3] = np.diag(flip) @ D
            want[:3, 3] = np.diag(flip) @ o
            self.check(src, vol, want, [3.0, 0.75, 0.5], msg=space)
        # only "space dimension", then no space at all (spacings, the .npy convention)
        src = self.nrrd("s", vol, type_name="uchar", space=None, dirs=list(D.T),
                        fields=["space dimension: 3"])
        want = np.eye(4)
        want[:3, :3] = D
        self.check(src, vol, want, [3.0, 0.75, 0.5])
        src = self.nrrd("s", vol, type_name="uchar", space=None, fields=["spacings: 0.5 -0.75 3"])
        want = np.diag([0.5, -0.75, 3.0, 1])
        self.check(src, vol, want, [3.0, 0.75, 0.5])

    def test_nrrd_skips_paths_and_header_forms(self):
        vol = self.rng.integers(-1000, 1000, (1, 3, 4, 5)).astype(np.int16)
        raw = vol[0].astype("<i2").tobytes()
        base = ["NRRD0005", "type: int16", "dimension: 3", "sizes: 5 4 3", "endian: little"]
        # a data file in a sub-folder, named relative to the header's folder, after 2 lines and 5 bytes
        self.write("h/d/data.raw", b"line one\nline two\nJUNK!" + raw)
        src = self.write("h/skip.nhdr", "\n".join(base + ["encoding: raw", "data file: d/data.raw",
                                                            "line skip: 2", "byte skip: 5"]) + "\n")
        self.check(src, vol)
        # byte skip -1: the data are the file's last bytes
        self.write("h/end.raw", os.urandom(37) + raw)
        src = self.write("h/end.nhdr", "\n".join(base + ["encoding: raw", "datafile: end.raw", "byteskip: -1"]))
        self.check(src, vol)
        # gzip: byte skip counts decompressed bytes, line skip the file's lines; two gzip members
        half = len(raw) // 2
        self.write("h/z.gz", b"# a line\n" + gzip.compress(b"skipped." + raw[:half]) + gzip.compress(raw[half:]))
        src = self.write("h/z.nhdr", "\n".join(base + ["encoding: gzip", "data file: z.gz", "line skip: 1",
                                                         "byte skip: 8"]) + "\n")
        self.check(src, vol)
        # an absolute data file path; CRLF line ends; comments and unknown fields
        abs_raw = self.write("abs.raw", raw)
        src = self.write("h/crlf.nhdr", "\r\n".join(base + ["# comment", "content: a test", "centers: cell cell cell",
                                                              "encoding: raw", f"data file: {abs_raw}"]) + "\r\n")
        self.check(src, vol)
        src = self.write("h/crlf.nrrd", ("\r\n".join(base + ["encoding: raw"]) + "\r\n\r\n").encode() + raw)
        self.check(src, vol)
        # a long header (over 1024 bytes) is kept whole
        src = self.write("long.nrrd", ("\n".join(base + ["encoding: raw"] + [f"k{i}:={'v' * 60}" for i in range(40)])
                                       + "\n\n").encode() + raw)
        self.check(src, vol)
        # int64 values that fit int32 are narrowed; ones that do not are an error
        big = vol.astype(np.int64)
        src = self.nrrd("i64", big, type_name="int64")
        self.check(src, big)
        big[0, 1, 2, 3] = 2**40
        src = self.nrrd("i64", big, type_name="int64", encoding="gzip")
        self.fails(src, src, "does not fit int32")

    def test_nrrd_malformed_and_unsupported(self):
        vol = self.rng.integers(-1000, 1000, (1, 3, 4, 5)).astype(np.int16)
        raw = vol[0].astype("<i2").tobytes()
        good = ["NRRD0004", "type: short", "dimension: 3", "sizes: 5 4 3", "endian: little", "encoding: raw"]

        def attached(name, lines, data=raw):
            return self.write(name, "\n".join(lines).encode() + b"\n\n" + data)

        self.check(attached("good.nrrd", good), vol)

        def bad(name, lines, expect=None, data=raw):
            src = attached(name, lines, data)
            return self.fails(src, src, expect)

        bad("magic.nrrd", ["NRRX0004"] + good[1:], "not a NRRD file")
        bad("magic6.nrrd", ["NRRD0006"] + good[1:], "bad NRRD magic")
        bad("binary.nrrd", [], data=os.urandom(300))
        bad("nosizes.nrrd", [x for x in good if not x.startswith("sizes")], "no \"sizes\" field")
        bad("notype.nrrd", [x for x in good if not x.startswith("type")], "no \"type\" field")
        bad("nodim.nrrd", [x for x in good if not x.startswith("dimension")], "no \"dimension\"")
        bad("fewsizes.nrrd", good[:3] + ["sizes: 5 4"] + good[4:], "lists 2 sizes")
        bad("zerosize.nrrd", good[:3] + ["sizes: 5 0 3"] + good[4:], "not a positive integer")
        bad("hugesize.nrrd", good[:3] + ["sizes: 99999999999 99999999999 99999999999"] + good[4:])
        bad("overflow.nrrd", good[:3] + ["sizes: 184467440737095516160 1 1"] + good[4:])
        bad("truncated.nrrd", good, "truncated", data=raw[:-3])
        bad("toolarge.nrrd", good[:3] + ["sizes: 5 4 4"] + good[4:], "truncated")
        bad("twice.nrrd", good + ["sizes: 5 4 3"], "given twice")
        bad("noendian.nrrd", [x for x in good if not x.startswith("endian")], "no \"endian\"")
        bad("endian.nrrd", good[:4] + ["endian: middle"] + good[5:])
        bad("line.nrrd", good + ["what is this"], "not \"field: value\"")
        bad("dirs.nrrd", good + ["space: RAS", "space directions: (1,0,0) (0,1,0) (0,0,nan)"])
        bad("dirs2.nrrd", good + ["space: RAS", "space directions: (1,0,0) (0,1,0)"])
        bad("dirs3.nrrd", good + ["space: RAS", "space directions: (1,0,0) (0,1,0) (1,1,0)"], "not independent")
        bad("origin.nrrd", good + ["space: RAS", "space origin: (1,2)"])
        bad("space.nrrd", good + ["space: upside-down"], "unknown space")
        src = self.write("noend.nrrd", "\n".join(good) + "\n")
        self.fails(src, src, "no empty line")
        # truncated and damaged gzip streams
        z = gzip.compress(raw)
        gz = good[:5] + ["encoding: gzip"]
        bad("gztrunc.nrrd", gz, "truncated", data=z[: len(z) // 2])
        bad("gztail.nrrd", gz, "truncated", data=z[:-4])
        damaged = bytearray(z)
        damaged[-6] ^= 0xFF  # the CRC
        bad("gzcrc.nrrd", gz, "corrupt gzip data", data=bytes(damaged))
        bad("gzshort.nrrd", gz, "end after", data=gzip.compress(raw[:-10]))
        bad("gzlong.nrrd", gz, "more than", data=gzip.compress(raw + b"extra"))
        bad("gznot.nrrd", gz, "corrupt gzip data", data=raw)
        # unsupported
        for enc in ("ascii", "text", "hex", "bzip2", "bz2", "zstd"):
            bad(f"enc-{enc}.nrrd", good[:5] + [f"encoding: {enc}"], f"encoding \"{enc}\" is not supported")
        for t in ("block", "char", "long double", "complex"):
            bad(f"type-{t}.nrrd", ["NRRD0004", f"type: {t}"] + good[2:], "is not supported")
        bad("dim2.nrrd", good[:2] + ["dimension: 2", "sizes: 5 12"] + good[4:], "2-d NRRD is not supported")
        bad("dim5.nrrd", good[:2] + ["dimension: 5", "sizes: 5 4 3 1 1"] + good[4:], "5-d NRRD is not supported")
        bad("rgb.nrrd", good[:2] + ["dimension: 4", "sizes: 3 5 4 1", "kinds: RGB-color domain domain domain"] +
            good[4:], "colour")
        bad("middle.nrrd", good[:2] + ["dimension: 4", "sizes: 5 3 4 1", "kinds: domain list domain domain"] +
            good[4:], "between spatial ones")
        bad("4space.nrrd", good[:2] + ["dimension: 4", "sizes: 5 4 3 1", "kinds: domain domain domain domain"] +
            good[4:], "4 spatial axes")
        bad("2dch.nrrd", good[:4] + ["kinds: vector domain domain"] + good[4:], "2-d image with channels")
        bad("time.nrrd", good + ["space: RAST"], "with time")
        bad("list.nrrd", good + ["data file: LIST", "a.raw", "b.raw"], "LIST")
        bad("multi.nrrd", good + ["data file: slice%03d.raw 1 3 1"], "numbered files")
        bad("skip.nrrd", good[:5] + ["encoding: gzip", "byte skip: -1"], "raw encoding only")
        # a detached data file that is missing or short names that file
        src = self.write("nodata.nhdr", "\n".join(good + ["data file: missing.raw"]) + "\n")
        self.fails(src, self.path("missing.raw"), "cannot open")
        self.write("short.raw", raw[:-1])
        src = self.write("short.nhdr", "\n".join(good + ["data file: short.raw"]) + "\n")
        self.fails(src, self.path("short.raw"), "truncated")
        src = self.write("nofile.nhdr", "\n".join(good) + "\n")
        self.fails(src, src, "needs a \"data file\"")
        self.fails(self.path("absent.nrrd"), self.path("absent.nrrd"), "cannot open")

    # ---- MetaImage --------------------------------------------------------

    def mha(self, name, vol, etype, msb=False, compressed=False, detached=False, layout="3d", geometry=None,
            fields=None, comp_size=True, prefix=b"", header_size=None):
        """Write vol (c, z, y, x) as MetaImage; returns the header's path."""
        dt = vol.dtype.newbyteorder(">" if msb else "<")
        if layout == "3d":
            arr, dims, nd = vol[0], [vol.shape[3], vol.shape[2], vol.shape[1]], 3
        elif layout == "channels":
            arr, dims, nd = vol.transpose(1, 2, 3, 0), [vol.shape[3], vol.shape[2], vol.shape[1]], 3
        else:
            arr, dims, nd = vol, [vol.shape[3], vol.shape[2], vol.shape[1], vol.shape[0]], 4
        data = np.ascontiguousarray(arr).astype(dt).tobytes()
        if compressed:
            data = zlib.compress(data)
        lines = ["ObjectType = Image", f"NDims = {nd}", "BinaryData = True",
                 f"BinaryDataByteOrderMSB = {msb}", f"CompressedData = {compressed}"]
        if compressed and comp_size:
            lines.append(f"CompressedDataSize = {len(data)}")
        lines += geometry or []
        lines += ["AnatomicalOrientation = RAI", f"DimSize = {' '.join(map(str, dims))}"]
        if layout == "channels":
            lines.append(f"ElementNumberOfChannels = {vol.shape[0]}")
        lines += fields or []
        if header_size is not None:
            lines.append(f"HeaderSize = {header_size}")
        lines.append(f"ElementType = {etype}")
        if detached:
            raw = name + (".zraw" if compressed else ".raw")
            self.write(raw, prefix + data)
            lines.append(f"ElementDataFile = {os.path.basename(raw)}")
            return self.write(name + ".mhd", "\n".join(lines) + "\n")
        lines.append("ElementDataFile = LOCAL")
        return self.write(name + ".mha", ("\n".join(lines) + "\n").encode() + data)

    def geometry(self, N=3, keys=("ElementSpacing", "Offset", "TransformMatrix")):
        R = rotation(-0.4, 0.25, 1.1)
        sp = np.array([0.8, 1.25, 3.0])
        off = np.array([-100.5, 20.25, 7.0])
        T = np.eye(N)
        T[:3, :3] = R.T  # ITK writes the direction of axis i as the i-th group of N numbers
        S = list(sp) + [1.0] * (N - 3)
        O = list(off) + [0.0] * (N - 3)
        lines = [f"{keys[0]} = {' '.join(map(repr, map(float, S)))}",
                 f"{keys[1]} = {' '.join(map(repr, map(float, O)))}",
                 f"{keys[2]} = {' '.join(map(repr, map(float, T.flatten())))}"]
        want = np.eye(4)
        flip = np.diag([-1.0, -1.0, 1.0])
        want[:3, :3] = flip @ R @ np.diag(sp)
        want[:3, 3] = flip @ off
        return lines, want, sp[::-1]

    def test_mha_every_type_endian_compression(self):
        lines, want_aff, spacing = self.geometry()
        k = 0
        types = TYPES + [("i4", None, "MET_LONG"), ("u4", None, "MET_ULONG"), ("u2", None, "MET_USHORT_ARRAY")]
        for dt, _, etype in types:
            for msb in (False, True):
                for compressed in (False, True):
                    vol = random_values(self.rng, dt, (1, 3, 5, 7))
                    src = self.mha(f"m{k}", vol, etype, msb, compressed, detached=k % 2 == 1, geometry=lines,
                                   comp_size=k % 4 != 2)
                    self.check(src, vol, want_aff, spacing, "metaimage", msg=f"{etype} msb={msb} z={compressed}")
                    k += 1

    def test_mha_channels_4d_and_synonyms(self):
        lines, want_aff, spacing = self.geometry(keys=("ElementSpacing", "Position", "Orientation"))
        for i, compressed in enumerate((False, True)):
            vol = self.rng.integers(0, 65535, (4, 3, 2, 5)).astype(np.uint16)
            src = self.mha(f"ch{i}", vol, "MET_USHORT", msb=i == 1, compressed=compressed, detached=i == 0,
                           layout="channels", geometry=lines)
            self.check(src, vol, want_aff, spacing, msg=f"channels {i}")
        lines4, want4, spacing4 = self.geometry(N=4, keys=("ElementSize", "Origin", "Rotation"))
        for i, compressed in enumerate((False, True)):
            vol = self.rng.normal(0, 1, (3, 2, 4, 5)).astype(np.float64)
            src = self.mha(f"t{i}", vol, "MET_DOUBLE", msb=i == 0, compressed=compressed, detached=i == 1,
                           layout="4d", geometry=lines4)
            self.check(src, vol, want4, spacing4, msg=f"4-d {i}")
        # no geometry: identity in LPS
        vol = self.rng.integers(-100, 100, (1, 2, 3, 4)).astype(np.int8)
        self.check(self.mha("plain", vol, "MET_CHAR"), vol, np.diag([-1.0, -1.0, 1.0, 1.0]), [1, 1, 1])

    def test_mha_header_size_and_paths(self):
        vol = self.rng.integers(-1000, 1000, (1, 3, 4, 5)).astype(np.int32)
        lines, want_aff, spacing = self.geometry()
        src = self.mha("hs", vol, "MET_INT", detached=True, prefix=b"x" * 19, header_size=19, geometry=lines)
        self.check(src, vol, want_aff, spacing)
        src = self.mha("hsz", vol, "MET_INT", compressed=True, detached=True, prefix=b"y" * 7, header_size=7)
        self.check(src, vol)
        src = self.mha("end", vol, "MET_INT", detached=True, prefix=os.urandom(33), header_size=-1)
        self.check(src, vol)
        src = self.mha("endz", vol, "MET_INT", compressed=True, detached=True, prefix=os.urandom(5), header_size=-1)
        self.check(src, vol)
        # a data file in a sub-folder; a .mhd with LOCAL data; a long header
        data = vol[0].astype("<i4").tobytes()
        self.write("sub/d/v.raw", data)
        hdr = ["ObjectType = Image", "NDims = 3", "DimSize = 5 4 3", "ElementType = MET_INT"]
        src = self.write("sub/v.mhd", "\n".join(hdr + ["ElementDataFile = d/v.raw"]) + "\n")
        self.check(src, vol)
        src = self.write("local.mhd", ("\r\n".join(hdr + ["ElementDataFile = LOCAL"]) + "\r\n").encode() + data)
        self.check(src, vol)
        src = self.write("long.mha", ("\n".join(hdr + [f"Comment{i} = {'c' * 70}" for i in range(30)] +
                                                ["ElementDataFile = LOCAL"]) + "\n").encode() + data)
        self.check(src, vol)

    def test_mha_malformed_and_unsupported(self):
        vol = self.rng.integers(-1000, 1000, (1, 3, 4, 5)).astype(np.int16)
        raw = vol[0].astype("<i2").tobytes()
        good = ["ObjectType = Image", "NDims = 3", "DimSize = 5 4 3", "BinaryData = True",
                "BinaryDataByteOrderMSB = False", "ElementType = MET_SHORT"]

        def local(name, lines, data=raw):
            return self.write(name, ("\n".join(lines + ["ElementDataFile = LOCAL"]) + "\n").encode() + data)

        self.check(local("good.mha", good), vol)

        def bad(name, lines, expect=None, data=raw):
            src = local(name, lines, data)
            return self.fails(src, src, expect)

        def without(key):
            return [x for x in good if not x.startswith(key)]

        bad("nodims.mha", without("DimSize"), "no DimSize")
        bad("nondims.mha", without("NDims"), "no NDims")
        bad("notype.mha", without("ElementType"), "no ElementType")
        bad("few.mha", without("DimSize") + ["DimSize = 5 4"], "is not 3 integers")
        bad("many.mha", without("DimSize") + ["DimSize = 5 4 3 2"], "is not 3 integers")
        bad("zero.mha", without("DimSize") + ["DimSize = 5 0 3"], "must be >= 1")
        bad("neg.mha", without("DimSize") + ["DimSize = 5 -4 3"], "must be >= 1")
        bad("huge.mha", without("DimSize") + ["DimSize = 99999999999 99999999999 99999999999"])
        bad("overflow.mha", without("DimSize") + ["DimSize = 5 4 99999999999999999999999"], "is not 3 integers")
        bad("truncated.mha", good, "truncated", data=raw[:-1])
        bad("twice.mha", good + ["NDims = 3"], "given twice")
        bad("spacing.mha", good + ["ElementSpacing = 1 nan 1"], "finite")
        bad("spacing0.mha", good + ["ElementSpacing = 1 0 1"], "is 0")
        bad("matrix.mha", good + ["TransformMatrix = 1 0 0 0 1 0 0 0"], "9 finite numbers")
        bad("singular.mha", good + ["TransformMatrix = 1 0 0 1 0 0 0 0 1"], "singular")
        bad("bool.mha", without("BinaryDataByteOrderMSB") + ["BinaryDataByteOrderMSB = Maybe"], "True nor False")
        bad("msb.mha", good + ["ElementByteOrderMSB = True"], "disagree")
        bad("line.mha", good + ["no equals sign here"], "not \"Key = Value\"")
        src = self.write("noend.mha", "\n".join(good) + "\n")
        self.fails(src, src, "no ElementDataFile")
        src = self.write("binary.mha", os.urandom(64).replace(b"=", b"-").replace(b"\n", b"-") + b"\n")
        self.fails(src, src)
        # damaged zlib streams
        z = zlib.compress(raw)
        zl = good + ["CompressedData = True"]
        bad("ztrunc.mha", zl, "truncated", data=z[: len(z) // 2])
        bad("ztail.mha", zl, "truncated", data=z[:-2])
        bad("zsize.mha", zl + [f"CompressedDataSize = {len(z) + 10}"], "truncated", data=z)
        damaged = bytearray(z)
        damaged[-1] ^= 0xFF  # the Adler-32
        bad("zadler.mha", zl, "corrupt zlib data", data=bytes(damaged))
        bad("zgzip.mha", zl, "corrupt zlib data", data=gzip.compress(raw))
        bad("zshort.mha", zl, "end after", data=zlib.compress(raw[:-2]))
        bad("zlong.mha", zl, "more than", data=zlib.compress(raw + b"!!"))
        # unsupported
        for t in ("MET_STRING", "MET_FLOAT_MATRIX", "MET_ASCII_CHAR", "MET_OTHER", "short"):
            bad(f"type-{t}.mha", without("ElementType") + [f"ElementType = {t}"], "is not supported")
        bad("ascii.mha", without("BinaryData ") + ["BinaryData = False"], "not supported")
        bad("object.mha", ["ObjectType = Tube"] + good[1:], "not an image")
        bad("dim2.mha", ["NDims = 2", "DimSize = 5 12"] + good[3:], "3-d and 4-d images are supported")
        bad("ch4d.mha", ["NDims = 4", "DimSize = 5 4 3 1", "ElementNumberOfChannels = 2"] + good[3:],
            "channels per element")
        src = self.write("list.mhd", "\n".join(good + ["ElementDataFile = LIST", "a.raw", "b.raw"]) + "\n")
        self.fails(src, src, "LIST")
        src = self.write("multi.mhd", "\n".join(good + ["ElementDataFile = s%03d.raw 1 3 1"]) + "\n")
        self.fails(src, src, "numbered files")
        # a separate data file that is missing or short names that file
        src = self.write("nodata.mhd", "\n".join(good + ["ElementDataFile = missing.raw"]) + "\n")
        self.fails(src, self.path("missing.raw"), "cannot open")
        self.write("short.raw", raw[:-1])
        src = self.write("short.mhd", "\n".join(good + ["ElementDataFile = short.raw"]) + "\n")
        self.fails(src, self.path("short.raw"), "truncated")
        src = self.write("hs.mhd", "\n".join(good + ["HeaderSize = 5", "ElementDataFile = short.raw"]) + "\n")
        self.fails(src, self.path("short.raw"), "truncated")
        big = np.full((1, 2, 2, 2), 2**33, np.uint64)
        src = self.mha("u64", big, "MET_ULONG_LONG", compressed=True)
        self.fails(src, src, "does not fit uint32")

    def test_nrrd_and_metaimage_as_channels(self):
        """A NRRD and a MetaImage of the same grid are channels of one case."""
        vol = self.rng.integers(0, 1000, (1, 3, 4, 5)).astype(np.int16)
        lines, want_aff, spacing = self.geometry()
        mha = self.mha("g", vol, "MET_SHORT", geometry=lines)
        D = np.diag([-1.0, -1.0, 1.0]) @ want_aff[:3, :3]  # back to LPS: columns are the directions
        o = np.diag([-1.0, -1.0, 1.0]) @ want_aff[:3, 3]
        nrrd = self.nrrd("g", vol * 2, type_name="short", dirs=list(D.T), origin=o)
        store = os.path.join(self.out, "two.vxt")
        run("convert", mha, nrrd, "-o", store)
        box = os.path.join(self.out, "box.npy")
        run("extract", store, "--start", "0,0,0,0", "--size", "2,3,4,5", "-o", box)
        np.testing.assert_array_equal(np.load(box), np.concatenate([vol, vol * 2]))


class FifoTest(unittest.TestCase):
    """A FIFO where a file is expected -- named by a hostile NRRD or MetaImage header, a NIfTI
    pair's .img, or given as the input or store -- is refused at once, never waited on (the
    fuzzing review found the converter blocking in open(2) forever)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="vt-fifo-")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def refused(self, *args):
        p = subprocess.run([VOXTILE, *args], capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("not a regular file", p.stderr)
        return p

    def test_fifos_are_refused(self):
        fifo = os.path.join(self.tmp, "data.raw")
        os.mkfifo(fifo)
        out = os.path.join(self.tmp, "o.vxt")
        nhdr = os.path.join(self.tmp, "h.nhdr")
        with open(nhdr, "w") as f:
            f.write("NRRD0004\ntype: uint8\ndimension: 3\nsizes: 2 2 2\nencoding: raw\ndata file: data.raw\n\n")
        p = self.refused("convert", nhdr, "-o", out)
        self.assertIn(fifo, p.stderr)
        mhd = os.path.join(self.tmp, "h.mhd")
        with open(mhd, "w") as f:
            f.write("ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\nElementType = MET_UCHAR\n"
                    "ElementDataFile = data.raw\n")
        self.refused("convert", mhd, "-o", out)
        for name in ("in.npy", "in.nii", "in.nii.gz", "s.vxt"):
            os.mkfifo(os.path.join(self.tmp, name))
        self.refused("convert", os.path.join(self.tmp, "in.npy"), "-o", out)
        self.refused("convert", os.path.join(self.tmp, "in.nii"), "-o", out)
        self.refused("convert", os.path.join(self.tmp, "in.nii.gz"), "-o", out)
        self.refused("info", os.path.join(self.tmp, "s.vxt"))
        # a NIfTI pair whose .img is a FIFO
        import struct
        hdr = bytearray(348)
        struct.pack_into("<i", hdr, 0, 348)
        struct.pack_into("<8h", hdr, 40, 3, 2, 2, 2, 1, 1, 1, 1)
        struct.pack_into("<hh", hdr, 70, 2, 8)
        struct.pack_into("<8f", hdr, 76, 1, 1, 1, 1, 1, 1, 1, 1)
        hdr[344:348] = b"ni1\0"
        with open(os.path.join(self.tmp, "pair.hdr"), "wb") as f:
            f.write(hdr)
        os.mkfifo(os.path.join(self.tmp, "pair.img"))
        self.refused("convert", os.path.join(self.tmp, "pair.hdr"), "-o", out)
        self.assertFalse(os.path.exists(out))


class RawTest(StoreCase):
    """Headerless files with the shape and dtype given on the command line."""

    prefix = "vt-raw-"
    seed = 3

    def test_raw_variants(self):
        a = self.rng.integers(-3000, 3000, (2, 5, 6, 7)).astype(np.int16)   # (c, z, y, x)
        seg = self.rng.integers(0, 4, (1, 5, 6, 7)).astype(np.uint8)
        for order, gz, offset in (("<", False, 0), (">", False, 37), ("<", True, 0)):
            with self.subTest(order=order, gz=gz, offset=offset):
                data = b"H" * offset + a.astype(order + "i2").tobytes()
                name = self.path("img.raw.gz" if gz else "img.raw")
                if gz:
                    with gzip.open(name, "wb") as f:
                        f.write(data)
                else:
                    with open(name, "wb") as f:
                        f.write(data)
                with open(self.path("seg.bin"), "wb") as f:  # the same layout: offset too
                    f.write(b"H" * offset + seg.tobytes())
                out = self.path("r.vxt")
                args = ["convert", name, "--seg", self.path("seg.bin"), "--raw-shape", "2,5,6,7",
                        "--raw-dtype", "int16", "--raw-spacing", "2.5,0.8,0.7", "-o", out]
                if offset:
                    args += ["--raw-offset", str(offset)]
                if order == ">":
                    args += ["--raw-big-endian"]
                run(*args)
                np.testing.assert_array_equal(self.read_array(out, "image"), a)
                np.testing.assert_array_equal(self.read_array(out, "seg"), seg)
                meta = json.loads(run("info", out, "--json").stdout)["metadata"]
                self.assertEqual(meta["spacing"], [2.5, 0.8, 0.7])
                np.testing.assert_allclose(np.array(meta["affine"]).reshape(4, 4), np.diag([0.7, 0.8, 2.5, 1.0]))

    def test_raw_errors(self):
        with open(self.path("short.raw"), "wb") as f:
            f.write(b"\0" * 99)
        out = self.path("x.vxt")
        p = run("convert", self.path("short.raw"), "--raw-shape", "5,5,4", "--raw-dtype", "uint8", "-o", out, ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr.startswith(f"voxtile: {self.path('short.raw')}:"), p.stderr)
        p = run("convert", self.path("short.raw"), "-o", out, ok=False)   # no shape given
        self.assertEqual(p.returncode, 1)
        self.assertIn("unknown image type", p.stderr)
        self.assertEqual(run("convert", self.path("short.raw"), "--raw-shape", "5,x", "-o", out, ok=False).returncode, 2)
        self.assertEqual(sorted(os.listdir(self.tmp)), ["short.raw"])


if __name__ == "__main__":
    unittest.main(verbosity=1)
