"""Data path: tensor-resident data, seeded batching, the early-stopping split, CPU threads.

Used by the trainer (:mod:`._trainer`) instead of skorch's ``Dataset`` +
``DataLoader``, which cost more than the arithmetic on small MLPs:

- the data are converted once to contiguous tensors and, on CUDA, moved to the
  device once (:class:`TensorData`); batches are slices (or gathers) of a
  seeded permutation (:class:`Batches`), never a per-row
  ``Dataset.__getitem__`` + collate;
- :func:`choose_num_threads` picks the CPU thread count by problem size.
"""

from __future__ import annotations

import threading
import warnings
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp
import torch

__all__ = [
    "Batches", "RowSubset", "TensorData", "choose_num_threads", "index_dtype", "split_rows",
    "to_tensor", "torch_threads",
]

def to_tensor(array, device, dtype=None):
    """Convert a numpy array to a tensor on ``device`` without an extra copy on CPU."""
    array = np.ascontiguousarray(array)
    if array.flags.writeable:
        t = torch.from_numpy(array)
    else:
        with warnings.catch_warnings():
            # Read-only inputs (e.g. memory maps) are never written to.
            warnings.filterwarnings("ignore", message=".*not writable.*")
            t = torch.from_numpy(array)
    if dtype is not None:
        t = t.to(dtype)
    return t.to(device)


# Multiply-adds of a step's largest matrix product below which one CPU thread is
# faster than several (measured on 2 cores: 5x100 at batch 32 runs ~1.3x faster
# on one thread; 3x256 at batch 128 ~1.2x faster on two).
SINGLE_THREAD_MACS = 2**21


def choose_num_threads(batch_size, n_features, hidden_layer_sizes, available):
    """CPU threads for training: 1 for small matrix products, else ``available``.

    Parameters
    ----------
    batch_size : int
    n_features : int
    hidden_layer_sizes : sequence of int
    available : int
        The caller's ``torch.get_num_threads()``.

    Returns
    -------
    int
    """
    return threads_for(batch_size, largest_product(n_features, hidden_layer_sizes), available)


def largest_product(n_features, hidden_layer_sizes):
    """Multiply-adds per row of the largest matrix product of a network of these widths.

    Parameters
    ----------
    n_features : int
    hidden_layer_sizes : sequence of int
        The widths of the layers after the input (the output layer's too).

    Returns
    -------
    int
    """
    widths = [n_features, *hidden_layer_sizes]
    return max((a * b for a, b in zip(widths[:-1], widths[1:], strict=False)), default=0)


def threads_for(rows, largest, available):
    """:func:`choose_num_threads` from the multiply-adds per row of the largest
    product (:func:`largest_product`, or what the caller counted and kept).

    Parameters
    ----------
    rows : int
    largest : int
    available : int

    Returns
    -------
    int
    """
    return 1 if rows * largest < SINGLE_THREAD_MACS else max(1, available)


_THREADS_LOCK = threading.Lock()
_ACTIVE_THREADS = {}  # thread id -> nesting depth of torch_threads


