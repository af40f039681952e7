import numpy as np
import pytest

from sklearn_deepnet import DeepMLPClassifier
from sklearn_deepnet._schedules import SCHEDULES
from sklearn_deepnet._validation import InvalidParameterError


def test_constant_keeps_the_learning_rate(clf_data):
    X, y = clf_data
    assert set(SCHEDULES) == {"constant"}
    kw = dict(hidden_layer_sizes=(8,), learning_rate_init=0.02, max_iter=3, random_state=0)
    clf = DeepMLPClassifier(learning_rate="constant", **kw).fit(X, y)
    assert all(g["lr"] == 0.02 for g in clf.net_.optimizer_.param_groups)
    default = DeepMLPClassifier(**kw).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), default.predict_proba(X))


def test_unknown_schedule(clf_data):
    X, y = clf_data
    with pytest.raises(InvalidParameterError, match="'learning_rate' parameter"):
        DeepMLPClassifier(learning_rate="invscaling").fit(X, y)
