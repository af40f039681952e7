"""Weight initializers: the single table behind ``kernel_initializer``.

Every initializer is a variance-scaling rule (Keras' ``VarianceScaling``): the
weights get variance ``scale / fan`` where ``fan`` is the layer's fan-in,
fan-out or their average. Glorot, He and LeCun are the three rows of the
chapter's Table 11-1; their biases are initialized to zero. The ``"sklearn"``
row (:class:`SklearnUniform`) draws what scikit-learn's ``MLPClassifier`` and
``MLPRegressor`` draw at the start of ``fit``: NumPy's uniform numbers for the
weights *and* biases of every layer, the output layer included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["INITIALIZERS", "SklearnUniform", "VarianceScaling", "resolve_initializer"]

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


@dataclass(frozen=True)
class SklearnUniform:
    """scikit-learn's MLP initialization, number for number.

    ``MLPClassifier`` and ``MLPRegressor`` initialize in ``_initialize`` /
    ``_init_coef``: for each layer in order, input side first, ``coef =
    rs.uniform(-b, b, (fan_in, fan_out))`` then ``intercept = rs.uniform(-b, b,
    fan_out)`` with ``b = sqrt(factor / (fan_in + fan_out))``, ``factor`` 6
    (Glorot uniform) or 2 when the hidden activation is logistic, the output
    layer included, from ``rs = check_random_state(random_state)``. This row
    draws the same numbers from the same kind of generator and stores them as
    float32 (the transposed ``coef`` is a ``Linear`` layer's weight).

    A layer without a bias (``batch_norm="before"``) still draws its
    intercept and discards it, so that every weight matrix keeps scikit-learn's
    numbers; BatchNorm layers keep torch's initialization (scale one, shift
    zero) and draw nothing.

    Parameters
    ----------
    factor : float, default=6.0
        ``b = sqrt(factor / (fan_in + fan_out))`` for every activation but
        logistic: Glorot uniform (variance ``1 / fan_avg``).
    logistic_factor : float, default=2.0
        ``factor`` when the hidden activation is logistic (variance
        ``1 / (3 * fan_avg)``).
    """

    factor: float = 6.0
    logistic_factor: float = 2.0
    mode = "fan_avg"  # not fields: what the docs table shows
    distribution = "uniform"

    def bound(self, fan_in: int, fan_out: int, logistic: bool) -> float:
        """scikit-learn's ``init_bound`` for a layer with the given fans."""
        factor = self.logistic_factor if logistic else self.factor
        return float(np.sqrt(factor / (fan_in + fan_out)))

    @staticmethod
    def generator(random_state):
        """The NumPy generator to draw from.

        ``None`` seeds a ``RandomState`` from torch's global generator (which
        the estimators fork and seed); an int makes ``RandomState(int)``, as
        scikit-learn's ``check_random_state`` does; a ``RandomState`` or
        ``Generator`` is used as it is (and advanced).
        """
        if random_state is None:
            random_state = int(torch.randint(2**31 - 1, ()))
        if isinstance(random_state, np.random.RandomState | np.random.Generator):
            return random_state
        return np.random.RandomState(random_state)

    @torch.no_grad()
    def initialize_network_(self, linears, *, logistic=False, random_state=None):
        """Fill every ``Linear`` of ``linears`` (input side first) in place.

        Parameters
        ----------
        linears : list of torch.nn.Linear
            The network's linear layers in forward order, output layer last.
        logistic : bool, default=False
            Whether the hidden activation is logistic (scikit-learn's
            ``factor=2``).
        random_state : None, int, numpy.random.RandomState or numpy.random.Generator
            Where the numbers come from (see :meth:`generator`).
        """
        rs = self.generator(random_state)
        for linear in linears:
            fan_out, fan_in = linear.weight.shape
            b = self.bound(fan_in, fan_out, logistic)
            coef = rs.uniform(-b, b, (fan_in, fan_out))
            intercept = rs.uniform(-b, b, fan_out)
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(coef.T)))
            if linear.bias is not None:
                linear.bias.copy_(torch.from_numpy(intercept))


_FAMILIES = {
    "glorot": (1.0, "fan_avg"),
    "he": (2.0, "fan_in"),
    "lecun": (1.0, "fan_in"),
}

INITIALIZERS: dict[str, VarianceScaling | SklearnUniform] = {
    **{f"{family}_{dist}": VarianceScaling(scale, mode, dist)
       for family, (scale, mode) in _FAMILIES.items()
       for dist in ("uniform", "normal")},
    "sklearn": SklearnUniform(),
}
"""Named initializers: ``{glorot,he,lecun}_{uniform,normal}`` and ``"sklearn"``.

``*_normal`` is the truncated normal Keras uses; ``"sklearn"`` is
:class:`SklearnUniform` (scikit-learn's MLP draws, biases included).
"""

# "auto": what Table 11-1 recommends for each family; He and LeCun use the
# normal form the chapter shows, Glorot Keras' default uniform form.
_AUTO = {"glorot": "glorot_uniform", "he": "he_normal", "lecun": "lecun_normal"}


def resolve_initializer(kernel_initializer, family: str) -> VarianceScaling | SklearnUniform:
    """Turn the ``kernel_initializer`` parameter into a row of :data:`INITIALIZERS`.

    Parameters
    ----------
    kernel_initializer : str, VarianceScaling or SklearnUniform
        ``"auto"``, a key of :data:`INITIALIZERS`, or an initializer object.
    family : {"glorot", "he", "lecun"}
        Family recommended for the layer's activation; used by ``"auto"``.

    Returns
    -------
    VarianceScaling or SklearnUniform
    """
    if isinstance(kernel_initializer, VarianceScaling | SklearnUniform):
        return kernel_initializer
    if kernel_initializer == "auto":
        return INITIALIZERS[_AUTO[family]]
    return INITIALIZERS[kernel_initializer]
