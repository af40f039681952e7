"""Learning-rate schedules (``learning_rate``): formulas, sklearn's rules, every path."""

import numpy as np
import pytest
from skorch.callbacks import Callback

from sklearn_deepnet import DeepMLPClassifier
from sklearn_deepnet._schedules import SCHEDULES
from sklearn_deepnet._validation import InvalidParameterError


class RecordRates(Callback):
    """The rate and momentum of every optimizer step (read after the step)."""

    def on_train_begin(self, net, **kwargs):
        self.rates_ = getattr(self, "rates_", [])
        self.momenta_ = getattr(self, "momenta_", [])

    def on_batch_end(self, net, **kwargs):
        group = net.optimizer_.param_groups[0]
        self.rates_.append(float(group["lr"]))
        self.momenta_.append(group["betas"][0] if "betas" in group else group.get("momentum"))


def _fit(clf_data, **params):
    X, y = clf_data
    rec = RecordRates()
    kw = dict(hidden_layer_sizes=(8,), batch_size=50, random_state=0, tol=0, max_iter=4)
    clf = DeepMLPClassifier(**{**kw, **params}, callbacks=[rec]).fit(X, y)
    return clf, np.array(rec.rates_), rec.momenta_


def test_constant_keeps_the_learning_rate(clf_data):
    clf, rates, _ = _fit(clf_data, learning_rate_init=0.02)
    assert (rates == 0.02).all() and clf.history_[:, "lr"] == [0.02] * 4


@pytest.mark.parametrize("solver", ["adam", "momentum", "sgd", "rmsprop"])
@pytest.mark.parametrize("activation", ["relu", "prelu"], ids=["cpu-manual", "eager"])
def test_step_schedules_follow_their_formulas_on_every_path(solver, activation, clf_data):
    t = np.arange(16)  # 4 epochs x 4 batches
    kw = dict(solver=solver, activation=activation, dropout=0.1)
    clf, rates, _ = _fit(clf_data, **kw, learning_rate="power",
                         learning_rate_init=0.1, decay_steps=3, power_t=0.7)
    np.testing.assert_allclose(rates, 0.1 / (1 + t / 3) ** 0.7, rtol=1e-6)
    assert clf.engine_ == ("cpu-manual" if activation == "relu" else "eager")  # PReLU: autograd
    _, rates, _ = _fit(clf_data, **kw, learning_rate="exponential",
                       learning_rate_init=0.1, decay_steps=5)
    np.testing.assert_allclose(rates, 0.1 * 0.1 ** (t / 5), rtol=1e-6)


def test_epoch_schedules_follow_their_formulas(clf_data):
    clf, rates, _ = _fit(clf_data, learning_rate="invscaling", learning_rate_init=0.1,
                         power_t=0.5)
    samples = np.arange(4) * 200  # samples seen before each epoch
    np.testing.assert_allclose(clf.history_[:, "lr"], 0.1 / (samples + 1) ** 0.5)
    np.testing.assert_allclose(rates, np.repeat(clf.history_[:, "lr"], 4))
    clf, _, _ = _fit(clf_data, learning_rate="piecewise", lr_milestones=[1, 3],
                     lr_values=[0.1, 0.01, 0.001])
    assert clf.history_[:, "lr"] == [0.1, 0.01, 0.01, 0.001]


def test_invscaling_equals_mlp_classifiers_rule():
    from sklearn.neural_network._stochastic_optimizers import SGDOptimizer

    sk = SGDOptimizer([np.zeros(1)], learning_rate_init=0.1, lr_schedule="invscaling",
                      power_t=0.25)
    X = np.random.default_rng(0).normal(size=(90, 4))
    y = (X[:, 0] > 0).astype(int)
    clf = DeepMLPClassifier((4,), solver="sgd", learning_rate="invscaling",
                            learning_rate_init=0.1, power_t=0.25, max_iter=5, tol=0,
                            random_state=0).fit(X, y)
    expected = [0.1]
    for epoch in range(1, 5):
        sk.iteration_ends(epoch * 90)  # sklearn calls it with t_ after each epoch
        expected.append(sk.learning_rate)
    np.testing.assert_allclose(clf.history_[:, "lr"], expected, rtol=1e-12)


