"""The light validation of ``predict``'s ``X``: a dense float numpy array.

``validate_data`` costs more than a one-row prediction itself. For the
common serving input — a 2-D float32 or float64 numpy array, from an
estimator fitted without feature names — every check it would make is a
few comparisons: the number of features, no feature names either side, the
dtype (float64 converted to float32, the fitted network's), no NaN or
infinity (after the conversion, as ``check_array`` checks: a float64 too
large for float32 is refused), at least one row. Anything else, and any
input failing a check, goes through ``validate_data``, which raises its usual
errors and warnings.
"""

from __future__ import annotations

import numpy as np

__all__ = ["light_validated_X"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def light_validated_X(estimator, X):
    """``X`` as a float32 array when it passes every check lightly, else ``None``."""
    if (type(X) is not np.ndarray or X.ndim != 2 or X.dtype not in _FLOATS
            or not X.shape[0] or X.shape[1] != vars(estimator).get("n_features_in_")
            or "feature_names_in_" in vars(estimator)):
        return None
    if X.dtype != np.float32:
        with np.errstate(over="ignore"):  # (too large for float32: refused below, quietly)
            X = X.astype(np.float32)
    # A finite sum means every value is finite (a NaN or infinity makes it NaN
    # or infinite; scikit-learn's check starts the same way); only a sum that
    # overflows with finite values needs the element-wise test.
    with np.errstate(over="ignore", invalid="ignore"):
        finite = np.isfinite(np.add.reduce(X, axis=None)) or np.isfinite(X).all()
    return X if finite else None
