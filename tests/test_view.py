"""`voxtile view`: the HTTP API against the reader, its errors and limits, concurrency, shutdown,
and the page in a real browser (Debian's chromium, headless, driven by selenium).

Stores, converted here with the CLI:
- ct.vxt:     the bundled CT (int16) with its segmentation (uint8) and one pyramid level;
- scaled.vxt: a NIfTI written with nibabel: int16 with scl_slope 0.5 / scl_inter -200, an
              LAS affine with anisotropic voxels (0.8 x 0.8 x 2.5 mm: the level halves y and x only),
              its own label array;
- multi.vxt:  float32 (2, z, y, x) from .npy (two channels, no affine);
- half.vxt:   the same as float16.

Oracles: numpy slices of whole arrays read by the Python package (`read`: raw values, and with a
floating dtype the NIfTI scaling applied), or, where the package cannot be loaded (the sanitizer
build: VOXTILE_ORACLE=extract), by `voxtile extract`; nibabel for geometry; np.unique for labels.
The page's pixels are compared with the rules of docs/cli.md computed here with numpy.

Run: VOXTILE=build/tools/voxtile PYTHONPATH=python VOXTILE_LIB=build/libvoxtile.so \\
         /usr/bin/python3 tests/test_view.py [Api Server Browser]
"""
import base64
import concurrent.futures
import http.client
import io
import json
import math
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

import nibabel as nib
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cliutil import CT, SEG, VOXTILE, run  # noqa: E402

ORACLE = os.environ.get("VOXTILE_ORACLE", "python")
ARTEFACTS = os.environ.get("VOXTILE_ARTEFACTS") or tempfile.gettempdir()

