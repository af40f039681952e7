from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sklearn_deepnet import DeepMLPClassifier
from sklearn_deepnet._callbacks import ConvergenceMonitor


class _FakeHistory(list):
    def record(self, key, value):
        self[-1][key] = value

    def __getitem__(self, idx):
        if isinstance(idx, tuple):
            return list.__getitem__(self, idx[0])[idx[1]]
        return list.__getitem__(self, idx)


def _run_monitor(monitor, losses=None, scores=None):
    module = torch.nn.Linear(1, 1)
    net = SimpleNamespace(history=_FakeHistory(), module_=module, device="cpu",
                          stop_reason=None)
    monitor.on_train_begin(net)
    stopped_at = None
    for epoch, loss in enumerate(losses):
        net.history.append({"train_loss": loss})
        with torch.no_grad():
            module.weight.fill_(epoch)
        if scores is not None:
            monitor.scorer = lambda raw, y, w, s=scores[epoch]: s
        monitor.on_epoch_end(net)
        if net.stop_reason:
            stopped_at = epoch
            break
    monitor.on_train_end(net)
    return stopped_at, module.weight.item(), net.history


def test_monitor_stops_like_sklearn_on_training_loss():
    losses = [1.0, 0.5, 0.4, 0.39995, 0.39994, 0.39993, 0.2]
    stopped_at, _, _ = _run_monitor(
        ConvergenceMonitor(tol=1e-4, n_iter_no_change=2), losses=losses
    )
    assert stopped_at == 5  # three epochs in a row without a 1e-4 improvement


def test_monitor_early_stopping_restores_best_weights():
    scores = [0.5, 0.7, 0.9, 0.8, 0.85, 0.8, 0.7, 0.6]
    X_val = torch.zeros(4, 1)
    valid_losses = [0.9, 0.5, 0.6, 0.4, 0.45, 0.5, 0.7, 0.8]
    next_loss = iter(valid_losses)
    monitor = ConvergenceMonitor(
        tol=0.0, n_iter_no_change=3, validation=(X_val, np.zeros(4), np.ones(4)),
        validation_loss=lambda raw, y, w: next(next_loss),
    )
    stopped_at, weight, history = _run_monitor(
        monitor, losses=[1.0] * len(scores), scores=scores
    )
    assert stopped_at == 6
    assert weight == 2.0  # weights of the epoch that scored 0.9
    assert [h["valid_score"] for h in history] == scores[:7]
    assert [h["valid_score_best"] for h in history] == [True, True, True] + [False] * 4
    # skorch's names: the loss on the validation rows and whether it is the lowest so far
    assert [h["valid_loss"] for h in history] == valid_losses[:7]
    assert [h["valid_loss_best"] for h in history] == [True, True, False, True] + [False] * 3
    assert [h["train_loss_best"] for h in history] == [True] + [False] * 6
    assert monitor.validation is None and monitor.scorer is None
    assert monitor.validation_loss is None


def test_early_stopping_end_to_end(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((16,), early_stopping=True, n_iter_no_change=3,
                            max_iter=200, random_state=0).fit(X, y)
    assert clf.n_iter_ < 200
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.best_loss_ is None
    best_epoch = int(np.argmax(clf.validation_scores_))
    assert clf.history_[best_epoch].get("valid_score_best")
    assert clf.n_iter_ - 1 - best_epoch >= 3


def test_partial_fit_after_early_stopping_keeps_the_record(clf_data):
    X, y = clf_data
    clf = DeepMLPClassifier((16,), early_stopping=True, max_iter=5, random_state=0).fit(X, y)
    scores = list(clf.validation_scores_)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        clf.partial_fit(X, y)  # as scikit-learn's MLP
    clf.set_params(early_stopping=False).partial_fit(X, y)
    assert clf.validation_scores_ == scores and clf.best_validation_score_ == max(scores)
    assert clf.best_loss_ is None and len(clf.loss_curve_) == 6 and clf.n_iter_ == 1
