"""_outcome: the warnings a finished fit call reports, its Ctrl-C message, and
``show_setting_warning`` (a settings warning once per process, every time
under an "always" filter).

End-to-end fits that emit these warnings are in tests/test_base.py,
tests/test_lbfgs.py and tests/test_pretrain.py; here ``fit_outcome`` runs on
stand-ins for the estimator and its trainer, so every branch and message is
checked exactly.
"""

import re
import warnings
from types import SimpleNamespace

import pytest
from sklearn.exceptions import ConvergenceWarning

import sklearn_deepnet._outcome as outcome
from sklearn_deepnet._outcome import _action, fit_outcome, show_setting_warning


@pytest.fixture
def shown(monkeypatch):
    """A fresh record of the settings warnings shown (the process's one is left alone)."""
    fresh = set()
    monkeypatch.setattr(outcome, "_SHOWN", fresh)
    return fresh


@pytest.fixture
def no_filters():
    with warnings.catch_warnings():
        warnings.resetwarnings()
        yield


def _est(**params):
    base = dict(solver="adam", max_iter=5, max_fun=15000, learning_rate="constant",
                learning_rate_init=0.001, pretrain=None, pretrain_epochs=10,
                pretrain_loss_curve_=None)
    return SimpleNamespace(**{**base, **params})


def _net(stop_reason=None, history=()):
    return SimpleNamespace(stop_reason=stop_reason, history=list(history))


def _outcome(est, net, n_done, kept="of the last complete epoch", *, incremental=False,
             continuing=False):
    pending = []
    interrupted = fit_outcome(est, net, n_done, kept, pending, incremental=incremental,
                              continuing=continuing)
    return pending, interrupted


MAX_ITER_5 = ("Stochastic Optimizer: Maximum iterations (5) reached and the optimization "
              "hasn't converged yet.")


# ------------------------------------------------------------------ _action
def test_action_reads_the_filters_in_force(no_filters):
    assert _action("anything", UserWarning) == "default"  # no filter at all
    warnings.simplefilter("always", UserWarning)
    assert _action("anything", UserWarning) == "always"
    assert _action("anything", ConvergenceWarning) == "always"  # a subclass of UserWarning
    assert _action("anything", DeprecationWarning) == "default"  # another category
    warnings.filterwarnings("ignore", message="momentum=")  # inserted first: wins
    assert _action("momentum=0.5 has no effect here", UserWarning) == "ignore"
    assert _action("MOMENTUM=0.5 has no effect", UserWarning) == "ignore"  # case-insensitive
    # Python matches a filter's message at the start only
    assert _action("x, momentum=0.5 have no effect", UserWarning) == "always"
    warnings.filterwarnings("error", category=ConvergenceWarning)
    assert _action("Maximum iterations", ConvergenceWarning) == "error"
    assert _action("Maximum iterations", UserWarning) == "always"


def test_action_skips_filters_for_one_module(no_filters):
    warnings.filterwarnings("ignore", module="some_module")
    assert _action("a message", UserWarning) == "default"
    warnings.filterwarnings("error", module=".*")  # every module: decidable
    assert _action("a message", UserWarning) == "error"


def test_action_compiles_a_message_given_as_a_string(no_filters):
    # (as a filter list written by hand holds it)
    warnings.filters.insert(0, ("once", "Reused hidden", UserWarning, None, 0))
    assert _action("reused hidden layer(s) [1]", UserWarning) == "once"
    assert _action("Something else", UserWarning) == "default"
    warnings.filters.insert(0, ("ignore", None, Warning, re.compile(".*"), 0))
    assert _action("Something else", UserWarning) == "ignore"


# ----------------------------------------------------- show_setting_warning
def test_a_settings_warning_is_shown_once_per_class_and_message(shown, no_filters):
    assert show_setting_warning("DeepMLPClassifier", "a=1 has no effect", UserWarning)
    assert not show_setting_warning("DeepMLPClassifier", "a=1 has no effect", UserWarning)
    # another estimator class or another message: shown once too
    assert show_setting_warning("DeepMLPRegressor", "a=1 has no effect", UserWarning)
    assert show_setting_warning("DeepMLPClassifier", "b=2 has no effect", UserWarning)
    assert not show_setting_warning("DeepMLPRegressor", "a=1 has no effect", UserWarning)
    assert shown == {("DeepMLPClassifier", "a=1 has no effect"),
                     ("DeepMLPRegressor", "a=1 has no effect"),
                     ("DeepMLPClassifier", "b=2 has no effect")}


