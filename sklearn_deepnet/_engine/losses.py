"""Per-sample losses computed from the network's raw outputs (logits).

Every loss returns one value per sample; the training steps turn them into the
sample-weighted mean ``sum(w * l) / sum(w)`` that scikit-learn's MLP uses.
Losses are module-level functions (or ``functools.partial`` of them) so that
fitted estimators pickle; :class:`PerSampleLoss` wraps one as the skorch net's
criterion module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "REGRESSION_LOSSES", "LabelSmoothed", "PerSampleLoss", "RegressionLoss",
    "classification_loss", "loss_function", "smoothed_targets",
]


def multiclass_log_loss(logits, y):
    """Cross-entropy of integer labels ``y`` against ``logits`` (n, K)."""
    return F.cross_entropy(logits, y, reduction="none")


def binary_log_loss(logits, y):
    """Binary cross-entropy summed over outputs (sklearn's multilabel convention)."""
    return F.binary_cross_entropy_with_logits(logits, y, reduction="none").sum(dim=1)


def squared_error(out, y):
    """Half squared error averaged over outputs, as in ``MLPRegressor``."""
    return 0.5 * (out - y).pow(2).mean(dim=1)


def absolute_error(out, y):
    """Absolute error averaged over outputs."""
    return (out - y).abs().mean(dim=1)


def huber(out, y, delta=1.0):
    """Huber loss averaged over outputs: quadratic within ``delta``, linear beyond."""
    return F.huber_loss(out, y, reduction="none", delta=delta).mean(dim=1)


def poisson(out, y):
    """Poisson deviance up to a constant; ``out`` is the log of the mean."""
    return (torch.exp(out) - y * out).mean(dim=1)


def _identity(x):
    return x


@dataclass(frozen=True)
class RegressionLoss:
    """One row of the regression loss table.

    Parameters
    ----------
    factory : callable
        ``factory(huber_delta)`` returns the per-sample loss function.
    inverse_link : callable
        Maps raw network outputs (a numpy array) to predictions.
    requires_non_negative_y : bool
        Whether ``y`` must be ``>= 0`` (Poisson).
    out_activation : str
        Name of ``inverse_link`` (the fitted ``out_activation_``).
    summary : str
        One-line description for the documentation.
    """

    factory: Callable
    inverse_link: Callable = _identity
    requires_non_negative_y: bool = False
    out_activation: str = "identity"
    summary: str = ""


REGRESSION_LOSSES: dict[str, RegressionLoss] = {
    "squared_error": RegressionLoss(
        lambda delta: squared_error, summary="0.5 * (y - f(x))**2, like MLPRegressor"
    ),
    "absolute_error": RegressionLoss(
        lambda delta: absolute_error, summary="``|y - f(x)|``; robust, predicts the median"
    ),
    "huber": RegressionLoss(
        lambda delta: partial(huber, delta=delta),
        summary="quadratic within huber_delta, linear beyond; robust to outliers",
    ),
    "poisson": RegressionLoss(
        lambda delta: poisson,
        inverse_link=np.exp,
        requires_non_negative_y=True,
        out_activation="exp",
        summary="Poisson deviance with log link, for counts and rates (y >= 0)",
    ),
}


# out_activation_ name -> inverse link, from the table
OUT_ACTIVATIONS = {row.out_activation: row.inverse_link for row in REGRESSION_LOSSES.values()}


def smoothed_targets(y, epsilon):
    """Binary (or multilabel) 0/1 targets moved ``epsilon / 2`` towards 1/2."""
    return y * (1.0 - epsilon) + 0.5 * epsilon


@dataclass(frozen=True)
class LabelSmoothed:
    """A log-loss against smoothed targets (label smoothing).

    Multiclass: the target distribution ``(1 - epsilon) * one_hot + epsilon / K``
    (torch's ``cross_entropy(..., label_smoothing=epsilon)``); binary and
    multilabel: each 0/1 target moved to ``epsilon / 2`` and ``1 - epsilon / 2``
    (Keras's ``binary_crossentropy(label_smoothing=epsilon)``), which is the
    same distribution for a two-class softmax.

    Parameters
    ----------
    base : callable
        :func:`multiclass_log_loss` or :func:`binary_log_loss`.
    epsilon : float
        In (0, 1).
    """

    base: Callable
    epsilon: float

    def __call__(self, logits, y):
        if self.base is multiclass_log_loss:
            return F.cross_entropy(logits, y, reduction="none", label_smoothing=self.epsilon)
        return self.base(logits, smoothed_targets(y, self.epsilon))


def classification_loss(target_type: str, label_smoothing=0.0):
    """Per-sample loss for ``"binary"``, ``"multiclass"`` or ``"multilabel"``
    (a :class:`LabelSmoothed` one for ``label_smoothing > 0``)."""
    base = multiclass_log_loss if target_type == "multiclass" else binary_log_loss
    return LabelSmoothed(base, float(label_smoothing)) if label_smoothing else base


class PerSampleLoss(nn.Module):
    """A per-sample loss function as a (parameter-free) torch module.

    The skorch net's criterion: being a module, it is saved and loaded by
    ``net_.save_params`` / ``Checkpoint`` like any skorch criterion.

    Parameters
    ----------
    fn : callable
        ``fn(outputs, y)`` returns a tensor of shape ``(n,)``.
    class_indices : bool, default=False
        Whether ``y`` holds int64 class indices (multiclass log-loss) rather
        than float targets of shape ``(n, n_outputs)``.
    """

    def __init__(self, fn, class_indices=False):
        super().__init__()
        self.fn = fn
        self.class_indices = class_indices

    def forward(self, out, y):
        """Return the loss of every sample, shape ``(n,)``."""
        return self.fn(out, y)


def loss_function(loss):
    """The plain per-sample function behind ``loss`` (a :class:`PerSampleLoss` or a function)."""
    return loss.fn if isinstance(loss, PerSampleLoss) else loss
