"""Helpers shared by the Python tests of the voxtile command line."""
import gzip
import os
import subprocess

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
