"""Which row counts a prediction's matrix products may have and keep their rounding, probed here.

Inference (:mod:`.eval_plan`) promises batch invariance: a row's outputs do
not depend on the rows it is predicted with. BLAS rounds a product of very
few rows differently from a larger one, so every product is padded with
zero rows to a count that rounds like a large product. Measured with MKL on
this project's AVX-512 machines: 1 to 3 rows differ on any thread count;
on 2 threads 5 to 7 and 9 to 11 rows differ too (the rows are split between
the threads), while 4, 8, 12 and every count from 12 give a 1,000-row
product's bits. Padding is what a small prediction pays for (the three
products of a one-row 2x100 prediction: 10 us at 4 rows, 16 at 16, about
twice that at 64), and which counts round like a large product is a property
of the BLAS build, the CPU, the product's shape and the thread count, so it
is not assumed: each :class:`RowRule` of :data:`ROW_CANDIDATES` is tried, the
one with the fewest rows first, on the plan's own product shapes, on this
machine, at the thread count a prediction runs on (the first time a plan
runs on it), and :func:`min_rows` takes the first whose products give the
bits of the same rows inside a large product computed on one thread, with
the rows starting at an unaligned address too. When no candidate passes,
the last is used (64 rows: the value used before the probe existed).

A probe is a property of the process (BLAS build, CPU): its answer is kept
per product shape, rule and thread count, so each is probed once per process.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import torch

__all__ = ["ROW_CANDIDATES", "RowRule", "min_rows"]



class RowRule(NamedTuple):
    """The row counts a plan's matrix products may have: each of ``small``
    (ascending, all below ``floor``) and every count from ``floor``."""

    small: tuple
    floor: int

    def rows(self, n):
        """The fewest rows ``>= n`` a product may have."""
        if n >= self.floor:
            return n
        for rows in self.small:
            if n <= rows:
                return rows
        return self.floor

    @property
    def least(self):
        """The fewest rows of any product."""
        return self.small[0] if self.small else self.floor


# Candidates, the one with the fewest rows first; the last is the fallback
# when none passes (it is never probed).
ROW_CANDIDATES = (RowRule((4, 8, 12), 16), RowRule((), 16), RowRule((), 64))
# Row counts of the large product and of the sub-products compared with it
# (every small count of a rule, then, relative to its floor f: f, f + 1,
# 2f - 1, 3f + 5, and 200).
_LARGE = 1024
_PROBED: dict = {}
_LOCK = threading.Lock()


def _product(shape, gen):
    """``(x, f)``: random rows ``x`` and ``f(rows of x)`` -> the product's rows, for
    a weight of ``shape``: ``(n_in, n_out)`` read transposed (as
    :class:`.eval_plan._Linear`), or ``(F, n_in, size)``: ``F`` products batched
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


def _passes(shape, rule, threads):
    """Whether products of the row counts ``rule`` allows, on ``threads`` threads,
    round like a large product on one thread (see :func:`_product` for ``shape``)."""
    gen = torch.Generator().manual_seed(sum(d * 7919**i for i, d in enumerate(shape)) % 2**62)
    x, product = _product(shape, gen)
    before = torch.get_num_threads()
    try:
        # (this thread's count, exactly: torch_threads would give a worker
        # thread its share, and the answer is kept for every thread)
        torch.set_num_threads(1)
        reference = product(x[:_LARGE])
        if threads != 1:
            torch.set_num_threads(threads)
            if not torch.equal(product(x[:_LARGE]), reference):  # (not the rows: give up)
                return False
        f = rule.floor
        for m in (*rule.small, f, f + 1, 2 * f - 1, 3 * f + 5, 200):
            if not torch.equal(product(x[:m].clone()), reference[:m]):
                return False
        # Rows starting at an unaligned address (a slice of the caller's array).
        for m in (*rule.small, f):
            if not torch.equal(product(x[1 : m + 1]), reference[1 : m + 1]):
                return False
    finally:
        torch.set_num_threads(before)
    return True


def min_rows(shapes, threads=None):
    """The row counts every product of ``shapes`` may have here, on ``threads``
    threads (see the module docstring).

    Parameters
    ----------
    shapes : iterable of tuple of int
        ``(n_in, n_out)`` of each weight matrix, as padded for inference, and
        ``(F, n_in, size)`` of each batch of ``F`` products (a numeric
        embedding's).
    threads : int or None, default=None
        The thread count the products run on; ``None``: torch's current count.

    Returns
    -------
    RowRule
        One of :data:`ROW_CANDIDATES`.
    """
    threads = threads or torch.get_num_threads()
    shapes = sorted(set(shapes))
    for rule in ROW_CANDIDATES[:-1]:
        ok = True
        for shape in shapes:
            key = (shape, rule, threads)
            with _LOCK:
                passed = _PROBED.get(key)
                if passed is None:
                    with torch.inference_mode(False), torch.no_grad():
                        passed = _PROBED[key] = _passes(shape, rule, threads)
            if not passed:
                ok = False
                break
        if ok:
            return rule
    return ROW_CANDIDATES[-1]