@pytest.mark.parametrize("action", ["always", "error"])
def test_always_and_error_filters_show_it_every_time_without_counting(shown, no_filters,
                                                                      action):
    warnings.simplefilter(action)
    for _ in range(3):
        assert show_setting_warning("DeepMLPClassifier", "a=1 has no effect", UserWarning)
    assert shown == set()
    warnings.resetwarnings()  # back to the default: shown once more, then not
    assert show_setting_warning("DeepMLPClassifier", "a=1 has no effect", UserWarning)
    assert not show_setting_warning("DeepMLPClassifier", "a=1 has no effect", UserWarning)


def test_an_ignored_warning_is_not_counted_as_shown(shown, no_filters):
    warnings.filterwarnings("ignore", message="a=1")
    assert not show_setting_warning("DeepMLPClassifier", "a=1 has no effect", UserWarning)
    assert shown == set()
    # another message is not ignored by that filter
    assert show_setting_warning("DeepMLPClassifier", "b=2 has no effect", UserWarning)
    warnings.resetwarnings()  # a later fit under other filters shows it
    assert show_setting_warning("DeepMLPClassifier", "a=1 has no effect", UserWarning)


def test_the_record_is_bounded(shown, no_filters):
    shown.update(("Old", str(i)) for i in range(10_000))
    assert show_setting_warning("New", "first", UserWarning)
    assert len(shown) == 10_001  # at the bound: kept
    assert show_setting_warning("New", "second", UserWarning)
    assert shown == {("New", "second")}  # over it: cleared, then recorded
    assert show_setting_warning("New", "first", UserWarning)  # forgotten, so shown again


# -------------------------------------------------------------- fit_outcome
def test_max_iter_reached_warns_like_scikit_learn():
    pending, interrupted = _outcome(_est(), _net(), 5)
    assert interrupted is None
    assert pending == [(MAX_ITER_5, ConvergenceWarning)]


@pytest.mark.parametrize("case", [
    dict(n_done=4),  # stopped before max_iter
    dict(incremental=True),  # partial_fit runs one epoch by design
    dict(est=dict(learning_rate="1cycle")),  # 1cycle runs max_iter epochs by design
    dict(stop="Training loss did not improve more than tol=0.0001 for 10 consecutive "
              "epochs."),
    dict(stop="callback EarlyStopping"),  # a user's callback stopped on purpose
], ids=["fewer-epochs", "partial-fit", "1cycle", "converged", "callback-stop"])
def test_no_max_iter_warning(case):
    pending, interrupted = _outcome(_est(**case.get("est", {})), _net(case.get("stop")),
                                    case.get("n_done", 5),
                                    incremental=case.get("incremental", False))
    assert pending == [] and interrupted is None


def test_a_warm_start_that_runs_max_iter_epochs_warns_too():
    pending, _ = _outcome(_est(), _net(), 5, continuing=True)
    assert pending == [(MAX_ITER_5, ConvergenceWarning)]


@pytest.mark.parametrize("kept", ["of the last complete epoch",
                                  "of the best validation score"])
def test_interrupted_returns_the_message_and_warns_nothing(kept):
    pending, interrupted = _outcome(_est(), _net("interrupted"), 5, kept)
    assert pending == []  # not even the max_iter warning: the call was cut short
    assert interrupted == (
        f"Training was interrupted after 5 complete epoch(s) of this call; the model keeps "
        f"the weights {kept} and can be used or trained further (warm_start=True or "
        "partial_fit)."
    )


@pytest.mark.parametrize("kept, said", [
    ("of the last complete epoch", "of the last finite epoch"),
    ("of the best validation score", "of the best validation score"),
])
def test_diverged_warns_with_the_remedies(kept, said):
    pending, interrupted = _outcome(_est(learning_rate_init=0.5, solver="lbfgs"),
                                    _net("diverged"), 2, kept)
    assert interrupted is None
    assert pending == [(
        f"Training diverged: in epoch 3 of this call the loss or the weights became NaN or "
        f"inf, so training stopped and the weights {said} are kept (2 epoch(s) of this "
        "call). Remedies: a lower learning_rate_init (now 0.5), gradient clipping (e.g. "
        "clip_norm=1.0), batch_norm='before', standardized inputs (StandardScaler), or a "
        "smaller alpha.",
        ConvergenceWarning,
    )]


