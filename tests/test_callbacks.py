from types import SimpleNamespace

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

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


# ------------------------------------------- skorch's built-in callbacks (issue 24)
# Every skorch built-in on both CPU training steps: the hand-written one and
# the eager one (PReLU is not in the hand-written step's table).
STEPS = {"cpu-manual": {}, "eager": {"activation": "prelu"}}


def _data():
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=240, n_features=8, n_informative=6, n_classes=3,
                               random_state=0)
    return X.astype(np.float32), y


def _clf(step, **kwargs):
    return DeepMLPClassifier(**{"hidden_layer_sizes": (16,), "batch_size": 50,
                                "learning_rate_init": 0.01, "random_state": 0, "tol": 0,
                                **STEPS[step], **kwargs})


def _fit(step, **kwargs):
    X, y = _data()
    clf = _clf(step, **kwargs).fit(X, y)
    assert clf.engine_ == step
    return clf


class _CheckBatches(Callback):
    """Checks skorch's batch-event arguments; keeps the validation rows and weights."""

    def __init__(self):
        self.seen = []
        self.states = []

    def on_batch_begin(self, net, batch, training, **kwargs):
        X, _ = batch
        with torch.no_grad():  # what skorch's y_pred is: the module's outputs on the batch
            self.expected = (net.module_(X) if training else
                             torch.from_numpy(net.predict_proba(X.numpy())))

    def on_batch_end(self, net, batch, training, loss, y_pred, **kwargs):
        np.testing.assert_allclose(y_pred.numpy(), self.expected.numpy(), rtol=1e-4,
                                   atol=1e-5)
        assert loss.ndim == 0 and len(y_pred) == len(batch[0]) == len(batch[1])
        record = net.history[-1, "batches", -1]
        assert record["train_loss" if training else "valid_loss"] == pytest.approx(
            loss.item())
        self.seen.append(training)

    def on_epoch_end(self, net, dataset_train, dataset_valid, **kwargs):
        self.valid = (np.array(dataset_valid.X[:]), np.asarray(dataset_valid.y))
        self.states.append({k: v.clone() for k, v in net.module_.state_dict().items()})


def _skorch():
    from skorch import callbacks

    return callbacks


@pytest.mark.parametrize("step", STEPS)
def test_batch_events_carry_y_pred_and_validation_batches(step):
    check = _CheckBatches()
    clf = _fit(step, max_iter=2, early_stopping=True, n_iter_no_change=100, callbacks=[check])
    # 216 training rows in 5 batches of 50, then 24 validation rows in 1 batch, per epoch
    assert check.seen == ([True] * 5 + [False]) * 2
    row = clf.history_[-1]
    assert row["train_batch_count"] == 5 and row["valid_batch_count"] == 1
    assert [b["valid_batch_size"] for b in row["batches"] if "valid_batch_size" in b] == [24]


@pytest.mark.parametrize("step", STEPS)
def test_epoch_scoring_accuracy_is_the_estimators_accuracy(step):
    from sklearn.metrics import accuracy_score

    cbs = _skorch()
    check = _CheckBatches()
    clf = _fit(step, max_iter=4, early_stopping=True, n_iter_no_change=100,
               learning_rate_init=0.05,
               callbacks=[cbs.EpochScoring("accuracy", lower_is_better=False, name="acc"),
                          cbs.EpochScoring("accuracy", lower_is_better=False, name="acc_nc",
                                           use_caching=False),
                          cbs.BatchScoring("accuracy", lower_is_better=False, name="bacc"),
                          check])
    X_val, codes = check.valid
    truths = []
    for state in check.states:  # the estimator's own predictions at each epoch
        clf.module_.load_state_dict(state)
        truths.append(accuracy_score(clf.classes_[codes], clf.predict(X_val)))
    assert len(set(truths)) > 1  # the accuracy changes over the epochs
    for key in ("acc", "acc_nc", "bacc", "valid_acc", "valid_score"):
        np.testing.assert_allclose(clf.history_[:, key], truths, err_msg=key)
    assert clf.history_[:, "acc_best"] == clf.history_[:, "valid_acc_best"]


