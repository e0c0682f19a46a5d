"""voxtile.dask.convert_dataset and voxtile.Dataset against `voxtile convert-dataset` (issue 12,
"conversion on a cluster").

An nnU-Net raw folder of 8 two-channel cases made from the bundled CT and its segmentation (crops and
shifts, labels for most, one test case), converted by the CLI (-j 2) and by dask tasks on a LocalCluster
of 2 worker processes:
- the same files: every store byte for byte (the writer is deterministic), and array by array (dtype,
  shape, tiles, voxels, labels) with all metadata, the voxels also against nibabel;
- failing cases (a corrupt .nii.gz, a label of the wrong shape, a missing channel) reported with the
  library's message -- the CLI's -- while the others are converted;
- a rerun resumes: up-to-date stores untouched, the fixed cases converted; stores of either driver are up
  to date for the other;
- other options: every case converted again, the options passed through as the CLI's flags.

Run: VOXTILE=build/tools/voxtile VOXTILE_LIB=build/libvoxtile.so PYTHONPATH=python \\
     /usr/bin/python3 tests/test_dask_convert.py
"""
import gzip
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import unittest

import numpy as np
import nibabel as nib
from cliutil import CT, SEG, run, to_store

import voxtile
import voxtile.dask

SPECS = {  # case: (x0, y0, z0, nx, ny, nz) crop of the CT, and whether it has a label
    "case_001": ((0, 0, 0, 90, 80, 24), True),
    "case_002": ((20, 10, 3, 96, 88, 26), True),
    "case_003": ((30, 5, 0, 80, 90, 30), False),
    "case_004": ((5, 15, 4, 100, 70, 20), True),
    "bad_005": ((10, 10, 2, 70, 70, 22), True),    # its channel 0 is a corrupt .nii.gz
    "bad_006": ((0, 20, 1, 88, 76, 27), True),     # its label has the wrong shape
    "bad_007": ((12, 4, 6, 64, 72, 18), False),    # its channel 1 is missing
    "case_101": ((8, 8, 2, 84, 84, 25), False),    # imagesTs
}
BAD = ("bad_005", "bad_006", "bad_007")


