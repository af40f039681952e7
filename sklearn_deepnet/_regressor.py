"""DeepMLPRegressor: single/multi-output targets, squared/absolute/Huber/Poisson loss."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, column_or_1d

from ._base import BaseDeepMLP, consistent
from ._docs import SHARED_ATTRIBUTES, SHARED_PARAMETERS, fit_validation_set
from ._engine.losses import OUT_ACTIVATIONS, REGRESSION_LOSSES, PerSampleLoss
from ._validation import Interval, Real, StrOptions, check_no_missing_targets, fit_context

_SCALE_Y = ("Scale the target, e.g. TransformedTargetRegressor(regressor=..., "
            "transformer=StandardScaler()).")


def _loss_lines():
    return "\n".join(f"        - ``{k}``: {v.summary}." for k, v in REGRESSION_LOSSES.items())


class DeepMLPRegressor(RegressorMixin, BaseDeepMLP):
    __doc__ = f"""Deep multi-layer perceptron regressor over PyTorch.

    A drop-in for :class:`sklearn.neural_network.MLPRegressor` with the
    deep-network toolbox of *Hands-On Machine Learning*, chapter 11 (see
    :class:`DeepMLPClassifier`). The output layer is linear, one unit per
    target; a 1-D ``y`` gives 1-D predictions, a 2-D ``y`` 2-D predictions
    (a single column ``(n, 1)`` counts as 1-D, with a ``DataConversionWarning``,
    as in ``MLPRegressor``).

    Parameters
    ----------
{SHARED_PARAMETERS}
    loss : str, default="squared_error"
        Training loss, averaged over outputs, one of:

