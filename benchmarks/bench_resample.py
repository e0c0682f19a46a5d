#!/usr/bin/python3
"""Resampling out of core (issue 12): voxtile against nnU-Net's whole-array way, in the same run.

convert: the seed-size case as an int16 NIfTI, (z, y, x) = (546, 820, 820) at 0.45 x 0.8 x 0.8 mm
   (the bundled CT upsampled trilinearly, noise sigma 12 HU: make_volume.py's recipe without the
   normalisation), resampled to 1 mm isotropic (246, 656, 656):
   - voxtile: `voxtile convert CASE.nii --spacing 1,1,1 -o OUT.vxt` (cubic: Keys, 4 taps), -j 1 and -j 2;
   - the peer, nnU-Net v2's resample_data_or_seg_to_shape as it runs in preprocessing: the case loaded
     as float32 (1, Z, Y, X) (nibabel), then data.astype(float) and per channel
     skimage.transform.resize(order=3, mode="edge", anti_aliasing=False) into a float32 array (the
     anisotropy ratio 0.8 / 0.45 < 3: no separate z, as in nnU-Net). Its time is the resampling alone
     (the load is reported apart); voxtile's is the whole command (read, resample, compress, write).
   Each under /usr/bin/time -v (wall, peak RSS), rounds interleaved; quality: PSNR of voxtile's store
   against the peer's output (peak = the peer's value range).
export: a 14-class float16 prediction on a (630, 420, 420) grid at 2x the source spacing (a case
   (1260, 840, 840) at 0.5 x 0.4 x 0.4 mm converted with --spacing 1,0.8,0.8) mapped back with argmax:
   - voxtile: `voxtile export PRED.vxt --like CASE.vxt --argmax -o PRED.nii.gz`;
   - the peer, nnU-Net's export (convert_predicted_logits_to_segmentation_with_correct_shape): the whole
     prediction as float32, each class resized with skimage order 1 into a float32 array of the source
     shape, argmax, NIfTI. At full size that array alone is 14 x 1260 x 840 x 840 x 4 B = 49.8 GB: the
     peer runs under `prlimit --as` (it fails cleanly instead of taking the machine down) and, for
     figures, at half the size on each axis, (315, 210, 210) -> (630, 420, 420), with voxtile on that
     same half-size case too. Label agreement between the two at half size.

    /usr/bin/python3 benchmarks/bench_resample.py convert [--dir /tmp/vtbench] [--rounds 3]
    /usr/bin/python3 benchmarks/bench_resample.py export [--dir /tmp/vtbench] [--rounds 3]
Needs python3-nibabel, python3-skimage; `ninja -C build` first.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, HERE)
import voxtile  # noqa: E402
from make_volume import axis_weights, interp_axis, load_ct  # noqa: E402

VOXTILE = os.environ.get("VOXTILE", os.path.join(ROOT, "build", "tools", "voxtile"))
CT = os.path.join(ROOT, "tests", "data", "example_ct_sm.nii.gz")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def timed(cmd, env=None):
    """Run cmd under /usr/bin/time -v: (wall s, peak RSS MiB, stdout)."""
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr[-2000:]}")
    wall = rss = None
    for line in p.stderr.splitlines():
        line = line.strip()
        if line.startswith("Elapsed (wall clock) time"):
            t = line.rsplit(" ", 1)[1].split(":")
            wall = sum(float(v) * 60 ** i for i, v in enumerate(reversed(t)))
        elif line.startswith("Maximum resident set size"):
            rss = int(line.rsplit(" ", 1)[1]) / 1024
    return wall, rss, p.stdout


def write_nifti(path, shape, spacing_zyx, fill_slab, chunk=8):
    """An int16 .nii of (z, y, x) `shape` written slab by slab: fill_slab(z0, z1) -> (z1-z0, Y, X) int16."""
    import nibabel as nib
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape[::-1])
    hdr.set_data_dtype(np.int16)
    aff = np.diag([spacing_zyx[2], spacing_zyx[1], spacing_zyx[0], 1.0])
    aff[:3, 3] = [-100.0, -120.0, -300.0]
    hdr.set_sform(aff, code=1)
    hdr.set_qform(aff, code=1)
    hdr.set_xyzt_units("mm")
    hdr["vox_offset"] = 352
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(hdr.binaryblock)
        f.write(b"\0" * 4)
        for z0 in range(0, shape[0], chunk):
            z1 = min(shape[0], z0 + chunk)
            f.write(np.ascontiguousarray(fill_slab(z0, z1), dtype="<i2").tobytes())
    os.replace(tmp, path)


def make_case(path, shape, spacing, seed=20240601, sigma=12.0):
    """The bundled CT upsampled trilinearly to `shape` with gaussian noise, int16 HU, as a .nii."""
    if os.path.exists(path):
        return
    t0 = time.time()
    vol = load_ct(CT)
    a = interp_axis(interp_axis(vol, 2, shape[2]), 1, shape[1]).astype(np.float32)
    zi0, zw = axis_weights(vol.shape[0], shape[0])
    zi1 = np.minimum(zi0 + 1, vol.shape[0] - 1)
    rng = np.random.default_rng(seed)

    def slab(z0, z1):
        s = a[zi0[z0:z1]]
        s += (a[zi1[z0:z1]] - s) * zw[z0:z1, None, None]
        s += rng.standard_normal(s.shape, dtype=np.float32) * np.float32(sigma)
        return np.clip(np.rint(s), -32768, 32767).astype(np.int16)

    write_nifti(path, shape, spacing, slab)
    log(f"wrote {path} {shape} int16 at {spacing} mm in {time.time() - t0:.0f} s")


# ---- the peers (run in a subprocess each, so that /usr/bin/time measures them alone) -------------------

def peer_convert(case, out_npy, new_spacing):
    """nnU-Net's preprocessing resample of a float32 case: (load s, resample s) as JSON on stdout."""
    import nibabel as nib
    from skimage.transform import resize
    t0 = time.time()
    img = nib.load(case)
    data = np.asarray(img.dataobj, dtype=np.float32).transpose(2, 1, 0)[None]  # (1, z, y, x)
    spacing = [float(v) for v in img.header.get_zooms()[::-1]]
    t1 = time.time()
    new_shape = [int(round(n * s / t)) for n, s, t in zip(data.shape[1:], spacing, new_spacing)]
    # resample_data_or_seg (nnunetv2/preprocessing/resampling/default_resampling.py), no separate z
    reshaped = np.zeros((data.shape[0], *new_shape), dtype=np.float32)
    data = data.astype(float, copy=False)
    for c in range(data.shape[0]):
        reshaped[c] = resize(data[c], new_shape, 3, mode="edge", anti_aliasing=False)
    t2 = time.time()
    if out_npy:
        np.save(out_npy, reshaped[0])
    print(json.dumps({"load": t1 - t0, "resample": t2 - t1, "shape": new_shape}))


