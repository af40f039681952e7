"""Input scaling for MLPs on tables.

:class:`RobustSmoothClipScaler` is RealMLP-TD's numeric preprocessing (Holzmüller
et al., 2024, "Better by Default: Strong Pre-Tuned MLPs and Boosted Trees on
Tabular Data"), written as a scikit-learn transformer so that it can stand in a
``ColumnTransformer`` in front of :class:`DeepMLPClassifier` or
:class:`DeepMLPRegressor`.
"""

import warnings

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import FLOAT_DTYPES, check_is_fitted, validate_data

from ._validation import Interval, Real, fit_context

__all__ = ["RobustSmoothClipScaler"]

# pytabkit's RobustScaleFactory divides by (spread + 1e-30): it changes nothing unless
# the spread is below ~1e-14 of its own magnitude, and keeps a denormal spread from
# giving an infinite factor. Kept so that the numbers match to the last bit.
_SPREAD_EPS = 1e-30


class RobustSmoothClipScaler(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Center by the median, divide by the interquartile range, then clip smoothly.

    RealMLP-TD's numeric input scaling (Holzmüller et al., 2024). Each column
    ``x`` becomes

    .. math::

        z = \\frac{x - \\mathrm{median}(x)}{s}, \\qquad
        \\mathrm{output} = \\frac{z}{\\sqrt{1 + (z / c)^2}}

    with ``c = max_abs_value`` (3 by default). The spread ``s`` is the
    interquartile range ``q75 - q25``; where that is 0 (a column that is mostly
    one value) it is half the range, ``(max - min) / 2``; where that is 0 too (a
    constant column) the column maps to 0. These are the formulas and constants
    of ``pytabkit``'s RealMLP-TD (its ``median_center``, ``robust_scale`` and
    ``smooth_clip`` transforms), quantiles interpolated linearly as
    ``numpy.quantile`` does.

    The median and quartiles ignore outliers, and the smooth clip keeps them from
    reaching the network as huge inputs while keeping their order: the output is
    strictly increasing in ``x`` within a column (for a non-constant column),
    about ``z`` for ``|z|`` well below ``c``, and inside ``(-c, c)``; in floating
    point, values more than about ``1e8 * c`` spreads out (``3e3 * c`` in
    float32) round to ``-c`` or ``c``.

    Missing values (NaN) are ignored when fitting and kept as NaN by
    ``transform``, as in :class:`~sklearn.preprocessing.StandardScaler`; a column
    that is all NaN at fit time gets median 0 and spread 0. Sparse input is
    refused: the transform centers every column, which would make a sparse
    matrix dense (a scaling without centering would be a different transform).

    Parameters
    ----------
    max_abs_value : float > 0 or None, default=3.0
        The bound ``c`` of the smooth clip: outputs lie inside
        ``[-max_abs_value, max_abs_value]``, reaching the ends only by
        rounding. 3 is RealMLP-TD's value (``pytabkit``'s
        ``smooth_clip_max_abs_value``). ``None`` skips the clip (median
        centering and robust scaling only).

    copy : bool, default=True
        If False, transform a float numpy array in place where possible.

    Attributes
    ----------
    center_ : ndarray of shape (n_features,)
        The median of each column (NaN ignored; 0 for an all-NaN column).

    scale_ : ndarray of shape (n_features,)
        The spread ``s`` each centered column is divided by: the interquartile
        range, or half the range where the interquartile range is 0, or 0 for a
        constant (or all-NaN) column, which the transform maps to 0.

    n_features_in_ : int
        Number of features seen during ``fit``.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    sklearn.preprocessing.RobustScaler : The same centering and scaling with a
        configurable quantile range, no fallback for a zero range and no clip.
    sklearn.preprocessing.QuantileTransformer : Maps each column to a uniform
        or normal distribution through its empirical quantiles.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_deepnet.preprocessing import RobustSmoothClipScaler
    >>> X = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [4.0, 5.0], [100.0, 5.0]])
    >>> scaler = RobustSmoothClipScaler().fit(X)
    >>> scaler.center_, scaler.scale_
    (array([3., 5.]), array([2., 0.]))
    >>> scaler.transform(X).round(3)
    array([[-0.949,  0.   ],
           [-0.493,  0.   ],
           [ 0.   ,  0.   ],
           [ 0.493,  0.   ],
           [ 2.994,  0.   ]])
    """

    _parameter_constraints = {
        "max_abs_value": [Interval(Real, 0, None, closed="neither"), None],
        "copy": ["boolean"],
    }

    def __init__(self, *, max_abs_value=3.0, copy=True):
        self.max_abs_value = max_abs_value
        self.copy = copy

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Compute each column's median and spread.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The data; NaN values are ignored.

        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted scaler.
        """
        X = validate_data(self, X, dtype=FLOAT_DTYPES, ensure_all_finite="allow-nan")
        X = X.astype(np.float64, copy=False)
        if np.isnan(X).any():
            with warnings.catch_warnings():  # an all-NaN column is handled below
                warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
                q25, median, q75 = np.nanquantile(X, [0.25, 0.5, 0.75], axis=0)
                half_range = 0.5 * (np.nanmax(X, axis=0) - np.nanmin(X, axis=0))
        else:
            q25, median, q75 = np.quantile(X, [0.25, 0.5, 0.75], axis=0)
            half_range = 0.5 * (X.max(axis=0) - X.min(axis=0))
        spread = q75 - q25
        spread = np.where(spread == 0, half_range, spread)
        all_nan = np.isnan(median)
        self.center_ = np.where(all_nan, 0.0, median)
        self.scale_ = np.where(all_nan, 0.0, spread)
        return self

    def transform(self, X, copy=None):
        """Center, scale and smoothly clip each column.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The data; NaN values stay NaN.

        copy : bool, default=None
            Whether to copy ``X``; ``None`` uses the ``copy`` parameter.

        Returns
        -------
        X_tr : ndarray of shape (n_samples, n_features)
            The transformed data, of the same float dtype as ``X`` (float32
            stays float32; other inputs become float64).
        """
        check_is_fitted(self)
        copy = self.copy if copy is None else copy
        X = validate_data(self, X, reset=False, dtype=FLOAT_DTYPES, copy=copy,
                          ensure_all_finite="allow-nan")
        positive = self.scale_ > 0
        factor = np.where(positive, 1.0 / (self.scale_ + _SPREAD_EPS), 0.0)
        X -= self.center_.astype(X.dtype)
        X *= factor.astype(X.dtype)
        if self.max_abs_value is not None:  # the smooth clip z / sqrt(1 + (z / c)**2)
            c = X.dtype.type(self.max_abs_value)
            X /= np.sqrt(1 + np.square(X) / c**2)
            # Far out (|z| > ~1e8 c in float64, ~3e3 c in float32) the quotient rounds to
            # c, or one unit in the last place past it: keep it within [-c, c].
            np.clip(X, -c, c, out=X)
        return X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

