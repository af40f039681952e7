import os
import pickle
import signal
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor
from sklearn_deepnet._engine.activations import ACTIVATIONS
from sklearn_deepnet._engine.init import INITIALIZERS
from sklearn_deepnet._engine.optim import SOLVERS
from sklearn_deepnet._validation import InvalidParameterError

FAST = dict(hidden_layer_sizes=(16,), max_iter=5, random_state=0)


@pytest.mark.parametrize(
    "param, value, allowed",
    [("hidden_layer_sizes", (10, 0), "sequence of positive ints"),
     ("hidden_layer_sizes", "big", "array-like"),
     ("activation", "sigmoidal", "str among"),
     ("kernel_initializer", "xavier", "str among"),
     ("batch_norm", "middle", "str among"),
     ("batch_norm_momentum", 1.5, r"range \[0.0, 1.0\]"),
     ("dropout", 1.0, r"range \[0.0, 1.0\)"),
     ("max_norm", 0.0, r"range \(0.0, inf\)"),
     ("alpha", -1.0, r"range \[0.0, inf\)"),
     ("l1_ratio", 2.0, r"range \[0.0, 1.0\]"),
     ("clip_norm", -1.0, r"range \(0.0, inf\)"),
     ("solver", "newton", "str among"),
     ("learning_rate", "cosine", "str among"),
     ("learning_rate_init", 0.0, r"range \(0.0, inf\)"),
     ("batch_size", 0, "range"),
     ("max_iter", 0, "range"),
     ("validation_fraction", 1.0, r"range \(0.0, 1.0\)"),
     ("device", "gpu", "'auto', 'cpu', 'cuda' or 'cuda:N'"),
     ("device", "cpu:3", "'auto', 'cpu', 'cuda' or 'cuda:N'"),
     ("random_state", "seed", "RandomState")],
)
def test_bad_hyperparameter_names_parameter_and_allowed_values(param, value, allowed,
                                                               clf_data):
    X, y = clf_data
    with pytest.raises(InvalidParameterError, match=f"'{param}' parameter") as exc:
        DeepMLPClassifier(**{param: value}).fit(X, y)
    assert pytest.importorskip("re").search(allowed, str(exc.value)), str(exc.value)


def test_regressor_specific_parameters(reg_data):
    X, y = reg_data
    with pytest.raises(InvalidParameterError, match="'loss' parameter.*poisson"):
        DeepMLPRegressor(loss="hinge").fit(X, y)
    with pytest.raises(InvalidParameterError, match="'huber_delta' parameter"):
        DeepMLPRegressor(huber_delta=0).fit(X, y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_unavailable_device_is_a_clear_error(clf_data):
    X, y = clf_data
    with pytest.raises(ValueError, match="CUDA is not available"):
        DeepMLPClassifier(device="cuda").fit(X, y)
    assert DeepMLPClassifier(**FAST, device="auto").fit(X, y).net_.device.type == "cpu"


@pytest.mark.gpu
def test_cuda_fit_matches_cpu_quality(clf_data):
    X, y = clf_data
    gpu = DeepMLPClassifier(**FAST, device="cuda").fit(X, y)
    cpu = DeepMLPClassifier(**FAST, device="cpu").fit(X, y)
    assert next(gpu.net_.module_.parameters()).is_cuda
    assert abs(gpu.score(X, y) - cpu.score(X, y)) < 0.1
    restored = pickle.loads(pickle.dumps(gpu))
    np.testing.assert_allclose(restored.predict_proba(X), gpu.predict_proba(X), rtol=1e-5)


def test_same_random_state_same_predictions(clf_data):
    X, y = clf_data
    kw = dict(hidden_layer_sizes=(16, 16), dropout=0.3, batch_norm="after",
              early_stopping=True, max_iter=8, random_state=42)
    a = DeepMLPClassifier(**kw).fit(X, y)
    b = clone(a).fit(X, y)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    for pa, pb in zip(a.net_.module_.parameters(), b.net_.module_.parameters(), strict=False):
        assert torch.equal(pa, pb)
    c = DeepMLPClassifier(**{**kw, "random_state": 7}).fit(X, y)
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


def test_caller_random_state_untouched(clf_data):
    X, y = clf_data
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002 - the legacy global state is what callers share
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()  # noqa: NPY002
    DeepMLPClassifier(**FAST, dropout=0.5, activation="rrelu").fit(X, y).predict(X)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])  # noqa: NPY002


