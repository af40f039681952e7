"""Numeric embeddings in the estimators (``_numeric.py``): columns, bins, fit variants."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor
from sklearn_deepnet._numeric import (
    AUTO_FREQUENCY_SCALES,
    auto_frequency_scales,
    many_valued_columns,
)

FAST = dict(hidden_layer_sizes=(16,), max_iter=3, random_state=0)
KINDS = ["periodic", "piecewise_linear"]


@pytest.fixture(scope="module")
def mixed():
    """Four numeric columns, one binary, two one-hot: 7 columns."""
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=(300, 4)), rng.integers(0, 2, 300),
                         np.eye(2)[rng.integers(0, 2, 300)]]).astype(np.float32)
    y = (X[:, 0] + np.sin(3 * X[:, 1]) + X[:, 4] > 0.5).astype(int)
    return X, y


def _fit(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(*args, **kwargs)


def test_many_valued_columns_dense_and_sparse(mixed):
    X, _ = mixed
    expected = [True] * 4 + [False] * 3
    assert many_valued_columns(X).tolist() == expected
    assert many_valued_columns(sp.csr_matrix(X)).tolist() == expected
    Z = np.array([[0, 5, 1], [0, 5, 2], [3, 5, 3]], dtype=np.float32)  # 2, 1, 3 values
    assert many_valued_columns(sp.csr_matrix(Z)).tolist() == [False, False, True]
    assert many_valued_columns(Z, rows=np.array([0, 1])).tolist() == [False, False, False]


@pytest.mark.parametrize("kind", KINDS)
def test_auto_embeds_the_many_valued_columns(mixed, kind):
    X, y = mixed
    clf = _fit(DeepMLPClassifier(**FAST, numeric_embedding=kind), X, y)
    assert clf.numeric_features_.tolist() == [0, 1, 2, 3]
    assert clf.module_.hidden[0].linear.in_features == 4 * 16 + 3
    assert clf.engine_ == "cpu-manual", clf.engine_reason_
    assert clf.predict_proba(X).shape == (300, 2)


def test_without_embedding_numeric_features_is_none(mixed):
    X, y = mixed
    assert _fit(DeepMLPClassifier(**FAST), X, y).numeric_features_ is None


@pytest.mark.parametrize("choice, expected", [
    ([3, 0], [0, 3]), ([-1, 1], [1, 6]),
    ([True, False, False, True, False, False, False], [0, 3]),
])
def test_numeric_features_by_index_and_mask(mixed, choice, expected):
    X, y = mixed
    clf = _fit(DeepMLPClassifier(**FAST, numeric_embedding="periodic", numeric_features=choice),
               X, y)
    assert clf.numeric_features_.tolist() == expected


def test_numeric_features_by_name():
    X, y = make_classification(n_samples=120, n_features=4, random_state=0)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = _fit(DeepMLPClassifier(**FAST, numeric_embedding="piecewise_linear",
                                 numeric_features=["d", "b"]), df, y)
    assert clf.numeric_features_.tolist() == [1, 3]


@pytest.mark.parametrize("choice, message", [
    ([7], "out of range"), ([True, False], "boolean mask of length 2"),
    (["a"], "no column names"), ([0, 0], "more than once"), ([0.5], "dtype float64"),
    ([[0, 1]], "1-D"), ([], "has no column to embed"),
])
def test_bad_numeric_features_are_named(mixed, choice, message):
    X, y = mixed
    with pytest.raises(ValueError, match=message):
        DeepMLPClassifier(**FAST, numeric_embedding="periodic", numeric_features=choice).fit(X, y)


def test_unknown_names_and_no_numeric_column():
    X, y = make_classification(n_samples=60, n_features=3, n_informative=2, n_redundant=0,
                               random_state=0)
    with pytest.raises(ValueError, match=r"does not have: \['z'\]"):
        DeepMLPClassifier(**FAST, numeric_embedding="periodic", numeric_features=["z"]).fit(
            pd.DataFrame(X, columns=list("abc")), y)
    with pytest.warns(UserWarning, match="no column of X has more than two distinct values"):
        clf = DeepMLPClassifier(**FAST, numeric_embedding="periodic").fit(
            (X > 0).astype(float), y)
    assert clf.numeric_features_.tolist() == [] and "embedding" not in clf.module_._modules


@pytest.mark.parametrize("param, value", [("numeric_embedding", "fourier"),
                                          ("embedding_size", 0), ("n_bins", 0),
                                          ("frequency_scale", 0.0), ("n_frequencies", 1.5),
                                          ("numeric_features", "all")])
def test_invalid_hyperparameters_are_named(mixed, param, value):
    X, y = mixed
    with pytest.raises(ValueError, match=param):
        DeepMLPClassifier(**{**FAST, "numeric_embedding": "periodic", param: value}).fit(X, y)


def test_settings_of_another_embedding_warn(mixed):
    X, y = mixed
    with pytest.warns(UserWarning, match="n_bins"):
        DeepMLPClassifier(**FAST, numeric_embedding="periodic", n_bins=10).fit(X, y)


@pytest.mark.parametrize("kind", KINDS)
def test_sparse_input_equals_dense(mixed, kind):
    X, y = mixed
    dense = _fit(DeepMLPClassifier(**FAST, numeric_embedding=kind), X, y)
    sparse = _fit(DeepMLPClassifier(**FAST, numeric_embedding=kind), sp.csr_matrix(X), y)
    assert sparse.numeric_features_.tolist() == dense.numeric_features_.tolist()
    np.testing.assert_allclose(sparse.predict_proba(sp.csr_matrix(X)), dense.predict_proba(X),
                               rtol=1e-5, atol=1e-6)


def test_bins_are_the_training_rows_quantiles(mixed):
    X, y = mixed
    X = X.copy()
    X[0, 0] = 1000.0  # an outlier with zero weight: not a training row
    weight = np.ones(len(X))
    weight[0] = 0
    clf = _fit(DeepMLPClassifier(**FAST, numeric_embedding="piecewise_linear", n_bins=4),
               X, y, sample_weight=weight)
    bins = clf._embedding.bins
    for j, edges in zip(clf.numeric_features_, bins, strict=True):
        expected = np.quantile(X[1:, j], [0, 0.25, 0.5, 0.75, 1]).astype(np.float32)
        np.testing.assert_array_equal(np.float32(edges), expected)


@pytest.mark.parametrize("kind", KINDS)
def test_warm_start_and_partial_fit_keep_the_bins(mixed, kind):
    X, y = mixed
    clf = _fit(DeepMLPClassifier(**FAST, numeric_embedding=kind, warm_start=True), X, y)
    spec, state = clf._embedding, {k: v.clone() for k, v in
                                   clf.module_.embedding.state_dict().items()}
    _fit(clf, X[:100] * 3, y[:100])
    assert clf._embedding is spec
    if kind == "piecewise_linear":
        assert (clf.module_.embedding.left == state["left"]).all()
    clf.partial_fit(X[:50] * 5, y[:50])
    assert clf._embedding is spec
    assert not (clf.module_.embedding.weight == state["weight"]).all()  # trained on
    clf.set_params(n_bins=7 if kind == "piecewise_linear" else 48, embedding_size=8)
    with pytest.raises(ValueError, match="embedding_size"):
        clf.fit(X, y)


def test_embedding_params_refuse_a_partial_fit_change(mixed):
    X, y = mixed
    clf = DeepMLPClassifier(**FAST, numeric_embedding="periodic")
    clf.partial_fit(X, y, classes=[0, 1])
    clf.set_params(numeric_embedding="piecewise_linear")
    with pytest.raises(ValueError, match="numeric_embedding"):
        clf.partial_fit(X, y)


@pytest.mark.parametrize("kind", KINDS)
def test_regressor_pickle_clone_and_batch_invariance(kind):
    X, y = make_regression(n_samples=200, n_features=5, random_state=0)
    reg = _fit(DeepMLPRegressor(**FAST, numeric_embedding=kind, embedding_size=4), X, y)
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(again.predict(X), reg.predict(X))
    one = np.concatenate([reg.predict(X[i:i + 1]) for i in range(20)])
    np.testing.assert_array_equal(one, reg.predict(X)[:20])
    assert clone(reg).get_params()["numeric_embedding"] == kind


def test_transfer_adopts_the_embedding_and_pretraining_uses_it(mixed):
    X, y = mixed
    source = _fit(DeepMLPClassifier(hidden_layer_sizes=(16, 8), max_iter=3, random_state=0,
                                    numeric_embedding="piecewise_linear"), X, y)
    target = _fit(DeepMLPClassifier(hidden_layer_sizes=(16, 4), max_iter=1, random_state=1,
                                    numeric_embedding="piecewise_linear", init_from=source,
                                    freeze_layers=1, learning_rate_init=1e-2),
                  X[:150] + 0.5, y[:150])
    assert target._embedding is source._embedding  # its columns and bins
    assert target.reused_layers_ == 1
    for key, value in source.module_.embedding.state_dict().items():
        np.testing.assert_array_equal(value, target.module_.embedding.state_dict()[key])
    other = DeepMLPClassifier(hidden_layer_sizes=(16, 4), max_iter=1, init_from=source,
                              numeric_embedding="periodic")
    with pytest.raises(ValueError, match="numeric embeddings differ"):
        _fit(other, X, y)
    pre = _fit(DeepMLPClassifier(**FAST, numeric_embedding="periodic", pretrain="autoencoder",
                                 pretrain_epochs=2), X, y)
    assert len(pre.pretrain_loss_curve_) == 2


def test_pipeline_column_transformer_and_search():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=200), "z": rng.normal(size=200),
                       "c": rng.choice(["a", "b", "c"], 200)})
    y = (df["x"] > 0).astype(int) ^ (df["c"] == "a")
    pre = ColumnTransformer([("num", StandardScaler(), ["x", "z"]),
                             ("cat", OneHotEncoder(), ["c"])])
    pipe = make_pipeline(pre, DeepMLPClassifier(**FAST, numeric_embedding="periodic"))
    search = GridSearchCV(pipe, {"deepmlpclassifier__frequency_scale": [0.1, 1.0]}, cv=2)
    _fit(search, df, y)
    model = search.best_estimator_[-1]
    assert model.numeric_features_.tolist() == [0, 1]  # the one-hot columns pass through


@pytest.mark.parametrize("sharing", ["mini", "batch"])
def test_embedding_with_an_ensemble(mixed, sharing):
    X, y = mixed
    clf = _fit(DeepMLPClassifier(**FAST, numeric_embedding="piecewise_linear", n_members=3,
                                 ensemble_sharing=sharing), X, y)
    assert clf.engine_ == "cpu-manual", clf.engine_reason_
    proba, std = clf.predict_proba(X, return_std=True)
    assert proba.shape == std.shape == (300, 2) and (std > 0).any()
    one = np.vstack([clf.predict_proba(X[i:i + 1]) for i in range(10)])
    np.testing.assert_array_equal(one, clf.predict_proba(X)[:10])


def test_auto_frequency_scales_pick_the_spiky_columns():
    base, spiky, share = AUTO_FREQUENCY_SCALES
    rng = np.random.default_rng(0)
    smooth = rng.normal(size=1000)
    zero_inflated = np.where(rng.random(1000) < 0.9, 0.0, rng.exponential(size=1000))
    half = np.r_[np.zeros(500), np.arange(1.0, 501.0)]  # exactly half: not more
    forty = np.r_[np.full(600, 40.0), rng.normal(size=400)]  # a spike off zero
    assert auto_frequency_scales([smooth, zero_inflated, half, forty]) == (
        base, spiky, base, spiky)
    assert share == 0.5 and spiky > base


@pytest.mark.parametrize("sparse", [False, True])
def test_frequency_scale_auto_starts_spiky_columns_at_high_frequencies(sparse):
    # Column 1 is zero for 90 % of the rows (a spike and a tail, like a capital
    # gain); columns 0 and 2 are smooth; column 3 is binary (not embedded).
    rng = np.random.default_rng(0)
    n = 400
    X = np.column_stack([rng.normal(size=n),
                         np.where(rng.random(n) < 0.9, 0.0, rng.exponential(3.0, n)),
                         rng.normal(size=n), rng.integers(0, 2, n)]).astype(np.float32)
    y = (X[:, 0] + (X[:, 1] > 2) > 0.5).astype(int)
    clf = _fit(DeepMLPClassifier(numeric_embedding="periodic", frequency_scale="auto",
                                 **{**FAST, "max_iter": 1}),
               sp.csr_matrix(X) if sparse else X, y)
    spec = clf._embedding
    assert spec.numeric == (0, 1, 2)
    assert spec.frequency_scale == (0.1, 10.0, 0.1)
    std = clf.net_.module_.embedding.frequencies.detach().std(dim=1).numpy()
    assert std[1] > 30 * max(std[0], std[2])
    # A float keeps one scale for every column; "auto" is refitted by clone.
    other = _fit(DeepMLPClassifier(numeric_embedding="periodic", frequency_scale=0.3,
                                   **{**FAST, "max_iter": 1}), X, y)
    assert other._embedding.frequency_scale == 0.3
    assert clone(clf).frequency_scale == "auto"


def test_frequency_scale_auto_stays_fixed_by_the_first_fit():
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(size=300),
                         np.where(rng.random(300) < 0.8, 0.0, 1.0 + rng.random(300))])
    y = (X[:, 0] > 0).astype(int)
    clf = _fit(DeepMLPClassifier(numeric_embedding="periodic", frequency_scale="auto",
                                 warm_start=True, **FAST), X, y)
    assert clf._embedding.frequency_scale == (0.1, 10.0)
    X2 = X.copy()
    X2[:, 1] = rng.normal(size=300)  # no longer spiky: the first fit's scales stay
    _fit(clf, X2, y)
    assert clf._embedding.frequency_scale == (0.1, 10.0)
    clf.partial_fit(X2, y)
    assert clf._embedding.frequency_scale == (0.1, 10.0)
