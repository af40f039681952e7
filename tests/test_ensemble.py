"""Efficient ensembles (TabM): ``n_members`` and ``ensemble_sharing`` on the estimators."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from scipy.special import expit, softmax
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor
from sklearn_deepnet._engine.ensemble import MemberLinear, MemberScale
from sklearn_deepnet._engine.plan import compile_plan

SHARING = ["mini", "batch"]


def _members(est, X):
    """Each member's raw outputs ``(k, n, out)``, from the module's own forward."""
    module = est.module_
    k = module.plan.n_members
    with torch.no_grad():
        module.eval()
        raw = module.forward_members(torch.as_tensor(X, dtype=torch.float32)).numpy()
        module.train()
    return raw.reshape(len(X), k, -1).transpose(1, 0, 2).astype(np.float64)


@pytest.mark.parametrize("cls", [DeepMLPClassifier, DeepMLPRegressor])
def test_one_member_is_the_single_network_bit_for_bit(cls, clf_data, reg_data):
    X, y = clf_data if cls is DeepMLPClassifier else reg_data
    params = dict(hidden_layer_sizes=(16, 8), batch_norm="after", dropout=0.1, max_iter=5,
                  random_state=0)
    plain = cls(**params).fit(X, y)
    with pytest.warns(UserWarning, match="ensemble_sharing='batch' has no effect"):
        one = cls(**params, n_members=1, ensemble_sharing="batch").fit(X, y)
    # the plan and the modules of today's network: no ensemble op, no extra child
    assert one.module_.plan == compile_plan(8 if cls is DeepMLPClassifier else 6, (16, 8),
                                            plain.module_.plan.n_outputs,
                                            batch_norm="after", dropout=0.1)
    assert not any(op.kind.startswith("member") for _, op in one.module_.plan.ops())
    assert tuple(one.module_._modules) == ("input_norm", "hidden", "output")
    for (k1, v1), (k2, v2) in zip(plain.module_.state_dict().items(),
                                  one.module_.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2), k1
    predict = "predict_proba" if cls is DeepMLPClassifier else "predict"
    np.testing.assert_array_equal(getattr(plain, predict)(X), getattr(one, predict)(X))
    assert plain.loss_curve_ == one.loss_curve_


@pytest.mark.parametrize("sharing", SHARING)
def test_members_are_built_trained_and_combined(sharing, clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((16, 12), n_members=4, ensemble_sharing=sharing, max_iter=10,
                            random_state=0).fit(X, y)
    module = clf.module_
    assert isinstance(module.output.linear, MemberLinear)
    assert module.output.linear.weight.shape == (4, 3, 12)
    scales = [m for m in module.modules() if isinstance(m, MemberScale)]
    assert len(scales) == (1 if sharing == "mini" else 4)
    assert clf.engine_ == "cpu-manual", clf.engine_reason_
    # the members differ (own output layers, own adapters) ...
    raw = _members(clf, X)
    assert not np.allclose(raw[0], raw[1])
    # ... and the prediction is the mean of their probabilities
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(proba, softmax(raw, axis=2).mean(axis=0), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    assert len(clf.coefs_) == 3 and clf.coefs_[-1].shape == (4, 12, 3)
    assert clf.intercepts_[-1].shape == (4, 3)


def test_binary_and_multilabel_members_average_sigmoid_probabilities(clf_data):
    X, y = clf_data
    binary = DeepMLPClassifier((16,), n_members=3, max_iter=5, random_state=0).fit(X, y == 1)
    proba = binary.predict_proba(X)
    members = expit(_members(binary, X)[..., 0]).mean(axis=0)
    np.testing.assert_allclose(proba[:, 1], members, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    Y = np.stack([y == 0, y == 1, y == 2], axis=1).astype(int)
    multilabel = DeepMLPClassifier((16,), n_members=3, ensemble_sharing="batch", max_iter=5,
                                   random_state=0).fit(X, Y)
    np.testing.assert_allclose(multilabel.predict_proba(X),
                               expit(_members(multilabel, X)).mean(axis=0), rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
def test_regressor_predicts_the_members_mean(loss, reg_data):
    X, y = reg_data
    y = np.abs(y) if loss == "poisson" else y
    reg = DeepMLPRegressor((16,), n_members=4, ensemble_sharing="batch", loss=loss,
                           max_iter=10, random_state=0).fit(X, y)
    raw = _members(reg, X)[..., 0]
    preds = np.exp(raw) if loss == "poisson" else raw
    np.testing.assert_allclose(reg.predict(X), preds.mean(axis=0), rtol=1e-4, atol=1e-5)


def test_return_std_comes_from_the_members(clf_data, reg_data):
    X, y = clf_data
    clf = DeepMLPClassifier((16,), n_members=4, max_iter=5, random_state=0).fit(X, y)
    proba, std = clf.predict_proba(X, return_std=True)
    np.testing.assert_array_equal(proba, clf.predict_proba(X))
    np.testing.assert_allclose(std, softmax(_members(clf, X), axis=2).std(axis=0),
                               rtol=1e-4, atol=1e-6)
    assert (std > 0).any()
    X, y = reg_data
    reg = DeepMLPRegressor((16,), n_members=4, max_iter=5, random_state=0).fit(X, y)
    mean, std = reg.predict(X, return_std=True)
    np.testing.assert_array_equal(mean, reg.predict(X))
    np.testing.assert_allclose(std, _members(reg, X)[..., 0].std(axis=0), rtol=1e-4,
                               atol=1e-6)
    single = DeepMLPRegressor((16,), max_iter=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="n_members >= 2"):
        single.predict(X, return_std=True)


def test_mc_dropout_on_an_ensemble_spreads_the_passes(reg_data):
    X, y = reg_data
    reg = DeepMLPRegressor((16,), n_members=3, dropout=0.3, mc_dropout=5, max_iter=3,
                           random_state=0).fit(X, y)
    mean, std = reg.predict(X, return_std=True)
    assert mean.shape == std.shape == (len(X),) and (std > 0).all()


@pytest.mark.parametrize("sharing", SHARING)
def test_fast_step_equals_the_eager_step(sharing, clf_data):
    X, y = clf_data
    params = dict(hidden_layer_sizes=(16, 8), n_members=3, ensemble_sharing=sharing,
                  batch_norm="after", dropout=0.2, alpha=0.01, max_iter=4, random_state=0)
    fast = DeepMLPClassifier(**params).fit(X, y)
    eager = DeepMLPClassifier(**params)
    eager._fast_engine = False
    eager.fit(X, y)
    assert fast.engine_ == "cpu-manual" and eager.engine_ != "cpu-manual"
    np.testing.assert_allclose(fast.loss_curve_, eager.loss_curve_, rtol=1e-4)
    for (name, a), (_, b) in zip(fast.module_.state_dict().items(),
                                 eager.module_.state_dict().items(), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-4, err_msg=name)


def test_pipeline_grid_search_and_clone(clf_data):
    X, y = clf_data
    pipe = make_pipeline(StandardScaler(),
                         DeepMLPClassifier((8,), n_members=2, max_iter=3, random_state=0))
    search = GridSearchCV(pipe, {"deepmlpclassifier__ensemble_sharing": SHARING,
                                 "deepmlpclassifier__n_members": [1, 3]}, cv=2)
    search.fit(X, y)
    assert search.predict(X).shape == (len(X),)
    est = clone(search.best_estimator_[-1])
    assert est.n_members == search.best_params_["deepmlpclassifier__n_members"]
    assert not hasattr(est, "net_")


def test_partial_fit_and_warm_start_continue_the_members(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((8,), n_members=3, ensemble_sharing="batch", random_state=0)
    clf.partial_fit(X, y, classes=np.unique(y))
    first = clf.module_.output.linear.weight.detach().clone()
    clf.partial_fit(X, y)
    assert len(clf.loss_curve_) == 2
    assert not torch.equal(first, clf.module_.output.linear.weight)
    warm = DeepMLPClassifier((8,), n_members=3, max_iter=2, warm_start=True,
                             random_state=0).fit(X, y)
    module = warm.module_
    warm.fit(X, y)
    assert warm.module_ is module and len(warm.loss_curve_) == 4
    for name, value in (("n_members", 2), ("ensemble_sharing", "batch")):
        with pytest.raises(ValueError, match=f"{name} changed"):
            warm.set_params(**{name: value}).fit(X, y)
        warm.set_params(n_members=3, ensemble_sharing="mini")


def test_pickle_round_trip(clf_data):
    X, y = clf_data
    # (2 members and 3 classes: the output layer's shapes tell them apart)
    clf = DeepMLPClassifier((8,), n_members=2, ensemble_sharing="batch", max_iter=3,
                            random_state=0).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    again.set_params(warm_start=True, max_iter=1).fit(X, y)  # trains on: the members' loss
    assert again.engine_ == "cpu-manual"


@pytest.mark.parametrize("params, match", [
    (dict(n_members=0), "n_members"),
    (dict(n_members=2.5), "n_members"),
    (dict(ensemble_sharing="full"), "ensemble_sharing"),
    (dict(n_members=2, pretrain="autoencoder"), "pretrain"),
    (dict(n_members=2, kernel_initializer="sklearn"), "kernel_initializer"),
], ids=str)
def test_parameter_validation(params, match, clf_data):
    X, y = clf_data
    with pytest.raises(InvalidParameterError, match=match):
        DeepMLPClassifier((4,), max_iter=1, **params).fit(X, y)


def test_init_from_an_ensemble_or_into_one_is_refused(clf_data):
    X, y = clf_data
    single = DeepMLPClassifier((4,), max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(InvalidParameterError, match="does not support init_from"):
        DeepMLPClassifier((4,), n_members=2, init_from=single, max_iter=1).fit(X, y)
    ensemble = DeepMLPClassifier((4,), n_members=2, max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(InvalidParameterError, match="init_from is an ensemble"):
        DeepMLPClassifier((4,), init_from=ensemble, max_iter=1).fit(X, y)


def test_sharing_without_members_warns_that_it_has_no_effect(clf_data):
    X, y = clf_data
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DeepMLPClassifier((4,), ensemble_sharing="batch", max_iter=1).fit(X, y)
    assert any("ensemble_sharing" in str(w.message) and "no effect" in str(w.message)
               for w in caught)


def test_training_features_run_on_an_ensemble(clf_data):
    # freezing, max-norm, early stopping on the combined validation loss
    X, y = clf_data
    clf = DeepMLPClassifier((8, 8), n_members=3, ensemble_sharing="batch", max_norm=0.5,
                            early_stopping=True, n_iter_no_change=2, max_iter=5,
                            random_state=0).fit(X, y)
    assert all(torch.linalg.norm(lin.weight, dim=1).max() <= 0.5 + 1e-5
               for lin in clf.module_.hidden_linears())
    assert len(clf.validation_scores_) == clf.n_iter_
    clf.set_params(warm_start=True, freeze_layers=1, early_stopping=False, max_iter=2)
    adapter = clf.module_.hidden[0].scale_in.weight.detach().clone()
    clf.fit(X, y)
    assert torch.equal(adapter, clf.module_.hidden[0].scale_in.weight)
    assert clf.engine_ == "cpu-manual", clf.engine_reason_


@pytest.mark.parametrize("sharing", SHARING)
def test_four_members_are_not_worse_than_one(sharing):
    # (143 test rows: one row is 0.007 of accuracy; seeds 0-2 measured within 0.015)
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    scores = {}
    for k in (1, 4):
        model = make_pipeline(StandardScaler(), DeepMLPClassifier(
            (32, 32), n_members=k, ensemble_sharing=sharing, max_iter=30, random_state=0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores[k] = model.fit(X_train, y_train).score(X_test, y_test)
    assert scores[1] > 0.9
    assert scores[4] >= scores[1] - 0.03, scores


def test_batch_callbacks_see_the_combined_outputs(clf_data):
    # A training-batch callback gets y_pred as predictions would give it (the
    # members combined), so skorch's cached scoring on the training set works.
    from skorch.callbacks import Callback, EpochScoring

    class Shapes(Callback):
        def initialize(self):
            self.seen = []
            return self

        def on_batch_end(self, net, batch=None, training=None, y_pred=None, **kwargs):
            if training:
                self.seen.append(tuple(y_pred.shape))

    X, y = clf_data
    shapes = Shapes()
    clf = DeepMLPClassifier((8,), n_members=3, max_iter=2, batch_size=50, random_state=0,
                            callbacks=[shapes, EpochScoring("accuracy", on_train=True,
                                                            name="train_acc")]).fit(X, y)
    assert set(shapes.seen) == {(50, 3)}
    assert clf.history_[-1]["train_acc"] == pytest.approx(clf.score(X, y), abs=0.05)


def test_diagnostics_on_an_ensemble(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((8, 8), n_members=3, ensemble_sharing="batch", diagnostics=True,
                            max_iter=2, random_state=0).fit(X, y)
    frame = clf.history_frame()
    assert np.isfinite(frame["grad_norm_out"]).all() and (frame["grad_norm_out"] > 0).all()
    assert clf.engine_ == "cpu-manual"
