"""Fitted estimators round-trip through pickle and joblib, and keep training afterwards."""

import io
import pickle

import joblib
import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor

CONFIGS = [
    dict(),
    dict(activation="elu", batch_norm="before", dropout=0.2, solver="nadam", max_norm=2.0,
         early_stopping=True),
    dict(activation="selu", dropout=0.1, solver="rmsprop", clip_norm=1.0),
]


def _roundtrips(est):
    yield "pickle", pickle.loads(pickle.dumps(est))
    buf = io.BytesIO()
    joblib.dump(est, buf)
    buf.seek(0)
    yield "joblib", joblib.load(buf)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
@pytest.mark.parametrize("cls", [DeepMLPClassifier, DeepMLPRegressor])
def test_round_trip_is_bit_identical_and_trainable(cls, config, clf_data, reg_data):
    X, y = clf_data if cls is DeepMLPClassifier else reg_data
    est = cls((16, 16), max_iter=5, random_state=0, **config).fit(X, y)
    method = "predict_proba" if cls is DeepMLPClassifier else "predict"
    expected = getattr(est, method)(X)
    for how, loaded in _roundtrips(est):
        np.testing.assert_array_equal(getattr(loaded, method)(X), expected, err_msg=how)
        assert loaded.get_params() == est.get_params()
        assert loaded.n_iter_ == est.n_iter_ and loaded.loss_curve_ == est.loss_curve_
        # Continuing after loading gives exactly what continuing the original gives.
        a = pickle.loads(pickle.dumps(est)).set_params(early_stopping=False).partial_fit(X, y)
        loaded.set_params(early_stopping=False).partial_fit(X, y)
        np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(a, method)(X))


def test_pickle_holds_no_training_data(clf_data):
    X, y = clf_data
    big = np.repeat(X, 50, axis=0)
    clf = DeepMLPClassifier((8,), max_iter=2, early_stopping=True, random_state=0)
    clf.fit(big, np.repeat(y, 50))
    assert len(pickle.dumps(clf)) < big.astype(np.float32).nbytes / 4


def test_round_trip_after_direct_adam_keeps_separate_counters(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((8,), max_iter=3, random_state=0).fit(X, y)
    loaded = pickle.loads(pickle.dumps(clf))
    steps = [s["step"] for s in loaded.net_.optimizer_.state.values()]
    assert len({id(t) for t in steps}) == len(steps)
    assert {float(t) for t in steps} == {3.0}  # one step per epoch (200 rows, batch 200)


# ------------------------------------------------------------------ skops
skops_io = pytest.importorskip("skops.io")


@pytest.mark.parametrize("cls, config", [
    (DeepMLPClassifier, dict()),
    (DeepMLPClassifier, dict(batch_norm="before", dropout=0.1, early_stopping=True)),
    (DeepMLPRegressor, dict(loss="poisson", activation="selu")),
], ids=["clf", "clf-bn-es", "reg-poisson"])
def test_skops_round_trip_with_documented_trusted_types(cls, config, clf_data):
    import pandas as pd

    from sklearn_deepnet import TRUSTED_TYPES

    X, y = clf_data
    X = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    if cls is DeepMLPClassifier:
        y = np.array(["cat", "dog", "emu"])[y]
    else:
        y = np.abs(X["f0"].to_numpy()) + 1
    est = cls((16,), max_iter=4, random_state=0, **config).fit(X, y)
    data = skops_io.dumps(est)
    assert set(skops_io.get_untrusted_types(data=data)) <= set(TRUSTED_TYPES)
    loaded = skops_io.loads(data, trusted=TRUSTED_TYPES)
    method = "predict_proba" if cls is DeepMLPClassifier else "predict"
    np.testing.assert_array_equal(getattr(loaded, method)(X), getattr(est, method)(X))
    assert list(loaded.feature_names_in_) == list(est.feature_names_in_)
    loaded.set_params(early_stopping=False).partial_fit(X, y)  # and it trains on
    assert loaded.n_iter_ == 1 and len(loaded.loss_curve_) == len(est.loss_curve_) + 1
    with pytest.raises(skops_io.exceptions.UntrustedTypesFoundException):
        skops_io.loads(data, trusted=[])


def test_skops_pipeline_needs_only_the_documented_types():
    # docs/guarantees.md, "Loading files you did not write": a whole Pipeline
    # of scikit-learn transformers adds no type to trust; a custom activation
    # and a callback add exactly their own.
    import functools

    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from skorch.callbacks import LRScheduler

    from sklearn_deepnet import TRUSTED_TYPES

    rng = np.random.RandomState(0)
    X = pd.DataFrame({"num": rng.randn(80), "cat": rng.choice(["a", "b", "c"], 80)})
    y = rng.randint(0, 2, 80)

    def pipeline(**params):
        prep = ColumnTransformer([("num", StandardScaler(), ["num"]),
                                  ("cat", OneHotEncoder(dtype=np.float32,
                                                        handle_unknown="ignore"), ["cat"])])
        return make_pipeline(prep, DeepMLPClassifier((8,), max_iter=2, random_state=0,
                                                     **params)).fit(X, y)

    pipe = pipeline()
    data = skops_io.dumps(pipe)
    assert skops_io.get_untrusted_types(data=data) == [
        "sklearn_deepnet._classifier.DeepMLPClassifier"]
    loaded = skops_io.loads(data, trusted=TRUSTED_TYPES)
    np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))
    custom = pipeline(activation=functools.partial(torch.nn.LeakyReLU, 0.2),
                      callbacks=[LRScheduler("StepLR", step_size=1)])
    assert set(skops_io.get_untrusted_types(data=skops_io.dumps(custom))) == {
        *TRUSTED_TYPES[:1], "functools.partial", "torch.nn.modules.activation.LeakyReLU",
        "skorch.callbacks.lr_scheduler.LRScheduler"}


