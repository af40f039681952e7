"""The op runners of the hand-written step (``_engine/runners.py``), each against autograd.

``tests/test_steps.py`` compares whole hand-written steps with the eager step
(and the embedding runners' gradients with ``input_grad=True``, dropout's
masks); here each runner alone: its forward against its module, its backward
against ``torch.autograd`` on the same module, the penalty's gradient, and
``input_grad=False``.
"""

import copy

import pytest
import torch
from torch import nn

from sklearn_deepnet._engine.activations import ACTIVATIONS, SELU_ALPHA, SELU_SCALE
from sklearn_deepnet._engine.embeddings import EmbeddingSpec, PeriodicEmbedding
from sklearn_deepnet._engine.ensemble import MemberLinear, MemberMean, MemberScale, MemberSplit
from sklearn_deepnet._engine.module import MLP
from sklearn_deepnet._engine.runners import _ALPHA_DROPOUT, PENALIZED, RUNNERS

TOL = dict(rtol=1e-5, atol=1e-6)


def _autograd(module, x, g):
    """``(output, input gradient, {parameter: gradient})`` of ``sum(module(x) * g)``."""
    x = x.clone().requires_grad_(True)
    out = module(x)
    (out * g).sum().backward()
    return out.detach(), x.grad, {k: p.grad.clone() for k, p in module.named_parameters()}


def _run(runner, x, g, input_grad=True):
    with torch.no_grad():  # (as the step runs them)
        out, saved = runner.forward(x)
        return out, runner.backward(g, saved, input_grad)


def _check(module, x, kind=None, input_grad=True, **attrs):
    """The runner of ``module`` against autograd on a copy of it."""
    torch.manual_seed(1)
    reference = copy.deepcopy(module)
    g = torch.randn_like(reference(x.clone()))
    out, gx, grads = _autograd(reference, x, g)
    runner = RUNNERS[kind](module)
    for name, value in attrs.items():
        setattr(runner, name, value)
    got, got_gx = _run(runner, x, g, input_grad)
    torch.testing.assert_close(got, out, **TOL)
    if input_grad:
        torch.testing.assert_close(got_gx, gx, **TOL)
    else:
        assert got_gx is None
    for name, p in module.named_parameters():
        torch.testing.assert_close(p.grad, grads[name], **TOL, msg=name)
    return runner


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("input_grad", [True, False])
def test_linear_runner(bias, input_grad):
    torch.manual_seed(0)
    _check(nn.Linear(5, 4, bias=bias), torch.randn(7, 5), "linear", input_grad)


def test_linear_runner_adds_the_penalty_gradient():
    torch.manual_seed(0)
    lin, x = nn.Linear(5, 4), torch.randn(7, 5)
    l2, l1 = 0.3, 0.05
    g = torch.randn(7, 4)
    _, _, grads = _autograd(copy.deepcopy(lin), x, g)
    runner = RUNNERS["linear"](lin)
    runner.l2, runner.l1 = l2, l1
    _run(runner, x, g)
    w = lin.weight.detach()
    # d/dW of 0.5 * l2 * |W|^2 + l1 * |W|_1; the bias is not penalized
    torch.testing.assert_close(lin.weight.grad, grads["weight"] + l2 * w + l1 * torch.sign(w),
                               **TOL)
    torch.testing.assert_close(lin.bias.grad, grads["bias"], **TOL)
    assert isinstance(runner, PENALIZED) and runner.weight_t.data_ptr() == w.data_ptr()


