"""_events: skorch's callback contract on the trainer's own epoch loop.

tests/test_callbacks.py and tests/test_trainer.py check skorch's callbacks in
whole fits; here each part runs on its own against a recording stand-in for
the trainer: which callbacks implement an event or want ``y_pred``, what a
network's outputs are (``output_kind``), the batch events and their history
records, the validation batch events, the scoring view's predictions, and
``dispatch`` (the view for scoring callbacks, ``LRScheduler`` resumed).
"""

import functools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.special import expit, log_softmax, softmax
from sklearn.base import is_classifier, is_regressor
from sklearn.utils import Tags, TargetTags
from skorch.callbacks import (
    BatchScoring,
    Callback,
    EpochScoring,
    LRScheduler,
    PassthroughScoring,
    PrintLog,
)
from skorch.callbacks.scoring import ScoringBase
from skorch.dataset import Dataset
from skorch.history import History

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor
from sklearn_deepnet._engine.ensemble import MemberLoss
from sklearn_deepnet._engine.losses import (
    LabelSmoothed,
    PerSampleLoss,
    binary_log_loss,
    huber,
    multiclass_log_loss,
    poisson,
    squared_error,
)
from sklearn_deepnet._engine.module import MLP
from sklearn_deepnet._events import (
    BATCH_EVENTS,
    BatchEvents,
    ScoringView,
    dispatch,
    implements_event,
    output_kind,
    validation_dataset,
    validation_epoch,
    wants_outputs,
)


class OnEpoch(Callback):
    def on_epoch_end(self, net, **kwargs):
        pass


class OnBatchEnd(Callback):
    def on_batch_end(self, net, **kwargs):
        pass


class WantsYPred(Callback):
    def on_batch_end(self, net, batch=None, training=None, loss=None, y_pred=None, **kwargs):
        pass


class InheritsYPred(WantsYPred):
    pass


class OnGrad(Callback):
    def on_grad_computed(self, net, named_parameters, **kwargs):
        pass


class _NoSignature:
    __signature__ = "not a signature"  # inspect.signature raises TypeError

    def __call__(self, *args, **kwargs):
        pass


class UnreadableBatchEnd(Callback):
    on_batch_end = _NoSignature()


def _mlp(n_features=3, sizes=(4,), n_outputs=2, **options):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return MLP(n_features, sizes, n_outputs, **options)


# --------------------------------------------------------- implements_event
def test_implements_event_reads_the_class():
    assert BATCH_EVENTS == ("on_batch_begin", "on_batch_end", "on_grad_computed")
    assert implements_event(OnBatchEnd(), "on_batch_end")
    assert implements_event(OnBatchEnd, "on_batch_end")  # a class too
    assert implements_event(InheritsYPred, "on_batch_end")  # inherited from a subclass
    assert not implements_event(OnBatchEnd, "on_batch_begin")
    assert not implements_event(Callback(), "on_batch_end")
    assert implements_event(OnGrad(), "on_grad_computed")
    plain = OnEpoch()
    plain.on_batch_end = lambda net, **kwargs: None  # an instance attribute does not count
    assert not implements_event(plain, "on_batch_end")
    assert implements_event(EpochScoring("accuracy"), "on_batch_end")  # caches y_pred
    assert not implements_event(PrintLog(), "on_batch_end")


# ------------------------------------------------------------ wants_outputs
@pytest.mark.parametrize("cb, expected", [
    (WantsYPred(), True), (InheritsYPred, True), (OnBatchEnd(), False), (OnEpoch(), False),
    (OnGrad(), False), (EpochScoring("accuracy"), True), (BatchScoring("accuracy"), True),
    (PassthroughScoring("train_loss"), False), (UnreadableBatchEnd(), True),
], ids=["y_pred-param", "inherited-class", "no-y_pred", "no-batch-event", "grad-only",
        "epoch-scoring", "batch-scoring", "passthrough", "no-signature"])
def test_wants_outputs(cb, expected):
    assert wants_outputs(cb) is expected


def test_a_scoring_callback_without_on_batch_end_wants_no_outputs():
    class ScoresAtEpochEnd(ScoringBase):
        def on_epoch_end(self, net, **kwargs):
            pass

    assert not wants_outputs(ScoresAtEpochEnd("accuracy"))


