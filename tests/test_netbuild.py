"""_netbuild: the trainer of each call (its settings and callbacks, a new network or
the fitted one with this call's settings).

Fits that go through these methods are everywhere in the suite (e.g.
tests/test_trainer.py checks that partial_fit keeps the optimizer and a warm
start does not); here each method is called on its own and its result
compared with what the estimator's parameters say it must be.
"""

import inspect

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

import sklearn_deepnet._netbuild as netbuild
from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor
from sklearn_deepnet._callbacks import ConvergenceMonitor, LayerFreezer, ProgressBar
from sklearn_deepnet._diagnostics import Diagnostics
from sklearn_deepnet._engine.losses import PerSampleLoss, squared_error
from sklearn_deepnet._engine.module import MLP
from sklearn_deepnet._engine.optim import SOLVERS
from sklearn_deepnet._engine.steps import Regularization
from sklearn_deepnet._netbuild import SOLVER_PARAMS
from sklearn_deepnet._schedules import EpochSchedule, PlateauSchedule, StepSchedule
from sklearn_deepnet._trainer import TrainingNet

CPU = torch.device("cpu")


class OnEpoch(Callback):
    def on_epoch_end(self, net, **kwargs):
        pass


def _data(n=40):
    rng = np.random.RandomState(0)
    y = np.arange(n) % 2
    return rng.normal(size=(n, 3)) + y[:, None], y


def _fitted(**params):
    X, y = _data()
    kw = dict(hidden_layer_sizes=(4,), max_iter=2, batch_size=20, tol=0, random_state=0)
    return DeepMLPClassifier(**{**kw, **params}).fit(X, y)


@pytest.fixture(autouse=True)
def _no_terminal(monkeypatch):
    """No progress bar (as off a terminal) unless a test asks for one, even under -s."""
    monkeypatch.setattr(netbuild, "wants_progress_bar", lambda incremental: False)


def _names(callbacks):
    return [item[0] if isinstance(item, tuple) else item for item in callbacks]


# ---------------------------------------------------------------- the table
def test_solver_params_are_the_estimators_and_cover_every_solver():
    for cls in (DeepMLPClassifier, DeepMLPRegressor):
        assert set(SOLVER_PARAMS) <= set(inspect.signature(cls).parameters)
    read = {name for row in SOLVERS.values() if row.stochastic for name in row.uses}
    # (weight_decay is resolved per solver and passed as the call's decay)
    assert read - {"weight_decay"} <= set(SOLVER_PARAMS)
    assert "learning_rate_init" in SOLVER_PARAMS


# ------------------------------------------------------------ _call_settings
def test_settings_of_a_mini_batch_solver():
    est = DeepMLPClassifier(solver="nadam", alpha=0.5, l1_ratio=0.25, clip_norm=2.0,
                            clip_value=3.0, max_norm=4.0, shuffle=False, max_iter=7,
                            beta_1=0.8, learning_rate_init=0.02, verbose=True)
    est._fast_engine = False
    settings = est._call_settings(CPU, 16, 0.125, None, False, None)
    assert set(settings) == {"solver", "solver_params", "regularization", "shuffle",
                             "min_batch", "batch_size", "max_epochs", "callbacks", "device",
                             "fast", "verbose"}
    assert settings["solver"] == "nadam"
    assert settings["solver_params"] == {
        "learning_rate_init": 0.02, "momentum": 0.9, "nesterovs_momentum": True,
        "beta_1": 0.8, "beta_2": 0.999, "epsilon": 1e-8, "rho": 0.9, "weight_decay": 0.125}
    assert settings["regularization"] == Regularization(
        alpha=0.5, l1_ratio=0.25, clip_norm=2.0, clip_value=3.0, max_norm=4.0)
    assert (settings["shuffle"], settings["min_batch"], settings["batch_size"],
            settings["max_epochs"]) == (False, 1, 16, 7)
    assert settings["device"] is CPU and settings["fast"] is False
    assert settings["verbose"] == 1 and type(settings["verbose"]) is int
    assert _names(settings["callbacks"])[0] == "convergence"


