"""The evaluation plan (``_engine/eval_plan.py``): its operations, padding and walks.

Batch invariance of whole predictions, for every activation and layout, is
tested through ``predict_raw`` in ``tests/test_inference.py`` (and the row and
loop padding in ``tests/test_row_probe.py``, ``tests/test_elementwise.py``);
here each operation of the plan against its ``torch.nn`` module, what
``prepare`` builds for a network, and ``padded_rows``, ``run_plan`` and
``run_padded_modules`` directly.
"""

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sklearn_deepnet._engine.data import largest_product
from sklearn_deepnet._engine.elementwise import aligned_rows
from sklearn_deepnet._engine.embeddings import EmbeddingSpec
from sklearn_deepnet._engine.ensemble import COMBINE_RULES, MemberLinear, MemberScale, MemberSplit
from sklearn_deepnet._engine.eval_plan import (
    _batch_norm,
    _combine,
    _Elementwise,
    _kernel_key,
    _Linear,
    _MemberLinear,
    _MemberScale,
    _MemberSplit,
    _one_chunk,
    _pad,
    _pad_columns,
    padded_rows,
    prepare,
    run_padded_modules,
    run_plan,
)
from sklearn_deepnet._engine.kernels import foreach_copy_
from sklearn_deepnet._engine.module import MLP
from sklearn_deepnet._engine.row_probe import ROW_CANDIDATES

TOL = dict(rtol=1e-5, atol=1e-6)


def _refresh(pairs):
    """What the plan cache does at every call: re-copy each padded copy's source."""
    foreach_copy_([copy for copy, _ in pairs], [source.detach() for _, source in pairs])


def _net(*args, seed=0, **kwargs):
    torch.manual_seed(seed)
    net = MLP(*args, **kwargs).initialize_()
    with torch.no_grad():  # non-trivial statistics and affine parameters
        for m in net.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net


def _eval(module, x, members=False):
    was = module.training
    module.eval()
    try:
        with torch.no_grad():
            return module.forward_members(x) if members else module(x)
    finally:
        module.train(was)


# ------------------------------------------------------------ padded tensors
def test_pad_appends_the_value_and_records_the_copy_to_refresh():
    t = torch.tensor([1.0, 2.0, 3.0])
    assert _pad(t, 3) is t  # nothing to pad: read in place
    pairs = []
    padded = _pad(t, 5, value=1.0, refresh=pairs)
    assert padded.tolist() == [1.0, 2.0, 3.0, 1.0, 1.0]
    (view, source), = pairs
    assert source is t and view.data_ptr() == padded.data_ptr()
    t.mul_(2)
    _refresh(pairs)
    assert padded.tolist() == [2.0, 4.0, 6.0, 1.0, 1.0]  # the padding is kept


def test_pad_columns_appends_zero_columns():
    t = torch.arange(6.0).reshape(2, 3)
    assert _pad_columns(t, 3) is t
    pairs = []
    padded = _pad_columns(t, 5, pairs)
    torch.testing.assert_close(padded, torch.cat([t, torch.zeros(2, 2)], dim=1))
    t.add_(1)
    _refresh(pairs)
    torch.testing.assert_close(padded, torch.cat([t, torch.zeros(2, 2)], dim=1))


# ---------------------------------------------------------------- operations
@pytest.mark.parametrize("bias", [True, False])
def test_linear_pads_its_weights_and_rows(bias):
    torch.manual_seed(0)
    lin = nn.Linear(5, 3, bias=bias)
    pairs = []
    op = _Linear(lin, 5, 16, pairs, min_rows=8)
    assert op.wt.shape == (5, 16) and op.n_out == 16
    # the padded weight is refreshed from the layer's live weight
    assert any(source.data_ptr() == lin.weight.data_ptr() for _, source in pairs)
    assert len(pairs) == (2 if bias else 1)  # (a missing bias: a constant, never re-copied)
    for n in (1, 7, 8, 20):  # fewer rows than min_rows: padded, then cut
        x = torch.randn(n, 5)
        out = op(x)
        assert out.shape == (n, 16)
        torch.testing.assert_close(out[:, :3], F.linear(x, lin.weight, lin.bias).detach(), **TOL)
        assert not out[:, 3:].any()  # padded units are exactly zero
    with torch.no_grad():
        lin.weight.mul_(-2)
    _refresh(pairs)
    x = torch.randn(4, 5)
    torch.testing.assert_close(op(x)[:, :3], F.linear(x, lin.weight, lin.bias).detach(), **TOL)


