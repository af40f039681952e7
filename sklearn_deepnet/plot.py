"""Plots of how a network trained, following scikit-learn's Display convention.

Each display is built from a fitted estimator with ``XxxDisplay.from_estimator(est)``
(or from arrays with its constructor) and drawn with ``.plot(ax=...)``; after
plotting it holds ``ax_`` (the Axes), ``figure_`` and ``lines_`` (the drawn
artists). matplotlib is imported only when a display is plotted; it is an
optional dependency (``pip install "sklearn-deepnet[plot]"``).

- :class:`TrainingHistoryDisplay`: training (and validation) loss, validation
  score and learning rate per epoch;
- :class:`GradientFlowDisplay`: the gradient norm reaching each layer, one
  line per epoch, on a log scale (needs ``diagnostics=True``);
- :class:`ActivationStatsDisplay`: each hidden layer's activation mean and
  standard deviation, and the fraction of dead units or saturated outputs
  (needs ``diagnostics=True``).
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

__all__ = ["ActivationStatsDisplay", "GradientFlowDisplay", "TrainingHistoryDisplay"]


def _history(estimator):
    check_is_fitted(estimator)
    return estimator.history_


def _diagnostics(estimator, what):
    """Array (epochs, layers) of one diagnostics statistic, epochs where it was recorded."""
    history = _history(estimator)
    rows = [(i + 1, h["diagnostics"][what]) for i, h in enumerate(history) if "diagnostics" in h]
    if not rows:
        raise ValueError(
            f"{type(estimator).__name__} was fitted without diagnostics: refit it with "
            "diagnostics=True to record per-layer statistics."
        )
    epochs, values = zip(*rows, strict=True)
    return np.asarray(epochs), np.asarray(values, dtype=float)


def _axes(ax, n_panels, width=4.5):
    """A list of ``n_panels`` Axes: ``ax`` (one Axes or a sequence) or a new figure's."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, axes = plt.subplots(1, n_panels, figsize=(width * n_panels, 3.8), squeeze=False)
        return list(axes[0])
    axes = list(np.ravel(ax)) if isinstance(ax, list | tuple | np.ndarray) else [ax]
    return axes[:n_panels]


class TrainingHistoryDisplay:
    """Loss, validation score and learning rate per epoch.

    Parameters
    ----------
    epochs : array-like of int
        Epoch numbers (1, 2, ...).
    train_loss : array-like of float
        Training loss of each epoch.
    valid_loss, valid_score : array-like of float or None, default=None
        Validation loss and score (with early stopping).
    learning_rate : array-like of float or None, default=None
        Rate at the start of each epoch.
    estimator_name : str or None, default=None
        Shown in the titles.

    Attributes
    ----------
    ax_ : list of matplotlib Axes
        The panels: loss, then validation score and learning rate when given.
    figure_ : matplotlib Figure
    lines_ : dict
        Panel name -> list of the ``Line2D`` artists drawn on it.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn_deepnet import DeepMLPClassifier
    >>> from sklearn_deepnet.plot import TrainingHistoryDisplay
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = DeepMLPClassifier((32,), max_iter=3, random_state=0).fit(X / 16, y)
    >>> display = TrainingHistoryDisplay.from_estimator(clf)  # doctest: +SKIP
    """

    def __init__(self, *, epochs, train_loss, valid_loss=None, valid_score=None,
                 learning_rate=None, estimator_name=None):
        self.epochs = epochs
        self.train_loss = train_loss
        self.valid_loss = valid_loss
        self.valid_score = valid_score
        self.learning_rate = learning_rate
        self.estimator_name = estimator_name

    @classmethod
    def from_estimator(cls, estimator, *, ax=None):
        """Build the display from a fitted estimator's history and plot it.

        Parameters
        ----------
        estimator : DeepMLPClassifier or DeepMLPRegressor
            A fitted estimator.
        ax : matplotlib Axes, sequence of Axes or None, default=None
            See :meth:`plot`.

        Returns
        -------
        TrainingHistoryDisplay
        """
        history = _history(estimator)

        def column(key):
            values = [h.get(key) for h in history]
            return None if all(v is None for v in values) else np.array(
                [np.nan if v is None else v for v in values], dtype=float)

        return cls(
            epochs=np.arange(1, len(history) + 1), train_loss=column("train_loss"),
            valid_loss=column("valid_loss"), valid_score=column("valid_score"),
            learning_rate=column("lr"), estimator_name=type(estimator).__name__,
        ).plot(ax=ax)

    def plot(self, ax=None):
        """Draw the panels.

        Parameters
        ----------
        ax : matplotlib Axes, sequence of Axes or None, default=None
            One Axes (the loss panel only) or one Axes per panel (loss,
            validation score if given, learning rate if given); ``None``
            makes a new figure with every panel.

        Returns
        -------
        self : TrainingHistoryDisplay
        """
        panels = ["loss"] + (["score"] if self.valid_score is not None else []) + (
            ["learning rate"] if self.learning_rate is not None else [])
        axes = _axes(ax, len(panels))
        self.lines_ = {}
        name = f"{self.estimator_name}: " if self.estimator_name else ""
        for panel, axis in zip(panels, axes, strict=False):
            if panel == "loss":
                lines = axis.plot(self.epochs, self.train_loss, label="training loss")
                if self.valid_loss is not None:
                    lines += axis.plot(self.epochs, self.valid_loss, label="validation loss")
                axis.set(xlabel="epoch", ylabel="loss", title=f"{name}loss")
                axis.legend()
            elif panel == "score":
                lines = axis.plot(self.epochs, self.valid_score, color="C2",
                                  label="validation score")
                axis.set(xlabel="epoch", ylabel="validation score",
                         title=f"{name}validation score")
            else:
                lines = axis.plot(self.epochs, self.learning_rate, color="C3",
                                  label="learning rate")
                axis.set(xlabel="epoch", ylabel="learning rate", yscale="log",
                         title=f"{name}learning rate")
            axis.grid(True, alpha=0.3)
            self.lines_[panel] = lines
        self.ax_ = axes
        self.figure_ = axes[0].figure
        return self