def peer_export(pred, shape, out):
    """nnU-Net's export of probabilities: resize each class (order 1) to the source shape, argmax, NIfTI."""
    import nibabel as nib
    from skimage.transform import resize
    t0 = time.time()
    with voxtile.open(pred) as s:
        probs = s["pred"][...].astype(np.float32)  # the whole prediction, as nnU-Net holds it
    t1 = time.time()
    res = np.zeros((probs.shape[0], *shape), dtype=np.float32)
    for c in range(probs.shape[0]):
        res[c] = resize(probs[c].astype(float), shape, 1, mode="edge", anti_aliasing=False)
    seg = res.argmax(0).astype(np.uint8)
    del res
    t2 = time.time()
    nib.save(nib.Nifti1Image(seg.transpose(2, 1, 0), np.eye(4)), out)
    print(json.dumps({"load": t1 - t0, "resample_argmax": t2 - t1, "total": time.time() - t0}))


# ---- convert ---------------------------------------------------------------------------------------------

def run_convert(args):
    case = os.path.join(args.dir, "case_546x820x820_int16.nii")
    make_case(case, (546, 820, 820), (0.45, 0.8, 0.8))
    out = os.path.join(args.dir, "case_1mm.vxt")
    peer_out = os.path.join(args.dir, "case_1mm_peer.npy")
    vt = {1: [], 2: []}
    peer = []
    for r in range(args.rounds):
        if r < args.peer_rounds:
            wall, rss, so = timed([sys.executable, __file__, "_peer_convert", case, peer_out if r == 0 else ""])
            d = json.loads(so)
            peer.append((d["resample"], d["load"], wall, rss))
            log(f"round {r}: peer resample {d['resample']:.1f} s (load {d['load']:.1f} s), process {wall:.1f} s, "
                f"peak RSS {rss:.0f} MiB")
        for j in (1, 2):
            wall, rss, _ = timed([VOXTILE, "convert", case, "--spacing", "1,1,1", "-o", out, "-q", "-j", str(j)])
            vt[j].append((wall, rss))
            log(f"round {r}: voxtile -j {j} {wall:.1f} s, peak RSS {rss:.0f} MiB")
    with voxtile.open(out) as s:
        got = s["image"][...][0].astype(np.float32)
    ref = np.load(peer_out)
    rng_ = float(ref.max() - ref.min())
    mse = float(np.mean((got.astype(np.float64) - ref) ** 2))
    psnr = 10 * np.log10(rng_ ** 2 / mse)
    mae = float(np.mean(np.abs(got - ref)))
    pr = statistics.median(p[0] for p in peer)
    print("\n## convert --spacing 1,1,1: (546, 820, 820) int16 at 0.45 x 0.8 x 0.8 mm -> "
          f"{tuple(got.shape)}\n")
    print("| | wall s (median) | peak RSS MiB (max) | vs the peer's resampling |")
    print("|---|---|---|---|")
    print(f"| nnU-Net way: skimage order 3, whole array (resampling only) | {pr:.1f} | "
          f"{max(p[3] for p in peer):.0f} | 1 |")
    print(f"| nnU-Net way: the whole process (load {statistics.median(p[1] for p in peer):.1f} s) | "
          f"{statistics.median(p[2] for p in peer):.1f} | | |")
    for j in (1, 2):
        w = statistics.median(v[0] for v in vt[j])
        print(f"| voxtile convert --spacing -j {j} (read, resample, compress, write) | {w:.1f} | "
              f"{max(v[1] for v in vt[j]):.0f} | {100 * w / pr:.1f} % |")
    print(f"\nquality vs the peer's output: PSNR {psnr:.1f} dB (peak {rng_:.0f} HU), mean |difference| "
          f"{mae:.2f} HU (voxtile rounds to int16; cubic kernels: Keys vs B-spline)")
    print(f"rounds: peer {len(peer)}, voxtile {args.rounds}")


