"""nnU-Net raw dataset folders, one store per case: the library's vt_dataset_* (what `voxtile convert-dataset`
runs), so that every driver -- the CLI, a loop in Python, dask tasks (voxtile.dask.convert_dataset) -- makes
the same stores.

    ds = voxtile.Dataset("nnUNet_raw/Dataset001_Liver")
    ds.prepare("stores/Dataset001")                     # the folder, imagesTs/, dataset.json
    for i, case in enumerate(ds.cases):                 # Case(id, images, seg, test)
        ds.convert_case(i, "stores/Dataset001", crop="nonzero")   # "converted", "converted again", "up to date"
"""
import collections
import ctypes
import os

from . import _check, _convert_opts, _ffi, _lib

__all__ = ["Dataset", "Case"]

Case = collections.namedtuple("Case", "id images seg test")
Case.__doc__ = """One case: id (CASE of CASE_0000<ending>), images (its channel files in channel order, None where a
channel's file is missing), seg (labelsTr/CASE<ending> or None), test (a case of imagesTs)."""

# vt_case_status: what the store was -> what convert_case() did
_STATUS = {0: "missing", 1: "outdated", 2: "up to date"}
_DONE = {0: "converted", 1: "converted again", 2: "up to date"}


def _dataset_opts(options):
    """The conversion options of one case: convert()'s keywords, one compression thread unless told (the
    cases run in parallel, as `convert-dataset` does)."""
    options = dict(options)
    options.setdefault("threads", 1)
    return _convert_opts(**options)


class Dataset:
    """An nnU-Net raw dataset folder (dataset.json, imagesTr/, labelsTr/, imagesTs/), scanned at once; the
    voxels are read only by convert_case(). Case i is stored as OUT_DIR/CASE.vxt (OUT_DIR/imagesTs/CASE.vxt
    for a test case); a case whose store was made with the same options is up to date and left alone. A
    Dataset pickles as its folder (reopened on the other side) and may be shared by threads."""

    def __init__(self, raw_dir):
        self.raw_dir = os.fspath(raw_dir)
        h = ctypes.c_void_p()
        _check(_lib.vt_dataset_open(os.fsencode(self.raw_dir), ctypes.byref(h)),
               paths=(os.path.join(self.raw_dir, "dataset.json"),))
        self._h = h
        self.cases = [self._case(i) for i in range(_lib.vt_dataset_ncases(h))]
        self._index = {(c.id, c.test): i for i, c in enumerate(self.cases)}

    def _case(self, i):
        info = _ffi.DatasetCaseInfo()
        _check(_lib.vt_dataset_case(self._h, i, ctypes.byref(info)))
        dec = os.fsdecode
        images = tuple(None if info.images[c] is None else dec(info.images[c]) for c in range(info.nimages))
        return Case(dec(info.id), images, None if info.seg is None else dec(info.seg), bool(info.test))

    def close(self):
        h, self._h = getattr(self, "_h", None), None
        if h:
            _lib.vt_dataset_close(h)

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        return {"raw_dir": self.raw_dir}

    def __setstate__(self, state):
        self.__init__(state["raw_dir"])

    def __len__(self):
        return len(self.cases)

    def __repr__(self):
        return f"voxtile.Dataset({self.raw_dir!r}: {len(self.cases)} cases)"

    def _handle(self):
        if not self._h:
            raise ValueError("the dataset is closed")
        return self._h

    def index(self, case_id, test=False):
        """The number of the case named case_id (of imagesTs when test); KeyError when there is none."""
        try:
            return self._index[(case_id, bool(test))]
        except KeyError:
            where = "imagesTs" if test else "imagesTr"
            raise KeyError(f"{self.raw_dir}: no case {case_id!r} in {where}") from None

    def store_path(self, i, out_dir):
        """Where case i is stored under out_dir."""
        h, out = self._handle(), os.fsencode(out_dir)
        n = _lib.vt_dataset_store_path(h, i, out, None, 0)
        _check(min(n, 0))
        buf = ctypes.create_string_buffer(n + 1)
        _lib.vt_dataset_store_path(h, i, out, buf, n + 1)
        return os.fsdecode(buf.value)

    def prepare(self, out_dir):
        """Create out_dir (and imagesTs/ when there are test cases) and copy dataset.json there."""
        _check(_lib.vt_dataset_prepare(self._handle(), os.fsencode(out_dir)))

    def status(self, i, out_dir, **convert_options):
        """Case i's store against these options: "missing" (none that opens), "outdated" (made with other
        options) or "up to date"."""
        opts, keep = _dataset_opts(convert_options)
        st = ctypes.c_int(0)
        _check(_lib.vt_dataset_case_status(self._handle(), i, os.fsencode(out_dir), ctypes.byref(opts),
                                           ctypes.byref(st)))
        del keep
        return _STATUS[st.value]

    def convert_case(self, i, out_dir, **convert_options):
        """Convert case i into its store under out_dir unless it is up to date; the store is replaced
        atomically. convert_options: the keywords of voxtile.convert() (threads default 1). Returns
        "converted", "converted again" (its store was made with other options) or "up to date" (nothing
        done); raises voxtile.Error naming the file on failure (a missing channel, a bad image ...)."""
        opts, keep = _dataset_opts(convert_options)
        st = ctypes.c_int(0)
        case = self.cases[i]
        rc = _lib.vt_dataset_convert_case(self._handle(), i, os.fsencode(out_dir), ctypes.byref(opts),
                                          ctypes.byref(st))
        _check(rc, paths=[p for p in case.images + (case.seg,) if p] + [os.path.abspath(out_dir)])
        del keep
        return _DONE[st.value]
