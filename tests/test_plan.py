"""The layer plan (``_engine/plan.py``): ``compile_plan``, ``LayerPlan``, ``LAYER_KINDS``.

The interpreters of a plan are tested against each other elsewhere
(``tests/test_steps.py``, ``tests/test_inference.py``); here the plan itself:
the exact ops each setting compiles to, their paths and block starts, and the
table rows (what each kind builds, holds and whether it draws random numbers).
"""

import pytest
import torch
from torch import nn

from sklearn_deepnet._engine.activations import ACTIVATIONS
from sklearn_deepnet._engine.embeddings import EmbeddingSpec
from sklearn_deepnet._engine.ensemble import MemberLinear, MemberMean, MemberScale, MemberSplit
from sklearn_deepnet._engine.module import MLP
from sklearn_deepnet._engine.plan import (
    LAYER_KINDS,
    RANDOM_IN_TRAINING,
    LayerPlan,
    Op,
    child_name,
    compile_plan,
    draws_random_numbers,
    leaf_state,
)

BN = (("eps", 1e-5), ("momentum", 0.1))


def _linear(n_in, n_out, bias=True):
    return Op("linear", n_in, n_out, (("bias", bias),))


def _act(width, name="relu", alpha=None):
    return Op("activation", width, width, (("activation", name), ("alpha", alpha)))


def _bn(width, eps=1e-5, momentum=0.1):
    return Op("batch_norm", width, width, (("eps", eps), ("momentum", momentum)))


def test_op_option_reads_its_options_with_a_default():
    op = Op("linear", 3, 4, (("bias", False),))
    assert op.option("bias") is False
    assert op.option("bias", True) is False  # a value set to False is not the default
    assert op.option("missing") is None and op.option("missing", 7) == 7
    assert Op("dropout", 2, 2).option("p", 0.5) == 0.5  # no options at all


def test_plain_layers_compile_to_linear_and_activation():
    plan = compile_plan(5, [8, 4], 3)
    assert plan == LayerPlan(5, 3, None, ((_linear(5, 8), _act(8)), (_linear(8, 4), _act(4))),
                             _linear(4, 3))
    assert plan.members == () and plan.combine is None and plan.n_members == 1
    assert plan.embedding is None


@pytest.mark.parametrize("position, expected", [
    ("before", lambda w: (_linear(6, w, bias=False), _bn(w, 1e-3, 0.3), _act(w, "elu", 0.5),
                          Op("dropout", w, w, (("p", 0.2),)))),
    ("after", lambda w: (_linear(6, w), _act(w, "elu", 0.5), _bn(w, 1e-3, 0.3),
                         Op("dropout", w, w, (("p", 0.2),)))),
    (None, lambda w: (_linear(6, w), _act(w, "elu", 0.5), Op("dropout", w, w, (("p", 0.2),)))),
])
def test_batch_norm_and_dropout_ops_in_the_order_they_run(position, expected):
    plan = compile_plan(6, [9], 2, activation="elu", activation_alpha=0.5, batch_norm=position,
                        batch_norm_momentum=0.3, batch_norm_epsilon=1e-3, dropout=0.2)
    assert plan.hidden == (expected(9),)
    assert plan.output == _linear(9, 2)  # the output layer keeps its bias
    assert plan.input_norm is None


def test_input_norm_and_alpha_dropout_for_a_self_normalizing_activation():
    plan = compile_plan(4, [7], 2, activation="selu", batch_norm_input=True, dropout=0.1)
    assert plan.input_norm == _bn(4)
    assert plan.hidden == ((_linear(4, 7), _act(7, "selu"),
                            Op("alpha_dropout", 7, 7, (("p", 0.1),))),)
    # a user's activation (a callable) is not known to self-normalize: plain dropout
    plan = compile_plan(4, [7], 2, activation=nn.SELU, dropout=0.1)
    assert plan.hidden[0][1].option("activation") is nn.SELU
    assert plan.hidden[0][2].kind == "dropout"


