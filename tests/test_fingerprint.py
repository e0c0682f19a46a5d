"""The dataset fingerprint (issue 12: `voxtile stats DATASET --fingerprint`, vt_fingerprint_*,
voxtile.fingerprint) against numpy and nibabel:

1. Every statistic against a numpy transcription of nnU-Net v2's DatasetFingerprintExtractor over
   all foreground voxels (images read by nibabel, scaling applied, as float32; crop to the nonzero
   box; foreground = label > 0 inside it; pooled over the cases): integers exactly (percentiles,
   min, max bit for bit, mean and std to double rounding), floats within the reported bound, which
   is itself within 2^-11 of the value. Spacings against nibabel's zooms, shapes after cropping
   against a numpy nonzero box.
2. The target spacing against a numpy transcription of nnU-Net's determine_fullres_target_spacing,
   with the anisotropy rule firing (and bumped to max(others) + 1e-5) and not.
3. The JSON file: save, load, same numbers; an nnU-Net-style file; malformed files named with line
   and column; -j does not change a byte.
4. Bad datasets (missing label or channel, another grid) and usage errors: messages naming the
   file, exit codes 1 and 2.

Run: VOXTILE=build/tools/voxtile VOXTILE_LIB=build/libvoxtile.so PYTHONPATH=python \
     /usr/bin/python3 tests/test_fingerprint.py
"""
import gzip
import json
import os
import shutil
import struct
import tempfile
import unittest

import numpy as np
from cliutil import CT, SEG, run
import nibabel as nib

PY_API = bool(os.environ.get("VOXTILE_LIB"))  # the Python package can load the library (no ASan build)
if PY_API:
    import voxtile

STATS = ("max", "mean", "median", "min", "percentile_00_5", "percentile_99_5", "std")


# ---- writing cases ---------------------------------------------------------------

def write_nii(path, zyx, spacing=(1.0, 1.0, 1.0), slope=None, inter=None):
    """A (z, y, x) array, or (c, z, y, x) as a 4-d file, as NIfTI with spacing (z, y, x); slope and
    inter go into the header as they are (nibabel applies them reading)."""
    a = np.asarray(zyx)
    data = a.transpose(2, 1, 0) if a.ndim == 3 else a.transpose(3, 2, 1, 0)
    img = nib.Nifti1Image(data, np.diag([spacing[2], spacing[1], spacing[0], 1.0]))
    img.header.set_data_dtype(a.dtype)
    raw = bytearray(img.to_bytes())
    if slope is not None:
        raw[112:120] = struct.pack("<ff", slope, inter)
    with (gzip.open if path.endswith(".gz") else open)(path, "wb") as f:
        f.write(raw)
    return path


def make_dataset(root, cases, ending=".nii.gz"):
    """cases: {id: ([channel arrays (z, y, x) or (c, z, y, x)], seg (z, y, x), spacing, kwargs per channel)}."""
    os.makedirs(os.path.join(root, "imagesTr"), exist_ok=True)
    os.makedirs(os.path.join(root, "labelsTr"), exist_ok=True)
    out = []
    for cid, (chans, seg, spacing, *extra) in sorted(cases.items()):
        kw = extra[0] if extra else [{}] * len(chans)
        paths = [write_nii(os.path.join(root, "imagesTr", f"{cid}_{c:04d}{ending}"), a, spacing, **kw[c])
                 for c, a in enumerate(chans)]
        lab = write_nii(os.path.join(root, "labelsTr", cid + ending), seg, spacing)
        out.append((paths, lab))
    return out


# ---- the references ------------------------------------------------------------------

def read_channels(path):
    """Channels (z, y, x) of an image as nnU-Net reads it: scaling applied, float32."""
    a = np.asarray(nib.load(path).get_fdata(dtype=np.float64)).astype(np.float32)
    if a.ndim == 3:
        return [a.transpose(2, 1, 0)]
    return [a[..., t].transpose(2, 1, 0) for t in range(a.shape[3])]


