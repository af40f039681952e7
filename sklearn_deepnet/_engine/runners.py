"""The op runners of the hand-written CPU step: one forward and backward per op kind.

:class:`~.fast_step.ManualStep` interprets the network's layer plan
(:mod:`.plan`) without autograd: it builds one runner per op from the op's
module (:data:`RUNNERS`, one entry per row of ``plan.LAYER_KINDS``), calls
their ``forward`` in the plan's order and their ``backward`` in reverse.
A runner reads its module's tensors once, when built (module attribute
lookups cost per step), and works on them in place.

The protocol, in training mode:

- ``forward(x)`` returns ``(output, saved)``, ``saved`` being what the
  backward pass needs;
- ``backward(g, saved, input_grad)`` sets the gradients of the op's
  parameters from ``g``, the gradient at its output, and returns the
  gradient at its input (``None`` when ``input_grad`` is false: the op is
  the lowest one trained).

The runners: ``linear`` (``addmm`` into the weights' transposed views; its
backward adds the weight penalty's gradient, see :data:`PENALIZED`),
``batch_norm`` (ATen's batch-norm kernels once checked, see
:mod:`.kernels`), ``activation`` (the activation table's forward, and its
backward through the private kernel once checked), ``dropout`` /
``alpha_dropout`` (masks drawn from torch's generator exactly as
``nn.Dropout`` / ``nn.AlphaDropout`` draw them: same calls, same order, so a
seeded fit draws the same masks as the eager step), the numeric embeddings
(:mod:`.embeddings`) and an ensemble's member ops (:mod:`.ensemble`).
``tests/test_steps.py`` compares each with autograd.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .activations import activation_row, backward_function
from .embeddings import EMBEDDINGS, PeriodicEmbedding
from .kernels import batch_norm_functions

__all__ = ["PENALIZED", "RUNNERS"]


# alpha dropout's constant (-scale * alpha of SELU), as in ATen's _dropout_impl
_ALPHA_DROPOUT = 1.7580993408473766


class _LinearRun:
    """``x @ W.T + b``; its backward adds the penalty's gradient (``self.l2``, ``self.l1``)."""

    __slots__ = ("weight", "weight_t", "bias", "l1", "l2")

    def __init__(self, linear):
        self.weight, self.bias = linear.weight, linear.bias
        self.weight_t = linear.weight.t()  # a view: in-place updates show through
        self.l1 = self.l2 = 0.0  # set by the step before each backward pass

    def forward(self, a):
        if self.bias is None:
            return torch.mm(a, self.weight_t), a
        return torch.addmm(self.bias, a, self.weight_t), a

    def backward(self, g, a, input_grad):
        w = self.weight
        if self.l2 > 0:
            w.grad = torch.addmm(w, g.t(), a, beta=self.l2)
        else:
            w.grad = torch.mm(g.t(), a)
        if self.l1 > 0:
            w.grad.add_(torch.sign(w), alpha=self.l1)
        if self.bias is not None:
            self.bias.grad = g.sum(dim=0)
        return torch.mm(g, w) if input_grad else None


class _NormRun:
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
                             self.running_var, self.module.training, self.momentum, self.eps)

    def backward(self, g, saved, input_grad):
        gi, self.weight.grad, self.bias.grad = self._backward(
            g, saved, self.weight, self.running_mean, self.running_var, self.eps, input_grad)
        return gi


class _ActivationRun:
    """The activation table's forward and backward (its kernel once checked)."""

    __slots__ = ("_forward", "_backward", "constants")

    def __init__(self, module):
        row = activation_row(module)
        self.constants = row.constants(module)
        self._forward, self._backward = row.forward, backward_function(row)

    def forward(self, z):
        a = self._forward(z, **self.constants)
        return a, (z, a)

    def backward(self, g, saved, input_grad):
        z, a = saved
        return self._backward(g, z, a, **self.constants)