def test_linear_of_the_exact_shape_reads_the_weights_in_place():
    lin = nn.Linear(4, 16)
    pairs = []
    op = _Linear(lin, 4, 16, pairs)
    assert pairs == [] and op.wt.data_ptr() == lin.weight.data_ptr()


def test_batch_norm_uses_the_running_statistics_and_keeps_padded_columns_zero():
    bn = _net(3, [], 2, batch_norm_input=True).input_norm
    bn.train()  # the plan's operation is mode-free
    pairs = []
    op = _batch_norm(bn, 8, pairs)
    assert len(pairs) == 4  # mean, variance, weight, bias padded to 8 columns
    x = torch.randn(6, 3)
    out = op(torch.cat([x, torch.zeros(6, 5)], dim=1))
    torch.testing.assert_close(out[:, :3], _eval(bn, x), **TOL)
    assert not out[:, 3:].any()
    assert bn.num_batches_tracked == 0  # nothing updated


def test_member_operations_equal_the_ensemble_modules():
    torch.manual_seed(0)
    k, n = 3, 5
    x = torch.randn(n, 4)
    assert torch.equal(_MemberSplit(k)(x), MemberSplit(k)(x))
    scale = MemberScale(k, 4, bias=True)
    with torch.no_grad():
        scale.weight.uniform_(-2, 2)
        scale.bias.uniform_(-1, 1)
    xs = torch.randn(n * k, 4)
    pairs = []
    op = _MemberScale(scale, 6, pairs)  # padded to 6 columns
    out = op(torch.cat([xs, torch.zeros(n * k, 2)], dim=1))
    torch.testing.assert_close(out[:, :4], scale(xs).detach(), rtol=0, atol=0)
    assert not out[:, 4:].any() and len(pairs) == 2
    linear = MemberLinear(k, 4, 2)
    with torch.no_grad():
        linear.bias.uniform_(-1, 1)
    torch.testing.assert_close(_MemberLinear(linear, 4)(xs), linear(xs).detach(), **TOL)
    z = torch.randn(n, k * 2)
    for rule, fn in COMBINE_RULES.items():
        torch.testing.assert_close(_combine(z, k, fn), fn(z.view(n, k, 2)), rtol=0, atol=0,
                                   msg=rule)


def test_kernel_key_is_the_type_and_its_scalar_settings():
    assert _kernel_key(nn.GELU()) != _kernel_key(nn.GELU(approximate="tanh"))
    assert _kernel_key(nn.ELU(0.5)) != _kernel_key(nn.ELU(1.0))
    assert _kernel_key(nn.ELU(0.5)) == _kernel_key(nn.ELU(0.5))
    assert _kernel_key(nn.Tanh())[0] is nn.Tanh
    assert _kernel_key(nn.SiLU()) != _kernel_key(nn.Mish())
    act = nn.ELU(0.5)
    act.table = [1, 2]  # not a scalar setting: not part of the key
    assert _kernel_key(act) == _kernel_key(nn.ELU(0.5))


def test_one_chunk_runs_on_one_thread_and_restores_the_count():
    seen = []

    def fn(x):
        seen.append(torch.get_num_threads())
        return x * 2

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = _one_chunk(fn)(torch.ones(3))
        assert torch.get_num_threads() == 2
        # a loop too small to run on every thread runs as one chunk as well
        _Elementwise(fn, _kernel_key(nn.Tanh()), 16, 16)(torch.ones(4, 16))
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 1] and out.tolist() == [2.0, 2.0, 2.0]


# ------------------------------------------------------------- prepare, _plan
def _ops(module):
    (padded, plan, largest), refresh = prepare(module)
    return padded, plan, largest, refresh


