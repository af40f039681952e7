"""The learning-rate finder of chapter 11: train briefly with a growing rate, watch the loss.

:func:`find_learning_rate` trains a *clone* of the estimator (the estimator
itself is never touched) for up to ``n_steps`` optimizer steps while the
learning rate grows exponentially from ``min_lr`` to ``max_lr``, records the
training loss of every step, and stops once the loss has clearly blown up.
The chapter's advice for picking the rate: about ten times lower than where
the loss starts to climb, which is what ``suggested_learning_rate`` gives.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral

import numpy as np
from sklearn.base import clone
from skorch.callbacks import Callback

from ._engine.optim import SOLVERS
from ._validation import is_number

__all__ = ["LearningRateFinder", "find_learning_rate"]


class _GrowRate(Callback):
    """Sets rate ``k`` before step ``k``; records the step's loss; stops when done.

    The blow-up test compares the *smoothed* loss (as :func:`_smooth`) with its
    lowest value: one noisy mini-batch among small losses is not a blow-up.
    """

    def __init__(self, rates, blowup, beta=0.9):
        self.rates = rates
        self.blowup = blowup
        self.beta = beta

    def on_train_begin(self, net, **kwargs):
        self.step_, self.losses_, self.best_, self.average_ = 0, [], math.inf, 0.0

    def on_batch_begin(self, net, **kwargs):
        for group in net.optimizer_.param_groups:
            group["lr"] = float(self.rates[self.step_])

    def on_batch_end(self, net, loss=None, **kwargs):
        value = float(loss)
        self.losses_.append(value)
        self.step_ += 1
        smoothed = math.inf
        if math.isfinite(value):
            self.average_ = self.beta * self.average_ + (1 - self.beta) * value
            smoothed = self.average_ / (1 - self.beta ** self.step_)
            self.best_ = min(self.best_, smoothed)
        if (self.step_ >= len(self.rates) or not math.isfinite(value)
                or smoothed > self.blowup * self.best_):
            raise KeyboardInterrupt  # a callback's stop (see docs/callbacks.md)


class LearningRateFinder:
    """What :func:`find_learning_rate` found.

    Attributes
    ----------
    learning_rates : ndarray
        The rate of every step that was run.
    losses : ndarray
        The training loss (mini-batch, with penalty) of every step.
    suggested_learning_rate : float
        A tenth of the rate at which the smoothed loss was lowest (the
        chapter's rule of thumb: well below where the loss starts to climb).
    """

    def __init__(self, learning_rates, losses):
        self.learning_rates = np.asarray(learning_rates, dtype=np.float64)
        self.losses = np.asarray(losses, dtype=np.float64)
        smooth = _smooth(self.losses)
        finite = np.isfinite(smooth)
        if not finite.any():
            raise ValueError("The loss was not finite at any step; lower min_lr.")
        best = int(np.nanargmin(np.where(finite, smooth, np.nan)))
        self.suggested_learning_rate = float(self.learning_rates[best] / 10)

    def plot(self, ax=None):
        """Plot loss against learning rate (log scale) and mark the suggestion.

        Parameters
        ----------
        ax : matplotlib Axes or None, default=None
            Where to draw; a new figure when ``None``. Needs matplotlib.

        Returns
        -------
        ax : matplotlib Axes
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        ax.plot(self.learning_rates, self.losses, alpha=0.4, label="loss per step")
        ax.plot(self.learning_rates, _smooth(self.losses), label="smoothed")
        ax.axvline(self.suggested_learning_rate, color="k", linestyle="--",
                   label=f"suggested {self.suggested_learning_rate:.2g}")
        ax.set(xscale="log", xlabel="learning rate", ylabel="training loss",
               title="Learning-rate finder")
        ax.legend()
        return ax


def _smooth(losses, beta=0.9):
    """Bias-corrected exponential moving average (the usual LR-finder smoothing)."""
    out, avg = np.empty(len(losses)), 0.0
    for i, value in enumerate(losses):
        avg = beta * avg + (1 - beta) * value
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def _check_finder_args(min_lr, max_lr, n_steps, blowup):
    """Each argument of :func:`find_learning_rate` is a number in its range, or a ValueError."""
    problems = []
    if not (is_number(min_lr) and 0 < min_lr < math.inf):
        problems.append(f"min_lr must be a finite float > 0, got {min_lr!r}")
    elif not (is_number(max_lr) and min_lr < max_lr < math.inf):
        problems.append(f"max_lr must be a finite float > min_lr={min_lr!r}, got {max_lr!r}")
    if not (is_number(n_steps, Integral) and n_steps >= 2):
        problems.append(f"n_steps must be an int >= 2, got {n_steps!r}")
    if not (is_number(blowup) and 1 < blowup < math.inf):
        problems.append(f"blowup must be a finite float > 1, got {blowup!r}")
    if problems:
        raise ValueError("find_learning_rate: " + "; ".join(problems) + ".")


def find_learning_rate(estimator, X, y, *, min_lr=1e-6, max_lr=10.0, n_steps=300,
                       blowup=4.0):
    """Train a copy of ``estimator`` with an exponentially growing learning rate.

    Parameters
    ----------
    estimator : DeepMLPClassifier or DeepMLPRegressor
        Cloned (its parameters, not its fitted state); it is not modified.
        Needs a mini-batch solver.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
    min_lr, max_lr : float, default=1e-6, 10.0
        The rate of the first and the last step (finite, ``0 < min_lr < max_lr``).
    n_steps : int, default=300
        Optimizer steps at most (epochs are repeated as needed); at least 2.
    blowup : float, default=4.0
        Stop once the smoothed loss (exponential moving average, weight 0.9
        on the past) exceeds this many times its lowest value so far; finite,
        above 1.

    Returns
    -------
    LearningRateFinder
        Rates, losses, the suggested rate and a ``plot`` method.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_deepnet import DeepMLPClassifier, find_learning_rate
    >>> X, y = load_digits(return_X_y=True)
    >>> found = find_learning_rate(DeepMLPClassifier((64,), random_state=0), X / 16, y,
    ...                            n_steps=100)
    >>> 1e-6 < found.suggested_learning_rate < 10
    True
    """
    if not SOLVERS[estimator.solver].stochastic:
        raise ValueError(
            f"find_learning_rate needs a mini-batch solver; solver={estimator.solver!r} "
            "has no learning rate to search."
        )
    _check_finder_args(min_lr, max_lr, n_steps, blowup)
    ratio = max_lr / min_lr
    if math.isfinite(ratio):
        rates = min_lr * ratio ** (np.arange(n_steps) / (n_steps - 1))
    else:  # the ratio overflows a float (1e10 / 1e-300): spaced in log space
        rates = np.exp(np.linspace(math.log(min_lr), math.log(max_lr), n_steps))
        rates[0], rates[-1] = min_lr, max_lr
    n = X.shape[0] if hasattr(X, "shape") else len(X)
    batch = min(200, n) if estimator.batch_size == "auto" else min(estimator.batch_size, n)
    epochs = math.ceil(n_steps / max(1, n // batch)) + 1
    grow = _GrowRate(rates, blowup)
    probe = clone(estimator).set_params(
        learning_rate="constant", max_iter=epochs, early_stopping=False, warm_start=False,
        tol=0.0, n_iter_no_change=epochs + 1, mc_dropout=0,
        callbacks=[("lr_finder", grow)],  # not the user's: no logging of the probe
    )
    with warnings.catch_warnings():  # the probe diverges or stops on purpose
        warnings.simplefilter("ignore")
        probe.fit(X, y)
    losses = grow.losses_
    return LearningRateFinder(rates[: len(losses)], losses)