def nnunet_target_spacing(spacings, sizes):
    """nnU-Net v2's ExperimentPlanner.determine_fullres_target_spacing, transcribed."""
    target = np.percentile(np.vstack(spacings), 50, 0)
    target_size = np.percentile(np.vstack(sizes), 50, 0)
    worst_spacing_axis = np.argmax(target)
    other_axes = [i for i in range(len(target)) if i != worst_spacing_axis]
    other_spacings = [target[i] for i in other_axes]
    other_sizes = [target_size[i] for i in other_axes]
    has_aniso_spacing = target[worst_spacing_axis] > (3 * max(other_spacings))
    has_aniso_voxels = target_size[worst_spacing_axis] * 3 < min(other_sizes)
    if has_aniso_spacing and has_aniso_voxels:
        spacings_of_that_axis = np.vstack(spacings)[:, worst_spacing_axis]
        target_spacing_of_that_axis = np.percentile(spacings_of_that_axis, 10)
        if target_spacing_of_that_axis < max(other_spacings):
            target_spacing_of_that_axis = max(max(other_spacings), target_spacing_of_that_axis) + 1e-5
        target[worst_spacing_axis] = target_spacing_of_that_axis
        return target, int(worst_spacing_axis)
    return target, -1


def reference(cases):
    """nnU-Net's fingerprint over every foreground voxel (no sampling) with numpy."""
    pools, spacings, shapes, rel = None, [], [], []
    for images, seg in cases:
        data = np.stack([ch for p in images for ch in read_channels(p)])
        s = np.asarray(nib.load(seg).dataobj).transpose(2, 1, 0)
        mask = np.any(data != 0, axis=0)  # NaN is not 0
        if mask.any():
            idx = np.nonzero(mask)
            box = [(int(i.min()), int(i.max()) + 1) for i in idx]
        else:
            box = [(0, n) for n in mask.shape]
        sl = tuple(slice(a, b) for a, b in box)
        fg = s[sl] > 0
        if pools is None:
            pools = [[] for _ in range(len(data))]
        for c in range(len(data)):
            pools[c].append(data[c][sl][fg])
        spacings.append([float(z) for z in nib.load(images[0]).header.get_zooms()[:3][::-1]])
        after = [b - a for a, b in box]
        shapes.append(after)
        rel.append(np.prod(after) / np.prod(mask.shape))
    chans = {}
    for c, pool in enumerate(pools):
        x = np.concatenate(pool)
        nan = int(np.isnan(x).sum())
        x = x[~np.isnan(x)].astype(np.float64)
        p0, med, p99 = np.percentile(x, (0.5, 50.0, 99.5))
        chans[str(c)] = {"max": x.max(), "mean": x.mean(), "median": med, "min": x.min(),
                         "percentile_00_5": p0, "percentile_99_5": p99, "std": x.std(), "count": len(x),
                         "nan_count": nan}
    target, axis = nnunet_target_spacing(spacings, shapes)
    return {"channels": chans, "spacings": spacings, "shapes_after_crop": shapes,
            "median_relative_size_after_cropping": float(np.median(rel, 0)),
            "target_spacing": list(target), "anisotropic_axis": axis}


def fingerprint_cli(root, *extra):
    return json.loads(run("stats", root, "--fingerprint", "--json", *extra).stdout)


