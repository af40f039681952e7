"""The CUDA-graph step (``_engine/graph_step.py``): its host-side bookkeeping.

Capturing and replaying needs a GPU (``tests/test_steps.py`` compares a
captured step with the eager one, ``gpu``-marked). What decides *when* to
capture again, the learning rates as device tensors, giving up, and the eager
path it trains on after giving up run on the host: tested here on CPU tensors
(the step reads its device from the data). One ``gpu``-marked test checks that
a rate change is replayed without a new capture and a momentum change is not.
"""

import copy
import logging

import pytest
import torch

from sklearn_deepnet._engine.data import Batches, TensorData
from sklearn_deepnet._engine.graph_step import GraphStep, _same
from sklearn_deepnet._engine.losses import multiclass_log_loss
from sklearn_deepnet._engine.module import MLP
from sklearn_deepnet._engine.optim import build_optimizer
from sklearn_deepnet._engine.steps import EagerStep, Regularization

HP = dict(learning_rate_init=1e-2, momentum=0.9, nesterovs_momentum=True, beta_1=0.9,
          beta_2=0.999, epsilon=1e-8, rho=0.9, weight_decay=0.0)


def _problem(n=37, device="cpu"):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, 4, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    w = torch.rand(n, generator=g) + 0.5
    return TensorData(X.to(device), y.to(device), w.to(device))


def _step(solver="momentum", device="cpu", seed=0):
    torch.manual_seed(seed)
    module = MLP(4, [6], 3).initialize_().to(device)
    opt = build_optimizer(solver, module.named_parameters(), HP, device_type=device,
                          capturable=device != "cpu")
    return EagerStep(module, multiclass_log_loss, opt, Regularization(alpha=0.01))


def test_same_compares_tensors_by_identity_and_the_rest_by_value():
    t = torch.tensor(0.5)
    assert _same(t, t) and not _same(t, torch.tensor(0.5))
    assert not _same(t, 0.5) and not _same(0.5, t)
    assert _same(0.9, 0.9) and _same((0.9, 0.999), (0.9, 0.999)) and not _same(0.9, 0.8)
    assert _same(None, None) and not _same(None, False)


def test_settings_leave_out_the_params_and_the_rates():
    step = GraphStep(_step("adam"), _problem(), 8)
    settings = step._settings()
    assert len(settings) == len(step.step.optimizer.param_groups) == 2
    for group, got in zip(step.step.optimizer.param_groups, settings, strict=True):
        assert set(got) == set(group) - {"params", "lr", "initial_lr"}
        assert got["betas"] == (0.9, 0.999)


def test_rates_become_device_tensors_that_follow_new_values():
    step = GraphStep(_step(), _problem(), 8)
    groups = step.step.optimizer.param_groups
    groups[1]["lr"] = 0.05
    step._install_lr_tensors()
    tensors = list(step.lr_tensors)
    assert [g["lr"] for g in groups] == tensors
    assert all(t.dtype == torch.float32 and t.dim() == 0 for t in tensors)
    assert [float(t) for t in tensors] == pytest.approx([1e-2, 0.05])
    groups[0]["lr"] = 0.2  # a scheduler sets a float: copied into the same tensor
    groups[1]["lr"] = torch.tensor(0.3, dtype=torch.float64)  # or a tensor
    step._sync_lr()
    assert groups[0]["lr"] is tensors[0] and groups[1]["lr"] is tensors[1]
    assert [float(t) for t in tensors] == pytest.approx([0.2, 0.3])
    step._install_lr_tensors()  # again (a re-capture): the same tensors
    assert step.lr_tensors == tensors


def _captured(step):
    """``step`` as if captured: its settings recorded, a graph held (a stand-in)."""
    step._install_lr_tensors()
    step.captured_settings = step._settings()
    step.graph = object()
    return step


def test_a_new_rate_needs_no_capture_but_another_setting_does():
    step = _captured(GraphStep(_step(), _problem(), 8))
    graph = step.graph
    group = step.step.optimizer.param_groups[0]
    group["lr"] = 0.5
    step._sync_settings()
    assert step.graph is graph and step.n_recaptures == 0
    assert float(step.lr_tensors[0]) == pytest.approx(0.5)
    group["momentum"] = 0.5
    step._sync_settings()
    assert step.graph is None and step.n_recaptures == 1 and step.fallback_reason is None
    _captured(step)
    group["nesterov"] = not group["nesterov"]
    step._sync_settings()
    assert step.graph is None and step.n_recaptures == 2
    _captured(step)
    group["new setting"] = 1  # a key added counts as a change
    step._sync_settings()
    assert step.graph is None and step.n_recaptures == 3


def test_a_parameter_group_added_after_capture_gives_up_and_says_why(caplog):
    step = _captured(GraphStep(_step(), _problem(), 8))
    n = len(step.step.optimizer.param_groups)
    extra = torch.nn.Parameter(torch.zeros(3))
    step.step.optimizer.add_param_group({"params": [extra]})
    with caplog.at_level(logging.WARNING, logger="sklearn_deepnet"):
        step._sync_settings()
    assert step.graph is None and step.step.set_to_none
    assert step.fallback_reason == (
        f"the optimizer's parameter groups changed during the fit ({n} -> {n + 1}); a CUDA "
        "graph updates only the groups it captured")
    assert "training continues eagerly" in caplog.text


