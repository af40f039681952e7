"""Training steps: one epoch of optimizer updates over mini-batches (pure torch).

Three implementations of the same update, chosen per fit by :func:`select_step`,
behind one interface: ``run_epoch(batches, events)`` trains one pass and
returns the summed loss as a device tensor, ``release()`` leaves the optimizer
as ``torch.optim`` expects it, ``fallback_reason`` says why a fast path gave
up during the fit (``None`` if it did not), ``epoch_records`` maps the extra
history entries of the pass just run to their values (empty for most).

- :class:`EagerStep`: autograd forward/backward; handles every configuration
  and is the reference the others are tested against.
- :class:`~.fast_step.ManualStep` (CPU, its own module): the forward pass
  keeps its intermediate results and the backward pass is written out with the
  ATen kernels autograd would call. On small layers the CPU cost of a step is
  per-operation overhead, and skipping autograd's graph bookkeeping is most of
  it.
- :class:`~.graph_step.GraphStep` (CUDA, its own module): the whole eager
  step, including the gather of the batch from device-resident data, the
  weight penalty, gradient clipping, the optimizer and max-norm, captured once
  in a CUDA graph and replayed. Batches of another size (the last one) run
  eagerly with the same optimizer.
- :class:`~.lbfgs.LbfgsStep` (``solver="lbfgs"``, its own module): full-batch
  L-BFGS as in scikit-learn (SciPy's L-BFGS-B), by composition.

Every step reads the learning rate and the other optimizer settings from the
optimizer's ``param_groups`` at every update, so a callback or schedule that
changes them mid-fit takes effect on every path. Nothing here reads a value
back to the host, except where a user's per-batch callback asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch.nn.utils import parametrize

from .kernels import (
    foreach_clamp_,
    foreach_norm,
    global_module_hooks,
    module_hooks,
    optimizer_step,
    optimizer_zero_grad,
    tensor_hooks,
)
from .optim import scikit_learn_velocity_

__all__ = [
    "EagerStep", "Regularization", "apply_max_norm", "clip_gradients", "select_step",
    "untouched_blockers", "weight_penalty",
]


_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


@dataclass(frozen=True)
class Regularization:
    """Everything a step applies besides the loss and the optimizer.

    Parameters
    ----------
    alpha : float, default=0.0
        Strength of the weight penalty (see :func:`weight_penalty`); it is
        divided by the batch's total sample weight, as in scikit-learn's MLP.
    l1_ratio : float, default=0.0
        Share of L1 in the penalty.
    clip_norm, clip_value : float or None, default=None
        Gradient clipping (see :func:`clip_gradients`).
    max_norm : float or None, default=None
        Max-norm constraint on hidden units, applied after the update.
    """

    alpha: float = 0.0
    l1_ratio: float = 0.0
    clip_norm: float | None = None
    clip_value: float | None = None
    max_norm: float | None = None


@torch.no_grad()
def apply_max_norm(linears, max_norm):
    """Rescale each row (a unit's incoming weights) of each layer to norm <= max_norm."""
    for linear in linears:
        w = linear.weight
        norms = w.norm(dim=1, keepdim=True)
        w.mul_(torch.clamp(max_norm / norms.clamp_min(1e-12), max=1.0))


def clip_gradients(params, clip_norm=None, clip_value=None):
    """Clip gradients in place: by value first, then by global L2 norm.

    Sync-free (no value is read back to the host), so it can be captured in a
    CUDA graph.
    """
    if clip_value is not None:
        foreach_clamp_([p.grad for p in params if p.grad is not None], -clip_value, clip_value)
    if clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, clip_norm, foreach=True)


def weight_penalty(weights, alpha, l1_ratio):
    """Elastic-net penalty ``alpha * (l1_ratio*sum|W| + 0.5*(1-l1_ratio)*sum W**2)``.

    With ``l1_ratio=0`` this is ``MLPClassifier``'s L2 term.
    """
    total = 0.0
    if l1_ratio < 1:
        total = total + 0.5 * (1 - l1_ratio) * torch.stack(foreach_norm(weights)).pow(2).sum()
    if l1_ratio > 0:
        total = total + l1_ratio * torch.stack(foreach_norm(weights, 1)).sum()
    return alpha * total


