"""_fitting: one call of fit, partial_fit or a warm start.

tests/test_base.py covers the estimator-level promises (a failed fit on bad
inputs keeps the model, a second concurrent fit is refused, predictions
during a warm start); here the mixin's own methods are called directly:
input validation, the validation split and carried stopping state, batch size
and threads, the per-call seed, the attributes that mark a running fit, and
the rollback of a continued network when training fails or is interrupted.
"""

import copy
import os
import signal
import time
import warnings
from contextlib import nullcontext
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from skorch.callbacks import Callback

import sklearn_deepnet._fitting as fitting
import sklearn_deepnet._outcome as outcome
from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor
from sklearn_deepnet._engine.data import RowSubset
from sklearn_deepnet._fitting import RunsFits, _output_dtype
from sklearn_deepnet._persist import (
    FIT_OWNER,
    FIT_STARTED,
    SERVING,
    TRAINING,
    validation_fingerprint,
)


def _data(n=40, n_classes=2):
    rng = np.random.RandomState(0)
    y = np.arange(n) % n_classes
    return rng.normal(size=(n, 3)) + y[:, None], y


def _clf(**params):
    kw = dict(hidden_layer_sizes=(4,), max_iter=2, batch_size=20, tol=0, random_state=0)
    return DeepMLPClassifier(**{**kw, **params})


def _weights(est):
    return {k: v.clone() for k, v in est.module_.state_dict().items()}


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _optimizer_tensors(optimizer):
    return [t.clone() for state in optimizer.state.values() for t in state.values()
            if isinstance(t, torch.Tensor)]


def _seed(seed, call):
    return int(np.random.SeedSequence([seed, call]).generate_state(1)[0])


# ------------------------------------------------------------ _output_dtype
@pytest.mark.parametrize("X, dtype", [
    (np.zeros((2, 2), np.float32), "float32"),
    (np.zeros((2, 2), np.float64), "float64"),
    (np.zeros((2, 2), np.float16), "float64"),
    (np.zeros((2, 2), np.int64), "float64"),
    ([[0.0, 1.0]], "float64"),
    (sp.csr_matrix(np.eye(2, dtype=np.float32)), "float32"),
], ids=["float32", "float64", "float16", "int", "list", "sparse-float32"])
def test_output_dtype(X, dtype):
    assert _output_dtype(X) == dtype


def test_output_dtype_of_a_data_frame():
    pd = pytest.importorskip("pandas")
    same = pd.DataFrame({"a": np.zeros(2, np.float32), "b": np.ones(2, np.float32)})
    assert _output_dtype(same) == "float32"
    mixed = same.assign(c=np.zeros(2, np.float64))
    assert _output_dtype(mixed) == "float64"


# ----------------------------------------------------- _effective_batch_size
def test_batch_size_auto_and_given():
    assert _clf(batch_size="auto")._effective_batch_size(1000) == 200
    assert _clf(batch_size="auto")._effective_batch_size(37) == 37
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _clf(batch_size=16)._effective_batch_size(40) == 16
        assert _clf(batch_size=40)._effective_batch_size(40) == 40


def test_a_batch_size_larger_than_the_data_is_clipped_with_a_warning():
    with pytest.warns(UserWarning) as record:
        assert _clf(batch_size=64)._effective_batch_size(10) == 10
    assert [str(w.message) for w in record] == [
        "Got batch_size=64 larger than the 10 training samples; it is clipped to the "
        "number of samples."]


@pytest.mark.parametrize("params, n, size", [
    (dict(batch_size=1, batch_norm="before"), 10, 1),
    (dict(batch_size=1, batch_norm_input=True), 10, 1),
    (dict(batch_size="auto", batch_norm="after"), 1, 1),
])
def test_batch_norm_refuses_batches_of_one_row(params, n, size):
    with pytest.raises(ValueError) as info:
        _clf(**params)._effective_batch_size(n)
    assert str(info.value) == (
        f"BatchNorm needs at least 2 samples per training batch; got batch_size={size} "
        f"(n_samples = {n}).")
    assert _clf(**{**params, "batch_size": 2})._effective_batch_size(2) == 2


