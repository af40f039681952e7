"""Chapter 11's Fashion-MNIST experiments re-run with our estimators, beside its figures.

Each experiment is the chapter's notebook setup written with our estimator in a
few lines: 55,000 training images, the last 5,000 of the training file as the
validation set, pixels / 255, ReLU layers of 100 units with He normal weights
and a Glorot uniform output layer (``kernel_initializer="auto"``, what the
chapter's Keras layers get), no L2 penalty, every epoch run.

* ``depth``: 100 hidden layers of 100 units, momentum SGD (0.9) at 1e-3, batch
  32, 5 epochs, standardized inputs: SELU + LeCun normal (chapter: 0.805) and
  ReLU + He normal (chapter: 0.705); also at 1e-4, where the run is not chaotic
  (see docs/benchmarks.md and ``bench_selu_depth.py`` for why);
* ``batchnorm``: BatchNorm on the input and after each of 300 and 100 ReLU units
  (the chapter's layer order), plain SGD 0.01, batch 32, 2 epochs (chapter: 0.865);
* ``optimizers``: 3 x 100 ReLU, batch 32, 10 epochs, learning rate 1e-3 for each of
  momentum 0.9, Nesterov, AdaGrad, RMSProp, Adam, AdaMax, Nadam, AdamW (weight
  decay 1e-5; chapter: 0.867, 0.871, 0.842, 0.864, 0.870, 0.878, 0.874, 0.870);
* ``schedules``: 3 x 100, plain SGD from 0.01, batch 32, 10 epochs: power
  (0.01 / (1 + t / 10,000), t in steps; chapter: 0.871), exponential
  (0.01 * 0.1 ** (t / 20,000); 0.866), piecewise (0.01, 0.005 from epoch 5;
  chapter's boundaries 5 and 15 with 0.001 after 15; 0.872);
* ``maxnorm``: 2 x 100 ReLU with max-norm 1.0 on the hidden layers, momentum SGD
  0.9 at 0.01, batch 32, 10 epochs (chapter: 0.858);
* ``1cycle``: 3 x 100, plain SGD (no momentum), 1cycle with a peak rate of 0.1,
  batch 128, 25 epochs (chapter: 0.892 validation accuracy);
* ``plateau``: 3 x 100, SGD with momentum 0.9, rate 0.01 halved after 5 epochs
  without improvement, batch 32, 25 epochs (chapter: 0.887). The chapter's
  ``ReduceLROnPlateau`` watches the validation loss; ours watches the training
  loss here (``learning_rate="plateau"`` watches a validation loss only with
  ``early_stopping``, which holds out part of the training data);
* ``dropout`` / ``MC dropout``: 2 x 100, dropout 0.2 after each hidden layer
  (the chapter also drops 20 % of the input pixels; our estimator has no input
  dropout), SGD momentum 0.9, rate 0.01, batch 32, 10 epochs, test accuracy of
  one deterministic pass and of the mean of 100 passes (chapter: 0.870 / 0.872),
  mean over ``--mc-seeds`` seeds, with the test log-loss of both;
* ``transfer``: task A is the 8 classes other than T-shirt/top and pullover
  (3 x 100, plain SGD 1e-3, 20 epochs); task B is T-shirt/top vs pullover
  from only the first 200 such training images. From scratch: 20 epochs; reusing
  A's three hidden layers: frozen for 4 epochs, then 16 more with everything
  training (plain SGD 1e-3, batch 32). Test accuracy on the test images of the
  two classes, mean over ``--seeds`` seeds (chapter: 0.919 alone vs 0.939; the
  chapter notes its own gain depends on the seed).

Run::

    python benchmarks/bench_chapter_techniques.py                 # everything (~15 min, 2 cores)
    python benchmarks/bench_chapter_techniques.py --only transfer --seeds 5
    python benchmarks/bench_chapter_techniques.py --quick         # smoke test, seconds

Prints one table: experiment, the chapter's figure, ours, the difference, and
whether ours is within 1.5 points of the chapter or above it.
"""

import argparse
import json
import os
import platform
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss

import sklearn_deepnet
from sklearn_deepnet import DeepMLPClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fashion_mnist  # noqa: E402

CHAPTER = {"SELU 100 layers, 1e-3": 0.805, "ReLU 100 layers, 1e-3": 0.705,
           "SELU 100 layers, 1e-4": 0.805, "ReLU 100 layers, 1e-4": 0.705,
           "batchnorm (300, 100)": 0.865,
           "momentum": 0.867, "nesterov": 0.871, "adagrad": 0.842, "rmsprop": 0.864,
           "adam": 0.870, "adamax": 0.878, "nadam": 0.874, "adamw": 0.870,
           "power": 0.871, "exponential": 0.866, "piecewise": 0.872, "max-norm 1.0": 0.858,
           "1cycle": 0.892, "plateau": 0.887, "dropout (one pass)": 0.870,
           "MC dropout (100 passes)": 0.872, "transfer: scratch": 0.919,
           "transfer: reusing A's layers": 0.939}
