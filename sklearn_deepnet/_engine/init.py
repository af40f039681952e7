"""Weight initializers: the single table behind ``kernel_initializer``.

Every initializer is a variance-scaling rule (Keras' ``VarianceScaling``): the
weights get variance ``scale / fan`` where ``fan`` is the layer's fan-in,
fan-out or their average. Glorot, He and LeCun are the three rows of the
chapter's Table 11-1. Biases are always initialized to zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["INITIALIZERS", "VarianceScaling", "resolve_initializer"]

_MODES = ("fan_in", "fan_out", "fan_avg")
_DISTRIBUTIONS = ("uniform", "normal", "untruncated_normal")
# Standard deviation of a standard normal truncated to [-2, 2]; Keras divides by
# it so that the truncated distribution keeps the requested variance.
_TRUNC_STD = 0.87962566103423978


@dataclass(frozen=True)
class VarianceScaling:
    """General variance-scaling weight initializer.

    Weights are drawn with variance ``scale / n`` where ``n`` is chosen by
    ``mode``; this is the form behind Glorot, He and LeCun initialization.

    Parameters
    ----------
    scale : float, default=1.0
        Variance numerator (2.0 for He, 1.0 for Glorot and LeCun).
    mode : {"fan_in", "fan_out", "fan_avg"}, default="fan_in"
        Which fan divides ``scale``: inputs, outputs, or their mean.
    distribution : {"uniform", "normal", "untruncated_normal"}, default="normal"
        ``"uniform"`` draws from ``[-r, r]`` with ``r = sqrt(3 * scale / n)``;
        ``"normal"`` is a normal truncated at two standard deviations and
        rescaled to keep the variance (as Keras does); ``"untruncated_normal"``
        is a plain normal.

    Examples
    --------
    He initialization computed from the average fan, as in the chapter:

    >>> from sklearn_deepnet import DeepMLPClassifier, VarianceScaling
    >>> init = VarianceScaling(scale=2.0, mode="fan_avg", distribution="uniform")
    >>> clf = DeepMLPClassifier(activation="logistic", kernel_initializer=init)
    """

    scale: float = 1.0
    mode: str = "fan_in"
    distribution: str = "normal"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        if not isinstance(self.scale, (int, float)) or not self.scale > 0:
            raise ValueError(f"VarianceScaling.scale must be a float > 0; got {self.scale!r}")
        if self.mode not in _MODES:
            raise ValueError(f"VarianceScaling.mode must be one of {_MODES}; got {self.mode!r}")
        if self.distribution not in _DISTRIBUTIONS:
            raise ValueError(
                f"VarianceScaling.distribution must be one of {_DISTRIBUTIONS}; "
                f"got {self.distribution!r}"
            )

    def variance(self, fan_in: int, fan_out: int) -> float:
        """Target weight variance for a layer with the given fans."""
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}
        return self.scale / max(1.0, fan[self.mode])

    @torch.no_grad()
    def initialize_(self, weight: torch.Tensor) -> torch.Tensor:
        """Fill a ``(fan_out, fan_in)`` weight matrix in place.

        Draws from torch's global generator, which the estimators fork and
        seed from ``random_state`` so the caller's RNG is never touched.
        """
        fan_out, fan_in = weight.shape
        var = self.variance(fan_in, fan_out)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * var)
            return weight.uniform_(-limit, limit)
        if self.distribution == "normal":
            std = math.sqrt(var) / _TRUNC_STD
            return torch.nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)
        return weight.normal_(0.0, math.sqrt(var))


_FAMILIES = {
    "glorot": (1.0, "fan_avg"),
    "he": (2.0, "fan_in"),
    "lecun": (1.0, "fan_in"),
}

INITIALIZERS: dict[str, VarianceScaling] = {
    f"{family}_{dist}": VarianceScaling(scale, mode, dist)
    for family, (scale, mode) in _FAMILIES.items()
    for dist in ("uniform", "normal")
}
"""Named initializers: ``{glorot,he,lecun}_{uniform,normal}``.

``*_normal`` is the truncated normal Keras uses.
"""

# "auto": what Table 11-1 recommends for each family; He and LeCun use the
# normal form the chapter shows, Glorot Keras' default uniform form.
_AUTO = {"glorot": "glorot_uniform", "he": "he_normal", "lecun": "lecun_normal"}


def resolve_initializer(kernel_initializer, family: str) -> VarianceScaling:
    """Turn the ``kernel_initializer`` parameter into a :class:`VarianceScaling`.

    Parameters
    ----------
    kernel_initializer : str or VarianceScaling
        ``"auto"``, a key of :data:`INITIALIZERS`, or a ``VarianceScaling``.
    family : {"glorot", "he", "lecun"}
        Family recommended for the layer's activation; used by ``"auto"``.

    Returns
    -------
    VarianceScaling
    """
    if isinstance(kernel_initializer, VarianceScaling):
        return kernel_initializer
    if kernel_initializer == "auto":
        return INITIALIZERS[_AUTO[family]]
    return INITIALIZERS[kernel_initializer]
