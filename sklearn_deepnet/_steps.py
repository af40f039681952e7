"""Training steps: one optimizer update from one mini-batch (pure torch).

Three implementations of the same update, chosen per fit by :func:`select_step`:

- :class:`EagerStep`: autograd forward/backward; handles every configuration
  and is the reference the others are tested against.
- :class:`ManualStep` (CPU): the forward pass keeps its intermediate results
  and the backward pass is written out with the same ATen kernels autograd
  would call (``addmm``, ``threshold_backward``, ``elu_backward``, ...). On
  small layers the CPU cost of a step is per-operation overhead, and skipping
  autograd's graph bookkeeping is most of it. Plain ``Linear -> activation``
  stacks with the common losses qualify.
- :class:`GraphStep` (CUDA): the whole eager step, including the gather of the
  batch from device-resident data, the weight penalty, gradient clipping, the
  optimizer and max-norm, captured once in a CUDA graph and replayed. Batches
  of another size (the last one) run eagerly with the same optimizer.

Every step returns the batch loss as a 0-d tensor on the device; nothing here
reads a value back to the host.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from ._losses import binary_log_loss, multiclass_log_loss, squared_error

__all__ = [
    "EagerStep", "GraphStep", "ManualStep", "apply_max_norm", "clip_gradients", "select_step",
    "weight_penalty",
]

logger = logging.getLogger("sklearn_deepnet")

_aten = torch.ops.aten
_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


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
        grads = [p.grad for p in params if p.grad is not None]
        torch._foreach_clamp_min_(grads, -clip_value)
        torch._foreach_clamp_max_(grads, clip_value)
    if clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, clip_norm, foreach=True)


def weight_penalty(weights, alpha, l1_ratio):
    """Elastic-net penalty ``alpha * (l1_ratio*sum|W| + 0.5*(1-l1_ratio)*sum W**2)``.

    With ``l1_ratio=0`` this is ``MLPClassifier``'s L2 term.
    """
    total = 0.0
    if l1_ratio < 1:
        norms = torch._foreach_norm(weights)
        total = total + 0.5 * (1 - l1_ratio) * torch.stack(norms).pow(2).sum()
    if l1_ratio > 0:
        total = total + l1_ratio * torch.stack(torch._foreach_norm(weights, 1)).sum()
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
    alpha, l1_ratio : float
        Weight penalty; it is divided by the batch's total sample weight, as in
        scikit-learn's MLP.
    clip_norm, clip_value : float or None
        Gradient clipping.
    max_norm : float or None
        Max-norm constraint on hidden units, applied after the update.
    """

    name = "eager"

    def __init__(self, module, per_sample_loss, optimizer, *, alpha=0.0, l1_ratio=0.0,
                 clip_norm=None, clip_value=None, max_norm=None):
        self.module = module
        self.per_sample_loss = per_sample_loss
        self.optimizer = optimizer
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.max_norm = max_norm
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.weights = [lin.weight for lin in module.linears()]
        self.set_to_none = True

    def loss(self, xb, yb, wb):
        """Penalized, sample-weighted mean loss of a batch (with autograd)."""
        out = self.module(xb)
        total = torch.dot(self.per_sample_loss(out, yb), wb)
        if self.alpha > 0:
            total = total + weight_penalty(self.weights, self.alpha, self.l1_ratio)
        return total / wb.sum()

    def update(self):
        """Clip, step, project: everything after the gradients exist."""
        if self.clip_norm is not None or self.clip_value is not None:
            clip_gradients(self.params, self.clip_norm, self.clip_value)
        self.optimizer_step()
        if self.max_norm is not None:
            apply_max_norm(self.module.hidden_linears(), self.max_norm)

    def optimizer_step(self):
        """Apply the optimizer to the gradients in ``p.grad``."""
        self.optimizer.step()

    def __call__(self, xb, yb, wb):
        """Train on one batch; return its loss (0-d tensor, detached)."""
        self.optimizer.zero_grad(set_to_none=self.set_to_none)
        loss = self.loss(xb, yb, wb)
        loss.backward()
        self.update()
        return loss.detach()


# activation module type -> (forward, backward(grad, z, a)) for ManualStep
def _manual_activation(act):
    # Exact types: a subclass may override forward (and hooks would be skipped).
    if act._forward_hooks or act._forward_pre_hooks:
        return None
    if type(act) is nn.ReLU:
        return F.relu, lambda g, z, a: _aten.threshold_backward(g, a, 0.0)
    if type(act) is nn.LeakyReLU:
        s = act.negative_slope
        return (lambda z: F.leaky_relu(z, s),
                lambda g, z, a: _aten.leaky_relu_backward(g, z, s, False))
    if type(act) is nn.ELU:
        al = act.alpha
        return (lambda z: F.elu(z, al),
                lambda g, z, a: _aten.elu_backward(g, al, 1.0, 1.0, False, z))
    if type(act) is nn.SELU:
        return (F.selu, lambda g, z, a: _aten.elu_backward(
            g, _SELU_ALPHA, _SELU_SCALE, 1.0, False, z))
    if type(act) is nn.Tanh:
        return torch.tanh, lambda g, z, a: _aten.tanh_backward(g, a)
    if type(act) is nn.Sigmoid:
        return torch.sigmoid, lambda g, z, a: _aten.sigmoid_backward(g, a)
    if type(act) is nn.Identity:
        return (lambda z: z), (lambda g, z, a: g)
    return None


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
    if per_sample_loss not in (multiclass_log_loss, binary_log_loss, squared_error):
        return "loss"
    return None


