"""The trainer (``net_``): callbacks on every path, stops vs. Ctrl-C, reuse, skorch methods."""

import os
import signal
import time

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    GradientNormClipping,
    LRScheduler,
    TensorBoard,
)

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor
from sklearn_deepnet._validation import InvalidParameterError

# One configuration per CPU training path (cuda-graph: see the gpu tests below).
PATHS = {
    "cpu-manual-adam": dict(solver="adam"),  # hand-written step + direct fused Adam
    "cpu-manual-sgd": dict(solver="momentum"),
    "eager": dict(solver="adam", activation="prelu", dropout=0.1),  # PReLU: autograd step
}


def _clf(**kwargs):
    return DeepMLPClassifier(**{"hidden_layer_sizes": (16,), "batch_size": 50,
                                "random_state": 0, "device": "cpu", **kwargs})


class SetLearningRate(Callback):
    """Sets the rate of every param group at the start of epoch ``epoch`` (1-based)."""

    def __init__(self, epoch=2, lr=0.0):
        self.epoch = epoch
        self.lr = lr

    def on_epoch_begin(self, net, **kwargs):
        if len(net.history) == self.epoch:
            for group in net.optimizer_.param_groups:
                group["lr"] = self.lr


class RecordWeights(Callback):
    def on_epoch_end(self, net, **kwargs):
        self.weights_ = getattr(self, "weights_", [])
        self.weights_.append([p.detach().clone() for p in net.module_.parameters()])


class FakeWriter:
    """Stands in for torch.utils.tensorboard.SummaryWriter."""

    def __init__(self):
        self.scalars, self.closed = [], False

    def add_scalar(self, tag, scalar_value, global_step=None):
        self.scalars.append((tag, scalar_value, global_step))

    def close(self):
        self.closed = True


# -------------------------------------------------------------- parameter
@pytest.mark.parametrize("bad", [[object()], ["not a callback"], [("name", 3)],
                                 [(1, EarlyStopping())]], ids=str)
def test_callbacks_must_be_skorch_callbacks(bad, clf_data):
    X, y = clf_data
    with pytest.raises(InvalidParameterError, match="'callbacks' parameter.*skorch callbacks"):
        _clf(callbacks=bad).fit(X, y)


def test_reserved_callback_names_are_refused(clf_data):
    X, y = clf_data
    with pytest.raises(InvalidParameterError, match="'convergence' is used by the estimator"):
        _clf(callbacks=[("convergence", EarlyStopping())]).fit(X, y)


def test_callbacks_survive_clone_and_grid_search(clf_data):
    X, y = clf_data
    writer = FakeWriter()
    est = _clf(max_iter=3, callbacks=[LRScheduler("StepLR", step_size=1, gamma=0.5),
                                      ("tb", TensorBoard(writer))])
    twin = clone(est)
    assert twin.callbacks[0] is not est.callbacks[0]
    assert twin.callbacks[0].get_params() == est.callbacks[0].get_params()
    search = GridSearchCV(est, {"learning_rate_init": [1e-3, 1e-2]}, cv=2).fit(X, y)
    lrs = search.best_estimator_.history_[:, "event_lr"]
    init = search.best_params_["learning_rate_init"]
    np.testing.assert_allclose(lrs, [init, init / 2, init / 4])
    assert writer.scalars == []  # clones log to copies of the writer, not to this one


# ------------------------------------------------------- learning rate
@pytest.mark.parametrize("path", PATHS)
def test_learning_rate_changed_mid_fit_takes_effect_on_every_path(path, clf_data):
    X, y = clf_data
    rec = RecordWeights()
    clf = _clf(max_iter=4, tol=0, callbacks=[SetLearningRate(epoch=3, lr=0.0), rec],
               **PATHS[path]).fit(X, y)
    assert clf.engine_ == path.split("-adam")[0].split("-sgd")[0]
    w = rec.weights_
    assert not any(torch.equal(a, b) for a, b in zip(w[0], w[1], strict=True))
    for later in w[2:]:  # rate 0 from epoch 3 on: nothing moves
        assert all(torch.equal(a, b) for a, b in zip(w[1], later, strict=True))


