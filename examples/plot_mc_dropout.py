"""Monte Carlo dropout: many stochastic passes give better probabilities and an uncertainty
========================================================================================

``mc_dropout=N`` keeps dropout on at prediction time and averages ``N`` passes
(BatchNorm stays in inference mode); it is a prediction-time parameter, so one
fitted model serves every ``N`` through ``set_params``.

Left: a regressor trained on noisy points of ``sin(2x)`` with a gap in the
middle and nothing beyond ``|x| = 3``; ``predict(X, return_std=True)`` returns the
mean and the spread of the passes. The spread grows only a little off the data
(seed 0: mean std 0.16 for ``|x| < 3``, 0.19 beyond 3.5) while the error there is
far larger: MC dropout's uncertainty is a rough guide, not a calibrated
interval, least of all far from the training data.
Right: a digits classifier trained long enough to be overconfident (dropout
0.2, 100 epochs): its held-out log-loss with one deterministic pass (dashed)
and with ``N`` Monte Carlo passes.

Run: python examples/plot_mc_dropout.py  (writes mc_dropout.png)
"""

import argparse
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.metrics import log_loss  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sklearn_deepnet import DeepMLPClassifier, DeepMLPRegressor  # noqa: E402

PASSES = (2, 5, 10, 20, 50, 100)


def regression(ax, epochs):
    rng = np.random.RandomState(0)
    x = np.r_[rng.uniform(-3, -0.7, 60), rng.uniform(0.7, 3, 60)]
    y = np.sin(2 * x) + rng.normal(0, 0.1, len(x))
    reg = DeepMLPRegressor((128, 128), dropout=0.1, learning_rate_init=3e-3, batch_size=16,
                           max_iter=epochs, n_iter_no_change=epochs, random_state=0,
                           mc_dropout=100).fit(x[:, None], y)
    grid = np.linspace(-4.5, 4.5, 400)
    mean, std = reg.predict(grid[:, None], return_std=True)
    ax.fill_between(grid, mean - 2 * std, mean + 2 * std, alpha=0.3, label="mean ± 2 std")
    ax.plot(grid, mean, label="MC mean (100 passes)")
    ax.plot(grid, np.sin(2 * grid), "k:", label="sin(2x)")
    ax.plot(x, y, ".", color="gray", markersize=4, label="training points")
    ax.set(xlabel="x", ylabel="y", ylim=(-3, 3),
           title="DeepMLPRegressor: spread of the passes")
    ax.legend(loc="lower left", fontsize=8)
    inside, outside = std[np.abs(grid) < 3].mean(), std[np.abs(grid) > 3.5].mean()
    print(f"regression: mean std {inside:.3f} where there was data (|x| < 3), "
          f"{outside:.3f} beyond it (|x| > 3.5)")


def classification(ax, epochs):
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    clf = DeepMLPClassifier((128, 128), dropout=0.2, max_iter=epochs, n_iter_no_change=epochs,
                            random_state=0).fit(X_train, y_train)
    one = log_loss(y_test, clf.predict_proba(X_test))
    losses = [log_loss(y_test, clf.set_params(mc_dropout=n).predict_proba(X_test))
              for n in PASSES]
    ax.plot(PASSES, losses, "o-", label="MC dropout")
    ax.axhline(one, color="k", linestyle="--", label="one deterministic pass")
    ax.set(xscale="log", xlabel="mc_dropout (passes)", ylabel="held-out log-loss",
           title="DeepMLPClassifier on the digits")
    ax.legend()
    print(f"classification: held-out log-loss {one:.3f} with one pass, "
          + ", ".join(f"{loss:.3f} with {n}" for n, loss in zip(PASSES, losses, strict=True)))


def main(epochs, output):
    fig, (ax_reg, ax_clf) = plt.subplots(1, 2, figsize=(11, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        regression(ax_reg, 4 * epochs)
        classification(ax_clf, epochs)
    for ax in (ax_reg, ax_clf):
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    print(f"figure saved to {output}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--output", default="mc_dropout.png")
    args = parser.parse_args()
    main(args.epochs, args.output)