class GradientFlowDisplay:
    """The gradient norm reaching each layer's weights, one line per epoch, log scale.

    A line that falls steeply toward layer 1 shows vanishing gradients; one
    that rises, exploding gradients; a flat line, gradients that reach every
    layer at the same scale.

    Parameters
    ----------
    grad_norms : array-like of shape (n_epochs, n_linear_layers)
        Gradient norm per epoch and linear layer (output layer last).
    epochs : array-like of int
        The epoch of each row.
    estimator_name : str or None, default=None

    Attributes
    ----------
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure
    lines_ : list of Line2D
        One per epoch.
    """

    def __init__(self, *, grad_norms, epochs, estimator_name=None):
        self.grad_norms = grad_norms
        self.epochs = epochs
        self.estimator_name = estimator_name

    @classmethod
    def from_estimator(cls, estimator, *, ax=None):
        """Build the display from an estimator fitted with ``diagnostics=True`` and plot it.

        Parameters
        ----------
        estimator : DeepMLPClassifier or DeepMLPRegressor
        ax : matplotlib Axes or None, default=None

        Returns
        -------
        GradientFlowDisplay
        """
        epochs, norms = _diagnostics(estimator, "grad_norm")
        return cls(grad_norms=norms, epochs=epochs,
                   estimator_name=type(estimator).__name__).plot(ax=ax)

    def plot(self, ax=None):
        """Draw one line per epoch across the layers.

        Parameters
        ----------
        ax : matplotlib Axes or None, default=None
            Where to draw; a new figure when ``None``.

        Returns
        -------
        self : GradientFlowDisplay
        """
        import matplotlib.pyplot as plt

        axis = _axes(ax, 1, width=6)[0]
        norms = np.asarray(self.grad_norms, dtype=float)
        n_layers = norms.shape[1]
        layers = np.arange(1, n_layers + 1)
        colors = plt.get_cmap("viridis")(np.linspace(0, 1, max(len(norms), 2)))
        self.lines_ = []
        for k, (epoch, row) in enumerate(zip(self.epochs, norms, strict=True)):
            label = f"epoch {epoch}" if k in (0, len(norms) - 1) else None
            self.lines_ += axis.plot(layers, row, marker="o", markersize=3, color=colors[k],
                                     label=label)
        axis.set_yscale("log")
        ticks = list(layers) if n_layers <= 12 else list(layers[:: max(1, n_layers // 10)])
        axis.set_xticks(ticks, [str(t) if t < n_layers else "out" for t in ticks])
        axis.set(xlabel="layer (1 = next to the input, out = output layer)",
                 ylabel="gradient norm of the weights",
                 title=f"{self.estimator_name + ': ' if self.estimator_name else ''}"
                       "gradient flow")
        axis.legend()
        axis.grid(True, alpha=0.3)
        self.ax_, self.figure_ = axis, axis.figure
        return self


class ActivationStatsDisplay:
    """Each hidden layer's activation mean and standard deviation at one epoch.

    With a second Axes, the fraction of dead units (ReLU) or of saturated
    outputs (logistic, tanh) per layer as bars.

    Parameters
    ----------
    mean, std : array-like of shape (n_hidden,)
        Activation mean and standard deviation per hidden layer.
    dead_fraction, saturated_fraction : array-like of shape (n_hidden,) or None
        NaN (or ``None``) where the activation cannot die or saturate.
    epoch : int
        The epoch they were measured after.
    estimator_name : str or None, default=None

    Attributes
    ----------
    ax_ : list of matplotlib Axes
    figure_ : matplotlib Figure
    lines_ : dict
        ``"mean"``, ``"std"`` (Line2D lists) and ``"fraction"`` (bar container).
    """

    def __init__(self, *, mean, std, dead_fraction=None, saturated_fraction=None, epoch=None,
                 estimator_name=None):
        self.mean = mean
        self.std = std
        self.dead_fraction = dead_fraction
        self.saturated_fraction = saturated_fraction
        self.epoch = epoch
        self.estimator_name = estimator_name

    @classmethod
    def from_estimator(cls, estimator, *, epoch=-1, ax=None):
        """Build the display from an estimator fitted with ``diagnostics=True`` and plot it.

        Parameters
        ----------
        estimator : DeepMLPClassifier or DeepMLPRegressor
        epoch : int, default=-1
            Which recorded epoch to show (an index into the recorded epochs:
            -1 is the last, 0 the first).
        ax : matplotlib Axes, sequence of Axes or None, default=None
            See :meth:`plot`.

        Returns
        -------
        ActivationStatsDisplay
        """
        stats = {k: _diagnostics(estimator, k) for k in (
            "act_mean", "act_std", "dead_fraction", "saturated_fraction")}
        epochs = stats["act_mean"][0]
        return cls(
            mean=stats["act_mean"][1][epoch], std=stats["act_std"][1][epoch],
            dead_fraction=stats["dead_fraction"][1][epoch],
            saturated_fraction=stats["saturated_fraction"][1][epoch],
            epoch=int(epochs[epoch]), estimator_name=type(estimator).__name__,
        ).plot(ax=ax)

    def _fraction(self):
        for values, label in ((self.dead_fraction, "dead units"),
                              (self.saturated_fraction, "saturated outputs")):
            if values is not None and not np.all(np.isnan(np.asarray(values, dtype=float))):
                return np.asarray(values, dtype=float), label
        return None, None

    def plot(self, ax=None):
        """Draw mean and standard deviation per layer (and the fraction, on a second Axes).

        Parameters
        ----------
        ax : matplotlib Axes, sequence of Axes or None, default=None
            One Axes (mean and standard deviation only) or two (the second
            for the dead or saturated fraction, when the activation has one);
            ``None`` makes a new figure.

        Returns
        -------
        self : ActivationStatsDisplay
        """
        fraction, label = self._fraction()
        axes = _axes(ax, 2 if fraction is not None else 1)
        layers = np.arange(1, len(self.mean) + 1)
        name = f"{self.estimator_name}: " if self.estimator_name else ""
        when = f" after epoch {self.epoch}" if self.epoch is not None else ""
        first = axes[0]
        self.lines_ = {"mean": first.plot(layers, self.mean, marker="o", markersize=3,
                                          label="mean"),
                       "std": first.plot(layers, self.std, marker="s", markersize=3,
                                         label="standard deviation")}
        first.axhline(0, color="gray", linewidth=0.8)
        first.set(xlabel="hidden layer", ylabel="activation output",
                  title=f"{name}activations{when}")
        first.legend()
        first.grid(True, alpha=0.3)
        if fraction is not None and len(axes) > 1:
            self.lines_["fraction"] = axes[1].bar(layers, fraction, color="C3")
            axes[1].set(xlabel="hidden layer", ylabel=f"fraction of {label}", ylim=(0, 1),
                        title=f"{label.capitalize()}{when}")
            axes[1].grid(True, alpha=0.3)
        self.ax_, self.figure_ = axes, first.figure
        return self