def test_a_linear_model_is_the_output_layer_alone():
    plan = compile_plan(4, [], 3, batch_norm="before", dropout=0.5)
    assert plan.hidden == () and plan.output == _linear(4, 3)
    assert plan.ops() == [("output.linear", _linear(4, 3))]
    assert plan.block_starts == (0,)


def test_ops_paths_and_block_starts():
    plan = compile_plan(5, [8, 4], 3, batch_norm="after", batch_norm_input=True, dropout=0.3)
    assert [path for path, _ in plan.ops()] == [
        "input_norm",
        "hidden.0.linear", "hidden.0.activation", "hidden.0.batch_norm", "hidden.0.dropout",
        "hidden.1.linear", "hidden.1.activation", "hidden.1.batch_norm", "hidden.1.dropout",
        "output.linear"]
    assert [op for _, op in plan.ops()] == [plan.input_norm, *plan.hidden[0], *plan.hidden[1],
                                            plan.output]
    assert plan.block_starts == (1, 5, 9)  # each hidden layer's first op, then the output's
    assert plan.located is plan.located  # computed once per plan
    assert plan.located[3] == (("hidden", "0", "batch_norm"), plan.hidden[0][2])


def test_one_member_ignores_the_ensemble_options():
    kwargs = dict(batch_norm="before", dropout=0.1, batch_norm_input=True)
    assert compile_plan(5, [8], 2, **kwargs) == compile_plan(
        5, [8], 2, ensemble_sharing="batch", member_combine="softmax", **kwargs)


def test_ensemble_mini_shares_every_hidden_layer():
    plan = compile_plan(5, [8, 4], 2, n_members=3, member_combine="softmax")
    single = compile_plan(5, [8, 4], 2)
    assert plan.hidden == single.hidden
    assert plan.members == (
        Op("member_split", 5, 5, (("n_members", 3),)),
        Op("member_scale", 5, 5, (("n_members", 3), ("bias", False), ("init", "signs"),
                                  ("child", "adapter"))))
    assert plan.output == Op("member_linear", 4, 2, (("n_members", 3),))
    assert plan.combine == Op("member_mean", 6, 2, (("n_members", 3), ("combine", "softmax")))
    assert plan.n_members == 3 and plan.n_features == 5 and plan.n_outputs == 2
    assert [path for path, _ in plan.ops()] == [
        "members.split", "members.adapter", "hidden.0.linear", "hidden.0.activation",
        "hidden.1.linear", "hidden.1.activation", "output.linear", "output.combine"]
    assert plan.block_starts == (2, 4, 6)


@pytest.mark.parametrize("batch_norm", [None, "before"])
def test_ensemble_batch_wraps_each_shared_linear_in_member_scales(batch_norm):
    plan = compile_plan(5, [8, 4], 2, n_members=2, ensemble_sharing="batch",
                        batch_norm=batch_norm, batch_norm_input=True)
    bias = batch_norm != "before"  # no per-member bias where BatchNorm follows the linear

    def scale(width, child, init, with_bias=False):
        return Op("member_scale", width, width,
                  (("n_members", 2), ("bias", with_bias), ("init", init), ("child", child)))

    single = compile_plan(5, [8, 4], 2, batch_norm=batch_norm)
    for i, (block, shared) in enumerate(zip(plan.hidden, single.hidden, strict=True)):
        linear = shared[0]
        assert block[:3] == (
            scale(linear.n_in, "scale_in", "signs" if i == 0 else "ones"),
            _linear(linear.n_in, linear.n_out, bias=False),
            scale(linear.n_out, "scale_out", "ones", bias))
        assert block[3:] == shared[1:]  # BatchNorm, activation as in the single network
    assert plan.members == (Op("member_split", 5, 5, (("n_members", 2),)),)
    assert plan.input_norm == _bn(5)  # before the split: shared
    paths = [path for path, _ in plan.ops()]
    assert paths[:5] == ["input_norm", "members.split", "hidden.0.scale_in", "hidden.0.linear",
                         "hidden.0.scale_out"]
    assert plan.block_starts[0] == 2


