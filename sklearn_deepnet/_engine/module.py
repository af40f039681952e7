"""Pure-torch network: ``Linear -> [BatchNorm] -> activation -> [BatchNorm] -> [dropout]``.

Nothing here knows about scikit-learn or skorch. The module returns raw
outputs (logits for classifiers); losses and output activations live elsewhere.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .activations import activation_init_family, build_activation, is_self_normalizing
from .init import resolve_initializer

__all__ = ["MLP", "RANDOM_IN_TRAINING"]

# The layers of this package that draw random numbers in training mode and
# are deterministic in evaluation mode (dropout off, RReLU at its mean slope).
RANDOM_IN_TRAINING = (nn.Dropout, nn.AlphaDropout, nn.RReLU)
# Layers that draw no random numbers in training (anything else, e.g. dropout,
# RReLU or a user's activation module, may).
_DETERMINISTIC_LAYERS = (
    nn.Linear, nn.BatchNorm1d, nn.Identity, nn.Sequential, nn.ModuleList, nn.ReLU,
    nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish, nn.Tanh, nn.Sigmoid,
    nn.CELU, nn.ReLU6, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Softsign,
    nn.LogSigmoid, nn.Tanhshrink, nn.Softshrink, nn.Hardshrink,
)


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

    Attributes
    ----------
    input_norm : torch.nn.Module
        ``BatchNorm1d`` or ``Identity``.
    hidden : torch.nn.ModuleList
        One ``Sequential`` per hidden layer with children named ``linear``,
        ``batch_norm`` (before or after), ``activation`` and ``dropout``.
    output : torch.nn.Sequential
        The output ``linear`` layer.
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
    ):
        super().__init__()
        self.activation = activation
        self.n_frozen = 0

        def bn(width):
            return nn.BatchNorm1d(width, eps=batch_norm_epsilon, momentum=batch_norm_momentum)

        self.input_norm = bn(n_features) if batch_norm_input else nn.Identity()
        blocks = []
        n_in = n_features
        for width in hidden_layer_sizes:
            layers = OrderedDict()
            layers["linear"] = nn.Linear(n_in, width, bias=batch_norm != "before")
            if batch_norm == "before":
                layers["batch_norm"] = bn(width)
            layers["activation"] = build_activation(activation, activation_alpha)
            if batch_norm == "after":
                layers["batch_norm"] = bn(width)
            if dropout > 0:
                drop = nn.AlphaDropout if is_self_normalizing(activation) else nn.Dropout
                layers["dropout"] = drop(dropout)
            blocks.append(nn.Sequential(layers))
            n_in = width
        self.hidden = nn.ModuleList(blocks)
        self.output = nn.Sequential(OrderedDict(linear=nn.Linear(n_in, n_outputs)))

    def forward(self, x):
        """Return raw outputs of shape ``(n_samples, n_outputs)``."""
        x = self.input_norm(x)
        for block in self.hidden:
            x = block(x)
        return self.output(x)

    def draws_random_numbers(self):
        """Whether training draws from torch's generators (dropout, RReLU, unknown layers)."""
        known = (*_DETERMINISTIC_LAYERS, type(self))
        return any(type(m) not in known for m in self.modules())  # exact types

    def frozen_modules(self):
        """The modules :meth:`freeze_` froze: the input norm and the lowest hidden layers."""
        if not self.n_frozen:
            return []
        return [self.input_norm, *self.hidden[: self.n_frozen]]

    def freeze_(self, n_layers):
        """Freeze the ``n_layers`` lowest hidden layers (and the input norm); 0 unfreezes.

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
        """All ``Linear`` modules, output layer last."""
        return self.hidden_linears() + [self.output.linear]

    def initialize_(self, kernel_initializer="auto"):
        """Initialize weights in place; biases to zero.

        Parameters
        ----------
        kernel_initializer : str or VarianceScaling, default="auto"
            Initializer of the hidden layers; with ``"auto"`` the family
            Table 11-1 gives for the activation. The output layer (softmax,
            sigmoid or identity) always uses Glorot uniform, as a Keras
            ``Dense`` layer without an initializer of its own does.
        """
        hidden_family = activation_init_family(self.activation)
        for i, linear in enumerate(self.linears()):
            if i < len(self.hidden):
                init = resolve_initializer(kernel_initializer, hidden_family)
            else:
                init = resolve_initializer("auto", "glorot")
            init.initialize_(linear.weight)
            if linear.bias is not None:
                nn.init.zeros_(linear.bias)
        return self
