"""Sparse input: scipy.sparse matrices and arrays, densified batch by batch."""

import resource

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor


@pytest.mark.parametrize("container", [sp.csr_matrix, sp.csc_matrix, sp.coo_matrix,
                                       sp.csr_array])
@pytest.mark.parametrize("kwargs", [dict(), dict(early_stopping=True),
                                    dict(batch_norm="before", dropout=0.2)], ids=str)
def test_sparse_fit_equals_dense_fit(container, kwargs, clf_data):
    X, y = clf_data
    X = np.where(np.abs(X) < 0.8, 0.0, X)  # mostly zeros
    dense = DeepMLPClassifier((16,), max_iter=3, random_state=0, **kwargs).fit(X, y)
    sparse = DeepMLPClassifier((16,), max_iter=3, random_state=0, **kwargs).fit(
        container(X), y)
    assert sparse.loss_curve_ == dense.loss_curve_
    np.testing.assert_array_equal(sparse.predict_proba(container(X)), dense.predict_proba(X))
    np.testing.assert_array_equal(sparse.predict_proba(X), dense.predict_proba(X))
    if not kwargs.get("early_stopping"):  # partial_fit does not early-stop
        dense.partial_fit(X, y)
        sparse.partial_fit(container(X), y)
        np.testing.assert_array_equal(sparse.predict_proba(X), dense.predict_proba(X))


def test_one_hot_column_transformer_pipeline():
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame({
        "city": rng.choice(["a", "b", "c", "d", "e"], n),
        "kind": rng.choice(["x", "y"], n),
        "size": rng.normal(size=n),
    })
    y = (df["city"].isin(["a", "b"]) ^ (df["kind"] == "x")).astype(int)
    pre = ColumnTransformer([("cat", OneHotEncoder(), ["city", "kind"]),
                             ("num", StandardScaler(), ["size"])], sparse_threshold=1.0)
    assert sp.issparse(pre.fit_transform(df))
    clf = make_pipeline(pre, DeepMLPClassifier((32,), learning_rate_init=0.01, max_iter=60,
                                               random_state=0))
    assert clf.fit(df, y).score(df, y) > 0.95
    reg = make_pipeline(pre, DeepMLPRegressor((16,), max_iter=20, random_state=0))
    assert reg.fit(df, df["size"] * 2).predict(df).shape == (n,)


def test_sparse_training_memory_is_bounded_by_one_dense_batch():
    # 60,000 x 20,000 at 0.01% density: 480 MB as one float32 dense matrix.
    rng = np.random.default_rng(0)
    X = sp.random(60_000, 20_000, density=1e-4, format="csr", dtype=np.float32, rng=rng)
    y = rng.integers(0, 2, X.shape[0])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    clf = DeepMLPClassifier((8,), batch_size=256, max_iter=1, random_state=0,
                            early_stopping=True, dropout=0.1).fit(X, y)
    clf.predict_proba(X)
    clf.set_params(mc_dropout=2).predict_proba(X)  # MC passes chunk the same way
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200, grown_mb