def test_settings_of_partial_fit_and_of_lbfgs():
    est = DeepMLPClassifier(max_iter=7)
    assert est._call_settings(CPU, 16, 0.0, None, True, None)["max_epochs"] == 1
    lbfgs = DeepMLPClassifier(solver="lbfgs", max_iter=30, max_fun=400, tol=1e-5)
    settings = lbfgs._call_settings(CPU, 50, 0.0, None, False, None)
    assert settings["max_epochs"] == 1  # one full-batch optimization per call
    params = settings["solver_params"]
    assert (params["max_iter"], params["max_fun"], params["tol"]) == (30, 400, 1e-5)
    assert "max_iter" not in est._call_settings(CPU, 16, 0.0, None, False, None)[
        "solver_params"]


@pytest.mark.parametrize("params, min_batch", [
    (dict(), 1), (dict(batch_norm="before"), 2), (dict(batch_norm="after"), 2),
    (dict(batch_norm_input=True), 2),
])
def test_batch_norm_needs_two_rows_per_batch(params, min_batch):
    est = DeepMLPRegressor(**params)
    assert est._call_settings(CPU, 8, 0.0, None, False, None)["min_batch"] == min_batch


# ----------------------------------------------------------- _call_callbacks
def test_the_stopping_rule_comes_first_with_this_calls_settings():
    est = DeepMLPClassifier(tol=0.01, n_iter_no_change=4, verbose=2)
    validation, carry = ("X_val", "y_val", "w_val"), (2, 0.5, 0.75)
    callbacks = est._call_callbacks(validation, False, carry)
    name, monitor = callbacks[0]
    assert name == "convergence" and type(monitor) is ConvergenceMonitor
    assert (monitor.tol, monitor.n_iter_no_change, monitor.validation, monitor.carry) == (
        0.01, 4, validation, carry)
    assert monitor.scorer == est._score_raw
    assert monitor.validation_loss == est._validation_loss
    assert monitor.verbose is True and monitor.adaptive is False
    assert _names(callbacks) == ["convergence"]  # constant rate, nothing else asked


@pytest.mark.parametrize("learning_rate, cls", [
    ("constant", None), ("adaptive", None), ("invscaling", EpochSchedule),
    ("power", StepSchedule), ("plateau", PlateauSchedule),
])
def test_the_schedule_callback(learning_rate, cls):
    est = DeepMLPClassifier(learning_rate=learning_rate)
    callbacks = dict(est._call_callbacks(None, False, None))
    assert callbacks["convergence"].adaptive is (learning_rate == "adaptive")
    if cls is None:
        assert "schedule" not in callbacks
    else:
        assert type(callbacks["schedule"]) is cls


def test_freezer_diagnostics_and_the_users_callbacks_in_order():
    mine, cls = OnEpoch(), OnEpoch
    est = DeepMLPClassifier((5, 4, 3), activation="tanh", learning_rate="invscaling",
                            freeze_layers=2, unfreeze_after=3, diagnostics=True,
                            callbacks=[("mine", mine), cls])
    callbacks = est._call_callbacks(None, False, None)
    assert _names(callbacks) == ["convergence", "schedule", "freeze", "diagnostics",
                                 "mine", cls]
    assert callbacks[4][1] is mine and callbacks[5] is cls  # as given
    freezer = callbacks[2][1]
    assert type(freezer) is LayerFreezer
    assert (freezer.n_layers, freezer.unfreeze_after) == (2, 3)
    diagnostics = callbacks[3][1]
    assert type(diagnostics) is Diagnostics
    assert diagnostics.kinds == [(False, (-1.0, 1.0))] * 3
    assert diagnostics.summary is False and diagnostics.write is print  # verbose=False


