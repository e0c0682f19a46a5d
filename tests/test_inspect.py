"""The inspection commands: info, dump, verify, preview, stat-tiles, and the man page.

Golden outputs: `info` (text and --json) and `dump` (layout, --tiles, --header) of a small store
built here from a NIfTI written with nibabel are compared with tests/golden/*, byte for byte.
After a deliberate change of the output, regenerate them with

    VOXTILE_UPDATE_GOLDEN=1 VOXTILE=build/tools/voxtile /usr/bin/python3 tests/test_inspect.py

and review the diff. Besides the goldens, every value is checked against an independent oracle:
numpy over the source array (shapes, per-tile min/max, label counts), nibabel (header fields,
orientation codes), Pillow decoding the PNGs against pixel values computed here from the rules in
docs/cli.md, and byte flips placed with the layout from docs/format.md.
"""
import difflib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import nibabel as nib
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cliutil import VOXTILE, read_bytes, run, write_bytes  # noqa: E402

try:
    from PIL import Image
except ImportError:  # the meson test definition requires Pillow; this is for a bare run
    Image = None

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
UPDATE = os.environ.get("VOXTILE_UPDATE_GOLDEN") == "1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# docs/cli.md: label colours 1..20 and the heat scale anchors
LABEL_COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
                 (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
                 (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
                 (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (255, 255, 255)]
HEAT = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]


def heat(t):
    t = min(max(t, 0.0), 1.0) * 4
    i = min(int(t), 3)
    f = t - i
    return tuple(int(math.floor(HEAT[i][k] + f * (HEAT[i + 1][k] - HEAT[i][k]) + 0.5)) for k in range(3))


def golden_volume():
    """int16 (z, y, x) = (10, 12, 14) with a constant corner and a uint8 segmentation."""
    z, y, x = np.meshgrid(np.arange(10), np.arange(12), np.arange(14), indexing="ij")
    img = ((x * 7 + y * 13 + z * 29) % 200 - 100).astype(np.int16)
    img[:4, :8, :8] = -1024          # one whole tile (4, 8, 8) constant
    seg = ((x // 5 + y // 4 + z // 3) % 3).astype(np.uint8)
    seg[:4, :8, :8] = 0
    return img, seg


def save_nifti(vol_zyx, path, affine, dtype=None):
    data = np.ascontiguousarray(vol_zyx.transpose(2, 1, 0))
    im = nib.Nifti1Image(data, affine)
    im.header.set_xyzt_units("mm", "sec")
    im.set_qform(affine, code=1)
    im.set_sform(affine, code=1)
    nib.save(im, path)


def run_in(cwd, *args, ok=True):
    p = subprocess.run([os.path.abspath(VOXTILE), *map(str, args)], capture_output=True, text=True, cwd=cwd)
    if ok and p.returncode != 0:
        raise AssertionError(f"voxtile {' '.join(map(str, args))} failed ({p.returncode}): {p.stderr}")
    return p


def png(path):
    im = Image.open(path)
    im.load()
    return np.asarray(im), dict(im.text)


def parse_tiles(text):
    """dump --tiles -> {array: [dict per tile]}."""
    out, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"array '([^']+)'", line)
        if m:
            cur = out.setdefault(m.group(1), [])
            continue
        f = line.split()
        if cur is None or not f or not f[0].isdigit():
            continue
        cur.append(dict(tile=int(f[0]), coords=tuple(map(int, f[1].split(","))),
                        offset=None if f[2] == "-" else int(f[2]), stored=int(f[3]), raw=int(f[4]),
                        ratio=None if f[5] == "-" else float(f[5]), kind=f[6], min=float(f[7]),
                        max=float(f[8]), checksum=f[9]))
    return out


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vt-inspect-")
        cls.img, cls.seg = golden_volume()
        # LAS: x index grows to the patient's left (-R), y anterior, z superior
        cls.affine = np.array([[-0.8, 0, 0, 40.0], [0, 0.8, 0, -20.0], [0, 0, 2.5, 7.5], [0, 0, 0, 1]])
        save_nifti(cls.img, os.path.join(cls.tmp, "ct.nii"), cls.affine)
        save_nifti(cls.seg, os.path.join(cls.tmp, "seg.nii"), cls.affine)
        run_in(cls.tmp, "convert", "ct.nii", "--seg", "seg.nii", "--tile", "4,8,8", "-j", "1", "-q", "-o", "g.vxt")
        cls.store = os.path.join(cls.tmp, "g.vxt")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def golden(self, name, text):
        """Compare text with tests/golden/name (or rewrite it with VOXTILE_UPDATE_GOLDEN=1)."""
        gpath = os.path.join(GOLDEN, name)
        if UPDATE:
            os.makedirs(GOLDEN, exist_ok=True)
            with open(gpath, "w") as f:
                f.write(text)
            return
        with open(gpath) as f:
            want = f.read()
        if text != want:
            diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True), "golden/" + name, "now"))
            self.fail(f"{name} differs from the golden output (VOXTILE_UPDATE_GOLDEN=1 to accept):\n{diff}")


