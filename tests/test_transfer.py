"""Transfer learning: init_from, reuse_layers, freeze_layers, unfreeze_after."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor
from sklearn_deepnet._engine.module import MLP
from sklearn_deepnet._transfer import copy_layers_, matching_layers
from sklearn_deepnet._validation import InvalidParameterError

X, y = make_classification(n_samples=240, n_features=10, n_informative=6, n_classes=4,
                           random_state=0)
X = StandardScaler().fit_transform(X)
A, B = y < 2, y >= 2  # task A: classes 0/1; task B: classes 2/3


def _source(sizes=(16, 16), **params):
    return DeepMLPClassifier(sizes, max_iter=5, random_state=0, **params).fit(X[A], y[A])


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _assert_same(a, b, prefix):
    keys = [k for k in a if k.startswith(prefix)]
    assert keys
    for k in keys:
        assert torch.equal(a[k], b[k]), k


def _assert_changed(a, b, prefix):
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith(prefix)), prefix


@pytest.mark.parametrize("config", [
    dict(),                                                       # hand-written CPU step
    dict(batch_norm="before", dropout=0.2, max_norm=1.0, solver="nadam"),
    dict(activation="prelu", batch_norm="after", dropout=0.2, solver="nadam"),  # eager step
    dict(solver="sgd", alpha=1e-2, clip_norm=0.5),
    dict(solver="adamw", weight_decay=0.1, l1_ratio=0.5, alpha=1e-3),
], ids=["manual", "bn-dropout-maxnorm", "eager-prelu-bn", "sgd-clip", "adamw-decay"])
def test_frozen_layers_are_bit_identical_and_the_rest_trains(config):
    src = _source(**config)
    source_state = _state(src.module_)
    clf = DeepMLPClassifier((16, 16), init_from=src, freeze_layers=1, max_iter=4,
                            random_state=1, **config).fit(X[B], y[B])
    after = clf.module_.state_dict()
    assert clf.reused_layers_ == 2
    _assert_same(source_state, after, "hidden.0.")  # weights, BatchNorm statistics
    _assert_changed(source_state, after, "hidden.1.")
    # The source was only read.
    for k, v in src.module_.state_dict().items():
        assert torch.equal(v, source_state[k]), k
    assert len(src.history_) == 5 and src.classes_.tolist() == [0, 1]
    # Every layer trains again in the next call (no lasting freeze).
    assert all(p.requires_grad for p in clf.module_.parameters())


@pytest.mark.parametrize("config", [
    dict(), dict(batch_norm="before", batch_norm_input=True, dropout=0.2, activation="elu"),
], ids=["plain", "bn-input-dropout"])
def test_frozen_fast_step_equals_eager_step(config):
    src = _source(**config)
    fits = []
    for fast in (True, False):
        clf = DeepMLPClassifier((16, 16), init_from=src, freeze_layers=1, unfreeze_after=2,
                                max_iter=4, random_state=1, **config)
        clf._fast_engine = fast
        fits.append(clf.fit(X[B], y[B]))
    assert fits[0].engine_ == "cpu-manual" and fits[1].engine_ == "eager"
    for (k, a), b in zip(fits[0].module_.state_dict().items(),
                         fits[1].module_.state_dict().values(), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-4, atol=2e-5, err_msg=k)


def test_unfreeze_after_counts_epochs_and_partial_fit_matches_fit():
    src = _source()
    source_state = _state(src.module_)
    params = dict(init_from=src, freeze_layers=2, unfreeze_after=3, random_state=1,
                  n_iter_no_change=np.inf)
    three = DeepMLPClassifier((16, 16), max_iter=3, **params).fit(X[B], y[B])
    _assert_same(source_state, three.module_.state_dict(), "hidden.")
    five = DeepMLPClassifier((16, 16), max_iter=5, **params).fit(X[B], y[B])
    _assert_changed(source_state, five.module_.state_dict(), "hidden.0.")
    # Five partial_fit calls: frozen for three, then unfrozen, exactly like fit.
    inc = DeepMLPClassifier((16, 16), **params)
    for _ in range(5):
        inc.partial_fit(X[B], y[B], classes=[2, 3])
        if len(inc.loss_curve_) <= 3:
            _assert_same(source_state, inc.module_.state_dict(), "hidden.")
    for k, v in five.module_.state_dict().items():
        assert torch.equal(v, inc.module_.state_dict()[k]), k


def test_output_layer_is_new_and_all_fitting_layers_are_reused_by_default():
    src = _source((16, 16, 8))
    clf = DeepMLPClassifier((16, 16, 4), init_from=src, max_iter=1, random_state=0)
    clf.fit(X[B], y[B])
    assert clf.reused_layers_ == 2  # the third layer's width differs
    same = DeepMLPClassifier((16, 16, 8), init_from=src, max_iter=1, random_state=1,
                             learning_rate_init=1e-12).fit(X[B], y[B])
    assert same.reused_layers_ == 3
    # Nearly no training: the hidden layers are the source's, the output is not.
    for a, b in zip(same.coefs_[:3], src.coefs_[:3], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert not np.allclose(same.coefs_[3], src.coefs_[3], atol=1e-2)
    two = DeepMLPClassifier((16, 16, 8), init_from=src, reuse_layers=1, max_iter=1,
                            random_state=1, learning_rate_init=1e-12).fit(X[B], y[B])
    assert two.reused_layers_ == 1
    np.testing.assert_allclose(two.coefs_[0], src.coefs_[0], atol=1e-6)
    assert not np.allclose(two.coefs_[1], src.coefs_[1], atol=1e-2)


def test_transfer_between_kinds_and_from_a_regressor():
    src = _source()
    reg = DeepMLPRegressor((16, 16), init_from=src, freeze_layers=2, max_iter=3,
                           random_state=0).fit(X[B], y[B].astype(float))
    np.testing.assert_array_equal(reg.coefs_[0], src.coefs_[0])
    clf = DeepMLPClassifier((16,), init_from=reg, max_iter=2, random_state=0).fit(X, y)
    assert clf.reused_layers_ == 1


def test_clone_keeps_the_fitted_source_and_grid_search_uses_it():
    src = _source()
    source_state = _state(src.module_)
    est = DeepMLPClassifier((16, 16), init_from=src, max_iter=3, random_state=0)
    assert clone(est).init_from is src
    assert clone(make_pipeline(StandardScaler(), est))[-1].init_from is src
    search = GridSearchCV(est, {"freeze_layers": [0, 1], "reuse_layers": [1, 2]}, cv=2,
                          error_score="raise").fit(X[B], y[B])
    assert search.best_estimator_.init_from is src
    assert search.best_estimator_.reused_layers_ == search.best_params_["reuse_layers"]
    cv = cross_validate(est, X[B], y[B], cv=2, error_score="raise", return_estimator=True)
    assert all(e.init_from is src and e.reused_layers_ == 2 for e in cv["estimator"])
    for k, v in src.module_.state_dict().items():
        assert torch.equal(v, source_state[k]), k


def test_pickled_before_and_after_fit():
    src = _source()
    est = DeepMLPClassifier((16, 16), init_from=src, freeze_layers=1, max_iter=3,
                            random_state=0)
    loaded = pickle.loads(pickle.dumps(est))
    assert loaded.init_from.classes_.tolist() == [0, 1]
    a = est.fit(X[B], y[B]).predict_proba(X)
    np.testing.assert_array_equal(loaded.fit(X[B], y[B]).predict_proba(X), a)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict_proba(X), a)
    assert again.reused_layers_ == 2
    again.partial_fit(X[B], y[B])  # keeps training after loading
    np.testing.assert_array_equal(again.coefs_[0], src.coefs_[0])  # still frozen


@pytest.mark.parametrize("params, fit_X, exc, match", [
    (dict(init_from="model"), X, InvalidParameterError,
     "'init_from' parameter.*a fitted DeepMLPClassifier or DeepMLPRegressor"),
    (dict(init_from=DeepMLPClassifier()), X, NotFittedError,
     "init_from is an unfitted DeepMLPClassifier"),
    (dict(reuse_layers=1), X, InvalidParameterError, "reuse_layers counts layers copied"),
    (dict(freeze_layers=1), X, InvalidParameterError,
     "only reused .* or pretrained .* layers can be frozen"),
    (dict(init_from="src", reuse_layers=3), X, InvalidParameterError,
     "this network has only 2 hidden layer"),
    (dict(init_from="src", reuse_layers=1, freeze_layers=2), X, InvalidParameterError,
     "only 1 layer.*reused .*to freeze"),
    (dict(init_from="src"), X[:, :7], ValueError,
     "init_from was fitted on 10 features but X has 7.*reuse_layers=0"),
    (dict(init_from="src", hidden_layer_sizes=(8, 16)), X, ValueError,
     "None of init_from's hidden layers fits.*hidden layer 1 maps 10 -> 16 units in "
     "init_from but 10 -> 8 here"),
    (dict(init_from="src", hidden_layer_sizes=(16, 8), reuse_layers=2), X, ValueError,
     "reuse_layers=2 .*hidden layer 2 maps 16 -> 16 units in init_from but 16 -> 8 here"),
    (dict(init_from="src", hidden_layer_sizes=(16, 8), freeze_layers=2), X,
     InvalidParameterError, "only 1 layer.* of init_from fit this network"),
    (dict(init_from="src", batch_norm="before"), X, ValueError,
     r"hidden layer 1 has the parameters .* \(batch_norm"),
    (dict(init_from="src", batch_norm_input=True), X, ValueError,
     "the input normalization has the parameters"),
    (dict(init_from="src", freeze_layers=1, unfreeze_after=2, solver="lbfgs"), X,
     InvalidParameterError, "'unfreeze_after'.*full-batch optimization per fit"),
])
def test_bad_transfer_settings_are_clear_errors(params, fit_X, exc, match):
    src = _source()
    if params.get("init_from") == "src":
        params = {**params, "init_from": src}
    fitted = DeepMLPClassifier((16, 16), max_iter=2, random_state=0).fit(X[B], y[B])
    before = fitted.predict_proba(X)
    fitted.set_params(**params)
    with pytest.raises(exc, match=match):
        fitted.fit(fit_X[B], y[B])
    fitted.set_params(init_from=None, reuse_layers=None, freeze_layers=0, unfreeze_after=None,
                      solver="adam", hidden_layer_sizes=(16, 16), batch_norm=None,
                      batch_norm_input=False)
    np.testing.assert_array_equal(fitted.predict_proba(X), before)


def test_reuse_layers_zero_copies_nothing_and_lbfgs_can_keep_layers_frozen():
    src = _source()
    none = DeepMLPClassifier((16, 16), init_from=src, reuse_layers=0, max_iter=2,
                             random_state=0).fit(X[B, :7], y[B])  # other features: fine
    assert none.reused_layers_ == 0
    lb = DeepMLPClassifier((16, 16), init_from=src, freeze_layers=1, solver="lbfgs",
                           max_iter=20, random_state=0).fit(X[B], y[B])
    np.testing.assert_array_equal(lb.coefs_[0], src.coefs_[0])
    assert not np.array_equal(lb.coefs_[1], src.coefs_[1])


def test_module_level_helpers():
    a = MLP(5, (4, 3), 2, batch_norm="after")
    b = MLP(5, (4, 6), 2, batch_norm="after")
    n, reason = matching_layers(a, b)
    assert n == 1 and "hidden layer 2 maps 4 -> 3 units in init_from but 4 -> 6" in reason
    copy_layers_(a, b, 1)
    for k, v in a.hidden[0].state_dict().items():
        assert torch.equal(v, b.hidden[0].state_dict()[k])
        assert v.data_ptr() != b.hidden[0].state_dict()[k].data_ptr()  # copies
    b.freeze_(1).train()
    assert not b.hidden[0].batch_norm.training and b.hidden[1].batch_norm.training
    assert [p.requires_grad for p in b.hidden[0].parameters()] == [False] * 4
    b.freeze_(0)
    assert b.hidden[0].batch_norm.training and all(p.requires_grad for p in b.parameters())
    with pytest.raises(ValueError, match="cannot freeze 3 of 2"):
        b.freeze_(3)


@pytest.mark.gpu
def test_frozen_layers_on_cuda_graph():
    src = _source(device="cuda")
    clf = DeepMLPClassifier((16, 16), init_from=src, freeze_layers=1, unfreeze_after=2,
                            max_iter=2, random_state=1, device="cuda").fit(X[B], y[B])
    assert clf.engine_ == "cuda-graph"
    np.testing.assert_array_equal(clf.coefs_[0], src.coefs_[0])
    clf.set_params(max_iter=4, warm_start=True).fit(X[B], y[B])
    assert not np.array_equal(clf.coefs_[0], src.coefs_[0])


@pytest.mark.parametrize("solver", ["sgd", "momentum", "nesterov", "adam", "rmsprop"])
def test_unfreezing_works_with_every_solver_and_partial_fit_matches(solver):
    src = _source()
    params = dict(solver=solver, init_from=src, freeze_layers=1, unfreeze_after=1,
                  random_state=0, n_iter_no_change=np.inf)
    fit = DeepMLPClassifier((16, 16), max_iter=3, **params).fit(X[B], y[B])
    assert not np.array_equal(fit.coefs_[0], src.coefs_[0])
    inc = DeepMLPClassifier((16, 16), **params)
    for _ in range(3):
        inc.partial_fit(X[B], y[B], classes=[2, 3])
    for a, b in zip(fit.coefs_, inc.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)
    eager = DeepMLPClassifier((16, 16), max_iter=3, **params)
    eager._fast_engine = False
    for a, b in zip(fit.coefs_, eager.fit(X[B], y[B]).coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_search_over_init_from_values_needs_a_frozen_estimator():
    from sklearn.frozen import FrozenEstimator

    src = _source()
    grid = {"init_from": [None, FrozenEstimator(src)]}
    search = GridSearchCV(DeepMLPClassifier((16, 16), max_iter=2, random_state=0), grid,
                          cv=2, error_score="raise").fit(X[B], y[B])
    results = search.cv_results_["params"]
    assert [p["init_from"] is None for p in results] == [True, False]
    reused = DeepMLPClassifier((16, 16), init_from=FrozenEstimator(src), max_iter=1).fit(
        X[B], y[B])
    assert reused.reused_layers_ == 2
    with pytest.raises(NotFittedError, match="wrap the fitted model in .*FrozenEstimator"):
        GridSearchCV(DeepMLPClassifier((16, 16), max_iter=2), {"init_from": [src]}, cv=2,
                     error_score="raise").fit(X[B], y[B])


def test_a_model_cannot_start_from_itself_and_stays_usable():
    model = DeepMLPClassifier((16, 16), max_iter=2, random_state=0).fit(X[B], y[B])
    before = model.predict_proba(X)
    model.set_params(init_from=model)
    with pytest.raises(InvalidParameterError, match="leads back to this estimator"):
        model.fit(X[B], y[B])
    assert clone(model).init_from is model  # no endless recursion
    assert "init_from__alpha" not in model.get_params(deep=True)
    repr(model)
    model.set_params(init_from=None)
    np.testing.assert_array_equal(model.predict_proba(X), before)
    other = DeepMLPClassifier((16,))
    cycle = DeepMLPClassifier((16,), init_from=other)
    other.init_from = cycle
    with pytest.raises(InvalidParameterError, match="leads back"):
        cycle.fit(X, y)


def test_reusing_layers_trained_with_another_activation_warns():
    src = _source()
    with pytest.warns(UserWarning, match=r"hidden layer\(s\) \[1, 2\] were trained with "
                                         r"another activation.*ReLU\(\) there, Tanh\(\) here"):
        DeepMLPClassifier((16, 16), activation="tanh", init_from=src, max_iter=1).fit(X[B], y[B])


def test_continuing_calls_may_drop_the_source_and_freeze_any_layer():
    src = _source()
    clf = DeepMLPClassifier((16, 16), init_from=src, freeze_layers=1, random_state=0)
    clf.partial_fit(X[B], y[B], classes=[2, 3])
    clf.set_params(init_from=None)  # e.g. to pickle without the source
    clf.partial_fit(X[B], y[B])
    np.testing.assert_array_equal(clf.coefs_[0], src.coefs_[0])
    scratch = DeepMLPClassifier((16, 16), max_iter=2, warm_start=True, random_state=0)
    first = scratch.fit(X[B], y[B]).coefs_[0]
    scratch.set_params(freeze_layers=1).fit(X[B], y[B])  # fine-tune the top only
    np.testing.assert_array_equal(scratch.coefs_[0], first)
    with pytest.raises(InvalidParameterError, match="only 2 hidden layer"):
        scratch.set_params(freeze_layers=3).fit(X[B], y[B])
