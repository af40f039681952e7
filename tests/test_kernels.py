"""The private-torch layer: ``_engine/kernels.py`` and its parts ``kernels_*.py``.

Each test names the part it covers. ``tests/test_torch_compat.py`` already
compares every fast function with its public fallback and with autograd
(foreach norm/clamp/add/copy, activation and batch-norm backward), the
undecorated optimizer methods with torch's, and broken kernels through whole
fits; here the machinery itself: the lookup, ``_Checked``'s verdicts and
reports, the tests' switches, the hook registries, the kernels' tables, the
checks of fused optimizers, and the methods a subclass or an instance
overrides.
"""

import copy

import pytest
import torch
from torch import nn

from sklearn_deepnet._engine import (
    kernels,
    kernels_backward,
    kernels_checked,
    kernels_foreach,
    kernels_optim,
)
from sklearn_deepnet._engine.activations import ACTIVATIONS
from sklearn_deepnet._engine.kernels_checked import _close, _private, kernel_fallbacks


@pytest.fixture
def isolated():
    """Checks made by a test leave no verdict, report or registry entry behind."""
    fallbacks = dict(kernels_checked._FALLBACKS)
    registry = list(kernels_checked._REGISTRY)
    fused = dict(kernels_optim._FUSED_OPTIMIZERS)
    yield
    kernels_checked._FALLBACKS.clear()
    kernels_checked._FALLBACKS.update(fallbacks)
    kernels_checked._REGISTRY[:] = registry
    kernels_optim._FUSED_OPTIMIZERS.clear()
    kernels_optim._FUSED_OPTIMIZERS.update(fused)
    kernels_checked._GENERATION[0] += 1  # every cached answer recomputed


# ---------------------------------------------------------------- kernels_checked
def test_private_looks_up_callables_only():
    class Owner:
        value = 3

        @staticmethod
        def fn():
            return 1

        def __getattr__(self, name):
            if name == "unknown_op":
                raise RuntimeError("No such operator aten::unknown_op")  # as torch.ops does
            raise AttributeError(name)

    owner = Owner()
    assert _private(owner, "fn") is Owner.fn
    assert _private(owner, "value") is None  # not callable
    assert _private(owner, "missing") is None
    assert _private(owner, "unknown_op") is None
    assert _private(torch, "_foreach_add_") is torch._foreach_add_


def test_close_compares_tensors_and_nones_pairwise():
    a = torch.tensor([1.0, 2.0])
    assert _close(a, a + 1e-7) and _close((a, None), [a.clone(), None])
    assert not _close(a, a + 1e-2)
    assert not _close(a, a[:1]) and not _close((a,), (a, a)) and not _close(None, a)
    assert not _close(1.0, 1.0)  # only tensors and None are compared


def _checked(name, fast, public, cases=None, namespace=None, **kwargs):
    namespace = {name: fast} if namespace is None else namespace
    cases = cases or (lambda: [((torch.arange(4.0),), {})])
    return kernels_checked._Checked(name, fast, public, cases, namespace=namespace, **kwargs)


def test_checked_uses_a_kernel_that_matches_and_checks_it_once(isolated):
    runs = []

    def cases():
        runs.append(1)
        return [((torch.arange(4.0),), {}), ((torch.ones(2, 3),), {})]

    checked = _checked("_test_ok", lambda x: x * 2, lambda x: x + x, cases)
    assert checked in kernels_checked._REGISTRY and checked.ok is None
    assert checked.usable() and checked.usable() and checked.ok is True
    assert checked.resolved() is checked.fast
    assert torch.equal(checked(torch.ones(2)), torch.full((2,), 2.0))
    kernels_checked._GENERATION[0] += 1  # a new generation recomputes the answer ...
    assert checked.usable()
    assert runs == [1]  # ... but the verdict stands: checked once
    assert kernel_fallbacks(["_test_ok"]) == {}


def test_checked_falls_back_on_a_kernel_that_differs(isolated):
    public = lambda x: x + 1  # noqa: E731
    checked = _checked("_test_off", lambda x: x + 1.01, public)
    assert not checked.usable() and checked.resolved() is public
    assert torch.equal(checked(torch.zeros(1)), torch.ones(1))
    assert kernel_fallbacks(["_test_off", "_not_checked"]) == {
        "_test_off": "AssertionError: its result differs from the public formula"}
    assert "_test_off" in kernel_fallbacks()


