"""Regularization: L2, L1, max-norm, dropout and early stopping on a network that overfits
==========================================================================================

400 of the digits with 30 % of their training labels replaced by random
ones, and a 2 x 256 ReLU network trained on them for 100 epochs (Adam, batch
32): unregularized, it memorizes every label, the wrong ones included (100 %
training accuracy), and scores 0.82 on the 1,397 held-out images, whose labels
are clean. Each regularizer of the chapter is one keyword: an L2 penalty
(``alpha=1``: 0.89), an L1 penalty (``alpha=0.1, l1_ratio=1``: 0.88),
dropout after each hidden layer (``dropout=0.5``: 0.86) and early stopping on a
held-out tenth that keeps the best epoch's weights (``early_stopping``: 0.84
after 13 epochs) all fit the noise less and generalize better. Max-norm on
each unit's incoming weights (``max_norm=1``: 0.81) does not help here: with
bounded weights the network still memorizes the noise (it is usually paired
with dropout). Left: training and held-out accuracy. Middle and right: what
each does to the first layer's weights, the share of weights below 1e-3 in
absolute value (L1 drives almost all to zero, L2 shrinks them without zeroing
most) and the largest incoming-weight norm of a unit (max-norm caps it at 1).

The strengths are reasonable first values, not tuned ones; on real problems
search over them (``GridSearchCV``) and expect them to interact.

Run: python examples/plot_regularization.py  (writes regularization.png)
"""

import argparse
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sklearn_deepnet import DeepMLPClassifier  # noqa: E402

CONFIGS = {
    "none": dict(alpha=0.0),
    "L2 (alpha=1)": dict(alpha=1.0),
    "L1 (alpha=0.1, l1_ratio=1)": dict(alpha=0.1, l1_ratio=1.0),
    "max-norm 1": dict(alpha=0.0, max_norm=1.0),
    "dropout 0.5": dict(alpha=0.0, dropout=0.5),
    "early stopping": dict(alpha=0.0, early_stopping=True, n_iter_no_change=10),
}


def main(epochs, n_train, noise, output):
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, train_size=n_train, stratify=y, random_state=0)
    rng = np.random.default_rng(0)  # replace a share of the training labels by random ones
    flip = rng.random(len(y_train)) < noise
    y_train = y_train.copy()
    y_train[flip] = rng.integers(0, 10, flip.sum())
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    train_acc, test_acc, small, largest = {}, {}, {}, {}
    for name, params in CONFIGS.items():
        params = {"n_iter_no_change": epochs, **params}
        clf = DeepMLPClassifier((256, 256), solver="adam", batch_size=32, max_iter=epochs,
                                tol=0.0, random_state=0, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X_train, y_train)
        weights = clf.coefs_[0]  # (n_features, n_units), as in MLPClassifier
        train_acc[name], test_acc[name] = clf.score(X_train, y_train), clf.score(X_test, y_test)
        small[name] = float(np.mean(np.abs(weights) < 1e-3))
        largest[name] = float(np.linalg.norm(weights, axis=0).max())
        print(f"{name:<28} train {train_acc[name]:.3f}  held-out {test_acc[name]:.3f}  "
              f"({clf.n_iter_} epochs); first layer: {small[name]:.0%} of weights < 1e-3, "
              f"largest unit norm {largest[name]:.2f}")
    names = list(CONFIGS)
    pos = np.arange(len(names))
    fig, (ax_acc, ax_w, ax_n) = plt.subplots(1, 3, figsize=(14, 4.2),
                                             gridspec_kw={"width_ratios": [2, 1, 1]})
    ax_acc.barh(pos - 0.2, [train_acc[n] for n in names], 0.4, label="training")
    ax_acc.barh(pos + 0.2, [test_acc[n] for n in names], 0.4, label="held-out")
    low = min(test_acc.values())
    ax_acc.set(yticks=pos, yticklabels=names, xlabel="accuracy",
               xlim=(max(0.0, low - 0.05), 1.005),
               title=f"2 x 256 ReLU, {n_train} digits ({noise:.0%} noisy labels), "
                     f"up to {epochs} epochs")
    ax_acc.legend(loc="lower left")
    ax_w.barh(pos, [small[n] for n in names], color="tab:green")
    ax_w.set(yticks=pos, yticklabels=[], xlabel="share of |w| < 1e-3",
             title="First layer: near-zero weights")
    ax_n.barh(pos, [largest[n] for n in names], color="tab:purple")
    ax_n.axvline(1.0, color="k", linestyle=":", linewidth=1)
    ax_n.set(yticks=pos, yticklabels=[], xlabel="largest incoming-weight norm",
             title="First layer: largest unit norm")
    for ax in (ax_acc, ax_w, ax_n):
        ax.invert_yaxis()
        ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    print(f"figure saved to {output}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--n-train", type=int, default=400)
    parser.add_argument("--noise", type=float, default=0.3, help="share of random labels")
    parser.add_argument("--output", default="regularization.png")
    args = parser.parse_args()
    main(args.epochs, args.n_train, args.noise, args.output)
