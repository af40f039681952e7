"""BaseDeepMLP: shared parameters, constraints and fit/partial_fit/predict plumbing.

What one call of ``fit`` or ``partial_fit`` does is the mixin
:class:`~._fitting.RunsFits` (``_fitting.py``); this module keeps the
parameters, their constraints, the hooks the subclasses supply, the network
of the fitted architecture, the fitted attributes and the predictions.
"""

from __future__ import annotations

import functools
from abc import ABCMeta, abstractmethod

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from ._checks import ParameterChecks
from ._diagnostics import history_frame
from ._engine.activations import ACTIVATIONS
from ._engine.embeddings import EMBEDDINGS
from ._engine.inference import predict_raw, predict_raw_mc
from ._engine.init import INITIALIZERS, VarianceScaling
from ._engine.module import MLP
from ._engine.optim import SOLVERS
from ._ensemble import Ensembles
from ._fitting import RunsFits
from ._light_validation import light_validated_X
from ._netbuild import BuildsNetwork
from ._numeric import EMBEDDING_PARAMS
from ._persist import SERVING, PersistsState
from ._reuse import KeepsSource
from ._schedules import SCHEDULES
from ._validation import (
    Integral,
    Interval,
    Options,
    Real,
    StrOptions,
    invalid_parameter,
    is_number,
)


def consistent(method):
    """Run a prediction method on a snapshot of the estimator's attributes.

    ``dict(vars(self))`` is one atomic copy, and a fit publishes its
    attributes in one step: the method sees one model throughout (its
    ``classes_``, network, output activation, ...), also while another
    thread refits the estimator.
    """
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        state = vars(self)
        if state.get(_SNAPSHOT):  # already one (predict_proba called by predict)
            return method(self, *args, **kwargs)
        snapshot = object.__new__(type(self))
        snapshot.__dict__ = {**state, _SNAPSHOT: True}
        return method(snapshot, *args, **kwargs)

    return wrapper


_SNAPSHOT = "_prediction_snapshot"
# Parameters that shape the network: warm starts and partial_fit need them unchanged.
_ARCHITECTURE_PARAMS = (
    "hidden_layer_sizes", "activation", "activation_alpha", "batch_norm",
    "batch_norm_input", "batch_norm_momentum", "batch_norm_epsilon", "dropout",
    "n_members", "ensemble_sharing",
)


def _mlp(n_features, n_outputs, arch, member_combine="identity", embedding=None):
    """An :class:`MLP` of the architecture ``arch`` (see ``BaseDeepMLP._architecture``);
    ``member_combine``: how an ensemble combines its members (the output activation);
    ``embedding``: the numeric embedding (an ``EmbeddingSpec`` or ``None``)."""
    options = {k: v for k, v in arch.items() if k != "hidden_layer_sizes"}
    return MLP(n_features, arch["hidden_layer_sizes"], n_outputs,
               member_combine=member_combine, embedding=embedding, **options)


