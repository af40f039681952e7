"""The data path (``_engine/data.py``): tensors, batches, row subsets, the split, threads.

Covered elsewhere and not repeated here: batch boundaries, shuffling and
row selection through ``Batches`` (``tests/test_engine.py``), the thread
rule and ``torch_threads`` across threads (``tests/test_engine.py``), the
stratified ``split_rows`` (``tests/test_base.py``).
"""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sklearn_deepnet._engine.data import (
    Batches,
    RowSubset,
    TensorData,
    index_dtype,
    split_rows,
    to_tensor,
    torch_threads,
)


# ------------------------------------------------------------------ to_tensor
def test_to_tensor_shares_a_contiguous_arrays_memory():
    X = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = to_tensor(X, "cpu")
    assert t.dtype == torch.float32 and np.shares_memory(t.numpy(), X)
    F = np.asfortranarray(X)
    t = to_tensor(F, "cpu")  # made contiguous: a copy
    assert t.is_contiguous() and torch.equal(t, torch.from_numpy(X))
    assert not np.shares_memory(t.numpy(), F)


def test_to_tensor_reads_a_read_only_array_without_a_warning_and_converts():
    X = np.arange(6, dtype=np.float64).reshape(2, 3)
    X.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = to_tensor(X, torch.device("cpu"), torch.float32)
    assert t.dtype == torch.float32 and t.tolist() == X.tolist()
    assert to_tensor(np.array([1, 2]), "cpu").dtype == torch.int64


def test_index_dtype():
    assert index_dtype(0) == index_dtype(2**31 - 1) == torch.int32
    assert index_dtype(2**31) == torch.int64


# ----------------------------------------------------------------- TensorData
def _data(n=10, y=True, **kwargs):
    X = torch.arange(2 * n, dtype=torch.float32).reshape(n, 2)
    return TensorData(X, torch.arange(n) * 10 if y else None, torch.arange(n) / 10, **kwargs)


def test_batch_slices_or_gathers_the_same_rows():
    data = _data()
    xb, yb, wb = data.batch(None, 2, 5)
    assert xb.data_ptr() == data.X[2].data_ptr()  # a view
    assert yb.tolist() == [20, 30, 40] and torch.allclose(wb, torch.tensor([0.2, 0.3, 0.4]))
    order = torch.tensor([7, 1, 4, 9], dtype=torch.int32)
    xb, yb, wb = data.batch(order, 1, 4)
    assert torch.equal(xb, data.X[[1, 4, 9]])
    assert yb.tolist() == [10, 40, 90] and torch.equal(wb, data.w[[1, 4, 9]])
    assert data.device == torch.device("cpu") and not data.sparse
    assert data.n_rows == len(data) == 10 and not data.uniform_weights


def test_without_targets_each_batch_is_its_own_target():
    data = _data(y=False)
    for order in (None, torch.tensor([3, 0, 8])):
        xb, yb, _ = data.batch(order, 0, 3)
        assert yb is xb


def test_len_counts_the_selected_rows_and_n_rows_every_row():
    data = _data(rows=torch.tensor([1, 5, 6], dtype=torch.int32), uniform_weights=True)
    assert len(data) == 3 and data.n_rows == 10 and data.uniform_weights


@pytest.mark.parametrize("y", [True, False])
def test_a_sparse_matrix_is_densified_batch_by_batch(y):
    dense = np.zeros((8, 5), dtype=np.float32)
    dense[np.arange(8), np.arange(8) % 5] = np.arange(1, 9)
    X = sp.csr_matrix(dense)
    data = TensorData(X, torch.arange(8) if y else None, torch.ones(8))
    assert data.sparse and data.n_rows == 8
    xb, yb, _ = data.batch(None, 2, 6)
    assert torch.equal(xb, torch.from_numpy(dense[2:6]))
    xb, yb, _ = data.batch(torch.tensor([6, 0, 3]), 0, 3)
    assert torch.equal(xb, torch.from_numpy(dense[[6, 0, 3]]))
    if y:
        assert yb.tolist() == [6, 0, 3]
    else:
        assert yb is xb
    assert isinstance(data.X, sp.csr_matrix)  # never densified as a whole


# -------------------------------------------------------------------- Batches
def test_the_epochs_permutation_is_the_generators():
    data = _data(12)
    batches = Batches(data, 5, shuffle=True, generator=torch.Generator().manual_seed(3))
    expected = torch.randperm(12, generator=torch.Generator().manual_seed(3),
                              dtype=torch.int32)
    order = batches.order()
    assert order.dtype == torch.int32 and torch.equal(order, expected)
    assert not torch.equal(batches.order(), expected)  # a new one per call (epoch)
    data.rows = torch.tensor([2, 3, 5, 7, 11], dtype=torch.int32)
    batches = Batches(data, 2, shuffle=True, generator=torch.Generator().manual_seed(4))
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(4), dtype=torch.int32)
    assert torch.equal(batches.order(), data.rows[perm])