class Golden(Base):
    def test_info_json_golden_and_oracles(self):
        text = run_in(self.tmp, "info", "g.vxt", "--json").stdout
        self.golden("info.json", text)
        info = json.loads(text)
        arrays = {a["name"]: a for a in info["arrays"]}
        im, sg = arrays["image"], arrays["seg"]
        self.assertEqual(im["shape"], [1, 10, 12, 14])
        self.assertEqual(im["tile"], [1, 4, 8, 8])
        self.assertEqual(im["grid"], [1, 3, 2, 2])
        self.assertEqual((im["min"], im["max"]), (float(self.img.min()), float(self.img.max())))
        self.assertEqual(im["raw_bytes"], self.img.nbytes)
        self.assertEqual(im["constant_tiles"], 1)
        values, counts = np.unique(self.seg, return_counts=True)
        self.assertEqual([(l["value"], l["voxels"]) for l in sg["labels"]],
                         list(zip(values.tolist(), counts.tolist())))
        # geometry and source against nibabel
        nii = nib.load(self.path("ct.nii"))
        g = info["geometry"]
        self.assertEqual(g["orientation"], "".join(nib.aff2axcodes(nii.affine)))
        self.assertEqual(g["orientation"], "LAS")
        np.testing.assert_allclose(np.array(g["affine"]).reshape(4, 4), nii.affine)
        np.testing.assert_allclose(g["spacing"], [2.5, 0.8, 0.8], rtol=1e-6)
        self.assertEqual(g["crop"], [0, 10, 0, 12, 0, 14])
        h = info["source"]["header"]
        for k in ("datatype", "bitpix", "qform_code", "sform_code", "xyzt_units", "intent_code"):
            self.assertEqual(h[k], int(nii.header[k]), k)
        self.assertEqual(h["dim"], [int(v) for v in nii.header["dim"]])
        np.testing.assert_allclose(h["pixdim"][1:4], nii.header["pixdim"][1:4], rtol=1e-7)
        self.assertEqual(info["source"]["path"], "ct.nii")
        self.assertEqual(info["source"]["seg"], "seg.nii")
        self.assertEqual(info["source"]["format"], "nifti1")

    def test_info_text_golden(self):
        text = run_in(self.tmp, "info", "g.vxt").stdout
        self.golden("info.txt", text)
        self.assertIn("orientation LAS", text)
        self.assertIn("crop of the source: z 0:10, y 0:12, x 0:14", text)

    def test_orientation_codes_against_nibabel(self):
        """Rotated and permuted affines: info's orientation equals nibabel's aff2axcodes."""
        rng = np.random.default_rng(3)
        vol = np.zeros((3, 4, 5), np.int16)
        for i in range(6):
            perm = rng.permutation(3)
            aff = np.eye(4)
            aff[:3, :3] = np.eye(3)[:, perm] * rng.choice([-1.0, 1.0], 3) * rng.uniform(0.5, 3, 3)
            th = rng.uniform(-0.3, 0.3)  # a small rotation about z keeps the codes well defined
            rot = np.array([[math.cos(th), -math.sin(th), 0], [math.sin(th), math.cos(th), 0], [0, 0, 1]])
            aff[:3, :3] = rot @ aff[:3, :3]
            p = self.path(f"o{i}.nii")
            save_nifti(vol, p, aff)
            out = self.path(f"o{i}.vxt")
            run("convert", p, "-q", "-o", out)
            info = json.loads(run("info", out, "--json").stdout)
            self.assertEqual(info["geometry"]["orientation"], "".join(nib.aff2axcodes(aff)), aff)

    def test_dump_golden_and_tiles_against_numpy(self):
        self.golden("dump.txt", run_in(self.tmp, "dump", "g.vxt").stdout)
        self.golden("dump-header.txt", run_in(self.tmp, "dump", "g.vxt", "--header").stdout)
        text = run_in(self.tmp, "dump", "g.vxt", "--tiles").stdout
        self.golden("dump-tiles.txt", text)
        tiles = parse_tiles(text)
        size = os.path.getsize(self.store)
        for name, vol in (("image", self.img), ("seg", self.seg)):
            rows = tiles[name]
            self.assertEqual(len(rows), 12)
            for r in rows:
                c, z, y, x = r["coords"]
                self.assertEqual(r["tile"], (z * 2 + y) * 2 + x)
                block = vol[z * 4:(z + 1) * 4, y * 8:(y + 1) * 8, x * 8:(x + 1) * 8]
                self.assertEqual((r["min"], r["max"]), (float(block.min()), float(block.max())), r)
                self.assertEqual(r["raw"], block.nbytes)
                if r["kind"] == "constant":
                    self.assertEqual(block.min(), block.max())
                    self.assertEqual((r["offset"], r["stored"]), (None, 0))
                else:
                    self.assertTrue(4096 <= r["offset"] and r["offset"] + r["stored"] <= size)
                    self.assertAlmostEqual(r["ratio"], r["raw"] / r["stored"], places=2)
        # the layout's regions tile the file: each starts where the one before ends (or after padding)
        layout = run("dump", self.store).stdout.splitlines()[2:]
        end = 0
        for line in layout:
            f = line.split()
            off, stop = int(f[0]), int(f[1])
            self.assertEqual(off, end, line)
            end = stop
        self.assertEqual(end, size)


