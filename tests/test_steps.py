"""Training steps: the fast steps against the eager autograd reference."""

import copy
import itertools
import math
from collections import OrderedDict

import numpy as np
import pytest
import torch

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor
from sklearn_deepnet._engine.fast_step import ManualStep, manual_blockers
from sklearn_deepnet._engine.losses import (
    REGRESSION_LOSSES,
    binary_log_loss,
    multiclass_log_loss,
    squared_error,
)
from sklearn_deepnet._engine.module import MLP
from sklearn_deepnet._engine.optim import SOLVERS, build_optimizer
from sklearn_deepnet._engine.select import select_step
from sklearn_deepnet._engine.steps import (
    EagerStep,
    Regularization,
    apply_max_norm,
    clip_gradients,
    weight_penalty,
)

HP = dict(learning_rate_init=1e-2, momentum=0.9, nesterovs_momentum=True, beta_1=0.9,
          beta_2=0.999, epsilon=1e-8, rho=0.9, weight_decay=0.0)
# float32 rounding differs between the hand-written and the autograd backward;
# after N_STEPS updates weights agree to this relative tolerance.
N_STEPS = 8
RTOL, ATOL = 2e-4, 2e-5


def _problem(loss, n=48, d=7, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    w = torch.rand(n, generator=g) + 0.5
    if loss is multiclass_log_loss:
        y = torch.randint(0, k, (n,), generator=g)
    elif loss is binary_log_loss:
        y = (torch.rand(n, k, generator=g) > 0.5).float()
    else:
        y = torch.randn(n, k, generator=g)
    return X, y, w


def _run(step_cls, module, loss, solver, batches, uniform_weights=None, **kwargs):
    module = copy.deepcopy(module)
    opt = build_optimizer(solver, module.named_parameters(), HP)
    extra = {} if uniform_weights is None else dict(uniform_weights=uniform_weights)
    step = step_cls(module, loss, opt, Regularization(**kwargs), **extra)
    torch.manual_seed(1234)  # the same dropout masks on both paths
    losses = [float(step.train_batch(*b)) for b in batches]
    return module, losses


def _batches(X, y, w, size=16, n_steps=N_STEPS):
    starts = itertools.cycle(range(0, len(X), size))
    return [(X[s:s + size], y[s:s + size], w[s:s + size])
            for s in itertools.islice(starts, n_steps)]


def _assert_same(m1, m2, l1, l2, skip=()):
    np.testing.assert_allclose(l1, l2, rtol=RTOL, atol=ATOL)
    for (name, p1), (_, p2) in zip(m1.state_dict().items(), m2.state_dict().items(),
                                   strict=True):
        if name in skip:
            continue
        np.testing.assert_allclose(p1.numpy(), p2.numpy(), rtol=RTOL, atol=ATOL, err_msg=name)


def _table_activations(with_step=True):
    """One name per activation row (aliases once) whose row has (or lacks) a
    hand-written forward and backward: generated from the table, so a new row
    is tested here without a new line."""
    from sklearn_deepnet._engine.activations import ACTIVATIONS as TABLE

    seen, names = set(), []
    for name, row in sorted(TABLE.items()):
        if id(row) not in seen and (row.backward is not None) == with_step:
            seen.add(id(row))
            names.append(name)
    return names


ACTIVATIONS = _table_activations()
LOSSES = [multiclass_log_loss, binary_log_loss, squared_error]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
def test_manual_step_matches_eager(activation, loss):
    X, y, w = _problem(loss)
    torch.manual_seed(0)
    module = MLP(7, [11, 5], 3, activation=activation).initialize_()
    batches = _batches(X, y, w)
    m1, l1 = _run(EagerStep, module, loss, "adam", batches)
    m2, l2 = _run(ManualStep, module, loss, "adam", batches)
    _assert_same(m1, m2, l1, l2)


@pytest.mark.parametrize("solver", sorted(k for k, s in SOLVERS.items() if s.stochastic))
def test_manual_step_matches_eager_every_solver(solver):
    X, y, w = _problem(multiclass_log_loss)
    torch.manual_seed(1)
    module = MLP(7, [9, 9, 9], 3, activation="elu").initialize_()
    batches = _batches(X, y, w)
    _assert_same(*_pair(module, multiclass_log_loss, solver, batches))


def _pair(module, loss, solver, batches, **kwargs):
    m1, l1 = _run(EagerStep, module, loss, solver, batches, **kwargs)
    m2, l2 = _run(ManualStep, module, loss, solver, batches, **kwargs)
    return m1, m2, l1, l2


@pytest.mark.parametrize("kwargs", [
    dict(alpha=0.3),
    dict(alpha=0.3, l1_ratio=1.0),
    dict(alpha=0.1, l1_ratio=0.4),
    dict(clip_norm=0.05),
    dict(clip_value=0.01),
    dict(max_norm=0.5),
    dict(alpha=0.2, clip_norm=0.1, clip_value=0.05, max_norm=0.8),
], ids=str)
def test_manual_step_matches_eager_regularization(kwargs):
    X, y, w = _problem(binary_log_loss)
    torch.manual_seed(2)
    module = MLP(7, [13, 6], 3, activation="relu").initialize_()
    batches = _batches(X, y, w)
    _assert_same(*_pair(module, binary_log_loss, "sgd", batches, **kwargs))
    _assert_same(*_pair(module, binary_log_loss, "adam", batches, **kwargs))


def test_manual_step_linear_model_and_uneven_batches():
    X, y, w = _problem(squared_error, n=37)
    torch.manual_seed(3)
    for sizes in ([], [4]):
        module = MLP(7, sizes, 3).initialize_()
        batches = _batches(X, y, w, size=10)  # 10, 10, 10, 7, ...
        _assert_same(*_pair(module, squared_error, "nadam", batches, alpha=0.05))


@pytest.mark.parametrize("solver, weight_decay", [("adam", 0.0), ("adamw", 0.01),
                                                  ("adam", 0.05)])
def test_direct_fused_adam_is_bit_identical_and_released(solver, weight_decay):
    X, y, w = _problem(multiclass_log_loss)
    torch.manual_seed(4)
    module = MLP(7, [9, 9], 3).initialize_()
    batches = _batches(X, y, w, n_steps=12)
    hp = {**HP, "weight_decay": weight_decay}
    results = []
    for allow in (True, False):
        m = copy.deepcopy(module)
        opt = build_optimizer(solver, m.named_parameters(), hp)
        step = ManualStep(m, multiclass_log_loss, opt, Regularization(alpha=0.01))
        step.allow_direct_adam = allow
        losses = [float(step.train_batch(*b)) for b in batches]
        assert (step.direct_adam is not None) == allow
        step.release()
        steps = [st["step"] for st in opt.state.values()]
        assert len({id(t) for t in steps}) == len(steps)  # counters no longer shared
        assert all(float(t) == 12 for t in steps)
        opt.step()  # a plain torch step still works afterwards
        results.append((m, losses))
    (m1, l1), (m2, l2) = results
    assert l1 == l2
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p1, p2)


