"""Private torch entry points against their public fallbacks."""

import copy

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from sklearn_deepnet import DeepMLPClassifier
from sklearn_deepnet._engine import kernels as _torch_compat
from sklearn_deepnet._engine import kernels_backward, kernels_optim
from sklearn_deepnet._engine.fast_step import ManualStep
from sklearn_deepnet._engine.losses import multiclass_log_loss
from sklearn_deepnet._engine.module import MLP
from sklearn_deepnet._engine.optim import build_optimizer
from sklearn_deepnet._engine.steps import Regularization

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
    missing = [name for part, names in _torch_compat._PRIVATE.items() for name in names
               if getattr(part, name) is None]
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


def _kernel_cases():
    """(activation name, constants) for every activation row with a private kernel,
    every setting it is checked with: generated from the table."""
    from sklearn_deepnet._engine.activations import ACTIVATIONS

    return [(name, c) for name, row in sorted(ACTIVATIONS.items()) if row.kernel is not None
            for c in row.check] + [("elu", {"alpha": 1.3})]


@pytest.mark.parametrize("name, constants", _kernel_cases(), ids=str)
def test_activation_backward_matches_fallback_and_autograd(name, constants):
    from sklearn_deepnet._engine.activations import ACTIVATIONS, backward_kernel

    row = ACTIVATIONS[name]
    z = torch.linspace(-3, 3, 61, requires_grad=True)
    a = row.forward(z, **constants)
    g = torch.rand(61, generator=torch.Generator().manual_seed(0))
    (expected,) = torch.autograd.grad(a, z, g)
    backward = backward_kernel(row)
    fast = backward(g, z.detach(), a.detach(), **constants)
    public = row.backward(g, z.detach(), a.detach(), **constants)
    restore = _torch_compat._use_fallbacks_for_tests()
    try:
        slow = backward(g, z.detach(), a.detach(), **constants)
    finally:
        restore()
    torch.testing.assert_close(fast, expected)
    torch.testing.assert_close(slow, expected)
    torch.testing.assert_close(public, expected)


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
    # Without its kernels the hand-written step is slower than autograd (issue
    # 23): the eager step trains, and says why.
    assert fast.engine_ == "cpu-manual" and fast.engine_reason_ is None
    assert slow.engine_ == "eager" and "private elu backward kernel is not used (not in " in (
        slow.engine_reason_)
    np.testing.assert_allclose(slow.loss_curve_, fast.loss_curve_, rtol=1e-5)
    for p, q in zip(fast.module_.parameters(), slow.module_.parameters(), strict=True):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-4,
                                   atol=1e-6)


# --- optimizer calls without importing torch._dynamo --------------------------

STOCHASTIC = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamax",
              "nadam", "adamw"]


def _optimizer_pair(solver, hp):
    """Two identical modules, each with its optimizer built by ``build_optimizer``."""
    pair = []
    for _ in range(2):
        torch.manual_seed(0)
        module = MLP(6, [8, 5], 3).initialize_()
        pair.append((module, build_optimizer(solver, module.named_parameters(), hp)))
    return pair


def _give_gradients(module, seed):
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.grad = torch.randn(p.shape, generator=g)


@pytest.mark.parametrize("solver", STOCHASTIC)
def test_optimizer_step_equals_torch_step(solver):
    hp = {**HP, "weight_decay": 0.01 if solver == "adamw" else 0.0}
    (m1, o1), (m2, o2) = _optimizer_pair(solver, hp)
    for seed in range(4):
        _give_gradients(m1, seed)
        _give_gradients(m2, seed)
        o1.step()
        _torch_compat.optimizer_step(o2)
    for p, q in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p, q)
    s1, s2 = o1.state_dict(), _torch_compat.optimizer_state_dict(o2)
    assert s1["param_groups"] == s2["param_groups"]
    for k in s1["state"]:
        for name, value in s1["state"][k].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(s2["state"][k][name]))


def test_make_optimizer_is_the_class_call():
    module = MLP(6, [8], 3).initialize_()
    groups = [{"params": list(module.parameters())}]
    made = _torch_compat.make_optimizer(torch.optim.Adam, groups, lr=0.1, foreach=True)
    plain = torch.optim.Adam([{"params": list(module.parameters())}], lr=0.1, foreach=True)
    assert type(made) is torch.optim.Adam
    assert made.param_groups == plain.param_groups and made.defaults == plain.defaults
    assert "add_param_group" not in vars(made)  # the undecorated method was temporary
    made.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))]})  # still works
    assert len(made.param_groups) == 2


