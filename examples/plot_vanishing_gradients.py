"""Why a deep network trains or doesn't: activation, initialization, BatchNorm.

A 10-hidden-layer MLP on the digits, five ways (chapter 11's opening story):

1. logistic activation with weights drawn from N(0, 1) — the pre-2010 recipe,
2. logistic with Glorot initialization,
3. ReLU with He initialization,
4. SELU with LeCun initialization (self-normalizing),
5. ELU with He initialization and BatchNorm.

Left: the gradient norm reaching each layer's weights at initialization (on one
batch). Right: the training loss per epoch (``loss_curve_``). What it shows
(30 epochs of plain SGD, seed 0): with logistic + Glorot the gradient shrinks
~4x per layer, so layer 1 gets ~1e-6 of what layer 10 gets and the loss never
leaves 2.30 (chance); with N(0, 1) weights the logistic units saturate, the
first loss is ~9 and training crawls. ReLU + He, SELU + LeCun and ELU + BatchNorm
keep the gradient at the same scale in every layer and reach 93-99 % training
accuracy.

Run: python examples/plot_vanishing_gradients.py  (writes vanishing_gradients.png)
"""

import argparse
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sklearn_deepnet import DeepMLPClassifier, VarianceScaling  # noqa: E402

DEPTH, WIDTH = 10, 100
CONFIGS = {
    "logistic, N(0, 1) init": dict(
        activation="logistic",
        # variance scale / fan_in = 1 for 100-unit layers: a standard normal
        kernel_initializer=VarianceScaling(WIDTH, "fan_in", "untruncated_normal"),
    ),
    "logistic, Glorot": dict(activation="logistic"),
    "ReLU, He": dict(activation="relu"),
    "SELU, LeCun": dict(activation="selu"),
    "ELU, He, BatchNorm": dict(activation="elu", batch_norm="before"),
}


def layer_gradient_norms(clf, X, y):
    """Gradient norm of each hidden layer's weights on one batch, at the current weights."""
    module = clf.module_
    module.train()
    module.zero_grad()
    logits = module(torch.as_tensor(X, dtype=torch.float32))
    target = torch.as_tensor(np.searchsorted(clf.classes_, y))
    torch.nn.functional.cross_entropy(logits, target).backward()
    norms = [lin.weight.grad.norm().item() for lin in module.hidden_linears()]
    module.zero_grad()
    return norms


def main(epochs, output):
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    fig, (ax_grad, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, params in CONFIGS.items():
        clf = DeepMLPClassifier(
            hidden_layer_sizes=(WIDTH,) * DEPTH, solver="sgd", momentum=0.0,
            learning_rate_init=0.01,
            alpha=0.0, max_iter=epochs, n_iter_no_change=epochs, random_state=0, **params,
        )
        # One epoch with a learning rate of ~0 builds and initializes the network
        # without moving it, so the gradients below are those at initialization.
        clf.set_params(learning_rate_init=1e-12, max_iter=1).fit(X, y)
        norms = layer_gradient_norms(clf, X[:256], y[:256])
        clf.set_params(learning_rate_init=0.01, max_iter=epochs).fit(X, y)
        ax_grad.semilogy(range(1, DEPTH + 1), norms, marker="o", label=name)
        ax_loss.plot(range(1, clf.n_iter_ + 1), clf.loss_curve_, label=name)
        print(f"{name:<22} grad norm layer 1 / layer {DEPTH}: {norms[0] / norms[-1]:9.2e}"
              f"   final loss {clf.loss_curve_[-1]:.3f}   train acc {clf.score(X, y):.3f}")
    ax_grad.set(xlabel="hidden layer (1 = next to the input)",
                ylabel="gradient norm of the layer's weights",
                title="Gradient reaching each layer at initialization")
    ax_loss.set(xlabel="epoch", ylabel="training loss",
                title=f"{DEPTH}x{WIDTH} MLP on digits, plain SGD (lr 0.01)")
    ax_loss.legend()
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    print(f"wrote {output}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--output", default="vanishing_gradients.png")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        main(args.epochs, args.output)