def test_uniform_weights_shortcut_matches_weighted_path():
    X, y, _ = _problem(binary_log_loss)
    w = torch.ones(len(X))
    torch.manual_seed(5)
    module = MLP(7, [8], 3).initialize_()
    batches = _batches(X, y, w)
    m1, l1 = _run(ManualStep, module, binary_log_loss, "sgd", batches, uniform_weights=True)
    m2, l2 = _run(ManualStep, module, binary_log_loss, "sgd", batches)
    _assert_same(m1, m2, l1, l2)


@pytest.mark.parametrize("kwargs, reason", [
    (dict(activation="prelu"), "PReLU"),
    (dict(activation="rrelu"), "RReLU"),
    (dict(activation=torch.nn.Hardswish), "Hardswish"),
])
def test_manual_blockers(kwargs, reason):
    module = MLP(4, [5], 2, **kwargs)
    assert reason in manual_blockers(module, multiclass_log_loss, "cpu")
    assert manual_blockers(MLP(4, [5], 2), multiclass_log_loss, "cpu") is None
    huber = REGRESSION_LOSSES["huber"].factory(1.0)
    assert manual_blockers(MLP(4, [5], 2), huber, "cpu") == "loss"
    assert "CPU" in manual_blockers(MLP(4, [5], 2), multiclass_log_loss, "cuda")


@pytest.mark.parametrize("kwargs", [
    dict(batch_norm="before"), dict(batch_norm="after"), dict(batch_norm_input=True),
    dict(batch_norm="before", batch_norm_input=True), dict(dropout=0.3), dict(dropout=0.9),
    dict(dropout=0.25, activation="selu"),  # alpha dropout
    dict(dropout=0.2, batch_norm="after", batch_norm_input=True, activation="elu"),
    dict(dropout=0.1, batch_norm="before", activation="gelu"),
    dict(activation="swish"), dict(activation="mish"), dict(activation="gelu"),
], ids=str)
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_manual_step_matches_eager_batch_norm_dropout_activations(kwargs, solver):
    # Every configuration the extended fast path accepts; state_dict includes
    # BatchNorm's running mean, variance and batch count.
    X, y, w = _problem(multiclass_log_loss)
    torch.manual_seed(6)
    module = MLP(7, [10, 8, 6], 3, **kwargs).initialize_()
    assert manual_blockers(module, multiclass_log_loss, "cpu") is None
    batches = _batches(X, y, w)
    m1, m2, l1, l2 = _pair(module, multiclass_log_loss, solver, batches, alpha=0.05)
    skip = ()
    if solver == "adam" and kwargs.get("batch_norm") == "before" and kwargs.get(
            "batch_norm_input"):
        # BatchNorm right after the first linear layer removes the batch mean of
        # its gradient, so the input norm's shift has a gradient of exactly 0 up
        # to rounding; Adam divides that rounding noise by its own size and
        # takes full steps in its sign, which differs between any two backward
        # implementations. Only the first BatchNorm's running mean sees that shift
        # (its output does not); everything else has to agree.
        skip = ("input_norm.bias", "hidden.0.batch_norm.running_mean")
    _assert_same(m1, m2, l1, l2, skip)
    if kwargs.get("batch_norm") or kwargs.get("batch_norm_input"):
        stats = [k for k in m1.state_dict() if "running" in k or "num_batches" in k]
        assert stats and all(m1.state_dict()[k].abs().sum() > 0 for k in stats)


def _layouts():
    """Every layout the plan compiles, from its layer kinds: BatchNorm before or
    after the activation, on the inputs, dropout (alpha dropout for a
    self-normalizing activation), and all of them at once."""
    return [dict(batch_norm="before"), dict(batch_norm="after", batch_norm_input=True),
            dict(dropout=0.3), dict(batch_norm="before", batch_norm_input=True, dropout=0.2)]


