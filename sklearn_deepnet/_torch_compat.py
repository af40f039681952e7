"""The ONLY module that calls private PyTorch functions, each with a public fallback.

The training steps use a few private torch entry points because they are
faster on small networks (multi-tensor ``_foreach_*`` kernels, the fused Adam
kernel without ``Optimizer.step``'s Python overhead, the ATen backward kernels
autograd itself calls). Private names can move between torch releases, so
each one is looked up once here; when it is missing the public equivalent is
used instead, with the same result up to float rounding (and, for the fused
Adam kernel, the caller falls back to ``optimizer.step()``).

``tests/test_torch_compat.py`` checks every fast function against its
fallback, so a torch upgrade that changes one of them fails there first.
"""

from __future__ import annotations

import torch

__all__ = [
    "ACTIVATION_BACKWARD",
    "foreach_clamp_",
    "foreach_norm",
    "fused_adam_kernel",
    "has_hooks",
]

_aten = getattr(torch.ops, "aten", None)


def _private(owner, name):
    """``owner.name`` when this torch has it and it is callable, else ``None``."""
    try:
        fn = getattr(owner, name)
    except (AttributeError, RuntimeError):  # torch.ops raises RuntimeError for unknown ops
        return None
    return fn if callable(fn) else None


_foreach_norm = _private(torch, "_foreach_norm")
_foreach_clamp_min_ = _private(torch, "_foreach_clamp_min_")
_foreach_clamp_max_ = _private(torch, "_foreach_clamp_max_")
_fused_adam_ = _private(torch, "_fused_adam_")
_fused_adamw_ = _private(torch, "_fused_adamw_")


def foreach_norm(tensors, ord=2):
    """The ``ord``-norm of each tensor (a list of 0-d tensors), no host sync."""
    if _foreach_norm is not None:
        return list(_foreach_norm(tensors, ord))
    return [torch.linalg.vector_norm(t, ord) for t in tensors]


def foreach_clamp_(tensors, low, high):
    """Clamp every tensor to ``[low, high]`` in place."""
    if _foreach_clamp_min_ is not None and _foreach_clamp_max_ is not None:
        _foreach_clamp_min_(tensors, low)
        _foreach_clamp_max_(tensors, high)
        return
    for t in tensors:
        t.clamp_(low, high)


def fused_adam_kernel(decoupled):
    """torch's in-place fused Adam (``decoupled=False``) or AdamW kernel, or ``None``.

    ``None`` tells the caller to use ``optimizer.step()``.
    """
    return _fused_adamw_ if decoupled else _fused_adam_


def has_hooks(module):
    """Whether ``module`` has forward hooks (a hand-written step would skip them).

    Answers ``True`` when the hook registries cannot be inspected, so the
    caller takes the autograd path, which runs hooks.
    """
    try:
        return bool(module._forward_hooks or module._forward_pre_hooks)
    except AttributeError:
        return True


# ---------------------------------------------------------------- backward
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


def _relu_backward(g, z, a):
    if _threshold_backward is not None:
        return _threshold_backward(g, a, 0.0)
    return g * (a > 0)


def _leaky_relu_backward(g, z, a, slope):
    if _leaky_relu_kernel is not None:
        return _leaky_relu_kernel(g, z, slope, False)
    return torch.where(z > 0, g, g * slope)


def _elu_backward(g, z, a, alpha, scale=1.0):
    if _elu_kernel is not None:
        return _elu_kernel(g, alpha, scale, 1.0, False, z)
    return torch.where(z > 0, g * scale, g * (scale * alpha) * torch.exp(z))


def _tanh_backward(g, z, a):
    if _tanh_kernel is not None:
        return _tanh_kernel(g, a)
    return g * (1 - a * a)


def _sigmoid_backward(g, z, a):
    if _sigmoid_kernel is not None:
        return _sigmoid_kernel(g, a)
    return g * a * (1 - a)


#: name -> backward(g, z, a, *params); ``params`` are the activation's constants.
ACTIVATION_BACKWARD = {
    "relu": _relu_backward,
    "leaky_relu": _leaky_relu_backward,
    "elu": _elu_backward,
    "tanh": _tanh_backward,
    "sigmoid": _sigmoid_backward,
}


_PRIVATE = ("_foreach_norm", "_foreach_clamp_min_", "_foreach_clamp_max_", "_fused_adam_",
            "_fused_adamw_", "_threshold_backward", "_leaky_relu_kernel", "_elu_kernel",
            "_tanh_kernel", "_sigmoid_kernel")


def _use_fallbacks_for_tests():
    """Switch every private entry point off (``tests/test_torch_compat.py`` only).

    Returns a function that switches them back on.
    """
    module = globals()
    saved = {name: module[name] for name in _PRIVATE}
    module.update(dict.fromkeys(_PRIVATE))

    def restore():
        module.update(saved)

    return restore
