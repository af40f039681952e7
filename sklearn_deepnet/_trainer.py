"""The trainer: a skorch ``NeuralNet`` that runs the fast training steps.

One :class:`TrainingNet` per fitted estimator (``est.net_``), built by the
first ``fit`` and reused by warm starts and ``partial_fit``. It keeps what
skorch is good at: callbacks and their events, the ``History``,
``save_params``/``load_params``, device handling. It replaces skorch's data
path and train step, which cost more than the arithmetic on small MLPs: the
data are tensors converted once (see :mod:`._engine`), and each epoch is one
call to a step's ``run_epoch`` (see :mod:`._engine.steps`).

Callback events, in order, and what they receive besides the net:

- ``on_train_begin(X, y)`` once per fit call;
- ``on_epoch_begin(dataset_train, dataset_valid)`` (a
  :class:`~._engine.TensorData`; the validation split as a skorch
  ``Dataset``, or ``None`` without early stopping);
- ``on_batch_begin(batch, training=True)`` and
  ``on_batch_end(batch, training=True, loss[, y_pred])``, with ``batch =
  (X_batch, y_batch)`` tensors, ``loss`` a 0-d tensor and ``y_pred`` the
  batch's raw outputs, passed when a callback asks for them
  (:func:`~._events.wants_outputs`); only fired when some callback
  implements a batch event, and then the batch records get ``train_loss``
  (see :class:`~._events.BatchEvents`); they always hold
  ``train_batch_size``;
- ``on_grad_computed(named_parameters, batch, training=True)`` between the
  backward pass and the optimizer step (on CUDA this trains without a graph);
- with a validation split, the same batch events with ``training=False``
  over the validation rows (:func:`~._events.validation_epoch`);
- ``on_epoch_end(dataset_train, dataset_valid)``, after ``train_loss`` is in
  ``net.history`` (the estimator's ``convergence`` callback, the first one,
  adds the validation records);
- ``on_train_end(X, y)``, however training stopped (not when an exception
  escapes the fit, as in skorch).

A callback may read and change ``net.module_`` (in place), the optimizer's
``param_groups`` (learning rate, momentum, ...: read at every step on every
path) and ``net.history``; changing which parameters train (``requires_grad``, e.g.
``MLP.freeze_``) in ``on_train_begin`` or ``on_epoch_begin`` rebuilds the
training step for the new set. Raising ``KeyboardInterrupt`` from a callback
stops training the way skorch's ``EarlyStopping`` does: at ``on_epoch_end``
the epoch is kept, elsewhere the unfinished epoch is rolled back. A real
Ctrl-C (SIGINT) is told apart from that and rolls back the epoch in progress.
"""

from __future__ import annotations

import copy
import logging
import math

import numpy as np
import scipy.sparse as sp
import torch
from skorch import NeuralNet
from skorch.callbacks import EpochTimer, PrintLog

from ._callbacks import ProgressBar
from ._engine.data import Batches, TensorData, to_tensor
from ._engine.fast_step import ManualStep, kernels_used, layout_signature
from ._engine.graph_step import GraphStep
from ._engine.inference import predict_raw
from ._engine.kernels import kernel_fallbacks, optimizer_load_state_dict, optimizer_state_dict
from ._engine.lbfgs import LbfgsStep
from ._engine.optim import (
    SOLVERS,
    build_optimizer,
    complete_momentum_buffers,
    separate_step_counters,
)
from ._engine.select import select_step
from ._engine.steps import EagerStep, Regularization
from ._events import (
    BATCH_EVENTS,
    BatchEvents,
    dispatch,
    implements_event,
    validation_dataset,
    validation_epoch,
)
from ._interrupt import CallbackStop, SigintWatch

__all__ = ["BATCH_EVENTS", "OWN_CALLBACKS", "TrainingNet", "implements_event"]

logger = logging.getLogger("sklearn_deepnet")