@pytest.mark.parametrize("layout", _layouts(), ids=str)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_row_in_every_layout_matches_eager(activation, layout):
    # Generated from the tables (issue 23): every configuration the allow-list
    # accepts, weights, BatchNorm statistics and losses after 8 steps.
    from sklearn_deepnet._engine.plan import LAYER_KINDS

    X, y, w = _problem(multiclass_log_loss)
    torch.manual_seed(9)
    module = MLP(7, [10, 6], 3, activation=activation, **layout).initialize_()
    kinds = {op.kind for _, op in module.plan.ops()}
    assert kinds <= set(LAYER_KINDS)
    assert manual_blockers(module, multiclass_log_loss, "cpu") is None
    skip = ()
    if layout.get("batch_norm") == "before" and layout.get("batch_norm_input"):
        skip = ("input_norm.bias", "hidden.0.batch_norm.running_mean")  # (see above)
    _assert_same(*_pair(module, multiclass_log_loss, "sgd", _batches(X, y, w), alpha=0.05),
                 skip)


def _embedding_spec(kind, X, numeric=(0, 2, 3, 5)):
    from sklearn_deepnet._engine.embeddings import EmbeddingSpec, quantile_bins

    bins = (quantile_bins([X[:, j].numpy() for j in numeric], 6)
            if kind == "piecewise_linear" else None)
    return EmbeddingSpec(kind, X.shape[1], numeric, size=4, n_frequencies=5,
                         frequency_scale=0.3, bins=bins)


@pytest.mark.parametrize("layout", [{}, *_layouts()], ids=str)
@pytest.mark.parametrize("kind", ["periodic", "piecewise_linear"])
def test_every_embedding_in_every_layout_matches_eager(kind, layout):
    # Generated from the embedding table (issue 26): every embedding kind as the
    # plan's first op, below every layout.
    from sklearn_deepnet._engine.embeddings import EMBEDDINGS

    assert kind in EMBEDDINGS
    X, y, w = _problem(multiclass_log_loss)
    torch.manual_seed(9)
    module = MLP(7, [10, 6], 3, embedding=_embedding_spec(kind, X), **layout).initialize_()
    assert module.plan.located[0][1].kind == f"{kind}_embedding"
    assert manual_blockers(module, multiclass_log_loss, "cpu") is None
    _assert_same(*_pair(module, multiclass_log_loss, "sgd", _batches(X, y, w), alpha=0.05))


@pytest.mark.parametrize("kind", ["periodic", "piecewise_linear"])
@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
def test_embeddings_every_loss_with_adam(kind, loss):
    X, y, w = _problem(loss)
    torch.manual_seed(3)
    module = MLP(7, [9], 3, embedding=_embedding_spec(kind, X, (1, 4))).initialize_()
    _assert_same(*_pair(module, loss, "adam", _batches(X, y, w)))


@pytest.mark.parametrize("kind", ["periodic", "piecewise_linear"])
def test_embedding_runner_gradients_equal_autograd(kind):
    # Input gradients too (the step never needs them: the embedding is the first op).
    from sklearn_deepnet._engine.runners import RUNNERS

    X, _, _ = _problem(multiclass_log_loss, n=40)
    torch.manual_seed(0)
    module = MLP(7, [5], 2, embedding=_embedding_spec(kind, X)).embedding
    G = torch.randn(40, module.spec.n_out)
    x = X.clone().requires_grad_()
    (module(x) * G).sum().backward()
    expected = {k: p.grad.clone() for k, p in module.named_parameters()}
    runner = RUNNERS[f"{kind}_embedding"](module)
    out, saved = runner.forward(X)
    torch.testing.assert_close(out, module(X))
    gx = runner.backward(G, saved, True)
    torch.testing.assert_close(gx, x.grad)
    for k, p in module.named_parameters():
        torch.testing.assert_close(p.grad, expected[k], msg=k)


def test_periodic_runner_frequency_gradient_is_bit_exact():
    # The backward takes cos and sin from the forward's encoding; its gradient
    # must keep the row-major layout of cos(v) (the sum over rows reduces in that
    # order), so a fit's bits do not depend on where cos and sin came from.
    import math

    from sklearn_deepnet._engine.runners import RUNNERS

    X, _, _ = _problem(multiclass_log_loss, n=300)
    torch.manual_seed(1)
    module = MLP(7, [5], 2, embedding=_embedding_spec("periodic", X)).embedding
    runner = RUNNERS["periodic_embedding"](module)
    G = torch.randn(300, module.spec.n_out)
    with torch.no_grad():
        _, saved = runner.forward(X)
        runner.backward(G, saved, False)
        xn = X.index_select(1, module.numeric)
        v, k = module.angles(xn), module.frequencies.shape[1]
        n, n_num = xn.shape
        size = module.spec.size
        ge = G[:, : n_num * size].reshape(n, n_num, size).transpose(0, 1)
        gz = ge * (saved[3] > 0)
        genc = torch.bmm(gz, module.weight.transpose(1, 2)).transpose(0, 1)
        gv = torch.cos(v).mul_(genc[..., k:]).sub_(torch.sin(v).mul_(genc[..., :k]))
        expected = (gv * xn[..., None]).sum(dim=0).mul_(2 * math.pi)
    assert torch.equal(module.frequencies.grad, expected)


@pytest.mark.parametrize("sharing", ["mini", "batch"])
@pytest.mark.parametrize("kind", ["periodic", "piecewise_linear"])
def test_embedding_below_an_ensemble_matches_eager(kind, sharing):
    from sklearn_deepnet._engine.ensemble import member_loss

    X, y, w = _problem(multiclass_log_loss)
    torch.manual_seed(12)
    module = MLP(7, [8, 6], 3, embedding=_embedding_spec(kind, X), n_members=3,
                 ensemble_sharing=sharing, member_combine="softmax", batch_norm_input=True,
                 dropout=0.1).initialize_()
    loss = member_loss(multiclass_log_loss, 3, 3)
    assert manual_blockers(module, loss, "cpu") is None
    _assert_same(*_pair(module, loss, "sgd", _batches(X, y, w), alpha=0.05))