class _DirectFusedAdam:
    """Adam/AdamW update through torch's fused kernel without ``Optimizer.step``.

    ``torch.optim.Adam.step`` spends ~100 us of Python per call on small
    networks (grouping tensors, a per-tensor step-counter increment on CPU);
    the fused kernel itself takes ~20 us per parameter group. This calls the
    kernel on the optimizer's own state, with each group's step counters
    aliased to one tensor that is incremented once. :meth:`release` restores
    separate counters, so the optimizer stays a normal torch optimizer.
    Used only for fused Adam/AdamW without AMSGrad or tensor learning rates,
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
            kernel = (torch._fused_adamw_
                      if group.get("decoupled_weight_decay", decoupled_default)
                      else torch._fused_adam_)
            self.groups.append((
                kernel, params, [st["exp_avg"] for st in states],
                [st["exp_avg_sq"] for st in states], shared, [shared] * len(params),
                dict(amsgrad=False, lr=group["lr"], beta1=group["betas"][0],
                     beta2=group["betas"][1], weight_decay=group["weight_decay"],
                     eps=group["eps"], maximize=False),
            ))

    @staticmethod
    def applies(optimizer):
        """Whether the direct call reproduces ``optimizer.step()`` exactly."""
        if not isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW):
            return False
        if not hasattr(torch, "_fused_adam_"):
            return False
        for group in optimizer.param_groups:
            if not group.get("fused") or group.get("amsgrad") or group.get("maximize"):
                return False
            if isinstance(group["lr"], torch.Tensor) or group.get("differentiable"):
                return False
            for p in group["params"]:
                state = optimizer.state.get(p)
                if p.grad is None or not state or "step" not in state:
                    return False
                if state["step"] != optimizer.state[group["params"][0]]["step"]:
                    return False
        return True

    def step(self):
        """One Adam update of every parameter (gradients already in ``p.grad``)."""
        for kernel, params, exp_avgs, exp_avg_sqs, shared, steps, kw in self.groups:
            shared.add_(1)
            kernel(params, [p.grad for p in params], exp_avgs, exp_avg_sqs, [], steps, **kw)

    def release(self):
        """Give every parameter its own step counter again."""
        for _, params, _, _, shared, _, _ in self.groups:
            for p in params:
                self.optimizer.state[p]["step"] = shared.clone()


class ManualStep(EagerStep):
    """CPU step with an explicit backward pass (see the module docstring).

    Same parameters as :class:`EagerStep`; only configurations for which
    :func:`manual_blockers` returns ``None`` are supported. The gradients are
    the ones autograd computes, up to float32 rounding; ``tests/test_steps.py``
    compares weights after several steps against :class:`EagerStep`.
    """

    name = "cpu-manual"

    def __init__(self, module, per_sample_loss, optimizer, *, uniform_weights=False, **kwargs):
        super().__init__(module, per_sample_loss, optimizer, **kwargs)
        self.layers = [
            (block.linear, *_manual_activation(block.activation)) for block in module.hidden
        ]
        self.out_linear = module.output.linear
        # Transposed views stay valid: the optimizer updates weights in place.
        self.weights_t = [lin.weight.t() for lin in module.linears()]
        self._minus_one = {}
        self.uniform_weights = uniform_weights
        self.direct_adam = None
        self.allow_direct_adam = True

    def optimizer_step(self):
        """Optimizer step; Adam through :class:`_DirectFusedAdam` once possible."""
        if self.direct_adam is not None:
            self.direct_adam.step()
            return
        self.optimizer.step()
        if self.allow_direct_adam and _DirectFusedAdam.applies(self.optimizer):
            self.direct_adam = _DirectFusedAdam(self.optimizer)

    def release(self):
        """Leave the optimizer as ``torch.optim`` expects it (separate step counters)."""
        if self.direct_adam is not None:
            self.direct_adam.release()
            self.direct_adam = None

    def _output_grad(self, z, yb, c):
        """Per-sample losses and d(sum c*loss)/dz for the output logits ``z``
        (``c``: a float, or per-sample factors of shape ``(n, 1)``)."""
        fn = self.per_sample_loss
        if fn is multiclass_log_loss:
            logp = torch.log_softmax(z, dim=1)
            losses = -logp.gather(1, yb[:, None]).squeeze(1)
            g = logp.exp_()
            n = len(z)
            if n not in self._minus_one:
                self._minus_one[n] = torch.full((n, 1), -1.0, dtype=z.dtype)
            g.scatter_add_(1, yb[:, None], self._minus_one[n])
        elif fn is binary_log_loss:
            losses = F.binary_cross_entropy_with_logits(z, yb, reduction="none").sum(dim=1)
            g = torch.sigmoid(z).sub_(yb)
        else:  # squared_error
            d = z - yb
            losses = 0.5 * d.pow(2).mean(dim=1)
            g = d.div_(z.shape[1])
        return losses, g.mul_(c)

    def __call__(self, xb, yb, wb):
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
            losses, g = self._output_grad(z, yb, c)
            total = losses.sum() if self.uniform_weights else torch.dot(losses, wb)
            l2 = self.alpha * (1 - self.l1_ratio) / wsum
            l1 = self.alpha * self.l1_ratio / wsum
            linears = [layer[0] for layer in self.layers] + [self.out_linear]
            for i in range(len(linears) - 1, -1, -1):
                lin = linears[i]
                a_prev = acts[i]
                if l2 > 0:
                    lin.weight.grad = torch.addmm(lin.weight, g.t(), a_prev, beta=l2)
                else:
                    lin.weight.grad = torch.mm(g.t(), a_prev)
                if l1 > 0:
                    lin.weight.grad.add_(torch.sign(lin.weight), alpha=l1)
                lin.bias.grad = g.sum(dim=0)
                if i > 0:
                    backward = self.layers[i - 1][2]
                    g = backward(torch.mm(g, lin.weight), pre[i - 1], acts[i])
            if self.alpha > 0:
                total = total + weight_penalty(self.weights, self.alpha, self.l1_ratio)
            self.update()
        return total / wsum


class GraphStep:
    """CUDA-graph epoch runner around an :class:`EagerStep` (see module docstring).

    Parameters
    ----------
    step : EagerStep
        Built with a capturable optimizer on a CUDA module.
    data : TensorData
        Training data resident on the same device.
    batch_size : int
        The captured batch size; batches of any other size run eagerly.
    n_warmup : int, default=3
        Eager steps (on a side stream) before capturing, as the CUDA-graph
        recipe requires (lazy initialization, optimizer state).
    """

    name = "cuda-graph"

    def __init__(self, step, data, batch_size, n_warmup=3):
        self.step = step
        self.data = data
        self.batch_size = batch_size
        self.n_warmup = n_warmup
        self.graph = None
        self.n_eager = 0
        self.fallback_reason = None
        self.idx = None  # static batch indices, typed like the epoch order
        self.total = torch.zeros((), device=data.X.device)

    def _captured_body(self):
        d = self.data
        loss = self.step.loss(
            d.X.index_select(0, self.idx), d.y.index_select(0, self.idx),
            d.w.index_select(0, self.idx),
        )
        loss.backward()
        self.step.update()
        self.total.add_(loss.detach() * self.batch_size)

    def _capture(self):
        self.step.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._captured_body()
        self.graph = graph
        # Eager steps after the capture must write into the captured gradients.
        self.step.set_to_none = False

    def run(self, order, bounds, total):
        """Train over the batches ``order[start:stop]``; add ``loss * size`` to ``total``."""
        self.total.zero_()
        if self.idx is None:
            self.idx = order.new_zeros(self.batch_size)
        d = self.data
        for start, stop in zip(bounds[:-1], bounds[1:], strict=False):
            idx = order[start:stop]
            full = stop - start == self.batch_size
            if full and self.graph is None and self.fallback_reason is None \
                    and self.n_eager >= self.n_warmup:
                torch.cuda.synchronize()
                try:
                    self._capture()
                except Exception as exc:  # noqa: BLE001 - any capture failure -> eager
                    self.fallback_reason = f"CUDA graph capture failed: {exc!r}"
                    logger.warning("%s; training continues eagerly.", self.fallback_reason)
                    self.graph = None
                    self.step.set_to_none = True
            if full and self.graph is not None:
                self.idx.copy_(idx)
                self.graph.replay()
            elif self.graph is None and self.fallback_reason is None:
                self.n_eager += 1  # warm-up step on a side stream (CUDA-graph recipe)
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    total += self.step(d.X[idx], d.y[idx], d.w[idx]) * (stop - start)
                torch.cuda.current_stream().wait_stream(side)
            else:
                total += self.step(d.X[idx], d.y[idx], d.w[idx]) * (stop - start)
        total += self.total

    def release(self):
        """Free the graph and the gradients living in its memory pool."""
        self.graph = None
        self.step.optimizer.zero_grad(set_to_none=True)


def select_step(module, per_sample_loss, device, solver_row, fast=True):
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
        return "cuda-graph", None
    return "eager", f"no fast path for device type {device.type!r}"
