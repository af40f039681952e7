"""Peer benchmark: training and prediction throughput of DeepMLPClassifier.

On the same data, network and number of epochs, one run times

* ``ours``: ``sklearn_deepnet.DeepMLPClassifier`` (Adam, lr 1e-3, exactly E epochs),
* ``sklearn``: ``sklearn.neural_network.MLPClassifier`` (CPU only; it has no ELU or
  batch norm and no dropout, so settings ``c`` and ``e`` report "n/a"),
* ``skorch``: ``skorch.NeuralNetClassifier`` with its default data path (Dataset,
  DataLoader, per-batch ``loss.item()``), no validation split,
* ``eager``: a plain PyTorch loop, data moved once to the device, ``randperm`` batches,
  epoch loss read once per epoch.

* ``ours-eager``: ours with its eager autograd step forced (same seed, weights and
  batches as ``ours``): the reference for the fast steps' final loss.

skorch and eager train the package's pure-torch ``MLP`` module with the same
He/Glorot initialization as ours (seed 0); nobody uses an L2 penalty
(``alpha=0``), so all final training losses measure the same objective.
Fit throughput is ``N * E / seconds`` around the whole fit call (or loop), after
one untimed warm-up fit per method (1 epoch on 2,000 rows); prediction throughput
is ``predict_proba`` on the full X, best of 3. "ratio" is ours' fit throughput over
the method's (> 1: ours is faster). Ours picks its own CPU thread count
(``n_threads=None``); the others use ``torch.get_num_threads()``.

Run::

    python benchmarks/bench_fit.py                       # synthetic, CPU, all settings
    python benchmarks/bench_fit.py --device cuda --dataset all --epochs 5 --json out.json
    python benchmarks/bench_fit.py --settings a,d --methods ours,eager --repeat 3
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
import skorch
import torch
import torch.nn.functional as F
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from torch import nn

import sklearn_deepnet
from sklearn_deepnet import DeepMLPClassifier
from sklearn_deepnet._engine.module import MLP

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fashion_mnist  # noqa: E402

# name: (hidden_layer_sizes, activation, batch_norm, batch_size, dropout)
SETTINGS = {
    "a": ((100,) * 5, "relu", None, 32, 0.0),
    "b": ((256,) * 3, "relu", None, 128, 0.0),
    "c": ((100,) * 20, "elu", "before", 32, 0.0),
    "d": ((256,) * 3, "relu", None, 1024, 0.0),
    "e": ((100,) * 5, "relu", None, 32, 0.2),
}
METHODS = ("ours", "ours-eager", "sklearn", "skorch", "eager")
N_WARMUP = 2000


def standardize(X):
    """Return ``X`` scaled to zero mean and unit variance per feature, as float32."""
    X = X.astype(np.float64)
    std = X.std(axis=0)
    std[std == 0] = 1.0
    return ((X - X.mean(axis=0)) / std).astype(np.float32)


def load_data(name, n_samples):
    """Load a data set.

    Parameters
    ----------
    name : {"synthetic", "fashion-mnist"}
        Which data set.
    n_samples : int or None
        Rows to use; ``None`` means 50,000 (synthetic) or all 60,000 (Fashion-MNIST).

    Returns
    -------
    X, y : ndarray of float32, ndarray of int64, or None when not installed.
    """
    if name == "synthetic":
        X, y = make_classification(
            n_samples=n_samples or 50_000, n_features=64, n_informative=32,
            n_classes=10, random_state=0,
        )
        return standardize(X), y.astype(np.int64)
    if not fashion_mnist.available():
        print(fashion_mnist.INSTALL_HINT)
        return None
    X, y = fashion_mnist.load("train")
    n = n_samples or len(X)
    return standardize(X[:n].astype(np.float32) / 255.0), y[:n]


def torch_mlp(n_in, hidden, n_out, activation, batch_norm, dropout=0.0):
    """The same network ours trains, as a plain ``torch.nn.Module``, seeded with 0.

    It is the package's pure-torch ``MLP`` (Linear -> [BatchNorm1d] -> activation
    per hidden layer, then Linear) with the same He/Glorot initialization, so the
    final losses of all torch-based methods are comparable.
    """
    torch.manual_seed(0)
    return MLP(n_in, hidden, n_out, activation=activation,
               batch_norm=batch_norm, dropout=dropout).initialize_()


def fit_ours(X, y, setting, epochs, device, fast=True):
    """Fit DeepMLPClassifier; return ``(estimator, final train loss)``.

    With ``fast=False`` the package's eager autograd step is forced (same seed,
    initialization and batches): the reference for the fast steps' loss.
    """
    hidden, activation, batch_norm, batch_size, dropout = setting
    est = DeepMLPClassifier(
        hidden_layer_sizes=hidden, activation=activation, batch_norm=batch_norm,
        dropout=dropout,
        batch_size=batch_size, max_iter=epochs, solver="adam", learning_rate_init=1e-3,
        alpha=0.0, tol=0.0, n_iter_no_change=epochs + 1, random_state=0, device=device,
    )
    est._fast_engine = fast  # private switch, for this comparison only
    est.fit(X, y)
    return est, est.loss_curve_[-1]


def fit_ours_eager(X, y, setting, epochs, device):
    """Fit DeepMLPClassifier with its eager autograd step forced."""
    return fit_ours(X, y, setting, epochs, device, fast=False)


def fit_sklearn(X, y, setting, epochs, device):
    """Fit sklearn's MLPClassifier (always on the CPU); return ``(estimator, loss)``."""
    hidden, activation, _, batch_size, _ = setting
    est = MLPClassifier(
        hidden_layer_sizes=hidden, activation=activation, solver="adam",
        batch_size=batch_size, max_iter=epochs, tol=0.0, n_iter_no_change=epochs + 1,
        alpha=0.0, learning_rate_init=1e-3, random_state=0, shuffle=True,
    ).fit(X, y)
    return est, est.loss_curve_[-1]