def test_frozen_layers_freeze_the_embedding():
    X, y, w = _problem(multiclass_log_loss)
    torch.manual_seed(8)
    module = MLP(7, [8, 8], 3, embedding=_embedding_spec("periodic", X)).initialize_()
    module.freeze_(1)
    before = copy.deepcopy(module.state_dict())
    m1, m2, l1, l2 = _pair(module, multiclass_log_loss, "momentum", _batches(X, y, w))
    _assert_same(m1, m2, l1, l2)
    for key, value in m2.state_dict().items():
        if key.startswith(("embedding.", "hidden.0.")):
            assert torch.equal(value, before[key]), key
        elif key.startswith("hidden.1.linear"):
            assert not torch.equal(value, before[key]), key
# An ensemble's combining rule per loss (the output activation it averages).
_COMBINE = {multiclass_log_loss: "softmax", binary_log_loss: "sigmoid",
            squared_error: "identity"}


@pytest.mark.parametrize("layout", [{}, *_layouts()], ids=str)
@pytest.mark.parametrize("sharing", ["mini", "batch"])
@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
def test_every_ensemble_layout_matches_eager(loss, sharing, layout):
    # Efficient ensembles (TabM): the member ops' runners and the per-member
    # loss's output gradient against autograd, in every layout of the plan,
    # with the penalty (the per-member output layers' included).
    from sklearn_deepnet._engine.ensemble import member_loss

    X, y, w = _problem(loss)
    torch.manual_seed(10)
    module = MLP(7, [10, 6], 3, activation="elu", n_members=4, ensemble_sharing=sharing,
                 member_combine=_COMBINE[loss], **layout).initialize_()
    kinds = {op.kind for _, op in module.plan.ops()}
    assert {"member_split", "member_linear", "member_mean", "member_scale"} <= kinds
    per_member = member_loss(loss, 4, 3)
    assert manual_blockers(module, per_member, "cpu") is None
    skip, solver = (), "adam"
    if layout.get("batch_norm") == "before" and layout.get("batch_norm_input"):
        # (see above; Adam's steps in the sign of that noise reach the adapter too)
        skip, solver = ("input_norm.bias", "hidden.0.batch_norm.running_mean"), "sgd"
    m1, m2, l1, l2 = _pair(module, per_member, solver, _batches(X, y, w), alpha=0.05,
                           l1_ratio=0.2)
    _assert_same(m1, m2, l1, l2, skip)
    changed = [k for k, v in m1.state_dict().items()
               if "weight" in k and not torch.equal(v, module.state_dict()[k])]
    assert any(k.startswith("members.") or ".scale_" in k for k in changed)
    assert "output.linear.weight" in changed


@pytest.mark.parametrize("sharing", ["mini", "batch"])
def test_ensemble_frozen_layers_match_eager(sharing):
    # Freezing the lowest layers freezes the ensemble's input adapter with them.
    from sklearn_deepnet._engine.ensemble import member_loss

    X, y, w = _problem(multiclass_log_loss)
    torch.manual_seed(11)
    module = MLP(7, [8, 8], 3, n_members=3, ensemble_sharing=sharing, dropout=0.2,
                 batch_norm="after", member_combine="softmax").initialize_()
    module.freeze_(1)
    module.train()
    loss = member_loss(multiclass_log_loss, 3, 3)
    assert manual_blockers(module, loss, "cpu") is None
    before = copy.deepcopy(module.state_dict())
    m1, m2, l1, l2 = _pair(module, loss, "momentum", _batches(X, y, w))
    _assert_same(m1, m2, l1, l2)
    for key, value in m2.state_dict().items():
        if key.startswith(("members.", "hidden.0.")):
            assert torch.equal(value, before[key]), key


def test_ensemble_combination_in_evaluation_mode_takes_the_eager_step():
    from sklearn_deepnet._engine.ensemble import member_loss

    module = MLP(4, [5], 2, n_members=2, member_combine="softmax")
    module.output.combine.eval()
    reason = manual_blockers(module, member_loss(multiclass_log_loss, 2, 2), "cpu")
    assert reason == "the members' combination is in evaluation mode"


def test_every_layer_kind_has_a_runner_and_every_runner_a_kind():
    from sklearn_deepnet._engine.plan import LAYER_KINDS
    from sklearn_deepnet._engine.runners import RUNNERS

    assert set(RUNNERS) == set(LAYER_KINDS)


@pytest.mark.parametrize("activation", _table_activations(with_step=False))
def test_activation_rows_without_a_backward_take_the_eager_step(activation):
    module = MLP(4, [5], 2, activation=activation)
    reason = manual_blockers(module, multiclass_log_loss, "cpu")
    assert reason is not None and "no hand-written forward and backward" in reason


@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
def test_manual_step_batch_norm_every_loss_and_regularization(loss):
    X, y, w = _problem(loss)
    torch.manual_seed(7)
    module = MLP(7, [9, 9], 3, batch_norm="after", batch_norm_input=True, dropout=0.2,
                 activation="mish").initialize_()
    batches = _batches(X, y, w, size=12)
    _assert_same(*_pair(module, loss, "nadam", batches, alpha=0.1, l1_ratio=0.3,
                        clip_norm=0.5, max_norm=1.0))


