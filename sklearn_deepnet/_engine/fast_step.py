"""The hand-written CPU training step: forward and backward without autograd.

On small layers the CPU cost of a step is per-operation overhead, and
autograd's graph bookkeeping is most of it. :class:`ManualStep` runs the
forward pass keeping what the backward pass needs, then the backward pass
with the ATen kernels autograd itself would call (``kernels``), so its
gradients are autograd's up to float32 rounding. It covers the configurations
the estimators build: ``Linear [-> BatchNorm] -> activation [-> BatchNorm]
[-> dropout or alpha dropout]`` per hidden layer, BatchNorm on the inputs,
frozen lower layers, every activation of the table except PReLU and RReLU,
and the log-loss and squared-error losses. Dropout masks are drawn from
torch's generator exactly as ``nn.Dropout`` / ``nn.AlphaDropout`` draw them
(same calls, same order), so a seeded fit draws the same masks on this path
as on the eager one. ``tests/test_steps.py`` compares it with
:class:`~.steps.EagerStep` on every configuration it accepts, BatchNorm's
running statistics included.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .kernels import (
    ACTIVATION_BACKWARD,
    batch_norm_functions,
    batch_norm_kernels_usable,
    foreach_add_,
    fused_adam_kernel,
    kernel_fallbacks,
    optimizer_step,
)
from .losses import binary_log_loss, loss_function, multiclass_log_loss, squared_error
from .optim import scikit_learn_velocity_
from .steps import EagerStep, weight_penalty

__all__ = ["ManualStep", "kernels_used", "layout_signature", "manual_blockers"]

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805
# alpha dropout's constant (-scale * alpha of SELU), as in ATen's _dropout_impl
_ALPHA_DROPOUT = 1.7580993408473766

# activation module type -> factory(activation) -> (forward(z), backward(g, z, a)).
# Exact types only: a subclass may override forward.
MANUAL_ACTIVATIONS = {
    nn.ReLU: lambda act: (F.relu, _resolved("relu")),
    nn.LeakyReLU: lambda act: (
        partial(F.leaky_relu, negative_slope=act.negative_slope),
        partial(_resolved("leaky_relu"), slope=act.negative_slope),
    ),
    nn.ELU: lambda act: (
        partial(F.elu, alpha=act.alpha), partial(_resolved("elu"), alpha=act.alpha)
    ),
    nn.SELU: lambda act: (
        F.selu,
        partial(_resolved("elu"), alpha=_SELU_ALPHA, scale=_SELU_SCALE),
    ),
    nn.GELU: lambda act: (
        partial(F.gelu, approximate=act.approximate),
        partial(_resolved("gelu"), approximate=act.approximate),
    ),
    nn.SiLU: lambda act: (F.silu, _resolved("silu")),
    nn.Mish: lambda act: (F.mish, _resolved("mish")),
    nn.Tanh: lambda act: (torch.tanh, _resolved("tanh")),
    nn.Sigmoid: lambda act: (torch.sigmoid, _resolved("sigmoid")),
    nn.Identity: lambda act: ((lambda z: z), (lambda g, z, a: g)),
}

# activation module type -> its entry in ACTIVATION_BACKWARD (the private
# kernel the step's speed depends on)
_BACKWARD_KERNEL = {nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu", nn.ELU: "elu", nn.SELU: "elu",
                    nn.GELU: "gelu", nn.SiLU: "silu", nn.Mish: "mish", nn.Tanh: "tanh",
                    nn.Sigmoid: "sigmoid"}

_MINUS_ONES = {}  # (rows, dtype) -> column of -1: no allocation per step


def _resolved(name):
    """The backward function of ACTIVATION_BACKWARD's ``name`` this process uses
    (the checked kernel or the public formula), looked up once per step build."""
    return ACTIVATION_BACKWARD[name].resolved()


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
    """``(forward, backward)`` of an activation ``manual_blockers`` accepted."""
    return MANUAL_ACTIVATIONS[type(act)](act)


# What each leaf module the step runs may hold: exactly these parameters and
# buffers (a parameter added to a module is one the step would never train).
_LEAF_STATE = {
    nn.Linear: ({"weight", "bias"}, set()),
    nn.BatchNorm1d: ({"weight", "bias"}, {"running_mean", "running_var",
                                         "num_batches_tracked"}),
}
# The orders of a hidden block's children the step runs.
_BLOCK_ORDERS = (
    ("linear", "activation"), ("linear", "batch_norm", "activation"),
    ("linear", "activation", "batch_norm"),
)


def _leaf_blocker(name, module, *types):
    """Why ``module`` is not a plain leaf of one of ``types`` (``None`` if it is)."""
    if type(module) not in types:  # exact types: a subclass may override forward
        return f"{name} is a {type(module).__name__}"
    params, buffers = _LEAF_STATE.get(type(module), (set(), set()))
    if set(module._parameters) - params or set(module._buffers) - buffers:
        return f"{name} holds parameters or buffers the step does not know"
    if isinstance(module, nn.BatchNorm1d) and not (
            module.affine and module.track_running_stats and module.momentum is not None):
        return f"{name} is not an affine BatchNorm with running statistics and a momentum"
    if isinstance(module, nn.Dropout | nn.AlphaDropout) and module.inplace:
        return f"{name} is in place"
    return None


def _structure_blocker(module):
    """Why ``module`` is not exactly the network the estimator builds (``None`` if it is).

    An allow-list: the step runs only ``MLP``'s own layout, each part of an
    exact type holding exactly its own parameters; anything else (a replaced
    or added submodule, a subclass, another order) takes the eager step.
    """
    from .module import MLP

    if type(module) is not MLP:
        return f"the network is a {type(module).__name__}, not the MLP it builds"
    if [n for n, _ in module.named_children()] != ["input_norm", "hidden", "output"] or (
            module._parameters or module._buffers):
        return "the network's layout was changed"
    blocker = _leaf_blocker("the input normalization", module.input_norm, nn.Identity,
                            nn.BatchNorm1d)
    if blocker or type(module.hidden) is not nn.ModuleList:
        return blocker or "the hidden layers were replaced"
    for i, block in enumerate(module.hidden, 1):
        if type(block) is not nn.Sequential:
            return f"hidden layer {i} is a {type(block).__name__}"
        names = tuple(n for n, _ in block.named_children())
        core = names[:-1] if names and names[-1] == "dropout" else names
        if core not in _BLOCK_ORDERS:
            return f"hidden layer {i} has the layers {', '.join(names)}"
        for name, child in block.named_children():
            if name == "activation":
                if type(child) not in MANUAL_ACTIVATIONS or child._parameters:
                    return f"activation {type(child).__name__}"
                continue
            types = {"linear": (nn.Linear,), "batch_norm": (nn.BatchNorm1d,),
                     "dropout": (nn.Dropout, nn.AlphaDropout)}[name]
            blocker = _leaf_blocker(f"hidden layer {i}'s {name}", child, *types)
            if blocker:
                return blocker
    out = module.output
    if type(out) is not nn.Sequential or [n for n, _ in out.named_children()] != ["linear"]:
        return "the output layer was replaced"
    blocker = _leaf_blocker("the output layer", out.linear, nn.Linear)
    if blocker or out.linear.bias is None:
        return blocker or "the output layer has no bias"
    return None


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

    It runs only what it was written for (an allow-list): the estimator's own
    ``MLP`` layout, with nothing attached that autograd would run and it
    would skip (see :func:`~.steps.untouched_blockers`), a loss it has the
    output gradient of, and trainable parameters exactly those outside the
    frozen layers.
    """
    from .steps import untouched_blockers

    if torch.device(device).type != "cpu":
        return "the hand-written step is for CPU"
    blocker = untouched_blockers(module, parametrized=True) or _structure_blocker(module)
    if blocker:
        return blocker
    if loss_function(per_sample_loss) not in OUTPUT_GRADIENTS:
        return "loss"
    frozen = {id(p) for m in module.frozen_modules() for p in m.parameters()}
    if any(not p.requires_grad and id(p) not in frozen for p in module.parameters()):
        return "parameters with requires_grad=False outside the frozen layers"
    if any(p.dtype != torch.float32 or not p.is_leaf for p in module.parameters()):
        return "parameters that are not float32 leaf tensors"
    return _kernel_blocker(module)


