"""Same random_state, same result: across fits, clones, processes; the caller's state untouched."""

import gc
import os

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sklearn_deepnet import DeepMLPClassifier

KW = dict(hidden_layer_sizes=(16, 16), dropout=0.2, batch_norm="after", max_iter=4,
          random_state=3)


def _weights(est):
    return [p.detach().clone() for p in est.net_.module_.state_dict().values()]


def test_two_fits_and_a_clone_are_bit_identical(clf_data):
    X, y = clf_data
    a = DeepMLPClassifier(**KW).fit(X, y)
    first = _weights(a)
    b = DeepMLPClassifier(**KW).fit(X, y)
    c = clone(a).fit(X, y)
    refit = _weights(a.fit(X, y))  # refitting the same object restarts from the same seed
    for other in (_weights(b), _weights(c), refit):
        for p, q in zip(first, other, strict=True):
            assert torch.equal(p, q)


def test_grid_search_parallel_equals_serial(clf_data):
    X, y = clf_data
    grid = {"alpha": [1e-4, 1e-2], "dropout": [0.0, 0.2]}
    serial = GridSearchCV(DeepMLPClassifier(**{**KW, "dropout": 0.0}), grid, cv=2).fit(X, y)
    parallel = GridSearchCV(DeepMLPClassifier(**{**KW, "dropout": 0.0}), grid, cv=2,
                            n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(serial.cv_results_["mean_test_score"],
                                  parallel.cv_results_["mean_test_score"])
    for p, q in zip(_weights(serial.best_estimator_), _weights(parallel.best_estimator_),
                    strict=True):
        assert torch.equal(p, q)


def test_caller_threads_and_rng_unchanged(clf_data):
    X, y = clf_data
    before_threads = torch.get_num_threads()
    torch.manual_seed(5)
    torch_state = torch.get_rng_state()
    rng_state = np.random.get_state()[1].copy()  # noqa: NPY002
    for n_threads in (None, 1, 2):
        DeepMLPClassifier(**{**KW, "random_state": 0}, n_threads=n_threads).fit(X, y)
    assert torch.get_num_threads() == before_threads
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], rng_state)  # noqa: NPY002


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_fifty_fits_do_not_leak(clf_data):
    X, y = clf_data
    X = np.repeat(X, 10, axis=0)
    y = np.repeat(y, 10)
    kw = dict(hidden_layer_sizes=(64, 64), max_iter=3, early_stopping=True, random_state=0)
    for _ in range(5):  # warm up allocator and lazy imports
        DeepMLPClassifier(**kw).fit(X, y).predict(X)
    gc.collect()
    start = _rss_mb()
    for i in range(50):
        DeepMLPClassifier(**{**kw, "random_state": i}).fit(X, y).predict_proba(X)
    gc.collect()
    assert _rss_mb() - start < 50


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_predict_runs_in_bounded_memory(clf_data):
    # 2M rows through 512-wide layers: one full-batch forward pass would hold
    # 2M x 512 x 4 B = 4 GB per layer; predictions go 8,192 rows at a time.
    X, y = clf_data
    clf = DeepMLPClassifier((512, 512), max_iter=1, random_state=0).fit(X, y)
    big = np.random.default_rng(0).normal(size=(2_000_000, X.shape[1])).astype(np.float32)
    clf.predict(big[:10_000])
    gc.collect()
    peak, start = 0.0, _rss_mb()
    import threading

    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_mb())
            done.wait(0.005)

    t = threading.Thread(target=sample)
    t.start()
    try:
        labels = clf.predict(big)
    finally:
        done.set()
        t.join()
    assert labels.shape == (2_000_000,)
    # outputs (2M x 3 float32, their concatenation, float64 labels work) ~ 100 MB
    assert peak - start < 300