class Case(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="vt_fingerprint_")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def assert_matches(self, got, cases, exact=True):
        """got (the JSON) against reference(cases); exact: integer values (percentiles bit for bit)."""
        ref = reference(cases)
        fg = got["foreground_intensity_properties_per_channel"]
        vx = got["voxtile"]
        self.assertEqual(sorted(fg), sorted(ref["channels"]))
        for c, want in ref["channels"].items():
            have = fg[c]
            self.assertEqual(sorted(have), list(STATS))
            self.assertEqual(vx["channels"][c]["count"], want["count"], c)
            self.assertEqual(vx["channels"][c]["nan_count"], want["nan_count"], c)
            self.assertEqual(have["min"], want["min"])
            self.assertEqual(have["max"], want["max"])
            np.testing.assert_allclose(have["mean"], want["mean"], rtol=1e-12, atol=1e-12, err_msg=c)
            np.testing.assert_allclose(have["std"], want["std"], rtol=1e-11, atol=1e-12, err_msg=c)
            err = vx["channels"][c]["percentile_error"]  # the bound over the three
            keys = ("median", "percentile_00_5", "percentile_99_5")
            for key in keys:
                if exact:
                    self.assertEqual(err, 0.0)
                    self.assertEqual(have[key], want[key], f"channel {c} {key}")
                else:
                    self.assertLessEqual(abs(have[key] - want[key]), err * (1 + 1e-9) + 1e-300, f"{c} {key}")
            # the bound: one bin, 2^-11 of the values in it
            scale = max(max(abs(want[k]), abs(have[k])) for k in keys)
            self.assertLessEqual(err, 2.0 ** -11 * scale * 1.0001 + 1e-37, c)
        self.assertEqual(got["spacings"], ref["spacings"])
        self.assertEqual(got["shapes_after_crop"], ref["shapes_after_crop"])
        self.assertEqual(got["median_relative_size_after_cropping"], ref["median_relative_size_after_cropping"])
        self.assertEqual(vx["target_spacing"], ref["target_spacing"])
        self.assertEqual(vx["anisotropic_axis"], None if ref["anisotropic_axis"] < 0 else ref["anisotropic_axis"])
        return ref


def ct_zyx():
    return np.asarray(nib.load(CT).dataobj).transpose(2, 1, 0), np.asarray(nib.load(SEG).dataobj).transpose(2, 1, 0)


class Bundled(Case):
    """The bundled CT (int16) and its segmentation, a shifted and cropped copy, a float32 copy."""

    def test_ct_copies(self):
        ct, seg = ct_zyx()
        shifted = np.zeros_like(ct)  # zero border: the nonzero box is smaller than the image
        shifted[3:, 5:-4, 7:] = ct[:-3, 9:, :-7]
        sseg = np.zeros_like(seg)
        sseg[3:, 5:-4, 7:] = seg[:-3, 9:, :-7]
        sseg[0, :, :] = 1  # foreground outside the nonzero box: not counted (read twice)
        cases = make_dataset(self.tmp, {
            "ct_000": ([ct], seg, (3.0, 3.0, 3.0)),
            "ct_001": ([shifted[2:, :-3]], sseg[2:, :-3], (3.0, 3.0, 3.0)),
            "ct_002": ([ct.astype(np.float32)], seg, (2.5, 3.0, 3.0)),
        })
        got = fingerprint_cli(self.tmp, "-j", "2")
        ref = self.assert_matches(got, cases)
        self.assertLess(ref["shapes_after_crop"][1][1], 101 - 3)
        # in the order of the paths, with the paths
        self.assertEqual([c["image"] for c in got["voxtile"]["cases"]], [c[0][0] for c in cases])
        self.assertEqual([c["seg"] for c in got["voxtile"]["cases"]], [c[1] for c in cases])

    def test_text(self):
        ct, seg = ct_zyx()
        make_dataset(self.tmp, {"a": ([ct], seg, (3.0, 3.0, 3.0))})
        out = run("stats", self.tmp, "--fingerprint").stdout
        for want in ("fingerprint of 1 case, 1 channel", "exact", "target spacing (z, y, x): 3, 3, 3 mm",
                     "did not fire", "spacing z (mm)", "shape after crop x", "median relative size"):
            self.assertIn(want, out)