class Damage(Base):
    """Byte flips placed with docs/format.md's layout; the commands name what is damaged."""

    def flipped(self, name, offset, mask=0x20):
        raw = read_bytes(self.store)
        raw[offset] ^= mask
        p = self.path(name)
        write_bytes(p, raw)
        return p

    def layout(self):
        raw = read_bytes(self.store)
        le = lambda o, n=8: int.from_bytes(raw[o:o + n], "little")  # noqa: E731
        dir_off = le(32)
        arrays = {}
        for i in range(le(80, 4)):
            e = dir_off + 256 * i
            name = bytes(raw[e:e + 64]).split(b"\0")[0].decode()
            arrays[name] = dict(index=le(e + 160), labels=le(e + 184), entry=e)
        return arrays

    def test_dump_header_names_the_broken_field(self):
        lay = self.layout()
        bad = self.flipped("idx.vxt", lay["image"]["index"] + 3)
        p = run("dump", bad, "--header", ok=False)
        self.assertEqual(p.returncode, 1)
        lines = [l for l in p.stdout.splitlines() if "MISMATCH" in l]
        self.assertEqual(len(lines), 1, p.stdout)
        self.assertIn("index_checksum", lines[0])
        self.assertIn(str(lay["image"]["entry"] + 176), lines[0].split()[0])
        # info refuses the file, dump's layout still works
        self.assertEqual(run("info", bad, ok=False).returncode, 1)
        self.assertIn("tile index", run("dump", bad).stdout)
        # a header reserved byte and the file size
        bad = self.flipped("res.vxt", 1000)
        out = run("dump", bad, "--header", ok=False).stdout
        self.assertRegex(out, r"reserved .* byte 1000 is 0x20")
        self.assertRegex(out, r"header_checksum .* MISMATCH")
        raw = read_bytes(self.store)
        write_bytes(self.path("short.vxt"), raw[:-8])
        out = run("dump", self.path("short.vxt"), "--header", ok=False).stdout
        self.assertRegex(out, r"file_size .* the file has %d bytes" % (len(raw) - 8))
        write_bytes(self.path("tiny.vxt"), b"VOXTILE\0" + b"\0" * 100)
        self.assertIn("shorter than", run("dump", self.path("tiny.vxt"), ok=False).stderr)

    def test_verify_names_every_damaged_tile(self):
        tiles = parse_tiles(run("dump", self.store, "--tiles").stdout)
        stored = [r for r in tiles["image"] if r["kind"] != "constant"]
        a, b = stored[1], stored[4]
        raw = read_bytes(self.store)
        raw[a["offset"] + a["stored"] // 2] ^= 0x08
        raw[b["offset"] + 1] ^= 0x08
        bad = self.path("two.vxt")
        write_bytes(bad, raw)
        p = run("verify", bad, ok=False)
        self.assertEqual(p.returncode, 1)
        for r in (a, b):
            coords = ",".join(map(str, r["coords"]))
            self.assertIn(f"voxtile: {bad}: array 'image' tile {r['tile']} ({coords}): checksum mismatch", p.stderr)
        self.assertIn(f"{bad}: 2 of 24 tiles damaged", p.stderr)
        self.assertNotIn(": ok", p.stdout)
        # many stores, two threads: one line each in command-line order, and a summary
        good = [shutil.copy(self.store, self.path(f"c{i}.vxt")) for i in range(5)]
        args = good[:2] + [bad] + good[2:]
        p = run("verify", *args, "-j", "2", ok=False)
        self.assertEqual(p.returncode, 1)
        oks = [l.split(":")[0] for l in p.stdout.splitlines() if ": ok" in l]
        self.assertEqual(oks, good)
        self.assertIn("5 of 6 stores ok, 1 damaged or unreadable (2 damaged tiles)", p.stdout)
        # one store, tiles on 2 threads: the same two problems
        p2 = run("verify", bad, "-j", "2", ok=False)
        self.assertEqual(sorted(p2.stderr.splitlines()), sorted(p.stderr.splitlines()))
        self.assertEqual(run("verify", *good, "-q").stdout.strip(), "5 of 5 stores ok, 0 damaged or unreadable (0 damaged tiles)")

    def test_verify_names_the_index_and_the_header(self):
        lay = self.layout()
        p = run("verify", self.flipped("i.vxt", lay["seg"]["index"] + 41), ok=False)
        self.assertIn("array 'seg': tile index checksum mismatch", p.stderr)
        p = run("verify", self.flipped("l.vxt", lay["seg"]["labels"] + 9), ok=False)
        self.assertIn("array 'seg': label index checksum mismatch", p.stderr)
        p = run("verify", self.flipped("h.vxt", 33), ok=False)
        self.assertIn("header checksum mismatch", p.stderr)
        raw = read_bytes(self.store)
        meta = int.from_bytes(raw[56:64], "little")
        p = run("verify", self.flipped("m.vxt", meta + 20), ok=False)
        self.assertIn("metadata", p.stderr)


@unittest.skipIf(Image is None, "Pillow (python3-pil) is needed to decode the pictures")
class Preview(Base):
    def test_axial_slice_exact(self):
        """npy source (no orientation): index order, one pixel per voxel, the documented window."""
        vol = self.img.astype(np.float32)
        np.save(self.path("v.npy"), vol)
        run("convert", self.path("v.npy"), "-q", "--tile", "4,8,8", "-o", self.path("v.vxt"))
        out = self.path("ax.png")
        run("preview", self.path("v.vxt"), "--axis", "z", "--index", "7", "--window", "0,200", "-o", out)
        pix, text = png(out)
        self.assertEqual(pix.shape, (12, 14))
        # C's round() takes halves away from zero, floor(x + 0.5) up: the same for x >= -0.5
        want = np.clip(np.floor((vol[7].astype(np.float64) + 100) / 200 * 255 + 0.5), 0, 255)
        np.testing.assert_array_equal(pix, want.astype(np.uint8))
        self.assertIn("window 0,200", text["Description"])
        self.assertEqual(text["Source"], self.path("v.vxt"))
        # the default window is the value range
        run("preview", self.path("v.vxt"), "--index", "0", "-o", out)
        pix, _ = png(out)
        lo, hi = float(vol.min()), float(vol.max())
        want = np.clip(np.floor((vol[0].astype(np.float64) - lo) / (hi - lo) * 255 + 0.5), 0, 255)
        np.testing.assert_array_equal(pix, want.astype(np.uint8))

    def test_anisotropic_oriented_coronal(self):
        """LAS NIfTI, spacing (z, y, x) = (2.5, 0.8, 0.8): a coronal slice is rows z (superior up, so
        flipped) by columns x (x grows to the left: not flipped), z stretched 2.5/0.8 times, bilinear."""
        out = self.path("cor.png")
        run("preview", self.store, "--axis", "y", "--index", "5", "--window", "0,200", "-o", out)
        pix, text = png(out)
        nr, nc = 10, 14
        oh, ow = round(nr * 2.5 / 0.8), nc
        self.assertEqual(pix.shape, (oh, ow))
        sl = self.img[:, 5, :].astype(np.float64)[::-1, :]  # superior (high z) on top
        want = np.zeros((oh, ow))
        for u in range(oh):
            r = (u + 0.5) * nr / oh - 0.5
            r0 = math.floor(r)
            w = r - r0
            a, b = sl[min(max(r0, 0), nr - 1)], sl[min(max(r0 + 1, 0), nr - 1)]
            want[u] = a * (1 - w) + b * w
        g = np.clip(np.floor((want + 100) / 200 * 255 + 0.5), 0, 255)
        self.assertLessEqual(np.abs(pix.astype(int) - g.astype(int)).max(), 1)
        self.assertIn("radiological", text["Description"])
        # --no-orient: index order, z = 0 on top
        run("preview", self.store, "--axis", "y", "--index", "5", "--window", "0,200", "--no-orient", "-o", out)
        flat, _ = png(out)
        np.testing.assert_array_equal(flat, pix[::-1, :])

    def test_axial_orientation_flips(self):
        """LAS: axial rows are y (anterior up: y grows anterior, so flipped), columns x (already
        growing to the left: kept)."""
        out = self.path("ax2.png")
        run("preview", self.store, "--index", "6", "--window", "0,200", "-o", out)
        pix, _ = png(out)
        want = np.clip(np.floor((self.img[6].astype(np.float64) + 100) / 200 * 255 + 0.5), 0, 255)[::-1, :]
        np.testing.assert_array_equal(pix, want.astype(np.uint8))

    def test_overlay_grid_montage(self):
        out = self.path("ov.png")
        run("preview", self.store, "--index", "6", "--window", "0,200", "--overlay", "seg", "--no-orient", "-o", out)
        pix, _ = png(out)
        self.assertEqual(pix.shape, (12, 14, 3))
        grey = np.clip(np.floor((self.img[6].astype(np.float64) + 100) / 200 * 255 + 0.5), 0, 255)
        lab = self.seg[6]
        for yy in range(12):
            for xx in range(14):
                g = grey[yy, xx]
                if lab[yy, xx] == 0:
                    want = (g, g, g)
                else:
                    col = LABEL_COLOURS[lab[yy, xx] - 1]
                    want = tuple(math.floor((1 - 0.5) * g + 0.5 * c + 0.5) for c in col)
                np.testing.assert_allclose(pix[yy, xx], want, atol=0, err_msg=f"({yy},{xx}) label {lab[yy, xx]}")
        # a label array alone is drawn in its colours, 0 black
        run("preview", self.store, "--array", "seg", "--index", "6", "--no-orient", "-o", out)
        pix, _ = png(out)
        for v in (0, 1, 2):
            sel = lab == v
            self.assertTrue(sel.any())
            self.assertTrue(np.all(pix[sel] == ((0, 0, 0) if v == 0 else LABEL_COLOURS[v - 1])))
        # the tile grid: tiles of 8 along y and x -> lines at row 8 and column 8
        run("preview", self.store, "--index", "6", "--window", "0,200", "--grid", "--no-orient", "-o", out)
        pix, _ = png(out)
        g = grey[8, 3]
        self.assertEqual(tuple(pix[8, 3]), tuple(math.floor((1 - 0.6) * g + 0.6 * c + 0.5) for c in (255, 230, 0)))
        self.assertEqual(tuple(pix[3, 3]), (grey[3, 3],) * 3)
        # montage: 4 slices at floor((i + 0.5) * 10 / 4) = 1, 3, 6, 8, two columns, captioned
        run("preview", self.store, "--montage", "4", "--window", "0,200", "--no-orient", "-o", out)
        pix, text = png(out)
        self.assertIn("slices 1,3,6,8 of 10", text["Description"])
        gap, cap = 4, 7 + 4
        self.assertEqual(pix.shape[:2], (2 * (12 + cap + gap) + gap, 2 * 14 + 3 * gap))
        for i, k in enumerate((1, 3, 6, 8)):
            x0, y0 = gap + (i % 2) * (14 + gap), gap + (i // 2) * (12 + cap + gap) + cap
            want = np.clip(np.floor((self.img[k].astype(np.float64) + 100) / 200 * 255 + 0.5), 0, 255)
            np.testing.assert_array_equal(pix[y0:y0 + 12, x0:x0 + 14], want.astype(np.uint8), f"panel {i}")
            self.assertTrue((pix[y0 - cap:y0 - 2, x0:x0 + 14] > 128).any(), "caption missing")

    def test_reads_only_the_slice(self):
        """A damaged tile the slice does not cross does not matter; one it crosses is an error and
        leaves no picture."""
        tiles = parse_tiles(run("dump", self.store, "--tiles", "--array", "image").stdout)["image"]
        far = next(r for r in tiles if r["coords"][1] == 2 and r["kind"] != "constant")   # z 8..9
        near = next(r for r in tiles if r["coords"][1] == 0 and r["kind"] != "constant")  # z 0..3
        raw = read_bytes(self.store)
        raw[far["offset"] + 2] ^= 0x10
        bad = self.path("far.vxt")
        write_bytes(bad, raw)
        out = self.path("lazy.png")
        run("preview", bad, "--index", "1", "--window", "0,200", "-o", out)
        raw[near["offset"] + 2] ^= 0x10
        write_bytes(bad, raw)
        os.unlink(out)
        p = run("preview", bad, "--index", "1", "--window", "0,200", "-o", out, ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("checksum mismatch", p.stderr)
        self.assertEqual([f for f in os.listdir(self.tmp) if f.startswith("lazy")], [])

    def test_errors(self):
        out = self.path("e.png")
        p = run("preview", self.store, "--index", "10", "-o", out, ok=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn(f"voxtile: {self.store}: --index 10 is outside 0..9 along z", p.stderr)
        np.save(self.path("small.npy"), np.zeros((2, 3, 4), np.uint8))
        run("convert", self.path("small.npy"), "--seg", self.path("small.npy"), "-q", "-o", self.path("s.vxt"))
        p = run("preview", self.store, "--overlay", "nope", "-o", out, ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("nope", p.stderr)
        self.assertEqual(run("preview", self.store, "--window", "40", "-o", out, ok=False).returncode, 2)
        self.assertEqual(run("preview", self.store, "--axis", "q", "-o", out, ok=False).returncode, 2)
        p = run("preview", self.store, "-o", os.path.join(self.tmp, "no", "dir", "x.png"), ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot create", p.stderr)
        self.assertFalse(os.path.exists(out))

    def test_slice_too_large_to_draw(self):
        # 2 x 6000 x 6000 zeros from a sparse raw file: an axial slice has 36e6 > 2^25 voxels
        raw = self.path("big.raw")
        with open(raw, "wb") as f:
            f.truncate(2 * 6000 * 6000)
        big = self.path("big.vxt")
        run("convert", raw, "--raw-shape", "2,6000,6000", "--raw-dtype", "uint8", "-q", "-o", big)
        out = self.path("big.png")
        p = run("preview", big, "-o", out, ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"voxtile: {big}: a 6000 x 6000 slice is too large to draw", p.stderr)
        self.assertFalse(os.path.exists(out))
        # a sagittal slice of the same store (2 x 6000) is fine
        run("preview", big, "--axis", "x", "-q", "-o", out)
        self.assertEqual(png(out)[0].shape[1], 6000)
        # a spacing that stretches a 20 x 20 slice to 20000 pixels: the store's doing (exit 1),
        # with a zoom that fits; asking for more with --zoom is a usage error (exit 2)
        small = self.path("thin.raw")
        np.arange(2 * 20 * 20, dtype=np.uint8).tofile(small)
        thin = self.path("thin.vxt")
        run("convert", small, "--raw-shape", "2,20,20", "--raw-dtype", "uint8", "--raw-spacing", "1,0.001,1",
            "-q", "-o", thin)
        p = run("preview", thin, "-o", out, ok=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"voxtile: {thin}: a 20000 x 20 pixel slice (spacing 1 x 0.001 mm) is too large to draw "
                      "(at most 16384 pixels a side); try --zoom 0.819", p.stderr)
        self.assertEqual(run("preview", thin, "--zoom", "2", "-o", out, ok=False).returncode, 2)
        run("preview", thin, "--zoom", "0.819", "--no-orient", "-q", "-o", out)
        pix = png(out)[0]
        self.assertEqual(pix.shape[:2], (round(20 * 0.819), round(20 / 0.001 * 0.819)))


@unittest.skipIf(Image is None, "Pillow (python3-pil) is needed to decode the pictures")
class StatTiles(Base):
    def test_cells_follow_the_ratios(self):
        out = self.path("st.png")
        p = run("stat-tiles", self.store, "--cell", "10", "-o", out)
        pix, text = png(out)
        tiles = parse_tiles(run("dump", self.store, "--tiles", "--array", "image").stdout)["image"]
        ratios = [r["raw"] / r["stored"] for r in tiles if r["kind"] != "constant"]
        lo, hi = min(ratios), max(ratios)
        gap, cap, cell = 6, 11, 10
        cols = 2  # ceil(sqrt(3 panels))
        for r in tiles:
            _, z, y, x = r["coords"]
            px = gap + (z % cols) * (2 * cell + gap) + x * cell + 2
            py = gap + (z // cols) * (2 * cell + cap + gap) + cap + y * cell + 2
            got = tuple(int(v) for v in pix[py, px])
            if r["kind"] == "constant":
                self.assertEqual(got, (150, 150, 150))
            else:
                t = (math.log(r["raw"] / r["stored"]) - math.log(lo)) / (math.log(hi) - math.log(lo))
                want = heat(t)
                self.assertLessEqual(max(abs(a - b) for a, b in zip(got, want)), 2, (r, got, want))
        self.assertIn("compression ratio per tile", text["Description"])
        # the summary's largest tile is the largest in the index
        big = max(tiles, key=lambda r: r["stored"])
        self.assertIn(f"tile {big['tile']} (", p.stdout.splitlines()[2])
        # projections: sum over z of a column of tiles = all raw / all stored
        run("stat-tiles", self.store, "--cell", "10", "--project", "sum", "--metric", "bytes", "-o", out)
        pix, text = png(out)
        sums = {}
        for r in tiles:
            sums.setdefault(r["coords"][2:], 0)
            sums[r["coords"][2:]] += r["stored"]
        lo, hi = min(v for v in sums.values() if v), max(sums.values())
        for (y, x), v in sums.items():
            got = tuple(int(c) for c in pix[gap + cap + y * cell + 2, gap + x * cell + 2])
            want = heat((math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo)))
            self.assertLessEqual(max(abs(a - b) for a, b in zip(got, want)), 2)
        self.assertIn("summed over z", text["Description"])


class Manual(unittest.TestCase):
    def test_every_command_has_help_and_a_man_section(self):
        man_path = os.path.join(ROOT, "docs", "voxtile.1")
        with open(man_path) as f:
            man = f.read()
        top = run("--help").stdout
        commands = re.findall(r"^  (\S+)\s{2,}", top, re.M)
        self.assertGreaterEqual(len(commands), 10)
        for cmd in commands:
            h = run(cmd, "--help").stdout
            self.assertIn("example:", h, cmd)
            self.assertIn(f"usage: voxtile {cmd}", h)
            self.assertRegex(man, r"\.SS " + re.escape(cmd.replace("-", r"\-")) + r"\b", f"no man section for {cmd}")
            for opt in set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", h)):
                self.assertIn(opt.replace("-", r"\-"), man, f"{cmd} {opt} is not in the man page")
            # a usage error points at the command's help and exits 2
            p = run(cmd, "--no-such-option", ok=False)
            self.assertEqual(p.returncode, 2, cmd)
            self.assertIn(f"voxtile {cmd} --help", p.stderr)
        lint = shutil.which("mandoc")
        self.assertIsNotNone(lint, "mandoc is needed to check the man page (apt-get install mandoc)")
        p = subprocess.run([lint, "-T", "lint", "-W", "warning", man_path], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
