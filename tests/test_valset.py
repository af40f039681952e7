"""The user's own early-stopping validation set: ``fit(..., X_val=, y_val=, sample_weight_val=)``.

scikit-learn's ``HistGradientBoosting`` convention. Bad inputs are rows of
``tests/test_bad_inputs.py``'s table (which also checks that they never corrupt a
fitted model).
"""

import inspect
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
from sklearn.datasets import make_classification, make_regression
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor

X, y = make_classification(n_samples=120, n_features=6, n_informative=4, n_classes=3,
                           random_state=0)
X_val, y_val = make_classification(n_samples=40, n_features=6, n_informative=4,
                                   n_classes=3, random_state=1)
Xr, yr = make_regression(n_samples=120, n_features=6, noise=5.0, random_state=0)
Xr_val, yr_val = Xr[:30] + 0.1, yr[:30]
ES = dict(hidden_layer_sizes=(8,), early_stopping=True, max_iter=6, n_iter_no_change=100,
          random_state=0)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        yield


def test_every_row_trains_and_the_scores_come_from_the_validation_set():
    clf = DeepMLPClassifier(**ES).fit(X, y, X_val=X_val, y_val=y_val)
    assert all(n == len(X) for n in clf.history_[:, "train_samples"])  # nothing held out
    assert len(clf.validation_scores_) == clf.n_iter_ == 6
    assert clf.validation_scores_ == clf.history_[:, "valid_score"]
    # The best epoch's weights are restored: its score and loss are the model's on X_val.
    best = int(np.argmax(clf.validation_scores_))
    assert clf.best_validation_score_ == clf.validation_scores_[best]
    assert clf.score(X_val, y_val) == pytest.approx(clf.best_validation_score_)
    assert clf.history_[best, "valid_loss"] == pytest.approx(
        log_loss(y_val, clf.predict_proba(X_val)), rel=1e-5)

    reg = DeepMLPRegressor(**ES).fit(Xr, yr, X_val=Xr_val, y_val=yr_val)
    assert all(n == len(Xr) for n in reg.history_[:, "train_samples"])
    assert reg.score(Xr_val, yr_val) == pytest.approx(reg.best_validation_score_, rel=1e-5)
    # Not the split's scores: validation_fraction is not used (a warning says so when set).
    split = DeepMLPRegressor(**ES).fit(Xr, yr)
    assert split.validation_scores_ != reg.validation_scores_
    with pytest.warns(UserWarning, match="validation_fraction=0.3 is not used"):
        DeepMLPRegressor(**ES, validation_fraction=0.3).fit(Xr, yr, X_val=Xr_val,
                                                            y_val=yr_val)


def test_sample_weight_val_zero_removes_a_row_and_weights_count():
    kept = DeepMLPClassifier(**ES).fit(X, y, X_val=X_val[:30], y_val=y_val[:30])
    # Ten rows of noise, labeled wrongly on purpose, with zero weight: no effect.
    noise = np.random.default_rng(0).normal(size=(10, 6)) * 50
    weights = np.r_[np.ones(30), np.zeros(10)]
    padded = DeepMLPClassifier(**ES).fit(
        X, y, X_val=np.r_[X_val[:30], noise], y_val=np.r_[y_val[:30], (y_val[30:] + 1) % 3],
        sample_weight_val=weights)
    assert padded.validation_scores_ == kept.validation_scores_
    np.testing.assert_allclose(padded.history_[:, "valid_loss"],
                               kept.history_[:, "valid_loss"], rtol=1e-6)
    # Other weights give other (weighted) scores: the weighted accuracy of the model.
    w = np.linspace(0.1, 3.0, 40)
    weighted = DeepMLPClassifier(**ES).fit(X, y, X_val=X_val, y_val=y_val,
                                           sample_weight_val=w)
    assert weighted.score(X_val, y_val, sample_weight=w) == pytest.approx(
        weighted.best_validation_score_)