def test_adaptive_divides_by_five_where_sklearn_would_stop(clf_data):
    # The loss never improves by tol=10 after the first epoch (which improves
    # on +inf), so once n_iter_no_change=2 is exceeded (epoch 4, then every 3
    # epochs) the rate is divided by 5, until it is at most 1e-6; then training
    # stops: MLPClassifier's rule, epoch for epoch.
    X, y = clf_data
    clf = DeepMLPClassifier((8,), solver="sgd", learning_rate="adaptive", tol=10.0,
                            n_iter_no_change=2, learning_rate_init=1e-4, max_iter=100,
                            random_state=0).fit(X, y)
    lrs = clf.history_[:, "lr"]
    expected = [1e-4] * 4 + [2e-5] * 3 + [4e-6] * 3 + [8e-7] * 3
    np.testing.assert_allclose(lrs, expected, rtol=1e-9)
    assert clf.n_iter_ == 13


def test_plateau_lowers_the_rate_after_patience(clf_data):
    clf, _, _ = _fit(clf_data, learning_rate="plateau", learning_rate_init=1e-9,
                     lr_factor=0.5, lr_patience=2, max_iter=8, shuffle=False)
    # With a rate of ~0 the loss stalls from the second epoch on.
    lrs = np.array(clf.history_[:, "lr"]) / 1e-9
    assert lrs[0] == 1 and lrs[-1] < 1 and np.all(np.diff(lrs) <= 0)


def test_one_cycle_shape_and_momentum(clf_data):
    clf, rates, momenta = _fit(clf_data, learning_rate="1cycle", solver="momentum",
                               learning_rate_init=0.1, max_iter=10)
    n = len(rates)  # 40 steps
    f = np.arange(n) / n
    expected = np.where(f < 0.45, 0.01 + 0.09 * f / 0.45,
                        np.where(f < 0.9, 0.1 - 0.09 * (f - 0.45) / 0.45,
                                 0.01 - 0.0099 * (f - 0.9) / 0.1))
    np.testing.assert_allclose(rates, expected, rtol=1e-9)
    peak = int(np.argmax(rates))
    assert momenta[0] == pytest.approx(0.95) and min(momenta) == pytest.approx(0.85, abs=0.01)
    assert int(np.argmin(momenta)) == peak  # inverse of the rate


def test_one_cycle_trains_faster_than_a_constant_rate():
    # Digits (600 images, standardized), 64-64 net, momentum SGD, 8 epochs:
    # 1cycle peaking at 0.1 gets below a training loss of 0.006 by epoch 6;
    # no constant rate of 0.003-0.1 gets there in 8 (best: 0.008 at 0.03).
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X, y = StandardScaler().fit_transform(X[:600]), y[:600]
    kw = dict(hidden_layer_sizes=(64, 64), solver="momentum", batch_size=32, tol=0,
              max_iter=8, n_iter_no_change=50, random_state=0)
    target = 0.006

    def epochs_to_target(clf):
        return next((i for i, v in enumerate(clf.loss_curve_) if v < target), 99)

    cycle = DeepMLPClassifier(**kw, learning_rate="1cycle", learning_rate_init=0.1).fit(X, y)
    best_constant = min(
        epochs_to_target(DeepMLPClassifier(**kw, learning_rate_init=lr).fit(X, y))
        for lr in (0.003, 0.01, 0.03, 0.1))
    assert epochs_to_target(cycle) < best_constant, cycle.loss_curve_


@pytest.mark.parametrize("params, match", [
    (dict(learning_rate="piecewise"), "needs lr_milestones"),
    (dict(learning_rate="piecewise", lr_milestones=[3, 2], lr_values=[1, 2, 3]),
     "'lr_milestones' parameter.*increasing"),
    (dict(learning_rate="piecewise", lr_milestones=[2], lr_values=[0.1]), "needs 2 positive"),
    (dict(learning_rate="power", solver="lbfgs"), "no learning rate to schedule"),
    (dict(learning_rate="invscaling", decay_steps=0), "'decay_steps' parameter"),
])
def test_bad_schedule_settings(params, match, clf_data):
    X, y = clf_data
    with pytest.raises(InvalidParameterError, match=match):
        DeepMLPClassifier((8,), **params).fit(X, y)


