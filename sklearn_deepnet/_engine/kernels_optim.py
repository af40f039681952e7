"""torch.optim without its overheads: the fused kernels, checked, and the undecorated methods.

Part of :mod:`.kernels` (see there). Two kinds of private calls:

- the fused optimizer kernels. :func:`fused_optimizer_usable` checks, once
  per optimizer class and process, that ``fused=True`` steps as
  ``foreach=True`` does (else the optimizer is built with ``foreach``);
  :func:`fused_adam_kernel` gives torch's fused Adam/AdamW kernel to the
  hand-written step's direct call (no ``Optimizer.step``) once it has
  matched the non-fused optimizer, called exactly as that step calls it;
- the undecorated ``Optimizer`` methods (:func:`make_optimizer`,
  :func:`optimizer_step`, :func:`optimizer_state_dict`,
  :func:`optimizer_load_state_dict`, :func:`optimizer_zero_grad`), which
  keep ``torch._dynamo`` unloaded (see the comment above them).
"""

from __future__ import annotations

import sys
import types

import torch
import torch.optim.optimizer as _optimizer_module

from .kernels_checked import _Checked, _private
from .kernels_foreach import foreach_add_

__all__ = [
    "fused_adam_kernel",
    "fused_optimizer_usable",
    "make_optimizer",
    "optimizer_load_state_dict",
    "optimizer_state_dict",
    "optimizer_step",
    "optimizer_zero_grad",
]


_fused_adam_ = _private(torch, "_fused_adam_")
_fused_adamw_ = _private(torch, "_fused_adamw_")


def fused_adam_kernel(decoupled):
    """torch's in-place fused Adam (``decoupled=False``) or AdamW kernel, or ``None``.

    The kernel only once it has matched the non-fused torch optimizer in this
    process (called as the direct step calls it, see ``_FUSED_ADAM``);
    ``None`` tells the caller to use ``optimizer.step()``.
    """
    checked = _FUSED_ADAM[bool(decoupled)]
    if not checked.usable():
        return None
    return _fused_adamw_ if decoupled else _fused_adam_


def fused_optimizer_usable(cls):
    """Whether ``cls(..., fused=True)`` steps as ``cls(..., foreach=True)`` does here.

    Checked once per class and process on a small problem; a fused kernel
    that raises (a changed signature) or differs is not used: the caller
    builds the ``foreach`` implementation instead, and
    :func:`~.kernels_checked.kernel_fallbacks` reports it under ``"fused " + cls.__name__``.
    """
    if cls not in _FUSED_OPTIMIZERS:
        _FUSED_OPTIMIZERS[cls] = _Checked(
            "fused " + cls.__name__, lambda: _one_problem_steps(cls, {"fused": True}),
            lambda: _one_problem_steps(cls, {"foreach": True}), lambda: [((), {})],
            requires=())
    return _FUSED_OPTIMIZERS[cls].usable()


_FUSED_OPTIMIZERS = {}  # optimizer class -> its _Checked fused step


def _one_problem_steps(cls, impl, kwargs=None):
    """Parameters after two steps of ``cls`` on a fixed small problem."""
    params = [torch.nn.Parameter(torch.linspace(-1.0, 1.0, 12).reshape(3, 4)),
              torch.nn.Parameter(torch.linspace(0.5, -0.5, 3))]
    extra = {"momentum": 0.9} if cls is torch.optim.SGD else {}
    optimizer = make_optimizer(cls, params, lr=0.1, **extra, **(kwargs or {}), **impl)
    for k in (1, 2):
        for p in params:
            p.grad = torch.cos(p.detach() * k) + 0.1 * k
        optimizer_step(optimizer)
    return [p.detach() for p in params]


def _adam_direct(decoupled):
    """Two Adam steps through the kernel, called exactly as the direct step calls it."""
    def run():
        params = [torch.linspace(-1.0, 1.0, 12).reshape(3, 4), torch.linspace(0.5, -0.5, 3)]
        exp_avgs = [torch.zeros_like(p) for p in params]
        exp_avg_sqs = [torch.zeros_like(p) for p in params]
        steps = [torch.tensor(0.0) for _ in params]
        kernel = _fused_adamw_ if decoupled else _fused_adam_
        for k in (1, 2):
            grads = [torch.cos(p * k) + 0.1 * k for p in params]
            foreach_add_(steps, 1)
            kernel(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=0.1,
                   beta1=0.9, beta2=0.999, weight_decay=0.01, eps=1e-8, maximize=False)
        return params
    return run


def _adam_reference(decoupled):
    """The same two steps by the non-fused torch optimizer."""
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam

    def run():
        return _one_problem_steps(cls, {"foreach": True}, {"weight_decay": 0.01})
    return run


_FUSED_ADAM = {
    decoupled: _Checked("_fused_adamw_" if decoupled else "_fused_adam_",
                        _adam_direct(decoupled), _adam_reference(decoupled),
                        lambda: [((), {})], namespace=globals())
    for decoupled in (False, True)
}


# ``torch.optim`` wraps ``Optimizer.step`` (``_use_grad_for_differentiable``)
# and ``add_param_group``/``state_dict``/``load_state_dict`` (``_disable_dynamo``)
# in decorators that import ``torch._dynamo`` on their first call, so that
# ``torch.compile`` skips them. That import takes about a second, once per
# process: it was most of a fresh process's first ``fit`` (1.1 s for a 100-row
# fit, 0.005 s for the second) and of unpickling a model to predict. While
# ``torch._dynamo`` is not loaded nothing can be compiling, so the functions
# below call the undecorated methods then, doing what the decorators do
# outside compilation, and the decorated ones once it is loaded.


