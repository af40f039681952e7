"""ATen's backward kernels: activations and BatchNorm, each checked against its formula.

Part of :mod:`.kernels` (see there). The hand-written CPU step
(:mod:`.runners`) computes gradients with the same ATen kernels autograd
calls: each activation's backward (:data:`ACTIVATION_KERNELS`, used through
:func:`checked_backward`, which the activation table calls with its public
formula) and BatchNorm's forward and backward in training
(:func:`batch_norm_functions`). Each is *checked, not trusted*
(``_Checked``): used only once it has matched the public formula in this
process, otherwise the public formula runs, and the hand-written step gives
way to autograd (with public formulas it would be slower).
"""

from __future__ import annotations

import torch

from .kernels_checked import _Checked, _private

__all__ = [
    "ACTIVATION_KERNELS",
    "batch_norm_backward",
    "batch_norm_forward",
    "batch_norm_functions",
    "batch_norm_kernels_usable",
    "checked_backward",
]


_aten = getattr(torch.ops, "aten", None)


# Gradient of each activation with respect to its input, given the upstream
# gradient ``g``, the input ``z`` and the output ``a``: the ATen kernel autograd
# calls when this torch has it, else the same formula in public operations.


def _aten_kernel(name):
    return None if _aten is None else _private(_aten, name)


_threshold_backward = _aten_kernel("threshold_backward")
_leaky_relu_kernel = _aten_kernel("leaky_relu_backward")
_elu_kernel = _aten_kernel("elu_backward")
_tanh_kernel = _aten_kernel("tanh_backward")
_sigmoid_kernel = _aten_kernel("sigmoid_backward")
_gelu_kernel = _aten_kernel("gelu_backward")
_silu_kernel = _aten_kernel("silu_backward")
_mish_kernel = _aten_kernel("mish_backward")


# BatchNorm in training: the forward kernel returns the batch mean and inverse
# standard deviation that its backward kernel takes (what autograd saves).
def _aten_overload(name):
    packet = _aten_kernel(name)
    return None if packet is None else getattr(packet, "default", packet)


_native_batch_norm = _aten_overload("native_batch_norm")
_native_batch_norm_backward = _aten_overload("native_batch_norm_backward")


# Each activation's backward through the ATen kernel autograd calls, as
# ``backward(g, z, a, **constants)``; the same formula in public operations is
# the activation table's row (``activations.py``), which checks one against
# the other (:func:`checked_backward`).
def _relu_fast(g, z, a):
    return _threshold_backward(g, a, 0.0)


def _leaky_relu_fast(g, z, a, slope):
    return _leaky_relu_kernel(g, z, slope, False)


def _elu_fast(g, z, a, alpha, scale=1.0):
    return _elu_kernel(g, alpha, scale, 1.0, False, z)


def _tanh_fast(g, z, a):
    return _tanh_kernel(g, a)


def _sigmoid_fast(g, z, a):
    return _sigmoid_kernel(g, a)


def _gelu_fast(g, z, a, approximate="none"):
    return _gelu_kernel(g, z, approximate=approximate)


def _silu_fast(g, z, a):
    return _silu_kernel(g, z)


def _mish_fast(g, z, a):
    return _mish_kernel(g, z)


#: private kernel -> ``backward(g, z, a, **constants)`` calling it. Each key is
#: the module global holding the kernel (``None`` when this torch lacks it).
ACTIVATION_KERNELS = {
    "_threshold_backward": _relu_fast,
    "_leaky_relu_kernel": _leaky_relu_fast,
    "_elu_kernel": _elu_fast,
    "_tanh_kernel": _tanh_fast,
    "_sigmoid_kernel": _sigmoid_fast,
    "_gelu_kernel": _gelu_fast,
    "_silu_kernel": _silu_fast,
    "_mish_kernel": _mish_fast,
}


def checked_backward(kernel, public, checks):
    """An activation's backward: the private ``kernel`` once it matched ``public``.

    Parameters
    ----------
    kernel : str
        Key of :data:`ACTIVATION_KERNELS`.
    public : callable
        ``public(g, z, a, **c)``, the same gradient in public operations.
    checks : list of (callable, dict)
        ``(forward, c)`` pairs to compare both on: ``a = forward(z, **c)``
        (every activation and setting the kernel will be called for).

    Returns
    -------
    _Checked
        Callable as ``backward(g, z, a, **c)``; ``resolved()`` gives the
        function to call (looked up once per step build).
    """
    def cases():
        z = torch.linspace(-3.0, 3.0, 30).reshape(5, 6)
        g = torch.linspace(1.0, -0.5, 30).reshape(5, 6)
        return [((g, z, forward(z, **c)), c) for forward, c in checks]

    return _Checked(kernel, ACTIVATION_KERNELS[kernel], public, cases, namespace=globals())


