#!/usr/bin/python3
"""A picture of augmented training patches: for a few foreground-centred patches of a store, the plain crop
and the same patch rotated, scaled and mirrored by voxtile.augment.SpatialAugment (image and labels sampled
together from the tiles), the middle axial slice of each, soft-tissue window, labels in the colours of
`voxtile preview`. Prints what each call cost.

    PYTHONPATH=python /usr/bin/python3 examples/augment_montage.py STORE.vxt -o augmented.png [--patches 4]
"""
import argparse
import time

import numpy as np
from PIL import Image, ImageDraw

import voxtile
from voxtile.augment import SpatialAugment

# voxtile preview's label colours (tools/render.c): 1..20, then hues by the golden angle
COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
           (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
           (0, 0, 128), (255, 255, 255)]


def colour(v):
    if 1 <= v <= 20:
        return COLOURS[v - 1]
    h = (abs(v) * 0.6180339887498949) % 1.0 * 6
    i, f = int(h), h - int(h)
    val, p, q, t = 0.95 * 255, 0.0, 0.95 * 255 * (1 - f), 0.95 * 255 * f
    rgb = [(val, t, p), (q, val, p), (p, val, t), (p, q, val), (t, p, val), (val, p, q)][i % 6]
    return tuple(int(round(c)) for c in rgb)


def render(image, seg, zoom, level=40.0, width=400.0, alpha=0.45):
    """An RGB picture of a 2-d slice: windowed grey, labels blended over, nearest-neighbour zoom."""
    grey = np.clip((image - (level - width / 2)) / width, 0, 1) * 255
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    for v in np.unique(seg):
        if v > 0:
            m = seg == v
            rgb[m] = (1 - alpha) * rgb[m] + alpha * np.array(colour(int(v)))
    rgb[seg < 0] = (40, 40, 60)  # outside the volume
    pic = Image.fromarray(rgb.astype(np.uint8))
    return pic.resize((pic.width * zoom, pic.height * zoom), Image.NEAREST)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("store")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--patches", type=int, default=4)
    ap.add_argument("--patch", type=int, nargs=3, default=(16, 64, 64), help="z y x (default 16 64 64)")
    ap.add_argument("--zoom", type=int, default=3)
    ap.add_argument("--seed", type=int, default=4)
    args = ap.parse_args()
    patch = tuple(args.patch)
    aug = SpatialAugment(patch, rotation=(-np.pi / 4, np.pi / 4), p_rotation=1.0, scaling=(0.7, 1.4), p_scaling=1.0,
                         p_elastic=0.5, elastic_magnitude=(0.02, 0.06), elastic_scale=(0.1, 0.2))
    rng = np.random.default_rng(args.seed)
    tiles, label = [], []
    with voxtile.open(args.store) as st:
        img, seg = st["image"], st["seg"]
        labels = [v for v in seg.labels if v != 0]
        ident = SpatialAugment(patch, p_rotation=0, p_scaling=0, mirror_axes=())
        for n in range(args.patches):
            # a voxel of a random organ as the centre, as PatchDataset's foreground oversampling
            value = labels[rng.integers(len(labels))]
            _, where = seg.labels[value]
            t = int(where[rng.integers(len(where)), 0])
            info = seg.tile(t)
            block = seg.read(info["start"], info["extent"])
            k = np.argwhere(block[0] == value)[rng.integers(int((block[0] == value).sum()))]
            centre = [info["start"][d + 1] + int(k[d]) for d in range(3)]
            row = []
            for name, a in (("plain", ident), ("augmented", aug)):
                tr = a.draw(rng, centre)
                t0 = time.perf_counter()
                image, labs = voxtile.sample_many([(img, dict(dtype=np.float32)),
                                                   (seg, dict(order="label", dtype=np.int16, pad_value=-1))],
                                                  tr.matrix, patch, displacement=tr.displacement)
                ms = (time.perf_counter() - t0) * 1e3
                mid = patch[0] // 2
                row.append(render(image[0, mid], labs[0, mid], args.zoom))
                what = ("crop\n" if name == "plain" else
                        f"rotation {'/'.join(f'{np.degrees(x):+.0f}' for x in tr.angles)} deg\nscale {tr.scales[0]:.2f}"
                        f"{', mirror ' + ''.join('zyx'[i] for i in range(3) if tr.mirror[i]) if any(tr.mirror) else ''}"
                        f"{', elastic' if tr.displacement is not None else ''}")
                print(f"   patch {n}: {name:9s} {what.replace(chr(10), ', ').rstrip(', ')}: image + labels in {ms:.1f} ms")
                label.append(what)
            tiles.append(row)
    w, h = tiles[0][0].size
    pad = 30
    sheet = Image.new("RGB", (2 * w + 3 * 4, len(tiles) * (h + pad) + 4), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(tiles):
        for c, pic in enumerate(row):
            x, y = 4 + c * (w + 4), 4 + r * (h + pad)
            sheet.paste(pic, (x, y + pad - 4))
            draw.text((x + 2, y), label[2 * r + c], fill=(230, 230, 230))
    sheet.save(args.output)
    print(f"   {args.output}: {len(tiles)} patches of {patch}, plain (left) and augmented (right), middle axial slice")


if __name__ == "__main__":
    main()
