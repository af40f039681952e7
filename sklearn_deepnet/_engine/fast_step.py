"""The hand-written CPU training step: forward and backward without autograd.

On small layers the CPU cost of a step is per-operation overhead, and
autograd's graph bookkeeping is most of it. :class:`ManualStep` interprets
the network's layer plan (:mod:`.plan`): one runner per op, built from the
op's module (:data:`~.runners.RUNNERS`, in :mod:`.runners`). The forward
pass keeps what each runner's backward needs; the backward pass walks the
runners in reverse, stopping above frozen layers. Its gradients are
autograd's up to float32 rounding: ``tests/test_steps.py`` compares it with
:class:`~.steps.EagerStep` on configurations generated from the tables,
BatchNorm's running statistics included. It runs only on a module that is
exactly what its plan built (:func:`~.module.plan_blocker`), with nothing
attached that autograd would run (:func:`~.steps.untouched_blockers`).

Also here: the loss's gradient at the network's output
(:data:`OUTPUT_GRADIENTS`), why the step cannot run a configuration
(:func:`manual_blockers`, the private kernels it needs included), what it
read when built (:func:`layout_signature`) and the direct call of torch's
fused Adam kernel (``_DirectFusedAdam``).
"""

from __future__ import annotations

from functools import partial
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import nn

from .activations import activation_row, backward_kernel
from .ensemble import MemberLoss
from .kernels import (
    batch_norm_kernels_usable,
    foreach_add_,
    fused_adam_kernel,
    kernel_fallbacks,
    optimizer_step,
)
from .losses import (
    LabelSmoothed,
    binary_log_loss,
    loss_function,
    multiclass_log_loss,
    smoothed_targets,
    squared_error,
)
from .module import plan_blocker
from .optim import scikit_learn_velocity_
from .runners import PENALIZED, RUNNERS
from .steps import Regularization, Update, run_batches, untouched_blockers, weight_penalty

__all__ = ["ManualStep", "kernels_used", "layout_signature", "manual_blockers"]


_COLUMNS = {}  # (rows, dtype, value) -> a constant column: no allocation per step


def _column(rows, dtype, value):
    """A cached ``(rows, 1)`` column of ``value`` (what the output gradients add at
    each row's class)."""
    key = (rows, dtype, value)
    column = _COLUMNS.get(key)
    if column is None:
        if len(_COLUMNS) > 64:  # a few batch sizes per fit: keep it small
            _COLUMNS.clear()
        column = _COLUMNS[key] = torch.full((rows, 1), value, dtype=dtype)
    return column


def _multiclass_output_grad(z, yb):
    logp = torch.log_softmax(z, dim=1)
    idx = yb[:, None]
    losses = -logp.gather(1, idx).squeeze(1)
    g = logp.exp_()
    g.scatter_add_(1, idx, _column(len(z), z.dtype, -1.0))
    return losses, g


def _binary_output_grad(z, yb):
    losses = F.binary_cross_entropy_with_logits(z, yb, reduction="none").sum(dim=1)
    return losses, torch.sigmoid(z).sub_(yb)


def _smoothed_multiclass_output_grad(z, yb, epsilon):
    # torch's cross_entropy with label_smoothing: (1 - e) * nll + e * mean(-logp)
    logp = torch.log_softmax(z, dim=1)
    idx, k = yb[:, None], z.shape[1]
    losses = (1.0 - epsilon) * -logp.gather(1, idx).squeeze(1) - (epsilon / k) * logp.sum(dim=1)
    g = logp.exp_().sub_(epsilon / k)
    g.scatter_add_(1, idx, _column(len(z), z.dtype, epsilon - 1.0))
    return losses, g


def _smoothed_binary_output_grad(z, yb, epsilon):
    return _binary_output_grad(z, smoothed_targets(yb, epsilon))


def _squared_error_output_grad(z, yb):
    d = z - yb
    return 0.5 * d.pow(2).mean(dim=1), d.div_(z.shape[1])


# per-sample loss -> output_grad(z, y) giving (per-sample losses, d(sum loss)/dz)
OUTPUT_GRADIENTS = {
    multiclass_log_loss: _multiclass_output_grad,
    binary_log_loss: _binary_output_grad,
    squared_error: _squared_error_output_grad,
}


