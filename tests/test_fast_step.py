"""The hand-written CPU step (``_engine/fast_step.py``): its parts, one by one.

``tests/test_steps.py`` trains ``ManualStep`` against the eager step on
configurations generated from the tables (and checks ``manual_blockers`` for
activations, hooks and the allow-list, the direct fused Adam call's bits, the
label-smoothed output gradients). Here: the loss gradients at the output
against autograd, ``layout_signature``, ``kernels_used``, the blockers left,
what ``ManualStep`` builds, and when the direct Adam call applies.
"""

import copy

import pytest
import torch
from torch import nn

from sklearn_deepnet._engine import fast_step
from sklearn_deepnet._engine import kernels as _kernels
from sklearn_deepnet._engine.embeddings import EmbeddingSpec
from sklearn_deepnet._engine.ensemble import MemberLoss
from sklearn_deepnet._engine.fast_step import (
    OUTPUT_GRADIENTS,
    ManualStep,
    _column,
    _DirectFusedAdam,
    kernels_used,
    layout_signature,
    manual_blockers,
    output_gradient,
)
from sklearn_deepnet._engine.losses import (
    REGRESSION_LOSSES,
    LabelSmoothed,
    PerSampleLoss,
    absolute_error,
    binary_log_loss,
    multiclass_log_loss,
    poisson,
    squared_error,
)
from sklearn_deepnet._engine.module import MLP
from sklearn_deepnet._engine.optim import build_optimizer
from sklearn_deepnet._engine.runners import PENALIZED
from sklearn_deepnet._engine.steps import Regularization

HP = dict(learning_rate_init=1e-2, momentum=0.9, nesterovs_momentum=True, beta_1=0.9,
          beta_2=0.999, epsilon=1e-8, rho=0.9, weight_decay=0.0)
TOL = dict(rtol=1e-5, atol=1e-6)


def _targets(loss, n, k, g):
    if loss is multiclass_log_loss:
        return torch.randint(0, k, (n,), generator=g)
    if loss is binary_log_loss:
        return (torch.rand(n, k, generator=g) > 0.5).float()
    return torch.randn(n, k, generator=g)


@pytest.mark.parametrize("members", [1, 3])
@pytest.mark.parametrize("loss", [multiclass_log_loss, binary_log_loss, squared_error],
                         ids=lambda f: f.__name__)
def test_output_gradient_is_autograds(loss, members):
    g = torch.Generator().manual_seed(0)
    n, k = 9, 4
    y = _targets(loss, n, k, g)
    fn = loss if members == 1 else MemberLoss(loss, members, k)
    z = torch.randn(n, k * members, generator=g, requires_grad=True)
    expected = fn(z, y)
    expected.sum().backward()
    z_in = z.detach().clone()
    losses, grad = output_gradient(fn)(z_in, y)
    torch.testing.assert_close(losses, expected.detach(), **TOL)
    torch.testing.assert_close(grad, z.grad, **TOL)
    assert torch.equal(z_in, z.detach())  # the outputs are not changed in place
    # wrapped as the trainer's criterion module: the function behind it
    wrapped = output_gradient(PerSampleLoss(fn, class_indices=loss is multiclass_log_loss))
    torch.testing.assert_close(wrapped(z_in, y)[1], grad, rtol=0, atol=0)


def test_losses_without_an_output_gradient():
    huber = REGRESSION_LOSSES["huber"].factory(1.0)
    for loss in (absolute_error, poisson, huber, LabelSmoothed(squared_error, 0.1),
                 MemberLoss(huber, 2, 3), MemberLoss(LabelSmoothed(squared_error, 0.1), 2, 3)):
        assert output_gradient(loss) is None
    assert set(OUTPUT_GRADIENTS) == {multiclass_log_loss, binary_log_loss, squared_error}
    assert output_gradient(LabelSmoothed(binary_log_loss, 0.1)) is not None


def test_column_is_cached_per_rows_dtype_and_value():
    a = _column(5, torch.float32, -1.0)
    assert a.shape == (5, 1) and (a == -1).all()
    assert _column(5, torch.float32, -1.0) is a
    assert _column(5, torch.float32, -0.5) is not a and _column(6, torch.float32, -1.0) is not a
    assert _column(5, torch.float64, -1.0).dtype == torch.float64
    for rows in range(100):  # many batch sizes: the cache stays small
        _column(1000 + rows, torch.float32, 1.0)
    assert len(fast_step._COLUMNS) <= 65


