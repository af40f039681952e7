"""Parameter checks of ``BaseDeepMLP`` that constraints cannot express.

``_parameter_constraints`` (scikit-learn's validation) checks each parameter
alone; :class:`ParameterChecks` checks them together and against the fitted
network (architecture changes on warm starts, callbacks, schedules, the
self-normalizing conditions of SELU, transfer learning and pretraining via
:func:`~._reuse.check_reuse_params`). A mixin of ``BaseDeepMLP``.
"""

from __future__ import annotations

import inspect
import math
from numbers import Integral

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import is_regressor
from skorch.callbacks import (
    BatchScoring,
    Callback,
    EpochScoring,
    LRScheduler,
    PassthroughScoring,
)

from ._engine.activations import build_activation, check_activation_alpha, is_self_normalizing
from ._engine.inference import GLOBAL_RNG_LOCK
from ._engine.init import VarianceScaling
from ._engine.optim import SOLVERS, resolve_weight_decay
from ._reuse import check_reuse_params
from ._schedules import SCHEDULES
from ._trainer import BATCH_EVENTS, OWN_CALLBACKS, implements_event
from ._validation import invalid_combination, invalid_parameter, is_number, resolve_device

__all__ = ["DEPENDENT_PARAMS", "RESERVED_CALLBACK_NAMES", "ParameterChecks", "column_moments"]

# Callback names the estimator uses itself.
RESERVED_CALLBACK_NAMES = OWN_CALLBACKS

# Parameters used always by every solver (the stopping rule, the epoch budget).
_ALWAYS_USED = {"tol", "n_iter_no_change", "max_iter"}


def _table_rows(table, reads, choice):
    """Rows of DEPENDENT_PARAMS read off one table (one source of truth).

    Every hyperparameter some row ``reads`` is used when the row the estimator
    chose (its parameter ``choice``) reads it. (``weight_decay``:
    ``resolve_weight_decay`` reports it.)
    """
    names = sorted({p for row in table.values() for p in reads(row)}
                   - _ALWAYS_USED - {"weight_decay"})
    return [(name, lambda est, name=name: name in reads(table[getattr(est, choice)]),
             f"{choice} in " + "/".join(repr(k) for k, row in table.items()
                                        if name in reads(row)))
            for name in names]


def _stochastic(est):
    return SOLVERS[est.solver].stochastic


def _validating(est):
    """Whether a fit scores a validation split (early stopping, mini-batch solvers)."""
    return est.early_stopping and _stochastic(est)


def _batch_norm(est):
    return est.batch_norm is not None or est.batch_norm_input


#: ``(parameter, used(estimator), "where it is used")``: a parameter set to a
#: value other than its default while ``used`` is false is reported with a
#: ``UserWarning`` by every fit (scikit-learn's way, e.g. ``LogisticRegression``'s
#: ``l1_ratio``): it has no effect there. Rows of the estimator's other class
#: only (``huber_delta``) are skipped.
DEPENDENT_PARAMS = [
    *_table_rows(SCHEDULES, lambda row: row.params, "learning_rate"),
    *_table_rows(SOLVERS, lambda row: row.uses, "solver"),
    *[(name, _stochastic, "mini-batch solvers (not 'lbfgs')")
      for name in ("learning_rate_init", "batch_size", "shuffle", "early_stopping",
                   "n_iter_no_change")],
    ("n_threads", lambda est: resolve_device(est, est.device).type == "cpu",
     "training on the CPU"),
    ("validation_fraction", _validating, "early_stopping=True with a mini-batch solver"),
    ("l1_ratio", lambda est: est.alpha > 0, "alpha > 0"),
    ("nesterovs_momentum", lambda est: est.momentum > 0, "momentum > 0"),
    ("tol", lambda est: not _stochastic(est) or est.n_iter_no_change != math.inf,
     "a finite n_iter_no_change (or solver='lbfgs')"),
    ("mc_dropout", lambda est: est.dropout > 0, "dropout > 0 (predict refuses it without)"),
    ("batch_norm_momentum", _batch_norm, "batch_norm or batch_norm_input"),
    ("batch_norm_epsilon", _batch_norm, "batch_norm or batch_norm_input"),
    ("unfreeze_after", lambda est: est.freeze_layers > 0, "freeze_layers > 0"),
    ("pretrain_epochs", lambda est: est.pretrain is not None, "pretrain='autoencoder'"),
    ("huber_delta", lambda est: est.loss == "huber", "loss='huber'"),
    *[(name, lambda est: est.numeric_embedding is not None, "numeric_embedding")
      for name in ("numeric_features", "embedding_size")],
    ("n_frequencies", lambda est: est.numeric_embedding == "periodic",
     "numeric_embedding='periodic'"),
    ("frequency_scale", lambda est: est.numeric_embedding == "periodic",
     "numeric_embedding='periodic'"),
    ("n_bins", lambda est: est.numeric_embedding == "piecewise_linear",
     "numeric_embedding='piecewise_linear'"),
    ("ensemble_sharing", lambda est: est.n_members > 1, "n_members > 1"),
]


