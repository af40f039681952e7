"""Per-layer training diagnostics: why a deep network trains or doesn't.

With ``diagnostics=True`` the estimator adds a :class:`Diagnostics` callback.
At the end of every epoch it measures, on a fixed probe batch (the first
``PROBE_ROWS`` training rows of the fit call), for every linear layer:

- ``grad_norm``: L2 norm of the gradient of the mean loss (without the weight
  penalty) with respect to the layer's weights: vanishing or exploding
  gradients show as norms that shrink or grow layer by layer;
- ``weight_norm``: L2 (Frobenius) norm of the weights;
- ``update_ratio``: norm of the epoch's change of the weights over their norm
  at the start of the epoch (healthy training moves weights by a small,
  similar fraction in every layer);

and for every hidden layer, on the activation's output:

- ``act_mean``, ``act_std``: mean and standard deviation over units and rows
  (a self-normalizing SELU stack keeps them near 0 and 1);
- ``dead_fraction``: units that output exactly 0 for every probe row, for
  activations whose units can die (ReLU); NaN for the others;
- ``saturated_fraction``: outputs within 2 % of the output range from a bound,
  for saturating activations (logistic, tanh); NaN for the others.

The measurement runs outside the training step (so every fast path keeps
running) and leaves training exactly as it would be without it: the gradient
comes from ``torch.autograd.grad`` (no ``.grad`` is touched), dropout is off
and RReLU at its mean slope for the probe, and any other random draw comes
from forked generators; BatchNorm normalizes with the probe's statistics as
in training but its running statistics are restored. The probe's loss is the
unweighted mean over its rows (sample and class weights are not applied).
Frozen layers report a NaN gradient norm.
"""

from __future__ import annotations

import math

import torch
from skorch.callbacks import Callback
from torch import nn

from ._engine.inference import GLOBAL_RNG_LOCK
from ._engine.module import RANDOM_IN_TRAINING

__all__ = ["PROBE_ROWS", "STATISTICS", "Diagnostics", "history_frame", "layer_statistics"]

PROBE_ROWS = 256
# Statistic -> whether it is per linear layer (True) or per hidden layer (False).
STATISTICS = {
    "grad_norm": True, "weight_norm": True, "update_ratio": True,
    "act_mean": False, "act_std": False, "dead_fraction": False, "saturated_fraction": False,
}
_SATURATION_MARGIN = 0.02


def _probe_mode(module):
    """Put ``module`` in the probe's mode; return a function that undoes it.

    Training mode (BatchNorm uses the batch's statistics, as in training),
    but dropout off and BatchNorm's running statistics saved for restoring.
    """
    was_training = module.training
    module.train()  # (frozen layers keep their BatchNorm in eval mode)
    for m in module.modules():
        if isinstance(m, RANDOM_IN_TRAINING):  # the probe runs them deterministically
            m.eval()
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm1d)]
    saved = [{k: v.clone() for k, v in m.state_dict().items() if k.startswith(("running",
                                                                              "num_batches"))}
             for m in norms]

    def restore():
        with torch.no_grad():
            for m, state in zip(norms, saved, strict=True):
                for k, v in state.items():
                    getattr(m, k).copy_(v)
        module.train(was_training)

    return restore


def layer_statistics(module, X, y, per_sample_loss, kinds, previous=None):
    """Measure the diagnostics of ``module`` on one batch (see the module docstring).

    Parameters
    ----------
    module : MLP
    X : torch.Tensor of shape (n, n_features)
    y : torch.Tensor
        Targets in the loss's terms.
    per_sample_loss : callable
        ``per_sample_loss(outputs, y)`` gives one loss per row.
    kinds : list of (bool, tuple or None)
        Per hidden layer, whether its units can die and the bounds its
        activation saturates at (from the activation table); ``(False,
        None)`` for a user-supplied activation (both statistics NaN).
    previous : list of torch.Tensor or None, default=None
        The linear layers' weights at the start of the epoch, for
        ``update_ratio`` (NaN without them).

    Returns
    -------
    dict
        Statistic name -> list of floats, one per linear layer (output layer
        last) or per hidden layer (see ``STATISTICS``).
    """
    linears = module.linears()
    hidden = list(module.hidden)
    outputs = [None] * len(hidden)
    hooks = [block.activation.register_forward_hook(
        lambda m, args, out, i=i: outputs.__setitem__(i, out)) for i, block in
        enumerate(hidden)]
    device = next(module.parameters()).device
    cuda = [device.index or 0] if device.type == "cuda" else []
    restore = _probe_mode(module)
    # Any other layer that draws (a user's module) draws from forked generators.
    try:
        with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=cuda), torch.enable_grad():
            loss = per_sample_loss(module(X), y).mean()
            trainable = [lin.weight for lin in linears if lin.weight.requires_grad]
            grads = iter(torch.autograd.grad(loss, trainable) if trainable else ())
    finally:
        for h in hooks:
            h.remove()
        restore()
    stats = {name: [] for name in STATISTICS}
    with torch.no_grad():
        for i, lin in enumerate(linears):
            w = lin.weight
            norm = w.norm()
            stats["grad_norm"].append(next(grads).norm() if w.requires_grad else math.nan)
            stats["weight_norm"].append(norm)
            if previous is None:
                stats["update_ratio"].append(math.nan)
            else:
                before = previous[i]
                stats["update_ratio"].append((w - before).norm() / before.norm().clamp_min(
                    1e-12))
        for out, (dies, bounds) in zip(outputs, kinds, strict=True):
            out = out.detach()
            stats["act_mean"].append(out.mean())
            stats["act_std"].append(out.std())
            stats["dead_fraction"].append(
                (out == 0).all(dim=0).float().mean() if dies else math.nan)
            if bounds is None:
                stats["saturated_fraction"].append(math.nan)
            else:
                low, high = bounds
                margin = _SATURATION_MARGIN * (high - low)
                near = (out <= low + margin) | (out >= high - margin)
                stats["saturated_fraction"].append(near.float().mean())
    # One host read for everything.
    flat = [v for values in stats.values() for v in values]
    tensors = [v for v in flat if isinstance(v, torch.Tensor)]
    read = iter(torch.stack(tensors).tolist() if tensors else ())
    return {name: [next(read) if isinstance(v, torch.Tensor) else v for v in values]
            for name, values in stats.items()}