LABEL_COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
                 (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
                 (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
                 (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (255, 255, 255)]
PRESETS = {"soft": (40, 400), "lung": (-600, 1500), "bone": (400, 1800), "brain": (40, 80)}
AXES = "zyx"


def label_colour(v):
    """docs/cli.md: 1..20 from the table, others by the golden angle in hue."""
    v = int(v)
    if 1 <= v <= 20:
        return LABEL_COLOURS[v - 1]
    h = math.fmod(abs(v) * 0.6180339887498949, 1.0) * 6
    i = int(h)
    f = h - i
    V, p, q, t = 0.95 * 255, 0.0, 0.95 * 255 * (1 - f), 0.95 * 255 * f
    rgb = [(V, t, p), (q, V, p), (p, V, t), (p, q, V), (t, p, V), (V, p, q)][i % 6]
    return tuple(int(math.floor(c + 0.5)) for c in rgb)


def js_round(x):
    """Math.round of the page: floor(x + 0.5)."""
    return np.floor(np.asarray(x, np.float64) + 0.5)


# ---- the stores and the oracle ---------------------------------------------------------------------

class Stores:
    """The four stores of the module docstring, made once."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.paths = {}
        ct = os.path.join(tmp, "ct.vxt")
        run("convert", CT, "--seg", SEG, "--levels", "1", "-q", "-o", ct)
        self.paths["ct"] = ct
        # an int16 NIfTI with scaling, LAS, anisotropic; its own labels
        rng = np.random.default_rng(5)
        z, y, x = np.meshgrid(np.arange(12), np.arange(40), np.arange(36), indexing="ij")
        raw = (np.sin(x / 5.0) * 300 + np.cos(y / 7.0) * 200 + z * 40 + rng.normal(0, 20, x.shape)).astype(np.int16)
        lab = ((x // 9 + 2 * (y // 10) + (z // 4) * 3) % 7).astype(np.uint8)
        lab[0] = 0
        lab[5, 10:20, 5:30] = 23  # a label beyond the table of 20
        self.affine = np.array([[-0.8, 0, 0, 30.0], [0, 0.8, 0, -12.0], [0, 0, 2.5, 40.0], [0, 0, 0, 1]])
        for name, vol, slope in (("s.nii", raw, (0.5, -200.0)), ("slab.nii", lab, None)):
            img = nib.Nifti1Image(np.ascontiguousarray(vol.transpose(2, 1, 0)), self.affine)
            img.set_qform(self.affine, code=1)
            img.set_sform(self.affine, code=1)
            if slope:
                img.header.set_slope_inter(*slope)
            nib.save(img, os.path.join(tmp, name))
        sc = os.path.join(tmp, "scaled.vxt")
        run("convert", os.path.join(tmp, "s.nii"), "--seg", os.path.join(tmp, "slab.nii"), "--levels", "1",
            "--tile", "4,16,16", "-q", "-o", sc)
        self.paths["scaled"] = sc
        # float32, two channels, no affine
        f = rng.normal(0, 1, (2, 9, 20, 26)).astype(np.float32) * 100
        f[1] = np.abs(f[1]) + 0.25
        f[0, 3, 4, 5] = np.nan
        np.save(os.path.join(tmp, "f.npy"), f)
        for key, extra in (("multi", []), ("half", ["--dtype", "float16"])):
            p = os.path.join(tmp, key + ".vxt")
            run("convert", os.path.join(tmp, "f.npy"), "--tile", "8,8,8", "-q", "-o", p, *extra)
            self.paths[key] = p
        self.order = ["ct", "scaled", "multi", "half"]
        self.oracle = Oracle(tmp)

    def path(self, key):
        return self.paths[key]


class Oracle:
    """Whole arrays of a store: raw (stored dtype) or scaled (float64), through the Python package's
    read or `voxtile extract`."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.memo = {}
        self.vt = None
        if ORACLE == "python":
            import voxtile
            self.vt = voxtile

    def info(self, path):
        return json.loads(run("info", path, "--json").stdout)

    def array(self, path, name, dtype=None):
        key = (path, name, dtype)
        if key not in self.memo:
            if self.vt is not None:
                with self.vt.open(path) as st:
                    a = st[name]
                    self.memo[key] = a.read((0,) * a.ndim, a.shape, dtype=dtype)
            else:
                shape = next(a["shape"] for a in self.info(path)["arrays"] if a["name"] == name)
                out = os.path.join(self.tmp, "oracle.npy")
                args = ["extract", path, "--array", name, "--start", ",".join("0" * len(shape)),
                        "--size", ",".join(map(str, shape)), "-o", out]
                if dtype is not None:
                    args += ["--dtype", dtype]
                run(*args)
                self.memo[key] = np.load(out)
                os.remove(out)
        return self.memo[key]


def take(arr, axis, index, channel=0):
    """numpy's slice of a (..., c, z, y, x) array: rows/cols as the API promises."""
    lead = arr.ndim - 3
    a = arr.reshape((-1,) + arr.shape[lead:])[channel] if lead else arr
    return a[index] if axis == "z" else a[:, index, :] if axis == "y" else a[:, :, index]


# ---- the server --------------------------------------------------------------------------------------

class Server:
    """`voxtile view STORES --port 0` with its port read from the first line it prints."""

    def __init__(self, paths, *extra, timeout=30, wrapper=()):
        self.proc = subprocess.Popen([*wrapper, VOXTILE, "view", *paths, "--port", "0", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self._line(timeout)
        m = re.search(r"serving (\d+) stores? at http://127\.0\.0\.1:(\d+)/", line)
        if not m:
            self.stop()
            raise AssertionError(f"unexpected first line {line!r}; stderr: {self.proc.stderr.read()}")
        self.port = int(m.group(2))
        self.url = f"http://127.0.0.1:{self.port}/"

    def _line(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            self.proc.kill()
            raise AssertionError("voxtile view printed nothing")
        return self.proc.stdout.readline()

    def stop(self, sig=signal.SIGINT, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("voxtile view did not stop on a signal")
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc, err

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def get(self, target, conn=None, method="GET", headers=None):
        """(status, headers, body bytes); conn reused when given (keep-alive)."""
        own = conn is None
        c = conn or self.conn()
        try:
            c.request(method, target, headers=headers or {})
            r = c.getresponse()
            body = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, body
        finally:
            if own:
                c.close()

    def json(self, target, status=200):
        st, h, body = self.get(target)
        if st != status:
            raise AssertionError(f"{target}: {st} {body[:300]!r}, wanted {status}")
        assert h["content-type"] == "application/json", h
        return json.loads(body)


def slice_url(store, array, axis, index, **kw):
    q = f"/api/slice?store={store}&array={array}&axis={axis}&index={index}"
    for k, v in kw.items():
        q += f"&{k}={v}"
    return q


def decode(body, headers):
    dt = headers["x-voxtile-dtype"]
    rows, cols = map(int, headers["x-voxtile-shape"].split(","))
    npdt = {"bfloat16": np.uint16}.get(dt, dt)
    return np.frombuffer(body, dtype=np.dtype(npdt).newbyteorder("<")).reshape(rows, cols), dt


def free_port_is(port):
    """The port can be bound again (SO_REUSEADDR, as any server would)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vt-view-")
        try:
            cls.st = Stores(cls.tmp)
            cls.srv = Server([cls.st.path(k) for k in cls.st.order])
        except BaseException:  # tearDownClass does not run after a failed setUpClass
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        rc, err = cls.srv.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert rc == 0, (rc, err)

    def arrays(self, key):
        return [a["name"] for a in self.st.oracle.info(self.st.path(key))["arrays"]]


# ---- the API -----------------------------------------------------------------------------------------

class Api(Base):
    def test_stores_list(self):
        j = self.srv.json("/api/stores")
        self.assertEqual([s["name"] for s in j["stores"]], [k + ".vxt" for k in self.st.order])
        self.assertEqual([s["id"] for s in j["stores"]], list(range(4)))
        for s, key in zip(j["stores"], self.st.order):
            self.assertEqual(s["arrays"], self.arrays(key))
            self.assertEqual(s["file_size"], os.path.getsize(self.st.path(key)))
            self.assertNotIn(self.tmp, json.dumps(s))  # names only, not where the files are

    def test_array_info_against_nibabel_and_numpy(self):
        ct = nib.load(CT)
        j = self.srv.json("/api/array?store=0&array=image")
        self.assertEqual(j["dtype"], "int16")
        self.assertEqual(j["shape"], [1] + list(ct.shape[::-1]))
        np.testing.assert_allclose(j["spacing"], ct.header.get_zooms()[::-1], rtol=1e-6)
        np.testing.assert_allclose(np.reshape(j["affine"], (4, 4)), ct.affine, rtol=1e-6, atol=1e-4)
        raw = self.st.oracle.array(self.st.path("ct"), "image")
        self.assertEqual((j["min"], j["max"]), (float(raw.min()), float(raw.max())))
        self.assertIsNone(j["scaling"])
        self.assertIsNone(j["labels"])
        self.assertEqual([(l["level"], l["name"]) for l in j["levels"]], [(0, "image"), (1, "image@1")])
        self.assertEqual(j["levels"][1]["spacing"], [6, 6, 6])
        # radiological flips: an axis whose index grows towards R, A or S
        codes = nib.aff2axcodes(ct.affine)  # voxel axes x, y, z
        self.assertEqual(j["flip"], [codes[2] in "RAS", codes[1] in "RAS", codes[0] in "RAS"])
        seg = self.srv.json("/api/array?store=0&array=seg")
        values, counts = np.unique(self.st.oracle.array(self.st.path("ct"), "seg"), return_counts=True)
        self.assertEqual(seg["labels"], [[int(v), int(c)] for v, c in zip(values, counts)])
        self.assertFalse(seg["labels_truncated"])
        lvl = self.srv.json("/api/array?store=0&array=seg&level=1")
        self.assertEqual((lvl["name"], lvl["base"], lvl["level"]), ("seg@1", "seg", 1))
        self.assertEqual(lvl["spacing"], [6, 6, 6])
        # scaled, LAS, anisotropic
        s = self.srv.json("/api/array?store=1&array=image")
        self.assertEqual(s["scaling"], {"slope": 0.5, "inter": -200.0})
        np.testing.assert_allclose(s["spacing"], [2.5, 0.8, 0.8], rtol=1e-6)
        self.assertEqual(s["flip"], [True, True, False])  # LAS: x grows to the left, y anterior, z superior
        self.assertEqual(s["levels"][1]["shape"], [1, 12, 20, 18])  # z (2.5 mm > 3 x 0.8) is not halved
        np.testing.assert_allclose(s["levels"][1]["spacing"], [2.5, 1.6, 1.6], rtol=1e-6)
        m = self.srv.json("/api/array?store=2&array=image")
        self.assertEqual((m["shape"], m["dtype"], m["affine"], m["flip"]), ([2, 9, 20, 26], "float32", None,
                                                                           [False, False, False]))
        self.assertEqual(self.srv.json("/api/array?store=3&array=image")["dtype"], "float16")

    def test_every_slice_equals_numpy(self):
        """Every store, array (levels too), axis and slice index, every channel."""
        c = self.srv.conn()
        n = 0
        for sid, key in enumerate(self.st.order):
            for name in self.arrays(key):
                arr = self.st.oracle.array(self.st.path(key), name)
                nchan = arr.shape[0]
                for ch in range(nchan):
                    for axis in AXES:
                        for index in range(arr.shape[1 + AXES.index(axis)]):
                            kw = {"channel": ch} if ch else {}
                            st, h, body = self.srv.get(slice_url(sid, name.replace("@", "%40"), axis, index, **kw),
                                                       conn=c)
                            self.assertEqual(st, 200, body[:200])
                            got, dt = decode(body, h)
                            self.assertEqual(dt, str(arr.dtype))
                            want = take(arr, axis, index, ch)
                            self.assertEqual(got.tobytes(), np.ascontiguousarray(want).tobytes(),
                                             (key, name, ch, axis, index))
                            n += 1
        c.close()
        self.assertGreater(n, 1000)

    def test_level_parameter_and_dtypes(self):
        st, h, body = self.srv.get(slice_url(0, "image", "y", 7, level=1))
        got, _ = decode(body, h)
        np.testing.assert_array_equal(got, take(self.st.oracle.array(self.st.path("ct"), "image@1"), "y", 7))
        # floating outputs are scaled as read() scales them; integer outputs are not
        for dtype in ("float64", "float32", "float16", "int32", "uint8"):
            for axis in AXES:
                st, h, body = self.srv.get(slice_url(1, "image", axis, 3, dtype=dtype))
                self.assertEqual(st, 200, body)
                got, dt = decode(body, h)
                self.assertEqual(dt, dtype)
                want = take(self.st.oracle.array(self.st.path("scaled"), "image", dtype), axis, 3)
                np.testing.assert_array_equal(got, want, (dtype, axis))
        scaled = self.st.oracle.array(self.st.path("scaled"), "image", "float64")
        raw = self.st.oracle.array(self.st.path("scaled"), "image")
        np.testing.assert_array_equal(scaled, raw * 0.5 - 200)
        # bfloat16: the upper half of the float32 bits
        st, h, body = self.srv.get(slice_url(2, "image", "z", 2, dtype="bfloat16", channel=1))
        got, dt = decode(body, h)
        f32 = take(self.st.oracle.array(self.st.path("multi"), "image"), "z", 2, 1)
        self.assertEqual(dt, "bfloat16")
        np.testing.assert_allclose((got.astype(np.uint32) << 16).view(np.float32), f32, rtol=2 ** -7)

    def test_errors_and_limits(self):
        """400 for malformed requests, 404 for what does not exist; always a JSON error; never a file."""
        cases = [
            # (target, status, words in the message)
            (slice_url(0, "image", "w", 0), 400, "axis"),
            (slice_url(0, "image", "zz", 0), 400, "axis"),
            (slice_url(0, "image", "", 0), 400, "axis"),
            (slice_url(0, "image", "Z", 0), 400, "axis"),
            ("/api/slice?store=0&array=image&index=0", 400, "missing parameter 'axis'"),
            ("/api/slice?store=0&array=image&axis=z", 400, "missing parameter 'index'"),
            ("/api/slice?array=image&axis=z&index=0", 400, "missing parameter 'store'"),
            ("/api/slice?store=0&axis=z&index=0", 400, "missing parameter 'array'"),
            (slice_url(0, "image", "z", 30), 404, "index 30 is past"),
            (slice_url(0, "image", "y", 101), 404, "past"),
            (slice_url(0, "image", "x", 122), 404, "past"),
            (slice_url(0, "image", "x", 121), 200, ""),
            (slice_url(0, "image", "z", -1), 400, "not an integer"),
            (slice_url(0, "image", "z", "+1"), 400, "not an integer"),
            (slice_url(0, "image", "z", "01"), 400, "not an integer"),
            (slice_url(0, "image", "z", "1e1"), 400, "not an integer"),
            (slice_url(0, "image", "z", "1.0"), 400, "not an integer"),
            (slice_url(0, "image", "z", "%201"), 400, "not an integer"),
            (slice_url(0, "image", "z", "0x1"), 400, "not an integer"),
            (slice_url(0, "image", "z", "99999999999999999999"), 400, "not an integer"),
            (slice_url(0, "image", "z", "9223372036854775808"), 400, "not an integer"),
            (slice_url(0, "image", "z", "9223372036854775807"), 404, "past"),
            (slice_url(0, "image", "z", ""), 400, "not an integer"),
            (slice_url(4, "image", "z", 0), 404, "no store 4"),
            (slice_url(99999, "image", "z", 0), 404, "no store"),
            (slice_url(-1, "image", "z", 0), 400, "not an integer"),
            (slice_url("../ct.vxt", "image", "z", 0), 400, "not an integer"),
            (slice_url("%2e%2e%2fct.vxt", "image", "z", 0), 400, "not an integer"),
            (slice_url("/etc/passwd", "image", "z", 0), 400, "not an integer"),
            (slice_url(0, "nope", "z", 0), 404, "no array \"nope\""),
            (slice_url(0, "../../../../etc/passwd", "z", 0), 404, "no array"),
            (slice_url(0, "/etc/passwd", "z", 0), 404, "no array"),
            (slice_url(0, "%2fetc%2fpasswd", "z", 0), 404, "no array"),
            (slice_url(0, "image%00x", "z", 0), 400, "not an array name"),
            (slice_url(0, "", "z", 0), 400, "not an array name"),
            (slice_url(0, "x" * 64, "z", 0), 400, "not an array name"),
            (slice_url(0, "image", "z", 0, level=2), 404, "no array \"image@2\""),
            (slice_url(0, "image", "z", 0, level=65), 400, "not an integer in 0..64"),
            (slice_url(0, "image", "z", 0, channel=1), 404, "channel 1 is past"),
            (slice_url(2, "image", "z", 0, channel=2), 404, "channel 2 is past"),
            (slice_url(0, "image", "z", 0, dtype="complex64"), 400, "not a dtype"),
            (slice_url(0, "image", "z", 0, dtype="float32%00"), 400, "not a dtype"),
            (slice_url(0, "image", "z", 0, path="/etc/passwd"), 400, "unknown parameter 'path'"),
            (slice_url(0, "image", "z", 0) + "&index=1", 400, "given twice"),
            ("/api/array?store=0&array=image&axis=z", 400, "unknown parameter"),
            ("/api/array?store=0", 400, "missing parameter 'array'"),
            ("/api/array?store=7&array=image", 404, "no store 7"),
            ("/api/stores?x=1", 400, "unknown parameter"),
            ("/api/slice?" + "&".join(f"k{i}=1" for i in range(17)), 400, "too many parameters"),
            ("/api", 404, "not found"),
            ("/api/", 404, "not found"),
            ("/api/slices", 404, "not found"),
            ("/etc/passwd", 404, "not found"),
            ("/../../../../etc/passwd", 404, "not found"),
            ("/%2e%2e/%2e%2e/%2e%2e/etc/passwd", 404, "not found"),
            ("/..%2f..%2f..%2fetc%2fpasswd", 404, "not found"),
            ("//etc/passwd", 404, "not found"),
            ("/view.js/../../../etc/passwd", 404, "not found"),
            ("/" + os.path.basename(self.st.path("ct")), 404, "not found"),
            (self.st.path("ct"), 404, "not found"),
            ("/index.html", 200, ""),
        ]
        conn = self.srv.conn()
        for target, status, words in cases:
            st, h, body = self.srv.get(target, conn=conn)
            self.assertEqual(st, status, (target, body[:300]))
            self.assertNotIn(b"root:", body)
            self.assertNotIn(b"VOXTILE\0", body)
            if status != 200:
                self.assertEqual(h["content-type"], "application/json", target)
                j = json.loads(body)
                self.assertEqual(j["status"], status)
                self.assertIn(words, j["error"], target)
        conn.close()
        # an array name from the request is echoed escaped: valid JSON whatever the bytes
        st, h, body = self.srv.get(slice_url(0, "%22%5c%01%ff%e2%82%ac", "z", 0))
        self.assertEqual(st, 404)
        self.assertIn('\\"\\\\\\u0001\\ufffd\u20ac', json.loads(body)["error"])
        # methods other than GET/HEAD; HEAD answers the headers only
        for method in ("POST", "PUT", "DELETE", "OPTIONS"):
            st, h, body = self.srv.get("/api/stores", method=method)
            self.assertEqual(st, 405, method)
            self.assertEqual(h["allow"], "GET, HEAD")
        st, h, body = self.srv.get(slice_url(0, "image", "z", 3), method="HEAD")
        self.assertEqual((st, body, h["content-length"]), (200, b"", str(101 * 122 * 2)))
        # DNS rebinding: a server on a loopback address answers only loopback host names
        for host, status in (("evil.example", 403), ("localhost:9999", 200), ("127.0.0.1", 200),
                             ("[::1]:8800", 200), ("127.9.9.9:1", 200), ("localhost.evil.example", 403),
                             ("[::2]", 403), ("", 403)):
            st, h, body = self.srv.get("/api/stores", headers={"Host": host})
            self.assertEqual(st, status, host)

    def test_random_requests(self):
        """Hundreds of random targets: every answer is 200, 400 or 404 (JSON for errors), or the HTTP
        library's own refusal of an oversized request; the server answers on."""
        r = random.Random(11)
        pieces = ["0", "1", "3", "-1", "01", "+2", "", " ", "%00", "%ff", "%2e%2e%2f", "..", "/", "image", "seg",
                  "image@1", "z", "y", "x", "float32", "bfloat16", "9" * 25, "18446744073709551616", "1e3",
                  "%22%5c", "&", "=", "?", "#", "%0d%0aX-Injected:%201", "%c3%a9"]
        keys = ["store", "array", "axis", "index", "level", "channel", "dtype", "", "x", "store%00"]
        routes = ["/api/slice", "/api/array", "/api/stores", "/", "/view.js", "/api", "/api/slice/", "/x"]
        conn = self.srv.conn()
        statuses = {}
        for i in range(600):
            q = "&".join(f"{r.choice(keys)}={''.join(r.choice(pieces) for _ in range(r.randrange(3)))}"
                         for _ in range(r.randrange(9)))
            if i % 100 == 99:
                q += "&pad=" + "a" * r.choice((1000, 70000))
            target = r.choice(routes) + ("?" + q if q or r.random() < 0.5 else "")
            try:
                st, h, body = self.srv.get(target.replace(" ", "%20"), conn=conn)
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                conn = self.srv.conn()
                continue
            statuses[st] = statuses.get(st, 0) + 1
            self.assertIn(st, (200, 400, 404, 413, 414, 431), target)
            self.assertNotIn("x-injected", h)
            if st in (400, 404):
                self.assertEqual(json.loads(body)["status"], st)
            if st in (413, 414, 431):
                conn.close()
                conn = self.srv.conn()
        conn.close()
        self.assertGreater(statuses.get(400, 0), 100, statuses)
        self.assertEqual(self.srv.json("/api/stores")["stores"][0]["name"], "ct.vxt")

    def test_page_files(self):
        for target, ctype, words in (("/", "text/html", b"<canvas"), ("/view.js", "text/javascript", b"fetch("),
                                     ("/view.css", "text/css", b"canvas")):
            st, h, body = self.srv.get(target)
            self.assertEqual(st, 200)
            self.assertTrue(h["content-type"].startswith(ctype), h)
            self.assertIn(words, body)
            self.assertEqual(h["x-content-type-options"], "nosniff")
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "view", "view.js"),
                  "rb") as f:
            self.assertEqual(self.srv.get("/view.js")[2], f.read())  # embedded verbatim
        self.assertIn("default-src 'none'", self.srv.get("/")[1]["content-security-policy"])

    def test_eight_concurrent_clients(self):
        """8 clients, each on its own keep-alive connection, read random slices; every answer is checked."""
        jobs = []
        rng = random.Random(7)
        for sid, key in enumerate(self.st.order):
            for name in self.arrays(key):
                arr = self.st.oracle.array(self.st.path(key), name)
                jobs.append((sid, key, name, arr))

        def client(seed):
            r = random.Random(seed)
            conn = self.srv.conn()
            done = 0
            sock = None
            try:
                for _ in range(60):
                    sid, key, name, arr = r.choice(jobs)
                    axis = r.choice(AXES)
                    index = r.randrange(arr.shape[1 + AXES.index(axis)])
                    ch = r.randrange(arr.shape[0])
                    st, h, body = self.srv.get(slice_url(sid, name.replace("@", "%40"), axis, index, channel=ch),
                                               conn=conn)
                    if st != 200:
                        return f"{key} {name} {axis} {index}: {st} {body[:200]!r}"
                    got, _ = decode(body, h)
                    if got.tobytes() != np.ascontiguousarray(take(arr, axis, index, ch)).tobytes():
                        return f"{key} {name} {axis} {index} ch {ch}: wrong voxels"
                    if sock is not None and conn.sock is not sock:
                        return "the connection was not kept alive"
                    sock = conn.sock
                    done += 1
            finally:
                conn.close()
            return done

        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            results = list(ex.map(client, [rng.randrange(1 << 30) for _ in range(8)]))
        self.assertEqual(results, [60] * 8)


# ---- the process: options, damaged stores, shutdown ----------------------------------------------

class Process(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vt-view-srv-")
        cls.ct = os.path.join(cls.tmp, "ct.vxt")
        run("convert", CT, "--seg", SEG, "-q", "-o", cls.ct)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_usage_and_open_errors(self):
        p = run("view", ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("expected one or more stores", p.stderr)
        for bad in ("70000", "-1", "http", ""):
            p = run("view", self.ct, "--port", bad, ok=False)
            self.assertEqual(p.returncode, 2, bad)
        p = run("view", self.ct, os.path.join(self.tmp, "missing.vxt"), "--port", "0", ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("missing.vxt", p.stderr)
        p = run("view", CT, "--port", "0", ok=False)  # not a store
        self.assertEqual(p.returncode, 1)
        self.assertIn("example_ct_sm.nii.gz", p.stderr)
        h = run("view", "--help").stdout
        self.assertIn("0.0.0.0", h)
        self.assertRegex(h, r"lets anyone who\s+can reach it read every array")
        # a port in use
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        try:
            p = run("view", self.ct, "--port", str(s.getsockname()[1]), ok=False)
        finally:
            s.close()
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot listen", p.stderr)
        p = run("view", self.ct, "--host", "no such host name", "--port", "0", ok=False)
        self.assertEqual(p.returncode, 1)

    def test_sigint_and_sigterm_stop_cleanly(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            srv = Server([self.ct])
            conn = srv.conn()
            st, h, body = srv.get(slice_url(0, "image", "z", 5), conn=conn)  # a keep-alive connection stays open
            self.assertEqual(st, 200)
            self.assertFalse(free_port_is(srv.port))
            rc, err = srv.stop(sig)
            conn.close()
            self.assertEqual(rc, 0, err)
            self.assertIn("stopping", err)
            self.assertTrue(free_port_is(srv.port), "the port is still taken after the server stopped")

    @unittest.skipIf(ORACLE != "python", "the Python package writes the store")
    def test_hostile_names_and_metadata(self):
        """Names with quotes, backslashes, control characters and markup; NaN, negative and huge
        spacings and affines: valid JSON, no crash, slices still right."""
        import voxtile
        path = os.path.join(self.tmp, "hostile.vxt")
        names = ['a"b\\c\x01\x7f</script><b>é', "img@0", "@1", "x@2"]
        vol = np.arange(3 * 4 * 5, dtype=np.int16).reshape(1, 3, 4, 5)
        with voxtile.Writer(path) as w:
            for name in names:
                ident = w.add_array(name, vol.shape, "int16")
                w.write(ident, (0, 0, 0, 0), vol)
            w.set_meta("format", "nifti1")
            w.set_meta("spacing", [float("nan"), -3.0, 1e308])
            w.set_meta("affine", [float("nan")] * 4 + [1e308] * 4 + [-0.0] * 8)
            w.set_meta("x@2.spacing", [0.0, 0.0, 0.0])
            w.set_meta("scl_slope", [float("inf")])
        srv = Server([path])
        try:
            j = srv.json("/api/stores")
            self.assertEqual(j["stores"][0]["arrays"], names)
            for name in names:
                q = urllib.parse.quote(name, safe="")
                info = srv.json(f"/api/array?store=0&array={q}")
                self.assertEqual(info["name"], name)
                self.assertEqual(len(info["spacing"]), 3)
                for axis in AXES:
                    for k in range(vol.shape[1 + AXES.index(axis)]):
                        st, h, body = srv.get(slice_url(0, q, axis, k))
                        self.assertEqual(st, 200)
                        np.testing.assert_array_equal(decode(body, h)[0], take(vol, axis, k))
            self.assertEqual(srv.json("/api/array?store=0&array=x&level=2")["level"], 2)
        finally:
            self.assertEqual(srv.stop()[0], 0)

    def test_damaged_tile_is_an_error_not_a_crash(self):
        """A tile whose bytes changed: the slices crossing it answer 500 naming it, the others 200."""
        bad = os.path.join(self.tmp, "bad.vxt")
        with open(self.ct, "rb") as f:
            raw = bytearray(f.read())
        info = json.loads(run("info", self.ct, "--json").stdout)
        tiles = run("dump", self.ct, "--tiles", "--array", "image").stdout
        # the first stored tile of the image: flip a byte in the middle of its bytes
        for line in tiles.splitlines():
            f = line.split()
            if f and f[0].isdigit() and f[2] != "-":
                coords, off, size = f[1], int(f[2]), int(f[3])
                break
        raw[off + size // 2] ^= 0x40
        with open(bad, "wb") as f:
            f.write(raw)
        tz = info["arrays"][0]["tile"][1]
        z0 = int(coords.split(",")[1]) * tz
        srv = Server([bad])
        try:
            st, h, body = srv.get(slice_url(0, "image", "z", z0))
            self.assertEqual(st, 500, body)
            self.assertIn("tile", json.loads(body)["error"])
            for _ in range(3):  # still serving, the same answer, the other slices fine
                self.assertEqual(srv.get(slice_url(0, "image", "z", z0))[0], 500)
                self.assertEqual(srv.get(slice_url(0, "image", "z", z0 + tz if z0 + tz < 30 else 0))[0], 200)
            self.assertEqual(srv.get(slice_url(0, "seg", "z", z0))[0], 200)
        finally:
            rc, err = srv.stop()
        self.assertEqual(rc, 0)
        self.assertIn("500", err)  # server errors are logged


# ---- the page in chromium ---------------------------------------------------------------------------

def start_chromium(width=1400, height=900):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="vt-view-chromium-")
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-extensions", "--disable-dev-shm-usage", "--force-device-scale-factor=1",
              f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        opts.add_argument(a)
    try:
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                                  options=opts)
    except BaseException:
        shutil.rmtree(profile, ignore_errors=True)
        raise
    return driver, profile


class Browser(Base):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.driver, cls.profile = start_chromium()
        except BaseException:
            super().tearDownClass()
            raise
        cls.driver.set_script_timeout(30)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.driver.quit()
        finally:
            shutil.rmtree(cls.profile, ignore_errors=True)
            super().tearDownClass()

    # -- helpers

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def wait(self, cond, what, timeout=30):
        t = time.time()
        while time.time() - t < timeout:
            v = cond()
            if v:
                return v
            time.sleep(0.05)
        status = self.js("return document.getElementById('status').textContent")
        self.fail(f"timed out waiting for {what} (page status: {status!r})")

    def canvas(self, axis):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.ID, f"view-{axis}")

    def data(self, axis):
        return self.js("return Object.assign({}, arguments[0].dataset, {w: arguments[0].width, "
                       "h: arguments[0].height})", self.canvas(axis))

    def pixels(self, axis):
        from PIL import Image
        url = self.js("return arguments[0].toDataURL('image/png')", self.canvas(axis))
        im = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        return np.asarray(im.convert("RGB")).astype(np.int32)

    def wait_full(self, axis, index=None, draws_after=None):
        """Until the view shows the full-resolution level (image and labels) of slice index."""
        def ok():
            d = self.data(axis)
            if d.get("level") != "0" or (self.js("return !!window.voxtileView.overlay") and
                                          d.get("overlayLevel") != "0"):
                return None
            if index is not None and d.get("index") != str(index):
                return None
            if draws_after is not None and int(d.get("draws", 0)) <= draws_after:
                return None
            return d
        return self.wait(ok, f"view {axis} at level 0" + (f", slice {index}" if index is not None else ""))

    def open_page(self, store=0):
        self.driver.get(self.srv.url)
        self.wait(lambda: self.js("return document.body.dataset.ready") == "1", "the first drawing")
        if store:
            from selenium.webdriver.support.ui import Select
            from selenium.webdriver.common.by import By
            Select(self.driver.find_element(By.ID, "case")).select_by_value(str(store))
            self.wait(lambda: self.js("return document.body.dataset.ready") == "1" and
                      self.js("return window.voxtileView.store") == store, "the second case")

    def expected(self, key, axis, index, d, wc, ww, alpha=0.5, overlay="seg", grid=False, image="image",
                 channel=0):
        """The view's RGB pixels by docs/cli.md's rules, at the canvas size the page chose."""
        path = self.st.path(key)
        raw = take(self.st.oracle.array(path, image), axis, index, channel)
        info = self.srv.json(f"/api/array?store={self.st.order.index(key)}&array={image}")
        h, w = int(d["h"]), int(d["w"])
        nr, nc = raw.shape
        rax, cax = {"z": (1, 2), "y": (0, 2), "x": (0, 1)}[axis]
        ri = np.minimum(nr - 1, np.floor((np.arange(h) + 0.5) * nr / h).astype(np.int64))
        ci = np.minimum(nc - 1, np.floor((np.arange(w) + 0.5) * nc / w).astype(np.int64))
        if info["flip"][rax]:
            ri = nr - 1 - ri
        if info["flip"][cax]:
            ci = nc - 1 - ci
        v = raw[np.ix_(ri, ci)].astype(np.float64)
        if info["labels"] is not None:  # a label array drawn on its own
            rgb = np.zeros((h, w, 3))
            for L in np.unique(v):
                if L != 0:
                    rgb[v == L] = label_colour(L)
        else:
            if info["scaling"]:
                v = v * info["scaling"]["slope"] + info["scaling"]["inter"]
            g = np.clip(js_round((v - (wc - ww / 2)) / ww * 255), 0, 255)
            g[np.isnan(v)] = 0
            rgb = np.repeat(g[:, :, None], 3, axis=2)
        if overlay:
            lab = take(self.st.oracle.array(path, overlay), axis, index)[np.ix_(ri, ci)]
            for L in np.unique(lab):
                if L == 0:
                    continue
                m = lab == L
                col = np.array(label_colour(L), np.float64)
                rgb[m] = js_round((1 - alpha) * rgb[m] + alpha * col)
        if grid:
            tile = info["tile"][-3:]
            for b in range(tile[rax], nr, tile[rax]):
                db = nr - b if info["flip"][rax] else b
                u = math.ceil(db * h / nr - 1e-9)
                rgb[u, :] = js_round(0.4 * rgb[u, :] + 0.6 * np.array([255, 230, 0]))
            for b in range(tile[cax], nc, tile[cax]):
                db = nc - b if info["flip"][cax] else b
                x = math.ceil(db * w / nc - 1e-9)
                rgb[:, x] = js_round(0.4 * rgb[:, x] + 0.6 * np.array([255, 230, 0]))
        return rgb.astype(np.int32)

    def assert_view(self, key, axis, draws_after=None, **kw):
        d = self.wait_full(axis, kw.pop("index", None), draws_after)
        want = self.expected(key, axis, int(d["index"]), d, float(d["wc"]), float(d["ww"]),
                             alpha=float(d["alpha"]), **kw)
        got = self.pixels(axis)
        self.assertEqual(got.shape, want.shape, axis)
        diff = np.abs(got - want)
        self.assertLessEqual(int(diff.max()), 1, f"view {axis}: {int((diff > 1).sum())} pixels differ by more than 1")
        return d

    # -- the tests

    def test_1_first_drawing_equals_numpy(self):
        self.open_page()
        mm = []
        for axis in AXES:
            d = self.assert_view("ct", axis)
            n = {"z": 30, "y": 101, "x": 122}[axis]
            self.assertEqual(int(d["index"]), n // 2)  # the middle slice, as preview
            self.assertEqual((float(d["wc"]), float(d["ww"])), PRESETS["soft"])  # CT opens with soft tissue
            # physical aspect: one scale for the three views (3 mm isotropic: square voxels)
            rows, cols = int(d["rows"]), int(d["cols"])
            mm.append((rows * 3 / int(d["h"]), cols * 3 / int(d["w"])))
        for a, b in mm:
            self.assertAlmostEqual(a, mm[0][0], delta=0.05)
            self.assertAlmostEqual(b, mm[0][0], delta=0.05)
        # the coarse level was asked for too (shown while the full one loads)
        names = self.js("return performance.getEntriesByType('resource').map(e => e.name)")
        self.assertTrue(any("array=image%401" in n for n in names), names[:20])
        self.assertTrue(any("array=seg%401" in n for n in names))
        legend = self.js("return [...document.querySelectorAll('#legend .item')].map(e => e.dataset.value)")
        values = np.unique(self.st.oracle.array(self.st.path("ct"), "seg"))
        self.assertEqual(legend, [str(int(v)) for v in values if v != 0])

    def test_2_wheel_and_keys_move_slices(self):
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
        from selenium.webdriver.common.keys import Keys
        self.open_page()
        for axis, n in (("z", 30), ("x", 122)):
            d0 = self.wait_full(axis)
            k = int(d0["index"])
            before = self.pixels(axis)
            ActionChains(self.driver).scroll_from_origin(ScrollOrigin.from_element(self.canvas(axis)), 0, -100) \
                .perform()  # wheel up: next slice
            self.assert_view("ct", axis, index=k + 1)
            self.assertFalse(np.array_equal(before, self.pixels(axis)))
            ActionChains(self.driver).scroll_from_origin(ScrollOrigin.from_element(self.canvas(axis)), 0, 100) \
                .perform()
            ActionChains(self.driver).scroll_from_origin(ScrollOrigin.from_element(self.canvas(axis)), 0, 100) \
                .perform()
            self.assert_view("ct", axis, index=k - 1)
            ActionChains(self.driver).move_to_element(self.canvas(axis)).send_keys(Keys.ARROW_UP).perform()
            self.assert_view("ct", axis, index=k)
            ActionChains(self.driver).send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN, Keys.ARROW_LEFT).perform()
            self.assert_view("ct", axis, index=k - 3)
            ActionChains(self.driver).send_keys(Keys.PAGE_UP).perform()
            self.assert_view("ct", axis, index=k + 7)
            ActionChains(self.driver).send_keys(Keys.END).perform()
            self.assert_view("ct", axis, index=n - 1)
            ActionChains(self.driver).send_keys(Keys.ARROW_UP).perform()  # stays at the last slice
            time.sleep(0.2)
            self.assertEqual(self.data(axis)["index"], str(n - 1))
            ActionChains(self.driver).send_keys(Keys.HOME).perform()
            self.assert_view("ct", axis, index=0)
        self.assertEqual(self.data("y")["index"], "50")  # the other views did not move

    def test_3_window_presets_drag_opacity_grid(self):
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select
        self.open_page()
        preset = Select(self.driver.find_element(By.ID, "preset"))
        for name in ("bone", "lung", "brain", "soft"):
            preset.select_by_value(name)
            self.wait(lambda: self.data("z")["wc"] == str(PRESETS[name][0]), name)
            for axis in AXES:
                d = self.assert_view("ct", axis)
                self.assertEqual((float(d["wc"]), float(d["ww"])), PRESETS[name])
        # auto: 1st and 99th percentiles of the axial slice shown (every voxel: the slice is small)
        preset.select_by_value("auto")
        d = self.wait(lambda: self.data("z")["wc"] != "40" and self.data("z"), "auto")
        sl = np.sort(take(self.st.oracle.array(self.st.path("ct"), "image"), "z", int(d["index"])).ravel()
                     .astype(np.float64))
        lo, hi = sl[int(0.01 * (sl.size - 1))], sl[int(0.99 * (sl.size - 1))]
        self.assertEqual((float(d["wc"]), float(d["ww"])), ((lo + hi) / 2, hi - lo))
        self.assert_view("ct", "y")
        preset.select_by_value("range")
        img = self.st.oracle.array(self.st.path("ct"), "image")
        self.wait(lambda: float(self.data("z")["ww"]) == float(img.max()) - float(img.min()), "range")
        self.assert_view("ct", "z")
        # a drag changes the window: right wider, down raises the centre
        preset.select_by_value("soft")
        self.wait(lambda: self.data("z")["ww"] == "400", "soft")
        ActionChains(self.driver).move_to_element(self.canvas("z")).click_and_hold().move_by_offset(100, 64) \
            .release().perform()
        d = self.wait(lambda: self.data("z")["ww"] != "400" and self.data("z"), "the drag")
        self.assertEqual(preset.first_selected_option.get_attribute("value"), "custom")
        self.assertAlmostEqual(float(d["ww"]), 800, delta=20)
        self.assertAlmostEqual(float(d["wc"]), 40 - 64 * 400 / 256, delta=5)
        self.assert_view("ct", "x")
        # opacity 1: the labels in their own colours; 0: no labels
        for alpha in ("1", "0", "0.35"):
            self.js("const a = document.getElementById('alpha'); a.value = arguments[0];"
                    "a.dispatchEvent(new Event('input'))", alpha)
            self.wait(lambda: self.data("z")["alpha"] == alpha, "opacity")
            self.assert_view("ct", "z")
        # the tile grid
        self.driver.find_element(By.ID, "grid").click()
        self.wait(lambda: self.data("y")["grid"] == "1", "grid")
        for axis in AXES:
            self.assert_view("ct", axis, grid=True)
        self.driver.find_element(By.ID, "grid").click()
        # no overlay
        Select(self.driver.find_element(By.ID, "overlay")).select_by_value("")
        self.wait(lambda: self.data("z")["overlayLevel"] == "", "no overlay")
        self.assert_view("ct", "z", overlay=None)

    def test_4_hover_shows_voxel_world_value_label(self):
        from selenium.webdriver.common.action_chains import ActionChains
        self.open_page()
        ct = nib.load(CT)
        img = self.st.oracle.array(self.st.path("ct"), "image")
        seg = self.st.oracle.array(self.st.path("ct"), "seg")
        checked = 0
        for axis in AXES:
            d = self.wait_full(axis)
            h, w, nr, nc = int(d["h"]), int(d["w"]), int(d["rows"]), int(d["cols"])
            for fu, fx in ((0.5, 0.5), (0.3, 0.7), (0.62, 0.41)):
                # aim at the centre of a voxel's block of pixels
                r, c = int(fu * nr), int(fx * nc)
                u = int((r + 0.5) * h / nr)
                x = int((c + 0.5) * w / nc)
                ActionChains(self.driver).move_to_element_with_offset(self.canvas(axis), x - w // 2, u - h // 2) \
                    .perform()
                hv = self.wait(lambda: self.js("return Object.assign({}, document.getElementById('hover').dataset)")
                               if self.js("return document.getElementById('hover').dataset.voxel") else None, "hover")
                c_, z, y, xx = map(int, hv["voxel"].split(","))
                info = self.srv.json("/api/array?store=0&array=image")
                rax, cax = {"z": (1, 2), "y": (0, 2), "x": (0, 1)}[axis]
                vox = [0, 0, 0]
                vox[AXES.index(axis)] = int(d["index"])
                vox[rax] = nr - 1 - r if info["flip"][rax] else r
                vox[cax] = nc - 1 - c if info["flip"][cax] else c
                self.assertEqual([z, y, xx], vox, (axis, fu, fx, hv))
                self.assertEqual(float(hv["value"]), float(img[0, z, y, xx]))
                self.assertEqual(int(hv["label"]), int(seg[0, z, y, xx]))
                world = ct.affine @ [xx, y, z, 1]
                np.testing.assert_allclose([float(t) for t in hv["world"].split(",")], world[:3], atol=0.006)
                text = self.js("return document.getElementById('hover').textContent")
                self.assertIn(f"value {int(img[0, z, y, xx])}", text)
                self.assertIn(f"z {z}  y {y}  x {xx}", text)
                checked += 1
        self.assertEqual(checked, 9)
        # over the liver (label 5) in the axial view: the legend marks it; the picture of the page
        # for people (README, docs/cli.md) is taken there
        d = self.wait_full("z")
        k = int(d["index"])
        h, w, nr, nc = int(d["h"]), int(d["w"]), int(d["rows"]), int(d["cols"])
        ys, xs = np.nonzero(seg[0, k] == 5)
        i = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
        r, c = nr - 1 - ys[i], nc - 1 - xs[i]  # the axial view flips both (RAS)
        ActionChains(self.driver).move_to_element_with_offset(
            self.canvas("z"), int((c + 0.5) * w / nc) - w // 2, int((r + 0.5) * h / nr) - h // 2).perform()
        self.wait(lambda: self.js("return document.getElementById('hover').dataset.label") == "5", "label 5")
        self.assertEqual(self.js("return [...document.querySelectorAll('#legend .item.on')].map(e => "
                                 "e.dataset.value)"), ["5"])
        path = os.path.join(ARTEFACTS, "view.png")
        self.driver.save_screenshot(path)
        print(f"\nscreenshot: {path}", file=sys.stderr)

    def test_5_case_switcher_scaled_anisotropic_store(self):
        """The second case: scaled int16 (hover shows HU = raw * 0.5 - 200), LAS, 0.8 x 0.8 x 2.5 mm."""
        from selenium.webdriver.common.action_chains import ActionChains
        self.open_page(store=1)
        raw = self.st.oracle.array(self.st.path("scaled"), "image")
        for axis in AXES:
            d = self.assert_view("scaled", axis)
            # physical aspect: pixels per mm equal along rows and columns
            sp = {"z": 2.5, "y": 0.8, "x": 0.8}
            r_ax, c_ax = {"z": "yx", "y": "zx", "x": "zy"}[axis]
            mm_r = int(d["rows"]) * sp[r_ax] / int(d["h"])
            mm_c = int(d["cols"]) * sp[c_ax] / int(d["w"])
            self.assertAlmostEqual(mm_r / mm_c, 1, delta=0.04)
        ActionChains(self.driver).move_to_element(self.canvas("z")).perform()
        hv = self.wait(lambda: self.js("return Object.assign({}, document.getElementById('hover').dataset)")
                       if self.js("return document.getElementById('hover').dataset.voxel") else None, "hover")
        c, z, y, x = map(int, hv["voxel"].split(","))
        self.assertEqual(float(hv["value"]), float(raw[0, z, y, x]) * 0.5 - 200)
        world = self.st.affine @ [x, y, z, 1]
        np.testing.assert_allclose([float(t) for t in hv["world"].split(",")], world[:3], atol=0.006)
        # the label array as the image: label colours
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select
        Select(self.driver.find_element(By.ID, "image")).select_by_value("seg")
        self.wait(lambda: self.js("return window.voxtileView.image.name") == "seg" and
                  self.js("return document.body.dataset.ready") == "1", "seg as the image")
        self.assert_view("scaled", "z", image="seg", overlay=None)
        self.assert_view("scaled", "x", image="seg", overlay=None)

    def test_6_channels_and_float16(self):
        from selenium.webdriver.common.by import By
        for store, key in ((2, "multi"), (3, "half")):
            self.open_page(store=store)
            self.assertFalse(self.js("return document.getElementById('chanbox').hidden"))
            # not CT: the auto window, the 1st and 99th percentiles of the axial slice (NaN left out)
            d = self.data("z")
            sl = take(self.st.oracle.array(self.st.path(key), "image"), "z", int(d["index"])).astype(np.float64)
            sl = np.sort(sl[np.isfinite(sl)])
            lo, hi = sl[int(0.01 * (sl.size - 1))], sl[int(0.99 * (sl.size - 1))]
            self.assertEqual(self.js("return document.body.dataset.preset"), "auto")
            self.assertEqual((float(d["wc"]), float(d["ww"])), ((lo + hi) / 2, hi - lo))
            for axis in AXES:
                self.assert_view(key, axis, overlay=None)
            draws = int(self.data("z")["draws"])
            ch = self.driver.find_element(By.ID, "channel")
            ch.clear()
            ch.send_keys("1\n")
            self.wait(lambda: self.js("return window.voxtileView.channel") == 1, "channel 1")
            # the window stays (value range of the array); the pixels are channel 1's
            self.assert_view(key, "z", overlay=None, channel=1, draws_after=draws)

    def test_7_click_moves_the_other_views_and_the_crosshair_follows(self):
        from PIL import Image
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By
        self.open_page()
        info = self.srv.json("/api/array?store=0&array=image")
        flip = dict(zip(AXES, info["flip"]))
        n = {"z": 30, "y": 101, "x": 122}

        def cross_alpha(axis):
            url = self.js("return arguments[0].toDataURL('image/png')", self.driver.find_element(By.ID, f"cross-{axis}"))
            return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGBA"))[:, :, 3]

        def check_cross():
            idx = {a: int(self.data(a)["index"]) for a in AXES}
            for axis in AXES:
                r, c = {"z": "yx", "y": "zx", "x": "zy"}[axis]
                d = self.data(axis)
                h, w = int(d["h"]), int(d["w"])
                ir = n[r] - 1 - idx[r] if flip[r] else idx[r]
                ic = n[c] - 1 - idx[c] if flip[c] else idx[c]
                want = np.zeros((h, w), bool)
                want[int((ir + 0.5) * h / n[r]), :] = True
                want[:, int((ic + 0.5) * w / n[c])] = True
                np.testing.assert_array_equal(cross_alpha(axis) > 0, want, axis)

        check_cross()
        # a click (no drag) on the axial view at voxel (y, x): the coronal view goes to y, the sagittal to x
        d = self.wait_full("z")
        h, w = int(d["h"]), int(d["w"])
        r, c = 30, 90  # display row and column of the voxel
        ActionChains(self.driver).move_to_element_with_offset(
            self.canvas("z"), int((c + 0.5) * w / 122) - w // 2, int((r + 0.5) * h / 101) - h // 2).click().perform()
        y, x = 101 - 1 - r, 122 - 1 - c  # both flipped (RAS)
        self.assert_view("ct", "y", index=y)
        self.assert_view("ct", "x", index=x)
        self.assertEqual(self.data("z")["ww"], "400")  # a click is not a drag: the window stays
        check_cross()
        self.driver.find_element(By.ID, "cross").click()
        self.wait(lambda: not cross_alpha("z").any(), "no crosshair")
        self.assertFalse(cross_alpha("y").any() or cross_alpha("x").any())


if __name__ == "__main__":
    unittest.main(verbosity=2)
