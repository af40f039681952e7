"""Element-wise activations on every thread, batch-invariant (``_engine.elementwise``)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_deepnet._engine import elementwise, inference
from sklearn_deepnet._engine.activations import ACTIVATIONS
from sklearn_deepnet._engine.elementwise import BLOCK, GRAIN, aligned_rows, splits_aligned
from sklearn_deepnet._engine.inference import predict_raw
from sklearn_deepnet._engine.module import MLP


def _pieces_openmp(n, threads):
    """ATen's OpenMP ``parallel_for``: (start, length) of each thread's piece."""
    if threads == 1 or n < GRAIN:
        return [(0, n)]
    used = min(threads, -(-n // GRAIN))
    chunk = -(-n // used)
    return [(s, min(chunk, n - s)) for s in range(0, n, chunk)]


def _pieces_native(n, threads):
    """ATen's native thread pool: pieces of ``max(GRAIN, ceil(n / threads))``."""
    if threads == 1 or n < GRAIN:
        return [(0, n)]
    chunk = max(GRAIN, -(-n // threads))
    return [(s, min(chunk, n - s)) for s in range(0, n, chunk)]


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 50_000),
       per_row=st.lists(st.integers(1, 64).map(lambda m: 16 * m), min_size=1, max_size=3),
       threads=st.integers(1, 64))
def test_aligned_rows_cut_every_loop_at_block_boundaries(n, per_row, threads):
    rows = aligned_rows(n, per_row, threads)
    assert n <= rows <= n + 64 * math.lcm(threads, 64)
    for e in per_row:
        for pieces in (_pieces_openmp(rows * e, threads), _pieces_native(rows * e, threads)):
            assert all(start % BLOCK == 0 and length % BLOCK == 0 for start, length in pieces)


def test_aligned_rows_adds_no_row_where_none_is_needed():
    assert aligned_rows(1000, [128], 2) == 1000  # 64,000 elements per thread
    assert aligned_rows(16, [112], 1) == 16      # 1,792 = 28 blocks
    assert aligned_rows(17, [112], 1) == 20      # 4 rows are 7 blocks
    assert aligned_rows(5, [], 8) == 5


def _misaligned(fn):
    """``fn`` as a thread pool that cuts the loop off block boundaries would run it."""
    def apply(x):
        threads = torch.get_num_threads()
        if threads == 1 or x.numel() < GRAIN:
            return fn(x)
        flat, piece = x.reshape(-1), -(-x.numel() // threads) + 8
        torch.set_num_threads(1)
        try:
            return torch.cat([fn(flat[s : s + piece]) for s in range(0, len(flat), piece)]
                             ).view_as(x)
        finally:
            torch.set_num_threads(threads)
    return apply


_NOT_EXACT = sorted(name for name, row in ACTIVATIONS.items() if not row.exact)


@pytest.mark.parametrize("name", _NOT_EXACT)
@pytest.mark.parametrize("threads", [2, 3])
def test_aten_cuts_every_activation_where_predicted(name, threads):
    row = ACTIVATIONS[name]
    fn = row.evaluation(row.factory(row.default_alpha), 112)
    assert splits_aligned(fn, ("test", name), 112, 224, threads)


def test_the_probe_refuses_a_loop_cut_elsewhere():
    if elementwise._disagreeing_inputs(F.selu, 48, torch.Generator().manual_seed(0)) is None:
        pytest.skip("SELU's scalar and vectorized kernels agree on this machine")
    assert not splits_aligned(_misaligned(F.selu), "misaligned selu", 48, 48, 2)
    assert splits_aligned(F.selu, "selu", 48, 48, 2)


@pytest.mark.parametrize("trust", [False, True])
def test_an_activation_cut_elsewhere_falls_back_to_one_thread(monkeypatch, trust):
    # A thread pool that cut loops elsewhere: the probe sends the activation to
    # one thread and predictions stay batch-invariant; trusted blindly, not.
    real = inference.activation_row

    class Misaligned:
        exact = False

        def __init__(self, row):
            self.row = row

        def evaluation(self, module, width, refresh=None):
            return _misaligned(self.row.evaluation(module, width, refresh))

    monkeypatch.setattr(inference, "activation_row", lambda m: Misaligned(real(m)))
    if trust:
        monkeypatch.setattr(inference, "splits_aligned", lambda *args: True)
    torch.manual_seed(0)
    net = MLP(20, [100, 48], 3, activation="selu").initialize_()
    X = np.random.default_rng(0).normal(size=(1500, 20)).astype(np.float32)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        full = predict_raw(net, X, "cpu", n_threads=2)
        pieces = np.vstack([predict_raw(net, X[i : i + 700], "cpu", n_threads=2)
                            for i in range(0, 1500, 700)])
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(pieces, full) != trust
