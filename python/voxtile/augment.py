"""Spatial data augmentation of 3-D training patches, sampled straight from the tiles.

    from voxtile.augment import SpatialAugment
    aug = SpatialAugment.nnunet((128, 128, 128))          # nnU-Net v2's trainer settings
    t = aug.draw(np.random.default_rng(0), centre=(60.0, 200.0, 310.0))
    image, seg = voxtile.sample_many([(st["image"], dict(dtype="float16")),
                                      (st["seg"], dict(order="label", dtype="int16", pad_value=-1))],
                                     t.matrix, aug.patch_size, displacement=t.displacement)

A drawn transform maps output voxel o (z, y, x) of the patch to the source position
    centre + A (o + d(o) - (patch - 1) / 2)
with A = S R F: F flips the mirrored axes (about the patch centre), R rotates about the z, y and x axes,
S scales the source axes (a scale above 1 shows more of the volume: structures look smaller, as in
nnU-Net), and d is an optional smooth displacement field (elastic deformation, in output voxels,
deforming before rotating as nnU-Net does). Everything is in voxels of the array; the matrix handed to
the sampler is the 3x4 [A | centre - A (patch - 1) / 2].

SpatialAugment.nnunet(patch_size) follows nnU-Net v2's nnUNetTrainer: rotation ±30° about each axis with
probability 0.2, isotropic scaling 0.7-1.4 with probability 0.2, no elastic deformation, mirroring of each
axis with probability 0.5. For patch sizes whose largest edge exceeds 3x the first (z) edge -- nnU-Net's
"dummy 2-D" augmentation for anisotropic data -- the rotation is in-plane only (about z, ±180°) and the
scaling in-plane only. One difference: nnU-Net rotates the normalised grid of its (often cubic) source box,
which for a non-cubic box shears as well; here rotations are rigid in voxel space.
"""
import math
from collections import namedtuple

import numpy as np

__all__ = ["SpatialAugment", "Transform", "rotation_matrix"]

Transform = namedtuple("Transform", "matrix displacement angles scales mirror")
Transform.__doc__ = """A drawn spatial transform: matrix (3x4 float64, for Array.sample / voxtile.sample_many),
displacement (float32 (3, gz, gy, gx) or None), and what was drawn: angles (radians about z, y, x),
scales (z, y, x), mirror (bools per axis)."""


def rotation_matrix(angles):
    """R_z(a_z) @ R_y(a_y) @ R_x(a_x) in (z, y, x) coordinates: a rotation by a_z about the z axis (in the
    y-x plane), then a_y about y, then a_x about x."""
    r = np.eye(3)
    for axis, a in enumerate(angles):
        if a == 0:
            continue
        c, s = math.cos(a), math.sin(a)
        i, j = [k for k in range(3) if k != axis]
        m = np.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        r = r @ m
    return r


def _range(value, what):
    lo, hi = (float(v) for v in value)
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
        raise ValueError(f"{what} must be a (low, high) pair of numbers with low <= high, not {value!r}")
    return lo, hi


def _gaussian_smooth(a, sigmas):
    """Separable Gaussian smoothing of a 3-d array (reflecting at the borders), sigmas in grid units."""
    out = np.asarray(a, np.float64)
    for axis, sigma in enumerate(sigmas):
        if sigma <= 0 or out.shape[axis] == 1:
            continue
        radius = max(1, int(math.ceil(3 * sigma)))
        x = np.arange(-radius, radius + 1, dtype=np.float64)
        k = np.exp(-0.5 * (x / sigma) ** 2)
        k /= k.sum()
        pad = [(0, 0)] * 3
        pad[axis] = (radius, radius)
        p = np.pad(out, pad, mode="symmetric" if radius < out.shape[axis] else "wrap")
        out = sum(k[i] * np.take(p, range(i, i + out.shape[axis]), axis=axis) for i in range(len(k)))
    return out