# -------------------------------------------------------------- output_kind
def _kind_net(fn, out_features, **loss_kwargs):
    module = SimpleNamespace(output=SimpleNamespace(linear=SimpleNamespace(
        out_features=out_features)))
    criterion = fn if fn is None else PerSampleLoss(fn, **loss_kwargs)
    return SimpleNamespace(criterion_=criterion, module_=module)


@pytest.mark.parametrize("fn, out_features, kind", [
    (multiclass_log_loss, 3, "multiclass"),
    (binary_log_loss, 1, "binary"),
    (binary_log_loss, 4, "multilabel"),
    (squared_error, 1, "regression"),
    (poisson, 2, "regression"),
    (LabelSmoothed(multiclass_log_loss, 0.1), 3, "multiclass"),
    (LabelSmoothed(binary_log_loss, 0.1), 1, "binary"),
    (MemberLoss(LabelSmoothed(binary_log_loss, 0.2), 2, 3), 3, "multilabel"),
    (MemberLoss(multiclass_log_loss, 4, 3), 3, "multiclass"),
    (MemberLoss(squared_error, 2, 1), 1, "regression"),
    (MemberLoss(poisson, 2, 1), 1, "regression"),
    (None, 1, "regression"),  # no criterion yet
], ids=lambda v: getattr(v, "__name__", None) or (v if isinstance(v, str) else None))
def test_output_kind(fn, out_features, kind):
    assert output_kind(_kind_net(fn, out_features)) == kind


def test_output_kind_reads_a_plain_function_too():
    net = _kind_net(None, 1)
    net.criterion_ = binary_log_loss  # not wrapped in a PerSampleLoss
    assert output_kind(net) == "binary"


# -------------------------------------------------------------- BatchEvents
class _Net:
    """What BatchEvents and validation_epoch use of the trainer, recording notify."""

    def __init__(self, callbacks=(), device="cpu", module=None, criterion=None,
                 batch_size=3):
        self.callbacks_ = [(f"cb{i}", cb) for i, cb in enumerate(callbacks)]
        self.device = device
        self.module_ = module if module is not None else _mlp()
        self.criterion_ = criterion
        self.batch_size = batch_size
        self.history = History()
        self.history.new_epoch()
        self.calls = []

    def notify(self, method_name, **kwargs):
        if method_name == "on_batch_begin":  # as skorch's NeuralNet.on_batch_begin
            self.history.new_batch()
        record = dict(self.history[-1]["batches"][-1]) if self.history[-1]["batches"] else {}
        self.calls.append((method_name, kwargs, record))


def test_batch_events_flags():
    events = BatchEvents(_Net([OnEpoch(), OnBatchEnd()]))
    assert (events.wants_gradients, events.wants_outputs, events.immediate) == (
        False, False, True)
    events = BatchEvents(_Net([OnGrad(), WantsYPred()], device=torch.device("cpu")))
    assert (events.wants_gradients, events.wants_outputs) == (True, True)
    # another device: the batch losses are read once per epoch (only the type counts)
    assert not BatchEvents(_Net([], device="cuda:1")).immediate
    assert not BatchEvents(_Net([], device="mps")).immediate


