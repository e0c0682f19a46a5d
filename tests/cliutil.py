"""Helpers shared by the Python tests of the voxtile command line."""
import gzip
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np

VOXTILE = os.environ.get("VOXTILE", "build/tools/voxtile")
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
CT = os.path.join(DATA, "example_ct_sm.nii.gz")
SEG = os.path.join(DATA, "example_seg.nii.gz")


def run(*args, ok=True):
    """Run the CLI; with ok (default) a non-zero exit fails the test with its stderr."""
    p = subprocess.run([VOXTILE, *map(str, args)], capture_output=True, text=True)
    if ok and p.returncode != 0:
        raise AssertionError(f"voxtile {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr}")
    return p


def csv(v):
    return ",".join(str(int(x)) for x in v)


def to_store(arr):
    """nibabel's (x[, y[, z[, t]]]) array -> voxtile's (t, z, y, x)."""
    arr = np.asarray(arr)
    assert 1 <= arr.ndim <= 4
    return arr.reshape(arr.shape + (1,) * (4 - arr.ndim)).transpose(3, 2, 1, 0)


def translation(x, y, z):
    """4x4 affine moving by (x, y, z)."""
    t = np.eye(4)
    t[:3, 3] = [x, y, z]
    return t


def rotation(axis, angle):
    """3x3 rotation about axis by angle (radians), Rodrigues' formula."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def read_bytes(path):
    """The file's bytes as they are on disk."""
    with open(path, "rb") as f:
        return bytearray(f.read())


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def file_bytes(path):
    """The file's bytes, decompressed when gzipped."""
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        return f.read()


class StoreCase(unittest.TestCase):
    """A test case with a temporary folder, a seeded generator and the CLI helpers the
    conversion tests share (convert into a fresh folder, info --json, extract a whole array)."""

    prefix = "vt-test-"
    seed = 0

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix=self.prefix)
        self.rng = np.random.default_rng(self.seed)
        self.n = 0

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def path(self, *names):
        return os.path.join(self.tmp, *names)

    def outdir(self):
        """A fresh, empty output folder."""
        self.n += 1
        d = self.path(f"out{self.n}")
        os.mkdir(d)
        return d

    def save(self, img, name):
        """nibabel image -> file NAME in the temporary folder (subfolders created)."""
        import nibabel as nib

        p = self.path(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        nib.save(img, p)
        return p

    def convert(self, inputs, *opts, seg=None):
        """`voxtile convert INPUTS... [--seg SEG] OPTS` into a fresh folder; the store's path."""
        if isinstance(inputs, str):
            inputs = [inputs]
        out = os.path.join(self.outdir(), "s.vxt")
        args = ["convert", *inputs, "-o", out, "-q", *opts]
        if seg is not None:
            args += ["--seg", seg]
        run(*args)
        return out

    def info(self, store):
        return json.loads(run("info", store, "--json").stdout)

    def array_info(self, info, name):
        for a in info["arrays"]:
            if a["name"] == name:
                return a
        raise AssertionError(f"no array {name!r} in {[a['name'] for a in info['arrays']]}")

    def extract(self, store, shape, *opts):
        """The box of SHAPE at the origin, through `voxtile extract` (.npy)."""
        out = self.path("box.npy")
        run("extract", store, "--start", csv([0] * len(shape)), "--size", csv(shape), "-o", out, *opts)
        a = np.load(out)
        os.remove(out)
        return a

    def read_array(self, store, name, info=None):
        """A whole array of a store (and nothing of numpy's own reading of the source)."""
        info = info or self.info(store)
        return self.extract(store, self.array_info(info, name)["shape"], "--array", name)
