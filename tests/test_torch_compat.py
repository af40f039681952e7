"""Private torch entry points against their public fallbacks."""

import copy

import numpy as np
import pytest
import torch

from sklearn_deepnet import DeepMLPClassifier, _torch_compat
from sklearn_deepnet._losses import multiclass_log_loss
from sklearn_deepnet._manual_step import ManualStep
from sklearn_deepnet._module import MLP
from sklearn_deepnet._optim import build_optimizer
from sklearn_deepnet._steps import Regularization

HP = dict(learning_rate_init=1e-2, momentum=0.9, nesterovs_momentum=True, beta_1=0.9,
          beta_2=0.999, epsilon=1e-8, rho=0.9, weight_decay=0.0)


@pytest.fixture
def fallbacks():
    """Every private entry point switched off for the duration of a test."""
    restore = _torch_compat._use_fallbacks_for_tests()
    yield
    restore()


def test_this_torch_has_every_private_entry_point():
    # A torch upgrade that drops one is worth knowing about: the fallback
    # keeps things working, but slower.
    missing = [name for name in _torch_compat._PRIVATE if getattr(_torch_compat, name) is None]
    assert missing == []


def _tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(5, 3, generator=g), torch.randn(7, generator=g)]


@pytest.mark.parametrize("ord_", [1, 2])
def test_foreach_norm_matches_fallback(ord_):
    fast = _torch_compat.foreach_norm(_tensors(), ord_)
    restore = _torch_compat._use_fallbacks_for_tests()
    try:
        slow = _torch_compat.foreach_norm(_tensors(), ord_)
    finally:
        restore()
    torch.testing.assert_close(torch.stack(fast), torch.stack(slow))
    expected = [torch.linalg.vector_norm(t, ord_) for t in _tensors()]
    torch.testing.assert_close(torch.stack(fast), torch.stack(expected))


def test_foreach_clamp_matches_fallback():
    fast, slow = _tensors(), _tensors()
    _torch_compat.foreach_clamp_(fast, -0.5, 0.3)
    restore = _torch_compat._use_fallbacks_for_tests()
    try:
        _torch_compat.foreach_clamp_(slow, -0.5, 0.3)
    finally:
        restore()
    for a, b in zip(fast, slow, strict=True):
        assert torch.equal(a, b) and a.max() <= 0.3 and a.min() >= -0.5


@pytest.mark.parametrize("name, params", [
    ("relu", ()), ("leaky_relu", (0.1,)), ("elu", (1.3,)), ("elu", (1.67, 1.05)),
    ("tanh", ()), ("sigmoid", ()), ("gelu", ("none",)), ("gelu", ("tanh",)), ("silu", ()),
    ("mish", ()),
])
def test_activation_backward_matches_fallback_and_autograd(name, params):
    F = torch.nn.functional
    forward = {
        "relu": torch.relu,
        "leaky_relu": lambda z: F.leaky_relu(z, *params),
        "elu": lambda z: (params[1] if len(params) > 1 else 1.0) * F.elu(z, params[0]),
        "tanh": torch.tanh, "sigmoid": torch.sigmoid,
        "gelu": lambda z: F.gelu(z, approximate=params[0]), "silu": F.silu, "mish": F.mish,
    }[name]
    z = torch.linspace(-3, 3, 61, requires_grad=True)
    a = forward(z)
    g = torch.rand(61, generator=torch.Generator().manual_seed(0))
    (expected,) = torch.autograd.grad(a, z, g)
    backward = _torch_compat.ACTIVATION_BACKWARD[name]
    fast = backward(g, z.detach(), a.detach(), *params)
    restore = _torch_compat._use_fallbacks_for_tests()
    try:
        slow = backward(g, z.detach(), a.detach(), *params)
    finally:
        restore()
    torch.testing.assert_close(fast, expected)
    torch.testing.assert_close(slow, expected)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_forward_backward_match_fallback_and_autograd(training):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(24, 5, generator=g) * 3 + 1
    upstream = torch.randn(24, 5, generator=g)
    bn = torch.nn.BatchNorm1d(5, momentum=0.3, eps=1e-3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    bn.train(training)
    results = []
    for use_fallbacks in (False, True, None):  # kernels, fallbacks, autograd
        m = copy.deepcopy(bn)
        if use_fallbacks is None:
            xr = x.clone().requires_grad_(True)
            out = m(xr)
            gi, gw, gb = torch.autograd.grad(out, (xr, m.weight, m.bias), upstream)
        else:
            restore = _torch_compat._use_fallbacks_for_tests() if use_fallbacks else None
            try:
                with torch.no_grad():
                    args = (m.weight, m.bias, m.running_mean, m.running_var)
                    out, saved = _torch_compat.batch_norm_forward(x, *args, training,
                                                                  m.momentum, m.eps)
                    gi, gw, gb = _torch_compat.batch_norm_backward(
                        upstream, saved, m.weight, m.running_mean, m.running_var, m.eps)
            finally:
                if restore:
                    restore()
        results.append((out.detach(), gi, gw, gb, m.running_mean, m.running_var))
    for got in results[:2]:
        for a, b in zip(got, results[2], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_foreach_add_matches_fallback():
    fast, slow = _tensors(), _tensors()
    _torch_compat.foreach_add_(fast, 1)
    restore = _torch_compat._use_fallbacks_for_tests()
    try:
        _torch_compat.foreach_add_(slow, 1)
    finally:
        restore()
    for a, b, c in zip(fast, slow, _tensors(), strict=True):
        assert torch.equal(a, b) and torch.equal(a, c + 1)


def test_has_hooks():
    act = torch.nn.ReLU()
    assert not _torch_compat.has_hooks(act)
    act.register_forward_pre_hook(lambda m, i: None)
    assert _torch_compat.has_hooks(act)
    assert _torch_compat.has_hooks(object())  # cannot tell: assume hooks


def test_direct_adam_is_off_without_the_fused_kernel(fallbacks):
    torch.manual_seed(0)
    module = MLP(7, [9], 3).initialize_()
    opt = build_optimizer("adam", module.named_parameters(), HP)
    step = ManualStep(module, multiclass_log_loss, opt, Regularization())
    X, y, w = torch.randn(16, 7), torch.randint(0, 3, (16,)), torch.ones(16)
    for _ in range(3):
        step.train_batch(X, y, w)
    assert step.direct_adam is None  # Optimizer.step() throughout


def test_training_with_every_fallback_matches_the_fast_calls(clf_data):
    X, y = clf_data
    kw = dict(hidden_layer_sizes=(16, 16), activation="elu", alpha=0.01, l1_ratio=0.5,
              clip_value=0.5, batch_norm="after", batch_norm_input=True, dropout=0.1,
              max_iter=3, random_state=0, device="cpu")
    fast = DeepMLPClassifier(**kw).fit(X, y)
    restore = _torch_compat._use_fallbacks_for_tests()
    try:
        slow = DeepMLPClassifier(**kw).fit(X, y)
    finally:
        restore()
    assert fast.engine_ == slow.engine_ == "cpu-manual"
    np.testing.assert_allclose(slow.loss_curve_, fast.loss_curve_, rtol=1e-5)
    for p, q in zip(fast.module_.parameters(), slow.module_.parameters(), strict=True):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-4,
                                   atol=1e-6)
