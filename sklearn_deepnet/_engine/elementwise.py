"""Element-wise activations on every thread, with the same bits whatever the batch.

ATen runs an element-wise operation over a contiguous tensor as one flat loop:
blocks of ``2 * SIMD width`` elements through the vectorized kernel, then the
remainder through a scalar one. For most transcendental activations (ELU,
SELU, sigmoid, GELU, ...) the two kernels round differently, so an element's
bits depend on whether it lands in a block or in a remainder. On several
threads the loop is cut into one piece per thread (``parallel_for`` over
the flat index), each with its own remainder, at places that move with the
number of rows: a row's outputs would depend on the batch it came in.

So inference (:func:`.eval_plan.padded_rows`) pads the rows of a request until every such
loop is a whole number of :data:`BLOCK`-element blocks and, where it runs on
several threads, is cut only between blocks (:func:`aligned_rows`): every
element then goes through the vectorized kernel. A loop of ``n`` elements on
``t`` threads is cut into pieces of ``ceil(n / t)`` by both of ATen's
``parallel_for`` back ends (OpenMP and the native pool) when ``n >= t *
GRAIN``; a loop below that runs on one thread (their splits differ there,
some kernels split below ``GRAIN`` with grains of their own, and each piece
would be small). The split is not trusted either:
:func:`splits_aligned` probes each activation, width and thread count once per
process against a one-thread run, with inputs chosen where the two kernels
disagree, and an activation that fails is run on one thread (as all of them
were before; the matrix products keep their threads). What the probe cannot
see: an OpenMP runtime allowed to give a loop fewer threads than asked
(``OMP_DYNAMIC=true``) cuts it elsewhere at run time.
"""

from __future__ import annotations

import math
import threading

import torch

__all__ = ["BLOCK", "GRAIN", "aligned_rows", "parallel", "splits_aligned"]

# Every loop, and every piece of a loop, is a whole number of blocks of this
# many elements: a multiple of twice the widest SIMD vector ATen uses for
# float32 (AVX-512: 16).
BLOCK = 64
# ATen's grain size: loops of fewer elements run on the calling thread.
GRAIN = 32768

_PROBED: dict = {}
_LOCK = threading.Lock()


def parallel(n_elements, threads):
    """Whether a loop of ``n_elements`` runs on ``threads`` threads (else on one)."""
    return threads > 1 and n_elements >= threads * GRAIN


def aligned_rows(n, per_row, threads):
    """The fewest rows ``>= n`` whose loops are whole blocks, cut between blocks.

    Parameters
    ----------
    n : int
        Rows of the request (already padded to the plan's minimum).
    per_row : sequence of int
        Elements per request row of each element-wise loop (a layer's padded
        width, a multiple of 16, times the ensemble's members where rows are
        per member).
    threads : int
        torch's thread count for the call.

    Returns
    -------
    int
        Less than ``n + 4 * threads`` when every ``per_row`` is a multiple of 16.
    """
    rows = n
    while True:
        wanted = rows
        for e in per_row:
            unit = BLOCK * threads if parallel(rows * e, threads) else BLOCK
            step = unit // math.gcd(unit, e)
            wanted = max(wanted, -(-rows // step) * step)
        if wanted == rows:
            return rows
        rows = wanted  # (a loop may have crossed into running on every thread: again)


def _disagreeing_inputs(fn, width, gen):
    """Inputs of shape ``(256, width)``, each column's values chosen where ``fn``'s
    vectorized and scalar kernels round differently (``None`` where they never do)."""
    x = torch.randn(1024, width, generator=gen) * 3
    vectorized = fn(x)  # (a multiple of BLOCK elements, one thread: all vectorized)
    # A strided view takes ATen's scalar kernel for every element.
    strided = torch.empty(1024, width, 2)[..., 0]
    strided.copy_(x)
    disagree = vectorized != fn(strided)
    if not disagree.any():
        return None
    # Each column cycles through its disagreeing values (random ones where none).
    order = torch.sort(disagree.to(torch.uint8), dim=0, descending=True, stable=True).indices
    counts = disagree.sum(0).clamp(min=1)
    rows = order.gather(0, torch.arange(256)[:, None] % counts)
    return torch.where(disagree.any(0), x.gather(0, rows), x[:256])


def splits_aligned(fn, key, width, per_row, threads):
    """Whether ``fn`` on rows padded by :func:`aligned_rows` gives one thread's bits
    on ``threads`` threads (probed once per process per ``key``, width, ``per_row``
    and thread count).

    Parameters
    ----------
    fn : callable
        The element-wise operation, on tensors of shape ``(rows, width)``.
    key : hashable
        What decides ``fn``'s kernels (the activation's type).
    width : int
        Columns of ``fn``'s input.
    per_row : int
        Elements of ``fn``'s input per request row (``width`` times the rows per
        request row).
    threads : int

    Returns
    -------
    bool
    """
    probe_key = (key, width, per_row, threads)
    found = _PROBED.get(probe_key)
    if found is not None:
        return found
    with _LOCK, torch.inference_mode():
        found = _PROBED.get(probe_key)
        if found is None:
            found = _probe(fn, width, per_row, threads)
            _PROBED[probe_key] = found
    return found


def _probe(fn, width, per_row, threads):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        gen = torch.Generator().manual_seed(width)
        inputs = _disagreeing_inputs(fn, width, gen)
        if inputs is None:  # (the kernels agree here: the cut is checked on any values)
            inputs = torch.randn(256, width, generator=gen) * 3
        # Requests whose loops run on every thread: pieces of one block and more.
        smallest = aligned_rows(-(-threads * GRAIN // per_row), [per_row], threads)
        sizes = {smallest, aligned_rows(smallest + 1, [per_row], threads),
                 aligned_rows(3 * smallest + 1, [per_row], threads)}
        for n in sorted(sizes):
            x = inputs.repeat(-(-n * per_row // width // 256), 1)[: n * per_row // width]
            torch.set_num_threads(1)
            reference = fn(x)
            torch.set_num_threads(threads)
            if not torch.equal(fn(x), reference):
                return False
        return True
    finally:
        torch.set_num_threads(before)