# The estimator's own callbacks (none draws random numbers); reserved names.
OWN_CALLBACKS = ("epoch_timer", "convergence", "schedule", "freeze", "diagnostics", "progress")


def _floats_in_history_row(row):
    """Replace 0-d tensors in a history row (and its batch records) by floats.

    E.g. skorch's ``LRScheduler`` records the learning rate, which is a
    device tensor while a CUDA graph trains: the history must stay plain
    values (JSON, pickles that load without the device).
    """
    for record in [row, *row.get("batches", ())]:
        for key, value in record.items():
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                record[key] = value.item()


def _seed_epoch(seed, epoch, generator, global_rng):
    """Seed epoch number ``epoch``'s row order and CPU randomness (dropout) from ``seed``.

    Seeding by epoch number, not by call, makes ``N`` calls to ``partial_fit``
    train exactly like one ``fit`` of ``N`` epochs. With ``global_rng`` (the
    network draws random numbers: dropout) torch's CPU generator is reseeded
    too; the caller holds it (``seeded_global_rng``). Without, it is not
    touched: such fits run in parallel threads without taking the lock.
    """
    state = np.random.SeedSequence([seed, epoch]).generate_state(2)
    generator.manual_seed(int(state[0]))
    if global_rng:
        torch.default_generator.manual_seed(int(state[1]))


def _trainable(module):
    """Which parameters train: the set a training step is built for."""
    return tuple(p.requires_grad for p in module.parameters())


def _plain(value):
    return value.item() if isinstance(value, torch.Tensor) else float(value)