# ----------------------------------------------------------- layout_signature
def _net():
    torch.manual_seed(0)
    return MLP(4, [6, 5], 2, activation="leaky_relu", batch_norm="after", dropout=0.1)


@pytest.mark.parametrize("change", [
    lambda m: setattr(m.hidden[0].dropout, "p", 0.3),
    lambda m: setattr(m.hidden[1].activation, "negative_slope", 0.5),
    lambda m: setattr(m.hidden[0].batch_norm, "momentum", 0.5),
    lambda m: setattr(m.hidden[0].batch_norm, "eps", 1e-3),
    lambda m: m.hidden[0].dropout.eval(),
    lambda m: setattr(m.hidden[0].linear.weight, "data", m.hidden[0].linear.weight.data * 1),
    lambda m: setattr(m.hidden[1], "activation", nn.LeakyReLU(0.2)),
    lambda m: setattr(m.output.linear, "bias", nn.Parameter(m.output.linear.bias.detach())),
    lambda m: setattr(m.hidden[0].batch_norm, "running_mean", torch.zeros(6)),
], ids=["dropout rate", "slope", "momentum", "eps", "dropout mode", "new storage",
        "equal module replaced", "new parameter", "new buffer"])
def test_layout_signature_changes_with_what_the_step_reads(change):
    module = _net()
    before = layout_signature(module)
    change(module)
    assert layout_signature(module) != before


def test_layout_signature_keeps_through_training():
    module = _net()
    before = layout_signature(module)
    opt = build_optimizer("adam", module.named_parameters(), HP)
    step = ManualStep(module, multiclass_log_loss, opt, Regularization(alpha=0.1))
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        step.train_batch(torch.randn(8, 4, generator=g), torch.randint(0, 2, (8,), generator=g),
                         torch.ones(8))
    with torch.no_grad():
        module.hidden[0].linear.weight.mul_(2)  # contents: not part of the layout
    assert layout_signature(module) == before


# --------------------------------------------------------------- kernels_used
def test_kernels_used_names_the_optimizer_activation_and_batch_norm_kernels():
    module = MLP(4, [6, 6], 2, activation="elu", batch_norm="before")
    adam = build_optimizer("adam", module.named_parameters(), HP)
    assert kernels_used(module, adam) == {"fused Adam", "_fused_adam_", "_fused_adamw_",
                                          "_elu_kernel", "_native_batch_norm"}
    plain = MLP(4, [6], 2, activation="identity")
    sgd = build_optimizer("momentum", plain.named_parameters(), HP)
    assert kernels_used(plain, sgd) == {"fused SGD"}
    selu = MLP(4, [6], 2, activation="selu")  # shares ELU's kernel
    assert kernels_used(selu, sgd) == {"fused SGD", "_elu_kernel"}
    user = MLP(4, [6], 2, activation=nn.Softplus, batch_norm="before")  # the eager step
    assert kernels_used(user, adam) == {"fused Adam", "_fused_adam_", "_fused_adamw_"}


# ------------------------------------------------------------------- blockers
def test_blocked_by_parameters_it_was_not_written_for():
    module = MLP(4, [6], 2).double()
    assert manual_blockers(module, multiclass_log_loss, "cpu") == (
        "parameters that are not float32 leaf tensors")
    module = MLP(4, [6, 6], 2)
    module.hidden[1].linear.weight.requires_grad_(False)  # not frozen by freeze_
    assert manual_blockers(module, multiclass_log_loss, "cpu") == (
        "parameters with requires_grad=False outside the frozen layers")
    module.freeze_(2)  # now it is inside the frozen layers
    assert manual_blockers(module, multiclass_log_loss, "cpu") is None