@pytest.mark.parametrize("wants", [False, True], ids=["no-y_pred", "y_pred"])
def test_a_training_batch_on_cpu(wants):
    net = _Net([WantsYPred() if wants else OnBatchEnd()])
    events = BatchEvents(net)
    xb, yb = torch.ones(5, 3), torch.zeros(5, dtype=torch.int64)
    outputs = torch.full((5, 2), 0.5)
    loss = torch.tensor(0.75)
    events.batch_begin(xb, yb)
    assert events.batch == (xb, yb)
    events.gradients_computed()
    events.batch_end(xb, yb, loss, outputs)
    assert events.batch is None
    (begin, b_kwargs, _), (grad, g_kwargs, _), (end, e_kwargs, at_end) = net.calls
    assert (begin, grad, end) == ("on_batch_begin", "on_grad_computed", "on_batch_end")
    assert b_kwargs["batch"][0] is xb and b_kwargs["batch"][1] is yb
    assert b_kwargs["training"] is True
    assert [n for n, _ in g_kwargs["named_parameters"]] == [
        n for n, _ in net.module_.named_parameters()]
    assert all(p is q for (_, p), q in zip(g_kwargs["named_parameters"],
                                           net.module_.parameters(), strict=True))
    assert g_kwargs["batch"][0] is xb and g_kwargs["training"] is True
    assert e_kwargs["loss"] is loss and e_kwargs["training"] is True
    assert e_kwargs["batch"][0] is xb
    if wants:
        assert e_kwargs["y_pred"] is outputs  # one network: its outputs as they are
    else:
        assert "y_pred" not in e_kwargs
    # the record is complete before on_batch_end, as in skorch
    assert at_end == {"train_loss": 0.75, "train_batch_size": 5}
    assert net.history[-1]["batches"] == [{"train_loss": 0.75, "train_batch_size": 5}]
    events.end_epoch()  # nothing deferred: nothing changes
    assert net.history[-1]["batches"] == [{"train_loss": 0.75, "train_batch_size": 5}]


def test_no_outputs_from_the_step_give_y_pred_none():
    net = _Net([WantsYPred()])
    events = BatchEvents(net)
    events.batch_begin(torch.ones(2, 3), torch.zeros(2))
    events.batch_end(torch.ones(2, 3), torch.zeros(2), torch.tensor(1.0))
    assert net.calls[-1][1]["y_pred"] is None


def test_batch_losses_on_another_device_are_written_at_the_end_of_the_epoch():
    net = _Net([OnBatchEnd()], device="cuda")  # (the tensors themselves stay on the CPU)
    events = BatchEvents(net)
    for size, value in ((4, 0.5), (4, 0.25), (2, 0.125)):
        xb = torch.ones(size, 3)
        events.batch_begin(xb, None)
        events.batch_end(xb, None, torch.tensor(value))
        # on_batch_end got the tensor; the record has no train_loss yet
        assert net.calls[-1][2] == {"train_batch_size": size}
    assert [b.get("train_loss") for b in net.history[-1]["batches"]] == [None] * 3
    events.end_epoch()
    assert net.history[-1]["batches"] == [
        {"train_batch_size": 4, "train_loss": 0.5}, {"train_batch_size": 4, "train_loss": 0.25},
        {"train_batch_size": 2, "train_loss": 0.125}]
    assert events.losses == []
    events.end_epoch()  # a second call writes nothing
    assert net.history[-1]["batches"][0]["train_loss"] == 0.5


def test_an_ensembles_batch_outputs_are_combined_as_predicted():
    module = _mlp(3, (4,), 2, n_members=3)
    net = _Net([WantsYPred()], module=module)
    events = BatchEvents(net)
    members = torch.arange(30, dtype=torch.float32).reshape(5, 6)  # (n, members * outputs)
    events.batch_begin(torch.ones(5, 3), None)
    events.batch_end(torch.ones(5, 3), None, torch.tensor(0.0), members)
    y_pred = net.calls[-1][1]["y_pred"]
    # the mean of the three members' outputs (member m in columns 2m, 2m + 1)
    expected = (members[:, 0:2] + members[:, 2:4] + members[:, 4:6]) / 3
    torch.testing.assert_close(y_pred, expected)


# ------------------------------------------------------- validation_dataset
def test_validation_dataset():
    X, y, w = np.zeros((4, 2), np.float32), np.arange(4), np.ones(4)
    monitor = SimpleNamespace(validation=(X, y, w))
    dataset = validation_dataset(_Net([OnEpoch()]))
    assert dataset is None  # no stopping rule
    net = _Net([OnEpoch()])
    net.callbacks_.insert(0, ("convergence", monitor))
    dataset = validation_dataset(net)
    assert isinstance(dataset, Dataset) and dataset.X is X and dataset.y is y
    monitor.validation = None  # no validation split (or after training)
    assert validation_dataset(net) is None


# --------------------------------------------------------- validation_epoch
class _Monitor:
    def __init__(self, validation, raw):
        self.validation = validation
        self.raw = raw
        self.calls = 0

    def validation_outputs(self, net):
        self.calls += 1
        return self.raw