# --------------------------------------------------------- _validation_split
def test_the_split_holds_out_validation_fraction_of_the_rows():
    reg = DeepMLPRegressor(validation_fraction=0.15)
    y = np.zeros((20, 1), np.float32)
    train, val = reg._validation_split(None, y, seed=3)
    assert len(val) == 3  # ceil(0.15 * 20), as scikit-learn's train_test_split
    assert sorted([*train, *val]) == list(range(20))
    again = reg._validation_split(None, y, seed=3)
    assert [a.tolist() for a in again] == [train.tolist(), val.tolist()]  # seeded
    rows = np.arange(1, 40, 2)  # zero-weight rows left out: only these are split
    train, val = reg._validation_split(rows, np.zeros((40, 1), np.float32), seed=3)
    assert len(val) == 3 and sorted([*train, *val]) == rows.tolist()


def test_a_classifiers_split_is_stratified():
    clf = _clf(validation_fraction=0.25)
    clf._multilabel = False
    y = np.array([0] * 12 + [1] * 4)
    for seed in range(5):
        train, val = clf._validation_split(None, y, seed)
        assert sorted(y[val].tolist()) == [0, 0, 0, 1]  # the classes' shares, 3:1
        assert sorted([*train, *val]) == list(range(16))


@pytest.mark.parametrize("fraction, n, message", [
    (0.99, 5, "early_stopping with validation_fraction=0.99 cannot split 5 samples into a "
              "training and a validation set."),
    (0.5, 1, "early_stopping with validation_fraction=0.5 cannot split 1 samples into a "
             "training and a validation set."),
    (0.1, 10, "The validation set is too small. Increase 'validation_fraction' or the size "
              "of your dataset (early_stopping would hold out 1 of 10 samples)."),
])
def test_splits_that_cannot_be_made(fraction, n, message):
    reg = DeepMLPRegressor(validation_fraction=fraction)
    with pytest.raises(ValueError) as info:
        reg._validation_split(None, np.zeros((n, 1), np.float32), seed=0)
    assert str(info.value) == message


def test_eleven_rows_at_a_tenth_give_two_validation_rows():
    reg = DeepMLPRegressor(validation_fraction=0.1)
    assert len(reg._validation_split(None, np.zeros((11, 1), np.float32), 0)[1]) == 2


# -------------------------------------------------------- _validation_for_call
def _split_inputs():
    rng = np.random.RandomState(1)
    X = rng.normal(size=(20, 2)).astype(np.float32)
    y = np.zeros((20, 1), np.float32) + np.arange(20, dtype=np.float32)[:, None]
    w = np.ones(20, np.float32)
    own = (rng.normal(size=(4, 2)).astype(np.float32), np.ones((4, 1), np.float32),
           np.full(4, 2.0, np.float32))
    return X, y, w, own


def test_the_users_validation_set_comes_first():
    X, y, w, own = _split_inputs()
    reg = DeepMLPRegressor()
    reg._seed = 7
    rows, validation, fp, carry = reg._validation_for_call(X, y, w, None, own,
                                                           continuing=False, early=True)
    assert rows is None and validation is own and carry is None  # every row trains
    assert fp == validation_fingerprint(own[0], np.arange(4), own[1], own[2])


def test_early_stopping_splits_the_training_rows_once_per_network():
    X, y, w, _ = _split_inputs()
    reg = DeepMLPRegressor(validation_fraction=0.2)
    reg._seed, reg._n_fit_calls = 7, 0
    rows, (X_val, y_val, w_val), fp, carry = reg._validation_for_call(
        X, y, w, None, None, continuing=False, early=True)
    train, val = reg._validation_split(None, y, _seed(7, 0))
    assert rows.tolist() == train.tolist() and len(val) == 4
    assert isinstance(X_val, RowSubset) and X_val.X is X and X_val.rows.tolist() == val.tolist()
    np.testing.assert_array_equal(y_val, y[val])
    np.testing.assert_array_equal(w_val, w[val])
    assert fp == validation_fingerprint(X, val, y, w) and carry is None
    reg._n_fit_calls = 3  # a later call (warm start): the same split
    again = reg._validation_for_call(X, y, w, None, None, continuing=False, early=True)
    assert again[0].tolist() == rows.tolist() and again[2] == fp


def test_no_validation():
    X, y, w, own = _split_inputs()
    reg = DeepMLPRegressor()
    rows = np.arange(5)
    assert reg._validation_for_call(X, y, w, rows, None, continuing=False,
                                    early=False) == (rows, None, None, None)


