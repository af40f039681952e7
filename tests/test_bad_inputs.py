"""Every bad input gets an error that names the problem, and never corrupts a fitted model.

One table: each row is a call that must fail, the exception type, and a regular
expression the message must match. Rows that fail in ``fit``/``partial_fit``
are also run on an already-fitted estimator, whose predictions must not change.
"""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import NotFittedError

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor
from sklearn_deepnet._validation import InvalidParameterError

Xc, yc = make_classification(n_samples=60, n_features=5, n_informative=3, n_classes=3,
                             random_state=0)
Xr, yr = make_regression(n_samples=60, n_features=5, random_state=0)
FAST = dict(hidden_layer_sizes=(8,), max_iter=2, random_state=0)


def _with(X, row, col, value):
    X = np.array(X, dtype=np.float64)
    X[row, col] = value
    return X


def _none_at(y, row):
    y = np.asarray(y).astype(object)
    y[row] = None
    return y


def _pandas_na_at(y, row, dtype="Float64"):
    pd = pytest.importorskip("pandas")
    values = list(np.asarray(y).tolist())
    values[row] = pd.NA
    return pd.Series(values, dtype=dtype)


def _labels_with_none():
    labels = np.array(["a", "b", "c"], dtype=object)[yc]
    labels[7] = None
    return labels


def _obj_X():
    X = Xc.astype(object)
    X[:, 2] = "red"
    return X


class Kw(dict):
    """Keyword arguments of a row's call (as its last ``args`` item)."""


ES = {"early_stopping": True}
Vc = Kw(X_val=Xc[:20], y_val=yc[:20])  # a valid validation set, for the rows to spoil
Vr = Kw(X_val=Xr[:20], y_val=yr[:20])


def _pandas_X(X, columns="abcde"):
    pd = pytest.importorskip("pandas")
    return pd.DataFrame(X, columns=list(columns))


