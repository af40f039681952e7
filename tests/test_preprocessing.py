"""RobustSmoothClipScaler: scikit-learn conventions, RealMLP-TD's formulas, edge cases."""

import doctest

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.utils.estimator_checks import parametrize_with_checks

import sklearn_deepnet
import sklearn_deepnet.preprocessing
from sklearn_deepnet.preprocessing import RobustSmoothClipScaler


@parametrize_with_checks([RobustSmoothClipScaler(), RobustSmoothClipScaler(max_abs_value=None)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_exported_and_docstring_example_runs():
    assert sklearn_deepnet.RobustSmoothClipScaler is RobustSmoothClipScaler
    assert "RobustSmoothClipScaler" in sklearn_deepnet.__all__
    result = doctest.testmod(sklearn_deepnet.preprocessing, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


def _by_hand(X_fit, X, c=3.0):
    """The transform written out column by column, from the paper's definition."""
    out = np.empty_like(X, dtype=np.float64)
    for j in range(X.shape[1]):
        col = np.sort(X_fit[:, j])
        n = len(col)

        def quantile(q, col=col, n=n):  # linear interpolation between order statistics
            pos = q * (n - 1)
            lo = int(np.floor(pos))
            hi = min(lo + 1, n - 1)
            return col[lo] + (pos - lo) * (col[hi] - col[lo])

        s = quantile(0.75) - quantile(0.25)
        if s == 0:
            s = (col[-1] - col[0]) / 2
        z = (X[:, j] - quantile(0.5)) / s if s != 0 else np.zeros(len(X))
        out[:, j] = z / np.sqrt(1 + (z / c) ** 2)
    return out


def _columns(n=200, seed=0):
    """Columns that take each branch: IQR > 0, IQR = 0 but range > 0, constant."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([
        rng.normal(size=n) * 5 + 2,            # plain
        rng.lognormal(size=n) * 100,           # heavy right tail
        np.where(rng.random(n) < 0.1, 7.0, 0.0),  # 90 % zeros: IQR 0, half range 3.5
        np.full(n, 4.0),                       # constant
        rng.integers(0, 3, size=n).astype(float),
    ])
    return X


def test_matches_a_hand_computation():
    X = _columns()
    X_test = _columns(seed=1) * 1.5
    scaler = RobustSmoothClipScaler().fit(X)
    np.testing.assert_allclose(scaler.transform(X), _by_hand(X, X), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(scaler.transform(X_test), _by_hand(X, X_test), rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_array_equal(scaler.scale_[2:4], [3.5, 0.0])
    assert scaler.center_[3] == 4.0


def test_max_abs_value_sets_the_bound_and_none_skips_the_clip():
    X = _columns()
    z = RobustSmoothClipScaler(max_abs_value=None).fit_transform(X)
    np.testing.assert_allclose(z[:, :3], (X[:, :3] - np.median(X[:, :3], axis=0))
                               / np.array([np.subtract(*np.percentile(X[:, 0], [75, 25])),
                                           np.subtract(*np.percentile(X[:, 1], [75, 25])),
                                           3.5]))
    for c in (1.0, 5.0):
        out = RobustSmoothClipScaler(max_abs_value=c).fit_transform(X)
        np.testing.assert_allclose(out, z / np.sqrt(1 + (z / c) ** 2))
        assert np.abs(out).max() < c


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_pytabkit(dtype):
    """The same numbers as RealMLP-TD's own median_center, robust_scale, smooth_clip."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("pytabkit")
    from pytabkit.models.data.data import DictDataset, TensorInfo
    from pytabkit.models.nn_models.models import PreprocessingFactory

    X = _columns().astype(dtype)
    X_test = (_columns(seed=1) * 1.5).astype(dtype)
    infos = {"x_cont": TensorInfo(feat_shape=[X.shape[1]]), "x_cat": TensorInfo(cat_sizes=[])}

    def dataset(A):
        return DictDataset({"x_cont": torch.as_tensor(A),
                            "x_cat": torch.zeros(len(A), 0, dtype=torch.long)}, infos)

    factory = PreprocessingFactory(tfms=["median_center", "robust_scale", "smooth_clip"])
    layer, fitted = factory.create(infos).fit_transform(dataset(X))
    expected = fitted.tensors["x_cont"].numpy()
    expected_test = layer(dataset(X_test)).tensors["x_cont"].detach().numpy()

    scaler = RobustSmoothClipScaler().fit(X)
    out, out_test = scaler.transform(X), scaler.transform(X_test)
    assert out.dtype == dtype
    tol = {"rtol": 1e-12, "atol": 1e-14} if dtype == np.float64 else {"rtol": 2e-6,
                                                                        "atol": 1e-6}
    np.testing.assert_allclose(out, expected, **tol)
    np.testing.assert_allclose(out_test, expected_test, **tol)


def test_constant_and_almost_constant_columns():
    X = np.array([[1.0, 0.0, 5.0]] * 4 + [[1.0, 8.0, 5.0]])  # column 1: IQR 0, range 8
    scaler = RobustSmoothClipScaler().fit(X)
    np.testing.assert_array_equal(scaler.scale_, [0.0, 4.0, 0.0])
    # A constant column maps to 0, at fit time and for values never seen.
    out = scaler.transform(np.array([[1.0, 8.0, -3.0], [10.0, 4.0, 5.0]]))
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[:, [0, 2]], 0.0)
    np.testing.assert_allclose(out[:, 1], [2 / np.sqrt(1 + 4 / 9), 1 / np.sqrt(1 + 1 / 9)])


def test_nan_ignored_in_fit_and_kept_in_transform():
    X = _columns()
    X_nan = X.copy()
    X_nan[::7, 0] = np.nan
    X_nan[:, 3] = np.nan  # an all-NaN column
    scaler = RobustSmoothClipScaler().fit(X_nan)
    present = ~np.isnan(X_nan[:, 0])
    ref0 = RobustSmoothClipScaler().fit(X[present, :1])  # column 0 without its NaN rows
    ref = RobustSmoothClipScaler().fit(X)
    np.testing.assert_allclose(scaler.center_, [*ref0.center_, *ref.center_[1:3], 0,
                                                ref.center_[4]])
    np.testing.assert_allclose(scaler.scale_, [*ref0.scale_, *ref.scale_[1:3], 0,
                                               ref.scale_[4]])
    out = scaler.transform(X_nan)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(X_nan))
    np.testing.assert_allclose(out[present, :1], ref0.transform(X[present, :1]))
    np.testing.assert_allclose(out[:, 1:3], ref.transform(X)[:, 1:3])
    with pytest.raises(ValueError, match="infinity"):
        scaler.transform(np.full((1, 5), np.inf))


def test_dtype_preserved_and_copy():
    X = _columns()
    X32 = X.astype(np.float32)
    scaler = RobustSmoothClipScaler().fit(X32)
    assert scaler.transform(X32).dtype == np.float32
    assert scaler.fit_transform(X32).dtype == np.float32
    assert scaler.transform(X.astype(np.int64)).dtype == np.float64
    assert scaler.center_.dtype == np.float64
    np.testing.assert_allclose(scaler.transform(X32),
                               RobustSmoothClipScaler().fit(X).transform(X), rtol=1e-5,
                               atol=1e-6)
    before = X.copy()
    RobustSmoothClipScaler().fit(X).transform(X)
    np.testing.assert_array_equal(X, before)
    out = RobustSmoothClipScaler(copy=False).fit(X).transform(X)
    assert out is X  # in place when asked


def test_sparse_input_is_refused_with_a_clear_message():
    X = sp.csr_matrix(_columns())
    with pytest.raises(TypeError, match="Sparse data was passed.*dense data is required"):
        RobustSmoothClipScaler().fit(X)


def test_pandas_output_and_feature_names():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(_columns(), columns=[f"c{i}" for i in range(5)])
    scaler = RobustSmoothClipScaler().set_output(transform="pandas").fit(X)
    out = scaler.transform(X)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(X.columns)
    np.testing.assert_array_equal(scaler.get_feature_names_out(), X.columns)
    np.testing.assert_allclose(out.to_numpy(), _by_hand(X.to_numpy(), X.to_numpy()),
                               rtol=1e-12, atol=1e-14)


_finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=64)