def test_partial_fit_calls_draw_fresh_randomness(clf_data):
    # With a negligible rate the weights stay put, so only the dropout masks
    # (and the batch order) can change the loss between calls.
    X, y = clf_data
    kw = dict(hidden_layer_sizes=(16,), dropout=0.5, batch_size=50, random_state=0,
              learning_rate_init=1e-9)
    clf = DeepMLPClassifier(**kw)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    twin = clone(clf).partial_fit(X, y, classes=[0, 1, 2])
    assert twin.loss_curve_ == clf.loss_curve_  # reproducible
    clf.partial_fit(X, y)
    assert len(clf.loss_curve_) == 2 and abs(clf.loss_curve_[1] - clf.loss_curve_[0]) > 1e-2
    still = DeepMLPClassifier(**{**kw, "dropout": 0.0, "shuffle": False})
    still.partial_fit(X, y, classes=[0, 1, 2]).partial_fit(X, y)
    assert still.loss_curve_[1] == pytest.approx(still.loss_curve_[0], rel=1e-6)


def test_warm_start_continues(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((16,), max_iter=5, warm_start=True, random_state=0,
                            learning_rate_init=0.01)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    weights = clf.net_.module_.hidden[0].linear.weight.detach().clone()
    loss_after_first = clf.loss_curve_[-1]
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    # n_iter_ counts this call's epochs (as MLPClassifier), the curve all of them.
    assert clf.n_iter_ == 5 and len(clf.loss_curve_) == 10
    assert clf.loss_curve_[5] < clf.loss_curve_[0]
    assert clf.loss_curve_[-1] < loss_after_first
    assert not torch.equal(weights, clf.net_.module_.hidden[0].linear.weight)
    clf.set_params(hidden_layer_sizes=(8,))
    with pytest.raises(ValueError, match="hidden_layer_sizes changed"):
        clf.fit(X, y)
    cold = clone(clf).set_params(warm_start=False, hidden_layer_sizes=(16,), max_iter=5)
    with pytest.warns(ConvergenceWarning):
        cold.fit(X, y)
    assert cold.n_iter_ == 5


def test_failed_fit_keeps_the_fitted_model(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier(**FAST).fit(X, y)
    before = clf.predict_proba(X)
    attrs = set(vars(clf))
    bad_X = X.copy()
    bad_X[3, 2] = np.nan
    for args in [(bad_X, y), (X, y + 0.5), (X, ["a"] * len(X)), (X, y[:-1])]:
        with pytest.raises(ValueError):
            clf.fit(*args)
        assert set(vars(clf)) == attrs
        assert clf.n_features_in_ == X.shape[1]
        np.testing.assert_array_equal(clf.predict_proba(X), before)
    with pytest.raises(InvalidParameterError):
        clf.set_params(dropout=2.0).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), before)


def test_convergence_reporting(clf_data, capsys):
    X, y = clf_data
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\)"):
        DeepMLPClassifier(**{**FAST, "max_iter": 3}).fit(X, y)
    clf = DeepMLPClassifier((16,), max_iter=500, tol=0.5, n_iter_no_change=2,
                            random_state=0, verbose=True).fit(X, y)
    # sklearn's rule: the first epoch sets the best loss, then stop once more than
    # n_iter_no_change=2 epochs in a row improved by less than tol
    assert clf.n_iter_ == 4
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "did not improve more than tol=0.5" in out


