import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits, make_classification, make_multilabel_classification
from sklearn.metrics import recall_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_deepnet import DeepMLPClassifier

FAST = dict(hidden_layer_sizes=(16,), max_iter=30, learning_rate_init=0.01, random_state=0)


@pytest.mark.slow
def test_digits_cross_validation_accuracy():
    X, y = load_digits(return_X_y=True)
    model = make_pipeline(
        StandardScaler(),
        DeepMLPClassifier((256, 128), dropout=0.2, max_iter=40, random_state=0),
    )
    scores = cross_val_score(model, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    assert scores.mean() >= 0.97, scores


def test_grid_search_over_the_toolbox():
    X, y = make_classification(n_samples=90, n_features=6, n_informative=4, n_classes=3,
                               random_state=0)
    pipe = Pipeline([("scale", StandardScaler()),
                     ("clf", DeepMLPClassifier((8,), max_iter=2, random_state=0))])
    grid = {
        "clf__activation": ["relu", "selu"],
        "clf__kernel_initializer": ["auto", "glorot_uniform"],
        "clf__batch_norm": [None, "before"],
        "clf__dropout": [0.0, 0.2],
        "clf__solver": ["adam", "nesterov"],
    }
    search = GridSearchCV(pipe, grid, cv=2, error_score="raise").fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.predict(X).shape == (90,)
    chosen = search.best_estimator_.named_steps["clf"]
    assert chosen.get_params()["activation"] == search.best_params_["clf__activation"]


@pytest.mark.parametrize("labels", [["cat", "dog", "emu"], [10, -3, 7], [2.0, 4.0, 8.0]])
def test_any_label_type(labels, clf_data):
    X, y = clf_data
    y_lab = np.asarray(labels, dtype=object if isinstance(labels[0], str) else None)[y]
    clf = DeepMLPClassifier(**FAST).fit(X, y_lab)
    assert set(clf.classes_.tolist()) == set(labels)
    assert set(clf.predict(X).tolist()) <= set(labels)
    assert clf.score(X, y_lab) > 0.6


def test_binary_uses_one_logit(clf_data):
    X, y = clf_data
    yb = np.where(y == 0, "no", "yes")
    clf = DeepMLPClassifier(**FAST).fit(X, yb)
    assert clf.n_outputs_ == 1 and clf.out_activation_ == "logistic"
    proba = clf.predict_proba(X)
    assert proba.shape == (200, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba, rtol=1e-10)
    assert np.array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])


def test_multiclass_probabilities(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier(**FAST).fit(X, y)
    assert clf.out_activation_ == "softmax" and clf.n_outputs_ == 3
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba), rtol=1e-8)


def test_log_proba_is_finite_when_proba_underflows(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier(**FAST).fit(X, y)
    log_proba = clf.predict_log_proba(X * 1e4)
    assert np.isfinite(log_proba).all()


def test_multilabel():
    X, Y = make_multilabel_classification(n_samples=150, n_features=8, n_classes=4,
                                          random_state=0)
    clf = DeepMLPClassifier((32,), max_iter=60, learning_rate_init=0.01, random_state=0)
    clf.fit(X, Y)
    assert clf.classes_.tolist() == [0, 1, 2, 3]
    pred = clf.predict(X)
    assert pred.shape == (150, 4) and set(np.unique(pred)) <= {0, 1}
    proba = clf.predict_proba(X)
    assert proba.shape == (150, 4) and ((proba >= 0) & (proba <= 1)).all()
    assert (pred == Y).mean() > 0.8


def test_pandas_and_dtypes(clf_data):
    X, y = clf_data
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    clf = DeepMLPClassifier(**FAST).fit(df, pd.Series(y))
    assert clf.feature_names_in_.tolist() == list(df.columns)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        ref = clf.predict_proba(X.astype(np.float32))
    np.testing.assert_allclose(clf.predict_proba(df), ref)
    with pytest.raises(ValueError, match="feature names should match"):
        clf.predict(df.rename(columns={"f0": "other"}))
    for Xc in (np.round(X * 10).astype(np.int64), np.round(X).astype(np.int32), X.tolist()):
        # any numeric input trains exactly like its float32 conversion
        X32 = np.asarray(Xc, dtype=np.float32)
        np.testing.assert_array_equal(DeepMLPClassifier(**FAST).fit(Xc, y).predict_proba(Xc),
                                      DeepMLPClassifier(**FAST).fit(X32, y).predict_proba(X32))


def test_class_weight_shifts_decisions():
    X, y = make_classification(n_samples=400, n_features=6, weights=[0.9, 0.1],
                               class_sep=0.5, random_state=0)
    plain = DeepMLPClassifier(**FAST).fit(X, y)
    balanced = DeepMLPClassifier(**FAST, class_weight="balanced").fit(X, y)
    heavy = DeepMLPClassifier(**FAST, class_weight={0: 1.0, 1: 20.0}).fit(X, y)
    r_plain = recall_score(y, plain.predict(X))
    assert recall_score(y, balanced.predict(X)) > r_plain + 0.1
    assert recall_score(y, heavy.predict(X)) > r_plain + 0.1


def test_class_weight_errors(clf_data):
    X, y = clf_data
    with pytest.raises(ValueError, match="class_weight has labels not in classes_"):
        DeepMLPClassifier(**FAST, class_weight={7: 2.0}).fit(X, y)
    with pytest.raises(ValueError, match="'balanced' is not supported by partial_fit"):
        DeepMLPClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])
    Y = np.stack([y == 0, y == 1], axis=1).astype(int)
    with pytest.raises(ValueError, match="multilabel"):
        DeepMLPClassifier(class_weight="balanced").fit(X, Y)