def _network_kernels(module):
    """The ACTIVATION_BACKWARD entries the hidden layers need (sorted), and
    whether the network has BatchNorm (the batch-norm kernels)."""
    activations = sorted({_BACKWARD_KERNEL[type(block.activation)] for block in module.hidden
                          if type(block.activation) in _BACKWARD_KERNEL})
    return activations, any(isinstance(m, nn.BatchNorm1d) for m in module.modules())


def kernels_used(module, optimizer):
    """Names (as :func:`~.kernels.kernel_fallbacks` reports them) of the
    private kernels training ``module`` with ``optimizer`` may use."""
    activations, batch_norm = _network_kernels(module)
    names = {ACTIVATION_BACKWARD[name].key for name in activations}
    if batch_norm:
        names.add("_native_batch_norm")
    names.add("fused " + type(optimizer).__name__)  # (built foreach when it failed)
    if isinstance(optimizer, torch.optim.Adam | torch.optim.AdamW):
        names.update(("_fused_adam_", "_fused_adamw_"))
    return names


def _kernel_blocker(module):
    """Why the private kernels this network needs are not used (``None``: they are).

    With their public formulas the step is slower than autograd (ELU and
    BatchNorm, 5 x 100, batch 32: 0.32 s against 0.26 s eager), so a kernel
    that is missing or failed its check (``kernels``) means the eager step.
    """
    activations, batch_norm = _network_kernels(module)
    for name in activations:
        kernel = ACTIVATION_BACKWARD[name]
        if not kernel.usable():
            return (f"the private {name} backward kernel is not used "
                    f"({kernel_fallbacks([kernel.key])[kernel.key]})")
    if batch_norm and not batch_norm_kernels_usable():
        return ("the private batch-norm kernels are not used "
                f"({kernel_fallbacks(['_native_batch_norm'])['_native_batch_norm']})")
    return None


