"""Multi-tensor operations: torch's private ``_foreach_*`` kernels, or a loop.

Part of :mod:`.kernels` (see there). Each function does to a list of
tensors what a loop of public operations over them does, in one kernel
launch when this torch has the private multi-tensor kernel: gradient
clipping and the penalty's norms (:mod:`.steps`), BatchNorm's batch
counters (:mod:`.fast_step`), inference's padded weight copies
(:mod:`.eval_plan`), momentum buffers rescaled when the learning rate
changes (:mod:`.optim`). They compute what the loop computes, so they are
not checked as the kernels of :mod:`.kernels_backward` are;
``tests/test_torch_compat.py`` compares each with its fallback. An empty
list is the loop's no-op (torch's kernels refuse one).
"""

from __future__ import annotations

import torch

from .kernels_checked import _private

__all__ = ["foreach_add_", "foreach_clamp_", "foreach_copy_", "foreach_mul_", "foreach_norm"]


_foreach_norm = _private(torch, "_foreach_norm")
_foreach_clamp_min_ = _private(torch, "_foreach_clamp_min_")
_foreach_clamp_max_ = _private(torch, "_foreach_clamp_max_")
_foreach_add_ = _private(torch, "_foreach_add_")
_foreach_mul_ = _private(torch, "_foreach_mul_")
_foreach_copy_ = _private(torch, "_foreach_copy_")


def foreach_norm(tensors, ord=2):
    """The ``ord``-norm of each tensor (a list of 0-d tensors), no host sync."""
    if _foreach_norm is not None and len(tensors):
        return list(_foreach_norm(tensors, ord))
    return [torch.linalg.vector_norm(t, ord) for t in tensors]


def foreach_add_(tensors, value):
    """Add ``value`` to every tensor in place (one kernel launch when torch allows)."""
    if _foreach_add_ is not None and len(tensors):
        _foreach_add_(tensors, value)
        return
    for t in tensors:
        t.add_(value)


def foreach_copy_(destinations, sources):
    """Copy each source into its destination (one kernel launch when torch allows)."""
    if _foreach_copy_ is not None and len(destinations):
        _foreach_copy_(destinations, sources)
        return
    for d, s in zip(destinations, sources, strict=True):
        d.copy_(s)


def foreach_mul_(tensors, value):
    """Multiply every tensor by ``value`` in place (one kernel launch when torch allows)."""
    if _foreach_mul_ is not None and len(tensors):
        _foreach_mul_(tensors, value)
        return
    for t in tensors:
        t.mul_(value)


def foreach_clamp_(tensors, low, high):
    """Clamp every tensor to ``[low, high]`` in place."""
    if _foreach_clamp_min_ is not None and _foreach_clamp_max_ is not None and len(tensors):
        _foreach_clamp_min_(tensors, low)
        _foreach_clamp_max_(tensors, high)
        return
    for t in tensors:
        t.clamp_(low, high)
