"""BaseDeepMLP: shared parameters, constraints and fit/partial_fit/predict plumbing."""

from __future__ import annotations

import functools
import os
import threading
import warnings
from abc import ABCMeta, abstractmethod
from contextlib import nullcontext

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, is_regressor
from sklearn.utils.validation import check_is_fitted, validate_data

from ._checks import ParameterChecks
from ._diagnostics import history_frame
from ._engine.activations import ACTIVATIONS
from ._engine.data import (
    RowSubset,
    TensorData,
    choose_num_threads,
    index_dtype,
    split_rows,
    to_tensor,
    torch_threads,
)
from ._engine.embeddings import EMBEDDINGS
from ._engine.inference import predict_raw, predict_raw_mc, seeded_global_rng, weights_copy
from ._engine.init import INITIALIZERS, VarianceScaling
from ._engine.module import MLP
from ._engine.optim import SOLVERS
from ._ensemble import Ensembles
from ._light_validation import light_validated_X
from ._netbuild import BuildsNetwork
from ._numeric import EMBEDDING_PARAMS, embedding_spec
from ._outcome import fit_outcome, show_setting_warning
from ._persist import (
    FIT_OWNER,
    FIT_STARTED,
    SERVING,
    TRAINING,
    PersistsState,
    history_attributes,
    validation_fingerprint,
)
from ._reuse import KeepsSource, adopted_embedding, reuse_warnings
from ._schedules import SCHEDULES
from ._validation import (
    Integral,
    Interval,
    Options,
    Real,
    StrOptions,
    check_no_missing_targets,
    check_sample_weight,
    check_weight_range,
    fit_seed,
    invalid_parameter,
    is_number,
    resolve_device,
)
from ._valset import check_validation_set


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
# Checks and marks "a fit is running" on an estimator, for all threads.
_FIT_GUARD = threading.Lock()
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


def _output_dtype(X):
    """"float32" for float32 input, "float64" otherwise, as scikit-learn's MLP reports."""
    dtypes = getattr(X, "dtypes", None)  # a DataFrame
    if dtypes is not None:
        return "float32" if all(d == np.float32 for d in dtypes) else "float64"
    return "float32" if getattr(X, "dtype", None) == np.float32 else "float64"


