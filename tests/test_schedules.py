import pytest

from sklearn_deepnet import DeepMLPClassifier
from sklearn_deepnet._schedules import SCHEDULES
from sklearn_deepnet._validation import InvalidParameterError


def test_constant_keeps_the_learning_rate(clf_data):
    X, y = clf_data
    assert SCHEDULES["constant"].factory is None
    clf = DeepMLPClassifier((8,), learning_rate="constant", learning_rate_init=0.02,
                            max_iter=3, random_state=0).fit(X, y)
    assert clf.net_.optimizer_.param_groups[0]["lr"] == 0.02


def test_unknown_schedule(clf_data):
    X, y = clf_data
    with pytest.raises(InvalidParameterError, match="'learning_rate' parameter"):
        DeepMLPClassifier(learning_rate="invscaling").fit(X, y)
