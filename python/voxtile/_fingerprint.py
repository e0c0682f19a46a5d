"""nnU-Net's dataset fingerprint through libvoxtile (vt_fingerprint_*): voxtile.fingerprint() reads
cases, voxtile.load_fingerprint() reads a dataset_fingerprint.json (voxtile's or nnU-Net's); both
return the file's content as a dict (docs/cli.md, "stats --fingerprint")."""
import ctypes
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor

from . import _EIO, _ffi, _lib, _check, _raise

_CHANNEL = re.compile(r"^(.*)_(\d{4})$")


def _as_dict(handle):
    n = _lib.vt_fingerprint_json(handle, None, 0)
    if n < 0:
        _check(int(n))
    buf = ctypes.create_string_buffer(int(n) + 1)
    _lib.vt_fingerprint_json(handle, buf, int(n) + 1)
    return json.loads(buf.raw[:n].decode())


def _raw_cases(folder):
    """(images, label) of every training case of an nnU-Net raw folder, in case order."""
    images_dir, labels_dir = os.path.join(folder, "imagesTr"), os.path.join(folder, "labelsTr")
    cases = {}
    for name in sorted(os.listdir(images_dir)):
        ending = ctypes.c_size_t()
        if _lib.vt_image_format(os.fsencode(name), None, ctypes.byref(ending)) != 1:
            continue
        m = _CHANNEL.match(name[:len(name) - ending.value])
        if m:
            case = cases.setdefault(m.group(1), ({}, name[len(name) - ending.value:]))
            case[0][int(m.group(2))] = os.path.join(images_dir, name)
    if not cases:
        _raise(_EIO, f"{images_dir}: no images named CASE_XXXX with an image ending", ())
    nchan = max(max(chans) for chans, _ in cases.values()) + 1
    out = []
    for case, (chans, ending) in sorted(cases.items()):
        missing = [c for c in range(nchan) if c not in chans]
        if missing:
            _raise(_EIO, f"{images_dir}: case {case} has no channel {missing[0]:04d}", ())
        out.append(([chans[c] for c in range(nchan)], os.path.join(labels_dir, case + ending)))
    return out


def fingerprint(dataset, jobs=None, out=None):
    """The dataset fingerprint of an nnU-Net raw folder (imagesTr/CASE_XXXX.nii.gz + labelsTr/CASE.nii.gz)
    or of a list of (images, segmentation) pairs (images: a path or the channels' paths), as a dict with
    nnU-Net's keys (foreground_intensity_properties_per_channel, spacings, shapes_after_crop,
    median_relative_size_after_cropping) and voxtile's ("voxtile": target_spacing, counts, ...).
    jobs: cases read at once (threads; default all cores); out: also write the JSON there (atomically)."""
    if isinstance(dataset, (str, bytes, os.PathLike)):
        cases = _raw_cases(os.fsdecode(dataset))
    else:
        cases = [([images] if isinstance(images, (str, bytes, os.PathLike)) else list(images), seg)
                 for images, seg in dataset]
    h = ctypes.c_void_p()
    _check(_lib.vt_fingerprint_new(ctypes.byref(h)))

    def add(case):
        images, seg = case
        paths = [os.fsencode(p) for p in images]
        arr = (ctypes.c_char_p * len(paths))(*paths)
        _check(_lib.vt_fingerprint_add_case(h, arr, len(paths), os.fsencode(seg), None), paths=list(images) + [seg])

    try:
        with ThreadPoolExecutor(max(1, int(jobs or os.cpu_count() or 1))) as pool:
            list(pool.map(add, cases))
        if out is not None:
            _check(_lib.vt_fingerprint_save(h, os.fsencode(out)), paths=(os.path.dirname(os.path.abspath(out)),))
        return _as_dict(h)
    finally:
        _lib.vt_fingerprint_free(h)


def load_fingerprint(path):
    """A fingerprint file (voxtile's or nnU-Net's dataset_fingerprint.json) read by the library's strict
    reader, as the dict fingerprint() returns (the target spacing computed again)."""
    h = ctypes.c_void_p()
    _check(_lib.vt_fingerprint_load(os.fsencode(path), ctypes.byref(h)), paths=(path,))
    try:
        return _as_dict(h)
    finally:
        _lib.vt_fingerprint_free(h)


__all__ = ["fingerprint", "load_fingerprint"]