class _DropoutRun:
    """Dropout or alpha dropout, drawing its mask as ATen's ``_dropout_impl`` does."""

    __slots__ = ("p", "alpha")

    def __init__(self, module):
        # (a dropout layer a user put in evaluation mode drops nothing)
        self.p = float(module.p) if module.training else 0.0
        self.alpha = isinstance(module, nn.AlphaDropout)

    def forward(self, x):
        if self.p <= 0:
            return x, None
        # The calls of ATen's _dropout_impl (CPU), in its order: same draws, same values.
        p = self.p
        noise = torch.empty_like(x).bernoulli_(1 - p)
        if not self.alpha:
            noise.div_(1 - p)
            return x * noise, noise
        a = 1.0 / math.sqrt((_ALPHA_DROPOUT ** 2 * p + 1) * (1 - p))
        b = noise.add(-1).mul_(_ALPHA_DROPOUT * a).add_(_ALPHA_DROPOUT * a * p)
        noise.mul_(a)
        return (x * noise).add_(b), noise

    def backward(self, g, noise, input_grad):
        return g if noise is None else g * noise


class _EmbeddingRun:
    """A numeric embedding (:mod:`.embeddings`): its encoding, the per-column
    linear layers (one ``baddbmm``) and ReLU; the backward pass gives the
    weights, biases and (periodic) frequencies their gradients."""

    __slots__ = ("module", "periodic", "size", "n_other")

    def __init__(self, module):
        self.module = module
        self.periodic = isinstance(module, PeriodicEmbedding)
        self.size = module.spec.size
        self.n_other = len(module.other)

    def forward(self, x):
        m = self.module
        xn = x.index_select(1, m.numeric)
        if self.periodic:
            v = m.angles(xn)
            encoded = torch.cat([torch.cos(v), torch.sin(v)], dim=-1)
            keep = None  # (the backward needs only the encoding)
        else:
            keep = m.raw(xn)
            encoded = torch.clamp(keep, min=m.lower, max=m.upper)
        a = torch.relu_(m.embed(encoded))
        return m.assemble(a, x), (xn, keep, encoded.transpose(0, 1), a)

    def backward(self, g, saved, input_grad):
        m = self.module
        xn, keep, encoded_t, a = saved
        n, n_num = xn.shape
        ge = g[:, : n_num * self.size].reshape(n, n_num, self.size).transpose(0, 1)
        gz = ge * (a > 0)  # (F, n, size)
        m.weight.grad = torch.bmm(encoded_t.transpose(1, 2), gz)
        m.bias.grad = gz.sum(dim=1)
        if not (self.periodic or input_grad):
            return None
        genc = torch.bmm(gz, m.weight.transpose(1, 2)).transpose(0, 1)  # (n, F, n_in)
        if self.periodic:
            # d[cos v, sin v]/dv = [-sin v, cos v]: the forward's encoding, not
            # computed again (the same values autograd's backward recomputes);
            # gv row-major, as cos(v) was: the sums below reduce in its order
            k = m.frequencies.shape[1]
            encoded = encoded_t.transpose(0, 1)
            gv = encoded.new_empty(n, n_num, k).copy_(encoded[..., :k]).mul_(genc[..., k:])
            gv.sub_(encoded[..., k:] * genc[..., :k])
            m.frequencies.grad = (gv * xn[..., None]).sum(dim=0).mul_(_TWO_PI)
            if not input_grad:
                return None
            gxn = (gv * m.frequencies).sum(dim=-1).mul_(_TWO_PI)
        else:  # clamp passes the gradient where lower <= raw <= upper
            inside = (keep >= m.lower) & (keep <= m.upper)
            gxn = (genc * inside / m.width).sum(dim=-1)
        gx = g.new_zeros(n, m.spec.n_features)
        gx.index_copy_(1, m.numeric, gxn)
        if self.n_other:
            gx.index_copy_(1, m.other, g[:, n_num * self.size:])
        return gx