class BaseDeepMLP(ParameterChecks, BuildsNetwork, Ensembles, KeepsSource, PersistsState,
                  BaseEstimator, metaclass=ABCMeta):
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
        "frequency_scale": [Interval(Real, 0, None, closed="neither")],
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

    # ------------------------------------------------------------------- fit
    def _fit(self, X, y, sample_weight=None, *, incremental=False, classes=None,
             validation_set=(None, None, None)):
        """Validate everything, then train; on any failure keep the old state.

        The call builds its attributes on a working copy and publishes them
        only when it succeeds, so a failure leaves the estimator's attributes
        as they were; when the fitted network is being continued
        (``warm_start``, ``partial_fit``), its weights, optimizer state and
        history, which training changes in place, are restored from a
        snapshot.
        """
        # The fit works on its own copy of the attributes (``work``) and
        # publishes them in one step when it succeeds (``self.__dict__ = ...``,
        # atomic): other threads predicting meanwhile see the old model or the
        # new one, never a mix. A failed fit leaves the attributes untouched.
        with _FIT_GUARD:
            if FIT_STARTED in vars(self):
                raise RuntimeError(
                    f"This {type(self).__name__} is already being fitted (in another thread, "
                    "or by a callback of its own fit); a second fit or partial_fit on it "
                    "would corrupt both. Fit a clone (sklearn.base.clone) instead, or wait "
                    "for the first fit to return."
                )
            saved = dict(vars(self))
            # What a pickle taken during this call holds (see __getstate__).
            vars(self)[FIT_STARTED] = saved
        net = saved.get("net_")
        snapshot = None
        work = object.__new__(type(self))
        work.__dict__.update(saved, **{FIT_OWNER: self})
        try:
            if net is not None and (incremental or self.warm_start):
                # The trainer is reused: its settings, weights, optimizer and
                # history are all changed by this call. Predictions meanwhile
                # use a copy of the weights as they are now.
                snapshot = net.rollback_point()
                vars(self)[SERVING] = weights_copy(net.module_)
            pending, interrupted = work._fit_unsafe(
                X, y, sample_weight, incremental=incremental, classes=classes,
                validation_set=validation_set,
            )
        except BaseException:
            if snapshot is not None:
                net.roll_back(snapshot)
            for key in (FIT_STARTED, TRAINING, SERVING):
                vars(self).pop(key, None)
            raise
        finally:
            vars(work).pop(FIT_OWNER, None)
        # Published in one pointer swap. What others set on the estimator during
        # the fit (a callback's attribute, another thread's set_params) stays,
        # unless the fit itself changed that attribute: its value comes last,
        # as if written when the fit returned.
        built = vars(work)
        published = {k: v for k, v in vars(self).items()
                     if k not in (FIT_STARTED, TRAINING, SERVING)}
        for key in saved.keys() - built.keys():  # removed by the fit
            published.pop(key, None)
        published.update({k: v for k, v in built.items()
                          if k not in saved or v is not saved[k]})
        self.__dict__ = published
        # Warnings only once the fit is complete: with warnings turned into
        # errors they must not undo it (as with scikit-learn's MLP).
        for message, category, *once in pending:
            if once and not show_setting_warning(type(self).__name__, message, category):
                continue
            warnings.warn(message, category, stacklevel=3)
        if interrupted is not None:  # Ctrl-C: the caller (a search, a loop) must stop too
            raise KeyboardInterrupt(interrupted)
        return self

    def _fit_unsafe(self, X, y, sample_weight, *, incremental, classes, validation_set):
        continuing = (incremental or self.warm_start) and hasattr(self, "net_")
        if incremental and self.early_stopping:  # as scikit-learn's MLP
            raise ValueError("partial_fit does not support early_stopping=True")
        sizes, decay = self._check_params(continuing)
        device = resolve_device(self, self.device)
        if continuing:
            self._check_same_architecture(incremental)
        X, y_model, sample_weight, n_outputs, rows, user_weight = self._validate_inputs(
            X, y, sample_weight, continuing=continuing, incremental=incremental,
            classes=classes,
        )
        own = check_validation_set(self, *validation_set, incremental=incremental)
        if not continuing:
            self._seed, self._init_random_state = fit_seed(self.random_state)
            self._n_fit_calls = 0
        # A fresh, reproducible seed for every call (fit, warm start, partial_fit).
        seq = np.random.SeedSequence([self._seed, self._n_fit_calls])
        call_seed = int(seq.generate_state(1)[0])
        stochastic = SOLVERS[self.solver].stochastic
        rows, validation, fingerprint, carry = self._validation_for_call(
            X, y_model, sample_weight, rows, own, continuing=continuing,
            early=self.early_stopping and not incremental and stochastic)
        if not continuing:  # fixed by the first fit (init_from's when its layers are reused)
            self._embedding = adopted_embedding(self, X.shape[1]) or embedding_spec(
                self, X, rows)
            self.numeric_features_ = (
                None if self.numeric_embedding is None else
                np.array(() if self._embedding is None else self._embedding.numeric, dtype=int))
        n_train = X.shape[0] if rows is None else len(rows)
        batch_size = self._effective_batch_size(n_train) if stochastic else n_train

        cuda_devices = [device.index or 0] if device.type == "cuda" else []
        n_before = len(self.net_.history) if continuing else 0
        threads = torch.get_num_threads()
        if device.type == "cpu":
            # At most the machine's CPUs: more only contend, and far more (10**6)
            # exhaust the thread library's memory and kill the process.
            threads = (min(self.n_threads, os.cpu_count() or 1) if self.n_threads
                       else choose_num_threads(batch_size, X.shape[1], sizes, threads))
        with torch_threads(threads):
            # Building (initialization draws, pretraining) uses torch's seeded
            # global generators; training only if the network or a user's
            # callback draws random numbers, so other fits run in parallel threads.
            with seeded_global_rng(call_seed, cuda_devices):
                X_t = X if sp.issparse(X) else to_tensor(X, device)
                pretraining = None
                if self.pretrain is not None and not continuing:
                    def pretraining():  # every row with a weight, labeled or not
                        return self._pretraining_data(X_t, user_weight, device)
                net = self._prepare_net(
                    X.shape[1], n_outputs, device, batch_size, decay, validation, incremental,
                    continuing, pretraining=pretraining, seed=call_seed, carry=carry,
                )
                data = TensorData(
                    X_t,
                    to_tensor(y_model, device),
                    to_tensor(sample_weight, device, torch.float32),
                    None if rows is None else to_tensor(rows, device, index_dtype(X.shape[0])),
                    uniform_weights=bool(np.all(sample_weight == 1)),
                )
            random = net.draws_random_numbers()
            owner = vars(self).get(FIT_OWNER)
            if owner is not None:  # for a pickle of the estimator taken meanwhile
                vars(owner)[TRAINING] = (net, n_before, vars(self))
            with seeded_global_rng(call_seed, cuda_devices) if random else nullcontext():
                net.partial_fit(X, y_model, data=data, seed=self._seed)

        return self._record_call(net, n_before, validation, fingerprint, X, rows, decay,
                                 incremental=incremental, continuing=continuing)

    def _validation_for_call(self, X, y_model, sample_weight, rows, own, *, continuing, early):
        """``(training rows, validation set, its fingerprint, carried stopping state)``.

        The validation set is the user's ``X_val`` (every row of ``X`` trains),
        or with early stopping a split of ``X`` (``early``), or ``None``. A
        continuing call carries the stopping rule's counters over, and the best
        validation score only when it validates on the same rows.
        """
        validation = fingerprint = None
        if own is not None:  # the user's X_val, y_val: every row of X trains
            validation = own
            fingerprint = validation_fingerprint(own[0], np.arange(len(own[1])), *own[1:])
        elif early:
            # (scikit-learn's early stopping applies to mini-batch solvers only)
            # One split per network (the first call's seed): a warm start on
            # the same data validates on the same rows and never on rows it
            # trained on before.
            split_seed = int(np.random.SeedSequence([self._seed, 0]).generate_state(1)[0])
            rows, val_rows = self._validation_split(rows, y_model, split_seed)
            validation = (
                RowSubset(X, val_rows), y_model[val_rows], sample_weight[val_rows]
            )
            fingerprint = validation_fingerprint(X, val_rows, y_model, sample_weight)
        carry = None
        if continuing:
            count, best_loss, best_score = (*getattr(self, "_convergence_carry", (0, np.inf)),
                                            None)[:3]
            if fingerprint is None or fingerprint != getattr(self, "_validation_fp", None):
                best_score = None  # scores on other rows (or none) do not compare
            carry = (count, best_loss, best_score)
        return rows, validation, fingerprint, carry

    def _record_call(self, net, n_before, validation, fingerprint, X, rows, decay, *,
                     incremental, continuing):
        """The fitted attributes of a finished call, and what it reports.

        Returns ``(pending warnings, interrupt message or None)``.
        """
        n_done = len(net.history) - n_before
        kept = ("of the best validation score" if validation is not None
                else "of the last complete epoch")
        if net.stop_reason == "interrupted" and n_done == 0:
            # Nothing of this call is worth keeping: _fit restores the estimator
            # as it was before the call (unfitted, or the previous model).
            raise KeyboardInterrupt(
                "Training was interrupted before its first epoch finished; the estimator "
                "is as it was before this call."
            )
        monitor = dict(net.callbacks_)["convergence"]
        best_score = (monitor.best_score_ if validation is not None
                      and np.isfinite(monitor.best_score_) else None)
        self._n_fit_calls += 1
        self.net_ = net
        self._fitted_architecture = self._architecture()
        self._fitted_embedding_params = self._embedding_params()
        previous = getattr(self, "best_validation_score_", None) if continuing else None
        vars(self).update(history_attributes(
            net.history, n_done, len(net.module_.hidden),
            best_score if validation is not None else previous))
        # scikit-learn's counter (its tests read it): epochs in a row without
        # an improvement of at least tol when this call ended.
        self._no_improvement_count = monitor.no_improvement_count_
        self._convergence_carry = (monitor.no_improvement_count_, monitor.best_loss_,
                                   best_score)
        self._validation_fp = fingerprint
        self.engine_, self.engine_reason_ = net.engine, net.engine_reason
        # (what the settings alone cause is said once per process: "once")
        pending = [*vars(self).pop("_target_warnings", []),
                   *((msg, UserWarning, "once") for msg in self._unused_settings())]
        if not continuing:
            pending += [(msg, UserWarning, "once") for msg in (
                *self._self_normalization_warnings(X, rows, decay), *reuse_warnings(self))]
        interrupted = fit_outcome(self, net, n_done, kept, pending, incremental=incremental,
                                  continuing=continuing)
        return pending, interrupted

    def _validate_inputs(self, X, y, sample_weight, *, continuing, incremental, classes):
        """Validated float32 ``X``, model targets, sample weights, output width, rows.

        Samples with zero weight are left out of training (``rows`` lists the
        others, or is ``None`` when all count): that is exactly equivalent to
        a zero weight in the loss, and keeps them out of BatchNorm statistics.
        ``X`` is never copied beyond the one float32 conversion.
        """
        if y is not None:
            check_no_missing_targets(y)
        if not continuing:  # the dtype coefs_ and regression outputs are reported in
            self._output_dtype = _output_dtype(X)
        X, y = validate_data(
            self, X, y, reset=not continuing, dtype=np.float32, multi_output=True,
            y_numeric=is_regressor(self), accept_sparse="csr",
        )
        self._target_warnings = []  # what _prepare_y finds worth saying, said after the fit
        y_model, extra_weight, n_outputs = self._prepare_y(
            y, continuing=continuing, incremental=incremental, classes=classes
        )
        if continuing and n_outputs != self.net_.module_.output.linear.out_features:
            raise ValueError(
                f"y has {n_outputs} outputs but the fitted network has "
                f"{self.net_.module_.output.linear.out_features}."
            )
        user_weight = sample_weight = check_sample_weight(sample_weight, X)
        if extra_weight is not None:  # class weights (checked in float64, applied in float32)
            check_weight_range(sample_weight.astype(np.float64) * extra_weight,
                               "sample_weight times class_weight")
            sample_weight = sample_weight * extra_weight.astype(np.float32)
        keep = sample_weight > 0
        rows = None if keep.all() else np.flatnonzero(keep)
        if rows is not None and len(rows) == 0:
            raise ValueError("All sample weights are zero: there is nothing to fit.")
        self._check_target_scale(y_model, sample_weight)
        return X, y_model, sample_weight, n_outputs, rows, user_weight

    def _check_target_scale(self, y_model, sample_weight):
        """Raise when the targets are too large to train on in float32 (regressors)."""

    def _pretraining_data(self, X_t, user_weight, device):
        """The autoencoder's data: every row of ``X`` with a non-zero weight, as its own target."""
        keep = user_weight > 0
        rows = None if keep.all() else np.flatnonzero(keep)
        return TensorData(
            X_t, None if sp.issparse(X_t) else X_t, to_tensor(user_weight, device, torch.float32),
            None if rows is None else to_tensor(rows, device, index_dtype(X_t.shape[0])),
            uniform_weights=bool(np.all(user_weight == 1)),
        )

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

    def _validation_loss(self, raw, y_model, sample_weight):
        """Weighted mean loss (no penalty) of raw outputs: the history's ``valid_loss``."""
        with torch.no_grad():
            losses = self._per_sample_loss()(torch.from_numpy(raw), torch.from_numpy(y_model))
        return float(np.average(losses.numpy(), weights=sample_weight))

    def _validation_split(self, rows, y_model, seed):
        """Split the training rows (``None``: all) into training and validation indices."""
        if rows is None:
            rows = np.arange(len(y_model), dtype=np.int32 if len(y_model) < 2**31 else np.int64)
        n = len(rows)
        n_val = int(np.ceil(self.validation_fraction * n))
        if n - n_val < 1:
            raise ValueError(
                f"early_stopping with validation_fraction={self.validation_fraction} "
                f"cannot split {n} samples into a training and a validation set."
            )
        if n_val < 2:  # scikit-learn's rule and message: one sample cannot be scored
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the "
                f"size of your dataset (early_stopping would hold out {n_val} of {n} "
                "samples)."
            )
        labels = self._stratify(y_model)
        return split_rows(rows, n_val, labels, seed)

    def _effective_batch_size(self, n_samples):
        if self.batch_size == "auto":
            size = min(200, n_samples)
        else:
            size = self.batch_size
            if size > n_samples:
                warnings.warn(
                    f"Got batch_size={size} larger than the {n_samples} training samples; "
                    "it is clipped to the number of samples.", stacklevel=2
                )
                size = n_samples
        if (self.batch_norm is not None or self.batch_norm_input) and size < 2:
            raise ValueError(
                "BatchNorm needs at least 2 samples per training batch; got "
                f"batch_size={size} (n_samples = {n_samples})."
            )
        return size

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