class Generated(Case):
    def test_int16_zero_foreground(self):
        """Foreground voxels that are 0 in every channel count (as 0) inside the box, not outside;
        a case without any nonzero voxel keeps its whole grid."""
        rng = np.random.default_rng(1)
        a = np.zeros((9, 30, 40), np.int16)
        a[2:7, 4:25, 6:33] = rng.integers(-3000, 3000, (5, 21, 27))
        a[3:5, 10:15, 10:20] = 0  # zeros inside the box
        seg = np.zeros(a.shape, np.uint8)
        seg[1:8, 2:28, 3:36] = 2  # reaches outside the box
        b = a.copy()
        bseg = np.zeros_like(seg)
        bseg[3:5, 9:16, 9:21] = 1  # only zeros inside the box
        bseg[4, 12, 12] = 0
        empty = np.zeros((4, 10, 12), np.int16)
        eseg = np.ones(empty.shape, np.int16)
        cases = make_dataset(self.tmp, {"g_0": ([a], seg, (2.0, 1.0, 1.0)), "g_1": ([b], bseg, (2.0, 1.0, 1.0)),
                                        "g_2": ([empty], eseg, (2.0, 1.0, 1.0))})
        got = fingerprint_cli(self.tmp)
        self.assert_matches(got, cases)
        self.assertEqual(got["shapes_after_crop"][2], [4, 10, 12])

    def test_uint8_and_uint16_two_channels(self):
        rng = np.random.default_rng(2)
        cases = {}
        for i in range(3):
            shape = (6 + i, 20, 24 - i)
            c0 = rng.integers(0, 256, shape).astype(np.uint8)
            c1 = rng.integers(0, 65536, shape).astype(np.uint16)
            c1[c1 % 7 == 0] = 0
            seg = rng.integers(0, 3, shape).astype(np.uint8)
            cases[f"u_{i}"] = ([c0, c1], seg, (1.5, 0.7, 0.7))
        paths = make_dataset(self.tmp, cases)
        self.assert_matches(fingerprint_cli(self.tmp, "-j", "3"), paths)

    def test_float32_nan_and_scaling(self):
        """Continuous float32 values (within the bound), NaN left out and counted, NIfTI scaling
        applied as nnU-Net reads it, integral floats exact."""
        rng = np.random.default_rng(3)
        cases = {}
        for i in range(3):
            shape = (5, 16 + i, 18)
            f = (rng.standard_normal(shape) * 300 + 40).astype(np.float32)
            f[rng.random(shape) < 0.05] = np.nan
            f[0, 0, :] = 0
            scaled = rng.integers(-2000, 2000, shape).astype(np.int16)
            seg = (rng.random(shape) < 0.6).astype(np.uint8)
            cases[f"f_{i}"] = ([f, scaled], seg, (1.0, 1.0, 1.0), [{}, {"slope": 0.5, "inter": -1024.0}])
        paths = make_dataset(self.tmp, cases)
        got = fingerprint_cli(self.tmp)
        self.assertGreater(got["voxtile"]["channels"]["0"]["nan_count"], 0)
        self.assertGreater(got["voxtile"]["channels"]["0"]["percentile_error"], 0)
        self.assert_matches(got, paths, exact=False)

    def test_float32_integral_is_exact(self):
        rng = np.random.default_rng(4)
        f = rng.integers(-1024, 3000, (4, 12, 14)).astype(np.float32)
        f[1, 2, 3] = 40000.0  # integral but past the exact range: its own bin, still exact
        seg = np.ones(f.shape, np.uint8)
        paths = make_dataset(self.tmp, {"i_0": ([f], seg, (1.0, 1.0, 1.0))})
        got = fingerprint_cli(self.tmp)
        self.assert_matches(got, paths, exact=True)

    def test_int_and_float_cases_pooled_exact(self):
        """An int16 case and a float32 case of x + 0.25 in one channel: the integers' histogram and
        the float bins (each holding one value here) walked together, still exact."""
        ct, seg = ct_zyx()
        paths = make_dataset(self.tmp, {"a": ([ct], seg, (3.0, 3.0, 3.0)),
                                        "b": ([ct.astype(np.float32) + np.float32(0.25)], seg, (3.0, 3.0, 3.0))})
        self.assert_matches(fingerprint_cli(self.tmp), paths, exact=True)

    def test_mixed_bin_over_integers(self):
        """Bins holding several values, with integers inside their range: the order statistics there
        are off by at most the bin's width (0.25 in [512, 1024)), as reported."""
        rng = np.random.default_rng(7)
        vals = np.array([1000.0, 1000.0625, 1000.125, 1000.1875, 999.0, 1001.0], np.float32)
        f = vals[rng.integers(0, len(vals), (6, 20, 20))]
        f[:, 0, 0] = -5.5
        paths = make_dataset(self.tmp, {"m_0": ([f], np.ones(f.shape, np.uint8), (1.0, 1.0, 1.0))})
        got = fingerprint_cli(self.tmp)
        self.assertEqual(got["voxtile"]["channels"]["0"]["percentile_error"], 0.25 - 2.0 ** -14)
        self.assert_matches(got, paths, exact=False)

    def test_4d_file_and_python_api(self):
        """A 4-d file holds two channels; the Python API over (images, seg) pairs equals the CLI."""
        if not PY_API:
            self.skipTest("the Python package cannot load this build's library")
        rng = np.random.default_rng(5)
        img = rng.integers(-100, 100, (2, 6, 10, 12)).astype(np.int16)
        seg = rng.integers(0, 2, (6, 10, 12)).astype(np.uint8)
        ip = write_nii(os.path.join(self.tmp, "four_d.nii.gz"), img, (2.0, 1.0, 1.0))
        sp = write_nii(os.path.join(self.tmp, "four_d_seg.nii.gz"), seg, (2.0, 1.0, 1.0))
        got = voxtile.fingerprint([(ip, sp)], jobs=1)
        self.assertEqual(sorted(got["foreground_intensity_properties_per_channel"]), ["0", "1"])
        self.assert_matches(got, [([ip], sp)])
        cases = make_dataset(os.path.join(self.tmp, "ds"), {"c_0": ([img[0], img[1]], seg, (2.0, 1.0, 1.0))})
        cli = fingerprint_cli(os.path.join(self.tmp, "ds"))
        api = voxtile.fingerprint(os.path.join(self.tmp, "ds"), jobs=2)
        self.assertEqual(api, cli)
        self.assertEqual(api["foreground_intensity_properties_per_channel"],
                         got["foreground_intensity_properties_per_channel"])
        self.assert_matches(api, cases)