def fit_skorch(X, y, setting, epochs, device):
    """Fit skorch's NeuralNetClassifier with its default data path; return ``(net, loss)``."""
    hidden, activation, batch_norm, batch_size, dropout = setting
    module = torch_mlp(X.shape[1], hidden, int(y.max()) + 1, activation, batch_norm, dropout)
    net = skorch.NeuralNetClassifier(
        module, criterion=nn.CrossEntropyLoss, optimizer=torch.optim.Adam, lr=1e-3,
        batch_size=batch_size, max_epochs=epochs, train_split=None,
        iterator_train__shuffle=True, device=device, verbose=0,
    ).fit(X, y)
    return net, float(net.history[-1, "train_loss"])


def fit_eager(X, y, setting, epochs, device):
    """Train with a plain eager PyTorch loop; return ``(model, final epoch mean loss)``."""
    hidden, activation, batch_norm, batch_size, dropout = setting
    dev = torch.device(device)
    Xt = torch.as_tensor(X, dtype=torch.float32).to(dev)
    yt = torch.as_tensor(y, dtype=torch.int64).to(dev)
    model = torch_mlp(X.shape[1], hidden, int(y.max()) + 1, activation, batch_norm,
                      dropout).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    n = len(Xt)
    for _ in range(epochs):
        perm = torch.randperm(n, device=dev)
        total = torch.zeros((), device=dev)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            loss = F.cross_entropy(model(Xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        epoch_loss = total.item() / n  # one device read per epoch
    return model, epoch_loss


FITTERS = {"ours": fit_ours, "ours-eager": fit_ours_eager, "sklearn": fit_sklearn,
           "skorch": fit_skorch, "eager": fit_eager}


def sync(device):
    """Wait for queued CUDA work so the clock covers it."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_methods(methods, X, y, setting, epochs, device, repeat):
    """Warm every method up once, then time ``repeat`` rounds of one fit per method.

    The rounds interleave the methods (a, b, c, a, b, c, ...): on a shared VM
    whose speed drifts by tens of percent over a minute, back-to-back repeats
    of one method would give it a lucky or an unlucky stretch of its own.

    Returns
    -------
    dict
        Method -> ``fit_seconds`` (all runs), ``fit_samples_per_s`` (best run),
        ``final_loss``, ``predict_samples_per_s`` (ours and sklearn only) and
        ``engine`` (ours only).
    """
    devices = {m: "cpu" if m == "sklearn" else device for m in methods}
    for m in methods:
        FITTERS[m](X[:N_WARMUP], y[:N_WARMUP], setting, 1, devices[m])
        sync(devices[m])
    seconds = {m: [] for m in methods}
    fitted = {}
    for _ in range(repeat):
        for m in methods:
            sync(devices[m])
            start = time.perf_counter()
            fitted[m] = FITTERS[m](X, y, setting, epochs, devices[m])
            sync(devices[m])
            seconds[m].append(time.perf_counter() - start)
    rows = {}
    for m in methods:
        model, loss = fitted[m]
        out = {
            "device": devices[m], "fit_seconds": seconds[m], "final_loss": float(loss),
            "fit_samples_per_s": len(X) * epochs / min(seconds[m]),
            "predict_samples_per_s": None, "engine": getattr(model, "engine_", None),
            "engine_reason": getattr(model, "engine_reason_", None),
        }
        if m in ("ours", "ours-eager", "sklearn"):
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                model.predict_proba(X)
                sync(devices[m])
                best = min(best, time.perf_counter() - start)
            out["predict_samples_per_s"] = len(X) / best
        rows[m] = out
    return rows


def cpu_name():
    """CPU model from /proc/cpuinfo, else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def environment(device):
    """Versions, device and thread information for the report."""
    return {
        "python": platform.python_version(), "torch": torch.__version__,
        "sklearn": sklearn.__version__, "skorch": skorch.__version__,
        "numpy": np.__version__,
        "sklearn_deepnet": getattr(sklearn_deepnet, "__version__", "unknown"),
        "device": device,
        "device_name": (torch.cuda.get_device_name(torch.device(device))
                        if device.startswith("cuda") else cpu_name()),
        "cpu_count": os.cpu_count(), "torch_num_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
    }


def print_table(dataset, name, setting, n, epochs, rows):
    """Print one setting's results."""
    hidden, activation, batch_norm, batch_size, dropout = setting
    print(f"\n[{dataset}] setting {name}: {len(hidden)}x{hidden[0]} {activation}"
          f" bn={batch_norm} dropout={dropout} batch={batch_size}  N={n} epochs={epochs}")
    print(f"{'method':<14}{'fit samples/s':>15}{'ours/method':>13}{'final loss':>12}"
          f"{'predict samples/s':>19}  engine")
    ours = rows.get("ours")
    for method, r in rows.items():
        if r is None:
            print(f"{method:<14}{'n/a':>15}")
            continue
        label = "sklearn (CPU)" if method == "sklearn" else method
        ratio = f"{ours['fit_samples_per_s'] / r['fit_samples_per_s']:.2f}" if ours else "-"
        pred = f"{r['predict_samples_per_s']:,.0f}" if r["predict_samples_per_s"] else "-"
        print(f"{label:<14}{r['fit_samples_per_s']:>15,.0f}{ratio:>13}"
              f"{r['final_loss']:>12.4f}{pred:>19}  {r['engine'] or ''}")


def parse_args(argv=None):
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=["synthetic", "fashion-mnist", "all"],
                   default="synthetic")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--settings", default="a,b,c,d,e")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--n-samples", type=int, default=None,
                   help="rows (default 50,000 synthetic, 60,000 Fashion-MNIST)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--repeat", type=int, default=1,
                   help="best of R timed fits, the methods interleaved")
    p.add_argument("--json", default=None, help="write all results to this path")
    args = p.parse_args(argv)
    args.settings = args.settings.split(",")
    args.methods = args.methods.split(",")
    bad = [s for s in args.settings if s not in SETTINGS] + \
        [m for m in args.methods if m not in METHODS]
    if bad:
        p.error(f"unknown settings or methods: {bad}")
    return args


