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

import copy
import dataclasses
import hashlib
import warnings

import numpy as np
import torch
from skorch.history import History

from ._engine.inference import GLOBAL_RNG_LOCK
from ._engine.kernels import optimizer_load_state_dict, optimizer_state_dict
from ._engine.optim import separate_step_counters

__all__ = [
    "FIT_OWNER", "FIT_STARTED", "SERVING", "TRAINING", "TRUSTED_TYPES", "PersistsState",
    "history_attributes",
    "load_optimizer_state", "net_from_state", "net_to_state", "state_during_fit",
    "validation_fingerprint",
]

#: Types to pass to ``skops.io.load(..., trusted=TRUSTED_TYPES)`` for models that
#: use the named activations and initializers and no callbacks (a custom
#: activation class, a ``VarianceScaling`` initializer and every callback add
#: their own types: check ``skops.io.get_untrusted_types``).
TRUSTED_TYPES = [
    "sklearn_deepnet._classifier.DeepMLPClassifier",
    "sklearn_deepnet._regressor.DeepMLPRegressor",
]

# Parameters added after the first pickles were written, with their defaults.
_ADDED_PARAMS = {"power_t": 0.5, "nesterovs_momentum": True, "max_fun": 15000, "callbacks": None,
                 "mc_dropout": 0,
                 "decay_steps": 10_000, "lr_milestones": None, "lr_values": None,
                 "lr_factor": 0.5, "lr_patience": 5,
                 "init_from": None, "reuse_layers": None, "freeze_layers": 0,
                 "unfreeze_after": None, "pretrain": None, "pretrain_epochs": 10,
                 "diagnostics": False, "n_members": 1, "ensemble_sharing": "mini",
                 "numeric_embedding": None, "numeric_features": "auto",
                 "embedding_size": 16, "n_frequencies": 48, "frequency_scale": 0.01,
                 "n_bins": 48, "label_smoothing": 0.0}

# Private attributes that exist only while the estimator's own fit runs, on
# the estimator: its state when the call began; once training runs, (net,
# epochs before the call, the attributes the fit is building); and, when the
# fit continues the fitted network, the copy of its weights predictions use
# meanwhile. On the fit's working copy: the estimator it will publish to.
FIT_STARTED, TRAINING, SERVING = "_fit_started", "_training", "_serving_module"
FIT_OWNER = "_fit_owner"

_NET_ATTRS = ("solver", "solver_params", "shuffle", "min_batch", "fast", "batch_size",
              "max_epochs", "engine", "engine_reason", "schedule")
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
    """Everything needed to rebuild a fitted :class:`TrainingNet`, without torch types.

    During an epoch (a callback pickling the estimator mid-fit) the state is
    the one at the end of the last finished epoch: the weights and optimizer
    state of the trainer's epoch snapshot and the history without the
    unfinished epoch's row, exactly what an interrupt would keep.
    """
    epoch_start = getattr(net, "epoch_start", None)
    if epoch_start is not None:
        (module, optimizer), n_rows = epoch_start
    else:
        module, optimizer = net.module_.state_dict(), optimizer_state_dict(net.optimizer_)
        n_rows = len(net.history)
    return {
        "attrs": {name: getattr(net, name, None) for name in _NET_ATTRS},
        "regularization": dataclasses.asdict(net.regularization),
        "device": str(net.device),
        "module": {k: v.detach().cpu().numpy() for k, v in module.items()},
        "optimizer": _to_numpy(optimizer),
        "history": [dict(row) for row in net.history[:n_rows]],
    }


