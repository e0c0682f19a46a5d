"""PyTorch helpers: random training patches, sliding-window inference, stitching.

    from voxtile.torch import PatchDataset, GridPatches, Stitcher
    from voxtile.augment import SpatialAugment
    ds = PatchDataset(paths, (128, 128, 128), oversample_foreground=0.33, seed=1,
                      spatial=SpatialAugment.nnunet((128, 128, 128)))
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=12, persistent_workers=True,
                                         prefetch_factor=4)

prefetch_factor=4: with spatial augmentation a rotated or scaled patch costs ~4x a crop, and torch hands
batches back in order with prefetch_factor (default 2) queued per worker, so a worker whose queue is
done waits behind another's slow batch (2 workers on 2 cores: 6-11 % of the CPU idle with 2, 2-3 % with 4).

Item i of a PatchDataset depends only on (seed, epoch, i): any number of
workers, fork or spawn, returns the same patches for the same seed. Stores
are opened lazily in each process; a worker's mapped pages are released now
and then so its resident size stays flat.
"""
import math
import os
import weakref

import numpy as np
import torch

import voxtile

__all__ = ["PatchDataset", "GridPatches", "Stitcher", "sliding_window_steps", "gaussian_importance"]

_TORCH_TO_NP = {torch.float16: np.float16, torch.float32: np.float32, torch.float64: np.float64,
                torch.int16: np.int16, torch.int32: np.int32, torch.uint8: np.uint8, torch.int8: np.int8}


def _batch_tensor(shape, dtype, shared):
    """An uninitialised tensor; with shared, made in shared memory from the start. Tensor.share_memory_()
    would allocate it privately, then copy it into a new shared segment: every page touched twice, which
    costs more than the sampling on machines where a first touch is expensive (a VM: ~10 us per 4 KiB)."""
    if not shared:  # in huge pages where the system gives them (voxtile._huge_empty): filled right away
        a = voxtile._huge_empty(shape, np.int16 if dtype == torch.bfloat16 else _TORCH_TO_NP[dtype])
        return torch.empty(shape, dtype=dtype) if a is None else torch.from_numpy(a).view(dtype)
    n = math.prod(shape)
    new_shared = getattr(getattr(torch, "UntypedStorage", None), "_new_shared", None)
    if new_shared is None:  # an older torch
        return torch.empty(shape, dtype=dtype).share_memory_()
    return torch.empty(0, dtype=dtype).set_(new_shared(n * torch.empty(0, dtype=dtype).element_size()), 0, shape)


# A DataLoader worker makes each batch in shared memory, and torch hands the main process that memory.
# Made new for every batch, its pages are new too: on this project's VMs ~10 us for the first touch of
# each 4 KiB page (shared memory gets no huge pages), 40 ms for a batch of two 128^3 pairs, as long as
# sampling them. So a worker keeps its batch buffers and fills them again once the main process is done
# with them: each buffer (image and labels of one batch) ends in a flag byte per tensor, set by the worker
# when it hands the batch out and cleared by the main process when the last tensor over that part (any
# view, any numpy array made from it) is gone.
#
# Handing a buffer over costs both processes a descriptor passed through a socket and a new mapping (torch's
# file-descriptor sharing), ~1-2 ms of CPU per batch each: on a machine with as many workers as cores the
# main process's share is taken from the workers. So the main process keeps the mapping of each buffer it
# received (_RECEIVED, by a token the worker drew for it) and says so in the buffer's last byte; a worker
# sends the buffer itself only while that byte is clear, else just its token. Mappings of workers that
# have exited are dropped when a new buffer arrives (so at most one generation of workers' pools stays
# mapped after its workers are gone: the memory they used while they ran).
_POOL_SLOTS = 8  # buffers of one layout per worker; beyond them (batches kept by the caller) fresh ones
_ALIGN = 64
_RECEIVED = {}  # main process: token -> (worker pid, uint8 numpy array over that worker's buffer)
if hasattr(os, "register_at_fork"):  # a new worker must not keep the buffers of earlier workers mapped
    os.register_at_fork(after_in_child=_RECEIVED.clear)