# ------------------------------------------------- GPU-fitted model, CPU-only host
def test_cuda_fitted_state_loads_on_a_cpu_only_machine(clf_data, monkeypatch):
    # A model fitted on CUDA persists its net as numpy arrays plus the device
    # name and the optimizer's CUDA settings (fused, capturable). Rewriting a
    # CPU model's state that way is exactly what a CUDA-fitted pickle holds.
    X, y = clf_data
    clf = DeepMLPClassifier((16,), batch_norm="before", max_iter=3, random_state=0).fit(X, y)
    state = clf.__getstate__()
    state["_net_state"]["device"] = "cuda:0"
    for group in state["_net_state"]["optimizer"]["param_groups"]:
        group.update(fused=True, capturable=True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loaded = DeepMLPClassifier.__new__(DeepMLPClassifier)
    with pytest.warns(UserWarning, match="fitted on cuda:0, which is not available here"):
        loaded.__setstate__(state)
    assert loaded.net_.device.type == "cpu"
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert not any(g.get("capturable") for g in loaded.net_.optimizer_.param_groups)
    loaded.set_params(device="cpu").partial_fit(X, y)
    assert loaded.n_iter_ == 1 and len(loaded.loss_curve_) == 4


def test_pickles_of_the_previous_release_load_predict_and_train():
    # Written by commit d990660 (0.1.0 before the trainer and drop-in rounds):
    # loose regularization fields, no power_t/nesterovs_momentum/max_fun/callbacks.
    from pathlib import Path

    with open(Path(__file__).parent / "data" / "pickles_0.1.0_d990660.pkl", "rb") as f:
        blob = pickle.load(f)  # noqa: S301 - our own test fixture
    clf, reg = blob["clf"], blob["reg"]
    np.testing.assert_array_equal(clf.predict_proba(blob["X"]), blob["proba"])
    np.testing.assert_allclose(reg.predict(blob["Xr"]), blob["pred"], rtol=1e-6)
    assert clf.get_params()["nesterovs_momentum"] is True and clf.callbacks is None
    # (parameters added since get their defaults, each on its own estimator only)
    assert clf.label_smoothing == 0.0 and "label_smoothing" not in vars(reg)
    assert clf.net_.regularization.alpha == 0.01 and reg.net_.regularization.clip_norm == 1.0
    clf.partial_fit(blob["X"], clf.predict(blob["X"]))
    reg.partial_fit(blob["Xr"], reg.predict(blob["Xr"]))
    assert clf.coefs_[0].dtype == np.float64


def _schedule_params(name):
    params = dict(learning_rate=name, solver="sgd", tol=0.5, n_iter_no_change=1, lr_patience=1)
    if name == "piecewise":
        params.update(lr_milestones=[2, 4], lr_values=[0.1, 0.01, 0.001])
    return params


def _all_roundtrips(est):
    yield from _roundtrips(est)
    skops_io = pytest.importorskip("skops.io")
    from sklearn_deepnet import TRUSTED_TYPES

    yield "skops", skops_io.loads(skops_io.dumps(est), trusted=TRUSTED_TYPES)


@pytest.mark.parametrize("name", sorted(__import__("sklearn_deepnet._schedules",
                                                   fromlist=["SCHEDULES"]).SCHEDULES))
def test_every_schedule_continues_exactly_after_a_round_trip(name, clf_data):
    # Issue 22, item 6: the "adaptive" rate (lowered by the stopping rule and
    # kept in the optimizer) came back at learning_rate_init after a pickle.
    X, y = clf_data
    clf = DeepMLPClassifier((8,), max_iter=6, random_state=0, **_schedule_params(name))
    clf.fit(X, y)
    for _ in range(3):
        clf.partial_fit(X, y)
    if name == "adaptive":  # the stopping rule did lower it: the state to keep
        assert clf.net_.optimizer_.param_groups[0]["lr"] < clf.learning_rate_init
    copies = list(_all_roundtrips(clf))
    for how, loaded in copies:
        assert (loaded.net_.optimizer_.param_groups[0]["lr"]
                == clf.net_.optimizer_.param_groups[0]["lr"]), how
    for est in [clf] + [loaded for _, loaded in copies]:
        est.partial_fit(X, y)
        est.set_params(warm_start=True, max_iter=3).fit(X, y)
    for how, loaded in copies:
        assert loaded.loss_curve_ == clf.loss_curve_, how
        assert [h["lr"] for h in loaded.history_] == [h["lr"] for h in clf.history_], how
        np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X),
                                      err_msg=how)