class TrainingNet(NeuralNet):
    """skorch ``NeuralNet`` running this package's training steps.

    Works in the network's own terms: inputs are float arrays, targets are
    what the criterion consumes (int64 class indices for a multiclass
    criterion, float arrays of shape ``(n, n_outputs)`` otherwise) and
    :meth:`predict` / :meth:`predict_proba` return the raw outputs (logits).
    ``fit``, ``history``, ``save_params`` and ``load_params`` are skorch's
    (the last two keep the optimizer a plain torch optimizer: separate step
    counters, float learning rates); :meth:`partial_fit` follows skorch's
    with the interrupt handling described above.

    Parameters
    ----------
    module : MLP
        Already initialized network.
    criterion : PerSampleLoss
        Per-sample loss ``criterion(outputs, y)``.
    solver : str
        Key of the optimizer table.
    solver_params : dict
        Hyperparameters handed to the optimizer factory.
    regularization : Regularization, default=Regularization()
        Penalty, clipping and max-norm.
    shuffle : bool, default=True
        Shuffle the training data each epoch.
    min_batch : int, default=1
        Smallest allowed trailing batch (2 with BatchNorm).
    fast : bool, default=True
        Use the device's fast training step when the configuration allows.
    verbose : int, default=0
        skorch's ``verbose``: whether skorch's callbacks print (``PrintLog``'s
        table, ``EarlyStopping``'s and ``Checkpoint``'s messages). A
        ``PrintLog`` among the callbacks makes it at least 1 (skorch's default):
        passing one asks for its table.
    **kwargs
        Passed to ``skorch.NeuralNet`` (``batch_size``, ``max_epochs``,
        ``callbacks``, ``device``).

    Attributes
    ----------
    engine : str
        The training step used by the last fit: ``"cpu-manual"``,
        ``"cuda-graph"`` or ``"eager"``.
    engine_reason : str or None
        Why the device's fast path was not used.
    stop_reason : str or None
        Why the last fit call stopped before ``max_epochs``: a convergence
        message, ``"interrupted"``, ``"diverged"`` or ``"callback NAME"``.
    """

    def __init__(
        self, module, criterion, *, solver, solver_params, regularization=None,
        shuffle=True, min_batch=1, fast=True, verbose=0, **kwargs,
    ):
        super().__init__(
            module, criterion, train_split=None, verbose=verbose, predict_nonlinearity=None,
            **kwargs,
        )
        self.solver = solver
        self.solver_params = solver_params
        self.regularization = regularization or Regularization()
        self.shuffle = shuffle
        self.min_batch = min_batch
        self.fast = fast
        self.stop_reason = None
        self.engine = None
        self.engine_reason = None
        self._sigint = None
        # ((weights, optimizer state), history rows) at the start of the epoch
        # in progress; None between epochs (read by _persist.net_to_state).
        self.epoch_start = None
        self.step_built_for = None  # what the current step was built for (_step_choice)

    def get_default_callbacks(self):
        """Only the epoch timer: losses are recorded by the epoch loop."""
        return [("epoch_timer", EpochTimer())]

    def initialize_optimizer(self, triggered_directly=None):
        """Build the optimizer from the solver table (capturable on CUDA)."""
        device_type = torch.device(self.device).type
        self.optimizer_ = build_optimizer(
            self.solver, self.module_.named_parameters(), self.solver_params,
            device_type=device_type,
            capturable=device_type == "cuda" and SOLVERS[self.solver].graph_safe,
        )
        return self

    # -------------------------------------------------------------- events
    def notify(self, method_name, **cb_kwargs):
        """Call ``method_name`` on the net, then on every callback in order.

        A ``KeyboardInterrupt`` raised by a callback during a fit, without a
        SIGINT having arrived, is that callback asking to stop.
        """
        getattr(self, method_name)(self, **cb_kwargs)
        for name, cb in self.callbacks_:
            try:
                dispatch(self, cb, method_name, cb_kwargs)
            except KeyboardInterrupt:
                if self._sigint is None or self._sigint.seen:
                    raise
                raise CallbackStop(name, method_name) from None

    def draws_random_numbers(self):
        """Whether training may draw from torch's global generators.

        True when the network has layers that do (dropout, RReLU, unknown
        modules) or when a user's callback runs (it may draw, e.g. gradient
        noise): such training is seeded per epoch and holds the generators.
        """
        draws = getattr(self.module_, "draws_random_numbers", None)
        if not callable(draws) or draws():
            return True
        return any(name not in OWN_CALLBACKS for name, _ in self.callbacks_)

    def initialize_callbacks(self):
        """skorch's, then ``verbose`` at least 1 when a ``PrintLog`` will print."""
        super().initialize_callbacks()
        if any(isinstance(cb, PrintLog) for _, cb in self.callbacks_):
            self.verbose = max(int(self.verbose), 1)
        return self

    def _wants_batch_events(self):
        return any(implements_event(cb, e) for _, cb in self.callbacks_ for e in BATCH_EVENTS)

    # --------------------------------------------------------------- state
    def snapshot_state(self):
        """Copies of the weights and optimizer state (restored by :meth:`restore_state`)."""
        module = {k: v.detach().clone() for k, v in self.module_.state_dict().items()}
        optimizer = copy.deepcopy(optimizer_state_dict(self.optimizer_))
        for group in optimizer["param_groups"]:  # a CUDA graph's tensor rate -> float
            if isinstance(group.get("lr"), torch.Tensor):
                group["lr"] = float(group["lr"])
        return module, optimizer

    def rollback_point(self):
        """What :meth:`roll_back` restores: everything a call may change.

        The trainer's attributes (the call's settings, callbacks, criterion and
        optimizer objects), copies of the weights and optimizer state, and the
        length of the history.
        """
        return dict(vars(self)), self.snapshot_state(), len(self.history)

    def roll_back(self, point):
        """Undo everything since :meth:`rollback_point` (a call that failed).

        The module goes back to the device it was on, with no layer frozen
        by the failed call, and the epochs that call added leave the history.
        """
        settings, state, n_epochs = point
        vars(self).clear()
        vars(self).update(settings)
        self.module_.to(self.device)  # a device change may have moved it
        self.module_.freeze_(0)  # a failed call may have left layers frozen
        self.restore_state(state)
        del self.history[n_epochs:]

    def restore_state(self, snapshot):
        """Load weights and optimizer state saved by :meth:`snapshot_state`."""
        module, optimizer = snapshot
        self.module_.load_state_dict(module)
        optimizer_load_state_dict(self.optimizer_, optimizer)
        # The snapshot may come from a time when step counters were shared
        # (direct fused Adam).
        separate_step_counters(self.optimizer_)

    def save_params(self, *args, **kwargs):
        """skorch's ``save_params``, writing float learning rates (see ``load_params``)."""
        groups = self.optimizer_.param_groups if self.initialized_ else []
        rates = [g["lr"] for g in groups]
        try:
            for group, lr in zip(groups, rates, strict=True):
                if isinstance(lr, torch.Tensor):  # a CUDA graph's rate: save a float
                    group["lr"] = lr.item()
            return super().save_params(*args, **kwargs)
        finally:
            for group, lr in zip(groups, rates, strict=True):
                group["lr"] = lr

    def load_params(self, *args, **kwargs):
        """skorch's ``load_params``; the optimizer gets one step counter per parameter.

        A checkpoint written during training may hold the step counters the
        direct fused-Adam step shares within a group; loaded as is, every
        counter would advance once per parameter.
        """
        super().load_params(*args, **kwargs)
        if self.initialized_:
            separate_step_counters(self.optimizer_)
        return self

    def _finite_state(self):
        """Whether every weight and BatchNorm statistic is finite (one host read)."""
        tensors = [t for t in self.module_.state_dict().values() if t.is_floating_point()]
        return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())

    # ------------------------------------------------------------ training
    def tensor_data(self, X, y, sample_weight=None):
        """Training data for :meth:`fit_loop` from arrays in the network's terms."""
        X = (sp.csr_matrix(X, dtype=np.float32) if sp.issparse(X)
             else np.asarray(X, dtype=np.float32))
        if self.criterion_.class_indices:
            y = np.asarray(y, dtype=np.int64).reshape(-1)
        else:
            y = np.asarray(y, dtype=np.float32).reshape(X.shape[0], -1)
        w = np.ones(X.shape[0], np.float32) if sample_weight is None else sample_weight
        uniform = sample_weight is None
        return TensorData(X if sp.issparse(X) else to_tensor(X, self.device),
                          to_tensor(y, self.device),
                          to_tensor(w, self.device, torch.float32), uniform_weights=uniform)

    def _step_choice(self, data, needs_gradients, needs_outputs=False):
        """``(what the step is built for, step name, reason)``.

        What it is built for: the module and optimizer objects, which
        parameters train, and for the hand-written step everything it reads
        from the module when built (:func:`~._engine.fast_step.layout_signature`).
        """
        name, reason = select_step(self.module_, self.criterion_, self.device,
                                   SOLVERS[self.solver], self.fast, needs_gradients,
                                   sparse=data.sparse, needs_outputs=needs_outputs)
        layout = layout_signature(self.module_) if name == "cpu-manual" else None
        built_for = (id(self.module_), id(self.optimizer_), _trainable(self.module_), name,
                     layout)
        return built_for, name, reason

    def _make_step(self, data, needs_gradients, needs_outputs=False):
        # Layers that start training (unfrozen) may lack optimizer state.
        complete_momentum_buffers(self.optimizer_)
        self.step_built_for, name, reason = self._step_choice(data, needs_gradients,
                                                              needs_outputs)
        args = (self.module_, self.criterion_, self.optimizer_, self.regularization)
        if not SOLVERS[self.solver].stochastic:
            self.engine, self.engine_reason = "lbfgs", None
            return LbfgsStep(*args)
        if name == "cpu-manual":
            step = ManualStep(*args, uniform_weights=data.uniform_weights)
        else:
            step = EagerStep(*args)
        if name == "cuda-graph":
            step = GraphStep(step, data, self.batch_size)
        self.engine, self.engine_reason = name, reason
        if reason is not None:
            logger.info("Training step: eager (%s).", reason)
        return step

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """Train for ``max_epochs`` epochs continuing from the current state.

        As skorch's: ``on_train_begin``, the epochs, ``on_train_end``; a
        Ctrl-C ends training (``stop_reason == "interrupted"``) without an
        exception (unless this fit runs inside another fit, which must stop
        too). Unlike skorch's, a callback's ``KeyboardInterrupt`` is a stop,
        and both are told apart (see the module docstring). ``X`` and ``y``
        are arrays in the network's terms, or ``data=`` a :class:`TensorData`
        is passed through ``fit_params``.
        """
        if not self.initialized_:
            self.initialize()
        fit_params.pop("_routing_method", None)  # skorch's fit passes it
        self.stop_reason = None
        with SigintWatch() as watch:
            self._sigint = watch
            try:
                try:
                    self.notify("on_train_begin", X=X, y=y)
                    self.fit_loop(X, y, **fit_params)
                except CallbackStop as stop:  # raised in on_train_begin
                    self.stop_reason = f"callback {stop.name}"
                except KeyboardInterrupt:
                    self.stop_reason = "interrupted"
                    if watch.nested:  # the fit around this one must stop too
                        raise
                if self._end_training(X, y) and watch.nested:
                    raise KeyboardInterrupt
            except BaseException:
                # on_train_end does not run when training raises (as in skorch):
                # close the progress bar here rather than leave it to the collector
                for _, cb in self.callbacks_:
                    if isinstance(cb, ProgressBar):
                        cb.on_train_end(self)
                raise
            finally:
                self._sigint = None
        return self

    def _end_training(self, X, y):
        """``on_train_end`` on the net and every callback, whatever interrupts it.

        Every callback's ``on_train_end`` runs: a callback's stop there
        (``KeyboardInterrupt`` without SIGINT) ends only that callback's
        handler. After a Ctrl-C the remaining handlers still run (the epochs
        are complete; ``stop_reason`` becomes ``"interrupted"``), and the
        estimator's own callbacks, which restore the best weights, unfreeze
        the layers and close the progress bar, are run again if the Ctrl-C
        cut one short: what the fit reports about its weights stays true.
        Returns whether a Ctrl-C arrived.
        """
        interrupted = False
        self.on_train_end(self, X=X, y=y)
        for name, cb in self.callbacks_:
            for attempt in (1, 2):
                try:
                    cb.on_train_end(self, X=X, y=y)
                except KeyboardInterrupt:
                    if self._sigint is not None and not self._sigint.seen:
                        break  # a callback's stop: training has ended anyway
                    interrupted = True
                    if name in OWN_CALLBACKS and attempt == 1:
                        continue  # idempotent: finish its job
                break
        if interrupted:
            self.stop_reason = "interrupted"
        return interrupted

    def fit_loop(self, X, y=None, epochs=None, data=None, seed=None, **fit_params):
        """Run up to ``epochs`` epochs (see the module docstring for the events).

        With ``seed``, epoch ``k`` of the history (counting earlier calls) is
        seeded from ``(seed, k)``; without, the row order comes from torch's
        global RNG. Stops early when a callback sets ``stop_reason`` or raises
        ``KeyboardInterrupt``. Three events roll the network back to the end
        of the last finished epoch (weights and optimizer state) and stop: a
        Ctrl-C (``stop_reason`` ``"interrupted"``; the interrupt propagates to
        :meth:`partial_fit`), a non-finite epoch loss, weight or BatchNorm
        statistic (``"diverged"``), and a callback's stop anywhere but in
        ``on_epoch_end`` (``"callback NAME"``); the rolled-back epoch leaves
        no record in the history.
        """
        if data is None:
            data = self.tensor_data(X, y)
        generator = torch.Generator()
        if seed is None:  # like skorch's shuffling: from torch's global RNG
            generator.manual_seed(int(torch.randint(2**62, ())))
        epochs = self.max_epochs if epochs is None else epochs
        batches = Batches(data, self.batch_size, self.shuffle, generator, self.min_batch)
        self.module_.train()
        events = BatchEvents(self) if self._wants_batch_events() else None
        needs = (events is not None and events.wants_gradients,
                 events is not None and events.wants_outputs)
        step = self._make_step(data, *needs)
        dataset_valid = validation_dataset(self)
        global_rng = self.draws_random_numbers()
        released = False

        def roll_back(snapshot, n_rows):
            nonlocal released
            step.release()  # before restoring: it rewrites optimizer state
            released = True
            self.restore_state(snapshot)
            del self.history[n_rows:]  # the rolled-back epoch leaves no record

        try:
            for _ in range(epochs):
                good, n_rows = None, len(self.history)
                if seed is not None:
                    _seed_epoch(seed, n_rows, generator, global_rng)
                try:
                    good = self.snapshot_state()
                    self.epoch_start = (good, n_rows)
                    self.notify("on_epoch_begin", dataset_train=data,
                                dataset_valid=dataset_valid)
                    if self._step_choice(data, *needs)[0] != self.step_built_for:
                        # A callback froze or unfroze parameters (e.g. the
                        # estimator's unfreeze_after), attached a hook or a
                        # parametrization, replaced a layer, the module or the
                        # optimizer, changed a layer's settings or a weight's
                        # storage: the step is built for the module as it was.
                        step.release()
                        step = self._make_step(data, *needs)
                    self.history.record("lr", _plain(self.optimizer_.param_groups[0]["lr"]))
                    total = step.run_epoch(batches, events)
                    if events is not None:
                        events.end_epoch()
                    else:  # skorch's callbacks expect a record per batch
                        self.history[-1]["batches"].extend(
                            {"train_batch_size": stop - start} for start, stop in batches.spans()
                        )
                    self.history.record("train_loss", float(total) / len(data))
                    self.history.record("train_batch_count", len(batches))
                    self.history.record("train_samples", len(data))
                    for key, value in step.epoch_records.items():
                        self.history.record(key, value)
                    self.epoch_start = None  # the epoch's records are complete
                    if not (math.isfinite(self.history[-1, "train_loss"])
                            and self._finite_state()):
                        self.stop_reason = "diverged"
                        roll_back(good, n_rows)
                        break
                    validation_epoch(self, dataset_valid, events)
                    self.notify("on_epoch_end", dataset_train=data, dataset_valid=dataset_valid)
                    _floats_in_history_row(self.history[-1])
                except CallbackStop as stop:
                    self.stop_reason = f"callback {stop.name}"
                    if stop.event != "on_epoch_end":  # the epoch is unfinished
                        roll_back(good, n_rows)
                    break
                except KeyboardInterrupt:
                    # Wherever it lands (training, validation scoring, the
                    # snapshot), the epoch in progress is undone.
                    self.stop_reason = "interrupted"
                    if good is not None:
                        roll_back(good, n_rows)
                    raise
                if self.stop_reason is not None:
                    break
        finally:
            self.epoch_start = None
            if step.fallback_reason is not None:
                self.engine, self.engine_reason = "eager", step.fallback_reason
            # The private kernels this fit could use that this process does not
            # (e.g. the fused Adam kernel failed its check: optimizer.step() ran)
            notes = kernel_fallbacks(kernels_used(self.module_, self.optimizer_))
            if notes:
                said = "public code instead of private torch kernels: " + "; ".join(
                    f"{kernel} ({why})" for kernel, why in sorted(notes.items()))
                self.engine_reason = said if self.engine_reason is None else (
                    f"{self.engine_reason}; {said}")
            if not released:
                step.release()
        return self

    # ---------------------------------------------------------- prediction
    def predict_proba(self, X):
        """Raw network outputs (logits for classifiers) in evaluation mode.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_outputs), float32
        """
        X = X if sp.issparse(X) else np.asarray(X, dtype=np.float32)
        return predict_raw(self.module_, X, self.device)
