"""100-layer SELU vs ReLU on Fashion-MNIST: ours, a plain PyTorch loop, and the chapter.

The chapter's notebook: 100 hidden layers of 100 units, Fashion-MNIST (55,000
training images, the last 5,000 of the training file as validation), pixels
standardized per pixel with the training set's mean and standard deviation,
SGD with momentum 0.9 and rate 1e-3, batch 32, 5 epochs. SELU with LeCun
normal weights reaches 0.805 validation accuracy, ReLU with He normal 0.705.

For each activation and seed this script trains

* ``ours``: ``DeepMLPClassifier((100,) * 100, activation=..., kernel_initializer=
  "lecun_normal" / "he_normal", solver="momentum", learning_rate_init=1e-3,
  batch_size=32, max_iter=5, alpha=0)``: the notebook's setting (the hidden
  layers get the named initializer, the output layer Glorot uniform, as the
  notebook's Keras layers do);
* ``ours, lr 1e-4``: the same at a ten times lower rate;
* ``torch``: a plain PyTorch loop written to match the notebook: ``nn.Linear``
  layers with Keras' truncated-normal LeCun/He hidden weights and Glorot
  uniform output weights, zero biases, ``torch.optim.SGD(momentum=0.9)`` (the
  same update as Keras' for a constant rate), mean cross-entropy, reshuffled
  batches of 32.

and prints the validation accuracy after each epoch, the mean over seeds, the
gradient norm of the first and last hidden layer's weights on the first batch
(ours and torch, same seed), the largest activation standard deviation over
the layers after the last epoch (ours; 1 is self-normalized), and the
chapter's figure. ``benchmarks/reference_keras_selu.py`` runs the notebook's
own Keras code, where TensorFlow is installed.

Run::

    python benchmarks/bench_selu_depth.py                 # 3 seeds (~12 min on 2 cores)
    python benchmarks/bench_selu_depth.py --seeds 1 --epochs 1 --rows 5000   # quick look
"""

import argparse
import math
import os
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from sklearn_deepnet import DeepMLPClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fashion_mnist  # noqa: E402

CHAPTER = {"selu": 0.805, "relu": 0.705}
HIDDEN_INIT = {"selu": "lecun_normal", "relu": "he_normal"}
DEPTH, WIDTH = 100, 100


class EpochScores:
    """Records the validation accuracy after every epoch (a skorch callback)."""

    def __init__(self, X_valid, y_valid):
        self.X_valid, self.y_valid, self.scores = X_valid, y_valid, []

    def __call__(self):
        from skorch.callbacks import Callback

        outer = self

        class _Record(Callback):
            def on_epoch_end(self, net, **kwargs):
                logits = net.predict_proba(outer.X_valid)
                outer.scores.append(float(np.mean(logits.argmax(1) == outer.y_valid)))

        return _Record()


def ours(data, activation, lr, seed, epochs):
    (X, y), (Xv, yv) = data
    record = EpochScores(Xv, yv)
    clf = DeepMLPClassifier(
        (WIDTH,) * DEPTH, activation=activation, kernel_initializer=HIDDEN_INIT[activation],
        solver="momentum", momentum=0.9, learning_rate_init=lr, batch_size=32,
        max_iter=epochs, alpha=0.0, n_iter_no_change=np.inf, random_state=seed,
        callbacks=[record()], diagnostics=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    std = max(clf.history_[-1]["diagnostics"]["act_std"])
    return record.scores, clf.loss_curve_, std


def keras_truncated_normal_(weight, scale):
    """Keras' VarianceScaling(scale, "fan_in", "truncated_normal")."""
    std = math.sqrt(scale / weight.shape[1]) / 0.87962566103423978
    return nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std)