@pytest.mark.parametrize("path", PATHS)
def test_lr_scheduler_per_epoch_and_per_batch(path, clf_data):
    X, y = clf_data
    per_epoch = LRScheduler("StepLR", step_size=1, gamma=0.1)
    clf = _clf(max_iter=3, learning_rate_init=0.01, tol=0, callbacks=[per_epoch],
               **PATHS[path]).fit(X, y)
    np.testing.assert_allclose(clf.history_[:, "event_lr"], [1e-2, 1e-3, 1e-4], rtol=1e-6)
    assert clf.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(1e-5)
    constant = _clf(max_iter=3, learning_rate_init=0.01, tol=0, **PATHS[path]).fit(X, y)
    assert constant.loss_curve_[:1] == clf.loss_curve_[:1]  # same first epoch
    assert constant.loss_curve_[2] != clf.loss_curve_[2]

    per_batch = LRScheduler("ExponentialLR", gamma=0.9, step_every="batch")
    clf = _clf(max_iter=2, learning_rate_init=0.01, callbacks=[per_batch],
               **PATHS[path]).fit(X, y)
    lrs = [b["event_lr"] for epoch in clf.history_ for b in epoch["batches"]]
    np.testing.assert_allclose(lrs, 0.01 * 0.9 ** np.arange(8), rtol=1e-6)
    batch_losses = [b["train_loss"] for b in clf.history_[0]["batches"]]
    assert len(batch_losses) == 4 and np.isfinite(batch_losses).all()
    # the epoch loss is the size-weighted mean of its batch losses
    assert np.mean(batch_losses) == pytest.approx(clf.loss_curve_[0], rel=1e-5)


def test_momentum_and_betas_are_read_at_every_step(clf_data):
    # Changing Adam's beta_1 mid-fit must act on the direct fused-Adam path
    # exactly as on torch's own Optimizer.step (the eager-step estimator).
    X, y = clf_data

    class SetBetas(Callback):
        def on_epoch_begin(self, net, **kwargs):
            if len(net.history) == 1:
                for group in net.optimizer_.param_groups:
                    group["betas"] = (0.0, 0.5)

    fits = {}
    for fast in (True, False):
        est = _clf(max_iter=3, tol=0, callbacks=[SetBetas()])
        est._fast_engine = fast
        fits[fast] = est.fit(X, y)
    assert fits[True].engine_ == "cpu-manual" and fits[False].engine_ == "eager"
    np.testing.assert_allclose(fits[True].loss_curve_, fits[False].loss_curve_, rtol=1e-4)
    plain = _clf(max_iter=3, tol=0).fit(X, y)
    assert abs(plain.loss_curve_[2] - fits[True].loss_curve_[2]) > 1e-3


# ------------------------------------------------------------- stopping
def test_skorch_early_stopping_stops_without_a_warning(clf_data, recwarn):
    X, y = clf_data
    stop = EarlyStopping(monitor="valid_loss", patience=2, threshold=10.0)
    clf = _clf(max_iter=50, early_stopping=True, n_iter_no_change=40, callbacks=[stop])
    clf.fit(X, y)
    assert clf.n_iter_ == 3  # 1 + patience epochs without a 10.0 improvement
    assert clf.net_.stop_reason == "callback EarlyStopping"
    assert len(clf.validation_scores_) == clf.n_iter_
    assert not [w for w in recwarn if "interrupt" in str(w.message)]