def _bn():
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(4, momentum=0.3, eps=1e-3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    return bn


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("input_grad", [True, False])
def test_batch_norm_runner_and_its_running_statistics(training, input_grad):
    x = torch.randn(9, 4) * 2 + 1
    bn = _bn()
    reference = copy.deepcopy(bn).train(training)
    g = torch.randn(9, 4)
    out, gx, grads = _autograd(reference, x, g)
    runner = RUNNERS["batch_norm"](bn)
    bn.train(training)  # read at every step, not when the runner is built
    got, got_gx = _run(runner, x, g, input_grad)
    torch.testing.assert_close(got, out, **TOL)
    if input_grad:
        torch.testing.assert_close(got_gx, gx, **TOL)
    else:
        assert got_gx is None
    torch.testing.assert_close(bn.weight.grad, grads["weight"], **TOL)
    torch.testing.assert_close(bn.bias.grad, grads["bias"], **TOL)
    torch.testing.assert_close(bn.running_mean, reference.running_mean, **TOL)
    torch.testing.assert_close(bn.running_var, reference.running_var, **TOL)


def _activation_modules():
    """Every activation row with a hand-written forward and backward (aliases once), each
    with a setting of its own where it has one: generated from the table."""
    settings = {"leaky_relu": 0.3, "elu": 0.7}
    seen, cases = set(), []
    for name, row in sorted(ACTIVATIONS.items()):
        if row.forward is None or id(row) in seen:
            continue
        seen.add(id(row))
        cases.append((name, row.factory(settings.get(name, row.default_alpha))))
    cases.append(("gelu-tanh", nn.GELU(approximate="tanh")))
    return cases


@pytest.mark.parametrize("name, module", _activation_modules(), ids=lambda v: str(v))
def test_activation_runner(name, module):
    z = torch.linspace(-4, 4, 45).reshape(5, 9)
    runner = _check(module, z, "activation")
    out, (saved_z, saved_a) = runner.forward(z)
    assert saved_z is z and saved_a is out  # what the table's backward reads


@pytest.mark.parametrize("cls", [nn.Dropout, nn.AlphaDropout])
def test_dropout_runner_backward_applies_the_forwards_mask(cls):
    x = torch.randn(40, 6)
    module = cls(0.3).train()
    g = torch.randn(40, 6)
    torch.manual_seed(5)
    out, gx, _ = _autograd(module, x, g)  # autograd's mask
    torch.manual_seed(5)
    got, got_gx = _run(RUNNERS["alpha_dropout" if cls is nn.AlphaDropout else "dropout"](module),
                       x, g)
    torch.testing.assert_close(got, out, **TOL)
    torch.testing.assert_close(got_gx, gx, **TOL)


def test_dropout_in_evaluation_mode_or_at_zero_is_the_identity():
    x, g = torch.randn(4, 3), torch.randn(4, 3)
    for module in (nn.Dropout(0.5).eval(), nn.AlphaDropout(0.5).eval(), nn.Dropout(0.0)):
        runner = RUNNERS["dropout"](module)
        before = torch.get_rng_state()
        out, saved = runner.forward(x)
        assert out is x and saved is None
        assert runner.backward(g, saved, True) is g
        assert torch.equal(before, torch.get_rng_state())  # nothing drawn


def test_alpha_dropout_constant_is_selus():
    assert _ALPHA_DROPOUT == pytest.approx(SELU_ALPHA * SELU_SCALE, rel=1e-15)


def test_member_split_runner_sums_the_members_gradients():
    x = torch.randn(5, 4)
    _check(MemberSplit(3), x, "member_split")
    g = torch.randn(15, 4)
    runner = RUNNERS["member_split"](MemberSplit(3))
    assert runner.backward(g, None, False) is None
    torch.testing.assert_close(runner.backward(g, None, True), g.view(5, 3, 4).sum(dim=1))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("input_grad", [True, False])
def test_member_scale_runner(bias, input_grad):
    torch.manual_seed(0)
    scale = MemberScale(3, 4, bias=bias)
    with torch.no_grad():
        scale.weight.uniform_(-2, 2)
        if bias:
            scale.bias.uniform_(-1, 1)
    _check(scale, torch.randn(15, 4), "member_scale", input_grad)


@pytest.mark.parametrize("input_grad", [True, False])
def test_member_linear_runner_with_the_penalty(input_grad):
    torch.manual_seed(0)
    linear = MemberLinear(3, 4, 2)
    with torch.no_grad():
        linear.bias.uniform_(-1, 1)
    x = torch.randn(15, 4)
    _check(copy.deepcopy(linear), x, "member_linear", input_grad)
    g = torch.randn(5, 6)
    _, _, grads = _autograd(copy.deepcopy(linear), x, g)
    runner = RUNNERS["member_linear"](linear)
    assert isinstance(runner, PENALIZED)
    runner.l2, runner.l1 = 0.2, 0.01
    _run(runner, x, g, input_grad)
    w = linear.weight.detach()
    torch.testing.assert_close(linear.weight.grad,
                               grads["weight"] + 0.2 * w + 0.01 * torch.sign(w), **TOL)
    torch.testing.assert_close(linear.bias.grad, grads["bias"], **TOL)


def test_member_mean_runner_is_the_identity_in_training():
    x, g = torch.randn(5, 6), torch.randn(5, 6)
    runner = _check(MemberMean(3, "softmax").train(), x, "member_mean")
    assert runner.forward(x)[0] is x and runner.backward(g, None, True) is g


def _embedding(kind):
    torch.manual_seed(0)
    bins = ((-1.0, 0.0, 0.5, 2.0), (-2.0, 1.0)) if kind == "piecewise_linear" else None
    spec = EmbeddingSpec(kind, 4, (0, 2), size=3, n_frequencies=4, frequency_scale=0.5,
                         bins=bins)
    return MLP(4, [5], 2, embedding=spec).embedding


@pytest.mark.parametrize("kind", ["periodic", "piecewise_linear"])
def test_embedding_runner_without_the_input_gradient(kind):
    # The step's case (the embedding is the first op): parameter gradients only.
    module = _embedding(kind)
    x = torch.randn(11, 4) * 1.5
    _check(module, x, f"{kind}_embedding", input_grad=False)
    if isinstance(module, PeriodicEmbedding):
        assert module.frequencies.grad is not None and module.frequencies.grad.any()


def test_dropouts_share_a_runner_and_the_linear_ones_are_penalized():
    # (that RUNNERS has one entry per row of LAYER_KINDS: tests/test_steps.py)
    assert RUNNERS["dropout"] is RUNNERS["alpha_dropout"]
    assert set(PENALIZED) == {RUNNERS["linear"], RUNNERS["member_linear"]}
