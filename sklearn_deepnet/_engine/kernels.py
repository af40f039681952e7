"""The ONLY module that calls private PyTorch functions, each with a public fallback.

The training steps use a few private torch entry points because they are
faster on small networks (multi-tensor ``_foreach_*`` kernels, the fused Adam
kernel without ``Optimizer.step``'s Python overhead, the ATen backward kernels
autograd itself calls). Private names and signatures can change between torch
releases, so each one is looked up once here, and the kernels the steps'
results depend on (activation and batch-norm backward, the direct fused
Adam call, the fused optimizers) are *checked, not trusted*: on first use in
a process each is compared with its public formula on a small input, and one
that is missing, raises (a changed signature) or differs is replaced by the
public code for the rest of the process (``kernel_fallbacks`` says which and
why; the hand-written step then gives way to autograd, and an optimizer
whose fused kernel failed is built with ``foreach``).

``tests/test_torch_compat.py`` checks every fast function against its
fallback, so a torch upgrade that changes one of them fails there first.
"""

from __future__ import annotations

import sys
import types

import torch
import torch.optim.optimizer as _optimizer_module

__all__ = [
    "ACTIVATION_KERNELS",
    "batch_norm_backward",
    "batch_norm_forward",
    "batch_norm_functions",
    "batch_norm_kernels_usable",
    "checked_backward",
    "foreach_add_",
    "foreach_clamp_",
    "foreach_copy_",
    "foreach_mul_",
    "foreach_norm",
    "fused_adam_kernel",
    "fused_optimizer_usable",
    "global_module_hooks",
    "has_hooks",
    "kernel_fallbacks",
    "module_hooks",
    "tensor_hooks",
    "make_optimizer",
    "optimizer_load_state_dict",
    "optimizer_state_dict",
    "optimizer_step",
    "optimizer_zero_grad",
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
_foreach_add_ = _private(torch, "_foreach_add_")
_foreach_mul_ = _private(torch, "_foreach_mul_")
_foreach_copy_ = _private(torch, "_foreach_copy_")
_fused_adam_ = _private(torch, "_fused_adam_")
_fused_adamw_ = _private(torch, "_fused_adamw_")


def foreach_norm(tensors, ord=2):
    """The ``ord``-norm of each tensor (a list of 0-d tensors), no host sync."""
    if _foreach_norm is not None:
        return list(_foreach_norm(tensors, ord))
    return [torch.linalg.vector_norm(t, ord) for t in tensors]


def foreach_add_(tensors, value):
    """Add ``value`` to every tensor in place (one kernel launch when torch allows)."""
    if _foreach_add_ is not None:
        _foreach_add_(tensors, value)
        return
    for t in tensors:
        t.add_(value)


def foreach_copy_(destinations, sources):
    """Copy each source into its destination (one kernel launch when torch allows)."""
    if _foreach_copy_ is not None:
        _foreach_copy_(destinations, sources)
        return
    for d, s in zip(destinations, sources, strict=True):
        d.copy_(s)


def foreach_mul_(tensors, value):
    """Multiply every tensor by ``value`` in place (one kernel launch when torch allows)."""
    if _foreach_mul_ is not None:
        _foreach_mul_(tensors, value)
        return
    for t in tensors:
        t.mul_(value)


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
    :func:`kernel_fallbacks` reports it under ``"fused " + cls.__name__``.
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


def has_hooks(module):
    """Whether ``module`` has forward hooks (a hand-written step would skip them).

    Answers ``True`` when the hook registries cannot be inspected, so the
    caller takes the autograd path, which runs hooks.
    """
    try:
        return bool(module._forward_hooks or module._forward_pre_hooks)
    except AttributeError:
        return True


_MODULE_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                 "_backward_pre_hooks")
_GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks",
                 "_global_backward_hooks", "_global_backward_pre_hooks")


def module_hooks(module):
    """Names of the hook kinds registered on ``module`` itself (forward, backward).

    A registry that cannot be read counts as holding a hook: the caller then
    takes the autograd path, which runs every hook.
    """
    return [name.strip("_") for name in _MODULE_HOOKS if getattr(module, name, True)]


def global_module_hooks():
    """Names of the global module hook kinds in use (``register_module_forward_hook`` ...)."""
    registry = sys.modules.get("torch.nn.modules.module")
    return [name.strip("_") for name in _GLOBAL_HOOKS if getattr(registry, name, True)]


def tensor_hooks(tensor):
    """Whether hooks are registered on ``tensor`` (``register_hook``,
    ``register_post_accumulate_grad_hook``); ``True`` when that cannot be read."""
    try:
        return bool(tensor._backward_hooks or tensor._post_accumulate_grad_hooks)
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


# ------------------------------------------------------- checked, not trusted
# A private kernel is used only once it has matched its public formula in this
# process, on a small input, on its first use: a kernel that is missing, whose
# signature changed (any exception) or whose result differs is replaced by the
# public formula for the rest of the process, and ``kernel_fallbacks`` says why.

_FALLBACKS = {}  # private name -> why this process does not use it
_REGISTRY = []  # every _Checked made in this process
_GENERATION = [0]  # bumped when tests switch private entry points off and on


