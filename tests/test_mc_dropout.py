"""Monte Carlo dropout (``mc_dropout``): averaged stochastic passes, uncertainty."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor
from sklearn_deepnet._validation import InvalidParameterError


def test_mc_dropout_improves_held_out_log_loss_on_digits():
    # The chapter's case: a net trained to overconfidence with dropout 0.2;
    # averaging 100 passes with dropout on roughly halves the log-loss here
    # (0.185 -> 0.088; seeds 1, 2: 0.135 -> 0.070, 0.118 -> 0.084).
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        StandardScaler().fit_transform(X), y, random_state=0)
    clf = DeepMLPClassifier((128, 128), dropout=0.2, max_iter=100, n_iter_no_change=1000,
                            random_state=0).fit(X_train, y_train)
    one_pass = log_loss(y_test, clf.predict_proba(X_test))
    clf.set_params(mc_dropout=100)
    mc = log_loss(y_test, clf.predict_proba(X_test))
    assert mc <= one_pass, (mc, one_pass)
    assert clf.score(X_test, y_test) > 0.95


@pytest.mark.parametrize("kwargs", [dict(dropout=0.3), dict(dropout=0.3, batch_norm="after"),
                                    dict(dropout=0.2, activation="selu")], ids=str)
def test_mc_predictions_are_reproducible_and_leave_the_model_alone(kwargs, clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((32,), max_iter=5, random_state=0, **kwargs).fit(X, y)
    deterministic = clf.predict_proba(X)
    state = {k: v.clone() for k, v in clf.module_.state_dict().items()}
    torch_state = torch.get_rng_state()
    clf.set_params(mc_dropout=20)
    mc = clf.predict_proba(X)
    np.testing.assert_array_equal(clf.predict_proba(X), mc)  # same X, same result
    assert not np.allclose(mc, deterministic)
    np.testing.assert_allclose(mc.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[mc.argmax(axis=1)])
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), mc, rtol=1e-12)
    for k, v in clf.module_.state_dict().items():  # BatchNorm statistics untouched
        assert torch.equal(v, state[k]), k
    assert torch.equal(torch.get_rng_state(), torch_state) and clf.module_.training
    assert clone(clf).get_params()["mc_dropout"] == 20


def test_regressor_return_std(reg_data):
    X, y = reg_data
    reg = DeepMLPRegressor((32,), dropout=0.3, max_iter=20, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="return_std=True needs mc_dropout >= 2"):
        reg.predict(X, return_std=True)
    reg.set_params(mc_dropout=30)
    mean, std = reg.predict(X, return_std=True)
    assert mean.shape == std.shape == (len(X),) and (std > 0).all()
    np.testing.assert_array_equal(reg.predict(X), mean)
    far = reg.predict(X * 10, return_std=True)[1]  # far from the data: less certain
    assert np.median(far) > np.median(std)


def test_mc_dropout_needs_dropout_and_a_valid_count(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((8,), max_iter=2, random_state=0).fit(X, y)
    clf.set_params(mc_dropout=10)
    with pytest.raises(ValueError, match="mc_dropout=10 needs a network with dropout"):
        clf.predict_proba(X)
    with pytest.raises(InvalidParameterError, match="'mc_dropout' parameter"):
        DeepMLPClassifier((8,), mc_dropout=-1).fit(X, y)


def test_mc_dropout_in_grid_search(clf_data):
    X, y = clf_data
    search = GridSearchCV(DeepMLPClassifier((16,), dropout=0.2, max_iter=5, random_state=0),
                          {"mc_dropout": [0, 10]}, cv=2, scoring="neg_log_loss").fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_classifier_return_std(clf_data):
    # Issue 24: predict_proba(X, return_std=True) was a TypeError, so the
    # chapter's y_probas.std(axis=0) had no equivalent.
    X, y = clf_data
    clf = DeepMLPClassifier((32,), dropout=0.3, max_iter=20, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="return_std=True needs mc_dropout >= 2"):
        clf.predict_proba(X, return_std=True)
    clf.set_params(mc_dropout=30)
    mean, std = clf.predict_proba(X, return_std=True)
    assert mean.shape == std.shape == (len(X), 3) and (std > 0).all()
    np.testing.assert_array_equal(clf.predict_proba(X), mean)
    # the chapter's computation, pass by pass, from the same seeded passes
    passes = clf._predict_raw_passes(X).astype(np.float64)
    probas = np.stack([clf._proba_from_raw(raw) for raw in passes])
    np.testing.assert_allclose(std, probas.std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(mean.sum(axis=1), 1.0, rtol=1e-12)


def test_an_mc_dropout_of_numpy_zero_predicts_like_python_zero(clf_data):
    # predict_proba's direct path takes a Python int 0; a NumPy 0 (from a grid
    # of np.arange) goes through the passes, whose mean of one pass is that pass.
    X, y = clf_data
    clf = DeepMLPClassifier((8,), dropout=0.2, max_iter=3, random_state=0).fit(X, y)
    expected = clf.predict_proba(X)
    for zero in (np.int64(0), np.int32(0)):
        clf.set_params(mc_dropout=zero)
        np.testing.assert_array_equal(clf.predict_proba(X), expected)
        np.testing.assert_array_equal(clf.predict(X), clf.classes_[expected.argmax(axis=1)])