# (id, estimator, method, extra params, args, exception, message regex)
CASES = [
    # ------------------------------------------------------------------ X at fit
    ("nan-in-X", "clf", "fit", {}, (_with(Xc, 3, 1, np.nan), yc), ValueError,
     "Input X contains NaN"),
    ("inf-in-X", "clf", "fit", {}, (_with(Xc, 3, 1, np.inf), yc), ValueError,
     "Input X contains infinity"),
    ("neg-inf-in-X", "reg", "fit", {}, (_with(Xr, 0, 0, -np.inf), yr), ValueError,
     "Input X contains infinity"),
    ("float32-overflow-in-X", "clf", "fit", {}, (_with(Xc, 0, 0, 1e300), yc), ValueError,
     "infinity or a value too large"),
    ("empty-X", "clf", "fit", {}, (np.empty((0, 5)), []), ValueError,
     r"0 sample\(s\)"),
    ("no-features", "clf", "fit", {}, (np.empty((60, 0)), yc), ValueError,
     r"0 feature\(s\)"),
    ("one-sample", "clf", "fit", {}, (Xc[:1], yc[:1]), ValueError,
     "needs samples of at least 2 classes.*only one class"),
    ("3d-X", "clf", "fit", {}, (Xc.reshape(60, 5, 1), yc), ValueError,
     "Found array with dim 3"),
    ("1d-X", "clf", "fit", {}, (Xc[:, 0], yc), ValueError, "Expected 2D array, got 1D"),
    ("ragged-X", "clf", "fit", {}, ([[1.0, 2.0], [3.0]] * 30, yc), ValueError,
     "inhomogeneous shape"),
    ("string-column", "clf", "fit", {}, (_obj_X(), yc), ValueError,
     "could not convert string to float"),
    ("complex-X", "clf", "fit", {}, (Xc + 1j, yc), ValueError, "Complex data not supported"),
    ("sparse-X-with-nan", "clf", "fit", {}, (sp.csr_matrix(_with(Xc, 0, 0, np.nan)), yc),
     ValueError, "Input X contains NaN"),
    ("sparse-X-wrong-width", "clf", "partial_fit", {}, (sp.csr_matrix(Xc[:, :4]), yc),
     ValueError, "X has 4 features, but .* is expecting 5 features"),
    ("X-y-length-mismatch", "clf", "fit", {}, (Xc, yc[:-1]), ValueError,
     "inconsistent numbers of samples"),
    # ------------------------------------------------------------------ y at fit
    ("nan-in-y-classifier", "clf", "fit", {}, (Xc, np.r_[np.nan, yc[1:]]), ValueError,
     "Input y contains NaN"),
    ("nan-in-y-regressor", "reg", "fit", {}, (Xr, np.r_[np.nan, yr[1:]]), ValueError,
     "Input y contains NaN"),
    ("inf-in-y-regressor", "reg", "fit", {}, (Xr, np.r_[np.inf, yr[1:]]), ValueError,
     "Input y contains infinity"),
    ("one-class", "clf", "fit", {}, (Xc, np.zeros(60)), ValueError,
     "needs samples of at least 2 classes.*only one class: 0"),
    ("continuous-y-classifier", "clf", "fit", {}, (Xc, yr), ValueError,
     "Unknown label type.*continuous"),
    ("3d-y", "clf", "fit", {}, (Xc, np.zeros((60, 2, 2))), ValueError,
     "Found array with dim 3"),
    ("string-y-regressor", "reg", "fit", {}, (Xr, np.array(["a"] * 60)), ValueError,
     "could not convert string to float"),
    ("negative-y-poisson", "reg", "fit", {"loss": "poisson"}, (Xr, yr), ValueError,
     "loss='poisson' requires non-negative y"),
    ("y-none", "clf", "fit", {}, (Xc, None), ValueError, "requires y to be passed"),
    # Issue 22, items 1-2: these returned an untrained model with a "diverged"
    # warning (and threw away the fitted one) instead of raising.
    ("none-in-object-y-regressor", "reg", "fit", {}, (Xr, _none_at(yr, 0)), ValueError,
     r"Input y contains a missing value \(None, NaN or pandas.NA\) in 1 row\(s\) \(0\)"),
    ("none-in-list-y-regressor", "reg", "fit", {}, (Xr, list(_none_at(yr, 5))), ValueError,
     r"missing value \(None, NaN or pandas.NA\)"),
    ("none-in-2d-object-y-regressor", "reg", "fit", {},
     (Xr, np.c_[_none_at(yr, 3), yr.astype(object)]), ValueError,
     r"missing value \(None, NaN or pandas.NA\) in 1 row\(s\) \(3\)"),
    ("none-in-y-partial-fit", "reg", "partial_fit", {}, (Xr, _none_at(yr, 0)), ValueError,
     r"missing value \(None, NaN or pandas.NA\)"),
    ("float32-overflow-in-y", "reg", "fit", {}, (Xr, np.r_[1e300, yr[1:]]), ValueError,
     r"y contains a value too large for float32 \(\|y\| up to 1e\+300"),
    ("squared-loss-overflow-in-y", "reg", "fit", {}, (Xr, np.r_[1e20, yr[1:]]), ValueError,
     r"y is too large for loss='squared_error' in float32.*TransformedTargetRegressor"),
    ("loss-overflow-in-y-lbfgs", "reg", "fit", {"solver": "lbfgs"}, (Xr, yr * 1e31),
     ValueError, "y is too large for loss='squared_error'"),
    ("loss-overflow-in-y-partial-fit", "reg", "partial_fit", {}, (Xr, yr * 1e19),
     ValueError, "y is too large for loss='squared_error'"),
    ("pandas-na-in-float-y-regressor", "reg", "fit", {}, (Xr, _pandas_na_at(yr, 4)),
     ValueError, "Input y contains NaN"),
    ("pandas-na-in-object-y-regressor", "reg", "fit", {},
     (Xr, _pandas_na_at(yr, 4, object)), ValueError,
     r"missing value \(None, NaN or pandas.NA\) in 1 row\(s\) \(4\)"),
    ("none-in-string-labels", "clf", "fit", {}, (Xc, _labels_with_none()), ValueError,
     r"missing value \(None, NaN or pandas.NA\) in 1 row\(s\) \(7\)"),
    ("pandas-na-in-labels-partial-fit", "clf", "partial_fit", {},
     (Xc, _pandas_na_at(yc, 1, "Int64")), ValueError, "Input y contains NaN"),
    ("pandas-na-in-object-labels-partial-fit", "clf", "partial_fit", {},
     (Xc, _pandas_na_at(yc, 1, object)), ValueError, r"missing value .* \(1\)"),
    # ------------------------------------------------------------- sample weights
    ("sample-weight-length", "clf", "fit", {}, (Xc, yc, np.ones(59)), ValueError,
     r"sample_weight.shape == \(59,\), expected \(60,\)"),
    ("negative-sample-weight", "clf", "fit", {}, (Xc, yc, -np.ones(60)), ValueError,
     "Negative values in data passed to .?sample_weight"),
    ("nan-sample-weight", "clf", "fit", {}, (Xc, yc, np.r_[np.nan, np.ones(59)]), ValueError,
     "Input sample_weight contains NaN"),
    ("zero-sample-weights", "clf", "fit", {}, (Xc, yc, np.zeros(60)), ValueError,
     "at least one non-zero|All sample weights are zero"),
    ("2d-sample-weight", "clf", "fit", {}, (Xc, yc, np.ones((60, 2))), ValueError,
     "Sample weights must be 1D"),
    ("sample-weights-below-float32", "clf", "fit", {}, (Xc, yc, np.full(60, 1e-45)),
     ValueError, r"sample_weight is out of float32's range.*largest weight is 1e-45"),
    ("class-weights-beyond-float32", "clf", "fit", {"class_weight": {0: 1e39}}, (Xc, yc),
     ValueError, r"sample_weight times class_weight is out of float32's range"),
    ("class-weights-below-float32", "clf", "fit",
     {"class_weight": {0: 1e-40, 1: 1e-40, 2: 1e-40}}, (Xc, yc), ValueError,
     r"sample_weight times class_weight is out of float32's range"),
    ("sample-weights-sum-above-float32", "reg", "fit", {}, (Xr, yr, np.full(60, 1e37)),
     ValueError, r"sample_weight is out of float32's range.*sum 6e\+38"),
    # ----------------------------------------------------------------- partial_fit
    ("partial-fit-unknown-label", "clf", "partial_fit", {}, (Xc, np.r_[7, yc[1:]]),
     ValueError, r"y contains labels not in classes_ \[0, 1, 2\]: \[7\]"),
    ("partial-fit-other-n-features", "clf", "partial_fit", {}, (Xc[:, :4], yc), ValueError,
     "X has 4 features, but .* is expecting 5 features"),
    ("partial-fit-output-width", "reg", "partial_fit", {}, (Xr, np.c_[yr, yr]), ValueError,
     r"y has shape \(60, 2\) but the network was fitted on targets with 1 output"),
    # ----------------------------------------------------------- hyperparameters
    ("hidden-layer-zero", "clf", "fit", {"hidden_layer_sizes": (8, 0)}, (Xc, yc),
     InvalidParameterError, "'hidden_layer_sizes' parameter"),
    ("activation-unknown", "clf", "fit", {"activation": "sigmoidal"}, (Xc, yc),
     InvalidParameterError, "'activation' parameter.*relu"),
    ("activation-alpha-wrong", "clf", "fit", {"activation": "relu", "activation_alpha": 0.3},
     (Xc, yc), InvalidParameterError,
     "'activation_alpha' parameter.*has no parameter"),
    ("initializer-unknown", "clf", "fit", {"kernel_initializer": "xavier"}, (Xc, yc),
     InvalidParameterError, "'kernel_initializer' parameter"),
    ("batch-norm-position", "clf", "fit", {"batch_norm": "middle"}, (Xc, yc),
     InvalidParameterError, "'batch_norm' parameter"),
    ("dropout-one", "clf", "fit", {"dropout": 1.0}, (Xc, yc), InvalidParameterError,
     "'dropout' parameter"),
    # numeric embeddings and ensembles (issue 26)
    ("numeric-embedding-unknown", "clf", "fit", {"numeric_embedding": "fourier"}, (Xc, yc),
     InvalidParameterError, "'numeric_embedding' parameter"),
    ("numeric-features-bad-string", "clf", "fit",
     {"numeric_embedding": "periodic", "numeric_features": "all"}, (Xc, yc),
     InvalidParameterError, "'numeric_features' parameter"),
    ("numeric-features-out-of-range", "clf", "fit",
     {"numeric_embedding": "periodic", "numeric_features": [99]}, (Xc, yc), ValueError,
     "out of range"),
    ("embedding-size-zero", "clf", "fit", {"numeric_embedding": "periodic", "embedding_size": 0},
     (Xc, yc), InvalidParameterError, "'embedding_size' parameter"),
    ("n-frequencies-zero", "clf", "fit", {"numeric_embedding": "periodic", "n_frequencies": 0},
     (Xc, yc), InvalidParameterError, "'n_frequencies' parameter"),
    ("frequency-scale-zero", "reg", "fit",
     {"numeric_embedding": "periodic", "frequency_scale": 0.0}, (Xr, yr),
     InvalidParameterError, "'frequency_scale' parameter"),
    ("frequency-scale-unknown-string", "clf", "fit",
     {"numeric_embedding": "periodic", "frequency_scale": "Auto"}, (Xc, yc),
     InvalidParameterError, "'frequency_scale' parameter"),
    ("n-bins-zero", "reg", "fit", {"numeric_embedding": "piecewise_linear", "n_bins": 0},
     (Xr, yr), InvalidParameterError, "'n_bins' parameter"),
    ("n-members-zero", "clf", "fit", {"n_members": 0}, (Xc, yc), InvalidParameterError,
     "'n_members' parameter"),
    ("label-smoothing-one", "clf", "fit", {"label_smoothing": 1.0}, (Xc, yc),
     InvalidParameterError, "'label_smoothing' parameter"),
    ("label-smoothing-negative", "clf", "fit", {"label_smoothing": -0.1}, (Xc, yc),
     InvalidParameterError, "'label_smoothing' parameter"),
    ("ensemble-sharing-unknown", "reg", "fit", {"n_members": 2, "ensemble_sharing": "full"},
     (Xr, yr), InvalidParameterError, "'ensemble_sharing' parameter"),
    ("max-norm-zero", "clf", "fit", {"max_norm": 0.0}, (Xc, yc), InvalidParameterError,
     "'max_norm' parameter"),
    ("alpha-negative", "clf", "fit", {"alpha": -1.0}, (Xc, yc), InvalidParameterError,
     "'alpha' parameter"),
    ("l1-ratio-above-one", "clf", "fit", {"l1_ratio": 1.5}, (Xc, yc), InvalidParameterError,
     "'l1_ratio' parameter"),
    ("weight-decay-with-sgd", "clf", "fit", {"solver": "sgd", "weight_decay": 0.1}, (Xc, yc),
     InvalidParameterError, "weight_decay.*decoupled"),
    ("clip-norm-zero", "clf", "fit", {"clip_norm": 0.0}, (Xc, yc), InvalidParameterError,
     "'clip_norm' parameter"),
    ("solver-unknown", "clf", "fit", {"solver": "newton"}, (Xc, yc), InvalidParameterError,
     "'solver' parameter.*adam"),
    ("learning-rate-unknown", "clf", "fit", {"learning_rate": "cosine"}, (Xc, yc),
     InvalidParameterError, "'learning_rate' parameter"),
    ("learning-rate-init-zero", "clf", "fit", {"learning_rate_init": 0.0}, (Xc, yc),
     InvalidParameterError, "'learning_rate_init' parameter"),
    ("momentum-above-one", "clf", "fit", {"momentum": 1.5}, (Xc, yc), InvalidParameterError,
     "'momentum' parameter"),
    ("power-t-negative", "clf", "fit", {"power_t": -0.5}, (Xc, yc), InvalidParameterError,
     "'power_t' parameter"),
    ("decay-steps-zero", "clf", "fit", {"decay_steps": 0}, (Xc, yc), InvalidParameterError,
     "'decay_steps' parameter"),
    ("mc-dropout-negative", "clf", "fit", {"mc_dropout": -2}, (Xc, yc), InvalidParameterError,
     "'mc_dropout' parameter"),
    # Issue 22, item 11: passed validation, then predict raised a TypeError.
    ("mc-dropout-true", "clf", "fit", {"dropout": 0.2, "mc_dropout": True}, (Xc, yc),
     InvalidParameterError, r"'mc_dropout' parameter.*an int.*Got True"),
    ("max-iter-true", "reg", "fit", {"max_iter": True}, (Xr, yr), InvalidParameterError,
     r"'max_iter' parameter.*Got True"),
    ("alpha-true", "reg", "fit", {"alpha": True}, (Xr, yr), InvalidParameterError,
     r"'alpha' parameter.*Got True"),
    ("lr-factor-one", "clf", "fit", {"lr_factor": 1.0}, (Xc, yc), InvalidParameterError,
     "'lr_factor' parameter"),
    ("lr-patience-zero", "clf", "fit", {"lr_patience": 0}, (Xc, yc), InvalidParameterError,
     "'lr_patience' parameter"),
    ("lr-milestones-bool", "clf", "fit",
     {"learning_rate": "piecewise", "lr_milestones": [True], "lr_values": [0.1, 0.01]},
     (Xc, yc), InvalidParameterError, "'lr_milestones' parameter.*increasing positive"),
    ("lr-milestones-decreasing", "clf", "fit",
     {"learning_rate": "piecewise", "lr_milestones": [5, 2], "lr_values": [1, 2, 3]},
     (Xc, yc), InvalidParameterError, "'lr_milestones' parameter.*increasing"),
    ("lr-values-too-few", "clf", "fit",
     {"learning_rate": "piecewise", "lr_milestones": [2], "lr_values": [0.1]},
     (Xc, yc), InvalidParameterError, "lr_values needs 2 positive finite rates"),
    # Issue 22, item 14: accepted while learning_rate_init=inf is rejected.
    ("lr-values-infinite", "clf", "fit",
     {"learning_rate": "piecewise", "lr_milestones": [1], "lr_values": [1e-3, np.inf]},
     (Xc, yc), InvalidParameterError, "lr_values needs 2 positive finite rates"),
    ("max-fun-zero", "clf", "fit", {"max_fun": 0}, (Xc, yc), InvalidParameterError,
     "'max_fun' parameter"),
    ("n-iter-no-change-zero", "clf", "fit", {"n_iter_no_change": 0}, (Xc, yc),
     InvalidParameterError, "'n_iter_no_change' parameter"),
    ("validation-set-of-one", "clf", "fit", {"early_stopping": True}, (Xc[:10], yc[:10]),
     ValueError, "The validation set is too small"),
    ("partial-fit-early-stopping", "clf", "partial_fit", {"early_stopping": True},
     (Xc, yc), ValueError, "partial_fit does not support early_stopping=True"),
    ("batch-size-zero", "clf", "fit", {"batch_size": 0}, (Xc, yc), InvalidParameterError,
     "'batch_size' parameter"),
    ("max-iter-zero", "clf", "fit", {"max_iter": 0}, (Xc, yc), InvalidParameterError,
     "'max_iter' parameter"),
    ("validation-fraction-one", "clf", "fit", {"validation_fraction": 1.0}, (Xc, yc),
     InvalidParameterError, "'validation_fraction' parameter"),
    ("early-stopping-cannot-split", "clf", "fit",
     {"early_stopping": True, "validation_fraction": 0.99}, (Xc, yc), ValueError,
     "cannot split"),
    # ------------------------------------------- the user's validation set (X_val, y_val)
    ("x-val-without-y-val", "clf", "fit", ES, (Xc, yc, Kw(X_val=Xc[:20])), ValueError,
     "X_val is provided, but y_val was not provided"),
    ("y-val-without-x-val", "clf", "fit", ES, (Xc, yc, Kw(y_val=yc[:20])), ValueError,
     "y_val is provided, but X_val was not provided"),
    ("sample-weight-val-alone", "reg", "fit", ES, (Xr, yr, Kw(sample_weight_val=np.ones(20))),
     ValueError, "sample_weight_val is provided, but X_val and y_val were not"),
    ("x-val-without-early-stopping", "clf", "fit", {}, (Xc, yc, Vc), ValueError,
     "early_stopping is False"),
    ("x-val-with-lbfgs", "reg", "fit", {**ES, "solver": "lbfgs"}, (Xr, yr, Vr), ValueError,
     "solver='lbfgs' does not stop early"),
    ("x-val-n-features", "clf", "fit", ES, (Xc, yc, Kw(Vc, X_val=Xc[:20, :4])), ValueError,
     "X_val does not match the training data X: X has 4 features, but .* expecting 5"),
    ("x-val-nan", "clf", "fit", ES, (Xc, yc, Kw(Vc, X_val=_with(Xc[:20], 3, 1, np.nan))),
     ValueError, "Input X_val contains NaN"),
    ("x-val-inf-sparse", "reg", "fit", ES,
     (Xr, yr, Kw(Vr, X_val=sp.csr_matrix(_with(Xr[:20], 0, 0, np.inf)))), ValueError,
     "Input X_val contains infinity"),
    ("x-val-float32-overflow", "reg", "fit", ES, (Xr, yr, Kw(Vr, X_val=_with(Xr[:20], 0, 0,
                                                                              1e300))),
     ValueError, "Input X_val contains infinity or a value too large"),
    ("x-val-feature-names", "clf", "fit", ES,
     (_pandas_X(Xc), yc, Kw(Vc, X_val=_pandas_X(Xc[:20], "abcdf"))), ValueError,
     "X_val does not match the training data X: The feature names should match"),
    ("x-val-y-val-lengths", "clf", "fit", ES, (Xc, yc, Kw(Vc, y_val=yc[:19])), ValueError,
     "X_val has 20 rows but y_val has 19"),
    ("y-val-unknown-label", "clf", "fit", ES, (Xc, yc, Kw(Vc, y_val=np.r_[7, 8, yc[2:20]])),
     ValueError, r"y_val contains labels not in classes_ \[0, 1, 2\].*: \[7, 8\]"),
    ("y-val-string-labels", "clf", "fit", ES, (Xc, yc, Kw(Vc, y_val=np.array(["a"] * 20))),
     ValueError, r"y_val contains labels not in classes_.*\['a'\]"),
    ("y-val-none-label", "clf", "fit", ES, (Xc, yc, Kw(Vc, y_val=_none_at(yc[:20], 4))),
     ValueError, r"Input y_val contains a missing value .* in 1 row\(s\) \(4\)"),
    ("y-val-2d-for-1d-labels", "clf", "fit", ES, (Xc, yc, Kw(Vc, y_val=np.c_[yc, yc][:20])),
     ValueError, r"y_val has shape \(20, 2\), but y holds 1-D labels"),
    ("y-val-nan-regressor", "reg", "fit", ES, (Xr, yr, Kw(Vr, y_val=np.r_[np.nan, yr[1:20]])),
     ValueError, "Input y_val contains NaN"),
    ("y-val-float32-overflow", "reg", "fit", ES, (Xr, yr, Kw(Vr, y_val=np.r_[1e300, yr[1:20]])),
     ValueError, "Input y_val contains a value too large for float32"),
    ("y-val-shape-regressor", "reg", "fit", ES, (Xr, yr, Kw(Vr, y_val=np.c_[yr, yr][:20])),
     ValueError, r"y_val has shape \(20, 2\), but y has 1 target\(s\)"),
    ("y-val-negative-poisson", "reg", "fit", {**ES, "loss": "poisson"},
     (Xr, np.abs(yr), Kw(Vr, y_val=-np.abs(yr[:20]))), ValueError,
     "loss='poisson' requires non-negative y_val"),
    ("sample-weight-val-length", "clf", "fit", ES,
     (Xc, yc, Kw(Vc, sample_weight_val=np.ones(19))), ValueError,
     r"sample_weight_val is not valid: sample_weight.shape == \(19,\), expected \(20,\)"),
    ("sample-weight-val-negative", "reg", "fit", ES,
     (Xr, yr, Kw(Vr, sample_weight_val=-np.ones(20))), ValueError,
     "sample_weight_val is not valid: Negative values"),
    ("sample-weight-val-all-zero", "clf", "fit", ES,
     (Xc, yc, Kw(Vc, sample_weight_val=np.zeros(20))), ValueError,
     "sample_weight_val is not valid: Sample weights must contain at least one non-zero"),
    ("sample-weight-val-one-non-zero", "clf", "fit", ES,
     (Xc, yc, Kw(Vc, sample_weight_val=np.eye(20)[0])), ValueError,
     "The validation set is too small: X_val has 20 row.*1 with a non-zero weight"),
    ("x-val-of-one-row", "reg", "fit", ES, (Xr, yr, Kw(X_val=Xr[:1], y_val=yr[:1])),
     ValueError, "The validation set is too small: X_val has 1 row"),
    ("device-unknown", "clf", "fit", {"device": "tpu"}, (Xc, yc), InvalidParameterError,
     "'device' parameter.*Got 'tpu'"),
    ("n-threads-zero", "clf", "fit", {"n_threads": 0}, (Xc, yc), InvalidParameterError,
     "'n_threads' parameter"),
    ("class-weight-unknown-class", "clf", "fit", {"class_weight": {9: 2.0}}, (Xc, yc),
     ValueError, r"class_weight has labels not in classes_.*\[9\]"),
    ("class-weight-negative", "clf", "fit", {"class_weight": {0: -1.0}}, (Xc, yc),
     ValueError, r"class_weight values must be finite non-negative.*\{0: -1.0\}"),
    ("class-weight-nan", "clf", "fit", {"class_weight": {1: float("nan")}}, (Xc, yc),
     ValueError, r"class_weight values must be finite"),
    # Issue 22, item 12: a numpy isfinite TypeError.
    ("class-weight-string", "clf", "fit", {"class_weight": {0: "2"}}, (Xc, yc),
     ValueError, r"class_weight values must be finite non-negative numbers.*\{0: '2'\}"),
    ("activation-module-instance", "clf", "fit", {"activation": torch.nn.ReLU()}, (Xc, yc),
     InvalidParameterError, r"'activation' parameter.*the class ReLU itself.*not an instance"),
    ("loss-unknown", "reg", "fit", {"loss": "hinge"}, (Xr, yr), InvalidParameterError,
     "'loss' parameter"),
    ("callbacks-not-callbacks", "clf", "fit", {"callbacks": [print]}, (Xc, yc),
     InvalidParameterError, "'callbacks' parameter.*skorch callbacks.*Got <built-in"),
    ("init-from-not-an-estimator", "clf", "fit", {"init_from": "model.pkl"}, (Xc, yc),
     InvalidParameterError, "'init_from' parameter.*a fitted DeepMLPClassifier"),
    ("reuse-layers-negative", "clf", "fit", {"reuse_layers": -1}, (Xc, yc),
     InvalidParameterError, "'reuse_layers' parameter"),
    ("freeze-layers-negative", "clf", "fit", {"freeze_layers": -1}, (Xc, yc),
     InvalidParameterError, "'freeze_layers' parameter"),
    ("unfreeze-after-negative", "clf", "fit", {"unfreeze_after": -3}, (Xc, yc),
     InvalidParameterError, "'unfreeze_after' parameter"),
    ("pretrain-unknown", "reg", "fit", {"pretrain": "rbm"}, (Xr, yr),
     InvalidParameterError, "'pretrain' parameter.*autoencoder"),
    ("pretrain-epochs-zero", "clf", "fit", {"pretrain": "autoencoder", "pretrain_epochs": 0},
     (Xc, yc), InvalidParameterError, "'pretrain_epochs' parameter"),
    ("pretrain-all-unlabeled", "clf", "fit", {"pretrain": "autoencoder"},
     (Xc, -np.ones(60, dtype=int)), ValueError, "Every row of y is -1"),
    ("batch-norm-batch-of-one", "clf", "fit", {"batch_norm": "before", "batch_size": 1},
     (Xc, yc), ValueError, "BatchNorm needs at least 2 samples"),
]
if not torch.cuda.is_available():
    CASES.append(("cuda-unavailable", "clf", "fit", {"device": "cuda"}, (Xc, yc), ValueError,
                  "CUDA is not available"))


