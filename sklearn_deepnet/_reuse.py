"""Estimator side of transfer learning and pretraining: parameter checks and the start of a fit.

The hyperparameters ``init_from``, ``reuse_layers``, ``freeze_layers``,
``unfreeze_after``, ``pretrain`` and ``pretrain_epochs`` of ``BaseDeepMLP``
are checked here, and :func:`start_network_` gives a freshly built network
its starting point (reused layers, then pretraining). The torch side is
:mod:`._transfer`; freezing during training is :class:`~._callbacks.LayerFreezer`.

``init_from`` holds a fitted estimator. scikit-learn's ``clone`` would turn
it into an unfitted copy; ``BaseDeepMLP.__sklearn_clone__`` keeps it by
reference instead, so ``GridSearchCV``, ``cross_validate`` and pipelines clone
the new model and still reuse the same fitted layers. A search *over*
``init_from`` values clones the values themselves: there the source must be
wrapped in scikit-learn's ``FrozenEstimator``, which clones to itself (and is
unwrapped here). The source is only ever read.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.utils.validation import check_is_fitted

from ._engine.optim import SOLVERS
from ._transfer import copy_layers_, matching_layers, pretrain_autoencoder_
from ._validation import invalid_combination, invalid_parameter

__all__ = ["KeepsSource", "adopted_embedding", "check_reuse_params", "reuse_warnings",
           "source_estimator",
           "start_network_", "unlabeled_mask"]


# Estimators whose repr is being built (see KeepsSource.__repr__).
_IN_REPR = set()


class KeepsSource:
    """``clone``, ``repr`` and ``get_params`` that hold ``init_from`` by reference.

    Mixed into ``BaseDeepMLP`` before ``BaseEstimator`` (and into nothing
    else: ``check_reuse_params`` recognizes the package's estimators by it).
    """

    def __sklearn_clone__(self):
        """scikit-learn's ``clone``, keeping ``init_from`` as the same fitted estimator.

        ``clone`` would turn the fitted source of transfer learning into an
        unfitted copy; ``GridSearchCV``, ``cross_validate`` and pipelines clone
        this estimator, so its clones share the source (which is only read).
        """
        # scikit-learn's cloning of everything else, on a shallow stand-in
        # without the source (never cloned, so never recursed into).
        stand_in = object.__new__(type(self))
        stand_in.__dict__.update(self.__dict__, init_from=None)
        new = super(KeepsSource, stand_in).__sklearn_clone__()
        new.init_from = self.init_from
        return new

    def __repr__(self, N_CHAR_MAX=700):
        # An init_from chain that leads back to this estimator (refused by fit)
        # would otherwise recurse forever; its second appearance is shown as "(...)".
        if id(self) in _IN_REPR:
            return f"{type(self).__name__}(...)"
        _IN_REPR.add(id(self))
        try:
            return super().__repr__(N_CHAR_MAX)
        finally:
            _IN_REPR.discard(id(self))

    def get_params(self, deep=True):
        """Get the parameters of this estimator.

        As scikit-learn's, except that ``init_from`` is a value, not a
        sub-estimator: its own parameters are not listed with ``deep=True``,
        so ``set_params`` cannot change the source that clones share.

        Parameters
        ----------
        deep : bool, default=True
            Also list the parameters of sub-estimators (there are none besides
            ``init_from``).

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        params = super().get_params(deep=False)
        if deep:
            for key, value in list(params.items()):
                if key != "init_from" and hasattr(value, "get_params") and not isinstance(
                        value, type):
                    params.update((f"{key}__{k}", v) for k, v in value.get_params().items())
        return params


def source_estimator(init_from):
    """The estimator ``init_from`` names: itself, or the one a ``FrozenEstimator`` wraps."""
    return init_from.estimator if isinstance(init_from, FrozenEstimator) else init_from


def check_reuse_params(est, n_hidden, continuing=False):
    """Check the transfer/pretraining hyperparameters against each other.

    Parameters
    ----------
    est : BaseDeepMLP
    n_hidden : int
        Number of hidden layers of the network ``est`` builds.
    continuing : bool, default=False
        A warm start or ``partial_fit`` continues the fitted network:
        ``init_from``, ``reuse_layers`` and ``pretrain`` played their part
        when it was built, and any of its layers may be frozen.

    Raises
    ------
    InvalidParameterError
        Naming the parameter and what to do instead.
    NotFittedError
        If ``init_from`` is not fitted.
    """
    source = source_estimator(est.init_from)
    # (every BaseDeepMLP is a KeepsSource, and nothing else is: no import of _base)
    if source is not None and not isinstance(source, KeepsSource):
        raise invalid_parameter(
            est, "init_from",
            "a fitted DeepMLPClassifier or DeepMLPRegressor, or one wrapped in "
            "sklearn.frozen.FrozenEstimator (for a pipeline, its last step, e.g. pipe[-1]), "
            "or None", est.init_from,
        )
    _check_no_cycle(est)
    if continuing:  # any layer of the fitted network may be frozen
        _check_freeze(est, n_hidden, "hidden layer(s)")
        return
    if source is not None:
        try:
            check_is_fitted(source)
        except NotFittedError:
            raise NotFittedError(
                f"init_from is an unfitted {type(source).__name__}: fit it first (its "
                "hidden layers are what this estimator starts from). In a search over "
                "init_from values, GridSearchCV clones each value, which unfits it: "
                "wrap the fitted model in sklearn.frozen.FrozenEstimator."
            ) from None
    elif est.reuse_layers is not None:
        raise invalid_combination(
            est, "reuse_layers", est.reuse_layers,
            "reuse_layers counts layers copied from init_from, which is None; pass the "
            "fitted model as init_from (or leave reuse_layers=None).",
        )
    if est.reuse_layers is not None and est.reuse_layers > n_hidden:
        raise invalid_combination(
            est, "reuse_layers", est.reuse_layers,
            f"this network has only {n_hidden} hidden layer(s) to copy into.",
        )
    if est.pretrain is not None:
        if not SOLVERS[est.solver].stochastic:
            raise invalid_combination(
                est, "pretrain", est.pretrain,
                f"pretraining trains an autoencoder for pretrain_epochs epochs with a "
                f"mini-batch solver; solver={est.solver!r} is full-batch.",
            )
        if n_hidden == 0:
            raise invalid_combination(
                est, "pretrain", est.pretrain,
                "a network without hidden layers has nothing to pretrain.",
            )
    if est.freeze_layers and source is None and est.pretrain is None:
        raise invalid_combination(
            est, "freeze_layers", est.freeze_layers,
            "only reused (init_from) or pretrained (pretrain) layers can be frozen when a "
            "network is built; freezing freshly initialized layers would keep them random.",
        )
    if est.pretrain is None and est.reuse_layers is not None:
        _check_freeze(est, est.reuse_layers, "layer(s) reused (reuse_layers)")
    else:
        _check_freeze(est, n_hidden, "hidden layer(s)")


def _check_freeze(est, limit, what):
    """``freeze_layers`` within ``limit`` layers; ``unfreeze_after`` needs epochs."""
    freeze = est.freeze_layers
    if freeze:
        if freeze > limit:
            raise invalid_combination(
                est, "freeze_layers", freeze,
                f"this network has only {limit} {what} to freeze.",
            )
        if est.unfreeze_after is not None and not SOLVERS[est.solver].stochastic:
            raise invalid_combination(
                est, "unfreeze_after", est.unfreeze_after,
                f"solver={est.solver!r} runs one full-batch optimization per fit, not "
                "epochs; use unfreeze_after=None (frozen for the whole fit) or a "
                "mini-batch solver.",
            )


def _check_no_cycle(est):
    """``init_from`` must not lead back to ``est`` (clone and get_params would recurse)."""
    seen, source = {id(est)}, source_estimator(est.init_from)
    while source is not None:
        if id(source) in seen:
            raise invalid_combination(  # (a repr of the cycle would recurse forever)
                est, "init_from", f"{type(est.init_from).__name__}(...)",
                "it leads back to this estimator (directly or through its own init_from); "
                "reuse a separate model, e.g. copy.deepcopy(model), or use warm_start=True "
                "to keep training this one.",
            )
        seen.add(id(source))
        source = source_estimator(getattr(source, "init_from", None))


def _layers_to_reuse(est, source, module):
    """How many lower hidden layers to copy from ``source`` (an ``MLP``) into ``module``."""
    n_fit, reason = matching_layers(source, module)
    wanted = est.reuse_layers
    if wanted is None:  # all that fit
        if n_fit == 0:
            raise ValueError(
                f"None of init_from's hidden layers fits this network: {reason}. "
                "Match the first hidden layers' widths and layer options (or set "
                "init_from=None)."
            )
        if est.pretrain is None and est.freeze_layers > n_fit:
            raise invalid_combination(
                est, "freeze_layers", est.freeze_layers,
                f"only {n_fit} layer(s) of init_from fit this network ({reason}), so "
                f"only they are reused and can be frozen.",
            )
        return n_fit
    if wanted > len(source.hidden):
        raise invalid_combination(
            est, "reuse_layers", wanted,
            f"init_from has only {len(source.hidden)} hidden layer(s).",
        )
    if wanted > n_fit:
        raise ValueError(
            f"reuse_layers={wanted} asks for layers that do not fit this network: "
            f"{reason}."
        )
    return wanted


def adopted_embedding(est, n_features):
    """``init_from``'s numeric embedding spec when this fit reuses its layers (else ``None``).

    A network that reuses layers reuses the embedding below them with its
    columns and bins, when it asks for the same embedding (the same
    ``numeric_embedding``, ``numeric_features``, sizes and bins setting) on
    as many features; otherwise its own is fitted, and
    :func:`~._transfer.matching_layers` says when the two do not fit.
    """
    source = source_estimator(est.init_from)
    if source is None or est.reuse_layers == 0 or est.numeric_embedding is None:
        return None
    spec = getattr(source, "_embedding", None)
    fitted = getattr(source, "_fitted_embedding_params", None)
    if spec is None or fitted is None or source.n_features_in_ != n_features:
        return None
    mine = est._embedding_params()
    same = all(np.array_equal(np.asarray(fitted[k], dtype=object),
                              np.asarray(mine[k], dtype=object)) for k in mine)
    return spec if same else None


def start_network_(est, module, *, n_features, pretraining, trainer, seed):
    """Give a freshly built network its starting point: reused layers, then pretraining.

    Parameters
    ----------
    est : BaseDeepMLP
    module : MLP
        The newly initialized network (changed in place).
    n_features : int
        Width of the training ``X``.
    pretraining : callable or None
        Returns the :class:`~._engine.TensorData` to pretrain on (``None``
        when ``est.pretrain`` is ``None``).
    trainer : callable
        ``trainer(autoencoder, criterion, n_rows)`` builds the pretraining net.
    seed : int
        Seed of the pretraining epochs.

    Returns
    -------
    reused_layers : int
        Hidden layers copied from ``init_from`` (0 without it).
    pretrain_losses : list of float or None
        Reconstruction loss of each pretraining epoch (``None`` without
        pretraining).
    """
    reused = 0
    source = source_estimator(est.init_from)
    if source is not None:
        if est.reuse_layers != 0 and source.n_features_in_ != n_features:
            raise ValueError(
                f"init_from was fitted on {source.n_features_in_} features but X has "
                f"{n_features}: its first hidden layer cannot be reused (transform X "
                "to the same features, or set reuse_layers=0 to copy nothing)."
            )
        reused = _layers_to_reuse(est, source.net_.module_, module)
        copy_layers_(source.net_.module_, module, reused)
    if pretraining is None:
        return reused, None
    history, stop = pretrain_autoencoder_(
        module, est._architecture(), est.kernel_initializer, pretraining(),
        trainer=trainer, epochs=est.pretrain_epochs, seed=seed,
    )
    if stop == "interrupted":  # a Ctrl-C: the whole fit stops, the old model stays
        raise KeyboardInterrupt
    return reused, [float(h["train_loss"]) for h in history]


def reuse_warnings(est):
    """Warnings about the layers ``est`` reused when its network was built.

    Layers fit by their parameters' shapes; an activation other than the one
    the weights were trained with is allowed (the weights are copied as they
    are) but worth knowing about.
    """
    source = source_estimator(est.init_from)
    if not est.reused_layers_ or source is None or not hasattr(source, "net_"):
        return []
    pairs = zip(source.net_.module_.hidden[: est.reused_layers_], est.module_.hidden,
                strict=False)
    differ = [i + 1 for i, (a, b) in enumerate(pairs)
              if repr(a.activation) != repr(b.activation)]
    if not differ:
        return []
    return [
        f"Reused hidden layer(s) {differ} were trained with another activation in init_from "
        f"({source.net_.module_.hidden[differ[0] - 1].activation} there, "
        f"{est.module_.hidden[differ[0] - 1].activation} here); their weights are copied as "
        "they are."
    ]


def unlabeled_mask(y, classes=None):
    """Rows of a 1-D ``y`` marked unlabeled with -1 (scikit-learn's semi-supervised convention).

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
    classes : array-like or None
        ``partial_fit``'s classes, which must not contain -1.

    Returns
    -------
    ndarray of bool
    """
    # (as objects: a plain asarray turns a list such as ["ant", -1] into strings)
    if classes is not None and any(_is_minus_one(c)
                                   for c in np.asarray(classes, dtype=object).ravel()):
        raise ValueError(
            "classes contains -1, which marks unlabeled rows when pretrain is set; "
            "list only the real classes."
        )
    if y.dtype.kind in "iuf":
        return y == -1
    if y.dtype.kind == "O":
        return np.fromiter((_is_minus_one(v) for v in y), dtype=bool, count=len(y))
    return np.zeros(len(y), dtype=bool)


def _is_minus_one(value):
    return isinstance(value, Integral | float | np.floating) and not isinstance(
        value, bool) and value == -1