def test_every_schedule_fits(clf_data):
    X, y = clf_data
    extra = {"piecewise": dict(lr_milestones=[1], lr_values=[0.01, 0.001])}
    for name in SCHEDULES:
        clf = DeepMLPClassifier((8,), learning_rate=name, max_iter=2, random_state=0,
                                **extra.get(name, {})).fit(X, y)
        assert np.isfinite(clf.loss_curve_).all() and len(clf.history_[:, "lr"]) == 2


@pytest.mark.parametrize("how", ["partial_fit", "warm_start"])
def test_plateau_and_adaptive_continue_across_calls(how, clf_data):
    X, y = clf_data

    def run(**params):
        kw = dict(hidden_layer_sizes=(8,), solver="sgd", batch_size=50, random_state=0,
                  shuffle=False, **params)
        whole = DeepMLPClassifier(max_iter=8, **kw).fit(X, y)
        parts = DeepMLPClassifier(max_iter=1, **kw)
        for _ in range(8):
            if how == "partial_fit":
                parts.partial_fit(X, y, classes=[0, 1, 2])
            else:
                parts.set_params(warm_start=True).fit(X, y)
        return whole.history_[:, "lr"], parts.history_[:, "lr"]

    whole, parts = run(learning_rate="plateau", learning_rate_init=3.0, lr_patience=1)
    assert whole == parts and min(whole) < 3.0  # the rate does come down
    if how == "partial_fit":  # (a warm start builds a new optimizer at the initial
        # rate, as in scikit-learn, where the adaptive rate lives in the optimizer)
        whole, parts = run(learning_rate="adaptive", learning_rate_init=1e-3, tol=10.0,
                           n_iter_no_change=1)
        assert min(parts) < 1e-3 and whole == parts


def test_switching_schedules_restores_the_solvers_settings(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((8,), learning_rate="1cycle", max_iter=1, random_state=0)
    clf.partial_fit(X, y, classes=[0, 1, 2]).partial_fit(X, y)
    clf.set_params(learning_rate="constant").partial_fit(X, y)
    group = clf.net_.optimizer_.param_groups[0]
    assert clf.history_[-1]["lr"] == group["lr"] == 1e-3 and group["betas"] == (0.9, 0.999)


def test_schedule_and_lr_scheduler_callback_are_exclusive(clf_data):
    from skorch.callbacks import LRScheduler

    X, y = clf_data
    with pytest.raises(InvalidParameterError, match="both set the rate"):
        DeepMLPClassifier((8,), learning_rate="power",
                          callbacks=[LRScheduler("StepLR", step_size=1)]).fit(X, y)


def test_one_cycle_running_all_its_epochs_is_not_a_convergence_failure(clf_data):
    # 1cycle is a fixed budget of max_iter epochs that ends at a thousandth of the
    # peak rate: reaching max_iter is the schedule's end, not "not converged yet".
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    X, y = clf_data
    kw = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0, tol=0.0,
              n_iter_no_change=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        DeepMLPClassifier(learning_rate="1cycle", **kw).fit(X, y)
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\)"):
        DeepMLPClassifier(learning_rate="constant", **kw).fit(X, y)


@pytest.mark.parametrize("name", ["power", "invscaling"])
def test_a_decay_that_underflows_reaches_zero_instead_of_raising(name, clf_data):
    # Issue 22, item 12: power_t=1e6 raised OverflowError from Python's float power
    # (and a numpy float, as np.logspace grids give, warned of an overflow each epoch).
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        clf, rates, _ = _fit(clf_data, solver="sgd", learning_rate=name, decay_steps=1,
                             power_t=np.float64(1e6))
    assert rates[0] == 0.001 and rates[-1] == 0.0  # (t = 0 and 0 samples seen: no decay)
    assert clf.n_iter_ == 4 and np.isfinite(clf.predict_proba(clf_data[0])).all()
