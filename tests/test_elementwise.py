"""Element-wise activations on every thread, batch-invariant (``_engine.elementwise``)."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_deepnet._engine import elementwise, eval_plan
from sklearn_deepnet._engine.activations import ACTIVATIONS
from sklearn_deepnet._engine.elementwise import (
    BLOCK,
    GRAIN,
    aligned_rows,
    parallel,
    splits_aligned,
)
from sklearn_deepnet._engine.inference import predict_raw
from sklearn_deepnet._engine.module import MLP


def _pieces(n, threads, openmp):
    """(start, length) of each piece ATen cuts a loop of ``n`` elements into: OpenMP
    gives ``min(threads, ceil(n / GRAIN))`` threads ``ceil(n / used)`` each, the
    native pool pieces of ``max(GRAIN, ceil(n / threads))``; a loop that is not
    :func:`parallel` runs on one thread."""
    if not parallel(n, threads):
        return [(0, n)]
    if openmp:
        chunk = -(-n // min(threads, -(-n // GRAIN)))
    else:
        chunk = max(GRAIN, -(-n // threads))
    return [(s, min(chunk, n - s)) for s in range(0, n, chunk)]


@settings(max_examples=500, deadline=None)
@given(n=st.integers(1, 50_000),
       per_row=st.lists(st.integers(1, 64).map(lambda m: 16 * m), min_size=1, max_size=3),
       threads=st.integers(1, 64))
def test_aligned_rows_cut_every_loop_at_block_boundaries(n, per_row, threads):
    rows = aligned_rows(n, per_row, threads)
    assert n <= rows < n + 4 * threads
    for e, openmp in itertools.product(per_row, [True, False]):
        pieces = _pieces(rows * e, threads, openmp)
        assert len(pieces) in (1, threads)
        assert all(start % BLOCK == 0 and length % BLOCK == 0 for start, length in pieces)


def test_aligned_rows_adds_no_row_where_none_is_needed():
    assert aligned_rows(1000, [128], 2) == 1000  # 64,000 elements per thread
    assert aligned_rows(16, [112], 1) == 16      # 1,792 = 28 blocks
    assert aligned_rows(17, [112], 1) == 20      # 4 rows are 7 blocks
    assert aligned_rows(5, [], 8) == 5
    assert aligned_rows(300, [112], 2) == 300    # one thread: 525 blocks
    # 1,001 x 112 = 112,112 elements on two threads: pieces of 56,056 = 875.9 blocks
    assert aligned_rows(1001, [112], 2) == 1008


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
    real = eval_plan.activation_row

    class Misaligned:
        exact = False

        def __init__(self, row):
            self.row = row

        def evaluation(self, module, width, refresh=None):
            return _misaligned(self.row.evaluation(module, width, refresh))

    if elementwise._disagreeing_inputs(F.selu, 48, torch.Generator().manual_seed(0)) is None:
        pytest.skip("SELU's scalar and vectorized kernels agree on this machine")
    monkeypatch.setattr(eval_plan, "activation_row", lambda m: Misaligned(real(m)))
    monkeypatch.setattr(elementwise, "_PROBED", {})  # (SELU's real kernels probed: forget)
    if trust:
        monkeypatch.setattr(eval_plan, "splits_aligned", lambda *args: True)
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


@pytest.mark.parametrize("threads", [3, 4])
def test_gelu_between_its_own_grain_and_atens_stays_batch_invariant(threads):
    # Upstream's GELU kernel has split loops from 16,384 elements (below the
    # usual grain of 32,768): 100 rows x 256 units is such a loop. (Not split by
    # this torch build: the test guards builds that do.)
    torch.manual_seed(0)
    net = MLP(20, [256], 3, activation="gelu").initialize_()
    X = np.random.default_rng(0).normal(size=(1000, 20)).astype(np.float32)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        full = predict_raw(net, X, "cpu", n_threads=threads)
        for size in (100, 127):
            pieces = np.vstack([predict_raw(net, X[i : i + size], "cpu", n_threads=threads)
                                for i in range(0, 1000, size)])
            np.testing.assert_array_equal(pieces, full, err_msg=f"chunks of {size}")
    finally:
        torch.set_num_threads(before)