def test_a_capture_after_a_group_was_added_gives_every_group_a_rate_tensor():
    # (a re-capture pending when a callback adds a group: the new group's rate
    # must not be baked into the next graph as a float)
    step = _captured(GraphStep(_step(), _problem(), 8))
    step.graph = None  # a re-capture is pending
    extra = torch.nn.Parameter(torch.zeros(3))
    step.step.optimizer.add_param_group({"params": [extra], "lr": 0.25})
    step._install_lr_tensors()
    groups = step.step.optimizer.param_groups
    assert len(step.lr_tensors) == len(groups)
    for group, t in zip(groups, step.lr_tensors, strict=True):
        assert group["lr"] is t
    assert float(groups[-1]["lr"]) == 0.25


def test_too_many_recaptures_give_up_and_say_why(caplog):
    step = _captured(GraphStep(_step(), _problem(), 8, max_recaptures=2))
    step.step.set_to_none = False  # (as after a capture)
    group = step.step.optimizer.param_groups[0]
    with caplog.at_level(logging.WARNING, logger="sklearn_deepnet"):
        for i in range(3):
            group["momentum"] = 0.1 * (i + 1)
            step._sync_settings()
            if i < 2:
                assert step.fallback_reason is None
                _captured(step)
    assert step.n_recaptures == 3 and step.graph is None
    assert step.fallback_reason == ("optimizer settings changed 3 times during the fit; each "
                                    "change re-captures the CUDA graph")
    assert step.step.set_to_none  # eager steps own their gradients again
    assert "training continues eagerly" in caplog.text


class _Events:
    wants_outputs = wants_gradients = False

    def __init__(self):
        self.calls = []

    def batch_begin(self, xb, yb):
        self.calls.append(("begin", len(xb)))

    def batch_end(self, xb, yb, loss, outputs=None):
        self.calls.append(("end", len(xb), float(loss)))


def test_after_giving_up_it_trains_as_the_eager_step(caplog):
    data = _problem()
    reference = _step()
    graph = GraphStep(copy.deepcopy(reference), data, 8)
    with caplog.at_level(logging.WARNING, logger="sklearn_deepnet"):
        graph._give_up("CUDA graph capture failed: test")
    batches = Batches(data, 8, shuffle=True, generator=torch.Generator().manual_seed(1))
    events = _Events()
    total = graph.run_epoch(batches, events)
    # the reference: the same batches, gathered in the same order, on the eager step
    order = Batches(data, 8, shuffle=True, generator=torch.Generator().manual_seed(1)).order()
    expected, losses = 0.0, []
    for start, stop in batches.spans():
        idx = order[start:stop]
        loss = reference.train_batch(data.X[idx], data.y[idx], data.w[idx])
        losses.append(float(loss))
        expected += loss * (stop - start)
    assert torch.equal(total, expected)
    for p, q in zip(graph.step.module.parameters(), reference.module.parameters(), strict=True):
        assert torch.equal(p, q)
    assert events.calls[0::2] == [("begin", stop - start) for start, stop in batches.spans()]
    assert [c[2] for c in events.calls[1::2]] == losses
    assert graph.graph is None and graph.n_eager == 0 and graph.step.events is None


def test_release_gives_the_groups_float_rates_and_drops_the_gradients():
    step = _captured(GraphStep(_step(), _problem(), 8))
    groups = step.step.optimizer.param_groups
    groups[0]["lr"] = 0.125
    step._sync_lr()
    for p in step.step.module.parameters():
        p.grad = torch.ones_like(p)
    step.release()
    assert [type(g["lr"]) for g in groups] == [float, float]
    assert groups[0]["lr"] == 0.125 and groups[1]["lr"] == pytest.approx(1e-2)
    assert step.graph is None and step.lr_tensors is None
    assert all(p.grad is None for p in step.step.module.parameters())
    step.release()  # twice: nothing left to do


@pytest.mark.gpu
def test_a_rate_change_replays_and_a_momentum_change_captures_again():
    data = _problem(64, "cuda")
    step = GraphStep(_step("momentum", "cuda"), data, 16, n_warmup=1)
    batches = Batches(data, 16, shuffle=False)
    step.run_epoch(batches)
    graph = step.graph
    assert graph is not None and step.n_recaptures == 0
    group = step.step.optimizer.param_groups[0]
    before = [p.detach().clone() for p in step.step.module.parameters()]
    group["lr"] = 0.0  # replayed with the new rate: no update at all
    step.run_epoch(batches)
    assert step.graph is graph and step.n_recaptures == 0
    for p, q in zip(step.step.module.parameters(), before, strict=True):
        assert torch.equal(p.detach(), q)
    group["momentum"] = 0.5
    group["lr"] = 1e-2
    step.run_epoch(batches)
    assert step.n_recaptures == 1 and step.graph is not None and step.graph is not graph
    assert step.fallback_reason is None
    step.release()
    assert isinstance(group["lr"], float)
