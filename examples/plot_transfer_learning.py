"""Transfer learning: reuse the lower layers of a network trained on a related task
================================================================================

Task A: tell the ten digits apart, on half of the digits images (plenty of
labels). Task B: tell odd from even digits on the other images, with only a
few labeled ones. A network for B starts either from scratch or from A's
hidden layers (``init_from=model_a``; the output layer is always new), trained
in three ways: everything fine-tuned; the reused layers frozen for good
(``freeze_layers=2``: only the new output layer learns); frozen for the first
20 epochs, then fine-tuned (``unfreeze_after=20``, the chapter's recipe). The
figure shows test accuracy on B against the number of labeled B images, each
point the mean over seeds: A's layers already separate the digits, so they
help most when B's labels are fewest.

Reuse helps only when the tasks share features: with A = digits 0-4 and
B = telling 5-9 apart, A's layers were no better than the raw 8 x 8 pixels and
reusing them did not help (logistic regression on A's features: 0.57 test
accuracy from 10 labels, on the pixels: 0.66). Fashion-MNIST, where it helps
in the chapter's setting, is in benchmarks/bench_chapter_techniques.py.

Run: python examples/plot_transfer_learning.py  (writes transfer_learning.png)
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

WAYS = {
    "from scratch": {},
    "reuse A, fine-tune all": dict(reuse=True),
    "reuse A, frozen": dict(reuse=True, freeze_layers=2),
    "reuse A, frozen 20 epochs": dict(reuse=True, freeze_layers=2, unfreeze_after=20),
}


def main(sizes, n_seeds, epochs, output):
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    X_a, X_rest, y_a, y_rest = train_test_split(X, y, test_size=0.5, stratify=y,
                                                random_state=0)
    net = dict(hidden_layer_sizes=(128, 64), batch_size=16, n_iter_no_change=epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model_a = DeepMLPClassifier(**net, max_iter=30, random_state=0).fit(X_a, y_a)
    X_b, X_test, digit_b, digit_test = train_test_split(X_rest, y_rest, test_size=0.5,
                                                        stratify=y_rest, random_state=0)
    y_b, y_test = digit_b % 2, digit_test % 2  # task B: odd or even
    scores = {way: np.zeros((len(sizes), n_seeds)) for way in WAYS}
    for i, n in enumerate(sizes):
        for seed in range(n_seeds):
            rows = np.random.RandomState(seed).permutation(len(y_b))[:n]
            for way, extra in WAYS.items():
                extra = dict(extra)
                if extra.pop("reuse", False):
                    extra["init_from"] = model_a
                clf = DeepMLPClassifier(**{**net, "batch_size": min(16, n)}, max_iter=epochs,
                                        learning_rate_init=1e-2, random_state=seed, **extra)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    clf.fit(X_b[rows], y_b[rows])
                scores[way][i, seed] = clf.score(X_test, y_test)
        print(f"{n:>4} labeled B images: " + ", ".join(
            f"{way} {scores[way][i].mean():.3f}" for way in WAYS))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for way, s in scores.items():
        ax.errorbar(sizes, s.mean(axis=1), yerr=s.std(axis=1), marker="o", capsize=3,
                    label=way)
    ax.set(xscale="log", xlabel="labeled images of task B (odd or even)",
           ylabel=f"test accuracy on B (mean ± std, {n_seeds} seeds)",
           title="Reusing the layers of a ten-digit model")
    ax.minorticks_off()
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    print(f"figure saved to {output}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--sizes", default="10,20,50,100,200",
                        help="comma-separated numbers of labeled B images")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--output", default="transfer_learning.png")
    args = parser.parse_args()
    main([int(n) for n in args.sizes.split(",")], args.seeds, args.epochs, args.output)
