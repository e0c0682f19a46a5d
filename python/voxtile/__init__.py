"""voxtile: out-of-core tiled storage for 3-D/4-D medical images.

    import voxtile
    with voxtile.open("case.vxt") as st:
        img = st["image"]                      # lazy: nothing read yet
        patch = img.read((0, -16, 40, 40), (1, 128, 128, 128), dtype="float16", pad="reflect")
        slab = img[0, 10:20]                   # numpy basic indexing -> np.ndarray
        st.spacing, st.affine                  # geometry of the source

A store is read through its memory map; reads release the GIL. Handles may
be shared by threads, and survive fork() in DataLoader workers.
"""
import ctypes
import errno
import mmap
import operator
import os

import numpy as np

from . import _ffi

__all__ = ["open", "Store", "Array", "Error", "InvalidArgument", "NotFound", "FileNotFound", "OutOfMemory",
           "convert", "export", "export_nifti", "probe", "Writer", "version"]

_lib = _ffi.load()

# error codes (include/voxtile.h)
_EIO, _ECORRUPT, _EFORMAT, _EVERSION, _ERANGE, _ENOMEM, _EINVAL, _ENOTFOUND, _ENOSPC, _EUNSUPPORTED, _ESTATE = \
    range(-1, -12, -1)


class Error(OSError):
    """A voxtile failure; .code is the library's VT_E* code, the message names the file."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class InvalidArgument(Error, ValueError):
    """A bad argument or box (VT_EINVAL, VT_ERANGE)."""


class NotFound(Error, KeyError):
    """No such array or metadata key."""

    def __str__(self):
        return OSError.__str__(self)


class OutOfMemory(Error, MemoryError):
    """The library or a buffer for a read could not get memory (VT_ENOMEM); also a MemoryError."""


class FileNotFound(Error, FileNotFoundError):
    """A file named in the call does not exist (VT_EIO from a missing path); also a FileNotFoundError,
    with errno ENOENT and .filename the missing path."""

    def __init__(self, code, message, filename=None):
        super().__init__(code, message)
        self.errno = errno.ENOENT
        self.filename = filename

    def __str__(self):  # the C message, not OSError's "[Errno 2] ..." form
        return str(self.args[0])


def _raise(code, message, paths=()):
    """Raise the Error subclass for a VT_E* code. paths: files the call named; when the failure is an I/O
    error and one of them does not exist, FileNotFound."""
    if code in (_EINVAL, _ERANGE):
        raise InvalidArgument(code, message)
    if code == _ENOTFOUND:
        raise NotFound(code, message)
    if code == _ENOMEM:
        raise OutOfMemory(code, message)
    if code == _EIO:
        for p in paths:
            if p is not None and _missing(p):
                raise FileNotFound(code, message, os.fsdecode(p))
    raise Error(code, message)


def _missing(path):
    """Whether path names nothing (ENOENT, a dangling symlink too); a path stat() cannot look at for
    another reason (EACCES, ENOTDIR) is not called missing."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return False
    return False


def _check(code, handle=None, paths=()):
    if code:
        msg = _lib.vt_errmsg(handle)
        _raise(code, (msg or b"").decode(errors="replace") or _lib.vt_strerror(code).decode(), paths)


def version():
    """The library's version string."""
    return _lib.vt_version_string().decode()


# The package's version is the library's: include/voxtile.h defines it once, for the library,
# the CLI, pkg-config and the wheel's metadata alike.
__version__ = version()


# ---- dtypes -----------------------------------------------------------------

_VT_DTYPES = {1: "uint8", 2: "int8", 3: "uint16", 4: "int16", 5: "uint32", 6: "int32", 7: "float16",
              8: "bfloat16", 9: "float32", 10: "float64"}
_NP_TO_VT = {np.dtype(v): k for k, v in _VT_DTYPES.items() if v != "bfloat16"}
_BF16 = 8


def _np_dtype(code):
    """numpy dtype of a vt dtype; bfloat16 has none in numpy: its bits as uint16."""
    return np.dtype(np.uint16) if code == _BF16 else np.dtype(_VT_DTYPES[code])


def _vt_dtype(dtype):
    if isinstance(dtype, str) and dtype in ("bfloat16", "bf16"):
        return _BF16
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise InvalidArgument(_EINVAL, f"unknown dtype {dtype!r}") from e
    if dt == np.bool_:
        dt = np.dtype(np.uint8)
    code = _NP_TO_VT.get(dt.newbyteorder("=") if dt.byteorder not in "=|" else dt)
    if code is None:
        raise InvalidArgument(_EINVAL, f"dtype {dt} is not one voxtile can produce "
                                       f"(uint8 int8 uint16 int16 uint32 int32 float16 bfloat16 float32 float64)")
    return code


_F16, _F32, _F64 = 7, 9, 10
_FLOAT_CODES = (_F16, _BF16, _F32, _F64)


def _read_dtype(dtype):
    """Output of read(dtype=...): (vt code the C library produces, final numpy dtype or None).

    The final dtype is set for dtypes numpy has but the library cannot produce (bool, int64, uint64,
    longdouble, complex): read() then reads an intermediate that holds the values exactly and casts it
    with numpy's astype."""
    if isinstance(dtype, str) and dtype in ("bfloat16", "bf16"):
        return _BF16, None
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise InvalidArgument(_EINVAL, f"unknown dtype {dtype!r}") from e
    code = _NP_TO_VT.get(dt.newbyteorder("=") if dt.byteorder not in "=|" else dt)
    if code is not None:
        return code, None
    if dt.kind in "biufc":
        return None, dt
    raise InvalidArgument(_EINVAL, f"dtype {dt} is not a numeric dtype voxtile can produce (bool, integers, "
                                   f"floats, complex, bfloat16)")


def _holds(ndt, value):
    """Whether value converts to numpy dtype ndt without change (the pad value in an intermediate)."""
    v = float(value)
    if ndt.kind == "f":
        with np.errstate(over="ignore"):
            return np.isnan(v) or float(ndt.type(v)) == v
    info = np.iinfo(ndt)
    return v.is_integer() and info.min <= v <= info.max


