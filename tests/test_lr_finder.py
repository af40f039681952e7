"""The learning-rate finder: a probe fit with a growing rate, the estimator untouched."""

import sys

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor, find_learning_rate


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def test_finder_finds_a_sensible_rate_and_leaves_the_estimator_alone(digits):
    X, y = digits
    est = DeepMLPClassifier((64,), solver="momentum", random_state=0)
    found = find_learning_rate(est, X, y, min_lr=1e-5, max_lr=10, n_steps=200)
    assert not hasattr(est, "net_")  # untouched: still unfitted
    n = len(found.losses)
    assert 20 < n <= 200 and len(found.learning_rates) == n
    np.testing.assert_allclose(found.learning_rates[:2], [1e-5, 1e-5 * 1e6 ** (1 / 199)])
    # the loss falls, then blows up at the high rates (where it stopped)
    assert found.losses[-1] > min(found.losses) * 2
    assert 1e-4 < found.suggested_learning_rate < 1.0
    # the suggestion trains: better than the finder's smallest rate
    good = DeepMLPClassifier((64,), solver="momentum", random_state=0, max_iter=5,
                             learning_rate_init=found.suggested_learning_rate).fit(X, y)
    tiny = DeepMLPClassifier((64,), solver="momentum", random_state=0, max_iter=5,
                             learning_rate_init=1e-5).fit(X, y)
    assert good.loss_curve_[-1] < tiny.loss_curve_[-1]


def test_finder_on_a_fitted_regressor_keeps_its_predictions(reg_data):
    X, y = reg_data
    reg = DeepMLPRegressor((16,), max_iter=3, random_state=0).fit(X, y)
    before = reg.predict(X)
    find_learning_rate(reg, X, y, n_steps=20)
    np.testing.assert_array_equal(reg.predict(X), before)


def test_finder_plot_and_bad_arguments(digits):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    X, y = digits
    found = find_learning_rate(DeepMLPClassifier((16,), random_state=0), X, y, n_steps=50)
    ax = found.plot()
    assert ax.get_xscale() == "log" and len(ax.lines) == 3
    with pytest.raises(ValueError, match="max_lr must be a finite float > min_lr=1.0"):
        find_learning_rate(DeepMLPClassifier(), X, y, min_lr=1.0, max_lr=0.1)


@pytest.mark.parametrize("kwargs, match", [
    # Issue 22, item 13: max_lr=inf suggested inf; n_steps=2.5 and blowup=nan ran.
    (dict(max_lr=np.inf), "max_lr must be a finite float > min_lr=1e-06, got inf"),
    (dict(min_lr=0.0), "min_lr must be a finite float > 0, got 0.0"),
    (dict(min_lr=np.nan), "min_lr must be a finite float > 0, got nan"),
    (dict(n_steps=2.5), "n_steps must be an int >= 2, got 2.5"),
    (dict(n_steps=True), "n_steps must be an int >= 2, got True"),
    (dict(n_steps=1), "n_steps must be an int >= 2, got 1"),
    (dict(blowup=np.nan), "blowup must be a finite float > 1, got nan"),
    (dict(blowup=1.0), "blowup must be a finite float > 1, got 1.0"),
    (dict(blowup=np.inf, n_steps=0), "n_steps must be an int >= 2.*blowup must be"),
], ids=str)
def test_finder_refuses_bad_arguments_by_name(kwargs, match, digits):
    X, y = digits
    with pytest.raises(ValueError, match=match):
        find_learning_rate(DeepMLPClassifier((8,)), X, y, **kwargs)


def test_finder_rates_stay_finite_when_their_ratio_overflows(reg_data):
    # max_lr / min_lr = 1e310 overflows: the rates are spaced in log space.
    X, y = reg_data
    found = find_learning_rate(DeepMLPRegressor((8,), batch_size=20), X, y, min_lr=1e-300,
                               max_lr=1e10, n_steps=20)
    assert np.isfinite(found.learning_rates).all() and found.learning_rates[0] == 1e-300
    assert 0 < found.suggested_learning_rate < np.inf


def test_finder_validates_y_like_fit(reg_data):
    X, y = reg_data
    y = y.astype(object)
    y[3] = None
    with pytest.raises(ValueError, match=r"missing value \(None, NaN or pandas.NA\)"):
        find_learning_rate(DeepMLPRegressor((8,)), X, y, n_steps=5)
    with pytest.raises(ValueError, match="y is too large for loss='squared_error'"):
        find_learning_rate(DeepMLPRegressor((8,)), X, np.r_[1e20, reg_data[1][1:]],
                           n_steps=5)


def test_importing_the_package_does_not_import_matplotlib():
    import subprocess

    code = "import sys, sklearn_deepnet; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_finder_accepts_lists_and_refuses_lbfgs(digits):
    X, y = digits
    found = find_learning_rate(DeepMLPClassifier((8,), random_state=0), X[:300].tolist(),
                               y[:300].tolist(), n_steps=20)
    assert len(found.losses) > 0
    with pytest.raises(ValueError, match="needs a mini-batch solver"):
        find_learning_rate(DeepMLPClassifier((8,), solver="lbfgs"), X, y)


def test_one_noisy_batch_among_small_losses_is_not_a_blowup():
    from sklearn_deepnet._lr_finder import _GrowRate

    grow = _GrowRate(np.ones(100), blowup=4.0)
    grow.on_train_begin(None)
    for loss in [2.0, 1.0] + [0.1] * 40 + [0.5]:  # a batch 5x the lowest loss
        grow.on_batch_end(None, loss=torch.tensor(loss))
    with pytest.raises(KeyboardInterrupt):  # a real blow-up still stops it
        for _ in range(30):
            grow.on_batch_end(None, loss=torch.tensor(10.0))
    assert 43 < len(grow.losses_) < 60