def test_checked_falls_back_on_a_kernel_that_raises_and_reports_it_briefly(isolated):
    def fast(x):
        raise TypeError("unexpected keyword argument " + "x" * 500)

    checked = _checked("_test_raises", fast, lambda x: x)
    assert not checked.usable()
    why = kernel_fallbacks(["_test_raises"])["_test_raises"]
    assert why.startswith("TypeError: unexpected keyword argument") and len(why) == 300


def test_checked_compares_on_copies_of_the_inputs(isolated):
    # a kernel that updates its input in place must not change the formula's input
    checked = _checked("_test_inplace", lambda x: x.mul_(2), lambda x: x * 2)
    assert checked.usable()


def test_a_missing_kernel_is_reported_and_found_again_once_present(isolated):
    namespace = {"_test_a": None, "_test_b": lambda x: x}
    checked = _checked(("_test_a", "_test_b"), lambda x: x, lambda x: x, namespace=namespace)
    assert checked.key == "_test_a" and checked.requires == ("_test_a", "_test_b")
    assert not checked.usable()
    assert kernel_fallbacks(["_test_a"]) == {"_test_a": "not in this torch (_test_a)"}
    namespace["_test_a"] = lambda x: x  # (what restoring the tests' switch does)
    assert not checked.usable()  # the same generation: the answer is kept
    kernels_checked._GENERATION[0] += 1
    assert checked.usable() and kernel_fallbacks(["_test_a"]) == {}


def test_checked_needs_a_namespace_unless_it_requires_nothing(isolated):
    with pytest.raises(TypeError, match="needs the namespace"):
        kernels_checked._Checked("_test_x", abs, abs, lambda: [])
    label = kernels_checked._Checked("fused Test", lambda: torch.ones(1),
                                     lambda: torch.ones(1), lambda: [((), {})], requires=())
    assert label.usable() and label.key == "fused Test"


# ----------------------------------------------------------- kernels (switches)
def test_the_switches_turn_every_private_entry_point_off_and_back_on():
    before = {part: {name: getattr(part, name) for name in names}
              for part, names in kernels._PRIVATE.items()}
    generation = kernels_checked._GENERATION[0]
    restore = kernels._use_fallbacks_for_tests()
    try:
        assert all(getattr(part, name) is None
                   for part, names in kernels._PRIVATE.items() for name in names)
        assert kernels_checked._GENERATION[0] == generation + 1
        assert not kernels.batch_norm_kernels_usable()
        assert kernels.batch_norm_functions() == (kernels_backward._bn_forward_public,
                                                  kernels_backward._bn_backward_public)
        assert kernels.fused_adam_kernel(False) is None
        assert kernel_fallbacks(["_native_batch_norm"]) == {
            "_native_batch_norm": "not in this torch (_native_batch_norm, "
                                  "_native_batch_norm_backward)"}
        t = [torch.ones(2)]
        kernels.foreach_mul_(t, 3.0)  # the loop of public operations
        assert t[0].tolist() == [3.0, 3.0]
    finally:
        restore()
    assert {part: {name: getattr(part, name) for name in names}
            for part, names in kernels._PRIVATE.items()} == before
    assert kernels.batch_norm_kernels_usable()
    assert not any(why.startswith("not in this") for why in kernel_fallbacks().values())


def test_recheck_forgets_every_verdict():
    assert kernels.batch_norm_kernels_usable() and kernels.fused_optimizer_usable(torch.optim.SGD)
    kernels._recheck_for_tests()
    assert all(checked.ok is None for checked in kernels_checked._REGISTRY)
    assert kernels_optim._FUSED_OPTIMIZERS == {} and kernel_fallbacks() == {}
    assert kernels.batch_norm_kernels_usable()  # checked again on its next use, and passes
    assert kernels_backward._BATCH_NORM.ok is True


def test_every_activation_kernel_is_one_the_switches_cover():
    kernel_names = set(kernels_backward.ACTIVATION_KERNELS)
    assert {row.kernel for row in ACTIVATIONS.values()} - {None} == kernel_names  # all used
    assert kernel_names <= set(kernels._PRIVATE[kernels_backward])
    assert set(kernels._PRIVATE[kernels_foreach]) == {
        name for name in vars(kernels_foreach) if name.startswith("_foreach_")}


def test_everything_exported_is_importable():
    for name in kernels.__all__:
        assert callable(getattr(kernels, name)) or name == "ACTIVATION_KERNELS", name


