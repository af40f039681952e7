"""How few rows a prediction's matrix products may have and keep their rounding, probed here.

Inference (:mod:`.inference`) promises batch invariance: a row's outputs do
not depend on the rows it is predicted with. BLAS rounds a product of very
few rows differently from a larger one (MKL on this project's AVX-512
machines: 1 and 2 rows differ, 4 rows and more give a 1,000-row product's
bits), so every product is padded with zero rows to a minimum. Padding is
what a one-row prediction pays for (a 64-row product costs about twice a
16-row one), and the threshold is a property of the BLAS build, the CPU and
the product's shape, so it is not assumed: :func:`min_rows` tries each
candidate, smallest first, on the plan's own product shapes, on this
machine, before a plan is first used, and takes the first whose products
give the bits of the same rows inside a large product at every probed thread
count, with the rows starting at an unaligned address too. When no candidate
passes, the largest is used (the value used before the probe existed).

A probe is a property of the process (BLAS build, CPU): its answer is kept
per product shape, so a shape is probed once per process.
"""

from __future__ import annotations

import os
import threading

import torch

__all__ = ["ROW_CANDIDATES", "min_rows"]

# Candidates for the minimum number of rows, smallest first; the last is the
# fallback when none passes (it is never probed).
ROW_CANDIDATES = (16, 64)
# Row counts of the large product and of the sub-products compared with it
# (relative to a candidate r: r, r + 1, 2r - 1, 3r + 5, and 200).
_LARGE = 1024
_PROBED: dict = {}
_LOCK = threading.Lock()


def _thread_counts():
    """The thread counts a prediction may use here: 1, 2, 3 and every core (those
    the machine has), and torch's current count (even above the cores)."""
    cores = os.cpu_count() or 1
    return sorted({t for t in (1, 2, 3, cores) if t <= cores} | {torch.get_num_threads()})


def _product(shape, gen):
    """``(x, f)``: random rows ``x`` and ``f(rows of x)`` -> the product's rows, for
    a weight of ``shape``: ``(n_in, n_out)`` read transposed (as
    :class:`.inference._Linear`), or ``(F, n_in, size)``: ``F`` products batched
    over the columns of ``(n, F, n_in)`` rows (as a numeric embedding's)."""
    if len(shape) == 2:
        n_in, n_out = shape
        x = torch.randn(_LARGE + 1, n_in, generator=gen)
        w = torch.randn(n_out, n_in, generator=gen).t()
        b = torch.randn(n_out, generator=gen)
        return x, lambda rows: torch.addmm(b, rows, w)
    n_features, n_in, size = shape
    x = torch.randn(_LARGE + 1, n_features, n_in, generator=gen)
    w = torch.randn(n_features, n_in, size, generator=gen)
    b = torch.randn(n_features, 1, size, generator=gen)
    return x, lambda rows: torch.baddbmm(b, rows.transpose(0, 1), w).transpose(0, 1)


def _passes(shape, rows):
    """Whether products of ``rows`` rows and more round like a large one (see
    :func:`_product` for ``shape``)."""
    gen = torch.Generator().manual_seed(sum(d * 7919**i for i, d in enumerate(shape)) % 2**62)
    x, product = _product(shape, gen)
    reference, before = None, torch.get_num_threads()
    try:
        for threads in _thread_counts():
            # (this thread's count, exactly: torch_threads would give a worker
            # thread its share, and the answer is kept for every thread)
            torch.set_num_threads(threads)
            large = product(x[:_LARGE])
            if reference is None:
                reference = large
            elif not torch.equal(large, reference):  # (not the rows: give up)
                return False
            for m in (rows, rows + 1, 2 * rows - 1, 3 * rows + 5, 200):
                if not torch.equal(product(x[:m].clone()), reference[:m]):
                    return False
            # Rows starting at an unaligned address (a slice of the caller's array).
            if not torch.equal(product(x[1 : rows + 1]), large[1 : rows + 1]):
                return False
    finally:
        torch.set_num_threads(before)
    return True


def min_rows(shapes):
    """The fewest rows every product of ``shapes`` may have here (see the module docstring).

    Parameters
    ----------
    shapes : iterable of tuple of int
        ``(n_in, n_out)`` of each weight matrix, as padded for inference, and
        ``(F, n_in, size)`` of each batch of ``F`` products (a numeric
        embedding's).

    Returns
    -------
    int
        One of :data:`ROW_CANDIDATES`.
    """
    shapes = sorted(set(shapes))
    for rows in ROW_CANDIDATES[:-1]:
        ok = True
        for shape in shapes:
            key = (shape, rows)
            with _LOCK:
                passed = _PROBED.get(key)
                if passed is None:
                    with torch.inference_mode(False), torch.no_grad():
                        passed = _PROBED[key] = _passes(shape, rows)
            if not passed:
                ok = False
                break
        if ok:
            return rows
    return ROW_CANDIDATES[-1]
