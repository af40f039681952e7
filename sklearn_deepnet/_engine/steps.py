"""Training steps: one epoch of optimizer updates over mini-batches (pure torch).

Implementations of the same update, chosen per fit by :func:`~.select.select_step`,
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
from typing import Protocol

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
    "EagerStep", "Regularization", "Step", "Update", "apply_max_norm", "clip_gradients",
    "run_batches", "untouched_blockers", "weight_penalty",
]


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


class Step(Protocol):
    """What the trainer asks of a training step (every step implements it).

    :class:`EagerStep`, :class:`~.fast_step.ManualStep`,
    :class:`~.graph_step.GraphStep` and :class:`~.lbfgs.LbfgsStep` implement
    it by composition: the shared parts are :class:`Update` (everything after
    the gradients) and :func:`run_batches` (the mini-batch loop with its
    events), not a base class.
    """

    #: why the step gave up its fast path during the fit (``None``: it did not)
    fallback_reason: str | None
    #: extra entries for the epoch's history record (L-BFGS's counts)
    epoch_records: MappingProxyType

    def run_epoch(self, batches, events=None) -> torch.Tensor:
        """Train one pass over ``batches``; the summed ``batch loss * rows`` (0-d)."""

    def release(self) -> None:
        """Leave the optimizer as ``torch.optim`` expects it."""


class Update:
    """Everything after backward: callbacks on the gradients, clipping, the
    optimizer, max-norm (shared by the mini-batch steps).

    Parameters
    ----------
    module : MLP
    optimizer : torch.optim.Optimizer
    regularization : Regularization
    optimizer_step : callable or None, default=None
        Applies the optimizer to the gradients; ``None``: scikit-learn's
        velocity rescaling (``solver="sgd"``) then ``optimizer.step()``.

    Attributes
    ----------
    params : list of torch.nn.Parameter
        The parameters that train (clipping applies to them).
    weights : list of torch.Tensor
        Every layer's weight, for the penalty (read anew at every step when
        ``parametrized``: a parametrized weight is computed at every access).
    """

    def __init__(self, module, optimizer, regularization, optimizer_step=None):
        self.module, self.optimizer, self.reg = module, optimizer, regularization
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.parametrized = any(parametrize.is_parametrized(lin, "weight")
                                for lin in module.linears())
        self.weights = [lin.weight for lin in module.linears()]
        # Max-norm constrains the layers that train (not frozen ones).
        self.max_norm_linears = [lin for lin in module.hidden_linears()
                                 if lin.weight.requires_grad]
        if regularization.max_norm is not None and any(
                parametrize.is_parametrized(lin, "weight") for lin in self.max_norm_linears):
            raise ValueError(
                "max_norm rescales each layer's weight in place, but a hidden layer's "
                "weight is parametrized (e.g. by weight_norm) and computed from other "
                "tensors: remove the parametrization or set max_norm=None."
            )
        self.optimizer_step = optimizer_step or self._optimizer_step

    def penalty_weights(self):
        """The weights the penalty is computed on, as they are now."""
        if self.parametrized:
            return [lin.weight for lin in self.module.linears()]
        return self.weights

    def _optimizer_step(self):
        scikit_learn_velocity_(self.optimizer)
        optimizer_step(self.optimizer)

    def __call__(self, events=None):
        """Apply the update to the gradients in ``p.grad``."""
        if events is not None and events.wants_gradients:
            events.gradients_computed()
        reg = self.reg
        if reg.clip_norm is not None or reg.clip_value is not None:
            clip_gradients(self.params, reg.clip_norm, reg.clip_value)
        self.optimizer_step()
        if reg.max_norm is not None:
            apply_max_norm(self.max_norm_linears, reg.max_norm)


def run_batches(step, batches, events=None):
    """Train ``step`` on every batch of ``batches`` once, firing ``events``.

    Parameters
    ----------
    step : object
        With ``train_batch(xb, yb, wb)`` (the batch's loss, 0-d), and
        ``events`` / ``outputs`` attributes: ``events`` is set for the
        epoch; ``outputs`` holds the batch's raw outputs when the events
        want them (``wants_outputs``).
    batches : Batches
        The epoch's data and batch boundaries.
    events : object or None
        Receives ``batch_begin(xb, yb)``, ``batch_end(xb, yb, loss, outputs)``
        and (when its ``wants_gradients`` is true) ``gradients_computed()``.

    Returns
    -------
    torch.Tensor
        Sum over batches of ``batch loss * batch size`` (0-d, on the device).
    """
    data, order = batches.data, batches.order()
    total = torch.zeros((), device=data.device)
    step.events = events
    try:
        for start, stop in batches.spans():
            xb, yb, wb = data.batch(order, start, stop)
            if events is not None:
                events.batch_begin(xb, yb)
            loss = step.train_batch(xb, yb, wb)
            total += loss * (stop - start)
            if events is not None:
                events.batch_end(xb, yb, loss, step.outputs)
                step.outputs = None
    finally:
        step.events = None
        step.outputs = None
    return total


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
        self.updater = Update(module, optimizer, self.reg)
        self.set_to_none = True
        self.events = None
        self.outputs = None  # the last batch's outputs, kept when events want them

    def loss(self, xb, yb, wb):
        """Penalized, sample-weighted mean loss of a batch (with autograd).

        Keeps the batch's outputs (detached) in ``outputs`` while the epoch's
        ``events`` want them (``wants_outputs``).
        """
        out = self.module(xb)
        if self.events is not None and self.events.wants_outputs:
            self.outputs = out.detach()
        total = torch.dot(self.per_sample_loss(out, yb), wb)
        if self.reg.alpha > 0:
            total = total + weight_penalty(self.updater.penalty_weights(), self.reg.alpha,
                                           self.reg.l1_ratio)
        return total / wb.sum()

    def update(self):
        """Callbacks on the gradients, clip, step, project: everything after backward."""
        self.updater(self.events)

    def train_batch(self, xb, yb, wb):
        """Train on one batch; return its loss (0-d tensor, detached)."""
        optimizer_zero_grad(self.optimizer, set_to_none=self.set_to_none)
        loss = self.loss(xb, yb, wb)
        loss.backward()
        self.update()
        return loss.detach()

    def run_epoch(self, batches, events=None):
        """Train on every batch of ``batches`` once (see :func:`run_batches`)."""
        return run_batches(self, batches, events)

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
