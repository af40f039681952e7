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


# --- GPUs (docs/scaling.md, "GPUs"): run where CUDA is present ----------------

def _cuda_search(**kwargs):
    pipe = make_pipeline(StandardScaler(),
                         DeepMLPClassifier(max_iter=4, random_state=0, device="cuda"))
    return GridSearchCV(pipe, GRID, cv=2, error_score="raise", **kwargs)


def _close_search(a, b):
    # Two CUDA processes need not round alike (cuBLAS may pick other kernels):
    # the same best candidate and scores within float32 noise.
    assert a.best_params_ == b.best_params_
    np.testing.assert_allclose(a.cv_results_["mean_test_score"],
                               b.cv_results_["mean_test_score"], atol=2e-3)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=1e-3)


@pytest.fixture(scope="module")
def cuda_serial():
    return _cuda_search(n_jobs=1).fit(X, y)


@pytest.mark.gpu
def test_search_with_workers_sharing_one_gpu(cuda_serial):
    from joblib import parallel_backend

    with parallel_backend("loky", n_jobs=2):  # two processes, one CUDA context each
        shared = _cuda_search(n_jobs=2).fit(X, y)
    _close_search(cuda_serial, shared)
    assert next(shared.best_estimator_[-1].module_.parameters()).is_cuda


def _one_gpu_per_worker_cluster(distributed, n_gpus):
    """Dask workers each seeing one GPU as cuda:0 (what dask_cuda's LocalCUDACluster does)."""
    workers = {
        f"gpu{i}": {"cls": distributed.Nanny,
                    "options": {"nthreads": 1, "env": {"CUDA_VISIBLE_DEVICES": str(i)},
                                "host": "127.0.0.1", "silence_logs": 40}}
        for i in range(n_gpus)
    }
    scheduler = {"cls": distributed.Scheduler,
                 "options": {"host": "127.0.0.1", "dashboard_address": None}}
    return distributed.SpecCluster(workers=workers, scheduler=scheduler, silence_logs=40)


@pytest.mark.gpu
def test_search_with_one_gpu_per_worker(cuda_serial):
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    distributed = pytest.importorskip("distributed")
    from joblib import parallel_backend

    def seen():
        import os

        import torch
        return os.environ["CUDA_VISIBLE_DEVICES"], torch.cuda.device_count()

    with _one_gpu_per_worker_cluster(distributed, 2) as cluster, \
            distributed.Client(cluster) as client:
        assert sorted(client.run(seen).values()) == [("0", 1), ("1", 1)]
        with parallel_backend("dask"):
            spread = _cuda_search().fit(X, y)
    _close_search(cuda_serial, spread)