def _validation_net(callbacks, criterion, y, raw, w, batch_size=3):
    X = np.arange(len(y) * 2, dtype=np.float32).reshape(len(y), 2)
    monitor = _Monitor((X, y, w), raw)
    net = _Net(callbacks, criterion=criterion, batch_size=batch_size)
    net.callbacks_.insert(0, ("convergence", monitor))
    return net, monitor, X


@pytest.mark.parametrize("wants", [False, True], ids=["no-y_pred", "y_pred"])
def test_validation_batches_of_a_regressor(wants):
    y = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0], [6.0]], np.float32)
    raw = np.array([[0.5], [1.0], [1.0], [4.0], [3.0], [5.5], [8.0]], np.float32)
    w = np.array([1.0, 2.0, 1.0, 0.5, 1.0, 3.0, 2.0])
    net, monitor, X = _validation_net([WantsYPred() if wants else OnBatchEnd()],
                                      PerSampleLoss(squared_error), y, raw, w)
    events = SimpleNamespace(wants_outputs=wants)
    validation_epoch(net, Dataset(X, y), events)
    assert monitor.calls == 1  # the outputs once per epoch
    losses = 0.5 * (raw[:, 0].astype(np.float64) - y[:, 0]) ** 2
    spans = [(0, 3), (3, 6), (6, 7)]
    expected = [np.dot(losses[a:b], w[a:b]) / w[a:b].sum() for a, b in spans]
    batches = net.history[-1]["batches"]
    assert [b["valid_batch_size"] for b in batches] == [3, 3, 1]
    np.testing.assert_allclose([b["valid_loss"] for b in batches], expected, rtol=1e-6)
    assert net.history[-1]["valid_batch_count"] == 3
    names = [name for name, _, _ in net.calls]
    assert names == ["on_batch_begin", "on_batch_end"] * 3
    for (a, b), (_, begin, _), (_, end, record) in zip(spans, net.calls[::2], net.calls[1::2],
                                                       strict=True):
        assert begin["training"] is False and end["training"] is False
        xb, yb = begin["batch"]
        np.testing.assert_array_equal(xb.numpy(), X[a:b])
        np.testing.assert_array_equal(yb.numpy(), y[a:b])
        assert end["batch"] is begin["batch"]
        assert end["loss"].item() == pytest.approx(record["valid_loss"])
        assert record["valid_batch_size"] == b - a  # recorded before on_batch_end
        if wants:
            np.testing.assert_array_equal(end["y_pred"].numpy(), raw[a:b])
        else:
            assert "y_pred" not in end


def test_validation_batches_of_a_classifier_weigh_the_log_loss():
    raw = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 3.0], [0.5, -0.5, 0.0]],
                   np.float32)
    y = np.array([0, 2, 2, 1])
    w = np.array([1.0, 3.0, 1.0, 2.0], np.float32)
    net, _, X = _validation_net([OnBatchEnd()], PerSampleLoss(multiclass_log_loss, True),
                                y, raw, w, batch_size=4)
    validation_epoch(net, Dataset(X, y), SimpleNamespace(wants_outputs=False))
    losses = -log_softmax(raw.astype(np.float64), axis=1)[np.arange(4), y]
    (record,) = net.history[-1]["batches"]
    assert record["valid_loss"] == pytest.approx(np.average(losses, weights=w), rel=1e-6)
    assert record["valid_batch_size"] == 4 and net.history[-1]["valid_batch_count"] == 1


def test_no_validation_events_without_batch_events_or_a_split():
    y = np.zeros((4, 1), np.float32)
    net, monitor, X = _validation_net([OnEpoch()], PerSampleLoss(squared_error), y, y,
                                      np.ones(4))
    validation_epoch(net, Dataset(X, y), None)  # no callback implements a batch event
    validation_epoch(net, None, SimpleNamespace(wants_outputs=True))  # no split
    assert net.calls == [] and monitor.calls == 0
    assert net.history[-1] == {"batches": []}


