"""The row probe: how few rows a prediction's matrix products may be padded to."""

import numpy as np
import pytest
import torch

from sklearn_deepnet._engine import row_probe
from sklearn_deepnet._engine.inference import predict_raw
from sklearn_deepnet._engine.module import MLP


@pytest.fixture
def fresh_probe(monkeypatch):
    """An empty probe cache, so that a test's shapes are probed in the test."""
    monkeypatch.setattr(row_probe, "_PROBED", {})


def _rounding_like_a_small_matrix_blas(threshold, original=torch.addmm, row_dim=0,
                                       change=lambda out: torch.nextafter(
                                           out, torch.full_like(out, np.inf)),
                                       also=()):
    """``original`` (torch.addmm, or torch.baddbmm with ``row_dim=1``), except that a
    product of fewer than ``threshold`` rows, or of a row count in ``also``,
    gives ``change(result)``: a BLAS that rounds differently for few rows (what
    MKL does for 1 to 3, and on 2 threads for 5-7 and 9-11, at made-up counts)."""

    def product(b, x, w):
        out = original(b, x, w)
        rows = x.shape[row_dim]
        return change(out) if rows < threshold or rows in also else out

    return product


def test_the_probe_answers_a_candidate_and_remembers_each_shape(fresh_probe, monkeypatch):
    rows = row_probe.min_rows([(20, 64), (64, 16)])
    assert rows in row_probe.ROW_CANDIDATES
    calls = []
    original = torch.addmm
    monkeypatch.setattr(torch, "addmm", lambda *a: calls.append(1) or original(*a))
    assert row_probe.min_rows([(64, 16), (20, 64)]) == rows  # (kept: no product run)
    assert not calls


@pytest.mark.parametrize("threshold, also, expected", [
    (17, (), 2),  # (fewer than 17 rows: the fallback, 64)
    (10, (), 1),  # (8 rows round differently: at least 16)
    (4, (5, 6, 7, 9, 10, 11), 0),  # (MKL here: 4, 8 and 12 rows are safe)
    (4, (13,), 0),  # (13 rows are never used: padded to 16)
    (4, (12,), 1),
    (4, (31,), 2),
])
def test_a_blas_rounding_differently_below_the_candidate_gets_the_fallback(
        fresh_probe, monkeypatch, threshold, also, expected):
    monkeypatch.setattr(torch, "addmm", _rounding_like_a_small_matrix_blas(threshold,
                                                                           also=also))
    assert row_probe.min_rows([(20, 64), (64, 16)]) == row_probe.ROW_CANDIDATES[expected]


def test_the_row_rules_give_counts_they_allow():
    # Every count a rule gives is one it allows (and what its probe tried);
    # an ensemble's hidden products have k times the rows: allowed too.
    for rule in row_probe.ROW_CANDIDATES:
        def allowed(rows, rule=rule):
            return rows in rule.small or rows >= rule.floor

        for n in range(1, 300):
            rows = rule.rows(n)
            assert rows >= n and allowed(rows) and rule.rows(rows) == rows
            assert all(allowed(rows * k) for k in range(1, 20))
        assert rule.least == min(r for r in range(1, 100) if allowed(r))
    assert [row_probe.ROW_CANDIDATES[0].rows(n) for n in (1, 4, 5, 12, 13, 16, 17)] == \
        [4, 4, 8, 12, 16, 16, 17]


def test_predictions_stay_batch_invariant_on_a_blas_that_needs_more_rows(fresh_probe,
                                                                          monkeypatch):
    # With products of fewer than 40 rows rounding differently, a plan padded to
    # 16 rows would give a single row other bits than the same row in a batch;
    # the probe sees it and the plan pads to 64.
    monkeypatch.setattr(torch, "addmm", _rounding_like_a_small_matrix_blas(40))
    torch.manual_seed(0)
    net = MLP(20, [48, 33], 3).initialize_()
    X = np.random.default_rng(0).normal(size=(300, 20)).astype(np.float32)
    full = predict_raw(net, X, "cpu")
    for i in (0, 7, 299):
        np.testing.assert_array_equal(predict_raw(net, X[i : i + 1], "cpu"), full[i : i + 1])