class SpatialAugment:
    """Draws random spatial transforms of a patch about a centre: rotation, scaling, mirroring, elastic.

    patch_size: (z, y, x) output voxels.
    rotation: (low, high) radians for each axis, or 3 such pairs (about z, y, x); p_rotation: probability
        of rotating at all; p_rot_per_axis: then each axis's probability (nnU-Net v2: 1).
    scaling: (low, high); p_scaling; synchronize_scaling: one scale for every axis (nnU-Net) or one each.
    p_elastic: probability of a displacement field; elastic_magnitude: (low, high) largest displacement as
        a fraction of the patch edge, per axis; elastic_scale: (low, high) smoothness, the Gaussian sigma
        as a fraction of the patch edge; elastic_grid: spacing in output voxels of the field's grid (the
        sampler interpolates it trilinearly).
    mirror_axes: axes that may be flipped, each with probability p_mirror.
    in_plane: rotate about z only and scale y and x only (nnU-Net's 2-D augmentation of anisotropic data).
    """

    def __init__(self, patch_size, *, rotation=(-math.pi / 6, math.pi / 6), p_rotation=0.2, p_rot_per_axis=1.0,
                 scaling=(0.7, 1.4), p_scaling=0.2, synchronize_scaling=True, p_elastic=0.0,
                 elastic_magnitude=(0.0, 0.2), elastic_scale=(0.0, 0.2), elastic_grid=8,
                 mirror_axes=(0, 1, 2), p_mirror=0.5, in_plane=False):
        self.patch_size = tuple(int(p) for p in patch_size)
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            raise ValueError(f"patch_size must be (z, y, x) of sizes >= 1, not {patch_size}")
        rot = list(rotation)
        if len(rot) == 2 and all(np.isscalar(v) for v in rot):
            rot = [rot] * 3
        if len(rot) != 3:
            raise ValueError(f"rotation must be a (low, high) pair or 3 of them (z, y, x), not {rotation!r}")
        self.rotation = [_range(r, "rotation") for r in rot]
        self.scaling = _range(scaling, "scaling")
        if self.scaling[0] <= 0:
            raise ValueError(f"scaling must be positive, not {scaling!r}")
        self.elastic_magnitude = _range(elastic_magnitude, "elastic_magnitude")
        self.elastic_scale = _range(elastic_scale, "elastic_scale")
        for name in ("p_rotation", "p_rot_per_axis", "p_scaling", "p_elastic", "p_mirror"):
            v = float(locals()[name])
            if not 0 <= v <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], not {v}")
            setattr(self, name, v)
        self.synchronize_scaling = bool(synchronize_scaling)
        self.elastic_grid = max(1, int(elastic_grid))
        self.mirror_axes = tuple(int(a) for a in mirror_axes)
        if any(a not in (0, 1, 2) for a in self.mirror_axes):
            raise ValueError(f"mirror_axes are among (0, 1, 2), not {mirror_axes!r}")
        self.in_plane = bool(in_plane)

    @classmethod
    def nnunet(cls, patch_size):
        """nnU-Net v2's defaults (nnUNetTrainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size and
        get_training_transforms): rotation ±30° about each axis (p 0.2), scaling 0.7-1.4 on all axes at once
        (p 0.2), no elastic deformation, mirroring of each axis (p 0.5); for patches whose largest edge is
        more than 3x the z edge, in-plane rotation ±180° and in-plane scaling only."""
        p = tuple(int(v) for v in patch_size)
        if max(p) / p[0] > 3:
            return cls(p, rotation=[(-math.pi, math.pi), (0.0, 0.0), (0.0, 0.0)], in_plane=True)
        return cls(p)

    def __repr__(self):
        return (f"SpatialAugment({self.patch_size}, rotation={self.rotation}, p_rotation={self.p_rotation}, "
                f"scaling={self.scaling}, p_scaling={self.p_scaling}, p_elastic={self.p_elastic}, "
                f"mirror_axes={self.mirror_axes}, p_mirror={self.p_mirror}, in_plane={self.in_plane})")

    def draw(self, rng, centre):
        """A random Transform of the patch about source position `centre` (z, y, x, voxels; the patch's
        middle lands there). rng: a numpy.random.Generator; the draw depends only on its state."""
        centre = np.asarray(centre, dtype=np.float64)
        if centre.shape != (3,) or not np.isfinite(centre).all():
            raise ValueError(f"centre must be 3 finite coordinates (z, y, x), not {centre!r}")
        angles = [0.0, 0.0, 0.0]
        if rng.random() < self.p_rotation:
            for axis in ((0,) if self.in_plane else (0, 1, 2)):
                if rng.random() < self.p_rot_per_axis:
                    angles[axis] = float(rng.uniform(*self.rotation[axis]))
        scales = [1.0, 1.0, 1.0]
        if rng.random() < self.p_scaling:
            axes = (1, 2) if self.in_plane else (0, 1, 2)
            if self.synchronize_scaling:
                s = float(rng.uniform(*self.scaling))
                for axis in axes:
                    scales[axis] = s
            else:
                for axis in axes:
                    scales[axis] = float(rng.uniform(*self.scaling))
        displacement = None
        if rng.random() < self.p_elastic:
            displacement = self._field(rng)
        mirror = [False, False, False]
        for axis in self.mirror_axes:
            mirror[axis] = bool(rng.random() < self.p_mirror)
        a = np.diag(scales) @ rotation_matrix(angles) @ np.diag([-1.0 if m else 1.0 for m in mirror])
        half = (np.array(self.patch_size, np.float64) - 1) / 2
        matrix = np.hstack([a, (centre - a @ half)[:, None]])
        return Transform(matrix, displacement, tuple(angles), tuple(scales), tuple(mirror))

    def _field(self, rng):
        """A smooth random displacement field on a coarse grid spanning the patch: white noise smoothed with
        a Gaussian of sigma elastic_scale x patch edge, each component scaled to a largest magnitude of
        elastic_magnitude x patch edge (output voxels)."""
        p = np.array(self.patch_size, np.float64)
        shape = tuple(int(math.ceil((n - 1) / self.elastic_grid)) + 1 if n > 1 else 1 for n in self.patch_size)
        spacing = np.array([(n - 1) / (g - 1) if g > 1 else 1.0 for n, g in zip(self.patch_size, shape)])
        sigma = [float(rng.uniform(*self.elastic_scale)) * n for n in p]
        field = np.empty((3,) + shape, np.float32)
        for comp in range(3):
            noise = rng.standard_normal(shape)
            smooth = _gaussian_smooth(noise, [s / sp for s, sp in zip(sigma, spacing)])
            peak = np.abs(smooth).max()
            magnitude = float(rng.uniform(*self.elastic_magnitude)) * p[comp]
            field[comp] = smooth * (magnitude / peak if peak > 0 else 0.0)
        return field