# -------------------------------------------------------------- kernels_foreach
def test_foreach_mul_is_the_loop():
    # (add, copy, clamp and norm are compared with their loops in test_torch_compat)
    g = torch.Generator().manual_seed(0)
    tensors = [torch.randn(3, 2, generator=g), torch.randn(5, generator=g)]
    expected = [t * -0.25 for t in tensors]
    kernels.foreach_mul_(tensors, -0.25)
    for t, e in zip(tensors, expected, strict=True):
        assert torch.equal(t, e)


# (torch's _foreach_* kernels refuse an empty list; the loops take it as a no-op)
@pytest.mark.parametrize("call", [
    lambda: kernels.foreach_add_([], 1), lambda: kernels.foreach_mul_([], 2.0),
    lambda: kernels.foreach_clamp_([], -1.0, 1.0), lambda: kernels.foreach_copy_([], []),
    lambda: kernels.foreach_norm([]),
], ids=["add", "mul", "clamp", "copy", "norm"])
def test_foreach_on_no_tensors_does_what_the_loop_does(call):
    assert not call()


# ---------------------------------------------------------------- kernels_hooks
def test_module_hooks_names_each_kind_registered_on_the_module_itself():
    m = nn.Linear(2, 2)
    assert kernels.module_hooks(m) == []
    handles = [m.register_forward_hook(lambda *a: None)]
    assert kernels.module_hooks(m) == ["forward_hooks"]
    handles += [m.register_forward_pre_hook(lambda *a: None),
                m.register_full_backward_hook(lambda *a: None),
                m.register_full_backward_pre_hook(lambda *a: None)]
    assert kernels.module_hooks(m) == ["forward_hooks", "forward_pre_hooks", "backward_hooks",
                                       "backward_pre_hooks"]
    parent = nn.Sequential(m)
    assert kernels.module_hooks(parent) == []  # a child's hooks are the child's
    for h in handles:
        h.remove()
    assert kernels.module_hooks(m) == []
    # registries that cannot be read count as hooks
    assert kernels.module_hooks(object()) == ["forward_hooks", "forward_pre_hooks",
                                              "backward_hooks", "backward_pre_hooks"]
    m.register_forward_hook(lambda *a: None)
    assert kernels.has_hooks(m)


def test_global_module_hooks():
    from torch.nn.modules import module as torch_module

    assert kernels.global_module_hooks() == []
    registrations = [
        (torch_module.register_module_forward_hook, "global_forward_hooks"),
        (torch_module.register_module_forward_pre_hook, "global_forward_pre_hooks"),
        (torch_module.register_module_full_backward_hook, "global_backward_hooks"),
        (torch_module.register_module_full_backward_pre_hook, "global_backward_pre_hooks"),
    ]
    for register, name in registrations:
        handle = register(lambda *a: None)
        try:
            assert kernels.global_module_hooks() == [name]
            assert kernels.global_forward_hooks() == ([name] if "forward" in name else [])
        finally:
            handle.remove()
    assert kernels.global_module_hooks() == []


def test_tensor_hooks():
    p = nn.Parameter(torch.ones(2))
    assert not kernels.tensor_hooks(p)
    handle = p.register_hook(lambda g: g)
    assert kernels.tensor_hooks(p)
    handle.remove()
    assert not kernels.tensor_hooks(p)
    p.register_post_accumulate_grad_hook(lambda t: None)
    assert kernels.tensor_hooks(p)
    assert kernels.tensor_hooks(object())  # cannot tell: assume hooks