class EagerStep:
    """Autograd training step (every configuration, every device).

    Parameters
    ----------
    module : MLP
        The network, in training mode.
    per_sample_loss : callable
        ``per_sample_loss(outputs, y)`` returns one loss per sample.
    optimizer : torch.optim.Optimizer
    regularization : Regularization, default=Regularization()
        Penalty, clipping and max-norm.

    Attributes
    ----------
    fallback_reason : str or None
        Why this step gave up a fast path during the fit (always ``None`` here).
    epoch_records : Mapping
        Extra history entries of the last epoch (none here).
    """

    fallback_reason = None
    epoch_records = MappingProxyType({})

    def __init__(self, module, per_sample_loss, optimizer, regularization=None):
        self.module = module
        self.per_sample_loss = per_sample_loss
        self.optimizer = optimizer
        self.reg = regularization or Regularization()
        self.params = [p for p in module.parameters() if p.requires_grad]
        # A parametrized layer (e.g. weight_norm) computes its weight at every
        # access: it is read anew at every step, never kept.
        self.parametrized = any(parametrize.is_parametrized(lin, "weight")
                                for lin in module.linears())
        self.weights = [lin.weight for lin in module.linears()]
        # Max-norm constrains the layers that train (not frozen ones).
        self.max_norm_linears = [lin for lin in module.hidden_linears()
                                 if lin.weight.requires_grad]
        if self.reg.max_norm is not None and any(
                parametrize.is_parametrized(lin, "weight") for lin in self.max_norm_linears):
            raise ValueError(
                "max_norm rescales each layer's weight in place, but a hidden layer's "
                "weight is parametrized (e.g. by weight_norm) and computed from other "
                "tensors: remove the parametrization or set max_norm=None."
            )
        self.set_to_none = True
        self.events = None

    def loss(self, xb, yb, wb):
        """Penalized, sample-weighted mean loss of a batch (with autograd)."""
        out = self.module(xb)
        total = torch.dot(self.per_sample_loss(out, yb), wb)
        if self.reg.alpha > 0:
            weights = ([lin.weight for lin in self.module.linears()] if self.parametrized
                       else self.weights)
            total = total + weight_penalty(weights, self.reg.alpha, self.reg.l1_ratio)
        return total / wb.sum()

    def update(self):
        """Callbacks on the gradients, clip, step, project: everything after backward."""
        if self.events is not None and self.events.wants_gradients:
            self.events.gradients_computed()
        reg = self.reg
        if reg.clip_norm is not None or reg.clip_value is not None:
            clip_gradients(self.params, reg.clip_norm, reg.clip_value)
        self.optimizer_step()
        if reg.max_norm is not None:
            apply_max_norm(self.max_norm_linears, reg.max_norm)

    def optimizer_step(self):
        """Apply the optimizer to the gradients in ``p.grad``."""
        scikit_learn_velocity_(self.optimizer)
        optimizer_step(self.optimizer)

    def train_batch(self, xb, yb, wb):
        """Train on one batch; return its loss (0-d tensor, detached)."""
        optimizer_zero_grad(self.optimizer, set_to_none=self.set_to_none)
        loss = self.loss(xb, yb, wb)
        loss.backward()
        self.update()
        return loss.detach()

    def run_epoch(self, batches, events=None):
        """Train on every batch of ``batches`` once.

        Parameters
        ----------
        batches : Batches
            The epoch's data and batch boundaries.
        events : object or None
            Receives ``batch_begin(xb, yb)``, ``batch_end(xb, yb, loss)`` and
            (when its ``wants_gradients`` is true) ``gradients_computed()``.

        Returns
        -------
        torch.Tensor
            Sum over batches of ``batch loss * batch size`` (0-d, on the device).
        """
        data, order = batches.data, batches.order()
        total = torch.zeros((), device=data.device)
        self.events = events
        try:
            for start, stop in batches.spans():
                xb, yb, wb = data.batch(order, start, stop)
                if events is not None:
                    events.batch_begin(xb, yb)
                loss = self.train_batch(xb, yb, wb)
                total += loss * (stop - start)
                if events is not None:
                    events.batch_end(xb, yb, loss)
        finally:
            self.events = None
        return total

    def release(self):
        """Leave the optimizer as ``torch.optim`` expects it (nothing to do here)."""


def untouched_blockers(module, parametrized=False):
    """What is attached to ``module`` that a fast step would skip (``None``: nothing).

    Autograd runs hooks, parametrizations and an instance's own ``forward``;
    the hand-written CPU step never calls the modules, and a CUDA graph
    replays what one captured call did. So a fast step runs only on a
    module with none of: global module hooks (``register_module_forward_hook``
    and the like), hooks on any submodule (forward, backward, pre), hooks on
    a parameter (``register_hook``, post-accumulate-grad hooks), a ``forward``
    set on an instance, and — with ``parametrized`` — parametrized
    submodules (``weight_norm`` through ``torch.nn.utils.parametrize``).
    """
    kinds = global_module_hooks()
    if kinds:
        return "global module hooks (" + ", ".join(kinds) + ")"
    for name, sub in module.named_modules():
        where = name or "the network"
        kinds = module_hooks(sub)
        if kinds:
            return f"hooks on {where} ({', '.join(kinds)})"
        if "forward" in vars(sub):
            return f"a forward method set on {where}"
        if parametrized and parametrize.is_parametrized(sub):
            return f"a parametrization of {where}"
    for name, p in module.named_parameters():
        if tensor_hooks(p):
            return f"hooks on the parameter {name}"
    return None


def select_step(module, per_sample_loss, device, solver_row, fast=True, needs_gradients=False,
                sparse=False):
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

    Returns
    -------
    name : {"cpu-manual", "cuda-graph", "eager"}
    reason : str or None
        Why the device's fast path is not used (``None`` when it is).
    """
    from .fast_step import manual_blockers  # it builds on EagerStep

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
        if sparse:
            return "eager", "sparse input is densified batch by batch on the host"
        return "cuda-graph", None
    return "eager", f"no fast path for device type {device.type!r}"