def test_unshuffled_order_is_none_unless_asked_for():
    data = _data(6)
    batches = Batches(data, 4, shuffle=False)
    assert batches.order() is None
    always = batches.order(always=True)
    assert always.dtype == torch.int32 and always.tolist() == list(range(6))
    data.rows = torch.tensor([4, 1], dtype=torch.int32)
    assert batches.order() is data.rows and batches.order(always=True) is data.rows


def test_spans_and_a_lone_small_batch_is_kept():
    batches = Batches(_data(7), 3, shuffle=False)
    assert list(batches.spans()) == [(0, 3), (3, 6), (6, 7)] and len(batches) == 3
    merged = Batches(_data(7), 3, shuffle=False, min_batch=2)
    assert list(merged.spans()) == [(0, 3), (3, 7)] and len(merged) == 2
    # a single batch smaller than min_batch has no previous one to join
    alone = Batches(_data(1), 3, shuffle=False, min_batch=2)
    assert list(alone.spans()) == [(0, 1)]


# ------------------------------------------------------------------ RowSubset
def test_row_subset_of_a_sparse_matrix_is_densified():
    X = sp.random(9, 4, density=0.5, format="csr", random_state=0, dtype=np.float32)
    sub = RowSubset(X, np.array([8, 0, 4]))
    assert sub.sparse and len(sub) == 3 and sub.shape == (3, 4)
    np.testing.assert_array_equal(sub[1:3], X.toarray()[[0, 4]])
    assert not RowSubset(X.toarray(), np.array([1])).sparse


def test_row_subset_buffer_grows_and_is_not_pickled():
    X = np.arange(30, dtype=np.float64).reshape(10, 3)
    sub = RowSubset(X, np.array([9, 2, 5, 7, 1]))
    np.testing.assert_array_equal(sub[0:2], X[[9, 2]])
    np.testing.assert_array_equal(sub[0:5], X[[9, 2, 5, 7, 1]])  # a larger buffer
    assert sub[0:5].dtype == np.float64
    loaded = pickle.loads(pickle.dumps(sub))
    assert loaded._buffer is None
    np.testing.assert_array_equal(loaded[2:4], X[[5, 7]])


# ----------------------------------------------------------------- split_rows
def test_plain_split_is_a_seeded_shuffle():
    rows = np.arange(20, 40)
    train, val = split_rows(rows, 6, None, seed=7)
    perm = rows.copy()
    np.random.RandomState(7).shuffle(perm)
    np.testing.assert_array_equal(val, perm[:6])
    np.testing.assert_array_equal(train, perm[6:])
    assert np.array_equal(rows, np.arange(20, 40))  # the caller's rows untouched
    big = split_rows(rows, 6, None, seed=2**32 + 7)  # seeds wrap at 2**32
    np.testing.assert_array_equal(big[1], val)


def test_stratified_split_takes_the_largest_remainders_first_in_shuffled_order():
    # counts 5, 3, 2 of 10 rows, 5 for validation: exact quotas 2.5, 1.5, 1.0;
    # floors 2, 1, 1 and one more row for the largest remainder (the first on a tie)
    labels = np.array([0, 1, 2, 0, 1, 0, 2, 0, 1, 0])
    rows = np.arange(10)
    train, val = split_rows(rows, 5, labels, seed=3)
    perm = rows.copy()
    np.random.RandomState(3).shuffle(perm)
    expected = [r for c, q in ((0, 3), (1, 1), (2, 1)) for r in perm[labels[perm] == c][:q]]
    assert sorted(val.tolist()) == sorted(expected)
    assert np.bincount(labels[val], minlength=3).tolist() == [3, 1, 1]
    assert sorted(np.r_[train, val].tolist()) == list(range(10))
    # the rows keep the shuffled order
    assert val.tolist() == [r for r in perm if r in set(expected)]


@pytest.mark.parametrize("n_val", [1, 4])
def test_too_few_rows_per_class_on_either_side_is_a_plain_split(n_val):
    # 2 classes: 1 validation row cannot hold both, 4 of 5 leave the training side one
    labels = np.array([0, 0, 0, 1, 1])
    rows = np.arange(5)
    perm = rows.copy()
    np.random.RandomState(0).shuffle(perm)
    train, val = split_rows(rows, n_val, labels, seed=0)
    np.testing.assert_array_equal(val, perm[:n_val])
    np.testing.assert_array_equal(train, perm[n_val:])


# -------------------------------------------------------------- torch_threads
def test_torch_threads_restores_the_count_after_an_exception():
    from sklearn_deepnet._engine import data

    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="inside"):
        with torch_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before
    assert data._ACTIVE_THREADS == {}  # no thread left counted as inside