@pytest.mark.parametrize("event", ["on_batch_end", "on_epoch_begin"])
def test_callback_stop_inside_an_epoch_rolls_it_back(event, clf_data, recwarn):
    X, y = clf_data
    reference = _clf(max_iter=2, tol=0).fit(X, y)
    recwarn.clear()  # its ConvergenceWarning

    class StopInEpoch3(Callback):
        pass

    def stop(self, net, **kwargs):
        if len(net.history) == 3:
            raise KeyboardInterrupt

    setattr(StopInEpoch3, event, stop)
    clf = _clf(max_iter=10, tol=0, callbacks=[StopInEpoch3()]).fit(X, y)
    assert clf.n_iter_ == 2 and clf.net_.stop_reason == "callback StopInEpoch3"
    np.testing.assert_array_equal(clf.predict_proba(X), reference.predict_proba(X))
    assert not recwarn.list


def test_ctrl_c_inside_a_callback_is_a_user_interrupt(clf_data):
    X, y = clf_data

    class PressCtrlC(Callback):
        def on_epoch_end(self, net, **kwargs):
            if len(net.history) == 3:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)  # interrupted by the signal

    handler = signal.getsignal(signal.SIGINT)
    clf = _clf(max_iter=10, tol=0, callbacks=[PressCtrlC()])
    with pytest.raises(KeyboardInterrupt, match="interrupted after 2 complete epoch"):
        clf.fit(X, y)
    assert clf.n_iter_ == 2 and clf.net_.stop_reason == "interrupted"
    assert signal.getsignal(signal.SIGINT) is handler  # the caller's handler is back


# --------------------------------------------------- ecosystem callbacks
def test_checkpoint_saves_and_net_loads_params(clf_data, tmp_path):
    X, y = clf_data
    cp = Checkpoint(monitor="valid_loss_best", dirname=str(tmp_path))
    clf = _clf(max_iter=6, early_stopping=True, callbacks=[cp]).fit(X, y)
    assert {"params.pt", "optimizer.pt", "criterion.pt", "history.json"} <= {
        p.name for p in tmp_path.iterdir()}
    best = int(np.argmin(clf.history_[:, "valid_loss"]))
    assert clf.history_[best, "event_cp"] is True
    saved = torch.load(tmp_path / "params.pt")
    other = _clf(max_iter=1).fit(X, y)
    other.net_.load_params(f_params=str(tmp_path / "params.pt"))
    for k, v in other.module_.state_dict().items():
        assert torch.equal(v, saved[k])


def test_tensorboard_logs_every_epoch_with_a_fake_writer(clf_data):
    X, y = clf_data
    writer = FakeWriter()
    _clf(max_iter=3, early_stopping=True, callbacks=[TensorBoard(writer)]).fit(X, y)
    tags = {tag for tag, _, _ in writer.scalars}
    assert {"Loss/train_loss", "Loss/valid_loss", "Loss/valid_score"} <= tags
    steps = [step for tag, _, step in writer.scalars if tag == "Loss/train_loss"]
    assert steps == [1, 2, 3] and writer.closed


@pytest.mark.parametrize("path", PATHS)
def test_on_grad_computed_sees_gradients_and_can_clip(path, reg_data):
    X, y = reg_data
    seen = []

    class Spy(Callback):
        def on_grad_computed(self, net, named_parameters, **kwargs):
            seen.append(sum(p.grad.norm() ** 2 for _, p in named_parameters) ** 0.5)

    kw = dict(PATHS[path], solver="sgd", momentum=0.0, learning_rate_init=1.0)
    est = DeepMLPRegressor((16,), batch_size=50, random_state=0, **kw,
                           callbacks=[Spy(), GradientNormClipping(1e-3)])
    before = None
    for _ in range(2):
        est.partial_fit(X * 100, y * 100)
        if before is None:
            before = [p.detach().clone() for p in est.module_.parameters()]
    moved = torch.cat([(a - b).flatten()
                       for a, b in zip(est.module_.parameters(), before, strict=True)])
    assert len(seen) == 8 and all(float(n) > 1e-3 for n in seen)
    assert moved.norm().item() <= 4 * 1e-3 * (1 + 1e-4)  # clipped by the skorch callback


