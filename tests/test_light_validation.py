"""predict's light validation of dense float arrays makes validate_data's checks."""

import warnings

import numpy as np
import pytest

from sklearn_deepnet import DeepMLPClassifier


@pytest.fixture(scope="module")
def clf():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), rng.integers(0, 2, 60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DeepMLPClassifier((8,), max_iter=2, random_state=0).fit(X, y), X


@pytest.mark.parametrize("bad, match", [
    (np.ones((2, 3)), "has 3 features"),
    (np.array([[np.nan, 0, 0, 0]]), "NaN"),
    (np.array([[np.inf, 0, 0, 0]], dtype=np.float32), "infinity"),
    (np.array([[np.inf, -np.inf, 0, 0]], dtype=np.float32), "infinity"),  # (a NaN sum)
    (np.vstack([np.full((3, 4), 3e38), [[0, 0, 0, np.nan]]]).astype(np.float32), "NaN"),
    (np.array([[1e300, 0, 0, 0]]), "too large"),
    (np.ones((0, 4)), "0 sample"),
    (np.ones(4), "2D array"),
])
def test_the_same_errors_as_validate_data(clf, bad, match):
    est, _ = clf
    with pytest.raises(ValueError, match=match):
        est.predict_proba(bad)


def test_float64_and_float32_give_the_same_predictions(clf):
    est, X = clf
    np.testing.assert_array_equal(est.predict_proba(X), est.predict_proba(X.astype(np.float32)))
    np.testing.assert_array_equal(est.predict_proba(np.asfortranarray(X[:5])),
                                  est.predict_proba(X[:5]))


def test_feature_names_still_checked():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = DeepMLPClassifier((8,), max_iter=2, random_state=0)
        est.fit(frame, rng.integers(0, 2, 40))
    with pytest.warns(UserWarning, match="feature names"):
        est.predict(frame.to_numpy())



def test_finite_values_whose_sum_overflows_are_accepted(clf):
    # The light check adds the values first: a sum that overflows with finite
    # values falls back to the element-wise test (and is accepted, as
    # validate_data accepts it).
    from sklearn.utils.validation import validate_data

    from sklearn_deepnet._light_validation import light_validated_X

    est, _ = clf
    X = np.full((3, 4), 3e38, dtype=np.float32)
    assert np.isinf(X.sum())
    assert light_validated_X(est, X) is X
    validate_data(est, X, reset=False, dtype=np.float32)  # (no error either)
    assert est.predict_proba(X).shape == (3, 2)