def main(argv=None):
    """Run the benchmark and print (and optionally save) the results."""
    args = parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    np.random.seed(0)  # noqa: NPY002 (legacy global RNG, for any library code using it)
    torch.manual_seed(0)
    env = environment(args.device)
    for key in ("torch", "device", "device_name", "cpu_count", "torch_num_threads",
                "command"):
        print(f"{key}: {env[key]}")
    datasets = ["synthetic", "fashion-mnist"] if args.dataset == "all" else [args.dataset]
    results = []
    for dataset in datasets:
        data = load_data(dataset, args.n_samples)
        if data is None:
            continue
        X, y = data
        for name in args.settings:
            setting = SETTINGS[name]
            # MLPClassifier has no ELU, batch norm or dropout
            skip = setting[1] == "elu" or setting[4] > 0
            runnable = [m for m in args.methods if not (m == "sklearn" and skip)]
            timed = time_methods(runnable, X, y, setting, args.epochs, args.device,
                                 args.repeat)
            rows = {m: timed.get(m) for m in args.methods}
            for method in args.methods:
                results.append({"dataset": dataset, "setting": name, "method": method,
                                "n_samples": len(X), "n_features": X.shape[1],
                                "epochs": args.epochs, "hidden": list(setting[0]),
                                "activation": setting[1], "batch_norm": setting[2],
                                "batch_size": setting[3], "dropout": setting[4],
                                "result": rows[method]})
            print_table(dataset, name, setting, len(X), args.epochs, rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": env, "results": results},
                                              indent=2))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