def torch_model(activation, seed):
    torch.manual_seed(seed)
    layers, n_in = [], 28 * 28
    for _ in range(DEPTH):
        linear = nn.Linear(n_in, WIDTH)
        keras_truncated_normal_(linear.weight, 1.0 if activation == "selu" else 2.0)
        nn.init.zeros_(linear.bias)
        layers += [linear, nn.SELU() if activation == "selu" else nn.ReLU()]
        n_in = WIDTH
    out = nn.Linear(n_in, 10)
    nn.init.xavier_uniform_(out.weight)
    nn.init.zeros_(out.bias)
    return nn.Sequential(*layers, out)


def plain_torch(data, activation, seed, epochs):
    (X, y), (Xv, yv) = data
    model = torch_model(activation, seed)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    Xv_t = torch.from_numpy(Xv)
    gen = torch.Generator().manual_seed(seed)
    scores, losses = [], []
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(X_t), generator=gen)
        total = torch.zeros(())
        for start in range(0, len(perm), 32):
            idx = perm[start:start + 32]
            loss = nn.functional.cross_entropy(model(X_t[idx]), y_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        losses.append(float(total) / len(perm))
        model.eval()
        with torch.no_grad():
            scores.append(float((model(Xv_t).argmax(1).numpy() == yv).mean()))
    return scores, losses, None


def first_batch_gradients(data, activation, seed):
    """Gradient norm of the first and last hidden layer's weights on 32 rows, at init."""
    (X, y), _ = data
    xb, yb = torch.from_numpy(X[:32]), torch.from_numpy(y[:32])
    norms = {}
    clf = DeepMLPClassifier((WIDTH,) * DEPTH, activation=activation, max_iter=1,
                            kernel_initializer=HIDDEN_INIT[activation], random_state=seed,
                            alpha=0.0)
    module = clf._build_module(X.shape[1], 10)  # what fit builds, before training
    for name, model in (("ours", module), ("torch", torch_model(activation, seed))):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        model.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        norms[name] = (float(linears[0].weight.grad.norm()),
                       float(linears[-2].weight.grad.norm()))
    return norms


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--rows", type=int, default=None, help="training rows (default 55,000)")
    args = p.parse_args()
    if not fashion_mnist.available():
        print(fashion_mnist.INSTALL_HINT + "; skipping.")
        return
    (X, y), (Xv, yv), _ = fashion_mnist.chapter_split()
    if args.rows:
        X, y = X[: args.rows], y[: args.rows]
    mean, std = X.mean(axis=0), X.std(axis=0)
    std[std == 0] = 1.0
    data = (((X - mean) / std).astype(np.float32), y), (((Xv - mean) / std).astype(np.float32),
                                                        yv)
    print(f"# {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}; "
          f"device: CPU; {len(X)} training rows")
    table = {}
    for activation in ("selu", "relu"):
        for seed in range(42, 42 + args.seeds):
            norms = first_batch_gradients(data, activation, seed)
            print(f"{activation} seed {seed}: first-batch grad norm (layer 1, layer 100): "
                  + ", ".join(f"{k} {a:.3g}, {b:.3g}" for k, (a, b) in norms.items()))
            for method, run, lr in (("ours", ours, 1e-3), ("ours, lr 1e-4", ours, 1e-4),
                                    ("torch", plain_torch, None)):
                start = time.perf_counter()
                extra = () if lr is None else (lr,)
                scores, losses, std = run(data, activation, *extra, seed, args.epochs)
                table.setdefault((activation, method), []).append(scores[-1])
                shown = "" if std is None else f", largest activation std {std:.3g}"
                print(f"  {method:<14} valid acc per epoch {np.round(scores, 3).tolist()}, "
                      f"train loss {np.round(losses, 3).tolist()}{shown} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"\n{'activation':<10} {'method':<14} {'valid acc (mean ± std)':>24} "
          f"{'per seed':>24} {'chapter':>8}")
    for (activation, method), values in table.items():
        print(f"{activation:<10} {method:<14} {np.mean(values):>16.3f} ± {np.std(values):.3f}"
              f" {str(np.round(values, 3).tolist()):>24} {CHAPTER[activation]:>8.3f}")


if __name__ == "__main__":
    main()