# architecture parameters added after models were pickled, at their defaults
_ARCHITECTURE_DEFAULTS = {"n_members": 1, "ensemble_sharing": "mini"}


def _same_setting(fitted, value):
    if isinstance(value, np.ndarray) or isinstance(fitted, np.ndarray):
        return np.array_equal(np.asarray(fitted, dtype=object), np.asarray(value, dtype=object))
    return bool(fitted == value)


def _differs(value, default):
    if is_number(value) and is_number(default):
        return value != default
    return not (value is default or (type(value) is type(default) and value == default))


def column_moments(X, rows=None, chunk=65536):
    """Per-column mean and standard deviation of ``X[rows]`` (all rows when ``None``),
    in float64, without a copy of ``X`` (sparse ``X`` stays sparse), and which
    columns hold only 0 and 1 (indicator columns, e.g. from ``OneHotEncoder``)."""
    total = np.zeros(X.shape[1])
    squares = np.zeros(X.shape[1])
    binary = np.ones(X.shape[1], dtype=bool)
    n_rows = X.shape[0] if rows is None else len(rows)
    for start in range(0, n_rows, chunk):
        index = slice(start, start + chunk) if rows is None else rows[start : start + chunk]
        part = X[index]
        if sp.issparse(part):
            total += np.asarray(part.sum(axis=0), dtype=np.float64).ravel()
            squares += np.asarray(part.multiply(part).sum(axis=0), dtype=np.float64).ravel()
            coo = part.tocoo()
            off = (coo.data != 0) & (coo.data != 1)
            binary[np.unique(coo.col[off])] = False
        else:
            binary &= ((part == 0) | (part == 1)).all(axis=0)
            part = part.astype(np.float64)
            total += part.sum(axis=0)
            squares += np.square(part).sum(axis=0)
    n = max(n_rows, 1)
    mean = total / n
    return mean, np.sqrt(np.maximum(squares / n - mean**2, 0.0)), binary


