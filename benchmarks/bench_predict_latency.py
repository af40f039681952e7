"""Prediction latency of small requests: ours vs MLPClassifier, in one run.

Serving predicts a few rows at a time, where fixed per-call costs dominate.
For each network (the fit benchmark's settings a and b, plus a 3 x 100 SELU
net whose activation needs the batch-invariant padding), both estimators are
fitted for 2 epochs on the same synthetic data (64 features, 10 classes);
then ``predict_proba`` is timed on 1, 10, 100 and 1,000 rows: median of
``--repeat`` calls after warm-up calls. "ratio" is MLPClassifier's time over
ours (> 1: ours is faster). Optionally with the other core busy (``--contended``:
a process spinning on one core while timing).

Run::

    python benchmarks/bench_predict_latency.py
    python benchmarks/bench_predict_latency.py --contended --json out.json
"""

import argparse
import json
import multiprocessing
import platform
import sys
import time
import warnings

import numpy as np
import sklearn
import torch
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

import sklearn_deepnet
from sklearn_deepnet import DeepMLPClassifier

NETWORKS = {
    "a: 5x100 relu": dict(hidden_layer_sizes=(100,) * 5),
    "b: 3x256 relu": dict(hidden_layer_sizes=(256,) * 3),
    "3x100 selu": dict(hidden_layer_sizes=(100,) * 3, activation="selu"),
}
ROWS = (1, 10, 100, 1000)


def _spin(stop):
    while not stop.is_set():
        pass


def median_seconds(fn, repeat):
    """Median wall time of ``fn()`` over ``repeat`` calls, after 5 warm-up calls."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def run(repeat):
    X, y = make_classification(n_samples=5000, n_features=64, n_informative=32,
                               n_classes=10, random_state=0)
    X = X.astype(np.float32)
    results = []
    for name, params in NETWORKS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ours = DeepMLPClassifier(**params, max_iter=2, random_state=0).fit(X, y)
            sk_params = {k: v for k, v in params.items() if k != "activation"}
            theirs = MLPClassifier(**sk_params, max_iter=2, random_state=0).fit(X, y)
        for n in ROWS:
            Xn = X[:n]
            t_ours = median_seconds(lambda m=ours, Xn=Xn: m.predict_proba(Xn), repeat)
            t_sk = median_seconds(lambda m=theirs, Xn=Xn: m.predict_proba(Xn), repeat)
            results.append(dict(network=name, rows=n, ours_ms=t_ours * 1e3,
                                sklearn_ms=t_sk * 1e3, ratio=t_sk / t_ours))
    return results


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--contended", action="store_true",
                   help="keep one core busy with a spinning process while timing")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    print(f"python {platform.python_version()}, torch {torch.__version__}, sklearn "
          f"{sklearn.__version__}, sklearn_deepnet {sklearn_deepnet.__version__}, "
          f"{multiprocessing.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    print("command:", " ".join([sys.executable, *sys.argv]))
    stop, spinner = None, None
    if args.contended:
        stop = multiprocessing.Event()
        spinner = multiprocessing.Process(target=_spin, args=(stop,), daemon=True)
        spinner.start()
    try:
        results = run(args.repeat)
    finally:
        if spinner is not None:
            stop.set()
            spinner.join()
    print(f"\npredict_proba latency{' (one core busy)' if args.contended else ''}, "
          f"median of {args.repeat}")
    print(f"{'network':<16}{'rows':>6}{'ours ms':>10}{'sklearn ms':>12}{'sklearn/ours':>14}")
    for r in results:
        print(f"{r['network']:<16}{r['rows']:>6}{r['ours_ms']:>10.3f}{r['sklearn_ms']:>12.3f}"
              f"{r['ratio']:>14.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(contended=args.contended, results=results), f, indent=1)


if __name__ == "__main__":
    main()
