"""Dask arrays over stores, chunked along the tiles; a dataset's conversion as a cluster job.

    import voxtile.dask
    x = voxtile.dask.from_store("case.vxt", "image")   # dask.array, chunks = whole tiles
    x.mean().compute()                                   # on a dask.distributed cluster too

    report = voxtile.dask.convert_dataset("nnUNet_raw/Dataset001", "stores/Dataset001", client=client,
                                          crop="nonzero")   # one task per case, as `voxtile convert-dataset`

Each chunk is read through the store's lazy reader in whichever process runs
the task; the graph carries only the path, so it pickles to remote workers.
Stores are read-only files: many workers and nodes may read one dataset on a
shared filesystem at once.
"""
import os
import time
import uuid

import dask.array as da
import numpy as np
from dask.base import tokenize

import voxtile

__all__ = ["from_store", "convert_dataset"]

_open = {}  # per process: (path, pid, file identity) -> Store


def _identity(path):
    """What tells one file at path from the next one published there (writers publish by rename: a new
    inode; an in-place rewrite changes the mtime or size)."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class _Lazy:
    """A picklable stand-in for one array: opened on first use in each process.

    It belongs to the file that was at path when from_store() ran: a store rewritten at the path since is
    another file, served by another from_store() (the open cache is keyed by the file's identity), and a
    chunk of this graph read after the rewrite raises voxtile.Error instead of mixing two files' data."""

    def __init__(self, path, array):
        self.path, self.array = os.fspath(path), array
        self.ident = _identity(self.path)
        with voxtile.open(self.path) as st:
            a = st[array]
            self.shape, self.dtype, self.ndim, self.tile_shape = a.shape, a.dtype, a.ndim, a.tile_shape
        if _identity(self.path) != self.ident:
            raise voxtile.Error(-1, f"{self.path}: the store was replaced while from_store() opened it")

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items()}

    def _store(self):
        key = (self.path, os.getpid(), self.ident)
        st = _open.get(key)
        if st is None:
            st = voxtile.open(self.path)
            if _identity(self.path) != self.ident:
                st.close()
                raise voxtile.Error(-1, f"{self.path}: the store was rewritten after from_store() built this "
                                        f"graph; call voxtile.dask.from_store() again for the new data")
            for old in [k for k in _open if k[:2] == key[:2]]:
                del _open[old]  # an older file at the path: closed once no running task holds it
            _open[key] = st
        return st

    def __getitem__(self, key):
        return self._store()[self.array][key]


def from_store(path, array="image", chunk_bytes=32 << 20):
    """A dask.array of one array of a store. Chunks are whole tiles, grown along the fastest (last) axes
    first up to about chunk_bytes (default 32 MiB), so no task decodes a tile another task needs too."""
    lazy = _Lazy(path, array)
    chunks = list(lazy.tile_shape)
    itemsize = np.dtype(lazy.dtype).itemsize
    for d in reversed(range(lazy.ndim)):  # grow the fastest axes first: contiguous reads
        while chunks[d] < lazy.shape[d] and np.prod(chunks) * itemsize * 2 <= chunk_bytes:
            chunks[d] = min(chunks[d] * 2, lazy.shape[d])
        chunks[d] = min(chunks[d], lazy.shape[d])
    # multiples of the tile shape (the grow step doubled a tile multiple, so they are, except when clipped)
    # a store rewritten at the path is another graph
    name = "voxtile-" + tokenize(os.path.abspath(path), array, tuple(chunks), lazy.ident)
    return da.from_array(lazy, chunks=tuple(chunks), asarray=False, lock=False, fancy=False, name=name)


# ---- conversion of a dataset -------------------------------------------------------------------------

_datasets = {}  # per process: raw_dir -> (what its listing depends on, voxtile.Dataset)