@settings(max_examples=60, deadline=None)
@given(X=hnp.arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 4)),
                    elements=_finite),
       c=st.floats(min_value=0.1, max_value=10.0))
def test_outputs_bounded_and_monotone_per_column(X, c):
    scaler = RobustSmoothClipScaler(max_abs_value=c).fit(X)
    out = scaler.transform(X)
    assert np.all(np.isfinite(out))
    # < c in exact arithmetic; far-out values round to c (see the docstring).
    assert np.all(np.abs(out) <= c)
    for j in range(X.shape[1]):
        order = np.argsort(X[:, j], kind="stable")
        x, y = X[order, j], out[order, j]
        if scaler.scale_[j] == 0:
            assert np.all(y == 0)
            continue
        # Non-decreasing in x, up to rounding where the clip saturates.
        assert np.all(np.diff(y) >= -4 * np.finfo(np.float64).eps * c)
        # Strictly increasing where the inputs are apart and not out in the flat tails.
        z = (x - scaler.center_[j]) / scaler.scale_[j]
        inner = np.abs(z) < 10 * c
        apart = np.diff(z) > 1e-9
        assert np.all(np.diff(y)[apart & inner[1:] & inner[:-1]] > 0)


def test_outputs_strictly_inside_the_bound_for_moderate_values():
    X = np.linspace(-1e3, 1e3, 2001)[:, None]
    out = RobustSmoothClipScaler().fit_transform(X)
    assert np.abs(out).max() < 3
    assert np.all(np.diff(out[:, 0]) > 0)
