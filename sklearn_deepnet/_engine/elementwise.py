"""Element-wise activations on every thread, with the same bits whatever the batch.

ATen runs an element-wise operation over a contiguous tensor as one flat loop:
blocks of ``2 * SIMD width`` elements through the vectorized kernel, then the
remainder through a scalar one. For most transcendental activations (ELU,
SELU, sigmoid, GELU, ...) the two kernels round differently, so an element's
bits depend on whether it lands in a block or in a remainder. On several
threads the loop is cut into one piece per thread (``parallel_for`` over
the flat index), each with its own remainder, at places that move with the
number of rows: a row's outputs would depend on the batch it came in.

So inference (:mod:`.inference`) pads the rows of a request until every such
loop is cut only at multiples of :data:`BLOCK` elements, with a length that
is a multiple of it too (:func:`aligned_rows`): every element then goes
through the vectorized kernel, on any number of threads. Where ATen cuts the
loop is read from its two ``parallel_for`` back ends (OpenMP: ``ceil(n / t)``
elements per thread, ``t = min(threads, ceil(n / GRAIN))``; the native pool:
``max(GRAIN, ceil(n / threads))``), so it is not trusted either:
:func:`splits_aligned` probes each activation, width and thread count once per
process against a one-thread run, with inputs chosen where the two kernels
disagree, and an activation that fails is run on one thread (as all of them
were before; the matrix products keep their threads).
"""

from __future__ import annotations

import math
import threading

import torch

__all__ = ["BLOCK", "GRAIN", "aligned_rows", "splits_aligned"]

# Every piece of a loop starts and ends at a multiple of this many elements: a
# multiple of twice the widest SIMD vector ATen uses for float32 (AVX-512: 16).
BLOCK = 64
# ATen's grain size: loops of fewer elements run on the calling thread.
GRAIN = 32768

_PROBED: dict = {}
_LOCK = threading.Lock()


def _unit(n_elements, threads):
    """The multiple of elements a loop of about ``n_elements`` needs on ``threads``."""
    if threads <= 1 or n_elements < GRAIN:
        return BLOCK
    # OpenMP splits among min(threads, ceil(n / GRAIN)) threads, the native
    # pool among ``threads`` (pieces of at least GRAIN, itself a multiple).
    used = min(threads, -(-n_elements // GRAIN))
    return BLOCK * math.lcm(threads, used)


def aligned_rows(n, per_row, threads):
    """The fewest rows ``>= n`` whose loops are cut only at multiples of :data:`BLOCK`.

    Parameters
    ----------
    n : int
        Rows of the request (already padded to the plan's minimum).
    per_row : sequence of int
        Elements per request row of each element-wise loop (a layer's padded
        width, times the ensemble's members where rows are per member).
    threads : int
        torch's thread count for the call.

    Returns
    -------
    int
    """
    rows = n
    while True:
        wanted = rows
        for e in per_row:
            unit = _unit(rows * e, threads)
            step = unit // math.gcd(unit, e)
            wanted = max(wanted, -(-rows // step) * step)
        if wanted == rows:
            return rows
        rows = wanted  # (more rows may change how many threads a loop uses: again)


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
        inputs = _disagreeing_inputs(fn, width, torch.Generator().manual_seed(width))
        if inputs is None:  # one kernel's bits wherever the loop is cut
            return True
        # Requests that make each thread count up to ``threads`` split the loop.
        sizes = {aligned_rows(-(-GRAIN * k // per_row) + 1, [per_row], threads)
                 for k in range(1, threads + 1)}
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
