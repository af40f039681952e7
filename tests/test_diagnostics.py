"""Per-layer diagnostics (diagnostics=True), history_frame() and the progress output."""

import io
import math
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor
from sklearn_deepnet._callbacks import wants_progress_bar
from sklearn_deepnet._diagnostics import PROBE_ROWS, STATISTICS, layer_statistics

X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X).astype(np.float32)
CONFIGS = {
    "manual": dict(),
    "bn-dropout": dict(activation="elu", batch_norm="before", dropout=0.2, solver="nadam"),
    "eager-prelu-bn-dropout": dict(activation="prelu", batch_norm="before", dropout=0.2,
                                   solver="nadam"),
    "tanh-sgd": dict(activation="tanh", solver="sgd", learning_rate_init=0.05),
}
RANDOM_LAYERS = {"rrelu": dict(activation="rrelu"), "alpha-dropout": dict(activation="selu",
                                                                       dropout=0.1)}


def _direct(clf, previous):
    """The statistics computed by hand with torch on the probe batch (the first rows)."""
    module = clf.module_
    xb = torch.from_numpy(X[:PROBE_ROWS])
    yb = torch.from_numpy(np.searchsorted(clf.classes_, y[:PROBE_ROWS]))
    saved = {k: v.clone() for k, v in module.state_dict().items()}
    module.train()
    for m in module.modules():
        if isinstance(m, torch.nn.Dropout | torch.nn.AlphaDropout):
            m.eval()
    acts = []
    hooks = [b.activation.register_forward_hook(lambda m, a, o: acts.append(o.detach()))
             for b in module.hidden]
    loss = torch.nn.functional.cross_entropy(module(xb), yb)
    for h in hooks:
        h.remove()
    weights = [lin.weight for lin in module.linears()]
    grads = torch.autograd.grad(loss, weights)
    module.load_state_dict(saved)  # (the BatchNorm statistics the forward pass moved)
    module.eval()
    return {
        "grad_norm": [float(g.norm()) for g in grads],
        "weight_norm": [float(w.norm()) for w in weights],
        "update_ratio": [float((w - p).norm() / p.norm()) for w, p in zip(weights, previous,
                                                                          strict=True)],
        "act_mean": [float(a.mean()) for a in acts],
        "act_std": [float(a.std()) for a in acts],
    }


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_recorded_values_equal_a_direct_torch_computation(config):
    clf = DeepMLPClassifier((32, 16), max_iter=1, warm_start=True, diagnostics=True,
                            random_state=0, **config).fit(X, y)
    previous = [lin.weight.detach().clone() for lin in clf.module_.linears()]
    clf.fit(X, y)  # a second call: epoch 2, its update ratio against epoch 1's weights
    recorded = clf.history_[-1]["diagnostics"]
    expected = _direct(clf, previous)
    for name, values in expected.items():
        np.testing.assert_allclose(recorded[name], values, rtol=1e-4, atol=1e-6, err_msg=name)
    assert len(recorded["grad_norm"]) == 3 and len(recorded["act_mean"]) == 2
    assert set(recorded) == set(STATISTICS)


@pytest.mark.parametrize("config", [*CONFIGS.values(), *RANDOM_LAYERS.values()],
                         ids=[*CONFIGS, *RANDOM_LAYERS])
def test_diagnostics_leave_the_fit_bit_identical_and_the_engine_unchanged(config):
    params = dict(hidden_layer_sizes=(32, 16), max_iter=3, random_state=0, **config)
    off = DeepMLPClassifier(**params).fit(X, y)
    on = DeepMLPClassifier(**params, diagnostics=True).fit(X, y)
    assert on.engine_ == off.engine_
    np.testing.assert_array_equal(on.predict_proba(X), off.predict_proba(X))
    assert on.loss_curve_ == off.loss_curve_
    assert all("diagnostics" not in h for h in off.history_)


def test_fast_path_records_what_the_eager_path_records():
    params = dict(hidden_layer_sizes=(32, 16), max_iter=3, random_state=0, diagnostics=True)
    fast = DeepMLPClassifier(**params).fit(X, y)
    eager = DeepMLPClassifier(**params)
    eager._fast_engine = False
    eager.fit(X, y)
    assert (fast.engine_, eager.engine_) == ("cpu-manual", "eager")
    for a, b in zip(fast.history_, eager.history_, strict=True):
        for name in STATISTICS:
            np.testing.assert_allclose(a["diagnostics"][name], b["diagnostics"][name],
                                       rtol=5e-4, atol=1e-6, err_msg=name)


def test_dead_and_saturated_units_are_counted():
    dead = DeepMLPClassifier((16, 16), max_iter=1, diagnostics=True, random_state=0,
                             learning_rate_init=1e-12).fit(X, y)
    with torch.no_grad():
        dead.module_.hidden[1].linear.bias.fill_(-1e3)  # every unit of layer 2 off
    stats = layer_statistics(dead.module_, torch.from_numpy(X[:64]),
                             torch.from_numpy(y[:64]), dead.net_.criterion_,
                             dead._activation_kinds())
    assert stats["dead_fraction"][1] == 1.0 and stats["dead_fraction"][0] < 0.5
    assert all(math.isnan(v) for v in stats["saturated_fraction"])
    sat = DeepMLPClassifier((16,), activation="logistic", max_iter=1, diagnostics=True,
                            random_state=0, learning_rate_init=1e-12).fit(X * 100, y)
    fraction = sat.history_[-1]["diagnostics"]["saturated_fraction"][0]
    assert fraction > 0.9 and math.isnan(sat.history_[-1]["diagnostics"]["dead_fraction"][0])