{_loss_lines()}

    huber_delta : float, default=1.0
        Where the Huber loss turns from quadratic to linear (``loss="huber"``).

    Attributes
    ----------
{SHARED_ATTRIBUTES}
    out_activation_ : str
        Link from the network's output to predictions: ``"identity"``, or
        ``"exp"`` for ``loss="poisson"``. Fixed at fit time.

    See Also
    --------
    DeepMLPClassifier : The classification counterpart.
    sklearn.neural_network.MLPRegressor : scikit-learn's CPU-only MLP.

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from sklearn_deepnet import DeepMLPRegressor
    >>> X, y = make_regression(n_samples=200, n_features=5, noise=1.0, random_state=0)
    >>> reg = DeepMLPRegressor((32, 32), activation="gelu", learning_rate_init=1e-2,
    ...                        max_iter=300, random_state=0).fit(X, y / y.std())
    >>> reg.predict(X[:2]).shape
    (2,)
    """

    _parameter_constraints = {
        **BaseDeepMLP._parameter_constraints,
        "loss": [StrOptions(set(REGRESSION_LOSSES))],
        "huber_delta": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self, hidden_layer_sizes=(100, 100, 100), *, activation="relu",
        activation_alpha=None, kernel_initializer="auto", batch_norm=None,
        batch_norm_input=False, batch_norm_momentum=0.1, batch_norm_epsilon=1e-5,
        dropout=0.0, numeric_embedding=None, numeric_features="auto", embedding_size=16,
        n_frequencies=48, frequency_scale=0.01, n_bins=48, max_norm=None, alpha=1e-4,
        l1_ratio=0.0, weight_decay=None,
        clip_norm=None, clip_value=None, solver="adam", learning_rate="constant",
        learning_rate_init=1e-3, power_t=0.5, decay_steps=10_000, lr_milestones=None,
        lr_values=None, lr_factor=0.5, lr_patience=5, momentum=0.9, nesterovs_momentum=True,
        beta_1=0.9, beta_2=0.999, epsilon=1e-8, rho=0.9, batch_size="auto", max_iter=200,
        shuffle=True, tol=1e-4, n_iter_no_change=10, early_stopping=False,
        validation_fraction=0.1, warm_start=False, random_state=None, verbose=False,
        device="auto", n_threads=None, max_fun=15000, callbacks=None, mc_dropout=0,
        init_from=None, reuse_layers=None, freeze_layers=0, unfreeze_after=None,
        pretrain=None, pretrain_epochs=10, diagnostics=False, n_members=1,
        ensemble_sharing="mini",
        loss="squared_error", huber_delta=1.0,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.activation_alpha = activation_alpha
        self.kernel_initializer = kernel_initializer
        self.batch_norm = batch_norm
        self.batch_norm_input = batch_norm_input
        self.batch_norm_momentum = batch_norm_momentum
        self.batch_norm_epsilon = batch_norm_epsilon
        self.dropout = dropout
        self.numeric_embedding = numeric_embedding
        self.numeric_features = numeric_features
        self.embedding_size = embedding_size
        self.n_frequencies = n_frequencies
        self.frequency_scale = frequency_scale
        self.n_bins = n_bins
        self.max_norm = max_norm
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.solver = solver
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.decay_steps = decay_steps
        self.lr_milestones = lr_milestones
        self.lr_values = lr_values
        self.lr_factor = lr_factor
        self.lr_patience = lr_patience
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.rho = rho
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.n_threads = n_threads
        self.max_fun = max_fun
        self.callbacks = callbacks
        self.mc_dropout = mc_dropout
        self.init_from = init_from
        self.reuse_layers = reuse_layers
        self.freeze_layers = freeze_layers
        self.unfreeze_after = unfreeze_after
        self.pretrain = pretrain
        self.pretrain_epochs = pretrain_epochs
        self.diagnostics = diagnostics
        self.n_members = n_members
        self.ensemble_sharing = ensemble_sharing
        self.loss = loss
        self.huber_delta = huber_delta

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None, sample_weight_val=None):
        """Fit the network to ``X`` and ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; any numeric dtype, a DataFrame, nested lists, or a
            scipy.sparse matrix (densified one batch at a time).
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; the loss is their weighted mean.
        <validation set>

        Returns
        -------
        self : DeepMLPRegressor
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight,
                         validation_set=(X_val, y_val, sample_weight_val))

    fit.__doc__ = fit.__doc__.replace("        <validation set>\n", fit_validation_set(
        y_val="Targets of ``X_val``, validated as ``y`` is, of the same shape.",
        y_cols="n_targets",
    ) + "\n")

    @available_if(BaseDeepMLP._check_solver)
    @fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Run one epoch over ``X`` and ``y``, continuing from the current state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights.

        Returns
        -------
        self : DeepMLPRegressor
            The updated estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True)

    # ---------------------------------------------------------------- hooks
    def _prepare_y(self, y, *, continuing, incremental, classes):
        y, y2 = self._checked_targets(y, "y")
        if continuing and (y.ndim, y2.shape[1]) != (self._y_ndim, self.n_outputs_):
            raise ValueError(
                f"y has shape {y.shape} but the network was fitted on targets with "
                f"{self.n_outputs_} output(s) and {self._y_ndim} dimension(s)."
            )
        self._y_ndim = y.ndim
        self.n_outputs_ = y2.shape[1]
        self.out_activation_ = REGRESSION_LOSSES[self.loss].out_activation
        return y2, None, self.n_outputs_

    def _prepare_y_val(self, y, class_weights=None):
        """Model targets of ``y_val``, checked as ``y`` is; no class weights."""
        y, y2 = self._checked_targets(y, "y_val")
        if (y.ndim, y2.shape[1]) != (self._y_ndim, self.n_outputs_):
            raise ValueError(
                f"y_val has shape {y.shape}, but y has {self.n_outputs_} target(s) and "
                f"{self._y_ndim} dimension(s): y_val must have the shape of y."
            )
        return y2, None

    def _checked_targets(self, y, name):
        """``y`` (a 1-D column raveled) and its float32 2-D model targets, checked."""
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:  # as MLPRegressor: a column is a 1-D target
            y = column_or_1d(y, warn=True)
        if y.dtype.kind not in "fiub":  # e.g. strings: "could not convert string to float"
            y = y.astype(np.float64)
        if not np.isfinite(y).all():
            # (a None in an object y became NaN in validate_data's conversion)
            raise ValueError(
                f"Input {name} contains NaN or a missing value (None): every row needs a "
                "finite target. Drop those rows or impute them first."
            )
        with np.errstate(over="ignore"):
            y2 = y.reshape(len(y), -1).astype(np.float32)
        if not np.isfinite(y2).all():
            raise ValueError(
                f"Input {name} contains a value too large for float32 (|{name}| up to "
                f"{float(np.abs(y).max()):.3g}; the network trains in float32, whose "
                f"largest value is {np.finfo(np.float32).max:.3g}). {_SCALE_Y}"
            )
        if REGRESSION_LOSSES[self.loss].requires_non_negative_y and (y2 < 0).any():
            raise ValueError(
                f"loss={self.loss!r} requires non-negative {name}, but {name} has negative "
                f"values (min {float(y2.min())!r})."
            )
        return y, y2

    def _per_sample_loss(self):
        return PerSampleLoss(REGRESSION_LOSSES[self.loss].factory(self.huber_delta))

    def _check_target_scale(self, y_model, sample_weight):
        """The untrained network's loss must be finite in float32 arithmetic.

        Its outputs start near 0, so the loss of a zero output (e.g. ``y**2 / 2``
        for squared error), summed with the weights as a batch's loss is, must
        fit float32; a larger one overflows to inf in the first step and
        training could only diverge.
        """
        y_t = torch.from_numpy(y_model)
        losses = self._per_sample_loss()(torch.zeros_like(y_t), y_t).double().numpy()
        total = float(np.dot(losses, sample_weight.astype(np.float64)))
        if not total <= np.finfo(np.float32).max:
            raise ValueError(
                f"y is too large for loss={self.loss!r} in float32 (|y| up to "
                f"{float(np.abs(y_model).max()):.3g}): the untrained network's loss summed "
                f"over the rows overflows float32, the precision the network trains in. "
                f"{_SCALE_Y}"
            )

    @consistent
    def score(self, X, y, sample_weight=None):
        """Coefficient of determination R² of :meth:`predict` on ``X`` against ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Test samples.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            True values; NaN, infinity or a missing value (``None``) is an error.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            R² (uniform average over targets), as ``r2_score``.
        """
        check_no_missing_targets(y)
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        with np.errstate(over="ignore", invalid="ignore"):  # reported below
            result = super().score(X, y, sample_weight=sample_weight)
        if np.isnan(result) and len(y) >= 2:
            raise ValueError(
                f"R² cannot be computed: y's values (|y| up to {float(np.abs(y).max()):.3g}) "
                f"overflow float64 when squared. {_SCALE_Y}"
            )
        return result

    def _predict_from_raw(self, raw):
        # The fitted link, not self.loss: set_params after fit must not change predictions.
        pred = OUT_ACTIVATIONS[self.out_activation_](raw.astype(np.float64))
        pred = pred.astype(self._output_dtype, copy=False)  # float32 for float32 training X
        return pred.ravel() if self._y_ndim == 1 else pred

    def _member_combine(self):
        return "exp" if self.out_activation_ == "exp" else "identity"

    def _score_raw(self, raw, y_model, sample_weight):
        pred = REGRESSION_LOSSES[self.loss].inverse_link(raw.astype(np.float64))
        return r2_score(y_model, pred, sample_weight=sample_weight)

    @consistent
    def predict(self, X, return_std=False):
        """Predict target values.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.
        return_std : bool, default=False
            Also return the standard deviation of the ``mc_dropout`` passes'
            predictions (Monte Carlo dropout's uncertainty); needs
            ``mc_dropout >= 2`` and a network fitted with ``dropout > 0``.
            Without MC dropout, a network fitted with ``n_members > 1`` gives
            the standard deviation of its members' predictions.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_targets)
            Predictions, with the dimensionality of the ``y`` seen in fit;
            with ``mc_dropout``, the mean over the passes; with ``n_members >
            1``, the mean of the members' predictions.
        y_std : ndarray of the same shape
            Only with ``return_std=True``.
        """
        self._check_return_std(return_std)
        if self._spread_from_members(return_std):  # an ensemble's members
            members = np.stack([self._predict_from_raw(raw) for raw in self._member_raw(X)])
            return self.predict(X), members.std(axis=0).astype(self._output_dtype, copy=False)
        raws = self._predict_raw_passes(X)
        if len(raws) == 1:  # one deterministic pass (return_std needs several): the mean
            return self._predict_from_raw(raws[0])  # of one pass is that pass, skip the stack
        passes = np.stack([self._predict_from_raw(raw) for raw in raws])
        mean = passes.mean(axis=0).astype(self._output_dtype, copy=False)
        if return_std:
            return mean, passes.std(axis=0).astype(self._output_dtype, copy=False)
        return mean

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
