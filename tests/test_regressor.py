import numpy as np
import pytest
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_diabetes, make_regression
from sklearn.model_selection import KFold, cross_val_score
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_deepnet import DeepMLPRegressor

FAST = dict(hidden_layer_sizes=(32,), max_iter=100, learning_rate_init=0.01, random_state=0)


@pytest.mark.slow
def test_diabetes_r2_matches_mlpregressor():
    X, y = load_diabetes(return_X_y=True)
    cv = KFold(5, shuffle=True, random_state=0)
    settings = dict(hidden_layer_sizes=(64, 64), alpha=5.0, max_iter=300, random_state=0)

    def r2(estimator):
        model = TransformedTargetRegressor(
            make_pipeline(StandardScaler(), estimator), transformer=StandardScaler()
        )
        return cross_val_score(model, X, y, cv=cv).mean()

    ours, theirs = r2(DeepMLPRegressor(**settings)), r2(MLPRegressor(**settings))
    assert ours >= theirs - 0.02, (ours, theirs)


def test_one_d_target_does_not_broadcast(reg_data):
    X, y = reg_data
    reg = DeepMLPRegressor(**FAST).fit(X, y)
    assert reg.n_outputs_ == 1 and reg.predict(X).shape == (200,)
    assert reg.score(X, y) > 0.95
    # The recorded loss is the per-sample loss, not a (n, n) broadcast of it.
    residual = 0.5 * np.mean((reg.predict(X) - y) ** 2)
    assert reg.loss_curve_[-1] == pytest.approx(residual, rel=0.5, abs=0.01)


def test_multi_output():
    X, Y = make_regression(n_samples=200, n_features=6, n_targets=3, noise=0.1,
                           random_state=0)
    Y = Y / Y.std(axis=0)
    reg = DeepMLPRegressor(**FAST).fit(X, Y)
    assert reg.n_outputs_ == 3 and reg.predict(X).shape == (200, 3)
    assert reg.score(X, Y) > 0.9


def test_huber_resists_outliers(reg_data):
    X, y = reg_data
    y_dirty = y.copy()
    y_dirty[:10] += 50.0
    clean = np.arange(10, 200)
    errors = {}
    for loss in ("squared_error", "huber", "absolute_error"):
        reg = DeepMLPRegressor(**FAST, loss=loss).fit(X, y_dirty)
        errors[loss] = np.mean(np.abs(reg.predict(X[clean]) - y[clean]))
    assert errors["huber"] < 0.5 * errors["squared_error"]
    assert errors["absolute_error"] < 0.5 * errors["squared_error"]


def test_huber_delta_changes_the_loss(reg_data):
    X, y = reg_data
    a = DeepMLPRegressor(**FAST, loss="huber", huber_delta=0.1).fit(X, y)
    b = DeepMLPRegressor(**FAST, loss="huber", huber_delta=10.0).fit(X, y)
    assert a.loss_curve_[0] != pytest.approx(b.loss_curve_[0])


def test_poisson():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = rng.poisson(np.exp(0.5 * X[:, 0] + 0.3 * X[:, 1]))
    reg = DeepMLPRegressor(**FAST, loss="poisson").fit(X, y)
    pred = reg.predict(X)
    assert (pred > 0).all()
    assert np.corrcoef(pred, np.exp(0.5 * X[:, 0] + 0.3 * X[:, 1]))[0, 1] > 0.8
    assert pred.mean() == pytest.approx(y.mean(), rel=0.1)  # the log link is calibrated
    with pytest.raises(ValueError, match="non-negative y"):
        DeepMLPRegressor(loss="poisson").fit(X, y - 5)


def test_partial_fit_shape_checks(reg_data):
    X, y = reg_data
    reg = DeepMLPRegressor((8,), random_state=0).partial_fit(X, y)
    with pytest.raises(ValueError, match="fitted on targets with 1 output"):
        reg.partial_fit(X, np.c_[y, y])


def test_column_target_is_a_1d_target_as_in_mlp_regressor(reg_data):
    from sklearn.exceptions import DataConversionWarning

    X, y = reg_data
    with pytest.warns(DataConversionWarning, match="column-vector y was passed"):
        reg = DeepMLPRegressor((8,), max_iter=2, random_state=0).fit(X, y[:, None])
    assert reg.predict(X).shape == (len(X),) and reg.n_outputs_ == 1
    flat = DeepMLPRegressor((8,), max_iter=2, random_state=0).fit(X, y)
    np.testing.assert_array_equal(reg.predict(X), flat.predict(X))
    reg.partial_fit(X, y)  # and a 1-D y continues it