class _MemberOutputGrad:
    """The output gradient of a :class:`~.ensemble.MemberLoss`: the base loss's on
    the ``(n*k, n_outputs)`` view (targets repeated per member), divided by ``k``."""

    __slots__ = ("base", "k", "n_outputs")

    def __init__(self, base, k, n_outputs):
        self.base, self.k, self.n_outputs = base, k, n_outputs

    def __call__(self, z, yb):
        n, k = len(z), self.k
        losses, g = self.base(z.reshape(n * k, self.n_outputs), yb.repeat_interleave(k, dim=0))
        return losses.view(n, k).mean(dim=1), g.div_(k).view(n, k * self.n_outputs)


# label-smoothed loss's base -> its output_grad(z, y, epsilon)
SMOOTHED_OUTPUT_GRADIENTS = {
    multiclass_log_loss: _smoothed_multiclass_output_grad,
    binary_log_loss: _smoothed_binary_output_grad,
}


def _output_grad_of(fn):
    if isinstance(fn, LabelSmoothed):
        grad = SMOOTHED_OUTPUT_GRADIENTS.get(fn.base)
        return None if grad is None else partial(grad, epsilon=fn.epsilon)
    return OUTPUT_GRADIENTS.get(fn)


def output_gradient(per_sample_loss):
    """``output_grad(z, y)`` of ``per_sample_loss`` (see :data:`OUTPUT_GRADIENTS`,
    :data:`SMOOTHED_OUTPUT_GRADIENTS`), or ``None`` when the step has none."""
    fn = loss_function(per_sample_loss)
    if isinstance(fn, MemberLoss):
        base = _output_grad_of(fn.base)
        return None if base is None else _MemberOutputGrad(base, fn.n_members, fn.n_outputs)
    return _output_grad_of(fn)


_LAYOUT_ATTRS = ("p", "inplace", "negative_slope", "alpha", "approximate", "momentum", "eps",
                 "affine", "track_running_stats", "training")


def layout_signature(module):
    """What the hand-written step reads from ``module`` when it is built.

    The submodules (identity, type), their settings (dropout rate, slopes,
    BatchNorm momentum and epsilon, training mode, ...) and the identity and
    storage of every parameter and buffer (``p.data = ...`` gives a weight
    new storage the step's cached views would miss). The trainer compares it
    after every ``on_epoch_begin`` and rebuilds the step when it changed.
    """
    parts = []
    for name, m in module.named_modules():
        parts.append((name, id(m), type(m), tuple(getattr(m, a, None) for a in _LAYOUT_ATTRS)))
        for key, t in (*m._parameters.items(), *m._buffers.items()):
            parts.append((key, id(t), None if t is None else t.data_ptr()))
    return tuple(parts)


def manual_blockers(module, per_sample_loss, device):
    """Why :class:`ManualStep` cannot run this configuration (``None`` if it can).

    It runs only what it was written for (an allow-list): a module that is
    exactly what its plan built (:func:`~.module.plan_blocker`) with nothing
    attached that autograd would run and it would skip (see
    :func:`~.steps.untouched_blockers`), activations whose table row has a
    forward and backward, a loss it has the output gradient of, and
    trainable parameters exactly those outside the frozen layers.
    """
    if torch.device(device).type != "cpu":
        return "the hand-written step is for CPU"
    blocker = untouched_blockers(module, parametrized=True) or plan_blocker(module)
    if blocker:
        return blocker
    for op, m in module.planned_modules():
        if op.kind == "activation" and activation_row(m).backward is None:
            return f"activation {type(m).__name__} (no hand-written forward and backward)"
    if output_gradient(per_sample_loss) is None:
        return "loss"
    for op, m in module.planned_modules():
        if op.kind == "member_mean" and not m.training:
            return "the members' combination is in evaluation mode"
    frozen = {id(p) for m in module.frozen_modules() for p in m.parameters()}
    if any(not p.requires_grad and id(p) not in frozen for p in module.parameters()):
        return "parameters with requires_grad=False outside the frozen layers"
    if any(p.dtype != torch.float32 or not p.is_leaf for p in module.parameters()):
        return "parameters that are not float32 leaf tensors"
    return _kernel_blocker(module)


def _network_kernels(module):
    """``[(activation, checked kernel), ...]`` the network needs (one per kernel),
    and whether it has BatchNorm (the batch-norm kernels)."""
    kernels, batch_norm = {}, False
    for op, m in module.planned_modules():
        if op.kind == "activation":
            row = activation_row(m)
            kernel = None if row is None else backward_kernel(row)
            if kernel is not None:
                kernels.setdefault(kernel.key, (type(m).__name__.lower(), kernel))
        batch_norm = batch_norm or op.kind == "batch_norm"
    return [kernels[k] for k in sorted(kernels)], batch_norm