# ------------------------------------------------------- the trainer object
def test_one_trainer_reused_by_warm_start_and_partial_fit(clf_data):
    X, y = clf_data
    clf = _clf(max_iter=2, tol=0).fit(X, y)
    net, optimizer, history = clf.net_, clf.net_.optimizer_, clf.history_
    clf.partial_fit(X, y)
    assert clf.net_ is net and net.optimizer_ is optimizer  # same solver: state kept
    assert clf.history_ is history and clf.n_iter_ == 1 and len(clf.loss_curve_) == 3
    clf.set_params(warm_start=True, max_iter=2).fit(X, y)
    assert clf.net_ is net and net.optimizer_ is not optimizer  # fresh, like sklearn
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 5 and net.max_epochs == 2
    clf.set_params(warm_start=False).fit(X, y)
    assert clf.net_ is not net and clf.n_iter_ == 2


def test_net_methods_work_in_the_networks_terms(clf_data, tmp_path):
    X, y = clf_data
    clf = _clf(max_iter=2).fit(X, y)
    net = clf.net_
    X32 = X.astype(np.float32)
    raw = net.predict_proba(X32)
    np.testing.assert_array_equal(raw, net.predict(X32))
    np.testing.assert_array_equal(raw.argmax(1), clf.predict(X))
    codes = np.searchsorted(clf.classes_, y)
    n = len(net.history)
    net.partial_fit(X32, codes)
    assert len(net.history) == n + 2  # max_epochs of the last fit
    net.fit(X, codes)  # skorch's fit: fresh optimizer and history, the same module
    assert len(net.history) == 2 and net.module_ is clf.module_
    assert np.any(net.predict_proba(X32) != raw)
    net.save_params(f_params=str(tmp_path / "w.pt"), f_history=str(tmp_path / "h.json"))
    twin = _clf(max_iter=1).fit(X, y)
    twin.net_.load_params(f_params=str(tmp_path / "w.pt"))
    np.testing.assert_array_equal(twin.predict_proba(X), clf.predict_proba(X))


def test_regressor_net_takes_1d_targets(reg_data):
    X, y = reg_data
    reg = DeepMLPRegressor((8,), max_iter=1, random_state=0).fit(X, y)
    reg.net_.partial_fit(X, y)
    assert reg.net_.history[-1, "train_samples"] == len(X)
    assert reg.net_.predict(X).shape == (len(X), 1)


def test_pickled_estimator_keeps_callbacks_without_their_fit_state(clf_data):
    import pickle

    X, y = clf_data
    clf = _clf(max_iter=2, callbacks=[("sched", LRScheduler("StepLR", step_size=1))]).fit(X, y)
    assert hasattr(clf.callbacks[0][1], "lr_scheduler_")  # used as given, like skorch
    loaded = pickle.loads(pickle.dumps(clf))
    name, cb = loaded.callbacks[0]
    assert name == "sched" and not hasattr(cb, "lr_scheduler_")
    assert cb.get_params() == clf.callbacks[0][1].get_params()
    assert hasattr(clf.callbacks[0][1], "lr_scheduler_")  # the original is untouched
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    loaded.partial_fit(X, y)
    assert loaded.n_iter_ == 1 and len(loaded.loss_curve_) == 3


# -------------------------------------------------------------- CUDA graph
@pytest.mark.gpu
def test_learning_rate_changed_mid_fit_takes_effect_in_the_cuda_graph(clf_data):
    X, y = clf_data
    rec = RecordWeights()
    clf = _clf(device="cuda", batch_size=32, max_iter=4, tol=0,
               callbacks=[SetLearningRate(epoch=3, lr=0.0), rec]).fit(X, y)
    assert clf.engine_ == "cuda-graph", clf.engine_reason_
    w = rec.weights_
    assert not any(torch.equal(a, b) for a, b in zip(w[0], w[1], strict=True))
    for later in w[2:]:
        assert all(torch.equal(a, b) for a, b in zip(w[1], later, strict=True))


