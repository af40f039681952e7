"""The estimator's own callbacks: the stopping rule, layer freezing, the progress bar.

:class:`ConvergenceMonitor` is scikit-learn's MLP stopping rule.

It is the first callback of every fit, so the records it adds to the history
(``train_loss_best``; with early stopping ``valid_loss``, ``valid_loss_best``,
``valid_score``, ``valid_score_best`` and, for a classifier, ``valid_acc``,
``valid_acc_best``) are there for the user's callbacks, under the names
skorch's own callbacks (``EarlyStopping``, ``Checkpoint``, ``LRScheduler``)
and its classifiers' default callbacks monitor.
"""

from __future__ import annotations

import copy
import math
import multiprocessing
import sys
import threading

from skorch.callbacks import Callback

from ._engine.inference import predict_raw
from ._events import output_kind

__all__ = ["ConvergenceMonitor", "LayerFreezer", "ProgressBar", "wants_progress_bar"]


class ConvergenceMonitor(Callback):
    """scikit-learn's MLP stopping rule, with best-weight restoring.

    Without early stopping, training stops once the training loss has not
    dropped by at least ``tol`` for more than ``n_iter_no_change`` consecutive
    epochs. With early stopping the same rule applies to the validation score
    (accuracy or R^2, higher is better), and the weights of the best epoch are
    restored when training ends, however it ends.

    Parameters
    ----------
    tol : float
        Minimum improvement.
    n_iter_no_change : int
        Patience in epochs.
    validation : tuple or None
        ``(X_val, y_val, w_val)`` with ``X_val`` anything :func:`predict_raw`
        accepts (a ``RowSubset`` of the training data, or the user's
        ``X_val``: an array or a CSR matrix); ``None`` disables early
        stopping.
    scorer : callable or None
        ``scorer(raw_outputs, y_val, w_val)`` returns the validation score.
    validation_loss : callable or None
        ``validation_loss(raw_outputs, y_val, w_val)`` returns the weighted
        mean loss without penalty (recorded as ``valid_loss``, the name
        skorch's callbacks monitor).
    verbose : bool
        Print one line per epoch, like ``MLPClassifier(verbose=True)``.
    adaptive : bool, default=False
        scikit-learn's ``learning_rate="adaptive"``: where the rule would stop
        training, divide the learning rate by 5 and go on, until it is at most
        1e-6.
    carry : tuple or None, default=None
        ``(no_improvement_count, best_loss, best_score)`` of the previous
        call, continued by a warm start or ``partial_fit`` as scikit-learn's
        MLP does. ``best_score`` is the validation score of the weights the
        network holds now (the previous call's best), or ``None`` when there
        is none to compare with (no early stopping then, or another
        validation set now): with a score, the current weights compete as
        the best so far and are restored if no epoch of this call beats them.

    Attributes
    ----------
    best_score_ : float
        After training: the validation score of the weights restored (the
        best of this call, or the carried one), ``-inf`` without validation.
    restored_ : bool
        Whether training has ended and the best weights are back in the
        network (``on_train_end`` ran).
    """

    def __init__(
        self, *, tol, n_iter_no_change, validation=None, scorer=None, validation_loss=None,
        verbose=False, adaptive=False, carry=None,
    ):
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.validation = validation
        self.scorer = scorer
        self.validation_loss = validation_loss
        self.verbose = verbose
        self.adaptive = adaptive
        self.carry = carry

    def on_train_begin(self, net, **kwargs):
        """Reset the counters for a new call to fit (or continue the carried ones)."""
        count, best_loss, best_score = self.carry or (0, math.inf, None)
        self.no_improvement_count_, self.best_loss_ = count, best_loss
        self.best_valid_loss_ = math.inf
        self.best_acc_ = -math.inf
        self.outputs_ = None  # (history row, validation outputs) of the epoch in progress
        self.best_score_ = -math.inf
        # (epochs in the history, weights, score) of the best validation score
        self.best_state_ = None
        if self.validation is not None and best_score is not None:
            self.best_score_ = best_score  # the weights now: the last call's best
            self.best_state_ = (len(net.history), copy.deepcopy(net.module_.state_dict()),
                                best_score)
        self.previous_best_state_ = None  # the best before it
        self.stop_message_ = None
        self.restored_ = False

    def validation_outputs(self, net):
        """Raw outputs of the network on the validation rows, once per epoch.

        The validation batch events (:func:`~._events.validation_epoch`) and
        :meth:`on_epoch_end` share them.
        """
        row = net.history[-1]
        if self.outputs_ is None or self.outputs_[0] is not row:
            X_val = self.validation[0]
            self.outputs_ = (row, predict_raw(net.module_, X_val, net.device))
        return self.outputs_[1]

    def on_epoch_end(self, net, **kwargs):
        """Record the validation score, update the counters, ask to stop."""
        history = net.history
        loss = history[-1, "train_loss"]
        history.record("train_loss_best", loss < self.best_loss_)
        if self.validation is not None:
            _, y_val, w_val = self.validation
            raw = self.validation_outputs(net)
            self.outputs_ = None
            score = float(self.scorer(raw, y_val, w_val))
            valid_loss = float(self.validation_loss(raw, y_val, w_val))
            history.record("valid_loss", valid_loss)
            history.record("valid_loss_best", valid_loss < self.best_valid_loss_)
            self.best_valid_loss_ = min(self.best_valid_loss_, valid_loss)
            if output_kind(net) != "regression":  # skorch's classifiers' default score
                acc = float(self.scorer(raw, y_val, None))  # unweighted, as skorch's
                history.record("valid_acc", acc)
                history.record("valid_acc_best", acc > self.best_acc_)
                self.best_acc_ = max(self.best_acc_, acc)
            history.record("valid_score", score)
            what = "Validation score"
            improved = score >= self.best_score_ + self.tol
            history.record("valid_score_best", score > self.best_score_)
            if score > self.best_score_:
                self.best_score_ = score
                self.previous_best_state_ = self.best_state_
                self.best_state_ = (len(history), copy.deepcopy(net.module_.state_dict()),
                                    score)
        else:
            what = "Training loss"
            improved = loss <= self.best_loss_ - self.tol
        self.best_loss_ = min(self.best_loss_, loss)
        self.no_improvement_count_ = 0 if improved else self.no_improvement_count_ + 1
        if self.verbose:
            line = f"Iteration {len(net.history)}, loss = {loss:.8f}"
            if self.validation is not None:
                line += f", validation score = {net.history[-1, 'valid_score']:.6f}"
            print(line)
        if self.no_improvement_count_ > self.n_iter_no_change and self.adaptive:
            groups = net.optimizer_.param_groups
            if float(groups[0]["lr"]) > 1e-6:  # as MLPClassifier: slow down, go on
                for group in groups:
                    group["lr"] = float(group["lr"]) / 5.0
                self.no_improvement_count_ = 0
                if self.verbose:
                    print(f"Setting learning rate to {float(groups[0]['lr']):f}")
                return
        if self.no_improvement_count_ > self.n_iter_no_change:
            self.stop_message_ = (
                f"{what} did not improve more than tol={self.tol} for "
                f"{self.n_iter_no_change} consecutive epochs."
            )
            net.stop_reason = self.stop_message_
            if self.verbose:
                print(self.stop_message_ + " Stopping.")

    def on_train_end(self, net, **kwargs):
        """Restore the best weights (early stopping) and drop references to data.

        Runs however training ended (convergence, ``max_iter`` or an interrupt),
        and leaves nothing that would bloat a pickle of the fitted net.
        """
        best = self.best_state_
        if best is not None and best[0] > len(net.history):
            # That epoch was rolled back (a Ctrl-C after it was scored): the
            # best among the epochs that remain is the one before.
            best = self.previous_best_state_
        if best is not None:
            net.module_.load_state_dict(best[1])
            self.best_score_ = best[2]
        elif self.validation is not None:
            self.best_score_ = -math.inf
        self.restored_ = True
        self.best_state_ = self.previous_best_state_ = self.outputs_ = None
        self.validation = None
        self.scorer = None
        self.validation_loss = None


