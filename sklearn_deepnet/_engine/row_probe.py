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


def _passes(n_in, n_out, rows):
    """Whether products of ``rows`` rows and more round like a large one, for
    an ``(n_out, n_in)`` weight read transposed (as :class:`.inference._Linear`)."""
    gen = torch.Generator().manual_seed(n_in * 7919 + n_out)
    x = torch.randn(_LARGE + 1, n_in, generator=gen)
    w = torch.randn(n_out, n_in, generator=gen).t()
    b = torch.randn(n_out, generator=gen)
    reference, before = None, torch.get_num_threads()
    try:
        for threads in _thread_counts():
            # (this thread's count, exactly: torch_threads would give a worker
            # thread its share, and the answer is kept for every thread)
            torch.set_num_threads(threads)
            large = torch.addmm(b, x[:_LARGE], w)
            if reference is None:
                reference = large
            elif not torch.equal(large, reference):  # (not the rows: give up)
                return False
            for m in (rows, rows + 1, 2 * rows - 1, 3 * rows + 5, 200):
                if not torch.equal(torch.addmm(b, x[:m].clone(), w), reference[:m]):
                    return False
            # Rows starting at an unaligned address (a slice of the caller's array).
            if not torch.equal(torch.addmm(b, x[1 : rows + 1], w), large[1 : rows + 1]):
                return False
    finally:
        torch.set_num_threads(before)
    return True


def min_rows(shapes):
    """The fewest rows every product of ``shapes`` may have here (see the module docstring).

    Parameters
    ----------
    shapes : iterable of (int, int)
        ``(n_in, n_out)`` of each weight matrix, as padded for inference.

    Returns
    -------
    int
        One of :data:`ROW_CANDIDATES`.
    """
    shapes = sorted(set(shapes))
    for rows in ROW_CANDIDATES[:-1]:
        ok = True
        for shape in shapes:
            key = (*shape, rows)
            with _LOCK:
                passed = _PROBED.get(key)
                if passed is None:
                    with torch.inference_mode(False), torch.no_grad():
                        passed = _PROBED[key] = _passes(*shape, rows)
            if not passed:
                ok = False
                break
        if ok:
            return rows
    return ROW_CANDIDATES[-1]
