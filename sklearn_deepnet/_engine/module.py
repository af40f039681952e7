"""Pure-torch network built from its layer plan (the autograd reference).

Nothing here knows about scikit-learn or skorch. The module returns raw
outputs (logits for classifiers); losses and output activations live elsewhere.
:func:`plan_blocker` says whether a module is still exactly what its plan
built, which the plan's other interpreters (the hand-written step, inference)
require.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .activations import ACTIVATIONS, activation_init_family
from .ensemble import MemberScale
from .init import SklearnUniform, resolve_initializer
from .plan import (
    LAYER_KINDS,
    RANDOM_IN_TRAINING,
    child_name,
    compile_plan,
    draws_random_numbers,
    leaf_state,
)

__all__ = ["MLP", "RANDOM_IN_TRAINING", "plan_blocker", "submodule"]


class MLP(nn.Module):
    """Multi-layer perceptron with the chapter's optional layers.

    Parameters
    ----------
    n_features : int
        Number of input features.
    hidden_layer_sizes : sequence of int
        Width of each hidden layer; empty for a linear model.
    n_outputs : int
        Number of raw outputs.
    activation : str or callable, default="relu"
        Key of the activation table, or a zero-argument callable returning a
        ``torch.nn.Module`` (one fresh instance is made per layer).
    activation_alpha : float, tuple or None, default=None
        Parameter of the activation (see the activation table).
    batch_norm : {None, "before", "after"}, default=None
        Where each hidden layer's BatchNorm sits relative to its activation.
        With ``"before"`` the linear layer has no bias (BatchNorm's shift
        replaces it).
    batch_norm_input : bool, default=False
        Whether to normalize the inputs with a BatchNorm layer.
    batch_norm_momentum : float, default=0.1
        PyTorch convention: weight of the new batch in the running statistics.
    batch_norm_epsilon : float, default=1e-5
        Added to the variance for numerical stability.
    dropout : float, default=0.0
        Dropout rate after each hidden layer; alpha dropout for SELU.
    embedding : EmbeddingSpec or None, default=None
        Numeric feature embeddings before everything else
        (:mod:`.embeddings`); ``None``: the inputs go in as they are.
    n_members : int, default=1
        Members of an efficient ensemble trained as one network (TabM, see
        :mod:`.ensemble`); 1: a single network (the plan does not depend on
        the two options below).
    ensemble_sharing : {"mini", "batch"}, default="mini"
        What the members share: ``"mini"`` every hidden layer (each member
        has its own input adapter and output layer), ``"batch"`` the hidden
        weight matrices (BatchEnsemble: per-member scales and biases around
        each of them).
    member_combine : {"softmax", "sigmoid", "identity", "exp"}, default="identity"
        How evaluation mode combines the members' raw outputs into one: the
        output activation whose predictions are averaged.

    Attributes
    ----------
    embedding : torch.nn.Module
        Only with an ``embedding``: its module, the first child.
    input_norm : torch.nn.Module
        ``BatchNorm1d`` or ``Identity``.
    hidden : torch.nn.ModuleList
        One ``Sequential`` per hidden layer with children named ``linear``,
        ``batch_norm`` (before or after), ``activation`` and ``dropout``.
    plan : LayerPlan
        The ops the modules were built from (:func:`~.plan.compile_plan`).
    members : torch.nn.Sequential
        Only with ``n_members > 1``: the split into members and (``"mini"``)
        the input adapter, between ``input_norm`` and ``hidden``.
    output : torch.nn.Sequential
        The output ``linear`` layer (a ``MemberLinear`` with ``n_members >
        1``, followed by the members' ``combine``).
    n_frozen : int
        Number of lowest hidden layers frozen by :meth:`freeze_` (0: none).
    """

    def __init__(
        self,
        n_features,
        hidden_layer_sizes,
        n_outputs,
        *,
        activation="relu",
        activation_alpha=None,
        batch_norm=None,
        batch_norm_input=False,
        batch_norm_momentum=0.1,
        batch_norm_epsilon=1e-5,
        dropout=0.0,
        embedding=None,
        n_members=1,
        ensemble_sharing="mini",
        member_combine="identity",
    ):
        super().__init__()
        self.activation = activation
        self.n_frozen = 0
        self.plan = compile_plan(
            n_features, hidden_layer_sizes, n_outputs, activation=activation,
            activation_alpha=activation_alpha, batch_norm=batch_norm,
            batch_norm_input=batch_norm_input, batch_norm_momentum=batch_norm_momentum,
            batch_norm_epsilon=batch_norm_epsilon, dropout=dropout, n_members=n_members,
            ensemble_sharing=ensemble_sharing, member_combine=member_combine,
            embedding=embedding)
        plan = self.plan

        def build(op):
            return LAYER_KINDS[op.kind].build(op)

        if plan.embedding is not None:  # (the first child: state_dict keys of others unchanged)
            self.embedding = build(plan.embedding)
        self.input_norm = nn.Identity() if plan.input_norm is None else build(plan.input_norm)
        if plan.members:  # an ensemble (registered here: forward order)
            self.members = nn.Sequential(OrderedDict(
                (child_name(op), build(op)) for op in plan.members))
        self.hidden = nn.ModuleList(
            nn.Sequential(OrderedDict((child_name(op), build(op)) for op in block))
            for block in plan.hidden)
        self.output = nn.Sequential(OrderedDict(linear=build(plan.output)))
        if plan.combine is not None:
            self.output.add_module("combine", build(plan.combine))

    def forward(self, x):
        """Return raw outputs of shape ``(n_samples, n_outputs)``.

        An ensemble in training mode returns each member's raw outputs side by
        side, ``(n_samples, n_members * n_outputs)`` (see :meth:`forward_members`).
        """
        if self.plan.embedding is not None:
            x = self.embedding(x)
        x = self.input_norm(x)
        if self.plan.members:
            x = self.members(x)
        for block in self.hidden:
            x = block(x)
        return self.output(x)

    def forward_members(self, x):
        """Each member's raw outputs, ``(n_samples, n_members * n_outputs)``
        (member ``m``'s in columns ``m*n_outputs ..``), in either mode.

        For one member, :meth:`forward`.
        """
        if not self.plan.members:
            return self(x)
        if self.plan.embedding is not None:
            x = self.embedding(x)
        x = self.members(self.input_norm(x))
        for block in self.hidden:
            x = block(x)
        return self.output.linear(x)

    def draws_random_numbers(self):
        """Whether training draws from torch's generators (dropout, RReLU, unknown layers)."""
        return draws_random_numbers(self, type(self))

    def planned_modules(self):
        """``[(op, module), ...]``: each op of the plan with its module, in forward order.

        Meaningful only while :func:`plan_blocker` finds nothing changed.
        """
        return [(op, submodule(self, parts)) for parts, op in self.plan.located]

    def frozen_modules(self):
        """The modules :meth:`freeze_` froze: the embedding, the input norm and the
        lowest hidden layers."""
        if not self.n_frozen:
            return []
        below = [self.embedding] if self.plan.embedding is not None else []
        # (an ensemble's split and input adapter sit below the first hidden layer)
        members = [self.members] if self.plan.members else []
        return [*below, self.input_norm, *members, *self.hidden[: self.n_frozen]]

    def freeze_(self, n_layers):
        """Freeze the ``n_layers`` lowest hidden layers (and the embedding, the input
        norm and an ensemble's input adapter below them); 0 unfreezes.

        Frozen parameters get ``requires_grad=False``, so no optimizer or
        penalty changes them, and the frozen layers' BatchNorm modules stay
        in evaluation mode whatever :meth:`train` is asked (their running
        statistics stay as they are), as a frozen layer behaves in Keras.
        Dropout in a frozen layer stays active in training.

        Parameters
        ----------
        n_layers : int
            How many hidden layers, counted from the input, to freeze.

        Returns
        -------
        self : MLP
        """
        if not 0 <= n_layers <= len(self.hidden):
            raise ValueError(
                f"cannot freeze {n_layers} of {len(self.hidden)} hidden layers"
            )
        for p in self.parameters():
            p.requires_grad_(True)
        self.n_frozen = n_layers
        for module in self.frozen_modules():
            for p in module.parameters():
                p.requires_grad_(False)
                p.grad = None  # a gradient left by earlier training must not be applied
        return self.train(self.training)

    def train(self, mode=True):
        """Set training mode; the BatchNorm layers of frozen layers stay in evaluation mode."""
        super().train(mode)
        for module in self.frozen_modules():
            for m in module.modules():
                if isinstance(m, nn.BatchNorm1d):
                    m.eval()
        return self

    def hidden_linears(self):
        """The hidden layers' ``Linear`` modules, input side first."""
        return [block.linear for block in self.hidden]

    def linears(self):
        """All ``Linear`` modules, output layer last (an ensemble's: a ``MemberLinear``,
        weight ``(n_members, out, in)``)."""
        return self.hidden_linears() + [self.output.linear]

    def initialize_(self, kernel_initializer="auto", random_state=None):
        """Initialize weights in place; biases to zero (but with ``"sklearn"``).

        Parameters
        ----------
        kernel_initializer : str, VarianceScaling or SklearnUniform, default="auto"
            Initializer of the hidden layers; with ``"auto"`` the family
            Table 11-1 gives for the activation. The output layer (softmax,
            sigmoid or identity) always uses Glorot uniform, as a Keras
            ``Dense`` layer without an initializer of its own does.
            ``"sklearn"`` (:class:`~.init.SklearnUniform`) instead draws every
            layer's weights and biases as scikit-learn's MLP does.
        random_state : None, int, numpy.random.RandomState or numpy.random.Generator
            The NumPy generator ``"sklearn"`` draws from (``None``: one seeded
            from torch's global generator); the other initializers draw from
            torch's global generator and ignore it.

        Returns
        -------
        self : MLP
        """
        hidden_family = activation_init_family(self.activation)
        init = resolve_initializer(kernel_initializer, hidden_family)
        if isinstance(init, SklearnUniform) and self.plan.n_members > 1:
            raise ValueError(
                "the 'sklearn' initializer draws scikit-learn's MLP layers number for "
                "number and has no rule for an ensemble's per-member layers; choose another "
                "kernel_initializer or n_members=1.")
        if isinstance(init, SklearnUniform):
            logistic = (isinstance(self.activation, str)
                        and ACTIVATIONS[self.activation] is ACTIVATIONS["logistic"])
            init.initialize_network_(self.linears(), logistic=logistic,
                                     random_state=random_state)
            return self
        output_init = resolve_initializer("auto", "glorot")
        for i, linear in enumerate(self.linears()):
            if linear.weight.dim() == 3:  # an ensemble's output layers, one per member
                for weight in linear.weight.data:
                    output_init.initialize_(weight)
            else:
                (init if i < len(self.hidden) else output_init).initialize_(linear.weight)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)
        if self.plan.members:
            self._initialize_member_scales()
        return self

    def _initialize_member_scales(self):
        """TabM's initialization: adapters marked ``"signs"`` random +-1, the
        others ones; per-member biases zero (the shared linear's bias init)."""
        for op, module in self.planned_modules():
            if isinstance(module, MemberScale):
                with torch.no_grad():
                    if op.option("init") == "signs":
                        module.weight.bernoulli_(0.5).mul_(2).sub_(1)
                    else:
                        module.weight.fill_(1.0)
                    if module.bias is not None:
                        module.bias.zero_()


def submodule(module, parts):
    """The submodule at ``parts`` (a path split at its dots), or ``None``.

    What ``get_submodule`` does, without its checks and string handling: the
    plan's interpreters look their modules up at every prediction.
    """
    for part in parts:
        module = module._modules.get(part)
        if module is None:
            return None
    return module


# op kind -> the exact module types it may be (sets: looked up per op and call)
_TYPES = {name: frozenset(kind.types) for name, kind in LAYER_KINDS.items()}


def _leaf_blocker(parts, op, module):
    """Why ``module`` is not a plain module of ``op``'s kind (``None`` if it is)."""
    if type(module) not in _TYPES[op.kind]:  # exact types: a subclass may override forward
        kind = LAYER_KINDS[op.kind]
        what = "not in the activation table" if op.kind == "activation" else "not a " + (
            " or ".join(t.__name__ for t in kind.types))
        return f"{_describe(parts)} is a {type(module).__name__} ({what})"
    params, buffers = leaf_state(op, module)
    if module._parameters.keys() - params or module._buffers.keys() - buffers:
        return f"{_describe(parts)} holds parameters or buffers the plan does not know"
    if type(module) is nn.BatchNorm1d and not (
            module.affine and module.track_running_stats and module.momentum is not None):
        return (f"{_describe(parts)} is not an affine BatchNorm with running statistics "
                "and a momentum")
    if type(module) in _DROPOUT_TYPES and module.inplace:
        return f"{_describe(parts)} is in place"
    return None


_DROPOUT_TYPES = frozenset(_TYPES["dropout"] | _TYPES["alpha_dropout"])
_CHILDREN = ("input_norm", "hidden", "output")
_ENSEMBLE_CHILDREN = ("input_norm", "members", "hidden", "output")


def plan_blocker(module):
    """Why ``module`` is not exactly what its plan built (``None`` if it is).

    An allow-list, what the plan's interpreters other than ``forward`` rely
    on: an ``MLP`` (not a subclass), its children and each hidden layer's in
    the plan's names and order, each module of the exact type its op kind
    builds (an activation: any of the table's), holding exactly its own
    parameters and buffers. Settings (dropout rate, slopes, BatchNorm
    momentum) are read from the modules by the interpreters; hooks and
    parametrizations are the steps' concern (:func:`~.steps.untouched_blockers`).
    Cheap enough to run at every prediction (a few microseconds per layer).
    """
    if type(module) is not MLP:
        return f"the network is a {type(module).__name__}, not the MLP it builds"
    plan = module.plan
    children = module._modules
    expected = _ENSEMBLE_CHILDREN if plan.members else _CHILDREN
    if plan.embedding is not None:
        expected = ("embedding", *expected)
    if tuple(children) != expected or module._parameters or module._buffers:
        return "the network's layout was changed"
    if plan.members:
        members = children["members"]
        if type(members) is not nn.Sequential or tuple(members._modules) != tuple(
                child_name(op) for op in plan.members):
            return "the ensemble's input layers were replaced"
    if plan.input_norm is None and type(children["input_norm"]) is not nn.Identity:
        return "the input normalization was replaced"
    hidden = children["hidden"]
    if type(hidden) is not nn.ModuleList or len(hidden._modules) != len(plan.hidden):
        return "the hidden layers were replaced"
    for i, (block, ops) in enumerate(zip(hidden._modules.values(), plan.hidden, strict=True), 1):
        if type(block) is not nn.Sequential:
            return f"hidden layer {i} is a {type(block).__name__}"
        names = tuple(block._modules)
        if names != tuple(child_name(op) for op in ops):
            return f"hidden layer {i} has the layers {', '.join(names)}"
    out = children["output"]
    if type(out) is not nn.Sequential or tuple(out._modules) != (
            ("linear",) if plan.combine is None else ("linear", "combine")):
        return "the output layer was replaced"
    for parts, op in plan.located:
        blocker = _leaf_blocker(parts, op, submodule(module, parts))
        if blocker:
            return blocker
    if out._modules["linear"].bias is None:
        return "the output layer has no bias"
    return None


def _describe(parts):
    if parts[0] == "input_norm":
        return "the input normalization"
    if parts[0] == "embedding":
        return "the numeric embedding"
    if parts[0] == "output":
        return "the output layer" if parts[1] == "linear" else "the members' combination"
    if parts[0] == "members":
        return f"the ensemble's {parts[1]}"
    _, i, child = parts
    return f"hidden layer {int(i) + 1}'s {child}"
