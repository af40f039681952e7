import numpy as np
import pytest
import torch

from sklearn_deepnet import DeepMLPClassifier
from sklearn_deepnet._engine.lbfgs import LbfgsSettings
from sklearn_deepnet._engine.optim import SOLVERS
from sklearn_deepnet._validation import InvalidParameterError

EXPECTED = {
    "sgd": (torch.optim.SGD, {"momentum": 0.8, "nesterov": True}),  # MLPClassifier's meaning
    "momentum": (torch.optim.SGD, {"momentum": 0.8, "nesterov": False}),
    "nesterov": (torch.optim.SGD, {"momentum": 0.8, "nesterov": True}),
    "adagrad": (torch.optim.Adagrad, {"eps": 1e-6}),
    "rmsprop": (torch.optim.RMSprop, {"alpha": 0.95, "eps": 1e-6}),
    "adam": (torch.optim.Adam, {"betas": (0.8, 0.99), "eps": 1e-6}),
    "adamax": (torch.optim.Adamax, {"betas": (0.8, 0.99), "eps": 1e-6}),
    "nadam": (torch.optim.NAdam, {"betas": (0.8, 0.99), "eps": 1e-6}),
    "adamw": (torch.optim.AdamW, {"betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.01}),
    # lbfgs: SciPy runs it; the optimizer object holds scikit-learn's limits (lr=1 unused).
    "lbfgs": (LbfgsSettings, {"lr": 1.0, "max_iter": 3, "max_fun": 15000, "tol": 1e-4}),
}


def test_table_and_expectations_agree():
    assert set(EXPECTED) == set(SOLVERS)


@pytest.mark.parametrize("solver", sorted(EXPECTED))
def test_solver_builds_that_optimizer(solver, clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier(
        (8,), solver=solver, learning_rate_init=0.02, momentum=0.8, beta_1=0.8,
        beta_2=0.99, epsilon=1e-6, rho=0.95, max_iter=3, random_state=0,
    ).fit(X, y)
    cls, expected = EXPECTED[solver]
    opt = clf.net_.optimizer_
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["lr"] == expected.get("lr", 0.02)
    for key, value in expected.items():
        assert group[key] == value, key
    assert all(g["weight_decay"] == 0 for g in opt.param_groups[1:])  # no decay on biases


def test_learning_rate_changes_training(clf_data):
    X, y = clf_data
    slow = DeepMLPClassifier((8,), solver="sgd", learning_rate_init=1e-5, max_iter=3,
                             random_state=0).fit(X, y)
    fast = DeepMLPClassifier((8,), solver="sgd", learning_rate_init=0.5, max_iter=3,
                             random_state=0).fit(X, y)
    assert fast.loss_curve_[-1] < slow.loss_curve_[-1] - 0.1


def test_weight_decay_is_decoupled_and_shrinks_weights(clf_data):
    X, y = clf_data
    norms = {}
    for wd in (0.0, 0.5):
        clf = DeepMLPClassifier((16,), solver="adamw", weight_decay=wd, alpha=0.0,
                                learning_rate_init=0.01, batch_size=20, max_iter=20,
                                random_state=0).fit(X, y)
        norms[wd] = clf.net_.module_.hidden[0].linear.weight.norm().item()
        assert clf.net_.optimizer_.param_groups[0]["weight_decay"] == wd
    assert norms[0.5] < 0.7 * norms[0.0]


@pytest.mark.parametrize("solver", ["sgd", "momentum", "rmsprop", "adagrad", "adamax"])
def test_weight_decay_rejected_without_decoupled_form(solver, clf_data):
    X, y = clf_data
    with pytest.raises(InvalidParameterError, match="weight_decay.*decoupled"):
        DeepMLPClassifier(solver=solver, weight_decay=0.1).fit(X, y)


def test_unknown_solver(clf_data):
    X, y = clf_data
    with pytest.raises(InvalidParameterError, match="'solver' parameter.*adam"):
        DeepMLPClassifier(solver="newton").fit(X, y)


def test_partial_fit_keeps_optimizer_state(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((8,), random_state=0)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    opt = clf.net_.optimizer_
    clf.partial_fit(X, y)
    assert clf.net_.optimizer_ is opt
    assert next(iter(opt.state.values()))["step"].item() == 2


def test_adam_with_weight_decay_is_adamw(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((8,), solver="adam", weight_decay=0.1, max_iter=1,
                            random_state=0).fit(X, y)
    assert type(clf.net_.optimizer_) is torch.optim.AdamW
    assert clf.net_.optimizer_.param_groups[0]["weight_decay"] == 0.1


def test_sgd_means_what_it_means_in_mlp_classifier(clf_data):
    # MLPClassifier's "sgd" is Nesterov momentum 0.9 by default; momentum and
    # nesterovs_momentum change it, momentum=0 is plain SGD.
    X, y = clf_data
    kw = dict(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=0.01, batch_size=50,
              max_iter=5, tol=0, random_state=0)
    curves = {}
    for name, extra in {"default": {}, "momentum=0.99": dict(momentum=0.99),
                        "classical": dict(nesterovs_momentum=False),
                        "plain": dict(momentum=0.0)}.items():
        clf = DeepMLPClassifier(**kw, **extra).fit(X, y)
        curves[name] = clf.loss_curve_
        group = clf.net_.optimizer_.param_groups[0]
        assert group["momentum"] == extra.get("momentum", 0.9)
        assert group["nesterov"] == (name in ("default", "momentum=0.99"))
    assert len({tuple(c) for c in curves.values()}) == 4  # every setting changes training
    assert curves["default"][-1] < curves["plain"][-1]  # momentum speeds this up


# ------------------------------------------------------------------ lbfgs
def _digits3():
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import MinMaxScaler

    X, y = load_digits(n_class=3, return_X_y=True)
    return MinMaxScaler().fit_transform(X[:200]), y[:200]


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_lbfgs_fits_small_data_like_mlp_classifier(activation):
    from sklearn.neural_network import MLPClassifier

    X, y = _digits3()
    kw = dict(solver="lbfgs", hidden_layer_sizes=50, max_iter=150, random_state=1,
              activation=activation)
    ours = DeepMLPClassifier(**kw).fit(X, y)
    theirs = MLPClassifier(**kw).fit(X, y)
    assert ours.score(X, y) >= theirs.score(X, y) - 0.01 and ours.score(X, y) > 0.95
    assert ours.engine_ == "lbfgs" and 0 < ours.n_iter_ <= 150
    # one value per L-BFGS iteration (scikit-learn sets no loss_curve_ for lbfgs)
    assert len(ours.loss_curve_) == ours.n_iter_
    assert ours.loss_ == pytest.approx(ours.loss_curve_[-1], rel=1e-12)


def test_lbfgs_limits_warm_start_and_partial_fit():
    from sklearn.exceptions import ConvergenceWarning

    X, y = _digits3()
    with pytest.warns(ConvergenceWarning, match="reached max_fun=10"):
        clf = DeepMLPClassifier((50,), solver="lbfgs", max_fun=10, random_state=1).fit(X, y)
    assert clf.n_iter_ <= 10
    with pytest.warns(ConvergenceWarning, match="reached max_iter=3"):
        clf = DeepMLPClassifier((50,), solver="lbfgs", max_iter=3, random_state=1,
                                warm_start=True).fit(X, y)
    assert clf.n_iter_ == 3
    first = clf.loss_
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)  # continues from the weights with a new L-BFGS run
    assert clf.loss_ < first and len(clf.loss_curve_) == 3 + clf.n_iter_
    assert not clf.net_.optimizer_.state  # no curvature pairs kept between runs
    assert not hasattr(clf, "partial_fit")  # as in scikit-learn
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as info:
        clf.partial_fit(X, y)
    assert "only available for stochastic optimizers" in str(info.value.__cause__)
    assert hasattr(clf.set_params(solver="adam"), "partial_fit")


@pytest.mark.parametrize("param, value", [("dropout", 0.2), ("max_norm", 1.0),
                                          ("clip_norm", 1.0), ("clip_value", 0.5)])
def test_lbfgs_refuses_stochastic_settings(param, value):
    X, y = _digits3()
    with pytest.raises(InvalidParameterError, match=rf"'{param}'.*deterministic full-batch"):
        DeepMLPClassifier((8,), solver="lbfgs", **{param: value}).fit(X, y)


def test_lbfgs_regression_sample_weight_and_chunks(reg_data, monkeypatch):
    from sklearn_deepnet import DeepMLPRegressor
    from sklearn_deepnet._engine import lbfgs as _lbfgs

    X, y = reg_data
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    full = DeepMLPRegressor((16,), solver="lbfgs", max_iter=50, random_state=0).fit(
        X, y, sample_weight=w)
    assert full.score(X, y) > 0.9
    # The objective is evaluated in chunks: the chunk size changes only rounding
    # (the first iterations agree; later ones drift apart as L-BFGS does).
    short = dict(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=2, random_state=0)
    whole = DeepMLPRegressor(**short).fit(X, y, sample_weight=w)
    monkeypatch.setattr(_lbfgs, "LBFGS_CHUNK_ROWS", 7)
    chunked = DeepMLPRegressor(**short).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(chunked.predict(X), whole.predict(X), rtol=1e-4, atol=1e-4)
    assert chunked.loss_ == pytest.approx(whole.loss_, rel=1e-5)
    # Zero weights are the same as leaving the rows out.
    w0 = w.copy()
    w0[::3] = 0
    a = DeepMLPRegressor((16,), solver="lbfgs", max_iter=20, random_state=0).fit(
        X, y, sample_weight=w0)
    keep = w0 > 0
    b = DeepMLPRegressor((16,), solver="lbfgs", max_iter=20, random_state=0).fit(
        X[keep], y[keep], sample_weight=w0[keep])
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-4, atol=1e-5)


def test_lbfgs_ignores_early_stopping_and_refuses_batch_callbacks_as_sklearn():
    from skorch.callbacks import GradientNormClipping, LRScheduler

    X, y = _digits3()
    clf = DeepMLPClassifier((16,), solver="lbfgs", early_stopping=True, max_iter=20,
                            random_state=0).fit(X[:12], y[:12])  # too small to split
    assert clf.validation_scores_ is None and clf.history_[-1]["train_samples"] == 12
    for cb in (GradientNormClipping(1.0), LRScheduler("StepLR", step_size=1,
                                                      step_every="batch")):
        with pytest.raises(InvalidParameterError, match="no mini-batches"):
            DeepMLPClassifier((8,), solver="lbfgs", callbacks=[cb]).fit(X, y)


def test_lbfgs_with_batch_norm_sees_all_rows_at_once(monkeypatch):
    from sklearn_deepnet._engine import lbfgs as _lbfgs

    X, y = _digits3()
    monkeypatch.setattr(_lbfgs, "LBFGS_CHUNK_ROWS", 199)  # would leave a 1-row chunk
    clf = DeepMLPClassifier((16,), solver="lbfgs", batch_norm="before", max_iter=20,
                            random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.9


@pytest.mark.parametrize("nesterov", [True, False])
def test_sgd_is_scikit_learns_update_also_when_the_rate_changes(nesterov):
    # Issue 24: scikit-learn keeps the rate inside the velocity
    # (v = m*v - lr*g; w += v), torch outside (b = m*b + g; w -= lr*b): with a
    # changing rate (invscaling, adaptive) solver="sgd" computed another update.
    from sklearn.neural_network._stochastic_optimizers import SGDOptimizer

    from sklearn_deepnet._engine.kernels import optimizer_step
    from sklearn_deepnet._engine.optim import build_optimizer, scikit_learn_velocity_

    HP = dict(learning_rate_init=0.2, momentum=0.9, nesterovs_momentum=True, beta_1=0.9,
              beta_2=0.999, epsilon=1e-8, rho=0.9, weight_decay=0.0)

    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((4, 3))
    ours = torch.nn.Parameter(torch.tensor(w0))
    opt = build_optimizer("sgd", [("0.linear.weight", ours)],
                          {**HP, "momentum": 0.9, "nesterovs_momentum": nesterov,
                           "learning_rate_init": 0.2})
    theirs = [w0.copy()]
    ref = SGDOptimizer(theirs, learning_rate_init=0.2, momentum=0.9, nesterov=nesterov)
    for step in range(12):
        lr = 0.2 / (1 + step) ** 0.5  # a decaying rate, as invscaling gives
        g = rng.standard_normal((4, 3))
        for group in opt.param_groups:
            group["lr"] = lr
        ours.grad = torch.tensor(g)
        scikit_learn_velocity_(opt)
        optimizer_step(opt)
        ref.learning_rate = lr
        ref.update_params(theirs, [g])
    np.testing.assert_allclose(ours.detach().numpy(), theirs[0], rtol=1e-12, atol=1e-12)