@pytest.mark.gpu
@pytest.mark.parametrize("solver", ["adam", "momentum", "nadam"])
def test_schedules_and_momentum_changes_match_eager_in_the_cuda_graph(solver, clf_data):
    X, y = clf_data

    class SetMomentum(Callback):
        def on_epoch_begin(self, net, **kwargs):
            if len(net.history) == 2:
                for group in net.optimizer_.param_groups:
                    if "betas" in group:
                        group["betas"] = (0.5, group["betas"][1])
                    else:
                        group["momentum"] = 0.5

    fits = {}
    for fast in (True, False):
        est = _clf(device="cuda", batch_size=32, max_iter=3, tol=0, solver=solver,
                   learning_rate_init=0.01, callbacks=[
                       LRScheduler("ExponentialLR", gamma=0.95, step_every="batch"),
                       SetMomentum()])
        est._fast_engine = fast
        fits[fast] = est.fit(X, y)
    assert fits[True].engine_ == "cuda-graph", fits[True].engine_reason_
    np.testing.assert_allclose(fits[True].loss_curve_, fits[False].loss_curve_, rtol=1e-4)
    np.testing.assert_allclose(fits[True].predict_proba(X), fits[False].predict_proba(X),
                               rtol=1e-3, atol=1e-5)
    lr = fits[True].net_.optimizer_.param_groups[0]["lr"]
    assert isinstance(lr, float)  # the graph's tensor rate is handed back as a float
    assert lr == pytest.approx(0.01 * 0.95 ** 21, rel=1e-5)  # 7 batches x 3 epochs


# ------------------------------------------- review findings (regressions)
def test_checkpoint_taken_mid_fit_loads_with_separate_step_counters(clf_data, tmp_path):
    # The direct fused-Adam step shares step counters while training; a
    # checkpoint written then must not make them advance once per parameter.
    X, y = clf_data
    cp = Checkpoint(monitor="train_loss_best", dirname=str(tmp_path))
    clf = _clf(max_iter=3, tol=0, callbacks=[cp]).fit(X, y)  # 4 steps per epoch
    clf.net_.load_params(checkpoint=cp)
    steps = [st["step"] for st in clf.net_.optimizer_.state.values()]
    assert len({id(t) for t in steps}) == len(steps)
    clf.partial_fit(X, y)
    assert {float(st["step"]) for st in clf.net_.optimizer_.state.values()} == {16.0}


def test_checkpoint_optimizer_file_continues_in_a_plain_torch_adam(clf_data, tmp_path):
    # Issue 23: the direct fused-Adam step shared one step counter per group,
    # so skorch's Checkpoint wrote 2 step tensors for 6 parameters; loaded
    # into a plain torch Adam, one step moved the counter by 3, not 1.
    X, y = clf_data
    cp = Checkpoint(monitor=None, dirname=str(tmp_path))  # every epoch, mid-fit
    clf = _clf(hidden_layer_sizes=(8, 8), max_iter=3, tol=0, callbacks=[cp]).fit(X, y)
    assert clf.engine_ == "cpu-manual"
    saved = torch.load(tmp_path / "optimizer.pt")
    counters = [st["step"] for st in saved["state"].values()]
    assert len(counters) == 6 and len({id(t) for t in counters}) == 6
    params = [torch.nn.Parameter(p.detach().clone()) for p in clf.module_.parameters()]
    decay = [params[i] for i, (name, _) in enumerate(clf.module_.named_parameters())
             if name.endswith("linear.weight")]
    rest = [p for p in params if all(p is not q for q in decay)]
    plain = torch.optim.Adam([{"params": decay}, {"params": rest, "weight_decay": 0.0}])
    plain.load_state_dict(saved)
    for p in params:
        p.grad = torch.ones_like(p)
    plain.step()
    assert [float(plain.state[p]["step"]) for p in params] == [13.0] * 6


