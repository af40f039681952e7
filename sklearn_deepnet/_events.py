"""skorch's callback contract on the trainer: batch events, validation events, scoring.

The trainer (:mod:`._trainer`) runs its own epoch loop; this module gives the
callbacks what skorch's loop (``NeuralNet.run_single_epoch``) gives them:

- :class:`BatchEvents`: ``on_batch_begin(batch, training=True)``,
  ``on_grad_computed`` and ``on_batch_end(batch, training=True, loss)``
  around every training batch, with ``y_pred`` (the batch's raw outputs,
  detached) only when some callback asks for it (:func:`wants_outputs`): the
  steps then keep the outputs they compute anyway, otherwise nothing changes
  on their path;
- :func:`validation_epoch`: with a validation split (``early_stopping=True``),
  after the training batches and before ``on_epoch_end``,
  ``on_batch_begin``/``on_batch_end`` with ``training=False`` over the
  validation rows in batches of ``batch_size``, with the outputs the
  early-stopping rule scores (computed once per epoch);
- :class:`ScoringView`: skorch's scoring callbacks (``EpochScoring``,
  ``BatchScoring``) call ``net.predict`` / ``net.predict_proba`` / ``net.score``;
  the trainer's return raw outputs, so they get this view of the trainer
  instead, whose predictions are the estimator's, in the network's terms
  (class indices, probabilities, regression values);
- :func:`dispatch`: one callback's handler, with the view for scoring
  callbacks and ``LRScheduler`` resumed where the last call left it.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
from skorch.callbacks import Callback, LRScheduler
from skorch.callbacks.scoring import ScoringBase
from skorch.dataset import Dataset

from ._engine.ensemble import MemberLoss, members_combined
from ._engine.inference import predict_raw
from ._engine.losses import (
    LabelSmoothed,
    binary_log_loss,
    loss_function,
    multiclass_log_loss,
    poisson,
)

__all__ = [
    "BATCH_EVENTS", "BatchEvents", "ScoringView", "dispatch", "implements_event",
    "output_kind", "validation_dataset", "validation_epoch", "wants_outputs",
]

BATCH_EVENTS = ("on_batch_begin", "on_batch_end", "on_grad_computed")


def implements_event(cb, event):
    """Whether callback ``cb`` (an instance or a class) overrides ``event``."""
    cls = cb if isinstance(cb, type) else type(cb)
    return getattr(cls, event, None) is not getattr(Callback, event, None)


def wants_outputs(cb):
    """Whether callback ``cb`` needs ``y_pred`` in ``on_batch_end``.

    skorch's scoring callbacks (``EpochScoring``, ``BatchScoring``) do, and
    any callback whose ``on_batch_end`` names a ``y_pred`` parameter.
    """
    cls = cb if isinstance(cb, type) else type(cb)
    if not implements_event(cls, "on_batch_end"):
        return False
    if issubclass(cls, ScoringBase):
        return True
    try:
        return "y_pred" in inspect.signature(cls.on_batch_end).parameters
    except (TypeError, ValueError):  # no signature to read: pass it
        return True


def _base_loss(net):
    """The trainer's per-sample loss without its wrappers (an ensemble's
    per-member loss, label smoothing, a ``partial``'s fixed arguments)."""
    fn = loss_function(getattr(net, "criterion_", None))
    fn = fn.base if isinstance(fn, MemberLoss) else fn  # an ensemble's per-member loss
    fn = fn.base if isinstance(fn, LabelSmoothed) else fn
    return getattr(fn, "func", fn)


def output_kind(net):
    """``"multiclass"``, ``"binary"``, ``"multilabel"`` or ``"regression"``: what
    the trainer's outputs are, read off its criterion and output width."""
    fn = _base_loss(net)
    if fn is multiclass_log_loss:
        return "multiclass"
    if fn is binary_log_loss:
        return "binary" if net.module_.output.linear.out_features == 1 else "multilabel"
    return "regression"