def _int_entries(values, what, lo, hi, where):
    """start/size entries as Python ints: integers only (operator.index: no float, no bool), in [lo, hi)."""
    try:
        values = list(values)
    except TypeError:
        raise InvalidArgument(_EINVAL, f"{where}: {what} must be a sequence of integers, not {values!r}") from None
    out = []
    for v in values:
        try:
            if isinstance(v, (bool, np.bool_)):
                raise TypeError
            i = operator.index(v)
        except TypeError:
            raise InvalidArgument(_EINVAL, f"{where}: {what} entries must be integers, not "
                                           f"{type(v).__name__} {v!r}") from None
        if not lo <= i < hi:
            raise InvalidArgument(_ERANGE, f"{where}: {what} entry {i} is outside [{lo}, {hi})")
        out.append(i)
    return out


def _compose_scaling(scaling, transform):
    """The one C transform (clip to [lo, hi], then x*scale+offset) that gives `transform` applied to the
    scaled values x*slope+inter: the clip bounds move back through the scaling (and swap for a negative
    slope), the two affine steps multiply out."""
    m, b = scaling
    lo, hi, s, o = transform if transform is not None else (None, None, 1.0, 0.0)
    lo = -np.inf if lo is None else float(lo)
    hi = np.inf if hi is None else float(hi)
    s, o = float(s), float(o)
    xlo, xhi = (lo - b) / m, (hi - b) / m
    if m < 0:
        xlo, xhi = xhi, xlo
    return xlo, xhi, m * s, b * s + o


_PADS = {"constant": 0, "edge": 1, "reflect": 2}


def _set_transform(opts, transform):
    """(clip_lo, clip_hi, scale, offset) into read options (None bounds: unclipped)."""
    if transform is None:
        return
    lo, hi, scale, offset = transform
    opts.transform = 1
    opts.clip_lo = -np.inf if lo is None else float(lo)
    opts.clip_hi = np.inf if hi is None else float(hi)
    opts.scale, opts.offset = float(scale), float(offset)


_HUGE = 2 << 20  # a transparent huge page on x86-64 and arm64 with 4 KiB pages


def _huge_empty(shape, dtype):
    """An uninitialised array of 2 MiB or more in its own anonymous mapping, 2 MiB-aligned and advised
    MADV_HUGEPAGE: the kernel backs it with huge pages where it can, so filling it faults once per 2 MiB
    instead of once per 4 KiB. On this project's VMs a first touch costs ~10 us per 4 KiB page: a fresh
    8 MiB patch took 21 ms to fill, advised 0.7 ms -- as long as sampling it. Freed (unmapped) with the
    array. None when the system does not offer it (the caller falls back to np.empty)."""
    dt = np.dtype(dtype)
    n = dt.itemsize
    for v in shape:
        n *= int(v)
    if n < _HUGE or not hasattr(mmap, "MADV_HUGEPAGE") or dt.hasobject:
        return None
    m = mmap.mmap(-1, n + _HUGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    raw = np.frombuffer(m, dtype=np.uint8)
    off = -raw.ctypes.data % _HUGE
    try:
        m.madvise(mmap.MADV_HUGEPAGE, off, n)
    except OSError:  # huge pages not configured: still a working array
        pass
    return raw[off:off + n].view(dt).reshape(tuple(int(v) for v in shape))


def _empty(shape, dtype, what):
    """np.empty with voxtile's errors: OutOfMemory, or InvalidArgument for a size numpy refuses. Arrays of
    2 MiB or more come from _huge_empty (patches are filled right away: their first touch is the cost)."""
    try:
        a = _huge_empty(shape, dtype)
        return a if a is not None else np.empty(shape, dtype=dtype)
    except (MemoryError, OSError) as e:
        raise OutOfMemory(_ENOMEM, f"{what} {shape}: cannot allocate {dtype}") from e
    except (ValueError, OverflowError) as e:
        raise InvalidArgument(_ERANGE, f"{what} {shape} is too large: {e}") from None


def _check_out(out, dtype, shape, where):
    """An out= array the library can write: numpy, writeable, this dtype and shape, strides in items."""
    if not isinstance(out, np.ndarray):
        raise InvalidArgument(_EINVAL, "out must be a numpy array")
    if out.dtype != dtype or tuple(out.shape) != shape or not out.flags.writeable:
        raise InvalidArgument(_EINVAL, f"{where}out must be a writeable {dtype} array of shape {shape}, "
                                       f"not {out.dtype} {out.shape}")
    if any(st % dtype.itemsize for st in out.strides):
        raise InvalidArgument(_EINVAL, "out's strides must be multiples of its item size")


# ---- stores -----------------------------------------------------------------

def open(path, huge_pages=True):  # noqa: A001 (mirrors io.open)
    """Open a store read-only; see Store."""
    return Store(path, huge_pages=huge_pages)


class Store:
    """A store file, mapped read-only. Use as a context manager or close().

    huge_pages: map at a 2 MiB boundary with huge-page advice (vt_open's default): where the page cache
    holds the store in 2 MiB folios, a first touch maps 2 MiB at once. False: a plain mapping with the
    kernel's usual readahead (VT_OPEN_NO_HUGE), for a cold store on a slow disk read sparsely once."""

    def __init__(self, path, huge_pages=True):
        self._h = None
        h = ctypes.c_void_p()
        _check(_lib.vt_open(os.fsencode(path), 0 if huge_pages else 1, ctypes.byref(h)), paths=(path,))
        self._h = h
        self.path = os.fspath(path)
        self.huge_pages = bool(huge_pages)
        self._pid = os.getpid()
        self._arrays = {}
        self._meta = None

    def close(self):
        if self._h is not None:
            _lib.vt_close(self._h)
            self._h = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):  # a store travels as its path (spawned workers reopen it)
        return {"path": self.path, "huge_pages": self.huge_pages}

    def __setstate__(self, state):
        self.__init__(state["path"], huge_pages=state.get("huge_pages", True))

    def _handle(self):
        if self._h is None:
            raise Error(_ESTATE, f"{self.path}: store is closed")
        return self._h

    @property
    def arrays(self):
        """Names of the arrays, in file order."""
        h = self._handle()
        names = []
        for i in range(_lib.vt_store_narrays(h)):
            a = ctypes.c_void_p()
            _check(_lib.vt_store_array_at(h, i, ctypes.byref(a)), h)
            info = _ffi.ArrayInfo()
            _lib.vt_array_info_get(a, ctypes.byref(info))
            names.append(info.name.decode())
        return names

    def __getitem__(self, name):
        h = self._handle()  # a closed store serves nothing, not even arrays looked up before
        if name not in self._arrays:
            a = ctypes.c_void_p()
            _check(_lib.vt_store_array(h, name.encode(), ctypes.byref(a)), h)
            self._arrays[name] = Array(self, a)
        return self._arrays[name]

    def __contains__(self, name):
        return name in self.arrays

    def __iter__(self):
        return iter(self.arrays)

    @property
    def file_size(self):
        return _lib.vt_store_file_size(self._handle())

    @property
    def metadata(self):
        """The metadata as a dict: strings, bytes, or numpy arrays (float64 / int64)."""
        if self._meta is None:
            h = self._handle()
            meta = {}
            for i in range(_lib.vt_meta_count(h)):
                key, typ, data, count = ctypes.c_char_p(), ctypes.c_int(), ctypes.c_void_p(), ctypes.c_size_t()
                _check(_lib.vt_meta_at(h, i, ctypes.byref(key), ctypes.byref(typ), ctypes.byref(data),
                                       ctypes.byref(count)), h)
                n = count.value
                if typ.value == 1:
                    value = ctypes.string_at(data, n).decode(errors="replace")
                elif typ.value == 2:
                    value = np.frombuffer(ctypes.string_at(data, 8 * n), dtype="<f8").copy()
                elif typ.value == 3:
                    value = np.frombuffer(ctypes.string_at(data, 8 * n), dtype="<i8").copy()
                else:
                    value = ctypes.string_at(data, n) if n else b""
                meta[key.value.decode()] = value
            self._meta = meta
        return self._meta

    @property
    def spacing(self):
        """Voxel size along (z, y, x) in mm (1, 1, 1 when the source had none)."""
        s = self.metadata.get("spacing")
        return tuple(float(v) for v in s) if s is not None else (1.0, 1.0, 1.0)

    @property
    def affine(self):
        """4x4 NIfTI-style affine of the stored grid: (x, y, z index, 1) -> RAS+ mm."""
        a = self.metadata.get("affine")
        return a.reshape(4, 4).copy() if a is not None else np.eye(4)

    @property
    def origin(self):
        """World position (RAS+ mm) of voxel (0, 0, 0)."""
        return tuple(float(v) for v in self.affine[:3, 3])

    @property
    def direction(self):
        """3x3: column j is the unit world direction of index axis j (x, y, z)."""
        d = self.metadata.get("direction")
        return d.reshape(3, 3).copy() if d is not None else np.eye(3)

    def release(self):
        """Drop this process's mapped pages of the store, and nothing else: it stays open (resident size
        falls; the page cache keeps the data; the next read faults the pages it needs in again)."""
        _check(_lib.vt_store_release(self._handle()), self._h)

    def verify(self):
        """Check every tile of every array; raises Error naming the first bad tile."""
        for name in self.arrays:
            self[name].verify()

    def __repr__(self):
        state = "closed" if self._h is None else ", ".join(self.arrays)
        return f"<voxtile.Store {self.path!r}: {state}>"