def test_rate_change_after_a_callback_reloads_the_optimizer(clf_data, tmp_path):
    X, y = clf_data
    saved = _clf(max_iter=1).fit(X, y)
    saved.net_.save_params(f_optimizer=str(tmp_path / "opt.pt"))

    class ReloadThenFreeze(Callback):
        def on_epoch_begin(self, net, **kwargs):
            if len(net.history) == 2:
                net.load_params(f_optimizer=str(tmp_path / "opt.pt"))
            if len(net.history) == 3:
                for group in net.optimizer_.param_groups:
                    group["lr"] = 0.0

    rec = RecordWeights()
    clf = _clf(max_iter=4, tol=0, callbacks=[ReloadThenFreeze(), rec]).fit(X, y)
    assert clf.engine_ == "cpu-manual"
    w = rec.weights_
    assert not any(torch.equal(a, b) for a, b in zip(w[0], w[1], strict=True))
    for later in w[2:]:
        assert all(torch.equal(a, b) for a, b in zip(w[1], later, strict=True))


def test_ctrl_c_after_scoring_does_not_keep_the_rolled_back_epochs_weights(clf_data):
    X, y = clf_data

    class CtrlCAtEpoch4(Callback):
        def on_epoch_end(self, net, **kwargs):
            if len(net.history) == 4:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)

    kw = dict(max_iter=20, tol=0, early_stopping=True, n_iter_no_change=50,
              learning_rate_init=0.01)
    clf = _clf(**kw, callbacks=[CtrlCAtEpoch4()])
    with pytest.raises(KeyboardInterrupt, match="interrupted after 3 complete epoch"):
        clf.fit(X, y)
    reference = _clf(**{**kw, "max_iter": 3}).fit(X, y)  # best of the same 3 epochs
    assert clf.validation_scores_ == reference.validation_scores_
    np.testing.assert_array_equal(clf.predict_proba(X), reference.predict_proba(X))


def test_ctrl_c_in_a_nested_fit_stops_the_outer_fit(clf_data):
    X, y = clf_data

    class FitsAnotherModel(Callback):
        def on_epoch_end(self, net, **kwargs):
            if len(net.history) == 2:
                class PressCtrlC(Callback):
                    def on_epoch_end(self, net, **kwargs):
                        os.kill(os.getpid(), signal.SIGINT)
                        time.sleep(1)

                _clf(max_iter=5, callbacks=[PressCtrlC()]).fit(X, y)

    handler = signal.getsignal(signal.SIGINT)
    outer = _clf(max_iter=10, tol=0, callbacks=[FitsAnotherModel()])
    with pytest.raises(KeyboardInterrupt, match="interrupted after 1 complete epoch"):
        outer.fit(X, y)
    assert outer.n_iter_ == 1 and outer.net_.stop_reason == "interrupted"
    assert signal.getsignal(signal.SIGINT) is handler


@pytest.mark.parametrize("how", ["callback", "ctrl-c"])
def test_interrupt_in_on_train_end_keeps_the_fit(how, clf_data):
    X, y = clf_data

    class AtTrainEnd(Callback):
        def on_train_end(self, net, **kwargs):
            if how == "ctrl-c":
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
            raise KeyboardInterrupt

    reference = _clf(max_iter=3, tol=0).fit(X, y)
    if how == "ctrl-c":
        clf = _clf(max_iter=3, tol=0, callbacks=[AtTrainEnd()])
        with pytest.raises(KeyboardInterrupt, match="interrupted after 3 complete epoch"):
            clf.fit(X, y)
    else:
        clf = _clf(max_iter=3, tol=0, callbacks=[AtTrainEnd()]).fit(X, y)
    assert clf.n_iter_ == 3
    np.testing.assert_array_equal(clf.predict_proba(X), reference.predict_proba(X))


