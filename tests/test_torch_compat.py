"""Private torch entry points against their public fallbacks."""

import numpy as np
import pytest
import torch

from sklearn_deepnet import DeepMLPClassifier, _torch_compat
from sklearn_deepnet._losses import multiclass_log_loss
from sklearn_deepnet._module import MLP
from sklearn_deepnet._optim import build_optimizer
from sklearn_deepnet._steps import ManualStep, Regularization

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
    ("tanh", ()), ("sigmoid", ()),
])
def test_activation_backward_matches_fallback_and_autograd(name, params):
    forward = {
        "relu": torch.relu,
        "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, *params),
        "elu": lambda z: (params[1] if len(params) > 1 else 1.0) * torch.nn.functional.elu(
            z, params[0]),
        "tanh": torch.tanh, "sigmoid": torch.sigmoid,
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
              clip_value=0.5, max_iter=3, random_state=0, device="cpu")
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