class Array:
    """One array of a store: numpy-like, lazy. Indexing and read() return np.ndarray."""

    def __init__(self, store, handle):
        self.store = store
        self._h = handle
        info = _ffi.ArrayInfo()
        _lib.vt_array_info_get(handle, ctypes.byref(info))
        self.name = info.name.decode()
        self.ndim = info.ndim
        self.shape = tuple(int(info.shape[d]) for d in range(self.ndim))
        self.tile_shape = tuple(int(info.tile[d]) for d in range(self.ndim))
        self.grid = tuple(int(info.grid[d]) for d in range(self.ndim))
        self.ntiles = int(info.ntiles)
        self._code = info.dtype
        self.dtype = _np_dtype(info.dtype)
        self.vt_dtype = _VT_DTYPES[info.dtype]
        self.nbytes = int(info.raw_bytes)
        self.stored_nbytes = int(info.stored_bytes)
        self.fill = info.fill
        self.min, self.max = info.min, info.max
        self._labels = None
        self._scaling = False  # not looked up yet

    def _handle(self):
        self.store._handle()  # raises when closed
        return self._h

    def __len__(self):
        return self.shape[0]

    @property
    def size(self):
        return int(np.prod(self.shape))

    @property
    def scaling(self):
        """(slope, inter) of the source NIfTI's scl_slope/scl_inter when the store keeps raw values that
        read() scales (arrays "image" and its levels "image@K" of a store converted without
        --apply-scaling); None otherwise (labels are never scaled)."""
        if self._scaling is False:  # the library's rule (vt_array_scaling), looked up once
            m, b = ctypes.c_double(), ctypes.c_double()
            has = _lib.vt_array_scaling(self._handle(), ctypes.byref(m), ctypes.byref(b))
            self._scaling = (m.value, b.value) if has else None
        return self._scaling

    @property
    def normalization(self):
        """[(clip_lo, clip_hi, mean, std)] per channel recorded by `convert --normalize` for this image
        array (and its levels image@K), in the units read() gives with scaling; None otherwise."""
        meta = self.store.metadata
        p = meta.get("normalize.params")
        if p is None or self.ndim != 4 or len(p) != 4 * self.shape[0] or self.labels:
            return None
        opts = meta.get("convert.options", "")
        image = next((w[6:] for w in opts.split() if w.startswith("array=")), "image")
        if self.name.split("@")[0] != image:
            return None
        return [tuple(float(v) for v in p[4 * c:4 * c + 4]) for c in range(self.shape[0])]

    def _normalized_read(self, start, size, dtype, pad, pad_value, transform, out, threads, verify, scaling):
        """read(normalize=True): channel by channel, each with its clip, then (x - mean) / std."""
        where = f"{self.store.path}: array '{self.name}'"
        norm = self.normalization
        if norm is None:
            raise InvalidArgument(_EINVAL, f"{where}: no normalisation recorded (convert --normalize)")
        if transform is not None:
            raise InvalidArgument(_EINVAL, f"{where}: normalize=True and transform= cannot be combined")
        if dtype is None or np.dtype(dtype).kind != "f":
            raise InvalidArgument(_EINVAL, f"{where}: normalize=True needs a floating dtype, not {dtype!r}")
        if not scaling and self.scaling is not None:
            raise InvalidArgument(_EINVAL, f"{where}: the normalisation was recorded on the scaled values "
                                  f"(scaling {self.scaling}); normalize=True cannot read with scaling=False")
        start = _int_entries(start, "start", -(1 << 63), 1 << 63, where)
        size = _int_entries(size, "size", 1, 1 << 63, where)
        if len(start) != 4 or len(size) != 4:
            raise InvalidArgument(_EINVAL, f"{where} has 4 dimensions; start and size need 4 entries each")
        if out is None:
            out = _empty(tuple(size), np.dtype(dtype), f"{where}: box of size")
        for k in range(size[0]):
            c = start[0] + k
            if 0 <= c < self.shape[0]:
                lo, hi, mean, std = norm[c]
                tr = (lo, hi, 1.0 / std, -mean / std)
            else:  # a channel outside the array: padding only
                tr = None
            self.read((c,) + tuple(start[1:]), (1,) + tuple(size[1:]), dtype=dtype, pad=pad, pad_value=pad_value,
                      transform=tr, out=out[k:k + 1], threads=threads, verify=verify, scaling=scaling)
        return out

    def read(self, start, size, dtype=None, pad="constant", pad_value=0, transform=None, out=None, threads=1,
             verify=True, scaling=True, normalize=False):
        """Read the box [start, start+size) (one entry per dimension; it may leave the array).

        start: integers in [-2**63, 2**63); size: integers in [1, 2**63) (no floats, no bools).
        dtype: anything numpy takes (None keeps the stored dtype; "bfloat16" gives uint16 bits). bool,
             int64, uint64, longdouble and complex are numpy's astype of the exact values (bool: value != 0).
        pad: "constant" (pad_value), "edge" or "reflect" (numpy's modes) for voxels outside.
        transform: (clip_lo, clip_hi, scale, offset) applied before the conversion: clip, then x*scale+offset.
        scaling: with a floating output dtype, apply the store's NIfTI scaling (Array.scaling: x*slope+inter)
             first, then transform, to the scaled values; False reads the raw stored values. dtype=None and
             integer outputs are never scaled.
        out: an array to fill (e.g. a slot of a batch): its shape must be size and dtype the output dtype;
             any strides (multiples of the item size) -- no extra copy.
        normalize: apply the normalisation `convert --normalize` recorded (Array.normalization): per
             channel, clip, then (x - mean) / std, fused into the read; needs a floating dtype, and the
             scaled values the normalisation was recorded on (not scaling=False on a scaled array).
        """
        if normalize:
            return self._normalized_read(start, size, dtype, pad, pad_value, transform, out, threads, verify,
                                         scaling)
        h = self._handle()
        nd = self.ndim
        where = f"{self.store.path}: array '{self.name}'"
        start = _int_entries(start, "start", -(1 << 63), 1 << 63, where)
        size = _int_entries(size, "size", 1, 1 << 63, where)
        if len(start) != nd or len(size) != nd:
            raise InvalidArgument(_EINVAL, f"{where} has {nd} dimensions; start and size need {nd} entries each")
        opts = _ffi.ReadOpts()
        _lib.vt_read_opts_init(ctypes.byref(opts))
        code, final = (self._code, None) if dtype is None else _read_dtype(dtype)
        if pad not in _PADS:
            raise InvalidArgument(_EINVAL, f"pad must be one of {sorted(_PADS)}, not {pad!r}")
        opts.pad = _PADS[pad]
        opts.pad_value = float(pad_value)
        floating = code in _FLOAT_CODES if final is None else final.kind in "fc"
        if scaling and dtype is not None and floating and self.scaling is not None:
            transform = _compose_scaling(self.scaling, transform)
        _set_transform(opts, transform)
        if final is not None:  # an intermediate that holds the values exactly, cast by numpy below
            code = _F64
            if transform is None:
                inter = _F32 if self._code == _BF16 else self._code
                if pad != "constant" or _holds(_np_dtype(inter), opts.pad_value):
                    code = inter
        opts.dtype = code
        opts.threads = int(threads)
        opts.verify = 1 if verify else 0
        ndt = _np_dtype(code)
        want = ndt if final is None else final
        if out is not None:
            _check_out(out, want, tuple(size), "")
        dest = out if final is None else None
        if dest is None:
            dest = _empty(tuple(size), ndt, f"{where}: box of size")
        elif not dest.flags.c_contiguous:
            strides = (ctypes.c_int64 * nd)(*[s // ndt.itemsize for s in dest.strides])
            opts.strides = ctypes.cast(strides, _ffi.c_i64p)
        if dest.size:
            st = (ctypes.c_int64 * nd)(*start)
            sz = (ctypes.c_uint64 * nd)(*size)
            _check(_lib.vt_read(h, st, sz, ctypes.byref(opts), ctypes.c_void_p(dest.ctypes.data)), self.store._h)
        if final is None:
            return dest
        if out is None:
            return dest.astype(final)
        np.copyto(out, dest, casting="unsafe")
        return out

    def sample(self, matrix, size, *, order="linear", dtype=None, pad="constant", pad_value=0, transform=None,
               displacement=None, out=None, threads=1, verify=True, scaling=True, stats=None):
        """Sample an output grid of `size` (z, y, x) voxels through an affine map, straight from the tiles.

        Output voxel (k, j, i) comes from source position matrix @ (k, j, i, 1) over the array's last three
        axes (voxel centres at integer coordinates); every leading (channel) index alike, so a (C, Z, Y, X)
        array gives (C, *size). matrix: 3x4, or 4x4 with last row (0, 0, 0, 1), array-like over (z, y, x).
        order: "linear" (trilinear: torch grid_sample(align_corners=True) / scipy map_coordinates(order=1)
             values, computed in float32), "nearest" (halves to even) or "label" (the label with the largest
             total trilinear weight of the 8 neighbours, ties to the smaller: the argmax of per-label
             one-hot interpolation, at any number of labels).
        dtype: linear: float32 (default), float16, "bfloat16" (uint16 bits) or float64; nearest: any (default
             the stored dtype; from stored integers without a transform, an integer dtype must hold every
             value and the pad value); label: an integer dtype holding every label and the pad value (default
             the stored dtype: pass e.g. np.int16 with pad_value=-1 for uint8 labels).
        pad, pad_value: how taps outside the array read ("constant", "edge", "reflect" as numpy).
        transform: (clip_lo, clip_hi, scale, offset) applied to each source voxel before interpolation; with
             scaling=True a floating output first gets the store's NIfTI scaling, as read() does.
        displacement: optional float32 field (3, dz, dy, dx) of displacements (z, y, x components, in output
             voxels) on a grid spanning the output corner to corner, interpolated trilinearly and added to
             (k, j, i) before the matrix (deform, then map).
        out: an array to fill (e.g. a slot of a batch), shape leading + size, the output dtype, any strides.
        stats: a dict to receive what the call did: tiles_needed, tiles_decoded, peak_bytes, box_read,
            vector_lanes (8: the AVX2 kernel sampled what it could, 0: scalar code only).
        See sample_many() to sample an image and its labels in one pass.
        """
        return sample_many([(self, dict(order=order, dtype=dtype, pad=pad, pad_value=pad_value, transform=transform,
                                         out=out, verify=verify, scaling=scaling, stats=stats))],
                           matrix, size, displacement=displacement, threads=threads)[0]

    def _sample_target(self, size, order="linear", dtype=None, pad="constant", pad_value=0, transform=None,
                       out=None, verify=True, scaling=True, stats=None, channel_transforms=None):
        """This array's part of a sample_many() call: (vt_sample_target fields, output, keep-alive)."""
        h = self._handle()
        where = f"{self.store.path}: array '{self.name}'"
        if self.ndim < 3:
            raise InvalidArgument(_EINVAL, f"{where} has {self.ndim} dimensions; sample() needs at least 3")
        orders = {"nearest": 0, "linear": 1, "label": 2}
        if order not in orders:
            raise InvalidArgument(_EINVAL, f"order must be one of {sorted(orders)}, not {order!r}")
        if pad not in _PADS:
            raise InvalidArgument(_EINVAL, f"pad must be one of {sorted(_PADS)}, not {pad!r}")
        code = (_F32 if order == "linear" else self._code) if dtype is None else _vt_dtype(dtype)
        opts = _ffi.ReadOpts()
        _lib.vt_read_opts_init(ctypes.byref(opts))
        opts.dtype = code
        opts.pad = _PADS[pad]
        opts.pad_value = float(pad_value)
        scaled = scaling and order != "label" and code in _FLOAT_CODES and self.scaling is not None
        if scaled:
            transform = _compose_scaling(self.scaling, transform)
        _set_transform(opts, transform)
        opts.verify = 1 if verify else 0
        ndt = _np_dtype(code)
        shape = self.shape[:-3] + tuple(size)
        per = None
        if channel_transforms is not None:  # one (clip_lo, clip_hi, scale, offset) per leading index
            lead = int(np.prod(self.shape[:-3]))
            xs = list(channel_transforms)
            if len(xs) != lead:
                raise InvalidArgument(_EINVAL, f"{where}: {len(xs)} channel transforms for {lead} channels")
            xs = [_compose_scaling(self.scaling, x) if scaled else x for x in xs]
            per = np.array([[-np.inf if x[0] is None else x[0], np.inf if x[1] is None else x[1], x[2], x[3]]
                            for x in xs], dtype=np.float64)
        if out is not None:
            _check_out(out, ndt, shape, f"{where}: ")
            dest = out
        else:
            dest = _empty(shape, ndt, f"{where}: output of shape")
        keep = [opts]
        if not dest.flags.c_contiguous:
            strides = (ctypes.c_int64 * self.ndim)(*[s // ndt.itemsize for s in dest.strides])
            opts.strides = ctypes.cast(strides, _ffi.c_i64p)
            keep.append(strides)
        st = _ffi.SampleStats()
        keep.append(st)
        tgt = _ffi.SampleTarget(h, orders[order], ctypes.pointer(opts), dest.ctypes.data, ctypes.pointer(st))
        if per is not None:
            keep.append(per)
            tgt.transforms = per.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        return tgt, dest, keep, (stats, st)

    # numpy basic indexing: ints, slices (any step), Ellipsis, None
    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        n_real = sum(1 for k in key if k is not None and k is not Ellipsis)
        if sum(1 for k in key if k is Ellipsis) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        if n_real > self.ndim:
            raise IndexError(f"too many indices for array: array is {self.ndim}-dimensional, "
                             f"but {n_real} were indexed")
        expanded = []
        for k in key:
            if k is Ellipsis:
                expanded.extend([slice(None)] * (self.ndim - n_real))
            else:
                expanded.append(k)
        if Ellipsis not in key:
            expanded.extend([slice(None)] * (self.ndim - n_real))
        start, size, local = [], [], []
        axis = 0
        for k in expanded:
            if k is None:
                local.append(None)
                continue
            n = self.shape[axis]
            if isinstance(k, slice):
                r = range(*k.indices(n))
                if len(r) == 0:
                    start.append(0)
                    size.append(0)
                    local.append(slice(0, 0))
                else:
                    lo = min(r[0], r[-1])
                    start.append(lo)
                    size.append(max(r[0], r[-1]) - lo + 1)
                    stop = r[0] - lo + len(r) * r.step
                    local.append(slice(r[0] - lo, stop if stop >= 0 else None, r.step))
            else:
                if isinstance(k, (bool, np.bool_)) or (isinstance(k, np.ndarray) and k.dtype == np.bool_):
                    raise IndexError("boolean keys are masks to numpy (advanced indexing: a[True] adds an axis); "
                                     "voxtile does basic indexing only: use None (numpy.newaxis) to add an axis")
                try:
                    i = operator.index(k)  # ints, numpy integers, 0-d integer arrays, objects with __index__
                except TypeError:
                    raise IndexError("only integers, slices (`:`), ellipsis (`...`) and numpy.newaxis (`None`) "
                                     "are valid indices (voxtile does numpy basic indexing only)") from None
                if i < -n or i >= n:
                    raise IndexError(f"index {i} is out of bounds for axis {axis} with size {n}")
                i = i + n if i < 0 else i
                start.append(i)
                size.append(1)
                local.append(0)
            axis += 1
        if 0 in size:
            box = np.empty([s for s in size], dtype=self.dtype)
        else:
            box = self.read(start, size)
        if any(k is Ellipsis for k in key):  # as numpy: with '...' the result is an array, even 0-d
            return box[tuple(local) + (Ellipsis,)]
        return box[tuple(local)]

    def __array__(self, dtype=None, copy=None):
        """The whole array, raw stored values (as a[...]); numpy 2's copy=False cannot be honoured: the
        values are always read into a new array."""
        if copy is False:
            raise ValueError(f"voxtile array '{self.name}': np.asarray(..., copy=False) is impossible, the "
                             f"values are read from the file into a new array")
        a = self[...]
        return a if dtype is None else a.astype(dtype, copy=False)

    def verify(self):
        """Check every tile's checksum, decoding and statistics; raises Error naming the first bad tile."""
        _check(_lib.vt_verify_array(self._handle(), None), self.store._h)

    def tile(self, index):
        """Index entry of tile number @index (C order of the tile grid) as a dict."""
        ti = _ffi.TileInfo()
        _check(_lib.vt_tile_get(self._handle(), int(index), ctypes.byref(ti)), self.store._h)
        return {"coord": tuple(ti.coord[:self.ndim]), "start": tuple(ti.start[:self.ndim]),
                "extent": tuple(ti.extent[:self.ndim]), "offset": ti.offset, "stored_size": ti.stored_size,
                "flags": ti.flags, "raw_size": ti.raw_size, "checksum": ti.checksum, "min": ti.min, "max": ti.max}

    @property
    def labels(self):
        """Label index (label arrays): {value: (voxels, tiles)} where tiles is an (n, 2) uint64 array of
        (tile number, voxels of the value in it). {} when the array has none."""
        if self._labels is None:
            h = self._handle()
            out = {}
            for i in range(_lib.vt_label_count(h)):
                li = _ffi.LabelInfo()
                _check(_lib.vt_label_get(h, i, ctypes.byref(li)), self.store._h)
                pairs = np.ctypeslib.as_array(li.tiles, shape=(int(li.ntiles), 2)).copy()
                out[int(li.value)] = (int(li.voxels), pairs)
            self._labels = out
        return self._labels

    def __repr__(self):
        return f"<voxtile.Array '{self.name}' {self.vt_dtype} {self.shape} tiles {self.tile_shape}>"


# ---- writing ----------------------------------------------------------------

class Writer:
    """Streaming writer: Writer(path) / add_array(...) / write(id, start, data) / finalize().

    Nothing appears at path until finalize(); an abandoned writer (close() without finalize, or an
    exception inside a with block) leaves nothing behind."""

    def __init__(self, path, threads=1):
        self.path = os.fspath(path)
        opts = _ffi.WriterOpts()
        _lib.vt_writer_opts_init(ctypes.byref(opts))
        opts.threads = int(threads)
        h = ctypes.c_void_p()
        _check(_lib.vt_writer_open(os.fsencode(path), ctypes.byref(opts), ctypes.byref(h)),
               paths=(os.path.dirname(os.path.abspath(path)),))
        self._h = h
        self._dtypes = []

    def _fail(self, rc):
        msg = (_lib.vt_writer_errmsg(self._h) or b"").decode(errors="replace")
        _raise(rc, msg or _lib.vt_strerror(rc).decode())

    def add_array(self, name, shape, dtype, tile=None, codec="lz4hc", level=0, shuffle="auto", fill=0,
                  sparse=False, labels=False):
        spec = _ffi.ArraySpec()
        _lib.vt_array_spec_init(ctypes.byref(spec))
        spec.name = name.encode()
        spec.dtype = _vt_dtype(dtype)
        spec.ndim = len(shape)
        for d, s in enumerate(shape):
            spec.shape[d] = int(s)
        if tile is not None:
            for d, t in enumerate(tile):
                spec.tile[d] = int(t)
        spec.codec = {"none": 0, "lz4": 1, "lz4hc": 2}[codec]
        spec.level = int(level)
        spec.filter = {"off": 0, "none": 0, "on": 1, "shuffle": 1, "auto": 2}[shuffle]
        spec.fill = float(fill)
        spec.sparse = int(bool(sparse))
        spec.labels = int(bool(labels))
        ident = ctypes.c_int()
        rc = _lib.vt_writer_add_array(self._h, ctypes.byref(spec), ctypes.byref(ident))
        if rc:
            self._fail(rc)
        self._dtypes.append(_np_dtype(spec.dtype))
        return ident.value

    def write(self, ident, start, data):
        """Write C-contiguous data of the array's dtype at start (each voxel exactly once)."""
        data = np.ascontiguousarray(data, dtype=self._dtypes[ident])
        nd = data.ndim
        st = (ctypes.c_uint64 * nd)(*[int(v) for v in start])
        sz = (ctypes.c_uint64 * nd)(*data.shape)
        rc = _lib.vt_writer_write(self._h, int(ident), st, sz, ctypes.c_void_p(data.ctypes.data))
        if rc:
            self._fail(rc)

    def set_meta(self, key, value):
        """A metadata entry: str, bytes, or a sequence of floats / ints."""
        if isinstance(value, str):
            b = value.encode()
            rc = _lib.vt_writer_set_meta(self._h, key.encode(), 1, ctypes.c_char_p(b), len(b))
        elif isinstance(value, (bytes, bytearray)):
            b = bytes(value)
            rc = _lib.vt_writer_set_meta(self._h, key.encode(), 0, ctypes.c_char_p(b), len(b))
        else:
            arr = np.asarray(value)
            arr = np.ascontiguousarray(arr, dtype="<i8" if arr.dtype.kind in "iub" else "<f8").ravel()
            rc = _lib.vt_writer_set_meta(self._h, key.encode(), 3 if arr.dtype.kind == "i" else 2,
                                         ctypes.c_void_p(arr.ctypes.data), arr.size)
        if rc:
            self._fail(rc)

    def finalize(self):
        rc = _lib.vt_writer_finalize(self._h)
        if rc:
            self._fail(rc)

    def close(self):
        if getattr(self, "_h", None) is not None:
            _lib.vt_writer_free(self._h)
            self._h = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *rest):
        if exc_type is None:
            self.finalize()
        self.close()


# ---- conversion ---------------------------------------------------------------

_CROPS = {None: 0, "box": 1, "nonzero": 2, "label": 3}


def sample_many(targets, matrix, size, *, displacement=None, threads=1):
    """Sample several arrays (an image and its labels) through one map in one pass: each output voxel's
    source position is computed once for all of them. targets: a list of (array, options) with the options of
    Array.sample() (order, dtype, pad, pad_value, transform, out, verify, scaling, stats); the arrays may
    belong to different stores, and channel_transforms= gives one (clip_lo, clip_hi, scale, offset) per
    channel instead of one transform for all. Returns the outputs in order, each exactly what Array.sample()
    gives.
    matrix, size, displacement, threads: as Array.sample()."""
    targets = list(targets)
    if not targets or len(targets) > 16:
        raise InvalidArgument(_EINVAL, f"sample_many takes 1 to 16 arrays, not {len(targets)}")
    try:
        m = np.array(matrix, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidArgument(_EINVAL, f"matrix must be 3x4 or 4x4 numbers: {e}") from None
    if m.shape == (4, 4):
        if not np.array_equal(m[3], [0, 0, 0, 1]):
            raise InvalidArgument(_EINVAL, f"a 4x4 matrix must end with the row (0, 0, 0, 1), not {m[3].tolist()}")
        m = m[:3]
    if m.shape != (3, 4):
        raise InvalidArgument(_EINVAL, f"matrix must be 3x4 or 4x4, not {m.shape}")
    m = np.ascontiguousarray(m)
    size = _int_entries(size, "size", 1, 1 << 63, "sample")
    if len(size) != 3:
        raise InvalidArgument(_EINVAL, f"size must be 3 extents (z, y, x), not {len(size)}")
    parts = []
    for t in targets:
        arr, kw = (t, {}) if isinstance(t, Array) else t
        if not isinstance(arr, Array):
            raise InvalidArgument(_EINVAL, f"sample_many targets are (Array, options) pairs, not {t!r}")
        parts.append(arr._sample_target(size, **kw))
    field = fshape = None
    if displacement is not None:
        field = np.ascontiguousarray(displacement, dtype=np.float32)
        if field.ndim != 4 or field.shape[0] != 3:
            raise InvalidArgument(_EINVAL, f"displacement must be (3, dz, dy, dx), not {field.shape}")
        fshape = (ctypes.c_uint64 * 3)(*field.shape[1:])
    arr_t = (_ffi.SampleTarget * len(parts))(*[p[0] for p in parts])
    first = targets[0] if isinstance(targets[0], Array) else targets[0][0]
    _check(_lib.vt_sample_many(arr_t, len(parts), m.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
                               (ctypes.c_uint64 * 3)(*size),
                               None if field is None else field.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                               fshape, int(threads)), first.store._h)
    for _, _, _, (want, st) in parts:
        if want is not None:
            want.update(tiles_needed=int(st.tiles_needed), tiles_decoded=int(st.tiles_decoded),
                        peak_bytes=int(st.peak_bytes), box_read=bool(st.box_read),
                        vector_lanes=int(st.vector_lanes))
    return [p[1] for p in parts]


_ORDERS = {"cubic": 0, "linear": 1}
_SEPARATE = {"auto": 0, "on": 1, "off": 2}
_NORMALIZE = {None: 0, "none": 0, "ct": 1, "zscore": 2}


def _ct_params(fingerprint):
    """(lo, hi, mean, std) per channel of a fingerprint (a path or voxtile.fingerprint()'s dict)."""
    fp = load_fingerprint(fingerprint) if isinstance(fingerprint, (str, bytes, os.PathLike)) else fingerprint
    try:
        chans = fp["foreground_intensity_properties_per_channel"]
        keys = sorted(chans, key=int)
        out = [tuple(float(chans[k][n]) for n in ("percentile_00_5", "percentile_99_5", "mean", "std"))
               for k in keys]
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidArgument(_EINVAL, f"not a dataset fingerprint (per-channel foreground intensity properties): "
                                       f"{e!r}") from None
    if keys != [str(i) for i in range(len(keys))] or not keys:
        raise InvalidArgument(_EINVAL, f"a fingerprint's channels must be '0', '1', ..., not {keys}")
    for c, (lo, hi, mean, std) in enumerate(out):
        if not (np.isfinite([lo, hi, mean, std]).all() and lo <= hi and std > 0):
            raise InvalidArgument(_EINVAL, f"fingerprint channel {c} has no usable foreground statistics "
                                           f"(percentiles {lo}, {hi}, mean {mean}, std {std})")
    return out


def _convert_opts(crop=None, crop_margin=0, levels=0, dtype=None, apply_scaling=False, tile=None,
                  codec="lz4hc", level=0, shuffle="auto", threads=None, array="image", raw=None, progress=None,
                  spacing=None, order="cubic", separate_z="auto", normalize=None, norm_params=None,
                  fingerprint=None):
    """The vt_convert_opts of convert()'s keywords, and the ctypes objects they point to (keep them alive
    while the options are in use): one builder for convert() and voxtile.Dataset.

    Mirrors `voxtile convert`: crop is None, "nonzero", "label" (with crop_margin) or a box
    (z0, z1, y0, y1, x0, x1); levels adds pyramid levels; dtype casts the image; raw is a dict
    {shape: (c, z, y, x), dtype, seg_dtype, offset, big_endian, spacing} for headerless files;
    progress is called with the fraction done.

    spacing (z, y, x) in mm resamples after cropping (nnU-Net's shape rule, centre-aligned): the
    image with order "cubic" (Keys, a = -1/2) or "linear", the segmentation by label vote;
    separate_z "auto", "on", "off" or "auto/linear", "on/linear" treats a low-resolution axis
    on its own (nearest, or linear). normalize "ct" (with norm_params: (lo, hi, mean, std) per
    image channel) or "zscore" records the normalisation that read(normalize=True) and PatchDataset
    apply; the stored values stay raw. fingerprint (a file of `voxtile stats --fingerprint` or nnU-Net's
    dataset_fingerprint.json, or the dict voxtile.fingerprint() returns) gives "ct" its parameters as
    nnU-Net takes them: each channel's foreground percentile_00_5, percentile_99_5, mean and std."""
    opts = _ffi.ConvertOpts()
    _lib.vt_convert_opts_init(ctypes.byref(opts))
    if tile is not None:
        for d in range(3):
            opts.tile[d] = int(tile[d])
    opts.codec = {"none": 0, "lz4": 1, "lz4hc": 2}[codec]
    opts.level = int(level) if codec != "none" else 0
    opts.filter = {"off": 0, "on": 1, "auto": 2}[shuffle]
    opts.threads = int(threads if threads is not None else (os.cpu_count() or 1))
    name = array.encode()
    opts.array = name
    opts.dtype = 0 if dtype is None else _vt_dtype(dtype)
    opts.apply_scaling = int(bool(apply_scaling))
    if crop is None or isinstance(crop, str):
        if crop not in _CROPS:
            raise InvalidArgument(_EINVAL, f"crop must be None, 'nonzero', 'label' or a box, not {crop!r}")
        opts.crop_mode = _CROPS[crop]
    else:
        opts.crop_mode = 1
        for i, v in enumerate(crop):
            opts.crop[i] = int(v)
    opts.crop_margin = int(crop_margin)
    opts.levels = int(levels)
    keep = []
    if spacing is not None:
        sp = [float(v) for v in spacing]
        # all zeros is the C library's "no resampling" (any other bad value it refuses, naming the file):
        # here it would silently skip the resampling asked for
        if len(sp) != 3 or sp == [0.0, 0.0, 0.0]:
            raise InvalidArgument(_EINVAL, f"spacing must be (z, y, x), three positive numbers of mm, not "
                                           f"{spacing!r}")
        for d in range(3):
            opts.spacing[d] = sp[d]
    if order not in _ORDERS:
        raise InvalidArgument(_EINVAL, f"order must be 'cubic' or 'linear', not {order!r}")
    opts.order = _ORDERS[order]
    mode, _, how = str(separate_z).partition("/")
    if mode not in _SEPARATE or how not in ("", "linear") or (mode == "off" and how):
        raise InvalidArgument(_EINVAL, f"separate_z must be 'auto', 'on', 'off', 'auto/linear' or 'on/linear', "
                                       f"not {separate_z!r}")
    opts.separate_z = _SEPARATE[mode]
    opts.separate_linear = int(how == "linear")
    if normalize not in _NORMALIZE:
        raise InvalidArgument(_EINVAL, f"normalize must be None, 'ct' or 'zscore', not {normalize!r}")
    opts.normalize = _NORMALIZE[normalize]
    if fingerprint is not None:
        if norm_params is not None:
            raise InvalidArgument(_EINVAL, "give fingerprint or norm_params, not both")
        norm_params = _ct_params(fingerprint)
    if norm_params is not None and opts.normalize != _NORMALIZE["ct"]:
        raise InvalidArgument(_EINVAL, "fingerprint and norm_params give normalize='ct' its parameters; "
                                       f"normalize is {normalize!r}")
    if norm_params is not None:
        flat = [float(v) for ch in norm_params for v in (ch if hasattr(ch, "__len__") else (ch,))]
        if not flat or len(flat) % 4:
            raise InvalidArgument(_EINVAL, "norm_params must be (lo, hi, mean, std) per image channel")
        buf = (ctypes.c_double * len(flat))(*flat)
        keep.append(buf)
        opts.norm_params = ctypes.cast(buf, ctypes.POINTER(ctypes.c_double))
        opts.norm_channels = len(flat) // 4
    if raw is not None:
        rs = _ffi.RawSpec()
        shape = list(raw["shape"])
        if len(shape) == 3:
            shape = [1] + shape
        for d in range(4):
            rs.shape[d] = int(shape[d])
        rs.dtype = _vt_dtype(raw["dtype"])
        rs.seg_dtype = _vt_dtype(raw["seg_dtype"]) if raw.get("seg_dtype") else 0
        rs.offset = int(raw.get("offset", 0))
        rs.big_endian = int(bool(raw.get("big_endian", False)))
        for d, s in enumerate(raw.get("spacing", (0, 0, 0))):
            rs.spacing[d] = float(s)
        keep.append(rs)
        opts.raw = ctypes.pointer(rs)
    if progress is not None:
        cb = _ffi.PROGRESS(lambda ctx, f: progress(f))
        keep.append(cb)
        opts.progress = cb
    return opts, keep


def convert(images, out, seg=None, **options):
    """Convert images (one path or a list: the channels) and an optional segmentation to a store.

    options: those of `voxtile convert`, as keywords -- crop, crop_margin, levels, dtype, apply_scaling, tile,
    codec, level, shuffle, threads, array, raw, progress, spacing, order, separate_z, normalize, norm_params,
    fingerprint (see _convert_opts)."""
    if isinstance(images, (str, bytes, os.PathLike)):
        images = [images]
    opts, keep = _convert_opts(**options)
    paths = [os.fsencode(p) for p in images]
    arr = (ctypes.c_char_p * len(paths))(*paths)
    segp = os.fsencode(seg) if seg is not None else None
    rc = _lib.vt_convert_images(arr, len(paths), segp, os.fsencode(out), ctypes.byref(opts))
    _check(rc, paths=list(images) + [seg, os.path.dirname(os.path.abspath(out))])


def export_nifti(store, out, array=None):
    """Write an array of a store (default "image") back to NIfTI (.nii or .nii.gz), source header kept."""
    _check(_lib.vt_export_nifti(os.fsencode(store), array.encode() if array else None, os.fsencode(out)),
           paths=(store, os.path.dirname(os.path.abspath(out))))


def export(store, out, like=None, array=None, argmax=False, order="linear", progress=None):
    """Write an array of a store as NIfTI (.nii or .nii.gz), streaming.

    Without like: export_nifti (the array on the store's own grid, source header kept). With like
    (the store of the case a prediction was made on): the array (default "pred", or the store's only
    array) is mapped back to that case's source grid -- the conversion's spacing change undone
    (order "linear", as nnU-Net's export, or "cubic"; an axis resampled on its own stays nearest; a
    label array by label vote), the crop undone with background (0; channel 0 of several float
    channels takes 1) -- and written with the source's header and affine. argmax: the index of the
    largest channel after resampling (nnU-Net's order), as uint8 labels (uint16 over 256 classes).
    progress: called now and then with the fraction done (0..1], with or without like."""
    if like is None and (argmax or order != "linear"):
        raise InvalidArgument(_EINVAL, "argmax and order map a prediction back: they need like=CASE.vxt")
    if order not in _ORDERS:
        raise InvalidArgument(_EINVAL, f"order must be 'linear' or 'cubic', not {order!r}")
    opts = _ffi.ExportOpts()
    _lib.vt_export_opts_init(ctypes.byref(opts))
    opts.argmax = int(bool(argmax))
    opts.order = _ORDERS[order]
    keep = None
    if progress is not None:
        keep = _ffi.PROGRESS(lambda ctx, f: progress(f))
        opts.progress = keep
    _check(_lib.vt_export_like(os.fsencode(store), array.encode() if array else None,
                               None if like is None else os.fsencode(like), ctypes.byref(opts), os.fsencode(out)),
           paths=(store, os.path.dirname(os.path.abspath(out))) + (() if like is None else (like,)))


def probe(path):
    """Header of an image file: {shape: (c, z, y, x), dtype, spacing: (z, y, x), format}."""
    info = _ffi.ImageInfo()
    _check(_lib.vt_image_probe(os.fsencode(path), ctypes.byref(info)), paths=(path,))
    return {"shape": tuple(int(v) for v in info.shape), "dtype": _VT_DTYPES[info.dtype],
            "spacing": tuple(info.spacing), "format": info.format.decode()}


from . import augment  # noqa: E402,F401 (numpy only: voxtile.augment after import voxtile)
from ._fingerprint import fingerprint, load_fingerprint  # noqa: E402,F401 (vt_fingerprint_*)
from .dataset import Dataset  # noqa: E402 (uses the helpers above)

__all__ += ["Dataset"]