class _PooledTensor(torch.Tensor):
    """One tensor of a batch in a worker's reusable shared buffer (image and labels share one buffer, so
    torch passes one descriptor per batch). Pickled to the main process as the buffer and where the tensor
    lies in it: unpickled, a plain tensor whose end clears its flag byte; the worker fills the buffer again
    once every flag is clear. Operations on it (a collate_fn, a transform in the worker) give plain tensors:
    sent by torch as they are, they leave their part flagged, so the worker never refills that buffer."""

    __torch_function__ = torch._C._disabled_torch_function_impl

    def __reduce_ex__(self, protocol):
        buf, token = self._vt_buffer, self._vt_token
        held = buf.numpy()[-1] == 1  # the main process holds a mapping of this buffer
        return (_pooled_rebuild, (token, None if held else buf) + self._vt_part + (self.dtype, tuple(self.shape)))


class _InlineTensor(torch.Tensor):
    """A small tensor of a batch (cases, starts) pickled by value: no shared memory, no descriptor."""

    __torch_function__ = torch._C._disabled_torch_function_impl

    def __reduce_ex__(self, protocol):
        return (_inline_rebuild, (self.tolist(), self.dtype))


def _inline_rebuild(values, dtype):
    return torch.tensor(values, dtype=dtype)


def _pooled_free(flag):
    flag[0] = 0


def _received(token, buffer):
    """The main process's mapping of the buffer with this token: the one kept from an earlier batch, or the
    buffer just received, kept (and its last byte set to tell the worker) after dropping those of workers
    that have exited."""
    got = _RECEIVED.get(token)
    if got is not None:
        return got[1]
    if buffer is None:
        raise RuntimeError(f"voxtile.torch: batch buffer {token} of a PatchDataset worker was never received "
                           "by this process (was the batch unpickled elsewhere?)")
    for t, (pid, _) in list(_RECEIVED.items()):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            del _RECEIVED[t]
        except OSError:
            pass
    raw = buffer.numpy()
    _RECEIVED[token] = (int(token.split("-")[0]), raw)
    raw[-1] = 1
    return raw


def _pooled_rebuild(token, buffer, offset, nbytes, flag, dtype, shape):
    """In the main process: the batch tensor over the received buffer, and its release when it is gone."""
    raw = _received(token, buffer)
    bf16 = dtype == torch.bfloat16
    data = raw[offset:offset + nbytes].view(np.int16 if bf16 else _TORCH_TO_NP[dtype]).reshape(shape)
    t = torch.from_numpy(data)  # holds `data` until its storage dies: every view, every numpy array of it
    weakref.finalize(data, _pooled_free, raw[flag:flag + 1]).atexit = False
    return t.view(torch.bfloat16) if bf16 else t


