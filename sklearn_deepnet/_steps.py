"""Training steps: one epoch of optimizer updates over mini-batches (pure torch).

Three implementations of the same update, chosen per fit by :func:`select_step`,
behind one interface: ``run_epoch(batches, events)`` trains one pass and
returns the summed loss as a device tensor, ``release()`` leaves the optimizer
as ``torch.optim`` expects it, ``fallback_reason`` says why a fast path gave
up during the fit (``None`` if it did not).

- :class:`EagerStep`: autograd forward/backward; handles every configuration
  and is the reference the others are tested against.
- :class:`ManualStep` (CPU): the forward pass keeps its intermediate results
  and the backward pass is written out from the gradient tables below. On
  small layers the CPU cost of a step is per-operation overhead, and skipping
  autograd's graph bookkeeping is most of it. Plain ``Linear -> activation``
  stacks with the common losses qualify.
- :class:`~._graph_step.GraphStep` (CUDA, its own module): the whole eager
  step, including the gather of the batch from device-resident data, the
  weight penalty, gradient clipping, the optimizer and max-norm, captured once
  in a CUDA graph and replayed. Batches of another size (the last one) run
  eagerly with the same optimizer.
- :class:`~._lbfgs.LbfgsStep` (``solver="lbfgs"``, its own module): full-batch
  L-BFGS as in scikit-learn.

Every step reads the learning rate and the other optimizer settings from the
optimizer's ``param_groups`` at every update, so a callback or schedule that
changes them mid-fit takes effect on every path. Nothing here reads a value
back to the host, except where a user's per-batch callback asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ._losses import binary_log_loss, loss_function, multiclass_log_loss, squared_error
from ._torch_compat import (
    ACTIVATION_BACKWARD,
    foreach_clamp_,
    foreach_norm,
    fused_adam_kernel,
    has_hooks,
)

__all__ = [
    "EagerStep", "ManualStep", "Regularization", "apply_max_norm", "clip_gradients",
    "manual_blockers", "select_step", "weight_penalty",
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
    """

    fallback_reason = None

    def __init__(self, module, per_sample_loss, optimizer, regularization=None):
        self.module = module
        self.per_sample_loss = per_sample_loss
        self.optimizer = optimizer
        self.reg = regularization or Regularization()
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.weights = [lin.weight for lin in module.linears()]
        # Max-norm constrains the layers that train (not frozen ones).
        self.max_norm_linears = [lin for lin in module.hidden_linears()
                                 if lin.weight.requires_grad]
        self.set_to_none = True
        self.events = None

    def loss(self, xb, yb, wb):
        """Penalized, sample-weighted mean loss of a batch (with autograd)."""
        out = self.module(xb)
        total = torch.dot(self.per_sample_loss(out, yb), wb)
        if self.reg.alpha > 0:
            total = total + weight_penalty(self.weights, self.reg.alpha, self.reg.l1_ratio)
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
        self.optimizer.step()

    def train_batch(self, xb, yb, wb):
        """Train on one batch; return its loss (0-d tensor, detached)."""
        self.optimizer.zero_grad(set_to_none=self.set_to_none)
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


# ------------------------------------------------------ hand-written gradients
# activation module type -> factory(activation) -> (forward(z), backward(g, z, a)).
# Exact types only: a subclass may override forward.
MANUAL_ACTIVATIONS = {
    nn.ReLU: lambda act: (F.relu, ACTIVATION_BACKWARD["relu"]),
    nn.LeakyReLU: lambda act: (
        partial(F.leaky_relu, negative_slope=act.negative_slope),
        partial(ACTIVATION_BACKWARD["leaky_relu"], slope=act.negative_slope),
    ),
    nn.ELU: lambda act: (
        partial(F.elu, alpha=act.alpha), partial(ACTIVATION_BACKWARD["elu"], alpha=act.alpha)
    ),
    nn.SELU: lambda act: (
        F.selu,
        partial(ACTIVATION_BACKWARD["elu"], alpha=_SELU_ALPHA, scale=_SELU_SCALE),
    ),
    nn.Tanh: lambda act: (torch.tanh, ACTIVATION_BACKWARD["tanh"]),
    nn.Sigmoid: lambda act: (torch.sigmoid, ACTIVATION_BACKWARD["sigmoid"]),
    nn.Identity: lambda act: ((lambda z: z), (lambda g, z, a: g)),
}