def test_class_weight_applies_to_the_validation_rows():
    # class_weight multiplies the validation weights as it does the training
    # weights (as the validation_fraction split's rows carry them): class 0 at
    # weight 0 does not count.
    clf = DeepMLPClassifier(**ES, class_weight={0: 0.0}).fit(X, y, X_val=X_val, y_val=y_val)
    keep = y_val != 0
    assert clf.score(X_val[keep], y_val[keep]) == pytest.approx(clf.best_validation_score_)
    balanced = DeepMLPClassifier(**ES, class_weight="balanced").fit(
        X, y, X_val=X_val, y_val=y_val)  # per class, from the training labels
    counts = np.bincount(y)
    w = (len(y) / (3 * counts))[y_val]
    assert balanced.score(X_val, y_val, sample_weight=w) == pytest.approx(
        balanced.best_validation_score_)


def test_sparse_and_pandas_validation_sets_score_as_the_array():
    pd = pytest.importorskip("pandas")
    dense = DeepMLPRegressor(**ES).fit(Xr, yr, X_val=Xr_val, y_val=yr_val)
    sparse = DeepMLPRegressor(**ES).fit(Xr, yr, X_val=sp.csr_matrix(Xr_val), y_val=yr_val)
    assert sparse.validation_scores_ == dense.validation_scores_
    cols = [f"f{i}" for i in range(6)]
    frame = DeepMLPRegressor(**ES).fit(
        pd.DataFrame(Xr, columns=cols), pd.Series(yr),
        X_val=pd.DataFrame(Xr_val, columns=cols), y_val=pd.Series(yr_val))
    assert frame.validation_scores_ == dense.validation_scores_
    labels = np.array(["a", "b", "c"], dtype=object)
    clf = DeepMLPClassifier(**ES).fit(X, labels[y], X_val=X_val, y_val=list(labels[y_val]))
    assert clf.score(X_val, labels[y_val]) == pytest.approx(clf.best_validation_score_)


def test_multilabel_and_multioutput_validation_sets():
    Y = np.c_[y == 0, y == 1].astype(int)
    Y_val = np.c_[y_val == 0, y_val == 1].astype(int)
    clf = DeepMLPClassifier(**ES).fit(X, Y, X_val=X_val, y_val=sp.csr_matrix(Y_val))
    assert clf.score(X_val, Y_val) == pytest.approx(clf.best_validation_score_)
    with pytest.raises(ValueError, match="y_val must be a multilabel indicator matrix of 2"):
        DeepMLPClassifier(**ES).fit(X, Y, X_val=X_val, y_val=y_val)
    reg = DeepMLPRegressor(**ES).fit(Xr, np.c_[yr, -yr], X_val=Xr_val,
                                     y_val=np.c_[yr_val, -yr_val])
    assert reg.score(Xr_val, np.c_[yr_val, -yr_val]) == pytest.approx(
        reg.best_validation_score_, rel=1e-5)


def test_warm_start_with_another_validation_set_keeps_its_own_best():
    # Same validation set: the best over both calls, as with the split.
    same = DeepMLPClassifier(**ES, warm_start=True).fit(X, y, X_val=X_val, y_val=y_val)
    same.fit(X, y, X_val=X_val, y_val=y_val)
    assert same.best_validation_score_ == max(same.validation_scores_)
    # Another one: the old scores do not compare; this call's own best is kept.
    other = DeepMLPClassifier(**ES, warm_start=True).fit(X, y, X_val=X_val, y_val=y_val)
    other.fit(X, y, X_val=X[:40], y_val=y[:40])
    assert len(other.validation_scores_) == 12
    assert other.best_validation_score_ == max(other.validation_scores_[6:])
    assert other.score(X[:40], y[:40]) == pytest.approx(other.best_validation_score_)
    # The split, then a validation set: other rows, so again no comparison.
    split = DeepMLPClassifier(**ES, warm_start=True).fit(X, y)
    split.fit(X, y, X_val=X_val, y_val=y_val)
    assert split.score(X_val, y_val) == pytest.approx(split.best_validation_score_)