class _BufferPool:
    """One worker's batch buffers, by layout (see _PooledTensor)."""

    def __init__(self):
        self.pid = os.getpid()
        self.free = {}  # layout -> [(uint8 tensor over the buffer, its numpy array)]

    def take(self, parts):
        """For each (shape, dtype) of parts: (tensor to hand out, plain tensor to fill), all in one buffer: a
        free one of the pool, a new one, or, with every buffer of that layout still held by the main process,
        fresh unpooled tensors."""
        new_shared = getattr(getattr(torch, "UntypedStorage", None), "_new_shared", None)
        layout, off = [], 0
        for shape, dtype in parts:
            nbytes = math.prod(shape) * torch.empty(0, dtype=dtype).element_size()
            layout.append((off, nbytes))
            off += -(-nbytes // _ALIGN) * _ALIGN
        flags = off  # one byte per part: set while the main process may hold that part
        key = tuple(parts)
        slots = self.free.setdefault(key, [])
        slot = next((s for s in slots if not s[1][flags:flags + len(parts)].any()), None)
        if slot is None:
            if new_shared is None or len(slots) >= _POOL_SLOTS:
                return [(t, t) for t in (_batch_tensor(shape, dtype, True) for shape, dtype in parts)]
            size = flags + _ALIGN  # the flag bytes, and last the main process's "I keep it mapped"
            buf = torch.empty(0, dtype=torch.uint8).set_(new_shared(size), 0, (size,))
            slot = (buf, buf.numpy(), f"{os.getpid()}-{os.urandom(8).hex()}")
            slot[1][flags:] = 0
            slots.append(slot)
        slot[1][flags:flags + len(parts)] = 1
        out = []
        for i, ((shape, dtype), (o, nbytes)) in enumerate(zip(parts, layout)):
            plain = slot[0][o:o + nbytes].view(dtype).view(shape)
            t = plain.as_subclass(_PooledTensor)
            t._vt_buffer, t._vt_token, t._vt_part = slot[0], slot[2], (o, nbytes, flags + i)
            out.append((t, plain))
        return out


class PatchDataset(torch.utils.data.Dataset):
    """Random patches of a list of stores, image and label from the same box.

    paths: store files. patch_size: (z, y, x). With batch_size set, an item is a whole batch (patches
    batch_size*i ... batch_size*i + batch_size - 1, each read straight into its slot of the batch tensor:
    use DataLoader(batch_size=None); in a DataLoader worker the batch tensors are in shared memory the
    worker keeps and fills again once the main process holds no tensor, view or numpy array over them:
    batches kept longer stay as they were, and cost the worker new buffers); otherwise each item:
    {"image": (C, z, y, x) tensor of `dtype`,
    "seg": (L, z, y, x) int16 tensor, one channel per label array named after the image in `arrays`
    (each (1, z, y, x) in the store; absent with arrays=("image",)), "case": index into paths,
    "start": (z, y, x) tensor}. A fraction `oversample_foreground` of the items is centred on a
    random voxel of a random foreground label (a value != 0 of the first label array, or one of `labels`),
    found through the label index in the file: no label data is scanned. The others start uniformly
    in the volume. Patches may extend past the border: the image is padded with `pad`/`pad_value`
    (nnU-Net: constant 0), the label with `seg_pad_value` (nnU-Net: -1). A floating `dtype` gives the
    image with the store's NIfTI scaling applied (Array.scaling: raw * scl_slope + scl_inter, as nibabel's
    get_fdata()); an integer one the raw stored values. Labels are never scaled.

    spatial: a voxtile.augment.SpatialAugment. Each patch is then drawn about its centre (a foreground voxel
    or a uniform position, as above) with a random rotation, scaling, mirroring or deformation, and sampled
    straight from the tiles in one pass: the image trilinearly, every label array by label vote (the argmax
    of one-hot trilinear interpolation, any number of labels). The draw depends only on (seed, epoch, i).
    normalize: None, True, one (clip_lo, clip_hi, mean, std) for every channel, or one such tuple per
    channel: the image is clipped, then (x - mean) / std, in the same pass as the read (no normalised copy
    of the data anywhere); clip bounds may be None. E.g. nnU-Net's CT normalisation (foreground 0.5/99.5
    percentiles, mean, std) or a z-score (None, None, mean, std). True: each store's own, recorded by
    `convert --normalize` (Array.normalization; a store without one is an error).
    """

    def __init__(self, paths, patch_size, *, arrays=("image", "seg"), oversample_foreground=0.33,
                 dtype=torch.float16, pad="constant", pad_value=0.0, seg_pad_value=-1, seed=0, length=1000,
                 labels=None, release_every=16, batch_size=None, spatial=None, normalize=None):
        self.paths = [os.fspath(p) for p in paths]
        if not self.paths:
            raise ValueError("PatchDataset needs at least one store")
        self.patch_size = tuple(int(p) for p in patch_size)
        if len(self.patch_size) != 3 or min(self.patch_size) < 1:
            raise ValueError(f"patch_size must be (z, y, x) of sizes >= 1, not {patch_size}")
        self.arrays = tuple(arrays)
        if not self.arrays or len(set(self.arrays)) != len(self.arrays):
            raise ValueError(f"arrays must name the image and then any label arrays, each once, not {arrays}")
        self._nseg = len(self.arrays) - 1  # label arrays: channels of "seg"
        self.oversample_foreground = float(oversample_foreground)
        self.dtype = dtype
        self.pad, self.pad_value, self.seg_pad_value = pad, pad_value, seg_pad_value
        self.seed, self.length = int(seed), int(length)
        # in shared memory, so set_epoch reaches workers that are already running (persistent_workers)
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self.labels = None if labels is None else set(int(v) for v in labels)
        self.release_every = int(release_every)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.spatial = spatial
        if spatial is not None and tuple(spatial.patch_size) != self.patch_size:
            raise ValueError(f"spatial augmentation is for patches of {spatial.patch_size}, the dataset's are "
                             f"{self.patch_size}")
        self.normalize = _normalization(normalize)
        self._stores, self._served, self._pool = {}, 0, None

    def __len__(self):
        """Items: patches, or batches when batch_size is set (length // batch_size)."""
        return self.length if self.batch_size is None else self.length // self.batch_size

    def set_epoch(self, epoch):
        """Draw other patches for another epoch (same seed, same patches for the same epoch); reaches
        running workers too."""
        self._epoch.fill_(int(epoch))

    @property
    def epoch(self):
        return int(self._epoch)

    def __getstate__(self):  # spawned workers reopen the stores themselves
        d = dict(self.__dict__)
        d["_stores"], d["_pool"] = {}, None
        return d

    def _store(self, case):
        st = self._stores.get(case)
        if st is None:
            st = voxtile.open(self.paths[case])
            missing = [a for a in self.arrays if a not in st]
            if missing:
                st.close()
                raise voxtile.NotFound(-8, f"{self.paths[case]}: no array {missing[0]!r} (PatchDataset reads "
                                           f"arrays={self.arrays}; pass arrays=('image',) for stores without labels)")
            wrong = [st[a] for a in self.arrays[1:] if st[a].ndim != 4 or st[a].shape[0] != 1]
            if wrong:  # each label array is one channel of "seg"
                st.close()
                raise voxtile.InvalidArgument(-7, f"{self.paths[case]}: label array '{wrong[0].name}' has shape "
                                                  f"{wrong[0].shape}: PatchDataset needs (1, z, y, x)")
            self._stores[case] = st
        return st

    def _foreground_start(self, st, rng):
        """Start of a patch centred on a random voxel of a random foreground label; None if there is none."""
        seg = st[self.arrays[1]]
        index = seg.labels
        values = [v for v in index if (v != 0 if self.labels is None else v in self.labels)]
        if not values:
            return None
        value = values[rng.integers(len(values))]
        voxels, tiles = index[value]
        # a tile with probability proportional to its voxels of the value, then a voxel of it uniformly:
        # every voxel of the label equally likely
        t = tiles[np.searchsorted(np.cumsum(tiles[:, 1]), rng.integers(voxels), side="right"), 0]
        info = seg.tile(int(t))
        block = seg.read(info["start"], info["extent"])
        hits = np.flatnonzero(block == value)
        k = np.unravel_index(hits[rng.integers(len(hits))], block.shape)
        centre = [info["start"][d] + int(k[d]) for d in range(1, 4)]
        return [c - p // 2 for c, p in zip(centre, self.patch_size)]

    def _draw(self, i):
        """Case and start of patch i: a function of (seed, epoch, i) only."""
        rng = np.random.default_rng([self.seed, int(self._epoch), int(i)])
        case = int(rng.integers(len(self.paths)))
        st = self._store(case)
        img = st[self.arrays[0]]
        if img.ndim != 4:
            raise voxtile.InvalidArgument(-7, f"{self.paths[case]}: '{img.name}' is not a (c, z, y, x) image")
        start = None
        if len(self.arrays) > 1 and rng.random() < self.oversample_foreground:
            start = self._foreground_start(st, rng)
        if start is None:
            start = [int(rng.integers(min(0, s - p), max(0, s - p) + 1))
                     for s, p in zip(img.shape[1:], self.patch_size)]
        return case, st, img, start

    def _transforms(self, case, img):
        """Per-channel (clip_lo, clip_hi, scale, offset) of the normalisation, or None."""
        if self.normalize is None:
            return None
        if self.normalize is True:
            rec = img.normalization
            if rec is None:
                raise voxtile.InvalidArgument(-7, f"{self.paths[case]}: '{img.name}' records no normalisation "
                                                  f"(convert --normalize), and normalize=True asks for it")
            return _normalization(rec)
        norm = self.normalize * img.shape[0] if len(self.normalize) == 1 else self.normalize
        if len(norm) != img.shape[0]:
            raise voxtile.InvalidArgument(-7, f"{self.paths[case]}: '{img.name}' has {img.shape[0]} channels, "
                                              f"normalize gives {len(norm)}")
        return norm

    def _read(self, i, image_out=None, seg_out=None):
        """Patch i into new arrays, or into the given ones (slots of a batch)."""
        case, st, img, start = self._draw(i)
        if image_out is not None and image_out.shape[0] != img.shape[0]:
            raise voxtile.InvalidArgument(-7, f"{self.paths[case]}: '{img.name}' has {img.shape[0]} channels, the "
                                              f"batch {image_out.shape[0]}: batch_size mode needs the same number "
                                              f"of channels in every store")
        bf16 = self.dtype == torch.bfloat16
        dtype = "bfloat16" if bf16 else _TORCH_TO_NP[self.dtype]
        xforms = self._transforms(case, img)
        if self._nseg and seg_out is None:
            seg_out = np.empty((self._nseg,) + self.patch_size, np.int16)
        if self.spatial is not None:
            # the same rng stream after the case and centre: a function of (seed, epoch, i)
            rng = np.random.default_rng([self.seed, int(self._epoch), int(i), 1])
            centre = [s + (p - 1) / 2 for s, p in zip(start, self.patch_size)]
            t = self.spatial.draw(rng, centre)
            targets = [(img, dict(dtype=dtype, pad=self.pad, pad_value=self.pad_value, out=image_out,
                                  channel_transforms=xforms))]
            for k, name in enumerate(self.arrays[1:]):
                targets.append((st[name], dict(
                    order="label", dtype=np.int16, pad="constant", pad_value=self.seg_pad_value,
                    out=seg_out[k:k + 1])))
            image = voxtile.sample_many(targets, t.matrix, self.patch_size, displacement=t.displacement)[0]
        else:
            box = ([0] + start, (img.shape[0],) + self.patch_size)
            if xforms is None or all(x == xforms[0] for x in xforms):
                image = img.read(*box, dtype=dtype, pad=self.pad, pad_value=self.pad_value, out=image_out,
                                 transform=None if xforms is None else xforms[0])
            else:  # a transform of its own per channel: channel by channel, into the same array
                image = image_out if image_out is not None else np.empty(box[1], np.dtype(np.uint16 if bf16
                                                                                         else dtype))
                for c, x in enumerate(xforms):
                    img.read([c] + start, (1,) + self.patch_size, dtype=dtype, pad=self.pad,
                             pad_value=self.pad_value, out=image[c:c + 1], transform=x)
            for k, name in enumerate(self.arrays[1:]):
                st[name].read([0] + start, (1,) + self.patch_size, dtype=np.int16, pad="constant",
                              pad_value=self.seg_pad_value, out=seg_out[k:k + 1])
        seg = seg_out
        self._served += 1
        if self.release_every and self._served % self.release_every == 0:
            for s in self._stores.values():  # keep the resident size flat
                s.release()
        return case, start, image, seg

    def _tensor(self, a):
        t = torch.from_numpy(a if self.dtype != torch.bfloat16 else a.view(np.int16))
        return t.view(torch.bfloat16) if self.dtype == torch.bfloat16 else t

    def __getitem__(self, i):
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} of {len(self)}")
        if self.batch_size is None:
            case, start, image, seg = self._read(i)
            item = {"image": self._tensor(image), "case": case, "start": torch.tensor(start)}
            if seg is not None:
                item["seg"] = torch.from_numpy(seg)
            return item
        # a whole batch, each patch read straight into its slot (no collate copy): use DataLoader(batch_size=None)
        b = self.batch_size
        first_case, _, first_img, _ = self._draw(i * b)
        c = first_img.shape[0]
        # in a worker, the batch is made in shared memory (handing it to the main process copies nothing),
        # in buffers the worker fills again once the main process is done with them (_BufferPool)
        img_shape, seg_shape = (b, c) + self.patch_size, (b, self._nseg) + self.patch_size
        in_worker = torch.utils.data.get_worker_info() is not None
        if in_worker:
            if self._pool is None or self._pool.pid != os.getpid():
                self._pool = _BufferPool()
            parts = [(img_shape, self.dtype)] + ([(seg_shape, torch.int16)] if self._nseg else [])
            got = self._pool.take(parts)
            (timg, fill_img), (tseg, fill_seg) = got[0], (got[1] if len(got) > 1 else (None, None))
        else:
            timg = fill_img = _batch_tensor(img_shape, self.dtype, False)
            tseg = fill_seg = _batch_tensor(seg_shape, torch.int16, False) if self._nseg else None
        images = (fill_img.view(torch.int16) if self.dtype == torch.bfloat16 else fill_img).numpy()
        segs = None if fill_seg is None else fill_seg.numpy()
        cases, starts = [], []
        for k in range(b):
            out = images[k] if self.dtype != torch.bfloat16 else images[k].view(np.uint16)
            case, start, _, _ = self._read(i * b + k, out, None if segs is None else segs[k])
            cases.append(case)
            starts.append(start)
        batch = {"image": timg, "case": torch.tensor(cases), "start": torch.tensor(starts)}
        if in_worker:  # the small tensors by value, not each in shared memory of its own
            batch["case"] = batch["case"].as_subclass(_InlineTensor)
            batch["start"] = batch["start"].as_subclass(_InlineTensor)
        if tseg is not None:
            batch["seg"] = tseg
        return batch


def _normalization(normalize):
    """normalize= as a list of (clip_lo, clip_hi, scale, offset): None, one (lo, hi, mean, std) for all
    channels, or one per channel."""
    if normalize is None or normalize is True:
        return normalize
    if normalize is False:
        return None
    items = list(normalize)
    if len(items) == 4 and all(v is None or np.isscalar(v) for v in items):
        items = [items]
    out = []
    for it in items:
        lo, hi, mean, std = it
        if not (np.isfinite(float(mean)) and np.isfinite(float(std)) and float(std) > 0):
            raise ValueError(f"normalize needs a finite mean and a positive std, not {it!r}")
        out.append((lo, hi, 1.0 / float(std), -float(mean) / float(std)))
    return out


def sliding_window_steps(image_size, patch_size, overlap=0.5):
    """Start positions along each axis of a sliding window covering image_size with patch_size and the
    given overlap fraction (nnU-Net's compute_steps_for_sliding_window with step = 1 - overlap).
    An axis shorter than the patch has the single start 0 (the patch is padded)."""
    steps = []
    for n, p in zip(image_size, patch_size):
        if n <= p:
            steps.append([0])
            continue
        target = p * (1.0 - overlap)
        k = int(np.ceil((n - p) / target)) + 1
        step = (n - p) / (k - 1)
        steps.append([int(np.round(step * i)) for i in range(k)])
    return steps


class GridPatches:
    """The sliding-window tiling of a case for inference: iterate for (z, y, x) starts in C order (z slowest,
    the order Stitcher needs), read(start) for the patch (padded where it leaves the volume)."""

    def __init__(self, store, patch_size, overlap=0.5, array="image", normalize=False):
        self.store = store if isinstance(store, voxtile.Store) else voxtile.open(store)
        self.array = self.store[array]
        self.patch_size = tuple(int(p) for p in patch_size)
        self.steps = sliding_window_steps(self.array.shape[1:], self.patch_size, overlap)
        self.normalize = bool(normalize)  # the store's recorded normalisation (Array.normalization)
        if self.normalize and self.array.normalization is None:
            raise voxtile.InvalidArgument(-7, f"{self.store.path}: '{array}' records no normalisation "
                                              f"(convert --normalize), and normalize=True asks for it")

    def __len__(self):
        return int(np.prod([len(s) for s in self.steps]))

    def __iter__(self):
        for z in self.steps[0]:
            for y in self.steps[1]:
                for x in self.steps[2]:
                    yield (z, y, x)

    def read(self, start, dtype=np.float32, pad="constant", pad_value=0.0):
        a = self.array
        return a.read((0,) + tuple(start), (a.shape[0],) + self.patch_size, dtype=dtype, pad=pad,
                      pad_value=pad_value, normalize=self.normalize)


def gaussian_importance(patch_size, sigma_scale=1.0 / 8):
    """nnU-Net's importance map: a Gaussian centred on the patch, sigma = patch * sigma_scale, max 1,
    no zero weights."""
    grid = np.meshgrid(*[np.arange(p, dtype=np.float64) for p in patch_size], indexing="ij")
    g = np.ones(patch_size)
    for d, p in enumerate(patch_size):
        sigma = p * sigma_scale
        g *= np.exp(-0.5 * ((grid[d] - (p - 1) / 2.0) / sigma) ** 2)
    g /= g.max()
    g[g == 0] = g[g > 0].min()
    return g.astype(np.float32)


class Stitcher:
    """Accumulate overlapping patch predictions, Gaussian-weighted, into an out-of-core store.

    Stitcher(path, shape=(C, Z, Y, X), patch_size=(pz, py, px)); add(start, prediction) for the patches
    in GridPatches order (z never decreasing); finalize() writes the store. Only a band of patch-depth
    slices is in memory: slices no later patch can reach are normalised and written as soon as the
    next patch starts further down, so a 1000-slice prediction never needs a volume-sized array.
    output: "probabilities" (array `array`, dtype `dtype`, C channels) or "argmax" (uint8 labels,
    one channel, written as a label array with its label index)."""

    def __init__(self, path, shape, patch_size, *, array="pred", dtype=np.float32, output="probabilities",
                 sigma_scale=1.0 / 8, threads=1, metadata=None):
        if output not in ("probabilities", "argmax"):
            raise ValueError("output must be 'probabilities' or 'argmax'")
        self.shape = tuple(int(s) for s in shape)
        self.patch_size = tuple(int(p) for p in patch_size)
        if len(self.shape) != 4 or len(self.patch_size) != 3:
            raise ValueError("shape is (C, Z, Y, X) and patch_size (z, y, x)")
        self.output, self.dtype = output, np.dtype(dtype)
        self.weight_map = gaussian_importance(self.patch_size, sigma_scale)
        C, Z, Y, X = self.shape
        depth = self.patch_size[0]
        self._sum = np.zeros((C, depth, Y, X), np.float32)
        self._w = np.zeros((depth, Y, X), np.float32)
        self._z0 = 0  # first slice of the band
        self._last_start = 0
        self._writer = voxtile.Writer(path, threads=threads)
        if output == "argmax":
            self._id = self._writer.add_array(array, (1, Z, Y, X), np.uint8, labels=True)
        else:
            self._id = self._writer.add_array(array, self.shape, self.dtype)
        for k, v in (metadata or {}).items():
            self._writer.set_meta(k, v)
        self._done = False

    def _flush(self, until):
        """Normalise and write slices [z0, until); shift the band."""
        n = until - self._z0
        if n <= 0:
            return
        w = self._w[:n]
        w = np.where(w > 0, w, 1.0)
        probs = self._sum[:, :n] / w[None]
        if self.output == "argmax":
            data = probs.argmax(axis=0)[None].astype(np.uint8)
        else:
            data = probs.astype(self.dtype)
        self._writer.write(self._id, (0, self._z0, 0, 0), data)
        depth = self._w.shape[0]
        self._sum[:, :depth - n] = self._sum[:, n:]
        self._sum[:, depth - n:] = 0
        self._w[:depth - n] = self._w[n:]
        self._w[depth - n:] = 0
        self._z0 = until

    def add(self, start, prediction):
        """Add the prediction (C, pz, py, px) of the patch starting at (z, y, x)."""
        if self._done:
            raise RuntimeError("Stitcher already finalized")
        if isinstance(prediction, torch.Tensor):
            prediction = prediction.detach().float().cpu().numpy()
        prediction = np.asarray(prediction, dtype=np.float32)
        C, Z, Y, X = self.shape
        if prediction.shape != (C,) + self.patch_size:
            raise ValueError(f"prediction shape {prediction.shape}, expected {(C,) + self.patch_size}")
        z, y, x = (int(v) for v in start)
        if z < self._last_start:
            raise ValueError(f"patches must come in z order (GridPatches order): start z {z} after {self._last_start}")
        self._last_start = z
        self._flush(min(max(z, self._z0), Z))
        # the part of the patch inside the volume
        lo = [max(0, -v) for v in (z, y, x)]
        hi = [min(p, n - v) for p, n, v in zip(self.patch_size, (Z, Y, X), (z, y, x))]
        if any(h <= l for l, h in zip(lo, hi)):
            return
        sl = tuple(slice(a, b) for a, b in zip(lo, hi))
        wz = slice(z + lo[0] - self._z0, z + hi[0] - self._z0)
        wy, wx = slice(y + lo[1], y + hi[1]), slice(x + lo[2], x + hi[2])
        wmap = self.weight_map[sl]
        self._sum[:, wz, wy, wx] += prediction[(slice(None),) + sl] * wmap[None]
        self._w[wz, wy, wx] += wmap

    def finalize(self):
        """Write what is left and publish the store."""
        Z = self.shape[1]
        while self._z0 < Z:
            self._flush(min(Z, self._z0 + self._w.shape[0]))
        self._writer.finalize()
        self._writer.close()
        self._done = True

    def close(self):
        """Abandon (nothing is left behind) unless finalized."""
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *rest):
        if exc_type is None and not self._done:
            self.finalize()
        self.close()
