"""Hidden-layer activation functions: the single table behind ``activation``.

Each entry says how to build the torch module, what ``activation_alpha`` means
for it (if anything), which weight initialization family suits it (Table 11-1
of the chapter, used by ``kernel_initializer="auto"``) and whether it is
self-normalizing (SELU, which switches dropout to alpha dropout).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

__all__ = ["ACTIVATIONS", "Activation", "build_activation", "activation_init_family"]


@dataclass(frozen=True)
class Activation:
    """One row of the activation table.

    Parameters
    ----------
    factory : callable
        ``factory(alpha)`` returns a fresh ``torch.nn.Module``; ``alpha`` is the
        resolved ``activation_alpha`` (``None`` for activations without one).
    init : {"glorot", "he", "lecun"}
        Initialization family recommended for this activation (Table 11-1).
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

    factory: Callable[[object], nn.Module]
    init: str
    alpha_doc: str | None = None
    default_alpha: object = None
    alpha_is_pair: bool = False
    self_normalizing: bool = False
    summary: str = ""
    dies: bool = False
    bounds: tuple | None = None


def _rrelu(alpha):
    lower, upper = alpha
    return nn.RReLU(lower=lower, upper=upper)


_SWISH = Activation(
    lambda a: nn.SiLU(), "he", summary="Swish / SiLU, z * sigmoid(z)"
)
_LOGISTIC = Activation(
    lambda a: nn.Sigmoid(), "glorot", summary="logistic sigmoid (saturates)", bounds=(0.0, 1.0)
)

ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(lambda a: nn.ReLU(), "he", summary="max(0, z)", dies=True),
    "leaky_relu": Activation(
        lambda a: nn.LeakyReLU(negative_slope=a),
        "he",
        alpha_doc="slope for z < 0",
        default_alpha=0.2,
        summary="max(alpha * z, z); 0.2 follows the chapter's advice",
    ),
    "rrelu": Activation(
        _rrelu,
        "he",
        alpha_doc="(lower, upper) range the random slope is drawn from in training",
        default_alpha=(1.0 / 8.0, 1.0 / 3.0),
        alpha_is_pair=True,
        summary="randomized leaky ReLU; mean slope at inference",
    ),
    "prelu": Activation(
        lambda a: nn.PReLU(init=a),
        "he",
        alpha_doc="initial value of the learned slope",
        default_alpha=0.25,
        summary="parametric leaky ReLU, slope learned per layer",
    ),
    "elu": Activation(
        lambda a: nn.ELU(alpha=a),
        "he",
        alpha_doc="value the function tends to for very negative z (-alpha)",
        default_alpha=1.0,
        summary="exponential linear unit",
    ),
    "selu": Activation(
        lambda a: nn.SELU(),
        "lecun",
        self_normalizing=True,
        summary="scaled ELU, self-normalizing with LeCun init and standardized inputs",
    ),
    "gelu": Activation(lambda a: nn.GELU(), "he", summary="Gaussian error linear unit"),
    "swish": _SWISH,
    "silu": _SWISH,
    "mish": Activation(lambda a: nn.Mish(), "he", summary="z * tanh(softplus(z))"),
    "tanh": Activation(lambda a: nn.Tanh(), "glorot", summary="hyperbolic tangent",
                       bounds=(-1.0, 1.0)),
    "logistic": _LOGISTIC,
    "sigmoid": _LOGISTIC,
    "identity": Activation(
        lambda a: nn.Identity(), "glorot", summary="no activation (a linear layer)"
    ),
}


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