class BatchEvents:
    """Per-batch callback events for the steps (see the module docstring).

    Each batch's ``train_loss`` enters its history record: on CPU at once
    (before ``on_batch_end``, as in skorch), on other devices at the end of
    the epoch, read from the device once, so that the events do not force a
    host sync per batch (a callback gets the 0-d tensor ``loss``).

    Attributes
    ----------
    wants_gradients : bool
        Some callback implements ``on_grad_computed``.
    wants_outputs : bool
        Some callback needs ``y_pred`` (:func:`wants_outputs`): the steps
        then hand their batch outputs to :meth:`batch_end`.
    """

    def __init__(self, net):
        self.net = net
        self.batch = None
        self.losses = []
        callbacks = [cb for _, cb in net.callbacks_]
        self.wants_gradients = any(implements_event(cb, "on_grad_computed") for cb in callbacks)
        self.wants_outputs = any(wants_outputs(cb) for cb in callbacks)
        self.immediate = torch.device(net.device).type == "cpu"

    def batch_begin(self, xb, yb):
        self.batch = (xb, yb)
        self.net.notify("on_batch_begin", batch=self.batch, training=True)

    def gradients_computed(self):
        self.net.notify("on_grad_computed", named_parameters=list(
            self.net.module_.named_parameters()), batch=self.batch, training=True)

    def batch_end(self, xb, yb, loss, outputs=None):
        """``on_batch_end`` for a training batch; ``outputs`` its raw outputs (or ``None``)."""
        history = self.net.history
        if self.immediate:
            history.record_batch("train_loss", loss.item())
        else:
            self.losses.append(loss.detach())
        history.record_batch("train_batch_size", len(xb))
        if outputs is not None:  # an ensemble's members: their combination, as predicted
            outputs = members_combined(self.net.module_, outputs)
        extra = {"y_pred": outputs} if self.wants_outputs else {}
        self.net.notify("on_batch_end", batch=self.batch, training=True, loss=loss, **extra)
        self.batch = None

    def end_epoch(self):
        """Write the epoch's deferred batch losses into the history (one host read)."""
        if self.losses:
            values = torch.stack(self.losses).tolist()
            for record, value in zip(self.net.history[-1]["batches"], values, strict=True):
                record["train_loss"] = value
        self.losses = []


def _monitor(net):
    return dict(net.callbacks_).get("convergence")


def validation_dataset(net):
    """The validation split as a skorch ``Dataset`` (``None`` without one).

    Passed as ``dataset_valid`` to ``on_epoch_begin``/``on_epoch_end``, as
    skorch does: ``EpochScoring(on_train=False)`` scores it (``ProgressBar``
    counts its batches). ``X`` is a ``RowSubset`` (no copy of the rows),
    ``y`` the targets in the network's terms.
    """
    validation = getattr(_monitor(net), "validation", None)
    if validation is None:
        return None
    X_val, y_val, _ = validation
    return Dataset(X_val, y_val)


