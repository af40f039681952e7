"""Cross-parameter checks (``_checks``): settings that have no effect are reported."""

import contextlib
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor, recommended_params
from sklearn_deepnet._checks import DEPENDENT_PARAMS
from sklearn_deepnet._engine.optim import SOLVERS
from sklearn_deepnet._schedules import SCHEDULES

Xc, yc = make_classification(n_samples=60, n_features=5, n_informative=3, random_state=0)
Xr, yr = make_regression(n_samples=60, n_features=5, random_state=0)
FAST = dict(hidden_layer_sizes=(4,), max_iter=1, random_state=0)


@contextlib.contextmanager
def _no_user_warnings():
    """UserWarnings are errors, except the ones about training length and batch size."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message="Got batch_size=")
        yield


@pytest.mark.parametrize("params, match", [
    # Issue 22, item 14: silently ignored before.
    (dict(lr_milestones=[2], lr_values=[1e-3, 1e-4]),
     r"lr_milestones=\[2\], lr_values=\[0.001, 0.0001\] have no effect here: only used "
     r"with learning_rate in 'piecewise'"),
    (dict(unfreeze_after=2), "unfreeze_after=2 has no effect here: only used with "
                             "freeze_layers > 0"),
    (dict(power_t=0.25), "power_t=0.25 has no effect.*learning_rate in 'invscaling'/'power'"),
    (dict(lr_patience=3, learning_rate="exponential"), "lr_patience=3 has no effect"),
    (dict(momentum=0.5), r"momentum=0.5 has no effect.*solver in 'sgd'/'momentum'/'nesterov'"),
    (dict(beta_1=0.8, solver="sgd"), "beta_1=0.8 has no effect"),
    (dict(max_fun=100), "max_fun=100 has no effect.*solver in 'lbfgs'"),
    (dict(solver="lbfgs", batch_size=16, shuffle=False),
     r"batch_size=16, shuffle=False have no effect.*mini-batch solvers"),
    (dict(solver="lbfgs", early_stopping=True), "early_stopping=True has no effect"),
    (dict(solver="lbfgs", n_iter_no_change=3), "n_iter_no_change=3 has no effect"),
    (dict(validation_fraction=0.2), "validation_fraction=0.2 has no effect.*early_stopping"),
    (dict(l1_ratio=0.5, alpha=0.0), "l1_ratio=0.5 has no effect.*alpha > 0"),
    (dict(batch_norm_momentum=0.01), "batch_norm_momentum=0.01 has no effect"),
    (dict(pretrain_epochs=3), "pretrain_epochs=3 has no effect"),
    (dict(learning_rate="1cycle", solver="adam", beta_1=0.8),
     "beta_1=0.8 has no effect here: learning_rate='1cycle' sets it itself"),
    (dict(learning_rate="1cycle", solver="sgd", momentum=0.5),
     "momentum=0.5 has no effect here: learning_rate='1cycle' sets it itself"),
    (dict(solver="sgd", momentum=0.0, nesterovs_momentum=False),
     "nesterovs_momentum=False has no effect.*momentum > 0"),
    (dict(n_iter_no_change=np.inf, tol=1e-2), "tol=0.01 has no effect.*finite n_iter_no_change"),
    (dict(mc_dropout=3), r"mc_dropout=3 has no effect.*dropout > 0"),
], ids=str)
def test_settings_without_effect_are_reported(params, match):
    with pytest.warns(UserWarning, match=match):
        DeepMLPClassifier(**FAST, **params).fit(Xc, yc)


def test_regressor_only_rows_and_a_warm_start_report_too():
    reg = DeepMLPRegressor(**FAST, huber_delta=2.0)
    with pytest.warns(UserWarning, match="huber_delta=2.0 has no effect.*loss='huber'"):
        reg.fit(Xr, yr)
    with pytest.warns(UserWarning, match="huber_delta=2.0 has no effect"):
        reg.set_params(warm_start=True).fit(Xr, yr)
    with _no_user_warnings():
        DeepMLPRegressor(**FAST, loss="huber", huber_delta=2.0).fit(Xr, yr)


@pytest.mark.parametrize("params", [
    {},
    recommended_params(),
    recommended_params("self_normalizing"),
    dict(learning_rate="piecewise", lr_milestones=[1], lr_values=[1e-2, 1e-3]),
    dict(solver="sgd", momentum=0.5, nesterovs_momentum=False, learning_rate="invscaling",
         power_t=0.25),
    dict(solver="lbfgs", max_fun=100),
    # 1cycle cycles momentum only when it is on: momentum=0 keeps plain SGD.
    dict(solver="sgd", learning_rate="1cycle", momentum=0.0),
    dict(solver="lbfgs", tol=1e-3),
    dict(tol=1e-3, n_iter_no_change=5),
    dict(dropout=0.2, mc_dropout=3),
    dict(batch_norm="before", batch_norm_momentum=0.01, alpha=1e-3, l1_ratio=0.5),
    dict(early_stopping=True, validation_fraction=0.2),
    # Defaults given explicitly are not "settings": scikit-learn's own
    # parameter values (momentum=0.9 with adam) stay silent.
    dict(solver="adam", momentum=0.9, power_t=0.5, max_fun=15000),
], ids=str)
def test_settings_that_are_used_or_default_are_silent(params):
    with _no_user_warnings():
        DeepMLPClassifier(**{**FAST, "hidden_layer_sizes": (4, 4, 4), **params}).fit(
            Xc * 0.5, yc)


def test_dependent_params_cover_every_schedule_and_solver_parameter():
    names = {row[0] for row in DEPENDENT_PARAMS}
    schedule = {p for row in SCHEDULES.values() for p in row.params}
    solver = {p for row in SOLVERS.values() for p in row.uses}
    always = {"tol", "n_iter_no_change", "max_iter", "weight_decay"}
    assert (schedule | solver) - always <= names
    for cls in (DeepMLPClassifier, DeepMLPRegressor):
        assert names <= set(cls().get_params()) | {"huber_delta"}


@pytest.mark.parametrize("callback, match", [
    # Issue 24: without a validation split these would record nothing (skorch's
    # scoring callbacks) or fail with a KeyError on 'valid_loss' (the monitors).
    ("EpochScoring", r"EpochScoring with on_train=False scores the validation split.*"
                     r"early_stopping=True.*EpochScoring\(\.\.\., on_train=True\)"),
    ("BatchScoring", r"BatchScoring with on_train=False scores the validation split"),
    ("PassthroughScoring", r"PassthroughScoring with on_train=False scores the validation"),
    ("EpochScoring uncached", r"EpochScoring\(on_train=True, use_caching=False\).*"
                              r"use use_caching=True"),
    ("EarlyStopping", r"EarlyStopping monitors 'valid_loss'.*early_stopping=True.*"
                      r"EarlyStopping\(monitor='train_loss'\)"),
    ("EarlyStopping class", r"EarlyStopping monitors 'valid_loss'"),
    ("Checkpoint", r"Checkpoint monitors 'valid_loss_best'.*"
                   r"Checkpoint\(monitor='train_loss_best'\)"),
    ("ReduceLROnPlateau", r"LRScheduler monitors 'valid_loss'"),
], ids=lambda v: v if " " not in v else None)
def test_skorch_callbacks_that_cannot_work_are_refused_with_what_to_do(callback, match,
                                                                      tmp_path):
    from skorch import callbacks as cbs

    from sklearn_deepnet._validation import InvalidParameterError

    made = {
        "EpochScoring": lambda: cbs.EpochScoring("accuracy"),
        "BatchScoring": lambda: cbs.BatchScoring("accuracy"),
        "PassthroughScoring": lambda: cbs.PassthroughScoring("valid_loss"),
        "EpochScoring uncached": lambda: cbs.EpochScoring("accuracy", on_train=True,
                                                          use_caching=False),
        "EarlyStopping": lambda: cbs.EarlyStopping(),
        "EarlyStopping class": lambda: cbs.EarlyStopping,
        "Checkpoint": lambda: cbs.Checkpoint(dirname=str(tmp_path)),
        "ReduceLROnPlateau": lambda: cbs.LRScheduler("ReduceLROnPlateau", monitor="valid_loss"),
    }[callback]()
    with pytest.raises(InvalidParameterError, match=match):
        DeepMLPClassifier(**FAST, callbacks=[made]).fit(Xc, yc)


def test_validation_monitors_work_with_early_stopping(tmp_path):
    from skorch.callbacks import Checkpoint, EarlyStopping

    clf = DeepMLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0,
                            early_stopping=True, n_iter_no_change=100,
                            callbacks=[EarlyStopping(patience=2, threshold=10.0),
                                       Checkpoint(dirname=str(tmp_path))]).fit(Xc, yc)
    assert clf.net_.stop_reason == "callback EarlyStopping" and clf.n_iter_ == 3
    assert (tmp_path / "params.pt").exists()


def test_a_regressor_monitoring_valid_acc_is_refused_at_fit(reg_data):
    # Found by the callbacks work: the history of a regressor holds no valid_acc,
    # so skorch's EarlyStopping(monitor="valid_acc") failed with a KeyError mid-fit.
    from skorch.callbacks import EarlyStopping

    X, y = reg_data
    reg = DeepMLPRegressor((8,), early_stopping=True, max_iter=3,
                           callbacks=[EarlyStopping(monitor="valid_acc", lower_is_better=False)])
    with pytest.raises(ValueError, match="an accuracy, which a regressor's history"):
        reg.fit(X, y)
    reg.set_params(callbacks=[EarlyStopping(monitor="valid_loss")]).fit(X, y)
