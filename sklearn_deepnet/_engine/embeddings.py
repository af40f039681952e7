"""Numeric feature embeddings: each numeric column mapped to a vector before the MLP.

Two kinds (Gorishniy, Rubachev and Babenko, "On Embeddings for Numerical
Features in Tabular Deep Learning", NeurIPS 2022), each a module whose output
is ``[embedding of numeric column 1, ..., of column F, the other columns]``:

- :class:`PeriodicEmbedding` ("PLR"): ``ReLU(Linear_j([cos(2 pi c_j x_j),
  sin(2 pi c_j x_j)]))`` with ``n_frequencies`` trainable frequencies ``c_j``
  per column (initialized from a normal of standard deviation
  ``frequency_scale``, one for all columns or one per column, truncated at 3 of
  them) and one linear layer per column;
- :class:`PiecewiseLinearEmbedding` ("PLE" then a linear layer and ReLU):
  ``x_j`` encoded over quantile bins ``b_0 < ... < b_T`` of the training data,
  component ``t`` being ``(x - b_{t-1}) / (b_t - b_{t-1})`` clipped to
  ``[0, 1]`` (the first bin unclipped below, the last unclipped above), then
  one linear layer per column and ReLU.

Columns that are not embedded (binary and one-hot columns by default) pass
through unchanged after the embeddings. The per-column linear layers are one
batched product (``baddbmm`` over the columns). :class:`EmbeddingSpec` is what
the layer plan holds: everything a module is built from, bins included, so a
fitted network rebuilds exactly. Nothing here knows about scikit-learn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["EMBEDDINGS", "EmbeddingSpec", "PeriodicEmbedding", "PiecewiseLinearEmbedding",
           "quantile_bins"]

_TWO_PI = 2 * math.pi


@dataclass(frozen=True)
class EmbeddingSpec:
    """What an embedding module is built from.

    Parameters
    ----------
    kind : {"periodic", "piecewise_linear"}
    n_features : int
        Width of the network's input.
    numeric : tuple of int
        The embedded columns, in the order their embeddings come out.
    size : int
        Width of each column's embedding.
    n_frequencies : int
        Frequencies per column (``"periodic"``).
    frequency_scale : float or tuple of float
        Standard deviation of the initial frequencies (``"periodic"``): one for
        every column, or one per embedded column (in ``numeric``'s order).
    bins : tuple of tuple of float or None
        Each embedded column's bin edges, increasing, at least two
        (``"piecewise_linear"``).
    """

    kind: str
    n_features: int
    numeric: tuple
    size: int = 16
    n_frequencies: int = 48
    frequency_scale: float | tuple = 0.01
    bins: tuple | None = None

    @property
    def other(self):
        """The columns that pass through, in order."""
        embedded = set(self.numeric)
        return tuple(j for j in range(self.n_features) if j not in embedded)

    @property
    def n_out(self):
        """Width of the output: the embeddings, then the other columns."""
        return len(self.numeric) * self.size + self.n_features - len(self.numeric)


def quantile_bins(columns, n_bins):
    """Bin edges of each column: its quantiles at ``0, 1/n_bins, ..., 1``, distinct.

    Parameters
    ----------
    columns : iterable of 1-D numpy arrays
        The training values of each embedded column.
    n_bins : int
        The most bins per column (fewer where quantiles coincide).

    Returns
    -------
    tuple of tuple of float
        At least two edges per column (a constant column ``v`` gets ``(v, v + 1)``).
    """
    levels = np.linspace(0.0, 1.0, n_bins + 1)
    out = []
    for values in columns:
        values = np.asarray(values, dtype=np.float64)
        # distinct in float32, the precision the module holds them in
        edges = (np.unique(np.quantile(values, levels).astype(np.float32)) if len(values)
                 else np.zeros(1, dtype=np.float32))
        if len(edges) < 2:
            edges = np.array([edges[0], edges[0] + np.float32(1.0)])
        out.append(tuple(float(e) for e in edges))
    return tuple(out)


class _Embedding(nn.Module):
    """Shared parts: the column split, the per-column linear layers and the output."""

    def __init__(self, spec, n_in):
        super().__init__()
        self.spec = spec
        n_num = len(spec.numeric)
        self.register_buffer("numeric", torch.tensor(spec.numeric, dtype=torch.long))
        self.register_buffer("other", torch.tensor(spec.other, dtype=torch.long))
        bound = n_in ** -0.5  # as rtdl-num-embeddings' per-feature linear layers
        self.weight = nn.Parameter(torch.empty(n_num, n_in, spec.size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_num, spec.size).uniform_(-bound, bound))

    def embed(self, features):
        """``(n, F, n_in)`` encodings -> ``(F, n, size)`` pre-activations."""
        return torch.baddbmm(self.bias[:, None, :], features.transpose(0, 1), self.weight)

    def assemble(self, activated, x):
        """``(F, n, size)`` embeddings and the input -> the ``(n, n_out)`` output."""
        n = len(x)
        flat = activated.transpose(0, 1).reshape(n, -1)
        if len(self.other) == 0:
            return flat
        return torch.cat([flat, x.index_select(1, self.other)], dim=1)

    def forward(self, x):
        """Return ``[embeddings, other columns]`` of shape ``(n, spec.n_out)``."""
        return self.assemble(torch.relu(self.embed(self.encode(x.index_select(1, self.numeric)))),
                             x)


class PeriodicEmbedding(_Embedding):
    """Periodic embeddings of the numeric columns, then a linear layer and ReLU ("PLR").

    Parameters
    ----------
    spec : EmbeddingSpec
        ``kind="periodic"``.

    Attributes
    ----------
    frequencies : torch.nn.Parameter of shape (F, n_frequencies)
    weight : torch.nn.Parameter of shape (F, 2 * n_frequencies, size)
    bias : torch.nn.Parameter of shape (F, size)
    numeric, other : torch.Tensor (buffers)
        Indices of the embedded and of the passed-through columns.
    """

    def __init__(self, spec):
        super().__init__(spec, 2 * spec.n_frequencies)
        sigma = spec.frequency_scale
        frequencies = torch.empty(len(spec.numeric), spec.n_frequencies)
        if isinstance(sigma, tuple):  # one scale per column: a standard draw, scaled
            nn.init.trunc_normal_(frequencies, 0.0, 1.0, -3.0, 3.0)
            frequencies *= torch.tensor(sigma, dtype=frequencies.dtype)[:, None]
        else:
            nn.init.trunc_normal_(frequencies, 0.0, sigma, -3 * sigma, 3 * sigma)
        self.frequencies = nn.Parameter(frequencies)

    def angles(self, xn):
        """``2 pi c x`` of shape ``(n, F, n_frequencies)``."""
        return (_TWO_PI * self.frequencies) * xn[..., None]

    def encode(self, xn):
        """``[cos, sin]`` of the angles, ``(n, F, 2 * n_frequencies)``."""
        v = self.angles(xn)
        return torch.cat([torch.cos(v), torch.sin(v)], dim=-1)


class PiecewiseLinearEmbedding(_Embedding):
    """Piecewise-linear encodings over quantile bins, then a linear layer and ReLU.

    Parameters
    ----------
    spec : EmbeddingSpec
        ``kind="piecewise_linear"`` with its ``bins``.

    Attributes
    ----------
    weight : torch.nn.Parameter of shape (F, T, size)
        ``T``: the most bins of any column (a column with fewer has components
        that are always 0 in the rest).
    bias : torch.nn.Parameter of shape (F, size)
    left, width, lower, upper : torch.Tensor of shape (F, T) (buffers)
        Each bin's left edge and width, and the bounds its component is
        clipped to (the largest float where it is not clipped).
    """

    def __init__(self, spec):
        n_bins = max(len(edges) - 1 for edges in spec.bins)
        super().__init__(spec, n_bins)
        n_num = len(spec.numeric)
        # Finite bounds (the buffers must stay finite: a fit checks every tensor
        # for divergence): a padded bin starts at the largest float, so its
        # component is clipped to 0 for every finite x.
        big = torch.finfo(torch.float32).max
        left = torch.full((n_num, n_bins), big)
        width = torch.ones(n_num, n_bins)
        lower = torch.zeros(n_num, n_bins)
        upper = torch.ones(n_num, n_bins)
        for j, edges in enumerate(spec.bins):
            e = torch.tensor(edges, dtype=torch.float64)
            t = len(edges) - 1
            left[j, :t] = e[:-1].float()
            width[j, :t] = (e[1:] - e[:-1]).float()
            lower[j, 0] = -big
            upper[j, t - 1] = big
        for name, t in (("left", left), ("width", width), ("lower", lower), ("upper", upper)):
            self.register_buffer(name, t)

    def raw(self, xn):
        """Unclipped components ``(x - left) / width``, ``(n, F, T)``."""
        return (xn[..., None] - self.left) / self.width

    def encode(self, xn):
        """The clipped components, ``(n, F, T)``."""
        return torch.clamp(self.raw(xn), min=self.lower, max=self.upper)


#: kind -> module type
EMBEDDINGS = {"periodic": PeriodicEmbedding, "piecewise_linear": PiecewiseLinearEmbedding}