@pytest.mark.parametrize("n_members", [1, 3])
def test_an_embedding_is_the_first_op_and_widens_what_follows(n_members):
    spec = EmbeddingSpec("periodic", 4, (0, 2), size=3, n_frequencies=2)
    plan = compile_plan(4, [6], 2, embedding=spec, batch_norm_input=True, n_members=n_members)
    width = spec.n_out  # 2 * 3 + 2 passed through
    assert width == 8
    assert plan.embedding == Op("periodic_embedding", 4, width, (("spec", spec),))
    assert plan.n_features == 4  # the network's input, before the embedding
    assert plan.input_norm == _bn(width)
    assert plan.hidden[0][0] == _linear(width, 6)
    assert plan.ops()[0] == ("embedding", plan.embedding)
    if n_members > 1:
        assert plan.members[0] == Op("member_split", width, width, (("n_members", 3),))
        assert plan.members[1].n_in == width
        assert plan.block_starts == (4, 6)
    else:
        assert plan.block_starts == (2, 4)


def test_child_name_is_the_kinds_unless_the_op_names_it():
    assert child_name(_linear(2, 3)) == "linear"
    assert child_name(Op("alpha_dropout", 2, 2, (("p", 0.1),))) == "dropout"
    assert child_name(Op("member_split", 2, 2, (("n_members", 2),))) == "split"
    assert child_name(Op("member_mean", 4, 2)) == "combine"
    assert child_name(Op("member_scale", 2, 2, (("child", "scale_out"),))) == "scale_out"


def _every_kind():
    """One op of every kind the plans compile to, with its plan's module built by MLP."""
    pl_spec = EmbeddingSpec("piecewise_linear", 3, (0, 1), size=2,
                            bins=((0.0, 1.0, 2.0), (0.0, 1.0)))
    pr_spec = EmbeddingSpec("periodic", 3, (1,), size=2, n_frequencies=2)
    configs = [
        dict(batch_norm="before", batch_norm_input=True, dropout=0.2, activation="leaky_relu",
             activation_alpha=0.3, batch_norm_momentum=0.2, batch_norm_epsilon=1e-4),
        dict(activation="selu", dropout=0.1, embedding=pl_spec),
        dict(embedding=pr_spec, n_members=2, member_combine="sigmoid"),
        dict(n_members=3, ensemble_sharing="batch", member_combine="exp"),
    ]
    pairs = []
    for kwargs in configs:
        torch.manual_seed(0)
        module = MLP(3, [4], 2, **kwargs)
        pairs += module.planned_modules()
    return pairs


def test_each_kind_builds_a_module_of_its_types_holding_its_state():
    pairs = _every_kind()
    assert {op.kind for op, _ in pairs} == set(LAYER_KINDS)  # every row of the table
    for op, module in pairs:
        kind = LAYER_KINDS[op.kind]
        built = kind.build(op)
        assert type(built) is type(module) and type(built) in kind.types, op.kind
        params, buffers = leaf_state(op, built)
        assert set(built._parameters) <= params and set(built._buffers) == buffers, op.kind
        assert set(built.state_dict()) == set(module.state_dict()), op.kind