class Diagnostics(Callback):
    """Records :func:`layer_statistics` in the history (``"diagnostics"``) every epoch.

    Parameters
    ----------
    kinds : list of (bool, tuple or None)
        Per hidden layer, see :func:`layer_statistics`.
    summary : bool, default=False
        Print one line of the statistics per epoch (``verbose=2``).
    write : callable, default=print
        How the line is printed (``tqdm.write`` under a progress bar).
    """

    def __init__(self, kinds, summary=False, write=print):
        self.kinds = kinds
        self.summary = summary
        self.write = write

    def on_train_begin(self, net, **kwargs):
        """Forget the last call's probe; remember the weights training starts from."""
        self.probe_ = None
        self.previous_ = self._weights(net)

    @staticmethod
    def _weights(net):
        return [lin.weight.detach().clone() for lin in net.module_.linears()]

    def on_epoch_end(self, net, dataset_train=None, **kwargs):
        """Measure on the probe batch and record the result."""
        if self.probe_ is None:
            data = dataset_train
            n = min(PROBE_ROWS, len(data))
            if data.rows is None:
                xb, yb, _ = data.batch(None, 0, n)
            else:
                xb, yb, _ = data.batch(data.rows, 0, n)
            self.probe_ = (xb, yb)
        stats = layer_statistics(net.module_, *self.probe_, net.criterion_, self.kinds,
                                 self.previous_)
        net.history.record("diagnostics", stats)
        self.previous_ = self._weights(net)
        if self.summary:
            self.write(summary_line(len(net.history), stats))

    def on_train_end(self, net, **kwargs):
        """Drop the references to data and weights (they would bloat a pickle)."""
        self.probe_ = self.previous_ = None


def summary_line(epoch, stats):
    """One line per epoch for ``verbose=2``: the statistics' range over the layers."""

    def span(name):
        values = [v for v in stats[name] if not math.isnan(v)]
        return f"{min(values):.3g}..{max(values):.3g}" if values else "n/a"

    parts = [f"grad norm {span('grad_norm')}", f"update/weight {span('update_ratio')}",
             f"act mean {span('act_mean')}", f"act std {span('act_std')}"]
    for name, label in (("dead_fraction", "dead"), ("saturated_fraction", "saturated")):
        if any(not math.isnan(v) for v in stats[name]):
            parts.append(f"{label} {span(name)}")
    return f"  diagnostics epoch {epoch}: " + ", ".join(parts)


def history_frame(history, n_hidden):
    """A skorch ``History`` as a pandas DataFrame, diagnostics spread into columns.

    Parameters
    ----------
    history : skorch.History
    n_hidden : int
        Number of hidden layers (the diagnostics columns ``*_1`` ... ``*_out``).

    Returns
    -------
    pandas.DataFrame
        One row per epoch, indexed by epoch number.
    """
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError("history_frame() needs pandas: pip install pandas") from exc
    linear_names = [*range(1, n_hidden + 1), "out"]
    rows = []
    for epoch, record in enumerate(history, start=1):
        row = {"epoch": epoch}
        for key, value in record.items():
            if key == "diagnostics":
                for stat, values in value.items():
                    names = linear_names if STATISTICS[stat] else linear_names[:-1]
                    row.update((f"{stat}_{name}", v) for name, v in zip(names, values,
                                                                          strict=True))
            elif key not in ("batches", "epoch"):
                row[key] = value
        rows.append(row)
    if not rows:  # e.g. the first epoch diverged and was rolled back
        return pd.DataFrame(index=pd.Index([], name="epoch", dtype=int))
    return pd.DataFrame(rows).set_index("epoch")