def kernels_used(module, optimizer):
    """Names (as :func:`~.kernels.kernel_fallbacks` reports them) of the
    private kernels training ``module`` with ``optimizer`` may use."""
    names = {"fused " + type(optimizer).__name__}  # (built foreach when it failed)
    if isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW):
        names.update(("_fused_adam_", "_fused_adamw_"))
    if plan_blocker(module) is not None:  # not the plan's: the eager step, no kernels
        return names
    kernels, batch_norm = _network_kernels(module)
    names.update(kernel.key for _, kernel in kernels)
    if batch_norm:
        names.add("_native_batch_norm")
    return names


def _kernel_blocker(module):
    """Why the private kernels this network needs are not used (``None``: they are).

    With their public formulas the step is slower than autograd (ELU and
    BatchNorm, 5 x 100, batch 32: 0.32 s against 0.26 s eager), so a kernel
    that is missing or failed its check (:mod:`.kernels`) means the eager step.
    """
    kernels, batch_norm = _network_kernels(module)
    for name, kernel in kernels:
        if not kernel.usable():
            return (f"the private {name} backward kernel is not used "
                    f"({kernel_fallbacks([kernel.key])[kernel.key]})")
    if batch_norm and not batch_norm_kernels_usable():
        return ("the private batch-norm kernels are not used "
                f"({kernel_fallbacks(['_native_batch_norm'])['_native_batch_norm']})")
    return None


class _DirectFusedAdam:
    """Adam/AdamW update through torch's fused kernel without ``Optimizer.step``.

    ``torch.optim.Adam.step`` spends ~100 us of Python per call on small
    networks (grouping tensors, checks); the fused kernel itself takes ~20 us
    per parameter group. This does what ``step`` does for fused Adam on one
    device — one multi-tensor increment of the parameters' own step counters,
    then the kernel — on the optimizer's own state, called by keyword. The
    state stays torch's at every moment (one counter per parameter), so
    ``optimizer.state_dict()`` taken mid-fit (skorch's ``Checkpoint``) loads
    into a plain torch optimizer and continues identically. The learning
    rate, betas, epsilon and weight decay are read from the param group at
    every step. Used only for fused Adam/AdamW without AMSGrad, once
    ``Optimizer.step`` has created the state, and while the kernel passed its
    check (``_torch_compat.fused_adam_kernel``).

    The parameters' counters are 0-d views into one tensor per group, so one
    ``add_`` increments all of them (a multi-tensor add costs ~1.6 us per
    tensor on CPU); each is still its own tensor, a checkpoint stores them
    as distinct elements, and a plain torch optimizer that loads them
    increments each once. :meth:`release` gives them separate storage.
    """

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.groups = []
        decoupled_default = isinstance(optimizer, torch.optim.AdamW)
        for group in optimizer.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            states = [optimizer.state[p] for p in params]
            kernel = fused_adam_kernel(group.get("decoupled_weight_decay", decoupled_default))
            counters = torch.stack([st["step"] for st in states])
            for i, st in enumerate(states):
                st["step"] = counters[i]  # a view: its own tensor, one shared increment
            self.groups.append((
                group, kernel, params, [st["exp_avg"] for st in states],
                [st["exp_avg_sq"] for st in states], [st["step"] for st in states], counters,
            ))

    @staticmethod
    def applies(optimizer):
        """Whether the direct call reproduces ``optimizer.step()`` exactly."""
        if not isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW):
            return False
        if fused_adam_kernel(False) is None or fused_adam_kernel(True) is None:
            return False
        for group in optimizer.param_groups:
            if not group.get("fused") or group.get("amsgrad") or group.get("maximize"):
                return False
            if group.get("differentiable"):
                return False
            for p in group["params"]:
                state = optimizer.state.get(p)
                if p.grad is None or not state or "step" not in state:
                    return False
        return True

    def current(self):
        """Whether the optimizer still holds the groups and state this was built on.

        ``optimizer.load_state_dict`` (a callback loading a checkpoint)
        replaces both; the caller then goes back to ``optimizer.step()``.
        """
        groups = self.optimizer.param_groups
        return len(groups) == len(self.groups) and all(
            group is entry[0] and self.optimizer.state[entry[2][0]].get("exp_avg") is entry[3][0]
            for group, entry in zip(groups, self.groups, strict=False)
        )

    def step(self):
        """One Adam update of every parameter (gradients already in ``p.grad``)."""
        for group, kernel, params, exp_avgs, exp_avg_sqs, steps, counters in self.groups:
            counters.add_(1)  # every parameter's step, as torch's fused Adam does first
            beta1, beta2 = group["betas"]
            kernel(params, [p.grad for p in params], exp_avgs, exp_avg_sqs, [], steps,
                   amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2,
                   weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)

    def release(self):
        """Give every counter storage of its own (the values are torch's throughout)."""
        for *_, params, _, _, _, _ in self.groups:
            for p in params:
                self.optimizer.state[p]["step"] = self.optimizer.state[p]["step"].clone()