@pytest.mark.parametrize("n_frozen", [1, 2])
def test_manual_step_frozen_layers_with_batch_norm_and_dropout(n_frozen):
    # Frozen layers: no gradients, BatchNorm in evaluation mode (running stats
    # unchanged), dropout still active: the same as autograd's step.
    X, y, w = _problem(multiclass_log_loss)
    torch.manual_seed(8)
    module = MLP(7, [8, 8, 8], 3, batch_norm="after", batch_norm_input=True,
                 dropout=0.2).initialize_()
    module.freeze_(n_frozen)
    module.train()
    assert manual_blockers(module, multiclass_log_loss, "cpu") is None
    before = copy.deepcopy(module.state_dict())
    m1, m2, l1, l2 = _pair(module, multiclass_log_loss, "momentum", _batches(X, y, w))
    _assert_same(m1, m2, l1, l2)
    frozen = ["input_norm."] + [f"hidden.{i}." for i in range(n_frozen)]
    for key, value in m2.state_dict().items():
        if any(key.startswith(prefix) for prefix in frozen):
            assert torch.equal(value, before[key]), key


def test_manual_dropout_draws_what_nn_dropout_draws():
    x = torch.randn(64, 9)
    from sklearn_deepnet._engine.runners import RUNNERS

    for layer in (torch.nn.Dropout(0.3), torch.nn.AlphaDropout(0.3)):
        module = MLP(9, [9], 2, dropout=0.3,
                     activation="selu" if isinstance(layer, torch.nn.AlphaDropout) else "relu")
        (op, dropout), = [(op, m) for op, m in module.planned_modules()
                          if "dropout" in op.kind]
        manual = RUNNERS[op.kind](dropout)
        torch.manual_seed(0)
        expected = layer.train()(x)
        torch.manual_seed(0)
        got, _ = manual.forward(x)
        assert torch.equal(got, expected)


def test_select_step():
    module = MLP(4, [5], 2)
    adam, adagrad = SOLVERS["adam"], SOLVERS["adagrad"]
    assert select_step(module, multiclass_log_loss, "cpu", adam) == ("cpu-manual", None)
    name, reason = select_step(MLP(4, [5], 2, dropout=0.2, batch_norm="before"),
                               multiclass_log_loss, "cpu", adam)
    assert (name, reason) == ("cpu-manual", None)
    name, reason = select_step(MLP(4, [5], 2, activation="prelu"), multiclass_log_loss, "cpu",
                               adam)
    assert name == "eager" and "PReLU" in reason
    assert select_step(module, multiclass_log_loss, "cpu", adam, fast=False)[0] == "eager"
    assert select_step(module, multiclass_log_loss, "cuda", adam) == ("cuda-graph", None)
    name, reason = select_step(module, multiclass_log_loss, "cuda", adagrad)
    assert name == "eager" and "capturable" in reason


def test_weight_penalty_formula():
    ws = [torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0]])]
    l2 = 0.5 * (1 + 4 + 9)
    l1 = 1 + 2 + 3
    assert float(weight_penalty(ws, 2.0, 0.0)) == pytest.approx(2 * l2)
    assert float(weight_penalty(ws, 2.0, 1.0)) == pytest.approx(2 * l1)
    assert float(weight_penalty(ws, 2.0, 0.25)) == pytest.approx(2 * (0.25 * l1 + 0.75 * l2))


def test_clip_gradients_by_value_then_by_norm():
    p = torch.nn.Parameter(torch.zeros(4))
    p.grad = torch.tensor([3.0, -4.0, 0.5, 0.0])
    clip_gradients([p], clip_value=1.0)
    assert p.grad.tolist() == [1.0, -1.0, 0.5, 0.0]
    # Both: value first ([1, -1, 0.5, 0], norm 1.5), then the norm to 0.5.
    p.grad = torch.tensor([3.0, -4.0, 0.5, 0.0])
    clip_gradients([p], clip_norm=0.5, clip_value=1.0)
    np.testing.assert_allclose(p.grad.numpy(), [1 / 3, -1 / 3, 1 / 6, 0.0], rtol=1e-5)


def _params_with_grads(values):
    params = []
    for v in values:
        p = torch.nn.Parameter(torch.zeros(len(v)))
        p.grad = torch.tensor(v, dtype=torch.float32)
        params.append(p)
    return params


def test_gradient_clipping_by_global_norm_across_parameters():
    params = _params_with_grads([[3.0, -4.0], [12.0]])
    clip_gradients(params, clip_norm=1.0)
    total = math.sqrt(sum(p.grad.pow(2).sum().item() for p in params))
    assert total == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(params[1].grad.numpy(), [12 / 13], rtol=1e-5)  # direction kept


def test_apply_max_norm_rescales_long_rows_and_leaves_short_ones():
    lin = torch.nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, 4.0, 0.0], [0.1, 0.0, 0.0]]))
    apply_max_norm([lin], 1.0)
    assert torch.allclose(lin.weight, torch.tensor([[0.6, 0.8, 0.0], [0.1, 0.0, 0.0]]))


def test_max_norm_bounds_every_hidden_row(clf_data):
    X, y = clf_data
    r = 0.5
    clf = DeepMLPClassifier((32, 32), max_norm=r, learning_rate_init=0.05, max_iter=10,
                            random_state=0).fit(X * 10, y)
    for lin in clf.module_.hidden_linears():
        norms = lin.weight.norm(dim=1)
        assert (norms <= r * (1 + 1e-5)).all()
        assert norms.max().item() == pytest.approx(r, rel=1e-4)  # the constraint is active
    free = DeepMLPClassifier((32, 32), learning_rate_init=0.05, max_iter=10,
                             random_state=0).fit(X * 10, y)
    assert free.module_.hidden_linears()[0].weight.norm(dim=1).max() > r


