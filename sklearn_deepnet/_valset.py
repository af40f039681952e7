"""The user's own validation set: ``fit(X, y, *, X_val, y_val, sample_weight_val)``.

scikit-learn's convention (``HistGradientBoostingClassifier.fit`` since 1.7):
the early-stopping validation set may be passed to ``fit`` instead of being
split off the training data (``validation_fraction``). It is validated exactly
like the training data, against what the fit has just learned from ``X`` and
``y`` (features, feature names, classes, target shape), with messages that
name ``X_val``, ``y_val`` or ``sample_weight_val``.
"""

from __future__ import annotations

import inspect

import numpy as np
import scipy.sparse as sp
from sklearn.base import is_regressor
from sklearn.utils.validation import check_array, validate_data

from ._engine.optim import SOLVERS
from ._validation import check_no_missing_targets, check_sample_weight

__all__ = ["check_validation_set"]

def check_validation_set(est, X_val, y_val, sample_weight_val, *, incremental=False):
    """Validate the user's validation set, or say that there is none.

    Call after the training data were validated (``n_features_in_``,
    ``feature_names_in_``, ``classes_`` or the target shape are those of this
    fit), on the fit's working copy of the estimator.

    Parameters
    ----------
    est : BaseDeepMLP
        The estimator being fitted; its ``_prepare_y_val`` turns ``y_val``
        into model targets (and class weights).
    X_val, y_val, sample_weight_val : array-like or None
        As passed to ``fit``.
    incremental : bool, default=False
        Whether the call is ``partial_fit`` (which takes no validation set).

    Returns
    -------
    tuple or None
        ``(X_val, y_model_val, weights_val)``: float32 ``X_val`` (an array or
        a CSR matrix), the model targets and float32 weights (times the class
        weights), as :class:`~._callbacks.ConvergenceMonitor` scores them;
        ``None`` when no validation set was passed.
    """
    # Per-class weights _prepare_y left for this (never a fitted attribute)
    class_weights = vars(est).pop("_class_weight_lookup", None)
    if X_val is None and y_val is None:
        if sample_weight_val is not None:
            raise ValueError("sample_weight_val is provided, but X_val and y_val were not.")
        return None
    if y_val is None:  # scikit-learn's messages (HistGradientBoosting)
        raise ValueError("X_val is provided, but y_val was not provided.")
    if X_val is None:
        raise ValueError("y_val is provided, but X_val was not provided.")
    if incremental:  # (partial_fit has no such parameters; kept for a direct call)
        raise ValueError("partial_fit does not support a validation set (X_val, y_val).")
    if not est.early_stopping:
        raise ValueError(
            "X_val and y_val are passed to fit while early_stopping is False: they are "
            "the validation set of early stopping. Set early_stopping=True to use them, "
            "or do not pass them."
        )
    if not SOLVERS[est.solver].stochastic:
        raise ValueError(
            f"X_val and y_val are passed to fit, but solver={est.solver!r} does not stop "
            "early (early stopping applies to the mini-batch solvers only, as in "
            "scikit-learn's MLP). Use a mini-batch solver, or do not pass them."
        )
    try:  # feature names and count, as predict checks them (on the raw input)
        validate_data(est, X_val, reset=False, skip_check_array=True)
    except ValueError as exc:
        raise ValueError(f"X_val does not match the training data X: {exc}") from exc
    X_val = check_array(X_val, accept_sparse="csr", dtype=np.float32, input_name="X_val")
    check_no_missing_targets(y_val, name="y_val")
    y_val = check_array(y_val, accept_sparse="csr", ensure_2d=False, dtype=None,
                        input_name="y_val")
    if sp.issparse(y_val):  # (a multilabel indicator matrix)
        y_val = y_val.toarray()
    if y_val.dtype.kind == "O" and is_regressor(est):  # as validate_data(y_numeric=True)
        y_val = y_val.astype(np.float64)
    if y_val.shape[0] != X_val.shape[0]:
        raise ValueError(
            f"X_val has {X_val.shape[0]} rows but y_val has {y_val.shape[0]}: they must "
            "have one target per row."
        )
    y_model, class_weight = est._prepare_y_val(y_val, class_weights)
    if sample_weight_val is None:
        weights = check_sample_weight(None, X_val)
    else:
        try:
            weights = check_sample_weight(sample_weight_val, X_val)
        except ValueError as exc:
            raise ValueError(f"sample_weight_val is not valid: {exc}") from exc
    if class_weight is not None:
        weights = weights * class_weight.astype(np.float32)
    n_scored = int(np.count_nonzero(weights))
    if n_scored < 2:  # scikit-learn's rule for the validation split: one row cannot be scored
        raise ValueError(
            f"The validation set is too small: X_val has {X_val.shape[0]} row(s), "
            f"{n_scored} with a non-zero weight; early stopping needs at least 2 to score."
        )
    default = inspect.signature(type(est).__init__).parameters["validation_fraction"].default
    if est.validation_fraction != default:
        est._target_warnings.append((
            f"validation_fraction={est.validation_fraction} is not used: X_val and y_val "
            "are the validation set, and every row of X trains.",
            UserWarning,
        ))
    return X_val, y_model, weights