_TWO_PI = 2 * math.pi
# --- an ensemble's ops (see .ensemble): rows i*k .. i*k+k-1 are row i's members


class _MemberSplitRun:
    """Each row once per member; its backward sums the members' gradients."""

    __slots__ = ("k",)

    def __init__(self, module):
        self.k = module.n_members

    def forward(self, x):
        return x.unsqueeze(1).expand(-1, self.k, -1).reshape(-1, x.shape[1]), None

    def backward(self, g, saved, input_grad):
        return g.view(-1, self.k, g.shape[1]).sum(dim=1) if input_grad else None


class _MemberScaleRun:
    """``x_m * w[m] (+ b[m])`` on the ``(n, k, d)`` view."""

    __slots__ = ("k", "weight", "bias")

    def __init__(self, module):
        self.k, self.weight, self.bias = module.n_members, module.weight, module.bias

    def forward(self, x):
        xv = x.view(-1, self.k, x.shape[1])
        out = xv * self.weight
        if self.bias is not None:
            out = out + self.bias
        return out.view(x.shape), xv

    def backward(self, g, xv, input_grad):
        gv = g.view(xv.shape)
        self.weight.grad = (gv * xv).sum(dim=0)
        if self.bias is not None:
            self.bias.grad = gv.sum(dim=0)
        return (gv * self.weight).view(g.shape) if input_grad else None


class _MemberLinearRun:
    """Each member's output layer, ``baddbmm`` on the ``(k, n, in)`` view; its
    backward adds the penalty's gradient like :class:`_LinearRun`."""

    __slots__ = ("k", "weight", "weight_t", "bias", "bias_3d", "l1", "l2")

    def __init__(self, module):
        self.k, self.weight, self.bias = module.n_members, module.weight, module.bias
        self.weight_t = module.weight.transpose(1, 2)  # views: in-place updates show through
        self.bias_3d = module.bias.unsqueeze(1)
        self.l1 = self.l2 = 0.0

    def forward(self, a):
        ak = a.view(-1, self.k, a.shape[1]).transpose(0, 1)  # (k, n, in)
        out = torch.baddbmm(self.bias_3d, ak, self.weight_t)  # (k, n, out)
        return out.transpose(0, 1).reshape(a.shape[0] // self.k, -1), ak

    def backward(self, g, ak, input_grad):
        w = self.weight
        gk = g.view(g.shape[0], self.k, -1).transpose(0, 1)  # (k, n, out)
        if self.l2 > 0:
            w.grad = torch.baddbmm(w, gk.transpose(1, 2), ak, beta=self.l2)
        else:
            w.grad = torch.bmm(gk.transpose(1, 2), ak)
        if self.l1 > 0:
            w.grad.add_(torch.sign(w), alpha=self.l1)
        self.bias.grad = gk.sum(dim=1)
        if not input_grad:
            return None
        return torch.bmm(gk, w).transpose(0, 1).reshape(-1, ak.shape[2])


class _MemberMeanRun:
    """The identity in training (each member's outputs go to its own loss)."""

    __slots__ = ()

    def __init__(self, module):
        pass

    def forward(self, x):
        return x, None

    def backward(self, g, saved, input_grad):
        return g


#: op kind -> its runner (one entry per row of ``plan.LAYER_KINDS``)
RUNNERS = {"linear": _LinearRun, "batch_norm": _NormRun, "activation": _ActivationRun,
           "dropout": _DropoutRun, "alpha_dropout": _DropoutRun,
           **{f"{name}_embedding": _EmbeddingRun for name in EMBEDDINGS},
           "member_split": _MemberSplitRun, "member_scale": _MemberScaleRun,
           "member_linear": _MemberLinearRun, "member_mean": _MemberMeanRun}

#: the runners whose backward adds the weight penalty's gradient: the step sets
#: their ``l2`` and ``l1`` before each backward pass
PENALIZED = (_LinearRun, _MemberLinearRun)