class BaseDeepMLP(RunsFits, ParameterChecks, BuildsNetwork, Ensembles, KeepsSource,
                  PersistsState, BaseEstimator, metaclass=ABCMeta):
    """Base class of :class:`DeepMLPClassifier` and :class:`DeepMLPRegressor`.

    Not for direct use. Subclasses supply the target handling (label encoding
    or output scaling), the per-sample loss and the validation score.
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS)), callable],
        "activation_alpha": [Interval(Real, None, None, closed="neither"), tuple, None],
        "kernel_initializer": [StrOptions({"auto", *INITIALIZERS}), VarianceScaling],
        "batch_norm": [StrOptions({"before", "after"}), None],
        "batch_norm_input": ["boolean"],
        "batch_norm_momentum": [Interval(Real, 0, 1, closed="both")],
        "batch_norm_epsilon": [Interval(Real, 0, None, closed="neither")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "numeric_embedding": [StrOptions(set(EMBEDDINGS)), None],
        "numeric_features": [StrOptions({"auto"}), "array-like"],
        "embedding_size": [Interval(Integral, 1, None, closed="left")],
        "n_frequencies": [Interval(Integral, 1, None, closed="left")],
        "frequency_scale": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "n_bins": [Interval(Integral, 1, None, closed="left")],
        "max_norm": [Interval(Real, 0, None, closed="neither"), None],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "l1_ratio": [Interval(Real, 0, 1, closed="both")],
        "weight_decay": [Interval(Real, 0, None, closed="left"), None],
        "clip_norm": [Interval(Real, 0, None, closed="neither"), None],
        "clip_value": [Interval(Real, 0, None, closed="neither"), None],
        "solver": [StrOptions(set(SOLVERS))],
        "learning_rate": [StrOptions(set(SCHEDULES))],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "nesterovs_momentum": ["boolean"],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "decay_steps": [Interval(Integral, 1, None, closed="left")],
        "lr_milestones": ["array-like", None],
        "lr_values": ["array-like", None],
        "lr_factor": [Interval(Real, 0, 1, closed="neither")],
        "lr_patience": [Interval(Integral, 1, None, closed="left")],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "rho": [Interval(Real, 0, 1, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "device": [str, torch.device],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "callbacks": [list, None],
        "mc_dropout": [Interval(Integral, 0, None, closed="left")],
        "init_from": "no_validation",  # checked in _reuse.check_reuse_params
        "reuse_layers": [Interval(Integral, 0, None, closed="left"), None],
        "freeze_layers": [Interval(Integral, 0, None, closed="left")],
        "unfreeze_after": [Interval(Integral, 0, None, closed="left"), None],
        "pretrain": [StrOptions({"autoencoder"}), None],
        "pretrain_epochs": [Interval(Integral, 1, None, closed="left")],
        "diagnostics": ["boolean"],
        "n_members": [Interval(Integral, 1, None, closed="left")],
        "ensemble_sharing": [StrOptions({"mini", "batch"})],
    }

    # Private switch for benchmarks and debugging: False forces the eager step.
    _fast_engine = True

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _prepare_y(self, y, *, continuing, incremental, classes):
        """Validate ``y`` and return ``(y_model, extra_weight, n_outputs)``.

        ``y_model`` is what the loss consumes (int64 class indices or float32
        2-D targets); ``extra_weight`` multiplies the sample weights (class
        weights) or is ``None``; ``n_outputs`` is the network's output width.
        May set target-related fitted attributes (restored if fit fails).
        """

    @abstractmethod
    def _prepare_y_val(self, y, class_weights=None):
        """Validate ``y_val`` as ``y`` was; return ``(y_model, extra_weight or None)``.

        ``class_weights``: one weight per class of ``classes_`` (what
        ``_prepare_y`` left in ``_class_weight_lookup``), or ``None``.
        """

    @abstractmethod
    def _per_sample_loss(self):
        """Per-sample loss function of ``(raw_outputs, y_model)``."""

    @abstractmethod
    def _member_combine(self):
        """How an ensemble's members combine (``MemberMean``'s rule): the output
        activation whose predictions are averaged."""

    @abstractmethod
    def _score_raw(self, raw, y_model, sample_weight):
        """Validation score (higher is better) from raw outputs."""

    def _stratify(self, y_model):
        """Labels to stratify the validation split on, or ``None``."""
        return None

    def _check_solver(self):
        """``partial_fit`` exists for mini-batch solvers only (``available_if``), as in sklearn."""
        if not SOLVERS[self.solver].stochastic:
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers. {self.solver} is "
                "not stochastic."
            )
        return True

    # ------------------------------------------------------------ validation
    def _architecture(self):
        arch = {name: getattr(self, name) for name in _ARCHITECTURE_PARAMS}
        sizes = arch["hidden_layer_sizes"]
        sizes = [sizes] if isinstance(sizes, Integral) else sizes
        arch["hidden_layer_sizes"] = tuple(int(s) for s in sizes)
        if arch["n_members"] == 1:  # (no effect: a change is no change of the network)
            arch["ensemble_sharing"] = "mini"
        return arch

    def _embedding_params(self):
        return {name: getattr(self, name) for name in EMBEDDING_PARAMS}

    # --------------------------------------------------- network and history
    def _empty_module(self, n_outputs):
        """An :class:`MLP` of the fitted architecture (weights to be loaded)."""
        return _mlp(self.n_features_in_, n_outputs, self._fitted_architecture,
                    self._member_combine(), getattr(self, "_embedding", None))

    def _build_module(self, n_features, n_outputs):
        """A freshly initialized :class:`MLP` (call inside the seeded RNG fork)."""
        return _mlp(n_features, n_outputs, self._architecture(),
                    self._member_combine(), self._embedding).initialize_(
            self.kernel_initializer, vars(self).pop("_init_random_state", None)
        )

    def history_frame(self):
        """The training history as a pandas DataFrame, one row per epoch.

        Columns: the per-epoch records of ``history_`` (``train_loss``,
        ``lr``, ``dur``, ``train_loss_best``, with early stopping
        ``valid_loss`` and ``valid_score``, ...) and, with
        ``diagnostics=True``, one column per statistic and layer:
        ``grad_norm_1`` ... ``grad_norm_out``, ``weight_norm_*`` and
        ``update_ratio_*`` (linear layers, ``out`` the output layer) and
        ``act_mean_*``, ``act_std_*``, ``dead_fraction_*``,
        ``saturated_fraction_*`` (hidden layers; NaN where the activation
        cannot die or saturate). Needs pandas.

        Returns
        -------
        pandas.DataFrame
            Indexed by epoch (1, 2, ...), over every fit and ``partial_fit``
            call of the network.
        """
        check_is_fitted(self)
        return history_frame(self.history_, len(self.module_.hidden))

    # ----------------------------------------------------------- persistence
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # densified batch by batch
        return tags

    def __sklearn_is_fitted__(self):
        """Fitted once a network exists (not merely once ``fit`` has validated ``X``)."""
        return "net_" in vars(self)

    @property
    def coefs_(self):
        """Weight matrices of the linear layers, ``coefs_[i]`` of shape ``(n_in, n_out)``.

        scikit-learn's layout (the transpose of torch's ``Linear.weight``), as
        copies (changing them does not change the model) in float32 when the
        training ``X`` was float32, else float64, as scikit-learn reports them.
        With ``n_members > 1`` the last is ``(n_members, n_in, n_out)``: each
        member's output layer (and ``intercepts_[-1]`` ``(n_members, n_out)``).
        """
        return [np.swapaxes(lin.weight.detach().cpu().numpy(), -1, -2).astype(
            self._output_dtype) for lin in self.module_.linears()]

    @property
    def intercepts_(self):
        """Bias vectors of the linear layers (zeros where BatchNorm replaces the bias)."""
        return [
            lin.bias.detach().cpu().numpy().astype(self._output_dtype) if lin.bias is not None
            else np.zeros(lin.out_features, dtype=self._output_dtype)
            for lin in self.module_.linears()
        ]

    @property
    def module_(self):
        """The fitted torch module (``net_.module_``), in training mode between fits."""
        return self.net_.module_

    # --------------------------------------------------------------- predict
    def _validated_X(self, X):
        if not self.__sklearn_is_fitted__():  # (check_is_fitted reads the tags first: 5 us)
            check_is_fitted(self)
        light = light_validated_X(self, X)  # a dense float array: the same checks, lighter
        if light is not None:
            return light
        return validate_data(self, X, reset=False, dtype=np.float32, accept_sparse="csr")

    def _served_module(self):
        """The module predictions run: the fitted one or, while a fit continues it
        (warm start, ``partial_fit``), a copy of its weights from before that fit."""
        serving = vars(self).get(SERVING)
        return self.net_.module_ if serving is None else serving

    def _predict_raw(self, X):
        """Validated raw network outputs for ``X`` (float32 numpy)."""
        X = self._validated_X(X)  # (first: NotFittedError before net_ is read)
        return predict_raw(self._served_module(), X, self.net_.device)

    def _check_return_std(self, return_std):
        """``return_std=True`` needs passes to spread: the MC-dropout passes or, without
        MC dropout, an ensemble's members."""
        if return_std and self.mc_dropout < 2 and not self._spread_from_members(return_std):
            raise ValueError(
                f"return_std=True needs mc_dropout >= 2 (stochastic passes with dropout "
                f"active) or a network fitted with n_members >= 2 (the members' spread); "
                f"got mc_dropout={self.mc_dropout}."
            )

    def _predict_raw_passes(self, X):
        """Raw outputs of every prediction pass, shape ``(n_passes, n, n_outputs)``:
        ``mc_dropout`` stochastic passes, or the one deterministic pass."""
        # (set_params after fit skips fit's validation)
        if not (is_number(self.mc_dropout, Integral) and self.mc_dropout >= 0):
            raise invalid_parameter(self, "mc_dropout", "an int >= 0", self.mc_dropout)
        if not self.mc_dropout:
            return self._predict_raw(X)[None]
        X = self._validated_X(X)
        if not any(isinstance(m, torch.nn.Dropout | torch.nn.AlphaDropout)
                   for m in self.net_.module_.modules()):
            raise ValueError(
                f"mc_dropout={self.mc_dropout} needs a network with dropout, but this one "
                f"was fitted with dropout={self._fitted_architecture['dropout']}."
            )
        return predict_raw_mc(self._served_module(), X, self.net_.device, self.mc_dropout,
                              seed=self._seed)