# The chapter's dense layers: "auto" gives ReLU layers He normal weights and the
# output layer Glorot uniform, as Keras' defaults do in the chapter's notebook
# (an explicit "he_normal" would apply to the output layer too).
DENSE = dict(activation="relu", alpha=0.0, n_iter_no_change=np.inf)


def _fit(clf, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clf.fit(X, y)


def depth(data, epochs, seed, n_seeds):
    (X, y), (Xv, yv), _ = data
    mean, std = X.mean(axis=0), X.std(axis=0) + 1e-8  # the chapter standardizes here
    X, Xv = (X - mean) / std, (Xv - mean) / std
    found = {}
    for lr in (1e-3, 1e-4):
        for act, init in (("selu", "lecun_normal"), ("relu", "he_normal")):
            for s in range(seed, seed + n_seeds):
                clf = DeepMLPClassifier((100,) * 100, kernel_initializer=init,
                                        solver="momentum", momentum=0.9, learning_rate_init=lr,
                                        batch_size=32, max_iter=max(1, epochs // 2),
                                        random_state=s, **{**DENSE, "activation": act})
                key = f"{act.upper() if act == 'selu' else 'ReLU'} 100 layers, {lr:.0e}"
                found.setdefault(key.replace("e-0", "e-"), []).append(
                    _fit(clf, X, y).score(Xv, yv))
    return found


def batchnorm(data, epochs, seed):
    (X, y), (Xv, yv), _ = data
    clf = DeepMLPClassifier((300, 100), batch_norm="after", batch_norm_input=True,
                            batch_norm_momentum=0.01, batch_norm_epsilon=1e-3,  # Keras'
                            solver="sgd", momentum=0.0,
                            learning_rate_init=0.01, batch_size=32,
                            max_iter=max(1, epochs // 5), random_state=seed, **DENSE)
    return {"batchnorm (300, 100)": _fit(clf, X, y).score(Xv, yv)}


def optimizers(data, epochs, seed):
    (X, y), (Xv, yv), _ = data
    found = {}
    for solver in ("momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamax", "nadam",
                   "adamw"):
        extra = {"weight_decay": 1e-5} if solver == "adamw" else {}
        clf = DeepMLPClassifier((100,) * 3, solver=solver, learning_rate_init=1e-3,
                                batch_size=32, max_iter=epochs, random_state=seed,
                                **extra, **DENSE)
        found[solver] = _fit(clf, X, y).score(Xv, yv)
    return found


def schedules(data, epochs, seed):
    (X, y), (Xv, yv), _ = data
    found = {}
    for name, extra in (("power", dict(power_t=1.0, decay_steps=10_000)),
                        ("exponential", dict(decay_steps=20_000)),
                        ("piecewise", dict(lr_milestones=[epochs // 2, epochs * 3 // 2],
                                           lr_values=[0.01, 0.005, 0.001]))):
        clf = DeepMLPClassifier((100,) * 3, solver="sgd", momentum=0.0, learning_rate=name,
                                learning_rate_init=0.01, batch_size=32, max_iter=epochs,
                                random_state=seed, **extra, **DENSE)
        found[name] = _fit(clf, X, y).score(Xv, yv)
    return found


def max_norm(data, epochs, seed):
    (X, y), (Xv, yv), _ = data
    clf = DeepMLPClassifier((100, 100), max_norm=1.0, solver="momentum", momentum=0.9,
                            learning_rate_init=0.01, batch_size=32, max_iter=epochs,
                            random_state=seed, **DENSE)
    return {"max-norm 1.0": _fit(clf, X, y).score(Xv, yv)}


def one_cycle(data, epochs, seed):
    (X, y), (Xv, yv), _ = data
    clf = DeepMLPClassifier((100,) * 3, solver="sgd", momentum=0.0, learning_rate="1cycle",
                            learning_rate_init=0.1, batch_size=128, max_iter=epochs * 5 // 2,
                            random_state=seed, **DENSE).fit(X, y)
    return {"1cycle": clf.score(Xv, yv)}


def plateau(data, epochs, seed):
    (X, y), (Xv, yv), _ = data
    clf = DeepMLPClassifier((100,) * 3, solver="momentum", momentum=0.9,
                            learning_rate="plateau", learning_rate_init=0.01, lr_factor=0.5,
                            lr_patience=5, batch_size=32, max_iter=epochs * 5 // 2,
                            random_state=seed,
                            **DENSE).fit(X, y)
    return {"plateau": clf.score(Xv, yv)}


def mc_dropout(data, epochs, seed, n_seeds):
    (X, y), _, (Xt, yt) = data
    found = {}
    for s in range(seed, seed + n_seeds):
        clf = DeepMLPClassifier((100, 100), dropout=0.2, solver="momentum", momentum=0.9,
                                learning_rate_init=0.01, batch_size=32,
                                max_iter=epochs, random_state=s,
                                **DENSE).fit(X, y)
        for key, passes in (("dropout (one pass)", 0), ("MC dropout (100 passes)", 100)):
            proba = clf.set_params(mc_dropout=passes).predict_proba(Xt)
            found.setdefault(key, []).append(float(np.mean(clf.classes_[proba.argmax(1)] == yt)))
            found.setdefault(f"log-loss, {key}", []).append(log_loss(yt, proba))
    return found


def transfer(data, epochs, seed, n_seeds):
    (X, y), _, (Xt, yt) = data
    in_b, test_b = np.isin(y, (0, 2)), np.isin(yt, (0, 2))
    XA, yA = X[~in_b], y[~in_b]
    XB, yB = X[in_b][:200], y[in_b][:200]
    n_epochs = max(2, epochs * 2)  # 20
    sgd = dict(solver="sgd", momentum=0.0, learning_rate_init=1e-3, batch_size=32,
               max_iter=n_epochs, **DENSE)
    scratch, reused = [], []
    for s in range(seed, seed + n_seeds):
        model_a = DeepMLPClassifier((100,) * 3, random_state=s, **sgd).fit(XA, yA)
        b = DeepMLPClassifier((100,) * 3, random_state=s + 1000, **sgd).fit(XB, yB)
        b_on_a = DeepMLPClassifier((100,) * 3, init_from=model_a, freeze_layers=3,
                                   unfreeze_after=max(1, n_epochs // 5), random_state=s + 1000,
                                   **sgd).fit(XB, yB)
        scratch.append(b.score(Xt[test_b], yt[test_b]))
        reused.append(b_on_a.score(Xt[test_b], yt[test_b]))
    return {"transfer: scratch": scratch, "transfer: reusing A's layers": reused}


EXPERIMENTS = {"depth": depth, "batchnorm": batchnorm, "optimizers": optimizers,
               "schedules": schedules, "maxnorm": max_norm, "1cycle": one_cycle,
               "plateau": plateau, "mc": mc_dropout, "transfer": transfer}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--only", default=",".join(EXPERIMENTS),
                   help="comma-separated subset of " + ",".join(EXPERIMENTS))
    p.add_argument("--epochs", type=int, default=10,
                   help="the chapter's 10 (5 for depth, 2 for batchnorm, 25 for 1cycle, "
                        "plateau and transfer scale with it)")
    p.add_argument("--depth-seeds", type=int, default=1, help="seeds for the 100-layer runs")
    p.add_argument("--seeds", type=int, default=5, help="seeds averaged for transfer")
    p.add_argument("--mc-seeds", type=int, default=3, help="seeds averaged for MC dropout")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 3,000 training images, 2 epochs, 1 transfer seed")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    if not fashion_mnist.available():
        print(fashion_mnist.INSTALL_HINT + "; skipping.")
        return
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    data = fashion_mnist.chapter_split()
    epochs = args.epochs
    seeds = {"transfer": args.seeds, "mc": args.mc_seeds, "depth": args.depth_seeds}
    if args.quick:
        (X, y), valid, test = data
        data, epochs = ((X[:3000], y[:3000]), valid, test), 2
        seeds = {"transfer": 1, "mc": 1, "depth": 1}
    print(f"# {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), sklearn {sklearn.__version__}, "
          f"sklearn_deepnet {sklearn_deepnet.__version__}; device: CPU")
    results, times = {}, {}
    for name in args.only.split(","):
        start = time.perf_counter()
        kwargs = {"n_seeds": seeds[name]} if name in seeds else {}
        found = EXPERIMENTS[name](data, epochs, args.seed, **kwargs)
        times[name] = time.perf_counter() - start
        results.update(found)
        print(f"# {name}: {times[name]:.0f} s", flush=True)
    print(f"\n{'experiment':32s} {'chapter':>8s} {'ours':>15s} {'diff':>7s}  within 1.5 pt")
    for key, value in results.items():
        if key not in CHAPTER:
            continue
        values = np.atleast_1d(value)
        mean = float(values.mean())
        ours = f"{mean:.3f}" + (f" ± {values.std():.3f}" if len(values) > 1 else "")
        diff = mean - CHAPTER[key]
        print(f"{key:32s} {CHAPTER[key]:8.3f} {ours:>15s} {diff:+7.3f}  "
              f"{'yes' if diff >= -0.015 else 'NO'}")
    if "transfer: scratch" in results:
        gain = np.subtract(results["transfer: reusing A's layers"], results["transfer: scratch"])
        print(f"\ntransfer gain per seed: {np.round(gain, 3).tolist()} "
              f"(mean {gain.mean():+.3f}; chapter +0.020)")
    if "MC dropout (100 passes)" in results:
        mc, one = (np.array(results[k]) for k in ("MC dropout (100 passes)",
                                                   "dropout (one pass)"))
        print(f"MC dropout minus one pass, test accuracy per seed: {np.round(mc - one, 4)}"
              f" (mean {np.mean(mc - one):+.4f}; chapter +0.002)")
        mc, one = (np.array(results[f"log-loss, {k}"]) for k in ("MC dropout (100 passes)",
                                                                  "dropout (one pass)"))
        print(f"test log-loss: one pass {one.mean():.4f}, MC {mc.mean():.4f} "
              f"(per seed {np.round(mc - one, 4)})")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"argv": sys.argv, "results": results, "seconds": times}, indent=1))


if __name__ == "__main__":
    main()
