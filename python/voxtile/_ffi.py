"""ctypes declarations of libvoxtile's public API (include/voxtile.h and include/voxtile_convert.h).

The library is found, in order: the file named by the environment variable
VOXTILE_LIB; the package's own copy (voxtile/_lib/libvoxtile.so, where a
wheel -- `pip install` -- puts it); the build tree of a checkout
(python/../build/libvoxtile.so, for PYTHONPATH=python); the library `meson
install` put next to the package (PREFIX/lib*/libvoxtile.so.0); the system's
search path. load() returns it with the path it came from as `_path`
(voxtile._lib._path). At load time every struct is checked against the size
the library reports, so a binding out of step with the library fails loudly
instead of corrupting memory.
"""
import ctypes
import ctypes.util
import os

MAX_DIMS = 5

c_u64p = ctypes.POINTER(ctypes.c_uint64)
c_i64p = ctypes.POINTER(ctypes.c_int64)


class ReadOpts(ctypes.Structure):
    _fields_ = [
        ("dtype", ctypes.c_int),
        ("pad", ctypes.c_int),
        ("pad_value", ctypes.c_double),
        ("transform", ctypes.c_int),
        ("clip_lo", ctypes.c_double),
        ("clip_hi", ctypes.c_double),
        ("scale", ctypes.c_double),
        ("offset", ctypes.c_double),
        ("strides", c_i64p),
        ("threads", ctypes.c_int),
        ("verify", ctypes.c_int),
    ]