def _bn_forward_fast(x, weight, bias, running_mean, running_var, training, momentum, eps):
    out, mean, invstd = _native_batch_norm(x, weight, bias, running_mean, running_var,
                                           training, momentum, eps)
    return out, (x, mean, invstd, training)


def _bn_forward_public(x, weight, bias, running_mean, running_var, training, momentum, eps):
    if training:
        mean = x.mean(dim=0)
        var = x.var(dim=0, unbiased=False)
        n = x.shape[0]
        running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        running_var.mul_(1 - momentum).add_(var * (n / max(n - 1, 1)), alpha=momentum)
    else:
        mean, var = running_mean, running_var
    invstd = torch.rsqrt(var + eps)
    return (x - mean) * (invstd * weight) + bias, (x, mean, invstd, training)


def _bn_backward_fast(g, saved, weight, running_mean, running_var, eps, input_grad=True):
    x, mean, invstd, training = saved
    return _native_batch_norm_backward(g, x, weight, running_mean, running_var, mean,
                                       invstd, training, eps, [input_grad, True, True])


def _bn_backward_public(g, saved, weight, running_mean, running_var, eps, input_grad=True):
    x, mean, invstd, training = saved
    x_hat = (x - mean) * invstd
    grad_bias = g.sum(dim=0)
    grad_weight = (g * x_hat).sum(dim=0)
    grad_input = None
    if input_grad:
        if training:
            grad_input = (weight * invstd) * (
                g - grad_bias / len(x) - x_hat * (grad_weight / len(x)))
        else:
            grad_input = g * (weight * invstd)
    return grad_input, grad_weight, grad_bias


def _bn_round_trip(forward, backward):
    """Forward then backward, with the running statistics they leave (for the check)."""
    def run(x, weight, bias, running_mean, running_var, training, g):
        out, saved = forward(x, weight, bias, running_mean, running_var, training, 0.1, 1e-5)
        grads = backward(g, saved, weight, running_mean, running_var, 1e-5, True)
        return (out, *grads, running_mean, running_var)
    return run


def _bn_cases():
    x = torch.linspace(-2.0, 3.0, 24).reshape(6, 4) ** 2
    g = torch.linspace(1.0, -1.0, 24).reshape(6, 4)
    weight, bias = torch.linspace(0.5, 2.0, 4), torch.linspace(-1.0, 1.0, 4)
    stats = (torch.linspace(-0.5, 0.5, 4), torch.linspace(0.5, 1.5, 4))
    return [((x, weight, bias, *stats, training, g), {}) for training in (True, False)]


_BATCH_NORM = _Checked(("_native_batch_norm", "_native_batch_norm_backward"),
                       _bn_round_trip(_bn_forward_fast, _bn_backward_fast),
                       _bn_round_trip(_bn_forward_public, _bn_backward_public), _bn_cases,
                       namespace=globals())


def batch_norm_functions():
    """``(forward, backward)`` as :func:`batch_norm_forward` and
    :func:`batch_norm_backward` would call them now (looked up once by a step)."""
    if _BATCH_NORM.usable():
        return _bn_forward_fast, _bn_backward_fast
    return _bn_forward_public, _bn_backward_public


def batch_norm_kernels_usable():
    """Whether ATen's batch-norm kernels passed their check (see ``_Checked``)."""
    return _BATCH_NORM.usable()


def batch_norm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps):
    """What ``BatchNorm1d`` computes, and what :func:`batch_norm_backward` needs.

    In training mode the batch statistics normalize ``x`` and update the
    running ones in place exactly as the module does (``num_batches_tracked``
    is the caller's); in evaluation mode the running statistics normalize.
    Returns ``(output, saved)``. ATen's kernels once they passed their check.
    """
    forward = batch_norm_functions()[0]
    return forward(x, weight, bias, running_mean, running_var, training, momentum, eps)


def batch_norm_backward(g, saved, weight, running_mean, running_var, eps, input_grad=True):
    """Gradients of BatchNorm: ``(input or None, weight, bias)``, from its output's ``g``."""
    backward = batch_norm_functions()[1]
    return backward(g, saved, weight, running_mean, running_var, eps, input_grad)