@pytest.mark.parametrize("kind", ["clip_value", "clip_norm"])
def test_clipping_bounds_updates_end_to_end(kind, reg_data):
    # Plain SGD with lr=1: each step moves the weights by exactly the clipped gradient.
    X, y = reg_data
    bound = 1e-3
    reg = DeepMLPRegressor((16,), solver="sgd", momentum=0.0, learning_rate_init=1.0,
                           batch_size=50, random_state=0, **{kind: bound})
    reg.partial_fit(X * 100, y * 100)  # huge gradients without clipping
    before = [p.detach().clone() for p in reg.module_.parameters()]
    reg.partial_fit(X * 100, y * 100)
    after = list(reg.module_.parameters())
    n_steps = 4
    deltas = [(a - b).flatten() for a, b in zip(after, before, strict=False)]
    if kind == "clip_value":
        assert max(d.abs().max().item() for d in deltas) <= n_steps * bound * (1 + 1e-4)
    else:
        total = torch.cat(deltas).norm().item()
        assert total <= n_steps * bound * (1 + 1e-4)
    assert np.isfinite(reg.predict(X)).all()


# ----------------------------------------------------------------- CUDA graphs
def _graph_vs_eager(module_kwargs, solver, step_kwargs, n=203, batch=32, epochs=2, loss=None):
    from sklearn_deepnet._engine.data import Batches, TensorData
    from sklearn_deepnet._engine.graph_step import GraphStep

    loss = loss or multiclass_log_loss
    X, y, w = (t.cuda() for t in _problem(loss, n=n))
    torch.manual_seed(0)
    module = MLP(7, [16, 16, 16], 3, **module_kwargs).initialize_().cuda()
    bounds = list(range(0, n, batch)) + [n]  # last batch is partial: runs eagerly

    ref = copy.deepcopy(module)
    opt = build_optimizer(solver, ref.named_parameters(), HP)
    eager = EagerStep(ref, loss, opt, Regularization(**step_kwargs))
    ref_losses = []
    for _ in range(epochs):
        total = torch.zeros((), device="cuda")
        for a, b in zip(bounds[:-1], bounds[1:], strict=False):
            total += eager.train_batch(X[a:b], y[a:b], w[a:b]) * (b - a)
        ref_losses.append(float(total) / n)

    fast = copy.deepcopy(module)
    opt = build_optimizer(solver, fast.named_parameters(), HP, device_type="cuda",
                          capturable=True)
    data = TensorData(X, y, w)
    graph = GraphStep(EagerStep(fast, loss, opt, Regularization(**step_kwargs)), data, batch)
    batches = Batches(data, batch, shuffle=False)
    losses = [float(graph.run_epoch(batches)) / n for _ in range(epochs)]
    assert graph.graph is not None and graph.fallback_reason is None
    graph.release()
    return ref, fast, ref_losses, losses


@pytest.mark.gpu
@pytest.mark.parametrize("module_kwargs, solver, step_kwargs", [
    (dict(), "adam", dict()),
    (dict(activation="elu", batch_norm="before"), "momentum", dict()),
    (dict(activation="selu", batch_norm="after"), "nadam", dict(alpha=0.1)),
    (dict(activation="gelu", batch_norm_input=True), "rmsprop",
     dict(clip_norm=0.5, clip_value=0.2, max_norm=1.0)),
    (dict(activation="tanh"), "adamax", dict(alpha=0.05, l1_ratio=0.5)),
    (dict(activation="swish"), "adamw", dict()),
    (dict(activation="mish"), "nesterov", dict()),
], ids=str)
def test_graph_step_matches_eager(module_kwargs, solver, step_kwargs):
    ref, fast, ref_losses, losses = _graph_vs_eager(module_kwargs, solver, step_kwargs)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-4)
    for (name, p1), (_, p2) in zip(ref.state_dict().items(), fast.state_dict().items(),
                                   strict=True):
        np.testing.assert_allclose(p1.cpu().numpy(), p2.cpu().numpy(), rtol=1e-3, atol=1e-5,
                                   err_msg=name)


@pytest.mark.gpu
def test_graph_step_dropout_draws_fresh_masks():
    # Dropout inside the graph: masks differ between replays (the loss of
    # identical batches differs), training still decreases the loss.
    ref, fast, ref_losses, losses = _graph_vs_eager(dict(dropout=0.3), "adam", {}, epochs=6)
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    assert len(set(losses)) == len(losses)


@pytest.mark.gpu
def test_estimator_uses_cuda_graph_and_falls_back():
    from sklearn_deepnet import DeepMLPClassifier

    X, y = _problem(multiclass_log_loss, n=300)[:2]
    X, y = X.numpy(), y.numpy()
    clf = DeepMLPClassifier((32, 32), batch_size=64, max_iter=5, device="cuda",
                            random_state=0).fit(X, y)
    assert clf.engine_ == "cuda-graph" and clf.engine_reason_ is None
    ada = DeepMLPClassifier((32, 32), solver="adagrad", batch_size=64, max_iter=5,
                            device="cuda", random_state=0).fit(X, y)
    assert ada.engine_ == "eager" and "capturable" in ada.engine_reason_
    assert all(p.grad is None for p in clf.module_.parameters())  # graph pool freed