def test_partial_fit_classes(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((8,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])
    assert clf.n_outputs_ == 3
    clf.partial_fit(X, y)
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 2
    assert clf.t_ == int((y < 2).sum()) + 200
    with pytest.raises(ValueError, match=r"labels not in classes_ \[0, 1, 2\]: \[5\]"):
        clf.partial_fit(X[:3], [0, 1, 5])
    with pytest.raises(ValueError, match="not the same as classes_"):
        clf.partial_fit(X, y, classes=[0, 1])
    # a mix of strings and numbers is refused, as MLPClassifier refuses it (not
    # turned into strings by an array conversion first)
    with pytest.raises(ValueError, match="Mix of label input types"):
        DeepMLPClassifier((8,)).partial_fit(X, ["ant"] * len(y), classes=["ant", 1])


def test_one_class_rejected(clf_data):
    X, _ = clf_data
    with pytest.raises(ValueError, match="at least 2 classes.*only one class: 'a'"):
        DeepMLPClassifier().fit(X, ["a"] * len(X))


def test_continuous_target_rejected(clf_data):
    X, _ = clf_data
    with pytest.raises(ValueError, match="Unknown label type"):
        DeepMLPClassifier().fit(X, np.linspace(0, 1, len(X)))


@pytest.mark.parametrize("shift", [-60.0, 60.0])
def test_binary_probabilities_agree_with_log_probabilities_at_extreme_logits(shift):
    X, y = make_classification(n_samples=100, n_features=4, random_state=0)
    clf = DeepMLPClassifier((8,), max_iter=2, random_state=0).fit(X, y)
    with torch.no_grad():
        clf.module_.output.linear.bias += shift  # logits around +-60
    proba, log_proba = clf.predict_proba(X), clf.predict_log_proba(X)
    assert (proba > 0).all()  # 1 - expit(60) would be exactly 0
    np.testing.assert_allclose(np.log(proba), log_proba, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_probabilities_never_round_to_zero():
    X, y = make_classification(n_samples=60, n_features=4, n_classes=3, n_informative=3,
                               n_redundant=0, random_state=0)
    clf = DeepMLPClassifier((8,), max_iter=2, random_state=0).fit(X, y)
    with torch.no_grad():
        clf.module_.output.linear.bias.copy_(torch.tensor([0.0, -900.0, 900.0]))
    proba = clf.predict_proba(X)
    assert (proba > 0).all() and np.isfinite(np.log(proba)).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.isfinite(clf.predict_log_proba(X)).all()


@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel"])
def test_label_smoothing_tempers_confidence_on_the_fast_step(kind):
    # On separable data the plain log-loss pushes probabilities towards 0 and 1;
    # smoothed targets stop them near 1 - e (multiclass: 1 - e + e / K), on the
    # hand-written step, and the loss curve is the smoothed loss (never near 0).
    import pickle

    from sklearn.base import clone

    rng = np.random.default_rng(0)
    if kind == "multilabel":
        X, y = make_multilabel_classification(n_samples=300, n_features=8, n_classes=3,
                                              random_state=0)
        X = StandardScaler().fit_transform(X)
    else:
        n_classes = 4 if kind == "multiclass" else 2
        X = rng.normal(size=(300, 6))
        y = (X[:, 0] > 0).astype(int) + (2 * (X[:, 1] > 0) if n_classes == 4 else 0)
        X[:, :2] *= 10  # (separable by far)
    fits = {e: DeepMLPClassifier((32,), max_iter=60, random_state=0, label_smoothing=e,
                                 learning_rate_init=1e-2).fit(X, y) for e in (0.0, 0.2)}
    plain, smoothed = fits[0.0], fits[0.2]
    assert smoothed.engine_ == plain.engine_ == "cpu-manual"
    top = {e: np.abs(f.predict_proba(X) - 0.5).max() if kind != "multiclass"
           else f.predict_proba(X).max() for e, f in fits.items()}
    assert top[0.2] < top[0.0]
    assert (smoothed.predict(X) == y).mean() > (plain.predict(X) == y).mean() - 0.05
    # The smoothed loss cannot go below the smoothed targets' entropy.
    if kind == "multiclass":
        targets = np.array([0.85, 0.05, 0.05, 0.05])  # (1 - 0.2 + 0.2 / 4, 0.2 / 4)
        floor = -(targets * np.log(targets)).sum()
    else:
        floor = -(0.9 * np.log(0.9) + 0.1 * np.log(0.1)) * (3 if kind == "multilabel" else 1)
    assert min(smoothed.loss_curve_) >= floor - 1e-6
    assert min(plain.loss_curve_) < floor
    again = pickle.loads(pickle.dumps(smoothed))
    np.testing.assert_array_equal(again.predict_proba(X), smoothed.predict_proba(X))
    assert clone(smoothed).label_smoothing == 0.2


def test_label_smoothing_with_lbfgs_and_class_weight():
    # L-BFGS runs the smoothed loss through autograd; class weights multiply
    # each row's smoothed loss. The loss stays above the smoothed targets'
    # entropy (binary, e = 0.2: 0.325) and the fit still separates the classes.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] > 0).astype(int)
    X[:, 0] *= 10
    floor = -(0.9 * np.log(0.9) + 0.1 * np.log(0.1))
    for kwargs in (dict(solver="lbfgs", max_iter=50), dict(class_weight={0: 1.0, 1: 1.0})):
        clf = DeepMLPClassifier((16,), label_smoothing=0.2, random_state=0, **kwargs).fit(X, y)
        assert min(clf.loss_curve_) >= floor - 1e-6
        assert clf.score(X, y) > 0.95
        assert clf.predict_proba(X).max(axis=1).mean() < 0.95  # (the targets: 0.9)
