"""Finding a learning rate: grow it exponentially, watch where the loss blows up
=============================================================================

``find_learning_rate`` trains a copy of the estimator for a few hundred steps
with the rate growing from 1e-6 to 10 and suggests a tenth of the rate where
the smoothed loss was lowest (the chapter's rule of thumb). Left: the loss per
step against the rate. Right: full fits at a tenth of the suggestion, at the
suggestion, at the rate of the loss minimum (ten times the suggestion) and at
ten times that. Too low learns slowly; the suggestion is a safe start; the
minimum's rate is often faster still for a short run but near the edge; past
the blow-up, training diverges (the estimator then keeps the last finite epoch
and warns).

Run: python examples/plot_lr_finder.py  (writes lr_finder.png)
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

from sklearn_deepnet import DeepMLPClassifier, find_learning_rate  # noqa: E402


def main(epochs, n_steps, output):
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    clf = DeepMLPClassifier((128, 128), activation="elu", solver="momentum", batch_size=32,
                            max_iter=epochs, n_iter_no_change=epochs, random_state=0)
    found = find_learning_rate(clf, X_train, y_train, n_steps=n_steps)
    best = found.suggested_learning_rate
    print(f"suggested learning rate: {best:.3g} ({len(found.losses)} steps before the "
          "loss blew up)")
    fig, (ax_find, ax_fit) = plt.subplots(1, 2, figsize=(11, 4))
    found.plot(ax=ax_find)
    for factor in (0.1, 1.0, 10.0, 100.0):
        rate = best * factor
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # incl. the divergence
            fitted = clf.set_params(learning_rate_init=rate).fit(X_train, y_train)
        ax_fit.plot(range(1, len(fitted.loss_curve_) + 1), fitted.loss_curve_, "o-",
                    markersize=3, label=f"{rate:.2g} ({factor:g} x suggested)")
        last = ("diverged in its first epoch" if fitted.loss_ is None
                else f"final training loss {fitted.loss_:.4f}")
        print(f"learning_rate_init={rate:<8.3g} {len(fitted.loss_curve_):>2} epochs, {last}, "
              f"test accuracy {fitted.score(X_test, y_test):.3f}")
    ax_fit.set(xlabel="epoch", ylabel="training log-loss", yscale="log",
               title=f"Up to {epochs} epochs at four rates (a dot per epoch)")
    ax_fit.legend()
    for ax in (ax_find, ax_fit):
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    print(f"figure saved to {output}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--output", default="lr_finder.png")
    args = parser.parse_args()
    main(args.epochs, args.steps, args.output)