def test_a_failed_fit_keeps_a_warm_started_model():
    clf = DeepMLPClassifier(**ES, warm_start=True).fit(X, y, X_val=X_val, y_val=y_val)
    before, scores = clf.predict_proba(X), list(clf.validation_scores_)
    with pytest.raises(ValueError, match="y_val contains labels not in classes_"):
        clf.fit(X, y, X_val=X_val, y_val=y_val + 5)
    np.testing.assert_array_equal(clf.predict_proba(X), before)
    assert clf.validation_scores_ == scores
    assert not hasattr(clf, "_class_weight_lookup")


def test_signatures_follow_histgradientboosting():
    from sklearn.ensemble import HistGradientBoostingClassifier

    theirs = inspect.signature(HistGradientBoostingClassifier.fit).parameters
    for cls in (DeepMLPClassifier, DeepMLPRegressor):
        ours = inspect.signature(cls.fit).parameters
        assert list(ours) == list(theirs)
        assert all(ours[k].kind == theirs[k].kind for k in ours)
        assert not {"X_val", "y_val"} & set(inspect.signature(cls.partial_fit).parameters)
        for name in ("X_val", "y_val", "sample_weight_val"):
            assert f"{name} : " in cls.fit.__doc__


@pytest.fixture
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


def test_pipeline_routes_the_validation_set(routing):
    scaler = StandardScaler().fit(X)
    alone = DeepMLPClassifier(**ES).fit(scaler.transform(X), y,
                                        X_val=scaler.transform(X_val), y_val=y_val)
    est = DeepMLPClassifier(**ES).set_fit_request(X_val=True, y_val=True)
    # X_val is not transformed by the steps before the estimator: pass it transformed...
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", est)]).fit(
        X, y, X_val=scaler.transform(X_val), y_val=y_val)
    assert pipe[-1].validation_scores_ == alone.validation_scores_
    # ... or let the pipeline transform it (scikit-learn's transform_input).
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", clone_of(est))],
                    transform_input=["X_val"]).fit(X, y, X_val=X_val, y_val=y_val)
    assert pipe[-1].validation_scores_ == alone.validation_scores_
    # Not requested: routing refuses the metadata instead of dropping it.
    with pytest.raises(ValueError, match="X_val"):
        Pipeline([("mlp", DeepMLPClassifier(**ES))]).fit(X, y, X_val=X_val, y_val=y_val)
    weighted = DeepMLPRegressor(**ES).set_fit_request(X_val=True, y_val=True,
                                                      sample_weight_val=True)
    pipe = Pipeline([("mlp", weighted)]).fit(Xr, yr, X_val=Xr_val, y_val=yr_val,
                                             sample_weight_val=np.r_[np.ones(29), 0.0])
    assert pipe[-1].score(Xr_val[:29], yr_val[:29]) == pytest.approx(
        pipe[-1].best_validation_score_, rel=1e-5)


def clone_of(est):
    return sklearn.base.clone(est)


def test_searches_and_cross_validation_route_the_validation_set(routing):
    # The validation set is not split by the folds (it has another length
    # than X: scikit-learn indexes fit params as long as X like X).
    est = DeepMLPClassifier(**ES).set_fit_request(X_val=True, y_val=True)
    search = GridSearchCV(est, {"alpha": [1e-4, 1e-2]}, cv=KFold(2)).fit(
        X, y, X_val=X_val, y_val=y_val)
    best = search.best_estimator_
    assert best.score(X_val, y_val) == pytest.approx(best.best_validation_score_)
    result = cross_validate(est, X, y, cv=KFold(2), return_estimator=True,
                            params={"X_val": X_val, "y_val": y_val})
    for fitted in result["estimator"]:
        assert all(n == len(X) // 2 for n in fitted.history_[:, "train_samples"])
        assert fitted.score(X_val, y_val) == pytest.approx(fitted.best_validation_score_)