class ArrayInfo(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("dtype", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("shape", ctypes.c_uint64 * MAX_DIMS),
        ("tile", ctypes.c_uint32 * MAX_DIMS),
        ("grid", ctypes.c_uint64 * MAX_DIMS),
        ("ntiles", ctypes.c_uint64),
        ("codec", ctypes.c_int),
        ("level", ctypes.c_int),
        ("filter", ctypes.c_int),
        ("fill", ctypes.c_double),
        ("raw_bytes", ctypes.c_uint64),
        ("stored_bytes", ctypes.c_uint64),
        ("constant_tiles", ctypes.c_uint64),
        ("raw_tiles", ctypes.c_uint64),
        ("shuffled_tiles", ctypes.c_uint64),
        ("min", ctypes.c_double),
        ("max", ctypes.c_double),
    ]


class TileInfo(ctypes.Structure):
    _fields_ = [
        ("coord", ctypes.c_uint64 * MAX_DIMS),
        ("start", ctypes.c_uint64 * MAX_DIMS),
        ("extent", ctypes.c_uint64 * MAX_DIMS),
        ("offset", ctypes.c_uint64),
        ("stored_size", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("raw_size", ctypes.c_uint64),
        ("checksum", ctypes.c_uint64),
        ("min", ctypes.c_double),
        ("max", ctypes.c_double),
    ]


class LabelInfo(ctypes.Structure):
    _fields_ = [
        ("value", ctypes.c_int64),
        ("voxels", ctypes.c_uint64),
        ("ntiles", ctypes.c_uint64),
        ("tiles", c_u64p),
    ]


class ArraySpec(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("dtype", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("shape", ctypes.c_uint64 * MAX_DIMS),
        ("tile", ctypes.c_uint32 * MAX_DIMS),
        ("codec", ctypes.c_int),
        ("level", ctypes.c_int),
        ("filter", ctypes.c_int),
        ("fill", ctypes.c_double),
        ("sparse", ctypes.c_int),
        ("labels", ctypes.c_int),
    ]


class WriterOpts(ctypes.Structure):
    _fields_ = [("threads", ctypes.c_int)]


class RawSpec(ctypes.Structure):
    _fields_ = [
        ("shape", ctypes.c_uint64 * 4),
        ("dtype", ctypes.c_int),
        ("seg_dtype", ctypes.c_int),
        ("offset", ctypes.c_uint64),
        ("big_endian", ctypes.c_int),
        ("spacing", ctypes.c_double * 3),
    ]


PROGRESS = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_double)


class ConvertOpts(ctypes.Structure):
    _fields_ = [
        ("tile", ctypes.c_uint32 * 3),
        ("codec", ctypes.c_int),
        ("level", ctypes.c_int),
        ("filter", ctypes.c_int),
        ("threads", ctypes.c_int),
        ("array", ctypes.c_char_p),
        ("dtype", ctypes.c_int),
        ("apply_scaling", ctypes.c_int),
        ("crop_mode", ctypes.c_int),
        ("crop", ctypes.c_int64 * 6),
        ("crop_margin", ctypes.c_int64),
        ("levels", ctypes.c_int),
        ("raw", ctypes.POINTER(RawSpec)),
        ("progress", PROGRESS),
        ("progress_ctx", ctypes.c_void_p),
        ("spacing", ctypes.c_double * 3),
        ("order", ctypes.c_int),
        ("separate_z", ctypes.c_int),
        ("separate_linear", ctypes.c_int),
        ("normalize", ctypes.c_int),
        ("norm_params", ctypes.POINTER(ctypes.c_double)),
        ("norm_channels", ctypes.c_size_t),
    ]


class ExportOpts(ctypes.Structure):
    _fields_ = [
        ("argmax", ctypes.c_int),
        ("order", ctypes.c_int),
        ("progress", PROGRESS),
        ("progress_ctx", ctypes.c_void_p),
    ]


class ImageInfo(ctypes.Structure):
    _fields_ = [
        ("shape", ctypes.c_uint64 * 4),
        ("dtype", ctypes.c_int),
        ("spacing", ctypes.c_double * 3),
        ("format", ctypes.c_char * 16),
    ]


class SampleStats(ctypes.Structure):
    _fields_ = [
        ("tiles_needed", ctypes.c_uint64),
        ("tiles_decoded", ctypes.c_uint64),
        ("peak_bytes", ctypes.c_uint64),
        ("box_read", ctypes.c_int),
        ("vector_lanes", ctypes.c_int),
    ]


class SampleOpts(ctypes.Structure):
    _fields_ = [
        ("interp", ctypes.c_int),
        ("field", ctypes.POINTER(ctypes.c_float)),
        ("field_shape", ctypes.c_uint64 * 3),
        ("stats", ctypes.POINTER(SampleStats)),
    ]


class SampleTarget(ctypes.Structure):
    _fields_ = [
        ("array", ctypes.c_void_p),
        ("interp", ctypes.c_int),
        ("opts", ctypes.POINTER(ReadOpts)),
        ("out", ctypes.c_void_p),
        ("stats", ctypes.POINTER(SampleStats)),
        ("transforms", ctypes.POINTER(ctypes.c_double)),
    ]


STRUCTS = {
    "vt_read_opts": ReadOpts,
    "vt_array_info": ArrayInfo,
    "vt_tile_info": TileInfo,
    "vt_label_info": LabelInfo,
    "vt_array_spec": ArraySpec,
    "vt_writer_opts": WriterOpts,
    "vt_convert_opts": ConvertOpts,
    "vt_raw_spec": RawSpec,
    "vt_image_info": ImageInfo,
    "vt_sample_opts": SampleOpts,
    "vt_sample_stats": SampleStats,
    "vt_sample_target": SampleTarget,
}

_P = ctypes.c_void_p
_S = ctypes.c_char_p
_I = ctypes.c_int
_SZ = ctypes.c_size_t
_U64 = ctypes.c_uint64

# name: (restype, argtypes)
FUNCTIONS = {
    "vt_version_string": (_S, []),
    "vt_strerror": (_S, [_I]),
    "vt_struct_size": (_SZ, [_S]),
    "vt_dtype_size": (_SZ, [_I]),
    "vt_open": (_I, [_S, ctypes.c_uint, ctypes.POINTER(_P)]),
    "vt_close": (None, [_P]),
    "vt_errmsg": (_S, [_P]),
    "vt_store_path": (_S, [_P]),
    "vt_store_release": (_I, [_P]),
    "vt_store_file_size": (_U64, [_P]),
    "vt_store_narrays": (_SZ, [_P]),
    "vt_store_array_at": (_I, [_P, _SZ, ctypes.POINTER(_P)]),
    "vt_store_array": (_I, [_P, _S, ctypes.POINTER(_P)]),
    "vt_array_info_get": (_I, [_P, ctypes.POINTER(ArrayInfo)]),
    "vt_array_scaling": (_I, [_P, ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)]),
    "vt_tile_get": (_I, [_P, _U64, ctypes.POINTER(TileInfo)]),
    "vt_read_opts_init": (None, [ctypes.POINTER(ReadOpts)]),
    "vt_read": (_I, [_P, c_i64p, c_u64p, ctypes.POINTER(ReadOpts), _P]),
    "vt_sample_opts_init": (None, [ctypes.POINTER(SampleOpts)]),
    "vt_sample": (_I, [_P, ctypes.POINTER(ctypes.c_double), c_u64p, ctypes.POINTER(SampleOpts),
                       ctypes.POINTER(ReadOpts), _P]),
    "vt_sample_many": (_I, [ctypes.POINTER(SampleTarget), _SZ, ctypes.POINTER(ctypes.c_double), c_u64p,
                            ctypes.POINTER(ctypes.c_float), c_u64p, _I]),
    "vt_verify_array": (_I, [_P, c_u64p]),
    "vt_label_count": (_SZ, [_P]),
    "vt_label_get": (_I, [_P, _SZ, ctypes.POINTER(LabelInfo)]),
    "vt_meta_count": (_SZ, [_P]),
    "vt_meta_at": (_I, [_P, _SZ, ctypes.POINTER(_S), ctypes.POINTER(_I), ctypes.POINTER(_P), ctypes.POINTER(_SZ)]),
    "vt_writer_opts_init": (None, [ctypes.POINTER(WriterOpts)]),
    "vt_writer_open": (_I, [_S, ctypes.POINTER(WriterOpts), ctypes.POINTER(_P)]),
    "vt_array_spec_init": (None, [ctypes.POINTER(ArraySpec)]),
    "vt_writer_add_array": (_I, [_P, ctypes.POINTER(ArraySpec), ctypes.POINTER(_I)]),
    "vt_writer_write": (_I, [_P, _I, c_u64p, c_u64p, _P]),
    "vt_writer_set_meta": (_I, [_P, _S, _I, _P, _SZ]),
    "vt_writer_finalize": (_I, [_P]),
    "vt_writer_free": (None, [_P]),
    "vt_writer_errmsg": (_S, [_P]),
    "vt_convert_opts_init": (None, [ctypes.POINTER(ConvertOpts)]),
    "vt_convert": (_I, [_S, _S, ctypes.POINTER(ConvertOpts)]),
    "vt_convert_images": (_I, [ctypes.POINTER(_S), _SZ, _S, _S, ctypes.POINTER(ConvertOpts)]),
    "vt_export_nifti": (_I, [_S, _S, _S]),
    "vt_export_opts_init": (None, [ctypes.POINTER(ExportOpts)]),
    "vt_export_like": (_I, [_S, _S, _S, ctypes.POINTER(ExportOpts), _S]),
    "vt_image_probe": (_I, [_S, ctypes.POINTER(ImageInfo)]),
}


def _candidates():
    env = os.environ.get("VOXTILE_LIB")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    # a wheel: the package's own copy (meson.build, -Dwheel=true)
    yield os.path.join(here, "_lib", "libvoxtile.so")
    # a checkout: python/voxtile -> build/
    yield os.path.normpath(os.path.join(here, "..", "..", "build", "libvoxtile.so"))
    # installed: PREFIX/lib/python3/dist-packages/voxtile -> PREFIX/lib*/
    prefix = os.path.abspath(os.path.join(here, "..", "..", "..", ".."))
    for sub in ("lib", "lib64", "lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu"):
        yield os.path.join(prefix, sub, "libvoxtile.so.0")
    found = ctypes.util.find_library("voxtile")
    if found:
        yield found
    yield "libvoxtile.so.0"


def load():
    errors = []
    for path in _candidates():
        if os.path.sep in path and not os.path.exists(path):
            errors.append(f"{path}: no such file")
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            errors.append(str(e))
            continue
        for name, (res, args) in FUNCTIONS.items():
            f = getattr(lib, name)
            f.restype = res
            f.argtypes = args
        for name, cls in STRUCTS.items():
            want = lib.vt_struct_size(name.encode())
            if want != ctypes.sizeof(cls):
                raise ImportError(
                    f"voxtile: {path}: struct {name} is {want} bytes in the library but {ctypes.sizeof(cls)} "
                    f"in the Python binding: library and package versions differ")
        lib._path = path
        return lib
    raise ImportError("voxtile: cannot load libvoxtile (set VOXTILE_LIB, or build the checkout with "
                      "'meson setup build && ninja -C build'): " + "; ".join(errors))


# ---- the dataset fingerprint (vt_fingerprint_*, include/voxtile_convert.h; python/voxtile/_fingerprint.py) ----
# Only handles and strings cross: the numbers come back as the JSON text of vt_fingerprint_json().
FUNCTIONS.update({
    "vt_fingerprint_new": (_I, [ctypes.POINTER(_P)]),
    "vt_fingerprint_add_case": (_I, [_P, ctypes.POINTER(_S), _SZ, _S, _P]),
    "vt_fingerprint_json": (ctypes.c_longlong, [_P, _S, _SZ]),
    "vt_fingerprint_save": (_I, [_P, _S]),
    "vt_fingerprint_load": (_I, [_S, ctypes.POINTER(_P)]),
    "vt_fingerprint_free": (None, [_P]),
    "vt_image_format": (_I, [_S, ctypes.POINTER(_S), ctypes.POINTER(_SZ)]),
})

# ---- datasets: an nnU-Net raw folder, one store per case (vt_dataset_*, include/voxtile_convert.h) ----

class DatasetCaseInfo(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_char_p),
        ("images", ctypes.POINTER(ctypes.c_char_p)),
        ("nimages", ctypes.c_size_t),
        ("seg", ctypes.c_char_p),
        ("test", ctypes.c_int),
    ]


STRUCTS["vt_dataset_case_info"] = DatasetCaseInfo

FUNCTIONS.update({
    "vt_dataset_open": (_I, [_S, ctypes.POINTER(_P)]),
    "vt_dataset_close": (None, [_P]),
    "vt_dataset_ncases": (_SZ, [_P]),
    "vt_dataset_case": (_I, [_P, _SZ, ctypes.POINTER(DatasetCaseInfo)]),
    "vt_dataset_store_path": (_I, [_P, _SZ, _S, ctypes.c_char_p, _SZ]),
    "vt_dataset_prepare": (_I, [_P, _S]),
    "vt_dataset_case_status": (_I, [_P, _SZ, _S, ctypes.POINTER(ConvertOpts), ctypes.POINTER(_I)]),
    "vt_dataset_convert_case": (_I, [_P, _SZ, _S, ctypes.POINTER(ConvertOpts), ctypes.POINTER(_I)]),
})
