"""Which step a fit uses (``_engine/select.py``): ``select_step``'s answers and reasons.

``tests/test_steps.py`` checks the main answers and that the allow-list of the
hand-written step reaches the reason; here every branch on each device type,
their order, and the exact reasons. The device is only a name here: nothing
runs on it, so the CUDA branches are tested without a GPU.
"""

import pytest
import torch

from sklearn_deepnet._engine.fast_step import manual_blockers
from sklearn_deepnet._engine.losses import REGRESSION_LOSSES, multiclass_log_loss
from sklearn_deepnet._engine.module import MLP
from sklearn_deepnet._engine.optim import SOLVERS
from sklearn_deepnet._engine.select import select_step

ADAM = SOLVERS["adam"]


def _net(**kwargs):
    return MLP(4, [5], 2, **kwargs)


@pytest.mark.parametrize("device", ["cpu", "cuda", torch.device("cuda", 1), "meta"])
def test_fast_false_is_always_the_eager_step(device):
    assert select_step(_net(), multiclass_log_loss, device, ADAM, fast=False) == (
        "eager", "fast path disabled")


def test_cpu_reason_is_the_manual_steps_blocker():
    huber = REGRESSION_LOSSES["huber"].factory(1.0)
    for module, loss in [(_net(activation="prelu"), multiclass_log_loss), (_net(), huber),
                         (_net(activation=torch.nn.Softplus), multiclass_log_loss)]:
        blocker = manual_blockers(module, loss, "cpu")
        assert blocker is not None
        assert select_step(module, loss, "cpu", ADAM) == (
            "eager", f"not supported by the hand-written CPU step: {blocker}")


def test_cpu_ignores_what_only_a_cuda_graph_cannot_do():
    # The hand-written step calls back between backward and the optimizer, hands
    # its outputs to the events and trains on densified sparse batches; any solver.
    for solver in ("adagrad", "sgd", "adam"):
        assert select_step(_net(), multiclass_log_loss, torch.device("cpu"), SOLVERS[solver],
                           needs_gradients=True, sparse=True, needs_outputs=True) == (
            "cpu-manual", None)


@pytest.mark.parametrize("kwargs, solver, reason", [
    (dict(), "adagrad", "the optimizer keeps host-side state (not capturable)"),
    (dict(), "sgd", "scikit-learn's SGD rescales its velocity on the host when the rate "
                    "changes (not capturable)"),
    (dict(needs_gradients=True), "adam", "a callback implements on_grad_computed "
                                         "(not capturable)"),
    (dict(needs_outputs=True), "adam", "a callback reads every batch's outputs, y_pred "
                                       "(not captured)"),
    (dict(sparse=True), "adam", "sparse input is densified batch by batch on the host"),
], ids=["host state", "sgd velocity", "gradients", "outputs", "sparse"])
def test_cuda_reasons(kwargs, solver, reason):
    assert select_step(_net(), multiclass_log_loss, "cuda", SOLVERS[solver], **kwargs) == (
        "eager", reason)


def test_cuda_reasons_come_in_order():
    everything = dict(needs_gradients=True, needs_outputs=True, sparse=True)
    module = _net()
    handle = module.hidden[0].linear.register_forward_hook(lambda m, i, o: o)
    name, reason = select_step(module, multiclass_log_loss, "cuda", SOLVERS["adagrad"],
                               **everything)
    assert (name, reason) == ("eager", "not capturable in a CUDA graph: hooks on "
                                       "hidden.0.linear (forward_hooks)")
    handle.remove()
    order = [("adagrad", "host-side"), ("sgd", "velocity"), ("adam", "on_grad_computed")]
    for solver, part in order:
        assert part in select_step(module, multiclass_log_loss, "cuda", SOLVERS[solver],
                                   **everything)[1]
    assert "y_pred" in select_step(module, multiclass_log_loss, "cuda", ADAM,
                                   needs_outputs=True, sparse=True)[1]


def test_cuda_captures_what_the_cpu_step_cannot_run():
    # A CUDA graph replays the eager step: any layer, any loss, a parametrized
    # weight; only what it would skip (hooks, an instance forward) keeps it off.
    huber = REGRESSION_LOSSES["huber"].factory(1.0)
    for module, loss in [(_net(activation="prelu"), multiclass_log_loss), (_net(), huber),
                         (_net(activation=torch.nn.Softplus), multiclass_log_loss)]:
        assert select_step(module, loss, "cuda:0", ADAM) == ("cuda-graph", None)
    module = _net()
    torch.nn.utils.parametrizations.weight_norm(module.hidden[0].linear)
    assert manual_blockers(module, multiclass_log_loss, "cpu") is not None
    assert select_step(module, multiclass_log_loss, "cuda", ADAM) == ("cuda-graph", None)
    module = _net()
    module.output.linear.forward = lambda x: x
    assert select_step(module, multiclass_log_loss, "cuda", ADAM) == (
        "eager", "not capturable in a CUDA graph: a forward method set on output.linear")


def test_other_devices_have_no_fast_path():
    assert select_step(_net(), multiclass_log_loss, "meta", ADAM) == (
        "eager", "no fast path for device type 'meta'")