def _undecorated(fn):
    """The function ``functools.wraps`` decorated into ``fn``, or ``None``."""
    return getattr(fn, "__wrapped__", None)


_raw_add_param_group = _undecorated(torch.optim.Optimizer.add_param_group)
_raw_state_dict = _undecorated(torch.optim.Optimizer.state_dict)
_raw_load_state_dict = _undecorated(torch.optim.Optimizer.load_state_dict)
_raw_zero_grad = _undecorated(torch.optim.Optimizer.zero_grad)
try:  # the code object every ``@_use_grad_for_differentiable`` step shares
    _use_grad_code = _optimizer_module._use_grad_for_differentiable(lambda self: None).__code__
except (AttributeError, TypeError):
    _use_grad_code = None


def _dynamo_loaded():
    return "torch._dynamo" in sys.modules


def _undecorated_usable(raw, cls, name):
    """Whether ``raw`` (``Optimizer.name`` undecorated) may stand in for ``cls.name`` now."""
    return (raw is not None and not _dynamo_loaded()
            and getattr(cls, name) is getattr(torch.optim.Optimizer, name))


def _base_method(optimizer, name, raw):
    """``raw`` when it may stand in for ``optimizer.name`` (see ``_undecorated_usable``)."""
    if not _undecorated_usable(raw, type(optimizer), name):
        return None
    if name in vars(optimizer):  # set on the instance: it must run
        return None
    return raw


def make_optimizer(cls, params, **kwargs):
    """``cls(params, **kwargs)``, without importing ``torch._dynamo``.

    ``Optimizer.__init__`` calls ``self.add_param_group``; the undecorated
    method is set on the new instance for the duration of ``__init__`` only.
    """
    if not _undecorated_usable(_raw_add_param_group, cls, "add_param_group"):
        return cls(params, **kwargs)
    optimizer = cls.__new__(cls)
    optimizer.add_param_group = types.MethodType(_raw_add_param_group, optimizer)
    try:
        optimizer.__init__(params, **kwargs)
    finally:
        optimizer.__dict__.pop("add_param_group", None)
    return optimizer


_profiler = getattr(torch.autograd, "profiler", None)


def _profiling():
    """Whether torch's autograd profiler is recording (``True`` when unknown)."""
    return bool(getattr(_profiler, "_is_profiler_enabled", True))


def _has_step_hooks(optimizer):
    return bool(
        getattr(_optimizer_module, "_global_optimizer_pre_hooks", True)
        or getattr(_optimizer_module, "_global_optimizer_post_hooks", True)
        or getattr(optimizer, "_optimizer_step_pre_hooks", True)
        or getattr(optimizer, "_optimizer_step_post_hooks", True))


def optimizer_step(optimizer):
    """``optimizer.step()``, without importing ``torch._dynamo``.

    The undecorated step runs with gradients enabled as the decorator sets
    them (``defaults["differentiable"]``), under the profiler label
    ``profile_hook_step`` gives it when the autograd profiler records, and
    marks the step as done for an LR scheduler that wrapped it. With any step
    hook registered, another ``step`` set on the instance, or a step that is
    not the usual ``profile_hook_step(_use_grad(step))`` chain,
    ``optimizer.step()`` itself runs.
    """
    hooked = type(optimizer).step
    inner = _undecorated(hooked)
    raw = _undecorated(inner)
    own = vars(optimizer).get("step")  # a step set on the instance
    lr_scheduler_wrapper = own is not None and getattr(
        own, "_wrapped_by_lr_sched", False) and _undecorated(own) is hooked
    if (raw is None or _use_grad_code is None or _dynamo_loaded()
            or getattr(inner, "__code__", None) is not _use_grad_code
            or (own is not None and not lr_scheduler_wrapper)
            or _has_step_hooks(optimizer)):
        return optimizer.step()
    if lr_scheduler_wrapper:
        # torch's LR schedulers wrap the instance's step to record that it ran
        # (else their first step warns that it came before the optimizer's)
        optimizer._opt_called = True
    previous = torch.is_grad_enabled()
    try:
        torch.set_grad_enabled(optimizer.defaults["differentiable"])
        if _profiling():  # the label profile_hook_step gives the step
            name = f"Optimizer.step#{type(optimizer).__name__}.step"
            with torch.autograd.profiler.record_function(name):
                out = raw(optimizer)
        else:
            out = raw(optimizer)
    finally:
        torch.set_grad_enabled(previous)
    optimizer._optimizer_step_code()
    return out


def optimizer_state_dict(optimizer):
    """``optimizer.state_dict()``, without importing ``torch._dynamo``."""
    raw = _base_method(optimizer, "state_dict", _raw_state_dict)
    return optimizer.state_dict() if raw is None else raw(optimizer)


def optimizer_load_state_dict(optimizer, state):
    """``optimizer.load_state_dict(state)``, without importing ``torch._dynamo``."""
    raw = _base_method(optimizer, "load_state_dict", _raw_load_state_dict)
    return optimizer.load_state_dict(state) if raw is None else raw(optimizer, state)


def optimizer_zero_grad(optimizer, set_to_none=True):
    """``optimizer.zero_grad(set_to_none)``, without importing ``torch._dynamo``."""
    raw = _base_method(optimizer, "zero_grad", _raw_zero_grad)
    if raw is None:
        return optimizer.zero_grad(set_to_none=set_to_none)
    return raw(optimizer, set_to_none=set_to_none)
