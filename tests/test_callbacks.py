import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor
from sklearn_deepnet._callbacks import ConvergenceMonitor
from sklearn_deepnet._steps import apply_max_norm, clip_gradients


def test_max_norm_bounds_every_hidden_row(clf_data):
    X, y = clf_data
    r = 0.5
    clf = DeepMLPClassifier((32, 32), max_norm=r, learning_rate_init=0.05, max_iter=10,
                            random_state=0).fit(X * 10, y)
    for lin in clf.net_.module_.hidden_linears():
        norms = lin.weight.norm(dim=1)
        assert (norms <= r * (1 + 1e-5)).all()
        assert norms.max().item() == pytest.approx(r, rel=1e-4)  # the constraint is active
    free = DeepMLPClassifier((32, 32), learning_rate_init=0.05, max_iter=10,
                             random_state=0).fit(X * 10, y)
    assert free.net_.module_.hidden_linears()[0].weight.norm(dim=1).max() > r


def test_apply_max_norm_leaves_small_rows_alone():
    lin = torch.nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, 4.0, 0.0], [0.1, 0.0, 0.0]]))
    apply_max_norm([lin], 1.0)
    assert torch.allclose(lin.weight, torch.tensor([[0.6, 0.8, 0.0], [0.1, 0.0, 0.0]]))


def _params_with_grads(values):
    params = []
    for v in values:
        p = torch.nn.Parameter(torch.zeros(len(v)))
        p.grad = torch.tensor(v, dtype=torch.float32)
        params.append(p)
    return params


def test_gradient_clipping_by_norm_and_value():
    named = _params_with_grads([[3.0, -4.0], [12.0]])
    clip_gradients(named, clip_norm=1.0)
    total = math.sqrt(sum(p.grad.pow(2).sum().item() for p in named))
    assert total == pytest.approx(1.0, rel=1e-5)
    named = _params_with_grads([[3.0, -4.0, 0.5]])
    clip_gradients(named, clip_value=1.0)
    assert named[0].grad.tolist() == [1.0, -1.0, 0.5]


@pytest.mark.parametrize("kind", ["clip_value", "clip_norm"])
def test_clipping_bounds_updates_end_to_end(kind, reg_data):
    # Plain SGD with lr=1: each step moves the weights by exactly the clipped gradient.
    X, y = reg_data
    bound = 1e-3
    reg = DeepMLPRegressor((16,), solver="sgd", learning_rate_init=1.0, batch_size=50,
                           random_state=0, **{kind: bound})
    reg.partial_fit(X * 100, y * 100)  # huge gradients without clipping
    before = [p.detach().clone() for p in reg.net_.module_.parameters()]
    reg.partial_fit(X * 100, y * 100)
    after = list(reg.net_.module_.parameters())
    n_steps = 4
    deltas = [(a - b).flatten() for a, b in zip(after, before, strict=False)]
    if kind == "clip_value":
        assert max(d.abs().max().item() for d in deltas) <= n_steps * bound * (1 + 1e-4)
    else:
        total = torch.cat(deltas).norm().item()
        assert total <= n_steps * bound * (1 + 1e-4)
    assert np.isfinite(reg.predict(X)).all()


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
    monitor = ConvergenceMonitor(tol=0.0, n_iter_no_change=3,
                                 validation=(X_val, np.zeros(4), np.ones(4)))
    stopped_at, weight, history = _run_monitor(
        monitor, losses=[1.0] * len(scores), scores=scores
    )
    assert stopped_at == 6
    assert weight == 2.0  # weights of the epoch that scored 0.9
    assert [h["valid_score"] for h in history] == scores[:7]
    assert monitor.validation is None and monitor.scorer is None


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
    clf.partial_fit(X, y)
    assert clf.validation_scores_ == scores and clf.best_validation_score_ == max(scores)
    assert clf.best_loss_ is None and len(clf.loss_curve_) == clf.n_iter_ == 6