def test_a_progress_bar_when_verbose_on_a_terminal(monkeypatch):
    asked = []

    def wants(incremental):
        asked.append(incremental)
        return True

    monkeypatch.setattr(netbuild, "wants_progress_bar", wants)
    est = DeepMLPRegressor(verbose=1, diagnostics=True, callbacks=[OnEpoch()])
    callbacks = est._call_callbacks(None, True, None)
    assert asked == [True]
    assert _names(callbacks)[:3] == ["convergence", "diagnostics", "progress"]
    bar = callbacks[2][1]
    assert type(bar) is ProgressBar and bar.desc == "DeepMLPRegressor"
    assert callbacks[0][1].verbose is False  # the bar shows the epochs instead
    assert callbacks[1][1].write == bar.write  # printed above the bar
    assert callbacks[1][1].summary is False  # verbose=1
    quiet = DeepMLPRegressor(verbose=0)
    assert _names(quiet._call_callbacks(None, False, None)) == ["convergence"]
    assert asked == [True]  # not even asked without verbose


def test_no_bar_off_a_terminal():
    callbacks = DeepMLPRegressor(verbose=1)._call_callbacks(None, False, None)
    assert _names(callbacks) == ["convergence"] and callbacks[0][1].verbose is True


# -------------------------------------------------------- _activation_kinds
@pytest.mark.parametrize("params, kinds", [
    (dict(hidden_layer_sizes=(8, 4, 2)), [(True, None)] * 3),
    (dict(hidden_layer_sizes=5, activation="logistic"), [(False, (0.0, 1.0))]),
    (dict(hidden_layer_sizes=(3, 3), activation="tanh"), [(False, (-1.0, 1.0))] * 2),
    (dict(hidden_layer_sizes=(3,), activation="elu"), [(False, None)]),
    (dict(hidden_layer_sizes=(3, 2), activation=torch.nn.ReLU), [(False, None)] * 2),
])
def test_activation_kinds(params, kinds):
    assert DeepMLPClassifier(**params)._activation_kinds() == kinds


# ------------------------------------------------------------- a new network
def test_a_new_network_and_the_trainer_its_pretraining_gets(monkeypatch):
    seen = {}

    def start(est, module, *, n_features, pretraining, trainer, seed):
        seen.update(est=est, module=module, n_features=n_features, pretraining=pretraining,
                    trainer=trainer, seed=seed)
        return 2, [0.5, 0.25]

    monkeypatch.setattr(netbuild, "start_network_", start)
    est = DeepMLPRegressor((6, 5), solver="sgd", learning_rate="invscaling", max_iter=9,
                           alpha=0.5)
    est._embedding, est.out_activation_ = None, "identity"
    pretraining = object()
    with torch.random.fork_rng(devices=[]):  # (initialization draws from it)
        net = est._prepare_net(3, 2, CPU, 16, 0.0, None, False, False,
                               pretraining=pretraining, seed=123)
        autoencoder = MLP(3, (6, 5, 6), 3)
    assert type(net) is TrainingNet and net.initialized_
    assert seen["est"] is est and seen["module"] is net.module_
    assert (seen["n_features"], seen["pretraining"]) == (3, pretraining)
    assert seen["seed"] == int(np.random.SeedSequence([123, 1]).generate_state(1)[0])
    assert (est.reused_layers_, est.pretrain_loss_curve_) == (2, [0.5, 0.25])
    assert isinstance(net.module_, MLP) and [lin.out_features for lin in
                                             net.module_.linears()] == [6, 5, 2]
    assert (net.solver, net.batch_size, net.max_epochs, net.schedule) == (
        "sgd", 16, 9, "invscaling")
    assert _names(net.callbacks) == ["convergence", "schedule"]
    # The autoencoder's trainer: the same solver and penalties, no callbacks, its
    # own batch size (batch_size="auto": up to 200 rows).
    ae_net = seen["trainer"](autoencoder, PerSampleLoss(squared_error), 7)
    assert type(ae_net) is TrainingNet and ae_net.initialized_
    assert ae_net.module_ is autoencoder and ae_net.callbacks == []
    assert [name for name, _ in ae_net.callbacks_] == ["epoch_timer"]
    assert (ae_net.solver, ae_net.batch_size) == ("sgd", 7)
    assert ae_net.solver_params == net.solver_params
    assert ae_net.regularization == net.regularization == Regularization(
        alpha=0.5, l1_ratio=0.0, clip_norm=None, clip_value=None, max_norm=None)