def test_an_embeddings_batched_products_are_probed_too(fresh_probe, monkeypatch):
    # A numeric embedding runs one batched product (baddbmm) over its columns:
    # a BLAS whose batched products of fewer than 40 rows round differently
    # must give its plan 64 rows, and a single row still the batch's bits.
    from sklearn_deepnet._engine.embeddings import EmbeddingSpec

    # (an exaggerated difference: one ulp is lost in the ReLU and the next layer's
    # rounding here)
    monkeypatch.setattr(torch, "baddbmm", _rounding_like_a_small_matrix_blas(
        40, torch.baddbmm, row_dim=1, change=lambda out: out * (1 + 1e-3) + 1e-3))
    assert row_probe.min_rows([(3, 10, 4)]) == row_probe.ROW_CANDIDATES[-1]
    assert row_probe.min_rows([(20, 64)]) in row_probe.ROW_CANDIDATES  # (plain products)
    spec = EmbeddingSpec("periodic", 6, (0, 2, 5), size=4, n_frequencies=5, frequency_scale=0.2)
    torch.manual_seed(0)
    net = MLP(6, [24], 3, embedding=spec).initialize_()
    X = np.random.default_rng(1).normal(size=(300, 6)).astype(np.float32)
    full = predict_raw(net, X, "cpu")
    for i in (0, 150, 299):
        np.testing.assert_array_equal(predict_raw(net, X[i : i + 1], "cpu"), full[i : i + 1])


def test_the_probe_answers_per_thread_count(fresh_probe, monkeypatch):
    # BLAS splits a product's rows between threads (MKL here: 5-7 and 9-11 rows
    # round differently on two threads only), so a rule holds for the thread
    # count it was probed on. A BLAS that rounds products of fewer than 16 rows
    # differently on 3 threads only: 4 rows on one thread, 16 on three; and a
    # row predicted alone on three threads keeps the batch's bits.
    original = torch.addmm

    def addmm(b, x, w):
        out = original(b, x, w)
        if torch.get_num_threads() == 3 and x.shape[0] < 16:
            return torch.nextafter(out, torch.full_like(out, np.inf))
        return out

    monkeypatch.setattr(torch, "addmm", addmm)
    shapes = [(20, 64), (64, 16)]
    assert row_probe.min_rows(shapes, 1) == row_probe.ROW_CANDIDATES[0]
    assert row_probe.min_rows(shapes, 3) == row_probe.ROW_CANDIDATES[1]
    torch.manual_seed(0)
    net = MLP(20, [48, 32], 3).initialize_()
    X = np.random.default_rng(0).normal(size=(300, 20)).astype(np.float32)
    full = predict_raw(net, X, "cpu", n_threads=1)
    for threads in (1, 3):
        for i in (0, 7, 299):
            np.testing.assert_array_equal(
                predict_raw(net, X[i : i + 1], "cpu", n_threads=threads), full[i : i + 1])
        np.testing.assert_array_equal(predict_raw(net, X, "cpu", n_threads=threads), full)


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
def test_a_request_is_padded_to_counts_the_rule_and_the_loops_allow(threads):
    # padded_rows combines the thread count's row rule with the element-wise
    # alignment (elementwise.aligned_rows) until both hold: the result is a
    # count the rule allows, aligned, at least the request's, and k times it
    # (an ensemble's hidden products) is allowed too.
    from types import SimpleNamespace

    from sklearn_deepnet._engine.elementwise import aligned_rows
    from sklearn_deepnet._engine.eval_plan import padded_rows

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for rule in row_probe.ROW_CANDIDATES:
            for per_row in [(), (112,), (48, 112), (16,), (256 * 4,), (8192 * 32,), (80, 48)]:
                plan = SimpleNamespace(rules={threads: rule}, per_row=per_row, shapes=())
                for n in range(1, 300):
                    rows = padded_rows(plan, n)
                    assert rows >= n and rule.rows(rows) == rows, (rule, per_row, n)
                    assert all(rule.rows(rows * k) == rows * k for k in range(1, 9))
                    if per_row:
                        assert aligned_rows(rows, per_row, threads) == rows
    finally:
        torch.set_num_threads(before)