@pytest.mark.parametrize("kwargs, reason", [
    (dict(activation="elu"),
     "the private elu backward kernel is not used (not in this torch (_elu_kernel))"),
    (dict(activation="identity", batch_norm="after"),
     "the private batch-norm kernels are not used (not in this torch "
     "(_native_batch_norm, _native_batch_norm_backward))"),
])
def test_blocked_by_a_private_kernel_that_is_not_used(kwargs, reason):
    module = MLP(4, [6], 2, **kwargs)
    assert manual_blockers(module, multiclass_log_loss, "cpu") is None
    restore = _kernels._use_fallbacks_for_tests()
    try:
        assert manual_blockers(module, multiclass_log_loss, "cpu") == reason
    finally:
        restore()
    assert manual_blockers(module, multiclass_log_loss, "cpu") is None


# ---------------------------------------------------------- what it is built of
def test_manual_step_builds_one_runner_per_op_and_stops_above_frozen_layers():
    spec = EmbeddingSpec("periodic", 4, (0, 1), size=2, n_frequencies=2)
    module = MLP(4, [6, 5, 3], 2, embedding=spec, batch_norm_input=True, batch_norm="after",
                 dropout=0.2)
    opt = build_optimizer("sgd", module.named_parameters(), HP)
    step = ManualStep(module, multiclass_log_loss, opt)
    assert len(step.runners) == len(module.plan.ops())
    assert step.linears == [r for r in step.runners if isinstance(r, PENALIZED)]
    assert len(step.linears) == 4 and all(
        r.weight is lin.weight for r, lin in zip(step.linears, module.linears(), strict=True))
    # n frozen layers: the backward stops at hidden layer n's first op (0: at the embedding)
    assert step.first_trainable == [0, 6, 10, 14] and module.plan.block_starts == (2, 6, 10, 14)
    assert [m for m, _ in step.counters] == [m for m in module.modules()
                                              if isinstance(m, nn.BatchNorm1d)]
    assert step.reg == Regularization() and step.fallback_reason is None


# ----------------------------------------------------------- direct fused Adam
def _trained(solver="adam", n_steps=1, **kwargs):
    torch.manual_seed(0)
    module = MLP(4, [6], 3).initialize_()
    opt = build_optimizer(solver, module.named_parameters(), HP)
    for group in opt.param_groups:
        group.update(kwargs)
    g = torch.Generator().manual_seed(1)
    step = ManualStep(module, multiclass_log_loss, opt)
    batches = [(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g),
                torch.ones(8)) for _ in range(n_steps)]
    for batch in batches:
        step.train_batch(*batch)
    return step, opt


def test_direct_adam_applies_only_to_fused_adam_with_its_state():
    torch.manual_seed(0)
    module = MLP(4, [6], 3)
    fresh = build_optimizer("adam", module.named_parameters(), HP)
    assert fresh.param_groups[0]["fused"]
    assert not _DirectFusedAdam.applies(fresh)  # no state before the first step
    step, opt = _trained()
    assert _DirectFusedAdam.applies(opt) and step.direct_adam is not None
    assert not _DirectFusedAdam.applies(_trained("momentum")[1])
    assert not _DirectFusedAdam.applies(_trained(amsgrad=True)[1])
    assert not _DirectFusedAdam.applies(_trained(maximize=True)[1])
    step, opt = _trained()
    next(iter(opt.param_groups[0]["params"])).grad = None
    assert not _DirectFusedAdam.applies(opt)


def test_a_reloaded_optimizer_state_goes_back_through_optimizer_step():
    # A callback loading a checkpoint replaces the optimizer's groups and state:
    # the direct call's views are stale and a new one is built on the new state.
    step, opt = _trained(n_steps=2)
    ref_step, _ = _trained(n_steps=2)  # (the same, never reloaded)
    first = step.direct_adam
    assert first is not None and first.current()
    opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert not first.current()
    g = torch.Generator().manual_seed(2)
    for _ in range(2):
        batch = (torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g),
                 torch.ones(8))
        step.train_batch(*batch)
        ref_step.train_batch(*batch)
    assert step.direct_adam is not None and step.direct_adam is not first
    assert step.direct_adam.current()
    for p, q in zip(step.module.parameters(), ref_step.module.parameters(), strict=True):
        assert torch.equal(p, q)
    step.release()
    assert step.direct_adam is None
    counters = [st["step"] for st in opt.state.values()]
    assert len({t.data_ptr() for t in counters}) == len(counters)  # storage of their own
    assert all(float(t) == 4 for t in counters)