# ---- export ----------------------------------------------------------------------------------------------

def make_prediction(like, pred, classes, log_every=64):
    """A smooth classes-way float16 softmax on the like store's grid, from its image (HU bands)."""
    if os.path.exists(pred):
        return
    t0 = time.time()
    centres = np.linspace(-1000, 1200, classes)
    with voxtile.open(like) as s:
        img = s["image"]
        C, Z, Y, X = (classes,) + img.shape[1:]
        w = voxtile.Writer(pred + ".part", threads=2)
        aid = w.add_array("pred", (C, Z, Y, X), np.float16)
        w.set_meta("affine", s.affine.ravel())
        for z0 in range(0, Z, 16):
            z1 = min(Z, z0 + 16)
            hu = img.read((0, z0, 0, 0), (1, z1 - z0, Y, X), dtype=np.float32)[0]
            logits = -((hu[None] - centres[:, None, None, None].astype(np.float32)) / np.float32(120)) ** 2
            logits -= logits.max(0)
            np.exp(logits, out=logits)
            logits /= logits.sum(0)
            w.write(aid, (0, z0, 0, 0), logits.astype(np.float16))
            if z0 % log_every == 0:
                log(f"  prediction slab {z0}/{Z}")
        w.finalize()
    os.replace(pred + ".part", pred)
    log(f"wrote {pred} ({C}, {Z}, {Y}, {X}) float16 in {time.time() - t0:.0f} s")


def export_case(args, name, src_shape, src_spacing):
    case = os.path.join(args.dir, f"{name}.nii")
    make_case(case, src_shape, src_spacing)
    like = os.path.join(args.dir, f"{name}.vxt")
    if not os.path.exists(like):
        subprocess.run([VOXTILE, "convert", case, "--spacing", ",".join(str(2 * s) for s in src_spacing),
                        "-o", like, "-q"], check=True)
    pred = os.path.join(args.dir, f"{name}_pred14.vxt")
    make_prediction(like, pred, 14)
    return like, pred


