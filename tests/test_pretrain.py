"""Unsupervised pretraining (pretrain="autoencoder"), with unlabeled rows marked -1."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor
from sklearn_deepnet._engine.module import MLP
from sklearn_deepnet._transfer import autoencoder_for
from sklearn_deepnet._validation import InvalidParameterError

X, y = make_classification(n_samples=300, n_features=12, n_informative=8, n_classes=3,
                           random_state=0)
X = StandardScaler().fit_transform(X)
rng = np.random.RandomState(0)
UNLABELED = rng.rand(len(y)) > 0.2
y_semi = np.where(UNLABELED, -1, y)
P = dict(hidden_layer_sizes=(16, 8), pretrain="autoencoder", pretrain_epochs=6, max_iter=3,
         random_state=0)


def test_unlabeled_rows_are_pretrained_on_then_left_out():
    clf = DeepMLPClassifier(**P).fit(X, y_semi)
    assert clf.classes_.tolist() == [0, 1, 2]
    n_labeled = int((~UNLABELED).sum())
    assert clf.t_ == 3 * n_labeled  # supervised epochs saw the labeled rows only
    curve = clf.pretrain_loss_curve_
    assert len(curve) == 6 and curve[-1] < 0.8 * curve[0]
    # The unlabeled rows' inputs matter (pretraining), their placeholder label does not.
    labeled_only = DeepMLPClassifier(**P).fit(X[~UNLABELED], y[~UNLABELED])
    assert not np.allclose(labeled_only.coefs_[0], clf.coefs_[0])
    other_placeholders = DeepMLPClassifier(**P).fit(X, np.where(UNLABELED, -1, y))
    np.testing.assert_array_equal(other_placeholders.coefs_[0], clf.coefs_[0])
    # Without pretraining there are no placeholders: -1 is a class, as in MLPClassifier.
    plain = DeepMLPClassifier((8,), max_iter=2, random_state=0).fit(X, y_semi)
    assert plain.classes_.tolist() == [-1, 0, 1, 2] and plain.pretrain_loss_curve_ is None


def test_pretraining_changes_the_start_and_is_reproducible():
    params = {**P, "max_iter": 1, "pretrain_epochs": 30}  # one supervised Adam step
    a = DeepMLPClassifier(**params).fit(X, y_semi)
    b = DeepMLPClassifier(**{**params, "pretrain": None}).fit(X[~UNLABELED], y[~UNLABELED])
    assert np.abs(a.coefs_[0] - b.coefs_[0]).max() > 0.01
    again = DeepMLPClassifier(**params)
    np.testing.assert_array_equal(again.fit(X, y_semi).coefs_[0], a.coefs_[0])


def test_autoencoder_mirrors_the_encoder():
    module = MLP(12, (16, 8), 3, activation="elu", batch_norm="before")
    arch = dict(hidden_layer_sizes=(16, 8), activation="elu", activation_alpha=None,
                batch_norm="before", batch_norm_input=False, batch_norm_momentum=0.1,
                batch_norm_epsilon=1e-5, dropout=0.0)
    ae = autoencoder_for(module, arch, "auto")
    assert [lin.out_features for lin in ae.linears()] == [16, 8, 16, 12]
    for k, v in module.hidden.state_dict().items():
        assert torch.equal(v, ae.hidden.state_dict()[k])


def test_frozen_pretrained_layers_keep_the_pretrained_weights():
    one = DeepMLPClassifier(**{**P, "freeze_layers": 2, "max_iter": 1}).fit(X, y_semi)
    four = DeepMLPClassifier(**{**P, "freeze_layers": 2, "max_iter": 4}).fit(X, y_semi)
    for a, b in zip(one.coefs_[:2], four.coefs_[:2], strict=True):
        np.testing.assert_array_equal(a, b)  # the same pretraining, then frozen
    assert not np.array_equal(one.coefs_[2], four.coefs_[2])


def test_sparse_pretraining_equals_dense():
    Xs = X.copy()
    Xs[np.abs(Xs) < 0.8] = 0
    dense = DeepMLPClassifier(**P).fit(Xs, y_semi)
    sparse = DeepMLPClassifier(**P).fit(sp.csr_matrix(Xs), y_semi)
    assert dense.pretrain_loss_curve_ == sparse.pretrain_loss_curve_
    np.testing.assert_array_equal(dense.coefs_[0], sparse.coefs_[0])


def test_regressor_pretrains_on_all_rows_and_partial_fit_pretrains_once():
    Xr, yr = make_regression(n_samples=120, n_features=6, random_state=0)
    reg = DeepMLPRegressor(**P).fit(Xr, yr / yr.std())
    assert len(reg.pretrain_loss_curve_) == 6
    inc = DeepMLPClassifier(**P)
    inc.partial_fit(X, y_semi, classes=[0, 1, 2])
    first = inc.pretrain_loss_curve_
    inc.partial_fit(X, y_semi)
    assert inc.pretrain_loss_curve_ is first and len(inc.loss_curve_) == 2
    with pytest.raises(ValueError, match="classes contains -1"):
        DeepMLPClassifier(**P).partial_fit(X, y_semi, classes=[-1, 0, 1, 2])


def test_bad_pretraining_settings():
    with pytest.raises(InvalidParameterError, match="'pretrain'.*full-batch"):
        DeepMLPClassifier(**{**P, "solver": "lbfgs"}).fit(X, y_semi)
    with pytest.raises(InvalidParameterError, match="nothing to pretrain"):
        DeepMLPClassifier(**{**P, "hidden_layer_sizes": ()}).fit(X, y_semi)
    with pytest.raises(InvalidParameterError, match="only 2 hidden layer"):
        DeepMLPClassifier(**{**P, "freeze_layers": 3}).fit(X, y_semi)


def test_diverging_pretraining_warns_and_keeps_finite_weights():
    clf = DeepMLPClassifier(**{**P, "solver": "sgd", "learning_rate_init": 1e6, "max_iter": 1})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(X * 1e3, y_semi)
    messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert any(m.startswith("Pretraining diverged") for m in messages), messages
    assert len(clf.pretrain_loss_curve_) < 6
    assert all(np.isfinite(c).all() for c in clf.coefs_)


def test_interrupted_pretraining_keeps_the_fitted_model(monkeypatch):
    import sklearn_deepnet._reuse as reuse

    clf = DeepMLPClassifier(**P).fit(X, y_semi)
    before = clf.predict_proba(X)
    # What the pretraining net reports after a Ctrl-C (it catches the interrupt).
    monkeypatch.setattr(reuse, "pretrain_autoencoder_", lambda *a, **k: ([], "interrupted"))
    with pytest.raises(KeyboardInterrupt):
        clf.set_params(pretrain_epochs=3).fit(X, y_semi)
    np.testing.assert_array_equal(clf.predict_proba(X), before)
    assert clf.pretrain_epochs == 3 and len(clf.pretrain_loss_curve_) == 6


def test_object_labels_with_minus_one_and_clear_errors_for_other_forms():
    names = np.array(["ant", "bee", "cat"], dtype=object)[y]
    for first in (-1, "keep"):  # -1 in the first row or later
        y_obj = names.copy()
        y_obj[UNLABELED] = -1
        if first == -1:
            y_obj[0] = -1
        clf = DeepMLPClassifier(**{**P, "max_iter": 1}).fit(X, y_obj)
        assert clf.classes_.tolist() == ["ant", "bee", "cat"]
    with pytest.raises(ValueError, match="string dtype.*object array with -1"):
        DeepMLPClassifier(**P).fit(X, np.where(UNLABELED, "-1", names.astype(str)))
    with pytest.raises(ValueError, match="Unknown label type|multiclass-multioutput"):
        DeepMLPClassifier(**P).fit(X, np.c_[y_semi, y])


def test_minus_one_treated_as_unlabeled_is_reported_for_numeric_labels():
    # Issue 22, item 3: y in {-1, 0, 1} with pretrain silently dropped the
    # real class -1 (classes_ = [0, 1], -1 never predicted, no warning).
    y3 = np.array([-1, 0, 1] * 100)
    with pytest.warns(UserWarning, match=r"100 row\(s\) labeled -1.*unlabeled.*"
                                         r"classes_ = \[0, 1\].*LabelEncoder"):
        clf = DeepMLPClassifier(**P).fit(X, y3)
    assert clf.classes_.tolist() == [0, 1]
    # The remedy: encoded labels have no -1, every class is kept, no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = DeepMLPClassifier(**P).fit(X, y3 + 1)
    assert clf.classes_.tolist() == [0, 1, 2]
    # String labels with a -1 placeholder cannot be meant as a class: no warning.
    labels = np.array(["a", "b", "c"], dtype=object)[y]
    labels[UNLABELED] = -1
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = DeepMLPClassifier(**P).fit(X, labels)
    assert clf.classes_.tolist() == ["a", "b", "c"]


def test_the_unlabeled_rows_warning_comes_after_the_fit_is_complete():
    # With warnings turned into errors, the fit is done when it is raised.
    y3 = np.array([-1, 0, 1] * 100)
    clf = DeepMLPClassifier(**P)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(UserWarning, match="labeled -1"):
            clf.fit(X, y3)
    assert clf.n_iter_ == 3 and clf.classes_.tolist() == [0, 1]