def history_attributes(history, n_done, n_hidden, best_validation_score):
    """The fitted attributes that summarize a network's training history.

    Parameters
    ----------
    history : skorch History
        Every finished epoch of the network (all calls).
    n_done : int
        Epochs of the last call (``n_iter_``; L-BFGS counts its iterations).
    n_hidden : int
        Hidden layers.
    best_validation_score : float or None
        Validation score of the weights held (early stopping), else ``None``.

    Returns
    -------
    dict
        ``history_``, ``n_iter_``, ``n_layers_``, ``loss_``, ``t_``,
        ``loss_curve_``, ``validation_scores_``, ``best_validation_score_``
        and ``best_loss_``, as scikit-learn's MLP defines them; an L-BFGS
        call contributes the objective after each of its iterations to
        ``loss_curve_`` (``lbfgs_losses`` in its record; the final loss when
        a state saved before that was kept lacks it).
    """
    n_iter = n_done
    if n_done and "lbfgs_iterations" in history[-1]:  # one L-BFGS run per call
        n_iter = int(history[-1]["lbfgs_iterations"])
    # L-BFGS records the objective after each iteration of a call's run.
    curve = [float(loss) for h in history
             for loss in h.get("lbfgs_losses", [h["train_loss"]])]
    scores = [float(h["valid_score"]) for h in history if "valid_score" in h]
    return {
        "history_": history,
        "n_iter_": n_iter,  # epochs of this call, as scikit-learn counts
        "n_layers_": n_hidden + 2,
        "loss_": float(history[-1]["train_loss"]) if len(history) else None,
        "t_": int(sum(h["train_samples"] for h in history)),
        "loss_curve_": curve,
        # Some call used early stopping (partial_fit afterwards keeps them).
        "validation_scores_": scores or None,
        "best_validation_score_": best_validation_score if scores else None,
        "best_loss_": None if scores else min(curve, default=None),
    }


