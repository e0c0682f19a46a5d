"""Dask arrays over stores, chunked along the tiles.

    import voxtile.dask
    x = voxtile.dask.from_store("case.vxt", "image")   # dask.array, chunks = whole tiles
    x.mean().compute()                                   # on a dask.distributed cluster too

Each chunk is read through the store's lazy reader in whichever process runs
the task; the graph carries only the path, so it pickles to remote workers.
Stores are read-only files: many workers and nodes may read one dataset on a
shared filesystem at once.
"""
import os

import dask.array as da
import numpy as np
from dask.base import tokenize

import voxtile

__all__ = ["from_store"]

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
