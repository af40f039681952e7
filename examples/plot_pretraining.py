"""Unsupervised pretraining: when labels are scarce, learn features from the unlabeled rows
========================================================================================

Of the digits training images only a small share keeps its label; the rest are
marked ``-1`` (scikit-learn's semi-supervised convention). With
``pretrain="autoencoder"`` the hidden layers first learn to reconstruct *all*
training images (``pretrain_epochs``), then the network is trained on the
labeled ones; without it, only the labeled images are used. The third line
keeps the pretrained layers frozen for the first half of the supervised epochs
(``freeze_layers=2, unfreeze_after=100``), so that the new output layer
settles before the features are fine-tuned. Test accuracy against the share of
labels, mean ± std over seeds (each seed draws other labeled images and
another initialization). The gains are small on this data (1-3 points where
labels are scarcest, none at 25 %): the digits' 64 pixels are already good
features, and a network fine-tuned for long forgets much of its start.

Run: python examples/plot_pretraining.py  (writes pretraining.png)
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


def main(shares, n_seeds, pretrain_epochs, output):
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                        random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    net = dict(hidden_layer_sizes=(128, 64), activation="elu", max_iter=200)
    ways = {"labeled rows only": None,
            "autoencoder pretraining": {},
            "pretraining, frozen 100 epochs": dict(freeze_layers=2, unfreeze_after=100)}
    scores = {way: np.zeros((len(shares), n_seeds)) for way in ways}
    for i, share in enumerate(shares):
        for seed in range(n_seeds):
            rng = np.random.RandomState(seed)
            y_semi = np.where(rng.rand(len(y_train)) < share, y_train, -1)
            labeled = y_semi != -1
            for way, extra in ways.items():
                clf = DeepMLPClassifier(**net, random_state=seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    if extra is None:
                        clf.fit(X_train[labeled], y_semi[labeled])
                    else:  # every image; -1 marks the unlabeled ones
                        clf.set_params(pretrain="autoencoder", pretrain_epochs=pretrain_epochs,
                                       **extra).fit(X_train, y_semi)
                scores[way][i, seed] = clf.score(X_test, y_test)
        base = scores["labeled rows only"][i]
        print(f"{share:4.0%} labeled ({int(labeled.sum()):>3} images): labeled only "
              f"{base.mean():.3f}" + "".join(
                  f"; {way} {scores[way][i].mean():.3f} ({(scores[way][i] - base).mean():+.3f},"
                  f" better in {int((scores[way][i] > base).sum())}/{n_seeds} seeds)"
                  for way in list(ways)[1:]))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, s in scores.items():
        ax.errorbar(np.multiply(shares, 100), s.mean(axis=1), yerr=s.std(axis=1), marker="o",
                    capsize=3, label=name)
    ax.set(xscale="log", xlabel="labeled share of the training images (%)",
           ylabel=f"test accuracy (mean ± std, {n_seeds} seeds)",
           title="Digits, (128, 64) ELU: pretraining on the unlabeled images")
    ax.minorticks_off()
    ax.set_xticks(np.multiply(shares, 100), [f"{100 * s:g}" for s in shares])
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    print(f"figure saved to {output}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--shares", default="0.02,0.05,0.1,0.25",
                        help="comma-separated labeled shares")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--pretrain-epochs", type=int, default=50)
    parser.add_argument("--output", default="pretraining.png")
    args = parser.parse_args()
    main([float(s) for s in args.shares.split(",")], args.seeds, args.pretrain_epochs,
         args.output)