def test_a_continuing_call_carries_the_stopping_state():
    X, y, w, own = _split_inputs()
    reg = DeepMLPRegressor()
    reg._seed = 7
    _, _, fp, carry = reg._validation_for_call(X, y, w, None, own, continuing=True,
                                               early=False)
    assert carry == (0, np.inf, None)  # nothing carried yet (e.g. an old pickle)
    reg._convergence_carry, reg._validation_fp = (3, 0.25, 0.8), fp
    assert reg._validation_for_call(X, y, w, None, own, continuing=True,
                                    early=False)[3] == (3, 0.25, 0.8)
    other = (own[0] + 1, own[1], own[2])  # other rows: the best score does not compare
    assert reg._validation_for_call(X, y, w, None, other, continuing=True,
                                    early=False)[3] == (3, 0.25, None)
    assert reg._validation_for_call(X, y, w, None, None, continuing=True,
                                    early=False)[3] == (3, 0.25, None)
    reg._convergence_carry = (2, 0.5)  # (written before best scores were carried)
    assert reg._validation_for_call(X, y, w, None, own, continuing=True,
                                    early=False)[3] == (2, 0.5, None)


# ------------------------------------------------ _validation_loss, pretraining
def test_validation_loss_is_the_weighted_mean_loss():
    raw = np.array([[0.5, 1.0], [2.0, 0.0], [1.0, 1.0]], np.float32)
    y = np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 3.0]], np.float32)
    w = np.array([1.0, 2.0, 3.0])
    squared = 0.5 * ((raw - y) ** 2).mean(axis=1)
    absolute = np.abs(raw - y).mean(axis=1)
    for loss, per_row in (("squared_error", squared), ("absolute_error", absolute)):
        got = DeepMLPRegressor(loss=loss)._validation_loss(raw, y, w)
        assert type(got) is float
        assert got == pytest.approx(np.dot(per_row, w) / w.sum(), rel=1e-6)


@pytest.mark.parametrize("weights, rows", [
    ([1.0, 0.0, 2.0, 1.0, 0.0], [0, 2, 3]), ([1.0] * 5, None),
], ids=["some-zero", "uniform"])
def test_pretraining_data_is_every_weighted_row_as_its_own_target(weights, rows):
    X_t = torch.arange(10, dtype=torch.float32).reshape(5, 2)
    w = np.array(weights, np.float32)
    data = _clf()._pretraining_data(X_t, w, torch.device("cpu"))
    assert data.X is X_t and data.y is X_t
    np.testing.assert_array_equal(data.w.numpy(), w)
    if rows is None:
        assert data.rows is None and data.uniform_weights
    else:
        assert data.rows.tolist() == rows and not data.uniform_weights
    sparse = _clf()._pretraining_data(sp.csr_matrix(X_t.numpy()), w, torch.device("cpu"))
    assert sparse.y is None and sparse.sparse  # densified batch by batch, its own target


# ---------------------------------------------------------- _validate_inputs
def test_validate_inputs_converts_once_and_leaves_zero_weights_out():
    clf = _clf(class_weight={"a": 2.0})
    X = np.arange(12, dtype=np.float64).reshape(6, 2)
    y = np.array(["a", "b", "a", "b", "a", "b"])
    w = np.array([1.0, 1.0, 0.0, 1.0, 2.0, 0.5])
    X32, y_model, weight, n_outputs, rows, user = clf._validate_inputs(
        X, y, w, continuing=False, incremental=False, classes=None)
    assert X32.dtype == np.float32 and np.array_equal(X32, X)
    assert clf._output_dtype == "float64" and clf.n_features_in_ == 2
    assert clf.classes_.tolist() == ["a", "b"] and n_outputs == 1
    np.testing.assert_array_equal(y_model, [[0], [1], [0], [1], [0], [1]])
    np.testing.assert_array_equal(weight, [2.0, 1.0, 0.0, 1.0, 4.0, 0.5])  # class "a" x2
    assert weight.dtype == np.float32
    np.testing.assert_array_equal(user, w)  # without the class weights
    assert rows.tolist() == [0, 1, 3, 4, 5]
    assert clf._target_warnings == []
    _, _, _, _, rows, _ = clf._validate_inputs(X, y, None, continuing=False,
                                               incremental=False, classes=None)
    assert rows is None  # every row counts


