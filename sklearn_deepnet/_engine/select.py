"""Which training step a fit uses: :func:`select_step`.

Apart from :mod:`.steps` (the step interface and the eager reference) so that
neither it nor :mod:`.fast_step` imports the other's importer: the engine
has no import cycles (``tests/test_engine_layout.py``).
"""

from __future__ import annotations

import torch

from .fast_step import manual_blockers
from .steps import untouched_blockers

__all__ = ["select_step"]


def select_step(module, per_sample_loss, device, solver_row, fast=True, needs_gradients=False,
                sparse=False, needs_outputs=False):
    """Pick the training step for a fit.

    Parameters
    ----------
    module : MLP
    per_sample_loss : callable
    device : torch.device
    solver_row : Solver
        Row of the optimizer table (whether its step is graph-safe).
    fast : bool, default=True
        ``False`` forces :class:`EagerStep`.
    needs_gradients : bool, default=False
        A callback inspects the gradients between backward and the optimizer
        step (``on_grad_computed``): a CUDA graph cannot call back into Python.
    sparse : bool, default=False
        The data are a sparse matrix, densified batch by batch on the host: a
        CUDA graph needs them resident on the device.
    needs_outputs : bool, default=False
        A callback reads every batch's outputs (``y_pred``): a CUDA graph
        keeps them in one buffer it overwrites at every replay.

    Returns
    -------
    name : {"cpu-manual", "cuda-graph", "eager"}
    reason : str or None
        Why the device's fast path is not used (``None`` when it is).
    """
    device = torch.device(device)
    if not fast:
        return "eager", "fast path disabled"
    if device.type == "cpu":
        reason = manual_blockers(module, per_sample_loss, device)
        if reason is not None:
            reason = f"not supported by the hand-written CPU step: {reason}"
        return ("cpu-manual", None) if reason is None else ("eager", reason)
    if device.type == "cuda":
        blocker = untouched_blockers(module)
        if blocker is not None:
            return "eager", f"not capturable in a CUDA graph: {blocker}"
        if not solver_row.graph_safe:
            return "eager", "the optimizer keeps host-side state (not capturable)"
        if solver_row.rate_in_velocity:
            return "eager", ("scikit-learn's SGD rescales its velocity on the host when the "
                             "rate changes (not capturable)")
        if needs_gradients:
            return "eager", "a callback implements on_grad_computed (not capturable)"
        if needs_outputs:
            return "eager", "a callback reads every batch's outputs, y_pred (not captured)"
        if sparse:
            return "eager", "sparse input is densified batch by batch on the host"
        return "cuda-graph", None
    return "eager", f"no fast path for device type {device.type!r}"