def _estimator(kind, params):
    cls = DeepMLPClassifier if kind == "clf" else DeepMLPRegressor
    return cls(**{**FAST, **params})


def test_every_constrained_hyperparameter_has_a_bad_value_row():
    assert len({c[0] for c in CASES}) == len(CASES)  # ids are unique
    covered = {k for c in CASES for k in c[3]}
    # Booleans and seeds: any value of the allowed type is valid (sklearn's
    # constraint checks cover the wrong types); the rest need a row here.
    free = {"batch_norm_input", "shuffle", "early_stopping", "warm_start", "random_state",
            "nesterovs_momentum", "diagnostics",
            "verbose", "batch_norm_momentum", "batch_norm_epsilon", "clip_value",
            "beta_1", "beta_2", "epsilon", "rho", "tol", "n_iter_no_change", "huber_delta"}
    for cls in (DeepMLPClassifier, DeepMLPRegressor):
        missing = set(cls._parameter_constraints) - covered - free
        assert not missing, sorted(missing)


@pytest.mark.parametrize("name, kind, method, params, args, exc, match", CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error_and_keeps_the_fitted_model(
    name, kind, method, params, args, exc, match
):
    X, y = (Xc, yc) if kind == "clf" else (Xr, yr)
    fresh = _estimator(kind, params)
    if method == "partial_fit":  # a first, valid call; then the parameters of the row
        fresh = _estimator(kind, {})
        if kind == "clf":
            fresh.partial_fit(X, y, classes=np.unique(y))
        else:
            fresh.partial_fit(X, y)
        fresh.set_params(**params)
    kwargs = args[-1] if args and isinstance(args[-1], Kw) else {}
    args = args[:-1] if kwargs else args
    with pytest.raises(exc, match=match):
        getattr(fresh, method)(*args, **kwargs)

    # The same failure on an already-fitted estimator leaves it untouched.
    fitted = _estimator(kind, {})
    if method == "partial_fit" and kind == "clf":
        fitted.partial_fit(X, y, classes=np.unique(y))
    else:
        fitted.fit(X, y)
    before = fitted.predict(X)
    state = {k: v.clone() for k, v in fitted.net_.module_.state_dict().items()}
    n_iter = fitted.n_iter_
    previous = {k: fitted.get_params()[k] for k in params}
    fitted.set_params(**params)
    with pytest.raises(exc, match=match):
        getattr(fitted, method)(*args, **kwargs)
    fitted.set_params(**previous)  # (prediction-time parameters too, e.g. mc_dropout)
    np.testing.assert_array_equal(fitted.predict(X), before)
    assert fitted.n_iter_ == n_iter
    for k, v in fitted.net_.module_.state_dict().items():
        assert torch.equal(v, state[k]), k


@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_log_proba"])
def test_predict_before_fit(method):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        getattr(DeepMLPClassifier(), method)(Xc)
    if method == "predict":
        with pytest.raises(NotFittedError, match="not fitted yet"):
            DeepMLPRegressor().predict(Xr)


@pytest.mark.parametrize("bad, exc, match", [
    (Xc[:, :4], ValueError, "X has 4 features, but DeepMLPClassifier is expecting 5"),
    (_with(Xc, 0, 0, np.nan), ValueError, "Input X contains NaN"),
    (_with(Xc, 0, 0, np.inf), ValueError, "Input X contains infinity"),
    (sp.csr_matrix(_with(Xc, 0, 0, np.inf)), ValueError, "Input X contains infinity"),
    (Xc.reshape(60, 5, 1), ValueError, "Found array with dim 3"),
    (np.empty((0, 5)), ValueError, r"0 sample\(s\)"),
], ids=["n-features", "nan", "inf", "sparse-inf", "3d", "empty"])
def test_bad_input_at_predict(bad, exc, match):
    clf = DeepMLPClassifier(**FAST).fit(Xc, yc)
    for method in ("predict", "predict_proba"):
        with pytest.raises(exc, match=match):
            getattr(clf, method)(bad)


@pytest.mark.parametrize("kind, y, exc, match", [
    ("reg", _none_at(yr, 2), ValueError, r"missing value \(None, NaN or pandas.NA\) in 1 row"),
    ("reg", np.r_[np.inf, yr[1:]], ValueError, "Input y contains infinity"),
    ("reg", np.r_[1e300, yr[1:]], ValueError, "R² cannot be computed.*overflow float64"),
    ("reg", yr[:-1], ValueError, "inconsistent numbers of samples"),
    ("clf", _none_at(yc, 2), ValueError,
     r"missing value \(None, NaN or pandas.NA\) in 1 row\(s\) \(2\)"),
    ("clf", np.r_[np.nan, yc[1:]], ValueError, "Input y_true contains NaN"),
], ids=["reg-none", "reg-inf", "reg-overflow", "reg-length", "clf-none", "clf-nan"])
def test_bad_y_at_score(kind, y, exc, match):
    # Issue 22: y validated as strictly at score as at fit (a None label was a
    # TypeError from sorting, a y of 1e300 scored R² = nan).
    est = _estimator(kind, {}).fit(*((Xc, yc) if kind == "clf" else (Xr, yr)))
    with pytest.raises(exc, match=match):
        est.score(Xc if kind == "clf" else Xr, y)


def test_mc_dropout_set_to_true_after_fit_is_refused_at_predict():
    # Issue 22, item 11, by set_params after fit (fit's validation never sees it).
    reg = DeepMLPRegressor(**FAST, dropout=0.2).fit(Xr, yr)
    with pytest.raises(InvalidParameterError, match="'mc_dropout' parameter.*Got True"):
        reg.set_params(mc_dropout=True).predict(Xr)