def test_all_weights_zero_is_an_error():
    X, y = np.ones((4, 2)), np.array([0, 1, 0, 1])
    # (all-zero sample weights alone: scikit-learn's check_sample_weight refuses them)
    with pytest.raises(ValueError, match="at least one non-zero"):
        _clf()._validate_inputs(X, y, np.zeros(4), continuing=False, incremental=False,
                                classes=None)
    for class_weight, weights in (({0: 0.0, 1: 0.0}, None), ({0: 0.0}, [1.0, 0.0, 1.0, 0.0])):
        with pytest.raises(ValueError) as info:
            _clf(class_weight=class_weight)._validate_inputs(
                X, y, weights, continuing=False, incremental=False, classes=None)
        assert str(info.value) == "All sample weights are zero: there is nothing to fit."


def test_a_continuing_call_checks_the_output_width_and_keeps_the_output_dtype():
    X, y = _data()
    clf = _clf().fit(X.astype(np.float32), y)
    assert clf._output_dtype == "float32"
    clf._validate_inputs(X, y, None, continuing=True, incremental=False, classes=None)
    assert clf._output_dtype == "float32"  # the first fit's dtype
    real = clf.net_
    vars(clf)["net_"] = SimpleNamespace(module_=SimpleNamespace(output=SimpleNamespace(
        linear=SimpleNamespace(out_features=3))))
    with pytest.raises(ValueError) as info:
        clf._validate_inputs(X, y, None, continuing=True, incremental=False, classes=None)
    assert str(info.value) == "y has 1 outputs but the fitted network has 3."
    vars(clf)["net_"] = real


def test_the_base_target_scale_check_accepts_anything():
    assert RunsFits._check_target_scale(_clf(), np.array([[1e30]]), np.ones(1)) is None


# ----------------------------------------------------------- _fit, _fit_unsafe
def test_a_second_fit_is_refused_while_one_runs():
    X, y = _data()
    clf = _clf()
    vars(clf)[FIT_STARTED] = {}  # what a running fit leaves on the estimator
    before = dict(vars(clf))
    for fit in (lambda: clf.fit(X, y), lambda: clf.partial_fit(X, y, classes=[0, 1])):
        with pytest.raises(RuntimeError) as info:
            fit()
        assert str(info.value) == (
            "This DeepMLPClassifier is already being fitted (in another thread, or by a "
            "callback of its own fit); a second fit or partial_fit on it would corrupt "
            "both. Fit a clone (sklearn.base.clone) instead, or wait for the first fit to "
            "return.")
        assert vars(clf) == before


class _Spy(Callback):
    """Records what the estimator holds while its fit trains."""

    def __init__(self, est):
        self.est = est

    def on_epoch_end(self, net, **kwargs):
        state = vars(self.est)
        training = state[TRAINING]
        self.seen = dict(keys=set(state), started=dict(state[FIT_STARTED]),
                         training=training, owner=training[2].get(FIT_OWNER),
                         serving=state.get(SERVING), net=net)


def test_the_attributes_of_a_running_fit():
    X, y = _data()
    clf = _clf()
    spy = _Spy(clf)
    clf.set_params(callbacks=[spy])
    before = dict(vars(clf))
    clf.fit(X, y)
    seen = spy.seen
    assert seen["started"] == before  # the estimator as the call found it
    net, n_before, work = seen["training"]
    assert net is seen["net"] and n_before == 0 and seen["owner"] is clf
    assert FIT_OWNER not in work  # the working copy's link to the estimator: removed
    assert work["net_"] is clf.net_  # the attributes the fit built, now published
    assert seen["serving"] is None  # a fresh fit: predictions need no copy
    assert "net_" not in seen["keys"]  # published only at the end
    assert not {FIT_STARTED, TRAINING, SERVING, FIT_OWNER} & set(vars(clf))
    assert clf.net_ is net
    # A continuing call: predictions meanwhile read a copy of the weights.
    weights = _weights(clf)
    clf.partial_fit(X, y)
    net, n_before, _ = spy.seen["training"]
    assert n_before == 2 and net is clf.net_
    serving = spy.seen["serving"]
    assert serving is not clf.module_ and _same_weights(serving.state_dict(), weights)
    assert not {FIT_STARTED, TRAINING, SERVING, FIT_OWNER} & set(vars(clf))