def test_built_modules_carry_the_ops_settings():
    by_kind = {}  # the first op of each kind, and a module built from it
    for op, _ in _every_kind():
        by_kind.setdefault(op.kind, (op, LAYER_KINDS[op.kind].build(op)))
    _, bn = by_kind["batch_norm"]
    assert (bn.num_features, bn.eps, bn.momentum) == (3, 1e-4, 0.2)  # the input norm
    op, linear = by_kind["linear"]
    assert (linear.in_features, linear.out_features) == (op.n_in, op.n_out)
    assert (linear.bias is None) == (op.option("bias") is False)
    assert by_kind["dropout"][1].p == 0.2 and by_kind["alpha_dropout"][1].p == 0.1
    assert type(by_kind["alpha_dropout"][1]) is nn.AlphaDropout
    _, act = by_kind["activation"]
    assert type(act) is nn.LeakyReLU and act.negative_slope == 0.3
    op, scale = by_kind["member_scale"]
    assert (scale.n_members, scale.width) == (op.option("n_members"), op.n_in)
    op, member_linear = by_kind["member_linear"]
    assert member_linear.weight.shape == (op.option("n_members"), op.n_out, op.n_in)
    _, mean = by_kind["member_mean"]
    assert (mean.n_members, mean.combine) == (2, "sigmoid")
    assert by_kind["member_split"][1].n_members == 2
    assert by_kind["piecewise_linear_embedding"][1].spec.kind == "piecewise_linear"


def test_the_activation_kind_admits_exactly_the_table_types():
    assert set(LAYER_KINDS["activation"].types) == {row.module for row in ACTIVATIONS.values()}
    for kind in ("member_split", "member_scale", "member_linear", "member_mean"):
        assert LAYER_KINDS[kind].types == (
            {"member_split": MemberSplit, "member_scale": MemberScale,
             "member_linear": MemberLinear, "member_mean": MemberMean}[kind],)


def _draws(module, x):
    """Whether running ``module`` in training mode on ``x`` moved torch's CPU generator."""
    module.train()
    before = torch.get_rng_state()
    with torch.no_grad():
        module(x)
    return not torch.equal(before, torch.get_rng_state())


def test_the_random_flags_are_what_the_modules_do():
    # An independent check of the tables' ``random`` flags: run every kind's
    # module, and every activation row's, in training mode and see whether it drew.
    torch.manual_seed(0)
    for op, module in _every_kind():
        rows = 4 * op.option("n_members") if op.kind in ("member_scale", "member_linear") else 4
        x = torch.randn(rows, op.n_in)
        assert _draws(module, x) == LAYER_KINDS[op.kind].random, op.kind
    for name, row in ACTIVATIONS.items():
        module = row.factory(row.default_alpha)
        assert _draws(module, torch.randn(4, 5)) == row.random, name
    assert set(RANDOM_IN_TRAINING) == {nn.Dropout, nn.AlphaDropout, nn.RReLU}


def test_draws_random_numbers_of_a_network():
    assert not draws_random_numbers(MLP(3, [4], 2, batch_norm="after"), MLP)
    assert not draws_random_numbers(MLP(3, [4], 2, n_members=2), MLP)
    assert draws_random_numbers(MLP(3, [4], 2, dropout=0.1), MLP)
    assert draws_random_numbers(MLP(3, [4], 2, activation="rrelu"), MLP)
    assert draws_random_numbers(MLP(3, [4], 2, activation=nn.Softplus), MLP)  # unknown type
    # the network's own class is exempt only because it is passed as own_type
    assert draws_random_numbers(MLP(3, [4], 2), nn.Module)

    class MyReLU(nn.ReLU):  # a subclass of a known type may do anything
        pass

    assert draws_random_numbers(MLP(3, [4], 2, activation=MyReLU), MLP)


def test_leaf_state_of_activations_comes_from_their_row():
    op = _act(4, "prelu")
    assert leaf_state(op, nn.PReLU()) == (frozenset({"weight"}), frozenset())
    assert leaf_state(op, nn.ReLU()) == (frozenset(), frozenset())
    assert leaf_state(op, nn.Softplus()) == (frozenset(), frozenset())  # not in the table
    assert leaf_state(_bn(3), nn.BatchNorm1d(3)) == (
        frozenset({"weight", "bias"}),
        frozenset({"running_mean", "running_var", "num_batches_tracked"}))
