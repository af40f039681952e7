"""Persistence: a fitted estimator's state as plain Python values and numpy arrays.

``BaseDeepMLP.__getstate__`` replaces the fitted skorch net by
:func:`net_to_state` and ``__setstate__`` rebuilds it with
:func:`net_from_state`. The persisted state therefore holds no torch objects:

- pickles and joblib files of models fitted on a GPU load on CPU-only machines
  (the network comes back on its training device when that exists, else on
  the CPU, with a warning);
- ``skops.io`` can store the estimators, and loads them trusting only the
  types in :data:`TRUSTED_TYPES` (no arbitrary code execution).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch
from skorch.history import History

from ._optim import separate_step_counters
from ._torch_compat import optimizer_load_state_dict, optimizer_state_dict

__all__ = ["TRUSTED_TYPES", "load_optimizer_state", "net_from_state", "net_to_state"]

#: Types to pass to ``skops.io.load(..., trusted=TRUSTED_TYPES)`` for models that
#: use the named activations and initializers and no callbacks (a custom
#: activation class, a ``VarianceScaling`` initializer and every callback add
#: their own types: check ``skops.io.get_untrusted_types``).
TRUSTED_TYPES = [
    "sklearn_deepnet._classifier.DeepMLPClassifier",
    "sklearn_deepnet._regressor.DeepMLPRegressor",
]

_NET_ATTRS = ("solver", "solver_params", "shuffle", "min_batch", "fast", "batch_size",
              "max_epochs", "engine", "engine_reason")
_IMPL_KEYS = ("fused", "foreach", "capturable")
_REGULARIZATION_FIELDS = ("alpha", "l1_ratio", "clip_norm", "clip_value", "max_norm")


def _to_numpy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_numpy(v) for v in value)
    return value


def _to_tensor(value, device):
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy()).to(device)
    if isinstance(value, dict):
        return {k: _to_tensor(v, device) for k, v in value.items()}
    return value


def load_optimizer_state(optimizer, saved):
    """Load a state dict saved on any device into ``optimizer``.

    The hyperparameters and moments come from ``saved``; the implementation
    switches (``fused``, ``foreach``, ``capturable``) stay those ``optimizer``
    was built with for its own device, and torch moves the moments there.
    """
    saved = dict(saved)
    fresh_groups = optimizer_state_dict(optimizer)["param_groups"]
    saved["param_groups"] = [
        {**group, **{k: fresh[k] for k in _IMPL_KEYS if k in fresh}}
        for group, fresh in zip(saved["param_groups"], fresh_groups, strict=True)
    ]
    optimizer_load_state_dict(optimizer, saved)
    separate_step_counters(optimizer)


def net_to_state(net):
    """Everything needed to rebuild a fitted :class:`TrainingNet`, without torch types."""
    return {
        "attrs": {name: getattr(net, name) for name in _NET_ATTRS},
        "regularization": dataclasses.asdict(net.regularization),
        "device": str(net.device),
        "module": {k: v.detach().cpu().numpy() for k, v in net.module_.state_dict().items()},
        "optimizer": _to_numpy(optimizer_state_dict(net.optimizer_)),
        "history": [dict(row) for row in net.history],
    }


def _load_device(saved):
    device = torch.device(saved)
    if device.type == "cuda" and (
        not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()
    ):
        warnings.warn(
            f"This model was fitted on {saved}, which is not available here; it is "
            "loaded on the CPU (predictions agree to float32 rounding).", UserWarning,
            stacklevel=4,
        )
        return torch.device("cpu")
    return device


def net_from_state(state, module, criterion):
    """Rebuild the :class:`TrainingNet` saved by :func:`net_to_state`.

    Parameters
    ----------
    state : dict
        Output of :func:`net_to_state`.
    module : MLP
        A network of the fitted architecture; its weights are replaced.
    criterion : PerSampleLoss
        The per-sample loss.
    """
    from ._steps import Regularization
    from ._trainer import TrainingNet

    device = _load_device(state["device"])
    attrs = dict(state["attrs"])
    # States written before the Regularization record kept its fields loose.
    loose = {k: attrs.pop(k) for k in _REGULARIZATION_FIELDS if k in attrs}
    attrs["regularization"] = Regularization(**state.get("regularization", loose))
    engine, reason = attrs.pop("engine"), attrs.pop("engine_reason")
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state["module"].items()})
    net = TrainingNet(module, criterion, callbacks=[], device=device, **attrs).initialize()
    saved = dict(state["optimizer"])
    saved["state"] = {k: _to_tensor(v, "cpu") for k, v in saved["state"].items()}
    load_optimizer_state(net.optimizer_, saved)
    net.history = History()
    net.history.extend(dict(row) for row in state["history"])
    net.engine, net.engine_reason = engine, reason
    return net