class ManualStep:
    """CPU step with an explicit backward pass (see the module docstring).

    Implements :class:`~.steps.Step` with the same parameters as
    :class:`~.steps.EagerStep`, plus ``uniform_weights``
    (every sample weight is 1: the weighting is skipped). Only configurations
    for which :func:`manual_blockers` returns ``None`` are supported. The
    gradients are the ones autograd computes, up to float32 rounding;
    ``tests/test_steps.py`` compares weights, BatchNorm statistics and losses
    after several steps against :class:`~.steps.EagerStep`.
    """

    fallback_reason = None
    epoch_records = MappingProxyType({})  # no extra history entries

    def __init__(self, module, per_sample_loss, optimizer, regularization=None, *,
                 uniform_weights=False):
        self.module, self.optimizer = module, optimizer
        self.reg = regularization or Regularization()
        self.updater = Update(module, optimizer, self.reg, optimizer_step=self.optimizer_step)
        self.events = self.outputs = None  # (see steps.run_batches)
        self.runners = [RUNNERS[op.kind](m) for op, m in module.planned_modules()]
        self.linears = [r for r in self.runners if isinstance(r, PENALIZED)]
        # where the backward pass stops with n lower layers frozen: at the first
        # op of hidden layer n (n = 0: the first op, the input norm included)
        self.first_trainable = [0, *module.plan.block_starts[1:]]
        # BatchNorm1d counts its training-mode batches; one multi-tensor add per step
        self.counters = [(m, m.num_batches_tracked) for m in module.modules()
                         if isinstance(m, nn.BatchNorm1d)]
        self.output_grad = output_gradient(per_sample_loss)
        self.uniform_weights = uniform_weights
        self.direct_adam = None
        self.allow_direct_adam = True

    def optimizer_step(self):
        """Optimizer step; Adam through :class:`_DirectFusedAdam` once possible."""
        if self.direct_adam is not None:
            if self.direct_adam.current():
                self.direct_adam.step()
                return
            self.direct_adam = None  # state reloaded: its counters are its own
        scikit_learn_velocity_(self.optimizer)
        optimizer_step(self.optimizer)
        if self.allow_direct_adam and _DirectFusedAdam.applies(self.optimizer):
            self.direct_adam = _DirectFusedAdam(self.optimizer)

    def run_epoch(self, batches, events=None):
        """Train on every batch of ``batches`` once (see :func:`~.steps.run_batches`)."""
        return run_batches(self, batches, events)

    def release(self):
        """Leave the optimizer as ``torch.optim`` expects it (separate step counters)."""
        if self.direct_adam is not None:
            self.direct_adam.release()
            self.direct_adam = None

    def train_batch(self, xb, yb, wb):
        """Train on one batch; return its loss (0-d tensor)."""
        # The lowest layers frozen by MLP.freeze_ (and the input norm with them)
        # get no gradients, and the backward pass stops above them.
        first = self.first_trainable[self.module.n_frozen]
        runners = self.runners
        with torch.no_grad():
            if self.uniform_weights:  # every weight is 1: skip the weighting
                wsum = float(len(wb))
                c = 1.0 / wsum
            else:
                wsum = float(wb.sum())
                c = (wb / wsum)[:, None]
            if self.counters:
                counting = [count for m, count in self.counters if m.training]
                if counting:
                    foreach_add_(counting, 1)
            x, saved = xb, []
            for runner in runners:
                x, s = runner.forward(x)
                saved.append(s)
            if self.events is not None and self.events.wants_outputs:
                self.outputs = x  # (not changed in place below)
            losses, g = self.output_grad(x, yb)
            g.mul_(c)
            total = losses.sum() if self.uniform_weights else torch.dot(losses, wb)
            reg = self.reg
            l2 = reg.alpha * (1 - reg.l1_ratio) / wsum
            l1 = reg.alpha * reg.l1_ratio / wsum
            for linear in self.linears:
                linear.l2, linear.l1 = l2, l1
            for i in range(len(runners) - 1, first - 1, -1):
                g = runners[i].backward(g, saved[i], i > first)
            if reg.alpha > 0:
                total = total + weight_penalty(self.updater.weights, reg.alpha, reg.l1_ratio)
            self.updater(self.events)
        return total / wsum
