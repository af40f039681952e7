"""What a new network starts from: layers reused from another network, autoencoder pretraining.

Chapter 11's answers to scarce labels, as pure torch on :class:`~._engine.module.MLP`
networks (the estimator decides when they apply, see ``BaseDeepMLP``):

- **Transfer learning** (:func:`matching_layers`, :func:`copy_layers_`): the
  lower hidden layers of a network trained on a related task are copied into
  the new one; the output layer is always new. Copies, never shared tensors:
  the source network is not changed by training the new one.
- **Unsupervised pretraining** (:func:`pretrain_autoencoder_`): the hidden
  layers are first trained as the encoder of an autoencoder that reconstructs
  the inputs (all rows, labeled or not); a mirrored decoder is thrown away
  afterwards.
"""

from __future__ import annotations

import torch

from ._engine.losses import PerSampleLoss, squared_error
from ._engine.module import MLP

__all__ = ["copy_layers_", "matching_layers", "pretrain_autoencoder_"]


def _shapes(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _mismatch(source, target, where):
    """Why ``source``'s parameters do not fit ``target``'s (``None`` if they do)."""
    a, b = _shapes(source), _shapes(target)
    if a == b:
        return None
    if hasattr(source, "linear") and hasattr(target, "linear"):
        sl, tl = source.linear, target.linear
        if (sl.in_features, sl.out_features) != (tl.in_features, tl.out_features):
            return (f"{where} maps {sl.in_features} -> {sl.out_features} units in init_from "
                    f"but {tl.in_features} -> {tl.out_features} here")
    return (f"{where} has the parameters {sorted(a)} in init_from but {sorted(b)} here "
            "(batch_norm, batch_norm_input or a parametrized activation differ)")


def _embedding(module):
    return module.embedding if module.plan.embedding is not None else None


def _embedding_mismatch(source, target):
    """Why ``source``'s numeric embedding does not fit ``target``'s (``None`` if it does)."""
    a, b = _embedding(source), _embedding(target)
    if a is None and b is None:
        return None
    if a is None or b is None or type(a) is not type(b) or _shapes(a) != _shapes(b):
        what = [type(m).__name__ if m is not None else "none" for m in (a, b)]
        return (f"the numeric embeddings differ ({what[0]} in init_from, {what[1]} here: "
                "numeric_embedding, numeric_features, embedding_size, n_frequencies or "
                "n_bins)")
    return None


def matching_layers(source, target):
    """How many lower hidden layers of ``source`` fit ``target``, and why no more.

    A layer fits when its parameters and buffers (linear weights and bias,
    BatchNorm, a parametrized activation) have the same names and shapes; the
    input normalization (``batch_norm_input``) must match for any layer to fit,
    since the first layer was trained on its output, and so must the numeric
    embeddings (same kind, columns and sizes).

    Parameters
    ----------
    source, target : MLP

    Returns
    -------
    n_layers : int
        Length of the fitting prefix of hidden layers.
    reason : str or None
        Why layer ``n_layers + 1`` does not fit (``None`` when every hidden
        layer of both networks fits).
    """
    reason = _embedding_mismatch(source, target) or _mismatch(
        source.input_norm, target.input_norm, "the input normalization")
    if reason is not None:
        return 0, reason
    for i, (a, b) in enumerate(zip(source.hidden, target.hidden, strict=False)):
        reason = _mismatch(a, b, f"hidden layer {i + 1}")
        if reason is not None:
            return i, reason
    n_source, n_target = len(source.hidden), len(target.hidden)
    if n_source == n_target:
        return n_source, None
    if n_source < n_target:
        return n_source, f"init_from has only {n_source} hidden layer(s)"
    return n_target, f"this network has only {n_target} hidden layer(s)"


@torch.no_grad()
def copy_layers_(source, target, n_layers):
    """Copy the numeric embedding, the input normalization and the ``n_layers``
    lowest hidden layers into ``target``.

    Weights, biases, BatchNorm parameters and running statistics are copied
    (onto ``target``'s device); ``source`` is only read. With ``n_layers=0``
    nothing is copied.

    Parameters
    ----------
    source, target : MLP
        Networks whose first ``n_layers`` layers fit (see :func:`matching_layers`).
    n_layers : int

    Returns
    -------
    target : MLP
    """
    if n_layers:
        if _embedding(source) is not None:  # (bins and columns included)
            target.embedding.load_state_dict(source.embedding.state_dict())
        target.input_norm.load_state_dict(source.input_norm.state_dict())
        for i in range(n_layers):
            target.hidden[i].load_state_dict(source.hidden[i].state_dict())
    return target


def autoencoder_for(module, architecture, kernel_initializer):
    """A freshly initialized autoencoder whose encoder has ``module``'s hidden layers.

    The decoder mirrors the encoder's widths (``(a, b, c)`` gives hidden
    layers ``a, b, c, b, a``) with the same layer options and a linear output
    of the input's width; the encoder starts from ``module``'s current weights.

    Parameters
    ----------
    module : MLP
        The network to pretrain (its ``input_norm`` and ``hidden`` layers).
    architecture : dict
        The options :class:`MLP` was built with (``hidden_layer_sizes`` and
        the layer options).
    kernel_initializer : str or VarianceScaling
        Initializer of the decoder.

    Returns
    -------
    MLP
    """
    sizes = tuple(architecture["hidden_layer_sizes"])
    options = {k: v for k, v in architecture.items() if k != "hidden_layer_sizes"}
    n_features = module.plan.n_features  # (the embedding's input, if it has one)
    spec = None if _embedding(module) is None else module.embedding.spec
    ae = MLP(n_features, sizes + sizes[-2::-1], n_features, **options, embedding=spec)
    ae.initialize_(kernel_initializer)
    ae.to(next(module.parameters()).device)
    return copy_layers_(module, ae, len(sizes))


def pretrain_autoencoder_(module, architecture, kernel_initializer, data, *, trainer, epochs,
                          seed):
    """Pretrain ``module``'s hidden layers as an autoencoder's encoder, in place.

    Parameters
    ----------
    module : MLP
        Network with at least one hidden layer; its input normalization and
        hidden layers are replaced by the trained encoder's.
    architecture : dict
        Options ``module`` was built with (see :func:`autoencoder_for`).
    kernel_initializer : str or VarianceScaling
        Initializer of the decoder.
    data : TensorData
        Rows to reconstruct; the targets are the inputs.
    trainer : callable
        ``trainer(autoencoder, criterion, n_rows)`` returns an initialized
        ``TrainingNet`` (the estimator's solver, penalties and batch size).
    epochs : int
        Epochs of pretraining.
    seed : int
        Seeds the pretraining epochs' row order and dropout masks.

    Returns
    -------
    history : skorch.History
        The autoencoder's per-epoch training records (``train_loss`` is the
        mean reconstruction error ``0.5 * mean((x - x_hat)**2)``).
    stop_reason : str or None
        ``"diverged"`` or ``"interrupted"`` when pretraining ended early (the
        last finite epoch's weights are kept), else ``None``.
    """
    ae = autoencoder_for(module, architecture, kernel_initializer)
    net = trainer(ae, PerSampleLoss(squared_error), len(data))
    net.max_epochs = epochs
    net.partial_fit(None, None, data=data, seed=seed)
    copy_layers_(ae, module, len(module.hidden))
    return net.history, net.stop_reason