def _lbfgs_row(**record):
    return {"lbfgs_converged": False, "lbfgs_iterations": 7, "lbfgs_evaluations": 9, **record}


@pytest.mark.parametrize("est, row, why", [
    (dict(max_iter=7), _lbfgs_row(lbfgs_status=1),
     "it reached max_iter=7. Increase max_iter"),
    (dict(max_iter=200, max_fun=9), _lbfgs_row(lbfgs_status=1),
     "it reached max_fun=9. Increase max_fun"),
    (dict(max_iter=7), _lbfgs_row(),  # no status recorded: a limit
     "it reached max_iter=7. Increase max_iter"),
    (dict(max_iter=200), _lbfgs_row(lbfgs_status=2, lbfgs_message="ABNORMAL_TERMINATION"),
     "the line search failed (ABNORMAL_TERMINATION). Try a larger tol"),
    (dict(max_iter=200), _lbfgs_row(lbfgs_status=2),
     "the line search failed (ABNORMAL). Try a larger tol"),
], ids=["max_iter", "max_fun", "no-status", "line-search", "line-search-no-message"])
def test_lbfgs_not_converged(est, row, why):
    pending, interrupted = _outcome(_est(solver="lbfgs", **est), _net(history=[{}, row]), 1)
    assert interrupted is None
    assert pending == [(
        f"lbfgs failed to converge after 7 iteration(s) and 9 loss evaluation(s): {why} or "
        "scale the data (e.g. StandardScaler).",
        ConvergenceWarning,
    )]


@pytest.mark.parametrize("history, n_done", [
    ([{"lbfgs_converged": True, "lbfgs_iterations": 7, "lbfgs_evaluations": 9}], 1),
    ([{"train_loss": 0.5}], 1),  # nothing recorded about convergence: converged
    ([_lbfgs_row()], 0),  # no epoch of this call: the row is an earlier call's
], ids=["converged", "no-record", "no-epoch"])
def test_lbfgs_without_a_warning(history, n_done):
    # (max_iter == n_done: the stochastic solvers' warning must not apply)
    pending, _ = _outcome(_est(solver="lbfgs", max_iter=n_done or 1), _net(history=history),
                          n_done)
    assert pending == []


def test_diverged_pretraining_warns_first():
    est = _est(pretrain="autoencoder", pretrain_epochs=6, pretrain_loss_curve_=[0.9, 0.7],
               learning_rate_init=0.25)
    pending, interrupted = _outcome(est, _net("diverged"), 0)
    assert interrupted is None
    assert pending[0] == (
        "Pretraining diverged: the autoencoder's loss or weights became NaN or inf in epoch "
        "3 of 6, so pretraining stopped with the weights of epoch 2. Try a lower "
        "learning_rate_init (now 0.25) or standardized inputs.",
        ConvergenceWarning,
    )
    assert len(pending) == 2 and pending[1][0].startswith("Training diverged: in epoch 1 ")


@pytest.mark.parametrize("params, continuing", [
    (dict(pretrain="autoencoder", pretrain_epochs=2, pretrain_loss_curve_=[0.9, 0.7]), False),
    (dict(pretrain=None, pretrain_loss_curve_=[0.9]), False),  # (no pretraining asked)
    (dict(pretrain="autoencoder", pretrain_epochs=6), True),  # built by an earlier call
], ids=["complete", "not-asked", "continuing"])
def test_no_pretraining_warning(params, continuing):
    est = _est(**params)
    if continuing:
        del est.pretrain_loss_curve_  # not read for a continuing call
    pending, _ = _outcome(est, _net(), 3, continuing=continuing)
    assert pending == []


def test_pending_is_extended_in_place_after_what_it_held():
    pending = [("earlier", UserWarning, "once")]
    fit_outcome(_est(), _net(), 5, "of the last complete epoch", pending, incremental=False,
                continuing=False)
    assert pending == [("earlier", UserWarning, "once"), (MAX_ITER_5, ConvergenceWarning)]
