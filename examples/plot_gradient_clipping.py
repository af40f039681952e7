"""Gradient clipping: a learning rate that blows up training, tamed by clip_norm
==============================================================================

A 10 x 100 ReLU network on the standardized digits, momentum SGD (0.9) at a
learning rate of 0.1, batch 32: too high a rate for this depth. Unclipped, a
few large gradients throw the weights off until the loss becomes NaN in the
third epoch; the estimator stops there and keeps the last finite weights
(with a ``ConvergenceWarning`` that suggests, among others, clipping). The
same network and seed with ``clip_norm=1`` (each step's gradient rescaled
to a global L2 norm of at most 1, its direction kept) trains to a training
loss near zero and 97 % test accuracy. ``clip_value=0.1`` (each component
cut to [-0.1, 0.1]) also keeps training finite, but it changes the
gradient's direction and at this rate the loss wanders (about 54 % test
accuracy); clipping by norm keeps the direction, as the chapter notes. Left: the
training loss per epoch (``loss_curve_``). Right: the gradient norm reaching
the first layer at the end of each epoch, measured before any clipping
(``diagnostics=True``).

Clipping is a safety net against rare exploding steps (the chapter uses it
mostly for recurrent networks, where BatchNorm is hard to apply); a rate
that is too high for every step is better lowered (see the learning-rate
finder example).

Run: python examples/plot_gradient_clipping.py  (writes gradient_clipping.png)
"""

import argparse
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sklearn_deepnet import DeepMLPClassifier  # noqa: E402

CONFIGS = {"no clipping": {}, "clip_norm=1": {"clip_norm": 1.0},
           "clip_value=0.1": {"clip_value": 0.1}}


def main(epochs, learning_rate, output):
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    fig, (ax_loss, ax_grad) = plt.subplots(1, 2, figsize=(11, 4))
    for name, params in CONFIGS.items():
        clf = DeepMLPClassifier((100,) * 10, solver="momentum", momentum=0.9,
                                learning_rate_init=learning_rate, batch_size=32, alpha=0.0,
                                max_iter=epochs, n_iter_no_change=epochs, diagnostics=True,
                                random_state=0, **params)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf.fit(X_train, y_train)
        diverged = any("diverged" in str(w.message) for w in caught)
        frame = clf.history_frame()
        ax_loss.plot(range(1, len(clf.loss_curve_) + 1), clf.loss_curve_, marker="o",
                     markersize=3, label=name)
        ax_grad.plot(frame.index, frame["grad_norm_1"], marker="o", markersize=3, label=name)
        print(f"{name:<15} training loss per epoch: first {clf.loss_curve_[0]:.3f}, "
              f"highest {max(clf.loss_curve_):.3f}, last {clf.loss_curve_[-1]:.3f}; "
              f"test accuracy {clf.score(X_test, y_test):.3f}"
              + (f"; diverged in epoch {clf.n_iter_ + 1}, stopped" if diverged else ""))
    ax_loss.set(xlabel="epoch", ylabel="training loss", yscale="log",
                title=f"10 x 100 ReLU, momentum SGD at {learning_rate}")
    ax_grad.set(xlabel="epoch", ylabel="gradient norm, layer 1 (before clipping)",
                yscale="log", title="Gradient reaching the first layer")
    for ax in (ax_loss, ax_grad):
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    print(f"figure saved to {output}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--output", default="gradient_clipping.png")
    args = parser.parse_args()
    main(args.epochs, args.learning_rate, args.output)