class ParameterChecks:
    """Cross-parameter checks (mixed into ``BaseDeepMLP``)."""

    def _check_params(self, continuing=False):
        """Cross-parameter checks that constraints cannot express."""
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if not all(is_number(s, Integral) and s >= 1 for s in sizes):
            raise invalid_parameter(
                self, "hidden_layer_sizes", "a sequence of positive ints",
                self.hidden_layer_sizes,
            )
        if isinstance(self.activation, torch.nn.Module):
            raise invalid_parameter(
                self, "activation",
                "a name or a zero-argument callable returning a torch.nn.Module, such as "
                f"the class {type(self.activation).__name__} itself (one instance is made "
                "per layer), not an instance", self.activation,
            )
        if callable(self.activation) and not isinstance(self.activation, str):
            self._check_activation_factory()
        if isinstance(self.activation, str):
            msg = check_activation_alpha(self.activation, self.activation_alpha)
            if msg:
                raise invalid_combination(self, "activation_alpha", self.activation_alpha, msg)
        elif self.activation_alpha is not None:
            raise invalid_combination(
                self, "activation_alpha", self.activation_alpha,
                "activation_alpha only applies to named activations; configure a custom "
                "module in the callable instead, e.g. functools.partial(nn.LeakyReLU, 0.1).",
            )
        if isinstance(self.kernel_initializer, VarianceScaling):
            try:
                self.kernel_initializer.validate()
            except ValueError as exc:
                raise invalid_parameter(
                    self, "kernel_initializer", f"a valid VarianceScaling ({exc})",
                    self.kernel_initializer,
                ) from None
        decay, msg = resolve_weight_decay(self.solver, self.weight_decay)
        if msg:
            raise invalid_combination(self, "weight_decay", self.weight_decay, msg)
        self._check_callbacks()
        if not SOLVERS[self.solver].stochastic:
            for name, off in (("dropout", 0.0), ("max_norm", None), ("clip_norm", None),
                              ("clip_value", None)):
                if getattr(self, name) != off:
                    raise invalid_combination(
                        self, name, getattr(self, name),
                        f"solver={self.solver!r} minimizes one deterministic full-batch "
                        f"objective; {name} needs a mini-batch solver (set {name}="
                        f"{off!r} or choose another solver).",
                    )
            batchwise = [cb for _, cb in self._callback_items()
                         if any(implements_event(cb, event) for event in BATCH_EVENTS)]
            if batchwise:
                raise invalid_combination(
                    self, "callbacks", batchwise,
                    f"solver={self.solver!r} has no mini-batches, so callbacks with "
                    "per-batch or gradient events would never run; use a mini-batch "
                    "solver or callbacks that act per epoch.",
                )
        self._check_schedule()
        check_reuse_params(self, len(sizes), continuing)
        self._check_ensemble_params()
        return [int(s) for s in sizes], decay

    def _check_schedule(self):
        if self.learning_rate != "constant" and any(
                isinstance(cb, LRScheduler) or cb is LRScheduler
                for _, cb in self._callback_items()):
            raise invalid_combination(
                self, "learning_rate", self.learning_rate,
                "a learning_rate schedule and an LRScheduler callback would both set the "
                "rate; use one of them (learning_rate='constant' with the callback).",
            )
        if self.learning_rate != "constant" and not SOLVERS[self.solver].stochastic:
            raise invalid_combination(
                self, "learning_rate", self.learning_rate,
                f"solver={self.solver!r} has no learning rate to schedule (its line search "
                "sets the steps); use learning_rate='constant' or a mini-batch solver.",
            )
        if self.learning_rate != "piecewise":
            return
        milestones, values = self.lr_milestones, self.lr_values
        if milestones is None or values is None:
            raise invalid_combination(
                self, "learning_rate", "piecewise",
                "learning_rate='piecewise' needs lr_milestones (epochs) and lr_values "
                "(one more rate than milestones).",
            )
        milestones, values = list(milestones), list(values)
        ok = (all(is_number(m, Integral) and m >= 1 for m in milestones)
              and all(a < b for a, b in zip(milestones, milestones[1:], strict=False)))
        if not ok:
            raise invalid_parameter(
                self, "lr_milestones", "increasing positive epoch numbers", self.lr_milestones)
        if len(values) != len(milestones) + 1 or not all(
                is_number(v) and 0 < v < math.inf for v in values):
            raise invalid_combination(
                self, "lr_values", self.lr_values,
                f"lr_values needs {len(milestones) + 1} positive finite rates (one more "
                f"than the {len(milestones)} lr_milestones).",
            )

    def _check_activation_factory(self):
        """A callable ``activation`` must build a new module, with its own
        parameters, on every call: one per layer, and per fit of each clone."""
        # (Inside a fork of torch's generators: building may draw random numbers.)
        with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
            try:
                first, second = (build_activation(self.activation) for _ in range(2))
            except TypeError as exc:
                raise invalid_parameter(
                    self, "activation", f"a callable returning a torch.nn.Module ({exc})",
                    self.activation) from None
        def tensors(module):
            return {id(t) for t in (*module.parameters(), *module.buffers())}

        # One stateless instance (e.g. a ReLU) may serve every layer; one
        # holding parameters or buffers may not.
        if tensors(first) & tensors(second):
            raise invalid_parameter(
                self, "activation",
                "a callable that builds a new module on every call (one per layer; "
                "parameters or buffers returned by two calls would be shared by every "
                "layer and by every clone in a search), such as a module class or "
                "functools.partial(nn.PReLU, init=0.1)", self.activation,
            )

    def _unused_settings(self):
        """Warnings for parameters set away from their default that have no effect here."""
        defaults = {k: p.default for k, p in
                    inspect.signature(type(self).__init__).parameters.items()}
        unused = {}
        for name, used, where in DEPENDENT_PARAMS:
            if name in defaults and _differs(getattr(self, name), defaults[name]) and (
                    not used(self)):
                unused.setdefault(where, []).append(name)
        schedule = SCHEDULES[self.learning_rate]
        for name, replaced in schedule.overrides:
            value = getattr(self, name)
            if (name in SOLVERS[self.solver].uses and _differs(value, defaults[name])
                    and replaced(value)):
                unused.setdefault(
                    f"learning_rate={self.learning_rate!r} sets it itself", []).append(name)
        return [
            f"{', '.join(f'{n}={getattr(self, n)!r}' for n in names)} "
            f"{'has' if len(names) == 1 else 'have'} no effect here: "
            + (where if where.startswith("learning_rate=") else f"only used with {where}")
            + "."
            for where, names in unused.items()
        ]

    def _callback_items(self):
        """``(name or None, callback)`` for each entry of ``callbacks``."""
        for item in self.callbacks or []:
            yield item if isinstance(item, tuple) and len(item) == 2 else (None, item)

    def _check_callbacks(self):
        for item, (name, cb) in zip(self.callbacks or [], self._callback_items(), strict=True):
            is_callback = isinstance(cb, Callback) or (
                isinstance(cb, type) and issubclass(cb, Callback)
            )
            if not is_callback or not (name is None or isinstance(name, str)):
                raise invalid_parameter(
                    self, "callbacks",
                    "a list of skorch callbacks (skorch.callbacks.Callback instances or "
                    "classes) or of (name, callback) pairs", item,
                )
            if name in RESERVED_CALLBACK_NAMES:
                raise invalid_combination(
                    self, "callbacks", item,
                    f"the callback name {name!r} is used by the estimator itself; "
                    "choose another name.",
                )
            self._check_callback_contract(item, cb)

    def _check_callback_contract(self, item, cb):
        """Refuse, with what to do instead, a skorch callback that cannot work here.

        A callback scoring or monitoring the validation split needs the
        validation the estimator runs with ``early_stopping=True``;
        ``EpochScoring`` scoring the training data without caching would
        predict on the trainer's tensors with no targets.
        """
        cls = cb if isinstance(cb, type) else type(cb)

        def setting(name, default):
            if isinstance(cb, type):
                return getattr(inspect.signature(cls).parameters.get(name), "default", default)
            return getattr(cb, name, default)

        if issubclass(cls, EpochScoring | BatchScoring | PassthroughScoring):
            if not setting("on_train", False) and not _validating(self):
                raise invalid_combination(
                    self, "callbacks", item,
                    f"{cls.__name__} with on_train=False scores the validation split, "
                    "which the estimator holds out only with early_stopping=True and a "
                    "mini-batch solver; set early_stopping=True (and a large "
                    "n_iter_no_change to let your callbacks decide when to stop), or "
                    f"score the training batches with {cls.__name__}(..., on_train=True).",
                )
            if issubclass(cls, EpochScoring) and setting("on_train", False) and not setting(
                    "use_caching", True):
                raise invalid_combination(
                    self, "callbacks", item,
                    "EpochScoring(on_train=True, use_caching=False) predicts on the "
                    "training data, which the trainer holds as tensors without a skorch "
                    "Dataset to take the targets from; use use_caching=True (the outputs "
                    "of the training batches) or on_train=False with early_stopping=True "
                    "(the validation split after each epoch).",
                )
        monitor = getattr(cb, "monitor", None) if not isinstance(cb, type) else (
            getattr(inspect.signature(cls).parameters.get("monitor"), "default", None))
        if isinstance(monitor, str) and monitor.startswith("valid_") and not _validating(self):
            suffix = "_best" if monitor.endswith("_best") else ""
            raise invalid_combination(
                self, "callbacks", item,
                f"{cls.__name__} monitors {monitor!r}, a record the history holds only "
                "with early_stopping=True and a mini-batch solver (the estimator then "
                "scores validation_fraction of the rows, or fit's X_val, after every "
                "epoch); set early_stopping=True (and a large n_iter_no_change to let the "
                "callback decide when to stop), or monitor a training record, e.g. "
                f"{cls.__name__}(monitor='train_loss{suffix}').",
            )
        if monitor in ("valid_acc", "valid_acc_best") and is_regressor(self) and not any(
                getattr(other, "name", None) == "valid_acc"
                for _, other in self._callback_items()):
            raise invalid_combination(
                self, "callbacks", item,
                f"{cls.__name__} monitors {monitor!r}, an accuracy, which a regressor's "
                "history does not hold; monitor 'valid_loss' or 'valid_score' (R²), or "
                "record one with EpochScoring(..., name='valid_acc').",
            )

    def _check_same_architecture(self, incremental):
        fitted, now = dict(self._fitted_architecture), self._architecture()
        # (a model pickled before n_members existed is a single network, one
        # fitted before embeddings existed had none)
        for k, v in _ARCHITECTURE_DEFAULTS.items():
            fitted.setdefault(k, v)
        fitted_embedding = getattr(self, "_fitted_embedding_params", {"numeric_embedding": None})
        embedding = self._embedding_params()
        if fitted_embedding["numeric_embedding"] is not None or (
                embedding["numeric_embedding"] is not None):
            fitted.update(fitted_embedding)
            now.update(embedding)
        changed = sorted(k for k, v in now.items() if k not in fitted
                         or not _same_setting(fitted[k], v))
        if changed:
            raise ValueError(
                f"{'partial_fit' if incremental else 'warm_start=True'} continues the "
                f"fitted network, but {', '.join(changed)} changed since it was built. "
                "Set warm_start=False (or call fit) to build a new network."
            )

    def _self_normalization_warnings(self, X, rows, decay):
        """Why a SELU net will not self-normalize (chapter 11's conditions), if it won't."""
        if not (isinstance(self.activation, str) and is_self_normalizing(self.activation)):
            return []
        why = []
        if self.batch_norm is not None or self.batch_norm_input:
            why.append("BatchNorm layers")
        if self.alpha > 1e-4:  # stronger than the negligible default penalty
            why.append(f"an L1/L2 penalty (alpha={self.alpha})")
        if decay > 0:
            why.append(f"weight decay (weight_decay={decay})")
        if self.max_norm is not None:
            why.append(f"max-norm (max_norm={self.max_norm})")
        init = self.kernel_initializer
        lecun = (init in ("auto", "lecun_normal") if isinstance(init, str) else
                 (init.scale, init.mode, init.distribution) == (1.0, "fan_in", "normal"))
        if not lecun:
            why.append(f"kernel_initializer={init!r} instead of LeCun normal")
        mean, std, binary = column_moments(X, rows)
        # Indicator columns (one-hot) are left as they are in a pipeline that
        # standardizes the numeric columns: they do not count.
        mean, std = mean[~binary], std[~binary]
        if len(mean) and (np.abs(mean).max() > 0.5 or (std > 0).any() and (
                np.abs(std[std > 0] - 1).max() > 0.5)):
            # No figures of this data in the message: it stays the same for one
            # configuration, so Python's default warning filter shows it once per
            # process instead of once per fold of a search.
            why.append("inputs that are not standardized (a column's mean is more than "
                       "0.5 from 0 or its standard deviation more than 0.5 from 1, "
                       "indicator columns aside; use StandardScaler)")
        if not why:
            return []
        return [
            "activation='selu' self-normalizes (keeps every layer's outputs at mean 0 and "
            "standard deviation 1) only with LeCun normal initialization, standardized "
            "inputs, a plain stack of dense layers and no BatchNorm, L1/L2, max-norm or "
            f"ordinary dropout (chapter 11); this network has {'; '.join(why)}."
        ]