# ------------------------------------------------------- a continued network
def _continue(est, incremental, **call):
    """``_prepare_net`` for a call continuing the fitted network."""
    decay = est.net_.solver_params["weight_decay"]
    return est._prepare_net(3, 1, CPU, call.get("batch_size", 20), decay, None, incremental,
                            True, carry=call.get("carry"))


def test_partial_fit_with_the_same_solver_settings_keeps_the_optimizer():
    est = _fitted()
    net, optimizer, criterion = est.net_, est.net_.optimizer_, est.net_.criterion_
    old_monitor = dict(net.callbacks_)["convergence"]
    state = {k: v.clone() for k, v in optimizer.state[next(iter(optimizer.state))].items()}
    for group in optimizer.param_groups:
        group["lr"] = 0.125  # e.g. set by a user's callback: kept too
    assert _continue(est, True, batch_size=10, carry=(1, 0.5, None)) is net
    assert net.optimizer_ is optimizer
    assert [g["lr"] for g in optimizer.param_groups] == [0.125] * len(optimizer.param_groups)
    kept = optimizer.state[next(iter(optimizer.state))]
    assert all(torch.equal(kept[k], v) for k, v in state.items())
    # this call's settings, criterion and callbacks
    assert (net.max_epochs, net.batch_size) == (1, 10)
    assert net.criterion_ is not criterion
    monitor = dict(net.callbacks_)["convergence"]
    assert monitor is not old_monitor and monitor is net.callbacks[0][1]
    assert monitor.carry == (1, 0.5, None)


@pytest.mark.parametrize("change", [dict(learning_rate_init=0.01), dict(beta_2=0.99),
                                    dict(solver="nadam")], ids=lambda c: next(iter(c)))
def test_partial_fit_with_other_solver_settings_gets_a_fresh_optimizer(change):
    est = _fitted()
    optimizer = est.net_.optimizer_
    est.set_params(**change)
    net = _continue(est, True)
    assert net.optimizer_ is not optimizer and len(net.optimizer_.state) == 0
    assert net.optimizer_.param_groups[0]["lr"] == est.learning_rate_init
    assert net.solver == est.solver


def test_a_warm_start_always_gets_a_fresh_optimizer():
    est = _fitted()
    optimizer = est.net_.optimizer_
    net = _continue(est, False)
    assert net.optimizer_ is not optimizer and len(net.optimizer_.state) == 0
    assert net.max_epochs == 2  # max_iter epochs


def test_another_schedule_resets_the_rate_and_betas_of_a_kept_optimizer():
    est = _fitted(learning_rate="1cycle", learning_rate_init=0.01)
    optimizer = est.net_.optimizer_
    group = optimizer.param_groups[0]
    assert group["lr"] != 0.01 and group["betas"][0] != 0.9  # where 1cycle left them
    left = (group["lr"], group["betas"])
    assert _continue(est, True).optimizer_ is optimizer  # same schedule: as it was left
    assert (group["lr"], group["betas"]) == left and est.net_.schedule == "1cycle"
    est.set_params(learning_rate="constant")
    net = _continue(est, True)
    assert net.optimizer_ is optimizer and len(optimizer.state) > 0  # moments kept
    for g in optimizer.param_groups:
        assert g["lr"] == 0.01 and g["betas"] == (0.9, 0.999)  # the solver's settings
    assert net.schedule == "constant"