def test_sample_weight(clf_data):
    X, y = clf_data
    w = np.ones(len(y))
    w[:50] = 0.0
    with_zero = DeepMLPClassifier(**FAST).fit(X, y, sample_weight=w)
    dropped = DeepMLPClassifier(**FAST).fit(X[50:], y[50:])
    np.testing.assert_array_equal(with_zero.predict_proba(X), dropped.predict_proba(X))
    trained = dict(hidden_layer_sizes=(16,), learning_rate_init=0.02, max_iter=30,
                   random_state=0)
    plain = DeepMLPClassifier(**trained).fit(X, y)
    heavy = DeepMLPClassifier(**trained).fit(X, y, sample_weight=np.where(y == 0, 10.0, 1.0))
    assert (heavy.predict(X) == 0).sum() > (plain.predict(X) == 0).sum()
    with pytest.raises(ValueError, match="[Nn]egative"):
        DeepMLPClassifier(**FAST).fit(X, y, sample_weight=-w)
    with pytest.raises(ValueError, match="All sample weights are zero|zero"):
        DeepMLPClassifier(**FAST).fit(X, y, sample_weight=np.zeros(len(y)))


def test_fitted_attributes(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier(**FAST).fit(X, y)
    assert clf.n_features_in_ == 8 and clf.n_iter_ == 5 and clf.t_ == 1000
    assert len(clf.loss_curve_) == 5 and clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    assert clf.history_ is clf.net_.history
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


# --------------------------------------------------------------- properties
valid_params = st.fixed_dictionaries(
    {
        "hidden_layer_sizes": st.lists(st.integers(1, 12), min_size=0, max_size=4).map(tuple),
        "activation": st.sampled_from(sorted(ACTIVATIONS)),
        "kernel_initializer": st.sampled_from(["auto", *sorted(INITIALIZERS)]),
        "batch_norm": st.sampled_from([None, "before", "after"]),
        "batch_norm_input": st.booleans(),
        "dropout": st.sampled_from([0.0, 0.3]),
        "max_norm": st.sampled_from([None, 1.0]),
        "alpha": st.sampled_from([0.0, 1e-3, 1.0]),
        "l1_ratio": st.sampled_from([0.0, 0.5, 1.0]),
        "clip_norm": st.sampled_from([None, 1.0]),
        "clip_value": st.sampled_from([None, 0.5]),
        "solver": st.sampled_from(sorted(k for k, s in SOLVERS.items() if s.stochastic)),
        "batch_size": st.sampled_from(["auto", 2, 7]),
        "max_iter": st.integers(1, 2),
        "early_stopping": st.booleans(),
    }
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=valid_params, regression=st.booleans())
def test_random_valid_configurations_fit(params, regression):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 3))
    if regression:
        est, y = DeepMLPRegressor(**params, random_state=0), X[:, 0] + rng.normal(size=24)
    else:
        est, y = DeepMLPClassifier(**params, random_state=0), np.arange(24) % 3
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            pred = est.fit(X, y).predict(X)
    assert pred.shape == (24,)
    if regression:
        assert np.isfinite(pred).all()
    else:
        assert set(pred) <= {0, 1, 2}
        proba = est.predict_proba(X)
        assert proba.shape == (24, 3) and np.isfinite(proba).all()
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    param=st.sampled_from(["dropout", "alpha", "l1_ratio", "momentum", "beta_1", "tol",
                           "validation_fraction", "batch_norm_momentum"]),
    value=st.one_of(st.floats(-100, -1e-3), st.floats(1.0001, 100), st.text(max_size=3)),
)
def test_random_invalid_values_raise(param, value):
    if param in ("alpha", "tol") and isinstance(value, float) and value > 0:
        value = -value
    X, y = np.zeros((6, 2)), [0, 1] * 3
    with pytest.raises(InvalidParameterError, match=f"'{param}' parameter"):
        DeepMLPClassifier(**{param: value}).fit(X, y)


