"""Validation helpers: the ONLY module that imports private scikit-learn names.

Keeping them here means a scikit-learn upgrade that moves a private helper
breaks one file.
"""

from __future__ import annotations

import copy
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import (
    Interval as _Interval,
)
from sklearn.utils._param_validation import (
    InvalidParameterError,
    Options,
    StrOptions,
)
from sklearn.utils.validation import _check_sample_weight

__all__ = [
    "Integral",
    "Interval",
    "InvalidParameterError",
    "Options",
    "Real",
    "StrOptions",
    "check_no_missing_targets",
    "check_sample_weight",
    "check_weight_range",
    "fit_context",
    "invalid_combination",
    "invalid_parameter",
    "is_number",
    "resolve_device",
]

fit_context = _fit_context


def is_number(value, kind=Real):
    """Whether ``value`` is an instance of ``kind`` (``Real``, ``Integral``) and not a bool.

    ``True`` and ``False`` are ``Integral`` (and ``Real``) in Python; no count,
    rate or weight of the estimators is ever a switch.
    """
    return isinstance(value, kind) and not isinstance(value, bool)


class Interval(_Interval):
    """scikit-learn's ``Interval`` constraint without booleans.

    ``True`` and ``False`` are instances of ``numbers.Integral`` (and
    ``Real``), so scikit-learn's constraint takes ``max_iter=True`` as 1 and
    ``mc_dropout=True`` as one Monte Carlo pass. Every count and rate of the
    estimators is a number, never a switch: a bool is refused with the usual
    message (``... must be an int in the range [0, inf). Got True instead.``).
    """

    def is_satisfied_by(self, val):
        """Whether ``val`` is a number (not a bool) of the type, inside the bounds."""
        return not isinstance(val, bool) and super().is_satisfied_by(val)


def fit_seed(random_state):
    """The seed of a fresh fit, and the generator ``kernel_initializer="sklearn"`` draws from.

    The seed is one draw of ``check_random_state(random_state)``, as always.
    The generator is a copy of that ``RandomState`` taken before the draw, so
    that the initial weights are the numbers scikit-learn's MLP would draw
    from the same ``random_state``: ``RandomState(random_state)`` for an int,
    the instance's current state for a ``RandomState`` (which, as for every
    initializer, advances by the one draw of the seed only), NumPy's global
    state for ``None``.

    Parameters
    ----------
    random_state : None, int or numpy.random.RandomState
        The estimator's ``random_state``.

    Returns
    -------
    seed : int
    init_random_state : numpy.random.RandomState
    """
    rs = check_random_state(random_state)
    init_random_state = copy.deepcopy(rs)
    return int(rs.randint(2**31 - 1)), init_random_state


def check_sample_weight(sample_weight, X):
    """Validate sample weights: finite, non-negative, one per sample, float32.

    A ``None`` input gives weights of one, so that weighted and unweighted
    fits run exactly the same arithmetic. Weights are checked in float64
    and must fit float32 training arithmetic: the largest at least float32's
    smallest normal number (else every weight, and the batch sums the loss
    is divided by, underflow) and their sum at most float32's largest.
    """
    if sample_weight is None:
        return _check_sample_weight(None, X, dtype=X.dtype)
    weights = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                   ensure_non_negative=True)
    check_weight_range(weights, "sample_weight")
    return weights.astype(X.dtype)


def _is_missing(value):
    return (value is None or (isinstance(value, float) and value != value)
            or type(value).__name__ in ("NAType", "NaTType"))  # pandas.NA, pandas.NaT


def check_no_missing_targets(y, name="y"):
    """Raise a ``ValueError`` naming the rows where an object ``y`` holds a missing value.

    ``None``, a float NaN and ``pandas.NA`` in an object array, a list or a
    pandas column (any dtype that converts to object) are caught here, before
    scikit-learn's validation, whose messages for them are a sorting
    ``TypeError`` or a float conversion error. Numeric arrays are left to that
    validation ("Input y contains NaN"). ``name`` names the targets in the
    message (``y_val`` for a validation set).
    """
    try:
        array = np.asarray(y)
    except Exception:  # ragged and the like: validate_data says what is wrong
        return
    if array.dtype.kind != "O" or array.ndim == 0:
        return
    mask = np.fromiter((_is_missing(v) for v in array.ravel()), dtype=bool,
                       count=array.size).reshape(array.shape)
    if mask.any():
        rows = np.flatnonzero(mask.reshape(len(array), -1).any(axis=1))
        shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        raise ValueError(
            f"Input {name} contains a missing value (None, NaN or pandas.NA) in {len(rows)} "
            f"row(s) ({shown}): every row needs a target. Drop or impute those rows first."
        )


def check_weight_range(weights, name):
    """Raise unless float64 ``weights`` fit float32 training arithmetic.

    The largest must be at least float32's smallest normal number (else every
    weight, and the batch sums the loss is divided by, underflow) and their
    sum at most float32's largest. ``name`` says which weights, for the message.
    """
    f32 = np.finfo(np.float32)
    top, total = (float(weights.max()), float(weights.sum())) if len(weights) else (0.0, 0.0)
    if 0 < top < f32.tiny or not total <= f32.max:
        raise ValueError(
            f"{name} is out of float32's range for training: the largest weight is "
            f"{top:.3g} and their sum {total:.3g} (needed: largest >= {f32.tiny:.3g}, "
            f"sum <= {f32.max:.3g}). Rescale them: the data loss depends only on their "
            "ratios, but the L2 penalty (alpha) is divided by their sum, as in "
            "MLPClassifier, so their scale sets the penalty's weight."
        )


def invalid_parameter(estimator, name, allowed, got):
    """Build an ``InvalidParameterError`` worded like scikit-learn's own.

    Parameters
    ----------
    estimator : object
        The estimator whose parameter is wrong.
    name : str
        Parameter name.
    allowed : str
        What the parameter must be.
    got : object
        The offending value (or a description of it).

    Returns
    -------
    InvalidParameterError
    """
    return InvalidParameterError(
        f"The {name!r} parameter of {type(estimator).__name__} must be {allowed}. "
        f"Got {got!r} instead."
    )


def invalid_combination(estimator, name, got, reason):
    """``InvalidParameterError`` for a value that is valid alone but not here.

    Parameters
    ----------
    estimator : object
        The estimator whose parameter is wrong.
    name : str
        Parameter name.
    got : object
        The offending value.
    reason : str
        A full sentence saying why and what to do instead.

    Returns
    -------
    InvalidParameterError
    """
    return InvalidParameterError(
        f"Invalid value {got!r} for the {name!r} parameter of "
        f"{type(estimator).__name__}: {reason}"
    )


def resolve_device(estimator, device):
    """Turn the ``device`` parameter into a usable ``torch.device``.

    Parameters
    ----------
    estimator : object
        For error messages.
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``.

    Returns
    -------
    torch.device

    Raises
    ------
    InvalidParameterError
        If ``device`` is not one of the accepted forms.
    ValueError
        If CUDA (or the given CUDA index) is not available on this machine.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda") or (dev.type == "cpu" and dev.index):
        raise invalid_parameter(
            estimator, "device", "'auto', 'cpu', 'cuda' or 'cuda:N'", device
        )
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on this "
                "machine (torch.cuda.is_available() is False); use device='auto' "
                "or device='cpu'."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are available."
            )
    return dev