def _listing_identity(raw_dir):
    """What the scan of a dataset depends on: dataset.json and the folders' entries (adding, removing or
    renaming a file changes its folder's mtime)."""
    out = []
    for name in ("dataset.json", "imagesTr", "labelsTr", "imagesTs"):
        try:
            st = os.stat(os.path.join(raw_dir, name))
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def _dataset(raw_dir):
    """The dataset at raw_dir, scanned once per process while its listing stays the same (a task per case
    of a 20,000-case dataset must not list 20,000 files each)."""
    ident = _listing_identity(raw_dir)
    hit = _datasets.get(raw_dir)
    if hit is not None and hit[0] == ident:
        return hit[1]
    ds = voxtile.Dataset(raw_dir)
    _datasets[raw_dir] = (ident, ds)  # an older one is closed when no running task holds it
    return ds


def _convert_case_task(case_id, test, raw_dir, out_dir, options):
    """One case, in whichever process runs the task: its report (a failure is reported, not raised)."""
    t0 = time.monotonic()
    rep = {"case": case_id, "test": test, "store": None, "status": "failed", "error": None}
    try:
        ds = _dataset(raw_dir)
        i = ds.index(case_id, test)
        rep["store"] = ds.store_path(i, out_dir)
        rep["status"] = ds.convert_case(i, out_dir, **options)
    except voxtile.Error as e:
        rep["error"] = str(e)
    except Exception as e:  # noqa: BLE001 -- any failure is the case's, reported with it
        rep["error"] = f"{type(e).__name__}: {e}"
    rep["seconds"] = time.monotonic() - t0
    return rep


def convert_dataset(raw_dir, out_dir, client=None, *, n_workers=None, **convert_options):
    """Convert an nnU-Net raw dataset folder to one store per case on a dask.distributed cluster: the work
    of `voxtile convert-dataset RAW_DIR -o OUT_DIR`, one task per case, the same stores.

    client: a distributed.Client; None starts a LocalCluster of n_workers processes (default: the CPU
    count) with one thread each, closed on return (its workers are spawned interpreters that import the
    calling script again: call it under `if __name__ == "__main__":`, as dask asks). convert_options: the keywords of voxtile.convert()
    (crop, levels, dtype, tile, codec ...; threads defaults to 1 per case). raw_dir and out_dir are made
    absolute here, so the workers must see the same file system at the same paths (a shared file system on
    a cluster of several machines).

    Resumable as the CLI: a case whose store was made with the same options is left alone, one made with
    other options is converted again. A failing case does not stop the others.

    Returns a report per case, in the dataset's order (imagesTr's cases by name, then imagesTs'): dicts
    {"case", "test", "store", "status": "converted" | "converted again" | "up to date" | "failed",
    "error": the message of a failure (it names the file) or None, "seconds"}. Errors of the dataset as a
    whole (no dataset.json, an output folder that cannot be created, a bad option) raise at once."""
    raw_dir, out_dir = os.path.abspath(os.fspath(raw_dir)), os.path.abspath(os.fspath(out_dir))
    voxtile.dataset._dataset_opts(convert_options)  # a bad option fails here, not in every task
    with voxtile.Dataset(raw_dir) as ds:
        cases = [(c.id, c.test) for c in ds.cases]
        stores = [ds.store_path(i, out_dir) for i in range(len(cases))]
        ds.prepare(out_dir)
    if not cases:
        return []
    cluster = None
    if client is None:
        from distributed import Client, LocalCluster
        cluster = LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
        client = Client(cluster)
    try:
        from distributed import wait
        run = uuid.uuid4().hex[:12]
        futures = client.map(_convert_case_task, [c[0] for c in cases], [c[1] for c in cases], raw_dir=raw_dir,
                             out_dir=out_dir, options=convert_options,
                             key=[f"voxtile-convert-{run}-{i}-{c[0]}" for i, c in enumerate(cases)])
        wait(futures)
        report = []
        for (case_id, test), store, f in zip(cases, stores, futures):
            if f.status == "finished":
                report.append(f.result())
                continue
            e = f.exception()  # the task itself never raises: its worker died (a crash, out of memory)
            report.append({"case": case_id, "test": test, "store": store, "status": "failed",
                           "error": f"{type(e).__name__}: {e}", "seconds": None})
        return report
    finally:
        if cluster is not None:
            client.close()
            cluster.close()