class LayerFreezer(Callback):
    """Freeze the lowest hidden layers for the first epochs of a network's training.

    Layer ``i`` (counted from the input) is frozen while ``i < n_layers`` and
    fewer than ``unfreeze_after`` epochs of this network have been trained
    (the history's length, counting every earlier ``fit``/``partial_fit``
    call, so ``N`` calls to ``partial_fit`` unfreeze at the same epoch as one
    ``fit``); with ``unfreeze_after=None`` they stay frozen. Every layer is
    unfrozen when training ends: the fitted module is a plain module, and the
    next training call freezes again by the same rule.

    Parameters
    ----------
    n_layers : int
        Number of hidden layers to freeze (see :meth:`MLP.freeze_`).
    unfreeze_after : int or None
        Epochs after which they train too.
    """

    def __init__(self, n_layers, unfreeze_after=None):
        self.n_layers = n_layers
        self.unfreeze_after = unfreeze_after

    def _apply(self, net, epochs_done):
        frozen = self.unfreeze_after is None or epochs_done < self.unfreeze_after
        n = self.n_layers if frozen else 0
        if net.module_.n_frozen != n:
            net.module_.freeze_(n)

    def on_train_begin(self, net, **kwargs):
        """Freeze for the first epoch of this call (the step is built after this)."""
        self._apply(net, len(net.history))

    def on_epoch_begin(self, net, **kwargs):
        """Unfreeze once ``unfreeze_after`` epochs are done (the new epoch is in the history)."""
        self._apply(net, len(net.history) - 1)

    def on_train_end(self, net, **kwargs):
        """Leave every layer trainable."""
        net.module_.freeze_(0)