def run_export(args):
    full = export_case(args, "case_1260x840x840_int16", (1260, 840, 840), (0.5, 0.4, 0.4))
    half = export_case(args, "case_630x420x420_int16", (630, 420, 420), (1.0, 0.8, 0.8))
    res = {"full": [], "half": [], "peer_half": []}
    out = os.path.join(args.dir, "pred_back.nii.gz")
    peer_out = os.path.join(args.dir, "pred_back_peer.nii.gz")
    peer_full = None
    for r in range(args.rounds):
        for key, (like, pred) in (("full", full), ("half", half)):
            o = out if key == "full" else out.replace(".nii.gz", "_half.nii.gz")
            wall, rss, _ = timed([VOXTILE, "export", pred, "--like", like, "--argmax", "-o", o, "-q"])
            res[key].append((wall, rss))
            log(f"round {r}: voxtile export {key} {wall:.1f} s, peak RSS {rss:.0f} MiB")
        if r < args.peer_rounds:
            wall, rss, so = timed([sys.executable, __file__, "_peer_export", half[1], "630,420,420", peer_out])
            d = json.loads(so)
            res["peer_half"].append((wall, rss, d))
            log(f"round {r}: peer export half {wall:.1f} s, peak RSS {rss:.0f} MiB")
        if r == 0:  # the peer at full size, with a cap on its address space
            cap = 16 << 30
            p = subprocess.run(["prlimit", f"--as={cap}", sys.executable, __file__, "_peer_export", full[1],
                                "1260,840,840", peer_out.replace(".nii.gz", "_full.nii.gz")],
                               capture_output=True, text=True)
            last = (p.stderr.strip().splitlines() or [""])[-1]
            peer_full = f"exit {p.returncode}: {last[:200]}"
            log(f"peer export full under prlimit --as=16GiB: {peer_full}")
    import nibabel as nib
    a = np.asarray(nib.load(out.replace(".nii.gz", "_half.nii.gz")).dataobj)
    b = np.asarray(nib.load(peer_out).dataobj)
    agree = float(np.mean(a == b))
    print("\n## export --like --argmax: 14-class float16 prediction at 2x the source spacing\n")
    print("| | grid -> source | wall s (median) | peak RSS MiB (max) |")
    print("|---|---|---|---|")
    for key, label, g in (("full", "voxtile export", "(630, 420, 420) -> (1260, 840, 840)"),
                          ("half", "voxtile export", "(315, 210, 210) -> (630, 420, 420)")):
        print(f"| {label} | {g} | {statistics.median(v[0] for v in res[key]):.1f} | "
              f"{max(v[1] for v in res[key]):.0f} |")
    ph = res["peer_half"]
    print(f"| nnU-Net way (whole arrays, skimage order 1, argmax) | (315, 210, 210) -> (630, 420, 420) | "
          f"{statistics.median(v[0] for v in ph):.1f} | {max(v[1] for v in ph):.0f} |")
    print(f"| nnU-Net way | (630, 420, 420) -> (1260, 840, 840) | {peer_full} | needs > 49.8 GB |")
    print(f"\nhalf size: voxtile's labels equal the peer's at {100 * agree:.3f} % of the voxels "
          f"(the rest: float32 near-ties)")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_peer_convert":
        return peer_convert(sys.argv[2], sys.argv[3], (1.0, 1.0, 1.0))
    if len(sys.argv) > 1 and sys.argv[1] == "_peer_export":
        return peer_export(sys.argv[2], [int(v) for v in sys.argv[3].split(",")], sys.argv[4])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["convert", "export"])
    ap.add_argument("--dir", default=os.environ.get("BENCH_DIR", "/tmp/vtbench"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--peer-rounds", type=int, default=2)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    try:
        import skimage  # noqa: F401
    except ImportError:
        sys.exit("bench_resample.py: the peer needs scikit-image: apt-get install python3-skimage")
    (run_convert if args.part == "convert" else run_export)(args)


if __name__ == "__main__":
    main()