def test_what_the_fit_removes_is_not_published_again():
    X, y = _data()
    clf = _clf()
    spy = _Spy(clf)
    clf.set_params(callbacks=[spy])
    # Attributes a fit sets and then removes: what the estimator held before the
    # call must not come back with the published ones.
    vars(clf)["_target_warnings"] = [("stale", UserWarning)]
    vars(clf)["_init_random_state"] = np.random.RandomState(5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(X, y)
    assert "_target_warnings" not in vars(clf) and "_init_random_state" not in vars(clf)
    assert "stale" not in [str(w.message) for w in caught]
    assert {"_target_warnings", "_init_random_state"} <= spy.seen["keys"]  # during the fit


class _FailAt(Callback):
    def __init__(self, epoch, exc=RuntimeError("training failed")):
        self.epoch, self.exc = epoch, exc

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            raise self.exc


@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
def test_a_failed_continued_fit_rolls_the_network_back(how):
    X, y = _data()
    clf = _clf(max_iter=2, learning_rate_init=0.05).fit(X, y)
    net, optimizer, history = clf.net_, clf.net_.optimizer_, clf.net_.history
    weights, moments = _weights(clf), _optimizer_tensors(optimizer)
    rows = copy.deepcopy(list(history))
    proba = clf.predict_proba(X)
    trainer = (net.max_epochs, net.batch_size, net.callbacks, net.criterion_,
               net.solver_params)
    fail = _FailAt(4 if how == "warm_start" else 3)  # after this call's training epochs
    clf.set_params(callbacks=[fail], batch_size=10, max_iter=3, warm_start=True)
    attributes = dict(vars(clf))
    with pytest.raises(RuntimeError, match="training failed"):
        if how == "warm_start":
            clf.fit(X, y)
        else:
            clf.partial_fit(X, y)
    assert vars(clf).keys() == attributes.keys()
    assert all(vars(clf)[k] is v for k, v in attributes.items())
    assert clf.net_ is net and net.history is history and list(history) == rows
    assert (net.max_epochs, net.batch_size, net.callbacks, net.criterion_,
            net.solver_params) == trainer
    assert _same_weights(_weights(clf), weights)
    # the optimizer the call found (partial_fit trained it in place, a warm start
    # replaced it), with its state as it was
    assert net.optimizer_ is optimizer
    got = _optimizer_tensors(net.optimizer_)
    assert len(got) == len(moments) and all(torch.equal(a, b) for a, b in zip(
        got, moments, strict=True))
    assert all(p.requires_grad for p in clf.module_.parameters())
    np.testing.assert_array_equal(clf.predict_proba(X), proba)
    # and it trains on as if the failed call had not happened
    clf.set_params(callbacks=None)
    clf.partial_fit(X, y)
    assert len(clf.loss_curve_) == 3


def test_a_failed_fresh_fit_keeps_the_fitted_model():
    X, y = _data()
    clf = _clf().fit(X, y)
    net, rows, weights = clf.net_, len(clf.history_), _weights(clf)
    clf.set_params(callbacks=[_FailAt(1)], hidden_layer_sizes=(3, 3))
    attributes = dict(vars(clf))
    with pytest.raises(RuntimeError, match="training failed"):
        clf.fit(X, y)
    assert vars(clf).keys() == attributes.keys()
    assert all(vars(clf)[k] is v for k, v in attributes.items())
    assert clf.net_ is net and len(net.history) == rows
    assert _same_weights(_weights(clf), weights)


def _press_ctrl_c():
    signal.raise_signal(signal.SIGINT)
    time.sleep(1)  # (interrupted at once by the KeyboardInterrupt)


def test_ctrl_c_before_the_first_epoch_of_a_call_keeps_the_model():
    X, y = _data()
    clf = _clf().fit(X, y)
    weights, rows, proba = _weights(clf), copy.deepcopy(list(clf.history_)), \
        clf.predict_proba(X)

    class CtrlCAtOnce(Callback):
        def on_epoch_begin(self, net, **kwargs):
            _press_ctrl_c()

    clf.set_params(callbacks=[CtrlCAtOnce()])
    attributes = dict(vars(clf))
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt) as info:
        clf.partial_fit(X, y)
    assert str(info.value) == ("Training was interrupted before its first epoch finished; "
                               "the estimator is as it was before this call.")
    assert signal.getsignal(signal.SIGINT) is handler
    assert all(vars(clf)[k] is v for k, v in attributes.items())
    assert vars(clf).keys() == attributes.keys()
    assert _same_weights(_weights(clf), weights) and list(clf.history_) == rows
    np.testing.assert_array_equal(clf.predict_proba(X), proba)