_MINUS_ONES = {}  # (rows, dtype) -> column of -1: no allocation per step


def _multiclass_output_grad(z, yb):
    logp = torch.log_softmax(z, dim=1)
    idx = yb[:, None]
    losses = -logp.gather(1, idx).squeeze(1)
    g = logp.exp_()
    key = (len(z), z.dtype)
    if key not in _MINUS_ONES:
        if len(_MINUS_ONES) > 64:  # a few batch sizes per fit: keep it small
            _MINUS_ONES.clear()
        _MINUS_ONES[key] = torch.full((len(z), 1), -1.0, dtype=z.dtype)
    g.scatter_add_(1, idx, _MINUS_ONES[key])
    return losses, g


def _binary_output_grad(z, yb):
    losses = F.binary_cross_entropy_with_logits(z, yb, reduction="none").sum(dim=1)
    return losses, torch.sigmoid(z).sub_(yb)


def _squared_error_output_grad(z, yb):
    d = z - yb
    return 0.5 * d.pow(2).mean(dim=1), d.div_(z.shape[1])


# per-sample loss -> output_grad(z, y) giving (per-sample losses, d(sum loss)/dz)
OUTPUT_GRADIENTS = {
    multiclass_log_loss: _multiclass_output_grad,
    binary_log_loss: _binary_output_grad,
    squared_error: _squared_error_output_grad,
}


def _manual_activation(act):
    factory = MANUAL_ACTIVATIONS.get(type(act))
    return None if factory is None or has_hooks(act) else factory(act)


def manual_blockers(module, per_sample_loss, device):
    """Why :class:`ManualStep` cannot run this configuration (``None`` if it can)."""
    if torch.device(device).type != "cpu":
        return "the hand-written step is for CPU"
    if not isinstance(module.input_norm, nn.Identity):
        return "batch_norm_input"
    for block in module.hidden:
        extra = set(dict(block.named_children())) - {"linear", "activation"}
        if extra:
            return ", ".join(sorted(extra))
        if _manual_activation(block.activation) is None:
            return f"activation {type(block.activation).__name__}"
        if block.linear.bias is None:
            return "linear layer without bias"
    if loss_function(per_sample_loss) not in OUTPUT_GRADIENTS:
        return "loss"
    frozen = {id(p) for m in module.frozen_modules() for p in m.parameters()}
    if any(not p.requires_grad and id(p) not in frozen for p in module.parameters()):
        return "parameters with requires_grad=False outside the frozen layers"
    return None