def test_manual_step_refuses_activation_subclasses_and_hooks():
    class Clamped(torch.nn.ReLU):
        def forward(self, x):
            return x.clamp(0, 0.1)

    module = MLP(4, [5], 2, activation=Clamped)
    assert "Clamped" in manual_blockers(module, multiclass_log_loss, "cpu")
    hooked = MLP(4, [5], 2)
    hooked.hidden[0].activation.register_forward_hook(lambda m, i, o: o * 2)
    assert manual_blockers(hooked, multiclass_log_loss, "cpu") == (
        "hooks on hidden.0.activation (forward_hooks)")


# ------------------------------------------------ the allow-list of the fast step
def _changed(how):
    """An MLP changed after it was built, in one of the ways the fast step cannot run."""
    module = MLP(4, [5, 5], 2, batch_norm="before", dropout=0.1)
    if how == "tensor hook":
        module.hidden[1].linear.weight.register_hook(lambda g: g * 2)
    elif how == "post-accumulate hook":
        module.output.linear.bias.register_post_accumulate_grad_hook(lambda p: None)
    elif how == "backward hook":
        module.hidden[0].register_full_backward_hook(lambda m, gi, go: None)
    elif how == "forward pre-hook":
        module.output.register_forward_pre_hook(lambda m, i: None)
    elif how == "weight_norm":
        torch.nn.utils.parametrizations.weight_norm(module.hidden[0].linear)
    elif how == "instance forward":
        module.hidden[0].activation.forward = lambda x: x * 0
    elif how == "replaced submodule":
        module.hidden[0].activation = torch.nn.Softplus()
    elif how == "added submodule":
        module.hidden[0].add_module("scale", torch.nn.Identity())
    elif how == "added parameter":
        module.hidden[0].linear.register_parameter("scale", torch.nn.Parameter(torch.ones(1)))
    elif how == "reordered layers":
        block = module.hidden[0]
        module.hidden[0] = torch.nn.Sequential(OrderedDict(
            linear=block.linear, activation=block.activation, dropout=block.dropout,
            batch_norm=block.batch_norm))
    elif how == "bn without momentum":
        module.hidden[0].batch_norm.momentum = None
    elif how == "subclassed network":
        class Doubled(MLP):
            def forward(self, x):
                return 2 * super().forward(x)
        module = Doubled(4, [5], 2)
    return module


CHANGES = ["tensor hook", "post-accumulate hook", "backward hook", "forward pre-hook",
           "weight_norm", "instance forward", "replaced submodule", "added submodule",
           "added parameter", "reordered layers", "bn without momentum", "subclassed network"]


@pytest.mark.parametrize("how", CHANGES)
def test_fast_step_runs_only_the_network_it_was_written_for(how):
    # Issue 23: the fast step decided from a list of known blockers, so a
    # parameter hook, a weight_norm layer or a global hook were silently skipped.
    assert manual_blockers(MLP(4, [5, 5], 2, batch_norm="before", dropout=0.1),
                           multiclass_log_loss, "cpu") is None
    reason = manual_blockers(_changed(how), multiclass_log_loss, "cpu")
    assert reason is not None
    name, why = select_step(_changed(how), multiclass_log_loss, "cpu", SOLVERS["adam"])
    assert name == "eager" and reason in why


def test_global_module_hooks_keep_every_fast_step_off():
    from torch.nn.modules.module import register_module_forward_hook

    module = MLP(4, [5], 2)
    handle = register_module_forward_hook(lambda m, i, o: None)
    try:
        assert manual_blockers(module, multiclass_log_loss, "cpu") == (
            "global module hooks (global_forward_hooks)")
        name, why = select_step(module, multiclass_log_loss, "cuda", SOLVERS["adam"])
        assert name == "eager" and "global module hooks" in why
    finally:
        handle.remove()
    assert manual_blockers(module, multiclass_log_loss, "cpu") is None


class _AtTrainBegin:
    """A skorch callback running ``fn(net)`` in ``on_train_begin``."""

    def __new__(cls, fn):
        from skorch.callbacks import Callback

        class Run(Callback):
            def on_train_begin(self, net, **kwargs):
                fn(net)

        return Run()


def test_a_gradient_hook_from_a_callback_runs_in_training(clf_data):
    X, y = clf_data
    calls = []

    def hook(net):
        net.module_.hidden[0].linear.weight.register_hook(lambda g: calls.append(1))

    clf = DeepMLPClassifier((8,), max_iter=2, batch_size=50, random_state=0,
                            callbacks=[_AtTrainBegin(hook)]).fit(X, y)
    assert len(calls) == 8  # every step of 2 epochs x 4 batches
    assert clf.engine_ == "eager" and "hooks on the parameter hidden.0.linear.weight" in (
        clf.engine_reason_)


def test_a_hook_attached_mid_fit_switches_to_the_eager_step_from_that_epoch(clf_data):
    from skorch.callbacks import Callback

    X, y = clf_data
    calls = []

    class HookFromEpoch3(Callback):
        def on_epoch_begin(self, net, **kwargs):
            if len(net.history) == 3:
                net.module_.output.linear.weight.register_hook(lambda g: calls.append(1))

    clf = DeepMLPClassifier((8,), max_iter=4, batch_size=50, random_state=0, tol=0,
                            callbacks=[HookFromEpoch3()]).fit(X, y)
    assert len(calls) == 8 and clf.engine_ == "eager"


def test_a_global_forward_hook_sees_every_training_forward_pass(clf_data):
    from torch.nn.modules.module import register_module_forward_hook

    X, y = clf_data
    seen = []
    handle = register_module_forward_hook(
        lambda m, i, o: seen.append(1) if isinstance(m, MLP) and m.training else None)
    try:
        DeepMLPClassifier((8,), max_iter=2, batch_size=50, random_state=0).fit(X, y)
    finally:
        handle.remove()
    assert len(seen) == 8


