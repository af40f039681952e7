"""Fitted estimators round-trip through pickle and joblib, and keep training afterwards."""

import io
import pickle

import joblib
import numpy as np
import pytest
import torch

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
    assert clf.net_.regularization.alpha == 0.01 and reg.net_.regularization.clip_norm == 1.0
    clf.partial_fit(blob["X"], clf.predict(blob["X"]))
    reg.partial_fit(blob["Xr"], reg.predict(blob["Xr"]))
    assert clf.coefs_[0].dtype == np.float64
