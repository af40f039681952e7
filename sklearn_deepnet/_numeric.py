"""The estimator's side of numeric embeddings: which columns, and their bins.

The engine's :class:`~._engine.embeddings.EmbeddingSpec` holds everything an
embedding module is built from; this module makes one from the estimator's
parameters and the first fit's training rows (``warm_start`` and
``partial_fit`` keep it; transfer learning adopts ``init_from``'s).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._engine.embeddings import EmbeddingSpec, quantile_bins

__all__ = ["AUTO_FREQUENCY_SCALES", "EMBEDDING_PARAMS", "auto_frequency_scales",
           "embedding_spec", "many_valued_columns"]

#: Estimator parameters that shape the embedding (a change refuses a warm start).
EMBEDDING_PARAMS = ("numeric_embedding", "numeric_features", "embedding_size",
                    "n_frequencies", "frequency_scale", "n_bins")


#: ``frequency_scale="auto"``: (a column's scale, a spiky column's scale, the share of
#: rows its most frequent value must exceed to be spiky). Measured on the benchmark's
#: tables (docs/user_guide/tabular.md): 0.1 suits smooth columns (Letter, Diamonds),
#: 10 the spike-plus-tail ones (Adult's capital gains and losses, Spambase's word
#: frequencies), which need high frequencies to tell their rare values apart.
AUTO_FREQUENCY_SCALES = (0.1, 10.0, 0.5)


def auto_frequency_scales(columns):
    """``frequency_scale="auto"``'s scale of each column (see :data:`AUTO_FREQUENCY_SCALES`).

    Parameters
    ----------
    columns : iterable of 1-D numpy arrays
        The training values of each embedded column.

    Returns
    -------
    tuple of float
    """
    base, spiky, share = AUTO_FREQUENCY_SCALES
    out = []
    for values in columns:
        n = len(values)
        # (a value held by more than half of the rows is the median: linear time)
        median = np.partition(values, n // 2)[n // 2] if n else None
        out.append(spiky if n and np.count_nonzero(values == median) > share * n else base)
    return tuple(out)


def _columns(X, rows):
    """Column ``j`` of ``X[rows]`` as a dense float array, for each ``j`` (lazily)."""
    if sp.issparse(X):
        csc = (X if rows is None else X[rows]).tocsc()

        def column(j):
            return csc[:, [j]].toarray().ravel()
    else:
        part = X if rows is None else X[rows]

        def column(j):
            return part[:, j]
    return column


def many_valued_columns(X, rows=None):
    """Boolean mask: the columns with more than two distinct values in ``X[rows]``.

    A column has more than two values exactly when one of its values lies
    strictly between its minimum and maximum (one pass, no sort).
    """
    if sp.issparse(X):
        part = (X if rows is None else X[rows]).tocsc()
        out = np.zeros(X.shape[1], dtype=bool)
        n = part.shape[0]
        for j in range(X.shape[1]):
            data = part.data[part.indptr[j]:part.indptr[j + 1]]
            values = data if len(data) == n else np.append(data, 0.0)
            lo, hi = values.min(initial=0.0), values.max(initial=0.0)
            out[j] = bool(((values > lo) & (values < hi)).any())
        return out
    part = X if rows is None else X[rows]
    lo, hi = part.min(axis=0), part.max(axis=0)
    return ((part > lo) & (part < hi)).any(axis=0)


def _selected(est, X, rows, n_features):
    """Indices of the columns to embed, from ``numeric_features``."""
    choice = est.numeric_features
    if isinstance(choice, str) and choice == "auto":
        return np.flatnonzero(many_valued_columns(X, rows))
    values = np.asarray(choice)
    if values.ndim != 1:
        raise ValueError(f"numeric_features must be 'auto' or 1-D; got shape {values.shape}.")
    if values.dtype == bool:
        if len(values) != n_features:
            raise ValueError(
                f"numeric_features is a boolean mask of length {len(values)}, but X has "
                f"{n_features} features.")
        return np.flatnonzero(values)
    if values.dtype.kind in "OUS":
        names = getattr(est, "feature_names_in_", None)
        if names is None:
            raise ValueError(
                "numeric_features names columns, but X has no column names (pass a pandas "
                "DataFrame, or give column indices).")
        lookup = {name: i for i, name in enumerate(names)}
        unknown = [str(v) for v in values if v not in lookup]
        if unknown:
            raise ValueError(f"numeric_features names columns that X does not have: {unknown}.")
        index = np.array([lookup[v] for v in values], dtype=np.int64)
    elif values.dtype.kind in "iu" or len(values) == 0:
        index = values.astype(np.int64)
        bad = index[(index < -n_features) | (index >= n_features)]
        if len(bad):
            raise ValueError(
                f"numeric_features holds column indices out of range for {n_features} "
                f"features: {bad.tolist()}.")
        index = index % n_features
    else:
        raise ValueError(
            "numeric_features must be 'auto', column indices, a boolean mask or column "
            f"names; got an array of dtype {values.dtype}.")
    if len(np.unique(index)) != len(index):
        raise ValueError("numeric_features names a column more than once.")
    return np.sort(index)


def embedding_spec(est, X, rows):
    """The :class:`EmbeddingSpec` of a first fit on ``X[rows]`` (``None``: no embedding).

    Parameters
    ----------
    est : BaseDeepMLP
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        The validated training input.
    rows : ndarray of int or None
        The training rows (validation rows and zero weights left out), ``None``: all.

    Raises
    ------
    ValueError
        If ``numeric_features`` is invalid for ``X``, or an empty list. With
        "auto" and no column to embed the network has no embedding, and the
        fit warns.
    """
    if est.numeric_embedding is None:
        return None
    n_features = X.shape[1]
    numeric = _selected(est, X, rows, n_features)
    if len(numeric) == 0:
        if isinstance(est.numeric_features, str):  # "auto" on binary or constant columns
            est._target_warnings.append((
                f"numeric_embedding={est.numeric_embedding!r} embeds nothing: no column of "
                "X has more than two distinct values, so the network takes X as it is "
                "(name the columns to embed in numeric_features to embed them anyway).",
                UserWarning))
            return None
        raise ValueError(
            f"numeric_embedding={est.numeric_embedding!r} has no column to embed: "
            "numeric_features is empty. Set numeric_embedding=None, or name the columns "
            "in numeric_features.")
    bins, scale = None, est.frequency_scale
    if est.numeric_embedding == "piecewise_linear":
        column = _columns(X, rows)
        bins = quantile_bins((column(j) for j in numeric), est.n_bins)
    elif isinstance(scale, str):  # "auto": per column, from its training values
        column = _columns(X, rows)
        scale = auto_frequency_scales(column(j) for j in numeric)
    else:
        scale = float(scale)
    return EmbeddingSpec(
        est.numeric_embedding, n_features, tuple(int(j) for j in numeric),
        size=int(est.embedding_size), n_frequencies=int(est.n_frequencies),
        frequency_scale=scale, bins=bins)