@pytest.mark.parametrize("alpha", [0.0, 1e-3])
def test_a_weight_norm_layer_trains_on_the_eager_step(alpha, clf_data):
    # Issue 23: a weight_norm layer never trained on the fast step (only its
    # bias changed), and the eager step, which kept lin.weight, crashed.
    X, y = clf_data
    clf = DeepMLPClassifier((8,), max_iter=1, random_state=0, alpha=alpha).fit(X, y)
    layer = torch.nn.utils.parametrizations.weight_norm(clf.module_.hidden[0].linear)
    before = layer.weight.detach().clone()
    clf.set_params(warm_start=True, max_iter=3, learning_rate_init=0.01).fit(X, y)
    assert clf.engine_ == "eager" and "parametrization of hidden.0.linear" in (
        clf.engine_reason_)
    assert not torch.allclose(layer.weight, before)
    with pytest.raises(ValueError, match="max_norm rescales.*parametrized"):
        clf.set_params(max_norm=1.0).fit(X, y)


def _changed_mid_fit(how):
    def change(net):
        block = net.module_.hidden[0]
        if how == "activation swapped":
            block.activation = torch.nn.Tanh()
        elif how == "dropout rate":
            block.dropout.p = 0.5
        elif how == "dropout in eval mode":
            block.dropout.eval()
        elif how == "batch-norm momentum":
            block.batch_norm.momentum = 0.5
        elif how == "batch-norm epsilon":
            block.batch_norm.eps = 0.5
        elif how == "leaky slope":
            block.activation.negative_slope = 0.3
        elif how == "linear replaced":
            old = block.linear
            new = torch.nn.Linear(old.in_features, old.out_features, bias=old.bias is not None)
            new.load_state_dict(old.state_dict())
            block.linear = new
        elif how == "weight storage":
            block.linear.weight.data = block.linear.weight.data * 0.5
    return change


@pytest.mark.parametrize("how", ["activation swapped", "dropout rate", "dropout in eval mode",
                                 "batch-norm momentum", "batch-norm epsilon", "leaky slope",
                                 "linear replaced", "weight storage"])
def test_a_layer_changed_mid_fit_trains_as_autograd_would(how, clf_data):
    # Found in review: the hand-written step kept what it read when built
    # (the activation, the dropout rate, a weight's old storage): a callback
    # changing them mid-fit was silently ignored (0.08-0.85 from eager).
    from skorch.callbacks import Callback

    X, y = clf_data

    class ChangeAtEpoch2(Callback):
        def on_epoch_begin(self, net, **kwargs):
            if len(net.history) == 2:
                _changed_mid_fit(how)(net)

    def fit(fast):
        clf = DeepMLPClassifier((12,), activation="leaky_relu", batch_norm="before",
                                dropout=0.1, max_iter=4, batch_size=50, random_state=0,
                                tol=0, callbacks=[ChangeAtEpoch2()])
        clf._fast_engine = fast
        return clf.fit(X, y)

    fast, eager = fit(True), fit(False)
    if how != "linear replaced":  # (a new Linear is not in the optimizer: frozen as such)
        assert fast.engine_ == "cpu-manual"
    np.testing.assert_allclose(fast.predict_proba(X), eager.predict_proba(X), rtol=1e-3,
                               atol=1e-5)


def test_a_numpy_scalar_slope_set_on_a_fitted_module_trains(clf_data):
    # Found in review: negative_slope = np.float32(0.6) set by hand crashed the
    # hand-written step inside torch's leaky_relu_backward kernel.
    X, y = clf_data
    clf = DeepMLPClassifier((8,), activation="leaky_relu", max_iter=1, random_state=0).fit(X, y)
    clf.module_.hidden[0].activation.negative_slope = np.float32(0.6)
    clf.set_params(warm_start=True, max_iter=2).fit(X, y)
    assert clf.engine_ == "cpu-manual" and np.isfinite(clf.loss_)


@pytest.mark.parametrize("members", [1, 3])
@pytest.mark.parametrize("base, epsilon, k", [(multiclass_log_loss, 0.1, 3),
                                              (binary_log_loss, 0.2, 3),
                                              (binary_log_loss, 0.1, 1)],
                         ids=["multiclass", "multilabel", "binary"])
def test_label_smoothing_runs_on_the_manual_step_as_autograd_would(base, epsilon, k, members):
    # The hand-written step's output gradient of a label-smoothed log-loss
    # (its own rows, not autograd) trains like the eager step, ensembles too;
    # and its losses and gradient equal autograd's on random logits.
    from sklearn_deepnet._engine.ensemble import member_loss
    from sklearn_deepnet._engine.fast_step import output_gradient
    from sklearn_deepnet._engine.losses import LabelSmoothed

    X, y, w = _problem(base, k=k)
    smoothed = LabelSmoothed(base, epsilon)
    z = torch.randn(20, k, requires_grad=True)
    yz = y[:20]
    losses, g = output_gradient(smoothed)(z.detach().clone(), yz)
    smoothed(z, yz).sum().backward()
    np.testing.assert_allclose(losses.numpy(), smoothed(z, yz).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(g.numpy(), z.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(smoothed(z, yz), base(z, yz))  # (it does smooth)

    torch.manual_seed(3)
    combine = "softmax" if base is multiclass_log_loss else "sigmoid"
    module = MLP(7, [9, 6], k, n_members=members, member_combine=combine).initialize_()
    loss = member_loss(smoothed, members, k)
    assert manual_blockers(module, loss, "cpu") is None
    _assert_same(*_pair(module, loss, "adam", _batches(X, y, w), alpha=0.01))