def test_the_plan_of_a_network_pads_hidden_widths_to_16_and_outputs_to_16_columns():
    net = _net(5, [20, 40], 3, activation="gelu", batch_norm="before", dropout=0.1)
    padded, plan, largest, _ = _ops(net)
    assert padded and largest == largest_product(5, [20, 40, 3])
    kinds = [type(op) for op in plan.ops]
    # dropout is the identity: no operation
    assert kinds == [_Linear, functools.partial, _Elementwise, _Linear, functools.partial,
                     _Elementwise, _Linear]
    linears = [op for op in plan.ops if isinstance(op, _Linear)]
    assert [tuple(lin.wt.shape) for lin in linears] == [(5, 32), (32, 48), (48, 16)]
    assert plan.shapes == ((5, 32), (32, 48), (48, 16))
    assert all(lin.min_rows == ROW_CANDIDATES[0].least for lin in linears)
    assert plan.per_row == (32, 48)  # gelu is not exact: its loops are aligned
    assert plan.n_outputs == 3 and plan.grad_free and plan.rules == {}
    assert plan.ops[1].func is F.batch_norm and plan.ops[1].keywords["training"] is False


def test_an_exact_activation_needs_no_loop_alignment():
    _, plan, _, _ = _ops(_net(5, [20], 3, activation="relu"))
    assert plan.per_row == () and not any(isinstance(op, _Elementwise) for op in plan.ops)
    assert plan.shapes == ((5, 32), (32, 16))
    _, plan, _, _ = _ops(_net(5, [20], 40))
    assert plan.shapes == ((5, 32), (32, 40))  # 40 outputs: no padding needed


def test_the_plan_of_an_ensemble_and_of_an_embedding():
    net = _net(5, [20], 2, activation="tanh", n_members=3, member_combine="softmax")
    _, plan, _, _ = _ops(net)
    assert [type(op) for op in plan.ops][:4] == [_MemberSplit, _MemberScale, _Linear,
                                                  _Elementwise]
    assert plan.per_row == (32 * 3,)  # the hidden loop runs on k rows per request row
    assert plan.shapes == ((5, 32), (32, 16))  # each member's output layer: (32, 16)
    spec = EmbeddingSpec("periodic", 5, (0, 3), size=4, n_frequencies=3)
    net = _net(5, [20], 2, embedding=spec)
    _, plan, _, _ = _ops(net)
    assert plan.ops[0] == net.embedding.forward  # run as the module runs it, unpadded
    assert not plan.grad_free  # (that forward reads its parameters, which require grad)
    assert (2, 6, 4) in plan.shapes  # its batched products are probed too


def test_prepares_largest_product_counts_the_embedding_and_the_members():
    # (what picks the prediction's thread count: multiply-adds per request row)
    spec = EmbeddingSpec("periodic", 5, (0, 1, 2, 3), size=8, n_frequencies=3)
    net = _net(5, [20], 2, embedding=spec)
    in_width = net.hidden[0].linear.in_features
    assert in_width == 4 * 8 + 1  # the embedded columns, then the one passed through
    assert _ops(net)[2] == in_width * 20
    for sharing in ("mini", "batch"):  # the shared layers run on 3 rows per request row
        net = _net(5, [20], 2, n_members=3, member_combine="softmax", ensemble_sharing=sharing)
        assert _ops(net)[2] == 3 * 5 * 20
    net = _net(5, [4], 50, n_members=3, member_combine="softmax")
    assert _ops(net)[2] == 3 * 4 * 50  # the members' own output layers (all k)


def test_prepare_counts_a_layer_whose_weight_is_not_a_tensor_by_its_sizes():
    class NoWeight(nn.Module):  # (as a quantized Linear: weight() is a method)
        in_features, out_features = 20, 70

        def weight(self):
            return None

        def forward(self, x):
            return x.new_zeros(x.shape[0], 70)

    net = _net(5, [20], 2)
    net.output.linear = NoWeight()
    padded, plan, largest, _ = _ops(net)
    assert plan is None and largest == 20 * 70


class _Sub(MLP):
    pass