def test_tensors_recorded_by_callbacks_become_floats(clf_data, tmp_path):
    import json
    import pickle

    X, y = clf_data

    class RecordsTensors(Callback):
        def on_batch_end(self, net, loss, **kwargs):
            net.history.record_batch("loss_tensor", loss)

        def on_epoch_end(self, net, **kwargs):
            net.history.record("lr_tensor", torch.tensor(0.5))

    clf = _clf(max_iter=2, callbacks=[RecordsTensors()]).fit(X, y)
    assert clf.history_[-1]["lr_tensor"] == 0.5
    assert all(isinstance(b["loss_tensor"], float) for b in clf.history_[-1]["batches"])
    clf.net_.save_params(f_history=str(tmp_path / "h.json"))
    assert json.loads((tmp_path / "h.json").read_text())[-1]["lr_tensor"] == 0.5
    rows = pickle.loads(pickle.dumps(list(clf.history_)))
    assert not any(isinstance(v, torch.Tensor) for row in rows
                   for record in [row, *row["batches"]] for v in record.values())


@pytest.mark.parametrize("params", [
    # momentum, not Adam: the input norm's shift has a zero gradient up to rounding
    # here (BatchNorm follows the first linear layer), and Adam would turn each
    # path's rounding noise into full steps (see tests/test_steps.py)
    dict(activation="elu", batch_norm="before", batch_norm_input=True, solver="momentum"),
    dict(activation="relu", batch_norm="after", dropout=0.2, solver="momentum"),
    dict(activation="selu", dropout=0.1, solver="nadam"),  # alpha dropout
    dict(activation="gelu", batch_norm="before", dropout=0.3, max_norm=2.0, alpha=1e-3),
    dict(activation="swish", batch_norm="after", batch_norm_input=True, solver="adamw"),
], ids=["bn-before-input", "bn-after-dropout", "alpha-dropout", "gelu-bn-dropout-maxnorm",
        "swish-bn-after-input"])
def test_batch_norm_and_dropout_fits_take_the_hand_written_step_and_match_eager(
        params, clf_data):
    # A seeded fit draws the same dropout masks on both paths, so a whole fit
    # (shuffling, masks, BatchNorm statistics, early stopping's held-out score)
    # agrees with the autograd step up to float32 rounding.
    X, y = clf_data
    fits = {}
    for fast in (True, False):
        est = _clf(hidden_layer_sizes=(16, 12), max_iter=4, tol=0, early_stopping=True,
                   n_iter_no_change=10, **params)
        est._fast_engine = fast
        fits[fast] = est.fit(X, y)
    assert (fits[True].engine_, fits[False].engine_) == ("cpu-manual", "eager")
    assert fits[True].engine_reason_ is None
    np.testing.assert_allclose(fits[True].loss_curve_, fits[False].loss_curve_, rtol=1e-4)
    for (k, a), b in zip(fits[True].module_.state_dict().items(),
                         fits[False].module_.state_dict().values(), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-4, err_msg=k)
    np.testing.assert_allclose(fits[True].predict_proba(X), fits[False].predict_proba(X),
                               atol=1e-4)


def test_ctrl_c_while_the_best_weights_are_restored_still_restores_them(clf_data,
                                                                      monkeypatch):
    # Found in review: a SIGINT at the start of the stopping rule's
    # on_train_end left the last epoch's weights, while the message and
    # best_validation_score_ spoke of the best epoch's.
    from sklearn_deepnet._callbacks import ConvergenceMonitor

    X, y = clf_data
    kw = dict(max_iter=8, tol=0, early_stopping=True, n_iter_no_change=50,
              learning_rate_init=0.05)
    reference = _clf(**kw).fit(X, y)
    original, calls = ConvergenceMonitor.on_train_end, {"n": 0}

    def interrupted(self, net, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        return original(self, net, **kwargs)

    monkeypatch.setattr(ConvergenceMonitor, "on_train_end", interrupted)
    clf = _clf(**kw)
    with pytest.raises(KeyboardInterrupt, match="after 8 complete epoch.*best validation"):
        clf.fit(X, y)
    assert calls["n"] == 2
    assert clf.best_validation_score_ == reference.best_validation_score_
    np.testing.assert_array_equal(clf.predict_proba(X), reference.predict_proba(X))