class _Norm:
    """A ``BatchNorm1d``'s tensors, read once (module attribute lookups cost per step)."""

    __slots__ = ("module", "weight", "bias", "running_mean", "running_var", "momentum", "eps",
                 "_forward", "_backward")

    def __init__(self, bn):
        self._forward, self._backward = batch_norm_functions()  # checked kernels or public
        self.module = bn
        self.weight, self.bias = bn.weight, bn.bias
        self.running_mean, self.running_var = bn.running_mean, bn.running_var
        self.momentum, self.eps = bn.momentum, bn.eps

    def forward(self, x):
        # ``training`` is read at every step: frozen layers' norms stay in eval mode
        return self._forward(x, self.weight, self.bias, self.running_mean,
                                  self.running_var, self.module.training, self.momentum,
                                  self.eps)

    def backward(self, g, saved, input_grad=True):
        gi, self.weight.grad, self.bias.grad = self._backward(
            g, saved, self.weight, self.running_mean, self.running_var, self.eps, input_grad)
        return gi


class _Layer:
    """One hidden layer as the step runs it: the modules and their order."""

    def __init__(self, block):
        self.linear = block.linear
        self.weight_t = block.linear.weight.t()  # a view: in-place updates show through
        self.bias = block.linear.bias
        self.forward, self.backward = _manual_activation(block.activation)
        bn = getattr(block, "batch_norm", None)
        names = list(dict(block.named_children()))
        before = bn is not None and names.index("batch_norm") < names.index("activation")
        self.bn_before = _Norm(bn) if before else None
        self.bn_after = _Norm(bn) if bn is not None and not before else None
        drop = getattr(block, "dropout", None)
        # (a dropout layer a user put in evaluation mode drops nothing)
        self.drop_p = 0.0 if drop is None or not drop.training else float(drop.p)
        self.alpha_drop = isinstance(drop, nn.AlphaDropout)

    def run(self, a):
        """Forward pass of the layer in training mode; returns (output, saved)."""
        z = (torch.mm(a, self.weight_t) if self.bias is None
             else torch.addmm(self.bias, a, self.weight_t))
        saved_before = saved_after = noise = None
        if self.bn_before is not None:
            z, saved_before = self.bn_before.forward(z)
        h = self.forward(z)
        out = h
        if self.bn_after is not None:
            out, saved_after = self.bn_after.forward(h)
        if self.drop_p > 0:
            out, noise = self._dropout(out)
        return out, (z, h, saved_before, saved_after, noise)

    def _dropout(self, x):
        # The calls of ATen's _dropout_impl (CPU), in its order: same draws, same values.
        p = self.drop_p
        noise = torch.empty_like(x).bernoulli_(1 - p)
        if not self.alpha_drop:
            noise.div_(1 - p)
            return x * noise, noise
        a = 1.0 / math.sqrt((_ALPHA_DROPOUT ** 2 * p + 1) * (1 - p))
        b = noise.add(-1).mul_(_ALPHA_DROPOUT * a).add_(_ALPHA_DROPOUT * a * p)
        noise.mul_(a)
        return (x * noise).add_(b), noise

    def backprop(self, g, saved):
        """Gradient at the linear output, from ``g`` at the layer's output.

        Sets the BatchNorm parameters' gradients on the way.
        """
        z, h, saved_before, saved_after, noise = saved
        if noise is not None:
            g = g * noise
        if saved_after is not None:
            g = self.bn_after.backward(g, saved_after)
        g = self.backward(g, z, h)
        if saved_before is not None:
            g = self.bn_before.backward(g, saved_before)
        return g


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


