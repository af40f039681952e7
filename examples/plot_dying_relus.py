"""Dying ReLUs at a high learning rate, and the leaky ReLU that does not die
=========================================================================

A 5 x 100 network on the standardized digits, Adam at a learning rate of 0.05
(twenty times too high), with ``diagnostics=True``. Large updates push many
ReLU units to negative pre-activations for every input; such a unit outputs 0
and gets no gradient, so it never comes back (the chapter's dying ReLUs).
Left: the fraction of dead units in each hidden layer, epoch by epoch (from
``history_frame()``). Right: the validation accuracy (10 % held out) of the
same network with ReLU and with leaky ReLU (slope 0.2 for negative inputs:
its units always pass some gradient and cannot die). The rate is too high for
both (their losses jump), but the leaky network keeps all its units and
learns; the ReLU network loses most of them, and once its last hidden layer
is entirely dead (epoch 8 here) it predicts one class for every image.

Run: python examples/plot_dying_relus.py  (writes dying_relus.png)
"""

import argparse
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sklearn_deepnet import DeepMLPClassifier  # noqa: E402

DEPTH = 5


def main(epochs, learning_rate, output):
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    fig, (ax_dead, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for activation in ("relu", "leaky_relu"):
        clf = DeepMLPClassifier((100,) * DEPTH, activation=activation, solver="adam",
                                learning_rate_init=learning_rate, batch_size=64,
                                max_iter=epochs, early_stopping=True,
                                n_iter_no_change=epochs, diagnostics=True, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
        frame = clf.history_frame()
        ax_loss.plot(frame.index, frame["valid_score"], marker="o", markersize=3,
                     label=activation)
        if activation == "relu":
            for layer in range(1, DEPTH + 1):
                ax_dead.plot(frame.index, frame[f"dead_fraction_{layer}"], marker="o",
                             markersize=3, label=f"layer {layer}")
            dead = [frame[f"dead_fraction_{i}"].iloc[-1] for i in range(1, DEPTH + 1)]
            detail = "dead units per layer after the last epoch " + ", ".join(
                f"{d:.0%}" for d in dead)
        else:
            detail = "cannot die"
        print(f"{activation:<10} best validation accuracy {clf.best_validation_score_:.3f}; "
              f"{detail}")
    ax_dead.set(xlabel="epoch", ylabel="fraction of dead units", ylim=(-0.02, 1.02),
                title=f"ReLU, Adam at {learning_rate}: dead units per layer")
    ax_loss.set(xlabel="epoch", ylabel="validation accuracy", ylim=(0, 1),
                title="Validation accuracy: ReLU vs leaky ReLU")
    for ax in (ax_dead, ax_loss):
        ax.legend()
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    print(f"figure saved to {output}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--output", default="dying_relus.png")
    args = parser.parse_args()
    main(args.epochs, args.learning_rate, args.output)