# -------------------------------------------------------------- ScoringView
class _ViewNet:
    def __init__(self, fn, out_features, **loss_kwargs):
        self.criterion_ = PerSampleLoss(fn, **loss_kwargs)
        self.module_ = SimpleNamespace(output=SimpleNamespace(linear=SimpleNamespace(
            out_features=out_features)))
        self.device = "cpu"
        self.history = "the trainer's history"

    def __sklearn_tags__(self):
        return Tags(estimator_type=None, target_tags=TargetTags(required=False))


def _view(fn, raw, **loss_kwargs):
    raw = np.asarray(raw, np.float32)
    view = ScoringView(_ViewNet(fn, raw.shape[1], **loss_kwargs))
    view.forward_iter = lambda X, *args, **kwargs: iter([torch.from_numpy(raw)])  # cached
    return view


def test_the_view_of_a_multiclass_network():
    raw = [[1.0, 2.0, 0.0], [0.0, 0.0, 3.0], [2.0, -1.0, 0.5]]
    view = _view(multiclass_log_loss, raw, class_indices=True)
    X = np.zeros((3, 2))
    np.testing.assert_allclose(view.predict_proba(X), softmax(np.array(raw), axis=1),
                               rtol=1e-6)
    assert view.predict(X).tolist() == [1, 2, 0]
    assert view.score(X, np.array([1, 0, 0])) == pytest.approx(2 / 3)
    assert view.score(X, torch.tensor([1, 2, 0])) == 1.0  # targets as batches hold them
    assert view.classes_.tolist() == [0, 1, 2]


def test_the_view_of_a_binary_network():
    raw = [[2.0], [-1.0], [0.0], [0.5]]
    view = _view(binary_log_loss, raw)
    X = np.zeros((4, 2))
    p = expit(np.array(raw)[:, 0])
    np.testing.assert_allclose(view.predict_proba(X), np.column_stack([1 - p, p]),
                               rtol=1e-6)
    assert view.predict(X).tolist() == [1, 0, 0, 1]  # a logit of 0 is class 0
    y = np.array([[1.0], [1.0], [0.0], [0.0]], np.float32)  # the network's (n, 1) targets
    assert view.score(X, y) == 0.5
    assert view.score(X, torch.from_numpy(y[:, 0])) == 0.5  # 1-D too
    assert view.classes_.tolist() == [0, 1]


def test_the_view_of_a_multilabel_network():
    raw = [[1.0, -1.0, 2.0], [-2.0, 3.0, -0.5]]
    view = _view(LabelSmoothed(binary_log_loss, 0.1), raw)
    X = np.zeros((2, 2))
    np.testing.assert_allclose(view.predict_proba(X), expit(np.array(raw)), rtol=1e-6)
    assert view.predict(X).tolist() == [[1, 0, 1], [0, 1, 0]]
    y = np.array([[1, 0, 1], [0, 1, 1]], np.float32)
    assert view.score(X, y) == 0.5  # exact-match accuracy, as the estimator's score
    assert view.classes_.tolist() == [0, 1, 2]


@pytest.mark.parametrize("fn, link", [
    (squared_error, lambda r: r), (poisson, np.exp),
    (functools.partial(huber, delta=2.0), lambda r: r),
], ids=["squared", "poisson", "huber"])
def test_the_view_of_a_regressor(fn, link):
    raw = np.array([[0.5], [1.0], [-0.25]], np.float32)
    view = _view(fn, raw)
    X = np.zeros((3, 2))
    expected = link(raw.astype(np.float64))
    np.testing.assert_allclose(view.predict_proba(X), expected, rtol=1e-6)
    assert view.predict(X).shape == (3,)  # one output: 1-D, as the targets' values
    np.testing.assert_allclose(view.predict(X), expected[:, 0], rtol=1e-6)
    y = np.array([1.0, 2.0, 0.0])
    assert view.score(X, y) == pytest.approx(
        1 - np.sum((y - expected[:, 0]) ** 2) / np.sum((y - y.mean()) ** 2))
    with pytest.raises(AttributeError):
        view.classes_  # noqa: B018 - a regressor has no classes


def test_the_view_of_a_regressor_with_two_outputs():
    raw = np.array([[0.5, 1.0], [1.0, -1.0]], np.float32)
    view = _view(squared_error, raw)
    np.testing.assert_array_equal(view.predict(np.zeros((2, 2))), raw)