def test_frozen_layers_report_no_gradient_and_regressor_works():
    src = DeepMLPClassifier((16, 16), max_iter=1, random_state=0).fit(X, y)
    clf = DeepMLPClassifier((16, 16), init_from=src, freeze_layers=1, max_iter=1,
                            diagnostics=True).fit(X, y)
    grads = clf.history_[-1]["diagnostics"]["grad_norm"]
    assert math.isnan(grads[0]) and not math.isnan(grads[1])
    reg = DeepMLPRegressor((8,), max_iter=2, diagnostics=True, early_stopping=True,
                           random_state=0).fit(X, y.astype(float))
    frame = reg.history_frame()
    assert list(frame.index) == [1, 2]
    assert {"train_loss", "valid_score", "lr", "grad_norm_1", "grad_norm_out",
            "act_std_1", "dead_fraction_1"} <= set(frame.columns)


def test_history_frame_without_diagnostics_and_before_fit():
    clf = DeepMLPClassifier((8,), max_iter=2, random_state=0)
    with pytest.raises(Exception, match="not fitted"):
        clf.history_frame()
    clf.fit(X, y)
    clf.partial_fit(X, y)
    frame = clf.history_frame()
    assert len(frame) == 3 and frame["train_loss"].tolist() == clf.loss_curve_
    assert not any(c.startswith("grad_norm") for c in frame.columns)
    with pytest.warns(Warning, match="diverged"):
        diverged = DeepMLPClassifier((8,), solver="sgd", learning_rate_init=1e8, max_iter=2,
                                     diagnostics=True, random_state=0).fit(X * 1e3, y)
    empty = diverged.history_frame()  # the first epoch was rolled back: no rows
    assert len(empty) == 0 and empty.index.name == "epoch"


def test_verbose_levels(capsys):
    DeepMLPClassifier((8,), max_iter=2, random_state=0, verbose=0).fit(X, y)
    assert capsys.readouterr().out == ""
    DeepMLPClassifier((8,), max_iter=2, random_state=0, verbose=1).fit(X, y)
    out = capsys.readouterr().out  # stderr is not a terminal here: one line per epoch
    assert out.count("Iteration") == 2 and "diagnostics" not in out
    DeepMLPClassifier((8,), max_iter=2, random_state=0, verbose=2, diagnostics=True).fit(X, y)
    out = capsys.readouterr().out
    assert out.count("Iteration") == 2 and out.count("diagnostics epoch") == 2


def test_progress_bar_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    fake = Terminal()
    monkeypatch.setattr(sys, "stderr", fake)
    assert wants_progress_bar(incremental=False) and not wants_progress_bar(incremental=True)
    found = []
    worker = threading.Thread(target=lambda: found.append(wants_progress_bar(False)))
    worker.start()
    worker.join()
    assert found == [False]  # no bars from threads (joblib's threading backend)
    clf = DeepMLPClassifier((8,), max_iter=3, random_state=0, verbose=2, diagnostics=True)
    clf.fit(X, y)
    text = fake.getvalue()
    assert "DeepMLPClassifier" in text and "3/3" in text and "loss=" in text
    assert text.count("diagnostics epoch") == 3  # written above the bar


def test_progress_bar_is_closed_when_the_fit_raises(monkeypatch):
    from skorch.callbacks import Callback

    from sklearn_deepnet._callbacks import ProgressBar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    class Fails(Callback):
        def on_epoch_end(self, net, **kwargs):
            if len(net.history) == 2:
                raise RuntimeError("callback failed")

    bars, opened = [], ProgressBar.on_train_begin

    def keep(self, net, **kwargs):
        opened(self, net, **kwargs)
        bars.append(self.bar_)  # a reference: garbage collection cannot close it

    monkeypatch.setattr(ProgressBar, "on_train_begin", keep)
    monkeypatch.setattr(sys, "stderr", Terminal())
    clf = DeepMLPClassifier((8,), max_iter=5, random_state=0, verbose=1, callbacks=[Fails()])
    with pytest.raises(RuntimeError, match="callback failed"):
        clf.fit(X, y)
    assert len(bars) == 1 and bars[0].disable  # tqdm's close() disables the bar
    assert "2/5" in sys.stderr.getvalue()


def test_importing_the_package_and_the_plot_module_does_not_import_matplotlib():
    code = ("import sys, sklearn_deepnet, sklearn_deepnet.plot; "
            "assert 'matplotlib' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.gpu
def test_cuda_graph_records_what_the_eager_path_records():
    params = dict(hidden_layer_sizes=(32, 16), max_iter=3, random_state=0, diagnostics=True,
                  device="cuda")
    graph = DeepMLPClassifier(**params).fit(X, y)
    eager = DeepMLPClassifier(**params)
    eager._fast_engine = False
    eager.fit(X, y)
    assert graph.engine_ == "cuda-graph"
    for a, b in zip(graph.history_, eager.history_, strict=True):
        for name in STATISTICS:
            np.testing.assert_allclose(a["diagnostics"][name], b["diagnostics"][name],
                                       rtol=1e-3, atol=1e-5, err_msg=name)