def wants_progress_bar(incremental):
    """Whether ``verbose=1`` shows a progress bar rather than one line per epoch.

    A bar only for ``fit`` (``partial_fit`` runs one epoch) on an interactive
    stderr (a terminal or a Jupyter kernel), in the main thread of the main process: in joblib or
    ``GridSearchCV(n_jobs=...)`` workers, bars of parallel fits would garble
    each other, and one line per epoch (scikit-learn's verbose output) is
    printed instead.
    """
    isatty = getattr(sys.stderr, "isatty", None)
    interactive = (callable(isatty) and isatty()) or "ipykernel" in sys.modules
    return (not incremental and interactive
            and threading.current_thread() is threading.main_thread()
            and multiprocessing.parent_process() is None)


class ProgressBar(Callback):
    """A tqdm bar over the epochs of a fit, with the loss and validation score.

    Parameters
    ----------
    desc : str
        Label of the bar (the estimator's class name).
    """

    def __init__(self, desc):
        self.desc = desc

    def on_train_begin(self, net, **kwargs):
        """Open the bar for this call's ``max_epochs``."""
        from tqdm.auto import tqdm

        self.bar_ = tqdm(total=net.max_epochs, desc=self.desc, unit="epoch", file=sys.stderr,
                         dynamic_ncols=True)

    def on_epoch_end(self, net, **kwargs):
        """Advance by one epoch and show the epoch's loss (and validation score)."""
        row = net.history[-1]
        shown = {"loss": f"{row['train_loss']:.4g}"}
        if "valid_score" in row:
            shown["valid"] = f"{row['valid_score']:.4g}"
        self.bar_.set_postfix(shown, refresh=False)
        self.bar_.update(1)

    def on_train_end(self, net, **kwargs):
        """Close the bar (however training ended)."""
        bar, self.bar_ = getattr(self, "bar_", None), None
        if bar is not None:
            bar.close()

    def write(self, line):
        """Print ``line`` above the bar without garbling it."""
        from tqdm.auto import tqdm

        tqdm.write(line, file=sys.stderr)
