"""Learning-rate schedules: the single table behind ``learning_rate``.

Each row builds a skorch callback (or ``None`` for a constant rate) that sets
the optimizer's learning rate before every step or epoch; every training path
reads the rate from the optimizer's ``param_groups`` at every step (the CUDA
graph through a device tensor), so a schedule works on all of them. The rate
in force at the start of each epoch is recorded in the history as ``"lr"``.
``"adaptive"`` is scikit-learn's rule and lives in the stopping rule
(:class:`~._callbacks.ConvergenceMonitor`): it divides the rate by 5 where
training would otherwise stop.

Step counts (``t``) and epoch counts run over the whole history, so a warm
start or ``partial_fit`` continues a decay where it was; ``"1cycle"`` spans
one ``fit`` call (``max_iter`` epochs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from skorch.callbacks import Callback

from ._engine.data import Batches

__all__ = ["SCHEDULES", "EpochSchedule", "PlateauSchedule", "Schedule", "StepSchedule"]


class EpochSchedule(Callback):
    """Sets the learning rate at the start of every epoch (private helper).

    Parameters
    ----------
    rate : callable
        ``rate(t, epoch, samples, fraction)``: the rate for optimizer step
        ``t`` (steps before it, over the whole history), in epoch ``epoch``
        (epochs finished before it), after ``samples`` training samples, at
        ``fraction`` (0 to 1) of this fit call's steps.
    momentum : callable or None
        ``momentum(fraction)``: the momentum (or Adam's ``beta_1``) to set too.
    """

    def __init__(self, rate, momentum=None):
        self.rate = rate
        self.momentum = momentum

    def on_train_begin(self, net, **kwargs):
        """Remember where this fit call starts (1cycle spans one call)."""
        self.call_start_ = sum(row["train_batch_count"] for row in net.history)
        self.call_steps_ = None

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        """Count what came before; set the epoch's rate."""
        done = net.history[:-1]  # the new epoch's row exists already
        self.t_ = sum(row["train_batch_count"] for row in done)
        self.epoch_ = len(done)
        self.samples_ = sum(row["train_samples"] for row in done)
        if self.call_steps_ is None:
            per_epoch = len(Batches(dataset_train, net.batch_size, False, None, net.min_batch))
            self.call_steps_ = max(1, per_epoch * net.max_epochs)
        self._apply(net)  # the trainer records the epoch's starting rate as "lr"

    def _apply(self, net):
        fraction = min(1.0, (self.t_ - self.call_start_) / self.call_steps_)
        lr = self.rate(self.t_, self.epoch_, self.samples_, fraction)
        momentum = None if self.momentum is None else self.momentum(fraction)
        for group in net.optimizer_.param_groups:
            group["lr"] = lr
            if momentum is not None:
                if "betas" in group:
                    group["betas"] = (momentum, group["betas"][1])
                elif group.get("momentum", 0) > 0:
                    group["momentum"] = momentum


class StepSchedule(EpochSchedule):
    """Sets the learning rate before every optimizer step (private helper)."""

    def on_batch_begin(self, net, training=False, **kwargs):
        """Set the rate of this step."""
        self._apply(net)
        self.t_ += 1


class PlateauSchedule(EpochSchedule):
    """Multiplies the rate by ``factor`` after ``patience`` epochs without a lower
    validation loss (training loss without early stopping)."""

    def __init__(self, initial, factor, patience):
        super().__init__(self._current)
        self.initial, self.factor, self.patience = initial, factor, patience

    def _current(self, t, epoch, samples, fraction):
        return self.lr_

    def on_train_begin(self, net, **kwargs):
        """Start from the initial rate, or where the history left it (the rule
        replayed over the epochs so far: warm starts and partial_fit continue)."""
        super().on_train_begin(net, **kwargs)
        self.lr_, self.best_, self.wait_ = self.initial, math.inf, 0
        for row in net.history:
            self._update(row)

    def on_epoch_end(self, net, **kwargs):
        """Count epochs without improvement; reduce the rate after ``patience``."""
        self._update(net.history[-1])

    def _update(self, row):
        loss = row.get("valid_loss", row["train_loss"])
        if loss < self.best_:
            self.best_, self.wait_ = loss, 0
        else:
            self.wait_ += 1
            if self.wait_ >= self.patience:
                self.lr_ *= self.factor
                self.wait_ = 0


def _decayed(lr, base, power):
    """``lr / base ** power`` for ``base >= 1``, as 0.0 where the power overflows a float.

    (Python's float power raises ``OverflowError`` there, e.g. ``power_t=1e6``.)
    """
    try:
        return lr / float(base) ** float(power)  # Python floats: no numpy overflow warning
    except OverflowError:
        return 0.0


def _one_cycle_rate(peak):
    def rate(t, epoch, samples, f):
        if f < 0.45:
            return peak / 10 + (peak - peak / 10) * f / 0.45
        if f < 0.9:
            return peak - (peak - peak / 10) * (f - 0.45) / 0.45
        return peak / 10 - (peak / 10 - peak / 1000) * (f - 0.9) / 0.1

    return rate


def _one_cycle_momentum(f):
    if f < 0.45:
        return 0.95 - 0.10 * f / 0.45
    if f < 0.9:
        return 0.85 + 0.10 * (f - 0.45) / 0.45
    return 0.95


def _piecewise(est):
    milestones, values = list(est.lr_milestones), list(est.lr_values)
    return EpochSchedule(
        lambda t, epoch, samples, f: values[sum(epoch >= m for m in milestones)])


@dataclass(frozen=True)
class Schedule:
    """One row of the schedule table.

    Parameters
    ----------
    factory : callable or None
        ``factory(estimator)`` returns the callback that applies the
        schedule, or ``None`` (no callback: a constant rate, or a rule of the
        stopping logic).
    params : tuple of str
        Hyperparameters the schedule reads besides ``learning_rate_init``.
    summary : str
        One-line description for the documentation.
    overrides : tuple of (str, callable)
        Solver hyperparameters the schedule sets itself, each with a test of
        the value: ``True`` where the schedule replaces that value (so it has
        no effect).
    """

    factory: Callable | None = None
    params: tuple = ()
    summary: str = ""
    overrides: tuple = ()


SCHEDULES: dict[str, Schedule] = {
    "constant": Schedule(summary="learning_rate_init throughout training"),
    "invscaling": Schedule(
        lambda est: EpochSchedule(
            lambda t, epoch, samples, f: _decayed(est.learning_rate_init, samples + 1,
                                                  est.power_t)),
        params=("power_t",),
        summary="as MLPClassifier: learning_rate_init / (samples seen + 1) ** power_t, "
                "updated every epoch",
    ),
    "adaptive": Schedule(
        params=("tol", "n_iter_no_change"),
        summary="as MLPClassifier: constant until the loss (or validation score) stops "
                "improving by tol for n_iter_no_change epochs, then divided by 5 instead of "
                "stopping, until it falls below 1e-6",
    ),
    "power": Schedule(
        lambda est: StepSchedule(
            lambda t, epoch, samples, f: _decayed(est.learning_rate_init,
                                                  1 + t / est.decay_steps, est.power_t)),
        params=("decay_steps", "power_t"),
        summary="learning_rate_init / (1 + t / decay_steps) ** power_t, t counting "
                "optimizer steps",
    ),
    "exponential": Schedule(
        lambda est: StepSchedule(
            lambda t, epoch, samples, f: est.learning_rate_init * 0.1 ** (t / est.decay_steps)),
        params=("decay_steps",),
        summary="learning_rate_init * 0.1 ** (t / decay_steps), t counting optimizer steps",
    ),
    "piecewise": Schedule(
        _piecewise,
        params=("lr_milestones", "lr_values"),
        summary="lr_values[i] from the epoch lr_milestones[i-1] on (lr_values[0] before "
                "the first milestone)",
    ),
    "plateau": Schedule(
        lambda est: PlateauSchedule(est.learning_rate_init, est.lr_factor, est.lr_patience),
        params=("lr_factor", "lr_patience"),
        summary="multiplied by lr_factor after lr_patience epochs without a lower "
                "validation loss (training loss without early_stopping)",
    ),
    "1cycle": Schedule(
        lambda est: StepSchedule(_one_cycle_rate(est.learning_rate_init), _one_cycle_momentum),
        # (momentum is cycled only when it is on: momentum=0 keeps plain SGD)
        overrides=(("momentum", lambda value: value > 0), ("beta_1", lambda value: True)),
        summary="the chapter's 1cycle over each fit call, learning_rate_init as the peak: "
                "up from a tenth over 45% of the steps, down over 45%, then to a "
                "thousandth; momentum (or beta_1) cycled 0.95-0.85-0.95",
    ),
}