def child_pids():
    """Processes whose parent is this one."""
    me, out = os.getpid(), set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                        out.add(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


class DaskConvertTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from distributed import Client, LocalCluster
        cls.tmp = tempfile.mkdtemp(prefix="vt-dask-convert-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.ct, cls.seg = nib.load(CT), nib.load(SEG)
        cls.cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0",
                                   local_directory=cls.tmp)
        cls.addClassCleanup(cls.cluster.close)
        cls.client = Client(cls.cluster)
        cls.addClassCleanup(cls.client.close)  # cleanups run last first: the client, then the cluster

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=self.tmp)
        self.raw = os.path.join(self.dir, "Dataset077_Dask")

    # ---- the dataset -----------------------------------------------------------------------------------

    def crop(self, img, spec):
        x0, y0, z0, nx, ny, nz = spec
        return img.slicer[x0:x0 + nx, y0:y0 + ny, z0:z0 + nz]

    def channels(self, cid):
        """The two channels of a case (nibabel images): the CT crop, and it shifted by one voxel in x and
        scaled (another contrast on the same grid)."""
        spec = SPECS[cid][0]
        a = self.crop(self.ct, spec)
        data = np.asarray(a.dataobj)
        b = np.roll(data, 1, axis=0) // 2 + 100
        return [a, nib.Nifti1Image(b.astype(np.int16), a.affine, a.header)]

    def label(self, cid):
        return self.crop(self.seg, SPECS[cid][0])

    def make_dataset(self):
        meta = {"channel_names": {"0": "CT", "1": "CT2"}, "labels": {"background": 0, "organ": 1},
                "numTraining": 7, "file_ending": ".nii.gz"}
        for sub in ("imagesTr", "labelsTr", "imagesTs"):
            os.makedirs(os.path.join(self.raw, sub))
        with open(os.path.join(self.raw, "dataset.json"), "w") as f:
            json.dump(meta, f, indent=4)
        for cid, (spec, has_label) in SPECS.items():
            folder = "imagesTs" if cid == "case_101" else "imagesTr"
            for ch, img in enumerate(self.channels(cid)):
                if cid == "bad_007" and ch == 1:
                    continue
                nib.save(img, os.path.join(self.raw, folder, f"{cid}_{ch:04d}.nii.gz"))
            if has_label:
                lab = self.label(cid)
                if cid == "bad_006":
                    lab = self.crop(self.seg, (0, 0, 0, 50, 50, 10))
                nib.save(lab, os.path.join(self.raw, "labelsTr", f"{cid}.nii.gz"))
        with gzip.open(os.path.join(self.raw, "imagesTr", "bad_005_0000.nii.gz"), "wb") as f:
            f.write(b"\x5c\x01\x00\x00" + b"not a NIfTI header" * 3)

    def fix_dataset(self):
        for ch, img in enumerate(self.channels("bad_005")):
            nib.save(img, os.path.join(self.raw, "imagesTr", f"bad_005_{ch:04d}.nii.gz"))
        nib.save(self.label("bad_006"), os.path.join(self.raw, "labelsTr", "bad_006.nii.gz"))
        nib.save(self.channels("bad_007")[1], os.path.join(self.raw, "imagesTr", "bad_007_0001.nii.gz"))

    # ---- the two drivers -------------------------------------------------------------------------------

    def cli(self, out, *opts, fails=()):
        """`voxtile convert-dataset -j 2`: {case: its error message} of the failing cases."""
        p = run("convert-dataset", self.raw, "-o", out, "-j", 2, *opts, ok=False)
        self.assertEqual(p.returncode, 1 if fails else 0, p.stderr)
        errors = dict(re.findall(r"^voxtile: case (\S+): (.*)$", p.stderr, re.M))
        self.assertEqual(sorted(errors), sorted(fails), p.stderr)
        return errors

    def dask(self, out, **opts):
        """{case: report} of convert_dataset on the class's cluster; every case reported once, in order."""
        rep = voxtile.dask.convert_dataset(self.raw, out, client=self.client, **opts)
        self.assertEqual([r["case"] for r in rep], sorted(c for c in SPECS if c != "case_101") + ["case_101"])
        return {r["case"]: r for r in rep}

    def statuses(self, rep):
        return {c: r["status"] for c, r in rep.items()}

    # ---- comparing outputs -----------------------------------------------------------------------------

    def files(self, out):
        """{relative path: (sha256 of the bytes, mtime)} of the files under out."""
        got = {}
        for root, _, names in os.walk(out):
            for n in names:
                p = os.path.join(root, n)
                with open(p, "rb") as f:
                    got[os.path.relpath(p, out)] = (hashlib.sha256(f.read()).hexdigest(), os.stat(p).st_mtime_ns)
        return got

    def stores(self, out):
        """files() of the stores alone (dataset.json is copied again by every run)."""
        return {k: v for k, v in self.files(out).items() if k.endswith(".vxt")}

    def assert_same_store(self, a, b):
        """Two stores alike array by array: names, dtype, shape, tiles, codec, voxels, labels, metadata."""
        with voxtile.open(a) as sa, voxtile.open(b) as sb:
            self.assertEqual(list(sa.arrays), list(sb.arrays))
            for name in sa.arrays:
                x, y = sa[name], sb[name]
                for attr in ("dtype", "shape", "tile_shape"):
                    self.assertEqual(getattr(x, attr), getattr(y, attr), f"{b} {name} {attr}")
                np.testing.assert_array_equal(x[...], y[...], err_msg=f"{b} {name}")
                self.assertEqual(sorted(x.labels), sorted(y.labels), f"{b} {name} labels")
                for v, (n, tiles) in x.labels.items():
                    self.assertEqual(n, y.labels[v][0])
                    np.testing.assert_array_equal(tiles, y.labels[v][1])
            ma, mb = sa.metadata, sb.metadata
            self.assertEqual(sorted(ma), sorted(mb))
            for k in ma:
                np.testing.assert_array_equal(ma[k], mb[k], err_msg=f"{b} metadata {k}")

    def assert_same_outputs(self, cli_out, dask_out):
        fa, fb = self.files(cli_out), self.files(dask_out)
        self.assertEqual(sorted(fa), sorted(fb))
        for rel in fa:
            if rel.endswith(".vxt"):
                self.assert_same_store(os.path.join(cli_out, rel), os.path.join(dask_out, rel))
            self.assertTrue(fa[rel][0] == fb[rel][0], f"{rel}: the CLI's and dask's files differ")

    def check_voxels(self, out, cid):
        """A store's image and seg against nibabel's reading of the sources."""
        store = os.path.join(out, "imagesTs" if cid == "case_101" else "", f"{cid}.vxt")
        with voxtile.open(store) as st:
            want = np.concatenate([to_store(np.asarray(c.dataobj)) for c in self.channels(cid)])
            np.testing.assert_array_equal(st["image"][...], want)
            if SPECS[cid][1]:
                np.testing.assert_array_equal(st["seg"][...], to_store(np.asarray(self.label(cid).dataobj)))
            else:
                self.assertNotIn("seg", st)

    # ---- the tests -------------------------------------------------------------------------------------

    def test_same_stores_as_cli_failures_resume_and_options(self):
        self.make_dataset()
        cli_out, dask_out = os.path.join(self.dir, "cli"), os.path.join(self.dir, "dask")
        good = [c for c in SPECS if c not in BAD]

        # 1. first run: the good cases converted, the bad ones reported with the CLI's messages
        errors = self.cli(cli_out, fails=BAD)
        rep = self.dask(dask_out)
        self.assertEqual(self.statuses(rep), {c: "failed" if c in BAD else "converted" for c in SPECS})
        for c in good:
            self.assertIsNone(rep[c]["error"])
        for c in BAD:
            self.assertEqual(rep[c]["store"], os.path.join(dask_out, f"{c}.vxt"))
            self.assertFalse(os.path.exists(rep[c]["store"]), "a failed case left a store")
        self.assertIn("bad_005_0000.nii.gz", rep["bad_005"]["error"])
        self.assertRegex(rep["bad_006"]["error"], r"labelsTr/bad_006\.nii\.gz: shape .* differs")
        self.assertRegex(rep["bad_007"]["error"], r"bad_007_0001\.nii\.gz: channel 0001 of case bad_007 is missing")
        for c in ("bad_005", "bad_006"):  # the library's message, the same in both drivers
            self.assertEqual(rep[c]["error"], errors[c])
        self.assertEqual(errors["bad_007"], "channel 0001 is missing")
        self.assert_same_outputs(cli_out, dask_out)
        for c in good:
            self.check_voxels(dask_out, c)

        # 2. a rerun: nothing done, nothing touched; the bad cases fail again
        before = self.stores(dask_out)
        rep = self.dask(dask_out)
        self.assertEqual(self.statuses(rep), {c: "failed" if c in BAD else "up to date" for c in SPECS})
        self.assertEqual(self.stores(dask_out), before)

        # 3. the bad cases fixed: exactly they are converted, by either driver
        self.fix_dataset()
        rep = self.dask(dask_out)
        self.assertEqual(self.statuses(rep), {c: "converted" if c in BAD else "up to date" for c in SPECS})
        after = self.stores(dask_out)
        for rel in before:
            self.assertEqual(after[rel], before[rel], rel)
        self.cli(cli_out)
        self.assert_same_outputs(cli_out, dask_out)
        for c in BAD:
            self.check_voxels(dask_out, c)

        # 4. other options: every case converted again, as the CLI's flags do; each driver's stores are up
        # to date for the other (one options string, made by the same library call)
        opts = dict(codec="lz4", tile=(8, 8, 8), crop="nonzero", levels=1, dtype="float32")
        rep = self.dask(dask_out, **opts)
        self.assertEqual(set(self.statuses(rep).values()), {"converted again"})
        self.cli(cli_out, "--codec", "lz4", "--tile", "8,8,8", "--crop-nonzero", "--levels", 1, "--dtype", "float32")
        self.assert_same_outputs(cli_out, dask_out)
        with voxtile.open(os.path.join(dask_out, "case_001.vxt")) as st:
            self.assertEqual(st["image"].tile_shape, (1, 8, 8, 8))
            self.assertEqual(st["image"].dtype, np.float32)
            self.assertIn("image@1", st)
        self.assertEqual(set(self.statuses(self.dask(cli_out, **opts)).values()), {"up to date"})
        p = run("convert-dataset", self.raw, "-o", dask_out, "-j", 2, "--codec", "lz4", "--tile", "8,8,8",
                "--crop-nonzero", "--levels", 1, "--dtype", "float32")
        self.assertRegex(p.stdout, r"8 cases: 0 converted \(0 again: made with other options\), 8 already there")

    def test_dataset(self):
        """voxtile.Dataset: the cases as the folder has them, where they go, their status."""
        self.make_dataset()
        ds = voxtile.Dataset(self.raw)
        self.assertEqual(len(ds), 8)
        self.assertEqual([c.id for c in ds.cases], sorted(c for c in SPECS if c != "case_101") + ["case_101"])
        for i, c in enumerate(ds.cases):
            folder = "imagesTs" if c.id == "case_101" else "imagesTr"
            self.assertEqual(c.test, c.id == "case_101")
            want = tuple(os.path.join(self.raw, folder, f"{c.id}_{ch:04d}.nii.gz") for ch in range(2))
            self.assertEqual(c.images, (want[0], None) if c.id == "bad_007" else want)
            self.assertEqual(c.seg, os.path.join(self.raw, "labelsTr", f"{c.id}.nii.gz") if SPECS[c.id][1] else None)
            self.assertEqual(ds.index(c.id, c.test), i)
            self.assertEqual(ds.store_path(i, "/o"), f"/o/{'imagesTs/' if c.test else ''}{c.id}.vxt")
        with self.assertRaises(KeyError):
            ds.index("case_101")
        out = os.path.join(self.dir, "out")
        ds.prepare(out)
        self.assertEqual(sorted(os.listdir(out)), ["dataset.json", "imagesTs"])
        i = ds.index("case_003")
        self.assertEqual(ds.status(i, out), "missing")
        self.assertEqual(ds.convert_case(i, out), "converted")
        self.assertEqual(ds.status(i, out), "up to date")
        self.assertEqual(ds.convert_case(i, out, threads=2), "up to date")  # threads do not shape a store
        self.assertEqual(ds.status(i, out, levels=1), "outdated")
        self.assertEqual(ds.convert_case(i, out, levels=1), "converted again")
        with self.assertRaises(voxtile.Error) as e:
            ds.convert_case(ds.index("bad_007"), out)
        self.assertIn("bad_007_0001.nii.gz: channel 0001 of case bad_007 is missing", str(e.exception))
        with self.assertRaises(voxtile.Error):
            ds.convert_case(ds.index("bad_005"), out)
        ds.close()
        with self.assertRaises(voxtile.FileNotFound):
            voxtile.Dataset(os.path.join(self.dir, "nothing here"))

    def test_dataset_errors_raise_before_any_task(self):
        with self.assertRaises(voxtile.FileNotFound) as e:
            voxtile.dask.convert_dataset(os.path.join(self.dir, "none"), os.path.join(self.dir, "o"),
                                         client=self.client)
        self.assertIn("dataset.json: cannot read", str(e.exception))
        self.make_dataset()
        with self.assertRaises(TypeError):
            voxtile.dask.convert_dataset(self.raw, os.path.join(self.dir, "o"), client=self.client, no_such=1)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "o")), "a bad option still made the output")

    def test_own_local_cluster_closed_after(self):
        """client=None: a LocalCluster of its own, closed on return (no worker process left)."""
        self.make_dataset()
        self.fix_dataset()
        before = child_pids()
        out = os.path.join(self.dir, "own")
        rep = voxtile.dask.convert_dataset(self.raw, out, n_workers=2, levels=1)
        self.assertEqual({r["status"] for r in rep}, {"converted"})
        deadline = time.monotonic() + 20
        while child_pids() - before and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(child_pids() - before, set(), "worker processes left behind")
        self.check_voxels(out, "case_002")


if __name__ == "__main__":
    unittest.main(verbosity=2)