def kernel_fallbacks(names=None):
    """``{private name: why}`` for the private kernels this process does not use.

    Parameters
    ----------
    names : iterable of str or None
        Only these (``None``: every kernel checked so far).
    """
    if names is None:
        return dict(_FALLBACKS)
    return {n: _FALLBACKS[n] for n in names if n in _FALLBACKS}


def _close(got, want):
    got = got if isinstance(got, tuple | list) else (got,)
    want = want if isinstance(want, tuple | list) else (want,)
    return len(got) == len(want) and all(
        (a is None and b is None) or (
            isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
            and torch.allclose(a, b, rtol=1e-4, atol=1e-5))
        for a, b in zip(got, want, strict=True))


class _Checked:
    """A private kernel (``fast``) behind its public formula, used once checked.

    Parameters
    ----------
    name : str or tuple of str
        The module global holding the private kernel (``None`` when this
        torch lacks it, or tests switched it off), or several; the first is
        the name :func:`kernel_fallbacks` reports.
    fast, public : callable
        The same computation through the kernel and in public operations.
    cases : callable
        ``cases()`` returns ``[(args, kwargs), ...]`` to compare both on.
    requires : tuple of str or None, default=None
        The module globals that must be present (``None``: those of ``name``;
        ``()`` when ``name`` only labels a check, e.g. a fused optimizer's).
    """

    def __init__(self, name, fast, public, cases, requires=None):
        self.name, self.fast, self.public, self.cases = name, fast, public, cases
        self.requires = ((name,) if isinstance(name, str) else name) if requires is None \
            else requires
        self.ok = None  # the check's verdict (None: not run yet)
        self._answer = (None, False)  # (generation, usable) last computed
        _REGISTRY.append(self)

    def usable(self):
        """Whether the kernel is here and matched its formula (checked once)."""
        generation, answer = self._answer
        if generation == _GENERATION[0]:  # the hot path: one comparison
            return answer
        missing = [n for n in self.requires if globals()[n] is None]
        if missing:
            _FALLBACKS[self.key] = f"not in this torch ({', '.join(missing)})"
            answer = False
        else:
            if self.ok is None:
                self.ok = self._check()
            answer = self.ok
            if answer:
                _FALLBACKS.pop(self.key, None)
        self._answer = (_GENERATION[0], answer)
        return answer

    @property
    def key(self):
        """The name this kernel is reported under in :func:`kernel_fallbacks`."""
        return self.name if isinstance(self.name, str) else self.name[0]

    def _check(self):
        try:
            for args, kwargs in self.cases():
                # (copies: a kernel may update its inputs in place)
                fast = self.fast(*_copies(args), **kwargs)
                public = self.public(*_copies(args), **kwargs)
                if not _close(fast, public):
                    raise AssertionError("its result differs from the public formula")
        except Exception as exc:  # any failure: the public formula from now on
            _FALLBACKS[self.key] = f"{type(exc).__name__}: {exc}"[:300]
            return False
        _FALLBACKS.pop(self.key, None)
        return True

    def resolved(self):
        """The function to call: the kernel once it has passed, else the formula."""
        return self.fast if self.usable() else self.public

    def __call__(self, *args, **kwargs):
        return self.resolved()(*args, **kwargs)


def _copies(args):
    return [a.clone() if isinstance(a, torch.Tensor) else a for a in args]


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

    return _Checked(kernel, ACTIVATION_KERNELS[kernel], public, cases)


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
                       _bn_round_trip(_bn_forward_public, _bn_backward_public), _bn_cases)


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


_FUSED_ADAM = {
    decoupled: _Checked("_fused_adamw_" if decoupled else "_fused_adam_",
                        _adam_direct(decoupled), _adam_reference(decoupled),
                        lambda: [((), {})])
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


_PRIVATE = ("_foreach_norm", "_foreach_clamp_min_", "_foreach_clamp_max_", "_foreach_add_",
            "_foreach_mul_", "_foreach_copy_",
            "_fused_adam_",
            "_fused_adamw_", "_threshold_backward", "_leaky_relu_kernel", "_elu_kernel",
            "_tanh_kernel", "_sigmoid_kernel", "_gelu_kernel", "_silu_kernel", "_mish_kernel",
            "_native_batch_norm", "_native_batch_norm_backward", "_raw_add_param_group",
            "_raw_state_dict", "_raw_load_state_dict", "_raw_zero_grad", "_use_grad_code")


def _use_fallbacks_for_tests():
    """Switch every private entry point off (``tests/test_torch_compat.py`` only).

    Returns a function that switches them back on.
    """
    module = globals()
    saved = {name: module[name] for name in _PRIVATE}
    module.update(dict.fromkeys(_PRIVATE))
    _GENERATION[0] += 1

    def restore():
        module.update(saved)
        _GENERATION[0] += 1
        for name in [k for k, why in _FALLBACKS.items() if why.startswith("not in this")]:
            del _FALLBACKS[name]

    return restore


def _recheck_for_tests():
    """Forget every check's verdict, so the next use checks again (tests only)."""
    for checked in _REGISTRY:
        checked.ok = None
    _FUSED_OPTIMIZERS.clear()  # (built anew, for the class as it is now)
    _FALLBACKS.clear()
    _GENERATION[0] += 1
