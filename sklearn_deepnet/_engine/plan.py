"""The layer plan: the network as a list of ops, compiled once from the hyperparameters.

:func:`compile_plan` turns the architecture hyperparameters into a
:class:`LayerPlan` — an optional input BatchNorm, one tuple of ops per hidden
layer (``linear``, ``batch_norm``, ``activation``, ``dropout`` or
``alpha_dropout``, in the order they run) and the output ``linear``. Every
interpreter of the network walks this one description:

- :class:`~.module.MLP` builds its ``torch.nn`` modules from it (each op
  kind's ``build``), in its order: its ``forward`` is the autograd reference;
- the hand-written CPU step (:mod:`.fast_step`) and batch-invariant inference
  (:mod:`.eval_plan`) walk :meth:`LayerPlan.ops` and read each op's module,
  after :func:`~.module.plan_blocker` has checked that the module is exactly
  what the plan built (an allow-list: the exact types of :data:`LAYER_KINDS`
  and of the activation table, holding exactly their own parameters).

A layer kind is one row of :data:`LAYER_KINDS`; an activation is one row of
:data:`.activations.ACTIVATIONS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from torch import nn

from .activations import ACTIVATIONS, activation_row, build_activation, is_self_normalizing
from .embeddings import EMBEDDINGS
from .ensemble import MemberLinear, MemberMean, MemberScale, MemberSplit

__all__ = ["LAYER_KINDS", "RANDOM_IN_TRAINING", "LayerKind", "LayerPlan", "Op", "child_name",
           "compile_plan", "draws_random_numbers"]


@dataclass(frozen=True)
class Op:
    """One layer of the plan.

    Parameters
    ----------
    kind : str
        Key of :data:`LAYER_KINDS`.
    n_in, n_out : int
        Width of its input and output.
    options : tuple of (str, object)
        What its module is built with: ``bias`` (linear), ``momentum`` and
        ``eps`` (batch_norm), ``activation`` and ``alpha`` (activation), ``p``
        (dropout, alpha_dropout), ``spec`` (an embedding's
        :class:`~.embeddings.EmbeddingSpec`); ``n_members`` (the ensemble's ops),
        ``bias``, ``init`` (``"signs"`` or ``"ones"``) and ``child`` (its
        module's name) for ``member_scale``, ``combine`` for ``member_mean``.
    """

    kind: str
    n_in: int
    n_out: int
    options: tuple = ()

    def option(self, name, default=None):
        """The value of option ``name`` (``default`` when not set)."""
        return dict(self.options).get(name, default)


@dataclass(frozen=True)
class LayerKind:
    """One row of the layer-kind table.

    Parameters
    ----------
    child : str
        The name of its module in a hidden layer's ``Sequential``.
    types : tuple of type
        The exact module types an op of this kind may be (the activation
        table's for ``activation``).
    parameters, buffers : frozenset of str
        What its module holds, exactly (an activation's: its row's).
    random : bool
        Whether it draws random numbers in training mode.
    build : callable
        ``build(op)`` returns a fresh module.
    """

    child: str
    types: tuple
    parameters: frozenset
    buffers: frozenset
    random: bool
    build: Callable[[Op], nn.Module]


def _batch_norm(op):
    return nn.BatchNorm1d(op.n_out, eps=op.option("eps"), momentum=op.option("momentum"))


LAYER_KINDS: dict[str, LayerKind] = {
    "linear": LayerKind(
        "linear", (nn.Linear,), frozenset({"weight", "bias"}), frozenset(), False,
        lambda op: nn.Linear(op.n_in, op.n_out, bias=op.option("bias", True))),
    "batch_norm": LayerKind(
        "batch_norm", (nn.BatchNorm1d,), frozenset({"weight", "bias"}),
        frozenset({"running_mean", "running_var", "num_batches_tracked"}), False, _batch_norm),
    "activation": LayerKind(
        "activation", tuple({row.module for row in ACTIVATIONS.values()}), frozenset(),
        frozenset(), False,
        lambda op: build_activation(op.option("activation"), op.option("alpha"))),
    "dropout": LayerKind(
        "dropout", (nn.Dropout,), frozenset(), frozenset(), True,
        lambda op: nn.Dropout(op.option("p"))),
    "alpha_dropout": LayerKind(
        "dropout", (nn.AlphaDropout,), frozenset(), frozenset(), True,
        lambda op: nn.AlphaDropout(op.option("p"))),
    **{f"{name}_embedding": LayerKind(
        "embedding", (module,), frozenset({"weight", "bias", "frequencies"} if name == "periodic"
                                          else {"weight", "bias"}),
        frozenset({"numeric", "other"} if name == "periodic"
                  else {"numeric", "other", "left", "width", "lower", "upper"}), False,
        lambda op: EMBEDDINGS[op.option("spec").kind](op.option("spec")))
       for name, module in EMBEDDINGS.items()},
    # --- efficient ensembles (n_members > 1, see .ensemble)
    "member_split": LayerKind(
        "split", (MemberSplit,), frozenset(), frozenset(), False,
        lambda op: MemberSplit(op.option("n_members"))),
    "member_scale": LayerKind(
        "scale", (MemberScale,), frozenset({"weight", "bias"}), frozenset(), False,
        lambda op: MemberScale(op.option("n_members"), op.n_in, bias=op.option("bias"))),
    "member_linear": LayerKind(
        "linear", (MemberLinear,), frozenset({"weight", "bias"}), frozenset(), False,
        lambda op: MemberLinear(op.option("n_members"), op.n_in, op.n_out)),
    "member_mean": LayerKind(
        "combine", (MemberMean,), frozenset(), frozenset(), False,
        lambda op: MemberMean(op.option("n_members"), op.option("combine"))),
}


def child_name(op):
    """The name of ``op``'s module in its ``Sequential`` (its kind's, unless the op names it)."""
    return op.option("child") or LAYER_KINDS[op.kind].child

#: Module types that draw random numbers in training and are deterministic in
#: evaluation mode (dropout off, RReLU at its mean slope), read off the tables.
RANDOM_IN_TRAINING = tuple(
    [t for kind in LAYER_KINDS.values() if kind.random for t in kind.types]
    + [row.module for row in ACTIVATIONS.values() if row.random])
# Module types known to draw no random numbers in training.
_DETERMINISTIC = frozenset(
    [nn.Sequential, nn.ModuleList, nn.Identity]
    + [t for kind in LAYER_KINDS.values() if not kind.random and kind.child != "activation"
       for t in kind.types]
    + [row.module for row in ACTIVATIONS.values() if not row.random])


def draws_random_numbers(module, own_type):
    """Whether training ``module`` may draw from torch's generators.

    Any submodule whose exact type is not known to be deterministic (dropout,
    RReLU, a user's activation) may; ``own_type`` is the network's own class.
    """
    return any(type(m) not in _DETERMINISTIC and type(m) is not own_type
               for m in module.modules())


def leaf_state(op, module):
    """``(parameters, buffers)`` the module of ``op`` must hold, exactly."""
    kind = LAYER_KINDS[op.kind]
    if op.kind == "activation":
        row = activation_row(module)
        return (row.parameters if row is not None else frozenset()), frozenset()
    return kind.parameters, kind.buffers


@dataclass(frozen=True)
class LayerPlan:
    """The network as ops, in the order they run.

    Parameters
    ----------
    n_features, n_outputs : int
    input_norm : Op or None
        BatchNorm on the inputs.
    hidden : tuple of tuple of Op
        The ops of each hidden layer, in order (its ``Sequential``'s children).
    output : Op
        The output ``linear`` op (``member_linear`` for an ensemble).
    members : tuple of Op, default=()
        An ensemble's ops between the input norm and the hidden layers (the
        ``members`` ``Sequential``): ``member_split`` and, with TabM-mini
        sharing, the input adapter's ``member_scale``.
    combine : Op or None, default=None
        An ensemble's ``member_mean`` op, after the output layer.
    n_members : int, default=1
    embedding : Op or None, default=None
        The numeric feature embedding, the first op (see :mod:`.embeddings`).
    """

    n_features: int
    n_outputs: int
    input_norm: Op | None
    hidden: tuple
    output: Op
    members: tuple = ()
    combine: Op | None = None
    n_members: int = 1
    embedding: Op | None = None

    def ops(self):
        """``[(path, op), ...]`` in forward order; ``path`` names the op's module."""
        return [(".".join(parts), op) for parts, op in self.located]

    @cached_property
    def located(self):
        """``((path parts, op), ...)`` in forward order (computed once per plan:
        predictions walk it at every call)."""
        ops = [] if self.embedding is None else [(("embedding",), self.embedding)]
        if self.input_norm is not None:
            ops.append((("input_norm",), self.input_norm))
        ops += [(("members", child_name(op)), op) for op in self.members]
        for i, block in enumerate(self.hidden):
            ops += [(("hidden", str(i), child_name(op)), op) for op in block]
        ops.append((("output", "linear"), self.output))
        if self.combine is not None:
            ops.append((("output", "combine"), self.combine))
        return tuple(ops)

    @cached_property
    def block_starts(self):
        """Index in :attr:`located` of each hidden layer's first op, then of the
        output layer's."""
        starts, start = [], ((self.embedding is not None) + (self.input_norm is not None)
                             + len(self.members))
        for block in self.hidden:
            starts.append(start)
            start += len(block)
        return tuple(starts + [start])


def compile_plan(n_features, hidden_layer_sizes, n_outputs, *, activation="relu",
                 activation_alpha=None, batch_norm=None, batch_norm_input=False,
                 batch_norm_momentum=0.1, batch_norm_epsilon=1e-5, dropout=0.0, n_members=1,
                 ensemble_sharing="mini", member_combine="identity", embedding=None):
    """The plan of ``Linear -> [BatchNorm] -> activation -> [BatchNorm] -> [dropout]`` layers.

    Parameters are those of :class:`~.module.MLP`. With ``n_members=1`` the
    plan does not depend on ``ensemble_sharing`` and ``member_combine``;
    with more, see :func:`_ensemble_plan`. With an ``embedding``
    (:class:`~.embeddings.EmbeddingSpec`) the input BatchNorm, an ensemble's
    split and the first hidden layer see its output.

    Returns
    -------
    LayerPlan
    """
    def norm(width):
        return Op("batch_norm", width, width,
                  (("eps", batch_norm_epsilon), ("momentum", batch_norm_momentum)))

    blocks = []
    embed = None
    if embedding is not None:
        embed = Op(f"{embedding.kind}_embedding", n_features, embedding.n_out,
                   (("spec", embedding),))
        n_features = embedding.n_out
    n_in = n_features
    for width in hidden_layer_sizes:
        ops = [Op("linear", n_in, width, (("bias", batch_norm != "before"),))]
        if batch_norm == "before":
            ops.append(norm(width))
        ops.append(Op("activation", width, width,
                      (("activation", activation), ("alpha", activation_alpha))))
        if batch_norm == "after":
            ops.append(norm(width))
        if dropout > 0:
            kind = "alpha_dropout" if is_self_normalizing(activation) else "dropout"
            ops.append(Op(kind, width, width, (("p", dropout),)))
        blocks.append(tuple(ops))
        n_in = width
    if n_members > 1:
        return _ensemble_plan(
            n_features, blocks, n_in, n_outputs, norm(n_features) if batch_norm_input else None,
            n_members, ensemble_sharing, member_combine, embed)
    return LayerPlan(
        n_features if embed is None else embed.n_in, n_outputs,
        norm(n_features) if batch_norm_input else None, tuple(blocks),
        Op("linear", n_in, n_outputs, (("bias", True),)), embedding=embed)


def _ensemble_plan(n_features, blocks, n_in, n_outputs, input_norm, k, sharing, combine,
                   embed=None):
    """The plan of an efficient ensemble of ``k`` members (:mod:`.ensemble`).

    The single network's hidden layers ``blocks`` are shared; the input
    (after the input norm) is split into one copy per member; each member has
    its own output layer, and the members' outputs are combined by
    ``member_mean`` (by the rule ``combine``) in evaluation. ``sharing``:

    - ``"mini"`` (TabM-mini): a per-member multiplicative adapter on the
      input (initialized with random signs), hidden layers fully shared;
    - ``"batch"`` (TabM, BatchEnsemble): every hidden linear layer becomes
      ``s_m * (W (r_m * x)) + b_m`` (the shared ``W`` without bias; ``r`` of the
      first layer with random signs, the other ``r`` and all ``s`` ones, ``b``
      zeros; no ``b`` when BatchNorm follows, as the linear has no bias then).
    """
    def scale(width, child, init, bias=False):
        return Op("member_scale", width, width,
                  (("n_members", k), ("bias", bias), ("init", init), ("child", child)))

    members = [Op("member_split", n_features, n_features, (("n_members", k),))]
    if sharing == "mini":
        members.append(scale(n_features, "adapter", "signs"))
    else:
        shared, blocks = blocks, []
        for i, (linear, *rest) in enumerate(shared):
            bias = linear.option("bias")
            blocks.append((
                scale(linear.n_in, "scale_in", "signs" if i == 0 else "ones"),
                Op("linear", linear.n_in, linear.n_out, (("bias", False),)),
                scale(linear.n_out, "scale_out", "ones", bias=bias), *rest))
    return LayerPlan(
        n_features if embed is None else embed.n_in, n_outputs, input_norm, tuple(blocks),
        Op("member_linear", n_in, n_outputs, (("n_members", k),)), embedding=embed,
        members=tuple(members),
        combine=Op("member_mean", n_outputs * k, n_outputs,
                   (("n_members", k), ("combine", combine))),
        n_members=k)