def _wrap_steps(monkeypatch, wrapper):
    """Replace each fit's per-batch update ``train_batch`` by ``wrapper(train_batch)``."""
    from sklearn_deepnet._trainer import TrainingNet

    original = TrainingNet._make_step

    def make_step(self, *args, **kwargs):
        step = original(self, *args, **kwargs)
        step.train_batch = wrapper(step.train_batch)
        return step

    monkeypatch.setattr(TrainingNet, "_make_step", make_step)


def _ctrl_c():
    """What pressing Ctrl-C does: SIGINT to this process (KeyboardInterrupt follows)."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(1)  # the handler runs before this returns


def _interrupt_after(monkeypatch, n_steps):
    calls = {"n": 0}

    def wrapper(train_batch):
        def counted(*batch):
            calls["n"] += 1
            if calls["n"] > n_steps:
                _ctrl_c()
            return train_batch(*batch)
        return counted

    _wrap_steps(monkeypatch, wrapper)


def test_keyboard_interrupt_keeps_the_last_finished_epoch(clf_data, monkeypatch):
    X, y = clf_data
    kw = dict(hidden_layer_sizes=(8,), batch_size=50, random_state=0, tol=0.0)
    two_epochs = DeepMLPClassifier(**kw, max_iter=2, n_iter_no_change=5).fit(X, y)
    _interrupt_after(monkeypatch, 9)  # 4 batches per epoch: stops inside epoch 3
    clf = DeepMLPClassifier(**kw, max_iter=50)
    with pytest.raises(KeyboardInterrupt, match="interrupted after 2 complete epoch"):
        clf.fit(X, y)
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2 and clf.t_ == 400
    for p, q in zip(clf.net_.module_.parameters(), two_epochs.net_.module_.parameters(),
                    strict=True):
        assert torch.equal(p, q)  # exactly the weights at the end of epoch 2
    assert np.isfinite(clf.predict_proba(X)).all()
    monkeypatch.undo()
    clf.set_params(warm_start=True, max_iter=3).fit(X, y)
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 5


def test_keyboard_interrupt_in_first_epoch_leaves_the_estimator_as_before(clf_data,
                                                                         monkeypatch):
    # Issue 22, item 5: a Ctrl-C early in a refit returned normally with
    # random weights. Now it reaches the caller, and a call that finished no
    # epoch leaves the estimator exactly as it was (here: unfitted, then the
    # previously fitted model).
    from sklearn.exceptions import NotFittedError

    X, y = clf_data
    _interrupt_after(monkeypatch, 2)
    clf = DeepMLPClassifier((8,), batch_size=50, max_iter=5, random_state=0)
    with pytest.raises(KeyboardInterrupt, match="before its first epoch finished"):
        clf.fit(X, y)
    with pytest.raises(NotFittedError):
        clf.predict(X)
    monkeypatch.undo()
    clf.fit(X, y)
    before, n_iter = clf.predict_proba(X), clf.n_iter_
    for extra in ({}, {"warm_start": True}):
        _interrupt_after(monkeypatch, 2)
        clf.set_params(**extra)
        with pytest.raises(KeyboardInterrupt, match="estimator is as it was"):
            clf.fit(X[::-1], y[::-1])
        monkeypatch.undo()
        np.testing.assert_array_equal(clf.predict_proba(X), before)
        assert clf.n_iter_ == n_iter and len(clf.history_) == n_iter


@pytest.mark.parametrize("kwargs", [dict(), dict(batch_norm="after", dropout=0.1),
                                    dict(early_stopping=True)], ids=str)
def test_divergence_stops_keeps_last_finite_weights_and_warns(clf_data, kwargs):
    X, y = clf_data
    clf = DeepMLPClassifier((64, 64), solver="sgd", learning_rate_init=1e4, max_iter=30,
                            batch_size=50, random_state=0, **kwargs)
    with pytest.warns(ConvergenceWarning, match="diverged.*learning_rate_init.*clip_norm"):
        clf.fit(X * 1e3, y)
    assert clf.n_iter_ < 30
    assert all(np.isfinite(clf.loss_curve_))
    assert all(torch.isfinite(p).all() for p in clf.net_.module_.parameters())
    assert np.isfinite(clf.predict_proba(X)).all()
    for state in clf.net_.optimizer_.state.values():
        assert all(torch.isfinite(v).all() for v in state.values() if torch.is_tensor(v))


def test_failed_continuation_restores_weights_and_history(clf_data, monkeypatch):
    X, y = clf_data
    clf = DeepMLPClassifier((8,), batch_size=50, random_state=0)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    weights = [p.detach().clone() for p in clf.net_.module_.parameters()]
    before = clf.predict_proba(X)
    def wrapper(train_batch):
        def failing(*batch):
            train_batch(*batch)  # weights move, then the step fails
            raise RuntimeError("device lost")
        return failing

    _wrap_steps(monkeypatch, wrapper)
    with pytest.raises(RuntimeError, match="device lost"):
        clf.partial_fit(X, y)
    for p, w in zip(clf.net_.module_.parameters(), weights, strict=True):
        assert torch.equal(p, w)
    assert len(clf.history_) == clf.n_iter_ == 1  # the failed call left no trace
    np.testing.assert_array_equal(clf.predict_proba(X), before)


def test_split_rows_stratified_disjoint_and_proportional():
    from sklearn_deepnet._engine.data import split_rows

    labels = np.repeat([0, 1, 2, 4], [500, 300, 150, 50])  # class 3 absent
    rows = np.arange(1000, dtype=np.int32)
    train, val = split_rows(rows, 100, labels, seed=0)
    assert len(val) == 100 and len(train) == 900
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(np.r_[train, val].tolist()) == list(range(1000))
    np.testing.assert_array_equal(np.bincount(labels[val], minlength=5), [50, 30, 15, 0, 5])
    again = split_rows(rows, 100, labels, seed=0)
    assert np.array_equal(again[1], val)
    assert not np.array_equal(split_rows(rows, 100, labels, seed=1)[1], val)
    # a class with one sample cannot be stratified: plain random split
    train, val = split_rows(rows[:501], 10, labels[:501] * 0 + np.r_[[0] * 500, [1]], seed=0)
    assert len(val) == 10 and len(train) == 491
    subset = np.array([5, 600, 700, 900, 950, 10, 11, 12], dtype=np.int32)
    train, val = split_rows(subset, 4, labels, seed=0)
    assert sorted(np.r_[train, val].tolist()) == sorted(subset.tolist())


def test_rollback_leaves_one_step_counter_per_parameter(clf_data, monkeypatch):
    # Direct fused Adam shares counters during training; an interrupt in a
    # later epoch must leave torch's usual one-counter-per-parameter state.
    X, y = clf_data
    _interrupt_after(monkeypatch, 25)  # 10 batches per epoch: inside epoch 3
    clf = DeepMLPClassifier((8,), batch_size=20, max_iter=10, random_state=0)
    with pytest.raises(KeyboardInterrupt, match="interrupted after 2 complete"):
        clf.fit(X, y)
    monkeypatch.undo()
    steps = [st["step"] for st in clf.net_.optimizer_.state.values()]
    assert len({id(t) for t in steps}) == len(steps)
    assert {float(t) for t in steps} == {20.0}
    twin = pickle.loads(pickle.dumps(clf))
    clf.partial_fit(X, y)
    twin.partial_fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), twin.predict_proba(X))


def test_interrupt_during_validation_scoring_is_reported_and_consistent(clf_data,
                                                                       monkeypatch):
    import sklearn_deepnet._callbacks as callbacks

    X, y = clf_data
    original, calls = callbacks.predict_raw, {"n": 0}

    def scoring(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            _ctrl_c()
        return original(*args, **kwargs)

    monkeypatch.setattr(callbacks, "predict_raw", scoring)
    clf = DeepMLPClassifier((8,), early_stopping=True, max_iter=10, random_state=0)
    with pytest.raises(KeyboardInterrupt, match="interrupted after 2 complete"):
        clf.fit(X, y)
    assert clf.n_iter_ == len(clf.loss_curve_) == len(clf.validation_scores_) == 2


def test_warnings_as_errors_do_not_undo_the_fit(clf_data):
    import warnings

    X, y = clf_data
    clf = DeepMLPClassifier((8,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(ConvergenceWarning, match="Maximum iterations"):
            clf.fit(X, y)
    assert clf.n_iter_ == 2 and np.isfinite(clf.predict_proba(X)).all()


def test_sklearn_fitted_attributes_coefs_intercepts_loss_layers(clf_data):
    from scipy.special import softmax

    X, y = clf_data
    clf = DeepMLPClassifier((16, 7), max_iter=3, random_state=0).fit(X, y)
    sk_shapes = [(8, 16), (16, 7), (7, 3)]  # MLPClassifier's (n_in, n_out) layout
    assert [c.shape for c in clf.coefs_] == sk_shapes
    assert [b.shape for b in clf.intercepts_] == [(16,), (7,), (3,)]
    assert clf.n_layers_ == 4 and clf.n_outputs_ == 3
    assert clf.loss_ == clf.loss_curve_[-1]
    # The numbers are the network's: a numpy forward pass gives predict_proba.
    a = X
    for W, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1], strict=True):
        a = np.maximum(a @ W + b, 0)
    proba = softmax(a @ clf.coefs_[-1] + clf.intercepts_[-1], axis=1)
    np.testing.assert_allclose(proba, clf.predict_proba(X), rtol=1e-4, atol=1e-6)
    clf.coefs_[0][:] = 0  # copies: the model is unchanged
    np.testing.assert_allclose(clf.predict_proba(X), proba, rtol=1e-4, atol=1e-6)
    bn = DeepMLPClassifier((16,), batch_norm="before", max_iter=1, random_state=0).fit(X, y)
    assert not bn.intercepts_[0].any()  # BatchNorm's shift replaces that bias


@pytest.mark.parametrize("kwargs", [dict(), dict(dropout=0.3, batch_norm="after")], ids=str)
def test_n_partial_fits_train_exactly_like_a_fit_of_n_epochs(kwargs, clf_data):
    # Each epoch's row order and dropout masks are seeded by the epoch's number,
    # so streaming the data through partial_fit is the same training as fit.
    X, y = clf_data
    kw = dict(hidden_layer_sizes=(16,), batch_size=32, random_state=0, tol=0, **kwargs)
    fitted = DeepMLPClassifier(max_iter=4, **kw).fit(X, y)
    streamed = DeepMLPClassifier(**kw)
    for _ in range(4):
        streamed.partial_fit(X, y, classes=[0, 1, 2])
    assert streamed.loss_curve_ == fitted.loss_curve_
    np.testing.assert_array_equal(streamed.predict_proba(X), fitted.predict_proba(X))


@pytest.mark.parametrize("tool", ["GridSearchCV", "cross_validate"])
def test_ctrl_c_stops_a_search_and_reaches_the_caller(tool, clf_data, monkeypatch):
    # Issue 22, item 4: the running fit swallowed the KeyboardInterrupt, the
    # search went on and scored the interrupted candidate as if trained.
    from sklearn.model_selection import GridSearchCV, cross_validate

    X, y = clf_data
    _interrupt_after(monkeypatch, 5)  # inside the second epoch of the first fit
    clf = DeepMLPClassifier((8,), batch_size=50, max_iter=20, random_state=0)
    fits = {"n": 0}
    original = DeepMLPClassifier._fit_unsafe

    def counting(self, *args, **kwargs):
        fits["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DeepMLPClassifier, "_fit_unsafe", counting)
    with pytest.raises(KeyboardInterrupt, match="interrupted after 1 complete epoch"):
        if tool == "GridSearchCV":
            GridSearchCV(clf, {"alpha": [1e-4, 1e-3]}, cv=3, error_score="raise").fit(X, y)
        else:
            cross_validate(clf, X, y, cv=3)
    assert fits["n"] == 1  # no further candidate or fold was fitted


def test_warm_start_early_stopping_keeps_split_and_best_consistent(clf_data, monkeypatch):
    # Issue 22, item 8: after a second warm-start call best_validation_score_
    # was the first call's best while the weights were the second call's best,
    # and each call drew a new validation split (rows trained on before were
    # validated on later).
    X, y = clf_data
    splits = []
    original = DeepMLPClassifier._validation_split

    def recording(self, *args):
        train, val = original(self, *args)
        splits.append(np.sort(val))
        return train, val

    monkeypatch.setattr(DeepMLPClassifier, "_validation_split", recording)
    kw = dict(hidden_layer_sizes=(16,), early_stopping=True, n_iter_no_change=50, tol=0.0,
              random_state=np.random.RandomState(3))
    clf = DeepMLPClassifier(max_iter=15, learning_rate_init=0.01, **kw).fit(X, y)
    first_best = clf.best_validation_score_
    # A far too high rate: the second call only makes the network worse, so
    # the first call's best weights must stay (scikit-learn's rule: the best
    # over all calls), and the score must describe them.
    clf.set_params(warm_start=True, learning_rate_init=3.0, max_iter=5).fit(X, y)
    np.testing.assert_array_equal(splits[0], splits[1])
    assert len(clf.validation_scores_) == 20
    assert max(clf.validation_scores_[15:]) < first_best
    assert clf.best_validation_score_ == first_best == max(clf.validation_scores_)
    val = splits[0]
    assert clf.score(X[val], y[val]) == pytest.approx(clf.best_validation_score_)
    # Data of another size: another validation set, so no comparison with the
    # old score; the best of this call is kept and reported.
    clf.set_params(learning_rate_init=0.01).fit(X[:150], y[:150])
    assert clf.best_validation_score_ == max(clf.validation_scores_[20:])
    assert clf.score(X[:150][splits[2]], y[:150][splits[2]]) == pytest.approx(
        clf.best_validation_score_)


# -------------------------------------------------- concurrency (issue 23)
class _Scaled(torch.nn.Module):
    """An activation the inference plan does not know: predictions call the module."""

    def forward(self, x):
        return torch.relu(x) * 1.5


def test_predictions_during_a_refit_see_one_model_or_the_other():
    # While one thread refitted, predict_proba in others saw widths 1, 2, 3, 6
    # and labels of the wrong model (classes_ was set before the network).
    import threading

    rng = np.random.RandomState(0)
    X = rng.randn(600, 6)
    y6 = rng.randint(0, 6, 600)
    clf = DeepMLPClassifier((16,), max_iter=2, random_state=0).fit(X, y6 % 2)
    widths, labels, errors = set(), set(), []
    done = threading.Event()

    def predict_loop():
        while not done.is_set():
            try:
                widths.add(clf.predict_proba(X[:5]).shape[1])
                labels.update(clf.predict(X[:50]).tolist())
            except Exception as exc:  # pragma: no cover - the failure being tested
                errors.append(repr(exc))

    threads = [threading.Thread(target=predict_loop) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for k in range(3):  # refits between the 2-class and the 6-class model
            clf.fit(X, y6 if k % 2 == 0 else y6 % 2)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert not errors and widths <= {2, 6}
    assert labels <= set(range(6))


def test_predicting_threads_do_not_change_a_warm_start_fit(clf_data):
    # predict flipped the shared module to evaluation mode: 8 predicting
    # threads changed a concurrent warm-start fit (BatchNorm in training
    # used its running statistics) and left module_.training False.
    import threading

    X, y = clf_data
    kw = dict(hidden_layer_sizes=(16,), activation=_Scaled, batch_norm="before",
              max_iter=2, batch_size=20, random_state=0)
    alone = DeepMLPClassifier(**kw).fit(X, y)
    clf = pickle.loads(pickle.dumps(alone))
    before = clf.predict_proba(X)
    alone.set_params(warm_start=True, max_iter=6).fit(X, y)
    seen, done = [], threading.Event()

    def predict_loop():
        while not done.is_set():
            seen.append(clf.predict_proba(X))

    threads = [threading.Thread(target=predict_loop) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        clf.set_params(warm_start=True, max_iter=6).fit(X, y)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert clf.loss_curve_ == alone.loss_curve_
    np.testing.assert_array_equal(clf.predict_proba(X), alone.predict_proba(X))
    assert clf.module_.training  # in training mode between fits, as documented
    # during the fit: the model as it was before it; a prediction starting
    # between the fit's publication and done.set() sees the new one (never
    # anything in between)
    after = alone.predict_proba(X)
    assert seen and np.array_equal(seen[0], before)
    assert all(np.array_equal(p, before) or np.array_equal(p, after) for p in seen)


def test_a_second_fit_while_one_runs_is_refused(clf_data):
    # Two concurrent warm-start fits on one estimator corrupted its history.
    from skorch.callbacks import Callback

    X, y = clf_data
    clf = DeepMLPClassifier((8,), max_iter=3, random_state=0)
    refused = []

    class FitsItsOwnEstimator(Callback):
        def on_epoch_begin(self, net, **kwargs):
            for method in ("fit", "partial_fit"):
                try:
                    getattr(clf, method)(X, y, **({"classes": [0, 1, 2]} if method ==
                                                  "partial_fit" else {}))
                except RuntimeError as exc:
                    refused.append(str(exc))

    clf.set_params(callbacks=[FitsItsOwnEstimator()]).fit(X, y)
    assert len(refused) == 6 and all("already being fitted" in m for m in refused)
    assert clf.n_iter_ == 3 and len(clf.history_) == 3
    assert all("train_loss" in row for row in clf.history_)
    clf.set_params(callbacks=None).fit(X, y)  # and fits again afterwards


def test_hooks_see_the_real_module_at_predict(clf_data):
    # Found in review: prediction views handed hooks a throwaway copy.
    X, y = clf_data
    clf = DeepMLPClassifier((8,), dropout=0.5, max_iter=2, random_state=0).fit(X, y)
    plain = clf.predict_proba(X)
    layer = clf.module_.hidden[0]
    seen = {}

    def hook(module, inputs, output):
        seen[module] = output
        module.last_output = output

    handle = layer.register_forward_hook(hook)
    wrapped = layer.forward
    layer.forward = lambda x: wrapped(x)  # bound to the real module
    try:
        for _ in range(2):  # in evaluation mode: dropout off, the same result
            np.testing.assert_allclose(clf.predict_proba(X), plain, rtol=1e-5)
    finally:
        handle.remove()
        del layer.forward
    assert layer in seen and hasattr(layer, "last_output")
    assert clf.module_.training


def test_warm_start_with_an_unpicklable_hook_owner(clf_data):
    # Found in review: deep-copying the module for predictions failed on a
    # hook bound to an object holding a lock.
    import threading

    X, y = clf_data

    class Recorder:
        def __init__(self):
            self.lock, self.calls = threading.Lock(), 0

        def hook(self, module, inputs, output):
            with self.lock:
                self.calls += 1

    clf = DeepMLPClassifier((8,), max_iter=1, random_state=0).fit(X, y)
    recorder = Recorder()
    clf.module_.register_forward_hook(recorder.hook)
    clf.set_params(warm_start=True, max_iter=2).fit(X, y)
    clf.partial_fit(X, y)
    assert clf.n_iter_ == 1 and recorder.calls > 0


def test_what_a_callback_sets_on_the_estimator_during_its_fit_stays(clf_data):
    # Found in review: the published working copy dropped them.
    from skorch.callbacks import Callback

    X, y = clf_data
    clf = DeepMLPClassifier((8,), max_iter=3, random_state=0)

    class Annotate(Callback):
        def on_epoch_end(self, net, **kwargs):
            clf.losses_seen_ = len(net.history)
            clf.set_params(tol=1e-3)

    clf.set_params(callbacks=[Annotate()]).fit(X, y)
    assert clf.losses_seen_ == 3 and clf.tol == 1e-3 and clf.n_iter_ == 3