@pytest.mark.parametrize("change, padded", [
    ("nothing", True),
    ("user activation", True),
    ("instance forward on a layer", True),
    ("forward hook on a layer", False),
    ("instance forward on the network", False),
    ("subclass", False),
])
def test_prepare_walks_the_plan_only_for_the_network_it_built(change, padded):
    net = (_Sub if change == "subclass" else MLP)(
        4, [6], 2, activation=nn.Softplus if change == "user activation" else "relu")
    if change == "instance forward on a layer":
        net.hidden[0].linear.forward = lambda x: x
    elif change == "forward hook on a layer":
        net.output.linear.register_forward_hook(lambda m, i, o: o)
    elif change == "instance forward on the network":
        net.forward = lambda x: x
    got_padded, plan, _, refresh = _ops(net)
    assert got_padded == padded
    assert (plan is not None) == (change == "nothing")
    refresh()  # (nothing to copy without a plan: a no-op)


def test_prepares_refresh_follows_edits_the_version_counter_misses():
    net = _net(5, [20], 3, batch_norm="after", activation="prelu")
    _, plan, _, refresh = _ops(net)
    x = torch.randn(7, 5)
    with torch.no_grad():
        for p in net.parameters():
            p.data.mul_(1.5)  # (.data: no version bump)
        net.hidden[0].activation.weight.data.fill_(-0.7)
    refresh()
    torch.testing.assert_close(run_plan(plan, x), _eval(net, x), **TOL)


# ----------------------------------------------------------- the plan's walk
def test_padded_rows_are_counts_the_rule_and_the_loops_allow():
    _, plan, _, _ = _ops(_net(5, [20, 40], 3, activation="gelu"))
    threads = torch.get_num_threads()
    for n in range(1, 70):
        rows = padded_rows(plan, n)
        rule = plan.rules[threads]  # probed once, kept per thread count
        assert rule in ROW_CANDIDATES
        assert rows >= n and rule.rows(rows) == rows
        assert aligned_rows(rows, plan.per_row, threads) == rows
    assert list(plan.rules) == [threads]
    _, exact, _, _ = _ops(_net(5, [20], 3))
    assert padded_rows(exact, 500) == 500  # no loop to align, above every floor


@pytest.mark.parametrize("kwargs", [
    dict(activation="elu", batch_norm="after", batch_norm_input=True, dropout=0.3),
    dict(activation="selu", dropout=0.2, n_members=3, member_combine="softmax"),
    dict(activation="swish", batch_norm="before", n_members=2, ensemble_sharing="batch",
         member_combine="exp"),
], ids=["single", "mini", "batch"])
def test_run_plan_computes_the_modules_evaluation(kwargs):
    net = _net(5, [20, 12], 3, **kwargs)
    net.train()
    _, plan, _, _ = _ops(net)
    x = torch.randn(9, 5)
    x_before = x.clone()
    torch.testing.assert_close(run_plan(plan, x), _eval(net, x), **TOL)
    k = net.plan.n_members
    if k > 1:  # each member's outputs side by side, as forward_members gives them
        out = run_plan(plan, x, members=k)
        assert out.shape == (9, 3 * k)
        torch.testing.assert_close(out, _eval(net, x, members=True), **TOL)
    assert torch.equal(x, x_before) and net.training


def test_one_row_gives_the_bits_it_has_among_other_rows():
    _, plan, _, _ = _ops(_net(5, [20, 12], 3, activation="gelu", batch_norm="after"))
    x = torch.randn(37, 5)
    full = run_plan(plan, x)
    for i in (0, 17, 36):
        assert torch.equal(run_plan(plan, x[i:i + 1]), full[i:i + 1])


@pytest.mark.parametrize("kwargs", [
    dict(batch_norm="before", batch_norm_input=True, dropout=0.4),
    dict(n_members=3, member_combine="sigmoid", dropout=0.2),
    dict(n_members=2, ensemble_sharing="batch", batch_norm="after", member_combine="exp"),
], ids=["single", "mini", "batch"])
@pytest.mark.parametrize("n_outputs", [1, 3])
def test_run_padded_modules_equals_the_modules_in_evaluation_mode(kwargs, n_outputs):
    net = _net(5, [20], n_outputs, activation=nn.Softplus, **kwargs)
    _, plan, _, _ = _ops(net)
    assert plan is None  # a user's activation: the modules run
    x = torch.randn(9, 5)
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(run_padded_modules(net, x), net(x), **TOL)
        if net.plan.n_members > 1:
            torch.testing.assert_close(run_padded_modules(net, x, members=True),
                                       net.forward_members(x), **TOL)
