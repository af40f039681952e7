"""Hidden-layer activation functions: the single table behind ``activation``.

Each row is everything the package knows about one activation, and every
part of the package reads it from here:

- the estimators: the names ``activation`` accepts (the parameter
  constraints), what ``activation_alpha`` means, the docs tables;
- :mod:`.module`: how to build the ``torch.nn`` module of a hidden layer, and
  the initialization family Table 11-1 of the chapter recommends
  (``kernel_initializer="auto"``);
- the hand-written step (:mod:`.fast_step`, its activation runner in
  :mod:`.runners`): the forward and backward pass in public torch
  operations, and the private ATen backward kernel that is faster (checked
  against the public formula once per process, see :mod:`.kernels`);
- :mod:`.eval_plan`: the evaluation-mode function, and whether it is exact
  (computed by comparisons and one multiplication: the same in vectorized and
  scalar loops, so no padding for batch invariance is needed);
- training and diagnostics: whether it draws random numbers in training
  (RReLU), whether its units can die (ReLU) or saturate (logistic, tanh).

Adding an activation is one row; ``tests/test_steps.py`` and
``tests/test_inference.py`` generate their equivalence tests from the table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .kernels import checked_backward

__all__ = ["ACTIVATIONS", "Activation", "activation_init_family", "activation_row",
           "backward_function", "backward_kernel", "build_activation",
           "check_activation_alpha", "is_self_normalizing"]

SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


def _no_constants(module):
    return {}


@dataclass(frozen=True)
class Activation:
    """One row of the activation table.

    Parameters
    ----------
    module : type
        The exact ``torch.nn.Module`` type the row builds; a hidden layer's
        activation module is recognized by it (a subclass is not: it may
        override ``forward``).
    factory : callable
        ``factory(alpha)`` returns a fresh module; ``alpha`` is the resolved
        ``activation_alpha`` (``None`` for activations without one).
    init : {"glorot", "he", "lecun"}
        Initialization family recommended for this activation (Table 11-1).
    forward : callable or None
        ``forward(z, **constants)`` in public operations, what the module
        computes in training; ``None`` when the hand-written step cannot run
        the activation (random slopes, learned parameters).
    backward : callable or None
        ``backward(g, z, a, **constants)``: the gradient at the input ``z``
        from the gradient ``g`` at the output ``a = forward(z)``, in public
        operations.
    constants : callable
        ``constants(module)``: the keyword arguments ``forward`` and
        ``backward`` take, read from the module when a step is built (numbers
        as Python floats: the private kernels refuse numpy scalars).
    kernel : str or None
        The private ATen backward kernel computing ``backward`` faster (a key
        of :data:`.kernels_backward.ACTIVATION_KERNELS`), used once it matched
        ``backward`` in this process.
    check : tuple of dict
        The ``constants`` the kernel is checked with.
    exact : bool
        Whether the evaluation-mode output is computed exactly (comparisons
        and one multiplication), the same in ATen's vectorized loop and its
        scalar tail: inference pads less and runs it on any number of threads.
    random : bool
        Whether the module draws random numbers in training mode.
    evaluate : callable or None
        ``evaluate(module, width, refresh)``: a mode-free evaluation-mode
        function on ``width`` columns (padded columns beyond the module's
        own); ``None``: ``forward`` with the module's constants. A padded copy
        of a tensor it reads is appended to ``refresh`` (a list, or ``None``)
        as ``(copy's view, source)``: inference's plan cache re-copies it at
        every call.
    parameters : frozenset of str
        Names of the parameters the module holds (PReLU's slope).
    alpha_doc : str or None
        What ``activation_alpha`` sets for this activation; ``None`` when the
        activation has no such parameter.
    default_alpha : float, tuple or None
        Value used when ``activation_alpha=None``.
    alpha_is_pair : bool
        Whether ``activation_alpha`` is a ``(lower, upper)`` pair (RReLU).
    self_normalizing : bool
        Whether the activation self-normalizes (SELU): dropout becomes
        alpha dropout to preserve that property.
    summary : str
        One-line description used in the documentation tables.
    dies : bool
        Whether a unit can "die": output exactly zero for every input once its
        pre-activations are all negative (ReLU). Diagnostics count such units.
    bounds : tuple of float or None
        ``(lower, upper)`` the output saturates at (logistic, tanh): where the
        gradient vanishes. Diagnostics count outputs near them.
    """

    module: type
    factory: Callable[[object], nn.Module]
    init: str
    forward: Callable | None = None
    backward: Callable | None = None
    constants: Callable[[nn.Module], dict] = _no_constants
    kernel: str | None = None
    check: tuple = ({},)
    exact: bool = False
    random: bool = False
    evaluate: Callable | None = None
    parameters: frozenset = field(default_factory=frozenset)
    alpha_doc: str | None = None
    default_alpha: object = None
    alpha_is_pair: bool = False
    self_normalizing: bool = False
    summary: str = ""
    dies: bool = False
    bounds: tuple | None = None

    def evaluation(self, module, width, refresh=None):
        """The evaluation-mode function of ``module`` (of this row) on ``width`` columns."""
        if self.evaluate is not None:
            return self.evaluate(module, width, refresh)
        return partial(self.forward, **self.constants(module))


# ------------------------------------------------- backward in public operations
def _relu_backward(g, z, a):
    return g * (a > 0)


def _leaky_relu_backward(g, z, a, slope):
    return torch.where(z > 0, g, g * slope)


def _elu_backward(g, z, a, alpha, scale=1.0):
    return torch.where(z > 0, g * scale, g * (scale * alpha) * torch.exp(z))


def _tanh_backward(g, z, a):
    return g * (1 - a * a)


def _sigmoid_backward(g, z, a):
    return g * a * (1 - a)


def _gelu_backward(g, z, a, approximate="none"):
    if approximate == "tanh":  # 0.5 z (1 + tanh(u)), u = sqrt(2/pi) (z + 0.044715 z^3)
        k = math.sqrt(2 / math.pi)
        t = torch.tanh(k * (z + 0.044715 * z ** 3))
        return g * (0.5 * (1 + t) + 0.5 * z * (1 - t * t) * k * (1 + 3 * 0.044715 * z * z))
    cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    return g * (cdf + z * torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))


def _silu_backward(g, z, a):
    s = torch.sigmoid(z)
    return g * s * (1 + z * (1 - s))


def _mish_backward(g, z, a):
    t = torch.tanh(F.softplus(z))
    return g * (t + z * torch.sigmoid(z) * (1 - t * t))


# ------------------------------------------------------- the two without a step
def _rrelu(alpha):
    lower, upper = alpha
    return nn.RReLU(lower=lower, upper=upper)


def _rrelu_evaluation(module, width, refresh=None):
    # What torch's rrelu computes in evaluation mode (the mean slope), without
    # its Python wrapper and dispatch: a third of the op's cost at one row.
    return partial(F.leaky_relu, negative_slope=(module.lower + module.upper) / 2)


def _prelu_evaluation(module, width, refresh=None):
    source = weight = module.weight.detach()
    if len(weight) > 1:  # one slope per unit: padded units get a slope of 1
        weight = torch.cat([weight, weight.new_ones(width - len(weight))])
        if refresh is not None:
            refresh.append((weight[: len(source)], source))
    return partial(F.prelu, weight=weight)


_SWISH = Activation(
    nn.SiLU, lambda a: nn.SiLU(), "he", forward=lambda z: F.silu(z), backward=_silu_backward,
    kernel="_silu_kernel", summary="Swish / SiLU, z * sigmoid(z)",
)
_LOGISTIC = Activation(
    nn.Sigmoid, lambda a: nn.Sigmoid(), "glorot", forward=torch.sigmoid,
    backward=_sigmoid_backward, kernel="_sigmoid_kernel",
    summary="logistic sigmoid (saturates)", bounds=(0.0, 1.0),
)

ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(
        nn.ReLU, lambda a: nn.ReLU(), "he", forward=F.relu, backward=_relu_backward,
        kernel="_threshold_backward", exact=True, summary="max(0, z)", dies=True,
    ),
    "leaky_relu": Activation(
        nn.LeakyReLU, lambda a: nn.LeakyReLU(negative_slope=a), "he",
        forward=lambda z, slope: F.leaky_relu(z, slope), backward=_leaky_relu_backward,
        constants=lambda m: {"slope": float(m.negative_slope)}, kernel="_leaky_relu_kernel",
        check=({"slope": 0.1},), exact=True,
        alpha_doc="slope for z < 0",
        default_alpha=0.2,
        summary="max(alpha * z, z); 0.2 follows the chapter's advice",
    ),
    "rrelu": Activation(
        nn.RReLU, _rrelu, "he", exact=True, random=True, evaluate=_rrelu_evaluation,
        alpha_doc="(lower, upper) range the random slope is drawn from in training",
        default_alpha=(1.0 / 8.0, 1.0 / 3.0),
        alpha_is_pair=True,
        summary="randomized leaky ReLU; mean slope at inference",
    ),
    "prelu": Activation(
        nn.PReLU, lambda a: nn.PReLU(init=a), "he", exact=True, evaluate=_prelu_evaluation,
        parameters=frozenset({"weight"}),
        alpha_doc="initial value of the learned slope",
        default_alpha=0.25,
        summary="parametric leaky ReLU, slope learned per layer",
    ),
    "elu": Activation(
        nn.ELU, lambda a: nn.ELU(alpha=a), "he",
        forward=lambda z, alpha, scale=1.0: F.elu(z, alpha), backward=_elu_backward,
        constants=lambda m: {"alpha": float(m.alpha)}, kernel="_elu_kernel",
        check=({"alpha": 1.0},),
        alpha_doc="value the function tends to for very negative z (-alpha)",
        default_alpha=1.0,
        summary="exponential linear unit",
    ),
    "selu": Activation(
        nn.SELU, lambda a: nn.SELU(), "lecun",
        forward=lambda z, alpha=SELU_ALPHA, scale=SELU_SCALE: F.selu(z),
        backward=_elu_backward,
        constants=lambda m: {"alpha": SELU_ALPHA, "scale": SELU_SCALE}, kernel="_elu_kernel",
        check=({"alpha": SELU_ALPHA, "scale": SELU_SCALE},),
        self_normalizing=True,
        summary="scaled ELU, self-normalizing with LeCun init and standardized inputs",
    ),
    "gelu": Activation(
        nn.GELU, lambda a: nn.GELU(), "he",
        forward=lambda z, approximate="none": F.gelu(z, approximate=approximate),
        backward=_gelu_backward, constants=lambda m: {"approximate": m.approximate},
        kernel="_gelu_kernel", check=({"approximate": "none"}, {"approximate": "tanh"}),
        summary="Gaussian error linear unit",
    ),
    "swish": _SWISH,
    "silu": _SWISH,
    "mish": Activation(
        nn.Mish, lambda a: nn.Mish(), "he", forward=F.mish, backward=_mish_backward,
        kernel="_mish_kernel", summary="z * tanh(softplus(z))",
    ),
    "tanh": Activation(
        nn.Tanh, lambda a: nn.Tanh(), "glorot", forward=torch.tanh, backward=_tanh_backward,
        kernel="_tanh_kernel", summary="hyperbolic tangent", bounds=(-1.0, 1.0),
    ),
    "logistic": _LOGISTIC,
    "sigmoid": _LOGISTIC,
    "identity": Activation(
        nn.Identity, lambda a: nn.Identity(), "glorot", forward=lambda z: z,
        backward=lambda g, z, a: g, exact=True, summary="no activation (a linear layer)",
    ),
}

# module type -> its row (exact types: the lookup of every interpreter)
_BY_TYPE = {row.module: row for row in ACTIVATIONS.values()}


def _backward_kernels():
    """kernel name -> its checked backward, checked on every row's constants."""
    rows = {}
    for row in _BY_TYPE.values():
        if row.kernel is not None:
            rows.setdefault(row.kernel, []).append(row)
    kernels = {}
    for name, users in rows.items():
        public = users[0].backward
        if any(row.backward is not public for row in users):
            raise RuntimeError(f"rows sharing {name} must share their public backward")
        checks = [(row.forward, c) for row in users for c in row.check]
        kernels[name] = checked_backward(name, public, checks)
    return kernels


_KERNELS = _backward_kernels()


def activation_row(module):
    """The row of the table whose module type is exactly ``type(module)``, or ``None``."""
    return _BY_TYPE.get(type(module))


def backward_kernel(row):
    """The checked private kernel of ``row`` (see :mod:`.kernels`), or ``None``."""
    return None if row.kernel is None else _KERNELS[row.kernel]


def backward_function(row):
    """The backward of ``row`` this process uses: its kernel once checked, else the formula."""
    kernel = backward_kernel(row)
    return row.backward if kernel is None else kernel.resolved()


def _resolve_alpha(entry: Activation, alpha):
    return entry.default_alpha if alpha is None else alpha


def check_activation_alpha(name: str, alpha) -> str | None:
    """Return an error message if ``alpha`` does not fit activation ``name``.

    Parameters
    ----------
    name : str
        Key of :data:`ACTIVATIONS`.
    alpha : float, tuple or None
        The user's ``activation_alpha``.

    Returns
    -------
    message : str or None
        ``None`` when the combination is valid.
    """
    entry = ACTIVATIONS[name]
    if alpha is None:
        return None
    if entry.alpha_doc is None:
        return f"activation={name!r} has no parameter; leave activation_alpha=None."
    if entry.alpha_is_pair:
        ok = (
            isinstance(alpha, tuple)
            and len(alpha) == 2
            and all(isinstance(v, (int, float)) for v in alpha)
            and 0 <= alpha[0] <= alpha[1]
        )
        if not ok:
            return (
                f"activation={name!r} needs activation_alpha as a (lower, upper) "
                "pair with 0 <= lower <= upper."
            )
        return None
    if isinstance(alpha, tuple) or not isinstance(alpha, (int, float)):
        return f"activation={name!r} needs a single float activation_alpha."
    if name == "elu" and alpha <= 0:
        return "activation='elu' needs activation_alpha > 0."
    return None


def build_activation(activation, alpha=None) -> nn.Module:
    """Build one fresh activation module.

    Parameters
    ----------
    activation : str or callable
        A key of :data:`ACTIVATIONS`, or a zero-argument callable (typically a
        ``torch.nn.Module`` subclass) that returns a module.
    alpha : float, tuple or None
        ``activation_alpha``; ignored for user-supplied callables.

    Returns
    -------
    module : torch.nn.Module
    """
    if isinstance(activation, str):
        entry = ACTIVATIONS[activation]
        return entry.factory(_resolve_alpha(entry, alpha))
    module = activation()
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"activation callable {activation!r} returned {type(module).__name__}, "
            "not a torch.nn.Module"
        )
    return module


def activation_init_family(activation) -> str:
    """Initialization family Table 11-1 recommends for ``activation``.

    User-supplied modules get ``"glorot"`` (Keras' default), since nothing is
    known about their shape.
    """
    if isinstance(activation, str):
        return ACTIVATIONS[activation].init
    return "glorot"


def is_self_normalizing(activation) -> bool:
    """Whether ``activation`` is self-normalizing (dropout must be alpha dropout)."""
    return isinstance(activation, str) and ACTIVATIONS[activation].self_normalizing