def test_the_view_forwards_attributes_except_forward_iter():
    net = _ViewNet(squared_error, 1)
    view = ScoringView(net)
    assert view.history == "the trainer's history" and view.device == "cpu"
    view.history = "set through the view"  # e.g. a scoring callback's record
    assert net.history == "set through the view"
    cached = lambda X, *args, **kwargs: iter([torch.zeros(1, 1)])  # noqa: E731
    view.forward_iter = cached  # skorch's caching puts it on the view ...
    assert vars(view)["forward_iter"] is cached and not hasattr(net, "forward_iter")
    del view.__dict__["forward_iter"]  # ... and deletes it so
    assert view.forward_iter.__func__ is ScoringView.forward_iter


def test_the_view_runs_the_network_without_cached_outputs():
    module = _mlp(3, (4,), 2)
    net = _ViewNet(multiclass_log_loss, 2, class_indices=True)
    net.module_ = module
    view = ScoringView(net)
    X = np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3)
    with torch.no_grad():
        expected = module.eval()(torch.from_numpy(X)).numpy()
    module.train()
    for given in (X, torch.from_numpy(X), Dataset(X, np.zeros(5))):
        (raw,) = list(view.forward_iter(given))
        np.testing.assert_allclose(raw.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert view.predict(X).tolist() == expected.argmax(axis=1).tolist()


@pytest.mark.parametrize("fn, out_features, estimator_type, multi_class, multi_label", [
    (multiclass_log_loss, 3, "classifier", True, False),
    (binary_log_loss, 1, "classifier", False, False),
    (binary_log_loss, 3, "classifier", False, True),
    (squared_error, 2, "regressor", None, None),
], ids=["multiclass", "binary", "multilabel", "regression"])
def test_the_views_tags(fn, out_features, estimator_type, multi_class, multi_label):
    view = ScoringView(_ViewNet(fn, out_features))
    tags = view.__sklearn_tags__()
    assert tags.estimator_type == estimator_type
    if multi_class is None:
        assert tags.classifier_tags is None and is_regressor(view)
    else:
        assert is_classifier(view)
        assert (tags.classifier_tags.multi_class, tags.classifier_tags.multi_label) == (
            multi_class, multi_label)


def _blobs(n=60, n_features=4, n_classes=3):
    rng = np.random.RandomState(0)
    y = np.arange(n) % n_classes
    X = rng.normal(size=(n, n_features)) + y[:, None]
    return X, y


@pytest.mark.parametrize("n_classes", [2, 3])
def test_the_view_of_a_fitted_classifier_predicts_as_the_estimator(n_classes):
    X, y = _blobs(n_classes=n_classes)
    labels = np.array(["ant", "bee", "cat"])[y]
    clf = DeepMLPClassifier((6,), max_iter=3, tol=0, random_state=0).fit(X, labels)
    view = ScoringView(clf.net_)
    codes = np.searchsorted(clf.classes_, clf.predict(X))
    assert view.predict(X).tolist() == codes.tolist()
    np.testing.assert_allclose(view.predict_proba(X), clf.predict_proba(X), rtol=1e-5,
                               atol=1e-7)
    y_model = y if n_classes == 3 else y[:, None].astype(np.float32)
    assert view.score(X, y_model) == pytest.approx(clf.score(X, labels))
    assert is_classifier(view)


def test_the_view_of_a_fitted_poisson_regressor_predicts_as_the_estimator():
    X, y = _blobs(n_classes=3)
    reg = DeepMLPRegressor((6,), loss="poisson", max_iter=3, tol=0, random_state=0).fit(X, y)
    view = ScoringView(reg.net_)
    np.testing.assert_allclose(view.predict(X), reg.predict(X), rtol=1e-5)
    assert view.score(X, y) == pytest.approx(reg.score(X, y), rel=1e-5)
    assert is_regressor(view)


def test_the_view_of_a_poisson_ensemble_predicts_as_the_estimator():
    X, y = _blobs(n_classes=3)
    reg = DeepMLPRegressor((6,), loss="poisson", n_members=2, max_iter=3, tol=0,
                           random_state=0).fit(X, y)
    np.testing.assert_allclose(ScoringView(reg.net_).predict(X), reg.predict(X), rtol=1e-5)


# ----------------------------------------------------------------- dispatch
class _ScoringSpy(ScoringBase):
    def on_epoch_end(self, net, **kwargs):
        self.seen = (net, kwargs)
        return "scored"


def test_dispatch_gives_scoring_callbacks_the_view_and_others_the_trainer():
    net = _ViewNet(multiclass_log_loss, 3, class_indices=True)
    spy = _ScoringSpy("accuracy")
    assert dispatch(net, spy, "on_epoch_end", {"dataset_valid": None}) == "scored"
    view, kwargs = spy.seen
    assert isinstance(view, ScoringView) and vars(view)["_net"] is net
    assert kwargs == {"dataset_valid": None}

    class Plain(Callback):
        def on_epoch_end(self, net, **kwargs):
            self.seen = (net, kwargs)
            return "plain"

    plain = Plain()
    assert dispatch(net, plain, "on_epoch_end", {"a": 1}) == "plain"
    assert plain.seen == (net, {"a": 1})


def _scheduler_net(lr=0.1):
    param = torch.nn.Parameter(torch.zeros(2))
    return SimpleNamespace(optimizer_=torch.optim.SGD([param], lr=lr), history=History())


def _epoch(net, cb, n_batches):
    """One epoch of a call as the trainer runs it, for the scheduler's events."""
    net.history.new_epoch()
    for _ in range(n_batches):
        net.history.new_batch()
        net.optimizer_.step()
        cb.on_batch_end(net, training=True)
    net.history.record("train_batch_count", n_batches)
    cb.on_epoch_end(net)


def _lr(net):
    return net.optimizer_.param_groups[0]["lr"]


@pytest.mark.parametrize("resumed", [True, False], ids=["dispatch", "skorch-alone"])
def test_a_per_epoch_schedule_is_resumed_where_the_last_call_left_it(resumed):
    net = _scheduler_net()
    cb = LRScheduler("StepLR", step_size=1, gamma=0.5).initialize()
    dispatch(net, cb, "on_train_begin", {})  # the first call: skorch's own
    _epoch(net, cb, 2)
    assert _lr(net) == pytest.approx(0.05)
    if resumed:  # the second call (partial_fit)
        dispatch(net, cb, "on_train_begin", {})
        assert _lr(net) == pytest.approx(0.05)  # where the first call left it
        assert cb.lr_scheduler_.get_last_lr() == pytest.approx([0.05])
        _epoch(net, cb, 2)
        assert _lr(net) == pytest.approx(0.025)  # one step per epoch, as one fit
    else:  # what the module corrects: skorch's rebuilt scheduler steps once more
        cb.on_train_begin(net)
        assert _lr(net) == pytest.approx(0.025)


def test_a_per_batch_schedule_counts_batches_across_calls():
    # StepLR every 3 batches: one fit of 2 + 2 batches halves the rate at batch 3.
    net = _scheduler_net()
    cb = LRScheduler("StepLR", step_size=3, gamma=0.5, step_every="batch").initialize()
    dispatch(net, cb, "on_train_begin", {})
    _epoch(net, cb, 2)
    assert _lr(net) == pytest.approx(0.1)
    dispatch(net, cb, "on_train_begin", {})
    assert cb.batch_idx_ == 2 and cb.lr_scheduler_.last_epoch == 2
    assert _lr(net) == pytest.approx(0.1)
    net.history.new_epoch()
    net.history.new_batch()
    net.optimizer_.step()
    cb.on_batch_end(net, training=True)  # the third batch
    assert _lr(net) == pytest.approx(0.05)


def test_other_events_of_a_scheduler_are_passed_as_they_are():
    net = _scheduler_net()
    cb = LRScheduler("StepLR", step_size=1, gamma=0.5).initialize()
    dispatch(net, cb, "on_train_begin", {})
    net.history.new_epoch()
    net.optimizer_.step()
    dispatch(net, cb, "on_epoch_end", {})
    assert _lr(net) == pytest.approx(0.05)
    assert net.history[-1]["event_lr"] == pytest.approx(0.1)