def validation_epoch(net, dataset_valid, events):
    """Validation batch events (``training=False``) after a training epoch.

    Fired only when some callback implements a batch event (``events`` is
    not ``None``) and there is a validation split. Each batch record gets
    ``valid_loss`` (its sample-weighted mean loss) and ``valid_batch_size``
    as in skorch; the epoch gets ``valid_batch_count``. The outputs are the
    ones the early-stopping rule scores in ``on_epoch_end`` (one pass).
    """
    if events is None or dataset_valid is None:
        return
    monitor = _monitor(net)
    X_val, y_val, w_val = monitor.validation
    raw = torch.from_numpy(monitor.validation_outputs(net))
    y = torch.from_numpy(np.asarray(y_val))
    w = torch.from_numpy(np.asarray(w_val, dtype=np.float32))
    with torch.no_grad():
        losses = net.criterion_(raw, y)
    n, size = len(y), net.batch_size
    for start in range(0, n, size):
        stop = min(start + size, n)
        xb = torch.as_tensor(np.array(X_val[start:stop]), device=net.device)
        batch = (xb, y[start:stop].to(net.device))
        net.notify("on_batch_begin", batch=batch, training=False)
        wb = w[start:stop]
        loss = torch.dot(losses[start:stop], wb) / wb.sum()
        net.history.record_batch("valid_loss", loss.item())
        net.history.record_batch("valid_batch_size", stop - start)
        extra = {"y_pred": raw[start:stop].to(net.device)} if events.wants_outputs else {}
        net.notify("on_batch_end", batch=batch, training=False, loss=loss, **extra)
    net.history.record("valid_batch_count", -(-n // size))


def _numpy(X):
    if isinstance(X, torch.Tensor):
        return X.detach().cpu().numpy()
    return X


class ScoringView:
    """The trainer as skorch's scoring callbacks see it.

    Every attribute is the trainer's (``history``, ``module_``, ...), except
    the prediction methods, which give the estimator's predictions in the
    network's terms (the terms of the targets in the batches): class indices
    (``predict``) and probabilities (``predict_proba``, two columns for a
    binary classifier) for a classifier, predicted values for a regressor
    (the inverse link applied). They go through ``forward_iter``, which
    skorch's scoring callbacks replace by the outputs cached from the batch
    events (``use_caching=True``); otherwise the network is run on ``X``.

    Parameters
    ----------
    net : TrainingNet
    """

    def __init__(self, net):
        vars(self)["_net"] = net
        vars(self)["_kind"] = output_kind(net)
        if self._kind != "regression":
            n = net.module_.output.linear.out_features
            vars(self)["classes_"] = np.arange(2 if n == 1 else n)

    def __getattr__(self, name):
        return getattr(vars(self)["_net"], name)

    def __setattr__(self, name, value):
        if name == "forward_iter":  # skorch's caching puts it here and deletes it
            vars(self)[name] = value
        else:
            setattr(self._net, name, value)

    def __sklearn_tags__(self):
        tags = self._net.__sklearn_tags__()
        if self._kind != "regression":
            from sklearn.utils import ClassifierTags

            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags(multi_class=self._kind == "multiclass",
                                                  multi_label=self._kind == "multilabel")
        else:
            tags.estimator_type = "regressor"
        return tags

    def forward_iter(self, X, training=False, device="cpu"):
        """The network's raw outputs on ``X`` (one chunk)."""
        if isinstance(X, Dataset):
            X = X.X
        yield torch.from_numpy(predict_raw(self._net.module_, _numpy(X), self._net.device))

    def _raw(self, X):
        outputs = [torch.as_tensor(t).detach().cpu() for t in self.forward_iter(X)]
        return torch.cat(outputs).numpy().astype(np.float64)

    def predict_proba(self, X):
        """Class probabilities (a classifier) or predicted values (a regressor)."""
        raw = self._raw(X)
        if self._kind == "multiclass":
            return torch.softmax(torch.from_numpy(raw), dim=1).numpy()
        if self._kind == "regression":
            # (a Poisson network's outputs are log-means, an ensemble's too)
            return np.exp(raw) if _base_loss(self._net) is poisson else raw
        p = 1.0 / (1.0 + np.exp(-raw))
        return np.column_stack([1 - p, p]) if self._kind == "binary" else p

    def predict(self, X):
        """Class indices (an indicator matrix for multilabel) or predicted values."""
        if self._kind == "regression":
            out = self.predict_proba(X)
            return out[:, 0] if out.shape[1] == 1 else out
        raw = self._raw(X)
        if self._kind == "multiclass":
            return raw.argmax(axis=1)
        labels = (raw > 0).astype(np.int64)
        return labels[:, 0] if self._kind == "binary" else labels

    def score(self, X, y):
        """Accuracy (a classifier) or R² (a regressor), as the estimators' ``score``."""
        from sklearn.metrics import accuracy_score, r2_score

        y = _numpy(y)
        if self._kind == "regression":
            return r2_score(y, self.predict(X))
        if self._kind == "binary":
            y = np.asarray(y).reshape(len(y), -1)[:, 0]
        return accuracy_score(y, self.predict(X))


def _resume_scheduler(net, cb, rates):
    """Undo what rebuilding ``cb``'s torch scheduler in a continuing call did.

    skorch's ``LRScheduler.on_train_begin`` builds a new scheduler with
    ``last_epoch=len(history) - 1``, and torch's constructor takes one step
    from the rate the optimizer holds: a second step of the epoch the last
    call's ``on_epoch_end`` already stepped (chainable schedules such as
    ``StepLR`` and ``ExponentialLR`` apply their factor twice). The rates go
    back to those the last call left, and a per-batch schedule counts
    batches, not epochs.
    """
    scheduler = getattr(cb, "lr_scheduler_", None)
    if scheduler is None or not hasattr(scheduler, "get_last_lr"):
        return  # ReduceLROnPlateau: its constructor does not step
    for group, lr in zip(net.optimizer_.param_groups, rates, strict=True):
        group["lr"] = lr
    scheduler._last_lr = list(rates)
    if cb.step_every == "batch":
        scheduler.last_epoch = cb.batch_idx_


def dispatch(net, cb, method_name, kwargs):
    """Call ``cb``'s handler of ``method_name`` as skorch's contract asks (module docstring)."""
    if isinstance(cb, ScoringBase):
        return getattr(cb, method_name)(ScoringView(net), **kwargs)
    if method_name == "on_train_begin" and isinstance(cb, LRScheduler) and len(net.history):
        rates = [group["lr"] for group in net.optimizer_.param_groups]
        result = cb.on_train_begin(net, **kwargs)
        _resume_scheduler(net, cb, rates)
        return result
    return getattr(cb, method_name)(net, **kwargs)
