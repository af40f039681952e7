import os

import numpy as np
import pytest
import torch

from sklearn_deepnet import DeepMLPClassifier
from sklearn_deepnet._engine.data import (
    Batches,
    RowSubset,
    TensorData,
    choose_num_threads,
    largest_product,
    threads_for,
)


def _data(n):
    X = torch.arange(n, dtype=torch.float32)[:, None]
    return TensorData(X, torch.arange(n), torch.ones(n))


def _epoch(batches):
    """The ``(X, y, w)`` batches of one epoch, as the training steps gather them."""
    order = batches.order()
    return [batches.data.batch(order, start, stop) for start, stop in batches.spans()]


@pytest.mark.parametrize("n, batch", [(10, 3), (10, 5), (7, 10), (1, 1)])
def test_every_sample_once_per_epoch(n, batch):
    it = Batches(_data(n), batch, shuffle=True, generator=torch.Generator().manual_seed(0))
    for _ in range(2):
        seen = torch.cat([xb[:, 0] for xb, _, _ in _epoch(it)])
        assert sorted(seen.tolist()) == list(range(n))
    assert len(it) == -(-n // batch)


def test_shuffle_is_seeded_and_batches_stay_aligned():
    data = _data(50)
    def order(seed):
        it = Batches(data, 8, True, torch.Generator().manual_seed(seed))
        return [xb[:, 0].tolist() for xb, _, _ in _epoch(it)]

    a, b = order(1), order(1)
    assert a == b and a[0] != list(range(8))
    for xb, yb, _wb in _epoch(Batches(data, 8, True, torch.Generator().manual_seed(2))):
        assert torch.equal(xb[:, 0].long(), yb)


def test_trailing_singleton_merged_for_batch_norm():
    sizes = [len(xb) for xb, _, _ in _epoch(Batches(_data(11), 5, False, min_batch=2))]
    assert sizes == [5, 6]
    assert [len(xb) for xb, _, _ in _epoch(Batches(_data(11), 5, False))] == [5, 5, 1]


def test_batch_norm_fit_with_trailing_singleton(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((8,), batch_norm="after", batch_size=199, max_iter=2,
                            random_state=0).fit(X, y)
    assert clf.history_[-1]["train_batch_count"] == 1  # 199 + 1: one batch of 200
    assert clf.history_[-1]["train_samples"] == 200


def test_rows_select_training_samples_without_copying_X():
    data = _data(10)
    data.rows = torch.tensor([1, 3, 4, 8])
    for shuffle in (False, True):
        it = Batches(data, 3, shuffle, torch.Generator().manual_seed(0))
        seen = torch.cat([xb[:, 0] for xb, _, _ in _epoch(it)])
        assert sorted(seen.tolist()) == [1, 3, 4, 8]
    assert len(data) == 4


def test_unshuffled_batches_are_views():
    data = _data(10)
    xb, _, _ = _epoch(Batches(data, 4, False))[0]
    assert xb.data_ptr() == data.X.data_ptr()


def test_choose_num_threads():
    assert choose_num_threads(32, 64, [100] * 5, 2) == 1  # (a) of the benchmark
    assert choose_num_threads(128, 64, [256] * 3, 2) == 2  # (b)
    assert choose_num_threads(1024, 64, [256] * 3, 8) == 8
    assert choose_num_threads(32, 10, [], 4) == 1
    # What predictions keep per network: the largest product, then the rule.
    assert largest_product(64, [256] * 3) == 256 * 256
    assert largest_product(10, []) == 0
    assert threads_for(32, 100 * 100, 2) == 1  # (a): 320,000 multiply-adds per product
    assert threads_for(128, 256 * 256, 2) == 2  # (b): 8.4 million
    assert threads_for(2**21 // 1000 + 1, 1000, 4) == 4  # (just above the threshold)
    assert threads_for(2**21 // 1000, 1000, 4) == 1


def test_n_threads_used_during_fit_and_restored(clf_data, monkeypatch):
    X, y = clf_data
    seen = []
    from sklearn_deepnet._trainer import TrainingNet

    original = TrainingNet.fit_loop

    def fit_loop(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TrainingNet, "fit_loop", fit_loop)
    before = torch.get_num_threads()
    n_cpus = os.cpu_count()
    DeepMLPClassifier((8,), max_iter=1, n_threads=min(3, n_cpus), device="cpu").fit(X, y)
    DeepMLPClassifier((8,), max_iter=1, device="cpu").fit(X, y)
    # Issue 22, item 10: n_threads=10**6 killed the process (the thread library
    # ran out of memory); more threads than CPUs are never started.
    DeepMLPClassifier((8,), max_iter=1, n_threads=10**6, device="cpu").fit(X, y)
    assert seen == [min(3, n_cpus), 1, n_cpus]
    assert torch.get_num_threads() == before


def test_l2_shrinks_and_l1_sparsifies(clf_data):
    X, y = clf_data
    kw = dict(hidden_layer_sizes=(64,), learning_rate_init=0.01, batch_size=20,
              max_iter=40, random_state=0, tol=0.0)
    w = {}
    for name, params in {"none": dict(alpha=0.0), "l2": dict(alpha=5.0),
                         "l1": dict(alpha=5.0, l1_ratio=1.0)}.items():
        w[name] = DeepMLPClassifier(**kw, **params).fit(X, y).net_.module_.hidden[0].linear.weight
    assert w["l2"].norm() < 0.5 * w["none"].norm()
    near_zero = {k: (v.abs() < 1e-2).float().mean().item() for k, v in w.items()}
    assert near_zero["l1"] > 0.5 and near_zero["l1"] > near_zero["none"] + 0.3


def test_epoch_records(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((8,), batch_size=64, max_iter=3, random_state=0).fit(X, y)
    for row in clf.history_:
        assert row["train_batch_count"] == 4 and row["train_samples"] == 200
        assert row["dur"] > 0
    assert clf.t_ == 600


def test_batch_size_auto_and_explicit(clf_data):
    X, y = clf_data
    auto = DeepMLPClassifier((8,), max_iter=1, random_state=0).fit(X[:150], y[:150])
    assert auto.history_[-1]["train_batch_count"] == 1  # min(200, 150)
    big = DeepMLPClassifier((8,), max_iter=1, random_state=0).fit(np.vstack([X, X]),
                                                                  np.r_[y, y])
    assert big.history_[-1]["train_batch_count"] == 2  # 400 samples / 200
    with pytest.warns(UserWarning, match="larger than the 150 training samples"):
        DeepMLPClassifier((8,), batch_size=1000, max_iter=1).fit(X[:150], y[:150])


def test_shuffle_changes_training(clf_data):
    X, y = clf_data
    kw = dict(hidden_layer_sizes=(8,), batch_size=20, max_iter=3, random_state=0)
    a = DeepMLPClassifier(**kw, shuffle=False).fit(X, y)
    b = DeepMLPClassifier(**kw, shuffle=False).fit(X, y)
    c = DeepMLPClassifier(**kw, shuffle=True).fit(X, y)
    assert a.loss_curve_ == b.loss_curve_
    assert a.loss_curve_ != c.loss_curve_


@pytest.mark.parametrize("fraction, n_val", [(0.1, 20), (0.25, 50)])
def test_validation_fraction_holds_out_samples(fraction, n_val, clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((8,), early_stopping=True, validation_fraction=fraction,
                            max_iter=2, random_state=0).fit(X, y)
    assert clf.history_[-1]["train_samples"] == 200 - n_val


def test_row_subset_gathers_rows_into_a_reused_buffer():
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    sub = RowSubset(X, np.array([7, 2, 5]))
    assert len(sub) == 3 and sub.shape == (3, 2)
    np.testing.assert_array_equal(sub[0:2], X[[7, 2]])
    first = sub[0:3]
    np.testing.assert_array_equal(sub[1:3], X[[2, 5]])
    assert np.shares_memory(first, sub[0:1])  # one buffer, reused


def test_torch_threads_shares_the_cores_between_threads_and_restores_each_count():
    import threading

    from sklearn_deepnet._engine.data import torch_threads

    caller = torch.get_num_threads()
    seen = {}
    a_inside, b_inside = threading.Event(), threading.Event()

    def user(name, first, then):
        torch.set_num_threads(3)  # this thread's own setting (thread-local in torch)
        with torch_threads(4):
            seen[name] = torch.get_num_threads()
            first.set()
            then.wait(10)
        seen[name + " after"] = torch.get_num_threads()

    a = threading.Thread(target=user, args=("a", a_inside, b_inside))
    b = threading.Thread(target=lambda: (a_inside.wait(10), user("b", b_inside,
                                                                   threading.Event())))
    a.start()
    b.start()
    a.join()
    b.join()
    # Worker threads get at most half; b came while a was inside: half as well; each
    # got its own count back.
    assert seen == {"a": 2, "b": 2, "a after": 3, "b after": 3}
    assert torch.get_num_threads() == caller  # other threads never touch this one's
    with torch_threads(2):  # the main thread, alone: all it asks for
        assert torch.get_num_threads() == 2
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2  # a nested use gives the outer count back


@pytest.mark.parametrize("params", [dict(), dict(dropout=0.2), dict(activation="rrelu")],
                         ids=["deterministic", "dropout", "rrelu"])
def test_concurrent_fits_in_threads_match_serial_fits(params):
    """Fits in parallel threads (joblib's threading backend, Dask threads) give what
    serial fits give, and leave the caller's torch random state and thread count alone."""
    from joblib import Parallel, delayed
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=300, n_features=8, random_state=0)
    threads, state = torch.get_num_threads(), torch.random.get_rng_state()

    def fit(seed):
        model = DeepMLPClassifier((16, 16), max_iter=5, random_state=seed, **params).fit(X, y)
        return model.predict_proba(X)

    serial = [fit(s) for s in range(4)]
    parallel = Parallel(n_jobs=4, backend="threading")(delayed(fit)(s) for s in range(4))
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), state)


def test_a_callback_drawing_random_numbers_is_seeded_and_leaves_the_caller_alone():
    from sklearn.datasets import make_classification
    from skorch.callbacks import Callback

    class GradientNoise(Callback):
        def on_grad_computed(self, net, named_parameters, **kwargs):
            for _, p in named_parameters:
                p.grad.add_(torch.randn_like(p) * 1e-2)

    X, y = make_classification(n_samples=200, n_features=8, random_state=0)
    results = []
    for caller_seed in (1, 2):
        torch.manual_seed(caller_seed)
        state = torch.random.get_rng_state()
        clf = DeepMLPClassifier((16,), max_iter=3, random_state=0,
                                callbacks=[GradientNoise()]).fit(X, y)
        assert torch.equal(torch.random.get_rng_state(), state)
        results.append(clf.predict_proba(X))
    np.testing.assert_array_equal(*results)  # random_state alone decides


def test_mc_dropout_predictions_from_threads_sharing_one_estimator():
    from concurrent.futures import ThreadPoolExecutor

    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=300, n_features=8, random_state=0)
    clf = DeepMLPClassifier((32, 32), dropout=0.3, mc_dropout=20, max_iter=3,
                            random_state=0).fit(X, y)
    expected = clf.predict_proba(X)
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            for got in pool.map(lambda _: clf.predict_proba(X), range(4)):
                np.testing.assert_array_equal(got, expected)