def test_ctrl_c_after_an_epoch_publishes_the_model_then_raises(monkeypatch):
    monkeypatch.setattr(outcome, "_SHOWN", set())
    X, y = _data()

    class CtrlCAtEpoch2(Callback):
        def on_epoch_end(self, net, **kwargs):
            if len(net.history) == 2:
                _press_ctrl_c()

    clf = _clf(max_iter=5, alpha=0.0, l1_ratio=0.5, callbacks=[CtrlCAtEpoch2()])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(KeyboardInterrupt) as info:
            clf.fit(X, y)
    assert str(info.value) == (
        "Training was interrupted after 1 complete epoch(s) of this call; the model keeps "
        "the weights of the last complete epoch and can be used or trained further "
        "(warm_start=True or partial_fit).")
    # published first (the caller may stop, the model is usable), warnings said first
    assert clf.n_iter_ == 1 and len(clf.history_) == 1
    assert clf.net_.stop_reason == "interrupted"
    assert not {FIT_STARTED, TRAINING, SERVING} & set(vars(clf))
    assert clf.predict(X).shape == (len(X),)
    assert [str(w.message) for w in caught] == [
        "l1_ratio=0.5 has no effect here: only used with alpha > 0."]


def test_record_call_raises_when_no_epoch_of_the_call_finished():
    clf = _clf()
    net = SimpleNamespace(stop_reason="interrupted", history=[{}, {}])
    with pytest.raises(KeyboardInterrupt) as info:
        clf._record_call(net, 2, None, None, None, None, 0.0, incremental=True,
                         continuing=True)
    assert str(info.value) == ("Training was interrupted before its first epoch finished; "
                               "the estimator is as it was before this call.")
    assert "_n_fit_calls" not in vars(clf) and "net_" not in vars(clf)


def test_every_call_gets_its_own_seed(monkeypatch):
    X, y = _data()
    seeds, real = [], fitting.seeded_global_rng

    def spy(seed, devices):
        seeds.append(seed)
        return real(seed, devices)

    monkeypatch.setattr(fitting, "seeded_global_rng", spy)
    clf = _clf(random_state=3).fit(X, y)
    first = clf._seed
    clf.partial_fit(X, y)
    clf.set_params(warm_start=True).fit(X, y)
    assert clf._n_fit_calls == 3 and clf._seed == first
    assert seeds == [_seed(first, 0), _seed(first, 1), _seed(first, 2)]
    clf.set_params(warm_start=False).fit(X, y)  # a new network: counted from 0 again
    assert clf._n_fit_calls == 1 and seeds[-1] == _seed(clf._seed, 0)
    assert clf._seed == first  # (random_state=3: the same seed)


def test_the_thread_count(monkeypatch):
    X, y = _data()
    used, asked = [], []

    def threads(n):  # (records the count; never asks torch for 10**6 threads)
        used.append(n)
        return nullcontext()

    def choose(batch_size, n_features, sizes, current):
        asked.append((batch_size, n_features, sizes, current))
        return 1

    monkeypatch.setattr(fitting, "torch_threads", threads)
    monkeypatch.setattr(fitting, "choose_num_threads", choose)
    _clf(n_threads=10**6, hidden_layer_sizes=(4, 3)).fit(X, y)
    assert used == [os.cpu_count()] and asked == []  # at most the machine's CPUs
    _clf(n_threads=1).fit(X, y)
    assert used[-1] == 1
    _clf(hidden_layer_sizes=(4, 3), batch_size=8).fit(X, y)
    assert asked == [(8, 3, [4, 3], torch.get_num_threads())] and used[-1] == 1


def test_settings_warnings_are_said_once_and_outcome_warnings_every_time(monkeypatch):
    monkeypatch.setattr(outcome, "_SHOWN", set())
    X, y = _data()
    unused = "l1_ratio=0.5 has no effect here: only used with alpha > 0."
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        warnings.simplefilter("default")
        # Python shows every warning; the package decides (it cannot read this filter)
        warnings.filterwarnings("always", module=".+")
        for _ in range(2):
            _clf(alpha=0.0, l1_ratio=0.5).fit(X, y)
        DeepMLPRegressor((4,), alpha=0.0, l1_ratio=0.5, max_iter=2, tol=0).fit(X, y)
    messages = [str(w.message) for w in caught]
    assert messages.count(unused) == 2  # once per estimator class
    assert sum(m.startswith("Stochastic Optimizer: Maximum iterations (2)")
               for m in messages) == 3
