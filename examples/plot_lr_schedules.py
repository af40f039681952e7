"""Learning-rate schedules: the chapter's seven, each one keyword of the estimator
===============================================================================

The same 3 x 64 ReLU network trains on the digits with momentum SGD under every
``learning_rate`` schedule, holding out 10 % for validation (``early_stopping``
with a patience as long as the run, so every epoch runs and the best epoch's
weights are kept). Left: the rate at the start of each epoch (the history's
``lr`` column). Right: the validation log-loss. A constant high rate keeps
bouncing; schedules that anneal settle lower. 1cycle warms up to its peak
(``learning_rate_init``) and ends far below it; "adaptive" is MLPClassifier's
rule (divide by 5 when the validation score stops improving); "plateau"
halves the rate after ``lr_patience`` epochs without a lower validation loss;
"invscaling" (MLPClassifier's ``lr / t ** power_t`` over steps) decays fast.

Run: python examples/plot_lr_schedules.py  (writes lr_schedules.png)
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


def schedules(epochs):
    """Each schedule's extra hyperparameters, scaled to the run's length."""
    return {
        "constant": {},
        "invscaling": dict(power_t=0.5),
        "adaptive": dict(n_iter_no_change=2, tol=1e-3),  # (overrides the patience)
        "power": dict(decay_steps=100, power_t=1.0),
        "exponential": dict(decay_steps=10 * epochs),  # steps: / 10 over the run
        "piecewise": dict(lr_milestones=[epochs // 3, 2 * epochs // 3],
                          lr_values=[0.05, 0.01, 0.002]),
        "plateau": dict(lr_patience=2, lr_factor=0.5),
        "1cycle": dict(learning_rate_init=0.1),  # the peak; it starts at a tenth
    }


def main(epochs, output):
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    fig, (ax_lr, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for name, extra in schedules(epochs).items():
        params = dict(hidden_layer_sizes=(64, 64, 64), solver="momentum",
                      learning_rate_init=0.05, batch_size=128, max_iter=epochs,
                      early_stopping=True, n_iter_no_change=epochs, random_state=0)
        params.update(learning_rate=name, **extra)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = DeepMLPClassifier(**params).fit(X, y)
        rates = clf.history_[:, "lr"]
        epochs_run = range(1, len(rates) + 1)
        ax_lr.plot(epochs_run, rates, label=name)
        valid = clf.history_[:, "valid_loss"]
        ax_loss.plot(epochs_run, valid, label=name)
        print(f"{name:<12} validation log-loss: last {valid[-1]:.4f}, best {min(valid):.4f}"
              f"   rate {rates[0]:.3g} -> {rates[-1]:.3g}")
    ax_lr.set(xlabel="epoch", ylabel="learning rate at the epoch's start", yscale="log",
              title="learning_rate=...")
    ax_loss.set(xlabel="epoch", ylabel="validation log-loss", yscale="log",
                title="Validation loss (digits, 3 x 64 ReLU, momentum SGD)")
    for ax in (ax_lr, ax_loss):
        ax.grid(True, alpha=0.3)
    ax_loss.legend(ncol=2, fontsize=8)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    print(f"figure saved to {output}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--output", default="lr_schedules.png")
    args = parser.parse_args()
    main(args.epochs, args.output)