def test_load_state_dict_and_zero_grad_equal_torch():
    (m1, o1), (m2, o2) = _optimizer_pair("adam", HP)
    _give_gradients(m1, 0)
    o1.step()
    _torch_compat.optimizer_load_state_dict(o2, o1.state_dict())
    assert o2.state_dict()["param_groups"] == o1.state_dict()["param_groups"]
    for a, b in zip(o1.state.values(), o2.state.values(), strict=True):
        assert torch.equal(a["exp_avg"], b["exp_avg"])
    _give_gradients(m2, 1)
    _torch_compat.optimizer_zero_grad(o2, set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in m2.parameters())
    _torch_compat.optimizer_zero_grad(o2)
    assert all(p.grad is None for p in m2.parameters())


def test_optimizer_step_runs_step_hooks():
    # A hook registered on the optimizer (a callback may) must still run: the
    # helper then goes through optimizer.step() itself.
    (module, opt), _ = _optimizer_pair("adam", HP)
    calls = []
    opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post"))
    _give_gradients(module, 0)
    _torch_compat.optimizer_step(opt)
    assert calls == ["pre", "post"]


def test_optimizer_step_keeps_grad_mode():
    (module, opt), _ = _optimizer_pair("sgd", HP)
    _give_gradients(module, 0)
    with torch.enable_grad():
        _torch_compat.optimizer_step(opt)
        assert torch.is_grad_enabled()
    with torch.no_grad():
        _torch_compat.optimizer_step(opt)
        assert not torch.is_grad_enabled()