def validation_fingerprint(X, val_rows, y_model, sample_weight, chunk=65536):
    """A digest of the validation rows' data, targets and weights.

    A warm start compares validation scores with the previous call's only
    when it validates on exactly the same data (see ``ConvergenceMonitor``).
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.asarray(X.shape, np.int64).tobytes())
    digest.update(np.ascontiguousarray(val_rows, np.int64).tobytes())
    for start in range(0, len(val_rows), chunk):
        part = X[val_rows[start : start + chunk]]
        for array in (part.data, part.indices, part.indptr) if hasattr(part, "indptr") else (
                part,):
            digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(np.ascontiguousarray(y_model[val_rows]).tobytes())
    digest.update(np.ascontiguousarray(sample_weight[val_rows]).tobytes())
    return digest.hexdigest()


def state_during_fit(state, fit_started, training, architecture):
    """What ``__getstate__`` pickles while the estimator's own fit runs.

    A callback (or another thread) may pickle the estimator in the middle of
    its fit. Until the call's first epoch has finished (validation, building,
    pretraining, the first epoch) the pickle holds the estimator as it was
    before the call; afterwards, the estimator as if the call had stopped
    after its last finished epoch:
    that network (see :func:`net_to_state`) with the attributes it would
    have then. Either way it loads, predicts and trains further.

    Parameters
    ----------
    state : dict
        The estimator's ``__dict__`` now (private markers removed).
    fit_started : dict
        Its ``__dict__`` when the call began.
    training : tuple or None
        ``(net, n_epochs_before_the_call, attributes)`` once training has
        started, ``attributes`` being those the fit is building.
    architecture : dict
        The architecture being trained.

    Returns
    -------
    dict
    """
    if training is None:
        return dict(fit_started)
    net, n_before, building = training
    epoch_start = getattr(net, "epoch_start", None)
    n_rows = len(net.history) if epoch_start is None else epoch_start[1]
    if n_rows == n_before:  # no epoch of this call finished yet
        return dict(fit_started)
    state = dict(building)
    state.pop(FIT_OWNER, None)
    history = net.history[:n_rows]
    scores = [row["valid_score"] for row in history[n_before:] if "valid_score" in row]
    monitor = dict(net.callbacks_).get("convergence")
    if scores and getattr(monitor, "restored_", False):  # on_train_end: the best is back
        best = monitor.best_score_
    else:  # the weights of the last finished epoch
        best = scores[-1] if scores else state.get("best_validation_score_")
    state.update(history_attributes(history, n_rows - n_before,
                                    len(net.module_.hidden), best))
    carry = state.get("_convergence_carry")
    if carry is not None:  # the carried best score described the weights before the call
        state["_convergence_carry"] = (*carry[:2], None)
    state.update(net_=net, _fitted_architecture=architecture,
                 _n_fit_calls=state.get("_n_fit_calls", 0) + 1,
                 engine_=net.engine, engine_reason_=net.engine_reason)
    return state


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
    from ._engine.steps import Regularization
    from ._trainer import TrainingNet

    device = _load_device(state["device"])
    attrs = dict(state["attrs"])
    # States written before the Regularization record kept its fields loose.
    loose = {k: attrs.pop(k) for k in _REGULARIZATION_FIELDS if k in attrs}
    attrs["regularization"] = Regularization(**state.get("regularization", loose))
    engine, reason = attrs.pop("engine"), attrs.pop("engine_reason")
    schedule = attrs.pop("schedule", None)  # None: a state written before it was kept
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state["module"].items()})
    net = TrainingNet(module, criterion, callbacks=[], device=device, **attrs).initialize()
    saved = dict(state["optimizer"])
    saved["state"] = {k: _to_tensor(v, "cpu") for k, v in saved["state"].items()}
    load_optimizer_state(net.optimizer_, saved)
    net.history = History()
    net.history.extend(dict(row) for row in state["history"])
    net.engine, net.engine_reason = engine, reason
    if schedule is not None:
        net.schedule = schedule
    return net


def _without_fit_state(item):
    """A shallow copy of a callback (or ``(name, callback)`` pair) without the
    attributes a fit set (skorch's convention: names ending in ``_``)."""
    if isinstance(item, tuple):
        return item[0], _without_fit_state(item[1])
    if isinstance(item, type):
        return item
    cb = copy.copy(item)
    for name in [k for k in vars(cb) if k.endswith("_") and not k.startswith("__")]:
        delattr(cb, name)
    return cb


class PersistsState:
    """Pickling of ``BaseDeepMLP`` (a mixin): the fitted net as numpy arrays.

    Needs ``_architecture()``, ``_empty_module(n_outputs)`` and
    ``_per_sample_loss()`` from the estimator.
    """

    def __getstate__(self):
        """State without torch objects: the fitted net as numpy arrays (see ``_persist``).

        Taken during the estimator's own fit (from a callback, say), the state
        is the estimator as it was before the call or, once training runs, as
        if the call had stopped after its last finished epoch
        (:func:`~._persist.state_during_fit`).
        """
        state = dict(super().__getstate__())  # may be self.__dict__ itself: copy
        fit_started, training = state.pop(FIT_STARTED, None), state.pop(TRAINING, None)
        state.pop(SERVING, None)
        state.pop(FIT_OWNER, None)
        state.pop("_target_warnings", None)  # (a fit's, said when it completes)
        if fit_started is not None:
            state = state_during_fit(state, fit_started, training, self._architecture())
        net = state.pop("net_", None)
        state.pop("history_", None)
        if net is not None:
            state["_net_state"] = net_to_state(net)
        if state.get("callbacks"):
            # The callbacks as passed, without what the last fit left in them
            # (e.g. an LRScheduler's torch scheduler, which holds the optimizer).
            state["callbacks"] = [_without_fit_state(item) for item in state["callbacks"]]
        return state

    def __setstate__(self, state):
        state = dict(state)
        net_state = state.pop("_net_state", None)
        # Pickles of version 0.1.0 before these parameters existed: their
        # defaults (the float64 output dtype is what those versions returned).
        params = type(self)._get_param_names()  # (label_smoothing: the classifier's)
        for name, default in _ADDED_PARAMS.items():
            if name in params:
                state.setdefault(name, default)
        if net_state is not None:
            state.setdefault("_output_dtype", "float64")
            state.setdefault("reused_layers_", 0)
            state.setdefault("pretrain_loss_curve_", None)
            state.setdefault("numeric_features_", None)
            state.setdefault("_embedding", None)
            net_state["attrs"]["solver_params"].setdefault("nesterovs_momentum", True)
            # The schedule the optimizer's rate follows (states before it was kept:
            # the estimator's, as fitted unless set_params changed it since).
            net_state["attrs"].setdefault("schedule", state["learning_rate"])
        super().__setstate__(state)
        if net_state is not None:
            # (an ensemble's output bias is (n_members, n_outputs))
            n_outputs = net_state["module"]["output.linear.bias"].shape[-1]
            # building the module draws weights
            with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
                module = self._empty_module(n_outputs)
            self.net_ = net_from_state(net_state, module, self._training_loss(module))
            self.history_ = self.net_.history