# ------------------------------------------------------------- kernels_backward
def test_checked_backward_uses_the_kernel_only_against_the_right_formula(isolated):
    row = ACTIVATIONS["tanh"]
    good = kernels.checked_backward("_tanh_kernel", row.backward, [(torch.tanh, {})])
    assert good.usable() and good.resolved() is kernels_backward.ACTIVATION_KERNELS[
        "_tanh_kernel"]

    def wrong(g, z, a):
        return g * (1 - a)  # not tanh's derivative

    bad = kernels.checked_backward("_tanh_kernel", wrong, [(torch.tanh, {})])
    assert not bad.usable() and bad.resolved() is wrong
    assert "differs" in kernel_fallbacks(["_tanh_kernel"])["_tanh_kernel"]


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_backward_without_the_input_gradient(training):
    g = torch.Generator().manual_seed(0)
    x, upstream = torch.randn(10, 3, generator=g) * 2, torch.randn(10, 3, generator=g)
    bn = nn.BatchNorm1d(3, momentum=0.2).train(training)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5, generator=g)
        bn.running_var.uniform_(0.5, 2.0, generator=g)
    reference = copy.deepcopy(bn)
    (reference(x) * upstream).sum().backward()
    for forward, backward in (kernels.batch_norm_functions(),
                              (kernels_backward._bn_forward_public,
                               kernels_backward._bn_backward_public)):
        m = copy.deepcopy(bn)
        with torch.no_grad():
            args = (m.weight, m.bias, m.running_mean, m.running_var)
            out, saved = forward(x, *args, training, m.momentum, m.eps)
            gi, gw, gb = backward(upstream, saved, m.weight, m.running_mean, m.running_var,
                                  m.eps, False)
        assert gi is None
        torch.testing.assert_close(gw, reference.weight.grad, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(gb, reference.bias.grad, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(m.running_var, reference.running_var)
    assert kernels.batch_norm_functions() == (kernels_backward._bn_forward_fast,
                                              kernels_backward._bn_backward_fast)


# ---------------------------------------------------------------- kernels_optim
def test_the_direct_adam_kernels_are_torchs():
    assert kernels.fused_adam_kernel(False) is torch._fused_adam_
    assert kernels.fused_adam_kernel(True) is torch._fused_adamw_


class _Broken(torch.optim.SGD):
    """An optimizer whose fused implementation cannot be built."""

    def __init__(self, params, fused=None, **kwargs):
        if fused:
            raise TypeError("fused is not supported here")
        super().__init__(params, **kwargs)


class _Skewed(torch.optim.SGD):
    """An optimizer whose fused implementation steps twice as far."""

    def __init__(self, params, lr=0.1, fused=None, **kwargs):
        super().__init__(params, lr=2 * lr if fused else lr, **kwargs)


def test_fused_optimizers_are_checked_once_per_class(isolated):
    assert kernels.fused_optimizer_usable(torch.optim.Adam)
    checked = kernels_optim._FUSED_OPTIMIZERS[torch.optim.Adam]
    assert kernels.fused_optimizer_usable(torch.optim.Adam)
    assert kernels_optim._FUSED_OPTIMIZERS[torch.optim.Adam] is checked
    assert not kernels.fused_optimizer_usable(_Broken)
    assert kernel_fallbacks(["fused _Broken"]) == {
        "fused _Broken": "TypeError: fused is not supported here"}
    assert not kernels.fused_optimizer_usable(_Skewed)
    assert "differs" in kernel_fallbacks(["fused _Skewed"])["fused _Skewed"]


def _sgd(cls=torch.optim.SGD, **kwargs):
    p = nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 0.5)
    return kernels.make_optimizer(cls, [p], lr=0.1, **kwargs), p


def test_methods_a_subclass_overrides_are_the_ones_called():
    calls = []

    class Logged(torch.optim.SGD):
        def add_param_group(self, group):
            calls.append("add_param_group")
            super().add_param_group(group)

        def step(self, closure=None):
            calls.append("step")
            return super().step(closure)

        def zero_grad(self, set_to_none=True):
            calls.append("zero_grad")
            super().zero_grad(set_to_none)

        def state_dict(self):
            calls.append("state_dict")
            return super().state_dict()

        def load_state_dict(self, state):
            calls.append("load_state_dict")
            super().load_state_dict(state)

    opt, p = _sgd(Logged, momentum=0.9)
    kernels.optimizer_step(opt)
    assert torch.allclose(p.detach(), torch.full((3,), 0.95))
    kernels.optimizer_load_state_dict(opt, kernels.optimizer_state_dict(opt))
    kernels.optimizer_zero_grad(opt)
    assert calls == ["add_param_group", "step", "state_dict", "load_state_dict", "zero_grad"]
    assert p.grad is None


def test_methods_set_on_an_instance_are_the_ones_called():
    opt, p = _sgd()
    calls = []
    opt.zero_grad = lambda set_to_none=True: calls.append(("zero_grad", set_to_none))
    opt.state_dict = lambda: calls.append("state_dict") or {}
    opt.load_state_dict = lambda state: calls.append(("load_state_dict", state))
    kernels.optimizer_zero_grad(opt, set_to_none=False)
    assert kernels.optimizer_state_dict(opt) == {}
    kernels.optimizer_load_state_dict(opt, {"x": 1})
    assert calls == [("zero_grad", False), "state_dict", ("load_state_dict", {"x": 1})]
    assert p.grad is not None  # the real zero_grad did not run