@pytest.mark.parametrize("step", STEPS)
def test_training_scores_and_passthrough_scoring(step):
    cbs = _skorch()
    clf = _fit(step, max_iter=2, early_stopping=True, n_iter_no_change=100, callbacks=[
        cbs.EpochScoring("accuracy", on_train=True, lower_is_better=False, name="tacc"),
        cbs.BatchScoring("accuracy", on_train=True, lower_is_better=False, name="btacc"),
        cbs.EpochScoring("neg_log_loss", on_train=True, name="tnll"),
        cbs.PassthroughScoring("train_loss", on_train=True),
        ("vl", cbs.PassthroughScoring("valid_loss")),
    ])
    # scored on the training batches' outputs (before each update), as in skorch
    np.testing.assert_allclose(clf.history_[:, "tacc"], clf.history_[:, "btacc"])
    assert all(0.2 < a < 1 for a in clf.history_[:, "tacc"])
    # log-loss of the batch outputs: the training loss (alpha's penalty aside)
    np.testing.assert_allclose(clf.history_[:, "tnll"], [-v for v in clf.loss_curve_],
                               rtol=1e-3)
    np.testing.assert_allclose(clf.history_[:, "train_loss"], clf.loss_curve_, rtol=1e-6)
    # the batches' validation loss, averaged: the validation loss (uniform weights)
    assert all(isinstance(v, float) for v in clf.history_[:, "valid_loss"])


def test_history_holds_the_keys_skorchs_defaults_monitor():
    from sklearn.datasets import make_regression

    from sklearn_deepnet import DeepMLPRegressor

    clf = _fit("cpu-manual", max_iter=2, early_stopping=True)
    for key in ("train_loss", "valid_loss", "valid_acc", "valid_acc_best", "dur"):
        assert len(clf.history_[:, key]) == 2, key
    assert clf.history_[:, "valid_acc"] == clf.history_[:, "valid_score"]
    X, y = make_regression(n_samples=100, n_features=4, random_state=0)
    reg = DeepMLPRegressor((8,), max_iter=2, early_stopping=True, random_state=0).fit(X, y)
    assert "valid_loss" in reg.history_[-1] and "valid_acc" not in reg.history_[-1]


@pytest.mark.parametrize("verbose", [0, 1])
def test_print_log_prints_skorchs_table(verbose, capsys):
    cbs = _skorch()
    _fit("cpu-manual", max_iter=3, early_stopping=True, n_iter_no_change=100,
         verbose=verbose, callbacks=[cbs.PrintLog()])
    out = capsys.readouterr().out.splitlines()
    table = [line for line in out if not line.startswith(("Iteration", "Validation"))]
    header = table[0].split()
    assert header[0] == "epoch" and header[-1] == "dur"
    assert {"train_loss", "valid_acc", "valid_loss", "valid_score"} <= set(header)
    assert set(table[1]) <= {"-", " "} and len(table) == 5
    assert [line.split()[0] for line in table[2:]] == ["1", "2", "3"]
    assert (len(out) > len(table)) == bool(verbose)  # and the estimator's own lines


@pytest.mark.parametrize("step", STEPS)
def test_progress_bar_advances_over_every_batch(step, capsys):
    cbs = _skorch()

    class Bar(cbs.ProgressBar):
        def on_batch_end(self, net, **kwargs):
            super().on_batch_end(net, **kwargs)
            self.postfix = self._get_postfix_dict(net)

        def on_epoch_end(self, net, **kwargs):
            self.counts = (self.pbar_.n, self.pbar_.total)
            super().on_epoch_end(net, **kwargs)

    bar = Bar()
    _fit(step, max_iter=2, early_stopping=True, callbacks=[bar])
    assert bar.counts == (6, 6)  # 5 training and 1 validation batch
    assert set(bar.postfix) == {"valid_loss"}  # the last batch is a validation batch
    bar = Bar(postfix_keys=["train_loss"])
    _fit(step, max_iter=1, callbacks=[bar])
    assert bar.counts == (5, 5) and set(bar.postfix) == {"train_loss"}  # shown as in skorch
    assert "/5 [" in capsys.readouterr().err


@pytest.mark.parametrize("step", STEPS)
def test_lr_scheduler_steps_once_per_epoch_in_partial_fit(step):
    from skorch.callbacks import LRScheduler
    from skorch.callbacks.lr_scheduler import WarmRestartLR

    X, y = _data()
    for policy, kwargs in [("StepLR", dict(step_size=1, gamma=0.5)),
                           (WarmRestartLR, dict(min_lr=1e-4, max_lr=0.01, base_period=2)),
                           ("ExponentialLR", dict(gamma=0.9, step_every="batch"))]:
        fitted = _clf(step, max_iter=3, callbacks=[LRScheduler(policy, **kwargs)]).fit(X, y)
        partial = _clf(step, callbacks=[LRScheduler(policy, **kwargs)])
        for _ in range(3):
            partial.partial_fit(X, y, classes=[0, 1, 2])
        # the rate each epoch started with
        np.testing.assert_allclose(partial.history_[:, "lr"], fitted.history_[:, "lr"],
                                   err_msg=str(policy))
        assert partial.engine_ == step
        if policy is WarmRestartLR:  # skorch's own schedule, as it simulates it
            np.testing.assert_allclose(fitted.history_[:, "lr"],
                                       LRScheduler(policy, **kwargs).simulate(3, 0.01))