class _DirectFusedAdam:
    """Adam/AdamW update through torch's fused kernel without ``Optimizer.step``.

    ``torch.optim.Adam.step`` spends ~100 us of Python per call on small
    networks (grouping tensors, a per-tensor step-counter increment on CPU);
    the fused kernel itself takes ~20 us per parameter group. This calls the
    kernel on the optimizer's own state, with each group's step counters
    aliased to one tensor that is incremented once. The learning rate, betas,
    epsilon and weight decay are read from the param group at every step.
    :meth:`release` restores separate counters, so the optimizer stays a
    normal torch optimizer. Used only for fused Adam/AdamW without AMSGrad,
    once ``Optimizer.step`` has created the state.
    """

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.groups = []
        decoupled_default = isinstance(optimizer, torch.optim.AdamW)
        for group in optimizer.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            states = [optimizer.state[p] for p in params]
            shared = states[0]["step"]
            for st in states:
                st["step"] = shared
            kernel = fused_adam_kernel(group.get("decoupled_weight_decay", decoupled_default))
            self.groups.append((
                group, kernel, params, [st["exp_avg"] for st in states],
                [st["exp_avg_sq"] for st in states], shared, [shared] * len(params),
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
                if state["step"] != optimizer.state[group["params"][0]]["step"]:
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
        for group, kernel, params, exp_avgs, exp_avg_sqs, shared, steps in self.groups:
            shared.add_(1)
            beta1, beta2 = group["betas"]
            kernel(params, [p.grad for p in params], exp_avgs, exp_avg_sqs, [], steps,
                   amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2,
                   weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)

    def release(self):
        """Give every parameter its own step counter again."""
        for _, _, params, _, _, shared, _ in self.groups:
            for p in params:
                self.optimizer.state[p]["step"] = shared.clone()


class ManualStep(EagerStep):
    """CPU step with an explicit backward pass (see the module docstring).

    Same parameters as :class:`EagerStep`, plus ``uniform_weights`` (every
    sample weight is 1: the weighting is skipped). Only configurations for
    which :func:`manual_blockers` returns ``None`` are supported. The
    gradients are the ones autograd computes, up to float32 rounding;
    ``tests/test_steps.py`` compares weights after several steps against
    :class:`EagerStep`.
    """

    def __init__(self, module, per_sample_loss, optimizer, regularization=None, *,
                 uniform_weights=False):
        super().__init__(module, per_sample_loss, optimizer, regularization)
        self.layers = [
            (block.linear, *_manual_activation(block.activation)) for block in module.hidden
        ]
        self.out_linear = module.output.linear
        self.output_grad = OUTPUT_GRADIENTS[loss_function(per_sample_loss)]
        # Transposed views stay valid: the optimizer updates weights in place.
        self.weights_t = [lin.weight.t() for lin in module.linears()]
        # The lowest layers frozen by MLP.freeze_ get no gradients, and the
        # backward pass stops above them.
        self.n_frozen = module.n_frozen
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
        self.optimizer.step()
        if self.allow_direct_adam and _DirectFusedAdam.applies(self.optimizer):
            self.direct_adam = _DirectFusedAdam(self.optimizer)

    def release(self):
        """Leave the optimizer as ``torch.optim`` expects it (separate step counters)."""
        if self.direct_adam is not None:
            self.direct_adam.release()
            self.direct_adam = None

    def train_batch(self, xb, yb, wb):
        """Train on one batch; return its loss (0-d tensor)."""
        with torch.no_grad():
            if self.uniform_weights:  # every weight is 1: skip the weighting
                wsum = float(len(wb))
                c = 1.0 / wsum
            else:
                wsum = float(wb.sum())
                c = (wb / wsum)[:, None]
            acts, pre = [xb], []
            a = xb
            for (linear, forward, _), wt in zip(self.layers, self.weights_t, strict=False):
                z = torch.addmm(linear.bias, a, wt)
                a = forward(z)
                pre.append(z)
                acts.append(a)
            z = torch.addmm(self.out_linear.bias, a, self.weights_t[-1])
            losses, g = self.output_grad(z, yb)
            g.mul_(c)
            total = losses.sum() if self.uniform_weights else torch.dot(losses, wb)
            reg = self.reg
            l2 = reg.alpha * (1 - reg.l1_ratio) / wsum
            l1 = reg.alpha * reg.l1_ratio / wsum
            linears = [layer[0] for layer in self.layers] + [self.out_linear]
            for i in range(len(linears) - 1, self.n_frozen - 1, -1):
                lin = linears[i]
                a_prev = acts[i]
                if l2 > 0:
                    lin.weight.grad = torch.addmm(lin.weight, g.t(), a_prev, beta=l2)
                else:
                    lin.weight.grad = torch.mm(g.t(), a_prev)
                if l1 > 0:
                    lin.weight.grad.add_(torch.sign(lin.weight), alpha=l1)
                lin.bias.grad = g.sum(dim=0)
                if i > self.n_frozen:
                    backward = self.layers[i - 1][2]
                    g = backward(torch.mm(g, lin.weight), pre[i - 1], acts[i])
            if reg.alpha > 0:
                total = total + weight_penalty(self.weights, reg.alpha, reg.l1_ratio)
            self.update()
        return total / wsum


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
    device = torch.device(device)
    if not fast:
        return "eager", "fast path disabled"
    if device.type == "cpu":
        reason = manual_blockers(module, per_sample_loss, device)
        if reason is not None:
            reason = f"not supported by the hand-written CPU step: {reason}"
        return ("cpu-manual", None) if reason is None else ("eager", reason)
    if device.type == "cuda":
        if not solver_row.graph_safe:
            return "eager", "the optimizer keeps host-side state (not capturable)"
        if needs_gradients:
            return "eager", "a callback implements on_grad_computed (not capturable)"
        if sparse:
            return "eager", "sparse input is densified batch by batch on the host"
        return "cuda-graph", None
    return "eager", f"no fast path for device type {device.type!r}"
