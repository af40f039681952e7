"""Parameter checks of ``BaseDeepMLP`` that constraints cannot express.

``_parameter_constraints`` (scikit-learn's validation) checks each parameter
alone; :class:`ParameterChecks` checks them together and against the fitted
network (architecture changes on warm starts, callbacks, schedules, the
self-normalizing conditions of SELU, transfer learning and pretraining via
:func:`~._reuse.check_reuse_params`). A mixin of ``BaseDeepMLP``.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from skorch.callbacks import Callback, LRScheduler

from ._activations import check_activation_alpha, is_self_normalizing
from ._init import VarianceScaling
from ._optim import SOLVERS, resolve_weight_decay
from ._reuse import check_reuse_params
from ._trainer import BATCH_EVENTS, OWN_CALLBACKS, implements_event
from ._validation import invalid_combination, invalid_parameter

__all__ = ["RESERVED_CALLBACK_NAMES", "ParameterChecks", "column_moments"]

# Callback names the estimator uses itself.
RESERVED_CALLBACK_NAMES = OWN_CALLBACKS


def column_moments(X, rows=None, chunk=65536):
    """Per-column mean and standard deviation of ``X[rows]`` (all rows when ``None``),
    in float64, without a copy of ``X`` (sparse ``X`` stays sparse)."""
    total = np.zeros(X.shape[1])
    squares = np.zeros(X.shape[1])
    n_rows = X.shape[0] if rows is None else len(rows)
    for start in range(0, n_rows, chunk):
        index = slice(start, start + chunk) if rows is None else rows[start : start + chunk]
        part = X[index]
        if sp.issparse(part):
            total += np.asarray(part.sum(axis=0), dtype=np.float64).ravel()
            squares += np.asarray(part.multiply(part).sum(axis=0), dtype=np.float64).ravel()
        else:
            part = part.astype(np.float64)
            total += part.sum(axis=0)
            squares += np.square(part).sum(axis=0)
    n = max(n_rows, 1)
    mean = total / n
    return mean, np.sqrt(np.maximum(squares / n - mean**2, 0.0))


class ParameterChecks:
    """Cross-parameter checks (mixed into ``BaseDeepMLP``)."""

    def _check_params(self, continuing=False):
        """Cross-parameter checks that constraints cannot express."""
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if not all(isinstance(s, Integral) and not isinstance(s, bool) and s >= 1
                   for s in sizes):
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
        ok = (all(isinstance(m, Integral) and m >= 1 for m in milestones)
              and all(a < b for a, b in zip(milestones, milestones[1:], strict=False)))
        if not ok:
            raise invalid_parameter(
                self, "lr_milestones", "increasing positive epoch numbers", self.lr_milestones)
        if len(values) != len(milestones) + 1 or not all(
                isinstance(v, Real) and v > 0 for v in values):
            raise invalid_combination(
                self, "lr_values", self.lr_values,
                f"lr_values needs {len(milestones) + 1} positive rates (one more than the "
                f"{len(milestones)} lr_milestones).",
            )

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

    def _check_same_architecture(self, incremental):
        changed = sorted(
            k for k, v in self._architecture().items() if self._fitted_architecture[k] != v
        )
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
        mean, std = column_moments(X, rows)
        if np.abs(mean).max() > 0.5 or (std > 0).any() and (
                np.abs(std[std > 0] - 1).max() > 0.5):
            why.append("inputs that are not standardized (column means up to "
                       f"{np.abs(mean).max():.3g}, standard deviations "
                       f"{std.min():.3g}-{std.max():.3g}; use StandardScaler)")
        if not why:
            return []
        return [
            "activation='selu' self-normalizes (keeps every layer's outputs at mean 0 and "
            "standard deviation 1) only with LeCun normal initialization, standardized "
            "inputs, a plain stack of dense layers and no BatchNorm, L1/L2, max-norm or "
            f"ordinary dropout (chapter 11); this network has {'; '.join(why)}."
        ]