class TargetSpacing(Case):
    def spacing_cases(self, spacings, shape):
        rng = np.random.default_rng(6)
        cases = {}
        for i, sp in enumerate(spacings):
            a = rng.integers(1, 100, shape).astype(np.int16)
            cases[f"s_{i:02d}"] = ([a], np.ones(shape, np.uint8), sp)
        return make_dataset(self.tmp, cases)

    def test_rule_fires(self):
        cases = self.spacing_cases([(5.0, 0.8, 0.8), (6.0, 0.8, 0.8), (3.5, 0.8, 0.8), (8.0, 0.8, 0.8),
                                    (4.5, 0.8, 0.8)], (4, 16, 16))
        got = fingerprint_cli(self.tmp)
        ref = self.assert_matches(got, cases)
        self.assertEqual(ref["anisotropic_axis"], 0)
        self.assertNotEqual(got["voxtile"]["target_spacing"][0], got["voxtile"]["median_spacing"][0])
        self.assertIn("fired", run("stats", self.tmp, "--fingerprint").stdout)

    def test_rule_bumped(self):
        """The 10th percentile below the others' largest spacing: max(others) + 1e-5."""
        cases = self.spacing_cases([(0.5, 1.0, 1.0), (0.6, 1.0, 1.0), (4.0, 1.0, 1.0), (4.0, 1.0, 1.0),
                                    (4.0, 1.0, 1.0)], (4, 16, 16))
        got = fingerprint_cli(self.tmp)
        self.assert_matches(got, cases)
        self.assertEqual(got["voxtile"]["target_spacing"][0], 1.0 + 1e-5)

    def test_rule_not_enough_voxels(self):
        """Anisotropic spacing, but the low-resolution axis has as many voxels: the median."""
        cases = self.spacing_cases([(5.0, 0.8, 0.8), (6.0, 0.8, 0.8), (4.0, 0.8, 0.8)], (16, 16, 16))
        got = fingerprint_cli(self.tmp)
        ref = self.assert_matches(got, cases)
        self.assertEqual(ref["anisotropic_axis"], -1)
        self.assertEqual(got["voxtile"]["target_spacing"], got["voxtile"]["median_spacing"])
        self.assertIn("did not fire", run("stats", self.tmp, "--fingerprint").stdout)

    def test_rule_y_axis_and_even_count(self):
        cases = self.spacing_cases([(1.0, 5.0, 1.0), (1.2, 7.0, 1.0), (0.9, 4.0, 1.1), (1.0, 9.0, 1.0)],
                                   (16, 4, 16))
        got = fingerprint_cli(self.tmp)
        ref = self.assert_matches(got, cases)
        self.assertEqual(ref["anisotropic_axis"], 1)


