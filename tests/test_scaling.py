"""Parallel and distributed search, and streaming through partial_fit (docs/scaling.md)."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_deepnet import DeepMLPClassifier

X, y = load_digits(return_X_y=True)
X, y = X[:600], y[:600]
GRID = {"deepmlpclassifier__hidden_layer_sizes": [(16,), (32,)],
        "deepmlpclassifier__dropout": [0.0, 0.2]}


def _search(**kwargs):
    pipe = make_pipeline(StandardScaler(), DeepMLPClassifier(max_iter=4, random_state=0))
    return GridSearchCV(pipe, GRID, cv=2, error_score="raise", **kwargs)


def _same_search(a, b):
    assert a.best_params_ == b.best_params_
    np.testing.assert_array_equal(a.cv_results_["mean_test_score"],
                                  b.cv_results_["mean_test_score"])
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


@pytest.fixture(scope="module")
def serial():
    return _search(n_jobs=1).fit(X, y)


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_parallel_search_equals_the_serial_search(serial, backend):
    from joblib import parallel_backend

    with parallel_backend(backend, n_jobs=2):
        parallel = _search(n_jobs=2).fit(X, y)
    _same_search(serial, parallel)


def test_search_on_a_dask_cluster_equals_the_serial_search(serial):
    distributed = pytest.importorskip("distributed")
    from joblib import parallel_backend

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster):
        with parallel_backend("dask"):
            on_cluster = _search().fit(X, y)
    _same_search(serial, on_cluster)


@pytest.mark.slow
def test_search_on_ray_equals_the_serial_search(serial):
    ray = pytest.importorskip("ray")
    from joblib import parallel_backend
    from ray.util.joblib import register_ray

    register_ray()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with parallel_backend("ray"):
            on_ray = _search().fit(X, y)
    finally:
        ray.shutdown()
    _same_search(serial, on_ray)


def test_streaming_with_dask_ml_incremental_equals_a_chunk_loop():
    da = pytest.importorskip("dask.array")
    wrappers = pytest.importorskip("dask_ml.wrappers")
    Xs = StandardScaler().fit_transform(X).astype(np.float32)
    classes = np.unique(y)
    params = dict(hidden_layer_sizes=(32,), random_state=0)
    inc = wrappers.Incremental(DeepMLPClassifier(**params), scoring="accuracy",
                               shuffle_blocks=False)  # the chunks in order, as the loop
    inc.fit(da.from_array(Xs, chunks=(150, Xs.shape[1])), da.from_array(y, chunks=150),
            classes=classes)
    loop = DeepMLPClassifier(**params)
    for start in range(0, len(Xs), 150):  # one epoch over each chunk, in order
        loop.partial_fit(Xs[start:start + 150], y[start:start + 150], classes=classes)
    fitted = inc.estimator_
    assert len(fitted.loss_curve_) == 4 and fitted.t_ == len(Xs)
    np.testing.assert_array_equal(fitted.predict_proba(Xs), loop.predict_proba(Xs))


def test_streaming_from_a_memory_mapped_file(tmp_path):
    path = tmp_path / "X.npy"
    np.save(path, StandardScaler().fit_transform(X).astype(np.float32))
    X_map = np.load(path, mmap_mode="r")  # read-only, never loaded whole
    clf = DeepMLPClassifier((32,), batch_size=32, random_state=0)
    for _ in range(5):  # five passes over the file, one chunk of 200 rows at a time
        for start in range(0, len(X_map), 200):
            clf.partial_fit(X_map[start:start + 200], y[start:start + 200],
                            classes=np.unique(y))
    assert clf.t_ == 5 * len(X_map) and clf.score(X_map, y) > 0.8