def test_fit_pickle_predict_do_not_import_dynamo():
    # torch.optim's decorators import torch._dynamo (about a second) on their
    # first call; a fresh process's fit, pickling, unpickling, partial_fit and
    # predict must not pay it. Measured here: first 100-row fit 1.15 s -> 0.23 s.
    code = """
import pickle, sys
import numpy as np
from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor
X = np.random.default_rng(0).normal(size=(120, 5)).astype("float32")
y = (X[:, 0] > 0).astype(int)
configs = [{}, {"solver": "sgd"}, {"solver": "nadam"}, {"solver": "rmsprop"},
           {"solver": "lbfgs"}, {"activation": "prelu"},
           {"batch_norm": "before", "dropout": 0.2, "solver": "momentum"},
           {"early_stopping": True, "learning_rate": "1cycle", "diagnostics": True}]
for params in configs:
    model = pickle.loads(pickle.dumps(DeepMLPClassifier(max_iter=2, **params).fit(X, y)))
    model.predict(X)
    if params.get("solver") != "lbfgs" and not params.get("early_stopping"):
        model.partial_fit(X, y)
DeepMLPRegressor(max_iter=2, warm_start=True).fit(X, X[:, 0]).fit(X, X[:, 1])
print("torch._dynamo" in sys.modules)
"""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                         text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_optimizer_step_marks_the_step_for_an_lr_scheduler():
    # torch's schedulers wrap the instance's step to see that it ran; without
    # the mark, their first step warns that it came before the optimizer's.
    import warnings

    (module, opt), _ = _optimizer_pair("sgd", HP)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    _give_gradients(module, 0)
    _torch_compat.optimizer_step(opt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scheduler.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(HP["learning_rate_init"] / 2)


def test_fit_with_skorch_lr_scheduler_does_not_warn():
    import warnings

    from skorch.callbacks import LRScheduler

    X = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        clf = DeepMLPClassifier(
            (8,), max_iter=3, solver="sgd", random_state=0,
            callbacks=[LRScheduler(policy="StepLR", step_size=1, gamma=0.5)]).fit(X, y)
    assert clf.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(1e-3 / 8)


def test_optimizer_step_runs_a_step_set_on_the_instance():
    (module, opt), _ = _optimizer_pair("adam", HP)
    calls, original = [], opt.step

    def step(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    opt.step = step
    _give_gradients(module, 0)
    _torch_compat.optimizer_step(opt)
    assert calls == [1]


def test_optimizer_step_keeps_the_profiler_label():
    assert hasattr(torch.autograd.profiler, "_is_profiler_enabled")
    (module, opt), _ = _optimizer_pair("adam", HP)
    _give_gradients(module, 0)
    with torch.autograd.profiler.profile() as prof:
        _torch_compat.optimizer_step(opt)
    assert "Optimizer.step#Adam.step" in {e.name for e in prof.function_events}



# --- private kernels are checked, not trusted (issue 23) ----------------------
@pytest.fixture
def recheck():
    """Every kernel checked again on its next use, before and after the test."""
    _torch_compat._recheck_for_tests()
    yield
    _torch_compat._recheck_for_tests()


def _raises_type_error(*args, **kwargs):
    raise TypeError("_fused_adam_() got an unexpected keyword argument 'lr'")


def test_a_direct_kernel_whose_signature_changed_is_not_used(clf_data, monkeypatch, recheck):
    # Simulated: the private fused Adam kernel raises TypeError when called as
    # the direct step calls it. The fit crashed; now optimizer.step() runs.
    X, y = clf_data
    kw = dict(hidden_layer_sizes=(16, 16), max_iter=3, random_state=0, device="cpu")
    reference = DeepMLPClassifier(**kw).fit(X, y)
    monkeypatch.setattr(kernels_optim, "_fused_adam_", _raises_type_error)
    _torch_compat._recheck_for_tests()  # as in a new process with that torch
    clf = DeepMLPClassifier(**kw).fit(X, y)
    assert clf.engine_ == "cpu-manual"
    assert "_fused_adam_ (TypeError: _fused_adam_() got an unexpected" in clf.engine_reason_
    np.testing.assert_allclose(clf.predict_proba(X), reference.predict_proba(X), rtol=1e-5,
                               atol=1e-6)


def test_a_broken_fused_optimizer_kernel_means_foreach(clf_data, monkeypatch, recheck):
    # torch's own fused Adam raising: the optimizer is built with foreach.
    X, y = clf_data
    monkeypatch.setattr(torch, "_fused_adam_", _raises_type_error)
    monkeypatch.setattr(kernels_optim, "_fused_adam_", _raises_type_error)
    clf = DeepMLPClassifier((16,), max_iter=2, random_state=0, device="cpu").fit(X, y)
    group = clf.net_.optimizer_.param_groups[0]
    assert not group.get("fused") and group.get("foreach")
    assert "fused Adam (TypeError" in clf.engine_reason_


@pytest.mark.parametrize("kernel, activation", [("_elu_kernel", "elu"),
                                                ("_native_batch_norm", "relu")])
def test_a_kernel_that_computes_something_else_means_the_eager_step(
        kernel, activation, clf_data, monkeypatch, recheck):
    X, y = clf_data
    original = getattr(kernels_backward, kernel)

    def off_by_a_bit(*args, **kwargs):
        out = original(*args, **kwargs)
        return (out[0] * 1.01, *out[1:]) if isinstance(out, tuple) else out * 1.01

    monkeypatch.setattr(kernels_backward, kernel, off_by_a_bit)
    clf = DeepMLPClassifier((16,), activation=activation, batch_norm="before", max_iter=2,
                            random_state=0, device="cpu").fit(X, y)
    assert clf.engine_ == "eager"
    assert "differs from the public formula" in clf.engine_reason_
    assert _torch_compat.kernel_fallbacks()  # for the rest of the process


def test_only_the_kernels_a_fit_could_use_are_reported(clf_data, monkeypatch, recheck):
    # Found in review: after the mish kernel failed once, every later fit
    # reported it; a fused optimizer's fallback was not reported on eager fits.
    X, y = clf_data
    original = kernels_backward._mish_kernel
    monkeypatch.setattr(kernels_backward, "_mish_kernel", lambda *a: original(*a) * 1.01)
    mish = DeepMLPClassifier((8,), activation="mish", max_iter=1, random_state=0).fit(X, y)
    assert mish.engine_ == "eager" and "mish backward kernel" in mish.engine_reason_
    relu = DeepMLPClassifier((8,), solver="sgd", max_iter=1, random_state=0).fit(X, y)
    assert relu.engine_ == "cpu-manual" and relu.engine_reason_ is None
    monkeypatch.setattr(torch, "_fused_adam_", _raises_type_error)
    _torch_compat._recheck_for_tests()
    eager = DeepMLPClassifier((8,), activation=torch.nn.Softplus, max_iter=1,
                              random_state=0).fit(X, y)
    assert eager.engine_ == "eager" and "fused Adam (TypeError" in eager.engine_reason_


def test_foreach_copy_matches_its_fallback():
    sources = [torch.randn(3, 4), torch.randn(5), torch.randn(2, 2)[:, :1]]
    fast = [torch.zeros_like(s) for s in sources]
    _torch_compat.foreach_copy_(fast, sources)
    restore = _torch_compat._use_fallbacks_for_tests()
    try:
        slow = [torch.zeros_like(s) for s in sources]
        _torch_compat.foreach_copy_(slow, sources)
    finally:
        restore()
    for a, b, s in zip(fast, slow, sources, strict=True):
        assert torch.equal(a, s) and torch.equal(b, s)