class File(Case):
    def dataset(self):
        ct, seg = ct_zyx()
        f = ct.astype(np.float32) + np.float32(0.25)
        return make_dataset(self.tmp, {"a": ([ct], seg, (3.0, 3.0, 3.0)), "b": ([f], seg, (3.0, 2.0, 2.0))})

    def test_round_trip_and_jobs(self):
        """-o writes what --json prints; -j changes no byte; load gives the same numbers back."""
        self.dataset()
        out1, out3 = os.path.join(self.tmp, "fp1.json"), os.path.join(self.tmp, "fp3.json")
        text1 = run("stats", self.tmp, "--fingerprint", "--json", "-j", "1", "-o", out1).stdout
        text3 = run("stats", self.tmp, "--fingerprint", "--json", "-j", "3", "-o", out3).stdout
        self.assertEqual(text1, text3)
        with open(out1) as f:
            self.assertEqual(f.read(), text1)
        self.assertFalse([n for n in os.listdir(self.tmp) if n.startswith(".")], "a temporary was left")
        if not PY_API:
            return
        self.assertEqual(voxtile.load_fingerprint(out1), json.loads(text1))

    def test_nnunet_file(self):
        """A file with nnU-Net's keys only (as nnU-Net writes it: indent 4, sorted keys, NaN)."""
        if not PY_API:
            self.skipTest("the Python package cannot load this build's library")
        self.dataset()
        full = fingerprint_cli(self.tmp)
        nn = {k: v for k, v in full.items() if k != "voxtile"}
        nn["foreground_intensity_properties_per_channel"]["0"]["std"] = float("nan")
        path = os.path.join(self.tmp, "dataset_fingerprint.json")
        with open(path, "w") as f:
            json.dump(nn, f, sort_keys=True, indent=4)
        got = voxtile.load_fingerprint(path)
        self.assertIsNone(got["foreground_intensity_properties_per_channel"]["0"]["std"])
        nn["foreground_intensity_properties_per_channel"]["0"]["std"] = None
        self.assertEqual({k: v for k, v in got.items() if k != "voxtile"}, nn)
        self.assertEqual(got["voxtile"]["target_spacing"], full["voxtile"]["target_spacing"])
        self.assertEqual(got["voxtile"]["channels"]["0"], {"count": 0, "nan_count": 0, "percentile_error": None})
        self.assertEqual(got["voxtile"]["cases"][0], {"crop": None, "image": None, "seg": None, "shape": None})

    def test_malformed(self):
        if not PY_API:
            self.skipTest("the Python package cannot load this build's library")
        self.dataset()
        good = run("stats", self.tmp, "--fingerprint", "--json").stdout
        path = os.path.join(self.tmp, "bad.json")
        spacings = '"spacings": [\n        [3.0, 3.0, 3.0],\n        [3.0, 2.0, 2.0]\n    ]'
        self.assertIn(spacings, good)
        bad = {
            "truncated": (good[:200], "line"),
            "trailing comma": (good.replace("\n    },\n    \"median", ",\n    },\n    \"median", 1),
                               "line 12, column 5: expected a key"),
            "garbage after": (good + "x", "more after the end"),
            "duplicate key": (good.replace('"max":', '"min": 1, "max":', 1), "comes twice"),
            "missing stat": (good.replace('"median": ', '"medianx": ', 1), 'has no "median"'),
            "string stat": (good.replace('"max": ', '"max": "1", "maxx": ', 1), "must be a number"),
            "two spacings": (good.replace(spacings, '"spacings": [[3.0, 3.0, 3.0], [3.0, 2.0]]'), "3 numbers"),
            "negative spacing": (good.replace(spacings, '"spacings": [[3.0, 3.0, 3.0], [3.0, -2.0, 2.0]]'),
                                 "positive"),
            "fractional shape": (good.replace('"shapes_after_crop": [\n        [30,', '"shapes_after_crop": [\n        [30.5,'),
                                 "integer"),
            "channel key": (good.replace('"0": {\n            "max"', '"01": {\n            "max"'), "channels are"),
            "not an object": ("[1, 2]", "a JSON object"),
            "bad escape": (good.replace('"voxtile": {', '"vox\\qtile": {'), "unknown escape"),
            "control character": (good.replace('"voxtile"', '"vox\ttile"'), "control character"),
            "bad number": (good.replace('"max": ', '"max": -', 1).replace('-1', '-.1', 1), "expected a value"),
            "leading zero": (good.replace('"max": ', '"max": 0', 1), "expected ',' or '}'"),
            "empty": ("", "the file ends"),
        }
        for what, (text, want) in bad.items():
            with open(path, "w") as f:
                f.write(text)
            with self.assertRaises(voxtile.Error, msg=what) as cm:
                voxtile.load_fingerprint(path)
            msg = str(cm.exception)
            self.assertIn(path, msg, what)
            self.assertIn(want, msg, what)
            self.assertRegex(msg, r"line \d+, column \d+", what)
        with self.assertRaises(voxtile.FileNotFound):
            voxtile.load_fingerprint(os.path.join(self.tmp, "nothing.json"))


