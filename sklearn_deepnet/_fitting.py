"""One call of ``fit``, ``partial_fit`` or a warm start: from the inputs to the fitted model.

:class:`RunsFits` is a mixin of ``BaseDeepMLP``, kept apart from ``_base.py``
(the parameters and their constraints, the hooks the subclasses supply, the
network of the fitted architecture, the fitted attributes and the
predictions). It holds what one call does, in the order it does it:

- ``_fit``: refuses a second fit of an estimator that is already fitting,
  runs the call on a working copy of the estimator's attributes and
  publishes them in one step when it succeeds; on any failure the estimator
  is as it was before the call (a continued network is rolled back from its
  snapshot), and warnings are emitted only once the fit is complete;
- ``_fit_unsafe``: the call itself. Parameter checks; the inputs
  (``_validate_inputs``: ``X`` converted to float32 once, the subclass's
  targets, sample and class weights, zero-weight rows left out); the call's
  seed; the validation set (``_validation_for_call``: the user's ``X_val``,
  or with early stopping a split of the training rows,
  ``_validation_split``); the numeric embedding of a first fit; the batch
  size (``_effective_batch_size``) and the thread count; the trainer
  (``BuildsNetwork._prepare_net``) and its epochs;
- ``_record_call``: the fitted attributes of a finished call (history,
  stopping state, engine) and the warnings it reports.

Also here, what the trainer calls back: the autoencoder's data
(``_pretraining_data``) and the history's ``valid_loss``
(``_validation_loss``).
"""

from __future__ import annotations

import os
import threading
import warnings
from contextlib import nullcontext

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import is_regressor
from sklearn.utils.validation import validate_data

from ._engine.data import (
    RowSubset,
    TensorData,
    choose_num_threads,
    index_dtype,
    split_rows,
    to_tensor,
    torch_threads,
)
from ._engine.inference import seeded_global_rng, weights_copy
from ._engine.optim import SOLVERS
from ._numeric import embedding_spec
from ._outcome import fit_outcome, show_setting_warning
from ._persist import (
    FIT_OWNER,
    FIT_STARTED,
    SERVING,
    TRAINING,
    history_attributes,
    validation_fingerprint,
)
from ._reuse import adopted_embedding, reuse_warnings
from ._validation import (
    check_no_missing_targets,
    check_sample_weight,
    check_weight_range,
    fit_seed,
    resolve_device,
)
from ._valset import check_validation_set

__all__ = ["RunsFits"]


# Checks and marks "a fit is running" on an estimator, for all threads.
_FIT_GUARD = threading.Lock()


def _output_dtype(X):
    """"float32" for float32 input, "float64" otherwise, as scikit-learn's MLP reports."""
    dtypes = getattr(X, "dtypes", None)  # a DataFrame
    if dtypes is not None:
        return "float32" if all(d == np.float32 for d in dtypes) else "float64"
    return "float32" if getattr(X, "dtype", None) == np.float32 else "float64"


class RunsFits:
    """One call of ``fit``, ``partial_fit`` or a warm start (mixed into ``BaseDeepMLP``).

    Needs the estimator's parameters and hooks (``_prepare_y``,
    ``_prepare_y_val``, ``_per_sample_loss``, ``_stratify``,
    ``_architecture()``, ``_embedding_params()``), the checks of
    ``ParameterChecks`` (``_check_params``, ``_check_same_architecture``,
    the warnings of unused settings) and ``_prepare_net`` (``BuildsNetwork``).
    """

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