class PickleSelf(Callback):
    """Pickles the estimator it trains at ``event`` when the history has ``at`` rows."""

    def __init__(self, event, at):
        self.event, self.at = event, at
        self.estimator, self.saved = None, []

    def __getstate__(self):  # pickled with the estimator: not itself again
        return {**vars(self), "estimator": None, "saved": []}

    def _save(self, net, event):
        if event == self.event and self.at in (None, len(net.history)):
            self.saved.append(pickle.dumps(self.estimator))

    def on_train_begin(self, net, **kwargs):
        self._save(net, "on_train_begin")

    def on_epoch_begin(self, net, **kwargs):
        self._save(net, "on_epoch_begin")

    def on_batch_end(self, net, **kwargs):
        self._save(net, "on_batch_end")

    def on_epoch_end(self, net, **kwargs):
        self._save(net, "on_epoch_end")

    def on_train_end(self, net, **kwargs):
        self._save(net, "on_train_end")


@pytest.mark.parametrize("event", ["on_train_begin", "on_epoch_begin", "on_batch_end",
                                   "on_epoch_end"])
@pytest.mark.parametrize("warm", [False, True], ids=["refit", "warm-start"])
def test_pickled_during_its_own_fit_loads_predicts_and_trains(event, warm, clf_data):
    # Issue 22, item 7: such a pickle loaded and predicted, but fit and
    # partial_fit raised KeyError('train_samples') (a half-written epoch row).
    X, y = clf_data
    kw = dict(hidden_layer_sizes=(8,), batch_size=50, random_state=0, tol=0)
    first = DeepMLPClassifier(max_iter=3, **kw).fit(X, y)
    # On the second epoch of this call: 3 + 2 rows with a warm start, 2 without.
    at = (5 if warm else 2) - (event == "on_train_begin") * 2
    spy = PickleSelf(event, at)
    est = pickle.loads(pickle.dumps(first)).set_params(warm_start=warm, max_iter=4,
                                                        callbacks=[spy])
    spy.estimator = est
    est.fit(X, y)
    assert spy.saved
    loaded = pickle.loads(spy.saved[0])
    loaded.set_params(callbacks=None)
    n_rows = len(loaded.history_)
    assert all("train_samples" in row for row in loaded.history_)
    assert loaded.t_ == 200 * n_rows and len(loaded.loss_curve_) == n_rows
    if event == "on_train_begin":  # training had not started: the model before the call
        np.testing.assert_array_equal(loaded.predict_proba(X), first.predict_proba(X))
    elif event != "on_batch_end":  # between epochs: the same as a fit of that many epochs
        epochs = n_rows - (3 if warm else 0)
        assert loaded.n_iter_ == epochs
        if warm:
            twin = pickle.loads(pickle.dumps(first)).set_params(warm_start=True,
                                                                max_iter=epochs).fit(X, y)
        else:
            twin = DeepMLPClassifier(max_iter=epochs, **kw).fit(X, y)
        np.testing.assert_array_equal(loaded.predict_proba(X), twin.predict_proba(X))
    else:  # inside an epoch: the end of the last finished one
        assert n_rows == at - 1
        assert np.isfinite(loaded.predict_proba(X)).all()
    loaded.partial_fit(X, y)
    loaded.set_params(warm_start=True, max_iter=2).fit(X, y)
    loaded.set_params(warm_start=False).fit(X, y)
    assert loaded.n_iter_ == 2


