"""The layer plan: the network as a list of ops, compiled once from the hyperparameters.

:func:`compile_plan` turns the architecture hyperparameters into a
:class:`LayerPlan` — an optional input BatchNorm, one tuple of ops per hidden
layer (``linear``, ``batch_norm``, ``activation``, ``dropout`` or
``alpha_dropout``, in the order they run) and the output ``linear``. Every
interpreter of the network walks this one description:

- :class:`~.module.MLP` builds its ``torch.nn`` modules from it (each op
  kind's ``build``), in its order: its ``forward`` is the autograd reference;
- the hand-written CPU step (:mod:`.fast_step`) and batch-invariant inference
  (:mod:`.inference`) walk :meth:`LayerPlan.ops` and read each op's module,
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

__all__ = ["LAYER_KINDS", "RANDOM_IN_TRAINING", "LayerKind", "LayerPlan", "Op", "compile_plan",
           "draws_random_numbers"]


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
        :class:`~.embeddings.EmbeddingSpec`).
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
}

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
        The output ``linear`` op.
    embedding : Op or None, default=None
        The numeric feature embedding, the first op (see :mod:`.embeddings`).
    """

    n_features: int
    n_outputs: int
    input_norm: Op | None
    hidden: tuple
    output: Op
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
        for i, block in enumerate(self.hidden):
            ops += [(("hidden", str(i), LAYER_KINDS[op.kind].child), op) for op in block]
        return tuple(ops + [(("output", "linear"), self.output)])

    @cached_property
    def block_starts(self):
        """Index in :attr:`located` of each hidden layer's first op, then of the
        output layer's."""
        starts, start = [], (self.embedding is not None) + (self.input_norm is not None)
        for block in self.hidden:
            starts.append(start)
            start += len(block)
        return tuple(starts + [start])


def compile_plan(n_features, hidden_layer_sizes, n_outputs, *, activation="relu",
                 activation_alpha=None, batch_norm=None, batch_norm_input=False,
                 batch_norm_momentum=0.1, batch_norm_epsilon=1e-5, dropout=0.0,
                 embedding=None):
    """The plan of ``Linear -> [BatchNorm] -> activation -> [BatchNorm] -> [dropout]`` layers.

    Parameters are those of :class:`~.module.MLP`. With an ``embedding``
    (:class:`~.embeddings.EmbeddingSpec`) the input BatchNorm and the first
    hidden layer see its output.

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
    return LayerPlan(
        n_features if embed is None else embed.n_in, n_outputs,
        norm(n_features) if batch_norm_input else None, tuple(blocks),
        Op("linear", n_in, n_outputs, (("bias", True),)), embed)