@contextmanager
def torch_threads(wanted):
    """Run this thread's torch CPU operations on ``wanted`` threads, or its share.

    torch's thread count (``torch.set_num_threads``, OpenMP) belongs to the
    calling thread, and every new thread starts at the process default. When
    several threads of one process fit or predict at the same time (joblib's
    threading backend, a Dask worker with several threads, a web server),
    each taking the default would oversubscribe the cores. So the main thread
    gets ``wanted`` while no other thread is inside, and any other thread, or
    the main thread while ``k - 1`` others are inside, gets
    ``wanted // max(k, 2)`` (at least 1): worker threads are assumed to run
    beside others. The thread's own count is restored on exit; other threads'
    settings are never touched.

    Parameters
    ----------
    wanted : int
        Threads for this thread when no other thread is inside.
    """
    me = threading.get_ident()
    with _THREADS_LOCK:
        _ACTIVE_THREADS[me] = _ACTIVE_THREADS.get(me, 0) + 1
        users = len(_ACTIVE_THREADS)
        if threading.current_thread() is not threading.main_thread():
            users = max(users, 2)
        share = max(1, wanted // users)
    before = torch.get_num_threads()
    if share != before:
        torch.set_num_threads(share)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
        with _THREADS_LOCK:
            _ACTIVE_THREADS[me] -= 1
            if not _ACTIVE_THREADS[me]:
                del _ACTIVE_THREADS[me]


def index_dtype(n):
    """Smallest index dtype for ``n`` rows: int32 halves the permutation's memory."""
    return torch.int32 if n < 2**31 else torch.int64


class RowSubset:
    """Rows ``X[rows]`` of an array, gathered slice by slice (never all at once).

    Stands in for ``X[rows]`` where only :func:`~.inference.predict_raw` reads it (the
    early-stopping validation set), so no copy of those rows is kept.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    rows : ndarray of int
    """

    def __init__(self, X, rows):
        self.X, self.rows = X, rows
        self._buffer = None

    def __len__(self):
        return len(self.rows)

    @property
    def shape(self):
        """``(len(rows), n_features)``, like the array it stands for."""
        return (len(self.rows), self.X.shape[1])

    @property
    def sparse(self):
        """Whether the rows come from a sparse matrix (densified when read)."""
        return sp.issparse(self.X)

    def __getitem__(self, key):
        """``X[rows[key]]``, gathered into one reused buffer (valid until the next call).

        Reusing the buffer keeps the allocator from growing the process by a
        fresh chunk per call.
        """
        idx = self.rows[key]
        if sp.issparse(self.X):
            return self.X[idx].toarray()
        n = len(idx)
        if self._buffer is None or len(self._buffer) < n:
            self._buffer = np.empty((n, self.X.shape[1]), dtype=self.X.dtype)
        return np.take(self.X, idx, axis=0, out=self._buffer[:n])

    def __getstate__(self):
        return {"X": self.X, "rows": self.rows, "_buffer": None}


class TensorData:
    """Training data held as tensors on the training device.

    Parameters
    ----------
    X : torch.Tensor or scipy.sparse CSR matrix of shape (n_rows, n_features)
        All rows the user passed (shared with the caller's array on CPU). A
        sparse matrix stays sparse on the host; each batch is densified
        (and moved to the device) when it is trained on, so memory stays
        bounded by one dense batch.
    y : torch.Tensor or None
        Targets (``int64`` class indices or ``float32`` values), one per row;
        ``None``: each batch's target is its input (an autoencoder; the way
        to give a sparse ``X`` as its own target).
    w : torch.Tensor of shape (n_rows,)
        Sample weights.
    rows : torch.Tensor of int32/int64 or None, default=None
        The rows to train on (e.g. without the validation rows); ``None`` for
        all. Selecting rows by index avoids a second copy of ``X``.
    uniform_weights : bool, default=False
        Every weight is 1 (lets the CPU step skip the weighting).

    Attributes
    ----------
    device : torch.device
        Where batches are delivered (that of ``w``).
    sparse : bool
        Whether ``X`` is a sparse matrix.
    n_rows : int
        Rows of ``X`` (all of them, not only ``rows``).
    """

    def __init__(self, X, y, w, rows=None, uniform_weights=False):
        self.X, self.y, self.w, self.rows = X, y, w, rows
        self.uniform_weights = uniform_weights
        self.device = w.device
        self.sparse = sp.issparse(X)
        self.n_rows = X.shape[0]

    def __len__(self):
        return self.n_rows if self.rows is None else len(self.rows)

    def batch(self, order, start, stop):
        """``(X, y, w)`` of the batch ``order[start:stop]`` (slices when ``order`` is None)."""
        if order is None:
            xb = self._dense(slice(start, stop)) if self.sparse else self.X[start:stop]
            return xb, xb if self.y is None else self.y[start:stop], self.w[start:stop]
        idx = order[start:stop]
        xb = self._dense(idx.cpu().numpy()) if self.sparse else self.X.index_select(0, idx)
        return xb, xb if self.y is None else self.y.index_select(0, idx), self.w[idx]

    def _dense(self, rows):
        return torch.from_numpy(self.X[rows].toarray()).to(self.device)


class Batches:
    """Mini-batch boundaries and the seeded row order of each epoch.

    Parameters
    ----------
    data : TensorData
    batch_size : int
    shuffle : bool
    generator : torch.Generator or None
        CPU generator drawing the permutation of each epoch.
    min_batch : int, default=1
        A trailing batch smaller than this is merged into the previous one
        (BatchNorm cannot normalize a single sample).
    """

    def __init__(self, data, batch_size, shuffle, generator=None, min_batch=1):
        self.data = data
        self.shuffle = shuffle
        self.generator = generator
        n = len(data)
        bounds = list(range(0, n, batch_size)) + [n]
        if len(bounds) > 2 and n - bounds[-2] < min_batch:
            del bounds[-2]
        self.bounds = bounds

    def __len__(self):
        return len(self.bounds) - 1

    def spans(self):
        """``(start, stop)`` positions of every batch in the epoch's order."""
        return zip(self.bounds[:-1], self.bounds[1:], strict=False)

    def order(self, always=False):
        """Row indices for this epoch, or ``None`` when plain slices will do.

        Draws a new permutation from ``generator`` when shuffling: call once
        per epoch.
        """
        d = self.data
        device = d.device
        dtype = index_dtype(d.n_rows)
        if self.shuffle:
            perm = torch.randperm(len(d), generator=self.generator, dtype=dtype).to(device)
            return perm if d.rows is None else d.rows[perm]
        if d.rows is not None:
            return d.rows
        return torch.arange(len(d), device=device, dtype=dtype) if always else None


def split_rows(rows, n_val, labels, seed):
    """Random (stratified when ``labels`` allow) split of ``rows`` into train/validation.

    Like ``train_test_split(rows, test_size=n_val, stratify=...)`` with the
    class quotas chosen by largest remainder, but with ~10 bytes of temporary
    memory per row instead of ~64: the split must not cost more than the data.

    Parameters
    ----------
    rows : ndarray of int
        Candidate rows.
    n_val : int
        Number of validation rows.
    labels : ndarray of shape (n_all,) or None
        Class code (0 .. n_classes - 1) of every row of the data set (indexed
        by ``rows``); ``None`` or too few samples per class gives a plain
        random split.
    seed : int

    Returns
    -------
    train_rows, val_rows : ndarray of int
    """
    rng = np.random.RandomState(seed % (2**32))
    perm = rows.copy()
    rng.shuffle(perm)
    n = len(rows)
    if labels is not None:
        codes = np.take(labels.astype(np.int32, copy=False), perm)
        counts = np.bincount(codes)
        present = counts[counts > 0]
        if present.min() < 2 or n_val < len(present) or n - n_val < len(present):
            labels = None  # too few samples per class: plain random split
    if labels is None:
        return perm[n_val:], perm[:n_val]
    exact = n_val * counts / n
    quota = np.floor(exact).astype(np.int64)
    short = n_val - quota.sum()
    quota[np.argsort(quota - exact, kind="stable")[:short]] += 1
    is_val = np.zeros(n, dtype=bool)
    for c, q in enumerate(quota):
        is_val[np.flatnonzero(codes == c)[:q]] = True
    del codes
    return perm[~is_val], perm[is_val]