def test_pickled_during_its_first_fit_before_training_is_unfitted(clf_data):
    from sklearn.exceptions import NotFittedError

    X, y = clf_data
    spy = PickleSelf("on_train_begin", 0)
    est = DeepMLPClassifier((8,), max_iter=2, random_state=0, callbacks=[spy])
    spy.estimator = est
    est.fit(X, y)
    loaded = pickle.loads(spy.saved[0])
    with pytest.raises(NotFittedError):
        loaded.predict(X)
    loaded.set_params(callbacks=None).fit(X, y)
    np.testing.assert_array_equal(
        loaded.predict_proba(X),
        DeepMLPClassifier((8,), max_iter=2, random_state=0).fit(X, y).predict_proba(X))


def test_pickled_at_train_end_with_early_stopping_holds_the_best_and_its_score(reg_data):
    # Found in review: at on_train_end the best weights are back, and the
    # pickle must report their score, not the last epoch's.
    X, y = reg_data
    spy = PickleSelf("on_train_end", None)
    est = DeepMLPRegressor((8,), early_stopping=True, learning_rate_init=0.1, max_iter=8,
                           n_iter_no_change=100, random_state=0, callbacks=[spy])
    spy.estimator = est
    est.fit(X, y)
    assert max(est.validation_scores_) > est.validation_scores_[-1]  # not the last epoch
    loaded = pickle.loads(spy.saved[0])
    assert loaded.best_validation_score_ == est.best_validation_score_
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))


def test_a_pickle_naming_the_old_initializer_module_loads():
    # sklearn_deepnet._init is where VarianceScaling lived before the engine
    # became a subpackage: pickles written then name it, and must still load.
    from sklearn_deepnet import VarianceScaling

    init = VarianceScaling(scale=2.0, mode="fan_avg", distribution="uniform")
    new = pickle.dumps(init, protocol=0)
    assert b"sklearn_deepnet._engine.init\nVarianceScaling" in new
    old = new.replace(b"sklearn_deepnet._engine.init\nVarianceScaling",
                      b"sklearn_deepnet._init\nVarianceScaling")
    loaded = pickle.loads(old)
    assert type(loaded) is VarianceScaling and loaded == init