class ManualStep(EagerStep):
    """CPU step with an explicit backward pass (see the module docstring).

    Same parameters as :class:`~.steps.EagerStep`, plus ``uniform_weights``
    (every sample weight is 1: the weighting is skipped). Only configurations
    for which :func:`manual_blockers` returns ``None`` are supported. The
    gradients are the ones autograd computes, up to float32 rounding;
    ``tests/test_steps.py`` compares weights, BatchNorm statistics and losses
    after several steps against :class:`~.steps.EagerStep`.
    """

    def __init__(self, module, per_sample_loss, optimizer, regularization=None, *,
                 uniform_weights=False):
        super().__init__(module, per_sample_loss, optimizer, regularization)
        self.layers = [_Layer(block) for block in module.hidden]
        norm = module.input_norm
        self.input_norm = _Norm(norm) if isinstance(norm, nn.BatchNorm1d) else None
        # BatchNorm1d counts its training-mode batches; one multi-tensor add per step
        self.counters = [(m, m.num_batches_tracked) for m in module.modules()
                         if isinstance(m, nn.BatchNorm1d)]
        self.out_linear = module.output.linear
        self.output_grad = OUTPUT_GRADIENTS[loss_function(per_sample_loss)]
        # A transposed view stays valid: the optimizer updates weights in place.
        self.out_weight_t = self.out_linear.weight.t()
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

    def release(self):
        """Leave the optimizer as ``torch.optim`` expects it (separate step counters)."""
        if self.direct_adam is not None:
            self.direct_adam.release()
            self.direct_adam = None

    def train_batch(self, xb, yb, wb):
        """Train on one batch; return its loss (0-d tensor)."""
        # The lowest layers frozen by MLP.freeze_ (and the input norm with them)
        # get no gradients, and the backward pass stops above them.
        n_frozen = self.module.n_frozen
        with torch.no_grad():
            if self.uniform_weights:  # every weight is 1: skip the weighting
                wsum = float(len(wb))
                c = 1.0 / wsum
            else:
                wsum = float(wb.sum())
                c = (wb / wsum)[:, None]
            a = xb
            saved_input = None
            if self.counters:
                counting = [count for m, count in self.counters if m.training]
                if counting:
                    foreach_add_(counting, 1)
            if self.input_norm is not None:
                a, saved_input = self.input_norm.forward(a)
            acts, saved = [a], []
            for layer in self.layers:
                a, s = layer.run(a)
                acts.append(a)
                saved.append(s)
            z = torch.addmm(self.out_linear.bias, a, self.out_weight_t)
            if self.events is not None and self.events.wants_outputs:
                self.outputs = z  # (not changed in place below)
            losses, g = self.output_grad(z, yb)
            g.mul_(c)
            total = losses.sum() if self.uniform_weights else torch.dot(losses, wb)
            reg = self.reg
            l2 = reg.alpha * (1 - reg.l1_ratio) / wsum
            l1 = reg.alpha * reg.l1_ratio / wsum
            linears = [layer.linear for layer in self.layers] + [self.out_linear]
            for i in range(len(linears) - 1, n_frozen - 1, -1):
                lin = linears[i]
                if i < len(self.layers):  # to the linear output of hidden layer i
                    g = self.layers[i].backprop(g, saved[i])
                a_prev = acts[i]
                if l2 > 0:
                    lin.weight.grad = torch.addmm(lin.weight, g.t(), a_prev, beta=l2)
                else:
                    lin.weight.grad = torch.mm(g.t(), a_prev)
                if l1 > 0:
                    lin.weight.grad.add_(torch.sign(lin.weight), alpha=l1)
                if lin.bias is not None:
                    lin.bias.grad = g.sum(dim=0)
                if i > n_frozen or (i == 0 and saved_input is not None):
                    g = torch.mm(g, lin.weight)  # to the output of the layer below
            if n_frozen == 0 and saved_input is not None:
                self.input_norm.backward(g, saved_input, input_grad=False)
            if reg.alpha > 0:
                total = total + weight_penalty(self.weights, reg.alpha, reg.l1_ratio)
            self.update()
        return total / wsum