class Errors(Case):
    def test_bad_datasets(self):
        ct, seg = ct_zyx()
        make_dataset(self.tmp, {"a": ([ct], seg, (3.0, 3.0, 3.0)), "b": ([ct], seg, (3.0, 3.0, 3.0))})
        lab = os.path.join(self.tmp, "labelsTr", "b.nii.gz")
        os.rename(lab, lab + ".away")
        p = run("stats", self.tmp, "--fingerprint", ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(lab, p.stderr)
        self.assertEqual(p.stdout, "")
        write_nii(lab, seg[:, :-1], (3.0, 3.0, 3.0))  # another grid
        out = os.path.join(self.tmp, "fp.json")
        p = run("stats", self.tmp, "--fingerprint", "-o", out, ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(lab + ": shape (z, y, x) = (30, 100, 122) differs", p.stderr)
        self.assertFalse(os.path.exists(out))
        os.remove(lab)
        os.rename(lab + ".away", lab)
        write_nii(os.path.join(self.tmp, "imagesTr", "a_0001.nii.gz"), ct, (3.0, 3.0, 3.0))
        p = run("stats", self.tmp, "--fingerprint", ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("case b has no channel 0001", p.stderr)
        p = run("stats", os.path.join(self.tmp, "nothing"), "--fingerprint", ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(os.path.join(self.tmp, "nothing", "imagesTr"), p.stderr)
        if PY_API:
            with self.assertRaises(voxtile.Error):
                voxtile.fingerprint(self.tmp)
            with self.assertRaises(voxtile.FileNotFound):
                voxtile.fingerprint([(os.path.join(self.tmp, "imagesTr", "a_0000.nii.gz"), os.path.join(self.tmp, "missing.nii.gz"))])

    def test_usage(self):
        for args in (("--fingerprint", "a", "b"), ("a", "--fingerprint", "--budget", "1GiB"), ("a", "-o", "x.json"),
                     ("a", "-j", "2"), ("a", "--fingerprint", "-j", "0")):
            p = run("stats", *args, ok=False)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn("voxtile stats --help", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