@pytest.mark.parametrize("step", STEPS)
def test_early_stopping_stops_as_documented(step):
    cbs = _skorch()
    clf = _fit(step, max_iter=50, early_stopping=True, n_iter_no_change=100,
               callbacks=[cbs.EarlyStopping(monitor="valid_acc", lower_is_better=False,
                                            patience=2, threshold=10.0)])
    assert clf.n_iter_ == 3 and clf.net_.stop_reason == "callback EarlyStopping"


@pytest.mark.parametrize("step", STEPS)
def test_checkpoints_write_files_that_load(step, tmp_path):
    cbs = _skorch()
    X, y = _data()
    clf = _fit(step, max_iter=3, callbacks=[
        cbs.Checkpoint(monitor="train_loss_best", dirname=str(tmp_path / "cp")),
        cbs.TrainEndCheckpoint(dirname=str(tmp_path / "end"))])
    end = torch.load(tmp_path / "end" / "train_end_params.pt")
    for k, v in clf.module_.state_dict().items():
        assert torch.equal(end[k], v)
    assert clf.history_[-1, "event_cp"] is True  # the loss fell: the last epoch is kept
    other = _clf(step, max_iter=1).fit(X, y)
    other.net_.load_params(checkpoint=cbs.Checkpoint(dirname=str(tmp_path / "cp")))
    np.testing.assert_array_equal(other.predict_proba(X), clf.predict_proba(X))
    # LoadInitState: a new fit starts from the checkpoint (weights, optimizer, history)
    resumed = _clf(step, max_iter=1, callbacks=[cbs.LoadInitState(
        cbs.Checkpoint(dirname=str(tmp_path / "cp")))])
    resumed.fit(X, y)
    # the loaded history goes on: n_iter_ and loss_curve_ count its epochs too
    assert len(resumed.history_) == 4 and resumed.n_iter_ == 4
    assert resumed.history_[:3, "train_loss"] == clf.history_[:, "train_loss"]


@pytest.mark.parametrize("step", STEPS)
def test_gradient_norm_clipping_clips(step):
    cbs = _skorch()
    X, y = _data()
    est = _clf(step, solver="sgd", momentum=0.0, learning_rate_init=1.0, max_iter=1,
               callbacks=[cbs.GradientNormClipping(1e-3)])
    est.fit(X, y)
    before = [p.detach().clone() for p in est.module_.parameters()]
    est.partial_fit(X, y)
    moved = torch.cat([(p - b).flatten()
                       for p, b in zip(est.module_.parameters(), before, strict=True)])
    assert 0 < moved.norm().item() <= 5 * 1e-3 * (1 + 1e-4)  # 5 steps, each clipped


@pytest.mark.parametrize("step", STEPS)
def test_freezer_unfreezer_and_param_mapper(step):
    cbs = _skorch()

    class Weights(Callback):
        def on_epoch_end(self, net, **kwargs):
            self.seen = getattr(self, "seen", []) + [
                {k: v.clone() for k, v in net.module_.state_dict().items()}]

    rec = Weights()
    X, y = _data()
    _clf(step, max_iter=4, callbacks=[
        cbs.Freezer("hidden.0.linear.*"), cbs.Unfreezer("hidden.0.linear.*", at=3),
        cbs.ParamMapper("output.linear.bias", fn=lambda p: p.data.fill_(5.0), at=4), rec,
    ]).fit(X, y)
    key = "hidden.0.linear.weight"
    assert torch.equal(rec.seen[0][key], rec.seen[1][key])  # frozen for epochs 1-2
    assert not torch.equal(rec.seen[1][key], rec.seen[2][key])  # trains from epoch 3
    assert not torch.equal(rec.seen[0]["output.linear.weight"],
                           rec.seen[1]["output.linear.weight"])
    # set to 5 at the start of epoch 4, then trained for one epoch
    assert torch.allclose(rec.seen[3]["output.linear.bias"], torch.full((3,), 5.0), atol=0.1)
